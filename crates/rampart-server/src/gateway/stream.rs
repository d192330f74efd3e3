//! Streamed answers (server-sent events): each generated text — a choice's content, a tool
//! call's argument deltas, a content block — runs through its own split-safe Sentinel stream
//! redactor and token restorer, so a value cut across any event boundaries is handled exactly as
//! if it had arrived whole. Text the redactor holds back is released in later events, and what
//! is left when a text ends is sent before its end (`finish_reason`, `content_block_stop`).
//!
//! The stream's terminator (`data: [DONE]`, `message_stop`) is sent only after the call's audit
//! record is written; if it cannot be, or the upstream stream breaks or sends an event that
//! cannot be checked, the stream ends with an error event instead, which the SDKs raise.

use std::collections::BTreeMap;
use std::io::Read;

use axum::body::{Body, Bytes};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use rampart_sentinel::Detector;
use rampart_sentinel::stream::{StreamRedactor, StreamRestorer};
use rampart_types::Outcome;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::forward::{UpstreamRequest, answer, read_answer, unreachable};
use super::{Call, Provider, Redacted, Restorable, Usage};
use crate::error::ApiError;
use crate::sentinel::{PendingVault, Redactor};

type Chunk = Result<Bytes, std::io::Error>;

/// One generated text: its redactor and restorer.
struct Chain<'a> {
    redactor: StreamRedactor<'a>,
    restorer: StreamRestorer,
    /// The text is JSON (tool arguments): restored values are escaped for a JSON string.
    json: bool,
}

/// The value a restored token becomes in a text: escaped for JSON where the text is JSON.
fn restored(
    restorable: &Restorable,
    redactor: &Redactor,
    token: &str,
    json: bool,
) -> Option<String> {
    let value = restorable.lookup(redactor, token)?;
    if !json {
        return Some(value);
    }
    let quoted = serde_json::to_string(&value).ok()?;
    Some(quoted[1..quoted.len() - 1].to_owned())
}

/// Characters per token in the estimate of a cut stream's output (the usual rule of thumb for
/// English text with the GPT and Claude tokenizers).
const CHARS_PER_TOKEN: u64 = 4;

/// The stream transformer: chains keyed by (choice or block index, slot), slot 0 for text and
/// `1 + i` for tool call `i`.
struct Relay<'a> {
    provider: Provider,
    detector: &'a Detector,
    redactor: &'a Redactor,
    restorable: &'a Restorable,
    vault: &'a mut PendingVault,
    redacted: &'a mut Redacted,
    chains: BTreeMap<(u64, u64), Chain<'a>>,
    usage: Usage,
    /// Characters of text and tool-call arguments the upstream streamed, for an estimate of the
    /// output tokens when the stream ends before its usage.
    streamed_chars: u64,
    /// Drop OpenAI's usage chunk: the gateway asked for it, the client did not.
    hide_usage: bool,
    /// `id`, `created`, `model` of the last OpenAI chunk, for chunks the relay adds.
    meta: Value,
    terminator: Option<String>,
}

impl<'a> Relay<'a> {
    fn push(&mut self, key: (u64, u64), json: bool, text: &str) -> String {
        self.streamed_chars = self
            .streamed_chars
            .saturating_add(u64::try_from(text.chars().count()).unwrap_or(u64::MAX));
        let (detector, redactor) = (self.detector, self.redactor);
        let chain = self.chains.entry(key).or_insert_with(|| Chain {
            redactor: StreamRedactor::new(
                detector,
                &redactor.policy.compiled,
                rampart_sentinel::Channel::Response,
                &redactor.key.tokenizer,
                redactor.scrubber.as_deref(),
            ),
            restorer: StreamRestorer::default(),
            json,
        });
        let Ok(out) = chain.redactor.push(text, self.vault);
        let (restorable, json) = (self.restorable, chain.json);
        chain
            .restorer
            .push(&out, |t| restored(restorable, redactor, t, json))
    }

    /// The usage the upstream reported or, for a stream that ended before reporting it, an
    /// estimate of the output tokens: one per four characters streamed, rounded up.
    fn usage_or_estimate(&self) -> Usage {
        let mut usage = self.usage;
        if usage.output.is_none() && self.streamed_chars > 0 {
            usage.output = Some(self.streamed_chars.div_ceil(CHARS_PER_TOKEN));
            usage.output_estimated = true;
        }
        usage
    }

