//! Webhook endpoints, their deliveries, and replay of the dead-letter list. See
//! [`crate::webhooks`] and docs/webhooks.md.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use rampart_store::{DeliveryState, WebhookDeliveryRecord, WebhookEndpointRecord};
use rampart_types::{AuditAction, DeliveryId, EndpointId, Outcome, Problem, Timestamp};
use rampart_webhooks::{SecretKey, WebhookSecret};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::credentials::audit;
use crate::edge::no_store;
use crate::error::{ApiError, ErrorKind};
use crate::extract::{
    ApiJson, ApiPath, ApiQuery, Authed, NeedWebhooksManage, OptionalJson, Read, Write,
    duration_field,
};
use crate::state::AppState;
use crate::webhooks::{EndpointSpec, check_url, insert_endpoint, key_generation, seal_key};

const MAX_EVENT_TYPES: usize = 64;
const MAX_OVERLAP: std::time::Duration = std::time::Duration::from_secs(30 * 86_400);
const MAX_DESCRIPTION: usize = 500;
const EVENT_TYPE_PATTERN: &str = r"^(\*|[a-z_]+(\.[a-z_]+)?|[a-z_]+\.\*)$";

/// One event-type pattern, as documented.
pub struct EventTypePattern;

impl utoipa::PartialSchema for EventTypePattern {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .max_length(Some(128))
            .pattern(Some(EVENT_TYPE_PATTERN))
            .description(Some(
                "An event type (`secret.write`), a family (`secret.*`) or every event (`*`)",
            ))
            .into()
    }
}

impl ToSchema for EventTypePattern {}

/// A new endpoint.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewEndpoint {
    /// Where messages are posted: `https://` (or `http://`), a host name or IPv4 address, an
    /// optional port, path and query; no credentials, no fragment.
    #[schema(
        min_length = 1,
        max_length = 2048,
        pattern = "^https?://[A-Za-z0-9.-]+(:([1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5]))?(/[A-Za-z0-9._~!$&'()*+,;=:@%/-]*)?([?][A-Za-z0-9._~!$&'()*+,;=:@%/?-]*)?$"
    )]
    pub url: String,
    #[schema(max_length = 500)]
    #[serde(default)]
    pub description: String,
    /// Event types it receives: exact (`secret.write`), a family (`secret.*`) or `*`; none:
    /// every event.
    #[schema(max_items = 64, value_type = Vec<EventTypePattern>)]
    #[serde(default)]
    pub event_types: Vec<String>,
    /// `v1` (default): HMAC-SHA256 under a `whsec_` secret shown once. `v1a`: Ed25519; only
    /// the public key (`whpk_`) is ever shown.
    #[schema(pattern = "^v1a?$")]
    pub scheme: Option<String>,
}

/// Changes to an endpoint; absent fields stay as they are.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EndpointChange {
    #[schema(
        min_length = 1,
        max_length = 2048,
        pattern = "^https?://[A-Za-z0-9.-]+(:([1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5]))?(/[A-Za-z0-9._~!$&'()*+,;=:@%/-]*)?([?][A-Za-z0-9._~!$&'()*+,;=:@%/?-]*)?$"
    )]
    pub url: Option<String>,
    #[schema(max_length = 500)]
    pub description: Option<String>,
    #[schema(max_items = 64, value_type = Option<Vec<EventTypePattern>>)]
    pub event_types: Option<Vec<String>>,
    /// `true` re-enables a disabled endpoint (its failure run starts again); `false` disables
    /// it, moving its pending deliveries to the dead-letter list.
    pub enabled: Option<bool>,
}

/// An endpoint as its owner sees it: never its secret.
#[derive(Debug, Serialize, ToSchema)]
pub struct EndpointView {
    #[schema(value_type = String, format = Uuid)]
    pub id: Uuid,
    pub url: String,
    pub description: String,
    pub event_types: Vec<String>,
    pub scheme: String,
    pub enabled: bool,
    pub disabled_reason: Option<String>,
    /// Start of the current run of failed attempts, if one is going on.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub failing_since: Option<Timestamp>,
    /// Until when the previous key still signs alongside the current one.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub previous_key_until: Option<Timestamp>,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: Timestamp,
}

