//! Zones: the places a ledger keeps its bytes, each on its own volume (or bucket).
//!
//! A zone holds the C2SP layout (`tile/…`, `checkpoint`) plus files of its own: the write-ahead
//! log of entries not yet in a full bundle, in segments of [`WAL_SEGMENT_ENTRIES`] entries
//! (`wal/<segment>.wal`, dropped once every bundle of the segment is written), and the append-only
//! history of every checkpoint ever published (`checkpoints`). Segments span many bundles so that
//! files are created and deleted rarely: on some filesystems (ext4 without a journal) creating a
//! file right after many deletions costs far more than the write itself.
//!
//! WAL records are `len (u32 BE) ‖ crc32(index ‖ entry) (u32 BE) ‖ index (u64 BE) ‖ entry`: a torn
//! write at the end of a file shows as a short or mismatching record, and a record out of place
//! shows as a wrong index. A segment's records run contiguously from its first record, which is
//! the segment's first index or, after a zone was caught up, the start of a later bundle.

use std::collections::BTreeSet;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::tile::TileId;

/// Bytes before each WAL record's entry.
pub const WAL_HEADER: usize = 16;

/// Bundles per WAL segment.
pub const WAL_SEGMENT_BUNDLES: u64 = 64;
/// Entries per WAL segment.
pub const WAL_SEGMENT_ENTRIES: u64 = WAL_SEGMENT_BUNDLES * crate::tile::WIDTH;

/// The WAL segment that holds entry `index`.
#[must_use]
pub fn wal_segment(index: u64) -> u64 {
    index / WAL_SEGMENT_ENTRIES
}

/// Appends one WAL record.
pub fn encode_wal_record(index: u64, entry: &[u8], out: &mut Vec<u8>) {
    let mut crc = crc32fast::Hasher::new();
    crc.update(&index.to_be_bytes());
    crc.update(entry);
    out.extend_from_slice(&(entry.len() as u32).to_be_bytes());
    out.extend_from_slice(&crc.finalize().to_be_bytes());
    out.extend_from_slice(&index.to_be_bytes());
    out.extend_from_slice(entry);
}

/// The valid prefix of a WAL file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalScan {
    /// Entries of the valid prefix, in order.
    pub entries: Vec<Vec<u8>>,
    /// Length of the valid prefix in bytes.
    pub valid_len: u64,
    /// Bytes after the valid prefix (a torn write, or damage).
    pub trailing: u64,
}

/// Reads WAL records whose indexes must run `first_index, first_index + 1, …`, stopping at the
/// first record that is short, mismatches its checksum or is out of place.
#[must_use]
pub fn scan_wal(bytes: &[u8], first_index: u64) -> WalScan {
    let mut entries = Vec::new();
    let mut pos = 0usize;
    loop {
        let rest = &bytes[pos..];
        if rest.len() < WAL_HEADER {
            break;
        }
        let len = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        let crc = u32::from_be_bytes([rest[4], rest[5], rest[6], rest[7]]);
        let mut idx = [0u8; 8];
        idx.copy_from_slice(&rest[8..16]);
        let index = u64::from_be_bytes(idx);
        if index != first_index + entries.len() as u64 || rest.len() < WAL_HEADER + len {
            break;
        }
        let entry = &rest[WAL_HEADER..WAL_HEADER + len];
        let mut h = crc32fast::Hasher::new();
        h.update(&idx);
        h.update(entry);
        if h.finalize() != crc {
            break;
        }
        entries.push(entry.to_vec());
        pos += WAL_HEADER + len;
    }
    WalScan {
        entries,
        valid_len: pos as u64,
        trailing: (bytes.len() - pos) as u64,
    }
}

/// Reads WAL segment `segment`: its records start at the first record's index (which must lie in
/// the segment) and run contiguously. Returns that first index and the valid prefix; when the
/// first record is unreadable, the scan is empty and starts at the segment's first index.
#[must_use]
pub fn scan_segment(bytes: &[u8], segment: u64) -> (u64, WalScan) {
    let first = segment * WAL_SEGMENT_ENTRIES;
    let start = match bytes.get(8..16) {
        Some(idx) => {
            let mut b = [0u8; 8];
            b.copy_from_slice(idx);
            u64::from_be_bytes(b)
        }
        None => first,
    };
    let start = if (first..first + WAL_SEGMENT_ENTRIES).contains(&start) {
        start
    } else {
        first
    };
    let mut scan = scan_wal(bytes, start);
    // Records beyond the segment's end are not the writer's: the valid prefix ends there.
    let room = (first + WAL_SEGMENT_ENTRIES - start) as usize;
    if scan.entries.len() > room {
        let cut: u64 = scan.entries[room..]
            .iter()
            .map(|e| (WAL_HEADER + e.len()) as u64)
            .sum();
        scan.entries.truncate(room);
        scan.valid_len -= cut;
        scan.trailing += cut;
    }
    (start, scan)
}

