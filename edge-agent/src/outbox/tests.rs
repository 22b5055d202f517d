use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::format::{encode_frame, FRAME_OVERHEAD, HEADER_LEN};
use super::*;

fn cfg(fsync: FsyncPolicy, max_bytes: u64, segment_bytes: u64) -> OutboxConfig {
    OutboxConfig {
        fsync,
        max_bytes,
        segment_bytes,
    }
}

/// Roomy and fast: most tests are about logic, not fsync.
fn roomy() -> OutboxConfig {
    cfg(FsyncPolicy::Never, 64 << 20, 4096)
}

fn open(dir: &Path, c: OutboxConfig) -> Outbox {
    // Another test forking a child can briefly hold a copy of the lock's file descriptor
    // (flock locks follow the descriptor until exec closes it): retry a reopen for a moment.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        match Outbox::open(dir, c.clone()) {
            Err(OutboxError::Locked(_)) if std::time::Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10))
            }
            r => return r.expect("open outbox"),
        }
    }
}

/// Every pending record, without handing anything out (which would keep it from compaction).
fn all(ob: &Outbox) -> Vec<Record> {
    ob.peek_all()
}

fn seqs(ob: &Outbox) -> Vec<u64> {
    all(ob).iter().map(|r| r.seq).collect()
}

fn seg_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    v.sort();
    v
}

fn last_seg(dir: &Path) -> PathBuf {
    seg_files(dir).pop().expect("a segment")
}

fn append_n(ob: &Outbox, n: usize) -> Vec<u64> {
    (0..n)
        .map(|i| {
            ob.append(Class::Status, "t/x", format!("p{i:09}").as_bytes())
                .unwrap()
        })
        .collect()
}

/// Sums decimal payloads per topic, one record per topic in order of first appearance: what
/// the agent's count aggregator does for "crossings per line".
fn sum_per_topic(recs: &[Record]) -> Vec<Record> {
    let mut order: Vec<String> = Vec::new();
    let mut sums: BTreeMap<String, u64> = BTreeMap::new();
    for r in recs {
        let n: u64 = std::str::from_utf8(&r.payload).unwrap().parse().unwrap();
        if !sums.contains_key(&r.topic) {
            order.push(r.topic.clone());
        }
        *sums.entry(r.topic.clone()).or_default() += n;
    }
    order
        .into_iter()
        .map(|t| Record {
            seq: 0,
            class: Class::Count,
            payload: sums[&t].to_string().into_bytes(),
            topic: t,
        })
        .collect()
}

fn count_sums(recs: &[Record]) -> BTreeMap<String, u64> {
    let mut m = BTreeMap::new();
    for r in recs.iter().filter(|r| r.class == Class::Count) {
        let n: u64 = std::str::from_utf8(&r.payload).unwrap().parse().unwrap();
        *m.entry(r.topic.clone()).or_default() += n;
    }
    m
}

fn assert_increasing(v: &[u64]) {
    assert!(
        v.windows(2).all(|w| w[0] < w[1]),
        "seqs not increasing: {v:?}"
    );
}

#[test]
fn append_pending_ack_in_order() {
    let tmp = tempfile::tempdir().unwrap();
    let ob = open(tmp.path(), roomy());
    let a = ob.append(Class::Alert, "alert/cam1", b"face").unwrap();
    let b = ob.append(Class::Count, "count/line1", b"3").unwrap();
    let c = ob.append(Class::Status, "status", b"ok").unwrap();
    assert!(a < b && b < c);

    let p = ob.pending(10).unwrap();
    assert_eq!(p.iter().map(|r| r.seq).collect::<Vec<_>>(), vec![a, b, c]);
    assert_eq!(p[0].class, Class::Alert);
    assert_eq!(p[0].topic, "alert/cam1");
    assert_eq!(p[0].payload, b"face");
    assert_eq!(ob.pending(2).unwrap().len(), 2);
    let iterated: Vec<Record> = ob.iter_pending().collect::<Result<_, _>>().unwrap();
    assert_eq!(iterated, p);
    assert!(ob.pending(0).unwrap().is_empty());

    assert!(ob.ack(a).unwrap());
    assert!(!ob.ack(a).unwrap(), "second ack is a no-op");
    assert!(!ob.ack(999).unwrap(), "unknown seq is a no-op");
    assert_eq!(seqs(&ob), vec![b, c]);
    assert_eq!(ob.pending_after(b, 10).unwrap()[0].seq, c);
    assert_eq!(ob.ack_many([b, c, 12345]).unwrap(), 2);
    assert!(ob.pending(10).unwrap().is_empty());
    let st = ob.stats();
    assert_eq!((st.pending, st.pending_bytes), (0, 0));
    assert_eq!(st.oldest_pending_age, None);
}

