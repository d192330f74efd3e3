//! Outgoing webhooks.
//!
//! Every audit event is also an event endpoints can subscribe to (its `type` is the audit action,
//! e.g. `secret.write`). [`EventSink`] wraps the audit sink: after the record is written it adds
//! one delivery row per matching endpoint *in the same transaction*, so an event is queued if and
//! only if the change that produced it commits, and a crash loses nothing (the queue is the
//! `webhook_deliveries` table). The worker ([`run_worker`]) claims due deliveries, signs each
//! attempt (Standard Webhooks: `webhook-id`, `webhook-timestamp`, `webhook-signature`), posts it,
//! and records the outcome and an audit record of the attempt. Failures are retried on
//! `webhook_retry_schedule`; a delivery out of attempts goes to the dead-letter list; an endpoint
//! that has not had one success for `webhook_disable_after` is disabled.

use std::collections::HashMap;
use std::net::{IpAddr, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

use rampart_crypto::random_array;
use rampart_secrets::{Kek, small_key_version};
use rampart_store::{
    DeliveryState, Scope, Store, Tx, WebhookDeliveryRecord, WebhookEndpointRecord,
};
use rampart_types::{AuditAction, AuditEvent, Outcome, TenantId, Timestamp};
use rampart_webhooks::{Signer, SigningSecret};
use serde_json::json;
use tokio::sync::{Notify, Semaphore};
use uuid::Uuid;

use crate::audit::{Ahead, AheadFuture, AuditError, AuditFuture, AuditSink};
use crate::state::AppState;

/// The actor of what the worker records.
pub const WORKER: &str = "system:webhooks";
/// Longest response body read back (kept only as an error excerpt).
const MAX_EXCERPT: usize = 256;

/// Whether an endpoint subscribed with `patterns` receives events of `event_type`: no pattern
/// means every event; `*` every event; `secret.*` every type starting `secret.`; otherwise the
/// exact type.
#[must_use]
pub fn subscribed(patterns: &[String], event_type: &str) -> bool {
    patterns.is_empty()
        || patterns.iter().any(|p| match p.strip_suffix('*') {
            Some(prefix) => event_type.starts_with(prefix),
            None => p == event_type,
        })
}

/// The body of an event: `{"type", "timestamp", "data"}`, as the Standard Webhooks
/// specification suggests. Audit details never hold a secret, so neither does this.
#[must_use]
pub fn event_body(event: &AuditEvent) -> String {
    json!({
        "type": event.action.as_str(),
        "timestamp": event.at,
        "data": {
            "tenant_id": event.tenant_id,
            "request_id": event.request_id,
            "actor": event.actor,
            "resource": event.resource,
            "outcome": event.outcome,
            "detail": event.detail,
        }
    })
    .to_string()
}

/// Queues `event` for every enabled endpoint of its tenant that subscribed to it, in `tx`.
pub async fn enqueue(tx: &mut Tx, event: &AuditEvent) -> Result<usize, String> {
    // An attempt's own record is not an event: it would feed itself.
    if event.action == AuditAction::WebhookAttempt {
        return Ok(0);
    }
    let endpoints = tx
        .webhook_endpoints(event.tenant_id, true)
        .await
        .map_err(|e| e.to_string())?;
    let targets: Vec<_> = endpoints
        .iter()
        .filter(|e| subscribed(&e.event_types, event.action.as_str()))
        .collect();
    if targets.is_empty() {
        return Ok(0);
    }
    let body = event_body(event);
    let message_id = rampart_webhooks::new_message_id().map_err(|e| e.to_string())?;
    for endpoint in &targets {
        tx.upsert_webhook_delivery(&WebhookDeliveryRecord {
            tenant_id: event.tenant_id,
            id: Uuid::new_v4(),
            endpoint_id: endpoint.id,
            message_id: message_id.clone(),
            event_type: event.action.as_str().to_owned(),
            payload: body.clone(),
            state: DeliveryState::Pending,
            attempts: 0,
            next_attempt_at: event.at,
            last_attempt_at: None,
            last_status: None,
            last_error: None,
            created_at: event.at,
            updated_at: event.at,
        })
        .await
        .map_err(|e| e.to_string())?;
    }
    Ok(targets.len())
}

/// The audit sink the server records through: the ledger sink, then the webhook queue, then a
/// nudge to the worker.
pub struct EventSink {
    pub inner: Arc<dyn AuditSink>,
    pub wake: Arc<Notify>,
    /// Every recorded event is also announced on the bus (best effort: the ledger is the record).
    pub events: crate::bus::Publisher,
}

impl EventSink {
    /// What follows the record in its transaction: the event's webhook deliveries and its
    /// announcement on the bus.
    async fn fan_out(&self, tx: &mut Tx, event: &AuditEvent) -> Result<(), AuditError> {
        let queued = enqueue(tx, event).await.map_err(AuditError)?;
        if queued > 0 {
            // The worker may run before this transaction commits; it then finds the
            // delivery at its next poll.
            self.wake.notify_one();
        }
        self.events.announce(event, queued);
        Ok(())
    }
}

impl AuditSink for EventSink {
    fn record<'a>(&'a self, tx: &'a mut Tx, event: &'a AuditEvent) -> AuditFuture<'a> {
        Box::pin(async move {
            self.inner.record(tx, event).await?;
            self.fan_out(tx, event).await
        })
    }

    fn append_ahead<'a>(&'a self, store: &'a Store, event: &'a AuditEvent) -> AheadFuture<'a> {
        self.inner.append_ahead(store, event)
    }

    fn record_ahead<'a>(
        &'a self,
        tx: &'a mut Tx,
        event: &'a AuditEvent,
        ahead: Ahead,
    ) -> AuditFuture<'a> {
        Box::pin(async move {
            self.inner.record_ahead(tx, event, ahead).await?;
            self.fan_out(tx, event).await
        })
    }
}

