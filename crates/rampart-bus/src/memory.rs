//! The in-process transport: a broadcast channel per topic. Every subscription sees every message
//! published after it subscribed; nothing survives the process.

use std::collections::HashMap;
use std::sync::Mutex;

use tokio::sync::broadcast;

use crate::{BoxFuture, BusError, Delivery, Subscription, Transport};

/// Messages a slow subscriber may fall behind by before it loses some (and is told so).
const CAPACITY: usize = 65_536;

#[derive(Debug, Default)]
pub struct MemoryTransport {
    topics: Mutex<HashMap<String, broadcast::Sender<Vec<u8>>>>,
}

impl MemoryTransport {
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    fn sender(&self, topic: &str) -> Result<broadcast::Sender<Vec<u8>>, BusError> {
        let mut topics = self
            .topics
            .lock()
            .map_err(|_| BusError::Transport("topic table poisoned".into()))?;
        Ok(topics
            .entry(topic.to_owned())
            .or_insert_with(|| broadcast::channel(CAPACITY).0)
            .clone())
    }
}

impl Transport for MemoryTransport {
    fn publish<'a>(
        &'a self,
        topic: &'a str,
        bytes: Vec<u8>,
    ) -> BoxFuture<'a, Result<(), BusError>> {
        Box::pin(async move {
            // No subscriber is not an error: in-process, nobody was listening.
            let _ = self.sender(topic)?.send(bytes);
            Ok(())
        })
    }

    fn subscribe<'a>(
        &'a self,
        topic: &'a str,
        _group: &'a str,
    ) -> BoxFuture<'a, Result<Box<dyn Subscription>, BusError>> {
        Box::pin(async move {
            let rx = self.sender(topic)?.subscribe();
            Ok(Box::new(MemorySubscription(rx)) as Box<dyn Subscription>)
        })
    }
}

struct MemorySubscription(broadcast::Receiver<Vec<u8>>);

impl Subscription for MemorySubscription {
    fn next(&mut self) -> BoxFuture<'_, Option<Result<Delivery, BusError>>> {
        Box::pin(async move {
            match self.0.recv().await {
                Ok(bytes) => Some(Ok(Delivery { bytes, ack: None })),
                Err(broadcast::error::RecvError::Lagged(n)) => Some(Err(BusError::Lagged(n))),
                Err(broadcast::error::RecvError::Closed) => None,
            }
        })
    }
}
