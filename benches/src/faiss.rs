//! `faiss` subcommand: watchlist vector search through `checkpoint-faiss` on random unit
//! vectors of dimension 128 (the SFace embedding size).
//!
//! Per collection size: the kind [`IndexKind::for_size`] picks, its build time, search latency
//! one query at a time (mean, p50, p95) and batched by 100 (per query), and recall@1 / recall@10
//! against exact (flat) search on the same data. Extra rows show the recall/latency knob of the
//! approximate kinds and the exact baseline.
//!
//! Uniform random unit vectors are the hardest case for approximate search (no cluster
//! structure: a query's 10th neighbour is barely closer than a random point); face embeddings,
//! which cluster by identity, get much better recall at the same settings.

use std::collections::HashSet;
use std::time::Instant;

use anyhow::{ensure, Context, Result};
use checkpoint_faiss::{IndexKind, VectorIndex};

const DIM: usize = 128;
const K: usize = 10;
const BATCH: usize = 100;
/// The matcher re-scores this many proposals per decision (`watchlist.match.top_k`).
const MATE_K: usize = 5;
/// Cosine of a planted mate to its query: about the wanted list's threshold, i.e. the weakest genuine match
/// the agent would still report.
const MATE_COSINE: f32 = 0.45;

/// Queries at cosine [`MATE_COSINE`] to a stored vector each, and that vector's id: what a listed person's
/// face looks like to the index.
fn planted_mates(data: &[f32], n: usize, count: usize, rng: &mut Rng) -> (Vec<f32>, Vec<i64>) {
    let noise = rng.unit_vectors(count);
    let c = MATE_COSINE;
    let s = (1.0 - c * c).sqrt();
    let mut q = Vec::with_capacity(count * DIM);
    let mut ids = Vec::with_capacity(count);
    for i in 0..count {
        let j = (i.wrapping_mul(7919) + 13) % n;
        let v = &data[j * DIM..(j + 1) * DIM];
        let u = &noise[i * DIM..(i + 1) * DIM];
        // Remove u's component along v so the cosine is exactly c.
        let d: f32 = u.iter().zip(v).map(|(a, b)| a * b).sum();
        let mut w: Vec<f32> = u.iter().zip(v).map(|(a, b)| a - d * b).collect();
        checkpoint_faiss::l2_normalize(&mut w);
        let start = q.len();
        q.extend(v.iter().zip(&w).map(|(a, b)| c * a + s * b));
        checkpoint_faiss::l2_normalize(&mut q[start..]);
        ids.push(j as i64);
    }
    (q, ids)
}

fn mate_recall(index: &VectorIndex, queries: &[f32], ids: &[i64]) -> Result<f64> {
    let hits = index.search(queries, MATE_K)?;
    let found = hits
        .iter()
        .zip(ids)
        .filter(|(h, id)| h.iter().any(|(got, _)| got == *id))
        .count();
    Ok(found as f64 / ids.len().max(1) as f64)
}

/// splitmix64 with Box-Muller: Gaussian coordinates normalised onto the unit sphere.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn uniform(&mut self) -> f64 {
        ((self.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }

    fn unit_vectors(&mut self, n: usize) -> Vec<f32> {
        let mut out = Vec::with_capacity(n * DIM);
        for _ in 0..n {
            let start = out.len();
            while out.len() < start + DIM {
                let r = (-2.0 * self.uniform().ln()).sqrt();
                let (s, c) = (std::f64::consts::TAU * self.uniform()).sin_cos();
                out.push((r * c) as f32);
                out.push((r * s) as f32); // DIM is even
            }
            checkpoint_faiss::l2_normalize(&mut out[start..]);
        }
        out
    }
}

struct Row {
    label: String,
    build_s: Option<f64>,
    mean: f64,
    p50: f64,
    p95: f64,
    batch_per_query: f64,
    r1: f64,
    r10: f64,
    /// Share of planted-mate queries whose mate is in the top [`MATE_K`].
    mate: f64,
}

fn print_row(n: usize, r: &Row) {
    let build = r
        .build_s
        .map(|b| format!("{b:.2}"))
        .unwrap_or_else(|| "″".into());
    println!(
        "| {n} | {} | {build} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} |",
        r.label, r.mean, r.p50, r.p95, r.batch_per_query, r.r1, r.r10, r.mate
    );
}

