//! Merkle tree math (RFC 6962 §2.1, verification per RFC 9162 §2.1.3–2.1.4), sans I/O.
//!
//! Proof generation needs the hashes of complete subtrees; it reads them through [`HashSource`],
//! which the log implements over its tiles and tests implement over [`MemoryTree`]. Verification
//! needs nothing but its arguments.

use crate::hash::{EMPTY_ROOT, Hash, node_hash};

/// Why a tree operation could not run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TreeError {
    #[error("entry {index} is not in a tree of size {size}")]
    IndexOutOfRange { index: u64, size: u64 },
    #[error("tree size {first} is larger than tree size {second}")]
    SizesOutOfOrder { first: u64, second: u64 },
    #[error("a stored hash is unavailable: {0}")]
    Unavailable(String),
}

/// Why a proof did not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    #[error("entry {index} is not in a tree of size {size}")]
    IndexOutOfRange { index: u64, size: u64 },
    #[error("tree size {first} is larger than tree size {second}")]
    SizesOutOfOrder { first: u64, second: u64 },
    #[error("the proof has the wrong length")]
    WrongLength,
    #[error("the proof does not lead to the expected root")]
    RootMismatch,
}

/// Where proof generation reads the hashes of complete subtrees.
pub trait HashSource {
    /// The root of the complete subtree of height `level` whose leftmost leaf is
    /// `index << level` (level 0: the leaf hash itself).
    fn node(&self, level: u8, index: u64) -> Result<Hash, TreeError>;
}

/// The largest power of two strictly less than `n` (n ≥ 2).
fn split_point(n: u64) -> u64 {
    debug_assert!(n >= 2);
    1u64 << (63 - (n - 1).leading_zeros())
}

/// MTH of the leaves `[start, end)`, where the range is one that the RFC 6962 recursion visits:
/// `start` is aligned to the largest power of two not above `end - start`.
fn subtree_hash(src: &dyn HashSource, start: u64, end: u64) -> Result<Hash, TreeError> {
    let n = end - start;
    if n.is_power_of_two() {
        let level = n.trailing_zeros();
        // INVARIANT: ranges visited by the recursion start on a multiple of their size.
        debug_assert_eq!(start % n, 0);
        return src.node(level as u8, start >> level);
    }
    let k = split_point(n);
    Ok(node_hash(
        &subtree_hash(src, start, start + k)?,
        &subtree_hash(src, start + k, end)?,
    ))
}

/// The root of the tree of the first `size` leaves.
pub fn root(src: &dyn HashSource, size: u64) -> Result<Hash, TreeError> {
    if size == 0 {
        return Ok(EMPTY_ROOT);
    }
    subtree_hash(src, 0, size)
}

/// The audit path (RFC 6962 §2.1.1) of leaf `index` in the tree of size `size`.
pub fn inclusion_proof(
    src: &dyn HashSource,
    index: u64,
    size: u64,
) -> Result<Vec<Hash>, TreeError> {
    if index >= size {
        return Err(TreeError::IndexOutOfRange { index, size });
    }
    let mut out = Vec::new();
    path(src, index, 0, size, &mut out)?;
    Ok(out)
}

fn path(
    src: &dyn HashSource,
    m: u64,
    start: u64,
    end: u64,
    out: &mut Vec<Hash>,
) -> Result<(), TreeError> {
    let n = end - start;
    if n == 1 {
        return Ok(());
    }
    let k = split_point(n);
    if m < start + k {
        path(src, m, start, start + k, out)?;
        out.push(subtree_hash(src, start + k, end)?);
    } else {
        path(src, m, start + k, end, out)?;
        out.push(subtree_hash(src, start, start + k)?);
    }
    Ok(())
}

/// The consistency proof (RFC 6962 §2.1.2) between the trees of sizes `first` and `second`.
pub fn consistency_proof(
    src: &dyn HashSource,
    first: u64,
    second: u64,
) -> Result<Vec<Hash>, TreeError> {
    if first > second {
        return Err(TreeError::SizesOutOfOrder { first, second });
    }
    let mut out = Vec::new();
    if first == 0 || first == second {
        return Ok(out);
    }
    subproof(src, first, 0, second, true, &mut out)?;
    Ok(out)
}

