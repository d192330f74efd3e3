//! AWS Secrets Manager: the calls behind Rampart's `aws_secrets_manager` secret backend.

use rampart_crypto::Secret;
use rampart_types::Timestamp;
use serde_json::{Value, json};

use crate::{AwsError, Credentials, JsonService};

/// Most names [`SecretsManager::list_names`] collects.
pub const MAX_LISTED: usize = 10_000;

/// A version of a secret's value.
#[derive(Debug)]
pub struct SecretValue {
    pub value: Secret<String>,
    pub version_id: String,
    pub created: Option<Timestamp>,
}

/// A version of a secret, without its value.
#[derive(Debug, Clone)]
pub struct VersionInfo {
    pub version_id: String,
    pub stages: Vec<String>,
    pub created: Option<Timestamp>,
}

/// A secret's description.
#[derive(Debug, Clone)]
pub struct SecretInfo {
    pub name: String,
    pub created: Option<Timestamp>,
    pub changed: Option<Timestamp>,
    /// When it was scheduled for deletion, if it is.
    pub deleted: Option<Timestamp>,
    /// The versions that carry staging labels (`AWSCURRENT`, `AWSPREVIOUS`, …), with them.
    pub versions_to_stages: Vec<(String, Vec<String>)>,
}

/// A secret in a listing.
#[derive(Debug, Clone)]
pub struct ListedSecret {
    pub name: String,
    pub changed: Option<Timestamp>,
    /// The id of the version labelled `AWSCURRENT`.
    pub current_version_id: Option<String>,
}

/// Secrets Manager in one region.
#[derive(Debug)]
pub struct SecretsManager {
    svc: JsonService,
}

/// The strings of a JSON array (none when it is not one).
fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s.as_str().map(str::to_owned))
        .collect()
}

/// AWS's dates are epoch seconds with a fraction.
fn date(v: &Value) -> Option<Timestamp> {
    v.as_f64()
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map(|s| Timestamp::from_unix_millis((s * 1000.0).round() as i64))
}

/// The token of the next page: none when absent or empty (moto sends `""` on the last page), or
/// when it repeats the one just sent (which would loop forever).
fn next_token(out: &Value, sent: Option<&str>) -> Option<String> {
    out["NextToken"]
        .as_str()
        .filter(|t| !t.is_empty() && Some(*t) != sent)
        .map(str::to_owned)
}

impl SecretsManager {
    pub fn new(region: &str, endpoint: Option<&str>, creds: Credentials) -> Result<Self, AwsError> {
        Ok(Self {
            svc: JsonService::new("secretsmanager", "secretsmanager", region, endpoint, creds)?,
        })
    }

    /// The value of the current version, or of the version with that id.
    pub fn get_value(&self, name: &str, version_id: Option<&str>) -> Result<SecretValue, AwsError> {
        const OP: &str = "GetSecretValue";
        let mut req = json!({ "SecretId": name });
        if let Some(v) = version_id {
            req["VersionId"] = json!(v);
        }
        let mut out = self.svc.call(OP, &req)?;
        let Value::String(value) = out["SecretString"].take() else {
            return Err(self
                .svc
                .unexpected(OP, "no SecretString (binary secrets are not supported)"));
        };
        Ok(SecretValue {
            value: Secret::new(value),
            version_id: out["VersionId"].as_str().unwrap_or_default().to_owned(),
            created: date(&out["CreatedDate"]),
        })
    }

    /// Creates a secret whose first version has the id `version_id`.
    pub fn create(
        &self,
        name: &str,
        value: &Secret<String>,
        version_id: &str,
    ) -> Result<(), AwsError> {
        self.svc.call(
            "CreateSecret",
            &json!({ "Name": name, "SecretString": value.expose(), "ClientRequestToken": version_id }),
        )?;
        Ok(())
    }

    /// Adds a version with the id `version_id` and makes it current. AWS refuses an id already
    /// used with another value, which makes the id a check-and-set.
    pub fn put_value(
        &self,
        name: &str,
        value: &Secret<String>,
        version_id: &str,
    ) -> Result<(), AwsError> {
        self.svc.call(
            "PutSecretValue",
            &json!({ "SecretId": name, "SecretString": value.expose(), "ClientRequestToken": version_id }),
        )?;
        Ok(())
    }

