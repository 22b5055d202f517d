//! The lodging and exam desks on a phone (issue 17), in Chromium at 390×844 with touch, its camera fed from a
//! video this test draws: a citizen ID card's QR code (real CCCD format) held up beside the holder's face (a
//! LFW photo other than the one on record). `tests/web/phone.mjs` drives it:
//! - lodging: the card is scanned with the camera and fills the form; the guest is checked in; the page is
//!   reloaded with the network off and still opens (the service worker); a passport check-in and a second
//!   scan of the same card are queued on the phone; back online, the passport guest lands once (the first
//!   answer is dropped on the way back, so the queue sends it twice) and the repeated card is refused
//!   (already checked in) and shown as refused;
//! - exam: the card picks the candidate, the camera photo verifies them; the same photo for another
//!   candidate does not;
//! - every control on those pages is at least 44 px tall and wide, and nothing scrolls sideways; the same on
//!   every other lodging and exam page at 360 px (sessions, report, establishments, guest search, statistics).
//!
//! Then the hub's own records are checked: one stay per guest, at the time the phone recorded it.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use checkpoint_e2e::hub::{lfw_b64 as lfw, lfw_path, Hub};
use checkpoint_e2e::mqtt::{free_port, unique_site};
use serde_json::{json, Value};

use super::{browser_tools, call, screenshot_dir, tail};

/// The exam candidate whose card and face the camera shows (record photo Zico 1, camera Zico 3).
const SHOWN: &str = "079085001234";
/// Another candidate, on record with another face.
const OTHER: &str = "001190004567";
/// The card the camera shows: the candidate above (digit 4 = 0: a man born in the 1900s; digits 5-6 = 85).
const SHOWN_QR: &str =
    "079085001234|123456789|Nguyễn Văn An|15061985|Nam|Số 1 Tràng Tiền, Hoàn Kiếm, Hà Nội|15082021";
const PHONE_LIMIT: Duration = Duration::from_secs(600);

const W: usize = 640;
const H: usize = 480;

/// An RGB canvas.
struct Canvas(Vec<[u8; 3]>);

impl Canvas {
    fn new() -> Self {
        Canvas(vec![[255, 255, 255]; W * H])
    }

    fn fill(&mut self, x0: usize, y0: usize, w: usize, h: usize, c: [u8; 3]) {
        for y in y0..(y0 + h).min(H) {
            for x in x0..(x0 + w).min(W) {
                self.0[y * W + x] = c;
            }
        }
    }

    /// The card: a pale rectangle with the QR code inside its quiet zone.
    fn card(&mut self, payload: &str, x0: usize, y0: usize, side: usize) {
        let code = qrcode::QrCode::with_error_correction_level(payload, qrcode::EcLevel::M)
            .expect("a CCCD payload fits a QR code");
        let n = code.width();
        let module = side / (n + 8);
        assert!(module >= 3, "{n} modules do not fit {side} px");
        self.fill(x0, y0, side, side, [238, 240, 236]);
        let inner = x0 + (side - module * n) / 2;
        let top = y0 + (side - module * n) / 2;
        self.fill(
            inner - 4 * module,
            top - 4 * module,
            module * (n + 8),
            module * (n + 8),
            [255, 255, 255],
        );
        for y in 0..n {
            for x in 0..n {
                if code[(x, y)] == qrcode::Color::Dark {
                    self.fill(
                        inner + x * module,
                        top + y * module,
                        module,
                        module,
                        [20, 20, 28],
                    );
                }
            }
        }
    }

    fn photo(&mut self, jpeg: &Path, x0: usize, y0: usize, side: usize) {
        let img = image::open(jpeg).expect("a LFW photo").to_rgb8();
        let img = image::imageops::resize(
            &img,
            side as u32,
            side as u32,
            image::imageops::FilterType::Triangle,
        );
        for (x, y, p) in img.enumerate_pixels() {
            let (x, y) = (x0 + x as usize, y0 + y as usize);
            if x < W && y < H {
                self.0[y * W + x] = p.0;
            }
        }
    }

