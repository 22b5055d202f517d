//! The full-disk policy: counts compacted in order, handed-out records left alone, status
//! dropped oldest first, alerts kept past the bound, a misbehaving aggregator, and a compaction
//! interrupted by a crash.

use super::*;

#[test]
fn full_outbox_compacts_counts_in_order() {
    let tmp = tempfile::tempdir().unwrap();
    let c = cfg(FsyncPolicy::Never, 16 * 1024, 1024);
    let ob = open(tmp.path(), c.clone());
    let calls = Arc::new(AtomicUsize::new(0));
    let calls2 = calls.clone();
    ob.set_aggregator(move |recs: &[Record]| {
        calls2.fetch_add(1, Ordering::SeqCst);
        assert!(recs.windows(2).all(|w| w[0].seq < w[1].seq), "oldest first");
        assert!(recs.iter().all(|r| r.class == Class::Count));
        sum_per_topic(recs)
    });

    let mut alerts = Vec::new();
    let mut appended = BTreeMap::<String, u64>::new();
    let mut count_seqs = BTreeSet::new();
    let mut first_compaction: Option<(Vec<Record>, BTreeSet<u64>)> = None;
    for i in 0..1500u64 {
        if i % 10 == 0 {
            let p = format!("alert-{i}");
            alerts.push((
                ob.append(Class::Alert, "alert/cam1", p.as_bytes()).unwrap(),
                p,
            ));
        }
        let topic = if i % 3 == 0 {
            "count/line-b"
        } else {
            "count/line-a"
        };
        count_seqs.insert(ob.append(Class::Count, topic, b"1").unwrap());
        *appended.entry(topic.to_string()).or_default() += 1;
        if first_compaction.is_none() && ob.stats().compacted_total > 0 {
            first_compaction = Some((all(&ob), count_seqs.clone()));
        }
    }
    assert!(calls.load(Ordering::SeqCst) > 0, "aggregator called");

    // The first compaction in detail: aggregates sit at the seqs of the oldest counts.
    let (snap, counts_then) = first_compaction.expect("compaction happened");
    let snap_counts: Vec<u64> = snap
        .iter()
        .filter(|r| r.class == Class::Count)
        .map(|r| r.seq)
        .collect();
    assert!(snap_counts.iter().all(|q| counts_then.contains(q)));
    assert_eq!(
        snap_counts[..2],
        counts_then.iter().copied().collect::<Vec<_>>()[..2]
    );
    // Seq 1 was the first alert; seq 2 the first count: both positions kept.
    assert_eq!(snap[0].seq, alerts[0].0);
    assert_eq!(snap[1].seq, *counts_then.first().unwrap());

    let recs = all(&ob);
    let st = ob.stats();
    assert!(st.compacted_total > 1000, "{st:?}");
    assert!(st.disk_bytes <= c.max_bytes, "{st:?}");
    assert!(!st.over_limit);
    assert_eq!(st.dropped_total, 0);
    assert_eq!(st.rejected_total, 0);
    assert_increasing(&recs.iter().map(|r| r.seq).collect::<Vec<_>>());
    // Nothing counted twice or lost, every alert intact and in place.
    assert_eq!(count_sums(&recs), appended);
    let got_alerts: Vec<(u64, String)> = recs
        .iter()
        .filter(|r| r.class == Class::Alert)
        .map(|r| (r.seq, String::from_utf8(r.payload.clone()).unwrap()))
        .collect();
    assert_eq!(got_alerts, alerts);
    // And the compacted state is what a restart sees.
    drop(ob);
    let ob = open(tmp.path(), c);
    assert_eq!(all(&ob), recs);
}

#[test]
fn compaction_leaves_handed_out_records_alone() {
    let tmp = tempfile::tempdir().unwrap();
    let ob = open(tmp.path(), cfg(FsyncPolicy::Never, 8 * 1024, 1024));
    ob.set_aggregator(sum_per_topic);
    let first: Vec<u64> = (0..5)
        .map(|_| ob.append(Class::Count, "count/l1", b"1").unwrap())
        .collect();
    let on_wire = ob.next_batch(5).unwrap();
    assert_eq!(on_wire.iter().map(|r| r.seq).collect::<Vec<_>>(), first);
    let mut total = 5;
    while ob.stats().compacted_total == 0 {
        ob.append(Class::Count, "count/l1", b"1").unwrap();
        total += 1;
        assert!(total < 10_000);
    }
    let recs = all(&ob);
    assert_eq!(recs[..5], on_wire[..], "in-flight records untouched");
    assert!(recs[5].seq > first[4]);
    assert_eq!(count_sums(&recs)["count/l1"], total);
    // A PUBACK for an in-flight seq acknowledges exactly that record.
    assert!(ob.ack(first[0]).unwrap());
    assert_eq!(count_sums(&all(&ob))["count/l1"], total - 1);
}

