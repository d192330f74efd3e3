//! One store test suite, run against both backends: SQLite (a temp file) and Postgres (a fresh
//! database on the test server). Whatever one engine guarantees, the other must too.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests"
)]

use std::sync::Arc;

use rampart_crypto::SecretString;
use rampart_identity::{ApiKeyId, RefreshTokenId};
use rampart_secrets::SealedValue;
use rampart_store::{
    ApiKeyRecord, Cas, DocumentKind, DocumentVersionRecord, FamilyRecord, LedgerKeyRecord,
    LedgerPosition, Lookup, ProfileKind, RefreshRecord, Scope, SentinelKeyRecord, SentinelStamp,
    SigningKeyRecord, Store, StoreError, StoreOptions, TenantKeyRecord, TenantKeyState,
    TenantRecord, TenantScope,
};
use rampart_testkit::PgTestDb;
use rampart_types::{
    AuditAction, AuditEvent, Capability, CapabilitySet, CascadeId, FamilyId, Outcome, TenantId,
    Timestamp, TokenId,
};
use serde_json::json;

fn pos(log: &str, index: u64) -> LedgerPosition {
    LedgerPosition {
        log: log.into(),
        index,
    }
}

fn t(s: i64) -> Timestamp {
    Timestamp::from_unix_seconds(1_800_000_000 + s)
}

fn scope(tenant: TenantId) -> Scope {
    Scope::Tenant(TenantScope {
        tenant,
        subject: "test".into(),
        platform: false,
    })
}

fn platform(system: TenantId) -> Scope {
    Scope::Tenant(TenantScope {
        tenant: system,
        subject: "operator".into(),
        platform: true,
    })
}

/// The lineage of a token of the API key `aaaaaaaaaaaa`.
fn lineage() -> Vec<String> {
    vec!["tenant".to_owned(), "apikey:aaaaaaaaaaaa".to_owned()]
}

fn key_id(s: &str) -> ApiKeyId {
    s.parse().unwrap()
}

fn rt_id(s: &str) -> RefreshTokenId {
    RefreshTokenId::parse(s).unwrap()
}

fn api_key(id: &str, tenant: TenantId) -> ApiKeyRecord {
    ApiKeyRecord {
        id: key_id(id),
        tenant_id: tenant,
        name: format!("key {id}"),
        secret_hash: vec![1; 32],
        capabilities: [Capability::AuditRead].into_iter().collect(),
        created_by: "test".into(),
        created_at: t(0),
        expires_at: t(1000),
        revoked_at: None,
        last_used_at: None,
        rotated_from: None,
        rotated_to: None,
        agent_id: None,
    }
}

fn family(tenant: TenantId, key: &str) -> FamilyRecord {
    FamilyRecord {
        id: FamilyId::random(),
        tenant_id: tenant,
        subject: format!("apikey:{key}"),
        api_key_id: key_id(key),
        capabilities: CapabilitySet::empty(),
        created_at: t(0),
        expires_at: t(1000),
        revoked_at: None,
        revoked_reason: None,
    }
}

fn refresh(id: &str, tenant: TenantId, fam: FamilyId) -> RefreshRecord {
    RefreshRecord {
        id: rt_id(id),
        tenant_id: tenant,
        family_id: fam,
        secret_hash: vec![2; 32],
        created_at: t(0),
        expires_at: t(500),
        used_at: None,
        successor_id: None,
        successor_sealed: None,
    }
}

fn event(tenant: TenantId, action: AuditAction) -> AuditEvent {
    AuditEvent {
        tenant_id: tenant,
        request_id: None,
        actor: "test".into(),
        action,
        resource: format!("tenant:{tenant}"),
        outcome: Outcome::Success,
        detail: json!({"why": "suite"}),
        at: t(1),
    }
}

struct World {
    a: TenantId,
    b: TenantId,
    fam_a: FamilyId,
    fam_b: FamilyId,
}

