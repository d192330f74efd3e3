//! Rampart's tamper-evident audit ledger.
//!
//! What it is: an append-only RFC 6962 Merkle log of opaque entries, stored as C2SP tlog tiles and
//! entry bundles, with checkpoints (C2SP tlog-checkpoint) in C2SP signed notes. The core — tree
//! math and proofs ([`tree`]), tile coordinates and bundles ([`tile`]), notes and checkpoints
//! ([`note`], [`checkpoint`]), the canonical audit record ([`entry`]) — is sans I/O. The log
//! ([`Ledger`]) acknowledges an append only after its bytes are fsynced (group commit), recovers
//! from a crash by discarding a torn tail, writes to several zones with a quorum, publishes signed
//! checkpoints, and serves entries, tiles and proofs. [`verify`] checks a whole log offline.
//!
//! What it does not do: it does not interpret entries (they are opaque bytes; sealing them per
//! tenant is the caller's job), hold keys other than the checkpoint signer it is given, or speak
//! HTTP.

pub mod checkpoint;
pub mod entry;
pub mod hash;
mod log;
pub mod note;
#[cfg(feature = "s3")]
pub mod s3;
mod state;
pub mod tile;
pub mod tree;
pub mod verify;
pub mod zone;

pub use hash::{EMPTY_ROOT, Hash, leaf_hash, node_hash};
pub use log::{Ledger, LedgerConfig, LedgerError, Receipt, SignedCheckpoint, ZoneStatus};
