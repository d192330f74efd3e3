//! The tamper-evident ledger through the API: checkpoints, a tenant's own entries, proofs,
//! receipts, erasure, zone health.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rampart_ledger::entry::Record;
use rampart_ledger::{Hash, Ledger, LedgerError, SignedCheckpoint, leaf_hash};
use rampart_types::{AuditAction, Outcome, Problem, TenantId, parse_duration};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};

use crate::credentials::audit;
use crate::error::{ApiError, ErrorKind};
use crate::extract::{
    ApiJson, ApiPath, ApiQuery, Authed, NeedAuditRead, NeedKeysManage, NeedTenantsAdmin, Read,
    Write, check_reason,
};
use crate::state::AppState;

fn b64(h: &Hash) -> String {
    STANDARD.encode(h.0)
}

fn ledger_error(e: LedgerError) -> ApiError {
    match e {
        LedgerError::NoSuchEntry(i) => ApiError::not_found(&format!("ledger entry {i}")),
        LedgerError::Timeout(i) => ApiError::new(
            ErrorKind::Timeout,
            format!("no checkpoint covered entry {i} within the wait"),
        ),
        other => ApiError::new(ErrorKind::Unavailable, "the audit ledger is unavailable")
            .with_cause(other),
    }
}

/// Runs a (file-reading) ledger call off the async threads.
async fn blocking<T: Send + 'static>(
    state: &AppState,
    f: impl FnOnce(&Ledger) -> Result<T, LedgerError> + Send + 'static,
) -> Result<T, ApiError> {
    let ledger = state.ledger.clone();
    tokio::task::spawn_blocking(move || f(&ledger))
        .await
        .map_err(ApiError::internal)?
        .map_err(ledger_error)
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CheckpointView {
    /// The log's identity (C2SP tlog-checkpoint origin).
    pub origin: String,
    pub size: u64,
    /// Base64 RFC 6962 root hash.
    pub root_hash: String,
    /// The checkpoint as a C2SP signed note.
    pub note: String,
}

impl From<&SignedCheckpoint> for CheckpointView {
    fn from(c: &SignedCheckpoint) -> Self {
        Self {
            origin: c.checkpoint.origin.clone(),
            size: c.checkpoint.size,
            root_hash: b64(&c.checkpoint.root),
            note: c.note.clone(),
        }
    }
}

fn latest(state: &AppState) -> Result<Arc<SignedCheckpoint>, ApiError> {
    state.ledger.latest_checkpoint().ok_or_else(|| {
        ApiError::new(
            ErrorKind::Unavailable,
            "no checkpoint has been published yet",
        )
    })
}

/// The latest signed checkpoint of the audit ledger.
#[utoipa::path(get, path = "/v1/audit/checkpoint", tag = "audit",
    security(("bearer" = ["audit:read"])),
    responses((status = 200, description = "The latest checkpoint", body = CheckpointView)))]
pub async fn checkpoint(
    State(state): State<AppState>,
    _auth: Authed<Read, NeedAuditRead>,
) -> Result<Json<CheckpointView>, ApiError> {
    Ok(Json(CheckpointView::from(&*latest(&state)?)))
}

/// Publishes a checkpoint of everything recorded so far.
#[utoipa::path(post, path = "/v1/audit/checkpoint", tag = "audit",
    security(("bearer" = ["keys:manage"])),
    responses((status = 200, description = "The new (or unchanged latest) checkpoint", body = CheckpointView)))]
pub async fn publish_checkpoint(
    State(state): State<AppState>,
    _auth: Authed<Read, NeedKeysManage>,
) -> Result<Json<CheckpointView>, ApiError> {
    let cp = state.ledger.checkpoint_now().await.map_err(ledger_error)?;
    Ok(Json(CheckpointView::from(&*cp)))
}

/// The ledger's checkpoint verifier key, `<name>+<id>+<key>` (C2SP signed note, Ed25519).
#[utoipa::path(get, path = "/v1/audit/verifier-key", tag = "audit",
    responses((status = 200, description = "The verifier key", body = String, content_type = "text/plain")))]
