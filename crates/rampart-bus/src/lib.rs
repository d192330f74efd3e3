//! Rampart's internal event bus.
//!
//! What it is: producers seal every message in an HMAC-SHA256 envelope under the topic's key
//! (id, producer id, key id, timestamp, sequence, payload — optionally encrypted); consumers
//! open it and drop, and count, anything unsigned, wrongly signed, stale, from the future, or
//! replayed (a message id seen inside the freshness window, or a producer sequence number
//! already used). Topic keys rotate with an overlap. Two transports sit behind one trait: an
//! in-process one (the embedded default) and NATS JetStream (feature `nats`: durable streams and
//! consumers, at-least-once).
//!
//! What it does not do: it does not make handling idempotent across a consumer's restart — a
//! JetStream message handled but not acknowledged before a crash is delivered again, to a
//! consumer that no longer remembers it; handlers key their effects by [`Opened::id`]. It does
//! not hide who talks to whom or how much (the header is readable; only the payload can be
//! encrypted).

mod envelope;
mod memory;
#[cfg(feature = "nats")]
pub mod nats;

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

pub use envelope::{
    DropReason, Keyring, MAX_PAYLOAD, Opened, SealError, TopicKeys, Verifier, seal,
};
pub use memory::MemoryTransport;
use rampart_types::Clock;

/// A boxed future, so transports can be trait objects.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Transport and sealing failures.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    #[error(transparent)]
    Seal(#[from] SealError),
    #[error("bus transport: {0}")]
    Transport(String),
    #[error("the consumer fell behind and {0} messages were lost")]
    Lagged(u64),
    #[error("the bus keys are unavailable (a writer panicked)")]
    Keys,
}

/// Moves opaque bytes on named topics.
pub trait Transport: Send + Sync + 'static {
    /// Publishes; returns once the transport has it (JetStream: stored and acknowledged).
    fn publish<'a>(&'a self, topic: &'a str, bytes: Vec<u8>)
    -> BoxFuture<'a, Result<(), BusError>>;
    /// Subscribes `group` to `topic`: members of one durable group share its messages
    /// (JetStream), and a group resumes where it left off.
    fn subscribe<'a>(
        &'a self,
        topic: &'a str,
        group: &'a str,
    ) -> BoxFuture<'a, Result<Box<dyn Subscription>, BusError>>;
}

/// The receiving end of a subscription.
pub trait Subscription: Send {
    /// The next delivery; `None` when the transport closed.
    fn next(&mut self) -> BoxFuture<'_, Option<Result<Delivery, BusError>>>;
}

/// Acknowledges one delivery to the transport.
pub trait Acker: Send {
    fn ack(self: Box<Self>) -> BoxFuture<'static, Result<(), BusError>>;
}

/// Bytes as received, with the way to acknowledge them.
pub struct Delivery {
    pub bytes: Vec<u8>,
    pub ack: Option<Box<dyn Acker>>,
}

/// Counts of what consumers delivered and dropped.
#[derive(Debug, Default)]
pub struct Stats {
    delivered: AtomicU64,
    dropped: [AtomicU64; DropReason::ALL.len()],
}

impl Stats {
    #[must_use]
    pub fn delivered(&self) -> u64 {
        self.delivered.load(Ordering::Relaxed)
    }

    #[must_use]
    pub fn dropped(&self, reason: DropReason) -> u64 {
        self.dropped[Self::slot(reason)].load(Ordering::Relaxed)
    }

    #[must_use]
    pub fn dropped_total(&self) -> u64 {
        DropReason::ALL.iter().map(|r| self.dropped(*r)).sum()
    }

    fn slot(reason: DropReason) -> usize {
        DropReason::ALL
            .iter()
            .position(|r| *r == reason)
            .unwrap_or(0)
    }

    fn count_drop(&self, reason: DropReason) {
        self.dropped[Self::slot(reason)].fetch_add(1, Ordering::Relaxed);
    }
}

/// How long a message may travel before consumers drop it as stale, and how far ahead of the
/// consumer's clock a producer's may be.
#[derive(Debug, Clone, Copy)]
pub struct Freshness {
    pub max_age: Duration,
    pub max_skew: Duration,
}

impl Default for Freshness {
    fn default() -> Self {
        Self {
            max_age: Duration::from_secs(300),
            max_skew: Duration::from_secs(30),
        }
    }
}

/// One producer identity on one transport, and the consumers it opens.
pub struct Bus {
    transport: Arc<dyn Transport>,
    keys: Arc<RwLock<TopicKeys>>,
    clock: Arc<dyn Clock>,
    producer: String,
    sequence: AtomicU64,
    encrypt: bool,
    freshness: Freshness,
    stats: Arc<Stats>,
}

