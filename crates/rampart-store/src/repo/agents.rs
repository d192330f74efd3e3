//! Agent profiles and dynamic Postgres engines.

use rampart_types::{AgentId, TenantId};

use crate::db::{AnyRow, Val, sql};
use crate::repo::tenant_id;
use crate::{AgentRecord, PostgresEngineRecord, StoreError, Tx};

macro_rules! agent_columns {
    () => {
        "tenant_id, id, name, secret_allowlist, engine_allowlist, created_by, created_at, \
         updated_at, disabled_at"
    };
}

macro_rules! engine_columns {
    () => {
        "tenant_id, name, connection_secret, template_role, default_ttl_seconds, \
         max_ttl_seconds, created_at, updated_at"
    };
}

fn string_list(row: &AnyRow, col: &str) -> Result<Vec<String>, StoreError> {
    serde_json::from_value(row.json(col)?).map_err(|e| StoreError::Corrupt {
        column: col.to_owned(),
        reason: e.to_string(),
    })
}

fn agent_from_row(row: &AnyRow) -> Result<AgentRecord, StoreError> {
    Ok(AgentRecord {
        tenant_id: tenant_id(row, "tenant_id")?,
        id: AgentId::from_uuid(row.uuid("id")?),
        name: row.text("name")?,
        secret_allowlist: string_list(row, "secret_allowlist")?,
        engine_allowlist: string_list(row, "engine_allowlist")?,
        created_by: row.text("created_by")?,
        created_at: row.ts("created_at")?,
        updated_at: row.ts("updated_at")?,
        disabled_at: row.opt_ts("disabled_at")?,
    })
}

fn engine_from_row(row: &AnyRow) -> Result<PostgresEngineRecord, StoreError> {
    Ok(PostgresEngineRecord {
        tenant_id: tenant_id(row, "tenant_id")?,
        name: row.text("name")?,
        connection_secret: row.text("connection_secret")?,
        template_role: row.text("template_role")?,
        default_ttl_seconds: row.int("default_ttl_seconds")?,
        max_ttl_seconds: row.int("max_ttl_seconds")?,
        created_at: row.ts("created_at")?,
        updated_at: row.ts("updated_at")?,
    })
}

impl Tx {
    /// Adds an agent; [`StoreError::Conflict`] if the tenant already has one of that name.
    pub async fn insert_agent(&mut self, a: &AgentRecord) -> Result<(), StoreError> {
        self.guard_write(a.tenant_id)?;
        let secrets = serde_json::json!(a.secret_allowlist);
        let engines = serde_json::json!(a.engine_allowlist);
        self.execute(
            &sql!(
                "INSERT INTO agents (tenant_id, id, name, secret_allowlist, engine_allowlist, \
                 created_by, created_at, updated_at, disabled_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
            ),
            &[
                Val::Uuid(*a.tenant_id.as_uuid()),
                Val::Uuid(*a.id.as_uuid()),
                Val::Text(&a.name),
                Val::Json(&secrets),
                Val::Json(&engines),
                Val::Text(&a.created_by),
                Val::Ts(a.created_at),
                Val::Ts(a.updated_at),
                Val::OptTs(a.disabled_at),
            ],
        )
        .await
        .map(drop)
    }

    pub async fn agent(
        &mut self,
        tenant: TenantId,
        id: AgentId,
    ) -> Result<Option<AgentRecord>, StoreError> {
        if !self.scope().allows(tenant) {
            return Ok(None);
        }
        self.fetch_optional(
            &sql!(concat!(
                "SELECT ",
                agent_columns!(),
                " FROM agents WHERE tenant_id = $1 AND id = $2"
            )),
            &[Val::Uuid(*tenant.as_uuid()), Val::Uuid(*id.as_uuid())],
        )
        .await?
        .as_ref()
        .map(agent_from_row)
        .transpose()
    }

    /// The tenant's agents by name.
    pub async fn agents(&mut self, tenant: TenantId) -> Result<Vec<AgentRecord>, StoreError> {
        if !self.scope().allows(tenant) {
            return Ok(Vec::new());
        }
        self.fetch_all(
            &sql!(concat!(
                "SELECT ",
                agent_columns!(),
                " FROM agents WHERE tenant_id = $1 ORDER BY name"
            )),
            &[Val::Uuid(*tenant.as_uuid())],
        )
        .await?
        .iter()
        .map(agent_from_row)
        .collect()
    }

