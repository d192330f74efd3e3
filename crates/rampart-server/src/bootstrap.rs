//! What happens once per deployment: the root key is fingerprinted into the store, the system
//! tenant is created with the operator's API key, and the first signing key is made. Each step is
//! safe to race against another node starting at the same moment.

use rampart_crypto::{HmacKey, RootKey};
use rampart_identity::ApiKey;
use rampart_store::{Scope, Store, TenantRecord, TenantScope};
use rampart_types::{AuditAction, AuditEvent, CapabilitySet, Clock, Outcome, TenantId};
use serde_json::json;

use crate::audit::AuditSink;
use crate::config::Config;
use crate::credentials::{NewApiKey, create_api_key};
use crate::keys::KeyManager;
use crate::state::StartError;

const ROOT_KEY_CHECK: &str = "root_key_check";
const SYSTEM_TENANT: &str = "system_tenant_id";
/// Name of the platform operator's tenant.
pub const SYSTEM_TENANT_NAME: &str = "system";

/// Refuses to start with a root key other than the one the store was initialised with.
pub async fn check_root_key(store: &Store, root: &RootKey) -> Result<(), StartError> {
    let check = root.check_value()?;
    let mut tx = store.begin(Scope::Global).await?;
    let inserted = tx.insert_meta(ROOT_KEY_CHECK, &check).await?;
    let stored = tx.get_meta(ROOT_KEY_CHECK).await?;
    tx.commit().await?;
    if !inserted && stored.as_deref() != Some(check.as_str()) {
        return Err(StartError::Setup(
            "the root key does not match the one this database was initialised with; check \
             RAMPART_ROOT_KEY / the root key file and RAMPART_DATA_DIR / RAMPART_DATABASE_URL"
                .into(),
        ));
    }
    Ok(())
}

/// Records that ledger `origin` is `node`'s; refuses if another node's log already has it.
pub async fn claim_ledger_origin(
    store: &Store,
    origin: &str,
    node: &str,
) -> Result<(), StartError> {
    let key = format!("ledger_origin:{origin}");
    let mut tx = store.begin(Scope::Global).await?;
    tx.insert_meta(&key, node).await?;
    let owner = tx.get_meta(&key).await?;
    tx.commit().await?;
    if owner.as_deref() != Some(node) {
        return Err(StartError::Setup(format!(
            "the ledger origin `{origin}` belongs to another node's log (node {}); give each node \
             its own data directory, or its own `ledger_origin`",
            owner.as_deref().unwrap_or("?")
        )));
    }
    Ok(())
}

pub struct Bootstrapped {
    pub system_tenant: TenantId,
    pub operator_key: Option<ApiKey>,
}

fn system_scope(tenant: TenantId, subject: &str) -> Scope {
    Scope::Tenant(TenantScope {
        tenant,
        subject: subject.into(),
        platform: true,
    })
}

/// The system tenant, if the store was bootstrapped.
pub async fn system_tenant(store: &Store) -> Result<Option<TenantId>, StartError> {
    let mut tx = store.begin_read(Scope::Global).await?;
    let v = tx.get_meta(SYSTEM_TENANT).await?;
    v.map(|s| {
        s.parse::<TenantId>()
            .map_err(|e| StartError::Setup(format!("stored system tenant id: {e}")))
    })
    .transpose()
}

/// The system tenant's id; on first start, creates it with the operator key.
pub async fn ensure_system_tenant(
    store: &Store,
    pepper: &HmacKey,
    clock: &dyn Clock,
    audit: &dyn AuditSink,
    config: &Config,
) -> Result<Bootstrapped, StartError> {
    if let Some(id) = system_tenant(store).await? {
        return Ok(Bootstrapped {
            system_tenant: id,
            operator_key: None,
        });
    }
    let id = TenantId::random();
    let now = clock.now();
    let mut tx = store.begin(system_scope(id, "bootstrap")).await?;
    if !tx.insert_meta(SYSTEM_TENANT, &id.to_string()).await? {
        // Another node bootstrapped first.
        tx.rollback().await?;
        let existing = system_tenant(store).await?.ok_or_else(|| {
            StartError::Setup("the system tenant vanished during bootstrap".into())
        })?;
        return Ok(Bootstrapped {
            system_tenant: existing,
            operator_key: None,
        });
    }
    tx.insert_tenant(&TenantRecord {
        id,
        name: SYSTEM_TENANT_NAME.into(),
        created_at: now,
    })
    .await?;
    let event = AuditEvent {
        tenant_id: id,
        request_id: None,
        actor: "bootstrap".into(),
        action: AuditAction::TenantCreate,
        resource: format!("tenant:{id}"),
        outcome: Outcome::Success,
        detail: json!({ "name": SYSTEM_TENANT_NAME }),
        at: now,
    };
    audit
        .record(&mut tx, &event)
        .await
        .map_err(|e| StartError::Setup(e.to_string()))?;
    let key = issue_operator_key(&mut tx, pepper, audit, id, now, config, "bootstrap").await?;
    tx.commit().await?;
    Ok(Bootstrapped {
        system_tenant: id,
        operator_key: Some(key),
    })
}

/// A new operator key (every capability, in the system tenant), inside `tx`.
pub async fn issue_operator_key(
    tx: &mut rampart_store::Tx,
    pepper: &HmacKey,
    audit: &dyn AuditSink,
    system_tenant: TenantId,
    now: rampart_types::Timestamp,
    config: &Config,
    actor: &str,
) -> Result<ApiKey, StartError> {
    let (key, record) = create_api_key(
        tx,
        pepper,
        NewApiKey {
            tenant: system_tenant,
            name: "operator".into(),
            capabilities: CapabilitySet::all(),
            created_at: now,
            expires_at: now.saturating_add(config.api_key_default_ttl),
            created_by: actor.into(),
            rotated_from: None,
            agent: None,
        },
    )
    .await
    .map_err(|e| StartError::Setup(format!("creating the operator key: {}", e.detail)))?;
    let event = AuditEvent {
        tenant_id: system_tenant,
        request_id: None,
        actor: actor.into(),
        action: AuditAction::ApiKeyCreate,
        resource: format!("apikey:{}", record.id),
        outcome: Outcome::Success,
        detail: json!({
            "name": record.name,
            "capabilities": record.capabilities,
            "expires_at": record.expires_at,
        }),
        at: now,
    };
    audit
        .record(tx, &event)
        .await
        .map_err(|e| StartError::Setup(e.to_string()))?;
    Ok(key)
}

/// Makes the first signing key if there is none.
pub async fn ensure_signing_key(
    store: &Store,
    keys: &KeyManager,
    audit: &dyn AuditSink,
    system_tenant: TenantId,
) -> Result<(), StartError> {
    if keys.has_active_key().await? {
        return Ok(());
    }
    let mut tx = store
        .begin(system_scope(system_tenant, "bootstrap"))
        .await?;
    // With `only_if_due`, a node that lost the race finds the winner's key and does nothing.
    if let Some(r) = keys.rotate_in(&mut tx, true).await? {
        let event = AuditEvent {
            tenant_id: system_tenant,
            request_id: None,
            actor: "bootstrap".into(),
            action: AuditAction::SigningKeyRotate,
            resource: format!("signing_key:{}", r.new_kid),
            outcome: Outcome::Success,
            detail: json!({ "reason": "first signing key" }),
            at: keys.now(),
        };
        audit
            .record(&mut tx, &event)
            .await
            .map_err(|e| StartError::Setup(e.to_string()))?;
    }
    tx.commit().await?;
    Ok(())
}
