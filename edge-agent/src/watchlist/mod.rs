//! Watchlists on the edge: the hub's "wanted" and "missing" lists, kept in sync, persisted, and matched
//! against tracks.
//!
//! - The data model ([`WatchlistEntry`], [`WatchlistSet`], [`Thresholds`]) and what the hub sends
//!   ([`SyncMessage::Full`], [`SyncMessage::Delta`]) live in the protocol crate, shared with the hub;
//!   [`parse_sync`] is the only way bytes from the network become a message. Templates are SFace 128-d
//!   unit vectors.
//! - [`WatchlistStore`] applies messages atomically, persists the set before using it, and publishes
//!   immutable [`WatchlistSnapshot`]s that camera threads read through a [`WatchlistHandle`].
//! - Vector search behind the [`TemplateIndex`] trait; [`ExactIndex`] is brute force.
//! - [`TrackMatcher`] decides per track, from several face attempts, and raises each (track, entry) pair at
//!   most once.
//!
//! A match is a candidate for people to review, never a verdict: thresholds are set from a measured
//! false-match rate (see `tests/calibration.rs`), and every decision needs more than one face.

pub mod enrol;
mod index;
mod matcher;
mod service;
mod snapshot;
pub mod stills;
mod store;
#[cfg(test)]
pub(crate) mod testutil;

use std::path::PathBuf;

pub use checkpoint_protocol::watchlist::{
    parse_sync, Policies, SyncError, SyncMessage, Thresholds, WatchlistEntry, WatchlistSet,
    DEFAULT_MAX_SYNC_BYTES, DEFAULT_MISSING_THRESHOLD, DEFAULT_WANTED_THRESHOLD,
    MAX_TEMPLATES_PER_ENTRY, MIN_THRESHOLD, TEMPLATE_DIM,
};
pub use checkpoint_protocol::ListKind;
pub use index::{ExactIndex, FaissIndex, IndexBuilder, TemplateIndex};
pub use matcher::{Candidate, MatchConfig, TrackMatcher};
pub use service::{list_name, SyncInbox, SyncTrust, WatchlistService};
pub use snapshot::{face_snapshot, SnapshotError};
pub use store::{ApplyOutcome, Operating, WatchlistHandle, WatchlistSnapshot, WatchlistStore};

// Templates are what the embedder produces.
const _: () = assert!(TEMPLATE_DIM == checkpoint_vision::EMBEDDING_DIM);

/// Why a sync message, a persisted file or a store operation was refused. Every refusal leaves the held
/// set and version exactly as they were.
#[derive(Debug, thiserror::Error)]
pub enum WatchlistError {
    /// The message (or persisted file) itself is invalid.
    #[error(transparent)]
    Invalid(#[from] SyncError),
    #[error(
        "delta is based on version {base} but this agent holds version {current}: a full sync is needed"
    )]
    VersionGap { current: u64, base: u64 },
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
    #[error("the watchlist in {0} is open in another process (a running agent?): stop it first")]
    Locked(PathBuf),
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
