//! RFC 9457 problem details: the one error body every Rampart endpoint returns.

use serde::{Deserialize, Serialize};

/// Base of the `type` URI of every Rampart problem; the last segment is the problem's `code`.
/// The kinds are listed in `docs/problems.md`.
pub const PROBLEM_TYPE_BASE: &str = "https://rampart.dev/problems/";

/// An `application/problem+json` body (RFC 9457), with Rampart's `code` and `request_id`
/// extension members.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Problem {
    /// A stable URI per error kind: `https://rampart.dev/problems/{code}`.
    #[serde(rename = "type")]
    pub type_uri: String,
    /// A short summary that does not change between occurrences of the kind.
    pub title: String,
    /// The HTTP status code.
    pub status: u16,
    /// What went wrong in this occurrence, for a human.
    pub detail: String,
    /// The request path this occurrence happened on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    /// The machine-readable kind, equal to the last segment of `type`.
    pub code: String,
    /// The id of the request; the same id is in the server's log lines for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// OAuth 2.0 error code (RFC 6749 §5.2), present on token-endpoint errors so OAuth clients
    /// understand them too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Problem {
    /// A problem of kind `code`.
    #[must_use]
    pub fn new(status: u16, code: &str, title: &str, detail: impl Into<String>) -> Self {
        Self {
            type_uri: format!("{PROBLEM_TYPE_BASE}{code}"),
            title: title.to_owned(),
            status,
            detail: detail.into(),
            instance: None,
            code: code.to_owned(),
            request_id: None,
            error: None,
        }
    }
}
