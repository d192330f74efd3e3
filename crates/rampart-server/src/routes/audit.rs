use axum::Json;
use rampart_types::{Outcome, Problem, TenantId, Timestamp};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::error::ApiError;
use crate::extract::{ApiQuery, Authed, NeedAuditRead, Read};

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// Return records after this sequence number (default 0: from the start).
    #[param(minimum = 0)]
    pub after: Option<i64>,
    /// At most this many records (1–1000, default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<i64>,
    /// Another tenant (platform operator only).
    #[param(value_type = Option<String>, format = Uuid)]
    pub tenant_id: Option<TenantId>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AuditEventView {
    /// Position in the tenant's trail; pass the last one as `after` to continue.
    pub seq: i64,
    #[schema(value_type = String, format = DateTime)]
    pub at: Timestamp,
    pub request_id: Option<String>,
    pub actor: String,
    pub action: String,
    pub resource: String,
    #[schema(value_type = String)]
    pub outcome: Outcome,
    #[schema(value_type = Object)]
    pub detail: serde_json::Value,
    /// Where the record sits in the tamper-evident ledger (`GET /v1/audit/entries/{index}`,
    /// `GET /v1/audit/receipts/{index}` on the node whose log it is).
    pub ledger_index: Option<u64>,
    /// The log that holds it: its checkpoint origin (each node writes its own log).
    pub ledger_log: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AuditPage {
    pub events: Vec<AuditEventView>,
    /// The `after` for the next page, when this one was full.
    pub next_after: Option<i64>,
}

/// The tenant's audit trail, oldest first.
#[utoipa::path(get, path = "/v1/audit/events", tag = "audit", params(AuditQuery),
    security(("bearer" = ["audit:read"])),
    responses(
        (status = 200, description = "A page of audit records", body = AuditPage),
        (status = 404, description = "No such tenant, or not yours", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn list_events(
    mut auth: Authed<Read, NeedAuditRead>,
    ApiQuery(q): ApiQuery<AuditQuery>,
) -> Result<Json<AuditPage>, ApiError> {
    let limit = q.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::new(
            crate::error::ErrorKind::InvalidQuery,
            "`limit` must be between 1 and 1000",
        ));
    }
    let after = q.after.unwrap_or(0);
    if after < 0 {
        return Err(ApiError::new(
            crate::error::ErrorKind::InvalidQuery,
            "`after` must not be negative",
        ));
    }
    let tenant = auth.act_in(q.tenant_id).await?;
    let records = auth.tx.list_audit(tenant, after, limit).await?;
    let next_after = (records.len() as i64 == limit)
        .then(|| records.last().map(|r| r.seq))
        .flatten();
    Ok(Json(AuditPage {
        events: records
            .into_iter()
            .map(|r| AuditEventView {
                seq: r.seq,
                at: r.event.at,
                request_id: r.event.request_id.map(|id| id.to_string()),
                actor: r.event.actor,
                action: r.event.action.as_str().to_owned(),
                resource: r.event.resource,
                outcome: r.event.outcome,
                detail: r.event.detail,
                ledger_index: r.ledger.as_ref().map(|p| p.index),
                ledger_log: r.ledger.map(|p| p.log),
            })
            .collect(),
        next_after,
    }))
}
