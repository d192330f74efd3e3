/// A storage failure. The `Display` text is for operators' logs, not for API clients: it can name
/// tables but never contains row values or connection secrets.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A uniqueness constraint refused the write.
    #[error("conflict: {0} already exists")]
    Conflict(&'static str),
    /// The database refused the write for the transaction's tenant (row-level security, or the
    /// SQLite scope guard).
    #[error("write refused outside the transaction's tenant scope")]
    ScopeViolation,
    /// A stored value could not be decoded.
    #[error("corrupt value in column `{column}`: {reason}")]
    Corrupt { column: String, reason: String },
    #[error("migration failed: {0}")]
    Migration(String),
    #[error("database setup failed: {0}")]
    Setup(String),
    #[error("invalid database url: {0}")]
    InvalidUrl(String),
    #[error("database error: {0}")]
    Database(#[source] sqlx::Error),
    /// The embedded store could not commit the group of write transactions this one joined;
    /// none of them took effect.
    #[error("database commit failed: {0}")]
    GroupCommit(String),
}

impl StoreError {
    /// The database could not be reached or the pool is exhausted: worth retrying later.
    #[must_use]
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            StoreError::GroupCommit(_)
                | StoreError::Database(
                    sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_)
                )
        )
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        if let sqlx::Error::Database(db) = &e {
            // 23505 (Postgres) / 2067, 1555 (SQLite extended codes): unique violation.
            if db.is_unique_violation() {
                return StoreError::Conflict(unique_what(db.constraint(), db.message()));
            }
            // 42501: insufficient_privilege, which is how Postgres reports a row-level-security
            // WITH CHECK failure.
            if db.code().as_deref() == Some("42501") {
                return StoreError::ScopeViolation;
            }
        }
        StoreError::Database(e)
    }
}

fn unique_what(constraint: Option<&str>, message: &str) -> &'static str {
    let hay = constraint.unwrap_or(message);
    if hay.contains("tenants") && hay.contains("name") {
        "a tenant with this name"
    } else if hay.contains("api_keys") {
        "an api key with this id"
    } else {
        "a row with this key"
    }
}
