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
        let http = format!("127.0.0.1:{}", free_port());
        let config = dir.join("hub.toml");
        std::fs::write(
            &config,
            format!(
                "data_dir = \"{data}\"\nstale_agent_s = 10\n[http]\nlisten = \"{http}\"\n{mqtt}\n\
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
        let hub = Hub {
            child,
            http,
            config,
            log,
        };
        assert!(
            wait_until(Duration::from_secs(60), || hub.get("/healthz", None).0
                == 200),
            "hub healthy; log:\n{}",
            hub.log_text()
        );
        hub
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
