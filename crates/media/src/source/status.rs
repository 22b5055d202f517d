//! What a camera reports: its lifecycle state, the events that announce each change, and the live
//! counters read by metrics and status messages.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use parking_lot::Mutex;
use serde::Serialize;

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
    ///
    /// [`CameraHandle::stop`]: super::CameraHandle::stop
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
    ///
    /// [`CameraHandle::set_rate_cap`]: super::CameraHandle::set_rate_cap
    pub frames_dropped_load: AtomicU64,
    /// Frames evicted from the lane because analysis fell behind (`DropOldest`).
    pub frames_dropped_backpressure: AtomicU64,
    /// Reconnect attempts made.
    pub reconnects: AtomicU64,
    /// Pipelines left behind because their teardown did not finish in time (see
    /// `supervisor::TEARDOWN_LIMIT`); each holds a few threads and buffers until the process ends.
    pub abandoned_teardowns: AtomicU64,
    /// Most frames ever waiting in the lane at once; never above `queue_frames`.
    pub queue_high_water: AtomicUsize,
    pub(super) state: Mutex<SourceState>,
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
    /// See [`SourceStats::abandoned_teardowns`].
    pub abandoned_teardowns: u64,
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
            abandoned_teardowns: self.abandoned_teardowns.load(r),
            queue_high_water: self.queue_high_water.load(r),
            state: self.state(),
        }
    }

    pub(crate) fn note_queue_len(&self, len: usize) {
        self.queue_high_water.fetch_max(len, Ordering::Relaxed);
    }
}