type Hits = Vec<Vec<(i64, f32)>>;

/// recall@k averaged over queries: |approx top-k ∩ exact top-k| / k.
fn recall(got: &[Vec<(i64, f32)>], truth: &[Vec<(i64, f32)>], k: usize) -> f64 {
    let mut hit = 0usize;
    for (g, t) in got.iter().zip(truth) {
        let t: HashSet<i64> = t.iter().take(k).map(|h| h.0).collect();
        hit += g.iter().take(k).filter(|h| t.contains(&h.0)).count();
    }
    hit as f64 / (truth.len() * k).max(1) as f64
}

/// Latency one query at a time (all `queries`, or the first `limit`) and batched by 100, plus
/// recall of the single-query results against `truth`.
fn measure(
    label: String,
    build_s: Option<f64>,
    index: &VectorIndex,
    queries: &[f32],
    truth: &Hits,
    limit: usize,
    mates: &(Vec<f32>, Vec<i64>),
) -> Result<Row> {
    let nq = (queries.len() / DIM).min(limit);
    for q in queries.chunks_exact(DIM).take(3) {
        index.search_one(q, K)?; // warm-up: page in the index, start OpenMP
    }
    let mut times = Vec::with_capacity(nq);
    let mut got = Vec::with_capacity(nq);
    for q in queries.chunks_exact(DIM).take(nq) {
        let t = Instant::now();
        let hits = index.search_one(q, K)?;
        times.push(t.elapsed().as_secs_f64() * 1e3);
        got.push(hits);
    }
    let mut sorted = times.clone();
    sorted.sort_by(f64::total_cmp);
    let mean = times.iter().sum::<f64>() / nq.max(1) as f64;
    let pct = |p: usize| sorted[(nq * p / 100).min(nq.saturating_sub(1))];

    let mut batch_ms = 0.0;
    let mut batched = 0usize;
    for chunk in queries.chunks(BATCH * DIM) {
        let t = Instant::now();
        let res = index.search(chunk, K)?;
        batch_ms += t.elapsed().as_secs_f64() * 1e3;
        batched += res.len();
    }
    Ok(Row {
        label,
        build_s,
        mean,
        p50: pct(50),
        p95: pct(95),
        batch_per_query: batch_ms / batched.max(1) as f64,
        r1: recall(&got, &truth[..nq], 1),
        r10: recall(&got, &truth[..nq], K),
        mate: mate_recall(index, &mates.0, &mates.1)?,
    })
}

fn timed<T>(f: impl FnOnce() -> Result<T>) -> Result<(T, f64)> {
    let t = Instant::now();
    let v = f()?;
    Ok((v, t.elapsed().as_secs_f64()))
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "n/a".into())
}

