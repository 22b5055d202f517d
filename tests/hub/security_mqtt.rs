//! Issue 12's broker findings, tried as an attacker would against the real hub and its own broker (Mosquitto
//! run by the hub), and against an external Mosquitto (with the hub's files, and without any ACL):
//!
//! 1. a login that takes the hub's client id must not take its event feed;
//! 2. a forged (unsigned, or replayed) watchlist sync must not blind an agent;
//! 3. an agent reporting an impossible watchlist version must not freeze everyone's list;
//! 4. no anonymous client; an agent reads only its own watchlist and publishes only as itself; events from
//!    unregistered agents are refused.
//!
//! Each test fails on the code before the fix (anonymous logins were accepted, client ids were free, syncs
//! were unsigned, the hub renumbered its versions after any agent's report).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use checkpoint_e2e::hub::{AgentLogin, Hub};
use checkpoint_e2e::mqtt::{free_port, publish_all_as, system_mosquitto, unique_site};
use checkpoint_e2e::{pattern_agent_config, wait_until, Agent, AgentExtra};
use checkpoint_protocol::presence::{HubPresence, HUB_PRESENCE_TOPIC};
use checkpoint_protocol::{Count, Envelope, EventKind, WatchlistStatus};

/// Messages a probe received: (topic, payload).
type Received = Arc<Mutex<Vec<(String, Vec<u8>)>>>;

/// A raw MQTT client, as an attacker would run one: what it receives, and whether the broker let it in.
struct Probe {
    client: rumqttc::Client,
    got: Received,
    connected: Arc<Mutex<Option<Result<(), String>>>>,
}

impl Probe {
    fn connect(port: u16, login: Option<(&str, &str)>, client_id: &str) -> Probe {
        let mut opts = rumqttc::MqttOptions::new(client_id, "127.0.0.1", port);
        if let Some((u, p)) = login {
            opts.set_credentials(u, p);
        }
        opts.set_keep_alive(Duration::from_secs(5));
        opts.set_max_packet_size(32 << 20, 32 << 20);
        let (client, mut conn) = rumqttc::Client::new(opts, 100);
        let got: Received = Default::default();
        let connected = Arc::new(Mutex::new(None));
        let (g, c) = (got.clone(), connected.clone());
        std::thread::spawn(move || {
            for ev in conn.iter() {
                match ev {
                    Ok(rumqttc::Event::Incoming(rumqttc::Packet::ConnAck(_))) => {
                        *c.lock().unwrap() = Some(Ok(()))
                    }
                    Ok(rumqttc::Event::Incoming(rumqttc::Packet::Publish(p))) => g
                        .lock()
                        .unwrap()
                        .push((p.topic.clone(), p.payload.to_vec())),
                    Ok(_) => {}
                    // Refused at connect, or dropped later: either way the session is over.
                    Err(e) => {
                        *c.lock().unwrap() = Some(Err(e.to_string()));
                        return;
                    }
                }
            }
        });
        assert!(
            wait_until(Duration::from_secs(10), || connected
                .lock()
                .unwrap()
                .is_some()),
            "no answer from the broker"
        );
        Probe {
            client,
            got,
            connected,
        }
    }

    fn accepted(&self) -> bool {
        matches!(*self.connected.lock().unwrap(), Some(Ok(())))
    }

    fn received(&self) -> Vec<(String, Vec<u8>)> {
        self.got.lock().unwrap().clone()
    }
}

/// Waits until the hub's broker takes `login` (it re-reads the accounts every few seconds).
fn await_login(port: u16, login: &AgentLogin) {
    assert!(
        wait_until(Duration::from_secs(20), || Probe::connect(
            port,
            login.creds(),
            &unique_site("login-check")
        )
        .accepted()),
        "the hub's broker never took {}",
        login.username
    );
}

pub(crate) fn count_event(site: &str, agent: &str, entries: u64) -> Envelope {
    let now = time::OffsetDateTime::now_utc();
    Envelope::new(
        site,
        agent,
        now,
        EventKind::Count(Count {
            camera: "cam".into(),
            line: "gate".into(),
            interval_start: now - time::Duration::seconds(5),
            interval_end: now,
            entries,
            exits: 0,
            total_entries: entries,
            total_exits: 0,
            occupancy: entries as i64,
        }),
    )
}

