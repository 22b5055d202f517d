//! Per-face figures on still photos: the calibration curve, DET tables per list size, and the policies
//! before and after.

use crate::watchlist::corpus::Photo;
use crate::watchlist::det::Scores;
use crate::watchlist::gallery::{dot, fused, plain, FillerModel, Rng, Roles};

/// Which embedding a face is compared by.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Feature {
    /// The face's embedding alone (the agent before this change).
    Plain,
    /// Embedding plus the mirrored crop's, normalised.
    Fused,
}

/// How a raw cosine is turned into the decision score.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Norm {
    None,
    /// Test normalisation against a cohort of strangers: (s - mean) / sd of the probe's scores against the
    /// cohort, computed from the cohort's mean and covariance.
    TNorm,
}

/// Where the fillers come from.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Fillers {
    /// Real faces up to what the corpus holds, synthetic beyond.
    RealThenSynthetic,
    /// Synthetic only (to check they behave like real ones).
    Synthetic,
}

pub struct Setup<'a> {
    pub photos: &'a [Photo],
    pub roles: &'a Roles,
    pub splits: usize,
}

/// Identities kept aside as the T-norm cohort in every split (never fillers or strangers).
const COHORT: usize = 300;
/// Stranger identities kept out of the gallery in every split, at least.
const MIN_STRANGERS: usize = 600;

pub struct Run {
    pub scores: Scores,
    pub real_fillers: usize,
    pub synthetic_fillers: usize,
}

/// Random galleries of `n` entries, `splits` times: mated people enrolled from their first photo (at most
/// half the gallery), fillers from non-mated identities, every other non-mated identity's photos as
/// stranger probes.
pub fn evaluate(s: &Setup, n: usize, feature: Feature, norm: Norm, fillers: Fillers) -> Run {
    let vec_of = |i: usize| match feature {
        Feature::Plain => plain(&s.photos[i]),
        Feature::Fused => fused(&s.photos[i]),
    };
    let vecs: Vec<Vec<f32>> = (0..s.photos.len()).map(vec_of).collect();
    let mut rng = Rng(0x5EED_0000 + n as u64);
    let mut synth_rng = Rng(0xF111_E700 + n as u64);
    let mut out = Scores::default();
    let (mut real_used, mut synth_used) = (0, 0);
    for _ in 0..s.splits {
        let mut others: Vec<usize> = (0..s.roles.others.len()).collect();
        rng.shuffle(&mut others);
        let (cohort, rest) = others.split_at(COHORT.min(others.len()));
        let mut mated: Vec<usize> = (0..s.roles.mated.len()).collect();
        rng.shuffle(&mut mated);
        mated.truncate((n / 2).min(mated.len()));
        let want_fillers = n - mated.len();
        // The same strangers whatever the fillers are, so real and synthetic galleries compare like for like.
        let split = want_fillers.min(rest.len().saturating_sub(MIN_STRANGERS));
        let (pool, strangers) = rest.split_at(split);
        let filler_ids: &[usize] = match fillers {
            Fillers::RealThenSynthetic => pool,
            Fillers::Synthetic => &[],
        };
        let real = filler_ids.len();
        let mut gallery: Vec<Vec<f32>> = mated
            .iter()
            .map(|&m| vecs[s.roles.mated[m][0]].clone())
            .collect();
        gallery.extend(
            filler_ids
                .iter()
                .map(|&o| vecs[s.roles.others[o][0]].clone()),
        );
        if gallery.len() < n {
            // Fit on real non-mated identities that are not strangers in this split.
            let pool: Vec<Vec<f32>> = pool
                .iter()
                .chain(cohort)
                .map(|&o| vecs[s.roles.others[o][0]].clone())
                .collect();
            let model = FillerModel::fit(&pool).expect("covariance of real templates");
            while gallery.len() < n {
                gallery.push(model.sample(&mut synth_rng));
                synth_used += 1;
            }
        }
        real_used += real;
        let normaliser = match norm {
            Norm::None => None,
            Norm::TNorm => Some(Cohort::new(
                &cohort
                    .iter()
                    .map(|&o| vecs[s.roles.others[o][0]].clone())
                    .collect::<Vec<_>>(),
            )),
        };
        let score = |probe: &[f32]| -> (f32, usize) {
            let (mut best, mut at) = (f32::NEG_INFINITY, 0);
            for (g, t) in gallery.iter().enumerate() {
                let v = dot(probe, t);
                if v > best {
                    best = v;
                    at = g;
                }
            }
            let best = match &normaliser {
                Some(c) => c.normalise(probe, best),
                None => best,
            };
            (best, at)
        };
        for &o in strangers {
            for &p in &s.roles.others[o] {
                out.nonmated.push(score(&vecs[p]).0);
            }
        }
        for (pos, &m) in mated.iter().enumerate() {
            for &p in &s.roles.mated[m][1..] {
                let (best, at) = score(&vecs[p]);
                out.mated
                    .push(if at == pos { best } else { f32::NEG_INFINITY });
            }
        }
    }
    Run {
        scores: out,
        real_fillers: real_used / s.splits.max(1),
        synthetic_fillers: synth_used / s.splits.max(1),
    }
}