/// Two tenants with one row in every tenant-owned table each.
async fn seed(store: &Store) -> World {
    let a = TenantId::random();
    let b = TenantId::random();
    let mut fams = Vec::new();
    for (tenant, name, key, rt) in [
        (a, "tenant-a", "aaaaaaaaaaaa", "aaaaaaaaaaaaaaaa"),
        (b, "tenant-b", "bbbbbbbbbbbb", "bbbbbbbbbbbbbbbb"),
    ] {
        let mut tx = store.begin(scope(tenant)).await.unwrap();
        tx.insert_tenant(&TenantRecord {
            id: tenant,
            name: name.into(),
            created_at: t(0),
        })
        .await
        .unwrap();
        tx.insert_api_key(&api_key(key, tenant)).await.unwrap();
        let f = family(tenant, key);
        tx.insert_family(&f).await.unwrap();
        tx.insert_refresh(&refresh(rt, tenant, f.id)).await.unwrap();
        tx.revoke_token_id(tenant, TokenId::random(), t(900))
            .await
            .unwrap();
        tx.append_audit(
            &event(tenant, AuditAction::TenantCreate),
            Some(&pos("node-1", 7)),
        )
        .await
        .unwrap();
        tx.insert_ledger_key(&LedgerKeyRecord {
            tenant_id: tenant,
            generation: 1,
            sealed_key: Some(vec![9; 61]),
            created_at: t(0),
            destroyed_at: None,
        })
        .await
        .unwrap();
        tx.commit().await.unwrap();
        fams.push(f.id);
    }
    World {
        a,
        b,
        fam_a: fams[0],
        fam_b: fams[1],
    }
}

