//! Unit tests of the watchlist model and its sync messages: validation, parsing and applying.

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
