//! Camera sources: one supervised GStreamer pipeline per camera.
//!
//! Each camera gets one supervisor thread that builds the pipeline, watches its bus with timed
//! pops (no GLib main loop, so nothing shared between cameras can be wedged), runs the watchdog
//! and reconnects with jittered exponential backoff. Frames leave through the appsink callback on
//! GStreamer's streaming thread; frames skipped by `analysis_fps` are dropped by a pad probe
//! *before* scaling and conversion, so they cost only their decode.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use checkpoint_vision::BgrImage;
use crossbeam_channel::{Receiver, Sender, TrySendError};
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use gstreamer_video as gst_video;
use gstreamer_video::prelude::*;
use parking_lot::{Condvar, Mutex};
use serde::Serialize;
use tracing::{debug, info, warn};

use crate::config::{CodecHint, DecoderPreference, DropPolicy, SourceConfig, SourceKind};
use crate::error::require_element;
use crate::pipeline::{
    choose_decoder, codec_from_rtp_caps, link_chosen_stream, probe_file, require_decoder, Attempt,
    Plan, VideoCodec,
};
use crate::queue::{Frame, FrameSender, Lane, Pushed};
use crate::MediaError;

/// Lifecycle of a camera, as published in `camera_status`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum SourceState {
    /// Building the first pipeline.
    #[default]
    Starting,
    /// Frames are flowing at this (delivered) size; `fps` is the stream's nominal rate when the
    /// caps carry one.
    Up {
        /// Delivered frame width.
        width: u32,
        /// Delivered frame height.
        height: u32,
        /// Nominal frame rate of the stream, if known.
        fps: Option<f64>,
    },
    /// The source was lost; the next attempt starts after `backoff`.
    Reconnecting {
        /// Consecutive failed attempts, 1-based.
        attempt: u32,
        /// Wait before the next attempt (jitter included).
        backoff: Duration,
    },
    /// Permanent failure; the camera will not retry (bad file, missing plugin, bad config).
    Down {
        /// Human-readable cause including GStreamer's error and debug text.
        reason: String,
    },
    /// A file source reached its end (and does not loop).
    Ended,
    /// Stopped through [`CameraHandle::stop`] or drop.
    Stopped,
}

/// A state change of one camera.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CameraEvent {
    /// Camera that changed state.
    #[serde(serialize_with = "serialize_arc_str")]
    pub camera_id: Arc<str>,
    /// The new state.
    pub state: SourceState,
    /// When it changed.
    pub wall: SystemTime,
}

fn serialize_arc_str<S: serde::Serializer>(v: &Arc<str>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(v)
}

/// Live counters of one camera, cheap to read from any thread.
#[derive(Debug, Default)]
pub struct SourceStats {
    /// Frames that came out of the decoder.
    pub frames_decoded: AtomicU64,
    /// Frames kept by sampling, converted and handed to the camera's lane.
    pub frames_sampled: AtomicU64,
    /// Frames taken by the receiver.
    pub frames_delivered: AtomicU64,
    /// Frames skipped to honour `analysis_fps`.
    pub frames_dropped_sampling: AtomicU64,
    /// Frames skipped at the sampler, before scaling and conversion, because the consumer capped
    /// the rate below `analysis_fps` ([`CameraHandle::set_rate_cap`]): analysis could not keep up.
    pub frames_dropped_load: AtomicU64,
    /// Frames evicted from the lane because analysis fell behind (`DropOldest`).
    pub frames_dropped_backpressure: AtomicU64,
    /// Reconnect attempts made.
    pub reconnects: AtomicU64,
    /// Most frames ever waiting in the lane at once; never above `queue_frames`.
    pub queue_high_water: AtomicUsize,
    state: Mutex<SourceState>,
}

/// A plain copy of [`SourceStats`] for metrics and status messages.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StatsSnapshot {
    /// See [`SourceStats::frames_decoded`].
    pub frames_decoded: u64,
    /// See [`SourceStats::frames_sampled`].
    pub frames_sampled: u64,
    /// See [`SourceStats::frames_delivered`].
    pub frames_delivered: u64,
    /// See [`SourceStats::frames_dropped_sampling`].
    pub frames_dropped_sampling: u64,
    /// See [`SourceStats::frames_dropped_load`].
    pub frames_dropped_load: u64,
    /// See [`SourceStats::frames_dropped_backpressure`].
    pub frames_dropped_backpressure: u64,
    /// See [`SourceStats::reconnects`].
    pub reconnects: u64,
    /// See [`SourceStats::queue_high_water`].
    pub queue_high_water: usize,
    /// Current state.
    pub state: SourceState,
}

