//! The `vault_kv2` backend: a HashiCorp Vault KV v2 mount over Vault's HTTP API (or another
//! Rampart's `/vault` endpoint, which speaks the same). Vault keeps a map per version; a Rampart
//! value that is a JSON object is written as that map, any other value as `{"value": …}`, and a
//! map read back is the JSON of the map unless it is exactly `{"value": "…"}`.

use std::time::Duration;

use rampart_aws::sigv4::uri_encode;
use rampart_crypto::Secret;
use rampart_store::Cas;
use rampart_types::Timestamp;
use serde_json::{Value, json};

use super::{
    Backend, BackendError, ExternalMetadata, ExternalSummary, ExternalValue, ExternalVersion,
};
use crate::routes::secrets::VersionChange;

/// Most names a listing collects.
const MAX_LISTED: usize = 10_000;

pub struct VaultBackend {
    /// `http(s)://host[:port]<api_prefix>/<mount>`.
    base: String,
    token: Secret<String>,
    agent: ureq::Agent,
}

fn ts(v: &Value) -> Option<Timestamp> {
    v.as_str()
        .filter(|s| !s.is_empty())
        .and_then(|s| Timestamp::parse_rfc3339(s).ok())
}

impl VaultBackend {
    pub fn connect(
        address: &str,
        mount: &str,
        api_prefix: &str,
        token: Secret<String>,
    ) -> Result<Self, BackendError> {
        if token.expose().trim().is_empty() {
            return Err(BackendError::Unavailable(
                "the credentials secret (the Vault token) is empty".into(),
            ));
        }
        let token = Secret::new(token.expose().trim().to_owned());
        Ok(Self {
            base: format!(
                "{}{}/{}",
                address.trim_end_matches('/'),
                api_prefix.trim_end_matches('/'),
                mount
            ),
            token,
            agent: rampart_aws::agent(Duration::from_secs(30)),
        })
    }

    /// Sends a request; returns the status and the JSON body (`Null` when empty or not JSON).
    fn send(
        &self,
        method: &str,
        what: &str,
        path: &str,
        query: &str,
        body: Option<&Secret<String>>,
    ) -> Result<(u16, Value), BackendError> {
        let url = format!("{}/{what}/{}{query}", self.base, uri_encode(path, true));
        let req = ureq::http::Request::builder()
            .method(method)
            .uri(&url)
            .header("x-vault-token", self.token.expose())
            .header("content-type", "application/json");
        let unreachable =
            |e: String| BackendError::Unavailable(format!("Vault {method} {what}: {e}"));
        let sent = match body {
            Some(b) => self.agent.run(
                req.body(b.expose().as_bytes())
                    .map_err(|e| unreachable(e.to_string()))?,
            ),
            None => self
                .agent
                .run(req.body(()).map_err(|e| unreachable(e.to_string()))?),
        };
        let mut resp = sent.map_err(|e| unreachable(e.to_string()))?;
        let status = resp.status().as_u16();
        let bytes = rampart_aws::read_body(&mut resp).map_err(|e| unreachable(e.to_string()))?;
        let json = serde_json::from_slice(bytes.expose()).unwrap_or(Value::Null);
        Ok((status, json))
    }

    /// The error of a failed call: Vault's `errors`, which name no value.
    fn failed(&self, what: &str, status: u16, body: &Value) -> BackendError {
        let errors: Vec<&str> = body["errors"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        let msg = format!("Vault {what}: HTTP {status}: {}", errors.join("; "));
        match status {
            404 => BackendError::NotFound(msg),
            // 400 is also how Vault reports a failed check-and-set.
            400 | 409 | 412 => BackendError::Conflict(msg),
            _ => BackendError::Unavailable(msg),
        }
    }

    fn versions_call(&self, what: &str, name: &str, versions: &[i64]) -> Result<(), BackendError> {
        let body = Secret::new(json!({ "versions": versions }).to_string());
        let (status, out) = self.send("POST", what, name, "", Some(&body))?;
        if (200..300).contains(&status) {
            Ok(())
        } else {
            Err(self.failed(what, status, &out))
        }
    }

    /// The keys under a folder, recursively, as full names.
    fn list_into(&self, folder: &str, out: &mut Vec<String>) -> Result<(), BackendError> {
        // `GET …?list=true` is Vault's spelling of LIST for clients without custom methods.
        let (status, body) = self.send("GET", "metadata", folder, "?list=true", None)?;
        if status == 404 {
            return Ok(());
        }
        if !(200..300).contains(&status) {
            return Err(self.failed("metadata", status, &body));
        }
        for key in body["data"]["keys"].as_array().into_iter().flatten() {
            let Some(key) = key.as_str() else { continue };
            let full = format!("{folder}{key}");
            if key.ends_with('/') {
                self.list_into(&full, out)?;
            } else {
                out.push(full);
            }
            if out.len() >= MAX_LISTED {
                break;
            }
        }
        Ok(())
    }
}

impl Backend for VaultBackend {
    fn read(&self, name: &str, version: Option<i64>) -> Result<ExternalValue, BackendError> {
        let query = version.map(|v| format!("?version={v}")).unwrap_or_default();
        let (status, mut body) = self.send("GET", "data", name, &query, None)?;
        if !(200..300).contains(&status) {
            return Err(self.failed("data", status, &body));
        }
        let meta = &body["data"]["metadata"];
        let version = meta["version"].as_i64().unwrap_or(0);
        let created_at = ts(&meta["created_time"]).unwrap_or(Timestamp::from_unix_millis(0));
        let data = body["data"]["data"].take();
        let value = match data {
            Value::Object(mut m)
                if m.len() == 1 && m.get("value").is_some_and(Value::is_string) =>
            {
                match m.remove("value") {
                    Some(Value::String(s)) => s,
                    _ => String::new(),
                }
            }
            other @ Value::Object(_) => other.to_string(),
            _ => {
                return Err(BackendError::NotFound(
                    "Vault data: the version has no data (deleted or destroyed)".into(),
                ));
            }
        };
        Ok(ExternalValue {
            value: Secret::new(value),
            version,
            created_at,
        })
    }

