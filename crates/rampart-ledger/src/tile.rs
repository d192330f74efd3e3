//! C2SP tlog-tiles, sans I/O: tile coordinates and their paths, the hashes a tile holds, and entry
//! bundles.
//!
//! A tile at level `L` holds up to 256 consecutive hashes of the tree level `8L`; a full tile holds
//! exactly 256 (8,192 bytes); the rightmost tile of a level may be partial (1–255 hashes, path
//! suffix `.p/<W>`). Entry bundles hold the entries behind a level-0 tile, each prefixed by its
//! big-endian `u16` length.

use crate::hash::{Hash, node_hash};

/// Tile height: 8 tree levels per tile level.
pub const HEIGHT: u8 = 8;
/// Hashes (or entries) in a full tile (or bundle).
pub const WIDTH: u64 = 256;
/// The longest entry a bundle can hold.
pub const MAX_ENTRY_LEN: usize = u16::MAX as usize;

/// What a tile holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TileKind {
    /// Hashes of tree level `8 × level`.
    Hashes { level: u8 },
    /// The entries behind level-0 tile `index`.
    Entries,
}

/// One tile or entry bundle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TileId {
    pub kind: TileKind,
    pub index: u64,
    /// 1–256; 256 is a full tile.
    pub width: u16,
}

/// `1234067` → `x001/x234/067`.
fn encode_index(mut n: u64) -> String {
    let mut out = format!("{:03}", n % 1000);
    while n >= 1000 {
        n /= 1000;
        out = format!("x{:03}/{out}", n % 1000);
    }
    out
}

fn parse_decimal_no_leading_zero(s: &str) -> Option<u64> {
    if s.is_empty() || (s.len() > 1 && s.starts_with('0')) || !s.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    s.parse().ok()
}

impl TileId {
    #[must_use]
    pub fn hashes(level: u8, index: u64, width: u16) -> Self {
        Self {
            kind: TileKind::Hashes { level },
            index,
            width,
        }
    }

    #[must_use]
    pub fn entries(index: u64, width: u16) -> Self {
        Self {
            kind: TileKind::Entries,
            index,
            width,
        }
    }

    #[must_use]
    pub fn is_partial(&self) -> bool {
        u64::from(self.width) < WIDTH
    }

    /// The path below the log's prefix, e.g. `tile/0/x001/234.p/17` or `tile/entries/005`.
    #[must_use]
    pub fn path(&self) -> String {
        let level = match self.kind {
            TileKind::Hashes { level } => level.to_string(),
            TileKind::Entries => "entries".to_owned(),
        };
        let partial = if self.is_partial() {
            format!(".p/{}", self.width)
        } else {
            String::new()
        };
        format!("tile/{level}/{}{partial}", encode_index(self.index))
    }

    /// Parses a path produced by [`TileId::path`]; anything else (other spellings, leading
    /// zeroes, `..`) is refused.
    #[must_use]
    pub fn parse(path: &str) -> Option<Self> {
        let rest = path.strip_prefix("tile/")?;
        let (kind_str, rest) = rest.split_once('/')?;
        let kind = if kind_str == "entries" {
            TileKind::Entries
        } else {
            let level = parse_decimal_no_leading_zero(kind_str)?;
            if level > 63 {
                return None;
            }
            TileKind::Hashes { level: level as u8 }
        };
        let (index_str, width) = match rest.split_once(".p/") {
            Some((i, w)) => {
                let w = parse_decimal_no_leading_zero(w)?;
                if !(1..WIDTH).contains(&w) {
                    return None;
                }
                (i, w as u16)
            }
            None => (rest, WIDTH as u16),
        };
        let groups: Vec<&str> = index_str.split('/').collect();
        let mut index: u64 = 0;
        for (i, g) in groups.iter().enumerate() {
            let last = i == groups.len() - 1;
            let digits = if last { *g } else { g.strip_prefix('x')? };
            if digits.len() != 3 || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            index = index
                .checked_mul(1000)?
                .checked_add(digits.parse::<u64>().ok()?)?;
        }
        // Only the canonical spelling (no superfluous leading groups).
        let id = Self { kind, index, width };
        (id.path() == path).then_some(id)
    }
}

/// For a tree of `size` entries: how many full tiles level `level` has, and the width of its
/// partial tile (0 if none).
#[must_use]
pub fn level_shape(level: u8, size: u64) -> (u64, u16) {
    let shift = u32::from(HEIGHT) * u32::from(level);
    let hashes = if shift >= 64 { 0 } else { size >> shift };
    (hashes / WIDTH, (hashes % WIDTH) as u16)
}

/// The index of level `level`'s partial (rightmost, incomplete) tile in a tree of `size` entries.
#[must_use]
pub fn partial_tile_index(level: u8, size: u64) -> u64 {
    let shift = u32::from(HEIGHT) * (u32::from(level) + 1);
    if shift >= 64 { 0 } else { size >> shift }
}

