//! Real MQTT brokers for the end-to-end tests, and a test-side client.
//!
//! - rumqttd (a second broker implementation for the agent's delivery tests) in this process on an ephemeral port, or as its own process
//!   (`checkpoint-test-broker`) when a test must stop and restart it;
//! - Mosquitto: the machine's own on 127.0.0.1:1883, or a private instance on an ephemeral port when a test
//!   must stop it. Tests on the shared 1883 broker use a unique site id, so runs never see each other's topics.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use checkpoint_protocol::Envelope;

use crate::{wait_until, workspace_bin};

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind an ephemeral port")
        .local_addr()
        .expect("local address")
        .port()
}

fn reachable(port: u16) -> bool {
    std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
}

/// A site id no other test run uses (MQTT topics are per site).
pub fn unique_site(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{prefix}-{}-{nanos}", std::process::id())
}

/// The rumqttd configuration the tests use.
pub fn rumqttd_config(port: u16) -> rumqttd::Config {
    let text = format!(
        r#"
id = 0
[router]
max_connections = 1000
max_outgoing_packet_count = 200
max_segment_size = 104857600
max_segment_count = 10
[v4.1]
name = "v4-1"
listen = "127.0.0.1:{port}"
next_connection_delay_ms = 1
[v4.1.connections]
connection_timeout_ms = 60000
max_payload_size = 20971520
max_inflight_count = 100
dynamic_filters = true
"#
    );
    toml::from_str(&text).expect("rumqttd test config")
}

/// rumqttd running in this test process on an ephemeral port; it lives until the process exits.
pub fn rumqttd_in_process() -> u16 {
    let port = free_port();
    std::thread::Builder::new()
        .name("rumqttd".into())
        .spawn(move || {
            let mut broker = rumqttd::Broker::new(rumqttd_config(port));
            if let Err(e) = broker.start() {
                eprintln!("in-process rumqttd on {port}: {e}");
            }
        })
        .expect("broker thread");
    assert!(
        wait_until(Duration::from_secs(10), || reachable(port)),
        "in-process rumqttd did not listen on {port}"
    );
    port
}

/// The machine's Mosquitto on 127.0.0.1:1883 (`scripts/test` starts one if none runs).
pub fn system_mosquitto() -> u16 {
    assert!(
        reachable(1883),
        "no MQTT broker on 127.0.0.1:1883: these tests need Mosquitto there (scripts/test starts it)"
    );
    1883
}

/// Which broker a test runs against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BrokerKind {
    Rumqttd,
    Mosquitto,
}

/// A broker in its own process, which a test may kill and start again on the same port.
pub struct BrokerProcess {
    kind: BrokerKind,
    port: u16,
    /// Extra lines for Mosquitto's config (authentication, ACL).
    extra_conf: String,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl BrokerProcess {
    pub fn start(kind: BrokerKind, port: u16) -> Self {
        Self::start_with(kind, port, "")
    }

    /// Mosquitto with `extra_conf` appended to its configuration (e.g. `password_file`, `acl_file`).
    pub fn start_with(kind: BrokerKind, port: u16, extra_conf: &str) -> Self {
        let mut b = BrokerProcess {
            kind,
            port,
            extra_conf: extra_conf.to_string(),
            dir: tempfile::tempdir().expect("broker dir"),
            child: None,
        };
        b.restart();
        b
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Stops the broker abruptly (SIGKILL), as a crash or a cut link would.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Stops the broker as a service manager would (SIGTERM) and waits: Mosquitto writes its persistent
    /// sessions and queued messages out first.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .status();
            if !wait_until(Duration::from_secs(20), || {
                matches!(c.try_wait(), Ok(Some(_)))
            }) {
                let _ = c.kill();
            }
            let _ = c.wait();
        }
    }

    pub fn restart(&mut self) {
        self.kill();
        let child = match self.kind {
            BrokerKind::Rumqttd => Command::new(workspace_bin("checkpoint-test-broker"))
                .arg(self.port.to_string())
                .stdout(Stdio::null())
                .spawn()
                .expect("start checkpoint-test-broker"),
            BrokerKind::Mosquitto => {
                let conf = self.dir.path().join("mosquitto.conf");
                std::fs::write(
                    &conf,
                    format!(
                        // Started as root, Mosquitto switches to its own user unless told to stay, and then
                        // cannot read files in this process's private temporary folders.
                        "listener {} 127.0.0.1\npersistence false\nmax_packet_size 20971520\nuser {}\n{}\n",
                        self.port,
                        current_user(),
                        if self.extra_conf.is_empty() {
                            "allow_anonymous true"
                        } else {
                            self.extra_conf.as_str()
                        }
                    ),
                )
                .expect("mosquitto config");
                Command::new(mosquitto_binary())
                    .arg("-c")
                    .arg(&conf)
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .expect("start mosquitto")
            }
        };
        self.child = Some(child);
        let port = self.port;
        assert!(
            wait_until(Duration::from_secs(10), || reachable(port)),
            "{:?} did not start on {port}",
            self.kind
        );
    }
}

