//! The S3 zone against `moto` in server mode: the zone contract, a ledger that survives losing
//! its disk, compliance-mode Object Lock on every object, catching up a new zone.
#![cfg(feature = "s3")]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests"
)]

use std::sync::Arc;

use rampart_crypto::{Secret, SigningKey};
use rampart_ledger::note::NoteSigner;
use rampart_ledger::s3::{Credentials, S3Client, S3Location, S3Zone};
use rampart_ledger::tile::TileId;
use rampart_ledger::verify::verify_zone;
use rampart_ledger::zone::{LocalZone, Zone, encode_wal_record};
use rampart_ledger::{Ledger, LedgerConfig};
use rampart_testkit::MotoServer;

fn signer() -> NoteSigner {
    NoteSigner::new(
        "rampart.test/s3-ledger",
        SigningKey::from_seed(&Secret::new([12; 32])),
    )
    .unwrap()
}

fn client(moto: &MotoServer, bucket: &str, prefix: &str) -> S3Client {
    let location = S3Location::parse(&format!(
        "s3://{bucket}/{prefix}?endpoint={}&retain_days=1",
        moto.endpoint
    ))
    .unwrap();
    S3Client::new(
        location,
        Credentials::new("rampart-test", Secret::new("rampart-test-secret".into())),
    )
}

fn zone(moto: &MotoServer, bucket: &str, prefix: &str) -> S3Zone {
    let c = client(moto, bucket, prefix);
    c.create_bucket_with_object_lock().unwrap();
    S3Zone::open(c).unwrap()
}

fn entry(i: u64) -> Vec<u8> {
    format!("s3 entry {i}").into_bytes()
}

#[test]
fn the_s3_zone_keeps_the_zone_contract() {
    let moto = MotoServer::start();
    let z = zone(&moto, "rampart-contract", "node-a");
    assert_eq!(z.read_wal(3).unwrap(), None);
    let mut rec = Vec::new();
    encode_wal_record(0, b"a", &mut rec);
    z.append_wal(3, &rec).unwrap();
    z.append_wal(3, &rec).unwrap();
    z.append_wal(3, &rec).unwrap();
    assert_eq!(z.read_wal(3).unwrap().unwrap(), rec.repeat(3));
    // Cut inside the second object: the first stays, the second is rewritten short, the third goes.
    let cut = rec.len() as u64 + 5;
    z.truncate_wal(3, cut).unwrap();
    assert_eq!(
        z.read_wal(3).unwrap().unwrap(),
        [&rec[..], &rec[..5]].concat()
    );
    z.append_wal(3, b"xyz").unwrap();
    z.append_wal(7, &rec).unwrap();
    assert_eq!(z.wal_segments().unwrap(), vec![3, 7]);
    // A fresh client (no cached lengths) reads the same bytes.
    let again = S3Zone::open(client(&moto, "rampart-contract", "node-a")).unwrap();
    assert_eq!(
        again.read_wal(3).unwrap().unwrap(),
        [&rec[..], &rec[..5], b"xyz"].concat()
    );
    again.remove_wal(3).unwrap();
    assert_eq!(z.wal_segments().unwrap(), vec![7]);
    // An object past a gap (an interrupted truncation) is not part of the segment, and an
    // append never runs into it.
    let c = client(&moto, "rampart-contract", "node-a");
    let stale = format!("node-a/wal/{:020}/{:020}", 7, rec.len() * 2);
    c.put_locked(&stale, b"stale bytes").unwrap();
    assert_eq!(again.read_wal(7).unwrap().unwrap(), rec);
    let fresh = S3Zone::open(client(&moto, "rampart-contract", "node-a")).unwrap();
    fresh.append_wal(7, &rec).unwrap();
    assert_eq!(fresh.read_wal(7).unwrap().unwrap(), rec.repeat(2));
    fresh.append_wal(7, &rec).unwrap();
    assert_eq!(fresh.read_wal(7).unwrap().unwrap(), rec.repeat(3));

    let id = TileId::hashes(0, 1_234_067, 256);
    assert!(!z.has_tile(&id).unwrap());
    z.put_tile(&id, b"tile").unwrap();
    assert!(z.has_tile(&id).unwrap());
    assert_eq!(z.get_tile(&id).unwrap().unwrap(), b"tile");
    assert_eq!(z.latest_checkpoint().unwrap(), None);
    z.publish_checkpoint(b"one\n").unwrap();
    again.publish_checkpoint(b"two\n").unwrap();
    z.publish_checkpoint(b"three\n").unwrap();
    assert_eq!(z.latest_checkpoint().unwrap().unwrap(), b"three\n");
    assert_eq!(
        z.checkpoint_history().unwrap().notes,
        vec![b"one\n".to_vec(), b"two\n".to_vec(), b"three\n".to_vec()]
    );
    // Another prefix in the same bucket is another zone.
    let other = zone(&moto, "rampart-contract", "node-b");
    assert!(other.wal_segments().unwrap().is_empty());
    assert!(!other.has_tile(&id).unwrap());
}