    fn write(&self, name: &str, value: &Secret<String>, cas: Cas) -> Result<i64, BackendError> {
        let data = match serde_json::from_str::<Value>(value.expose()) {
            Ok(v @ Value::Object(_)) => v,
            _ => json!({ "value": value.expose() }),
        };
        let mut req = json!({ "data": data });
        match cas {
            Cas::Any => {}
            Cas::Absent => req["options"] = json!({ "cas": 0 }),
            Cas::Current(v) => req["options"] = json!({ "cas": v }),
        }
        let body = Secret::new(req.to_string());
        drop(req);
        let (status, out) = self.send("POST", "data", name, "", Some(&body))?;
        if !(200..300).contains(&status) {
            return Err(self.failed("data", status, &out));
        }
        out["data"]["version"]
            .as_i64()
            .ok_or_else(|| BackendError::Unavailable("Vault data: no version in the answer".into()))
    }

    fn change(
        &self,
        name: &str,
        versions: Option<&[i64]>,
        change: VersionChange,
    ) -> Result<u64, BackendError> {
        let versions = match versions {
            Some(v) => v.to_vec(),
            None => vec![self.metadata(name)?.current_version],
        };
        let what = match change {
            VersionChange::Delete => "delete",
            VersionChange::Undelete => "undelete",
            VersionChange::Destroy => "destroy",
        };
        self.versions_call(what, name, &versions)?;
        Ok(versions.len() as u64)
    }

    fn metadata(&self, name: &str) -> Result<ExternalMetadata, BackendError> {
        let (status, body) = self.send("GET", "metadata", name, "", None)?;
        if !(200..300).contains(&status) {
            return Err(self.failed("metadata", status, &body));
        }
        let d = &body["data"];
        let epoch = Timestamp::from_unix_millis(0);
        let mut versions: Vec<ExternalVersion> = d["versions"]
            .as_object()
            .into_iter()
            .flatten()
            .filter_map(|(n, v)| {
                Some(ExternalVersion {
                    version: n.parse().ok()?,
                    created_at: ts(&v["created_time"]).unwrap_or(epoch),
                    deleted_at: ts(&v["deletion_time"]),
                    destroyed: v["destroyed"].as_bool().unwrap_or(false),
                })
            })
            .collect();
        versions.sort_by_key(|v| v.version);
        Ok(ExternalMetadata {
            current_version: d["current_version"].as_i64().unwrap_or(0),
            created_at: ts(&d["created_time"]).unwrap_or(epoch),
            updated_at: ts(&d["updated_time"]).unwrap_or(epoch),
            versions,
        })
    }

    fn list(&self, prefix: &str) -> Result<Vec<ExternalSummary>, BackendError> {
        // Vault lists folders: start from the folder the prefix is in, keep what matches.
        let folder = prefix.rfind('/').map_or("", |i| &prefix[..=i]);
        let mut names = Vec::new();
        self.list_into(folder, &mut names)?;
        names.retain(|n| n.starts_with(prefix));
        names.sort();
        Ok(names
            .into_iter()
            .map(|name| ExternalSummary {
                name,
                current_version: 0,
                updated_at: Timestamp::from_unix_millis(0),
            })
            .collect())
    }
}
