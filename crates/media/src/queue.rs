//! Frames from all cameras to analysis, through one small bounded lane per camera.
//!
//! A single shared bounded channel cannot express "drop *this camera's* oldest frame", and one
//! fast camera could fill it and starve the others. Here every camera owns a lane of 1-16 frames
//! with its own [`DropPolicy`]; the receiver takes from the lanes round-robin, so a camera that
//! blocks (file, `Block`) or floods (live, `DropOldest`) never delays another camera's frames.
//!
//! A pool of analysis workers shares one receiver through [`FrameReceiver::claim_timeout`]: a
//! claimed frame keeps its camera's lane closed to other workers until the claim is dropped, so
//! each camera's frames are analysed one at a time and in order (its tracker is sequential), while
//! the workers serve the cameras round-robin.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use checkpoint_vision::BgrImage;
use parking_lot::{Condvar, Mutex};

use crate::config::DropPolicy;
use crate::source::SourceStats;

/// One decoded, sampled frame.
#[derive(Debug, Clone)]
pub struct Frame {
    /// Camera that produced it.
    pub camera_id: Arc<str>,
    /// Per-camera sequence number of sampled frames; gaps mean frames evicted by `DropOldest`.
    pub seq: u64,
    /// Stream time in seconds, monotonic (non-decreasing) across reconnects and loops.
    pub pts_s: f64,
    /// Wall-clock time the frame left the decoder pipeline.
    pub wall: SystemTime,
    /// The picture, packed BGR.
    pub image: BgrImage,
}

/// Creates the frame queue shared by all cameras of an agent.
pub fn frame_channel() -> (FrameSender, FrameReceiver) {
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            lanes: Vec::new(),
            next_lane: 0,
            rr: 0,
        }),
        not_empty: Condvar::new(),
        not_full: Condvar::new(),
        senders: AtomicUsize::new(1),
        receivers: AtomicUsize::new(1),
    });
    (
        FrameSender {
            shared: shared.clone(),
        },
        FrameReceiver { shared },
    )
}

struct Shared {
    state: Mutex<State>,
    not_empty: Condvar,
    not_full: Condvar,
    senders: AtomicUsize,
    receivers: AtomicUsize,
}

struct State {
    lanes: Vec<LaneSlot>,
    next_lane: u64,
    rr: usize,
}

struct LaneSlot {
    id: u64,
    frames: VecDeque<Frame>,
    cap: usize,
    closed: bool,
    /// A worker holds a frame of this lane ([`Claimed`]): no other frame of it is handed out.
    claimed: bool,
    stats: Arc<SourceStats>,
}

/// The producing side; cloned into every camera. Cameras keep the queue open while they run.
pub struct FrameSender {
    shared: Arc<Shared>,
}

impl Clone for FrameSender {
    fn clone(&self) -> Self {
        self.shared.senders.fetch_add(1, Ordering::SeqCst);
        Self {
            shared: self.shared.clone(),
        }
    }
}

impl Drop for FrameSender {
    fn drop(&mut self) {
        if self.shared.senders.fetch_sub(1, Ordering::SeqCst) == 1 {
            // Take the lock so a receiver between its check and its wait cannot miss this.
            let _g = self.shared.state.lock();
            self.shared.not_empty.notify_all();
        }
    }
}

impl FrameSender {
    /// An open lane counts as a sender of its own, so the receiver sees `Disconnected` once
    /// every `FrameSender` is dropped and every camera has finished (a file that ended).
    pub(crate) fn lane(&self, cap: usize, policy: DropPolicy, stats: Arc<SourceStats>) -> Lane {
        let mut st = self.shared.state.lock();
        let id = st.next_lane;
        st.next_lane += 1;
        st.lanes.push(LaneSlot {
            id,
            frames: VecDeque::with_capacity(cap),
            cap: cap.max(1),
            closed: false,
            claimed: false,
            stats,
        });
        self.shared.senders.fetch_add(1, Ordering::SeqCst);
        Lane {
            shared: self.shared.clone(),
            id,
            policy,
            open: AtomicBool::new(true),
        }
    }
}

/// Outcome of [`Lane::push`].
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Pushed {
    /// Queued (possibly after evicting the oldest frame).
    Queued,
    /// The lane was closed or `abort` said so while waiting for room.
    Aborted,
    /// Every receiver is gone.
    NoReceiver,
}

/// One camera's lane.
pub(crate) struct Lane {
    shared: Arc<Shared>,
    id: u64,
    policy: DropPolicy,
    open: AtomicBool,
}

