//! The operators' web UI, served by the hub itself (the copy built into the binary), driven in Debian's
//! Chromium by `tests/web/ui.mjs` (playwright-core): sign-in in both languages; an alert that arrives live on
//! an operator's page from the edge agent's event (the agent is started only once the page listens) and is
//! confirmed by two different operators, the first by keyboard; the counts dashboard with agent health;
//! watchlist enrolment with the hub's photo-quality feedback and the agents' sync versions; a lodging guest
//! checked in by the CCCD QR payload and out again, the police search and the statistics chart; an exam
//! check-in by face, a photo without a face refused, a supervisor's override with a reason and the report;
//! identity records: a new record filled from the card's QR payload with a photo, found by its name without
//! diacritics, a 1:1 verification against it and a CSV import with a rejected line; the audit log with its
//! chain check; user administration; and the alerts page on a 768 px tablet.
//! Screenshots of every step go to `$CHECKPOINT_TEST_OUT/ui`, else `<target dir>/ui-screenshots`.
//!
//! Needs `node`, `/usr/bin/chromium` (or `$CHROMIUM`) and `npm ci --prefix tests/web`; `scripts/test`
//! installs them. `CHECKPOINT_SKIP_BROWSER=1` skips this test (and only that makes it pass without them).

#[path = "web_ui/phone.rs"]
mod phone;

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use checkpoint_e2e::hub::{faceless_png, lfw_b64 as lfw, lfw_path, Hub};
use checkpoint_e2e::mqtt::{free_port, unique_site};
use checkpoint_e2e::{wait_until, workspace_bin, Agent};
use serde_json::{json, Value};

/// Nguyễn Văn An, male, born 02/03/1985 in Hà Nội (as in hub_lodging.rs).
const AN_QR: &str =
    "001085012345|123456789|Nguyễn Văn An|02031985|Nam|Số 1 Tràng Tiền, Hoàn Kiếm, Hà Nội|15082021";
// Exam candidates (as in hub_exams.rs): the CCCDs agree with the dates of birth and genders.
const A: &str = "079085001234";
const B: &str = "001190004567";
const C: &str = "001302000789";
/// A new person for the records page: Phạm Thị Hoa, female, born 15/06/1990 in Hà Nội (digit 4 = 1: a woman
/// born in the 1900s; digits 5-6 = 90).
const HOA_QR: &str =
    "001190012345||Phạm Thị Hoa|15061990|Nữ|Số 5 Lý Thường Kiệt, Hoàn Kiếm, Hà Nội|10012022";
/// A CSV for the records import: line 2 is good; line 3's CCCD says a man (digit 4 = 0) and the row a woman.
const RECORDS_CSV: &str = "cccd,full_name,date_of_birth,gender,address\n\
    001085067890,Lê Văn Nam,02/03/1985,male,Số 2 Hàng Bài Hoàn Kiếm Hà Nội\n\
    001090054321,Trần Thị Sai,01/01/1990,female,Số 3 Hàng Bài Hoàn Kiếm Hà Nội\n";
/// The whole browser run, alert wait included, at most.
const NODE_LIMIT: Duration = Duration::from_secs(900);

fn call(hub: &Hub, method: &str, path: &str, token: &str, body: &Value) -> Value {
    let (st, resp) = hub.request(method, path, Some(token), Some(&body.to_string()));
    assert!((200..300).contains(&st), "{method} {path}: {st} {resp}");
    serde_json::from_str(&resp).unwrap_or(Value::Null)
}