impl EndpointView {
    fn new(e: &WebhookEndpointRecord, now: Timestamp) -> Self {
        Self {
            id: e.id,
            url: e.url.clone(),
            description: e.description.clone(),
            event_types: e.event_types.clone(),
            scheme: e.scheme.clone(),
            enabled: e.enabled,
            disabled_reason: e.disabled_reason.clone(),
            failing_since: e.failing_since,
            previous_key_until: e.previous_until.filter(|u| *u > now),
            created_at: e.created_at,
            updated_at: e.updated_at,
        }
    }
}

/// An endpoint with its new key: the `whsec_` secret (`v1`, shown this once) or the `whpk_`
/// public key receivers verify with (`v1a`).
#[derive(Serialize, ToSchema)]
pub struct EndpointWithKey {
    #[serde(flatten)]
    pub endpoint: EndpointView,
    /// `whsec_…` (shown once; Rampart cannot show it again) or `whpk_…`.
    pub key: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EndpointList {
    pub endpoints: Vec<EndpointView>,
}

/// `scheme://host[:port]` of an endpoint URL, for the audit trail: paths and queries often carry
/// the receiver's own access token (`…/hooks/T0K3N`, `?token=…`), so they are not recorded.
fn origin(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    format!("{scheme}://{}", &rest[..end])
}

fn check_event_types(types: &[String]) -> Result<(), ApiError> {
    if types.len() > MAX_EVENT_TYPES {
        return Err(ApiError::validation(format!(
            "`event_types` holds at most {MAX_EVENT_TYPES} patterns"
        )));
    }
    for t in types {
        if t.len() > 128 {
            return Err(ApiError::validation(
                "an event type is at most 128 characters",
            ));
        }
        let (family, rest) = t.split_once('.').unwrap_or((t.as_str(), ""));
        let word =
            |w: &str| !w.is_empty() && w.bytes().all(|b| b.is_ascii_lowercase() || b == b'_');
        let ok = t == "*" || (word(family) && (rest.is_empty() || rest == "*" || word(rest)));
        if !ok {
            return Err(ApiError::validation(format!(
                "event type `{}` does not match {EVENT_TYPE_PATTERN}",
                rampart_types::truncate_for_display(t)
            )));
        }
    }
    Ok(())
}

fn check_fields(url: Option<&str>, description: Option<&str>) -> Result<(), ApiError> {
    if let Some(u) = url {
        if u.len() > 2048 {
            return Err(ApiError::validation("`url` is at most 2048 bytes"));
        }
        check_url(u).map_err(|e| ApiError::validation(format!("`url`: {e}")))?;
    }
    if description.is_some_and(|d| d.chars().count() > MAX_DESCRIPTION) {
        return Err(ApiError::validation(format!(
            "`description` is at most {MAX_DESCRIPTION} characters"
        )));
    }
    Ok(())
}

/// A new key for scheme `scheme`: (its text, to seal; what to show).
fn new_key(scheme: &str) -> Result<(rampart_crypto::Secret<String>, String), ApiError> {
    if scheme == "v1a" {
        let k = SecretKey::generate().map_err(ApiError::internal)?;
        let public = k.public_key().to_text();
        Ok((k.to_text(), public))
    } else {
        let s = WebhookSecret::generate().map_err(ApiError::internal)?;
        let text = s.to_text();
        let shown = text.expose().clone();
        Ok((text, shown))
    }
}

async fn load(
    auth: &mut Authed<impl crate::extract::Access, NeedWebhooksManage>,
    id: EndpointId,
) -> Result<WebhookEndpointRecord, ApiError> {
    auth.tx
        .webhook_endpoint(auth.principal.tenant, *id.as_uuid())
        .await?
        .ok_or_else(|| ApiError::not_found("webhook endpoint"))
}

async fn record_change(
    state: &AppState,
    auth: &mut Authed<Write, NeedWebhooksManage>,
    id: Uuid,
    detail: serde_json::Value,
) -> Result<(), ApiError> {
    let event = auth.ctx.event(
        auth.principal.tenant,
        &auth.principal.subject,
        AuditAction::WebhookEndpointChange,
        format!("webhook_endpoint:{id}"),
        Outcome::Success,
        detail,
        state.clock.now(),
    );
    audit(state, &mut auth.tx, event).await
}

/// Create an endpoint. The response carries its key once: the `whsec_` secret (scheme `v1`) or
/// the `whpk_` public key (`v1a`).
#[utoipa::path(post, path = "/v1/webhooks/endpoints", tag = "webhooks",
    request_body = NewEndpoint,
    security(("bearer" = ["webhooks:manage"])),
    responses((status = 201, description = "Created", body = EndpointWithKey)))]
