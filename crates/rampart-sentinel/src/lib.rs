//! The Sentinel: finds personal data, secrets and prompt-injection markers in text and applies a
//! tenant's policy to them, before the text leaves Rampart.
//!
//! It is sans-I/O: everything here is a pure function of its inputs. Sealing reversible tokens
//! is delegated to a [`transform::TokenVault`] the caller implements (the server keeps them in
//! the tenant's vault); the crate itself never touches a network, a disk or a clock.
//!
//! - [`Detector`] finds [`Finding`]s: a [`Class`], a byte span and a calibrated score.
//! - [`policy::Policy`] says what to do per class × channel: `strict`, `reversible` or `flag`.
//! - [`transform`] applies it: keyed tokens, vault-sealed tokens, or tags.
//! - [`scrub::SecretScrubber`] removes live secret values (and their encodings) by fingerprint.
//! - [`injection`] scores tool output for prompt-injection markers and finds leaked canaries.
//! - [`stream`] does all of this over text that arrives in chunks, with the same result as if it
//!   had arrived whole.
//!
//! What it does not do: understand language. Names and addresses are found from lists, shapes
//! and context words, and the scores say how often each rule was right on our corpus.

mod class;
mod detect;
pub mod eval;
pub mod injection;
mod lexicon;
pub mod policy;
mod rule;
pub mod scrub;
pub mod stream;
pub mod transform;
pub mod validate;

pub use class::{Channel, Class, UnknownName};
pub use detect::{BuildError, CONTEXT_RADIUS, Detector, Finding};
pub use rule::Rule;

/// Byte offsets of one text converted to Unicode code-point offsets, for output that counts
/// characters (the CLI and the API report code points). Built once per text from the offsets
/// that will be asked for, in one pass.
#[derive(Debug)]
pub struct CodePoints {
    bytes: Vec<usize>,
    chars: Vec<usize>,
}

impl CodePoints {
    pub fn new(text: &str, offsets: impl IntoIterator<Item = usize>) -> Self {
        let mut bytes: Vec<usize> = offsets.into_iter().map(|o| o.min(text.len())).collect();
        bytes.sort_unstable();
        bytes.dedup();
        let mut chars = Vec::with_capacity(bytes.len());
        let (mut count, mut pos) = (0, 0);
        for &o in &bytes {
            count += text[pos..o].chars().count();
            pos = o;
            chars.push(count);
        }
        CodePoints { bytes, chars }
    }

    /// The code-point offset of byte offset `byte` (one of those given to [`CodePoints::new`]).
    pub fn of(&self, byte: usize) -> usize {
        self.bytes.binary_search(&byte).map_or(0, |i| self.chars[i])
    }
}

pub(crate) const LOWER_HEX: &[u8; 16] = b"0123456789abcdef";
pub(crate) const UPPER_HEX: &[u8; 16] = b"0123456789ABCDEF";

/// `bytes` as hex digits from `digits`.
pub(crate) fn hex(bytes: &[u8], digits: &[u8; 16]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(digits[usize::from(b >> 4)]));
        out.push(char::from(digits[usize::from(b & 15)]));
    }
    out
}