impl SourceStats {
    /// Current state.
    pub fn state(&self) -> SourceState {
        self.state.lock().clone()
    }

    /// Copies every counter and the state.
    pub fn snapshot(&self) -> StatsSnapshot {
        let r = Ordering::Relaxed;
        StatsSnapshot {
            frames_decoded: self.frames_decoded.load(r),
            frames_sampled: self.frames_sampled.load(r),
            frames_delivered: self.frames_delivered.load(r),
            frames_dropped_sampling: self.frames_dropped_sampling.load(r),
            frames_dropped_load: self.frames_dropped_load.load(r),
            frames_dropped_backpressure: self.frames_dropped_backpressure.load(r),
            reconnects: self.reconnects.load(r),
            queue_high_water: self.queue_high_water.load(r),
            state: self.state(),
        }
    }

    pub(crate) fn note_queue_len(&self, len: usize) {
        self.queue_high_water.fetch_max(len, Ordering::Relaxed);
    }
}

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

/// Maps per-pipeline PTS onto one stream clock that never goes backwards across reconnects
/// and loops.
#[derive(Default)]
struct Timeline {
    offset_s: Option<f64>,
    last_pts_s: Option<f64>,
    last_wall: Option<Instant>,
}

impl Timeline {
    /// The next frame starts a new PTS origin (new pipeline or a loop back to the start).
    fn new_segment(&mut self) {
        self.offset_s = None;
    }

    fn map(&mut self, raw: Option<gst::ClockTime>, live: bool) -> f64 {
        let now = Instant::now();
        // A live gap lasts as long as the outage did; a file loop is one frame long.
        let gap = match (live, self.last_wall) {
            (true, Some(w)) => now.duration_since(w).as_secs_f64(),
            _ => 1.0 / 30.0,
        }
        .max(1e-3);
        let pts = match raw.map(|t| t.nseconds() as f64 / 1e9) {
            Some(r) => {
                let offset = *self.offset_s.get_or_insert(match self.last_pts_s {
                    None => 0.0,
                    Some(last) => last + gap - r,
                });
                r + offset
            }
            None => self.last_pts_s.map_or(0.0, |l| l + gap),
        };
        let pts = self.last_pts_s.map_or(pts, |l| pts.max(l));
        self.last_pts_s = Some(pts);
        self.last_wall = Some(now);
        pts
    }
}

/// A ceiling on one camera's sampling rate, set by the consumer while analysis cannot keep up
/// and read by the sampling probe on every frame.
#[derive(Debug, Default)]
struct RateCap {
    /// `f64` bits of the cap in frames per second; 0 when there is none.
    bits: AtomicU64,
}

impl RateCap {
    fn get(&self) -> Option<f64> {
        let v = f64::from_bits(self.bits.load(Ordering::Relaxed));
        (v > 0.0 && v.is_finite()).then_some(v)
    }

    fn set(&self, fps: Option<f64>) {
        let v = fps.filter(|f| *f > 0.0 && f.is_finite()).unwrap_or(0.0);
        self.bits.store(v.to_bits(), Ordering::Relaxed);
    }
}

fn interval_ns(fps: f64) -> Option<u64> {
    Some((1e9 / fps) as u64).filter(|i| *i > 0)
}

/// What the sampler decided for one frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sampled {
    Keep,
    /// Above `analysis_fps`.
    Skip,
    /// Within `analysis_fps` but above the load cap.
    Shed,
}

/// Keeps frames at most `analysis_fps` per second of PTS, and at most the load cap's rate while
/// one is set. The configured pace always runs, so a frame the cap sheds is told apart from one
/// sampling would have skipped anyway, and lifting the cap resumes the configured rate at once.
struct Sampler {
    base: Pace,
    /// The pace under the cap while it is below `analysis_fps`.
    capped: Option<Pace>,
    cap: Arc<RateCap>,
    /// PTS of the last frame kept, so a new or changed cap continues from it without a burst or
    /// a gap.
    last_out: Option<u64>,
    /// Frames the cap kept that `analysis_fps` alone would have skipped. The cap picks the frames
    /// closest to its own even schedule, not a subset of the configured one, so each such frame
    /// stands in for one the configured schedule wanted: that one is not counted as shed.
    substitutes: u64,
}

impl Sampler {
    fn new(fps: Option<f64>, cap: Arc<RateCap>) -> Self {
        Self {
            base: Pace::new(fps.and_then(interval_ns)),
            capped: None,
            cap,
            last_out: None,
            substitutes: 0,
        }
    }

