//! Tests of the tracker: association, confirmation, loss and expiry, gaps at low frame rates,
//! relinking, leaving the picture, and configuration.

use super::*;

const FPS: f64 = 10.0;

fn det(x: f32, y: f32, score: f32) -> Detection {
    Detection {
        bbox: BBox {
            x,
            y,
            w: 40.0,
            h: 100.0,
        },
        score,
    }
}

fn tracker() -> Tracker {
    Tracker::new(TrackerConfig::default())
}

fn ids(update: &TrackUpdate) -> Vec<u64> {
    update.tracks.iter().map(|t| t.id).collect()
}

#[test]
fn single_linear_object_keeps_one_id() {
    let mut tr = tracker();
    let mut seen = Vec::new();
    for f in 0..100 {
        let u = tr.update(&[det(10.0 + 8.0 * f as f32, 50.0, 0.9)], f as f64 / FPS);
        assert!(u.ended.is_empty());
        seen.extend(ids(&u));
        if f == 0 {
            assert!(u.tracks.is_empty(), "not confirmed on first hit");
        } else {
            assert_eq!(u.tracks.len(), 1, "frame {f}");
            assert_eq!(u.tracks[0].det_index, 0);
            assert_eq!(u.tracks[0].hits, f + 1);
            assert_eq!(u.tracks[0].first_seen, 0.0);
        }
    }
    assert!(seen.iter().all(|&id| id == 1));
    assert_eq!(tr.active_count(), 1);
    assert_eq!(tr.finish(), vec![1]);
    assert_eq!(tr.active_count(), 0);
}

#[test]
fn crossing_objects_keep_their_ids() {
    let mut tr = tracker();
    // A walks right, B walks left on nearly the same row; they fully overlap
    // around frame 17. Only velocity can tell them apart there.
    let pos = |f: usize| {
        let t = f as f32;
        (10.0 + 12.0 * t, 410.0 - 12.0 * t)
    };
    let mut id_a = None;
    let mut id_b = None;
    for f in 0..40 {
        let (xa, xb) = pos(f);
        // Alternate the detection order so slice position carries no hint.
        let (dets, ia, ib) = if f % 2 == 0 {
            (vec![det(xa, 100.0, 0.9), det(xb, 104.0, 0.9)], 0, 1)
        } else {
            (vec![det(xb, 104.0, 0.9), det(xa, 100.0, 0.9)], 1, 0)
        };
        let u = tr.update(&dets, f as f64 / FPS);
        if f == 0 {
            continue;
        }
        assert_eq!(u.tracks.len(), 2, "frame {f}");
        let a = u
            .tracks
            .iter()
            .find(|t| t.det_index == ia)
            .expect("A tracked");
        let b = u
            .tracks
            .iter()
            .find(|t| t.det_index == ib)
            .expect("B tracked");
        assert_eq!(*id_a.get_or_insert(a.id), a.id, "A swapped at frame {f}");
        assert_eq!(*id_b.get_or_insert(b.id), b.id, "B swapped at frame {f}");
    }
    assert_ne!(id_a, id_b);
}

#[test]
fn short_occlusion_keeps_id() {
    let mut tr = tracker();
    let mut all = Vec::new();
    let mut ended = Vec::new();
    for f in 0..60 {
        let ts = f as f64 / FPS;
        // Hidden for 1.0 s (< 1.5 s timeout) while it keeps walking.
        let dets = if (20..30).contains(&f) {
            vec![]
        } else {
            vec![det(10.0 + 6.0 * f as f32, 50.0, 0.9)]
        };
        let u = tr.update(&dets, ts);
        if (20..30).contains(&f) {
            assert!(u.tracks.is_empty());
            assert_eq!(tr.active_count(), 1, "lost but active");
        } else if f > 0 {
            assert_eq!(ids(&u), vec![1], "frame {f}");
        }
        all.extend(ids(&u));
        ended.extend(u.ended);
    }
    assert!(all.iter().all(|&id| id == 1), "{all:?}");
    assert_eq!(all.len(), 49, "every visible frame but the first");
    assert!(ended.is_empty());
}

