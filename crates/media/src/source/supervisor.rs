//! The supervisor thread of one camera: builds a pipeline per attempt, decides after each one
//! whether to stop, give up, rebuild (another codec, software decoding) or reconnect after a
//! jittered backoff.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use gstreamer as gst;
use gstreamer::prelude::*;
use tracing::{debug, info, warn};

use super::bus::watch;
use super::wiring::wire;
use super::{AttemptCtx, Inner, SourceState, SourceStats};
use crate::config::SourceKind;
use crate::pipeline::{choose_decoder, probe_file, require_decoder, Attempt, Plan, VideoCodec};

/// How one pipeline attempt ended, which decides the supervisor's next step.
pub(super) enum Outcome {
    Stopped,
    Ended,
    Fatal(String),
    /// Lost a live source: back off and reconnect.
    Lost {
        reason: String,
        had_frames: bool,
    },
    /// Rebuild at once with another codec or without hardware decoding.
    Rebuild {
        codec: Option<VideoCodec>,
        avoid_hw: bool,
        why: String,
    },
}

pub(super) fn supervise(inner: Arc<Inner>, plan: Plan) {
    let cfg = &inner.cfg;
    let mut rng = seed(&inner.camera_id);
    let mut stream: Option<String> = None;
    let mut codec: Option<VideoCodec> = match &cfg.source {
        SourceKind::Rtsp(r) => Some(Plan::initial_rtsp_codec(r.codec)),
        // A codec no installed decoder handles fails here, at once, naming what to install.
        SourceKind::File(f) => {
            match probe_file(&f.path).and_then(|p| require_decoder(&p, &f.path).map(|_| p)) {
                Ok(p) => {
                    info!(camera = %inner.camera_id, video = %p.video_caps_full, stream = p.video_stream, streams = ?p.streams, "probed file");
                    stream = Some(p.video_caps);
                    p.codec
                }
                Err(e) => {
                    inner.emit(SourceState::Down {
                        reason: e.to_string(),
                    });
                    inner.lane.close();
                    return;
                }
            }
        }
        SourceKind::V4l2(_) | SourceKind::Test(_) => None,
    };
    let needs_decoder = matches!(cfg.source, SourceKind::Rtsp(_) | SourceKind::File(_));
    let mut avoid_hw = false;
    let mut failures: u32 = 0;
    let mut last_decoder: Option<String> = None;

    let terminal = loop {
        if inner.stop.is_set() {
            break SourceState::Stopped;
        }
        let decoder = match codec.filter(|_| needs_decoder) {
            Some(c) => match choose_decoder(c, cfg.decoder, avoid_hw) {
                Ok(d) => {
                    if last_decoder.as_deref() != Some(d.element.as_str()) {
                        info!(camera = %inner.camera_id, decoder = %d.element, hardware = d.hardware, reason = %d.reason, "decoder selected");
                        last_decoder = Some(d.element.clone());
                    }
                    Some(d)
                }
                Err(e) => {
                    break SourceState::Down {
                        reason: format!("cannot decode {} video: {e}", c.label()),
                    }
                }
            },
            None => None,
        };
        let attempt = Attempt {
            codec,
            decoder,
            stream: stream.clone(),
        };
        inner.timeline.lock().new_segment();
        match run_pipeline(&inner, &plan, &attempt) {
            Outcome::Stopped => break SourceState::Stopped,
            Outcome::Ended => break SourceState::Ended,
            Outcome::Fatal(reason) => break SourceState::Down { reason },
            Outcome::Rebuild {
                codec: c,
                avoid_hw: a,
                why,
            } => {
                info!(camera = %inner.camera_id, %why, "rebuilding pipeline");
                codec = c.or(codec);
                avoid_hw |= a;
            }
            Outcome::Lost { reason, had_frames } => {
                if !inner.live {
                    break SourceState::Down { reason };
                }
                if had_frames {
                    failures = 0;
                }
                failures = failures.saturating_add(1);
                let backoff = jitter(cfg.reconnect.backoff(failures), &mut rng);
                warn!(camera = %inner.camera_id, %reason, "camera lost");
                inner.stats.reconnects.fetch_add(1, Ordering::Relaxed);
                inner.emit(SourceState::Reconnecting {
                    attempt: failures,
                    backoff,
                });
                if inner.stop.wait(backoff) {
                    break SourceState::Stopped;
                }
            }
        }
    };
    // State first: a consumer that sees the queue disconnect must already read the final state.
    inner.emit(terminal);
    inner.lane.close();
}

fn run_pipeline(inner: &Arc<Inner>, plan: &Plan, attempt: &Attempt) -> Outcome {
    let description = match plan.describe(attempt) {
        Ok(d) => d,
        Err(e) => return Outcome::Fatal(e.to_string()),
    };
    debug!(camera = %inner.camera_id, %description, "building pipeline");
    let pipeline =
        match Plan::parse(&description).and_then(|p| plan.verify(&p, &description).map(|_| p)) {
            Ok(p) => p,
            Err(e) => return Outcome::Fatal(e.to_string()),
        };
    let ctx = Arc::new(AttemptCtx::new());
    if let Err(reason) = wire(inner, plan, attempt, &pipeline, &ctx) {
        return Outcome::Fatal(reason);
    }
    let outcome = watch(inner, attempt, &pipeline, &ctx);
    ctx.closing.store(true, Ordering::SeqCst);
    teardown(&inner.camera_id, &inner.stats, pipeline, TEARDOWN_LIMIT);
    outcome
}

