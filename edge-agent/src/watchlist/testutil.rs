//! Entries and templates for the watchlist tests.

use time::macros::datetime;

use super::{ListKind, WatchlistEntry, TEMPLATE_DIM};

/// A unit template pointing mostly along axis `axis`, with a little of `axis + 1`.
pub(crate) fn template(axis: usize, tilt: f32) -> Vec<f32> {
    let mut v = vec![0.0; TEMPLATE_DIM];
    v[axis % TEMPLATE_DIM] = 1.0;
    v[(axis + 1) % TEMPLATE_DIM] = tilt;
    let n = (1.0 + tilt * tilt).sqrt();
    v.iter_mut().for_each(|x| *x /= n);
    v
}

pub(crate) fn entry(id: &str, list: ListKind, axis: usize) -> WatchlistEntry {
    WatchlistEntry {
        id: id.into(),
        list,
        label: format!("Case {id}"),
        case_ref: format!("REF-{id}"),
        legal_basis: "Court order 12/2026".into(),
        issued_by: "Regional police HQ".into(),
        expires_at: datetime!(2030-01-01 00:00 UTC),
        templates: vec![template(axis, 0.0), template(axis, 0.1)],
    }
}
