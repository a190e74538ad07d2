//! Scratch files: uploads on their way to object storage, and files made from them, kept on
//! disk instead of in memory and removed when their owner is done with them.

use std::path::{Path, PathBuf};

#[derive(Debug)]
pub struct ScratchFile(PathBuf);

impl ScratchFile {
    /// A new, empty file in `dir` (created when missing).
    pub fn create(dir: &Path) -> std::io::Result<(ScratchFile, std::fs::File)> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join(format!("{}.part", uuid::Uuid::new_v4().simple()));
        let file = std::fs::File::create(&path)?;
        Ok((ScratchFile(path), file))
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for ScratchFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// A new folder of scratch files (an unpacked upload), removed with everything in it.
#[derive(Debug)]
pub struct ScratchDir(PathBuf);

impl ScratchDir {
    pub fn create(parent: &Path) -> std::io::Result<ScratchDir> {
        let path = parent.join(format!("{}.dir", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&path)?;
        Ok(ScratchDir(path))
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
