//! Key formats: `whsec_` + base64 of a symmetric secret, `whsk_` + base64 of an Ed25519 secret
//! key and `whpk_` + base64 of its public key.

use base64::Engine;
use base64::alphabet::STANDARD;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use rampart_crypto::{HmacKey, Secret, SigningKey, VerifyingKey, random_array};
use zeroize::Zeroize;

/// Standard base64, with or without padding (senders differ; the reference libraries pad).
const B64: GeneralPurpose = GeneralPurpose::new(
    &STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

const SYMMETRIC_PREFIX: &str = "whsec_";
const SECRET_KEY_PREFIX: &str = "whsk_";
const PUBLIC_KEY_PREFIX: &str = "whpk_";
/// The specification asks for 24 to 64 bytes of secret.
const MIN_SECRET: usize = 24;
const MAX_SECRET: usize = 64;
/// What Rampart generates.
const GENERATED_SECRET: usize = 32;

/// Why a key could not be read. Never carries key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("a webhook secret starts with `whsec_`, an Ed25519 secret key with `whsk_`")]
    UnknownPrefix,
    #[error("a webhook public key starts with `whpk_`")]
    NotAPublicKey,
    #[error("the key is not valid base64")]
    Base64,
    #[error("a webhook secret has 24 to 64 bytes, this one has {0}")]
    SecretLength(usize),
    #[error("an Ed25519 key has {expected} bytes, this one has {got}")]
    Ed25519Length { expected: &'static str, got: usize },
    #[error("the public half of the Ed25519 secret key does not match its seed")]
    Ed25519Mismatch,
    #[error("not an Ed25519 public key")]
    Ed25519Point,
    #[error("no randomness: {0}")]
    Random(String),
}

fn decode(text: &str) -> Result<Secret<Vec<u8>>, KeyError> {
    B64.decode(text.trim())
        .map(Secret::new)
        .map_err(|_| KeyError::Base64)
}

/// A symmetric (`v1`, HMAC-SHA256) secret. No `Debug` of its bytes, zeroized on drop.
#[derive(Clone)]
pub struct WebhookSecret {
    raw: Secret<Vec<u8>>,
    key: HmacKey,
}

impl WebhookSecret {
    /// Reads `whsec_…` (the prefix may be left off, as the reference libraries allow).
    pub fn parse(text: &str) -> Result<Self, KeyError> {
        let body = text.trim().strip_prefix(SYMMETRIC_PREFIX).unwrap_or(text);
        Self::from_bytes(decode(body)?.expose().clone())
    }

    /// A secret from its raw bytes (24 to 64 of them).
    pub fn from_bytes(mut bytes: Vec<u8>) -> Result<Self, KeyError> {
        if !(MIN_SECRET..=MAX_SECRET).contains(&bytes.len()) {
            let n = bytes.len();
            bytes.zeroize();
            return Err(KeyError::SecretLength(n));
        }
        let raw = Secret::new(bytes);
        let key = HmacKey::from_protocol_key(raw.expose().clone())
            .map_err(|_| KeyError::SecretLength(0))?;
        Ok(Self { raw, key })
    }

    /// A new random secret of 32 bytes.
    pub fn generate() -> Result<Self, KeyError> {
        let bytes =
            random_array::<GENERATED_SECRET>().map_err(|e| KeyError::Random(e.to_string()))?;
        Self::from_bytes(bytes.to_vec())
    }

    /// `whsec_…`, to show once or to seal at rest.
    #[must_use]
    pub fn to_text(&self) -> Secret<String> {
        Secret::new(format!(
            "{SYMMETRIC_PREFIX}{}",
            B64.encode(self.raw.expose())
        ))
    }

    pub(crate) fn hmac(&self) -> &HmacKey {
        &self.key
    }
}

impl std::fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WebhookSecret([REDACTED])")
    }
}

/// An Ed25519 signing key (`v1a`), written `whsk_` + base64 of the 32-byte seed followed by the
/// 32-byte public key (the libsodium layout); a bare 32-byte seed is read too.
pub struct SecretKey(SigningKey);

impl SecretKey {
    pub fn parse(text: &str) -> Result<Self, KeyError> {
        let body = text
            .trim()
            .strip_prefix(SECRET_KEY_PREFIX)
            .ok_or(KeyError::UnknownPrefix)?;
        let bytes = decode(body)?;
        let bytes = bytes.expose();
        let mut seed = Secret::new([0u8; 32]);
        match bytes.len() {
            32 | 64 => seed.expose_mut().copy_from_slice(&bytes[..32]),
            got => {
                return Err(KeyError::Ed25519Length {
                    expected: "32 or 64",
                    got,
                });
            }
        }
        let key = SigningKey::from_seed(&seed);
        if bytes.len() == 64 && key.verifying_key().as_bytes()[..] != bytes[32..] {
            return Err(KeyError::Ed25519Mismatch);
        }
        Ok(Self(key))
    }

    pub fn generate() -> Result<Self, KeyError> {
        SigningKey::generate()
            .map(Self)
            .map_err(|e| KeyError::Random(e.to_string()))
    }

