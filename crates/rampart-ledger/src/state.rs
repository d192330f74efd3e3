//! The part of the tree a writer keeps in memory: the partial (rightmost) tile of every level and
//! the entries of the partial bundle. Everything to their left is in full tiles on disk.

use std::sync::Arc;

use crate::hash::Hash;
use crate::tile::{HEIGHT, TileId, WIDTH, perfect_root};

/// Tiles and a bundle completed by an append, to be written out.
#[derive(Debug, Clone)]
pub struct Completion {
    pub bundle: u64,
    pub entries: Vec<Arc<[u8]>>,
    /// Full hash tiles, lowest level first.
    pub tiles: Vec<(TileId, Vec<Hash>)>,
}

#[derive(Debug, Clone, Default)]
pub struct TreeState {
    pub size: u64,
    /// `partials[L]`: the hashes of tree level `8L` in level `L`'s partial tile.
    pub partials: Vec<Vec<Hash>>,
    /// The entries of the partial bundle.
    pub bundle: Vec<Arc<[u8]>>,
}

impl TreeState {
    /// Appends one entry; returns what became full.
    pub fn push(&mut self, entry: Arc<[u8]>, leaf: Hash) -> Option<Completion> {
        let index = self.size;
        self.size += 1;
        self.bundle.push(entry);
        let mut tiles = Vec::new();
        let mut h = leaf;
        let mut level = 0usize;
        loop {
            if self.partials.len() <= level {
                self.partials.push(Vec::new());
            }
            self.partials[level].push(h);
            if (self.partials[level].len() as u64) < WIDTH {
                break;
            }
            let hashes = std::mem::take(&mut self.partials[level]);
            let shift = u32::from(HEIGHT) * (level as u32 + 1);
            let tile_index = (self.size >> shift) - 1;
            h = perfect_root(&hashes);
            tiles.push((
                TileId::hashes(level as u8, tile_index, WIDTH as u16),
                hashes,
            ));
            level += 1;
        }
        (self.bundle.len() as u64 == WIDTH).then(|| Completion {
            bundle: index / WIDTH,
            entries: std::mem::take(&mut self.bundle),
            tiles,
        })
    }
}
