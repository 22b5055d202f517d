//! `hub.toml`: the hub's one configuration file. Every key has a default, so `central-hub serve` with no file
//! runs on one machine: embedded MQTT broker, SQLite in `./data`, HTTP on 127.0.0.1:8080.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: `{key}`: {message}")]
    Invalid {
        path: PathBuf,
        key: String,
        message: String,
    },
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HubConfig {
    /// Where SQLite, snapshots and the broker's state live.
    pub data_dir: PathBuf,
    pub http: HttpConfig,
    pub mqtt: MqttConfig,
    pub database: DatabaseConfig,
    pub ingest: IngestConfig,
    pub retention: RetentionConfig,
    pub faces: FacesConfig,
    pub watchlist: WatchlistConfig,
    pub audit: AuditConfig,
    /// Local time for day buckets, hours east of UTC (Vietnam: 7, no daylight saving).
    pub utc_offset_hours: i8,
    /// An agent that has sent nothing for this long is marked stale and raises a health alert.
    pub stale_agent_s: u64,
}

impl Default for HubConfig {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("data"),
            http: HttpConfig::default(),
            mqtt: MqttConfig::default(),
            database: DatabaseConfig::default(),
            ingest: IngestConfig::default(),
            retention: RetentionConfig::default(),
            faces: FacesConfig::default(),
            watchlist: WatchlistConfig::default(),
            audit: AuditConfig::default(),
            utc_offset_hours: 7,
            stale_agent_s: 120,
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    pub listen: String,
    /// Session lifetime, hours.
    pub session_hours: u64,
    /// Failed logins on one account from one address before each further attempt from there must wait
    /// (1 s, then doubling up to `login_max_wait_s`). Default 5.
    pub login_attempts: u32,
    /// Failed logins from one address (an IPv6 client: its /64) over all accounts before waits begin.
    /// Default 20.
    pub login_attempts_per_address: u32,
    /// Failed logins on one account from all addresses before waits begin for addresses that have not
    /// signed in to it before. Default 50.
    pub login_attempts_per_account: u32,
    /// Longest wait a login limit imposes, seconds (there is no hard lock). Default 900.
    pub login_max_wait_s: u64,
    /// Password hashes (Argon2, 19 MiB and tens of milliseconds each) computed at once; 0: half the cores,
    /// at least 1. Default 0.
    pub password_hash_threads: usize,
    /// Refused logins are summed per username and address and written to the audit log this often,
    /// seconds. Default 60.
    pub login_audit_interval_s: u64,
    /// A connection that has not sent a whole request head (or finished its TLS handshake) within this
    /// many seconds is closed. Default 10.
    pub header_read_timeout_s: u64,
    /// PEM certificate chain for HTTPS; with `tls_key`, the listener speaks TLS only. Relative paths are
    /// taken from the directory of hub.toml.
    pub tls_cert: Option<PathBuf>,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1) of `tls_cert`. Keep it readable by the hub's user only.
    pub tls_key: Option<PathBuf>,
    /// Serve the web UI from this directory instead of the copy built into the binary (to customise it, or
    /// to work on it without rebuilding).
    pub web_dir: Option<PathBuf>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".into(),
            session_hours: 12,
            login_attempts: 5,
            login_attempts_per_address: 20,
            login_attempts_per_account: 50,
            login_max_wait_s: 900,
            password_hash_threads: 0,
            login_audit_interval_s: 60,
            header_read_timeout_s: 10,
            tls_cert: None,
            tls_key: None,
            web_dir: None,
        }
    }
}

impl HttpConfig {
    pub fn login_limits(&self) -> crate::login_limit::LoginLimits {
        crate::login_limit::LoginLimits {
            per_account_address: self.login_attempts,
            per_address: self.login_attempts_per_address,
            per_account: self.login_attempts_per_account,
            max_wait: std::time::Duration::from_secs(self.login_max_wait_s),
        }
    }

    pub fn password_hash_threads(&self) -> usize {
        match self.password_hash_threads {
            0 => crate::hashing::default_permits(),
            n => n,
        }
    }
}

