//! Counting on real footage with ground truth, people mode: the real `edge-agent` binary on
//! - the two MOTChallenge sequences in `../shared/datasets/mot/` (TUD-Stadtmitte, TUD-Campus), whose line
//!   counts `truth.json` derives from the MOT ground-truth tracks (foot point, 2% band, every crossing), and
//! - `one-by-one-person-detection.mp4` (six people walk into a room and out again), with the labels in
//!   `datasets/labels/one-by-one-person-detection.json`, made by eye frame by frame (the file says how).
//!
//! A true crossing is matched by a counted crossing on the same line, in the same direction, near the same moment.
//! The target (issue 13) is 98% per line and direction, which with 0-6 crossings each means all of them. People
//! mode does not reach it yet, so each test asserts what the agent measurably does today: the crossings it matched
//! minus those it counted that did not happen, at least what it scored when the test was written
//! (`min_matched`, a floor against regressions, never a claim that the target is met). Each run prints its table
//! (`cargo test -p checkpoint-e2e --test real_footage -- --nocapture`); benches/RESULTS.md quotes them.

use std::path::{Path, PathBuf};
use std::time::Duration;

use checkpoint_e2e::{shared_dir, Agent};
use checkpoint_protocol::{Direction, EventKind, LineCrossing};
use serde::Deserialize;

/// A counting line as the agent's config takes it (normalised coordinates), with its true crossings.
#[derive(Debug, Clone)]
struct TruthLine {
    id: String,
    a: [f64; 2],
    b: [f64; 2],
    in_side: String,
    /// Hysteresis half-width, fraction of the diagonal; `None` keeps the agent's default (2%).
    band: Option<f64>,
    /// (stream time in seconds, direction) of every true crossing.
    events: Vec<(f64, Direction)>,
}

/// A recording and what truly happened in it.
struct Footage {
    name: String,
    video: PathBuf,
    fps: f64,
    lines: Vec<TruthLine>,
}

#[derive(Deserialize)]
struct MotTruth {
    video: String,
    fps: f64,
    lines: Vec<MotLine>,
}

#[derive(Deserialize)]
struct MotLine {
    id: String,
    a: [f64; 2],
    b: [f64; 2],
    #[serde(rename = "in")]
    n_in: usize,
    #[serde(rename = "out")]
    n_out: usize,
    events: Vec<MotEvent>,
}

#[derive(Deserialize)]
struct MotEvent {
    frame_1based: u64,
    dir: Direction,
}

/// `../shared/datasets/mot/<seq>/truth.json`. Its convention (in = moving into the right-hand side of a->b as
/// seen on screen, 2% of the diagonal as band) is the agent's `in_side = "right"` with the default band.
fn mot(seq: &str) -> Footage {
    let dir = shared_dir().join("datasets/mot").join(seq);
    let text =
        std::fs::read_to_string(dir.join("truth.json")).expect("MOT truth.json in ../shared");
    let t: MotTruth = serde_json::from_str(&text).expect("truth.json parses");
    let lines = t
        .lines
        .into_iter()
        .map(|l| {
            let events: Vec<(f64, Direction)> = l
                .events
                .iter()
                .map(|e| ((e.frame_1based - 1) as f64 / t.fps, e.dir))
                .collect();
            assert_eq!(
                (
                    count(&events, Direction::In),
                    count(&events, Direction::Out)
                ),
                (l.n_in, l.n_out),
                "{seq} line {}: events agree with the totals",
                l.id
            );
            TruthLine {
                id: l.id,
                a: l.a,
                b: l.b,
                in_side: "right".into(),
                band: None,
                events,
            }
        })
        .collect();
    Footage {
        name: seq.into(),
        video: dir.join(t.video),
        fps: t.fps,
        lines,
    }
}

#[derive(Deserialize)]
struct Labels {
    video: String,
    video_sha256: String,
    fps: f64,
    frames: u64,
    lines: Vec<LabelLine>,
    events: Vec<LabelEvent>,
}

#[derive(Deserialize)]
struct LabelLine {
    id: String,
    a: [f64; 2],
    b: [f64; 2],
    in_side: String,
    band: Option<f64>,
    #[serde(rename = "in")]
    n_in: usize,
    #[serde(rename = "out")]
    n_out: usize,
}

#[derive(Deserialize)]
struct LabelEvent {
    line: String,
    dir: Direction,
    frame: u64,
}

fn labels_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../datasets/labels")
        .join(format!("{name}.json"))
}

