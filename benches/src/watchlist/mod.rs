//! `checkpoint-bench watchlist`: open-set identification measured the way NIST's 1:N evaluations measure it.
//!
//! - FPIR: share of probes of people *not* enrolled whose best score reaches the threshold (a false
//!   candidate); FNIR: share of probes of enrolled people whose own entry is not the top candidate at or
//!   above it. Both per face on still photos and per track on generated video.
//! - Galleries of 100, 1,000 and 10,000 entries: mated people (LFW fold 1, two or more photos) enrolled from
//!   one photo, fillers from people in no LFW pair, then synthetic fillers drawn from a Gaussian fitted to
//!   real ones (checked against real ones at 1,000).
//! - Rules: the fixed cosine threshold of before (plain embedding, 0.43 / 0.37) and the calibrated rule of
//!   the product (flip-fused embedding, threshold from the list's target FPIR and size via the model's
//!   calibration in `models/manifest.toml`), plus T-norm against a cohort as measured but not kept.

mod corpus;
mod det;
mod gallery;
mod pertrack;
mod stills;
mod tracks;

use crate::plot;
use std::path::Path;

use anyhow::{Context, Result};
use checkpoint_openset::{Calibration, ListPolicy};
use checkpoint_vision::{manifest, Runtime};
use plotters::style::RGBColor;

use det::{pct, Scores};
use stills::{Feature, Fillers, Norm, Setup};

