//! The envelope every bus message travels in, and the checks a consumer makes. No I/O.
//!
//! Wire layout (big-endian):
//!
//! ```text
//! "RBE1" | flags u8 (bit 0: payload encrypted) | key id u32 | timestamp ms i64 | sequence u64
//!        | id [16] | producer length u8 | producer | payload length u32 | payload | HMAC [32]
//! ```
//!
//! The HMAC-SHA256 is over the topic's name (length-prefixed) and every byte before it, under the
//! topic key named by the key id: a message moved to another topic, or changed anywhere, fails.
//! An encrypted payload is AES-256-GCM under a key derived from the same topic key, with the
//! header as associated data.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use rampart_crypto::{AeadKey, DerivedKey, HmacKey, MAC_LEN, Secret, random_array};
use rampart_types::Timestamp;

const MAGIC: &[u8; 4] = b"RBE1";
const FLAG_ENCRYPTED: u8 = 1;
/// magic, flags, key id, timestamp, sequence, id, producer length.
const FIXED_HEADER: usize = 4 + 1 + 4 + 8 + 8 + 16 + 1;
const MAC_LABEL: &str = "rampart/bus/topic-mac/v1";
const ENC_LABEL: &str = "rampart/bus/topic-enc/v1";
/// Largest payload an envelope carries (NATS's default message limit is 1 MiB).
pub const MAX_PAYLOAD: usize = 1024 * 1024 - 256;

/// Why a message was dropped. Each has its own counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, thiserror::Error)]
pub enum DropReason {
    #[error("not an envelope (unsigned or truncated)")]
    Malformed,
    #[error("signed under a key this topic does not accept")]
    UnknownKey,
    #[error("signature does not match")]
    BadSignature,
    #[error("older than the freshness window")]
    Stale,
    #[error("timestamp too far in the future")]
    FromTheFuture,
    #[error("message id already seen")]
    DuplicateId,
    #[error("producer sequence number already seen or too old")]
    ReplayedSequence,
    #[error("encrypted payload does not decrypt")]
    Undecryptable,
}

impl DropReason {
    pub const ALL: [DropReason; 8] = [
        Self::Malformed,
        Self::UnknownKey,
        Self::BadSignature,
        Self::Stale,
        Self::FromTheFuture,
        Self::DuplicateId,
        Self::ReplayedSequence,
        Self::Undecryptable,
    ];

    /// The label used in metrics.
    #[must_use]
    pub fn label(self) -> &'static str {
        match self {
            Self::Malformed => "malformed",
            Self::UnknownKey => "unknown_key",
            Self::BadSignature => "bad_signature",
            Self::Stale => "stale",
            Self::FromTheFuture => "future",
            Self::DuplicateId => "duplicate_id",
            Self::ReplayedSequence => "replayed_sequence",
            Self::Undecryptable => "undecryptable",
        }
    }
}

/// Errors of producing a message.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error("no key for topic `{0}`")]
    NoKey(String),
    #[error("payload of {0} bytes is over the limit of {MAX_PAYLOAD}")]
    TooLarge(usize),
    #[error("producer id must be 1 to 255 bytes")]
    ProducerId,
    #[error("crypto: {0}")]
    Crypto(String),
}

/// One topic key version: its MAC key, its payload key, and until when it is accepted.
struct TopicKey {
    mac: HmacKey,
    enc: AeadKey,
    accept_until: Option<Timestamp>,
}

/// The keys of one topic: the current one signs, every unexpired one verifies.
#[derive(Default)]
pub struct Keyring {
    keys: BTreeMap<u32, TopicKey>,
    current: Option<u32>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keyring")
            .field("key_ids", &self.keys.keys().collect::<Vec<_>>())
            .field("current", &self.current)
            .finish()
    }
}

impl Keyring {
    /// Adds key `id` made from 32 bytes of secret material and makes it the signing key.
    pub fn rotate_to(&mut self, id: u32, material: &Secret<[u8; 32]>) -> Result<(), SealError> {
        let crypto = |e: rampart_crypto::CryptoError| SealError::Crypto(e.to_string());
        let mac = DerivedKey::from_secret_material(material.expose(), MAC_LABEL)
            .and_then(DerivedKey::into_hmac)
            .map_err(crypto)?;
        let enc = DerivedKey::from_secret_material(material.expose(), ENC_LABEL)
            .and_then(DerivedKey::into_aead)
            .map_err(crypto)?;
        self.keys.insert(
            id,
            TopicKey {
                mac,
                enc,
                accept_until: None,
            },
        );
        self.current = Some(id);
        Ok(())
    }