/// Longest wait for a pipeline to reach NULL before the supervisor goes on without it.
const TEARDOWN_LIMIT: Duration = Duration::from_secs(5);

/// Takes the pipeline to NULL, waiting at most `limit`.
///
/// A normal teardown takes milliseconds: our callbacks return within ~100 ms once `closing` is set, and
/// rtspsrc bounds its TEARDOWN request by its own `teardown-timeout`. But when the server hangs up while
/// we stop, GStreamer 1.22's rtspsrc can deadlock: its command task deactivates the jitterbuffer while the
/// jitterbuffer's loop sleeps on a wake-up that never comes (seen with gdb under load, about once in 60
/// hang-ups; the teardown finished as soon as gdb attached). Waiting on that inline would leave the camera
/// `Up` with no frames, unable to reconnect or stop, so the stuck pipeline is left to its own thread,
/// counted and logged, and the camera starts afresh with a new pipeline that shares no lock with it.
fn teardown(camera_id: &str, stats: &SourceStats, pipeline: gst::Pipeline, limit: Duration) {
    let (done_tx, done_rx) = crossbeam_channel::bounded::<()>(1);
    let stopping = pipeline.clone();
    let spawned = std::thread::Builder::new()
        .name(format!("teardown-{camera_id}"))
        .spawn(move || {
            let _ = stopping.set_state(gst::State::Null);
            let _ = done_tx.send(());
        });
    if spawned.is_err() {
        // No thread to spare: wait inline, as before.
        let _ = pipeline.set_state(gst::State::Null);
        return;
    }
    if done_rx.recv_timeout(limit).is_err() {
        stats.abandoned_teardowns.fetch_add(1, Ordering::Relaxed);
        warn!(
            camera = %camera_id,
            limit_s = limit.as_secs_f64(),
            "pipeline teardown hung (a GStreamer deadlock); left behind, starting a fresh pipeline"
        );
    }
}

fn seed(camera_id: &str) -> u64 {
    let t = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    camera_id
        .bytes()
        .fold(t | 1, |h, b| (h ^ b as u64).wrapping_mul(0x100_0000_01b3))
}

/// 75-100 % of `d`: cameras that failed together (a switch reboot) do not all reconnect in
/// the same instant, and the ceiling is never exceeded.
fn jitter(d: Duration, state: &mut u64) -> Duration {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    let unit = (*state >> 11) as f64 / (1u64 << 53) as f64;
    d.mul_f64(0.75 + 0.25 * unit)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A pipeline whose streaming thread never comes back (a probe that blocks, as the rtspsrc deadlock
    /// does) cannot reach NULL: the supervisor must still get its thread back, and count the loss.
    #[test]
    fn a_hung_teardown_is_abandoned_and_counted() {
        gst::init().unwrap();
        let pipeline =
            gst::parse::launch("videotestsrc is-live=true ! identity name=stall ! fakesink")
                .unwrap()
                .downcast::<gst::Pipeline>()
                .unwrap();
        let release = Arc::new((parking_lot::Mutex::new(false), parking_lot::Condvar::new()));
        let hold = release.clone();
        let stall = pipeline.by_name("stall").unwrap();
        stall
            .static_pad("src")
            .unwrap()
            .add_probe(gst::PadProbeType::BUFFER, move |_, _| {
                let mut released = hold.0.lock();
                while !*released {
                    hold.1.wait(&mut released);
                }
                gst::PadProbeReturn::Ok
            });
        pipeline.set_state(gst::State::Playing).unwrap();
        std::thread::sleep(Duration::from_millis(300));

        let stats = SourceStats::default();
        let started = std::time::Instant::now();
        teardown("cam", &stats, pipeline.clone(), Duration::from_millis(500));
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "teardown waited {:?}",
            started.elapsed()
        );
        assert_eq!(stats.abandoned_teardowns.load(Ordering::Relaxed), 1);

        // Once the streaming thread is free, the abandoned teardown completes on its own.
        *release.0.lock() = true;
        release.1.notify_all();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while pipeline.current_state() != gst::State::Null && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(pipeline.current_state(), gst::State::Null);

        // A pipeline that stops normally is not counted.
        let ok = gst::parse::launch("videotestsrc is-live=true ! fakesink")
            .unwrap()
            .downcast::<gst::Pipeline>()
            .unwrap();
        ok.set_state(gst::State::Playing).unwrap();
        teardown("cam", &stats, ok.clone(), Duration::from_secs(5));
        assert_eq!(ok.current_state(), gst::State::Null);
        assert_eq!(stats.abandoned_teardowns.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn jitter_stays_in_band() {
        let mut s = seed("cam");
        for _ in 0..1000 {
            let j = jitter(Duration::from_millis(1000), &mut s);
            assert!(
                j >= Duration::from_millis(750) && j <= Duration::from_millis(1000),
                "{j:?}"
            );
        }
    }
}
