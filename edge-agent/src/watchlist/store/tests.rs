//! Tests of the watchlist store: thresholds and policies, applying and persisting sets, and
//! recovering what is on disk.

use std::sync::atomic::{AtomicUsize, Ordering};

use super::*;
use crate::watchlist::testutil::entry;
use crate::watchlist::ListKind;
use time::macros::datetime;

const NOW: OffsetDateTime = datetime!(2026-06-01 12:00 UTC);

#[test]
fn a_policy_raises_the_threshold_as_the_list_grows_and_never_below_the_floor() {
    let set = |n: usize, policies: Option<crate::watchlist::Policies>| {
        let entries = (0..n)
            .map(|i| entry(&format!("w{i}"), ListKind::Wanted, i))
            .collect();
        WatchlistSnapshot::build(
            WatchlistSet {
                version: 1,
                entries,
                thresholds: Thresholds::default(),
                policies,
            },
            &ExactIndex::builder(),
        )
    };
    let floor = Thresholds::default();
    // Without a policy (an older hub), the floors alone apply.
    assert_eq!(set(1000, None).thresholds(), floor);
    let policies = Some(crate::watchlist::Policies::default());
    // A handful of entries: the floor is stricter than the target needs.
    let small = set(3, policies);
    assert_eq!(small.thresholds().wanted, floor.wanted);
    let p = small.operating(ListKind::Wanted).point.expect("calibrated");
    assert!(p.floored && p.expected_fpir < 1e-3, "{p:?}");
    // 1,000 and 10,000 entries: stricter and stricter, each holding one false candidate per 1,000.
    let (k, tk) = (set(1_000, policies), set(10_000, policies));
    let (tw1, tw10) = (k.thresholds().wanted, tk.thresholds().wanted);
    assert!(tw1 > floor.wanted + 0.05 && tw10 > tw1, "{tw1} {tw10}");
    for s in [&k, &tk] {
        let p = s.operating(ListKind::Wanted).point.unwrap();
        assert!((p.expected_fpir - 1e-3).abs() < 1e-5, "{p:?}");
    }
    // The missing list is empty here: its floor applies.
    assert_eq!(k.thresholds().missing, floor.missing);
}

fn full(version: u64, entries: Vec<WatchlistEntry>) -> SyncMessage {
    SyncMessage::Full {
        version,
        entries,
        thresholds: Thresholds::default(),
        policies: None,
    }
}

fn delta(base: u64, version: u64, add: Vec<WatchlistEntry>, remove: &[&str]) -> SyncMessage {
    SyncMessage::Delta {
        base_version: base,
        version,
        add,
        remove: remove.iter().map(|s| s.to_string()).collect(),
        expire: vec![],
        policies: None,
        thresholds: None,
    }
}

fn ids(store: &WatchlistStore) -> Vec<&str> {
    store.entries().iter().map(|e| e.id.as_str()).collect()
}

#[test]
fn full_then_deltas_apply_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = WatchlistStore::open(dir.path()).unwrap();
    assert_eq!((s.version(), s.len()), (0, 0));

    let o = s
        .apply(
            full(
                10,
                vec![
                    entry("a", ListKind::Wanted, 1),
                    entry("b", ListKind::Missing, 5),
                ],
            ),
            NOW,
        )
        .unwrap();
    assert!(o.full);
    assert_eq!((o.previous_version, o.version, o.entries), (0, 10, 2));
    assert_eq!(o.added, vec!["a", "b"]);
    assert_eq!(s.version(), 10);

    let mut b2 = entry("b", ListKind::Missing, 9);
    b2.label = "Case b, new photo".into();
    let o = s
        .apply(
            delta(
                10,
                11,
                vec![entry("c", ListKind::Wanted, 20), b2],
                &["a", "zz"],
            ),
            NOW,
        )
        .unwrap();
    assert_eq!(o.added, vec!["c"]);
    assert_eq!(o.replaced, vec!["b"]);
    assert_eq!(o.removed, vec!["a"], "an id not held is ignored");
    assert_eq!(ids(&s), vec!["b", "c"]);
    assert_eq!(s.entries()[0].label, "Case b, new photo");

    let o = s
        .apply(
            SyncMessage::Delta {
                base_version: 11,
                version: 12,
                add: vec![],
                remove: vec![],
                expire: vec!["c".into()],
                policies: None,
                thresholds: None,
            },
            NOW,
        )
        .unwrap();
    assert_eq!(o.expired, vec!["c"]);
    assert_eq!((s.version(), ids(&s)), (12, vec!["b"]));

    // A full sync replaces everything and reports what went.
    let o = s
        .apply(full(12, vec![entry("d", ListKind::Wanted, 30)]), NOW)
        .unwrap();
    assert_eq!(o.removed, vec!["b"]);
    assert_eq!(ids(&s), vec!["d"]);
}