    /// Ends a text: what its redactor and restorer still held, and whether it is JSON.
    fn flush(&mut self, key: (u64, u64)) -> Option<(String, bool)> {
        let mut chain = self.chains.remove(&key)?;
        let Ok((tail, applied)) = chain.redactor.finish(self.vault);
        self.redacted.add("response", &applied);
        let (restorable, redactor, json) = (self.restorable, self.redactor, chain.json);
        let mut out = chain
            .restorer
            .push(&tail, |t| restored(restorable, redactor, t, json));
        out.push_str(
            &chain
                .restorer
                .finish(|t| restored(restorable, redactor, t, json)),
        );
        Some((out, json))
    }

    fn keys_of(&self, index: u64) -> Vec<(u64, u64)> {
        self.chains
            .keys()
            .filter(|k| k.0 == index)
            .copied()
            .collect()
    }

    /// Handles one upstream event; returns the events to send on.
    fn event(&mut self, name: Option<&str>, data: &str) -> Result<Vec<String>, String> {
        match self.provider {
            Provider::OpenAi => self.openai(data),
            Provider::Anthropic => self.anthropic(name, data),
        }
    }

    fn openai(&mut self, data: &str) -> Result<Vec<String>, String> {
        if data.trim() == "[DONE]" {
            let out = self.flush_all();
            self.terminator = Some("data: [DONE]\n\n".to_owned());
            return Ok(out);
        }
        let mut v: Value = serde_json::from_str(data)
            .map_err(|_| "the upstream sent a stream event that is not JSON".to_owned())?;
        self.provider.usage(&v, &mut self.usage);
        let only_usage = v.get("usage").is_some_and(|u| !u.is_null())
            && v.get("choices")
                .and_then(Value::as_array)
                .is_some_and(Vec::is_empty);
        if self.hide_usage && only_usage {
            return Ok(Vec::new());
        }
        for k in ["id", "created", "model", "object"] {
            if let Some(x) = v.get(k) {
                self.meta[k] = x.clone();
            }
        }
        if v.get("error").is_some() {
            return Err("the upstream reported an error in the stream".to_owned());
        }
        if let Some(choices) = v.get_mut("choices").and_then(Value::as_array_mut) {
            for choice in choices {
                let index = choice.get("index").and_then(Value::as_u64).unwrap_or(0);
                let finished = choice.get("finish_reason").is_some_and(|f| !f.is_null());
                let Some(delta) = choice.get_mut("delta").and_then(Value::as_object_mut) else {
                    continue;
                };
                for field in ["content", "refusal"] {
                    if let Some(Value::String(s)) = delta.get_mut(field) {
                        let slot = if field == "content" { 0 } else { u64::MAX };
                        *s = self.push((index, slot), false, s);
                    }
                }
                if let Some(calls) = delta.get_mut("tool_calls").and_then(Value::as_array_mut) {
                    for call in calls {
                        let i = call.get("index").and_then(Value::as_u64).unwrap_or(0);
                        if let Some(Value::String(a)) = call.pointer_mut("/function/arguments") {
                            *a = self.push((index, i.saturating_add(1)), true, a);
                        }
                    }
                }
                if finished {
                    for key in self.keys_of(index) {
                        let Some((rest, _)) = self.flush(key) else {
                            continue;
                        };
                        if rest.is_empty() {
                            continue;
                        }
                        openai_append(delta, key.1, rest);
                    }
                }
            }
        }
        Ok(vec![format!("data: {v}\n\n")])
    }

    fn anthropic(&mut self, name: Option<&str>, data: &str) -> Result<Vec<String>, String> {
        let mut v: Value = serde_json::from_str(data)
            .map_err(|_| "the upstream sent a stream event that is not JSON".to_owned())?;
        self.provider.usage(&v, &mut self.usage);
        let kind = v
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let index = v.get("index").and_then(Value::as_u64).unwrap_or(0);
        let mut out = Vec::new();
        match kind.as_str() {
            "error" => return Err("the upstream reported an error in the stream".to_owned()),
            "content_block_start" => {
                let block = v.get_mut("content_block");
                let json = block
                    .as_ref()
                    .and_then(|b| b.get("type"))
                    .and_then(Value::as_str)
                    .is_some_and(|t| t != "text" && t != "thinking");
                // Open the chain now, so a JSON block's chain is JSON from its first delta.
                let first = block.and_then(|b| {
                    let field = if b.get("text").is_some() {
                        "text"
                    } else {
                        "thinking"
                    };
                    match b.get_mut(field) {
                        Some(Value::String(s)) => Some(s),
                        _ => None,
                    }
                });
                match first {
                    Some(s) => *s = self.push((index, 0), json, s),
                    None => {
                        self.push((index, 0), json, "");
                    }
                }
            }
            "content_block_delta" => {
                if let Some(delta) = v.get_mut("delta") {
                    for field in ["text", "partial_json", "thinking"] {
                        if let Some(Value::String(s)) = delta.get_mut(field) {
                            *s = self.push((index, 0), field == "partial_json", s);
                        }
                    }
                }
            }
            "content_block_stop" => {
                if let Some((rest, json)) = self.flush((index, 0))
                    && !rest.is_empty()
                {
                    out.push(anthropic_delta(index, json, rest));
                }
            }
            "message_stop" => {
                out.extend(self.flush_all());
                self.terminator = Some(sse(name, &v));
                return Ok(out);
            }
            _ => {}
        }
        out.push(sse(name, &v));
        Ok(out)
    }

