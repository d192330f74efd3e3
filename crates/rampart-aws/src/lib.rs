//! Rampart's AWS client: Signature Version 4 ([`sigv4`]), the JSON protocol AWS's KMS and Secrets
//! Manager speak ([`JsonService`]), and the few calls of each that Rampart makes ([`kms`],
//! [`secretsmanager`]).
//!
//! Blocking (ureq with rustls): call it from a blocking thread in async code. Every endpoint is
//! configurable, so the same code runs against AWS and against `moto` in server mode, which is
//! what the tests use. Errors name the operation and AWS's error code, never a credential or a
//! secret value.

pub mod kms;
pub mod secretsmanager;
pub mod sigv4;

use std::io::Read;
use std::time::Duration;

use rampart_crypto::Secret;
use rampart_types::{Clock, SystemClock};
use serde_json::Value;

pub use sigv4::Credentials;

/// Largest response body read.
const MAX_RESPONSE: u64 = 16 << 20;

#[derive(Debug, thiserror::Error)]
pub enum AwsError {
    /// Bad configuration (endpoint, region, credentials).
    #[error("{0}")]
    Config(String),
    /// The request did not get an answer.
    #[error("{service} {op}: {detail}")]
    Transport {
        service: &'static str,
        op: String,
        detail: String,
    },
    /// AWS answered with an error.
    #[error("{service} {op}: HTTP {status} {code}: {message}")]
    Service {
        service: &'static str,
        op: String,
        status: u16,
        /// AWS's error code, e.g. `ResourceNotFoundException`.
        code: String,
        message: String,
    },
    /// A success response that is not what the operation returns.
    #[error("{service} {op}: unexpected response: {detail}")]
    Response {
        service: &'static str,
        op: String,
        detail: String,
    },
}

impl AwsError {
    /// AWS's error code, when AWS answered with one.
    #[must_use]
    pub fn code(&self) -> Option<&str> {
        match self {
            Self::Service { code, .. } => Some(code),
            _ => None,
        }
    }
}

/// Checks an endpoint: `http(s)://host[:port]`, no path; returns it without a trailing slash.
pub fn parse_endpoint(endpoint: &str) -> Result<String, String> {
    let e = endpoint.trim_end_matches('/');
    let ok = (e.starts_with("http://") || e.starts_with("https://"))
        && !authority(e).is_empty()
        && e.split_once("://").is_some_and(|(_, r)| !r.contains('/'));
    if ok {
        Ok(e.to_owned())
    } else {
        Err(format!(
            "endpoint `{endpoint}` must be http(s)://host[:port] with no path"
        ))
    }
}

/// Checks a region name (`us-east-1`): lower-case letters, digits and `-`.
pub fn check_region(region: &str) -> Result<(), String> {
    let ok = (1..=32).contains(&region.len())
        && region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(format!("`{region}` is not an AWS region name"))
    }
}

/// `host[:port]` of an `http(s)://` URL.
#[must_use]
pub fn authority(endpoint: &str) -> &str {
    endpoint
        .split_once("://")
        .map_or("", |(_, rest)| rest.split('/').next().unwrap_or(""))
}

/// An HTTP agent that reports error statuses as responses and gives up after `timeout`.
#[must_use]
pub fn agent(timeout: Duration) -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(timeout))
        .build()
        .into()
}

/// Reads a response body (at most 16 MiB) into a buffer zeroized on drop: bodies may carry
/// secret values or key material.
pub fn read_body(resp: &mut ureq::http::Response<ureq::Body>) -> std::io::Result<Secret<Vec<u8>>> {
    let mut bytes = Secret::new(Vec::new());
    resp.body_mut()
        .as_reader()
        .take(MAX_RESPONSE)
        .read_to_end(bytes.expose_mut())?;
    Ok(bytes)
}

/// A service speaking AWS's JSON 1.1 protocol (`POST /` with `X-Amz-Target: <prefix>.<op>`).
pub struct JsonService {
    service: &'static str,
    target_prefix: &'static str,
    endpoint: String,
    region: String,
    creds: Credentials,
    agent: ureq::Agent,
}

impl std::fmt::Debug for JsonService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JsonService")
            .field("service", &self.service)
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("creds", &self.creds)
            .finish_non_exhaustive()
    }
}