    fn keep(&mut self, pts: Option<gst::ClockTime>) -> Sampled {
        let base = self.base.keep(pts);
        let cap = self
            .cap
            .get()
            .and_then(interval_ns)
            .filter(|c| *c > self.base.interval_ns.unwrap_or(0));
        let Some(cap) = cap else {
            self.capped = None;
            self.substitutes = 0;
            if base {
                self.last_out = pts.map(|p| p.nseconds()).or(self.last_out);
                return Sampled::Keep;
            }
            return Sampled::Skip;
        };
        let last_out = self.last_out;
        let pace = self
            .capped
            .get_or_insert_with(|| Pace::continuing(cap, last_out));
        if pace.interval_ns != Some(cap) {
            *pace = Pace::continuing(cap, last_out);
        }
        if pace.keep(pts) {
            self.last_out = pts.map(|p| p.nseconds()).or(self.last_out);
            if !base {
                self.substitutes += 1;
            }
            Sampled::Keep
        } else if base && self.substitutes > 0 {
            self.substitutes -= 1;
            Sampled::Skip
        } else if base {
            Sampled::Shed
        } else {
            Sampled::Skip
        }
    }
}

/// Keeps frames at most one per `interval_ns` of PTS, evenly.
struct Pace {
    interval_ns: Option<u64>,
    next_due: Option<u64>,
    last_kept: Option<u64>,
}

impl Pace {
    fn new(interval_ns: Option<u64>) -> Self {
        Self {
            interval_ns,
            next_due: None,
            last_kept: None,
        }
    }

    /// A pace whose first frame is due one interval after `last` (the last frame kept).
    fn continuing(interval: u64, last: Option<u64>) -> Self {
        Self {
            interval_ns: Some(interval),
            next_due: last.map(|l| l + interval),
            last_kept: last,
        }
    }

