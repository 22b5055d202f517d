//! Vector index for face watchlists, over faiss 1.7.3 (Debian's static `libfaiss.a`) through a
//! narrow C++ shim (`shim/faiss_shim.cpp`) compiled by `build.rs`.
//!
//! - **Metric.** Inner product. Vectors are expected **L2-normalised by the caller** (see
//!   [`l2_normalize`]); the inner product of unit vectors is their cosine similarity, so every
//!   score returned is a cosine in [-1, 1], higher is closer.
//! - **Ids.** Caller-chosen non-negative `i64`, unique within an index.
//! - **Kinds.** [`IndexKind::Flat`] (exact), [`IndexKind::Hnsw`] (graph, approximate),
//!   [`IndexKind::Ivf`] (inverted lists over k-means cells, approximate; needs training, which
//!   [`VectorIndex::build`] does). [`IndexKind::for_size`] picks one from the collection size.
//! - **Removal.** Works for every kind. Flat and IVF remove for real (faiss `remove_ids`). faiss
//!   cannot remove from an HNSW graph, so HNSW removals are *tombstones*: the id disappears from
//!   every search at once (faiss 1.7.3's `IDSelector` search filter; the graph keeps routing
//!   through the removed node, so recall does not collapse), and the graph is rebuilt from the
//!   kept vectors when tombstones exceed [`COMPACT_FRACTION`] of the stored vectors, or when
//!   [`VectorIndex::compact`] is called. Tombstones are saved with the index.
//! - **Threads.** [`VectorIndex`] is `Send + Sync`; [`VectorIndex::search`] takes `&self`
//!   (faiss search is `const` and thread-safe), every mutation takes `&mut self`. faiss
//!   parallelises over queries with OpenMP; a single-query search runs in the calling thread
//!   without an OpenMP team (a team gains nothing there and, on a loaded 2-core box, waiting
//!   for a descheduled worker made single HNSW queries 3-12x slower). Builds and batches use all cores
//!   (`OMP_NUM_THREADS` caps them).
//! - **Files.** [`VectorIndex::save`] writes a temporary file beside the target, fsyncs it and
//!   renames it over the target (then fsyncs the directory): a crash leaves the old file or the
//!   new one, never half of one. Only load files you wrote: faiss's reader is not hardened
//!   against hostile input.

mod ffi;

use std::ffi::{CStr, CString};
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::path::{Path, PathBuf};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, Ordering};

/// HNSW tombstones trigger a rebuild in [`VectorIndex::remove`] once they exceed this fraction
/// of the stored vectors (live + tombstoned).
pub const COMPACT_FRACTION: f64 = 0.2;

/// [`VectorIndex::build`] trains IVF k-means on at most this many vectors per list (a
/// deterministic sample when the data is larger). faiss wants at least 39 per list.
pub const IVF_TRAIN_POINTS_PER_LIST: usize = 50;

/// Errors of this crate. Nothing here panics on bad input: it returns one of these.
#[derive(Debug, thiserror::Error)]
pub enum FaissError {
    /// A vector slice is not a whole number of `dim`-float vectors (or a single query is not
    /// exactly `dim` floats).
    #[error("dimension mismatch: {len} floats is not a whole number of {dim}-d vectors")]
    DimensionMismatch { dim: usize, len: usize },
    /// Number of ids and number of vectors differ.
    #[error("{ids} ids for {vectors} vectors")]
    CountMismatch { ids: usize, vectors: usize },
    /// A vector holds NaN or an infinity (`index` counts vectors, not floats).
    #[error("vector {index} contains NaN or infinity")]
    NonFinite { index: usize },
    /// The id is already in the index, or repeated within the batch. Nothing was added.
    #[error("id {0} is already in the index or repeated in the batch")]
    DuplicateId(i64),
    /// Ids must be non-negative (faiss uses -1 for "no result").
    #[error("invalid id {0}: ids must be non-negative")]
    InvalidId(i64),
    /// A parameter is out of range (k = 0, M < 2, dim = 0, too few IVF training vectors, ...).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// An IVF index was used before training.
    #[error("the IVF index is not trained")]
    NotTrained,
    #[error("I/O error on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The file is not an index written by [`VectorIndex::save`], or it is damaged.
    #[error("{path} is not a valid checkpoint-faiss index: {message}")]
    Format { path: PathBuf, message: String },
    /// faiss itself failed (an exception caught in the shim), or memory ran out.
    #[error("faiss: {0}")]
    Faiss(String),
}

