//! Reading NIfTI-1 volumes and writing label masks, in both builds: the server reads what
//! is imported and stored and writes mask versions; the browser reads the image and mask it
//! downloads from object storage. One reader means both always agree on what a file holds.
//!
//! Masks are stored as uint8 `.nii.gz` with the geometry (dims, pixdim, qform/sform) of the
//! file they derive from, so every viewer and `nibabel` reads them without conversion.

use std::io::{Read, Write};

use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use flate2::Compression;
use nifti::{NiftiHeader, NiftiType};

/// Largest volume read unless the caller sets a budget: 2^29 voxels (512 Mi, for example
/// 1024×1024×512). The header's declared size is checked against it before any voxel is
/// inflated, so a small gzip bomb costs a header's worth of work.
pub const DEFAULT_MAX_VOXELS: u64 = 1 << 29;
/// Header (348 bytes) plus the 4-byte extension flag; voxel data starts here in files we write.
const VOX_OFFSET: usize = 352;
const HEADER_BYTES: u64 = 348;
/// Most bytes of extensions and padding accepted between the header and the voxels.
const MAX_EXTENSION_BYTES: u64 = 16 << 20;

/// Geometry and type of a stored volume, as listed with its artifact.
#[derive(Clone, Debug, PartialEq)]
pub struct VolumeMeta {
    pub dims: [u32; 3],
    pub voxel_type: VoxelType,
    pub spacing_mm: [f32; 3],
}

/// A parsed volume: its header, metadata and raw voxel bytes in file order (i fastest).
pub struct Volume {
    pub header: NiftiHeader,
    pub meta: VolumeMeta,
    /// The voxels as stored: the file's byte order, before scaling.
    raw: Vec<u8>,
}

/// Why a file is not a volume this platform can use; the message names the file's role.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct VolumeError(pub String);

pub fn refuse(what: &str, detail: impl std::fmt::Display) -> VolumeError {
    VolumeError(format!("{what} is not a readable NIfTI-1 volume: {detail}"))
}

pub fn gzip(bytes: &[u8], level: u32) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::with_capacity(bytes.len() / 8 + 64), Compression::new(level));
    encoder.write_all(bytes).expect("writing to a Vec cannot fail");
    encoder.finish().expect("writing to a Vec cannot fail")
}

/// The voxel types volumes may have, named in artifacts and model cards as `uint8`, `int16`, …
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum VoxelType {
    Uint8,
    Int8,
    Int16,
    Uint16,
    Int32,
    Uint32,
    Float32,
    Float64,
}

impl VoxelType {
    pub const ALL: [VoxelType; 8] = [
        VoxelType::Uint8,
        VoxelType::Int8,
        VoxelType::Int16,
        VoxelType::Uint16,
        VoxelType::Int32,
        VoxelType::Uint32,
        VoxelType::Float32,
        VoxelType::Float64,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            VoxelType::Uint8 => "uint8",
            VoxelType::Int8 => "int8",
            VoxelType::Int16 => "int16",
            VoxelType::Uint16 => "uint16",
            VoxelType::Int32 => "int32",
            VoxelType::Uint32 => "uint32",
            VoxelType::Float32 => "float32",
            VoxelType::Float64 => "float64",
        }
    }

    /// The type named `name` as [`VoxelType::as_str`] writes it.
    pub fn parse(name: &str) -> Option<VoxelType> {
        VoxelType::ALL.into_iter().find(|t| t.as_str() == name)
    }

    pub fn nifti_type(self) -> NiftiType {
        match self {
            VoxelType::Uint8 => NiftiType::Uint8,
            VoxelType::Int8 => NiftiType::Int8,
            VoxelType::Int16 => NiftiType::Int16,
            VoxelType::Uint16 => NiftiType::Uint16,
            VoxelType::Int32 => NiftiType::Int32,
            VoxelType::Uint32 => NiftiType::Uint32,
            VoxelType::Float32 => NiftiType::Float32,
            VoxelType::Float64 => NiftiType::Float64,
        }
    }

    fn of(datatype: NiftiType) -> Option<VoxelType> {
        VoxelType::ALL.into_iter().find(|t| t.nifti_type() == datatype)
    }

    /// Bytes per voxel (`int16`: 2).
    pub fn bytes(self) -> u32 {
        self.nifti_type().size_of() as u32
    }
}

impl std::fmt::Display for VoxelType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An I/O failure while reading `what`: for a gzip stream, damage or truncation.
pub fn unreadable(what: &str, err: std::io::Error) -> VolumeError {
    refuse(what, format!("the file is damaged or truncated ({err})"))
}

/// A volume's header and metadata, checked against its file (see `crate::slabs::inspect`).
pub struct VolumeInfo {
    pub header: NiftiHeader,
    pub meta: VolumeMeta,
}