#[test]
fn long_occlusion_gets_new_id_and_old_one_ends_once() {
    let mut tr = tracker();
    let mut ended = Vec::new();
    let mut last_ids = Vec::new();
    for f in 0..80 {
        let ts = f as f64 / FPS;
        // Standing still, hidden for 2.5 s (> 1.5 s timeout).
        let dets = if (20..45).contains(&f) {
            vec![]
        } else {
            vec![det(200.0, 50.0, 0.9)]
        };
        let u = tr.update(&dets, ts);
        ended.extend(u.ended.iter().copied());
        if f >= 47 {
            last_ids = ids(&u);
        }
    }
    assert_eq!(ended, vec![1], "old id ended exactly once");
    assert_eq!(last_ids, vec![2]);
    assert_eq!(tr.finish(), vec![2]);
}

#[test]
fn ended_is_reported_on_the_first_frame_past_the_timeout() {
    let mut tr = tracker();
    tr.update(&[det(0.0, 0.0, 0.9)], 0.0);
    tr.update(&[det(0.0, 0.0, 0.9)], 0.1);
    assert_eq!(tr.update(&[], 1.59).ended, Vec::<u64>::new(), "not yet");
    assert_eq!(tr.update(&[], 1.7).ended, vec![1]);
    assert_eq!(tr.update(&[], 10.0).ended, Vec::<u64>::new());
    assert_eq!(tr.active_count(), 0);
}

#[test]
fn low_score_detections_extend_but_never_start_tracks() {
    let mut tr = tracker();
    for f in 0..10 {
        let u = tr.update(&[det(100.0, 50.0, 0.3)], f as f64 / FPS);
        assert!(u.tracks.is_empty());
    }
    assert_eq!(tr.active_count(), 0);

    let mut tr = tracker();
    for f in 0..5 {
        tr.update(&[det(100.0 + 4.0 * f as f32, 50.0, 0.9)], f as f64 / FPS);
    }
    for f in 5..40 {
        // Partially occluded: detector confidence drops below high_score.
        let u = tr.update(&[det(100.0 + 4.0 * f as f32, 50.0, 0.3)], f as f64 / FPS);
        assert_eq!(ids(&u), vec![1], "frame {f}");
        assert_eq!(u.tracks[0].score, 0.3);
        assert!(u.ended.is_empty());
    }
    // Scores between high_score and new_track_score extend tracks too.
    let u = tr.update(&[det(100.0 + 4.0 * 40.0, 50.0, 0.55)], 4.0);
    assert_eq!(ids(&u), vec![1]);
    // Below low_score: ignored entirely, so the track goes lost.
    let u = tr.update(&[det(100.0 + 4.0 * 41.0, 50.0, 0.05)], 4.1);
    assert!(u.tracks.is_empty());
    assert_eq!(tr.active_count(), 1);
}

