//! `edge-agent run`: cameras in, analysis per camera, events and metrics out.
//!
//! Threads: each camera has a GStreamer supervisor (in `checkpoint-media`) that samples its frames into a lane of
//! its own; a pool of analysis workers (`[load] analysis_threads`) takes frames from the lanes round-robin, one
//! camera at a time per worker, so a camera that vanishes or floods never holds up another. The main thread
//! closes count intervals, mirrors source statistics into metrics, reports each camera's state and effective
//! analysis rate, and runs the load governor ([`crate::load`]): when the workers cannot keep up, every camera's
//! sampling rate is lowered evenly, and cameras analysed below the rate counting needs report `degraded`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use base64::Engine as _;
use checkpoint_media::{
    frame_channel, CameraHandle, CameraSource, DropPolicy, RecvTimeoutError, SourceState,
    StatsSnapshot,
};
use checkpoint_protocol::{
    AgentState, AgentStatus, CameraState, CameraStatus, DegradedReason, Envelope, EventKind,
    LineCrossing, WatchlistMatch,
};
use checkpoint_vision::{
    manifest, FaceDetector, FaceDetectorOptions, FaceEmbedder, PersonDetector,
    PersonDetectorOptions, Runtime,
};
use parking_lot::Mutex;
use time::OffsetDateTime;

use crate::analysis::{CameraAnalyzer, CameraSetup, Mode, Models};
use crate::config::Config;
use crate::count::Direction as LineDirection;
use crate::delivery::{OutboxForward, OutboxQueue};
use crate::events::EventSink;
use crate::load::{
    Demand, Governor, RateMeter, Reliability, ShareChange, Transition, CONTROL_PERIOD,
};
use crate::metrics::{mirror_total, DropLabel, Metrics};
use crate::outbox::Outbox;
use crate::publish::{Publisher, Topics};
use crate::tally::SiteTally;
use crate::watchlist::{face_snapshot, list_name, Candidate, TrackMatcher, WatchlistService};

/// File names of the face models, reported with every match so a reviewer knows what produced it.
fn face_model_names(cfg: &Config) -> Vec<String> {
    let dir = cfg.models.dir.clone().unwrap_or_else(manifest::default_dir);
    [
        ("yunet", cfg.models.face_detector.as_deref()),
        ("sface", cfg.models.face_embedder.as_deref()),
    ]
    .into_iter()
    .filter_map(|(name, path)| manifest::resolve(name, path, &dir).ok())
    .filter_map(|p| p.file_name().map(|f| f.to_string_lossy().into_owned()))
    .collect()
}

/// What a camera thread needs to turn its tracks into watchlist candidates.
struct Watch {
    matcher: TrackMatcher,
    snapshot_max_side: u32,
    snapshot_quality: u8,
    models: Vec<String>,
}

/// Loads the models one camera needs.
/// Loads the models the analysis needs: the face detector always, the embedder when faces are embedded, and the
/// person detector when `people` (some camera runs in people mode).
pub fn load_models(cfg: &Config, people: bool, rt: &Runtime) -> Result<Models> {
    let dir = cfg.models.dir.clone().unwrap_or_else(manifest::default_dir);
    let faces = FaceDetector::load(
        rt,
        &manifest::resolve("yunet", cfg.models.face_detector.as_deref(), &dir)?,
        FaceDetectorOptions {
            score_threshold: cfg.detection.face_score,
            nms_threshold: cfg.detection.face_nms,
            ..Default::default()
        },
    )?;
    let embedder = if cfg.detection.embed_faces {
        Some(FaceEmbedder::load(
            rt,
            &manifest::resolve("sface", cfg.models.face_embedder.as_deref(), &dir)?,
        )?)
    } else {
        None
    };
    let people = if people {
        Some(PersonDetector::load(
            rt,
            &manifest::resolve("nanodet", cfg.models.person_detector.as_deref(), &dir)?,
            PersonDetectorOptions {
                score_threshold: cfg.detection.person_score,
                nms_threshold: cfg.detection.person_nms,
            },
        )?)
    } else {
        None
    };
    Ok(Models {
        faces,
        embedder,
        people,
    })
}

/// The log target of the per-frame debug line (`CHECKPOINT_LOG=info,checkpoint::frames=debug`): camera, stream
/// time and sequence number of every analysed frame, for checking how evenly cameras are sampled.
pub const FRAME_LOG_TARGET: &str = "checkpoint::frames";

/// What every analysis worker and the main thread share.
struct Ctx {
    sink: EventSink,
    tally: Arc<Mutex<SiteTally>>,
    metrics: Arc<Metrics>,
    status_every: Duration,
}

