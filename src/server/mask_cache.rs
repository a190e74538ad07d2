//! Decoded mask versions kept in memory, so that consecutive saves on a case skip fetching and
//! decoding their base. Keyed by immutable object reference, so entries never go stale; the
//! least recently stored go first when the byte budget is spent.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use nifti::NiftiHeader;

/// A mask version decoded in memory.
pub struct DecodedMask {
    pub header: NiftiHeader,
    pub dims: [u32; 3],
    pub labels: Vec<u8>,
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
            total += m.labels.len();
            total <= self.max_bytes
        });
    }
}

impl std::fmt::Debug for HeadCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HeadCache").field("max_bytes", &self.max_bytes).finish_non_exhaustive()
    }
}
