//! The ledger: appends acknowledged only after their bytes are fsynced in a quorum of zones (one
//! fsync per batch of concurrent appends), crash recovery that discards a torn tail and loses no
//! acknowledged entry, signed checkpoints, reads and proofs.
//!
//! Threads: callers send appends to one *writer* thread, which group-commits them to the WAL of
//! every healthy zone and acknowledges; when a bundle of 256 entries fills up, an *integrator*
//! thread writes its full tiles and bundle (and once every bundle of a WAL segment is written,
//! drops the segment), and it also writes partial tiles and signed checkpoints. Until the integrator has written a full tile, readers find it in
//! memory (`pending`).

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::sync::{oneshot, watch};

use crate::checkpoint::Checkpoint;
use crate::hash::{Hash, leaf_hash};
use crate::note::{NoteSigner, NoteVerifier};
use crate::state::{Completion, TreeState};
use crate::tile::{
    HEIGHT, MAX_ENTRY_LEN, TileId, WIDTH, decode_bundle, decode_hashes, encode_bundle,
    encode_hashes, locate, partial_tile_index, partial_tiles_for_size, perfect_root,
};
use crate::tree::{self, HashSource, TreeError};
use crate::zone::{
    WAL_HEADER, WAL_SEGMENT_BUNDLES, WAL_SEGMENT_ENTRIES, Zone, count_full_bundles,
    encode_wal_record, scan_segment, valid_record_after, wal_segment,
};

/// Completed bundles the integrator may have yet to write before the writer waits for it (each
/// holds its entries and tiles in memory: ≈ 256 × (entry + 32) bytes).
const MAX_INTEGRATION_BACKLOG: usize = 64;

/// How to run a ledger.
pub struct LedgerConfig {
    /// Where to keep the log; the first healthy zone serves reads.
    pub zones: Vec<Arc<dyn Zone>>,
    /// How many zones must have fsynced an append before it is acknowledged.
    pub quorum: usize,
    /// Signs checkpoints; its name is the log's origin.
    pub signer: NoteSigner,
    /// At most this many appends share one fsync.
    pub max_batch: usize,
    /// How long the writer may wait for more appends to join a batch (0: take what is queued).
    pub max_batch_wait: Duration,
    /// How often a checkpoint is published when the log has grown.
    pub checkpoint_interval: Duration,
    /// How often zones out of service are retried (caught up and re-verified).
    pub zone_retry_interval: Duration,
}

impl LedgerConfig {
    /// Defaults: every zone in the quorum, batches of up to 4096, no waiting, checkpoints every
    /// 5 minutes.
    #[must_use]
    pub fn new(zones: Vec<Arc<dyn Zone>>, signer: NoteSigner) -> Self {
        Self {
            quorum: zones.len(),
            zones,
            signer,
            max_batch: 4096,
            max_batch_wait: Duration::ZERO,
            checkpoint_interval: Duration::from_secs(300),
            zone_retry_interval: Duration::from_secs(10),
        }
    }
}

/// Why a ledger operation failed. `Clone` so one failure can answer every append of a batch.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LedgerError {
    #[error("an entry of {0} bytes is longer than the {max} a log entry can hold", max = MAX_ENTRY_LEN)]
    EntryTooLong(usize),
    #[error("only {ok} of the {quorum} zones needed stored it ({detail})")]
    QuorumLost {
        ok: usize,
        quorum: usize,
        detail: String,
    },
    #[error("storage error in {zone}: {detail}")]
    Storage { zone: String, detail: String },
    #[error("the ledger is damaged: {0}")]
    Corrupt(String),
    #[error(transparent)]
    Tree(#[from] TreeError),
    #[error("entry {0} does not exist")]
    NoSuchEntry(u64),
    #[error("the ledger has shut down")]
    Closed,
    #[error("no checkpoint covered entry {0} in time")]
    Timeout(u64),
    #[error("invalid ledger configuration: {0}")]
    Config(String),
}

fn storage(zone: &dyn Zone, e: impl fmt::Display) -> LedgerError {
    LedgerError::Storage {
        zone: zone.describe(),
        detail: e.to_string(),
    }
}

/// Proof that an entry is durable: its position and leaf hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Receipt {
    pub index: u64,
    pub leaf_hash: Hash,
}

/// A published checkpoint: the tree head and its signed note.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedCheckpoint {
    pub checkpoint: Checkpoint,
    pub note: String,
}

/// The health of one zone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZoneStatus {
    pub zone: String,
    pub healthy: bool,
    /// Why it is out of service, when it is.
    pub error: Option<String>,
}

struct Slot {
    zone: Arc<dyn Zone>,
    healthy: AtomicBool,
    error: Mutex<Option<String>>,
}

impl Slot {
    fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::SeqCst)
    }

    fn fail(&self, why: &str) {
        if self.healthy.swap(false, Ordering::SeqCst) {
            tracing::error!(zone = %self.zone.describe(), error = %why, "ledger zone taken out of service");
        }
        if let Ok(mut e) = self.error.lock() {
            *e = Some(why.to_owned());
        }
    }

    fn restore(&self) {
        if let Ok(mut e) = self.error.lock() {
            *e = None;
        }
        self.healthy.store(true, Ordering::SeqCst);
        tracing::info!(zone = %self.zone.describe(), "ledger zone back in service");
    }
}

/// A bounded map with first-in-first-out eviction, for immutable full tiles and bundles.
struct Cache<V> {
    map: HashMap<TileId, V>,
    order: VecDeque<TileId>,
    capacity: usize,
}

impl<V: Clone> Cache<V> {
    fn new(capacity: usize) -> Self {
        Self {
            map: HashMap::new(),
            order: VecDeque::new(),
            capacity,
        }
    }

    fn get(&self, id: &TileId) -> Option<V> {
        self.map.get(id).cloned()
    }

    fn put(&mut self, id: TileId, v: V) {
        if self.map.insert(id, v).is_none() {
            self.order.push_back(id);
            while self.order.len() > self.capacity {
                if let Some(old) = self.order.pop_front() {
                    self.map.remove(&old);
                }
            }
        }
    }
}

struct Shared {
    state: RwLock<TreeState>,
    /// Completed tiles and bundles the integrator has not written yet.
    pending: RwLock<HashMap<TileId, Arc<Vec<u8>>>>,
    tiles: Mutex<Cache<Arc<Vec<Hash>>>>,
    bundles: Mutex<Cache<Arc<Vec<Vec<u8>>>>>,
    slots: Vec<Slot>,
    quorum: usize,
    verifier: NoteVerifier,
    latest: watch::Sender<Option<Arc<SignedCheckpoint>>>,
}

fn lock_err<T>(_: T) -> LedgerError {
    LedgerError::Corrupt("an internal lock was poisoned by a panic".into())
}

