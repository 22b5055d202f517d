//! Gated minimum-cost bipartite assignment (Hungarian algorithm, shortest augmenting
//! paths with potentials).
//!
//! Implemented here rather than pulled in as a crate: per frame the matrices are
//! tracks x detections, i.e. tens by tens, where an O(n^2 m) textbook solver runs in
//! microseconds, and owning the ~50 lines keeps the edge agent free of a numeric
//! dependency and makes the gating semantics explicit.

/// Result of [`assign`]; all indices refer to the rows/columns of the cost matrix.
#[derive(Debug, Default, PartialEq)]
pub struct Assignment {
    pub matches: Vec<(usize, usize)>,
    pub unmatched_rows: Vec<usize>,
    pub unmatched_cols: Vec<usize>,
}

/// Minimum-cost assignment where a pair may only be matched if its cost is finite
/// and `<= limit`.
///
/// `cost` is row-major `rows x cols`. This solves the same problem as `lap.lapjv`
/// with `cost_limit` (used by ByteTrack): leaving a row and a column unmatched costs
/// `limit` in total. Clamping every cost at `limit` and then discarding pairs that
/// were not admissible is exactly equivalent, because a clamped pair contributes the
/// same as leaving both ends unmatched; that lets a plain rectangular solver do it.
pub fn assign(cost: &[f64], rows: usize, cols: usize, limit: f64) -> Assignment {
    debug_assert_eq!(cost.len(), rows * cols);
    let admissible = |c: f64| c.is_finite() && c <= limit;
    if rows == 0 || cols == 0 || !limit.is_finite() || cost.len() != rows * cols {
        return Assignment {
            matches: Vec::new(),
            unmatched_rows: (0..rows).collect(),
            unmatched_cols: (0..cols).collect(),
        };
    }

    // The solver needs rows <= cols; transpose instead of padding.
    let transpose = rows > cols;
    let (n, m) = if transpose {
        (cols, rows)
    } else {
        (rows, cols)
    };
    let at = |i: usize, j: usize| {
        let c = if transpose {
            cost[j * cols + i]
        } else {
            cost[i * cols + j]
        };
        if admissible(c) {
            c
        } else {
            limit
        }
    };
    let row_to_col = hungarian(n, m, at);

    let mut matches = Vec::new();
    let mut row_used = vec![false; rows];
    let mut col_used = vec![false; cols];
    for (i, j) in row_to_col.into_iter().enumerate() {
        let (r, c) = if transpose { (j, i) } else { (i, j) };
        if admissible(cost[r * cols + c]) {
            matches.push((r, c));
            row_used[r] = true;
            col_used[c] = true;
        }
    }
    matches.sort_unstable();
    Assignment {
        matches,
        unmatched_rows: (0..rows).filter(|&r| !row_used[r]).collect(),
        unmatched_cols: (0..cols).filter(|&c| !col_used[c]).collect(),
    }
}

