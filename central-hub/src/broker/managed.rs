//! The hub's own broker: a Mosquitto child process the hub configures, starts, watches and restarts.
//!
//! Why Mosquitto and not an in-process broker: the broker must confine every login to its own topics (an
//! agent publishes only as itself and reads only its own watchlist; only the hub reads `checkpoint/#`), and
//! must not let a login take over another's session by choosing its client id. rumqttd, the embeddable Rust
//! broker this hub used before, checks logins only at connect time (`external_auth(client_id, user, pass)`)
//! and has no per-topic authorisation (its only topic check is a tenant prefix taken from client
//! certificates). Mosquitto enforces ACLs on every publish, subscribe and delivery, binds client ids to
//! usernames (`use_username_as_clientid`), reloads its password and ACL files on SIGHUP and then disconnects
//! logins that were removed, and keeps its queue on disk, so events queued for the hub survive a hub restart.
//! It is the same broker sites run at scale, so one set of files and one test suite cover both.
//!
//! Everything lives in `<data_dir>/broker` (owner-only): `mosquitto.conf`, `passwd`, `acl` and the
//! persistence file. The hub's logins get a fresh random password at every start; agents' come from the
//! users table, re-read every [`RELOAD_EVERY`] so an account added or deactivated by `central-hub agent`
//! (another process) takes effect without a restart.

use std::io::Write as _;
use std::net::SocketAddr;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncBufReadExt as _;

use super::mosquitto::{self, HubLogin};
use super::AgentAccount;
use crate::db::Db;
use crate::metrics::Metrics;

/// How often the agent accounts are re-read.
pub const RELOAD_EVERY: Duration = Duration::from_secs(3);
/// Backoff between restarts of a broker that keeps stopping.
const RESTART_MIN: Duration = Duration::from_secs(1);
const RESTART_MAX: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error(
        "Mosquitto is not installed ({0} not found): the hub runs it as its broker \
         (Debian: apt install mosquitto), or set [mqtt] embedded = false to use another broker"
    )]
    NoBinary(String),
    #[error(
        "the hub's broker cannot listen on {0} (another broker running?): free the port, set [mqtt] listen \
         to another address, or use that broker with [mqtt] embedded = false"
    )]
    AddressTaken(SocketAddr),
    #[error("the hub's broker did not start: {0}")]
    DidNotStart(String),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("reading the agent accounts: {0}")]
    Accounts(#[from] crate::auth::AuthError),
}

/// What the hub's broker is started with.
#[derive(Clone, Debug)]
pub struct Settings {
    /// `mosquitto`, looked up in PATH and the sbin directories, or a path.
    pub bin: String,
    pub listen: SocketAddr,
    /// `<data_dir>/broker`.
    pub dir: PathBuf,
    /// Largest MQTT packet accepted, bytes.
    pub max_packet_bytes: usize,
    /// The hub's ingest login (also its client id); the sync login is `<hub_user>-sync`.
    pub hub_user: String,
}

/// The running broker: the credentials the hub's own clients log in with.
pub struct ManagedBroker {
    pub hub_user: String,
    pub sync_user: String,
    pub password: String,
    task: tokio::task::JoinHandle<()>,
}

impl ManagedBroker {
    /// Waits for the broker to stop (after the hub's stop signal).
    pub async fn stopped(self) {
        let _ = self.task.await;
    }
}

