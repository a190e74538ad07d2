//! The files of a DICOM import: a folder walked on the command line, or uploaded files where a
//! zip is unpacked to scratch within bounds. Unpacked entries are named by their number, never by
//! the names inside the archive, so no entry can write outside its folder.

use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use super::headers::SourceFile;
use crate::server::scratch::ScratchDir;

/// Most files one import may hold (a 3,000-slice series, with room to spare).
pub(crate) const MAX_FILES: usize = 20_000;

/// Every file under `dir`, depth first, in name order; hidden files (`.DS_Store`) are passed over.
pub(crate) fn walk(dir: &Path) -> Result<Vec<SourceFile>, String> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(folder) = pending.pop() {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(&folder)
            .map_err(|e| format!("cannot read {}: {e}", folder.display()))?
            .filter_map(|entry| entry.ok().map(|entry| entry.path()))
            .filter(|path| !path.file_name().is_some_and(|name| name.to_string_lossy().starts_with('.')))
            .collect();
        entries.sort();
        for path in entries.into_iter().rev() {
            if path.is_dir() {
                pending.push(path);
            } else {
                let name = path.strip_prefix(dir).unwrap_or(&path).display().to_string();
                found.push(SourceFile { path, name });
                if found.len() > MAX_FILES {
                    return Err(format!("{} holds more than {MAX_FILES} files", dir.display()));
                }
            }
        }
    }
    found.reverse();
    Ok(found)
}

/// True when the file starts as a zip archive does.
pub(crate) fn is_zip(path: &Path) -> std::io::Result<bool> {
    let mut magic = [0u8; 4];
    let read = std::fs::File::open(path)?.read(&mut magic)?;
    Ok(read == 4 && magic == *b"PK\x03\x04")
}

/// Unpacks a zip's files into `into`, at most [`MAX_FILES`] entries and `max_bytes` inflated in
/// all (counted as they inflate, not as the archive declares).
pub(crate) fn unzip(archive: &SourceFile, into: &ScratchDir, max_bytes: u64) -> Result<Vec<SourceFile>, String> {
    let fail = |e: &dyn std::fmt::Display| format!("{} is not a readable zip archive ({e})", archive.name);
    let file = std::fs::File::open(&archive.path).map_err(|e| fail(&e))?;
    let mut zip = zip::ZipArchive::new(BufReader::new(file)).map_err(|e| fail(&e))?;
    if zip.len() > MAX_FILES {
        return Err(format!("{} holds {} entries, more than {MAX_FILES}", archive.name, zip.len()));
    }
    let mut files = Vec::new();
    let mut inflated = 0u64;
    for index in 0..zip.len() {
        let mut entry = zip.by_index(index).map_err(|e| fail(&e))?;
        let name = entry.name().to_string();
        let hidden = name.split('/').any(|part| part.starts_with('.') || part == "__MACOSX");
        if entry.is_dir() || hidden {
            continue;
        }
        let path = into.path().join(format!("{index}.dcm"));
        let mut out = std::fs::File::create(&path).map_err(|e| format!("cannot unpack {name}: {e}"))?;
        let left = max_bytes - inflated;
        let copied = std::io::copy(&mut (&mut entry).take(left + 1), &mut out)
            .map_err(|e| format!("{}: cannot inflate {name} ({e})", archive.name))?;
        inflated += copied;
        if inflated > max_bytes {
            return Err(format!("{} inflates to more than {max_bytes} bytes", archive.name));
        }
        files.push(SourceFile { path, name: format!("{}/{name}", archive.name) });
    }
    Ok(files)
}
