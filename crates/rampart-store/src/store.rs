use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use rampart_crypto::{SecretString, random_array, scram_sha256_verifier};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{AssertSqlSafe, ConnectOptions, Connection, PgConnection, Postgres, Sqlite};

use crate::db::{AnyRow, Sql, Val, bind_pg, bind_sqlite};
use crate::group::{WriteTx, Writer};
use crate::migrate::{migrate_postgres, migrate_sqlite};
use crate::{Scope, StoreError};

/// Which engine a store runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// How to open a store.
#[derive(Debug)]
pub struct StoreOptions {
    /// `sqlite://<path>` or `postgres://…`. For Postgres these are the owner's (or a superuser's)
    /// credentials: they run the migrations and provision the app role, and serve no request.
    pub url: SecretString,
    /// Postgres: the credentials requests are served with. When absent, the owner URL's host and
    /// database with `app_role` / `app_password`, the role being created or updated as needed.
    pub app_url: Option<SecretString>,
    /// Postgres: the unprivileged role requests run as.
    pub app_role: String,
    /// Postgres: the app role's password when `app_url` is absent (Rampart derives it from the
    /// root key, so every node computes the same one).
    pub app_password: Option<SecretString>,
    /// Postgres pool size.
    pub max_connections: u32,
}

/// Table privileges of the Postgres app role. Append-only tables get no UPDATE or DELETE.
/// INVARIANT: every table the migrations create, except `rampart_migrations`, is listed here
/// (a test checks it against the catalog).
#[must_use]
pub fn postgres_app_grants() -> &'static [(&'static str, &'static str)] {
    &[
        ("meta", "SELECT, INSERT"),
        ("signing_keys", "SELECT, INSERT, UPDATE"),
        ("tenants", "SELECT, INSERT, UPDATE"),
        ("api_keys", "SELECT, INSERT, UPDATE"),
        ("token_families", "SELECT, INSERT, UPDATE"),
        ("refresh_tokens", "SELECT, INSERT, UPDATE, DELETE"),
        ("revoked_tokens", "SELECT, INSERT, DELETE"),
        ("audit_events", "SELECT, INSERT"),
        ("ledger_keys", "SELECT, INSERT, UPDATE"),
        ("tenant_keys", "SELECT, INSERT, UPDATE"),
        ("secrets", "SELECT, INSERT, UPDATE"),
        ("secret_versions", "SELECT, INSERT, UPDATE"),
        ("agents", "SELECT, INSERT, UPDATE"),
        ("postgres_engines", "SELECT, INSERT, UPDATE, DELETE"),
        ("leases", "SELECT, INSERT, UPDATE"),
        ("secret_backends", "SELECT, INSERT, UPDATE, DELETE"),
        ("webhook_endpoints", "SELECT, INSERT, UPDATE, DELETE"),
        ("webhook_deliveries", "SELECT, INSERT, UPDATE, DELETE"),
        ("sentinel_policies", "SELECT, INSERT"),
        ("sentinel_keys", "SELECT, INSERT, UPDATE"),
        ("sentinel_tokens", "SELECT, INSERT, DELETE"),
        ("sentinel_fingerprints", "SELECT, INSERT"),
        ("missions", "SELECT, INSERT, UPDATE"),
        ("principal_revocations", "SELECT, INSERT"),
        ("gateway_configs", "SELECT, INSERT"),
        ("gateway_usage", "SELECT, INSERT, UPDATE"),
        ("gateway_requests", "SELECT, INSERT, UPDATE"),
        ("gateway_profiles", "SELECT, INSERT"),
    ]
}

enum Pools {
    Postgres(PgPool),
    Sqlite {
        /// One connection: SQLite has one writer at a time, and queueing for it is fairer and
        /// cheaper than retrying on SQLITE_BUSY. Its transactions commit in groups.
        writer: Writer,
        readers: SqlitePool,
    },
}

/// A handle to the database; cheap to clone.
#[derive(Clone)]
pub struct Store(Arc<Pools>);

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Store({:?})", self.backend())
    }
}

impl Store {
    /// Opens (creating, migrating and provisioning as needed) the store at `opts.url`.
    pub async fn open(opts: &StoreOptions) -> Result<Self, StoreError> {
        let url = opts.url.expose();
        if url.starts_with("sqlite:") {
            open_sqlite(url).await
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            open_postgres(opts).await
        } else {
            Err(StoreError::InvalidUrl(
                "expected a `sqlite://` or `postgres://` url".into(),
            ))
        }
    }

    #[must_use]
    pub fn backend(&self) -> Backend {
        match &*self.0 {
            Pools::Postgres(_) => Backend::Postgres,
            Pools::Sqlite { .. } => Backend::Sqlite,
        }
    }

