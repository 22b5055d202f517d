//! Open-set identification: every passer-by is compared with every entry of a watchlist, so the chance that a
//! stranger raises a candidate grows with the list. This crate turns an operator's target — "at most one
//! false candidate per 1,000 passers-by" — into the similarity threshold that holds it for a list of `n`
//! entries, and says what that threshold costs in missed people.
//!
//! The input is a [`Calibration`]: the face model's false-match rate (FMR) and false-non-match rate (FNMR)
//! per single comparison as functions of the score, measured on real faces (`checkpoint-bench watchlist`
//! prints them; `models/manifest.toml` carries them with the model). A stranger's best score against `n`
//! independent entries reaches `t` with probability
//!
//! ```text
//! FPIR(t, n) = 1 - (1 - FMR(t))^n
//! ```
//!
//! which the benchmark checks against measured galleries of 100 and 1,000 entries (it holds within the
//! measurement's noise down to FPIR 0.5%, and is slightly conservative). Below the lowest FMR that the
//! calibration set can measure, the curve is extended with the exponential slope of its measured tail;
//! [`OperatingPoint::extrapolated`] says when a threshold rests on that extension.

mod calibration;
mod operating;

pub use calibration::{Calibration, CalibrationError, CalibrationPoint};
pub use operating::{ListPolicy, OperatingPoint, PolicyError};
