//! Per-camera source configuration, deserialised from the agent's TOML.
//!
//! ```toml
//! [cameras.gate1]
//! analysis_fps = 5
//! max_width = 1280
//! max_height = 720
//! decoder = "auto"
//! watchdog_ms = 3000
//! reconnect = { initial_backoff_ms = 500, max_backoff_ms = 3000 }
//!
//! [cameras.gate1.source]
//! kind = "rtsp"
//! url = "rtsp://10.0.0.12:554/stream1"
//! transport = "tcp"
//! latency_ms = 200
//! codec = "auto"
//! ```
//!
//! The source kind sits in its own `source` table because serde cannot combine
//! `deny_unknown_fields` with flattening: keeping the tables apart keeps typos fatal.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::MediaError;

/// Everything needed to run one camera.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    /// Where the video comes from.
    pub source: SourceKind,
    /// Frames per second handed to analysis, sampled by PTS; `None` or `0` delivers every frame.
    #[serde(default)]
    pub analysis_fps: Option<f64>,
    /// Largest width delivered; frames are scaled down (never up) keeping their aspect ratio.
    #[serde(default)]
    pub max_width: Option<u32>,
    /// Largest height delivered; frames are scaled down (never up) keeping their aspect ratio.
    #[serde(default)]
    pub max_height: Option<u32>,
    /// Which H.264/H.265 decoder to use.
    #[serde(default)]
    pub decoder: DecoderPreference,
    /// Threads of a software (libav) decoder: `0` lets libav take one per core. Unset, the agent picks 1
    /// when it has at least as many cameras as cores: each extra thread holds frames of its own and only
    /// competes with the other cameras' decoders for the same cores. Ignored by hardware decoders.
    #[serde(default)]
    pub decoder_threads: Option<u32>,
    /// Backoff between reconnect attempts of live sources.
    #[serde(default)]
    pub reconnect: ReconnectConfig,
    /// A live source that decodes no frame for this long is treated as lost and reconnected.
    ///
    /// 3 s by default: a stalled camera is then detected, backed off (0.5 s) and reconnected
    /// inside the 5 s the product promises for a camera that comes back.
    #[serde(default = "default_watchdog_ms")]
    pub watchdog_ms: u64,
    /// Overrides the policy picked from the source kind (files block, live sources drop).
    #[serde(default)]
    pub drop_policy: Option<DropPolicy>,
    /// Frames that may wait for analysis per camera before the drop policy applies (1..=16).
    #[serde(default = "default_queue_frames")]
    pub queue_frames: usize,
    /// Custom pipeline replacing the built-in template for exotic cameras. It may use the same
    /// placeholders as the templates and must end in `appsink name=sink` producing BGR.
    #[serde(default)]
    pub pipeline: Option<String>,
}

fn default_watchdog_ms() -> u64 {
    3000
}

fn default_queue_frames() -> usize {
    2
}

impl SourceConfig {
    /// A config with every common option at its default.
    pub fn new(source: SourceKind) -> Self {
        Self {
            source,
            analysis_fps: None,
            max_width: None,
            max_height: None,
            decoder: DecoderPreference::default(),
            decoder_threads: None,
            reconnect: ReconnectConfig::default(),
            watchdog_ms: default_watchdog_ms(),
            drop_policy: None,
            queue_frames: default_queue_frames(),
            pipeline: None,
        }
    }

    /// The policy in force: the explicit one, else `Block` for files decoded as fast as
    /// analysis consumes and `DropOldest` for everything paced by a clock.
    pub fn effective_drop_policy(&self) -> DropPolicy {
        self.drop_policy.unwrap_or(match &self.source {
            SourceKind::File(f) if !f.realtime => DropPolicy::Block,
            _ => DropPolicy::DropOldest,
        })
    }

    /// Whether the source is paced by a real-time clock: only those get the watchdog and
    /// reconnects, since a file decoded as fast as possible may legitimately wait on analysis.
    pub fn is_live(&self) -> bool {
        matches!(
            self.source,
            SourceKind::Rtsp(_) | SourceKind::V4l2(_) | SourceKind::Test(_)
        )
    }

    /// The analysis rate, `None` when every frame is wanted.
    pub fn sampling_fps(&self) -> Option<f64> {
        self.analysis_fps.filter(|f| *f > 0.0)
    }

