use rampart_types::TenantId;

use crate::db::{AnyRow, Val, sql};
use crate::repo::tenant_id;
use crate::{Scope, StoreError, TenantRecord, Tx};

fn from_row(row: &AnyRow) -> Result<TenantRecord, StoreError> {
    Ok(TenantRecord {
        id: tenant_id(row, "id")?,
        name: row.text("name")?,
        created_at: row.ts("created_at")?,
    })
}

impl Tx {
    /// Creates a tenant. The transaction's scope must be that tenant (or the platform operator).
    pub async fn insert_tenant(&mut self, t: &TenantRecord) -> Result<(), StoreError> {
        if !(self.scope().allows(t.id) || self.scope().is_platform()) {
            return Err(StoreError::ScopeViolation);
        }
        self.execute(
            &sql!("INSERT INTO tenants (id, name, created_at) VALUES ($1, $2, $3)"),
            &[
                Val::Uuid(*t.id.as_uuid()),
                Val::Text(&t.name),
                Val::Ts(t.created_at),
            ],
        )
        .await
        .map(drop)
    }

    /// The tenant, if it is in scope.
    pub async fn get_tenant(&mut self, id: TenantId) -> Result<Option<TenantRecord>, StoreError> {
        if !(self.scope().allows(id) || self.scope().is_platform()) {
            return Ok(None);
        }
        self.fetch_optional(
            &sql!("SELECT id, name, created_at FROM tenants WHERE id = $1"),
            &[Val::Uuid(*id.as_uuid())],
        )
        .await?
        .as_ref()
        .map(from_row)
        .transpose()
    }

    /// Every tenant for the platform operator; the scope's own tenant for anyone else.
    pub async fn list_tenants(&mut self) -> Result<Vec<TenantRecord>, StoreError> {
        match self.scope() {
            Scope::Tenant(t) if t.platform => self
                .fetch_all(
                    &sql!("SELECT id, name, created_at FROM tenants ORDER BY created_at, id"),
                    &[],
                )
                .await?
                .iter()
                .map(from_row)
                .collect(),
            Scope::Tenant(t) => {
                let own = t.tenant;
                Ok(self.get_tenant(own).await?.into_iter().collect())
            }
            Scope::Lookup(_) | Scope::Global => Ok(Vec::new()),
        }
    }
}
