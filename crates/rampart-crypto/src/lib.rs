//! The only crate of Rampart that touches cryptographic primitives.
//!
//! What it is: [`Secret`] (no `Display`/`Serialize`, a redacted `Debug`, zeroized on drop),
//! operating-system randomness, HMAC-SHA-256 with constant-time verification, HKDF key
//! derivation from the [`RootKey`], AES-256-GCM sealing with associated data, and Ed25519
//! signing with strict verification.
//!
//! What it does not do: it knows nothing of tokens, tenants or storage formats above the byte
//! level; callers choose the associated data and the derivation labels. Key *policy* (rotation,
//! revocation) lives in the crates that own the keys.

mod aead;
mod ct;
mod error;
mod hash;
mod kdf;
mod mac;
mod random;
mod root;
mod scram;
mod secret;
mod sign;

pub use aead::{AeadKey, SEALED_OVERHEAD};
pub use ct::ct_eq;
pub use error::CryptoError;
pub use hash::{sha256, sha256_concat};
pub use kdf::DerivedKey;
pub use mac::{HmacKey, MAC_LEN, hmac_sha256};
pub use random::{fill_random, random_array, random_string};
pub use root::{
    ROOT_KEY_FILE_HEADER, RootKey, RootKeyFileStatus, read_private_file, write_private_file,
};
pub use scram::scram_sha256_verifier;
pub use secret::{Secret, SecretString};
pub use sign::{PUBLIC_KEY_LEN, SIGNATURE_LEN, SigningKey, VerifyingKey};

/// Hex decoding for known-answer tests.
#[cfg(test)]
pub(crate) fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap_or_default())
        .collect()
}
