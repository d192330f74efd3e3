//! Streaming: redaction and restoring over text that arrives in chunks (SSE token streams,
//! tool-call argument deltas), with exactly the result the whole text would have had.
//!
//! The redactor holds back the last [`HOLD`] bytes of what it has seen and only releases text
//! up to a whitespace boundary that no finding crosses. Every detection decision depends on at
//! most [`crate::CONTEXT_RADIUS`] bytes around a span, and the released prefix keeps
//! [`LEFT_CONTEXT`] bytes of left context, so a value split across any chunk boundaries is seen
//! whole. A value longer than the hold-back (a private key block, a long token with no spaces)
//! holds the stream until it ends or until [`MAX_HOLD`] bytes are pending.

use crate::policy::CompiledPolicy;
use crate::scrub::SecretScrubber;
use crate::transform::{Applied, MAX_TOKEN_LEN, Redaction, TokenVault, Tokenizer, redact};
use crate::{Channel, Detector, Finding};

/// Bytes held back at the end of the stream, beyond which no finding can start a decision.
pub const HOLD: usize = 320;
/// Bytes of already released text kept as context for the next decision.
pub const LEFT_CONTEXT: usize = 320;
/// The most a stream holds when it sees no safe boundary.
pub const MAX_HOLD: usize = 64 * 1024;
/// How much new text a stream waits for before it scans its buffer again.
const RESCAN_STEP: usize = 64;

/// Redacts a stream. Feed chunks with [`StreamRedactor::push`]; call [`StreamRedactor::finish`]
/// at the end. What comes out, concatenated, equals redacting the whole text at once.
pub struct StreamRedactor<'a> {
    detector: &'a Detector,
    policy: &'a CompiledPolicy,
    channel: Channel,
    tokenizer: &'a Tokenizer,
    scrubber: Option<&'a SecretScrubber>,
    left: String,
    pending: String,
    /// Bytes released so far (of the original text).
    released: usize,
    /// The pending length at which the next release is tried.
    retry_at: usize,
    applied: Vec<Applied>,
}

impl std::fmt::Debug for StreamRedactor<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamRedactor")
            .field("pending", &self.pending.len())
            .field("released", &self.released)
            .finish()
    }
}

impl<'a> StreamRedactor<'a> {
    pub fn new(
        detector: &'a Detector,
        policy: &'a CompiledPolicy,
        channel: Channel,
        tokenizer: &'a Tokenizer,
        scrubber: Option<&'a SecretScrubber>,
    ) -> Self {
        StreamRedactor {
            detector,
            policy,
            channel,
            tokenizer,
            scrubber,
            left: String::new(),
            pending: String::new(),
            released: 0,
            retry_at: 0,
            applied: Vec::new(),
        }
    }

    /// What was done so far, with offsets into the whole stream.
    pub fn applied(&self) -> &[Applied] {
        &self.applied
    }

    pub fn push<V: TokenVault>(&mut self, chunk: &str, vault: &mut V) -> Result<String, V::Error> {
        self.pending.push_str(chunk);
        let hold = HOLD.max(self.scrubber.map_or(0, SecretScrubber::longest) + 1);
        if self.pending.len() <= hold || self.pending.len() < self.retry_at {
            return Ok(String::new());
        }
        let out = self.release(false, hold, vault)?;
        // Each try scans the whole buffer. Token-sized chunks would make that quadratic, worst in
        // a long run with no safe boundary: wait for a step of new text, and for the buffer to
        // grow by half when nothing could be released.
        let step = if out.is_empty() {
            self.pending.len() / 2
        } else {
            0
        };
        self.retry_at = self.pending.len() + step.max(RESCAN_STEP);
        Ok(out)
    }

    pub fn finish<V: TokenVault>(
        mut self,
        vault: &mut V,
    ) -> Result<(String, Vec<Applied>), V::Error> {
        let out = self.release(true, 0, vault)?;
        Ok((out, self.applied))
    }

