//! Camera sources: one supervised GStreamer pipeline per camera.
//!
//! Each camera gets one supervisor thread that builds the pipeline, watches its bus with timed
//! pops (no GLib main loop, so nothing shared between cameras can be wedged), runs the watchdog
//! and reconnects with jittered exponential backoff. Frames leave through the appsink callback on
//! GStreamer's streaming thread; frames skipped by `analysis_fps` are dropped by a pad probe
//! *before* scaling and conversion, so they cost only their decode.
//!
//! - `status`: the state, events and counters a camera publishes;
//! - `supervisor`: the per-camera thread (attempts, rebuilds, reconnect backoff);
//! - `bus`: the bus messages and the watchdog of one running pipeline;
//! - `wiring`: the sampling probe and appsink callback on the streaming threads;
//! - `sampling`: which frames the probe keeps, and the stream clock they are stamped with.

mod bus;
mod sampling;
mod status;
mod supervisor;
mod wiring;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use crossbeam_channel::{Receiver, Sender, TrySendError};
use parking_lot::{Condvar, Mutex};
use tracing::{info, warn};

use crate::config::{DropPolicy, SourceConfig, SourceKind};
use crate::error::require_element;
use crate::pipeline::{choose_decoder, Attempt, Plan, VideoCodec};
use crate::queue::{FrameSender, Lane};
use crate::MediaError;
use sampling::{RateCap, Timeline};
pub use status::{CameraEvent, SourceState, SourceStats, StatsSnapshot};
use supervisor::supervise;

/// Entry point for starting cameras.
pub struct CameraSource;

impl CameraSource {
    /// Validates `cfg`, then runs the camera on its own supervisor thread, delivering frames into
    /// `out`. Returns an error only for problems no retry can fix (invalid config, broken
    /// template or custom pipeline, missing plugin); everything at run time (unreachable camera,
    /// bad file) is reported through [`SourceState`].
    pub fn spawn(
        camera_id: &str,
        cfg: SourceConfig,
        out: FrameSender,
    ) -> Result<CameraHandle, MediaError> {
        crate::init()?;
        if camera_id.is_empty() {
            return Err(MediaError::Config("camera id is empty".into()));
        }
        cfg.validate()?;
        let plan = Plan::new(&cfg)?;
        dry_run(&cfg, &plan)?;

        let camera_id: Arc<str> = camera_id.into();
        let stats = Arc::new(SourceStats::default());
        let policy = cfg.effective_drop_policy();
        let lane = out.lane(cfg.queue_frames, policy, stats.clone());
        // Bounded with drop-oldest (see `emit`): a caller that never reads events must not grow
        // memory during a long outage; the current state is always in `stats`.
        let (events_tx, events_rx) = crossbeam_channel::bounded(64);
        let inner = Arc::new(Inner {
            camera_id: camera_id.clone(),
            live: cfg.is_live(),
            cfg,
            stats: stats.clone(),
            stop: StopSignal::default(),
            events_tx,
            events_drain: events_rx.clone(),
            lane,
            seq: AtomicU64::new(0),
            timeline: Mutex::new(Timeline::default()),
            no_receiver: AtomicBool::new(false),
            rate_cap: Arc::new(RateCap::default()),
        });
        info!(camera = %camera_id, kind = inner.cfg.source.name(), policy = ?policy, "starting camera");
        inner.emit(SourceState::Starting);
        let worker = inner.clone();
        let thread = std::thread::Builder::new()
            // Thread names must not contain NUL (std would panic); ids come from config.
            .name(format!(
                "cam-{}",
                camera_id.replace(|c: char| c.is_control(), "_")
            ))
            .spawn(move || supervise(worker, plan))
            .map_err(|e| MediaError::Thread(e.to_string()))?;
        Ok(CameraHandle {
            inner,
            thread: Some(thread),
            events: events_rx,
        })
    }
}

/// Builds the first pipeline once without starting it, so template and plugin problems surface
/// from `spawn` instead of as a `Down` state later.
fn dry_run(cfg: &SourceConfig, plan: &Plan) -> Result<(), MediaError> {
    let codec = match &cfg.source {
        SourceKind::Rtsp(r) => Some(Plan::initial_rtsp_codec(r.codec)),
        // The codec of a file is only known after probing it (on the camera thread); check the
        // elements every file pipeline needs and parse custom pipelines with a likely guess.
        SourceKind::File(_) if !plan.custom => {
            for e in [
                "filesrc",
                "parsebin",
                "videoscale",
                "videoflip",
                "videoconvert",
                "appsink",
            ] {
                require_element(e)?;
            }
            return Ok(());
        }
        SourceKind::File(_) => Some(VideoCodec::H264),
        SourceKind::V4l2(_) | SourceKind::Test(_) => None,
    };
    let decoder = match codec {
        Some(c) => Some(choose_decoder(c, cfg.decoder, false)?),
        None => None,
    };
    let description = plan.describe(&Attempt {
        codec,
        decoder,
        stream: None,
    })?;
    let pipeline = Plan::parse(&description)?;
    plan.verify(&pipeline, &description)
}

/// Owner of a running camera. Dropping it stops the camera.
pub struct CameraHandle {
    inner: Arc<Inner>,
    thread: Option<JoinHandle<()>>,
    events: Receiver<CameraEvent>,
}

impl CameraHandle {
    /// The camera's id.
    pub fn camera_id(&self) -> &str {
        &self.inner.camera_id
    }

    /// Shared live counters.
    pub fn stats(&self) -> Arc<SourceStats> {
        self.inner.stats.clone()
    }