pub type Result<T, E = FaissError> = std::result::Result<T, E>;

/// Which faiss index structure to use. All use inner product.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IndexKind {
    /// Exact brute force (`IndexFlatIP`).
    Flat,
    /// `IndexHNSWFlat`: `m` links per node (2m on the base layer), build beam `ef_construction`,
    /// search beam `ef_search` (raised to k when k is larger).
    Hnsw {
        m: usize,
        ef_construction: usize,
        ef_search: usize,
    },
    /// `IndexIVFFlat`: `nlist` k-means cells, `nprobe` of them scanned per query.
    Ivf { nlist: usize, nprobe: usize },
}

impl IndexKind {
    /// Up to this many vectors [`for_size`](Self::for_size) picks exact search. A watchlist must not
    /// miss a listed person because the index guessed: `checkpoint-bench faiss` plants a mate at
    /// cosine 0.45 (about the wanted threshold) for each query and counts how often it is among the
    /// 5 proposals the matcher re-scores. On this 2-core box, 128-d: exact finds every mate and
    /// costs 0.47 ms at 10k, 4.6 ms at 100k and 47 ms at 1M per query (12 ms per query batched);
    /// IVF4000 on 1M found 48% of the mates at nprobe 250 and 88% at nprobe 1000; HNSW32 at 100k
    /// needed efSearch 1024 to reach 0.99 recall@10 and was then slower than exact search
    /// (`benches/RESULTS.md`). A track costs one query per face update, so exact search stays
    /// affordable up to a million templates (45-131 ms per query at 1M on 2-core boxes).
    pub const FLAT_MAX: usize = 1_000_000;

    /// The kind for a collection of `n` vectors: [`Flat`](Self::Flat) up to
    /// [`FLAT_MAX`](Self::FLAT_MAX), then IVF with `nlist = 4 * sqrt(n)` and a quarter of the lists
    /// probed (the setting that found 88% of planted mates at 1M; real embeddings, which cluster by
    /// identity, fare better than the benchmark's random vectors). HNSW stays available for callers
    /// that choose it.
    pub fn for_size(n: usize) -> IndexKind {
        if n <= Self::FLAT_MAX {
            IndexKind::Flat
        } else {
            let nlist = ((4.0 * (n as f64).sqrt()).round() as usize).clamp(1, n);
            IndexKind::Ivf {
                nlist,
                nprobe: (nlist / 4).max(1),
            }
        }
    }

    /// Whether results are exact.
    pub fn is_exact(&self) -> bool {
        matches!(self, IndexKind::Flat)
    }

    fn validate(&self) -> Result<()> {
        let in_i32 = |v: usize, what: &str, min: usize| {
            if v < min || v > i32::MAX as usize {
                Err(FaissError::InvalidArgument(format!(
                    "{what} must be in {min}..={}, got {v}",
                    i32::MAX
                )))
            } else {
                Ok(())
            }
        };
        match *self {
            IndexKind::Flat => Ok(()),
            IndexKind::Hnsw {
                m,
                ef_construction,
                ef_search,
            } => {
                // Beyond a few thousand links per node faiss would only waste memory.
                in_i32(m, "HNSW M", 2)?;
                if m > 4096 {
                    return Err(FaissError::InvalidArgument(format!(
                        "HNSW M must be at most 4096, got {m}"
                    )));
                }
                in_i32(ef_construction, "HNSW efConstruction", 1)?;
                in_i32(ef_search, "HNSW efSearch", 1)
            }
            IndexKind::Ivf { nlist, nprobe } => {
                in_i32(nlist, "IVF nlist", 1)?;
                in_i32(nprobe, "IVF nprobe", 1)
            }
        }
    }
}

