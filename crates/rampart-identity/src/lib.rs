//! Rampart's credentials, sans I/O.
//!
//! What it is: the formats and checks of every credential Rampart issues — EdDSA-signed JWT access
//! tokens ([`jwt`]), the signing key set and its JWKS document ([`keys`]), API keys ([`apikey`])
//! and refresh tokens ([`refresh`]) — as pure functions of their inputs (bytes, keys, the current
//! time). A value such as [`jwt::VerifiedAccessToken`] can only be built by the function that
//! checked it.
//!
//! What it does not do: no storage, no network, no clock of its own. Whether a token family was
//! revoked, or which keys exist, is decided by the caller from its store and passed in.

pub mod apikey;
pub mod jwt;
pub mod keys;
pub mod lineage;
mod opaque;
mod redact;
pub mod refresh;

pub use apikey::{ApiKey, ApiKeyId};
pub use jwt::{AccessClaims, TokenError, VerifiedAccessToken, VerifyOptions};
pub use keys::{Jwk, Jwks, KeySet, TokenSigner, VerificationKey, jwk_thumbprint};
pub use lineage::{Actor, Lineage};
pub use redact::redact_credentials;
pub use refresh::{
    RefreshDecision, RefreshState, RefreshToken, RefreshTokenId, decide as decide_refresh,
};
