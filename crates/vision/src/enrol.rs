//! Enrolment: one template from one photo of one person, or a reason the photo cannot be used. The agent's
//! local enrolment and the hub (watchlists, identity records, exam check-in) apply the same rules, so a photo
//! the desk accepts is one the matcher can use.

use crate::quality::frontalness;
use crate::{BgrImage, Embedding, Face, FaceDetector, FaceEmbedder, VisionError};

/// Smallest face (the box's shorter side) a template is made from: below this SFace's input is upscaled
/// blur, and a template from blur matches strangers.
pub const MIN_ENROL_FACE_PX: f32 = 40.0;
/// Faces at least this fraction of the largest face's height count as "another person in the photo";
/// smaller ones are background passers-by and are ignored.
pub const OTHER_FACE_RATIO: f32 = 0.5;
/// Heads turned further than this (frontalness score) give templates that match poorly.
pub const MIN_FRONTALNESS: f32 = 0.5;

/// Why a photo was refused, in words for the person at the desk.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EnrolError {
    #[error("the image cannot be read: {0}")]
    Unreadable(String),
    /// The image declares more pixels than any photo needs; refused before decoding.
    #[error("{0}")]
    TooLarge(String),
    #[error("no face found: use a photo where the face is clearly visible")]
    NoFace,
    #[error("{0} faces of similar size found: use a photo of the one person")]
    SeveralFaces(usize),
    #[error(
        "the face is {0:.0} px, at least {MIN_ENROL_FACE_PX:.0} px is needed: use a larger photo"
    )]
    TooSmall(f32),
    #[error("the head is turned too far (frontalness {0:.2}, at least {MIN_FRONTALNESS}): use a frontal photo")]
    NotFrontal(f32),
    #[error("face analysis failed: {0}")]
    Model(String),
}

impl EnrolError {
    /// A stable name for the refusal, for APIs and translated interfaces (messages may change, codes do not).
    pub fn code(&self) -> &'static str {
        match self {
            EnrolError::Unreadable(_) => "unreadable_image",
            EnrolError::TooLarge(_) => "image_too_large",
            EnrolError::NoFace => "no_face",
            EnrolError::SeveralFaces(_) => "several_faces",
            EnrolError::TooSmall(_) => "face_too_small",
            EnrolError::NotFrontal(_) => "face_not_frontal",
            EnrolError::Model(_) => "face_analysis_failed",
        }
    }
}

/// A usable face: the template and what was measured, for the desk's feedback.
#[derive(Debug, Clone)]
pub struct Enrolled {
    pub embedding: Embedding,
    pub face: Face,
    pub frontalness: f32,
}

/// Applies the enrolment rules to a decoded image.
pub fn enrol_image(
    img: &BgrImage,
    det: &mut FaceDetector,
    emb: &mut FaceEmbedder,
) -> Result<Enrolled, EnrolError> {
    let mut faces = det
        .detect(img)
        .map_err(|e| EnrolError::Model(e.to_string()))?;
    faces.sort_by(|a, b| b.bbox.h.total_cmp(&a.bbox.h));
    let Some(face) = faces.first().cloned() else {
        return Err(EnrolError::NoFace);
    };
    let others = faces[1..]
        .iter()
        .filter(|f| f.bbox.h >= face.bbox.h * OTHER_FACE_RATIO)
        .count();
    if others > 0 {
        return Err(EnrolError::SeveralFaces(others + 1));
    }
    let side = face.bbox.w.min(face.bbox.h);
    if side < MIN_ENROL_FACE_PX {
        return Err(EnrolError::TooSmall(side));
    }
    let front = frontalness(&face);
    if front < MIN_FRONTALNESS {
        return Err(EnrolError::NotFrontal(front));
    }
    let embedding = emb
        .embed_fused(img, &face.landmarks)
        .map_err(|e| EnrolError::Model(e.to_string()))?;
    Ok(Enrolled {
        embedding,
        face,
        frontalness: front,
    })
}

/// [`enrol_image`] on encoded bytes (JPEG or PNG).
pub fn enrol_bytes(
    bytes: &[u8],
    det: &mut FaceDetector,
    emb: &mut FaceEmbedder,
) -> Result<Enrolled, EnrolError> {
    let img = BgrImage::decode(bytes).map_err(|e| match e {
        VisionError::TooLarge { .. } => EnrolError::TooLarge(e.to_string()),
        other => EnrolError::Unreadable(other.to_string()),
    })?;
    enrol_image(&img, det, emb)
}