/// Our own labels (`datasets/labels/<name>.json`) of a video in `../shared`.
fn labelled(name: &str) -> Footage {
    let text = std::fs::read_to_string(labels_path(name)).expect("labels file");
    let l: Labels = serde_json::from_str(&text).expect("labels parse");
    let video = shared_dir().join(&l.video);
    let lines = l
        .lines
        .into_iter()
        .map(|line| {
            let events: Vec<(f64, Direction)> = l
                .events
                .iter()
                .filter(|e| e.line == line.id)
                .map(|e| {
                    assert!(e.frame < l.frames, "label frame {} past the end", e.frame);
                    (e.frame as f64 / l.fps, e.dir)
                })
                .collect();
            assert_eq!(
                (
                    count(&events, Direction::In),
                    count(&events, Direction::Out)
                ),
                (line.n_in, line.n_out),
                "{name} line {}: events agree with the totals",
                line.id
            );
            TruthLine {
                id: line.id,
                a: line.a,
                b: line.b,
                in_side: line.in_side,
                band: line.band,
                events,
            }
        })
        .collect::<Vec<_>>();
    for e in &l.events {
        assert!(
            lines.iter().any(|line| line.id == e.line),
            "event on unknown line {}",
            e.line
        );
    }
    assert_eq!(
        sha256_hex(&video),
        l.video_sha256,
        "{} is not the video these labels were made on",
        video.display()
    );
    Footage {
        name: name.into(),
        video,
        fps: l.fps,
        lines,
    }
}

fn sha256_hex(path: &Path) -> String {
    let out = std::process::Command::new("sha256sum")
        .arg(path)
        .output()
        .expect("sha256sum runs");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string()
}

fn count(events: &[(f64, Direction)], dir: Direction) -> usize {
    events.iter().filter(|(_, d)| *d == dir).count()
}

/// Runs the agent in people mode over the whole file at `analysis_fps` and returns its line crossings.
fn run_people(footage: &Footage, analysis_fps: f64, dir: &Path) -> Vec<LineCrossing> {
    let events = dir.join("events.jsonl");
    let mut lines = String::new();
    for l in &footage.lines {
        lines += &format!(
            "[[cameras.lines]]\nid = \"{}\"\na = [{}, {}]\nb = [{}, {}]\nin_side = \"{}\"\n{}\n",
            l.id,
            l.a[0],
            l.a[1],
            l.b[0],
            l.b[1],
            l.in_side,
            l.band.map(|b| format!("band = {b}")).unwrap_or_default()
        );
    }
    let cfg = dir.join("site.toml");
    std::fs::write(
        &cfg,
        format!(
            r#"
[site]
id = "real-footage"
[agent]
events = "{events}"
metrics_listen = ""
[detection]
embed_faces = false
# Files are read as fast as analysis goes; the load governor must not thin them on a busy machine, or the
# result would depend on the machine's load.
[load]
adaptive_sampling = false
[[cameras]]
id = "cam"
mode = "people"
[cameras.stream]
analysis_fps = {analysis_fps}
source = {{ kind = "file", path = "{video}" }}
{lines}"#,
            events = events.display(),
            video = footage.video.display(),
        ),
    )
    .expect("write agent config");
    let mut agent = Agent::start(&cfg, dir);
    let status = agent.wait(Duration::from_secs(900));
    assert!(
        status.success(),
        "agent failed on {}: {}",
        footage.name,
        agent.log_text()
    );
    agent
        .events()
        .into_iter()
        .filter_map(|e| match e.event {
            EventKind::LineCrossing(c) => Some(c),
            _ => None,
        })
        .collect()
}

/// One line and direction: true crossings, those matched by a counted one, and counted ones that match none.
#[derive(Debug, PartialEq)]
struct Score {
    line: String,
    dir: Direction,
    truth: usize,
    matched: usize,
    extra: usize,
}

/// Pairs true and counted crossings of one line and direction in time order, each counted crossing used once,
/// within `tolerance_s`. Greedy in time order is optimal here: both lists are sorted and a pair never needs
/// to cross another (people on one line in one direction do not overtake each other within a second).
fn score(line: &TruthLine, got: &[LineCrossing], tolerance_s: f64) -> Vec<Score> {
    [Direction::In, Direction::Out]
        .into_iter()
        .map(|dir| {
            let mut truth: Vec<f64> = line
                .events
                .iter()
                .filter(|(_, d)| *d == dir)
                .map(|(t, _)| *t)
                .collect();
            truth.sort_by(f64::total_cmp);
            let mut counted: Vec<f64> = got
                .iter()
                .filter(|c| c.line == line.id && c.direction == dir)
                .map(|c| c.stream_time_s)
                .collect();
            counted.sort_by(f64::total_cmp);
            let mut used = vec![false; counted.len()];
            let mut matched = 0;
            for t in &truth {
                let best = counted
                    .iter()
                    .enumerate()
                    .filter(|(i, c)| !used[*i] && (*c - t).abs() <= tolerance_s)
                    .min_by(|x, y| (x.1 - t).abs().total_cmp(&(y.1 - t).abs()));
                if let Some((i, _)) = best {
                    used[i] = true;
                    matched += 1;
                }
            }
            Score {
                line: line.id.clone(),
                dir,
                truth: truth.len(),
                matched,
                extra: used.iter().filter(|u| !**u).count(),
            }
        })
        .collect()
}

