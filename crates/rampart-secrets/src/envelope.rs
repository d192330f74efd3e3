use rampart_crypto::{AeadKey, CryptoError, RootKey, Secret, random_array};
use rampart_types::TenantId;

use crate::SecretPath;

/// The label of the key, derived from the root key, that wraps tenants' KEKs.
const KEK_WRAP_LABEL: &str = "rampart/tenant-kek-wrap/v1";

/// Why a sealed value or key did not open.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    /// Wrong key, wrong place (tenant, path, version, key version) or altered bytes: AES-GCM
    /// cannot tell these apart, and neither do we.
    #[error("the sealed bytes do not open here: wrong key, moved, or altered")]
    DoesNotOpen,
    #[error("the key is {0}, not the {1} the data was sealed under")]
    WrongKeyVersion(u32, u32),
    #[error("cryptography failed: {0}")]
    Crypto(String),
}

impl From<CryptoError> for EnvelopeError {
    fn from(e: CryptoError) -> Self {
        match e {
            CryptoError::Decrypt | CryptoError::MalformedSealed => Self::DoesNotOpen,
            other => Self::Crypto(other.to_string()),
        }
    }
}

fn kek_aad(tenant: TenantId, version: u32) -> Vec<u8> {
    format!("rampart/tenant-kek/v1\0{tenant}\0{version}").into_bytes()
}

fn dek_aad(tenant: TenantId, key_version: u32, path: &SecretPath, version: u32) -> Vec<u8> {
    format!("rampart/secret-dek/v1\0{tenant}\0{key_version}\0{version}\0{path}").into_bytes()
}

fn small_aad(tenant: TenantId, key_version: u32, context: &str) -> Vec<u8> {
    format!("rampart/kek-sealed/v1\0{tenant}\0{key_version}\0{context}").into_bytes()
}

/// The KEK version a [`Kek::seal_small`] blob was sealed under.
#[must_use]
pub fn small_key_version(sealed: &[u8]) -> Option<u32> {
    Some(u32::from_be_bytes(sealed.get(..4)?.try_into().ok()?))
}

fn value_aad(tenant: TenantId, path: &SecretPath, version: u32) -> Vec<u8> {
    format!("rampart/secret-value/v1\0{tenant}\0{version}\0{path}").into_bytes()
}

/// Wraps and opens tenants' key-encryption keys under a key derived from the root key.
pub struct KekWrapper(AeadKey);

impl KekWrapper {
    pub fn from_root(root: &RootKey) -> Result<Self, CryptoError> {
        Ok(Self(root.derive(KEK_WRAP_LABEL)?.into_aead()?))
    }

    /// A fresh random KEK for `tenant` at `version`, and the sealed form to store.
    pub fn generate(&self, tenant: TenantId, version: u32) -> Result<(Kek, Vec<u8>), CryptoError> {
        let key: Secret<[u8; 32]> = Secret::new(random_array()?);
        let sealed = self.0.seal(&kek_aad(tenant, version), key.expose())?;
        Ok((
            Kek {
                tenant,
                version,
                key: AeadKey::new(key.expose())?,
            },
            sealed,
        ))
    }

    /// Opens a stored KEK; it only opens as the tenant and version it was made for.
    pub fn open(
        &self,
        tenant: TenantId,
        version: u32,
        sealed: &[u8],
    ) -> Result<Kek, EnvelopeError> {
        let bytes = self.0.open(&kek_aad(tenant, version), sealed)?;
        let key: &[u8; 32] = bytes
            .expose()
            .as_slice()
            .try_into()
            .map_err(|_| EnvelopeError::DoesNotOpen)?;
        Ok(Kek {
            tenant,
            version,
            key: AeadKey::new(key)?,
        })
    }
}

impl std::fmt::Debug for KekWrapper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KekWrapper([REDACTED])")
    }
}

/// A secret version's value as stored: its data key wrapped by a tenant KEK version, and the
/// value sealed under the data key. Neither opens anywhere but its own tenant, path and version.
#[derive(Clone, PartialEq, Eq)]
pub struct SealedValue {
    /// The KEK version that wraps the data key.
    pub key_version: u32,
    pub wrapped_dek: Vec<u8>,
    pub ciphertext: Vec<u8>,
}

impl std::fmt::Debug for SealedValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SealedValue")
            .field("key_version", &self.key_version)
            .field("wrapped_dek_len", &self.wrapped_dek.len())
            .field("ciphertext_len", &self.ciphertext.len())
            .finish()
    }
}

/// One version of one tenant's key-encryption key.
pub struct Kek {
    tenant: TenantId,
    version: u32,
    key: AeadKey,
}

impl Kek {
    #[must_use]
    pub fn tenant(&self) -> TenantId {
        self.tenant
    }

    #[must_use]
    pub fn version(&self) -> u32 {
        self.version
    }

