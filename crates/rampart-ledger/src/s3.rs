//! A zone in an S3-compatible bucket with Object Lock: the production place for a ledger's bytes.
//!
//! Every object is written with compliance-mode retention (`x-amz-object-lock-mode: COMPLIANCE`
//! and a retain-until date [`S3Location::retention`] ahead), so for that long no one — not the
//! bucket owner, not root — can delete or alter any version of it; overwriting a key (the latest
//! `checkpoint`) or deleting one (a dropped WAL segment) only adds a version or a delete marker
//! on top of versions that stay. The bucket must have Object Lock enabled; opening the zone checks.
//!
//! Layout under the location's prefix: the C2SP tiles (`tile/…`) and `checkpoint` as on disk; each
//! published checkpoint as its own object `checkpoints/<sequence>`; and each WAL append as its own
//! object `wal/<segment>/<byte offset>`, since objects cannot be appended to. A segment reads as
//! its objects concatenated while their offsets are contiguous. Objects are all-or-nothing, so
//! there are no torn writes to find; a failed write only leaves the zone behind, which the log
//! catches up.
//!
//! Requests are signed with AWS Signature Version 4 (`rampart_aws::sigv4`) and sent with
//! path-style addressing over HTTP or HTTPS (rustls, webpki roots).
//! Unlike a directory, a bucket holds no writer lock: one writer per location is the deployment's
//! job (each node's ledger has its own origin and should have its own prefix).

use std::collections::BTreeMap;
use std::fmt;
use std::io::{self, Read};
use std::sync::Mutex;
use std::time::Duration;

use base64::Engine as _;
/// The credentials requests are signed with.
pub use rampart_aws::Credentials;
use rampart_aws::sigv4::{
    SigningInput, amz_date, canonical_query, sha256_hex, sign_v4, uri_encode,
};
use rampart_aws::{authority, check_region, parse_endpoint};
use rampart_crypto::sha256;
use rampart_types::{Clock, SystemClock};

use crate::tile::TileId;
use crate::zone::{History, Zone};

/// The longest object the zone reads back (a bundle of big entries, a WAL append).
const MAX_OBJECT: u64 = 256 << 20;

/// Where a zone lives: `s3://bucket[/prefix]?endpoint=URL[&region=R][&retain_days=N]`.
#[derive(Clone, PartialEq, Eq)]
pub struct S3Location {
    /// `http(s)://host[:port]`, without a trailing slash.
    pub endpoint: String,
    pub region: String,
    pub bucket: String,
    /// Empty, or ending in `/`.
    pub prefix: String,
    /// How long every object written is locked in compliance mode.
    pub retention: Duration,
}

impl fmt::Debug for S3Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

impl fmt::Display for S3Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "s3://{}/{} at {}",
            self.bucket,
            self.prefix.trim_end_matches('/'),
            self.endpoint
        )
    }
}

/// The default compliance retention: seven years, a common audit-record requirement.
pub const DEFAULT_RETENTION_DAYS: u64 = 7 * 365;