#[test]
fn status_is_dropped_oldest_first_when_compaction_is_not_enough() {
    let tmp = tempfile::tempdir().unwrap();
    let c = cfg(FsyncPolicy::Never, 16 * 1024, 1024);
    let ob = open(tmp.path(), c.clone());
    // An aggregator that cannot shrink anything: compaction alone never makes room.
    ob.set_aggregator(|r: &[Record]| r.to_vec());
    let mut statuses = Vec::new();
    let mut alerts = Vec::new();
    let mut counts = 0u64;
    // Alerts and counts alone fit (they are never dropped); statuses do not.
    for i in 0..600 {
        match i % 6 {
            0 => alerts.push(ob.append(Class::Alert, "alert", b"A").unwrap()),
            1 | 2 => {
                ob.append(Class::Count, "count/l", b"1").unwrap();
                counts += 1;
            }
            _ => statuses.push(ob.append(Class::Status, "status/cam", b"ok").unwrap()),
        }
    }
    let st = ob.stats();
    assert!(st.dropped_total > 0, "{st:?}");
    assert_eq!(st.rejected_total, 0, "{st:?}");
    assert!(st.disk_bytes <= c.max_bytes, "{st:?}");
    let recs = all(&ob);
    let kept: Vec<u64> = recs
        .iter()
        .filter(|r| r.class == Class::Status)
        .map(|r| r.seq)
        .collect();
    assert_eq!(kept.len() as u64 + st.dropped_total, statuses.len() as u64);
    // Oldest first: the survivors are the newest ones.
    assert_eq!(kept[..], statuses[statuses.len() - kept.len()..]);
    let got_alerts: Vec<u64> = recs
        .iter()
        .filter(|r| r.class == Class::Alert)
        .map(|r| r.seq)
        .collect();
    assert_eq!(got_alerts, alerts, "alerts never dropped");
    assert_eq!(count_sums(&recs)["count/l"], counts, "counts never dropped");
}

#[test]
fn alerts_are_never_dropped_and_others_are_rejected_when_full() {
    let tmp = tempfile::tempdir().unwrap();
    let c = cfg(FsyncPolicy::Never, 8 * 1024, 1024);
    let ob = open(tmp.path(), c.clone());
    ob.set_aggregator(sum_per_topic);
    let alerts: Vec<u64> = (0..400)
        .map(|i| {
            ob.append(Class::Alert, "alert/cam", format!("face {i:04}").as_bytes())
                .unwrap()
        })
        .collect();
    let st = ob.stats();
    assert!(st.over_limit && st.disk_bytes > c.max_bytes, "{st:?}");

    for class in [Class::Count, Class::Status, Class::Other] {
        match ob.append(class, "x", b"1") {
            Err(OutboxError::Full { class: c2, .. }) => assert_eq!(c2, class),
            other => panic!("{class}: {other:?}"),
        }
    }
    assert_eq!(ob.stats().rejected_total, 3);
    assert!(ob.append(Class::Alert, "alert/cam", b"one more").is_ok());
    assert_eq!(seqs(&ob)[..400], alerts[..]);
    assert_eq!(ob.stats().dropped_total, 0);

    // Delivery frees the space again.
    ob.ack_many(seqs(&ob)).unwrap();
    let st = ob.stats();
    assert!(!st.over_limit, "{st:?}");
    ob.append(Class::Status, "status", b"ok").unwrap();
    drop(ob);
    assert_eq!(open(tmp.path(), c).stats().pending, 1);
}

#[test]
fn misbehaving_aggregator_loses_nothing() {
    for mode in ["panic", "grow"] {
        let tmp = tempfile::tempdir().unwrap();
        let ob = open(tmp.path(), cfg(FsyncPolicy::Never, 8 * 1024, 1024));
        let m = mode.to_string();
        ob.set_aggregator(move |r: &[Record]| {
            if m == "panic" {
                panic!("aggregator bug (expected in this test)");
            }
            let mut v = r.to_vec();
            v.extend_from_slice(r);
            v
        });
        let mut ok = 0u64;
        for _ in 0..600 {
            match ob.append(Class::Count, "count/l", b"1") {
                Ok(_) => ok += 1,
                Err(OutboxError::Full { .. }) => {}
                Err(e) => panic!("{e}"),
            }
        }
        assert!(ok > 0);
        assert_eq!(count_sums(&all(&ob))["count/l"], ok, "{mode}");
        assert!(ob.stats().rejected_total > 0, "{mode}");
    }
}

#[test]
fn interrupted_compaction_is_resolved_on_open() {
    let tmp = tempfile::tempdir().unwrap();
    let c = cfg(FsyncPolicy::Never, 16 * 1024, 1024);
    let snapshot = |dir: &Path| -> BTreeMap<PathBuf, Vec<u8>> {
        seg_files(dir)
            .into_iter()
            .map(|p| {
                let b = fs::read(&p).unwrap();
                (p, b)
            })
            .collect()
    };
    let (before, after) = {
        let ob = open(tmp.path(), c.clone());
        ob.set_aggregator(sum_per_topic);
        let mut before = snapshot(tmp.path());
        let mut i = 0;
        while ob.stats().compacted_total == 0 {
            before = snapshot(tmp.path());
            ob.append(Class::Count, "count/l", b"1").unwrap();
            if i % 5 == 0 {
                ob.append(Class::Alert, "alert", b"a").unwrap();
            }
            i += 1;
        }
        (before, all(&ob))
    };
    // Crash after the rename but before the old segments were deleted: put them back.
    let now: BTreeSet<PathBuf> = seg_files(tmp.path()).into_iter().collect();
    let mut restored = 0;
    for (p, b) in &before {
        if !now.contains(p) {
            fs::write(p, b).unwrap();
            restored += 1;
        }
    }
    assert!(restored > 0);
    // And a crash before a rename: a half-written temporary file.
    fs::write(tmp.path().join("00000000000000000099.seg.tmp"), b"half").unwrap();

    let ob = open(tmp.path(), c);
    assert_eq!(all(&ob), after, "no duplicates, nothing lost");
    assert!(!tmp.path().join("00000000000000000099.seg.tmp").exists());
    assert_eq!(seg_files(tmp.path()).len(), now.len());
}
