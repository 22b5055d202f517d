//! Live-capture guidance: what the person at a phone's front camera should change before the photo for a 1:1
//! check is taken. The rules are the enrolment rules (`enrol`) with headroom, so that a frame judged ready
//! gives a photo the check accepts, plus framing, light and focus, which a desk can fix and a photo cannot.
//! Pure: the caller runs the detector and passes its faces.

use crate::enrol::{MIN_ENROL_FACE_PX, MIN_FRONTALNESS, OTHER_FACE_RATIO};
use crate::quality::frontalness;
use crate::{BgrImage, Face, Rect};

/// The face's height as a fraction of the frame's: below, "come closer"; above, "move back" (a face
/// cut by the frame's edge loses landmarks).
pub const MIN_FACE_HEIGHT: f32 = 0.22;
pub const MAX_FACE_HEIGHT: f32 = 0.80;
/// How far the face's centre may be from the oval's (the frame's centre, slightly above), as fractions of the
/// frame's width and height.
pub const MAX_OFF_CENTRE_X: f32 = 0.17;
pub const MAX_OFF_CENTRE_Y: f32 = 0.20;
const OVAL_CENTRE_Y: f32 = 0.45;
/// Mean luma of the face box, 0-255: below is underexposed (a face against a window, a dark corridor),
/// above is washed out.
pub const MIN_BRIGHTNESS: f32 = 70.0;
pub const MAX_BRIGHTNESS: f32 = 225.0;
/// Variance of the Laplacian of the face box's luma: below is motion blur or a lens out of focus. LFW faces in
/// a phone-sized frame measure 97 at the 10th percentile (median 174); a 7×7 box blur of them, 12 at most
/// (`crates/vision/tests/guide.rs`).
pub const MIN_SHARPNESS: f32 = 40.0;

/// What to tell the person, and what was measured.
#[derive(Clone, Debug, PartialEq)]
pub struct Guidance {
    /// None when the frame is ready; otherwise a stable code: `no_face`, `several_faces`, `face_too_small`,
    /// `move_closer`, `move_back`, `off_centre`, `face_not_frontal`, `too_dark`, `too_bright`, `blurry`.
    pub problem: Option<&'static str>,
    /// The largest face, as fractions of the frame (for the oval on screen).
    pub face: Option<Rect>,
    pub brightness: f32,
    pub sharpness: f32,
}

/// Judges one frame and the faces found in it.
pub fn guide(img: &BgrImage, faces: &[Face]) -> Guidance {
    let mut sorted: Vec<&Face> = faces.iter().collect();
    sorted.sort_by(|a, b| b.bbox.h.total_cmp(&a.bbox.h));
    let Some(face) = sorted.first().copied() else {
        return Guidance {
            problem: Some("no_face"),
            face: None,
            brightness: 0.0,
            sharpness: 0.0,
        };
    };
    let (w, h) = (img.width as f32, img.height as f32);
    let b = clip(&face.bbox, w, h);
    let (brightness, sharpness) = luma_stats(img, &b);
    let rel = Rect {
        x: b.x / w,
        y: b.y / h,
        w: b.w / w,
        h: b.h / h,
    };
    let centre = (rel.x + rel.w / 2.0, rel.y + rel.h / 2.0);
    let others = sorted[1..]
        .iter()
        .filter(|f| f.bbox.h >= face.bbox.h * OTHER_FACE_RATIO)
        .count();
    let problem = if others > 0 {
        Some("several_faces")
    } else if face.bbox.w.min(face.bbox.h) < MIN_ENROL_FACE_PX * 1.5 {
        Some("face_too_small")
    } else if rel.h < MIN_FACE_HEIGHT {
        Some("move_closer")
    } else if rel.h > MAX_FACE_HEIGHT {
        Some("move_back")
    } else if (centre.0 - 0.5).abs() > MAX_OFF_CENTRE_X
        || (centre.1 - OVAL_CENTRE_Y).abs() > MAX_OFF_CENTRE_Y
    {
        Some("off_centre")
    } else if frontalness(face) < MIN_FRONTALNESS {
        Some("face_not_frontal")
    } else if brightness < MIN_BRIGHTNESS {
        Some("too_dark")
    } else if brightness > MAX_BRIGHTNESS {
        Some("too_bright")
    } else if sharpness < MIN_SHARPNESS {
        Some("blurry")
    } else {
        None
    };
    Guidance {
        problem,
        face: Some(rel),
        brightness,
        sharpness,
    }
}

fn clip(r: &Rect, w: f32, h: f32) -> Rect {
    let x0 = r.x.clamp(0.0, w);
    let y0 = r.y.clamp(0.0, h);
    let x1 = (r.x + r.w).clamp(0.0, w);
    let y1 = (r.y + r.h).clamp(0.0, h);
    Rect {
        x: x0,
        y: y0,
        w: x1 - x0,
        h: y1 - y0,
    }
}

