//! Volume geometry, shared by the editor and the server (which names a model input's axes
//! with it): which voxels a displayed slice shows, and where; the three anatomical planes laid
//! out in the radiological convention (patient's right on the screen's left, anterior or superior
//! at the top), whatever order and direction the file stores its axes in.
//!
//! Each voxel axis is matched to the world (RAS+) axis its direction is closest to, as
//! ITK-SNAP does for display, so a flipped or oblique affine still shows the right way up.

use serde::{Deserialize, Serialize};

/// A displayed anatomical plane.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Plane {
    Axial,
    Coronal,
    Sagittal,
}

impl Plane {
    pub const ALL: [Plane; 3] = [Plane::Axial, Plane::Coronal, Plane::Sagittal];

    /// Position in [`Plane::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }

    pub fn name(self) -> &'static str {
        match self {
            Plane::Axial => "Axial",
            Plane::Coronal => "Coronal",
            Plane::Sagittal => "Sagittal",
        }
    }

    /// World axes (0 = x/right, 1 = y/anterior, 2 = z/superior) shown across the screen
    /// (left to right), down the screen (top to bottom), and through the slice.
    /// Moving right or down on the screen always goes towards the world axis's negative end.
    fn world_axes(self) -> [usize; 3] {
        match self {
            Plane::Axial => [0, 1, 2],
            Plane::Coronal => [0, 2, 1],
            Plane::Sagittal => [1, 2, 0],
        }
    }
}

/// For each world axis, the voxel axis closest to it and whether voxel indices increase
/// towards the world axis's positive end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Orientation {
    voxel_axis_of_world: [(usize, bool); 3],
}

impl Orientation {
    /// From a voxel-to-world affine (3×4, rows x, y, z).
    pub fn from_affine(affine: &[[f64; 4]; 3]) -> Orientation {
        // Greedy: take the largest |component| first, so every voxel axis gets a distinct world axis.
        let mut pairs: Vec<(f64, usize, usize)> = (0..3)
            .flat_map(|voxel| (0..3).map(move |world| (voxel, world)))
            .map(|(voxel, world)| (affine[world][voxel].abs(), voxel, world))
            .collect();
        pairs.sort_by(|a, b| b.0.total_cmp(&a.0));
        let mut voxel_axis_of_world = [(usize::MAX, true); 3];
        let mut voxel_taken = [false; 3];
        for (_, voxel, world) in pairs {
            if voxel_taken[voxel] || voxel_axis_of_world[world].0 != usize::MAX {
                continue;
            }
            voxel_taken[voxel] = true;
            voxel_axis_of_world[world] = (voxel, affine[world][voxel] >= 0.0);
        }
        Orientation { voxel_axis_of_world }
    }

    /// Closest anatomical direction letters of the voxel axes, e.g. `RAS` or `LPS`.
    pub fn axis_codes(&self) -> String {
        let mut codes = [' '; 3];
        for (world, &(voxel, positive)) in self.voxel_axis_of_world.iter().enumerate() {
            let (plus, minus) = [('R', 'L'), ('A', 'P'), ('S', 'I')][world];
            codes[voxel] = if positive { plus } else { minus };
        }
        codes.iter().collect()
    }

    /// The layout of `plane` for a volume of `dims` voxels with `spacing` mm.
    pub fn slice_geometry(&self, plane: Plane, dims: [usize; 3], spacing: [f32; 3]) -> SliceGeometry {
        let [across, down, through] = plane.world_axes().map(|world| self.voxel_axis_of_world[world]);
        // Screen right/down go towards the world's negative end, so against a positive axis.
        let screen_axis = |(axis, positive): (usize, bool)| ScreenAxis { axis, reversed: positive };
        SliceGeometry {
            dims,
            width: dims[across.0],
            height: dims[down.0],
            across: screen_axis(across),
            down: screen_axis(down),
            through: through.0,
            pixel_aspect: spacing[down.0] as f64 / spacing[across.0] as f64,
            spacing_across: spacing[across.0],
            spacing_down: spacing[down.0],
        }
    }
}

/// A box of voxels, corners included.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VoxelBox {
    pub lo: [usize; 3],
    pub hi: [usize; 3],
}

impl VoxelBox {
    /// The smallest box holding both corners, in any order.
    pub fn spanning(a: [usize; 3], b: [usize; 3]) -> VoxelBox {
        VoxelBox { lo: [0, 1, 2].map(|n| a[n].min(b[n])), hi: [0, 1, 2].map(|n| a[n].max(b[n])) }
    }