/// Worker time spent on a camera's frames, added without the camera's lock and read by the governor.
#[derive(Default)]
struct Busy {
    ns: AtomicU64,
    frames: AtomicU64,
}

/// How a camera is sampled now, as the governor set it.
#[derive(Clone, Copy, Debug, Default)]
struct Sampling {
    /// The sampler's rate (`None`: every decoded frame).
    fps: Option<f64>,
    /// The governor holds it below what the camera would otherwise be analysed at.
    shed: bool,
}

/// One camera's analysis state. A worker holds the lock for one frame; the main thread for housekeeping.
struct CameraWork {
    id: String,
    label: crate::metrics::CameraLabel,
    analyzer: CameraAnalyzer,
    watch: Option<Watch>,
    events: crossbeam_channel::Receiver<checkpoint_media::CameraEvent>,
    /// Frames come at the source's pace and are lost when not taken in time (live, or a file in real time).
    paced: bool,
    analysis_fps: Option<f64>,
    up: Option<SourceState>,
    reported: Instant,
    fps_ewma: Option<f64>,
    last_frame: Option<Instant>,
    meter: RateMeter,
    reliability: Reliability,
    sampling: Sampling,
    /// Frames evicted for backpressure as last seen, and when that number last grew.
    backpressure_seen: u64,
    lagging_at: Option<Instant>,
}

/// What a worker needs to analyse a frame of a camera, by camera id.
type Slots = HashMap<String, (Arc<Mutex<CameraWork>>, Arc<Busy>)>;

/// A camera as the main thread holds it.
struct Camera {
    id: String,
    handle: CameraHandle,
    work: Arc<Mutex<CameraWork>>,
    busy: Arc<Busy>,
    paced: bool,
    analysis_fps: Option<f64>,
    /// Counters at the start of the governor's period.
    marks: Marks,
    /// Worker seconds per frame, smoothed over periods.
    cost_s: Option<f64>,
    /// Periods in which frames were analysed (the first one holds the models' warm-up and is not used).
    busy_periods: u32,
    sampling: Sampling,
}

#[derive(Clone, Copy, Default)]
struct Marks {
    busy_ns: u64,
    frames: u64,
    decoded: u64,
    backpressure: u64,
}

