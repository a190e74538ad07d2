//! Where a series' images lie, and whether they make one regular volume: images sorted by their
//! position along the slice normal (never by InstanceNumber or file name), checked for equal
//! spacing, one orientation and one size, and the NIfTI affine built from them.
//!
//! DICOM places pixels in LPS+ millimetres: column `i` of row `j` of an image lies at
//! `ImagePositionPatient + i·Δc·row_direction + j·Δr·column_direction`, where
//! `ImageOrientationPatient` holds the row then the column direction and `PixelSpacing` holds
//! Δr (between rows) then Δc (between columns). NIfTI is RAS+, so x and y change sign.

/// One image plane: a single-frame file, or one frame of a multi-frame (enhanced) file.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Plane {
    /// Index of its file in the import's file list.
    pub file: usize,
    /// Frame number within the file, from 0.
    pub frame: u32,
    pub sop_instance_uid: String,
    pub rows: u32,
    pub columns: u32,
    /// ImagePositionPatient: the centre of the first pixel, LPS mm.
    pub position: [f64; 3],
    /// ImageOrientationPatient: row direction, then column direction.
    pub orientation: [f64; 6],
    /// PixelSpacing: between rows, then between columns (mm).
    pub pixel_spacing: [f64; 2],
    /// RescaleSlope and RescaleIntercept (1 and 0 when absent).
    pub rescale: (f64, f64),
}

/// The regular grid a series' planes fill, in the order they are stored.
#[derive(Debug)]
pub(crate) struct Grid {
    pub planes: Vec<Plane>,
    pub dims: [u32; 3],
    /// Voxel index to RAS+ millimetres.
    pub affine: [[f64; 4]; 3],
}

/// Largest relative difference between slice gaps accepted as equal spacing (rounding of the
/// positions' decimal strings stays far below it).
const SPACING_TOLERANCE: f64 = 0.01;
/// Largest angle between the stack's direction and the slice normal accepted as no tilt.
const TILT_TOLERANCE_DEGREES: f64 = 0.1;
/// Orientation cosines that differ by less than this are one orientation.
const ORIENTATION_TOLERANCE: f64 = 1e-4;

