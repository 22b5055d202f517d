//! The outbox's tests, one file per operation, and the helpers they share.

mod compaction;
mod config;
mod crash;
mod delivery;
mod recovery;

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::acks::{AckState, ACK_FILE};
use super::format::{encode_frame, FRAME_OVERHEAD, HEADER_LEN};
use super::segment::Entry;
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

/// Fixed-size records: "t/x" + 10-byte payload.
const REC: u64 = FRAME_OVERHEAD + 3 + 10;

fn flip(path: &Path, at: u64) {
    let mut b = fs::read(path).unwrap();
    b[at as usize] ^= 0x40;
    fs::write(path, b).unwrap();
}
