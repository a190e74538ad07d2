//! Smoothing a label by morphological opening (removes spurs and thin bridges) and closing
//! (fills gaps and dents) with a ball of a radius in mm, so anisotropic spacing is respected.
//! Dilation and erosion come from a distance transform on boxes around the label, so the cost
//! does not grow with the radius.

use super::components::component_boxes;
use super::distance::BallDilation;
use super::Grid;

/// Indices (ascending) of `label` voxels that opening removes (to set to 0). Outside the
/// volume counts as background, so opening also rounds a label off where it meets the edge.
pub fn opening(mask: &[u8], grid: Grid, label: u8, radius_mm: f32) -> Vec<u32> {
    grid.check(mask.len());
    if radius_mm.is_nan() || radius_mm <= 0.0 {
        return Vec::new();
    }
    let mut dilation = BallDilation::new(grid.spacing, radius_mm);
    // Opening stays inside the label, and one voxel of margin gives every label voxel its
    // nearest background voxel inside the window.
    let mut removed = Vec::new();
    for window in Window::around_components(mask, grid, label, [1; 3]) {
        let is_label = window.extract(mask, grid, label);
        let mut kept: Vec<bool> = is_label.iter().map(|&l| !l).collect();
        dilation.dilate(&mut kept, window.dims);
        // Eroded: farther than the radius from any background voxel.
        kept.iter_mut().for_each(|near_background| *near_background = !*near_background);
        dilation.dilate(&mut kept, window.dims);
        removed.extend(window.voxels_where(grid, |w| is_label[w] && !kept[w]));
    }
    removed.sort_unstable();
    removed
}

/// Indices (ascending) of non-`label` voxels that closing adds (to set to `label`). The volume
/// is taken to continue beyond its edge as ordinary background ("safe border"), so a label
/// touching the edge is closed there as anywhere else.
pub fn closing(mask: &[u8], grid: Grid, label: u8, radius_mm: f32) -> Vec<u32> {
    grid.check(mask.len());
    if radius_mm.is_nan() || radius_mm <= 0.0 {
        return Vec::new();
    }
    let mut dilation = BallDilation::new(grid.spacing, radius_mm);
    // The dilation reaches `radius / spacing` voxels beyond the label; one more voxel of
    // margin gives every dilated voxel its nearest undilated one inside the window.
    let margin = [0, 1, 2].map(|a| (radius_mm / grid.spacing[a]) as usize + 1);
    let mut added = Vec::new();
    for window in Window::around_components(mask, grid, label, margin) {
        let is_label = window.extract(mask, grid, label);
        let mut outside_closed = is_label.clone();
        dilation.dilate(&mut outside_closed, window.dims);
        outside_closed.iter_mut().for_each(|dilated| *dilated = !*dilated);
        // Eroding the dilation: closed unless within the radius of an undilated voxel.
        dilation.dilate(&mut outside_closed, window.dims);
        added.extend(window.voxels_where(grid, |w| !is_label[w] && !outside_closed[w]));
    }
    added.sort_unstable();
    added
}

/// Beyond this many components, one window around them all: merging windows pairwise would
/// cost more than it saves.
const MAX_WINDOWS: usize = 512;

/// A box of voxels around a label, which may reach outside the volume.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Window {
    /// Volume coordinates of the window's first voxel.
    origin: [isize; 3],
    dims: [usize; 3],
}

impl Window {
    /// Windows around the label's connected components, `margin` voxels wider than their boxes
    /// on every side, merged until no two overlap. Components in separate windows do not
    /// interact: their dilations by the ball are not even adjacent, and a ball (connected)
    /// fits in one or the other. So a stray island far from an organ costs a small window of
    /// its own, not a box spanning both.
    fn around_components(mask: &[u8], grid: Grid, label: u8, margin: [usize; 3]) -> Vec<Window> {
        let boxes = component_boxes(mask, grid, label);
        let mut windows: Vec<Window> = if boxes.len() > MAX_WINDOWS {
            let from = [0, 1, 2].map(|a| boxes.iter().map(|(from, _)| from[a]).min().expect("more than one box"));
            let to = [0, 1, 2].map(|a| boxes.iter().map(|(_, to)| to[a]).max().expect("more than one box"));
            vec![Window::around((from, to), margin)]
        } else {
            boxes.into_iter().map(|bounds| Window::around(bounds, margin)).collect()
        };
        let mut merged = true;
        while merged {
            merged = false;
            let mut first = 0;
            while first < windows.len() {
                let mut second = first + 1;
                while second < windows.len() {
                    if windows[first].overlaps(&windows[second]) {
                        let other = windows.swap_remove(second);
                        windows[first] = windows[first].union(&other);
                        merged = true;
                    } else {
                        second += 1;
                    }
                }
                first += 1;
            }
        }
        windows
    }

