//! The watchlist data model, as the hub sends it and as the agent stores it (JSON both ways).

use checkpoint_vision::EMBEDDING_DIM;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::WatchlistError;

/// The protocol's list kind, so a match event carries the same value the entry came with.
pub use checkpoint_protocol::ListKind;

/// Default cosine threshold for the wanted list: SFace's false-match rate of 1e-4 per comparison on LFW
/// fold 1, rounded up (`tests/calibration.rs` fails if this is ever looser than the measurement). Wanted
/// alerts lead to people being stopped, so this list gets the stricter operating point.
pub const DEFAULT_WANTED_THRESHOLD: f32 = 0.43;

/// Default cosine threshold for the missing list: false-match rate 1e-3 per comparison on LFW fold 1,
/// rounded up. A missed missing person costs more than a second look at a stranger, so this list trades a
/// higher false-match rate for recall.
pub const DEFAULT_MISSING_THRESHOLD: f32 = 0.37;

/// No list may be matched below this cosine, whatever the hub sends. At 0.30 SFace already falsely matches
/// about one comparison in a hundred (8.6e-3 on LFW fold 1); lower, a checkpoint comparing every passer-by
/// with every entry would bury its reviewers in false candidates.
pub const MIN_THRESHOLD: f32 = 0.30;

/// Templates per entry at most. A handful of photos per person is what the hub enrols; far more points to
/// a hub defect, and every template costs matching time on every track.
pub const MAX_TEMPLATES_PER_ENTRY: usize = 64;

const MAX_ID_BYTES: usize = 128;
const MAX_TEXT_BYTES: usize = 1024;

/// Cosine thresholds, one per list. A track matches an entry when its similarity is at least the
/// threshold of the entry's list.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Thresholds {
    pub wanted: f32,
    pub missing: f32,
}

impl Default for Thresholds {
    fn default() -> Self {
        Self {
            wanted: DEFAULT_WANTED_THRESHOLD,
            missing: DEFAULT_MISSING_THRESHOLD,
        }
    }
}

impl Thresholds {
    pub fn for_list(&self, list: ListKind) -> f32 {
        match list {
            ListKind::Wanted => self.wanted,
            ListKind::Missing => self.missing,
        }
    }

    pub fn validate(&self) -> Result<(), WatchlistError> {
        for (name, t) in [("wanted", self.wanted), ("missing", self.missing)] {
            if !t.is_finite() || !(MIN_THRESHOLD..=1.0).contains(&t) {
                return Err(WatchlistError::InvalidThresholds(format!(
                    "`{name}` = {t} must lie in [{MIN_THRESHOLD}, 1]"
                )));
            }
        }
        Ok(())
    }
}

/// One person on a list. The edge needs no ID numbers: `label` and `case_ref` are what an officer sees,
/// `legal_basis` and `issued_by` are why the entry may be matched at all.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WatchlistEntry {
    /// The hub's id; unique within a set.
    pub id: String,
    pub list: ListKind,
    /// Case reference or display name.
    pub label: String,
    pub case_ref: String,
    /// The legal instrument that allows matching this person; an entry without one is refused.
    pub legal_basis: String,
    pub issued_by: String,
    /// The entry stops matching at this instant (RFC 3339), and the agent deletes it.
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    /// SFace embeddings (128-d, L2-normalised), one per enrolled photo.
    pub templates: Vec<Vec<f32>>,
}

impl WatchlistEntry {
    /// Expired entries never match; an entry expiring exactly at `now` has expired.
    pub fn is_expired(&self, now: OffsetDateTime) -> bool {
        self.expires_at <= now
    }

    /// Checks everything that can be checked without a clock and re-normalises the templates in place (a
    /// hub may send float32 values that round-tripped through text or another library's normalisation).
    /// `index` is the entry's position, for the error message.
    pub fn validate(&mut self, index: usize) -> Result<(), WatchlistError> {
        let bad = |id: &str, reason: String| WatchlistError::InvalidEntry {
            index,
            id: id.to_string(),
            reason,
        };
        check_text("id", &self.id, MAX_ID_BYTES).map_err(|r| bad("", r))?;
        let id = self.id.as_str();
        check_text("label", &self.label, MAX_TEXT_BYTES).map_err(|r| bad(id, r))?;
        check_text("case_ref", &self.case_ref, MAX_TEXT_BYTES).map_err(|r| bad(id, r))?;
        check_text("legal_basis", &self.legal_basis, MAX_TEXT_BYTES).map_err(|r| bad(id, r))?;
        check_text("issued_by", &self.issued_by, MAX_TEXT_BYTES).map_err(|r| bad(id, r))?;
        if self.templates.is_empty() {
            return Err(bad(id, "has no templates".into()));
        }
        if self.templates.len() > MAX_TEMPLATES_PER_ENTRY {
            return Err(bad(
                id,
                format!(
                    "has {} templates, at most {MAX_TEMPLATES_PER_ENTRY} allowed",
                    self.templates.len()
                ),
            ));
        }
        for (ti, t) in self.templates.iter_mut().enumerate() {
            normalize_template(t).map_err(|r| bad(id, format!("template {ti}: {r}")))?;
        }
        Ok(())
    }
}

