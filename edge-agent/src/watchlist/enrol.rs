//! Local enrolment: templates from photos, for sites that run without a hub (or to test a camera before the
//! hub's lists arrive). The hub enrols through the same rules; its sync replaces what is enrolled here once
//! its version is newer (versions are milliseconds since the epoch on both sides, see `next_version`).

use std::path::Path;

use checkpoint_vision::enrol::enrol_image;
use checkpoint_vision::{BgrImage, FaceDetector, FaceEmbedder};
use time::OffsetDateTime;

pub use checkpoint_vision::enrol::MIN_ENROL_FACE_PX;

#[derive(Debug, thiserror::Error)]
#[error("{path}: {reason}")]
pub struct EnrolError {
    pub path: String,
    pub reason: String,
}

/// One template from one photo of one person (the rules are the vision crate's, shared with the hub).
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
    enrol_image(&img, det, emb)
        .map(|e| e.embedding.0)
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
