//! Boxes, non-maximum suppression and resizing shared by the detectors.

use crate::BgrImage;

/// An axis-aligned box, top-left corner plus size, in pixels.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Rect {
    pub x: f32,
    pub y: f32,
    pub w: f32,
    pub h: f32,
}

impl Rect {
    pub fn area(&self) -> f32 {
        self.w.max(0.0) * self.h.max(0.0)
    }

    /// Intersection over union in `[0, 1]`; `0` if either box is not [valid](Self::is_valid).
    pub fn iou(&self, o: &Rect) -> f32 {
        if !self.is_valid() || !o.is_valid() {
            return 0.0;
        }
        // f64 so that large (but finite) inputs cannot overflow areas to infinity.
        let (ax, ay, aw, ah) = (self.x as f64, self.y as f64, self.w as f64, self.h as f64);
        let (bx, by, bw, bh) = (o.x as f64, o.y as f64, o.w as f64, o.h as f64);
        let iw = (ax + aw).min(bx + bw) - ax.max(bx);
        let ih = (ay + ah).min(by + bh) - ay.max(by);
        if iw <= 0.0 || ih <= 0.0 {
            return 0.0;
        }
        let inter = iw * ih;
        let union = aw * ah + bw * bh - inter;
        if union > 0.0 {
            (inter / union).clamp(0.0, 1.0) as f32
        } else {
            0.0
        }
    }

    /// All fields finite and a strictly positive size.
    pub fn is_valid(&self) -> bool {
        [self.x, self.y, self.w, self.h]
            .iter()
            .all(|v| v.is_finite())
            && self.w > 0.0
            && self.h > 0.0
    }

    /// Middle of the bottom edge (image y grows downward): the feet of a standing person.
    pub fn bottom_center(&self) -> (f32, f32) {
        (self.x + self.w / 2.0, self.y + self.h)
    }

    pub fn center(&self) -> (f32, f32) {
        (self.x + self.w / 2.0, self.y + self.h / 2.0)
    }

    /// True when the point lies inside the box.
    pub fn contains(&self, p: (f32, f32)) -> bool {
        p.0 >= self.x && p.0 <= self.x + self.w && p.1 >= self.y && p.1 <= self.y + self.h
    }
}

/// Greedy NMS as OpenCV's `NMSBoxes` does it: candidates sorted by score (stable), a box is kept unless it
/// overlaps an already kept one by more than `iou`. Returns kept indices, best first.
pub fn nms(boxes: &[Rect], scores: &[f32], iou: f32, top_k: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..boxes.len()).collect();
    order.sort_by(|&a, &b| {
        scores[b]
            .partial_cmp(&scores[a])
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    let mut keep: Vec<usize> = Vec::new();
    for i in order {
        if keep.iter().all(|&k| boxes[k].iou(&boxes[i]) <= iou) {
            keep.push(i);
            if top_k > 0 && keep.len() >= top_k {
                break;
            }
        }
    }
    keep
}

/// Bilinear resize with OpenCV's `INTER_LINEAR` pixel-centre convention, used to shrink frames to a
/// detector's input size.
pub fn resize_bilinear(src: &BgrImage, w: u32, h: u32) -> BgrImage {
    if src.width == w && src.height == h {
        return src.clone();
    }
    let (sw, sh) = (src.width as usize, src.height as usize);
    let sx = sw as f32 / w as f32;
    let sy = sh as f32 / h as f32;
    let xs: Vec<(usize, usize, f32)> = (0..w as usize)
        .map(|x| {
            let fx = ((x as f32 + 0.5) * sx - 0.5).max(0.0);
            let x0 = (fx.floor() as usize).min(sw - 1);
            let x1 = (x0 + 1).min(sw - 1);
            (x0, x1, fx - x0 as f32)
        })
        .collect();
    let mut out = vec![0u8; w as usize * h as usize * 3];
    for y in 0..h as usize {
        let fy = ((y as f32 + 0.5) * sy - 0.5).max(0.0);
        let y0 = (fy.floor() as usize).min(sh - 1);
        let y1 = (y0 + 1).min(sh - 1);
        let wy = fy - y0 as f32;
        let r0 = &src.data[y0 * sw * 3..(y0 + 1) * sw * 3];
        let r1 = &src.data[y1 * sw * 3..(y1 + 1) * sw * 3];
        let dst = &mut out[y * w as usize * 3..(y + 1) * w as usize * 3];
        for (x, &(x0, x1, wx)) in xs.iter().enumerate() {
            for c in 0..3 {
                let a = r0[x0 * 3 + c] as f32 * (1.0 - wx) + r0[x1 * 3 + c] as f32 * wx;
                let b = r1[x0 * 3 + c] as f32 * (1.0 - wx) + r1[x1 * 3 + c] as f32 * wx;
                dst[x * 3 + c] = (a * (1.0 - wy) + b * wy).round().clamp(0.0, 255.0) as u8;
            }
        }
    }
    BgrImage {
        width: w,
        height: h,
        data: out,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iou_of_identical_and_disjoint_boxes() {
        let a = Rect {
            x: 0.0,
            y: 0.0,
            w: 10.0,
            h: 10.0,
        };
        assert!((a.iou(&a) - 1.0).abs() < 1e-6);
        let b = Rect { x: 20.0, ..a };
        assert_eq!(a.iou(&b), 0.0);
        let c = Rect { x: 5.0, ..a };
        assert!((a.iou(&c) - 50.0 / 150.0).abs() < 1e-6);
    }

    #[test]
    fn nms_keeps_best_of_overlapping() {
        let a = Rect {
            x: 0.0,
            y: 0.0,
            w: 10.0,
            h: 10.0,
        };
        let b = Rect { x: 1.0, ..a };
        let c = Rect { x: 50.0, ..a };
        let keep = nms(&[a, b, c], &[0.8, 0.9, 0.5], 0.3, 0);
        assert_eq!(keep, vec![1, 2]);
    }

    #[test]
    fn resize_keeps_flat_colour() {
        let img = BgrImage::new(8, 6, [10u8, 20, 30].repeat(48)).unwrap();
        let r = resize_bilinear(&img, 4, 3);
        assert_eq!(r.data, [10u8, 20, 30].repeat(12));
    }
}
