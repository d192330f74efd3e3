//! Tamper evidence: verification passes on an honest log, detects a single flipped byte anywhere
//! in any kind of stored file, and detects a consistently rewritten history.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests"
)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rampart_crypto::{Secret, SigningKey};
use rampart_ledger::note::NoteSigner;
use rampart_ledger::verify::verify_zone;
use rampart_ledger::zone::{LocalZone, Zone};
use rampart_ledger::{Ledger, LedgerConfig};

fn signer() -> NoteSigner {
    NoteSigner::new(
        "rampart.test/verify",
        SigningKey::from_seed(&Secret::new([21; 32])),
    )
    .unwrap()
}

fn open(dir: &Path) -> Ledger {
    let zone: Arc<dyn Zone> = Arc::new(LocalZone::open(dir).unwrap());
    Ledger::open(LedgerConfig::new(vec![zone], signer())).unwrap()
}

fn append(l: &Ledger, from: u64, to: u64) {
    std::thread::scope(|s| {
        for t in 0..8 {
            s.spawn(move || {
                for i in (from + t..to).step_by(8) {
                    l.append_blocking(format!("record {i}").as_bytes()).unwrap();
                }
            });
        }
    });
}

fn verify(
    dir: &Path,
) -> Result<rampart_ledger::verify::VerifyReport, rampart_ledger::verify::VerifyError> {
    let zone = LocalZone::open_read_only(dir).unwrap();
    verify_zone(&zone, &signer().verifier(), &mut |_, _| {})
}

/// A log with three tile levels, several checkpoints and a WAL tail (no checkpoint after it).
fn build(dir: &Path) {
    let l = open(dir);
    append(&l, 0, 300);
    l.checkpoint_blocking().unwrap();
    append(&l, 300, 66_000);
    l.checkpoint_blocking().unwrap();
    append(&l, 66_000, 70_000);
    l.checkpoint_blocking().unwrap();
    // Leave the last entries uncheckpointed: a ledger that dies now has them only in its WAL.
    append(&l, 70_000, 70_100);
    std::mem::forget(l); // no shutdown checkpoint: as after a crash
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

#[test]
fn an_honest_log_verifies() {
    let dir = tempfile::tempdir().unwrap();
    build(dir.path());
    let report = verify(dir.path()).unwrap();
    assert_eq!(report.entries, 70_100);
    // The empty log's checkpoint at first start, and the three published.
    assert_eq!(report.checkpoints, 4);
    assert!(report.tiles > 270);
}

#[test]
fn a_flipped_byte_in_any_stored_file_is_detected() {
    let dir = tempfile::tempdir().unwrap();
    build(dir.path());
    verify(dir.path()).unwrap();
    let all = files(dir.path());
    let rel = |p: &Path| {
        p.strip_prefix(dir.path())
            .unwrap()
            .to_string_lossy()
            .into_owned()
    };
    // One representative file of each kind the log stores (a trailing `/`: any file below).
    let kinds = [
        ("full bundle", "tile/entries/100"),
        ("partial bundle", "tile/entries/001.p/44"),
        ("full level-0 tile", "tile/0/200"),
        ("full level-1 tile", "tile/1/000"),
        ("partial level-0 tile", "tile/0/273.p/112"),
        ("partial level-1 tile", "tile/1/001.p/17"),
        ("partial level-2 tile", "tile/2/000.p/1"),
        ("write-ahead log", "wal/"),
        ("latest checkpoint", "checkpoint"),
        ("checkpoint history", "checkpoints"),
    ];
    let matches =
        |pattern: &str, p: &str| p == pattern || (pattern.ends_with('/') && p.starts_with(pattern));
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    for (kind, pattern) in kinds {
        let path = all
            .iter()
            .find(|p| matches(pattern, &rel(p)))
            .unwrap_or_else(|| {
                panic!(
                    "no {kind} file in {:?}",
                    all.iter().map(|p| rel(p)).collect::<Vec<_>>()
                )
            });
        let original = std::fs::read(path).unwrap();
        assert!(!original.is_empty(), "{kind}");
        for _ in 0..12 {
            let pos = (rng.next() as usize) % original.len();
            let bit = 1u8 << (rng.next() % 8);
            let mut damaged = original.clone();
            damaged[pos] ^= bit;
            std::fs::write(path, &damaged).unwrap();
            let err = verify(dir.path()).expect_err(&format!(
                "a flipped bit at byte {pos} of the {kind} ({}) went unnoticed",
                rel(path)
            ));
            assert!(!err.object.is_empty() && !err.problem.is_empty(), "{err}");
        }
        std::fs::write(path, &original).unwrap();
    }
    verify(dir.path()).unwrap();
}

#[test]
fn a_rewritten_history_is_detected_without_any_re_signing() {
    let honest = tempfile::tempdir().unwrap();
    {
        let l = open(honest.path());
        for i in 0..600u64 {
            l.append_blocking(format!("record {i}").as_bytes()).unwrap();
        }
    }
    // The attacker rebuilds the same-sized log with one record changed — every tile, bundle and
    // WAL consistent — and puts it in place, keeping the signed checkpoints (they cannot sign).
    let forged = tempfile::tempdir().unwrap();
    {
        let l = open(forged.path());
        for i in 0..600u64 {
            let text = if i == 42 {
                "record 42 (edited)".to_owned()
            } else {
                format!("record {i}")
            };
            l.append_blocking(text.as_bytes()).unwrap();
        }
    }
    for name in ["tile", "wal"] {
        let _ = std::fs::remove_dir_all(honest.path().join(name));
        copy_dir(&forged.path().join(name), &honest.path().join(name));
    }
    let err = verify(honest.path()).unwrap_err();
    assert_eq!(err.object, "checkpoints");
    assert!(err.problem.contains("rewritten"), "{err}");
    // And the ledger itself refuses to start on it.
    let zone: Arc<dyn Zone> = Arc::new(LocalZone::open(honest.path()).unwrap());
    assert!(Ledger::open(LedgerConfig::new(vec![zone], signer())).is_err());
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.path().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}
