//! Vision models for Checkpoint on ONNX Runtime.
pub mod image;
pub use crate::image::BgrImage;

#[derive(Debug, thiserror::Error)]
pub enum VisionError {
    #[error("bad image: {0}")]
    BadImage(String),
}
