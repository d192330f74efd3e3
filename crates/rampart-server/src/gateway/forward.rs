//! Sending a redacted call to its upstream, and the answer of a call that is not streamed.
//!
//! The upstream is called with the blocking HTTP client the server already uses for webhooks
//! and secret backends (rustls, connection pooling), on the blocking pool.

use std::sync::OnceLock;
use std::time::Duration;

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use rampart_secrets::SecretPath;
use rampart_sentinel::transform::restore;
use rampart_store::Tx;
use rampart_types::{Outcome, TenantId};
use serde_json::Value;
use zeroize::Zeroizing;

use super::json::{pieces, put_back};
use super::{Call, Provider, Upstream, Usage};
use crate::error::{ApiError, ErrorKind};
use crate::state::AppState;

/// The largest answer read from an upstream when it is not streamed.
const MAX_ANSWER: u64 = 32 * 1024 * 1024;
/// How long one upstream call may take in all (a long stream included).
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(600);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// The Anthropic API version sent when the client names none.
const ANTHROPIC_VERSION: &str = "2023-06-01";

fn agent() -> &'static ureq::Agent {
    static AGENT: OnceLock<ureq::Agent> = OnceLock::new();
    AGENT.get_or_init(|| {
        ureq::Agent::config_builder()
            .timeout_global(Some(UPSTREAM_TIMEOUT))
            .timeout_connect(Some(CONNECT_TIMEOUT))
            .http_status_as_error(false)
            .max_redirects(0)
            .max_idle_connections_per_host(64)
            .user_agent(concat!("rampart-gateway/", env!("CARGO_PKG_VERSION")))
            .build()
            .into()
    })
}

/// The upstream's API key, read from the tenant's secrets for this call.
pub async fn upstream_key(
    state: &AppState,
    tx: &mut Tx,
    tenant: TenantId,
    upstream: &Upstream,
) -> Result<Zeroizing<String>, ApiError> {
    let path: SecretPath = upstream
        .api_key_secret
        .parse()
        .map_err(|e| ApiError::internal(format!("stored gateway configuration: {e}")))?;
    let opened = state
        .secrets
        .current(tx, tenant, &path)
        .await
        .map_err(|e| {
            let e = ApiError::from(e);
            if e.kind == ErrorKind::NotFound {
                ApiError::conflict(format!(
                    "the upstream API key secret `{}` cannot be read",
                    upstream.api_key_secret
                ))
            } else {
                e
            }
        })?;
    let key = std::str::from_utf8(opened.expose())
        .map(|s| Zeroizing::new(s.trim().to_owned()))
        .map_err(|_| {
            ApiError::conflict(format!(
                "the upstream API key secret `{}` is not text",
                upstream.api_key_secret
            ))
        })?;
    if key.is_empty() || key.chars().any(|c| c.is_control()) {
        return Err(ApiError::conflict(format!(
            "the upstream API key secret `{}` is not a usable key",
            upstream.api_key_secret
        )));
    }
    Ok(key)
}

/// A redacted request, ready to send.
pub struct UpstreamRequest {
    url: String,
    headers: Vec<(&'static str, Zeroizing<String>)>,
    body: Vec<u8>,
}

impl UpstreamRequest {
    /// The provider's authentication and version headers; nothing else of the client's
    /// request (its Rampart token above all) is passed on.
    pub fn new(
        provider: Provider,
        upstream: &Upstream,
        key: Zeroizing<String>,
        client: &HeaderMap,
        body: &Value,
    ) -> Result<Self, ApiError> {
        let mut headers = vec![("content-type", Zeroizing::new("application/json".into()))];
        let passed = |name: &str| {
            client
                .get(name)
                .and_then(|v| v.to_str().ok())
                .filter(|v| v.len() <= 256)
                .map(|v| Zeroizing::new(v.to_owned()))
        };
        match provider {
            Provider::OpenAi => {
                headers.push(("authorization", Zeroizing::new(format!("Bearer {}", *key))));
            }
            Provider::Anthropic => {
                headers.push(("x-api-key", key));
                headers.push((
                    "anthropic-version",
                    passed("anthropic-version")
                        .unwrap_or_else(|| Zeroizing::new(ANTHROPIC_VERSION.into())),
                ));
                if let Some(beta) = passed("anthropic-beta") {
                    headers.push(("anthropic-beta", beta));
                }
            }
        }
        Ok(UpstreamRequest {
            url: format!(
                "{}{}",
                upstream.base_url.trim_end_matches('/'),
                provider.path()
            ),
            headers,
            body: serde_json::to_vec(body).map_err(ApiError::internal)?,
        })
    }