fn publish_event(port: u16, login: &AgentLogin, env: &Envelope) {
    publish_all_as(
        port,
        login.creds(),
        &checkpoint_protocol::topic(&env.site, &env.agent, env.kind()),
        vec![env.to_json().into_bytes()],
    );
}

/// Events the hub stored, by outcome, from its metrics.
fn ingested(hub: &Hub) -> f64 {
    let (_, m) = hub.get("/metrics", None);
    m.lines()
        .filter(|l| l.starts_with("checkpoint_hub_events_total{") && l.contains("outcome=\"new\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn rejected(hub: &Hub, reason: &str) -> f64 {
    let (_, m) = hub.get("/metrics", None);
    checkpoint_e2e::metric(
        &m,
        &format!("checkpoint_hub_events_rejected_total{{reason=\"{reason}\"}}"),
    )
    .unwrap_or(0.0)
}

fn hub_with_own_broker(dir: &std::path::Path) -> (Hub, u16) {
    let port = free_port();
    let db = format!("sqlite://{}?mode=rwc", dir.join("hub.db").display());
    let hub = Hub::start(
        dir,
        &format!("[mqtt]\nembedded = true\nlisten = \"127.0.0.1:{port}\""),
        &db,
    );
    (hub, port)
}

/// Findings 1 and 4 on the hub's own broker.
#[test]
fn the_hubs_broker_confines_every_login_to_its_own_topics() {
    let dir = tempfile::tempdir().unwrap();
    let (hub, port) = hub_with_own_broker(dir.path());
    let a1 = hub.agent_login("pier", "a1");
    let a2 = hub.agent_login("pier", "a2");
    let other_site = hub.agent_login("dock", "b1");
    for login in [&a1, &a2, &other_site] {
        await_login(port, login);
    }

    // Anonymous clients are refused, whatever client id they pick; so are wrong passwords.
    for id in ["checkpoint-hub", "anything"] {
        assert!(
            !Probe::connect(port, None, id).accepted(),
            "anonymous as {id}"
        );
    }
    assert!(!Probe::connect(port, Some(("pier.a1", "wrong")), "x").accepted());

    // An agent's login taking the hub's client id and subscribing to everything gets nothing, and the hub
    // keeps its feed.
    let intruder = Probe::connect(port, a1.creds(), "checkpoint-hub");
    assert!(intruder.accepted());
    for filter in ["#", "checkpoint/#", "checkpoint/pier/a2/#", "$SYS/#"] {
        intruder
            .client
            .subscribe(filter, rumqttc::QoS::AtLeastOnce)
            .unwrap();
    }
    std::thread::sleep(Duration::from_millis(500));
    let before = ingested(&hub);
    publish_event(port, &a2, &count_event("pier", "a2", 3));
    publish_event(port, &other_site, &count_event("dock", "b1", 4));
    assert!(
        wait_until(Duration::from_secs(20), || ingested(&hub) >= before + 2.0),
        "the hub still receives every agent's events; log:\n{}",
        hub.log_text()
    );
    std::thread::sleep(Duration::from_secs(1));
    // Every agent may read the hubs' presence (protocol 1.4); nothing else.
    let leaked: Vec<String> = intruder
        .received()
        .into_iter()
        .map(|(t, _)| t)
        .filter(|t| t != HUB_PRESENCE_TOPIC)
        .collect();
    assert!(leaked.is_empty(), "the intruder read {leaked:?}");

    // Publishing as another agent, or as an agent nobody registered: the broker drops it, the hub never sees it.
    let before = ingested(&hub);
    publish_event(port, &a1, &count_event("pier", "a2", 5));
    publish_event(port, &a1, &count_event("pier", "new-agent", 6));
    // A retained, forged sync onto another agent's (and its own) sync topic.
    for target in ["a2", "a1"] {
        let _ = intruder.client.publish(
            checkpoint_protocol::watchlist_sync_topic("pier", target),
            rumqttc::QoS::AtLeastOnce,
            true,
            br#"{"type":"full","version":18446744073709551615,"entries":[],"thresholds":{"wanted":1.0,"missing":1.0}}"#.to_vec(),
        );
    }
    // Its own events still go through.
    publish_event(port, &a1, &count_event("pier", "a1", 7));
    assert!(wait_until(Duration::from_secs(20), || ingested(&hub) >= before + 1.0));
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(ingested(&hub), before + 1.0, "only pier/a1's own event");
    let watcher = Probe::connect(port, a2.creds(), "a2");
    watcher
        .client
        .subscribe("checkpoint/pier/a2/watchlist/#", rumqttc::QoS::AtLeastOnce)
        .unwrap();
    std::thread::sleep(Duration::from_secs(1));
    assert!(
        watcher.received().is_empty(),
        "no retained forgery reached pier/a2: {:?}",
        watcher.received()
    );

    // The hubs' presence (protocol 1.4): every agent reads the hub's, and no agent can forge one.
    let listener = Probe::connect(port, other_site.creds(), "presence-listener");
    listener
        .client
        .subscribe(HUB_PRESENCE_TOPIC, rumqttc::QoS::AtMostOnce)
        .unwrap();
    let presences = || {
        listener
            .received()
            .into_iter()
            .filter(|(t, _)| t == HUB_PRESENCE_TOPIC)
            .map(|(_, p)| HubPresence::parse(&p).map(|h| h.hub))
            .collect::<Vec<_>>()
    };
    for _ in 0..5 {
        let _ = intruder.client.publish(
            HUB_PRESENCE_TOPIC,
            rumqttc::QoS::AtLeastOnce,
            false,
            HubPresence::new("forged").to_bytes(),
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    assert!(
        wait_until(Duration::from_secs(10), || presences().len() >= 2),
        "no presence from the hub reached an agent: {:?}",
        listener.received()
    );
    let heard = presences();
    assert!(
        heard
            .iter()
            .all(|h| h.as_deref().is_some_and(|h| h != "forged")),
        "an agent's forged presence got through, or a hub's was malformed: {heard:?}"
    );

    // Deactivating an account shuts it out of the broker within seconds: a connected session is dropped and a
    // new login refused (finding 16's broker half).
    let out = hub.cli(
        &["agent", "deactivate", "--site", "pier", "--agent", "a2"],
        "",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        wait_until(Duration::from_secs(20), || !Probe::connect(
            port,
            a2.creds(),
            &unique_site("after")
        )
        .accepted()),
        "a deactivated agent still logs in; hub log:\n{}",
        hub.log_text()
    );
    assert!(
        wait_until(Duration::from_secs(10), || matches!(
            *watcher.connected.lock().unwrap(),
            Some(Err(_))
        )),
        "the deactivated agent's open session was not dropped"
    );
}

/// Finding 4 (ingest side): behind a broker without any ACL (the machine's anonymous Mosquitto), the hub
/// still refuses events of agents it has no account for, counts them, and range-checks what it stores
/// (finding 9).
#[test]
fn ingest_trusts_only_registered_agents_and_sane_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let port = system_mosquitto();
    let site = unique_site("sec");
    let db = format!("sqlite://{}?mode=rwc", dir.path().join("hub.db").display());
    let hub = Hub::start(
        dir.path(),
        &format!(
            "[mqtt]\nembedded = false\nhost = \"127.0.0.1\"\nport = {port}\nclient_id = \"{}\"",
            unique_site("hub")
        ),
        &db,
    );
    let a1 = hub.agent_login(&site, "a1");
    // Ingest re-reads the accounts every 3 s; other tests' events on this shared broker may have made it read
    // the (then empty) list just before.
    std::thread::sleep(Duration::from_secs(4));
    let before = ingested(&hub);
    publish_event(port, &a1, &count_event(&site, "a1", 2));
    publish_event(port, &a1, &count_event(&site, "ghost", 2));
    publish_event(port, &a1, &count_event(&site, "a1", i64::MAX as u64));
    publish_event(port, &a1, &count_event(&site, "a1", u64::MAX));
    assert!(
        wait_until(Duration::from_secs(20), || rejected(&hub, "unknown_agent")
            >= 1.0
            && rejected(&hub, "out_of_range") >= 2.0),
        "refusals counted; log:\n{}",
        hub.log_text()
    );
    assert_eq!(ingested(&hub), before + 1.0);
    let admin = hub.bootstrap_admin();
    let (status, body) = hub.get(
        &format!("/api/sites/{site}/counts?bucket=day"),
        Some(&admin),
    );
    assert_eq!(status, 200, "{body}");
    assert!(
        !body.contains("-1") && body.contains("\"entries\":2"),
        "{body}"
    );
}

/// Finding 3: an agent reporting version 9223372036854775806 (or a far-future one) does not move the hub's
/// numbering; the status API tells the truth; new entries still reach everyone else.
#[test]
fn an_impossible_reported_version_freezes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (hub, port) = hub_with_own_broker(dir.path());
    let liar = hub.agent_login("pier", "liar");
    await_login(port, &liar);
    let status = |version: u64| {
        Envelope::new(
            "pier",
            "liar",
            time::OffsetDateTime::now_utc(),
            EventKind::WatchlistStatus(WatchlistStatus {
                version,
                wanted: 0,
                missing: 0,
                templates: 0,
                needs_full_sync: false,
                last_error: None,
                rejected: 0,
                expired: vec![],
            }),
        )
    };
    let online = Envelope::new(
        "pier",
        "liar",
        time::OffsetDateTime::now_utc(),
        EventKind::AgentStatus(checkpoint_protocol::AgentStatus {
            state: checkpoint_protocol::AgentState::Online,
            version: "attacker".into(),
            cameras: vec![],
        }),
    );
    publish_event(port, &liar, &online);
    publish_event(port, &liar, &status(9_223_372_036_854_775_806));
    // Ten years ahead: inside the protocol's range, but no hub could have issued it yet.
    let future =
        (time::OffsetDateTime::now_utc().unix_timestamp() as u64 + 10 * 365 * 86_400) * 1000;
    publish_event(port, &liar, &status(future));
    assert!(
        wait_until(Duration::from_secs(20), || rejected(&hub, "out_of_range")
            >= 1.0),
        "{}",
        hub.log_text()
    );
    let admin = hub.bootstrap_admin();
    let [sup] = hub
        .add_users(&admin, &[("sup1", "supervisor")])
        .try_into()
        .unwrap();
    let agent_row = || -> serde_json::Value {
        let (_, body) = hub.get("/api/watchlists/status", Some(&sup));
        let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
        let row = v["agents"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|a| a["agent"] == "liar")
            .cloned()
            .unwrap_or_default();
        serde_json::json!({"row": row, "version": v["version"]})
    };
    assert!(
        wait_until(Duration::from_secs(20), || agent_row()["row"]
            ["held_version"]
            .as_u64()
            == Some(future)),
        "{}",
        agent_row()
    );
    // Give the pusher a few rounds: the hub must not renumber above the lie.
    std::thread::sleep(Duration::from_secs(12));
    let now_ms = time::OffsetDateTime::now_utc().unix_timestamp() as u64 * 1000;
    let s = agent_row();
    assert_eq!(s["row"]["in_sync"], false, "{s}");
    assert!(
        s["version"].as_u64().unwrap_or(0) < now_ms + 86_400_000,
        "the hub's version followed the lie: {s}"
    );
    assert!(
        hub.log_text().contains("could not have issued"),
        "{}",
        hub.log_text()
    );
}

/// Finding 2 end to end, on a broker with no ACL at all (anyone may publish anywhere): an attacker's
/// retained forged sync is refused by the agent, which stays on the hub's list and keeps taking its updates.
#[test]
fn a_forged_retained_sync_does_not_blind_an_agent() {
    let dir = tempfile::tempdir().unwrap();
    let port = system_mosquitto();
    let site = unique_site("forge");
    let db = format!("sqlite://{}?mode=rwc", dir.path().join("hub.db").display());
    let hub = Hub::start(
        dir.path(),
        &format!(
            "[mqtt]\nembedded = false\nhost = \"127.0.0.1\"\nport = {port}\nclient_id = \"{}\"",
            unique_site("hub")
        ),
        &db,
    );
    let login = hub.agent_login(&site, "a1");
    let adir = tempfile::tempdir().unwrap();
    let config = pattern_agent_config(
        adir.path(),
        &site,
        "a1",
        port,
        AgentExtra {
            agent: "status_interval_s = 1",
            metrics_listen: "127.0.0.1:0",
            ..Default::default()
        },
    );
    login.provision(&config);
    // Matching needs embeddings; this agent only holds and reports its list.
    checkpoint_e2e::edit_agent_config(&config, "watchlist", "enabled = true");
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("embed_faces = false", "embed_faces = true");
    std::fs::write(&config, text).unwrap();

    let admin = hub.bootstrap_admin();
    let [sup] = hub
        .add_users(&admin, &[("sup1", "supervisor")])
        .try_into()
        .unwrap();
    let in_sync = |hub: &Hub| {
        let (_, body) = hub.get("/api/watchlists/status", Some(&sup));
        let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
        v["agents"].as_array().is_some_and(|a| {
            a.iter().any(|x| {
                x["site"] == site.as_str()
                    && x["in_sync"] == true
                    && x["held_version"].as_u64() > Some(0)
            })
        })
    };
    // The attacker got there first: a retained forgery waits on the agent's sync topic.
    let forged = br#"{"type":"full","version":18446744073709551615,"entries":[],"thresholds":{"wanted":1.0,"missing":1.0}}"#;
    let attacker = Probe::connect(port, None, &unique_site("attacker"));
    attacker
        .client
        .publish(
            checkpoint_protocol::watchlist_sync_topic(&site, "a1"),
            rumqttc::QoS::AtLeastOnce,
            true,
            forged.to_vec(),
        )
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));

    let mut agent = Agent::start(&config, adir.path());
    // A policy change makes a revision, so the hub has a version above 0 to send.
    let (st, body) = hub.request(
        "PUT",
        "/api/watchlists/policies/wanted",
        Some(&admin),
        Some(r#"{"target_fpir":0.001,"max_fnir":0.1}"#),
    );
    assert!(st == 200 || st == 204, "{st} {body}");
    assert!(
        wait_until(Duration::from_secs(60), || in_sync(&hub)),
        "the agent took the hub's signed sync despite the forgery; agent log:\n{}",
        agent.log_text()
    );
    let addr = agent.metrics_addr().expect("metrics address");
    let m = checkpoint_e2e::http_get(&addr, "/metrics").unwrap();
    assert_eq!(
        checkpoint_e2e::metric(
            &m,
            "checkpoint_watchlist_sync_messages_total{outcome=\"unsigned\"}"
        ),
        Some(1.0),
        "{m}"
    );
    // A later change still reaches it.
    let (st, _) = hub.request(
        "PUT",
        "/api/watchlists/policies/wanted",
        Some(&admin),
        Some(r#"{"target_fpir":0.0005,"max_fnir":0.1}"#),
    );
    assert!(st == 200 || st == 204);
    let (_, body) = hub.get("/api/watchlists/status", Some(&sup));
    let target: u64 = serde_json::from_str::<serde_json::Value>(&body).unwrap()["version"]
        .as_u64()
        .unwrap();
    assert!(
        wait_until(Duration::from_secs(60), || {
            let (_, body) = hub.get("/api/watchlists/status", Some(&sup));
            body.contains(&format!("\"held_version\":{target}"))
        }),
        "{}",
        agent.log_text()
    );
    // Clean the retained forgery off the shared broker.
    let _ = attacker.client.publish(
        checkpoint_protocol::watchlist_sync_topic(&site, "a1"),
        rumqttc::QoS::AtLeastOnce,
        true,
        Vec::new(),
    );
    std::thread::sleep(Duration::from_millis(300));
    agent.interrupt();
    assert!(agent.wait(Duration::from_secs(30)).success());
}
