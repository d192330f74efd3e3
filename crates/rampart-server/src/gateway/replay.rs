//! Replay safety. Every call's original request — as the client sent it, before redaction or
//! re-injection — is sealed under the tenant KEK with the call's audit record, bound to its
//! request id and hash-bound (the audit record carries its SHA-256). A retry carrying the same
//! `Idempotency-Key` (scoped to the mission, or to the token subject outside missions) replays
//! that sealed original rather than whatever it sends the second time; a holder of
//! `sentinel:reveal` can read any call's original back exactly.

use axum::http::HeaderMap;
use rampart_crypto::{ct_eq, sha256};
use rampart_secrets::small_key_version;
use rampart_store::{GatewayRequestRecord, Tx};
use rampart_types::{TenantId, Timestamp, lower_hex};
use serde_json::Value;
use zeroize::Zeroizing;

use super::directives::usage_key;
use crate::error::ApiError;
use crate::extract::Principal;
use crate::state::AppState;

const HEADER: &str = "idempotency-key";
const MAX_KEY: usize = 256;

/// What the audit record says about the call's original request.
#[derive(Debug, Default, Clone)]
pub struct Replay {
    /// `<mission or subject>/<Idempotency-Key>`, when the call carried one.
    pub key: Option<String>,
    /// The request id of the call whose original this one replayed.
    pub replayed_from: Option<String>,
    /// Whether the retry sent something other than the original.
    pub differed: Option<bool>,
    /// SHA-256 (hex) of the original request.
    pub sha256: Option<String>,
}

fn context(request_id: &str) -> String {
    format!("gateway-request/{request_id}")
}

fn canonical(body: &Value) -> Result<Zeroizing<Vec<u8>>, ApiError> {
    serde_json::to_vec(body)
        .map(Zeroizing::new)
        .map_err(ApiError::internal)
}

/// Reads the call's idempotency key; if an earlier call recorded it, puts that call's original
/// request in place of `body`.
pub async fn resolve(
    state: &AppState,
    tx: &mut Tx,
    p: &Principal,
    headers: &HeaderMap,
    body: &mut Value,
) -> Result<Replay, ApiError> {
    let key = match headers.get(HEADER) {
        None => None,
        Some(v) => {
            let k = v
                .to_str()
                .ok()
                .filter(|k| {
                    !k.is_empty() && k.len() <= MAX_KEY && k.bytes().all(|b| b.is_ascii_graphic())
                })
                .ok_or_else(|| {
                    ApiError::validation(format!(
                        "`Idempotency-Key` must be 1 to {MAX_KEY} visible ASCII characters"
                    ))
                })?;
            Some(format!("{}/{k}", usage_key(p)))
        }
    };
    let sent = sha256(&canonical(body)?);
    if let Some(k) = &key
        && let Some(record) = tx.gateway_request_by_key(p.tenant, k).await?
    {
        *body = open(state, tx, &record).await?;
        return Ok(Replay {
            key,
            replayed_from: Some(record.request_id),
            differed: Some(!ct_eq(&sent, &record.body_sha256)),
            sha256: Some(lower_hex(&record.body_sha256)),
        });
    }
    Ok(Replay {
        key,
        replayed_from: None,
        differed: None,
        sha256: Some(lower_hex(&sent)),
    })
}

/// A recorded call's original request, opened and checked against its hash.
pub async fn open(
    state: &AppState,
    tx: &mut Tx,
    record: &GatewayRequestRecord,
) -> Result<Value, ApiError> {
    let version = small_key_version(&record.sealed_body)
        .ok_or_else(|| ApiError::internal("a sealed gateway request is truncated"))?;
    let kek = state
        .secrets
        .kek(tx, record.tenant_id, i64::from(version))
        .await?;
    let plain = kek
        .open_small(&context(&record.request_id), &record.sealed_body)
        .map_err(ApiError::internal)?;
    if !ct_eq(&sha256(plain.expose()), &record.body_sha256) {
        return Err(ApiError::internal(
            "a sealed gateway request does not match its recorded hash",
        ));
    }
    serde_json::from_slice(plain.expose()).map_err(ApiError::internal)
}

/// Seals a call's original request under the tenant's active KEK, in `tx`. `false` when a call
/// with the same idempotency key was recorded first.
pub async fn seal(
    state: &AppState,
    tx: &mut Tx,
    tenant: TenantId,
    request_id: &str,
    key: Option<&str>,
    original: &Value,
    now: Timestamp,
) -> Result<bool, ApiError> {
    let bytes = canonical(original)?;
    let kek = state.secrets.active_kek(tx, tenant, now).await?;
    let sealed_body = kek
        .seal_small(&context(request_id), &bytes)
        .map_err(ApiError::internal)?;
    Ok(tx
        .insert_gateway_request(&GatewayRequestRecord {
            tenant_id: tenant,
            request_id: request_id.to_owned(),
            idempotency_key: key.map(str::to_owned),
            sealed_body,
            body_sha256: sha256(&bytes).to_vec(),
            created_at: now,
        })
        .await?)
}

/// Records the original of a call with a new idempotency key before the call is forwarded, in
/// a transaction of its own, so that a call with the same key that runs at the same time finds
/// it: that call is refused (`409`) instead of forwarding what it sent itself, and its retry
/// replays this original.
pub async fn record_first(
    state: &AppState,
    p: &Principal,
    request_id: &str,
    key: &str,
    original: &Value,
    now: Timestamp,
) -> Result<(), ApiError> {
    let mut tx = state.store.begin(p.scope()).await?;
    if !seal(
        state,
        &mut tx,
        p.tenant,
        request_id,
        Some(key),
        original,
        now,
    )
    .await?
    {
        return Err(ApiError::conflict(
            "another call with this `Idempotency-Key` was recorded while this one was being \
             checked; retry to replay that call's original",
        ));
    }
    tx.commit().await?;
    Ok(())
}

/// Originals re-sealed per transaction when a KEK is re-wrapped.
const RESEAL_BATCH: i64 = 500;

/// Re-seals, under the active KEK, the next originals sealed under version `from` (after
/// request id `after`), as part of re-wrapping that version before it is revoked. Returns how
/// many, and the last request id; 0 when none are left.
pub async fn reseal_batch(
    state: &AppState,
    tx: &mut Tx,
    tenant: TenantId,
    from: i64,
    after: &str,
    now: Timestamp,
) -> Result<(usize, String), ApiError> {
    let version = u32::try_from(from)
        .map_err(|_| ApiError::internal(format!("key version {from} out of range")))?;
    let batch = tx
        .gateway_requests_sealed_under(tenant, version, after, RESEAL_BATCH)
        .await?;
    let Some(last) = batch.last().map(|r| r.request_id.clone()) else {
        return Ok((0, after.to_owned()));
    };
    let old = state.secrets.kek(tx, tenant, from).await?;
    let to = state.secrets.active_kek(tx, tenant, now).await?;
    for r in &batch {
        let context = context(&r.request_id);
        let plain = old
            .open_small(&context, &r.sealed_body)
            .map_err(ApiError::internal)?;
        let resealed = to
            .seal_small(&context, plain.expose())
            .map_err(ApiError::internal)?;
        tx.reseal_gateway_request(tenant, &r.request_id, &resealed)
            .await?;
    }
    Ok((batch.len(), last))
}