    /// Rejects values that would make the pipeline misbehave rather than fail loudly later.
    pub fn validate(&self) -> Result<(), MediaError> {
        let bad = |m: String| Err(MediaError::Config(m));
        if let Some(f) = self.analysis_fps {
            if !f.is_finite() || f < 0.0 {
                return bad(format!("analysis_fps must be >= 0, got {f}"));
            }
        }
        for (name, v) in [
            ("max_width", self.max_width),
            ("max_height", self.max_height),
        ] {
            if v == Some(0) {
                return bad(format!("{name} must be > 0"));
            }
        }
        if self.decoder_threads.is_some_and(|n| n > 64) {
            return bad(format!(
                "decoder_threads must be 0..=64, got {}",
                self.decoder_threads.unwrap_or_default()
            ));
        }
        if self.watchdog_ms < 200 {
            return bad(format!(
                "watchdog_ms must be >= 200, got {}",
                self.watchdog_ms
            ));
        }
        let r = &self.reconnect;
        if r.initial_backoff_ms == 0 || r.initial_backoff_ms > r.max_backoff_ms {
            return bad(format!(
                "reconnect needs 0 < initial_backoff_ms ({}) <= max_backoff_ms ({})",
                r.initial_backoff_ms, r.max_backoff_ms
            ));
        }
        if !(1..=16).contains(&self.queue_frames) {
            return bad(format!(
                "queue_frames must be 1..=16, got {}",
                self.queue_frames
            ));
        }
        match &self.source {
            SourceKind::Rtsp(r) => {
                let lower = r.url.to_ascii_lowercase();
                if !(lower.starts_with("rtsp://")
                    || lower.starts_with("rtsps://")
                    || lower.starts_with("rtspt://")
                    || lower.starts_with("rtspu://"))
                {
                    return bad(format!("rtsp url must start with rtsp://, got {:?}", r.url));
                }
                if r.latency_ms > 10_000 {
                    return bad(format!("latency_ms {} is unreasonably large", r.latency_ms));
                }
            }
            SourceKind::File(f) => {
                if f.path.as_os_str().is_empty() {
                    return bad("file path is empty".into());
                }
            }
            SourceKind::V4l2(v) => {
                if v.device.is_empty() {
                    return bad("v4l2 device is empty".into());
                }
                if matches!(v.width, Some(0))
                    || matches!(v.height, Some(0))
                    || matches!(v.fps, Some(0))
                {
                    return bad("v4l2 width/height/fps must be > 0".into());
                }
            }
            SourceKind::Test(t) => {
                if t.width == 0 || t.height == 0 || t.fps == 0 {
                    return bad("test width/height/fps must be > 0".into());
                }
                if t.pattern.is_empty()
                    || !t
                        .pattern
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '-')
                {
                    return bad(format!(
                        "test pattern {:?} is not a videotestsrc pattern name",
                        t.pattern
                    ));
                }
            }
        }
        Ok(())
    }
}

/// The source kinds, tagged by `kind`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum SourceKind {
    /// Network camera over RTSP.
    Rtsp(RtspSource),
    /// Local video file.
    File(FileSource),
    /// V4L2 capture device.
    V4l2(V4l2Source),
    /// `videotestsrc` pattern, paced like a live camera.
    Test(TestSource),
}

impl SourceKind {
    /// Short name used in logs and metrics.
    pub fn name(&self) -> &'static str {
        match self {
            SourceKind::Rtsp(_) => "rtsp",
            SourceKind::File(_) => "file",
            SourceKind::V4l2(_) => "v4l2",
            SourceKind::Test(_) => "test",
        }
    }
}

/// `kind = "rtsp"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RtspSource {
    /// `rtsp://user:pass@host:port/path`.
    pub url: String,
    /// RTP transport; TCP by default because it survives NAT and lossy Wi-Fi links.
    #[serde(default)]
    pub transport: RtspTransport,
    /// Jitter buffer latency in milliseconds.
    #[serde(default = "default_latency_ms")]
    pub latency_ms: u32,
    /// Codec the camera sends; `auto` learns it from the camera's SDP.
    #[serde(default)]
    pub codec: CodecHint,
}

fn default_latency_ms() -> u32 {
    200
}

impl RtspSource {
    /// An RTSP source with default transport, latency and codec.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            transport: RtspTransport::default(),
            latency_ms: default_latency_ms(),
            codec: CodecHint::default(),
        }
    }
}

