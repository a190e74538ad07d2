//! Volumes in slabs: runs of whole k-slices, each compressed on its own. NIfTI stores voxels
//! with i fastest and k slowest, so a slab is one contiguous range of the file's voxel bytes
//! and the slabs, in order, are the file's voxels. Compiled into both builds: the server cuts
//! images and mask versions into slabs and writes only the slabs a save touches; the browser
//! fetches the slab of the slice it shows first and the rest behind it.

use std::io::{BufRead, Read};

use flate2::read::GzDecoder;
use serde::{Deserialize, Serialize};

use crate::edits::{LabelChanges, MaskEdits};
use crate::nifti_io::{self, VolumeError, VolumeInfo};

/// What a volume's slabs hold, which sets their size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SlabKind {
    /// About 4 MiB per slab (a 512×512 int16 CT slab is 8 slices): each request a browser makes
    /// costs several milliseconds besides its bytes, so fewer, larger slabs arrive sooner in
    /// all, while the slab of the first slice shown still arrives in a few tens of ms.
    Image,
    /// About 1 MiB per slab (4 slices of a 512×512 mask): a brush stroke rewrites and stores
    /// little.
    Mask,
}

impl SlabKind {
    fn target_bytes(self) -> u64 {
        match self {
            SlabKind::Image => 4 << 20,
            SlabKind::Mask => 1 << 20,
        }
    }
}

/// gzip level of stored slabs: level 1 is several times faster than 6, and masks, mostly
/// runs of zeros, compress almost as well.
pub const SLAB_GZIP_LEVEL: u32 = 1;

/// How a volume of `dims` voxels of `voxel_bytes` bytes each is cut into slabs of `depth`
/// k-slices (the last one may be thinner).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlabGrid {
    pub dims: [u32; 3],
    pub voxel_bytes: u32,
    pub depth: u32,
}

impl SlabGrid {
    /// The grid for a volume: as many slices per slab as fit in the kind's size, at least one.
    pub fn new(dims: [u32; 3], voxel_bytes: u32, kind: SlabKind) -> SlabGrid {
        let slice_bytes = (u64::from(dims[0]) * u64::from(dims[1]) * u64::from(voxel_bytes)).max(1);
        let depth = (kind.target_bytes() / slice_bytes).clamp(1, u64::from(dims[2].max(1))) as u32;
        SlabGrid { dims, voxel_bytes, depth }
    }

    /// Bytes of one k-slice.
    pub fn slice_bytes(&self) -> usize {
        self.dims[0] as usize * self.dims[1] as usize * self.voxel_bytes as usize
    }

    /// Number of slabs.
    pub fn count(&self) -> usize {
        (self.dims[2] as usize).div_ceil(self.depth.max(1) as usize)
    }

    /// Bytes of all the voxels.
    pub fn total_bytes(&self) -> usize {
        self.slice_bytes() * self.dims[2] as usize
    }

    /// The k-slices slab `index` holds.
    pub fn slices(&self, index: usize) -> std::ops::Range<usize> {
        let start = index * self.depth as usize;
        start..(start + self.depth as usize).min(self.dims[2] as usize)
    }

    /// Where slab `index` lies in the voxel bytes.
    pub fn byte_range(&self, index: usize) -> std::ops::Range<usize> {
        let slices = self.slices(index);
        slices.start * self.slice_bytes()..slices.end * self.slice_bytes()
    }

    /// The slab holding k-slice `k`.
    pub fn slab_of_slice(&self, k: usize) -> usize {
        k / self.depth as usize
    }
}

/// A slab compressed for storage.
pub fn compress(raw: &[u8]) -> Vec<u8> {
    nifti_io::gzip(raw, SLAB_GZIP_LEVEL)
}

/// A stored slab inflated, which must hold exactly `expected` bytes: a damaged or foreign
/// object, or one inflating to more (a gzip bomb), is refused after at most `expected + 1`
/// bytes are produced.
pub fn decompress(what: &str, stored: &[u8], expected: usize) -> Result<Vec<u8>, VolumeError> {
    let mut raw = Vec::new();
    raw.try_reserve_exact(expected + 1)
        .map_err(|_| VolumeError(format!("{what}: {expected} bytes do not fit in memory")))?;
    GzDecoder::new(stored)
        .take(expected as u64 + 1)
        .read_to_end(&mut raw)
        .map_err(|e| VolumeError(format!("{what} is damaged ({e})")))?;
    if raw.len() != expected {
        return Err(VolumeError(format!("{what} holds {} bytes where {expected} were expected", raw.len())));
    }
    Ok(raw)
}