impl Lane {
    /// Queues a frame according to the lane's policy. `abort` is polled while a `Block` lane
    /// waits for room, so a stopping camera never hangs on a consumer that went away.
    pub(crate) fn push(&self, frame: Frame, abort: &dyn Fn() -> bool) -> Pushed {
        let shared = &self.shared;
        let mut st = shared.state.lock();
        loop {
            if shared.receivers.load(Ordering::SeqCst) == 0 {
                return Pushed::NoReceiver;
            }
            let Some(slot) = st.lanes.iter_mut().find(|l| l.id == self.id) else {
                return Pushed::Aborted;
            };
            if slot.closed || abort() {
                return Pushed::Aborted;
            }
            if slot.frames.len() < slot.cap {
                slot.frames.push_back(frame);
                slot.stats.note_queue_len(slot.frames.len());
                shared.not_empty.notify_one();
                return Pushed::Queued;
            }
            match self.policy {
                DropPolicy::DropOldest => {
                    slot.frames.pop_front();
                    slot.stats
                        .frames_dropped_backpressure
                        .fetch_add(1, Ordering::Relaxed);
                    slot.frames.push_back(frame);
                    slot.stats.note_queue_len(slot.frames.len());
                    shared.not_empty.notify_one();
                    return Pushed::Queued;
                }
                DropPolicy::Block => {
                    // Timed so `abort` is re-checked even if nobody notifies.
                    shared
                        .not_full
                        .wait_for(&mut st, Duration::from_millis(100));
                }
            }
        }
    }

    /// Stops accepting frames and wakes a blocked `push`. Frames already queued stay available
    /// to the receiver.
    pub(crate) fn close(&self) {
        let shared = &self.shared;
        let mut st = shared.state.lock();
        if !self.open.swap(false, Ordering::SeqCst) {
            return;
        }
        if let Some(pos) = st.lanes.iter().position(|l| l.id == self.id) {
            if st.lanes[pos].frames.is_empty() && !st.lanes[pos].claimed {
                remove_lane(&mut st, pos);
            } else {
                st.lanes[pos].closed = true;
            }
        }
        shared.senders.fetch_sub(1, Ordering::SeqCst);
        shared.not_full.notify_all();
        shared.not_empty.notify_all();
    }
}

impl Drop for Lane {
    fn drop(&mut self) {
        self.close();
    }
}

/// Why [`FrameReceiver::recv`] returned no frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("all cameras and senders are gone and no frame is left")]
pub struct RecvError;

/// Why [`FrameReceiver::recv_timeout`] returned no frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RecvTimeoutError {
    /// Nothing arrived in time.
    #[error("no frame within the timeout")]
    Timeout,
    /// All senders are gone and nothing is queued.
    #[error("all cameras and senders are gone and no frame is left")]
    Disconnected,
}

/// The consuming side (analysis). Cloneable for several analysis workers.
pub struct FrameReceiver {
    shared: Arc<Shared>,
}

impl Clone for FrameReceiver {
    fn clone(&self) -> Self {
        self.shared.receivers.fetch_add(1, Ordering::SeqCst);
        Self {
            shared: self.shared.clone(),
        }
    }
}

impl Drop for FrameReceiver {
    fn drop(&mut self) {
        if self.shared.receivers.fetch_sub(1, Ordering::SeqCst) == 1 {
            let _g = self.shared.state.lock();
            self.shared.not_full.notify_all();
        }
    }
}

impl FrameReceiver {
    /// Waits for the next frame from any camera.
    pub fn recv(&self) -> Result<Frame, RecvError> {
        loop {
            match self.recv_timeout(Duration::from_secs(3600)) {
                Ok(f) => return Ok(f),
                Err(RecvTimeoutError::Disconnected) => return Err(RecvError),
                Err(RecvTimeoutError::Timeout) => {}
            }
        }
    }

    /// Waits up to `timeout` for the next frame from any camera.
    pub fn recv_timeout(&self, timeout: Duration) -> Result<Frame, RecvTimeoutError> {
        self.wait_pop(timeout, false).map(|(f, _)| f)
    }

    /// Waits up to `timeout` for the next frame of a camera no other worker holds a frame of, and
    /// holds that camera until the returned claim is dropped.
    pub fn claim_timeout(&self, timeout: Duration) -> Result<Claimed, RecvTimeoutError> {
        self.wait_pop(timeout, true).map(|(frame, lane)| Claimed {
            frame,
            _claim: LaneClaim {
                shared: self.shared.clone(),
                lane,
            },
        })
    }

    fn wait_pop(&self, timeout: Duration, claim: bool) -> Result<(Frame, u64), RecvTimeoutError> {
        let deadline = Instant::now() + timeout;
        let mut st = self.shared.state.lock();
        loop {
            if let Some(f) = Self::pop(&mut st, claim) {
                self.shared.not_full.notify_all();
                return Ok(f);
            }
            // Frames held back behind a claim are still to come: not disconnected yet.
            if self.shared.senders.load(Ordering::SeqCst) == 0
                && st.lanes.iter().all(|l| l.frames.is_empty())
            {
                return Err(RecvTimeoutError::Disconnected);
            }
            if self
                .shared
                .not_empty
                .wait_until(&mut st, deadline)
                .timed_out()
            {
                return Self::pop(&mut st, claim).ok_or(RecvTimeoutError::Timeout);
            }
        }
    }

