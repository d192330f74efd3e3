//! The LLM boundary: OpenAI Chat Completions and Anthropic Messages, forwarded to the tenant's
//! configured upstream with every message redacted by the Sentinel on the way out, responses
//! redacted (and the caller's own reversible values restored) on the way back, the mission's
//! pinned instructions enforced, and one `llm.call` audit record per call. See docs/gateway.md.
//!
//! Fail closed: a request whose redaction, policy, mission check or upstream key cannot be
//! loaded is refused before anything is sent; an answer whose audit record cannot be written is
//! refused (a stream ends with an error event instead of its terminator).

pub mod config;
pub mod directives;
mod forward;
mod json;
mod provider;
pub mod replay;
mod stream;

use std::collections::{BTreeMap, HashMap};

use rampart_crypto::{ct_eq, sha256};
use rampart_sentinel::policy::Mode;
use rampart_sentinel::transform::Applied;
use rampart_sentinel::{Channel, Class};
use rampart_store::{MissionRecord, MissionStatus, ProfileKind, Scope, Tx};
use rampart_types::{AuditAction, AuditEvent, Outcome, TenantId, Timestamp};
use serde_json::{Value, json};
use zeroize::Zeroizing;

use crate::audit::Ahead;
use crate::error::{ApiError, ErrorKind};
use crate::extract::{NeedGatewayCall, Principal, Read, RequestContext};
use crate::sentinel::{PendingVault, Redactor};
use crate::state::AppState;

pub use config::{DriftAction, GatewayConfig, Price, Upstream, load_config};
pub use provider::Provider;

/// What a call redacted, per direction and class (counts, never values).
#[derive(Debug, Default, Clone)]
pub struct Redacted {
    counts: BTreeMap<&'static str, BTreeMap<&'static str, u64>>,
}

impl Redacted {
    fn add(&mut self, direction: &'static str, applied: &[Applied]) {
        for a in applied {
            if a.mode == Mode::Flag {
                continue;
            }
            *self
                .counts
                .entry(direction)
                .or_default()
                .entry(a.class.as_str())
                .or_default() += 1;
        }
    }

    fn to_json(&self) -> Value {
        serde_json::to_value(&self.counts).unwrap_or(Value::Null)
    }
}

/// The values the caller itself sent in this request, by the reversible token that replaced
/// them: the only tokens an answer may turn back into values (so a model cannot make the
/// gateway reveal a token from another conversation).
#[derive(Default)]
pub struct Restorable {
    values: HashMap<String, (Class, Zeroizing<String>)>,
}

impl Restorable {
    /// The value behind `token`, where the tenant's `response` policy lets its class come back
    /// (the class is reversible on the response channel).
    fn lookup(&self, redactor: &Redactor, token: &str) -> Option<String> {
        let (class, value) = self.values.get(token)?;
        let (mode, _) = redactor.policy.compiled.decide(*class, Channel::Response);
        (mode == Mode::Reversible).then(|| value.to_string())
    }
}

/// Everything the answer half of a call needs, after the request was redacted and forwarded.
pub struct Call {
    pub state: AppState,
    pub ctx: RequestContext,
    pub tenant: TenantId,
    pub actor: String,
    /// Where the call's usage is counted (budgets, rate limits).
    pub usage_key: String,
    pub mission: Option<rampart_types::MissionId>,
    /// The request as the client sent it, sealed with the audit record (absent when this call
    /// replays one already sealed, or carries an idempotency key and was sealed before it was
    /// forwarded).
    pub original: Option<Value>,
    pub replay: replay::Replay,
    pub provider: Provider,
    pub upstream: String,
    pub model: String,
    /// The tools the call offered the model, and the model's configured price.
    pub tools: Vec<String>,
    pub price: Option<Price>,
    pub stream: bool,
    /// An OpenAI stream whose usage the gateway asked for (to count it) and the client did not:
    /// the usage chunk is not passed on.
    pub usage_asked_for: bool,
    pub redactor: Redactor,
    pub restorable: Restorable,
    pub redacted: Redacted,
    /// Reversible values met while redacting the request and the answer, sealed with the audit
    /// record.
    pub request_vault: PendingVault,
    pub answer_vault: PendingVault,
    pub started: std::time::Instant,
}

