//! `rampart bench ledger`: appends acknowledged only after fsync, at several concurrencies and at a
//! fixed offered load, beside the obvious alternative — Postgres `INSERT` into an append-only
//! table with `synchronous_commit = on` — in the same run; then full-log verification speed.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use rampart_crypto::SigningKey;
use rampart_ledger::note::NoteSigner;
use rampart_ledger::verify::verify_zone;
use rampart_ledger::zone::LocalZone;
use rampart_ledger::{Ledger, LedgerConfig};
use rampart_testkit::PgTestDb;
use serde_json::json;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{AssertSqlSafe, PgPool};

use super::{Latencies, PostgresArgs, scratch_dir};

/// Connections the Postgres baseline may open (the server's default `max_connections` is 100).
const MAX_PG_CONNECTIONS: usize = 80;
/// Not measured: lets caches, the page cache and connection pools settle.
const WARM_UP: Duration = Duration::from_millis(500);

#[derive(Args, Debug)]
pub struct LedgerArgs {
    /// Seconds per measurement.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// Concurrent writers, comma separated.
    #[arg(long, value_delimiter = ',', default_values_t = [1usize, 16, 64, 256])]
    writers: Vec<usize>,
    /// Offered load (appends/s) for the fixed-rate latency measurement.
    #[arg(long, default_value_t = 10_000)]
    rate: u64,
    /// How often the fixed-rate generator wakes to send the appends that have fallen due, in
    /// microseconds. Each append's latency still runs from its own scheduled time. On the VMs
    /// these figures were taken on, waking every 50 µs made the whole VM pause 10–18 ms every
    /// 100 ms (see docs/BENCHMARKS.md), so the default is 500.
    #[arg(
        long,
        default_value_t = 500,
        value_name = "MICROSECONDS",
        value_parser = clap::value_parser!(u64).range(1..=100_000)
    )]
    tick_us: u64,
    /// Entry size in bytes (a sealed audit record is 200–400).
    #[arg(long, default_value_t = 256)]
    entry_bytes: usize,
    /// How long an append may wait to share its fsync with others, in microseconds (the
    /// server's `ledger_max_batch_wait`; default 0, as the server's).
    #[arg(long, default_value_t = 0, value_name = "MICROSECONDS")]
    max_batch_wait_us: u64,
    /// Where the logs are written: the disk you mean to measure, not a tmpfs (default: the
    /// system's temporary directory).
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
    #[command(flatten)]
    pg: PostgresArgs,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Clone, Copy, Default)]
struct Measured {
    per_s: f64,
    p50_ms: f64,
    p99_ms: f64,
    errors: u64,
}

impl Measured {
    fn of(samples: Vec<u32>, elapsed: Duration, errors: u64) -> Self {
        let lat = Latencies::new(samples);
        Self {
            per_s: lat.count() as f64 / elapsed.as_secs_f64(),
            p50_ms: lat.percentile_ms(0.50),
            p99_ms: lat.percentile_ms(0.99),
            errors,
        }
    }

    fn json(&self) -> serde_json::Value {
        json!({
            "per_s": self.per_s.round(),
            "p50_ms": self.p50_ms,
            "p99_ms": self.p99_ms,
            "errors": self.errors,
        })
    }
}

/// Something that appends one entry durably.
trait Sink: Send + Sync + 'static {
    fn append(&self, entry: Vec<u8>) -> impl Future<Output = bool> + Send;
}

struct LedgerSink(Arc<Ledger>);

impl Sink for LedgerSink {
    async fn append(&self, entry: Vec<u8>) -> bool {
        self.0.append(&entry).await.is_ok()
    }
}

struct PgSink {
    pool: PgPool,
    insert: String,
}

impl Sink for PgSink {
    async fn append(&self, entry: Vec<u8>) -> bool {
        sqlx::query(AssertSqlSafe(self.insert.clone()))
            .bind(entry)
            .execute(&self.pool)
            .await
            .is_ok()
    }
}