/// Runs the benchmark for each collection size with `queries` random queries each.
pub fn run(sizes: &[usize], queries: usize) -> Result<()> {
    ensure!(queries > 0, "need at least one query");
    println!("\n## Vector search: checkpoint-faiss (faiss 1.7.3), random unit vectors, dim {DIM}, k = {K}\n");
    println!(
        "{queries} queries per size (random unit vectors, not in the index); ground truth from exact \
         flat search. Latency: `search_one`, one query at a time, after 3 warm-up queries; batch: \
         `search` on {BATCH} queries at once, time per query. recall@1: share of queries whose \
         exact nearest neighbour is ranked first; recall@10: |approx top-10 ∩ exact top-10| / 10. \
         mate@{MATE_K}: {queries} queries each planted at cosine {MATE_COSINE} to one stored vector (a listed \
         person at about the wanted threshold), share whose mate is among the {MATE_K} proposals the matcher \
         re-scores. Load average at start: {}.\n",
        load_average()
    );
    println!("| vectors | index | build s | 1 query mean ms | p50 ms | p95 ms | batch 100 ms/query | recall@1 | recall@10 | mate@{MATE_K} |");
    println!("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    let query_vecs = Rng(0xC0FFEE).unit_vectors(queries);
    for &n in sizes {
        let data = Rng(0x5EED ^ n as u64).unit_vectors(n);
        let mates = planted_mates(&data, n, queries, &mut Rng(0xA7E ^ n as u64));
        let ids: Vec<i64> = (0..n as i64).collect();

        let (exact, exact_build) =
            timed(|| Ok(VectorIndex::build(DIM, IndexKind::Flat, &ids, &data)?))
                .context("flat index")?;
        // Ground truth in one batch (BLAS), then the exact baseline's own latency. On 1M the
        // flat single-query scan is slow, so it is timed on a subset.
        let truth = exact.search(&query_vecs, K)?;
        let kind = IndexKind::for_size(n);
        let flat_limit = if n >= 500_000 { 50 } else { queries };
        let subset = if flat_limit < queries {
            format!(", latency on {flat_limit} queries")
        } else {
            String::new()
        };
        let flat_label = if kind.is_exact() {
            format!("**Flat** (for_size{subset})")
        } else {
            format!("Flat (exact baseline{subset})")
        };
        print_row(
            n,
            &measure(
                flat_label,
                Some(exact_build),
                &exact,
                &query_vecs,
                &truth,
                flat_limit,
                &mates,
            )?,
        );
        drop(exact);
        // What an approximate index would give at this size even when for_size stays exact: the figures
        // that decided FLAT_MAX. HNSW up to 100k (its build at 1M takes many minutes on a small box), IVF
        // from 100k.
        let mut alternatives: Vec<(IndexKind, String)> = Vec::new();
        if !kind.is_exact() {
            alternatives.push((kind, format!("**{kind}** (for_size)")));
        } else {
            if n <= 100_000 {
                let alt = IndexKind::Hnsw {
                    m: 32,
                    ef_construction: 80,
                    ef_search: 256,
                };
                alternatives.push((alt, format!("{alt} (comparison)")));
            }
            if n >= 100_000 {
                let nlist = ((4.0 * (n as f64).sqrt()).round() as usize).clamp(1, n);
                let alt = IndexKind::Ivf {
                    nlist,
                    nprobe: (nlist / 4).max(1),
                };
                alternatives.push((alt, format!("{alt} (comparison)")));
            }
        }
        for (kind, label) in alternatives {
            compare(
                n,
                kind,
                label,
                &ids,
                &data,
                &query_vecs,
                &truth,
                queries,
                &mates,
            )?;
        }
    }
    println!(
        "\nBuild: flat = copy; HNSW = graph insertion; IVF = k-means on a sample of {} vectors per list + assignment. \
         Load average at end: {}.",
        checkpoint_faiss::IVF_TRAIN_POINTS_PER_LIST,
        load_average()
    );
    Ok(())
}

/// One approximate index at size `n`: built, measured at its own setting, then at other search-time
/// settings (HNSW beam, IVF lists probed) on the same index.
#[allow(clippy::too_many_arguments)]
fn compare(
    n: usize,
    kind: IndexKind,
    label: String,
    ids: &[i64],
    data: &[f32],
    query_vecs: &[f32],
    truth: &Hits,
    queries: usize,
    mates: &(Vec<f32>, Vec<i64>),
) -> Result<()> {
    let (mut index, build) = timed(|| Ok(VectorIndex::build(DIM, kind, ids, data)?))
        .with_context(|| format!("{kind} index"))?;
    print_row(
        n,
        &measure(
            label,
            Some(build),
            &index,
            query_vecs,
            truth,
            queries,
            mates,
        )?,
    );
    // The knob: search-time beam (HNSW) or lists probed (IVF), same index.
    let sweep: Vec<IndexKind> = match kind {
        IndexKind::Hnsw {
            m,
            ef_construction,
            ef_search,
        } => [ef_search / 2, ef_search * 2, ef_search * 4]
            .into_iter()
            .map(|ef_search| IndexKind::Hnsw {
                m,
                ef_construction,
                ef_search,
            })
            .collect(),
        IndexKind::Ivf { nlist, nprobe } => [nprobe / 4, nprobe / 2, nprobe * 2]
            .into_iter()
            .filter(|&p| p >= 1 && p <= nlist)
            .map(|nprobe| IndexKind::Ivf { nlist, nprobe })
            .collect(),
        IndexKind::Flat => Vec::new(),
    };
    for k in sweep {
        match k {
            IndexKind::Hnsw { ef_search, .. } => index.set_ef_search(ef_search)?,
            IndexKind::Ivf { nprobe, .. } => index.set_nprobe(nprobe)?,
            IndexKind::Flat => {}
        }
        print_row(
            n,
            &measure(
                k.to_string(),
                None,
                &index,
                query_vecs,
                truth,
                queries,
                mates,
            )?,
        );
    }
    Ok(())
}
