//! The analysis workers: each takes frames from the cameras' lanes round-robin and runs them through the
//! camera's [`CameraLoop`] with the worker's own models.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use checkpoint_media::RecvTimeoutError;
use parking_lot::Mutex;

use super::camera::{CameraLoop, Ctx};
use crate::analysis::Models;

/// Worker time spent on a camera's frames, added without the camera's lock and read by the governor.
#[derive(Default)]
pub(super) struct Busy {
    pub ns: AtomicU64,
    pub frames: AtomicU64,
}

/// What a worker needs to analyse a frame of a camera, by camera id.
pub(super) type Slots = HashMap<String, (Arc<Mutex<CameraLoop>>, Arc<Busy>)>;

/// An analysis worker: takes frames from the cameras round-robin, one camera at a time per worker (its
/// tracker is sequential), until the agent stops or every camera has finished. The worker's own `models` run
/// every camera's frames.
pub(super) fn analyse(
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
                w.on_frame(&mut models, &claimed.frame, &ctx);
                busy.ns
                    .fetch_add(started.elapsed().as_nanos() as u64, Ordering::Relaxed);
                busy.frames.fetch_add(1, Ordering::Relaxed);
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
    }
}
