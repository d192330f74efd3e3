use ed25519_dalek::{Signature, Signer};

use crate::{CryptoError, Secret, random_array};

pub const PUBLIC_KEY_LEN: usize = 32;
pub const SIGNATURE_LEN: usize = 64;

/// An Ed25519 signing key (zeroized on drop by `ed25519-dalek`).
pub struct SigningKey(ed25519_dalek::SigningKey);

impl SigningKey {
    /// A fresh key from the operating system's randomness.
    pub fn generate() -> Result<Self, CryptoError> {
        let seed: Secret<[u8; 32]> = Secret::new(random_array()?);
        Ok(Self::from_seed(&seed))
    }

    /// The key whose RFC 8032 secret seed is `seed`.
    #[must_use]
    pub fn from_seed(seed: &Secret<[u8; 32]>) -> Self {
        Self(ed25519_dalek::SigningKey::from_bytes(seed.expose()))
    }

    /// The secret seed, for sealing at rest.
    #[must_use]
    pub fn seed(&self) -> Secret<[u8; 32]> {
        Secret::new(self.0.to_bytes())
    }

    #[must_use]
    pub fn verifying_key(&self) -> VerifyingKey {
        VerifyingKey(self.0.verifying_key())
    }

    #[must_use]
    pub fn sign(&self, msg: &[u8]) -> [u8; SIGNATURE_LEN] {
        self.0.sign(msg).to_bytes()
    }
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SigningKey(public: {:?})", self.verifying_key())
    }
}

/// An Ed25519 public key.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct VerifyingKey(ed25519_dalek::VerifyingKey);

impl VerifyingKey {
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, CryptoError> {
        let arr: &[u8; PUBLIC_KEY_LEN] = bytes
            .try_into()
            .map_err(|_| CryptoError::InvalidKey("an Ed25519 public key has 32 bytes"))?;
        ed25519_dalek::VerifyingKey::from_bytes(arr)
            .map(Self)
            .map_err(|_| CryptoError::InvalidKey("not a point on Ed25519"))
    }

    #[must_use]
    pub fn as_bytes(&self) -> &[u8; PUBLIC_KEY_LEN] {
        self.0.as_bytes()
    }

    /// Strict verification (RFC 8032 §5.1.7 plus rejection of small-order keys and
    /// non-canonical encodings), so one message has one valid signature per key.
    pub fn verify(&self, msg: &[u8], sig: &[u8]) -> Result<(), CryptoError> {
        let sig = Signature::from_slice(sig).map_err(|_| CryptoError::BadSignature)?;
        self.0
            .verify_strict(msg, &sig)
            .map_err(|_| CryptoError::BadSignature)
    }
}

impl std::fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "VerifyingKey(")?;
        for b in self.as_bytes() {
            write!(f, "{b:02x}")?;
        }
        write!(f, ")")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hex;

    /// RFC 8032 §7.1, TEST 2.
    #[test]
    fn rfc8032_test_2() {
        let seed: [u8; 32] =
            hex("4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb")
                .try_into()
                .unwrap();
        let key = SigningKey::from_seed(&Secret::new(seed));
        assert_eq!(
            key.verifying_key().as_bytes().to_vec(),
            hex("3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c")
        );
        let sig = key.sign(&[0x72]);
        assert_eq!(
            sig.to_vec(),
            hex(concat!(
                "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da",
                "085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00"
            ))
        );
        assert!(key.verifying_key().verify(&[0x72], &sig).is_ok());
        assert!(key.verifying_key().verify(&[0x73], &sig).is_err());
        assert!(key.verifying_key().verify(&[0x72], &sig[..63]).is_err());
    }

    #[test]
    fn small_order_public_keys_are_refused_by_strict_verification() {
        // The identity point: every signature "verifies" under it without strict checks.
        let mut identity = [0u8; 32];
        identity[0] = 1;
        let key = VerifyingKey::from_bytes(&identity);
        if let Ok(k) = key {
            let mut sig = [0u8; 64];
            sig[0] = 1;
            assert!(k.verify(b"anything", &sig).is_err());
        }
    }
}