#[test]
fn tentative_track_needs_min_hits_and_dies_on_misses() {
    // ByteTrack's rule (tentative_misses = 0): one miss and a tentative track is gone.
    let mut tr = Tracker::new(TrackerConfig {
        tentative_misses: 0,
        ..TrackerConfig::default()
    });
    assert!(tr.update(&[det(0.0, 0.0, 0.9)], 0.0).tracks.is_empty());
    assert!(tr.update(&[], 0.1).tracks.is_empty());
    // The tentative track is gone; this starts over and does not consume id 1.
    assert!(tr.update(&[det(0.0, 0.0, 0.9)], 0.2).tracks.is_empty());
    let u = tr.update(&[det(1.0, 0.0, 0.9)], 0.3);
    assert_eq!(ids(&u), vec![1]);
    assert_eq!(u.tracks[0].hits, 2);
    assert!((u.tracks[0].first_seen - 0.2).abs() < 1e-12);

    // Default: one miss is survived, two are not.
    let mut tr = tracker();
    assert!(tr.update(&[det(0.0, 0.0, 0.9)], 0.0).tracks.is_empty());
    assert!(tr.update(&[], 0.1).tracks.is_empty());
    let u = tr.update(&[det(2.0, 0.0, 0.9)], 0.2);
    assert_eq!(ids(&u), vec![1], "survived one miss");
    assert_eq!(u.tracks[0].first_seen, 0.0);
    let mut tr = tracker();
    tr.update(&[det(0.0, 0.0, 0.9)], 0.0);
    tr.update(&[], 0.1);
    tr.update(&[], 0.2);
    assert!(tr.update(&[det(2.0, 0.0, 0.9)], 0.3).tracks.is_empty());
    assert_eq!(ids(&tr.update(&[det(3.0, 0.0, 0.9)], 0.4)), vec![1]);

    // Between high_score and new_track_score: cannot start a track.
    let mut tr = tracker();
    for f in 0..5 {
        assert!(tr
            .update(&[det(0.0, 0.0, 0.55)], f as f64)
            .tracks
            .is_empty());
    }
}

#[test]
fn min_hits_one_reports_immediately() {
    let mut tr = Tracker::new(TrackerConfig {
        min_hits: 1,
        ..TrackerConfig::default()
    });
    let u = tr.update(&[det(0.0, 0.0, 0.9)], 0.0);
    assert_eq!(ids(&u), vec![1]);
}

#[test]
fn irregular_timestamps_and_dropped_frames_keep_id() {
    let mut tr = tracker();
    // 15 px/frame at a nominal 10 fps (150 px/s) with a 40 px wide box: a gap
    // of several frames moves the object further than its own width, so only
    // a dt-aware prediction can re-associate it.
    let speed = 150.0;
    let times = [
        0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, // steady
        1.5, // 4 frames dropped
        1.6, 1.72, 1.79, 1.9, 2.0, // jittery
        2.6, // 5 frames dropped
        2.7, 2.8, 2.9, 3.0,
    ];
    let mut all = Vec::new();
    for &ts in &times {
        let u = tr.update(&[det(speed * ts as f32, 50.0, 0.9)], ts);
        assert!(u.ended.is_empty());
        if ts > 0.0 {
            assert_eq!(u.tracks.len(), 1, "ts {ts}");
        }
        all.extend(ids(&u));
    }
    assert!(all.iter().all(|&id| id == 1), "{all:?}");
}

#[test]
fn empty_input_never_creates_or_panics() {
    let mut tr = tracker();
    for f in 0..20 {
        let u = tr.update(&[], f as f64 / FPS);
        assert_eq!(u, TrackUpdate::default());
    }
    assert_eq!(tr.active_count(), 0);
    assert!(tr.finish().is_empty());
}

#[test]
fn invalid_boxes_and_scores_are_ignored() {
    let bad = |x, y, w, h, score| Detection {
        bbox: BBox { x, y, w, h },
        score,
    };
    let mut tr = tracker();
    for f in 0..10 {
        let dets = [
            bad(f32::NAN, 0.0, 10.0, 10.0, 0.9),
            bad(0.0, f32::INFINITY, 10.0, 10.0, 0.9),
            bad(0.0, 0.0, 0.0, 10.0, 0.9),
            bad(0.0, 0.0, 10.0, -5.0, 0.9),
            bad(0.0, 0.0, f32::NEG_INFINITY, 10.0, 0.9),
            bad(50.0, 50.0, 10.0, 10.0, f32::NAN),
            bad(50.0, 50.0, 10.0, 10.0, f32::INFINITY),
            det(300.0 + f as f32, 40.0, 0.9),
            bad(f32::MAX, f32::MAX, f32::MAX, f32::MAX, 0.9),
        ];
        let u = tr.update(&dets, f as f64 / FPS);
        if f > 0 {
            let valid: Vec<usize> = u.tracks.iter().map(|t| t.det_index).collect();
            assert!(valid.contains(&7), "frame {f}: {valid:?}");
        }
        for t in &u.tracks {
            assert!(t.bbox.is_valid());
        }
    }
}