fn subproof(
    src: &dyn HashSource,
    m: u64,
    start: u64,
    end: u64,
    whole: bool,
    out: &mut Vec<Hash>,
) -> Result<(), TreeError> {
    let n = end - start;
    if m == n {
        if !whole {
            out.push(subtree_hash(src, start, end)?);
        }
        return Ok(());
    }
    let k = split_point(n);
    if m <= k {
        subproof(src, m, start, start + k, whole, out)?;
        out.push(subtree_hash(src, start + k, end)?);
    } else {
        subproof(src, m - k, start + k, end, false, out)?;
        out.push(subtree_hash(src, start, start + k)?);
    }
    Ok(())
}

/// Verifies that `leaf` is entry `index` of the tree of size `size` with root `root`
/// (RFC 9162 §2.1.3.2).
pub fn verify_inclusion(
    index: u64,
    size: u64,
    leaf: &Hash,
    proof: &[Hash],
    root: &Hash,
) -> Result<(), ProofError> {
    if index >= size {
        return Err(ProofError::IndexOutOfRange { index, size });
    }
    let mut f_n = index;
    let mut s_n = size - 1;
    let mut r = *leaf;
    for p in proof {
        if s_n == 0 {
            return Err(ProofError::WrongLength);
        }
        if f_n & 1 == 1 || f_n == s_n {
            r = node_hash(p, &r);
            if f_n & 1 == 0 {
                while f_n & 1 == 0 && f_n != 0 {
                    f_n >>= 1;
                    s_n >>= 1;
                }
            }
        } else {
            r = node_hash(&r, p);
        }
        f_n >>= 1;
        s_n >>= 1;
    }
    if s_n != 0 {
        return Err(ProofError::WrongLength);
    }
    if r != *root {
        return Err(ProofError::RootMismatch);
    }
    Ok(())
}

/// Verifies that the tree of size `first` with root `first_root` is a prefix of the tree of size
/// `second` with root `second_root` (RFC 9162 §2.1.4.2).
pub fn verify_consistency(
    first: u64,
    second: u64,
    first_root: &Hash,
    second_root: &Hash,
    proof: &[Hash],
) -> Result<(), ProofError> {
    if first > second {
        return Err(ProofError::SizesOutOfOrder { first, second });
    }
    if first == second {
        if !proof.is_empty() {
            return Err(ProofError::WrongLength);
        }
        return if first_root == second_root {
            Ok(())
        } else {
            Err(ProofError::RootMismatch)
        };
    }
    if first == 0 {
        // Every tree extends the empty one.
        return if proof.is_empty() && *first_root == EMPTY_ROOT {
            Ok(())
        } else {
            Err(ProofError::WrongLength)
        };
    }
    if proof.is_empty() {
        return Err(ProofError::WrongLength);
    }
    let mut path: Vec<Hash> = Vec::with_capacity(proof.len() + 1);
    if first.is_power_of_two() {
        path.push(*first_root);
    }
    path.extend_from_slice(proof);
    let mut f_n = first - 1;
    let mut s_n = second - 1;
    while f_n & 1 == 1 {
        f_n >>= 1;
        s_n >>= 1;
    }
    let mut fr = path[0];
    let mut sr = path[0];
    for c in &path[1..] {
        if s_n == 0 {
            return Err(ProofError::WrongLength);
        }
        if f_n & 1 == 1 || f_n == s_n {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            if f_n & 1 == 0 {
                while f_n & 1 == 0 && f_n != 0 {
                    f_n >>= 1;
                    s_n >>= 1;
                }
            }
        } else {
            sr = node_hash(&sr, c);
        }
        f_n >>= 1;
        s_n >>= 1;
    }
    if s_n != 0 {
        return Err(ProofError::WrongLength);
    }
    if fr != *first_root || sr != *second_root {
        return Err(ProofError::RootMismatch);
    }
    Ok(())
}

/// A whole tree in memory: every complete subtree hash, level by level (2n hashes for n leaves).
/// For tests, tools and small logs.
#[derive(Debug, Clone, Default)]
pub struct MemoryTree {
    /// `levels[k][i]` is the root of the complete subtree of height k at position i.
    levels: Vec<Vec<Hash>>,
}

