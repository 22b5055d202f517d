//! Tests of the line counter: crossings with hysteresis, low frame rates, and configuration.

use super::*;

/// Horizontal line y = 300 from x = 100 to 500; walking down (into `Right`,
/// below the line) is entering.
fn geom() -> LineGeometry {
    LineGeometry {
        a: (100.0, 300.0),
        b: (500.0, 300.0),
        in_side: Side::Right,
        band_px: 20.0,
    }
}

fn counter() -> LineCounter {
    LineCounter::new("door", geom())
}

/// Feeds a track along `points` (one per frame from `t0`), returning crossings.
fn walk(c: &mut LineCounter, id: u64, t0: f64, points: &[(f32, f32)]) -> Vec<Crossing> {
    points
        .iter()
        .enumerate()
        .filter_map(|(i, &p)| c.observe(id, p, t0 + i as f64 * 0.1))
        .collect()
}

/// Straight vertical walk at `x` from `y0` to `y1` in 5 px steps.
fn vertical(x: f32, y0: f32, y1: f32) -> Vec<(f32, f32)> {
    let n = ((y1 - y0).abs() / 5.0) as usize;
    let step = (y1 - y0).signum() * 5.0;
    (0..=n).map(|i| (x, y0 + step * i as f32)).collect()
}

#[test]
fn side_convention() {
    let (a, b) = ((0.0, 300.0), (640.0, 300.0));
    assert_eq!(side_of(a, b, (10.0, 400.0)), Some(Side::Right), "below");
    assert_eq!(side_of(a, b, (10.0, 200.0)), Some(Side::Left), "above");
    assert_eq!(side_of(a, b, (10.0, 300.0)), None, "on the line");
    assert_eq!(side_of(b, a, (10.0, 400.0)), Some(Side::Left), "reversed");
    // Drawn top to bottom: Right is the left half of the image.
    let (a, b) = ((320.0, 0.0), (320.0, 480.0));
    assert_eq!(side_of(a, b, (100.0, 240.0)), Some(Side::Right));
    assert_eq!(signed_distance(a, b, (100.0, 240.0)), Some(220.0));
    assert_eq!(signed_distance(a, b, (f32::NAN, 240.0)), None);
    assert_eq!(side_of(a, a, (100.0, 240.0)), None, "degenerate line");
    assert_eq!(Side::Left.opposite(), Side::Right);
}

#[test]
fn straight_crossing_both_directions() {
    let mut c = counter();
    let down = walk(&mut c, 1, 0.0, &vertical(300.0, 200.0, 400.0));
    assert_eq!(down.len(), 1);
    assert_eq!(down[0].direction, Direction::In);
    assert_eq!(down[0].track_id, 1);
    assert_eq!(down[0].line_id, "door");
    // Counted on the first point beyond the band: y = 325 is point 25.
    assert!((down[0].ts - 2.5).abs() < 1e-9, "ts = {}", down[0].ts);

    let up = walk(&mut c, 2, 0.0, &vertical(250.0, 400.0, 200.0));
    assert_eq!(up.len(), 1);
    assert_eq!(up[0].direction, Direction::Out);
    assert_eq!((c.entries(), c.exits()), (1, 1));

    // in_side flips the meaning.
    let mut c = LineCounter::new(
        "door",
        LineGeometry {
            in_side: Side::Left,
            ..geom()
        },
    );
    let down = walk(&mut c, 1, 0.0, &vertical(300.0, 200.0, 400.0));
    assert_eq!(down[0].direction, Direction::Out);
}

#[test]
fn sparse_samples_still_count() {
    let mut c = counter();
    assert!(c.observe(1, (300.0, 100.0), 0.0).is_none());
    let x = c.observe(1, (300.0, 500.0), 1.0).expect("jumped across");
    assert_eq!(x.direction, Direction::In);
}

#[test]
fn jitter_inside_band_then_continue_counts_once() {
    let mut c = counter();
    let mut path = vertical(300.0, 200.0, 300.0);
    // 100 frames of +-19 px jitter (band is 20) straddling the line.
    path.extend((0..100).map(|i| (300.0, 300.0 + 19.0 * if i % 2 == 0 { 1.0 } else { -1.0 })));
    path.extend(vertical(300.0, 300.0, 400.0));
    let xs = walk(&mut c, 7, 0.0, &path);
    assert_eq!(xs.len(), 1);
    assert_eq!((c.entries(), c.exits()), (1, 0));
}

#[test]
fn jitter_smaller_than_band_never_counts_wherever_it_is() {
    // Peak-to-peak below 2 * band can never reach both sides, whatever its
    // centre: that is the guarantee the band gives.
    let mut c = counter();
    for (id, centre) in [-35.0f32, -20.0, -5.0, 0.0, 5.0, 20.0, 35.0]
        .into_iter()
        .enumerate()
    {
        let path: Vec<(f32, f32)> = (0..200)
            .map(|i| {
                let phase = i as f32 * 0.7;
                (
                    300.0 + phase.cos() * 3.0,
                    300.0 + centre + 19.9 * phase.sin(),
                )
            })
            .collect();
        assert!(
            walk(&mut c, id as u64, 0.0, &path).is_empty(),
            "centre {centre}"
        );
    }
    assert_eq!((c.entries(), c.exits()), (0, 0));
}

