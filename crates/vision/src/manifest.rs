//! The model manifest (`models/manifest.toml`), embedded so the binary checks what it loads without the repo.

use std::io::Read;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::VisionError;

const MANIFEST: &str = include_str!("../../../models/manifest.toml");

#[derive(Clone, Debug, serde::Deserialize)]
pub struct ModelEntry {
    pub name: String,
    pub file: String,
    pub sha256: String,
    pub licence: String,
    pub role: String,
    pub source: String,
    #[serde(default)]
    pub url: String,
    pub input: String,
    pub output: String,
    /// Embedding models: width of the embedding.
    #[serde(default)]
    pub embedding_dim: Option<usize>,
    /// Embedding models: the measured score curves that turn a list policy into a threshold.
    #[serde(default)]
    pub calibration: Option<checkpoint_openset::Calibration>,
}

#[derive(serde::Deserialize)]
struct Manifest {
    model: Vec<ModelEntry>,
}

/// All models the product knows.
pub fn entries() -> Vec<ModelEntry> {
    // The manifest is compiled in and covered by a test, so a parse failure is a build defect, not input.
    toml::from_str::<Manifest>(MANIFEST)
        .map(|m| m.model)
        .unwrap_or_default()
}

/// The face embedder's (`sface`) score calibration, parsed and validated once; `None` when the manifest has
/// none or it is invalid (then lists match at their floor thresholds only).
pub fn embedder_calibration() -> Option<&'static checkpoint_openset::Calibration> {
    static CAL: std::sync::OnceLock<Option<checkpoint_openset::Calibration>> =
        std::sync::OnceLock::new();
    CAL.get_or_init(|| {
        entry("sface")
            .and_then(|m| m.calibration)
            .filter(|c| c.validate().is_ok())
    })
    .as_ref()
}

pub fn entry(name: &str) -> Option<ModelEntry> {
    entries().into_iter().find(|m| m.name == name)
}

/// Where the weights live: `$CHECKPOINT_MODELS_DIR`, else `models/weights` found upwards from the working
/// directory or the executable (the layout `models/fetch.py` writes).
pub fn default_dir() -> PathBuf {
    if let Some(p) = std::env::var_os("CHECKPOINT_MODELS_DIR") {
        return PathBuf::from(p);
    }
    let mut roots: Vec<PathBuf> = Vec::new();
    if let Ok(cwd) = std::env::current_dir() {
        roots.extend(cwd.ancestors().map(Path::to_path_buf));
    }
    if let Ok(exe) = std::env::current_exe() {
        roots.extend(exe.ancestors().skip(1).map(Path::to_path_buf));
    }
    roots
        .into_iter()
        .map(|r| r.join("models").join("weights"))
        .find(|p| p.is_dir())
        .unwrap_or_else(|| PathBuf::from("models/weights"))
}

pub fn sha256_file(path: &Path) -> std::io::Result<String> {
    let mut f = std::fs::File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex::encode(h.finalize()))
}

/// Resolves a model: `path` if given (checked against the manifest when its file name is listed there), else
/// the manifest's file for `name` in `dir`. A missing file or a hash mismatch is an error that says how to fetch.
pub fn resolve(name: &str, path: Option<&Path>, dir: &Path) -> Result<PathBuf, VisionError> {
    let entry = entry(name);
    let path = match (path, &entry) {
        (Some(p), _) => p.to_path_buf(),
        (None, Some(e)) => dir.join(&e.file),
        (None, None) => {
            return Err(VisionError::Model(format!(
                "model '{name}' is not in the manifest"
            )))
        }
    };
    if !path.is_file() {
        return Err(VisionError::Model(format!(
            "model file {} not found: run `python3 models/fetch.py` (or scripts/setup)",
            path.display()
        )));
    }
    let listed = entries()
        .into_iter()
        .find(|e| path.file_name().is_some_and(|n| n == e.file.as_str()));
    if let Some(e) = listed {
        let got = sha256_file(&path)
            .map_err(|err| VisionError::Model(format!("{}: {err}", path.display())))?;
        if got != e.sha256 {
            return Err(VisionError::Model(format!(
                "model file {} has sha256 {got}, the manifest expects {}: fetch it again with `python3 models/fetch.py`",
                path.display(),
                e.sha256
            )));
        }
    } else {
        tracing::warn!(path = %path.display(), "model file is not in the manifest: its integrity is not checked");
    }
    Ok(path)
}

#[cfg(test)]
mod tests {
    #[test]
    fn manifest_lists_the_three_product_models() {
        let names: Vec<String> = super::entries().into_iter().map(|e| e.name).collect();
        for n in ["yunet", "sface", "nanodet"] {
            assert!(
                names.iter().any(|x| x == n),
                "{n} missing from manifest: {names:?}"
            );
        }
        for e in super::entries() {
            assert_eq!(e.sha256.len(), 64, "{}", e.name);
        }
    }

    #[test]
    fn the_embedding_model_carries_a_valid_calibration_of_its_own_width() {
        let sface = super::entry("sface").expect("sface");
        assert_eq!(sface.embedding_dim, Some(crate::EMBEDDING_DIM));
        let cal = sface.calibration.expect("sface calibration");
        cal.validate().expect("valid curve");
        assert!(cal.score.contains("flip-fused"), "{}", cal.score);
        // The curve must be no looser than the per-comparison points the agent's calibration test measures.
        assert!(cal.fmr(0.43) < 1e-4 && cal.fmr(0.37) < 1e-3);
    }

    #[test]
    fn a_swapped_or_missing_model_file_is_refused_with_a_fix() {
        let dir = tempfile::tempdir().unwrap();
        let err = super::resolve("yunet", None, dir.path())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("not found") && err.contains("fetch.py"),
            "{err}"
        );
        std::fs::write(
            dir.path().join("face_detection_yunet_2026may.onnx"),
            b"not a model",
        )
        .unwrap();
        let err = super::resolve("yunet", None, dir.path())
            .unwrap_err()
            .to_string();
        assert!(err.contains("sha256") && err.contains("fetch.py"), "{err}");
        assert!(super::resolve("no-such-model", None, dir.path()).is_err());
    }
}
