//! NanoDet-Plus person detector (COCO class 0) at 416x416.

use std::path::Path;

use ndarray::Array4;
use ort::session::Session;

use crate::geometry::{nms, resize_into_planes, Planes, Rect};
use crate::runtime::{first_input, run_single, Provider, Runtime};
use crate::{BgrImage, VisionError};

const INPUT: u32 = 416;
const STRIDES: [u32; 3] = [8, 16, 32];
const MEAN: [f32; 3] = [103.53, 116.28, 123.675];
const STD: [f32; 3] = [57.375, 57.12, 58.395];
const BINS: usize = 8;
const CLASSES: usize = 80;
const PERSON: usize = 0;

#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PersonDetection {
    pub bbox: Rect,
    pub score: f32,
}

#[derive(Clone, Debug)]
pub struct PersonDetectorOptions {
    pub score_threshold: f32,
    pub nms_threshold: f32,
}

impl Default for PersonDetectorOptions {
    fn default() -> Self {
        Self {
            score_threshold: 0.35,
            nms_threshold: 0.6,
        }
    }
}

pub struct PersonDetector {
    session: Session,
    provider: Provider,
    input_name: String,
    /// Output names per stride (scores, box distributions), found by shape so a re-exported model still works.
    outputs: Vec<(String, String)>,
    pub options: PersonDetectorOptions,
}

/// Where the frame sits inside the 416x416 letterbox.
struct Letterbox {
    left: u32,
    top: u32,
    scale_x: f32,
    scale_y: f32,
}

impl PersonDetector {
    pub fn load(
        rt: &Runtime,
        model: &Path,
        options: PersonDetectorOptions,
    ) -> Result<Self, VisionError> {
        let (session, provider) = rt.session(model, &[])?;
        let (input_name, _) = first_input(&session, model)?;
        let mut outputs = Vec::new();
        for s in STRIDES {
            let n = ((INPUT / s) * (INPUT / s)) as i64;
            let find = |last: i64| {
                session
                    .outputs()
                    .iter()
                    .find(|o| {
                        o.dtype().tensor_shape().is_some_and(|sh| {
                            let d: Vec<i64> = sh.iter().copied().collect();
                            d.len() == 3 && d[1] == n && d[2] == last
                        })
                    })
                    .map(|o| o.name().to_string())
            };
            match (find(CLASSES as i64), find((4 * BINS) as i64)) {
                (Some(c), Some(b)) => outputs.push((c, b)),
                _ => {
                    return Err(VisionError::Model(format!(
                        "{}: no NanoDet outputs of shape [1,{n},80] and [1,{n},32] for stride {s}",
                        model.display()
                    )))
                }
            }
        }
        Ok(Self {
            session,
            provider,
            input_name,
            outputs,
            options,
        })
    }

    pub fn provider(&self) -> Provider {
        self.provider
    }