impl S3Location {
    /// Parses `s3://bucket[/prefix]?endpoint=URL[&region=R][&retain_days=N]`. The region defaults
    /// to `us-east-1`, the retention to [`DEFAULT_RETENTION_DAYS`].
    pub fn parse(url: &str) -> Result<Self, String> {
        let rest = url
            .strip_prefix("s3://")
            .ok_or("an S3 zone is written s3://bucket/prefix?endpoint=URL")?;
        let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
        let (bucket, prefix) = path.split_once('/').unwrap_or((path, ""));
        let bucket_ok = (3..=63).contains(&bucket.len())
            && bucket
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
        if !bucket_ok {
            return Err(format!(
                "`{bucket}` is not a bucket name (3-63 lowercase letters, digits, '-', '.')"
            ));
        }
        let prefix = prefix.trim_matches('/');
        if !prefix.bytes().all(|b| b.is_ascii_graphic()) {
            return Err("the prefix must be printable ASCII without spaces".into());
        }
        let mut endpoint = None;
        let mut region = "us-east-1".to_owned();
        let mut retain_days = DEFAULT_RETENTION_DAYS;
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            match k {
                "endpoint" => endpoint = Some(v),
                "region" if !v.is_empty() => {
                    check_region(v)?;
                    region = v.to_owned();
                }
                "retain_days" => {
                    retain_days = v
                        .parse::<u64>()
                        .ok()
                        .filter(|d| (1..=36_500).contains(d))
                        .ok_or("retain_days must be a whole number of days from 1 to 36500")?;
                }
                _ => return Err(format!("unknown S3 zone parameter `{k}`")),
            }
        }
        let endpoint =
            parse_endpoint(endpoint.ok_or("an S3 zone needs ?endpoint=http(s)://host[:port]")?)?;
        Ok(Self {
            endpoint,
            region,
            bucket: bucket.to_owned(),
            prefix: if prefix.is_empty() {
                String::new()
            } else {
                format!("{prefix}/")
            },
            retention: Duration::from_secs(retain_days * 86_400),
        })
    }
}

/// A response: status, the headers the zone reads, body.
#[derive(Debug)]
pub struct S3Response {
    pub status: u16,
    pub headers: BTreeMap<String, String>,
    pub body: Vec<u8>,
}

impl S3Response {
    /// The S3 error code of an error response (`<Code>…</Code>`), if any.
    #[must_use]
    pub fn error_code(&self) -> Option<String> {
        xml_values(&String::from_utf8_lossy(&self.body), "Code")
            .into_iter()
            .next()
    }
}

/// An object in a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Object {
    pub key: String,
    /// Bytes.
    pub size: u64,
}

/// A signing client for one bucket.
pub struct S3Client {
    location: S3Location,
    creds: Credentials,
    agent: ureq::Agent,
}

impl fmt::Debug for S3Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Client")
            .field("location", &self.location)
            .field("creds", &self.creds)
            .finish_non_exhaustive()
    }
}

fn other(e: impl fmt::Display) -> io::Error {
    io::Error::other(e.to_string())
}

impl S3Client {
    #[must_use]
    pub fn new(location: S3Location, creds: Credentials) -> Self {
        Self {
            location,
            creds,
            agent: rampart_aws::agent(Duration::from_secs(30)),
        }
    }

    #[must_use]
    pub fn location(&self) -> &S3Location {
        &self.location
    }