impl VolumeInfo {
    /// True when both volumes sample the same grid in the same place: same size, spacing,
    /// and voxel-to-world transforms (sform and qform).
    pub fn same_geometry(&self, other: &VolumeInfo) -> bool {
        let placement = |h: &NiftiHeader| {
            let mut values = vec![h.pixdim[1], h.pixdim[2], h.pixdim[3]];
            values.extend(h.srow_x.iter().chain(&h.srow_y).chain(&h.srow_z));
            values.extend([h.quatern_b, h.quatern_c, h.quatern_d, h.quatern_x, h.quatern_y, h.quatern_z]);
            values
        };
        self.meta.dims == other.meta.dims
            && placement(&self.header)
                .iter()
                .zip(placement(&other.header).iter())
                .all(|(x, y)| (x - y).abs() <= 1e-3 * (1.0 + x.abs()))
    }
}

/// Reads and checks the header, and skips to the voxels; returns the volume's information, the
/// header's 348 bytes as stored, and how many bytes of voxels follow.
pub fn read_header(
    what: &str,
    source: &mut impl Read,
    max_voxels: u64,
) -> Result<(VolumeInfo, Vec<u8>, u64), VolumeError> {
    let mut header_bytes = vec![0; HEADER_BYTES as usize];
    source.read_exact(&mut header_bytes).map_err(|e| unreadable(what, e))?;
    let (info, voxel_bytes) = check_header(what, &header_bytes, max_voxels)?;
    // The voxels start at vox_offset; what lies between (extension flag, extensions,
    // padding) is skipped, as nibabel does.
    let offset = info.header.vox_offset;
    if !offset.is_finite() || offset.fract() != 0.0 || f64::from(offset) < VOX_OFFSET as f64 {
        return Err(refuse(what, format!("its vox_offset {offset} does not point past the header")));
    }
    let gap = offset as u64 - HEADER_BYTES;
    if gap > MAX_EXTENSION_BYTES {
        return Err(refuse(
            what,
            format!("its vox_offset {offset} leaves more than {MAX_EXTENSION_BYTES} bytes of extensions"),
        ));
    }
    let skipped =
        std::io::copy(&mut (&mut *source).take(gap), &mut std::io::sink()).map_err(|e| unreadable(what, e))?;
    if skipped < gap {
        return Err(refuse(what, format!("its vox_offset {offset} lies beyond the end of the file")));
    }
    Ok((info, header_bytes, voxel_bytes))
}

/// Parses and checks a header's 348 bytes: a single-file NIfTI-1 3-D volume of a supported
/// voxel type within the budget; returns it with how many bytes its voxels take.
fn check_header(what: &str, header_bytes: &[u8], max_voxels: u64) -> Result<(VolumeInfo, u64), VolumeError> {
    let header = NiftiHeader::from_reader(header_bytes).map_err(|e| match e {
        nifti::NiftiError::Io(e) => unreadable(what, e),
        other => refuse(what, other),
    })?;
    if &header.magic != b"n+1\0" {
        return Err(refuse(what, "it is not a single-file NIfTI-1 volume (.nii)"));
    }
    let dim = header.dim().map_err(|e| refuse(what, e))?;
    let is_3d = dim.len() == 3 || (dim.len() == 4 && dim[3] == 1);
    if !is_3d {
        return Err(VolumeError(format!(
            "{what} has {} dimensions {dim:?}; only single 3-D volumes are supported",
            dim.len()
        )));
    }
    let voxels: u64 = dim.iter().map(|&d| u64::from(d)).product();
    if voxels > max_voxels {
        return Err(VolumeError(format!(
            "{what} declares {} × {} × {} = {voxels} voxels, more than the budget of {max_voxels} voxels",
            dim[0], dim[1], dim[2]
        )));
    }
    let datatype = header.data_type().map_err(|e| refuse(what, e))?;
    let voxel_type = VoxelType::of(datatype)
        .ok_or_else(|| VolumeError(format!("{what} has voxel type {datatype:?}, which is not supported")))?;
    if header.bitpix as usize != datatype.size_of() * 8 {
        return Err(refuse(what, format!("its bitpix {} does not fit voxel type {voxel_type}", header.bitpix)));
    }
    let pixdim = |axis: usize| header.pixdim[axis].abs();
    let meta = VolumeMeta {
        dims: [dim[0] as u32, dim[1] as u32, dim[2] as u32],
        voxel_type,
        spacing_mm: [pixdim(1), pixdim(2), pixdim(3)],
    };
    Ok((VolumeInfo { header, meta }, voxels * datatype.size_of() as u64))
}

