//! Webhook endpoints and the persisted delivery queue.

use rampart_types::{TenantId, Timestamp};
use uuid::Uuid;

use crate::db::{AnyRow, Val, sql};
use crate::repo::{parse_col, tenant_id};
use crate::{DeliveryState, StoreError, Tx, WebhookDeliveryRecord, WebhookEndpointRecord};

macro_rules! endpoint_columns {
    () => {
        "tenant_id, id, url, description, event_types, scheme, secret, previous_secret, \
         previous_until, state, disabled_reason, failing_since, created_at, updated_at"
    };
}

macro_rules! delivery_columns {
    () => {
        "tenant_id, id, endpoint_id, message_id, event_type, payload, state, attempts, \
         next_attempt_at, last_attempt_at, last_status, last_error, created_at, updated_at"
    };
}

fn endpoint_from_row(row: &AnyRow) -> Result<WebhookEndpointRecord, StoreError> {
    let types = row.json("event_types")?;
    let event_types = serde_json::from_value(types).map_err(|e| StoreError::Corrupt {
        column: "event_types".into(),
        reason: e.to_string(),
    })?;
    Ok(WebhookEndpointRecord {
        tenant_id: tenant_id(row, "tenant_id")?,
        id: row.uuid("id")?,
        url: row.text("url")?,
        description: row.text("description")?,
        event_types,
        scheme: row.text("scheme")?,
        secret: row.bytes("secret")?,
        previous_secret: row.opt_bytes("previous_secret")?,
        previous_until: row.opt_ts("previous_until")?,
        enabled: row.text("state")? == "enabled",
        disabled_reason: row.opt_text("disabled_reason")?,
        failing_since: row.opt_ts("failing_since")?,
        created_at: row.ts("created_at")?,
        updated_at: row.ts("updated_at")?,
    })
}

fn delivery_from_row(row: &AnyRow) -> Result<WebhookDeliveryRecord, StoreError> {
    Ok(WebhookDeliveryRecord {
        tenant_id: tenant_id(row, "tenant_id")?,
        id: row.uuid("id")?,
        endpoint_id: row.uuid("endpoint_id")?,
        message_id: row.text("message_id")?,
        event_type: row.text("event_type")?,
        payload: row.text("payload")?,
        state: parse_col::<DeliveryState>(row, "state")?,
        attempts: row.int("attempts")?,
        next_attempt_at: row.ts("next_attempt_at")?,
        last_attempt_at: row.opt_ts("last_attempt_at")?,
        last_status: row.opt_int("last_status")?,
        last_error: row.opt_text("last_error")?,
        created_at: row.ts("created_at")?,
        updated_at: row.ts("updated_at")?,
    })
}

fn state_text(enabled: bool) -> &'static str {
    if enabled { "enabled" } else { "disabled" }
}

impl Tx {
    /// Adds an endpoint, or replaces every field of an existing one but `created_at`.
    pub async fn upsert_webhook_endpoint(
        &mut self,
        e: &WebhookEndpointRecord,
    ) -> Result<(), StoreError> {
        self.guard_write(e.tenant_id)?;
        let types = serde_json::json!(e.event_types);
        self.execute(
            &sql!(
                "INSERT INTO webhook_endpoints (tenant_id, id, url, description, event_types, \
                 scheme, secret, previous_secret, previous_until, state, disabled_reason, \
                 failing_since, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) \
                 ON CONFLICT (tenant_id, id) DO UPDATE SET url = excluded.url, \
                 description = excluded.description, event_types = excluded.event_types, \
                 scheme = excluded.scheme, secret = excluded.secret, \
                 previous_secret = excluded.previous_secret, \
                 previous_until = excluded.previous_until, state = excluded.state, \
                 disabled_reason = excluded.disabled_reason, \
                 failing_since = excluded.failing_since, updated_at = excluded.updated_at"
            ),
            &[
                Val::Uuid(*e.tenant_id.as_uuid()),
                Val::Uuid(e.id),
                Val::Text(&e.url),
                Val::Text(&e.description),
                Val::Json(&types),
                Val::Text(&e.scheme),
                Val::Bytes(&e.secret),
                Val::OptBytes(e.previous_secret.as_deref()),
                Val::OptTs(e.previous_until),
                Val::Text(state_text(e.enabled)),
                Val::OptText(e.disabled_reason.as_deref()),
                Val::OptTs(e.failing_since),
                Val::Ts(e.created_at),
                Val::Ts(e.updated_at),
            ],
        )
        .await
        .map(drop)
    }

