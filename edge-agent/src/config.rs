//! `site.toml`: the agent's one configuration file, validated at start with errors that name the bad key.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use checkpoint_media::SourceConfig;
use checkpoint_protocol::valid_topic_id;
use checkpoint_vision::RuntimeOptions;
use serde::{Deserialize, Serialize};

use crate::analysis::{AnalysisOptions, Anchor, LineConfig, Mode};
use crate::track::TrackerConfig;

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
#[serde(deny_unknown_fields)]
pub struct Config {
    pub site: SiteConfig,
    #[serde(default)]
    pub agent: AgentConfig,
    #[serde(default)]
    pub runtime: RuntimeOptions,
    #[serde(default)]
    pub models: ModelsConfig,
    #[serde(default)]
    pub detection: DetectionConfig,
    #[serde(default)]
    pub analysis: AnalysisOptions,
    #[serde(default)]
    pub tracking: TrackerConfig,
    /// How analysis is shared between the cameras, and what it does when it cannot keep up.
    #[serde(default)]
    pub load: LoadConfig,
    /// Publish events to an MQTT broker through the durable outbox. Without it, events only go to `agent.events`.
    #[serde(default)]
    pub mqtt: Option<crate::publish::MqttConfig>,
    #[serde(default)]
    pub outbox: OutboxSection,
    #[serde(default)]
    pub watchlist: WatchlistSection,
    pub cameras: Vec<CameraConfig>,
}

/// `[load]`: the analysis workers shared by all cameras, and what happens when they cannot keep up.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LoadConfig {
    /// Analysis workers serving all cameras round-robin (0: one per core, at most one per camera). With
    /// `runtime.intra_threads = 0` the cores are shared between the workers.
    pub analysis_threads: usize,
    /// When analysis cannot keep up, lower every camera's sampling rate evenly to the share the workers
    /// sustain (frames are then skipped before scaling, at even intervals), and raise it again when the load
    /// falls. `false`: cameras keep their `analysis_fps` and frames the workers cannot take are evicted from
    /// the lanes after decoding (uneven gaps).
    pub adaptive_sampling: bool,
    /// The analysis rate (frames per second of stream time) a camera's counts need to be reliable; below
    /// it the camera reports `degraded` and the hub marks its counts. Per camera: `cameras[].reliable_fps`.
    /// Unset: by mode, 2 for faces ([`crate::load::DEFAULT_RELIABLE_FPS`]) and 5 for people
    /// ([`crate::load::DEFAULT_RELIABLE_FPS_PEOPLE`]).
    pub reliable_fps: Option<f64>,
}

impl Default for LoadConfig {
    fn default() -> Self {
        Self {
            analysis_threads: 0,
            adaptive_sampling: true,
            reliable_fps: None,
        }
    }
}

/// `[watchlist]`: where the synced watchlists live on disk and how tracks are matched against them.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WatchlistSection {
    /// Match faces against the watchlists. Unset: on whenever `detection.embed_faces` is (matching needs
    /// the embeddings).
    pub enabled: Option<bool>,
    pub dir: PathBuf,
    /// Largest sync message accepted, bytes.
    pub max_sync_bytes: usize,
    /// How often the agent drops expired entries itself, seconds.
    pub purge_interval_s: f64,
    /// `faiss` (exact up to 1M templates, then IVF) or `exact` (brute force in Rust).
    pub index: IndexChoice,
    /// Longest side of an alert's face snapshot, pixels.
    pub snapshot_max_side: u32,
    /// JPEG quality of the snapshot, 1-100.
    pub snapshot_quality: u8,
    #[serde(rename = "match")]
    pub matching: crate::watchlist::MatchConfig,
    /// The hub's watchlist-signing public keys (base64), as `central-hub agent add` prints them. Syncs signed
    /// by any other key, or not signed, are refused. Two keys while the hub rotates its key; empty: no sync
    /// from the hub is accepted (lists enrolled locally still match).
    pub hub_public_keys: Vec<String>,
}

