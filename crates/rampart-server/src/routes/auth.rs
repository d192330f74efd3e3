use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use rampart_identity::Jwks;
use rampart_types::Problem;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::credentials::{TokenGrant, grant_api_key, grant_refresh, revoke};
use crate::edge::no_store;
use crate::error::{ApiError, ErrorKind};
use crate::extract::{JsonOrForm, RequestContext};
use crate::state::AppState;

/// An OAuth 2.0-style token request, as JSON or `application/x-www-form-urlencoded`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenRequest {
    /// `api_key` or `refresh_token`.
    pub grant_type: Option<String>,
    /// The API key, for `grant_type=api_key`.
    pub api_key: Option<String>,
    /// The refresh token, for `grant_type=refresh_token`.
    pub refresh_token: Option<String>,
    /// Space-separated capabilities to narrow the token to (default: all the credential holds).
    pub scope: Option<String>,
}

/// The capability-list syntax of `scope`. INVARIANT: names every capability (tested).
pub const SCOPE_PATTERN: &str = "^(tenants:admin|keys:manage|apikeys:manage|audit:read|secrets:read|secrets:write|secrets:admin|agents:manage|leases:issue|leases:admin|webhooks:manage|sentinel:use|sentinel:reveal|sentinel:admin|missions:manage|gateway:call|gateway:admin)( (tenants:admin|keys:manage|apikeys:manage|audit:read|secrets:read|secrets:write|secrets:admin|agents:manage|leases:issue|leases:admin|webhooks:manage|sentinel:use|sentinel:reveal|sentinel:admin|missions:manage|gateway:call|gateway:admin))*$";

/// `grant_type=api_key`: an API key for tokens of a new family.
#[derive(ToSchema, Deserialize)]
#[serde(deny_unknown_fields)]
#[expect(dead_code, reason = "documentation of the request body only")]
struct ApiKeyGrant {
    #[schema(pattern = "^api_key$")]
    grant_type: String,
    /// The API key (`rmp_live_…`).
    #[schema(pattern = "^rmp_live_[0-9a-z]{12}_[0-9A-Za-z]{38}$")]
    api_key: String,
    /// Space-separated capabilities to narrow the token to (default: all the key holds).
    #[schema(
        pattern = "^(tenants:admin|keys:manage|apikeys:manage|audit:read|secrets:read|secrets:write|secrets:admin|agents:manage|leases:issue|leases:admin|webhooks:manage|sentinel:use|sentinel:reveal|sentinel:admin|missions:manage|gateway:call|gateway:admin)( (tenants:admin|keys:manage|apikeys:manage|audit:read|secrets:read|secrets:write|secrets:admin|agents:manage|leases:issue|leases:admin|webhooks:manage|sentinel:use|sentinel:reveal|sentinel:admin|missions:manage|gateway:call|gateway:admin))*$"
    )]
    scope: Option<String>,
}

/// `grant_type=refresh_token`: a refresh token for its successor.
#[derive(ToSchema, Deserialize)]
#[serde(deny_unknown_fields)]
#[expect(dead_code, reason = "documentation of the request body only")]
struct RefreshTokenGrant {
    #[schema(pattern = "^refresh_token$")]
    grant_type: String,
    /// The refresh token (`rmp_rt_…`); single use.
    #[schema(pattern = "^rmp_rt_[0-9a-z]{16}_[0-9A-Za-z]{38}$")]
    refresh_token: String,
    /// Space-separated capabilities to narrow the access token to.
    #[schema(
        pattern = "^(tenants:admin|keys:manage|apikeys:manage|audit:read|secrets:read|secrets:write|secrets:admin|agents:manage|leases:issue|leases:admin|webhooks:manage|sentinel:use|sentinel:reveal|sentinel:admin|missions:manage|gateway:call|gateway:admin)( (tenants:admin|keys:manage|apikeys:manage|audit:read|secrets:read|secrets:write|secrets:admin|agents:manage|leases:issue|leases:admin|webhooks:manage|sentinel:use|sentinel:reveal|sentinel:admin|missions:manage|gateway:call|gateway:admin))*$"
    )]
    scope: Option<String>,
}

/// One of the two grants.
#[derive(ToSchema, Deserialize)]
#[serde(untagged)]
#[expect(dead_code, reason = "documentation of the request body only")]
enum TokenGrantRequest {
    ApiKey(ApiKeyGrant),
    RefreshToken(RefreshTokenGrant),
}

/// Tokens (RFC 6749 §5.1).
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenResponse {
    /// An EdDSA-signed JWT (`typ: at+jwt`).
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: &'static str,
    /// Seconds until the access token expires.
    pub expires_in: u64,
    /// Single use: each refresh returns a new one.
    pub refresh_token: String,
    /// Space-separated capabilities the access token carries.
    pub scope: String,
}

