//! Live-capture guidance on real faces: LFW photos placed in a 640×480 camera frame as a phone would show them
//! are ready, the same frames blurred (a shaking hand, a lens out of focus) are `blurry`, and darkened ones
//! `too_dark`. The thresholds in `checkpoint_vision::guide` come from these figures.

mod common;

use checkpoint_vision::guide::guide;
use checkpoint_vision::{BgrImage, FaceDetector, FaceDetectorOptions};

/// `photo` scaled ×1.6 into the middle of a grey 640×480 frame.
fn in_frame(photo: &BgrImage) -> BgrImage {
    let (w, h) = (640usize, 480usize);
    let side = 400usize;
    let mut data = vec![110u8; w * h * 3];
    let (x0, y0) = ((w - side) / 2, (h - side) / 2);
    let (pw, ph) = (photo.width as usize, photo.height as usize);
    for y in 0..side {
        for x in 0..side {
            let (sx, sy) = (x * pw / side, y * ph / side);
            let s = (sy * pw + sx) * 3;
            let d = ((y0 + y) * w + x0 + x) * 3;
            data[d..d + 3].copy_from_slice(&photo.data[s..s + 3]);
        }
    }
    BgrImage {
        width: w as u32,
        height: h as u32,
        data,
    }
}

/// A `k`×`k` box blur.
fn blur(img: &BgrImage, k: usize) -> BgrImage {
    let (w, h) = (img.width as usize, img.height as usize);
    let mut out = img.data.clone();
    let r = k / 2;
    for y in r..h - r {
        for x in r..w - r {
            for c in 0..3 {
                let mut sum = 0u32;
                for dy in 0..k {
                    for dx in 0..k {
                        sum += img.data[((y + dy - r) * w + x + dx - r) * 3 + c] as u32;
                    }
                }
                out[(y * w + x) * 3 + c] = (sum / (k * k) as u32) as u8;
            }
        }
    }
    BgrImage {
        width: img.width,
        height: img.height,
        data: out,
    }
}

fn darken(img: &BgrImage, f: f32) -> BgrImage {
    BgrImage {
        width: img.width,
        height: img.height,
        data: img.data.iter().map(|v| (*v as f32 * f) as u8).collect(),
    }
}

#[test]
fn lfw_faces_in_a_phone_frame_are_ready_and_blurred_or_dark_ones_are_not() {
    let root = common::shared_dir().join("datasets/faces/lfw_fold1");
    let mut det = FaceDetector::load(
        common::runtime(),
        &common::model("yunet"),
        FaceDetectorOptions::default(),
    )
    .expect("YuNet");
    let mut people: Vec<_> = std::fs::read_dir(&root)
        .expect("LFW fold 1")
        .flatten()
        .filter(|e| e.path().is_dir())
        .map(|e| e.path())
        .collect();
    people.sort();
    let (mut sharp, mut blurred_sharpness) = (vec![], vec![]);
    let (mut n, mut ready, mut blurred_flagged, mut dark_flagged) = (0, 0, 0, 0);
    let mut refused = std::collections::BTreeMap::<&str, usize>::new();
    for dir in people.iter().take(40) {
        let Some(first) = std::fs::read_dir(dir)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .find(|p| p.extension().is_some_and(|x| x == "jpg"))
        else {
            continue;
        };
        let photo = BgrImage::decode(&std::fs::read(&first).unwrap()).unwrap();
        let frame = in_frame(&photo);
        let g = guide(&frame, &det.detect(&frame).unwrap());
        if g.face.is_none() {
            continue;
        }
        n += 1;
        sharp.push(g.sharpness);
        if let Some(p) = g.problem {
            *refused.entry(p).or_default() += 1;
            continue;
        }
        ready += 1;
        // A frame that was ready, blurred or darkened, must say so.
        let b = blur(&frame, 7);
        let gb = guide(&b, &det.detect(&b).unwrap());
        blurred_sharpness.push(gb.sharpness);
        if gb.problem == Some("blurry") || gb.face.is_none() {
            blurred_flagged += 1;
        }
        let d = darken(&frame, 0.3);
        let gd = guide(&d, &det.detect(&d).unwrap());
        if gd.problem == Some("too_dark") || gd.face.is_none() {
            dark_flagged += 1;
        }
    }
    sharp.sort_by(f32::total_cmp);
    blurred_sharpness.sort_by(f32::total_cmp);
    eprintln!(
        "guide on {n} LFW faces: {ready} ready, the rest {refused:?}; sharpness p10 {:.0} median {:.0}; \
         blurred 7x7: median {:.0}, max {:.0}, {blurred_flagged} of {ready} blurry; darkened: {dark_flagged} of {ready} too dark",
        sharp[sharp.len() / 10],
        sharp[sharp.len() / 2],
        blurred_sharpness[blurred_sharpness.len() / 2],
        blurred_sharpness.last().unwrap()
    );
    assert!(n >= 30, "faces found in {n} frames");
    assert!(
        ready as f32 >= 0.6 * n as f32,
        "{ready} of {n} frames ready: {refused:?}"
    );
    // A centred, well-lit, sharp photo is refused only for what the photo itself holds (another face, a
    // turned head), as the enrolment rules refuse it.
    for p in refused.keys() {
        assert!(
            ["several_faces", "face_not_frontal", "too_dark"].contains(p),
            "a good frame refused as {p}: {refused:?}"
        );
    }
    assert_eq!(blurred_flagged, ready, "every blurred frame flagged");
    assert_eq!(dark_flagged, ready, "every darkened frame flagged");
}
