use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use zeroize::Zeroize;

/// Length of an HMAC-SHA-256 tag.
pub const MAC_LEN: usize = 32;

/// An HMAC-SHA-256 key, kept as the keyed hash state (the key itself is not retained; the state is
/// zeroized on drop).
#[derive(Clone)]
pub struct HmacKey(Hmac<Sha256>);

impl HmacKey {
    /// A key from raw bytes. HMAC accepts any length; we insist on at least 32 bytes.
    pub fn new(mut bytes: Vec<u8>) -> Result<Self, crate::CryptoError> {
        let state = if bytes.len() < 32 {
            Err(crate::CryptoError::InvalidKey(
                "an HMAC key needs at least 32 bytes",
            ))
        } else {
            <Hmac<Sha256> as KeyInit>::new_from_slice(&bytes)
                .map_err(|_| crate::CryptoError::InvalidKey("rejected HMAC key"))
        };
        bytes.zeroize();
        state.map(Self)
    }

    /// A key whose length a wire protocol fixes, not Rampart (Standard Webhooks secrets are 24 to
    /// 64 bytes, chosen by whoever made the endpoint). Only an empty key is refused.
    pub fn from_protocol_key(mut bytes: Vec<u8>) -> Result<Self, crate::CryptoError> {
        let state = if bytes.is_empty() {
            Err(crate::CryptoError::InvalidKey(
                "an HMAC key cannot be empty",
            ))
        } else {
            <Hmac<Sha256> as KeyInit>::new_from_slice(&bytes)
                .map_err(|_| crate::CryptoError::InvalidKey("rejected HMAC key"))
        };
        bytes.zeroize();
        state.map(Self)
    }

    fn keyed(&self, parts: &[&[u8]]) -> Hmac<Sha256> {
        let mut m = self.0.clone();
        for p in parts {
            m.update(p);
        }
        m
    }

    /// The tag of the concatenation of `parts`.
    #[must_use]
    pub fn sign(&self, parts: &[&[u8]]) -> [u8; MAC_LEN] {
        self.keyed(parts).finalize().into_bytes().into()
    }

    /// Whether `tag` is the tag of `parts`, compared in constant time.
    #[must_use]
    pub fn verify(&self, parts: &[&[u8]], tag: &[u8]) -> bool {
        self.keyed(parts).verify_slice(tag).is_ok()
    }
}

/// HMAC-SHA-256 of `data` under a key of any length, for protocols that fix their own key
/// schedule (AWS Signature Version 4 derives 32-byte keys from a secret of any length). Keys
/// Rampart chooses itself are [`HmacKey`]s.
pub fn hmac_sha256(key: &[u8], data: &[u8]) -> Result<[u8; MAC_LEN], crate::CryptoError> {
    let mut m = <Hmac<Sha256> as KeyInit>::new_from_slice(key)
        .map_err(|_| crate::CryptoError::InvalidKey("rejected HMAC key"))?;
    m.update(data);
    Ok(m.finalize().into_bytes().into())
}

impl std::fmt::Debug for HmacKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HmacKey([REDACTED])")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hex;

    /// RFC 4231 test case 6: a key longer than the block size. (The shorter keys of the other
    /// cases are below the 32-byte floor this type enforces.)
    #[test]
    fn rfc4231_case_6() {
        let key = HmacKey::new(vec![0xaa; 131]).unwrap();
        let data = b"Test Using Larger Than Block-Size Key - Hash Key First";
        let expected = hex("60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
        assert_eq!(key.sign(&[data]).to_vec(), expected);
        assert!(key.verify(&[&data[..10], &data[10..]], &expected));
        let mut wrong = expected.clone();
        wrong[31] ^= 1;
        assert!(!key.verify(&[data], &wrong));
        assert!(!key.verify(&[data], &expected[..31]));
    }

    /// RFC 4231 test case 2: a short key, as protocols with their own key schedule use.
    #[test]
    fn hmac_sha256_of_any_key_length() {
        assert_eq!(
            hmac_sha256(b"Jefe", b"what do ya want for nothing?")
                .unwrap()
                .to_vec(),
            hex("5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
        );
    }

    #[test]
    fn short_keys_are_refused() {
        assert!(HmacKey::new(vec![1; 31]).is_err());
        assert!(HmacKey::from_protocol_key(Vec::new()).is_err());
        let short = HmacKey::from_protocol_key(b"Jefe".to_vec()).unwrap();
        assert_eq!(
            short.sign(&[b"what do ya want ", b"for nothing?"]).to_vec(),
            hex("5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
        );
    }
}