/// The text of a signing key sealed for endpoint `id` at `generation`.
fn context(id: Uuid, generation: u32) -> String {
    format!("webhook-endpoint/{id}/{generation}")
}

/// A sealed endpoint key: generation (4 bytes) then the KEK-sealed `whsec_`/`whsk_` text.
pub fn seal_key(kek: &Kek, id: Uuid, generation: u32, text: &str) -> Result<Vec<u8>, String> {
    let mut out = generation.to_be_bytes().to_vec();
    out.extend(
        kek.seal_small(&context(id, generation), text.as_bytes())
            .map_err(|e| e.to_string())?,
    );
    Ok(out)
}

/// The generation of a sealed endpoint key (0 if unreadable).
#[must_use]
pub fn key_generation(sealed: &[u8]) -> u32 {
    sealed
        .get(..4)
        .and_then(|b| b.try_into().ok())
        .map_or(0, u32::from_be_bytes)
}

/// Opens a sealed endpoint key into a signing key.
pub async fn open_key(
    state: &AppState,
    tx: &mut Tx,
    tenant: TenantId,
    id: Uuid,
    sealed: &[u8],
) -> Result<SigningSecret, String> {
    let generation = key_generation(sealed);
    let body = sealed.get(4..).ok_or("truncated endpoint key")?;
    let version = small_key_version(body).ok_or("truncated endpoint key")?;
    let kek = state
        .secrets
        .kek(tx, tenant, i64::from(version))
        .await
        .map_err(|e| e.to_string())?;
    let text = kek
        .open_small(&context(id, generation), body)
        .map_err(|e| e.to_string())?;
    let text = std::str::from_utf8(text.expose()).map_err(|_| "endpoint key is not text")?;
    SigningSecret::parse(text).map_err(|e| e.to_string())
}

/// What a new endpoint is.
#[derive(Debug, Clone)]
pub struct EndpointSpec {
    pub url: String,
    pub description: String,
    pub event_types: Vec<String>,
    /// `v1` or `v1a`.
    pub scheme: String,
}

