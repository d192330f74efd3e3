use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use rampart_store::TenantRecord;
use rampart_types::{AuditAction, Outcome, Problem, TenantId, Timestamp};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

use crate::credentials::audit;
use crate::error::ApiError;
use crate::extract::{AnyCapability, ApiJson, ApiPath, Authed, NeedTenantsAdmin, Read, Write};
use crate::state::AppState;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTenant {
    /// Unique; 1–64 characters: letters, digits, `-`, `_`, `.`; starting with a letter or digit.
    #[schema(
        min_length = 1,
        max_length = 64,
        pattern = "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
    )]
    pub name: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TenantView {
    #[schema(value_type = String, format = Uuid)]
    pub id: TenantId,
    pub name: String,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
}

impl From<TenantRecord> for TenantView {
    fn from(t: TenantRecord) -> Self {
        Self {
            id: t.id,
            name: t.name,
            created_at: t.created_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TenantList {
    pub tenants: Vec<TenantView>,
}

fn validate_name(name: &str) -> Result<(), ApiError> {
    let ok = (1..=64).contains(&name.len())
        && name.as_bytes()[0].is_ascii_alphanumeric()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(ApiError::validation(
            "`name` must be 1 to 64 letters, digits, `-`, `_` or `.`, starting with a letter or digit",
        ))
    }
}

/// Create a tenant (platform operator only).
#[utoipa::path(post, path = "/v1/tenants", tag = "tenants", request_body = CreateTenant,
    security(("bearer" = ["tenants:admin"])),
    responses(
        (status = 201, description = "Created", body = TenantView),
        (status = 409, description = "Name taken", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn create_tenant(
    State(state): State<AppState>,
    mut auth: Authed<Write, NeedTenantsAdmin>,
    ApiJson(body): ApiJson<CreateTenant>,
) -> Result<(StatusCode, Json<TenantView>), ApiError> {
    validate_name(&body.name)?;
    let now = state.clock.now();
    let record = TenantRecord {
        id: TenantId::random(),
        name: body.name,
        created_at: now,
    };
    auth.tx.insert_tenant(&record).await?;
    // Tenant creation is a platform event: it is recorded in the operator's (system) tenant.
    let event = auth.ctx.event(
        auth.principal.tenant,
        &auth.principal.subject,
        AuditAction::TenantCreate,
        format!("tenant:{}", record.id),
        Outcome::Success,
        json!({ "name": record.name }),
        now,
    );
    audit(&state, &mut auth.tx, event).await?;
    auth.tx.commit().await?;
    Ok((StatusCode::CREATED, Json(record.into())))
}

/// List every tenant (platform operator only).
#[utoipa::path(get, path = "/v1/tenants", tag = "tenants",
    security(("bearer" = ["tenants:admin"])),
    responses(
        (status = 200, description = "All tenants", body = TenantList),
    ))]
pub async fn list_tenants(
    mut auth: Authed<Read, NeedTenantsAdmin>,
) -> Result<Json<TenantList>, ApiError> {
    let tenants = auth.tx.list_tenants().await?;
    Ok(Json(TenantList {
        tenants: tenants.into_iter().map(Into::into).collect(),
    }))
}

/// Read a tenant: your own, or any for the platform operator. Others are not found.
#[utoipa::path(get, path = "/v1/tenants/{tenant_id}", tag = "tenants",
    params(("tenant_id" = String, Path, format = Uuid)),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The tenant", body = TenantView),
        (status = 404, description = "No such tenant, or not yours", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn get_tenant(
    mut auth: Authed<Read, AnyCapability>,
    ApiPath(id): ApiPath<TenantId>,
) -> Result<Json<TenantView>, ApiError> {
    let tenant = auth
        .tx
        .get_tenant(id)
        .await?
        .ok_or_else(|| ApiError::not_found("tenant"))?;
    Ok(Json(tenant.into()))
}