pub async fn verifier_key(State(state): State<AppState>) -> Response {
    let mut res = format!("{}\n", state.ledger.verifier().encode()).into_response();
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    res
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct TenantParam {
    /// Another tenant (platform operator only).
    #[param(value_type = Option<String>, format = Uuid)]
    pub tenant_id: Option<TenantId>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RecordView {
    pub timestamp: String,
    pub tenant_id: String,
    pub request_id: Option<String>,
    pub actor: String,
    pub action: String,
    pub resource: String,
    pub decision: String,
    pub policy_version: String,
    #[schema(value_type = Object)]
    pub payload: serde_json::Value,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EntryView {
    pub index: u64,
    /// Base64 RFC 6962 leaf hash of `entry`.
    pub leaf_hash: String,
    /// Base64 of the stored (sealed) entry.
    pub entry: String,
    /// The tenant's ledger keys were destroyed: the record cannot be read any more.
    pub erased: bool,
    pub record: Option<RecordView>,
}

/// Checks that entry `index` of this node's ledger is one of the caller's (or the named
/// tenant's) records.
async fn own_entry<A: crate::extract::Access, N: crate::extract::Need>(
    state: &AppState,
    auth: &mut Authed<A, N>,
    tenant: Option<TenantId>,
    index: u64,
) -> Result<TenantId, ApiError> {
    let tenant = auth.act_in(tenant).await?;
    if auth
        .tx
        .audit_at_ledger_position(tenant, state.ledger.origin(), index)
        .await?
        .is_none()
    {
        return Err(ApiError::not_found(&format!("ledger entry {index}")));
    }
    Ok(tenant)
}

/// Ledger index path parameter.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Path)]
#[expect(dead_code, reason = "documentation of the path parameter only")]
pub struct IndexPath {
    /// Position in the ledger.
    #[param(minimum = 0)]
    index: u64,
}

/// One of the tenant's audit records as stored in the ledger, opened with its key (unless
/// erased).
#[utoipa::path(get, path = "/v1/audit/entries/{index}", tag = "audit",
    params(IndexPath, TenantParam),
    security(("bearer" = ["audit:read"])),
    responses(
        (status = 200, description = "The entry", body = EntryView),
        (status = 404, description = "No such entry, or not the tenant's", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn entry(
    State(state): State<AppState>,
    mut auth: Authed<Read, NeedAuditRead>,
    ApiPath(index): ApiPath<LedgerIndex>,
    ApiQuery(q): ApiQuery<TenantParam>,
) -> Result<Json<EntryView>, ApiError> {
    let index = index.0;
    let tenant = own_entry(&state, &mut auth, q.tenant_id, index).await?;
    let bytes = blocking(&state, move |l| l.entry(index)).await?;
    let keys = state
        .ledger_keys
        .live(&mut auth.tx, tenant)
        .await
        .map_err(ApiError::audit_unavailable)?;
    let record = keys
        .iter()
        .find_map(|k| Record::open(k, &bytes).ok())
        .filter(|r| r.tenant_id == tenant);
    Ok(Json(EntryView {
        index,
        leaf_hash: b64(&leaf_hash(&bytes)),
        entry: STANDARD.encode(&bytes),
        erased: record.is_none(),
        record: record.map(|r| RecordView {
            timestamp: r.timestamp.to_rfc3339(),
            tenant_id: r.tenant_id.to_string(),
            request_id: r.request_id.map(|id| id.to_string()),
            actor: r.actor,
            action: r.action,
            resource: r.resource,
            decision: r.decision,
            policy_version: r.policy_version,
            payload: serde_json::from_slice(&r.payload).unwrap_or(serde_json::Value::Null),
        }),
    }))
}

/// A ledger index in a path.
#[derive(Debug, Clone, Copy)]
pub struct LedgerIndex(pub u64);

impl std::str::FromStr for LedgerIndex {
    type Err = rampart_types::IdParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.parse()
            .map(LedgerIndex)
            .map_err(|_| rampart_types::IdParseError {
                kind: rampart_types::truncate_for_display(s),
                what: "ledger index",
            })
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct InclusionView {
    pub index: u64,
    /// The tree size the proof is for.
    pub size: u64,
    pub leaf_hash: String,
    /// Base64 hashes, RFC 6962 audit path order.
    pub proof: Vec<String>,
    /// The signed checkpoint of `size` the proof leads to.
    pub checkpoint: CheckpointView,
}

async fn inclusion(
    state: &AppState,
    index: u64,
    cp: Arc<SignedCheckpoint>,
) -> Result<InclusionView, ApiError> {
    let size = cp.checkpoint.size;
    let (proof, leaf) = blocking(state, move |l| {
        Ok((l.inclusion_proof(index, size)?, l.leaf_hash(index)?))
    })
    .await?;
    Ok(InclusionView {
        index,
        size,
        leaf_hash: b64(&leaf),
        proof: proof.iter().map(b64).collect(),
        checkpoint: CheckpointView::from(&*cp),
    })
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct InclusionQuery {
    #[param(minimum = 0)]
    pub index: u64,
    /// Another tenant (platform operator only).
    #[param(value_type = Option<String>, format = Uuid)]
    pub tenant_id: Option<TenantId>,
}

/// Inclusion proof of one of the tenant's entries in the latest checkpoint.
#[utoipa::path(get, path = "/v1/audit/proofs/inclusion", tag = "audit",
    params(InclusionQuery),
    security(("bearer" = ["audit:read"])),
    responses(
        (status = 200, description = "The proof", body = InclusionView),
        (status = 404, description = "No such entry, not the tenant's, or not yet in a checkpoint", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn inclusion_proof(
    State(state): State<AppState>,
    mut auth: Authed<Read, NeedAuditRead>,
    ApiQuery(q): ApiQuery<InclusionQuery>,
) -> Result<Json<InclusionView>, ApiError> {
    own_entry(&state, &mut auth, q.tenant_id, q.index).await?;
    let cp = latest(&state)?;
    if cp.checkpoint.size <= q.index {
        return Err(ApiError::new(
            ErrorKind::NotFound,
            format!(
                "entry {} is not in a checkpoint yet; GET /v1/audit/receipts/{} waits for one",
                q.index, q.index
            ),
        ));
    }
    Ok(Json(inclusion(&state, q.index, cp).await?))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ReceiptQuery {
    /// How long to wait for a checkpoint, e.g. `20s` (default 10s; at most one second less than
    /// the server's `request_timeout`).
    #[param(pattern = r"^([0-9]{1,9}(ms|s|m|h|d)){1,3}$")]
    pub wait: Option<String>,
    /// Another tenant (platform operator only).
    #[param(value_type = Option<String>, format = Uuid)]
    pub tenant_id: Option<TenantId>,
}

/// Upgrades a receipt to an inclusion proof: waits until a checkpoint covers the entry.
#[utoipa::path(get, path = "/v1/audit/receipts/{index}", tag = "audit",
    params(IndexPath, ReceiptQuery),
    security(("bearer" = ["audit:read"])),
    responses(
        (status = 200, description = "The proof against the first checkpoint that covers the entry", body = InclusionView),
        (status = 404, description = "No such entry, or not the tenant's", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "No checkpoint within the wait", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn receipt(
    State(state): State<AppState>,
    mut auth: Authed<Read, NeedAuditRead>,
    ApiPath(index): ApiPath<LedgerIndex>,
    ApiQuery(q): ApiQuery<ReceiptQuery>,
) -> Result<Json<InclusionView>, ApiError> {
    // The wait ends before the request's own timeout would cut it short.
    let longest = state
        .config
        .request_timeout
        .saturating_sub(Duration::from_secs(1));
    let wait = match q.wait.as_deref() {
        None => Duration::from_secs(10),
        Some(w) => parse_duration(w)
            .map_err(|e| ApiError::new(ErrorKind::InvalidQuery, format!("`wait`: {e}")))?,
    }
    .min(longest);
    own_entry(&state, &mut auth, q.tenant_id, index.0).await?;
    // Do not hold the transaction (and its connection) while waiting.
    drop(auth);
    let cp = state
        .ledger
        .checkpoint_covering(index.0, wait)
        .await
        .map_err(ledger_error)?;
    Ok(Json(inclusion(&state, index.0, cp).await?))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ConsistencyQuery {
    /// The older tree size.
    #[param(minimum = 0)]
    pub from: u64,
    /// The newer tree size (default: the latest checkpoint's).
    #[param(minimum = 0)]
    pub to: Option<u64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ConsistencyView {
    pub from: u64,
    pub to: u64,
    pub from_root: String,
    pub to_root: String,
    pub proof: Vec<String>,
}

/// Consistency proof between two tree sizes.
#[utoipa::path(get, path = "/v1/audit/proofs/consistency", tag = "audit",
    params(ConsistencyQuery),
    security(("bearer" = ["audit:read"])),
    responses(
        (status = 200, description = "The proof", body = ConsistencyView),
        (status = 404, description = "A size beyond the log", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn consistency_proof(
    State(state): State<AppState>,
    _auth: Authed<Read, NeedAuditRead>,
    ApiQuery(q): ApiQuery<ConsistencyQuery>,
) -> Result<Json<ConsistencyView>, ApiError> {
    let to = match q.to {
        Some(t) => t,
        None => latest(&state)?.checkpoint.size,
    };
    let size = state.ledger.size();
    if let Some(beyond) = [q.from, to].into_iter().find(|&s| s > size) {
        return Err(ApiError::new(
            ErrorKind::NotFound,
            format!("the log has {size} entries, not {beyond}"),
        ));
    }
    if q.from > to {
        return Err(ApiError::new(
            ErrorKind::InvalidQuery,
            "`from` must not exceed `to`",
        ));
    }
    let from = q.from;
    let (proof, r1, r2) = blocking(&state, move |l| {
        Ok((
            l.consistency_proof(from, to)?,
            l.root_at(from)?,
            l.root_at(to)?,
        ))
    })
    .await?;
    Ok(Json(ConsistencyView {
        from,
        to,
        from_root: b64(&r1),
        to_root: b64(&r2),
        proof: proof.iter().map(b64).collect(),
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EraseRequest {
    #[schema(value_type = String, format = Uuid)]
    pub tenant_id: TenantId,
    /// Why, for the audit trail: up to 500 characters, not all whitespace.
    #[schema(min_length = 1, max_length = 500, pattern = r"\S")]
    pub reason: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EraseView {
    pub tenant_id: String,
    /// Key generations destroyed now (0: already erased).
    pub generations_destroyed: u64,
}

/// Erases a tenant's audit records: destroys its ledger keys. The log and all its proofs stay
/// valid; the records' contents cannot be read any more. Platform operator only.
#[utoipa::path(post, path = "/v1/audit/erase", tag = "audit", request_body = EraseRequest,
    security(("bearer" = ["tenants:admin"])),
    responses(
        (status = 200, description = "Erased", body = EraseView),
        (status = 404, description = "No such tenant", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn erase(
    State(state): State<AppState>,
    mut auth: Authed<Write, NeedTenantsAdmin>,
    ApiJson(body): ApiJson<EraseRequest>,
) -> Result<Json<EraseView>, ApiError> {
    check_reason(&body.reason)?;
    let reason = body.reason.trim();
    let now = state.clock.now();
    let tenant = auth.act_in(Some(body.tenant_id)).await?;
    let destroyed = state
        .ledger_keys
        .destroy(&mut auth.tx, tenant, now)
        .await
        .map_err(ApiError::audit_unavailable)?;
    // The erasure is the operator's act: it is recorded in the system tenant's trail.
    auth.tx.set_scope(auth.principal.scope()).await?;
    let event = auth.ctx.event(
        auth.principal.tenant,
        &auth.principal.subject,
        AuditAction::LedgerKeysDestroy,
        format!("tenant:{tenant}"),
        Outcome::Success,
        json!({ "reason": reason, "generations_destroyed": destroyed }),
        now,
    );
    audit(&state, &mut auth.tx, event).await?;
    auth.tx.commit().await?;
    Ok(Json(EraseView {
        tenant_id: tenant.to_string(),
        generations_destroyed: destroyed,
    }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ZoneView {
    pub zone: String,
    pub healthy: bool,
    pub error: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ZonesView {
    pub quorum: usize,
    pub zones: Vec<ZoneView>,
}

/// The ledger's storage zones and their health.
#[utoipa::path(get, path = "/v1/audit/zones", tag = "audit",
    security(("bearer" = ["keys:manage"])),
    responses((status = 200, description = "Zone health", body = ZonesView)))]
pub async fn zones(
    State(state): State<AppState>,
    _auth: Authed<Read, NeedKeysManage>,
) -> Json<ZonesView> {
    Json(ZonesView {
        quorum: state.ledger.quorum(),
        zones: state
            .ledger
            .zone_status()
            .into_iter()
            .map(|z| ZoneView {
                zone: z.zone,
                healthy: z.healthy,
                error: z.error,
            })
            .collect(),
    })
}
