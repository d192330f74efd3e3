//! Standard Webhooks (<https://www.standardwebhooks.com>): signing what Rampart sends and
//! verifying what it receives.
//!
//! What it is: the key formats (`whsec_` symmetric secrets, `whsk_`/`whpk_` Ed25519 pairs), the
//! `webhook-signature` header (`v1,` HMAC-SHA256 and `v1a,` Ed25519, several at once during a
//! rotation), a [`Verifier`] that checks the timestamp tolerance (5 minutes), the signature (in
//! constant time) and, through a [`ReplayGuard`], that a message id is not accepted twice inside
//! the window; the retry [`Schedule`] with jitter that deliveries follow; and, with the `axum`
//! feature, a middleware that puts all of it in front of a handler.
//!
//! What it does not do: no HTTP client, no queue, no storage — delivery lives in the server. It
//! never reads the clock: callers pass the time.

mod keys;
mod replay;
mod schedule;
mod signature;

#[cfg(feature = "axum")]
pub mod middleware;

pub use keys::{KeyError, PublicKey, SecretKey, SigningSecret, WebhookSecret};
pub use replay::Claim;
pub use replay::{MemoryReplayGuard, ReplayGuard};
pub use schedule::{Schedule, ScheduleError};
pub use signature::{
    Headers, Rejection, Signer, TOLERANCE_SECONDS, Verified, Verifier, VerifyKey, signed_content,
};

const ID_ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// A new message id: `msg_` and 26 base-62 characters (about 154 random bits).
pub fn new_message_id() -> Result<String, KeyError> {
    rampart_crypto::random_string(ID_ALPHABET, 26)
        .map(|s| format!("msg_{s}"))
        .map_err(|e| KeyError::Random(e.to_string()))
}

/// The header names of the specification, lowercase as HTTP/2 sends them.
pub const HEADER_ID: &str = "webhook-id";
pub const HEADER_TIMESTAMP: &str = "webhook-timestamp";
pub const HEADER_SIGNATURE: &str = "webhook-signature";