    /// YUV 4:2:0 (BT.601, full range, as `C420jpeg` says).
    fn i420(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(W * H * 3 / 2);
        let yuv = |[r, g, b]: [u8; 3]| {
            let (r, g, b) = (r as f32, g as f32, b as f32);
            (
                0.299 * r + 0.587 * g + 0.114 * b,
                -0.168_736 * r - 0.331_264 * g + 0.5 * b + 128.0,
                0.5 * r - 0.418_688 * g - 0.081_312 * b + 128.0,
            )
        };
        out.extend(
            self.0
                .iter()
                .map(|p| yuv(*p).0.round().clamp(0.0, 255.0) as u8),
        );
        for plane in [1, 2] {
            for y in (0..H).step_by(2) {
                for x in (0..W).step_by(2) {
                    let sum: f32 = [(0, 0), (1, 0), (0, 1), (1, 1)]
                        .iter()
                        .map(|(dx, dy)| {
                            let v = yuv(self.0[(y + dy) * W + x + dx]);
                            if plane == 1 {
                                v.1
                            } else {
                                v.2
                            }
                        })
                        .sum();
                    out.push((sum / 4.0).round().clamp(0.0, 255.0) as u8);
                }
            }
        }
        out
    }
}

/// The camera's video: the face in the middle (where the capture oval wants it) and the card held up below
/// it, one second at 10 fps (Chromium plays it in a loop).
fn camera_video(path: &Path, qr: &str, face: &Path) {
    let mut c = Canvas::new();
    c.photo(face, 170, 0, 300);
    c.card(qr, 8, 302, 176);
    let frame = c.i420();
    let mut y4m = format!("YUV4MPEG2 W{W} H{H} F10:1 Ip A1:1 C420jpeg\n").into_bytes();
    for _ in 0..10 {
        y4m.extend_from_slice(b"FRAME\n");
        y4m.extend_from_slice(&frame);
    }
    std::fs::write(path, y4m).expect("writing the camera video");
}