/// Where a test's screenshots go: `$CHECKPOINT_TEST_OUT/<name>`, else beside the build
/// (`<target>/<name>-screenshots`). Each test has its own, since each empties it first.
fn screenshot_dir(name: &str) -> PathBuf {
    let dir = match std::env::var_os("CHECKPOINT_TEST_OUT") {
        Some(d) => PathBuf::from(d).join(name),
        None => workspace_bin("central-hub")
            .parent()
            .and_then(Path::parent)
            .expect("<target>/<profile>/central-hub")
            .join(format!("{name}-screenshots")),
    };
    // Only this test's own PNGs are removed, so an old failure-*.png cannot be mistaken for a new one.
    if let Ok(entries) = std::fs::read_dir(&dir) {
        for e in entries.flatten() {
            if e.path().extension().is_some_and(|x| x == "png") {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
    std::fs::create_dir_all(&dir).expect("screenshot directory");
    dir
}

/// The browser tooling, or why it is missing and how to install it.
fn browser_tools(web: &Path) -> Result<(), String> {
    let how = "install it with `scripts/test` (it runs scripts/setup), or by hand: \
               `apt-get install -y chromium nodejs npm` and `npm ci --prefix tests/web`; \
               set CHECKPOINT_SKIP_BROWSER=1 to skip this test";
    let node = Command::new("node").arg("--version").output();
    if !node.is_ok_and(|o| o.status.success()) {
        return Err(format!("`node` is not installed: {how}"));
    }
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    if !Path::new(&chromium).is_file() {
        return Err(format!("Chromium is not at {chromium}: {how}"));
    }
    if !web
        .join("node_modules/playwright-core/package.json")
        .is_file()
    {
        return Err(format!(
            "playwright-core is not installed in {}: {how}",
            web.display()
        ));
    }
    Ok(())
}

#[test]
fn operators_do_their_work_in_the_browser() {
    let web = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("web");
    if std::env::var("CHECKPOINT_SKIP_BROWSER").as_deref() == Ok("1") {
        eprintln!(
            "web_ui: skipped (CHECKPOINT_SKIP_BROWSER=1): the web UI was NOT tested in a browser"
        );
        return;
    }
    if let Err(why) = browser_tools(&web) {
        panic!("web_ui needs a browser: {why}");
    }

    let dir = tempfile::tempdir().unwrap();
    // The scene of hub_watchlist.rs: Zico walks past the gate (from Zico_0002.jpg); he is enrolled from
    // Zico_0001.jpg.
    let scene_video = checkpoint_e2e::zico_gate_scene(&dir.path().join("scene"));

    let port = free_port();
    let db = format!("sqlite://{}?mode=rwc", dir.path().join("hub.db").display());
    let hub = Hub::start(
        dir.path(),
        &format!("[mqtt]\nembedded = true\nlisten = \"127.0.0.1:{port}\""),
        &db,
    );
    let admin = hub.bootstrap_admin();
    let users = [
        ("sup1", "supervisor"),
        ("op1", "operator"),
        ("op2", "operator"),
        ("desk1", "lodging_staff"),
        ("gv1", "exam_staff"),
    ];
    let tokens = hub.add_users(&admin, &users);
    let sup = &tokens[0];
    let site = unique_site("ui-gate");

    // The built-in UI is served, with its security headers.
    let (st, page) = hub.get("/", None);
    assert_eq!(st, 200, "GET /");
    assert!(page.contains("/ui/app.js"), "{page}");
    let head = raw_head(&hub.http, "/ui/app.js");
    for want in [
        "content-security-policy: default-src 'self'; script-src 'self'",
        "x-content-type-options: nosniff",
        "content-type: text/javascript",
        "etag: ",
    ] {
        assert!(
            head.to_ascii_lowercase().contains(want),
            "{want} in:\n{head}"
        );
    }
    assert!(raw_head(&hub.http, "/ui/../hub.db").starts_with("HTTP/1.1 404"));

    // Watchlist: Zico, for the gate's site.
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    call(
        &hub,
        "POST",
        "/api/watchlists/entries",
        sup,
        &json!({"list": "wanted", "label": "Zico", "case_ref": "HP-2026-017",
                "legal_basis": "Lệnh truy nã 17/2026", "issued_by": "PC02 Hải Phòng",
                "expires_ms": now_ms + 30 * 86_400_000i64, "sites": [site],
                "photos_jpeg_b64": [lfw("Zico", 1)]}),
    );

    // Lodging: an establishment and its desk account.
    let est = call(
        &hub,
        "POST",
        "/api/lodging/establishments",
        &admin,
        &json!({"name": "Khách sạn Sông Hàn", "kind": "hotel", "site": unique_site("da-nang"),
                "address": "36 Bạch Đằng, Hải Châu, Đà Nẵng"}),
    );
    let est_id = est["id"].as_str().unwrap().to_string();
    call(
        &hub,
        "POST",
        &format!("/api/lodging/establishments/{est_id}/staff"),
        &admin,
        &json!({"username": "desk1"}),
    );

    // Exams: identity records with photos, a session, three candidates.
    for (cccd, name, dob, gender, person, n) in [
        (A, "Nguyễn Văn An", "1985-06-15", "male", "Zico", 1),
        (B, "Trần Thị Bình", "1990-02-20", "female", "Ann_Veneman", 3),
        (
            C,
            "Lê Thị Chi",
            "2002-11-05",
            "female",
            "Barbara_Brezigar",
            1,
        ),
    ] {
        call(
            &hub,
            "POST",
            "/api/persons",
            &admin,
            &json!({"cccd": cccd, "full_name": name, "date_of_birth": dob, "gender": gender,
                    "address": "Số 1 Tràng Tiền, Hoàn Kiếm, Hà Nội", "photo_jpeg_b64": lfw(person, n)}),
        );
    }
    let session = call(
        &hub,
        "POST",
        "/api/exams/sessions",
        sup,
        &json!({"venue_kind": "school", "venue": "THPT Chu Văn An", "subject": "Toán",
                "shift": "Ca 1 (7:30)", "starts_ms": now_ms + 3_600_000}),
    );
    let session_id = session["id"].as_str().unwrap().to_string();
    let reg = call(
        &hub,
        "POST",
        &format!("/api/exams/sessions/{session_id}/candidates"),
        sup,
        &json!({"candidates": [
            {"cccd": A, "candidate_no": "HN-0001"},
            {"cccd": B, "candidate_no": "HN-0002"},
            {"cccd": C, "candidate_no": "HN-0003"},
        ]}),
    );
    assert_eq!(reg["registered"].as_array().unwrap().len(), 3, "{reg}");
    // Exam staff act only on the sessions they are assigned to.
    let staff = call(
        &hub,
        "POST",
        &format!("/api/exams/sessions/{session_id}/staff"),
        sup,
        &json!({"username": "gv1"}),
    );
    assert_eq!(staff, json!(["gv1"]), "{staff}");

    // The agent gets the watchlist first (as in hub_watchlist.rs), so the match can happen on the first pass.
    let adir = tempfile::tempdir().unwrap();
    let pattern = r#"{ kind = "test", pattern = "ball", width = 160, height = 120, fps = 10 }"#;
    let login = hub.agent_login(&site, "a1");
    let cfg = checkpoint_e2e::gate_agent_config(adir.path(), &site, port, pattern, "", 2.0);
    login.provision(&cfg);
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("exit_when_done = true", "exit_when_done = false");
    std::fs::write(&cfg, text).unwrap();
    let mut agent = Agent::start(&cfg, adir.path());
    let synced = wait_until(Duration::from_secs(60), || {
        let (_, body) = hub.get("/api/watchlists/status", Some(sup));
        let v: Value = serde_json::from_str(&body).unwrap_or_default();
        v["agents"].as_array().is_some_and(|a| {
            a.iter()
                .any(|x| x["site"] == site.as_str() && x["in_sync"] == true)
        })
    });
    assert!(synced, "agent in sync; agent log:\n{}", agent.log_text());
    agent.interrupt();
    assert!(agent.wait(Duration::from_secs(30)).success());

    // The plan for the browser.
    let no_face = dir.path().join("no-face.png");
    std::fs::write(&no_face, faceless_png()).unwrap();
    let out = screenshot_dir("ui");
    let mut user_map = serde_json::Map::new();
    user_map.insert("admin".into(), json!(["admin", "admin password 1"]));
    for (key, (user, _)) in ["sup", "op1", "op2", "lodging", "exam"].iter().zip(users) {
        user_map.insert((*key).into(), json!([user, format!("password {user}")]));
    }
    let plan = json!({
        "hub": format!("http://{}", hub.http),
        "out": out,
        "alert_timeout_s": 240,
        "users": user_map,
        "site": site,
        "watchlist": {
            "photo": lfw_path("Ann_Veneman", 5),
            "no_face_photo": no_face,
            "label": "Trần Thị Bình",
            "site": unique_site("hai-phong"),
        },
        "lodging": {"qr": AN_QR, "guest_name": "Nguyễn Văn An", "search_name": "nguyen van an"},
        "exam": {
            "session_id": session_id,
            "candidate_no": "HN-0001",
            "photo": lfw_path("Zico", 3),
            "override_candidate_no": "HN-0002",
            "no_face_candidate_no": "HN-0003",
        },
        "records": {
            "qr": HOA_QR,
            "cccd": "001190012345",
            "full_name": "Phạm Thị Hoa",
            "date_of_birth": "1990-06-15",
            "search_name": "pham thi hoa",
            "photo": lfw_path("Angela_Bassett", 1),
            "verify_photo": lfw_path("Angela_Bassett", 2),
            "csv": RECORDS_CSV,
            "bad_line": 3,
        },
        "new_user": {"username": "op3", "display_name": "Phạm Văn Cường", "password": "password op3 for the ui"},
    });
    let plan_path = dir.path().join("plan.json");
    std::fs::write(&plan_path, serde_json::to_string_pretty(&plan).unwrap()).unwrap();
    eprintln!("web_ui: screenshots in {}", out.display());

    let mut node = Command::new("node")
        .arg(web.join("ui.mjs"))
        .arg(&plan_path)
        .current_dir(&web)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start node");
    let (tx, rx) = mpsc::channel();
    let stdout = node.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut stderr = node.stderr.take().unwrap();
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });

    // Read the driver's output; start the agent on the scene when the operator's page listens.
    let source = format!(r#"{{ kind = "file", path = "{}" }}"#, scene_video.display());
    let started = Instant::now();
    let mut output = Vec::new();
    let mut scene_agent = None;
    let status = loop {
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(line) => {
                eprintln!("ui: {line}");
                if line == "READY alerts" && scene_agent.is_none() {
                    let cfg = checkpoint_e2e::gate_agent_config(
                        adir.path(),
                        &site,
                        port,
                        &source,
                        "",
                        2.0,
                    );
                    login.provision(&cfg);
                    scene_agent = Some(Agent::start(&cfg, adir.path()));
                }
                output.push(line);
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => break node.wait().expect("node"),
        }
        if started.elapsed() > NODE_LIMIT {
            let _ = node.kill();
            break node.wait().expect("node");
        }
    };
    let errors = err_reader.join().unwrap_or_default();
    let agent_log = scene_agent
        .as_ref()
        .map(Agent::log_text)
        .unwrap_or_default();
    drop(scene_agent);
    assert!(
        output.iter().any(|l| l == "READY alerts"),
        "the browser never opened the alerts page;\nstdout:\n{}\nstderr:\n{errors}",
        output.join("\n")
    );
    assert!(
        status.success() && output.iter().any(|l| l.starts_with("ALL STEPS PASSED")),
        "the browser test failed ({status}); screenshots in {}\nstdout:\n{}\nstderr:\n{errors}\n\
         hub log (tail):\n{}\nagent log (tail):\n{}",
        out.display(),
        output.join("\n"),
        tail(&hub.log_text(), 60),
        tail(&agent_log, 40),
    );
    eprintln!("web_ui: passed; screenshots in {}", out.display());
}

/// The status line and headers of `GET path`.
fn raw_head(addr: &str, path: &str) -> String {
    use std::io::Write;
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf).to_string();
    text.split("\r\n\r\n").next().unwrap_or("").to_string()
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
