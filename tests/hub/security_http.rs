//! The hub's HTTP side against a hostile network, end to end with the real `central-hub` binary: login
//! limits that concurrency cannot beat and an attacker cannot aim at an admin, refused logins summed in the
//! audit log, oversized bodies cut off, `/healthz` answering through a login burst, a private data
//! directory, slow request heads cut off, HTTPS, and agent accounts kept off the web API.

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use checkpoint_e2e::hub::{pg_schema, Hub};
use checkpoint_e2e::mqtt::free_port;
use checkpoint_e2e::wait_until;

fn mqtt() -> String {
    format!(
        "[mqtt]\nembedded = true\nlisten = \"127.0.0.1:{}\"",
        free_port()
    )
}

fn sqlite(dir: &Path) -> String {
    format!("sqlite://{}?mode=rwc", dir.join("data/hub.db").display())
}

/// A response as a client sees it.
struct Reply {
    status: u16,
    head: String,
    body: String,
}

impl Reply {
    fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

/// One request from the local address `from` (any of 127.0.0.0/8 reaches the hub on 127.0.0.1), the body
/// written on another thread so that a server that answers before reading it all is seen answering.
fn send_from(from: IpAddr, hub: &Hub, method: &str, path: &str, body: Vec<u8>) -> Reply {
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    sock.bind(&SocketAddr::new(from, 0).into()).unwrap();
    let to: SocketAddr = hub.http.parse().unwrap();
    sock.connect(&to.into()).unwrap();
    let mut s: TcpStream = sock.into();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n",
        hub.http,
        body.len()
    );
    let mut w = s.try_clone().unwrap();
    let writer = std::thread::spawn(move || {
        let _ = w.write_all(head.as_bytes());
        let _ = w.write_all(&body);
    });
    let mut buf = Vec::new();
    // A reset after the answer (the server closed with our body unread) still leaves the answer in `buf`.
    let _ = s.read_to_end(&mut buf);
    let _ = s.shutdown(std::net::Shutdown::Both);
    let _ = writer.join();
    let text = String::from_utf8_lossy(&buf).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    Reply {
        status: head
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0),
        head: head.to_string(),
        body: body.to_string(),
    }
}