    /// Ends every open text, as events of their own.
    fn flush_all(&mut self) -> Vec<String> {
        let keys: Vec<(u64, u64)> = self.chains.keys().copied().collect();
        let mut out = Vec::new();
        for key in keys {
            let Some((rest, json)) = self.flush(key) else {
                continue;
            };
            if rest.is_empty() {
                continue;
            }
            out.push(match self.provider {
                Provider::OpenAi => {
                    let mut delta = serde_json::Map::new();
                    openai_append(&mut delta, key.1, rest);
                    let mut chunk = self.meta.clone();
                    chunk["choices"] =
                        json!([{ "index": key.0, "delta": delta, "finish_reason": null }]);
                    format!("data: {chunk}\n\n")
                }
                Provider::Anthropic => anthropic_delta(key.0, json, rest),
            });
        }
        out
    }
}

/// Adds `rest` to an OpenAI delta: content for slot 0, refusal for the last slot, else the
/// arguments of tool call `slot - 1`.
fn openai_append(delta: &mut serde_json::Map<String, Value>, slot: u64, rest: String) {
    let field = match slot {
        0 => "content",
        u64::MAX => "refusal",
        _ => {
            let call = json!({ "index": slot - 1, "function": { "arguments": rest } });
            match delta.get_mut("tool_calls").and_then(Value::as_array_mut) {
                Some(calls) => calls.push(call),
                None => {
                    delta.insert("tool_calls".to_owned(), json!([call]));
                }
            }
            return;
        }
    };
    match delta.get_mut(field) {
        Some(Value::String(s)) => s.push_str(&rest),
        _ => {
            delta.insert(field.to_owned(), Value::String(rest));
        }
    }
}

fn anthropic_delta(index: u64, json: bool, rest: String) -> String {
    let delta = if json {
        json!({ "type": "input_json_delta", "partial_json": rest })
    } else {
        json!({ "type": "text_delta", "text": rest })
    };
    sse(
        Some("content_block_delta"),
        &json!({ "type": "content_block_delta", "index": index, "delta": delta }),
    )
}

fn sse(name: Option<&str>, data: &Value) -> String {
    match name {
        Some(n) => format!("event: {n}\ndata: {data}\n\n"),
        None => format!("data: {data}\n\n"),
    }
}

/// The error event a stream ends with when it cannot end well.
fn error_event(provider: Provider, message: &str) -> String {
    match provider {
        Provider::OpenAi => format!(
            "data: {}\n\n",
            json!({ "error": { "message": message, "type": "rampart_error" } })
        ),
        Provider::Anthropic => sse(
            Some("error"),
            &json!({ "type": "error", "error": { "type": "api_error", "message": message } }),
        ),
    }
}

/// The next complete event in `buf` (carriage returns already removed): its name and data.
fn next_event(buf: &mut Vec<u8>) -> Option<(Option<String>, String)> {
    loop {
        let end = buf.windows(2).position(|w| w == b"\n\n")?;
        let block: Vec<u8> = buf.drain(..end + 2).collect();
        let block = String::from_utf8_lossy(&block[..end]);
        let mut name = None;
        let mut data: Option<String> = None;
        for line in block.lines() {
            let (field, value) = line.split_once(':').unwrap_or((line, ""));
            let value = value.strip_prefix(' ').unwrap_or(value);
            match field {
                "event" => name = Some(value.to_owned()),
                "data" => match &mut data {
                    Some(d) => {
                        d.push('\n');
                        d.push_str(value);
                    }
                    None => data = Some(value.to_owned()),
                },
                _ => {}
            }
        }
        if let Some(data) = data {
            return Some((name, data));
        }
        // A comment or keep-alive: nothing to relay.
    }
}

