//! Decoded mask versions kept in memory, so that consecutive saves on a case skip fetching and
//! decoding their base. Keyed by immutable object reference, so entries never go stale; the
//! least recently stored go first when the byte budget is spent (versions share unchanged
//! slabs, so the budget counts those more than once).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use nifti::NiftiHeader;

use crate::slabs::{SlabGrid, SlabKind};

/// A mask version decoded in memory: its labels in slabs (see [`crate::slabs`]), so a saved
/// version shares the slabs its edits left alone with the version it replaced.
pub struct DecodedMask {
    /// The header its `.nii.gz` is written with.
    pub header: NiftiHeader,
    pub grid: SlabGrid,
    pub slabs: Vec<Arc<[u8]>>,
}

impl DecodedMask {
    /// A mask held whole, cut into slabs.
    pub(crate) fn from_labels(header: NiftiHeader, dims: [u32; 3], labels: &[u8]) -> DecodedMask {
        let grid = SlabGrid::new(dims, 1, SlabKind::Mask);
        let slabs = (0..grid.count()).map(|index| Arc::from(&labels[grid.byte_range(index)])).collect();
        DecodedMask { header, grid, slabs }
    }

    pub fn dims(&self) -> [u32; 3] {
        self.grid.dims
    }

    /// All the labels in one buffer (a copy), for whole-volume computations.
    pub fn labels(&self) -> Vec<u8> {
        self.slabs.concat()
    }
}

pub struct HeadCache {
    entries: Mutex<VecDeque<(String, Arc<DecodedMask>)>>,
    max_bytes: usize,
}

impl HeadCache {
    pub fn new(max_bytes: usize) -> Self {
        Self { entries: Mutex::new(VecDeque::new()), max_bytes }
    }

    pub fn get(&self, object_ref: &str) -> Option<Arc<DecodedMask>> {
        let entries = self.entries.lock().expect("head cache lock");
        entries.iter().find(|(r, _)| r == object_ref).map(|(_, mask)| mask.clone())
    }

    pub fn insert(&self, object_ref: String, mask: Arc<DecodedMask>) {
        let mut entries = self.entries.lock().expect("head cache lock");
        entries.retain(|(r, _)| *r != object_ref);
        entries.push_front((object_ref, mask));
        let mut total = 0;
        entries.retain(|(_, m)| {
            total += m.grid.total_bytes();
            total <= self.max_bytes
        });
    }
}

impl std::fmt::Debug for HeadCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HeadCache").field("max_bytes", &self.max_bytes).finish_non_exhaustive()
    }
}
