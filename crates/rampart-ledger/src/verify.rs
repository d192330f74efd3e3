//! Offline verification of a whole log: every hash recomputed from the stored entries, every tile
//! and checkpoint signature checked, every published checkpoint's root recomputed (so any two of
//! them are consistent), and the first object that disagrees named.
//!
//! A rewritten history is caught even if the attacker re-signs nothing: the old signed
//! checkpoints no longer match the rewritten entries.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::checkpoint::Checkpoint;
use crate::hash::leaf_hash;
use crate::log::{View, zone_tile};
use crate::note::NoteVerifier;
use crate::state::TreeState;
use crate::tile::{
    TileId, WIDTH, decode_bundle, decode_hashes, encode_bundle, encode_hashes, partial_tile_index,
};
use crate::tree;
use crate::zone::{WAL_SEGMENT_ENTRIES, Zone, count_full_bundles, scan_segment, wal_segment};

/// Why a log failed verification: the object (a path in the C2SP layout, or the WAL or
/// checkpoint history) and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{object}: {problem}")]
pub struct VerifyError {
    pub object: String,
    pub problem: String,
}

fn bad(object: impl Into<String>, problem: impl Into<String>) -> VerifyError {
    VerifyError {
        object: object.into(),
        problem: problem.into(),
    }
}

/// What a successful verification covered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    pub entries: u64,
    pub checkpoints: usize,
    pub tiles: u64,
    pub elapsed: Duration,
}

