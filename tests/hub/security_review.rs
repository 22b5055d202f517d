//! Regression tests for issue 12 (findings 8, 10, 13, 15), against the real `central-hub` binary: an image
//! whose header asks for 81 million pixels is refused before decoding (hub API and agent CLI); the audit
//! chain detects a chain recomputed after an edit and rows deleted from its tail (`central-hub audit
//! verify`); exam staff compare faces only for candidates of sessions they run; the enroller of a watchlist
//! entry cannot confirm its alerts, invisible notes are refused, and a supervisor can reopen a dismissal.
//!
//! Alerts are raised through a lodging check-in of a wanted person, not by publishing to the MQTT broker,
//! so these tests do not depend on the broker's login rules.

use std::process::Command;

use checkpoint_e2e::hub::{lfw_b64, pg_schema, Hub};
use checkpoint_e2e::mqtt::{free_port, unique_site};
use checkpoint_e2e::workspace_bin;
use serde_json::{json, Value};

/// Trần Thị Thu Hà, female, born 17/11/1995 in TP. Hồ Chí Minh.
const HA_QR: &str = "079195004321||Trần Thị Thu Hà|17111995|Nữ|12 Nguyễn Huệ, Bến Nghé, Quận 1, TP. Hồ Chí Minh|03042022";
const HA: &str = "079195004321";

fn parse(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
}

fn call(hub: &Hub, method: &str, path: &str, token: Option<&str>, body: &Value) -> (u16, Value) {
    let text = body.to_string();
    let (st, resp) = hub.request(
        method,
        path,
        token,
        (!body.is_null()).then_some(text.as_str()),
    );
    (
        st,
        serde_json::from_str(&resp).unwrap_or(Value::String(resp)),
    )
}

fn start(dir: &std::path::Path, database_url: &str, extra: &str) -> Hub {
    let port = free_port();
    Hub::start(
        dir,
        &format!("[mqtt]\nembedded = true\nlisten = \"127.0.0.1:{port}\"\n{extra}"),
        database_url,
    )
}

fn sqlite_url(dir: &std::path::Path) -> String {
    format!("sqlite://{}?mode=rwc", dir.join("hub.db").display())
}

/// Runs SQL behind the hub's back, as someone with access to the database server would.
fn run_sql(database_url: &str, sql: &str) {
    let status = if database_url.starts_with("postgres") {
        let (base, schema) = database_url
            .split_once("?options=-c%20search_path%3D")
            .unwrap();
        Command::new("psql")
            .args([base, "-q", "-v", "ON_ERROR_STOP=1", "-c"])
            .arg(format!("SET search_path = {schema}; {sql}"))
            .status()
    } else {
        let path = database_url.trim_start_matches("sqlite://");
        let path = path.split('?').next().unwrap();
        Command::new("python3")
            .args([
                "-c",
                "import sqlite3,sys; c=sqlite3.connect(sys.argv[1], timeout=30); c.executescript(sys.argv[2]); c.commit()",
            ])
            .arg(path)
            .arg(sql)
            .status()
    };
    assert!(status.unwrap().success(), "{sql}");
}

