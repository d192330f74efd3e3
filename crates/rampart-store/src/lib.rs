//! Rampart's tenant-scoped storage.
//!
//! What it is: one repository API — methods on [`Tx`], grouped by what they store — over two
//! backends: Postgres (production), where row-level security enforced by the database is the
//! second wall around every tenant, and SQLite (the embedded default), where the transaction
//! itself refuses any tenant but its own. Every tenant-owned method takes a [`TenantId`]; every
//! transaction is opened for a [`Scope`] that comes from a verified credential.
//!
//! What it does not do: no authorisation decisions (the server makes them and opens the matching
//! scope), no cryptography beyond hashing migration texts, no HTTP.
//!
//! [`TenantId`]: rampart_types::TenantId

mod db;
mod error;
mod group;
mod migrate;
mod records;
mod repo;
mod scope;
mod store;

pub use error::StoreError;
pub use records::{
    AgentRecord, ApiKeyRecord, AuditRecord, Cas, Cleanup, DeliveryState, DocumentVersionRecord,
    FamilyRecord, GatewayRequestRecord, GatewayUsage, KeyGenerationRecord, LeaseFilter, LeaseKind,
    LeaseRecord, LedgerKeyRecord, LedgerPosition, MissionRecord, MissionStatus,
    PostgresEngineRecord, PrincipalRevocationRecord, ProfileKind, RefreshRecord,
    SecretBackendRecord, SecretRecord, SecretVersionRecord, SentinelKeyRecord, SentinelStamp,
    SentinelTokenRecord, SigningKeyRecord, TenantKeyRecord, TenantKeyState, TenantRecord,
    TokenLiveness, WebhookDeliveryRecord, WebhookEndpointRecord,
};
pub use repo::{DocumentKind, Revocation};
pub use scope::{Lookup, Scope, TenantScope};
pub use store::{Backend, Store, StoreOptions, Tx, postgres_app_grants};
