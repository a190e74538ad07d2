//! Connected components of a label (6-connectivity: face neighbours, as ITK's
//! ConnectedComponentImageFilter by default): removing small islands and finding the enclosed
//! holes that filling closes. Components are found over runs along i rather than voxels, so a
//! 512×512×300 mask needs memory in proportion to its runs, not a label per voxel.

use super::{label_bounds, Grid};

/// Which of a label's connected components to remove.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Islands {
    /// Keep only the largest component (the first in file order among equals).
    KeepLargest,
    /// Remove every component of fewer voxels than this.
    RemoveSmallerThan(usize),
}

/// Indices (ascending) of `label` voxels that the rule removes (to be set to 0).
pub fn remove_islands(mask: &[u8], grid: Grid, label: u8, rule: Islands) -> Vec<u32> {
    grid.check(mask.len());
    let components = Components::of(Runs::new(mask, grid, label, true, [0; 3], grid.dims));
    let sizes = components.sizes();
    let removed: Vec<bool> = match rule {
        Islands::KeepLargest => {
            // The first of the largest, roots being their components' first runs.
            let largest = (0..sizes.len()).max_by_key(|&root| (sizes[root], std::cmp::Reverse(root)));
            (0..sizes.len()).map(|root| Some(root) != largest).collect()
        }
        Islands::RemoveSmallerThan(minimum) => sizes.iter().map(|&size| (size as usize) < minimum).collect(),
    };
    components.voxels_where(grid, |root| removed[root])
}

/// Sizes (voxel counts) of the label's connected components, largest first.
pub fn component_sizes(mask: &[u8], grid: Grid, label: u8) -> Vec<usize> {
    grid.check(mask.len());
    let components = Components::of(Runs::new(mask, grid, label, true, [0; 3], grid.dims));
    let mut sizes: Vec<usize> =
        components.sizes().into_iter().filter(|&size| size > 0).map(|size| size as usize).collect();
    sizes.sort_unstable_by(|a, b| b.cmp(a));
    sizes
}

/// Indices (ascending) of voxels that are not `label` and lie in a component of non-label
/// voxels that does not touch the volume's border: the holes that filling sets to `label`.
/// Voxels of other labels count as non-label, so a hole holding them is listed whole.
pub fn enclosed_holes(mask: &[u8], grid: Grid, label: u8) -> Vec<u32> {
    grid.check(mask.len());
    // Every non-label voxel outside the label's box reaches the border through the slab
    // beyond the box, and a component touching a face of the box either touches the border
    // (the face is on it) or that slab. So only components inside the box, clear of its
    // faces, are holes.
    let Some((from, to)) = label_bounds(mask, grid, label) else { return Vec::new() };
    let components = Components::of(Runs::new(mask, grid, label, false, from, to));
    let mut open = vec![false; components.runs.spans.len()];
    let rows = [to[1] - from[1], to[2] - from[2]];
    for (row, [j, k]) in components.runs.rows() {
        let on_face = j == 0 || k == 0 || j + 1 == rows[0] || k + 1 == rows[1];
        for run in components.runs.in_row(row) {
            let (start, end) = components.runs.spans[run];
            if on_face || start as usize == from[0] || end as usize == to[0] {
                open[components.roots[run] as usize] = true;
            }
        }
    }
    components.voxels_where(grid, |root| !open[root])
}

/// The box `[from, to)` of each of the label's connected components.
pub(super) fn component_boxes(mask: &[u8], grid: Grid, label: u8) -> Vec<([usize; 3], [usize; 3])> {
    grid.check(mask.len());
    let components = Components::of(Runs::new(mask, grid, label, true, [0; 3], grid.dims));
    // Boxes in order of their components' roots, which come first in their components. The
    // runs span the whole volume, so box rows are volume rows.
    let mut box_of_root = vec![u32::MAX; components.roots.len()];
    let mut boxes: Vec<([usize; 3], [usize; 3])> = Vec::new();
    for (row, [j, k]) in components.runs.rows() {
        for run in components.runs.in_row(row) {
            let (start, end) = components.runs.spans[run];
            let root = components.roots[run] as usize;
            if box_of_root[root] == u32::MAX {
                box_of_root[root] = boxes.len() as u32;
                boxes.push(([start as usize, j, k], [end as usize, j + 1, k + 1]));
            }
            let (from, to) = &mut boxes[box_of_root[root] as usize];
            *from = [from[0].min(start as usize), from[1].min(j), from[2].min(k)];
            *to = [to[0].max(end as usize), to[1].max(j + 1), to[2].max(k + 1)];
        }
    }
    boxes
}

/// Runs along i of the voxels that are (or, with `is_label` false, are not) `label` inside the
/// box `[from, to)`, row by row in file order.
struct Runs {
    /// `[start, end)` along i of each run, in volume coordinates.
    spans: Vec<(u32, u32)>,
    /// Runs of box row `r` (`r = j' + rows_j·k'` from the box's corner) are
    /// `row_starts[r]..row_starts[r + 1]`.
    row_starts: Vec<u32>,
    from: [usize; 3],
    /// Rows of the box along j.
    rows_j: usize,
}

