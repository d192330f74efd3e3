use hkdf::Hkdf;
use sha2::Sha256;

use crate::{AeadKey, CryptoError, HmacKey, Secret};

/// 32 bytes derived from the root key for one purpose (one label). Keys for different purposes
/// are independent: learning one says nothing about the root key or the others.
pub struct DerivedKey(Secret<[u8; 32]>);

impl DerivedKey {
    pub(crate) fn derive(ikm: &[u8], label: &str) -> Result<Self, CryptoError> {
        let hk = Hkdf::<Sha256>::new(Some(b"rampart root key v1"), ikm);
        let mut okm = Secret::new([0u8; 32]);
        hk.expand(label.as_bytes(), okm.expose_mut())
            .map_err(|_| CryptoError::InvalidKey("hkdf output length"))?;
        Ok(Self(okm))
    }

    /// A key derived from secret material that is not the root key — e.g. a credential the
    /// caller presented, so that only its holder can open what was sealed under it.
    pub fn from_secret_material(ikm: &[u8], label: &str) -> Result<Self, CryptoError> {
        Self::derive(ikm, label)
    }

    /// As an HMAC key.
    pub fn into_hmac(self) -> Result<HmacKey, CryptoError> {
        HmacKey::new(self.0.expose().to_vec())
    }

    /// As an AES-256-GCM key.
    pub fn into_aead(self) -> Result<AeadKey, CryptoError> {
        AeadKey::new(self.0.expose())
    }

    /// The raw bytes, for the rare consumer that needs them (a derived database password).
    #[must_use]
    pub fn expose(&self) -> &[u8; 32] {
        self.0.expose()
    }
}

impl std::fmt::Debug for DerivedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DerivedKey([REDACTED])")
    }
}
