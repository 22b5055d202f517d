//! Watchlists as they travel from the hub to the agents: the entry model, the sync messages (full set or
//! delta), and the validation every receiver runs before it trusts a byte of them.
//!
//! What the hub sends is a full set, or a delta on top of a version the agent holds.
//!
//! Wire format: one JSON object per message, tagged by `"type"` (`"full"` or `"delta"`); entries as in
//! [`WatchlistEntry`], `expires_at` in RFC 3339. Unknown fields are ignored so a newer hub can add some
//! without stranding older agents.
//!
//! Expiry is judged when a message is applied, not when it is parsed (parsing has no clock): an entry that
//! has already expired is skipped (the agent reports it as dropped), and the rest of the message still
//! applies. Refusing the whole message instead would leave the agent on an older list,
//! still matching entries the hub has since removed, just because one entry expired in transit.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::ListKind;
pub use checkpoint_openset::ListPolicy;

/// Why a sync message (or a persisted set) is invalid. Checked without a clock and without the receiver's
/// state; version continuity against the held set is the receiver's check.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("sync payload is {size} bytes, over the {max}-byte limit")]
    TooLarge { size: usize, max: usize },
    #[error("malformed sync message: {0}")]
    Malformed(String),
    /// `index` is the entry's position in the message (or file); `id` may be empty when the id itself is bad.
    #[error("watchlist entry #{index} (id '{id}'): {reason}")]
    InvalidEntry {
        index: usize,
        id: String,
        reason: String,
    },
    #[error("thresholds: {0}")]
    InvalidThresholds(String),
    #[error("entry id '{0}' appears more than once")]
    DuplicateId(String),
    #[error("delta both adds and removes entry '{0}'")]
    Conflict(String),
    #[error("delta goes from version {base} to {version}: the new version must be greater")]
    VersionNotIncreasing { base: u64, version: u64 },
    #[error(
        "version {0} is impossible: versions are milliseconds since 1970 and at most {MAX_VERSION}"
    )]
    ImpossibleVersion(u64),
}

/// The highest version any hub issues. Versions are milliseconds since the epoch (year 2026 is about 1.8e12);
/// 2^53 is far beyond any clock, still exact as a JSON number in a browser, and below `i64::MAX`, so no
/// arithmetic on a version at either end can wrap.
pub const MAX_VERSION: u64 = 1 << 53;

/// Templates are SFace embeddings: 128 values, L2-normalised. The vision crate asserts its model agrees.
pub const TEMPLATE_DIM: usize = 128;

/// Default cosine threshold for the wanted list: SFace's false-match rate of 1e-4 per comparison on LFW
/// fold 1, rounded up (the agent's `tests/calibration.rs` fails if this is ever looser than the measurement). Wanted
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

/// No list's floor may be set above this cosine. Beyond it SFace misses a large share of genuine pairs, so a
/// floor of 0.9 or 1.0 (what a forged or broken sync would send to blind an agent) is refused, not applied.
/// Stricter operating points come from the lists' policies, which the agent turns into thresholds itself.
pub const MAX_THRESHOLD: f32 = 0.60;

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

    pub fn validate(&self) -> Result<(), SyncError> {
        for (name, t) in [("wanted", self.wanted), ("missing", self.missing)] {
            if !t.is_finite() || !(MIN_THRESHOLD..=MAX_THRESHOLD).contains(&t) {
                return Err(SyncError::InvalidThresholds(format!(
                    "`{name}` = {t} must lie in [{MIN_THRESHOLD}, {MAX_THRESHOLD}]"
                )));
            }
        }
        Ok(())
    }
}

/// What the hub's administrator set per list: the false-alert rate each list may cost. The agent turns it
/// into the threshold for the number of entries it holds (see `checkpoint-openset`), so a list that grows
/// through deltas gets stricter at once, without waiting for the next full sync.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policies {
    pub wanted: ListPolicy,
    pub missing: ListPolicy,
}

