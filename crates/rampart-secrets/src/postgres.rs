//! The dynamic Postgres engine: a lease is a fresh login role with a random password and a
//! `VALID UNTIL`, member of a configured template role; revoking it drops the role and ends
//! its sessions.
//!
//! The password never reaches the database server: the role is created with a SCRAM-SHA-256
//! verifier computed here, so it cannot land in the server's statement log. Even if Rampart is
//! down when a lease ends, `VALID UNTIL` stops new logins at the lease's expiry.

use std::str::FromStr;
use std::time::Duration;

use rampart_crypto::{SecretString, random_array, random_string, scram_sha256_verifier};
use rampart_types::{LeaseId, Timestamp};
use sqlx::postgres::PgConnectOptions;
use sqlx::{AssertSqlSafe, ConnectOptions, Connection, PgConnection};

/// How long connecting to the target database may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Length of a generated password (62-letter alphabet: about 190 bits).
const PASSWORD_LEN: usize = 32;
const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The stored connection URL does not parse (the URL itself is never repeated).
    #[error("the engine's connection URL is not a valid Postgres URL")]
    BadUrl,
    #[error("connecting to the engine's database timed out after {0:?}")]
    Timeout(Duration),
    #[error("the engine's database: {0}")]
    Database(String),
    #[error("{0}")]
    Crypto(String),
}

impl From<sqlx::Error> for EngineError {
    fn from(e: sqlx::Error) -> Self {
        // sqlx's messages carry server errors and I/O causes, never the connection password.
        Self::Database(e.to_string())
    }
}

/// Whether `name` may name a template role: a plain SQL identifier, so the engine's
/// configuration reads the same in `psql`.
#[must_use]
pub fn is_role_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    name.len() <= 63
        && bytes
            .next()
            .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// The role a lease gets: derived from the lease id, so a retried revocation finds it.
#[must_use]
pub fn role_for(lease: LeaseId) -> String {
    format!("rampart_{}", lease.as_uuid().simple())
}

/// `"name"` with embedded quotes doubled: a safe Postgres identifier for any name.
#[must_use]
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn valid_until(at: Timestamp) -> String {
    // RFC 3339 from our own clock: digits, `-`, `:`, `T`, `Z` — nothing that closes a literal.
    format!("'{}'", at.to_rfc3339())
}

/// Where a lease's role connects: host, port and database of the admin URL — never its
/// credentials. `None` if the URL does not parse.
#[must_use]
pub fn connection_target(url: &SecretString) -> Option<(String, u16, Option<String>)> {
    let opts = PgConnectOptions::from_str(url.expose()).ok()?;
    Some((
        opts.get_host().to_owned(),
        opts.get_port(),
        opts.get_database().map(str::to_owned),
    ))
}

async fn connect(url: &SecretString) -> Result<PgConnection, EngineError> {
    let opts = PgConnectOptions::from_str(url.expose())
        .map_err(|_| EngineError::BadUrl)?
        .disable_statement_logging();
    tokio::time::timeout(CONNECT_TIMEOUT, PgConnection::connect_with(&opts))
        .await
        .map_err(|_| EngineError::Timeout(CONNECT_TIMEOUT))?
        .map_err(EngineError::from)
}

/// Credentials of a new role.
pub struct IssuedRole {
    pub username: String,
    pub password: SecretString,
}

impl std::fmt::Debug for IssuedRole {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedRole")
            .field("username", &self.username)
            .field("password", &"[REDACTED]")
            .finish()
    }
}

/// Creates the lease's login role, member of `template`, valid until `until`.
pub async fn create_role(
    admin_url: &SecretString,
    template: &str,
    lease: LeaseId,
    until: Timestamp,
) -> Result<IssuedRole, EngineError> {
    let username = role_for(lease);
    let password = SecretString::new(
        random_string(ALPHABET, PASSWORD_LEN).map_err(|e| EngineError::Crypto(e.to_string()))?,
    );
    let salt: [u8; 16] = random_array().map_err(|e| EngineError::Crypto(e.to_string()))?;
    let verifier = scram_sha256_verifier(password.expose().as_bytes(), &salt, 4096)
        .map_err(|e| EngineError::Crypto(e.to_string()))?;
    let mut conn = connect(admin_url).await?;
    // The verifier is base64 with `$` and `:`; it cannot close the literal.
    let create = format!(
        "CREATE ROLE {} WITH LOGIN INHERIT PASSWORD '{verifier}' VALID UNTIL {} IN ROLE {}",
        quote_ident(&username),
        valid_until(until),
        quote_ident(template),
    );
    sqlx::raw_sql(AssertSqlSafe(create))
        .execute(&mut conn)
        .await?;
    conn.close().await?;
    Ok(IssuedRole { username, password })
}

/// Moves the role's `VALID UNTIL` (a renewal).
pub async fn extend_role(
    admin_url: &SecretString,
    lease: LeaseId,
    until: Timestamp,
) -> Result<(), EngineError> {
    let mut conn = connect(admin_url).await?;
    let alter = format!(
        "ALTER ROLE {} VALID UNTIL {}",
        quote_ident(&role_for(lease)),
        valid_until(until)
    );
    sqlx::raw_sql(AssertSqlSafe(alter))
        .execute(&mut conn)
        .await?;
    conn.close().await?;
    Ok(())
}

/// Drops the lease's role: no new logins, its sessions terminated, anything it owns in the
/// engine's database handed to `template`, its privileges revoked, the role gone. Idempotent: a
/// role that no longer exists is success, so a retry after a partial failure finishes the job.
pub async fn drop_role(
    admin_url: &SecretString,
    template: &str,
    lease: LeaseId,
) -> Result<(), EngineError> {
    let role = role_for(lease);
    let mut conn = connect(admin_url).await?;
    let exists: Option<i32> = sqlx::query_scalar("SELECT 1 FROM pg_roles WHERE rolname = $1")
        .bind(&role)
        .fetch_optional(&mut conn)
        .await?;
    if exists.is_some() {
        let name = quote_ident(&role);
        sqlx::raw_sql(AssertSqlSafe(format!("ALTER ROLE {name} NOLOGIN")))
            .execute(&mut conn)
            .await?;
        sqlx::query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1")
            .bind(&role)
            .execute(&mut conn)
            .await?;
        let cleanup = format!(
            "REASSIGN OWNED BY {name} TO {}; DROP OWNED BY {name}; DROP ROLE {name}",
            quote_ident(template)
        );
        let mut tx = conn.begin().await?;
        sqlx::raw_sql(AssertSqlSafe(cleanup))
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
    }
    conn.close().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_roles_are_plain_identifiers() {
        for ok in ["app_readonly", "_x", "R2", &"a".repeat(63)] {
            assert!(is_role_name(ok), "{ok}");
        }
        for bad in ["", "1abc", "a-b", "a\"b", "a b", "ü", &"a".repeat(64)] {
            assert!(!is_role_name(bad), "{bad}");
        }
    }

    #[test]
    fn role_names_fit_postgres_and_follow_the_lease() {
        let lease = LeaseId::random();
        let role = role_for(lease);
        assert!(role.len() <= 63);
        assert!(is_role_name(&role));
        assert_eq!(role, role_for(lease));
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
    }

    #[test]
    fn issued_credentials_do_not_print_the_password() {
        let issued = IssuedRole {
            username: "u".into(),
            password: SecretString::new("canary-password".into()),
        };
        assert!(!format!("{issued:?}").contains("canary"));
    }
}