    pub fn detect(&mut self, img: &BgrImage) -> Result<Vec<PersonDetection>, VisionError> {
        let (input, lb) = letterbox(img);
        let outputs = run_single(&mut self.session, &self.input_name, &input)?;
        let mut boxes = Vec::new();
        let mut scores = Vec::new();
        for (si, s) in STRIDES.iter().enumerate() {
            let (cls_name, box_name) = &self.outputs[si];
            let extract = |name: &str| -> Result<&[f32], VisionError> {
                outputs
                    .get(name)
                    .ok_or_else(|| VisionError::Model(format!("NanoDet output {name} missing")))?
                    .try_extract_tensor::<f32>()
                    .map(|(_, d)| d)
                    .map_err(|e| VisionError::Inference(e.to_string()))
            };
            let cls = extract(cls_name)?;
            let dist = extract(box_name)?;
            let cols = (INPUT / s) as usize;
            let sf = *s as f32;
            for i in 0..cls.len() / CLASSES {
                let row = &cls[i * CLASSES..(i + 1) * CLASSES];
                // Class = argmax over the 80 scores; only cells whose best class is a person count.
                let (best, score) = row.iter().enumerate().fold((0, f32::MIN), |acc, (k, &v)| {
                    if v > acc.1 {
                        (k, v)
                    } else {
                        acc
                    }
                });
                if best != PERSON || score < self.options.score_threshold {
                    continue;
                }
                let (r, c) = (i / cols, i % cols);
                let cx = c as f32 * sf + 0.5 * (sf - 1.0);
                let cy = r as f32 * sf + 0.5 * (sf - 1.0);
                let d = &dist[i * 4 * BINS..(i + 1) * 4 * BINS];
                let side = |k: usize| expectation(&d[k * BINS..(k + 1) * BINS]) * sf;
                let max = INPUT as f32;
                let x1 = (cx - side(0)).clamp(0.0, max);
                let y1 = (cy - side(1)).clamp(0.0, max);
                let x2 = (cx + side(2)).clamp(0.0, max);
                let y2 = (cy + side(3)).clamp(0.0, max);
                // Undo the letterbox into frame pixels.
                let fx1 = (x1 - lb.left as f32) * lb.scale_x;
                let fy1 = (y1 - lb.top as f32) * lb.scale_y;
                let fx2 = (x2 - lb.left as f32) * lb.scale_x;
                let fy2 = (y2 - lb.top as f32) * lb.scale_y;
                let (iw, ih) = (img.width as f32, img.height as f32);
                let (fx1, fy1) = (fx1.clamp(0.0, iw), fy1.clamp(0.0, ih));
                let (fx2, fy2) = (fx2.clamp(0.0, iw), fy2.clamp(0.0, ih));
                if fx2 <= fx1 || fy2 <= fy1 {
                    continue;
                }
                boxes.push(Rect {
                    x: fx1,
                    y: fy1,
                    w: fx2 - fx1,
                    h: fy2 - fy1,
                });
                scores.push(score);
            }
        }
        let keep = nms(&boxes, &scores, self.options.nms_threshold, 0);
        Ok(keep
            .into_iter()
            .map(|i| PersonDetection {
                bbox: boxes[i],
                score: scores[i],
            })
            .collect())
    }
}

/// Softmax over the bins, then the expected bin index.
fn expectation(bins: &[f32]) -> f32 {
    let m = bins.iter().copied().fold(f32::MIN, f32::max);
    let mut sum = 0.0;
    let mut acc = 0.0;
    for (k, &v) in bins.iter().enumerate() {
        let e = (v - m).exp();
        sum += e;
        acc += e * k as f32;
    }
    acc / sum
}

/// Centred letterbox as in OpenCV Zoo's demo: keep aspect, zero border, border normalised with the image.
fn letterbox(img: &BgrImage) -> (Array4<f32>, Letterbox) {
    let (w, h) = (img.width, img.height);
    let (nw, nh, left, top) = if h > w {
        let nw = ((INPUT as f32) * w as f32 / h as f32) as u32;
        (nw.max(1), INPUT, (INPUT - nw.max(1)) / 2, 0)
    } else if w > h {
        let nh = ((INPUT as f32) * h as f32 / w as f32) as u32;
        (INPUT, nh.max(1), 0, (INPUT - nh.max(1)) / 2)
    } else {
        (INPUT, INPUT, 0, 0)
    };
    let s = INPUT as usize;
    let mut input = Array4::<f32>::zeros((1, 3, s, s));
    if let Some(buf) = input.as_slice_mut() {
        let (p0, rest) = buf.split_at_mut(s * s);
        let (p1, p2) = rest.split_at_mut(s * s);
        let mut planes = [p0, p1, p2];
        for (c, plane) in planes.iter_mut().enumerate() {
            plane.fill((0.0 - MEAN[c]) / STD[c]);
        }
        // Scaled straight into the planes, normalised on the way (no intermediate image).
        resize_into_planes(
            img,
            nw,
            nh,
            &mut Planes {
                planes,
                stride: s,
                left: left as usize,
                top: top as usize,
                mean: MEAN,
                scale: STD.map(|d| 1.0 / d),
            },
        );
    }
    let lb = Letterbox {
        left,
        top,
        scale_x: w as f32 / nw as f32,
        scale_y: h as f32 / nh as f32,
    };
    (input, lb)
}
