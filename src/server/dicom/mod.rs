//! DICOM in: the files of an import (single files, a folder, a zip) become one NIfTI volume per
//! series, with the series' identity kept beside it, so everything downstream (viewer, slabs,
//! models, datasets) works on DICOM cases unchanged.
//!
//! Every header is read and every chosen series checked (one size, one orientation, equal
//! spacing, no tilt, the voxel budget, a decodable transfer syntax) before any pixel is decoded,
//! so a refused import costs header reads and stores nothing.

pub(crate) mod files;
pub(crate) mod geometry;
pub mod headers;
pub(crate) mod pseudonym;
pub(crate) mod seg;
pub(crate) mod seg_reader;
mod volume;

use std::io::BufWriter;
use std::path::Path;

use headers::{PatientRecord, SeriesIdentity, SourceFile};

use crate::server::scratch::{ScratchDir, ScratchFile};

/// Which series of an import become cases.
#[derive(Clone, Debug, PartialEq)]
pub enum SeriesChoice {
    /// The one series there is; several are refused with their list.
    Only,
    /// The series with this SeriesInstanceUID.
    Uid(String),
    /// Each series, as its own case.
    All,
}

impl SeriesChoice {
    /// `all`, a SeriesInstanceUID, or nothing.
    pub fn parse(text: Option<&str>) -> SeriesChoice {
        match text.map(str::trim).filter(|t| !t.is_empty()) {
            None => SeriesChoice::Only,
            Some("all") => SeriesChoice::All,
            Some(uid) => SeriesChoice::Uid(uid.to_string()),
        }
    }
}

/// An image a volume's slice came from, as a segmentation references and places it.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SourceImage {
    pub sop_instance_uid: String,
    /// The frame number (from 1) in a multi-frame image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frame: Option<u32>,
    /// ImagePositionPatient (LPS mm).
    pub position: [f64; 3],
}

/// How a series' slices are laid out, shared by all of them.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SeriesGeometry {
    /// ImageOrientationPatient: row direction, then column direction.
    pub orientation: [f64; 6],
    /// PixelSpacing: between rows, then between columns (mm).
    pub pixel_spacing: [f64; 2],
    /// Distance between slice centres along the normal (mm).
    pub slice_spacing: f64,
}

/// A series converted to an uncompressed `.nii` in scratch.
pub(crate) struct ConvertedSeries {
    pub identity: SeriesIdentity,
    pub patient: PatientRecord,
    /// One per slice, in the volume's k order.
    pub source_images: Vec<SourceImage>,
    pub geometry: SeriesGeometry,
    pub nifti: ScratchFile,
}

/// Converts the chosen series of `files` (zips among them unpacked to scratch, within
/// `max_voxels`-derived bounds). Every chosen series is checked before the first is decoded.
pub(crate) fn convert(
    files: Vec<SourceFile>,
    choice: &SeriesChoice,
    max_voxels: u64,
    scratch: &Path,
) -> Result<Vec<ConvertedSeries>, String> {
    let mut unpacked = Vec::new();
    let mut all_files = Vec::new();
    // Two bytes a voxel, and room for headers (a 3,000-slice series with 20 KB of private
    // tags in each): a zip inflating beyond this cannot be a series within the budget.
    let max_inflated = max_voxels.saturating_mul(2).saturating_add(64 << 20);
    for file in files {
        if files::is_zip(&file.path).map_err(|e| format!("cannot read {}: {e}", file.name))? {
            let dir = ScratchDir::create(scratch).map_err(|e| format!("cannot unpack {}: {e}", file.name))?;
            all_files.extend(files::unzip(&file, &dir, max_inflated)?);
            unpacked.push(dir);
        } else {
            all_files.push(file);
        }
        if all_files.len() > files::MAX_FILES {
            return Err(format!("the import holds more than {} files", files::MAX_FILES));
        }
    }
    let found = headers::read_series(&all_files)?;
    let listing = || found.iter().map(headers::Series::describe).collect::<Vec<_>>().join("; ");
    let chosen: Vec<&headers::Series> = match choice {
        _ if found.is_empty() => return Err("the import holds no DICOM images".into()),
        SeriesChoice::Only if found.len() > 1 => {
            return Err(format!(
                "the import holds {} series: {}. Choose one with `series` (its SeriesInstanceUID), or `series=all` for a case each",
                found.len(),
                listing()
            ))
        }
        SeriesChoice::Only | SeriesChoice::All => found.iter().collect(),
        SeriesChoice::Uid(uid) => {
            let series = found.iter().find(|s| &s.identity.series_instance_uid == uid);
            vec![series.ok_or_else(|| format!("the import holds no series {uid}; it holds {}", listing()))?]
        }
    };
    let grids = chosen
        .iter()
        .map(|series| {
            geometry::grid(series.planes.clone(), series.single_spacing, max_voxels)
                .map_err(|e| format!("series {}: {e}", series.describe()))
        })
        .collect::<Result<Vec<_>, String>>()?;
    chosen
        .into_iter()
        .zip(grids)
        .map(|(series, grid)| {
            let (nifti, file) = ScratchFile::create(scratch).map_err(|e| format!("cannot write scratch: {e}"))?;
            let mut out = BufWriter::new(file);
            volume::write_nifti(&all_files, series.pixels, &grid, &mut out)?;
            out.into_inner().map_err(|e| format!("cannot write scratch: {e}"))?;
            let multi_frame = grid.planes.iter().any(|plane| plane.frame > 0);
            let source_images = grid
                .planes
                .iter()
                .map(|plane| SourceImage {
                    sop_instance_uid: plane.sop_instance_uid.clone(),
                    frame: multi_frame.then_some(plane.frame + 1),
                    position: plane.position,
                })
                .collect();
            let first = &grid.planes[0];
            let slice_step = [grid.affine[0][2], grid.affine[1][2], grid.affine[2][2]];
            let geometry = SeriesGeometry {
                orientation: first.orientation,
                pixel_spacing: first.pixel_spacing,
                slice_spacing: slice_step.iter().map(|v| v * v).sum::<f64>().sqrt(),
            };
            Ok(ConvertedSeries {
                identity: series.identity.clone(),
                patient: series.patient.clone(),
                source_images,
                geometry,
                nifti,
            })
        })
        .collect()
}
