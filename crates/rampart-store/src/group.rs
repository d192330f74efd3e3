//! SQLite's one writer, shared by write transactions that commit together (group commit).
//!
//! SQLite allows one writer at a time and, at `synchronous = FULL`, every commit waits for an
//! fsync of the WAL. With one physical transaction per [`crate::Tx`], the embedded store does
//! one write transaction per fsync and holds the writer through each fsync. Here every write
//! transaction is a savepoint inside a physical transaction that several share:
//!
//! * [`Writer::begin`] takes the writer (first come, first served), opens the physical
//!   transaction if none is open, and opens the transaction's own savepoint.
//! * [`WriteTx::commit`] releases the savepoint, lets go of the writer and waits for the
//!   *committer*. The committer queues for the writer like everyone else, so every transaction
//!   that was already waiting runs first; then it commits the physical transaction (one fsync for
//!   all of them) and tells each one the result. A commit therefore still returns only once its
//!   changes are on disk, and fails if they did not get there.
//! * A rollback undoes only the transaction's own savepoint. So does a transaction dropped
//!   without a commit, or a caller cancelled half-way: whoever takes the writer next undoes what
//!   it left. When that cannot be done with certainty, every transaction of the open group fails
//!   rather than commit something other than what it wrote.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use sqlx::{AssertSqlSafe, Connection, SqliteConnection};
use tokio::sync::{Mutex, Notify, OwnedMutexGuard, oneshot};

use crate::StoreError;

/// How long a transaction waits for the writer before giving up (as the pool used to).
const WAIT_FOR_WRITER: Duration = Duration::from_secs(30);

type Outcome = Result<(), String>;

struct State {
    /// `None` once the store is closed.
    conn: Option<SqliteConnection>,
    /// A physical transaction is open.
    open: bool,
    /// The savepoint of the transaction holding the writer, or of one that let go of it without
    /// committing or rolling back: the next holder undoes it.
    current: Option<u64>,
    next_savepoint: u64,
    /// Transactions whose savepoints were released into the open physical transaction, waiting
    /// for it to commit.
    waiting: Vec<oneshot::Sender<Outcome>>,
}

impl State {
    fn conn(&mut self) -> Result<&mut SqliteConnection, StoreError> {
        self.conn
            .as_mut()
            .ok_or(StoreError::Database(sqlx::Error::PoolClosed))
    }

    async fn exec(&mut self, sql: impl Into<String>) -> Result<(), StoreError> {
        sqlx::raw_sql(AssertSqlSafe(sql.into()))
            .execute(self.conn()?)
            .await?;
        Ok(())
    }

    /// Undoes the savepoint a transaction left behind, if any.
    async fn undo_left_behind(&mut self) {
        if let Some(sp) = self.current.take()
            && let Err(e) = self.rollback_to(sp).await
        {
            self.fail_group(&format!(
                "a write transaction ended half-way and could not be undone ({e})"
            ))
            .await;
        }
    }

    async fn rollback_to(&mut self, sp: u64) -> Result<(), StoreError> {
        self.exec(format!(
            "ROLLBACK TO SAVEPOINT rampart_{sp}; RELEASE SAVEPOINT rampart_{sp}"
        ))
        .await
    }

    /// Rolls the physical transaction back and fails every transaction waiting for it.
    async fn fail_group(&mut self, why: &str) {
        tracing::error!(
            waiting = self.waiting.len(),
            "sqlite group commit failed: {why}"
        );
        // It may already be gone (SQLite rolls back by itself after some errors).
        let _ = self.exec("ROLLBACK").await;
        self.open = false;
        self.current = None;
        for w in self.waiting.drain(..) {
            let _ = w.send(Err(why.to_owned()));
        }
    }

