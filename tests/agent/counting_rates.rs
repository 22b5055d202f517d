//! Counting across analysis rates, without models and without a clock: the agent's tracker and counter
//! (`edge_agent::count::CameraCounter`, what `CameraAnalyzer` runs per frame) on detections derived from
//! the scenes' truth with a detector's faults (box jitter, runs of 1-3 missed analysed frames, false
//! positives; seeded), at 25, 10, 5, 2.5 and 2 analysed frames per second, in faces mode (face boxes,
//! counted at the centre) and people mode (person cut-outs clipped to the picture, counted at the feet).
//!
//! The scenes are `SceneSpec::preset`s: the standard gate scene, walkers twice as fast, a crowd of 10 to 16
//! at once, and people who stop on the line. Each scene is planned, not rendered (truth only: fast).
//! Per scene, mode and rate, added up over 3 starting frames and 6 noise seeds: at least 98% of the
//! observable crossings counted per direction (96% for the fast walkers), and at most one crossing in a
//! hundred counted that did not happen (1.5 for the fast walkers). Not zero: the synthetic detector puts
//! a false box at a random place every 50 frames, and now and then one lands where a person the detector
//! is missing was last seen; the real detectors on the rendered scenes (`checkpoint-bench
//! counting-rates`) make 0.001-0.014 false boxes per frame, near people, and count no crossing twice.

use checkpoint_scenegen::{
    analysed_frames, observable_crossers, score_crossings, synthetic_detections, CountScore,
    Counted, DetectorNoise, Direction as TruthDirection, SceneSpec, Target, Truth,
};
use edge_agent::analysis::{Coords, LineConfig, Mode};
use edge_agent::count::{CameraCounter, Direction, Side};
use edge_agent::track::{BBox, Detection, TrackerConfig};

const RATES: [f64; 5] = [25.0, 10.0, 5.0, 2.5, 2.0];
const SEEDS: [u64; 6] = [1, 2, 3, 4, 5, 6];
/// Starting frames per rate (where the rate leaves that many distinct ones).
const PHASES: usize = 3;
/// As in tests/counting.rs.
const TOLERANCE_S: f64 = 2.5;

fn line(truth: &Truth) -> LineConfig {
    LineConfig {
        id: "line".into(),
        a: truth.line.a,
        b: truth.line.b,
        coords: Coords::Pixels,
        // The truth's in_normal is the right-hand side of a->b in image coordinates.
        in_side: Side::Right,
        // What a normalised line gets by default: 2% of the diagonal.
        band: Some(0.02 * (truth.width as f32).hypot(truth.height as f32)),
        site_boundary: true,
    }
}

fn mode(target: Target) -> Mode {
    match target {
        Target::Faces => Mode::Faces,
        Target::People => Mode::People,
    }
}

fn noise() -> DetectorNoise {
    DetectorNoise::default()
}