impl Call {
    /// Writes the call's one audit record (and the answer's reversible values) in its own
    /// transaction.
    async fn finish(
        &mut self,
        outcome: Outcome,
        status: Option<u16>,
        usage: Usage,
        error: Option<&str>,
    ) -> Result<(), ApiError> {
        let now = self.state.clock.now();
        let event = self.ctx.event(
            self.tenant,
            &self.actor,
            AuditAction::LlmCall,
            format!("llm:{}", self.provider.as_str()),
            outcome,
            json!({
                "provider": self.provider.as_str(),
                "upstream": self.upstream,
                "model": self.model,
                "mission": self.mission.map(|m| m.to_string()),
                "stream": self.stream,
                "redacted": self.redacted.to_json(),
                "usage": usage.to_json(),
                "upstream_status": status,
                "error": error,
                "duration_ms": u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX),
                "request_sha256": self.replay.sha256,
                "idempotency_key": self.replay.key,
                "replayed_from": self.replay.replayed_from,
                "replay_differed": self.replay.differed,
            }),
            now,
        );
        let (mut tx, ahead) = audited_tx(&self.state, &event).await?;
        for vault in [&mut self.request_vault, &mut self.answer_vault] {
            std::mem::take(vault)
                .store(&self.redactor.key, &mut tx, now)
                .await?;
        }
        if let Some(original) = self.original.take() {
            // Without an idempotency key no other call can have recorded under this one's.
            replay::seal(
                &self.state,
                &mut tx,
                self.tenant,
                &self.ctx.request_id.to_string(),
                self.replay.key.as_deref(),
                &original,
                now,
            )
            .await?;
        }
        record_ahead(&self.state, &mut tx, &event, ahead).await?;
        // Every forwarded call counts, whatever its outcome: a client that cuts a stream before
        // its end has had the answer so far, and must not escape budgets and rate limits.
        self.count(&mut tx, usage, now).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Counts a forwarded call: usage where budgets and rate limits look (the mission, or the
    /// subject), the subject's own usage for its profile, and the model and tools it used.
    async fn count(&self, tx: &mut Tx, usage: Usage, now: Timestamp) -> Result<(), ApiError> {
        let tokens = usage
            .input
            .unwrap_or(0)
            .saturating_add(usage.output.unwrap_or(0));
        let tokens = i64::try_from(tokens).unwrap_or(i64::MAX);
        let spend = self.price.as_ref().map_or(0, |p| p.cost(usage));
        let minute = directives::minute(now);
        tx.add_gateway_usage(self.tenant, &self.usage_key, tokens, spend, minute)
            .await?;
        if self.usage_key != self.actor {
            tx.add_gateway_usage(self.tenant, &self.actor, tokens, spend, minute)
                .await?;
        }
        let model = [self.model.clone()];
        tx.add_gateway_profile(self.tenant, &self.actor, ProfileKind::Model, &model, now)
            .await?;
        tx.add_gateway_profile(
            self.tenant,
            &self.actor,
            ProfileKind::Tool,
            &self.tools,
            now,
        )
        .await?;
        Ok(())
    }
}

/// Token counts the upstream reported.
#[derive(Debug, Default, Clone, Copy)]
pub struct Usage {
    pub input: Option<u64>,
    pub output: Option<u64>,
    /// `output` is the gateway's estimate (a stream that ended before the upstream reported
    /// its usage), not the upstream's count.
    pub output_estimated: bool,
}

impl Usage {
    fn to_json(self) -> Value {
        json!({ "input_tokens": self.input, "output_tokens": self.output,
                "output_estimated": self.output_estimated })
    }
}

/// A call refused before forwarding, audited as denied. If that record cannot be written the
/// call is refused all the same, with the audit failure as the reason.
async fn refuse(
    state: &AppState,
    ctx: &RequestContext,
    p: &Principal,
    provider: Provider,
    err: ApiError,
) -> ApiError {
    let event = ctx.event(
        p.tenant,
        &p.subject,
        AuditAction::LlmCall,
        format!("llm:{}", provider.as_str()),
        Outcome::Denied,
        json!({
            "provider": provider.as_str(),
            "mission": p.mission.map(|m| m.to_string()),
            "refused": err.kind.code(),
            "reason": err.detail,
        }),
        state.clock.now(),
    );
    let recorded = async {
        let (mut tx, ahead) = audited_tx(state, &event).await?;
        record_ahead(state, &mut tx, &event, ahead).await?;
        tx.commit().await?;
        Ok::<_, ApiError>(())
    };
    match recorded.await {
        Ok(()) => err,
        Err(e) => e,
    }
}

/// The mission check: the token's mission is active, and the call carries its pinned
/// instructions (or has them put back, per the tenant's configuration).
async fn enforce_mission(
    state: &AppState,
    tx: &mut Tx,
    p: &Principal,
    provider: Provider,
    config: &GatewayConfig,
    body: &mut Value,
    now: Timestamp,
) -> Result<Option<MissionRecord>, ApiError> {
    let Some(mission) = p.mission else {
        return Ok(None);
    };
    let record = tx
        .mission(p.tenant, mission)
        .await?
        .ok_or_else(|| ApiError::not_found("mission"))?;
    if record.status != MissionStatus::Active || record.deadline <= now {
        return Err(ApiError::conflict(format!(
            "mission `{mission}` is not active"
        )));
    }
    let sent = provider.system_text(body);
    let matches = sent
        .as_deref()
        .is_some_and(|s| ct_eq(&sha256(s.as_bytes()), &record.instructions_sha256));
    if matches {
        return Ok(Some(record));
    }
    match config.instructions {
        DriftAction::Refuse => Err(ApiError::new(
            ErrorKind::InstructionsDrift,
            format!(
                "the system instructions of this call are not the ones pinned for mission `{mission}`"
            ),
        )),
        DriftAction::Reinject => {
            let pinned = crate::missions::open_instructions(state, tx, &record).await?;
            provider.set_system(body, &pinned);
            Ok(Some(record))
        }
    }
}

/// Redacts one outgoing request in place; returns the highest prompt-injection score among its
/// tool results.
async fn redact_request(
    redactor: &Redactor,
    provider: Provider,
    body: &mut Value,
    vault: &mut PendingVault,
    redacted: &mut Redacted,
) -> Result<f32, ApiError> {
    let sites = provider.outgoing_sites(body);
    let mut pieces = json::pieces(body, &sites);
    let mut injection = 0.0_f32;
    for piece in &mut pieces {
        if piece.channel == Channel::ToolOutput {
            let score = crate::sentinel::engines()?
                .injection
                .scan(&piece.text)
                .score;
            injection = injection.max(score);
        }
        let r = redactor.redact(&piece.text, piece.channel, vault).await?;
        redacted.add("request", &r.applied);
        piece.text = r.text;
    }
    json::put_back(body, &sites, pieces)?;
    Ok(injection)
}

/// A write transaction in the tenant's scope.
async fn write_tx(state: &AppState, tenant: TenantId, subject: &str) -> Result<Tx, ApiError> {
    Ok(state.store.begin(Scope::tenant(tenant, subject)).await?)
}

/// The write transaction a call's record goes in, begun only once `event` is durable in the
/// ledger: the fsync is not spent holding the store's writer, so concurrent calls share it.
/// The caller finishes the record with [`record_ahead`] before committing.
async fn audited_tx(state: &AppState, event: &AuditEvent) -> Result<(Tx, Ahead), ApiError> {
    let ahead = state
        .audit
        .append_ahead(&state.store, event)
        .await
        .map_err(ApiError::audit_unavailable)?;
    let tx = write_tx(state, event.tenant_id, &event.actor).await?;
    Ok((tx, ahead))
}

/// The rest of `event`'s record, in the transaction [`audited_tx`] began.
async fn record_ahead(
    state: &AppState,
    tx: &mut Tx,
    event: &AuditEvent,
    ahead: Ahead,
) -> Result<(), ApiError> {
    state
        .audit
        .record_ahead(tx, event, ahead)
        .await
        .map_err(ApiError::audit_unavailable)
}

/// The tenant's redaction context, read in `tx` (read-only). The first call of a tenant, or the
/// first after a secret was written, creates the Sentinel key or fingerprints in a write
/// transaction of its own; `tx` is then replaced by a fresh read, which sees them.
async fn load_redactor(
    state: &AppState,
    tx: &mut Tx,
    p: &Principal,
    now: Timestamp,
) -> Result<Redactor, ApiError> {
    if let Some(redactor) = Redactor::load_read_only(state, tx, p.tenant, now).await? {
        return Ok(redactor);
    }
    let mut w = write_tx(state, p.tenant, &p.subject).await?;
    Redactor::load(state, &mut w, p.tenant, now).await?;
    w.commit().await?;
    *tx = state.store.begin_read(p.scope()).await?;
    Redactor::load(state, tx, p.tenant, now).await
}

/// Where a call goes and what it uses there.
struct Target {
    model: String,
    tools: Vec<String>,
    price: Option<Price>,
    upstream: Upstream,
}

/// Handles one call end to end. `body` is the client's JSON request as sent.
///
/// Everything before forwarding reads in the request's read-only transaction; the call's one
/// write transaction comes after the answer, with the reversible values of both directions and
/// the audit record (a refusal writes its record in a transaction of its own).
pub async fn handle(
    state: AppState,
    auth: crate::extract::Authed<Read, NeedGatewayCall>,
    provider: Provider,
    headers: axum::http::HeaderMap,
    mut body: Value,
) -> Result<axum::response::Response, ApiError> {
    let crate::extract::Authed {
        principal: p,
        mut tx,
        ctx,
        ..
    } = auth;
    let started = std::time::Instant::now();
    let now = state.clock.now();
    let mut original = None;
    let mut replayed = replay::Replay::default();
    let prepared = async {
        replayed = replay::resolve(&state, &mut tx, &p, &headers, &mut body).await?;
        if replayed.replayed_from.is_none() {
            original = Some(body.clone());
        }
        let model = provider.check_request(&body)?;
        let config = load_config(&mut tx, p.tenant).await?;
        let upstream = config.upstream(provider)?.clone();
        let mission =
            enforce_mission(&state, &mut tx, &p, provider, &config, &mut body, now).await?;
        let redactor = load_redactor(&state, &mut tx, &p, now).await?;
        let mut vault = PendingVault::default();
        let mut redacted = Redacted::default();
        let injection =
            redact_request(&redactor, provider, &mut body, &mut vault, &mut redacted).await?;
        let tools = provider.tool_names(&body);
        let price = config.price(&model).cloned();
        let facts = directives::Facts {
            model: &model,
            tools: &tools,
            price: price.as_ref(),
            mission: mission.as_ref(),
            injection,
            now,
        };
        if let Some(v) =
            directives::first_violation(&mut tx, &p, &config.directives, &facts).await?
        {
            return Ok(Err(v));
        }
        let key = forward::upstream_key(&state, &mut tx, p.tenant, &upstream).await?;
        let target = Target {
            model,
            tools,
            price,
            upstream,
        };
        Ok::<_, ApiError>(Ok((target, redactor, vault, redacted, key)))
    }
    .await;
    drop(tx);
    let (target, redactor, vault, redacted, key) = match prepared {
        Ok(Ok(v)) => v,
        Ok(Err(violation)) => {
            if violation.action == directives::Action::Abort
                && let Err(e) =
                    directives::abort_mission(&state, &ctx, &p, p.tenant, &violation).await
            {
                return Err(e);
            }
            return Err(refuse(&state, &ctx, &p, provider, violation.error()).await);
        }
        Err(e) => return Err(refuse(&state, &ctx, &p, provider, e).await),
    };
    if let Some(key) = replayed.key.as_deref()
        && let Some(first) = original.take()
        && let Err(e) =
            replay::record_first(&state, &p, &ctx.request_id.to_string(), key, &first, now).await
    {
        return Err(refuse(&state, &ctx, &p, provider, e).await);
    }
    let restorable = Restorable {
        values: vault.values(),
    };
    let stream = provider.is_stream(&body);
    let usage_asked_for = provider.ask_stream_usage(&mut body);
    let request = forward::UpstreamRequest::new(provider, &target.upstream, key, &headers, &body)?;
    let call = Call {
        state,
        ctx,
        tenant: p.tenant,
        actor: p.subject.clone(),
        usage_key: directives::usage_key(&p),
        mission: p.mission,
        original,
        replay: replayed,
        provider,
        upstream: target.upstream.base_url,
        model: target.model,
        tools: target.tools,
        price: target.price,
        stream,
        usage_asked_for,
        redactor,
        restorable,
        redacted,
        request_vault: vault,
        answer_vault: PendingVault::default(),
        started,
    };
    if stream {
        stream::respond(call, request).await
    } else {
        forward::respond(call, request).await
    }
}

/// The shared engines for the answer half (the Sentinel detector is process-wide).
pub(crate) fn detector() -> Result<&'static rampart_sentinel::Detector, ApiError> {
    Ok(&crate::sentinel::engines()?.detector)
}
