//! Agents' own broker credentials with an external Mosquitto: the hub creates each agent's account, writes
//! Mosquitto's password and ACL files and the settings that make them hold (`broker-files`), and then an agent
//! with its credentials reaches the hub, a wrong password is refused by the broker, and an agent that tries to
//! publish as another agent is stopped by the broker's ACL before the hub ever sees it. The hub's own broker
//! takes the same accounts, and nothing else.

use std::time::Duration;

use checkpoint_e2e::hub::Hub;
use checkpoint_e2e::mqtt::{free_port, BrokerKind, BrokerProcess};
use checkpoint_e2e::{pattern_agent_config, wait_until, Agent, AgentExtra};
use checkpoint_protocol::{AgentState, AgentStatus, Envelope, EventKind};

fn credentials(out: &std::process::Output) -> (String, String) {
    let text = String::from_utf8_lossy(&out.stdout);
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.trim().to_string())
            .unwrap_or_else(|| panic!("no {name} in: {text}"))
    };
    (field("username "), field("password "))
}

/// Publishes one message with credentials; Ok(()) once the broker acknowledged it, Err on a refused login.
fn publish_as(
    port: u16,
    user: &str,
    password: &str,
    topic: &str,
    payload: Vec<u8>,
) -> Result<(), String> {
    publish_with(port, Some((user, password)), topic, payload)
}

fn publish_with(
    port: u16,
    login: Option<(&str, &str)>,
    topic: &str,
    payload: Vec<u8>,
) -> Result<(), String> {
    let mut opts =
        rumqttc::MqttOptions::new(format!("probe-{}", std::process::id()), "127.0.0.1", port);
    if let Some((user, password)) = login {
        opts.set_credentials(user, password);
    }
    opts.set_keep_alive(Duration::from_secs(5));
    let (client, mut conn) = rumqttc::Client::new(opts, 10);
    client
        .publish(topic, rumqttc::QoS::AtLeastOnce, false, payload)
        .map_err(|e| e.to_string())?;
    for ev in conn.iter() {
        match ev {
            Ok(rumqttc::Event::Incoming(rumqttc::Packet::PubAck(_))) => {
                let _ = client.disconnect();
                return Ok(());
            }
            Ok(_) => {}
            Err(e) => return Err(e.to_string()),
        }
    }
    Err("connection closed".into())
}

