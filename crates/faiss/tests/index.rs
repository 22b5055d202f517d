//! Behaviour of `VectorIndex` on every kind: exactness, recall, removal, persistence, input
//! validation and concurrent search.

use std::collections::HashSet;

use checkpoint_faiss::{FaissError, IndexKind, VectorIndex};

const DIM: usize = 128;

/// splitmix64 + Box-Muller: deterministic Gaussian vectors, normalised to the unit sphere.
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
    fn unit_vectors(&mut self, n: usize, dim: usize) -> Vec<f32> {
        let mut out = Vec::with_capacity(n * dim);
        for _ in 0..n {
            let start = out.len();
            while out.len() < start + dim {
                let (u1, u2) = (self.uniform(), self.uniform());
                let r = (-2.0 * u1.ln()).sqrt();
                let t = std::f64::consts::TAU * u2;
                out.push((r * t.cos()) as f32);
                if out.len() < start + dim {
                    out.push((r * t.sin()) as f32);
                }
            }
            checkpoint_faiss::l2_normalize(&mut out[start..]);
        }
        out
    }
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Exact top-k by brute force, in Rust.
fn brute_force(data: &[f32], ids: &[i64], query: &[f32], k: usize) -> Vec<(i64, f32)> {
    let mut all: Vec<(i64, f32)> = data
        .chunks_exact(query.len())
        .zip(ids)
        .map(|(v, &id)| (id, dot(v, query)))
        .collect();
    all.sort_by(|a, b| b.1.total_cmp(&a.1));
    all.truncate(k);
    all
}

/// Same hits up to float rounding: scores within 1e-5, ids equal unless two candidates tie.
/// (faiss's flat search uses BLAS for batches of 20+ queries and a SIMD loop below that, which
/// round differently in the last bit.)
fn assert_same_hits(a: &[(i64, f32)], b: &[(i64, f32)], what: &str) {
    assert_eq!(a.len(), b.len(), "{what}: lengths");
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!(
            (x.1 - y.1).abs() < 1e-5,
            "{what}: rank {i} score {} vs {}",
            x.1,
            y.1
        );
        if x.0 != y.0 {
            let tie = a
                .iter()
                .chain(b)
                .any(|h| h.0 != x.0 && (h.1 - x.1).abs() < 1e-5);
            assert!(tie, "{what}: rank {i} id {} vs {}", x.0, y.0);
        }
    }
}

fn seq_ids(n: usize, offset: i64) -> Vec<i64> {
    (0..n as i64).map(|i| i * 7 + offset).collect()
}

/// HNSW for tests: faiss's default efConstruction (cheap build), a wide search beam.
fn hnsw() -> IndexKind {
    IndexKind::Hnsw {
        m: 32,
        ef_construction: 40,
        ef_search: 512,
    }
}

fn all_kinds() -> [IndexKind; 3] {
    [
        IndexKind::Flat,
        hnsw(),
        IndexKind::Ivf {
            nlist: 32,
            nprobe: 32, // every list: exact, so the removal checks below are about removal only
        },
    ]
}

/// recall@k of `got` against `truth`, averaged over queries.
fn recall(got: &[Vec<(i64, f32)>], truth: &[Vec<(i64, f32)>], k: usize) -> f64 {
    let mut hit = 0usize;
    for (g, t) in got.iter().zip(truth) {
        let t: HashSet<i64> = t.iter().take(k).map(|h| h.0).collect();
        hit += g.iter().take(k).filter(|h| t.contains(&h.0)).count();
    }
    hit as f64 / (truth.len() * k) as f64
}

#[test]
fn flat_equals_brute_force() {
    let mut rng = Rng(1);
    let data = rng.unit_vectors(5_000, DIM);
    let ids = seq_ids(5_000, 3);
    let queries = rng.unit_vectors(50, DIM);
    let index = VectorIndex::build(DIM, IndexKind::Flat, &ids, &data).unwrap();
    assert_eq!(index.len(), 5_000);
    let got = index.search(&queries, 10).unwrap();
    assert_eq!(got.len(), 50);
    for (q, hits) in queries.chunks_exact(DIM).zip(&got) {
        let truth = brute_force(&data, &ids, q, 10);
        assert_eq!(hits.len(), 10);
        for (i, (h, t)) in hits.iter().zip(&truth).enumerate() {
            assert!(
                (h.1 - t.1).abs() < 1e-4,
                "rank {i}: score {} vs {}",
                h.1,
                t.1
            );
            // Same id, unless two candidates tie to float precision.
            if h.0 != t.0 {
                assert!((h.1 - t.1).abs() < 1e-5, "rank {i}: id {} vs {}", h.0, t.0);
            }
        }
    }
    // search_one (SIMD path) agrees with the batch (BLAS path).
    for (q, hits) in queries.chunks_exact(DIM).zip(&got) {
        assert_same_hits(
            &index.search_one(q, 10).unwrap(),
            hits,
            "search_one vs batch",
        );
    }
}