#[test]
fn restart_keeps_pending_and_seqs_keep_increasing() {
    let tmp = tempfile::tempdir().unwrap();
    let first = {
        let ob = open(tmp.path(), roomy());
        append_n(&ob, 5)
    };
    let ob = open(tmp.path(), roomy());
    assert_eq!(seqs(&ob), first);
    let next = ob.append(Class::Other, "x", b"y").unwrap();
    assert!(next > *first.last().unwrap());
    // Everything acknowledged and closed segments deleted: seqs must still not go back.
    ob.ack_many(seqs(&ob)).unwrap();
    drop(ob);
    let ob = open(tmp.path(), roomy());
    assert!(seqs(&ob).is_empty());
    assert!(ob.append(Class::Other, "x", b"z").unwrap() > next);
}

#[test]
fn acked_records_are_not_replayed_after_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let s = {
        let ob = open(tmp.path(), cfg(FsyncPolicy::Always, 1 << 20, 4096));
        let s = append_n(&ob, 6);
        for &q in &s[..4] {
            ob.ack(q).unwrap();
        }
        s
    };
    let ob = open(tmp.path(), roomy());
    assert_eq!(seqs(&ob), s[4..].to_vec());
}

#[test]
fn out_of_order_acks_survive_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let s = {
        let ob = open(tmp.path(), roomy());
        let s = append_n(&ob, 6);
        ob.ack(s[2]).unwrap();
        ob.ack(s[0]).unwrap();
        ob.ack(s[4]).unwrap();
        assert_eq!(seqs(&ob), vec![s[1], s[3], s[5]]);
        s
    };
    {
        let ob = open(tmp.path(), roomy());
        assert_eq!(seqs(&ob), vec![s[1], s[3], s[5]]);
        ob.ack(s[1]).unwrap();
        // The watermark moves past the acked run, so the out-of-order set shrinks.
        assert_eq!(seqs(&ob), vec![s[3], s[5]]);
    }
    let text = fs::read_to_string(tmp.path().join(ACK_FILE)).unwrap();
    let state: AckState = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    assert_eq!(state.watermark, s[2]);
    assert_eq!(state.acked, vec![s[4]]);
    let ob = open(tmp.path(), roomy());
    assert_eq!(seqs(&ob), vec![s[3], s[5]]);
}

#[test]
fn torn_tail_mid_record_is_truncated() {
    let tmp = tempfile::tempdir().unwrap();
    let s = append_n(&open(tmp.path(), roomy()), 10);
    let seg = last_seg(tmp.path());
    let len = fs::metadata(&seg).unwrap().len();
    fs::OpenOptions::new()
        .write(true)
        .open(&seg)
        .unwrap()
        .set_len(len - 5)
        .unwrap();

    let ob = open(tmp.path(), roomy());
    assert_eq!(seqs(&ob), s[..9].to_vec());
    let st = ob.stats();
    assert!(st.truncated_tail_bytes_total > 0);
    assert_eq!(st.corrupt_skipped_total, 0, "a torn tail is not bit rot");
    let n = ob.append(Class::Status, "t/x", b"after").unwrap();
    assert!(n > s[8]);
    drop(ob);
    let ob = open(tmp.path(), roomy());
    let mut want = s[..9].to_vec();
    want.push(n);
    assert_eq!(seqs(&ob), want);
    assert_eq!(ob.stats().truncated_tail_bytes_total, 0);
}

