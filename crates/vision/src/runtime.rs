//! Finding and starting ONNX Runtime, and choosing where models run.
//!
//! `ort` is built with `load-dynamic`: the binary carries no ONNX Runtime and loads `libonnxruntime.so` at start.
//! That keeps one build for CPU-only and GPU sites (the `onnxruntime-gpu` wheel's library carries the CUDA and
//! TensorRT providers) and lets the set-up script install the library from the PyPI wheel without root.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use ort::ep::{self, ExecutionProvider as _};
use ort::session::builder::GraphOptimizationLevel;
use ort::session::Session;

use crate::graph_edit::{vectorise_prelu, GraphEdit};
use crate::VisionError;

/// Where inference runs. `Auto` picks TensorRT, then CUDA, then CPU, by what the loaded library offers and what
/// actually registers, and logs the choice.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    #[default]
    Cpu,
    Cuda,
    Tensorrt,
    Auto,
}

impl std::str::FromStr for Provider {
    type Err = VisionError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "cpu" => Ok(Self::Cpu),
            "cuda" => Ok(Self::Cuda),
            "tensorrt" | "trt" => Ok(Self::Tensorrt),
            "auto" => Ok(Self::Auto),
            other => Err(VisionError::Config(format!(
                "unknown execution provider '{other}': expected cpu, cuda, tensorrt or auto"
            ))),
        }
    }
}

/// How sessions are created.
#[derive(Clone, Debug, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RuntimeOptions {
    /// Execution provider to use for every model.
    pub provider: Provider,
    /// Explicit path to `libonnxruntime.so*`; otherwise found by [`find_library`].
    pub library: Option<PathBuf>,
    /// Threads per session on CPU (0 = ONNX Runtime's default, one per core).
    pub intra_threads: usize,
    /// GPU index for CUDA and TensorRT.
    pub device_id: i32,
    /// Folder where TensorRT keeps built engines, so a restart does not rebuild them (minutes per model).
    pub tensorrt_cache: Option<PathBuf>,
    /// Let TensorRT use FP16 kernels.
    pub tensorrt_fp16: bool,
    /// Let ONNX Runtime's CPU threads spin while waiting for work (its own default). Off here: the spinning
    /// threads take the cores that decode video and run the other cameras' sessions. On one 720p stream on 2
    /// cores the whole pipeline ran at 43 fps with spinning and 59 fps without (`checkpoint-bench pipeline`,
    /// issue 14). Worth turning on only when the sessions have the cores to themselves.
    pub spin_wait: bool,
}

impl Default for RuntimeOptions {
    fn default() -> Self {
        Self {
            provider: Provider::Cpu,
            library: None,
            intra_threads: 0,
            device_id: 0,
            tensorrt_cache: None,
            tensorrt_fp16: true,
            spin_wait: false,
        }
    }
}

/// The process-wide ONNX Runtime: one environment per process is all ONNX Runtime allows.
pub struct Runtime {
    env: ort::environment::Environment,
    library: PathBuf,
    options: RuntimeOptions,
}

static RUNTIME: OnceLock<Runtime> = OnceLock::new();
static INIT_LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());

const INSTALL_HINT: &str = "install it with `scripts/setup` (puts the PyPI `onnxruntime` wheel in ./.venv), or \
`python3 -m pip install onnxruntime==1.32.0` (`onnxruntime-gpu` for CUDA/TensorRT), or point ORT_DYLIB_PATH at \
libonnxruntime.so.1.*";