/// Whether a well-formed record for an index after `expected` starts anywhere after `from`: if
/// so, the bytes at `from` are damage, not a torn write (a crash tears only the last write).
#[must_use]
pub fn valid_record_after(bytes: &[u8], from: usize, expected: u64) -> bool {
    (from + 1..bytes.len().saturating_sub(WAL_HEADER - 1)).any(|p| {
        let rest = &bytes[p..];
        let mut idx = [0u8; 8];
        idx.copy_from_slice(&rest[8..16]);
        let index = u64::from_be_bytes(idx);
        if index <= expected || index > expected + 1_000_000 {
            return false;
        }
        let len = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        rest.len() >= WAL_HEADER + len && {
            let crc = u32::from_be_bytes([rest[4], rest[5], rest[6], rest[7]]);
            let mut h = crc32fast::Hasher::new();
            h.update(&idx);
            h.update(&rest[WAL_HEADER..WAL_HEADER + len]);
            h.finalize() == crc
        }
    })
}

/// What the ledger needs from a place that keeps bytes. Every write is durable when the call
/// returns.
pub trait Zone: Send + Sync + std::fmt::Debug {
    /// A human-readable name (a path, a bucket URL).
    fn describe(&self) -> String;
    /// Appends records to WAL segment `segment`.
    fn append_wal(&self, segment: u64, bytes: &[u8]) -> io::Result<()>;
    fn read_wal(&self, segment: u64) -> io::Result<Option<Vec<u8>>>;
    /// Cuts WAL segment `segment` to `len` bytes (dropping a torn tail, or undoing an append
    /// that did not reach quorum).
    fn truncate_wal(&self, segment: u64, len: u64) -> io::Result<()>;
    /// Drops a WAL segment whose bundles' full tiles are all durable.
    fn remove_wal(&self, segment: u64) -> io::Result<()>;
    /// The WAL segments present.
    fn wal_segments(&self) -> io::Result<Vec<u64>>;
    /// Writes an immutable tile or bundle, atomically.
    fn put_tile(&self, id: &TileId, bytes: &[u8]) -> io::Result<()>;
    /// Writes a tile or bundle atomically (a reader sees all of it or none) but not necessarily
    /// durably: it is durable after the next [`Zone::sync`]. For objects whose entries are still
    /// in the WAL, which recovery rebuilds them from.
    fn put_tile_unsynced(&self, id: &TileId, bytes: &[u8]) -> io::Result<()> {
        self.put_tile(id, bytes)
    }
    /// Makes everything written so far durable.
    fn sync(&self) -> io::Result<()> {
        Ok(())
    }
    fn get_tile(&self, id: &TileId) -> io::Result<Option<Vec<u8>>>;
    fn has_tile(&self, id: &TileId) -> io::Result<bool>;
    /// Appends `note` to the checkpoint history, then makes it the latest checkpoint.
    fn publish_checkpoint(&self, note: &[u8]) -> io::Result<()>;
    fn latest_checkpoint(&self) -> io::Result<Option<Vec<u8>>>;
    /// Every published checkpoint, oldest first, and how many bytes follow the last whole
    /// record (a torn append).
    fn checkpoint_history(&self) -> io::Result<History>;
    /// Releases what the zone holds for its writer (a directory lock); reads still work.
    fn close(&self) {}
}

/// The checkpoint history of a zone.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct History {
    pub notes: Vec<Vec<u8>>,
    /// Bytes after the last whole record.
    pub trailing: usize,
}

