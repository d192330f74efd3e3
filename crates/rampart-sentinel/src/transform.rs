//! Applying a policy to findings: keyed tokens, vault-sealed tokens, or tags.

use rampart_crypto::{DerivedKey, HmacKey};
use serde::Serialize;

use crate::policy::{CompiledPolicy, Mode};
use crate::{Channel, Class, Finding};

/// The tenant's token keys. Strict and reversible tokens come from different keys, so a strict
/// token can never be presented as a reversible one.
pub struct Tokenizer {
    strict: HmacKey,
    reversible: HmacKey,
}

impl std::fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Tokenizer(..)")
    }
}

/// Hex digits of a strict token and of a reversible token.
const STRICT_HEX: usize = 12;
const REVERSIBLE_HEX: usize = 20;

impl Tokenizer {
    /// Derives both token keys from the tenant's Sentinel key material (32 bytes or more).
    pub fn new(material: &[u8]) -> Result<Self, rampart_crypto::CryptoError> {
        Ok(Tokenizer {
            strict: DerivedKey::from_secret_material(material, "rampart sentinel strict token v1")?
                .into_hmac()?,
            reversible: DerivedKey::from_secret_material(
                material,
                "rampart sentinel reversible token v1",
            )?
            .into_hmac()?,
        })
    }

    fn digest(key: &HmacKey, class: Class, value: &str, hex: usize) -> String {
        let normal = normalise(class, value);
        let mac = key.sign(&[class.as_str().as_bytes(), b"\0", normal.as_bytes()]);
        crate::hex(&mac[..hex / 2], crate::LOWER_HEX)
    }

    /// `[EMAIL_3f9a1c0b2d4e]`: the same value always gives the same token for this tenant.
    pub fn strict_token(&self, class: Class, value: &str) -> String {
        format!(
            "[{}_{}]",
            class.as_str(),
            Self::digest(&self.strict, class, value, STRICT_HEX)
        )
    }

    /// `[EMAIL_R_…]`: a reversible token; its value is sealed under it in the vault.
    pub fn reversible_token(&self, class: Class, value: &str) -> String {
        format!(
            "[{}_R_{}]",
            class.as_str(),
            Self::digest(&self.reversible, class, value, REVERSIBLE_HEX)
        )
    }
}

/// One value in the forms people write it: "(212) 555-0187" and "212-555-0187" are the same
/// phone number, "Jane@Example.com" and "jane@example.com" the same address.
fn normalise(class: Class, value: &str) -> String {
    match class {
        Class::Phone | Class::PaymentCard | Class::GovId | Class::BankAccount => value
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .collect::<String>()
            .to_ascii_uppercase(),
        Class::Email | Class::IpAddress => value.trim().to_lowercase(),
        Class::Credential => value.to_owned(),
        _ => value
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .to_lowercase(),
    }
}

/// Where reversible tokens' values are kept. The server seals them in the tenant's vault; a
/// test can keep them in memory.
pub trait TokenVault {
    type Error;
    /// Keeps `value` under `token`. Called again with the same pair when a value repeats.
    fn seal(&mut self, class: Class, token: &str, value: &str) -> Result<(), Self::Error>;
}

/// A vault for channels whose policy has no reversible class: sealing is an error.
#[derive(Debug, Default)]
pub struct NoVault;

#[derive(Debug, thiserror::Error)]
#[error("the policy asks for reversible tokens but no vault is available")]
pub struct NoVaultError;

impl TokenVault for NoVault {
    type Error = NoVaultError;
    fn seal(&mut self, _: Class, _: &str, _: &str) -> Result<(), NoVaultError> {
        Err(NoVaultError)
    }
}

/// What was done to one finding. Offsets are bytes of the input text.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Applied {
    pub class: Class,
    pub start: usize,
    pub end: usize,
    pub score: f32,
    pub mode: Mode,
    /// The token that replaced the value (absent for `flag`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Redaction {
    pub text: String,
    pub applied: Vec<Applied>,
}

/// Applies `policy` for `channel` to `findings` (ordered, non-overlapping) in `text`.
pub fn redact<V: TokenVault>(
    text: &str,
    findings: &[Finding],
    policy: &CompiledPolicy,
    channel: Channel,
    tokenizer: &Tokenizer,
    vault: &mut V,
) -> Result<Redaction, V::Error> {
    let mut out = String::with_capacity(text.len());
    let mut applied = Vec::new();
    let mut at = 0;
    for f in findings {
        if f.start < at {
            continue;
        }
        let value = &text[f.start..f.end];
        let (mode, token) = if f.rule == crate::Rule::LiveSecret {
            // A live secret is removed whatever the policy: never passed through, never sealed.
            (Mode::Strict, Some(crate::scrub::SCRUBBED.to_owned()))
        } else {
            let (mode, threshold) = policy.decide(f.class, channel);
            if f.score < threshold {
                continue;
            }
            (mode, policy_token(mode, f.class, value, tokenizer, vault)?)
        };
        if let Some(token) = &token {
            out.push_str(&text[at..f.start]);
            out.push_str(token);
            at = f.end;
        }
        applied.push(Applied {
            class: f.class,
            start: f.start,
            end: f.end,
            score: f.score,
            mode,
            token,
        });
    }
    out.push_str(&text[at..]);
    Ok(Redaction { text: out, applied })
}

