//! YuNet face detector: boxes, five landmarks and a score per face.
//!
//! Pre- and post-processing follow OpenCV's `FaceDetectorYN` exactly (zero padding to a multiple of 32, the
//! sqrt(cls*obj) score, NMS over integer rectangles) so results agree with OpenCV's reference pipeline.

use std::path::Path;
use std::time::Instant;

use ndarray::Array4;
use ort::session::Session;

use crate::geometry::{nms, resize_into_planes, Planes, Rect};
use crate::runtime::{first_input, run_single, Provider, Runtime};
use crate::{BgrImage, VisionError};

/// One detected face. Landmarks: right eye, left eye, nose tip, right and left mouth corner (the subject's
/// right, which is the image's left).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Face {
    pub bbox: Rect,
    pub score: f32,
    pub landmarks: [[f32; 2]; 5],
}

#[derive(Clone, Debug)]
pub struct FaceDetectorOptions {
    /// Faces scoring below this are discarded (OpenCV's default is 0.9; 0.6 keeps harder faces).
    pub score_threshold: f32,
    pub nms_threshold: f32,
    /// At most this many faces per image (0 = unlimited).
    pub top_k: usize,
}

impl Default for FaceDetectorOptions {
    fn default() -> Self {
        Self {
            score_threshold: 0.6,
            nms_threshold: 0.3,
            top_k: 5000,
        }
    }
}

pub struct FaceDetector {
    session: Session,
    provider: Provider,
    input_name: String,
    /// Fixed (width, height) when the model has a static input shape (the 2023mar file).
    fixed_input: Option<(u32, u32)>,
    pub options: FaceDetectorOptions,
    /// The input tensor, kept between calls: video frames keep their size, and a fresh 6 MB zeroed tensor
    /// per frame cost more than filling it. Its padding (right and bottom) is never written, so stays zero.
    input: Option<Array4<f32>>,
    /// The image size the kept tensor was last filled from.
    input_from: (u32, u32),
    timings: DetectTimings,
}

/// Where the time of the last detection went, milliseconds: scaling the frame into the input tensor, the
/// network, decoding its outputs and NMS. The pre- and post-processing should stay well under the network's
/// own time (`checkpoint-bench models` prints them).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct DetectTimings {
    pub prepare_ms: f64,
    pub infer_ms: f64,
    pub post_ms: f64,
}

const STRIDES: [u32; 3] = [8, 16, 32];

impl FaceDetector {
    pub fn load(
        rt: &Runtime,
        model: &Path,
        options: FaceDetectorOptions,
    ) -> Result<Self, VisionError> {
        let (session, provider) = rt.session(model, &[])?;
        let (input_name, d) = first_input(&session, model)?;
        let fixed_input =
            (d.len() == 4 && d[2] > 0 && d[3] > 0).then(|| (d[3] as u32, d[2] as u32));
        Ok(Self {
            session,
            provider,
            input_name,
            fixed_input,
            options,
            input: None,
            input_from: (0, 0),
            timings: DetectTimings::default(),
        })
    }

    /// Where the time of the last [`detect`](Self::detect) or [`detect_fit`](Self::detect_fit) went.
    pub fn last_timings(&self) -> DetectTimings {
        self.timings
    }

    pub fn provider(&self) -> Provider {
        self.provider
    }

    /// Detects faces at the image's own resolution (padded to a multiple of 32), as OpenCV does when the input
    /// size is set to the image size. Images larger than a fixed-input model are scaled to fit.
    pub fn detect(&mut self, img: &BgrImage) -> Result<Vec<Face>, VisionError> {
        match self.fixed_input {
            Some((fw, fh)) => self.detect_fit(img, fw.max(fh)),
            None => self.detect_native(img),
        }
    }

    /// Detects on a copy scaled so its longer side is at most `max_side`, then maps results back. Use this on
    /// video frames: detection cost grows with the pixel count, and faces of interest at a checkpoint are large
    /// enough to survive the shrink.
    pub fn detect_fit(&mut self, img: &BgrImage, max_side: u32) -> Result<Vec<Face>, VisionError> {
        let long = img.width.max(img.height);
        let (w, h, scale) = if let Some((fw, fh)) = self.fixed_input {
            let s = (fw as f32 / img.width as f32).min(fh as f32 / img.height as f32);
            (
                (img.width as f32 * s).round() as u32,
                (img.height as f32 * s).round() as u32,
                s,
            )
        } else if long > max_side && max_side > 0 {
            let s = max_side as f32 / long as f32;
            (
                (img.width as f32 * s).round().max(1.0) as u32,
                (img.height as f32 * s).round().max(1.0) as u32,
                s,
            )
        } else {
            return self.detect_native(img);
        };
        let mut faces = self.detect_scaled(img, w.max(1), h.max(1))?;
        let inv = 1.0 / scale;
        for f in &mut faces {
            f.bbox = Rect {
                x: f.bbox.x * inv,
                y: f.bbox.y * inv,
                w: f.bbox.w * inv,
                h: f.bbox.h * inv,
            };
            for l in &mut f.landmarks {
                l[0] *= inv;
                l[1] *= inv;
            }
        }
        Ok(faces)
    }

    fn detect_native(&mut self, img: &BgrImage) -> Result<Vec<Face>, VisionError> {
        self.detect_scaled(img, img.width, img.height)
    }

