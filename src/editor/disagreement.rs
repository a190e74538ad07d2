//! Where to look first when an overlay (a model's prediction, a reading) and the mask
//! disagree: the slice holding most of the disagreement. (How many voxels each side alone
//! labels is [`super::changes_between`] of the overlay and the mask.)

use crate::consensus::most_differing;

/// In the slice across `axis` holding the most voxels where the two disagree about `label`
/// (any label when `None`), the disagreeing voxel nearest to their centre; `None` when they
/// agree everywhere.
pub fn largest_disagreement(
    overlay: &[u8],
    mask: &[u8],
    label: Option<u8>,
    dims: [usize; 3],
    axis: usize,
) -> Option<[usize; 3]> {
    let differs = |voxel: usize| match label {
        Some(label) => (overlay[voxel] == label) != (mask[voxel] == label),
        None => overlay[voxel] != mask[voxel],
    };
    most_differing(dims, axis, differs).most_at
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::editor::changes_between;

    #[test]
    fn counts_each_side_and_finds_the_slice_of_most_disagreement() {
        let dims = [3, 3, 3];
        let index = |[i, j, k]: [usize; 3]| i + 3 * (j + 3 * k);
        let mut mask = vec![0u8; 27];
        let mut prediction = vec![0u8; 27];
        // Slice k = 2: the model marks a row of three the person did not; k = 0: the person
        // marks one voxel of label 2 the model missed; k = 1 agrees.
        for i in 0..3 {
            prediction[index([i, 1, 2])] = 1;
        }
        mask[index([0, 0, 0])] = 2;
        mask[index([1, 1, 1])] = 1;
        prediction[index([1, 1, 1])] = 1;
        assert_eq!(
            changes_between(&prediction, &mask),
            (1, 3),
            "one voxel only the person labelled, three only the model"
        );
        assert_eq!(largest_disagreement(&prediction, &mask, None, dims, 2), Some([1, 1, 2]), "the middle of the row");
        assert_eq!(largest_disagreement(&prediction, &mask, Some(2), dims, 2), Some([0, 0, 0]));
        assert_eq!(
            largest_disagreement(&prediction, &mask, Some(1), dims, 0),
            Some([0, 1, 2]),
            "slices across i hold one each: the first"
        );
        assert_eq!(largest_disagreement(&mask, &mask, None, dims, 2), None);
    }
}
