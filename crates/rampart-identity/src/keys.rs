//! Signing keys for access tokens, the set of keys that verify them, and its JWKS form.
//!
//! Every key is named by its RFC 7638 JWK thumbprint, so a `kid` is derived from the key itself
//! and can never point at a different key.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rampart_crypto::{SigningKey, VerifyingKey, sha256};
use rampart_types::Timestamp;
use serde::{Deserialize, Serialize};

/// The RFC 7638 thumbprint of an Ed25519 public key (RFC 8037 §2), base64url without padding.
#[must_use]
pub fn jwk_thumbprint(key: &VerifyingKey) -> String {
    // RFC 7638 §3: the required members in lexicographic order, no whitespace.
    let canonical = format!(
        r#"{{"crv":"Ed25519","kty":"OKP","x":"{}"}}"#,
        URL_SAFE_NO_PAD.encode(key.as_bytes())
    );
    URL_SAFE_NO_PAD.encode(sha256(canonical.as_bytes()))
}

/// The key that signs new access tokens.
pub struct TokenSigner {
    kid: String,
    key: SigningKey,
}

impl TokenSigner {
    #[must_use]
    pub fn new(key: SigningKey) -> Self {
        let kid = jwk_thumbprint(&key.verifying_key());
        Self { kid, key }
    }

    #[must_use]
    pub fn kid(&self) -> &str {
        &self.kid
    }

    #[must_use]
    pub fn verifying_key(&self) -> VerifyingKey {
        self.key.verifying_key()
    }

    /// The secret seed, to seal at rest.
    #[must_use]
    pub fn seed(&self) -> rampart_crypto::Secret<[u8; 32]> {
        self.key.seed()
    }

    pub(crate) fn sign(&self, msg: &[u8]) -> [u8; rampart_crypto::SIGNATURE_LEN] {
        self.key.sign(msg)
    }
}

impl std::fmt::Debug for TokenSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TokenSigner(kid: {})", self.kid)
    }
}

/// A public key that verifies access tokens, until `verify_until` (when set).
#[derive(Debug, Clone)]
pub struct VerificationKey {
    pub kid: String,
    pub key: VerifyingKey,
    /// The key was retired; tokens it signed stop verifying at this time, which is after the last
    /// of them expired.
    pub verify_until: Option<Timestamp>,
}

impl VerificationKey {
    #[must_use]
    pub fn new(key: VerifyingKey, verify_until: Option<Timestamp>) -> Self {
        Self {
            kid: jwk_thumbprint(&key),
            key,
            verify_until,
        }
    }

    #[must_use]
    pub fn is_live(&self, now: Timestamp) -> bool {
        self.verify_until.is_none_or(|until| now < until)
    }
}

/// The keys that verify access tokens at some moment.
#[derive(Debug, Clone, Default)]
pub struct KeySet {
    keys: Vec<VerificationKey>,
}

impl KeySet {
    #[must_use]
    pub fn new(keys: Vec<VerificationKey>) -> Self {
        Self { keys }
    }

    /// The live key named `kid`.
    #[must_use]
    pub fn get(&self, kid: &str, now: Timestamp) -> Option<&VerifyingKey> {
        self.keys
            .iter()
            .find(|k| k.kid == kid && k.is_live(now))
            .map(|k| &k.key)
    }

    /// The JWKS document of the keys live at `now`.
    #[must_use]
    pub fn jwks(&self, now: Timestamp) -> Jwks {
        Jwks {
            keys: self
                .keys
                .iter()
                .filter(|k| k.is_live(now))
                .map(|k| Jwk::ed25519(&k.kid, &k.key))
                .collect(),
        }
    }

    #[must_use]
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

/// A JSON Web Key (RFC 7517) for an Ed25519 public key (RFC 8037).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jwk {
    pub kty: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crv: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alg: Option<String>,
    #[serde(default, rename = "use", skip_serializing_if = "Option::is_none")]
    pub use_: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub x: Option<String>,
}

impl Jwk {
    #[must_use]
    pub fn ed25519(kid: &str, key: &VerifyingKey) -> Self {
        Self {
            kty: "OKP".into(),
            crv: Some("Ed25519".into()),
            alg: Some("EdDSA".into()),
            use_: Some("sig".into()),
            kid: Some(kid.into()),
            x: Some(URL_SAFE_NO_PAD.encode(key.as_bytes())),
        }
    }

    /// The Ed25519 key in this JWK, if it is one that may verify signatures.
    #[must_use]
    pub fn to_verifying_key(&self) -> Option<VerifyingKey> {
        if self.kty != "OKP" || self.crv.as_deref() != Some("Ed25519") {
            return None;
        }
        if self.alg.as_deref().is_some_and(|a| a != "EdDSA")
            || self.use_.as_deref().is_some_and(|u| u != "sig")
        {
            return None;
        }
        let x = URL_SAFE_NO_PAD.decode(self.x.as_deref()?).ok()?;
        VerifyingKey::from_bytes(&x).ok()
    }
}

/// A JWK Set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jwks {
    pub keys: Vec<Jwk>,
}

impl Jwks {
    /// The Ed25519 signature keys of the set, each named by its thumbprint. A JWK whose `kid`
    /// disagrees with its thumbprint is dropped: our `kid`s are thumbprints by construction.
    #[must_use]
    pub fn to_key_set(&self) -> KeySet {
        KeySet::new(
            self.keys
                .iter()
                .filter_map(|jwk| {
                    let key = jwk.to_verifying_key()?;
                    let vk = VerificationKey::new(key, None);
                    (jwk.kid.as_deref() == Some(vk.kid.as_str())).then_some(vk)
                })
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 8037 Appendix A.3: the thumbprint of the Appendix A.2 public key.
    #[test]
    fn rfc8037_a3_thumbprint() {
        let x = URL_SAFE_NO_PAD
            .decode("11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo")
            .unwrap();
        let key = VerifyingKey::from_bytes(&x).unwrap();
        assert_eq!(
            jwk_thumbprint(&key),
            "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
        );
    }

    #[test]
    fn retired_keys_leave_the_set_when_their_time_is_up() {
        let live = TokenSigner::new(SigningKey::generate().unwrap());
        let old = TokenSigner::new(SigningKey::generate().unwrap());
        let t = Timestamp::from_unix_seconds(1000);
        let set = KeySet::new(vec![
            VerificationKey::new(live.verifying_key(), None),
            VerificationKey::new(old.verifying_key(), Some(t)),
        ]);
        assert!(
            set.get(old.kid(), Timestamp::from_unix_seconds(999))
                .is_some()
        );
        assert!(set.get(old.kid(), t).is_none());
        assert_eq!(set.jwks(Timestamp::from_unix_seconds(999)).keys.len(), 2);
        assert_eq!(set.jwks(t).keys.len(), 1);
    }

    #[test]
    fn jwks_round_trip_and_mismatched_kids_are_dropped() {
        let s = TokenSigner::new(SigningKey::generate().unwrap());
        let set = KeySet::new(vec![VerificationKey::new(s.verifying_key(), None)]);
        let mut jwks = set.jwks(Timestamp::UNIX_EPOCH);
        let json = serde_json::to_string(&jwks).unwrap();
        assert!(json.contains(r#""kty":"OKP""#) && json.contains(r#""use":"sig""#));
        assert_eq!(jwks.to_key_set().len(), 1);
        jwks.keys[0].kid = Some("other".into());
        assert!(jwks.to_key_set().is_empty());
    }
}