/// A distinct entry of `len` bytes: a counter, then filler that differs per writer.
fn entry(len: usize, writer: u64, n: u64) -> Vec<u8> {
    let mut e = vec![(writer % 251) as u8; len.max(16)];
    e[..8].copy_from_slice(&writer.to_be_bytes());
    e[8..16].copy_from_slice(&n.to_be_bytes());
    e.truncate(len);
    e
}

/// `writers` writers appending back to back for `seconds`: acknowledged appends/s and latency.
async fn closed_loop<S: Sink>(sink: Arc<S>, writers: usize, seconds: u64, len: usize) -> Measured {
    let recording = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let errors = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for w in 0..writers {
        let (sink, recording, stop, errors) = (
            sink.clone(),
            recording.clone(),
            stop.clone(),
            errors.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(1 << 16);
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let t = Instant::now();
                let ok = sink.append(entry(len, w as u64, n)).await;
                n += 1;
                if recording.load(Ordering::Relaxed) {
                    if ok {
                        lat.push(u32::try_from(t.elapsed().as_micros()).unwrap_or(u32::MAX));
                    } else {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            lat
        }));
    }
    tokio::time::sleep(WARM_UP).await;
    recording.store(true, Ordering::Relaxed);
    let start = Instant::now();
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    recording.store(false, Ordering::Relaxed);
    let elapsed = start.elapsed();
    stop.store(true, Ordering::Relaxed);
    let mut all = Vec::new();
    for t in tasks {
        if let Ok(l) = t.await {
            all.extend(l);
        }
    }
    Measured::of(all, elapsed, errors.load(Ordering::Relaxed))
}

/// Appends offered at `rate`/s for `seconds` whatever the acknowledgements do (open loop), from
/// a generator thread that wakes every `tick` and sends the appends that have fallen due.
/// Latency runs from each append's scheduled time, so both the tick and any stall count against
/// every append they delay (no coordinated omission).
async fn open_loop<S: Sink>(
    sink: Arc<S>,
    rate: u64,
    seconds: u64,
    len: usize,
    tick: Duration,
) -> Measured {
    let total = rate * seconds;
    let runtime = tokio::runtime::Handle::current();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(bool, Duration)>();
    let start = Instant::now() + Duration::from_millis(10);
    let generator = std::thread::spawn(move || {
        let mut sent = 0u64;
        while sent < total {
            let now = Instant::now();
            let due = if now < start {
                0
            } else {
                (((now - start).as_secs_f64() * rate as f64) as u64 + 1).min(total)
            };
            while sent < due {
                let scheduled = start + Duration::from_secs_f64(sent as f64 / rate as f64);
                let (sink, tx, n) = (sink.clone(), tx.clone(), sent);
                runtime.spawn(async move {
                    let ok = sink.append(entry(len, u64::MAX, n)).await;
                    let _ = tx.send((ok, scheduled.elapsed()));
                });
                sent += 1;
            }
            std::thread::sleep(tick);
        }
    });
    let mut lat = Vec::with_capacity(total as usize);
    let mut errors = 0;
    while let Some((ok, d)) = rx.recv().await {
        if ok {
            lat.push(u32::try_from(d.as_micros()).unwrap_or(u32::MAX));
        } else {
            errors += 1;
        }
    }
    let _ = generator.join();
    let elapsed = start.elapsed();
    let mut m = Measured::of(lat, elapsed, errors);
    // Achieved rate over the whole run, including draining the last acknowledgements.
    m.per_s = (total - errors) as f64 / elapsed.as_secs_f64();
    m
}

fn signer() -> anyhow::Result<NoteSigner> {
    Ok(NoteSigner::new(
        "rampart.bench/ledger",
        SigningKey::generate()?,
    )?)
}

/// A fresh single-zone ledger in `dir` with the server's defaults (fsync before ack) and the
/// given batch wait.
async fn open_ledger(
    dir: &Path,
    signer: NoteSigner,
    max_batch_wait: Duration,
) -> anyhow::Result<Arc<Ledger>> {
    let zone = LocalZone::open(dir).with_context(|| format!("ledger zone {}", dir.display()))?;
    let mut config = LedgerConfig::new(vec![Arc::new(zone)], signer);
    config.max_batch_wait = max_batch_wait;
    Ok(Arc::new(
        tokio::task::spawn_blocking(move || Ledger::open(config)).await??,
    ))
}