async fn suite(store: &Store) {
    let w = seed(store).await;

    // Reads never cross tenants.
    let mut tx = store.begin_read(scope(w.a)).await.unwrap();
    assert!(tx.get_tenant(w.a).await.unwrap().is_some());
    assert!(tx.get_tenant(w.b).await.unwrap().is_none());
    assert_eq!(tx.list_tenants().await.unwrap().len(), 1);
    assert!(
        tx.get_api_key(w.b, &key_id("bbbbbbbbbbbb"))
            .await
            .unwrap()
            .is_none()
    );
    assert!(tx.list_api_keys(w.b).await.unwrap().is_empty());
    assert_eq!(tx.list_api_keys(w.a).await.unwrap().len(), 1);
    assert!(tx.get_family(w.b, w.fam_b).await.unwrap().is_none());
    assert!(tx.list_audit(w.b, 0, 100).await.unwrap().is_empty());
    assert_eq!(tx.list_audit(w.a, 0, 100).await.unwrap().len(), 1);
    assert!(
        !tx.token_liveness(w.b, w.fam_b, TokenId::random(), &lineage(), 0)
            .await
            .unwrap()
            .is_live()
    );
    assert!(
        tx.token_liveness(w.a, w.fam_a, TokenId::random(), &lineage(), 0)
            .await
            .unwrap()
            .is_live()
    );
    // A family id from another tenant does not resolve under this tenant.
    assert!(
        !tx.token_liveness(w.a, w.fam_b, TokenId::random(), &lineage(), 0)
            .await
            .unwrap()
            .is_live()
    );
    // Lookups work only in a lookup scope for that very id.
    assert!(
        tx.lookup_api_key(&key_id("aaaaaaaaaaaa"))
            .await
            .unwrap()
            .is_none()
    );
    drop(tx);

    // Writes never cross tenants.
    let mut tx = store.begin(scope(w.a)).await.unwrap();
    assert!(matches!(
        tx.insert_api_key(&api_key("cccccccccccc", w.b)).await,
        Err(StoreError::ScopeViolation)
    ));
    assert!(matches!(
        tx.revoke_api_key(w.b, &key_id("bbbbbbbbbbbb"), t(5)).await,
        Err(StoreError::ScopeViolation)
    ));
    assert!(matches!(
        tx.append_audit(&event(w.b, AuditAction::TenantCreate), None)
            .await,
        Err(StoreError::ScopeViolation)
    ));
    tx.rollback().await.unwrap();

    // The platform operator sees every tenant, and nothing else of theirs.
    let mut tx = store.begin_read(platform(w.a)).await.unwrap();
    let names: Vec<String> = tx
        .list_tenants()
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.name)
        .collect();
    assert!(names.contains(&"tenant-a".into()) && names.contains(&"tenant-b".into()));
    assert!(
        tx.get_api_key(w.b, &key_id("bbbbbbbbbbbb"))
            .await
            .unwrap()
            .is_none()
    );
    drop(tx);

    // Tenant names are unique.
    let mut tx = store.begin(platform(w.a)).await.unwrap();
    let dup = tx
        .insert_tenant(&TenantRecord {
            id: TenantId::random(),
            name: "tenant-b".into(),
            created_at: t(0),
        })
        .await;
    assert!(matches!(dup, Err(StoreError::Conflict(_))), "{dup:?}");
    drop(tx);

    // Credential lookups by public id.
    let id = key_id("bbbbbbbbbbbb");
    let mut tx = store
        .begin_read(Scope::Lookup(Lookup::ApiKey(id.clone())))
        .await
        .unwrap();
    let k = tx.lookup_api_key(&id).await.unwrap().unwrap();
    assert_eq!(k.tenant_id, w.b);
    assert!(
        tx.lookup_api_key(&key_id("aaaaaaaaaaaa"))
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        tx.get_api_key(w.b, &id).await.unwrap().is_none(),
        "lookup scope is not tenant scope"
    );
    drop(tx);
    let rid = rt_id("aaaaaaaaaaaaaaaa");
    let mut tx = store
        .begin(Scope::Lookup(Lookup::RefreshToken(rid.clone())))
        .await
        .unwrap();
    let r = tx.lookup_refresh(&rid).await.unwrap().unwrap();
    assert_eq!(r.family_id, w.fam_a);
    // Moving the transaction to the tenant unlocks the tenant's rows.
    tx.set_scope(scope(w.a)).await.unwrap();
    let locked = tx.get_refresh_for_update(w.a, &rid).await.unwrap().unwrap();
    assert_eq!(locked.used_at, None);
    assert!(
        tx.mark_refresh_used(w.a, &rid, t(10), &rt_id("succsuccsuccsucc"), b"sealed")
            .await
            .unwrap()
    );
    assert!(
        !tx.mark_refresh_used(w.a, &rid, t(11), &rt_id("otherotherothero"), b"x")
            .await
            .unwrap()
    );
    tx.commit().await.unwrap();
    let mut tx = store.begin(scope(w.a)).await.unwrap();
    let r = tx.get_refresh_for_update(w.a, &rid).await.unwrap().unwrap();
    assert_eq!(r.used_at, Some(t(10)));
    assert_eq!(r.successor_id, Some(rt_id("succsuccsuccsucc")));
    assert_eq!(r.successor_sealed.as_deref(), Some(&b"sealed"[..]));
    assert_eq!(tx.refresh_used(w.a, &rid).await.unwrap(), Some(true));
    drop(tx);

    // A principal's revocation takes the tenant's next epoch and kills every token of its
    // lineage minted at an earlier one, and no other.
    let mut tx = store.begin(scope(w.a)).await.unwrap();
    assert_eq!(tx.revocation_epoch(w.a).await.unwrap(), 0);
    let cascade = CascadeId::random();
    let agent = "agent:00000000-0000-4000-8000-000000000001";
    let epoch = tx
        .revoke_principal(w.a, agent, cascade, "test", "apikey:aaaaaaaaaaaa", t(15))
        .await
        .unwrap();
    assert_eq!(epoch, 1);
    assert_eq!(tx.revocation_epoch(w.a).await.unwrap(), 1);
    let agent_lineage = ["tenant".to_owned(), agent.to_owned()];
    let before = tx
        .token_liveness(w.a, w.fam_a, TokenId::random(), &agent_lineage, 0)
        .await
        .unwrap();
    assert!(before.lineage_revoked && !before.is_live());
    let after = tx
        .token_liveness(w.a, w.fam_a, TokenId::random(), &agent_lineage, 1)
        .await
        .unwrap();
    assert!(after.is_live());
    assert!(
        tx.token_liveness(w.a, w.fam_a, TokenId::random(), &lineage(), 0)
            .await
            .unwrap()
            .is_live()
    );
    let too_long = vec![agent.to_owned(); 7];
    assert!(
        !tx.token_liveness(w.a, w.fam_a, TokenId::random(), &too_long, 1)
            .await
            .unwrap()
            .is_live()
    );
    let recorded = tx.principal_revocations(w.a, agent).await.unwrap();
    assert_eq!(recorded.len(), 1);
    assert_eq!((recorded[0].epoch, recorded[0].cascade_id), (1, cascade));
    tx.commit().await.unwrap();
    // Another tenant's epochs are its own.
    let mut tx = store.begin(scope(w.b)).await.unwrap();
    assert_eq!(tx.revocation_epoch(w.b).await.unwrap(), 0);
    assert!(
        tx.principal_revocations(w.a, agent)
            .await
            .unwrap()
            .is_empty()
    );
    drop(tx);

    // Revocation is visible to liveness checks at once.
    let jti = TokenId::random();
    let mut tx = store.begin(scope(w.a)).await.unwrap();
    tx.revoke_token_id(w.a, jti, t(900)).await.unwrap();
    tx.revoke_token_id(w.a, jti, t(900)).await.unwrap();
    let live = tx
        .token_liveness(w.a, w.fam_a, jti, &lineage(), 0)
        .await
        .unwrap();
    assert!(live.family_live && live.jti_revoked);
    assert!(tx.revoke_family(w.a, w.fam_a, t(20), "test").await.unwrap());
    assert!(
        !tx.revoke_family(w.a, w.fam_a, t(21), "again")
            .await
            .unwrap()
    );
    assert!(
        !tx.token_liveness(w.a, w.fam_a, TokenId::random(), &lineage(), 0)
            .await
            .unwrap()
            .family_live
    );
    let f = tx.get_family(w.a, w.fam_a).await.unwrap().unwrap();
    assert_eq!(f.revoked_reason.as_deref(), Some("test"));
    tx.commit().await.unwrap();

    // Keys: rotation happens once; revocation once; revoking a key's families.
    let mut tx = store.begin(scope(w.a)).await.unwrap();
    let a_key = key_id("aaaaaaaaaaaa");
    let next = key_id("a2a2a2a2a2a2");
    let mut successor = api_key("a2a2a2a2a2a2", w.a);
    successor.rotated_from = Some(a_key.clone());
    tx.insert_api_key(&successor).await.unwrap();
    assert!(
        tx.record_api_key_rotation(w.a, &a_key, &next, t(100))
            .await
            .unwrap()
    );
    assert!(
        !tx.record_api_key_rotation(w.a, &a_key, &key_id("a3a3a3a3a3a3"), t(50))
            .await
            .unwrap()
    );
    let old = tx.get_api_key(w.a, &a_key).await.unwrap().unwrap();
    assert_eq!(old.expires_at, t(100));
    assert_eq!(old.rotated_to, Some(next.clone()));
    assert!(tx.touch_api_key(w.a, &next, t(30)).await.unwrap());
    let f2 = family(w.a, "a2a2a2a2a2a2");
    tx.insert_family(&f2).await.unwrap();
    assert_eq!(
        tx.revoke_families_of_key(w.a, &next, t(40), "key revoked")
            .await
            .unwrap(),
        1
    );
    assert!(tx.revoke_api_key(w.a, &next, t(40)).await.unwrap());
    assert!(!tx.revoke_api_key(w.a, &next, t(41)).await.unwrap());
    let k = tx.get_api_key(w.a, &next).await.unwrap().unwrap();
    assert_eq!(k.last_used_at, Some(t(30)));
    assert!(!k.is_usable(t(50)));
    tx.commit().await.unwrap();

    // The audit trail is ordered and round-trips.
    let mut tx = store.begin(scope(w.b)).await.unwrap();
    let s1 = tx
        .append_audit(&event(w.b, AuditAction::ApiKeyCreate), None)
        .await
        .unwrap();
    let s2 = tx
        .append_audit(&event(w.b, AuditAction::ApiKeyUse), Some(&pos("node-1", 8)))
        .await
        .unwrap();
    assert!(s2 > s1);
    tx.commit().await.unwrap();
    let mut tx = store.begin_read(scope(w.b)).await.unwrap();
    let all = tx.list_audit(w.b, 0, 10).await.unwrap();
    assert_eq!(all.len(), 3);
    assert_eq!(all[2].event, event(w.b, AuditAction::ApiKeyUse));
    assert_eq!(tx.list_audit(w.b, s1, 10).await.unwrap().len(), 1);
    assert_eq!(all[0].ledger, Some(pos("node-1", 7)));
    assert_eq!(all[1].ledger, None);
    let at8 = tx
        .audit_at_ledger_position(w.b, "node-1", 8)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(at8.event.action, AuditAction::ApiKeyUse);
    // Another tenant's, another log's, an index beyond any: none.
    assert!(
        tx.audit_at_ledger_position(w.a, "node-1", 8)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        tx.audit_at_ledger_position(w.b, "node-2", 8)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        tx.audit_at_ledger_position(w.b, "node-1", u64::MAX)
            .await
            .unwrap()
            .is_none()
    );
    drop(tx);

    // Ledger keys: per tenant, generations, destruction.
    let mut tx = store.begin(scope(w.b)).await.unwrap();
    assert!(
        !tx.insert_ledger_key(&LedgerKeyRecord {
            tenant_id: w.b,
            generation: 1,
            sealed_key: Some(vec![1]),
            created_at: t(1),
            destroyed_at: None,
        })
        .await
        .unwrap(),
        "a generation is written once"
    );
    assert_eq!(
        tx.ledger_keys(w.b).await.unwrap()[0].sealed_key,
        Some(vec![9; 61])
    );
    assert!(
        tx.ledger_keys(w.a).await.unwrap().is_empty(),
        "another tenant's keys are invisible"
    );
    assert_eq!(tx.destroy_ledger_keys(w.b, t(2)).await.unwrap(), 1);
    let keys = tx.ledger_keys(w.b).await.unwrap();
    assert_eq!(keys[0].sealed_key, None);
    assert_eq!(keys[0].destroyed_at, Some(t(2)));
    assert_eq!(tx.destroy_ledger_keys(w.b, t(3)).await.unwrap(), 0);
    tx.commit().await.unwrap();

    // Global rows: metadata is write-once; signing keys retire once.
    let mut tx = store.begin(Scope::Global).await.unwrap();
    assert!(tx.insert_meta("k", "v1").await.unwrap());
    assert!(!tx.insert_meta("k", "v2").await.unwrap());
    assert_eq!(tx.get_meta("k").await.unwrap().as_deref(), Some("v1"));
    tx.lock_signing_keys().await.unwrap();
    let key = SigningKeyRecord {
        kid: "kid-1".into(),
        public_key: vec![3; 32],
        sealed_seed: vec![4; 61],
        created_at: t(0),
        retired_at: None,
        verify_until: None,
    };
    tx.insert_signing_key(&key).await.unwrap();
    assert!(tx.retire_signing_key("kid-1", t(5), t(905)).await.unwrap());
    assert!(!tx.retire_signing_key("kid-1", t(6), t(906)).await.unwrap());
    let keys = tx.list_signing_keys().await.unwrap();
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0].verify_until, Some(t(905)));
    // No tenant row is visible in the global scope.
    assert!(tx.get_tenant(w.a).await.unwrap().is_none());
    tx.commit().await.unwrap();

    // Purging drops expired deny-list entries.
    let mut tx = store.begin(scope(w.b)).await.unwrap();
    assert!(tx.purge_expired(w.b, t(950)).await.unwrap() >= 1);
    tx.commit().await.unwrap();

    gateway_usage_counts_calls_spend_and_active_minutes(store, w.a).await;
    sentinel_stamp_moves_with_every_input(store, w.a, w.b).await;
    concurrent_refresh_use_has_one_winner(store, w.b).await;
}