pub const SIZES: [usize; 3] = [100, 1_000, 10_000];
const DET_POINTS: [f64; 4] = [0.001, 0.003, 0.01, 0.03];
/// The product's default policies (the protocol's defaults, which the hub's config starts from).
fn policies() -> [(&'static str, ListPolicy); 2] {
    let p = checkpoint_protocol::watchlist::Policies::default();
    [("wanted", p.wanted), ("missing", p.missing)]
}
const BEFORE: [(&str, f32); 2] = [("wanted", 0.43), ("missing", 0.37)];

pub fn run(rt: &Runtime, shared: &Path, out: &Path, splits: usize) -> Result<()> {
    std::fs::create_dir_all(out).with_context(|| out.display().to_string())?;
    let c = corpus::load(rt, shared, out)?;
    let roles = gallery::roles(&c.photos);
    println!("\n## Watchlist decisions (open-set 1:N)\n");
    println!(
        "Stills: {} LFW photos embedded ({} without a face); {} mated people ({} mated probes), {} non-mated \
         identities; {} photos left out as one picture filed under two names ({}).",
        c.photos.len(),
        c.missed,
        roles.mated.len(),
        roles.mated.iter().map(|v| v.len() - 1).sum::<usize>(),
        roles.others.len(),
        roles.duplicates.len(),
        roles.duplicates.join(", ")
    );
    let setup = Setup {
        photos: &c.photos,
        roles: &roles,
        splits,
    };
    let w = pertrack::walkers(&c.photos, &roles, shared);
    let (walkers, role, walking_strangers) = (&w.walkers, &w.role, &w.strangers);
    let tracks = tracks::collect(rt, out, walkers, 2026)?;
    calibration_table(&c.photos, &roles);
    let product = manifest::embedder_calibration();
    let stills = stills_tables(&setup, product);
    synthetic_check(&setup);
    templates_table(&setup);
    let curves = stills
        .iter()
        .map(|(n, feature, scores)| plot::Curve {
            label: format!(
                "{} entries, {}",
                n,
                if *feature == Feature::Fused {
                    "flip-fused (after)"
                } else {
                    "plain (before)"
                }
            ),
            points: scores.curve(),
            colour: colour(*n),
            dashed: *feature == Feature::Plain,
        })
        .collect::<Vec<_>>();
    let png = out.join("det_stills.png");
    plot::det(
        &png,
        "Watchlist DET per face on stills (SFace, LFW)",
        &curves,
    )?;
    println!("\nPlot: {}", png.display());

    let ts = pertrack::TrackSetup {
        photos: &c.photos,
        roles: &roles,
        tracks: &tracks,
        role,
        walking_strangers,
        walk_photo: &w.walk_photo,
        splits,
    };
    let untied = tracks.iter().filter(|t| t.identity.is_none()).count();
    println!(
        "\n### Per track on video\n\n{} walkers ({} listed people walking with a photo other than the enrolled one, \
         {} strangers) crossed generated 720p25 scenes; the agent's analyser (faces mode, 10 fps) made {} tracks \
         with faces ({} not tied to one walker, left out). A track is decided by the agent's rule: its best 3 \
         faces fused into a mean, which and at least 2 single faces must reach the threshold, re-decided at \
         every new face.",
        walkers.len(),
        role.values().filter(|r| r.is_some()).count(),
        walking_strangers.len(),
        tracks.len(),
        untied
    );
    let curves = tracks_tables(&ts, product);
    track_templates_table(&ts, product);
    let png = out.join("det_tracks.png");
    plot::det(
        &png,
        "Watchlist DET per track on video (SFace, generated scenes)",
        &curves,
    )?;
    println!("\nPlot: {}", png.display());
    if let Some(cal) = product {
        pertrack::agent_agrees(&ts, cal)?;
    }
    Ok(())
}

/// Per-track DET table and policies, before and after; returns the plot's curves.
fn tracks_tables(s: &pertrack::TrackSetup, product: Option<&Calibration>) -> Vec<plot::Curve> {
    println!();
    det_header("stranger tracks", "listed tracks");
    let mut curves = Vec::new();
    let mut rows = Vec::new();
    for n in SIZES {
        for (feature, name) in [
            (Feature::Plain, "plain (before)"),
            (Feature::Fused, "flip-fused (after)"),
        ] {
            let run = pertrack::evaluate(s, n, feature, pertrack::ONE_PHOTO);
            det_row(
                n,
                (run.real_fillers, run.synthetic_fillers),
                name,
                &run.scores,
            );
            curves.push(plot::Curve {
                label: format!("{n} entries, {name}"),
                points: run.scores.curve(),
                colour: colour(n),
                dashed: feature == Feature::Plain,
            });
            rows.push((n, feature, run.scores));
        }
    }
    println!("\nThe lists' rules per track (FPIR: share of stranger tracks raising any candidate; 95% upper bound \
              when none did):\n");
    println!("| entries | list | rule | threshold | FPIR measured | FPIR 95% upper | FPIR expected | FNIR measured |");
    println!("|---:|---|---|---:|---:|---:|---:|---:|");
    for (n, feature, scores) in &rows {
        for (i, (list, policy)) in policies().into_iter().enumerate() {
            let (name, t, expected) = match (feature, product) {
                (Feature::Plain, _) => (
                    format!("fixed cosine {} (before)", BEFORE[i].1),
                    BEFORE[i].1,
                    None,
                ),
                (Feature::Fused, Some(cal)) => {
                    let op = policy.operating_point(
                        cal,
                        *n,
                        checkpoint_protocol::watchlist::MIN_THRESHOLD,
                    );
                    (
                        format!("target FPIR {} (after)", pct(policy.target_fpir)),
                        op.threshold,
                        Some(op.expected_fpir),
                    )
                }
                (Feature::Fused, None) => continue,
            };
            let hits = scores.nonmated.iter().filter(|x| **x >= t).count();
            // The same tracks meet every gallery: the bound counts distinct tracks, not track-gallery pairs.
            let per = scores.nonmated.len() / s.splits.max(1);
            let k = hits.div_ceil(s.splits.max(1));
            println!(
                "| {n} | {list} | {name} | {t:.3} | {} ({hits}/{}) | {} | {} | {} |",
                pct(scores.fpir(t)),
                scores.nonmated.len(),
                pct(upper95(k, per)),
                expected.map_or("—".into(), pct),
                pct(scores.fnir(t))
            );
        }
    }
    curves
}

/// Per track, one enrolment photo per entry against two, for the listed people who have a spare photo.
fn track_templates_table(s: &pertrack::TrackSetup, product: Option<&Calibration>) {
    println!(
        "\n### Per track: one or two enrolment photos per entry (flip-fused; listed walkers with a photo other \
         than the enrolled and the walking one)\n"
    );
    det_header("stranger tracks", "listed tracks");
    let mut rows = Vec::new();
    for n in SIZES {
        for photos in [1, 2] {
            let enrol = pertrack::Enrolment {
                photos,
                only_with_extra: true,
            };
            let run = pertrack::evaluate(s, n, Feature::Fused, enrol);
            det_row(
                n,
                (run.real_fillers, run.synthetic_fillers),
                &format!("{photos} photo(s) per entry"),
                &run.scores,
            );
            rows.push((n, photos, run.templates, run.scores));
        }
    }
    let Some(cal) = product else { return };
    println!("\nAt the wanted list's calibrated threshold (target FPIR 0.1%):\n");
    println!(
        "| entries | photos per entry | templates | threshold | FPIR measured | FNIR measured |"
    );
    println!("|---:|---:|---:|---:|---:|---:|");
    for (n, photos, templates, scores) in &rows {
        // The agent counts comparisons: every template of every entry.
        let t = policies()[0]
            .1
            .operating_point(
                cal,
                *templates,
                checkpoint_protocol::watchlist::MIN_THRESHOLD,
            )
            .threshold;
        println!(
            "| {n} | {photos} | {templates} | {t:.3} | {} | {} |",
            pct(scores.fpir(t)),
            pct(scores.fnir(t))
        );
    }
}

/// One-sided 95% upper bound of a rate from `k` events in `n` trials (exact for k = 0, normal approximation
/// with continuity correction otherwise).
fn upper95(k: usize, n: usize) -> f64 {
    if n == 0 {
        return f64::NAN;
    }
    let (k, n) = (k as f64, n as f64);
    if k == 0.0 {
        return 1.0 - 0.05f64.powf(1.0 / n);
    }
    let p = (k + 0.5) / n;
    (p + 1.645 * (p * (1.0 - p) / n).sqrt()).min(1.0)
}

/// The head of a DET table: one FNIR column per operating point.
fn det_header(nonmated: &str, mated: &str) {
    print!("| entries | fillers real + synthetic | rule | {nonmated} | {mated} |");
    for p in DET_POINTS {
        print!(" FNIR @ FPIR {} |", pct(p));
    }
    println!(
        "\n|---:|---|---|---:|---:|{}",
        "---:|".repeat(DET_POINTS.len())
    );
}

/// A DET row: the gallery, the rule, the probe counts and one FNIR cell per operating point.
fn det_row(n: usize, (real, synthetic): (usize, usize), rule: &str, scores: &Scores) {
    print!(
        "| {n} | {real} + {synthetic} | {rule} | {} | {} |",
        scores.nonmated.len(),
        scores.mated.len()
    );
    for p in DET_POINTS {
        print!(" {} |", pct(scores.fnir_at_fpir(p).1));
    }
    println!();
}

fn colour(n: usize) -> RGBColor {
    match n {
        100 => RGBColor(31, 119, 180),
        1_000 => RGBColor(214, 39, 40),
        _ => RGBColor(44, 160, 44),
    }
}

/// The per-comparison curves of the flip-fused score: what `models/manifest.toml` carries for the model.
fn calibration_table(photos: &[corpus::Photo], roles: &gallery::Roles) {
    let (mut impostor, genuine) = stills::pairs(photos, roles, Feature::Fused);
    impostor.sort_by(|a, b| b.total_cmp(a));
    println!(
        "\n### Calibration of one comparison (flip-fused SFace): {} impostor and {} genuine pairs\n",
        impostor.len(),
        genuine.len()
    );
    println!(
        "Points with at least 20 impostor pairs above them; paste into `models/manifest.toml`:\n"
    );
    println!("```toml\npoints = [");
    let mut tail: Vec<(f64, f64)> = Vec::new();
    let mut s = 0.20f32;
    while s < 0.70 {
        let above = impostor.partition_point(|x| *x >= s);
        if above < 20 {
            break;
        }
        let fmr = above as f64 / impostor.len() as f64;
        let fnmr = genuine.iter().filter(|g| **g < s).count() as f64 / genuine.len() as f64;
        println!("    [{s:.2}, {fmr:.3e}, {fnmr:.4}],");
        if s >= 0.40 - 1e-6 {
            tail.push((f64::from(s), fmr.ln()));
        }
        s = ((s + 0.02) * 100.0).round() / 100.0;
    }
    println!("]");
    println!("tail_log_slope = {:.1}", slope(&tail));
    println!("```");
    let beyond: Vec<String> = impostor
        .iter()
        .take_while(|x| **x >= s)
        .map(|x| format!("{x:.3}"))
        .collect();
    println!(
        "\nImpostor pairs above the last point ({}): {} — lookalikes, twins (Ann Landers and Pauline Phillips) \
         and LFW labelling errors, which no threshold below them separates.",
        beyond.len(),
        beyond.join(", ")
    );
}

/// Least-squares slope of `(x, y)`.
fn slope(pts: &[(f64, f64)]) -> f64 {
    let n = pts.len() as f64;
    let (mx, my) = (
        pts.iter().map(|p| p.0).sum::<f64>() / n,
        pts.iter().map(|p| p.1).sum::<f64>() / n,
    );
    let sxy: f64 = pts.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    let sxx: f64 = pts.iter().map(|p| (p.0 - mx).powi(2)).sum();
    sxy / sxx
}

/// DET table per size and rule, then the before/after policies; returns the curves for the plot.
fn stills_tables(s: &Setup, product: Option<&Calibration>) -> Vec<(usize, Feature, Scores)> {
    println!(
        "\n### Per face on stills: FNIR at fixed FPIR ({} random galleries per size)\n",
        s.splits
    );
    det_header("non-mated probes", "mated probes");
    let mut curves = Vec::new();
    let mut policy_rows = Vec::new();
    for n in SIZES {
        for (feature, norm, name) in [
            (Feature::Plain, Norm::None, "plain cosine (before)"),
            (Feature::Fused, Norm::None, "flip-fused cosine (after)"),
            (Feature::Fused, Norm::TNorm, "flip-fused, T-norm (not kept)"),
        ] {
            let run = stills::evaluate(s, n, feature, norm, Fillers::RealThenSynthetic);
            det_row(
                n,
                (run.real_fillers, run.synthetic_fillers),
                name,
                &run.scores,
            );
            if norm == Norm::None {
                policy_rows.push((n, feature, run.scores.clone()));
                curves.push((n, feature, run.scores));
            }
        }
    }
    println!("\n### Per face on stills: the lists' rules, before and after\n");
    println!("| entries | list | rule | threshold | FPIR measured | FPIR expected | FNIR measured | FNIR expected |");
    println!("|---:|---|---|---:|---:|---:|---:|---:|");
    for (n, feature, scores) in &policy_rows {
        for (i, (list, policy)) in policies().into_iter().enumerate() {
            match feature {
                Feature::Plain => {
                    let t = BEFORE[i].1;
                    println!(
                        "| {n} | {list} | fixed cosine {t} (before) | {t:.3} | {} | — | {} | — |",
                        pct(scores.fpir(t)),
                        pct(scores.fnir(t))
                    );
                }
                Feature::Fused => match product {
                    Some(cal) => {
                        let op = policy.operating_point(
                            cal,
                            *n,
                            checkpoint_protocol::watchlist::MIN_THRESHOLD,
                        );
                        println!(
                            "| {n} | {list} | target FPIR {} (after) | {:.3} | {} | {}{} | {} | {} |",
                            pct(policy.target_fpir),
                            op.threshold,
                            pct(scores.fpir(op.threshold)),
                            pct(op.expected_fpir),
                            if op.extrapolated { " (tail extrapolated)" } else { "" },
                            pct(scores.fnir(op.threshold)),
                            pct(op.expected_fnir)
                        );
                    }
                    None => println!(
                        "| {n} | {list} | calibrated | no calibration in the manifest | | | | |"
                    ),
                },
            }
        }
    }
    curves
}

/// One enrolment photo per entry against two.
fn templates_table(s: &Setup) {
    println!(
        "\n### Per face on stills: one or two enrolment photos per entry (flip-fused; the 80 mated people with \
         three or more photos, probed with their third and later photos)\n"
    );
    det_header("non-mated probes", "mated probes");
    for n in [100, 1_000] {
        for k in [1, 2] {
            let run = stills::evaluate_templates(s, n, k);
            let rule = format!("{k} photo(s) per entry");
            det_row(
                n,
                (run.real_fillers, run.synthetic_fillers),
                &rule,
                &run.scores,
            );
        }
    }
}

/// Synthetic fillers against real ones at 1,000 entries, same strangers: FPIR at a few thresholds.
fn synthetic_check(s: &Setup) {
    let real = stills::evaluate(
        s,
        1_000,
        Feature::Fused,
        Norm::None,
        Fillers::RealThenSynthetic,
    );
    let synth = stills::evaluate(s, 1_000, Feature::Fused, Norm::None, Fillers::Synthetic);
    println!(
        "\n### Synthetic fillers against real ones (1,000 entries, flip-fused, the same strangers)\n\n\
         Real: {} real fillers; synthetic: {} drawn from a multivariate t (8 degrees of freedom) fitted to real templates (mean and \
         covariance), normalised.\n",
        real.real_fillers, synth.synthetic_fillers
    );
    println!(
        "| threshold | FPIR real fillers | FPIR synthetic fillers | FNIR real | FNIR synthetic |"
    );
    println!("|---:|---:|---:|---:|---:|");
    for t in [0.36f32, 0.40, 0.44, 0.48, 0.52] {
        println!(
            "| {t:.2} | {} | {} | {} | {} |",
            pct(real.scores.fpir(t)),
            pct(synth.scores.fpir(t)),
            pct(real.scores.fnir(t)),
            pct(synth.scores.fnir(t))
        );
    }
}