    /// Keeps accepting key `id` only until `until` (the overlap after a rotation).
    pub fn retire(&mut self, id: u32, until: Timestamp) {
        if let Some(k) = self.keys.get_mut(&id) {
            k.accept_until = Some(until);
        }
    }

    #[must_use]
    pub fn current(&self) -> Option<u32> {
        self.current
    }

    fn accepting(&self, id: u32, now: Timestamp) -> Option<&TopicKey> {
        self.keys
            .get(&id)
            .filter(|k| k.accept_until.is_none_or(|t| now <= t))
    }
}

/// Keyrings by topic. A holder of one topic's keys can neither read nor write another topic.
#[derive(Debug, Default)]
pub struct TopicKeys {
    topics: HashMap<String, Keyring>,
}

impl TopicKeys {
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    pub fn keyring_mut(&mut self, topic: &str) -> &mut Keyring {
        self.topics.entry(topic.to_owned()).or_default()
    }

    #[must_use]
    pub fn keyring(&self, topic: &str) -> Option<&Keyring> {
        self.topics.get(topic)
    }
}

fn mac_input<'a>(topic: &'a str, len: &'a [u8; 2], signed: &'a [u8]) -> [&'a [u8]; 3] {
    [len, topic.as_bytes(), signed]
}

fn topic_len(topic: &str) -> [u8; 2] {
    u16::try_from(topic.len()).unwrap_or(u16::MAX).to_be_bytes()
}

/// Seals `payload` for `topic`. `sequence` must grow by one per message of this producer.
pub fn seal(
    keys: &TopicKeys,
    topic: &str,
    producer: &str,
    sequence: u64,
    now: Timestamp,
    payload: &[u8],
    encrypt: bool,
) -> Result<Vec<u8>, SealError> {
    let ring = keys
        .keyring(topic)
        .ok_or_else(|| SealError::NoKey(topic.to_owned()))?;
    let key_id = ring
        .current()
        .ok_or_else(|| SealError::NoKey(topic.to_owned()))?;
    let key = ring
        .keys
        .get(&key_id)
        .ok_or_else(|| SealError::NoKey(topic.to_owned()))?;
    if payload.len() > MAX_PAYLOAD {
        return Err(SealError::TooLarge(payload.len()));
    }
    let producer_len = u8::try_from(producer.len())
        .ok()
        .filter(|n| *n > 0)
        .ok_or(SealError::ProducerId)?;
    let id: [u8; 16] = random_array().map_err(|e| SealError::Crypto(e.to_string()))?;
    let mut out = Vec::with_capacity(FIXED_HEADER + producer.len() + 4 + payload.len() + 64);
    out.extend_from_slice(MAGIC);
    out.push(if encrypt { FLAG_ENCRYPTED } else { 0 });
    out.extend_from_slice(&key_id.to_be_bytes());
    out.extend_from_slice(&now.unix_millis().to_be_bytes());
    out.extend_from_slice(&sequence.to_be_bytes());
    out.extend_from_slice(&id);
    out.push(producer_len);
    out.extend_from_slice(producer.as_bytes());
    let body = if encrypt {
        key.enc
            .seal(&out, payload)
            .map_err(|e| SealError::Crypto(e.to_string()))?
    } else {
        payload.to_vec()
    };
    let body_len = u32::try_from(body.len()).map_err(|_| SealError::TooLarge(body.len()))?;
    out.extend_from_slice(&body_len.to_be_bytes());
    out.extend_from_slice(&body);
    let len = topic_len(topic);
    let tag = key.mac.sign(&mac_input(topic, &len, &out));
    out.extend_from_slice(&tag);
    Ok(out)
}

/// A message that passed every check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opened {
    pub id: [u8; 16],
    pub producer: String,
    pub key_id: u32,
    pub timestamp: Timestamp,
    pub sequence: u64,
    pub payload: Vec<u8>,
}

impl Opened {
    /// The id as 32 hex digits.
    #[must_use]
    pub fn id_hex(&self) -> String {
        self.id.iter().map(|b| format!("{b:02x}")).collect()
    }
}

