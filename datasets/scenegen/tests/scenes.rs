//! Generates real scenes from the shared LFW photos and checks video and truth against each other.
//! The faces must be present (CI always has shared/): these tests fail, not skip, without them.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use checkpoint_scenegen::{
    decode_frames, generate, plan, probe_video, Direction, Line, SceneError, SceneSpec, Truth,
    FACES_SUBDIR, TRUTH_FILE, VIDEO_FILE,
};

fn faces_dir() -> PathBuf {
    let p = match std::env::var_os("CHECKPOINT_ASSETS") {
        Some(a) => PathBuf::from(a).join(FACES_SUBDIR),
        None => Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../../shared")
            .join(FACES_SUBDIR),
    };
    assert!(
        p.is_dir(),
        "LFW faces not found at {}: set CHECKPOINT_ASSETS or check out shared/ beside the repository",
        p.display()
    );
    p
}

fn small_spec() -> SceneSpec {
    SceneSpec {
        width: 640,
        height: 360,
        fps: 25,
        duration_s: Some(16.0),
        seed: 11,
        actors: 4,
        non_crossers: 1,
        pause_fraction: 0.25,
        jitter_fraction: 0.25,
        max_concurrent: 3,
        face_height_px: (60.0, 72.0),
        faces_dir: faces_dir(),
        ..SceneSpec::default()
    }
}

fn centre(b: [f32; 4]) -> [f32; 2] {
    [b[0] + b[2] / 2.0, b[1] + b[3] / 2.0]
}

fn side(t: &Truth, p: [f32; 2]) -> f32 {
    let n = t.line.in_normal;
    (p[0] - t.line.a[0]) * n[0] + (p[1] - t.line.a[1]) * n[1]
}

fn along(t: &Truth, p: [f32; 2]) -> f32 {
    let (a, b) = (t.line.a, t.line.b);
    let len = ((b[0] - a[0]).powi(2) + (b[1] - a[1]).powi(2)).sqrt();
    ((p[0] - a[0]) * (b[0] - a[0]) + (p[1] - a[1]) * (b[1] - a[1])) / len
}

fn line_len(t: &Truth) -> f32 {
    let (a, b) = (t.line.a, t.line.b);
    ((b[0] - a[0]).powi(2) + (b[1] - a[1]).powi(2)).sqrt()
}

fn intersects(a: [f32; 4], b: [f32; 4]) -> bool {
    a[0] < b[0] + b[2] && b[0] < a[0] + a[2] && a[1] < b[1] + b[3] && b[1] < a[1] + a[3]
}

