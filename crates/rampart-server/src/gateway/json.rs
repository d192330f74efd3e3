//! Finding the text in provider JSON that the Sentinel must see, and rewriting it in place.
//!
//! Inside message, content-block and tool-call objects (those with a `type` or `role`) the
//! structural keys — ids, roles, types, media — are left alone and every other string is
//! redacted, so a field a provider adds tomorrow is redacted rather than leaked. Inside any
//! other object (tool inputs, arguments) every string is redacted. Tool-call `arguments` are
//! JSON text: they are parsed and their strings redacted one by one, or redacted as text if
//! they do not parse.

use rampart_sentinel::Channel;
use serde_json::Value;

use crate::error::ApiError;

/// Keys of message and content-block objects that carry structure, not content.
const STRUCTURAL: &[&str] = &[
    "role",
    "type",
    "id",
    "tool_call_id",
    "tool_use_id",
    "name",
    "image_url",
    "input_audio",
    "file",
    "source",
    "cache_control",
    "signature",
    "media_type",
];

/// One string to redact, by JSON pointer.
#[derive(Debug, Clone)]
pub struct Site {
    pub pointer: String,
    pub channel: Channel,
    /// The string is JSON text (tool-call arguments).
    pub json_text: bool,
}

fn push_key(ptr: &str, key: &str) -> String {
    format!("{ptr}/{}", key.replace('~', "~0").replace('/', "~1"))
}

/// Every string under `v` (at `ptr`) to redact on `channel`.
pub fn collect(v: &Value, ptr: &str, channel: Channel, out: &mut Vec<Site>) {
    match v {
        Value::String(_) => out.push(Site {
            pointer: ptr.to_owned(),
            channel,
            json_text: false,
        }),
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                collect(item, &format!("{ptr}/{i}"), channel, out);
            }
        }
        Value::Object(map) => {
            let structured = map.contains_key("type") || map.contains_key("role");
            let is_call = map.contains_key("arguments");
            for (k, item) in map {
                if (structured && STRUCTURAL.contains(&k.as_str())) || (is_call && k == "name") {
                    continue;
                }
                let p = push_key(ptr, k);
                if k == "arguments" && item.is_string() {
                    out.push(Site {
                        pointer: p,
                        channel,
                        json_text: true,
                    });
                } else {
                    collect(item, &p, channel, out);
                }
            }
        }
        _ => {}
    }
}

/// Every string under `v`, structure or not (the inside of tool arguments).
fn collect_all(v: &Value, ptr: &str, out: &mut Vec<String>) {
    match v {
        Value::String(_) => out.push(ptr.to_owned()),
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                collect_all(item, &format!("{ptr}/{i}"), out);
            }
        }
        Value::Object(map) => {
            for (k, item) in map {
                collect_all(item, &push_key(ptr, k), out);
            }
        }
        _ => {}
    }
}

/// One text to rewrite: a string at a site, or a string inside a site's JSON text.
#[derive(Debug)]
pub struct Piece {
    site: usize,
    /// The pointer inside the site's parsed JSON text.
    inner: Option<String>,
    pub channel: Channel,
    pub text: String,
}

/// The texts at `sites`, to be rewritten and put back with [`put_back`].
pub fn pieces(body: &Value, sites: &[Site]) -> Vec<Piece> {
    let mut out = Vec::new();
    for (i, site) in sites.iter().enumerate() {
        let Some(Value::String(text)) = body.pointer(&site.pointer) else {
            continue;
        };
        if let Some(inner) = parsed(site, text) {
            let mut leaves = Vec::new();
            collect_all(&inner, "", &mut leaves);
            for leaf in leaves {
                if let Some(Value::String(s)) = inner.pointer(&leaf) {
                    out.push(Piece {
                        site: i,
                        inner: Some(leaf),
                        channel: site.channel,
                        text: s.clone(),
                    });
                }
            }
        } else {
            out.push(Piece {
                site: i,
                inner: None,
                channel: site.channel,
                text: text.clone(),
            });
        }
    }
    out
}

/// A JSON-text site's value parsed, when it is a JSON object or array.
fn parsed(site: &Site, text: &str) -> Option<Value> {
    site.json_text
        .then(|| serde_json::from_str::<Value>(text).ok())
        .flatten()
        .filter(|v| v.is_object() || v.is_array())
}

/// Puts rewritten pieces back where [`pieces`] found them.
pub fn put_back(body: &mut Value, sites: &[Site], pieces: Vec<Piece>) -> Result<(), ApiError> {
    let mut by_site: Vec<Vec<Piece>> = sites.iter().map(|_| Vec::new()).collect();
    for p in pieces {
        if let Some(v) = by_site.get_mut(p.site) {
            v.push(p);
        }
    }
    for (site, group) in sites.iter().zip(by_site) {
        let Some(slot) = body.pointer_mut(&site.pointer) else {
            continue;
        };
        let Value::String(text) = slot else {
            continue;
        };
        let new = match parsed(site, text) {
            Some(mut inner) => {
                for p in group {
                    if let Some(leaf) = p.inner.as_deref().and_then(|l| inner.pointer_mut(l)) {
                        *leaf = Value::String(p.text);
                    }
                }
                serde_json::to_string(&inner).map_err(ApiError::internal)?
            }
            None => match group.into_iter().next() {
                Some(p) => p.text,
                None => continue,
            },
        };
        *slot = Value::String(new);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn structure_is_kept_and_everything_else_is_collected() {
        let msg = json!({
            "role": "assistant",
            "content": "hi",
            "name": "bot",
            "tool_calls": [{
                "id": "call_1",
                "type": "function",
                "function": { "name": "lookup", "arguments": "{\"q\":\"x\"}" }
            }],
            "extra": { "id": "user data" }
        });
        let mut out = Vec::new();
        collect(&msg, "/messages/0", Channel::Prompt, &mut out);
        let ptrs: Vec<(&str, bool)> = out
            .iter()
            .map(|s| (s.pointer.as_str(), s.json_text))
            .collect();
        assert_eq!(
            ptrs,
            vec![
                ("/messages/0/content", false),
                ("/messages/0/extra/id", false),
                ("/messages/0/tool_calls/0/function/arguments", true),
            ]
        );
    }

    #[test]
    fn pointer_keys_are_escaped() {
        let v = json!({ "a/b": { "c~d": "x" } });
        let mut out = Vec::new();
        collect(&v, "", Channel::Prompt, &mut out);
        assert_eq!(out[0].pointer, "/a~1b/c~0d");
        assert_eq!(v.pointer(&out[0].pointer), Some(&json!("x")));
    }
}
