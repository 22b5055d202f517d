//! One camera's analysis state and what happens to it: a source state change ([`CameraLoop::on_state`]), a
//! sampled frame ([`CameraLoop::on_frame`]: detect, track, count, match) and the main thread's periodic look
//! ([`CameraLoop::housekeep`]: effective rate, degraded state, status report).
//!
//! It owns no thread and does no waiting: a worker calls `on_frame` under the camera's lock, the main thread
//! `housekeep`, so the tests drive it directly with frames and states.

use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use checkpoint_media::{CameraEvent, Frame, SourceState, StatsSnapshot};
use checkpoint_protocol::{DegradedReason, EventKind, LineCrossing, WatchlistMatch};
use parking_lot::Mutex;
use time::OffsetDateTime;

use super::report::{camera_status, log_state, round2};
use super::FRAME_LOG_TARGET;
use crate::analysis::{CameraAnalyzer, Models};
use crate::count::Direction as LineDirection;
use crate::events::EventSink;
use crate::load::{RateMeter, Reliability, Transition};
use crate::metrics::{CameraLabel, Metrics};
use crate::tally::SiteTally;
use crate::watchlist::{face_snapshot, list_name, Candidate, TrackMatcher};

/// What every analysis worker and the main thread share.
pub(super) struct Ctx {
    pub sink: EventSink,
    pub tally: Arc<Mutex<SiteTally>>,
    pub metrics: Arc<Metrics>,
    pub status_every: Duration,
}

/// What a camera needs to turn its tracks into watchlist candidates.
pub(super) struct Watch {
    pub matcher: TrackMatcher,
    pub snapshot_max_side: u32,
    pub snapshot_quality: u8,
    pub models: Vec<String>,
}

/// How a camera is sampled now, as the governor set it.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Sampling {
    /// The sampler's rate (`None`: every decoded frame).
    pub fps: Option<f64>,
    /// The governor holds it below what the camera would otherwise be analysed at.
    pub shed: bool,
}

/// A camera's rates as configured.
pub(super) struct Rates {
    /// Frames come at the source's pace and are lost when not taken in time (live, or a file in real time).
    pub paced: bool,
    pub analysis_fps: Option<f64>,
    /// The rate counting needs; analysed below it, the camera's counts are reported as degraded.
    pub reliable_fps: f64,
}

/// One camera's analysis state. A worker holds the lock for one frame; the main thread for housekeeping.
pub(super) struct CameraLoop {
    id: String,
    label: CameraLabel,
    analyzer: CameraAnalyzer,
    watch: Option<Watch>,
    events: crossbeam_channel::Receiver<CameraEvent>,
    paced: bool,
    analysis_fps: Option<f64>,
    up: Option<SourceState>,
    reported: Instant,
    fps_ewma: Option<f64>,
    last_frame: Option<Instant>,
    meter: RateMeter,
    reliability: Reliability,
    sampling: Sampling,
    /// Frames evicted for backpressure as last seen, and when that number last grew.
    backpressure_seen: u64,
    lagging_at: Option<Instant>,
}

impl CameraLoop {
    pub fn new(
        id: String,
        label: CameraLabel,
        analyzer: CameraAnalyzer,
        watch: Option<Watch>,
        events: crossbeam_channel::Receiver<CameraEvent>,
        rates: Rates,
    ) -> Self {
        Self {
            id,
            label,
            analyzer,
            watch,
            events,
            paced: rates.paced,
            analysis_fps: rates.analysis_fps,
            up: None,
            reported: Instant::now(),
            fps_ewma: None,
            last_frame: None,
            meter: RateMeter::default(),
            reliability: Reliability::new(rates.reliable_fps),
            sampling: Sampling {
                fps: rates.analysis_fps,
                shed: false,
            },
            backpressure_seen: 0,
            lagging_at: None,
        }
    }

    /// State changes of the source, oldest first.
    pub fn drain_events(&mut self, ctx: &Ctx) {
        while let Ok(ev) = self.events.try_recv() {
            self.on_state(ctx, &ev.state);
        }
    }

    /// A state change of the source: reported at once, and a lost camera ends its tracks.
    pub fn on_state(&mut self, ctx: &Ctx, state: &SourceState) {
        log_state(&self.id, state);
        match state {
            // A lost camera ends its tracks: people seen before the outage are not the ones after it. Its
            // counts are missing rather than unreliable, so a degraded period ends here too.
            SourceState::Reconnecting { .. } | SourceState::Down { .. } => {
                self.end_tracks();
                self.end_measurement(ctx);
            }
            SourceState::Ended | SourceState::Stopped => self.end_measurement(ctx),
            _ => {}
        }
        self.up = matches!(state, SourceState::Up { .. }).then(|| state.clone());
        self.emit_status(ctx, state);
    }