#[test]
fn approximate_kinds_recall_at_10() {
    const N: usize = 20_000;
    let mut rng = Rng(2);
    let data = rng.unit_vectors(N, DIM);
    let ids = seq_ids(N, 0);
    let queries = rng.unit_vectors(200, DIM);
    let exact = VectorIndex::build(DIM, IndexKind::Flat, &ids, &data).unwrap();
    let truth = exact.search(&queries, 10).unwrap();
    // Uniform random unit vectors in 128-d are the hardest case for approximate search (no
    // cluster structure at all; face embeddings are far easier): 0.95 takes efSearch 512 and,
    // for IVF, probing most lists (measured here: nlist 256 needs ~75 % of lists for 0.96).
    let kinds = [
        hnsw(),
        IndexKind::Ivf {
            nlist: 256,
            nprobe: 224,
        },
    ];
    for kind in kinds {
        let t = std::time::Instant::now();
        let index = VectorIndex::build(DIM, kind, &ids, &data).unwrap();
        let build = t.elapsed();
        let got = index.search(&queries, 10).unwrap();
        let r = recall(&got, &truth, 10);
        eprintln!("{kind}: recall@10 {r:.3}, build {build:?}");
        assert!(r >= 0.95, "{kind}: recall@10 {r:.3} < 0.95");
    }
}

#[test]
fn removed_ids_never_returned() {
    const N: usize = 3_000;
    let mut rng = Rng(3);
    let data = rng.unit_vectors(N, DIM);
    let ids = seq_ids(N, 1);
    for kind in all_kinds() {
        let mut index = VectorIndex::build(DIM, kind, &ids, &data).unwrap();
        let mut removed: HashSet<i64> = HashSet::new();
        // Two rounds: 10 % (HNSW keeps tombstones), then 25 % more (HNSW compacts).
        for (round, range) in [(0, 0..N / 10), (1, N / 10..N * 35 / 100)] {
            let batch: Vec<i64> = ids[range.clone()].iter().step_by(1).copied().collect();
            let n = index
                .remove(&[&batch[..], &[999_999_999, batch[0]]].concat())
                .unwrap();
            assert_eq!(
                n,
                batch.len(),
                "{kind} round {round}: unknown/repeated ids count"
            );
            removed.extend(&batch);
            assert_eq!(index.len(), N - removed.len());
            if matches!(kind, IndexKind::Hnsw { .. }) {
                if round == 0 {
                    assert_eq!(index.tombstones(), batch.len());
                } else {
                    assert_eq!(index.tombstones(), 0, "HNSW should have compacted");
                }
            }
            // The removed vectors themselves are the queries: each would be its own top hit.
            let queries = &data[range.start * DIM..range.end * DIM];
            let got = index.search(queries, 20).unwrap();
            for hits in &got {
                assert_eq!(hits.len(), 20);
                for h in hits {
                    assert!(
                        !removed.contains(&h.0),
                        "{kind}: removed id {} returned",
                        h.0
                    );
                }
            }
            // Kept vectors still find themselves.
            let kept = N - 1;
            let hit = index
                .search_one(&data[kept * DIM..(kept + 1) * DIM], 1)
                .unwrap();
            assert_eq!(hit[0].0, ids[kept], "{kind}: kept vector lost");
        }
        // A removed id can come back, with a new vector, and is found under it.
        let new_vec = rng.unit_vectors(1, DIM);
        index.add(&[ids[0]], &new_vec).unwrap();
        let hit = index.search_one(&new_vec, 1).unwrap();
        assert_eq!(hit[0].0, ids[0], "{kind}: re-added id");
        assert!((hit[0].1 - 1.0).abs() < 1e-4);
        // Removing everything leaves an empty index that answers with nothing.
        let live: Vec<i64> = ids
            .iter()
            .copied()
            .filter(|i| !removed.contains(i) || *i == ids[0])
            .collect();
        assert_eq!(index.remove(&live).unwrap(), live.len());
        assert!(index.is_empty());
        assert!(index.search(&new_vec, 5).unwrap()[0].is_empty());
    }
}