/// Runs one recording at one rate, prints its table and checks it: true crossings matched over all lines and
/// directions, less the counted crossings that did not happen, at least `min_matched`.
fn check(footage: &Footage, analysis_fps: f64, min_matched: usize) {
    let dir = tempfile::tempdir().expect("temp dir");
    let got = run_people(footage, analysis_fps, dir.path());
    // The agent decides a crossing once the foot point is past the band, which can be a few frames after the
    // moment the truth names, and it sees only every (fps / analysis_fps)-th frame.
    let tolerance_s = 1.0 + 1.0 / analysis_fps;
    let scores: Vec<Score> = footage
        .lines
        .iter()
        .flat_map(|l| score(l, &got, tolerance_s))
        .collect();
    println!(
        "\n{} (people mode, {} fps video analysed at {} fps)\n| line | dir | truth | counted and matched | extra | accuracy |\n|---|---|---|---|---|---|",
        footage.name, footage.fps, analysis_fps
    );
    for s in &scores {
        let acc = if s.truth == 0 {
            "-".to_string()
        } else {
            format!("{:.0}%", 100.0 * s.matched as f64 / s.truth as f64)
        };
        println!(
            "| {} | {:?} | {} | {} | {} | {} |",
            s.line, s.dir, s.truth, s.matched, s.extra, acc
        );
    }
    let truth: usize = scores.iter().map(|s| s.truth).sum();
    let matched: usize = scores.iter().map(|s| s.matched).sum();
    let extra: usize = scores.iter().map(|s| s.extra).sum();
    println!("all lines: {matched} of {truth} matched, {extra} extra");
    // Net of extras: two runs on the same file have differed by one crossing (7 matched and 0 extra, then 8 and
    // 1 on TUD-Campus), so an extra costs what a match gains.
    assert!(
        matched.saturating_sub(extra) >= min_matched,
        "{} at {analysis_fps} fps: {matched} of {truth} matched (floor {min_matched}), {extra} extra: {scores:?}; counted: {got:?}",
        footage.name
    );
}

#[test]
fn labels_and_truth_files_are_consistent() {
    // Loading checks totals against events, frames against the length, and the video's sha256.
    let l = labelled("one-by-one-person-detection");
    assert_eq!(l.lines.iter().map(|l| l.events.len()).sum::<usize>(), 12);
    for seq in ["TUD-Stadtmitte", "TUD-Campus"] {
        let m = mot(seq);
        assert!(m.video.is_file(), "{}", m.video.display());
    }
}

#[test]
fn score_counts_misses_and_extras() {
    let line = TruthLine {
        id: "l".into(),
        a: [0.0, 0.5],
        b: [1.0, 0.5],
        in_side: "right".into(),
        band: None,
        events: vec![
            (1.0, Direction::In),
            (5.0, Direction::In),
            (3.0, Direction::Out),
        ],
    };
    let c = |t: f64, dir| LineCrossing {
        camera: "cam".into(),
        line: "l".into(),
        direction: dir,
        track_id: 1,
        stream_time_s: t,
        site_boundary: Some(true),
    };
    // One in matched, one in too late, one in counted twice, the out counted in the wrong direction.
    let got = vec![
        c(1.2, Direction::In),
        c(1.3, Direction::In),
        c(9.0, Direction::In),
        c(3.0, Direction::In),
    ];
    let s = score(&line, &got, 1.0);
    assert_eq!(
        (s[0].truth, s[0].matched, s[0].extra),
        (2, 1, 3),
        "in: {s:?}"
    );
    assert_eq!((s[1].truth, s[1].matched, s[1].extra), (1, 0, 0), "out");
}

#[test]
fn tud_stadtmitte_people_mode_counts_match_the_ground_truth() {
    // 2026-12-06: 8 of 10 (v70 misses 2 of 3 "in": people walking in a close group).
    check(&mot("TUD-Stadtmitte"), 25.0, 8);
}

#[test]
fn tud_campus_people_mode_counts_match_the_ground_truth() {
    // 2026-12-06: 7 of 8 (two people cross v60 together, one occluding the other).
    check(&mot("TUD-Campus"), 25.0, 7);
}

#[test]
fn one_by_one_people_mode_counts_match_the_labels() {
    let footage = labelled("one-by-one-person-detection");
    // 2026-12-06: 11 of 12 (person 3's entry is missed).
    check(&footage, 10.0, 11);
}

#[test]
fn one_by_one_people_mode_counts_match_the_labels_at_2_5_fps() {
    let footage = labelled("one-by-one-person-detection");
    // 2026-12-06: 7 of 12 (5 of 6 entries, 2 of 6 exits: people leave past the edge within one or two
    // analysed frames at this rate).
    check(&footage, 2.5, 7);
}
