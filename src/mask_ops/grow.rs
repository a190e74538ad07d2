//! Region growing from a click: the voxels 6-connected to a seed whose intensity lies in a
//! range, found breadth first so that a capped region is a compact ball around the seed.

use super::Grid;

/// A grown region.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Grown {
    /// File-order indices, ascending.
    pub voxels: Vec<u32>,
    /// The region reached the cap: more connected voxels lie in the range.
    pub capped: bool,
}

/// Voxels 6-connected to `seed` whose intensity lies in `low..=high`, at most `cap` of them
/// (then `capped` is true). Empty when the seed itself is outside the range or the volume.
/// Generic over the intensity lookup so it is inlined.
pub fn grow_region(
    intensity: impl Fn(usize) -> f32,
    grid: Grid,
    seed: [usize; 3],
    (low, high): (f32, f32),
    cap: usize,
) -> Grown {
    assert!(grid.len() <= u32::MAX as usize, "volume too large for u32 voxel indices");
    let in_range = |voxel: usize| (low..=high).contains(&intensity(voxel));
    if seed.iter().zip(grid.dims).any(|(&at, n)| at >= n) || !in_range(grid.index(seed)) {
        return Grown { voxels: Vec::new(), capped: false };
    }
    if cap == 0 {
        return Grown { voxels: Vec::new(), capped: true };
    }
    let [ni, nj, nk] = grid.dims;
    let slice = ni * nj;
    // Voxels tested so far, in range or not.
    let mut tested = vec![0u64; grid.len().div_ceil(64)];
    let start = grid.index(seed);
    first_test(&mut tested, start);
    // The region in breadth-first order; the voxels after `head` are still to be expanded.
    let mut voxels = vec![start as u32];
    let mut capped = false;
    let mut head = 0;
    'grow: while head < voxels.len() {
        let voxel = voxels[head] as usize;
        head += 1;
        let (i, j, k) = (voxel % ni, (voxel / ni) % nj, voxel / slice);
        // Face neighbours: whether each lies in the volume, and its index if it does.
        let neighbours = [
            (i > 0, voxel.wrapping_sub(1)),
            (i + 1 < ni, voxel + 1),
            (j > 0, voxel.wrapping_sub(ni)),
            (j + 1 < nj, voxel + ni),
            (k > 0, voxel.wrapping_sub(slice)),
            (k + 1 < nk, voxel + slice),
        ];
        for (inside, neighbour) in neighbours {
            if inside && first_test(&mut tested, neighbour) && in_range(neighbour) {
                if voxels.len() == cap {
                    capped = true;
                    // Left out of the region, so not tested as far as the listing below goes.
                    tested[neighbour / 64] &= !(1u64 << (neighbour % 64));
                    break 'grow;
                }
                voxels.push(neighbour as u32);
            }
        }
    }
    // The region is the tested voxels in range; reading them off the bitset lists them in
    // ascending order without a sort.
    voxels.clear();
    for (word_index, &word) in tested.iter().enumerate() {
        let mut bits = word;
        while bits != 0 {
            let voxel = word_index * 64 + bits.trailing_zeros() as usize;
            bits &= bits - 1;
            if in_range(voxel) {
                voxels.push(voxel as u32);
            }
        }
    }
    Grown { voxels, capped }
}

/// Marks `voxel` tested; true when it was not yet. Inlined even where the build optimises for
/// size (the WASM release), as it runs six times per voxel of the region.
#[inline(always)]
fn first_test(tested: &mut [u64], voxel: usize) -> bool {
    let (word, bit) = (&mut tested[voxel / 64], 1u64 << (voxel % 64));
    let first = *word & bit == 0;
    *word |= bit;
    first
}

#[cfg(test)]
mod tests {
    use super::*;

    const GRID: Grid = Grid { dims: [32, 32, 32], spacing: [1.0; 3] };

    /// A bright ball of radius 8 around (15, 16, 17), on a dark background.
    fn sphere() -> Vec<f32> {
        (0..GRID.len())
            .map(|v| {
                let [i, j, k] = GRID.coords(v).map(|c| c as f32);
                if (i - 15.0).powi(2) + (j - 16.0).powi(2) + (k - 17.0).powi(2) <= 64.0 {
                    100.0
                } else {
                    0.0
                }
            })
            .collect()
    }

    #[test]
    fn grows_exactly_the_bright_sphere() {
        let image = sphere();
        let grown = grow_region(|v| image[v], GRID, [17, 14, 20], (50.0, 150.0), usize::MAX);
        let expected: Vec<u32> = (0..GRID.len() as u32).filter(|&v| image[v as usize] == 100.0).collect();
        assert_eq!(grown, Grown { voxels: expected.clone(), capped: false });
        // A cap of exactly the sphere's size is not reached.
        let exact = grow_region(|v| image[v], GRID, [15, 16, 17], (50.0, 150.0), expected.len());
        assert_eq!(exact, Grown { voxels: expected, capped: false });
        // The background is one region too, reaching the volume's edges.
        let outside = grow_region(|v| image[v], GRID, [0, 0, 0], (-1.0, 1.0), usize::MAX);
        assert_eq!(outside.voxels.len(), GRID.len() - exact.voxels.len());
    }

    #[test]
    fn stops_at_the_cap_around_the_seed() {
        let image = sphere();
        let grown = grow_region(|v| image[v], GRID, [15, 16, 17], (50.0, 150.0), 100);
        assert!(grown.capped);
        assert_eq!(grown.voxels.len(), 100);
        assert!(grown.voxels.windows(2).all(|pair| pair[0] < pair[1]));
        // Breadth first: a diamond around the seed, nothing more than 4 steps away.
        for &v in &grown.voxels {
            let [i, j, k] = GRID.coords(v as usize);
            assert!(i.abs_diff(15) + j.abs_diff(16) + k.abs_diff(17) <= 4, "voxel {:?}", [i, j, k]);
        }
    }

    #[test]
    fn seed_outside_the_range_or_volume_grows_nothing() {
        let image = sphere();
        let none = Grown { voxels: Vec::new(), capped: false };
        assert_eq!(grow_region(|v| image[v], GRID, [1, 1, 1], (50.0, 150.0), 1000), none);
        assert_eq!(grow_region(|v| image[v], GRID, [32, 1, 1], (50.0, 150.0), 1000), none);
    }
}