/// Stores a new, enabled endpoint of `tenant` whose signing key is `key_text` (`whsec_…` or
/// `whsk_…`), sealed under the tenant's active key-encryption key.
pub async fn insert_endpoint(
    state: &AppState,
    tx: &mut Tx,
    tenant: TenantId,
    spec: EndpointSpec,
    key_text: &str,
    now: Timestamp,
) -> Result<WebhookEndpointRecord, String> {
    let kek = state
        .secrets
        .active_kek(tx, tenant, now)
        .await
        .map_err(|e| e.to_string())?;
    let id = Uuid::new_v4();
    let record = WebhookEndpointRecord {
        tenant_id: tenant,
        id,
        url: spec.url,
        description: spec.description,
        event_types: spec.event_types,
        scheme: spec.scheme,
        secret: seal_key(&kek, id, 1, key_text)?,
        previous_secret: None,
        previous_until: None,
        enabled: true,
        disabled_reason: None,
        failing_since: None,
        created_at: now,
        updated_at: now,
    };
    tx.upsert_webhook_endpoint(&record)
        .await
        .map_err(|e| e.to_string())?;
    Ok(record)
}

/// Re-seals every webhook endpoint key of `tenant` that KEK version `from` seals under the
/// active version (same endpoint and generation), so that revoking `from` does not leave
/// endpoints whose keys no longer open. Returns how many keys moved.
pub async fn reseal_endpoint_keys(
    state: &AppState,
    tx: &mut Tx,
    tenant: TenantId,
    from: i64,
    now: Timestamp,
) -> Result<usize, String> {
    let err = |e: &dyn std::fmt::Display| e.to_string();
    let to = state
        .secrets
        .active_kek(tx, tenant, now)
        .await
        .map_err(|e| err(&e))?;
    let sealed_under = |blob: &[u8]| blob.get(4..).and_then(small_key_version).map(i64::from);
    let mut moved = 0;
    for mut e in tx
        .webhook_endpoints(tenant, false)
        .await
        .map_err(|e| err(&e))?
    {
        let mut changed = false;
        for slot in [Some(&mut e.secret), e.previous_secret.as_mut()]
            .into_iter()
            .flatten()
        {
            if sealed_under(slot) != Some(from) {
                continue;
            }
            let generation = key_generation(slot);
            let old = state
                .secrets
                .kek(tx, tenant, from)
                .await
                .map_err(|e| err(&e))?;
            let text = old
                .open_small(&context(e.id, generation), &slot[4..])
                .map_err(|e| err(&e))?;
            let text = std::str::from_utf8(text.expose()).map_err(|e| err(&e))?;
            *slot = seal_key(&to, e.id, generation, text)?;
            changed = true;
            moved += 1;
        }
        if changed {
            e.updated_at = now;
            tx.upsert_webhook_endpoint(&e).await.map_err(|e| err(&e))?;
        }
    }
    Ok(moved)
}

/// The signer of an endpoint at `now`: its key, and its previous key while the overlap lasts.
pub async fn signer(
    state: &AppState,
    tx: &mut Tx,
    e: &WebhookEndpointRecord,
    now: Timestamp,
) -> Result<Signer, String> {
    let mut keys = vec![open_key(state, tx, e.tenant_id, e.id, &e.secret).await?];
    if let (Some(prev), Some(until)) = (&e.previous_secret, e.previous_until)
        && now < until
    {
        keys.push(open_key(state, tx, e.tenant_id, e.id, prev).await?);
    }
    Ok(Signer::new(keys))
}

/// Whether `ip` is a public unicast address (not loopback, private, link-local, shared,
/// documentation, benchmarking, multicast, reserved or unspecified).
#[must_use]
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_broadcast()
                || v4.is_documentation()
                || v4.is_unspecified()
                || v4.is_multicast()
                || o[0] == 0
                || (o[0] == 100 && (64..128).contains(&o[1]))
                || (o[0] == 192 && o[1] == 0 && o[2] == 0)
                || (o[0] == 198 && (18..20).contains(&o[1]))
                || o[0] >= 240)
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            let s = v6.segments();
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00
                || (s[0] & 0xffc0) == 0xfe80
                || (s[0] == 0x2001 && s[1] == 0x0db8))
        }
    }
}