#[test]
fn torn_write_and_garbage_tail_are_recovered() {
    let tmp = tempfile::tempdir().unwrap();
    let s = append_n(&open(tmp.path(), roomy()), 4);
    let seg = last_seg(tmp.path());
    // In-process torn write: the first half of a real frame, as a crash mid-write leaves it.
    let frame = encode_frame(s[3] + 1, 0, Class::Alert, 0, "alert/x", &[7u8; 100]);
    let mut f = fs::OpenOptions::new().append(true).open(&seg).unwrap();
    f.write_all(&frame[..frame.len() / 2]).unwrap();
    drop(f);
    let ob = open(tmp.path(), roomy());
    assert_eq!(seqs(&ob), s);
    let n = ob.append(Class::Alert, "alert/x", b"real").unwrap();
    drop(ob);

    // Garbage (and zeroes, as after a power cut) behind the last record.
    let mut f = fs::OpenOptions::new().append(true).open(&seg).unwrap();
    f.write_all(&[0xAB; 77]).unwrap();
    f.write_all(&[0u8; 4096]).unwrap();
    drop(f);
    let ob = open(tmp.path(), roomy());
    let mut want = s.clone();
    want.push(n);
    assert_eq!(seqs(&ob), want);
    assert!(ob.stats().truncated_tail_bytes_total >= 77 + 4096);
    // Later appends land after the last good record, not behind the garbage.
    let m = ob.append(Class::Alert, "alert/x", b"again").unwrap();
    drop(ob);
    let ob = open(tmp.path(), roomy());
    want.push(m);
    assert_eq!(seqs(&ob), want);
    assert_eq!(ob.stats().corrupt_skipped_total, 0);
}

/// Fixed-size records: "t/x" + 10-byte payload.
const REC: u64 = FRAME_OVERHEAD + 3 + 10;

fn flip(path: &Path, at: u64) {
    let mut b = fs::read(path).unwrap();
    b[at as usize] ^= 0x40;
    fs::write(path, b).unwrap();
}

#[test]
fn corrupt_middle_record_is_skipped_and_counted() {
    // Payload byte, length field, magic: each must cost exactly the one record.
    for (what, delta) in [
        ("payload", REC - 2),
        ("length", 5),
        ("magic", 0),
        ("seq", 13),
    ] {
        let tmp = tempfile::tempdir().unwrap();
        let s = append_n(&open(tmp.path(), roomy()), 20);
        let seg = last_seg(tmp.path());
        flip(&seg, HEADER_LEN + 9 * REC + delta); // the 10th record
        let ob = open(tmp.path(), roomy());
        let mut want = s.clone();
        want.remove(9);
        assert_eq!(seqs(&ob), want, "{what}");
        assert_eq!(ob.stats().corrupt_skipped_total, 1, "{what}");
        assert_eq!(ob.stats().pending, 19);
        // New records go after the survivors and everything reads back after a restart.
        let n = ob.append(Class::Status, "t/x", b"p999999999").unwrap();
        assert!(n > s[19]);
        drop(ob);
        let ob = open(tmp.path(), roomy());
        want.push(n);
        assert_eq!(seqs(&ob), want, "{what}");
    }
}

#[test]
fn corruption_after_open_is_skipped_when_read() {
    let tmp = tempfile::tempdir().unwrap();
    let ob = open(tmp.path(), roomy());
    let s = append_n(&ob, 5);
    flip(&last_seg(tmp.path()), HEADER_LEN + 2 * REC + REC - 1);
    let got = seqs(&ob);
    assert_eq!(got, vec![s[0], s[1], s[3], s[4]]);
    assert_eq!(ob.stats().corrupt_skipped_total, 1);
    assert_eq!(ob.stats().pending, 4);
}

#[test]
fn corrupt_tail_of_a_closed_segment_keeps_later_segments() {
    let tmp = tempfile::tempdir().unwrap();
    let c = cfg(FsyncPolicy::Never, 1 << 20, 1024);
    let s = append_n(&open(tmp.path(), c.clone()), 60);
    let files = seg_files(tmp.path());
    assert!(files.len() >= 3);
    let first = &files[0];
    let n_first = (fs::metadata(first).unwrap().len() - HEADER_LEN) / REC;
    flip(first, HEADER_LEN + (n_first - 1) * REC + REC - 1);
    let ob = open(tmp.path(), c);
    let mut want = s.clone();
    want.remove(n_first as usize - 1);
    assert_eq!(seqs(&ob), want);
    assert_eq!(ob.stats().corrupt_skipped_total, 1);
}