    /// The box `[from, to)` grown by `margin` voxels on each side.
    fn around((from, to): ([usize; 3], [usize; 3]), margin: [usize; 3]) -> Self {
        Window {
            origin: [0, 1, 2].map(|a| from[a] as isize - margin[a] as isize),
            dims: [0, 1, 2].map(|a| to[a] - from[a] + 2 * margin[a]),
        }
    }

    fn end(&self, axis: usize) -> isize {
        self.origin[axis] + self.dims[axis] as isize
    }

    fn overlaps(&self, other: &Window) -> bool {
        (0..3).all(|a| self.origin[a] < other.end(a) && other.origin[a] < self.end(a))
    }

    /// The smallest window holding both.
    fn union(&self, other: &Window) -> Window {
        let origin = [0, 1, 2].map(|a| self.origin[a].min(other.origin[a]));
        Window { origin, dims: [0, 1, 2].map(|a| (self.end(a).max(other.end(a)) - origin[a]) as usize) }
    }

    /// For each window row inside the volume: its offset in the window, the volume index of
    /// its first in-volume voxel, and that voxel's offset in the row and the in-volume length.
    fn rows_in(&self, grid: Grid) -> impl Iterator<Item = (usize, usize, usize, usize)> + '_ {
        let [ni, nj, nk] = grid.dims.map(|n| n as isize);
        let [wi, wj, wk] = self.dims;
        let [oi, oj, ok] = self.origin;
        let (first_i, end_i) = (oi.max(0), (oi + wi as isize).min(ni));
        (0..wk).flat_map(move |k| (0..wj).map(move |j| (j, k))).filter_map(move |(j, k)| {
            let (vj, vk) = (oj + j as isize, ok + k as isize);
            (vj >= 0 && vj < nj && vk >= 0 && vk < nk && first_i < end_i).then(|| {
                let row = wi * (j + wj * k);
                (row, (first_i + ni * (vj + nj * vk)) as usize, (first_i - oi) as usize, (end_i - first_i) as usize)
            })
        })
    }

    /// Which window voxels hold `label`; none outside the volume.
    fn extract(&self, mask: &[u8], grid: Grid, label: u8) -> Vec<bool> {
        let mut is_label = vec![false; self.dims.iter().product()];
        for (row, voxel, offset, length) in self.rows_in(grid) {
            for (out, &value) in is_label[row + offset..][..length].iter_mut().zip(&mask[voxel..voxel + length]) {
                *out = value == label;
            }
        }
        is_label
    }

    /// Volume indices (ascending) of the in-volume window voxels that `pick` accepts.
    fn voxels_where(&self, grid: Grid, pick: impl Fn(usize) -> bool) -> Vec<u32> {
        let mut voxels = Vec::new();
        for (row, voxel, offset, length) in self.rows_in(grid) {
            voxels.extend((0..length).filter(|&i| pick(row + offset + i)).map(|i| (voxel + i) as u32));
        }
        voxels
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paint(mask: &mut [u8], grid: Grid, from: [usize; 3], to: [usize; 3], value: u8) {
        for k in from[2]..to[2] {
            for j in from[1]..to[1] {
                for i in from[0]..to[0] {
                    mask[grid.index([i, j, k])] = value;
                }
            }
        }
    }

    fn indices(grid: Grid, from: [usize; 3], to: [usize; 3]) -> Vec<u32> {
        let mut box_mask = vec![0; grid.len()];
        paint(&mut box_mask, grid, from, to, 1);
        (0..grid.len() as u32).filter(|&v| box_mask[v as usize] == 1).collect()
    }

    /// Whether every voxel of `added` lies in the box `[from, to)`.
    fn all_in(added: &[u32], grid: Grid, from: [usize; 3], to: [usize; 3]) -> bool {
        added.iter().all(|&v| (0..3).all(|a| (from[a]..to[a]).contains(&grid.coords(v as usize)[a])))
    }

    #[test]
    fn closing_fills_a_one_voxel_gap() {
        let grid = Grid { dims: [16, 12, 12], spacing: [1.0; 3] };
        let mut mask = vec![0; grid.len()];
        paint(&mut mask, grid, [2, 2, 2], [6, 10, 10], 1);
        paint(&mut mask, grid, [7, 2, 2], [11, 10, 10], 1);
        let added = closing(&mask, grid, 1, 2.0);
        // The gap's face, short of its rim (where the ball pokes out of the dilation).
        let inner = indices(grid, [6, 4, 4], [7, 8, 8]);
        assert!(inner.iter().all(|v| added.contains(v)), "{added:?}");
        assert!(all_in(&added, grid, [6, 2, 2], [7, 10, 10]));
        assert!(closing(&mask, grid, 1, 0.0).is_empty() && closing(&mask, grid, 2, 2.0).is_empty());
    }

    #[test]
    fn closing_at_the_volume_edge_works_as_inside() {
        // Two blocks with a gap, on the k = 0 face and, for comparison, well inside a taller
        // volume: beyond the edge is background, so both close alike.
        let at_edge = Grid { dims: [16, 12, 8], spacing: [1.0; 3] };
        let inside = Grid { dims: [16, 12, 14], spacing: [1.0; 3] };
        let (mut edge_mask, mut inside_mask) = (vec![0; at_edge.len()], vec![0; inside.len()]);
        for (from, to) in [([2, 2, 0], [6, 10, 5]), ([7, 2, 0], [11, 10, 5])] {
            paint(&mut edge_mask, at_edge, from, to, 1);
            paint(&mut inside_mask, inside, [from[0], from[1], from[2] + 5], [to[0], to[1], to[2] + 5], 1);
        }
        let added = closing(&edge_mask, at_edge, 1, 2.0);
        let shifted: Vec<u32> = closing(&inside_mask, inside, 1, 2.0)
            .iter()
            .map(|&v| inside.coords(v as usize))
            .filter(|ijk| ijk[2] >= 5)
            .map(|[i, j, k]| at_edge.index([i, j, k - 5]) as u32)
            .collect();
        assert!(!added.is_empty() && all_in(&added, at_edge, [6, 2, 0], [7, 10, 5]));
        assert_eq!(added, shifted);
        // A label filling the whole volume has nothing to add.
        assert!(closing(&vec![1; at_edge.len()], at_edge, 1, 3.0).is_empty());
    }

    #[test]
    fn opening_removes_a_thin_spur_and_keeps_the_block() {
        let grid = Grid { dims: [16, 12, 12], spacing: [1.0; 3] };
        let mut mask = vec![0; grid.len()];
        paint(&mut mask, grid, [2, 2, 2], [8, 8, 8], 1);
        paint(&mut mask, grid, [8, 5, 5], [14, 6, 6], 1);
        // A ball of radius 1.5 fits everywhere in the block but its eight corners.
        let mut expected = indices(grid, [8, 5, 5], [14, 6, 6]);
        for corner in 0..8 {
            expected.push(grid.index([0, 1, 2].map(|a| if corner >> a & 1 == 0 { 2 } else { 7 })) as u32);
        }
        expected.sort_unstable();
        assert_eq!(opening(&mask, grid, 1, 1.5), expected);
        assert!(opening(&mask, grid, 1, 0.0).is_empty());
    }

    #[test]
    fn radius_is_in_mm() {
        // 2.5 mm slices: a one-slice gap needs a ball wider than 2.5 mm to close.
        let grid = Grid { dims: [24, 24, 9], spacing: [0.7, 0.7, 2.5] };
        let mut mask = vec![0; grid.len()];
        paint(&mut mask, grid, [4, 4, 1], [20, 20, 4], 1);
        paint(&mut mask, grid, [4, 4, 5], [20, 20, 8], 1);
        assert!(closing(&mask, grid, 1, 2.0).is_empty());
        let added = closing(&mask, grid, 1, 3.0);
        assert!(indices(grid, [8, 8, 4], [16, 16, 5]).iter().all(|v| added.contains(v)));
        assert!(all_in(&added, grid, [4, 4, 4], [20, 20, 5]));
        // Two 0.7 mm voxels thick along i: a 1 mm ball does not fit, a 0.5 mm one does.
        let mut slab = vec![0; grid.len()];
        paint(&mut slab, grid, [10, 2, 2], [12, 22, 7], 1);
        assert_eq!(opening(&slab, grid, 1, 1.0).len(), 2 * 20 * 5);
        assert!(opening(&slab, grid, 1, 0.5).is_empty());
    }

    /// Opening and closing by definition, one ball at a time, with the volume continued by
    /// `pad` voxels of background on every side.
    fn brute_force(mask: &[u8], grid: Grid, radius: f32, pad: usize) -> (Vec<u32>, Vec<u32>) {
        let reach = [0, 1, 2].map(|a| (radius / grid.spacing[a]) as isize);
        let mut ball = Vec::new();
        for dk in -reach[2]..=reach[2] {
            for dj in -reach[1]..=reach[1] {
                for di in -reach[0]..=reach[0] {
                    let [x, y, z] =
                        [di as f32 * grid.spacing[0], dj as f32 * grid.spacing[1], dk as f32 * grid.spacing[2]];
                    if x * x + y * y + z * z <= radius * radius * (1.0 + 1e-5) {
                        ball.push([di, dj, dk]);
                    }
                }
            }
        }
        // The padded volume, and the in-volume voxel of each of its voxels.
        let padded = Grid { dims: grid.dims.map(|n| n + 2 * pad), spacing: grid.spacing };
        let in_volume = |p: usize| {
            let at = padded.coords(p).map(|c| c as isize - pad as isize);
            (0..3).all(|a| at[a] >= 0 && at[a] < grid.dims[a] as isize).then(|| grid.index(at.map(|c| c as usize)))
        };
        let is_label: Vec<bool> = (0..padded.len()).map(|p| in_volume(p).is_some_and(|v| mask[v] == 1)).collect();
        let ball_around = |p: usize| {
            let at = padded.coords(p).map(|c| c as isize);
            ball.iter().filter_map(move |d| {
                let q = [at[0] + d[0], at[1] + d[1], at[2] + d[2]];
                (0..3).all(|a| q[a] >= 0 && q[a] < padded.dims[a] as isize).then(|| padded.index(q.map(|c| c as usize)))
            })
        };
        let full_ball = |p: usize| ball_around(p).count() == ball.len();
        let dilated: Vec<bool> = (0..padded.len()).map(|p| ball_around(p).any(|q| is_label[q])).collect();
        let eroded: Vec<bool> =
            (0..padded.len()).map(|p| full_ball(p) && ball_around(p).all(|q| is_label[q])).collect();
        let mut removed = Vec::new();
        let mut added = Vec::new();
        for (p, &label) in is_label.iter().enumerate() {
            let Some(v) = in_volume(p) else { continue };
            if label && !ball_around(p).any(|q| eroded[q]) {
                removed.push(v as u32);
            }
            if !label && full_ball(p) && ball_around(p).all(|q| dilated[q]) {
                added.push(v as u32);
            }
        }
        removed.sort_unstable();
        added.sort_unstable();
        (removed, added)
    }

    #[test]
    fn matches_opening_and_closing_by_definition() {
        let grid = Grid { dims: [30, 9, 7], spacing: [0.7, 1.0, 1.5] };
        // Lumpy blobs, one touching the volume's edges and one far from it, with dents and
        // stray voxels.
        let mask: Vec<u8> = (0..grid.len())
            .map(|v| {
                let [i, j, k] = grid.coords(v).map(|c| c as f32);
                let lump = |ci: f32| (i - ci).powi(2) / 16.0 + (j - 4.0).powi(2) / 9.0 + (k - 3.0).powi(2) / 4.0 <= 1.0;
                u8::from(((lump(5.0) || lump(23.0)) && v % 7 != 0) || v % 151 == 0)
            })
            .collect();
        for radius in [1.0, 1.6, 2.2] {
            if radius < 2.0 {
                // The blobs close in windows of their own.
                let margin = [0, 1, 2].map(|a| (radius / grid.spacing[a]) as usize + 1);
                assert!(Window::around_components(&mask, grid, 1, margin).len() > 1);
            }
            let (removed, added) = brute_force(&mask, grid, radius, 4);
            assert_eq!(opening(&mask, grid, 1, radius), removed, "opening, radius {radius}");
            assert_eq!(closing(&mask, grid, 1, radius), added, "closing, radius {radius}");
        }
    }

    #[test]
    fn far_apart_components_get_windows_of_their_own() {
        let grid = Grid { dims: [40, 10, 10], spacing: [1.0; 3] };
        let mut mask = vec![0; grid.len()];
        paint(&mut mask, grid, [2, 2, 2], [6, 6, 6], 1);
        paint(&mut mask, grid, [8, 2, 2], [10, 6, 6], 1);
        paint(&mut mask, grid, [30, 3, 3], [33, 5, 5], 1);
        // Margins of 1 keep the first two apart (gap of 2); margins of 2 merge them.
        assert_eq!(Window::around_components(&mask, grid, 1, [1; 3]).len(), 3);
        let merged = Window::around_components(&mask, grid, 1, [2; 3]);
        assert_eq!(
            merged,
            [Window { origin: [0, 0, 0], dims: [12, 8, 8] }, Window { origin: [28, 1, 1], dims: [7, 6, 6] }]
        );
    }
}