/// A valid 8-bit greyscale PNG of `w`x`h` black pixels, a few hundred KB however large: the rows are zeros,
/// so the zlib stream is one literal and then length-258 copies at distance 1 (fixed Huffman codes).
fn black_png(w: u32, h: u32) -> Vec<u8> {
    struct Bits {
        out: Vec<u8>,
        acc: u64,
        n: u32,
    }
    impl Bits {
        fn put(&mut self, v: u32, n: u32) {
            self.acc |= u64::from(v) << self.n;
            self.n += n;
            while self.n >= 8 {
                self.out.push(self.acc as u8);
                self.acc >>= 8;
                self.n -= 8;
            }
        }
        /// Huffman codes go most significant bit first.
        fn code(&mut self, v: u32, n: u32) {
            let r = (0..n).fold(0, |r, i| r | ((v >> i) & 1) << (n - 1 - i));
            self.put(r, n);
        }
    }
    let raw = (u64::from(w) + 1) * u64::from(h);
    let mut b = Bits {
        out: vec![0x78, 0x01],
        acc: 0,
        n: 0,
    };
    b.put(1, 1); // final block
    b.put(1, 2); // fixed Huffman
    b.code(0x30, 8); // literal 0
    let mut left = raw - 1;
    while left >= 258 {
        b.code(0b1100_0101, 8); // length code 285: 258 bytes
        b.code(0, 5); // distance code 0: distance 1
        left -= 258;
    }
    while left > 0 {
        b.code(0x30, 8);
        left -= 1;
    }
    b.code(0, 7); // end of block
    if b.n > 0 {
        b.out.push(b.acc as u8);
    }
    let mut zlib = b.out;
    // Adler-32 of `raw` zeros: a = 1, b = raw mod 65521.
    zlib.extend((((raw % 65521) as u32) << 16 | 1).to_be_bytes());
    let mut ihdr = w.to_be_bytes().to_vec();
    ihdr.extend(h.to_be_bytes());
    ihdr.extend([8, 0, 0, 0, 0]);
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    for (kind, data) in [(&b"IHDR"[..], ihdr), (b"IDAT", zlib), (b"IEND", Vec::new())] {
        png.extend((data.len() as u32).to_be_bytes());
        let mut chunk = kind.to_vec();
        chunk.extend(&data);
        png.extend(&chunk);
        png.extend(crc32(&chunk).to_be_bytes());
    }
    png
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// Peak resident memory of a process, KiB.
fn peak_rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

// ---------------------------------------------------------------- finding 8

#[test]
fn a_9000x9000_png_is_refused_before_decoding() {
    let dir = tempfile::tempdir().unwrap();
    let hub = start(dir.path(), &sqlite_url(dir.path()), "");
    let admin = hub.bootstrap_admin();
    let png = checkpoint_e2e::hub::b64(&black_png(9000, 9000));
    let next_month = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
        + 30 * 86_400_000;
    assert!(png.len() < 1_000_000, "a small upload: {} bytes", png.len());
    let (st, body) = call(
        &hub,
        "POST",
        "/api/persons",
        Some(&admin),
        &json!({"cccd": HA, "full_name": "Trần Thị Thu Hà", "date_of_birth": "1995-11-17",
                "gender": "female", "address": "12 Nguyễn Huệ, Quận 1"}),
    );
    assert_eq!(st, 201, "{body}");
    let before = peak_rss_kib(hub.child.id());
    let (st, body) = call(
        &hub,
        "POST",
        &format!("/api/persons/{HA}/photos"),
        Some(&admin),
        &json!({ "photo_jpeg_b64": png }),
    );
    assert_eq!(st, 413, "{body}");
    assert_eq!(body["code"], "image_too_large", "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("image too large: 9000x9000, at most"),
        "{body}"
    );
    let (st, body) = call(
        &hub,
        "POST",
        "/api/watchlists/entries",
        Some(&admin),
        &json!({"list": "wanted", "label": "x", "case_ref": "c", "legal_basis": "l", "issued_by": "i",
                "expires_ms": next_month, "sites": [], "photos_jpeg_b64": [png]}),
    );
    assert_eq!(st, 413, "{body}");
    assert_eq!(body["code"], "image_too_large", "{body}");
    // Decoding it would have touched 81 MB of grey and 243 MB of RGB at least.
    let grown = peak_rss_kib(hub.child.id()).saturating_sub(before);
    assert!(grown < 64 * 1024, "peak memory grew by {grown} KiB");
}

#[test]
fn the_agent_cli_refuses_a_9000x9000_png() {
    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("big.png");
    std::fs::write(&big, black_png(9000, 9000)).unwrap();
    let out = Command::new(workspace_bin("edge-agent"))
        .args(["faces", "--json"])
        .arg(&big)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("image too large: 9000x9000"), "{text}");
}

// ---------------------------------------------------------------- finding 10

