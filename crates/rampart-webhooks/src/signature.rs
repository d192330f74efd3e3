//! The `webhook-signature` header: what is signed, how several signatures travel together, and
//! the checks a receiver makes.

use base64::Engine;

use crate::keys::{KeyError, PublicKey, SecretKey, SigningSecret, WebhookSecret, b64};
use crate::replay::{Claim, ReplayGuard};

/// How far a `webhook-timestamp` may be from the receiver's clock, either way.
pub const TOLERANCE_SECONDS: i64 = 5 * 60;
/// Longest `webhook-id` accepted (the ids Rampart makes have 30 characters).
const MAX_ID_LEN: usize = 256;
/// Most signatures read from one header (a rotation sends two or three).
const MAX_SIGNATURES: usize = 16;

/// The bytes that are signed: `{id}.{timestamp}.{body}`.
#[must_use]
pub fn signed_content(id: &str, timestamp: i64, body: &[u8]) -> Vec<u8> {
    let ts = timestamp.to_string();
    let mut out = Vec::with_capacity(id.len() + ts.len() + body.len() + 2);
    out.extend_from_slice(id.as_bytes());
    out.push(b'.');
    out.extend_from_slice(ts.as_bytes());
    out.push(b'.');
    out.extend_from_slice(body);
    out
}

/// Signs with every key it holds (during a rotation, the new and the previous one), so a
/// receiver that knows either accepts the message.
#[derive(Debug)]
pub struct Signer {
    keys: Vec<SigningSecret>,
}

impl Signer {
    #[must_use]
    pub fn new(keys: Vec<SigningSecret>) -> Self {
        Self { keys }
    }

    /// The `webhook-signature` value for this message: `v1,<base64>` per symmetric key and
    /// `v1a,<base64>` per Ed25519 key, separated by spaces.
    #[must_use]
    pub fn sign(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        let content = signed_content(id, timestamp, body);
        let mut out = String::new();
        for key in &self.keys {
            if !out.is_empty() {
                out.push(' ');
            }
            match key {
                SigningSecret::Symmetric(s) => {
                    out.push_str("v1,");
                    out.push_str(&b64().encode(s.hmac().sign(&[&content])));
                }
                SigningSecret::Ed25519(k) => {
                    out.push_str("v1a,");
                    out.push_str(&b64().encode(k.sign(&content)));
                }
            }
        }
        out
    }
}

/// A key a receiver checks signatures with.
#[derive(Debug, Clone)]
pub enum VerifyKey {
    Symmetric(WebhookSecret),
    Ed25519(PublicKey),
}

impl VerifyKey {
    /// Reads `whsec_…`, `whpk_…`, or `whsk_…` (whose public half is used).
    pub fn parse(text: &str) -> Result<Self, KeyError> {
        let t = text.trim();
        if t.starts_with("whpk_") {
            PublicKey::parse(t).map(Self::Ed25519)
        } else if t.starts_with("whsk_") {
            SecretKey::parse(t).map(|k| Self::Ed25519(k.public_key()))
        } else {
            WebhookSecret::parse(t).map(Self::Symmetric)
        }
    }
}

/// The three headers as received (`None` when absent).
#[derive(Debug, Clone, Copy, Default)]
pub struct Headers<'a> {
    pub id: Option<&'a str>,
    pub timestamp: Option<&'a str>,
    pub signature: Option<&'a str>,
}

/// A message whose headers, timestamp and signature passed. Only [`Verifier`] makes one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    id: String,
    timestamp: i64,
}

impl Verified {
    #[must_use]
    pub fn id(&self) -> &str {
        &self.id
    }

    #[must_use]
    pub fn timestamp(&self) -> i64 {
        self.timestamp
    }
}