/// Where the hub's broker is: its own (a Mosquitto child process it configures and supervises, see
/// `broker::managed`) or an external one (Mosquitto, EMQX). Either way anonymous logins are refused and
/// every login is confined to its own topics.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MqttConfig {
    /// Run the hub's own broker on `listen`. When false, connect to `host`:`port`.
    pub embedded: bool,
    /// The hub's own broker's address.
    pub listen: String,
    /// The Mosquitto binary the hub runs as its own broker: a name looked up in PATH and /usr/sbin, or a path.
    pub broker_bin: String,
    /// An external broker's `host` and `port` (the hub's own broker is at `listen`), the login and TLS: the keys
    /// the agent's `[mqtt]` has too.
    #[serde(flatten)]
    pub connection: checkpoint_mqtt::Connection,
    /// Client id of the hub's ingest session (persistent, so unacknowledged events survive a hub restart).
    /// With the hub's own broker it is also the hub's login (client ids are bound to usernames there), so it
    /// may not contain a dot (agent logins are `<site>.<agent>`).
    pub client_id: String,
    /// Several hubs, one system: the MQTT shared-subscription group the hubs ingest through
    /// (`$share/<group>/checkpoint/+/+/+`), so the broker gives each event to one of them. Empty: a plain
    /// subscription (one hub). Every hub of a group needs its own `client_id`.
    pub share_group: String,
    /// Largest event accepted, bytes (an alert with its snapshot is tens of kilobytes).
    pub max_event_bytes: usize,
    /// Kept so configurations written before anonymous logins were refused everywhere still load: only
    /// `true` (or leaving it out) is accepted.
    pub require_auth: Option<bool>,
}

impl Default for MqttConfig {
    fn default() -> Self {
        Self {
            embedded: true,
            listen: "127.0.0.1:1883".into(),
            broker_bin: "mosquitto".into(),
            connection: checkpoint_mqtt::Connection::default(),
            client_id: "checkpoint-hub".into(),
            share_group: String::new(),
            max_event_bytes: 1 << 20,
            require_auth: None,
        }
    }
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseConfig {
    /// `sqlite://PATH` or `postgres://USER@HOST:PORT/DB`; empty: SQLite at `<data_dir>/hub.db`.
    pub url: String,
    /// Pool size; empty or 0: 4 for SQLite, 16 for PostgreSQL.
    pub max_connections: u32,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IngestConfig {
    /// Events written per transaction at most.
    pub batch_size: usize,
    /// How long a batch waits to fill, milliseconds.
    pub batch_ms: u64,
    /// Batches stored at once (each in its own transaction): while one waits for the database the next is
    /// validated and encoded. 0: 2 on PostgreSQL, 1 on SQLite (whose single writer gains nothing from
    /// a second; `benches/RESULTS.md`).
    pub writers: usize,
}

impl IngestConfig {
    /// `writers`, with 0 resolved for the database in use.
    pub fn writers_for(&self, backend: crate::db::Backend) -> usize {
        match (self.writers, backend) {
            (0, crate::db::Backend::Postgres) => 2,
            (0, crate::db::Backend::Sqlite) => 1,
            (n, _) => n,
        }
    }
}

impl Default for IngestConfig {
    fn default() -> Self {
        Self {
            batch_size: 2000,
            batch_ms: 100,
            writers: 0,
        }
    }
}

/// `[watchlist]`: how the lists are matched, sent to the agents with every sync. Each list has a target
/// false-alert rate per passer-by; agents turn it into the threshold for the entries they hold (more
/// entries, stricter threshold), never below the list's floor.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WatchlistConfig {
    /// Floor cosine for the wanted list (default: false-match rate 1e-4 per comparison on LFW fold 1).
    pub wanted_threshold: f32,
    /// Floor cosine for the missing list (default: 1e-3).
    pub missing_threshold: f32,
    /// Share of passers-by not on the wanted list who may raise a wanted candidate (0.001: one in 1,000).
    pub wanted_target_fpir: f64,
    /// Share of wanted people the list may miss before the hub warns that it has outgrown the model.
    pub wanted_max_fnir: f64,
    /// As `wanted_target_fpir`, for the missing-person list (looser: a missed child costs more).
    pub missing_target_fpir: f64,
    pub missing_max_fnir: f64,
}

impl Default for WatchlistConfig {
    fn default() -> Self {
        let p = checkpoint_protocol::watchlist::Policies::default();
        Self {
            wanted_threshold: checkpoint_protocol::watchlist::DEFAULT_WANTED_THRESHOLD,
            missing_threshold: checkpoint_protocol::watchlist::DEFAULT_MISSING_THRESHOLD,
            wanted_target_fpir: p.wanted.target_fpir,
            wanted_max_fnir: p.wanted.max_fnir,
            missing_target_fpir: p.missing.target_fpir,
            missing_max_fnir: p.missing.max_fnir,
        }
    }
}

impl WatchlistConfig {
    pub fn thresholds(&self) -> checkpoint_protocol::watchlist::Thresholds {
        checkpoint_protocol::watchlist::Thresholds {
            wanted: self.wanted_threshold,
            missing: self.missing_threshold,
        }
    }