#[test]
fn phone_desks_scan_cards_check_in_offline_and_verify_faces() {
    let web = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("web");
    if std::env::var("CHECKPOINT_SKIP_BROWSER").as_deref() == Ok("1") {
        eprintln!(
            "web_ui phone: skipped (CHECKPOINT_SKIP_BROWSER=1): the phone pages were NOT tested"
        );
        return;
    }
    if let Err(why) = browser_tools(&web) {
        panic!("web_ui needs a browser: {why}");
    }
    let dir = tempfile::tempdir().unwrap();
    let video = dir.path().join("camera.y4m");
    camera_video(&video, SHOWN_QR, &lfw_path("Zico", 3));

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
        ("bus1", "lodging_staff"),
        ("gv1", "exam_staff"),
        ("police1", "operator"),
    ];
    let tokens = hub.add_users(&admin, &users);
    let sup = &tokens[0];
    let bus = &tokens[1];

    // A long-distance bus: its operator declares passengers from a phone on the road.
    let est = call(
        &hub,
        "POST",
        "/api/lodging/establishments",
        &admin,
        &json!({"name": "Xe khách Phương Trang 51B-123.45", "kind": "long_distance_bus",
                "site": unique_site("ben-xe"), "address": "Bến xe Miền Đông, TP Hồ Chí Minh"}),
    );
    let est_id = est["id"].as_str().unwrap().to_string();
    call(
        &hub,
        "POST",
        &format!("/api/lodging/establishments/{est_id}/staff"),
        &admin,
        &json!({"username": "bus1"}),
    );

    // An exam session with the candidate the camera shows and another.
    for (cccd, name, dob, gender, person, n) in [
        (SHOWN, "Nguyễn Văn An", "1985-06-15", "male", "Zico", 1),
        (
            OTHER,
            "Trần Thị Bình",
            "1990-02-20",
            "female",
            "Ann_Veneman",
            3,
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
    let now_ms = time::OffsetDateTime::now_utc().unix_timestamp() * 1000;
    let session = call(
        &hub,
        "POST",
        "/api/exams/sessions",
        sup,
        &json!({"venue_kind": "driving_centre", "venue": "Trung tâm sát hạch lái xe Hà Nội", "subject": "Lái xe B2",
                "shift": "Ca 1 (7:30)", "starts_ms": now_ms + 3_600_000, "live_capture_required": true}),
    );
    let session_id = session["id"].as_str().unwrap().to_string();
    call(
        &hub,
        "POST",
        &format!("/api/exams/sessions/{session_id}/candidates"),
        sup,
        &json!({"candidates": [{"cccd": SHOWN, "candidate_no": "B2-0001"},
                               {"cccd": OTHER, "candidate_no": "B2-0002"}]}),
    );
    call(
        &hub,
        "POST",
        &format!("/api/exams/sessions/{session_id}/staff"),
        sup,
        &json!({"username": "gv1"}),
    );

    let out = screenshot_dir("ui-phone");
    let plan = json!({
        "hub": format!("http://{}", hub.http),
        "out": out,
        "camera": video,
        "users": {"bus": ["bus1", "password bus1"], "exam": ["gv1", "password gv1"],
                  "police": ["police1", "password police1"]},
        "lodging": {"qr": SHOWN_QR, "guest_name": "Nguyễn Văn An",
                    "passport": {"number": "K7654321", "nationality": "KOR", "full_name": "Lee Ji-eun",
                                 "date_of_birth": "1993-05-16", "gender": "female"}},
        "exam": {"session_id": session_id, "shown_no": "B2-0001", "other_no": "B2-0002"},
    });
    let plan_path = dir.path().join("phone-plan.json");
    std::fs::write(&plan_path, serde_json::to_string_pretty(&plan).unwrap()).unwrap();
    eprintln!("web_ui phone: screenshots in {}", out.display());
    let started = Instant::now();
    let node = Command::new("node")
        .arg(web.join("phone.mjs"))
        .arg(&plan_path)
        .current_dir(&web)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start node");
    // The driver has its own timeouts; this only stops a hung browser from holding the suite.
    let done = Arc::new(AtomicBool::new(false));
    {
        let (pid, done) = (node.id(), done.clone());
        std::thread::spawn(move || {
            while started.elapsed() < PHONE_LIMIT {
                if done.load(Ordering::Relaxed) {
                    return;
                }
                std::thread::sleep(Duration::from_secs(1));
            }
            if !done.load(Ordering::Relaxed) {
                let _ = Command::new("kill").arg(pid.to_string()).status();
            }
        });
    }
    let output = node.wait_with_output().expect("node");
    done.store(true, Ordering::Relaxed);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stdout.lines().any(|l| l.starts_with("ALL STEPS PASSED")),
        "the phone browser test failed ({}); screenshots in {}\nstdout:\n{stdout}\nstderr:\n{stderr}\nhub log (tail):\n{}",
        output.status,
        out.display(),
        tail(&hub.log_text(), 60)
    );
    eprintln!("{stdout}");

    // The session takes photos only from the camera: a check-in that does not say so is refused.
    let (st, body) = hub.request(
        "POST",
        &format!("/api/exams/sessions/{session_id}/checkin"),
        Some(&tokens[2]),
        Some(
            &json!({"cccd": SHOWN, "photo_jpeg_b64": lfw("Zico", 3), "capture": "upload"})
                .to_string(),
        ),
    );
    assert_eq!(st, 422, "{body}");
    assert!(body.contains("live_capture_required"), "{body}");

    // What the hub holds: one stay per guest, each once, the queued one at the time the phone recorded it.
    let (_, list) = hub.get(
        &format!("/api/lodging/establishments/{est_id}/guests"),
        Some(bus),
    );
    let guests: Value = serde_json::from_str(&list).unwrap();
    let guests = guests.as_array().unwrap();
    let count = |f: &dyn Fn(&Value) -> bool| guests.iter().filter(|g| f(g)).count();
    assert_eq!(
        count(&|g| g["cccd"] == SHOWN),
        1,
        "the scanned card, once: {list}"
    );
    assert_eq!(
        count(&|g| g["passport_number"] == "K7654321"),
        1,
        "the queued passenger, once: {list}"
    );
    let report: Value = stdout
        .lines()
        .find_map(|l| l.strip_prefix("REPORT "))
        .and_then(|r| serde_json::from_str(r).ok())
        .expect("the driver's REPORT line");
    let lee = guests
        .iter()
        .find(|g| g["passport_number"] == "K7654321")
        .unwrap();
    let recorded = report["queued_at_ms"].as_i64().unwrap();
    let online = report["online_at_ms"].as_i64().unwrap();
    let at = lee["checkin_ms"].as_i64().unwrap();
    assert!(
        (recorded - 5_000..=online).contains(&at),
        "checked in at {at}, recorded offline at {recorded}, sent after {online}"
    );
}