/// How many full bundles a zone holds. Bundles are written in order, so their existence is a
/// prefix: gallop, then bisect.
pub fn count_full_bundles(zone: &dyn Zone) -> io::Result<u64> {
    let has = |n: u64| zone.has_tile(&TileId::entries(n, crate::tile::WIDTH as u16));
    if !has(0)? {
        return Ok(0);
    }
    let mut hi = 1u64;
    while has(hi)? {
        hi = hi
            .checked_mul(2)
            .ok_or_else(|| io::Error::other("bundle count overflow"))?;
    }
    let mut lo = hi / 2;
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if has(mid)? {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    Ok(hi)
}

/// A zone in a local directory.
#[derive(Debug)]
pub struct LocalZone {
    root: PathBuf,
    /// The open WAL segment being appended to.
    wal: Mutex<Option<(u64, File)>>,
    /// Held until [`Zone::close`]: one writer per directory.
    lock: Mutex<Option<File>>,
    /// Objects written but not yet fsynced, nor their directory entries.
    unsynced: Mutex<BTreeSet<PathBuf>>,
    /// Names the next temp file.
    temp_seq: AtomicU64,
}

/// Where a local zone writes files before renaming them into place: a small directory of its
/// own, so each object costs one lookup in its (up to 1,000-entry) tile directory instead of
/// several.
const TEMP_DIR: &str = ".tmp";

/// Bytes reserved on disk for a new WAL segment: room for a segment of ~500-byte entries.
const WAL_PREALLOCATE: u64 = WAL_SEGMENT_ENTRIES * 512;

/// Reserves a new segment's blocks up front, without changing its length (`FALLOC_FL_KEEP_SIZE`:
/// readers and recovery see exactly the bytes appended). Appends then find their blocks
/// allocated, so an `fdatasync` does not also wait for the filesystem to allocate more — measured
/// on ext4 as a 10–17 ms stall every few hundred kilobytes of WAL. Best effort: a filesystem
/// without `fallocate` just allocates as it goes.
fn preallocate_wal(f: &File) {
    let _ = rustix::fs::fallocate(f, rustix::fs::FallocateFlags::KEEP_SIZE, 0, WAL_PREALLOCATE);
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Makes `files` (written under `root`) and their names durable. On Linux one `syncfs` of the
/// filesystem: a single device cache flush however many files there are, where an fsync each
/// would flush once per file.
#[cfg(target_os = "linux")]
fn sync_files(root: &Path, files: &BTreeSet<PathBuf>) -> io::Result<()> {
    if files.is_empty() {
        return Ok(());
    }
    rustix::fs::syncfs(File::open(root)?)?;
    Ok(())
}

/// Makes `files` and their names durable: each file, then each directory once.
#[cfg(not(target_os = "linux"))]
fn sync_files(_root: &Path, files: &BTreeSet<PathBuf>) -> io::Result<()> {
    for f in files {
        File::open(f)?.sync_all()?;
    }
    let dirs: BTreeSet<&Path> = files.iter().filter_map(|f| f.parent()).collect();
    dirs.into_iter().try_for_each(sync_dir)
}

/// Creates `dir` and its missing parents, making each new entry durable.
fn ensure_dir(dir: &Path) -> io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent() {
        ensure_dir(parent)?;
    }
    match fs::create_dir(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Ok(()),
        Err(e) => return Err(e),
    }
    if let Some(parent) = dir.parent() {
        sync_dir(parent)?;
    }
    Ok(())
}

/// How durable [`LocalZone::write_atomic`] makes what it writes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Durability {
    /// The bytes and the new name are on disk when the call returns.
    Now,
    /// Neither is fsynced here: a later sync makes them durable. For objects that recovery can
    /// rebuild until then.
    Deferred,
}

