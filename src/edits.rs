//! Mask edits as sent from the browser to the server: the voxels that changed since the base
//! mask version, as runs of consecutive voxel indices (file order, i fastest) that take one
//! label value. Compiled into both the WASM front end (which encodes) and the server (which
//! decodes, validates and applies), so both always agree on the format.
//!
//! Wire format (then base64 in JSON): a version byte `1`, the run count as a LEB128 varint,
//! then per run: the gap from the end of the previous run (varint), the run length (varint),
//! and the label value (one byte). A brush stroke of a few thousand voxels is a few hundred
//! runs: one to two kilobytes.

use std::fmt;

const FORMAT_VERSION: u8 = 1;

/// Voxels `start..start + len` all become `value`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Run {
    pub start: u64,
    pub len: u64,
    pub value: u8,
}

/// How many voxels of each label value an edit adds (negative: takes away); label 0 left out.
pub type LabelChanges = std::collections::BTreeMap<u8, i64>;

/// Sorted, non-overlapping runs of changed voxels.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MaskEdits {
    runs: Vec<Run>,
}

/// Why an encoded edit list was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EditsError {
    UnknownVersion(u8),
    Truncated,
    TrailingBytes,
    EmptyRun { run: usize },
    OutOfBounds { run: usize, end: u64, voxel_count: u64 },
    UnknownLabel { run: usize, value: u8 },
    Empty,
}

impl fmt::Display for EditsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnknownVersion(v) => {
                write!(f, "edits use format version {v}; this server reads version {FORMAT_VERSION}")
            }
            Self::Truncated => write!(f, "edits are truncated"),
            Self::TrailingBytes => write!(f, "edits have bytes after the last run"),
            Self::EmptyRun { run } => write!(f, "edit run {run} has length 0"),
            Self::OutOfBounds { run, end, voxel_count } => {
                write!(f, "edit run {run} reaches voxel {end}, beyond the mask's {voxel_count} voxels")
            }
            Self::UnknownLabel { run, value } => {
                write!(f, "edit run {run} sets label {value}, which this case does not define")
            }
            Self::Empty => write!(f, "edits change no voxel"),
        }
    }
}

impl std::error::Error for EditsError {}

impl MaskEdits {
    pub fn runs(&self) -> &[Run] {
        &self.runs
    }

    /// Number of voxels the edits set.
    pub fn voxel_count(&self) -> u64 {
        self.runs.iter().map(|r| r.len).sum()
    }

    /// The voxels of `current` that differ from `base`, with their new values.
    pub fn diff(base: &[u8], current: &[u8]) -> MaskEdits {
        assert_eq!(base.len(), current.len(), "diff of masks of different sizes");
        Self::diff_parts([(0, base)], current)
    }

    /// The voxels of `current` that differ from a base known only in `parts` (each its first
    /// voxel and values, in increasing order, not overlapping), equal to `current` elsewhere.
    pub fn diff_parts<'a>(parts: impl IntoIterator<Item = (usize, &'a [u8])>, current: &[u8]) -> MaskEdits {
        let mut runs: Vec<Run> = Vec::new();
        for (first, base) in parts {
            for (offset, (old, new)) in base.iter().zip(&current[first..first + base.len()]).enumerate() {
                if old == new {
                    continue;
                }
                let index = (first + offset) as u64;
                match runs.last_mut() {
                    Some(run) if run.start + run.len == index && run.value == *new => run.len += 1,
                    _ => runs.push(Run { start: index, len: 1, value: *new }),
                }
            }
        }
        MaskEdits { runs }
    }

    /// How many voxels of each label value applying these edits to `base` adds (or, negative,
    /// takes away); label 0 is left out. The reference the slab-wise count is tested against.
    #[cfg(test)]
    pub fn count_changes(&self, base: &[u8]) -> LabelChanges {
        let mut changes = std::collections::BTreeMap::new();
        for run in &self.runs {
            for &old in &base[run.start as usize..(run.start + run.len) as usize] {
                if old != run.value {
                    if old != 0 {
                        *changes.entry(old).or_insert(0) -= 1;
                    }
                    if run.value != 0 {
                        *changes.entry(run.value).or_insert(0) += 1;
                    }
                }
            }
        }
        changes.retain(|_, change| *change != 0);
        changes
    }

    /// Sets the edited voxels in `mask`.
    pub fn apply(&self, mask: &mut [u8]) {
        for run in &self.runs {
            mask[run.start as usize..(run.start + run.len) as usize].fill(run.value);
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(8 + self.runs.len() * 4);
        out.push(FORMAT_VERSION);
        put_varint(&mut out, self.runs.len() as u64);
        let mut end = 0;
        for run in &self.runs {
            put_varint(&mut out, run.start - end);
            put_varint(&mut out, run.len);
            out.push(run.value);
            end = run.start + run.len;
        }
        out
    }

    /// Decodes and validates against a mask of `voxel_count` voxels whose labels are
    /// `allowed` (0, erasing, is always allowed).
    pub fn decode(bytes: &[u8], voxel_count: u64, allowed: &[u8]) -> Result<MaskEdits, EditsError> {
        let mut input = bytes;
        let version = *input.first().ok_or(EditsError::Truncated)?;
        if version != FORMAT_VERSION {
            return Err(EditsError::UnknownVersion(version));
        }
        input = &input[1..];
        let count = take_varint(&mut input)?;
        // Each run takes at least three bytes, so a huge count cannot make us allocate.
        if count > input.len() as u64 / 3 {
            return Err(EditsError::Truncated);
        }
        let mut runs = Vec::with_capacity(count as usize);
        let mut end = 0u64;
        for run in 0..count as usize {
            let start = end.checked_add(take_varint(&mut input)?).ok_or(EditsError::OutOfBounds {
                run,
                end: u64::MAX,
                voxel_count,
            })?;
            let len = take_varint(&mut input)?;
            let (&value, rest) = input.split_first().ok_or(EditsError::Truncated)?;
            input = rest;
            if len == 0 {
                return Err(EditsError::EmptyRun { run });
            }
            end = start.checked_add(len).filter(|e| *e <= voxel_count).ok_or(EditsError::OutOfBounds {
                run,
                end: start.saturating_add(len),
                voxel_count,
            })?;
            if value != 0 && !allowed.contains(&value) {
                return Err(EditsError::UnknownLabel { run, value });
            }
            runs.push(Run { start, len, value });
        }
        if !input.is_empty() {
            return Err(EditsError::TrailingBytes);
        }
        if runs.is_empty() {
            return Err(EditsError::Empty);
        }
        Ok(MaskEdits { runs })
    }
}

fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn take_varint(input: &mut &[u8]) -> Result<u64, EditsError> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let (&byte, rest) = input.split_first().ok_or(EditsError::Truncated)?;
        *input = rest;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err(EditsError::Truncated)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A filled disc of radius `r` at (ci, cj) in slice `k` of an `n`×`n`×`n` mask.
    fn paint_disc(mask: &mut [u8], n: usize, k: usize, ci: usize, cj: usize, r: usize, value: u8) {
        for j in cj - r..=cj + r {
            for i in ci - r..=ci + r {
                let (di, dj) = (i as i64 - ci as i64, j as i64 - cj as i64);
                if di * di + dj * dj <= (r * r) as i64 {
                    mask[i + n * (j + n * k)] = value;
                }
            }
        }
    }

    #[test]
    fn diff_encode_decode_apply_round_trip() {
        let n = 64;
        let base = vec![0u8; n * n * n];
        let mut edited = base.clone();
        paint_disc(&mut edited, n, 10, 20, 20, 6, 1);
        paint_disc(&mut edited, n, 11, 30, 30, 4, 2);
        let edits = MaskEdits::diff(&base, &edited);
        let decoded = MaskEdits::decode(&edits.encode(), (n * n * n) as u64, &[1, 2]).unwrap();
        assert_eq!(decoded, edits);
        let mut rebuilt = base.clone();
        decoded.apply(&mut rebuilt);
        assert_eq!(rebuilt, edited);
    }

    #[test]
    fn a_brush_stroke_of_thousands_of_voxels_is_a_few_kilobytes() {
        let n = 512;
        let base = vec![0u8; n * n * 3];
        let mut edited = base.clone();
        for step in 0..60 {
            paint_disc(&mut edited, n, 1, 100 + step * 4, 200 + step, 8, 1);
        }
        let edits = MaskEdits::diff(&base, &edited);
        let encoded = edits.encode();
        assert!(edits.voxel_count() > 3000, "{} voxels", edits.voxel_count());
        assert!(encoded.len() < 4096, "{} bytes for {} voxels", encoded.len(), edits.voxel_count());
    }

    #[test]
    fn malformed_and_out_of_range_edits_are_refused() {
        let good = MaskEdits { runs: vec![Run { start: 5, len: 3, value: 1 }] }.encode();
        assert_eq!(MaskEdits::decode(&[], 10, &[1]), Err(EditsError::Truncated));
        assert_eq!(MaskEdits::decode(&[2, 0], 10, &[1]), Err(EditsError::UnknownVersion(2)));
        assert_eq!(MaskEdits::decode(&good[..good.len() - 1], 10, &[1]), Err(EditsError::Truncated));
        let mut trailing = good.clone();
        trailing.push(0);
        assert_eq!(MaskEdits::decode(&trailing, 10, &[1]), Err(EditsError::TrailingBytes));
        assert!(matches!(MaskEdits::decode(&good, 7, &[1]), Err(EditsError::OutOfBounds { end: 8, .. })));
        assert_eq!(MaskEdits::decode(&good, 10, &[2]), Err(EditsError::UnknownLabel { run: 0, value: 1 }));
        assert_eq!(MaskEdits::decode(&[1, 0], 10, &[1]), Err(EditsError::Empty));
        assert_eq!(MaskEdits::decode(&[1, 1, 0, 0, 1], 10, &[1]), Err(EditsError::EmptyRun { run: 0 }));
        // A count far beyond the bytes present, and a varint that never ends.
        assert_eq!(MaskEdits::decode(&[1, 0xff, 0xff, 0xff, 0x0f], 10, &[1]), Err(EditsError::Truncated));
        assert_eq!(MaskEdits::decode(&[1, 1, 0xff, 0xff, 0xff], 10, &[1]), Err(EditsError::Truncated));
        // Erasing (label 0) is always allowed.
        let erase = MaskEdits { runs: vec![Run { start: 0, len: 10, value: 0 }] }.encode();
        assert!(MaskEdits::decode(&erase, 10, &[]).is_ok());
    }

    #[test]
    fn counted_changes_match_counting_before_and_after() {
        let base = vec![0, 0, 1, 1, 2, 2, 0, 0];
        let mut after = base.clone();
        after[1..5].copy_from_slice(&[2, 2, 0, 2]);
        let edits = MaskEdits::diff(&base, &after);
        let count = |mask: &[u8], value: u8| mask.iter().filter(|&&v| v == value).count() as i64;
        let changes = edits.count_changes(&base);
        for value in [1, 2] {
            assert_eq!(
                changes.get(&value).copied().unwrap_or(0),
                count(&after, value) - count(&base, value),
                "label {value}"
            );
        }
        assert_eq!(changes.get(&0), None);
    }
}
