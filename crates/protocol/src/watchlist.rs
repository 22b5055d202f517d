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
mod tests;
