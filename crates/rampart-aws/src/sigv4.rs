//! AWS Signature Version 4: the `Authorization` header of a request, computed from its canonical
//! form. Tested against AWS's published S3 examples.

use std::collections::BTreeMap;
use std::fmt;

use rampart_crypto::{Secret, hmac_sha256, sha256};
use rampart_types::{Timestamp, lower_hex};

use crate::AwsError;

/// Long-term or temporary credentials. The secret parts are [`Secret`]s: zeroized on drop, and
/// `Debug` prints `[REDACTED]`.
pub struct Credentials {
    pub access_key_id: String,
    pub secret_access_key: Secret<String>,
    /// STS session token of temporary credentials, sent as `x-amz-security-token`.
    pub session_token: Option<Secret<String>>,
}

impl Credentials {
    #[must_use]
    pub fn new(access_key_id: impl Into<String>, secret_access_key: Secret<String>) -> Self {
        Self {
            access_key_id: access_key_id.into(),
            secret_access_key,
            session_token: None,
        }
    }

    /// From the standard environment variables: `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`
    /// and, for temporary credentials, `AWS_SESSION_TOKEN`.
    pub fn from_env() -> Result<Self, AwsError> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let (Some(id), Some(secret)) = (var("AWS_ACCESS_KEY_ID"), var("AWS_SECRET_ACCESS_KEY"))
        else {
            return Err(AwsError::Config(
                "AWS credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY".into(),
            ));
        };
        Ok(Self {
            access_key_id: id,
            secret_access_key: Secret::new(secret),
            session_token: var("AWS_SESSION_TOKEN").map(Secret::new),
        })
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &self.secret_access_key)
            .field("session_token", &self.session_token)
            .finish()
    }
}

/// One request to sign.
#[derive(Debug, Clone)]
pub struct SigningInput<'a> {
    pub method: &'a str,
    /// The canonical URI: the path, each segment URI-encoded.
    pub path: &'a str,
    /// Query parameters, not encoded.
    pub query: &'a [(&'a str, &'a str)],
    /// Headers to sign besides `host`, `x-amz-date`, `x-amz-content-sha256` and
    /// `x-amz-security-token` (which the signer adds): lower-case names.
    pub headers: &'a [(&'a str, &'a str)],
    pub host: &'a str,
    /// Hex SHA-256 of the body.
    pub payload_sha256: &'a str,
    /// `YYYYMMDDTHHMMSSZ`.
    pub amz_date: &'a str,
    pub region: &'a str,
    /// `s3`, `kms`, `secretsmanager`, …
    pub service: &'a str,
}

