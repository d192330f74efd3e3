//! The gateway's rows: usage counters per mission (or subject) — calls, tokens, spend, and
//! calls in the current one-minute window — the models and tools each subject has used, and
//! each call's sealed original request.

use rampart_types::{TenantId, Timestamp};

use crate::db::{AnyRow, Val, sql};
use crate::repo::tenant_id;
use crate::{GatewayRequestRecord, GatewayUsage, ProfileKind, StoreError, Tx};

impl Tx {
    /// What `principal` has used; zero if it never called.
    pub async fn gateway_usage(
        &mut self,
        tenant: TenantId,
        principal: &str,
    ) -> Result<GatewayUsage, StoreError> {
        if !self.scope().allows(tenant) {
            return Ok(GatewayUsage::default());
        }
        let row = self
            .fetch_optional(
                &sql!(
                    "SELECT calls, tokens, spend_usd_micros, window_start, window_calls, \
                     profile_calls, active_minutes FROM gateway_usage \
                     WHERE tenant_id = $1 AND principal = $2"
                ),
                &[Val::Uuid(*tenant.as_uuid()), Val::Text(principal)],
            )
            .await?;
        row.map_or(Ok(GatewayUsage::default()), |r| {
            Ok(GatewayUsage {
                calls: r.int("calls")?,
                tokens: r.int("tokens")?,
                spend_usd_micros: r.int("spend_usd_micros")?,
                window_start: r.int("window_start")?,
                window_calls: r.int("window_calls")?,
                profile_calls: r.int("profile_calls")?,
                active_minutes: r.int("active_minutes")?,
            })
        })
    }

    /// Counts one call of `principal` using `tokens` and `spend_usd_micros`, in the window of
    /// Unix minute `minute`.
    pub async fn add_gateway_usage(
        &mut self,
        tenant: TenantId,
        principal: &str,
        tokens: i64,
        spend_usd_micros: i64,
        minute: i64,
    ) -> Result<(), StoreError> {
        self.guard_write(tenant)?;
        self.execute(
            &sql!(
                "INSERT INTO gateway_usage (tenant_id, principal, calls, tokens, spend_usd_micros, \
                 window_start, window_calls, profile_calls, active_minutes) \
                 VALUES ($1, $2, 1, $3, $4, $5, 1, 1, 1) \
                 ON CONFLICT (tenant_id, principal) DO UPDATE SET \
                 calls = gateway_usage.calls + 1, \
                 tokens = gateway_usage.tokens + excluded.tokens, \
                 spend_usd_micros = gateway_usage.spend_usd_micros + excluded.spend_usd_micros, \
                 window_calls = CASE WHEN gateway_usage.window_start = excluded.window_start \
                   THEN gateway_usage.window_calls + 1 ELSE 1 END, \
                 profile_calls = gateway_usage.profile_calls + 1, \
                 active_minutes = CASE WHEN gateway_usage.window_start = excluded.window_start \
                   AND gateway_usage.active_minutes > 0 \
                   THEN gateway_usage.active_minutes ELSE gateway_usage.active_minutes + 1 END, \
                 window_start = excluded.window_start"
            ),
            &[
                Val::Uuid(*tenant.as_uuid()),
                Val::Text(principal),
                Val::Int(tokens.max(0)),
                Val::Int(spend_usd_micros.max(0)),
                Val::Int(minute),
            ],
        )
        .await?;
        Ok(())
    }

    /// Which of `names` (models or tools, by `kind`) `subject` has used in completed calls: one
    /// statement for the whole list.
    pub async fn gateway_profile_known(
        &mut self,
        tenant: TenantId,
        subject: &str,
        kind: ProfileKind,
        names: &[String],
    ) -> Result<Vec<String>, StoreError> {
        if names.is_empty() || !self.scope().allows(tenant) {
            return Ok(Vec::new());
        }
        let names = serde_json::json!(names);
        let rows = self
            .fetch_all(
                &sql!(
                    pg: "SELECT name FROM gateway_profiles WHERE tenant_id = $1 AND subject = $2 \
                         AND kind = $3 AND name IN (SELECT jsonb_array_elements_text($4))",
                    sqlite: "SELECT name FROM gateway_profiles WHERE tenant_id = $1 \
                             AND subject = $2 AND kind = $3 \
                             AND name IN (SELECT value FROM json_each($4))",
                ),
                &[
                    Val::Uuid(*tenant.as_uuid()),
                    Val::Text(subject),
                    Val::Text(kind.as_str()),
                    Val::Json(&names),
                ],
            )
            .await?;
        rows.iter().map(|r| r.text("name")).collect()
    }

    /// Adds `names` (models or tools, by `kind`) to `subject`'s profile, keeping those already
    /// there: one statement for the whole list.
    pub async fn add_gateway_profile(
        &mut self,
        tenant: TenantId,
        subject: &str,
        kind: ProfileKind,
        names: &[String],
        now: Timestamp,
    ) -> Result<(), StoreError> {
        self.guard_write(tenant)?;
        if names.is_empty() {
            return Ok(());
        }
        let names = serde_json::json!(names);
        self.execute(
            &sql!(
                pg: "INSERT INTO gateway_profiles (tenant_id, subject, kind, name, first_seen) \
                     SELECT $1, $2, $3, n, $5 FROM jsonb_array_elements_text($4) AS n \
                     ON CONFLICT DO NOTHING",
                // `WHERE true`: SQLite's parser needs it before ON CONFLICT in INSERT … SELECT.
                sqlite: "INSERT INTO gateway_profiles (tenant_id, subject, kind, name, first_seen) \
                         SELECT $1, $2, $3, value, $5 FROM json_each($4) WHERE true \
                         ON CONFLICT DO NOTHING",
            ),
            &[
                Val::Uuid(*tenant.as_uuid()),
                Val::Text(subject),
                Val::Text(kind.as_str()),
                Val::Json(&names),
                Val::Ts(now),
            ],
        )
        .await?;
        Ok(())
    }
}