struct Header<'a> {
    flags: u8,
    key_id: u32,
    timestamp: i64,
    sequence: u64,
    id: [u8; 16],
    producer: &'a str,
    body: &'a [u8],
    /// Everything the MAC covers (after the topic).
    signed: &'a [u8],
    /// The bytes before the body length (the AEAD's associated data).
    header: &'a [u8],
    tag: &'a [u8],
}

fn parse(bytes: &[u8]) -> Option<Header<'_>> {
    if bytes.len() < FIXED_HEADER + 4 + MAC_LEN || &bytes[..4] != MAGIC {
        return None;
    }
    let be64 = |at: usize| bytes.get(at..at + 8)?.try_into().ok();
    let flags = bytes[4];
    let key_id = u32::from_be_bytes(bytes.get(5..9)?.try_into().ok()?);
    let timestamp = i64::from_be_bytes(be64(9)?);
    let sequence = u64::from_be_bytes(be64(17)?);
    let id: [u8; 16] = bytes.get(25..41)?.try_into().ok()?;
    let plen = usize::from(bytes[41]);
    let producer = std::str::from_utf8(bytes.get(42..42 + plen)?).ok()?;
    let at = 42 + plen;
    let blen = u32::from_be_bytes(bytes.get(at..at + 4)?.try_into().ok()?);
    let blen = usize::try_from(blen).ok()?;
    let body = bytes.get(at + 4..at + 4 + blen)?;
    let end = at + 4 + blen;
    if bytes.len() != end + MAC_LEN || flags & !FLAG_ENCRYPTED != 0 || plen == 0 {
        return None;
    }
    Some(Header {
        flags,
        key_id,
        timestamp,
        sequence,
        id,
        producer,
        body,
        signed: &bytes[..end],
        header: &bytes[..at],
        tag: &bytes[end..],
    })
}

/// Sequence numbers a producer may still use: anything above the highest seen, or within the
/// 1,024 below it and not yet seen (the anti-replay window of IPsec, RFC 4303 §3.4.3), so
/// messages that overtake each other on the way are not lost.
#[derive(Debug, Clone)]
struct SeqWindow {
    highest: u64,
    seen: [u64; WINDOW_WORDS],
    last_heard: Timestamp,
}

const WINDOW_WORDS: usize = 16;
const WINDOW: u64 = 64 * WINDOW_WORDS as u64;

impl SeqWindow {
    fn new(now: Timestamp) -> Self {
        Self {
            highest: 0,
            seen: [0; WINDOW_WORDS],
            last_heard: now,
        }
    }

    fn bit(offset: u64) -> (usize, u64) {
        let word = usize::try_from(offset / 64).unwrap_or(0);
        (word, 1u64 << (offset % 64))
    }

    fn would_accept(&self, seq: u64) -> bool {
        if seq > self.highest {
            return true;
        }
        let back = self.highest - seq;
        if back >= WINDOW {
            return false;
        }
        let (w, m) = Self::bit(back);
        self.seen[w] & m == 0
    }

    fn mark(&mut self, seq: u64) {
        if seq > self.highest {
            let shift = seq - self.highest;
            if shift >= WINDOW {
                self.seen = [0; WINDOW_WORDS];
            } else {
                // Shift the bitmap left by `shift` bits (towards older offsets).
                let words = usize::try_from(shift / 64).unwrap_or(0);
                let bits = shift % 64;
                for i in (0..WINDOW_WORDS).rev() {
                    let src = i.checked_sub(words);
                    let hi = src.map_or(0, |s| self.seen[s] << bits);
                    let lo = match src.and_then(|s| s.checked_sub(1)) {
                        Some(s) if bits > 0 => self.seen[s] >> (64 - bits),
                        _ => 0,
                    };
                    self.seen[i] = hi | lo;
                }
            }
            self.highest = seq;
        }
        let (w, m) = Self::bit(self.highest - seq);
        self.seen[w] |= m;
    }
}

/// A consumer's checks and memory: freshness, message ids inside the window, and each producer's
/// sequence window.
#[derive(Debug)]
pub struct Verifier {
    max_age: Duration,
    max_skew: Duration,
    ids: HashMap<[u8; 16], Timestamp>,
    producers: HashMap<String, SeqWindow>,
    last_prune: Timestamp,
}

