//! Versioned tenant documents: append-only rows `(tenant, version, document)`, the newest in
//! force. Sentinel policies and gateway configurations are kept this way.

use rampart_types::TenantId;

use crate::db::{AnyRow, Sql, Val, sql};
use crate::repo::tenant_id;
use crate::{DocumentVersionRecord, StoreError, Tx};

/// Which kind of versioned document (each has its own table).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DocumentKind {
    /// `sentinel_policies`: the tenant's Sentinel policy.
    SentinelPolicy,
    /// `gateway_configs`: the tenant's agent gateway configuration.
    GatewayConfig,
}

impl DocumentKind {
    const fn select_version(self) -> Sql {
        match self {
            DocumentKind::SentinelPolicy => sql!(
                "SELECT tenant_id, version, document, created_by, created_at \
                 FROM sentinel_policies WHERE tenant_id = $1 AND version = $2"
            ),
            DocumentKind::GatewayConfig => sql!(
                "SELECT tenant_id, version, document, created_by, created_at \
                 FROM gateway_configs WHERE tenant_id = $1 AND version = $2"
            ),
        }
    }

    const fn select_newest(self) -> Sql {
        match self {
            DocumentKind::SentinelPolicy => sql!(
                "SELECT tenant_id, version, document, created_by, created_at \
                 FROM sentinel_policies WHERE tenant_id = $1 ORDER BY version DESC LIMIT 1"
            ),
            DocumentKind::GatewayConfig => sql!(
                "SELECT tenant_id, version, document, created_by, created_at \
                 FROM gateway_configs WHERE tenant_id = $1 ORDER BY version DESC LIMIT 1"
            ),
        }
    }

    const fn insert(self) -> Sql {
        match self {
            DocumentKind::SentinelPolicy => sql!(
                "INSERT INTO sentinel_policies (tenant_id, version, document, created_by, \
                 created_at) VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING"
            ),
            DocumentKind::GatewayConfig => sql!(
                "INSERT INTO gateway_configs (tenant_id, version, document, created_by, \
                 created_at) VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING"
            ),
        }
    }
}

fn document_from_row(row: &AnyRow) -> Result<DocumentVersionRecord, StoreError> {
    Ok(DocumentVersionRecord {
        tenant_id: tenant_id(row, "tenant_id")?,
        version: row.int("version")?,
        document: row.json("document")?,
        created_by: row.text("created_by")?,
        created_at: row.ts("created_at")?,
    })
}

impl Tx {
    /// Version `version` of the tenant's document of `kind`, or the newest with `None`.
    pub async fn document_version(
        &mut self,
        kind: DocumentKind,
        tenant: TenantId,
        version: Option<i64>,
    ) -> Result<Option<DocumentVersionRecord>, StoreError> {
        if !self.scope().allows(tenant) {
            return Ok(None);
        }
        let row = match version {
            Some(v) => {
                self.fetch_optional(
                    &kind.select_version(),
                    &[Val::Uuid(*tenant.as_uuid()), Val::Int(v)],
                )
                .await?
            }
            None => {
                self.fetch_optional(&kind.select_newest(), &[Val::Uuid(*tenant.as_uuid())])
                    .await?
            }
        };
        row.as_ref().map(document_from_row).transpose()
    }

    /// Adds a version; `false` if that version already exists (a concurrent writer).
    pub async fn insert_document_version(
        &mut self,
        kind: DocumentKind,
        d: &DocumentVersionRecord,
    ) -> Result<bool, StoreError> {
        self.guard_write(d.tenant_id)?;
        Ok(self
            .execute(
                &kind.insert(),
                &[
                    Val::Uuid(*d.tenant_id.as_uuid()),
                    Val::Int(d.version),
                    Val::Json(&d.document),
                    Val::Text(&d.created_by),
                    Val::Ts(d.created_at),
                ],
            )
            .await?
            == 1)
    }
}
