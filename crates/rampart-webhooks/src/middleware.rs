//! An axum middleware that lets through only verified, first-seen webhook messages.
//!
//! ```ignore
//! let receiver = Arc::new(Receiver::new(verifier, Arc::new(MemoryReplayGuard::new(100_000)), clock));
//! let app = Router::new()
//!     .route("/hooks", post(handle))
//!     .layer(axum::middleware::from_fn_with_state(receiver, verify_webhooks));
//! ```
//!
//! A rejected message gets a 401 `application/problem+json` body (RFC 9457) whose `code` names
//! the check that failed. A handler that answers with anything but 2xx gives the id back, so the
//! sender's retry of the same message is accepted.

use std::sync::Arc;

use axum::body::{Body, to_bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use rampart_types::{Clock, Problem};

use crate::{Headers, Rejection, ReplayGuard, Verified, Verifier};

/// Default limit on a webhook body.
pub const DEFAULT_MAX_BODY: usize = 1024 * 1024;

/// What the middleware checks with.
pub struct Receiver {
    verifier: Verifier,
    guard: Arc<dyn ReplayGuard>,
    clock: Arc<dyn Clock>,
    max_body: usize,
}

impl Receiver {
    #[must_use]
    pub fn new(verifier: Verifier, guard: Arc<dyn ReplayGuard>, clock: Arc<dyn Clock>) -> Self {
        Self {
            verifier,
            guard,
            clock,
            max_body: DEFAULT_MAX_BODY,
        }
    }

    #[must_use]
    pub fn with_max_body(mut self, bytes: usize) -> Self {
        self.max_body = bytes;
        self
    }
}

fn problem(status: u16, code: &str, title: &str, detail: String) -> Response {
    let body = Problem::new(status, code, title, detail);
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::UNAUTHORIZED);
    let json = serde_json::to_vec(&body).unwrap_or_default();
    (
        status,
        [(header::CONTENT_TYPE, "application/problem+json")],
        json,
    )
        .into_response()
}

fn rejected(r: &Rejection) -> Response {
    problem(
        r.status(),
        r.code(),
        "webhook verification failed",
        r.to_string(),
    )
}

/// A header as text; a value that is not visible ASCII is read as absent-but-present garbage,
/// which fails its check with the right message.
fn text<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).map(|v| v.to_str().unwrap_or("\u{0}"))
}

/// The middleware: verify, claim the id, run the handler, give the id back if it failed. The
/// handler finds the [`Verified`] message in the request's extensions.
pub async fn verify_webhooks(
    State(receiver): State<Arc<Receiver>>,
    req: Request,
    next: Next,
) -> Response {
    let (mut parts, body) = req.into_parts();
    let Ok(bytes) = to_bytes(body, receiver.max_body).await else {
        return problem(
            413,
            "webhook_body_too_large",
            "webhook body too large",
            format!(
                "a webhook body may have at most {} bytes",
                receiver.max_body
            ),
        );
    };
    let headers = Headers {
        id: text(&parts.headers, crate::HEADER_ID),
        timestamp: text(&parts.headers, crate::HEADER_TIMESTAMP),
        signature: text(&parts.headers, crate::HEADER_SIGNATURE),
    };
    let now = receiver.clock.now().unix_seconds();
    let verified: Verified =
        match receiver
            .verifier
            .verify_once(headers, &bytes, now, receiver.guard.as_ref())
        {
            Ok(v) => v,
            Err(r) => return rejected(&r),
        };
    let id = verified.id().to_owned();
    parts.extensions.insert(verified);
    let response = next
        .run(Request::from_parts(parts, Body::from(bytes)))
        .await;
    if !response.status().is_success() {
        receiver.guard.release(&id);
    }
    response
}