fn login_from(from: &str, hub: &Hub, user: &str, password: &str) -> Reply {
    let body = serde_json::json!({ "username": user, "password": password }).to_string();
    send_from(
        from.parse().unwrap(),
        hub,
        "POST",
        "/api/auth/login",
        body.into_bytes(),
    )
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// Finding 5: 150 concurrent guesses used to be checked in full (the count was read before and written after
/// the hash), then the right password accepted. Now each attempt is counted before its check.
#[test]
fn concurrent_guesses_are_counted_before_the_password_is_checked() {
    let dir = tempfile::tempdir().unwrap();
    let hub = Hub::start(dir.path(), &mqtt(), &sqlite(dir.path()));
    let admin = hub.bootstrap_admin();
    hub.add_users(&admin, &[("op1", "operator")]);
    let hub = std::sync::Arc::new(hub);
    let guesses: Vec<_> = (0..60)
        .map(|i| {
            let hub = hub.clone();
            std::thread::spawn(move || {
                let pw = if i == 59 {
                    "password op1".to_string()
                } else {
                    format!("guess number {i}")
                };
                login_from("127.0.0.3", &hub, "op1", &pw)
            })
        })
        .collect();
    let replies: Vec<Reply> = guesses.into_iter().map(|g| g.join().unwrap()).collect();
    let checked = replies
        .iter()
        .filter(|r| r.status == 401 || r.status == 200)
        .count();
    let throttled: Vec<&Reply> = replies.iter().filter(|r| r.status == 429).collect();
    // 5 free failures, then waits of 1 s, 2 s, 4 s...: however slowly this machine runs the burst, a
    // minute of it lets at most 6 more through.
    assert!(
        checked <= 11,
        "{checked} of 60 concurrent guesses had their password checked"
    );
    assert_eq!(checked + throttled.len(), 60, "nothing else refused");
    let r = throttled[0];
    assert_eq!(r.json()["code"], "login_throttled", "{}", r.body);
    assert!(
        r.head.to_ascii_lowercase().contains("retry-after:"),
        "{}",
        r.head
    );
}

/// Finding 7: five bad logins used to lock any account, admin included, for everyone. A guesser now slows
/// only itself.
#[test]
fn a_guesser_cannot_lock_the_admin_out() {
    let dir = tempfile::tempdir().unwrap();
    let hub = Hub::start(dir.path(), &mqtt(), &sqlite(dir.path()));
    hub.bootstrap_admin();
    let statuses: Vec<u16> = (0..10)
        .map(|i| login_from("127.0.0.2", &hub, "admin", &format!("guess {i}")).status)
        .collect();
    assert_eq!(&statuses[..5], &[401; 5], "{statuses:?}");
    // Then waits of 1 s, 2 s, 4 s...: only a very slow machine lets one more through.
    assert!(
        statuses[5..].iter().filter(|&&s| s == 429).count() >= 4,
        "the guesser waits: {statuses:?}"
    );
    let r = login_from("127.0.0.1", &hub, "admin", "admin password 1");
    assert_eq!(r.status, 200, "the admin, elsewhere, signs in: {}", r.body);
    // An unknown name is refused exactly like a wrong password (same status, code and message).
    let unknown = login_from("127.0.0.4", &hub, "nobody-here", "guess");
    let wrong = login_from("127.0.0.4", &hub, "admin", "guess");
    assert_eq!(
        (unknown.status, unknown.json()),
        (wrong.status, wrong.json())
    );
}

/// Finding 7: every refused login used to add an audit row. Now one row per username and address per
/// interval, with the count.
fn refused_logins_are_summed(database_url: &str) {
    let dir = tempfile::tempdir().unwrap();
    let hub = Hub::start_with_http(
        dir.path(),
        &mqtt(),
        database_url,
        "login_audit_interval_s = 1",
    );
    let admin = hub.bootstrap_admin();
    for i in 0..12 {
        let st = login_from("127.0.0.5", &hub, "admin", &format!("guess {i}")).status;
        assert!(st == 401 || st == 429, "{st}");
    }
    let rows = || -> Vec<serde_json::Value> {
        let (st, body) = hub.get("/api/audit?action=auth.login_refused", Some(&admin));
        assert_eq!(st, 200, "{body}");
        serde_json::from_str::<Vec<serde_json::Value>>(&body).unwrap_or_default()
    };
    let total = |rows: &[serde_json::Value]| -> u64 {
        rows.iter()
            .filter_map(|r| r["detail"].as_str()?.split(' ').next()?.parse::<u64>().ok())
            .sum()
    };
    assert!(
        wait_until(Duration::from_secs(20), || total(&rows()) == 12),
        "12 refusals summed: {:?}",
        rows()
    );
    let rows = rows();
    assert!(
        rows.len() <= 3,
        "one row per interval, not per attempt: {rows:?}"
    );
    for r in &rows {
        assert_eq!(r["actor"], "anonymous@127.0.0.5", "{r}");
        assert_eq!(r["target"], "admin", "{r}");
    }
    let (_, verify) = hub.get("/api/audit/verify", Some(&admin));
    assert!(verify.contains("\"ok\":true"), "{verify}");
    let (_, metrics) = hub.get("/metrics", None);
    let value = |name: &str| -> u64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
            .unwrap_or(0)
    };
    let wrong = value("checkpoint_hub_logins_refused_total{reason=\"bad_credentials\"}");
    let throttled = value("checkpoint_hub_logins_refused_total{reason=\"throttled\"}");
    assert_eq!((wrong + throttled, wrong >= 5), (12, true), "{metrics}");
    assert_eq!(
        value("checkpoint_hub_logins_throttled_total{scope=\"account_address\"}"),
        throttled,
        "{metrics}"
    );
}

#[test]
fn refused_logins_are_summed_in_the_audit_log_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    refused_logins_are_summed(&sqlite(dir.path()));
}

#[test]
fn refused_logins_are_summed_in_the_audit_log_postgres() {
    refused_logins_are_summed(&pg_schema());
}

