//! Helpers for the end-to-end tests: where the shared assets and the built binaries are, and running the agent
//! as a real process.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use checkpoint_protocol::Envelope;

#[path = "hub_support.rs"]
pub mod hub;
pub mod mqtt;

/// `$CHECKPOINT_ASSETS`, else `../shared` beside the repository.
pub fn shared_dir() -> PathBuf {
    std::env::var_os("CHECKPOINT_ASSETS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared"))
}

/// A binary of the workspace, found next to the test executable (`target/<profile>/deps/..`), which works with
/// any `CARGO_TARGET_DIR`.
pub fn workspace_bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>");
    let bin = dir.join(name);
    assert!(
        bin.is_file(),
        "{} not built: run `cargo build --workspace` first",
        bin.display()
    );
    bin
}

/// The edge agent running as a child process with its events going to a file.
pub struct Agent {
    pub child: Child,
    pub events: PathBuf,
    pub log: PathBuf,
}

impl Agent {
    pub fn start(config: &Path, workdir: &Path) -> Self {
        let events = workdir.join("events.jsonl");
        let log = workdir.join("agent.log");
        let child = Command::new(workspace_bin("edge-agent"))
            .args(["run", "--config"])
            .arg(config)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .stdout(Stdio::null())
            // Appended, so a restarted agent's log follows the first run's.
            .stderr(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&log)
                    .expect("log file"),
            )
            .spawn()
            .expect("start edge-agent");
        Agent { child, events, log }
    }

    /// SIGKILL: no shutdown code runs, as in a power cut for the process (the page cache survives).
    pub fn kill_9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGINT, as an operator's Ctrl-C: the agent flushes its counts and says it is offline.
    pub fn interrupt(&mut self) {
        let _ = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status();
    }

    /// Waits for the process to exit, at most `timeout`, killing it after that.
    pub fn wait(&mut self, timeout: Duration) -> std::process::ExitStatus {
        let start = Instant::now();
        loop {
            if let Ok(Some(s)) = self.child.try_wait() {
                return s;
            }
            if start.elapsed() > timeout {
                let _ = self.child.kill();
                panic!(
                    "agent did not exit within {timeout:?}; log:\n{}",
                    self.log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Every event written so far, parsed and validated through the protocol crate.
    pub fn events(&self) -> Vec<Envelope> {
        read_events(&self.events)
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn read_events(path: &Path) -> Vec<Envelope> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            Envelope::from_json(l.as_bytes()).unwrap_or_else(|e| panic!("bad event line {l}: {e}"))
        })
        .collect()
}

/// Polls `f` until it returns true or `timeout` passes.
pub fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    false
}

/// A test folder that is either removed at the end or kept for inspection.
pub enum KeptOrTemp {
    Temp(tempfile::TempDir),
    Kept(PathBuf),
}

impl KeptOrTemp {
    pub fn path(&self) -> &Path {
        match self {
            KeptOrTemp::Temp(t) => t.path(),
            KeptOrTemp::Kept(p) => p,
        }
    }
}

impl From<PathBuf> for KeptOrTemp {
    fn from(p: PathBuf) -> Self {
        eprintln!("keeping test files in {}", p.display());
        KeptOrTemp::Kept(p)
    }
}

impl Agent {
    /// The metrics address the agent logged at start (`metrics_listen = "127.0.0.1:0"` picks a free port).
    pub fn metrics_addr(&self) -> Option<String> {
        let log = self.log_text();
        // The last one: a restarted agent logs again.
        let at = log.rfind("metrics on http://")? + "metrics on http://".len();
        let rest = &log[at..];
        Some(rest[..rest.find('/')?].to_string())
    }
}

/// A plain HTTP GET over loopback, returning the body.
pub fn http_get(addr: &str, path: &str) -> std::io::Result<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut buf = String::new();
    s.read_to_string(&mut buf)?;
    Ok(buf
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default())
}

/// Value of a Prometheus sample whose line starts with `prefix` (name and labels), if present.
pub fn metric(text: &str, prefix: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// What a test adds to [`pattern_agent_config`]: TOML lines appended to `[agent]`, `[mqtt]` and `[outbox]`.
#[derive(Default)]
pub struct AgentExtra<'a> {
    /// `metrics_listen`; empty turns the metrics server off (`127.0.0.1:0` picks a free port).
    pub metrics_listen: &'a str,
    pub agent: &'a str,
    pub mqtt: &'a str,
    pub outbox: &'a str,
}

