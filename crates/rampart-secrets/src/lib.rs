//! Rampart's secrets: the key hierarchy and the envelope every secret value is sealed in.
//!
//! What it is: the root key (from its provider) wraps one key-encryption key (KEK) per tenant
//! and key version, each random — no key material is shared between tenants. Every version of
//! every secret gets a fresh random data key (DEK) that encrypts its value; the tenant's KEK
//! wraps the DEK. Rotating a KEK or revoking a version re-wraps DEKs only: values are never
//! re-encrypted. All sealing is AES-256-GCM with random 96-bit nonces and associated data that
//! binds each ciphertext to its tenant, path, version and key version, so a ciphertext moved to
//! another row or tenant does not open. [`SecretPath`] is the validated name of a secret, and an
//! [`Allowlist`] of path patterns says which of them an agent may touch (deny by default).
//! [`postgres`] is the first dynamic engine: a lease there is a short-lived database role.
//!
//! What it does not do: apart from the dynamic engine talking to the database it manages, no
//! I/O. Storage is `rampart-store`'s, the API the server's, and key *policy* (when to rotate, who
//! may revoke) the service's above this crate.

mod acl;
mod envelope;
mod path;
pub mod postgres;

pub use acl::{Allowlist, InvalidPattern, MAX_PATTERN_LEN, MAX_PATTERNS, PathPattern};
pub use envelope::{EnvelopeError, Kek, KekWrapper, SealedValue, small_key_version};
pub use path::{InvalidPath, MAX_PATH_LEN, SecretPath};