pub async fn create_endpoint(
    State(state): State<AppState>,
    mut auth: Authed<Write, NeedWebhooksManage>,
    ApiJson(body): ApiJson<NewEndpoint>,
) -> Result<Response, ApiError> {
    check_fields(Some(&body.url), Some(&body.description))?;
    check_event_types(&body.event_types)?;
    let scheme = body.scheme.as_deref().unwrap_or("v1");
    if !matches!(scheme, "v1" | "v1a") {
        return Err(ApiError::validation("`scheme` is `v1` or `v1a`"));
    }
    let tenant = auth.principal.tenant;
    let now = state.clock.now();
    let (text, shown) = new_key(scheme)?;
    let spec = EndpointSpec {
        url: body.url,
        description: body.description,
        event_types: body.event_types,
        scheme: scheme.to_owned(),
    };
    let record = insert_endpoint(&state, &mut auth.tx, tenant, spec, text.expose(), now)
        .await
        .map_err(ApiError::internal)?;
    let id = record.id;
    let detail = json!({
        "created": true, "target": origin(&record.url), "event_types": record.event_types,
        "scheme": record.scheme,
    });
    record_change(&state, &mut auth, id, detail).await?;
    auth.tx.commit().await?;
    let body = EndpointWithKey {
        endpoint: EndpointView::new(&record, now),
        key: shown,
    };
    Ok(no_store((StatusCode::CREATED, Json(body)).into_response()))
}

/// The tenant's endpoints.
#[utoipa::path(get, path = "/v1/webhooks/endpoints", tag = "webhooks",
    security(("bearer" = ["webhooks:manage"])),
    responses((status = 200, description = "Endpoints", body = EndpointList)))]
pub async fn list_endpoints(
    State(state): State<AppState>,
    mut auth: Authed<Read, NeedWebhooksManage>,
) -> Result<Json<EndpointList>, ApiError> {
    let now = state.clock.now();
    let records = auth
        .tx
        .webhook_endpoints(auth.principal.tenant, false)
        .await?;
    Ok(Json(EndpointList {
        endpoints: records.iter().map(|e| EndpointView::new(e, now)).collect(),
    }))
}

