//! Extractors. Each rejects with a typed problem, never with axum's plain-text defaults.

use std::marker::PhantomData;

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use rampart_identity::{Actor, VerifyOptions};
use rampart_identity::{TokenError, VerifiedAccessToken, jwt::verify_access_token_cached};
use rampart_store::{Scope, TenantScope, Tx};
use rampart_types::{
    AgentId, AuditAction, AuditEvent, Capability, CapabilitySet, FamilyId, MissionId, Outcome,
    RequestId, TenantId, Timestamp, TokenId,
};
use serde::de::DeserializeOwned;

use crate::error::{ApiError, ErrorKind};
use crate::state::AppState;

/// Per-request facts set by the edge middleware.
#[derive(Debug, Clone, Copy)]
pub struct RequestContext {
    pub request_id: RequestId,
}

impl<S: Send + Sync> FromRequestParts<S> for RequestContext {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        Ok(parts
            .extensions
            .get::<RequestContext>()
            .copied()
            .unwrap_or_else(|| RequestContext {
                request_id: RequestId::generate(),
            }))
    }
}

impl RequestContext {
    /// An audit record of this request.
    #[must_use]
    #[expect(clippy::too_many_arguments, reason = "one argument per audit field")]
    pub fn event(
        &self,
        tenant: TenantId,
        actor: &str,
        action: AuditAction,
        resource: String,
        outcome: Outcome,
        detail: serde_json::Value,
        at: Timestamp,
    ) -> AuditEvent {
        AuditEvent {
            tenant_id: tenant,
            request_id: Some(self.request_id),
            actor: actor.to_owned(),
            action,
            resource,
            outcome,
            detail,
            at,
        }
    }
}

fn media_type(headers: &HeaderMap) -> Option<String> {
    let ct = headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
    Some(ct.split(';').next()?.trim().to_ascii_lowercase())
}

fn is_json(mt: &str) -> bool {
    mt == "application/json" || (mt.starts_with("application/") && mt.ends_with("+json"))
}

async fn body_bytes(req: Request, max: usize) -> Result<Bytes, ApiError> {
    match Bytes::from_request(req, &()).await {
        Ok(b) if b.len() > max => Err(too_large(max)),
        Ok(b) => Ok(b),
        Err(rej) if rej.status() == StatusCode::PAYLOAD_TOO_LARGE => Err(too_large(max)),
        Err(rej) => Err(ApiError::new(
            ErrorKind::MalformedJson,
            "the request body could not be read",
        )
        .with_cause(rej.body_text())),
    }
}

fn too_large(max: usize) -> ApiError {
    ApiError::new(
        ErrorKind::PayloadTooLarge,
        format!("the request body is larger than the limit of {max} bytes"),
    )
}

/// Backticked fragments longer than this are cut: they are user input and could be a pasted
/// secret.
const MAX_ECHO: usize = 40;

/// A serde message with quoted values removed and backticked names shortened, so that an error
/// body never echoes a value the client sent (which could be a secret in the wrong field).
pub(crate) fn sanitize_serde_message(msg: &str) -> String {
    let msg = match msg.find(" at line ") {
        Some(i) => &msg[..i],
        None => msg,
    };
    let mut out = String::with_capacity(msg.len());
    let mut chars = msg.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                out.push_str("\"…\"");
                for d in chars.by_ref() {
                    if d == '"' {
                        break;
                    }
                }
            }
            '`' => {
                let mut inner = String::new();
                for d in chars.by_ref() {
                    if d == '`' {
                        break;
                    }
                    inner.push(d);
                }
                let shown = rampart_identity::redact_credentials(&inner);
                if shown.chars().count() > MAX_ECHO {
                    let cut: String = shown.chars().take(MAX_ECHO).collect();
                    out.push_str(&format!("`{cut}…`"));
                } else {
                    out.push_str(&format!("`{shown}`"));
                }
            }
            _ => out.push(c),
        }
    }
    out
}

