//! `edge-agent run`: cameras in, analysis per camera, events and metrics out.
//!
//! Threads: each camera has a GStreamer supervisor (in `checkpoint-media`) that samples its frames into a lane of
//! its own; a pool of analysis workers (`[load] analysis_threads`) takes frames from the lanes round-robin, one
//! camera at a time per worker, so a camera that vanishes or floods never holds up another. The main thread
//! closes count intervals, mirrors source statistics into metrics, reports each camera's state and effective
//! analysis rate, and runs the load governor ([`crate::load`]): when the workers cannot keep up, every camera's
//! sampling rate is lowered evenly, and cameras analysed below the rate counting needs report `degraded`.
//!
//! The parts, in the order a run goes through them:
//! - [`setup`]: the runtime, the event sink, the watchlist, the outbox and publisher, the cameras and the workers;
//! - [`camera`]: one camera's analysis state ([`camera::CameraLoop`]), driven by `on_state` and `on_frame`
//!   without threads of its own (the workers and the main thread call it under its lock);
//! - [`workers`]: the analysis workers' loop;
//! - [`govern`]: the main thread's control period (what frames cost, each camera's share);
//! - [`report`]: camera status, count intervals and the metrics mirrored from sources and delivery;
//! - this module: the main thread's loop and the shutdown.

mod camera;
mod govern;
mod report;
mod setup;
mod workers;

#[cfg(test)]
mod tests;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use checkpoint_protocol::{AgentState, AgentStatus, EventKind};
use time::OffsetDateTime;

use crate::config::Config;
use crate::load::CONTROL_PERIOD;
use crate::metrics::Metrics;

pub use camera::evidence;
pub use setup::load_models;

use report::{flush_counts, mirror_delivery, mirror_stats};
use setup::Site;

/// The log target of the per-frame debug line (`CHECKPOINT_LOG=info,checkpoint::frames=debug`): camera, stream
/// time and sequence number of every analysed frame, for checking how evenly cameras are sampled.
pub const FRAME_LOG_TARGET: &str = "checkpoint::frames";

/// Runs the agent until Ctrl-C / SIGTERM (`stop` set) or, with `exit_when_done`, until every camera ended.
pub fn run(cfg: Config, stop: Arc<AtomicBool>, metrics: Arc<Metrics>) -> Result<()> {
    let mut site = Site::start(&cfg, &stop, metrics)?;
    supervise(&mut site, &cfg, &stop);
    shut_down(site, &cfg);
    Ok(())
}

/// The main thread's loop, every 100 ms until the agent stops.
fn supervise(site: &mut Site, cfg: &Config, stop: &AtomicBool) {
    let interval = Duration::from_secs_f64(cfg.agent.count_interval_s);
    let mut next_flush = Instant::now() + interval;
    let mut next_control = Instant::now() + CONTROL_PERIOD;
    loop {
        std::thread::sleep(Duration::from_millis(100));
        let now = Instant::now();
        housekeep_cameras(site, now);
        if now >= next_control {
            next_control = now + CONTROL_PERIOD;
            govern::govern(
                &mut site.governor,
                &mut site.cameras,
                &site.ctx.metrics,
                cfg.load.adaptive_sampling,
            );
        }
        if let Some(w) = site.watchlist.as_mut() {
            w.tick(OffsetDateTime::now_utc(), &site.ctx.sink);
        }
        if let Some(d) = &site.delivery {
            if let Err(e) = d.outbox.tick() {
                tracing::error!(error = %e, "outbox");
            }
            mirror_delivery(&site.ctx.metrics, &d.outbox, &d.publisher);
        }
        if Instant::now() >= next_flush {
            next_flush += interval;
            // Every line reports every interval, zeros included: the hub rolls counts up per hour and day and
            // must tell "nobody passed" from "no report".
            flush_counts(&site.ctx.sink, &site.ctx.tally);
        }
        let all_done = site.pool.iter().all(|w| w.is_finished());
        if stop.load(Ordering::Relaxed) || (cfg.agent.exit_when_done && all_done) {
            break;
        }
    }
    stop.store(true, Ordering::Relaxed);
}

/// Each camera's look every tick: source statistics into metrics, state changes, rate and status.
fn housekeep_cameras(site: &Site, now: Instant) {
    for c in &site.cameras {
        let stats = c.handle.stats().snapshot();
        mirror_stats(&site.ctx.metrics, &c.id, &stats);
        // A worker holds the lock for one frame at most; if that is long, try again next tick.
        if let Some(mut w) = c.work.try_lock_for(Duration::from_millis(20)) {
            w.housekeep(&site.ctx, &stats, c.sampling, now);
        }
    }
}

/// Joins the workers, stops the cameras, closes their tracks and the last count interval, reports offline and
/// gives the publisher its drain time; what it cannot send stays in the outbox for the next start.
fn shut_down(site: Site, cfg: &Config) {
    let Site {
        ctx,
        delivery,
        cameras,
        pool,
        announce,
        ..
    } = site;
    for w in pool {
        if w.join().is_err() {
            tracing::error!("analysis worker panicked");
        }
    }
    for mut c in cameras {
        c.handle.stop();
        mirror_stats(&ctx.metrics, &c.id, &c.handle.stats().snapshot());
        // The last state changes (the end of a file arrives after its last frame), then the tracks end.
        let mut w = c.work.lock();
        w.drain_events(&ctx);
        w.end_tracks();
    }
    flush_counts(&ctx.sink, &ctx.tally);
    ctx.sink.emit(EventKind::AgentStatus(AgentStatus {
        state: AgentState::Offline,
        version: announce.version,
        cameras: announce.cameras,
    }));
    if let (Some(mut d), Some(mqtt)) = (delivery, &cfg.mqtt) {
        d.publisher
            .stop_draining(Duration::from_secs_f64(mqtt.shutdown_drain_s));
        let left = d.outbox.stats().pending;
        if left > 0 {
            tracing::info!(
                pending = left,
                "events kept in the outbox for the next start"
            );
        }
    }
}