#[test]
fn save_load_round_trip() {
    const N: usize = 4_000;
    let mut rng = Rng(4);
    let data = rng.unit_vectors(N, DIM);
    let ids = seq_ids(N, 5);
    let queries = rng.unit_vectors(40, DIM);
    let dir = tempfile::tempdir().unwrap();
    for kind in all_kinds() {
        let mut index = VectorIndex::build(DIM, kind, &ids, &data).unwrap();
        // Leave HNSW with tombstones so that they are persisted too.
        index.remove(&ids[..100]).unwrap();
        let before = index.search(&queries, 10).unwrap();
        let path = dir
            .path()
            .join(format!("{kind:?}.idx").replace([' ', '{', '}', ':', ','], ""));
        index.save(&path).unwrap();
        // Overwrite: a second save replaces the file atomically.
        index.save(&path).unwrap();
        let loaded = VectorIndex::load(&path).unwrap();
        assert_eq!(loaded.kind(), index.kind());
        assert_eq!(loaded.dim(), DIM);
        assert_eq!(loaded.len(), index.len());
        assert_eq!(loaded.tombstones(), index.tombstones());
        let after = loaded.search(&queries, 10).unwrap();
        assert_eq!(before, after, "{kind}: results differ after load");
        for hits in &after {
            assert!(hits.iter().all(|h| !ids[..100].contains(&h.0)));
        }
        // No temporary files left behind.
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(names.iter().all(|n| !n.contains(".tmp-")), "{names:?}");
    }
}

#[test]
fn load_rejects_missing_and_damaged_files() {
    let dir = tempfile::tempdir().unwrap();
    assert!(matches!(
        VectorIndex::load(dir.path().join("missing.idx")),
        Err(FaissError::Io { .. })
    ));
    let junk = dir.path().join("junk.idx");
    std::fs::write(&junk, b"definitely not a faiss index").unwrap();
    assert!(matches!(
        VectorIndex::load(&junk),
        Err(FaissError::Format { .. })
    ));

    let mut rng = Rng(5);
    let data = rng.unit_vectors(500, DIM);
    let index = VectorIndex::build(DIM, hnsw(), &seq_ids(500, 0), &data).unwrap();
    let good = dir.path().join("good.idx");
    index.save(&good).unwrap();
    let bytes = std::fs::read(&good).unwrap();
    for cut in [4, 20, bytes.len() / 2, bytes.len() - 4] {
        let truncated = dir.path().join(format!("cut{cut}.idx"));
        std::fs::write(&truncated, &bytes[..cut]).unwrap();
        let err = VectorIndex::load(&truncated).unwrap_err();
        assert!(matches!(err, FaissError::Format { .. }), "cut {cut}: {err}");
    }
}