/// Finding 6: 10 MB usernames were read, parsed, kept in the limiter's memory for good.
#[test]
fn oversized_login_requests_are_cut_off_unread() {
    let dir = tempfile::tempdir().unwrap();
    let hub = Hub::start(dir.path(), &mqtt(), &sqlite(dir.path()));
    let pid = hub.child.id();
    let before = rss_kib(pid);
    for i in 0..8 {
        let mut body = format!("{{\"username\":\"{i}").into_bytes();
        body.resize(10 << 20, b'a');
        body.extend_from_slice(b"\",\"password\":\"x\"}");
        let r = send_from(
            "127.0.0.1".parse().unwrap(),
            &hub,
            "POST",
            "/api/auth/login",
            body,
        );
        // The answer comes before the body is read; a reset instead of it is also a refusal unread.
        assert!(
            r.status == 413 || r.status == 0,
            "10 MB login body: {} {}",
            r.status,
            r.body
        );
        if r.status == 413 {
            assert_eq!(r.json()["code"], "body_too_large", "{}", r.body);
        }
    }
    let grown_mib = rss_kib(pid).saturating_sub(before) / 1024;
    assert!(
        grown_mib < 40,
        "8 refused 10 MB logins grew the hub by {grown_mib} MiB"
    );
    // Small bodies with long fields: refused for their length, before any hashing.
    let long_name = "a".repeat(65);
    let r = login_from("127.0.0.1", &hub, &long_name, "whatever");
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(r.json()["code"], "input_too_long", "{}", r.body);
    let r = login_from("127.0.0.1", &hub, "admin", &"p".repeat(1025));
    assert_eq!(r.json()["code"], "input_too_long", "{}", r.body);
    assert!(hub.get("/healthz", None).0 == 200);
}

/// Finding 11: Argon2 ran on the async workers and stalled `/healthz` during a login burst. Hashes now run
/// on the blocking pool, one at a time here, while health checks are answered.
#[test]
fn healthz_answers_while_a_login_burst_is_being_hashed() {
    let dir = tempfile::tempdir().unwrap();
    let hub = std::sync::Arc::new(Hub::start_with_http(
        dir.path(),
        &mqtt(),
        &sqlite(dir.path()),
        "password_hash_threads = 1",
    ));
    let outstanding = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(48));
    let burst: Vec<_> = (0..48)
        .map(|i| {
            let (hub, outstanding) = (hub.clone(), outstanding.clone());
            std::thread::spawn(move || {
                // Distinct unknown names from distinct addresses: each costs a full (dummy) hash, and no
                // login limit can count more than one failure.
                let from = format!("127.0.1.{}", i + 1);
                let r = login_from(&from, &hub, &format!("user{i}"), "wrong password");
                outstanding.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
                (r.status, r.body)
            })
        })
        .collect();
    let hashing = || {
        let (_, m) = hub.get("/metrics", None);
        m.contains("checkpoint_hub_password_hashes_in_flight 1")
    };
    assert!(
        wait_until(Duration::from_secs(30), hashing),
        "the burst is being hashed"
    );
    let (st, body) = hub.get("/healthz", None);
    let left = outstanding.load(std::sync::atomic::Ordering::SeqCst);
    assert_eq!(st, 200, "{body}");
    assert!(
        left > 0,
        "healthz answered while {left} logins were still waiting"
    );
    // Each login is refused as a wrong password, or, when the machine is slow enough that its turn does not come
    // within the hasher's queue wait, as busy: the bounded queue doing its job. Nothing else, and at least the
    // first turns are real verifications.
    let mut refused = 0;
    for b in burst {
        let (status, body) = b.join().unwrap();
        match status {
            401 => refused += 1,
            503 => assert!(body.contains("\"login_busy\""), "{body}"),
            _ => panic!(
                "login answered {status}: {body}; hub log:\n{}",
                hub.log_text()
            ),
        }
    }
    assert!(refused > 0, "no login of the burst was verified");
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .permissions()
        .mode()
        & 0o777
}