    /// A read-write transaction confined to `scope`.
    pub async fn begin(&self, scope: Scope) -> Result<Tx, StoreError> {
        match &*self.0 {
            Pools::Postgres(pool) => Tx::begin_pg(pool.begin().await?, scope).await,
            Pools::Sqlite { writer, .. } => Ok(Tx {
                conn: Conn::SqliteWrite(writer.begin().await?),
                scope,
            }),
        }
    }

    /// A read-only transaction confined to `scope`.
    pub async fn begin_read(&self, scope: Scope) -> Result<Tx, StoreError> {
        match &*self.0 {
            Pools::Postgres(pool) => {
                Tx::begin_pg(pool.begin_with("BEGIN READ ONLY").await?, scope).await
            }
            Pools::Sqlite { readers, .. } => Ok(Tx {
                conn: Conn::Sqlite(readers.begin().await?),
                scope,
            }),
        }
    }

    /// Whether the database answers.
    pub async fn ping(&self) -> Result<(), StoreError> {
        match &*self.0 {
            Pools::Postgres(pool) => sqlx::query("SELECT 1").execute(pool).await.map(drop)?,
            Pools::Sqlite { readers, .. } => {
                sqlx::query("SELECT 1").execute(readers).await.map(drop)?;
            }
        }
        Ok(())
    }

    /// Closes every connection, waiting for checked-out ones to come back.
    pub async fn close(&self) {
        match &*self.0 {
            Pools::Postgres(pool) => pool.close().await,
            Pools::Sqlite { writer, readers } => {
                readers.close().await;
                writer.close().await;
            }
        }
    }

    /// How many physical commits the embedded store's writer has made (each one fsync; several
    /// write transactions share one under load). `None` on Postgres.
    #[must_use]
    pub fn group_commits(&self) -> Option<u64> {
        match &*self.0 {
            Pools::Postgres(_) => None,
            Pools::Sqlite { writer, .. } => Some(writer.commits()),
        }
    }
}

async fn open_sqlite(url: &str) -> Result<Store, StoreError> {
    let base = SqliteConnectOptions::from_str(url)
        .map_err(|e| StoreError::InvalidUrl(e.to_string()))?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        // FULL: a commit is on disk before it is acknowledged, even across power loss.
        .synchronous(SqliteSynchronous::Full)
        .busy_timeout(Duration::from_secs(10))
        .foreign_keys(true)
        .disable_statement_logging();
    let mut conn = base.connect().await?;
    migrate_sqlite(&mut conn).await?;
    let writer = Writer::start(conn);
    let readers = SqlitePoolOptions::new()
        .max_connections(4)
        .acquire_timeout(Duration::from_secs(30))
        .connect_with(base.read_only(true))
        .await?;
    Ok(Store(Arc::new(Pools::Sqlite { writer, readers })))
}

async fn open_postgres(opts: &StoreOptions) -> Result<Store, StoreError> {
    let owner = PgConnectOptions::from_str(opts.url.expose())
        .map_err(|e| StoreError::InvalidUrl(e.to_string()))?
        // The provisioning statements carry a password verifier; keep statements out of logs.
        .disable_statement_logging();
    let mut conn = PgConnection::connect_with(&owner).await.map_err(|e| {
        StoreError::Setup(format!("cannot connect with the owner credentials: {e}"))
    })?;
    migrate_postgres(&mut conn).await?;

    let app = match &opts.app_url {
        Some(url) => PgConnectOptions::from_str(url.expose())
            .map_err(|e| StoreError::InvalidUrl(format!("app database url: {e}")))?,
        None => {
            let password = opts.app_password.as_ref().ok_or_else(|| {
                StoreError::Setup("no app role password and no app database url".into())
            })?;
            provision_app_role(&mut conn, &opts.app_role, password).await?;
            owner
                .clone()
                .username(&opts.app_role)
                .password(password.expose())
        }
    }
    .disable_statement_logging();
    grant_app_role(&mut conn, app.get_username()).await?;
    conn.close().await?;

    let pool = PgPoolOptions::new()
        .max_connections(opts.max_connections)
        .acquire_timeout(Duration::from_secs(10))
        .connect_with(app)
        .await
        .map_err(|e| StoreError::Setup(format!("cannot connect as the app role: {e}")))?;
    check_app_role(&pool).await?;
    Ok(Store(Arc::new(Pools::Postgres(pool))))
}

