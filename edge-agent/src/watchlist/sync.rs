//! What the hub sends: a full set, or a delta on top of a version the agent holds.
//!
//! Wire format: one JSON object per message, tagged by `"type"` (`"full"` or `"delta"`); entries as in
//! [`WatchlistEntry`], `expires_at` in RFC 3339. Unknown fields are ignored so a newer hub can add some
//! without stranding older agents.
//!
//! Expiry is judged when a message is applied, not when it is parsed (parsing has no clock): an entry that
//! has already expired is skipped and reported in [`super::ApplyOutcome::dropped_expired`], and the rest of
//! the message still applies. Refusing the whole message instead would leave the agent on an older list,
//! still matching entries the hub has since removed, just because one entry expired in transit.

use serde::{Deserialize, Serialize};

use super::model::{validate_entries, Thresholds, WatchlistEntry};
use super::WatchlistError;

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
        thresholds: Thresholds,
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
    pub fn validate(&mut self) -> Result<(), WatchlistError> {
        match self {
            SyncMessage::Full {
                entries,
                thresholds,
                ..
            } => {
                thresholds.validate()?;
                validate_entries(entries)
            }
            SyncMessage::Delta {
                base_version,
                version,
                add,
                remove,
                expire,
            } => {
                if *version <= *base_version {
                    return Err(WatchlistError::VersionNotIncreasing {
                        base: *base_version,
                        version: *version,
                    });
                }
                validate_entries(add)?;
                for (field, ids) in [("remove", &*remove), ("expire", &*expire)] {
                    if let Some((i, _)) = ids.iter().enumerate().find(|(_, id)| !valid_id(id)) {
                        return Err(WatchlistError::Malformed(format!(
                            "`{field}` item {i} is not a valid entry id"
                        )));
                    }
                }
                // An id both added and deleted has no defined outcome: refuse rather than guess.
                if let Some(e) = add
                    .iter()
                    .find(|e| remove.contains(&e.id) || expire.contains(&e.id))
                {
                    return Err(WatchlistError::Conflict(e.id.clone()));
                }
                Ok(())
            }
        }
    }
}

fn valid_id(id: &str) -> bool {
    !id.trim().is_empty() && id.len() <= 128 && !id.chars().any(char::is_control)
}

/// Parses and validates a sync payload from the network. Never panics; every defect is an error that says
/// what is wrong. `max_bytes` bounds the payload before any parsing.
pub fn parse_sync(bytes: &[u8], max_bytes: usize) -> Result<SyncMessage, WatchlistError> {
    if bytes.len() > max_bytes {
        return Err(WatchlistError::TooLarge {
            size: bytes.len(),
            max: max_bytes,
        });
    }
    // serde_json bounds nesting depth itself, so hostile nesting is an error, not a stack overflow.
    let mut msg: SyncMessage =
        serde_json::from_slice(bytes).map_err(|e| WatchlistError::Malformed(e.to_string()))?;
    msg.validate()?;
    Ok(msg)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::watchlist::model::tests::entry;
    use crate::watchlist::model::ListKind;

    fn full_json(version: u64, entries: &[WatchlistEntry]) -> Vec<u8> {
        serde_json::to_vec(&SyncMessage::Full {
            version,
            entries: entries.to_vec(),
            thresholds: Thresholds::default(),
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
            }
        );
    }

    #[test]
    fn each_defect_gets_an_error_that_names_it() {
        let ok = serde_json::to_value(SyncMessage::Full {
            version: 1,
            entries: vec![entry("a", ListKind::Missing, 1)],
            thresholds: Thresholds::default(),
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
        };
        assert!(matches!(
            conflict.validate(),
            Err(WatchlistError::Conflict(id)) if id == "a"
        ));

        let big = full_json(1, &[entry("a", ListKind::Wanted, 1)]);
        let err = parse_sync(&big, 100).unwrap_err();
        assert!(
            matches!(err, WatchlistError::TooLarge { max: 100, .. }),
            "{err}"
        );
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
                v["entries"][e]["templates"][0][rng.below(128)] = bad[rng.below(bad.len())].clone();
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