fn read_volume(what: &str, mut source: impl Read, max_voxels: u64) -> Result<Volume, VolumeError> {
    let (VolumeInfo { header, meta }, _, expected) = read_header(what, &mut source, max_voxels)?;
    let mut raw = Vec::new();
    raw.try_reserve_exact(expected as usize)
        .map_err(|_| refuse(what, format!("{expected} bytes of voxels do not fit in memory")))?;
    source.take(expected).read_to_end(&mut raw).map_err(|e| unreadable(what, e))?;
    if (raw.len() as u64) < expected {
        return Err(refuse(
            what,
            format!("the file is truncated: it holds {} of its {expected} voxel bytes", raw.len()),
        ));
    }
    Ok(Volume { header, meta, raw })
}

impl Volume {
    /// Parses a `.nii` or `.nii.gz` file of at most [`DEFAULT_MAX_VOXELS`]; `what` names it in
    /// error messages.
    pub fn parse(what: &str, bytes: &[u8]) -> Result<Volume, VolumeError> {
        Self::parse_within(what, bytes, DEFAULT_MAX_VOXELS)
    }

    /// Parses a `.nii` or `.nii.gz` file declaring at most `max_voxels` voxels.
    ///
    /// The header is read first and believed only where it fits the file: the declared size
    /// must be within the budget before anything else is inflated, the voxels are read at
    /// `vox_offset` (extensions and padding skipped) and must all be there. Gzip is inflated
    /// while the voxels are read, so a volume is held once, not twice: this matters in the
    /// browser, where a 512×512×300 int16 volume is 157 MB.
    pub fn parse_within(what: &str, bytes: &[u8], max_voxels: u64) -> Result<Volume, VolumeError> {
        if bytes.starts_with(&[0x1f, 0x8b]) {
            read_volume(what, GzDecoder::new(bytes), max_voxels)
        } else {
            read_volume(what, bytes, max_voxels)
        }
    }

    /// A volume from a header's 348 bytes and its voxel bytes (as stored, the file's byte
    /// order), such as the slabs of a volume joined; the voxels must be exactly as many as the
    /// header declares.
    pub fn from_parts(what: &str, header_bytes: &[u8], raw: Vec<u8>) -> Result<Volume, VolumeError> {
        let (VolumeInfo { header, meta }, expected) = check_header(what, header_bytes, DEFAULT_MAX_VOXELS)?;
        if raw.len() as u64 != expected {
            return Err(refuse(
                what,
                format!("it holds {} voxel bytes where its header declares {expected}", raw.len()),
            ));
        }
        Ok(Volume { header, meta, raw })
    }

    pub fn voxel_count(&self) -> usize {
        self.meta.dims.iter().map(|&d| d as usize).product()
    }

    /// A volume of the header's size, every voxel bytes 0, to be filled (slab by slab).
    pub fn zeroed(what: &str, header_bytes: &[u8]) -> Result<Volume, VolumeError> {
        let (VolumeInfo { header, meta }, expected) = check_header(what, header_bytes, DEFAULT_MAX_VOXELS)?;
        // Asked for first so that a volume too large for memory is refused, not a crash; then
        // allocated zeroed, which costs nothing on fresh memory (no byte-by-byte fill).
        Vec::<u8>::new()
            .try_reserve_exact(expected as usize)
            .map_err(|_| refuse(what, format!("{expected} bytes of voxels do not fit in memory")))?;
        Ok(Volume { header, meta, raw: vec![0; expected as usize] })
    }

    /// The voxels as label values, refusing anything that is not an integer in 0..=255.
    pub fn into_labels(self, what: &str) -> Result<Vec<u8>, VolumeError> {
        let datatype = self.header.data_type().map_err(|e| refuse(what, e))?;
        let (slope, inter) = self.scaling();
        let little = self.header.endianness == nifti::Endianness::Little;
        let raw = self.raw;
        if datatype == NiftiType::Uint8 && (slope, inter) == (1.0, 0.0) {
            return Ok(raw); // the stored form of every mask we write: no conversion
        }
        let size = datatype.size_of();
        let read = |b: &[u8]| -> f64 {
            macro_rules! num {
                ($t:ty) => {{
                    let bytes = b.try_into().expect("chunk of the type's size");
                    (if little { <$t>::from_le_bytes(bytes) } else { <$t>::from_be_bytes(bytes) }) as f64
                }};
            }
            match datatype {
                NiftiType::Uint8 => b[0] as f64,
                NiftiType::Int8 => b[0] as i8 as f64,
                NiftiType::Int16 => num!(i16),
                NiftiType::Uint16 => num!(u16),
                NiftiType::Int32 => num!(i32),
                NiftiType::Uint32 => num!(u32),
                NiftiType::Float32 => num!(f32),
                _ => num!(f64),
            }
        };
        raw.chunks_exact(size)
            .enumerate()
            .map(|(index, chunk)| {
                let value = read(chunk) * slope + inter;
                if value.fract() == 0.0 && (0.0..=255.0).contains(&value) {
                    Ok(value as u8)
                } else {
                    Err(VolumeError(format!("{what} holds {value} at voxel {index}; label masks hold integers 0–255")))
                }
            })
            .collect()
    }