impl Runs {
    fn new(mask: &[u8], grid: Grid, label: u8, is_label: bool, from: [usize; 3], to: [usize; 3]) -> Self {
        let [ni, nj, _] = grid.dims;
        let mut spans = Vec::new();
        let mut row_starts = vec![0];
        for k in from[2]..to[2] {
            for j in from[1]..to[1] {
                let row = &mask[from[0] + ni * (j + nj * k)..][..to[0] - from[0]];
                // Most rows miss the label entirely; memchr finds that quickly.
                if !row.contains(&label) {
                    if !is_label {
                        spans.push((from[0] as u32, to[0] as u32));
                    }
                } else {
                    let mut i = 0;
                    while let Some(start) = row[i..].iter().position(|&v| (v == label) == is_label).map(|s| i + s) {
                        i = row[start..]
                            .iter()
                            .position(|&v| (v == label) != is_label)
                            .map_or(row.len(), |e| start + e);
                        spans.push(((from[0] + start) as u32, (from[0] + i) as u32));
                    }
                }
                row_starts.push(spans.len() as u32);
            }
        }
        Runs { spans, row_starts, from, rows_j: to[1] - from[1] }
    }

    /// Each box row with its position `[j', k']` from the box's corner.
    fn rows(&self) -> impl Iterator<Item = (usize, [usize; 2])> + '_ {
        (0..self.row_starts.len() - 1).map(|row| (row, [row % self.rows_j, row / self.rows_j]))
    }

    fn in_row(&self, row: usize) -> std::ops::Range<usize> {
        self.row_starts[row] as usize..self.row_starts[row + 1] as usize
    }
}

/// Runs joined into components: each run's root is the first run of its component.
struct Components {
    runs: Runs,
    roots: Vec<u32>,
}

impl Components {
    fn of(runs: Runs) -> Self {
        let mut parent: Vec<u32> = (0..runs.spans.len() as u32).collect();
        for (row, [j, k]) in runs.rows() {
            // Face neighbours lie in the previous row of this slice and the same row of the
            // previous slice.
            let previous = [(j > 0).then(|| row - 1), (k > 0).then(|| row - runs.rows_j)];
            for other in previous.into_iter().flatten() {
                join_overlapping(&runs, runs.in_row(row), runs.in_row(other), &mut parent);
            }
        }
        let roots = (0..parent.len()).map(|run| find(&mut parent, run as u32)).collect();
        Components { runs, roots }
    }

    /// Voxel count per root (zero for runs that are not roots).
    fn sizes(&self) -> Vec<u64> {
        let mut sizes = vec![0u64; self.roots.len()];
        for (&(start, end), &root) in self.runs.spans.iter().zip(&self.roots) {
            sizes[root as usize] += (end - start) as u64;
        }
        sizes
    }

    /// Indices (ascending) of the voxels of the components whose root `pick` accepts.
    fn voxels_where(&self, grid: Grid, pick: impl Fn(usize) -> bool) -> Vec<u32> {
        let mut voxels = Vec::new();
        for (row, [j, k]) in self.runs.rows() {
            let row_start = grid.index([0, self.runs.from[1] + j, self.runs.from[2] + k]) as u32;
            for run in self.runs.in_row(row) {
                if pick(self.roots[run] as usize) {
                    let (start, end) = self.runs.spans[run];
                    voxels.extend(row_start + start..row_start + end);
                }
            }
        }
        voxels
    }
}

/// Unites every run in `current` with each run in `previous` that it overlaps along i (both
/// ranges hold runs in ascending order).
fn join_overlapping(
    runs: &Runs,
    current: std::ops::Range<usize>,
    previous: std::ops::Range<usize>,
    parent: &mut [u32],
) {
    let (mut a, mut b) = (current.start, previous.start);
    while a < current.end && b < previous.end {
        let (a_span, b_span) = (runs.spans[a], runs.spans[b]);
        if a_span.0 < b_span.1 && b_span.0 < a_span.1 {
            union(parent, a as u32, b as u32);
        }
        if a_span.1 < b_span.1 {
            a += 1;
        } else {
            b += 1;
        }
    }
}

/// The root of `run`, halving the path on the way.
fn find(parent: &mut [u32], mut run: u32) -> u32 {
    while parent[run as usize] != run {
        let grandparent = parent[parent[run as usize] as usize];
        parent[run as usize] = grandparent;
        run = grandparent;
    }
    run
}

