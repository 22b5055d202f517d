//! FPIR and FNIR from scores, NIST style: FPIR is the share of non-mated probes (or tracks) whose best score
//! reaches the threshold; FNIR the share of mated ones whose own entry is not the top candidate at or above
//! it (a wrong top candidate counts as a miss: its score is recorded as minus infinity).

#[derive(Default, Clone)]
pub struct Scores {
    /// Best score per non-mated probe.
    pub nonmated: Vec<f32>,
    /// Score of the mate when it is the top candidate, else minus infinity.
    pub mated: Vec<f32>,
}

impl Scores {
    pub fn fpir(&self, t: f32) -> f64 {
        share(&self.nonmated, |s| s >= t)
    }

    pub fn fnir(&self, t: f32) -> f64 {
        share(&self.mated, |s| s < t)
    }

    /// The lowest threshold whose FPIR is at most `fpir`, and the FNIR it costs.
    pub fn fnir_at_fpir(&self, fpir: f64) -> (f32, f64) {
        let mut nm = self.nonmated.clone();
        nm.sort_by(|a, b| b.total_cmp(a));
        let allowed = (fpir * nm.len() as f64).floor() as usize;
        let t = nm.get(allowed).map_or(f32::NEG_INFINITY, |s| s.next_up());
        (t, self.fnir(t))
    }

    /// `(fpir, fnir)` along every threshold where FPIR changes, for a plot.
    pub fn curve(&self) -> Vec<(f64, f64)> {
        let mut nm = self.nonmated.clone();
        nm.sort_by(|a, b| b.total_cmp(a));
        let mut out = Vec::new();
        for (k, s) in nm.iter().enumerate() {
            if nm.get(k + 1) == Some(s) {
                continue;
            }
            let t = s.next_up();
            out.push(((k + 1) as f64 / nm.len() as f64, self.fnir(t)));
        }
        out
    }
}

fn share(v: &[f32], f: impl Fn(f32) -> bool) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.iter().filter(|s| f(**s)).count() as f64 / v.len() as f64
}

pub fn pct(x: f64) -> String {
    if x.is_nan() {
        "n/a".into()
    } else if x < 0.01 && x > 0.0 {
        format!("{:.2}%", x * 100.0)
    } else {
        format!("{:.1}%", x * 100.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_follow_the_nist_definitions() {
        let s = Scores {
            nonmated: vec![0.1, 0.2, 0.3, 0.4],
            mated: vec![0.5, 0.35, f32::NEG_INFINITY, 0.25],
        };
        assert_eq!(s.fpir(0.3), 0.5);
        assert_eq!(s.fnir(0.3), 0.5);
        let (t, fnir) = s.fnir_at_fpir(0.25);
        assert_eq!(t, 0.3f32.next_up());
        assert_eq!(fnir, 0.5);
        // No false candidate allowed: the threshold goes above every stranger, and only 0.5 clears it.
        assert_eq!(s.fnir_at_fpir(0.0).1, 0.75);
    }
}