    pub fn union(self, other: VoxelBox) -> VoxelBox {
        VoxelBox {
            lo: [0, 1, 2].map(|n| self.lo[n].min(other.lo[n])),
            hi: [0, 1, 2].map(|n| self.hi[n].max(other.hi[n])),
        }
    }
}

/// A rectangle of slice pixels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PixelRect {
    pub col: usize,
    pub row: usize,
    pub width: usize,
    pub height: usize,
}

/// One voxel axis shown along a screen direction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct ScreenAxis {
    axis: usize,
    /// Screen position 0 is the axis's last voxel.
    reversed: bool,
}

/// Maps (column, row) of a displayed slice to voxels.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SliceGeometry {
    dims: [usize; 3],
    /// Slice size in voxels on screen.
    pub width: usize,
    pub height: usize,
    across: ScreenAxis,
    down: ScreenAxis,
    /// The voxel axis the slices step through.
    pub through: usize,
    /// Height of a displayed voxel relative to its width (voxel spacing ratio).
    pub pixel_aspect: f64,
    pub spacing_across: f32,
    pub spacing_down: f32,
}

impl SliceGeometry {
    /// Number of slices.
    pub fn depth(&self) -> usize {
        self.dims[self.through]
    }

    fn stride(&self, axis: usize) -> usize {
        match axis {
            0 => 1,
            1 => self.dims[0],
            _ => self.dims[0] * self.dims[1],
        }
    }

    /// Voxel coordinates (i, j, k) of a slice pixel.
    pub fn voxel(&self, slice: usize, col: usize, row: usize) -> [usize; 3] {
        let mut ijk = [0; 3];
        ijk[self.through] = slice;
        let place =
            |screen: ScreenAxis, pos: usize| if screen.reversed { self.dims[screen.axis] - 1 - pos } else { pos };
        ijk[self.across.axis] = place(self.across, col);
        ijk[self.down.axis] = place(self.down, row);
        ijk
    }

    /// The slice pixel (column, row) showing voxel `ijk` (on slice `ijk[through]`).
    pub fn pixel_of(&self, ijk: [usize; 3]) -> (usize, usize) {
        let place = |screen: ScreenAxis| {
            let pos = ijk[screen.axis];
            if screen.reversed {
                self.dims[screen.axis] - 1 - pos
            } else {
                pos
            }
        };
        (place(self.across), place(self.down))
    }

    /// Every pixel of a slice.
    pub fn whole(&self) -> PixelRect {
        PixelRect { col: 0, row: 0, width: self.width, height: self.height }
    }

    /// The pixels of slice `slice` that show voxels of `area`; none when the slice misses it.
    pub fn pixel_rect(&self, slice: usize, area: &VoxelBox) -> Option<PixelRect> {
        if slice < area.lo[self.through] || slice > area.hi[self.through] {
            return None;
        }
        let (a, b) = (self.pixel_of(area.lo), self.pixel_of(area.hi));
        let (col, row) = (a.0.min(b.0), a.1.min(b.1));
        Some(PixelRect { col, row, width: a.0.max(b.0) - col + 1, height: a.1.max(b.1) - row + 1 })
    }

    /// Index (file order) of a slice pixel.
    pub fn index(&self, slice: usize, col: usize, row: usize) -> usize {
        let [i, j, k] = self.voxel(slice, col, row);
        i + self.dims[0] * (j + self.dims[1] * k)
    }