impl Shared {
    fn healthy(&self) -> impl Iterator<Item = (usize, &Slot)> {
        self.slots
            .iter()
            .enumerate()
            .filter(|(_, s)| s.is_healthy())
    }

    /// A tile or bundle: in memory if not yet integrated, else from the first healthy zone that
    /// has it.
    fn read_object(&self, id: &TileId) -> Result<Option<Vec<u8>>, LedgerError> {
        if let Some(b) = self.pending.read().map_err(lock_err)?.get(id) {
            return Ok(Some(b.as_ref().clone()));
        }
        let mut last_err = None;
        for (_, slot) in self.healthy() {
            match slot.zone.get_tile(id) {
                Ok(Some(b)) => return Ok(Some(b)),
                Ok(None) => {}
                Err(e) => last_err = Some(storage(slot.zone.as_ref(), e)),
            }
        }
        match last_err {
            Some(e) => Err(e),
            None => Ok(None),
        }
    }

    fn full_tile(&self, level: u8, index: u64) -> Result<Arc<Vec<Hash>>, LedgerError> {
        let id = TileId::hashes(level, index, WIDTH as u16);
        if let Some(t) = self.tiles.lock().map_err(lock_err)?.get(&id) {
            return Ok(t);
        }
        let bytes = self
            .read_object(&id)?
            .ok_or_else(|| LedgerError::Corrupt(format!("{} is missing", id.path())))?;
        let hashes = decode_hashes(&bytes)
            .map_err(|e| LedgerError::Corrupt(format!("{}: {e}", id.path())))?;
        if hashes.len() as u64 != WIDTH {
            return Err(LedgerError::Corrupt(format!(
                "{} is not a full tile",
                id.path()
            )));
        }
        let hashes = Arc::new(hashes);
        self.tiles.lock().map_err(lock_err)?.put(id, hashes.clone());
        Ok(hashes)
    }

    fn full_bundle(&self, index: u64) -> Result<Arc<Vec<Vec<u8>>>, LedgerError> {
        let id = TileId::entries(index, WIDTH as u16);
        if let Some(b) = self.bundles.lock().map_err(lock_err)?.get(&id) {
            return Ok(b);
        }
        let bytes = self
            .read_object(&id)?
            .ok_or_else(|| LedgerError::Corrupt(format!("{} is missing", id.path())))?;
        let entries: Vec<Vec<u8>> = decode_bundle(&bytes)
            .map_err(|e| LedgerError::Corrupt(format!("{}: {e}", id.path())))?
            .into_iter()
            .map(<[u8]>::to_vec)
            .collect();
        if entries.len() as u64 != WIDTH {
            return Err(LedgerError::Corrupt(format!(
                "{} is not a full bundle",
                id.path()
            )));
        }
        let entries = Arc::new(entries);
        self.bundles
            .lock()
            .map_err(lock_err)?
            .put(id, entries.clone());
        Ok(entries)
    }

    /// A consistent view of the tree as it is now.
    fn view(&self) -> Result<View<'_>, LedgerError> {
        let st = self.state.read().map_err(lock_err)?;
        Ok(View {
            size: st.size,
            partials: st.partials.clone(),
            fetch: Box::new(move |level, index| self.full_tile(level, index)),
        })
    }
}

type Fetch<'a> = Box<dyn Fn(u8, u64) -> Result<Arc<Vec<Hash>>, LedgerError> + 'a>;

/// Subtree hashes of a tree of `size` entries: the partial tiles in hand, full tiles fetched.
pub(crate) struct View<'a> {
    pub size: u64,
    pub partials: Vec<Vec<Hash>>,
    pub fetch: Fetch<'a>,
}

impl HashSource for View<'_> {
    fn node(&self, level: u8, index: u64) -> Result<Hash, TreeError> {
        let loc = locate(level, index);
        let partial_index = partial_tile_index(loc.tile_level, self.size);
        let range = loc.offset..loc.offset + loc.count;
        let missing = || TreeError::Unavailable(format!("level {level} index {index}"));
        if loc.tile_index == partial_index {
            let hashes = self
                .partials
                .get(usize::from(loc.tile_level))
                .and_then(|p| p.get(range))
                .ok_or_else(missing)?;
            Ok(perfect_root(hashes))
        } else if loc.tile_index < partial_index {
            let tile = (self.fetch)(loc.tile_level, loc.tile_index)
                .map_err(|e| TreeError::Unavailable(e.to_string()))?;
            Ok(perfect_root(tile.get(range).ok_or_else(missing)?))
        } else {
            Err(missing())
        }
    }
}

/// What the writer and integrator exchange with callers.
enum Command {
    Append {
        entry: Arc<[u8]>,
        leaf: Hash,
        reply: oneshot::Sender<Result<Receipt, LedgerError>>,
    },
    Checkpoint {
        reply: oneshot::Sender<Result<Arc<SignedCheckpoint>, LedgerError>>,
    },
    Shutdown,
}

struct CheckpointSnapshot {
    size: u64,
    partials: Vec<Vec<Hash>>,
    bundle: Vec<Arc<[u8]>>,
}

enum Job {
    Full(Completion),
    Checkpoint {
        snapshot: CheckpointSnapshot,
        reply: Option<oneshot::Sender<Result<Arc<SignedCheckpoint>, LedgerError>>>,
    },
    Barrier(oneshot::Sender<()>),
    Shutdown,
}

/// The objects a completed bundle makes: its full tiles (lowest level first), then the bundle.
fn completion_objects(c: &Completion) -> Result<Vec<(TileId, Vec<u8>)>, LedgerError> {
    let mut out: Vec<(TileId, Vec<u8>)> = c
        .tiles
        .iter()
        .map(|(id, hashes)| (*id, encode_hashes(hashes)))
        .collect();
    let bundle = encode_bundle(c.entries.iter().map(|e| &e[..]))
        .map_err(|e| LedgerError::Corrupt(e.to_string()))?;
    out.push((TileId::entries(c.bundle, WIDTH as u16), bundle));
    Ok(out)
}

/// Writes a completed bundle's objects to `zone`, not yet durably: until the zone is synced its
/// WAL segment still holds the entries, and recovery rebuilds the objects from it. After the
/// last bundle of a segment, syncs the zone (one flush for the segment's 128 objects) and only
/// then drops the segment.
fn integrate(
    zone: &dyn Zone,
    objects: &[(TileId, Vec<u8>)],
    bundle: u64,
) -> Result<(), LedgerError> {
    put_objects(zone, objects)?;
    finish_bundle(zone, bundle)
}