    /// Seals a small value (a key Rampart keeps for the tenant, such as a webhook signing
    /// secret) directly under this KEK, bound to `context`, which names what it is and where
    /// it belongs; the blob starts with the KEK version. Secrets of the store use
    /// [`Kek::seal`] instead.
    pub fn seal_small(&self, context: &str, value: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let mut out = self.version.to_be_bytes().to_vec();
        out.extend(
            self.key
                .seal(&small_aad(self.tenant, self.version, context), value)?,
        );
        Ok(out)
    }

    /// Opens a [`Kek::seal_small`] blob sealed for `context`.
    pub fn open_small(
        &self,
        context: &str,
        sealed: &[u8],
    ) -> Result<Secret<Vec<u8>>, EnvelopeError> {
        let version = small_key_version(sealed).ok_or(EnvelopeError::DoesNotOpen)?;
        if version != self.version {
            return Err(EnvelopeError::WrongKeyVersion(self.version, version));
        }
        Ok(self
            .key
            .open(&small_aad(self.tenant, self.version, context), &sealed[4..])?)
    }

    /// Seals `value` as version `version` of the secret at `path`: a fresh data key encrypts
    /// it, and this KEK wraps the data key.
    pub fn seal(
        &self,
        path: &SecretPath,
        version: u32,
        value: &[u8],
    ) -> Result<SealedValue, CryptoError> {
        let dek: Secret<[u8; 32]> = Secret::new(random_array()?);
        let ciphertext =
            AeadKey::new(dek.expose())?.seal(&value_aad(self.tenant, path, version), value)?;
        let wrapped_dek = self.key.seal(
            &dek_aad(self.tenant, self.version, path, version),
            dek.expose(),
        )?;
        Ok(SealedValue {
            key_version: self.version,
            wrapped_dek,
            ciphertext,
        })
    }

    /// The data key of a sealed value, checked to be wrapped by this KEK version for this
    /// place.
    fn open_dek(
        &self,
        path: &SecretPath,
        version: u32,
        sealed: &SealedValue,
    ) -> Result<Secret<Vec<u8>>, EnvelopeError> {
        if sealed.key_version != self.version {
            return Err(EnvelopeError::WrongKeyVersion(
                self.version,
                sealed.key_version,
            ));
        }
        Ok(self.key.open(
            &dek_aad(self.tenant, self.version, path, version),
            &sealed.wrapped_dek,
        )?)
    }

    /// The value of version `version` of the secret at `path`, zeroized when dropped.
    pub fn open(
        &self,
        path: &SecretPath,
        version: u32,
        sealed: &SealedValue,
    ) -> Result<Secret<Vec<u8>>, EnvelopeError> {
        let dek = self.open_dek(path, version, sealed)?;
        let dek: &[u8; 32] = dek
            .expose()
            .as_slice()
            .try_into()
            .map_err(|_| EnvelopeError::DoesNotOpen)?;
        Ok(AeadKey::new(dek)?.open(&value_aad(self.tenant, path, version), &sealed.ciphertext)?)
    }

    /// The value's data key wrapped by `to` instead (its new `wrapped_dek`; `key_version`
    /// becomes `to.version()`). The ciphertext is unchanged, so re-wrapping costs two small
    /// AES-GCM operations whatever the value's size.
    pub fn rewrap(
        &self,
        to: &Kek,
        path: &SecretPath,
        version: u32,
        sealed: &SealedValue,
    ) -> Result<Vec<u8>, EnvelopeError> {
        if to.tenant != self.tenant {
            return Err(EnvelopeError::DoesNotOpen);
        }
        let dek = self.open_dek(path, version, sealed)?;
        Ok(to
            .key
            .seal(&dek_aad(to.tenant, to.version, path, version), dek.expose())?)
    }
}

impl std::fmt::Debug for Kek {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kek")
            .field("tenant", &self.tenant)
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn path(s: &str) -> SecretPath {
        s.parse().unwrap()
    }

    fn wrapper() -> KekWrapper {
        KekWrapper::from_root(&RootKey::generate().unwrap()).unwrap()
    }

    #[test]
    fn small_values_open_only_in_their_context_tenant_and_key_version() {
        let w = wrapper();
        let t = TenantId::random();
        let (k1, _) = w.generate(t, 1).unwrap();
        let (k2, _) = w.generate(t, 2).unwrap();
        let (other, _) = w.generate(TenantId::random(), 1).unwrap();
        let sealed = k1.seal_small("webhook/a/1", b"whsec_x").unwrap();
        assert_eq!(small_key_version(&sealed), Some(1));
        assert_eq!(
            k1.open_small("webhook/a/1", &sealed).unwrap().expose(),
            b"whsec_x"
        );
        assert_eq!(
            k1.open_small("webhook/b/1", &sealed).unwrap_err(),
            EnvelopeError::DoesNotOpen
        );
        assert_eq!(
            other.open_small("webhook/a/1", &sealed).unwrap_err(),
            EnvelopeError::DoesNotOpen
        );
        assert_eq!(
            k2.open_small("webhook/a/1", &sealed).unwrap_err(),
            EnvelopeError::WrongKeyVersion(2, 1)
        );
        assert_eq!(small_key_version(&[1, 2]), None);
    }