impl fmt::Display for IndexKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IndexKind::Flat => write!(f, "Flat"),
            IndexKind::Hnsw {
                m,
                ef_construction,
                ef_search,
            } => write!(f, "HNSW{m} (efC {ef_construction}, efS {ef_search})"),
            IndexKind::Ivf { nlist, nprobe } => write!(f, "IVF{nlist} (nprobe {nprobe})"),
        }
    }
}

/// Scales `v` to unit L2 norm in place (leaves an all-zero vector alone). Returns the old norm.
pub fn l2_normalize(v: &mut [f32]) -> f32 {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 && norm.is_finite() {
        v.iter_mut().for_each(|x| *x /= norm);
    }
    norm
}

/// One search hit: the caller's id and the inner product (cosine for unit vectors).
pub type Hit = (i64, f32);

/// A faiss index (inner product) keyed by caller ids. See the crate docs.
pub struct VectorIndex {
    raw: NonNull<ffi::CkfIndex>,
    dim: usize,
    kind: IndexKind,
    live: usize,
    tombstones: usize,
    trained: bool,
}

// SAFETY: the shim handle owns its faiss objects and has no thread affinity (Send). Every
// method taking `&self` calls only const faiss operations (search, reads of the index
// parameters, write_index), which faiss documents as thread-safe; all mutation goes through
// `&mut self`, so Rust's borrow rules exclude it from running concurrently with anything else.
unsafe impl Send for VectorIndex {}
unsafe impl Sync for VectorIndex {}

impl Drop for VectorIndex {
    fn drop(&mut self) {
        // SAFETY: raw came from ckf_new_*/ckf_read and is freed exactly once here.
        unsafe { ffi::ckf_free(self.raw.as_ptr()) }
    }
}

impl fmt::Debug for VectorIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VectorIndex")
            .field("dim", &self.dim)
            .field("kind", &self.kind)
            .field("len", &self.live)
            .field("tombstones", &self.tombstones)
            .finish()
    }
}

fn last_error() -> String {
    // SAFETY: ckf_last_error never returns NULL; the string is thread-local and stays valid
    // until the next shim call on this thread, and we copy it right away.
    unsafe { CStr::from_ptr(ffi::ckf_last_error()) }
        .to_string_lossy()
        .into_owned()
}

fn check(code: std::os::raw::c_int) -> Result<()> {
    match code {
        ffi::CKF_OK => Ok(()),
        ffi::CKF_ERR_INVALID => Err(FaissError::InvalidArgument(last_error())),
        ffi::CKF_ERR_NOT_TRAINED => Err(FaissError::NotTrained),
        ffi::CKF_ERR_NOMEM => Err(FaissError::Faiss("out of memory".into())),
        ffi::CKF_ERR_FAISS
        | ffi::CKF_ERR_IO
        | ffi::CKF_ERR_FORMAT
        | ffi::CKF_ERR_DUPLICATE
        | ffi::CKF_ERR_UNKNOWN => Err(FaissError::Faiss(last_error())),
        other => Err(FaissError::Faiss(format!(
            "unexpected shim status {other}: {}",
            last_error()
        ))),
    }
}

/// Checks a flat slice of vectors; returns the number of vectors.
fn check_vectors(dim: usize, data: &[f32]) -> Result<usize> {
    if !data.len().is_multiple_of(dim) {
        return Err(FaissError::DimensionMismatch {
            dim,
            len: data.len(),
        });
    }
    if let Some(pos) = data.iter().position(|x| !x.is_finite()) {
        return Err(FaissError::NonFinite { index: pos / dim });
    }
    Ok(data.len() / dim)
}

fn check_ids(ids: &[i64], vectors: usize) -> Result<()> {
    if ids.len() != vectors {
        return Err(FaissError::CountMismatch {
            ids: ids.len(),
            vectors,
        });
    }
    if let Some(&bad) = ids.iter().find(|&&id| id < 0) {
        return Err(FaissError::InvalidId(bad));
    }
    Ok(())
}

