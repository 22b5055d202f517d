//! What the agent reports besides detections: camera status events, count intervals, and the metrics mirrored
//! from the sources' statistics and from delivery (outbox and publisher).

use std::sync::atomic::Ordering;

use checkpoint_media::{SourceState, StatsSnapshot};
use checkpoint_protocol::{CameraState, CameraStatus, EventKind};
use parking_lot::Mutex;
use time::OffsetDateTime;

use crate::events::EventSink;
use crate::metrics::{mirror_total, DropLabel, Metrics};
use crate::outbox::Outbox;
use crate::publish::Publisher;
use crate::tally::SiteTally;

pub(super) fn flush_counts(sink: &EventSink, tally: &Mutex<SiteTally>) {
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

pub(super) fn mirror_delivery(metrics: &Metrics, outbox: &Outbox, publisher: &Publisher) {
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
    d.mqtt_waiting_for_hub
        .set(i64::from(p.waiting_for_hub.load(Ordering::Relaxed)));
    mirror_total(&d.mqtt_published, p.published.load(Ordering::Relaxed));
    mirror_total(&d.mqtt_acked, p.acked.load(Ordering::Relaxed));
    mirror_total(
        &d.mqtt_connection_errors,
        p.reconnects.load(Ordering::Relaxed),
    );
}

pub(super) fn mirror_stats(metrics: &Metrics, camera: &str, s: &StatsSnapshot) {
    let cam = metrics.camera(camera);
    metrics
        .frames_decoded
        .get_or_create(&cam)
        .set(s.frames_decoded as i64);
    metrics
        .reconnects
        .get_or_create(&cam)
        .set(s.reconnects as i64);
    metrics
        .abandoned_teardowns
        .get_or_create(&cam)
        .set(s.abandoned_teardowns as i64);
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

pub(super) fn camera_status(camera: &str, state: &SourceState, fps: Option<f64>) -> CameraStatus {
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
pub(super) fn round2(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

pub(super) fn log_state(camera: &str, state: &SourceState) {
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