/// Looks for `libonnxruntime.so*` in the places a Checkpoint install puts it, in order: `ORT_DYLIB_PATH`, the
/// project's `.venv` (searched upwards from the working directory and from the executable), the `onnxruntime`
/// package of whatever `python3` is on PATH, then the system library folders.
pub fn find_library() -> Result<PathBuf, VisionError> {
    let mut tried = Vec::new();
    if let Some(p) = std::env::var_os("ORT_DYLIB_PATH") {
        let p = PathBuf::from(p);
        if p.is_file() {
            return Ok(p);
        }
        return Err(VisionError::Runtime(format!(
            "ORT_DYLIB_PATH={} does not name a file; {INSTALL_HINT}",
            p.display()
        )));
    }
    let mut roots: Vec<PathBuf> = Vec::new();
    if let Ok(cwd) = std::env::current_dir() {
        roots.extend(cwd.ancestors().map(Path::to_path_buf));
    }
    if let Ok(exe) = std::env::current_exe() {
        roots.extend(exe.ancestors().skip(1).map(Path::to_path_buf));
    }
    for root in roots {
        let lib_dir = root.join(".venv").join("lib");
        tried.push(lib_dir.display().to_string());
        if let Some(found) = scan_site_packages(&lib_dir) {
            return Ok(found);
        }
    }
    if let Some(dir) = python_package_dir() {
        tried.push(dir.display().to_string());
        if let Some(found) = newest_lib_in(&dir.join("capi")) {
            return Ok(found);
        }
    }
    for dir in [
        "/usr/local/lib",
        "/usr/lib",
        "/usr/lib/x86_64-linux-gnu",
        "/usr/lib/aarch64-linux-gnu",
    ] {
        tried.push(dir.to_string());
        if let Some(found) = newest_lib_in(Path::new(dir)) {
            return Ok(found);
        }
    }
    Err(VisionError::Runtime(format!(
        "ONNX Runtime library (libonnxruntime.so) not found (looked in {}); {INSTALL_HINT}",
        tried.join(", ")
    )))
}

fn scan_site_packages(lib_dir: &Path) -> Option<PathBuf> {
    let entries = std::fs::read_dir(lib_dir).ok()?;
    for e in entries.flatten() {
        if e.file_name().to_string_lossy().starts_with("python3") {
            let capi = e
                .path()
                .join("site-packages")
                .join("onnxruntime")
                .join("capi");
            if let Some(found) = newest_lib_in(&capi) {
                return Some(found);
            }
        }
    }
    None
}

fn newest_lib_in(dir: &Path) -> Option<PathBuf> {
    let mut libs: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n == "libonnxruntime.so" || n.starts_with("libonnxruntime.so."))
        })
        .collect();
    libs.sort();
    libs.pop()
}

fn python_package_dir() -> Option<PathBuf> {
    let out = std::process::Command::new("python3")
        .args([
            "-c",
            "import onnxruntime, os; print(os.path.dirname(onnxruntime.__file__))",
        ])
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let s = String::from_utf8(out.stdout).ok()?;
    let p = PathBuf::from(s.trim());
    p.is_dir().then_some(p)
}