#[test]
fn segments_rotate_and_delivered_ones_are_deleted() {
    let tmp = tempfile::tempdir().unwrap();
    let c = cfg(FsyncPolicy::Never, 1 << 20, 1024);
    let ob = open(tmp.path(), c.clone());
    let s = append_n(&ob, 200);
    let files = seg_files(tmp.path()).len();
    let st = ob.stats();
    assert!(files >= 8, "{files} segments");
    assert_eq!(st.segments as usize, files);
    for f in seg_files(tmp.path()) {
        assert!(fs::metadata(f).unwrap().len() <= 1024);
    }
    let before = st.disk_bytes;

    ob.ack_many(s[..150].iter().copied()).unwrap();
    let mid = ob.stats().disk_bytes;
    assert!(mid < before / 2, "{mid} vs {before}");
    assert!(seg_files(tmp.path()).len() < files);

    // Out-of-order acks that complete a segment delete it too.
    ob.ack_many(s[150..].iter().rev().copied()).unwrap();
    assert_eq!(
        seg_files(tmp.path()).len(),
        1,
        "only the active segment is kept"
    );
    assert!(ob.stats().disk_bytes <= 1024);
    drop(ob);
    let ob = open(tmp.path(), c);
    assert_eq!(ob.stats().pending, 0);
    assert!(ob.append(Class::Status, "t/x", b"x").unwrap() > s[199]);
}

#[test]
fn cursor_streams_without_rereading_and_reset_replays_unacked() {
    let tmp = tempfile::tempdir().unwrap();
    let ob = open(tmp.path(), roomy());
    let s = append_n(&ob, 10);
    let b1: Vec<u64> = ob.next_batch(4).unwrap().iter().map(|r| r.seq).collect();
    let b2: Vec<u64> = ob.next_batch(4).unwrap().iter().map(|r| r.seq).collect();
    assert_eq!(b1, s[..4].to_vec());
    assert_eq!(b2, s[4..8].to_vec());
    ob.ack(s[0]).unwrap();
    ob.ack(s[5]).unwrap();
    let more = ob.append(Class::Alert, "a", b"late").unwrap();
    let b3: Vec<u64> = ob.next_batch(10).unwrap().iter().map(|r| r.seq).collect();
    assert_eq!(b3, vec![s[8], s[9], more]);
    assert!(ob.next_batch(10).unwrap().is_empty());
    // Reconnect: everything unacknowledged again, oldest first.
    ob.reset_cursor();
    let again: Vec<u64> = ob.next_batch(100).unwrap().iter().map(|r| r.seq).collect();
    let mut want: Vec<u64> = s
        .iter()
        .copied()
        .filter(|&q| q != s[0] && q != s[5])
        .collect();
    want.push(more);
    assert_eq!(again, want);
}

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

#[test]
fn fsync_policies() {
    // Always: every append and ack is synced.
    let tmp = tempfile::tempdir().unwrap();
    let ob = open(tmp.path(), cfg(FsyncPolicy::Always, 1 << 20, 4096));
    let base = ob.stats().fsyncs_total;
    let s = append_n(&ob, 5);
    assert!(ob.stats().fsyncs_total >= base + 5);
    let f = ob.stats().fsyncs_total;
    ob.ack(s[0]).unwrap();
    assert!(ob.stats().fsyncs_total > f);
    drop(ob);
    assert_eq!(seqs(&open(tmp.path(), roomy())), s[1..].to_vec());

    // Never: no fsync at all, yet records and acks survive the process.
    let tmp = tempfile::tempdir().unwrap();
    let ob = open(tmp.path(), cfg(FsyncPolicy::Never, 1 << 20, 1024));
    let s = append_n(&ob, 50);
    ob.ack(s[0]).unwrap();
    ob.tick().unwrap();
    assert_eq!(ob.stats().fsyncs_total, 0);
    drop(ob);
    assert_eq!(seqs(&open(tmp.path(), roomy())), s[1..].to_vec());

    // Interval: at most one data sync per interval; tick() catches up.
    let tmp = tempfile::tempdir().unwrap();
    let c = cfg(
        FsyncPolicy::Interval(Duration::from_millis(300)),
        1 << 20,
        4096,
    );
    let ob = open(tmp.path(), c);
    let opened = ob.stats().fsyncs_total;
    let s = append_n(&ob, 20);
    ob.ack(s[0]).unwrap();
    let quick = ob.stats().fsyncs_total;
    // Even on a slow machine 20 appends span at most a couple of intervals.
    assert!(quick - opened <= 2, "{quick} fsyncs for 20 quick appends");
    std::thread::sleep(Duration::from_millis(350));
    ob.tick().unwrap();
    assert!(ob.stats().fsyncs_total > quick, "tick synced data and acks");
    let after_tick = ob.stats().fsyncs_total;
    ob.tick().unwrap();
    assert_eq!(
        ob.stats().fsyncs_total,
        after_tick,
        "nothing dirty, nothing synced"
    );
    ob.append(Class::Status, "t/x", b"x").unwrap();
    ob.sync().unwrap();
    assert!(ob.stats().fsyncs_total > after_tick, "explicit sync");
    drop(ob);
    assert_eq!(open(tmp.path(), roomy()).stats().pending, 20);
}