    /// Sends it (blocking).
    pub fn send(&self) -> Result<ureq::http::Response<ureq::Body>, String> {
        let mut req = agent().post(&self.url);
        for (k, v) in &self.headers {
            req = req.header(*k, v.as_str());
        }
        // The transport error names the URL, never a header.
        req.send(&self.body[..]).map_err(|e| e.to_string())
    }
}

/// The upstream could not be reached: audited as failed, refused as 502.
pub async fn unreachable(mut call: Call, cause: String) -> ApiError {
    let err = ApiError::new(
        ErrorKind::UpstreamFailed,
        format!(
            "the `{}` upstream could not be reached",
            call.provider.as_str()
        ),
    )
    .with_cause(&cause);
    match call
        .finish(Outcome::Failed, None, Usage::default(), Some(&cause))
        .await
    {
        Ok(()) => err,
        Err(e) => e,
    }
}

/// Redacts one answer (or error) body in place and restores the caller's reversible values
/// where the policy allows.
pub async fn process_answer(call: &mut Call, answer: &mut Value) -> Result<(), ApiError> {
    let sites = call.provider.answer_sites(answer);
    let mut pieces = pieces(answer, &sites);
    for piece in &mut pieces {
        let r = call
            .redactor
            .redact(&piece.text, piece.channel, &mut call.answer_vault)
            .await?;
        call.redacted.add("response", &r.applied);
        piece.text = restore(&r.text, |t| call.restorable.lookup(&call.redactor, t));
    }
    put_back(answer, &sites, pieces)
}

/// Reads a whole answer (blocking).
pub fn read_answer(mut resp: ureq::http::Response<ureq::Body>) -> Result<(u16, Vec<u8>), String> {
    let status = resp.status().as_u16();
    let body = resp
        .body_mut()
        .with_config()
        .limit(MAX_ANSWER)
        .read_to_vec()
        .map_err(|e| e.to_string())?;
    Ok((status, body))
}

/// Finishes a call whose whole answer was read: redacted, restored, audited, returned.
pub async fn answer(mut call: Call, status: u16, bytes: &[u8]) -> Result<Response, ApiError> {
    let Ok(mut answer) = serde_json::from_slice::<Value>(bytes) else {
        // Not JSON: nothing the Sentinel can check field by field, so nothing goes back.
        let cause = format!("HTTP {status} with a body that is not JSON");
        let err = ApiError::new(
            ErrorKind::UpstreamFailed,
            format!(
                "the `{}` upstream answered with something other than JSON",
                call.provider.as_str()
            ),
        );
        call.finish(
            Outcome::Failed,
            Some(status),
            Usage::default(),
            Some(&cause),
        )
        .await?;
        return Err(err);
    };
    process_answer(&mut call, &mut answer).await?;
    let mut usage = Usage::default();
    call.provider.usage(&answer, &mut usage);
    let ok = (200..300).contains(&status);
    let outcome = if ok {
        Outcome::Success
    } else {
        Outcome::Failed
    };
    call.finish(outcome, Some(status), usage, None).await?;
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
    let mut res = (status, axum::Json(answer)).into_response();
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(res)
}

/// Forwards a call that is not streamed.
pub async fn respond(call: Call, request: UpstreamRequest) -> Result<Response, ApiError> {
    let sent = tokio::task::spawn_blocking(move || request.send().and_then(read_answer))
        .await
        .map_err(ApiError::internal)?;
    match sent {
        Ok((status, bytes)) => answer(call, status, &bytes).await,
        Err(cause) => Err(unreachable(call, cause).await),
    }
}
