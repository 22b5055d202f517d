//! Events exchanged between Checkpoint edge agents and the central hub.
//!
//! Every event travels in an [`Envelope`]: a unique id (so the hub can ingest idempotently), the schema
//! version, who sent it and when. The payload is one of [`EventKind`]. Nothing here carries a face image or an
//! embedding of someone who is not on a watchlist: counts and camera health only, by design.

pub mod presence;
pub mod ranges;
pub mod signed;
pub mod watchlist;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

/// Version of the payload schema. Bumped on any incompatible change; receivers reject versions they do not know.
pub const SCHEMA_VERSION: u32 = 1;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Envelope {
    /// Unique per event (UUIDv7, so ids sort by creation time).
    pub id: Uuid,
    /// Schema version of `event`.
    pub v: u32,
    pub site: String,
    pub agent: String,
    /// When the event happened (UTC, RFC 3339).
    #[serde(with = "time::serde::rfc3339")]
    pub ts: OffsetDateTime,
    #[serde(flatten)]
    pub event: EventKind,
}

impl Envelope {
    pub fn new(site: &str, agent: &str, ts: OffsetDateTime, event: EventKind) -> Self {
        Self {
            id: Uuid::now_v7(),
            v: SCHEMA_VERSION,
            site: site.into(),
            agent: agent.into(),
            ts,
            event,
        }
    }

    /// The kind name used in MQTT topics and logs.
    pub fn kind(&self) -> &'static str {
        self.event.name()
    }

    /// Parses and validates an event received from outside.
    pub fn from_json(bytes: &[u8]) -> Result<Self, ProtocolError> {
        let env: Envelope =
            serde_json::from_slice(bytes).map_err(|e| ProtocolError::Malformed(e.to_string()))?;
        if env.v != SCHEMA_VERSION {
            return Err(ProtocolError::Version(env.v));
        }
        Ok(env)
    }

    pub fn to_json(&self) -> String {
        // Serialising these plain structs cannot fail (no maps with non-string keys, no custom serialisers).
        serde_json::to_string(self).unwrap_or_default()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ProtocolError {
    #[error("malformed event: {0}")]
    Malformed(String),
    #[error("unsupported schema version {0} (this build speaks {SCHEMA_VERSION})")]
    Version(u32),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    In,
    Out,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "data", rename_all = "snake_case")]
pub enum EventKind {
    /// One track crossed a counting line.
    LineCrossing(LineCrossing),
    /// Per-line counts for an interval, with running totals and site occupancy.
    Count(Count),
    /// A camera changed state.
    CameraStatus(CameraStatus),
    /// The agent came up or went down.
    AgentStatus(AgentStatus),
    /// A track's face matched a watchlist entry: a candidate for people to review, never a verdict.
    WatchlistMatch(WatchlistMatch),
    /// The watchlist version the agent holds, after every sync, refusal and expiry purge.
    WatchlistStatus(WatchlistStatus),
}

