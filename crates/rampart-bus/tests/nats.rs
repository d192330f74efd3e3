#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests"
)]
//! The bus over a real NATS JetStream server (`RAMPART_TEST_NATS_URL`, default
//! `nats://127.0.0.1:4222`; `scripts/test` starts one). Fails, never skips, when it is absent.

#![cfg(feature = "nats")]

use std::sync::{Arc, RwLock};
use std::time::Duration;

use rampart_bus::nats::NatsTransport;
use rampart_bus::{Bus, DropReason, Freshness, Message, TopicKeys, Transport, seal};
use rampart_crypto::{Secret, random_array};
use rampart_types::{Clock, SystemClock};

fn url() -> String {
    std::env::var("RAMPART_TEST_NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into())
}

async fn transport() -> Arc<NatsTransport> {
    Arc::new(
        NatsTransport::connect(&url())
            .await
            .unwrap_or_else(|e| panic!("this test needs NATS with JetStream: {e}"))
            .with_ack_wait(Duration::from_secs(1)),
    )
}

fn topic() -> String {
    let r: [u8; 6] = random_array().unwrap();
    let hex: String = r.iter().map(|b| format!("{b:02x}")).collect();
    format!("rampart.test.{hex}")
}

fn keys(topic: &str, byte: u8) -> Arc<RwLock<TopicKeys>> {
    let mut k = TopicKeys::new();
    k.keyring_mut(topic)
        .rotate_to(1, &Secret::new([byte; 32]))
        .unwrap();
    Arc::new(RwLock::new(k))
}

fn bus(t: &Arc<NatsTransport>, keys: &Arc<RwLock<TopicKeys>>, producer: &str) -> Bus {
    Bus::new(
        t.clone(),
        keys.clone(),
        Arc::new(SystemClock),
        producer.into(),
    )
}

async fn next(c: &mut rampart_bus::Consumer) -> Message {
    tokio::time::timeout(Duration::from_secs(10), c.next())
        .await
        .expect("a message within 10 s")
        .expect("the subscription is open")
        .expect("no transport error")
}

#[tokio::test]
async fn signed_messages_arrive_and_rogue_ones_are_dropped_and_counted() {
    let t = transport().await;
    let topic = topic();
    let k = keys(&topic, 1);
    let producer = bus(&t, &k, "node-a").encrypting(true);
    let consumer_bus = bus(&t, &k, "node-b");
    let mut consumer = consumer_bus.subscribe(&topic, "webhooks").await.unwrap();
    // A second group records the raw bytes on the wire, as an intruder on the bus could.
    let mut tap = t.subscribe(&topic, "tap").await.unwrap();

    producer
        .publish(&topic, b"approval.requested")
        .await
        .unwrap();
    let first = next(&mut consumer).await;
    assert_eq!(first.opened.payload, b"approval.requested");
    assert_eq!(
        (first.opened.producer.as_str(), first.opened.sequence),
        ("node-a", 1)
    );
    first.ack().await.unwrap();
    let captured = tap.next().await.unwrap().unwrap();
    assert!(
        !captured.bytes.windows(8).any(|w| w == b"approval"),
        "the payload is encrypted on the wire"
    );
    captured.ack.unwrap().ack().await.unwrap();

    // 1. No key at all: plain bytes published straight to the subject.
    t.publish(&topic, b"{\"command\":\"disable-all\"}".to_vec())
        .await
        .unwrap();
    // 2. A key, but the wrong one.
    bus(&t, &keys(&topic, 2), "rogue")
        .publish(&topic, b"forged")
        .await
        .unwrap();
    // 3. A captured message published again, byte for byte.
    t.publish(&topic, captured.bytes.clone()).await.unwrap();
    // 4. A fresh envelope under the right key but reusing a spent producer sequence number
    //    (what a producer's key thief replaying an old sequence would send).
    let reused = {
        let keys = k.read().unwrap();
        seal(
            &keys,
            &topic,
            "node-a",
            1,
            SystemClock.now(),
            b"again",
            false,
        )
        .unwrap()
    };
    t.publish(&topic, reused).await.unwrap();
    // Then a genuine one, which must still arrive, after all of the above.
    producer.publish(&topic, b"key.rotated").await.unwrap();
    let second = next(&mut consumer).await;
    assert_eq!(second.opened.payload, b"key.rotated");
    second.ack().await.unwrap();

    let stats = consumer_bus.stats();
    assert_eq!(stats.delivered(), 2);
    assert_eq!(stats.dropped(DropReason::Malformed), 1);
    assert_eq!(stats.dropped(DropReason::BadSignature), 1);
    assert_eq!(stats.dropped(DropReason::DuplicateId), 1);
    assert_eq!(stats.dropped(DropReason::ReplayedSequence), 1);
    t.delete_topic(&topic).await.unwrap();
}

#[tokio::test]
async fn a_capture_replayed_after_the_window_is_stale() {
    let t = transport().await;
    let topic = topic();
    let k = keys(&topic, 3);
    let fresh = Freshness {
        max_age: Duration::from_secs(1),
        max_skew: Duration::from_secs(1),
    };
    let consumer_bus = bus(&t, &k, "c").with_freshness(fresh);
    let mut consumer = consumer_bus.subscribe(&topic, "g").await.unwrap();
    let captured = {
        let keys = k.read().unwrap();
        seal(&keys, &topic, "p", 1, SystemClock.now(), b"x", false).unwrap()
    };
    tokio::time::sleep(Duration::from_millis(1500)).await;
    t.publish(&topic, captured).await.unwrap();
    bus(&t, &k, "p2").publish(&topic, b"live").await.unwrap();
    let m = next(&mut consumer).await;
    assert_eq!(m.opened.payload, b"live");
    assert_eq!(consumer_bus.stats().dropped(DropReason::Stale), 1);
    t.delete_topic(&topic).await.unwrap();
}

#[tokio::test]
async fn an_unacknowledged_message_is_delivered_again_and_survives_the_consumer() {
    let t = transport().await;
    let topic = topic();
    let k = keys(&topic, 4);
    let producer = bus(&t, &k, "p");
    {
        let consumer_bus = bus(&t, &k, "c1");
        let mut c = consumer_bus.subscribe(&topic, "durable").await.unwrap();
        producer.publish(&topic, b"must-not-be-lost").await.unwrap();
        let m = next(&mut c).await;
        assert_eq!(m.opened.payload, b"must-not-be-lost");
        // Crash before acknowledging: the message and the consumer go away unacknowledged.
        drop(m);
    }
    // A new process joins the same durable group and is given the message again.
    let consumer_bus = bus(&t, &k, "c2");
    let mut c = consumer_bus.subscribe(&topic, "durable").await.unwrap();
    let again = next(&mut c).await;
    assert_eq!(again.opened.payload, b"must-not-be-lost");
    let id = again.opened.id;
    again.ack().await.unwrap();
    // Acknowledged: not offered again.
    producer.publish(&topic, b"next").await.unwrap();
    let m = next(&mut c).await;
    assert_eq!(m.opened.payload, b"next");
    assert_ne!(m.opened.id, id);
    m.ack().await.unwrap();
    t.delete_topic(&topic).await.unwrap();
}
