//! People mode on real recordings: the MOTChallenge sequences and our labelled videos, their true line
//! crossings, and the agent's counts on them at each rate (a sanity check on real people).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use checkpoint_scenegen::{analysed_frames, Target};
use checkpoint_vision::Runtime;
use edge_agent::analysis::{Coords, LineConfig, Mode};
use edge_agent::count::{CameraCounter, Direction, Side};
use edge_agent::track::{Detection, TrackerConfig};
use serde::Deserialize;

use super::detections::{detections, Video};
use crate::legacy_track;

/// A real recording with true line crossings: a MOTChallenge sequence (`truth.json` beside the video in
/// `../shared/datasets/mot/<name>/`, counts derived from its ground-truth tracks) or a video in `../shared`
/// that we labelled ourselves (`datasets/labels/<name>.json`).
struct Footage {
    name: String,
    video: PathBuf,
    width: u32,
    height: u32,
    fps: u32,
    frames: u64,
    lines: Vec<FootageLine>,
}

struct FootageLine {
    id: String,
    /// Normalised.
    a: [f32; 2],
    b: [f32; 2],
    in_side: Side,
    /// Fraction of the diagonal.
    band: f32,
    /// True crossings: frame (0-based, decode order) and direction.
    events: Vec<(u64, Direction)>,
}

#[derive(Deserialize)]
struct MotTruth {
    sequence: String,
    video: String,
    width: u32,
    height: u32,
    fps: u32,
    frames: u64,
    lines: Vec<MotLine>,
}

#[derive(Deserialize)]
struct MotLine {
    id: String,
    /// Normalised; "in" = into the right-hand side of a->b on screen, counted at the feet, 2% band.
    a: [f32; 2],
    b: [f32; 2],
    events: Vec<MotEvent>,
}

#[derive(Deserialize)]
struct MotEvent {
    frame_1based: u64,
    dir: String,
}

/// Our own labels (`datasets/labels/*.json`, described in that folder's README).
#[derive(Deserialize)]
struct Labels {
    video: String,
    width: u32,
    height: u32,
    fps: u32,
    frames: u64,
    lines: Vec<LabelLine>,
    events: Vec<LabelEvent>,
}

#[derive(Deserialize)]
struct LabelLine {
    id: String,
    a: [f32; 2],
    b: [f32; 2],
    in_side: Side,
    band: f32,
}

#[derive(Deserialize)]
struct LabelEvent {
    line: String,
    dir: String,
    frame: u64,
}

fn direction(s: &str) -> Result<Direction> {
    match s {
        "in" => Ok(Direction::In),
        "out" => Ok(Direction::Out),
        d => bail!("direction {d:?}: in or out"),
    }
}

fn mot_footage(dir: &Path) -> Result<Footage> {
    let text = std::fs::read_to_string(dir.join("truth.json"))
        .with_context(|| format!("{}/truth.json", dir.display()))?;
    let t: MotTruth =
        serde_json::from_str(&text).with_context(|| format!("{}/truth.json", dir.display()))?;
    let lines = t
        .lines
        .into_iter()
        .map(|l| {
            let events = l
                .events
                .iter()
                .map(|e| Ok((e.frame_1based.saturating_sub(1), direction(&e.dir)?)))
                .collect::<Result<_>>()?;
            Ok(FootageLine {
                id: l.id,
                a: l.a,
                b: l.b,
                in_side: Side::Right,
                band: 0.02,
                events,
            })
        })
        .collect::<Result<_>>()?;
    Ok(Footage {
        name: t.sequence,
        video: dir.join(t.video),
        width: t.width,
        height: t.height,
        fps: t.fps,
        frames: t.frames,
        lines,
    })
}

fn labelled_footage(labels: &Path, shared: &Path) -> Result<Footage> {
    let text = std::fs::read_to_string(labels).with_context(|| format!("{}", labels.display()))?;
    let l: Labels = serde_json::from_str(&text).with_context(|| format!("{}", labels.display()))?;
    let lines = l
        .lines
        .into_iter()
        .map(|line| {
            let events = l
                .events
                .iter()
                .filter(|e| e.line == line.id)
                .map(|e| Ok((e.frame, direction(&e.dir)?)))
                .collect::<Result<_>>()?;
            Ok(FootageLine {
                id: line.id,
                a: line.a,
                b: line.b,
                in_side: line.in_side,
                band: line.band,
                events,
            })
        })
        .collect::<Result<_>>()?;
    Ok(Footage {
        name: labels
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default(),
        video: shared.join(l.video),
        width: l.width,
        height: l.height,
        fps: l.fps,
        frames: l.frames,
        lines,
    })
}