    /// `scl_slope` and `scl_inter`; a zero or non-finite slope means no scaling (NIfTI-1).
    fn scaling(&self) -> (f64, f64) {
        match self.header.scl_slope {
            s if s == 0.0 || !s.is_finite() => (1.0, 0.0),
            s => (f64::from(s), f64::from(self.header.scl_inter)),
        }
    }

    /// The voxel-to-world transform (rows x, y, z of a 3×4 matrix, millimetres, RAS+): the
    /// sform when set, else the qform, else plain voxel spacing (the NIfTI-1 rules).
    pub fn affine(&self) -> [[f64; 4]; 3] {
        let h = &self.header;
        if h.sform_code > 0 {
            return [h.srow_x, h.srow_y, h.srow_z].map(|row| row.map(f64::from));
        }
        let spacing = [1, 2, 3].map(|axis| f64::from(h.pixdim[axis]));
        if h.qform_code <= 0 {
            return [[spacing[0], 0.0, 0.0, 0.0], [0.0, spacing[1], 0.0, 0.0], [0.0, 0.0, spacing[2], 0.0]];
        }
        let [b, c, d] = [h.quatern_b, h.quatern_c, h.quatern_d].map(f64::from);
        let a = (1.0 - (b * b + c * c + d * d)).max(0.0).sqrt();
        let rotation = [
            [a * a + b * b - c * c - d * d, 2.0 * (b * c - a * d), 2.0 * (b * d + a * c)],
            [2.0 * (b * c + a * d), a * a + c * c - b * b - d * d, 2.0 * (c * d - a * b)],
            [2.0 * (b * d - a * c), 2.0 * (c * d + a * b), a * a + d * d - c * c - b * b],
        ];
        let qfac = if h.pixdim[0] < 0.0 { -1.0 } else { 1.0 };
        let scale = [spacing[0], spacing[1], qfac * spacing[2]];
        let offset = [h.quatern_x, h.quatern_y, h.quatern_z].map(f64::from);
        std::array::from_fn(|row| {
            let r = rotation[row];
            [r[0] * scale[0], r[1] * scale[1], r[2] * scale[2], offset[row]]
        })
    }

    /// The voxels as intensities, kept in their file bytes (no widening copy).
    pub fn into_samples(self, what: &str) -> Result<Samples, VolumeError> {
        let datatype = self.header.data_type().map_err(|e| refuse(what, e))?;
        let kind = match datatype {
            NiftiType::Uint8 => SampleKind::U8,
            NiftiType::Int8 => SampleKind::I8,
            NiftiType::Int16 => SampleKind::I16,
            NiftiType::Uint16 => SampleKind::U16,
            NiftiType::Int32 => SampleKind::I32,
            NiftiType::Uint32 => SampleKind::U32,
            NiftiType::Float32 => SampleKind::F32,
            _ => SampleKind::F64,
        };
        let (slope, inter) = self.scaling();
        let (slope, inter) = (slope as f32, inter as f32);
        let big_endian = self.header.endianness == nifti::Endianness::Big;
        let mut bytes = self.raw;
        if big_endian {
            bytes.chunks_exact_mut(datatype.size_of()).for_each(<[u8]>::reverse);
        }
        Ok(Samples { kind, bytes, slope, inter, big_endian })
    }

    /// The header and metadata alone.
    pub fn info(&self) -> VolumeInfo {
        VolumeInfo { header: self.header.clone(), meta: self.meta.clone() }
    }
}

/// Voxel type of [`Samples`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SampleKind {
    U8,
    I8,
    I16,
    U16,
    I32,
    U32,
    F32,
    F64,
}

/// Image intensities in file order (i fastest), little-endian bytes of `kind`, read with the
/// header's scaling applied.
pub struct Samples {
    kind: SampleKind,
    bytes: Vec<u8>,
    slope: f32,
    inter: f32,
    /// Whether the file stores them big-endian (they are kept little-endian).
    big_endian: bool,
}

impl Samples {
    pub fn len(&self) -> usize {
        self.bytes.len() / self.voxel_bytes()
    }

    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// Bytes per voxel.
    pub fn voxel_bytes(&self) -> usize {
        match self.kind {
            SampleKind::U8 | SampleKind::I8 => 1,
            SampleKind::I16 | SampleKind::U16 => 2,
            SampleKind::I32 | SampleKind::U32 | SampleKind::F32 => 4,
            SampleKind::F64 => 8,
        }
    }

    /// The scaled intensity of voxel `index`.
    #[inline]
    pub fn get(&self, index: usize) -> f32 {
        let b = &self.bytes;
        macro_rules! at {
            ($t:ty, $n:literal) => {
                <$t>::from_le_bytes(b[index * $n..index * $n + $n].try_into().expect("sized slice")) as f32
            };
        }
        let raw = match self.kind {
            SampleKind::U8 => b[index] as f32,
            SampleKind::I8 => b[index] as i8 as f32,
            SampleKind::I16 => at!(i16, 2),
            SampleKind::U16 => at!(u16, 2),
            SampleKind::I32 => at!(i32, 4),
            SampleKind::U32 => at!(u32, 4),
            SampleKind::F32 => at!(f32, 4),
            SampleKind::F64 => at!(f64, 8),
        };
        raw * self.slope + self.inter
    }