pub(crate) fn json_error(e: &serde_json::Error) -> ApiError {
    use serde_json::error::Category;
    match e.classify() {
        Category::Eof => ApiError::new(
            ErrorKind::MalformedJson,
            "the request body is empty or ends before the JSON value does",
        ),
        Category::Syntax | Category::Io => ApiError::new(
            ErrorKind::MalformedJson,
            format!(
                "the request body is not valid JSON (line {}, column {})",
                e.line(),
                e.column()
            ),
        ),
        Category::Data => {
            let text = e.to_string();
            let kind = if text.starts_with("unknown field") {
                ErrorKind::UnknownField
            } else {
                ErrorKind::InvalidBody
            };
            ApiError::new(kind, sanitize_serde_message(&text))
        }
    }
}

/// Every request body of this API is a JSON object (or, where optional, `null`), but serde also
/// fills a struct from a JSON array, positionally — `["why"]` as `{"reason": "why"}` — which no
/// schema allows. Refuse arrays (other non-objects already fail to deserialize).
fn refuse_array(bytes: &[u8]) -> Result<(), ApiError> {
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'[') {
        return Ok(());
    }
    match serde_json::from_slice::<serde::de::IgnoredAny>(bytes) {
        Err(e) => Err(json_error(&e)),
        Ok(_) => Err(ApiError::new(
            ErrorKind::InvalidBody,
            "the body must be a JSON object",
        )),
    }
}

/// A JSON body (`application/json` or `application/*+json`), unknown fields refused by the target
/// type.
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for ApiJson<T> {
    type Rejection = ApiError;
    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        match media_type(req.headers()) {
            Some(mt) if is_json(&mt) => {}
            _ => {
                return Err(ApiError::new(
                    ErrorKind::UnsupportedMediaType,
                    "send the body as `application/json`",
                ));
            }
        }
        let bytes = body_bytes(req, state.config.max_body_bytes).await?;
        refuse_array(&bytes)?;
        serde_json::from_slice(&bytes)
            .map(ApiJson)
            .map_err(|e| json_error(&e))
    }
}

/// A JSON body that may be absent: no body (and no content type), or a JSON `null`, gives
/// `T::default()`.
#[derive(Debug)]
pub struct OptionalJson<T>(pub T);

impl<T: DeserializeOwned + Default> FromRequest<AppState> for OptionalJson<T> {
    type Rejection = ApiError;
    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        let mt = media_type(req.headers());
        let bytes = body_bytes(req, state.config.max_body_bytes).await?;
        if bytes.is_empty() && mt.is_none() {
            return Ok(OptionalJson(T::default()));
        }
        match mt {
            Some(mt) if is_json(&mt) => {
                refuse_array(&bytes)?;
                serde_json::from_slice::<Option<T>>(&bytes)
                    .map(|v| OptionalJson(v.unwrap_or_default()))
                    .map_err(|e| json_error(&e))
            }
            _ => Err(ApiError::new(
                ErrorKind::UnsupportedMediaType,
                "send the body as `application/json`",
            )),
        }
    }
}

/// A body as JSON or as `application/x-www-form-urlencoded` (what OAuth 2.0 clients send).
#[derive(Debug)]
pub struct JsonOrForm<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for JsonOrForm<T> {
    type Rejection = ApiError;
    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        let mt = media_type(req.headers());
        let bytes = body_bytes(req, state.config.max_body_bytes).await?;
        match mt.as_deref() {
            Some(mt) if is_json(mt) => {
                refuse_array(&bytes)?;
                serde_json::from_slice(&bytes)
                    .map(JsonOrForm)
                    .map_err(|e| json_error(&e))
            }
            Some("application/x-www-form-urlencoded") => serde_urlencoded::from_bytes(&bytes)
                .map(JsonOrForm)
                .map_err(|e| {
                    ApiError::new(
                        ErrorKind::InvalidBody,
                        sanitize_serde_message(&e.to_string()),
                    )
                }),
            _ => Err(ApiError::new(
                ErrorKind::UnsupportedMediaType,
                "send the body as `application/json` or `application/x-www-form-urlencoded`",
            )),
        }
    }
}

/// A query string.
#[derive(Debug)]
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(q)| ApiQuery(q))
            .map_err(|rej| {
                ApiError::new(
                    ErrorKind::InvalidQuery,
                    sanitize_serde_message(&rej.body_text()),
                )
            })
    }
}

/// Whether `c` is whitespace as the document's patterns mean it: JSON Schema's `\s` is
/// ECMA-262's WhiteSpace and LineTerminator — Rust's `char::is_whitespace` without U+0085, plus
/// U+FEFF. Validation that a pattern also describes uses this, so the two never disagree.
#[must_use]
pub fn is_schema_space(c: char) -> bool {
    (c.is_whitespace() && c != '\u{85}') || c == '\u{feff}'
}

