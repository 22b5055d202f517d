//! `models/fetch.py`: copies weights from the asset folders, refuses a file whose sha256 is wrong, and is
//! idempotent.

use std::process::Command;

use checkpoint_e2e::shared_dir;

fn fetch(assets: &std::path::Path, dest: &std::path::Path) -> std::process::Output {
    Command::new("python3")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/../models/fetch.py"))
        .args(["yunet"])
        // The tampered folder first, then the real assets wherever this checkout finds them.
        .env(
            "CHECKPOINT_ASSETS",
            std::env::join_paths([assets.to_path_buf(), shared_dir()]).expect("asset path list"),
        )
        .env("CHECKPOINT_MODELS_DIR", dest)
        .output()
        .expect("python3")
}

#[test]
fn fetch_skips_a_corrupt_copy_takes_a_good_one_and_is_idempotent() {
    let assets = tempfile::tempdir().unwrap();
    let dest = tempfile::tempdir().unwrap();
    std::fs::write(
        assets.path().join("face_detection_yunet_2026may.onnx"),
        b"tampered",
    )
    .unwrap();
    let out = fetch(assets.path(), dest.path());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("expected") && stderr.contains("skipped"),
        "the corrupt copy is reported: {stderr}"
    );
    let got = std::fs::read(dest.path().join("face_detection_yunet_2026may.onnx")).unwrap();
    let good =
        std::fs::read(shared_dir().join("models/face_detection_yunet_2026may.onnx")).unwrap();
    assert_eq!(
        got, good,
        "the verified file from ../shared was taken instead"
    );
    let again = fetch(assets.path(), dest.path());
    assert!(
        String::from_utf8_lossy(&again.stdout).contains("ok"),
        "second run leaves the file alone"
    );
}
