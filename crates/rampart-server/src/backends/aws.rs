//! The `aws_secrets_manager` backend. Rampart's version `N` of a secret is the Secrets Manager
//! version whose id is `rampart-version-<N, 20 digits>` (the `ClientRequestToken` it is written
//! with); a version written by something else reads as version 0. A write takes the next number
//! after the highest present, and Secrets Manager refuses an id reused with another value, so two
//! writers racing for one number cannot both succeed (nor can a write whose number was taken by
//! a version no longer labelled: it is refused, never overwritten). Secrets Manager deletes
//! whole secrets, not versions: deleting the newest version schedules the secret's deletion
//! (30-day recovery window), undelete restores it, and destroy deletes for good a secret already
//! scheduled for deletion.

use rampart_aws::secretsmanager::SecretsManager;
use rampart_aws::{AwsError, Credentials};
use rampart_crypto::Secret;
use rampart_store::Cas;
use rampart_types::Timestamp;
use serde::Deserialize;

use super::{
    Backend, BackendError, ExternalMetadata, ExternalSummary, ExternalValue, ExternalVersion,
};
use crate::routes::secrets::VersionChange;

const VERSION_PREFIX: &str = "rampart-version-";
/// Days a deleted secret can be restored.
const RECOVERY_DAYS: u32 = 30;

fn version_id(n: i64) -> String {
    format!("{VERSION_PREFIX}{n:020}")
}