/// A `reason` for the audit trail, as every body that takes one documents it: up to 500
/// characters, not all whitespace.
/// The `limit` of a list request: 1 to 1000, 100 when absent.
pub fn page_limit(limit: Option<i64>) -> Result<i64, ApiError> {
    let limit = limit.unwrap_or(100);
    if (1..=1000).contains(&limit) {
        Ok(limit)
    } else {
        Err(ApiError::new(
            ErrorKind::InvalidQuery,
            "`limit` is 1 to 1000",
        ))
    }
}

pub fn check_reason(r: &str) -> Result<(), ApiError> {
    if r.chars().all(is_schema_space) || r.chars().count() > 500 {
        return Err(ApiError::validation(
            "`reason` is up to 500 characters, not all whitespace",
        ));
    }
    Ok(())
}

/// The longest duration string a body field takes: the document's `maxLength` for all of them.
pub const MAX_DURATION_LEN: usize = 32;

/// A duration body field such as `15m` (`field` names it in the problem), as long as the
/// document allows.
pub fn duration_field(field: &str, s: &str) -> Result<std::time::Duration, ApiError> {
    if s.len() > MAX_DURATION_LEN {
        return Err(ApiError::validation(format!(
            "`{field}` is at most {MAX_DURATION_LEN} characters"
        )));
    }
    rampart_types::parse_duration(s).map_err(|e| ApiError::validation(format!("`{field}`: {e}")))
}

/// [`duration_field`] for a lifetime: longer than zero.
pub fn lifetime_field(field: &str, s: &str) -> Result<std::time::Duration, ApiError> {
    let d = duration_field(field, s)?;
    if d.is_zero() {
        return Err(ApiError::validation(format!(
            "`{field}` must be longer than zero"
        )));
    }
    Ok(d)
}

/// A single path parameter, parsed with `T::from_str`.
#[derive(Debug)]
pub struct ApiPath<T>(pub T);

impl<S: Send + Sync, T> FromRequestParts<S> for ApiPath<T>
where
    T: std::str::FromStr<Err = rampart_types::IdParseError>,
{
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Path(raw) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|_| {
                ApiError::new(
                    ErrorKind::InvalidPathParameter,
                    "the path parameter could not be decoded",
                )
            })?;
        raw.parse::<T>().map(ApiPath).map_err(|e| {
            ApiError::new(
                ErrorKind::InvalidPathParameter,
                sanitize_serde_message(&e.to_string()),
            )
        })
    }
}

/// The verified caller of a request.
#[derive(Debug, Clone)]
pub struct Principal {
    pub tenant: TenantId,
    pub subject: String,
    pub caps: CapabilitySet,
    pub family: FamilyId,
    pub jti: TokenId,
    pub expires_at: Timestamp,
    /// A `tenants:admin` credential of the system tenant.
    pub platform: bool,
    /// The agent the token speaks for (`sub` = `agent:<id>`): its allowlists apply.
    pub agent: Option<AgentId>,
    /// The mission the token was minted for.
    pub mission: Option<MissionId>,
    /// Who the subject acts for, when the token was delegated.
    pub act: Option<Actor>,
}

impl Principal {
    fn from_token(t: &VerifiedAccessToken, system_tenant: TenantId) -> Result<Self, ApiError> {
        let c = t.claims();
        let in_system = c.tenant_id == system_tenant;
        // Defence in depth: platform capabilities never exist outside the system tenant.
        if c.caps.has_platform_only() && !in_system {
            return Err(ApiError::new(
                ErrorKind::InvalidToken,
                "the token carries capabilities its tenant cannot hold",
            ));
        }
        Ok(Self {
            tenant: c.tenant_id,
            subject: c.sub.clone(),
            caps: c.caps,
            family: c.fam,
            jti: c.jti,
            expires_at: t.expires_at(),
            platform: in_system && c.caps.contains(Capability::TenantsAdmin),
            agent: crate::agents::agent_of_subject(&c.sub),
            mission: c.mission,
            act: c.act.clone(),
        })
    }