async fn provision_app_role(
    conn: &mut PgConnection,
    role: &str,
    password: &SecretString,
) -> Result<(), StoreError> {
    let existing: Option<(bool, bool)> =
        sqlx::query_as("SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = $1")
            .bind(role)
            .fetch_optional(&mut *conn)
            .await?;
    let salt: [u8; 16] = random_array().map_err(|e| StoreError::Setup(e.to_string()))?;
    let verifier = scram_sha256_verifier(password.expose().as_bytes(), &salt, 4096)
        .map_err(|e| StoreError::Setup(e.to_string()))?;
    // The verifier is base64 and `$`/`:` only; it cannot close the string literal.
    let ident = rampart_secrets::postgres::quote_ident(role);
    let set_password = format!("ALTER ROLE {ident} WITH LOGIN PASSWORD '{verifier}'");
    match existing {
        Some((true, _)) => {
            return Err(StoreError::Setup(format!(
                "the app role `{role}` is a superuser; choose another `postgres_app_role`"
            )));
        }
        Some((false, bypass)) => {
            if bypass {
                sqlx::raw_sql(AssertSqlSafe(format!("ALTER ROLE {ident} NOBYPASSRLS")))
                    .execute(&mut *conn)
                    .await?;
            }
        }
        None => {
            let create = format!(
                "CREATE ROLE {ident} NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE \
                 NOREPLICATION"
            );
            match sqlx::raw_sql(AssertSqlSafe(create))
                .execute(&mut *conn)
                .await
            {
                Ok(_) => tracing::info!(role, "created the postgres app role"),
                // Another node created it at the same moment.
                Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("42710") => {}
                Err(e) => {
                    return Err(StoreError::Setup(format!(
                        "cannot create the app role `{role}` ({e}); create it yourself \
                         (LOGIN, NOBYPASSRLS) and set `app_database_url`"
                    )));
                }
            }
        }
    }
    sqlx::raw_sql(AssertSqlSafe(set_password))
        .execute(&mut *conn)
        .await
        .map_err(|e| StoreError::Setup(format!("cannot set the app role's password: {e}")))?;
    Ok(())
}

async fn grant_app_role(conn: &mut PgConnection, role: &str) -> Result<(), StoreError> {
    let ident = rampart_secrets::postgres::quote_ident(role);
    let mut sql = format!(
        "REVOKE ALL ON ALL TABLES IN SCHEMA public FROM {ident};\n\
         GRANT USAGE ON SCHEMA public TO {ident};\n"
    );
    for (table, privileges) in postgres_app_grants() {
        sql.push_str(&format!("GRANT {privileges} ON {table} TO {ident};\n"));
    }
    sqlx::raw_sql(AssertSqlSafe(sql))
        .execute(&mut *conn)
        .await
        .map_err(|e| StoreError::Setup(format!("cannot grant the app role `{role}`: {e}")))?;
    Ok(())
}

/// Fail closed: refuse to serve if the app role could get around row-level security.
async fn check_app_role(pool: &PgPool) -> Result<(), StoreError> {
    let (user, superuser, bypass, owner_member): (String, bool, bool, Option<bool>) =
        sqlx::query_as(
            "SELECT r.rolname::text, r.rolsuper, r.rolbypassrls,
                    (SELECT bool_or(pg_has_role(current_user, c.relowner, 'MEMBER'))
                       FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                      WHERE n.nspname = 'public' AND c.relname = ANY($1))
               FROM pg_roles r WHERE r.rolname = current_user",
        )
        .bind(
            postgres_app_grants()
                .iter()
                .map(|(t, _)| (*t).to_owned())
                .collect::<Vec<_>>(),
        )
        .fetch_one(pool)
        .await?;
    if superuser || bypass || owner_member.unwrap_or(false) {
        return Err(StoreError::Setup(format!(
            "the app role `{user}` can bypass row-level security (superuser, BYPASSRLS, or \
             owner of the tables); refusing to serve with it"
        )));
    }
    Ok(())
}

enum Conn {
    Pg(sqlx::Transaction<'static, Postgres>),
    /// A read-only SQLite transaction.
    Sqlite(sqlx::Transaction<'static, Sqlite>),
    SqliteWrite(WriteTx),
}

/// A transaction confined to one [`Scope`]. Dropping it without [`Tx::commit`] rolls it back.
pub struct Tx {
    conn: Conn,
    scope: Scope,
}

impl std::fmt::Debug for Tx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Tx({:?})", self.scope)
    }
}

impl Tx {
    async fn begin_pg(
        mut tx: sqlx::Transaction<'static, Postgres>,
        scope: Scope,
    ) -> Result<Self, StoreError> {
        set_claims(&mut tx, &scope).await?;
        Ok(Self {
            conn: Conn::Pg(tx),
            scope,
        })
    }

    #[must_use]
    pub fn scope(&self) -> &Scope {
        &self.scope
    }

    #[must_use]
    pub fn backend(&self) -> Backend {
        match self.conn {
            Conn::Pg(_) => Backend::Postgres,
            Conn::Sqlite(_) | Conn::SqliteWrite(_) => Backend::Sqlite,
        }
    }