/// Runs the agent until Ctrl-C / SIGTERM (`stop` set) or, with `exit_when_done`, until every camera ended.
pub fn run(cfg: Config, stop: Arc<AtomicBool>, metrics: Arc<Metrics>) -> Result<()> {
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let workers = match cfg.load.analysis_threads {
        0 => cores.min(cfg.cameras.len()).max(1),
        n => n,
    };
    let mut rt_opts = cfg.runtime.clone();
    if rt_opts.intra_threads == 0 {
        // One session per model per camera, run by `workers` threads at once: share the cores between the
        // workers instead of oversubscribing them.
        rt_opts.intra_threads = (cores / workers).max(1);
    }
    tracing::info!(
        workers,
        intra_threads = rt_opts.intra_threads,
        adaptive_sampling = cfg.load.adaptive_sampling,
        "analysis workers"
    );
    metrics.load.workers.set(workers as i64);
    let rt = Runtime::init(rt_opts).context("starting ONNX Runtime")?;
    tracing::info!(library = %rt.library().display(), available = ?rt.available_providers(), "inference runtime ready");
    let mut sink = EventSink::open(&cfg.site.id, &cfg.agent.id, &cfg.agent.events)
        .with_context(|| format!("opening events output {}", cfg.agent.events))?;
    let version = env!("CARGO_PKG_VERSION").to_string();
    let camera_ids: Vec<String> = cfg.cameras.iter().map(|c| c.id.clone()).collect();
    let status = |state| {
        Envelope::new(
            &cfg.site.id,
            &cfg.agent.id,
            OffsetDateTime::now_utc(),
            EventKind::AgentStatus(AgentStatus {
                state,
                version: version.clone(),
                cameras: camera_ids.clone(),
            }),
        )
        .to_json()
        .into_bytes()
    };
    // The watchlist store opens before the publisher: sync messages may arrive as soon as it connects.
    let mut watchlist = None;
    let mut inbox = None;
    if cfg.watchlist.active(cfg.detection.embed_faces) {
        let (svc, ib) = WatchlistService::open(
            &cfg.watchlist,
            crate::watchlist::SyncTrust {
                keys: cfg.watchlist.hub_keys(),
                site: cfg.site.id.clone(),
                agent: cfg.agent.id.clone(),
            },
            metrics.clone(),
        )
        .with_context(|| format!("opening the watchlist in {}", cfg.watchlist.dir.display()))?;
        watchlist = Some(svc);
        inbox = Some(ib);
    } else {
        tracing::info!("watchlist matching is off (no face embeddings)");
    }
    // Events go to the outbox first; the publisher sends them and acks them back only on the broker's PUBACK.
    let mut delivery: Option<(Arc<Outbox>, Publisher)> = None;
    if let Some(mqtt) = &cfg.mqtt {
        let outbox = Arc::new(
            Outbox::open(&cfg.outbox.dir, cfg.outbox.config.clone())
                .with_context(|| format!("opening the outbox in {}", cfg.outbox.dir.display()))?,
        );
        outbox.set_aggregator(crate::delivery::aggregate_counts);
        let pending = outbox.stats().pending;
        if pending > 0 {
            tracing::info!(
                pending,
                "events from an earlier run wait in the outbox; they are sent first"
            );
        }
        let client_id = mqtt
            .client_id
            .clone()
            .unwrap_or_else(|| format!("{}-{}", cfg.site.id, cfg.agent.id));
        let topics = Topics::new(&cfg.site.id, &cfg.agent.id);
        let publisher = Publisher::start(
            mqtt.clone(),
            client_id,
            topics,
            status(AgentState::Online),
            status(AgentState::Offline),
            Arc::new(OutboxQueue(outbox.clone())),
            Box::new(move |topic: &str, payload: &[u8]| match &inbox {
                Some(ib) => ib.handle(topic, payload),
                None => tracing::debug!(
                    topic,
                    bytes = payload.len(),
                    "watchlist message ignored: matching is off"
                ),
            }),
        )
        .context("starting the MQTT publisher")?;
        sink = sink.with_forward(Arc::new(OutboxForward {
            outbox: outbox.clone(),
            wake: publisher.waker(),
        }));
        delivery = Some((outbox, publisher));
    }
    let tally = Arc::new(Mutex::new(SiteTally::new(OffsetDateTime::now_utc())));
    for cam in &cfg.cameras {
        for l in &cam.lines {
            tally.lock().add_line(&cam.id, &l.id, l.site_boundary);
        }
    }
    sink.emit(EventKind::AgentStatus(AgentStatus {
        state: AgentState::Online,
        version: version.clone(),
        cameras: camera_ids.clone(),
    }));

    let ctx = Arc::new(Ctx {
        sink: sink.clone(),
        tally: tally.clone(),
        metrics: metrics.clone(),
        status_every: Duration::from_secs_f64(cfg.agent.status_interval_s),
    });
    let models_used = face_model_names(&cfg);
    let (tx, rx) = frame_channel();
    let mut cameras = Vec::new();
    for cam in &cfg.cameras {
        let setup = CameraSetup {
            camera: cam.id.clone(),
            mode: cam.mode,
            anchor: cam.anchor,
            lines: cam.lines.clone(),
            tracker: cfg.tracking.clone(),
            options: cfg.analysis.clone(),
        };
        let analyzer = CameraAnalyzer::new(setup, metrics.clone());
        let watch = watchlist.as_ref().map(|w| Watch {
            matcher: TrackMatcher::new(w.handle(), cfg.watchlist.matching.clone()),
            snapshot_max_side: cfg.watchlist.snapshot_max_side,
            snapshot_quality: cfg.watchlist.snapshot_quality,
            models: models_used.clone(),
        });
        let reliable_fps = cam.reliable_fps(&cfg.load);
        let analysis_fps = cam.stream.sampling_fps();
        if analysis_fps.is_some_and(|f| f < reliable_fps * Reliability::TOLERANCE) {
            tracing::warn!(
                camera = %cam.id, analysis_fps, reliable_fps,
                "analysis_fps is below the rate counting needs: this camera's counts will be reported as degraded"
            );
        }
        let label = metrics.camera(&cam.id);
        metrics
            .load
            .reliable_fps
            .get_or_create(&label)
            .set(reliable_fps);
        let mut stream = cam.stream.clone();
        if stream.decoder_threads.is_none() && cfg.cameras.len() >= cores {
            stream.decoder_threads = Some(1);
        }
        let handle = CameraSource::spawn(&cam.id, stream, tx.clone())
            .with_context(|| format!("camera {}: starting video source", cam.id))?;
        let paced = handle.drop_policy() == DropPolicy::DropOldest;
        let work = CameraWork {
            id: cam.id.clone(),
            label,
            analyzer,
            watch,
            events: handle.events(),
            paced,
            analysis_fps,
            up: None,
            reported: Instant::now(),
            fps_ewma: None,
            last_frame: None,
            meter: RateMeter::default(),
            reliability: Reliability::new(reliable_fps),
            sampling: Sampling {
                fps: analysis_fps,
                shed: false,
            },
            backpressure_seen: 0,
            lagging_at: None,
        };
        cameras.push(Camera {
            id: cam.id.clone(),
            handle,
            work: Arc::new(Mutex::new(work)),
            busy: Arc::default(),
            paced,
            analysis_fps,
            marks: Marks::default(),
            cost_s: None,
            busy_periods: 0,
            sampling: Sampling {
                fps: analysis_fps,
                shed: false,
            },
        });
    }
    // The lanes are the only senders left: the receiver disconnects once every camera has finished.
    drop(tx);
    let slots: Arc<Slots> = Arc::new(
        cameras
            .iter()
            .map(|c| (c.id.clone(), (c.work.clone(), c.busy.clone())))
            .collect(),
    );
    let people = cfg.cameras.iter().any(|c| c.mode == Mode::People);
    let mut pool = Vec::with_capacity(workers);
    for i in 0..workers {
        let models = load_models(&cfg, people, rt)
            .with_context(|| format!("analysis worker {i}: loading models"))?;
        let (rx, slots, ctx, stop) = (rx.clone(), slots.clone(), ctx.clone(), stop.clone());
        pool.push(
            std::thread::Builder::new()
                .name(format!("analysis-{i}"))
                .spawn(move || analyse(models, rx, slots, ctx, stop))
                .context("spawning an analysis worker")?,
        );
    }
    drop(rx);

    let interval = Duration::from_secs_f64(cfg.agent.count_interval_s);
    let mut next_flush = Instant::now() + interval;
    let mut governor = Governor::new(workers);
    let mut next_control = Instant::now() + CONTROL_PERIOD;
    loop {
        std::thread::sleep(Duration::from_millis(100));
        let now = Instant::now();
        for c in &cameras {
            let stats = c.handle.stats().snapshot();
            mirror_stats(&metrics, &c.id, &stats);
            // A worker holds the lock for one frame at most; if that is long, try again next tick.
            if let Some(mut w) = c.work.try_lock_for(Duration::from_millis(20)) {
                w.housekeep(&ctx, &stats, c.sampling, now);
            }
        }
        if now >= next_control {
            next_control = now + CONTROL_PERIOD;
            govern(
                &mut governor,
                &mut cameras,
                &metrics,
                cfg.load.adaptive_sampling,
            );
        }
        if let Some(w) = watchlist.as_mut() {
            w.tick(OffsetDateTime::now_utc(), &sink);
        }
        if let Some((outbox, publisher)) = &delivery {
            if let Err(e) = outbox.tick() {
                tracing::error!(error = %e, "outbox");
            }
            mirror_delivery(&metrics, outbox, publisher);
        }
        if Instant::now() >= next_flush {
            next_flush += interval;
            // Every line reports every interval, zeros included: the hub rolls counts up per hour and day and
            // must tell "nobody passed" from "no report".
            flush_counts(&sink, &tally);
        }
        let all_done = pool.iter().all(|w| w.is_finished());
        if stop.load(Ordering::Relaxed) || (cfg.agent.exit_when_done && all_done) {
            break;
        }
    }
    stop.store(true, Ordering::Relaxed);
    for w in pool {
        if w.join().is_err() {
            tracing::error!("analysis worker panicked");
        }
    }
    for mut c in cameras {
        c.handle.stop();
        mirror_stats(&metrics, &c.id, &c.handle.stats().snapshot());
        // The last state changes (the end of a file arrives after its last frame), then the tracks end.
        let mut w = c.work.lock();
        w.drain_events(&ctx);
        let ended = w.analyzer.finish();
        if let Some(m) = w.watch.as_mut() {
            ended.iter().for_each(|id| m.matcher.track_ended(*id));
        }
    }
    flush_counts(&sink, &tally);
    sink.emit(EventKind::AgentStatus(AgentStatus {
        state: AgentState::Offline,
        version,
        cameras: camera_ids,
    }));
    if let (Some((outbox, mut publisher)), Some(mqtt)) = (delivery, &cfg.mqtt) {
        publisher.stop_draining(Duration::from_secs_f64(mqtt.shutdown_drain_s));
        let left = outbox.stats().pending;
        if left > 0 {
            tracing::info!(
                pending = left,
                "events kept in the outbox for the next start"
            );
        }
    }
    Ok(())
}

