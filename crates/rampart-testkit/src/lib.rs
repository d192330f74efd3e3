//! Helpers for Rampart's tests and benchmark harnesses.
//!
//! What it is: throwaway Postgres databases ([`PgTestDb`]), a clock tests can move
//! ([`FakeClock`]), and a log sink tests can read ([`LogCapture`]).
//!
//! What it does not do: it never skips a test. A test that needs Postgres fails with a message
//! saying how to provide one when none is reachable.
#![allow(
    clippy::panic,
    clippy::expect_used,
    clippy::unwrap_used,
    reason = "test support: failing loudly is the point"
)]

use std::io::Write;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rampart_types::{Clock, Timestamp};
use sqlx::{ConnectOptions, Connection, PgConnection};

/// The Postgres server tests use: `RAMPART_TEST_POSTGRES_URL`, else the local one.
#[must_use]
pub fn postgres_admin_url() -> String {
    std::env::var("RAMPART_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// A fresh database (and a name for its app role) on the test Postgres server, dropped by
/// [`PgTestDb::drop_db`].
#[derive(Debug)]
pub struct PgTestDb {
    /// Owner (superuser) URL of the new database.
    pub owner_url: String,
    /// A role name unique to this database, for Rampart's app role.
    pub app_role: String,
    name: String,
    admin_url: String,
}

async fn connect(url: &str) -> Result<PgConnection, sqlx::Error> {
    let opts = url
        .parse::<sqlx::postgres::PgConnectOptions>()?
        .disable_statement_logging();
    PgConnection::connect_with(&opts).await
}

async fn admin_connection() -> PgConnection {
    let url = postgres_admin_url();
    match connect(&url).await {
        Ok(c) => c,
        Err(e) => panic!(
            "this test needs Postgres at {url} and could not connect ({e}). Run scripts/test \
             (it starts or installs Postgres) or set RAMPART_TEST_POSTGRES_URL."
        ),
    }
}

impl PgTestDb {
    /// A fresh database on the test server; panics (failing the test) when Postgres is
    /// unreachable.
    pub async fn create() -> Self {
        // Connect first, for the helpful message.
        admin_connection().await.close().await.ok();
        Self::try_create_on(&postgres_admin_url())
            .await
            .expect("create test database")
    }

    /// A fresh database on the server at `admin_url` (a superuser URL).
    pub async fn try_create_on(admin_url: &str) -> Result<Self, sqlx::Error> {
        let suffix = uuid::Uuid::new_v4().simple().to_string();
        let name = format!("rampart_t_{}", &suffix[..12]);
        let mut admin = connect(admin_url).await?;
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut admin)
            .await?;
        admin.close().await.ok();
        let owner_url = admin_url
            .parse::<sqlx::postgres::PgConnectOptions>()?
            .database(&name)
            .to_url_lossy()
            .to_string();
        Ok(Self {
            owner_url,
            app_role: format!("{name}_app"),
            name,
            admin_url: admin_url.to_owned(),
        })
    }

    /// Drops the database and the app role; panics on failure.
    pub async fn drop_db(self) {
        self.try_drop().await.expect("drop test database");
    }

    pub async fn try_drop(self) -> Result<(), sqlx::Error> {
        let mut admin = connect(&self.admin_url).await?;
        // Two statements: DROP DATABASE cannot share an (implicit) transaction.
        for stmt in [
            format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
            format!("DROP ROLE IF EXISTS {}", self.app_role),
        ] {
            sqlx::raw_sql(sqlx::AssertSqlSafe(stmt))
                .execute(&mut admin)
                .await?;
        }
        admin.close().await.ok();
        Ok(())
    }
}

/// A clock that only moves when told to.
#[derive(Debug, Clone)]
pub struct FakeClock(Arc<AtomicI64>);

impl FakeClock {
    #[must_use]
    pub fn at(t: Timestamp) -> Self {
        Self(Arc::new(AtomicI64::new(t.unix_millis())))
    }

    /// 2026-11-22T00:00:00Z.
    #[must_use]
    pub fn new() -> Self {
        Self::at(Timestamp::from_unix_seconds(1_795_305_600))
    }

    pub fn advance(&self, d: Duration) {
        let ms = i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        self.0.fetch_add(ms, Ordering::SeqCst);
    }
}

impl Default for FakeClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for FakeClock {
    fn now(&self) -> Timestamp {
        Timestamp::from_unix_millis(self.0.load(Ordering::SeqCst))
    }
}

/// Everything written to it, for tests that read the logs.
#[derive(Debug, Clone, Default)]
pub struct LogCapture(Arc<Mutex<Vec<u8>>>);

impl LogCapture {
    #[must_use]
    pub fn contents(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().expect("log buffer")).into_owned()
    }
}

impl Write for LogCapture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("log buffer").extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogCapture {
    type Writer = LogCapture;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

/// The Python interpreter of the test virtualenv `scripts/test` creates (interop clients, moto):
/// `RAMPART_TEST_PYTHON`, else `<target>/pyenv/bin/python`. Panics, saying how to get it, when
/// there is none.
#[must_use]
pub fn test_python() -> std::path::PathBuf {
    if let Ok(p) = std::env::var("RAMPART_TEST_PYTHON") {
        return p.into();
    }
    let target = std::env::var("CARGO_TARGET_DIR").map_or_else(
        |_| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"),
        std::path::PathBuf::from,
    );
    let p = target.join("pyenv/bin/python");
    assert!(
        p.exists(),
        "this test needs the Python environment at {}; run scripts/test, which creates it",
        p.display()
    );
    p
}

/// A `moto` S3 server in server mode on a free loopback port, killed on drop.
#[derive(Debug)]
pub struct MotoServer {
    /// `http://127.0.0.1:<port>`.
    pub endpoint: String,
    child: std::process::Child,
}

impl MotoServer {
    /// Starts one and waits until it answers.
    #[must_use]
    pub fn start() -> Self {
        // Tests of one binary start servers in parallel: between picking a free port and moto
        // binding it, another test could pick the same one and talk to the wrong server (which
        // then vanishes with its test). One start at a time closes that window.
        static STARTING: std::sync::Mutex<()> = std::sync::Mutex::new(());
        let _one_at_a_time = STARTING
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let python = test_python();
        let child = std::process::Command::new(&python)
            .args([
                "-m",
                "moto.server",
                "-H",
                "127.0.0.1",
                "-p",
                &port.to_string(),
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("starting moto with {}: {e}", python.display()));
        let server = Self {
            endpoint: format!("http://127.0.0.1:{port}"),
            child,
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "moto did not start on port {port} within 30 s (is moto[server] installed in {}?)",
                python.display()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        server
    }
}

impl Drop for MotoServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