/// Finding 12: `data/` was 0755 and the database 0644.
#[test]
fn the_data_directory_is_private() {
    // A data directory left open by an older hub: closed at start.
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(data.join("old")).unwrap();
    std::fs::write(data.join("old/notes.txt"), "x").unwrap();
    for (p, m) in [
        (data.clone(), 0o755),
        (data.join("old"), 0o755),
        (data.join("old/notes.txt"), 0o644),
    ] {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap();
    }
    let hub = Hub::start(dir.path(), &mqtt(), &sqlite(dir.path()));
    hub.bootstrap_admin();
    assert_eq!(mode(&data), 0o700);
    assert_eq!(mode(&data.join("old")), 0o700);
    assert_eq!(mode(&data.join("old/notes.txt")), 0o600);
    for f in ["hub.db", "hub.db-wal", "hub.db-shm"] {
        assert_eq!(mode(&data.join(f)), 0o600, "{f}");
    }
    drop(hub);

    // The installer's first command, before the hub ever ran, makes the database too.
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("hub.toml");
    std::fs::write(
        &config,
        format!("data_dir = \"{}\"\n", dir.path().join("data").display()),
    )
    .unwrap();
    let out = std::process::Command::new(checkpoint_e2e::workspace_bin("central-hub"))
        .arg("--config")
        .arg(&config)
        .args(["user", "add", "--username", "admin", "--role", "admin"])
        .env("CHECKPOINT_PASSWORD", "admin password 1")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(mode(&dir.path().join("data")), 0o700);
    assert_eq!(mode(&dir.path().join("data/hub.db")), 0o600);
}

/// Finding 14: a client that never finishes its request head used to hold its connection for ever.
#[test]
fn a_request_head_that_never_ends_is_cut_off() {
    let dir = tempfile::tempdir().unwrap();
    // The default deadline (10 s): nothing to configure for it to hold.
    let hub = Hub::start(dir.path(), &mqtt(), &sqlite(dir.path()));
    let mut s = TcpStream::connect(&hub.http).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(45))).unwrap();
    write!(s, "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ").unwrap();
    let mut buf = [0u8; 512];
    let closed = loop {
        match s.read(&mut buf) {
            Ok(0) => break true,
            Ok(_) => continue, // e.g. a 408 before the close
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break true,
            Err(e) => {
                break {
                    eprintln!("read: {e}");
                    false
                }
            }
        }
    };
    assert!(closed, "the hub closed a connection whose head never ended");
    assert_eq!(hub.get("/healthz", None).0, 200);
}

mod tls {
    use super::*;
    use openssl::asn1::Asn1Time;
    use openssl::bn::{BigNum, MsbOption};
    use openssl::ec::{EcGroup, EcKey};
    use openssl::hash::MessageDigest;
    use openssl::nid::Nid;
    use openssl::pkey::{PKey, Private};
    use openssl::ssl::{SslConnector, SslMethod, SslVerifyMode};
    use openssl::x509::extension::{BasicConstraints, SubjectAlternativeName};
    use openssl::x509::{X509Name, X509};

    fn key() -> PKey<Private> {
        let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap();
        PKey::from_ec_key(EcKey::generate(&group).unwrap()).unwrap()
    }

    /// A certificate for 127.0.0.1 signed by `ca` (self-signed CA when `ca` is None).
    fn cert(key: &PKey<Private>, ca: Option<(&X509, &PKey<Private>)>) -> X509 {
        let mut n = X509Name::builder().unwrap();
        n.append_entry_by_nid(
            Nid::COMMONNAME,
            if ca.is_some() { "127.0.0.1" } else { "test CA" },
        )
        .unwrap();
        let n = n.build();
        let mut b = X509::builder().unwrap();
        b.set_version(2).unwrap();
        let mut serial = BigNum::new().unwrap();
        serial.rand(64, MsbOption::MAYBE_ZERO, false).unwrap();
        b.set_serial_number(&serial.to_asn1_integer().unwrap())
            .unwrap();
        b.set_subject_name(&n).unwrap();
        b.set_pubkey(key).unwrap();
        b.set_not_before(&Asn1Time::days_from_now(0).unwrap())
            .unwrap();
        b.set_not_after(&Asn1Time::days_from_now(30).unwrap())
            .unwrap();
        match ca {
            None => {
                b.set_issuer_name(&n).unwrap();
                b.append_extension(BasicConstraints::new().critical().ca().build().unwrap())
                    .unwrap();
                b.sign(key, MessageDigest::sha256()).unwrap();
            }
            Some((ca, ca_key)) => {
                b.set_issuer_name(ca.subject_name()).unwrap();
                let san = SubjectAlternativeName::new()
                    .ip("127.0.0.1")
                    .build(&b.x509v3_context(Some(ca), None))
                    .unwrap();
                b.append_extension(san).unwrap();
                b.sign(ca_key, MessageDigest::sha256()).unwrap();
            }
        }
        b.build()
    }