/// Sorts the planes along the slice normal and checks that they make one regular volume of at
/// most `max_voxels`; `single_spacing` is the slice spacing of a one-plane series. The error says
/// what is wrong in words a person can act on.
pub(crate) fn grid(mut planes: Vec<Plane>, single_spacing: f64, max_voxels: u64) -> Result<Grid, String> {
    let first = planes.first().ok_or("the series holds no images")?.clone();
    let voxels = u64::from(first.rows) * u64::from(first.columns) * planes.len() as u64;
    if voxels > max_voxels {
        return Err(format!(
            "the series has {} × {} × {} = {voxels} voxels, more than the budget of {max_voxels} voxels",
            first.columns,
            first.rows,
            planes.len()
        ));
    }
    for plane in &planes {
        if (plane.rows, plane.columns) != (first.rows, first.columns) {
            return Err(format!(
                "the series mixes image sizes: {}×{} and {}×{} (columns × rows)",
                first.columns, first.rows, plane.columns, plane.rows
            ));
        }
        if !close(&plane.orientation, &first.orientation, ORIENTATION_TOLERANCE) {
            return Err(format!(
                "the series mixes orientations: {:?} and {:?} (ImageOrientationPatient)",
                first.orientation, plane.orientation
            ));
        }
        if !close(&plane.pixel_spacing, &first.pixel_spacing, 1e-4 * first.pixel_spacing[0].abs().max(1.0)) {
            return Err(format!(
                "the series mixes pixel spacings: {:?} and {:?} mm",
                first.pixel_spacing, plane.pixel_spacing
            ));
        }
    }
    let row_direction = unit([first.orientation[0], first.orientation[1], first.orientation[2]])
        .ok_or("ImageOrientationPatient has a zero row direction")?;
    let column_direction = unit([first.orientation[3], first.orientation[4], first.orientation[5]])
        .ok_or("ImageOrientationPatient has a zero column direction")?;
    if dot(row_direction, column_direction).abs() > 1e-3 {
        return Err("ImageOrientationPatient's row and column directions are not perpendicular".into());
    }
    let normal = cross(row_direction, column_direction);
    let along = |plane: &Plane| dot(plane.position, normal);
    planes.sort_by(|a, b| along(a).total_cmp(&along(b)));

    let slice_step = if planes.len() == 1 {
        scale(normal, single_spacing)
    } else {
        let gaps: Vec<f64> = planes.windows(2).map(|pair| along(&pair[1]) - along(&pair[0])).collect();
        let mut sorted = gaps.clone();
        sorted.sort_by(f64::total_cmp);
        let typical = sorted[sorted.len() / 2];
        if let Some(index) = gaps.iter().position(|gap| *gap < 1e-3) {
            return Err(format!(
                "two images lie at the same position ({} mm along the slice normal): the series holds \
                 several echoes, phases or repetitions; import them as separate series",
                round(along(&planes[index]))
            ));
        }
        if let Some(index) = gaps.iter().position(|gap| (gap - typical).abs() > SPACING_TOLERANCE * typical) {
            let (before, after) = (along(&planes[index]), along(&planes[index + 1]));
            let gap = gaps[index];
            let missing = (gap / typical).round() - 1.0;
            return Err(if missing >= 1.0 && (gap - typical * (missing + 1.0)).abs() <= SPACING_TOLERANCE * typical {
                format!(
                    "{missing} slice{} missing between {} and {} mm along the slice normal (slices are {} mm apart elsewhere)",
                    if missing > 1.0 { "s are" } else { " is" },
                    round(before),
                    round(after),
                    round(typical)
                )
            } else {
                format!(
                    "unequal slice spacing: {} mm between {} and {} mm along the slice normal, {} mm elsewhere",
                    round(gap),
                    round(before),
                    round(after),
                    round(typical)
                )
            });
        }
        let last = planes.last().map(|plane| plane.position).unwrap_or(first.position);
        let stack = sub(last, planes[0].position);
        let length = dot(stack, stack).sqrt();
        let tilt = (dot(stack, normal) / length).clamp(-1.0, 1.0).acos().to_degrees();
        if tilt > TILT_TOLERANCE_DEGREES {
            return Err(format!(
                "the slices are sheared by {}° against their normal (gantry tilt); resample the series first",
                round(tilt)
            ));
        }
        scale(normal, dot(stack, normal) / (planes.len() - 1) as f64)
    };
    let origin = planes[0].position;
    let columns_step = scale(row_direction, first.pixel_spacing[1]);
    let rows_step = scale(column_direction, first.pixel_spacing[0]);
    // LPS to RAS: x and y change sign.
    let affine = std::array::from_fn(|axis| {
        let sign = if axis < 2 { -1.0 } else { 1.0 };
        [columns_step[axis], rows_step[axis], slice_step[axis], origin[axis]].map(|v| sign * v)
    });
    let dims = [first.columns, first.rows, planes.len() as u32];
    Ok(Grid { planes, dims, affine })
}

fn close(a: &[f64], b: &[f64], tolerance: f64) -> bool {
    a.iter().zip(b).all(|(x, y)| (x - y).abs() <= tolerance)
}

fn dot(a: [f64; 3], b: [f64; 3]) -> f64 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}

fn cross(a: [f64; 3], b: [f64; 3]) -> [f64; 3] {
    [a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]]
}

fn sub(a: [f64; 3], b: [f64; 3]) -> [f64; 3] {
    [a[0] - b[0], a[1] - b[1], a[2] - b[2]]
}

fn scale(a: [f64; 3], by: f64) -> [f64; 3] {
    a.map(|v| v * by)
}

fn unit(a: [f64; 3]) -> Option<[f64; 3]> {
    let length = dot(a, a).sqrt();
    (length > 1e-6).then(|| scale(a, 1.0 / length))
}