#[test]
fn bad_timestamps_do_not_panic_or_expire() {
    let mut tr = tracker();
    for (f, ts) in [
        0.0,
        0.1,
        f64::NAN,
        0.05,
        f64::INFINITY,
        f64::NEG_INFINITY,
        0.3,
    ]
    .into_iter()
    .enumerate()
    {
        let u = tr.update(&[det(100.0 + f as f32, 50.0, 0.9)], ts);
        assert!(u.ended.is_empty());
        if f > 0 {
            assert_eq!(ids(&u), vec![1]);
        }
    }
}

#[test]
fn ids_are_unique_increasing_and_survive_finish() {
    let mut tr = tracker();
    let mut issued = Vec::new();
    for round in 0..3 {
        for f in 0..3 {
            let dets = [det(0.0, 0.0, 0.9), det(500.0, 0.0, 0.9)];
            let u = tr.update(&dets, f as f64 / FPS);
            for id in ids(&u) {
                if !issued.contains(&id) {
                    issued.push(id);
                }
            }
        }
        assert_eq!(tr.finish().len(), 2, "round {round}");
    }
    assert_eq!(issued, vec![1, 2, 3, 4, 5, 6]);
}

#[test]
fn many_people_stay_distinct() {
    let mut tr = tracker();
    let n = 30;
    let mut first_ids: Option<Vec<u64>> = None;
    for f in 0..50 {
        let dets: Vec<Detection> = (0..n)
            .map(|i| {
                let row = (i / 10) as f32;
                let col = (i % 10) as f32;
                det(col * 60.0 + 2.0 * f as f32, row * 120.0, 0.8)
            })
            .collect();
        let u = tr.update(&dets, f as f64 / FPS);
        if f > 0 {
            let mut by_det: Vec<(usize, u64)> =
                u.tracks.iter().map(|t| (t.det_index, t.id)).collect();
            by_det.sort_unstable();
            let cur: Vec<u64> = by_det.into_iter().map(|(_, id)| id).collect();
            assert_eq!(cur.len(), n);
            assert_eq!(*first_ids.get_or_insert_with(|| cur.clone()), cur);
        }
    }
    assert_eq!(tr.active_count(), n);
}

/// A face 80 px high walking 170 px/s, seen at `fps` from `t0` for `secs` (x fixed at `x`).
fn walker(x: f32, y0: f32, vy: f32, fps: f64, t0: f64, secs: f64) -> Vec<(f64, Detection)> {
    let n = (secs * fps).round() as usize;
    (0..=n)
        .map(|i| {
            let t = t0 + i as f64 / fps;
            let y = y0 + vy * (t - t0) as f32;
            (
                t,
                Detection {
                    bbox: BBox {
                        x,
                        y,
                        w: 60.0,
                        h: 80.0,
                    },
                    score: 0.9,
                },
            )
        })
        .collect()
}

#[test]
fn walkers_moving_further_than_their_box_keep_one_id_at_two_fps() {
    // 85 px between frames with an 80 px box: consecutive boxes never overlap.
    for fps in [2.0, 2.5, 5.0, 10.0, 25.0] {
        let mut tr = tracker();
        let mut seen = Vec::new();
        for (t, d) in walker(300.0, 0.0, 170.0, fps, 0.0, 4.0) {
            let u = tr.update(&[d], t);
            assert!(u.ended.is_empty(), "{fps} fps");
            seen.extend(ids(&u));
        }
        assert!(
            !seen.is_empty() && seen.iter().all(|&id| id == 1),
            "{fps} fps: {seen:?}"
        );
        assert_eq!(
            seen.len() as f64,
            (4.0 * fps).round(),
            "{fps} fps: all but the first"
        );
    }
}