impl JsonService {
    /// `endpoint` defaults to AWS's regional endpoint of the service.
    pub fn new(
        service: &'static str,
        target_prefix: &'static str,
        region: &str,
        endpoint: Option<&str>,
        creds: Credentials,
    ) -> Result<Self, AwsError> {
        check_region(region).map_err(AwsError::Config)?;
        let endpoint = match endpoint {
            Some(e) => parse_endpoint(e).map_err(AwsError::Config)?,
            None => format!("https://{service}.{region}.amazonaws.com"),
        };
        Ok(Self {
            service,
            target_prefix,
            endpoint,
            region: region.to_owned(),
            creds,
            agent: agent(Duration::from_secs(30)),
        })
    }

    #[must_use]
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Calls `op` with a JSON body and returns the JSON answer.
    pub fn call(&self, op: &str, body: &Value) -> Result<Value, AwsError> {
        let transport = |detail: String| AwsError::Transport {
            service: self.service,
            op: op.to_owned(),
            detail,
        };
        // Bodies may carry secret values or key material: both buffers are zeroized.
        let body = Secret::new(body.to_string());
        let payload = sigv4::sha256_hex(body.expose().as_bytes());
        let amz_date = sigv4::amz_date(SystemClock.now());
        let target = format!("{}.{op}", self.target_prefix);
        let content_type = "application/x-amz-json-1.1";
        let headers = [("content-type", content_type), ("x-amz-target", &target)];
        let auth = sigv4::sign_v4(
            &sigv4::SigningInput {
                method: "POST",
                path: "/",
                query: &[],
                headers: &headers,
                host: authority(&self.endpoint),
                payload_sha256: &payload,
                amz_date: &amz_date,
                region: &self.region,
                service: self.service,
            },
            &self.creds,
        )?;
        let mut req = ureq::http::Request::builder()
            .method("POST")
            .uri(format!("{}/", self.endpoint))
            .header("content-type", content_type)
            .header("x-amz-target", &target)
            .header("x-amz-date", &amz_date)
            .header("x-amz-content-sha256", &payload)
            .header("authorization", &auth);
        if let Some(token) = &self.creds.session_token {
            req = req.header("x-amz-security-token", token.expose());
        }
        let req = req
            .body(body.expose().as_bytes())
            .map_err(|e| transport(e.to_string()))?;
        let mut resp = self
            .agent
            .run(req)
            .map_err(|e| transport(format!("{} unreachable: {e}", self.endpoint)))?;
        let status = resp.status().as_u16();
        let bytes = read_body(&mut resp).map_err(|e| transport(e.to_string()))?;
        let bytes = bytes.expose();
        let json: Option<Value> = if bytes.is_empty() {
            Some(Value::Object(serde_json::Map::new()))
        } else {
            serde_json::from_slice(bytes).ok()
        };
        if (200..300).contains(&status) {
            return json.ok_or_else(|| AwsError::Response {
                service: self.service,
                op: op.to_owned(),
                detail: "the body is not JSON".into(),
            });
        }
        let json = json.unwrap_or(Value::Null);
        // `__type` is `Code` or `namespace#Code`.
        let code = json["__type"]
            .as_str()
            .map(|t| t.rsplit('#').next().unwrap_or(t).to_owned())
            .unwrap_or_else(|| format!("HTTP{status}"));
        let message = json["message"]
            .as_str()
            .or_else(|| json["Message"].as_str())
            .unwrap_or("")
            .chars()
            .take(500)
            .collect();
        Err(AwsError::Service {
            service: self.service,
            op: op.to_owned(),
            status,
            code,
            message,
        })
    }

    /// An error for a success response that lacks what `op` returns.
    pub(crate) fn unexpected(&self, op: &str, detail: impl Into<String>) -> AwsError {
        AwsError::Response {
            service: self.service,
            op: op.to_owned(),
            detail: detail.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_and_regions_are_checked() {
        assert_eq!(
            parse_endpoint("http://127.0.0.1:5000/").unwrap(),
            "http://127.0.0.1:5000"
        );
        for bad in ["ftp://h", "http://", "http://h/path", "127.0.0.1:5000"] {
            assert!(parse_endpoint(bad).is_err(), "{bad}");
        }
        assert!(check_region("eu-west-3").is_ok());
        for bad in ["", "EU", "us east", "a/b"] {
            assert!(check_region(bad).is_err(), "{bad}");
        }
    }
}