/// Writes objects to `zone`, not yet durably.
fn put_objects(zone: &dyn Zone, objects: &[(TileId, Vec<u8>)]) -> Result<(), LedgerError> {
    objects
        .iter()
        .try_for_each(|(id, bytes)| zone.put_tile_unsynced(id, bytes))
        .map_err(|e| storage(zone, e))
}

/// After the last bundle of a WAL segment is written: syncs the zone, then drops the segment.
fn finish_bundle(zone: &dyn Zone, bundle: u64) -> Result<(), LedgerError> {
    if (bundle + 1).is_multiple_of(WAL_SEGMENT_BUNDLES) {
        zone.sync().map_err(|e| storage(zone, e))?;
        zone.remove_wal(bundle / WAL_SEGMENT_BUNDLES)
            .map_err(|e| storage(zone, e))?;
    }
    Ok(())
}

/// What recovery found in one zone.
struct ZoneRecovery {
    state: TreeState,
    /// Bytes in the WAL segment being appended to.
    wal_len: u64,
    /// Torn bytes dropped from the end of the WAL.
    discarded: u64,
    checkpoint: Option<Checkpoint>,
}

pub(crate) fn zone_tile(
    zone: &dyn Zone,
    level: u8,
    index: u64,
) -> Result<Arc<Vec<Hash>>, LedgerError> {
    let id = TileId::hashes(level, index, WIDTH as u16);
    let bytes = zone
        .get_tile(&id)
        .map_err(|e| storage(zone, e))?
        .ok_or_else(|| {
            LedgerError::Corrupt(format!("{} is missing in {}", id.path(), zone.describe()))
        })?;
    let hashes =
        decode_hashes(&bytes).map_err(|e| LedgerError::Corrupt(format!("{}: {e}", id.path())))?;
    if hashes.len() as u64 != WIDTH {
        return Err(LedgerError::Corrupt(format!(
            "{} is not a full tile",
            id.path()
        )));
    }
    Ok(Arc::new(hashes))
}

/// The in-memory state of a tree of `full_bundles × 256` entries, from its full tiles.
fn state_from_tiles(zone: &dyn Zone, full_bundles: u64) -> Result<TreeState, LedgerError> {
    let size = full_bundles * WIDTH;
    let mut partials = vec![Vec::new()];
    let mut level = 1u8;
    loop {
        let shift = u32::from(HEIGHT) * u32::from(level);
        let count = if shift >= 64 { 0 } else { size >> shift };
        if count == 0 {
            break;
        }
        let first = count - count % WIDTH;
        let mut hashes = Vec::new();
        for i in first..count {
            hashes.push(perfect_root(&zone_tile(zone, level - 1, i)?));
        }
        partials.push(hashes);
        level += 1;
    }
    Ok(TreeState {
        size,
        partials,
        bundle: Vec::new(),
    })
}

fn zone_view<'a>(zone: &'a dyn Zone, state: &TreeState) -> View<'a> {
    View {
        size: state.size,
        partials: state.partials.clone(),
        fetch: Box::new(move |level, index| zone_tile(zone, level, index)),
    }
}

/// Brings one zone to a consistent state: rewrites the objects of every WAL entry (finishing
/// interrupted integrations and replacing objects that were written but not synced), cuts a torn
/// WAL tail, and checks the result against the zone's latest signed checkpoint.
fn recover_zone(zone: &dyn Zone, verifier: &NoteVerifier) -> Result<ZoneRecovery, LedgerError> {
    let segments = zone.wal_segments().map_err(|e| storage(zone, e))?;
    // Replay starts at the first WAL record. Every bundle before it is durable: a segment is
    // dropped only after a sync, and a caught-up zone's earlier bundles were written durably.
    let replay_from = match segments.first() {
        None => count_full_bundles(zone).map_err(|e| storage(zone, e))? * WIDTH,
        Some(&s) => {
            let bytes = zone
                .read_wal(s)
                .map_err(|e| storage(zone, e))?
                .unwrap_or_default();
            let (start, scan) = scan_segment(&bytes, s);
            if scan.entries.is_empty() {
                s * WAL_SEGMENT_ENTRIES
            } else {
                start
            }
        }
    };
    if !replay_from.is_multiple_of(WIDTH) {
        return Err(LedgerError::Corrupt(format!(
            "the WAL of {} starts in the middle of a bundle (entry {replay_from})",
            zone.describe()
        )));
    }
    let mut state = state_from_tiles(zone, replay_from / WIDTH)?;
    let mut segment = wal_segment(replay_from);
    let damaged = |segment: u64, what: &str| {
        LedgerError::Corrupt(format!(
            "WAL segment {segment} in {} {what}",
            zone.describe()
        ))
    };
    let mut wal_len = 0;
    let mut discarded = 0;
    while let Some(bytes) = zone.read_wal(segment).map_err(|e| storage(zone, e))? {
        let (start, scan) = scan_segment(&bytes, segment);
        let end = start + scan.entries.len() as u64;
        let later = segments.iter().any(|s| *s > segment);
        if scan.trailing > 0 && (later || valid_record_after(&bytes, scan.valid_len as usize, end))
        {
            return Err(damaged(segment, "is damaged before its end"));
        }
        if scan.trailing > 0 {
            tracing::warn!(
                zone = %zone.describe(),
                segment,
                bytes = scan.trailing,
                "discarding a torn WAL tail (an append that was never acknowledged)"
            );
            zone.truncate_wal(segment, scan.valid_len)
                .map_err(|e| storage(zone, e))?;
            discarded = scan.trailing;
        }
        if !scan.entries.is_empty() && start > state.size {
            return Err(damaged(
                segment,
                &format!(
                    "starts at entry {start}, but entries from {} are in no bundle",
                    state.size
                ),
            ));
        }
        // Records before `state.size` are already in full bundles.
        let skip = state.size.saturating_sub(start) as usize;
        for e in scan.entries.into_iter().skip(skip) {
            let leaf = leaf_hash(&e);
            if let Some(c) = state.push(Arc::from(e), leaf) {
                integrate(zone, &completion_objects(&c)?, c.bundle)?;
            }
        }
        if end < (segment + 1) * WAL_SEGMENT_ENTRIES {
            if later {
                return Err(damaged(segment, "ends early but later segments exist"));
            }
            wal_len = scan.valid_len;
            break;
        }
        segment += 1;
    }
    if let Some(s) = segments.iter().find(|s| **s > segment) {
        return Err(damaged(
            *s,
            &format!("exists but segment {segment} before it does not"),
        ));
    }
    let checkpoint = match zone.latest_checkpoint().map_err(|e| storage(zone, e))? {
        None => None,
        Some(note) => Some(Checkpoint::open(verifier, &note).map_err(|e| {
            LedgerError::Corrupt(format!(
                "the latest checkpoint of {} does not verify: {e}",
                zone.describe()
            ))
        })?),
    };
    if let Some(cp) = &checkpoint {
        if cp.size > state.size {
            return Err(LedgerError::Corrupt(format!(
                "{} holds {} entries but its signed checkpoint covers {}: acknowledged entries are missing",
                zone.describe(),
                state.size,
                cp.size
            )));
        }
        let root = tree::root(&zone_view(zone, &state), cp.size)?;
        if root != cp.root {
            return Err(LedgerError::Corrupt(format!(
                "the entries in {} do not match its signed checkpoint of size {}",
                zone.describe(),
                cp.size
            )));
        }
    }
    Ok(ZoneRecovery {
        state,
        wal_len,
        discarded,
        checkpoint,
    })
}

