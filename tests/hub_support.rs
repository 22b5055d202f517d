//! The central hub as a real process for end-to-end tests, and a minimal HTTP client for its API.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::mqtt::{free_port, unique_site};
use crate::{wait_until, workspace_bin};

/// A running `central-hub serve`. `mqtt` is the `[mqtt]` section of its config; `database_url` the
/// `[database] url`.
pub struct Hub {
    pub child: Child,
    /// host:port of its HTTP server.
    pub http: String,
    pub config: PathBuf,
    pub log: PathBuf,
}

impl Hub {
    pub fn start(dir: &Path, mqtt: &str, database_url: &str) -> Hub {
        Self::start_with_http(dir, mqtt, database_url, "")
    }

    /// As [`Hub::start`], with `http_extra` (lines of `key = value`) added to the `[http]` section.
    pub fn start_with_http(dir: &Path, mqtt: &str, database_url: &str, http_extra: &str) -> Hub {
        let mut hub = Self::spawn(dir, mqtt, database_url, http_extra);
        // Its own log must say it listens: a port handed to two tests at once would otherwise let this one
        // talk to the other's hub.
        assert!(
            wait_until(Duration::from_secs(60), || hub.listening()
                && hub.get("/healthz", None).0 == 200),
            "hub healthy; log:\n{}",
            hub.log_text()
        );
        assert!(
            matches!(hub.child.try_wait(), Ok(None)),
            "hub still running; log:\n{}",
            hub.log_text()
        );
        hub
    }

    /// Whether this hub's log says its HTTP listener is up.
    pub fn listening(&self) -> bool {
        self.log_text().contains("HTTP on ")
    }

