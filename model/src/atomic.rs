//! Atomic writes: a temporary file (or folder) in the same folder, flushed, then renamed into
//! place, the folder synced.

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

/// Writes a new folder `target` holding `files`, so that it appears whole or not at all: the
/// files are written and synced in a temporary sibling `.tmp-NAME-PID` (which a recovering
/// writer may remove), then the folder is renamed into place and its parent synced. `after_each`
/// runs after each file is written (a crash test's hook).
pub fn write_dir(target: &Path, files: &[(String, Vec<u8>)], mut after_each: impl FnMut()) -> Result<()> {
    let parent = match target.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = target.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = parent.join(format!(".tmp-{name}-{}", std::process::id()));
    let result = (|| {
        std::fs::create_dir_all(&tmp).map_err(|e| Error::io(&tmp, e))?;
        for (file, bytes) in files {
            let path = tmp.join(file);
            let mut f = File::create(&path).map_err(|e| Error::io(&path, e))?;
            f.write_all(bytes).and_then(|_| f.sync_all()).map_err(|e| Error::io(&path, e))?;
            after_each();
        }
        std::fs::rename(&tmp, target).map_err(|e| Error::io(target, e))?;
        if let Ok(d) = File::open(parent) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_dir_all(&tmp);
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
            Err::<(), _>(Error::NoRows { what: "to write" })
        });
        assert!(matches!(failed, Err(Error::NoRows { .. })));
        assert_eq!(std::fs::read(&path).unwrap(), b"old\n");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        assert_eq!(write_with(&path, |w| w.write_all(b"new\n").map_err(|e| Error::io("out.csv", e))).ok(), Some(()));
        assert_eq!(std::fs::read(&path).unwrap(), b"new\n");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn a_folder_appears_whole_or_not_at_all() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("v1");
        let files = vec![("a.json".to_string(), b"{}".to_vec()), ("b.md".to_string(), b"# b".to_vec())];
        write_dir(&target, &files, || {}).unwrap();
        assert_eq!(std::fs::read(target.join("b.md")).unwrap(), b"# b");
        // A second folder of the same name cannot replace the first; nothing is left behind.
        assert!(write_dir(&target, &files[..1], || {}).is_err());
        assert_eq!(std::fs::read_dir(&target).unwrap().count(), 2);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
