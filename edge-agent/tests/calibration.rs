//! Calibrates the watchlist's default thresholds on real faces: every image of LFW View-2 fold 1 (807 images,
//! 435 people) embedded with SFace, every pair compared. Impostor pairs (different people, ~324k) give the
//! false-match rate of a threshold, genuine pairs (same person, ~900) its true-match rate. The test fails if
//! the defaults in `edge_agent::watchlist` are looser than the measured operating points, so loosening them
//! takes a deliberate change here too.
//!
//! Then the matcher itself runs on the same faces: people with three or more photos are enrolled from one
//! photo and walk past as a "track" of their other photos; everyone else walks past as a stranger.

use std::path::{Path, PathBuf};

use checkpoint_vision::{
    manifest, BgrImage, Embedding, Face, FaceDetector, FaceDetectorOptions, FaceEmbedder, Runtime,
};
use edge_agent::watchlist::{
    ListKind, MatchConfig, Thresholds, TrackMatcher, WatchlistEntry, WatchlistHandle, WatchlistSet,
    DEFAULT_MISSING_THRESHOLD, DEFAULT_WANTED_THRESHOLD, MIN_THRESHOLD,
};
use time::macros::datetime;

/// The read-only assets beside the repository: `$CHECKPOINT_ASSETS`, else `../shared`.
fn shared() -> PathBuf {
    std::env::var_os("CHECKPOINT_ASSETS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared"))
}

/// One embedding per image in which a face was found, grouped by person (folder), in name order.
fn embed_fold(root: &Path) -> (Vec<Vec<Embedding>>, usize, usize) {
    let rt = Runtime::get_or_default().expect("ONNX Runtime (run scripts/setup)");
    let dir = manifest::default_dir();
    let model =
        |name: &str| manifest::resolve(name, None, &dir).expect("model (run scripts/setup)");
    // As in the vision crate's LFW test: LFW crops centre the face of interest, sometimes beside others, so
    // keep the lower detection threshold and take the face nearest the centre.
    let opts = FaceDetectorOptions {
        score_threshold: 0.5,
        ..Default::default()
    };
    let mut det = FaceDetector::load(rt, &model("yunet"), opts).expect("YuNet");
    let mut emb = FaceEmbedder::load(rt, &model("sface")).expect("SFace");

    let mut people: Vec<PathBuf> = std::fs::read_dir(root)
        .unwrap_or_else(|e| panic!("{}: {e} (LFW fold 1 missing?)", root.display()))
        .filter_map(|d| d.ok().map(|d| d.path()))
        .filter(|p| p.is_dir())
        .collect();
    people.sort();
    let (mut images, mut missed) = (0, 0);
    let mut out = Vec::with_capacity(people.len());
    for person in &people {
        let mut files: Vec<PathBuf> = std::fs::read_dir(person)
            .expect("person folder")
            .filter_map(|d| d.ok().map(|d| d.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "jpg"))
            .collect();
        files.sort();
        let mut mine = Vec::new();
        for f in files {
            images += 1;
            let img = BgrImage::open(&f).expect("LFW image");
            let (cx, cy) = (img.width as f32 / 2.0, img.height as f32 / 2.0);
            let off_centre = |f: &Face| {
                let (x, y) = f.bbox.center();
                (x - cx).powi(2) + (y - cy).powi(2)
            };
            let faces = det.detect(&img).expect("YuNet run");
            match faces
                .iter()
                .min_by(|a, b| off_centre(a).total_cmp(&off_centre(b)))
            {
                Some(face) => mine.push(emb.embed(&img, &face.landmarks).expect("SFace run")),
                None => missed += 1,
            }
        }
        out.push(mine);
    }
    (out, images, missed)
}

/// Lowest threshold whose false-match rate is at most `fmr`: just above the impostor score that would be
/// one too many. `impostors` sorted high to low.
fn threshold_at(impostors: &[f32], fmr: f64) -> f32 {
    let allowed = (fmr * impostors.len() as f64).floor() as usize;
    impostors
        .get(allowed)
        .map_or(f32::NEG_INFINITY, |s| s.next_up())
}