    /// The committer's turn: commits what is waiting (or rolls back a physical transaction that
    /// holds nothing committed) and tells every waiting transaction the outcome.
    async fn settle(&mut self, commits: &AtomicU64) {
        self.undo_left_behind().await;
        if !self.open {
            return;
        }
        if self.waiting.is_empty() {
            if let Err(e) = self.exec("ROLLBACK").await {
                tracing::warn!("rolling back an empty sqlite transaction: {e}");
            }
            self.open = false;
            return;
        }
        match self.exec("COMMIT").await {
            Ok(()) => {
                commits.fetch_add(1, Ordering::Relaxed);
                self.open = false;
                for w in self.waiting.drain(..) {
                    let _ = w.send(Ok(()));
                }
            }
            Err(e) => self.fail_group(&format!("commit: {e}")).await,
        }
    }
}

/// The embedded store's writer. Dropping it ends the committer task.
pub(crate) struct Writer {
    state: Arc<Mutex<State>>,
    wake: Arc<Notify>,
    commits: Arc<AtomicU64>,
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.wake.notify_one();
    }
}

impl Writer {
    /// Takes `conn` (migrated, in WAL mode) as the one writer and starts the committer task.
    pub(crate) fn start(conn: SqliteConnection) -> Self {
        let state = Arc::new(Mutex::new(State {
            conn: Some(conn),
            open: false,
            current: None,
            next_savepoint: 0,
            waiting: Vec::new(),
        }));
        let wake = Arc::new(Notify::new());
        let commits = Arc::new(AtomicU64::new(0));
        tokio::spawn(commit_groups(
            Arc::downgrade(&state),
            wake.clone(),
            commits.clone(),
        ));
        Self {
            state,
            wake,
            commits,
        }
    }

    /// A write transaction: a savepoint of the open physical transaction.
    pub(crate) async fn begin(&self) -> Result<WriteTx, StoreError> {
        let guard = tokio::time::timeout(WAIT_FOR_WRITER, self.state.clone().lock_owned())
            .await
            .map_err(|_| StoreError::Database(sqlx::Error::PoolTimedOut))?;
        // From here a cancelled or failed begin is cleaned up like any dropped transaction.
        let mut tx = WriteTx {
            guard: Some(guard),
            wake: self.wake.clone(),
        };
        let s = tx.state()?;
        s.undo_left_behind().await;
        if !s.open {
            if s.exec("BEGIN IMMEDIATE").await.is_err() {
                // A begin cancelled earlier may have left a transaction open with nothing
                // anyone committed in it.
                let _ = s.exec("ROLLBACK").await;
                s.exec("BEGIN IMMEDIATE").await?;
            }
            s.open = true;
        }
        let sp = s.next_savepoint;
        s.next_savepoint += 1;
        s.current = Some(sp);
        s.exec(format!("SAVEPOINT rampart_{sp}")).await?;
        Ok(tx)
    }

    /// Physical commits so far (each one fsync), for tests and benchmarks.
    #[must_use]
    pub(crate) fn commits(&self) -> u64 {
        self.commits.load(Ordering::Relaxed)
    }

    /// Commits what is waiting and closes the connection; later transactions fail.
    pub(crate) async fn close(&self) {
        let mut s = self.state.lock().await;
        s.settle(&self.commits).await;
        if let Some(conn) = s.conn.take()
            && let Err(e) = conn.close().await
        {
            tracing::warn!("closing the sqlite writer: {e}");
        }
    }
}

/// The committer: on every nudge, waits its turn for the writer and settles the open group.
async fn commit_groups(state: Weak<Mutex<State>>, wake: Arc<Notify>, commits: Arc<AtomicU64>) {
    loop {
        wake.notified().await;
        let Some(state) = state.upgrade() else {
            return;
        };
        state.lock().await.settle(&commits).await;
    }
}

/// One write transaction, holding the writer until it commits or rolls back.
pub(crate) struct WriteTx {
    guard: Option<OwnedMutexGuard<State>>,
    wake: Arc<Notify>,
}

