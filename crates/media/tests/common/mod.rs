//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use checkpoint_media::{CameraHandle, Frame, FrameReceiver, SourceState};
use parking_lot::Mutex;

/// Polls the camera state until `pred` holds; returns the last state seen on timeout.
pub fn wait_state(
    handle: &CameraHandle,
    timeout: Duration,
    pred: impl Fn(&SourceState) -> bool,
) -> Result<SourceState, SourceState> {
    let deadline = Instant::now() + timeout;
    loop {
        let s = handle.state();
        if pred(&s) {
            return Ok(s);
        }
        if Instant::now() > deadline {
            return Err(s);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Receives `n` frames or fails after `timeout`.
pub fn take_frames(rx: &FrameReceiver, n: usize, timeout: Duration) -> Vec<Frame> {
    let deadline = Instant::now() + timeout;
    let mut out = Vec::new();
    while out.len() < n {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        if let Ok(f) = rx.recv_timeout(left) {
            out.push(f);
        }
    }
    out
}

/// A frame as seen by a background consumer.
#[derive(Clone, Debug)]
pub struct Seen {
    pub camera: String,
    pub seq: u64,
    pub pts_s: f64,
    pub at: Instant,
    pub width: u32,
    pub height: u32,
}

/// Drains the receiver on a thread, recording every frame, until the senders are gone.
pub fn drain(rx: FrameReceiver) -> (Arc<Mutex<Vec<Seen>>>, std::thread::JoinHandle<()>) {
    let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
    let log = seen.clone();
    let t = std::thread::spawn(move || {
        while let Ok(f) = rx.recv() {
            log.lock().push(Seen {
                camera: f.camera_id.to_string(),
                seq: f.seq,
                pts_s: f.pts_s,
                at: Instant::now(),
                width: f.image.width,
                height: f.image.height,
            });
        }
    });
    (seen, t)
}

pub fn count(seen: &Mutex<Vec<Seen>>, camera: &str) -> usize {
    seen.lock().iter().filter(|s| s.camera == camera).count()
}

/// Tracing output for debugging a failing test: `RUST_LOG=debug cargo test`.
pub fn init_logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}
