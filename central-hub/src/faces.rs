//! Face analysis in the hub: templates for identity records and watchlist entries, and 1:1 verification
//! (exam check-in, the verify endpoint). The same models and enrolment rules as the agents (the shared vision
//! crate), so a template made here matches what an agent computes at a camera.

use std::path::PathBuf;
use std::sync::Arc;

use checkpoint_vision::enrol::{enrol_bytes, EnrolError, Enrolled};
use checkpoint_vision::guide::{guide, Guidance};
use checkpoint_vision::{
    manifest, FaceDetector, FaceDetectorOptions, FaceEmbedder, Runtime, RuntimeOptions,
};
use parking_lot::Mutex;

/// Largest photo accepted, bytes.
pub const MAX_PHOTO_BYTES: usize = 10 << 20;

pub struct FaceEngine {
    models: Mutex<(FaceDetector, FaceEmbedder)>,
}

impl FaceEngine {
    /// Loads YuNet and SFace from `models_dir` (default: `models/weights` found upwards).
    pub fn load(models_dir: Option<PathBuf>, runtime: RuntimeOptions) -> anyhow::Result<Self> {
        let rt = Runtime::init(runtime)?;
        let dir = models_dir.unwrap_or_else(manifest::default_dir);
        let det = FaceDetector::load(
            rt,
            &manifest::resolve("yunet", None, &dir)?,
            FaceDetectorOptions::default(),
        )?;
        let emb = FaceEmbedder::load(rt, &manifest::resolve("sface", None, &dir)?)?;
        Ok(Self {
            models: Mutex::new((det, emb)),
        })
    }

    /// One template from one photo, on a blocking thread (inference takes tens of milliseconds).
    pub async fn enrol(self: &Arc<Self>, photo: Vec<u8>) -> Result<Enrolled, EnrolError> {
        if photo.len() > MAX_PHOTO_BYTES {
            return Err(EnrolError::TooLarge(format!(
                "the photo is {} bytes; at most {MAX_PHOTO_BYTES} are accepted",
                photo.len()
            )));
        }
        let me = self.clone();
        tokio::task::spawn_blocking(move || {
            let mut m = me.models.lock();
            let (det, emb) = &mut *m;
            enrol_bytes(&photo, det, emb)
        })
        .await
        .map_err(|e| EnrolError::Model(format!("face analysis task failed: {e}")))?
    }
}

impl FaceEngine {
    /// Live-capture guidance for one camera frame (`checkpoint_vision::guide`), on a blocking thread. The frame
    /// is looked at and dropped: nothing is stored or compared.
    pub async fn guide(self: &Arc<Self>, frame: Vec<u8>) -> Result<Guidance, EnrolError> {
        if frame.len() > MAX_GUIDE_FRAME_BYTES {
            return Err(EnrolError::TooLarge(format!(
                "the frame is {} bytes; at most {MAX_GUIDE_FRAME_BYTES} are accepted (send it scaled to 640 px)",
                frame.len()
            )));
        }
        let me = self.clone();
        tokio::task::spawn_blocking(move || {
            let img = checkpoint_vision::BgrImage::decode(&frame)
                .map_err(|e| EnrolError::Unreadable(e.to_string()))?;
            let faces = me
                .models
                .lock()
                .0
                .detect(&img)
                .map_err(|e| EnrolError::Model(e.to_string()))?;
            Ok(guide(&img, &faces))
        })
        .await
        .map_err(|e| EnrolError::Model(format!("face analysis task failed: {e}")))?
    }
}

/// Largest frame accepted for guidance: a phone sends one every second, scaled down.
pub const MAX_GUIDE_FRAME_BYTES: usize = 1 << 20;

/// Cosine similarity of two templates (unit vectors, so the inner product); 0 for mismatched lengths.
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    if a.len() != b.len() {
        return 0.0;
    }
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Templates are stored as little-endian f32 bytes.
pub fn to_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

pub fn from_bytes(b: &[u8]) -> Vec<f32> {
    b.chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_round_trip_through_bytes() {
        let v = vec![0.25f32, -1.5, 3.0e-7];
        assert_eq!(from_bytes(&to_bytes(&v)), v);
        assert_eq!(cosine(&[1.0, 0.0], &[0.6, 0.8]), 0.6);
        assert_eq!(cosine(&[1.0], &[0.6, 0.8]), 0.0);
    }
}