impl Drop for WriteTx {
    fn drop(&mut self) {
        // Let go of the writer; whoever takes it next (the committer, at the latest) undoes
        // this transaction's savepoint if it is still open.
        if self.guard.take().is_some() {
            self.wake.notify_one();
        }
    }
}

impl WriteTx {
    fn state(&mut self) -> Result<&mut State, StoreError> {
        self.guard
            .as_deref_mut()
            .ok_or(StoreError::Database(sqlx::Error::PoolClosed))
    }

    pub(crate) fn conn(&mut self) -> Result<&mut SqliteConnection, StoreError> {
        self.state()?.conn()
    }

    /// Releases the savepoint and waits until the group it joined is on disk.
    pub(crate) async fn commit(mut self) -> Result<(), StoreError> {
        let s = self.state()?;
        let sp = s
            .current
            .ok_or(StoreError::Database(sqlx::Error::PoolClosed))?;
        // On failure the savepoint stays `current` and is undone (or the group failed) by the
        // next holder, once `self` drops.
        s.exec(format!("RELEASE SAVEPOINT rampart_{sp}")).await?;
        s.current = None;
        let (done, outcome) = oneshot::channel();
        s.waiting.push(done);
        drop(self);
        match outcome.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(why)) => Err(StoreError::GroupCommit(why)),
            Err(_) => Err(StoreError::GroupCommit("the store was closed".into())),
        }
    }

    /// Undoes this transaction's savepoint (only its own changes).
    pub(crate) async fn rollback(mut self) -> Result<(), StoreError> {
        let s = self.state()?;
        if let Some(sp) = s.current.take()
            && let Err(e) = s.rollback_to(sp).await
        {
            s.fail_group(&format!("rollback: {e}")).await;
            return Err(e);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::str::FromStr;

    use sqlx::ConnectOptions;
    use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};

    use super::*;

    async fn open(dir: &tempfile::TempDir) -> (Writer, SqliteConnectOptions) {
        let opts = SqliteConnectOptions::from_str(&format!(
            "sqlite://{}",
            dir.path().join("t.db").display()
        ))
        .unwrap()
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full);
        let mut conn = opts.connect().await.unwrap();
        sqlx::raw_sql("CREATE TABLE t (id INTEGER PRIMARY KEY)")
            .execute(&mut conn)
            .await
            .unwrap();
        (Writer::start(conn), opts)
    }

    async fn insert(tx: &mut WriteTx, id: i64) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO t (id) VALUES (?)")
            .bind(id)
            .execute(tx.conn()?)
            .await?;
        Ok(())
    }

    async fn rows(opts: &SqliteConnectOptions) -> BTreeSet<i64> {
        let mut conn = opts.connect().await.unwrap();
        sqlx::query_scalar::<_, i64>("SELECT id FROM t")
            .fetch_all(&mut conn)
            .await
            .unwrap()
            .into_iter()
            .collect()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn transactions_queued_behind_one_share_its_commit() {
        let dir = tempfile::tempdir().unwrap();
        let (writer, opts) = open(&dir).await;
        let writer = Arc::new(writer);
        let mut first = writer.begin().await.unwrap();
        insert(&mut first, 0).await.unwrap();
        let mut queued = Vec::new();
        let started = Arc::new(AtomicU64::new(0));
        for id in 1..=10 {
            let writer = writer.clone();
            let started = started.clone();
            queued.push(tokio::spawn(async move {
                started.fetch_add(1, Ordering::SeqCst);
                let mut tx = writer.begin().await.unwrap();
                insert(&mut tx, id).await.unwrap();
                tx.commit().await
            }));
        }
        // Let all ten queue for the writer behind `first`: each queues in the same poll that
        // counted it, so once all are counted a short wait covers the last few instructions,
        // however slowly the tasks were scheduled.
        while started.load(Ordering::SeqCst) < 10 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        first.commit().await.unwrap();
        for q in queued {
            q.await.unwrap().unwrap();
        }
        assert_eq!(rows(&opts).await, (0..=10).collect());
        assert_eq!(writer.commits(), 1, "eleven transactions, one fsync");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_rollback_or_a_drop_undoes_only_its_own_transaction() {
        let dir = tempfile::tempdir().unwrap();
        let (writer, opts) = open(&dir).await;
        let writer = Arc::new(writer);
        // All four in one group: the first commit waits for the committer, which queues behind
        // the others.
        let mut a = writer.begin().await.unwrap();
        insert(&mut a, 1).await.unwrap();
        let w = writer.clone();
        let rest = tokio::spawn(async move {
            let mut b = w.begin().await.unwrap();
            insert(&mut b, 2).await.unwrap();
            b.rollback().await.unwrap();
            let mut c = w.begin().await.unwrap();
            insert(&mut c, 3).await.unwrap();
            drop(c);
            let mut d = w.begin().await.unwrap();
            insert(&mut d, 4).await.unwrap();
            // A unique violation fails the statement, not the transaction.
            assert!(insert(&mut d, 1).await.is_err());
            d.commit().await.unwrap();
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        a.commit().await.unwrap();
        rest.await.unwrap();
        assert_eq!(rows(&opts).await, BTreeSet::from([1, 4]));
    }

    /// Random commits, rollbacks, drops and cancellations at random points, from many tasks:
    /// every commit that returned `Ok` is on disk, and nothing rolled back, dropped or refused
    /// is. (A cancelled commit may have landed or not; the caller never learned.)
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn no_acknowledged_commit_is_lost_and_nothing_abandoned_lands() {
        #[derive(Clone, Copy, Debug, PartialEq)]
        enum End {
            Committed,
            Refused,
            Undone,
            Unknown,
        }
        let dir = tempfile::tempdir().unwrap();
        let (writer, opts) = open(&dir).await;
        let writer = Arc::new(writer);
        let mut tasks = Vec::new();
        for task in 0..8_i64 {
            let writer = writer.clone();
            tasks.push(tokio::spawn(async move {
                let mut seed = 0x9e37_79b9_7f4a_7c15_u64 ^ (task as u64 + 1);
                let mut next = move || {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    seed
                };
                let mut ends = Vec::new();
                for i in 0..60_i64 {
                    let id = task * 1000 + i;
                    let cancel_after = Duration::from_micros(next() % 400);
                    // One begin in four may be cancelled; the others wait their turn, so that
                    // commits go through however loaded the machine is.
                    let began = if next() % 4 == 0 {
                        tokio::time::timeout(cancel_after * 4, writer.begin()).await
                    } else {
                        Ok(writer.begin().await)
                    };
                    let Ok(Ok(mut tx)) = began else {
                        continue;
                    };
                    insert(&mut tx, id).await.unwrap();
                    let end = match next() % 4 {
                        0 => {
                            tx.rollback().await.unwrap();
                            End::Undone
                        }
                        1 => {
                            drop(tx);
                            End::Undone
                        }
                        2 => match tokio::time::timeout(cancel_after, tx.commit()).await {
                            Ok(Ok(())) => End::Committed,
                            Ok(Err(_)) => End::Refused,
                            Err(_) => End::Unknown,
                        },
                        _ => match tx.commit().await {
                            Ok(()) => End::Committed,
                            Err(_) => End::Refused,
                        },
                    };
                    ends.push((id, end));
                }
                ends
            }));
        }
        let mut ends = Vec::new();
        for t in tasks {
            ends.extend(t.await.unwrap());
        }
        writer.close().await;
        let on_disk = rows(&opts).await;
        let mut committed = 0;
        for (id, end) in ends {
            match end {
                End::Committed => {
                    committed += 1;
                    assert!(on_disk.contains(&id), "acknowledged {id} is lost");
                }
                End::Refused | End::Undone => {
                    assert!(!on_disk.contains(&id), "{id} landed although {end:?}");
                }
                End::Unknown => {}
            }
        }
        assert!(committed > 20, "only {committed} commits went through");
    }
}
