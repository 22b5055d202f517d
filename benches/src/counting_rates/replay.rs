//! The measurement: the agent's tracker and counter replayed on a scene's cached detections at one analysis
//! rate, from several starting frames, scored against the truth; the tracker from before issue 13 beside it.

use checkpoint_scenegen::{
    analysed_frames, score_crossings, CountScore, Counted, Direction as TruthDirection, IdAudit,
    Target, Truth,
};
use edge_agent::analysis::{Coords, LineConfig, Mode};
use edge_agent::count::{CameraCounter, Direction, Side};
use edge_agent::track::{BBox, Detection, TrackerConfig};

use super::{Row, TOLERANCE_S};
use crate::legacy_track;

/// The scene's line as the agent would be configured for it: pixels, in = the truth's in side (its
/// `in_normal` is the right-hand side of a->b in image coordinates), and the band a normalised line gets by
/// default (2% of the diagonal).
pub fn line_config(truth: &Truth) -> LineConfig {
    let diag = (truth.width as f32).hypot(truth.height as f32);
    LineConfig {
        id: "line".into(),
        a: truth.line.a,
        b: truth.line.b,
        coords: Coords::Pixels,
        in_side: Side::Right,
        band: Some(0.02 * diag),
        site_boundary: true,
    }
}

/// Replays tracker + counter at `rate` from up to `phases` starting frames.
pub(super) fn replay(
    scene: &str,
    truth: &Truth,
    mode: Target,
    dets: &[Vec<Detection>],
    rate: f64,
    phases: usize,
) -> Row {
    let per = (truth.fps as f64 / rate).max(1.0);
    let n = phases.clamp(1, per.ceil() as usize);
    let mut score = CountScore::default();
    let mut before = CountScore::default();
    let (mut fragments, mut swaps) = (0, 0);
    let mut starts: Vec<u64> = (0..n)
        .map(|i| (i as f64 * per / n as f64).round() as u64)
        .collect();
    starts.dedup();
    for &phase in &starts {
        let frames = analysed_frames(truth.frames, truth.fps, rate, phase);
        let r = replay_once(truth, mode, dets, &frames);
        before.add(&replay_legacy(truth, mode, dets, &frames));
        score.add(&r.0);
        fragments += r.1;
        swaps += r.2;
    }
    Row {
        rate,
        scene: scene.to_string(),
        mode,
        score,
        before,
        fragments,
        swaps,
        runs: starts.len(),
    }
}

/// The agent's tracker and counter on the detections of `frames`: the score, fragments and swaps.
pub fn replay_once(
    truth: &Truth,
    mode: Target,
    dets: &[Vec<Detection>],
    frames: &[u64],
) -> (CountScore, usize, usize) {
    let agent_mode = match mode {
        Target::Faces => Mode::Faces,
        Target::People => Mode::People,
    };
    let mut counter = CameraCounter::new(
        vec![line_config(truth)],
        agent_mode,
        None,
        TrackerConfig::default(),
    );
    let mut counted = Vec::new();
    let mut audit = IdAudit::default();
    let empty = Vec::new();
    for &k in frames {
        let d = dets.get(k as usize).unwrap_or(&empty);
        let ts = k as f64 / truth.fps as f64;
        let step = counter.step(d, ts, truth.width, truth.height);
        let reported: Vec<(u64, [f32; 4])> = step
            .update
            .tracks
            .iter()
            .map(|t| (t.id, [t.bbox.x, t.bbox.y, t.bbox.w, t.bbox.h]))
            .collect();
        audit.observe(truth, mode, k, &reported);
        for (c, _) in step.crossings {
            counted.push(Counted {
                direction: match c.direction {
                    Direction::In => TruthDirection::In,
                    Direction::Out => TruthDirection::Out,
                },
                ts: c.ts,
                track: c.track_id,
            });
        }
    }
    counter.finish();
    (
        score_crossings(
            truth,
            mode,
            &counted,
            line_config(truth).band.unwrap_or(0.0),
            TOLERANCE_S,
            None,
        ),
        audit.fragments,
        audit.swaps,
    )
}

