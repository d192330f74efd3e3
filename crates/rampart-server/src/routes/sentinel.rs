//! The PII Sentinel over HTTP: scan, redact under the tenant's policy, reveal reversible
//! tokens, the versioned policy, and destroying the tenant's Sentinel key. See
//! [`crate::sentinel`] and docs/sentinel.md.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use rampart_sentinel::policy::{Mode, Policy};
use rampart_sentinel::{Channel, Class, CodePoints};
use rampart_store::{DocumentKind, DocumentVersionRecord};
use rampart_types::{AuditAction, Outcome, Problem, Timestamp};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};

use crate::credentials::audit;
use crate::edge::no_store;
use crate::error::ApiError;
use crate::extract::{
    ApiJson, ApiQuery, Authed, NeedSentinelAdmin, NeedSentinelReveal, NeedSentinelUse, Read, Write,
};
use crate::sentinel::{PendingVault, Redactor, detect, engines, tenant_policy};
use crate::state::AppState;

/// The longest text one request takes, in code points: even written as JSON `\u` escapes of
/// surrogate pairs (12 bytes each) it fits the default 1 MiB body limit.
const MAX_TEXT_CHARS: usize = 65_536;
/// The most tokens one reveal takes.
const MAX_REVEAL: usize = 256;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScanRequest {
    #[schema(max_length = 65536)]
    pub text: String,
}

/// One finding. Offsets are Unicode code points of the text, end exclusive.
#[derive(Debug, Serialize, ToSchema)]
pub struct Span {
    pub class: Class,
    pub start: usize,
    pub end: usize,
    /// Calibrated: spans scored 0.8 are right about 80% of the time on the labelled corpus.
    pub score: f32,
    /// The rule that found it.
    pub rule: String,
}