/// One replay: tracker + counter on the synthetic detections of the frames analysed at `rate`.
fn replay(
    truth: &Truth,
    target: Target,
    rate: f64,
    phase: u64,
    seed: u64,
    cfg: &TrackerConfig,
) -> CountScore {
    let frames = analysed_frames(truth.frames, truth.fps, rate, phase);
    let dets = synthetic_detections(truth, target, &frames, &noise(), seed);
    let mut counter = CameraCounter::new(vec![line(truth)], mode(target), None, cfg.clone());
    let mut counted = Vec::new();
    for (&k, frame) in frames.iter().zip(&dets) {
        let d: Vec<Detection> = frame
            .iter()
            .map(|s| Detection {
                bbox: BBox {
                    x: s.bbox[0],
                    y: s.bbox[1],
                    w: s.bbox[2],
                    h: s.bbox[3],
                },
                score: s.score,
            })
            .collect();
        let ts = k as f64 / truth.fps as f64;
        for (c, _) in counter.step(&d, ts, truth.width, truth.height).crossings {
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
    let band = line(truth).band.unwrap_or(0.0);
    let observable = observable_crossers(truth, target, &dets, band);
    score_crossings(
        truth,
        target,
        &counted,
        band,
        TOLERANCE_S,
        Some(&observable),
    )
}

/// Every phase and seed of one scene, mode and rate, added up; and for each run that fell short, which
/// (`phase/seed: missed actors, extras`).
fn sweep(
    truth: &Truth,
    target: Target,
    rate: f64,
    cfg: &TrackerConfig,
) -> (CountScore, Vec<String>) {
    let per = truth.fps as f64 / rate;
    let phases = PHASES.clamp(1, per.ceil().max(1.0) as usize);
    let mut total = CountScore::default();
    let mut runs = Vec::new();
    let mut starts: Vec<u64> = (0..phases)
        .map(|i| (i as f64 * per / phases as f64).round() as u64)
        .collect();
    starts.dedup();
    for phase in starts {
        for seed in SEEDS {
            let s = replay(truth, target, rate, phase, seed, cfg);
            if !s.meets(1.0) {
                runs.push(format!(
                    "{phase}/{seed}: missed {:?} extra {:?}",
                    s.missed, s.extras
                ));
            }
            total.add(&s);
        }
    }
    (total, runs)
}

/// `min_recall`: share of the observable crossings counted per direction; `max_extra`: counted crossings
/// that did not happen, per true crossing.
fn check_scene(name: &str, min_recall: f64, max_extra: f64) {
    let spec = SceneSpec::preset(name).expect("a preset");
    let truth = checkpoint_scenegen::plan(&spec).expect("scene planned (needs ../shared faces)");
    let mut failures = Vec::new();
    for target in [Target::Faces, Target::People] {
        for rate in RATES {
            let (s, runs) = sweep(&truth, target, rate, &TrackerConfig::default());
            let line = format!(
                "{name} {target:?} {rate} fps: in {}/{} out {}/{} extra {} (double {}) unobservable {}; runs short: {runs:?}",
                s.hit_in, s.truth_in, s.hit_out, s.truth_out, s.extra_in + s.extra_out, s.double, s.unobservable
            );
            eprintln!("{line}");
            assert!(s.truth_in > 0 && s.truth_out > 0, "{line}");
            let extra = (s.extra_in + s.extra_out) as f64 / (s.truth_in + s.truth_out) as f64;
            if s.recall_in() < min_recall || s.recall_out() < min_recall || extra > max_extra {
                failures.push(line);
            }
        }
    }
    assert!(
        failures.is_empty(),
        "below target:\n{}",
        failures.join("\n")
    );
}

#[test]
fn standard_gate_scene_counts_at_every_rate() {
    check_scene("standard", 0.98, 0.01);
}

/// Twice the standard speed: at 2 fps a face is seen in only two to four analysed frames on each side of
/// the line, so a run of missed frames sometimes leaves one sighting that no tracker can tie to the rest.
#[test]
fn fast_walkers_count_at_every_rate() {
    check_scene("fast", 0.96, 0.015);
}

#[test]
fn crowd_of_ten_and_more_counts_at_every_rate() {
    let truth = checkpoint_scenegen::plan(&SceneSpec::preset("crowd").unwrap()).unwrap();
    assert!(
        truth.max_in_picture() >= 10,
        "the crowd scene must hold 10+ people at once, has {}",
        truth.max_in_picture()
    );
    check_scene("crowd", 0.98, 0.01);
}

#[test]
fn people_stopping_on_the_line_count_once_at_every_rate() {
    let truth = checkpoint_scenegen::plan(&SceneSpec::preset("stop").unwrap()).unwrap();
    let paused = truth.actors.iter().filter(|a| a.paused).count();
    assert!(paused >= 10, "{paused} stop on the line");
    check_scene("stop", 0.98, 0.01);
}

/// The test can fail: ByteTrack's IoU-only association (a track continues only with a detection that
/// overlaps its prediction; frame-counted timeouts as short as at 10 fps; tentative tracks die on a miss)
/// loses most crossings at 2 fps on the same detections.
#[test]
fn iou_only_association_fails_at_two_fps() {
    let truth = checkpoint_scenegen::plan(&SceneSpec::preset("standard").unwrap()).unwrap();
    let bytetrack_like = TrackerConfig {
        gate_radius: Some(0.01),
        speed_change: Some(0.0),
        max_speed: Some(0.01),
        lost_min_frames: 0,
        tentative_misses: 0,
        ..TrackerConfig::default()
    };
    let (s, _) = sweep(&truth, Target::Faces, 2.0, &bytetrack_like);
    eprintln!(
        "IoU-only at 2 fps: in {}/{} out {}/{}",
        s.hit_in, s.truth_in, s.hit_out, s.truth_out
    );
    assert!(!s.meets(0.98));
    assert!(s.recall_in() < 0.8 || s.recall_out() < 0.8);
    let (ok, _) = sweep(&truth, Target::Faces, 10.0, &bytetrack_like);
    assert!(ok.recall_in() > 0.9, "at 10 fps it still works");
}

/// Debugging aid, not a check: `COUNTING_TRACE=scene,faces|people,rate,phase,seed,actor cargo test -p
/// checkpoint-e2e --test counting_rates trace -- --ignored --nocapture` prints, frame by frame, one actor's
/// box, the detections and tracks near it, and every crossing counted.
#[test]
#[ignore]
fn trace() {
    let Ok(spec) = std::env::var("COUNTING_TRACE") else {
        return;
    };
    let v: Vec<&str> = spec.split(',').collect();
    let truth = checkpoint_scenegen::plan(&SceneSpec::preset(v[0]).unwrap()).unwrap();
    let target = if v[1] == "people" {
        Target::People
    } else {
        Target::Faces
    };
    let rate: f64 = v[2].parse().unwrap();
    let phase: u64 = v[3].parse().unwrap();
    let seed: u64 = v[4].parse().unwrap();
    let actor = &truth.actors[v[5].parse::<usize>().unwrap()];
    eprintln!(
        "actor {} {:?} paused {} jitter {} speed {} span {:?}",
        actor.actor_id,
        actor.direction,
        actor.paused,
        actor.jitter,
        actor.speed_px_s,
        target.crossing_span(&truth, actor, line(&truth).band.unwrap())
    );
    let frames = analysed_frames(truth.frames, truth.fps, rate, phase);
    let dets = synthetic_detections(&truth, target, &frames, &noise(), seed);
    let band = line(&truth).band.unwrap();
    for a in &truth.actors {
        eprintln!(
            "  actor {} {:?} span {:?}",
            a.actor_id,
            a.direction,
            target.crossing_span(&truth, a, band)
        );
    }
    let mut counter = CameraCounter::new(
        vec![line(&truth)],
        mode(target),
        None,
        TrackerConfig::default(),
    );
    for (&k, frame) in frames.iter().zip(&dets) {
        let d: Vec<Detection> = frame
            .iter()
            .map(|s| Detection {
                bbox: BBox {
                    x: s.bbox[0],
                    y: s.bbox[1],
                    w: s.bbox[2],
                    h: s.bbox[3],
                },
                score: s.score,
            })
            .collect();
        let ts = k as f64 / truth.fps as f64;
        let step = counter.step(&d, ts, truth.width, truth.height);
        let follow: Option<u64> = std::env::var("COUNTING_TRACE_TRACK")
            .ok()
            .and_then(|v| v.parse().ok());
        if follow.is_some_and(|f| step.update.ended.contains(&f)) {
            eprintln!("  {ts:6.2} track #{} ended", follow.unwrap_or_default());
        }
        for t in step.update.tracks.iter().filter(|t| Some(t.id) == follow) {
            eprintln!(
                "  {ts:6.2} track #{} ({:.0},{:.0}) {:.0}x{:.0} earlier {:?}",
                t.id,
                t.bbox.x,
                t.bbox.y,
                t.bbox.w,
                t.bbox.h,
                t.earlier
                    .iter()
                    .map(|o| (o.ts, o.bbox.x as i32, o.bbox.y as i32, o.bbox.h as i32))
                    .collect::<Vec<_>>()
            );
        }
        for (c, _) in &step.crossings {
            eprintln!(
                "  counted {:?} track {} at {:.2}",
                c.direction, c.track_id, c.ts
            );
            for t in &step.update.tracks {
                eprintln!(
                    "    #{} ({:.0},{:.0}) earlier {:?}",
                    t.id,
                    t.bbox.x,
                    t.bbox.y,
                    t.earlier
                        .iter()
                        .map(|o| (o.ts, o.bbox.x as i32, o.bbox.y as i32))
                        .collect::<Vec<_>>()
                );
            }
            for s in frame {
                eprintln!("    det {:?} ({:.0},{:.0})", s.actor, s.bbox[0], s.bbox[1]);
            }
        }
        let Some(b) = target.visible_box(&truth, actor, k) else {
            continue;
        };
        let near = |x: &[f32; 4]| (x[0] - b[0]).abs() < 400.0 && (x[1] - b[1]).abs() < 400.0;
        let ds: Vec<String> = frame
            .iter()
            .filter(|s| near(&s.bbox))
            .map(|s| {
                format!(
                    "{:?}@({:.0},{:.0} {:.0}x{:.0} {:.2})",
                    s.actor, s.bbox[0], s.bbox[1], s.bbox[2], s.bbox[3], s.score
                )
            })
            .collect();
        let ts_: Vec<String> = step
            .update
            .tracks
            .iter()
            .filter(|t| near(&[t.bbox.x, t.bbox.y, t.bbox.w, t.bbox.h]))
            .map(|t| format!("#{}@({:.0},{:.0})", t.id, t.bbox.x, t.bbox.y))
            .collect();
        eprintln!(
            "{ts:6.2} actor ({:.0},{:.0}) dets {ds:?} tracks {ts_:?}",
            b[0], b[1]
        );
        for (c, _) in &step.crossings {
            eprintln!(
                "        crossing {:?} track {} at {:.2}",
                c.direction, c.track_id, c.ts
            );
        }
    }
}
