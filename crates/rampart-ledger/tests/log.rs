//! The ledger on real files: durability, recovery, reads, proofs, zones.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests"
)]

use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rampart_crypto::{Secret, SigningKey};
use rampart_ledger::checkpoint::Checkpoint;
use rampart_ledger::note::NoteSigner;
use rampart_ledger::tile::TileId;
use rampart_ledger::tree::{self, MemoryTree};
use rampart_ledger::zone::{LocalZone, Zone};
use rampart_ledger::{Ledger, LedgerConfig, LedgerError, leaf_hash};

const ORIGIN: &str = "rampart.test/ledger";

fn signer() -> NoteSigner {
    NoteSigner::new(ORIGIN, SigningKey::from_seed(&Secret::new([11; 32]))).unwrap()
}

fn open(dir: &Path) -> Ledger {
    let zone: Arc<dyn Zone> = Arc::new(LocalZone::open(dir).unwrap());
    Ledger::open(LedgerConfig::new(vec![zone], signer())).unwrap()
}

fn entry(i: u64) -> Vec<u8> {
    format!("entry number {i}").into_bytes()
}

/// Appends `n` entries from `threads` threads at once (`threads` divides `n`); returns (index,
/// leaf hash) receipts. With one thread, entry `start + k` lands at index `start + k`.
fn append_many(l: &Ledger, start: u64, n: u64, threads: u64) -> Vec<(u64, rampart_ledger::Hash)> {
    assert!(
        n.is_multiple_of(threads),
        "{threads} threads cannot share {n} appends"
    );
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                s.spawn(move || {
                    (0..n / threads)
                        .map(|k| {
                            let r = l
                                .append_blocking(&entry(start + t * (n / threads) + k))
                                .unwrap();
                            (r.index, r.leaf_hash)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    })
}

#[test]
fn appends_are_sequenced_readable_and_provable() {
    let dir = tempfile::tempdir().unwrap();
    let l = open(dir.path());
    let receipts = append_many(&l, 0, 1000, 8);
    let mut indexes: Vec<u64> = receipts.iter().map(|r| r.0).collect();
    indexes.sort_unstable();
    assert_eq!(
        indexes,
        (0..1000).collect::<Vec<_>>(),
        "every index exactly once"
    );
    assert_eq!(l.size(), 1000);
    // Each entry is stored under its receipt's index, with its receipt's leaf hash.
    for (index, leaf) in &receipts {
        let e = l.entry(*index).unwrap();
        assert_eq!(leaf_hash(&e), *leaf);
        assert_eq!(l.leaf_hash(*index).unwrap(), *leaf);
    }
    // A checkpoint, verifiable offline; proofs against it.
    let cp = l.checkpoint_blocking().unwrap();
    let opened = Checkpoint::open(l.verifier(), cp.note.as_bytes()).unwrap();
    assert_eq!(opened.size, 1000);
    for (index, leaf) in receipts.iter().step_by(37) {
        let proof = l.inclusion_proof(*index, 1000).unwrap();
        tree::verify_inclusion(*index, 1000, leaf, &proof, &opened.root).unwrap();
    }
    let first = l.latest_checkpoint().unwrap();
    append_many(&l, 1000, 100, 4);
    let second = l.checkpoint_blocking().unwrap();
    let proof = l
        .consistency_proof(first.checkpoint.size, second.checkpoint.size)
        .unwrap();
    tree::verify_consistency(
        first.checkpoint.size,
        second.checkpoint.size,
        &first.checkpoint.root,
        &second.checkpoint.root,
        &proof,
    )
    .unwrap();
    // Too long an entry is refused; missing entries are reported.
    assert!(matches!(
        l.append_blocking(&vec![0; 70_000]),
        Err(LedgerError::EntryTooLong(70_000))
    ));
    assert!(matches!(l.entry(5000), Err(LedgerError::NoSuchEntry(5000))));
    // Files in the C2SP layout: full bundles 0..3, tiles, the partial tiles of the checkpoint.
    assert!(dir.path().join("tile/entries/003").is_file());
    assert!(dir.path().join("tile/0/003").is_file());
    assert!(
        dir.path().join("tile/0/004.p/76").is_file(),
        "partial tile of size 1100"
    );
    assert!(dir.path().join("tile/entries/004.p/76").is_file());
    assert!(dir.path().join("tile/1/000.p/4").is_file());
    assert!(dir.path().join("checkpoint").is_file());
}

#[test]
fn a_restart_finds_everything_and_continues() {
    let dir = tempfile::tempdir().unwrap();
    let (root, receipts) = {
        let l = open(dir.path());
        let receipts = append_many(&l, 0, 600, 3);
        (l.root_at(600).unwrap(), receipts)
    };
    let l = open(dir.path());
    assert_eq!(l.size(), 600);
    assert_eq!(l.root_at(600).unwrap(), root);
    for (index, leaf) in &receipts {
        assert_eq!(l.leaf_hash(*index).unwrap(), *leaf);
    }
    // Shutdown published a checkpoint of everything.
    assert_eq!(l.latest_checkpoint().unwrap().checkpoint.size, 600);
    let r = l.append_blocking(b"after restart").unwrap();
    assert_eq!(r.index, 600);
}

#[test]
fn a_torn_tail_is_discarded_and_acknowledged_entries_stay() {
    let dir = tempfile::tempdir().unwrap();
    {
        let l = open(dir.path());
        append_many(&l, 0, 300, 1);
    }
    // A crash in the middle of a WAL append: half a record at the end of the file.
    let wal = dir.path().join("wal/00000000000000000000.wal");
    let mut bytes = std::fs::read(&wal).unwrap();
    bytes.extend_from_slice(&[0, 0, 0, 40, 1, 2, 3]);
    std::fs::write(&wal, &bytes).unwrap();
    let l = open(dir.path());
    assert_eq!(l.size(), 300);
    for i in 0..300 {
        assert_eq!(l.entry(i).unwrap(), entry(i));
    }
    assert_eq!(l.append_blocking(b"next").unwrap().index, 300);
}

#[test]
fn damage_before_the_end_of_the_wal_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    {
        let l = open(dir.path());
        append_many(&l, 0, 100, 1);
    }
    let wal = dir.path().join("wal/00000000000000000000.wal");
    let mut bytes = std::fs::read(&wal).unwrap();
    bytes[30] ^= 0x01; // inside the first record
    std::fs::write(&wal, &bytes).unwrap();
    let zone: Arc<dyn Zone> = Arc::new(LocalZone::open(dir.path()).unwrap());
    let err = Ledger::open(LedgerConfig::new(vec![zone], signer())).unwrap_err();
    // Intact records follow the damage, so it is not a torn write: nothing is dropped.
    assert!(err.to_string().contains("damaged before its end"), "{err}");
}

/// A tree of 70,000 entries spans three tile levels; its root and proofs agree with an in-memory
/// tree of the same entries, and an independent implementation reads our tiles.
#[test]
fn a_three_level_tree_matches_memory_and_their_tile_reader() {
    let dir = tempfile::tempdir().unwrap();
    let l = open(dir.path());
    let n = 70_000u64;
    append_many(&l, 0, n, 8);
    let cp = l.checkpoint_blocking().unwrap();
    let mut mem = MemoryTree::new();
    for i in 0..n {
        mem.push(leaf_hash(&l.entry(i).unwrap()));
    }
    assert_eq!(cp.checkpoint.root, mem.root_at(n).unwrap());
    for size in [1u64, 255, 256, 257, 65_535, 65_536, 65_537, 69_999, 70_000] {
        assert_eq!(
            l.root_at(size).unwrap(),
            mem.root_at(size).unwrap(),
            "root at {size}"
        );
    }
    for index in [0u64, 255, 256, 65_535, 65_536, 69_999] {
        assert_eq!(
            l.inclusion_proof(index, n).unwrap(),
            tree::inclusion_proof(&mem, index, n).unwrap()
        );
    }
    assert_eq!(
        l.consistency_proof(65_536, n).unwrap(),
        tree::consistency_proof(&mem, 65_536, n).unwrap()
    );
    // The spec's example shape for 70,000.
    for p in [
        "tile/0/272",
        "tile/0/273.p/112",
        "tile/1/000",
        "tile/1/001.p/17",
        "tile/2/000.p/1",
    ] {
        assert!(dir.path().join(p).is_file(), "{p}");
    }

    struct Reader<'a>(&'a Ledger);
    impl tlog_tiles::TileReader for Reader<'_> {
        fn height(&self) -> u8 {
            8
        }
        fn read_tiles(
            &self,
            tiles: &[tlog_tiles::Tile],
        ) -> Result<Vec<Vec<u8>>, tlog_tiles::Error> {
            tiles
                .iter()
                .map(|t| {
                    let id = TileId::hashes(t.level(), t.level_index(), t.width() as u16);
                    self.0
                        .tile(&id)
                        .ok()
                        .flatten()
                        .ok_or_else(|| tlog_tiles::Error::InvalidInput(id.path()))
                })
                .collect()
        }
        fn save_tiles(&self, _: &[tlog_tiles::Tile], _: &[Vec<u8>]) {}
    }
    let reader = Reader(&l);
    let hr = tlog_tiles::TileHashReader::new(n, tlog_tiles::Hash(cp.checkpoint.root.0), &reader);
    let theirs = tlog_tiles::tree_hash(n, &hr).unwrap();
    assert_eq!(
        theirs.0, cp.checkpoint.root.0,
        "their reader authenticates our tiles"
    );
    let proof = tlog_tiles::prove_record(n, 12_345, &hr).unwrap();
    let ours: Vec<tlog_tiles::Hash> = l
        .inclusion_proof(12_345, n)
        .unwrap()
        .iter()
        .map(|h| tlog_tiles::Hash(h.0))
        .collect();
    assert_eq!(proof, ours);
}