/// The stamp a cached redaction context is checked against changes with each thing the context
/// is made of, and only with that.
async fn sentinel_stamp_moves_with_every_input(store: &Store, tenant: TenantId, other: TenantId) {
    let mut tx = store.begin(scope(tenant)).await.unwrap();
    let mut expected = SentinelStamp::default();
    assert_eq!(tx.sentinel_stamp(tenant).await.unwrap(), expected);
    assert!(expected.needs_setup());

    tx.insert_document_version(
        DocumentKind::SentinelPolicy,
        &DocumentVersionRecord {
            tenant_id: tenant,
            version: 1,
            document: json!({}),
            created_by: "test".into(),
            created_at: t(1),
        },
    )
    .await
    .unwrap();
    expected.policy_version = 1;
    assert_eq!(tx.sentinel_stamp(tenant).await.unwrap(), expected);

    tx.insert_sentinel_key(&SentinelKeyRecord {
        tenant_id: tenant,
        generation: 1,
        sealed_key: Some(vec![1; 40]),
        created_at: t(1),
        destroyed_at: None,
    })
    .await
    .unwrap();
    expected.key_generation = Some(1);
    assert_eq!(tx.sentinel_stamp(tenant).await.unwrap(), expected);
    assert!(!expected.needs_setup());

    tx.insert_tenant_key(&TenantKeyRecord {
        tenant_id: tenant,
        version: 1,
        sealed_key: Some(vec![2; 40]),
        state: TenantKeyState::Active,
        created_at: t(1),
        retired_at: None,
        revoked_at: None,
    })
    .await
    .unwrap();
    let version = tx
        .next_secret_version(tenant, "llm/key", Cas::Absent, t(1))
        .await
        .unwrap()
        .unwrap();
    let sealed = SealedValue {
        key_version: 1,
        wrapped_dek: vec![3; 40],
        ciphertext: vec![4; 40],
    };
    tx.insert_secret_version(tenant, "llm/key", version, &sealed, t(1))
        .await
        .unwrap();
    expected.unfingerprinted = true;
    assert_eq!(tx.sentinel_stamp(tenant).await.unwrap(), expected);
    assert!(expected.needs_setup());

    tx.insert_sentinel_fingerprints(tenant, "llm/key", version, &[5; 16])
        .await
        .unwrap();
    expected.unfingerprinted = false;
    expected.fingerprinted = 1;
    assert_eq!(tx.sentinel_stamp(tenant).await.unwrap(), expected);

    tx.destroy_secret_versions(tenant, "llm/key", &[version], t(2))
        .await
        .unwrap();
    expected.destroyed_versions = 1;
    assert_eq!(tx.sentinel_stamp(tenant).await.unwrap(), expected);

    assert!(tx.retire_tenant_key(tenant, t(2)).await.unwrap());
    assert!(tx.revoke_tenant_key(tenant, 1, t(2)).await.unwrap());
    expected.revoked_keks = 1;
    assert_eq!(tx.sentinel_stamp(tenant).await.unwrap(), expected);

    tx.destroy_sentinel_key(tenant, 1, t(3)).await.unwrap();
    expected.key_generation = None;
    assert_eq!(tx.sentinel_stamp(tenant).await.unwrap(), expected);
    tx.commit().await.unwrap();

    // Another tenant's stamp is untouched, and this scope cannot read it.
    let mut tx = store.begin_read(scope(other)).await.unwrap();
    assert_eq!(
        tx.sentinel_stamp(other).await.unwrap(),
        SentinelStamp::default()
    );
    assert_eq!(
        tx.sentinel_stamp(tenant).await.unwrap(),
        SentinelStamp::default()
    );
}