fn check_text(field: &str, s: &str, max: usize) -> Result<(), String> {
    if s.trim().is_empty() {
        return Err(format!("`{field}` is empty"));
    }
    if s.len() > max {
        return Err(format!("`{field}` is {} bytes, at most {max}", s.len()));
    }
    // Control characters would let a hub-side value forge lines in the agent's logs and alerts.
    if s.chars().any(char::is_control) {
        return Err(format!("`{field}` contains control characters"));
    }
    Ok(())
}

/// Validates one template and scales it to unit length.
fn normalize_template(t: &mut [f32]) -> Result<(), String> {
    if t.len() != EMBEDDING_DIM {
        return Err(format!("has {} values, expected {EMBEDDING_DIM}", t.len()));
    }
    if let Some(i) = t.iter().position(|v| !v.is_finite()) {
        return Err(format!("value {i} is not finite"));
    }
    // f64: squares of large finite f32 values overflow f32.
    let norm = t.iter().map(|&v| f64::from(v).powi(2)).sum::<f64>().sqrt();
    if norm < 1e-6 {
        return Err("is a zero vector".into());
    }
    // Vectors already unit length to float precision are kept bit for bit, so a set reads back exactly as
    // the hub sent it.
    if (norm - 1.0).abs() > 1e-6 {
        for v in t.iter_mut() {
            *v = (f64::from(*v) / norm) as f32;
        }
    }
    Ok(())
}

/// A complete, versioned watchlist: what the agent holds and persists.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WatchlistSet {
    /// The hub's version; deltas apply only on top of the version they name.
    pub version: u64,
    pub entries: Vec<WatchlistEntry>,
    pub thresholds: Thresholds,
}

impl Default for WatchlistSet {
    /// Version 0, nothing listed: what an agent holds before its first full sync.
    fn default() -> Self {
        Self {
            version: 0,
            entries: Vec::new(),
            thresholds: Thresholds::default(),
        }
    }
}

impl WatchlistSet {
    /// Validates thresholds and every entry (normalising templates) and refuses duplicate ids.
    pub fn validate(&mut self) -> Result<(), WatchlistError> {
        self.thresholds.validate()?;
        validate_entries(&mut self.entries)
    }
}

/// Validates a batch of entries and refuses duplicate ids within it.
pub(crate) fn validate_entries(entries: &mut [WatchlistEntry]) -> Result<(), WatchlistError> {
    let mut seen = std::collections::HashSet::with_capacity(entries.len());
    for (i, e) in entries.iter_mut().enumerate() {
        e.validate(i)?;
        if !seen.insert(e.id.clone()) {
            return Err(WatchlistError::DuplicateId(e.id.clone()));
        }
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use time::macros::datetime;

    /// A unit template pointing mostly along axis `axis`, with a little of `axis + 1`.
    pub(crate) fn template(axis: usize, tilt: f32) -> Vec<f32> {
        let mut v = vec![0.0; EMBEDDING_DIM];
        v[axis % EMBEDDING_DIM] = 1.0;
        v[(axis + 1) % EMBEDDING_DIM] = tilt;
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

    #[test]
    fn templates_are_renormalised_and_bad_ones_refused() {
        let mut e = entry("a", ListKind::Wanted, 3);
        e.templates[0].iter_mut().for_each(|v| *v *= 7.0);
        e.validate(0).unwrap();
        let n: f32 = e.templates[0].iter().map(|v| v * v).sum();
        assert!((n - 1.0).abs() < 1e-5);

        type Spoil = Box<dyn Fn(&mut WatchlistEntry)>;
        let cases: Vec<(&str, Spoil)> = vec![
            (
                "values, expected 128",
                Box::new(|e| {
                    e.templates[0].pop();
                }),
            ),
            ("not finite", Box::new(|e| e.templates[1][5] = f32::NAN)),
            (
                "not finite",
                Box::new(|e| e.templates[1][5] = f32::INFINITY),
            ),
            (
                "zero vector",
                Box::new(|e| e.templates[0] = vec![0.0; EMBEDDING_DIM]),
            ),
            ("no templates", Box::new(|e| e.templates.clear())),
            (
                "`legal_basis` is empty",
                Box::new(|e| e.legal_basis = "  ".into()),
            ),
            ("`issued_by` is empty", Box::new(|e| e.issued_by.clear())),
            ("`id` is empty", Box::new(|e| e.id.clear())),
            ("control characters", Box::new(|e| e.label = "x\ny".into())),
            (
                "templates, at most",
                Box::new(|e| e.templates = vec![template(1, 0.0); MAX_TEMPLATES_PER_ENTRY + 1]),
            ),
        ];
        for (want, spoil) in cases {
            let mut e = entry("a", ListKind::Wanted, 3);
            spoil(&mut e);
            let err = e.validate(4).unwrap_err().to_string();
            assert!(err.contains(want), "{err} should mention {want}");
            assert!(err.contains("#4"), "{err} should name the entry's position");
        }
    }

    #[test]
    fn thresholds_outside_the_allowed_range_are_refused() {
        assert!(Thresholds::default().validate().is_ok());
        for (w, m) in [(0.1, 0.5), (0.5, f32::NAN), (1.5, 0.5), (0.5, -0.2)] {
            let t = Thresholds {
                wanted: w,
                missing: m,
            };
            assert!(t.validate().is_err(), "{t:?}");
        }
    }
}