    fn keep(&mut self, pts: Option<gst::ClockTime>) -> bool {
        let (Some(interval), Some(pts)) = (self.interval_ns, pts) else {
            return true;
        };
        let p = pts.nseconds();
        // Timestamps jitter a little (RTP clock conversion); without slack a frame a hair
        // early would be skipped and the rate would halve.
        let slack = interval / 8;
        match (self.next_due, self.last_kept) {
            (Some(due), Some(last)) if p >= last => {
                if p + slack < due {
                    return false;
                }
                // Step from the due time so the average rate is exact, but restart from this
                // frame after a gap so no burst is let through to "catch up".
                let next = due + interval;
                self.next_due = Some(if next <= p { p + interval } else { next });
            }
            // First frame, or timestamps went backwards (seek, loop): start over.
            _ => self.next_due = Some(p + interval),
        }
        self.last_kept = Some(p);
        true
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

enum Outcome {
    Stopped,
    Ended,
    Fatal(String),
    /// Lost a live source: back off and reconnect.
    Lost {
        reason: String,
        had_frames: bool,
    },
    /// Rebuild at once with another codec or without hardware decoding.
    Rebuild {
        codec: Option<VideoCodec>,
        avoid_hw: bool,
        why: String,
    },
}

fn supervise(inner: Arc<Inner>, plan: Plan) {
    let cfg = &inner.cfg;
    let mut rng = seed(&inner.camera_id);
    let mut stream: Option<String> = None;
    let mut codec: Option<VideoCodec> = match &cfg.source {
        SourceKind::Rtsp(r) => Some(Plan::initial_rtsp_codec(r.codec)),
        // A codec no installed decoder handles fails here, at once, naming what to install.
        SourceKind::File(f) => {
            match probe_file(&f.path).and_then(|p| require_decoder(&p, &f.path).map(|_| p)) {
                Ok(p) => {
                    info!(camera = %inner.camera_id, video = %p.video_caps_full, stream = p.video_stream, streams = ?p.streams, "probed file");
                    stream = Some(p.video_caps);
                    p.codec
                }
                Err(e) => {
                    inner.emit(SourceState::Down {
                        reason: e.to_string(),
                    });
                    inner.lane.close();
                    return;
                }
            }
        }
        SourceKind::V4l2(_) | SourceKind::Test(_) => None,
    };
    let needs_decoder = matches!(cfg.source, SourceKind::Rtsp(_) | SourceKind::File(_));
    let mut avoid_hw = false;
    let mut failures: u32 = 0;
    let mut last_decoder: Option<String> = None;

    let terminal = loop {
        if inner.stop.is_set() {
            break SourceState::Stopped;
        }
        let decoder = match codec.filter(|_| needs_decoder) {
            Some(c) => match choose_decoder(c, cfg.decoder, avoid_hw) {
                Ok(d) => {
                    if last_decoder.as_deref() != Some(d.element.as_str()) {
                        info!(camera = %inner.camera_id, decoder = %d.element, hardware = d.hardware, reason = %d.reason, "decoder selected");
                        last_decoder = Some(d.element.clone());
                    }
                    Some(d)
                }
                Err(e) => {
                    break SourceState::Down {
                        reason: format!("cannot decode {} video: {e}", c.label()),
                    }
                }
            },
            None => None,
        };
        let attempt = Attempt {
            codec,
            decoder,
            stream: stream.clone(),
        };
        inner.timeline.lock().new_segment();
        match run_pipeline(&inner, &plan, &attempt) {
            Outcome::Stopped => break SourceState::Stopped,
            Outcome::Ended => break SourceState::Ended,
            Outcome::Fatal(reason) => break SourceState::Down { reason },
            Outcome::Rebuild {
                codec: c,
                avoid_hw: a,
                why,
            } => {
                info!(camera = %inner.camera_id, %why, "rebuilding pipeline");
                codec = c.or(codec);
                avoid_hw |= a;
            }
            Outcome::Lost { reason, had_frames } => {
                if !inner.live {
                    break SourceState::Down { reason };
                }
                if had_frames {
                    failures = 0;
                }
                failures = failures.saturating_add(1);
                let backoff = jitter(cfg.reconnect.backoff(failures), &mut rng);
                warn!(camera = %inner.camera_id, %reason, "camera lost");
                inner.stats.reconnects.fetch_add(1, Ordering::Relaxed);
                inner.emit(SourceState::Reconnecting {
                    attempt: failures,
                    backoff,
                });
                if inner.stop.wait(backoff) {
                    break SourceState::Stopped;
                }
            }
        }
    };
    // State first: a consumer that sees the queue disconnect must already read the final state.
    inner.emit(terminal);
    inner.lane.close();
}

fn run_pipeline(inner: &Arc<Inner>, plan: &Plan, attempt: &Attempt) -> Outcome {
    let description = match plan.describe(attempt) {
        Ok(d) => d,
        Err(e) => return Outcome::Fatal(e.to_string()),
    };
    debug!(camera = %inner.camera_id, %description, "building pipeline");
    let pipeline =
        match Plan::parse(&description).and_then(|p| plan.verify(&p, &description).map(|_| p)) {
            Ok(p) => p,
            Err(e) => return Outcome::Fatal(e.to_string()),
        };
    let ctx = Arc::new(AttemptCtx::new());
    if let Err(reason) = wire(inner, plan, attempt, &pipeline, &ctx) {
        return Outcome::Fatal(reason);
    }
    let outcome = watch(inner, attempt, &pipeline, &ctx);
    ctx.closing.store(true, Ordering::SeqCst);
    // Blocks until the streaming threads are out; our callbacks return within ~100 ms once
    // `closing` is set.
    let _ = pipeline.set_state(gst::State::Null);
    outcome
}

/// Installs the sampling probe, the appsink callbacks and RTSP stream selection.
fn wire(
    inner: &Arc<Inner>,
    plan: &Plan,
    attempt: &Attempt,
    pipeline: &gst::Pipeline,
    ctx: &Arc<AttemptCtx>,
) -> Result<(), String> {
    let appsink = pipeline
        .by_name("sink")
        .and_then(|s| s.downcast::<gst_app::AppSink>().ok())
        .ok_or_else(|| "no appsink named `sink`".to_string())?;
    let realtime_file = matches!(&inner.cfg.source, SourceKind::File(f) if f.realtime);
    if let (Some(n), Some(dec)) = (inner.cfg.decoder_threads, pipeline.by_name("decoder")) {
        // libav's decoders have it; hardware decoders do not and keep their own threads.
        if dec.find_property("max-threads").is_some() {
            dec.set_property("max-threads", i32::try_from(n).unwrap_or(i32::MAX));
        }
    }
    // Live sources are paced by their source; waiting on the clock again would only add latency.
    appsink.set_sync(realtime_file);
    appsink.set_max_buffers(1);
    appsink.set_drop(false);
    appsink.set_enable_last_sample(false);
    appsink.set_property("emit-signals", false);

    // Sample before `videoscale` so skipped frames are never scaled or converted. Custom
    // pipelines without an element named `scale` are sampled at the sink instead.
    let probe_pad = pipeline
        .by_name("scale")
        .and_then(|s| s.static_pad("sink"))
        .or_else(|| appsink.static_pad("sink"))
        .ok_or_else(|| "appsink has no sink pad".to_string())?;
    let sampler = Mutex::new(Sampler::new(
        inner.cfg.sampling_fps(),
        inner.rate_cap.clone(),
    ));
    let (stats, pctx) = (inner.stats.clone(), ctx.clone());
    probe_pad.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
        let Some(buffer) = info.buffer() else {
            return gst::PadProbeReturn::Ok;
        };
        stats.frames_decoded.fetch_add(1, Ordering::Relaxed);
        pctx.touch();
        let counter = match sampler.lock().keep(buffer.pts()) {
            Sampled::Keep => return gst::PadProbeReturn::Ok,
            Sampled::Skip => &stats.frames_dropped_sampling,
            Sampled::Shed => &stats.frames_dropped_load,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        // `Handled` rather than `Drop`: the bindings take the buffer out of the probe info and
        // free it themselves; with `Drop` GStreamer 1.22 then unrefs a NULL item and prints a
        // CRITICAL for every skipped frame.
        gst::PadProbeReturn::Handled
    });

    if let (SourceKind::File(_), Some(caps_name)) = (&inner.cfg.source, &attempt.stream) {
        link_chosen_stream(pipeline, caps_name);
    }

    let (sinner, sctx) = (inner.clone(), ctx.clone());
    appsink.set_callbacks(
        gst_app::AppSinkCallbacks::builder()
            .new_sample(move |sink| on_sample(&sinner, &sctx, sink))
            .build(),
    );

    if let (SourceKind::Rtsp(_), Some(src)) = (&inner.cfg.source, pipeline.by_name("src")) {
        if src.factory().is_some_and(|f| f.name() == "rtspsrc") && !plan.custom {
            let (expected, cctx) = (attempt.codec, ctx.clone());
            let selected = AtomicBool::new(false);
            src.connect("select-stream", false, move |args| {
                let caps = args.get(2).and_then(|v| v.get::<gst::Caps>().ok());
                let media = caps
                    .as_ref()
                    .and_then(|c| c.structure(0))
                    .and_then(|s| s.get::<String>("media").ok());
                // Only the first video stream: audio or metadata pads would sit unlinked.
                let mut want = media.as_deref().is_none_or(|m| m == "video")
                    && !selected.swap(true, Ordering::SeqCst);
                if want {
                    let found = caps.as_ref().and_then(|c| codec_from_rtp_caps(c));
                    if found.is_some() && found != expected {
                        // Decline the stream instead of tearing the pipeline down from here:
                        // rtspsrc then fails on its own ("no supported stream") at a point
                        // where stopping it is safe, and the error path rebuilds with `found`.
                        *cctx.detected_codec.lock() = found;
                        want = false;
                    }
                }
                Some(want.to_value())
            });
        }
    }
    Ok(())
}

fn on_sample(
    inner: &Inner,
    ctx: &AttemptCtx,
    sink: &gst_app::AppSink,
) -> Result<gst::FlowSuccess, gst::FlowError> {
    let sample = sink.pull_sample().map_err(|_| gst::FlowError::Flushing)?;
    let (Some(buffer), Some(caps)) = (sample.buffer(), sample.caps()) else {
        warn!(camera = %inner.camera_id, "sample without buffer or caps");
        return Ok(gst::FlowSuccess::Ok);
    };
    let info = gst_video::VideoInfo::from_caps(caps).map_err(|e| {
        warn!(camera = %inner.camera_id, error = %e, %caps, "unusable caps at appsink");
        gst::FlowError::NotNegotiated
    })?;
    if info.format() != gst_video::VideoFormat::Bgr {
        warn!(camera = %inner.camera_id, format = ?info.format(), "appsink must receive BGR; end the pipeline with videoconvert ! video/x-raw,format=BGR");
        return Err(gst::FlowError::NotNegotiated);
    }
    let image = {
        let frame =
            gst_video::VideoFrameRef::from_buffer_ref_readable(buffer, &info).map_err(|e| {
                warn!(camera = %inner.camera_id, error = %e, "cannot map frame");
                gst::FlowError::Error
            })?;
        // Rows are padded to 4 bytes; `from_strided` packs them.
        let stride = frame.plane_stride()[0] as usize;
        let data = frame.plane_data(0).map_err(|_| gst::FlowError::Error)?;
        BgrImage::from_strided(info.width(), info.height(), stride, data).map_err(|e| {
            warn!(camera = %inner.camera_id, error = %e, "bad frame layout");
            gst::FlowError::Error
        })?
    };
    if !ctx.up_sent.swap(true, Ordering::SeqCst) {
        let fps = info.fps();
        let fps =
            (fps.numer() > 0 && fps.denom() > 0).then(|| fps.numer() as f64 / fps.denom() as f64);
        inner.emit(SourceState::Up {
            width: info.width(),
            height: info.height(),
            fps,
        });
    }
    let pts_s = inner.timeline.lock().map(buffer.pts(), inner.live);
    let frame = Frame {
        camera_id: inner.camera_id.clone(),
        seq: inner.seq.fetch_add(1, Ordering::Relaxed),
        pts_s,
        wall: SystemTime::now(),
        image,
    };
    inner.stats.frames_sampled.fetch_add(1, Ordering::Relaxed);
    match inner.lane.push(frame, &|| {
        ctx.closing.load(Ordering::SeqCst) || inner.stop.is_set()
    }) {
        Pushed::Queued => Ok(gst::FlowSuccess::Ok),
        Pushed::Aborted => Err(gst::FlowError::Flushing),
        Pushed::NoReceiver => {
            inner.no_receiver.store(true, Ordering::SeqCst);
            Err(gst::FlowError::Flushing)
        }
    }
}

/// Runs the bus and the watchdog until the pipeline ends, fails or is stopped.
fn watch(
    inner: &Arc<Inner>,
    attempt: &Attempt,
    pipeline: &gst::Pipeline,
    ctx: &Arc<AttemptCtx>,
) -> Outcome {
    let Some(bus) = pipeline.bus() else {
        return Outcome::Fatal("pipeline has no bus".into());
    };
    let cfg = &inner.cfg;
    let watchdog = Duration::from_millis(cfg.watchdog_ms);
    // Connecting and waiting for the first keyframe takes longer than the gap between frames.
    let startup_grace = watchdog * 2;
    let looping = matches!(&cfg.source, SourceKind::File(f) if f.looping);
    let mut missing_plugin: Option<String> = None;

    if let Err(e) = pipeline.set_state(gst::State::Playing) {
        // The bus holds the reason; keep going to read it.
        debug!(camera = %inner.camera_id, error = %e, "set_state(Playing) failed");
    }
    loop {
        if inner.stop.is_set() {
            return Outcome::Stopped;
        }
        if inner.no_receiver.load(Ordering::SeqCst) {
            return Outcome::Fatal("the frame receiver was dropped".into());
        }
        let had_frames = ctx.frames.load(Ordering::Relaxed) > 0;
        if let Some(msg) = bus.timed_pop(gst::ClockTime::from_mseconds(100)) {
            use gst::MessageView;
            match msg.view() {
                MessageView::Error(e) => {
                    let err = MediaError::Gst {
                        element: msg
                            .src()
                            .map(|s| s.path_string().to_string())
                            .unwrap_or_else(|| "?".into()),
                        message: e.error().to_string(),
                        debug: e.debug().map(|d| d.to_string()).unwrap_or_default(),
                    };
                    if let Some(o) = codec_outcome(inner, attempt, ctx) {
                        return o;
                    }
                    if let Some(hint) = missing_plugin.take() {
                        return Outcome::Fatal(format!("{hint}; {err}"));
                    }
                    let from_decoder = pipeline.by_name("decoder").is_some_and(|d| {
                        msg.src().is_some_and(|s| {
                            s == d.upcast_ref::<gst::Object>() || s.has_as_ancestor(&d)
                        })
                    });
                    let hw = attempt.decoder.as_ref().is_some_and(|d| d.hardware);
                    if from_decoder && hw && cfg.decoder == DecoderPreference::Auto {
                        return Outcome::Rebuild {
                            codec: None,
                            avoid_hw: true,
                            why: format!("hardware decoder failed, falling back to libav: {err}"),
                        };
                    }
                    return Outcome::Lost {
                        reason: err.to_string(),
                        had_frames,
                    };
                }
                MessageView::Eos(_) => {
                    if inner.live {
                        return Outcome::Lost {
                            reason: "end of stream".into(),
                            had_frames,
                        };
                    }
                    if !looping {
                        return Outcome::Ended;
                    }
                    inner.timeline.lock().new_segment();
                    if let Err(e) = pipeline.seek_simple(
                        gst::SeekFlags::FLUSH | gst::SeekFlags::KEY_UNIT,
                        gst::ClockTime::ZERO,
                    ) {
                        return Outcome::Fatal(format!("cannot loop: seek to start failed: {e}"));
                    }
                    debug!(camera = %inner.camera_id, "looped file to the start");
                }
                MessageView::Element(el) => {
                    if let Some(s) = el.structure().filter(|s| s.name() == "missing-plugin") {
                        missing_plugin = Some(match s.get::<gst::Caps>("detail") {
                            Ok(caps) => {
                                let place = match &cfg.source {
                                    SourceKind::File(f) => f.path.display().to_string(),
                                    _ => format!("camera {}", inner.camera_id),
                                };
                                crate::error::missing_codec(&caps, &place).to_string()
                            }
                            Err(_) => format!(
                                "no GStreamer plugin handles {}: install the Debian package {}",
                                s.get::<String>("detail").unwrap_or_default(),
                                crate::error::debian_package("")
                            ),
                        });
                    }
                }
                MessageView::Warning(w) => {
                    warn!(camera = %inner.camera_id, warning = %w.error(), debug = ?w.debug(), "GStreamer warning");
                }
                MessageView::Latency(_) => {
                    let _ = pipeline.recalculate_latency();
                }
                MessageView::ClockLost(_) => {
                    // Standard recovery: a new clock is selected on the way back to PLAYING.
                    let _ = pipeline.set_state(gst::State::Paused);
                    let _ = pipeline.set_state(gst::State::Playing);
                }
                _ => {}
            }
        }
        if inner.live {
            let limit = if had_frames { watchdog } else { startup_grace };
            let idle = ctx.idle();
            if idle > limit {
                return Outcome::Lost {
                    reason: format!(
                        "no frame for {} ms (watchdog {} ms)",
                        idle.as_millis(),
                        limit.as_millis()
                    ),
                    had_frames,
                };
            }
        }
    }
}

/// The camera sends another codec than the pipeline was built for.
fn codec_outcome(inner: &Inner, attempt: &Attempt, ctx: &AttemptCtx) -> Option<Outcome> {
    let found = (*ctx.detected_codec.lock())?;
    if Some(found) == attempt.codec {
        return None;
    }
    let SourceKind::Rtsp(r) = &inner.cfg.source else {
        return None;
    };
    Some(if r.codec == CodecHint::Auto {
        Outcome::Rebuild {
            codec: Some(found),
            avoid_hw: false,
            why: format!("camera sends {found:?}"),
        }
    } else {
        Outcome::Fatal(format!(
            "camera sends {found:?} but the config says codec = {:?}; set codec = \"auto\"",
            r.codec
        ))
    })
}

fn seed(camera_id: &str) -> u64 {
    let t = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    camera_id
        .bytes()
        .fold(t | 1, |h, b| (h ^ b as u64).wrapping_mul(0x100_0000_01b3))
}

/// 75-100 % of `d`: cameras that failed together (a switch reboot) do not all reconnect in
/// the same instant, and the ceiling is never exceeded.
fn jitter(d: Duration, state: &mut u64) -> Duration {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    let unit = (*state >> 11) as f64 / (1u64 << 53) as f64;
    d.mul_f64(0.75 + 0.25 * unit)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: u64) -> Option<gst::ClockTime> {
        Some(gst::ClockTime::from_mseconds(v))
    }