impl EventKind {
    pub fn name(&self) -> &'static str {
        match self {
            EventKind::LineCrossing(_) => "line_crossing",
            EventKind::Count(_) => "count",
            EventKind::CameraStatus(_) => "camera_status",
            EventKind::AgentStatus(_) => "agent_status",
            EventKind::WatchlistMatch(_) => "watchlist_match",
            EventKind::WatchlistStatus(_) => "watchlist_status",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LineCrossing {
    pub camera: String,
    pub line: String,
    pub direction: Direction,
    /// Tracker id, unique per camera for the agent's lifetime. Not an identity.
    pub track_id: u64,
    /// Position in the camera's stream, seconds.
    pub stream_time_s: f64,
    /// Whether the line bounds the site, so that its crossings change the site's occupancy (the line's
    /// `site_boundary` in the agent's config). Protocol 1.3; absent from older agents, whose crossings the hub
    /// counts as boundary crossings (the agents' default) and marks as such.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub site_boundary: Option<bool>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Count {
    pub camera: String,
    pub line: String,
    #[serde(with = "time::serde::rfc3339")]
    pub interval_start: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub interval_end: OffsetDateTime,
    /// Crossings inside the interval.
    pub entries: u64,
    pub exits: u64,
    /// Since the agent started.
    pub total_entries: u64,
    pub total_exits: u64,
    /// Site occupancy: entries minus exits over every line that bounds the site.
    pub occupancy: i64,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CameraState {
    #[default]
    Starting,
    Up,
    Reconnecting,
    Down,
    Ended,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CameraStatus {
    pub camera: String,
    pub state: CameraState,
    /// Frames analysed per second of wall time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fps: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// Frames analysed per second of stream time over the last seconds: the rate the tracker and the
    /// counting lines really see (protocol 1.3; absent from older agents and until it is measured).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effective_fps: Option<f64>,
    /// The rate frames are sampled at now: the camera's `analysis_fps`, or less while the agent sheds load
    /// (1.3; absent when every decoded frame is sampled).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sampling_fps: Option<f64>,
    /// The analysis rate this camera's counts need to be reliable (1.3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reliable_fps: Option<f64>,
    /// The camera is analysed below `reliable_fps`: its counts are unreliable while this holds (1.3; absent
    /// from older agents, which do not know).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub degraded: Option<bool>,
    /// Why, while `degraded` (1.3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub degraded_reason: Option<DegradedReason>,
    /// When the degraded period began, while `degraded` (1.3).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "time::serde::rfc3339::option"
    )]
    pub degraded_since: Option<OffsetDateTime>,
}

/// Why a camera is analysed below the rate its counts need.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DegradedReason {
    /// Analysis cannot keep up with every camera: the agent lowered the sampling rates evenly.
    Overload,
    /// The camera's `analysis_fps` is set below the reliable rate.
    Configured,
    /// The camera (or its decoding) delivers fewer frames than needed.
    Source,
}

impl DegradedReason {
    /// The name on the wire, in the database and in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            DegradedReason::Overload => "overload",
            DegradedReason::Configured => "configured",
            DegradedReason::Source => "source",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AgentState {
    Online,
    Offline,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentStatus {
    pub state: AgentState,
    pub version: String,
    #[serde(default)]
    pub cameras: Vec<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ListKind {
    Wanted,
    Missing,
}

impl ListKind {
    /// The name on the wire, in the database and in the API: `wanted` or `missing`.
    pub fn as_str(self) -> &'static str {
        match self {
            ListKind::Wanted => "wanted",
            ListKind::Missing => "missing",
        }
    }

    /// The list named `name` (as [`Self::as_str`] writes it), if any.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "wanted" => Some(ListKind::Wanted),
            "missing" => Some(ListKind::Missing),
            _ => None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WatchlistMatch {
    pub camera: String,
    pub track_id: u64,
    pub list: ListKind,
    /// The hub's id of the watchlist entry.
    pub entry_id: String,
    /// Watchlist version the agent matched against.
    pub watchlist_version: u64,
    /// Cosine similarity of the track's mean face to the entry's best template.
    pub similarity: f32,
    /// The list threshold the decision used.
    pub threshold: f32,
    /// Individual faces of the track that reached the threshold on their own.
    pub votes: u32,
    /// 1 for the best candidate of this track.
    pub rank: u32,
    /// Face attempts the decision used.
    pub faces_used: u32,
    /// JPEG of the matched face (base64), the only face that ever leaves the edge.
    pub snapshot_jpeg_b64: String,
    pub stream_time_s: f64,
    /// Model files used, e.g. `face_detection_yunet_2026may.onnx`.
    pub models: Vec<String>,
    /// What the match is worth, for the reviewers (protocol 1.1; absent from older agents).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evidence: Option<MatchEvidence>,
}

/// The calibrated evidence behind a candidate: how far the score cleared the list's operating point, how
/// much face went into it, and who else on the lists came close.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MatchEvidence {
    /// Mean face quality (0..1: size, sharpness of pose, detector confidence) of the faces fused.
    pub face_quality: f32,
    /// The next most similar entry of the lists and its similarity, if any was proposed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub second_entry: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub second_similarity: Option<f32>,
    /// Entries on the matched list when it was matched.
    pub list_entries: u64,
    /// The list's target false-alert rate per passer-by, and the rate expected at its operating point
    /// (absent when the agent held no policy: only the floor threshold applied).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_fpir: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_fpir: Option<f64>,
    /// Share of impostor comparisons that would score at least this similarity (from the model's
    /// calibration): the chance that one comparison with a stranger looks this alike.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score_fmr: Option<f64>,
}

/// What an agent reports about its watchlists. Counts and ids only, never templates.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WatchlistStatus {
    /// The version held, 0 for none.
    pub version: u64,
    pub wanted: u64,
    pub missing: u64,
    pub templates: u64,
    /// The agent cannot use deltas until it gets a full set: it holds nothing yet, or a delta did not
    /// start from its version. The hub answers with a full sync.
    pub needs_full_sync: bool,
    /// Why the most recent refused sync message was refused (since the agent started), for diagnosis;
    /// `rejected` says how many were.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// Sync messages refused since the agent started.
    pub rejected: u64,
    /// Entries dropped by the agent itself because they expired, in this report.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub expired: Vec<String>,
}

/// Topic the hub publishes watchlist sync messages to (see [`watchlist::SyncMessage`]); agents subscribe to
/// `checkpoint/<site>/<agent>/watchlist/#`.
pub fn watchlist_sync_topic(site: &str, agent: &str) -> String {
    format!("{TOPIC_ROOT}/{site}/{agent}/watchlist/sync")
}

/// MQTT topic of an event: `checkpoint/<site>/<agent>/<kind>`.
pub fn topic(site: &str, agent: &str, kind: &str) -> String {
    format!("{TOPIC_ROOT}/{site}/{agent}/{kind}")
}

/// First level of every Checkpoint topic.
pub const TOPIC_ROOT: &str = "checkpoint";

/// Whether `s` may be a site or agent id: 1-64 characters of `a-z 0-9 - _` (`docs/protocol.md`, Topics). The
/// ids are topic levels and broker usernames (`<site>.<agent>`), so neither wildcards, separators nor a dot may
/// appear in them.
pub fn valid_topic_id(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_ids_are_one_topic_level_and_no_wildcard() {
        for ok in ["pier-1", "a", "site_2", &"x".repeat(64)] {
            assert!(valid_topic_id(ok), "{ok}");
        }
        for bad in [
            "",
            "Pier",
            "a/b",
            "+",
            "#",
            "a.b",
            "a b",
            &"x".repeat(65),
            "é",
        ] {
            assert!(!valid_topic_id(bad), "{bad}");
        }
    }

    #[test]
    fn round_trip_keeps_id_and_payload() {
        let e = Envelope::new(
            "pier",
            "a1",
            OffsetDateTime::now_utc(),
            EventKind::LineCrossing(LineCrossing {
                camera: "c".into(),
                line: "l".into(),
                direction: Direction::In,
                track_id: 7,
                stream_time_s: 1.5,
                site_boundary: Some(true),
            }),
        );
        let j = e.to_json();
        assert!(j.contains("\"kind\":\"line_crossing\""), "{j}");
        let back = Envelope::from_json(j.as_bytes()).unwrap();
        assert_eq!(back.id, e.id);
        assert_eq!(back.event, e.event);
    }

    #[test]
    fn crossings_of_agents_before_1_3_parse_without_the_boundary_flag() {
        let old = r#"{"id":"01936f2e-5b1c-7cc2-9a41-1f0d3c2b8e77","v":1,"site":"pier","agent":"a1",
            "ts":"2026-11-24T05:12:03.512Z","kind":"line_crossing",
            "data":{"camera":"c","line":"l","direction":"out","track_id":3,"stream_time_s":2.0}}"#;
        let e = Envelope::from_json(old.as_bytes()).unwrap();
        let EventKind::LineCrossing(c) = &e.event else {
            panic!("{e:?}")
        };
        assert_eq!(c.site_boundary, None);
        // Written back without the field, so a 1.2 hub still takes what a 1.3 agent relays unflagged.
        assert!(!e.to_json().contains("site_boundary"));
        let flagged = old.replace(
            r#""stream_time_s":2.0}"#,
            r#""stream_time_s":2.0,"site_boundary":false}"#,
        );
        let e = Envelope::from_json(flagged.as_bytes()).unwrap();
        assert!(matches!(
            e.event,
            EventKind::LineCrossing(LineCrossing {
                site_boundary: Some(false),
                ..
            })
        ));
    }