/// Every tile and bundle a tree of `size` entries is served as, full ones first, level by level.
#[must_use]
pub fn tiles_for_size(size: u64) -> Vec<TileId> {
    let mut out = Vec::new();
    let (full, partial) = level_shape(0, size);
    for n in 0..full {
        out.push(TileId::entries(n, WIDTH as u16));
    }
    if partial > 0 {
        out.push(TileId::entries(full, partial));
    }
    let mut level = 0u8;
    loop {
        let (full, partial) = level_shape(level, size);
        if full == 0 && partial == 0 {
            break;
        }
        for n in 0..full {
            out.push(TileId::hashes(level, n, WIDTH as u16));
        }
        if partial > 0 {
            out.push(TileId::hashes(level, full, partial));
        }
        level += 1;
    }
    out
}

/// The partial tiles and bundle of a tree of `size` entries: what publishing a checkpoint of that
/// size writes besides full tiles.
#[must_use]
pub fn partial_tiles_for_size(size: u64) -> Vec<TileId> {
    let mut out = Vec::new();
    let (full, partial) = level_shape(0, size);
    if partial > 0 {
        out.push(TileId::entries(full, partial));
    }
    for level in 0..=u8::MAX {
        let (full, partial) = level_shape(level, size);
        if full == 0 && partial == 0 {
            break;
        }
        if partial > 0 {
            out.push(TileId::hashes(level, full, partial));
        }
    }
    out
}

/// The root of a perfect subtree over `hashes` (a power-of-two count).
#[must_use]
pub fn perfect_root(hashes: &[Hash]) -> Hash {
    debug_assert!(hashes.len().is_power_of_two());
    let mut level: Vec<Hash> = hashes.to_vec();
    while level.len() > 1 {
        level = level
            .chunks_exact(2)
            .map(|p| node_hash(&p[0], &p[1]))
            .collect();
    }
    level[0]
}

/// Why tile or bundle bytes were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TileError {
    #[error("a hash tile must be a multiple of 32 bytes long, this one has {0}")]
    BadTileLength(usize),
    #[error("an entry bundle is cut short inside entry {0}")]
    TruncatedBundle(usize),
    #[error("an entry of {0} bytes is longer than a bundle can hold")]
    EntryTooLong(usize),
}

/// The hashes in a hash tile's bytes.
pub fn decode_hashes(bytes: &[u8]) -> Result<Vec<Hash>, TileError> {
    if !bytes.len().is_multiple_of(32) {
        return Err(TileError::BadTileLength(bytes.len()));
    }
    Ok(bytes
        .chunks_exact(32)
        .filter_map(Hash::from_slice)
        .collect())
}

#[must_use]
pub fn encode_hashes(hashes: &[Hash]) -> Vec<u8> {
    let mut out = Vec::with_capacity(hashes.len() * 32);
    for h in hashes {
        out.extend_from_slice(&h.0);
    }
    out
}

/// A bundle's bytes: each entry prefixed by its big-endian `u16` length.
pub fn encode_bundle<'a>(
    entries: impl IntoIterator<Item = &'a [u8]>,
) -> Result<Vec<u8>, TileError> {
    let mut out = Vec::new();
    for e in entries {
        let len = u16::try_from(e.len()).map_err(|_| TileError::EntryTooLong(e.len()))?;
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(e);
    }
    Ok(out)
}

/// The entries in a bundle's bytes; the bytes must be consumed exactly.
pub fn decode_bundle(bytes: &[u8]) -> Result<Vec<&[u8]>, TileError> {
    let mut out = Vec::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        if rest.len() < 2 {
            return Err(TileError::TruncatedBundle(out.len()));
        }
        let len = usize::from(u16::from_be_bytes([rest[0], rest[1]]));
        if rest.len() < 2 + len {
            return Err(TileError::TruncatedBundle(out.len()));
        }
        out.push(&rest[2..2 + len]);
        rest = &rest[2 + len..];
    }
    Ok(out)
}

/// Where the hash of the complete subtree (`level`, `index`) is found: in the hash tile
/// (`tile_level`, `tile_index`), as the perfect root over `count` hashes starting at `offset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeLocation {
    pub tile_level: u8,
    pub tile_index: u64,
    pub offset: usize,
    pub count: usize,
}