/// Drops WAL entries at and after `size` (never acknowledged: they did not reach quorum).
fn truncate_zone(zone: &dyn Zone, size: u64) -> Result<(), LedgerError> {
    let keep_segment = wal_segment(size);
    for s in zone.wal_segments().map_err(|e| storage(zone, e))? {
        if s > keep_segment {
            zone.remove_wal(s).map_err(|e| storage(zone, e))?;
        }
    }
    if let Some(bytes) = zone.read_wal(keep_segment).map_err(|e| storage(zone, e))? {
        let (start, scan) = scan_segment(&bytes, keep_segment);
        let keep = size.saturating_sub(start) as usize;
        let len: usize = scan
            .entries
            .iter()
            .take(keep)
            .map(|e| e.len() + WAL_HEADER)
            .sum();
        zone.truncate_wal(keep_segment, len as u64)
            .map_err(|e| storage(zone, e))?;
    }
    Ok(())
}

/// A handle to a running ledger. Cheap to share behind an `Arc`; dropping the last handle shuts
/// the threads down after they finish what is queued.
pub struct Ledger {
    shared: Arc<Shared>,
    tx: mpsc::Sender<Command>,
    writer: Mutex<Option<JoinHandle<()>>>,
    origin: String,
}

impl fmt::Debug for Ledger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Ledger({})", self.origin)
    }
}

impl Ledger {
    /// Recovers the zones and starts the writer. Blocking: call it from a blocking context.
    pub fn open(config: LedgerConfig) -> Result<Self, LedgerError> {
        let n = config.zones.len();
        if n == 0 || config.quorum == 0 || config.quorum > n {
            return Err(LedgerError::Config(format!(
                "a quorum of {} out of {n} zones is impossible",
                config.quorum
            )));
        }
        if config.checkpoint_interval < Duration::from_secs(1) {
            return Err(LedgerError::Config(
                "the checkpoint interval must be at least 1s".into(),
            ));
        }
        let verifier = config.signer.verifier();
        let origin = config.signer.name().to_owned();
        let slots: Vec<Slot> = config
            .zones
            .iter()
            .map(|z| Slot {
                zone: z.clone(),
                healthy: AtomicBool::new(true),
                error: Mutex::new(None),
            })
            .collect();

        // Recover every zone; the committed size is the quorum-th largest, since an acknowledged
        // entry is in at least `quorum` zones.
        let mut recovered: Vec<Option<ZoneRecovery>> = Vec::with_capacity(n);
        for slot in &slots {
            match recover_zone(slot.zone.as_ref(), &verifier) {
                Ok(r) => {
                    if r.discarded > 0 {
                        tracing::info!(zone = %slot.zone.describe(), bytes = r.discarded, "recovered after a crash");
                    }
                    recovered.push(Some(r));
                }
                Err(e) => {
                    slot.fail(&e.to_string());
                    recovered.push(None);
                }
            }
        }
        let mut sizes: Vec<u64> = recovered.iter().flatten().map(|r| r.state.size).collect();
        sizes.sort_unstable_by(|a, b| b.cmp(a));
        let Some(&committed) = sizes.get(config.quorum - 1) else {
            let errors: Vec<String> = slots
                .iter()
                .filter_map(|s| s.error.lock().ok().and_then(|e| e.clone()))
                .collect();
            return Err(LedgerError::QuorumLost {
                ok: sizes.len(),
                quorum: config.quorum,
                detail: errors.join("; "),
            });
        };
        // Zones that hold the committed prefix must agree on it.
        let mut by_root: HashMap<Hash, Vec<usize>> = HashMap::new();
        for (i, r) in recovered.iter().enumerate() {
            let Some(r) = r else { continue };
            if r.state.size < committed {
                slots[i].fail(&format!(
                    "behind: holds {} of {committed} entries",
                    r.state.size
                ));
                continue;
            }
            match tree::root(&zone_view(slots[i].zone.as_ref(), &r.state), committed) {
                Ok(root) => by_root.entry(root).or_default().push(i),
                Err(e) => slots[i].fail(&e.to_string()),
            }
        }
        let Some((_, agreeing)) = by_root.into_iter().max_by_key(|(_, v)| v.len()) else {
            return Err(LedgerError::Corrupt(
                "no zone holds the committed entries".into(),
            ));
        };
        if agreeing.len() < config.quorum {
            return Err(LedgerError::Corrupt(format!(
                "only {} zones agree on the first {committed} entries; {} needed",
                agreeing.len(),
                config.quorum
            )));
        }
        for (i, slot) in slots.iter().enumerate() {
            if slot.is_healthy() && !agreeing.contains(&i) {
                slot.fail("diverged: its entries differ from the other zones'");
            }
        }
        let mut state = None;
        let mut wal_len = vec![(0u64, 0u64); n];
        let mut latest_cp: Option<Checkpoint> = None;
        for &i in &agreeing {
            let zone = slots[i].zone.as_ref();
            let r = match recovered[i].take() {
                Some(r) if r.state.size > committed => {
                    truncate_zone(zone, committed)?;
                    recover_zone(zone, &verifier)?
                }
                Some(r) => r,
                None => continue,
            };
            wal_len[i] = (wal_segment(committed), r.wal_len);
            if latest_cp
                .as_ref()
                .is_none_or(|c| r.checkpoint.as_ref().is_some_and(|rc| rc.size > c.size))
            {
                latest_cp = r.checkpoint.clone();
            }
            if state.is_none() {
                state = Some(r.state);
            }
        }
        let state = state.ok_or_else(|| LedgerError::Corrupt("no zone recovered".into()))?;
        let latest_note = match &latest_cp {
            None => None,
            Some(cp) => agreeing.iter().find_map(|&i| {
                let note = slots[i].zone.latest_checkpoint().ok()??;
                let opened = Checkpoint::open(&verifier, &note).ok()?;
                (opened == *cp).then(|| {
                    Arc::new(SignedCheckpoint {
                        checkpoint: opened,
                        note: String::from_utf8_lossy(&note).into_owned(),
                    })
                })
            }),
        };
        let last_checkpoint_size = latest_note.as_ref().map(|c| c.checkpoint.size);
        let (latest, _) = watch::channel(latest_note);
        let shared = Arc::new(Shared {
            state: RwLock::new(state),
            pending: RwLock::new(HashMap::new()),
            tiles: Mutex::new(Cache::new(4096)),
            bundles: Mutex::new(Cache::new(64)),
            slots,
            quorum: config.quorum,
            verifier,
            latest,
        });
        // Bounded: when the integrator falls this far behind, the writer waits for it, so the
        // tiles held in memory stay bounded and acknowledged throughput is sustainable.
        let (integ_tx, integ_rx) = mpsc::sync_channel(MAX_INTEGRATION_BACKLOG);
        let integrator = {
            let shared = shared.clone();
            let signer = config.signer;
            std::thread::Builder::new()
                .name("ledger-integrator".into())
                .spawn(move || integrator_loop(&shared, &integ_rx, &signer))
                .map_err(|e| LedgerError::Config(format!("cannot start a thread: {e}")))?
        };
        let (tx, rx) = mpsc::channel();
        let writer = {
            let mut w = Writer {
                shared: shared.clone(),
                integ: integ_tx,
                size: committed,
                wal_len,
                max_batch: config.max_batch.max(1),
                max_wait: config.max_batch_wait,
                interval: config.checkpoint_interval,
                retry: config.zone_retry_interval,
                last_checkpoint_size,
                last_checkpoint_at: Instant::now(),
                last_catch_up: Instant::now(),
            };
            std::thread::Builder::new()
                .name("ledger-writer".into())
                .spawn(move || {
                    w.run(&rx);
                    let _ = w.integ.send(Job::Shutdown);
                    let _ = integrator.join();
                })
                .map_err(|e| LedgerError::Config(format!("cannot start a thread: {e}")))?
        };
        Ok(Self {
            shared,
            tx,
            writer: Mutex::new(Some(writer)),
            origin,
        })
    }