impl Drop for BrokerProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

fn current_user() -> String {
    Command::new("id")
        .arg("-un")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| "root".into())
}

fn mosquitto_binary() -> &'static Path {
    for p in ["/usr/sbin/mosquitto", "/usr/bin/mosquitto"] {
        if Path::new(p).is_file() {
            return Path::new(p);
        }
    }
    panic!("mosquitto is not installed (scripts/setup installs it)")
}

/// Everything published under `checkpoint/<site>/#`, parsed as events where it parses.
#[derive(Clone, Default)]
pub struct Collector {
    events: Arc<Mutex<Vec<Envelope>>>,
}

impl Collector {
    /// Subscribes (again after every reconnect) in a background thread.
    pub fn start(port: u16, site: &str) -> Self {
        let c = Collector::default();
        let sink = c.events.clone();
        let filter = format!("checkpoint/{site}/#");
        let client_id = format!("collector-{site}");
        std::thread::spawn(move || {
            let mut opts = rumqttc::MqttOptions::new(client_id, "127.0.0.1", port);
            opts.set_keep_alive(Duration::from_secs(5));
            opts.set_max_packet_size(32 << 20, 32 << 20);
            let (client, mut conn) = rumqttc::Client::new(opts, 100);
            for ev in conn.iter() {
                match ev {
                    Ok(rumqttc::Event::Incoming(rumqttc::Packet::ConnAck(_))) => {
                        let _ = client.try_subscribe(filter.clone(), rumqttc::QoS::AtLeastOnce);
                    }
                    Ok(rumqttc::Event::Incoming(rumqttc::Packet::Publish(p))) => {
                        if let Ok(env) = Envelope::from_json(&p.payload) {
                            sink.lock().unwrap_or_else(|e| e.into_inner()).push(env);
                        }
                    }
                    Ok(_) => {}
                    Err(_) => std::thread::sleep(Duration::from_millis(50)),
                }
            }
        });
        c
    }

    pub fn events(&self) -> Vec<Envelope> {
        self.events
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Waits until every event in `produced` has arrived (by id).
    pub fn wait_for_all(&self, produced: &[Envelope], timeout: Duration) -> bool {
        wait_until(timeout, || {
            let have: std::collections::HashSet<_> = self.events().iter().map(|e| e.id).collect();
            produced.iter().all(|e| have.contains(&e.id))
        })
    }
}

/// Publishes `payloads` to `topic` at QoS 1 and returns once the broker acknowledged every one.
pub fn publish_all(port: u16, topic: &str, payloads: Vec<Vec<u8>>) {
    publish_all_as(port, None, topic, payloads)
}

/// As [`publish_all`], logged in as `login` (user, password).
pub fn publish_all_as(port: u16, login: Option<(&str, &str)>, topic: &str, payloads: Vec<Vec<u8>>) {
    let total = payloads.len();
    let mut opts = rumqttc::MqttOptions::new(unique_site("publisher"), "127.0.0.1", port);
    if let Some((user, password)) = login {
        opts.set_credentials(user, password);
    }
    opts.set_keep_alive(Duration::from_secs(5));
    opts.set_max_packet_size(32 << 20, 32 << 20);
    let (client, mut conn) = rumqttc::Client::new(opts, 1000);
    let topic = topic.to_string();
    let sender = std::thread::spawn(move || {
        for p in payloads {
            client
                .publish(topic.clone(), rumqttc::QoS::AtLeastOnce, false, p)
                .expect("queue publish");
        }
        client
    });
    let mut acked = 0;
    for ev in conn.iter() {
        match ev {
            Ok(rumqttc::Event::Incoming(rumqttc::Packet::PubAck(_))) => {
                acked += 1;
                if acked == total {
                    break;
                }
            }
            Ok(_) => {}
            Err(e) => panic!("publishing to 127.0.0.1:{port}: {e}"),
        }
    }
    let client = sender.join().expect("publisher thread");
    let _ = client.disconnect();
}
