//! `counting-rates`: does counting hold from 25 analysed frames per second down to 2?
//!
//! Each scene is decoded once at its native 25 fps through the agent's own media layer and the detector of
//! each mode is run once per frame (YuNet for faces, NanoDet for people, with the agent's default options);
//! the detections are cached per scene and mode under `--out`. Then, for each analysis rate, the frames the
//! agent would analyse at that rate are picked (by timestamp, evenly, as the media layer's sampler does), and
//! the agent's tracker and counter (`edge_agent::count::CameraCounter`, the code `CameraAnalyzer` runs) are
//! replayed on their detections. A detector's output for a frame does not depend on which other frames are
//! analysed, so this measures exactly what the agent would count, minus timing effects (frames dropped
//! because analysis fell behind are another matter: issue 13, item 4).
//!
//! Every rate is replayed from several starting frames (`--phases`), so a 2 fps result is not one lucky
//! choice of frames; the figures add the phases up.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use checkpoint_scenegen::{
    analysed_frames, score_crossings, CountScore, Counted, Direction as TruthDirection, IdAudit,
    SceneSpec, Target, Truth,
};
use checkpoint_vision::{
    manifest, FaceDetector, FaceDetectorOptions, PersonDetector, PersonDetectorOptions, Runtime,
};
use edge_agent::analysis::{AnalysisOptions, Coords, LineConfig, Mode};
use edge_agent::count::{CameraCounter, Direction, Side};
use edge_agent::track::{BBox, Detection, TrackerConfig};
use serde::{Deserialize, Serialize};

use crate::legacy_track;

/// How far a counted crossing may be from the truth's, seconds (as in `tests/counting.rs`).
const TOLERANCE_S: f64 = 2.5;
/// The target: share of crossings counted per direction, with no double or false counts.
const TARGET: f64 = 0.98;

/// Options of one run.
pub struct Options {
    pub scenes: Vec<String>,
    pub modes: Vec<String>,
    pub rates: Vec<f64>,
    pub phases: usize,
    pub out: PathBuf,
    /// Print, frame by frame at the first rate, what happened around this actor of each scene.
    pub trace: Option<u32>,
    /// `../shared`, for people mode on real footage (the MOT sequences and the videos in `datasets/labels`).
    pub shared: Option<PathBuf>,
}

/// Detections of every frame of a scene, as the agent's detector of one mode reports them.
#[derive(Serialize, Deserialize)]
struct DetectionCache {
    /// The truth this was computed for (seed, frames), to notice a regenerated scene.
    seed: u64,
    frames: u64,
    mode: String,
    /// Per frame: `[x, y, w, h, score]`.
    detections: Vec<Vec<[f32; 5]>>,
}

/// One row of the table.
struct Row {
    rate: f64,
    scene: String,
    mode: Target,
    score: CountScore,
    /// The same with the tracker as it was before issue 13 (IoU-gated ByteTrack, per-frame motion model).
    before: CountScore,
    fragments: usize,
    swaps: usize,
    runs: usize,
}

