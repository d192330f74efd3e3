//! The tamper-evident ledger through the HTTP API: a tenant reads only its own entries; proofs
//! and checkpoints are checked by independent implementations (Cloudflare's `tlog_tiles` and
//! `signed_note`); receipts wait for a checkpoint; erasure leaves every proof valid; the public
//! `/tlog/` tiles let a generic client authenticate the whole log and reveal nothing but sizes.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests"
)]

mod common;

use std::time::Duration;

use axum::http::{Method, StatusCode};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use common::{Backend, TestApp};
use rampart_ledger::note::NoteVerifier;
use rampart_ledger::verify::verify_zone;
use rampart_ledger::zone::LocalZone;
use serde_json::{Value, json};
use signed_note::{Note, StandardVerifier, VerifierList};

fn hash(v: &Value) -> tlog_tiles::Hash {
    let bytes = STANDARD.decode(v.as_str().unwrap()).unwrap();
    tlog_tiles::Hash(bytes.try_into().unwrap())
}

fn hashes(v: &Value) -> Vec<tlog_tiles::Hash> {
    v.as_array().unwrap().iter().map(hash).collect()
}

/// Verifies a signed checkpoint note with `signed_note` and parses it with `tlog_tiles`.
fn open_checkpoint(vkey: &str, note: &str) -> tlog_tiles::Checkpoint {
    let verifier = StandardVerifier::new(vkey).expect("their library parses our verifier key");
    let known = VerifierList::new(vec![Box::new(verifier)]);
    let note = Note::from_bytes(note.as_bytes()).unwrap();
    note.verify(&known)
        .expect("their library verifies the checkpoint");
    tlog_tiles::Checkpoint::from_bytes(note.text()).unwrap()
}

async fn verifier_key(app: &TestApp) -> String {
    let r = app
        .call(Method::GET, "/v1/audit/verifier-key", None, None)
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(
        r.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    r.text.trim_end().to_owned()
}

/// The ledger indexes of a tenant's audit records, oldest first.
async fn ledger_indexes(app: &TestApp, token: &str, tenant: Option<&str>) -> Vec<u64> {
    let path = match tenant {
        Some(t) => format!("/v1/audit/events?limit=1000&tenant_id={t}"),
        None => "/v1/audit/events?limit=1000".to_owned(),
    };
    let r = app.get(&path, token).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    r.body["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            e["ledger_index"]
                .as_u64()
                .expect("every record is in the ledger")
        })
        .collect()
}