/// T-norm from a cohort's first two moments: the mean and spread of a probe's scores against the cohort are
/// `p·m` and `sqrt(pᵀΣp)`, so no cohort face needs to be held, only its statistics.
pub struct Cohort {
    mean: Vec<f32>,
    cov: Vec<f32>,
    dim: usize,
}

impl Cohort {
    pub fn new(templates: &[Vec<f32>]) -> Self {
        let dim = templates.first().map_or(0, Vec::len);
        let n = templates.len() as f32;
        let mut mean = vec![0.0f32; dim];
        for t in templates {
            mean.iter_mut().zip(t).for_each(|(m, x)| *m += x / n);
        }
        let mut cov = vec![0.0f32; dim * dim];
        for t in templates {
            for i in 0..dim {
                let di = t[i] - mean[i];
                for j in 0..dim {
                    cov[i * dim + j] += di * (t[j] - mean[j]) / n;
                }
            }
        }
        Self { mean, cov, dim }
    }

    pub fn normalise(&self, probe: &[f32], score: f32) -> f32 {
        let mu = dot(probe, &self.mean);
        let mut var = 0.0;
        for i in 0..self.dim {
            var += probe[i] * dot(&self.cov[i * self.dim..(i + 1) * self.dim], probe);
        }
        (score - mu) / var.max(1e-12).sqrt()
    }
}

/// Every impostor and genuine pair of the corpus (duplicates left out), by `feature`: the per-comparison
/// curves behind the calibration.
pub fn pairs(photos: &[Photo], roles: &Roles, feature: Feature) -> (Vec<f32>, Vec<f32>) {
    let mut ident = vec![usize::MAX; photos.len()];
    for (k, v) in roles.mated.iter().chain(&roles.others).enumerate() {
        for &i in v {
            ident[i] = k;
        }
    }
    let keep: Vec<usize> = (0..photos.len())
        .filter(|&i| ident[i] != usize::MAX)
        .collect();
    let vecs: Vec<Vec<f32>> = keep
        .iter()
        .map(|&i| match feature {
            Feature::Plain => plain(&photos[i]),
            Feature::Fused => fused(&photos[i]),
        })
        .collect();
    let (mut impostor, mut genuine) = (Vec::new(), Vec::new());
    for a in 0..keep.len() {
        for b in a + 1..keep.len() {
            let s = dot(&vecs[a], &vecs[b]);
            if ident[keep[a]] == ident[keep[b]] {
                genuine.push(s);
            } else {
                impostor.push(s);
            }
        }
    }
    (impostor, genuine)
}

/// Several photos per entry: mated people with at least three photos, enrolled from their first `k` (1 or 2),
/// probed with the photos after the second, so both settings see the same probes. An entry scores by its
/// best template, as the agent scores it. Fillers and strangers as in [`evaluate`], flip-fused.
pub fn evaluate_templates(s: &Setup, n: usize, k: usize) -> Run {
    let vecs: Vec<Vec<f32>> = s.photos.iter().map(fused).collect();
    let people: Vec<&Vec<usize>> = s.roles.mated.iter().filter(|v| v.len() >= 3).collect();
    let mut rng = Rng(0x7E3F_0000 + n as u64);
    let mut out = Scores::default();
    let mut real = 0;
    for _ in 0..s.splits {
        let mut others: Vec<usize> = (0..s.roles.others.len()).collect();
        rng.shuffle(&mut others);
        let rest = &others[COHORT.min(others.len())..];
        let mut mated: Vec<usize> = (0..people.len()).collect();
        rng.shuffle(&mut mated);
        mated.truncate((n / 2).min(mated.len()));
        let split = (n - mated.len()).min(rest.len().saturating_sub(MIN_STRANGERS));
        let (fillers, strangers) = rest.split_at(split);
        real += fillers.len();
        let mut entries: Vec<Vec<&[f32]>> = mated
            .iter()
            .map(|&m| people[m][..k].iter().map(|&i| vecs[i].as_slice()).collect())
            .collect();
        entries.extend(
            fillers
                .iter()
                .map(|&o| vec![vecs[s.roles.others[o][0]].as_slice()]),
        );
        let best = |probe: &[f32]| {
            entries
                .iter()
                .enumerate()
                .map(|(e, ts)| {
                    (
                        e,
                        ts.iter()
                            .map(|t| dot(probe, t))
                            .fold(f32::NEG_INFINITY, f32::max),
                    )
                })
                .max_by(|a, b| a.1.total_cmp(&b.1))
                .unwrap_or((0, f32::NEG_INFINITY))
        };
        for &o in strangers {
            for &p in &s.roles.others[o] {
                out.nonmated.push(best(&vecs[p]).1);
            }
        }
        for (pos, &m) in mated.iter().enumerate() {
            for &p in &people[m][2..] {
                let (at, score) = best(&vecs[p]);
                out.mated
                    .push(if at == pos { score } else { f32::NEG_INFINITY });
            }
        }
    }
    Run {
        scores: out,
        real_fillers: real / s.splits.max(1),
        synthetic_fillers: 0,
    }
}