pub fn run(rt: &Runtime, o: &Options) -> Result<()> {
    std::fs::create_dir_all(&o.out).with_context(|| format!("{}", o.out.display()))?;
    let modes: Vec<Target> = o
        .modes
        .iter()
        .map(|m| match m.as_str() {
            "faces" => Ok(Target::Faces),
            "people" => Ok(Target::People),
            m => bail!("unknown mode {m}: faces or people"),
        })
        .collect::<Result<_>>()?;
    println!("\n## Counting across analysis rates\n");
    if o.scenes.iter().any(|s| !s.is_empty() && s != "none") {
        println!(
        "Tracker and counter of the agent replayed on each scene's cached detections; each rate from {} \
         starting frames (fewer where the rate leaves fewer distinct ones), figures summed. Tolerance \
         {TOLERANCE_S} s. `extra` = counted crossings that did not happen (double counts in brackets); \
         `frag` = a person's track id changed; `swap` = a track moved to another person.\n",
            o.phases
        );
    }
    let mut rows = Vec::new();
    let mut quality = Vec::new();
    for name in o.scenes.iter().filter(|s| !s.is_empty() && *s != "none") {
        let spec = SceneSpec::preset(name).with_context(|| {
            format!(
                "unknown scene {name}: one of {}",
                SceneSpec::PRESETS.join(", ")
            )
        })?;
        let dir = o.out.join(name);
        let truth = scene(&spec, &dir)?;
        for &mode in &modes {
            let dets = detections(rt, &dir, &Video::of_scene(&dir, &truth), mode)?;
            quality.push((name.clone(), mode, detector_quality(&truth, mode, &dets)));
            if let (Some(actor), Some(&rate)) = (o.trace, o.rates.first()) {
                trace(&truth, mode, &dets, rate, actor);
            }
            for &rate in &o.rates {
                rows.push(replay(name, &truth, mode, &dets, rate, o.phases));
            }
        }
    }
    if !rows.is_empty() {
        print_quality(&quality);
        print_table(&rows, &o.rates, &modes);
    }
    if let Some(shared) = &o.shared {
        if modes.contains(&Target::People) {
            real_footage(rt, shared, &o.out, &o.rates, o.phases)?;
        }
    }
    Ok(())
}

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
fn real_footage(
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

/// How the detector did on a scene, frame by frame, against the truth.
struct Quality {
    /// Truth boxes the detector should see (faces wholly inside the picture, cut-outs at least half in).
    visible: usize,
    /// Of those, found (a detection with IoU >= 0.3, each detection used once).
    found: usize,
    /// Mean IoU of the found ones.
    mean_iou: f64,
    /// Detections matching nobody (not even someone partly in the picture), per frame.
    false_per_frame: f64,
    /// Longest run of frames in which a visible person was not found, in frames at 25 fps.
    longest_miss: u64,
}

fn detector_quality(truth: &Truth, mode: Target, dets: &[Vec<Detection>]) -> Quality {
    let mut q = Quality {
        visible: 0,
        found: 0,
        mean_iou: 0.0,
        false_per_frame: 0.0,
        longest_miss: 0,
    };
    let mut run: HashMap<u32, u64> = HashMap::new();
    let mut false_total = 0usize;
    let mut iou_sum = 0.0;
    for (k, frame) in dets.iter().enumerate() {
        let k = k as u64;
        let mut used = vec![false; frame.len()];
        for a in &truth.actors {
            let Some(b) = mode.visible_box(truth, a, k) else {
                run.remove(&a.actor_id);
                continue;
            };
            q.visible += 1;
            let tb = BBox {
                x: b[0],
                y: b[1],
                w: b[2],
                h: b[3],
            };
            let best = frame
                .iter()
                .enumerate()
                .filter(|(i, _)| !used[*i])
                .map(|(i, d)| (i, d.bbox.iou(&tb)))
                .filter(|(_, o)| *o >= 0.3)
                .max_by(|x, y| x.1.total_cmp(&y.1));
            match best {
                Some((i, o)) => {
                    used[i] = true;
                    q.found += 1;
                    iou_sum += f64::from(o);
                    run.remove(&a.actor_id);
                }
                None => {
                    let r = run.entry(a.actor_id).or_insert(0);
                    *r += 1;
                    q.longest_miss = q.longest_miss.max(*r);
                }
            }
        }
        // A detection of someone only partly in the picture (a face cut by the border) is not false.
        let partly: Vec<BBox> = truth
            .actors
            .iter()
            .filter_map(|a| {
                let b = match mode {
                    Target::Faces => a.box_at(k)?,
                    Target::People => a.cutout_at(k)?,
                };
                Some(BBox {
                    x: b[0],
                    y: b[1],
                    w: b[2],
                    h: b[3],
                })
            })
            .collect();
        false_total += frame
            .iter()
            .zip(&used)
            .filter(|(d, u)| !**u && !partly.iter().any(|p| d.bbox.iou(p) >= 0.3))
            .count();
    }
    q.mean_iou = iou_sum / q.found.max(1) as f64;
    q.false_per_frame = false_total as f64 / dets.len().max(1) as f64;
    q
}

fn print_quality(rows: &[(String, Target, Quality)]) {
    println!("Detector against the truth, every frame at 25 fps (a person counts as found with IoU >= 0.3 to their face box, or in people mode to their cut-out clipped to the picture):\n");
    println!(
        "| scene | mode | visible | found | mean IoU | false per frame | longest miss (frames) |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|");
    for (scene, mode, q) in rows {
        println!(
            "| {scene} | {} | {} | {} ({:.1}%) | {:.2} | {:.3} | {} |",
            mode_name(*mode),
            q.visible,
            q.found,
            100.0 * q.found as f64 / q.visible.max(1) as f64,
            q.mean_iou,
            q.false_per_frame,
            q.longest_miss
        );
    }
    println!();
}

/// Generates the scene into `dir` unless the same one is already there.
fn scene(spec: &SceneSpec, dir: &Path) -> Result<Truth> {
    let planned = checkpoint_scenegen::plan(spec)?;
    let truth_file = dir.join(checkpoint_scenegen::TRUTH_FILE);
    let video = dir.join(checkpoint_scenegen::VIDEO_FILE);
    if video.is_file() {
        if let Ok(t) = Truth::load(&truth_file) {
            if t == planned {
                return Ok(t);
            }
        }
    }
    println!("generating {} ...", dir.display());
    let t0 = Instant::now();
    // Old detections belong to the old video.
    for m in ["faces", "people"] {
        let _ = std::fs::remove_file(cache_file(dir, m));
    }
    let truth = checkpoint_scenegen::generate(spec, dir)?;
    println!("  {:.0} s", t0.elapsed().as_secs_f64());
    Ok(truth)
}

fn cache_file(dir: &Path, mode: &str) -> PathBuf {
    dir.join(format!("detections-{mode}.json"))
}

fn mode_name(m: Target) -> &'static str {
    match m {
        Target::Faces => "faces",
        Target::People => "people",
    }
}

