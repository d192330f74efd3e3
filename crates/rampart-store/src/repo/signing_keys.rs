use rampart_types::Timestamp;

use crate::db::{AnyRow, Val, sql};
use crate::{SigningKeyRecord, StoreError, Tx};

fn from_row(row: &AnyRow) -> Result<SigningKeyRecord, StoreError> {
    Ok(SigningKeyRecord {
        kid: row.text("kid")?,
        public_key: row.bytes("public_key")?,
        sealed_seed: row.bytes("sealed_seed")?,
        created_at: row.ts("created_at")?,
        retired_at: row.opt_ts("retired_at")?,
        verify_until: row.opt_ts("verify_until")?,
    })
}

/// Serialises signing-key rotations across Postgres nodes.
const ROTATION_LOCK: i64 = 0x7261_6d70_0002;

impl Tx {
    /// Every signing key, oldest first.
    pub async fn list_signing_keys(&mut self) -> Result<Vec<SigningKeyRecord>, StoreError> {
        self.fetch_all(
            &sql!(
                "SELECT kid, public_key, sealed_seed, created_at, retired_at, verify_until \
                 FROM signing_keys ORDER BY created_at, kid"
            ),
            &[],
        )
        .await?
        .iter()
        .map(from_row)
        .collect()
    }

    pub async fn insert_signing_key(&mut self, k: &SigningKeyRecord) -> Result<(), StoreError> {
        self.execute(
            &sql!(
                "INSERT INTO signing_keys (kid, public_key, sealed_seed, created_at, retired_at, \
                 verify_until) VALUES ($1, $2, $3, $4, $5, $6)"
            ),
            &[
                Val::Text(&k.kid),
                Val::Bytes(&k.public_key),
                Val::Bytes(&k.sealed_seed),
                Val::Ts(k.created_at),
                Val::OptTs(k.retired_at),
                Val::OptTs(k.verify_until),
            ],
        )
        .await
        .map(drop)
    }

    /// Retires a key: it stops signing now and stops verifying at `verify_until`.
    pub async fn retire_signing_key(
        &mut self,
        kid: &str,
        at: Timestamp,
        verify_until: Timestamp,
    ) -> Result<bool, StoreError> {
        Ok(self
            .execute(
                &sql!(
                    "UPDATE signing_keys SET retired_at = $2, verify_until = $3 \
                     WHERE kid = $1 AND retired_at IS NULL"
                ),
                &[Val::Text(kid), Val::Ts(at), Val::Ts(verify_until)],
            )
            .await?
            == 1)
    }

    /// Takes the rotation lock until the transaction ends (Postgres). On SQLite the write
    /// transaction already excludes every other writer.
    pub async fn lock_signing_keys(&mut self) -> Result<(), StoreError> {
        self.execute(
            &sql!(pg: "SELECT pg_advisory_xact_lock($1)", sqlite: "SELECT $1"),
            &[Val::Int(ROTATION_LOCK)],
        )
        .await
        .map(drop)
    }
}
