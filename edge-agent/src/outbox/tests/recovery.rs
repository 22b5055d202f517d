//! Reopening after a restart or a crash: pending records and acks survive, seqs keep
//! increasing, torn tails are truncated, corrupt records and ack files cost only what they
//! must, and one outbox holds a directory.

use super::*;

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