fn stop_gracefully(hub: &mut Hub) {
    let st = Command::new("kill")
        .args(["-TERM", &hub.child.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    let t = std::time::Instant::now();
    while t.elapsed() < std::time::Duration::from_secs(30) {
        if hub.child.try_wait().unwrap().is_some() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    panic!("hub did not stop; log:\n{}", hub.log_text());
}

fn verify(hub: &Hub) -> (i32, String) {
    let out = hub.cli(&["audit", "verify"], "");
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// Python that recomputes every audit hash from `from` on with the unkeyed rule, as anyone with write access
/// to the database and the source code can.
const RECOMPUTE: &str = r#"
import hashlib, sqlite3, struct, sys
c = sqlite3.connect(sys.argv[1], timeout=30)
rows = c.execute("SELECT seq, ts_ms, actor, action, target, detail, hash FROM audit_log ORDER BY seq").fetchall()
prev = "0" * 64
for seq, ts, actor, action, target, detail, h in rows:
    if seq >= int(sys.argv[2]):
        m = b""
        for f in [prev.encode(), struct.pack(">q", seq), struct.pack(">q", ts), actor.encode(), action.encode(), target.encode(), detail.encode()]:
            m += struct.pack(">Q", len(f)) + f
        h = hashlib.sha256(m).hexdigest()
        c.execute("UPDATE audit_log SET prev_hash = ?, hash = ? WHERE seq = ?", (prev, h, seq))
    prev = h
c.commit()
"#;

fn audit_scenario(database_url: &str) {
    let dir = tempfile::tempdir().unwrap();
    let mut hub = start(
        dir.path(),
        database_url,
        "[audit]\ncheckpoint_interval_s = 1",
    );
    let admin = hub.bootstrap_admin();
    hub.add_users(
        &admin,
        &[
            ("sup1", "supervisor"),
            ("op1", "operator"),
            ("op2", "operator"),
        ],
    );
    let key = dir.path().join("data/audit.key");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );
    stop_gracefully(&mut hub);
    let ckpts = std::fs::read_to_string(dir.path().join("data/audit-checkpoints.jsonl")).unwrap();
    let last = parse(ckpts.lines().last().unwrap());
    assert!(
        hub.log_text().contains("audit checkpoint"),
        "checkpoints go to the log too"
    );

    let (code, out) = verify(&hub);
    assert_eq!(code, 0, "{out}");
    let n = last["seq"].as_i64().unwrap();
    assert!(n >= 4, "{ckpts}");
    assert!(
        out.contains(&format!("audit chain intact: {n} entries")),
        "the shutdown checkpoint seals every entry: {out}\n{ckpts}"
    );

    // Entries deleted from the tail: what is left still links.
    run_sql(database_url, "DELETE FROM audit_log WHERE seq > 2");
    let (code, out) = verify(&hub);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("BROKEN at entry 3") && out.contains("deleted from the tail"),
        "{out}"
    );
}

#[test]
fn audit_truncation_is_detected_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    audit_scenario(&sqlite_url(dir.path()));
}

#[test]
fn audit_truncation_is_detected_on_postgres() {
    audit_scenario(&pg_schema());
}

#[test]
fn a_recomputed_audit_chain_is_detected() {
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_url(dir.path());
    let mut hub = start(dir.path(), &url, "");
    let admin = hub.bootstrap_admin();
    hub.add_users(&admin, &[("op1", "operator")]);
    stop_gracefully(&mut hub);
    assert_eq!(verify(&hub).0, 0);
    // Someone rewrites who created op1 and recomputes the chain so that every row links.
    run_sql(
        &url,
        "UPDATE audit_log SET actor = 'cli' WHERE action = 'user.create' AND target = 'op1'",
    );
    let db = dir.path().join("hub.db");
    let st = Command::new("python3")
        .args(["-c", RECOMPUTE])
        .arg(&db)
        .arg("1")
        .status()
        .unwrap();
    assert!(st.success());
    let (code, out) = verify(&hub);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("BROKEN at entry"), "{out}");
}

// ---------------------------------------------------------------- finding 13