/// The endpoint URLs the API accepts, as a JSON Schema pattern: `http(s)://`, a host name or
/// IPv4 address, an optional port, path and query — no credentials, no fragment, no IPv6
/// literal. [`check_url`] accepts exactly these.
pub const URL_PATTERN: &str = "^https?://[A-Za-z0-9.-]+(:([1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5]))?(/[A-Za-z0-9._~!$&'()*+,;=:@%/-]*)?([?][A-Za-z0-9._~!$&'()*+,;=:@%/?-]*)?$";

fn url_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"._~!$&'()*+,;=:@%/-".contains(&b)
}

/// Checks an endpoint URL against [`URL_PATTERN`] and returns its host and port.
pub fn check_url(url: &str) -> Result<(String, u16), String> {
    let (rest, default_port) = if let Some(r) = url.strip_prefix("https://") {
        (r, 443)
    } else if let Some(r) = url.strip_prefix("http://") {
        (r, 80)
    } else {
        return Err("an endpoint URL starts with `https://` or `http://`".into());
    };
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let (host, port) = match authority.split_once(':') {
        Some((h, p)) => {
            let ok = !p.starts_with('0') && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit());
            let port = p.parse::<u16>().ok().filter(|n| ok && *n > 0);
            (h, port.ok_or("an endpoint URL's port is 1 to 65535")?)
        }
        None => (authority, default_port),
    };
    if host.is_empty()
        || !host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
    {
        return Err(
            "an endpoint URL names a host of letters, digits, `.` and `-` (no credentials)".into(),
        );
    }
    let (path, query) = tail.split_once('?').unwrap_or((tail, ""));
    if !path.bytes().all(url_char) || !query.bytes().all(|b| url_char(b) || b == b'?') {
        return Err(
            "an endpoint URL's path and query hold only URL characters, no fragment".into(),
        );
    }
    Ok((host.to_owned(), port))
}

/// Resolves the endpoint's host and refuses non-public addresses unless they are allowed.
/// (The HTTP client resolves again when it connects; a DNS answer that changes in between is not
/// caught — see docs/webhooks.md.)
fn check_target(url: &str, allow_private: bool) -> Result<(), String> {
    let (host, port) = check_url(url)?;
    if allow_private {
        return Ok(());
    }
    let addrs = (host.as_str(), port)
        .to_socket_addrs()
        .map_err(|e| format!("resolving `{host}`: {e}"))?;
    for a in addrs {
        if !is_public(a.ip()) {
            return Err(format!(
                "`{host}` resolves to the non-public address {}; set \
                 `webhook_allow_private_targets = true` to allow it",
                a.ip()
            ));
        }
    }
    Ok(())
}

/// The HTTP client of deliveries: no redirects (a redirect could point anywhere), every status
/// returned as a response, one time limit per attempt.
#[must_use]
pub fn http_agent(timeout: Duration) -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_global(Some(timeout))
        .http_status_as_error(false)
        .max_redirects(0)
        .user_agent(concat!("rampart-webhooks/", env!("CARGO_PKG_VERSION")))
        .build()
        .into()
}

/// What one attempt got back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptResult {
    pub status: Option<u16>,
    pub error: Option<String>,
}

impl AttemptResult {
    #[must_use]
    pub fn succeeded(&self) -> bool {
        self.error.is_none() && self.status.is_some_and(|s| (200..300).contains(&s))
    }
}

/// Posts one signed message (blocking: call it on a blocking thread).
pub fn post(
    agent: &ureq::Agent,
    url: &str,
    headers: [(&str, &str); 3],
    body: &str,
    allow_private: bool,
) -> AttemptResult {
    if let Err(e) = check_target(url, allow_private) {
        return AttemptResult {
            status: None,
            error: Some(e),
        };
    }
    let mut req = agent.post(url).header("content-type", "application/json");
    for (k, v) in headers {
        req = req.header(k, v);
    }
    match req.send(body) {
        Ok(mut resp) => {
            let status = resp.status().as_u16();
            let error = if (200..300).contains(&status) {
                None
            } else {
                // The first bytes of the answer, whatever its length (a limit on the whole
                // body would fail on a long one and keep nothing).
                let mut head = Vec::new();
                let _ = std::io::Read::read_to_end(
                    &mut std::io::Read::take(resp.body_mut().as_reader(), MAX_EXCERPT as u64),
                    &mut head,
                );
                Some(format!("HTTP {status}: {}", String::from_utf8_lossy(&head)))
            };
            AttemptResult {
                status: Some(status),
                error,
            }
        }
        Err(e) => AttemptResult {
            status: None,
            error: Some(e.to_string()),
        },
    }
}

