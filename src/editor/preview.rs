//! A 3-D edit proposed but not applied yet (fill between slices, region growing): drawn in a
//! style of its own so the labeler can check it, then applied as one undoable step or dropped.

/// What made the proposal, so a changed setting can recompute it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum PreviewKind {
    /// Interpolation along a voxel axis.
    FillBetween { axis: usize },
    /// Region growing from a voxel.
    Grow { seed: [usize; 3] },
}

/// The voxels a proposed edit would set to `value`.
pub struct Preview {
    pub kind: PreviewKind,
    pub value: u8,
    /// Region growing stopped at its voxel cap.
    pub capped: bool,
    voxels: Vec<u32>,
    /// One bit per voxel of the volume, so drawing a slice looks voxels up in constant time.
    bits: Vec<u64>,
}

impl Preview {
    pub fn new(kind: PreviewKind, value: u8, voxels: Vec<u32>, volume_len: usize, capped: bool) -> Preview {
        let mut bits = vec![0u64; volume_len.div_ceil(64)];
        for &index in &voxels {
            bits[index as usize / 64] |= 1 << (index % 64);
        }
        Preview { kind, value, capped, voxels, bits }
    }

    #[inline]
    pub fn contains(&self, index: usize) -> bool {
        self.bits[index / 64] & (1 << (index % 64)) != 0
    }

    pub fn voxels(&self) -> &[u32] {
        &self.voxels
    }
}