    fn send_append(
        &self,
        entry: &[u8],
    ) -> Result<oneshot::Receiver<Result<Receipt, LedgerError>>, LedgerError> {
        if entry.len() > MAX_ENTRY_LEN {
            return Err(LedgerError::EntryTooLong(entry.len()));
        }
        let leaf = leaf_hash(entry);
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Command::Append {
                entry: Arc::from(entry),
                leaf,
                reply,
            })
            .map_err(|_| LedgerError::Closed)?;
        Ok(rx)
    }

    /// Appends `entry`; the receipt comes once its bytes are fsynced in a quorum of zones.
    pub async fn append(&self, entry: &[u8]) -> Result<Receipt, LedgerError> {
        self.send_append(entry)?
            .await
            .map_err(|_| LedgerError::Closed)?
    }

    /// [`Ledger::append`] for threads outside an async runtime.
    pub fn append_blocking(&self, entry: &[u8]) -> Result<Receipt, LedgerError> {
        self.send_append(entry)?
            .blocking_recv()
            .map_err(|_| LedgerError::Closed)?
    }

    /// Publishes a checkpoint of everything acknowledged so far (or returns the latest if nothing
    /// was appended since).
    pub async fn checkpoint_now(&self) -> Result<Arc<SignedCheckpoint>, LedgerError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Command::Checkpoint { reply })
            .map_err(|_| LedgerError::Closed)?;
        rx.await.map_err(|_| LedgerError::Closed)?
    }

    /// [`Ledger::checkpoint_now`] for threads outside an async runtime.
    pub fn checkpoint_blocking(&self) -> Result<Arc<SignedCheckpoint>, LedgerError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Command::Checkpoint { reply })
            .map_err(|_| LedgerError::Closed)?;
        rx.blocking_recv().map_err(|_| LedgerError::Closed)?
    }

    #[must_use]
    pub fn latest_checkpoint(&self) -> Option<Arc<SignedCheckpoint>> {
        self.shared.latest.borrow().clone()
    }

    /// Waits until a checkpoint covers entry `index` (its size is larger than `index`).
    pub async fn checkpoint_covering(
        &self,
        index: u64,
        timeout: Duration,
    ) -> Result<Arc<SignedCheckpoint>, LedgerError> {
        let mut rx = self.shared.latest.subscribe();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(cp) = rx.borrow_and_update().clone()
                && cp.checkpoint.size > index
            {
                return Ok(cp);
            }
            match tokio::time::timeout_at(deadline, rx.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => return Err(LedgerError::Closed),
                Err(_) => return Err(LedgerError::Timeout(index)),
            }
        }
    }

    /// Entries acknowledged so far.
    pub fn size(&self) -> u64 {
        self.shared.state.read().map(|s| s.size).unwrap_or(0)
    }

    #[must_use]
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// How many zones must hold an entry before it is acknowledged.
    #[must_use]
    pub fn quorum(&self) -> usize {
        self.shared.quorum
    }

    #[must_use]
    pub fn verifier(&self) -> &NoteVerifier {
        &self.shared.verifier
    }

    /// Entry `index`.
    pub fn entry(&self, index: u64) -> Result<Vec<u8>, LedgerError> {
        let bundle = index / WIDTH;
        {
            let st = self.shared.state.read().map_err(lock_err)?;
            if index >= st.size {
                return Err(LedgerError::NoSuchEntry(index));
            }
            if bundle == st.size / WIDTH {
                return st
                    .bundle
                    .get((index % WIDTH) as usize)
                    .map(|e| e.to_vec())
                    .ok_or(LedgerError::NoSuchEntry(index));
            }
        }
        let b = self.shared.full_bundle(bundle)?;
        b.get((index % WIDTH) as usize)
            .cloned()
            .ok_or(LedgerError::NoSuchEntry(index))
    }

    pub fn leaf_hash(&self, index: u64) -> Result<Hash, LedgerError> {
        let view = self.shared.view()?;
        if index >= view.size {
            return Err(LedgerError::NoSuchEntry(index));
        }
        Ok(view.node(0, index)?)
    }

    /// The root of the first `size` entries.
    pub fn root_at(&self, size: u64) -> Result<Hash, LedgerError> {
        let view = self.shared.view()?;
        if size > view.size {
            return Err(LedgerError::NoSuchEntry(size));
        }
        Ok(tree::root(&view, size)?)
    }

    pub fn inclusion_proof(&self, index: u64, size: u64) -> Result<Vec<Hash>, LedgerError> {
        let view = self.shared.view()?;
        if size > view.size {
            return Err(LedgerError::NoSuchEntry(size));
        }
        Ok(tree::inclusion_proof(&view, index, size)?)
    }

    pub fn consistency_proof(&self, first: u64, second: u64) -> Result<Vec<Hash>, LedgerError> {
        let view = self.shared.view()?;
        if second > view.size {
            return Err(LedgerError::NoSuchEntry(second));
        }
        Ok(tree::consistency_proof(&view, first, second)?)
    }

    /// A tile or bundle by id, for serving (full ones, and partial ones of published
    /// checkpoints).
    pub fn tile(&self, id: &TileId) -> Result<Option<Vec<u8>>, LedgerError> {
        self.shared.read_object(id)
    }

    #[must_use]
    pub fn zone_status(&self) -> Vec<ZoneStatus> {
        self.shared
            .slots
            .iter()
            .map(|s| ZoneStatus {
                zone: s.zone.describe(),
                healthy: s.is_healthy(),
                error: s.error.lock().ok().and_then(|e| e.clone()),
            })
            .collect()
    }

    /// Finishes queued work, publishes a final checkpoint, stops the threads and releases the
    /// zones' writer locks.
    pub fn shutdown(&self) {
        let _ = self.tx.send(Command::Shutdown);
        if let Ok(mut w) = self.writer.lock()
            && let Some(h) = w.take()
        {
            let _ = h.join();
            for slot in &self.shared.slots {
                slot.zone.close();
            }
        }
    }
}