/// A uniform number in [0, 1), for jitter.
fn unit_random() -> f64 {
    random_array::<8>()
        .map(u64::from_be_bytes)
        .map_or(0.5, |n| (n >> 11) as f64 / (1u64 << 53) as f64)
}

/// A claimed delivery and what is needed to attempt it.
struct Claimed {
    delivery: WebhookDeliveryRecord,
    url: String,
    signer: Option<Arc<Signer>>,
}

/// Claims up to `limit` due deliveries of `tenant`: each is pushed out by a lease so no other
/// pass (or node) attempts it meanwhile; a crash mid-attempt leaves it due again after the lease.
async fn claim(state: &AppState, tenant: TenantId, limit: i64) -> Result<Vec<Claimed>, String> {
    let now = state.clock.now();
    let lease = state.config.webhook_timeout * 2 + Duration::from_secs(30);
    let mut tx = state
        .store
        .begin(Scope::tenant(tenant, WORKER))
        .await
        .map_err(|e| e.to_string())?;
    let due = tx
        .due_webhook_deliveries(tenant, now, limit)
        .await
        .map_err(|e| e.to_string())?;
    let mut signers: HashMap<Uuid, (String, Option<Arc<Signer>>)> = HashMap::new();
    let mut out = Vec::with_capacity(due.len());
    for mut d in due {
        if let std::collections::hash_map::Entry::Vacant(slot) = signers.entry(d.endpoint_id) {
            let endpoint = tx
                .webhook_endpoint(tenant, d.endpoint_id)
                .await
                .map_err(|e| e.to_string())?;
            let entry = match endpoint {
                Some(e) if e.enabled => {
                    let s = signer(state, &mut tx, &e, now).await.map(Arc::new);
                    if let Err(err) = &s {
                        tracing::error!(endpoint = %e.id, error = %err, "webhook endpoint key does not open");
                    }
                    (e.url, s.ok())
                }
                _ => (String::new(), None),
            };
            slot.insert(entry);
        }
        let (url, signer) = signers.get(&d.endpoint_id).cloned().unwrap_or_default();
        d.next_attempt_at = now.saturating_add(lease);
        d.updated_at = now;
        tx.upsert_webhook_delivery(&d)
            .await
            .map_err(|e| e.to_string())?;
        out.push(Claimed {
            delivery: d,
            url,
            signer,
        });
    }
    tx.commit().await.map_err(|e| e.to_string())?;
    Ok(out)
}

/// What a pass of the worker did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Pass {
    pub delivered: usize,
    pub retrying: usize,
    pub dead: usize,
}

