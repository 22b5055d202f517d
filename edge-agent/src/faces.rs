//! `edge-agent faces`: detect and embed the faces in still images, for enrolment tooling and debugging.
//!
//! With `--json`, one JSON object per image per line:
//! `{"image": PATH, "width": W, "height": H, "faces": [{"box": [x, y, w, h], "score": S,
//! "landmarks": [[x, y] x5], "embedding": [128 floats, L2-normalised]}]}`; an image that cannot be read gives
//! `{"image": PATH, "error": "..."}` on its line instead, and the others are still processed.

use std::io::Write;
use std::path::{Path, PathBuf};

use checkpoint_vision::{BgrImage, FaceDetector, FaceEmbedder};
use serde::Serialize;

#[derive(Serialize)]
struct FaceOut {
    #[serde(rename = "box")]
    bbox: [f32; 4],
    score: f32,
    landmarks: [[f32; 2]; 5],
    embedding: Vec<f32>,
}

#[derive(Serialize)]
#[serde(untagged)]
enum ImageOut {
    Ok {
        image: String,
        width: u32,
        height: u32,
        faces: Vec<FaceOut>,
    },
    Err {
        image: String,
        error: String,
    },
}

/// Runs detection and embedding on each image and writes one result per image. Returns how many images
/// could not be processed.
pub fn run(
    images: &[PathBuf],
    json: bool,
    det: &mut FaceDetector,
    emb: &mut FaceEmbedder,
    out: &mut impl Write,
) -> std::io::Result<usize> {
    let mut failed = 0;
    for path in images {
        let result = process(path, det, emb);
        if matches!(result, ImageOut::Err { .. }) {
            failed += 1;
        }
        if json {
            // Serialising plain structs of numbers and strings cannot fail.
            writeln!(
                out,
                "{}",
                serde_json::to_string(&result).unwrap_or_default()
            )?;
        } else {
            match &result {
                ImageOut::Ok {
                    image,
                    width,
                    height,
                    faces,
                } => {
                    writeln!(out, "{image}: {width}x{height}, {} face(s)", faces.len())?;
                    for (i, f) in faces.iter().enumerate() {
                        writeln!(
                            out,
                            "  #{i}: box x={:.1} y={:.1} w={:.1} h={:.1} score={:.3}",
                            f.bbox[0], f.bbox[1], f.bbox[2], f.bbox[3], f.score
                        )?;
                    }
                }
                ImageOut::Err { image, error } => writeln!(out, "{image}: error: {error}")?,
            }
        }
        out.flush()?;
    }
    Ok(failed)
}

fn process(path: &Path, det: &mut FaceDetector, emb: &mut FaceEmbedder) -> ImageOut {
    let image = path.display().to_string();
    let img = match BgrImage::open(path) {
        Ok(i) => i,
        Err(e) => {
            return ImageOut::Err {
                image,
                error: e.to_string(),
            }
        }
    };
    let faces = match det.detect(&img) {
        Ok(f) => f,
        Err(e) => {
            return ImageOut::Err {
                image,
                error: e.to_string(),
            }
        }
    };
    let crops: Vec<BgrImage> = faces
        .iter()
        .map(|f| FaceEmbedder::align(&img, &f.landmarks))
        .collect();
    let embs = match emb.embed_aligned(&crops) {
        Ok(e) => e,
        Err(e) => {
            return ImageOut::Err {
                image,
                error: e.to_string(),
            }
        }
    };
    let faces = faces
        .into_iter()
        .zip(embs)
        .map(|(f, e)| FaceOut {
            bbox: [f.bbox.x, f.bbox.y, f.bbox.w, f.bbox.h],
            score: f.score,
            landmarks: f.landmarks,
            embedding: e.0,
        })
        .collect();
    ImageOut::Ok {
        image,
        width: img.width,
        height: img.height,
        faces,
    }
}
