//! Vision models for Checkpoint on ONNX Runtime: YuNet face detection with landmarks, SFace face embeddings,
//! NanoDet-Plus person detection, and the alignment and quality measures around them.
//!
//! Every model runs through [`runtime::Runtime`], which loads `libonnxruntime.so` at run time and picks the
//! execution provider (CPU, CUDA, TensorRT) from configuration.

pub mod align;
pub mod enrol;
pub mod geometry;
pub mod graph_edit;
pub mod guide;
pub mod image;
mod jpeg;
pub mod manifest;
pub mod nanodet;
pub mod quality;
pub mod runtime;
pub mod sface;
pub mod yunet;

pub use crate::geometry::Rect;
pub use crate::graph_edit::GraphEdit;
pub use crate::image::BgrImage;
pub use crate::nanodet::{PersonDetection, PersonDetector, PersonDetectorOptions};
pub use crate::runtime::{Provider, Runtime, RuntimeOptions};
pub use crate::sface::{Embedding, FaceEmbedder, EMBEDDING_DIM, SFACE_MATCH_THRESHOLD};
pub use crate::yunet::{DetectTimings, Face, FaceDetector, FaceDetectorOptions};

#[derive(Debug, thiserror::Error)]
pub enum VisionError {
    #[error("bad image: {0}")]
    BadImage(String),
    /// The header declares more pixels than [`image::MAX_IMAGE_PIXELS`]; refused before decoding.
    #[error("image too large: {width}x{height}, at most {max_pixels} pixels")]
    TooLarge {
        width: u64,
        height: u64,
        max_pixels: u64,
    },
    #[error("ONNX Runtime: {0}")]
    Runtime(String),
    #[error("model: {0}")]
    Model(String),
    #[error("inference failed: {0}")]
    Inference(String),
    #[error("configuration: {0}")]
    Config(String),
}