/// URI-encodes per SigV4: unreserved characters stay, everything else is `%XX`; `/` stays when
/// encoding a path.
#[must_use]
pub fn uri_encode(s: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric()
            || matches!(b, b'-' | b'_' | b'.' | b'~')
            || (keep_slash && b == b'/')
        {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn hmac(key: &[u8], data: &[u8]) -> Result<[u8; 32], AwsError> {
    hmac_sha256(key, data).map_err(|e| AwsError::Config(e.to_string()))
}

/// Lower-case hex of a SHA-256 digest.
#[must_use]
pub fn sha256_hex(data: &[u8]) -> String {
    lower_hex(&sha256(data))
}

/// The SigV4 canonical query string: each name and value URI-encoded, sorted. Also a valid query
/// string to send, so the request carries exactly what was signed.
#[must_use]
pub fn canonical_query(query: &[(&str, &str)]) -> String {
    // Sorted by encoded name, then value (not as `name=value` strings: `a` sorts before `a-b`).
    let mut pairs: Vec<(String, String)> = query
        .iter()
        .map(|(k, v)| (uri_encode(k, false), uri_encode(v, false)))
        .collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// The `Authorization` header value of an AWS Signature Version 4 request.
pub fn sign_v4(input: &SigningInput<'_>, creds: &Credentials) -> Result<String, AwsError> {
    let canonical_query = canonical_query(input.query);
    let mut headers: BTreeMap<String, String> = input
        .headers
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    headers.insert("host".into(), input.host.to_owned());
    headers.insert("x-amz-date".into(), input.amz_date.to_owned());
    headers.insert(
        "x-amz-content-sha256".into(),
        input.payload_sha256.to_owned(),
    );
    if let Some(token) = &creds.session_token {
        headers.insert("x-amz-security-token".into(), token.expose().clone());
    }
    let canonical_headers: String = headers.iter().map(|(k, v)| format!("{k}:{v}\n")).collect();
    let signed_headers = headers.keys().cloned().collect::<Vec<_>>().join(";");
    let canonical_request = format!(
        "{}\n{}\n{canonical_query}\n{canonical_headers}\n{signed_headers}\n{}",
        input.method, input.path, input.payload_sha256
    );
    let date = &input.amz_date[..8.min(input.amz_date.len())];
    let scope = format!("{date}/{}/{}/aws4_request", input.region, input.service);
    let string_to_sign = format!(
        "AWS4-HMAC-SHA256\n{}\n{scope}\n{}",
        input.amz_date,
        sha256_hex(canonical_request.as_bytes())
    );
    let secret = Secret::new(format!("AWS4{}", creds.secret_access_key.expose()));
    let k_date = Secret::new(hmac(secret.expose().as_bytes(), date.as_bytes())?);
    let k_region = Secret::new(hmac(k_date.expose(), input.region.as_bytes())?);
    let k_service = Secret::new(hmac(k_region.expose(), input.service.as_bytes())?);
    let k_signing = Secret::new(hmac(k_service.expose(), b"aws4_request")?);
    let signature = lower_hex(&hmac(k_signing.expose(), string_to_sign.as_bytes())?);
    Ok(format!(
        "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders={signed_headers}, Signature={signature}",
        creds.access_key_id
    ))
}

/// SigV4's `x-amz-date` (`YYYYMMDD'T'HHMMSS'Z'`) of a time.
#[must_use]
pub fn amz_date(t: Timestamp) -> String {
    let iso = t.to_rfc3339(); // YYYY-MM-DDTHH:MM:SS[.mmm]Z
    let mut out: String = iso
        .chars()
        .take(19)
        .filter(|c| !matches!(c, '-' | ':'))
        .collect();
    out.push('Z');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example_creds() -> Credentials {
        Credentials::new(
            "AKIAIOSFODNN7EXAMPLE",
            Secret::new("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY".into()),
        )
    }

    const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    /// Signs one of AWS's example requests to `examplebucket` (an empty body, 2013-05-24).
    fn sign_example(path: &str, query: &[(&str, &str)], headers: &[(&str, &str)]) -> String {
        let input = SigningInput {
            method: "GET",
            path,
            query,
            headers,
            host: "examplebucket.s3.amazonaws.com",
            payload_sha256: EMPTY_SHA256,
            amz_date: "20130524T000000Z",
            region: "us-east-1",
            service: "s3",
        };
        sign_v4(&input, &example_creds()).unwrap()
    }

    /// AWS's published Signature Version 4 examples for S3 ("Examples: Signature Calculations
    /// in AWS Signature Version 4", GET Object and ListObjects).
    #[test]
    fn sigv4_matches_the_published_examples() {
        assert_eq!(
            sign_example("/test.txt", &[], &[("range", "bytes=0-9")]),
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, \
             SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, \
             Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
        );
        let list = sign_example("/", &[("max-keys", "2"), ("prefix", "J")], &[]);
        assert!(
            list.ends_with(
                "Signature=34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7"
            ),
            "{list}"
        );
    }

    #[test]
    fn a_session_token_is_signed() {
        let mut creds = example_creds();
        creds.session_token = Some(Secret::new("FwoGZXIvYXdzEXAMPLETOKEN".into()));
        let input = SigningInput {
            method: "POST",
            path: "/",
            query: &[],
            headers: &[("x-amz-target", "TrentService.Decrypt")],
            host: "kms.us-east-1.amazonaws.com",
            payload_sha256: EMPTY_SHA256,
            amz_date: "20130524T000000Z",
            region: "us-east-1",
            service: "kms",
        };
        let auth = sign_v4(&input, &creds).unwrap();
        assert!(auth.contains("/us-east-1/kms/aws4_request"), "{auth}");
        assert!(
            auth.contains("SignedHeaders=host;x-amz-content-sha256;x-amz-date;x-amz-security-token;x-amz-target"),
            "{auth}"
        );
        assert_ne!(auth, sign_v4(&input, &example_creds()).unwrap());
    }

    #[test]
    fn credentials_never_show() {
        let mut creds = example_creds();
        creds.session_token = Some(Secret::new("FwoGZXIvYXdzEXAMPLETOKEN".into()));
        let shown = format!("{creds:?}");
        assert!(!shown.contains("EXAMPLEKEY"), "{shown}");
        assert!(!shown.contains("EXAMPLETOKEN"), "{shown}");
    }

    #[test]
    fn amz_dates_are_utc() {
        let t = Timestamp::from_unix_seconds(1_369_353_600); // 2013-05-24T00:00:00Z
        assert_eq!(amz_date(t), "20130524T000000Z");
        let leap = Timestamp::from_unix_millis((951_782_400 + 3661) * 1000 + 250); // 2000-02-29T01:01:01.250Z
        assert_eq!(amz_date(leap), "20000229T010101Z");
    }
}