#[test]
fn pause_on_the_line_does_not_count() {
    let mut c = counter();
    let mut path = vertical(300.0, 200.0, 295.0);
    path.extend(std::iter::repeat_n((300.0, 305.0), 200));
    path.extend(vertical(300.0, 305.0, 200.0));
    assert!(walk(&mut c, 1, 0.0, &path).is_empty(), "turned back");

    let mut path = vertical(300.0, 200.0, 300.0);
    path.extend(std::iter::repeat_n((300.0, 300.0), 200));
    path.extend(vertical(300.0, 300.0, 400.0));
    assert_eq!(walk(&mut c, 2, 0.0, &path).len(), 1, "paused then went on");
    assert_eq!((c.entries(), c.exits()), (1, 0));
}

#[test]
fn start_inside_band_gets_side_without_counting() {
    let mut c = counter();
    let xs = walk(&mut c, 1, 0.0, &vertical(300.0, 300.0, 400.0));
    assert!(xs.is_empty(), "first side is not a crossing");
    assert_eq!(c.tracked_count(), 1);
    // Having come from below, going up is a real exit.
    let xs = walk(&mut c, 1, 10.0, &vertical(300.0, 400.0, 200.0));
    assert_eq!(xs.len(), 1);
    assert_eq!(xs[0].direction, Direction::Out);
}

#[test]
fn crossing_beyond_segment_ends_not_counted() {
    let mut c = counter();
    // The segment spans x in [100, 500], extended by the 20 px band.
    assert!(walk(&mut c, 1, 0.0, &vertical(50.0, 200.0, 400.0)).is_empty());
    assert!(walk(&mut c, 2, 0.0, &vertical(530.0, 200.0, 400.0)).is_empty());
    assert_eq!(walk(&mut c, 3, 0.0, &vertical(85.0, 200.0, 400.0)).len(), 1);
    assert_eq!(
        walk(&mut c, 4, 0.0, &vertical(515.0, 200.0, 400.0)).len(),
        1
    );

    // Walking around the end of the line: above, left past the end, down,
    // back right below it.
    let mut path: Vec<(f32, f32)> = (0..=50).map(|i| (300.0 - 5.0 * i as f32, 200.0)).collect();
    path.extend(vertical(50.0, 200.0, 400.0));
    path.extend((0..=50).map(|i| (50.0 + 5.0 * i as f32, 400.0)));
    assert!(walk(&mut c, 5, 0.0, &path).is_empty());
    assert_eq!((c.entries(), c.exits()), (2, 0));
}

#[test]
fn in_then_out_counts_one_entry_and_one_exit() {
    let mut c = counter();
    let mut path = vertical(300.0, 200.0, 400.0);
    path.extend(vertical(310.0, 400.0, 200.0));
    let xs = walk(&mut c, 9, 0.0, &path);
    let dirs: Vec<Direction> = xs.iter().map(|x| x.direction).collect();
    assert_eq!(dirs, vec![Direction::In, Direction::Out]);
    assert_eq!((c.entries(), c.exits()), (1, 1));
}

#[test]
fn many_tracks_interleaved() {
    let mut c = counter();
    let n = 50u64;
    // Even ids walk down (in), odd ids walk up (out), each starting at its own
    // frame offset so observations of different tracks interleave.
    let paths: Vec<Vec<(f32, f32)>> = (0..n)
        .map(|id| {
            let x = 110.0 + 7.0 * id as f32;
            if id % 2 == 0 {
                vertical(x, 150.0, 450.0)
            } else {
                vertical(x, 450.0, 150.0)
            }
        })
        .collect();
    let mut crossings = Vec::new();
    for frame in 0..200usize {
        for id in 0..n {
            let offset = (id as usize * 3) % 40;
            if let Some(&p) = frame
                .checked_sub(offset)
                .and_then(|i| paths[id as usize].get(i))
            {
                crossings.extend(c.observe(id, p, frame as f64));
            }
        }
    }
    assert_eq!((c.entries(), c.exits()), (n / 2, n / 2));
    assert_eq!(crossings.len(), n as usize);
    for x in &crossings {
        let want = if x.track_id % 2 == 0 {
            Direction::In
        } else {
            Direction::Out
        };
        assert_eq!(x.direction, want, "track {}", x.track_id);
    }
}