fn read_optional(path: &Path) -> io::Result<Option<Vec<u8>>> {
    match fs::read(path) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

impl LocalZone {
    /// Opens (creating) the zone at `root` for writing; fails if another process writes to it.
    pub fn open(root: &Path) -> io::Result<Self> {
        ensure_dir(&root.join("wal"))?;
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(root.join("LOCK"))?;
        lock.try_lock().map_err(|_| {
            io::Error::new(
                io::ErrorKind::WouldBlock,
                format!("{} is in use by another ledger writer", root.display()),
            )
        })?;
        // Temp files left by a writer that was killed mid-write; nothing refers to them.
        let temp = root.join(TEMP_DIR);
        match fs::remove_dir_all(&temp) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        ensure_dir(&temp)?;
        Ok(Self {
            root: root.to_owned(),
            wal: Mutex::new(None),
            lock: Mutex::new(Some(lock)),
            unsynced: Mutex::new(BTreeSet::new()),
            temp_seq: AtomicU64::new(0),
        })
    }

    /// Opens an existing zone for reading only (verification), without the writer lock.
    pub fn open_read_only(root: &Path) -> io::Result<Self> {
        if !root.is_dir() {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("{} is not a ledger directory", root.display()),
            ));
        }
        Ok(Self {
            root: root.to_owned(),
            wal: Mutex::new(None),
            lock: Mutex::new(None),
            unsynced: Mutex::new(BTreeSet::new()),
            temp_seq: AtomicU64::new(0),
        })
    }

    /// Writes `bytes` to `path` atomically (a temp file renamed into place, so a reader sees all
    /// of it or nothing), durably as `durability` says.
    fn write_atomic(&self, path: &Path, bytes: &[u8], durability: Durability) -> io::Result<()> {
        let dir = path
            .parent()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no parent directory"))?;
        ensure_dir(dir)?;
        let seq = self.temp_seq.fetch_add(1, Ordering::Relaxed);
        let tmp = self
            .root
            .join(TEMP_DIR)
            .join(format!("{}-{seq}", std::process::id()));
        {
            let mut f = File::create(&tmp)?;
            f.write_all(bytes)?;
            if durability == Durability::Now {
                f.sync_all()?;
            }
        }
        fs::rename(&tmp, path)?;
        if durability == Durability::Now {
            sync_dir(dir)?;
        }
        Ok(())
    }

    #[must_use]
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn wal_path(&self, segment: u64) -> PathBuf {
        self.root.join("wal").join(format!("{segment:020}.wal"))
    }

    fn forget_open_wal(&self, segment: u64) {
        if let Ok(mut w) = self.wal.lock()
            && w.as_ref().is_some_and(|(b, _)| *b == segment)
        {
            *w = None;
        }
    }
}

impl Zone for LocalZone {
    fn describe(&self) -> String {
        self.root.display().to_string()
    }

    fn append_wal(&self, segment: u64, bytes: &[u8]) -> io::Result<()> {
        let mut guard = self
            .wal
            .lock()
            .map_err(|_| io::Error::other("wal lock poisoned"))?;
        if guard.as_ref().is_none_or(|(b, _)| *b != segment) {
            let path = self.wal_path(segment);
            let existed = path.exists();
            let f = OpenOptions::new().create(true).append(true).open(&path)?;
            if !existed {
                preallocate_wal(&f);
                sync_dir(&self.root.join("wal"))?;
            }
            *guard = Some((segment, f));
        }
        if let Some((_, f)) = guard.as_mut() {
            f.write_all(bytes)?;
            f.sync_data()?;
        }
        Ok(())
    }

    fn read_wal(&self, segment: u64) -> io::Result<Option<Vec<u8>>> {
        read_optional(&self.wal_path(segment))
    }

    fn truncate_wal(&self, segment: u64, len: u64) -> io::Result<()> {
        self.forget_open_wal(segment);
        let f = OpenOptions::new()
            .write(true)
            .open(self.wal_path(segment))?;
        f.set_len(len)?;
        f.sync_all()
    }

    fn remove_wal(&self, segment: u64) -> io::Result<()> {
        self.forget_open_wal(segment);
        match fs::remove_file(self.wal_path(segment)) {
            Ok(()) => sync_dir(&self.root.join("wal")),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        }
    }

    fn wal_segments(&self) -> io::Result<Vec<u64>> {
        let mut out = Vec::new();
        for e in fs::read_dir(self.root.join("wal"))? {
            let name = e?.file_name();
            let name = name.to_string_lossy();
            if let Some(n) = name
                .strip_suffix(".wal")
                .and_then(|n| n.parse::<u64>().ok())
            {
                out.push(n);
            }
        }
        out.sort_unstable();
        Ok(out)
    }

    fn put_tile(&self, id: &TileId, bytes: &[u8]) -> io::Result<()> {
        self.write_atomic(&self.root.join(id.path()), bytes, Durability::Now)
    }

    /// Neither the object's bytes nor its name are fsynced here: [`Zone::sync`] makes them
    /// durable, once per WAL segment instead of once per object.
    fn put_tile_unsynced(&self, id: &TileId, bytes: &[u8]) -> io::Result<()> {
        let path = self.root.join(id.path());
        self.write_atomic(&path, bytes, Durability::Deferred)?;
        self.unsynced
            .lock()
            .map_err(|_| io::Error::other("lock poisoned"))?
            .insert(path);
        Ok(())
    }

