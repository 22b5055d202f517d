//! Lossless delivery over MQTT: the agent publishes through its durable outbox to a real broker (rumqttd, the
//! broker the hub embeds, as its own process). The broker is stopped for 60 s while events keep coming and then
//! started again: every event the agent produced reaches a subscriber, duplicates only with the same id.

use std::collections::HashSet;
use std::process::{Child, Command};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use checkpoint_e2e::{read_events, wait_until, workspace_bin, Agent};
use checkpoint_protocol::Envelope;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn start_broker(port: u16) -> Child {
    let child = Command::new(workspace_bin("checkpoint-test-broker"))
        .arg(port.to_string())
        .spawn()
        .unwrap();
    assert!(
        wait_until(Duration::from_secs(10), || std::net::TcpStream::connect((
            "127.0.0.1",
            port
        ))
        .is_ok()),
        "broker did not start"
    );
    child
}

/// Subscribes to everything under `checkpoint/`, resubscribing after every reconnect.
fn collector(port: u16) -> Arc<Mutex<Vec<Envelope>>> {
    let got = Arc::new(Mutex::new(Vec::new()));
    let sink = got.clone();
    std::thread::spawn(move || {
        let mut opts = rumqttc::MqttOptions::new("test-collector", "127.0.0.1", port);
        opts.set_keep_alive(Duration::from_secs(5));
        opts.set_max_packet_size(8 << 20, 8 << 20);
        let (client, mut conn) = rumqttc::Client::new(opts, 100);
        for ev in conn.iter() {
            match ev {
                Ok(rumqttc::Event::Incoming(rumqttc::Packet::ConnAck(_))) => {
                    let _ = client.try_subscribe("checkpoint/#", rumqttc::QoS::AtLeastOnce);
                }
                Ok(rumqttc::Event::Incoming(rumqttc::Packet::Publish(p))) => {
                    if let Ok(env) = Envelope::from_json(&p.payload) {
                        sink.lock().unwrap().push(env);
                    }
                }
                Ok(_) => {}
                Err(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    });
    got
}

#[test]
fn events_survive_a_60s_broker_outage_without_loss() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut broker = start_broker(port);
    let got = collector(port);
    let config = format!(
        r#"
[site]
id = "pier"
[agent]
id = "agent-7"
events = "{events}"
metrics_listen = ""
exit_when_done = false
count_interval_s = 0.5
[detection]
embed_faces = false
[mqtt]
host = "127.0.0.1"
port = {port}
[outbox]
dir = "{outbox}"
fsync = "always"
[[cameras]]
id = "cam"
mode = "faces"
[cameras.stream]
analysis_fps = 2
source = {{ kind = "test", pattern = "ball", width = 160, height = 120, fps = 10 }}
[[cameras.lines]]
id = "gate"
a = [0.0, 0.5]
b = [1.0, 0.5]
in_side = "right"
"#,
        events = dir.path().join("events.jsonl").display(),
        outbox = dir.path().join("outbox").display(),
    );
    let cfg = dir.path().join("site.toml");
    std::fs::write(&cfg, config).unwrap();
    let mut agent = Agent::start(&cfg, dir.path());
    assert!(
        wait_until(Duration::from_secs(30), || got.lock().unwrap().len() >= 5),
        "events reach the broker; log:\n{}",
        agent.log_text()
    );

    // Outage: events keep being produced (a count every 0.5 s) and wait in the outbox.
    let _ = broker.kill();
    let _ = broker.wait();
    let before = read_events(&agent.events).len();
    std::thread::sleep(Duration::from_secs(60));
    let during = read_events(&agent.events).len() - before;
    assert!(
        during >= 100,
        "events kept coming during the outage: {during}"
    );
    let mut broker = start_broker(port);
    // The agent reconnects (its backoff is at most 5 s) and replays the outbox; once everything produced so far
    // has arrived, stop it: its last events go out while it is connected.
    let caught_up = wait_until(Duration::from_secs(40), || {
        let have: HashSet<_> = got.lock().unwrap().iter().map(|e| e.id).collect();
        read_events(&agent.events)
            .iter()
            .all(|e| have.contains(&e.id))
    });
    assert!(
        caught_up,
        "the outbox was not replayed after the broker came back; log:\n{}",
        agent.log_text()
    );
    agent.interrupt();
    assert!(
        agent.wait(Duration::from_secs(30)).success(),
        "{}",
        agent.log_text()
    );

    let produced: Vec<Envelope> = read_events(&agent.events);
    let ok = wait_until(Duration::from_secs(30), || {
        let have: HashSet<_> = got.lock().unwrap().iter().map(|e| e.id).collect();
        produced.iter().all(|e| have.contains(&e.id))
    });
    let received = got.lock().unwrap().clone();
    let have: HashSet<_> = received.iter().map(|e| e.id).collect();
    let missing: Vec<_> = produced
        .iter()
        .filter(|e| !have.contains(&e.id))
        .map(|e| (e.id, e.kind()))
        .collect();
    eprintln!(
        "produced {}, received {} ({} distinct), {} during the outage, missing {}",
        produced.len(),
        received.len(),
        have.len(),
        during,
        missing.len()
    );
    assert!(ok, "events lost: {missing:?}");
    // Duplicates carry the same id and the same content. The retained online/offline status (and the last will)
    // are connection state the publisher sends itself, not outbox events.
    for e in &received {
        match produced.iter().find(|p| p.id == e.id) {
            Some(orig) => assert_eq!(
                orig, e,
                "a received event differs from what the agent produced"
            ),
            None => assert!(
                matches!(e.event, checkpoint_protocol::EventKind::AgentStatus(_)),
                "an event the agent never produced: {e:?}"
            ),
        }
    }
    let _ = broker.kill();
    let _ = broker.wait();
}