#[test]
fn config_toml_shapes() {
    let parse = |s: &str| toml::from_str::<OutboxConfig>(s);
    let d = parse("").unwrap();
    assert_eq!(d, OutboxConfig::default());
    assert_eq!(d.fsync, FsyncPolicy::Always);
    assert_eq!(
        parse(r#"fsync = "never""#).unwrap().fsync,
        FsyncPolicy::Never
    );
    let ms = |n| FsyncPolicy::Interval(Duration::from_millis(n));
    assert_eq!(
        parse("fsync = { interval_ms = 250 }").unwrap().fsync,
        ms(250)
    );
    assert_eq!(
        parse(r#"fsync = "interval_ms = 50""#).unwrap().fsync,
        ms(50)
    );
    let full = parse(
        r#"
        fsync = "always"
        max_bytes = 1048576
        segment_bytes = 65536
        "#,
    )
    .unwrap();
    assert_eq!((full.max_bytes, full.segment_bytes), (1 << 20, 1 << 16));
    for bad in [
        r#"fsync = "sometimes""#,
        "fsync = { interval = 5 }",
        "fsync = { interval_ms = -1 }",
        "fsync = {}",
        "max_byte = 5",
    ] {
        assert!(parse(bad).is_err(), "{bad}");
    }
    // Serialises back to the canonical shape.
    let c = OutboxConfig {
        fsync: ms(200),
        ..OutboxConfig::default()
    };
    let text = toml::to_string(&c).unwrap();
    assert!(text.contains("interval_ms = 200"), "{text}");
    assert_eq!(parse(&text).unwrap(), c);
    assert_eq!(
        serde_json::to_string(&FsyncPolicy::Never).unwrap(),
        r#""never""#
    );

    let tmp = tempfile::tempdir().unwrap();
    for bad in [
        cfg(FsyncPolicy::Never, 1 << 20, 100),
        cfg(FsyncPolicy::Never, 4096, 4096),
    ] {
        assert!(matches!(
            Outbox::open(tmp.path(), bad),
            Err(OutboxError::Config(_))
        ));
    }
}

#[test]
fn one_outbox_per_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let ob = open(tmp.path(), roomy());
    assert!(matches!(
        Outbox::open(tmp.path(), roomy()),
        Err(OutboxError::Locked(_))
    ));
    drop(ob);
    open(tmp.path(), roomy());
}

#[test]
fn corrupt_ack_file_replays_instead_of_losing() {
    let tmp = tempfile::tempdir().unwrap();
    let s = {
        let ob = open(tmp.path(), roomy());
        let s = append_n(&ob, 5);
        ob.ack_many(s[..3].iter().copied()).unwrap();
        s
    };
    let path = tmp.path().join(ACK_FILE);
    // A flipped digit that still parses as JSON: the checksum must catch it.
    let text = fs::read_to_string(&path).unwrap();
    fs::write(
        &path,
        text.replacen("\"watermark\":3", "\"watermark\":5", 1),
    )
    .unwrap();
    assert_eq!(seqs(&open(tmp.path(), roomy())), s);
}

#[test]
fn rejects_oversized_records() {
    let tmp = tempfile::tempdir().unwrap();
    let ob = open(tmp.path(), roomy());
    let topic = "t".repeat(70_000);
    assert!(matches!(
        ob.append(Class::Alert, &topic, b""),
        Err(OutboxError::InvalidRecord(_))
    ));
    let big = vec![0u8; 17 << 20];
    assert!(matches!(
        ob.append(Class::Alert, "t", &big),
        Err(OutboxError::InvalidRecord(_))
    ));
    // A record larger than a segment gets a segment of its own.
    let s = ob.append(Class::Alert, "t", &[1u8; 10_000]).unwrap();
    assert_eq!(all(&ob)[0].seq, s);
    assert_eq!(all(&ob)[0].payload.len(), 10_000);
}

#[test]
fn outbox_can_be_shared_between_threads() {
    fn check<T: Send + Sync>() {}
    check::<Outbox>();
}

#[test]
fn index_entry_stays_small() {
    // The memory bound in the module docs depends on it.
    assert!(std::mem::size_of::<Entry>() <= 24);
}

#[test]
fn iterator_reads_in_batches_past_many_records() {
    let tmp = tempfile::tempdir().unwrap();
    let ob = open(tmp.path(), cfg(FsyncPolicy::Never, 1 << 20, 1024));
    let s = append_n(&ob, 700);
    ob.ack_many(s.iter().copied().filter(|q| q % 3 == 0))
        .unwrap();
    let got: Vec<u64> = ob.iter_pending().map(|r| r.unwrap().seq).collect();
    let want: Vec<u64> = s.iter().copied().filter(|q| q % 3 != 0).collect();
    assert_eq!(got, want);
}

#[test]
fn vanished_segment_file_does_not_block_delivery() {
    let tmp = tempfile::tempdir().unwrap();
    let ob = open(tmp.path(), cfg(FsyncPolicy::Never, 1 << 20, 1024));
    let s = append_n(&ob, 100);
    let first = seg_files(tmp.path()).remove(0);
    let n_first = ((fs::metadata(&first).unwrap().len() - HEADER_LEN) / REC) as usize;
    fs::remove_file(&first).unwrap();
    assert_eq!(seqs(&ob), s[n_first..].to_vec());
    assert_eq!(ob.stats().corrupt_skipped_total, n_first as u64);
}

#[test]
fn stats_report_age_and_sizes() {
    let tmp = tempfile::tempdir().unwrap();
    let ob = open(tmp.path(), roomy());
    let s = ob.append(Class::Status, "t/x", b"0123456789").unwrap();
    std::thread::sleep(Duration::from_millis(30));
    let second = std::time::Instant::now();
    ob.append(Class::Status, "t/x", b"0123456789").unwrap();
    let st = ob.stats();
    assert_eq!(st.pending, 2);
    assert_eq!(st.pending_bytes, 2 * REC);
    assert_eq!(st.disk_bytes, HEADER_LEN + 2 * REC);
    assert!(st.oldest_pending_age.unwrap() >= Duration::from_millis(30));
    ob.ack(s).unwrap();
    // Now the second record is the oldest (times are whole milliseconds: allow for rounding).
    let age = ob.stats().oldest_pending_age.unwrap();
    assert!(
        age <= second.elapsed() + Duration::from_millis(2),
        "{age:?}"
    );
}

#[test]
fn concurrent_producers_and_acking_publisher() {
    let tmp = tempfile::tempdir().unwrap();
    let ob = Arc::new(open(tmp.path(), cfg(FsyncPolicy::Never, 64 << 20, 2048)));
    const PRODUCERS: usize = 4;
    const EACH: usize = 500;
    let done = Arc::new(AtomicUsize::new(0));
    let producers: Vec<_> = (0..PRODUCERS)
        .map(|p| {
            let ob = ob.clone();
            let done = done.clone();
            std::thread::spawn(move || {
                let classes = [Class::Alert, Class::Count, Class::Status, Class::Other];
                let s: Vec<u64> = (0..EACH)
                    .map(|i| {
                        let payload = format!("{p}-{i}");
                        ob.append(classes[i % 4], "t", payload.as_bytes()).unwrap()
                    })
                    .collect();
                done.fetch_add(1, Ordering::SeqCst);
                s
            })
        })
        .collect();
    let publisher = {
        let ob = ob.clone();
        let done = done.clone();
        std::thread::spawn(move || {
            let mut seen = HashSet::new();
            let mut payloads = HashSet::new();
            loop {
                let all_done = done.load(Ordering::SeqCst) == PRODUCERS;
                let batch = ob.next_batch(32).unwrap();
                if batch.is_empty() {
                    if all_done {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(1));
                    continue;
                }
                // Acks out of order within the batch.
                for r in batch.iter().rev() {
                    assert!(seen.insert(r.seq), "duplicate seq {}", r.seq);
                    assert!(payloads.insert(r.payload.clone()), "duplicate payload");
                    assert!(ob.ack(r.seq).unwrap());
                }
            }
            seen
        })
    };
    let mut appended = HashSet::new();
    for h in producers {
        for s in h.join().unwrap() {
            assert!(appended.insert(s), "seq {s} issued twice");
        }
    }
    let seen = publisher.join().unwrap();
    assert_eq!(seen, appended);
    assert_eq!(appended.len(), PRODUCERS * EACH);
    let st = ob.stats();
    assert_eq!(st.pending, 0);
    assert!(st.segments <= 2, "{st:?}");
}

// --- kill -9 -------------------------------------------------------------------------------

const CHILD_DIR: &str = "OUTBOX_TEST_CHILD_DIR";
const CHILD_MODE: &str = "OUTBOX_TEST_CHILD_MODE";

fn child_cfg(mode: &str) -> OutboxConfig {
    match mode {
        "compact" => cfg(FsyncPolicy::Never, 32 * 1024, 1024),
        _ => cfg(FsyncPolicy::Never, 64 << 20, 2048),
    }
}

/// Not a test on its own: the body of the child process the kill -9 tests spawn (the test
/// binary re-run with `CHILD_DIR` set). Appends (and acks) forever, reporting each completed
/// operation on stdout, until the parent kills it.
#[test]
fn kill9_child_entry() {
    let Ok(dir) = std::env::var(CHILD_DIR) else {
        return;
    };
    let mode = std::env::var(CHILD_MODE).unwrap_or_default();
    let ob = open(Path::new(&dir), child_cfg(&mode));
    if mode == "compact" {
        ob.set_aggregator(sum_per_topic);
    }
    let mut out = std::io::stdout().lock();
    // libtest has printed "test <name> ... " without a newline: start reports on a line of their own.
    writeln!(out).unwrap();
    for i in 0u64..2_000_000 {
        let (class, topic, payload) = match (mode.as_str(), i % 7) {
            ("compact", _) if i % 25 == 0 => (Class::Alert, "alert", format!("a{i}")),
            ("compact", _) => (Class::Count, "count/l", "1".to_string()),
            (_, 0 | 3) => (Class::Alert, "alert", format!("a{i}")),
            (_, 1 | 4) => (Class::Count, "count/l", "1".to_string()),
            _ => (Class::Status, "status", format!("s{i}")),
        };
        match ob.append(class, topic, payload.as_bytes()) {
            Ok(seq) => writeln!(out, "A {seq} {}", class.as_str()).unwrap(),
            // Full is a legitimate answer for a count; the parent checks it never hits alerts.
            Err(OutboxError::Full { .. }) if class != Class::Alert => writeln!(out, "R 0").unwrap(),
            Err(e) => panic!("{e}"),
        }
        if mode != "compact" && i % 3 == 2 {
            if let Some(r) = ob.next_batch(1).unwrap().pop() {
                writeln!(out, "T {}", r.seq).unwrap();
                out.flush().unwrap();
                ob.ack(r.seq).unwrap();
                writeln!(out, "K {}", r.seq).unwrap();
            }
        }
        out.flush().unwrap();
    }
    std::process::abort();
}

#[derive(Default)]
struct ChildLog {
    appended: BTreeMap<u64, String>,
    tried: BTreeSet<u64>,
    acked: BTreeSet<u64>,
    /// Written by an append the kill interrupted before it was reported.
    unreported: BTreeSet<u64>,
}

/// Runs the child until it has reported `appends` appends, kills it with SIGKILL, and returns
/// everything it reported.
fn run_child_and_kill(dir: &Path, mode: &str, appends: usize, log: &mut ChildLog) -> u64 {
    let this = module_path!();
    let name = format!(
        "{}::kill9_child_entry",
        this.split_once("::").map_or(this, |(_, rest)| rest)
    );
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([name.as_str(), "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_DIR, dir)
        .env(CHILD_MODE, mode)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let mut n = 0;
    let mut max_seq = 0;
    let mut handle = |line: &str, log: &mut ChildLog| -> bool {
        let mut it = line.split_whitespace();
        let (Some(kind), Some(seq)) = (it.next(), it.next().and_then(|s| s.parse::<u64>().ok()))
        else {
            return false;
        };
        match kind {
            "A" => {
                log.appended
                    .insert(seq, it.next().unwrap_or("").to_string());
                max_seq = max_seq.max(seq);
                true
            }
            "T" => {
                log.tried.insert(seq);
                false
            }
            "K" => {
                log.acked.insert(seq);
                false
            }
            "R" => true,
            _ => false,
        }
    };
    for line in lines.by_ref() {
        if handle(&line.unwrap(), log) {
            n += 1;
            if n >= appends {
                break;
            }
        }
    }
    child.kill().unwrap(); // SIGKILL on Unix
    child.wait().unwrap();
    // Whatever it completed before dying is still in the pipe.
    for line in lines {
        let Ok(line) = line else { break };
        handle(&line, log);
    }
    assert!(n >= appends, "child stopped early after {n} appends");
    max_seq
}

#[cfg(unix)]
#[test]
fn kill9_mid_append_and_ack_loses_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let mut log = ChildLog::default();
    let mut prev_max = 0;
    for (round, appends) in [300, 900, 500, 1200, 700].into_iter().enumerate() {
        let before: BTreeSet<u64> = log.appended.keys().copied().collect();
        let max_reported = run_child_and_kill(tmp.path(), "plain", appends, &mut log);
        let new_min = log
            .appended
            .keys()
            .copied()
            .find(|s| !before.contains(s))
            .unwrap();
        assert!(new_min > prev_max, "round {round}: seqs went back");
        prev_max = max_reported;

        let ob = open(tmp.path(), child_cfg("plain"));
        let pending: Vec<u64> = seqs(&ob);
        assert_increasing(&pending);
        let p: BTreeSet<u64> = pending.iter().copied().collect();
        for (&s, _) in log.appended.iter() {
            assert!(
                p.contains(&s) || log.tried.contains(&s),
                "round {round}: appended seq {s} lost"
            );
        }
        for &s in &log.acked {
            assert!(!p.contains(&s), "round {round}: acked seq {s} replayed");
        }
        for &s in &p {
            // Only the one append in flight at the kill may be unreported.
            assert!(
                log.appended.contains_key(&s) || log.unreported.contains(&s) || s > max_reported,
                "round {round}: phantom seq {s}; max_reported {max_reported}; near: {:?}; unreported {:?}",
                log.appended.range(s.saturating_sub(3)..s + 3).collect::<Vec<_>>(),
                log.unreported
            );
        }
        let extra: Vec<u64> = p.iter().copied().filter(|&s| s > max_reported).collect();
        assert!(extra.len() <= 1, "{extra:?}");
        log.unreported.extend(extra);
    }
}

#[cfg(unix)]
#[test]
fn kill9_mid_compaction_loses_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let mut log = ChildLog::default();
    for (round, appends) in [1500, 2000, 900, 2500, 1200].into_iter().enumerate() {
        run_child_and_kill(tmp.path(), "compact", appends, &mut log);
        let ob = open(tmp.path(), child_cfg("compact"));
        let recs = all(&ob);
        assert_increasing(&recs.iter().map(|r| r.seq).collect::<Vec<_>>());
        let alerts: BTreeSet<u64> = recs
            .iter()
            .filter(|r| r.class == Class::Alert)
            .map(|r| r.seq)
            .collect();
        for (s, class) in &log.appended {
            if class == "alert" {
                assert!(alerts.contains(s), "round {round}: alert {s} lost");
            }
        }
        let counted = log.appended.values().filter(|c| *c == "count").count() as u64;
        let sum = count_sums(&recs).get("count/l").copied().unwrap_or(0);
        // At most one count per round may have been written but not reported.
        assert!(
            sum >= counted && sum <= counted + round as u64 + 1,
            "round {round}: {sum} counts on disk, {counted} reported"
        );
        // Compaction really ran in the child: 40-byte counts, far more than max_bytes of them.
        assert!(
            recs.len() * 2 < log.appended.len(),
            "round {round}: {} records, {} appends, {:?}",
            recs.len(),
            log.appended.len(),
            ob.stats()
        );
        let st = ob.stats();
        // Opening may start a new active segment: one header of slack.
        assert!(
            st.disk_bytes <= child_cfg("compact").max_bytes + HEADER_LEN,
            "round {round}: {st:?}"
        );
        assert!(fs::read_dir(tmp.path()).unwrap().all(|e| !e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .ends_with(".tmp")));
    }
}