#[test]
fn a_delta_on_another_version_asks_for_a_full_sync() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = WatchlistStore::open(dir.path()).unwrap();
    s.apply(full(3, vec![entry("a", ListKind::Wanted, 1)]), NOW)
        .unwrap();
    for base in [2, 4] {
        let err = s
            .apply(delta(base, base + 1, vec![], &["a"]), NOW)
            .unwrap_err();
        assert!(err.needs_full_sync(), "{err}");
        assert!(err.to_string().contains("full sync is needed"), "{err}");
    }
    // Even a broken delta on the wrong base says "full sync": that is what gets the agent back in step.
    let mut bad = entry("x", ListKind::Wanted, 1);
    bad.templates.clear();
    assert!(s
        .apply(delta(9, 10, vec![bad], &[]), NOW)
        .unwrap_err()
        .needs_full_sync());
    let err = s.apply(full(2, vec![]), NOW).unwrap_err();
    assert!(
        matches!(
            err,
            WatchlistError::Stale {
                current: 3,
                offered: 2
            }
        ),
        "{err}"
    );
    assert!(!err.needs_full_sync());
    assert_eq!((s.version(), ids(&s)), (3, vec!["a"]));
}

#[test]
fn a_refused_message_leaves_set_version_and_file_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = WatchlistStore::open(dir.path()).unwrap();
    let handle = s.handle();
    s.apply(
        full(
            5,
            vec![
                entry("a", ListKind::Wanted, 1),
                entry("b", ListKind::Wanted, 2),
            ],
        ),
        NOW,
    )
    .unwrap();
    let file_before = fs::read(s.path()).unwrap();

    // Valid first entry, broken second: nothing of the message may land.
    let mut broken = entry("d", ListKind::Wanted, 4);
    broken.templates[1][0] = f32::NAN;
    let err = s
        .apply(
            delta(5, 6, vec![entry("c", ListKind::Wanted, 3), broken], &["a"]),
            NOW,
        )
        .unwrap_err();
    assert!(err.to_string().contains("not finite"), "{err}");
    let mut dup = vec![
        entry("x", ListKind::Wanted, 1),
        entry("x", ListKind::Missing, 2),
    ];
    assert!(s.apply(full(7, std::mem::take(&mut dup)), NOW).is_err());

    assert_eq!((s.version(), ids(&s)), (5, vec!["a", "b"]));
    assert_eq!(handle.snapshot().version(), 5);
    assert_eq!(fs::read(s.path()).unwrap(), file_before);
}

#[test]
fn a_failed_write_leaves_the_old_set_in_force() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = WatchlistStore::open(dir.path()).unwrap();
    s.apply(full(1, vec![entry("a", ListKind::Wanted, 1)]), NOW)
        .unwrap();
    // A directory where the temporary file goes makes the write fail, even for root.
    fs::create_dir(dir.path().join(TMP_NAME)).unwrap();
    let err = s.apply(delta(1, 2, vec![], &["a"]), NOW).unwrap_err();
    assert!(matches!(err, WatchlistError::Io { .. }), "{err}");
    assert_eq!((s.version(), ids(&s)), (1, vec!["a"]));
    assert_eq!(s.handle().snapshot().version(), 1);
}

#[test]
fn the_set_survives_a_reopen_and_the_file_is_private() {
    let dir = tempfile::tempdir().unwrap();
    let sub = dir.path().join("state/watchlist");
    {
        let mut s = WatchlistStore::open(&sub).unwrap();
        s.apply(
            full(
                8,
                vec![
                    entry("a", ListKind::Wanted, 1),
                    entry("b", ListKind::Missing, 2),
                ],
            ),
            NOW,
        )
        .unwrap();
        s.apply(delta(8, 9, vec![], &["a"]), NOW).unwrap();
    }
    // A crash mid-write leaves a temporary file; it must not survive the next start.
    fs::write(sub.join(TMP_NAME), b"half a file").unwrap();
    let s = WatchlistStore::open(&sub).unwrap();
    assert_eq!((s.version(), ids(&s)), (9, vec!["b"]));
    assert_eq!(s.entries()[0], entry("b", ListKind::Missing, 2));
    assert!(!sub.join(TMP_NAME).exists());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(s.path()).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "watchlist file mode {mode:o}");
    }
}