async fn publish(app: &TestApp) -> Value {
    let op = app.operator_token().await;
    let r = app.post("/v1/audit/checkpoint", &op, json!({})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    r.body
}

/// Checks an inclusion proof from the API with `tlog_tiles`, against a checkpoint verified with
/// `signed_note`.
fn check_inclusion(vkey: &str, view: &Value, leaf: &Value) {
    let cp = open_checkpoint(vkey, view["checkpoint"]["note"].as_str().unwrap());
    let size = view["size"].as_u64().unwrap();
    assert_eq!(cp.size(), size);
    assert_eq!(&view["leaf_hash"], leaf);
    tlog_tiles::check_record(
        &hashes(&view["proof"]),
        size,
        *cp.hash(),
        view["index"].as_u64().unwrap(),
        hash(leaf),
    )
    .expect("their library verifies our inclusion proof");
}

async fn entries_are_tenant_scoped_and_provable(b: Backend) {
    let app = TestApp::start(b).await;
    let vkey = verifier_key(&app).await;
    let (tenant_a, key_a) = app.tenant_with_admin("acme").await;
    let (_, key_b) = app.tenant_with_admin("globex").await;
    let a = app.tokens(&key_a).await.access;
    let b_tok = app.tokens(&key_b).await.access;
    let first = publish(&app).await;

    // Something worth recording in A's trail.
    app.create_key(&a, None, &["audit:read"]).await;
    let indexes = ledger_indexes(&app, &a, None).await;
    assert!(indexes.len() >= 2, "{indexes:?}");
    let idx = *indexes.last().unwrap();

    // A reads its entry, opened with its key; the leaf hash covers the sealed bytes.
    let r = app.get(&format!("/v1/audit/entries/{idx}"), &a).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["index"], idx);
    assert_eq!(r.body["erased"], false);
    let record = &r.body["record"];
    assert_eq!(record["tenant_id"], tenant_a.as_str());
    assert_eq!(record["action"], "apikey.create");
    assert_eq!(record["decision"], "success");
    let sealed = STANDARD.decode(r.body["entry"].as_str().unwrap()).unwrap();
    assert_eq!(
        tlog_tiles::record_hash(&sealed),
        hash(&r.body["leaf_hash"]),
        "RFC 6962 leaf hash of the stored entry"
    );
    assert!(
        !String::from_utf8_lossy(&sealed).contains("apikey.create"),
        "entries are sealed, not plain"
    );
    let leaf = r.body["leaf_hash"].clone();

    // B cannot read it, nor prove it, nor learn it exists: the same 404 as a missing index.
    for path in [
        format!("/v1/audit/entries/{idx}"),
        format!("/v1/audit/proofs/inclusion?index={idx}"),
        format!("/v1/audit/receipts/{idx}?wait=0s"),
    ] {
        app.get(&path, &b_tok)
            .await
            .assert_problem(404, "not-found");
    }
    app.get("/v1/audit/entries/999999", &a)
        .await
        .assert_problem(404, "not-found");
    // A tenant may not read another's trail by naming it.
    let r = app
        .get(
            &format!("/v1/audit/entries/{idx}?tenant_id={tenant_a}"),
            &b_tok,
        )
        .await;
    assert!(matches!(r.status.as_u16(), 403 | 404), "{}", r.text);
    // The platform operator may.
    let op = app.operator_token().await;
    let r = app
        .get(
            &format!("/v1/audit/entries/{idx}?tenant_id={tenant_a}"),
            &op,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);

    // Not in a checkpoint yet: the inclusion endpoint says so and points at receipts.
    let r = app
        .get(&format!("/v1/audit/proofs/inclusion?index={idx}"), &a)
        .await;
    r.assert_problem(404, "not-found");
    assert!(r.text.contains("receipts"), "{}", r.text);

    // After a checkpoint: an inclusion proof that their library verifies.
    let second = publish(&app).await;
    let r = app
        .get(&format!("/v1/audit/proofs/inclusion?index={idx}"), &a)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    check_inclusion(&vkey, &r.body, &leaf);

    // The GET checkpoint is the latest one, signed and well formed.
    let r = app.get("/v1/audit/checkpoint", &a).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body, second);
    let cp = open_checkpoint(&vkey, second["note"].as_str().unwrap());
    assert_eq!(cp.origin(), second["origin"].as_str().unwrap());
    assert_eq!(*cp.hash(), hash(&second["root_hash"]));

    // Consistency between the two checkpoints, checked by their library.
    let (m, n) = (
        first["size"].as_u64().unwrap(),
        second["size"].as_u64().unwrap(),
    );
    assert!(m < n);
    let r = app
        .get(&format!("/v1/audit/proofs/consistency?from={m}&to={n}"), &a)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["from_root"], first["root_hash"]);
    assert_eq!(r.body["to_root"], second["root_hash"]);
    tlog_tiles::check_tree(
        &hashes(&r.body["proof"]),
        n,
        hash(&second["root_hash"]),
        m,
        hash(&first["root_hash"]),
    )
    .expect("their library verifies our consistency proof");
    // `to` defaults to the latest checkpoint.
    let r2 = app
        .get(&format!("/v1/audit/proofs/consistency?from={m}"), &a)
        .await;
    assert_eq!(r2.body, r.body);
    // Bad sizes: problems, not panics.
    app.get(&format!("/v1/audit/proofs/consistency?from={n}&to={m}"), &a)
        .await
        .assert_problem(400, "invalid-query");
    app.get("/v1/audit/proofs/consistency?from=1&to=99999999", &a)
        .await
        .assert_problem(404, "not-found");
    app.get("/v1/audit/entries/-1", &a)
        .await
        .assert_problem(400, "invalid-path-parameter");

    // Capabilities: entries need audit:read; publishing needs keys:manage.
    let (_, weak) = app.create_key(&a, None, &["apikeys:manage"]).await;
    let weak = app.tokens(&weak).await.access;
    app.get(&format!("/v1/audit/entries/{idx}"), &weak)
        .await
        .assert_problem(403, "forbidden");
    app.post("/v1/audit/checkpoint", &a, json!({}))
        .await
        .assert_problem(403, "forbidden");
    app.call(Method::GET, "/v1/audit/checkpoint", None, None)
        .await
        .assert_problem(401, "unauthenticated");
    app.close().await;
}