/// `kind = "file"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSource {
    /// Path of the video file.
    pub path: PathBuf,
    /// `false`: decode as fast as analysis consumes, never dropping; `true`: pace to the file's
    /// clock like a live camera.
    #[serde(default)]
    pub realtime: bool,
    /// Start over at the end instead of reporting `Ended`.
    #[serde(default, rename = "loop")]
    pub looping: bool,
}

/// `kind = "v4l2"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct V4l2Source {
    /// Device node.
    #[serde(default = "default_device")]
    pub device: String,
    /// Capture width to request from the device.
    #[serde(default)]
    pub width: Option<u32>,
    /// Capture height to request from the device.
    #[serde(default)]
    pub height: Option<u32>,
    /// Capture frame rate to request from the device.
    #[serde(default)]
    pub fps: Option<u32>,
}

fn default_device() -> String {
    "/dev/video0".into()
}

/// `kind = "test"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestSource {
    /// `videotestsrc` pattern nick: `smpte`, `ball`, `snow`, `black`, ...
    #[serde(default = "default_pattern")]
    pub pattern: String,
    /// Frame width.
    #[serde(default = "default_test_width")]
    pub width: u32,
    /// Frame height.
    #[serde(default = "default_test_height")]
    pub height: u32,
    /// Frame rate.
    #[serde(default = "default_test_fps")]
    pub fps: u32,
}

fn default_pattern() -> String {
    "smpte".into()
}
fn default_test_width() -> u32 {
    640
}
fn default_test_height() -> u32 {
    480
}
fn default_test_fps() -> u32 {
    30
}

/// RTP transport for RTSP.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RtspTransport {
    /// Interleaved in the RTSP TCP connection.
    #[default]
    Tcp,
    /// UDP unicast.
    Udp,
    /// UDP first, TCP when UDP times out (rtspsrc's own fallback).
    Auto,
}

/// Codec an RTSP camera sends.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CodecHint {
    /// Learn it from the SDP (first attempt assumes H.264 and rebuilds at once if wrong).
    #[default]
    Auto,
    /// H.264 / AVC.
    H264,
    /// H.265 / HEVC.
    H265,
}

/// Which decoder implementation to use.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DecoderPreference {
    /// Hardware when its element is registered, else libav; falls back to libav when the
    /// hardware decoder fails at run time.
    #[default]
    Auto,
    /// libav (`avdec_h264` / `avdec_h265`).
    Software,
    /// NVDEC (`nvh264dec`/`nvh265dec`) or Jetson's `nvv4l2decoder`.
    Nvidia,
    /// VA-API (`vah264dec` or `vaapih264dec`).
    Vaapi,
}

/// What a camera does when analysis falls behind and its lane is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DropPolicy {
    /// Block the streaming thread until analysis takes a frame: nothing is ever dropped.
    Block,
    /// Evict the oldest waiting frame and count it: live video stays fresh, memory bounded.
    DropOldest,
}

/// Exponential reconnect backoff (with jitter).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReconnectConfig {
    /// First wait after a failure.
    #[serde(default = "default_initial_backoff_ms")]
    pub initial_backoff_ms: u64,
    /// Ceiling of the doubling wait.
    ///
    /// 3 s by default rather than a longer ceiling: a camera that comes back after a long outage
    /// is retried at most 3 s later, which keeps "frames resume within 5 s" true.
    #[serde(default = "default_max_backoff_ms")]
    pub max_backoff_ms: u64,
}

fn default_initial_backoff_ms() -> u64 {
    500
}
fn default_max_backoff_ms() -> u64 {
    3000
}

impl Default for ReconnectConfig {
    fn default() -> Self {
        Self {
            initial_backoff_ms: default_initial_backoff_ms(),
            max_backoff_ms: default_max_backoff_ms(),
        }
    }
}