impl std::fmt::Debug for Bus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bus")
            .field("producer", &self.producer)
            .field("encrypt", &self.encrypt)
            .finish_non_exhaustive()
    }
}

impl Bus {
    /// `producer` must be unique per process lifetime (sequence numbers start again at 1).
    #[must_use]
    pub fn new(
        transport: Arc<dyn Transport>,
        keys: Arc<RwLock<TopicKeys>>,
        clock: Arc<dyn Clock>,
        producer: String,
    ) -> Self {
        Self {
            transport,
            keys,
            clock,
            producer,
            sequence: AtomicU64::new(0),
            encrypt: false,
            freshness: Freshness::default(),
            stats: Arc::new(Stats::default()),
        }
    }

    /// Encrypts payloads under the topic key.
    #[must_use]
    pub fn encrypting(mut self, on: bool) -> Self {
        self.encrypt = on;
        self
    }

    #[must_use]
    pub fn with_freshness(mut self, f: Freshness) -> Self {
        self.freshness = f;
        self
    }

    /// The keys, to rotate them.
    #[must_use]
    pub fn keys(&self) -> &Arc<RwLock<TopicKeys>> {
        &self.keys
    }

    #[must_use]
    pub fn stats(&self) -> &Arc<Stats> {
        &self.stats
    }

    #[must_use]
    pub fn transport(&self) -> &Arc<dyn Transport> {
        &self.transport
    }

    /// Seals `payload` and publishes it on `topic`.
    pub async fn publish(&self, topic: &str, payload: &[u8]) -> Result<(), BusError> {
        let seq = self.sequence.fetch_add(1, Ordering::SeqCst) + 1;
        let bytes = {
            let keys = self.keys.read().map_err(|_| BusError::Keys)?;
            seal(
                &keys,
                topic,
                &self.producer,
                seq,
                self.clock.now(),
                payload,
                self.encrypt,
            )?
        };
        self.transport.publish(topic, bytes).await
    }

    /// A verifying consumer of `topic` in `group`.
    pub async fn subscribe(&self, topic: &str, group: &str) -> Result<Consumer, BusError> {
        let sub = self.transport.subscribe(topic, group).await?;
        Ok(Consumer {
            sub,
            topic: topic.to_owned(),
            verifier: Verifier::new(self.freshness.max_age, self.freshness.max_skew),
            keys: self.keys.clone(),
            clock: self.clock.clone(),
            stats: self.stats.clone(),
        })
    }
}

/// Yields only messages that passed every check.
pub struct Consumer {
    sub: Box<dyn Subscription>,
    topic: String,
    verifier: Verifier,
    keys: Arc<RwLock<TopicKeys>>,
    clock: Arc<dyn Clock>,
    stats: Arc<Stats>,
}

/// A verified message; acknowledge it once handled.
pub struct Message {
    pub opened: Opened,
    ack: Option<Box<dyn Acker>>,
}

impl Message {
    /// Tells the transport the message was handled (JetStream will not deliver it again).
    pub async fn ack(mut self) -> Result<(), BusError> {
        match self.ack.take() {
            Some(a) => a.ack().await,
            None => Ok(()),
        }
    }
}

impl Consumer {
    /// The next verified message. Dropped ones are counted, logged (reason and producer only)
    /// and acknowledged, so the transport does not offer them again.
    pub async fn next(&mut self) -> Option<Result<Message, BusError>> {
        loop {
            let delivery = match self.sub.next().await? {
                Ok(d) => d,
                Err(e) => return Some(Err(e)),
            };
            let opened = {
                let Ok(keys) = self.keys.read() else {
                    return Some(Err(BusError::Keys));
                };
                self.verifier
                    .open(&keys, &self.topic, &delivery.bytes, self.clock.now())
            };
            match opened {
                Ok(opened) => {
                    self.stats.delivered.fetch_add(1, Ordering::Relaxed);
                    return Some(Ok(Message {
                        opened,
                        ack: delivery.ack,
                    }));
                }
                Err(reason) => {
                    self.stats.count_drop(reason);
                    tracing::warn!(topic = %self.topic, reason = reason.label(), "bus message dropped");
                    if let Some(a) = delivery.ack
                        && let Err(e) = a.ack().await
                    {
                        return Some(Err(e));
                    }
                }
            }
        }
    }

    #[must_use]
    pub fn verifier(&self) -> &Verifier {
        &self.verifier
    }
}
