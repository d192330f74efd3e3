//! One error type for every handler, rendered as an RFC 9457 problem.
//!
//! What the client sees (kind, title, a safe detail) is kept apart from what is logged (the
//! internal cause): the cause is logged with the request id, never put in the body.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use rampart_store::StoreError;
use rampart_types::Problem;

/// Every kind of failure a client can see. Each has a stable `code`, which is also the last
/// segment of the problem `type` URI (`docs/problems.md` lists them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    Unauthenticated,
    InvalidToken,
    TokenExpired,
    TokenRevoked,
    InvalidClient,
    InvalidGrant,
    UnsupportedGrantType,
    UnsupportedTokenType,
    InvalidScope,
    Forbidden,
    NotAllowed,
    NotFound,
    MethodNotAllowed,
    MalformedJson,
    UnknownField,
    InvalidBody,
    UnsupportedMediaType,
    PayloadTooLarge,
    InvalidPathParameter,
    InvalidQuery,
    Validation,
    Conflict,
    /// A mission's call whose system instructions are not the pinned ones.
    InstructionsDrift,
    /// A call a gateway directive refused.
    DirectiveViolated,
    /// A call over a gateway rate-limit directive.
    RateLimited,
    Timeout,
    Unavailable,
    /// The upstream an agent's call was forwarded to could not be reached or failed.
    UpstreamFailed,
    Internal,
}