/// Applies `edits` to a mask held in `slabs` (uint8, cut by `grid`) without touching the slabs
/// it leaves alone: the edited copies of the slabs it touches, in slab order, and how many
/// voxels of each label value it adds (negative: takes away; label 0 left out).
pub fn edit_slabs(
    grid: &SlabGrid,
    slabs: &[impl AsRef<[u8]>],
    edits: &MaskEdits,
) -> (Vec<(usize, Vec<u8>)>, LabelChanges) {
    let slab_voxels = grid.slice_bytes() * grid.depth as usize;
    let mut edited: Vec<(usize, Vec<u8>)> = Vec::new();
    let mut changes = LabelChanges::new();
    for run in edits.runs() {
        let (mut start, end) = (run.start as usize, (run.start + run.len) as usize);
        while start < end {
            let index = start / slab_voxels;
            let slab_start = index * slab_voxels;
            let stop = end.min(slab_start + slab_voxels);
            if edited.last().is_none_or(|(i, _)| *i != index) {
                edited.push((index, slabs[index].as_ref().to_vec()));
            }
            let slab = &mut edited.last_mut().expect("just pushed").1;
            for voxel in &mut slab[start - slab_start..stop - slab_start] {
                if *voxel != run.value {
                    if *voxel != 0 {
                        *changes.entry(*voxel).or_insert(0) -= 1;
                    }
                    if run.value != 0 {
                        *changes.entry(run.value).or_insert(0) += 1;
                    }
                    *voxel = run.value;
                }
            }
            start = stop;
        }
    }
    changes.retain(|_, change| *change != 0);
    (edited, changes)
}

/// Checks a `.nii` or `.nii.gz` file as [`Volume::parse_within`] does (header, budget,
/// `vox_offset`, every voxel present) while holding at most one slab of its voxels: for files
/// too large to keep in memory, such as uploaded images.
pub fn inspect(what: &str, file: impl BufRead, max_voxels: u64) -> Result<VolumeInfo, VolumeError> {
    let mut reader = SlabReader::open(what, file, max_voxels, SlabKind::Image)?;
    while reader.next_slab()?.is_some() {}
    Ok(reader.info)
}

/// Reads a `.nii` or `.nii.gz` file a slab at a time (see [`crate::slabs`]), checked as
/// [`Volume::parse_within`] checks, holding one slab of voxels at a time.
pub struct SlabReader<'a> {
    pub info: VolumeInfo,
    /// The header's 348 bytes as stored.
    pub header_bytes: Vec<u8>,
    pub grid: SlabGrid,
    source: Box<dyn Read + 'a>,
    what: String,
    next: usize,
}

