//! How the detector did on a scene, frame by frame, against the truth: what the counts rest on.

use std::collections::HashMap;

use checkpoint_scenegen::{Target, Truth};
use edge_agent::track::{BBox, Detection};

/// How the detector did on a scene, frame by frame, against the truth.
pub(super) struct Quality {
    /// Truth boxes the detector should see (faces wholly inside the picture, cut-outs at least half in).
    pub(super) visible: usize,
    /// Of those, found (a detection with IoU >= 0.3, each detection used once).
    pub(super) found: usize,
    /// Mean IoU of the found ones.
    pub(super) mean_iou: f64,
    /// Detections matching nobody (not even someone partly in the picture), per frame.
    pub(super) false_per_frame: f64,
    /// Longest run of frames in which a visible person was not found, in frames at 25 fps.
    pub(super) longest_miss: u64,
}

pub(super) fn detector_quality(truth: &Truth, mode: Target, dets: &[Vec<Detection>]) -> Quality {
    let mut q = Quality {
        visible: 0,
        found: 0,
        mean_iou: 0.0,
        false_per_frame: 0.0,
        longest_miss: 0,
    };
    let mut run: HashMap<u32, u64> = HashMap::new();
    let mut false_total = 0usize;
    let mut iou_sum = 0.0;
    for (k, frame) in dets.iter().enumerate() {
        let k = k as u64;
        let mut used = vec![false; frame.len()];
        for a in &truth.actors {
            let Some(b) = mode.visible_box(truth, a, k) else {
                run.remove(&a.actor_id);
                continue;
            };
            q.visible += 1;
            let tb = BBox {
                x: b[0],
                y: b[1],
                w: b[2],
                h: b[3],
            };
            let best = frame
                .iter()
                .enumerate()
                .filter(|(i, _)| !used[*i])
                .map(|(i, d)| (i, d.bbox.iou(&tb)))
                .filter(|(_, o)| *o >= 0.3)
                .max_by(|x, y| x.1.total_cmp(&y.1));
            match best {
                Some((i, o)) => {
                    used[i] = true;
                    q.found += 1;
                    iou_sum += f64::from(o);
                    run.remove(&a.actor_id);
                }
                None => {
                    let r = run.entry(a.actor_id).or_insert(0);
                    *r += 1;
                    q.longest_miss = q.longest_miss.max(*r);
                }
            }
        }
        // A detection of someone only partly in the picture (a face cut by the border) is not false.
        let partly: Vec<BBox> = truth
            .actors
            .iter()
            .filter_map(|a| {
                let b = match mode {
                    Target::Faces => a.box_at(k)?,
                    Target::People => a.cutout_at(k)?,
                };
                Some(BBox {
                    x: b[0],
                    y: b[1],
                    w: b[2],
                    h: b[3],
                })
            })
            .collect();
        false_total += frame
            .iter()
            .zip(&used)
            .filter(|(d, u)| !**u && !partly.iter().any(|p| d.bbox.iou(p) >= 0.3))
            .count();
    }
    q.mean_iou = iou_sum / q.found.max(1) as f64;
    q.false_per_frame = false_total as f64 / dets.len().max(1) as f64;
    q
}