    /// Writes voxel bytes as the file stores them (a slab's) from voxel `first` on.
    pub fn write_file_bytes(&mut self, first: usize, raw: &[u8]) {
        let size = self.voxel_bytes();
        let target = &mut self.bytes[first * size..first * size + raw.len()];
        target.copy_from_slice(raw);
        if self.big_endian {
            target.chunks_exact_mut(size).for_each(<[u8]>::reverse);
        }
    }

    /// Intensities at the `low` and `high` fractions (0..=1) of the distribution, estimated
    /// from an even sample of at most 100,000 voxels; NaNs are ignored.
    pub fn percentiles(&self, low: f64, high: f64) -> (f32, f32) {
        self.percentiles_of(0..self.len(), low, high)
    }

    /// [`Samples::percentiles`] of the voxels in `voxels` alone.
    pub fn percentiles_of(&self, voxels: std::ops::Range<usize>, low: f64, high: f64) -> (f32, f32) {
        let step = (voxels.len() / 100_000).max(1);
        let mut values: Vec<f32> = voxels.step_by(step).map(|i| self.get(i)).filter(|v| v.is_finite()).collect();
        if values.is_empty() {
            return (0.0, 1.0);
        }
        values.sort_unstable_by(f32::total_cmp);
        let at = |fraction: f64| values[((values.len() - 1) as f64 * fraction).round() as usize];
        (at(low), at(high))
    }
}

/// A uint8 label mask as an uncompressed NIfTI-1 file with the geometry of `reference`.
pub fn encode_mask(reference: &NiftiHeader, dims: [u32; 3], labels: &[u8]) -> Vec<u8> {
    encode_volume(reference, dims, NiftiType::Uint8, labels)
}

/// An empty (all 0) uint8 mask as a `.nii.gz`, compressed a slab at a time: no volume of
/// zeros is ever allocated.
pub fn gzip_empty_mask(reference: &NiftiHeader, dims: [u32; 3], level: u32) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::new(level));
    encoder
        .write_all(&volume_header(reference, dims, NiftiType::Uint8, UNSCALED))
        .expect("writing to a Vec cannot fail");
    let zeros = [0u8; 1 << 16];
    let mut left: u64 = dims.iter().map(|&d| u64::from(d)).product();
    while left > 0 {
        let n = left.min(zeros.len() as u64) as usize;
        encoder.write_all(&zeros[..n]).expect("writing to a Vec cannot fail");
        left -= n as u64;
    }
    encoder.finish().expect("writing to a Vec cannot fail")
}

/// A uint8 label mask as a `.nii.gz`, compressed without first copying the voxels.
pub fn gzip_mask(reference: &NiftiHeader, dims: [u32; 3], labels: &[u8], level: u32) -> Vec<u8> {
    gzip_mask_slabs(reference, dims, &[labels], level)
}

/// A uint8 label mask held in consecutive parts (slabs) as a `.nii.gz`, without joining them.
pub fn gzip_mask_slabs(reference: &NiftiHeader, dims: [u32; 3], parts: &[impl AsRef<[u8]>], level: u32) -> Vec<u8> {
    let size: usize = parts.iter().map(|p| p.as_ref().len()).sum();
    let mut encoder = GzEncoder::new(Vec::with_capacity(size / 16 + 1024), Compression::new(level));
    encoder
        .write_all(&volume_header(reference, dims, NiftiType::Uint8, UNSCALED))
        .expect("writing to a Vec cannot fail");
    for part in parts {
        encoder.write_all(part.as_ref()).expect("writing to a Vec cannot fail");
    }
    encoder.finish().expect("writing to a Vec cannot fail")
}

/// The 348-byte header of a uint8 mask with the geometry of `reference`, as [`gzip_mask`]
/// writes it.
pub fn mask_header(reference: &NiftiHeader, dims: [u32; 3]) -> Vec<u8> {
    let mut header = volume_header(reference, dims, NiftiType::Uint8, UNSCALED);
    header.truncate(HEADER_BYTES as usize);
    header
}

/// An uncompressed single-file NIfTI-1 volume with the geometry of `reference`; `voxels` are
/// little-endian values of `datatype` in file order (i fastest).
pub fn encode_volume(reference: &NiftiHeader, dims: [u32; 3], datatype: NiftiType, voxels: &[u8]) -> Vec<u8> {
    let mut out = volume_header(reference, dims, datatype, UNSCALED);
    out.extend_from_slice(voxels);
    out
}

