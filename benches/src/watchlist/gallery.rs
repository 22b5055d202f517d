//! Galleries and probes for NIST-style 1:N figures: who is enrolled, who walks past, and the scores.

use crate::watchlist::corpus::Photo;

/// Unit-normalised sum of a face's embedding and its mirror's: the score the agent and hub use.
pub fn fused(p: &Photo) -> Vec<f32> {
    unit(p.emb.iter().zip(&p.flip).map(|(a, b)| a + b).collect())
}

pub fn plain(p: &Photo) -> Vec<f32> {
    unit(p.emb.clone())
}

pub fn unit(mut v: Vec<f32>) -> Vec<f32> {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if n > 0.0 {
        v.iter_mut().for_each(|x| *x /= n);
    }
    v
}

pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// A small deterministic generator (xorshift64*), so every run draws the same galleries.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    pub fn uniform(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Standard normal (Box-Muller).
    pub fn normal(&mut self) -> f64 {
        let u = self.uniform().max(1e-300);
        let v = self.uniform();
        (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
    }

    pub fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            let j = self.below(i + 1);
            v.swap(i, j);
        }
    }
}

/// The corpus by role. Mated people have two or more photos in LFW fold 1: the first is enrolled, the
/// others are probes. Everyone else (fold-1 people with one photo, all of `lfw_nopair`) is a potential filler
/// or stranger, one identity each.
pub struct Roles {
    /// Per mated person: photo indices, the first one enrolled.
    pub mated: Vec<Vec<usize>>,
    /// Per non-mated identity: photo indices.
    pub others: Vec<Vec<usize>>,
    /// Photos left out as the same picture filed under two names (an LFW labelling error), by file.
    pub duplicates: Vec<String>,
}

/// Pictures of different names this close are the same photo filed twice, not two people.
const DUPLICATE_COSINE: f32 = 0.9;

pub fn roles(photos: &[Photo]) -> Roles {
    let plain: Vec<Vec<f32>> = photos.iter().map(plain).collect();
    let mut dup = vec![false; photos.len()];
    for i in 0..photos.len() {
        for j in i + 1..photos.len() {
            if photos[i].person != photos[j].person && dot(&plain[i], &plain[j]) >= DUPLICATE_COSINE
            {
                dup[i] = true;
                dup[j] = true;
            }
        }
    }
    let mut by: Vec<(String, Vec<usize>)> = Vec::new();
    for (i, p) in photos.iter().enumerate() {
        if dup[i] {
            continue;
        }
        let key = format!("{}/{}", p.set, p.person);
        match by.last_mut() {
            Some((k, v)) if *k == key => v.push(i),
            _ => by.push((key, vec![i])),
        }
    }
    let (mut mated, mut others) = (Vec::new(), Vec::new());
    for (key, v) in by {
        if key.starts_with("fold1/") && v.len() >= 2 {
            mated.push(v);
        } else {
            others.push(v);
        }
    }
    Roles {
        mated,
        others,
        duplicates: photos
            .iter()
            .zip(&dup)
            .filter(|(_, d)| **d)
            .map(|(p, _)| p.file.clone())
            .collect(),
    }
}

/// Mean and covariance of real filler templates; synthetic fillers are drawn from a multivariate Student t
/// with that mean and covariance (8 degrees of freedom) and normalised. A Gaussian with the same moments
/// has too light a tail: at 1,000 entries it raised half the false candidates real fillers raise. The t's
/// heavier tail matches real impostor scores from cosine 0.36 to 0.48 within a factor of 1.3, on the
/// conservative side (the benchmark prints the comparison).
pub struct FillerModel {
    mean: Vec<f64>,
    /// Lower-triangular Cholesky factor of the covariance, row-major.
    chol: Vec<f64>,
    dim: usize,
}

impl FillerModel {
    pub fn fit(templates: &[Vec<f32>]) -> Option<Self> {
        let dim = templates.first()?.len();
        let n = templates.len() as f64;
        let mut mean = vec![0.0; dim];
        for t in templates {
            mean.iter_mut()
                .zip(t)
                .for_each(|(m, x)| *m += f64::from(*x) / n);
        }
        let mut cov = vec![0.0; dim * dim];
        for t in templates {
            for i in 0..dim {
                let di = f64::from(t[i]) - mean[i];
                for j in 0..=i {
                    cov[i * dim + j] += di * (f64::from(t[j]) - mean[j]) / (n - 1.0);
                }
            }
        }
        // A little ridge keeps the factorisation stable when there are about as many templates as dimensions.
        for i in 0..dim {
            cov[i * dim + i] += 1e-6;
        }
        let chol = cholesky(&cov, dim)?;
        Some(Self { mean, chol, dim })
    }

    pub fn sample(&self, rng: &mut Rng) -> Vec<f32> {
        const NU: usize = 8;
        let chi2: f64 = (0..NU).map(|_| rng.normal().powi(2)).sum();
        // Scaled so the covariance stays the fitted one: Var(t_nu) = nu / (nu - 2).
        let w = ((NU - 2) as f64 / chi2.max(1e-12)).sqrt();
        let z: Vec<f64> = (0..self.dim).map(|_| w * rng.normal()).collect();
        let v = (0..self.dim)
            .map(|i| {
                let row = &self.chol[i * self.dim..i * self.dim + i + 1];
                (self.mean[i] + row.iter().zip(&z).map(|(l, z)| l * z).sum::<f64>()) as f32
            })
            .collect();
        unit(v)
    }
}

fn cholesky(a: &[f64], n: usize) -> Option<Vec<f64>> {
    let mut l = vec![0.0; n * n];
    for i in 0..n {
        for j in 0..=i {
            let s: f64 = (0..j).map(|k| l[i * n + k] * l[j * n + k]).sum();
            if i == j {
                let d = a[i * n + i] - s;
                if d <= 0.0 {
                    return None;
                }
                l[i * n + j] = d.sqrt();
            } else {
                l[i * n + j] = (a[i * n + j] - s) / l[j * n + j];
            }
        }
    }
    Some(l)
}