    pub fn policies(&self) -> checkpoint_protocol::watchlist::Policies {
        use checkpoint_protocol::watchlist::ListPolicy;
        checkpoint_protocol::watchlist::Policies {
            wanted: ListPolicy {
                target_fpir: self.wanted_target_fpir,
                max_fnir: self.wanted_max_fnir,
            },
            missing: ListPolicy {
                target_fpir: self.missing_target_fpir,
                max_fnir: self.missing_max_fnir,
            },
        }
    }

    pub fn rules(&self) -> crate::watchlists::SyncRules {
        crate::watchlists::SyncRules {
            thresholds: self.thresholds(),
            policies: self.policies(),
        }
    }
}

/// `[faces]`: the models used for enrolment and 1:1 verification.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FacesConfig {
    /// Folder with the model weights; default `models/weights` found upwards from the working directory.
    pub models_dir: Option<PathBuf>,
    pub runtime: checkpoint_vision::RuntimeOptions,
    /// Cosine at or above which a live photo verifies against an identity record (1:1). SFace's published
    /// operating point; LFW fold 1 measured 99.0% accuracy there.
    pub verify_threshold: f32,
}

impl Default for FacesConfig {
    fn default() -> Self {
        Self {
            models_dir: None,
            runtime: Default::default(),
            verify_threshold: checkpoint_vision::SFACE_MATCH_THRESHOLD,
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetentionConfig {
    /// Snapshots of dismissed and unreviewed alerts are deleted after this many hours.
    pub snapshot_hours: u64,
    /// Raw events are kept this many days (counts are rolled up and kept).
    pub event_days: u64,
    /// How often the retention job runs, seconds.
    pub interval_s: u64,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        Self {
            snapshot_hours: 72,
            event_days: 90,
            interval_s: 600,
        }
    }
}

/// The keyed audit chain (see `src/audit.rs` and docs/security.md).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditConfig {
    /// The chain's secret key, kept apart from the database (made 0600 on first use). Default:
    /// `<data_dir>/audit.key`. Keep it off any PostgreSQL server and back it up separately.
    pub key_file: Option<PathBuf>,
    /// Append-only JSON lines of sealed checkpoints of the chain's head. Default:
    /// `<data_dir>/audit-checkpoints.jsonl`. Copy it off the machine to protect against a rewritten tail.
    pub checkpoint_file: Option<PathBuf>,
    /// Seconds between checkpoints (one more is written at shutdown; none while nothing changed).
    pub checkpoint_interval_s: u64,
}

impl Default for AuditConfig {
    fn default() -> Self {
        Self {
            key_file: None,
            checkpoint_file: None,
            checkpoint_interval_s: 300,
        }
    }
}

impl HubConfig {
    /// Where the audit key and checkpoints are.
    pub fn audit_files(&self) -> crate::audit::AuditFiles {
        crate::audit::AuditFiles {
            key_file: self
                .audit
                .key_file
                .clone()
                .unwrap_or_else(|| self.data_dir.join("audit.key")),
            checkpoint_file: self
                .audit
                .checkpoint_file
                .clone()
                .unwrap_or_else(|| self.data_dir.join("audit-checkpoints.jsonl")),
        }
    }

