//! The inputs of a replay: each scene generated once into `--out`, and the detections of every frame per
//! scene and mode, computed once through the agent's media layer and detectors and cached beside the video.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use checkpoint_scenegen::{SceneSpec, Target, Truth};
use checkpoint_vision::{
    manifest, FaceDetector, FaceDetectorOptions, PersonDetector, PersonDetectorOptions, Runtime,
};
use edge_agent::analysis::AnalysisOptions;
use edge_agent::track::{BBox, Detection};
use serde::{Deserialize, Serialize};

use super::mode_name;

/// Generates the scene into `dir` unless the same one is already there.
pub(super) fn scene(spec: &SceneSpec, dir: &Path) -> Result<Truth> {
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

/// What to decode: a video, its frame count and rate, and a number identifying its content (the scene's
/// seed) so that a cache made for another video is not used.
pub(super) struct Video {
    pub(super) path: PathBuf,
    pub(super) frames: u64,
    pub(super) fps: u32,
    pub(super) id: u64,
}

impl Video {
    pub(super) fn of_scene(dir: &Path, truth: &Truth) -> Video {
        Video {
            path: dir.join(checkpoint_scenegen::VIDEO_FILE),
            frames: truth.frames,
            fps: truth.fps,
            id: truth.seed,
        }
    }
}

/// The cached detections of every frame, computing them first if needed; the cache lives in `dir`.
pub(super) fn detections(
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
