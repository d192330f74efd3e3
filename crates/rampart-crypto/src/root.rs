//! The root key: 32 bytes from which every other key of a deployment is derived or under which it
//! is wrapped. In the embedded default it is a local file; production deployments keep it wrapped
//! under a KMS key (the server's `aws-kms` provider), so the disk only holds its ciphertext.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use crate::{CryptoError, DerivedKey, Secret, random_array};

/// First token of a root key file.
pub const ROOT_KEY_FILE_HEADER: &str = "rampart-root-key-v1:";

/// Whether [`RootKey::load_or_create`] found the file or made it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RootKeyFileStatus {
    Existing,
    Created,
}

/// The deployment's root key.
pub struct RootKey(Secret<[u8; 32]>);

impl RootKey {
    /// A fresh random key (not persisted).
    pub fn generate() -> Result<Self, CryptoError> {
        Ok(Self(Secret::new(random_array()?)))
    }

    /// From its 32 bytes (as a KMS unwraps them).
    #[must_use]
    pub fn from_bytes(bytes: Secret<[u8; 32]>) -> Self {
        Self(bytes)
    }

    /// The key's bytes, for wrapping it under a KMS key; nothing else should need them.
    #[must_use]
    pub fn expose_for_wrapping(&self) -> &[u8; 32] {
        self.0.expose()
    }

    /// From its text form: `rampart-root-key-v1:<base64>` or the bare standard base64 of 32 bytes
    /// (surrounding whitespace ignored).
    pub fn parse(text: &str) -> Result<Self, CryptoError> {
        let t = text.trim();
        let b64 = t.strip_prefix(ROOT_KEY_FILE_HEADER).unwrap_or(t);
        let bytes = Secret::new(
            STANDARD
                .decode(b64)
                .map_err(|_| CryptoError::InvalidKey("a root key is the base64 of 32 bytes"))?,
        );
        let arr: [u8; 32] = bytes
            .expose()
            .as_slice()
            .try_into()
            .map_err(|_| CryptoError::InvalidKey("a root key is the base64 of 32 bytes"))?;
        Ok(Self(Secret::new(arr)))
    }

    /// The text form written to root key files.
    #[must_use]
    pub fn to_file_text(&self) -> Secret<String> {
        Secret::new(format!(
            "{ROOT_KEY_FILE_HEADER}{}\n",
            STANDARD.encode(self.0.expose())
        ))
    }

    /// Loads the key file at `path`, or creates it (mode 0600, fsynced with its directory) when it
    /// does not exist. An existing file readable by group or others is refused.
    pub fn load_or_create(path: &Path) -> Result<(Self, RootKeyFileStatus), CryptoError> {
        match Self::load_file(path) {
            Ok(k) => Ok((k, RootKeyFileStatus::Existing)),
            Err(CryptoError::RootKeyFile { reason, .. }) if reason == NOT_FOUND => {
                let key = Self::generate()?;
                key.create_file(path)?;
                Ok((key, RootKeyFileStatus::Created))
            }
            Err(e) => Err(e),
        }
    }

    /// Loads an existing key file.
    pub fn load_file(path: &Path) -> Result<Self, CryptoError> {
        let err = |reason: String| CryptoError::RootKeyFile {
            path: path.display().to_string(),
            reason,
        };
        let meta = fs::metadata(path).map_err(|e| {
            err(if e.kind() == std::io::ErrorKind::NotFound {
                NOT_FOUND.to_owned()
            } else {
                e.to_string()
            })
        })?;
        check_private(&meta).map_err(err)?;
        let text = Secret::new(fs::read_to_string(path).map_err(|e| err(e.to_string()))?);
        Self::parse(text.expose()).map_err(|e| err(e.to_string()))
    }

    fn create_file(&self, path: &Path) -> Result<(), CryptoError> {
        write_private_file(path, self.to_file_text().expose().as_bytes()).map_err(|e| {
            CryptoError::RootKeyFile {
                path: path.display().to_string(),
                reason: e.to_string(),
            }
        })
    }

    /// A key for one purpose, derived with HKDF-SHA-256. Labels are versioned strings such as
    /// `rampart/signing-key-wrap/v1`; a new label gives an independent key.
    pub fn derive(&self, label: &str) -> Result<DerivedKey, CryptoError> {
        DerivedKey::derive(self.0.expose(), label)
    }

    /// A short public fingerprint that tells whether two root keys are the same, without saying
    /// anything else about them. Stored with the data so a wrong key is caught at start-up.
    pub fn check_value(&self) -> Result<String, CryptoError> {
        let mac = self.derive("rampart/key-check/v1")?.into_hmac()?;
        let tag = mac.sign(&[b"rampart root key check"]);
        Ok(tag[..16].iter().map(|b| format!("{b:02x}")).collect())
    }
}

impl std::fmt::Debug for RootKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RootKey([REDACTED])")
    }
}

const NOT_FOUND: &str = "not found";

/// Creates the file `path`, which must not exist, readable by its owner only (mode 0600), and
/// makes it durable: the file and its directory are fsynced.
pub fn write_private_file(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let mut opts = OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path)?;
    f.write_all(contents)?;
    f.sync_all()?;
    if let Some(dir) = path.parent() {
        let dir = if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        };
        fs::File::open(dir).and_then(|d| d.sync_all())?;
    }
    Ok(())
}

/// Reads a file that must be readable by its owner only (see [`write_private_file`]).
pub fn read_private_file(path: &Path) -> std::io::Result<Secret<Vec<u8>>> {
    check_private(&fs::metadata(path)?).map_err(std::io::Error::other)?;
    fs::read(path).map(Secret::new)
}

#[cfg(unix)]
fn check_private(meta: &fs::Metadata) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(format!(
            "is readable by group or others (mode {mode:o}); run `chmod 600` on it"
        ));
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_private(_meta: &fs::Metadata) -> Result<(), String> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_is_created_private_and_reloads_to_the_same_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("root.key");
        let (a, status) = RootKey::load_or_create(&path).unwrap();
        assert_eq!(status, RootKeyFileStatus::Created);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
        let (b, status) = RootKey::load_or_create(&path).unwrap();
        assert_eq!(status, RootKeyFileStatus::Existing);
        assert_eq!(a.check_value().unwrap(), b.check_value().unwrap());
    }

    #[cfg(unix)]
    #[test]
    fn a_world_readable_file_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("root.key");
        RootKey::load_or_create(&path).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        let err = RootKey::load_file(&path).unwrap_err().to_string();
        assert!(err.contains("chmod 600"), "{err}");
    }

    #[test]
    fn derived_keys_differ_by_label_and_errors_hide_the_key() {
        let k = RootKey::parse(&STANDARD.encode([9u8; 32])).unwrap();
        let a = k.derive("a").unwrap();
        let b = k.derive("b").unwrap();
        assert_ne!(a.expose(), b.expose());
        assert!(RootKey::parse("rampart-root-key-v1:AAAA").is_err());
        assert_eq!(format!("{k:?}"), "RootKey([REDACTED])");
    }
}
