//! Scrubbing credential-shaped text before it is logged or echoed: a key pasted into a URL path
//! or a header must not end up in a log line.

use std::borrow::Cow;

const PREFIXES: &[&str] = &["rmp_", "eyJ"];

fn is_token_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')
}

/// `text` with every run that starts like a Rampart credential (`rmp_…`) or a JWT (`eyJ…`)
/// replaced by `[REDACTED]`.
#[must_use]
pub fn redact_credentials(text: &str) -> Cow<'_, str> {
    if !PREFIXES.iter().any(|p| text.contains(p)) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while !rest.is_empty() {
        let next = PREFIXES.iter().filter_map(|p| rest.find(p)).min();
        let Some(start) = next else {
            out.push_str(rest);
            break;
        };
        // Only at the start of a token: `xrmp_` inside a longer word is left alone.
        let at_boundary = rest[..start]
            .chars()
            .next_back()
            .is_none_or(|c| !is_token_char(c));
        let len = rest[start..]
            .char_indices()
            .find(|(_, c)| !is_token_char(*c))
            .map_or(rest.len() - start, |(i, _)| i);
        out.push_str(&rest[..start]);
        if at_boundary && len >= 8 {
            out.push_str("[REDACTED]");
        } else {
            out.push_str(&rest[start..start + len]);
        }
        rest = &rest[start + len..];
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ApiKey;

    #[test]
    fn keys_and_jwts_are_scrubbed() {
        let k = ApiKey::generate().unwrap();
        let text = format!("/v1/apikeys/{}/rotate", k.expose());
        assert_eq!(redact_credentials(&text), "/v1/apikeys/[REDACTED]/rotate");
        assert_eq!(
            redact_credentials("Bearer eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJ4In0.c2ln ok"),
            "Bearer [REDACTED] ok"
        );
        assert_eq!(redact_credentials("/v1/tenants"), "/v1/tenants");
        assert_eq!(redact_credentials("rmp_"), "rmp_");
        assert_eq!(redact_credentials("farmp_live_abc"), "farmp_live_abc");
    }
}