    pub async fn webhook_endpoint(
        &mut self,
        tenant: TenantId,
        id: Uuid,
    ) -> Result<Option<WebhookEndpointRecord>, StoreError> {
        if !self.scope().allows(tenant) {
            return Ok(None);
        }
        self.fetch_optional(
            &sql!(concat!(
                "SELECT ",
                endpoint_columns!(),
                " FROM webhook_endpoints WHERE tenant_id = $1 AND id = $2"
            )),
            &[Val::Uuid(*tenant.as_uuid()), Val::Uuid(id)],
        )
        .await?
        .as_ref()
        .map(endpoint_from_row)
        .transpose()
    }

    /// The tenant's endpoints, oldest first; only enabled ones with `enabled_only`.
    pub async fn webhook_endpoints(
        &mut self,
        tenant: TenantId,
        enabled_only: bool,
    ) -> Result<Vec<WebhookEndpointRecord>, StoreError> {
        if !self.scope().allows(tenant) {
            return Ok(Vec::new());
        }
        let q = if enabled_only {
            sql!(concat!(
                "SELECT ",
                endpoint_columns!(),
                " FROM webhook_endpoints WHERE tenant_id = $1 AND state = 'enabled' \
                 ORDER BY created_at, id"
            ))
        } else {
            sql!(concat!(
                "SELECT ",
                endpoint_columns!(),
                " FROM webhook_endpoints WHERE tenant_id = $1 ORDER BY created_at, id"
            ))
        };
        self.fetch_all(&q, &[Val::Uuid(*tenant.as_uuid())])
            .await?
            .iter()
            .map(endpoint_from_row)
            .collect()
    }

    /// Removes an endpoint and its deliveries; `false` if there is none.
    pub async fn delete_webhook_endpoint(
        &mut self,
        tenant: TenantId,
        id: Uuid,
    ) -> Result<bool, StoreError> {
        self.guard_write(tenant)?;
        Ok(self
            .execute(
                &sql!("DELETE FROM webhook_endpoints WHERE tenant_id = $1 AND id = $2"),
                &[Val::Uuid(*tenant.as_uuid()), Val::Uuid(id)],
            )
            .await?
            == 1)
    }

    /// Adds a delivery, or replaces its state fields (attempts, times, outcome).
    pub async fn upsert_webhook_delivery(
        &mut self,
        d: &WebhookDeliveryRecord,
    ) -> Result<(), StoreError> {
        self.guard_write(d.tenant_id)?;
        self.execute(
            &sql!(
                "INSERT INTO webhook_deliveries (tenant_id, id, endpoint_id, message_id, \
                 event_type, payload, state, attempts, next_attempt_at, last_attempt_at, \
                 last_status, last_error, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) \
                 ON CONFLICT (tenant_id, id) DO UPDATE SET state = excluded.state, \
                 attempts = excluded.attempts, next_attempt_at = excluded.next_attempt_at, \
                 last_attempt_at = excluded.last_attempt_at, \
                 last_status = excluded.last_status, last_error = excluded.last_error, \
                 updated_at = excluded.updated_at"
            ),
            &[
                Val::Uuid(*d.tenant_id.as_uuid()),
                Val::Uuid(d.id),
                Val::Uuid(d.endpoint_id),
                Val::Text(&d.message_id),
                Val::Text(&d.event_type),
                Val::Text(&d.payload),
                Val::Text(d.state.as_str()),
                Val::Int(d.attempts),
                Val::Ts(d.next_attempt_at),
                Val::OptTs(d.last_attempt_at),
                Val::OptInt(d.last_status),
                Val::OptText(d.last_error.as_deref()),
                Val::Ts(d.created_at),
                Val::Ts(d.updated_at),
            ],
        )
        .await
        .map(drop)
    }

    pub async fn webhook_delivery(
        &mut self,
        tenant: TenantId,
        id: Uuid,
    ) -> Result<Option<WebhookDeliveryRecord>, StoreError> {
        if !self.scope().allows(tenant) {
            return Ok(None);
        }
        self.fetch_optional(
            &sql!(concat!(
                "SELECT ",
                delivery_columns!(),
                " FROM webhook_deliveries WHERE tenant_id = $1 AND id = $2"
            )),
            &[Val::Uuid(*tenant.as_uuid()), Val::Uuid(id)],
        )
        .await?
        .as_ref()
        .map(delivery_from_row)
        .transpose()
    }