/// Assigns every one of `n` rows to a distinct column among `m >= n`, minimising
/// total cost. `cost(i, j)` must be finite. Returns the column of each row.
fn hungarian(n: usize, m: usize, cost: impl Fn(usize, usize) -> f64) -> Vec<usize> {
    debug_assert!(n <= m);
    // 1-based internally; index 0 is the virtual root of each augmenting search.
    let mut u = vec![0.0f64; n + 1];
    let mut v = vec![0.0f64; m + 1];
    let mut col_row = vec![0usize; m + 1];
    let mut way = vec![0usize; m + 1];

    for i in 1..=n {
        col_row[0] = i;
        let mut j0 = 0usize;
        let mut minv = vec![f64::INFINITY; m + 1];
        let mut used = vec![false; m + 1];
        loop {
            used[j0] = true;
            let i0 = col_row[j0];
            let mut delta = f64::INFINITY;
            let mut j1 = 0usize;
            for j in 1..=m {
                if used[j] {
                    continue;
                }
                let cur = cost(i0 - 1, j - 1) - u[i0] - v[j];
                if cur < minv[j] {
                    minv[j] = cur;
                    way[j] = j0;
                }
                if minv[j] < delta {
                    delta = minv[j];
                    j1 = j;
                }
            }
            if j1 == 0 {
                // Unreachable with finite costs and n <= m; bail out rather than loop.
                break;
            }
            for j in 0..=m {
                if used[j] {
                    u[col_row[j]] += delta;
                    v[j] -= delta;
                } else {
                    minv[j] -= delta;
                }
            }
            j0 = j1;
            if col_row[j0] == 0 {
                break;
            }
        }
        // Flip the augmenting path back to the root.
        while j0 != 0 {
            let j1 = way[j0];
            col_row[j0] = col_row[j1];
            j0 = j1;
        }
    }

    let mut row_col = vec![0usize; n];
    for j in 1..=m {
        if col_row[j] != 0 {
            row_col[col_row[j] - 1] = j - 1;
        }
    }
    row_col
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Brute force over all partial matchings, using the same "unmatched pair costs
    /// `limit`" objective.
    fn brute_force(cost: &[f64], rows: usize, cols: usize, limit: f64) -> f64 {
        fn rec(
            r: usize,
            cost: &[f64],
            rows: usize,
            cols: usize,
            limit: f64,
            used: &mut Vec<bool>,
        ) -> f64 {
            if r == rows {
                let free = used.iter().filter(|u| !**u).count();
                return free as f64 * limit / 2.0;
            }
            let mut best = limit / 2.0 + rec(r + 1, cost, rows, cols, limit, used);
            for c in 0..cols {
                let v = cost[r * cols + c];
                if !used[c] && v.is_finite() && v <= limit {
                    used[c] = true;
                    best = best.min(v + rec(r + 1, cost, rows, cols, limit, used));
                    used[c] = false;
                }
            }
            best
        }
        rec(0, cost, rows, cols, limit, &mut vec![false; cols])
    }

    fn objective(a: &Assignment, cost: &[f64], cols: usize, limit: f64) -> f64 {
        let matched: f64 = a.matches.iter().map(|&(r, c)| cost[r * cols + c]).sum();
        matched + (a.unmatched_rows.len() + a.unmatched_cols.len()) as f64 * limit / 2.0
    }

    #[test]
    fn picks_global_optimum_not_greedy() {
        // Greedy would take (0,0)=0.1 and then be forced into (1,1)=0.9.
        let cost = [0.1, 0.2, 0.15, 0.9];
        let a = assign(&cost, 2, 2, 1.0);
        assert_eq!(a.matches, vec![(0, 1), (1, 0)]);
        assert!(a.unmatched_rows.is_empty() && a.unmatched_cols.is_empty());
    }

    #[test]
    fn gates_out_costs_above_limit() {
        let cost = [0.9, 0.1, f64::INFINITY, f64::NAN];
        let a = assign(&cost, 2, 2, 0.8);
        assert_eq!(a.matches, vec![(0, 1)]);
        assert_eq!(a.unmatched_rows, vec![1]);
        assert_eq!(a.unmatched_cols, vec![0]);
    }

    #[test]
    fn empty_and_rectangular() {
        assert_eq!(assign(&[], 0, 3, 0.8).unmatched_cols, vec![0, 1, 2]);
        assert_eq!(assign(&[], 2, 0, 0.8).unmatched_rows, vec![0, 1]);
        let tall = [0.5, 0.1, 0.3];
        let a = assign(&tall, 3, 1, 0.8);
        assert_eq!(a.matches, vec![(1, 0)]);
        assert_eq!(a.unmatched_rows, vec![0, 2]);
    }

    #[test]
    fn matches_brute_force_on_random_matrices() {
        // Small LCG: deterministic and dependency-free.
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            seed = seed
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (seed >> 11) as f64 / (1u64 << 53) as f64
        };
        for _ in 0..300 {
            let rows = 1 + (next() * 5.0) as usize;
            let cols = 1 + (next() * 5.0) as usize;
            let cost: Vec<f64> = (0..rows * cols)
                .map(|_| {
                    let x = next();
                    if x < 0.15 {
                        f64::INFINITY
                    } else {
                        x
                    }
                })
                .collect();
            let limit = 0.7;
            let a = assign(&cost, rows, cols, limit);
            let want = brute_force(&cost, rows, cols, limit);
            let got = objective(&a, &cost, cols, limit);
            assert!((got - want).abs() < 1e-9, "{rows}x{cols}: {got} vs {want}");
            assert_eq!(
                a.matches.len() + a.unmatched_rows.len(),
                rows,
                "every row accounted for"
            );
            assert_eq!(a.matches.len() + a.unmatched_cols.len(), cols);
        }
    }
}