impl From<TokenGrant> for TokenResponse {
    fn from(g: TokenGrant) -> Self {
        Self {
            access_token: g.access_token,
            token_type: "Bearer",
            expires_in: g.expires_in,
            refresh_token: g.refresh_token,
            scope: g.scope.to_scope_string(),
        }
    }
}

fn missing(field: &str) -> ApiError {
    ApiError::new(ErrorKind::Validation, format!("`{field}` is required"))
}

/// Exchange an API key or a refresh token for tokens.
#[utoipa::path(post, path = "/v1/auth/token", tag = "auth",
    request_body(content = TokenGrantRequest, content_type = "application/json",
        description = "Also accepted as `application/x-www-form-urlencoded`"),
    responses(
        (status = 200, description = "Tokens issued", body = TokenResponse),
        (status = 400, description = "Invalid, expired, revoked or reused refresh token; a scope the credential does not hold; an unsupported grant type (RFC 6749 §5.2)", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Unknown, wrong, revoked or expired API key", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn token(
    State(state): State<AppState>,
    ctx: RequestContext,
    JsonOrForm(req): JsonOrForm<TokenRequest>,
) -> Result<Response, ApiError> {
    let grant = match req.grant_type.as_deref() {
        Some("api_key") => {
            let key = req.api_key.as_deref().ok_or_else(|| missing("api_key"))?;
            grant_api_key(&state, &ctx, key, req.scope.as_deref()).await?
        }
        Some("refresh_token") => {
            let rt = req
                .refresh_token
                .as_deref()
                .ok_or_else(|| missing("refresh_token"))?;
            grant_refresh(&state, &ctx, rt, req.scope.as_deref()).await?
        }
        Some(other) => {
            return Err(ApiError::new(
                ErrorKind::UnsupportedGrantType,
                format!(
                    "grant type `{}` is not supported; use `api_key` or `refresh_token`",
                    rampart_types::truncate_for_display(other)
                ),
            ));
        }
        None => return Err(missing("grant_type")),
    };
    Ok(no_store(Json(TokenResponse::from(grant)).into_response()))
}

/// A token revocation request (RFC 7009).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RevokeRequest {
    /// A refresh token (its whole family is revoked) or an access token.
    #[schema(value_type = String, min_length = 1)]
    pub token: Option<String>,
    /// `refresh_token` or `access_token`; a hint only.
    pub token_type_hint: Option<String>,
}

/// Revoke a refresh token (and its whole family) or an access token. Holding the token is the
/// authorisation; unknown tokens are not an error (RFC 7009 §2.2).
#[utoipa::path(post, path = "/v1/auth/revoke", tag = "auth",
    request_body(content = RevokeRequest, content_type = "application/json",
        description = "Also accepted as `application/x-www-form-urlencoded`"),
    responses(
        (status = 200, description = "Revoked, or nothing to revoke"),
        (status = 400, description = "An API key was sent (revoke those with DELETE /v1/apikeys/{id})", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn revoke_token(
    State(state): State<AppState>,
    ctx: RequestContext,
    JsonOrForm(req): JsonOrForm<RevokeRequest>,
) -> Result<Response, ApiError> {
    let token = req
        .token
        .as_deref()
        .filter(|t| !t.is_empty())
        .ok_or_else(|| missing("token"))?;
    revoke(&state, &ctx, token).await?;
    Ok(no_store(().into_response()))
}

/// The public keys that verify access tokens (RFC 7517), including retired keys whose tokens may
/// still be live.
#[utoipa::path(get, path = "/.well-known/jwks.json", tag = "auth",
    responses((status = 200, description = "JWK Set", body = Object)))]
pub async fn jwks(State(state): State<AppState>) -> Result<Response, ApiError> {
    let keys = state
        .keys
        .current()
        .ok_or_else(|| ApiError::new(ErrorKind::Unavailable, "signing keys are not loaded"))?;
    let doc: Jwks = keys.keys.jwks(state.clock.now());
    let mut res = Json(doc).into_response();
    res.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=60"),
    );
    Ok(res)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_scope_pattern_names_every_capability() {
        let names: Vec<&str> = rampart_types::Capability::ALL
            .iter()
            .map(|c| c.as_str())
            .collect();
        let alternation = format!("({})", names.join("|"));
        assert_eq!(
            super::SCOPE_PATTERN,
            format!("^{alternation}( {alternation})*$")
        );
        let source = include_str!("auth.rs");
        assert_eq!(
            source
                .matches(&format!("pattern = \"{}\"", super::SCOPE_PATTERN))
                .count(),
            2
        );
    }
}