    fn release<V: TokenVault>(
        &mut self,
        all: bool,
        hold: usize,
        vault: &mut V,
    ) -> Result<String, V::Error> {
        let buf = format!("{}{}", self.left, self.pending);
        let base = self.left.len();
        let findings = self.detector.scan_with(&buf, self.scrubber);
        let cut = if all {
            self.pending.len()
        } else {
            match safe_cut(&self.pending, base, &findings, hold) {
                Some(c) => c,
                None => return Ok(String::new()),
            }
        };
        if cut == 0 {
            return Ok(String::new());
        }
        let segment: Vec<Finding> = findings
            .iter()
            .filter(|f| f.start >= base && f.end <= base + cut)
            .map(|f| Finding {
                start: f.start - base,
                end: f.end - base,
                ..*f
            })
            .collect();
        let Redaction { text, applied } = redact(
            &self.pending[..cut],
            &segment,
            self.policy,
            self.channel,
            self.tokenizer,
            vault,
        )?;
        let offset = self.released;
        self.applied.extend(applied.into_iter().map(|a| Applied {
            start: a.start + offset,
            end: a.end + offset,
            ..a
        }));
        self.released += cut;
        let mut left = std::mem::take(&mut self.left);
        left.push_str(&self.pending[..cut]);
        let mut keep_from = left.len().saturating_sub(LEFT_CONTEXT);
        while !left.is_char_boundary(keep_from) {
            keep_from += 1;
        }
        self.left = left[keep_from..].to_owned();
        self.pending.drain(..cut);
        Ok(text)
    }
}

/// The largest prefix of `pending` that may be released: it ends at least `hold` bytes before
/// the end, right after whitespace, outside every finding, and before any private key block
/// that has not ended yet.
fn safe_cut(pending: &str, base: usize, findings: &[Finding], hold: usize) -> Option<usize> {
    let mut limit = pending.len().saturating_sub(hold);
    if let Some(begin) = pending.find("-----BEGIN ") {
        let rest = &pending[begin..];
        if !rest.contains("-----END ") && pending.len() < MAX_HOLD {
            limit = limit.min(begin);
        }
    }
    let crosses = |c: usize| {
        findings
            .iter()
            .any(|f| f.start < base + c && base + c < f.end)
    };
    let bytes = pending.as_bytes();
    let mut c = limit;
    while c > 0 {
        if pending.is_char_boundary(c) && bytes[c - 1].is_ascii_whitespace() && !crosses(c) {
            return Some(c);
        }
        c -= 1;
    }
    if pending.len() >= MAX_HOLD {
        // No safe boundary in a very long run: release up to the limit, outside findings.
        let mut c = limit;
        while c > 0 && (!pending.is_char_boundary(c) || crosses(c)) {
            c -= 1;
        }
        return (c > 0).then_some(c);
    }
    None
}

/// Restores reversible tokens in a stream, holding back only what could be the start of a
/// token that has not fully arrived.
#[derive(Debug, Default)]
pub struct StreamRestorer {
    pending: String,
}

impl StreamRestorer {
    pub fn push(&mut self, chunk: &str, lookup: impl FnMut(&str) -> Option<String>) -> String {
        self.pending.push_str(chunk);
        // Hold from the last '[' that is close enough to the end to still become a token.
        let window_start = self.pending.len().saturating_sub(MAX_TOKEN_LEN - 1);
        let hold_from = self.pending[..]
            .char_indices()
            .rev()
            .take_while(|(i, _)| *i >= window_start)
            .filter(|(_, c)| *c == '[')
            .map(|(i, _)| i)
            .find(|&i| !self.pending[i..].contains(']'))
            .unwrap_or(self.pending.len());
        let ready: String = self.pending.drain(..hold_from).collect();
        crate::transform::restore(&ready, lookup)
    }

    pub fn finish(self, lookup: impl FnMut(&str) -> Option<String>) -> String {
        crate::transform::restore(&self.pending, lookup)
    }
}