impl Verifier {
    /// Messages older than `max_age`, or more than `max_skew` ahead of the consumer's clock, are
    /// dropped; ids are remembered for as long as their message could still be accepted.
    #[must_use]
    pub fn new(max_age: Duration, max_skew: Duration) -> Self {
        Self {
            max_age,
            max_skew,
            ids: HashMap::new(),
            producers: HashMap::new(),
            last_prune: Timestamp::UNIX_EPOCH,
        }
    }

    /// Opens `bytes` received on `topic`, or says why it is dropped. A message is remembered
    /// only once it passed every check.
    pub fn open(
        &mut self,
        keys: &TopicKeys,
        topic: &str,
        bytes: &[u8],
        now: Timestamp,
    ) -> Result<Opened, DropReason> {
        let h = parse(bytes).ok_or(DropReason::Malformed)?;
        let key = keys
            .keyring(topic)
            .and_then(|r| r.accepting(h.key_id, now))
            .ok_or(DropReason::UnknownKey)?;
        let len = topic_len(topic);
        if !key.mac.verify(&mac_input(topic, &len, h.signed), h.tag) {
            return Err(DropReason::BadSignature);
        }
        let at = Timestamp::from_unix_millis(h.timestamp);
        if at < now.saturating_sub(self.max_age) {
            return Err(DropReason::Stale);
        }
        if at > now.saturating_add(self.max_skew) {
            return Err(DropReason::FromTheFuture);
        }
        if self.ids.contains_key(&h.id) {
            return Err(DropReason::DuplicateId);
        }
        if let Some(w) = self.producers.get(h.producer)
            && !w.would_accept(h.sequence)
        {
            return Err(DropReason::ReplayedSequence);
        }
        let payload = if h.flags & FLAG_ENCRYPTED != 0 {
            key.enc
                .open(h.header, h.body)
                .map_err(|_| DropReason::Undecryptable)?
                .expose()
                .clone()
        } else {
            h.body.to_vec()
        };
        self.prune(now);
        // An id is needed only while its message is fresh enough to pass the age check.
        self.ids
            .insert(h.id, at.saturating_add(self.max_age + self.max_skew));
        let w = self
            .producers
            .entry(h.producer.to_owned())
            .or_insert_with(|| SeqWindow::new(now));
        w.mark(h.sequence);
        w.last_heard = now;
        Ok(Opened {
            id: h.id,
            producer: h.producer.to_owned(),
            key_id: h.key_id,
            timestamp: at,
            sequence: h.sequence,
            payload,
        })
    }

    /// Forgets ids past their window, and producers silent for longer than a message lives (any
    /// message of theirs still on the wire is stale by now).
    fn prune(&mut self, now: Timestamp) {
        if now.duration_since(self.last_prune) < Duration::from_secs(1) {
            return;
        }
        self.last_prune = now;
        self.ids.retain(|_, until| *until >= now);
        let horizon = now.saturating_sub(self.max_age + self.max_skew);
        self.producers.retain(|_, w| w.last_heard >= horizon);
    }