/// Everything the counting test relies on, checked from the truth alone.
fn check_truth(t: &Truth, spec: &SceneSpec, min_start_dist: f32) {
    assert_eq!(
        (t.width, t.height, t.fps),
        (spec.width, spec.height, spec.fps)
    );
    assert_eq!(t.actors.len(), spec.actors + spec.non_crossers);
    assert_eq!(t.totals.in_ as usize, t.count(Direction::In));
    assert_eq!(t.totals.out as usize, t.count(Direction::Out));
    assert_eq!(t.totals.none as usize, spec.non_crossers);
    assert_eq!((t.totals.in_ + t.totals.out) as usize, spec.actors);
    assert!(t.totals.in_.abs_diff(t.totals.out) <= 1, "{:?}", t.totals);
    let ids: HashSet<&str> = t.actors.iter().map(|a| a.identity.as_str()).collect();
    assert_eq!(ids.len(), t.actors.len(), "identities must be distinct");
    let fps = t.fps as f32;
    // Frames the counter analyses at 10 fps are 2 or 3 video frames apart at 25 fps.
    let analysis_gap = (t.fps as f32 / 10.0).ceil() as usize;
    for a in &t.actors {
        let who = format!("actor {} ({})", a.actor_id, a.identity);
        assert!(
            a.first_frame <= a.last_frame && a.last_frame < t.frames,
            "{who}"
        );
        assert_eq!(
            a.boxes.len() as u64,
            a.last_frame - a.first_frame + 1,
            "{who}"
        );
        assert!(
            (59.0..=141.0).contains(&a.face_height_px),
            "{who}: face {} px",
            a.face_height_px
        );
        let sides: Vec<f32> = a.boxes.iter().map(|&b| side(t, centre(b))).collect();
        for w in a.boxes.windows(analysis_gap + 1) {
            let (c0, c1) = (centre(w[0]), centre(w[analysis_gap]));
            let d = ((c1[0] - c0[0]).powi(2) + (c1[1] - c0[1]).powi(2)).sqrt();
            assert!(d <= 25.0, "{who}: moves {d:.1} px between analysed frames");
        }
        let changes = sides
            .windows(2)
            .filter(|w| (w[0] > 0.0) != (w[1] > 0.0))
            .count() as u32;
        assert_eq!(changes, a.line_crossings, "{who}");
        match a.direction {
            Direction::None => {
                assert_eq!(a.line_crossings, 0, "{who}");
                assert!(
                    a.crossing_time_s.is_none() && a.crossing_frame.is_none(),
                    "{who}"
                );
                let closest = sides.iter().fold(f32::MAX, |m, s| m.min(s.abs()));
                assert!(
                    closest >= a.face_height_px,
                    "{who}: came {closest} px near the line"
                );
                assert!(a.lane.is_none() && !a.paused && !a.jitter, "{who}");
            }
            dir => {
                let sign = if dir == Direction::In { 1.0 } else { -1.0 };
                let (first, last) = (sides[0] * sign, sides[sides.len() - 1] * sign);
                assert!(
                    first <= -min_start_dist,
                    "{who}: starts {first} px from the line"
                );
                assert!(
                    last >= min_start_dist,
                    "{who}: ends {last} px from the line"
                );
                assert_eq!(a.line_crossings % 2, 1, "{who}");
                let k = a.crossing_frame.expect("crossers have a crossing frame");
                let j = (k - a.first_frame) as usize;
                assert!(j >= 1, "{who}");
                assert!(
                    sides[j..].iter().all(|s| s * sign > 0.0),
                    "{who}: back over the line after {k}"
                );
                assert!(sides[j - 1] * sign <= 0.0, "{who}");
                let ts = a.crossing_time_s.unwrap() as f32;
                assert!(
                    ts >= (k - 1) as f32 / fps - 1e-3 && ts <= k as f32 / fps + 1e-3,
                    "{who}: crossing time {ts} vs frame {k}"
                );
                let u = along(t, centre(a.boxes[j]));
                assert!(
                    u > 0.0 && u < line_len(t),
                    "{who}: crosses outside the segment ({u})"
                );
                assert!(a.lane.is_some(), "{who}");
                if a.paused {
                    assert!((1.0..=3.0).contains(&a.pause_s), "{who}");
                    // It stands still near the line for the pause.
                    let still = a
                        .boxes
                        .windows(2)
                        .filter(|w| (centre(w[0])[1] - centre(w[1])[1]).abs() < 0.5)
                        .count() as f32;
                    assert!(
                        still >= a.pause_s * fps * 0.8,
                        "{who}: {still} still frames"
                    );
                }
                if a.jitter {
                    assert!(a.line_crossings >= 3, "{who}");
                    let crossings: Vec<usize> = (1..sides.len())
                        .filter(|&i| (sides[i] > 0.0) != (sides[i - 1] > 0.0))
                        .collect();
                    let (c0, c1) = (crossings[0], *crossings.last().unwrap());
                    let amp = sides[c0..c1].iter().fold(0.0f32, |m, s| m.max(s.abs()));
                    assert!(amp < 15.0, "{who}: jitter amplitude {amp}");
                }
                if !a.jitter && !a.paused {
                    assert_eq!(a.line_crossings, 1, "{who}");
                }
            }
        }
    }
    // No two people overlap, ever, and at most max_concurrent are in the picture.
    for k in 0..t.frames {
        let here: Vec<[f32; 4]> = t.actors.iter().filter_map(|a| a.cutout_at(k)).collect();
        assert!(
            here.len() <= spec.max_concurrent,
            "frame {k}: {} people",
            here.len()
        );
        for i in 0..here.len() {
            for j in i + 1..here.len() {
                assert!(!intersects(here[i], here[j]), "frame {k}: cut-outs overlap");
            }
        }
    }
}

