//! The repository API: methods on [`Tx`](crate::Tx), one module per kind of record. Each method
//! is written once; [`crate::db`] runs it on either engine.
//!
//! Every method on tenant-owned rows takes the tenant and also checks it against the
//! transaction's scope, so the same rule holds on SQLite (where nothing else enforces it) as on
//! Postgres (where row-level security enforces it again).

mod agents;
mod api_keys;
mod audit;
mod backends;
mod documents;
mod gateway;
mod leases;
mod ledger_keys;
mod meta;
mod missions;
mod secrets;
mod sentinel;
mod signing_keys;
mod tenants;
mod tokens;
mod webhooks;

pub use documents::DocumentKind;
pub use leases::Revocation;
use rampart_types::TenantId;

use crate::db::AnyRow;
use crate::{StoreError, Tx};

impl Tx {
    /// Refuses a write outside the transaction's tenant.
    pub(crate) fn guard_write(&self, tenant: TenantId) -> Result<(), StoreError> {
        if self.scope().allows(tenant) {
            Ok(())
        } else {
            Err(StoreError::ScopeViolation)
        }
    }
}

pub(crate) fn tenant_id(row: &AnyRow, col: &str) -> Result<TenantId, StoreError> {
    row.uuid(col).map(TenantId::from_uuid)
}

pub(crate) fn parse_col<T: std::str::FromStr>(row: &AnyRow, col: &str) -> Result<T, StoreError>
where
    T::Err: std::fmt::Display,
{
    row.text(col)?
        .parse()
        .map_err(|e: T::Err| StoreError::Corrupt {
            column: col.to_owned(),
            reason: e.to_string(),
        })
}

pub(crate) fn parse_opt_col<T: std::str::FromStr>(
    row: &AnyRow,
    col: &str,
) -> Result<Option<T>, StoreError>
where
    T::Err: std::fmt::Display,
{
    row.opt_text(col)?
        .map(|s| {
            s.parse().map_err(|e: T::Err| StoreError::Corrupt {
                column: col.to_owned(),
                reason: e.to_string(),
            })
        })
        .transpose()
}