/// One control period: measures what each camera's frames cost, re-divides the workers' time and caps the
/// paced cameras' sampling at the share.
fn govern(governor: &mut Governor, cameras: &mut [Camera], metrics: &Metrics, adaptive: bool) {
    let period = CONTROL_PERIOD.as_secs_f64();
    let mut demands = Vec::with_capacity(cameras.len());
    let mut wants = Vec::with_capacity(cameras.len());
    for c in cameras.iter_mut() {
        let s = c.handle.stats().snapshot();
        let now = Marks {
            busy_ns: c.busy.ns.load(Ordering::Relaxed),
            frames: c.busy.frames.load(Ordering::Relaxed),
            decoded: s.frames_decoded,
            backpressure: s.frames_dropped_backpressure,
        };
        let before = std::mem::replace(&mut c.marks, now);
        let frames = now.frames.saturating_sub(before.frames);
        if frames > 0 {
            c.busy_periods += 1;
        }
        // The first frames of a session run much slower (allocation, kernel selection): not a measure.
        if frames > 0 && c.busy_periods > 1 {
            let cost = now.busy_ns.saturating_sub(before.busy_ns) as f64 / 1e9 / frames as f64;
            // Smoothed: one period with a crowd in view should not halve everyone's rate.
            c.cost_s = Some(c.cost_s.map_or(cost, |p| 0.5 * p + 0.5 * cost));
        }
        let delivered = now.decoded.saturating_sub(before.decoded) as f64 / period;
        let want = if !c.paced {
            f64::INFINITY
        } else {
            c.analysis_fps.map_or(delivered, |f| f.min(delivered))
        };
        wants.push(want);
        tracing::debug!(
            camera = %c.id, frames, cost_ms = c.cost_s.map(|s| s * 1e3), want_fps = want,
            "analysis load"
        );
        if !matches!(s.state, SourceState::Up { .. }) {
            continue;
        }
        demands.push(Demand {
            want_fps: want,
            cost_s: c.cost_s,
            overrun: c.paced && now.backpressure.saturating_sub(before.backpressure) >= 2,
        });
    }
    if !adaptive {
        return;
    }
    let change = governor.update(&demands);
    let share = governor.share();
    metrics.load.share_fps.set(share.unwrap_or(0.0));
    metrics
        .load
        .capacity_fps
        .set(governor.capacity_fps().unwrap_or(0.0));
    match change {
        Some(ShareChange::Lowered { from, to }) => tracing::warn!(
            share_fps = to,
            previous_fps = from,
            capacity_fps = governor.capacity_fps(),
            "analysis cannot keep up: every camera is sampled at {to:.2} fps at most"
        ),
        Some(ShareChange::Raised { from, to: Some(to) }) => tracing::info!(
            share_fps = to,
            previous_fps = from,
            capacity_fps = governor.capacity_fps(),
            "analysis load fell: every camera is sampled at {to:.2} fps at most"
        ),
        Some(ShareChange::Raised { from, to: None }) => tracing::info!(
            previous_fps = from,
            "analysis keeps up again: every camera is back at its own analysis_fps"
        ),
        None => {}
    }
    for (c, want) in cameras.iter_mut().zip(wants) {
        let cap = share.filter(|_| c.paced);
        c.handle.set_rate_cap(cap);
        c.sampling = Sampling {
            fps: c.handle.sampling_fps(),
            shed: cap.is_some_and(|s| s < want),
        };
        metrics
            .load
            .sampling_fps
            .get_or_create(&metrics.camera(&c.id))
            // Every decoded frame (no analysis_fps): what the camera delivers; a file read as fast as it is
            // analysed has no rate of its own (0).
            .set(
                c.sampling
                    .fps
                    .or(Some(want).filter(|w| w.is_finite()))
                    .unwrap_or(0.0),
            );
    }
}