    fn sampler(fps: Option<f64>) -> (Sampler, Arc<RateCap>) {
        let cap = Arc::new(RateCap::default());
        (Sampler::new(fps, cap.clone()), cap)
    }

    fn kept(s: &mut Sampler, pts: Option<gst::ClockTime>) -> bool {
        s.keep(pts) == Sampled::Keep
    }

    #[test]
    fn sampler_keeps_target_rate() {
        let (mut s, _) = sampler(Some(10.0));
        // 30 fps source, 3 seconds.
        let n = (0..90)
            .filter(|i| kept(&mut s, Some(gst::ClockTime::from_nseconds(i * 33_333_333))))
            .count();
        assert_eq!(n, 30);
        // 25 fps source.
        let (mut s, _) = sampler(Some(10.0));
        let n = (0..100).filter(|i| kept(&mut s, ms(i * 40))).count();
        assert_eq!(n, 40);
        // Disabled keeps all, frames without PTS are kept.
        let (mut s, _) = sampler(None);
        assert!((0..10).all(|i| kept(&mut s, ms(i))));
        let (mut s, _) = sampler(Some(1.0));
        assert!(kept(&mut s, None));
    }

    #[test]
    fn sampler_restarts_after_timestamps_go_back() {
        let (mut s, _) = sampler(Some(2.0));
        assert!(kept(&mut s, ms(0)));
        assert!(!kept(&mut s, ms(100)));
        assert!(kept(&mut s, ms(500)));
        // Loop back to the start: keep at once.
        assert!(kept(&mut s, ms(0)));
        assert!(!kept(&mut s, ms(200)));
        assert!(kept(&mut s, ms(500)));
        // A gap: keep at once, then regular again.
        assert!(kept(&mut s, ms(10_000)));
        assert!(!kept(&mut s, ms(10_100)));
        assert!(kept(&mut s, ms(10_500)));
    }

