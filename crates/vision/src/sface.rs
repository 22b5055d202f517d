//! SFace face embedding: 128-d, L2-normalised, compared by cosine similarity.

use std::path::Path;

use ndarray::Array4;
use ort::session::Session;

use crate::align::{align_face, ALIGNED_SIZE};
use crate::graph_edit::GraphEdit;
use crate::runtime::{first_input, run_single, Provider, Runtime};
use crate::{BgrImage, VisionError};

pub const EMBEDDING_DIM: usize = 128;

/// An L2-normalised face embedding.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Embedding(pub Vec<f32>);

impl Embedding {
    /// Normalises a raw model output; a zero vector (which no real face produces) stays zero.
    pub fn from_raw(raw: &[f32]) -> Self {
        let n = raw.iter().map(|v| v * v).sum::<f32>().sqrt();
        if n > 0.0 && n.is_finite() {
            Self(raw.iter().map(|v| v / n).collect())
        } else {
            Self(vec![0.0; raw.len()])
        }
    }

    /// Cosine similarity; both sides are unit vectors, so this is the dot product.
    pub fn cosine(&self, other: &Embedding) -> f32 {
        self.0.iter().zip(&other.0).map(|(a, b)| a * b).sum()
    }
}

/// OpenCV's published same-person threshold for SFace (cosine).
pub const SFACE_MATCH_THRESHOLD: f32 = 0.363;

pub struct FaceEmbedder {
    session: Session,
    provider: Provider,
    input_name: String,
    /// Largest batch sent in one run; bigger requests are split.
    pub max_batch: usize,
    batch_dynamic: bool,
}

impl FaceEmbedder {
    pub fn load(rt: &Runtime, model: &Path) -> Result<Self, VisionError> {
        Self::load_with(rt, model, GraphEdit::ForCpu)
    }

    /// As [`FaceEmbedder::load`], choosing whether the graph is edited first ([`crate::graph_edit`]); the
    /// benchmarks and equality tests load it as stored too.
    pub fn load_with(rt: &Runtime, model: &Path, edit: GraphEdit) -> Result<Self, VisionError> {
        // The block-quantised weights are folded once instead of dequantised on every run: ~2x faster, same output.
        let (session, provider) = rt.session_on(
            model,
            &[("session.disable_quant_qdq", "1")],
            rt.options().provider,
            edit,
        )?;
        let (input_name, shape) = first_input(&session, model)?;
        let batch_dynamic = shape.first().is_none_or(|d| *d <= 0);
        Ok(Self {
            session,
            provider,
            input_name,
            max_batch: 16,
            batch_dynamic,
        })
    }

    pub fn provider(&self) -> Provider {
        self.provider
    }

    /// Aligns a face from its landmarks (see [`crate::align`]).
    pub fn align(img: &BgrImage, landmarks: &[[f32; 2]; 5]) -> BgrImage {
        align_face(img, landmarks)
    }

    /// Embeds aligned 112x112 BGR crops, batched.
    pub fn embed_aligned(&mut self, faces: &[BgrImage]) -> Result<Vec<Embedding>, VisionError> {
        let mut out = Vec::with_capacity(faces.len());
        let step = if self.batch_dynamic {
            self.max_batch.max(1)
        } else {
            1
        };
        for chunk in faces.chunks(step) {
            out.extend(self.run_batch(chunk)?);
        }
        Ok(out)
    }

    /// Embeds aligned crops flip-fused: each crop and its mirror image in one batch, summed and normalised.
    /// This is the score the watchlist calibration is measured on (`models/manifest.toml`): on LFW it misses
    /// fewer listed people at the same false-alert rate than the crop alone, for twice the model time.
    pub fn embed_aligned_fused(
        &mut self,
        faces: &[BgrImage],
    ) -> Result<Vec<Embedding>, VisionError> {
        let mut both = Vec::with_capacity(faces.len() * 2);
        for f in faces {
            both.push(f.clone());
            both.push(mirror(f));
        }
        let embs = self.embed_aligned(&both)?;
        Ok(embs
            .chunks(2)
            .map(|pair| {
                let sum: Vec<f32> = pair[0]
                    .0
                    .iter()
                    .zip(&pair[1].0)
                    .map(|(a, b)| a + b)
                    .collect();
                Embedding::from_raw(&sum)
            })
            .collect())
    }

    /// Aligns one face of `img` and embeds it flip-fused (see [`Self::embed_aligned_fused`]).
    pub fn embed_fused(
        &mut self,
        img: &BgrImage,
        landmarks: &[[f32; 2]; 5],
    ) -> Result<Embedding, VisionError> {
        let crop = align_face(img, landmarks);
        self.embed_aligned_fused(std::slice::from_ref(&crop))?
            .pop()
            .ok_or_else(|| VisionError::Inference("SFace returned no embedding".into()))
    }

    /// Aligns and embeds one face of `img`.
    pub fn embed(
        &mut self,
        img: &BgrImage,
        landmarks: &[[f32; 2]; 5],
    ) -> Result<Embedding, VisionError> {
        let crop = align_face(img, landmarks);
        self.run_batch(std::slice::from_ref(&crop))?
            .pop()
            .ok_or_else(|| VisionError::Inference("SFace returned no embedding".into()))
    }

    fn run_batch(&mut self, faces: &[BgrImage]) -> Result<Vec<Embedding>, VisionError> {
        if faces.is_empty() {
            return Ok(vec![]);
        }
        let s = ALIGNED_SIZE as usize;
        let mut input = Array4::<f32>::zeros((faces.len(), 3, s, s));
        for (n, face) in faces.iter().enumerate() {
            if face.width != ALIGNED_SIZE || face.height != ALIGNED_SIZE {
                return Err(VisionError::BadImage(format!(
                    "aligned face must be {s}x{s}, got {}x{}",
                    face.width, face.height
                )));
            }
            // SFace was trained on RGB; the frame is BGR, so swap here (feeding BGR costs ~0.1 cosine).
            for (i, px) in face.data.chunks_exact(3).enumerate() {
                let (y, x) = (i / s, i % s);
                input[[n, 0, y, x]] = px[2] as f32;
                input[[n, 1, y, x]] = px[1] as f32;
                input[[n, 2, y, x]] = px[0] as f32;
            }
        }
        let outputs = run_single(&mut self.session, &self.input_name, &input)?;
        let (_, data) = outputs[0]
            .try_extract_tensor::<f32>()
            .map_err(|e| VisionError::Inference(e.to_string()))?;
        if data.len() != faces.len() * EMBEDDING_DIM {
            return Err(VisionError::Model(format!(
                "SFace output has {} values for {} faces, expected {EMBEDDING_DIM} each",
                data.len(),
                faces.len()
            )));
        }
        Ok(data
            .chunks_exact(EMBEDDING_DIM)
            .map(Embedding::from_raw)
            .collect())
    }
}

/// The image mirrored left to right.
pub fn mirror(img: &BgrImage) -> BgrImage {
    let w = img.width as usize;
    let mut data = Vec::with_capacity(img.data.len());
    for row in img.data.chunks_exact(w * 3) {
        for px in row.chunks_exact(3).rev() {
            data.extend_from_slice(px);
        }
    }
    BgrImage {
        width: img.width,
        height: img.height,
        data,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mirror_swaps_columns_and_keeps_pixels_whole() {
        let img = BgrImage::new(3, 2, (0..18).collect()).unwrap();
        let m = mirror(&img);
        assert_eq!(&m.data[0..3], &img.data[6..9]);
        assert_eq!(&m.data[9..12], &img.data[15..18]);
        assert_eq!(mirror(&m), img);
    }
}
