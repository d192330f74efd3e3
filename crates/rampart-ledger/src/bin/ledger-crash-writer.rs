//! Test helper: appends to the ledger in `<dir>` from several threads forever, printing
//! `ACK <index> <leaf hash>` after each acknowledgement and asking for a checkpoint every 20 ms.
//! The crash test kills it with SIGKILL at random moments.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rampart_crypto::{Secret, SigningKey};
use rampart_ledger::note::NoteSigner;
use rampart_ledger::zone::{LocalZone, Zone};
use rampart_ledger::{Ledger, LedgerConfig};

/// The crash test's checkpoint key (a test fixture, not a secret).
const SEED: [u8; 32] = [42; 32];

fn fail(what: &str, e: impl std::fmt::Display) -> ExitCode {
    eprintln!("ledger-crash-writer: {what}: {e}");
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let Some(dir) = args.next().map(PathBuf::from) else {
        return fail("usage", "ledger-crash-writer <dir> [threads]");
    };
    let threads: u64 = args.next().and_then(|t| t.parse().ok()).unwrap_or(4);
    let zone: Arc<dyn Zone> = match LocalZone::open(&dir) {
        Ok(z) => Arc::new(z),
        Err(e) => return fail("opening the zone", e),
    };
    let signer = match NoteSigner::new(
        "rampart.test/crash",
        SigningKey::from_seed(&Secret::new(SEED)),
    ) {
        Ok(s) => s,
        Err(e) => return fail("signer", e),
    };
    let ledger = match Ledger::open(LedgerConfig::new(vec![zone], signer)) {
        Ok(l) => Arc::new(l),
        Err(e) => return fail("opening the ledger", e),
    };
    let out = Arc::new(Mutex::new(std::io::stdout()));
    let mut handles = Vec::new();
    for t in 0..threads {
        let ledger = ledger.clone();
        let out = out.clone();
        handles.push(std::thread::spawn(move || {
            for n in 0u64.. {
                let entry = format!("writer {t} entry {n}");
                match ledger.append_blocking(entry.as_bytes()) {
                    Ok(r) => {
                        if let Ok(mut o) = out.lock() {
                            let _ = writeln!(o, "ACK {} {}", r.index, r.leaf_hash);
                            let _ = o.flush();
                        }
                    }
                    Err(e) => {
                        eprintln!("append failed: {e}");
                        std::process::exit(3);
                    }
                }
            }
        }));
    }
    let checkpointer = ledger.clone();
    std::thread::spawn(move || {
        loop {
            std::thread::sleep(Duration::from_millis(20));
            if let Err(e) = checkpointer.checkpoint_blocking() {
                eprintln!("checkpoint failed: {e}");
                std::process::exit(4);
            }
        }
    });
    for h in handles {
        let _ = h.join();
    }
    ExitCode::SUCCESS
}