impl Default for Policies {
    /// Wanted: at most one false candidate per 1,000 passers-by, since a wanted alert leads to a stop.
    /// Missing: one per 100, since a missed child costs more than a second look at a stranger.
    fn default() -> Self {
        Self {
            wanted: ListPolicy {
                target_fpir: 0.001,
                max_fnir: 0.10,
            },
            missing: ListPolicy {
                target_fpir: 0.01,
                max_fnir: 0.05,
            },
        }
    }
}

impl Policies {
    pub fn for_list(&self, list: ListKind) -> &ListPolicy {
        match list {
            ListKind::Wanted => &self.wanted,
            ListKind::Missing => &self.missing,
        }
    }

    pub fn validate(&self) -> Result<(), SyncError> {
        for (name, p) in [("wanted", &self.wanted), ("missing", &self.missing)] {
            p.validate()
                .map_err(|e| SyncError::InvalidThresholds(format!("policy `{name}`: {e}")))?;
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
    pub fn validate(&mut self, index: usize) -> Result<(), SyncError> {
        let bad = |id: &str, reason: String| SyncError::InvalidEntry {
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
    if t.len() != TEMPLATE_DIM {
        return Err(format!("has {} values, expected {TEMPLATE_DIM}", t.len()));
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
    /// Floors: no list is matched below these, whatever its policy allows.
    pub thresholds: Thresholds,
    /// The lists' policies (absent from sets saved before policies existed: the floors alone apply).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policies: Option<Policies>,
}

impl Default for WatchlistSet {
    /// Version 0, nothing listed: what an agent holds before its first full sync.
    fn default() -> Self {
        Self {
            version: 0,
            entries: Vec::new(),
            thresholds: Thresholds::default(),
            policies: None,
        }
    }
}

impl WatchlistSet {
    /// Validates thresholds and every entry (normalising templates) and refuses duplicate ids.
    pub fn validate(&mut self) -> Result<(), SyncError> {
        self.thresholds.validate()?;
        if let Some(p) = &self.policies {
            p.validate()?;
        }
        validate_entries(&mut self.entries)
    }

    /// Entries on `list`.
    pub fn count(&self, list: ListKind) -> usize {
        self.entries.iter().filter(|e| e.list == list).count()
    }

    /// Templates on `list`: the comparisons a face makes with it, which is what a false-alert rate per
    /// passer-by scales with (an entry matches by its best template).
    pub fn templates(&self, list: ListKind) -> usize {
        self.entries
            .iter()
            .filter(|e| e.list == list)
            .map(|e| e.templates.len())
            .sum()
    }
}

/// Validates a batch of entries and refuses duplicate ids within it.
fn validate_entries(entries: &mut [WatchlistEntry]) -> Result<(), SyncError> {
    let mut seen = std::collections::HashSet::with_capacity(entries.len());
    for (i, e) in entries.iter_mut().enumerate() {
        e.validate(i)?;
        if !seen.insert(e.id.clone()) {
            return Err(SyncError::DuplicateId(e.id.clone()));
        }
    }
    Ok(())
}

/// Default cap on a sync payload: room for ~20,000 entries of two templates, and a bound on what a
/// hostile or broken peer can make the agent allocate.
pub const DEFAULT_MAX_SYNC_BYTES: usize = 16 << 20;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum SyncMessage {
    /// The whole set: replaces whatever the agent holds. A version older than the held one is refused.
    Full {
        version: u64,
        entries: Vec<WatchlistEntry>,
        /// Floors per list (the operating point the hub computed for the site's list sizes).
        thresholds: Thresholds,
        /// The lists' policies; absent from hubs that predate them.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        policies: Option<Policies>,
    },
    /// Changes from `base_version` to `version`. `add` inserts or replaces by id; `remove` (withdrawn
    /// entries) and `expire` (entries past their term) delete by id, and ids the agent does not hold are
    /// ignored (it may have purged them itself). Thresholds stay as they are.
    Delta {
        base_version: u64,
        version: u64,
        #[serde(default)]
        add: Vec<WatchlistEntry>,
        #[serde(default)]
        remove: Vec<String>,
        #[serde(default)]
        expire: Vec<String>,
        /// New floors and policies, when the administrator changed them or the list's size moved its
        /// operating point; absent: the held ones stay.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        thresholds: Option<Thresholds>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        policies: Option<Policies>,
    },
}

impl SyncMessage {
    /// The version the agent holds once this message is applied.
    pub fn version(&self) -> u64 {
        match self {
            SyncMessage::Full { version, .. } | SyncMessage::Delta { version, .. } => *version,
        }
    }

    /// Checks everything that needs no clock and no held state, normalising templates in place.
    pub fn validate(&mut self) -> Result<(), SyncError> {
        let (base, version) = match self {
            SyncMessage::Full { version, .. } => (0, *version),
            SyncMessage::Delta {
                base_version,
                version,
                ..
            } => (*base_version, *version),
        };
        if let Some(v) = [base, version].into_iter().find(|v| *v > MAX_VERSION) {
            return Err(SyncError::ImpossibleVersion(v));
        }
        match self {
            SyncMessage::Full {
                entries,
                thresholds,
                policies,
                ..
            } => {
                thresholds.validate()?;
                if let Some(p) = policies {
                    p.validate()?;
                }
                validate_entries(entries)
            }
            SyncMessage::Delta {
                base_version,
                version,
                add,
                remove,
                expire,
                thresholds,
                policies,
            } => {
                if let Some(t) = thresholds {
                    t.validate()?;
                }
                if let Some(p) = policies {
                    p.validate()?;
                }
                if *version <= *base_version {
                    return Err(SyncError::VersionNotIncreasing {
                        base: *base_version,
                        version: *version,
                    });
                }
                validate_entries(add)?;
                for (field, ids) in [("remove", &*remove), ("expire", &*expire)] {
                    if let Some((i, _)) = ids.iter().enumerate().find(|(_, id)| !valid_entry_id(id))
                    {
                        return Err(SyncError::Malformed(format!(
                            "`{field}` item {i} is not a valid entry id"
                        )));
                    }
                }
                // An id both added and deleted has no defined outcome: refuse rather than guess.
                if let Some(e) = add
                    .iter()
                    .find(|e| remove.contains(&e.id) || expire.contains(&e.id))
                {
                    return Err(SyncError::Conflict(e.id.clone()));
                }
                Ok(())
            }
        }
    }
}

/// An entry id: any printable text up to 128 bytes (entries are named by the hub, not used in topics).
fn valid_entry_id(id: &str) -> bool {
    !id.trim().is_empty() && id.len() <= 128 && !id.chars().any(char::is_control)
}

/// Parses and validates a sync payload from the network. Never panics; every defect is an error that says
/// what is wrong. `max_bytes` bounds the payload before any parsing.
pub fn parse_sync(bytes: &[u8], max_bytes: usize) -> Result<SyncMessage, SyncError> {
    if bytes.len() > max_bytes {
        return Err(SyncError::TooLarge {
            size: bytes.len(),
            max: max_bytes,
        });
    }
    // serde_json bounds nesting depth itself, so hostile nesting is an error, not a stack overflow.
    let mut msg: SyncMessage =
        serde_json::from_slice(bytes).map_err(|e| SyncError::Malformed(e.to_string()))?;
    msg.validate()?;
    Ok(msg)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    /// A unit template pointing mostly along axis `axis`, with a little of `axis + 1`.
    pub fn template(axis: usize, tilt: f32) -> Vec<f32> {
        let mut v = vec![0.0; TEMPLATE_DIM];
        v[axis % TEMPLATE_DIM] = 1.0;
        v[(axis + 1) % TEMPLATE_DIM] = tilt;
        let n = (1.0 + tilt * tilt).sqrt();
        v.iter_mut().for_each(|x| *x /= n);
        v
    }

    pub fn entry(id: &str, list: ListKind, axis: usize) -> WatchlistEntry {
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
                Box::new(|e| e.templates[0] = vec![0.0; TEMPLATE_DIM]),
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
        // 1.0 is what a forged sync sent to blind an agent (issue 12, finding 2).
        for (w, m) in [
            (0.1, 0.5),
            (0.5, f32::NAN),
            (1.5, 0.5),
            (0.5, -0.2),
            (1.0, 1.0),
            (0.61, 0.4),
        ] {
            let t = Thresholds {
                wanted: w,
                missing: m,
            };
            assert!(t.validate().is_err(), "{t:?}");
        }
    }

    mod sync {
        use super::*;

        #[test]
        fn impossible_versions_are_refused_before_anything_else() {
            // u64::MAX pinned an agent's list for good (issue 12, finding 2); i64::MAX froze the hub's (finding 3).
            for v in [u64::MAX, i64::MAX as u64, MAX_VERSION + 1] {
                let bytes = full_json(v, &[]);
                assert!(
                    matches!(parse_sync(&bytes, DEFAULT_MAX_SYNC_BYTES), Err(SyncError::ImpossibleVersion(x)) if x == v),
                    "{v}"
                );
                let mut d = SyncMessage::Delta {
                    base_version: v,
                    version: v.saturating_add(1),
                    add: vec![],
                    remove: vec![],
                    expire: vec![],
                    thresholds: None,
                    policies: None,
                };
                assert!(matches!(d.validate(), Err(SyncError::ImpossibleVersion(_))));
            }
            assert!(parse_sync(&full_json(MAX_VERSION, &[]), DEFAULT_MAX_SYNC_BYTES).is_ok());
        }

        #[test]
        fn policies_travel_with_full_and_delta_and_bad_ones_are_refused() {
            let p = Policies::default();
            let full = SyncMessage::Full {
                version: 3,
                entries: vec![entry("a", ListKind::Wanted, 1)],
                thresholds: Thresholds::default(),
                policies: Some(p),
            };
            let bytes = serde_json::to_vec(&full).unwrap();
            assert_eq!(parse_sync(&bytes, DEFAULT_MAX_SYNC_BYTES).unwrap(), full);
            // A 1.0 hub's message (no policies) still parses.
            let old = full_json(3, &[entry("a", ListKind::Wanted, 1)]);
            assert!(!String::from_utf8_lossy(&old).contains("policies"));
            assert!(parse_sync(&old, DEFAULT_MAX_SYNC_BYTES).is_ok());
            let delta = br#"{"type":"delta","base_version":3,"version":4,
                "policies":{"wanted":{"target_fpir":0.0001,"max_fnir":0.2},"missing":{"target_fpir":0.01,"max_fnir":0.05}}}"#;
            match parse_sync(delta, DEFAULT_MAX_SYNC_BYTES).unwrap() {
                SyncMessage::Delta {
                    policies,
                    thresholds,
                    ..
                } => {
                    assert_eq!(policies.unwrap().wanted.target_fpir, 0.0001);
                    assert!(thresholds.is_none());
                }
                other => panic!("{other:?}"),
            }
            for bad in [
                r#""wanted":{"target_fpir":1.0,"max_fnir":0.1}"#,
                r#""wanted":{"target_fpir":0.0,"max_fnir":0.1}"#,
                r#""wanted":{"target_fpir":0.001,"max_fnir":1.5}"#,
                r#""wanted":{"target_fpir":0.001,"max_fnir":0.1,"extra":1}"#,
            ] {
                let msg = format!(
                    r#"{{"type":"delta","base_version":3,"version":4,"policies":{{{bad},"missing":{{"target_fpir":0.01,"max_fnir":0.05}}}}}}"#
                );
                assert!(
                    parse_sync(msg.as_bytes(), DEFAULT_MAX_SYNC_BYTES).is_err(),
                    "{msg}"
                );
            }
            let bad_floor = br#"{"type":"delta","base_version":3,"version":4,"thresholds":{"wanted":0.1,"missing":0.4}}"#;
            assert!(matches!(
                parse_sync(bad_floor, DEFAULT_MAX_SYNC_BYTES),
                Err(SyncError::InvalidThresholds(_))
            ));
        }

        fn full_json(version: u64, entries: &[WatchlistEntry]) -> Vec<u8> {
            serde_json::to_vec(&SyncMessage::Full {
                version,
                entries: entries.to_vec(),
                thresholds: Thresholds::default(),
                policies: None,
            })
            .unwrap()
        }

        #[test]
        fn full_and_delta_round_trip_through_json() {
            let full = full_json(3, &[entry("a", ListKind::Wanted, 1)]);
            let text = String::from_utf8(full.clone()).unwrap();
            assert!(text.contains(r#""type":"full""#), "{text}");
            assert!(text.contains(r#""list":"wanted""#), "{text}");
            assert!(
                text.contains(r#""expires_at":"2030-01-01T00:00:00Z""#),
                "{text}"
            );
            match parse_sync(&full, DEFAULT_MAX_SYNC_BYTES).unwrap() {
                SyncMessage::Full {
                    version, entries, ..
                } => {
                    assert_eq!(version, 3);
                    assert_eq!(entries, vec![entry("a", ListKind::Wanted, 1)]);
                }
                m => panic!("{m:?}"),
            }
            let delta =
                br#"{"type":"delta","base_version":3,"version":4,"remove":["a"],"future_field":1}"#;
            assert_eq!(
                parse_sync(delta, DEFAULT_MAX_SYNC_BYTES).unwrap(),
                SyncMessage::Delta {
                    base_version: 3,
                    version: 4,
                    add: vec![],
                    remove: vec!["a".into()],
                    expire: vec![],
                    policies: None,
                    thresholds: None,
                }
            );
        }

        #[test]
        fn each_defect_gets_an_error_that_names_it() {
            let ok = serde_json::to_value(SyncMessage::Full {
                version: 1,
                entries: vec![entry("a", ListKind::Missing, 1)],
                thresholds: Thresholds::default(),
                policies: None,
            })
            .unwrap();
            let spoilt = |f: &dyn Fn(&mut serde_json::Value)| {
                let mut v = ok.clone();
                f(&mut v);
                serde_json::to_vec(&v).unwrap()
            };
            let cases: Vec<(Vec<u8>, &str)> = vec![
                (b"\x00\xff garbage".to_vec(), "malformed"),
                (b"{\"type\":\"full\"".to_vec(), "malformed"),
                (b"[]".to_vec(), "malformed"),
                (b"{\"type\":\"nope\"}".to_vec(), "malformed"),
                (
                    spoilt(&|v| v["entries"][0]["templates"][0] = serde_json::json!([0.5, 0.5])),
                    "has 2 values, expected 128",
                ),
                (
                    spoilt(&|v| v["entries"][0]["templates"][1][3] = serde_json::json!(1e300)),
                    "not finite",
                ),
                (
                    // JSON has no NaN: a peer that writes one sends invalid JSON.
                    String::from_utf8(spoilt(&|v| {
                        v["entries"][0]["templates"][1][3] = serde_json::json!(7.25)
                    }))
                    .unwrap()
                    .replacen("7.25", "NaN", 1)
                    .into_bytes(),
                    "malformed",
                ),
                (
                    spoilt(&|v| {
                        v["entries"][0]
                            .as_object_mut()
                            .unwrap()
                            .remove("legal_basis");
                    }),
                    "missing field `legal_basis`",
                ),
                (
                    spoilt(&|v| v["entries"][0]["legal_basis"] = "".into()),
                    "`legal_basis` is empty",
                ),
                (
                    spoilt(&|v| v["entries"][0]["expires_at"] = "next tuesday".into()),
                    "malformed",
                ),
                (
                    spoilt(&|v| v["thresholds"]["wanted"] = serde_json::json!(0.05)),
                    "`wanted` = 0.05",
                ),
                (
                    spoilt(&|v| {
                        let e = v["entries"][0].clone();
                        v["entries"].as_array_mut().unwrap().push(e);
                    }),
                    "appears more than once",
                ),
                (
                    br#"{"type":"delta","base_version":4,"version":4}"#.to_vec(),
                    "must be greater",
                ),
                (
                    br#"{"type":"delta","base_version":1,"version":2,"remove":[""]}"#.to_vec(),
                    "`remove` item 0",
                ),
            ];
            for (bytes, want) in cases {
                let err = parse_sync(&bytes, DEFAULT_MAX_SYNC_BYTES)
                    .unwrap_err()
                    .to_string();
                assert!(err.contains(want), "error '{err}' should mention '{want}'");
            }

            let mut conflict = SyncMessage::Delta {
                base_version: 1,
                version: 2,
                add: vec![entry("a", ListKind::Wanted, 1)],
                remove: vec![],
                expire: vec!["a".into()],
                policies: None,
                thresholds: None,
            };
            assert!(matches!(
                conflict.validate(),
                Err(SyncError::Conflict(id)) if id == "a"
            ));

            let big = full_json(1, &[entry("a", ListKind::Wanted, 1)]);
            let err = parse_sync(&big, 100).unwrap_err();
            assert!(matches!(err, SyncError::TooLarge { max: 100, .. }), "{err}");
        }

        /// Deterministic xorshift, so a failure reproduces.
        struct Rng(u64);
        impl Rng {
            fn next(&mut self) -> u64 {
                self.0 ^= self.0 << 13;
                self.0 ^= self.0 >> 7;
                self.0 ^= self.0 << 17;
                self.0
            }
            fn below(&mut self, n: usize) -> usize {
                (self.next() % n as u64) as usize
            }
        }

        /// One way to break a valid message, each guaranteed to make it invalid.
        fn mangle(v: &mut serde_json::Value, rng: &mut Rng) {
            use serde_json::json;
            let n = v["entries"].as_array().map_or(0, Vec::len);
            let e = rng.below(n.max(1));
            const FIELDS: [&str; 8] = [
                "id",
                "list",
                "label",
                "case_ref",
                "legal_basis",
                "issued_by",
                "expires_at",
                "templates",
            ];
            const TEXT: [&str; 5] = ["id", "label", "case_ref", "legal_basis", "issued_by"];
            match rng.below(12) {
                0 => {
                    let f = FIELDS[rng.below(FIELDS.len())];
                    v["entries"][e].as_object_mut().map(|o| o.remove(f));
                }
                1 => {
                    let len = [0, 1, 127, 129, 256][rng.below(5)];
                    v["entries"][e]["templates"][0] = json!(vec![0.1; len]);
                }
                2 => {
                    let bad = [
                        json!(1e39),
                        json!(-1e300),
                        json!("NaN"),
                        json!(null),
                        json!([1.0]),
                    ];
                    v["entries"][e]["templates"][0][rng.below(128)] =
                        bad[rng.below(bad.len())].clone();
                }
                3 => {
                    let f = TEXT[rng.below(TEXT.len())];
                    let bad = [
                        json!(""),
                        json!("   "),
                        json!("a\u{7}b"),
                        json!(7),
                        json!("x".repeat(2000)),
                    ];
                    v["entries"][e][f] = bad[rng.below(bad.len())].clone();
                }
                4 => {
                    v["entries"][e]["list"] =
                        [json!("vip"), json!("Wanted"), json!(""), json!(1)][rng.below(4)].clone()
                }
                5 => {
                    v["entries"][e]["expires_at"] =
                        json!(["2030-13-01T00:00:00Z", "tomorrow", "1893456000", ""][rng.below(4)])
                }
                6 => {
                    v["version"] =
                        [json!(-1), json!("7"), json!(1.5), json!(null)][rng.below(4)].clone()
                }
                7 => v["type"] = json!(["", "FULL", "delta_", "patch"][rng.below(4)]),
                8 => {
                    let f = ["wanted", "missing"][rng.below(2)];
                    v["thresholds"][f] = [
                        json!(0.0),
                        json!(-0.5),
                        json!(1.01),
                        json!(0.29),
                        json!("0.5"),
                    ][rng.below(5)]
                    .clone();
                }
                9 => v["entries"][e]["templates"] = json!([]),
                10 => {
                    let dup = v["entries"][e].clone();
                    if let Some(a) = v["entries"].as_array_mut() {
                        a.push(dup);
                    }
                }
                _ => {
                    // Turn it into a delta that does not move forward.
                    let ver = v["version"].clone();
                    v["type"] = json!("delta");
                    v["base_version"] = ver;
                }
            }
        }

        #[test]
        fn ten_thousand_random_and_malformed_payloads_are_all_refused_without_panic() {
            let entries: Vec<WatchlistEntry> = (0..4)
                .map(|i| entry(&format!("e{i}"), ListKind::Wanted, i * 5))
                .collect();
            let valid = full_json(5, &entries);
            let valid_value: serde_json::Value = serde_json::from_slice(&valid).unwrap();
            parse_sync(&valid, DEFAULT_MAX_SYNC_BYTES).unwrap();
            let fragments: [&[u8]; 14] = [
                b"{",
                b"}",
                b"[",
                b"]",
                b"\"",
                b",",
                b":",
                b"null",
                b"NaN",
                b"-1e999",
                b"\"type\"",
                b"\"full\"",
                b"\\u0000",
                b"\xf0\x28\x8c",
            ];
            let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
            for i in 0..10_000 {
                let bytes: Vec<u8> = match i % 5 {
                    0 => (0..rng.below(300)).map(|_| rng.next() as u8).collect(),
                    1 => (0..rng.below(40))
                        .flat_map(|_| fragments[rng.below(fragments.len())].to_vec())
                        .collect(),
                    // A strict prefix of a JSON object never closes it.
                    2 => valid[..rng.below(valid.len())].to_vec(),
                    3 => {
                        let mut v = valid_value.clone();
                        mangle(&mut v, &mut rng);
                        serde_json::to_vec(&v).unwrap()
                    }
                    _ => {
                        let depth = 1 + rng.below(100_000);
                        let mut b = vec![b'['; depth];
                        b.extend(std::iter::repeat_n(b']', rng.below(depth + 1)));
                        b
                    }
                };
                match parse_sync(&bytes, DEFAULT_MAX_SYNC_BYTES) {
                    Ok(m) => panic!(
                        "payload {i} accepted: {}\n{m:?}",
                        String::from_utf8_lossy(&bytes[..bytes.len().min(400)])
                    ),
                    Err(e) => assert!(!e.to_string().is_empty()),
                }
            }
        }

        #[test]
        fn byte_flips_never_panic_and_whatever_passes_is_valid() {
            let valid = full_json(5, &[entry("a", ListKind::Wanted, 1)]);
            let mut rng = Rng(42);
            for _ in 0..2_000 {
                let mut b = valid.clone();
                for _ in 0..1 + rng.below(4) {
                    let at = rng.below(b.len());
                    b[at] = rng.next() as u8;
                }
                // Some flips land in a digit or a label and leave a well-formed message; those must still have
                // passed every check.
                if let Ok(mut m) = parse_sync(&b, DEFAULT_MAX_SYNC_BYTES) {
                    m.validate().unwrap();
                }
            }
        }
    }
}