impl ReconnectConfig {
    /// The wait before attempt `attempt` (1-based), before jitter.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let shift = attempt.saturating_sub(1).min(20);
        let ms = self
            .initial_backoff_ms
            .saturating_mul(1u64 << shift)
            .min(self.max_backoff_ms);
        Duration::from_millis(ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Agent {
        cameras: std::collections::BTreeMap<String, SourceConfig>,
    }

    const EXAMPLE: &str = r#"
[cameras.gate1]
analysis_fps = 5
max_width = 1280
max_height = 720
decoder = "auto"
reconnect = { initial_backoff_ms = 250, max_backoff_ms = 2000 }
[cameras.gate1.source]
kind = "rtsp"
url = "rtsp://10.0.0.12:554/stream1"
transport = "udp"
codec = "h265"

[cameras.replay.source]
kind = "file"
path = "/data/clip one.mp4"
loop = true

[cameras.usb]
drop_policy = "block"
[cameras.usb.source]
kind = "v4l2"
width = 1280
height = 720
fps = 30

[cameras.demo]
pipeline = "videotestsrc ! videoconvert ! video/x-raw,format=BGR ! appsink name=sink"
[cameras.demo.source]
kind = "test"
pattern = "ball"
width = 320
height = 240
fps = 15
"#;

    #[test]
    fn parses_every_kind_with_defaults() {
        let agent: Agent = toml::from_str(EXAMPLE).expect("example parses");
        let gate = &agent.cameras["gate1"];
        assert_eq!(
            gate.source,
            SourceKind::Rtsp(RtspSource {
                url: "rtsp://10.0.0.12:554/stream1".into(),
                transport: RtspTransport::Udp,
                latency_ms: 200,
                codec: CodecHint::H265,
            })
        );
        assert_eq!(gate.sampling_fps(), Some(5.0));
        assert_eq!(gate.reconnect.backoff(1), Duration::from_millis(250));
        assert_eq!(gate.reconnect.backoff(4), Duration::from_millis(2000));
        assert_eq!(gate.effective_drop_policy(), DropPolicy::DropOldest);
        assert_eq!(gate.watchdog_ms, 3000);

        let replay = &agent.cameras["replay"];
        assert_eq!(
            replay.source,
            SourceKind::File(FileSource {
                path: "/data/clip one.mp4".into(),
                realtime: false,
                looping: true
            })
        );
        assert_eq!(replay.effective_drop_policy(), DropPolicy::Block);
        assert!(!replay.is_live());

        let usb = &agent.cameras["usb"];
        let SourceKind::V4l2(v) = &usb.source else {
            panic!("v4l2 expected")
        };
        assert_eq!(v.device, "/dev/video0");
        assert_eq!(
            (v.width, v.height, v.fps),
            (Some(1280), Some(720), Some(30))
        );
        assert_eq!(usb.effective_drop_policy(), DropPolicy::Block);

        let demo = &agent.cameras["demo"];
        assert!(demo.pipeline.is_some());
        assert_eq!(
            demo.source,
            SourceKind::Test(TestSource {
                pattern: "ball".into(),
                width: 320,
                height: 240,
                fps: 15
            })
        );
        for cfg in agent.cameras.values() {
            cfg.validate().expect("example is valid");
        }
    }

    #[test]
    fn rejects_unknown_fields_everywhere() {
        let cases = [
            "[source]\nkind = \"rtsp\"\nurl = \"rtsp://x/y\"\nlatency = 5\n",
            "analysis_fsp = 5\n[source]\nkind = \"test\"\n",
            "reconnect = { initial = 1 }\n[source]\nkind = \"test\"\n",
            "[source]\nkind = \"file\"\npath = \"/a.mp4\"\nrealtme = true\n",
            "[source]\nkind = \"webcam\"\n",
            "[source]\nkind = \"rtsp\"\nurl = \"rtsp://x/y\"\ntransport = \"sctp\"\n",
        ];
        for case in cases {
            assert!(
                toml::from_str::<SourceConfig>(case).is_err(),
                "accepted: {case}"
            );
        }
    }

    #[test]
    fn validation_catches_bad_values() {
        let mut cfg = SourceConfig::new(SourceKind::Rtsp(RtspSource::new("http://cam/stream")));
        assert!(cfg.validate().is_err());
        cfg.source = SourceKind::Rtsp(RtspSource::new("rtsp://cam/stream"));
        cfg.validate().expect("valid");
        cfg.analysis_fps = Some(-1.0);
        assert!(cfg.validate().is_err());
        cfg.analysis_fps = Some(0.0);
        assert_eq!(cfg.sampling_fps(), None);
        cfg.reconnect.initial_backoff_ms = 5000;
        assert!(cfg.validate().is_err());
        cfg.reconnect = ReconnectConfig::default();
        cfg.decoder_threads = Some(65);
        let err = cfg.validate().unwrap_err().to_string();
        assert!(err.contains("decoder_threads"), "{err}");
        cfg.decoder_threads = Some(1);
        cfg.validate().expect("one decoder thread is valid");
        cfg.source = SourceKind::Test(TestSource {
            pattern: "ball ! fakesink".into(),
            width: 10,
            height: 10,
            fps: 1,
        });
        assert!(cfg.validate().is_err());
    }
}