/// Relays the upstream stream to the client (blocking: runs on the blocking pool).
fn relay(
    mut call: Call,
    resp: ureq::http::Response<ureq::Body>,
    out: mpsc::Sender<Chunk>,
    runtime: tokio::runtime::Handle,
) {
    let send = |s: String| out.blocking_send(Ok(Bytes::from(s))).is_ok();
    let provider = call.provider;
    let hide_usage = call.usage_asked_for;
    let mut failure: Option<String> = None;
    let mut client_gone = false;
    let (usage, terminator) = match super::detector() {
        Err(_) => {
            failure = Some("the Sentinel could not run".to_owned());
            (Usage::default(), None)
        }
        Ok(detector) => {
            let Call {
                redactor,
                restorable,
                answer_vault,
                redacted,
                ..
            } = &mut call;
            let mut relay = Relay {
                provider,
                detector,
                redactor,
                restorable,
                vault: answer_vault,
                redacted,
                chains: BTreeMap::new(),
                usage: Usage::default(),
                streamed_chars: 0,
                hide_usage,
                meta: json!({}),
                terminator: None,
            };
            let mut reader = resp.into_body().into_reader();
            let mut buf = Vec::new();
            let mut chunk = vec![0u8; 16 * 1024];
            'read: while relay.terminator.is_none() {
                let n = match reader.read(&mut chunk) {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(e) => {
                        failure = Some(format!("the upstream stream broke: {e}"));
                        break;
                    }
                };
                buf.extend(chunk[..n].iter().filter(|b| **b != b'\r'));
                while let Some((name, data)) = next_event(&mut buf) {
                    match relay.event(name.as_deref(), &data) {
                        Ok(events) => {
                            for e in events {
                                if !send(e) {
                                    client_gone = true;
                                    break 'read;
                                }
                            }
                        }
                        Err(e) => {
                            failure = Some(e);
                            break 'read;
                        }
                    }
                    if relay.terminator.is_some() {
                        break;
                    }
                }
            }
            if failure.is_none() && !client_gone {
                for e in relay.flush_all() {
                    if !send(e) {
                        client_gone = true;
                        break;
                    }
                }
            }
            (relay.usage_or_estimate(), relay.terminator.take())
        }
    };
    let (outcome, error) = match (&failure, client_gone) {
        (Some(f), _) => (Outcome::Failed, Some(f.clone())),
        (None, true) => (Outcome::Failed, Some("the client went away".to_owned())),
        (None, false) => (Outcome::Success, None),
    };
    let audited = runtime.block_on(call.finish(outcome, Some(200), usage, error.as_deref()));
    if client_gone {
        return;
    }
    match (audited, failure) {
        (Ok(()), None) => {
            if let Some(t) = terminator {
                send(t);
            }
        }
        (Ok(()), Some(f)) => {
            send(error_event(provider, &f));
        }
        (Err(_), _) => {
            send(error_event(
                provider,
                "the call could not be recorded in the audit trail, so it was refused",
            ));
        }
    }
}

/// Forwards a streamed call.
pub async fn respond(call: Call, request: UpstreamRequest) -> Result<Response, ApiError> {
    let sent = tokio::task::spawn_blocking(move || request.send())
        .await
        .map_err(ApiError::internal)?;
    let resp = match sent {
        Ok(r) => r,
        Err(cause) => return Err(unreachable(call, cause).await),
    };
    let status = resp.status().as_u16();
    if !(200..300).contains(&status) {
        // A refused stream answers with a JSON error, checked like any answer.
        let read = tokio::task::spawn_blocking(move || read_answer(resp))
            .await
            .map_err(ApiError::internal)?;
        return match read {
            Ok((status, bytes)) => answer(call, status, &bytes).await,
            Err(cause) => Err(unreachable(call, cause).await),
        };
    }
    let (out, rx) = mpsc::channel::<Chunk>(64);
    let runtime = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || relay(call, resp, out, runtime));
    let body = Body::from_stream(futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    }));
    let mut res = Response::new(body);
    *res.status_mut() = StatusCode::OK;
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    Ok(res)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_split_on_blank_lines_and_comments_dropped() {
        let mut buf = b": ping\n\nevent: a\ndata: {\"x\":1}\n\ndata: [DONE]\n\ndata: par".to_vec();
        assert_eq!(
            next_event(&mut buf),
            Some((Some("a".to_owned()), "{\"x\":1}".to_owned()))
        );
        assert_eq!(next_event(&mut buf), Some((None, "[DONE]".to_owned())));
        assert_eq!(next_event(&mut buf), None);
        assert_eq!(buf, b"data: par");
    }
}
