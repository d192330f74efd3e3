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

use rampart_crypto::AeadKey;
use rampart_ledger::Ledger;
use rampart_ledger::entry::Record;
use rampart_store::{LedgerPosition, Scope, Store, Tx};
use rampart_types::AuditEvent;

use crate::ledger_keys::LedgerKeys;

/// Why an audit record could not be written.
#[derive(Debug, thiserror::Error)]
#[error("audit trail unavailable: {0}")]
pub struct AuditError(pub String);

/// The future a sink returns.
pub type AuditFuture<'a> = Pin<Box<dyn Future<Output = Result<(), AuditError>> + Send + 'a>>;

/// What [`AuditSink::append_ahead`] made durable before the record's transaction began: where
/// the record sits in the ledger, or nothing (the sink does all its work in the transaction).
#[derive(Debug, Default)]
pub struct Ahead(Option<LedgerPosition>);

/// The future [`AuditSink::append_ahead`] returns.
pub type AheadFuture<'a> = Pin<Box<dyn Future<Output = Result<Ahead, AuditError>> + Send + 'a>>;

/// Where audit records go.
pub trait AuditSink: Send + Sync + 'static {
    /// Records `event` as part of `tx`. The record must be durable no later than `tx` commits; an
    /// error means the caller must refuse the request.
    fn record<'a>(&'a self, tx: &'a mut Tx, event: &'a AuditEvent) -> AuditFuture<'a>;

    /// Makes `event` durable before its transaction begins, so that the slow part (the ledger's
    /// fsync) is not spent holding a writer: concurrent calls' records then share one group
    /// commit. The caller must pass what this returns to [`AuditSink::record_ahead`] in the
    /// transaction of the change `event` describes. As with [`AuditSink::record`], a change
    /// whose commit fails after this leaves a record of the attempt, never the reverse.
    fn append_ahead<'a>(&'a self, _store: &'a Store, _event: &'a AuditEvent) -> AheadFuture<'a> {
        Box::pin(async { Ok(Ahead::default()) })
    }

    /// Finishes recording `event` in `tx`, after [`AuditSink::append_ahead`].
    fn record_ahead<'a>(
        &'a self,
        tx: &'a mut Tx,
        event: &'a AuditEvent,
        ahead: Ahead,
    ) -> AuditFuture<'a> {
        let _ = ahead;
        self.record(tx, event)
    }
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

impl LedgerAuditSink {
    /// Seals `event` under `key` and appends it; returns once the ledger fsynced it.
    async fn append(
        &self,
        key: &AeadKey,
        event: &AuditEvent,
    ) -> Result<LedgerPosition, AuditError> {
        let sealed = ledger_record(event)
            .seal(key)
            .map_err(|e| AuditError(e.to_string()))?;
        let receipt = self
            .ledger
            .append(&sealed)
            .await
            .map_err(|e| AuditError(e.to_string()))?;
        Ok(LedgerPosition {
            log: self.ledger.origin().to_owned(),
            index: receipt.index,
        })
    }
}

/// Writes the queryable row of a record the ledger holds at `position`.
async fn write_row(
    tx: &mut Tx,
    event: &AuditEvent,
    position: &LedgerPosition,
) -> Result<(), AuditError> {
    tx.append_audit(event, Some(position))
        .await
        .map(drop)
        .map_err(|e| AuditError(e.to_string()))
}

impl AuditSink for LedgerAuditSink {
    fn record<'a>(&'a self, tx: &'a mut Tx, event: &'a AuditEvent) -> AuditFuture<'a> {
        Box::pin(async move {
            let key = self.keys.active(tx, event.tenant_id, event.at).await?;
            let position = self.append(&key, event).await?;
            write_row(tx, event, &position).await
        })
    }

    /// Appends ahead when the tenant already has a live key (read in a read-only transaction
    /// unless cached); a tenant's first record creates its key, in the record's transaction.
    fn append_ahead<'a>(&'a self, store: &'a Store, event: &'a AuditEvent) -> AheadFuture<'a> {
        Box::pin(async move {
            let key = match self.keys.cached(event.tenant_id) {
                Some(keys) => keys,
                None => {
                    let mut read = store
                        .begin_read(Scope::tenant(event.tenant_id, &event.actor))
                        .await
                        .map_err(|e| AuditError(e.to_string()))?;
                    self.keys.live(&mut read, event.tenant_id).await?
                }
            };
            let Some(key) = key.first() else {
                return Ok(Ahead::default());
            };
            Ok(Ahead(Some(self.append(key, event).await?)))
        })
    }

    fn record_ahead<'a>(
        &'a self,
        tx: &'a mut Tx,
        event: &'a AuditEvent,
        ahead: Ahead,
    ) -> AuditFuture<'a> {
        match ahead.0 {
            Some(position) => Box::pin(async move { write_row(tx, event, &position).await }),
            None => self.record(tx, event),
        }
    }
}