/// A zone that can be told to fail, and that remembers what was written since its last sync
/// (what a power loss may take).
#[derive(Debug)]
struct Flaky {
    inner: LocalZone,
    down: AtomicBool,
    unsynced: Mutex<Vec<TileId>>,
}

impl Flaky {
    fn check(&self) -> io::Result<()> {
        if self.down.load(Ordering::SeqCst) {
            Err(io::Error::other("volume unplugged"))
        } else {
            Ok(())
        }
    }
}

impl Zone for Flaky {
    fn describe(&self) -> String {
        self.inner.describe()
    }
    fn append_wal(&self, b: u64, bytes: &[u8]) -> io::Result<()> {
        self.check()?;
        self.inner.append_wal(b, bytes)
    }
    fn read_wal(&self, b: u64) -> io::Result<Option<Vec<u8>>> {
        self.check()?;
        self.inner.read_wal(b)
    }
    fn truncate_wal(&self, b: u64, len: u64) -> io::Result<()> {
        self.check()?;
        self.inner.truncate_wal(b, len)
    }
    fn remove_wal(&self, b: u64) -> io::Result<()> {
        self.check()?;
        self.inner.remove_wal(b)
    }
    fn wal_segments(&self) -> io::Result<Vec<u64>> {
        self.check()?;
        self.inner.wal_segments()
    }
    fn put_tile(&self, id: &TileId, bytes: &[u8]) -> io::Result<()> {
        self.check()?;
        self.inner.put_tile(id, bytes)
    }
    fn put_tile_unsynced(&self, id: &TileId, bytes: &[u8]) -> io::Result<()> {
        self.check()?;
        self.inner.put_tile_unsynced(id, bytes)?;
        self.unsynced.lock().unwrap().push(*id);
        Ok(())
    }
    fn sync(&self) -> io::Result<()> {
        self.check()?;
        self.inner.sync()?;
        self.unsynced.lock().unwrap().clear();
        Ok(())
    }
    fn get_tile(&self, id: &TileId) -> io::Result<Option<Vec<u8>>> {
        self.check()?;
        self.inner.get_tile(id)
    }
    fn has_tile(&self, id: &TileId) -> io::Result<bool> {
        self.check()?;
        self.inner.has_tile(id)
    }
    fn publish_checkpoint(&self, note: &[u8]) -> io::Result<()> {
        self.check()?;
        self.inner.publish_checkpoint(note)
    }
    fn latest_checkpoint(&self) -> io::Result<Option<Vec<u8>>> {
        self.check()?;
        self.inner.latest_checkpoint()
    }
    fn checkpoint_history(&self) -> io::Result<rampart_ledger::zone::History> {
        self.check()?;
        self.inner.checkpoint_history()
    }
    fn close(&self) {
        self.inner.close();
    }
}