#[test]
fn a_damaged_file_is_an_error_not_an_empty_list() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join(FILE_NAME), b"{\"format\":1,\"set\":").unwrap();
    let err = WatchlistStore::open(dir.path()).unwrap_err();
    assert!(matches!(err, WatchlistError::Corrupt { .. }), "{err}");

    // Well-formed JSON with a broken template is refused too.
    let mut e = entry("a", ListKind::Wanted, 1);
    e.templates[0].truncate(64);
    let file = PersistedFileRef {
        format: FILE_FORMAT,
        set: &WatchlistSet {
            version: 1,
            entries: vec![e],
            thresholds: Thresholds::default(),
            policies: None,
        },
    };
    fs::write(
        dir.path().join(FILE_NAME),
        serde_json::to_vec(&file).unwrap(),
    )
    .unwrap();
    let err = WatchlistStore::open(dir.path()).unwrap_err().to_string();
    assert!(err.contains("expected 128"), "{err}");
}

#[test]
fn expired_entries_are_dropped_on_apply_and_purged_later() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = WatchlistStore::open(dir.path()).unwrap();
    let mut old = entry("old", ListKind::Wanted, 1);
    old.expires_at = NOW - time::Duration::seconds(1);
    let mut soon = entry("soon", ListKind::Missing, 2);
    soon.expires_at = NOW + time::Duration::hours(1);
    let o = s
        .apply(
            full(1, vec![old, soon, entry("long", ListKind::Wanted, 3)]),
            NOW,
        )
        .unwrap();
    assert_eq!(o.dropped_expired, vec!["old"]);
    assert_eq!(ids(&s), vec!["soon", "long"]);

    assert!(s.purge_expired(NOW).is_empty());
    let later = NOW + time::Duration::hours(1);
    assert_eq!(s.purge_expired(later), vec!["soon"]);
    assert_eq!((s.version(), ids(&s)), (1, vec!["long"]));
    // The purge is on disk. (A second open is refused while `s` holds the lock; read the file directly.)
    let on_disk = load(&s.path(), &fs::read(s.path()).unwrap()).unwrap();
    let on_disk: Vec<&str> = on_disk.entries.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(on_disk, vec!["long"]);
    assert!(matches!(
        WatchlistStore::open(dir.path()),
        Err(WatchlistError::Locked(_))
    ));
    // The hub's own expiry of the purged id later is a no-op, not an error.
    let o = s
        .apply(
            SyncMessage::Delta {
                base_version: 1,
                version: 2,
                add: vec![],
                remove: vec![],
                expire: vec!["soon".into()],
                policies: None,
                thresholds: None,
            },
            later,
        )
        .unwrap();
    assert!(o.expired.is_empty());
    assert_eq!(s.version(), 2);
}

#[test]
fn a_custom_index_is_built_on_every_change_and_handles_follow() {
    let dir = tempfile::tempdir().unwrap();
    let builds = Arc::new(AtomicUsize::new(0));
    let rows_seen = Arc::new(AtomicUsize::new(0));
    let (b, r) = (builds.clone(), rows_seen.clone());
    let mut s = WatchlistStore::open(dir.path())
        .unwrap()
        .with_index_builder(Box::new(move |rows| {
            b.fetch_add(1, Ordering::SeqCst);
            r.store(rows.len(), Ordering::SeqCst);
            Box::new(ExactIndex::new(rows))
        }));
    let h = s.handle();
    assert_eq!(builds.load(Ordering::SeqCst), 1);
    s.apply(
        full(
            1,
            vec![
                entry("a", ListKind::Wanted, 1),
                entry("b", ListKind::Wanted, 2),
            ],
        ),
        NOW,
    )
    .unwrap();
    assert_eq!(builds.load(Ordering::SeqCst), 2);
    assert_eq!(
        rows_seen.load(Ordering::SeqCst),
        4,
        "two templates per entry"
    );
    assert!(s.apply(delta(7, 8, vec![], &[]), NOW).is_err());
    assert_eq!(
        builds.load(Ordering::SeqCst),
        2,
        "a refused message builds nothing"
    );
    assert_eq!(h.snapshot().len(), 2);
    assert_eq!(
        h.snapshot().entry("b").map(|e| e.list),
        Some(ListKind::Wanted)
    );
}