#[test]
fn neighbours_side_by_side_stay_apart_at_every_rate() {
    // Two faces two heights apart, walking the same way at the same speed, and a third coming the
    // other way between them: no id may jump from one to another.
    for fps in [2.0, 2.5, 5.0, 10.0, 25.0] {
        let mut tr = tracker();
        let a = walker(300.0, 0.0, 150.0, fps, 0.0, 4.0);
        let b = walker(460.0, 10.0, 160.0, fps, 0.0, 4.0);
        let c = walker(380.0, 640.0, -150.0, fps, 0.0, 4.0);
        let mut owner: std::collections::HashMap<u64, usize> = Default::default();
        for i in 0..a.len() {
            let dets = [a[i].1, b[i].1, c[i].1];
            let u = tr.update(&dets, a[i].0);
            for t in &u.tracks {
                let who = *owner.entry(t.id).or_insert(t.det_index);
                assert_eq!(
                    who, t.det_index,
                    "{fps} fps: track {} jumped at {}",
                    t.id, a[i].0
                );
            }
        }
        assert_eq!(owner.len(), 3, "{fps} fps");
    }
}

#[test]
fn missed_frames_are_bridged_at_low_rates() {
    // At 2 fps, missed for 3 analysed frames (1.5 s) while walking on: one track, and the velocity
    // after the gap is the walker's (the next frames match without any overlap).
    let mut tr = tracker();
    let mut seen = Vec::new();
    for (i, (t, d)) in walker(300.0, 0.0, 120.0, 2.0, 0.0, 6.0)
        .into_iter()
        .enumerate()
    {
        let dets = if (4..7).contains(&i) { vec![] } else { vec![d] };
        let u = tr.update(&dets, t);
        assert!(u.ended.is_empty());
        seen.extend(ids(&u));
    }
    assert!(seen.iter().all(|&id| id == 1), "{seen:?}");
    assert_eq!(seen.len(), 13 - 3 - 1);

    // A person who stops while missed: found again where they stopped.
    let mut tr = tracker();
    let mut seen = Vec::new();
    for i in 0..16 {
        let t = i as f64 * 0.5;
        let y = (170.0 * t).min(510.0) as f32;
        let d = Detection {
            bbox: BBox {
                x: 300.0,
                y,
                w: 60.0,
                h: 80.0,
            },
            score: 0.9,
        };
        let dets = if (6..8).contains(&i) { vec![] } else { vec![d] };
        seen.extend(ids(&tr.update(&dets, t)));
    }
    assert!(seen.iter().all(|&id| id == 1), "{seen:?}");
}

#[test]
fn lost_timeout_spans_seconds_and_frames() {
    // 10 fps: the seconds decide (1.5 s = 15 frames > 5).
    let mut tr = tracker();
    tr.update(&[det(0.0, 0.0, 0.9)], 0.0);
    tr.update(&[det(0.0, 0.0, 0.9)], 0.1);
    for f in 2..=15 {
        assert!(
            tr.update(&[], f as f64 / 10.0).ended.is_empty(),
            "frame {f}"
        );
    }
    assert_eq!(tr.update(&[], 1.65).ended, vec![1]);
    // 2 fps: five frames decide (2.5 s), not 1.5 s.
    let mut tr = tracker();
    assert!(
        (tr.lost_timeout() - 1.5).abs() < 1e-9,
        "no frame interval known yet"
    );
    tr.update(&[det(0.0, 0.0, 0.9)], 0.0);
    tr.update(&[det(0.0, 0.0, 0.9)], 0.5);
    assert!((tr.lost_timeout() - 2.5).abs() < 1e-9);
    for f in 2..=6 {
        assert!(tr.update(&[], f as f64 * 0.5).ended.is_empty(), "frame {f}");
    }
    assert_eq!(tr.update(&[], 3.5).ended, vec![1]);
}