/// What to decode: a video, its frame count and rate, and a number identifying its content (the scene's
/// seed) so that a cache made for another video is not used.
struct Video {
    path: PathBuf,
    frames: u64,
    fps: u32,
    id: u64,
}

impl Video {
    fn of_scene(dir: &Path, truth: &Truth) -> Video {
        Video {
            path: dir.join(checkpoint_scenegen::VIDEO_FILE),
            frames: truth.frames,
            fps: truth.fps,
            id: truth.seed,
        }
    }
}

/// The cached detections of every frame, computing them first if needed; the cache lives in `dir`.
fn detections(
    rt: &Runtime,
    dir: &Path,
    video: &Video,
    mode: Target,
) -> Result<Vec<Vec<Detection>>> {
    let file = cache_file(dir, mode_name(mode));
    let cached: Option<DetectionCache> = std::fs::read(&file)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .filter(|c: &DetectionCache| c.seed == video.id && c.frames == video.frames);
    let cache = match cached {
        Some(c) => c,
        None => {
            let c = detect_all(rt, video, mode)?;
            std::fs::write(&file, serde_json::to_vec(&c)?)
                .with_context(|| format!("{}", file.display()))?;
            c
        }
    };
    Ok(cache
        .detections
        .iter()
        .map(|f| {
            f.iter()
                .map(|d| Detection {
                    bbox: BBox {
                        x: d[0],
                        y: d[1],
                        w: d[2],
                        h: d[3],
                    },
                    score: d[4],
                })
                .collect()
        })
        .collect())
}

enum Detector {
    Faces(FaceDetector, u32),
    People(PersonDetector),
}