/// Which check a message failed. The text says which, never anything secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    #[error("the `{0}` header is missing")]
    MissingHeader(&'static str),
    #[error("the `webhook-id` header is empty, longer than 256 characters or not printable ASCII")]
    InvalidId,
    #[error("the `webhook-timestamp` header is not a whole number of seconds since 1970")]
    InvalidTimestamp,
    #[error("the message timestamp is more than 5 minutes in the past")]
    TimestampTooOld,
    #[error("the message timestamp is more than 5 minutes in the future")]
    TimestampTooNew,
    #[error("no signature in `webhook-signature` matches the message")]
    NoMatchingSignature,
    #[error("a message with this `webhook-id` was already accepted within the tolerance window")]
    Replayed,
    #[error("too many messages are inside the replay window to remember another one")]
    ReplayWindowFull,
}

impl Rejection {
    /// The machine-readable kind, as the `code` of a problem body.
    #[must_use]
    pub fn code(&self) -> &'static str {
        match self {
            Self::MissingHeader(_) => "webhook_header_missing",
            Self::InvalidId => "webhook_id_invalid",
            Self::InvalidTimestamp => "webhook_timestamp_invalid",
            Self::TimestampTooOld => "webhook_timestamp_too_old",
            Self::TimestampTooNew => "webhook_timestamp_too_new",
            Self::NoMatchingSignature => "webhook_signature_mismatch",
            Self::Replayed => "webhook_replayed",
            Self::ReplayWindowFull => "webhook_replay_window_full",
        }
    }

    /// The HTTP status a receiver answers with: 401, except when the replay window is full,
    /// which is the receiver's trouble (503, so the sender retries).
    #[must_use]
    pub fn status(&self) -> u16 {
        match self {
            Self::ReplayWindowFull => 503,
            _ => 401,
        }
    }
}

/// Checks received messages against a set of keys.
#[derive(Debug, Clone)]
pub struct Verifier {
    keys: Vec<VerifyKey>,
    tolerance: i64,
}

impl Verifier {
    #[must_use]
    pub fn new(keys: Vec<VerifyKey>) -> Self {
        Self {
            keys,
            tolerance: TOLERANCE_SECONDS,
        }
    }

    /// The tolerance in seconds (the specification's is 5 minutes).
    #[must_use]
    pub fn with_tolerance(mut self, seconds: i64) -> Self {
        self.tolerance = seconds.max(0);
        self
    }

    #[must_use]
    pub fn tolerance(&self) -> i64 {
        self.tolerance
    }

