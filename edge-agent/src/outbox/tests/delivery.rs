//! Appending, reading and acknowledging: order, the publisher's cursor, segment rotation and
//! deletion, stats, oversized records, and producers and a publisher on several threads.

use super::*;

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