    /// Reads and validates `path`; `None` gives the defaults.
    pub fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
        let Some(path) = path else {
            let cfg = Self::default();
            cfg.validate()
                .map_err(|(key, message)| ConfigError::Invalid {
                    path: PathBuf::from("(defaults)"),
                    key,
                    message,
                })?;
            return Ok(cfg);
        };
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.into(),
            source,
        })?;
        let mut cfg = Self::parse(&text).map_err(|(key, message)| ConfigError::Invalid {
            path: path.into(),
            key,
            message,
        })?;
        let base = path.parent().unwrap_or(Path::new(""));
        if cfg.data_dir.is_relative() && base != Path::new("") {
            cfg.data_dir = base.join(&cfg.data_dir);
        }
        for d in [
            cfg.faces.models_dir.as_mut(),
            cfg.audit.key_file.as_mut(),
            cfg.audit.checkpoint_file.as_mut(),
            cfg.http.tls_cert.as_mut(),
            cfg.http.tls_key.as_mut(),
        ]
        .into_iter()
        .flatten()
        {
            if d.is_relative() && base != Path::new("") {
                *d = base.join(&*d);
            }
        }
        cfg.validate_files()
            .map_err(|(key, message)| ConfigError::Invalid {
                path: path.into(),
                key,
                message,
            })?;
        Ok(cfg)
    }

    /// Checks the files the configuration names, once relative paths are resolved. (Their contents are
    /// checked where they are used: the TLS files when the listener starts.)
    fn validate_files(&self) -> Result<(), (String, String)> {
        for (key, p) in [
            ("http.tls_cert", &self.http.tls_cert),
            ("http.tls_key", &self.http.tls_key),
        ] {
            if let Some(p) = p.as_ref().filter(|p| !p.is_file()) {
                return Err((
                    key.to_string(),
                    format!("{} is not a readable file", p.display()),
                ));
            }
        }
        Ok(())
    }

    pub fn parse(text: &str) -> Result<Self, (String, String)> {
        let cfg: HubConfig = checkpoint_config::parse(text)?;
        cfg.validate()?;
        Ok(cfg)
    }

    fn validate(&self) -> Result<(), (String, String)> {
        let err = |k: &str, m: &str| Err((k.to_string(), m.to_string()));
        if self.http.listen.parse::<SocketAddr>().is_err() {
            return err("http.listen", "must be host:port, e.g. 127.0.0.1:8080");
        }
        if self.http.session_hours == 0 || self.http.session_hours > 24 * 30 {
            return err("http.session_hours", "must be between 1 and 720");
        }
        for (key, n) in [
            ("http.login_attempts", self.http.login_attempts),
            (
                "http.login_attempts_per_address",
                self.http.login_attempts_per_address,
            ),
            (
                "http.login_attempts_per_account",
                self.http.login_attempts_per_account,
            ),
        ] {
            if !(1..=10_000).contains(&n) {
                return err(key, "must be between 1 and 10000");
            }
        }
        if !(1..=86_400).contains(&self.http.login_max_wait_s) {
            return err("http.login_max_wait_s", "must be between 1 and 86400");
        }
        if self.http.password_hash_threads > 256 {
            return err(
                "http.password_hash_threads",
                "must be at most 256 (0: half the cores)",
            );
        }
        if !(1..=3600).contains(&self.http.login_audit_interval_s) {
            return err("http.login_audit_interval_s", "must be between 1 and 3600");
        }
        if !(1..=300).contains(&self.http.header_read_timeout_s) {
            return err("http.header_read_timeout_s", "must be between 1 and 300");
        }
        match (&self.http.tls_cert, &self.http.tls_key) {
            (Some(_), None) => return err("http.tls_key", "is needed with http.tls_cert"),
            (None, Some(_)) => return err("http.tls_cert", "is needed with http.tls_key"),
            _ => {}
        }
        if let Some(d) = &self.http.web_dir {
            if !d.join("index.html").is_file() {
                return err(
                    "http.web_dir",
                    &format!("{} has no index.html", d.display()),
                );
            }
        }
        if self.mqtt.embedded && self.mqtt.listen.parse::<SocketAddr>().is_err() {
            return err("mqtt.listen", "must be host:port, e.g. 127.0.0.1:1883");
        }
        if !self.mqtt.embedded && self.mqtt.connection.validate().is_err() {
            return err("mqtt.host", "an external broker needs host and port");
        }
        if self.mqtt.require_auth == Some(false) {
            return err(
                "mqtt.require_auth",
                "anonymous MQTT clients are refused everywhere: remove the key, and give each agent its own \
                 login with `central-hub agent add`",
            );
        }
        if self.mqtt.embedded && self.mqtt.broker_bin.trim().is_empty() {
            return err(
                "mqtt.broker_bin",
                "must name the Mosquitto binary, e.g. mosquitto",
            );
        }
        let id = &self.mqtt.client_id;
        if id.is_empty()
            || id.len() > 64
            || !id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return err(
                "mqtt.client_id",
                "must be 1-64 characters of a-z, A-Z, 0-9, '-' and '_' (no dot: agent logins are <site>.<agent>)",
            );
        }
        let group = &self.mqtt.share_group;
        if group.len() > 64
            || !group
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return err(
                "mqtt.share_group",
                "must be empty or up to 64 characters of a-z, A-Z, 0-9, '-' and '_' (MQTT forbids '/', '+' and '#' in a share name)",
            );
        }
        if self.mqtt.max_event_bytes < 1024 {
            return err("mqtt.max_event_bytes", "must be at least 1024");
        }
        let url = self.database.url.trim();
        if !(url.is_empty()
            || url.starts_with("sqlite:")
            || url.starts_with("postgres://")
            || url.starts_with("postgresql://"))
        {
            return err(
                "database.url",
                "must start with sqlite: or postgres:// (or be empty for SQLite in data_dir)",
            );
        }
        if self.ingest.batch_size == 0 || self.ingest.batch_size > 10_000 {
            return err("ingest.batch_size", "must be between 1 and 10000");
        }
        if self.ingest.writers > 16 {
            return err("ingest.writers", "must be between 0 (automatic) and 16");
        }
        if self.ingest.batch_ms > 10_000 {
            return err("ingest.batch_ms", "must be at most 10000");
        }
        if self.retention.snapshot_hours == 0 {
            return err("retention.snapshot_hours", "must be at least 1");
        }
        if self.retention.interval_s == 0 {
            return err("retention.interval_s", "must be at least 1");
        }
        if let Err(e) = self.watchlist.thresholds().validate() {
            return err("watchlist", &e.to_string());
        }
        for (list, p) in [
            ("wanted", self.watchlist.policies().wanted),
            ("missing", self.watchlist.policies().missing),
        ] {
            let key = match p.validate() {
                Ok(()) => continue,
                Err(checkpoint_openset::PolicyError::TargetFpir(_)) => "target_fpir",
                Err(checkpoint_openset::PolicyError::MaxFnir(_)) => "max_fnir",
            };
            return err(
                &format!("watchlist.{list}_{key}"),
                "target_fpir must lie in [1e-6, 0.1], max_fnir in (0, 1)",
            );
        }
        if !(0.2..=0.95).contains(&self.faces.verify_threshold) {
            return err("faces.verify_threshold", "must be between 0.2 and 0.95");
        }
        if !(-12..=14).contains(&self.utc_offset_hours) {
            return err("utc_offset_hours", "must be between -12 and 14");
        }
        if self.stale_agent_s < 10 {
            return err("stale_agent_s", "must be at least 10 seconds");
        }
        if !(1..=86_400).contains(&self.audit.checkpoint_interval_s) {
            return err(
                "audit.checkpoint_interval_s",
                "must be between 1 and 86400 seconds",
            );
        }
        for (key, p) in [
            ("audit.key_file", &self.audit.key_file),
            ("audit.checkpoint_file", &self.audit.checkpoint_file),
        ] {
            if p.as_ref()
                .is_some_and(|p| p.as_os_str().is_empty() || p.file_name().is_none())
            {
                return err(key, "must be a file path");
            }
        }
        let files = self.audit_files();
        if files.key_file == files.checkpoint_file {
            return err(
                "audit.checkpoint_file",
                "must not be the audit key file (the checkpoints are not secret, the key is)",
            );
        }
        Ok(())
    }

    /// The database URL in effect.
    pub fn database_url(&self) -> String {
        let url = self.database.url.trim();
        if url.is_empty() {
            format!(
                "sqlite://{}?mode=rwc",
                self.data_dir.join("hub.db").display()
            )
        } else {
            url.to_string()
        }
    }

    pub fn mqtt_password(&self) -> Result<Option<String>, checkpoint_mqtt::ConnectionError> {
        self.mqtt.connection.password()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example the README points at is valid and complete: every key the hub has a value for (defaults
    /// included) is written in it.
    #[test]
    fn the_example_config_is_valid_and_complete() {
        let text = include_str!("../../config/hub.example.toml");
        let cfg =
            HubConfig::parse(text).unwrap_or_else(|(k, m)| panic!("hub.example.toml: {k}: {m}"));
        let missing = checkpoint_config::missing_keys(&cfg, text).unwrap();
        assert!(
            missing.is_empty(),
            "keys the hub knows that hub.example.toml leaves out: {missing:?}"
        );
    }

    #[test]
    fn no_file_means_one_machine_defaults() {
        let c = HubConfig::load(None).unwrap();
        assert_eq!(c.http.listen, "127.0.0.1:8080");
        assert!(c.mqtt.embedded);
        assert_eq!(c.mqtt.listen, "127.0.0.1:1883");
        assert!(c.database_url().starts_with("sqlite://data/hub.db"));
        assert_eq!(c.retention.snapshot_hours, 72);
        assert_eq!(c.mqtt.broker_bin, "mosquitto");
    }

    #[test]
    fn anonymous_brokers_and_ambiguous_hub_logins_are_refused() {
        let (key, _) = HubConfig::parse("[mqtt]\nrequire_auth = false\n").unwrap_err();
        assert_eq!(key, "mqtt.require_auth");
        assert!(HubConfig::parse("[mqtt]\nrequire_auth = true\n").is_ok());
        // A dot would let the hub's login collide with an agent's `<site>.<agent>`.
        let (key, _) = HubConfig::parse("[mqtt]\nclient_id = \"pier.a1\"\n").unwrap_err();
        assert_eq!(key, "mqtt.client_id");
        let (key, _) = HubConfig::parse("[mqtt]\nshare_group = \"hubs/#\"\n").unwrap_err();
        assert_eq!(key, "mqtt.share_group");
    }

    #[test]
    fn bad_values_name_their_key() {
        for (text, key) in [
            ("[http]\nlisten = \"8080\"\n", "http.listen"),
            ("[database]\nurl = \"mysql://x\"\n", "database.url"),
            ("[mqtt]\nembedded = false\nhost = \"\"\n", "mqtt.host"),
            ("[ingest]\nbatch_size = 0\n", "ingest.batch_size"),
            (
                "[mqtt]\nembedded = false\nrequire_auth = false\n",
                "mqtt.require_auth",
            ),
            ("[mqtt]\nbroker_bin = \"\"\n", "mqtt.broker_bin"),
            ("[watchlist]\nwanted_threshold = 0.9\n", "watchlist"),
            ("utc_offset_hours = 20\n", "utc_offset_hours"),
            (
                "[watchlist]\nwanted_target_fpir = 0.5\n",
                "watchlist.wanted_target_fpir",
            ),
            (
                "[watchlist]\nmissing_max_fnir = 0\n",
                "watchlist.missing_max_fnir",
            ),
            ("[http]\nlisen = \"x\"\n", "http"),
            (
                "[retention]\nsnapshot_hours = \"soon\"\n",
                "retention.snapshot_hours",
            ),
            ("[http]\nlogin_attempts = 0\n", "http.login_attempts"),
            (
                "[http]\nlogin_attempts_per_address = 0\n",
                "http.login_attempts_per_address",
            ),
            ("[http]\nlogin_max_wait_s = 0\n", "http.login_max_wait_s"),
            (
                "[http]\nheader_read_timeout_s = 0\n",
                "http.header_read_timeout_s",
            ),
            ("[http]\ntls_cert = \"/nonexistent.pem\"\n", "http.tls_key"),
            ("[http]\ntls_key = \"/nonexistent.pem\"\n", "http.tls_cert"),
        ] {
            let (k, msg) = HubConfig::parse(text).unwrap_err();
            assert!(k.starts_with(key), "{text}: got key {k} ({msg})");
        }
        let d = tempfile::tempdir().unwrap();
        let file = d.path().join("hub.toml");
        std::fs::write(
            &file,
            "[http]\ntls_cert = \"hub.crt\"\ntls_key = \"hub.key\"\n",
        )
        .unwrap();
        match HubConfig::load(Some(&file)) {
            Err(ConfigError::Invalid { key, message, .. }) => {
                assert_eq!(key, "http.tls_cert");
                assert!(
                    message.contains(&d.path().join("hub.crt").display().to_string()),
                    "{message}"
                );
            }
            other => panic!("{other:?}"),
        }
        let pg = HubConfig::parse(
            "[database]\nurl = \"postgres://postgres@127.0.0.1:5432/test\"\n[mqtt]\nembedded = false\n",
        )
        .unwrap();
        assert_eq!(pg.database_url(), "postgres://postgres@127.0.0.1:5432/test");
    }
}