impl Drop for Ledger {
    fn drop(&mut self) {
        self.shutdown();
    }
}

struct Writer {
    shared: Arc<Shared>,
    integ: mpsc::SyncSender<Job>,
    size: u64,
    /// Per zone: the WAL segment it is appending to, and that segment's length.
    wal_len: Vec<(u64, u64)>,
    max_batch: usize,
    max_wait: Duration,
    interval: Duration,
    retry: Duration,
    last_checkpoint_size: Option<u64>,
    last_checkpoint_at: Instant,
    last_catch_up: Instant,
}

type Pending = (
    Arc<[u8]>,
    Hash,
    oneshot::Sender<Result<Receipt, LedgerError>>,
);

impl Writer {
    fn run(&mut self, rx: &mpsc::Receiver<Command>) {
        // Publish at once if the log has grown (or is new) since its last checkpoint.
        if self.last_checkpoint_size != Some(self.size) {
            self.checkpoint(None);
        }
        loop {
            let wait = self
                .interval
                .saturating_sub(self.last_checkpoint_at.elapsed())
                .min(self.retry);
            let first = match rx.recv_timeout(wait) {
                Ok(c) => Some(c),
                Err(mpsc::RecvTimeoutError::Timeout) => None,
                Err(mpsc::RecvTimeoutError::Disconnected) => return,
            };
            let mut batch: Vec<Pending> = Vec::new();
            let mut others = Vec::new();
            let mut classify = |c: Command, batch: &mut Vec<Pending>| match c {
                Command::Append { entry, leaf, reply } => batch.push((entry, leaf, reply)),
                other => others.push(other),
            };
            if let Some(c) = first {
                classify(c, &mut batch);
            }
            let deadline = Instant::now() + self.max_wait;
            while batch.len() < self.max_batch {
                match rx.try_recv() {
                    Ok(c) => classify(c, &mut batch),
                    Err(mpsc::TryRecvError::Empty) => {
                        let left = deadline.saturating_duration_since(Instant::now());
                        if batch.is_empty() || left.is_zero() {
                            break;
                        }
                        match rx.recv_timeout(left) {
                            Ok(c) => classify(c, &mut batch),
                            Err(_) => break,
                        }
                    }
                    Err(mpsc::TryRecvError::Disconnected) => break,
                }
            }
            if !batch.is_empty() {
                self.commit(batch);
            }
            for c in others {
                match c {
                    Command::Checkpoint { reply } => self.checkpoint(Some(reply)),
                    Command::Shutdown => {
                        self.drain_and_stop(rx);
                        return;
                    }
                    Command::Append { .. } => {}
                }
            }
            if self.last_checkpoint_at.elapsed() >= self.interval
                && self.last_checkpoint_size != Some(self.size)
            {
                self.checkpoint(None);
            }
            if self.last_catch_up.elapsed() >= self.retry {
                self.last_catch_up = Instant::now();
                self.catch_up();
            }
        }
    }

    fn drain_and_stop(&mut self, rx: &mpsc::Receiver<Command>) {
        let mut batch = Vec::new();
        while let Ok(c) = rx.try_recv() {
            if let Command::Append { entry, leaf, reply } = c {
                batch.push((entry, leaf, reply));
            }
        }
        if !batch.is_empty() {
            self.commit(batch);
        }
        if self.last_checkpoint_size != Some(self.size) {
            let (tx, rx) = oneshot::channel();
            self.checkpoint(Some(tx));
            let _ = rx.blocking_recv();
        }
    }

    /// Splits a batch at WAL segment boundaries, so each WAL write touches one file.
    fn commit(&mut self, batch: Vec<Pending>) {
        let mut run = Vec::new();
        for p in batch {
            let index = self.size + run.len() as u64;
            if !run.is_empty() && index.is_multiple_of(WAL_SEGMENT_ENTRIES) {
                self.commit_run(std::mem::take(&mut run));
            }
            run.push(p);
        }
        if !run.is_empty() {
            self.commit_run(run);
        }
    }

