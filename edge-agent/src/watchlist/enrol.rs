//! Local enrolment: templates from photos, for sites that run without a hub (or to test a camera before the
//! hub's lists arrive). The hub enrols through the same rules; its sync replaces what is enrolled here once
//! its version is newer (versions are milliseconds since the epoch on both sides, see `next_version`).

use std::path::Path;

use checkpoint_vision::quality::frontalness;
use checkpoint_vision::{BgrImage, FaceDetector, FaceEmbedder};
use time::OffsetDateTime;

/// Smallest face (the box's shorter side) a template is made from: below this SFace's input is upscaled
/// blur, and a template from blur matches strangers.
pub const MIN_ENROL_FACE_PX: f32 = 40.0;
/// Faces at least this fraction of the largest face's height count as "another person in the photo";
/// smaller ones are background passers-by and are ignored.
const OTHER_FACE_RATIO: f32 = 0.5;
/// Heads turned further than this (frontalness score) give templates that match poorly.
const MIN_FRONTALNESS: f32 = 0.5;

#[derive(Debug, thiserror::Error)]
#[error("{path}: {reason}")]
pub struct EnrolError {
    pub path: String,
    pub reason: String,
}

/// One template from one photo of one person, or a reason the photo cannot be used.
pub fn template_from_photo(
    path: &Path,
    det: &mut FaceDetector,
    emb: &mut FaceEmbedder,
) -> Result<Vec<f32>, EnrolError> {
    let fail = |reason: String| EnrolError {
        path: path.display().to_string(),
        reason,
    };
    let img = BgrImage::open(path).map_err(|e| fail(e.to_string()))?;
    let mut faces = det.detect(&img).map_err(|e| fail(e.to_string()))?;
    faces.sort_by(|a, b| b.bbox.h.total_cmp(&a.bbox.h));
    let Some(face) = faces.first() else {
        return Err(fail(
            "no face found: use a photo where the face is clearly visible".into(),
        ));
    };
    let others = faces[1..]
        .iter()
        .filter(|f| f.bbox.h >= face.bbox.h * OTHER_FACE_RATIO)
        .count();
    if others > 0 {
        return Err(fail(format!(
            "{} faces of similar size found: crop the photo to the one person",
            others + 1
        )));
    }
    let side = face.bbox.w.min(face.bbox.h);
    if side < MIN_ENROL_FACE_PX {
        return Err(fail(format!(
            "the face is {side:.0} px, at least {MIN_ENROL_FACE_PX:.0} px is needed: use a larger photo"
        )));
    }
    let front = frontalness(face);
    if front < MIN_FRONTALNESS {
        return Err(fail(format!(
            "the head is turned too far (frontalness {front:.2}, at least {MIN_FRONTALNESS}): use a frontal photo"
        )));
    }
    emb.embed(&img, &face.landmarks)
        .map(|e| e.0)
        .map_err(|e| fail(e.to_string()))
}

/// The version a local change moves to: above the held one, and in the hub's numbering (milliseconds since
/// the epoch), so the hub's next full sync still counts as newer than a local enrolment made before it.
pub fn next_version(held: u64, now: OffsetDateTime) -> u64 {
    let ms = (now.unix_timestamp_nanos() / 1_000_000).max(0) as u64;
    ms.max(held + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_versions_increase_and_follow_the_clock() {
        let now = OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
        assert_eq!(next_version(0, now), 1_800_000_000_000);
        assert_eq!(next_version(1_900_000_000_000, now), 1_900_000_000_001);
    }
}