    /// Narrows or moves the transaction to another scope — e.g. from a credential lookup to the
    /// tenant the credential belongs to.
    pub async fn set_scope(&mut self, scope: Scope) -> Result<(), StoreError> {
        if let Conn::Pg(tx) = &mut self.conn {
            set_claims(tx, &scope).await?;
        }
        self.scope = scope;
        Ok(())
    }

    pub async fn commit(self) -> Result<(), StoreError> {
        match self.conn {
            Conn::Pg(tx) => tx.commit().await?,
            Conn::Sqlite(tx) => tx.commit().await?,
            Conn::SqliteWrite(tx) => tx.commit().await?,
        }
        Ok(())
    }

    pub async fn rollback(self) -> Result<(), StoreError> {
        match self.conn {
            Conn::Pg(tx) => tx.rollback().await?,
            Conn::Sqlite(tx) => tx.rollback().await?,
            Conn::SqliteWrite(tx) => tx.rollback().await?,
        }
        Ok(())
    }

    pub(crate) async fn execute(&mut self, sql: &Sql, vals: &[Val<'_>]) -> Result<u64, StoreError> {
        Ok(match &mut self.conn {
            Conn::Pg(tx) => bind_pg(sqlx::query(sql.pg), vals)
                .execute(&mut **tx)
                .await?
                .rows_affected(),
            Conn::Sqlite(tx) => bind_sqlite(sqlx::query(sql.sqlite), vals)
                .execute(&mut **tx)
                .await?
                .rows_affected(),
            Conn::SqliteWrite(tx) => bind_sqlite(sqlx::query(sql.sqlite), vals)
                .execute(tx.conn()?)
                .await?
                .rows_affected(),
        })
    }

    pub(crate) async fn fetch_optional(
        &mut self,
        sql: &Sql,
        vals: &[Val<'_>],
    ) -> Result<Option<AnyRow>, StoreError> {
        self.fetch_optional_as(sql, vals, true).await
    }

    /// [`Tx::fetch_optional`] planned afresh on every execution (an unnamed statement on
    /// Postgres): for a statement whose table can grow from empty to large between two
    /// autovacuum runs, where a cached generic plan made while it was empty (a sequential scan)
    /// would stay in use on every pooled connection.
    pub(crate) async fn fetch_optional_replanned(
        &mut self,
        sql: &Sql,
        vals: &[Val<'_>],
    ) -> Result<Option<AnyRow>, StoreError> {
        self.fetch_optional_as(sql, vals, false).await
    }

    async fn fetch_optional_as(
        &mut self,
        sql: &Sql,
        vals: &[Val<'_>],
        cached_plan: bool,
    ) -> Result<Option<AnyRow>, StoreError> {
        Ok(match &mut self.conn {
            Conn::Pg(tx) => bind_pg(sqlx::query(sql.pg).persistent(cached_plan), vals)
                .fetch_optional(&mut **tx)
                .await?
                .map(AnyRow::Pg),
            Conn::Sqlite(tx) => bind_sqlite(sqlx::query(sql.sqlite), vals)
                .fetch_optional(&mut **tx)
                .await?
                .map(AnyRow::Sqlite),
            Conn::SqliteWrite(tx) => bind_sqlite(sqlx::query(sql.sqlite), vals)
                .fetch_optional(tx.conn()?)
                .await?
                .map(AnyRow::Sqlite),
        })
    }

    pub(crate) async fn fetch_all(
        &mut self,
        sql: &Sql,
        vals: &[Val<'_>],
    ) -> Result<Vec<AnyRow>, StoreError> {
        Ok(match &mut self.conn {
            Conn::Pg(tx) => bind_pg(sqlx::query(sql.pg), vals)
                .fetch_all(&mut **tx)
                .await?
                .into_iter()
                .map(AnyRow::Pg)
                .collect(),
            Conn::Sqlite(tx) => bind_sqlite(sqlx::query(sql.sqlite), vals)
                .fetch_all(&mut **tx)
                .await?
                .into_iter()
                .map(AnyRow::Sqlite)
                .collect(),
            Conn::SqliteWrite(tx) => bind_sqlite(sqlx::query(sql.sqlite), vals)
                .fetch_all(tx.conn()?)
                .await?
                .into_iter()
                .map(AnyRow::Sqlite)
                .collect(),
        })
    }
}

async fn set_claims(
    tx: &mut sqlx::Transaction<'static, Postgres>,
    scope: &Scope,
) -> Result<(), StoreError> {
    // is_local = true: the setting ends with the transaction, so a pooled connection never
    // carries one request's claims into the next.
    sqlx::query("SELECT set_config('request.jwt.claims', $1, true)")
        .bind(scope.claims_json())
        .execute(&mut **tx)
        .await?;
    Ok(())
}