/// Records an attempt's outcome: the delivery's new state, the endpoint's failure run (and
/// disabling it), and the audit record of the attempt.
async fn record(
    state: &AppState,
    mut d: WebhookDeliveryRecord,
    result: AttemptResult,
) -> Result<DeliveryState, String> {
    let tenant = d.tenant_id;
    let now = state.clock.now();
    let mut tx = state
        .store
        .begin(Scope::tenant(tenant, WORKER))
        .await
        .map_err(|e| e.to_string())?;
    let endpoint = tx
        .webhook_endpoint(tenant, d.endpoint_id)
        .await
        .map_err(|e| e.to_string())?;
    if endpoint.is_none() {
        // Deleted meanwhile, and its deliveries with it: nothing is left to record.
        return Ok(DeliveryState::Dead);
    }
    d.attempts += 1;
    d.last_attempt_at = Some(now);
    d.last_status = result.status.map(i64::from);
    d.last_error = result.error.clone();
    d.updated_at = now;
    let attempts = usize::try_from(d.attempts).unwrap_or(usize::MAX);
    if result.succeeded() {
        d.state = DeliveryState::Delivered;
    } else {
        match state
            .config
            .webhook_retry_schedule
            .delay_after(attempts, unit_random())
        {
            Some(wait) if endpoint.as_ref().is_some_and(|e| e.enabled) => {
                d.state = DeliveryState::Pending;
                d.next_attempt_at = now.saturating_add(wait);
            }
            _ => d.state = DeliveryState::Dead,
        }
    }
    tx.upsert_webhook_delivery(&d)
        .await
        .map_err(|e| e.to_string())?;
    let mut detail = json!({
        "delivery": d.id,
        "endpoint": d.endpoint_id,
        "message_id": d.message_id,
        "event_type": d.event_type,
        "attempt": d.attempts,
        "status": result.status,
        "state": d.state.as_str(),
    });
    if let Some(err) = &result.error {
        detail["error"] = json!(err);
    }
    if d.state == DeliveryState::Pending {
        detail["next_attempt_at"] = json!(d.next_attempt_at);
    }
    let outcome = if result.succeeded() {
        Outcome::Success
    } else {
        Outcome::Failed
    };
    let attempt = AuditEvent {
        tenant_id: tenant,
        request_id: None,
        actor: WORKER.into(),
        action: AuditAction::WebhookAttempt,
        resource: format!("webhook_delivery:{}", d.id),
        outcome,
        detail,
        at: now,
    };
    state
        .audit
        .record(&mut tx, &attempt)
        .await
        .map_err(|e| e.0)?;
    if let Some(mut e) = endpoint.filter(|e| e.enabled) {
        let before = (e.failing_since, e.enabled);
        if result.succeeded() {
            e.failing_since = None;
        } else {
            let since = *e.failing_since.get_or_insert(now);
            if now.duration_since(since) >= state.config.webhook_disable_after {
                e.enabled = false;
                e.disabled_reason = Some(format!(
                    "no successful delivery since {}",
                    serde_json::to_string(&since)
                        .unwrap_or_default()
                        .trim_matches('"')
                ));
            }
        }
        if before != (e.failing_since, e.enabled) {
            e.updated_at = now;
            tx.upsert_webhook_endpoint(&e)
                .await
                .map_err(|e| e.to_string())?;
        }
        if !e.enabled {
            let reason = "endpoint disabled";
            tx.kill_pending_webhook_deliveries(tenant, e.id, reason, now)
                .await
                .map_err(|e| e.to_string())?;
            let event = AuditEvent {
                tenant_id: tenant,
                request_id: None,
                actor: WORKER.into(),
                action: AuditAction::WebhookEndpointChange,
                resource: format!("webhook_endpoint:{}", e.id),
                outcome: Outcome::Success,
                detail: json!({ "disabled": true, "reason": e.disabled_reason }),
                at: now,
            };
            state.audit.record(&mut tx, &event).await.map_err(|e| e.0)?;
            tracing::warn!(endpoint = %e.id, "webhook endpoint disabled after failing for too long");
        }
    }
    tx.commit().await.map_err(|e| e.to_string())?;
    Ok(d.state)
}

/// One attempt of a claimed delivery, start to finish.
async fn attempt(state: AppState, agent: ureq::Agent, c: Claimed) -> Result<DeliveryState, String> {
    let result = match &c.signer {
        None => AttemptResult {
            status: None,
            error: Some("the endpoint is disabled, deleted, or its key does not open".into()),
        },
        Some(signer) => {
            let ts = state.clock.now().unix_seconds();
            let d = &c.delivery;
            let sig = signer.sign(&d.message_id, ts, d.payload.as_bytes());
            let (url, id, body) = (c.url.clone(), d.message_id.clone(), d.payload.clone());
            let allow = state.config.webhook_allow_private_targets;
            tokio::task::spawn_blocking(move || {
                let ts = ts.to_string();
                post(
                    &agent,
                    &url,
                    [
                        (rampart_webhooks::HEADER_ID, &id),
                        (rampart_webhooks::HEADER_TIMESTAMP, &ts),
                        (rampart_webhooks::HEADER_SIGNATURE, &sig),
                    ],
                    &body,
                    allow,
                )
            })
            .await
            .map_err(|e| e.to_string())?
        }
    };
    record(&state, c.delivery, result).await
}