fn version_number(id: &str) -> i64 {
    id.strip_prefix(VERSION_PREFIX)
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

fn failed(e: AwsError) -> BackendError {
    match e.code() {
        Some("ResourceNotFoundException") => {
            BackendError::NotFound("AWS Secrets Manager has no such secret or version".into())
        }
        Some("InvalidRequestException" | "ResourceExistsException") => {
            BackendError::Conflict(format!("AWS Secrets Manager refused: {e}"))
        }
        _ => BackendError::Unavailable(format!("AWS Secrets Manager: {e}")),
    }
}

#[derive(Deserialize)]
struct CredentialsJson {
    access_key_id: String,
    secret_access_key: String,
    session_token: Option<String>,
}

pub struct SecretsManagerBackend {
    sm: SecretsManager,
}

impl SecretsManagerBackend {
    pub fn connect(
        region: &str,
        endpoint: Option<&str>,
        credentials: &Secret<String>,
    ) -> Result<Self, BackendError> {
        let c: CredentialsJson = serde_json::from_str(credentials.expose()).map_err(|_| {
            BackendError::Unavailable(
                "the credentials secret is not {\"access_key_id\", \"secret_access_key\"[, \"session_token\"]}"
                    .into(),
            )
        })?;
        let mut creds = Credentials::new(c.access_key_id, Secret::new(c.secret_access_key));
        creds.session_token = c.session_token.map(Secret::new);
        let sm = SecretsManager::new(region, endpoint, creds)
            .map_err(|e| BackendError::Unavailable(e.to_string()))?;
        Ok(Self { sm })
    }
}

impl Backend for SecretsManagerBackend {
    fn read(&self, name: &str, version: Option<i64>) -> Result<ExternalValue, BackendError> {
        let id = version.map(version_id);
        let v = self.sm.get_value(name, id.as_deref()).map_err(|e| {
            if e.code() == Some("InvalidRequestException") {
                BackendError::NotFound("the secret is deleted".into())
            } else {
                failed(e)
            }
        })?;
        Ok(ExternalValue {
            value: v.value,
            version: version_number(&v.version_id),
            created_at: v.created.unwrap_or(Timestamp::from_unix_millis(0)),
        })
    }

    fn write(&self, name: &str, value: &Secret<String>, cas: Cas) -> Result<i64, BackendError> {
        // DescribeSecret lists the labelled versions: the current one (the newest Rampart
        // wrote, unless labels were moved) and the previous.
        let versions = match self.sm.describe(name) {
            Ok(info) => Some(info.versions_to_stages),
            Err(e) if e.code() == Some("ResourceNotFoundException") => None,
            Err(e) => return Err(failed(e)),
        };
        let current = versions.as_ref().map(|vs| {
            vs.iter()
                .find(|(_, stages)| stages.iter().any(|s| s == "AWSCURRENT"))
                .map_or(0, |(id, _)| version_number(id))
        });
        let mismatch = match cas {
            Cas::Any => false,
            Cas::Absent => current.is_some(),
            Cas::Current(want) => current != Some(want),
        };
        if mismatch {
            return Err(BackendError::Conflict(format!(
                "check-and-set failed: the newest version is {}",
                current.map_or("none".into(), |c| c.to_string())
            )));
        }
        let Some(versions) = versions else {
            self.sm
                .create(name, value, &version_id(1))
                .map_err(failed)?;
            return Ok(1);
        };
        let next = versions
            .iter()
            .map(|(id, _)| version_number(id))
            .max()
            .unwrap_or(0)
            + 1;
        self.sm
            .put_value(name, value, &version_id(next))
            .map_err(failed)?;
        Ok(next)
    }

    fn change(
        &self,
        name: &str,
        versions: Option<&[i64]>,
        change: VersionChange,
    ) -> Result<u64, BackendError> {
        match change {
            VersionChange::Delete => {
                if versions.is_some() {
                    return Err(BackendError::Unsupported(
                        "AWS Secrets Manager deletes whole secrets, not versions: \
                         `DELETE /v1/secrets/data/{path}` schedules the secret's deletion"
                            .into(),
                    ));
                }
                self.sm.delete(name, Some(RECOVERY_DAYS)).map_err(failed)?;
            }
            VersionChange::Undelete => self.sm.restore(name).map_err(failed)?,
            VersionChange::Destroy => {
                if self.sm.describe(name).map_err(failed)?.deleted.is_none() {
                    return Err(BackendError::Conflict(
                        "AWS Secrets Manager destroys whole secrets: delete the secret first, \
                         then destroy it"
                            .into(),
                    ));
                }
                self.sm.delete(name, None).map_err(failed)?;
            }
        }
        Ok(1)
    }

    fn metadata(&self, name: &str) -> Result<ExternalMetadata, BackendError> {
        let info = self.sm.describe(name).map_err(failed)?;
        let epoch = Timestamp::from_unix_millis(0);
        let listed = self.sm.versions(name).map_err(failed)?;
        let mut current_version = 0;
        let mut versions: Vec<ExternalVersion> = listed
            .iter()
            .map(|v| {
                let current = v.stages.iter().any(|s| s == "AWSCURRENT");
                let version = version_number(&v.version_id);
                if current {
                    current_version = version;
                }
                ExternalVersion {
                    version,
                    created_at: v.created.unwrap_or(epoch),
                    deleted_at: info.deleted,
                    destroyed: false,
                }
            })
            .collect();
        versions.sort_by_key(|v| v.version);
        Ok(ExternalMetadata {
            current_version,
            created_at: info.created.unwrap_or(epoch),
            updated_at: info.changed.or(info.created).unwrap_or(epoch),
            versions,
        })
    }

    fn list(&self, prefix: &str) -> Result<Vec<ExternalSummary>, BackendError> {
        Ok(self
            .sm
            .list(prefix)
            .map_err(failed)?
            .into_iter()
            .map(|s| ExternalSummary {
                current_version: s.current_version_id.as_deref().map_or(0, version_number),
                updated_at: s.changed.unwrap_or(Timestamp::from_unix_millis(0)),
                name: s.name,
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_ids_carry_the_number_and_fit_a_client_request_token() {
        assert_eq!(version_id(7), "rampart-version-00000000000000000007");
        assert_eq!(version_id(i64::MAX).len(), 36);
        assert!((32..=64).contains(&version_id(1).len()));
        assert_eq!(version_number(&version_id(42)), 42);
        assert_eq!(version_number("a1b2c3d4-5678-90ab-cdef-EXAMPLE11111"), 0);
    }
}
