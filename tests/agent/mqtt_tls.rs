//! MQTT over TLS with an external Mosquitto, the way a site broker reachable from the network is run: the
//! broker holds a certificate from the site's own CA; the agent and the hub verify it against that CA
//! (`[mqtt] tls = true`, `ca_file`). Events from the agent reach the hub over the encrypted links. An agent
//! given a different CA refuses the broker, and its events wait in its outbox instead of being lost.

use std::path::{Path, PathBuf};
use std::time::Duration;

use checkpoint_e2e::hub::Hub;
use checkpoint_e2e::mqtt::{free_port, BrokerKind, BrokerProcess, Collector};
use checkpoint_e2e::{metric, pattern_agent_config, wait_until, Agent, AgentExtra};
use openssl::asn1::Asn1Time;
use openssl::bn::{BigNum, MsbOption};
use openssl::ec::{EcGroup, EcKey};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::x509::extension::{
    BasicConstraints, ExtendedKeyUsage, KeyUsage, SubjectAlternativeName,
};
use openssl::x509::{X509Name, X509};

fn key() -> PKey<Private> {
    let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap();
    PKey::from_ec_key(EcKey::generate(&group).unwrap()).unwrap()
}

fn name(cn: &str) -> X509Name {
    let mut n = X509Name::builder().unwrap();
    n.append_entry_by_nid(Nid::COMMONNAME, cn).unwrap();
    n.build()
}

/// A certificate for `subject_key`, signed by `issuer` (self-signed when `None`).
fn certificate(
    cn: &str,
    subject_key: &PKey<Private>,
    issuer: Option<(&X509, &PKey<Private>)>,
) -> X509 {
    let mut b = X509::builder().unwrap();
    b.set_version(2).unwrap();
    let mut serial = BigNum::new().unwrap();
    serial.rand(64, MsbOption::MAYBE_ZERO, false).unwrap();
    b.set_serial_number(&serial.to_asn1_integer().unwrap())
        .unwrap();
    b.set_subject_name(&name(cn)).unwrap();
    b.set_pubkey(subject_key).unwrap();
    b.set_not_before(&Asn1Time::days_from_now(0).unwrap())
        .unwrap();
    b.set_not_after(&Asn1Time::days_from_now(30).unwrap())
        .unwrap();
    match issuer {
        None => {
            b.set_issuer_name(&name(cn)).unwrap();
            b.append_extension(BasicConstraints::new().critical().ca().build().unwrap())
                .unwrap();
            b.append_extension(
                KeyUsage::new()
                    .critical()
                    .key_cert_sign()
                    .crl_sign()
                    .build()
                    .unwrap(),
            )
            .unwrap();
            b.sign(subject_key, MessageDigest::sha256()).unwrap();
        }
        Some((ca, ca_key)) => {
            b.set_issuer_name(ca.subject_name()).unwrap();
            b.append_extension(BasicConstraints::new().build().unwrap())
                .unwrap();
            b.append_extension(
                KeyUsage::new()
                    .critical()
                    .digital_signature()
                    .key_agreement()
                    .build()
                    .unwrap(),
            )
            .unwrap();
            b.append_extension(ExtendedKeyUsage::new().server_auth().build().unwrap())
                .unwrap();
            let san = SubjectAlternativeName::new()
                .ip("127.0.0.1")
                .dns("localhost")
                .build(&b.x509v3_context(Some(ca), None))
                .unwrap();
            b.append_extension(san).unwrap();
            b.sign(ca_key, MessageDigest::sha256()).unwrap();
        }
    }
    b.build()
}

struct Pki {
    ca: PathBuf,
    other_ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

/// The site CA, the broker's certificate for 127.0.0.1 signed by it, and an unrelated CA.
fn pki(dir: &Path) -> Pki {
    let ca_key = key();
    let ca = certificate("Checkpoint test site CA", &ca_key, None);
    let broker_key = key();
    let broker = certificate("127.0.0.1", &broker_key, Some((&ca, &ca_key)));
    let other = certificate("Some other CA", &key(), None);
    let p = Pki {
        ca: dir.join("ca.pem"),
        other_ca: dir.join("other-ca.pem"),
        cert: dir.join("broker.pem"),
        key: dir.join("broker.key"),
    };
    std::fs::write(&p.ca, ca.to_pem().unwrap()).unwrap();
    std::fs::write(&p.other_ca, other.to_pem().unwrap()).unwrap();
    std::fs::write(&p.cert, broker.to_pem().unwrap()).unwrap();
    std::fs::write(&p.key, broker_key.private_key_to_pem_pkcs8().unwrap()).unwrap();
    p
}

fn agent_config(dir: &Path, site: &str, port: u16, ca: &Path) -> PathBuf {
    let mqtt = format!("tls = true\nca_file = \"{}\"", ca.display());
    let extra = AgentExtra {
        metrics_listen: "127.0.0.1:0",
        mqtt: &mqtt,
        ..Default::default()
    };
    pattern_agent_config(dir, site, "a1", port, extra)
}

#[test]
fn agent_and_hub_reach_each_other_over_tls_and_a_foreign_certificate_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let pki = pki(dir.path());
    let (tls_port, plain_port) = (free_port(), free_port());
    // The TLS listener is the one the test harness starts; a plain loopback listener beside it lets the test
    // watch what the broker carries.
    let _broker = BrokerProcess::start_with(
        BrokerKind::Mosquitto,
        tls_port,
        &format!(
            "cafile {}\ncertfile {}\nkeyfile {}\nallow_anonymous true\nlistener {plain_port} 127.0.0.1\n",
            pki.ca.display(),
            pki.cert.display(),
            pki.key.display()
        ),
    );
    let site = checkpoint_e2e::mqtt::unique_site("tls");