    #[must_use]
    pub fn scope(&self) -> Scope {
        Scope::Tenant(TenantScope {
            tenant: self.tenant,
            subject: self.subject.clone(),
            platform: self.platform,
        })
    }
}

/// The capability a route needs.
pub trait Need: Send + Sync + 'static {
    const CAPABILITY: Option<Capability>;
}

/// Any verified token will do.
#[derive(Debug)]
pub struct AnyCapability;
impl Need for AnyCapability {
    const CAPABILITY: Option<Capability> = None;
}

macro_rules! needs {
    ($($marker:ident => $cap:ident),+ $(,)?) => {$(
        #[doc = concat!("Requires the `", stringify!($cap), "` capability.")]
        #[derive(Debug)]
        pub struct $marker;
        impl Need for $marker {
            const CAPABILITY: Option<Capability> = Some(Capability::$cap);
        }
    )+};
}

needs! {
    NeedTenantsAdmin => TenantsAdmin,
    NeedApikeysManage => ApikeysManage,
    NeedAuditRead => AuditRead,
    NeedKeysManage => KeysManage,
    NeedSecretsRead => SecretsRead,
    NeedSecretsWrite => SecretsWrite,
    NeedSecretsAdmin => SecretsAdmin,
    NeedAgentsManage => AgentsManage,
    NeedLeasesIssue => LeasesIssue,
    NeedLeasesAdmin => LeasesAdmin,
    NeedWebhooksManage => WebhooksManage,
    NeedSentinelUse => SentinelUse,
    NeedSentinelReveal => SentinelReveal,
    NeedSentinelAdmin => SentinelAdmin,
    NeedMissionsManage => MissionsManage,
    NeedGatewayCall => GatewayCall,
    NeedGatewayAdmin => GatewayAdmin,
}

/// Whether the request's transaction may write.
pub trait Access: Send + Sync + 'static {
    const WRITE: bool;
}

/// A read-only transaction.
#[derive(Debug)]
pub struct Read;
impl Access for Read {
    const WRITE: bool = false;
}

/// A read-write transaction.
#[derive(Debug)]
pub struct Write;
impl Access for Write {
    const WRITE: bool = true;
}

/// An authenticated request: the bearer token verified, the capability checked, a transaction
/// open in the caller's tenant scope, and the token's family and id checked live inside it — all
/// before the handler runs.
#[derive(Debug)]
pub struct Authed<A: Access, N: Need = AnyCapability> {
    pub principal: Principal,
    pub tx: Tx,
    pub ctx: RequestContext,
    _marker: PhantomData<(A, N)>,
}

fn bearer(parts: &Parts) -> Result<&str, ApiError> {
    let Some(value) = parts.headers.get(header::AUTHORIZATION) else {
        // The Anthropic SDK sends its API key as `x-api-key`: an agent configures its Rampart
        // token there.
        if let Some(key) = parts.headers.get("x-api-key") {
            let token = key.to_str().unwrap_or("").trim();
            if !token.is_empty() && !token.starts_with("rmp_live_") {
                return Ok(token);
            }
        }
        return Err(ApiError::new(
            ErrorKind::Unauthenticated,
            "send an access token: `Authorization: Bearer <token>`",
        ));
    };
    let value = value.to_str().unwrap_or("");
    let token = value
        .split_once(' ')
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| t.trim())
        .filter(|t| !t.is_empty());
    let Some(token) = token else {
        return Err(ApiError::new(
            ErrorKind::InvalidToken,
            "the Authorization header must use the `Bearer` scheme",
        ));
    };
    if token.starts_with("rmp_live_") {
        return Err(ApiError::new(
            ErrorKind::InvalidToken,
            "an API key is not an access token; exchange it at `POST /v1/auth/token`",
        ));
    }
    Ok(token)
}

fn token_error(e: &TokenError) -> ApiError {
    match e {
        TokenError::Expired => ApiError::new(ErrorKind::TokenExpired, e.to_string()),
        _ => ApiError::new(ErrorKind::InvalidToken, e.to_string()),
    }
}