fn exam_scenario(database_url: &str) {
    let dir = tempfile::tempdir().unwrap();
    let hub = start(dir.path(), database_url, "");
    let admin = hub.bootstrap_admin();
    let [sup, gv1, gv2] = hub
        .add_users(
            &admin,
            &[
                ("sup1", "supervisor"),
                ("gv1", "exam_staff"),
                ("gv2", "exam_staff"),
            ],
        )
        .try_into()
        .unwrap();
    let (a, b) = ("079085001234", "001190004567");
    // The CCCDs agree with the dates of birth and genders (as in hub_exams.rs).
    for (cccd, name, dob, gender, person, n) in [
        (a, "Nguyễn Văn An", "1985-06-15", "male", "Ann_Veneman", 3),
        (b, "Trần Thị Bình", "1990-02-20", "female", "Zico", 1),
    ] {
        let (st, body) = call(
            &hub,
            "POST",
            "/api/persons",
            Some(&admin),
            &json!({"cccd": cccd, "full_name": name, "date_of_birth": dob, "gender": gender,
                    "address": "Hà Nội", "photo_jpeg_b64": lfw_b64(person, n)}),
        );
        assert_eq!(st, 201, "{body}");
    }
    let (st, session) = call(
        &hub,
        "POST",
        "/api/exams/sessions",
        Some(&sup),
        &json!({"venue_kind": "school", "venue": "THPT Chu Văn An", "subject": "Toán",
                "shift": "Ca 1", "starts_ms": 1_782_000_000_000i64}),
    );
    assert_eq!(st, 201, "{session}");
    let id = session["id"].as_str().unwrap().to_string();
    let (st, reg) = call(
        &hub,
        "POST",
        &format!("/api/exams/sessions/{id}/candidates"),
        Some(&sup),
        &json!({"candidates": [{"cccd": a, "candidate_no": "HN-0001"}]}),
    );
    assert_eq!(st, 200, "{reg}");
    let live = lfw_b64("Ann_Veneman", 5);
    let verify = |token: &str, cccd: &str, session: Option<&str>| {
        call(
            &hub,
            "POST",
            &format!("/api/persons/{cccd}/verify"),
            Some(token),
            &json!({"photo_jpeg_b64": live, "exam_session_id": session}),
        )
    };
    let checkin = |token: &str| {
        call(
            &hub,
            "POST",
            &format!("/api/exams/sessions/{id}/checkin"),
            Some(token),
            &json!({"cccd": a, "photo_jpeg_b64": live}),
        )
    };

    // Not assigned: no comparison with any citizen, in or out of a session.
    let (st, body) = verify(&gv1, b, None);
    assert_eq!(
        (st, &body["code"]),
        (403, &json!("exam_not_assigned")),
        "{body}"
    );
    let (st, body) = verify(&gv1, a, Some(&id));
    assert_eq!(
        (st, &body["code"]),
        (403, &json!("exam_not_assigned")),
        "{body}"
    );
    let (st, body) = verify(&gv1, a, Some("no-such-session"));
    assert_eq!(
        (st, &body["code"]),
        (403, &json!("exam_not_assigned")),
        "{body}"
    );
    let (st, body) = checkin(&gv1);
    assert_eq!(
        (st, &body["code"]),
        (403, &json!("exam_not_assigned")),
        "{body}"
    );
    assert_eq!(
        hub.get(&format!("/api/exams/sessions/{id}/report"), Some(&gv1))
            .0,
        403
    );
    let (_, list) = call(&hub, "GET", "/api/exams/sessions", Some(&gv1), &Value::Null);
    assert_eq!(list, json!([]), "unassigned staff list no session");

    // Assigned by the supervisor: the session's candidates only.
    let staff = |token: &str, user: &str| {
        call(
            &hub,
            "POST",
            &format!("/api/exams/sessions/{id}/staff"),
            Some(token),
            &json!({ "username": user }),
        )
    };
    assert_eq!(staff(&gv1, "gv1").0, 403, "staff do not assign themselves");
    assert_eq!(staff(&sup, "sup1").0, 400, "only exam_staff users");
    let (st, body) = staff(&sup, "gv1");
    assert_eq!((st, body.clone()), (200, json!(["gv1"])), "{body}");
    let (_, list) = call(&hub, "GET", "/api/exams/sessions", Some(&gv1), &Value::Null);
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
    let (st, body) = verify(&gv1, a, Some(&id));
    assert_eq!(st, 200, "{body}");
    assert_eq!(body["matched"], true, "{body}");
    let (st, body) = checkin(&gv1);
    assert_eq!(st, 200, "{body}");
    // A citizen not registered in the session, with or without a record: the same 404.
    let (st1, b1) = verify(&gv1, b, Some(&id));
    let (st2, b2) = verify(&gv1, "001302000789", Some(&id));
    assert_eq!((st1, st2), (404, 404), "{b1} {b2}");
    assert!(
        b1["error"].as_str().unwrap().contains("not registered"),
        "{b1}"
    );
    assert!(
        b2["error"].as_str().unwrap().contains("not registered"),
        "{b2}"
    );
    // Another exam staff account is still refused; unassigning takes the right away.
    assert_eq!(checkin(&gv2).0, 403);
    let (st, body) = call(
        &hub,
        "DELETE",
        &format!("/api/exams/sessions/{id}/staff/gv1"),
        Some(&sup),
        &Value::Null,
    );
    assert_eq!((st, body.clone()), (200, json!([])), "{body}");
    assert_eq!(checkin(&gv1).0, 403);
    let (_, audit) = call(
        &hub,
        "GET",
        "/api/audit?action=exam.staff&limit=10",
        Some(&sup),
        &Value::Null,
    );
    assert_eq!(audit.as_array().unwrap().len(), 2, "{audit}");
}