/// A light agent for delivery tests: one test-pattern camera (`cam`, counting line `gate`), no face embedding,
/// counts every 0.5 s, publishing to the broker on 127.0.0.1:`port`. Returns the config path.
pub fn pattern_agent_config(
    dir: &Path,
    site: &str,
    agent: &str,
    port: u16,
    extra: AgentExtra,
) -> PathBuf {
    let text = format!(
        r#"
[site]
id = "{site}"
[agent]
id = "{agent}"
events = "{events}"
metrics_listen = "{metrics}"
exit_when_done = false
count_interval_s = 0.5
{agent_extra}
[detection]
embed_faces = false
[mqtt]
host = "127.0.0.1"
port = {port}
{mqtt_extra}
[outbox]
dir = "{outbox}"
{outbox_extra}
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
        events = dir.join("events.jsonl").display(),
        metrics = extra.metrics_listen,
        agent_extra = extra.agent,
        mqtt_extra = extra.mqtt,
        outbox = dir.join("outbox").display(),
        outbox_extra = extra.outbox,
    );
    let p = dir.join("site.toml");
    std::fs::write(&p, text).expect("write agent config");
    p
}

/// A faces-mode agent on one gate camera with a counting line, publishing to the broker on `port` and keeping
/// its watchlist in `dir/watchlist`; `source` is the camera's `source = {...}` value. Returns the config path.
pub fn gate_agent_config(
    dir: &Path,
    site: &str,
    port: u16,
    source: &str,
    metrics_listen: &str,
    count_interval_s: f64,
) -> PathBuf {
    let text = format!(
        r#"
[site]
id = "{site}"
[agent]
id = "a1"
events = "{events}"
metrics_listen = "{metrics_listen}"
exit_when_done = true
count_interval_s = {count_interval_s}
status_interval_s = 2
[mqtt]
host = "127.0.0.1"
port = {port}
[outbox]
dir = "{outbox}"
[watchlist]
dir = "{wl}"
[[cameras]]
id = "gate"
mode = "faces"
[cameras.stream]
analysis_fps = 10
source = {source}
[[cameras.lines]]
id = "gate-line"
a = [0.0, 0.5]
b = [1.0, 0.5]
in_side = "right"
"#,
        events = dir.join("events.jsonl").display(),
        outbox = dir.join("outbox").display(),
        wl = dir.join("watchlist").display(),
    );
    let p = dir.join("site.toml");
    std::fs::write(&p, text).expect("write agent config");
    p
}

/// The gate scene the watchlist tests share (seed 7, 60 s): Zico walks past from `Zico_0002.jpg`, so a
/// watchlist entry enrolled from `Zico_0001.jpg` must raise an alert. Returns the scene video's path.
pub fn zico_gate_scene(dir: &Path) -> PathBuf {
    let truth = checkpoint_scenegen::generate(
        &checkpoint_scenegen::SceneSpec {
            duration_s: Some(60.0),
            seed: 7,
            ..Default::default()
        },
        dir,
    )
    .expect("scene");
    assert!(truth.actors.iter().any(|a| a.photo == "Zico/Zico_0002.jpg"));
    dir.join(&truth.video)
}

/// Adds `lines` at the top of `[section]` of an agent config (the section must exist, as it does in the
/// configs made here).
pub fn edit_agent_config(config: &Path, section: &str, lines: &str) {
    let text = std::fs::read_to_string(config).expect("read agent config");
    let header = format!("[{section}]\n");
    assert!(
        text.contains(&header),
        "no [{section}] in {}",
        config.display()
    );
    std::fs::write(
        config,
        text.replacen(&header, &format!("{header}{lines}\n"), 1),
    )
    .expect("write agent config");
}

/// Makes an agent config trust `public_key` for watchlist syncs (adds a `[watchlist]` section if none).
pub fn trust_hub_key(config: &Path, public_key: &str) {
    let text = std::fs::read_to_string(config).expect("read agent config");
    if !text.contains("[watchlist]\n") {
        std::fs::write(config, format!("{text}\n[watchlist]\n")).expect("write agent config");
    }
    edit_agent_config(
        config,
        "watchlist",
        &format!("hub_public_keys = [\"{public_key}\"]"),
    );
}

/// The key the tests sign watchlist syncs with when they play the hub themselves.
pub fn test_hub_signer() -> checkpoint_protocol::signed::SyncSigner {
    checkpoint_protocol::signed::SyncSigner::from_secret(&[42; 32])
}

/// `msg` signed by [`test_hub_signer`] for `site`/`agent`, as the hub publishes it.
pub fn signed_sync(site: &str, agent: &str, msg: &impl serde::Serialize) -> Vec<u8> {
    test_hub_signer().sign(site, agent, serde_json::to_string(msg).expect("sync JSON"))
}
