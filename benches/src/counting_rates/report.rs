//! The Markdown tables printed for the scenes: the detector's quality, then the counts per rate, scene and
//! mode, with the lowest rate at which each mode meets the target.

use std::collections::HashMap;

use checkpoint_scenegen::{CountScore, Target};

use super::quality::Quality;
use super::{mode_name, Row, TARGET};

pub(super) fn print_quality(rows: &[(String, Target, Quality)]) {
    println!("Detector against the truth, every frame at 25 fps (a person counts as found with IoU >= 0.3 to their face box, or in people mode to their cut-out clipped to the picture):\n");
    println!(
        "| scene | mode | visible | found | mean IoU | false per frame | longest miss (frames) |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|");
    for (scene, mode, q) in rows {
        println!(
            "| {scene} | {} | {} | {} ({:.1}%) | {:.2} | {:.3} | {} |",
            mode_name(*mode),
            q.visible,
            q.found,
            100.0 * q.found as f64 / q.visible.max(1) as f64,
            q.mean_iou,
            q.false_per_frame,
            q.longest_miss
        );
    }
    println!();
}

pub(super) fn print_table(rows: &[Row], rates: &[f64], modes: &[Target]) {
    println!("| rate fps | scene | mode | in counted / truth | out counted / truth | extra (double) | frag | swap | runs | >= 98%, none extra | before issue 13: in, out, extra |");
    println!("|---:|---|---|---:|---:|---:|---:|---:|---:|---|---|");
    for r in rows {
        let s = &r.score;
        let b = &r.before;
        println!(
            "| {} | {} | {} | {}/{} ({:.1}%) | {}/{} ({:.1}%) | {} ({}) | {} | {} | {} | {} | {}, {}, {} |",
            r.rate,
            r.scene,
            mode_name(r.mode),
            s.hit_in,
            s.truth_in,
            100.0 * s.recall_in(),
            s.hit_out,
            s.truth_out,
            100.0 * s.recall_out(),
            s.extra_in + s.extra_out,
            s.double,
            r.fragments,
            r.swaps,
            r.runs,
            if s.meets(TARGET) { "yes" } else { "**no**" },
            b.hit_in,
            b.hit_out,
            b.extra_in + b.extra_out
        );
    }
    println!("\nPer mode and rate, every scene together:\n");
    println!("| mode | rate fps | in | out | extra | all scenes meet the target |");
    println!("|---|---:|---:|---:|---:|---|");
    let mut lowest: HashMap<&'static str, Option<f64>> = HashMap::new();
    for &m in modes {
        let mut reliable_from: Option<f64> = None;
        let mut sorted = rates.to_vec();
        sorted.sort_by(|a, b| b.total_cmp(a));
        let mut all_above = true;
        for &rate in &sorted {
            let mut total = CountScore::default();
            let mut every = true;
            for r in rows.iter().filter(|r| r.mode == m && r.rate == rate) {
                total.add(&r.score);
                every &= r.score.meets(TARGET);
            }
            println!(
                "| {} | {rate} | {:.1}% | {:.1}% | {} | {} |",
                mode_name(m),
                100.0 * total.recall_in(),
                100.0 * total.recall_out(),
                total.extra_in + total.extra_out,
                if every { "yes" } else { "**no**" }
            );
            all_above &= every;
            if all_above {
                reliable_from = Some(rate);
            }
        }
        lowest.insert(mode_name(m), reliable_from);
    }
    println!();
    for &m in modes {
        match lowest.get(mode_name(m)).copied().flatten() {
            Some(r) => println!(
                "Lowest rate at which {} mode meets the target on every scene (and at every rate above it): {r} fps",
                mode_name(m)
            ),
            None => println!(
                "{} mode does not meet the target at the highest rate measured",
                mode_name(m)
            ),
        }
    }
}