/// Usage counters: calls, tokens and spend add up; the window restarts each minute, and
/// active minutes count the minutes with a call. Profiles keep each name once.
async fn gateway_usage_counts_calls_spend_and_active_minutes(store: &Store, tenant: TenantId) {
    let mut tx = store.begin(scope(tenant)).await.unwrap();
    let zero = tx.gateway_usage(tenant, "agent:u").await.unwrap();
    assert_eq!(
        (zero.calls, zero.active_minutes, zero.spend_usd_micros),
        (0, 0, 0)
    );
    for (tokens, spend, minute) in [(10, 65, 100), (5, 1, 100), (7, 2, 103)] {
        tx.add_gateway_usage(tenant, "agent:u", tokens, spend, minute)
            .await
            .unwrap();
    }
    let u = tx.gateway_usage(tenant, "agent:u").await.unwrap();
    assert_eq!((u.calls, u.tokens, u.spend_usd_micros), (3, 22, 68));
    assert_eq!((u.window_start, u.window_calls), (103, 1));
    assert_eq!((u.profile_calls, u.active_minutes), (3, 2));
    let gpt = ["gpt-4o".to_owned()];
    for _ in 0..2 {
        tx.add_gateway_profile(tenant, "agent:u", ProfileKind::Model, &gpt, t(1))
            .await
            .unwrap();
    }
    for (subject, kind, seen) in [
        ("agent:u", ProfileKind::Model, true),
        ("agent:u", ProfileKind::Tool, false),
        ("agent:v", ProfileKind::Model, false),
    ] {
        let known = tx
            .gateway_profile_known(tenant, subject, kind, &gpt)
            .await
            .unwrap();
        assert_eq!(known == gpt, seen, "{subject} {kind:?}");
        assert!(seen || known.is_empty());
    }
    tx.commit().await.unwrap();
}