#[test]
fn track_ended_frees_state() {
    let mut c = counter();
    for id in 0..1000u64 {
        walk(&mut c, id, 0.0, &vertical(300.0, 200.0, 400.0));
    }
    // A track only ever seen inside the band holds no state at all.
    c.observe(5000, (300.0, 305.0), 0.0);
    assert_eq!(c.tracked_count(), 1000);
    for id in 0..1000u64 {
        c.track_ended(id);
    }
    c.track_ended(5000);
    c.track_ended(123_456); // unknown id: no-op
    assert_eq!(c.tracked_count(), 0);
    assert_eq!(c.entries(), 1000, "counts survive track removal");
    // A reused id (e.g. after a tracker restart) starts fresh.
    assert!(c.observe(3, (300.0, 400.0), 0.0).is_none());
}

#[test]
fn invalid_input_is_ignored() {
    let mut c = counter();
    assert!(c.observe(1, (f32::NAN, 200.0), 0.0).is_none());
    assert!(c.observe(1, (300.0, f32::INFINITY), 0.0).is_none());
    assert_eq!(c.tracked_count(), 0);

    let bad = LineGeometry {
        b: (100.0, 300.0),
        ..geom()
    };
    assert!(matches!(
        bad.validate(),
        Err(GeometryError::TooShort { .. })
    ));
    let mut c = LineCounter::new("x", bad);
    assert!(walk(&mut c, 1, 0.0, &vertical(100.0, 200.0, 400.0)).is_empty());
    assert_eq!(c.tracked_count(), 0);

    let nan = LineGeometry {
        a: (f32::NAN, 0.0),
        ..geom()
    };
    assert!(matches!(
        nan.validate(),
        Err(GeometryError::NonFinite { .. })
    ));
    assert!(walk(
        &mut LineCounter::new("x", nan),
        1,
        0.0,
        &vertical(300.0, 200.0, 400.0)
    )
    .is_empty());

    // A negative or NaN band acts as no band: still counts real crossings.
    for band_px in [-5.0, f32::NAN] {
        let g = LineGeometry { band_px, ..geom() };
        assert!(matches!(g.validate(), Err(GeometryError::Band(_))));
        let mut c = LineCounter::new("x", g);
        assert_eq!(
            walk(&mut c, 1, 0.0, &vertical(300.0, 200.0, 400.0)).len(),
            1
        );
    }
    assert_eq!(geom().validate(), Ok(()));
}

fn camera_counter(tracker: TrackerConfig) -> CameraCounter {
    let line = LineConfig {
        id: "door".into(),
        a: [100.0, 300.0],
        b: [500.0, 300.0],
        coords: crate::analysis::Coords::Pixels,
        in_side: Side::Right,
        band: Some(20.0),
        site_boundary: true,
    };
    CameraCounter::new(vec![line], Mode::Faces, None, tracker)
}

fn face_at(cx: f32, cy: f32) -> Detection {
    Detection {
        bbox: crate::track::BBox {
            x: cx - 30.0,
            y: cy - 40.0,
            w: 60.0,
            h: 80.0,
        },
        score: 0.9,
    }
}

#[test]
fn a_track_confirmed_after_the_line_still_counts_with_the_crossing_time() {
    // 2 fps, confirmation needs 3 sightings: the first is above the line, the next two below it.
    let mut c = camera_counter(TrackerConfig {
        min_hits: 3,
        ..TrackerConfig::default()
    });
    let mut got = Vec::new();
    for (i, y) in [220.0, 380.0, 460.0, 540.0].into_iter().enumerate() {
        let step = c.step(&[face_at(300.0, y)], i as f64 * 0.5, 640, 720);
        got.extend(step.crossings);
    }
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].0.direction, Direction::In);
    assert_eq!(
        got[0].0.ts, 0.5,
        "the sighting that completed it, not the confirmation"
    );
    assert!(got[0].1, "site boundary");
    assert_eq!(c.totals("door"), Some((1, 0)));
    assert_eq!(c.totals("nope"), None);
}

#[test]
fn a_gap_across_the_line_counts_once() {
    // Missed for three analysed frames while crossing at 2 fps: one track, one crossing.
    let mut c = camera_counter(TrackerConfig::default());
    let mut got = Vec::new();
    for i in 0..10 {
        let y = 80.0 + 60.0 * i as f32;
        let dets = if (3..6).contains(&i) {
            vec![]
        } else {
            vec![face_at(300.0, y)]
        };
        got.extend(c.step(&dets, i as f64 * 0.5, 640, 720).crossings);
    }
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(c.active_tracks(), 1);
    assert_eq!(c.finish(), vec![1]);
    assert_eq!(c.active_tracks(), 0);
}

#[test]
fn serde_names_are_lowercase() {
    use serde::de::value::{Error as DeError, StrDeserializer};
    let de = |s| StrDeserializer::<DeError>::new(s);
    assert_eq!(Direction::deserialize(de("in")), Ok(Direction::In));
    assert_eq!(Direction::deserialize(de("out")), Ok(Direction::Out));
    assert_eq!(Side::deserialize(de("left")), Ok(Side::Left));
    assert_eq!(Side::deserialize(de("right")), Ok(Side::Right));
    assert!(Side::deserialize(de("Right")).is_err());
}
