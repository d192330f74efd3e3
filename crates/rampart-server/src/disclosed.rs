//! [`Disclosed`]: a secret on its way into a response body — the one place a secret may be
//! serialized. It cannot be printed with `Debug` or `Display`, and the server's copy is
//! zeroized when dropped. (The serialized body itself is not: a known limit of JSON over HTTP.)

use rampart_crypto::{Secret, SecretString};
use serde::{Serialize, Serializer};

use crate::error::ApiError;

pub struct Disclosed(SecretString);

/// A stored value as text, or `None` if it is not UTF-8 (values are stored as UTF-8).
#[must_use]
pub fn stored_text(value: &Secret<Vec<u8>>) -> Option<SecretString> {
    std::str::from_utf8(value.expose())
        .ok()
        .map(|s| SecretString::new(s.to_owned()))
}

impl Disclosed {
    #[must_use]
    pub fn new(secret: SecretString) -> Self {
        Self(secret)
    }

    /// A stored value as text (values are stored as UTF-8; anything else is corruption).
    pub fn utf8(value: &Secret<Vec<u8>>) -> Result<Self, ApiError> {
        stored_text(value)
            .map(Self)
            .ok_or_else(|| ApiError::internal("a stored value is not UTF-8"))
    }

    /// The text, for the few places that reshape it before it is serialized.
    #[must_use]
    pub fn expose(&self) -> &str {
        self.0.expose()
    }
}

impl Serialize for Disclosed {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.0.expose())
    }
}

impl utoipa::PartialSchema for Disclosed {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        String::schema()
    }
}

impl utoipa::ToSchema for Disclosed {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serializes_the_text_and_nothing_else_can_print_it() {
        let d = Disclosed::utf8(&Secret::new(b"canary-value".to_vec())).unwrap();
        assert_eq!(serde_json::to_string(&d).unwrap(), "\"canary-value\"");
        assert!(Disclosed::utf8(&Secret::new(vec![0xff])).is_err());
    }
}