    /// Writes the config and starts `central-hub serve` without waiting for it (e.g. when it speaks only
    /// HTTPS, or is expected to refuse its config).
    pub fn spawn(dir: &Path, mqtt: &str, database_url: &str, http_extra: &str) -> Hub {
        let http = format!("127.0.0.1:{}", free_port());
        let config = dir.join("hub.toml");
        std::fs::write(
            &config,
            format!(
                "data_dir = \"{data}\"\nstale_agent_s = 10\n[http]\nlisten = \"{http}\"\n{http_extra}\n{mqtt}\n\
                 [database]\nurl = \"{database_url}\"\n[ingest]\nbatch_ms = 20\n",
                data = dir.join("data").display(),
            ),
        )
        .unwrap();
        let log = dir.join("hub.log");
        let child = Command::new(workspace_bin("central-hub"))
            .arg("--config")
            .arg(&config)
            .arg("serve")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("start central-hub");
        Hub {
            child,
            http,
            config,
            log,
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn cli(&self, args: &[&str], stdin: &str) -> std::process::Output {
        use std::io::Write;
        let mut c = Command::new(workspace_bin("central-hub"))
            .arg("--config")
            .arg(&self.config)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        c.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
        c.wait_with_output().unwrap()
    }

    /// (status, body) of a request; `token` adds the bearer header.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&str>,
    ) -> (u16, String) {
        use std::io::{Read, Write};
        let Ok(mut s) = std::net::TcpStream::connect(&self.http) else {
            return (0, String::new());
        };
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let auth = token
            .map(|t| format!("Authorization: Bearer {t}\r\n"))
            .unwrap_or_default();
        let body = body.unwrap_or("");
        let _ = write!(
            s,
            "{method} {path} HTTP/1.1\r\nHost: {}\r\n{auth}Content-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            self.http,
            body.len()
        );
        let mut buf = Vec::new();
        let _ = s.read_to_end(&mut buf);
        let text = String::from_utf8_lossy(&buf).to_string();
        let status = text
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let body = text.split_once("\r\n\r\n").map(|x| x.1).unwrap_or("");
        // Chunked bodies: good enough to search in; JSON bodies here are sent with a length.
        (status, body.to_string())
    }

    /// Opens `GET /api/live` and collects what the stream sends, in the background, until the hub stops.
    pub fn live_stream(&self, token: &str) -> std::sync::Arc<std::sync::Mutex<String>> {
        use std::io::{Read, Write};
        let seen = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let mut s = std::net::TcpStream::connect(&self.http).expect("connect to the hub");
        write!(
            s,
            "GET /api/live HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {token}\r\nAccept: text/event-stream\r\n\r\n",
            self.http
        )
        .unwrap();
        let sink = seen.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = s.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        seen
    }

    pub fn get(&self, path: &str, token: Option<&str>) -> (u16, String) {
        self.request("GET", path, token, None)
    }

    pub fn login(&self, user: &str, password: &str) -> String {
        let (status, body) = self.request(
            "POST",
            "/api/auth/login",
            None,
            Some(&format!(
                r#"{{"username":"{user}","password":"{password}"}}"#
            )),
        );
        assert_eq!(status, 200, "login {user}: {body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        v["token"].as_str().unwrap().to_string()
    }
}

impl Drop for Hub {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A fresh schema in the test PostgreSQL (127.0.0.1:5432, database `test`) and the URL that uses it.
pub fn pg_schema() -> String {
    let schema = format!("e2e_{}", unique_site("s").replace('-', "_"));
    let st = Command::new("psql")
        .args(["postgres://postgres@127.0.0.1:5432/test", "-c"])
        .arg(format!("CREATE SCHEMA {schema}"))
        .status()
        .expect("psql");
    assert!(
        st.success(),
        "PostgreSQL on 127.0.0.1:5432 (database test) is needed"
    );
    format!("postgres://postgres@127.0.0.1:5432/test?options=-c%20search_path%3D{schema}")
}

/// Base64 (standard alphabet, padded), so the tests need no extra dependency for photo uploads.
pub fn b64(bytes: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for c in bytes.chunks(3) {
        let n = (c[0] as u32) << 16
            | (*c.get(1).unwrap_or(&0) as u32) << 8
            | *c.get(2).unwrap_or(&0) as u32;
        for i in 0..4 {
            if i <= c.len() {
                out.push(T[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The inverse of [`b64`]; an invalid character gives an empty result.
pub fn b64_decode(s: &str) -> Vec<u8> {
    let val = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0);
    for c in s.bytes().filter(|&c| c != b'=') {
        let Some(v) = val(c) else { return Vec::new() };
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    out
}

impl Hub {
    /// Creates the first admin from the command line (as an installer would) and signs in.
    pub fn bootstrap_admin(&self) -> String {
        let out = self.cli(
            &["user", "add", "--username", "admin", "--role", "admin"],
            "admin password 1\n",
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        self.login("admin", "admin password 1")
    }

    /// Creates users over the API (password `password <name>`) and returns their session tokens in order.
    pub fn add_users(&self, admin: &str, users: &[(&str, &str)]) -> Vec<String> {
        users
            .iter()
            .map(|(user, role)| {
                let (st, body) = self.request(
                    "POST",
                    "/api/users",
                    Some(admin),
                    Some(&format!(
                        r#"{{"username":"{user}","display_name":"{user}","password":"password {user}","role":"{role}"}}"#
                    )),
                );
                assert_eq!(st, 201, "creating {user}: {body}");
                self.login(user, &format!("password {user}"))
            })
            .collect()
    }
}

/// The path of LFW photo `n` of `person` in the shared test data.
pub fn lfw_path(person: &str, n: u32) -> std::path::PathBuf {
    crate::shared_dir()
        .join("datasets/faces/lfw_fold1")
        .join(person)
        .join(format!("{person}_{n:04}.jpg"))
}

/// LFW photo `n` of `person`, base64 (as the API takes photos).
pub fn lfw_b64(person: &str, n: u32) -> String {
    let p = lfw_path(person, n);
    b64(&std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display())))
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= b as u32;
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// A 160x160 grey gradient as a PNG (stored, uncompressed deflate): a valid image with no face in it.
pub fn faceless_png() -> Vec<u8> {
    const W: usize = 160;
    let mut raw = Vec::with_capacity((W + 1) * W);
    for y in 0..W {
        raw.push(0); // filter: none
        raw.extend((0..W).map(|x| ((x + y) * 255 / (2 * W)) as u8));
    }
    let mut zlib = vec![0x78, 0x01, 0x01];
    zlib.extend((raw.len() as u16).to_le_bytes());
    zlib.extend((!(raw.len() as u16)).to_le_bytes());
    zlib.extend(&raw);
    let (mut a, mut b) = (1u32, 0u32);
    for &x in &raw {
        a = (a + x as u32) % 65521;
        b = (b + a) % 65521;
    }
    zlib.extend(((b << 16) | a).to_be_bytes());
    let mut ihdr = (W as u32).to_be_bytes().to_vec();
    ihdr.extend((W as u32).to_be_bytes());
    ihdr.extend([8, 0, 0, 0, 0]); // 8-bit greyscale
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    for (kind, data) in [(&b"IHDR"[..], ihdr), (b"IDAT", zlib), (b"IEND", Vec::new())] {
        png.extend((data.len() as u32).to_be_bytes());
        let mut chunk = kind.to_vec();
        chunk.extend(&data);
        png.extend(&chunk);
        png.extend(crc32(&chunk).to_be_bytes());
    }
    png
}

/// An agent's broker login and the hub key it trusts, as `central-hub agent add` prints them.
#[derive(Clone, Debug)]
pub struct AgentLogin {
    pub username: String,
    pub password: String,
    pub hub_key: String,
}

impl AgentLogin {
    /// Parses `central-hub agent add`'s standard output.
    pub fn parse(stdout: &str) -> AgentLogin {
        let field = |name: &str| {
            stdout
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .map(|v| v.trim().to_string())
                .unwrap_or_else(|| panic!("no {name} in: {stdout}"))
        };
        AgentLogin {
            username: field("username "),
            password: field("password "),
            hub_key: field("hub_public_key "),
        }
    }

    /// The credentials as the test MQTT clients take them.
    pub fn creds(&self) -> Option<(&str, &str)> {
        Some((&self.username, &self.password))
    }

    /// Adds the login (password in a 0600 file next to `config`) and the hub key to an agent's config.
    pub fn provision(&self, config: &Path) {
        use std::os::unix::fs::PermissionsExt;
        let pw = config.with_file_name("mqtt-password");
        std::fs::write(&pw, format!("{}\n", self.password)).unwrap();
        std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o600)).unwrap();
        crate::edit_agent_config(
            config,
            "mqtt",
            &format!(
                "username = \"{}\"\npassword_file = \"{}\"",
                self.username,
                pw.display()
            ),
        );
        crate::trust_hub_key(config, &self.hub_key);
    }
}

impl Hub {
    /// Creates (or renews) the broker account of `site`/`agent` with the hub's command line.
    pub fn agent_login(&self, site: &str, agent: &str) -> AgentLogin {
        let out = self.cli(&["agent", "add", "--site", site, "--agent", agent], "");
        assert!(
            out.status.success(),
            "agent add: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        AgentLogin::parse(&String::from_utf8_lossy(&out.stdout))
    }
}