    #[test]
    fn a_value_opens_where_it_was_sealed_and_nowhere_else() {
        let w = wrapper();
        let (a, _) = w.generate(TenantId::random(), 1).unwrap();
        let (b, _) = w.generate(TenantId::random(), 1).unwrap();
        let p = path("db/password");
        let sealed = a.seal(&p, 3, b"hunter2").unwrap();
        assert_eq!(sealed.key_version, 1);
        assert_eq!(a.open(&p, 3, &sealed).unwrap().expose(), b"hunter2");
        // Moved to another path, version or tenant: nothing opens.
        assert_eq!(
            a.open(&path("db/other"), 3, &sealed).unwrap_err(),
            EnvelopeError::DoesNotOpen
        );
        assert_eq!(
            a.open(&p, 4, &sealed).unwrap_err(),
            EnvelopeError::DoesNotOpen
        );
        assert_eq!(
            b.open(&p, 3, &sealed).unwrap_err(),
            EnvelopeError::DoesNotOpen
        );
        // Another version's data key spliced in: the value does not open under it.
        let other = a.seal(&p, 3, b"other").unwrap();
        let spliced = SealedValue {
            wrapped_dek: other.wrapped_dek,
            ..sealed.clone()
        };
        assert_eq!(
            a.open(&p, 3, &spliced).unwrap_err(),
            EnvelopeError::DoesNotOpen
        );
        // Claiming another key version does not help either.
        let (a2, _) = w.generate(a.tenant(), 2).unwrap();
        let relabelled = SealedValue {
            key_version: 2,
            ..sealed
        };
        assert_eq!(
            a2.open(&p, 3, &relabelled).unwrap_err(),
            EnvelopeError::DoesNotOpen
        );
        assert!(!format!("{relabelled:?}{a2:?}{w:?}").contains("hunter2"));
    }

    #[test]
    fn a_kek_opens_only_as_its_own_tenant_and_version_under_its_own_root() {
        let w = wrapper();
        let tenant = TenantId::random();
        let (kek, sealed) = w.generate(tenant, 5).unwrap();
        let opened = w.open(tenant, 5, &sealed).unwrap();
        let p = path("k");
        let value = kek.seal(&p, 1, b"v").unwrap();
        assert_eq!(opened.open(&p, 1, &value).unwrap().expose(), b"v");
        assert!(w.open(tenant, 6, &sealed).is_err());
        assert!(w.open(TenantId::random(), 5, &sealed).is_err());
        assert!(wrapper().open(tenant, 5, &sealed).is_err());
    }

    #[test]
    fn rewrapping_moves_the_data_key_and_keeps_the_value() {
        let w = wrapper();
        let tenant = TenantId::random();
        let (old, _) = w.generate(tenant, 1).unwrap();
        let (new, _) = w.generate(tenant, 2).unwrap();
        let p = path("api/token");
        let sealed = old.seal(&p, 7, b"value").unwrap();
        let moved = SealedValue {
            key_version: new.version(),
            wrapped_dek: old.rewrap(&new, &p, 7, &sealed).unwrap(),
            ciphertext: sealed.ciphertext.clone(),
        };
        assert_eq!(moved.key_version, 2);
        assert_eq!(new.open(&p, 7, &moved).unwrap().expose(), b"value");
        assert_eq!(
            old.open(&p, 7, &moved).unwrap_err(),
            EnvelopeError::WrongKeyVersion(1, 2)
        );
        // Not across tenants, and only from the version it is wrapped under.
        let (stranger, _) = w.generate(TenantId::random(), 3).unwrap();
        assert!(old.rewrap(&stranger, &p, 7, &sealed).is_err());
        assert!(new.rewrap(&old, &p, 7, &sealed).is_err());
    }

    proptest! {
        #[test]
        fn any_altered_byte_is_refused(
            value in proptest::collection::vec(any::<u8>(), 0..64),
            in_dek in any::<bool>(),
            pos in any::<usize>(),
            bit in 0u8..8,
        ) {
            let w = wrapper();
            let (kek, _) = w.generate(TenantId::random(), 1).unwrap();
            let p = path("p");
            let mut sealed = kek.seal(&p, 1, &value).unwrap();
            let bytes = if in_dek { &mut sealed.wrapped_dek } else { &mut sealed.ciphertext };
            let i = pos % bytes.len();
            bytes[i] ^= 1 << bit;
            prop_assert_eq!(kek.open(&p, 1, &sealed).unwrap_err(), EnvelopeError::DoesNotOpen);
        }
    }
}