    fn sync(&self) -> io::Result<()> {
        let mut unsynced = self
            .unsynced
            .lock()
            .map_err(|_| io::Error::other("lock poisoned"))?;
        // On failure the set is kept for the next attempt.
        sync_files(&self.root, &unsynced)?;
        unsynced.clear();
        Ok(())
    }

    fn get_tile(&self, id: &TileId) -> io::Result<Option<Vec<u8>>> {
        read_optional(&self.root.join(id.path()))
    }

    fn has_tile(&self, id: &TileId) -> io::Result<bool> {
        Ok(self.root.join(id.path()).is_file())
    }

    fn publish_checkpoint(&self, note: &[u8]) -> io::Result<()> {
        let mut history = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.root.join("checkpoints"))?;
        let mut framed = Vec::with_capacity(4 + note.len());
        framed.extend_from_slice(&(note.len() as u32).to_be_bytes());
        framed.extend_from_slice(note);
        history.write_all(&framed)?;
        history.sync_data()?;
        self.write_atomic(&self.root.join("checkpoint"), note, Durability::Now)
    }

    fn latest_checkpoint(&self) -> io::Result<Option<Vec<u8>>> {
        read_optional(&self.root.join("checkpoint"))
    }

    fn checkpoint_history(&self) -> io::Result<History> {
        let mut bytes = Vec::new();
        match File::open(self.root.join("checkpoints")) {
            Ok(mut f) => {
                f.read_to_end(&mut bytes)?;
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(History::default()),
            Err(e) => return Err(e),
        }
        let (notes, trailing) = parse_history(&bytes);
        Ok(History { notes, trailing })
    }

    fn close(&self) {
        if let Ok(mut w) = self.wal.lock() {
            *w = None;
        }
        if let Ok(mut l) = self.lock.lock() {
            *l = None;
        }
    }
}