async fn close_ledger(ledger: Arc<Ledger>) -> anyhow::Result<()> {
    tokio::task::spawn_blocking(move || ledger.shutdown()).await?;
    Ok(())
}

/// The Postgres baseline: a throwaway database with one append-only table per measurement.
struct Postgres {
    db: PgTestDb,
    pool: PgPool,
    tables: u32,
}

impl Postgres {
    async fn connect(admin: &str) -> anyhow::Result<Self> {
        let db = PgTestDb::try_create_on(admin).await.with_context(
            || "creating the Postgres baseline's throwaway database (or pass --no-postgres)",
        )?;
        let options: PgConnectOptions = db.owner_url.parse()?;
        let pool = PgPoolOptions::new()
            .max_connections(MAX_PG_CONNECTIONS as u32)
            .connect_with(options.options([("synchronous_commit", "on")]))
            .await?;
        let on: String = sqlx::query_scalar("SHOW synchronous_commit")
            .fetch_one(&pool)
            .await?;
        anyhow::ensure!(on == "on", "synchronous_commit is {on}, not on");
        sqlx::query(
            "CREATE FUNCTION refuse_change() RETURNS trigger LANGUAGE plpgsql AS \
             $$ BEGIN RAISE EXCEPTION 'append-only'; END $$",
        )
        .execute(&pool)
        .await?;
        Ok(Self {
            db,
            pool,
            tables: 0,
        })
    }

    /// A new append-only table (identity key, timestamp, entry) and its insert.
    async fn sink(&mut self, connections: usize) -> anyhow::Result<Arc<PgSink>> {
        self.tables += 1;
        let t = format!("audit_log_{}", self.tables);
        for stmt in [
            format!(
                "CREATE TABLE {t} (seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, \
                 at timestamptz NOT NULL DEFAULT now(), entry bytea NOT NULL)"
            ),
            format!(
                "CREATE TRIGGER {t}_append_only BEFORE UPDATE OR DELETE ON {t} \
                 FOR EACH ROW EXECUTE FUNCTION refuse_change()"
            ),
            format!(
                "CREATE TRIGGER {t}_no_truncate BEFORE TRUNCATE ON {t} \
                 FOR EACH STATEMENT EXECUTE FUNCTION refuse_change()"
            ),
        ] {
            sqlx::query(AssertSqlSafe(stmt)).execute(&self.pool).await?;
        }
        let options: PgConnectOptions = self.db.owner_url.parse()?;
        let pool = PgPoolOptions::new()
            .max_connections(connections.clamp(1, MAX_PG_CONNECTIONS) as u32)
            .connect_with(options.options([("synchronous_commit", "on")]))
            .await?;
        Ok(Arc::new(PgSink {
            pool,
            insert: format!("INSERT INTO {t} (entry) VALUES ($1)"),
        }))
    }

    async fn close(self) -> anyhow::Result<()> {
        self.pool.close().await;
        self.db.try_drop().await?;
        Ok(())
    }
}

/// Lets the previous measurement's deferred work finish before the next starts: flushes every
/// dirty page to disk (`sync`), so neither system pays for the other's writeback. Best effort.
async fn settle() {
    let _ = tokio::process::Command::new("sync").status().await;
    tokio::time::sleep(Duration::from_millis(500)).await;
}

/// The filesystem type `path` lives on (from /proc/self/mountinfo), or "unknown".
fn filesystem_of(path: &Path) -> String {
    let Ok(path) = path.canonicalize() else {
        return "unknown".into();
    };
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return "unknown".into();
    };
    info.lines()
        .filter_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            let mount = left.split(' ').nth(4)?;
            let fs = right.split(' ').next()?;
            path.starts_with(mount)
                .then(|| (mount.len(), fs.to_owned()))
        })
        .max_by_key(|(len, _)| *len)
        .map_or_else(|| "unknown".into(), |(_, fs)| fs)
}

struct Row {
    writers: usize,
    ledger: Measured,
    postgres: Option<(Measured, usize)>,
}

