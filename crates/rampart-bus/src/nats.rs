//! The NATS JetStream transport: one file-backed stream per topic, one durable pull consumer per
//! group with explicit acknowledgement, so a message is delivered at least once and survives a
//! restart of either side.

use std::collections::HashSet;
use std::time::Duration;

use async_nats::jetstream::{self, consumer, stream};
use futures_util::StreamExt;
use tokio::sync::Mutex;

use crate::{Acker, BoxFuture, BusError, Delivery, Subscription, Transport};

/// How long JetStream keeps a topic's messages (consumers that were away longer lose them).
pub const RETENTION: Duration = Duration::from_secs(24 * 3600);
/// How long JetStream waits for an acknowledgement before delivering again.
pub const ACK_WAIT: Duration = Duration::from_secs(30);

fn err(e: impl std::fmt::Display) -> BusError {
    BusError::Transport(e.to_string())
}

/// The stream that holds `topic`: `RAMPART_` and the topic with `.` → `_`.
#[must_use]
pub fn stream_name(topic: &str) -> String {
    let mut s = String::from("RAMPART_");
    s.extend(
        topic
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }),
    );
    s
}

pub struct NatsTransport {
    js: jetstream::Context,
    ready: Mutex<HashSet<String>>,
    ack_wait: Duration,
}

impl std::fmt::Debug for NatsTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsTransport").finish_non_exhaustive()
    }
}

impl NatsTransport {
    /// Connects to the server at `url` (`nats://host:port`).
    pub async fn connect(url: &str) -> Result<Self, BusError> {
        let client = async_nats::ConnectOptions::new()
            .connection_timeout(Duration::from_secs(5))
            .connect(url)
            .await
            .map_err(|e| BusError::Transport(format!("connecting to NATS at `{url}`: {e}")))?;
        Ok(Self {
            js: jetstream::new(client),
            ready: Mutex::new(HashSet::new()),
            ack_wait: ACK_WAIT,
        })
    }

    /// How long an unacknowledged delivery waits before it is delivered again.
    #[must_use]
    pub fn with_ack_wait(mut self, wait: Duration) -> Self {
        self.ack_wait = wait;
        self
    }

    /// Deletes the stream of `topic` and every message and consumer in it.
    pub async fn delete_topic(&self, topic: &str) -> Result<(), BusError> {
        let name = stream_name(topic);
        self.ready.lock().await.remove(&name);
        self.js.delete_stream(&name).await.map_err(err)?;
        Ok(())
    }

    async fn stream(&self, topic: &str) -> Result<stream::Stream, BusError> {
        let name = stream_name(topic);
        let s = self
            .js
            .get_or_create_stream(stream::Config {
                name: name.clone(),
                subjects: vec![topic.to_owned()],
                storage: stream::StorageType::File,
                max_age: RETENTION,
                ..Default::default()
            })
            .await
            .map_err(err)?;
        self.ready.lock().await.insert(name);
        Ok(s)
    }
}

impl Transport for NatsTransport {
    fn publish<'a>(
        &'a self,
        topic: &'a str,
        bytes: Vec<u8>,
    ) -> BoxFuture<'a, Result<(), BusError>> {
        Box::pin(async move {
            if !self.ready.lock().await.contains(&stream_name(topic)) {
                self.stream(topic).await?;
            }
            // Wait for the stream's acknowledgement: the message is stored.
            self.js
                .publish(topic.to_owned(), bytes.into())
                .await
                .map_err(err)?
                .await
                .map_err(err)?;
            Ok(())
        })
    }

    fn subscribe<'a>(
        &'a self,
        topic: &'a str,
        group: &'a str,
    ) -> BoxFuture<'a, Result<Box<dyn Subscription>, BusError>> {
        Box::pin(async move {
            let stream = self.stream(topic).await?;
            let consumer = stream
                .get_or_create_consumer(
                    group,
                    consumer::pull::Config {
                        durable_name: Some(group.to_owned()),
                        ack_policy: consumer::AckPolicy::Explicit,
                        ack_wait: self.ack_wait,
                        filter_subject: topic.to_owned(),
                        // A new group starts at the messages published after it was made; an
                        // existing one resumes where it left off.
                        deliver_policy: consumer::DeliverPolicy::New,
                        ..Default::default()
                    },
                )
                .await
                .map_err(err)?;
            let messages = consumer.messages().await.map_err(err)?;
            Ok(Box::new(NatsSubscription { messages }) as Box<dyn Subscription>)
        })
    }
}

struct NatsSubscription {
    messages: consumer::pull::Stream,
}

impl Subscription for NatsSubscription {
    fn next(&mut self) -> BoxFuture<'_, Option<Result<Delivery, BusError>>> {
        Box::pin(async move {
            match self.messages.next().await? {
                Ok(m) => Some(Ok(Delivery {
                    bytes: m.payload.to_vec(),
                    ack: Some(Box::new(NatsAck(m))),
                })),
                Err(e) => Some(Err(err(e))),
            }
        })
    }
}

struct NatsAck(jetstream::Message);

impl Acker for NatsAck {
    fn ack(self: Box<Self>) -> BoxFuture<'static, Result<(), BusError>> {
        Box::pin(async move {
            self.0
                .ack()
                .await
                .map_err(|e| BusError::Transport(e.to_string()))
        })
    }
}