    /// Runs a 25 fps source from `from_ms` for `n` frames; returns the kept PTS (ms) and the
    /// frames shed by the cap.
    fn run_25fps(s: &mut Sampler, from_ms: u64, n: u64) -> (Vec<u64>, usize) {
        let mut out = Vec::new();
        let mut shed = 0;
        for i in 0..n {
            let t = from_ms + i * 40;
            match s.keep(ms(t)) {
                Sampled::Keep => out.push(t),
                Sampled::Shed => shed += 1,
                Sampled::Skip => {}
            }
        }
        (out, shed)
    }

    #[test]
    fn a_load_cap_lowers_the_rate_evenly_and_counts_what_it_sheds() {
        let (mut s, cap) = sampler(Some(10.0));
        cap.set(Some(4.0));
        let (kept, shed) = run_25fps(&mut s, 0, 250);
        // 10 s at 4 fps; the 10 fps schedule would have kept 100, so 60 were shed for load.
        assert_eq!(kept.len(), 40);
        assert_eq!(shed, 60);
        // Even: every gap is the 250 ms interval rounded to the 40 ms frame grid.
        for w in kept.windows(2) {
            assert!((240..=280).contains(&(w[1] - w[0])), "{kept:?}");
        }
        // A cap at or above analysis_fps sheds nothing; no cap at all restores 10 fps.
        cap.set(Some(12.0));
        let (kept, shed) = run_25fps(&mut s, 10_000, 100);
        assert_eq!((kept.len(), shed), (40, 0));
        cap.set(None);
        let (kept, shed) = run_25fps(&mut s, 14_000, 100);
        assert_eq!((kept.len(), shed), (40, 0));
    }

