//! The KMS and Secrets Manager calls against `moto` in server mode (a real HTTP server speaking
//! AWS's protocols and checking what it is sent), on loopback.
#![allow(clippy::unwrap_used, reason = "tests")]

use rampart_aws::kms::Kms;
use rampart_aws::secretsmanager::SecretsManager;
use rampart_aws::{AwsError, Credentials};
use rampart_crypto::Secret;
use rampart_testkit::MotoServer;

const REGION: &str = "eu-west-1";

fn creds() -> Credentials {
    Credentials::new("rampart-test", Secret::new("rampart-test-secret".into()))
}

fn kms(moto: &MotoServer, key_id: &str) -> Kms {
    Kms::new(REGION, Some(&moto.endpoint), creds(), key_id).unwrap()
}

fn new_key(moto: &MotoServer) -> String {
    Kms::create_key(REGION, Some(&moto.endpoint), creds(), "rampart test").unwrap()
}

#[test]
fn kms_data_keys_unwrap_only_under_their_key_and_context() {
    let moto = MotoServer::start();
    let (key_a, key_b) = (new_key(&moto), new_key(&moto));
    let a = kms(&moto, &key_a);
    let ctx = [("rampart", "root-key")];
    let (plain, blob) = a.generate_data_key(&ctx).unwrap();
    assert!(!blob.is_empty() && !blob.windows(32).any(|w| w == plain.expose()));
    assert_eq!(a.decrypt(&blob, &ctx).unwrap().expose(), plain.expose());

    // Another context, or another key, is refused.
    let wrong_ctx = a.decrypt(&blob, &[("rampart", "other")]).unwrap_err();
    assert!(matches!(wrong_ctx, AwsError::Service { .. }), "{wrong_ctx}");
    let wrong_key = kms(&moto, &key_b).decrypt(&blob, &ctx).unwrap_err();
    assert!(matches!(wrong_key, AwsError::Service { .. }), "{wrong_key}");

    // Encrypt wraps given bytes the same way.
    let wrapped = a
        .encrypt(b"0123456789abcdef0123456789abcdef", &ctx)
        .unwrap();
    assert_eq!(
        a.decrypt(&wrapped, &ctx).unwrap().expose(),
        b"0123456789abcdef0123456789abcdef"
    );
}

#[test]
fn kms_errors_name_the_operation_and_code_never_the_credentials() {
    let moto = MotoServer::start();
    let e = kms(&moto, "alias/does-not-exist")
        .generate_data_key(&[])
        .unwrap_err();
    let shown = format!("{e} {e:?}");
    assert!(shown.contains("GenerateDataKey"), "{shown}");
    assert_eq!(e.code(), Some("NotFoundException"), "{shown}");
    assert!(!shown.contains("rampart-test-secret"), "{shown}");

    // Nothing listening: a transport error, not a hang.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let e = Kms::new(
        REGION,
        Some(&format!("http://127.0.0.1:{port}")),
        creds(),
        "k",
    )
    .unwrap()
    .generate_data_key(&[])
    .unwrap_err();
    assert!(matches!(e, AwsError::Transport { .. }), "{e}");

    for (endpoint, key) in [(Some("ftp://x"), "k"), (None, ""), (None, " ")] {
        assert!(matches!(
            Kms::new(REGION, endpoint, creds(), key),
            Err(AwsError::Config(_))
        ));
    }
    assert!(matches!(
        Kms::new("Not A Region", None, creds(), "k"),
        Err(AwsError::Config(_))
    ));
}

#[test]
fn secrets_manager_versions_deletion_and_listing() {
    let moto = MotoServer::start();
    let sm = SecretsManager::new(REGION, Some(&moto.endpoint), creds()).unwrap();
    let v1 = "rampart-version-00000000000000000001";
    let v2 = "rampart-version-00000000000000000002";
    sm.create("app/db", &Secret::new("one".into()), v1).unwrap();
    sm.put_value("app/db", &Secret::new("two".into()), v2)
        .unwrap();
    sm.create("app/api", &Secret::new("k".into()), v1).unwrap();
    sm.create("other/x", &Secret::new("x".into()), v1).unwrap();

    let current = sm.get_value("app/db", None).unwrap();
    assert_eq!(
        (current.value.expose().as_str(), current.version_id.as_str()),
        ("two", v2)
    );
    assert_eq!(
        sm.get_value("app/db", Some(v1)).unwrap().value.expose(),
        "one"
    );
    let mut ids: Vec<String> = sm
        .versions("app/db")
        .unwrap()
        .into_iter()
        .map(|v| v.version_id)
        .collect();
    ids.sort();
    assert_eq!(ids, [v1, v2]);

    // A version id reused with another value is refused: the id is a check-and-set.
    let reused = sm
        .put_value("app/db", &Secret::new("three".into()), v2)
        .unwrap_err();
    assert!(matches!(reused, AwsError::Service { .. }), "{reused}");

    let listed = sm.list("app/").unwrap();
    let names: Vec<&str> = listed.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["app/api", "app/db"]);
    assert_eq!(listed[1].current_version_id.as_deref(), Some(v2));
    assert!(listed[1].changed.is_some());
    assert_eq!(sm.list("").unwrap().len(), 3);

    // Scheduled deletion hides the value until it is restored.
    sm.delete("app/db", Some(7)).unwrap();
    assert!(sm.describe("app/db").unwrap().deleted.is_some());
    assert!(sm.get_value("app/db", None).is_err());
    sm.restore("app/db").unwrap();
    assert!(sm.describe("app/db").unwrap().deleted.is_none());
    assert_eq!(sm.get_value("app/db", None).unwrap().value.expose(), "two");

    // Forced deletion is for good.
    sm.delete("app/api", None).unwrap();
    let gone = sm.get_value("app/api", None).unwrap_err();
    assert_eq!(gone.code(), Some("ResourceNotFoundException"), "{gone}");
    let shown = format!("{gone} {gone:?}");
    assert!(!shown.contains("rampart-test-secret"), "{shown}");
}
