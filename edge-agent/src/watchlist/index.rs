//! Vector search over all templates of a set, behind a trait so an approximate (faiss) index can replace
//! the exact one for large lists. The matcher re-scores the entries an index proposes exactly, so an
//! approximate index can only cost recall, never change a similarity that is reported.

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::watchlist::model::tests::template;

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
}