/// Millimetres and degrees as people read them: three decimals at most.
fn round(value: f64) -> f64 {
    (value * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    const AXIAL: [f64; 6] = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0];

    fn plane(file: usize, position: [f64; 3], orientation: [f64; 6]) -> Plane {
        Plane {
            file,
            frame: 0,
            sop_instance_uid: format!("1.2.{file}"),
            rows: 4,
            columns: 3,
            position,
            orientation,
            pixel_spacing: [0.5, 0.75],
            rescale: (1.0, 0.0),
        }
    }

    fn axial_stack(z: &[f64]) -> Vec<Plane> {
        z.iter().enumerate().map(|(file, z)| plane(file, [-10.0, 20.0, *z], AXIAL)).collect()
    }

    fn refusal(planes: Vec<Plane>) -> String {
        grid(planes, 1.0, 1 << 20).err().unwrap()
    }

    #[test]
    fn planes_are_sorted_along_the_normal_whatever_their_order() {
        let grid = grid(axial_stack(&[4.0, 0.0, 6.0, 2.0]), 1.0, 1 << 20).unwrap();
        assert_eq!(grid.planes.iter().map(|p| p.file).collect::<Vec<_>>(), [1, 3, 0, 2]);
        assert_eq!(grid.dims, [3, 4, 4]);
        // LPS (−10, 20, 0) is RAS (10, −20, 0); columns run to the patient's left (−x in RAS).
        assert_eq!(grid.affine, [[-0.75, 0.0, 0.0, 10.0], [0.0, -0.5, 0.0, -20.0], [0.0, 0.0, 2.0, 0.0]]);
    }

    #[test]
    fn a_sagittal_stack_sorts_along_x() {
        // Rows run anterior to posterior (+y), columns head to foot (−z); the normal is −x.
        let sagittal = [0.0, 1.0, 0.0, 0.0, 0.0, -1.0];
        let planes = [3.0, -3.0, 0.0].iter().enumerate().map(|(f, x)| plane(f, [*x, 0.0, 0.0], sagittal)).collect();
        let grid = grid(planes, 1.0, 1 << 20).unwrap();
        assert_eq!(grid.planes.iter().map(|p| p.position[0]).collect::<Vec<_>>(), [3.0, 0.0, -3.0]);
        assert_eq!(grid.affine[0], [0.0, 0.0, 3.0, -3.0]);
    }

    #[test]
    fn irregular_stacks_are_refused_with_the_reason() {
        let missing = refusal(axial_stack(&[0.0, 2.0, 6.0, 8.0]));
        assert!(missing.contains("1 slice is missing between 2 and 6 mm"), "{missing}");
        let uneven = refusal(axial_stack(&[0.0, 2.0, 5.0, 7.0]));
        assert!(uneven.contains("unequal slice spacing: 3 mm between 2 and 5 mm"), "{uneven}");
        let repeated = refusal(axial_stack(&[0.0, 2.0, 2.0]));
        assert!(repeated.contains("same position"), "{repeated}");
        let mut tilted = axial_stack(&[0.0, 2.0, 4.0]);
        tilted.iter_mut().enumerate().for_each(|(k, p)| p.position[1] += 0.3 * k as f64);
        assert!(refusal(tilted).contains("gantry tilt"));
        let mut mixed = axial_stack(&[0.0, 2.0]);
        mixed[1].orientation = [1.0, 0.0, 0.0, 0.0, 0.0, -1.0];
        assert!(refusal(mixed).contains("mixes orientations"));
        let mut resized = axial_stack(&[0.0, 2.0]);
        resized[1].rows = 8;
        assert!(refusal(resized).contains("mixes image sizes"));
        let budget = grid(axial_stack(&[0.0, 2.0]), 1.0, 23).err().unwrap();
        assert!(budget.contains("24 voxels, more than the budget of 23"), "{budget}");
    }

    #[test]
    fn one_plane_takes_the_given_spacing() {
        let grid = grid(axial_stack(&[5.0]), 3.0, 1 << 20).unwrap();
        assert_eq!(grid.affine[2], [0.0, 0.0, 3.0, 5.0]);
    }
}
