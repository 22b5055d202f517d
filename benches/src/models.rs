//! `models`: latency per model call, and where the face detector's time goes.

use std::time::Instant;

use anyhow::{bail, Context, Result};
use checkpoint_vision::{
    geometry::resize_bilinear, manifest, BgrImage, FaceDetector, FaceDetectorOptions, FaceEmbedder,
    GraphEdit, PersonDetector, PersonDetectorOptions, Runtime,
};

use crate::shared_dir;

struct Stats {
    mean: f64,
    p50: f64,
    p95: f64,
}

fn time_it(iterations: usize, mut f: impl FnMut() -> Result<()>) -> Result<Stats> {
    for _ in 0..3 {
        f()?; // warm-up: first runs allocate arenas and (on GPU) build kernels
    }
    let mut v: Vec<f64> = Vec::with_capacity(iterations);
    for _ in 0..iterations {
        let t = Instant::now();
        f()?;
        v.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    v.sort_by(f64::total_cmp);
    let mean = v.iter().sum::<f64>() / v.len() as f64;
    Ok(Stats {
        mean,
        p50: v[v.len() / 2],
        p95: v[(v.len() * 95 / 100).min(v.len() - 1)],
    })
}

pub fn run(rt: &Runtime, iterations: usize) -> Result<()> {
    let dir = manifest::default_dir();
    let photo = BgrImage::open(&shared_dir().join("datasets/faces/ageitgey/two_people.jpg"))
        .context("benchmark photo from shared/datasets")?;
    let mut det = FaceDetector::load(
        rt,
        &manifest::resolve("yunet", None, &dir)?,
        FaceDetectorOptions::default(),
    )?;
    let mut emb = FaceEmbedder::load(rt, &manifest::resolve("sface", None, &dir)?)?;
    let mut people = PersonDetector::load(
        rt,
        &manifest::resolve("nanodet", None, &dir)?,
        PersonDetectorOptions::default(),
    )?;
    let faces = det.detect(&photo)?;
    let Some(face) = faces.first() else {
        bail!("no face in the benchmark photo")
    };
    let crop = FaceEmbedder::align(&photo, &face.landmarks);
    let batch8: Vec<BgrImage> = (0..8).map(|_| crop.clone()).collect();
    let img320 = resize_bilinear(&photo, 320, 320);
    let img640 = resize_bilinear(&photo, 640, 640);
    let frame720 = resize_bilinear(&photo, 1280, 720);

    println!(
        "\n## Model latency ({iterations} runs after 3 warm-up, provider {:?})\n",
        det.provider()
    );
    println!("| model | input | mean ms | p50 ms | p95 ms | per item ms |");
    println!("|---|---|---:|---:|---:|---:|");
    let row = |name: &str, input: &str, s: Stats, items: usize| {
        println!(
            "| {name} | {input} | {:.2} | {:.2} | {:.2} | {:.2} |",
            s.mean,
            s.p50,
            s.p95,
            s.mean / items as f64
        )
    };
    row(
        "YuNet",
        "320x320",
        time_it(iterations, || {
            det.detect(&img320).map(|_| ()).map_err(Into::into)
        })?,
        1,
    );
    row(
        "YuNet",
        "640x640",
        time_it(iterations, || {
            det.detect(&img640).map(|_| ()).map_err(Into::into)
        })?,
        1,
    );
    row(
        "YuNet (fit 960)",
        "1280x720 frame",
        time_it(iterations, || {
            det.detect_fit(&frame720, 960)
                .map(|_| ())
                .map_err(Into::into)
        })?,
        1,
    );
    // Where a detection's time goes: the pre- and post-processing against the network itself.
    let mut stages = [0.0f64; 3];
    for _ in 0..iterations {
        det.detect_fit(&frame720, 960)?;
        let t = det.last_timings();
        for (acc, v) in stages.iter_mut().zip([t.prepare_ms, t.infer_ms, t.post_ms]) {
            *acc += v / iterations as f64;
        }
    }
    let [prepare, infer, post] = stages;
    println!(
        "| YuNet stages | 1280x720 → 960x544 | scale into tensor {prepare:.2}, network {infer:.2}, \
         outputs+NMS {post:.2} | pre+post {:.0}% of the network | | |",
        100.0 * (prepare + post) / infer
    );
    row(
        "SFace",
        "112x112, batch 1",
        time_it(iterations, || {
            emb.embed_aligned(std::slice::from_ref(&crop))
                .map(|_| ())
                .map_err(Into::into)
        })?,
        1,
    );
    // The same model as stored in its file: ONNX Runtime's scalar PRelu loop (see `graph_edit`).
    let mut stored = FaceEmbedder::load_with(
        rt,
        &manifest::resolve("sface", None, &dir)?,
        GraphEdit::AsStored,
    )?;
    row(
        "SFace, PRelu as stored",
        "112x112, batch 1",
        time_it(iterations, || {
            stored
                .embed_aligned(std::slice::from_ref(&crop))
                .map(|_| ())
                .map_err(Into::into)
        })?,
        1,
    );
    row(
        "SFace",
        "112x112, batch 8",
        time_it(iterations, || {
            emb.embed_aligned(&batch8).map(|_| ()).map_err(Into::into)
        })?,
        8,
    );
    row(
        "NanoDet-Plus",
        "1280x720 → 416",
        time_it(iterations, || {
            people.detect(&frame720).map(|_| ()).map_err(Into::into)
        })?,
        1,
    );
    row(
        "align (5-point)",
        "→ 112x112",
        time_it(iterations, || {
            FaceEmbedder::align(&photo, &face.landmarks);
            Ok(())
        })?,
        1,
    );
    Ok(())
}