impl WatchlistSection {
    /// The hub keys, parsed (validated at start, so this cannot fail on a loaded config).
    pub fn hub_keys(&self) -> Vec<checkpoint_protocol::signed::HubKey> {
        self.hub_public_keys
            .iter()
            .filter_map(|k| checkpoint_protocol::signed::HubKey::parse(k).ok())
            .collect()
    }

    /// Whether tracks are matched, given whether faces are embedded.
    pub fn active(&self, embed_faces: bool) -> bool {
        self.enabled.unwrap_or(embed_faces) && embed_faces
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IndexChoice {
    Faiss,
    Exact,
}

impl Default for WatchlistSection {
    fn default() -> Self {
        Self {
            enabled: None,
            dir: PathBuf::from("data/watchlist"),
            max_sync_bytes: crate::watchlist::DEFAULT_MAX_SYNC_BYTES,
            purge_interval_s: 60.0,
            index: IndexChoice::Faiss,
            snapshot_max_side: 224,
            snapshot_quality: 85,
            matching: Default::default(),
            hub_public_keys: Vec::new(),
        }
    }
}

/// `[outbox]`: where undelivered events wait, and how hard they are pushed to disk.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutboxSection {
    #[serde(default = "default_outbox_dir")]
    pub dir: PathBuf,
    #[serde(flatten)]
    pub config: crate::outbox::OutboxConfig,
}

fn default_outbox_dir() -> PathBuf {
    PathBuf::from("data/outbox")
}

impl Default for OutboxSection {
    fn default() -> Self {
        Self {
            dir: default_outbox_dir(),
            config: Default::default(),
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SiteConfig {
    /// Short id used in topics and events, e.g. `catba-pier`.
    pub id: String,
    #[serde(default)]
    pub name: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AgentConfig {
    pub id: String,
    /// Prometheus `/metrics` and `/healthz`; empty string disables the HTTP server.
    pub metrics_listen: String,
    /// `-` for stdout, or a file path (JSON lines, appended).
    pub events: String,
    /// Seconds between `count` events; every line reports every interval, zeros included.
    pub count_interval_s: f64,
    /// Seconds between `camera_status` reports of a running camera (with its analysis fps); state changes are
    /// reported at once.
    pub status_interval_s: f64,
    /// Stop when every camera has ended (only file sources end). Handy for batch runs and tests.
    pub exit_when_done: bool,
}

impl Default for AgentConfig {
    fn default() -> Self {
        Self {
            id: "agent-1".into(),
            metrics_listen: "127.0.0.1:9100".into(),
            events: "-".into(),
            count_interval_s: 10.0,
            status_interval_s: 30.0,
            exit_when_done: true,
        }
    }
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModelsConfig {
    /// Folder holding the weights (`models/weights` found upwards from the working directory by default).
    pub dir: Option<PathBuf>,
    pub face_detector: Option<PathBuf>,
    pub face_embedder: Option<PathBuf>,
    pub person_detector: Option<PathBuf>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DetectionConfig {
    pub face_score: f32,
    pub face_nms: f32,
    pub person_score: f32,
    pub person_nms: f32,
    /// Compute face embeddings for tracks (needed for watchlists).
    pub embed_faces: bool,
}

impl Default for DetectionConfig {
    fn default() -> Self {
        Self {
            face_score: 0.6,
            face_nms: 0.3,
            person_score: 0.35,
            person_nms: 0.6,
            embed_faces: true,
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CameraConfig {
    pub id: String,
    #[serde(default)]
    pub mode: Mode,
    #[serde(default)]
    pub anchor: Option<Anchor>,
    /// How frames come in: source, analysis rate, decoder, reconnect policy.
    pub stream: SourceConfig,
    #[serde(default)]
    pub lines: Vec<LineConfig>,
    /// Overrides `load.reliable_fps` for this camera (a scene with faster walkers needs more).
    #[serde(default)]
    pub reliable_fps: Option<f64>,
}

impl CameraConfig {
    /// The analysis rate this camera's counts need: its own setting, else `[load]`'s, else its mode's default.
    pub fn reliable_fps(&self, load: &LoadConfig) -> f64 {
        self.reliable_fps
            .or(load.reliable_fps)
            .unwrap_or(match self.mode {
                Mode::Faces => crate::load::DEFAULT_RELIABLE_FPS,
                Mode::People => crate::load::DEFAULT_RELIABLE_FPS_PEOPLE,
            })
    }
}

impl Config {
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.into(),
            source,
        })?;
        let mut cfg = Self::parse(&text).map_err(|(key, message)| ConfigError::Invalid {
            path: path.into(),
            key,
            message,
        })?;
        cfg.resolve_paths(path.parent().unwrap_or(Path::new(".")));
        Ok(cfg)
    }

    /// Parses and validates; the error is (key path, message).
    pub fn parse(text: &str) -> Result<Self, (String, String)> {
        let cfg: Config = checkpoint_config::parse(text)?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Relative file paths in the config are relative to the config file, as a user reading it expects.
    fn resolve_paths(&mut self, base: &Path) {
        let fix = |p: &mut PathBuf| {
            if p.is_relative() && base != Path::new("") {
                *p = base.join(&*p);
            }
        };
        for cam in &mut self.cameras {
            if let checkpoint_media::SourceKind::File(f) = &mut cam.stream.source {
                fix(&mut f.path);
            }
        }
        if self.agent.events != "-" {
            let mut p = PathBuf::from(&self.agent.events);
            fix(&mut p);
            self.agent.events = p.display().to_string();
        }
        fix(&mut self.outbox.dir);
        fix(&mut self.watchlist.dir);
        if let Some(d) = self.models.dir.as_mut() {
            fix(d);
        }
        for p in [
            &mut self.models.face_detector,
            &mut self.models.face_embedder,
            &mut self.models.person_detector,
        ]
        .into_iter()
        .flatten()
        {
            fix(p);
        }
    }

    fn validate(&self) -> Result<(), (String, String)> {
        let err = |k: String, m: &str| Err((k, m.to_string()));
        if !valid_topic_id(&self.site.id) {
            return err(
                "site.id".into(),
                "must be 1-64 characters of a-z, 0-9, '-' or '_' (it is used in MQTT topics)",
            );
        }
        if !valid_topic_id(&self.agent.id) {
            return err(
                "agent.id".into(),
                "must be 1-64 characters of a-z, 0-9, '-' or '_' (it is used in MQTT topics)",
            );
        }
        if !self.agent.metrics_listen.is_empty()
            && self.agent.metrics_listen.parse::<SocketAddr>().is_err()
        {
            return err(
                "agent.metrics_listen".into(),
                "must be host:port, e.g. 127.0.0.1:9100, or empty to disable",
            );
        }
        if self.agent.count_interval_s.is_nan() || self.agent.count_interval_s <= 0.0 {
            return err(
                "agent.count_interval_s".into(),
                "must be a positive number of seconds",
            );
        }
        if self.agent.status_interval_s.is_nan() || self.agent.status_interval_s < 1.0 {
            return err(
                "agent.status_interval_s".into(),
                "must be at least 1 second",
            );
        }
        for (k, v) in [
            ("detection.face_score", self.detection.face_score),
            ("detection.face_nms", self.detection.face_nms),
            ("detection.person_score", self.detection.person_score),
            ("detection.person_nms", self.detection.person_nms),
        ] {
            if !(0.0..=1.0).contains(&v) {
                return err(k.into(), "must be between 0 and 1");
            }
        }
        if let Err(e) = self.tracking.validate() {
            return err(format!("tracking.{}", e.field), &e.to_string());
        }
        if self.load.analysis_threads > 1024 {
            return err(
                "load.analysis_threads".into(),
                "must be 0 (automatic) to 1024",
            );
        }
        if let Some(Err(m)) = self.load.reliable_fps.map(check_reliable_fps) {
            return err("load.reliable_fps".into(), m);
        }
        if self.analysis.faces_per_track == 0 {
            return err("analysis.faces_per_track".into(), "must be at least 1");
        }
        if let Some(m) = &self.mqtt {
            if let Err(e) = m.connection.validate() {
                return err(e.key(), &e.message());
            }
            if m.max_inflight == 0 {
                return err("mqtt.max_inflight".into(), "must be at least 1");
            }
            if !(0.0..=300.0).contains(&m.shutdown_drain_s) {
                return err(
                    "mqtt.shutdown_drain_s".into(),
                    "must be between 0 and 300 seconds",
                );
            }
        }
        let w = &self.watchlist;
        if w.max_sync_bytes < 1024 {
            return err("watchlist.max_sync_bytes".into(), "must be at least 1024");
        }
        for (i, k) in self.watchlist.hub_public_keys.iter().enumerate() {
            if let Err(e) = checkpoint_protocol::signed::HubKey::parse(k) {
                return err(
                    format!("watchlist.hub_public_keys[{i}]"),
                    &format!(
                        "{e} (copy it from `central-hub agent add` or `central-hub sync-key show`)"
                    ),
                );
            }
        }
        if !w.purge_interval_s.is_finite() || w.purge_interval_s <= 0.0 {
            return err(
                "watchlist.purge_interval_s".into(),
                "must be a positive number of seconds",
            );
        }
        if !(32..=1024).contains(&w.snapshot_max_side) {
            return err(
                "watchlist.snapshot_max_side".into(),
                "must be between 32 and 1024 pixels",
            );
        }
        if !(1..=100).contains(&w.snapshot_quality) {
            return err(
                "watchlist.snapshot_quality".into(),
                "must be between 1 and 100",
            );
        }
        if w.matching.min_faces == 0 {
            return err("watchlist.match.min_faces".into(), "must be at least 1");
        }
        if w.matching.top_k == 0 {
            return err("watchlist.match.top_k".into(), "must be at least 1");
        }
        if w.enabled == Some(true) && !self.detection.embed_faces {
            return err(
                "watchlist.enabled".into(),
                "watchlist matching needs face embeddings: set detection.embed_faces = true, or watchlist.enabled = false",
            );
        }
        if self.cameras.is_empty() {
            return err("cameras".into(), "at least one camera is needed");
        }
        let mut ids = HashSet::new();
        for (i, cam) in self.cameras.iter().enumerate() {
            let key = |s: &str| format!("cameras[{i}].{s}");
            if !valid_topic_id(&cam.id) {
                return err(key("id"), "must be 1-64 characters of a-z, 0-9, '-' or '_'");
            }
            if !ids.insert(cam.id.as_str()) {
                return err(key("id"), &format!("camera id '{}' is used twice", cam.id));
            }
            if let Err(e) = cam.stream.validate() {
                return err(key("stream"), &e.to_string());
            }
            if let Some(Err(m)) = cam.reliable_fps.map(check_reliable_fps) {
                return err(key("reliable_fps"), m);
            }
            let mut line_ids = HashSet::new();
            for (j, l) in cam.lines.iter().enumerate() {
                let lkey = |s: &str| format!("cameras[{i}].lines[{j}].{s}");
                if !valid_topic_id(&l.id) {
                    return err(
                        lkey("id"),
                        "must be 1-64 characters of a-z, 0-9, '-' or '_'",
                    );
                }
                if !line_ids.insert(l.id.as_str()) {
                    return err(
                        lkey("id"),
                        &format!("line id '{}' is used twice on this camera", l.id),
                    );
                }
                for (name, p) in [("a", l.a), ("b", l.b)] {
                    let ok = p.iter().all(|v| v.is_finite())
                        && match l.coords {
                            crate::analysis::Coords::Normalized => {
                                p.iter().all(|v| (0.0..=1.0).contains(v))
                            }
                            crate::analysis::Coords::Pixels => p.iter().all(|v| *v >= 0.0),
                        };
                    if !ok {
                        return err(
                            lkey(name),
                            "normalized coordinates must lie in 0..1 (pixels: non-negative)",
                        );
                    }
                }
                if l.a == l.b {
                    return err(lkey("b"), "the line's two ends are the same point");
                }
                if let Some(b) = l.band {
                    if !(b >= 0.0 && b.is_finite()) {
                        return err(lkey("band"), "must be a non-negative number");
                    }
                }
            }
        }
        Ok(())
    }
}

fn check_reliable_fps(v: f64) -> Result<(), &'static str> {
    if v.is_finite() && v > 0.0 && v <= 100.0 {
        Ok(())
    } else {
        Err("must be a frame rate above 0 and at most 100 (frames per second)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[site]
id = "catba-pier"

[[cameras]]
id = "gangway"
mode = "faces"
[cameras.stream]
analysis_fps = 10
source = { kind = "test", pattern = "ball", width = 640, height = 480, fps = 25 }
[[cameras.lines]]
id = "main"
a = [0.0, 0.5]
b = [1.0, 0.5]
in_side = "right"
"#;

    /// The example the README points at is valid and complete: every key the agent has a value for (defaults
    /// included) is written in it.
    #[test]
    fn the_example_config_is_valid_and_complete() {
        let text = include_str!("../../config/site.example.toml");
        let cfg =
            Config::parse(text).unwrap_or_else(|(k, m)| panic!("site.example.toml: {k}: {m}"));
        let missing = checkpoint_config::missing_keys(&cfg, text).unwrap();
        assert!(
            missing.is_empty(),
            "keys the agent knows that site.example.toml leaves out: {missing:?}"
        );
    }

    #[test]
    fn good_config_parses_with_defaults() {
        let c = Config::parse(GOOD).unwrap();
        assert_eq!(c.cameras[0].mode, Mode::Faces);
        assert_eq!(c.agent.id, "agent-1");
        assert!(c.cameras[0].lines[0].site_boundary);
        assert!(c.watchlist.active(c.detection.embed_faces));
        assert_eq!(c.watchlist.matching.min_faces, 2);
    }

    #[test]
    fn watchlist_settings_are_checked_by_key() {
        for (extra, key) in [
            (
                "[watchlist]\nsnapshot_quality = 0\n",
                "watchlist.snapshot_quality",
            ),
            ("[watchlist]\nindex = \"annoy\"\n", "watchlist.index"),
            (
                "[watchlist.match]\nmin_faces = 0\n",
                "watchlist.match.min_faces",
            ),
            ("[watchlist.match]\nthreshold = 0.2\n", "watchlist.match"),
            (
                "[detection]\nembed_faces = false\n[watchlist]\nenabled = true\n",
                "watchlist.enabled",
            ),
        ] {
            let text = GOOD.replace("[[cameras]]", &format!("{extra}\n[[cameras]]"));
            let (k, msg) = Config::parse(&text).unwrap_err();
            assert!(k.starts_with(key), "{extra}: key {k} ({msg})");
        }
        let off = GOOD.replace(
            "[[cameras]]",
            "[detection]\nembed_faces = false\n\n[[cameras]]",
        );
        let c = Config::parse(&off).unwrap();
        assert!(!c.watchlist.active(c.detection.embed_faces));
    }

    #[test]
    fn errors_name_the_bad_key() {
        let bad = GOOD.replace("in_side = \"right\"", "in_side = \"up\"");
        let (key, msg) = Config::parse(&bad).unwrap_err();
        assert_eq!(key, "cameras[0].lines[0].in_side", "{msg}");

        let bad = GOOD.replace("mode = \"faces\"", "mode = \"faces\"\nfps = 3");
        let (key, msg) = Config::parse(&bad).unwrap_err();
        assert!(key.starts_with("cameras[0]"), "{key}: {msg}");
        assert!(msg.contains("fps"), "{msg}");

        let bad = GOOD.replace("a = [0.0, 0.5]", "a = [0.0, 1.5]");
        assert_eq!(Config::parse(&bad).unwrap_err().0, "cameras[0].lines[0].a");

        let bad = GOOD.replace("id = \"catba-pier\"", "id = \"Cat Ba\"");
        assert_eq!(Config::parse(&bad).unwrap_err().0, "site.id");

        let bad = format!("{GOOD}\n[tracking]\nlost_timeout_s = -1\n");
        assert!(Config::parse(&bad).unwrap_err().0.starts_with("tracking."));
    }

    #[test]
    fn load_settings_default_and_are_checked_by_key() {
        let c = Config::parse(GOOD).unwrap();
        assert_eq!(c.load.analysis_threads, 0);
        assert!(c.load.adaptive_sampling);
        assert_eq!(
            c.cameras[0].reliable_fps(&c.load),
            crate::load::DEFAULT_RELIABLE_FPS
        );
        let people = Config::parse(&GOOD.replace("mode = \"faces\"", "mode = \"people\"")).unwrap();
        assert_eq!(
            people.cameras[0].reliable_fps(&people.load),
            crate::load::DEFAULT_RELIABLE_FPS_PEOPLE
        );

        let text = GOOD.replace(
            "[[cameras]]",
            "[load]\nanalysis_threads = 2\nreliable_fps = 3.5\nadaptive_sampling = false\n\n[[cameras]]",
        );
        let c = Config::parse(&text).unwrap();
        assert_eq!(
            (c.load.analysis_threads, c.load.adaptive_sampling),
            (2, false)
        );
        assert_eq!(c.cameras[0].reliable_fps(&c.load), 3.5);
        let text = GOOD.replace("mode = \"faces\"", "mode = \"faces\"\nreliable_fps = 4.0");
        let c = Config::parse(&text).unwrap();
        assert_eq!(c.cameras[0].reliable_fps(&c.load), 4.0);

        for (extra, key) in [
            ("[load]\nreliable_fps = 0\n", "load.reliable_fps"),
            ("[load]\nreliable_fps = nan\n", "load.reliable_fps"),
            ("[load]\nanalysis_threads = 5000\n", "load.analysis_threads"),
            ("[load]\nthreads = 2\n", "load"),
        ] {
            let text = GOOD.replace("[[cameras]]", &format!("{extra}\n[[cameras]]"));
            let (k, msg) = Config::parse(&text).unwrap_err();
            assert!(k.starts_with(key), "{extra}: key {k} ({msg})");
        }
        let bad = GOOD.replace("mode = \"faces\"", "mode = \"faces\"\nreliable_fps = -2");
        assert_eq!(
            Config::parse(&bad).unwrap_err().0,
            "cameras[0].reliable_fps"
        );
    }

    #[test]
    fn tracking_keys_parse_and_are_checked_by_name() {
        // Every key, as an operator tuning low analysis rates would write them.
        let all = format!(
            "{GOOD}\n[tracking]\nhigh_score = 0.5\nlow_score = 0.1\nnew_track_score = 0.6\nmatch_iou = 0.2\n\
             low_match_iou = 0.5\nunconfirmed_match_iou = 0.3\nlost_timeout_s = 1.5\nlost_min_frames = 6\n\
             min_hits = 2\ntentative_misses = 1\ngate_radius = 0.25\nspeed_change = 1.2\nmax_speed = 5.0\n\
             max_size_ratio = 2.0\n"
        );
        let c = Config::parse(&all).unwrap();
        assert_eq!(c.tracking.lost_min_frames, 6);
        assert_eq!(c.tracking.max_speed, Some(5.0));
        // Unset speeds stay unset: each camera fills them in for what it tracks (faces or people).
        assert_eq!(Config::parse(GOOD).unwrap().tracking.max_speed, None);
        for (line, key) in [
            ("max_speed = 0", "tracking.max_speed"),
            ("speed_change = -1", "tracking.speed_change"),
            ("gate_radius = 9", "tracking.gate_radius"),
            ("max_size_ratio = 0.5", "tracking.max_size_ratio"),
            ("lost_min_frames = 1000", "tracking.lost_min_frames"),
            ("tentative_misses = 1000", "tracking.tentative_misses"),
            ("max_sped = 3", "tracking"),
        ] {
            let (k, msg) = Config::parse(&format!("{GOOD}\n[tracking]\n{line}\n")).unwrap_err();
            assert!(k.starts_with(key), "{line}: {k} ({msg})");
        }
    }
}
