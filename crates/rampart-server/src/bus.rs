//! The server on the event bus.
//!
//! Every audit event is announced on the topic `rampart.events` (type, tenant, resource, outcome,
//! time, and how many webhook deliveries it queued — never its detail) by a background
//! publisher, so announcing never delays or fails a request: the ledger, not the bus, is the
//! record. Each node listens on the topic in its own durable group and wakes its webhook worker
//! when another node queued deliveries. The topic key is derived from the root key, which every
//! node of one deployment shares; nothing without it can write a message a node accepts.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use rampart_bus::{Bus, MemoryTransport, TopicKeys, Transport};
use rampart_crypto::{RootKey, Secret, random_array};
use rampart_types::{AuditEvent, Clock};
use serde_json::json;
use tokio::sync::mpsc;

use crate::config::{BusBackend, Config};
use crate::state::{AppState, StartError};

/// The topic audit events are announced on.
pub const EVENTS_TOPIC: &str = "rampart.events";
const TOPIC_KEY_LABEL: &str = "rampart/bus-topic-key/v1/rampart.events";
/// Announcements waiting for the publisher before new ones are dropped (and counted).
const QUEUE: usize = 10_000;

/// Opens this node's bus: the transport `config` names, the topic key, a producer id of its own.
pub async fn open(
    config: &Config,
    root: &RootKey,
    clock: Arc<dyn Clock>,
) -> Result<Bus, StartError> {
    let transport: Arc<dyn Transport> = match config.bus {
        BusBackend::Memory => Arc::new(MemoryTransport::new()),
        BusBackend::Nats => nats(config).await?,
    };
    let material = Secret::new(*root.derive(TOPIC_KEY_LABEL)?.expose());
    let mut keys = TopicKeys::new();
    keys.keyring_mut(EVENTS_TOPIC)
        .rotate_to(1, &material)
        .map_err(|e| StartError::Setup(format!("bus keys: {e}")))?;
    // Sequence numbers restart with the process, so the producer id must too.
    let producer = rampart_types::lower_hex(&random_array::<8>()?);
    Ok(Bus::new(
        transport,
        Arc::new(RwLock::new(keys)),
        clock,
        format!("node-{producer}"),
    )
    .encrypting(config.bus_encrypt))
}

#[cfg(feature = "nats")]
async fn nats(config: &Config) -> Result<Arc<dyn Transport>, StartError> {
    let t = rampart_bus::nats::NatsTransport::connect(&config.bus_nats_url)
        .await
        .map_err(|e| StartError::Setup(format!("bus: {e}")))?;
    Ok(Arc::new(t))
}

/// The configuration refuses `bus = "nats"` in a build without the `nats` feature.
#[cfg(not(feature = "nats"))]
async fn nats(_config: &Config) -> Result<Arc<dyn Transport>, StartError> {
    Err(StartError::Setup(
        "bus: this build has no NATS support; build with `--features nats`".into(),
    ))
}

/// Hands announcements to a background task that publishes them.
#[derive(Debug, Clone)]
pub struct Publisher {
    queue: mpsc::Sender<Vec<u8>>,
    dropped: Arc<AtomicU64>,
}

impl Publisher {
    /// Starts the publishing task (it ends when every `Publisher` is dropped).
    #[must_use]
    pub fn spawn(bus: Arc<Bus>) -> Self {
        let (queue, mut rx) = mpsc::channel::<Vec<u8>>(QUEUE);
        tokio::spawn(async move {
            while let Some(payload) = rx.recv().await {
                if let Err(e) = bus.publish(EVENTS_TOPIC, &payload).await {
                    tracing::warn!(error = %e, "bus: announcing an event failed");
                }
            }
        });
        Self {
            queue,
            dropped: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Queues the announcement of `event`; drops it (and counts) when the queue is full.
    pub fn announce(&self, event: &AuditEvent, webhooks_queued: usize) {
        let payload = json!({
            "type": event.action.as_str(),
            "tenant_id": event.tenant_id,
            "resource": event.resource,
            "outcome": event.outcome,
            "at": event.at,
            "webhooks_queued": webhooks_queued,
        })
        .to_string()
        .into_bytes();
        if self.queue.try_send(payload).is_err() {
            let n = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            if n.is_power_of_two() {
                tracing::warn!(
                    dropped = n,
                    "bus: announcement queue full, events not announced"
                );
            }
        }
    }

    /// Announcements dropped because the queue was full.
    #[must_use]
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

/// Listens on the events topic as this node's group and wakes the webhook worker when another
/// node queued deliveries. Runs until the subscription ends.
pub async fn listen(state: AppState, group: String) {
    let mut consumer = match state.bus.subscribe(EVENTS_TOPIC, &group).await {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "bus: cannot subscribe to the events topic");
            return;
        }
    };
    while let Some(next) = consumer.next().await {
        match next {
            Ok(m) => {
                let queued = serde_json::from_slice::<serde_json::Value>(&m.opened.payload)
                    .ok()
                    .and_then(|v| v["webhooks_queued"].as_u64())
                    .unwrap_or(0);
                if queued > 0 {
                    state.webhook_wake.notify_one();
                }
                if let Err(e) = m.ack().await {
                    tracing::warn!(error = %e, "bus: acknowledging failed");
                }
            }
            Err(e) => tracing::warn!(error = %e, "bus: receiving failed"),
        }
    }
}
