use rampart_types::{AuditAction, AuditEvent, Outcome, RequestId, TenantId};

use crate::db::{AnyRow, Val, sql};
use crate::repo::tenant_id;
use crate::{AuditRecord, LedgerPosition, StoreError, Tx};

fn corrupt(column: &str, reason: &str) -> StoreError {
    StoreError::Corrupt {
        column: column.to_owned(),
        reason: reason.to_owned(),
    }
}

fn from_row(row: &AnyRow) -> Result<AuditRecord, StoreError> {
    let action = row.text("action")?;
    let outcome = row.text("outcome")?;
    Ok(AuditRecord {
        seq: row.int("seq")?,
        ledger: match (row.opt_text("ledger_log")?, row.opt_int("ledger_index")?) {
            (Some(log), Some(i)) => Some(LedgerPosition {
                log,
                index: u64::try_from(i).map_err(|_| corrupt("ledger_index", "negative"))?,
            }),
            _ => None,
        },
        event: AuditEvent {
            tenant_id: tenant_id(row, "tenant_id")?,
            request_id: row
                .opt_text("request_id")?
                .map(|s| s.parse::<RequestId>())
                .transpose()
                .map_err(|e| corrupt("request_id", &e.to_string()))?,
            actor: row.text("actor")?,
            action: AuditAction::parse(&action).ok_or_else(|| corrupt("action", "unknown"))?,
            resource: row.text("resource")?,
            outcome: Outcome::parse(&outcome).ok_or_else(|| corrupt("outcome", "unknown"))?,
            detail: row.json("detail")?,
            at: row.ts("at")?,
        },
    })
}

impl Tx {
    /// Appends an audit record (with its position in the ledger, when one is in use); returns
    /// its sequence number. Part of the transaction: the record commits with the change it
    /// describes, or not at all.
    pub async fn append_audit(
        &mut self,
        e: &AuditEvent,
        ledger: Option<&LedgerPosition>,
    ) -> Result<i64, StoreError> {
        self.guard_write(e.tenant_id)?;
        let request_id = e.request_id.map(|r| r.to_string());
        let ledger_index = ledger
            .map(|p| i64::try_from(p.index))
            .transpose()
            .map_err(|_| corrupt("ledger_index", "out of range"))?;
        let row = self
            .fetch_optional(
                &sql!(
                    "INSERT INTO audit_events (tenant_id, at, request_id, actor, action, resource, \
                     outcome, detail, ledger_log, ledger_index) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING seq"
                ),
                &[
                    Val::Uuid(*e.tenant_id.as_uuid()),
                    Val::Ts(e.at),
                    Val::OptText(request_id.as_deref()),
                    Val::Text(&e.actor),
                    Val::Text(e.action.as_str()),
                    Val::Text(&e.resource),
                    Val::Text(e.outcome.as_str()),
                    Val::Json(&e.detail),
                    Val::OptText(ledger.map(|p| p.log.as_str())),
                    match ledger_index {
                        Some(i) => Val::Int(i),
                        None => Val::OptInt(None),
                    },
                ],
            )
            .await?;
        row.ok_or_else(|| corrupt("seq", "no sequence number returned"))?
            .int("seq")
    }

    /// The tenant's audit record at `index` in the ledger `log`.
    pub async fn audit_at_ledger_position(
        &mut self,
        tenant: TenantId,
        log: &str,
        index: u64,
    ) -> Result<Option<AuditRecord>, StoreError> {
        let Ok(index) = i64::try_from(index) else {
            return Ok(None);
        };
        if !self.scope().allows(tenant) {
            return Ok(None);
        }
        self.fetch_optional(
            &sql!(
                "SELECT seq, tenant_id, at, request_id, actor, action, resource, outcome, detail, \
                 ledger_log, ledger_index FROM audit_events \
                 WHERE tenant_id = $1 AND ledger_log = $2 AND ledger_index = $3"
            ),
            &[
                Val::Uuid(*tenant.as_uuid()),
                Val::Text(log),
                Val::Int(index),
            ],
        )
        .await?
        .as_ref()
        .map(from_row)
        .transpose()
    }

    /// The tenant's audit records after `after_seq`, oldest first, at most `limit`.
    pub async fn list_audit(
        &mut self,
        tenant: TenantId,
        after_seq: i64,
        limit: i64,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        if !self.scope().allows(tenant) {
            return Ok(Vec::new());
        }
        self.fetch_all(
            &sql!(
                "SELECT seq, tenant_id, at, request_id, actor, action, resource, outcome, detail, \
                 ledger_log, ledger_index FROM audit_events WHERE tenant_id = $1 AND seq > $2 \
                 ORDER BY seq LIMIT $3"
            ),
            &[
                Val::Uuid(*tenant.as_uuid()),
                Val::Int(after_seq),
                Val::Int(limit),
            ],
        )
        .await?
        .iter()
        .map(from_row)
        .collect()
    }
}