#[test]
fn agents_use_their_own_credentials_and_publish_only_as_themselves() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let db = format!("sqlite://{}?mode=rwc", dir.path().join("hub.db").display());
    let mqtt = format!(
        "[mqtt]\nembedded = false\nhost = \"127.0.0.1\"\nport = {port}\nusername = \"checkpoint-hub\"\n\
         password = \"hub password 1\"\nclient_id = \"hub-acl-test\""
    );
    // The hub's command line works before the hub (and the broker) run: accounts first.
    std::fs::write(
        dir.path().join("hub.toml"),
        format!(
            "data_dir = \"{}\"\n{mqtt}\n[database]\nurl = \"{db}\"\n",
            dir.path().join("data").display()
        ),
    )
    .unwrap();
    let cli = |args: &[&str]| {
        std::process::Command::new(checkpoint_e2e::workspace_bin("central-hub"))
            .arg("--config")
            .arg(dir.path().join("hub.toml"))
            .args(args)
            .output()
            .unwrap()
    };
    let (a1_user, a1_pw) = credentials(&cli(&["agent", "add", "--site", "pier", "--agent", "a1"]));
    let (a2_user, _) = credentials(&cli(&["agent", "add", "--site", "pier", "--agent", "a2"]));
    assert_eq!((a1_user.as_str(), a2_user.as_str()), ("pier.a1", "pier.a2"));
    let files = dir.path().join("broker");
    let out = cli(&["broker-files", "--out", files.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let _broker = BrokerProcess::start_with(
        BrokerKind::Mosquitto,
        port,
        // Its lines go after the listener (see `central-hub broker-files`).
        &std::fs::read_to_string(files.join("checkpoint.conf")).unwrap(),
    );
    let hub = Hub::start(dir.path(), &mqtt, &db);
    let admin = hub.bootstrap_admin();
    let [op] = hub
        .add_users(&admin, &[("op1", "operator")])
        .try_into()
        .unwrap();

    // The agent with its own account reaches the hub.
    let adir = tempfile::tempdir().unwrap();
    std::fs::write(adir.path().join("mqtt.pass"), &a1_pw).unwrap();
    let mqtt = format!(
        "username = \"pier.a1\"\npassword_file = \"{}\"",
        adir.path().join("mqtt.pass").display()
    );
    let extra = AgentExtra {
        mqtt: &mqtt,
        ..Default::default()
    };
    let cfg = pattern_agent_config(adir.path(), "pier", "a1", port, extra);
    let key = central_hub_key(&cli(&["sync-key", "show"]));
    checkpoint_e2e::trust_hub_key(&cfg, &key);
    let mut agent = Agent::start(&cfg, adir.path());
    let online = wait_until(Duration::from_secs(60), || {
        let (_, body) = hub.get("/api/agents", Some(&op));
        body.contains("\"agent\":\"a1\"") && body.contains("\"state\":\"online\"")
    });
    assert!(
        online,
        "agent a1 online at the hub; hub log:\n{}\nagent log:\n{}",
        hub.log_text(),
        agent.log_text()
    );

    // A wrong password is refused by the broker.
    let payload = status_event("pier", "a2", "forged");
    assert!(
        publish_as(
            port,
            "pier.a1",
            "wrong password",
            "checkpoint/pier/a1/agent_status",
            payload.clone()
        )
        .is_err(),
        "a wrong password must be refused"
    );
    // a1's credentials cannot publish as a2: the broker acknowledges (MQTT 3.1.1) but drops it.
    publish_as(
        port,
        "pier.a1",
        &a1_pw,
        "checkpoint/pier/a2/agent_status",
        payload,
    )
    .unwrap();
    std::thread::sleep(Duration::from_secs(3));
    let (_, body) = hub.get("/api/agents", Some(&op));
    assert!(
        !body.contains("\"agent\":\"a2\""),
        "the forged event reached the hub: {body}"
    );
    agent.interrupt();
    assert!(agent.wait(Duration::from_secs(30)).success());
}

fn central_hub_key(out: &std::process::Output) -> String {
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find_map(|l| l.strip_prefix("current "))
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or_else(|| panic!("no current key in: {text}"))
        .to_string()
}

fn status_event(site: &str, agent: &str, version: &str) -> Vec<u8> {
    Envelope::new(
        site,
        agent,
        time::OffsetDateTime::now_utc(),
        EventKind::AgentStatus(AgentStatus {
            state: AgentState::Online,
            version: version.into(),
            cameras: vec![],
        }),
    )
    .to_json()
    .into_bytes()
}

#[test]
fn the_hubs_broker_takes_only_agent_accounts() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let db = format!("sqlite://{}?mode=rwc", dir.path().join("hub.db").display());
    let hub = Hub::start(
        dir.path(),
        &format!("[mqtt]\nlisten = \"127.0.0.1:{port}\"\nclient_id = \"hub-auth-test\""),
        &db,
    );
    let admin = hub.bootstrap_admin();
    let [op] = hub
        .add_users(&admin, &[("op1", "operator")])
        .try_into()
        .unwrap();
    let (user, pw) =
        credentials(&hub.cli(&["agent", "add", "--site", "pier", "--agent", "a1"], ""));
    let topic = "checkpoint/pier/a1/agent_status";

    assert!(
        publish_with(port, None, topic, status_event("pier", "a1", "anon")).is_err(),
        "an anonymous client must be refused"
    );
    assert!(
        publish_as(
            port,
            &user,
            "wrong password",
            topic,
            status_event("pier", "a1", "x")
        )
        .is_err(),
        "a wrong password must be refused"
    );
    assert!(
        publish_as(
            port,
            "op1",
            "password op1",
            topic,
            status_event("pier", "a1", "x")
        )
        .is_err(),
        "a web user's account is not a broker account"
    );
    // The agent's own account gets through (the hub's broker reloads its logins within seconds of `agent add`),
    // and the hub's ingest (which logs in with a password made at its start) stores the event.
    assert!(
        wait_until(Duration::from_secs(15), || publish_as(
            port,
            &user,
            &pw,
            topic,
            status_event("pier", "a1", "9.9.9")
        )
        .is_ok()),
        "the new agent account logs in; hub log:\n{}",
        hub.log_text()
    );
    let seen = wait_until(Duration::from_secs(30), || {
        let (_, body) = hub.get("/api/agents", Some(&op));
        body.contains("\"agent\":\"a1\"") && body.contains("9.9.9")
    });
    assert!(seen, "agent event stored; hub log:\n{}", hub.log_text());
    let (_, body) = hub.get("/api/agents", Some(&op));
    assert!(!body.contains("anon"), "{body}");
}