/// A prompt-injection marker.
#[derive(Debug, Serialize, ToSchema)]
pub struct InjectionMarker {
    pub rule: String,
    pub start: usize,
    pub end: usize,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct InjectionView {
    /// 0 (nothing found) to 1.
    pub score: f32,
    pub markers: Vec<InjectionMarker>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ScanResult {
    pub spans: Vec<Span>,
    pub injection: InjectionView,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RedactRequest {
    #[schema(max_length = 65536)]
    pub text: String,
    /// Default `prompt`.
    pub channel: Option<Channel>,
}

/// What was done to one finding. Offsets are code points of the input text.
#[derive(Debug, Serialize, ToSchema)]
pub struct AppliedSpan {
    pub class: Class,
    pub start: usize,
    pub end: usize,
    pub score: f32,
    pub mode: Mode,
    /// What replaced the value (absent for `flag`).
    pub token: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RedactResult {
    pub text: String,
    pub spans: Vec<AppliedSpan>,
    /// The policy version applied (0: the built-in default).
    pub policy_version: i64,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RevealRequest {
    /// Reversible tokens, `[CLASS_R_<20 hex>]`.
    #[schema(min_items = 1, max_items = 256, value_type = Vec<String>)]
    pub tokens: Vec<String>,
}

#[derive(Serialize, ToSchema)]
pub struct RevealedValue {
    pub token: String,
    #[schema(value_type = Class)]
    pub class: String,
    pub value: String,
}

#[derive(Serialize, ToSchema)]
pub struct RevealResult {
    pub values: Vec<RevealedValue>,
    /// Tokens this tenant has no value for: never issued, or their key was destroyed.
    pub unknown: Vec<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PolicyView {
    /// 0: nothing stored yet; the built-in default (everything strict at 0.5) is in force.
    pub version: i64,
    pub policy: Policy,
    pub created_by: Option<String>,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub created_at: Option<Timestamp>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PolicyQuery {
    /// This version instead of the one in force.
    #[param(minimum = 0)]
    pub version: Option<i64>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutPolicy {
    pub policy: Policy,
    /// Refuse (409) unless this is the version in force (0: none stored yet).
    #[schema(minimum = 0)]
    pub expected_version: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct KeyDestroyed {
    /// The generation destroyed; the next redaction creates the next one.
    pub generation: i64,
    /// Reversible tokens that can no longer be revealed.
    pub tokens_destroyed: u64,
}

fn check_text(text: &str) -> Result<(), ApiError> {
    if text.chars().count() > MAX_TEXT_CHARS {
        return Err(ApiError::validation(format!(
            "`text` is at most {MAX_TEXT_CHARS} characters"
        )));
    }
    Ok(())
}

/// Finds personal data, credentials and prompt-injection markers in a text. Nothing is stored
/// and nothing is changed: this is detection only (no policy, no live-secret scrubbing).
#[utoipa::path(post, path = "/v1/sentinel/scan", tag = "sentinel",
    request_body = ScanRequest,
    security(("bearer" = ["sentinel:use"])),
    responses(
        (status = 200, description = "Findings", body = ScanResult),
        (status = 503, description = "The Sentinel could not run", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn scan(
    _auth: Authed<Read, NeedSentinelUse>,
    ApiJson(body): ApiJson<ScanRequest>,
) -> Result<Json<ScanResult>, ApiError> {
    check_text(&body.text)?;
    let text: std::sync::Arc<str> = body.text.into();
    let findings = detect(text.clone(), None).await?;
    let injection = engines()?.injection.scan(&text);
    let at = CodePoints::new(
        &text,
        findings
            .iter()
            .flat_map(|f| [f.start, f.end])
            .chain(injection.markers.iter().flat_map(|m| [m.start, m.end])),
    );
    Ok(Json(ScanResult {
        spans: findings
            .iter()
            .map(|f| Span {
                class: f.class,
                start: at.of(f.start),
                end: at.of(f.end),
                score: f.score,
                rule: f.rule.id().to_owned(),
            })
            .collect(),
        injection: InjectionView {
            score: injection.score,
            markers: injection
                .markers
                .iter()
                .map(|m| InjectionMarker {
                    rule: m.rule.to_owned(),
                    start: at.of(m.start),
                    end: at.of(m.end),
                })
                .collect(),
        },
    }))
}

/// Applies the tenant's policy for the channel: values become strict or reversible tokens or are
/// flagged, and any of the tenant's live secret values (raw, base64, URL-encoded or hex) are
/// removed whatever the policy. Reversible values are sealed in the tenant's vault. Each call is
/// audited with the classes and modes applied, never the values; if the audit cannot be
/// written the call is refused.
#[utoipa::path(post, path = "/v1/sentinel/redact", tag = "sentinel",
    request_body = RedactRequest,
    security(("bearer" = ["sentinel:use"])),
    responses(
        (status = 200, description = "The redacted text", body = RedactResult),
        (status = 503, description = "The Sentinel, its policy or the audit trail could not run", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn redact(
    State(state): State<AppState>,
    mut auth: Authed<Write, NeedSentinelUse>,
    ApiJson(body): ApiJson<RedactRequest>,
) -> Result<Response, ApiError> {
    check_text(&body.text)?;
    let channel = body.channel.unwrap_or(Channel::Prompt);
    let tenant = auth.principal.tenant;
    let now = state.clock.now();
    let redactor = Redactor::load(&state, &mut auth.tx, tenant, now).await?;
    let mut vault = PendingVault::default();
    let r = redactor.redact(&body.text, channel, &mut vault).await?;
    let sealed = vault.store(&redactor.key, &mut auth.tx, now).await?;
    let mut applied: BTreeMap<&str, BTreeMap<&str, u32>> = BTreeMap::new();
    for a in &r.applied {
        let mode = if a.token.as_deref() == Some(rampart_sentinel::scrub::SCRUBBED) {
            "scrubbed"
        } else {
            a.mode.as_str()
        };
        *applied
            .entry(a.class.as_str())
            .or_default()
            .entry(mode)
            .or_default() += 1;
    }
    let event = auth.ctx.event(
        tenant,
        &auth.principal.subject,
        AuditAction::SentinelRedact,
        format!("sentinel:{}", channel.as_str()),
        Outcome::Success,
        json!({
            "channel": channel.as_str(), "policy_version": redactor.policy.version,
            "key_generation": redactor.key.generation, "applied": applied,
            "sealed": sealed,
        }),
        now,
    );
    audit(&state, &mut auth.tx, event).await?;
    auth.tx.commit().await?;
    let at = CodePoints::new(&body.text, r.applied.iter().flat_map(|a| [a.start, a.end]));
    let spans = r
        .applied
        .into_iter()
        .map(|a| AppliedSpan {
            class: a.class,
            start: at.of(a.start),
            end: at.of(a.end),
            score: a.score,
            mode: a.mode,
            token: a.token,
        })
        .collect();
    let result = RedactResult {
        text: r.text,
        spans,
        policy_version: redactor.policy.version,
    };
    Ok(no_store(Json(result).into_response()))
}

/// The values behind reversible tokens. Needs `sentinel:reveal`; every call is audited with the
/// tokens asked for (never the values), and refused if the audit cannot be written.
#[utoipa::path(post, path = "/v1/sentinel/reveal", tag = "sentinel",
    request_body = RevealRequest,
    security(("bearer" = ["sentinel:reveal"])),
    responses(
        (status = 200, description = "Values (shown once, not cached)", body = RevealResult),
    ))]
pub async fn reveal(
    State(state): State<AppState>,
    mut auth: Authed<Write, NeedSentinelReveal>,
    ApiJson(body): ApiJson<RevealRequest>,
) -> Result<Response, ApiError> {
    if body.tokens.is_empty() || body.tokens.len() > MAX_REVEAL {
        return Err(ApiError::validation(format!(
            "`tokens` holds 1 to {MAX_REVEAL} tokens"
        )));
    }
    let tenant = auth.principal.tenant;
    // Only well-formed reversible tokens are looked up; anything else is unknown.
    let well_formed: Vec<&str> = body
        .tokens
        .iter()
        .map(String::as_str)
        .filter(|t| {
            rampart_sentinel::transform::next_reversible_token(t, 0)
                .is_some_and(|(s, e, _)| s == 0 && e == t.len())
        })
        .collect();
    let found = state
        .sentinel
        .reveal(&state.secrets, &mut auth.tx, tenant, &well_formed)
        .await?;
    let mut values = Vec::new();
    for (token, v) in well_formed.iter().zip(found) {
        if let Some(v) = v {
            values.push(RevealedValue {
                token: (*token).to_owned(),
                class: v.class,
                value: (*v.value).clone(),
            });
        }
    }
    let unknown: Vec<String> = body
        .tokens
        .iter()
        .filter(|t| !values.iter().any(|v| v.token == **t))
        .map(|t| rampart_types::truncate_for_display(t))
        .collect();
    let revealed: Vec<&str> = values.iter().map(|v| v.token.as_str()).collect();
    let event = auth.ctx.event(
        tenant,
        &auth.principal.subject,
        AuditAction::SentinelReveal,
        "sentinel:vault".to_owned(),
        Outcome::Success,
        json!({ "revealed": revealed, "unknown": unknown.len() }),
        state.clock.now(),
    );
    audit(&state, &mut auth.tx, event).await?;
    auth.tx.commit().await?;
    Ok(no_store(
        Json(RevealResult { values, unknown }).into_response(),
    ))
}

/// The tenant's policy in force, or an earlier version.
#[utoipa::path(get, path = "/v1/sentinel/policy", tag = "sentinel",
    params(PolicyQuery),
    security(("bearer" = ["sentinel:admin"])),
    responses(
        (status = 200, description = "The policy", body = PolicyView),
        (status = 404, description = "No such version", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn get_policy(
    mut auth: Authed<Read, NeedSentinelAdmin>,
    ApiQuery(q): ApiQuery<PolicyQuery>,
) -> Result<Json<PolicyView>, ApiError> {
    let p = tenant_policy(&mut auth.tx, auth.principal.tenant, q.version)
        .await?
        .ok_or_else(|| ApiError::not_found("policy version"))?;
    Ok(Json(PolicyView {
        version: p.version,
        policy: p.policy,
        created_by: p.created_by,
        created_at: p.created_at,
    }))
}

/// Stores a new version of the tenant's policy, in force from the next call. Unknown fields,
/// classes, channels or modes, thresholds outside [0, 1] and duplicate lines are refused.
#[utoipa::path(put, path = "/v1/sentinel/policy", tag = "sentinel",
    request_body = PutPolicy,
    security(("bearer" = ["sentinel:admin"])),
    responses(
        (status = 200, description = "The new version", body = PolicyView),
        (status = 409, description = "`expected_version` is not the version in force", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn put_policy(
    State(state): State<AppState>,
    mut auth: Authed<Write, NeedSentinelAdmin>,
    ApiJson(body): ApiJson<PutPolicy>,
) -> Result<Json<PolicyView>, ApiError> {
    body.policy
        .compile()
        .map_err(|e| ApiError::validation(format!("`policy`: {e}")))?;
    let tenant = auth.principal.tenant;
    let current = auth
        .tx
        .document_version(DocumentKind::SentinelPolicy, tenant, None)
        .await?
        .map_or(0, |p| p.version);
    if body.expected_version.is_some_and(|v| v != current) {
        return Err(ApiError::conflict(format!(
            "the policy in force is version {current}"
        )));
    }
    let now = state.clock.now();
    let record = DocumentVersionRecord {
        tenant_id: tenant,
        version: current + 1,
        document: serde_json::to_value(&body.policy).map_err(ApiError::internal)?,
        created_by: auth.principal.subject.clone(),
        created_at: now,
    };
    if !auth
        .tx
        .insert_document_version(DocumentKind::SentinelPolicy, &record)
        .await?
    {
        return Err(ApiError::conflict(
            "another change to the policy was stored first; read it and try again",
        ));
    }
    let event = auth.ctx.event(
        tenant,
        &auth.principal.subject,
        AuditAction::SentinelPolicyChange,
        format!("sentinel_policy:{}", record.version),
        Outcome::Success,
        json!({ "version": record.version, "policy": record.document }),
        now,
    );
    audit(&state, &mut auth.tx, event).await?;
    auth.tx.commit().await?;
    Ok(Json(PolicyView {
        version: record.version,
        policy: body.policy,
        created_by: Some(record.created_by),
        created_at: Some(now),
    }))
}

/// Destroys the tenant's Sentinel key: every reversible token issued under it becomes
/// unrecoverable (its sealed values are deleted, and the key that sealed them is gone), and
/// strict tokens change from the next redaction, which creates a new key.
#[utoipa::path(post, path = "/v1/sentinel/key/destroy", tag = "sentinel",
    security(("bearer" = ["sentinel:admin"])),
    responses(
        (status = 200, description = "Destroyed", body = KeyDestroyed),
        (status = 404, description = "The tenant has no live Sentinel key", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn destroy_key(
    State(state): State<AppState>,
    mut auth: Authed<Write, NeedSentinelAdmin>,
) -> Result<Json<KeyDestroyed>, ApiError> {
    let tenant = auth.principal.tenant;
    let now = state.clock.now();
    let (generation, tokens) = state
        .sentinel
        .destroy_key(&mut auth.tx, tenant, now)
        .await?
        .ok_or_else(|| ApiError::not_found("live Sentinel key"))?;
    let event = auth.ctx.event(
        tenant,
        &auth.principal.subject,
        AuditAction::SentinelKeyDestroy,
        format!("sentinel_key:{generation}"),
        Outcome::Success,
        json!({ "generation": generation, "tokens_destroyed": tokens }),
        now,
    );
    audit(&state, &mut auth.tx, event).await?;
    auth.tx.commit().await?;
    Ok(Json(KeyDestroyed {
        generation,
        tokens_destroyed: tokens,
    }))
}