    /// Tracks holding face data now.
    #[cfg(test)]
    pub fn tracks_with_faces(&self) -> usize {
        self.analyzer.tracks_with_faces()
    }

    /// Ends every track, and with it the faces the watchlist matcher kept for it.
    pub fn end_tracks(&mut self) {
        let ended = self.analyzer.finish();
        if let Some(w) = self.watch.as_mut() {
            ended.iter().for_each(|id| w.matcher.track_ended(*id));
        }
    }

    fn end_measurement(&mut self, ctx: &Ctx) {
        self.meter.reset();
        if self.reliability.clear() {
            tracing::debug!(camera = %self.id, "degraded period ends with the camera's stream");
        }
        ctx.metrics.load.degraded.get_or_create(&self.label).set(0);
    }

    /// The main thread's look at the camera every tick: state changes, the effective rate and the degraded
    /// state, the periodic status report.
    pub fn housekeep(
        &mut self,
        ctx: &Ctx,
        stats: &StatsSnapshot,
        sampling: Sampling,
        now: Instant,
    ) {
        self.sampling = sampling;
        if stats.frames_dropped_backpressure > self.backpressure_seen {
            self.backpressure_seen = stats.frames_dropped_backpressure;
            self.lagging_at = Some(now);
        }
        self.drain_events(ctx);
        let Some(state) = self.up.clone() else {
            return;
        };
        let effective = self.meter.effective_fps(now, self.paced);
        let load = &ctx.metrics.load;
        load.effective_fps
            .get_or_create(&self.label)
            .set(effective.unwrap_or(0.0));
        let reason = self.reason(now);
        let transition =
            self.reliability
                .update(effective, reason, now, std::time::SystemTime::now());
        load.degraded
            .get_or_create(&self.label)
            .set(i64::from(self.reliability.degraded().is_some()));
        match transition {
            Some(Transition::Degraded { fps }) => tracing::warn!(
                camera = %self.id, effective_fps = round2(fps), reliable_fps = self.reliability.threshold(),
                sampling_fps = self.sampling.fps.map(round2), reason = reason.as_str(),
                "counts unreliable: the camera is analysed below the rate counting needs"
            ),
            Some(Transition::Recovered { fps }) => tracing::info!(
                camera = %self.id, effective_fps = round2(fps), reliable_fps = self.reliability.threshold(),
                "counts reliable again: the camera is analysed at the rate counting needs"
            ),
            None => {}
        }
        let due = self.reported.elapsed() >= ctx.status_every && self.fps_ewma.is_some();
        if transition.is_some() || due {
            self.emit_status(ctx, &state);
        }
    }

    /// Why the camera would be analysed too slowly, were it now.
    fn reason(&self, now: Instant) -> DegradedReason {
        let lagging = self
            .lagging_at
            .is_some_and(|t| now.duration_since(t) < Duration::from_secs(5));
        let threshold = self.reliability.threshold() * Reliability::TOLERANCE;
        if self.sampling.shed || lagging {
            DegradedReason::Overload
        } else if self.analysis_fps.is_some_and(|f| f < threshold) {
            DegradedReason::Configured
        } else {
            DegradedReason::Source
        }
    }

    fn emit_status(&mut self, ctx: &Ctx, state: &SourceState) {
        let mut s = camera_status(&self.id, state, self.fps_ewma.map(round2));
        s.reliable_fps = Some(self.reliability.threshold());
        let degraded = self.reliability.degraded();
        s.degraded = Some(degraded.is_some());
        if self.up.is_some() {
            s.effective_fps = self
                .meter
                .effective_fps(Instant::now(), self.paced)
                .map(round2);
            s.sampling_fps = self.sampling.fps.map(round2);
        }
        if let Some(d) = degraded {
            s.degraded_reason = Some(d.reason);
            s.degraded_since = Some(OffsetDateTime::from(d.since));
        }
        ctx.sink.emit(EventKind::CameraStatus(s));
        self.reported = Instant::now();
    }