    /// Ids currently remembered (for tests and metrics).
    #[must_use]
    pub fn remembered_ids(&self) -> usize {
        self.ids.len()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    fn keys(topic: &str, id: u32, byte: u8) -> TopicKeys {
        let mut k = TopicKeys::new();
        k.keyring_mut(topic)
            .rotate_to(id, &Secret::new([byte; 32]))
            .unwrap();
        k
    }

    fn verifier() -> Verifier {
        Verifier::new(Duration::from_secs(300), Duration::from_secs(30))
    }

    const T0: Timestamp = Timestamp::from_unix_seconds(1_800_000_000);

    #[test]
    fn a_sealed_message_opens_once() {
        let k = keys("events", 1, 9);
        for encrypt in [false, true] {
            let mut v = verifier();
            let m = seal(&k, "events", "node-a", 1, T0, b"hello", encrypt).unwrap();
            assert_eq!(m.windows(5).any(|w| w == b"hello"), !encrypt);
            let o = v.open(&k, "events", &m, T0).unwrap();
            assert_eq!((o.payload.as_slice(), o.sequence), (&b"hello"[..], 1));
            assert_eq!(
                v.open(&k, "events", &m, T0).unwrap_err(),
                DropReason::DuplicateId
            );
        }
    }

    #[test]
    fn every_tampering_is_dropped_for_its_reason() {
        let k = keys("events", 1, 9);
        let m = seal(&k, "events", "node-a", 1, T0, b"hello", false).unwrap();
        let mut v = verifier();
        assert_eq!(
            v.open(&k, "events", b"hello", T0).unwrap_err(),
            DropReason::Malformed
        );
        assert_eq!(
            v.open(&k, "other", &m, T0).unwrap_err(),
            DropReason::UnknownKey,
            "another topic has no key"
        );
        let mut moved = keys("events", 1, 9);
        moved
            .keyring_mut("other")
            .rotate_to(1, &Secret::new([9; 32]))
            .unwrap();
        assert_eq!(
            v.open(&moved, "other", &m, T0).unwrap_err(),
            DropReason::BadSignature,
            "the topic is signed: a message moved to another topic with the same key fails"
        );
        let wrong = keys("events", 1, 8);
        assert_eq!(
            v.open(&wrong, "events", &m, T0).unwrap_err(),
            DropReason::BadSignature
        );
        for i in 0..m.len() {
            let mut t = m.clone();
            t[i] ^= 0x40;
            assert!(v.open(&k, "events", &t, T0).is_err(), "byte {i}");
        }
        let late = T0.saturating_add(Duration::from_secs(301));
        assert_eq!(
            v.open(&k, "events", &m, late).unwrap_err(),
            DropReason::Stale
        );
        let early = T0.saturating_sub(Duration::from_secs(31));
        assert_eq!(
            v.open(&k, "events", &m, early).unwrap_err(),
            DropReason::FromTheFuture
        );
        assert!(v.open(&k, "events", &m, T0).is_ok());
    }

    #[test]
    fn sequence_windows_accept_reordering_but_not_repeats() {
        let k = keys("events", 1, 9);
        let mut v = verifier();
        let msg = |seq| seal(&k, "events", "p", seq, T0, b"x", false).unwrap();
        for seq in [5, 3, 4, 2000, 1500] {
            assert!(v.open(&k, "events", &msg(seq), T0).is_ok(), "{seq}");
        }
        // A new envelope (new id) reusing a seen sequence number, or one below the window.
        for seq in [1500, 2000, 5, 900] {
            assert_eq!(
                v.open(&k, "events", &msg(seq), T0).unwrap_err(),
                DropReason::ReplayedSequence,
                "{seq}"
            );
        }
        // Another producer has its own window.
        let other = seal(&k, "events", "q", 5, T0, b"x", false).unwrap();
        assert!(v.open(&k, "events", &other, T0).is_ok());
    }

    #[test]
    fn rotation_overlaps_then_the_old_key_expires() {
        let mut k = keys("events", 1, 1);
        let old = seal(&k, "events", "p", 1, T0, b"x", false).unwrap();
        k.keyring_mut("events")
            .rotate_to(2, &Secret::new([2; 32]))
            .unwrap();
        k.keyring_mut("events")
            .retire(1, T0.saturating_add(Duration::from_secs(60)));
        let new = seal(&k, "events", "p", 2, T0, b"y", false).unwrap();
        let mut v = verifier();
        assert_eq!(v.open(&k, "events", &new, T0).unwrap().key_id, 2);
        assert!(v.open(&k, "events", &old, T0).is_ok(), "inside the overlap");
        let old2 = {
            let mut k1 = keys("events", 1, 1);
            k1.keyring_mut("events")
                .rotate_to(1, &Secret::new([1; 32]))
                .unwrap();
            seal(&k1, "events", "p", 3, T0, b"z", false).unwrap()
        };
        let after = T0.saturating_add(Duration::from_secs(61));
        assert_eq!(
            v.open(&k, "events", &old2, after).unwrap_err(),
            DropReason::UnknownKey
        );
    }

    proptest::proptest! {
        #[test]
        fn the_window_matches_a_set_model(seqs in proptest::collection::vec(0u64..3000, 1..200)) {
            let mut w = SeqWindow::new(T0);
            let mut seen = std::collections::BTreeSet::new();
            for s in seqs {
                let highest = seen.iter().next_back().copied().unwrap_or(0);
                let model = !seen.contains(&s) && (s > highest || highest - s < WINDOW);
                proptest::prop_assert_eq!(w.would_accept(s), model, "seq {}", s);
                if model {
                    w.mark(s);
                    seen.insert(s);
                }
            }
        }
    }
}
