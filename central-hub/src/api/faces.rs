//! `POST /api/faces/guide`: guidance for a live camera frame at a desk (face inside the oval, closer, hold
//! still, too dark), from the same face checks the 1:1 verification applies, so the photo the desk then takes
//! is one the check accepts. The frame is looked at and dropped: not stored, not compared with anyone, not
//! audited (no record is read).

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use utoipa::OpenApi;

use super::{photo_error, ApiError, ApiJson, ApiResult, AppState, ErrorBody, Session};
use crate::auth::access::RECORD_VERIFIERS;

#[derive(OpenApi)]
#[openapi(paths(guide))]
pub struct Doc;

pub fn routes() -> Router<AppState> {
    Router::new().route("/api/faces/guide", post(guide))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GuideRequest {
    /// One camera frame, JPEG, base64; at most 1 MiB decoded (scale it to about 640 px).
    pub frame_jpeg_b64: String,
}

/// The face in the frame, as fractions of the frame's width and height.
#[derive(Serialize, utoipa::ToSchema)]
pub struct FaceBox {
    pub x: f32,
    pub y: f32,
    pub w: f32,
    pub h: f32,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct GuideResponse {
    /// The frame would make a good photo.
    pub ready: bool,
    /// What to change, when not ready: `no_face`, `several_faces`, `face_too_small`, `move_closer`,
    /// `move_back`, `off_centre`, `face_not_frontal`, `too_dark`, `too_bright`, `blurry`.
    pub problem: Option<String>,
    pub face: Option<FaceBox>,
    /// Mean luma of the face, 0-255.
    pub brightness: f32,
    /// Variance of the Laplacian of the face's luma (focus and motion blur).
    pub sharpness: f32,
}

/// Guidance for one live frame (exam staff and record verifiers). 422 only for a frame that cannot be read.
#[utoipa::path(post, path = "/api/faces/guide", tag = "records", security(("bearer" = [])),
    request_body = GuideRequest,
    responses((status = 200, body = GuideResponse), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 413, body = ErrorBody), (status = 422, body = ErrorBody),
              (status = 503, body = ErrorBody)))]
pub async fn guide(
    State(s): State<AppState>,
    session: Session,
    ApiJson(req): ApiJson<GuideRequest>,
) -> ApiResult<Json<GuideResponse>> {
    session.require(RECORD_VERIFIERS)?;
    let frame = base64::engine::general_purpose::STANDARD
        .decode(req.frame_jpeg_b64.trim().as_bytes())
        .map_err(|e| ApiError::bad_request(format!("frame_jpeg_b64 is not base64: {e}")))?;
    let g = s
        .faces()?
        .guide(frame)
        .await
        .map_err(|e| photo_error(&e, e.to_string(), None))?;
    Ok(Json(GuideResponse {
        ready: g.problem.is_none(),
        problem: g.problem.map(str::to_string),
        face: g.face.map(|r| FaceBox {
            x: r.x,
            y: r.y,
            w: r.w,
            h: r.h,
        }),
        brightness: g.brightness,
        sharpness: g.sharpness,
    }))
}
