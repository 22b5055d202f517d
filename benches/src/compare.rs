//! `compare`: the agent's pipeline beside a plain OpenCV-Python one on the same file, in one run.
//!
//! Each round runs, one after the other on the same video: the agent's whole pipeline on one stream (decode,
//! detect, track, count, embed improving faces; `run_streams`), the "limit" (the same decoded frames through
//! the agent's face detector alone: what the pipeline would reach if everything but the model were free), and
//! the reference scripts in `benches/reference/` (OpenCV from the PyPI wheel in a venv this creates): detect
//! and embed every face, detect only, and in people mode the same with NanoDet through `cv2.dnn`. Rounds
//! alternate so that the machine's load drifts over all of them alike; the table gives the median of the
//! rounds and the ratios to the references.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use checkpoint_vision::{manifest, Runtime};
use edge_agent::analysis::{AnalysisOptions, Mode};
use serde::Deserialize;

use crate::pipeline::Progress;

pub struct Options {
    pub file: PathBuf,
    pub seconds: f64,
    pub rounds: usize,
    pub people: bool,
    pub venv: PathBuf,
}

#[derive(Deserialize)]
struct Reference {
    fps: f64,
    opencv: String,
    threads: u32,
}

pub fn run(rt: &Runtime, o: &Options) -> Result<()> {
    let python = reference_python(&o.venv)?;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("reference/opencv_pipeline.py");
    let models = manifest::default_dir();
    let yunet = manifest::resolve("yunet", None, &models)?;
    let sface = manifest::resolve("sface", None, &models)?;
    let nanodet = manifest::resolve("nanodet", None, &models)?;
    let reference = |extra: &[&str]| -> Result<Reference> {
        let out = Command::new(&python)
            .arg(&script)
            .arg(&o.file)
            .arg("--yunet")
            .arg(&yunet)
            .arg("--sface")
            .arg(&sface)
            .arg("--nanodet")
            .arg(&nanodet)
            .args(["--seconds", &o.seconds.to_string()])
            .args(extra)
            .output()
            .context("run the OpenCV reference")?;
        if !out.status.success() {
            bail!(
                "reference {extra:?} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        serde_json::from_slice(&out.stdout)
            .with_context(|| format!("reference output: {}", String::from_utf8_lossy(&out.stdout)))
    };
    let mode = if o.people { Mode::People } else { Mode::Faces };
    let mut rows: Vec<(&str, Vec<f64>)> = vec![
        ("Checkpoint pipeline", Vec::new()),
        (
            if o.people {
                "limit: decode + NanoDet + YuNet alone (agent's runtime)"
            } else {
                "limit: decode + YuNet alone (agent's runtime)"
            },
            Vec::new(),
        ),
        ("OpenCV-Python: detect + embed every face", Vec::new()),
        ("OpenCV-Python: detect only", Vec::new()),
    ];
    if o.people {
        rows.push((
            "OpenCV-Python: NanoDet + detect + embed every face",
            Vec::new(),
        ));
    }
    let mut version = String::new();
    let runs = rows.len();
    let progress = Progress::new((o.rounds * runs) as u64, "compare");
    for round in 1..=o.rounds {
        let step = |what: &str| progress.step(format!("round {round}/{}: {what}", o.rounds));
        step("Checkpoint pipeline");
        rows[0]
            .1
            .push(crate::pipeline::run_streams(rt, &o.file, 1, o.seconds, mode)?.fps());
        step("Checkpoint limit");
        rows[1].1.push(limit(rt, &o.file, o.seconds, o.people)?);
        step("OpenCV-Python, embedding every face");
        let r = reference(&[])?;
        version = format!("OpenCV {} ({} threads)", r.opencv, r.threads);
        rows[2].1.push(r.fps);
        step("OpenCV-Python, detection only");
        rows[3].1.push(reference(&["--no-embed"])?.fps);
        if o.people {
            step("OpenCV-Python with NanoDet");
            rows[4].1.push(reference(&["--people"])?.fps);
        }
    }
    progress.finish();
    let med: Vec<f64> = rows.iter().map(|(_, v)| median(v)).collect();
    println!(
        "\n## Checkpoint beside OpenCV-Python, {:?} mode, {} ({} s of video, median of {} rounds, {version})\n",
        mode,
        o.file.display(),
        o.seconds,
        o.rounds
    );
    println!("| pipeline | frames/s (median) | every round | Checkpoint / this |");
    println!("|---|---:|---|---:|");
    for (i, (name, v)) in rows.iter().enumerate() {
        let all: Vec<String> = v.iter().map(|f| format!("{f:.1}")).collect();
        println!(
            "| {name} | {:.1} | {} | {:.2}x |",
            med[i],
            all.join(", "),
            med[0] / med[i]
        );
    }
    if o.people {
        println!(
            "\nTarget (issue 14): at least 2.0x the reference with NanoDet that embeds every face: {:.2}x.",
            med[0] / med[4]
        );
    } else {
        println!(
            "\nTargets (issue 14): at least 2.0x the reference that embeds every face, at least 1.0x OpenCV's \
             detection alone: {:.2}x and {:.2}x.",
            med[0] / med[2],
            med[0] / med[3]
        );
    }
    Ok(())
}

/// Decode + the agent's detectors on every frame (NanoDet too in people mode), nothing else: the ceiling of
/// the pipeline.
fn limit(rt: &Runtime, file: &Path, seconds: f64, people: bool) -> Result<f64> {
    let (mut det, mut persons) = crate::pipeline::detectors(rt, people)?;
    let side = AnalysisOptions::default().face_detect_max_side;
    let start = Instant::now();
    let mut frames = 0u64;
    crate::pipeline::each_frame("limit", file, |f| {
        if f.pts_s > seconds {
            return Ok(false);
        }
        det.detect_fit(&f.image, side)?;
        if let Some(p) = persons.as_mut() {
            p.detect(&f.image)?;
        }
        frames += 1;
        Ok(true)
    })?;
    Ok(frames as f64 / start.elapsed().as_secs_f64())
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    s.get(s.len() / 2).copied().unwrap_or(0.0)
}

/// The venv's python with the pinned OpenCV, created on first use.
fn reference_python(venv: &Path) -> Result<PathBuf> {
    let python = venv.join("bin/python");
    let ok = python.is_file()
        && Command::new(&python)
            .args(["-c", "import cv2, numpy"])
            .output()
            .is_ok_and(|o| o.status.success());
    if ok {
        return Ok(python);
    }
    eprintln!(
        "creating the reference venv in {} (opencv-python-headless from PyPI)",
        venv.display()
    );
    let status = Command::new("python3")
        .args(["-m", "venv"])
        .arg(venv)
        .status()
        .context("python3 -m venv (Debian: apt install python3-venv)")?;
    if !status.success() {
        bail!("python3 -m venv {} failed", venv.display());
    }
    let req = Path::new(env!("CARGO_MANIFEST_DIR")).join("reference/requirements.txt");
    let status = Command::new(venv.join("bin/pip"))
        .args(["install", "-q", "-r"])
        .arg(&req)
        .status()
        .context("pip install the reference's requirements")?;
    if !status.success() {
        bail!("pip install -r {} failed", req.display());
    }
    Ok(python)
}
