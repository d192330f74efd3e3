//! The edge: every request gets an id (the W3C `traceparent` trace id when present), runs inside
//! a span carrying it, is logged once when it completes, and every error response leaves as an
//! RFC 9457 problem with that id — including those produced outside the handlers (unknown
//! routes, wrong methods, timeouts, panics).

use std::time::Instant;

use axum::extract::Request;
use axum::http::{HeaderValue, Method, StatusCode, Uri, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use rampart_identity::redact_credentials;
use rampart_types::RequestId;
use tracing::Instrument;

use crate::error::{ApiError, ChallengeHeader, ErrorKind, PendingProblem, render_problem};
use crate::extract::RequestContext;

pub async fn edge(mut req: Request, next: Next) -> Response {
    let request_id = req
        .headers()
        .get("traceparent")
        .and_then(|v| v.to_str().ok())
        .and_then(RequestId::from_traceparent)
        .unwrap_or_else(RequestId::generate);
    req.extensions_mut().insert(RequestContext { request_id });
    let method = req.method().clone();
    // The path only (a query string may carry anything), with credential-shaped text removed.
    let path = redact_credentials(req.uri().path()).into_owned();
    let span =
        tracing::info_span!("request", request_id = %request_id, method = %method, path = %path);
    let started = Instant::now();
    let res = next.run(req).instrument(span.clone()).await;
    let id = request_id.to_string();
    let mut res = finalize(res, &id, &path);
    if let Ok(v) = HeaderValue::from_str(&id) {
        res.headers_mut().insert("x-request-id", v);
    }
    let status = res.status().as_u16();
    let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
    span.in_scope(|| tracing::info!(status, latency_ms, "request completed"));
    res
}

fn is_problem(res: &Response) -> bool {
    res.headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/problem+json"))
}

fn finalize(mut res: Response, request_id: &str, instance: &str) -> Response {
    if let Some(PendingProblem(problem)) = res.extensions_mut().remove::<PendingProblem>() {
        let challenge = res.extensions_mut().remove::<ChallengeHeader>();
        let mut out = render_problem(problem, request_id, instance);
        if let Some(ChallengeHeader(v)) = challenge {
            out.headers_mut().insert(header::WWW_AUTHENTICATE, v);
        }
        return out;
    }
    let status = res.status();
    if (status.is_client_error() || status.is_server_error()) && !is_problem(&res) {
        let kind = ErrorKind::for_status(status);
        let detail = match kind {
            ErrorKind::MethodNotAllowed => "this route does not accept the request method",
            ErrorKind::Timeout => "the request took longer than the server allows",
            ErrorKind::PayloadTooLarge => "the request body is larger than the server allows",
            _ => kind.describe().2,
        };
        let allow = res.headers().get(header::ALLOW).cloned();
        let mut out = render_problem(kind.problem(detail), request_id, instance);
        if let Some(allow) = allow {
            out.headers_mut().insert(header::ALLOW, allow);
        }
        return out;
    }
    res
}

/// The fallback for unknown routes.
pub async fn not_found(method: Method, uri: Uri) -> ApiError {
    let path: String = redact_credentials(uri.path()).chars().take(100).collect();
    ApiError::new(
        ErrorKind::NotFound,
        format!("no route for `{method} {path}`"),
    )
}

/// The response for a panicking handler: a plain internal error; the panic itself is logged by
/// the panic hook.
pub fn panic_response(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    ApiError::internal("a handler panicked").into_response()
}

/// `Cache-Control: no-store` for responses that carry a credential.
pub fn no_store(mut res: Response) -> Response {
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res.headers_mut()
        .insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    res
}

pub const TIMEOUT_STATUS: StatusCode = StatusCode::SERVICE_UNAVAILABLE;