/// Decodes the scene through the agent's media layer (every frame) and runs the mode's detector on each.
fn detect_all(rt: &Runtime, v: &Video, mode: Target) -> Result<DetectionCache> {
    let models = manifest::default_dir();
    // The agent's defaults (config.rs `DetectionConfig`, analysis.rs `AnalysisOptions`).
    let mut detector = match mode {
        Target::Faces => Detector::Faces(
            FaceDetector::load(
                rt,
                &manifest::resolve("yunet", None, &models)?,
                FaceDetectorOptions::default(),
            )?,
            AnalysisOptions::default().face_detect_max_side,
        ),
        Target::People => Detector::People(PersonDetector::load(
            rt,
            &manifest::resolve("nanodet", None, &models)?,
            PersonDetectorOptions::default(),
        )?),
    };
    let video = v.path.clone();
    let mut out: Vec<Vec<[f32; 5]>> = vec![Vec::new(); v.frames as usize];
    let mut seen = 0u64;
    let t0 = Instant::now();
    crate::pipeline::each_frame("counting-rates", &video, |f| {
        let k = (f.pts_s * v.fps as f64).round();
        if !(k >= 0.0 && (k as u64) < v.frames) {
            return Ok(true);
        }
        let boxes: Vec<[f32; 5]> = match &mut detector {
            Detector::Faces(d, side) => d
                .detect_fit(&f.image, *side)?
                .iter()
                .map(|x| [x.bbox.x, x.bbox.y, x.bbox.w, x.bbox.h, x.score])
                .collect(),
            Detector::People(d) => d
                .detect(&f.image)?
                .iter()
                .map(|x| [x.bbox.x, x.bbox.y, x.bbox.w, x.bbox.h, x.score])
                .collect(),
        };
        out[k as usize] = boxes;
        seen += 1;
        Ok(true)
    })?;
    if seen + 2 < v.frames {
        bail!("{}: decoded {seen} of {} frames", video.display(), v.frames);
    }
    println!(
        "  {} {}: {seen} frames detected in {:.0} s",
        video.display(),
        mode_name(mode),
        t0.elapsed().as_secs_f64()
    );
    Ok(DetectionCache {
        seed: v.id,
        frames: v.frames,
        mode: mode_name(mode).into(),
        detections: out,
    })
}

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
fn replay(
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
fn trace(truth: &Truth, mode: Target, dets: &[Vec<Detection>], rate: f64, actor: u32) {
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

fn print_table(rows: &[Row], rates: &[f64], modes: &[Target]) {
    println!("| rate fps | scene | mode | in counted / truth | out counted / truth | extra (double) | frag | swap | runs | >= 98%, none extra | before issue 13: in, out, extra |");
    println!("|---:|---|---|---:|---:|---:|---:|---:|---:|---|---|");
    for r in rows {
        let s = &r.score;
        let b = &r.before;
        println!(
            "| {} | {} | {} | {}/{} ({:.1}%) | {}/{} ({:.1}%) | {} ({}) | {} | {} | {} | {} | {}, {}, {} |",
            r.rate,
            r.scene,
            mode_name(r.mode),
            s.hit_in,
            s.truth_in,
            100.0 * s.recall_in(),
            s.hit_out,
            s.truth_out,
            100.0 * s.recall_out(),
            s.extra_in + s.extra_out,
            s.double,
            r.fragments,
            r.swaps,
            r.runs,
            if s.meets(TARGET) { "yes" } else { "**no**" },
            b.hit_in,
            b.hit_out,
            b.extra_in + b.extra_out
        );
    }
    println!("\nPer mode and rate, every scene together:\n");
    println!("| mode | rate fps | in | out | extra | all scenes meet the target |");
    println!("|---|---:|---:|---:|---:|---|");
    let mut lowest: HashMap<&'static str, Option<f64>> = HashMap::new();
    for &m in modes {
        let mut reliable_from: Option<f64> = None;
        let mut sorted = rates.to_vec();
        sorted.sort_by(|a, b| b.total_cmp(a));
        let mut all_above = true;
        for &rate in &sorted {
            let mut total = CountScore::default();
            let mut every = true;
            for r in rows.iter().filter(|r| r.mode == m && r.rate == rate) {
                total.add(&r.score);
                every &= r.score.meets(TARGET);
            }
            println!(
                "| {} | {rate} | {:.1}% | {:.1}% | {} | {} |",
                mode_name(m),
                100.0 * total.recall_in(),
                100.0 * total.recall_out(),
                total.extra_in + total.extra_out,
                if every { "yes" } else { "**no**" }
            );
            all_above &= every;
            if all_above {
                reliable_from = Some(rate);
            }
        }
        lowest.insert(mode_name(m), reliable_from);
    }
    println!();
    for &m in modes {
        match lowest.get(mode_name(m)).copied().flatten() {
            Some(r) => println!(
                "Lowest rate at which {} mode meets the target on every scene (and at every rate above it): {r} fps",
                mode_name(m)
            ),
            None => println!(
                "{} mode does not meet the target at the highest rate measured",
                mode_name(m)
            ),
        }
    }
}
