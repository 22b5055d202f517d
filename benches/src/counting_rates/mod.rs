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
//!
//! - `detections`: the scenes generated and the detections cached per scene and mode;
//! - `replay`: the agent's tracker and counter (and the tracker before issue 13) replayed at one rate;
//! - `quality`: how the detector itself did against the truth;
//! - `report`: the tables printed for the scenes;
//! - `footage`: the same on real recordings (people mode).

mod detections;
mod footage;
mod quality;
mod replay;
mod report;

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use checkpoint_scenegen::{CountScore, SceneSpec, Target};
use checkpoint_vision::Runtime;

use detections::{detections, scene, Video};
use footage::real_footage;
use quality::detector_quality;
use replay::{replay, trace};
use report::{print_quality, print_table};

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

fn mode_name(m: Target) -> &'static str {
    match m {
        Target::Faces => "faces",
        Target::People => "people",
    }
}
