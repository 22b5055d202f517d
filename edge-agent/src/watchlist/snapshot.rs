//! The alert snapshot: the one picture of a face that ever leaves the agent, and only for a candidate match.
//! The crop is the face with a margin (an operator needs hair, ears and chin to judge a match), scaled down
//! so alerts stay small on a site's uplink.

use std::io::Cursor;

use checkpoint_vision::{BgrImage, Rect};
use image::codecs::jpeg::JpegEncoder;
use image::imageops::FilterType;
use image::RgbImage;

/// Margin around the detector's face box, as a fraction of its size on each side.
const MARGIN: f32 = 0.4;

#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("face box {0:?} lies outside the {1}x{2} frame")]
    OutOfFrame(Rect, u32, u32),
    #[error("JPEG encoding failed: {0}")]
    Encode(#[from] image::ImageError),
}

/// JPEG of the face in `bbox` with a margin, longest side at most `max_side` pixels.
pub fn face_snapshot(
    img: &BgrImage,
    bbox: &Rect,
    max_side: u32,
    quality: u8,
) -> Result<Vec<u8>, SnapshotError> {
    let mx = bbox.w * MARGIN;
    let my = bbox.h * MARGIN;
    let x0 = (bbox.x - mx).floor().max(0.0);
    let y0 = (bbox.y - my).floor().max(0.0);
    let x1 = (bbox.x + bbox.w + mx).ceil().min(img.width as f32);
    let y1 = (bbox.y + bbox.h + my).ceil().min(img.height as f32);
    if !(x1 - x0 >= 1.0 && y1 - y0 >= 1.0) {
        return Err(SnapshotError::OutOfFrame(*bbox, img.width, img.height));
    }
    let (x0, y0, w, h) = (x0 as u32, y0 as u32, (x1 - x0) as u32, (y1 - y0) as u32);
    let mut crop = RgbImage::new(w, h);
    for y in 0..h {
        let row = ((y0 + y) as usize * img.width as usize + x0 as usize) * 3;
        for x in 0..w {
            let p = &img.data[row + x as usize * 3..row + x as usize * 3 + 3];
            crop.put_pixel(x, y, image::Rgb([p[2], p[1], p[0]]));
        }
    }
    let side = w.max(h);
    let crop = if side > max_side {
        let s = max_side as f32 / side as f32;
        let (nw, nh) = (
            ((w as f32 * s).round() as u32).max(1),
            ((h as f32 * s).round() as u32).max(1),
        );
        image::imageops::resize(&crop, nw, nh, FilterType::Triangle)
    } else {
        crop
    };
    let mut out = Cursor::new(Vec::new());
    JpegEncoder::new_with_quality(&mut out, quality.clamp(1, 100)).encode_image(&crop)?;
    Ok(out.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame() -> BgrImage {
        let (w, h) = (320u32, 240u32);
        let mut data = Vec::with_capacity((w * h * 3) as usize);
        for y in 0..h {
            for x in 0..w {
                // Blue grows to the right, red downwards: the crop must keep both (BGR to RGB done right).
                data.extend_from_slice(&[(x * 255 / w) as u8, 80, (y * 255 / h) as u8]);
            }
        }
        BgrImage::new(w, h, data).unwrap()
    }

    #[test]
    fn snapshot_is_a_decodable_face_crop_with_margin_and_size_cap() {
        let img = frame();
        let face = Rect {
            x: 200.0,
            y: 150.0,
            w: 60.0,
            h: 70.0,
        };
        let jpg = face_snapshot(&img, &face, 224, 85).unwrap();
        let dec = image::load_from_memory(&jpg).unwrap().to_rgb8();
        // 60 + 2 * 24 = 108 wide from x = 176; 70 + 2 * 28 = 126 high from y = 122, clipped at the bottom
        // edge to 118.
        assert_eq!((dec.width(), dec.height()), (108, 118));
        let c = dec.get_pixel(54, 63);
        assert!((c[2] as i32 - (230 * 255 / 320)).abs() < 12, "{c:?}");
        assert!((c[0] as i32 - (185 * 255 / 240)).abs() < 12, "{c:?}");

        let small = face_snapshot(&img, &face, 64, 85).unwrap();
        let dec = image::load_from_memory(&small).unwrap();
        assert_eq!(dec.height(), 64);

        let edge = Rect {
            x: 300.0,
            y: 220.0,
            w: 60.0,
            h: 60.0,
        };
        assert!(face_snapshot(&img, &edge, 224, 85).is_ok());
        let outside = Rect {
            x: 400.0,
            y: 10.0,
            w: 20.0,
            h: 20.0,
        };
        assert!(matches!(
            face_snapshot(&img, &outside, 224, 85),
            Err(SnapshotError::OutOfFrame(..))
        ));
    }
}