pub async fn run(args: LedgerArgs) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(
        !args.writers.is_empty() && args.writers.iter().all(|&w| (1..=4096).contains(&w)),
        "--writers: each between 1 and 4096"
    );
    anyhow::ensure!(
        (1..=65_535).contains(&args.entry_bytes),
        "--entry-bytes: between 1 and 65535"
    );
    anyhow::ensure!(args.seconds >= 1, "--seconds: at least 1");
    anyhow::ensure!(
        (1..=1_000_000).contains(&args.rate),
        "--rate: between 1 and 1000000"
    );
    let parent = args.dir.clone().unwrap_or_else(std::env::temp_dir);
    let dir = scratch_dir(&parent)?;
    let fs = filesystem_of(&dir);
    if fs == "tmpfs" || fs == "ramfs" {
        eprintln!(
            "WARNING: {} is on {fs}: fsync costs nothing there, so these figures say nothing \
             about durability on a disk. Pass --dir on the disk you mean to measure.",
            dir.display()
        );
    }
    let result = measure(&args, &dir, &fs).await;
    let _ = std::fs::remove_dir_all(&dir);
    result
}

async fn measure(args: &LedgerArgs, dir: &Path, fs: &str) -> anyhow::Result<ExitCode> {
    let mut pg = if args.pg.no_postgres {
        None
    } else {
        Some(Postgres::connect(&args.pg.postgres).await?)
    };
    let note = |s: String| {
        if !args.json {
            eprintln!("{s}");
        }
    };
    // One log for every measurement, growing as a server's would (and deleting nothing while
    // measuring: on some filesystems, creating files soon after mass deletions is slow).
    let zone_dir = dir.join("ledger");
    let s = signer()?;
    let verifier = s.verifier();
    let ledger = open_ledger(&zone_dir, s, Duration::from_micros(args.max_batch_wait_us)).await?;
    let sink = Arc::new(LedgerSink(ledger.clone()));
    let mut rows = Vec::new();
    for &writers in &args.writers {
        settle().await;
        note(format!("ledger, {writers} writers …"));
        let measured = closed_loop(sink.clone(), writers, args.seconds, args.entry_bytes).await;
        let postgres = match pg.as_mut() {
            Some(pg) => {
                settle().await;
                note(format!("postgres, {writers} writers …"));
                let sink = pg.sink(writers).await?;
                let m = closed_loop(sink.clone(), writers, args.seconds, args.entry_bytes).await;
                sink.pool.close().await;
                Some((m, writers.min(MAX_PG_CONNECTIONS)))
            }
            None => None,
        };
        rows.push(Row {
            writers,
            ledger: measured,
            postgres,
        });
    }

    settle().await;
    note(format!("ledger, {} appends/s offered …", args.rate));
    let tick = Duration::from_micros(args.tick_us);
    let fixed = open_loop(sink, args.rate, args.seconds, args.entry_bytes, tick).await;
    close_ledger(ledger).await?;
    let fixed_pg = match pg.as_mut() {
        Some(pg) => {
            settle().await;
            note(format!("postgres, {} appends/s offered …", args.rate));
            let sink = pg.sink(MAX_PG_CONNECTIONS).await?;
            let m = open_loop(
                sink.clone(),
                args.rate,
                args.seconds,
                args.entry_bytes,
                tick,
            )
            .await;
            sink.pool.close().await;
            Some(m)
        }
        None => None,
    };
    if let Some(pg) = pg {
        pg.close().await?;
    }

    // Full-log verification of everything written above.
    note("verifying the whole log …".into());
    let report = tokio::task::spawn_blocking(move || {
        let zone = LocalZone::open_read_only(&zone_dir)?;
        anyhow::Ok(verify_zone(&zone, &verifier, &mut |_, _| {})?)
    })
    .await??;

    // The headline: the writer count at which the ledger did best.
    let best = rows
        .iter()
        .max_by(|a, b| a.ledger.per_s.total_cmp(&b.ledger.per_s))
        .context("at least one measurement")?;
    let ratio = |l: &Measured, p: &Option<(Measured, usize)>| {
        p.as_ref()
            .map(|(pm, _)| l.per_s / pm.per_s.max(f64::MIN_POSITIVE))
    };
    // Postgres at its own best concurrency, for the stricter comparison.
    let pg_best = rows
        .iter()
        .filter_map(|r| r.postgres.as_ref().map(|(m, _)| m.per_s))
        .reduce(f64::max);
    if args.json {
        let out = json!({
            "appends_per_s": best.ledger.per_s.round(),
            "p99_ack_ms": best.ledger.p99_ms,
            "p50_ack_ms": best.ledger.p50_ms,
            "writers": best.writers,
            "postgres_appends_per_s": best.postgres.as_ref().map(|(m, _)| m.per_s.round()),
            "ratio": ratio(&best.ledger, &best.postgres),
            "postgres_best_appends_per_s": pg_best.map(f64::round),
            "ratio_vs_postgres_best": pg_best.map(|p| best.ledger.per_s / p),
            "fixed_rate": {
                "offered_per_s": args.rate,
                "tick_us": args.tick_us,
                "ledger": fixed.json(),
                "postgres": fixed_pg.as_ref().map(Measured::json),
            },
            "p99_ack_ms_at_fixed_rate": fixed.p99_ms,
            "verify_entries_per_s": report.entries_per_second().round(),
            "verify_entries": report.entries,
            "verify_seconds": report.elapsed.as_secs_f64(),
            "runs": rows.iter().map(|r| json!({
                "writers": r.writers,
                "ledger": r.ledger.json(),
                "postgres": r.postgres.as_ref().map(|(m, _)| m.json()),
                "postgres_connections": r.postgres.as_ref().map(|(_, c)| c),
                "ratio": ratio(&r.ledger, &r.postgres),
            })).collect::<Vec<_>>(),
            "entry_bytes": args.entry_bytes,
            "max_batch_wait_us": args.max_batch_wait_us,
            "seconds": args.seconds,
            "filesystem": fs,
            "fsync_before_ack": true,
        });
        println!("{out}");
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "Appends acknowledged after fsync: {} B entries, {} s per row, logs on {fs} ({})",
        args.entry_bytes,
        args.seconds,
        dir.display()
    );
    println!(
        "{:>8} {:>12} {:>8} {:>8} {:>12} {:>8} {:>8} {:>8}",
        "writers", "ledger/s", "p50 ms", "p99 ms", "postgres/s", "p50 ms", "p99 ms", "ratio"
    );
    for r in &rows {
        let (pg_s, pg50, pg99) =
            r.postgres
                .as_ref()
                .map_or(("-".into(), "-".into(), "-".into()), |(m, _)| {
                    (
                        format!("{:.0}", m.per_s),
                        format!("{:.2}", m.p50_ms),
                        format!("{:.2}", m.p99_ms),
                    )
                });
        println!(
            "{:>8} {:>12.0} {:>8.2} {:>8.2} {:>12} {:>8} {:>8} {:>8}",
            r.writers,
            r.ledger.per_s,
            r.ledger.p50_ms,
            r.ledger.p99_ms,
            pg_s,
            pg50,
            pg99,
            ratio(&r.ledger, &r.postgres).map_or("-".into(), |x| format!("{x:.1}"))
        );
    }
    if let Some(p) = pg_best {
        println!(
            "Best ledger figure ({:.0}/s, {} writers) / best Postgres figure ({p:.0}/s): {:.1}",
            best.ledger.per_s,
            best.writers,
            best.ledger.per_s / p
        );
    }
    println!(
        "Offered {}/s (sent every {} µs): ledger achieved {:.0}/s, p50 {:.2} ms, p99 {:.2} ms{}",
        args.rate,
        args.tick_us,
        fixed.per_s,
        fixed.p50_ms,
        fixed.p99_ms,
        fixed_pg.map_or(String::new(), |m| format!(
            "; postgres achieved {:.0}/s, p50 {:.2} ms, p99 {:.2} ms",
            m.per_s, m.p50_ms, m.p99_ms
        ))
    );
    println!(
        "Full-log verification: {} entries, {} checkpoints, {} tiles in {:.2} s = {:.0} entries/s",
        report.entries,
        report.checkpoints,
        report.tiles,
        report.elapsed.as_secs_f64(),
        report.entries_per_second()
    );
    Ok(ExitCode::SUCCESS)
}