    fn commit_run(&mut self, run: Vec<Pending>) {
        let first = self.size;
        let segment = wal_segment(first);
        let mut bytes = Vec::with_capacity(run.iter().map(|p| p.0.len() + 16).sum());
        for (i, (entry, _, _)) in run.iter().enumerate() {
            encode_wal_record(first + i as u64, entry, &mut bytes);
        }
        let targets: Vec<usize> = self.shared.healthy().map(|(i, _)| i).collect();
        let before: Vec<u64> = targets
            .iter()
            .map(|&i| {
                if self.wal_len[i].0 == segment {
                    self.wal_len[i].1
                } else {
                    0
                }
            })
            .collect();
        let results = self.write_all(&targets, segment, &bytes);
        let ok: Vec<usize> = targets
            .iter()
            .zip(&results)
            .filter(|(_, r)| r.is_ok())
            .map(|(i, _)| *i)
            .collect();
        let failures: Vec<String> = targets
            .iter()
            .zip(&results)
            .filter_map(|(i, r)| {
                r.as_ref().err().map(|e| {
                    self.shared.slots[*i].fail(e);
                    e.clone()
                })
            })
            .collect();
        if ok.len() < self.shared.quorum {
            // Undo where it landed, so no zone keeps entries that were never acknowledged.
            for (k, &i) in targets.iter().enumerate() {
                if ok.contains(&i)
                    && let Err(e) = self.shared.slots[i].zone.truncate_wal(segment, before[k])
                {
                    self.shared.slots[i].fail(&format!("undoing a failed append: {e}"));
                }
            }
            let err = LedgerError::QuorumLost {
                ok: ok.len(),
                quorum: self.shared.quorum,
                detail: failures.join("; "),
            };
            for (_, _, reply) in run {
                let _ = reply.send(Err(err.clone()));
            }
            return;
        }
        for (k, &i) in targets.iter().enumerate() {
            if ok.contains(&i) {
                self.wal_len[i] = (segment, before[k] + bytes.len() as u64);
            }
        }
        let mut completions = Vec::new();
        {
            let Ok(mut st) = self.shared.state.write() else {
                for (_, _, reply) in run {
                    let _ = reply.send(Err(lock_err(())));
                }
                return;
            };
            for (entry, leaf, _) in &run {
                if let Some(c) = st.push(entry.clone(), *leaf) {
                    completions.push(c);
                }
            }
            // Make completed tiles readable before the new size is visible to readers.
            if !completions.is_empty()
                && let Ok(mut pending) = self.shared.pending.write()
            {
                for c in &completions {
                    if let Ok(objects) = completion_objects(c) {
                        for (id, b) in objects {
                            pending.insert(id, Arc::new(b));
                        }
                    }
                }
            }
        }
        self.size = first + run.len() as u64;
        for (i, (_, leaf, reply)) in run.into_iter().enumerate() {
            let _ = reply.send(Ok(Receipt {
                index: first + i as u64,
                leaf_hash: leaf,
            }));
        }
        for c in completions {
            let _ = self.integ.send(Job::Full(c));
        }
    }

    /// Writes `bytes` to WAL segment `segment` in each target zone, in parallel when there are
    /// several.
    fn write_all(&self, targets: &[usize], segment: u64, bytes: &[u8]) -> Vec<Result<(), String>> {
        let slots = &self.shared.slots;
        if targets.len() == 1 {
            return vec![
                slots[targets[0]]
                    .zone
                    .append_wal(segment, bytes)
                    .map_err(|e| e.to_string()),
            ];
        }
        std::thread::scope(|s| {
            let handles: Vec<_> = targets
                .iter()
                .map(|&i| {
                    let zone = slots[i].zone.clone();
                    s.spawn(move || zone.append_wal(segment, bytes).map_err(|e| e.to_string()))
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|_| Err("writer thread panicked".into()))
                })
                .collect()
        })
    }

    fn checkpoint(
        &mut self,
        reply: Option<oneshot::Sender<Result<Arc<SignedCheckpoint>, LedgerError>>>,
    ) {
        let Ok(st) = self.shared.state.read() else {
            if let Some(r) = reply {
                let _ = r.send(Err(lock_err(())));
            }
            return;
        };
        let snapshot = CheckpointSnapshot {
            size: st.size,
            partials: st.partials.clone(),
            bundle: st.bundle.clone(),
        };
        drop(st);
        self.last_checkpoint_size = Some(snapshot.size);
        self.last_checkpoint_at = Instant::now();
        let _ = self.integ.send(Job::Checkpoint { snapshot, reply });
    }

    /// Brings zones that fell out of service back: copies what they miss from a healthy zone,
    /// re-verifies them, and returns them to service. Appends wait meanwhile.
    fn catch_up(&mut self) {
        let behind: Vec<usize> = self
            .shared
            .slots
            .iter()
            .enumerate()
            .filter(|(_, s)| !s.is_healthy())
            .map(|(i, _)| i)
            .collect();
        if behind.is_empty() {
            return;
        }
        // Let the integrator finish, so every completed tile is in the healthy zones.
        let (tx, rx) = oneshot::channel();
        if self.integ.send(Job::Barrier(tx)).is_err() || rx.blocking_recv().is_err() {
            return;
        }
        for i in behind {
            match self.resync(i) {
                Ok(wal_len) => {
                    self.wal_len[i] = (wal_segment(self.size), wal_len);
                    self.shared.slots[i].restore();
                }
                Err(e) => {
                    if let Ok(mut err) = self.shared.slots[i].error.lock() {
                        *err = Some(e.to_string());
                    }
                }
            }
        }
    }

    fn resync(&self, i: usize) -> Result<u64, LedgerError> {
        let zone = self.shared.slots[i].zone.as_ref();
        let source = self
            .shared
            .healthy()
            .map(|(_, s)| s.zone.clone())
            .next()
            .ok_or_else(|| LedgerError::QuorumLost {
                ok: 0,
                quorum: self.shared.quorum,
                detail: "no healthy zone to copy from".into(),
            })?;
        let rec = recover_zone(zone, &self.shared.verifier)?;
        let have = rec.state.size;
        if have > self.size {
            return Err(LedgerError::Corrupt(format!(
                "{} holds more entries ({have}) than the log ({})",
                zone.describe(),
                self.size
            )));
        }
        let ours = tree::root(&self.shared.view()?, have)?;
        let theirs = tree::root(&zone_view(zone, &rec.state), have)?;
        if ours != theirs {
            return Err(LedgerError::Corrupt(format!(
                "{} has different entries than the log",
                zone.describe()
            )));
        }
        // Full bundles it lacks, with the tiles each one completes.
        let current = self.size / WIDTH;
        for b in have / WIDTH..current {
            let mut objects = vec![(TileId::hashes(0, b, WIDTH as u16), ())];
            let mut level = 1u8;
            let mut n = b + 1;
            while n.is_multiple_of(WIDTH) {
                n /= WIDTH;
                objects.push((TileId::hashes(level, n - 1, WIDTH as u16), ()));
                level += 1;
            }
            objects.push((TileId::entries(b, WIDTH as u16), ()));
            for (id, ()) in objects {
                let bytes = source
                    .get_tile(&id)
                    .map_err(|e| storage(source.as_ref(), e))?
                    .ok_or_else(|| {
                        LedgerError::Corrupt(format!("{} missing in the source zone", id.path()))
                    })?;
                zone.put_tile(&id, &bytes).map_err(|e| storage(zone, e))?;
            }
        }
        // Its WAL: every full bundle is written now, so only the partial bundle's entries
        // belong in it; the current segment is rewritten with them (starting mid-segment).
        let segment = wal_segment(self.size);
        for s in zone.wal_segments().map_err(|e| storage(zone, e))? {
            zone.remove_wal(s).map_err(|e| storage(zone, e))?;
        }
        let start = current * WIDTH;
        if start < self.size {
            let st = self.shared.state.read().map_err(lock_err)?;
            let mut bytes = Vec::new();
            for index in start..self.size {
                let e = st
                    .bundle
                    .get((index % WIDTH) as usize)
                    .ok_or(LedgerError::NoSuchEntry(index))?;
                encode_wal_record(index, e, &mut bytes);
            }
            drop(st);
            zone.append_wal(segment, &bytes)
                .map_err(|e| storage(zone, e))?;
        }
        // The checkpoints it missed.
        let mine = zone
            .checkpoint_history()
            .map_err(|e| storage(zone, e))?
            .notes;
        let all = source
            .checkpoint_history()
            .map_err(|e| storage(source.as_ref(), e))?
            .notes;
        if mine.len() > all.len() || all[..mine.len()] != mine[..] {
            return Err(LedgerError::Corrupt(format!(
                "the checkpoint history of {} differs from the log's",
                zone.describe()
            )));
        }
        for note in &all[mine.len()..] {
            // With the partial tiles of its size, which readers of that checkpoint need.
            let cp = Checkpoint::open(&self.shared.verifier, note).map_err(|e| {
                LedgerError::Corrupt(format!("a checkpoint in the source zone: {e}"))
            })?;
            for id in partial_tiles_for_size(cp.size) {
                if zone.has_tile(&id).map_err(|e| storage(zone, e))? {
                    continue;
                }
                let bytes = source
                    .get_tile(&id)
                    .map_err(|e| storage(source.as_ref(), e))?
                    .ok_or_else(|| {
                        LedgerError::Corrupt(format!("{} missing in the source zone", id.path()))
                    })?;
                zone.put_tile(&id, &bytes).map_err(|e| storage(zone, e))?;
            }
            zone.publish_checkpoint(note)
                .map_err(|e| storage(zone, e))?;
        }
        // Verify the result from scratch before trusting it.
        let check = recover_zone(zone, &self.shared.verifier)?;
        if check.state.size != self.size
            || tree::root(&zone_view(zone, &check.state), self.size)?
                != tree::root(&self.shared.view()?, self.size)?
        {
            return Err(LedgerError::Corrupt(format!(
                "{} did not verify after catching up",
                zone.describe()
            )));
        }
        Ok(check.wal_len)
    }
}