/// Joins two runs' components under the smaller root, so a root is its component's first run.
fn union(parent: &mut [u32], a: u32, b: u32) {
    let (a, b) = (find(parent, a), find(parent, b));
    if a != b {
        parent[a.max(b) as usize] = a.min(b);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GRID: Grid = Grid { dims: [12, 10, 8], spacing: [1.0; 3] };

    /// Sets the box `[from, to)` to `value`.
    fn paint(mask: &mut [u8], from: [usize; 3], to: [usize; 3], value: u8) {
        for k in from[2]..to[2] {
            for j in from[1]..to[1] {
                for i in from[0]..to[0] {
                    mask[GRID.index([i, j, k])] = value;
                }
            }
        }
    }

    fn indices(from: [usize; 3], to: [usize; 3]) -> Vec<u32> {
        let mut box_mask = vec![0; GRID.len()];
        paint(&mut box_mask, from, to, 1);
        (0..GRID.len() as u32).filter(|&v| box_mask[v as usize] == 1).collect()
    }

    #[test]
    fn keep_largest_removes_the_smaller_islands() {
        let mut mask = vec![0; GRID.len()];
        paint(&mut mask, [1, 1, 1], [7, 7, 6], 1);
        paint(&mut mask, [9, 0, 0], [11, 2, 1], 1);
        paint(&mut mask, [10, 8, 6], [11, 9, 8], 1);
        // Another label beside the big block neither joins nor counts.
        paint(&mut mask, [7, 1, 1], [8, 3, 2], 2);
        let mut expected = indices([9, 0, 0], [11, 2, 1]);
        expected.extend(indices([10, 8, 6], [11, 9, 8]));
        expected.sort_unstable();
        assert_eq!(remove_islands(&mask, GRID, 1, Islands::KeepLargest), expected);
        assert_eq!(component_sizes(&mask, GRID, 1), [180, 4, 2]);
        assert_eq!(remove_islands(&mask, GRID, 3, Islands::KeepLargest), [] as [u32; 0]);
    }

    #[test]
    fn remove_smaller_than_keeps_components_of_at_least_the_size() {
        let mut mask = vec![0; GRID.len()];
        paint(&mut mask, [1, 1, 1], [7, 7, 6], 1);
        paint(&mut mask, [9, 0, 0], [11, 2, 1], 1);
        paint(&mut mask, [10, 8, 6], [11, 9, 8], 1);
        assert_eq!(remove_islands(&mask, GRID, 1, Islands::RemoveSmallerThan(4)), indices([10, 8, 6], [11, 9, 8]));
        assert_eq!(remove_islands(&mask, GRID, 1, Islands::RemoveSmallerThan(2)), [] as [u32; 0]);
        assert_eq!(remove_islands(&mask, GRID, 1, Islands::RemoveSmallerThan(181)).len(), 186);
    }

    #[test]
    fn diagonal_contact_is_two_components() {
        let mut mask = vec![0; GRID.len()];
        paint(&mut mask, [2, 2, 2], [3, 3, 3], 1);
        paint(&mut mask, [3, 3, 2], [4, 4, 3], 1);
        paint(&mut mask, [5, 5, 5], [6, 6, 6], 1);
        paint(&mut mask, [6, 5, 6], [7, 6, 7], 1);
        assert_eq!(component_sizes(&mask, GRID, 1), [1, 1, 1, 1]);
        // Face contact along each axis joins.
        paint(&mut mask, [3, 2, 2], [4, 3, 3], 1);
        paint(&mut mask, [5, 5, 6], [6, 6, 7], 1);
        assert_eq!(component_sizes(&mask, GRID, 1), [3, 3]);
    }

    #[test]
    fn enclosed_holes_finds_a_closed_cavity_only() {
        let mut mask = vec![0; GRID.len()];
        // A hollow cube with a two-voxel cavity, and beside it a hollow cube open at the top.
        paint(&mut mask, [1, 1, 1], [5, 5, 6], 1);
        paint(&mut mask, [2, 2, 2], [3, 4, 3], 0);
        paint(&mut mask, [6, 1, 1], [11, 6, 6], 1);
        paint(&mut mask, [7, 2, 2], [10, 5, 6], 0);
        assert_eq!(enclosed_holes(&mask, GRID, 1), indices([2, 2, 2], [3, 4, 3]));
        // A cavity holding another label's voxels is listed whole; the caller decides.
        mask[GRID.index([2, 3, 2])] = 2;
        assert_eq!(enclosed_holes(&mask, GRID, 1), indices([2, 2, 2], [3, 4, 3]));
        assert_eq!(enclosed_holes(&mask, GRID, 3), [] as [u32; 0]);
    }

    #[test]
    fn enclosed_holes_of_a_label_filling_the_volume_edge() {
        // The shell fills the whole volume: its box is the volume, and the cavity is a hole.
        let mut mask = vec![1; GRID.len()];
        paint(&mut mask, [3, 3, 3], [5, 6, 4], 0);
        assert_eq!(enclosed_holes(&mask, GRID, 1), indices([3, 3, 3], [5, 6, 4]));
        // Opened to the border through the slab k = 0, it is not.
        paint(&mut mask, [3, 3, 0], [4, 4, 3], 0);
        assert_eq!(enclosed_holes(&mask, GRID, 1), [] as [u32; 0]);
    }
}