/// Attempts every delivery due now, across tenants, `webhook_concurrency` at a time.
pub async fn deliver_due(state: &AppState, agent: &ureq::Agent) -> Result<Pass, String> {
    let concurrency = state.config.webhook_concurrency;
    let permits = Arc::new(Semaphore::new(concurrency));
    let mut pass = Pass::default();
    for t in crate::app::tenants(state, WORKER).await? {
        loop {
            let batch = claim(state, t.id, i64::try_from(concurrency * 4).unwrap_or(64)).await?;
            if batch.is_empty() {
                break;
            }
            let mut tasks = tokio::task::JoinSet::new();
            for c in batch {
                let permit = permits
                    .clone()
                    .acquire_owned()
                    .await
                    .map_err(|e| e.to_string())?;
                let (state, agent) = (state.clone(), agent.clone());
                tasks.spawn(async move {
                    let r = attempt(state, agent, c).await;
                    drop(permit);
                    r
                });
            }
            while let Some(r) = tasks.join_next().await {
                match r.map_err(|e| e.to_string())? {
                    Ok(DeliveryState::Delivered) => pass.delivered += 1,
                    Ok(DeliveryState::Pending) => pass.retrying += 1,
                    Ok(DeliveryState::Dead) => pass.dead += 1,
                    Err(e) => tracing::error!(error = %e, "webhook attempt not recorded"),
                }
            }
        }
    }
    Ok(pass)
}

/// The delivery worker: a pass whenever woken (a new delivery) or every
/// `webhook_poll_interval`.
pub async fn run_worker(state: AppState, wake: Arc<Notify>) {
    let agent = http_agent(state.config.webhook_timeout);
    loop {
        match deliver_due(&state, &agent).await {
            Ok(p) if p != Pass::default() => tracing::debug!(
                delivered = p.delivered,
                retrying = p.retrying,
                dead = p.dead,
                "webhook deliveries"
            ),
            Ok(_) => {}
            Err(e) => tracing::error!(error = %e, "webhook delivery pass failed"),
        }
        tokio::select! {
            () = wake.notified() => {}
            () = tokio::time::sleep(state.config.webhook_poll_interval) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscriptions_match_exactly_by_prefix_or_all() {
        let p = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert!(subscribed(&[], "secret.write"));
        assert!(subscribed(&p(&["*"]), "secret.write"));
        assert!(subscribed(&p(&["secret.*"]), "secret.write"));
        assert!(!subscribed(&p(&["secret.*"]), "secret_backend.change"));
        assert!(subscribed(
            &p(&["lease.issue", "secret.write"]),
            "secret.write"
        ));
        assert!(!subscribed(&p(&["secret.write"]), "secret.writes"));
    }

    #[test]
    fn only_public_unicast_addresses_are_public() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "224.0.0.1",
            "255.255.255.255",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "2001:db8::1",
            "198.18.0.1",
            "240.0.0.1",
        ] {
            assert!(
                !is_public(ip.parse().unwrap_or(IpAddr::from([127, 0, 0, 1]))),
                "{ip}"
            );
        }
        for ip in ["93.184.216.34", "1.1.1.1", "2606:4700::1111"] {
            assert!(
                is_public(ip.parse().unwrap_or(IpAddr::from([127, 0, 0, 1]))),
                "{ip}"
            );
        }
    }

    #[test]
    fn endpoint_urls_are_http_with_a_host_and_no_credentials() {
        assert_eq!(
            check_url("https://hooks.example.com/x"),
            Ok(("hooks.example.com".into(), 443))
        );
        assert_eq!(
            check_url("http://127.0.0.1:8080/a?b=c/d?e"),
            Ok(("127.0.0.1".into(), 8080))
        );
        assert_eq!(check_url("https://h:65535"), Ok(("h".into(), 65535)));
        for bad in [
            "ftp://x/",
            "https://user:pw@x/",
            "not a url",
            "/relative",
            "https://Sl*",
            "http://[::1]:8080/",
            "https://h:65536/",
            "https://h:0/",
            "https://h:08/",
            "https://h/#frag",
            "https:///x",
            "https://h/a b",
        ] {
            assert!(check_url(bad).is_err(), "{bad}");
        }
    }
}