/// Completed bundles the integrator writes together.
const INTEGRATION_BATCH: usize = 32;

fn integrator_loop(shared: &Shared, rx: &mpsc::Receiver<Job>, signer: &NoteSigner) {
    let mut batch = Vec::new();
    while let Ok(mut job) = rx.recv() {
        // Take the completed bundles that are queued (up to a batch) and write them together;
        // any other job runs after them, in order.
        loop {
            match job {
                Job::Full(c) => {
                    batch.push(c);
                    if batch.len() < INTEGRATION_BATCH
                        && let Ok(next) = rx.try_recv()
                    {
                        job = next;
                        continue;
                    }
                    integrate_batch(shared, &std::mem::take(&mut batch));
                }
                other => {
                    integrate_batch(shared, &std::mem::take(&mut batch));
                    match other {
                        Job::Checkpoint { snapshot, reply } => {
                            let result = publish(shared, signer, &snapshot);
                            if let Err(e) = &result {
                                tracing::error!(error = %e, "checkpoint not published");
                            }
                            if let Some(r) = reply {
                                let _ = r.send(result);
                            }
                        }
                        Job::Barrier(tx) => {
                            let _ = tx.send(());
                        }
                        Job::Shutdown => return,
                        Job::Full(_) => {}
                    }
                }
            }
            break;
        }
    }
}

/// Writes completed bundles' objects to every healthy zone; then drops them from memory.
fn integrate_batch(shared: &Shared, completions: &[Completion]) {
    if completions.is_empty() {
        return;
    }
    let mut objects = Vec::new();
    for c in completions {
        match completion_objects(c) {
            Ok(o) => objects.extend(o),
            Err(e) => {
                tracing::error!(error = %e, "cannot encode a completed bundle");
                return;
            }
        }
    }
    let mut written = 0;
    for (_, slot) in shared.healthy() {
        let zone = slot.zone.as_ref();
        let r = put_objects(zone, &objects).and_then(|()| {
            completions
                .iter()
                .try_for_each(|c| finish_bundle(zone, c.bundle))
        });
        match r {
            Ok(()) => written += 1,
            Err(e) => slot.fail(&e.to_string()),
        }
    }
    // Keep them in memory (and the WALs on disk) if no zone could take them.
    if written > 0
        && let Ok(mut pending) = shared.pending.write()
    {
        for (id, _) in &objects {
            pending.remove(id);
        }
    }
}

/// Writes the partial tiles of the snapshot's size, signs its checkpoint and publishes it in
/// every healthy zone; it counts once a quorum has it.
fn publish(
    shared: &Shared,
    signer: &NoteSigner,
    snap: &CheckpointSnapshot,
) -> Result<Arc<SignedCheckpoint>, LedgerError> {
    if let Some(latest) = shared.latest.borrow().clone()
        && latest.checkpoint.size >= snap.size
    {
        return Ok(latest);
    }
    let view = View {
        size: snap.size,
        partials: snap.partials.clone(),
        fetch: Box::new(|level, index| shared.full_tile(level, index)),
    };
    let root = tree::root(&view, snap.size)?;
    let checkpoint = Checkpoint {
        origin: signer.name().to_owned(),
        size: snap.size,
        root,
    };
    let note = checkpoint
        .sign(signer)
        .map_err(|e| LedgerError::Corrupt(e.to_string()))?;
    let mut objects = Vec::new();
    for (level, hashes) in snap.partials.iter().enumerate() {
        if !hashes.is_empty() {
            let index = partial_tile_index(level as u8, snap.size);
            objects.push((
                TileId::hashes(level as u8, index, hashes.len() as u16),
                encode_hashes(hashes),
            ));
        }
    }
    if !snap.bundle.is_empty() {
        let bytes = encode_bundle(snap.bundle.iter().map(|e| &e[..]))
            .map_err(|e| LedgerError::Corrupt(e.to_string()))?;
        objects.push((
            TileId::entries(snap.size / WIDTH, snap.bundle.len() as u16),
            bytes,
        ));
    }
    let mut ok = 0;
    let mut failures = Vec::new();
    for (_, slot) in shared.healthy() {
        let zone = slot.zone.as_ref();
        let r = objects
            .iter()
            .try_for_each(|(id, b)| zone.put_tile(id, b))
            .and_then(|()| zone.publish_checkpoint(note.as_bytes()));
        match r {
            Ok(()) => ok += 1,
            Err(e) => {
                slot.fail(&e.to_string());
                failures.push(e.to_string());
            }
        }
    }
    if ok < shared.quorum {
        return Err(LedgerError::QuorumLost {
            ok,
            quorum: shared.quorum,
            detail: failures.join("; "),
        });
    }
    let signed = Arc::new(SignedCheckpoint { checkpoint, note });
    shared.latest.send_replace(Some(signed.clone()));
    Ok(signed)
}
