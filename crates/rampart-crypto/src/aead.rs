use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};

use crate::{CryptoError, Secret, random_array};

const VERSION: u8 = 1;
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;

/// Bytes a sealed value adds to its plaintext: version, nonce and tag.
pub const SEALED_OVERHEAD: usize = 1 + NONCE_LEN + TAG_LEN;

/// An AES-256-GCM key.
///
/// Sealed values are `version (1) ‖ nonce (12) ‖ ciphertext ‖ tag (16)` with a fresh random 96-bit
/// nonce each time; the associated data binds the value to where it belongs, so a ciphertext moved
/// elsewhere does not open. Random nonces bound one key to about 2^32 seals (NIST SP 800-38D).
#[derive(Clone)]
pub struct AeadKey(Aes256Gcm);

impl AeadKey {
    pub fn new(key: &[u8; 32]) -> Result<Self, CryptoError> {
        <Aes256Gcm as KeyInit>::new_from_slice(key)
            .map(Self)
            .map_err(|_| CryptoError::InvalidKey("AES-256-GCM needs a 32-byte key"))
    }

    pub fn seal(&self, aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let nonce_bytes: [u8; NONCE_LEN] = random_array()?;
        let nonce = Nonce::from(nonce_bytes);
        let ct = self
            .0
            .encrypt(
                &nonce,
                Payload {
                    msg: plaintext,
                    aad,
                },
            )
            .map_err(|_| CryptoError::InvalidKey("plaintext too long"))?;
        let mut out = Vec::with_capacity(1 + NONCE_LEN + ct.len());
        out.push(VERSION);
        out.extend_from_slice(&nonce_bytes);
        out.extend_from_slice(&ct);
        Ok(out)
    }

    pub fn open(&self, aad: &[u8], sealed: &[u8]) -> Result<Secret<Vec<u8>>, CryptoError> {
        if sealed.len() < SEALED_OVERHEAD || sealed[0] != VERSION {
            return Err(CryptoError::MalformedSealed);
        }
        let mut nonce_bytes = [0u8; NONCE_LEN];
        nonce_bytes.copy_from_slice(&sealed[1..=NONCE_LEN]);
        let nonce = Nonce::from(nonce_bytes);
        self.0
            .decrypt(
                &nonce,
                Payload {
                    msg: &sealed[1 + NONCE_LEN..],
                    aad,
                },
            )
            .map(Secret::new)
            .map_err(|_| CryptoError::Decrypt)
    }
}

impl std::fmt::Debug for AeadKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AeadKey([REDACTED])")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn key() -> AeadKey {
        AeadKey::new(&[7u8; 32]).unwrap()
    }

    #[test]
    fn seal_open_round_trip_and_nonces_differ() {
        let k = key();
        let a = k.seal(b"tenant-a/path", b"value").unwrap();
        let b = k.seal(b"tenant-a/path", b"value").unwrap();
        assert_ne!(a, b, "fresh nonce every seal");
        assert_eq!(a.len(), 5 + SEALED_OVERHEAD);
        assert_eq!(k.open(b"tenant-a/path", &a).unwrap().expose(), b"value");
    }

    #[test]
    fn wrong_aad_or_key_does_not_open() {
        let k = key();
        let sealed = k.seal(b"tenant-a", b"value").unwrap();
        assert!(matches!(
            k.open(b"tenant-b", &sealed),
            Err(CryptoError::Decrypt)
        ));
        let other = AeadKey::new(&[8u8; 32]).unwrap();
        assert!(other.open(b"tenant-a", &sealed).is_err());
        assert!(matches!(
            k.open(b"", &[1, 2, 3]),
            Err(CryptoError::MalformedSealed)
        ));
    }

    proptest! {
        #[test]
        fn any_flipped_bit_is_detected(pos in 0usize..(5 + SEALED_OVERHEAD), bit in 0u8..8) {
            let k = key();
            let mut sealed = k.seal(b"aad", b"value").unwrap();
            sealed[pos] ^= 1 << bit;
            prop_assert!(k.open(b"aad", &sealed).is_err());
        }
    }
}
