//! 3-D operations on a label mask for the editor's tools: island removal, hole filling, fill
//! between slices, region growing and smoothing. Pure `std` code, shared by the browser (WASM)
//! and the server, and tested natively.
//!
//! A mask is one label byte per voxel in file order (i fastest); label 0 is background. The
//! operations return the indices of the voxels to change, ascending, and leave applying them
//! (and undo) to the caller.

pub mod components;
pub mod distance;
pub mod grow;
pub mod interpolate;
pub mod morphology;

/// A volume's shape: voxels along i, j, k (i fastest in memory) and their spacing in mm.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Grid {
    pub dims: [usize; 3],
    pub spacing: [f32; 3],
}

impl Grid {
    /// Number of voxels.
    pub fn len(&self) -> usize {
        self.dims.iter().product()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// File-order index of voxel `[i, j, k]`.
    pub fn index(&self, [i, j, k]: [usize; 3]) -> usize {
        i + self.dims[0] * (j + self.dims[1] * k)
    }

    /// Voxel `[i, j, k]` of a file-order index.
    pub fn coords(&self, index: usize) -> [usize; 3] {
        let [ni, nj, _] = self.dims;
        [index % ni, (index / ni) % nj, index / (ni * nj)]
    }

    /// Volume of one voxel in mm³.
    pub fn voxel_volume_mm3(&self) -> f64 {
        self.spacing.iter().map(|&s| s as f64).product()
    }

    /// Panics unless `mask` fits the grid and every index fits the `u32` the operations return.
    fn check(&self, mask_len: usize) {
        assert_eq!(mask_len, self.len(), "mask length does not match the grid {:?}", self.dims);
        assert!(self.len() <= u32::MAX as usize, "volume too large for u32 voxel indices");
    }
}

/// The half-open box `[from, to)` holding every voxel of `label`; `None` when there is none.
fn label_bounds(mask: &[u8], grid: Grid, label: u8) -> Option<([usize; 3], [usize; 3])> {
    let [ni, nj, nk] = grid.dims;
    let mut from = grid.dims;
    let mut to = [0; 3];
    for k in 0..nk {
        for j in 0..nj {
            let row = &mask[ni * (j + nj * k)..][..ni];
            let Some(first) = row.iter().position(|&v| v == label) else { continue };
            let last = row.iter().rposition(|&v| v == label).expect("the row holds the label");
            from = [from[0].min(first), from[1].min(j), from[2].min(k)];
            to = [to[0].max(last + 1), to[1].max(j + 1), to[2].max(k + 1)];
        }
    }
    (to[0] > 0).then_some((from, to))
}

/// Voxels per label value, label 0 left out.
pub fn label_counts(mask: &[u8]) -> std::collections::BTreeMap<u8, u64> {
    let mut counts = [0u64; 256];
    for &label in mask {
        counts[label as usize] += 1;
    }
    (1..=255u8).filter(|&label| counts[label as usize] > 0).map(|label| (label, counts[label as usize])).collect()
}
