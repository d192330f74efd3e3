//! The audit trail interface. Every security event (token issue, refresh, reuse and revocation;
//! API key creation, use, rotation and revocation; tenant creation; signing-key rotation) goes
//! through [`AuditSink::record`], inside the transaction of the change it describes.
//!
//! [`LedgerAuditSink`] (the default) seals each record under its tenant's ledger key, appends it to
//! the tamper-evident ledger — acknowledged only once fsynced — and then writes the queryable row
//! (with its ledger index) in the request's transaction. The ledger entry is written *before* the
//! change commits: no change is ever committed without its record; a change whose commit fails
//! after its record was appended leaves a record of the attempt.
//! Fail closed: when a sink cannot record, the caller refuses the request.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use rampart_ledger::Ledger;
use rampart_ledger::entry::Record;
use rampart_store::{LedgerPosition, Tx};
use rampart_types::AuditEvent;

use crate::ledger_keys::LedgerKeys;

/// Why an audit record could not be written.
#[derive(Debug, thiserror::Error)]
#[error("audit trail unavailable: {0}")]
pub struct AuditError(pub String);

/// The future a sink returns.
pub type AuditFuture<'a> = Pin<Box<dyn Future<Output = Result<(), AuditError>> + Send + 'a>>;

/// Where audit records go.
pub trait AuditSink: Send + Sync + 'static {
    /// Records `event` as part of `tx`. The record must be durable no later than `tx` commits; an
    /// error means the caller must refuse the request.
    fn record<'a>(&'a self, tx: &'a mut Tx, event: &'a AuditEvent) -> AuditFuture<'a>;
}

/// The canonical ledger record of an audit event.
#[must_use]
pub fn ledger_record(event: &AuditEvent) -> Record {
    Record {
        timestamp: event.at,
        tenant_id: event.tenant_id,
        request_id: event.request_id,
        actor: event.actor.clone(),
        action: event.action.as_str().to_owned(),
        resource: event.resource.clone(),
        decision: event.outcome.as_str().to_owned(),
        policy_version: String::new(),
        // serde_json maps are ordered, so this is canonical.
        payload: serde_json::to_vec(&event.detail).unwrap_or_default(),
    }
}

/// Appends every record to the tamper-evident ledger (sealed per tenant), then to the store.
#[derive(Debug, Clone)]
pub struct LedgerAuditSink {
    pub ledger: Arc<Ledger>,
    pub keys: Arc<LedgerKeys>,
}

impl AuditSink for LedgerAuditSink {
    fn record<'a>(&'a self, tx: &'a mut Tx, event: &'a AuditEvent) -> AuditFuture<'a> {
        Box::pin(async move {
            let key = self.keys.active(tx, event.tenant_id, event.at).await?;
            let sealed = ledger_record(event)
                .seal(&key)
                .map_err(|e| AuditError(e.to_string()))?;
            let receipt = self
                .ledger
                .append(&sealed)
                .await
                .map_err(|e| AuditError(e.to_string()))?;
            let position = LedgerPosition {
                log: self.ledger.origin().to_owned(),
                index: receipt.index,
            };
            tx.append_audit(event, Some(&position))
                .await
                .map(drop)
                .map_err(|e| AuditError(e.to_string()))
        })
    }
}
