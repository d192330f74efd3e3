//! The thin layer that lets each repository method be written once for both backends: a query is
//! a pair of SQL texts (usually the same text — both engines take `$N` placeholders), its values
//! are [`Val`]s bound natively per engine (uuid/timestamptz on Postgres, text/integer
//! milliseconds on SQLite), and rows are read through [`AnyRow`].

use rampart_types::Timestamp;
use sqlx::postgres::{PgArguments, PgRow};
use sqlx::query::Query;
use sqlx::sqlite::{SqliteArguments, SqliteRow};
use sqlx::{Postgres, Row, Sqlite};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::StoreError;

/// A statement, spelled for each engine.
pub(crate) struct Sql {
    pub pg: &'static str,
    pub sqlite: &'static str,
}

/// `sql!("…")` for a statement both engines accept as is; `sql!(pg: "…", sqlite: "…")` otherwise.
macro_rules! sql {
    ($both:expr) => {
        $crate::db::Sql {
            pg: $both,
            sqlite: $both,
        }
    };
    (pg: $pg:expr, sqlite: $lite:expr $(,)?) => {
        $crate::db::Sql {
            pg: $pg,
            sqlite: $lite,
        }
    };
}
pub(crate) use sql;

/// A value to bind.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Val<'a> {
    Uuid(Uuid),
    OptUuid(Option<Uuid>),
    Text(&'a str),
    OptText(Option<&'a str>),
    Ts(Timestamp),
    OptTs(Option<Timestamp>),
    Bytes(&'a [u8]),
    OptBytes(Option<&'a [u8]>),
    Int(i64),
    OptInt(Option<i64>),
    Json(&'a serde_json::Value),
}

pub(crate) fn bind_pg<'q>(
    mut q: Query<'q, Postgres, PgArguments>,
    vals: &[Val<'_>],
) -> Query<'q, Postgres, PgArguments> {
    for v in vals {
        q = match *v {
            Val::Uuid(u) => q.bind(u),
            Val::OptUuid(u) => q.bind(u),
            Val::Text(s) => q.bind(s),
            Val::OptText(s) => q.bind(s),
            Val::Ts(t) => q.bind(t.to_offset_date_time()),
            Val::OptTs(t) => q.bind(t.map(Timestamp::to_offset_date_time)),
            Val::Bytes(b) => q.bind(b),
            Val::OptBytes(b) => q.bind(b),
            Val::Int(i) => q.bind(i),
            Val::OptInt(i) => q.bind(i),
            Val::Json(j) => q.bind(sqlx::types::Json(j)),
        };
    }
    q
}

pub(crate) fn bind_sqlite<'q>(
    mut q: Query<'q, Sqlite, SqliteArguments>,
    vals: &[Val<'_>],
) -> Query<'q, Sqlite, SqliteArguments> {
    for v in vals {
        q = match *v {
            Val::Uuid(u) => q.bind(u.hyphenated().to_string()),
            Val::OptUuid(u) => q.bind(u.map(|u| u.hyphenated().to_string())),
            Val::Text(s) => q.bind(s.to_owned()),
            Val::OptText(s) => q.bind(s.map(str::to_owned)),
            Val::Ts(t) => q.bind(t.unix_millis()),
            Val::OptTs(t) => q.bind(t.map(Timestamp::unix_millis)),
            Val::Bytes(b) => q.bind(b.to_vec()),
            Val::OptBytes(b) => q.bind(b.map(<[u8]>::to_vec)),
            Val::Int(i) => q.bind(i),
            Val::OptInt(i) => q.bind(i),
            Val::Json(j) => q.bind(j.to_string()),
        };
    }
    q
}

/// A row from either engine.
pub(crate) enum AnyRow {
    Pg(PgRow),
    Sqlite(SqliteRow),
}

fn corrupt(column: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt {
        column: column.to_owned(),
        reason: e.to_string(),
    }
}

impl AnyRow {
    pub fn uuid(&self, col: &str) -> Result<Uuid, StoreError> {
        match self {
            AnyRow::Pg(r) => r.try_get::<Uuid, _>(col).map_err(|e| corrupt(col, e)),
            AnyRow::Sqlite(r) => {
                let s: String = r.try_get(col).map_err(|e| corrupt(col, e))?;
                Uuid::parse_str(&s).map_err(|e| corrupt(col, e))
            }
        }
    }

    pub fn opt_uuid(&self, col: &str) -> Result<Option<Uuid>, StoreError> {
        match self {
            AnyRow::Pg(r) => r
                .try_get::<Option<Uuid>, _>(col)
                .map_err(|e| corrupt(col, e)),
            AnyRow::Sqlite(r) => {
                let s: Option<String> = r.try_get(col).map_err(|e| corrupt(col, e))?;
                s.map(|s| Uuid::parse_str(&s).map_err(|e| corrupt(col, e)))
                    .transpose()
            }
        }
    }

    pub fn text(&self, col: &str) -> Result<String, StoreError> {
        match self {
            AnyRow::Pg(r) => r.try_get(col),
            AnyRow::Sqlite(r) => r.try_get(col),
        }
        .map_err(|e| corrupt(col, e))
    }

    pub fn opt_text(&self, col: &str) -> Result<Option<String>, StoreError> {
        match self {
            AnyRow::Pg(r) => r.try_get(col),
            AnyRow::Sqlite(r) => r.try_get(col),
        }
        .map_err(|e| corrupt(col, e))
    }

    pub fn ts(&self, col: &str) -> Result<Timestamp, StoreError> {
        match self {
            AnyRow::Pg(r) => r
                .try_get::<OffsetDateTime, _>(col)
                .map(Timestamp::from_offset_date_time),
            AnyRow::Sqlite(r) => r.try_get::<i64, _>(col).map(Timestamp::from_unix_millis),
        }
        .map_err(|e| corrupt(col, e))
    }

    pub fn opt_ts(&self, col: &str) -> Result<Option<Timestamp>, StoreError> {
        match self {
            AnyRow::Pg(r) => r
                .try_get::<Option<OffsetDateTime>, _>(col)
                .map(|t| t.map(Timestamp::from_offset_date_time)),
            AnyRow::Sqlite(r) => r
                .try_get::<Option<i64>, _>(col)
                .map(|t| t.map(Timestamp::from_unix_millis)),
        }
        .map_err(|e| corrupt(col, e))
    }

    pub fn bytes(&self, col: &str) -> Result<Vec<u8>, StoreError> {
        match self {
            AnyRow::Pg(r) => r.try_get(col),
            AnyRow::Sqlite(r) => r.try_get(col),
        }
        .map_err(|e| corrupt(col, e))
    }

    pub fn opt_bytes(&self, col: &str) -> Result<Option<Vec<u8>>, StoreError> {
        match self {
            AnyRow::Pg(r) => r.try_get(col),
            AnyRow::Sqlite(r) => r.try_get(col),
        }
        .map_err(|e| corrupt(col, e))
    }

    pub fn int(&self, col: &str) -> Result<i64, StoreError> {
        match self {
            AnyRow::Pg(r) => r.try_get(col),
            AnyRow::Sqlite(r) => r.try_get(col),
        }
        .map_err(|e| corrupt(col, e))
    }

    pub fn opt_int(&self, col: &str) -> Result<Option<i64>, StoreError> {
        match self {
            AnyRow::Pg(r) => r.try_get(col),
            AnyRow::Sqlite(r) => r.try_get(col),
        }
        .map_err(|e| corrupt(col, e))
    }

    pub fn json(&self, col: &str) -> Result<serde_json::Value, StoreError> {
        match self {
            AnyRow::Pg(r) => r.try_get::<serde_json::Value, _>(col),
            AnyRow::Sqlite(r) => {
                let s: String = r.try_get(col).map_err(|e| corrupt(col, e))?;
                return serde_json::from_str(&s).map_err(|e| corrupt(col, e));
            }
        }
        .map_err(|e| corrupt(col, e))
    }
}