    /// Detects on `img` scaled to `w` x `h` (the network's coordinates), scaling it straight into the input
    /// tensor.
    fn detect_scaled(&mut self, img: &BgrImage, w: u32, h: u32) -> Result<Vec<Face>, VisionError> {
        let t = Instant::now();
        self.timings = DetectTimings::default();
        let (pw, ph) = match self.fixed_input {
            Some(f) => f,
            None => (w.div_ceil(32) * 32, h.div_ceil(32) * 32),
        };
        if w > pw || h > ph {
            return Err(VisionError::BadImage(format!(
                "{w}x{h} image does not fit the detector input {pw}x{ph}"
            )));
        }
        let shape = (1, 3, ph as usize, pw as usize);
        let mut input = match self.input.take() {
            Some(a) if a.dim() == shape && a.is_standard_layout() => a,
            _ => Array4::<f32>::zeros(shape),
        };
        // A smaller image than last time (same padded size) would leave old pixels in the padding.
        if self.input_from != (w, h) {
            input.fill(0.0);
            self.input_from = (w, h);
        }
        {
            let plane = (pw * ph) as usize;
            let stride = pw as usize;
            let buf = input
                .as_slice_mut()
                .ok_or_else(|| VisionError::Model("non-contiguous input".into()))?;
            let (b, rest) = buf.split_at_mut(plane);
            let (g, r) = rest.split_at_mut(plane);
            if (w, h) == (img.width, img.height) {
                let len = w as usize * 3;
                for (y, row) in img.data.chunks_exact(len).take(h as usize).enumerate() {
                    let o = y * stride;
                    let (b, g, r) = (&mut b[o..o + w as usize], &mut g[o..], &mut r[o..]);
                    for (((px, b), g), r) in row.chunks_exact(3).zip(b).zip(g).zip(r) {
                        *b = f32::from(px[0]);
                        *g = f32::from(px[1]);
                        *r = f32::from(px[2]);
                    }
                }
            } else {
                resize_into_planes(
                    img,
                    w,
                    h,
                    &mut Planes {
                        planes: [b, g, r],
                        stride,
                        left: 0,
                        top: 0,
                        mean: [0.0; 3],
                        scale: [1.0; 3],
                    },
                );
            }
        }
        self.timings.prepare_ms = ms(t);
        let t = Instant::now();
        let outputs = run_single(&mut self.session, &self.input_name, &input);
        self.input = Some(input);
        let outputs = outputs?;
        self.timings.infer_ms = ms(t);
        let t = Instant::now();

        let mut faces: Vec<Face> = Vec::new();
        let thr = self.options.score_threshold;
        for s in STRIDES {
            let get = |kind: &str| -> Result<&[f32], VisionError> {
                let name = format!("{kind}_{s}");
                let v = outputs
                    .get(&name)
                    .ok_or_else(|| VisionError::Model(format!("YuNet output {name} missing")))?;
                v.try_extract_tensor::<f32>()
                    .map(|(_, d)| d)
                    .map_err(|e| VisionError::Inference(format!("{name}: {e}")))
            };
            let (cls, obj, bbox, kps) = (get("cls")?, get("obj")?, get("bbox")?, get("kps")?);
            let cols = (pw / s) as usize;
            let rows = (ph / s) as usize;
            let n = cols * rows;
            if cls.len() < n || obj.len() < n || bbox.len() < n * 4 || kps.len() < n * 10 {
                return Err(VisionError::Model(format!(
                    "YuNet stride {s} outputs too short for {pw}x{ph}"
                )));
            }
            let sf = s as f32;
            for r in 0..rows {
                for c in 0..cols {
                    let i = r * cols + c;
                    let score = (cls[i].clamp(0.0, 1.0) * obj[i].clamp(0.0, 1.0)).sqrt();
                    if score < thr {
                        continue;
                    }
                    let cx = (c as f32 + bbox[i * 4]) * sf;
                    let cy = (r as f32 + bbox[i * 4 + 1]) * sf;
                    let w = bbox[i * 4 + 2].exp() * sf;
                    let h = bbox[i * 4 + 3].exp() * sf;
                    let mut landmarks = [[0f32; 2]; 5];
                    for (k, l) in landmarks.iter_mut().enumerate() {
                        l[0] = (kps[i * 10 + 2 * k] + c as f32) * sf;
                        l[1] = (kps[i * 10 + 2 * k + 1] + r as f32) * sf;
                    }
                    faces.push(Face {
                        bbox: Rect {
                            x: cx - w / 2.0,
                            y: cy - h / 2.0,
                            w,
                            h,
                        },
                        score,
                        landmarks,
                    });
                }
            }
        }
        // OpenCV runs NMS on integer rectangles; doing the same keeps borderline suppressions identical.
        let int_boxes: Vec<Rect> = faces
            .iter()
            .map(|f| Rect {
                x: f.bbox.x.trunc(),
                y: f.bbox.y.trunc(),
                w: f.bbox.w.trunc(),
                h: f.bbox.h.trunc(),
            })
            .collect();
        let scores: Vec<f32> = faces.iter().map(|f| f.score).collect();
        let keep = nms(
            &int_boxes,
            &scores,
            self.options.nms_threshold,
            self.options.top_k,
        );
        let kept = keep.into_iter().map(|i| faces[i].clone()).collect();
        self.timings.post_ms = ms(t);
        Ok(kept)
    }
}

fn ms(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1000.0
}
