//! kill -9 in the middle of appends, acks and compactions: a child process (this test binary
//! re-run on `kill9_child_entry`) works on an outbox until it is killed, and the parent checks
//! that nothing it reported is lost or replayed.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use super::*;

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
