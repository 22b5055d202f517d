//! Starting a site: the inference runtime, the event sink, the watchlist, the outbox and its publisher, the
//! cameras and the analysis workers. Everything [`Site::start`] opens, [`super::shut_down`] closes.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use checkpoint_media::{frame_channel, CameraSource, DropPolicy, FrameSender};
use checkpoint_protocol::{AgentState, AgentStatus, Envelope, EventKind};
use checkpoint_vision::{
    manifest, FaceDetector, FaceDetectorOptions, FaceEmbedder, PersonDetector,
    PersonDetectorOptions, Runtime, RuntimeOptions,
};
use parking_lot::Mutex;
use time::OffsetDateTime;

use super::camera::{CameraLoop, Ctx, Rates, Sampling, Watch};
use super::govern::{Camera, Marks};
use super::workers::{analyse, Slots};
use crate::analysis::{CameraAnalyzer, CameraSetup, Mode, Models};
use crate::config::{CameraConfig, Config};
use crate::delivery::{OutboxForward, OutboxQueue};
use crate::events::EventSink;
use crate::load::{Governor, Reliability};
use crate::metrics::Metrics;
use crate::outbox::Outbox;
use crate::publish::{Publisher, Topics};
use crate::tally::SiteTally;
use crate::watchlist::{SyncInbox, TrackMatcher, WatchlistService};

/// Everything a running agent holds, from [`Site::start`] to [`super::shut_down`].
pub(super) struct Site {
    pub ctx: Arc<Ctx>,
    pub watchlist: Option<WatchlistService>,
    pub delivery: Option<Delivery>,
    pub cameras: Vec<Camera>,
    pub pool: Vec<std::thread::JoinHandle<()>>,
    pub governor: Governor,
    pub announce: Announce,
}

/// The outbox and the publisher that empties it, when `[mqtt]` is configured.
pub(super) struct Delivery {
    pub outbox: Arc<Outbox>,
    pub publisher: Publisher,
}

/// What every `agent_status` says besides the state.
pub(super) struct Announce {
    pub version: String,
    pub cameras: Vec<String>,
}

impl Announce {
    fn status(&self, state: AgentState) -> AgentStatus {
        AgentStatus {
            state,
            version: self.version.clone(),
            cameras: self.cameras.clone(),
        }
    }
}

impl Site {
    /// Opens everything in order and starts the cameras and the workers.
    pub fn start(cfg: &Config, stop: &Arc<AtomicBool>, metrics: Arc<Metrics>) -> Result<Site> {
        let cores = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1);
        let (workers, rt_opts) = plan_threads(cfg, cores);
        tracing::info!(
            workers,
            intra_threads = rt_opts.intra_threads,
            adaptive_sampling = cfg.load.adaptive_sampling,
            "analysis workers"
        );
        metrics.load.workers.set(workers as i64);
        let rt = Runtime::init(rt_opts).context("starting ONNX Runtime")?;
        tracing::info!(library = %rt.library().display(), available = ?rt.available_providers(), "inference runtime ready");
        let announce = Announce {
            version: env!("CARGO_PKG_VERSION").to_string(),
            cameras: cfg.cameras.iter().map(|c| c.id.clone()).collect(),
        };
        let mut sink = EventSink::open(&cfg.site.id, &cfg.agent.id, &cfg.agent.events)
            .with_context(|| format!("opening events output {}", cfg.agent.events))?;
        // The watchlist store opens before the publisher: sync messages may arrive as soon as it connects.
        let (watchlist, inbox) = open_watchlist(cfg, &metrics)?;
        // Events go to the outbox first; the publisher sends them and acks them back only on the broker's PUBACK.
        let delivery = open_delivery(cfg, &announce, inbox)?;
        if let Some(d) = &delivery {
            sink = sink.with_forward(Arc::new(OutboxForward {
                outbox: d.outbox.clone(),
                wake: d.publisher.waker(),
            }));
        }
        let tally = site_tally(cfg);
        sink.emit(EventKind::AgentStatus(announce.status(AgentState::Online)));
        let ctx = Arc::new(Ctx {
            sink,
            tally,
            metrics: metrics.clone(),
            status_every: Duration::from_secs_f64(cfg.agent.status_interval_s),
        });
        let models_used = face_model_names(cfg);
        let (tx, rx) = frame_channel();
        let mut cameras = Vec::with_capacity(cfg.cameras.len());
        for cam in &cfg.cameras {
            let watch = watchlist.as_ref().map(|w| Watch {
                matcher: TrackMatcher::new(w.handle(), cfg.watchlist.matching.clone()),
                snapshot_max_side: cfg.watchlist.snapshot_max_side,
                snapshot_quality: cfg.watchlist.snapshot_quality,
                models: models_used.clone(),
            });
            cameras.push(start_camera(cfg, cam, cores, watch, &tx, &metrics)?);
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
            let models = load_models(cfg, people, rt)
                .with_context(|| format!("analysis worker {i}: loading models"))?;
            let (rx, slots, ctx, stop) = (rx.clone(), slots.clone(), ctx.clone(), stop.clone());
            pool.push(
                std::thread::Builder::new()
                    .name(format!("analysis-{i}"))
                    .spawn(move || analyse(models, rx, slots, ctx, stop))
                    .context("spawning an analysis worker")?,
            );
        }
        Ok(Site {
            ctx,
            watchlist,
            delivery,
            cameras,
            pool,
            governor: Governor::new(workers),
            announce,
        })
    }
}

