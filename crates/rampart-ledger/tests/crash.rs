//! Kill a writer with SIGKILL at random moments, many times; after every kill, recovery must
//! keep every acknowledged entry, at its acknowledged index, with its acknowledged leaf hash, and
//! the whole log must verify. `RAMPART_CRASH_ITERATIONS` sets the count (default 200).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests"
)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rampart_crypto::{Secret, SigningKey};
use rampart_ledger::note::NoteSigner;
use rampart_ledger::verify::verify_zone;
use rampart_ledger::zone::{LocalZone, Zone};
use rampart_ledger::{Hash, Ledger, LedgerConfig, leaf_hash};

const BIN: &str = env!("CARGO_BIN_EXE_ledger-crash-writer");

fn signer() -> NoteSigner {
    NoteSigner::new(
        "rampart.test/crash",
        SigningKey::from_seed(&Secret::new([42; 32])),
    )
    .unwrap()
}

fn open(dir: &Path) -> Ledger {
    let zone: Arc<dyn Zone> = Arc::new(LocalZone::open(dir).unwrap());
    Ledger::open(LedgerConfig::new(vec![zone], signer())).expect("recovery after SIGKILL")
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

/// Runs the writer, kills it after `after`, returns the acknowledgements it printed in full.
fn run_and_kill(dir: &Path, after: Duration) -> Vec<(u64, Hash)> {
    let mut child = Command::new(BIN)
        .arg(dir)
        .arg("4")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut acks = Vec::new();
        let mut r = BufReader::new(stdout);
        let mut line = Vec::new();
        loop {
            line.clear();
            match r.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
            // A line cut by the kill is not an acknowledgement anyone saw.
            if line.last() != Some(&b'\n') {
                break;
            }
            let text = String::from_utf8_lossy(&line);
            let mut parts = text.split_whitespace();
            if parts.next() == Some("ACK") {
                let index: u64 = parts.next().unwrap().parse().unwrap();
                let hash = Hash::from_hex(parts.next().unwrap()).unwrap();
                acks.push((index, hash));
            }
        }
        acks
    });
    std::thread::sleep(after);
    child.kill().unwrap(); // SIGKILL
    let status = child.wait().unwrap();
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(
        !stderr.contains("failed"),
        "the writer failed before it was killed: {stderr} ({status:?})"
    );
    reader.join().unwrap()
}

#[test]
fn sigkill_at_random_moments_loses_no_acknowledged_entry() {
    let iterations: u64 = std::env::var("RAMPART_CRASH_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let dir = tempfile::tempdir().unwrap();
    let mut acked: HashMap<u64, Hash> = HashMap::new();
    let mut rng = Rng(0x00c0_ffee_d00d_0001);
    let started = Instant::now();
    for it in 0..iterations {
        let after = Duration::from_millis(5 + rng.next() % 60);
        let acks = run_and_kill(dir.path(), after);
        for (index, hash) in &acks {
            if let Some(prev) = acked.insert(*index, *hash) {
                assert_eq!(
                    prev, *hash,
                    "index {index} was acknowledged twice with different entries"
                );
            }
        }
        let l = open(dir.path());
        let max = acked.keys().max().copied();
        if let Some(max) = max {
            assert!(
                l.size() > max,
                "iteration {it}: size {} but entry {max} was acknowledged",
                l.size()
            );
        }
        // This run's acknowledgements, and a sample of all earlier ones.
        let sample = acked
            .iter()
            .filter(|(i, _)| *i % 97 == 0)
            .map(|(i, h)| (*i, *h));
        for (index, hash) in acks.iter().copied().chain(sample) {
            let e = l
                .entry(index)
                .unwrap_or_else(|e| panic!("iteration {it}: entry {index}: {e}"));
            assert_eq!(leaf_hash(&e), hash, "iteration {it}: entry {index} changed");
        }
        drop(l);
        if it % 50 == 49 || it + 1 == iterations {
            let zone = LocalZone::open_read_only(dir.path()).unwrap();
            verify_zone(&zone, &signer().verifier(), &mut |_, _| {})
                .unwrap_or_else(|e| panic!("iteration {it}: the log does not verify: {e}"));
        }
    }
    // Finally every acknowledged entry, not just a sample.
    let l = open(dir.path());
    for (index, hash) in &acked {
        assert_eq!(leaf_hash(&l.entry(*index).unwrap()), *hash, "entry {index}");
    }
    eprintln!(
        "{iterations} SIGKILLs, {} acknowledged entries, all present; log size {} ({:.1} s)",
        acked.len(),
        l.size(),
        started.elapsed().as_secs_f64()
    );
    assert!(
        acked.len() as u64 > iterations,
        "the writer made progress between kills"
    );
}