#[test]
fn short_scene_video_matches_truth() {
    let spec = small_spec();
    let dir = tempfile::tempdir().unwrap();
    let t0 = std::time::Instant::now();
    let truth = generate(&spec, dir.path()).expect("generate");
    eprintln!(
        "generated {} frames in {:.1} s",
        truth.frames,
        t0.elapsed().as_secs_f64()
    );
    check_truth(&truth, &spec, 150.0);
    assert_eq!(truth.frames, 400);
    assert!(truth.actors.iter().any(|a| a.paused) && truth.actors.iter().any(|a| a.jitter));

    // The truth on disk is the truth returned, and `plan` predicts it exactly.
    let on_disk = Truth::load(&dir.path().join(TRUTH_FILE)).unwrap();
    assert_eq!(on_disk, truth);
    assert_eq!(plan(&spec).unwrap(), truth);

    // The MP4 decodes to exactly the frames the truth describes.
    let video = dir.path().join(VIDEO_FILE);
    let probe = probe_video(&video).expect("decode");
    assert_eq!((probe.width, probe.height), (640, 360));
    assert_eq!(probe.frames, truth.frames);
    assert_eq!(probe.fps, (25, 1));
    assert!(
        (probe.duration_s - 16.0).abs() < 0.05,
        "{}",
        probe.duration_s
    );

    // Each face is where the truth says: at the crossing frame the face box differs clearly from the empty
    // scene (frame 0, before anyone enters).
    assert!(truth.faces_at(0).next().is_none());
    let mut wanted: Vec<u64> = vec![0];
    wanted.extend(truth.actors.iter().filter_map(|a| a.crossing_frame));
    let mut frames = std::collections::HashMap::new();
    decode_frames(&video, &|k| wanted.contains(&k), &mut |k, img| {
        frames.insert(k, img);
    })
    .unwrap();
    let empty = &frames[&0];
    for a in truth.actors.iter().filter(|a| a.crossing_frame.is_some()) {
        let k = a.crossing_frame.unwrap();
        let b = a.box_at(k).unwrap();
        let img = &frames[&k];
        let (mut sum, mut n) = (0u64, 0u64);
        for y in b[1].max(0.0) as u32..((b[1] + b[3]) as u32).min(img.height()) {
            for x in b[0].max(0.0) as u32..((b[0] + b[2]) as u32).min(img.width()) {
                let (p, q) = (img.get_pixel(x, y).0, empty.get_pixel(x, y).0);
                sum += (0..3).map(|c| p[c].abs_diff(q[c]) as u64).sum::<u64>();
                n += 3;
            }
        }
        let mean = sum as f64 / n as f64;
        assert!(
            mean > 12.0,
            "actor {}: face region barely differs ({mean:.1})",
            a.actor_id
        );
    }
}

#[test]
fn default_scene_plan_is_consistent() {
    let spec = SceneSpec {
        faces_dir: faces_dir(),
        ..SceneSpec::default()
    };
    let t = plan(&spec).expect("the default scene fits");
    check_truth(&t, &spec, 300.0);
    assert_eq!(t.frames, 1500);
    assert_eq!((t.totals.in_, t.totals.out, t.totals.none), (8, 8, 2));
    assert_eq!(t.line.a, [0.0, 360.0]);
    assert_eq!(t.line.b, [1280.0, 360.0]);
    assert_eq!(t.line.in_normal, [0.0, 1.0]);
    // "in" = moving down the picture.
    for a in t.actors.iter().filter(|a| a.direction == Direction::In) {
        assert!(centre(a.boxes[0])[1] < 360.0 && centre(*a.boxes.last().unwrap())[1] > 360.0);
    }
    assert!(t.actors.iter().filter(|a| a.paused).count() >= 2);
    assert!(t.actors.iter().filter(|a| a.jitter).count() >= 2);
    // Several at once, most of the time someone is there.
    let busy = (0..t.frames)
        .filter(|&k| t.faces_at(k).count() >= 2)
        .count();
    assert!(busy as f64 > 0.5 * t.frames as f64, "{busy}");
    let json = t.to_json().unwrap();
    assert!(json.len() < 400_000, "truth.json is {} bytes", json.len());
    // Other seeds fit as well.
    for seed in [1, 2, 3, 42, 1234] {
        let spec = SceneSpec {
            seed,
            ..spec.clone()
        };
        let t = plan(&spec).unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        check_truth(&t, &spec, 300.0);
    }
}

