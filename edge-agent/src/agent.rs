//! `edge-agent run`: cameras in, analysis per camera, events and metrics out.
//!
//! Threads: each camera has a GStreamer supervisor (in `checkpoint-media`) and an analysis thread of its own,
//! so a camera that vanishes or a slow model on one camera never holds up another. The main thread closes
//! count intervals, mirrors source statistics into metrics and watches for shutdown.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use base64::Engine as _;
use checkpoint_media::{frame_channel, CameraHandle, CameraSource, RecvTimeoutError, SourceState};
use checkpoint_protocol::{
    AgentState, AgentStatus, CameraState, CameraStatus, Envelope, EventKind, LineCrossing,
    WatchlistMatch,
};
use checkpoint_vision::{
    manifest, FaceDetector, FaceDetectorOptions, FaceEmbedder, PersonDetector,
    PersonDetectorOptions, Runtime,
};
use parking_lot::Mutex;
use time::OffsetDateTime;

use crate::analysis::{CameraAnalyzer, CameraSetup, Mode, Models};
use crate::config::{CameraConfig, Config};
use crate::count::Direction as LineDirection;
use crate::delivery::{OutboxForward, OutboxQueue};
use crate::events::EventSink;
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
pub fn load_models(cfg: &Config, cam: &CameraConfig, rt: &Runtime) -> Result<Models> {
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
    let people = if cam.mode == Mode::People {
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

struct Camera {
    id: String,
    handle: CameraHandle,
    analysis: std::thread::JoinHandle<()>,
}

/// Runs the agent until Ctrl-C / SIGTERM (`stop` set) or, with `exit_when_done`, until every camera ended.
pub fn run(cfg: Config, stop: Arc<AtomicBool>, metrics: Arc<Metrics>) -> Result<()> {
    let mut rt_opts = cfg.runtime.clone();
    if rt_opts.intra_threads == 0 {
        // One session per model per camera: share the cores between cameras instead of oversubscribing them.
        let cores = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1);
        rt_opts.intra_threads = (cores / cfg.cameras.len().max(1)).max(1);
    }
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

    let models_used = face_model_names(&cfg);
    let mut cameras = Vec::new();
    for cam in &cfg.cameras {
        let models = load_models(&cfg, cam, rt)
            .with_context(|| format!("camera {}: loading models", cam.id))?;
        let setup = CameraSetup {
            camera: cam.id.clone(),
            mode: cam.mode,
            anchor: cam.anchor,
            lines: cam.lines.clone(),
            tracker: cfg.tracking.clone(),
            options: cfg.analysis.clone(),
        };
        let analyzer = CameraAnalyzer::new(setup, models, metrics.clone());
        let watch = watchlist.as_ref().map(|w| Watch {
            matcher: TrackMatcher::new(w.handle(), cfg.watchlist.matching.clone()),
            snapshot_max_side: cfg.watchlist.snapshot_max_side,
            snapshot_quality: cfg.watchlist.snapshot_quality,
            models: models_used.clone(),
        });
        let status_every = Duration::from_secs_f64(cfg.agent.status_interval_s);
        let (tx, rx) = frame_channel();
        let handle = CameraSource::spawn(&cam.id, cam.stream.clone(), tx)
            .with_context(|| format!("camera {}: starting video source", cam.id))?;
        let events = handle.events();
        let (id, sink2, tally2, metrics2, stop2) = (
            cam.id.clone(),
            sink.clone(),
            tally.clone(),
            metrics.clone(),
            stop.clone(),
        );
        let analysis = std::thread::Builder::new()
            .name(format!("analysis-{}", cam.id))
            .spawn(move || {
                analyse(
                    id,
                    analyzer,
                    watch,
                    rx,
                    events,
                    sink2,
                    tally2,
                    metrics2,
                    stop2,
                    status_every,
                )
            })
            .context("spawning analysis thread")?;
        cameras.push(Camera {
            id: cam.id.clone(),
            handle,
            analysis,
        });
    }

    let interval = Duration::from_secs_f64(cfg.agent.count_interval_s);
    let mut next_flush = Instant::now() + interval;
    loop {
        std::thread::sleep(Duration::from_millis(100));
        for c in &cameras {
            mirror_stats(&metrics, &c.id, &c.handle);
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
            flush_counts(&sink, &tally, true);
        }
        let all_done = cameras.iter().all(|c| c.analysis.is_finished());
        if stop.load(Ordering::Relaxed) || (cfg.agent.exit_when_done && all_done) {
            break;
        }
    }
    stop.store(true, Ordering::Relaxed);
    for mut c in cameras {
        c.handle.stop();
        mirror_stats(&metrics, &c.id, &c.handle);
        if c.analysis.join().is_err() {
            tracing::error!(camera = %c.id, "analysis thread panicked");
        }
    }
    flush_counts(&sink, &tally, true);
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

fn flush_counts(sink: &EventSink, tally: &Mutex<SiteTally>, all: bool) {
    let counts = tally.lock().flush(OffsetDateTime::now_utc(), all);
    for c in counts {
        tracing::info!(
            camera = %c.camera, line = %c.line, entries = c.total_entries, exits = c.total_exits,
            occupancy = c.occupancy, "counts"
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

fn mirror_stats(metrics: &Metrics, camera: &str, handle: &CameraHandle) {
    let s = handle.stats().snapshot();
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
    let up = matches!(handle.state(), SourceState::Up { .. });
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
    }
}

#[allow(clippy::too_many_arguments)]
fn analyse(
    camera: String,
    mut analyzer: CameraAnalyzer,
    mut watch: Option<Watch>,
    frames: checkpoint_media::FrameReceiver,
    events: crossbeam_channel::Receiver<checkpoint_media::CameraEvent>,
    sink: EventSink,
    tally: Arc<Mutex<SiteTally>>,
    metrics: Arc<Metrics>,
    stop: Arc<AtomicBool>,
    status_every: Duration,
) {
    let cam_label = metrics.camera(&camera);
    let mut fps_ewma: Option<f64> = None;
    let mut last_frame: Option<Instant> = None;
    let mut finished = false;
    // A running camera reports again every `status_every`, so the hub shows the rate it really analyses at
    // (state changes alone would leave the first, fps-less report standing for hours).
    let mut up: Option<SourceState> = None;
    let mut reported = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        if let Some(state) = &up {
            if reported.elapsed() >= status_every && fps_ewma.is_some() {
                sink.emit(EventKind::CameraStatus(camera_status(
                    &camera, state, fps_ewma,
                )));
                reported = Instant::now();
            }
        }
        while let Ok(ev) = events.try_recv() {
            log_state(&camera, &ev.state);
            sink.emit(EventKind::CameraStatus(camera_status(
                &camera, &ev.state, fps_ewma,
            )));
            reported = Instant::now();
            up = matches!(ev.state, SourceState::Up { .. }).then(|| ev.state.clone());
            match ev.state {
                // A lost camera ends its tracks: people seen before the outage are not the ones after it.
                SourceState::Reconnecting { .. } | SourceState::Down { .. } => {
                    let ended = analyzer.finish();
                    if let Some(w) = watch.as_mut() {
                        ended.iter().for_each(|id| w.matcher.track_ended(*id));
                    }
                }
                SourceState::Ended | SourceState::Stopped => finished = true,
                _ => {}
            }
        }
        match frames.recv_timeout(Duration::from_millis(200)) {
            Ok(frame) => {
                let now = Instant::now();
                if let Some(prev) = last_frame {
                    let dt = now.duration_since(prev).as_secs_f64().max(1e-6);
                    let f = 1.0 / dt;
                    fps_ewma = Some(fps_ewma.map_or(f, |e| 0.9 * e + 0.1 * f));
                    metrics
                        .camera_fps
                        .get_or_create(&cam_label)
                        .set(fps_ewma.unwrap_or(0.0));
                }
                last_frame = Some(now);
                match analyzer.process(&frame.image, frame.pts_s) {
                    Ok(out) => {
                        for (c, boundary) in out.crossings {
                            let direction = match c.direction {
                                LineDirection::In => checkpoint_protocol::Direction::In,
                                LineDirection::Out => checkpoint_protocol::Direction::Out,
                            };
                            tally
                                .lock()
                                .record(&camera, &c.line_id, direction, boundary);
                            metrics.occupancy.set(tally.lock().occupancy());
                            tracing::debug!(camera = %camera, line = %c.line_id, ?direction, track = c.track_id, t = c.ts, "crossing");
                            sink.emit(EventKind::LineCrossing(LineCrossing {
                                camera: camera.clone(),
                                line: c.line_id,
                                direction,
                                track_id: c.track_id,
                                stream_time_s: c.ts,
                                site_boundary: Some(boundary),
                            }));
                        }
                        if let Some(w) = watch.as_mut() {
                            for (track, face) in &out.face_updates {
                                let faces = analyzer
                                    .track_faces(*track)
                                    .iter()
                                    .map(|f| (f.quality, &f.embedding));
                                for cand in
                                    w.matcher.observe(*track, faces, OffsetDateTime::now_utc())
                                {
                                    let m = alert(&camera, w, &cand, &frame, face);
                                    metrics
                                        .watchlist_candidates
                                        .get_or_create(&crate::metrics::CandidateLabel {
                                            camera: camera.clone(),
                                            list: list_name(cand.list).into(),
                                        })
                                        .inc();
                                    tracing::warn!(
                                        camera = %camera, track = cand.track_id, entry = %cand.entry_id,
                                        list = list_name(cand.list), similarity = cand.similarity,
                                        votes = cand.votes, faces = cand.faces_used,
                                        "watchlist candidate (for review)"
                                    );
                                    sink.emit(EventKind::WatchlistMatch(m));
                                }
                            }
                            for id in &out.ended {
                                w.matcher.track_ended(*id);
                            }
                        }
                    }
                    // A frame the models cannot take (corrupt, odd size) is skipped, the camera goes on.
                    Err(e) => tracing::warn!(camera = %camera, error = %e, "frame skipped"),
                }
            }
            Err(RecvTimeoutError::Timeout) => {
                if finished && frames.is_empty() {
                    break;
                }
            }
            Err(RecvTimeoutError::Disconnected) => break,
        }
    }
    // Drain the last state changes (the end of a file arrives after its last frame).
    while let Ok(ev) = events.try_recv() {
        log_state(&camera, &ev.state);
        sink.emit(EventKind::CameraStatus(camera_status(
            &camera, &ev.state, fps_ewma,
        )));
    }
    let ended = analyzer.finish();
    if let Some(w) = watch.as_mut() {
        ended.iter().for_each(|id| w.matcher.track_ended(*id));
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