impl ErrorKind {
    /// Every kind, for documentation and tests.
    pub const ALL: &'static [ErrorKind] = &[
        ErrorKind::Unauthenticated,
        ErrorKind::InvalidToken,
        ErrorKind::TokenExpired,
        ErrorKind::TokenRevoked,
        ErrorKind::InvalidClient,
        ErrorKind::InvalidGrant,
        ErrorKind::UnsupportedGrantType,
        ErrorKind::UnsupportedTokenType,
        ErrorKind::InvalidScope,
        ErrorKind::Forbidden,
        ErrorKind::NotAllowed,
        ErrorKind::NotFound,
        ErrorKind::MethodNotAllowed,
        ErrorKind::MalformedJson,
        ErrorKind::UnknownField,
        ErrorKind::InvalidBody,
        ErrorKind::UnsupportedMediaType,
        ErrorKind::PayloadTooLarge,
        ErrorKind::InvalidPathParameter,
        ErrorKind::InvalidQuery,
        ErrorKind::Validation,
        ErrorKind::Conflict,
        ErrorKind::InstructionsDrift,
        ErrorKind::DirectiveViolated,
        ErrorKind::RateLimited,
        ErrorKind::Timeout,
        ErrorKind::UpstreamFailed,
        ErrorKind::Unavailable,
        ErrorKind::Internal,
    ];

    /// (status, code, title, OAuth 2.0 error code).
    #[must_use]
    pub const fn describe(self) -> (StatusCode, &'static str, &'static str, Option<&'static str>) {
        use ErrorKind::*;
        match self {
            Unauthenticated => (
                StatusCode::UNAUTHORIZED,
                "unauthenticated",
                "Authentication required",
                None,
            ),
            InvalidToken => (
                StatusCode::UNAUTHORIZED,
                "invalid-token",
                "Invalid access token",
                Some("invalid_token"),
            ),
            TokenExpired => (
                StatusCode::UNAUTHORIZED,
                "token-expired",
                "Access token expired",
                Some("invalid_token"),
            ),
            TokenRevoked => (
                StatusCode::UNAUTHORIZED,
                "token-revoked",
                "Access token revoked",
                Some("invalid_token"),
            ),
            InvalidClient => (
                StatusCode::UNAUTHORIZED,
                "invalid-client",
                "Invalid API key",
                Some("invalid_client"),
            ),
            InvalidGrant => (
                StatusCode::BAD_REQUEST,
                "invalid-grant",
                "Invalid grant",
                Some("invalid_grant"),
            ),
            UnsupportedGrantType => (
                StatusCode::BAD_REQUEST,
                "unsupported-grant-type",
                "Unsupported grant type",
                Some("unsupported_grant_type"),
            ),
            UnsupportedTokenType => (
                StatusCode::BAD_REQUEST,
                "unsupported-token-type",
                "Unsupported token type",
                Some("unsupported_token_type"),
            ),
            InvalidScope => (
                StatusCode::BAD_REQUEST,
                "invalid-scope",
                "Invalid scope",
                Some("invalid_scope"),
            ),
            Forbidden => (
                StatusCode::FORBIDDEN,
                "forbidden",
                "Missing capability",
                Some("insufficient_scope"),
            ),
            NotAllowed => (
                StatusCode::FORBIDDEN,
                "not-allowed",
                "Outside the agent's allowlist",
                None,
            ),
            NotFound => (StatusCode::NOT_FOUND, "not-found", "Not found", None),
            MethodNotAllowed => (
                StatusCode::METHOD_NOT_ALLOWED,
                "method-not-allowed",
                "Method not allowed",
                None,
            ),
            MalformedJson => (
                StatusCode::BAD_REQUEST,
                "malformed-json",
                "Malformed JSON",
                Some("invalid_request"),
            ),
            UnknownField => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "unknown-field",
                "Unknown field",
                Some("invalid_request"),
            ),
            InvalidBody => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid-body",
                "Invalid request body",
                Some("invalid_request"),
            ),
            UnsupportedMediaType => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported-media-type",
                "Unsupported media type",
                Some("invalid_request"),
            ),
            PayloadTooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload-too-large",
                "Payload too large",
                None,
            ),
            InvalidPathParameter => (
                StatusCode::BAD_REQUEST,
                "invalid-path-parameter",
                "Invalid path parameter",
                None,
            ),
            InvalidQuery => (
                StatusCode::BAD_REQUEST,
                "invalid-query",
                "Invalid query string",
                None,
            ),
            Validation => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "validation-failed",
                "Validation failed",
                Some("invalid_request"),
            ),
            Conflict => (StatusCode::CONFLICT, "conflict", "Conflict", None),
            InstructionsDrift => (
                StatusCode::CONFLICT,
                "instructions-drift",
                "Instructions drifted from the mission's",
                None,
            ),
            DirectiveViolated => (
                StatusCode::FORBIDDEN,
                "directive-violated",
                "Refused by a directive",
                None,
            ),
            RateLimited => (
                StatusCode::TOO_MANY_REQUESTS,
                "rate-limited",
                "Rate limited",
                None,
            ),
            UpstreamFailed => (
                StatusCode::BAD_GATEWAY,
                "upstream-failed",
                "Upstream failed",
                None,
            ),
            Timeout => (
                StatusCode::SERVICE_UNAVAILABLE,
                "timeout",
                "Request timed out",
                None,
            ),
            Unavailable => (
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "Service unavailable",
                None,
            ),
            Internal => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "Internal error",
                None,
            ),
        }
    }

    #[must_use]
    pub fn status(self) -> StatusCode {
        self.describe().0
    }

    #[must_use]
    pub fn code(self) -> &'static str {
        self.describe().1
    }

    /// The kind a bare status code maps to, for responses produced outside the handlers.
    #[must_use]
    pub fn for_status(status: StatusCode) -> Self {
        match status.as_u16() {
            401 => ErrorKind::Unauthenticated,
            403 => ErrorKind::Forbidden,
            404 => ErrorKind::NotFound,
            405 => ErrorKind::MethodNotAllowed,
            408 | 504 => ErrorKind::Timeout,
            413 => ErrorKind::PayloadTooLarge,
            415 => ErrorKind::UnsupportedMediaType,
            422 => ErrorKind::InvalidBody,
            503 => ErrorKind::Unavailable,
            400..=499 => ErrorKind::Validation,
            _ => ErrorKind::Internal,
        }
    }

    /// A problem of this kind with the given detail.
    #[must_use]
    pub fn problem(self, detail: impl Into<String>) -> Problem {
        let (status, code, title, oauth) = self.describe();
        let mut p = Problem::new(status.as_u16(), code, title, detail);
        p.error = oauth.map(str::to_owned);
        p
    }
}

/// A failed request.
#[derive(Debug)]
pub struct ApiError {
    pub kind: ErrorKind,
    /// For the client; user input in backticks, never a secret.
    pub detail: String,
    /// For the log only.
    cause: Option<String>,
}