fn flush_counts(sink: &EventSink, tally: &Mutex<SiteTally>) {
    let counts = tally.lock().flush(OffsetDateTime::now_utc());
    for c in counts {
        // `net`, not "occupancy": this agent's boundary crossings since it started, which is negative whenever
        // more people left than it saw come in; the site's occupancy is the hub's, from every agent, with its
        // starting value and reset.
        tracing::info!(
            camera = %c.camera, line = %c.line, entries = c.total_entries, exits = c.total_exits,
            net = c.occupancy, "counts"
        );
        sink.emit(EventKind::Count(c));
    }
}

fn mirror_delivery(metrics: &Metrics, outbox: &Outbox, publisher: &Publisher) {
    let st = outbox.stats();
    let d = &metrics.delivery;
    metrics.outbox_pending.set(st.pending as i64);
    d.outbox_pending_bytes.set(st.pending_bytes as i64);
    d.outbox_oldest_pending_seconds
        .set(st.oldest_pending_age.map_or(0.0, |a| a.as_secs_f64()));
    d.outbox_disk_bytes.set(st.disk_bytes as i64);
    d.outbox_max_bytes.set(st.max_bytes as i64);
    d.outbox_over_limit.set(i64::from(st.over_limit));
    mirror_total(&d.outbox_dropped, st.dropped_total);
    mirror_total(&d.outbox_compacted, st.compacted_total);
    mirror_total(&d.outbox_corrupt_skipped, st.corrupt_skipped_total);
    mirror_total(&d.outbox_rejected, st.rejected_total);
    let p = &publisher.stats;
    d.mqtt_connected
        .set(i64::from(p.connected.load(Ordering::Relaxed)));
    mirror_total(&d.mqtt_published, p.published.load(Ordering::Relaxed));
    mirror_total(&d.mqtt_acked, p.acked.load(Ordering::Relaxed));
    mirror_total(
        &d.mqtt_connection_errors,
        p.reconnects.load(Ordering::Relaxed),
    );
}

