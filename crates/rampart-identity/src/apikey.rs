//! API keys: `rmp_live_<id>_<secret><checksum>`.
//!
//! Only a keyed hash (HMAC-SHA-256 under the server's pepper) is stored; the key itself is shown
//! once, at creation. The public id locates the stored hash; the checksum lets secret scanners
//! (and the server, before touching the database) recognise a real key. A scanner can match
//! `rmp_live_[0-9a-z]{12}_[0-9A-Za-z]{38}`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::opaque::{Format, is_id, opaque_credential};

const FORMAT: Format = Format {
    prefix: "rmp_live_",
    id_len: 12,
};

/// Public identifier of an API key (12 lowercase alphanumerics).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ApiKeyId(String);

impl ApiKeyId {
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The subject (`sub`) of tokens minted from this key.
    #[must_use]
    pub fn subject(&self) -> String {
        format!("apikey:{}", self.0)
    }
}

impl FromStr for ApiKeyId {
    type Err = rampart_types::IdParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.len() == FORMAT.id_len && is_id(s) {
            Ok(Self(s.to_owned()))
        } else {
            Err(rampart_types::IdParseError {
                kind: rampart_types::truncate_for_display(s),
                what: "api key id",
            })
        }
    }
}

impl fmt::Display for ApiKeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for ApiKeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ApiKeyId({})", self.0)
    }
}

impl Serialize for ApiKeyId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for ApiKeyId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

opaque_credential!(
    /// A whole API key, as presented by a client or just generated.
    ApiKey,
    id = ApiKeyId,
    format = FORMAT,
    hash_label = b"rampart api key v1\0",
);

#[cfg(test)]
mod tests {
    use super::*;
    use rampart_crypto::HmacKey;

    fn pepper() -> HmacKey {
        HmacKey::new(vec![42; 32]).unwrap()
    }

    #[test]
    fn shape_matches_the_documented_scanner_pattern() {
        let k = ApiKey::generate().unwrap();
        let s = k.expose();
        assert!(s.starts_with("rmp_live_"));
        assert_eq!(s.len(), 60);
        assert_eq!(&s[21..22], "_");
        assert!(
            s[9..21]
                .bytes()
                .all(|b| b.is_ascii_digit() || b.is_ascii_lowercase())
        );
        assert!(s[22..].bytes().all(|b| b.is_ascii_alphanumeric()));
        assert!(!format!("{k:?}").contains(&s[22..]));
    }

    #[test]
    fn hash_matches_only_the_same_key() {
        let p = pepper();
        let k = ApiKey::generate().unwrap();
        let stored = k.hash(&p);
        let again = ApiKey::parse(k.expose()).unwrap();
        assert!(again.matches(&p, &stored));
        let other = ApiKey::generate().unwrap();
        assert!(!other.matches(&p, &stored));
        let other_pepper = HmacKey::new(vec![43; 32]).unwrap();
        assert!(!again.matches(&other_pepper, &stored));
    }

    #[test]
    fn malformed_keys_do_not_parse() {
        let k = ApiKey::generate().unwrap();
        let s = k.expose();
        for bad in [
            "",
            "rmp_live_",
            &s[..59],
            &format!("{s}x"),
            &s.replace("rmp_live_", "rmp_test_"),
            &s.to_uppercase(),
        ] {
            assert!(ApiKey::parse(bad).is_none(), "{bad}");
        }
    }
}