#[test]
fn exam_staff_verify_only_their_candidates_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    exam_scenario(&sqlite_url(dir.path()));
}

#[test]
fn exam_staff_verify_only_their_candidates_on_postgres() {
    exam_scenario(&pg_schema());
}

// ---------------------------------------------------------------- finding 15

/// A candidate alert for the wanted entry `entry`, raised the way a lodging desk raises one: checking the
/// wanted person in (and out again, so the next call can check in once more). Returns the alert id.
fn raise_alert(hub: &Hub, desk: &str, reader: &str, establishment: &str, entry: &str) -> String {
    let (_, before) = call(
        hub,
        "GET",
        "/api/alerts?limit=1000",
        Some(reader),
        &Value::Null,
    );
    let known: Vec<Value> = before
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].clone())
        .collect();
    let (st, stay) = call(
        hub,
        "POST",
        "/api/lodging/stays",
        Some(desk),
        &json!({"establishment_id": establishment, "room": "207", "qr": HA_QR}),
    );
    assert_eq!(st, 201, "{stay}");
    let (st, body) = call(
        hub,
        "POST",
        &format!(
            "/api/lodging/stays/{}/checkout",
            stay["id"].as_str().unwrap()
        ),
        Some(desk),
        &Value::Null,
    );
    assert_eq!(st, 200, "{body}");
    let (_, after) = call(
        hub,
        "GET",
        "/api/alerts?limit=1000",
        Some(reader),
        &Value::Null,
    );
    after
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["entry_id"] == entry && !known.contains(&a["id"]))
        .and_then(|a| a["id"].as_str())
        .unwrap_or_else(|| panic!("a new alert for {entry}: {after}"))
        .to_string()
}

