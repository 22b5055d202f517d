//! A Mosquitto restart while no hub is connected loses nothing (protocol 1.4, hub presence).
//!
//! Mosquitto 2.0 restores a persistent session's shared subscription only when its member subscribes again:
//! until a hub is back it acknowledges what agents publish and delivers it to nobody. Here the only hub is
//! stopped, the broker restarted, and the agent (its own publisher) given events: it must hold them in its
//! outbox until the hub is back and has subscribed, then deliver every one. Before the agents held their
//! outbox for a hub, the broker acknowledged these events and they were lost: the assertion on the held
//! outbox fails on that code.

use std::sync::Arc;
use std::time::Duration;

use checkpoint_e2e::hub::Hub;
use checkpoint_e2e::mqtt::{free_port, unique_site};
use checkpoint_e2e::{metric, wait_until};
use checkpoint_protocol::{AgentState, AgentStatus, Envelope, EventKind};
use edge_agent::publish::{MqttConfig, Publisher, Topics};

use super::cluster::{deployed_mosquitto, MemoryOutbox};
use super::security_mqtt::count_event;

fn count(site: &str, n: u64) -> (String, Vec<u8>) {
    let env = count_event(site, "a1", n);
    (
        checkpoint_protocol::topic(site, "a1", "count"),
        env.to_json().into_bytes(),
    )
}

fn status(site: &str, state: AgentState) -> Vec<u8> {
    Envelope::new(
        site,
        "a1",
        time::OffsetDateTime::now_utc(),
        EventKind::AgentStatus(AgentStatus {
            state,
            version: "test".into(),
            cameras: vec![],
        }),
    )
    .to_json()
    .into_bytes()
}

/// Count events the hub stored as new.
fn stored(hub: &Hub) -> f64 {
    let (_, m) = hub.get("/metrics", None);
    metric(
        &m,
        "checkpoint_hub_events_total{kind=\"count\",outcome=\"new\"}",
    )
    .unwrap_or(0.0)
}

#[test]
fn agents_hold_their_outbox_until_a_hub_is_back_after_a_broker_restart() {
    let work = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut broker = deployed_mosquitto(work.path(), port);
    let hub_dir = work.path().join("hub");
    std::fs::create_dir_all(&hub_dir).unwrap();
    let db = format!("sqlite://{}?mode=rwc", hub_dir.join("hub.db").display());
    let mqtt = format!(
        "[mqtt]\nembedded = false\nhost = \"127.0.0.1\"\nport = {port}\n\
         client_id = \"hub-{}\"\nshare_group = \"checkpoint-hub\"",
        unique_site("h")
    );
    let mut hub = Hub::start(&hub_dir, &mqtt, &db);

    let site = unique_site("restart");
    let outbox = Arc::new(MemoryOutbox::default());
    let cfg = MqttConfig {
        connection: checkpoint_mqtt::Connection {
            host: "127.0.0.1".into(),
            port,
            ..Default::default()
        },
        ..Default::default()
    };
    let mut publisher = Publisher::start(
        cfg,
        format!("{site}-a1"),
        Topics::new(&site, "a1"),
        status(&site, AgentState::Online),
        status(&site, AgentState::Offline),
        outbox.clone(),
        Box::new(|_, _| {}),
    )
    .expect("publisher");
    let wake = publisher.waker();
    let waiting = || {
        publisher
            .stats
            .waiting_for_hub
            .load(std::sync::atomic::Ordering::Relaxed)
    };

    // Delivered while the hub is up; the agent hears its presence.
    for n in 1..=5 {
        let (t, p) = count(&site, n);
        outbox.append(t, p);
    }
    wake.notify_one();
    assert!(
        wait_until(Duration::from_secs(20), || stored(&hub) >= 5.0),
        "the first events were not stored; hub log:\n{}",
        hub.log_text()
    );
    // A presence arrives within a second of the hub's subscription; give it two.
    std::thread::sleep(Duration::from_secs(2));

    // The hub goes away, then the broker restarts: its shared subscription is not restored.
    let _ = hub.child.kill();
    let _ = hub.child.wait();
    broker.stop();
    broker.restart();
    assert!(
        wait_until(Duration::from_secs(20), || publisher
            .stats
            .connected
            .load(std::sync::atomic::Ordering::Relaxed)
            && waiting()),
        "the agent did not reconnect and hold its outbox for a hub"
    );
    for n in 6..=25 {
        let (t, p) = count(&site, n);
        outbox.append(t, p);
    }
    wake.notify_one();
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        outbox.len(),
        20,
        "with no hub subscribed the agent must keep its events (the broker would acknowledge and drop them)"
    );
    assert!(waiting());

    // The hub is back: it subscribes, announces itself, and gets every event.
    hub = Hub::start(&hub_dir, &mqtt, &db);
    assert!(
        wait_until(Duration::from_secs(30), || stored(&hub) >= 20.0),
        "stored {} of the 20 events sent after the restart; hub log:\n{}",
        stored(&hub),
        hub.log_text()
    );
    assert!(wait_until(Duration::from_secs(10), || outbox.len() == 0));
    assert!(!waiting());
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(stored(&hub), 20.0, "each event stored once");
    publisher.stop();
}
