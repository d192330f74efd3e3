//! Proof, in raw SQL as the app role, that Postgres itself isolates tenants — independent of the
//! repository code, which also filters by tenant.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests"
)]

use std::collections::BTreeSet;
use std::str::FromStr;

use rampart_crypto::SecretString;
use rampart_store::{
    ApiKeyRecord, FamilyRecord, LedgerPosition, RefreshRecord, Scope, Store, StoreError,
    StoreOptions, TenantRecord, TenantScope, postgres_app_grants,
};
use rampart_testkit::PgTestDb;
use rampart_types::{
    AuditAction, AuditEvent, CapabilitySet, FamilyId, Outcome, TenantId, Timestamp, TokenId,
};
use sqlx::postgres::PgConnectOptions;
use sqlx::{AssertSqlSafe, Connection, PgConnection, Row};

const APP_PASSWORD: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

fn now() -> Timestamp {
    Timestamp::from_unix_seconds(1_800_000_000)
}

async fn seed(store: &Store, tenant: TenantId, n: &str) {
    let mut tx = store
        .begin(Scope::Tenant(TenantScope {
            tenant,
            subject: "seed".into(),
            platform: false,
        }))
        .await
        .unwrap();
    tx.insert_tenant(&TenantRecord {
        id: tenant,
        name: format!("tenant-{n}"),
        created_at: now(),
    })
    .await
    .unwrap();
    let key_id = n.repeat(12).parse().unwrap();
    tx.insert_api_key(&ApiKeyRecord {
        id: key_id,
        tenant_id: tenant,
        name: "k".into(),
        secret_hash: vec![0; 32],
        capabilities: CapabilitySet::empty(),
        created_by: "seed".into(),
        created_at: now(),
        expires_at: now(),
        revoked_at: None,
        last_used_at: None,
        rotated_from: None,
        rotated_to: None,
        agent_id: None,
    })
    .await
    .unwrap();
    let fam = FamilyId::random();
    tx.insert_family(&FamilyRecord {
        id: fam,
        tenant_id: tenant,
        subject: "s".into(),
        api_key_id: n.repeat(12).parse().unwrap(),
        capabilities: CapabilitySet::empty(),
        created_at: now(),
        expires_at: now(),
        revoked_at: None,
        revoked_reason: None,
    })
    .await
    .unwrap();
    tx.insert_refresh(&RefreshRecord {
        id: rampart_identity::RefreshTokenId::parse(&n.repeat(16)).unwrap(),
        tenant_id: tenant,
        family_id: fam,
        secret_hash: vec![0; 32],
        created_at: now(),
        expires_at: now(),
        used_at: None,
        successor_id: None,
        successor_sealed: None,
    })
    .await
    .unwrap();
    tx.revoke_token_id(tenant, TokenId::random(), now())
        .await
        .unwrap();
    tx.insert_ledger_key(&rampart_store::LedgerKeyRecord {
        tenant_id: tenant,
        generation: 1,
        sealed_key: Some(vec![1; 32]),
        created_at: now(),
        destroyed_at: None,
    })
    .await
    .unwrap();
    tx.insert_tenant_key(&rampart_store::TenantKeyRecord {
        tenant_id: tenant,
        version: 1,
        sealed_key: Some(vec![2; 60]),
        state: rampart_store::TenantKeyState::Active,
        created_at: now(),
        retired_at: None,
        revoked_at: None,
    })
    .await
    .unwrap();
    let version = tx
        .next_secret_version(tenant, "db/password", rampart_store::Cas::Absent, now())
        .await
        .unwrap()
        .unwrap();
    tx.insert_secret_version(
        tenant,
        "db/password",
        version,
        &rampart_secrets::SealedValue {
            key_version: 1,
            wrapped_dek: vec![3; 61],
            ciphertext: vec![4; 40],
        },
        now(),
    )
    .await
    .unwrap();
    let agent = rampart_types::AgentId::random();
    tx.insert_agent(&rampart_store::AgentRecord {
        tenant_id: tenant,
        id: agent,
        name: format!("agent-{n}"),
        secret_allowlist: vec!["db/**".into()],
        engine_allowlist: vec![],
        created_by: "seed".into(),
        created_at: now(),
        updated_at: now(),
        disabled_at: None,
    })
    .await
    .unwrap();
    tx.upsert_postgres_engine(&rampart_store::PostgresEngineRecord {
        tenant_id: tenant,
        name: "orders".into(),
        connection_secret: "db/password".into(),
        template_role: "orders_ro".into(),
        default_ttl_seconds: 60,
        max_ttl_seconds: 60,
        created_at: now(),
        updated_at: now(),
    })
    .await
    .unwrap();
    tx.upsert_secret_backend(&rampart_store::SecretBackendRecord {
        tenant_id: tenant,
        name: "aws".into(),
        kind: "aws_secrets_manager".into(),
        settings: serde_json::json!({ "kind": "aws_secrets_manager", "region": "eu-west-1", "credentials": "ops/aws" }),
        created_at: now(),
        updated_at: now(),
    })
    .await
    .unwrap();
    let endpoint = uuid::Uuid::new_v4();
    tx.upsert_webhook_endpoint(&rampart_store::WebhookEndpointRecord {
        tenant_id: tenant,
        id: endpoint,
        url: "https://hooks.example.com/x".into(),
        description: String::new(),
        event_types: vec![],
        scheme: "v1".into(),
        secret: vec![1, 2, 3],
        previous_secret: None,
        previous_until: None,
        enabled: true,
        disabled_reason: None,
        failing_since: None,
        created_at: now(),
        updated_at: now(),
    })
    .await
    .unwrap();
    tx.upsert_webhook_delivery(&rampart_store::WebhookDeliveryRecord {
        tenant_id: tenant,
        id: uuid::Uuid::new_v4(),
        endpoint_id: endpoint,
        message_id: "msg_seed".into(),
        event_type: "tenant.create".into(),
        payload: "{}".into(),
        state: rampart_store::DeliveryState::Pending,
        attempts: 0,
        next_attempt_at: now(),
        last_attempt_at: None,
        last_status: None,
        last_error: None,
        created_at: now(),
        updated_at: now(),
    })
    .await
    .unwrap();
    tx.insert_lease(&rampart_store::LeaseRecord {
        tenant_id: tenant,
        id: rampart_types::LeaseId::random(),
        agent_id: agent,
        mission: "m".into(),
        purpose: "p".into(),
        kind: rampart_store::LeaseKind::Kv,
        target: "db/password".into(),
        secret_version: Some(1),
        issued_by: "seed".into(),
        request_id: None,
        issued_at: now(),
        expires_at: now(),
        max_expires_at: now(),
        revoked_at: None,
        revoked_by: None,
        revoke_reason: None,
        cleanup: rampart_store::Cleanup::None,
        cleanup_attempts: 0,
        cleanup_error: None,
        cleanup_next_at: None,
    })
    .await
    .unwrap();
    tx.add_gateway_usage(tenant, "mission:seed", 10, 5, 1)
        .await
        .unwrap();
    tx.add_gateway_profile(
        tenant,
        "agent:seed",
        rampart_store::ProfileKind::Model,
        &["seed".to_owned()],
        now(),
    )
    .await
    .unwrap();
    tx.insert_gateway_request(&rampart_store::GatewayRequestRecord {
        tenant_id: tenant,
        request_id: "seed".into(),
        idempotency_key: Some("mission:seed/k".into()),
        sealed_body: vec![1],
        body_sha256: vec![2; 32],
        created_at: now(),
    })
    .await
    .unwrap();
    for (kind, document) in [
        (
            rampart_store::DocumentKind::SentinelPolicy,
            serde_json::json!({ "default": { "mode": "strict", "threshold": 0.5 } }),
        ),
        (
            rampart_store::DocumentKind::GatewayConfig,
            serde_json::json!({ "upstreams": {} }),
        ),
    ] {
        tx.insert_document_version(
            kind,
            &rampart_store::DocumentVersionRecord {
                tenant_id: tenant,
                version: 1,
                document,
                created_by: "seed".into(),
                created_at: now(),
            },
        )
        .await
        .unwrap();
    }
    tx.insert_sentinel_key(&rampart_store::SentinelKeyRecord {
        tenant_id: tenant,
        generation: 1,
        sealed_key: Some(vec![5; 64]),
        created_at: now(),
        destroyed_at: None,
    })
    .await
    .unwrap();
    tx.insert_sentinel_token(&rampart_store::SentinelTokenRecord {
        tenant_id: tenant,
        token: "[EMAIL_R_0123456789abcdef0123]".into(),
        generation: 1,
        class: "EMAIL".into(),
        sealed_value: vec![6; 40],
        created_at: now(),
    })
    .await
    .unwrap();
    tx.insert_sentinel_fingerprints(tenant, "db/password", version, &[7; 48])
        .await
        .unwrap();
    tx.insert_mission(&rampart_store::MissionRecord {
        tenant_id: tenant,
        id: rampart_types::MissionId::random(),
        agent_id: agent,
        goal: "seed".into(),
        instructions_sealed: vec![8; 40],
        instructions_sha256: [9; 32],
        budgets: serde_json::json!({}),
        directives: serde_json::json!([]),
        status: rampart_store::MissionStatus::Active,
        created_by: "seed".into(),
        created_at: now(),
        deadline: now(),
        ended_at: None,
        ended_by: None,
        end_reason: None,
        cascade_id: None,
    })
    .await
    .unwrap();
    tx.revoke_principal(
        tenant,
        "user:seed",
        rampart_types::CascadeId::random(),
        "seed",
        "seed",
        now(),
    )
    .await
    .unwrap();
    tx.append_audit(
        &AuditEvent {
            tenant_id: tenant,
            request_id: None,
            actor: "seed".into(),
            action: AuditAction::TenantCreate,
            resource: "r".into(),
            outcome: Outcome::Success,
            detail: serde_json::json!({}),
            at: now(),
        },
        Some(&LedgerPosition {
            log: "node-1".into(),
            index: 0,
        }),
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
}

async fn app_connection(db: &PgTestDb) -> PgConnection {
    let opts = PgConnectOptions::from_str(&db.owner_url)
        .unwrap()
        .username(&db.app_role)
        .password(APP_PASSWORD);
    PgConnection::connect_with(&opts).await.unwrap()
}

/// `SELECT tenant_id FROM <table>` inside a transaction with the given claims (`None`: no claim).
async fn visible(conn: &mut PgConnection, table: &str, claims: Option<&str>) -> Vec<String> {
    let mut tx = conn.begin().await.unwrap();
    if let Some(c) = claims {
        sqlx::query("SELECT set_config('request.jwt.claims', $1, true)")
            .bind(c)
            .execute(&mut *tx)
            .await
            .unwrap();
    }
    let rows = sqlx::query(AssertSqlSafe(format!(
        "SELECT tenant_id::text AS t FROM {table}"
    )))
    .fetch_all(&mut *tx)
    .await
    .unwrap();
    tx.rollback().await.unwrap();
    rows.iter().map(|r| r.get::<String, _>("t")).collect()
}

fn claims(tenant: &TenantId) -> String {
    format!(r#"{{"tenant_id":"{tenant}","sub":"test"}}"#)
}

async fn sqlstate_of(
    conn: &mut PgConnection,
    claims_json: &str,
    stmt: &str,
) -> Result<u64, String> {
    let mut tx = conn.begin().await.unwrap();
    sqlx::query("SELECT set_config('request.jwt.claims', $1, true)")
        .bind(claims_json)
        .execute(&mut *tx)
        .await
        .unwrap();
    let r = sqlx::raw_sql(AssertSqlSafe(stmt.to_owned()))
        .execute(&mut *tx)
        .await;
    tx.rollback().await.ok();
    match r {
        Ok(done) => Ok(done.rows_affected()),
        Err(sqlx::Error::Database(e)) => Err(e.code().unwrap_or_default().into_owned()),
        Err(e) => Err(e.to_string()),
    }
}

#[tokio::test]
async fn row_level_security_isolates_tenants_in_raw_sql() {
    let db = PgTestDb::create().await;
    let store = Store::open(&StoreOptions {
        url: SecretString::new(db.owner_url.clone()),
        app_url: None,
        app_role: db.app_role.clone(),
        app_password: Some(SecretString::new(APP_PASSWORD.into())),
        max_connections: 2,
    })
    .await
    .unwrap();
    let a = TenantId::random();
    let b = TenantId::random();
    seed(&store, a, "a").await;
    seed(&store, b, "b").await;

    let mut owner = PgConnection::connect(&db.owner_url).await.unwrap();
    // Every table with a tenant_id column is tenant-owned, and each has RLS enabled and forced.
    let tenant_tables: BTreeSet<String> = sqlx::query(
        "SELECT c.relname::text AS name, c.relrowsecurity, c.relforcerowsecurity
           FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
           JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped
          WHERE n.nspname = 'public' AND c.relkind = 'r'",
    )
    .fetch_all(&mut owner)
    .await
    .unwrap()
    .iter()
    .map(|r| {
        let name: String = r.get("name");
        assert!(r.get::<bool, _>("relrowsecurity"), "{name}: RLS not enabled");
        assert!(r.get::<bool, _>("relforcerowsecurity"), "{name}: RLS not forced");
        name
    })
    .collect();
    let expected: BTreeSet<String> = [
        "tenants",
        "api_keys",
        "token_families",
        "refresh_tokens",
        "revoked_tokens",
        "audit_events",
        "ledger_keys",
        "tenant_keys",
        "secrets",
        "secret_versions",
        "agents",
        "postgres_engines",
        "leases",
        "secret_backends",
        "webhook_endpoints",
        "webhook_deliveries",
        "sentinel_policies",
        "sentinel_keys",
        "sentinel_tokens",
        "sentinel_fingerprints",
        "missions",
        "principal_revocations",
        "gateway_configs",
        "gateway_usage",
        "gateway_requests",
        "gateway_profiles",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    assert_eq!(tenant_tables, expected);
    // Every table has an explicit grant entry (a new table cannot be forgotten).
    let all_tables: BTreeSet<String> = sqlx::query(
        "SELECT tablename::text AS t FROM pg_tables WHERE schemaname = 'public' AND tablename <> 'rampart_migrations'",
    )
    .fetch_all(&mut owner)
    .await
    .unwrap()
    .iter()
    .map(|r| r.get("t"))
    .collect();
    let granted: BTreeSet<String> = postgres_app_grants()
        .iter()
        .map(|(t, _)| (*t).to_owned())
        .collect();
    assert_eq!(all_tables, granted);

    let mut app = app_connection(&db).await;
    let a_s = a.to_string();
    for table in &tenant_tables {
        // Tenant A's claims: only A's rows, and at least one of them.
        let rows = visible(&mut app, table, Some(&claims(&a))).await;
        assert!(!rows.is_empty(), "{table}: A sees nothing");
        assert!(rows.iter().all(|t| *t == a_s), "{table}: A sees {rows:?}");
        // A random tenant id: nothing.
        assert!(
            visible(&mut app, table, Some(&claims(&TenantId::random())))
                .await
                .is_empty(),
            "{table}"
        );
        // No claim at all, an empty one, or garbage: nothing, and no error.
        assert!(visible(&mut app, table, None).await.is_empty(), "{table}");
        for bad in [
            "",
            "{}",
            "not json",
            r#"{"tenant_id":"not-a-uuid"}"#,
            r#"{"tenant_id":null}"#,
            "[]",
        ] {
            assert!(
                visible(&mut app, table, Some(bad)).await.is_empty(),
                "{table} with {bad:?}"
            );
        }
        // Claiming to be the platform shows other tenants only in `tenants`.
        let platform = format!(r#"{{"tenant_id":"{a}","platform":true}}"#);
        let rows = visible(&mut app, table, Some(&platform)).await;
        if table == "tenants" {
            assert_eq!(rows.len(), 2);
        } else {
            assert!(
                rows.iter().all(|t| *t == a_s),
                "{table}: platform flag leaked {rows:?}"
            );
        }
    }

    // Writes into another tenant are refused by the database.
    let ca = claims(&a);
    let insert_b = format!(
        "INSERT INTO api_keys (id, tenant_id, name, secret_hash, capabilities, created_by, created_at, expires_at) \
         VALUES ('zzzzzzzzzzzz', '{b}', 'x', '\\x00', '', 'x', now(), now())"
    );
    assert_eq!(
        sqlstate_of(&mut app, &ca, &insert_b).await,
        Err("42501".into())
    );
    let insert_tenant = format!(
        "INSERT INTO tenants (id, name, created_at) VALUES ('{}', 'evil', now())",
        TenantId::random()
    );
    assert_eq!(
        sqlstate_of(&mut app, &ca, &insert_tenant).await,
        Err("42501".into())
    );
    let secret_b = format!(
        "INSERT INTO secrets (tenant_id, path, current_version, created_at, updated_at) \
         VALUES ('{b}', 'planted', 1, now(), now())"
    );
    assert_eq!(
        sqlstate_of(&mut app, &ca, &secret_b).await,
        Err("42501".into())
    );
    // A's claims cannot read or re-point B's sealed secret versions either.
    assert_eq!(
        sqlstate_of(
            &mut app,
            &ca,
            &format!("UPDATE secret_versions SET key_version = 1 WHERE tenant_id = '{b}'")
        )
        .await,
        Ok(0)
    );
    let audit_b = format!(
        "INSERT INTO audit_events (tenant_id, at, actor, action, resource, outcome, detail) \
         VALUES ('{b}', now(), 'x', 'x', 'x', 'x', '{{}}')"
    );
    assert_eq!(
        sqlstate_of(&mut app, &ca, &audit_b).await,
        Err("42501".into())
    );
    // UPDATE/DELETE of B's rows under A's claims touch nothing.
    assert_eq!(
        sqlstate_of(
            &mut app,
            &ca,
            "UPDATE api_keys SET name = 'pwned' WHERE id = 'bbbbbbbbbbbb'"
        )
        .await,
        Ok(0)
    );
    assert_eq!(
        sqlstate_of(&mut app, &ca, "UPDATE token_families SET revoked_at = NULL").await,
        Ok(1)
    );
    assert_eq!(
        sqlstate_of(
            &mut app,
            &ca,
            "DELETE FROM refresh_tokens WHERE id = 'bbbbbbbbbbbbbbbb'"
        )
        .await,
        Ok(0)
    );
    // Moving one's own row into another tenant is refused.
    let move_row = format!("UPDATE api_keys SET tenant_id = '{b}' WHERE id = 'aaaaaaaaaaaa'");
    assert_eq!(
        sqlstate_of(&mut app, &ca, &move_row).await,
        Err("42501".into())
    );
    // Without claims, nothing can be written at all.
    let insert_a = format!(
        "INSERT INTO revoked_tokens (jti, tenant_id, expires_at) VALUES ('{}', '{a}', now())",
        TokenId::random()
    );
    assert_eq!(
        sqlstate_of(&mut app, "{}", &insert_a).await,
        Err("42501".into())
    );
    // The audit trail is append-only for the app role, even in its own tenant.
    assert_eq!(
        sqlstate_of(&mut app, &ca, "UPDATE audit_events SET actor = 'x'").await,
        Err("42501".into())
    );
    assert_eq!(
        sqlstate_of(&mut app, &ca, "DELETE FROM audit_events").await,
        Err("42501".into())
    );
    // And the app role cannot switch RLS off or become someone else.
    assert_eq!(
        sqlstate_of(
            &mut app,
            &ca,
            "ALTER TABLE api_keys DISABLE ROW LEVEL SECURITY"
        )
        .await,
        Err("42501".into())
    );
    assert_eq!(
        sqlstate_of(
            &mut app,
            &ca,
            "ALTER TABLE api_keys NO FORCE ROW LEVEL SECURITY"
        )
        .await,
        Err("42501".into())
    );
    assert_eq!(
        sqlstate_of(&mut app, &ca, "SET ROLE postgres").await,
        Err("42501".into())
    );
    assert_eq!(
        sqlstate_of(&mut app, &ca, "DROP POLICY tenant_isolation ON api_keys").await,
        Err("42501".into())
    );
    assert_eq!(
        sqlstate_of(&mut app, &ca, "CREATE FUNCTION rampart_current_tenant() RETURNS uuid LANGUAGE sql AS 'SELECT NULL::uuid'").await,
        Err("42501".into())
    );
    app.close().await.unwrap();
    owner.close().await.unwrap();
    store.close().await;
    db.drop_db().await;
}

#[tokio::test]
async fn a_privileged_app_role_is_refused_at_start_up() {
    let db = PgTestDb::create().await;
    // Serving requests with the superuser URL would bypass RLS: refuse to start.
    let err = Store::open(&StoreOptions {
        url: SecretString::new(db.owner_url.clone()),
        app_url: Some(SecretString::new(db.owner_url.clone())),
        app_role: db.app_role.clone(),
        app_password: None,
        max_connections: 1,
    })
    .await
    .unwrap_err();
    assert!(matches!(err, StoreError::Setup(_)), "{err}");
    assert!(
        err.to_string().contains("bypass row-level security"),
        "{err}"
    );
    db.drop_db().await;
}
