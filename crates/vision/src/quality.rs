//! Face quality: which of a track's faces is worth embedding and keeping.

use crate::yunet::Face;

/// A score in 0..1 combining size, detector confidence and frontalness. Size saturates at `good_size_px`
/// (the smaller side of the box) because beyond that SFace gains nothing; frontalness comes from the
/// landmarks: the nose sits between the eyes when the head faces the camera, and the eyes are level.
pub fn face_quality(face: &Face, good_size_px: f32) -> f32 {
    let size = (face.bbox.w.min(face.bbox.h) / good_size_px).clamp(0.0, 1.0);
    frontalness(face) * size * face.score.clamp(0.0, 1.0)
}

/// 1.0 for a frontal, upright face, falling towards 0 with yaw and roll.
pub fn frontalness(face: &Face) -> f32 {
    let [re, le, nose, _, _] = face.landmarks;
    let eye_dx = le[0] - re[0];
    let eye_dy = le[1] - re[1];
    let eye_dist = (eye_dx * eye_dx + eye_dy * eye_dy).sqrt();
    if eye_dist < 1.0 {
        return 0.0;
    }
    let mid = ((re[0] + le[0]) / 2.0, (re[1] + le[1]) / 2.0);
    // Horizontal nose offset along the eye axis, relative to the eye distance: ~0 frontal, ~0.5 at profile.
    let along = ((nose[0] - mid.0) * eye_dx + (nose[1] - mid.1) * eye_dy) / (eye_dist * eye_dist);
    let yaw = (1.0 - 2.0 * along.abs()).clamp(0.0, 1.0);
    let roll = (eye_dy.abs() / eye_dist).min(1.0);
    yaw * (1.0 - roll).clamp(0.0, 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::geometry::Rect;

    fn face(nose_x: f32, size: f32) -> Face {
        Face {
            bbox: Rect {
                x: 0.0,
                y: 0.0,
                w: size,
                h: size,
            },
            score: 0.9,
            landmarks: [
                [30.0, 40.0],
                [70.0, 40.0],
                [nose_x, 60.0],
                [35.0, 80.0],
                [65.0, 80.0],
            ],
        }
    }

    #[test]
    fn frontal_beats_turned_and_big_beats_small() {
        assert!(face_quality(&face(50.0, 100.0), 80.0) > face_quality(&face(65.0, 100.0), 80.0));
        assert!(face_quality(&face(50.0, 100.0), 80.0) > face_quality(&face(50.0, 30.0), 80.0));
        assert!((frontalness(&face(50.0, 100.0)) - 1.0).abs() < 1e-6);
    }
}