fn flaky_zones(dirs: &[&Path]) -> Vec<Arc<Flaky>> {
    dirs.iter()
        .map(|d| {
            Arc::new(Flaky {
                inner: LocalZone::open(d).unwrap(),
                down: AtomicBool::new(false),
                unsynced: Mutex::new(Vec::new()),
            })
        })
        .collect()
}

fn zoned(zones: &[Arc<Flaky>], quorum: usize) -> Ledger {
    let mut c = LedgerConfig::new(
        zones.iter().map(|z| z.clone() as Arc<dyn Zone>).collect(),
        signer(),
    );
    c.quorum = quorum;
    c.zone_retry_interval = Duration::from_millis(100);
    Ledger::open(c).unwrap()
}

fn wait_until(what: &str, f: impl Fn() -> bool) {
    for _ in 0..200 {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    panic!("timed out waiting for {what}");
}

#[test]
fn zones_keep_a_quorum_report_failures_and_catch_up() {
    let dirs = [
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    ];
    let paths: Vec<&Path> = dirs.iter().map(|d| d.path()).collect();
    let zones = flaky_zones(&paths);
    let l = zoned(&zones, 2);
    append_many(&l, 0, 300, 3);
    // One zone fails: appends go on with the other two, and the failure is reported.
    zones[2].down.store(true, Ordering::SeqCst);
    append_many(&l, 300, 300, 3);
    let status = l.zone_status();
    assert!(!status[2].healthy && status[2].error.as_deref().unwrap().contains("unplugged"));
    assert!(status[0].healthy && status[1].healthy);
    // A second failure loses the quorum: appends are refused, not acknowledged.
    zones[1].down.store(true, Ordering::SeqCst);
    assert!(matches!(
        l.append_blocking(b"x"),
        Err(LedgerError::QuorumLost { .. })
    ));
    assert_eq!(l.size(), 600);
    // Back online: both are caught up (re-verified) and appends resume.
    zones[1].down.store(false, Ordering::SeqCst);
    zones[2].down.store(false, Ordering::SeqCst);
    wait_until("zones to catch up", || {
        l.zone_status().iter().all(|s| s.healthy)
    });
    append_many(&l, 600, 30, 3);
    let cp = l.checkpoint_blocking().unwrap();
    drop(l);
    drop(zones);
    // Every zone on its own now holds the whole log.
    for p in &paths {
        let single = open(p);
        assert_eq!(single.size(), 630);
        assert_eq!(
            single.latest_checkpoint().unwrap().checkpoint,
            cp.checkpoint
        );
    }
}

#[test]
fn a_lagging_zone_found_at_start_up_is_caught_up() {
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let paths: Vec<&Path> = dirs.iter().map(|d| d.path()).collect();
    {
        let zones = flaky_zones(&paths);
        let l = zoned(&zones, 1);
        append_many(&l, 0, 100, 1);
        zones[1].down.store(true, Ordering::SeqCst);
        append_many(&l, 100, 500, 1);
    }
    let zones = flaky_zones(&paths);
    let l = zoned(&zones, 1);
    assert_eq!(l.size(), 600);
    wait_until("the lagging zone to catch up", || {
        l.zone_status()[1].healthy
    });
    drop(l);
    drop(zones);
    assert_eq!(open(paths[1]).size(), 600);
}

/// A power loss takes the tiles and bundles written since the last sync — even after a clean
/// shutdown — in any state (gone, empty, zeroed): recovery rebuilds them from the WAL, and the
/// log verifies.
#[test]
fn objects_lost_with_power_are_rebuilt_from_the_wal() {
    let seg = rampart_ledger::zone::WAL_SEGMENT_ENTRIES;
    let dir = tempfile::tempdir().unwrap();
    let zones = flaky_zones(&[dir.path()]);
    let n = seg + 3_000;
    let receipts = {
        let l = zoned(&zones, 1);
        let r = append_many(&l, 0, n, 8);
        l.checkpoint_blocking().unwrap();
        r
    };
    // Segment 0 was synced and dropped; what segment 1's bundles wrote was not synced.
    let lost = zones[0].unsynced.lock().unwrap().clone();
    assert!(lost.len() >= 2 * 11, "{}", lost.len());
    drop(zones);
    for (k, id) in lost.iter().enumerate() {
        let path = dir.path().join(id.path());
        match k % 3 {
            0 => std::fs::remove_file(&path).unwrap(),
            1 => std::fs::write(&path, b"").unwrap(),
            _ => {
                let len = std::fs::metadata(&path).unwrap().len() as usize;
                std::fs::write(&path, vec![0u8; len]).unwrap();
            }
        }
    }
    let l = open(dir.path());
    assert_eq!(l.size(), n);
    for (index, leaf) in &receipts {
        assert_eq!(l.leaf_hash(*index).unwrap(), *leaf);
    }
    for i in [0, seg - 1, seg, n - 1] {
        assert_eq!(leaf_hash(&l.entry(i).unwrap()), l.leaf_hash(i).unwrap());
    }
    drop(l);
    let zone = LocalZone::open_read_only(dir.path()).unwrap();
    rampart_ledger::verify::verify_zone(&zone, &signer().verifier(), &mut |_, _| {}).unwrap();
}

/// A zone that falls behind across a WAL segment boundary is caught up (its WAL rewritten from
/// the partial bundle, mid-segment) and, restarted on its own, recovers the whole log.
#[test]
fn a_zone_lagging_across_wal_segments_is_caught_up() {
    let seg = rampart_ledger::zone::WAL_SEGMENT_ENTRIES;
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let paths: Vec<&Path> = dirs.iter().map(|d| d.path()).collect();
    let mut receipts;
    {
        let zones = flaky_zones(&paths);
        let l = zoned(&zones, 1);
        receipts = append_many(&l, 0, seg - 96, 8);
        zones[1].down.store(true, Ordering::SeqCst);
        receipts.extend(append_many(&l, seg - 96, 1_000, 8));
    }
    let total = seg + 904;
    {
        let zones = flaky_zones(&paths);
        let l = zoned(&zones, 1);
        assert_eq!(l.size(), total);
        wait_until("the lagging zone to catch up", || {
            l.zone_status()[1].healthy
        });
        receipts.extend(append_many(&l, total, 504, 8));
        l.checkpoint_blocking().unwrap();
    }
    for p in &paths {
        let l = open(p);
        assert_eq!(l.size(), total + 504);
        for (index, leaf) in &receipts {
            assert_eq!(
                l.leaf_hash(*index).unwrap(),
                *leaf,
                "entry {index} in {}",
                p.display()
            );
        }
        drop(l);
        let zone = LocalZone::open_read_only(p).unwrap();
        rampart_ledger::verify::verify_zone(&zone, &signer().verifier(), &mut |_, _| {}).unwrap();
    }
}

#[tokio::test]
async fn receipts_upgrade_to_inclusion_proofs_at_the_next_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let zone: Arc<dyn Zone> = Arc::new(LocalZone::open(dir.path()).unwrap());
    let mut c = LedgerConfig::new(vec![zone], signer());
    c.checkpoint_interval = Duration::from_secs(1);
    let l = Arc::new(
        tokio::task::spawn_blocking(move || Ledger::open(c).unwrap())
            .await
            .unwrap(),
    );
    let r = l.append(b"wait for me").await.unwrap();
    // No explicit checkpoint: the periodic one (every second) covers it.
    let cp = l
        .checkpoint_covering(r.index, Duration::from_secs(5))
        .await
        .unwrap();
    let proof = l.inclusion_proof(r.index, cp.checkpoint.size).unwrap();
    tree::verify_inclusion(
        r.index,
        cp.checkpoint.size,
        &r.leaf_hash,
        &proof,
        &cp.checkpoint.root,
    )
    .unwrap();
    assert!(matches!(
        l.checkpoint_covering(10_000, Duration::from_millis(50))
            .await,
        Err(LedgerError::Timeout(10_000))
    ));
    let l2 = l.clone();
    tokio::task::spawn_blocking(move || l2.shutdown())
        .await
        .unwrap();
}