fn path_cstring(path: &Path) -> Result<CString> {
    #[cfg(unix)]
    let bytes = {
        use std::os::unix::ffi::OsStrExt;
        path.as_os_str().as_bytes().to_vec()
    };
    #[cfg(not(unix))]
    let bytes = path
        .to_str()
        .ok_or_else(|| FaissError::InvalidArgument(format!("non-UTF-8 path {}", path.display())))?
        .as_bytes()
        .to_vec();
    CString::new(bytes).map_err(|_| {
        FaissError::InvalidArgument(format!("path contains a NUL byte: {}", path.display()))
    })
}

/// splitmix64, for the deterministic IVF training sample.
fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl VectorIndex {
    /// An empty index. Flat and HNSW accept vectors at once; IVF needs [`train`](Self::train)
    /// first ([`build`](Self::build) does both).
    pub fn new(dim: usize, kind: IndexKind) -> Result<Self> {
        if dim == 0 || dim > i32::MAX as usize {
            return Err(FaissError::InvalidArgument(format!(
                "dimension must be in 1..={}, got {dim}",
                i32::MAX
            )));
        }
        kind.validate()?;
        let d = dim as i32;
        let mut raw: *mut ffi::CkfIndex = std::ptr::null_mut();
        // SAFETY: out-pointer to a local; parameters validated above (the shim re-checks).
        let code = unsafe {
            match kind {
                IndexKind::Flat => ffi::ckf_new_flat(d, &mut raw),
                IndexKind::Hnsw {
                    m,
                    ef_construction,
                    ef_search,
                } => ffi::ckf_new_hnsw(
                    d,
                    m as i32,
                    ef_construction as i32,
                    ef_search as i32,
                    &mut raw,
                ),
                IndexKind::Ivf { nlist, nprobe } => {
                    ffi::ckf_new_ivf(d, nlist as i64, nprobe as i64, &mut raw)
                }
            }
        };
        check(code)?;
        Self::from_raw(raw)
    }

    fn from_raw(raw: *mut ffi::CkfIndex) -> Result<Self> {
        let raw = NonNull::new(raw)
            .ok_or_else(|| FaissError::Faiss("shim returned a null index".into()))?;
        let mut index = VectorIndex {
            raw,
            dim: 0,
            kind: IndexKind::Flat,
            live: 0,
            tombstones: 0,
            trained: false,
        };
        index.refresh()?;
        Ok(index)
    }

    /// Re-reads kind, sizes and counters from the shim (after every mutation).
    fn refresh(&mut self) -> Result<()> {
        let mut info = ffi::CkfInfo::default();
        // SAFETY: valid handle, out-pointer to a local.
        check(unsafe { ffi::ckf_info_get(self.raw.as_ptr(), &mut info) })?;
        self.dim = info.dim.max(0) as usize;
        self.kind = match info.kind {
            ffi::CKF_KIND_FLAT => IndexKind::Flat,
            ffi::CKF_KIND_HNSW => IndexKind::Hnsw {
                m: info.hnsw_m.max(0) as usize,
                ef_construction: info.hnsw_ef_construction.max(0) as usize,
                ef_search: info.hnsw_ef_search.max(0) as usize,
            },
            ffi::CKF_KIND_IVF => IndexKind::Ivf {
                nlist: info.ivf_nlist.max(0) as usize,
                nprobe: info.ivf_nprobe.max(0) as usize,
            },
            other => return Err(FaissError::Faiss(format!("unknown index kind {other}"))),
        };
        self.live = info.live.max(0) as usize;
        self.tombstones = info.tombstones.max(0) as usize;
        self.trained = info.is_trained != 0;
        Ok(())
    }

    /// Builds an index of `kind` holding `vectors` (`ids.len() * dim` floats, row-major) under
    /// `ids`. IVF is trained first, on all vectors or on a deterministic sample of
    /// [`IVF_TRAIN_POINTS_PER_LIST`] per list, and needs at least `nlist` vectors.
    pub fn build(dim: usize, kind: IndexKind, ids: &[i64], vectors: &[f32]) -> Result<Self> {
        let mut index = Self::new(dim, kind)?;
        let n = check_vectors(dim, vectors)?;
        check_ids(ids, n)?;
        let started = std::time::Instant::now();
        if let IndexKind::Ivf { nlist, .. } = kind {
            let cap = nlist.saturating_mul(IVF_TRAIN_POINTS_PER_LIST);
            if n <= cap {
                index.train(vectors)?;
            } else {
                // Partial Fisher-Yates over row numbers, then sorted for sequential copying.
                let mut rows: Vec<usize> = (0..n).collect();
                let mut state = 0x5EED_FA15_u64;
                for i in 0..cap {
                    let j = i + (splitmix64(&mut state) % (n - i) as u64) as usize;
                    rows.swap(i, j);
                }
                rows.truncate(cap);
                rows.sort_unstable();
                let mut sample = Vec::with_capacity(cap * dim);
                for r in rows {
                    sample.extend_from_slice(&vectors[r * dim..(r + 1) * dim]);
                }
                index.train(&sample)?;
            }
        }
        index.add(ids, vectors)?;
        tracing::debug!(%kind, dim, n, elapsed_ms = started.elapsed().as_millis() as u64, "faiss index built");
        Ok(index)
    }

    /// Trains an IVF index (k-means on `vectors`, at least `nlist` of them) before any vector is
    /// added. A no-op for Flat and HNSW.
    pub fn train(&mut self, vectors: &[f32]) -> Result<()> {
        let n = check_vectors(self.dim, vectors)?;
        if !matches!(self.kind, IndexKind::Ivf { .. }) {
            return Ok(());
        }
        // SAFETY: n * dim floats at vectors.as_ptr().
        check(unsafe { ffi::ckf_train(self.raw.as_ptr(), n as i64, vectors.as_ptr()) })?;
        self.refresh()
    }

    /// Adds vectors under new ids. All-or-nothing: on any error nothing was added.
    pub fn add(&mut self, ids: &[i64], vectors: &[f32]) -> Result<()> {
        let n = check_vectors(self.dim, vectors)?;
        check_ids(ids, n)?;
        if n == 0 {
            return Ok(());
        }
        if !self.trained {
            return Err(FaissError::NotTrained);
        }
        let mut dup = -1i64;
        // SAFETY: n ids and n * dim floats; dup is an out-pointer to a local.
        let code = unsafe {
            ffi::ckf_add_with_ids(
                self.raw.as_ptr(),
                n as i64,
                vectors.as_ptr(),
                ids.as_ptr(),
                &mut dup,
            )
        };
        if code == ffi::CKF_ERR_DUPLICATE {
            return Err(FaissError::DuplicateId(dup));
        }
        let result = check(code);
        // Refresh even on error: a faiss failure midway could have changed the counters.
        self.refresh()?;
        result
    }

    /// Removes ids (unknown ids are ignored) and returns how many were present. Effective for
    /// the next search on every kind; HNSW tombstones are compacted past [`COMPACT_FRACTION`].
    pub fn remove(&mut self, ids: &[i64]) -> Result<usize> {
        if ids.is_empty() {
            return Ok(0);
        }
        let mut removed = 0i64;
        // SAFETY: ids.len() ids; removed is an out-pointer to a local.
        let code = unsafe {
            ffi::ckf_remove_ids(
                self.raw.as_ptr(),
                ids.len() as i64,
                ids.as_ptr(),
                &mut removed,
            )
        };
        let result = check(code);
        self.refresh()?;
        result?;
        let stored = self.live + self.tombstones;
        if self.tombstones > 0 && self.tombstones as f64 > COMPACT_FRACTION * stored as f64 {
            self.compact()?;
        }
        Ok(removed.max(0) as usize)
    }

    /// HNSW: rebuilds the graph from the live vectors, dropping tombstones (cost: a fresh build
    /// of `len()` vectors). A no-op for Flat and IVF, and when nothing was removed.
    pub fn compact(&mut self) -> Result<()> {
        if self.tombstones == 0 {
            return Ok(());
        }
        let started = std::time::Instant::now();
        let dropped = self.tombstones;
        // SAFETY: valid handle.
        let result = check(unsafe { ffi::ckf_compact(self.raw.as_ptr()) });
        self.refresh()?;
        result?;
        tracing::debug!(
            dropped,
            live = self.live,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "HNSW index compacted"
        );
        Ok(())
    }

    /// Searches `queries` (a whole number of `dim`-float vectors) and returns, per query, up to
    /// `k` hits sorted by decreasing inner product. Fewer than `k` when the index holds fewer
    /// (or, for approximate kinds, when the search reaches fewer); an empty list per query on
    /// an empty index. `k` must be at least 1.
    pub fn search(&self, queries: &[f32], k: usize) -> Result<Vec<Vec<Hit>>> {
        if k == 0 {
            return Err(FaissError::InvalidArgument("k must be at least 1".into()));
        }
        let nq = check_vectors(self.dim, queries)?;
        if nq == 0 {
            return Ok(Vec::new());
        }
        if self.live == 0 {
            return Ok(vec![Vec::new(); nq]);
        }
        let k = k.min(self.live);
        let total = nq.checked_mul(k).ok_or_else(|| {
            FaissError::InvalidArgument(format!("{nq} queries x k = {k} overflows"))
        })?;
        let mut distances = vec![0f32; total];
        let mut labels = vec![-1i64; total];
        // SAFETY: nq * dim floats in; nq * k floats and ids out, allocated above.
        check(unsafe {
            ffi::ckf_search(
                self.raw.as_ptr(),
                nq as i64,
                queries.as_ptr(),
                k as i64,
                distances.as_mut_ptr(),
                labels.as_mut_ptr(),
            )
        })?;
        Ok(labels
            .chunks_exact(k)
            .zip(distances.chunks_exact(k))
            .map(|(l, d)| {
                l.iter()
                    .zip(d)
                    .filter(|(&id, _)| id >= 0)
                    .map(|(&id, &s)| (id, s))
                    .collect()
            })
            .collect())
    }

    /// Searches one query, which must be exactly `dim` floats.
    pub fn search_one(&self, query: &[f32], k: usize) -> Result<Vec<Hit>> {
        if query.len() != self.dim {
            return Err(FaissError::DimensionMismatch {
                dim: self.dim,
                len: query.len(),
            });
        }
        Ok(self.search(query, k)?.pop().unwrap_or_default())
    }

    /// Number of searchable vectors (removed ones excluded).
    pub fn len(&self) -> usize {
        self.live
    }

    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// Vector dimension.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Index kind with its current parameters.
    pub fn kind(&self) -> IndexKind {
        self.kind
    }

    /// HNSW removals not yet compacted away (always 0 for Flat and IVF).
    pub fn tombstones(&self) -> usize {
        self.tombstones
    }

    /// False only for an IVF index not trained yet.
    pub fn is_trained(&self) -> bool {
        self.trained
    }

    /// HNSW: search beam width (recall/latency trade-off). Error for other kinds.
    pub fn set_ef_search(&mut self, ef_search: usize) -> Result<()> {
        let ef = i32::try_from(ef_search)
            .map_err(|_| FaissError::InvalidArgument(format!("efSearch {ef_search} too large")))?;
        // SAFETY: valid handle.
        check(unsafe { ffi::ckf_set_ef_search(self.raw.as_ptr(), ef) })?;
        self.refresh()
    }

    /// IVF: lists scanned per query (clamped to nlist). Error for other kinds.
    pub fn set_nprobe(&mut self, nprobe: usize) -> Result<()> {
        let np = i64::try_from(nprobe)
            .map_err(|_| FaissError::InvalidArgument(format!("nprobe {nprobe} too large")))?;
        // SAFETY: valid handle.
        check(unsafe { ffi::ckf_set_nprobe(self.raw.as_ptr(), np) })?;
        self.refresh()
    }

    /// Writes the index to `path` atomically: a temporary file in the same directory, fsync,
    /// rename over `path`, fsync of the directory.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let path = path.as_ref();
        let io = |p: &Path| {
            let p = p.to_path_buf();
            move |source| FaissError::Io { path: p, source }
        };
        let name = path.file_name().ok_or_else(|| {
            FaissError::InvalidArgument(format!("{} has no file name", path.display()))
        })?;
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let tmp = dir.join(format!(
            ".{}.tmp-{}-{}",
            name.to_string_lossy(),
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        // create_new: never follow or clobber something already there.
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .map_err(io(&tmp))?;
        let result = (|| {
            let c_tmp = path_cstring(&tmp)?;
            // SAFETY: valid handle and NUL-terminated path; write_index is const.
            let code = unsafe { ffi::ckf_write(self.raw.as_ptr(), c_tmp.as_ptr()) };
            if code == ffi::CKF_ERR_IO {
                return Err(FaissError::Io {
                    path: tmp.clone(),
                    source: std::io::Error::other(last_error()),
                });
            }
            check(code)?;
            file.sync_all().map_err(io(&tmp))?;
            fs::rename(&tmp, path).map_err(io(path))?;
            File::open(&dir)
                .and_then(|d| d.sync_all())
                .map_err(io(&dir))
        })();
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result?;
        tracing::debug!(path = %path.display(), kind = %self.kind, len = self.live, "faiss index saved");
        Ok(())
    }

    /// Reads an index written by [`save`](Self::save).
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        // Open in Rust first for a proper io::Error (not found, permission denied, ...).
        File::open(path).map_err(|source| FaissError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let c_path = path_cstring(path)?;
        let mut raw: *mut ffi::CkfIndex = std::ptr::null_mut();
        // SAFETY: NUL-terminated path, out-pointer to a local.
        let code = unsafe { ffi::ckf_read(c_path.as_ptr(), &mut raw) };
        match code {
            ffi::CKF_OK => {}
            ffi::CKF_ERR_IO => {
                return Err(FaissError::Io {
                    path: path.to_path_buf(),
                    source: std::io::Error::other(last_error()),
                })
            }
            // faiss's reader throws on truncated or inconsistent data: a bad file.
            ffi::CKF_ERR_FORMAT | ffi::CKF_ERR_FAISS | ffi::CKF_ERR_INVALID => {
                return Err(FaissError::Format {
                    path: path.to_path_buf(),
                    message: last_error(),
                })
            }
            other => check(other)?,
        }
        let index = Self::from_raw(raw)?;
        tracing::debug!(path = %path.display(), kind = %index.kind, len = index.live, "faiss index loaded");
        Ok(index)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn for_size_thresholds() {
        assert_eq!(IndexKind::for_size(0), IndexKind::Flat);
        assert_eq!(IndexKind::for_size(20_000), IndexKind::Flat);
        assert_eq!(IndexKind::for_size(100_000), IndexKind::Flat);
        assert_eq!(IndexKind::for_size(1_000_000), IndexKind::Flat);
        match IndexKind::for_size(4_000_000) {
            IndexKind::Ivf { nlist, nprobe } => {
                assert_eq!(nlist, 8000);
                assert_eq!(nprobe, 2000);
            }
            other => panic!("expected IVF, got {other:?}"),
        }
    }

    #[test]
    fn invalid_parameters_are_errors() {
        assert!(matches!(
            VectorIndex::new(0, IndexKind::Flat),
            Err(FaissError::InvalidArgument(_))
        ));
        let bad_hnsw = IndexKind::Hnsw {
            m: 1,
            ef_construction: 40,
            ef_search: 16,
        };
        assert!(matches!(
            VectorIndex::new(8, bad_hnsw),
            Err(FaissError::InvalidArgument(_))
        ));
        let bad_ivf = IndexKind::Ivf {
            nlist: 0,
            nprobe: 1,
        };
        assert!(matches!(
            VectorIndex::new(8, bad_ivf),
            Err(FaissError::InvalidArgument(_))
        ));
    }

    #[test]
    fn normalize() {
        let mut v = [3.0, 4.0];
        assert_eq!(l2_normalize(&mut v), 5.0);
        assert!((v[0] - 0.6).abs() < 1e-6 && (v[1] - 0.8).abs() < 1e-6);
        let mut z = [0.0f32; 3];
        assert_eq!(l2_normalize(&mut z), 0.0);
        assert_eq!(z, [0.0; 3]);
    }
}