    /// Current state.
    pub fn state(&self) -> SourceState {
        self.inner.stats.state()
    }

    /// State changes, oldest first. The channel keeps the latest 64 events; older ones are
    /// discarded if nobody reads them.
    pub fn events(&self) -> Receiver<CameraEvent> {
        self.events.clone()
    }

    /// The drop policy in force.
    pub fn drop_policy(&self) -> DropPolicy {
        self.inner.cfg.effective_drop_policy()
    }

    /// Caps the sampling rate below `analysis_fps` (frames per second of stream time), or lifts
    /// the cap with `None`. Frames above the cap are skipped by the sampling probe, before scaling
    /// and conversion, and counted in [`SourceStats::frames_dropped_load`]; the kept ones stay
    /// evenly spaced. A cap at or above `analysis_fps` changes nothing. Takes effect on the next
    /// frame, across reconnects.
    pub fn set_rate_cap(&self, fps: Option<f64>) {
        self.inner.rate_cap.set(fps);
    }

    /// The rate frames are sampled at now: `analysis_fps` or the cap, whichever is lower; `None`
    /// when every decoded frame is kept.
    pub fn sampling_fps(&self) -> Option<f64> {
        match (self.inner.cfg.sampling_fps(), self.inner.rate_cap.get()) {
            (Some(f), Some(c)) => Some(f.min(c)),
            (f, c) => f.or(c),
        }
    }

    /// Whether the supervisor has finished (ended, down or stopped).
    pub fn is_finished(&self) -> bool {
        self.thread.as_ref().is_none_or(|t| t.is_finished())
    }

    /// Stops the pipeline and joins the supervisor thread. Frames already queued stay
    /// receivable. Idempotent.
    pub fn stop(&mut self) {
        self.inner.stop.set();
        // Wakes a streaming thread blocked on a full `Block` lane.
        self.inner.lane.close();
        if let Some(t) = self.thread.take() {
            if t.join().is_err() {
                warn!(camera = %self.inner.camera_id, "camera supervisor thread panicked");
            }
        }
    }
}

impl Drop for CameraHandle {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Stop request that can be waited on with a timeout (for interruptible backoff sleeps).
#[derive(Default)]
struct StopSignal {
    flag: AtomicBool,
    lock: Mutex<()>,
    cv: Condvar,
}

impl StopSignal {
    fn set(&self) {
        self.flag.store(true, Ordering::SeqCst);
        let _g = self.lock.lock();
        self.cv.notify_all();
    }

    fn is_set(&self) -> bool {
        self.flag.load(Ordering::SeqCst)
    }

    /// Sleeps up to `d`; returns true when stopped.
    fn wait(&self, d: Duration) -> bool {
        let deadline = Instant::now() + d;
        let mut g = self.lock.lock();
        while !self.is_set() {
            if self.cv.wait_until(&mut g, deadline).timed_out() {
                break;
            }
        }
        self.is_set()
    }
}

struct Inner {
    camera_id: Arc<str>,
    cfg: SourceConfig,
    live: bool,
    stats: Arc<SourceStats>,
    stop: StopSignal,
    events_tx: Sender<CameraEvent>,
    events_drain: Receiver<CameraEvent>,
    lane: Lane,
    seq: AtomicU64,
    timeline: Mutex<Timeline>,
    no_receiver: AtomicBool,
    rate_cap: Arc<RateCap>,
}

impl Inner {
    fn emit(&self, state: SourceState) {
        {
            let mut cur = self.stats.state.lock();
            if *cur == state && !matches!(state, SourceState::Starting) {
                return;
            }
            *cur = state.clone();
        }
        match &state {
            SourceState::Down { reason } => warn!(camera = %self.camera_id, %reason, "camera down"),
            SourceState::Reconnecting { attempt, backoff } => {
                warn!(camera = %self.camera_id, attempt, backoff_ms = backoff.as_millis() as u64, "camera reconnecting")
            }
            s => info!(camera = %self.camera_id, state = ?s, "camera state"),
        }
        let ev = CameraEvent {
            camera_id: self.camera_id.clone(),
            state,
            wall: SystemTime::now(),
        };
        if let Err(TrySendError::Full(ev)) = self.events_tx.try_send(ev) {
            let _ = self.events_drain.try_recv();
            let _ = self.events_tx.try_send(ev);
        }
    }
}

/// Per-pipeline state shared with the streaming threads.
struct AttemptCtx {
    closing: AtomicBool,
    up_sent: AtomicBool,
    frames: AtomicU64,
    started: Instant,
    last_frame_ms: AtomicU64,
    detected_codec: Mutex<Option<VideoCodec>>,
}

impl AttemptCtx {
    fn new() -> Self {
        Self {
            closing: AtomicBool::new(false),
            up_sent: AtomicBool::new(false),
            frames: AtomicU64::new(0),
            started: Instant::now(),
            last_frame_ms: AtomicU64::new(0),
            detected_codec: Mutex::new(None),
        }
    }

    fn touch(&self) {
        self.frames.fetch_add(1, Ordering::Relaxed);
        self.last_frame_ms
            .store(self.started.elapsed().as_millis() as u64, Ordering::Relaxed);
    }

    /// Time since the last decoded frame, or since the start when none came yet.
    fn idle(&self) -> Duration {
        let now = self.started.elapsed().as_millis() as u64;
        Duration::from_millis(now.saturating_sub(self.last_frame_ms.load(Ordering::Relaxed)))
    }
}
