//! The shared shape of Rampart's opaque credentials: `<prefix><id>_<secret><checksum>`.
//!
//! * `prefix` names the kind (`rmp_live_`, `rmp_rt_`), so secret scanners can find leaked ones;
//! * `id` is public (lowercase alphanumerics) and locates the stored hash;
//! * `secret` is 32 base62 characters (≈190 bits);
//! * `checksum` is the CRC-32 of everything before it in 6 base62 digits, so a scanner — or the
//!   server, before any database lookup — can tell a real credential from a random string.

use rampart_crypto::{CryptoError, HmacKey, MAC_LEN, Secret, random_string};

const ID_ALPHABET: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
const BASE62: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
pub(crate) const SECRET_LEN: usize = 32;
const CHECKSUM_LEN: usize = 6;

pub(crate) struct Format {
    pub prefix: &'static str,
    pub id_len: usize,
}

impl Format {
    pub fn total_len(&self) -> usize {
        self.prefix.len() + self.id_len + 1 + SECRET_LEN + CHECKSUM_LEN
    }

    pub fn random_id(&self) -> Result<String, CryptoError> {
        random_string(ID_ALPHABET, self.id_len)
    }

    /// A new credential with the given id.
    pub fn generate(&self, id: &str) -> Result<Secret<String>, CryptoError> {
        let secret = Secret::new(random_string(BASE62, SECRET_LEN)?);
        let mut s = String::with_capacity(self.total_len());
        s.push_str(self.prefix);
        s.push_str(id);
        s.push('_');
        s.push_str(secret.expose());
        let crc = checksum(s.as_bytes());
        s.push_str(&crc);
        Ok(Secret::new(s))
    }

    /// The id of a well-formed credential with a valid checksum, else `None`.
    pub fn parse_id<'a>(&self, s: &'a str) -> Option<&'a str> {
        if s.len() != self.total_len() || !s.is_ascii() {
            return None;
        }
        let rest = s.strip_prefix(self.prefix)?;
        let (id, rest) = rest.split_at(self.id_len);
        let rest = rest.strip_prefix('_')?;
        if !is_id(id) || !rest.bytes().all(|b| BASE62.contains(&b)) {
            return None;
        }
        let body_len = s.len() - CHECKSUM_LEN;
        // Not secret-dependent in a useful way: the checksum is public information about the
        // string, and a mismatch only says "this is not a credential".
        if checksum(&s.as_bytes()[..body_len]) != s[body_len..] {
            return None;
        }
        Some(id)
    }
}

/// A whole credential of some [`Format`]: its public id and the full secret text.
pub(crate) struct Credential {
    id: String,
    text: Secret<String>,
}

impl Credential {
    pub fn generate(format: &Format) -> Result<Self, CryptoError> {
        let id = format.random_id()?;
        let text = format.generate(&id)?;
        Ok(Self { id, text })
    }

    pub fn parse(format: &Format, presented: &str) -> Option<Self> {
        let id = format.parse_id(presented)?.to_owned();
        Some(Self {
            id,
            text: Secret::new(presented.to_owned()),
        })
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn expose(&self) -> &str {
        self.text.expose()
    }

    /// The stored form: HMAC-SHA-256 under the pepper, domain-separated by `label`.
    pub fn hash(&self, label: &[u8], pepper: &HmacKey) -> [u8; MAC_LEN] {
        pepper.sign(&[label, self.text.expose().as_bytes()])
    }

    /// Whether `stored` is this credential's hash (constant time).
    pub fn matches(&self, label: &[u8], pepper: &HmacKey, stored: &[u8]) -> bool {
        pepper.verify(&[label, self.text.expose().as_bytes()], stored)
    }
}

/// Defines a credential type over [`Credential`]: `$name` holds a `$id` (a tuple struct over
/// `String`, defined beside it) and the secret text; it cannot be printed.
macro_rules! opaque_credential {
    ($(#[$meta:meta])* $name:ident, id = $id:ident, format = $format:expr, hash_label = $label:expr $(,)?) => {
        $(#[$meta])*
        pub struct $name {
            id: $id,
            credential: $crate::opaque::Credential,
        }

        impl $name {
            fn from_credential(credential: $crate::opaque::Credential) -> Self {
                Self {
                    id: $id(credential.id().to_owned()),
                    credential,
                }
            }

            /// A new credential with a fresh random id.
            pub fn generate() -> Result<Self, rampart_crypto::CryptoError> {
                $crate::opaque::Credential::generate(&$format).map(Self::from_credential)
            }

            /// Parses a presented credential; `None` unless it has this kind's shape and a valid
            /// checksum.
            #[must_use]
            pub fn parse(presented: &str) -> Option<Self> {
                $crate::opaque::Credential::parse(&$format, presented).map(Self::from_credential)
            }

            #[must_use]
            pub fn id(&self) -> &$id {
                &self.id
            }

            /// The full text, to hand to its owner once.
            #[must_use]
            pub fn expose(&self) -> &str {
                self.credential.expose()
            }

            /// The stored form: HMAC-SHA-256 under the server's pepper.
            #[must_use]
            pub fn hash(&self, pepper: &rampart_crypto::HmacKey) -> [u8; rampart_crypto::MAC_LEN] {
                self.credential.hash($label, pepper)
            }

            /// Whether `stored` is this credential's hash (constant time).
            #[must_use]
            pub fn matches(&self, pepper: &rampart_crypto::HmacKey, stored: &[u8]) -> bool {
                self.credential.matches($label, pepper, stored)
            }
        }

        impl std::fmt::Debug for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, concat!(stringify!($name), "({}, [REDACTED])"), self.id)
            }
        }
    };
}
pub(crate) use opaque_credential;

pub(crate) fn is_id(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| ID_ALPHABET.contains(&b))
}

fn checksum(body: &[u8]) -> String {
    let mut n = crc32fast::hash(body);
    let mut digits = [b'0'; CHECKSUM_LEN];
    for d in digits.iter_mut().rev() {
        *d = BASE62[(n % 62) as usize];
        n /= 62;
    }
    String::from_utf8_lossy(&digits).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const F: Format = Format {
        prefix: "rmp_test_",
        id_len: 12,
    };

    #[test]
    fn generated_credentials_parse_back_to_their_id() {
        let id = F.random_id().unwrap();
        let cred = F.generate(&id).unwrap();
        assert_eq!(cred.expose().len(), F.total_len());
        assert_eq!(F.parse_id(cred.expose()), Some(id.as_str()));
    }

    proptest! {
        #[test]
        fn any_single_character_change_is_caught(pos in 0usize..60, c in proptest::sample::select(BASE62)) {
            let id = F.random_id().unwrap();
            let cred = F.generate(&id).unwrap();
            let mut bytes = cred.expose().as_bytes().to_vec();
            prop_assume!(bytes[pos] != c);
            bytes[pos] = c;
            let changed = String::from_utf8(bytes).unwrap();
            prop_assert_eq!(F.parse_id(&changed), None);
        }
    }
}
