//! Rampart's HTTP API.
//!
//! What it is: the axum application — routes under `/v1`, the extractors that authenticate a
//! request and open its tenant-scoped transaction, RFC 9457 problems for every error, request
//! ids, the OpenAPI document — plus configuration loading and start-up (root key, store,
//! bootstrap, signing keys).
//!
//! What it does not do: no cryptography of its own (it calls `rampart-crypto` and
//! `rampart-identity`), no SQL (it calls `rampart-store`), no process management (the `rampart`
//! binary owns signals and printing).

pub mod agents;
pub mod app;
pub mod audit;
pub mod backends;
pub mod bootstrap;
pub mod bus;
mod cache;
pub mod config;
pub mod credentials;
pub mod disclosed;
mod edge;
pub mod error;
pub mod extract;
pub mod gateway;
pub mod keys;
#[cfg(feature = "aws")]
pub mod kms_root;
pub mod leases;
pub mod ledger_keys;
pub mod missions;
pub mod routes;
pub mod secrets;
pub mod sentinel;
pub mod state;
pub mod telemetry;
pub mod webhooks;

pub use app::{openapi, router, serve};
pub use audit::{AuditError, AuditSink, LedgerAuditSink};
pub use config::{Config, ConfigError, LogFormat, Overrides};
pub use error::{ApiError, ErrorKind};
pub use state::{AppState, RootKeySource, StartError, StartOptions, Started, start};