async fn receipts_wait_for_a_checkpoint(b: Backend) {
    let app = TestApp::start(b).await;
    let vkey = verifier_key(&app).await;
    let (_, key_a) = app.tenant_with_admin("acme").await;
    let a = app.tokens(&key_a).await.access;
    let idx = *ledger_indexes(&app, &a, None).await.last().unwrap();

    // No checkpoint within the wait: a timeout problem, quickly.
    let r = app
        .get(&format!("/v1/audit/receipts/{idx}?wait=100ms"), &a)
        .await;
    r.assert_problem(503, "timeout");
    app.get(&format!("/v1/audit/receipts/{idx}?wait=soon"), &a)
        .await
        .assert_problem(400, "invalid-query");

    // A waiting receipt is answered by the next checkpoint.
    let waiting = {
        let router = app.router.clone();
        let a = a.clone();
        tokio::spawn(async move {
            let req = axum::http::Request::get(format!("/v1/audit/receipts/{idx}?wait=30s"))
                .header("authorization", format!("Bearer {a}"))
                .body(axum::body::Body::empty())
                .unwrap();
            tower::ServiceExt::oneshot(router, req).await.unwrap()
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!waiting.is_finished(), "the receipt waits for a checkpoint");
    publish(&app).await;
    let res = tokio::time::timeout(Duration::from_secs(10), waiting)
        .await
        .expect("answered once a checkpoint covers the entry")
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let body = http_body_util::BodyExt::collect(res.into_body())
        .await
        .unwrap()
        .to_bytes();
    let view: Value = serde_json::from_slice(&body).unwrap();
    let entry = app.get(&format!("/v1/audit/entries/{idx}"), &a).await;
    check_inclusion(&vkey, &view, &entry.body["leaf_hash"]);
    app.close().await;
}

async fn erasure_keeps_every_proof_valid(b: Backend) {
    let app = TestApp::start(b).await;
    let vkey = verifier_key(&app).await;
    let (tenant_a, key_a) = app.tenant_with_admin("acme").await;
    let (_, key_b) = app.tenant_with_admin("globex").await;
    let a = app.tokens(&key_a).await.access;
    let b_tok = app.tokens(&key_b).await.access;
    let op = app.operator_token().await;
    let a_indexes = ledger_indexes(&app, &op, Some(&tenant_a)).await;
    let b_indexes = ledger_indexes(&app, &b_tok, None).await;
    let before_checkpoint = publish(&app).await;
    let idx = a_indexes[0];
    let before = app
        .get(
            &format!("/v1/audit/entries/{idx}?tenant_id={tenant_a}"),
            &op,
        )
        .await;
    assert_eq!(before.body["erased"], false);

    // Only the platform operator erases.
    app.post(
        "/v1/audit/erase",
        &a,
        json!({ "tenant_id": tenant_a, "reason": "mine" }),
    )
    .await
    .assert_problem(403, "forbidden");
    app.post("/v1/audit/erase", &op, json!({ "tenant_id": tenant_a }))
        .await
        .assert_problem(422, "invalid-body");
    app.post(
        "/v1/audit/erase",
        &op,
        json!({ "tenant_id": tenant_a, "reason": "   " }),
    )
    .await
    .assert_problem(422, "validation-failed");
    let r = app
        .post(
            "/v1/audit/erase",
            &op,
            json!({ "tenant_id": tenant_a, "reason": "GDPR art. 17 request #42" }),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["generations_destroyed"], 1);

    // A's records: same sealed bytes, same leaf hash, unreadable.
    for &i in &a_indexes {
        let r = app
            .get(&format!("/v1/audit/entries/{i}?tenant_id={tenant_a}"), &op)
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert_eq!(r.body["erased"], true);
        assert_eq!(r.body["record"], Value::Null);
        if i == idx {
            assert_eq!(r.body["entry"], before.body["entry"]);
            assert_eq!(r.body["leaf_hash"], before.body["leaf_hash"]);
        }
    }
    // B's are untouched.
    for &i in &b_indexes {
        let r = app.get(&format!("/v1/audit/entries/{i}"), &b_tok).await;
        assert_eq!(r.body["erased"], false, "{}", r.text);
    }
    // Every proof still verifies: inclusion of an erased entry, consistency with the checkpoint
    // published before the erasure.
    let after_checkpoint = publish(&app).await;
    let r = app
        .get(
            &format!("/v1/audit/proofs/inclusion?index={idx}&tenant_id={tenant_a}"),
            &op,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    check_inclusion(&vkey, &r.body, &before.body["leaf_hash"]);
    let (m, n) = (
        before_checkpoint["size"].as_u64().unwrap(),
        after_checkpoint["size"].as_u64().unwrap(),
    );
    let r = app
        .get(
            &format!("/v1/audit/proofs/consistency?from={m}&to={n}"),
            &op,
        )
        .await;
    tlog_tiles::check_tree(
        &hashes(&r.body["proof"]),
        n,
        hash(&after_checkpoint["root_hash"]),
        m,
        hash(&before_checkpoint["root_hash"]),
    )
    .unwrap();

    // The erasure is in the operator's trail; erasing again destroys nothing more.
    let ops = app.audit_actions(&op, None).await;
    assert!(
        ops.contains(&("ledger_keys.destroy".into(), "success".into())),
        "{ops:?}"
    );
    let r = app
        .post(
            "/v1/audit/erase",
            &op,
            json!({ "tenant_id": tenant_a, "reason": "again" }),
        )
        .await;
    assert_eq!(r.body["generations_destroyed"], 0, "{}", r.text);

    // New records of A are sealed under a fresh key and readable.
    app.create_key(&a, None, &["audit:read"]).await;
    let newest = *ledger_indexes(&app, &a, None).await.last().unwrap();
    let r = app.get(&format!("/v1/audit/entries/{newest}"), &a).await;
    assert_eq!(r.body["erased"], false, "{}", r.text);
    assert_eq!(r.body["record"]["action"], "apikey.create");

    // Offline, the whole log still verifies.
    let dir = app.state.config.effective_ledger_zones()[0].clone();
    app.stop().await;
    let zone = LocalZone::open(&dir).unwrap();
    let report = verify_zone(&zone, &NoteVerifier::parse(&vkey).unwrap(), &mut |_, _| {})
        .expect("the log verifies after an erasure");
    assert!(report.entries >= n);
    app.close().await;
}

/// A generic C2SP tlog-tiles client: fetches the checkpoint and tiles from `/tlog/` without
/// credentials, authenticates every tile against the signed root with `tlog_tiles`, and checks
/// the entry bundles hash to the level-0 tiles.
async fn tlog_is_a_verifiable_tiled_log(b: Backend) {
    let app = TestApp::start(b).await;
    let vkey = verifier_key(&app).await;
    let (_, key_a) = app.tenant_with_admin("acme").await;
    let a = app.tokens(&key_a).await.access;
    // Enough records for a full level-0 tile and entry bundle (256) and a partial one after it.
    for _ in 0..300 {
        app.create_key(&a, None, &["audit:read"]).await;
    }
    publish(&app).await;

    let r = app.call(Method::GET, "/tlog/checkpoint", None, None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.headers["cache-control"], "no-cache");
    let cp = open_checkpoint(&vkey, &r.text);
    let size = cp.size();
    assert!(size > 256, "{size}");

    struct Fetched(std::collections::HashMap<String, Vec<u8>>);
    impl tlog_tiles::TileReader for Fetched {
        fn height(&self) -> u8 {
            8
        }
        fn read_tiles(
            &self,
            tiles: &[tlog_tiles::Tile],
        ) -> Result<Vec<Vec<u8>>, tlog_tiles::Error> {
            tiles
                .iter()
                .map(|t| {
                    self.0
                        .get(&c2sp_path(t))
                        .cloned()
                        .ok_or_else(|| tlog_tiles::Error::InvalidInput(c2sp_path(t)))
                })
                .collect()
        }
        fn save_tiles(&self, _: &[tlog_tiles::Tile], _: &[Vec<u8>]) {}
    }
    /// Go's sumdb paths carry the tile height (`tile/8/0/000`); C2SP's drop it (`tile/0/000`).
    fn c2sp_path(t: &tlog_tiles::Tile) -> String {
        t.path().replacen("tile/8/", "tile/", 1)
    }

    // Every tile of the tree, as the client's own library lays them out.
    let mut fetched = std::collections::HashMap::new();
    for t in tlog_tiles::Tile::new_tiles(8, 0, size) {
        let path = c2sp_path(&t);
        let r = app
            .call(Method::GET, &format!("/tlog/{path}"), None, None)
            .await;
        assert_eq!(r.status, StatusCode::OK, "{path}: {}", r.text);
        assert_eq!(r.headers["content-type"], "application/octet-stream");
        fetched.insert(path, r.bytes.clone());
    }
    let reader = Fetched(fetched.clone());
    let hr = tlog_tiles::TileHashReader::new(size, *cp.hash(), &reader);
    assert_eq!(
        tlog_tiles::tree_hash(size, &hr).expect("their library authenticates our tiles"),
        *cp.hash()
    );
    let proof = tlog_tiles::prove_record(size, 3, &hr).unwrap();
    let leaf3 = tlog_tiles::HashReader::read_hashes(&hr, &[tlog_tiles::stored_hash_index(0, 3)])
        .unwrap()[0];
    tlog_tiles::check_record(&proof, size, *cp.hash(), 3, leaf3).unwrap();

    // Entry bundles: big-endian u16 length-prefixed entries whose leaf hashes are the level-0
    // tile's hashes.
    let full = size / 256;
    let mut bundles = Vec::new();
    for n in 0..full {
        bundles.push((
            format!("tile/entries/{n:03}"),
            256usize,
            format!("tile/0/{n:03}"),
        ));
    }
    let w = (size % 256) as usize;
    bundles.push((
        format!("tile/entries/{full:03}.p/{w}"),
        w,
        format!("tile/0/{full:03}.p/{w}"),
    ));
    for (path, count, level0) in bundles {
        let r = app
            .call(Method::GET, &format!("/tlog/{path}"), None, None)
            .await;
        assert_eq!(r.status, StatusCode::OK, "{path}");
        let bytes = r.bytes.clone();
        let mut entries = Vec::new();
        let mut at = 0;
        while at < bytes.len() {
            let len = u16::from_be_bytes([bytes[at], bytes[at + 1]]) as usize;
            entries.push(bytes[at + 2..at + 2 + len].to_vec());
            at += 2 + len;
        }
        assert_eq!(entries.len(), count, "{path}");
        let tile = &fetched[&level0];
        for (k, e) in entries.iter().enumerate() {
            assert_eq!(
                tlog_tiles::record_hash(e).0[..],
                tile[k * 32..(k + 1) * 32],
                "{path} entry {k}"
            );
            // Sealed: nothing of a record's content shows.
            let text = String::from_utf8_lossy(e);
            assert!(
                !text.contains("apikey") && !text.contains("acme"),
                "{path} entry {k} is readable"
            );
        }
    }

    // What is not there: 404 problems, no credentials needed, nothing else served.
    for path in [
        "/tlog/tile/0/999",
        "/tlog/tile/0/000.p/0",
        "/tlog/tile/9/000",
        "/tlog/tile/entries/x",
        "/tlog/tile/../checkpoint",
        "/tlog/tile/",
    ] {
        let r = app.call(Method::GET, path, None, None).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{path}: {}", r.text);
        assert_eq!(r.headers["content-type"], "application/problem+json");
    }
    app.close().await;
}

/// Two logs under one origin would look like a forked log: a node may not open a ledger whose
/// origin another node's log already has, and nodes with their own data directories get their
/// own origins by default.
async fn each_node_has_its_own_ledger_origin(b: Backend) {
    let app = TestApp::start(b).await;
    let origin = app.state.ledger.origin().to_owned();
    assert!(origin.starts_with("rampart.local/audit/"), "{origin}");
    let other = tempfile::tempdir().unwrap();
    let node2 = |origin: Option<String>| {
        let mut c = app.state.config.clone();
        c.data_dir = other.path().to_owned();
        c.database_url = Some(app.state.config.effective_database_url());
        c.ledger_zones = vec![other.path().join("ledger")];
        c.ledger_origin = origin;
        c
    };
    let err = rampart_server::start(node2(Some(origin.clone())), Default::default())
        .await
        .err()
        .expect("the origin is taken");
    assert!(
        err.to_string().contains("belongs to another node's log"),
        "{err}"
    );
    // By default the second node names its own log.
    let started = rampart_server::start(node2(None), Default::default())
        .await
        .unwrap();
    let origin2 = started.state.ledger.origin().to_owned();
    assert_ne!(origin2, origin);
    let l = started.state.ledger.clone();
    tokio::task::spawn_blocking(move || l.shutdown())
        .await
        .unwrap();
    started.state.store.close().await;
    app.close().await;
}

on_both_backends!(
    each_node_has_its_own_ledger_origin,
    entries_are_tenant_scoped_and_provable,
    receipts_wait_for_a_checkpoint,
    erasure_keeps_every_proof_valid,
    tlog_is_a_verifiable_tiled_log,
);