impl ApiError {
    pub fn new(kind: ErrorKind, detail: impl Into<String>) -> Self {
        Self {
            kind,
            detail: detail.into(),
            cause: None,
        }
    }

    /// Attaches the internal cause, which is logged but never shown.
    #[must_use]
    pub fn with_cause(mut self, cause: impl std::fmt::Display) -> Self {
        self.cause = Some(cause.to_string());
        self
    }

    pub fn not_found(what: &str) -> Self {
        Self::new(ErrorKind::NotFound, format!("{what} not found"))
    }

    pub fn validation(detail: impl Into<String>) -> Self {
        Self::new(ErrorKind::Validation, detail)
    }

    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(ErrorKind::Forbidden, detail)
    }

    pub fn conflict(detail: impl Into<String>) -> Self {
        Self::new(ErrorKind::Conflict, detail)
    }

    pub fn internal(cause: impl std::fmt::Display) -> Self {
        Self::new(
            ErrorKind::Internal,
            "the server could not complete the request",
        )
        .with_cause(cause)
    }

    /// The audit trail could not be written: the request is refused (fail closed).
    pub fn audit_unavailable(cause: impl std::fmt::Display) -> Self {
        Self::new(
            ErrorKind::Unavailable,
            "the audit trail is unavailable, so the request was refused",
        )
        .with_cause(cause)
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(what) => ApiError::conflict(format!("{what} already exists")),
            // Reaching another tenant's row is reported as absence, never as a refusal.
            StoreError::ScopeViolation => {
                ApiError::not_found("resource").with_cause("scope violation")
            }
            e if e.is_unavailable() => ApiError::new(
                ErrorKind::Unavailable,
                "the database is unavailable; try again",
            )
            .with_cause(e),
            other => ApiError::internal(other),
        }
    }
}

/// The problem of a response, waiting for the edge middleware to add the request id and
/// instance and render it.
#[derive(Debug, Clone)]
pub(crate) struct PendingProblem(pub Problem);

/// A header to add to an error response (e.g. `WWW-Authenticate`).
#[derive(Debug, Clone)]
pub(crate) struct ChallengeHeader(pub HeaderValue);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.kind.status();
        match (&self.cause, status.is_server_error()) {
            (Some(cause), true) => {
                tracing::error!(code = self.kind.code(), %cause, "request failed")
            }
            (Some(cause), false) => {
                tracing::warn!(code = self.kind.code(), %cause, "request refused")
            }
            (None, _) => tracing::info!(code = self.kind.code(), "request refused"),
        }
        let mut res = status.into_response();
        if status == StatusCode::UNAUTHORIZED {
            let challenge = match self.kind.describe().3 {
                Some(e) if self.kind != ErrorKind::InvalidClient => {
                    format!("Bearer realm=\"rampart\", error=\"{e}\"")
                }
                _ => "Bearer realm=\"rampart\"".to_owned(),
            };
            if let Ok(v) = HeaderValue::from_str(&challenge) {
                res.extensions_mut().insert(ChallengeHeader(v));
            }
        }
        res.extensions_mut()
            .insert(PendingProblem(self.kind.problem(self.detail)));
        res
    }
}

/// Renders a problem body with its request id and instance.
pub(crate) fn render_problem(mut problem: Problem, request_id: &str, instance: &str) -> Response {
    problem.request_id = Some(request_id.to_owned());
    problem.instance = Some(instance.to_owned());
    let status = StatusCode::from_u16(problem.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = serde_json::to_vec(&problem).unwrap_or_default();
    let mut res = (status, body).into_response();
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_and_types_end_with_them() {
        let mut seen = std::collections::HashSet::new();
        for k in ErrorKind::ALL {
            assert!(seen.insert(k.code()), "duplicate code {}", k.code());
            let p = k.problem("d");
            assert!(p.type_uri.ends_with(&format!("/{}", k.code())));
            assert_eq!(p.status, k.status().as_u16());
            assert!(k.status().is_client_error() || k.status().is_server_error());
        }
    }

    #[test]
    fn every_code_is_documented() {
        let doc = include_str!("../../../docs/problems.md");
        for k in ErrorKind::ALL {
            let row = format!("| `{}` | {} |", k.code(), k.status().as_u16());
            assert!(doc.contains(&row), "docs/problems.md lacks {row}");
        }
    }
}