    /// Headers, timestamp against `now` (Unix seconds) and signature — but not replay: use
    /// [`Verifier::verify_once`] for that.
    pub fn verify(&self, h: Headers<'_>, body: &[u8], now: i64) -> Result<Verified, Rejection> {
        let id = h.id.ok_or(Rejection::MissingHeader(crate::HEADER_ID))?;
        let ts = h
            .timestamp
            .ok_or(Rejection::MissingHeader(crate::HEADER_TIMESTAMP))?;
        let sig = h
            .signature
            .ok_or(Rejection::MissingHeader(crate::HEADER_SIGNATURE))?;
        if id.is_empty() || id.len() > MAX_ID_LEN || !id.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(Rejection::InvalidId);
        }
        let ts = ts.trim();
        if ts.is_empty() || ts.len() > 12 || !ts.bytes().all(|b| b.is_ascii_digit()) {
            return Err(Rejection::InvalidTimestamp);
        }
        let timestamp: i64 = ts.parse().map_err(|_| Rejection::InvalidTimestamp)?;
        if timestamp < now.saturating_sub(self.tolerance) {
            return Err(Rejection::TimestampTooOld);
        }
        if timestamp > now.saturating_add(self.tolerance) {
            return Err(Rejection::TimestampTooNew);
        }
        let content = signed_content(id, timestamp, body);
        // Every offered signature is checked against every key (no early exit on a key that
        // matched the version but not the bytes), each comparison in constant time.
        let mut ok = false;
        for entry in sig
            .split(' ')
            .filter(|s| !s.is_empty())
            .take(MAX_SIGNATURES)
        {
            let Some((version, value)) = entry.split_once(',') else {
                continue;
            };
            let Ok(bytes) = b64().decode(value) else {
                continue;
            };
            for key in &self.keys {
                ok |= match (version, key) {
                    ("v1", VerifyKey::Symmetric(s)) => s.hmac().verify(&[&content], &bytes),
                    ("v1a", VerifyKey::Ed25519(pk)) => pk.verify(&content, &bytes),
                    _ => false,
                };
            }
        }
        if !ok {
            return Err(Rejection::NoMatchingSignature);
        }
        Ok(Verified {
            id: id.to_owned(),
            timestamp,
        })
    }

    /// [`Verifier::verify`], then claims the id in `guard` until the message's timestamp leaves
    /// the window, so the same message is accepted once. The signature is checked first: a
    /// forger cannot fill the guard with ids.
    pub fn verify_once(
        &self,
        h: Headers<'_>,
        body: &[u8],
        now: i64,
        guard: &dyn ReplayGuard,
    ) -> Result<Verified, Rejection> {
        let v = self.verify(h, body, now)?;
        match guard.claim(&v.id, v.timestamp.saturating_add(self.tolerance), now) {
            Claim::Claimed => Ok(v),
            Claim::Seen => Err(Rejection::Replayed),
            Claim::Full => Err(Rejection::ReplayWindowFull),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;
    use crate::MemoryReplayGuard;

    /// The known-answer vector the Standard Webhooks reference libraries test against.
    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const TS: i64 = 1_614_265_330;
    const BODY: &[u8] = br#"{"test": 2432232314}"#;
    const EXPECTED: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    fn headers<'a>(sig: &'a str, ts: &'a str) -> Headers<'a> {
        Headers {
            id: Some(ID),
            timestamp: Some(ts),
            signature: Some(sig),
        }
    }

    #[test]
    fn known_answer() {
        let signer = Signer::new(vec![SigningSecret::parse(SECRET).unwrap()]);
        assert_eq!(signer.sign(ID, TS, BODY), EXPECTED);
        let v = Verifier::new(vec![VerifyKey::parse(SECRET).unwrap()]);
        let ok = v.verify(headers(EXPECTED, "1614265330"), BODY, TS).unwrap();
        assert_eq!((ok.id(), ok.timestamp()), (ID, TS));
    }

    #[test]
    fn each_check_fails_on_its_own() {
        let v = Verifier::new(vec![VerifyKey::parse(SECRET).unwrap()]);
        let ts = "1614265330";
        let cases: [(Headers<'_>, &[u8], i64, Rejection); 9] = [
            (
                Headers {
                    id: None,
                    ..headers(EXPECTED, ts)
                },
                BODY,
                TS,
                Rejection::MissingHeader("webhook-id"),
            ),
            (
                Headers {
                    timestamp: None,
                    ..headers(EXPECTED, ts)
                },
                BODY,
                TS,
                Rejection::MissingHeader("webhook-timestamp"),
            ),
            (
                Headers {
                    signature: None,
                    ..headers(EXPECTED, ts)
                },
                BODY,
                TS,
                Rejection::MissingHeader("webhook-signature"),
            ),
            (
                headers(EXPECTED, "16142653.0"),
                BODY,
                TS,
                Rejection::InvalidTimestamp,
            ),
            (
                headers(EXPECTED, ts),
                BODY,
                TS + 301,
                Rejection::TimestampTooOld,
            ),
            (
                headers(EXPECTED, ts),
                BODY,
                TS - 301,
                Rejection::TimestampTooNew,
            ),
            (
                headers(EXPECTED, ts),
                br#"{"test": 2432232315}"#,
                TS,
                Rejection::NoMatchingSignature,
            ),
            (
                headers("v1a,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=", ts),
                BODY,
                TS,
                Rejection::NoMatchingSignature,
            ),
            (
                Headers {
                    id: Some("msg with space"),
                    ..headers(EXPECTED, ts)
                },
                BODY,
                TS,
                Rejection::InvalidId,
            ),
        ];
        for (h, body, now, want) in cases {
            assert_eq!(v.verify(h, body, now).unwrap_err(), want);
        }
        // The window's edges are inside it.
        assert!(v.verify(headers(EXPECTED, ts), BODY, TS + 300).is_ok());
        assert!(v.verify(headers(EXPECTED, ts), BODY, TS - 300).is_ok());
    }

    #[test]
    fn rotation_signs_with_both_and_either_verifies() {
        let old = WebhookSecret::generate().unwrap();
        let new = WebhookSecret::generate().unwrap();
        let ed = SecretKey::generate().unwrap();
        let signer = Signer::new(vec![
            SigningSecret::Symmetric(new.clone()),
            SigningSecret::Symmetric(old.clone()),
            SigningSecret::Ed25519(SecretKey::parse(ed.to_text().expose()).unwrap()),
        ]);
        let sig = signer.sign("msg_1", 100, b"body");
        assert_eq!(sig.split(' ').count(), 3);
        for key in [
            VerifyKey::Symmetric(old),
            VerifyKey::Symmetric(new),
            VerifyKey::Ed25519(ed.public_key()),
        ] {
            let v = Verifier::new(vec![key]);
            let h = Headers {
                id: Some("msg_1"),
                timestamp: Some("100"),
                signature: Some(&sig),
            };
            assert!(v.verify(h, b"body", 100).is_ok());
        }
        let stranger = Verifier::new(vec![VerifyKey::Symmetric(
            WebhookSecret::generate().unwrap(),
        )]);
        let h = Headers {
            id: Some("msg_1"),
            timestamp: Some("100"),
            signature: Some(&sig),
        };
        assert_eq!(
            stranger.verify(h, b"body", 100).unwrap_err(),
            Rejection::NoMatchingSignature
        );
    }

    #[test]
    fn a_message_is_accepted_once_inside_the_window() {
        let v = Verifier::new(vec![VerifyKey::parse(SECRET).unwrap()]);
        let guard = MemoryReplayGuard::new(10);
        let h = headers(EXPECTED, "1614265330");
        assert!(v.verify_once(h, BODY, TS, &guard).is_ok());
        assert_eq!(
            v.verify_once(h, BODY, TS + 10, &guard).unwrap_err(),
            Rejection::Replayed
        );
        // A forged signature is refused before the guard sees the id.
        let forged = headers("v1,AAAA", "1614265330");
        assert_eq!(
            v.verify_once(forged, BODY, TS, &guard).unwrap_err(),
            Rejection::NoMatchingSignature
        );
        // Released (the handler failed): the sender's retry goes through.
        guard.release(ID);
        assert!(v.verify_once(h, BODY, TS + 20, &guard).is_ok());
    }

    proptest::proptest! {
        #[test]
        fn any_change_to_id_timestamp_or_body_is_refused(
            body in proptest::collection::vec(proptest::num::u8::ANY, 0..64),
            flip in 0usize..64,
            ts in 1_000_000_000i64..2_000_000_000,
        ) {
            let s = WebhookSecret::generate().unwrap();
            let sig = Signer::new(vec![SigningSecret::Symmetric(s.clone())]).sign("msg_a", ts, &body);
            let v = Verifier::new(vec![VerifyKey::Symmetric(s)]);
            let ts_text = ts.to_string();
            let h = Headers { id: Some("msg_a"), timestamp: Some(&ts_text), signature: Some(&sig) };
            proptest::prop_assert!(v.verify(h, &body, ts).is_ok());
            if !body.is_empty() {
                let mut changed = body.clone();
                let i = flip % changed.len();
                changed[i] ^= 1;
                proptest::prop_assert!(v.verify(h, &changed, ts).is_err());
            }
            let h2 = Headers { id: Some("msg_b"), ..h };
            proptest::prop_assert!(v.verify(h2, &body, ts).is_err());
            let ts2 = (ts + 1).to_string();
            let h3 = Headers { timestamp: Some(&ts2), ..h };
            proptest::prop_assert!(v.verify(h3, &body, ts).is_err());
        }
    }
}