    /// Takes a frame if one is waiting.
    pub fn try_recv(&self) -> Option<Frame> {
        let f = Self::pop(&mut self.shared.state.lock(), false);
        if f.is_some() {
            self.shared.not_full.notify_all();
        }
        f.map(|(f, _)| f)
    }

    /// Frames waiting across all cameras.
    pub fn len(&self) -> usize {
        self.shared
            .state
            .lock()
            .lanes
            .iter()
            .map(|l| l.frames.len())
            .sum()
    }

    /// Whether no frame is waiting.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The next frame round-robin over the lanes, skipping lanes a worker holds; with `claim` the
    /// lane is held until the claim is released.
    fn pop(st: &mut State, claim: bool) -> Option<(Frame, u64)> {
        let n = st.lanes.len();
        for i in 0..n {
            let idx = (st.rr + i) % n;
            let lane = &mut st.lanes[idx];
            if lane.claimed {
                continue;
            }
            let Some(frame) = lane.frames.pop_front() else {
                continue;
            };
            lane.stats.frames_delivered.fetch_add(1, Ordering::Relaxed);
            lane.claimed = claim;
            let id = lane.id;
            if lane.closed && lane.frames.is_empty() && !claim {
                st.rr = idx;
                remove_lane(st, idx);
            } else {
                st.rr = (idx + 1) % n;
            }
            return Some((frame, id));
        }
        None
    }
}

/// Removes lane `pos`, keeping the round-robin position on the lane that followed it.
fn remove_lane(st: &mut State, pos: usize) {
    st.lanes.remove(pos);
    st.rr = if st.lanes.is_empty() {
        0
    } else if st.rr > pos {
        (st.rr - 1) % st.lanes.len()
    } else {
        st.rr % st.lanes.len()
    };
}

/// A frame taken with [`FrameReceiver::claim_timeout`]. Its camera gives no other frame to any
/// worker until this is dropped.
pub struct Claimed {
    /// The frame.
    pub frame: Frame,
    _claim: LaneClaim,
}

struct LaneClaim {
    shared: Arc<Shared>,
    lane: u64,
}