fn request_from_row(row: &AnyRow) -> Result<GatewayRequestRecord, StoreError> {
    Ok(GatewayRequestRecord {
        tenant_id: tenant_id(row, "tenant_id")?,
        request_id: row.text("request_id")?,
        idempotency_key: row.opt_text("idempotency_key")?,
        sealed_body: row.bytes("sealed_body")?,
        body_sha256: row.bytes("body_sha256")?,
        created_at: row.ts("created_at")?,
    })
}

impl Tx {
    /// Records a call's sealed original request; `false` if its request id or idempotency key
    /// is already recorded (a concurrent retry was first).
    pub async fn insert_gateway_request(
        &mut self,
        r: &GatewayRequestRecord,
    ) -> Result<bool, StoreError> {
        self.guard_write(r.tenant_id)?;
        Ok(self
            .execute(
                &sql!(
                    "INSERT INTO gateway_requests (tenant_id, request_id, idempotency_key, \
                     sealed_body, body_sha256, created_at) VALUES ($1, $2, $3, $4, $5, $6) \
                     ON CONFLICT DO NOTHING"
                ),
                &[
                    Val::Uuid(*r.tenant_id.as_uuid()),
                    Val::Text(&r.request_id),
                    Val::OptText(r.idempotency_key.as_deref()),
                    Val::Bytes(&r.sealed_body),
                    Val::Bytes(&r.body_sha256),
                    Val::Ts(r.created_at),
                ],
            )
            .await?
            == 1)
    }

    /// The call recorded under `request_id`.
    pub async fn gateway_request(
        &mut self,
        tenant: TenantId,
        request_id: &str,
    ) -> Result<Option<GatewayRequestRecord>, StoreError> {
        if !self.scope().allows(tenant) {
            return Ok(None);
        }
        self.fetch_optional(
            &sql!(
                "SELECT tenant_id, request_id, idempotency_key, sealed_body, body_sha256, \
                 created_at FROM gateway_requests WHERE tenant_id = $1 AND request_id = $2"
            ),
            &[Val::Uuid(*tenant.as_uuid()), Val::Text(request_id)],
        )
        .await?
        .as_ref()
        .map(request_from_row)
        .transpose()
    }

    /// Up to `limit` recorded calls whose original is sealed under KEK version `key_version`,
    /// after request id `after`, in request-id order.
    pub async fn gateway_requests_sealed_under(
        &mut self,
        tenant: TenantId,
        key_version: u32,
        after: &str,
        limit: i64,
    ) -> Result<Vec<GatewayRequestRecord>, StoreError> {
        if !self.scope().allows(tenant) {
            return Ok(Vec::new());
        }
        let prefix = key_version.to_be_bytes();
        self.fetch_all(
            &sql!(
                pg: "SELECT tenant_id, request_id, idempotency_key, sealed_body, body_sha256, \
                     created_at FROM gateway_requests WHERE tenant_id = $1 AND request_id > $2 \
                     AND substring(sealed_body from 1 for 4) = $3 ORDER BY request_id LIMIT $4",
                sqlite: "SELECT tenant_id, request_id, idempotency_key, sealed_body, body_sha256, \
                         created_at FROM gateway_requests WHERE tenant_id = $1 AND request_id > $2 \
                         AND substr(sealed_body, 1, 4) = $3 ORDER BY request_id LIMIT $4",
            ),
            &[
                Val::Uuid(*tenant.as_uuid()),
                Val::Text(after),
                Val::Bytes(&prefix),
                Val::Int(limit),
            ],
        )
        .await?
        .iter()
        .map(request_from_row)
        .collect()
    }

    /// Replaces the sealed original of a recorded call (re-sealed under another KEK version; its
    /// hash does not change).
    pub async fn reseal_gateway_request(
        &mut self,
        tenant: TenantId,
        request_id: &str,
        sealed_body: &[u8],
    ) -> Result<bool, StoreError> {
        self.guard_write(tenant)?;
        Ok(self
            .execute(
                &sql!(
                    "UPDATE gateway_requests SET sealed_body = $3 \
                     WHERE tenant_id = $1 AND request_id = $2"
                ),
                &[
                    Val::Uuid(*tenant.as_uuid()),
                    Val::Text(request_id),
                    Val::Bytes(sealed_body),
                ],
            )
            .await?
            == 1)
    }

    /// The call recorded under idempotency key `key`.
    pub async fn gateway_request_by_key(
        &mut self,
        tenant: TenantId,
        key: &str,
    ) -> Result<Option<GatewayRequestRecord>, StoreError> {
        if !self.scope().allows(tenant) {
            return Ok(None);
        }
        self.fetch_optional(
            &sql!(
                "SELECT tenant_id, request_id, idempotency_key, sealed_body, body_sha256, \
                 created_at FROM gateway_requests WHERE tenant_id = $1 AND idempotency_key = $2"
            ),
            &[Val::Uuid(*tenant.as_uuid()), Val::Text(key)],
        )
        .await?
        .as_ref()
        .map(request_from_row)
        .transpose()
    }
}
