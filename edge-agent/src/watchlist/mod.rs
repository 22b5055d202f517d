//! Watchlists on the edge: the hub's "wanted" and "missing" lists, kept in sync, persisted, and matched
//! against tracks.
//!
//! - The data model ([`WatchlistEntry`], [`WatchlistSet`], [`Thresholds`]) and its validation. Templates are
//!   SFace 128-d unit vectors.
//! - What the hub sends: [`SyncMessage::Full`] and [`SyncMessage::Delta`], and [`parse_sync`], the only way
//!   bytes from the network become a message.
//! - [`WatchlistStore`] applies messages atomically, persists the set before using it, and publishes
//!   immutable [`WatchlistSnapshot`]s that camera threads read through a [`WatchlistHandle`].
//! - Vector search behind the [`TemplateIndex`] trait; [`ExactIndex`] is brute force.
//! - [`TrackMatcher`] decides per track, from several face attempts, and raises each (track, entry) pair at
//!   most once.
//!
//! A match is a candidate for people to review, never a verdict: thresholds are set from a measured
//! false-match rate (see `tests/calibration.rs`), and every decision needs more than one face.

mod index;
mod matcher;
mod model;
mod store;
mod sync;

use std::path::PathBuf;

pub use index::{ExactIndex, IndexBuilder, TemplateIndex};
pub use matcher::{Candidate, MatchConfig, TrackMatcher};
pub use model::{
    ListKind, Thresholds, WatchlistEntry, WatchlistSet, DEFAULT_MISSING_THRESHOLD,
    DEFAULT_WANTED_THRESHOLD, MAX_TEMPLATES_PER_ENTRY, MIN_THRESHOLD,
};
pub use store::{ApplyOutcome, WatchlistHandle, WatchlistSnapshot, WatchlistStore};
pub use sync::{parse_sync, SyncMessage, DEFAULT_MAX_SYNC_BYTES};

/// Why a sync message, a persisted file or a store operation was refused. Every refusal leaves the held
/// set and version exactly as they were.
#[derive(Debug, thiserror::Error)]
pub enum WatchlistError {
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
    #[error(
        "delta is based on version {base} but this agent holds version {current}: a full sync is needed"
    )]
    VersionGap { current: u64, base: u64 },
    #[error("delta goes from version {base} to {version}: the new version must be greater")]
    VersionNotIncreasing { base: u64, version: u64 },
    #[error(
        "full sync to version {offered} is older than the held version {current}; ignored as stale"
    )]
    Stale { current: u64, offered: u64 },
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("persisted watchlist {path} is unusable: {reason}")]
    Corrupt { path: PathBuf, reason: String },
}

impl WatchlistError {
    /// Whether the caller should ask the hub for a full sync: the agent's version no longer lines up with the
    /// hub's deltas.
    pub fn needs_full_sync(&self) -> bool {
        matches!(self, WatchlistError::VersionGap { .. })
    }
}
