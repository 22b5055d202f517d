//! Vector search over all templates of a set, behind a trait so an approximate (faiss) index can replace
//! the exact one for large lists. The matcher re-scores the entries an index proposes exactly, so an
//! approximate index can only cost recall, never change a similarity that is reported.

use checkpoint_faiss::{IndexKind, VectorIndex};
use checkpoint_vision::EMBEDDING_DIM;

/// Nearest templates by cosine. Rows are the templates in the order given to the [`IndexBuilder`]; both
/// rows and queries are unit vectors, so inner product is cosine.
pub trait TemplateIndex: Send + Sync {
    /// Up to `k` `(template row, cosine)` pairs, best first. A query of the wrong dimension finds nothing.
    fn search(&self, query: &[f32], k: usize) -> Vec<(usize, f32)>;
}

/// Builds an index over the template rows of a set; called on every change of the set.
pub type IndexBuilder = Box<dyn Fn(&[Vec<f32>]) -> Box<dyn TemplateIndex> + Send + Sync>;

/// Brute force over a contiguous matrix: exact, and at SFace's 128 dimensions fast enough for tens of
/// thousands of templates per query.
pub struct ExactIndex {
    dim: usize,
    rows: usize,
    data: Vec<f32>,
}

impl ExactIndex {
    pub fn new(rows: &[Vec<f32>]) -> Self {
        let dim = EMBEDDING_DIM;
        let mut data = Vec::with_capacity(rows.len() * dim);
        for (i, r) in rows.iter().enumerate() {
            if r.len() == dim {
                data.extend_from_slice(r);
            } else {
                // Sets are validated before they reach an index; a zero row keeps the row numbering intact
                // and can never match.
                tracing::error!(
                    row = i,
                    len = r.len(),
                    "template of the wrong dimension reached the index"
                );
                data.extend(std::iter::repeat_n(0.0, dim));
            }
        }
        Self {
            dim,
            rows: rows.len(),
            data,
        }
    }

    /// The builder the store uses unless told otherwise.
    pub fn builder() -> IndexBuilder {
        Box::new(|rows| Box::new(ExactIndex::new(rows)))
    }

    pub fn len(&self) -> usize {
        self.rows
    }

    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }
}

impl TemplateIndex for ExactIndex {
    fn search(&self, query: &[f32], k: usize) -> Vec<(usize, f32)> {
        if query.len() != self.dim || k == 0 || self.rows == 0 {
            return Vec::new();
        }
        let mut scored: Vec<(usize, f32)> = self
            .data
            .chunks_exact(self.dim)
            .map(|row| row.iter().zip(query).map(|(a, b)| a * b).sum::<f32>())
            .enumerate()
            .collect();
        let best_first =
            |a: &(usize, f32), b: &(usize, f32)| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0));
        if k < scored.len() {
            scored.select_nth_unstable_by(k - 1, best_first);
            scored.truncate(k);
        }
        scored.sort_unstable_by(best_first);
        scored
    }
}

/// faiss over the same rows: exact (`IndexFlatIP`) up to [`IndexKind::FLAT_MAX`] templates, then IVF
/// as [`IndexKind::for_size`] picks. Row numbers are the faiss ids.
pub struct FaissIndex {
    index: Option<VectorIndex>,
}

impl FaissIndex {
    /// Builds the index; `None` inside when faiss refuses (logged), which then finds nothing, so a broken
    /// build degrades to "no candidates" loudly rather than to wrong ones.
    pub fn new(rows: &[Vec<f32>]) -> Self {
        let dim = EMBEDDING_DIM;
        let mut data = Vec::with_capacity(rows.len() * dim);
        for r in rows {
            if r.len() == dim {
                data.extend_from_slice(r);
            } else {
                data.extend(std::iter::repeat_n(0.0, dim));
            }
        }
        let ids: Vec<i64> = (0..rows.len() as i64).collect();
        let kind = IndexKind::for_size(rows.len());
        let index = match VectorIndex::build(dim, kind, &ids, &data) {
            Ok(i) => Some(i),
            Err(e) => {
                tracing::error!(error = %e, templates = rows.len(), %kind, "faiss index build failed; watchlist matching is off until the next sync");
                None
            }
        };
        Self { index }
    }

    /// The builder the agent uses.
    pub fn builder() -> IndexBuilder {
        Box::new(|rows| Box::new(FaissIndex::new(rows)))
    }

    pub fn kind(&self) -> Option<IndexKind> {
        self.index.as_ref().map(VectorIndex::kind)
    }
}

impl TemplateIndex for FaissIndex {
    fn search(&self, query: &[f32], k: usize) -> Vec<(usize, f32)> {
        let Some(index) = &self.index else {
            return Vec::new();
        };
        if query.len() != EMBEDDING_DIM || k == 0 {
            return Vec::new();
        }
        match index.search_one(query, k) {
            Ok(hits) => hits
                .into_iter()
                .filter(|(id, _)| *id >= 0)
                .map(|(id, s)| (id as usize, s))
                .collect(),
            Err(e) => {
                tracing::error!(error = %e, "faiss search failed");
                Vec::new()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::watchlist::testutil::template;

    #[test]
    fn exact_index_returns_the_k_best_rows_best_first() {
        let rows: Vec<Vec<f32>> = (0..50).map(|i| template(i, 0.0)).collect();
        let idx = ExactIndex::new(&rows);
        let q = template(7, 0.5);
        let hits = idx.search(&q, 3);
        assert_eq!(hits.len(), 3);
        assert_eq!(hits[0].0, 7);
        assert_eq!(hits[1].0, 8);
        assert!(hits[0].1 > hits[1].1 && hits[1].1 >= hits[2].1);
        assert_eq!(idx.search(&q, 500).len(), 50);
        assert!(idx.search(&q[..10], 3).is_empty());
        assert!(idx.search(&q, 0).is_empty());
        assert!(ExactIndex::new(&[]).search(&q, 3).is_empty());
    }

    #[test]
    fn faiss_index_agrees_with_exact_search() {
        // Unit vectors spread over all axes with pseudo-random tilts.
        let rows: Vec<Vec<f32>> = (0..300)
            .map(|i| template(i * 7, ((i * 37) % 11) as f32 / 10.0))
            .collect();
        let exact = ExactIndex::new(&rows);
        let faiss = FaissIndex::new(&rows);
        assert_eq!(faiss.kind(), Some(IndexKind::Flat));
        for q in [template(14, 0.3), template(91, 0.05), template(200, 1.0)] {
            let a = exact.search(&q, 5);
            let b = faiss.search(&q, 5);
            assert_eq!(a.len(), b.len());
            for (x, y) in a.iter().zip(&b) {
                assert!((x.1 - y.1).abs() < 1e-5, "{a:?} vs {b:?}");
            }
            if a[0].1 > a[1].1 + 1e-4 {
                assert_eq!(a[0].0, b[0].0);
            }
        }
        assert!(faiss.search(&template(3, 0.0)[..5], 3).is_empty());
        assert!(FaissIndex::new(&[]).search(&template(3, 0.0), 3).is_empty());
    }
}