    #[must_use]
    pub fn public_key(&self) -> PublicKey {
        PublicKey(self.0.verifying_key())
    }

    #[must_use]
    pub fn to_text(&self) -> Secret<String> {
        let mut bytes = Secret::new(Vec::with_capacity(64));
        bytes.expose_mut().extend_from_slice(self.0.seed().expose());
        bytes
            .expose_mut()
            .extend_from_slice(self.0.verifying_key().as_bytes());
        Secret::new(format!("{SECRET_KEY_PREFIX}{}", B64.encode(bytes.expose())))
    }

    pub(crate) fn sign(&self, msg: &[u8]) -> [u8; 64] {
        self.0.sign(msg)
    }
}

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecretKey(public: {})", self.public_key().to_text())
    }
}

/// An Ed25519 public key, `whpk_` + base64 of its 32 bytes.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct PublicKey(VerifyingKey);

impl PublicKey {
    pub fn parse(text: &str) -> Result<Self, KeyError> {
        let body = text
            .trim()
            .strip_prefix(PUBLIC_KEY_PREFIX)
            .ok_or(KeyError::NotAPublicKey)?;
        let bytes = decode(body)?;
        if bytes.expose().len() != 32 {
            return Err(KeyError::Ed25519Length {
                expected: "32",
                got: bytes.expose().len(),
            });
        }
        VerifyingKey::from_bytes(bytes.expose())
            .map(Self)
            .map_err(|_| KeyError::Ed25519Point)
    }

    #[must_use]
    pub fn to_text(&self) -> String {
        format!("{PUBLIC_KEY_PREFIX}{}", B64.encode(self.0.as_bytes()))
    }

    pub(crate) fn verify(&self, msg: &[u8], sig: &[u8]) -> bool {
        self.0.verify(msg, sig).is_ok()
    }
}

/// A key that signs: symmetric (`v1`) or Ed25519 (`v1a`).
#[derive(Debug)]
pub enum SigningSecret {
    Symmetric(WebhookSecret),
    Ed25519(SecretKey),
}

impl SigningSecret {
    /// Reads `whsec_…` or `whsk_…`.
    pub fn parse(text: &str) -> Result<Self, KeyError> {
        let t = text.trim();
        if t.starts_with(SECRET_KEY_PREFIX) {
            SecretKey::parse(t).map(Self::Ed25519)
        } else if t.starts_with(SYMMETRIC_PREFIX) {
            WebhookSecret::parse(t).map(Self::Symmetric)
        } else {
            Err(KeyError::UnknownPrefix)
        }
    }
}

pub(crate) fn b64() -> &'static GeneralPurpose {
    &B64
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    #[test]
    fn symmetric_secrets_round_trip_and_refuse_bad_input() {
        let s = WebhookSecret::generate().unwrap();
        let text = s.to_text();
        assert!(text.expose().starts_with("whsec_"));
        let again = WebhookSecret::parse(text.expose()).unwrap();
        assert_eq!(again.to_text().expose(), text.expose());
        // Unpadded base64 and a missing prefix are read as the reference libraries read them.
        let bare = text
            .expose()
            .trim_start_matches("whsec_")
            .trim_end_matches('=');
        assert_eq!(
            WebhookSecret::parse(bare).unwrap().to_text().expose(),
            text.expose()
        );
        assert_eq!(
            WebhookSecret::parse("whsec_AAAA").unwrap_err(),
            KeyError::SecretLength(3)
        );
        assert_eq!(
            WebhookSecret::parse("whsec_!!").unwrap_err(),
            KeyError::Base64
        );
        assert_eq!(format!("{s:?}"), "WebhookSecret([REDACTED])");
    }

    #[test]
    fn ed25519_keys_round_trip_and_check_their_halves() {
        let k = SecretKey::generate().unwrap();
        let text = k.to_text();
        let again = SecretKey::parse(text.expose()).unwrap();
        assert_eq!(again.public_key(), k.public_key());
        let pk = PublicKey::parse(&k.public_key().to_text()).unwrap();
        assert_eq!(pk, k.public_key());
        // A seed with someone else's public half is refused.
        let other = SecretKey::generate().unwrap();
        let mut bytes = B64.decode(&text.expose()[5..]).unwrap();
        bytes[32..].copy_from_slice(&B64.decode(&other.public_key().to_text()[5..]).unwrap());
        let forged = format!("whsk_{}", B64.encode(&bytes));
        assert_eq!(
            SecretKey::parse(&forged).unwrap_err(),
            KeyError::Ed25519Mismatch
        );
        // A bare seed is read.
        let seed = format!("whsk_{}", B64.encode(&bytes[..32]));
        assert_eq!(
            SecretKey::parse(&seed).unwrap().public_key(),
            k.public_key()
        );
        assert!(!format!("{k:?}").contains(&text.expose()[5..20]));
        assert!(matches!(
            SigningSecret::parse("sk_live_x").unwrap_err(),
            KeyError::UnknownPrefix
        ));
    }
}