impl Drop for LaneClaim {
    fn drop(&mut self) {
        let mut st = self.shared.state.lock();
        if let Some(pos) = st.lanes.iter().position(|l| l.id == self.lane) {
            let lane = &mut st.lanes[pos];
            lane.claimed = false;
            if lane.closed && lane.frames.is_empty() {
                remove_lane(&mut st, pos);
            }
        }
        // The lane's next frame, or the end of the stream, may be what another worker waits for.
        self.shared.not_empty.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(cam: &str, seq: u64) -> Frame {
        Frame {
            camera_id: cam.into(),
            seq,
            pts_s: seq as f64,
            wall: SystemTime::now(),
            image: BgrImage {
                width: 1,
                height: 1,
                data: vec![0, 0, 0],
            },
        }
    }

    #[test]
    fn drop_oldest_keeps_newest_and_counts() {
        let (tx, rx) = frame_channel();
        let stats = Arc::new(SourceStats::default());
        let lane = tx.lane(2, DropPolicy::DropOldest, stats.clone());
        for i in 0..10 {
            assert_eq!(lane.push(frame("a", i), &|| false), Pushed::Queued);
        }
        assert_eq!(rx.len(), 2);
        assert_eq!(stats.frames_dropped_backpressure.load(Ordering::Relaxed), 8);
        assert_eq!(stats.queue_high_water.load(Ordering::Relaxed), 2);
        assert_eq!(rx.try_recv().map(|f| f.seq), Some(8));
        assert_eq!(rx.try_recv().map(|f| f.seq), Some(9));
        assert!(rx.try_recv().is_none());
        assert_eq!(stats.frames_delivered.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn block_waits_for_room_and_aborts_on_close() {
        let (tx, rx) = frame_channel();
        let stats = Arc::new(SourceStats::default());
        let lane = Arc::new(tx.lane(1, DropPolicy::Block, stats));
        assert_eq!(lane.push(frame("a", 0), &|| false), Pushed::Queued);
        let l2 = lane.clone();
        let t = std::thread::spawn(move || l2.push(frame("a", 1), &|| false));
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(
            rx.recv_timeout(Duration::from_secs(1)).map(|f| f.seq),
            Ok(0)
        );
        assert_eq!(t.join().ok(), Some(Pushed::Queued));
        // Full again: a closing lane must release a blocked producer.
        let l3 = lane.clone();
        let t = std::thread::spawn(move || l3.push(frame("a", 2), &|| false));
        std::thread::sleep(Duration::from_millis(50));
        lane.close();
        assert_eq!(t.join().ok(), Some(Pushed::Aborted));
        // The frame queued before the close is still delivered.
        assert_eq!(rx.try_recv().map(|f| f.seq), Some(1));
    }

    #[test]
    fn round_robin_between_cameras_and_disconnect() {
        let (tx, rx) = frame_channel();
        let a = tx.lane(4, DropPolicy::Block, Arc::new(SourceStats::default()));
        let b = tx.lane(4, DropPolicy::Block, Arc::new(SourceStats::default()));
        for i in 0..3 {
            a.push(frame("a", i), &|| false);
        }
        b.push(frame("b", 0), &|| false);
        let order: Vec<String> = (0..4)
            .filter_map(|_| rx.try_recv())
            .map(|f| f.camera_id.to_string())
            .collect();
        assert_eq!(order, ["a", "b", "a", "a"]);
        drop((a, b, tx));
        assert_eq!(
            rx.recv_timeout(Duration::from_millis(10)).err(),
            Some(RecvTimeoutError::Disconnected)
        );
    }

    #[test]
    fn receiver_disconnects_when_cameras_finish_and_senders_are_gone() {
        let (tx, rx) = frame_channel();
        let lane = tx.lane(2, DropPolicy::Block, Arc::new(SourceStats::default()));
        drop(tx);
        lane.push(frame("a", 0), &|| false);
        lane.close();
        assert_eq!(
            rx.recv_timeout(Duration::from_millis(10)).map(|f| f.seq),
            Ok(0)
        );
        assert_eq!(
            rx.recv_timeout(Duration::from_millis(10)).err(),
            Some(RecvTimeoutError::Disconnected)
        );
    }

    #[test]
    fn push_without_receiver_reports_it() {
        let (tx, rx) = frame_channel();
        let lane = tx.lane(1, DropPolicy::Block, Arc::new(SourceStats::default()));
        drop(rx);
        assert_eq!(lane.push(frame("a", 0), &|| false), Pushed::NoReceiver);
    }

    #[test]
    fn a_claimed_camera_gives_no_frame_until_released_and_others_go_round_robin() {
        let (tx, rx) = frame_channel();
        let a = tx.lane(4, DropPolicy::Block, Arc::new(SourceStats::default()));
        let b = tx.lane(4, DropPolicy::Block, Arc::new(SourceStats::default()));
        for i in 0..3 {
            a.push(frame("a", i), &|| false);
            b.push(frame("b", i), &|| false);
        }
        let t = Duration::from_millis(10);
        let first = rx.claim_timeout(t).expect("a frame");
        assert_eq!((&*first.frame.camera_id, first.frame.seq), ("a", 0));
        // Camera a is held: a second worker gets b, then nothing until a is released.
        let second = rx.claim_timeout(t).expect("a frame");
        assert_eq!((&*second.frame.camera_id, second.frame.seq), ("b", 0));
        assert_eq!(rx.claim_timeout(t).err(), Some(RecvTimeoutError::Timeout));
        drop(first);
        let third = rx.claim_timeout(t).expect("a frame");
        assert_eq!((&*third.frame.camera_id, third.frame.seq), ("a", 1));
        drop((second, third));
        // In order per camera, alternating between cameras.
        let rest: Vec<(String, u64)> = std::iter::from_fn(|| rx.claim_timeout(t).ok())
            .map(|c| (c.frame.camera_id.to_string(), c.frame.seq))
            .collect();
        assert_eq!(rest, [("b".into(), 1), ("a".into(), 2), ("b".into(), 2)]);
    }

    #[test]
    fn a_worker_waiting_behind_a_claim_is_woken_by_its_release_and_sees_the_end() {
        let (tx, rx) = frame_channel();
        let lane = tx.lane(2, DropPolicy::Block, Arc::new(SourceStats::default()));
        drop(tx);
        lane.push(frame("a", 0), &|| false);
        lane.push(frame("a", 1), &|| false);
        lane.close();
        let held = rx
            .claim_timeout(Duration::from_millis(10))
            .expect("frame 0");
        let rx2 = rx.clone();
        let waiter = std::thread::spawn(move || {
            let next = rx2
                .claim_timeout(Duration::from_secs(5))
                .map(|c| c.frame.seq);
            let end = rx2.claim_timeout(Duration::from_secs(5)).err();
            (next, end)
        });
        std::thread::sleep(Duration::from_millis(50));
        drop(held);
        let (next, end) = waiter.join().expect("waiter");
        assert_eq!(next, Ok(1));
        assert_eq!(end, Some(RecvTimeoutError::Disconnected));
    }
}