/// How many analysis workers, and how many threads each gives ONNX Runtime.
fn plan_threads(cfg: &Config, cores: usize) -> (usize, RuntimeOptions) {
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
    (workers, rt_opts)
}

fn open_watchlist(
    cfg: &Config,
    metrics: &Arc<Metrics>,
) -> Result<(Option<WatchlistService>, Option<SyncInbox>)> {
    if !cfg.watchlist.active(cfg.detection.embed_faces) {
        tracing::info!("watchlist matching is off (no face embeddings)");
        return Ok((None, None));
    }
    let (svc, inbox) = WatchlistService::open(
        &cfg.watchlist,
        crate::watchlist::SyncTrust {
            keys: cfg.watchlist.hub_keys(),
            site: cfg.site.id.clone(),
            agent: cfg.agent.id.clone(),
        },
        metrics.clone(),
    )
    .with_context(|| format!("opening the watchlist in {}", cfg.watchlist.dir.display()))?;
    Ok((Some(svc), Some(inbox)))
}

/// The outbox and the publisher, when `[mqtt]` is configured. Watchlist syncs arriving on the connection go to
/// `inbox` (dropped, with a debug line, when matching is off).
fn open_delivery(
    cfg: &Config,
    announce: &Announce,
    inbox: Option<SyncInbox>,
) -> Result<Option<Delivery>> {
    let Some(mqtt) = &cfg.mqtt else {
        return Ok(None);
    };
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
    let status = |state| {
        Envelope::new(
            &cfg.site.id,
            &cfg.agent.id,
            OffsetDateTime::now_utc(),
            EventKind::AgentStatus(announce.status(state)),
        )
        .to_json()
        .into_bytes()
    };
    let publisher = Publisher::start(
        mqtt.clone(),
        client_id,
        Topics::new(&cfg.site.id, &cfg.agent.id),
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
    Ok(Some(Delivery { outbox, publisher }))
}

/// The site's tally with every configured line, so lines nobody crossed still report zeros.
fn site_tally(cfg: &Config) -> Arc<Mutex<SiteTally>> {
    let mut tally = SiteTally::new(OffsetDateTime::now_utc());
    for cam in &cfg.cameras {
        for l in &cam.lines {
            tally.add_line(&cam.id, &l.id, l.site_boundary);
        }
    }
    Arc::new(Mutex::new(tally))
}

/// Starts one camera's source and builds its analysis state.
fn start_camera(
    cfg: &Config,
    cam: &CameraConfig,
    cores: usize,
    watch: Option<Watch>,
    tx: &FrameSender,
    metrics: &Arc<Metrics>,
) -> Result<Camera> {
    let setup = CameraSetup {
        camera: cam.id.clone(),
        mode: cam.mode,
        anchor: cam.anchor,
        lines: cam.lines.clone(),
        tracker: cfg.tracking.clone(),
        options: cfg.analysis.clone(),
    };
    let analyzer = CameraAnalyzer::new(setup, metrics.clone());
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
    let sampling = Sampling {
        fps: analysis_fps,
        shed: false,
    };
    let work = CameraLoop::new(
        cam.id.clone(),
        label,
        analyzer,
        watch,
        handle.events(),
        Rates {
            paced,
            analysis_fps,
            reliable_fps,
        },
    );
    Ok(Camera {
        id: cam.id.clone(),
        handle,
        work: Arc::new(Mutex::new(work)),
        busy: Arc::default(),
        paced,
        analysis_fps,
        marks: Marks::default(),
        cost_s: None,
        busy_periods: 0,
        sampling,
    })
}

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