#[test]
fn a_ledger_on_disk_and_s3_survives_losing_the_disk() {
    let moto = MotoServer::start();
    let dir = tempfile::tempdir().unwrap();
    let receipts: Vec<_> = {
        let zones: Vec<Arc<dyn Zone>> = vec![
            Arc::new(LocalZone::open(dir.path()).unwrap()),
            Arc::new(zone(&moto, "rampart-ledger", "")),
        ];
        let l = Ledger::open(LedgerConfig::new(zones, signer())).unwrap();
        let mut r: Vec<_> = (0..300)
            .map(|i| l.append_blocking(&entry(i)).unwrap())
            .collect();
        l.checkpoint_blocking().unwrap();
        r.extend((300..700).map(|i| l.append_blocking(&entry(i)).unwrap()));
        l.checkpoint_blocking().unwrap();
        l.shutdown();
        r
    };
    drop(dir);
    // The bucket alone holds the log: open it, read every acknowledged entry back, verify it.
    let s3: Arc<dyn Zone> = Arc::new(zone(&moto, "rampart-ledger", ""));
    let l = Ledger::open(LedgerConfig::new(vec![s3.clone()], signer())).unwrap();
    assert_eq!(l.size(), 700);
    for (i, r) in receipts.iter().enumerate() {
        assert_eq!(r.index, i as u64);
        assert_eq!(l.leaf_hash(r.index).unwrap(), r.leaf_hash);
        assert_eq!(l.entry(r.index).unwrap(), entry(i as u64));
    }
    let more = l.append_blocking(b"after the disk was lost").unwrap();
    assert_eq!(more.index, 700);
    l.checkpoint_blocking().unwrap();
    l.shutdown();
    let report = verify_zone(s3.as_ref(), &signer().verifier(), &mut |_, _| {}).unwrap();
    assert_eq!(report.entries, 701);
}

#[test]
fn every_object_is_under_compliance_retention_and_cannot_be_destroyed() {
    let moto = MotoServer::start();
    let z: Arc<dyn Zone> = Arc::new(zone(&moto, "rampart-locked", "audit"));
    let l = Ledger::open(LedgerConfig::new(vec![z.clone()], signer())).unwrap();
    for i in 0..260 {
        l.append_blocking(&entry(i)).unwrap();
    }
    l.checkpoint_blocking().unwrap();
    l.shutdown();

    let c = client(&moto, "rampart-locked", "audit");
    let keys: Vec<String> = c
        .list("audit/", false)
        .unwrap()
        .0
        .into_iter()
        .map(|o| o.key)
        .collect();
    for kind in [
        "audit/tile/0/",
        "audit/tile/entries/",
        "audit/checkpoints/",
        "audit/wal/",
    ] {
        assert!(
            keys.iter().any(|k| k.starts_with(kind)),
            "no {kind} object in {keys:?}"
        );
    }
    assert!(keys.iter().any(|k| k == "audit/checkpoint"));
    for key in &keys {
        let head = c.send("HEAD", key, &[], &[], b"").unwrap();
        assert_eq!(head.status, 200, "{key}");
        assert_eq!(
            head.headers
                .get("x-amz-object-lock-mode")
                .map(String::as_str),
            Some("COMPLIANCE"),
            "{key}"
        );
        assert!(
            head.headers
                .contains_key("x-amz-object-lock-retain-until-date"),
            "{key}"
        );
    }
    // Destroying a version of a bundle is refused; it still reads.
    let bundle = TileId::entries(0, 256);
    let key = format!("audit/{}", bundle.path());
    let head = c.send("HEAD", &key, &[], &[], b"").unwrap();
    let version = head.headers.get("x-amz-version-id").unwrap().clone();
    let destroy = c
        .send("DELETE", &key, &[("versionId", &version)], &[], b"")
        .unwrap();
    assert_eq!(destroy.status, 403, "{:?}", destroy.error_code());
    let before = z.get_tile(&bundle).unwrap().unwrap();
    // Overwriting only adds a version on top; the locked one is still there to compare.
    c.put_locked(&key, b"rewritten history").unwrap();
    let old = c
        .send("GET", &key, &[("versionId", &version)], &[], b"")
        .unwrap();
    assert_eq!(old.status, 200);
    assert_eq!(old.body, before);
    // And the rewrite is detected.
    let e = verify_zone(z.as_ref(), &signer().verifier(), &mut |_, _| {}).unwrap_err();
    assert!(e.to_string().contains("tile/entries/000"), "{e}");
}

#[test]
fn a_bucket_without_object_lock_is_refused() {
    let moto = MotoServer::start();
    let c = client(&moto, "rampart-unlocked", "");
    let made = c.send("PUT", "", &[], &[], b"").unwrap();
    assert_eq!(made.status, 200);
    let e = S3Zone::open(c).unwrap_err();
    assert!(e.to_string().contains("Object Lock is not enabled"), "{e}");
}

#[test]
fn a_new_s3_zone_is_caught_up_from_the_disk() {
    let moto = MotoServer::start();
    let dir = tempfile::tempdir().unwrap();
    {
        let local: Arc<dyn Zone> = Arc::new(LocalZone::open(dir.path()).unwrap());
        let l = Ledger::open(LedgerConfig::new(vec![local], signer())).unwrap();
        for i in 0..600 {
            l.append_blocking(&entry(i)).unwrap();
        }
        l.checkpoint_blocking().unwrap();
        l.shutdown();
    }
    let s3: Arc<dyn Zone> = Arc::new(zone(&moto, "rampart-catchup", ""));
    {
        let zones: Vec<Arc<dyn Zone>> =
            vec![Arc::new(LocalZone::open(dir.path()).unwrap()), s3.clone()];
        let mut config = LedgerConfig::new(zones, signer());
        config.quorum = 1;
        let l = Ledger::open(config).unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while !l.zone_status()[1].healthy {
            assert!(
                std::time::Instant::now() < deadline,
                "{:?}",
                l.zone_status()
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        l.append_blocking(b"after the catch-up").unwrap();
        l.checkpoint_blocking().unwrap();
        l.shutdown();
    }
    let report = verify_zone(s3.as_ref(), &signer().verifier(), &mut |_, _| {}).unwrap();
    assert_eq!(report.entries, 601);
}