fn mirror_stats(metrics: &Metrics, camera: &str, s: &StatsSnapshot) {
    let cam = metrics.camera(camera);
    metrics
        .frames_decoded
        .get_or_create(&cam)
        .set(s.frames_decoded as i64);
    metrics
        .reconnects
        .get_or_create(&cam)
        .set(s.reconnects as i64);
    for (reason, v) in [
        ("sampling", s.frames_dropped_sampling),
        ("load", s.frames_dropped_load),
        ("backpressure", s.frames_dropped_backpressure),
    ] {
        metrics
            .frames_dropped
            .get_or_create(&DropLabel {
                camera: camera.to_string(),
                reason: reason.to_string(),
            })
            .set(v as i64);
    }
    let up = matches!(s.state, SourceState::Up { .. });
    metrics.camera_up.get_or_create(&cam).set(up as i64);
}

fn camera_status(camera: &str, state: &SourceState, fps: Option<f64>) -> CameraStatus {
    let (state, detail) = match state {
        SourceState::Starting => (CameraState::Starting, None),
        SourceState::Up { width, height, fps } => (
            CameraState::Up,
            Some(format!(
                "{width}x{height}{}",
                fps.map(|f| format!(" @ {f:.1} fps")).unwrap_or_default()
            )),
        ),
        SourceState::Reconnecting { attempt, backoff } => (
            CameraState::Reconnecting,
            Some(format!(
                "attempt {attempt}, next in {:.1} s",
                backoff.as_secs_f64()
            )),
        ),
        SourceState::Down { reason } => (CameraState::Down, Some(reason.clone())),
        SourceState::Ended => (CameraState::Ended, None),
        SourceState::Stopped => (CameraState::Down, Some("stopped".into())),
    };
    CameraStatus {
        camera: camera.to_string(),
        state,
        fps,
        detail,
        ..Default::default()
    }
}