/// The 352 bytes before the voxels of a new scanner-space image (a converted DICOM series):
/// `affine` maps voxel indices to RAS+ millimetres and is written as both sform and qform
/// (scanner, code 1), so every reader places it alike; values read as `stored × slope + inter`.
pub fn image_header(dims: [u32; 3], affine: &[[f64; 4]; 3], voxel_type: VoxelType, scaling: (f32, f32)) -> Vec<u8> {
    let column = |axis: usize| [affine[0][axis], affine[1][axis], affine[2][axis]];
    let norm = |v: [f64; 3]| (v[0] * v[0] + v[1] * v[1] + v[2] * v[2]).sqrt();
    let spacing = [0, 1, 2].map(|axis| norm(column(axis)));
    let mut rotation: [[f64; 3]; 3] =
        std::array::from_fn(|row| std::array::from_fn(|axis| affine[row][axis] / spacing[axis].max(f64::MIN_POSITIVE)));
    let determinant = rotation[0][0] * (rotation[1][1] * rotation[2][2] - rotation[1][2] * rotation[2][1])
        - rotation[0][1] * (rotation[1][0] * rotation[2][2] - rotation[1][2] * rotation[2][0])
        + rotation[0][2] * (rotation[1][0] * rotation[2][1] - rotation[1][1] * rotation[2][0]);
    // A left-handed grid is a proper rotation with the third axis flipped (qfac = -1).
    let qfac = if determinant < 0.0 { -1.0 } else { 1.0 };
    rotation.iter_mut().for_each(|row| row[2] *= qfac);
    let [b, c, d] = quaternion(&rotation);
    let reference = NiftiHeader {
        pixdim: [qfac as f32, spacing[0] as f32, spacing[1] as f32, spacing[2] as f32, 0.0, 0.0, 0.0, 0.0],
        xyzt_units: 2, // millimetres
        qform_code: 1,
        sform_code: 1,
        quatern_b: b as f32,
        quatern_c: c as f32,
        quatern_d: d as f32,
        quatern_x: affine[0][3] as f32,
        quatern_y: affine[1][3] as f32,
        quatern_z: affine[2][3] as f32,
        srow_x: affine[0].map(|v| v as f32),
        srow_y: affine[1].map(|v| v as f32),
        srow_z: affine[2].map(|v| v as f32),
        ..NiftiHeader::default()
    };
    volume_header(&reference, dims, voxel_type.nifti_type(), scaling)
}

/// The quaternion (b, c, d; a ≥ 0) of a proper rotation matrix, as NIfTI-1's
/// `nifti_mat44_to_quatern` computes it.
fn quaternion(r: &[[f64; 3]; 3]) -> [f64; 3] {
    let trace = r[0][0] + r[1][1] + r[2][2] + 1.0;
    let [a, b, c, d] = if trace > 0.5 {
        let a = 0.5 * trace.sqrt();
        [a, 0.25 * (r[2][1] - r[1][2]) / a, 0.25 * (r[0][2] - r[2][0]) / a, 0.25 * (r[1][0] - r[0][1]) / a]
    } else {
        let xd = 1.0 + r[0][0] - (r[1][1] + r[2][2]);
        let yd = 1.0 + r[1][1] - (r[0][0] + r[2][2]);
        let zd = 1.0 + r[2][2] - (r[0][0] + r[1][1]);
        if xd > 1.0 {
            let b = 0.5 * xd.sqrt();
            [0.25 * (r[2][1] - r[1][2]) / b, b, 0.25 * (r[0][1] + r[1][0]) / b, 0.25 * (r[0][2] + r[2][0]) / b]
        } else if yd > 1.0 {
            let c = 0.5 * yd.sqrt();
            [0.25 * (r[0][2] - r[2][0]) / c, 0.25 * (r[0][1] + r[1][0]) / c, c, 0.25 * (r[1][2] + r[2][1]) / c]
        } else {
            let d = 0.5 * zd.sqrt();
            [0.25 * (r[1][0] - r[0][1]) / d, 0.25 * (r[0][2] + r[2][0]) / d, 0.25 * (r[1][2] + r[2][1]) / d, d]
        }
    };
    if a < 0.0 {
        [-b, -c, -d]
    } else {
        [b, c, d]
    }
}

/// Masks and derived volumes hold their values as stored.
const UNSCALED: (f32, f32) = (1.0, 0.0);