/// Locates the complete subtree of height `level` at position `index` in the tiles.
#[must_use]
pub fn locate(level: u8, index: u64) -> NodeLocation {
    let tile_level = level / HEIGHT;
    let r = u32::from(level % HEIGHT);
    let first = index << r;
    NodeLocation {
        tile_level,
        tile_index: first / WIDTH,
        offset: (first % WIDTH) as usize,
        count: 1usize << r,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::leaf_hash;
    use crate::tree::{HashSource, MemoryTree};
    use proptest::prelude::*;

    #[test]
    fn paths_follow_the_spec_examples() {
        assert_eq!(
            TileId::hashes(0, 1_234_067, 256).path(),
            "tile/0/x001/x234/067"
        );
        assert_eq!(TileId::hashes(1, 5, 17).path(), "tile/1/005.p/17");
        assert_eq!(TileId::entries(0, 256).path(), "tile/entries/000");
        assert_eq!(TileId::entries(1000, 3).path(), "tile/entries/x001/000.p/3");
    }

    #[test]
    fn the_spec_example_tree_of_70000() {
        // 273 full level-0 tiles and a partial of 112; one full level-1 tile and a partial of 17;
        // a partial level-2 tile of width 1.
        assert_eq!(level_shape(0, 70_000), (273, 112));
        assert_eq!(level_shape(1, 70_000), (1, 17));
        assert_eq!(level_shape(2, 70_000), (0, 1));
        assert_eq!(level_shape(3, 70_000), (0, 0));
        let tiles = tiles_for_size(256);
        assert!(tiles.contains(&TileId::hashes(0, 0, 256)));
        assert!(tiles.contains(&TileId::hashes(1, 0, 1)));
        assert_eq!(
            partial_tiles_for_size(70_000),
            vec![
                TileId::entries(273, 112),
                TileId::hashes(0, 273, 112),
                TileId::hashes(1, 1, 17),
                TileId::hashes(2, 0, 1),
            ]
        );
        for size in [0, 1, 255, 256, 257, 65_536, 65_537, 70_000, 16_777_216] {
            let partial: Vec<TileId> = tiles_for_size(size)
                .into_iter()
                .filter(TileId::is_partial)
                .collect();
            let mut mine = partial_tiles_for_size(size);
            mine.sort_by_key(TileId::path);
            let mut theirs = partial;
            theirs.sort_by_key(TileId::path);
            assert_eq!(mine, theirs, "size {size}");
        }
    }

    #[test]
    fn only_canonical_paths_parse() {
        for ok in [
            "tile/0/000",
            "tile/63/x001/x234/067.p/255",
            "tile/entries/123.p/1",
        ] {
            assert_eq!(TileId::parse(ok).unwrap().path(), ok);
        }
        for bad in [
            "tile/00/000",
            "tile/64/000",
            "tile/0/0",
            "tile/0/x000/001",
            "tile/0/001.p/0",
            "tile/0/001.p/256",
            "tile/0/001.p/07",
            "tile/0/../000",
            "tile/0/x01/000",
            "tile/data/000",
            "tile/0/000/",
            "/tile/0/000",
        ] {
            assert!(TileId::parse(bad).is_none(), "{bad}");
        }
    }

    proptest! {
        #[test]
        fn paths_round_trip(level in 0u8..64, index in any::<u64>(), width in 1u16..=256) {
            let t = TileId::hashes(level, index, width);
            prop_assert_eq!(TileId::parse(&t.path()), Some(t));
            let e = TileId::entries(index, width);
            prop_assert_eq!(TileId::parse(&e.path()), Some(e));
        }

        #[test]
        fn bundles_round_trip(entries in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 0..20)) {
            let bytes = encode_bundle(entries.iter().map(Vec::as_slice)).unwrap();
            let back: Vec<Vec<u8>> = decode_bundle(&bytes).unwrap().into_iter().map(<[u8]>::to_vec).collect();
            prop_assert_eq!(back, entries);
            if !bytes.is_empty() {
                prop_assert!(decode_bundle(&bytes[..bytes.len() - 1]).is_err());
            }
        }
    }

    /// Any complete subtree hash can be read out of the tiles at its located position.
    #[test]
    fn locate_agrees_with_the_tree() {
        let mut t = MemoryTree::new();
        for i in 0u32..70_000 {
            t.push(leaf_hash(&i.to_be_bytes()));
        }
        // The tree-level-8L hashes, as tiles would store them.
        let level_hashes = |l: u8| -> Vec<Hash> {
            let shift = u32::from(HEIGHT) * u32::from(l);
            (0..(70_000u64 >> shift))
                .map(|i| t.node(l * HEIGHT, i).unwrap())
                .collect()
        };
        let tiles: Vec<Vec<Hash>> = (0..3).map(level_hashes).collect();
        for (level, index) in [
            (0u8, 69_999u64),
            (3, 1000),
            (7, 270),
            (8, 272),
            (9, 100),
            (16, 0),
            (12, 16),
        ] {
            let loc = locate(level, index);
            let base = (loc.tile_index * WIDTH) as usize + loc.offset;
            let hashes = &tiles[usize::from(loc.tile_level)][base..base + loc.count];
            assert_eq!(
                perfect_root(hashes),
                t.node(level, index).unwrap(),
                "({level}, {index})"
            );
        }
    }
}