#[test]
fn invalid_input_is_an_error() {
    let mut rng = Rng(6);
    let data = rng.unit_vectors(100, DIM);
    let ids = seq_ids(100, 0);
    // Vector data not a multiple of dim.
    assert!(matches!(
        VectorIndex::build(DIM, IndexKind::Flat, &ids, &data[..data.len() - 1]),
        Err(FaissError::DimensionMismatch { dim: DIM, .. })
    ));
    // Ids and vectors disagree.
    assert!(matches!(
        VectorIndex::build(DIM, IndexKind::Flat, &ids[..99], &data),
        Err(FaissError::CountMismatch {
            ids: 99,
            vectors: 100
        })
    ));
    for kind in all_kinds() {
        let mut index = VectorIndex::build(DIM, kind, &ids, &data).unwrap();
        let mut bad = rng.unit_vectors(3, DIM);
        bad[DIM + 5] = f32::NAN;
        assert!(matches!(
            index.add(&[1000, 1001, 1002], &bad),
            Err(FaissError::NonFinite { index: 1 })
        ));
        bad[DIM + 5] = f32::INFINITY;
        assert!(matches!(
            index.search(&bad, 5),
            Err(FaissError::NonFinite { index: 1 })
        ));
        assert!(matches!(
            index.search(&data[..DIM + 3], 5),
            Err(FaissError::DimensionMismatch { .. })
        ));
        assert!(matches!(
            index.search_one(&data[..2 * DIM], 5),
            Err(FaissError::DimensionMismatch { .. })
        ));
        assert!(matches!(
            index.search(&data[..DIM], 0),
            Err(FaissError::InvalidArgument(_))
        ));
        // Duplicates (against the index, or within the batch) and negative ids: all-or-nothing.
        let two = rng.unit_vectors(2, DIM);
        assert!(matches!(
            index.add(&[5000, ids[3]], &two),
            Err(FaissError::DuplicateId(id)) if id == ids[3]
        ));
        assert!(matches!(
            index.add(&[5000, 5000], &two),
            Err(FaissError::DuplicateId(5000))
        ));
        assert!(matches!(
            index.add(&[5000, -1], &two),
            Err(FaissError::InvalidId(-1))
        ));
        assert_eq!(index.len(), 100, "{kind}: a failed add changed the index");
        // Zero queries: zero result lists; k above len: everything.
        assert!(index.search(&[], 3).unwrap().is_empty());
        let all = index.search(&data[..DIM], 1_000_000).unwrap();
        if kind.is_exact() {
            assert_eq!(all[0].len(), 100);
        }
        // Tuning knobs only for their kind.
        assert_eq!(
            index.set_ef_search(64).is_ok(),
            matches!(kind, IndexKind::Hnsw { .. })
        );
        assert_eq!(
            index.set_nprobe(4).is_ok(),
            matches!(kind, IndexKind::Ivf { .. })
        );
    }
}

#[test]
fn empty_index_search() {
    let q = Rng(7).unit_vectors(2, DIM);
    for kind in all_kinds() {
        let index = VectorIndex::new(DIM, kind).unwrap();
        assert!(index.is_empty());
        let got = index.search(&q, 10).unwrap();
        assert_eq!(got, vec![Vec::new(), Vec::new()], "{kind}");
    }
    // An untrained IVF refuses vectors; training needs at least nlist of them.
    let mut ivf = VectorIndex::new(
        DIM,
        IndexKind::Ivf {
            nlist: 16,
            nprobe: 4,
        },
    )
    .unwrap();
    assert!(!ivf.is_trained());
    assert!(matches!(
        ivf.add(&[1], &q[..DIM]),
        Err(FaissError::NotTrained)
    ));
    assert!(matches!(ivf.train(&q), Err(FaissError::InvalidArgument(_))));
    assert!(matches!(
        VectorIndex::build(
            DIM,
            IndexKind::Ivf {
                nlist: 16,
                nprobe: 4
            },
            &[1, 2],
            &q
        ),
        Err(FaissError::InvalidArgument(_))
    ));
    // Flat and HNSW build from nothing.
    for kind in [IndexKind::Flat, hnsw()] {
        let index = VectorIndex::build(DIM, kind, &[], &[]).unwrap();
        assert!(index.search(&q, 1).unwrap().iter().all(Vec::is_empty));
    }
}

#[test]
fn concurrent_search_from_two_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<VectorIndex>();

    let mut rng = Rng(8);
    let data = rng.unit_vectors(5_000, DIM);
    let ids = seq_ids(5_000, 0);
    let queries = rng.unit_vectors(64, DIM);
    for kind in [IndexKind::Flat, hnsw()] {
        let index = VectorIndex::build(DIM, kind, &ids, &data).unwrap();
        let expected = index.search(&queries, 10).unwrap();
        std::thread::scope(|s| {
            let workers: Vec<_> = (0..2)
                .map(|t| {
                    let (index, queries, expected) = (&index, &queries, &expected);
                    s.spawn(move || {
                        for round in 0..20 {
                            if (round + t) % 2 == 0 {
                                // Batched (BLAS path for Flat, OpenMP team for HNSW).
                                let got = index.search(queries, 10).unwrap();
                                for (g, e) in got.iter().zip(expected) {
                                    assert_same_hits(g, e, "batch");
                                }
                            } else {
                                for (q, e) in queries.chunks_exact(DIM).zip(expected) {
                                    let got = index.search_one(q, 10).unwrap();
                                    assert_same_hits(&got, e, "single");
                                }
                            }
                        }
                    })
                })
                .collect();
            for w in workers {
                w.join().unwrap();
            }
        });
    }
}