/// The 352 bytes before the voxels: header and an empty extension flag.
///
/// Written by hand (the `nifti` crate writes only to paths): this is on the label-save path.
fn volume_header(reference: &NiftiHeader, dims: [u32; 3], datatype: NiftiType, scaling: (f32, f32)) -> Vec<u8> {
    let mut out = Vec::with_capacity(VOX_OFFSET);
    let mut put = |bytes: &[u8]| out.extend_from_slice(bytes);
    put(&348i32.to_le_bytes());
    put(&[0u8; 10 + 18]); // data_type, db_name (unused ANALYZE fields)
    put(&0i32.to_le_bytes()); // extents
    put(&0i16.to_le_bytes()); // session_error
    put(&[b'r', reference.dim_info]);
    let mut dim = [1i16; 8];
    dim[0] = 3;
    for axis in 0..3 {
        dim[axis + 1] = dims[axis] as i16;
    }
    dim.iter().for_each(|d| put(&d.to_le_bytes()));
    for p in [reference.intent_p1, reference.intent_p2, reference.intent_p3] {
        put(&p.to_le_bytes());
    }
    put(&0i16.to_le_bytes()); // intent_code: none
    put(&(datatype as i16).to_le_bytes());
    put(&((datatype.size_of() * 8) as i16).to_le_bytes()); // bitpix
    put(&0i16.to_le_bytes()); // slice_start
    let mut pixdim = reference.pixdim;
    pixdim[4..].iter_mut().for_each(|p| *p = if *p == 0.0 { 1.0 } else { *p });
    pixdim.iter().for_each(|p| put(&p.to_le_bytes()));
    put(&(VOX_OFFSET as f32).to_le_bytes());
    put(&scaling.0.to_le_bytes()); // scl_slope
    put(&scaling.1.to_le_bytes()); // scl_inter
    put(&0i16.to_le_bytes()); // slice_end
    put(&[0u8, reference.xyzt_units]); // slice_code, units
    for v in [0f32, 0.0, 0.0, 0.0] {
        put(&v.to_le_bytes()); // cal_max, cal_min, slice_duration, toffset
    }
    put(&0i32.to_le_bytes()); // glmax
    put(&0i32.to_le_bytes()); // glmin
    let mut descrip = [0u8; 80];
    descrip[..6].copy_from_slice(b"seglab");
    put(&descrip);
    put(&[0u8; 24]); // aux_file
    put(&reference.qform_code.to_le_bytes());
    put(&reference.sform_code.to_le_bytes());
    for q in [
        reference.quatern_b,
        reference.quatern_c,
        reference.quatern_d,
        reference.quatern_x,
        reference.quatern_y,
        reference.quatern_z,
    ] {
        put(&q.to_le_bytes());
    }
    for row in [reference.srow_x, reference.srow_y, reference.srow_z] {
        row.iter().for_each(|v| put(&v.to_le_bytes()));
    }
    put(&[0u8; 16]); // intent_name
    put(b"n+1\0");
    put(&[0u8; 4]); // no extensions
    debug_assert_eq!(out.len(), VOX_OFFSET);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference() -> NiftiHeader {
        NiftiHeader {
            pixdim: [1.0, 0.8, 0.9, 2.5, 0.0, 0.0, 0.0, 0.0],
            sform_code: 1,
            srow_x: [-0.8, 0.0, 0.0, 90.0],
            srow_y: [0.0, 0.9, 0.0, -126.0],
            srow_z: [0.0, 0.0, 2.5, -72.0],
            ..NiftiHeader::default()
        }
    }

    #[test]
    fn written_mask_reads_back_with_geometry_and_voxels() {
        let dims = [5, 4, 3];
        let labels: Vec<u8> = (0..60).map(|i| (i % 7) as u8).collect();
        let file = gzip_mask(&reference(), dims, &labels, 6);
        let mut raw = Vec::new();
        GzDecoder::new(&file[..]).read_to_end(&mut raw).unwrap();
        assert_eq!(raw, encode_mask(&reference(), dims, &labels));
        let volume = Volume::parse("mask", &file).unwrap();
        assert_eq!(volume.meta.dims, dims);
        assert_eq!(volume.meta.voxel_type, VoxelType::Uint8);
        assert_eq!(volume.meta.spacing_mm, [0.8, 0.9, 2.5]);
        assert_eq!(volume.header.srow_x, reference().srow_x);
        assert_eq!(volume.header.sform_code, 1);
        assert_eq!(volume.into_labels("mask").unwrap(), labels);
    }

    #[test]
    fn truncated_and_foreign_files_are_refused() {
        let file = gzip_mask(&reference(), [5, 4, 3], &[0; 60], 6);
        let err = Volume::parse("image", &file[..file.len() / 2]).err().unwrap();
        assert!(err.to_string().contains("truncated"), "{err}");
        let raw = encode_mask(&reference(), [5, 4, 3], &[0; 60]);
        assert!(Volume::parse("image", &raw[..raw.len() - 10]).is_err());
        let err = Volume::parse("image", b"PK\x03\x04 this is a zip file").err().unwrap();
        assert!(err.to_string().contains("not a readable NIfTI-1 volume"), "{err}");
        // A header whose bitpix disagrees with its datatype (int16 stored as 8 bits).
        let mut lying = encode_volume(&reference(), [5, 4, 3], NiftiType::Int16, &[0; 120]);
        lying[72..74].copy_from_slice(&8i16.to_le_bytes());
        lying.truncate(VOX_OFFSET + 60);
        let err = Volume::parse("image", &lying).err().unwrap();
        assert!(err.to_string().contains("bitpix 8"), "{err}");
    }

    /// Counts the bytes a reader hands out.
    struct Counting<R> {
        inner: R,
        read: u64,
    }

    impl<R: Read> Read for Counting<R> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = self.inner.read(buf)?;
            self.read += n as u64;
            Ok(n)
        }
    }

    #[test]
    fn a_size_over_the_budget_is_refused_from_the_header_alone() {
        // 2048 × 2048 × 1024 int16 declared, followed by endless zeros: a gzip bomb's content.
        let header = encode_volume(&reference(), [2048, 2048, 1024], NiftiType::Int16, &[])[..VOX_OFFSET].to_vec();
        let mut source = Counting { inner: (&header[..]).chain(std::io::repeat(0)), read: 0 };
        let err = read_volume("image", &mut source, DEFAULT_MAX_VOXELS).err().unwrap();
        assert!(
            err.to_string().contains("2048 × 2048 × 1024 = 4294967296 voxels, more than the budget of 536870912"),
            "{err}"
        );
        assert!(source.read <= 4096, "read {} bytes before refusing", source.read);
        let small = encode_volume(&reference(), [5, 4, 3], NiftiType::Int16, &[0; 120]);
        assert!(Volume::parse_within("image", &small, 59).err().unwrap().to_string().contains("budget of 59"));
        assert!(Volume::parse_within("image", &small, 60).is_ok());
    }

    #[test]
    fn voxels_are_read_at_vox_offset_and_an_offset_past_the_data_is_refused() {
        let voxels: Vec<u8> = (0..120).map(|i| i as u8).collect();
        let plain = encode_volume(&reference(), [5, 4, 3], NiftiType::Int16, &voxels);
        // The same file with 48 bytes of padding before the voxels, as vox_offset 400 says.
        let mut padded = plain[..VOX_OFFSET].to_vec();
        padded[108..112].copy_from_slice(&400f32.to_le_bytes());
        padded.extend([0xab; 48]);
        padded.extend(&voxels);
        for file in [padded.clone(), gzip(&padded, 1)] {
            let volume = Volume::parse("image", &file).unwrap();
            assert_eq!(volume.raw, voxels);
        }
        let with_offset = |offset: f32| {
            let mut file = plain.clone();
            file[108..112].copy_from_slice(&offset.to_le_bytes());
            Volume::parse("image", &file).err().map(|e| e.to_string()).unwrap_or_default()
        };
        assert!(with_offset(1.0e9).contains("more than 16777216 bytes of extensions"), "{}", with_offset(1.0e9));
        assert!(with_offset(2000.0).contains("beyond the end of the file"), "{}", with_offset(2000.0));
        assert!(with_offset(100.0).contains("does not point past the header"));
        assert!(with_offset(f32::NAN).contains("does not point past the header"));
    }

    #[test]
    fn non_label_values_are_refused() {
        let mut file = encode_mask(&reference(), [2, 1, 1], &[0, 1]);
        // Patch scl_slope to 0.5 so voxel 1 reads as 0.5.
        file[112..116].copy_from_slice(&0.5f32.to_le_bytes());
        let err = Volume::parse("mask", &file).unwrap().into_labels("mask").err().unwrap();
        assert!(err.to_string().contains("integers 0–255"), "{err}");
    }

    #[test]
    fn image_headers_place_the_grid_alike_through_sform_and_qform() {
        let (s, c) = (0.3f64.sin(), 0.3f64.cos());
        let oblique = [[-0.7 * c, 0.0, 2.5 * s, 91.0], [0.0, -0.8, 0.0, 120.5], [-0.7 * s, 0.0, -2.5 * c, -40.0]];
        let flipped = [[0.0, 0.0, -1.2, 10.0], [-0.5, 0.0, 0.0, -3.0], [0.0, 0.5, 0.0, 7.0]];
        for affine in [oblique, flipped] {
            let mut file = image_header([4, 3, 2], &affine, VoxelType::Int16, (2.0, -1024.0));
            file.extend(vec![0; 4 * 3 * 2 * 2]);
            let from_sform = Volume::parse("image", &file).unwrap();
            assert_eq!((from_sform.header.scl_slope, from_sform.header.scl_inter), (2.0, -1024.0));
            file[254..256].copy_from_slice(&0i16.to_le_bytes()); // sform_code: none, so the qform rules
            let from_qform = Volume::parse("image", &file).unwrap();
            for (placed, expected) in [from_sform.affine(), from_qform.affine()]
                .iter()
                .flatten()
                .flatten()
                .zip([affine, affine].iter().flatten().flatten())
            {
                assert!((placed - expected).abs() < 1e-4, "{placed} != {expected}");
            }
        }
    }
}