impl MemoryTree {
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends a leaf hash.
    pub fn push(&mut self, leaf: Hash) {
        if self.levels.is_empty() {
            self.levels.push(Vec::new());
        }
        self.levels[0].push(leaf);
        let mut k = 0;
        while self.levels[k].len().is_multiple_of(2) {
            let n = self.levels[k].len();
            let parent = node_hash(&self.levels[k][n - 2], &self.levels[k][n - 1]);
            if self.levels.len() == k + 1 {
                self.levels.push(Vec::new());
            }
            self.levels[k + 1].push(parent);
            k += 1;
        }
    }

    #[must_use]
    pub fn size(&self) -> u64 {
        self.levels.first().map_or(0, |l| l.len() as u64)
    }

    /// The root of the first `size` leaves.
    pub fn root_at(&self, size: u64) -> Result<Hash, TreeError> {
        root(self, size)
    }
}

impl HashSource for MemoryTree {
    fn node(&self, level: u8, index: u64) -> Result<Hash, TreeError> {
        self.levels
            .get(usize::from(level))
            .and_then(|l| l.get(usize::try_from(index).ok()?))
            .copied()
            .ok_or_else(|| TreeError::Unavailable(format!("level {level} index {index}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::leaf_hash;
    use proptest::prelude::*;

    fn h(s: &str) -> Hash {
        Hash::from_hex(s).unwrap()
    }

    fn unhex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    /// The eight reference leaves of the Certificate Transparency RFC 6962 test data.
    fn reference_tree() -> MemoryTree {
        let mut t = MemoryTree::new();
        for leaf in [
            "",
            "00",
            "10",
            "2021",
            "3031",
            "40414243",
            "5051525354555657",
            "606162636465666768696a6b6c6d6e6f",
        ] {
            t.push(leaf_hash(&unhex(leaf)));
        }
        t
    }

    const ROOTS: [&str; 9] = [
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    ];

    #[test]
    fn reference_roots_for_every_size() {
        let t = reference_tree();
        for (size, expected) in ROOTS.iter().enumerate() {
            assert_eq!(t.root_at(size as u64).unwrap(), h(expected), "size {size}");
        }
    }

    #[test]
    fn reference_inclusion_proofs() {
        let t = reference_tree();
        let cases: [(u64, u64, &[&str]); 4] = [
            (
                0,
                8,
                &[
                    "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                    "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                    "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
                ],
            ),
            (
                5,
                8,
                &[
                    "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
                    "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
                ],
            ),
            (
                2,
                3,
                &["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"],
            ),
            (
                1,
                5,
                &[
                    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
                    "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                    "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
                ],
            ),
        ];
        for (index, size, expected) in cases {
            let proof = inclusion_proof(&t, index, size).unwrap();
            let expected: Vec<Hash> = expected.iter().map(|s| h(s)).collect();
            assert_eq!(proof, expected, "leaf {index} of {size}");
            let leaf = t.node(0, index).unwrap();
            verify_inclusion(index, size, &leaf, &proof, &h(ROOTS[size as usize])).unwrap();
        }
    }

    #[test]
    fn reference_consistency_proofs() {
        let t = reference_tree();
        let cases: [(u64, u64, &[&str]); 4] = [
            (1, 1, &[]),
            (
                1,
                8,
                &[
                    "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                    "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                    "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
                ],
            ),
            (
                6,
                8,
                &[
                    "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
                    "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
                ],
            ),
            (
                2,
                5,
                &[
                    "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                    "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
                ],
            ),
        ];
        for (first, second, expected) in cases {
            let proof = consistency_proof(&t, first, second).unwrap();
            let expected: Vec<Hash> = expected.iter().map(|s| h(s)).collect();
            assert_eq!(proof, expected, "{first} -> {second}");
            verify_consistency(
                first,
                second,
                &h(ROOTS[first as usize]),
                &h(ROOTS[second as usize]),
                &proof,
            )
            .unwrap();
        }
    }

    fn tree_of(n: u64, salt: u8) -> MemoryTree {
        let mut t = MemoryTree::new();
        for i in 0..n {
            t.push(leaf_hash(&[salt, (i & 0xff) as u8, (i >> 8) as u8]));
        }
        t
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]

        /// Any inclusion proof for any size verifies, and any altered proof fails.
        #[test]
        fn inclusion_proofs_verify_and_alterations_fail(
            size in 1u64..600, index_seed in any::<u64>(), flip in any::<(usize, u8, u8)>()
        ) {
            let t = tree_of(size, 1);
            let index = index_seed % size;
            let root = t.root_at(size).unwrap();
            let leaf = t.node(0, index).unwrap();
            let proof = inclusion_proof(&t, index, size).unwrap();
            prop_assert!(verify_inclusion(index, size, &leaf, &proof, &root).is_ok());
            // A wrong leaf, index, size or root fails.
            let other = leaf_hash(b"not in the tree");
            prop_assert!(verify_inclusion(index, size, &other, &proof, &root).is_err());
            if size > 1 {
                let wrong_index = (index + 1) % size;
                prop_assert!(verify_inclusion(wrong_index, size, &leaf, &proof, &root).is_err());
            }
            // Against the real root of a larger tree, the proof of the smaller one fails.
            let bigger = tree_of(size + 1, 1);
            prop_assert!(verify_inclusion(index, size + 1, &leaf, &proof, &bigger.root_at(size + 1).unwrap()).is_err());
            // A flipped bit in any proof element fails.
            if !proof.is_empty() {
                let mut bad = proof.clone();
                let (i, byte, bit) = flip;
                let i = i % bad.len();
                bad[i].0[usize::from(byte) % 32] ^= 1 << (bit % 8);
                prop_assert!(verify_inclusion(index, size, &leaf, &bad, &root).is_err());
                // A shortened or lengthened proof fails.
                prop_assert!(verify_inclusion(index, size, &leaf, &proof[..proof.len() - 1], &root).is_err());
            }
            let mut longer = proof.clone();
            longer.push(root);
            prop_assert!(verify_inclusion(index, size, &leaf, &longer, &root).is_err());
        }

        /// Any consistency proof between any two sizes verifies, and any altered proof fails.
        #[test]
        fn consistency_proofs_verify_and_alterations_fail(
            second in 1u64..600, first_seed in any::<u64>(), flip in any::<(usize, u8, u8)>()
        ) {
            let t = tree_of(second, 2);
            let first = 1 + first_seed % second;
            let r1 = t.root_at(first).unwrap();
            let r2 = t.root_at(second).unwrap();
            let proof = consistency_proof(&t, first, second).unwrap();
            prop_assert!(verify_consistency(first, second, &r1, &r2, &proof).is_ok());
            // A different history (another tree with the same sizes) fails.
            let forged = tree_of(second, 3);
            let f2 = forged.root_at(second).unwrap();
            prop_assert!(verify_consistency(first, second, &r1, &f2, &proof).is_err());
            if first < second {
                let mut bad = proof.clone();
                let (i, byte, bit) = flip;
                let i = i % bad.len();
                bad[i].0[usize::from(byte) % 32] ^= 1 << (bit % 8);
                prop_assert!(verify_consistency(first, second, &r1, &r2, &bad).is_err());
                prop_assert!(verify_consistency(first, second, &r1, &r2, &proof[..proof.len() - 1]).is_err());
                let bigger = tree_of(second + 1, 2);
                prop_assert!(verify_consistency(first, second + 1, &r1, &bigger.root_at(second + 1).unwrap(), &proof).is_err());
            }
        }
    }

    #[test]
    fn edge_cases() {
        let t = tree_of(5, 4);
        assert_eq!(
            inclusion_proof(&t, 5, 5).unwrap_err(),
            TreeError::IndexOutOfRange { index: 5, size: 5 }
        );
        assert!(consistency_proof(&t, 4, 3).is_err());
        assert_eq!(consistency_proof(&t, 0, 5).unwrap(), vec![]);
        verify_consistency(0, 5, &EMPTY_ROOT, &t.root_at(5).unwrap(), &[]).unwrap();
        assert!(verify_inclusion(0, 0, &EMPTY_ROOT, &[], &EMPTY_ROOT).is_err());
        // A one-leaf tree: the root is the leaf, the proof is empty.
        let one = tree_of(1, 5);
        let leaf = one.node(0, 0).unwrap();
        verify_inclusion(0, 1, &leaf, &[], &leaf).unwrap();
    }
}