impl<'a> SlabReader<'a> {
    pub fn open(
        what: &str,
        mut file: impl BufRead + 'a,
        max_voxels: u64,
        kind: SlabKind,
    ) -> Result<SlabReader<'a>, VolumeError> {
        let gzipped = file.fill_buf().map_err(|e| nifti_io::unreadable(what, e))?.starts_with(&[0x1f, 0x8b]);
        let mut source: Box<dyn Read + 'a> = if gzipped { Box::new(GzDecoder::new(file)) } else { Box::new(file) };
        let (info, header_bytes, voxel_bytes) = nifti_io::read_header(what, &mut source, max_voxels)?;
        let per_voxel = info.meta.voxel_type.bytes();
        let grid = SlabGrid::new(info.meta.dims, per_voxel, kind);
        Ok(SlabReader {
            info,
            header_bytes,
            grid,
            source: Box::new(source.take(voxel_bytes)),
            what: what.to_string(),
            next: 0,
        })
    }

    /// The next slab's voxel bytes, or `None` after the last; a file that ends early is refused.
    pub fn next_slab(&mut self) -> Result<Option<Vec<u8>>, VolumeError> {
        if self.next == self.grid.count() {
            return Ok(None);
        }
        let range = self.grid.byte_range(self.next);
        let mut slab = Vec::new();
        slab.try_reserve_exact(range.len()).map_err(|_| {
            nifti_io::refuse(&self.what, format!("{} bytes of voxels do not fit in memory", range.len()))
        })?;
        (&mut self.source)
            .take(range.len() as u64)
            .read_to_end(&mut slab)
            .map_err(|e| nifti_io::unreadable(&self.what, e))?;
        if slab.len() < range.len() {
            return Err(nifti_io::refuse(
                &self.what,
                format!(
                    "the file is truncated: it holds {} of its {} voxel bytes",
                    range.start + slab.len(),
                    self.grid.total_bytes()
                ),
            ));
        }
        self.next += 1;
        Ok(Some(slab))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nifti_io::{encode_volume, Volume};
    use nifti::{NiftiHeader, NiftiType};

    #[test]
    fn grids_cover_every_slice_once_with_slabs_near_the_target_size() {
        for (dims, voxel_bytes, kind, depth) in [
            ([512, 512, 300], 2, SlabKind::Image, 8),
            ([512, 512, 300], 1, SlabKind::Mask, 4),
            ([1024, 1024, 400], 2, SlabKind::Image, 2),
            ([1024, 1024, 400], 1, SlabKind::Mask, 1),
            ([91, 109, 91], 4, SlabKind::Mask, 26),
            ([3, 5, 7], 8, SlabKind::Image, 7),
            ([2000, 2000, 3], 1, SlabKind::Mask, 1),
        ] {
            let grid = SlabGrid::new(dims, voxel_bytes, kind);
            assert_eq!(grid.depth, depth, "{dims:?} × {voxel_bytes}");
            let mut next = 0;
            for index in 0..grid.count() {
                let slices = grid.slices(index);
                assert_eq!(slices.start, next);
                assert!(!slices.is_empty());
                assert!(slices.clone().all(|k| grid.slab_of_slice(k) == index));
                next = slices.end;
            }
            assert_eq!(next, dims[2] as usize);
            assert_eq!(grid.byte_range(grid.count() - 1).end, grid.total_bytes());
        }
    }

    /// A volume of `datatype` with every voxel distinct-ish, cut into slabs, compressed,
    /// inflated and joined: the same bytes, and it parses to the same samples.
    #[test]
    fn slabs_round_trip_every_voxel_type_and_odd_size() {
        let types = [
            NiftiType::Uint8,
            NiftiType::Int8,
            NiftiType::Int16,
            NiftiType::Uint16,
            NiftiType::Int32,
            NiftiType::Uint32,
            NiftiType::Float32,
            NiftiType::Float64,
        ];
        for datatype in types {
            for dims in [[1, 1, 1], [7, 3, 5], [131, 67, 29], [1031, 517, 3]] {
                let size = datatype.size_of();
                let count = dims.iter().map(|&d| d as usize).product::<usize>();
                let voxels: Vec<u8> = (0..count * size).map(|i| (i.wrapping_mul(2_654_435_761) >> 7) as u8).collect();
                let grid = SlabGrid::new(dims, size as u32, SlabKind::Mask);
                let stored: Vec<Vec<u8>> = (0..grid.count()).map(|i| compress(&voxels[grid.byte_range(i)])).collect();
                let mut joined = Vec::new();
                for (index, slab) in stored.iter().enumerate() {
                    joined.extend(decompress("slab", slab, grid.byte_range(index).len()).unwrap());
                }
                assert!(joined == voxels, "{datatype:?} {dims:?}");
                let file = encode_volume(&NiftiHeader::default(), dims, datatype, &voxels);
                let header = &file[..348];
                let whole = Volume::parse("image", &file).unwrap().into_samples("image").unwrap();
                let parts = Volume::from_parts("image", header, joined).unwrap().into_samples("image").unwrap();
                assert!((0..count).all(|i| whole.get(i).to_bits() == parts.get(i).to_bits()), "{datatype:?} {dims:?}");
            }
        }
    }

    #[test]
    fn a_slab_of_the_wrong_size_or_damaged_is_refused() {
        let raw = vec![7u8; 1000];
        let stored = compress(&raw);
        assert_eq!(decompress("slab 3", &stored, 1000).unwrap(), raw);
        assert!(decompress("slab 3", &stored, 999)
            .unwrap_err()
            .to_string()
            .contains("slab 3 holds 1000 bytes where 999"));
        assert!(decompress("slab 3", &stored, 1001).is_err());
        assert!(decompress("slab 3", &stored[..stored.len() / 2], 1000).unwrap_err().to_string().contains("damaged"));
        // A bomb: a megabyte of zeros where ten bytes are expected stops after eleven.
        let bomb = compress(&vec![0u8; 1 << 20]);
        assert!(decompress("slab", &bomb, 10).is_err());
    }

    #[test]
    fn edits_copy_only_the_slabs_they_touch() {
        let grid = SlabGrid { dims: [4, 2, 10], voxel_bytes: 1, depth: 3 };
        let mut whole = vec![0u8; 80];
        whole[30] = 2;
        let slabs: Vec<Vec<u8>> = (0..grid.count()).map(|i| whole[grid.byte_range(i)].to_vec()).collect();
        // Voxels 20..34 (slabs 0 and 1, across their border) become 1; 78 becomes 3.
        let mut edited_whole = whole.clone();
        edited_whole[20..34].fill(1);
        edited_whole[78] = 3;
        let edits = MaskEdits::diff(&whole, &edited_whole);
        let (edited, changes) = edit_slabs(&grid, &slabs, &edits);
        assert_eq!(edited.iter().map(|(i, _)| *i).collect::<Vec<_>>(), vec![0, 1, 3]);
        for (index, slab) in &edited {
            assert_eq!(slab[..], edited_whole[grid.byte_range(*index)]);
        }
        assert_eq!(changes, [(1, 14), (2, -1), (3, 1)].into_iter().collect());
        assert_eq!(changes, edits.count_changes(&whole));
    }
}