impl VerifyReport {
    #[must_use]
    pub fn entries_per_second(&self) -> f64 {
        self.entries as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// Verifies the log in `zone` against the checkpoint verifier key. `progress(done, total)` is
/// called now and then.
pub fn verify_zone(
    zone: &dyn Zone,
    verifier: &NoteVerifier,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<VerifyReport, VerifyError> {
    let started = Instant::now();
    let io = |object: &str| {
        let object = object.to_owned();
        move |e: std::io::Error| bad(object, format!("cannot read it: {e}"))
    };

    // 1. The signed checkpoints, oldest first.
    let history = zone.checkpoint_history().map_err(io("checkpoints"))?;
    let mut checkpoints: Vec<Checkpoint> = Vec::new();
    for (k, note) in history.notes.iter().enumerate() {
        // A writer killed between appending a checkpoint to the history and replacing
        // `checkpoint` publishes the same checkpoint again when it restarts; signatures are
        // deterministic, so the repeat is byte for byte the record before it and says nothing new.
        if k > 0 && history.notes[k - 1] == *note {
            continue;
        }
        let cp = Checkpoint::open(verifier, note)
            .map_err(|e| bad("checkpoints", format!("record {k}: {e}")))?;
        if let Some(prev) = checkpoints.last()
            && cp.size <= prev.size
        {
            return Err(bad(
                "checkpoints",
                format!(
                    "record {k} (size {}) does not grow the log past record {} (size {})",
                    cp.size,
                    k - 1,
                    prev.size
                ),
            ));
        }
        checkpoints.push(cp);
    }
    let latest = zone.latest_checkpoint().map_err(io("checkpoint"))?;
    match (&latest, history.notes.last()) {
        (None, None) => {}
        (Some(l), Some(last)) if l == last => {}
        (Some(l), _) => {
            // A crash between appending to the history and replacing `checkpoint` leaves the
            // history one record ahead; anything else is damage.
            let ok = history.notes.len() >= 2
                && history.notes[history.notes.len() - 2] == *l
                && history.trailing == 0;
            if !ok {
                Checkpoint::open(verifier, l).map_err(|e| bad("checkpoint", e.to_string()))?;
                return Err(bad(
                    "checkpoint",
                    "is not the last checkpoint in the history",
                ));
            }
        }
        (None, Some(_)) => {
            return Err(bad(
                "checkpoint",
                "is missing, but checkpoints were published",
            ));
        }
    }
    if history.trailing > 0 {
        return Err(bad(
            "checkpoints",
            format!(
                "{} bytes after the last whole record (a torn append, or damage)",
                history.trailing
            ),
        ));
    }

    // 2. Every entry, in order: leaf hashes against the level-0 tiles, completed tiles against
    //    the stored ones, each checkpoint's root and partial tiles against what the entries give.
    let full = count_full_bundles(zone).map_err(io("tile/entries"))?;
    let mut wal: Vec<Vec<u8>> = Vec::new();
    let mut next = full * WIDTH;
    let mut segment = wal_segment(next);
    while let Some(bytes) = zone.read_wal(segment).map_err(io("wal"))? {
        let name = format!("wal/{segment:020}.wal");
        let (start, scan) = scan_segment(&bytes, segment);
        if scan.trailing > 0 {
            return Err(bad(
                name,
                format!(
                    "{} bytes after its last valid record at offset {}: a torn write from a crash (the writer drops it at start-up) or damage",
                    scan.trailing, scan.valid_len
                ),
            ));
        }
        if scan.entries.is_empty() {
            break;
        }
        if start > next {
            return Err(bad(
                name,
                format!("starts at entry {start}, but entries from {next} are in no bundle"),
            ));
        }
        let end = start + scan.entries.len() as u64;
        // Records before `next` are already in full bundles (checked there).
        wal.extend(scan.entries.into_iter().skip((next - start) as usize));
        next = next.max(end);
        if end < (segment + 1) * WAL_SEGMENT_ENTRIES {
            break;
        }
        segment += 1;
    }
    let total = full * WIDTH + wal.len() as u64;
    let mut state = TreeState::default();
    let mut tiles = 0u64;
    let mut next_cp = 0usize;
    let check_checkpoints = |state: &TreeState,
                             next_cp: &mut usize,
                             tiles: &mut u64|
     -> Result<(), VerifyError> {
        while let Some(cp) = checkpoints.get(*next_cp) {
            if cp.size != state.size {
                break;
            }
            let view = View {
                size: state.size,
                partials: state.partials.clone(),
                fetch: Box::new(|level, index| zone_tile(zone, level, index)),
            };
            let root = tree::root(&view, state.size).map_err(|e| bad("tile", e.to_string()))?;
            if root != cp.root {
                return Err(bad(
                    "checkpoints",
                    format!(
                        "record {} (size {}): the stored entries do not hash to its root; the history was rewritten or damaged",
                        *next_cp, cp.size
                    ),
                ));
            }
            for (level, hashes) in state.partials.iter().enumerate() {
                if hashes.is_empty() {
                    continue;
                }
                let id = TileId::hashes(
                    level as u8,
                    partial_tile_index(level as u8, state.size),
                    hashes.len() as u16,
                );
                compare(zone, &id, &encode_hashes(hashes))?;
                *tiles += 1;
            }
            if !state.bundle.is_empty() {
                let id = TileId::entries(state.size / WIDTH, state.bundle.len() as u16);
                let bytes = encode_bundle(state.bundle.iter().map(|e| &e[..]))
                    .map_err(|e| bad(id.path(), e.to_string()))?;
                compare(zone, &id, &bytes)?;
                *tiles += 1;
            }
            *next_cp += 1;
        }
        Ok(())
    };
    check_checkpoints(&state, &mut next_cp, &mut tiles)?;
    let mut push =
        |entry: Vec<u8>, state: &mut TreeState, tiles: &mut u64| -> Result<(), VerifyError> {
            let index = state.size;
            let leaf = leaf_hash(&entry);
            if let Some(c) = state.push(Arc::from(entry), leaf) {
                for (id, hashes) in &c.tiles {
                    let stored = zone_tile(
                        zone,
                        match id.kind {
                            crate::tile::TileKind::Hashes { level } => level,
                            crate::tile::TileKind::Entries => 0,
                        },
                        id.index,
                    )
                    .map_err(|e| bad(id.path(), e.to_string()))?;
                    if let Some(i) = stored.iter().zip(hashes).position(|(a, b)| a != b) {
                        let what = if matches!(id.kind, crate::tile::TileKind::Hashes { level: 0 })
                        {
                            format!(
                                "hash {i} is not the leaf hash of entry {} (tile/entries/{:03}…)",
                                c.bundle * WIDTH + i as u64,
                                c.bundle
                            )
                        } else {
                            format!("hash {i} is not the root of the tile below it")
                        };
                        return Err(bad(id.path(), what));
                    }
                    *tiles += 1;
                }
            }
            if index % 65_536 == 65_535 {
                progress(index + 1, total);
            }
            Ok(())
        };
    for bundle in 0..full {
        let id = TileId::entries(bundle, WIDTH as u16);
        let bytes = zone
            .get_tile(&id)
            .map_err(io(&id.path()))?
            .ok_or_else(|| bad(id.path(), "is missing"))?;
        let entries = decode_bundle(&bytes).map_err(|e| bad(id.path(), e.to_string()))?;
        if entries.len() as u64 != WIDTH {
            return Err(bad(
                id.path(),
                format!("holds {} entries, not 256", entries.len()),
            ));
        }
        // Check the bundle against its level-0 tile before anything else, to name it precisely.
        let tile = TileId::hashes(0, bundle, WIDTH as u16);
        let stored = decode_hashes(
            &zone
                .get_tile(&tile)
                .map_err(io(&tile.path()))?
                .ok_or_else(|| bad(tile.path(), "is missing"))?,
        )
        .map_err(|e| bad(tile.path(), e.to_string()))?;
        if stored.len() as u64 != WIDTH {
            return Err(bad(tile.path(), "is not a full tile"));
        }
        for (i, e) in entries.iter().enumerate() {
            if leaf_hash(e) != stored[i] {
                return Err(bad(
                    id.path(),
                    format!(
                        "entry {} does not hash to its leaf in {} (one of the two was altered)",
                        bundle * WIDTH + i as u64,
                        tile.path()
                    ),
                ));
            }
        }
        for e in entries {
            push(e.to_vec(), &mut state, &mut tiles)?;
            check_checkpoints(&state, &mut next_cp, &mut tiles)?;
        }
    }
    for e in wal {
        push(e, &mut state, &mut tiles)?;
        check_checkpoints(&state, &mut next_cp, &mut tiles)?;
    }
    if let Some(cp) = checkpoints.get(next_cp) {
        return Err(bad(
            "checkpoints",
            format!(
                "record {next_cp} covers {} entries, but the log holds {}: acknowledged entries are missing",
                cp.size, state.size
            ),
        ));
    }
    progress(state.size, total);
    Ok(VerifyReport {
        entries: state.size,
        checkpoints: checkpoints.len(),
        tiles,
        elapsed: started.elapsed(),
    })
}

fn compare(zone: &dyn Zone, id: &TileId, expected: &[u8]) -> Result<(), VerifyError> {
    let stored = zone
        .get_tile(id)
        .map_err(|e| bad(id.path(), format!("cannot read it: {e}")))?
        .ok_or_else(|| bad(id.path(), "is missing (a published checkpoint needs it)"))?;
    if stored != expected {
        return Err(bad(id.path(), "differs from what the entries give"));
    }
    Ok(())
}