    /// Sends a signed request for `key` in the bucket (`""`: the bucket itself) and reads the
    /// whole response.
    pub fn send(
        &self,
        method: &str,
        key: &str,
        query: &[(&str, &str)],
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> io::Result<S3Response> {
        let path = if key.is_empty() {
            format!("/{}", uri_encode(&self.location.bucket, false))
        } else {
            format!(
                "/{}/{}",
                uri_encode(&self.location.bucket, false),
                uri_encode(key, true)
            )
        };
        let payload = sha256_hex(body);
        let amz_date = amz_date(SystemClock.now());
        let host = authority(&self.location.endpoint);
        let auth = sign_v4(
            &SigningInput {
                method,
                path: &path,
                query,
                headers,
                host,
                payload_sha256: &payload,
                amz_date: &amz_date,
                region: &self.location.region,
                service: "s3",
            },
            &self.creds,
        )
        .map_err(other)?;
        let mut url = format!("{}{path}", self.location.endpoint);
        if !query.is_empty() {
            url.push('?');
            url.push_str(&canonical_query(query));
        }
        let mut req = ureq::http::Request::builder()
            .method(method)
            .uri(&url)
            .header("x-amz-date", &amz_date)
            .header("x-amz-content-sha256", &payload)
            .header("authorization", &auth);
        if let Some(token) = &self.creds.session_token {
            req = req.header("x-amz-security-token", token.expose());
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let sent = if body.is_empty() && method != "PUT" {
            self.agent.run(req.body(()).map_err(other)?)
        } else {
            self.agent.run(req.body(body.to_vec()).map_err(other)?)
        };
        let mut resp =
            sent.map_err(|e| io::Error::other(format!("{method} {}: {e}", self.location)))?;
        let status = resp.status().as_u16();
        let headers = resp
            .headers()
            .iter()
            .filter_map(|(k, v)| Some((k.as_str().to_owned(), v.to_str().ok()?.to_owned())))
            .collect();
        let mut body = Vec::new();
        resp.body_mut()
            .as_reader()
            .take(MAX_OBJECT)
            .read_to_end(&mut body)?;
        Ok(S3Response {
            status,
            headers,
            body,
        })
    }

    /// An error for an unexpected response, naming the S3 error code (never a credential).
    fn unexpected(&self, what: &str, r: &S3Response) -> io::Error {
        let code = r.error_code().unwrap_or_default();
        let kind = match r.status {
            403 => io::ErrorKind::PermissionDenied,
            404 => io::ErrorKind::NotFound,
            _ => io::ErrorKind::Other,
        };
        io::Error::new(
            kind,
            format!("{what} on {}: HTTP {} {code}", self.location, r.status),
        )
    }

    /// Creates the bucket with Object Lock enabled (for tests and first set-up).
    pub fn create_bucket_with_object_lock(&self) -> io::Result<()> {
        let r = self.send(
            "PUT",
            "",
            &[],
            &[("x-amz-bucket-object-lock-enabled", "true")],
            b"",
        )?;
        match r.status {
            200 => Ok(()),
            409 if r.error_code().as_deref() == Some("BucketAlreadyOwnedByYou") => Ok(()),
            _ => Err(self.unexpected("creating the bucket", &r)),
        }
    }

    /// Whether Object Lock is enabled on the bucket.
    pub fn object_lock_enabled(&self) -> io::Result<bool> {
        let r = self.send("GET", "", &[("object-lock", "")], &[], b"")?;
        match r.status {
            200 => Ok(
                xml_values(&String::from_utf8_lossy(&r.body), "ObjectLockEnabled")
                    .iter()
                    .any(|v| v == "Enabled"),
            ),
            404 if r.error_code().as_deref() == Some("ObjectLockConfigurationNotFoundError") => {
                Ok(false)
            }
            _ => Err(self.unexpected("reading the Object Lock configuration", &r)),
        }
    }

    /// Writes an object under compliance-mode retention, with a SHA-256 checksum S3 verifies.
    pub fn put_locked(&self, key: &str, body: &[u8]) -> io::Result<()> {
        let until = SystemClock
            .now()
            .saturating_add(self.location.retention)
            .to_rfc3339();
        let checksum = base64::engine::general_purpose::STANDARD.encode(sha256(body));
        let r = self.send(
            "PUT",
            key,
            &[],
            &[
                ("x-amz-checksum-sha256", &checksum),
                ("x-amz-sdk-checksum-algorithm", "SHA256"),
                ("x-amz-object-lock-mode", "COMPLIANCE"),
                ("x-amz-object-lock-retain-until-date", &until),
            ],
            body,
        )?;
        if r.status == 200 {
            Ok(())
        } else {
            Err(self.unexpected(&format!("writing {key}"), &r))
        }
    }

    /// An object's bytes, or `None` when it does not exist.
    pub fn get(&self, key: &str) -> io::Result<Option<Vec<u8>>> {
        let r = self.send("GET", key, &[], &[], b"")?;
        match r.status {
            200 => Ok(Some(r.body)),
            404 => Ok(None),
            _ => Err(self.unexpected(&format!("reading {key}"), &r)),
        }
    }

    pub fn exists(&self, key: &str) -> io::Result<bool> {
        let r = self.send("HEAD", key, &[], &[], b"")?;
        match r.status {
            200 => Ok(true),
            404 => Ok(false),
            _ => Err(self.unexpected(&format!("looking up {key}"), &r)),
        }
    }

    /// Deletes the current version of an object (adds a delete marker; locked versions stay).
    pub fn delete(&self, key: &str) -> io::Result<()> {
        let r = self.send("DELETE", key, &[], &[], b"")?;
        if matches!(r.status, 200 | 204 | 404) {
            Ok(())
        } else {
            Err(self.unexpected(&format!("deleting {key}"), &r))
        }
    }

    /// Objects under `prefix` (and, with `delimiter`, the common prefixes), every page, in key
    /// order.
    pub fn list(&self, prefix: &str, delimiter: bool) -> io::Result<(Vec<S3Object>, Vec<String>)> {
        let (mut objects, mut prefixes) = (Vec::new(), Vec::new());
        let mut token: Option<String> = None;
        loop {
            let mut query = vec![("list-type", "2"), ("prefix", prefix)];
            if delimiter {
                query.push(("delimiter", "/"));
            }
            if let Some(t) = &token {
                query.push(("continuation-token", t));
            }
            let r = self.send("GET", "", &query, &[], b"")?;
            if r.status != 200 {
                return Err(self.unexpected(&format!("listing {prefix}"), &r));
            }
            let xml = String::from_utf8_lossy(&r.body);
            for c in xml_values(&xml, "Contents") {
                let (Some(key), Some(size)) = (
                    xml_values(&c, "Key").into_iter().next(),
                    xml_values(&c, "Size").first().and_then(|s| s.parse().ok()),
                ) else {
                    return Err(other(format!(
                        "listing {prefix}: an entry without key or size"
                    )));
                };
                objects.push(S3Object { key, size });
            }
            for c in xml_values(&xml, "CommonPrefixes") {
                prefixes.extend(xml_values(&c, "Prefix"));
            }
            let truncated =
                xml_values(&xml, "IsTruncated").first().map(String::as_str) == Some("true");
            token = xml_values(&xml, "NextContinuationToken").into_iter().next();
            if !truncated || token.is_none() {
                return Ok((objects, prefixes));
            }
        }
    }
}

/// The text of every `<tag>…</tag>` element in `xml` (not nested in one another), unescaped.
/// Enough for S3's flat list and error documents.
fn xml_values(xml: &str, tag: &str) -> Vec<String> {
    let (open, close) = (format!("<{tag}>"), format!("</{tag}>"));
    let mut out = Vec::new();
    let mut rest = xml;
    while let Some(start) = rest.find(&open) {
        let after = &rest[start + open.len()..];
        let Some(end) = after.find(&close) else { break };
        out.push(
            after[..end]
                .replace("&lt;", "<")
                .replace("&gt;", ">")
                .replace("&quot;", "\"")
                .replace("&apos;", "'")
                .replace("&amp;", "&"),
        );
        rest = &after[end + close.len()..];
    }
    out
}

/// A ledger zone in an Object Lock bucket.
#[derive(Debug)]
pub struct S3Zone {
    client: S3Client,
    /// Known byte lengths of WAL segments (forgotten after a failed write, then re-listed).
    wal_len: Mutex<BTreeMap<u64, u64>>,
}

fn poisoned<T>(_: T) -> io::Error {
    io::Error::other("s3 zone lock poisoned")
}

/// `(offset, key)` of a WAL object key `…/wal/<segment>/<offset>`.
fn wal_offset(key: &str) -> Option<u64> {
    key.rsplit('/').next()?.parse().ok()
}

impl S3Zone {
    /// Opens the zone, refusing a bucket without Object Lock.
    pub fn open(client: S3Client) -> io::Result<Self> {
        if !client.object_lock_enabled()? {
            return Err(io::Error::other(format!(
                "{}: Object Lock is not enabled on the bucket; a ledger zone must be immutable \
                 (create the bucket with Object Lock enabled)",
                client.location
            )));
        }
        Ok(Self {
            client,
            wal_len: Mutex::new(BTreeMap::new()),
        })
    }

    #[must_use]
    pub fn client(&self) -> &S3Client {
        &self.client
    }

    fn key(&self, rel: &str) -> String {
        format!("{}{rel}", self.client.location.prefix)
    }

    fn wal_prefix(&self, segment: u64) -> String {
        self.key(&format!("wal/{segment:020}/"))
    }

    /// The WAL objects of a segment: `(offset, object)`, by offset.
    fn wal_objects(&self, segment: u64) -> io::Result<Vec<(u64, S3Object)>> {
        let (listed, _) = self.client.list(&self.wal_prefix(segment), false)?;
        let mut objects: Vec<(u64, S3Object)> = listed
            .into_iter()
            .filter_map(|o| Some((wal_offset(&o.key)?, o)))
            .collect();
        objects.sort_by_key(|(offset, _)| *offset);
        Ok(objects)
    }

    /// The length of a segment's contiguous bytes from offset 0 (from the listing alone), after
    /// deleting any object past a gap (left by an interrupted truncation): appends must never
    /// run into stale bytes.
    fn contiguous_len(&self, segment: u64) -> io::Result<u64> {
        let mut len = 0u64;
        for (offset, object) in self.wal_objects(segment)? {
            if offset == len {
                len += object.size;
            } else {
                self.client.delete(&object.key)?;
            }
        }
        Ok(len)
    }

    /// The contiguous bytes of a segment from offset 0, if it has any object.
    fn read_segment(&self, segment: u64) -> io::Result<Option<Vec<u8>>> {
        let objects = self.wal_objects(segment)?;
        if objects.is_empty() {
            return Ok(None);
        }
        let mut bytes = Vec::new();
        for (offset, object) in objects {
            if offset != bytes.len() as u64 {
                break;
            }
            match self.client.get(&object.key)? {
                Some(b) => bytes.extend_from_slice(&b),
                None => break,
            }
        }
        Ok(Some(bytes))
    }
}

impl Zone for S3Zone {
    fn describe(&self) -> String {
        self.client.location.to_string()
    }

    fn append_wal(&self, segment: u64, bytes: &[u8]) -> io::Result<()> {
        let mut lens = self.wal_len.lock().map_err(poisoned)?;
        let offset = match lens.get(&segment) {
            Some(&n) => n,
            None => self.contiguous_len(segment)?,
        };
        let key = format!("{}{offset:020}", self.wal_prefix(segment));
        match self.client.put_locked(&key, bytes) {
            Ok(()) => {
                lens.insert(segment, offset + bytes.len() as u64);
                Ok(())
            }
            Err(e) => {
                // The write may or may not have landed: find out next time.
                lens.remove(&segment);
                Err(e)
            }
        }
    }

    fn read_wal(&self, segment: u64) -> io::Result<Option<Vec<u8>>> {
        self.read_segment(segment)
    }

    fn truncate_wal(&self, segment: u64, len: u64) -> io::Result<()> {
        let mut lens = self.wal_len.lock().map_err(poisoned)?;
        lens.remove(&segment);
        for (offset, object) in self.wal_objects(segment)? {
            if offset >= len {
                self.client.delete(&object.key)?;
            } else if offset + object.size > len
                && let Some(b) = self.client.get(&object.key)?
            {
                let keep = usize::try_from(len - offset).map_err(other)?;
                self.client.put_locked(&object.key, &b[..keep])?;
            }
        }
        lens.insert(segment, len);
        Ok(())
    }

    fn remove_wal(&self, segment: u64) -> io::Result<()> {
        let mut lens = self.wal_len.lock().map_err(poisoned)?;
        lens.remove(&segment);
        for (_, object) in self.wal_objects(segment)? {
            self.client.delete(&object.key)?;
        }
        Ok(())
    }

    fn wal_segments(&self) -> io::Result<Vec<u64>> {
        let (_, prefixes) = self.client.list(&self.key("wal/"), true)?;
        let mut out = Vec::new();
        for segment in prefixes
            .iter()
            .filter_map(|p| p.trim_end_matches('/').rsplit('/').next()?.parse().ok())
        {
            // Some servers still list a prefix whose objects are all deleted.
            if !self.wal_objects(segment)?.is_empty() {
                out.push(segment);
            }
        }
        out.sort_unstable();
        Ok(out)
    }

    fn put_tile(&self, id: &TileId, bytes: &[u8]) -> io::Result<()> {
        self.client.put_locked(&self.key(&id.path()), bytes)
    }

    fn get_tile(&self, id: &TileId) -> io::Result<Option<Vec<u8>>> {
        self.client.get(&self.key(&id.path()))
    }

    fn has_tile(&self, id: &TileId) -> io::Result<bool> {
        self.client.exists(&self.key(&id.path()))
    }

    fn publish_checkpoint(&self, note: &[u8]) -> io::Result<()> {
        // Listed each time (checkpoints are minutes apart) rather than counted in memory, so a
        // history object is never overwritten by a stale count.
        let seq = self.client.list(&self.key("checkpoints/"), false)?.0.len() as u64;
        self.client
            .put_locked(&self.key(&format!("checkpoints/{seq:020}")), note)?;
        self.client.put_locked(&self.key("checkpoint"), note)
    }

    fn latest_checkpoint(&self) -> io::Result<Option<Vec<u8>>> {
        self.client.get(&self.key("checkpoint"))
    }

    fn checkpoint_history(&self) -> io::Result<History> {
        // Listed in key order, which is publication order (zero-padded sequence numbers).
        let (listed, _) = self.client.list(&self.key("checkpoints/"), false)?;
        let mut notes = Vec::with_capacity(listed.len());
        for S3Object { key, .. } in listed {
            notes.push(
                self.client
                    .get(&key)?
                    .ok_or_else(|| other(format!("{key} vanished while reading the history")))?,
            );
        }
        Ok(History { notes, trailing: 0 })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_parse_with_clear_errors() {
        let l = S3Location::parse(
            "s3://audit-bucket/node-1/?endpoint=http://127.0.0.1:9000/&retain_days=30",
        )
        .unwrap();
        assert_eq!(l.bucket, "audit-bucket");
        assert_eq!(l.prefix, "node-1/");
        assert_eq!(l.endpoint, "http://127.0.0.1:9000");
        assert_eq!(l.region, "us-east-1");
        assert_eq!(l.retention, Duration::from_secs(30 * 86_400));
        for (bad, says) in [
            ("/var/ledger", "s3://bucket"),
            ("s3://Bad_Bucket?endpoint=http://h", "bucket name"),
            ("s3://bucket", "endpoint"),
            ("s3://bucket?endpoint=ftp://h", "http(s)"),
            ("s3://bucket?endpoint=http://h/path", "no path"),
            ("s3://bucket?endpoint=http://h&retain_days=0", "retain_days"),
            ("s3://bucket?endpoint=http://h&colour=blue", "unknown"),
        ] {
            let e = S3Location::parse(bad).unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }

    #[test]
    fn list_documents_parse() {
        let xml = "<ListBucketResult><IsTruncated>true</IsTruncated>\
            <Contents><Key>p/wal/1/00</Key><Size>3</Size></Contents>\
            <Contents><Key>a&amp;b</Key></Contents>\
            <CommonPrefixes><Prefix>p/wal/2/</Prefix></CommonPrefixes>\
            <NextContinuationToken>t+1=</NextContinuationToken></ListBucketResult>";
        let keys: Vec<String> = xml_values(xml, "Contents")
            .iter()
            .flat_map(|c| xml_values(c, "Key"))
            .collect();
        assert_eq!(keys, ["p/wal/1/00", "a&b"]);
        assert_eq!(xml_values(xml, "NextContinuationToken"), ["t+1="]);
        assert_eq!(
            wal_offset("p/wal/00000000000000000001/00000000000000000042"),
            Some(42)
        );
    }
}
