//! `rampart audit …`: offline verification of the ledger, and its verifier key.

use std::io::{IsTerminal, Write};
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Args, Subcommand};
use rampart_ledger::note::NoteVerifier;
use rampart_ledger::verify::verify_zone;
use rampart_ledger::zone::{LocalZone, Zone};
use rampart_server::Config;
use serde_json::json;

use crate::ConfigArgs;
use crate::serve::load_config;

#[derive(Subcommand)]
pub enum AuditCommand {
    /// Verify the ledger offline: recompute every hash from the stored entries, check every
    /// tile, every checkpoint signature and that all checkpoints are consistent. Names the
    /// first bad object and exits 1 on failure. Run it on a stopped server's zones or on a copy.
    Verify(VerifyArgs),
    /// Print the ledger's checkpoint verifier key (`<name>+<id>+<key>`, C2SP signed note). Needs
    /// the root key; the same key is served at `GET /v1/audit/verifier-key`.
    VerifierKey(ConfigArgs),
}

#[derive(Args)]
pub struct VerifyArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    /// A ledger zone to verify: a directory, or an `s3://bucket/prefix?endpoint=…` location read
    /// with the configured S3 credentials (repeatable; default: the configured zones).
    #[arg(long = "zone", value_name = "DIR|S3-URL")]
    pub zones: Vec<String>,
    /// The verifier key to check checkpoints against (default: derived from the root key). An
    /// auditor without the root key passes the published one.
    #[arg(long, value_name = "KEY")]
    pub verifier_key: Option<String>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

pub async fn run(command: AuditCommand) -> anyhow::Result<ExitCode> {
    match command {
        AuditCommand::Verify(args) => verify(args).await,
        AuditCommand::VerifierKey(args) => {
            let config = match load_config(&args, None) {
                Ok(c) => c,
                Err(code) => return Ok(code),
            };
            println!("{}", derived_verifier(&config)?.encode());
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn derived_verifier(config: &Config) -> anyhow::Result<NoteVerifier> {
    let root = rampart_server::state::existing_root_key(config)
        .context("the verifier key is derived from the root key (or pass --verifier-key)")?;
    let node = rampart_server::state::node_id(config, false)
        .context("this data directory has no ledger yet (run `rampart serve` first)")?;
    Ok(rampart_server::state::ledger_signer(config, &root, &node)?.verifier())
}

/// Progress on stderr: a rewritten line on a terminal, a line every few seconds otherwise.
struct Progress {
    zone: String,
    tty: bool,
    last: Instant,
}

impl Progress {
    fn report(&mut self, done: u64, total: u64) {
        let every = if self.tty {
            Duration::from_millis(200)
        } else {
            Duration::from_secs(5)
        };
        if self.last.elapsed() < every {
            return;
        }
        self.last = Instant::now();
        let pct = (done * 100).checked_div(total).unwrap_or(100);
        let line = format!("verifying {}: {done}/{total} entries ({pct}%)", self.zone);
        let mut err = std::io::stderr().lock();
        let _ = if self.tty {
            write!(err, "\r{line}")
        } else {
            writeln!(err, "{line}")
        };
    }

    fn finish(&self) {
        if self.tty {
            eprint!("\r\x1b[K");
        }
    }
}

async fn verify(args: VerifyArgs) -> anyhow::Result<ExitCode> {
    let config = match load_config(&args.config, None) {
        Ok(c) => c,
        Err(code) => return Ok(code),
    };
    let verifier = match &args.verifier_key {
        Some(k) => NoteVerifier::parse(k.trim()).context("--verifier-key")?,
        None => derived_verifier(&config)?,
    };
    let zones = if args.zones.is_empty() {
        config
            .effective_ledger_zones()
            .iter()
            .map(|d| d.display().to_string())
            .chain(config.ledger_s3_zones.iter().cloned())
            .collect()
    } else {
        args.zones.clone()
    };
    let json_out = args.json;
    tokio::task::spawn_blocking(move || verify_zones(&config, &zones, &verifier, json_out)).await?
}

/// Opens a zone for reading: an S3 location, or a directory.
fn open_zone(config: &Config, spec: &str) -> anyhow::Result<Arc<dyn Zone>> {
    if spec.starts_with("s3://") {
        return Ok(rampart_server::state::open_s3_zone(config, spec)?);
    }
    Ok(Arc::new(
        LocalZone::open_read_only(Path::new(spec)).with_context(|| format!("zone {spec}"))?,
    ))
}

fn verify_zones(
    config: &Config,
    zones: &[String],
    verifier: &NoteVerifier,
    json_out: bool,
) -> anyhow::Result<ExitCode> {
    let mut all_ok = true;
    let mut results = Vec::new();
    for name in zones {
        let zone = open_zone(config, name)?;
        let name = zone.describe();
        let mut progress = Progress {
            zone: name.clone(),
            tty: std::io::stderr().is_terminal(),
            last: Instant::now(),
        };
        let outcome = verify_zone(zone.as_ref(), verifier, &mut |d, t| progress.report(d, t));
        progress.finish();
        match outcome {
            Ok(r) => {
                if !json_out {
                    println!(
                        "{name}: ok: {} entries, {} checkpoints, {} tiles verified in {:.2} s ({:.0} entries/s)",
                        r.entries,
                        r.checkpoints,
                        r.tiles,
                        r.elapsed.as_secs_f64(),
                        r.entries_per_second()
                    );
                }
                results.push(json!({
                    "zone": name,
                    "ok": true,
                    "entries": r.entries,
                    "checkpoints": r.checkpoints,
                    "tiles": r.tiles,
                    "seconds": r.elapsed.as_secs_f64(),
                    "entries_per_s": r.entries_per_second(),
                }));
            }
            Err(e) => {
                all_ok = false;
                if !json_out {
                    println!(
                        "{name}: FAILED: first bad object `{}`: {}",
                        e.object, e.problem
                    );
                }
                results.push(json!({
                    "zone": name,
                    "ok": false,
                    "object": e.object,
                    "problem": e.problem,
                }));
            }
        }
    }
    if json_out {
        println!(
            "{}",
            json!({ "ok": all_ok, "verifier_key": verifier.encode(), "zones": results })
        );
    }
    Ok(if all_ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
