//! Outbox settings and their TOML shape.

use std::fmt;
use std::time::Duration;

use serde::de::{self, MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::OutboxError;

/// Smallest accepted `segment_bytes`: below this the per-file overhead dominates.
pub const MIN_SEGMENT_BYTES: u64 = 1024;

/// When appended records and acknowledgement state are forced to stable storage.
///
/// In TOML (the canonical forms):
///
/// ```toml
/// fsync = "always"              # fdatasync after every append and every ack
/// fsync = "never"               # leave it to the kernel
/// fsync = { interval_ms = 200 } # at most every 200 ms, from append/ack or `Outbox::tick()`
/// ```
///
/// The string `"interval_ms = 200"` is accepted as a spelling of the last form.
///
/// Whatever the policy, a record whose `append` returned `Ok` survives the *process* being
/// killed (the data is in the kernel's page cache). The policy only decides what survives a
/// *power loss*: with `interval`, the records of the last interval may be lost; with `never`,
/// whatever the kernel had not written back yet. Compaction always fsyncs (it replaces
/// records that may already be durable).
///
/// The default is `always`: event rates are low (counts every few seconds, rare alerts), so an
/// fdatasync per event is cheap insurance against power cuts at the roadside.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum FsyncPolicy {
    /// fdatasync after each append; the ack file is fsynced on each ack.
    #[default]
    Always,
    /// fsync at most this often, from the append/ack path or from `Outbox::tick()`.
    Interval(Duration),
    /// Never fsync: survives a crash of the process, not a power loss.
    Never,
}

impl fmt::Display for FsyncPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FsyncPolicy::Always => f.write_str("always"),
            FsyncPolicy::Never => f.write_str("never"),
            FsyncPolicy::Interval(d) => write!(f, "interval_ms = {}", d.as_millis()),
        }
    }
}

impl Serialize for FsyncPolicy {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            FsyncPolicy::Always => s.serialize_str("always"),
            FsyncPolicy::Never => s.serialize_str("never"),
            FsyncPolicy::Interval(d) => {
                let mut m = s.serialize_map(Some(1))?;
                let ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
                m.serialize_entry("interval_ms", &ms)?;
                m.end()
            }
        }
    }
}

impl<'de> Deserialize<'de> for FsyncPolicy {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(FsyncVisitor)
    }
}

struct FsyncVisitor;

const EXPECTED: &str = r#""always", "never" or { interval_ms = N }"#;

impl<'de> Visitor<'de> for FsyncVisitor {
    type Value = FsyncPolicy;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(EXPECTED)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<FsyncPolicy, E> {
        match v.trim() {
            "always" => Ok(FsyncPolicy::Always),
            "never" => Ok(FsyncPolicy::Never),
            other => {
                let ms = other
                    .strip_prefix("interval_ms")
                    .and_then(|rest| rest.trim_start().strip_prefix('='))
                    .and_then(|n| n.trim().parse::<u64>().ok())
                    .ok_or_else(|| E::invalid_value(de::Unexpected::Str(v), &EXPECTED))?;
                Ok(FsyncPolicy::Interval(Duration::from_millis(ms)))
            }
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<FsyncPolicy, A::Error> {
        let mut ms: Option<u64> = None;
        while let Some(key) = map.next_key::<String>()? {
            if key != "interval_ms" {
                return Err(de::Error::unknown_field(&key, &["interval_ms"]));
            }
            if ms.is_some() {
                return Err(de::Error::duplicate_field("interval_ms"));
            }
            ms = Some(map.next_value()?);
        }
        let ms = ms.ok_or_else(|| de::Error::missing_field("interval_ms"))?;
        Ok(FsyncPolicy::Interval(Duration::from_millis(ms)))
    }
}

/// Outbox settings, e.g. an `[outbox]` table in `site.toml`:
///
/// ```toml
/// [outbox]
/// fsync = "always"          # "always" | "never" | { interval_ms = 200 }
/// max_bytes = 268435456     # disk bound for all segment files (256 MiB)
/// segment_bytes = 4194304   # rotate segment files at this size (4 MiB)
/// ```
///
/// Every key is optional (defaults above); unknown keys are rejected.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OutboxConfig {
    /// When data and ack state are forced to disk.
    pub fsync: FsyncPolicy,
    /// Bound on the bytes of all segment files. Exceeding it triggers count compaction, then
    /// dropping of status/other records; only alerts may push usage past it.
    pub max_bytes: u64,
    /// A segment file is closed and a new one started when the next record would take it
    /// past this size. Fully acknowledged closed segments are deleted.
    pub segment_bytes: u64,
}

impl Default for OutboxConfig {
    fn default() -> Self {
        Self {
            fsync: FsyncPolicy::default(),
            max_bytes: 256 * 1024 * 1024,
            segment_bytes: 4 * 1024 * 1024,
        }
    }
}

impl OutboxConfig {
    /// Checks the sizes make sense together; `Outbox::open` calls this.
    pub fn validate(&self) -> Result<(), OutboxError> {
        if self.segment_bytes < MIN_SEGMENT_BYTES {
            return Err(OutboxError::Config(format!(
                "segment_bytes = {} is below the minimum of {MIN_SEGMENT_BYTES}",
                self.segment_bytes
            )));
        }
        // Room for a full active segment plus the oldest ones being compacted.
        if self.max_bytes < self.segment_bytes.saturating_mul(2) {
            return Err(OutboxError::Config(format!(
                "max_bytes = {} must be at least twice segment_bytes = {}",
                self.max_bytes, self.segment_bytes
            )));
        }
        Ok(())
    }
}
