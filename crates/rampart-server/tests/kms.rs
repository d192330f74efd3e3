//! The `aws-kms` root key provider against `moto` in server mode: a root key that exists on disk
//! only wrapped, unwraps to the same key on every start, and is refused under another KMS key or
//! after tampering; a local `root.key` is imported rather than replaced.
#![cfg(feature = "aws")]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests"
)]

mod common;

use std::path::Path;

use axum::http::{Method, StatusCode};
use common::{Backend, TestApp};
use rampart_aws::Credentials;
use rampart_aws::kms::Kms;
use rampart_crypto::{RootKey, Secret};
use rampart_server::RootKeySource;
use rampart_server::config::{Config, RootKeyProvider};
use rampart_server::kms_root::Unwrapped;
use rampart_server::state::{existing_root_key, root_key};
use rampart_testkit::MotoServer;
use serde_json::json;

const REGION: &str = "eu-central-1";

fn new_kms_key(moto: &MotoServer) -> String {
    let creds = Credentials::new("kms-test", Secret::new("kms-test-secret".into()));
    Kms::create_key(REGION, Some(&moto.endpoint), creds, "rampart root").unwrap()
}

fn use_kms(config: &mut Config, endpoint: &str, key_id: &str) {
    config.root_key = None;
    config.root_key_provider = RootKeyProvider::AwsKms;
    config.kms_key_id = Some(key_id.to_owned());
    config.kms_region = REGION.into();
    config.kms_endpoint = Some(endpoint.to_owned());
    config.kms_access_key_id = Some("kms-test".into());
    config.kms_secret_access_key = Some(Secret::new("kms-test-secret".into()));
}

fn kms_config(dir: &Path, endpoint: &str, key_id: &str) -> Config {
    let mut c = Config::defaults_for(dir).unwrap();
    use_kms(&mut c, endpoint, key_id);
    c
}

fn how(source: &RootKeySource) -> Unwrapped {
    match source {
        RootKeySource::AwsKms { how, .. } => *how,
        other => panic!("not from KMS: {other:?}"),
    }
}

#[tokio::test]
async fn a_kms_wrapped_root_key_serves_across_restarts() {
    let moto = MotoServer::start();
    let key = new_kms_key(&moto);
    let (endpoint, k) = (moto.endpoint.clone(), key.clone());
    let app = TestApp::start_with(Backend::Sqlite, move |c| use_kms(c, &endpoint, &k)).await;
    let tenant = app.create_tenant("acme").await;
    let op = app.operator_token().await;
    let caps = ["secrets:read", "secrets:write"];
    let (_, key) = app.create_key(&op, Some(&tenant), &caps).await;
    let admin = app.tokens(&key).await.access;
    let r = app
        .call(
            Method::PUT,
            "/v1/secrets/data/db/password",
            Some(&admin),
            Some(json!({ "value": "kms-canary" })),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);

    let dir = app.dir.path().to_owned();
    assert!(!dir.join("root.key").exists(), "no plaintext root key");
    let wrapped = std::fs::read_to_string(dir.join("root.key.kms")).unwrap();
    assert!(wrapped.starts_with("rampart-root-key-kms-v1:"), "{wrapped}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.join("root.key.kms"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    // A restart unwraps the same key: the store's key check passes and the secret decrypts.
    let app = app.restart().await;
    let r = app.get("/v1/secrets/data/db/password", &admin).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["value"], "kms-canary");
    app.close().await;
}

