//! The saved version an editor's changes are measured against (what a save sends), kept only
//! where it may differ from the mask being edited: a copy of each block of voxels an edit has
//! touched since. Elsewhere it equals the mask, so a volume costs one mask in memory, not two,
//! and finding the unsaved edits reads only the touched blocks.

use super::tools::Delta;
use crate::edits::MaskEdits;

/// Voxels per block: a brush stroke copies one or two.
const BLOCK: usize = 1 << 18;

pub struct SavedBase {
    blocks: Vec<Option<Box<[u8]>>>,
}

impl SavedBase {
    /// A base equal to the mask of `len` voxels.
    pub fn same_as_mask(len: usize) -> SavedBase {
        SavedBase { blocks: vec![None; len.div_ceil(BLOCK)] }
    }

    /// `base` as the base of a mask that is `base` with `edits` applied.
    pub fn with_edits(base: &[u8], edits: &MaskEdits) -> SavedBase {
        let mut saved = SavedBase::same_as_mask(base.len());
        saved.keep_runs(base, edits);
        saved
    }

    fn range(&self, block: usize, len: usize) -> std::ops::Range<usize> {
        block * BLOCK..((block + 1) * BLOCK).min(len)
    }

    /// Before `mask` changes where `edits` set voxels: keeps a copy of each block they touch.
    pub fn keep_runs(&mut self, mask: &[u8], edits: &MaskEdits) {
        for run in edits.runs() {
            let (first, last) = (run.start as usize / BLOCK, (run.start + run.len - 1) as usize / BLOCK);
            (first..=last).for_each(|block| self.keep_block(mask, block));
        }
    }

    /// Before `mask` changes as `delta` says (an undo or redo): keeps a copy of each block
    /// it touches.
    pub fn keep_for(&mut self, mask: &[u8], delta: &Delta) {
        for &(index, _, _) in delta.changes() {
            self.keep_block(mask, index as usize / BLOCK);
        }
    }

    fn keep_block(&mut self, mask: &[u8], block: usize) {
        if self.blocks[block].is_none() {
            self.blocks[block] = Some(mask[self.range(block, mask.len())].into());
        }
    }

    /// After `delta` changed `mask` (a new edit): keeps a copy, as it was before, of each block
    /// it was the first to touch.
    pub fn keep_before(&mut self, mask: &[u8], delta: &Delta) {
        let mut fresh = vec![false; self.blocks.len()];
        for &(index, _, _) in delta.changes() {
            let block = index as usize / BLOCK;
            if self.blocks[block].is_none() {
                self.keep_block(mask, block);
                fresh[block] = true;
            }
        }
        // Oldest value last, for a voxel the edit changed more than once.
        for &(index, old, _) in delta.changes().iter().rev() {
            let block = index as usize / BLOCK;
            if fresh[block] {
                self.blocks[block].as_mut().expect("just kept")[index as usize - block * BLOCK] = old;
            }
        }
    }

    /// Where `mask` differs from the base.
    pub fn edits(&self, mask: &[u8]) -> MaskEdits {
        let parts = self
            .blocks
            .iter()
            .enumerate()
            .filter_map(|(block, copy)| copy.as_deref().map(|copy| (block * BLOCK, copy)));
        MaskEdits::diff_parts(parts, mask)
    }

    /// `saved` became part of the base; blocks that now equal the mask are let go.
    pub fn apply(&mut self, mask: &[u8], saved: &MaskEdits) {
        self.keep_runs(mask, saved);
        for run in saved.runs() {
            let (mut start, end) = (run.start as usize, (run.start + run.len) as usize);
            while start < end {
                let block = start / BLOCK;
                let stop = end.min((block + 1) * BLOCK);
                self.blocks[block].as_mut().expect("kept")[start - block * BLOCK..stop - block * BLOCK].fill(run.value);
                start = stop;
            }
        }
        for block in 0..self.blocks.len() {
            let range = self.range(block, mask.len());
            if self.blocks[block].as_deref().is_some_and(|copy| *copy == mask[range]) {
                self.blocks[block] = None;
            }
        }
    }

    /// Bytes held by block copies.
    #[cfg(test)]
    fn kept_bytes(&self) -> usize {
        self.blocks.iter().flatten().map(|copy| copy.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::editor::tools::{EditableArea, History};

    /// Edits, undos, redos and saves in a pseudo-random order, across block borders: the
    /// sparse base always finds what a whole copy of the base finds.
    #[test]
    fn the_sparse_base_finds_the_same_edits_as_a_whole_copy() {
        let len = BLOCK * 3 + 12_345;
        let mut mask = vec![0u8; len];
        mask[BLOCK - 10..BLOCK + 10].fill(3);
        let mut whole_base = mask.clone();
        let mut base = SavedBase::same_as_mask(len);
        let mut history = History::default();
        let mut seed = 7u64;
        let mut next = |n: usize| {
            seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            (seed >> 33) as usize % n
        };
        for step in 0..300 {
            match next(10) {
                0..=5 => {
                    let start = next(len - 3000);
                    let indices: Vec<u32> =
                        (0..next(3000)).map(|n| (start + n * next(3).max(1)).min(len - 1) as u32).collect();
                    let delta = Delta::set_all(&mut mask, &indices, next(4) as u8, EditableArea::Everywhere);
                    base.keep_before(&mask, &delta);
                    history.push(delta);
                }
                6 => {
                    if let Some(delta) = history.next_undo() {
                        base.keep_for(&mask, delta);
                    }
                    history.undo(&mut mask);
                }
                7 => {
                    if let Some(delta) = history.next_redo() {
                        base.keep_for(&mask, delta);
                    }
                    history.redo(&mut mask);
                }
                _ => {
                    let saved = MaskEdits::diff(&whole_base, &mask);
                    saved.apply(&mut whole_base);
                    base.apply(&mask, &saved);
                    assert_eq!(base.kept_bytes(), 0, "step {step}: everything saved, nothing kept");
                }
            }
            assert_eq!(base.edits(&mask), MaskEdits::diff(&whole_base, &mask), "step {step}");
        }
    }

    #[test]
    fn a_rebased_base_keeps_only_the_blocks_the_edits_touch() {
        let base_labels = vec![1u8; BLOCK * 4];
        let mut mask = base_labels.clone();
        mask[BLOCK * 2 + 5..BLOCK * 2 + 9].fill(2);
        let edits = MaskEdits::diff(&base_labels, &mask);
        let base = SavedBase::with_edits(&base_labels, &edits);
        assert_eq!(base.kept_bytes(), BLOCK);
        assert_eq!(base.edits(&mask), edits);
    }
}