/// Two transactions race to use one refresh token: exactly one wins.
async fn concurrent_refresh_use_has_one_winner(store: &Store, tenant: TenantId) {
    let rid = rt_id("bbbbbbbbbbbbbbbb");
    let store = Arc::new(store.clone());
    let mut handles = Vec::new();
    for i in 0..8 {
        let store = store.clone();
        let rid = rid.clone();
        handles.push(tokio::spawn(async move {
            let mut tx = store.begin(scope(tenant)).await.unwrap();
            let r = tx
                .get_refresh_for_update(tenant, &rid)
                .await
                .unwrap()
                .unwrap();
            if r.used_at.is_some() {
                return false;
            }
            let successor = rt_id(&format!("winner{i:010}"));
            let won = tx
                .mark_refresh_used(tenant, &rid, t(30), &successor, b"s")
                .await
                .unwrap();
            tx.commit().await.unwrap();
            won
        }));
    }
    let mut winners = 0;
    for h in handles {
        if h.await.unwrap() {
            winners += 1;
        }
    }
    assert_eq!(winners, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_backend() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("rampart.db").display());
    let store = Store::open(&StoreOptions {
        url: SecretString::new(url.clone()),
        app_url: None,
        app_role: String::new(),
        app_password: None,
        max_connections: 4,
    })
    .await
    .unwrap();
    suite(&store).await;
    store.close().await;
    // Reopening finds the schema applied and the data kept.
    let store = Store::open(&StoreOptions {
        url: SecretString::new(url),
        app_url: None,
        app_role: String::new(),
        app_password: None,
        max_connections: 4,
    })
    .await
    .unwrap();
    let mut tx = store.begin_read(Scope::Global).await.unwrap();
    assert_eq!(tx.get_meta("k").await.unwrap().as_deref(), Some("v1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_backend() {
    let db = PgTestDb::create().await;
    let store = Store::open(&StoreOptions {
        url: SecretString::new(db.owner_url.clone()),
        app_url: None,
        app_role: db.app_role.clone(),
        app_password: Some(SecretString::new("a".repeat(64))),
        max_connections: 8,
    })
    .await
    .unwrap();
    suite(&store).await;
    store.close().await;
    // Opening again (a restart, or a second node) is idempotent.
    let store = Store::open(&StoreOptions {
        url: SecretString::new(db.owner_url.clone()),
        app_url: None,
        app_role: db.app_role.clone(),
        app_password: Some(SecretString::new("a".repeat(64))),
        max_connections: 2,
    })
    .await
    .unwrap();
    store.close().await;
    db.drop_db().await;
}

#[tokio::test]
async fn unsupported_urls_are_refused() {
    let err = Store::open(&StoreOptions {
        url: SecretString::new("mysql://root@localhost/db".into()),
        app_url: None,
        app_role: String::new(),
        app_password: None,
        max_connections: 1,
    })
    .await
    .unwrap_err();
    assert!(err.to_string().contains("sqlite://"), "{err}");
}