    fn https_get(hub: &Hub, ca: &Path, path: &str) -> std::io::Result<String> {
        let mut c = SslConnector::builder(SslMethod::tls_client()).unwrap();
        c.set_ca_file(ca).unwrap();
        c.set_verify(SslVerifyMode::PEER);
        let tcp = TcpStream::connect(&hub.http)?;
        tcp.set_read_timeout(Some(Duration::from_secs(10)))?;
        let mut s = c
            .build()
            .connect("127.0.0.1", tcp)
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
        )?;
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        Ok(String::from_utf8_lossy(&out).to_string())
    }

    /// Finding 14: the HTTP listener had no HTTPS option.
    #[test]
    fn https_when_a_certificate_is_configured() {
        let dir = tempfile::tempdir().unwrap();
        let (ca_key, srv_key) = (key(), key());
        let ca = cert(&ca_key, None);
        let srv = cert(&srv_key, Some((&ca, &ca_key)));
        let p = |f: &str| dir.path().join(f);
        std::fs::write(p("ca.pem"), ca.to_pem().unwrap()).unwrap();
        std::fs::write(p("hub.crt"), srv.to_pem().unwrap()).unwrap();
        std::fs::write(p("hub.key"), srv_key.private_key_to_pem_pkcs8().unwrap()).unwrap();
        std::fs::write(p("other.key"), key().private_key_to_pem_pkcs8().unwrap()).unwrap();

        // Relative paths are taken from hub.toml's directory.
        let hub = Hub::spawn(
            dir.path(),
            &mqtt(),
            &sqlite(dir.path()),
            "tls_cert = \"hub.crt\"\ntls_key = \"hub.key\"",
        );
        let ok = || {
            hub.listening()
                && https_get(&hub, &p("ca.pem"), "/healthz")
                    .map(|r| r.starts_with("HTTP/1.1 200"))
                    .unwrap_or(false)
        };
        assert!(
            wait_until(Duration::from_secs(60), ok),
            "healthz over HTTPS; log:\n{}",
            hub.log_text()
        );
        // Plain HTTP on the TLS port gets no answer.
        assert_ne!(hub.get("/healthz", None).0, 200);
        drop(hub);

        // A key that is not the certificate's: the hub refuses to start and names the key.
        let dir2 = tempfile::tempdir().unwrap();
        let mut bad = Hub::spawn(
            dir2.path(),
            &mqtt(),
            &sqlite(dir2.path()),
            &format!(
                "tls_cert = \"{}\"\ntls_key = \"{}\"",
                p("hub.crt").display(),
                p("other.key").display()
            ),
        );
        let status = bad.child.wait().unwrap();
        assert!(!status.success());
        assert!(
            bad.log_text().contains("http.tls_key"),
            "{}",
            bad.log_text()
        );
    }
}

