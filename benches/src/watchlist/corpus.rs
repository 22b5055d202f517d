//! The still-photo corpus: every LFW photo of `lfw_fold1` and `lfw_nopair`, detected and embedded once (plus
//! the horizontally mirrored crop) and cached, so trying a decision rule takes seconds, not minutes.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use checkpoint_vision::quality::frontalness;
use checkpoint_vision::sface::mirror;
use checkpoint_vision::{
    manifest, BgrImage, Face, FaceDetector, FaceDetectorOptions, FaceEmbedder, Runtime,
};
use serde::{Deserialize, Serialize};

/// One photo's face: the face nearest the centre (LFW centres the person of interest).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Photo {
    /// `fold1` or `nopair`.
    pub set: String,
    pub person: String,
    pub file: String,
    /// Shorter side of the face box, pixels.
    pub face_px: f32,
    pub score: f32,
    pub frontal: f32,
    pub emb: Vec<f32>,
    /// Embedding of the mirrored aligned crop.
    pub flip: Vec<f32>,
}

#[derive(Serialize, Deserialize)]
struct Cache {
    model_sha256: String,
    photos: Vec<Photo>,
    missed: usize,
}

pub struct Corpus {
    pub photos: Vec<Photo>,
    /// Photos in which no face was found.
    pub missed: usize,
}

/// Loads the cached corpus for this model, or embeds every photo (about a minute on 2 cores) and caches it.
pub fn load(rt: &Runtime, shared: &Path, cache_dir: &Path) -> Result<Corpus> {
    let models = manifest::default_dir();
    let sface = manifest::resolve("sface", None, &models)?;
    let sha = manifest::sha256_file(&sface)?;
    let cache = cache_dir.join(format!("stills-{}.json", &sha[..12]));
    if let Ok(bytes) = std::fs::read(&cache) {
        if let Ok(c) = serde_json::from_slice::<Cache>(&bytes) {
            if c.model_sha256 == sha {
                return Ok(Corpus {
                    photos: c.photos,
                    missed: c.missed,
                });
            }
        }
    }
    let opts = FaceDetectorOptions {
        score_threshold: 0.5,
        ..Default::default()
    };
    let mut det = FaceDetector::load(rt, &manifest::resolve("yunet", None, &models)?, opts)?;
    let mut emb = FaceEmbedder::load(rt, &sface)?;
    let mut photos = Vec::new();
    let mut missed = 0;
    for set in ["lfw_fold1", "lfw_nopair"] {
        let root = shared.join("datasets/faces").join(set);
        for (person, file) in list_photos(&root)? {
            let img = BgrImage::open(&file).with_context(|| file.display().to_string())?;
            let faces = det.detect(&img)?;
            let Some(face) = central(&faces, &img) else {
                missed += 1;
                continue;
            };
            let crop = FaceEmbedder::align(&img, &face.landmarks);
            let both = emb.embed_aligned(&[crop.clone(), mirror(&crop)])?;
            photos.push(Photo {
                set: set.trim_start_matches("lfw_").to_string(),
                person,
                file: file
                    .file_name()
                    .map(|f| f.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                face_px: face.bbox.w.min(face.bbox.h),
                score: face.score,
                frontal: frontalness(face),
                emb: both[0].0.clone(),
                flip: both[1].0.clone(),
            });
        }
    }
    std::fs::create_dir_all(cache_dir)?;
    let c = Cache {
        model_sha256: sha,
        photos,
        missed,
    };
    std::fs::write(&cache, serde_json::to_vec(&c)?)?;
    Ok(Corpus {
        photos: c.photos,
        missed: c.missed,
    })
}

/// `(person, path)` for every JPEG under `root/<person>/`, in name order.
fn list_photos(root: &Path) -> Result<Vec<(String, PathBuf)>> {
    let mut people: Vec<PathBuf> = std::fs::read_dir(root)
        .with_context(|| format!("{} (shared datasets missing?)", root.display()))?
        .filter_map(|d| d.ok().map(|d| d.path()))
        .filter(|p| p.is_dir())
        .collect();
    people.sort();
    let mut out = Vec::new();
    for p in people {
        let name = p
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut files: Vec<PathBuf> = std::fs::read_dir(&p)?
            .filter_map(|d| d.ok().map(|d| d.path()))
            .filter(|f| f.extension().is_some_and(|x| x == "jpg"))
            .collect();
        files.sort();
        out.extend(files.into_iter().map(|f| (name.clone(), f)));
    }
    Ok(out)
}

fn central<'f>(faces: &'f [Face], img: &BgrImage) -> Option<&'f Face> {
    let (cx, cy) = (img.width as f32 / 2.0, img.height as f32 / 2.0);
    let off = |f: &Face| {
        let (x, y) = f.bbox.center();
        (x - cx).powi(2) + (y - cy).powi(2)
    };
    faces.iter().min_by(|a, b| off(a).total_cmp(&off(b)))
}