/// The token `mode` puts in place of `value` (none for `flag`), sealing reversible values.
fn policy_token<V: TokenVault>(
    mode: Mode,
    class: Class,
    value: &str,
    tokenizer: &Tokenizer,
    vault: &mut V,
) -> Result<Option<String>, V::Error> {
    Ok(match mode {
        Mode::Flag => None,
        Mode::Strict => Some(tokenizer.strict_token(class, value)),
        Mode::Reversible => {
            let token = tokenizer.reversible_token(class, value);
            vault.seal(class, &token, value)?;
            Some(token)
        }
    })
}

/// Where a reversible token starts and ends in `text`, from `from`: `[CLASS_R_<20 hex>]`.
pub fn next_reversible_token(text: &str, from: usize) -> Option<(usize, usize, Class)> {
    let bytes = text.as_bytes();
    let mut i = from;
    while let Some(pos) = text.get(i..).and_then(|t| t.find('[')) {
        let s = i + pos;
        if let Some((end, class)) = reversible_token_at(bytes, s) {
            return Some((s, end, class));
        }
        i = s + 1;
    }
    None
}

fn reversible_token_at(bytes: &[u8], s: usize) -> Option<(usize, Class)> {
    let rest = bytes.get(s + 1..)?;
    let name_len = rest
        .iter()
        .position(|b| !(b.is_ascii_uppercase() || *b == b'_'))?;
    // The class name ends where "_R_" starts.
    let name_and_marker = std::str::from_utf8(&rest[..name_len]).ok()?;
    let class_name = name_and_marker.strip_suffix("_R_")?;
    let class: Class = class_name.parse().ok()?;
    let hex = rest.get(name_len..name_len + REVERSIBLE_HEX)?;
    if !hex
        .iter()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b))
    {
        return None;
    }
    (rest.get(name_len + REVERSIBLE_HEX) == Some(&b']'))
        .then_some((s + 1 + name_len + REVERSIBLE_HEX + 1, class))
}

/// The longest a reversible token can be, for split-safe restoring.
pub const MAX_TOKEN_LEN: usize = 1 + 13 + 3 + REVERSIBLE_HEX + 1;

/// Replaces every reversible token in `text` whose value `lookup` returns; unknown tokens stay.
pub fn restore(text: &str, mut lookup: impl FnMut(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    while let Some((s, e, _)) = next_reversible_token(text, at) {
        out.push_str(&text[at..s]);
        match lookup(&text[s..e]) {
            Some(v) => out.push_str(&v),
            None => out.push_str(&text[s..e]),
        }
        at = e;
    }
    out.push_str(&text[at..]);
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use std::collections::HashMap;

    use super::*;
    use crate::Detector;
    use crate::policy::Policy;

    #[derive(Default)]
    struct MemVault(HashMap<String, String>);
    impl TokenVault for MemVault {
        type Error = std::convert::Infallible;
        fn seal(&mut self, _: Class, token: &str, value: &str) -> Result<(), Self::Error> {
            self.0.insert(token.to_owned(), value.to_owned());
            Ok(())
        }
    }

    #[test]
    fn strict_tokens_are_stable_per_tenant_and_normalised() {
        let a = Tokenizer::new(&[1; 32]).unwrap();
        let b = Tokenizer::new(&[2; 32]).unwrap();
        assert_eq!(
            a.strict_token(Class::Phone, "(212) 555-0187"),
            a.strict_token(Class::Phone, "212-555-0187")
        );
        assert_ne!(
            a.strict_token(Class::Phone, "212-555-0187"),
            b.strict_token(Class::Phone, "212-555-0187")
        );
        assert_ne!(
            a.strict_token(Class::Email, "x@y.io"),
            a.reversible_token(Class::Email, "x@y.io")
        );
        assert!(
            a.strict_token(Class::Email, "x@y.io")
                .starts_with("[EMAIL_")
        );
    }

    #[test]
    fn reversible_round_trip_and_flag_passes_through() {
        let d = Detector::new().unwrap();
        let t = Tokenizer::new(&[7; 32]).unwrap();
        let policy: Policy = serde_json::from_str(
            r#"{"default":{"mode":"reversible","threshold":0.3},"rules":[{"class":"HEALTH","mode":"flag"}]}"#,
        )
        .unwrap();
        let policy = policy.compile().unwrap();
        let text = "Email jane.doe@example.com about her asthma, or call (212) 555-0187.";
        let mut vault = MemVault::default();
        let r = redact(
            text,
            &d.scan(text),
            &policy,
            Channel::Prompt,
            &t,
            &mut vault,
        )
        .unwrap();
        assert!(!r.text.contains("jane.doe@example.com"), "{}", r.text);
        assert!(!r.text.contains("555-0187"));
        assert!(r.text.contains("asthma"), "flag passes through");
        assert!(
            r.applied
                .iter()
                .any(|a| a.class == Class::Health && a.mode == Mode::Flag && a.token.is_none())
        );
        let back = restore(&r.text, |tok| vault.0.get(tok).cloned());
        assert_eq!(back, text);
    }

    #[test]
    fn reversible_without_a_vault_fails_closed() {
        let d = Detector::new().unwrap();
        let t = Tokenizer::new(&[7; 32]).unwrap();
        let policy: Policy =
            serde_json::from_str(r#"{"default":{"mode":"reversible","threshold":0.3}}"#).unwrap();
        let text = "write to jane.doe@example.com";
        assert!(
            redact(
                text,
                &d.scan(text),
                &policy.compile().unwrap(),
                Channel::Prompt,
                &t,
                &mut NoVault
            )
            .is_err()
        );
    }
}