fn rate_at_or_above(scores: &[f32], t: f32) -> f64 {
    scores.iter().filter(|s| **s >= t).count() as f64 / scores.len() as f64
}

fn round_up_2(t: f32) -> f32 {
    (t * 100.0).ceil() / 100.0
}

#[test]
fn sface_thresholds_at_fmr_1e3_and_1e4_and_the_defaults_are_no_looser() {
    let root = shared().join("datasets/faces/lfw_fold1");
    let (people, images, missed) = embed_fold(&root);
    let faces: usize = people.iter().map(Vec::len).sum();
    assert_eq!(images, 807, "LFW fold 1 has 807 images");
    assert!(missed <= 8, "{missed} images without a face");

    let flat: Vec<(usize, &Embedding)> = people
        .iter()
        .enumerate()
        .flat_map(|(p, es)| es.iter().map(move |e| (p, e)))
        .collect();
    let (mut genuine, mut impostor) = (Vec::new(), Vec::new());
    for (i, (pa, a)) in flat.iter().enumerate() {
        for (pb, b) in &flat[i + 1..] {
            let s = a.cosine(b);
            if pa == pb {
                genuine.push(s);
            } else {
                impostor.push(s);
            }
        }
    }
    impostor.sort_by(|a, b| b.total_cmp(a));
    let t3 = threshold_at(&impostor, 1e-3);
    let t4 = threshold_at(&impostor, 1e-4);
    let (tmr3, tmr4) = (
        rate_at_or_above(&genuine, t3),
        rate_at_or_above(&genuine, t4),
    );
    let d = Thresholds::default();
    eprintln!(
        "LFW fold 1: {images} images, {faces} faces embedded ({missed} without a face), {} people; \
         {} genuine and {} impostor pairs",
        people.len(),
        genuine.len(),
        impostor.len()
    );
    eprintln!(
        "  FMR 1e-3: cosine >= {t3:.4}  TMR {:.2}%  (rounded up {:.2})",
        tmr3 * 100.0,
        round_up_2(t3)
    );
    eprintln!(
        "  FMR 1e-4: cosine >= {t4:.4}  TMR {:.2}%  (rounded up {:.2})",
        tmr4 * 100.0,
        round_up_2(t4)
    );
    for (name, t) in [
        ("default wanted", d.wanted),
        ("default missing", d.missing),
        ("floor (MIN_THRESHOLD)", MIN_THRESHOLD),
    ] {
        eprintln!(
            "  {name} {t:.2}: FMR {:.2e}  TMR {:.2}%",
            rate_at_or_above(&impostor, t),
            rate_at_or_above(&genuine, t) * 100.0
        );
    }

    assert!(genuine.len() >= 800 && impostor.len() >= 300_000);
    assert!(t3 > 0.2, "FMR 1e-3 threshold {t3}");
    assert!(
        t4 > t3,
        "FMR 1e-4 threshold {t4} not above FMR 1e-3 threshold {t3}"
    );
    assert!(
        t4 < 0.8,
        "FMR 1e-4 threshold {t4}: impostors look alike, embeddings broken?"
    );
    assert!(tmr3 > 0.9, "TMR at FMR 1e-3 is {:.2}%", tmr3 * 100.0);
    assert!(tmr4 > 0.8, "TMR at FMR 1e-4 is {:.2}%", tmr4 * 100.0);

    // The defaults must be at least as strict as the measured operating points.
    assert!(
        DEFAULT_WANTED_THRESHOLD >= t4 && d.wanted >= t4,
        "default wanted threshold {} is looser than the FMR 1e-4 point {t4}",
        d.wanted
    );
    assert!(
        DEFAULT_MISSING_THRESHOLD >= t3 && d.missing >= t3,
        "default missing threshold {} is looser than the FMR 1e-3 point {t3}",
        d.missing
    );
    // ... and not so strict that the lists stop finding people.
    assert!(rate_at_or_above(&genuine, d.wanted) > 0.8);
    assert!(rate_at_or_above(&genuine, d.missing) > 0.9);

    matcher_on_lfw(&people, d);
}