/// Mean luma and the variance of its 4-neighbour Laplacian inside `r` (pixels).
fn luma_stats(img: &BgrImage, r: &Rect) -> (f32, f32) {
    let (x0, y0) = (r.x as usize, r.y as usize);
    let (x1, y1) = ((r.x + r.w) as usize, (r.y + r.h) as usize);
    let width = img.width as usize;
    let luma = |x: usize, y: usize| {
        let i = (y * width + x) * 3;
        let (b, g, r) = (
            img.data[i] as f32,
            img.data[i + 1] as f32,
            img.data[i + 2] as f32,
        );
        0.114 * b + 0.587 * g + 0.299 * r
    };
    if x1 <= x0 + 2 || y1 <= y0 + 2 || img.data.len() < width * img.height as usize * 3 {
        return (0.0, 0.0);
    }
    let (mut sum, mut n) = (0.0f64, 0usize);
    for y in y0..y1 {
        for x in x0..x1 {
            sum += luma(x, y) as f64;
            n += 1;
        }
    }
    let (mut lap_sum, mut lap_sq, mut m) = (0.0f64, 0.0f64, 0usize);
    for y in y0 + 1..y1 - 1 {
        for x in x0 + 1..x1 - 1 {
            let l = (luma(x - 1, y) + luma(x + 1, y) + luma(x, y - 1) + luma(x, y + 1)
                - 4.0 * luma(x, y)) as f64;
            lap_sum += l;
            lap_sq += l * l;
            m += 1;
        }
    }
    let mean_lap = lap_sum / m as f64;
    (
        (sum / n as f64) as f32,
        (lap_sq / m as f64 - mean_lap * mean_lap) as f32,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A frontal face of `side` px centred at (cx, cy).
    fn face_at(cx: f32, cy: f32, side: f32) -> Face {
        let (x, y) = (cx - side / 2.0, cy - side / 2.0);
        Face {
            bbox: Rect {
                x,
                y,
                w: side,
                h: side,
            },
            score: 0.95,
            landmarks: [
                [x + side * 0.3, y + side * 0.4],
                [x + side * 0.7, y + side * 0.4],
                [x + side * 0.5, y + side * 0.6],
                [x + side * 0.35, y + side * 0.8],
                [x + side * 0.65, y + side * 0.8],
            ],
        }
    }

    /// A 640×480 frame of fine texture (sharp) at the given mean grey.
    fn frame(grey: u8, sharp: bool) -> BgrImage {
        let (w, h) = (640u32, 480u32);
        let mut data = Vec::with_capacity((w * h * 3) as usize);
        for y in 0..h {
            for x in 0..w {
                let v = if sharp && (x / 2 + y / 2) % 2 == 0 {
                    grey.saturating_add(30)
                } else if sharp {
                    grey.saturating_sub(30)
                } else {
                    grey
                };
                data.extend_from_slice(&[v, v, v]);
            }
        }
        BgrImage {
            width: w,
            height: h,
            data,
        }
    }

    #[test]
    fn each_problem_is_named_and_a_good_frame_is_ready() {
        let good = frame(128, true);
        let ok = guide(&good, &[face_at(320.0, 216.0, 200.0)]);
        assert_eq!(ok.problem, None, "{ok:?}");
        let f = ok.face.unwrap();
        assert!((f.x + f.w / 2.0 - 0.5).abs() < 0.01);
        let cases: Vec<(&str, BgrImage, Vec<Face>)> = vec![
            ("no_face", frame(128, true), vec![]),
            (
                "several_faces",
                frame(128, true),
                vec![face_at(320.0, 216.0, 200.0), face_at(100.0, 216.0, 150.0)],
            ),
            (
                "face_too_small",
                frame(128, true),
                vec![face_at(320.0, 216.0, 50.0)],
            ),
            (
                "move_closer",
                frame(128, true),
                vec![face_at(320.0, 216.0, 90.0)],
            ),
            (
                "move_back",
                frame(128, true),
                vec![face_at(320.0, 240.0, 420.0)],
            ),
            (
                "off_centre",
                frame(128, true),
                vec![face_at(120.0, 216.0, 200.0)],
            ),
            (
                "too_dark",
                frame(40, true),
                vec![face_at(320.0, 216.0, 200.0)],
            ),
            (
                "too_bright",
                frame(240, true),
                vec![face_at(320.0, 216.0, 200.0)],
            ),
            (
                "blurry",
                frame(128, false),
                vec![face_at(320.0, 216.0, 200.0)],
            ),
        ];
        for (want, img, faces) in cases {
            assert_eq!(guide(&img, &faces).problem, Some(want), "{want}");
        }
        // A small passer-by behind the person is not "several faces".
        let far = guide(
            &good,
            &[face_at(320.0, 216.0, 200.0), face_at(80.0, 80.0, 60.0)],
        );
        assert_eq!(far.problem, None);
        // A head turned away.
        let mut turned = face_at(320.0, 216.0, 200.0);
        turned.landmarks[2][0] = turned.landmarks[1][0];
        assert_eq!(guide(&good, &[turned]).problem, Some("face_not_frontal"));
    }

    #[test]
    fn a_box_outside_the_frame_is_clipped_not_a_panic() {
        let img = frame(128, true);
        let g = guide(&img, &[face_at(630.0, 470.0, 300.0)]);
        assert!(g.problem.is_some());
        let g = guide(&img, &[face_at(-500.0, -500.0, 100.0)]);
        assert!(g.problem.is_some());
    }
}