/// The notes in a history file, and whether bytes were left over after the last whole record.
#[must_use]
pub fn parse_history(bytes: &[u8]) -> (Vec<Vec<u8>>, usize) {
    let mut out = Vec::new();
    let mut rest = bytes;
    while rest.len() >= 4 {
        let len = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        if rest.len() < 4 + len {
            break;
        }
        out.push(rest[4..4 + len].to_vec());
        rest = &rest[4 + len..];
    }
    (out, rest.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wal_scan_stops_at_a_torn_or_damaged_record() {
        let mut bytes = Vec::new();
        for i in 0..5u64 {
            encode_wal_record(100 + i, format!("entry {i}").as_bytes(), &mut bytes);
        }
        let whole = scan_wal(&bytes, 100);
        assert_eq!(whole.entries.len(), 5);
        assert_eq!(whole.trailing, 0);
        // Torn: the last record cut short.
        let torn = scan_wal(&bytes[..bytes.len() - 3], 100);
        assert_eq!(torn.entries.len(), 4);
        assert!(torn.trailing > 0);
        // Damaged: a flipped byte in record 2 ends the valid prefix there.
        let mut damaged = bytes.clone();
        let record_len = WAL_HEADER + "entry 0".len();
        damaged[2 * record_len + WAL_HEADER + 1] ^= 0x40;
        assert_eq!(scan_wal(&damaged, 100).entries.len(), 2);
        // Out of place: the wrong starting index matches nothing.
        assert!(scan_wal(&bytes, 99).entries.is_empty());
        // Damage has intact records after it; a torn tail has none.
        let d = scan_wal(&damaged, 100);
        assert!(valid_record_after(&damaged, d.valid_len as usize, 102));
        assert!(!valid_record_after(
            &bytes[..bytes.len() - 3],
            torn.valid_len as usize,
            104
        ));
    }

    #[test]
    fn a_segment_starts_at_its_first_record_and_ends_at_its_boundary() {
        let first = 3 * WAL_SEGMENT_ENTRIES;
        // From the segment's start, and from a later bundle (after a catch-up).
        for start in [first, first + 512] {
            let mut bytes = Vec::new();
            for i in 0..10 {
                encode_wal_record(start + i, b"e", &mut bytes);
            }
            let (s, scan) = scan_segment(&bytes, 3);
            assert_eq!((s, scan.entries.len(), scan.trailing), (start, 10, 0));
        }
        // A record of another segment is not this segment's first record.
        let mut bytes = Vec::new();
        encode_wal_record(first - 1, b"e", &mut bytes);
        let (s, scan) = scan_segment(&bytes, 3);
        assert_eq!(s, first);
        assert!(scan.entries.is_empty() && scan.trailing > 0);
        // Records past the segment's end are cut off.
        let mut bytes = Vec::new();
        let last = first + WAL_SEGMENT_ENTRIES - 2;
        for i in 0..4 {
            encode_wal_record(last + i, b"e", &mut bytes);
        }
        let (_, scan) = scan_segment(&bytes, 3);
        assert_eq!(scan.entries.len(), 2);
        assert_eq!(scan.trailing, 2 * (WAL_HEADER as u64 + 1));
        // Nothing readable: empty, starting at the segment's first index.
        let (s, scan) = scan_segment(&[1, 2, 3], 3);
        assert_eq!((s, scan.entries.len(), scan.trailing), (first, 0, 3));
    }

    #[test]
    fn local_zone_round_trips_and_locks() {
        let dir = tempfile::tempdir().unwrap();
        let z = LocalZone::open(dir.path()).unwrap();
        assert!(LocalZone::open(dir.path()).is_err(), "one writer per zone");
        let mut rec = Vec::new();
        encode_wal_record(0, b"a", &mut rec);
        z.append_wal(0, &rec).unwrap();
        z.append_wal(0, &rec).unwrap();
        assert_eq!(z.read_wal(0).unwrap().unwrap().len(), 2 * rec.len());
        z.truncate_wal(0, rec.len() as u64).unwrap();
        assert_eq!(z.read_wal(0).unwrap().unwrap().len(), rec.len());
        assert_eq!(z.wal_segments().unwrap(), vec![0]);
        z.remove_wal(0).unwrap();
        assert!(z.wal_segments().unwrap().is_empty());
        let id = TileId::hashes(0, 1_234_067, 256);
        z.put_tile(&id, b"tile").unwrap();
        assert_eq!(z.get_tile(&id).unwrap().unwrap(), b"tile");
        assert!(dir.path().join("tile/0/x001/x234/067").is_file());
        z.publish_checkpoint(b"one\n").unwrap();
        z.publish_checkpoint(b"two\n").unwrap();
        assert_eq!(z.latest_checkpoint().unwrap().unwrap(), b"two\n");
        assert_eq!(
            z.checkpoint_history().unwrap().notes,
            vec![b"one\n".to_vec(), b"two\n".to_vec()]
        );
        drop(z);
        assert!(
            LocalZone::open(dir.path()).is_ok(),
            "the lock goes with the zone"
        );
    }

    #[test]
    fn objects_go_through_the_temp_directory_which_opening_empties() {
        let dir = tempfile::tempdir().unwrap();
        let z = LocalZone::open(dir.path()).unwrap();
        let temp = dir.path().join(TEMP_DIR);
        let a = TileId::hashes(0, 7, 256);
        let b = TileId::hashes(0, 8, 256);
        z.put_tile_unsynced(&a, b"deferred").unwrap();
        z.put_tile(&b, b"now").unwrap();
        assert_eq!(z.get_tile(&a).unwrap().unwrap(), b"deferred");
        assert_eq!(z.get_tile(&b).unwrap().unwrap(), b"now");
        assert_eq!(z.unsynced.lock().unwrap().len(), 1);
        z.sync().unwrap();
        assert!(z.unsynced.lock().unwrap().is_empty());
        assert_eq!(
            fs::read_dir(&temp).unwrap().count(),
            0,
            "every temp file was renamed into place"
        );
        let mut names: Vec<_> = fs::read_dir(dir.path().join("tile/0"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        names.sort();
        assert_eq!(
            names,
            ["007", "008"],
            "nothing but the objects in their directory"
        );
        drop(z);
        // A writer killed between creating a temp file and renaming it leaves it behind.
        fs::write(temp.join("12345-0"), b"torn").unwrap();
        let z = LocalZone::open(dir.path()).unwrap();
        assert_eq!(fs::read_dir(&temp).unwrap().count(), 0);
        assert_eq!(z.get_tile(&a).unwrap().unwrap(), b"deferred");
    }
}