/// Two decimals are plenty for a frame rate on the wire and in logs.
fn round2(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

impl CameraWork {
    /// State changes of the source, oldest first: reported at once, and a lost camera ends its tracks.
    fn drain_events(&mut self, ctx: &Ctx) {
        while let Ok(ev) = self.events.try_recv() {
            log_state(&self.id, &ev.state);
            match ev.state {
                // A lost camera ends its tracks: people seen before the outage are not the ones after it. Its
                // counts are missing rather than unreliable, so a degraded period ends here too.
                SourceState::Reconnecting { .. } | SourceState::Down { .. } => {
                    let ended = self.analyzer.finish();
                    if let Some(w) = self.watch.as_mut() {
                        ended.iter().for_each(|id| w.matcher.track_ended(*id));
                    }
                    self.end_measurement(ctx);
                }
                SourceState::Ended | SourceState::Stopped => self.end_measurement(ctx),
                _ => {}
            }
            self.up = matches!(ev.state, SourceState::Up { .. }).then(|| ev.state.clone());
            self.emit_status(ctx, &ev.state);
        }
    }

    fn end_measurement(&mut self, ctx: &Ctx) {
        self.meter.reset();
        if self.reliability.clear() {
            tracing::debug!(camera = %self.id, "degraded period ends with the camera's stream");
        }
        ctx.metrics.load.degraded.get_or_create(&self.label).set(0);
    }

    /// The main thread's look at the camera every tick: state changes, the effective rate and the degraded
    /// state, the periodic status report.
    fn housekeep(&mut self, ctx: &Ctx, stats: &StatsSnapshot, sampling: Sampling, now: Instant) {
        self.sampling = sampling;
        if stats.frames_dropped_backpressure > self.backpressure_seen {
            self.backpressure_seen = stats.frames_dropped_backpressure;
            self.lagging_at = Some(now);
        }
        self.drain_events(ctx);
        let Some(state) = self.up.clone() else {
            return;
        };
        let effective = self.meter.effective_fps(now, self.paced);
        let load = &ctx.metrics.load;
        load.effective_fps
            .get_or_create(&self.label)
            .set(effective.unwrap_or(0.0));
        let reason = self.reason(now);
        let transition =
            self.reliability
                .update(effective, reason, now, std::time::SystemTime::now());
        load.degraded
            .get_or_create(&self.label)
            .set(i64::from(self.reliability.degraded().is_some()));
        match transition {
            Some(Transition::Degraded { fps }) => tracing::warn!(
                camera = %self.id, effective_fps = round2(fps), reliable_fps = self.reliability.threshold(),
                sampling_fps = self.sampling.fps.map(round2), reason = reason.as_str(),
                "counts unreliable: the camera is analysed below the rate counting needs"
            ),
            Some(Transition::Recovered { fps }) => tracing::info!(
                camera = %self.id, effective_fps = round2(fps), reliable_fps = self.reliability.threshold(),
                "counts reliable again: the camera is analysed at the rate counting needs"
            ),
            None => {}
        }
        let due = self.reported.elapsed() >= ctx.status_every && self.fps_ewma.is_some();
        if transition.is_some() || due {
            self.emit_status(ctx, &state);
        }
    }

    /// Why the camera would be analysed too slowly, were it now.
    fn reason(&self, now: Instant) -> DegradedReason {
        let lagging = self
            .lagging_at
            .is_some_and(|t| now.duration_since(t) < Duration::from_secs(5));
        let threshold = self.reliability.threshold() * Reliability::TOLERANCE;
        if self.sampling.shed || lagging {
            DegradedReason::Overload
        } else if self.analysis_fps.is_some_and(|f| f < threshold) {
            DegradedReason::Configured
        } else {
            DegradedReason::Source
        }
    }

    fn emit_status(&mut self, ctx: &Ctx, state: &SourceState) {
        let mut s = camera_status(&self.id, state, self.fps_ewma.map(round2));
        s.reliable_fps = Some(self.reliability.threshold());
        let degraded = self.reliability.degraded();
        s.degraded = Some(degraded.is_some());
        if self.up.is_some() {
            s.effective_fps = self
                .meter
                .effective_fps(Instant::now(), self.paced)
                .map(round2);
            s.sampling_fps = self.sampling.fps.map(round2);
        }
        if let Some(d) = degraded {
            s.degraded_reason = Some(d.reason);
            s.degraded_since = Some(OffsetDateTime::from(d.since));
        }
        ctx.sink.emit(EventKind::CameraStatus(s));
        self.reported = Instant::now();
    }

    /// Detect, track, count and match one frame.
    fn process(&mut self, models: &mut Models, frame: &checkpoint_media::Frame, ctx: &Ctx) {
        let metrics = &ctx.metrics;
        let now = Instant::now();
        if let Some(prev) = self.last_frame {
            let dt = now.duration_since(prev).as_secs_f64().max(1e-6);
            let f = 1.0 / dt;
            let ewma = self.fps_ewma.map_or(f, |e| 0.9 * e + 0.1 * f);
            self.fps_ewma = Some(ewma);
            metrics.camera_fps.get_or_create(&self.label).set(ewma);
        }
        self.last_frame = Some(now);
        if let Some(gap) = self.meter.record(frame.pts_s, now) {
            metrics
                .load
                .gap_seconds
                .get_or_create(&self.label)
                .observe(gap);
        }
        tracing::debug!(target: FRAME_LOG_TARGET, camera = %self.id, pts = frame.pts_s, seq = frame.seq, "frame analysed");
        let camera = self.id.as_str();
        let out = match self.analyzer.process(models, &frame.image, frame.pts_s) {
            Ok(out) => out,
            // A frame the models cannot take (corrupt, odd size) is skipped, the camera goes on.
            Err(e) => {
                tracing::warn!(camera, error = %e, "frame skipped");
                return;
            }
        };
        for (c, boundary) in out.crossings {
            let direction = match c.direction {
                LineDirection::In => checkpoint_protocol::Direction::In,
                LineDirection::Out => checkpoint_protocol::Direction::Out,
            };
            {
                let mut tally = ctx.tally.lock();
                tally.record(camera, &c.line_id, direction, boundary);
                metrics.occupancy.set(tally.occupancy());
            }
            tracing::debug!(camera, line = %c.line_id, ?direction, track = c.track_id, t = c.ts, "crossing");
            ctx.sink.emit(EventKind::LineCrossing(LineCrossing {
                camera: camera.to_string(),
                line: c.line_id,
                direction,
                track_id: c.track_id,
                stream_time_s: c.ts,
                site_boundary: Some(boundary),
            }));
        }
        let Some(w) = self.watch.as_mut() else {
            return;
        };
        for (track, face) in &out.face_updates {
            let faces = self
                .analyzer
                .track_faces(*track)
                .iter()
                .map(|f| (f.quality, &f.embedding));
            for cand in w.matcher.observe(*track, faces, OffsetDateTime::now_utc()) {
                let m = alert(camera, w, &cand, frame, face);
                metrics
                    .watchlist_candidates
                    .get_or_create(&crate::metrics::CandidateLabel {
                        camera: camera.to_string(),
                        list: list_name(cand.list).into(),
                    })
                    .inc();
                tracing::warn!(
                    camera, track = cand.track_id, entry = %cand.entry_id,
                    list = list_name(cand.list), similarity = cand.similarity,
                    votes = cand.votes, faces = cand.faces_used,
                    "watchlist candidate (for review)"
                );
                ctx.sink.emit(EventKind::WatchlistMatch(m));
            }
        }
        for id in &out.ended {
            w.matcher.track_ended(*id);
        }
    }
}

/// An analysis worker: takes frames from the cameras round-robin, one camera at a time per worker (its
/// tracker is sequential), until the agent stops or every camera has finished. The worker's own `models` run
/// every camera's frames.
fn analyse(
    mut models: Models,
    frames: checkpoint_media::FrameReceiver,
    slots: Arc<Slots>,
    ctx: Arc<Ctx>,
    stop: Arc<AtomicBool>,
) {
    while !stop.load(Ordering::Relaxed) {
        match frames.claim_timeout(Duration::from_millis(200)) {
            Ok(claimed) => {
                let Some((work, busy)) = slots.get(&*claimed.frame.camera_id) else {
                    continue;
                };
                let mut w = work.lock();
                // State changes that came before this frame are reported before it is analysed.
                w.drain_events(&ctx);
                let started = Instant::now();
                w.process(&mut models, &claimed.frame, &ctx);
                busy.ns
                    .fetch_add(started.elapsed().as_nanos() as u64, Ordering::Relaxed);
                busy.frames.fetch_add(1, Ordering::Relaxed);
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
    }
}

/// The event for a candidate, with a snapshot of the face that triggered this decision. A snapshot that cannot
/// be made does not hold the alert back: it goes out without one.
fn alert(
    camera: &str,
    w: &Watch,
    c: &Candidate,
    frame: &checkpoint_media::Frame,
    face: &checkpoint_vision::Face,
) -> WatchlistMatch {
    let snapshot = match face_snapshot(
        &frame.image,
        &face.bbox,
        w.snapshot_max_side,
        w.snapshot_quality,
    ) {
        Ok(jpg) => base64::engine::general_purpose::STANDARD.encode(jpg),
        Err(e) => {
            tracing::error!(camera, error = %e, "alert snapshot failed; the alert goes without one");
            String::new()
        }
    };
    WatchlistMatch {
        camera: camera.to_string(),
        track_id: c.track_id,
        list: c.list,
        entry_id: c.entry_id.clone(),
        watchlist_version: c.watchlist_version,
        similarity: c.similarity,
        threshold: c.threshold,
        votes: c.votes,
        rank: c.rank,
        faces_used: c.faces_used,
        snapshot_jpeg_b64: snapshot,
        stream_time_s: frame.pts_s,
        models: w.models.clone(),
        evidence: Some(evidence(c)),
    }
}

/// What the reviewers weigh a candidate by, beyond the bare similarity.
pub fn evidence(c: &Candidate) -> checkpoint_protocol::MatchEvidence {
    checkpoint_protocol::MatchEvidence {
        face_quality: c.face_quality,
        second_entry: c.second.as_ref().map(|(id, _)| id.clone()),
        second_similarity: c.second.as_ref().map(|(_, s)| *s),
        list_entries: c.list_entries as u64,
        target_fpir: c.operating.map(|o| o.target_fpir),
        expected_fpir: c.operating.map(|o| o.expected_fpir),
        score_fmr: c.score_fmr,
    }
}

fn log_state(camera: &str, state: &SourceState) {
    match state {
        SourceState::Down { reason } => tracing::error!(camera, %reason, "camera down"),
        SourceState::Reconnecting { attempt, backoff } => {
            tracing::warn!(
                camera,
                attempt,
                backoff_s = backoff.as_secs_f64(),
                "camera lost, reconnecting"
            )
        }
        other => tracing::info!(camera, state = ?other, "camera state"),
    }
}
