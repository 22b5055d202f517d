//! The load governor's control period on the main thread: what each camera's frames cost the workers, the
//! share of the workers' time each camera gets ([`crate::load::Governor`]), and the sampling caps that follow.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use checkpoint_media::{CameraHandle, SourceState};
use parking_lot::Mutex;

use super::camera::{CameraLoop, Sampling};
use super::workers::Busy;
use crate::load::{Demand, Governor, ShareChange, CONTROL_PERIOD};
use crate::metrics::Metrics;

/// A camera as the main thread holds it.
pub(super) struct Camera {
    pub id: String,
    pub handle: CameraHandle,
    pub work: Arc<Mutex<CameraLoop>>,
    pub busy: Arc<Busy>,
    pub paced: bool,
    pub analysis_fps: Option<f64>,
    /// Counters at the start of the governor's period.
    pub marks: Marks,
    /// Worker seconds per frame, smoothed over periods.
    pub cost_s: Option<f64>,
    /// Periods in which frames were analysed (the first one holds the models' warm-up and is not used).
    pub busy_periods: u32,
    pub sampling: Sampling,
}

#[derive(Clone, Copy, Default)]
pub(super) struct Marks {
    busy_ns: u64,
    frames: u64,
    decoded: u64,
    backpressure: u64,
}

/// One control period: measures what each camera's frames cost, re-divides the workers' time and caps the
/// paced cameras' sampling at the share.
pub(super) fn govern(
    governor: &mut Governor,
    cameras: &mut [Camera],
    metrics: &Metrics,
    adaptive: bool,
) {
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
