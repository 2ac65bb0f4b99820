//! Atomic file writes: a temporary file in the same folder, flushed, then renamed over the target.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use crate::error::{Error, Result};

/// Writes `bytes` to `path` so that readers see either the old file or the whole new one,
/// never a part: write a temporary sibling, fsync it, rename it, fsync the folder.
pub fn write(path: &Path, bytes: &[u8]) -> Result<()> {
    write_with(path, |w| w.write_all(bytes).map_err(|e| Error::io(path, e)))
}

/// Writes what `fill` writes to `path`, as [`write`] does: when `fill` fails, or the file
/// cannot be completed, the target is left as it was and no temporary file remains.
pub fn write_with<T>(path: &Path, fill: impl FnOnce(&mut BufWriter<File>) -> Result<T>) -> Result<T> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let file_name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = dir.join(format!(".{file_name}.{}.tmp", std::process::id()));
    let file = File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
    let mut writer = BufWriter::with_capacity(1 << 16, file);
    let result = fill(&mut writer).and_then(|value| {
        let file = writer.into_inner().map_err(|e| Error::io(path, e.into_error()))?;
        file.sync_all().map_err(|e| Error::io(path, e))?;
        std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))?;
        // The rename itself is durable only once the folder is synced.
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(value)
    });
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_fill_leaves_the_old_file_and_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.csv");
        write(&path, b"old\n").unwrap();
        let failed = write_with(&path, |w| {
            w.write_all(b"half of the new").map_err(|e| Error::io("out.csv", e))?;
            Err::<(), _>(Error::InvalidInput("stopped halfway".into()))
        });
        assert!(matches!(failed, Err(Error::InvalidInput(_))));
        assert_eq!(std::fs::read(&path).unwrap(), b"old\n");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        assert_eq!(write_with(&path, |w| w.write_all(b"new\n").map_err(|e| Error::io("out.csv", e))).ok(), Some(()));
        assert_eq!(std::fs::read(&path).unwrap(), b"new\n");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