    /// Index of pixel (0, 0) and the index steps for one column and one row, so loops over a
    /// slice add instead of recomputing coordinates.
    pub fn walk(&self, slice: usize) -> (usize, isize, isize) {
        let step = |screen: ScreenAxis| {
            let stride = self.stride(screen.axis) as isize;
            if screen.reversed {
                -stride
            } else {
                stride
            }
        };
        (self.index(slice, 0, 0), step(self.across), step(self.down))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn diagonal(x: f64, y: f64, z: f64) -> [[f64; 4]; 3] {
        [[x, 0.0, 0.0, 0.0], [0.0, y, 0.0, 0.0], [0.0, 0.0, z, 0.0]]
    }

    /// A marker voxel at the patient's right, anterior, superior corner must show at the
    /// screen's top-left in the axial view whatever way the file stores the axes.
    fn top_left_axial_voxel(affine: [[f64; 4]; 3], dims: [usize; 3]) -> [usize; 3] {
        let geometry = Orientation::from_affine(&affine).slice_geometry(Plane::Axial, dims, [1.0; 3]);
        geometry.voxel(0, 0, 0)
    }

    #[test]
    fn ras_volume_shows_right_on_the_left_and_anterior_at_the_top() {
        let dims = [4, 5, 6];
        let orientation = Orientation::from_affine(&diagonal(1.0, 1.0, 1.0));
        assert_eq!(orientation.axis_codes(), "RAS");
        // Top-left of the axial view: largest i (right), largest j (anterior).
        assert_eq!(top_left_axial_voxel(diagonal(1.0, 1.0, 1.0), dims), [3, 4, 0]);
        let coronal = orientation.slice_geometry(Plane::Coronal, dims, [1.0; 3]);
        assert_eq!((coronal.width, coronal.height, coronal.depth()), (4, 6, 5));
        assert_eq!(coronal.voxel(2, 0, 0), [3, 2, 5], "top of the coronal view is superior");
        let sagittal = orientation.slice_geometry(Plane::Sagittal, dims, [1.0; 3]);
        assert_eq!(sagittal.voxel(1, 0, 0), [1, 4, 5], "anterior-superior at the top-left");
    }

    #[test]
    fn flipped_axes_display_the_same_anatomy_in_the_same_place() {
        let dims = [4, 5, 6];
        // LPS storage (as DICOM-converted CT often is): i runs to the left, j to posterior.
        let lps = diagonal(-1.0, -1.0, 1.0);
        assert_eq!(Orientation::from_affine(&lps).axis_codes(), "LPS");
        assert_eq!(top_left_axial_voxel(lps, dims), [0, 0, 0], "voxel 0 is right-anterior here");
    }

    #[test]
    fn permuted_and_oblique_axes_map_to_the_closest_world_axis() {
        // i runs superior, j right, k anterior, rotated 20° about z.
        let (s, c) = 20f64.to_radians().sin_cos();
        let affine = [[0.0, c, -s, 0.0], [0.0, s, c, 0.0], [2.0, 0.0, 0.0, 0.0]];
        let orientation = Orientation::from_affine(&affine);
        assert_eq!(orientation.axis_codes(), "SRA");
        let geometry = orientation.slice_geometry(Plane::Axial, [6, 4, 5], [2.0, 1.0, 1.0]);
        assert_eq!((geometry.width, geometry.height, geometry.depth(), geometry.through), (4, 5, 6, 0));
        assert_eq!(geometry.voxel(0, 0, 0), [0, 3, 4]);
    }

    #[test]
    fn walking_a_slice_matches_indexing_every_pixel() {
        let dims = [3, 4, 5];
        for affine in [diagonal(1.0, 1.0, 1.0), diagonal(-1.0, 1.0, -1.0)] {
            let orientation = Orientation::from_affine(&affine);
            for plane in Plane::ALL {
                let g = orientation.slice_geometry(plane, dims, [1.0, 2.0, 3.0]);
                let slice = g.depth() - 1;
                let (origin, col_step, row_step) = g.walk(slice);
                for row in 0..g.height {
                    for col in 0..g.width {
                        assert_eq!(g.pixel_of(g.voxel(slice, col, row)), (col, row), "{plane:?} {col},{row}");
                        let walked = origin as isize + col as isize * col_step + row as isize * row_step;
                        assert_eq!(walked as usize, g.index(slice, col, row), "{plane:?} {col},{row}");
                    }
                }
            }
        }
        let g =
            Orientation::from_affine(&diagonal(1.0, 2.0, 3.0)).slice_geometry(Plane::Coronal, dims, [1.0, 2.0, 3.0]);
        assert_eq!(g.pixel_aspect, 3.0, "coronal rows are z, 3 mm against 1 mm columns");
    }

    #[test]
    fn a_voxel_box_shows_as_a_rectangle_in_the_views_whose_slice_crosses_it() {
        let dims = [10, 20, 30];
        let orientation = Orientation::from_affine(&diagonal(1.0, 1.0, 1.0));
        let area = VoxelBox::spanning([2, 15, 7], [4, 12, 7]);
        let axial = orientation.slice_geometry(Plane::Axial, dims, [1.0; 3]);
        // Radiological: i = 4 is drawn left of i = 2; anterior j = 15 above j = 12.
        assert_eq!(axial.pixel_rect(7, &area), Some(PixelRect { col: 5, row: 4, width: 3, height: 4 }));
        assert_eq!(axial.pixel_rect(8, &area), None);
        let coronal = orientation.slice_geometry(Plane::Coronal, dims, [1.0; 3]);
        assert_eq!(coronal.pixel_rect(13, &area), Some(PixelRect { col: 5, row: 22, width: 3, height: 1 }));
        assert_eq!(coronal.pixel_rect(16, &area), None);
        assert_eq!(area.union(VoxelBox::spanning([0; 3], [0; 3])), VoxelBox { lo: [0; 3], hi: [4, 15, 7] });
    }
}