    #[test]
    fn changing_the_cap_continues_from_the_last_kept_frame() {
        let (mut s, cap) = sampler(None);
        cap.set(Some(5.0));
        let (a, shed) = run_25fps(&mut s, 0, 50);
        assert_eq!(a.len(), 10);
        assert_eq!(
            shed, 40,
            "without analysis_fps every frame above the cap is shed"
        );
        // Lower it mid-stream: the next frame comes one new interval after the last one kept,
        // neither at once (a burst) nor after a double gap.
        cap.set(Some(2.0));
        let (b, _) = run_25fps(&mut s, 2000, 100);
        let last = *a.last().unwrap_or(&0);
        assert!((440..=520).contains(&(b[0] - last)), "{a:?} then {b:?}");
        for w in b.windows(2) {
            assert!((480..=520).contains(&(w[1] - w[0])), "{b:?}");
        }
        // Raise it again.
        cap.set(Some(4.0));
        let (c, _) = run_25fps(&mut s, 6000, 100);
        assert!(c[0] - b[b.len() - 1] <= 280, "{b:?} then {c:?}");
        assert_eq!(c.len(), 16);
    }

    #[test]
    fn timeline_is_monotonic_across_new_segments() {
        let mut t = Timeline::default();
        assert_eq!(t.map(ms(1000), false), 1.0);
        assert_eq!(t.map(ms(2000), false), 2.0);
        t.new_segment();
        let a = t.map(ms(0), false);
        assert!(a > 2.0 && a < 2.1, "{a}");
        let b = t.map(ms(500), false);
        assert!((b - a - 0.5).abs() < 1e-9);
        t.new_segment();
        let c = t.map(ms(7), true);
        assert!(c > b);
    }

    #[test]
    fn jitter_stays_in_band() {
        let mut s = seed("cam");
        for _ in 0..1000 {
            let j = jitter(Duration::from_millis(1000), &mut s);
            assert!(
                j >= Duration::from_millis(750) && j <= Duration::from_millis(1000),
                "{j:?}"
            );
        }
    }
}