#[test]
fn another_kms_key_or_a_tampered_file_is_refused() {
    let moto = MotoServer::start();
    let (a, b) = (new_kms_key(&moto), new_kms_key(&moto));
    let dir = tempfile::tempdir().unwrap();
    let config = kms_config(dir.path(), &moto.endpoint, &a);

    // Commands that only read never create the key.
    let missing = existing_root_key(&config).unwrap_err().to_string();
    assert!(missing.contains("not found"), "{missing}");

    let (first, source) = root_key(&config).unwrap();
    assert_eq!(how(&source), Unwrapped::Created);
    let (again, source) = root_key(&config).unwrap();
    assert_eq!(how(&source), Unwrapped::Existing);
    assert_eq!(first.check_value().unwrap(), again.check_value().unwrap());
    let read_only = existing_root_key(&config).unwrap();
    assert_eq!(
        first.check_value().unwrap(),
        read_only.check_value().unwrap()
    );

    let other = root_key(&kms_config(dir.path(), &moto.endpoint, &b))
        .unwrap_err()
        .to_string();
    assert!(other.contains("cannot unwrap"), "{other}");

    let path = dir.path().join("root.key.kms");
    let text = std::fs::read_to_string(&path).unwrap();
    let (head, b64) = text.trim().split_at("rampart-root-key-kms-v1:".len());
    let mut blob = base64_decode(b64);
    let last = blob.len() - 1;
    blob[last] ^= 1;
    std::fs::remove_file(&path).unwrap();
    rampart_crypto::write_private_file(&path, format!("{head}{}", base64_encode(&blob)).as_bytes())
        .unwrap();
    let tampered = root_key(&config).unwrap_err().to_string();
    assert!(tampered.contains("cannot unwrap"), "{tampered}");
    assert!(!tampered.contains("kms-test-secret"), "{tampered}");
}

#[test]
fn a_local_root_key_is_imported_not_replaced() {
    let moto = MotoServer::start();
    let key = new_kms_key(&moto);
    let dir = tempfile::tempdir().unwrap();
    let (local, _) = RootKey::load_or_create(&dir.path().join("root.key")).unwrap();
    let config = kms_config(dir.path(), &moto.endpoint, &key);
    let (imported, source) = root_key(&config).unwrap();
    assert_eq!(how(&source), Unwrapped::Imported);
    assert_eq!(
        local.check_value().unwrap(),
        imported.check_value().unwrap()
    );

    // Once wrapped, the plaintext file is no longer read: deleting it loses nothing.
    std::fs::remove_file(dir.path().join("root.key")).unwrap();
    let (after, source) = root_key(&config).unwrap();
    assert_eq!(how(&source), Unwrapped::Existing);
    assert_eq!(local.check_value().unwrap(), after.check_value().unwrap());
}

#[test]
fn the_configuration_checks_the_kms_settings() {
    let env = |vars: &'static [(&'static str, &'static str)]| {
        move |k: &str| {
            vars.iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| (*v).to_owned())
        }
    };
    let load = |vars: &'static [(&'static str, &'static str)]| {
        Config::load_from(
            Some(Path::new("/dev/null")),
            &env(vars),
            &Default::default(),
        )
    };
    let ok = load(&[
        ("RAMPART_ROOT_KEY_PROVIDER", "aws-kms"),
        ("RAMPART_KMS_KEY_ID", "alias/rampart"),
        ("RAMPART_KMS_REGION", "eu-west-1"),
    ])
    .unwrap();
    assert_eq!(ok.root_key_provider, RootKeyProvider::AwsKms);
    assert_eq!(ok.kms_key_id.as_deref(), Some("alias/rampart"));

    for (vars, says) in [
        (
            &[("RAMPART_ROOT_KEY_PROVIDER", "vault")][..],
            "`file` or `aws-kms`",
        ),
        (
            &[("RAMPART_ROOT_KEY_PROVIDER", "aws-kms")][..],
            "needs `kms_key_id`",
        ),
        (
            &[
                ("RAMPART_ROOT_KEY_PROVIDER", "aws-kms"),
                ("RAMPART_KMS_KEY_ID", "k"),
                ("RAMPART_KMS_ENDPOINT", "kms.local"),
            ][..],
            "http(s)://",
        ),
        (
            &[
                ("RAMPART_ROOT_KEY_PROVIDER", "aws-kms"),
                ("RAMPART_KMS_KEY_ID", "k"),
                (
                    "RAMPART_ROOT_KEY",
                    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
                ),
            ][..],
            "unset one of them",
        ),
        (
            &[
                ("RAMPART_ROOT_KEY_PROVIDER", "aws-kms"),
                ("RAMPART_KMS_KEY_ID", "k"),
                ("RAMPART_KMS_ACCESS_KEY_ID", "AKIA"),
            ][..],
            "or neither",
        ),
    ] {
        let e = load(vars).unwrap_err().to_string();
        assert!(e.contains(says), "{vars:?}: {e}");
    }
}

fn base64_decode(s: &str) -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.decode(s).unwrap()
}

fn base64_encode(b: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(b)
}