/// Debugging aid: one actor's frames at `rate`, with the detections and tracks near it and every crossing.
pub(super) fn trace(truth: &Truth, mode: Target, dets: &[Vec<Detection>], rate: f64, actor: u32) {
    let Some(a) = truth.actors.iter().find(|a| a.actor_id == actor) else {
        return;
    };
    let band = line_config(truth).band.unwrap_or(0.0);
    println!(
        "trace {} {:?} actor {actor} {:?} span {:?}",
        truth.seed,
        mode,
        a.direction,
        mode.crossing_span(truth, a, band)
    );
    let agent_mode = match mode {
        Target::Faces => Mode::Faces,
        Target::People => Mode::People,
    };
    let mut counter = CameraCounter::new(
        vec![line_config(truth)],
        agent_mode,
        None,
        TrackerConfig::default(),
    );
    for k in analysed_frames(truth.frames, truth.fps, rate, 0) {
        let d = &dets[k as usize];
        let ts = k as f64 / truth.fps as f64;
        let step = counter.step(d, ts, truth.width, truth.height);
        for (c, _) in &step.crossings {
            println!(
                "  counted {:?} track {} at {:.2}",
                c.direction, c.track_id, c.ts
            );
        }
        let Some(b) = a.cutout_at(k) else { continue };
        if k < a.first_frame || k > a.last_frame {
            continue;
        }
        let near = |x: &BBox| (x.x - b[0]).abs() < 300.0 && (x.y - b[1]).abs() < 300.0;
        let v = mode.visible_box(truth, a, k);
        println!(
            "  {ts:6.2} truth {:?} dets {:?} tracks {:?}",
            v.map(|v| v.map(|x| x as i32)),
            d.iter()
                .filter(|x| near(&x.bbox))
                .map(|x| (
                    x.bbox.x as i32,
                    x.bbox.y as i32,
                    x.bbox.w as i32,
                    x.bbox.h as i32,
                    (x.score * 100.0) as i32
                ))
                .collect::<Vec<_>>(),
            step.update
                .tracks
                .iter()
                .filter(|t| near(&t.bbox))
                .map(|t| (t.id, t.bbox.x as i32, t.bbox.y as i32))
                .collect::<Vec<_>>()
        );
    }
}

/// [`replay_once`] with the tracker of main before issue 13 and the same counter, for comparison.
fn replay_legacy(
    truth: &Truth,
    mode: Target,
    dets: &[Vec<Detection>],
    frames: &[u64],
) -> CountScore {
    let mut tracker = legacy_track::Tracker::new(legacy_track::TrackerConfig::default());
    let geom = line_config(truth).geometry(truth.width, truth.height);
    let mut line = edge_agent::count::LineCounter::new("line", geom);
    let mut counted = Vec::new();
    for &k in frames {
        let d = dets.get(k as usize).map(Vec::as_slice).unwrap_or(&[]);
        let ts = k as f64 / truth.fps as f64;
        let u = tracker.update(d, ts);
        for t in &u.tracks {
            let p = match mode {
                Target::Faces => t.bbox.center(),
                Target::People => t.bbox.bottom_center(),
            };
            if let Some(c) = line.observe(t.id, p, ts) {
                counted.push(Counted {
                    direction: match c.direction {
                        Direction::In => TruthDirection::In,
                        Direction::Out => TruthDirection::Out,
                    },
                    ts: c.ts,
                    track: c.track_id,
                });
            }
        }
        for id in u.ended {
            line.track_ended(id);
        }
    }
    tracker.finish();
    score_crossings(
        truth,
        mode,
        &counted,
        line_config(truth).band.unwrap_or(0.0),
        TOLERANCE_S,
        None,
    )
}