/// People with 3+ photos: even-numbered ones are enrolled from their first photo (alternately on the wanted
/// and the missing list) and walk past as a track of their other photos; odd-numbered ones and people with
/// exactly 2 photos walk past as strangers. Reports hits and false candidates at the default thresholds.
fn matcher_on_lfw(people: &[Vec<Embedding>], thresholds: Thresholds) {
    let now = datetime!(2026-06-01 12:00 UTC);
    let regulars: Vec<usize> = (0..people.len())
        .filter(|&p| people[p].len() >= 3)
        .collect();
    let mut entries = Vec::new();
    let mut enrolled = Vec::new();
    let mut strangers: Vec<usize> = (0..people.len())
        .filter(|&p| people[p].len() == 2)
        .collect();
    for (n, &p) in regulars.iter().enumerate() {
        if n % 2 == 1 {
            strangers.push(p);
            continue;
        }
        let list = if enrolled.len() % 2 == 0 {
            ListKind::Wanted
        } else {
            ListKind::Missing
        };
        entries.push(WatchlistEntry {
            id: format!("lfw-{p}"),
            list,
            label: format!("LFW person {p}"),
            case_ref: format!("CAL-{p}"),
            legal_basis: "calibration".into(),
            issued_by: "test".into(),
            expires_at: datetime!(2030-01-01 00:00 UTC),
            templates: vec![people[p][0].0.clone()],
        });
        enrolled.push((p, list));
    }
    let set = WatchlistSet {
        version: 1,
        entries,
        thresholds,
        policies: None,
    };
    let mut m = TrackMatcher::new(
        WatchlistHandle::from_set(set).expect("valid set"),
        MatchConfig::default(),
    );
    let mut track = 0u64;
    let (mut hits, mut wrong) = ([0usize; 2], 0usize);
    let mut totals = [0usize; 2];
    for &(p, list) in &enrolled {
        track += 1;
        // The walk past: faces arrive one by one, best first as the analyser keeps them (at most 3).
        let walk: Vec<&Embedding> = people[p][1..].iter().take(3).collect();
        let li = usize::from(list == ListKind::Missing);
        totals[li] += 1;
        let mut found = false;
        for seen in 1..=walk.len() {
            for c in m.observe(track, walk[..seen].iter().map(|e| (1.0, *e)), now) {
                if c.entry_id == format!("lfw-{p}") {
                    found = true;
                } else {
                    wrong += 1;
                }
            }
        }
        hits[li] += usize::from(found);
        m.track_ended(track);
    }
    let mut false_alerts = 0;
    for &p in &strangers {
        track += 1;
        let walk: Vec<&Embedding> = people[p].iter().take(3).collect();
        for seen in 1..=walk.len() {
            false_alerts += m
                .observe(track, walk[..seen].iter().map(|e| (1.0, *e)), now)
                .len();
        }
        m.track_ended(track);
    }
    eprintln!(
        "  matcher (min_faces 2, one enrolment photo): wanted {}/{} found, missing {}/{} found; \
         {wrong} wrong-entry candidates on listed people; {false_alerts} candidates on {} strangers \
         against {} entries",
        hits[0],
        totals[0],
        hits[1],
        totals[1],
        strangers.len(),
        enrolled.len()
    );
    assert_eq!(m.tracks_held(), 0, "every track ended");
    assert!(
        false_alerts + wrong <= 1,
        "{false_alerts} false candidates on strangers, {wrong} on listed people"
    );
    let found = (hits[0] + hits[1]) as f64 / enrolled.len() as f64;
    assert!(
        found > 0.8,
        "matcher found {:.0}% of listed people",
        found * 100.0
    );
}