fn review_scenario(database_url: &str) {
    let dir = tempfile::tempdir().unwrap();
    let hub = start(dir.path(), database_url, "");
    let admin = hub.bootstrap_admin();
    let [sup1, sup2, op1, desk] = hub
        .add_users(
            &admin,
            &[
                ("sup1", "supervisor"),
                ("sup2", "supervisor"),
                ("op1", "operator"),
                ("desk1", "lodging_staff"),
            ],
        )
        .try_into()
        .unwrap();
    let (st, est) = call(
        &hub,
        "POST",
        "/api/lodging/establishments",
        Some(&admin),
        &json!({"name": "Khách sạn Sông Hàn", "kind": "hotel", "site": unique_site("dn"),
                "address": "36 Bạch Đằng, Đà Nẵng"}),
    );
    assert_eq!(st, 201, "{est}");
    let est = est["id"].as_str().unwrap().to_string();
    let (st, body) = call(
        &hub,
        "POST",
        &format!("/api/lodging/establishments/{est}/staff"),
        Some(&admin),
        &json!({"username": "desk1"}),
    );
    assert_eq!(st, 200, "{body}");
    // The entry as sup1 enrolled it (written directly: the API would need face models and a photo).
    let entry = format!("wanted-{}", unique_site("e"));
    run_sql(
        database_url,
        &format!(
            "INSERT INTO watchlist_entries (id, list, person_cccd, label, case_ref, legal_basis, issued_by, \
             expires_ms, sites, case_retention_days, created_by, created_ms, withdrawn_ms) VALUES \
             ('{entry}', 'wanted', '{HA}', 'Đối tượng truy nã', 'QĐTN-45/2025', 'Điều 231 BLTTHS 2015', \
             'Công an TP. Đà Nẵng', 4102444800000, '*', 365, 'sup1', 0, NULL)"
        ),
    );
    let review = |token: &str, alert: &str, decision: &str, note: &str| {
        call(
            &hub,
            "POST",
            &format!("/api/alerts/{alert}/review"),
            Some(token),
            &json!({"decision": decision, "note": note}),
        )
    };

    let a = raise_alert(&hub, &desk, &op1, &est, &entry);
    // A note of zero-width and blank characters is no note.
    for note in [
        "\u{200B}\u{200B}\u{200B}",
        "\u{2060}\u{FEFF} \u{00A0}",
        "\u{200C}\u{200D}\t",
    ] {
        let (st, body) = review(&op1, &a, "confirm", note);
        assert_eq!(
            (st, &body["code"]),
            (400, &json!("note_required")),
            "{note:?}: {body}"
        );
    }
    // The enroller confirms nothing, neither first nor second.
    let (st, body) = review(&sup1, &a, "confirm", "it is her");
    assert_eq!(
        (st, &body["code"]),
        (403, &json!("enroller_cannot_confirm")),
        "{body}"
    );
    let (st, body) = review(&op1, &a, "confirm", "same face, same birthmark");
    assert_eq!(
        (st, &body["status"]),
        (200, &json!("confirmed_once")),
        "{body}"
    );
    let (st, body) = review(&sup1, &a, "confirm", "agree");
    assert_eq!(
        (st, &body["code"]),
        (403, &json!("enroller_cannot_confirm")),
        "{body}"
    );
    let (st, body) = review(&sup2, &a, "confirm", "agree, checked the stay");
    assert_eq!((st, &body["status"]), (200, &json!("confirmed")), "{body}");

    // One operator's dismissal can be reopened by a supervisor, with a visible reason.
    let b = raise_alert(&hub, &desk, &op1, &est, &entry);
    let (st, body) = review(&op1, &b, "dismiss", "not her");
    assert_eq!((st, &body["status"]), (200, &json!("dismissed")), "{body}");
    let reopen = |token: &str, alert: &str, reason: &str| {
        call(
            &hub,
            "POST",
            &format!("/api/alerts/{alert}/reopen"),
            Some(token),
            &json!({ "reason": reason }),
        )
    };
    assert_eq!(
        reopen(&op1, &b, "look again").0,
        403,
        "operators do not reopen"
    );
    let (st, body) = reopen(&sup2, &b, "\u{200B}");
    assert_eq!(
        (st, &body["code"]),
        (400, &json!("note_required")),
        "{body}"
    );
    let (st, body) = reopen(&sup2, &a, "look again");
    assert_eq!(
        (st, &body["code"]),
        (409, &json!("alert_not_dismissed")),
        "{body}"
    );
    let (st, body) = reopen(&sup2, &b, "the stay matches the warrant's address");
    assert_eq!((st, &body["status"]), (200, &json!("candidate")), "{body}");
    let (_, alert) = call(
        &hub,
        "GET",
        &format!("/api/alerts/{b}"),
        Some(&op1),
        &Value::Null,
    );
    assert_eq!(alert["status"], "candidate", "{alert}");
    let (_, hist) = call(
        &hub,
        "GET",
        &format!("/api/alerts/{b}/reviews"),
        Some(&op1),
        &Value::Null,
    );
    let decisions: Vec<&str> = hist
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["decision"].as_str().unwrap())
        .collect();
    assert_eq!(decisions, ["dismiss", "reopen"], "{hist}");
    let (st, body) = review(&op1, &b, "confirm", "on a second look, her");
    assert_eq!(
        (st, &body["status"]),
        (200, &json!("confirmed_once")),
        "{body}"
    );
    let (_, audit) = call(
        &hub,
        "GET",
        "/api/audit?action=alert.reopen",
        Some(&sup1),
        &Value::Null,
    );
    assert_eq!(audit.as_array().unwrap().len(), 1, "{audit}");
    assert_eq!(audit[0]["actor"], "sup2");
}

#[test]
fn two_person_rule_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    review_scenario(&sqlite_url(dir.path()));
}

#[test]
fn two_person_rule_on_postgres() {
    review_scenario(&pg_schema());
}