/// One endpoint.
#[utoipa::path(get, path = "/v1/webhooks/endpoints/{id}", tag = "webhooks",
    params(("id" = String, Path, format = Uuid)),
    security(("bearer" = ["webhooks:manage"])),
    responses(
        (status = 200, description = "The endpoint", body = EndpointView),
        (status = 404, description = "No such endpoint", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn get_endpoint(
    State(state): State<AppState>,
    mut auth: Authed<Read, NeedWebhooksManage>,
    ApiPath(id): ApiPath<EndpointId>,
) -> Result<Json<EndpointView>, ApiError> {
    let e = load(&mut auth, id).await?;
    Ok(Json(EndpointView::new(&e, state.clock.now())))
}

/// Change an endpoint's URL, description or event types, or disable / re-enable it.
#[utoipa::path(patch, path = "/v1/webhooks/endpoints/{id}", tag = "webhooks",
    params(("id" = String, Path, format = Uuid)),
    request_body = EndpointChange,
    security(("bearer" = ["webhooks:manage"])),
    responses(
        (status = 200, description = "Changed", body = EndpointView),
        (status = 404, description = "No such endpoint", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn change_endpoint(
    State(state): State<AppState>,
    mut auth: Authed<Write, NeedWebhooksManage>,
    ApiPath(id): ApiPath<EndpointId>,
    ApiJson(body): ApiJson<EndpointChange>,
) -> Result<Json<EndpointView>, ApiError> {
    check_fields(body.url.as_deref(), body.description.as_deref())?;
    if let Some(t) = &body.event_types {
        check_event_types(t)?;
    }
    let mut e = load(&mut auth, id).await?;
    let now = state.clock.now();
    if let Some(u) = &body.url {
        e.url.clone_from(u);
    }
    if let Some(d) = &body.description {
        e.description.clone_from(d);
    }
    if let Some(t) = &body.event_types {
        e.event_types.clone_from(t);
    }
    match body.enabled {
        Some(true) if !e.enabled => {
            e.enabled = true;
            e.disabled_reason = None;
            e.failing_since = None;
        }
        Some(false) if e.enabled => {
            e.enabled = false;
            e.disabled_reason = Some(format!("disabled by {}", auth.principal.subject));
            auth.tx
                .kill_pending_webhook_deliveries(e.tenant_id, e.id, "endpoint disabled", now)
                .await?;
        }
        _ => {}
    }
    e.updated_at = now;
    auth.tx.upsert_webhook_endpoint(&e).await?;
    let detail = json!({
        "target": body.url.as_deref().map(origin), "description_changed": body.description.is_some(),
        "event_types": body.event_types, "enabled": body.enabled,
    });
    record_change(&state, &mut auth, e.id, detail).await?;
    auth.tx.commit().await?;
    Ok(Json(EndpointView::new(&e, now)))
}

/// Delete an endpoint and its deliveries.
#[utoipa::path(delete, path = "/v1/webhooks/endpoints/{id}", tag = "webhooks",
    params(("id" = String, Path, format = Uuid)),
    security(("bearer" = ["webhooks:manage"])),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such endpoint", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn delete_endpoint(
    State(state): State<AppState>,
    mut auth: Authed<Write, NeedWebhooksManage>,
    ApiPath(id): ApiPath<EndpointId>,
) -> Result<Response, ApiError> {
    if !auth
        .tx
        .delete_webhook_endpoint(auth.principal.tenant, *id.as_uuid())
        .await?
    {
        return Err(ApiError::not_found("webhook endpoint"));
    }
    record_change(&state, &mut auth, *id.as_uuid(), json!({ "deleted": true })).await?;
    auth.tx.commit().await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateEndpointKey {
    /// How long the previous key keeps signing beside the new one, such as `24h` (default
    /// `webhook_secret_overlap`; at most 30 days, longer asks are cut to that); `0s` ends it at
    /// once.
    #[schema(max_length = 32, pattern = r"^([0-9]{1,9}(ms|s|m|h|d)){1,3}$")]
    pub overlap: Option<String>,
}

/// Rotate an endpoint's key. Messages are signed with both keys until the overlap ends, so
/// receivers can switch at their own pace; the response carries the new key once.
#[utoipa::path(post, path = "/v1/webhooks/endpoints/{id}/rotate-key", tag = "webhooks",
    params(("id" = String, Path, format = Uuid)),
    request_body(content = Option<RotateEndpointKey>, description = "Optional"),
    security(("bearer" = ["webhooks:manage"])),
    responses(
        (status = 200, description = "Rotated", body = EndpointWithKey),
        (status = 404, description = "No such endpoint", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn rotate_key(
    State(state): State<AppState>,
    mut auth: Authed<Write, NeedWebhooksManage>,
    ApiPath(id): ApiPath<EndpointId>,
    OptionalJson(body): OptionalJson<RotateEndpointKey>,
) -> Result<Response, ApiError> {
    let overlap = match body.overlap.as_deref() {
        Some(s) => duration_field("overlap", s)?,
        None => state.config.webhook_secret_overlap,
    }
    .min(MAX_OVERLAP);
    let mut e = load(&mut auth, id).await?;
    let now = state.clock.now();
    let (text, shown) = new_key(&e.scheme)?;
    let kek = state
        .secrets
        .active_kek(&mut auth.tx, e.tenant_id, now)
        .await
        .map_err(ApiError::internal)?;
    let generation = key_generation(&e.secret).saturating_add(1);
    let sealed = seal_key(&kek, e.id, generation, text.expose()).map_err(ApiError::internal)?;
    e.previous_secret = Some(std::mem::replace(&mut e.secret, sealed));
    e.previous_until = Some(now.saturating_add(overlap));
    e.updated_at = now;
    auth.tx.upsert_webhook_endpoint(&e).await?;
    let detail =
        json!({ "rotated": true, "generation": generation, "previous_until": e.previous_until });
    record_change(&state, &mut auth, e.id, detail).await?;
    auth.tx.commit().await?;
    let body = EndpointWithKey {
        endpoint: EndpointView::new(&e, now),
        key: shown,
    };
    Ok(no_store(Json(body).into_response()))
}

/// A delivery: one message to one endpoint, and how its attempts went.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryView {
    #[schema(value_type = String, format = Uuid)]
    pub id: Uuid,
    #[schema(value_type = String, format = Uuid)]
    pub endpoint_id: Uuid,
    /// The `webhook-id` of every attempt.
    pub message_id: String,
    pub event_type: String,
    /// `pending`, `delivered` or `dead` (the dead-letter list).
    pub state: String,
    pub attempts: i64,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub next_attempt_at: Option<Timestamp>,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub last_attempt_at: Option<Timestamp>,
    pub last_status: Option<i64>,
    pub last_error: Option<String>,
    /// The message body as sent.
    pub payload: serde_json::Value,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
}

impl From<&WebhookDeliveryRecord> for DeliveryView {
    fn from(d: &WebhookDeliveryRecord) -> Self {
        Self {
            id: d.id,
            endpoint_id: d.endpoint_id,
            message_id: d.message_id.clone(),
            event_type: d.event_type.clone(),
            state: d.state.as_str().to_owned(),
            attempts: d.attempts,
            next_attempt_at: (d.state == DeliveryState::Pending).then_some(d.next_attempt_at),
            last_attempt_at: d.last_attempt_at,
            last_status: d.last_status,
            last_error: d.last_error.clone(),
            payload: serde_json::from_str(&d.payload).unwrap_or(serde_json::Value::Null),
            created_at: d.created_at,
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeliveryQuery {
    /// Only this endpoint's deliveries.
    #[param(value_type = Option<String>, format = Uuid)]
    pub endpoint: Option<EndpointId>,
    /// Only deliveries in this state (`dead`: the dead-letter list).
    #[param(pattern = "^(pending|delivered|dead)$")]
    pub state: Option<String>,
    /// Only deliveries created before this time (the last `created_at` of the previous page).
    #[param(value_type = Option<String>, format = DateTime)]
    pub before: Option<Timestamp>,
    /// At most this many, newest first (1–1000, default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryList {
    pub deliveries: Vec<DeliveryView>,
}

/// The tenant's deliveries, newest first; `state=dead` is the dead-letter list.
#[utoipa::path(get, path = "/v1/webhooks/deliveries", tag = "webhooks", params(DeliveryQuery),
    security(("bearer" = ["webhooks:manage"])),
    responses((status = 200, description = "Deliveries", body = DeliveryList)))]
pub async fn list_deliveries(
    mut auth: Authed<Read, NeedWebhooksManage>,
    ApiQuery(q): ApiQuery<DeliveryQuery>,
) -> Result<Json<DeliveryList>, ApiError> {
    let limit = crate::extract::page_limit(q.limit)?;
    let state = match q.state.as_deref() {
        None => None,
        Some(s) => Some(s.parse::<DeliveryState>().map_err(|_| {
            ApiError::new(
                ErrorKind::InvalidQuery,
                "`state` is `pending`, `delivered` or `dead`",
            )
        })?),
    };
    let records = auth
        .tx
        .webhook_deliveries(
            auth.principal.tenant,
            q.endpoint.map(|e| *e.as_uuid()),
            state,
            q.before,
            limit,
        )
        .await?;
    Ok(Json(DeliveryList {
        deliveries: records.iter().map(DeliveryView::from).collect(),
    }))
}

/// One delivery.
#[utoipa::path(get, path = "/v1/webhooks/deliveries/{id}", tag = "webhooks",
    params(("id" = String, Path, format = Uuid)),
    security(("bearer" = ["webhooks:manage"])),
    responses(
        (status = 200, description = "The delivery", body = DeliveryView),
        (status = 404, description = "No such delivery", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn get_delivery(
    mut auth: Authed<Read, NeedWebhooksManage>,
    ApiPath(id): ApiPath<DeliveryId>,
) -> Result<Json<DeliveryView>, ApiError> {
    let d = auth
        .tx
        .webhook_delivery(auth.principal.tenant, *id.as_uuid())
        .await?
        .ok_or_else(|| ApiError::not_found("webhook delivery"))?;
    Ok(Json(DeliveryView::from(&d)))
}

async fn record_replay(
    state: &AppState,
    auth: &mut Authed<Write, NeedWebhooksManage>,
    resource: String,
    detail: serde_json::Value,
) -> Result<(), ApiError> {
    let event = auth.ctx.event(
        auth.principal.tenant,
        &auth.principal.subject,
        AuditAction::WebhookReplay,
        resource,
        Outcome::Success,
        detail,
        state.clock.now(),
    );
    audit(state, &mut auth.tx, event).await
}

/// Put a dead delivery back in the queue (attempts start again from the first); its endpoint
/// must be enabled.
#[utoipa::path(post, path = "/v1/webhooks/deliveries/{id}/replay", tag = "webhooks",
    params(("id" = String, Path, format = Uuid)),
    security(("bearer" = ["webhooks:manage"])),
    responses(
        (status = 200, description = "Queued again", body = DeliveryView),
        (status = 404, description = "No such delivery", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The delivery is not dead, or its endpoint is disabled", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn replay_delivery(
    State(state): State<AppState>,
    mut auth: Authed<Write, NeedWebhooksManage>,
    ApiPath(id): ApiPath<DeliveryId>,
) -> Result<Json<DeliveryView>, ApiError> {
    let tenant = auth.principal.tenant;
    let mut d = auth
        .tx
        .webhook_delivery(tenant, *id.as_uuid())
        .await?
        .ok_or_else(|| ApiError::not_found("webhook delivery"))?;
    if d.state != DeliveryState::Dead {
        return Err(ApiError::conflict(format!(
            "the delivery is `{}`; only dead deliveries are replayed",
            d.state.as_str()
        )));
    }
    let enabled = auth
        .tx
        .webhook_endpoint(tenant, d.endpoint_id)
        .await?
        .is_some_and(|e| e.enabled);
    if !enabled {
        return Err(ApiError::conflict("the delivery's endpoint is disabled"));
    }
    let now = state.clock.now();
    d.state = DeliveryState::Pending;
    d.attempts = 0;
    d.next_attempt_at = now;
    d.updated_at = now;
    auth.tx.upsert_webhook_delivery(&d).await?;
    let detail = json!({ "delivery": d.id, "endpoint": d.endpoint_id, "message_id": d.message_id });
    record_replay(
        &state,
        &mut auth,
        format!("webhook_delivery:{}", d.id),
        detail,
    )
    .await?;
    auth.tx.commit().await?;
    state.webhook_wake.notify_one();
    Ok(Json(DeliveryView::from(&d)))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Replayed {
    /// How many dead deliveries were queued again.
    pub replayed: u64,
}

/// Put every dead delivery of an endpoint back in the queue (bulk replay, e.g. after the
/// receiver was fixed and the endpoint re-enabled).
#[utoipa::path(post, path = "/v1/webhooks/endpoints/{id}/replay", tag = "webhooks",
    params(("id" = String, Path, format = Uuid)),
    security(("bearer" = ["webhooks:manage"])),
    responses(
        (status = 200, description = "Queued again", body = Replayed),
        (status = 404, description = "No such endpoint", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The endpoint is disabled", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn replay_endpoint(
    State(state): State<AppState>,
    mut auth: Authed<Write, NeedWebhooksManage>,
    ApiPath(id): ApiPath<EndpointId>,
) -> Result<Json<Replayed>, ApiError> {
    let e = load(&mut auth, id).await?;
    if !e.enabled {
        return Err(ApiError::conflict(
            "the endpoint is disabled; enable it first",
        ));
    }
    let now = state.clock.now();
    let replayed = auth
        .tx
        .replay_dead_webhook_deliveries(e.tenant_id, e.id, now)
        .await?;
    record_replay(
        &state,
        &mut auth,
        format!("webhook_endpoint:{}", e.id),
        json!({ "endpoint": e.id, "replayed": replayed }),
    )
    .await?;
    auth.tx.commit().await?;
    state.webhook_wake.notify_one();
    Ok(Json(Replayed { replayed }))
}