#[test]
fn a_lost_track_that_walked_out_of_the_picture_ends_at_once() {
    let mut tr = tracker();
    tr.set_frame_size(640, 480);
    let walk = walker(300.0, 200.0, 170.0, 10.0, 0.0, 1.0);
    for (t, d) in &walk {
        tr.update(&[*d], *t);
    }
    // Last seen with its centre at y = 410, walking down 17 px a frame: out after 5 missed frames.
    let mut ended_at = None;
    for f in 1..=10 {
        let u = tr.update(&[], 1.0 + f as f64 / 10.0);
        if !u.ended.is_empty() {
            assert_eq!(u.ended, vec![1]);
            ended_at = Some(f);
            break;
        }
    }
    assert_eq!(ended_at, Some(5), "long before the 1.5 s timeout");
    // A track that is matched is never ended that way, wherever it is.
    let mut tr = tracker();
    tr.set_frame_size(640, 480);
    for f in 0..5 {
        let u = tr.update(&[det(700.0, 50.0, 0.9)], f as f64 / 10.0);
        assert!(u.ended.is_empty());
    }
}

#[test]
fn confirmation_reports_the_earlier_sightings_once() {
    let mut tr = tracker();
    let walk = walker(300.0, 0.0, 170.0, 2.0, 0.0, 2.0);
    let u = tr.update(&[walk[0].1], walk[0].0);
    assert!(u.tracks.is_empty());
    let u = tr.update(&[], 0.5);
    assert!(u.tracks.is_empty());
    let u = tr.update(&[walk[2].1], walk[2].0);
    assert_eq!(ids(&u), vec![1]);
    assert_eq!(
        u.tracks[0].earlier,
        vec![Observation {
            ts: 0.0,
            bbox: walk[0].1.bbox
        }]
    );
    let u = tr.update(&[walk[3].1], walk[3].0);
    assert!(u.tracks[0].earlier.is_empty(), "only on confirmation");
}

#[test]
fn iou_and_geometry_helpers() {
    let a = BBox {
        x: 0.0,
        y: 0.0,
        w: 10.0,
        h: 10.0,
    };
    let b = BBox { x: 5.0, ..a };
    assert!((a.iou(&b) - 50.0 / 150.0).abs() < 1e-6);
    assert_eq!(a.iou(&a), 1.0);
    assert_eq!(a.iou(&BBox { x: 10.0, ..a }), 0.0, "touching edges");
    assert_eq!(a.iou(&BBox { w: 0.0, ..a }), 0.0);
    assert_eq!(a.iou(&BBox { x: f32::NAN, ..a }), 0.0);
    assert_eq!(a.center(), (5.0, 5.0));
    assert_eq!(a.bottom_center(), (5.0, 10.0));
    assert_eq!(a.area(), 100.0);
}

#[test]
fn config_defaults_validation_and_unknown_fields() {
    use serde::de::value::{Error as DeError, MapDeserializer};

    assert_eq!(TrackerConfig::default().validate(), Ok(()));
    let partial: TrackerConfig = TrackerConfig::deserialize(MapDeserializer::<_, DeError>::new(
        [("high_score", 0.7f64), ("new_track_score", 0.8)].into_iter(),
    ))
    .expect("partial config");
    assert_eq!(partial.high_score, 0.7);
    assert_eq!(partial.lost_timeout_s, 1.5, "defaults fill the rest");
    let typo = TrackerConfig::deserialize(MapDeserializer::<_, DeError>::new(
        [("hihg_score", 0.7f64)].into_iter(),
    ));
    assert!(typo.is_err());

    let bad = TrackerConfig {
        low_score: 0.9,
        ..TrackerConfig::default()
    };
    assert_eq!(bad.validate().map_err(|e| e.field), Err("low_score"));
    let bad = TrackerConfig {
        lost_timeout_s: f64::NAN,
        match_iou: 0.0,
        min_hits: 0,
        ..TrackerConfig::default()
    };
    assert!(bad.validate().is_err());
    let tr = Tracker::new(bad);
    assert_eq!(tr.config().lost_timeout_s, 1.5);
    assert_eq!(tr.config().match_iou, 0.2);
    assert_eq!(tr.config().min_hits, 1);
    assert_eq!(tr.config().validate(), Ok(()));
}
