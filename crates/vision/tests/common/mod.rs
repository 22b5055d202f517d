#![allow(dead_code)] // each test binary uses a different subset of these helpers
use std::path::PathBuf;

/// The read-only assets beside the repository: `$CHECKPOINT_ASSETS`, else `../shared`.
pub fn shared_dir() -> PathBuf {
    if let Some(p) = std::env::var_os("CHECKPOINT_ASSETS") {
        return PathBuf::from(p);
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared")
}

pub fn runtime() -> &'static checkpoint_vision::Runtime {
    checkpoint_vision::Runtime::get_or_default().expect("ONNX Runtime (run scripts/setup)")
}

pub fn model(name: &str) -> PathBuf {
    let dir = checkpoint_vision::manifest::default_dir();
    checkpoint_vision::manifest::resolve(name, None, &dir)
        .expect("model present (run scripts/setup)")
}
