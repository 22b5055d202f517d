//! `edge-agent watchlist match`: the watchlist decision on still images, for checking what the agent would
//! do with a given face. Each face is decided exactly as the agent decides a track that has seen only that
//! face: flip-fused embedding, the list's threshold for the entries held (policy and floor), the best
//! candidate at or above it.
//!
//! With `--json`, one line per image: `{"image": PATH, "faces": [{"box": [x, y, w, h], "match": null |
//! {"entry_id": ID, "list": "wanted"|"missing", "score": S}}]}`; an image that cannot be read gives
//! `{"image": PATH, "error": "..."}` and the others are still done.

use std::io::Write;
use std::path::{Path, PathBuf};

use checkpoint_vision::{BgrImage, FaceDetector, FaceEmbedder};
use serde::Serialize;
use time::OffsetDateTime;

use super::{list_name, MatchConfig, TrackMatcher, WatchlistHandle};

#[derive(Serialize)]
struct MatchOut {
    entry_id: String,
    list: &'static str,
    score: f32,
}

#[derive(Serialize)]
struct FaceOut {
    #[serde(rename = "box")]
    bbox: [f32; 4],
    #[serde(rename = "match")]
    matched: Option<MatchOut>,
}

#[derive(Serialize)]
#[serde(untagged)]
enum ImageOut {
    Ok { image: String, faces: Vec<FaceOut> },
    Err { image: String, error: String },
}

/// Decides every face of every image and writes one line per image. Returns how many images failed.
pub fn run(
    images: &[PathBuf],
    json: bool,
    watchlist: WatchlistHandle,
    det: &mut FaceDetector,
    emb: &mut FaceEmbedder,
    out: &mut impl Write,
) -> std::io::Result<usize> {
    // One face is all a still has: the track rule with a single vote.
    let mut matcher = TrackMatcher::new(
        watchlist,
        MatchConfig {
            min_faces: 1,
            ..MatchConfig::default()
        },
    );
    let now = OffsetDateTime::now_utc();
    let mut failed = 0;
    let mut next_track = 0u64;
    for path in images {
        let result = match decide(path, &mut matcher, &mut next_track, det, emb, now) {
            Ok(faces) => ImageOut::Ok {
                image: path.display().to_string(),
                faces,
            },
            Err(error) => {
                failed += 1;
                ImageOut::Err {
                    image: path.display().to_string(),
                    error,
                }
            }
        };
        if json {
            // Plain structs of numbers and strings always serialise.
            writeln!(
                out,
                "{}",
                serde_json::to_string(&result).unwrap_or_default()
            )?;
        } else {
            write_text(&result, out)?;
        }
    }
    Ok(failed)
}

fn decide(
    path: &Path,
    matcher: &mut TrackMatcher,
    next_track: &mut u64,
    det: &mut FaceDetector,
    emb: &mut FaceEmbedder,
    now: OffsetDateTime,
) -> Result<Vec<FaceOut>, String> {
    let img = BgrImage::open(path).map_err(|e| e.to_string())?;
    let faces = det.detect(&img).map_err(|e| e.to_string())?;
    let crops: Vec<BgrImage> = faces
        .iter()
        .map(|f| FaceEmbedder::align(&img, &f.landmarks))
        .collect();
    let embs = emb.embed_aligned_fused(&crops).map_err(|e| e.to_string())?;
    let mut out = Vec::with_capacity(faces.len());
    for (face, e) in faces.iter().zip(&embs) {
        // Each face is its own one-face track, so nothing carries over between faces.
        *next_track += 1;
        let best = matcher
            .observe(*next_track, [(1.0, e)], now)
            .into_iter()
            .next();
        matcher.track_ended(*next_track);
        out.push(FaceOut {
            bbox: [face.bbox.x, face.bbox.y, face.bbox.w, face.bbox.h],
            matched: best.map(|c| MatchOut {
                entry_id: c.entry_id,
                list: list_name(c.list),
                score: c.similarity,
            }),
        });
    }
    Ok(out)
}

fn write_text(r: &ImageOut, out: &mut impl Write) -> std::io::Result<()> {
    match r {
        ImageOut::Err { image, error } => writeln!(out, "{image}: error: {error}"),
        ImageOut::Ok { image, faces } => {
            writeln!(out, "{image}: {} face(s)", faces.len())?;
            for f in faces {
                let [x, y, w, h] = f.bbox;
                match &f.matched {
                    Some(m) => writeln!(
                        out,
                        "  face at ({x:.0}, {y:.0}) {w:.0}x{h:.0}: {} entry {} (score {:.3})",
                        m.list, m.entry_id, m.score
                    )?,
                    None => writeln!(out, "  face at ({x:.0}, {y:.0}) {w:.0}x{h:.0}: no match")?,
                }
            }
            Ok(())
        }
    }
}