impl Runtime {
    /// Loads ONNX Runtime once for the process. Later calls return the same runtime; their options must agree
    /// with the first call's provider, since sessions of one process share one environment.
    pub fn init(options: RuntimeOptions) -> Result<&'static Runtime, VisionError> {
        if let Some(rt) = RUNTIME.get() {
            return Ok(rt);
        }
        let _guard = INIT_LOCK
            .lock()
            .map_err(|_| VisionError::Runtime("runtime init lock poisoned".into()))?;
        if let Some(rt) = RUNTIME.get() {
            return Ok(rt);
        }
        let library = match &options.library {
            Some(p) if p.is_file() => p.clone(),
            Some(p) => {
                return Err(VisionError::Runtime(format!(
                    "onnxruntime library {} does not exist; {INSTALL_HINT}",
                    p.display()
                )))
            }
            None => find_library()?,
        };
        let builder = ort::init_from(&library).map_err(|e| {
            VisionError::Runtime(format!(
                "cannot load ONNX Runtime from {}: {e}; {INSTALL_HINT}",
                library.display()
            ))
        })?;
        let env = builder
            .with_name("checkpoint")
            .with_telemetry(false)
            .build()
            .map_err(|e| VisionError::Runtime(format!("cannot start ONNX Runtime: {e}")))?;
        tracing::info!(library = %library.display(), provider = ?options.provider, "ONNX Runtime loaded");
        let _ = RUNTIME.set(Runtime {
            env,
            library,
            options,
        });
        RUNTIME
            .get()
            .ok_or_else(|| VisionError::Runtime("runtime vanished after init".into()))
    }

    /// The runtime if already started, else starts it with default options (CPU).
    pub fn get_or_default() -> Result<&'static Runtime, VisionError> {
        Self::init(RuntimeOptions::default())
    }

    pub fn library(&self) -> &Path {
        &self.library
    }

    pub fn options(&self) -> &RuntimeOptions {
        &self.options
    }

    /// Execution providers this ONNX Runtime build offers (names as ONNX Runtime spells them).
    pub fn available_providers(&self) -> Vec<&'static str> {
        let mut v = vec!["CPUExecutionProvider"];
        if ep::CUDA::is_available().unwrap_or(false) {
            v.push("CUDAExecutionProvider");
        }
        if ep::TensorRT::is_available().unwrap_or(false) {
            v.push("TensorrtExecutionProvider");
        }
        v
    }

    /// Creates a session for `model` with the configured provider. Returns the session and the provider it
    /// actually runs on. `config` holds extra session config entries (e.g. `session.disable_quant_qdq`).
    pub fn session(
        &self,
        model: &Path,
        config: &[(&str, &str)],
    ) -> Result<(Session, Provider), VisionError> {
        self.session_on(model, config, self.options.provider, GraphEdit::ForCpu)
    }

    /// As [`Runtime::session`], on a provider other than the configured one or with the graph as stored
    /// (benchmarks, diagnostics, equality tests).
    pub fn session_on(
        &self,
        model: &Path,
        config: &[(&str, &str)],
        want: Provider,
        edit: GraphEdit,
    ) -> Result<(Session, Provider), VisionError> {
        let order: &[Provider] = match want {
            Provider::Auto => &[Provider::Tensorrt, Provider::Cuda, Provider::Cpu],
            Provider::Tensorrt => &[Provider::Tensorrt],
            Provider::Cuda => &[Provider::Cuda],
            Provider::Cpu => &[Provider::Cpu],
        };
        let mut last_err = String::new();
        for &p in order {
            if want == Provider::Auto && !self.offers(p) {
                continue;
            }
            match self.try_session(model, config, p, edit) {
                Ok(s) => {
                    if want == Provider::Auto {
                        tracing::info!(model = %model.display(), provider = ?p, "execution provider chosen automatically");
                    }
                    return Ok((s, p));
                }
                Err(e) if want == Provider::Auto => {
                    tracing::warn!(model = %model.display(), provider = ?p, error = %e, "provider failed, trying the next");
                    last_err = e.to_string();
                }
                Err(e) => return Err(e),
            }
        }
        Err(VisionError::Runtime(format!(
            "no execution provider could run {}: {last_err}",
            model.display()
        )))
    }

    fn offers(&self, p: Provider) -> bool {
        match p {
            Provider::Cpu | Provider::Auto => true,
            Provider::Cuda => ep::CUDA::is_available().unwrap_or(false),
            Provider::Tensorrt => ep::TensorRT::is_available().unwrap_or(false),
        }
    }

    fn try_session(
        &self,
        model: &Path,
        config: &[(&str, &str)],
        p: Provider,
        edit: GraphEdit,
    ) -> Result<Session, VisionError> {
        let err = |e: ort::Error| VisionError::Runtime(format!("{}: {e}", model.display()));
        let mut b = Session::builder(&self.env)
            .map_err(err)?
            .with_optimization_level(GraphOptimizationLevel::Level3)
            .map_err(|e| err(e.into()))?;
        if self.options.intra_threads > 0 {
            b = b
                .with_intra_threads(self.options.intra_threads)
                .map_err(|e| err(e.into()))?;
        }
        if !self.options.spin_wait {
            b = b
                .with_config_entry("session.intra_op.allow_spinning", "0")
                .map_err(|e| err(e.into()))?;
        }
        for (k, v) in config {
            b = b.with_config_entry(k, v).map_err(|e| err(e.into()))?;
        }
        let cuda = || {
            ep::CUDA::default()
                .with_device_id(self.options.device_id)
                .build()
                .error_on_failure()
        };
        let providers = match p {
            Provider::Cpu | Provider::Auto => vec![],
            Provider::Cuda => {
                if !self.offers(Provider::Cuda) {
                    return Err(VisionError::Runtime(format!(
                        "the ONNX Runtime at {} has no CUDA provider: install the `onnxruntime-gpu` wheel",
                        self.library.display()
                    )));
                }
                vec![cuda()]
            }
            Provider::Tensorrt => {
                if !self.offers(Provider::Tensorrt) {
                    return Err(VisionError::Runtime(format!(
                        "the ONNX Runtime at {} has no TensorRT provider: install the `onnxruntime-gpu` wheel and TensorRT",
                        self.library.display()
                    )));
                }
                let mut trt = ep::TensorRT::default()
                    .with_device_id(self.options.device_id)
                    .with_fp16(self.options.tensorrt_fp16);
                if let Some(dir) = &self.options.tensorrt_cache {
                    trt = trt
                        .with_engine_cache(true)
                        .with_engine_cache_path(dir.display().to_string());
                }
                // CUDA after TensorRT takes the nodes TensorRT cannot build.
                vec![trt.build().error_on_failure(), cuda()]
            }
        };
        if !providers.is_empty() {
            b = b
                .with_execution_providers(providers)
                .map_err(|e| err(e.into()))?;
        }
        if p == Provider::Cpu && edit == GraphEdit::ForCpu {
            if let Some(bytes) = edited_for_cpu(model)? {
                return b.commit_from_memory(&bytes).map_err(err);
            }
        }
        b.commit_from_file(model).map_err(err)
    }
}

