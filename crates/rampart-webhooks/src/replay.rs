//! Remembering accepted message ids for as long as their timestamps are inside the window.

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;

/// What a claim on an id found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// The id was free; it is now held until its expiry.
    Claimed,
    /// The id is already held.
    Seen,
    /// The guard is at capacity with ids that have not expired (refuse, do not forget).
    Full,
}

/// Where accepted `webhook-id`s are remembered. Several receivers behind a load balancer need a
/// shared implementation (a database table with a unique key); [`MemoryReplayGuard`] serves one
/// process.
pub trait ReplayGuard: Send + Sync {
    /// Holds `id` until `expires_at` (Unix seconds), unless it is held already.
    fn claim(&self, id: &str, expires_at: i64, now: i64) -> Claim;
    /// Gives up a claim: the message was not processed (the handler failed), so the sender's
    /// retry of it — same id, new timestamp and signature — must be let through.
    fn release(&self, id: &str);
}

/// An in-memory guard holding at most `capacity` unexpired ids.
#[derive(Debug)]
pub struct MemoryReplayGuard {
    capacity: usize,
    inner: Mutex<Held>,
}

#[derive(Debug, Default)]
struct Held {
    by_id: HashMap<String, i64>,
    by_expiry: BTreeSet<(i64, String)>,
}

impl MemoryReplayGuard {
    #[must_use]
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            inner: Mutex::new(Held::default()),
        }
    }

    /// How many ids are held (expired ones are dropped on the next claim).
    #[must_use]
    pub fn len(&self) -> usize {
        self.inner.lock().map(|h| h.by_id.len()).unwrap_or(0)
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl ReplayGuard for MemoryReplayGuard {
    fn claim(&self, id: &str, expires_at: i64, now: i64) -> Claim {
        // A poisoned lock means another claim panicked half-way: refuse rather than guess.
        let Ok(mut held) = self.inner.lock() else {
            return Claim::Full;
        };
        while let Some((exp, _)) = held.by_expiry.first() {
            if *exp >= now {
                break;
            }
            if let Some((_, old)) = held.by_expiry.pop_first() {
                held.by_id.remove(&old);
            }
        }
        if held.by_id.contains_key(id) {
            return Claim::Seen;
        }
        if held.by_id.len() >= self.capacity {
            return Claim::Full;
        }
        held.by_id.insert(id.to_owned(), expires_at);
        held.by_expiry.insert((expires_at, id.to_owned()));
        Claim::Claimed
    }

    fn release(&self, id: &str) {
        if let Ok(mut held) = self.inner.lock()
            && let Some(exp) = held.by_id.remove(id)
        {
            held.by_expiry.remove(&(exp, id.to_owned()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_expire_and_capacity_is_a_hard_limit() {
        let g = MemoryReplayGuard::new(2);
        assert_eq!(g.claim("a", 10, 0), Claim::Claimed);
        assert_eq!(g.claim("a", 10, 5), Claim::Seen);
        assert_eq!(g.claim("b", 20, 5), Claim::Claimed);
        assert_eq!(g.claim("c", 20, 5), Claim::Full);
        // At 11 `a` has expired and makes room.
        assert_eq!(g.claim("c", 30, 11), Claim::Claimed);
        assert_eq!(g.claim("a", 30, 11), Claim::Full);
        g.release("b");
        assert_eq!(g.claim("a", 30, 11), Claim::Claimed);
        assert_eq!(g.len(), 2);
    }
}