    /// Detect, track, count and match one frame.
    pub fn on_frame(&mut self, models: &mut Models, frame: &Frame, ctx: &Ctx) {
        self.measure_rate(frame, &ctx.metrics);
        tracing::debug!(target: FRAME_LOG_TARGET, camera = %self.id, pts = frame.pts_s, seq = frame.seq, "frame analysed");
        let out = match self.analyzer.process(models, &frame.image, frame.pts_s) {
            Ok(out) => out,
            // A frame the models cannot take (corrupt, odd size) is skipped, the camera goes on.
            Err(e) => {
                tracing::warn!(camera = %self.id, error = %e, "frame skipped");
                return;
            }
        };
        for (c, boundary) in out.crossings {
            self.count(ctx, c, boundary);
        }
        let camera = self.id.as_str();
        let Some(w) = self.watch.as_mut() else {
            return;
        };
        for (track, face) in &out.face_updates {
            let faces = self
                .analyzer
                .track_faces(*track)
                .iter()
                .map(|f| (f.quality, &f.embedding));
            for cand in w.matcher.observe(*track, faces, OffsetDateTime::now_utc()) {
                let m = alert(camera, w, &cand, frame, face);
                ctx.metrics
                    .watchlist_candidates
                    .get_or_create(&crate::metrics::CandidateLabel {
                        camera: camera.to_string(),
                        list: list_name(cand.list).into(),
                    })
                    .inc();
                tracing::warn!(
                    camera, track = cand.track_id, entry = %cand.entry_id,
                    list = list_name(cand.list), similarity = cand.similarity,
                    votes = cand.votes, faces = cand.faces_used,
                    "watchlist candidate (for review)"
                );
                ctx.sink.emit(EventKind::WatchlistMatch(m));
            }
        }
        for id in &out.ended {
            w.matcher.track_ended(*id);
        }
    }

    /// The camera's analysed rate (smoothed, for the status) and the gaps between analysed frames.
    fn measure_rate(&mut self, frame: &Frame, metrics: &Metrics) {
        let now = Instant::now();
        if let Some(prev) = self.last_frame {
            let dt = now.duration_since(prev).as_secs_f64().max(1e-6);
            let f = 1.0 / dt;
            let ewma = self.fps_ewma.map_or(f, |e| 0.9 * e + 0.1 * f);
            self.fps_ewma = Some(ewma);
            metrics.camera_fps.get_or_create(&self.label).set(ewma);
        }
        self.last_frame = Some(now);
        if let Some(gap) = self.meter.record(frame.pts_s, now) {
            metrics
                .load
                .gap_seconds
                .get_or_create(&self.label)
                .observe(gap);
        }
    }

    /// A line crossing: into the site's tally and out as an event.
    fn count(&self, ctx: &Ctx, c: crate::count::Crossing, boundary: bool) {
        let camera = self.id.as_str();
        let direction = match c.direction {
            LineDirection::In => checkpoint_protocol::Direction::In,
            LineDirection::Out => checkpoint_protocol::Direction::Out,
        };
        {
            let mut tally = ctx.tally.lock();
            tally.record(camera, &c.line_id, direction, boundary);
            ctx.metrics.occupancy.set(tally.occupancy());
        }
        tracing::debug!(camera, line = %c.line_id, ?direction, track = c.track_id, t = c.ts, "crossing");
        ctx.sink.emit(EventKind::LineCrossing(LineCrossing {
            camera: camera.to_string(),
            line: c.line_id,
            direction,
            track_id: c.track_id,
            stream_time_s: c.ts,
            site_boundary: Some(boundary),
        }));
    }
}

/// The event for a candidate, with a snapshot of the face that triggered this decision. A snapshot that cannot
/// be made does not hold the alert back: it goes out without one.
fn alert(
    camera: &str,
    w: &Watch,
    c: &Candidate,
    frame: &Frame,
    face: &checkpoint_vision::Face,
) -> WatchlistMatch {
    let snapshot = match face_snapshot(
        &frame.image,
        &face.bbox,
        w.snapshot_max_side,
        w.snapshot_quality,
    ) {
        Ok(jpg) => base64::engine::general_purpose::STANDARD.encode(jpg),
        Err(e) => {
            tracing::error!(camera, error = %e, "alert snapshot failed; the alert goes without one");
            String::new()
        }
    };
    WatchlistMatch {
        camera: camera.to_string(),
        track_id: c.track_id,
        list: c.list,
        entry_id: c.entry_id.clone(),
        watchlist_version: c.watchlist_version,
        similarity: c.similarity,
        threshold: c.threshold,
        votes: c.votes,
        rank: c.rank,
        faces_used: c.faces_used,
        snapshot_jpeg_b64: snapshot,
        stream_time_s: frame.pts_s,
        models: w.models.clone(),
        evidence: Some(evidence(c)),
    }
}

/// What the reviewers weigh a candidate by, beyond the bare similarity.
pub fn evidence(c: &Candidate) -> checkpoint_protocol::MatchEvidence {
    checkpoint_protocol::MatchEvidence {
        face_quality: c.face_quality,
        second_entry: c.second.as_ref().map(|(id, _)| id.clone()),
        second_similarity: c.second.as_ref().map(|(_, s)| *s),
        list_entries: c.list_entries as u64,
        target_fpir: c.operating.map(|o| o.target_fpir),
        expected_fpir: c.operating.map(|o| o.expected_fpir),
        score_fmr: c.score_fmr,
    }
}