/// Finds the Mosquitto binary: a path as given, else PATH and the sbin directories (Debian installs it in
/// /usr/sbin, which is not on an ordinary user's PATH).
pub fn find_binary(bin: &str) -> Result<PathBuf, BrokerError> {
    if bin.contains('/') {
        let p = PathBuf::from(bin);
        return if p.is_file() {
            Ok(p)
        } else {
            Err(BrokerError::NoBinary(bin.into()))
        };
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/usr/local/sbin", "/sbin"].map(PathBuf::from))
        .map(|d| d.join(bin))
        .find(|p| p.is_file())
        .ok_or_else(|| BrokerError::NoBinary(bin.into()))
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> BrokerError + '_ {
    move |source| BrokerError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Replaces `path` with `text`, owner-only, atomically (the broker may read it at any moment).
fn write_private(path: &Path, text: &str) -> Result<(), BrokerError> {
    let tmp = path.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(io(&tmp))?;
    f.write_all(text.as_bytes())
        .and_then(|_| f.sync_all())
        .map_err(io(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io(path))
}

/// Whether this process runs as root (then Mosquitto must be told to stay root, or it switches to its own
/// user and can no longer read the owner-only files).
fn running_as_root() -> bool {
    use std::os::unix::fs::MetadataExt as _;
    std::fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false)
}

fn config_text(s: &Settings) -> String {
    let dir = s.dir.display();
    let host = match s.listen.ip() {
        std::net::IpAddr::V6(ip) => ip.to_string(),
        std::net::IpAddr::V4(ip) => ip.to_string(),
    };
    let mut c = format!(
        "# Written by central-hub at every start; edits are overwritten. Settings: hub.toml [mqtt].\n\
         # The listener comes first: listener options above it would open a default listener on 1883.\n\
         listener {port} {host}\n\
         per_listener_settings false\n\
         {required}\
         max_packet_size {max_packet}\n\
         # Ingest acknowledges after each batch commits: 20 unacknowledged messages (the default) would cap it.\n\
         max_inflight_messages 1000\n\
         # The hub's session may queue many events while the hub restarts: keep them (on disk, below).\n\
         max_queued_messages 1000000\n\
         max_queued_bytes 2147483648\n\
         persistence true\n\
         persistence_location {dir}/\n\
         persistence_file mosquitto.db\n\
         autosave_interval 10\n\
         log_dest stderr\n\
         log_type error\n\
         log_type warning\n\
         log_type notice\n\
         log_type information\n\
         log_timestamp false\n\
         connection_messages true\n",
        required =
            mosquitto::required_settings(&format!("{dir}/passwd"), &format!("{dir}/acl")),
        port = s.listen.port(),
        max_packet = s.max_packet_bytes,
    );
    if running_as_root() {
        c.push_str("user root\n");
    }
    c
}

/// The files the broker reads; rewritten when the agent accounts change.
struct Files {
    settings: Settings,
    hub: [HubLogin<'static>; 2],
    sync_user: &'static str,
    agents: Vec<AgentAccount>,
}

impl Files {
    fn write(&self) -> Result<(), BrokerError> {
        let d = &self.settings.dir;
        write_private(
            &d.join("passwd"),
            &mosquitto::password_file(&self.hub, &self.agents),
        )?;
        write_private(
            &d.join("acl"),
            &mosquitto::acl_file(self.hub[0].username, self.sync_user, &self.agents),
        )
    }
}

/// Prepares `<data_dir>/broker`, starts Mosquitto, and supervises it until `stop` turns true.
pub async fn start(
    db: Db,
    settings: Settings,
    metrics: Arc<Metrics>,
    stop: tokio::sync::watch::Receiver<bool>,
) -> Result<ManagedBroker, BrokerError> {
    let bin = find_binary(&settings.bin)?;
    crate::keys::private_dir(&settings.dir).map_err(|e| BrokerError::Io {
        path: settings.dir.clone(),
        source: std::io::Error::other(e.to_string()),
    })?;
    if std::net::TcpListener::bind(settings.listen).is_err() {
        return Err(BrokerError::AddressTaken(settings.listen));
    }
    let password = format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    // Leaked once per process: the logins live as long as the hub.
    let hub_user: &'static str = Box::leak(settings.hub_user.clone().into_boxed_str());
    let sync_user: &'static str = Box::leak(mosquitto::sync_username(hub_user).into_boxed_str());
    let files = Files {
        hub: mosquitto::hub_logins(hub_user, sync_user, &password),
        sync_user,
        agents: mosquitto::agent_accounts(&db).await?,
        settings: settings.clone(),
    };
    files.write()?;
    let conf = settings.dir.join("mosquitto.conf");
    write_private(&conf, &config_text(&settings))?;
    let child = spawn(&bin, &conf, &metrics)?;
    let child = wait_listening(child, settings.listen).await?;
    metrics.broker_up.set(1);
    tracing::info!(listen = %settings.listen, agents = files.agents.len(), bin = %bin.display(),
        "hub's broker (Mosquitto) listening; anonymous logins refused, each login confined to its topics");
    let task = tokio::spawn(supervise(child, bin, conf, files, db, metrics, stop));
    Ok(ManagedBroker {
        hub_user: hub_user.to_string(),
        sync_user: sync_user.to_string(),
        password,
        task,
    })
}

fn spawn(
    bin: &Path,
    conf: &Path,
    metrics: &Arc<Metrics>,
) -> Result<tokio::process::Child, BrokerError> {
    let mut cmd = tokio::process::Command::new(bin);
    cmd.arg("-c")
        .arg(conf)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    // SAFETY: prctl is async-signal-safe and touches only the child. A hub killed with SIGKILL cannot stop
    // its broker itself; the kernel then sends it SIGTERM, so no orphan keeps the port and the agents' queue.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().map_err(io(bin))?;
    if let Some(err) = child.stderr.take() {
        tokio::spawn(forward_log(err, metrics.clone()));
    }
    Ok(child)
}

/// Mosquitto's log lines into the hub's log; refused logins are counted.
async fn forward_log(err: tokio::process::ChildStderr, metrics: Arc<Metrics>) {
    let mut lines = tokio::io::BufReader::new(err).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        if line.contains("not authorised") {
            metrics.broker_logins_refused.inc();
            tracing::warn!(target: "mosquitto", "{line}");
        } else if line.starts_with("Error") || line.contains("rror:") {
            tracing::error!(target: "mosquitto", "{line}");
        } else if line.starts_with("Warning") {
            tracing::warn!(target: "mosquitto", "{line}");
        } else {
            tracing::debug!(target: "mosquitto", "{line}");
        }
    }
}

async fn wait_listening(
    mut child: tokio::process::Child,
    addr: SocketAddr,
) -> Result<tokio::process::Child, BrokerError> {
    for _ in 0..200 {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            return Ok(child);
        }
        if let Ok(Some(status)) = child.try_wait() {
            return Err(BrokerError::DidNotStart(format!(
                "Mosquitto exited ({status}); its messages are in the hub's log"
            )));
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    Err(BrokerError::DidNotStart(format!(
        "nothing listens on {addr} after 5 s"
    )))
}

fn hangup(child: &tokio::process::Child) {
    if let Some(pid) = child.id() {
        // SAFETY: a signal to our own child, identified by the pid we spawned and still hold.
        unsafe {
            libc::kill(pid as libc::pid_t, libc::SIGHUP);
        }
    }
}

async fn terminate(child: &mut tokio::process::Child) {
    if let Some(pid) = child.id() {
        // SIGTERM lets Mosquitto write its queue to disk; SIGKILL only if it does not stop.
        unsafe {
            libc::kill(pid as libc::pid_t, libc::SIGTERM);
        }
    }
    if tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .is_err()
    {
        let _ = child.kill().await;
    }
}

async fn supervise(
    mut child: tokio::process::Child,
    bin: PathBuf,
    conf: PathBuf,
    mut files: Files,
    db: Db,
    metrics: Arc<Metrics>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut reload = tokio::time::interval(RELOAD_EVERY);
    loop {
        tokio::select! {
            status = child.wait() => {
                metrics.broker_up.set(0);
                tracing::error!(status = ?status.ok(), "the hub's broker stopped; restarting it");
                match restart(&bin, &conf, files.settings.listen, &metrics, &mut stop).await {
                    Some(c) => child = c,
                    None => return,
                }
            }
            _ = reload.tick() => {
                match mosquitto::agent_accounts(&db).await {
                    Ok(agents) if agents != files.agents => {
                        let (before, after) = (files.agents.len(), agents.len());
                        files.agents = agents;
                        match files.write() {
                            Ok(()) => {
                                hangup(&child);
                                tracing::info!(before, after, "agent accounts changed; the broker reloaded its logins and ACL");
                            }
                            Err(e) => tracing::error!(error = %e, "agent accounts changed but the broker's files could not be written"),
                        }
                    }
                    Ok(_) => {}
                    Err(e) => tracing::error!(error = %e, "reading the agent accounts for the broker"),
                }
            }
            _ = stop.changed() => {
                terminate(&mut child).await;
                metrics.broker_up.set(0);
                tracing::info!("the hub's broker stopped");
                return;
            }
        }
    }
}

/// Starts the broker again, backing off while it keeps failing; None once the hub stops.
async fn restart(
    bin: &Path,
    conf: &Path,
    listen: SocketAddr,
    metrics: &Arc<Metrics>,
    stop: &mut tokio::sync::watch::Receiver<bool>,
) -> Option<tokio::process::Child> {
    let mut backoff = RESTART_MIN;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = stop.changed() => return None,
        }
        metrics.broker_restarts.inc();
        let started = match spawn(bin, conf, metrics) {
            Ok(c) => wait_listening(c, listen).await,
            Err(e) => Err(e),
        };
        match started {
            Ok(c) => {
                metrics.broker_up.set(1);
                tracing::info!("the hub's broker is back");
                return Some(c);
            }
            Err(e) => {
                backoff = (backoff * 2).min(RESTART_MAX);
                tracing::error!(error = %e, retry_in_s = backoff.as_secs(), "the hub's broker did not come back");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_config_refuses_anonymous_logins_and_binds_client_ids_to_usernames() {
        let s = Settings {
            bin: "mosquitto".into(),
            listen: "127.0.0.1:18831".parse().unwrap(),
            dir: "/srv/hub/broker".into(),
            max_packet_bytes: 4 << 20,
            hub_user: "checkpoint-hub".into(),
        };
        let c = config_text(&s);
        // Listener options before the first `listener` line make Mosquitto open a default one on 1883 too.
        let first = c.lines().find(|l| !l.starts_with('#')).unwrap();
        assert_eq!(first, "listener 18831 127.0.0.1");
        for line in [
            "allow_anonymous false",
            "use_username_as_clientid true",
            "password_file /srv/hub/broker/passwd",
            "acl_file /srv/hub/broker/acl",
            "listener 18831 127.0.0.1",
            "persistence true",
        ] {
            assert!(c.lines().any(|l| l == line), "{line} in\n{c}");
        }
    }

    #[test]
    fn a_missing_binary_is_named() {
        let e = find_binary("/nonexistent/mosquitto").unwrap_err();
        assert!(e.to_string().contains("apt install mosquitto"), "{e}");
        assert!(find_binary("no-such-broker-binary").is_err());
    }
}