    /// Replaces an agent's allowlists and disabled mark; `false` if there is no such agent.
    pub async fn update_agent(&mut self, a: &AgentRecord) -> Result<bool, StoreError> {
        self.guard_write(a.tenant_id)?;
        let secrets = serde_json::json!(a.secret_allowlist);
        let engines = serde_json::json!(a.engine_allowlist);
        Ok(self
            .execute(
                &sql!(
                    "UPDATE agents SET secret_allowlist = $3, engine_allowlist = $4, \
                     updated_at = $5, disabled_at = $6 WHERE tenant_id = $1 AND id = $2"
                ),
                &[
                    Val::Uuid(*a.tenant_id.as_uuid()),
                    Val::Uuid(*a.id.as_uuid()),
                    Val::Json(&secrets),
                    Val::Json(&engines),
                    Val::Ts(a.updated_at),
                    Val::OptTs(a.disabled_at),
                ],
            )
            .await?
            == 1)
    }

    /// Adds or replaces a dynamic Postgres engine (`created_at` is kept on replacement).
    pub async fn upsert_postgres_engine(
        &mut self,
        e: &PostgresEngineRecord,
    ) -> Result<(), StoreError> {
        self.guard_write(e.tenant_id)?;
        self.execute(
            &sql!(
                "INSERT INTO postgres_engines (tenant_id, name, connection_secret, template_role, \
                 default_ttl_seconds, max_ttl_seconds, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
                 ON CONFLICT (tenant_id, name) DO UPDATE SET \
                 connection_secret = excluded.connection_secret, \
                 template_role = excluded.template_role, \
                 default_ttl_seconds = excluded.default_ttl_seconds, \
                 max_ttl_seconds = excluded.max_ttl_seconds, updated_at = excluded.updated_at"
            ),
            &[
                Val::Uuid(*e.tenant_id.as_uuid()),
                Val::Text(&e.name),
                Val::Text(&e.connection_secret),
                Val::Text(&e.template_role),
                Val::Int(e.default_ttl_seconds),
                Val::Int(e.max_ttl_seconds),
                Val::Ts(e.created_at),
                Val::Ts(e.updated_at),
            ],
        )
        .await
        .map(drop)
    }

    pub async fn postgres_engine(
        &mut self,
        tenant: TenantId,
        name: &str,
    ) -> Result<Option<PostgresEngineRecord>, StoreError> {
        if !self.scope().allows(tenant) {
            return Ok(None);
        }
        self.fetch_optional(
            &sql!(concat!(
                "SELECT ",
                engine_columns!(),
                " FROM postgres_engines WHERE tenant_id = $1 AND name = $2"
            )),
            &[Val::Uuid(*tenant.as_uuid()), Val::Text(name)],
        )
        .await?
        .as_ref()
        .map(engine_from_row)
        .transpose()
    }

    pub async fn postgres_engines(
        &mut self,
        tenant: TenantId,
    ) -> Result<Vec<PostgresEngineRecord>, StoreError> {
        if !self.scope().allows(tenant) {
            return Ok(Vec::new());
        }
        self.fetch_all(
            &sql!(concat!(
                "SELECT ",
                engine_columns!(),
                " FROM postgres_engines WHERE tenant_id = $1 ORDER BY name"
            )),
            &[Val::Uuid(*tenant.as_uuid())],
        )
        .await?
        .iter()
        .map(engine_from_row)
        .collect()
    }

    /// Removes an engine; `false` if there is none of that name.
    pub async fn delete_postgres_engine(
        &mut self,
        tenant: TenantId,
        name: &str,
    ) -> Result<bool, StoreError> {
        self.guard_write(tenant)?;
        Ok(self
            .execute(
                &sql!("DELETE FROM postgres_engines WHERE tenant_id = $1 AND name = $2"),
                &[Val::Uuid(*tenant.as_uuid()), Val::Text(name)],
            )
            .await?
            == 1)
    }

    /// Whether leases of the engine are live or still have a role to drop.
    pub async fn postgres_engine_in_use(
        &mut self,
        tenant: TenantId,
        name: &str,
    ) -> Result<bool, StoreError> {
        if !self.scope().allows(tenant) {
            return Ok(false);
        }
        Ok(self
            .fetch_optional(
                &sql!(
                    "SELECT 1 AS busy FROM leases WHERE tenant_id = $1 AND kind = 'postgres' \
                     AND target = $2 AND (revoked_at IS NULL OR cleanup = 'pending') LIMIT 1"
                ),
                &[Val::Uuid(*tenant.as_uuid()), Val::Text(name)],
            )
            .await?
            .is_some())
    }
}
