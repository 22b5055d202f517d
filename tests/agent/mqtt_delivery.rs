//! Lossless delivery over MQTT, against rumqttd (the broker the hub embeds) and Mosquitto, each in its own
//! process so the test can stop it:
//! - the broker is down for 60 s while events keep coming, then back: every event the agent produced reaches
//!   a subscriber, duplicates only as QoS 1 allows and with the same id and content;
//! - the agent is killed with SIGKILL while the broker is down and events wait in its outbox, then started
//!   again: the outbox of the killed process is replayed.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use checkpoint_e2e::mqtt::{free_port, BrokerKind, BrokerProcess, Collector};
use checkpoint_e2e::{pattern_agent_config, read_events, wait_until, Agent, AgentExtra};
use checkpoint_protocol::{Envelope, EventKind};

fn write_config(dir: &Path, site: &str, port: u16) -> PathBuf {
    let extra = AgentExtra {
        outbox: "fsync = \"always\"",
        ..Default::default()
    };
    pattern_agent_config(dir, site, "agent-7", port, extra)
}

/// Every produced event arrived; what arrived twice is identical; nothing arrived that was not produced
/// (but for the retained online/offline status and the last will, which the publisher sends itself).
fn check_delivery(produced: &[Envelope], received: &[Envelope], note: &str) {
    let have: HashSet<_> = received.iter().map(|e| e.id).collect();
    let missing: Vec<_> = produced
        .iter()
        .filter(|e| !have.contains(&e.id))
        .map(|e| (e.id, e.kind()))
        .collect();
    eprintln!(
        "{note}: produced {}, received {} ({} distinct), missing {}",
        produced.len(),
        received.len(),
        have.len(),
        missing.len()
    );
    assert!(missing.is_empty(), "{note}: events lost: {missing:?}");
    // Replay is in order. Counts all come from the agent's main loop, so the local log lists them in outbox
    // order; their first arrivals must follow it (a re-send after a lost acknowledgement comes later, and is
    // not a first arrival).
    let count_pos: std::collections::HashMap<_, _> = produced
        .iter()
        .filter(|e| e.kind() == "count")
        .enumerate()
        .map(|(i, e)| (e.id, i))
        .collect();
    let mut first = HashSet::new();
    let mut last = None;
    for e in received.iter().filter(|e| e.kind() == "count") {
        if !first.insert(e.id) {
            continue;
        }
        let Some(&pos) = count_pos.get(&e.id) else {
            continue;
        };
        assert!(
            last < Some(pos),
            "{note}: count {pos} arrived after count {last:?}: the outbox was not replayed in order"
        );
        last = Some(pos);
    }
    for e in received {
        match produced.iter().find(|p| p.id == e.id) {
            Some(orig) => assert_eq!(
                orig, e,
                "a received event differs from what the agent produced"
            ),
            None => assert!(
                matches!(e.event, EventKind::AgentStatus(_)),
                "an event the agent never produced: {e:?}"
            ),
        }
    }
}

fn outage(kind: BrokerKind) {
    let dir = tempfile::tempdir().unwrap();
    let site = checkpoint_e2e::mqtt::unique_site("outage");
    let mut broker = BrokerProcess::start(kind, free_port());
    let got = Collector::start(broker.port(), &site);
    let cfg = write_config(dir.path(), &site, broker.port());
    let mut agent = Agent::start(&cfg, dir.path());
    assert!(
        wait_until(Duration::from_secs(30), || got.events().len() >= 5),
        "events reach the broker; log:\n{}",
        agent.log_text()
    );

    // Outage: events keep being produced (a count every 0.5 s) and wait in the outbox.
    broker.kill();
    let before = read_events(&agent.events).len();
    std::thread::sleep(Duration::from_secs(60));
    let during = read_events(&agent.events).len() - before;
    assert!(
        during >= 100,
        "events kept coming during the outage: {during}"
    );
    broker.restart();
    // The agent reconnects (its backoff is at most 5 s) and replays the outbox; once everything produced so far
    // has arrived, stop it: its last events go out while it is connected.
    assert!(
        got.wait_for_all(&read_events(&agent.events), Duration::from_secs(40)),
        "the outbox was not replayed after the broker came back; log:\n{}",
        agent.log_text()
    );
    agent.interrupt();
    assert!(
        agent.wait(Duration::from_secs(30)).success(),
        "{}",
        agent.log_text()
    );
    let produced = read_events(&agent.events);
    got.wait_for_all(&produced, Duration::from_secs(30));
    check_delivery(
        &produced,
        &got.events(),
        &format!("{kind:?}, {during} events during a 60 s outage"),
    );
}

#[test]
fn rumqttd_outage_of_60s_loses_no_event() {
    outage(BrokerKind::Rumqttd);
}

#[test]
fn mosquitto_outage_of_60s_loses_no_event() {
    outage(BrokerKind::Mosquitto);
}

fn killed_agent(kind: BrokerKind) {
    let dir = tempfile::tempdir().unwrap();
    let site = checkpoint_e2e::mqtt::unique_site("kill9");
    let mut broker = BrokerProcess::start(kind, free_port());
    let got = Collector::start(broker.port(), &site);
    let cfg = write_config(dir.path(), &site, broker.port());
    let mut agent = Agent::start(&cfg, dir.path());
    assert!(
        wait_until(Duration::from_secs(30), || got.events().len() >= 5),
        "events reach the broker; log:\n{}",
        agent.log_text()
    );
    // Events pile up in the outbox while the broker is away; then the agent dies mid-stream.
    broker.kill();
    let before = read_events(&agent.events).len();
    std::thread::sleep(Duration::from_secs(5));
    agent.kill_9();
    let first_run = read_events(&agent.events);
    let stranded = first_run.len() - before;
    assert!(
        stranded >= 5,
        "events were waiting when the agent died: {stranded}"
    );
    broker.restart();

    let mut agent = Agent::start(&cfg, dir.path());
    assert!(
        got.wait_for_all(&first_run, Duration::from_secs(40)),
        "the killed agent's outbox was not replayed by the new one; log:\n{}",
        agent.log_text()
    );
    assert!(
        agent
            .log_text()
            .contains("events from an earlier run wait in the outbox"),
        "{}",
        agent.log_text()
    );
    agent.interrupt();
    assert!(
        agent.wait(Duration::from_secs(30)).success(),
        "{}",
        agent.log_text()
    );
    let produced = read_events(&agent.events);
    got.wait_for_all(&produced, Duration::from_secs(30));
    check_delivery(
        &produced,
        &got.events(),
        &format!("{kind:?}, kill -9 with {stranded} events stranded"),
    );
}

#[test]
fn rumqttd_agent_killed_mid_stream_replays_its_outbox() {
    killed_agent(BrokerKind::Rumqttd);
}

#[test]
fn mosquitto_agent_killed_mid_stream_replays_its_outbox() {
    killed_agent(BrokerKind::Mosquitto);
}