    /// Pending deliveries due at `now`, oldest due first. On Postgres the rows are locked and
    /// rows another node holds are skipped, so each due delivery is claimed by one node.
    pub async fn due_webhook_deliveries(
        &mut self,
        tenant: TenantId,
        now: Timestamp,
        limit: i64,
    ) -> Result<Vec<WebhookDeliveryRecord>, StoreError> {
        if !self.scope().allows(tenant) {
            return Ok(Vec::new());
        }
        self.fetch_all(
            &sql!(
                pg: concat!(
                    "SELECT ",
                    delivery_columns!(),
                    " FROM webhook_deliveries WHERE tenant_id = $1 AND state = 'pending' \
                     AND next_attempt_at <= $2 ORDER BY next_attempt_at LIMIT $3 \
                     FOR UPDATE SKIP LOCKED"
                ),
                sqlite: concat!(
                    "SELECT ",
                    delivery_columns!(),
                    " FROM webhook_deliveries WHERE tenant_id = $1 AND state = 'pending' \
                     AND next_attempt_at <= $2 ORDER BY next_attempt_at LIMIT $3"
                ),
            ),
            &[Val::Uuid(*tenant.as_uuid()), Val::Ts(now), Val::Int(limit)],
        )
        .await?
        .iter()
        .map(delivery_from_row)
        .collect()
    }

    /// Deliveries of the tenant, newest first, optionally of one endpoint and in one state,
    /// created before `before` (paging).
    pub async fn webhook_deliveries(
        &mut self,
        tenant: TenantId,
        endpoint: Option<Uuid>,
        state: Option<DeliveryState>,
        before: Option<Timestamp>,
        limit: i64,
    ) -> Result<Vec<WebhookDeliveryRecord>, StoreError> {
        if !self.scope().allows(tenant) {
            return Ok(Vec::new());
        }
        self.fetch_all(
            &sql!(concat!(
                "SELECT ",
                delivery_columns!(),
                " FROM webhook_deliveries WHERE tenant_id = $1 \
                 AND ($2 IS NULL OR endpoint_id = $2) AND ($3 IS NULL OR state = $3) \
                 AND ($4 IS NULL OR created_at < $4) \
                 ORDER BY created_at DESC, id LIMIT $5"
            )),
            &[
                Val::Uuid(*tenant.as_uuid()),
                Val::OptUuid(endpoint),
                Val::OptText(state.map(DeliveryState::as_str)),
                Val::OptTs(before),
                Val::Int(limit),
            ],
        )
        .await?
        .iter()
        .map(delivery_from_row)
        .collect()
    }

    /// Puts every dead delivery of `endpoint` back in the queue, due at `now`, with its attempts
    /// reset; returns how many.
    pub async fn replay_dead_webhook_deliveries(
        &mut self,
        tenant: TenantId,
        endpoint: Uuid,
        now: Timestamp,
    ) -> Result<u64, StoreError> {
        self.guard_write(tenant)?;
        self.execute(
            &sql!(
                "UPDATE webhook_deliveries SET state = 'pending', attempts = 0, \
                 next_attempt_at = $3, updated_at = $3 \
                 WHERE tenant_id = $1 AND endpoint_id = $2 AND state = 'dead'"
            ),
            &[
                Val::Uuid(*tenant.as_uuid()),
                Val::Uuid(endpoint),
                Val::Ts(now),
            ],
        )
        .await
    }

    /// Moves every pending delivery of `endpoint` to the dead-letter list (it was disabled).
    pub async fn kill_pending_webhook_deliveries(
        &mut self,
        tenant: TenantId,
        endpoint: Uuid,
        reason: &str,
        now: Timestamp,
    ) -> Result<u64, StoreError> {
        self.guard_write(tenant)?;
        self.execute(
            &sql!(
                "UPDATE webhook_deliveries SET state = 'dead', last_error = $3, updated_at = $4 \
                 WHERE tenant_id = $1 AND endpoint_id = $2 AND state = 'pending'"
            ),
            &[
                Val::Uuid(*tenant.as_uuid()),
                Val::Uuid(endpoint),
                Val::Text(reason),
                Val::Ts(now),
            ],
        )
        .await
    }
}
