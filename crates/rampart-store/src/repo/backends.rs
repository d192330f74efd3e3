//! External secret backends mounted into a tenant's secret paths.

use rampart_types::TenantId;

use crate::db::{AnyRow, Val, sql};
use crate::repo::tenant_id;
use crate::{SecretBackendRecord, StoreError, Tx};

macro_rules! backend_columns {
    () => {
        "tenant_id, name, kind, settings, created_at, updated_at"
    };
}

fn backend_from_row(row: &AnyRow) -> Result<SecretBackendRecord, StoreError> {
    Ok(SecretBackendRecord {
        tenant_id: tenant_id(row, "tenant_id")?,
        name: row.text("name")?,
        kind: row.text("kind")?,
        settings: row.json("settings")?,
        created_at: row.ts("created_at")?,
        updated_at: row.ts("updated_at")?,
    })
}

impl Tx {
    /// Adds or replaces a backend (`created_at` is kept on replacement).
    pub async fn upsert_secret_backend(
        &mut self,
        b: &SecretBackendRecord,
    ) -> Result<(), StoreError> {
        self.guard_write(b.tenant_id)?;
        self.execute(
            &sql!(
                "INSERT INTO secret_backends (tenant_id, name, kind, settings, created_at, \
                 updated_at) VALUES ($1, $2, $3, $4, $5, $6) \
                 ON CONFLICT (tenant_id, name) DO UPDATE SET kind = excluded.kind, \
                 settings = excluded.settings, updated_at = excluded.updated_at"
            ),
            &[
                Val::Uuid(*b.tenant_id.as_uuid()),
                Val::Text(&b.name),
                Val::Text(&b.kind),
                Val::Json(&b.settings),
                Val::Ts(b.created_at),
                Val::Ts(b.updated_at),
            ],
        )
        .await
        .map(drop)
    }

    pub async fn secret_backend(
        &mut self,
        tenant: TenantId,
        name: &str,
    ) -> Result<Option<SecretBackendRecord>, StoreError> {
        if !self.scope().allows(tenant) {
            return Ok(None);
        }
        self.fetch_optional(
            &sql!(concat!(
                "SELECT ",
                backend_columns!(),
                " FROM secret_backends WHERE tenant_id = $1 AND name = $2"
            )),
            &[Val::Uuid(*tenant.as_uuid()), Val::Text(name)],
        )
        .await?
        .as_ref()
        .map(backend_from_row)
        .transpose()
    }

    pub async fn secret_backends(
        &mut self,
        tenant: TenantId,
    ) -> Result<Vec<SecretBackendRecord>, StoreError> {
        if !self.scope().allows(tenant) {
            return Ok(Vec::new());
        }
        self.fetch_all(
            &sql!(concat!(
                "SELECT ",
                backend_columns!(),
                " FROM secret_backends WHERE tenant_id = $1 ORDER BY name"
            )),
            &[Val::Uuid(*tenant.as_uuid())],
        )
        .await?
        .iter()
        .map(backend_from_row)
        .collect()
    }

    /// Removes a backend; `false` if there is none of that name.
    pub async fn delete_secret_backend(
        &mut self,
        tenant: TenantId,
        name: &str,
    ) -> Result<bool, StoreError> {
        self.guard_write(tenant)?;
        Ok(self
            .execute(
                &sql!("DELETE FROM secret_backends WHERE tenant_id = $1 AND name = $2"),
                &[Val::Uuid(*tenant.as_uuid()), Val::Text(name)],
            )
            .await?
            == 1)
    }
}
