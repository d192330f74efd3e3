//! What differs between OpenAI Chat Completions and Anthropic Messages: where the text is, where
//! the system instructions are, and how usage is reported.

use rampart_crypto::sha256;
use rampart_sentinel::Channel;
use rampart_types::lower_hex;
use serde_json::{Value, json};

use super::Usage;
use super::json::{Site, collect};
use crate::error::ApiError;

/// The most messages one call carries.
const MAX_MESSAGES: usize = 1_000;

/// The most tool names of one call the agent profile looks at (both APIs accept at most 128
/// tools).
const MAX_TOOLS: usize = 128;

/// The longest tool name, in bytes, kept as it is in a profile.
const MAX_TOOL_NAME: usize = 256;

/// An LLM API the gateway speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provider {
    /// OpenAI Chat Completions, `POST /v1/chat/completions`.
    OpenAi,
    /// Anthropic Messages, `POST /v1/messages`.
    Anthropic,
}

fn text_of(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Array(parts) => {
            let mut out = String::new();
            for p in parts {
                out.push_str(p.get("text")?.as_str()?);
            }
            Some(out)
        }
        _ => None,
    }
}

impl Provider {
    pub const fn as_str(self) -> &'static str {
        match self {
            Provider::OpenAi => "openai",
            Provider::Anthropic => "anthropic",
        }
    }

    /// The path appended to the upstream's base URL.
    pub const fn path(self) -> &'static str {
        match self {
            Provider::OpenAi => "/chat/completions",
            Provider::Anthropic => "/messages",
        }
    }

    /// Checks the shape the gateway relies on; returns the model.
    pub fn check_request(self, body: &Value) -> Result<String, ApiError> {
        let obj = body
            .as_object()
            .ok_or_else(|| ApiError::validation("the request body must be a JSON object"))?;
        let model = obj
            .get("model")
            .and_then(Value::as_str)
            .filter(|m| !m.is_empty() && m.chars().count() <= 256)
            .ok_or_else(|| {
                ApiError::validation("`model` must be a string of 1 to 256 characters")
            })?;
        let messages = obj
            .get("messages")
            .and_then(Value::as_array)
            .ok_or_else(|| ApiError::validation("`messages` must be an array"))?;
        if messages.len() > MAX_MESSAGES {
            return Err(ApiError::validation(format!(
                "`messages` holds at most {MAX_MESSAGES} messages"
            )));
        }
        if messages.iter().any(|m| !m.is_object()) {
            return Err(ApiError::validation(
                "every item of `messages` must be an object",
            ));
        }
        if obj
            .get("stream")
            .is_some_and(|s| !s.is_boolean() && !s.is_null())
        {
            return Err(ApiError::validation("`stream` must be a boolean"));
        }
        Ok(model.to_owned())
    }

    /// The names of the tools the call offers the model (at most [`MAX_TOOLS`], each once):
    /// OpenAI's `tools[].function.name` and legacy `functions[].name`, Anthropic's
    /// `tools[].name`. A name longer than [`MAX_TOOL_NAME`] bytes stands as `sha256:` and its
    /// hash, so that profiles stay small and such a name is still told apart.
    pub fn tool_names(self, body: &Value) -> Vec<String> {
        let listed = |key: &str| {
            body.get(key)
                .and_then(Value::as_array)
                .map_or(&[][..], Vec::as_slice)
        };
        let names = match self {
            Provider::OpenAi => listed("tools")
                .iter()
                .filter_map(|t| t.get("function")?.get("name")?.as_str())
                .chain(
                    listed("functions")
                        .iter()
                        .filter_map(|f| f.get("name")?.as_str()),
                )
                .collect::<Vec<_>>(),
            Provider::Anthropic => listed("tools")
                .iter()
                .filter_map(|t| t.get("name")?.as_str())
                .collect(),
        };
        let mut out: Vec<String> = Vec::new();
        for n in names {
            if out.len() == MAX_TOOLS {
                break;
            }
            let n = if n.len() > MAX_TOOL_NAME {
                format!("sha256:{}", lower_hex(&sha256(n.as_bytes())))
            } else {
                n.to_owned()
            };
            if !out.contains(&n) {
                out.push(n);
            }
        }
        out
    }

    /// Makes an OpenAI stream report its usage (`stream_options.include_usage`), which budgets
    /// need; true when the client had not asked for it. Anthropic streams always report usage.
    pub fn ask_stream_usage(self, body: &mut Value) -> bool {
        if self != Provider::OpenAi || !self.is_stream(body) {
            return false;
        }
        let options = &mut body["stream_options"];
        if options.is_null() {
            *options = json!({});
        }
        match options.as_object_mut() {
            Some(o) if o.get("include_usage") != Some(&Value::Bool(true)) => {
                o.insert("include_usage".into(), Value::Bool(true));
                true
            }
            // Already asked for, or not an object (the upstream answers that).
            _ => false,
        }
    }

    pub fn is_stream(self, body: &Value) -> bool {
        body.get("stream").and_then(Value::as_bool) == Some(true)
    }

    /// The call's system instructions as one text, if it has any: OpenAI's `system` and
    /// `developer` messages, in order; Anthropic's `system`.
    pub fn system_text(self, body: &Value) -> Option<String> {
        match self {
            Provider::OpenAi => {
                let mut out: Option<String> = None;
                for m in body.get("messages")?.as_array()? {
                    let role = m.get("role").and_then(Value::as_str);
                    if matches!(role, Some("system" | "developer")) {
                        let t = text_of(m.get("content")?)?;
                        match &mut out {
                            Some(o) => {
                                o.push('\n');
                                o.push_str(&t);
                            }
                            None => out = Some(t),
                        }
                    }
                }
                out
            }
            Provider::Anthropic => text_of(body.get("system")?),
        }
    }

    /// Puts `instructions` in place of the call's system instructions.
    pub fn set_system(self, body: &mut Value, instructions: &str) {
        match self {
            Provider::OpenAi => {
                if let Some(messages) = body.get_mut("messages").and_then(Value::as_array_mut) {
                    messages.retain(|m| {
                        !matches!(
                            m.get("role").and_then(Value::as_str),
                            Some("system" | "developer")
                        )
                    });
                    messages.insert(0, json!({ "role": "system", "content": instructions }));
                }
            }
            Provider::Anthropic => {
                if let Some(obj) = body.as_object_mut() {
                    obj.insert("system".to_owned(), Value::String(instructions.to_owned()));
                }
            }
        }
    }

    /// Every string of the request the Sentinel must see: tool results on the `tool_output`
    /// channel, everything else on `prompt`.
    pub fn outgoing_sites(self, body: &Value) -> Vec<Site> {
        let mut out = Vec::new();
        let messages = body
            .get("messages")
            .and_then(Value::as_array)
            .map_or(&[][..], Vec::as_slice);
        match self {
            Provider::OpenAi => {
                for (i, m) in messages.iter().enumerate() {
                    let role = m.get("role").and_then(Value::as_str);
                    let channel = if matches!(role, Some("tool" | "function")) {
                        Channel::ToolOutput
                    } else {
                        Channel::Prompt
                    };
                    collect(m, &format!("/messages/{i}"), channel, &mut out);
                }
            }
            Provider::Anthropic => {
                if let Some(system) = body.get("system") {
                    collect(system, "/system", Channel::Prompt, &mut out);
                }
                for (i, m) in messages.iter().enumerate() {
                    let ptr = format!("/messages/{i}/content");
                    match m.get("content") {
                        Some(Value::Array(blocks)) => {
                            for (j, b) in blocks.iter().enumerate() {
                                let channel = if b.get("type").and_then(Value::as_str)
                                    == Some("tool_result")
                                {
                                    Channel::ToolOutput
                                } else {
                                    Channel::Prompt
                                };
                                collect(b, &format!("{ptr}/{j}"), channel, &mut out);
                            }
                        }
                        Some(c) => collect(c, &ptr, Channel::Prompt, &mut out),
                        None => {}
                    }
                }
            }
        }
        out
    }

    /// Every string of a (non-streamed) answer the Sentinel must see: the generated messages,
    /// or the error of a failed call.
    pub fn answer_sites(self, answer: &Value) -> Vec<Site> {
        let mut out = Vec::new();
        if let Some(e) = answer.get("error") {
            collect(e, "/error", Channel::Response, &mut out);
        }
        match self {
            Provider::OpenAi => {
                if let Some(choices) = answer.get("choices").and_then(Value::as_array) {
                    for (i, c) in choices.iter().enumerate() {
                        if let Some(m) = c.get("message") {
                            collect(
                                m,
                                &format!("/choices/{i}/message"),
                                Channel::Response,
                                &mut out,
                            );
                        }
                    }
                }
            }
            Provider::Anthropic => {
                if let Some(content) = answer.get("content") {
                    collect(content, "/content", Channel::Response, &mut out);
                }
            }
        }
        out
    }

    /// The token counts of an answer (or of one stream event that carries them).
    pub fn usage(self, v: &Value, into: &mut Usage) {
        let u = match self {
            Provider::OpenAi => v.get("usage"),
            Provider::Anthropic => v
                .get("usage")
                .or_else(|| v.get("message").and_then(|m| m.get("usage"))),
        };
        let Some(u) = u else { return };
        let (input, output) = match self {
            Provider::OpenAi => ("prompt_tokens", "completion_tokens"),
            Provider::Anthropic => ("input_tokens", "output_tokens"),
        };
        if let Some(n) = u.get(input).and_then(Value::as_u64) {
            into.input = Some(n);
        }
        if let Some(n) = u.get(output).and_then(Value::as_u64) {
            into.output = Some(n);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tool_names_are_read_per_api_once_each_and_long_ones_hashed() {
        let long = "t".repeat(MAX_TOOL_NAME + 1);
        let openai = json!({
            "tools": [
                { "type": "function", "function": { "name": "search" } },
                { "type": "function", "function": { "name": "search" } },
                { "type": "function", "function": { "name": long } },
                { "type": "function" },
            ],
            "functions": [{ "name": "legacy" }],
        });
        let names = Provider::OpenAi.tool_names(&openai);
        assert_eq!(names.len(), 3);
        assert_eq!(names[0], "search");
        assert!(names[1].starts_with("sha256:") && names[1].len() == 7 + 64);
        assert_eq!(names[2], "legacy");
        let anthropic = json!({ "tools": [{ "name": "get_weather", "input_schema": {} }] });
        assert_eq!(Provider::Anthropic.tool_names(&anthropic), ["get_weather"]);
        assert!(Provider::Anthropic.tool_names(&openai).is_empty());
        let many: Vec<Value> = (0..MAX_TOOLS + 5)
            .map(|i| json!({ "name": format!("t{i}") }))
            .collect();
        assert_eq!(
            Provider::Anthropic
                .tool_names(&json!({ "tools": many }))
                .len(),
            MAX_TOOLS
        );
    }
}
