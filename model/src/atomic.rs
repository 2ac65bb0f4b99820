//! Atomic writes: a temporary file (or folder) in the same folder, flushed, then renamed into
//! place, the folder synced.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Writes `bytes` to `path` so that readers see either the old file or the whole new one,
/// never a part: write a temporary sibling, fsync it, rename it, fsync the folder.
pub fn write(path: &Path, bytes: &[u8]) -> Result<()> {
    write_with(path, |w| w.write_all(bytes).map_err(|e| Error::io(path, e)))
}

/// Writes what `fill` writes to `path`, as [`write`] does: when `fill` fails, or the file
/// cannot be completed, the target is left as it was and no temporary file remains.
///
/// A symbolic link is written through (its target is replaced, the link stays); a path that
/// is a directory, a device, a FIFO or a socket is refused before anything is written.
/// Temporary files that a killed writer left beside the target are removed first: each is
/// locked while its writer lives, so one that can be locked is an orphan.
pub fn write_with<T>(path: &Path, fill: impl FnOnce(&mut BufWriter<File>) -> Result<T>) -> Result<T> {
    let target = destination(path)?;
    let dir = match target.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    let file_name = target.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    remove_orphans(&dir, &file_name);
    let tmp = dir.join(format!(".{file_name}.{}.tmp", std::process::id()));
    let file = File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
    // Held until the file is renamed or the process dies (see `remove_orphans`).
    let _ = file.lock();
    let mut writer = BufWriter::with_capacity(1 << 16, file);
    let result = fill(&mut writer).and_then(|value| {
        let file = writer.into_inner().map_err(|e| Error::io(path, e.into_error()))?;
        file.sync_all().map_err(|e| Error::io(path, e))?;
        std::fs::rename(&tmp, &target).map_err(|e| Error::io(path, e))?;
        // The rename itself is durable only once the folder is synced.
        if let Ok(d) = File::open(&dir) {
            let _ = d.sync_all();
        }
        Ok(value)
    });
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Where a write to `path` lands: `path` itself, or the file its symbolic links lead to.
fn destination(path: &Path) -> Result<PathBuf> {
    let refuse = |kind: &'static str| Error::NotARegularFile { path: path.to_path_buf(), kind };
    let meta = match std::fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(path.to_path_buf()),
        Err(e) => return Err(Error::io(path, e)),
    };
    let (target, meta) = if meta.file_type().is_symlink() {
        let target = std::fs::canonicalize(path).map_err(|_| refuse("symbolic link to nothing"))?;
        let meta = std::fs::metadata(&target).map_err(|e| Error::io(&target, e))?;
        (target, meta)
    } else {
        (path.to_path_buf(), meta)
    };
    let kind = meta.file_type();
    if kind.is_file() {
        return Ok(target);
    }
    Err(refuse(if kind.is_dir() { "directory" } else { special_kind(&kind) }))
}

#[cfg(unix)]
fn special_kind(kind: &std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if kind.is_fifo() {
        "FIFO"
    } else if kind.is_char_device() || kind.is_block_device() {
        "device"
    } else if kind.is_socket() {
        "socket"
    } else {
        "special file"
    }
}

#[cfg(not(unix))]
fn special_kind(_: &std::fs::FileType) -> &'static str {
    "special file"
}

/// Removes `.NAME.PID.tmp` files in `dir` whose writer is gone (they can be locked).
fn remove_orphans(dir: &Path, file_name: &str) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    let prefix = format!(".{file_name}.");
    for entry in entries.filter_map(|e| e.ok()) {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name.strip_prefix(&prefix).and_then(|rest| rest.strip_suffix(".tmp")) else { continue };
        if pid.is_empty() || !pid.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let path = entry.path();
        let orphan = File::options().write(true).open(&path).is_ok_and(|f| f.try_lock().is_ok());
        if orphan {
            let _ = std::fs::remove_file(&path);
        }
    }
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

    #[cfg(unix)]
    #[test]
    fn a_symlink_is_written_through_and_special_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real.csv");
        write(&real, b"old\n").unwrap();
        let link = dir.path().join("link.csv");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        write(&link, b"new\n").unwrap();
        assert!(std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink(), "the link stays a link");
        assert_eq!(std::fs::read(&real).unwrap(), b"new\n");

        let dangling = dir.path().join("dangling.csv");
        std::os::unix::fs::symlink(dir.path().join("nowhere/x.csv"), &dangling).unwrap();
        assert!(matches!(write(&dangling, b"x"), Err(Error::NotARegularFile { .. })));
        assert!(matches!(write(dir.path(), b"x"), Err(Error::NotARegularFile { kind: "directory", .. })));
        let fifo = dir.path().join("fifo");
        assert!(std::process::Command::new("mkfifo").arg(&fifo).status().unwrap().success());
        assert!(matches!(write(&fifo, b"x"), Err(Error::NotARegularFile { kind: "FIFO", .. })));
        use std::os::unix::fs::FileTypeExt;
        assert!(std::fs::symlink_metadata(&fifo).unwrap().file_type().is_fifo(), "the FIFO is left as it was");
    }

    #[test]
    fn temporaries_of_a_dead_writer_are_removed_and_a_live_one_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let dead = dir.path().join(".out.csv.4242.tmp");
        std::fs::write(&dead, b"half").unwrap();
        let live = dir.path().join(".out.csv.4343.tmp");
        std::fs::write(&live, b"half").unwrap();
        let holder = File::options().write(true).open(&live).unwrap();
        holder.lock().unwrap();
        let other = dir.path().join(".other.csv.4444.tmp");
        std::fs::write(&other, b"not ours").unwrap();
        write(&dir.path().join("out.csv"), b"whole\n").unwrap();
        assert!(!dead.exists(), "an orphan is removed");
        assert!(live.exists(), "a temporary whose writer lives is kept");
        assert!(other.exists(), "another output's temporary is not touched");
    }
}