/// Verifies an access token against the current keys, re-reading them once if the token names a
/// key this node has not seen yet (another node may just have rotated).
pub async fn verify_bearer(state: &AppState, token: &str) -> Result<VerifiedAccessToken, ApiError> {
    let attempt = |state: &AppState| {
        let keys = state.keys.current().ok_or_else(|| {
            ApiError::new(ErrorKind::Unavailable, "signing keys are not loaded yet")
        })?;
        let opts = VerifyOptions {
            issuer: &state.config.issuer,
            now: state.clock.now(),
            leeway: state.config.clock_skew,
            max_lifetime: state.config.access_token_ttl,
        };
        Ok::<_, ApiError>(verify_access_token_cached(
            token,
            &keys.keys,
            &opts,
            state.keys.checked(),
        ))
    };
    match attempt(state)? {
        Ok(v) => Ok(v),
        Err(TokenError::UnknownKey) if state.keys.reload_after_miss().await => {
            attempt(state)?.map_err(|e| token_error(&e))
        }
        Err(e) => Err(token_error(&e)),
    }
}

impl<A: Access, N: Need> FromRequestParts<AppState> for Authed<A, N> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let ctx = RequestContext::from_request_parts(parts, state).await?;
        let token = bearer(parts)?;
        let verified = verify_bearer(state, token).await?;
        let principal = Principal::from_token(&verified, state.system_tenant)?;
        if let Some(cap) = N::CAPABILITY
            && !principal.caps.contains(cap)
        {
            return Err(ApiError::forbidden(format!(
                "this request needs the `{cap}` capability"
            )));
        }
        let scope = principal.scope();
        let mut tx = if A::WRITE {
            state.store.begin(scope).await?
        } else {
            state.store.begin_read(scope).await?
        };
        let claims = verified.claims();
        let live = tx
            .token_liveness(
                principal.tenant,
                principal.family,
                principal.jti,
                claims.lineage().principals(),
                claims.epoch,
            )
            .await?;
        if !live.is_live() {
            return Err(ApiError::new(
                ErrorKind::TokenRevoked,
                "the access token has been revoked",
            ));
        }
        Ok(Self {
            principal,
            tx,
            ctx,
            _marker: PhantomData,
        })
    }
}

impl<N: Need> Authed<Write, N> {
    /// An authenticated context the server makes for itself (a directive aborting a mission):
    /// `principal` is who the audit trail names, `tx` a write transaction in its tenant.
    pub(crate) fn from_parts(principal: Principal, tx: Tx, ctx: RequestContext) -> Self {
        Self {
            principal,
            tx,
            ctx,
            _marker: PhantomData,
        }
    }
}

impl<A: Access, N: Need> Authed<A, N> {
    /// Moves the transaction into `target` (default: the caller's own tenant). Another tenant is
    /// reachable only by the platform operator, and only if it exists; for anyone else it is not
    /// found, never forbidden.
    pub async fn act_in(&mut self, target: Option<TenantId>) -> Result<TenantId, ApiError> {
        let target = target.unwrap_or(self.principal.tenant);
        if target == self.principal.tenant {
            return Ok(target);
        }
        if !self.principal.platform || self.tx.get_tenant(target).await?.is_none() {
            return Err(ApiError::not_found("tenant"));
        }
        self.tx
            .set_scope(Scope::Tenant(TenantScope {
                tenant: target,
                subject: self.principal.subject.clone(),
                platform: false,
            }))
            .await?;
        Ok(target)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_space_is_what_ecmascript_calls_whitespace() {
        for c in [
            ' ', '\t', '\n', '\u{a0}', '\u{2028}', '\u{3000}', '\u{feff}',
        ] {
            assert!(is_schema_space(c), "{c:?}");
        }
        for c in ['a', '\u{85}', '\u{200b}', '\0'] {
            assert!(!is_schema_space(c), "{c:?}");
        }
    }

    #[test]
    fn serde_messages_lose_values_and_keep_short_names() {
        assert_eq!(
            sanitize_serde_message(
                r#"invalid type: string "rmp_live_secret", expected u64 at line 1 column 30"#
            ),
            r#"invalid type: string "…", expected u64"#
        );
        let long = format!("unknown field `{}`, expected `name`", "x".repeat(80));
        let s = sanitize_serde_message(&long);
        assert!(s.contains("…`") && s.len() < 80, "{s}");
        assert_eq!(
            sanitize_serde_message("unknown field `rmp_live_abcdefghijkl_xyz`"),
            "unknown field `[REDACTED]`"
        );
    }
}