#[test]
fn other_lines_and_derived_duration() {
    let base = SceneSpec {
        faces_dir: faces_dir(),
        ..SceneSpec::default()
    };
    // A vertical line: "in" = moving left (in_normal = (-1, 0)).
    let spec = SceneSpec {
        line: Some(Line {
            a: [640.0, 0.0],
            b: [640.0, 720.0],
        }),
        actors: 6,
        non_crossers: 1,
        ..base.clone()
    };
    let t = plan(&spec).unwrap();
    assert_eq!(t.line.in_normal, [-1.0, 0.0]);
    check_truth(&t, &spec, 300.0);
    // A diagonal segment that does not span the picture, duration derived.
    let spec = SceneSpec {
        line: Some(Line {
            a: [200.0, 560.0],
            b: [1100.0, 200.0],
        }),
        duration_s: None,
        actors: 8,
        non_crossers: 0,
        ..base
    };
    let t = plan(&spec).unwrap();
    check_truth(&t, &spec, 150.0);
    let end = t.actors.iter().map(|a| a.last_frame).max().unwrap();
    assert!(
        t.frames > end && t.frames <= end + 1 + 13,
        "{} {end}",
        t.frames
    );
}

#[test]
fn same_seed_same_truth() {
    let spec = SceneSpec {
        faces_dir: faces_dir(),
        ..SceneSpec::default()
    };
    let a = plan(&spec).unwrap();
    let b = plan(&spec).unwrap();
    assert_eq!(a, b);
    assert_eq!(a.to_json().unwrap(), b.to_json().unwrap());
    let c = plan(&SceneSpec { seed: 8, ..spec }).unwrap();
    assert_ne!(a, c);
    let names = |t: &Truth| {
        t.actors
            .iter()
            .map(|a| a.identity.clone())
            .collect::<Vec<_>>()
    };
    assert_ne!(names(&a), names(&c));
}

#[test]
fn clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-faces");
    let spec = SceneSpec {
        faces_dir: missing.clone(),
        ..small_spec()
    };
    match generate(&spec, &dir.path().join("out")) {
        Err(e @ SceneError::FacesDirMissing { .. }) => {
            let msg = e.to_string();
            assert!(
                msg.contains("no-such-faces") && msg.contains("CHECKPOINT_ASSETS"),
                "{msg}"
            );
        }
        other => panic!("expected FacesDirMissing, got {other:?}"),
    }
    assert!(!dir.path().join("out").join(VIDEO_FILE).exists());

    let empty = dir.path().join("empty");
    std::fs::create_dir_all(empty.join("Nobody")).unwrap();
    std::fs::write(empty.join("Nobody/readme.txt"), "not a photo").unwrap();
    let spec = SceneSpec {
        faces_dir: empty,
        ..small_spec()
    };
    assert!(matches!(plan(&spec), Err(SceneError::NoPhotos { .. })));

    let spec = SceneSpec {
        actors: 5000,
        ..small_spec()
    };
    assert!(matches!(
        plan(&spec),
        Err(SceneError::NotEnoughIdentities { needed: 5001, .. })
    ));

    let spec = SceneSpec {
        width: 641,
        ..small_spec()
    };
    assert!(matches!(plan(&spec), Err(SceneError::InvalidSpec(_))));

    // Too many people for too little time: says so instead of overlapping them.
    let spec = SceneSpec {
        duration_s: Some(5.0),
        actors: 12,
        ..small_spec()
    };
    let e = plan(&spec).unwrap_err();
    assert!(matches!(e, SceneError::DoesNotFit(_)), "{e}");

    assert!(probe_video(&dir.path().join("none.mp4")).is_err());
}