/// The model's graph with [`crate::graph_edit`]'s CPU rewrites, or `None` when none applies.
fn edited_for_cpu(model: &Path) -> Result<Option<Vec<u8>>, VisionError> {
    let bytes = std::fs::read(model)
        .map_err(|e| VisionError::Model(format!("{}: cannot read: {e}", model.display())))?;
    let edited = vectorise_prelu(&bytes)
        .map_err(|e| VisionError::Model(format!("{}: {e}", model.display())))?;
    Ok(edited.map(|(bytes, n)| {
        tracing::debug!(model = %model.display(), nodes = n, "PRelu written as vectorised Relu/Sub/Mul/Add");
        bytes
    }))
}

/// Name and shape (-1 or 0 for dynamic dimensions) of a session's first input.
pub(crate) fn first_input(
    session: &Session,
    model: &Path,
) -> Result<(String, Vec<i64>), VisionError> {
    let input = session
        .inputs()
        .first()
        .ok_or_else(|| VisionError::Model(format!("{}: model has no input", model.display())))?;
    let shape = input
        .dtype()
        .tensor_shape()
        .map(|s| s.iter().copied().collect())
        .unwrap_or_default();
    Ok((input.name().to_string(), shape))
}

/// Runs a single-input model.
pub(crate) fn run_single<'s>(
    session: &'s mut Session,
    input_name: &str,
    input: &ndarray::Array4<f32>,
) -> Result<ort::session::SessionOutputs<'s>, VisionError> {
    let tensor = ort::value::TensorRef::from_array_view(input)
        .map_err(|e| VisionError::Inference(e.to_string()))?;
    session
        .run(ort::inputs![input_name => tensor])
        .map_err(|e| VisionError::Inference(e.to_string()))
}