/// The real recordings found: the MOT sequences and every labelled video whose file is in `shared`.
fn footage(shared: &Path) -> Result<Vec<Footage>> {
    let mut out = Vec::new();
    for name in ["TUD-Stadtmitte", "TUD-Campus"] {
        let dir = shared.join("datasets/mot").join(name);
        if dir.join("truth.json").exists() {
            out.push(mot_footage(&dir)?);
        } else {
            println!("\n({} not found: skipped)", dir.display());
        }
    }
    let labels_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../datasets/labels");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&labels_dir)
        .with_context(|| format!("{}", labels_dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    for f in files {
        let footage = labelled_footage(&f, shared)?;
        if footage.video.exists() {
            out.push(footage);
        } else {
            println!("\n({} not found: skipped)", footage.video.display());
        }
    }
    Ok(out)
}

/// People mode on real footage: each recording's true line crossings at each rate, NanoDet detections cached
/// like the scenes'. Each rate runs from every distinct starting frame up to `phases`; the figures are few (a
/// few dozen crossings): a sanity check on real people, not a statistic.
pub(super) fn real_footage(
    rt: &Runtime,
    shared: &Path,
    out: &Path,
    rates: &[f64],
    phases: usize,
) -> Result<()> {
    let all = footage(shared)?;
    if all.is_empty() {
        return Ok(());
    }
    println!("\n### People mode on real footage (NanoDet)\n");
    println!("TUD sequences: line counts from the MOTChallenge ground-truth tracks (feet, 2% band, every crossing); others: our labels (`datasets/labels`). A counted crossing matches a true one of the same line and direction within 1 s plus one analysed frame.\n");
    println!("| rate fps | recording | lines | in counted / truth | out counted / truth | extra | runs | before issue 13: in, out, extra |");
    println!("|---:|---|---:|---:|---:|---:|---:|---|");
    let mut notes = Vec::new();
    for &rate in rates {
        for f in &all {
            let cache_dir = out.join(&f.name);
            std::fs::create_dir_all(&cache_dir)?;
            let video = Video {
                path: f.video.clone(),
                frames: f.frames,
                fps: f.fps,
                // Any fixed number: the cache is per recording directory.
                id: 0,
            };
            let dets = detections(rt, &cache_dir, &video, Target::People)?;
            let per = (f.fps as f64 / rate).max(1.0);
            let n = phases.clamp(1, per.ceil() as usize);
            let mut starts: Vec<u64> = (0..n)
                .map(|i| (i as f64 * per / n as f64).round() as u64)
                .collect();
            starts.dedup();
            let (mut hit, mut truth, mut extra) = ([0usize; 2], [0usize; 2], 0usize);
            let (mut old_hit, mut old_extra) = ([0usize; 2], 0usize);
            for &phase in &starts {
                let (h, tr, e, n) = replay_footage(f, &dets, rate, phase, false);
                let (oh, _, oe, _) = replay_footage(f, &dets, rate, phase, true);
                notes.extend(
                    n.into_iter()
                        .map(|n| format!("{rate} fps, {}, start {phase}: {n}", f.name)),
                );
                for k in 0..2 {
                    hit[k] += h[k];
                    truth[k] += tr[k];
                    old_hit[k] += oh[k];
                }
                extra += e;
                old_extra += oe;
            }
            println!(
                "| {rate} | {} | {} | {}/{} | {}/{} | {extra} | {} | {}, {}, {old_extra} |",
                f.name,
                f.lines.len(),
                hit[0],
                truth[0],
                hit[1],
                truth[1],
                starts.len(),
                old_hit[0],
                old_hit[1]
            );
        }
    }
    if !notes.is_empty() {
        println!(
            "\nWhat the tracker and counter got wrong, per rate, recording and starting frame:\n"
        );
        for n in notes {
            println!("- {n}");
        }
    }
    Ok(())
}

/// How far a counted crossing on real footage may be from the true one, seconds: as `tests/real_footage.rs`
/// judges, 1 s (labels are exact to a few frames; the MOT tracks' feet jitter) plus one analysed frame.
fn real_tolerance_s(rate: f64) -> f64 {
    1.0 + 1.0 / rate
}

/// One replay of a recording (with the tracker before issue 13 when `legacy`): per direction (in, out) the
/// true crossings matched and their number, and the counted crossings that matched none.
fn replay_footage(
    f: &Footage,
    dets: &[Vec<Detection>],
    rate: f64,
    phase: u64,
    legacy: bool,
) -> ([usize; 2], [usize; 2], usize, Vec<String>) {
    let lines: Vec<LineConfig> = f
        .lines
        .iter()
        .map(|l| LineConfig {
            id: l.id.clone(),
            a: l.a,
            b: l.b,
            coords: Coords::Normalized,
            in_side: l.in_side,
            band: Some(l.band),
            site_boundary: true,
        })
        .collect();
    let mut counted: Vec<(String, Direction, f64)> = Vec::new();
    let frames = analysed_frames(f.frames, f.fps, rate, phase);
    let at = |k: u64| dets.get(k as usize).map(Vec::as_slice).unwrap_or(&[]);
    if legacy {
        let mut tracker = legacy_track::Tracker::new(legacy_track::TrackerConfig::default());
        let mut counters: Vec<edge_agent::count::LineCounter> = lines
            .iter()
            .map(|l| {
                edge_agent::count::LineCounter::new(l.id.clone(), l.geometry(f.width, f.height))
            })
            .collect();
        for k in frames {
            let ts = k as f64 / f.fps as f64;
            let u = tracker.update(at(k), ts);
            for tr in &u.tracks {
                for c in &mut counters {
                    if let Some(x) = c.observe(tr.id, tr.bbox.bottom_center(), ts) {
                        counted.push((x.line_id, x.direction, x.ts));
                    }
                }
            }
            for id in u.ended {
                for c in &mut counters {
                    c.track_ended(id);
                }
            }
        }
    } else {
        let mut counter = CameraCounter::new(lines, Mode::People, None, TrackerConfig::default());
        for k in frames {
            let ts = k as f64 / f.fps as f64;
            for (c, _) in counter.step(at(k), ts, f.width, f.height).crossings {
                counted.push((c.line_id, c.direction, c.ts));
            }
        }
        counter.finish();
    }
    let mut used = vec![false; counted.len()];
    let (mut hit, mut truth) = ([0usize; 2], [0usize; 2]);
    let tolerance = real_tolerance_s(rate.min(f.fps as f64));
    let mut notes = Vec::new();
    for l in &f.lines {
        for &(frame, dir) in &l.events {
            let k = usize::from(dir == Direction::Out);
            truth[k] += 1;
            let te = frame as f64 / f.fps as f64;
            let best = counted
                .iter()
                .enumerate()
                .filter(|(i, c)| {
                    !used[*i] && c.0 == l.id && c.1 == dir && (c.2 - te).abs() <= tolerance
                })
                .min_by(|x, y| (x.1 .2 - te).abs().total_cmp(&(y.1 .2 - te).abs()));
            if let Some((i, _)) = best {
                used[i] = true;
                hit[k] += 1;
            } else {
                let nearest = counted
                    .iter()
                    .filter(|c| c.0 == l.id && c.1 == dir)
                    .map(|c| c.2 - te)
                    .min_by(|a, b| a.abs().total_cmp(&b.abs()));
                notes.push(format!(
                    "missed {} {dir:?} at {te:.1} s (nearest counted there: {})",
                    l.id,
                    nearest.map_or("none".into(), |d| format!("{d:+.1} s"))
                ));
            }
        }
    }
    for (c, _) in counted.iter().zip(&used).filter(|(_, u)| !**u) {
        notes.push(format!("extra {} {:?} at {:.1} s", c.0, c.1, c.2));
    }
    (hit, truth, used.iter().filter(|u| !**u).count(), notes)
}