    #[test]
    fn malformed_and_future_versions_are_rejected() {
        assert!(matches!(
            Envelope::from_json(b"{not json"),
            Err(ProtocolError::Malformed(_))
        ));
        assert!(matches!(
            Envelope::from_json(b"{}"),
            Err(ProtocolError::Malformed(_))
        ));
        let e = Envelope::new(
            "s",
            "a",
            OffsetDateTime::now_utc(),
            EventKind::AgentStatus(AgentStatus {
                state: AgentState::Online,
                version: "x".into(),
                cameras: vec![],
            }),
        );
        let j = e.to_json().replace("\"v\":1", "\"v\":99");
        assert!(matches!(
            Envelope::from_json(j.as_bytes()),
            Err(ProtocolError::Version(99))
        ));
    }

    #[test]
    fn camera_status_of_1_2_agents_still_parses_and_1_3_round_trips() {
        // As a 1.2 agent sends it.
        let old = r#"{"id":"01936f2e-5b1c-7cc2-9a41-1f0d3c2b8e77","v":1,"site":"s","agent":"a",
            "ts":"2026-11-24T05:12:03.512Z","kind":"camera_status",
            "data":{"camera":"gate","state":"up","fps":4.9,"detail":"1280x720"}}"#;
        let e = Envelope::from_json(old.as_bytes()).unwrap();
        let EventKind::CameraStatus(s) = &e.event else {
            panic!("{e:?}")
        };
        assert_eq!(
            (s.fps, s.degraded, s.effective_fps),
            (Some(4.9), None, None)
        );

        let since = time::macros::datetime!(2026-11-24 05:11:00 UTC);
        let new = Envelope::new(
            "s",
            "a",
            OffsetDateTime::now_utc(),
            EventKind::CameraStatus(CameraStatus {
                camera: "gate".into(),
                state: CameraState::Up,
                fps: Some(1.4),
                effective_fps: Some(1.38),
                sampling_fps: Some(1.4),
                reliable_fps: Some(2.0),
                degraded: Some(true),
                degraded_reason: Some(DegradedReason::Overload),
                degraded_since: Some(since),
                ..Default::default()
            }),
        );
        let j = new.to_json();
        assert!(
            j.contains(r#""degraded":true,"degraded_reason":"overload","degraded_since":"2026-11-24T05:11:00Z""#),
            "{j}"
        );
        assert_eq!(Envelope::from_json(j.as_bytes()).unwrap().event, new.event);
        // Unknown reasons are refused like any unknown value.
        let bad = j.replace("\"overload\"", "\"tired\"");
        assert!(Envelope::from_json(bad.as_bytes()).is_err());
    }
}