    /// Every version, deprecated ones too.
    pub fn versions(&self, name: &str) -> Result<Vec<VersionInfo>, AwsError> {
        let mut all = Vec::new();
        self.each_item(
            "ListSecretVersionIds",
            json!({ "SecretId": name, "IncludeDeprecated": true, "MaxResults": 100 }),
            "Versions",
            |v| {
                all.push(VersionInfo {
                    version_id: v["VersionId"].as_str().unwrap_or_default().to_owned(),
                    stages: strings(&v["VersionStages"]),
                    created: date(&v["CreatedDate"]),
                });
                true
            },
        )?;
        Ok(all)
    }

    /// Calls a paged list operation page after page, handing each element of the array `items`
    /// to `keep`, until the last page or [`MAX_LISTED`] kept elements.
    fn each_item(
        &self,
        op: &str,
        mut req: Value,
        items: &str,
        mut keep: impl FnMut(&Value) -> bool,
    ) -> Result<(), AwsError> {
        let mut token: Option<String> = None;
        let mut kept = 0;
        loop {
            if let Some(t) = &token {
                req["NextToken"] = json!(t);
            }
            let out = self.svc.call(op, &req)?;
            for item in out[items].as_array().into_iter().flatten() {
                kept += usize::from(keep(item));
            }
            token = next_token(&out, token.as_deref());
            if token.is_none() || kept >= MAX_LISTED {
                return Ok(());
            }
        }
    }

    pub fn describe(&self, name: &str) -> Result<SecretInfo, AwsError> {
        let out = self
            .svc
            .call("DescribeSecret", &json!({ "SecretId": name }))?;
        Ok(SecretInfo {
            name: out["Name"].as_str().unwrap_or(name).to_owned(),
            created: date(&out["CreatedDate"]),
            changed: date(&out["LastChangedDate"]),
            deleted: date(&out["DeletedDate"]),
            versions_to_stages: out["VersionIdsToStages"]
                .as_object()
                .into_iter()
                .flatten()
                .map(|(id, stages)| (id.clone(), strings(stages)))
                .collect(),
        })
    }

    /// Schedules the secret's deletion after `recovery_days` (7 to 30; [`Self::restore`] undoes
    /// it until then), or with `None` deletes it at once and for good.
    pub fn delete(&self, name: &str, recovery_days: Option<u32>) -> Result<(), AwsError> {
        let req = match recovery_days {
            Some(d) => json!({ "SecretId": name, "RecoveryWindowInDays": d }),
            None => json!({ "SecretId": name, "ForceDeleteWithoutRecovery": true }),
        };
        self.svc.call("DeleteSecret", &req)?;
        Ok(())
    }

    /// Cancels a scheduled deletion.
    pub fn restore(&self, name: &str) -> Result<(), AwsError> {
        self.svc
            .call("RestoreSecret", &json!({ "SecretId": name }))?;
        Ok(())
    }

    /// The secrets whose names start with `prefix` (at most [`MAX_LISTED`]), sorted by name.
    pub fn list(&self, prefix: &str) -> Result<Vec<ListedSecret>, AwsError> {
        let mut listed: Vec<ListedSecret> = Vec::new();
        let mut req = json!({ "MaxResults": 100 });
        if !prefix.is_empty() {
            req["Filters"] = json!([{ "Key": "name", "Values": [prefix] }]);
        }
        self.each_item("ListSecrets", req, "SecretList", |s| {
            // The name filter matches prefixes of words, not only of the whole name.
            let Some(name) = s["Name"].as_str().filter(|n| n.starts_with(prefix)) else {
                return false;
            };
            let current_version_id = s["SecretVersionsToStages"]
                .as_object()
                .into_iter()
                .flatten()
                .find(|(_, stages)| strings(stages).iter().any(|st| st == "AWSCURRENT"))
                .map(|(id, _)| id.clone());
            listed.push(ListedSecret {
                name: name.to_owned(),
                changed: date(&s["LastChangedDate"]).or_else(|| date(&s["CreatedDate"])),
                current_version_id,
            });
            true
        })?;
        listed.sort_by(|a, b| a.name.cmp(&b.name));
        listed.dedup_by(|a, b| a.name == b.name);
        listed.truncate(MAX_LISTED);
        Ok(listed)
    }
}