/// Finding 16: agent accounts could sign in to the web API, be created there, and not be deactivated.
fn agent_accounts_stay_off_the_web(database_url: &str) {
    let dir = tempfile::tempdir().unwrap();
    let hub = Hub::start(dir.path(), &mqtt(), database_url);
    let admin = hub.bootstrap_admin();
    let creds = |site: &str, agent: &str| -> (String, String) {
        let out = hub.cli(&["agent", "add", "--site", site, "--agent", agent], "");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        let field = |k: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(k))
                .unwrap()
                .trim()
                .to_string()
        };
        (field("username "), field("password "))
    };
    let (user, password) = creds("pier", "a1");
    let r = login_from("127.0.0.1", &hub, &user, &password);
    assert_eq!(r.status, 403, "{}", r.body);
    assert_eq!(r.json()["code"], "agent_account", "{}", r.body);
    assert!(!r.body.contains("token"), "{}", r.body);

    let (st, body) = hub.request(
        "POST",
        "/api/users",
        Some(&admin),
        Some(r#"{"username":"pier.a2","display_name":"x","password":"agent password 2","role":"agent"}"#),
    );
    assert_eq!(st, 400, "{body}");
    assert!(
        body.contains("\"code\":\"role_agent_not_allowed\""),
        "{body}"
    );

    // Deactivation over the API: only `active` may change, and it is audited.
    let (st, body) = hub.request(
        "PATCH",
        &format!("/api/users/{user}"),
        Some(&admin),
        Some(r#"{"password":"a new password 1"}"#),
    );
    assert_eq!(st, 400, "{body}");
    assert!(body.contains("agent_account_fields"), "{body}");
    let (st, body) = hub.request(
        "PATCH",
        &format!("/api/users/{user}"),
        Some(&admin),
        Some(r#"{"active":false}"#),
    );
    assert_eq!(st, 200, "{body}");
    assert!(body.contains("\"active\":false"), "{body}");
    // And from the command line.
    let (user2, _) = creds("pier", "a2");
    let out = hub.cli(
        &["agent", "deactivate", "--site", "pier", "--agent", "a2"],
        "",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = hub.cli(
        &["agent", "deactivate", "--site", "pier", "--agent", "nope"],
        "",
    );
    assert!(!out.status.success(), "an unknown agent is an error");
    let (_, users) = hub.get("/api/users", Some(&admin));
    let users: Vec<serde_json::Value> = serde_json::from_str(&users).unwrap();
    for u in [&user, &user2] {
        let row = users.iter().find(|x| x["username"] == u.as_str()).unwrap();
        assert_eq!(row["active"], false, "{row}");
    }
    let (_, audit) = hub.get("/api/audit?action=agent.deactivate", Some(&admin));
    assert!(
        audit.contains(&format!("\"target\":\"{user}\""))
            && audit.contains(&format!("\"target\":\"{user2}\"")),
        "{audit}"
    );
}

#[test]
fn agent_accounts_stay_off_the_web_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    agent_accounts_stay_off_the_web(&sqlite(dir.path()));
}

#[test]
fn agent_accounts_stay_off_the_web_postgres() {
    agent_accounts_stay_off_the_web(&pg_schema());
}

/// Issue 15: every JSON route refuses a body it cannot take with the API's error body and a stable code
/// (axum's own rejection is plain text, which the UI could neither parse nor translate), and every error body
/// carries a code.
#[test]
fn refused_bodies_get_the_api_error_body_and_a_code() {
    let dir = tempfile::tempdir().unwrap();
    let hub = Hub::start(dir.path(), &mqtt(), &sqlite(dir.path()));
    let admin = hub.bootstrap_admin();
    for path in [
        "/api/users",
        "/api/persons",
        "/api/watchlists/entries",
        "/api/lodging/establishments",
        "/api/exams/sessions",
    ] {
        for (body, why) in [
            ("{not json", "malformed JSON"),
            ("{\"colour\": 1}", "wrong fields"),
        ] {
            let (st, text) = hub.request("POST", path, Some(&admin), Some(body));
            let v: serde_json::Value = serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("{path}, {why}: not a JSON body ({e}): {st} {text}"));
            assert_eq!(st, 400, "{path}, {why}: {text}");
            assert_eq!(v["code"], "bad_request_body", "{path}, {why}: {text}");
            assert!(v["error"].as_str().is_some_and(|e| !e.is_empty()), "{text}");
        }
    }
    // An error with no specific code gets its status's.
    let (st, text) = hub.request(
        "PATCH",
        "/api/users/nobody-here",
        Some(&admin),
        Some("{\"display_name\": \"N\"}"),
    );
    assert_eq!(st, 404, "{text}");
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["code"], "not_found", "{text}");
    let (st, text) = hub.get("/api/users", None);
    assert_eq!(st, 401, "{text}");
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["code"], "unauthorized", "{text}");
}
