//! Forward-only schema migrations, embedded in the binary, each applied in its own transaction and
//! recorded with a checksum so an edited migration is caught instead of silently diverging.

use rampart_crypto::sha256;
use sqlx::{Connection, PgConnection, SqliteConnection};

use crate::StoreError;

struct Migration {
    version: i64,
    name: &'static str,
    postgres: &'static str,
    sqlite: &'static str,
}

const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "foundation",
        postgres: include_str!("../migrations/postgres/0001_foundation.sql"),
        sqlite: include_str!("../migrations/sqlite/0001_foundation.sql"),
    },
    Migration {
        version: 2,
        name: "ledger",
        postgres: include_str!("../migrations/postgres/0002_ledger.sql"),
        sqlite: include_str!("../migrations/sqlite/0002_ledger.sql"),
    },
    Migration {
        version: 3,
        name: "secrets",
        postgres: include_str!("../migrations/postgres/0003_secrets.sql"),
        sqlite: include_str!("../migrations/sqlite/0003_secrets.sql"),
    },
    Migration {
        version: 4,
        name: "agents_leases",
        postgres: include_str!("../migrations/postgres/0004_agents_leases.sql"),
        sqlite: include_str!("../migrations/sqlite/0004_agents_leases.sql"),
    },
    Migration {
        version: 5,
        name: "secret_backends",
        postgres: include_str!("../migrations/postgres/0005_secret_backends.sql"),
        sqlite: include_str!("../migrations/sqlite/0005_secret_backends.sql"),
    },
    Migration {
        version: 6,
        name: "webhooks",
        postgres: include_str!("../migrations/postgres/0006_webhooks.sql"),
        sqlite: include_str!("../migrations/sqlite/0006_webhooks.sql"),
    },
    Migration {
        version: 7,
        name: "sentinel",
        postgres: include_str!("../migrations/postgres/0007_sentinel.sql"),
        sqlite: include_str!("../migrations/sqlite/0007_sentinel.sql"),
    },
    Migration {
        version: 8,
        name: "missions",
        postgres: include_str!("../migrations/postgres/0008_missions.sql"),
        sqlite: include_str!("../migrations/sqlite/0008_missions.sql"),
    },
    Migration {
        version: 9,
        name: "gateway",
        postgres: include_str!("../migrations/postgres/0009_gateway.sql"),
        sqlite: include_str!("../migrations/sqlite/0009_gateway.sql"),
    },
    Migration {
        version: 10,
        name: "gateway_profiles",
        postgres: include_str!("../migrations/postgres/0010_gateway_profiles.sql"),
        sqlite: include_str!("../migrations/sqlite/0010_gateway_profiles.sql"),
    },
];

/// Serialises concurrent start-ups of several servers against one Postgres database.
const PG_MIGRATION_LOCK: i64 = 0x7261_6d70_0001;

fn checksum(sql: &str) -> String {
    sha256(sql.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn latest() -> i64 {
    MIGRATIONS.last().map_or(0, |m| m.version)
}

fn check_applied(
    applied: &[(i64, String)],
    pick: fn(&Migration) -> &'static str,
) -> Result<(), StoreError> {
    for (version, sum) in applied {
        if *version > latest() {
            return Err(StoreError::Migration(format!(
                "the database is at schema version {version}, newer than this binary knows \
                 ({}); upgrade Rampart",
                latest()
            )));
        }
        if let Some(m) = MIGRATIONS.iter().find(|m| m.version == *version)
            && checksum(pick(m)) != *sum
        {
            return Err(StoreError::Migration(format!(
                "migration {version} (`{}`) differs from the one applied to this database",
                m.name
            )));
        }
    }
    Ok(())
}

pub(crate) async fn migrate_postgres(conn: &mut PgConnection) -> Result<(), StoreError> {
    sqlx::query("SELECT pg_advisory_lock($1)")
        .bind(PG_MIGRATION_LOCK)
        .execute(&mut *conn)
        .await?;
    let result = migrate_postgres_locked(conn).await;
    sqlx::query("SELECT pg_advisory_unlock($1)")
        .bind(PG_MIGRATION_LOCK)
        .execute(&mut *conn)
        .await?;
    result
}

async fn migrate_postgres_locked(conn: &mut PgConnection) -> Result<(), StoreError> {
    sqlx::raw_sql(
        "CREATE TABLE IF NOT EXISTS rampart_migrations (
            version    bigint PRIMARY KEY,
            name       text NOT NULL,
            checksum   text NOT NULL,
            applied_at timestamptz NOT NULL DEFAULT now()
        )",
    )
    .execute(&mut *conn)
    .await?;
    let applied: Vec<(i64, String)> =
        sqlx::query_as("SELECT version, checksum FROM rampart_migrations ORDER BY version")
            .fetch_all(&mut *conn)
            .await?;
    check_applied(&applied, |m| m.postgres)?;
    for m in MIGRATIONS
        .iter()
        .filter(|m| !applied.iter().any(|(v, _)| *v == m.version))
    {
        let mut tx = conn.begin().await?;
        sqlx::raw_sql(m.postgres)
            .execute(&mut *tx)
            .await
            .map_err(|e| StoreError::Migration(format!("{} ({}): {e}", m.version, m.name)))?;
        sqlx::query("INSERT INTO rampart_migrations (version, name, checksum) VALUES ($1, $2, $3)")
            .bind(m.version)
            .bind(m.name)
            .bind(checksum(m.postgres))
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        tracing::info!(
            version = m.version,
            name = m.name,
            "applied postgres migration"
        );
    }
    Ok(())
}

pub(crate) async fn migrate_sqlite(conn: &mut SqliteConnection) -> Result<(), StoreError> {
    // One IMMEDIATE transaction for the whole run: a second process starting at the same moment
    // waits, then finds everything applied.
    let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
    sqlx::raw_sql(
        "CREATE TABLE IF NOT EXISTS rampart_migrations (
            version    INTEGER PRIMARY KEY,
            name       TEXT NOT NULL,
            checksum   TEXT NOT NULL,
            applied_at INTEGER NOT NULL DEFAULT (unixepoch() * 1000)
        ) STRICT",
    )
    .execute(&mut *tx)
    .await?;
    let applied: Vec<(i64, String)> =
        sqlx::query_as("SELECT version, checksum FROM rampart_migrations ORDER BY version")
            .fetch_all(&mut *tx)
            .await?;
    check_applied(&applied, |m| m.sqlite)?;
    for m in MIGRATIONS
        .iter()
        .filter(|m| !applied.iter().any(|(v, _)| *v == m.version))
    {
        sqlx::raw_sql(m.sqlite)
            .execute(&mut *tx)
            .await
            .map_err(|e| StoreError::Migration(format!("{} ({}): {e}", m.version, m.name)))?;
        sqlx::query("INSERT INTO rampart_migrations (version, name, checksum) VALUES ($1, $2, $3)")
            .bind(m.version)
            .bind(m.name)
            .bind(checksum(m.sqlite))
            .execute(&mut *tx)
            .await?;
        tracing::info!(
            version = m.version,
            name = m.name,
            "applied sqlite migration"
        );
    }
    tx.commit().await?;
    Ok(())
}
