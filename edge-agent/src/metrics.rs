//! Prometheus metrics for the agent, served on `/metrics`.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CameraLabel {
    pub camera: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DropLabel {
    pub camera: String,
    pub reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ModelLabel {
    pub model: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LineLabel {
    pub camera: String,
    pub line: String,
    pub direction: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabel {
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ListLabel {
    pub list: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CandidateLabel {
    pub camera: String,
    pub list: String,
}

type F64Gauge = Gauge<f64, AtomicU64>;

/// All agent metrics; cloned handles share the same values.
pub struct Metrics {
    registry: Registry,
    pub camera_fps: Family<CameraLabel, F64Gauge>,
    pub camera_up: Family<CameraLabel, Gauge>,
    pub frames_analysed: Family<CameraLabel, Counter>,
    pub frames_decoded: Family<CameraLabel, Gauge>,
    pub frames_dropped: Family<DropLabel, Gauge>,
    pub reconnects: Family<CameraLabel, Gauge>,
    pub abandoned_teardowns: Family<CameraLabel, Gauge>,
    pub inference_seconds: Family<ModelLabel, Histogram>,
    pub frame_seconds: Family<CameraLabel, Histogram>,
    pub tracks_active: Family<CameraLabel, Gauge>,
    pub faces_embedded: Family<CameraLabel, Counter>,
    pub crossings: Family<LineLabel, Counter>,
    pub occupancy: Gauge,
    pub outbox_pending: Gauge,
    pub delivery: DeliveryMetrics,
    pub watchlist_version: Gauge,
    pub watchlist_entries: Family<ListLabel, Gauge>,
    pub watchlist_sync: Family<OutcomeLabel, Counter>,
    pub watchlist_candidates: Family<CandidateLabel, Counter>,
    pub load: LoadMetrics,
}

/// How analysis copes with the load, per camera and for the agent: what an operator alerts on when counts
/// become unreliable because the machine is too slow for its cameras.
#[derive(Clone)]
pub struct LoadMetrics {
    /// Frames analysed per second of stream time (what the tracker sees).
    pub effective_fps: Family<CameraLabel, F64Gauge>,
    /// The rate frames are sampled at now (analysis_fps, or the overload share).
    pub sampling_fps: Family<CameraLabel, F64Gauge>,
    /// The rate the camera's counts need.
    pub reliable_fps: Family<CameraLabel, F64Gauge>,
    /// 1 while the camera is analysed below its reliable rate.
    pub degraded: Family<CameraLabel, Gauge>,
    /// Stream time between consecutive analysed frames.
    pub gap_seconds: Family<CameraLabel, Histogram>,
    /// The cap every camera is sampled at while analysis cannot keep up (0: none).
    pub share_fps: F64Gauge,
    /// Frames per second the analysis workers sustain at the cameras' mean cost per frame.
    pub capacity_fps: F64Gauge,
    pub workers: Gauge,
}

fn gap_histogram() -> Histogram {
    // 40 ms (25 fps) to 10 s; the buckets around 0.2-1 s tell 5, 2.5, 2 and 1 fps apart.
    Histogram::new([
        0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.6, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0,
    ])
}

impl Default for LoadMetrics {
    fn default() -> Self {
        Self {
            effective_fps: Family::default(),
            sampling_fps: Family::default(),
            reliable_fps: Family::default(),
            degraded: Family::default(),
            gap_seconds: Family::new_with_constructor(gap_histogram as fn() -> Histogram),
            share_fps: F64Gauge::default(),
            capacity_fps: F64Gauge::default(),
            workers: Gauge::default(),
        }
    }
}

impl LoadMetrics {
    fn register(&self, r: &mut Registry) {
        r.register(
            "analysis_effective_fps",
            "Frames analysed per second of stream time, per camera: the rate tracking and counting really see",
            self.effective_fps.clone(),
        );
        r.register(
            "analysis_sampling_fps",
            "Rate frames are sampled at now, per camera: analysis_fps, or less while the agent sheds load",
            self.sampling_fps.clone(),
        );
        r.register(
            "analysis_reliable_fps",
            "Analysis rate a camera's counts need to be reliable",
            self.reliable_fps.clone(),
        );
        r.register(
            "analysis_degraded",
            "1 while a camera is analysed below its reliable rate: its counts are marked unreliable",
            self.degraded.clone(),
        );
        r.register(
            "analysis_gap_seconds",
            "Stream time between consecutive analysed frames of a camera",
            self.gap_seconds.clone(),
        );
        r.register(
            "analysis_share_fps",
            "Rate every camera is capped at while analysis cannot keep up with all of them (0: no cap)",
            self.share_fps.clone(),
        );
        r.register(
            "analysis_capacity_fps",
            "Frames per second the analysis workers sustain at the cameras' mean cost per frame (estimate)",
            self.capacity_fps.clone(),
        );
        r.register(
            "analysis_workers",
            "Analysis worker threads shared by the cameras",
            self.workers.clone(),
        );
    }
}

fn latency_histogram() -> Histogram {
    // 0.5 ms .. ~16 s: covers a 1 ms embedder call on GPU to a multi-second stall.
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("checkpoint");
        let m = Self {
            camera_fps: Family::default(),
            camera_up: Family::default(),
            frames_analysed: Family::default(),
            frames_decoded: Family::default(),
            frames_dropped: Family::default(),
            reconnects: Family::default(),
            abandoned_teardowns: Family::default(),
            inference_seconds: Family::new_with_constructor(latency_histogram as fn() -> Histogram),
            frame_seconds: Family::new_with_constructor(latency_histogram as fn() -> Histogram),
            tracks_active: Family::default(),
            faces_embedded: Family::default(),
            crossings: Family::default(),
            occupancy: Gauge::default(),
            outbox_pending: Gauge::default(),
            delivery: DeliveryMetrics::default(),
            watchlist_version: Gauge::default(),
            watchlist_entries: Family::default(),
            watchlist_sync: Family::default(),
            watchlist_candidates: Family::default(),
            load: LoadMetrics::default(),
            registry: Registry::default(),
        };
        registry.register(
            "camera_fps",
            "Frames analysed per second, per camera",
            m.camera_fps.clone(),
        );
        registry.register(
            "camera_up",
            "1 while the camera delivers frames",
            m.camera_up.clone(),
        );
        registry.register(
            "frames_analysed",
            "Frames run through detection and tracking",
            m.frames_analysed.clone(),
        );
        registry.register(
            "frames_decoded",
            "Frames decoded from the camera",
            m.frames_decoded.clone(),
        );
        registry.register(
            "frames_dropped",
            "Frames not analysed: sampling (above the analysis rate), load (skipped at the sampler while analysis \
             cannot keep up) or backpressure (evicted after decoding because analysis was behind)",
            m.frames_dropped.clone(),
        );
        registry.register(
            "camera_reconnects",
            "Reconnection attempts per camera",
            m.reconnects.clone(),
        );
        registry.register(
            "camera_abandoned_teardowns",
            "Pipelines per camera whose teardown hung and were left behind (a GStreamer deadlock; each holds threads until restart)",
            m.abandoned_teardowns.clone(),
        );
        registry.register(
            "inference_seconds",
            "Model inference time per call",
            m.inference_seconds.clone(),
        );
        registry.register(
            "frame_analysis_seconds",
            "Whole analysis time per frame",
            m.frame_seconds.clone(),
        );
        registry.register(
            "tracks_active",
            "Confirmed tracks on the camera now",
            m.tracks_active.clone(),
        );
        registry.register(
            "faces_embedded",
            "Face embeddings computed (kept on the edge only)",
            m.faces_embedded.clone(),
        );
        registry.register(
            "line_crossings",
            "Counted line crossings",
            m.crossings.clone(),
        );
        registry.register(
            "site_occupancy",
            "Entries minus exits across the site's boundary lines",
            m.occupancy.clone(),
        );
        registry.register(
            "outbox_pending",
            "Events waiting in the outbox for the broker's acknowledgement",
            m.outbox_pending.clone(),
        );
        m.delivery.register(&mut registry);
        m.load.register(&mut registry);
        registry.register(
            "watchlist_version",
            "Watchlist version held (0: none)",
            m.watchlist_version.clone(),
        );
        registry.register(
            "watchlist_entries",
            "Watchlist entries held, per list",
            m.watchlist_entries.clone(),
        );
        registry.register(
            "watchlist_sync_messages",
            "Messages on the watchlist sync topics, by outcome: applied, or why they were refused",
            m.watchlist_sync.clone(),
        );
        registry.register(
            "watchlist_candidates",
            "Candidate watchlist matches raised",
            m.watchlist_candidates.clone(),
        );
        Self { registry, ..m }
    }

    pub fn camera(&self, camera: &str) -> CameraLabel {
        CameraLabel {
            camera: camera.to_string(),
        }
    }

    pub fn observe_inference(&self, model: &str, seconds: f64) {
        self.inference_seconds
            .get_or_create(&ModelLabel {
                model: model.to_string(),
            })
            .observe(seconds);
    }

    pub fn watchlist_outcome(&self, outcome: &str) {
        self.watchlist_sync
            .get_or_create(&OutcomeLabel {
                outcome: outcome.to_string(),
            })
            .inc();
    }

    /// Prometheus text exposition.
    pub fn encode(&self) -> String {
        let mut s = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut s, &self.registry);
        s
    }
}

/// The outbox and the broker link, mirrored from their own counters every tick: what an operator alerts on
/// when a site's events stop reaching the hub (link down, oldest event ageing, disk bound reached).
#[derive(Clone, Default)]
pub struct DeliveryMetrics {
    pub mqtt_connected: Gauge,
    pub mqtt_waiting_for_hub: Gauge,
    pub mqtt_published: Counter,
    pub mqtt_acked: Counter,
    pub mqtt_connection_errors: Counter,
    pub outbox_pending_bytes: Gauge,
    pub outbox_oldest_pending_seconds: F64Gauge,
    pub outbox_disk_bytes: Gauge,
    pub outbox_max_bytes: Gauge,
    pub outbox_over_limit: Gauge,
    pub outbox_dropped: Counter,
    pub outbox_compacted: Counter,
    pub outbox_corrupt_skipped: Counter,
    pub outbox_rejected: Counter,
}

impl DeliveryMetrics {
    fn register(&self, r: &mut Registry) {
        let gauges: [(&str, &str, &Gauge); 6] = [
            ("mqtt_connected", "1 while the agent holds a session with the broker", &self.mqtt_connected),
            (
                "mqtt_waiting_for_hub",
                "1 while connected but holding the outbox until a hub is subscribed again (after a reconnect)",
                &self.mqtt_waiting_for_hub,
            ),
            ("outbox_pending_bytes", "Size on disk of the events waiting in the outbox", &self.outbox_pending_bytes),
            ("outbox_disk_bytes", "Size of all outbox segment files", &self.outbox_disk_bytes),
            ("outbox_max_bytes", "The outbox's configured bound (outbox.max_bytes)", &self.outbox_max_bytes),
            (
                "outbox_over_limit",
                "1 when the outbox exceeds its bound: only alerts, which are never dropped, can cause it",
                &self.outbox_over_limit,
            ),
        ];
        for (name, help, g) in gauges {
            r.register(name, help, g.clone());
        }
        r.register(
            "outbox_oldest_pending_seconds",
            "Age of the oldest event still waiting for the broker (0 when none waits)",
            self.outbox_oldest_pending_seconds.clone(),
        );
        let counters: [(&str, &str, &Counter); 7] = [
            (
                "mqtt_published",
                "Events handed to the broker (re-sends after a reconnect included)",
                &self.mqtt_published,
            ),
            (
                "mqtt_acked",
                "Events the broker acknowledged, and so removed from the outbox",
                &self.mqtt_acked,
            ),
            (
                "mqtt_connection_errors",
                "Broker connections lost or refused (TLS, credentials, network)",
                &self.mqtt_connection_errors,
            ),
            (
                "outbox_dropped",
                "Status events dropped to keep the outbox within its bound",
                &self.outbox_dropped,
            ),
            (
                "outbox_compacted",
                "Count events merged into per-line totals to keep the outbox within its bound",
                &self.outbox_compacted,
            ),
            (
                "outbox_corrupt_skipped",
                "Corrupt outbox records skipped on open or read",
                &self.outbox_corrupt_skipped,
            ),
            (
                "outbox_rejected",
                "Events the outbox refused (disk full, over its bound)",
                &self.outbox_rejected,
            ),
        ];
        for (name, help, c) in counters {
            r.register(name, help, c.clone());
        }
    }
}

/// Raises a counter to a running total kept elsewhere (the outbox's and the publisher's own atomics).
pub fn mirror_total(counter: &Counter, total: u64) {
    let now = counter.get();
    if total > now {
        counter.inc_by(total - now);
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn encodes_registered_families() {
        let m = super::Metrics::new();
        m.frames_analysed.get_or_create(&m.camera("gate")).inc();
        m.observe_inference("yunet", 0.004);
        let text = m.encode();
        assert!(
            text.contains("checkpoint_frames_analysed_total{camera=\"gate\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("checkpoint_inference_seconds_bucket"),
            "{text}"
        );
    }

    #[test]
    fn load_metrics_are_exported_per_camera() {
        let m = super::Metrics::new();
        let cam = m.camera("gate");
        m.load.effective_fps.get_or_create(&cam).set(1.5);
        m.load.degraded.get_or_create(&cam).set(1);
        m.load.gap_seconds.get_or_create(&cam).observe(0.66);
        m.load.share_fps.set(1.5);
        let text = m.encode();
        for want in [
            "checkpoint_analysis_effective_fps{camera=\"gate\"} 1.5",
            "checkpoint_analysis_degraded{camera=\"gate\"} 1",
            "checkpoint_analysis_gap_seconds_bucket{le=\"0.75\",camera=\"gate\"} 1",
            "checkpoint_analysis_gap_seconds_bucket{le=\"0.6\",camera=\"gate\"} 0",
            "checkpoint_analysis_share_fps 1.5",
        ] {
            assert!(text.contains(want), "{want} in\n{text}");
        }
    }

    #[test]
    fn delivery_counters_follow_their_running_totals() {
        let m = super::Metrics::new();
        super::mirror_total(&m.delivery.mqtt_acked, 5);
        super::mirror_total(&m.delivery.mqtt_acked, 7);
        // A total never goes back; a stale reading must not lower the counter.
        super::mirror_total(&m.delivery.mqtt_acked, 6);
        m.delivery.mqtt_connected.set(1);
        let text = m.encode();
        assert!(text.contains("checkpoint_mqtt_acked_total 7"), "{text}");
        assert!(text.contains("checkpoint_mqtt_connected 1"), "{text}");
        assert!(
            text.contains("checkpoint_outbox_oldest_pending_seconds 0"),
            "{text}"
        );
    }
}