    let db = format!("sqlite://{}?mode=rwc", dir.path().join("hub.db").display());
    let hub = Hub::start(
        dir.path(),
        &format!(
            "[mqtt]\nembedded = false\nhost = \"127.0.0.1\"\nport = {tls_port}\ntls = true\n\
             ca_file = \"{}\"\nclient_id = \"hub-tls-test\"",
            pki.ca.display()
        ),
        &db,
    );
    let admin = hub.bootstrap_admin();
    let [op] = hub
        .add_users(&admin, &[("op1", "operator")])
        .try_into()
        .unwrap();

    let adir = tempfile::tempdir().unwrap();
    let mut agent = Agent::start(
        &agent_config(adir.path(), &site, tls_port, &pki.ca),
        adir.path(),
    );
    let online = wait_until(Duration::from_secs(60), || {
        let (_, body) = hub.get("/api/agents", Some(&op));
        body.contains(&format!("\"site\":\"{site}\"")) && body.contains("\"state\":\"online\"")
    });
    assert!(
        online,
        "the agent reached the hub over TLS; hub log:\n{}\nagent log:\n{}",
        hub.log_text(),
        agent.log_text()
    );
    assert!(
        wait_until(Duration::from_secs(30), || {
            let (_, body) = hub.get(&format!("/api/sites/{site}/counts"), Some(&op));
            body.contains("\"camera\":\"cam\",\"line\":\"gate\"")
        }),
        "the agent's counts are stored at the hub; hub log:\n{}",
        hub.log_text()
    );
    agent.interrupt();
    assert!(agent.wait(Duration::from_secs(30)).success());

    // The same broker seen through a CA that did not sign its certificate: the agent must not talk to it.
    let bdir = tempfile::tempdir().unwrap();
    let other_site = checkpoint_e2e::mqtt::unique_site("tls-foreign");
    let other_watch = Collector::start(plain_port, &other_site);
    let mut agent = Agent::start(
        &agent_config(bdir.path(), &other_site, tls_port, &pki.other_ca),
        bdir.path(),
    );
    assert!(
        wait_until(Duration::from_secs(30), || agent.metrics_addr().is_some()),
        "{}",
        agent.log_text()
    );
    let metrics = agent.metrics_addr().unwrap_or_default();
    // Events pile up, and the refused handshake has been counted: on a loaded machine the first attempt can
    // come after the third event.
    let piled_up = wait_until(Duration::from_secs(30), || {
        checkpoint_e2e::http_get(&metrics, "/metrics")
            .ok()
            .is_some_and(|t| {
                metric(&t, "checkpoint_outbox_pending").is_some_and(|n| n >= 3.0)
                    && metric(&t, "checkpoint_mqtt_connection_errors_total")
                        .is_some_and(|n| n >= 1.0)
            })
    });
    let text = checkpoint_e2e::http_get(&metrics, "/metrics").unwrap_or_default();
    assert!(
        piled_up,
        "events wait in the outbox while the broker is not trusted; metrics:\n{text}\nlog:\n{}",
        agent.log_text()
    );
    assert!(
        other_watch.events().is_empty(),
        "an agent that does not trust the broker sent events through it: {:?}",
        other_watch.events()
    );
    assert_eq!(
        metric(&text, "checkpoint_mqtt_connected"),
        Some(0.0),
        "{text}"
    );
    assert!(
        metric(&text, "checkpoint_mqtt_connection_errors_total").is_some_and(|n| n >= 1.0),
        "{text}"
    );
    // The operator is told why, once, not at every retry.
    let log = agent.log_text();
    assert!(
        log.contains("MQTT broker unreachable") && log.contains("certificate"),
        "the refused certificate is named in the log:\n{log}"
    );
    agent.kill_9();
}
