//! Where the event log's files live (`serve --event-log`, `feedback export --event-log`): a
//! folder, or a prefix of an S3-compatible bucket (`s3://BUCKET/PREFIX`) reached with the S3
//! registry's client, `AWS_*` environment and limits. A file appears whole or not at all: in a
//! folder it is written to a temporary sibling whose name starts with a dot, synced, then renamed;
//! on S3 it is one PUT. Readers list only the finished files (names that do not start with a dot).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use futures_util::StreamExt;
use object_store::path::Path as Key;
use object_store::{ObjectStore, PutPayload};

use super::s3::S3;
use super::{redact, RemoteError, Unavailable};

/// The event log's storage.
pub struct EventStore {
    /// What the user gave (`s3://…` or the folder), for messages.
    url: String,
    place: Place,
}

enum Place {
    Folder(PathBuf),
    S3 { store: Arc<dyn ObjectStore>, prefix: String, limit: Duration, runtime: tokio::runtime::Runtime },
}

impl EventStore {
    /// The event log at `url`: `s3://BUCKET/PREFIX` (credentials from the `AWS_*` environment,
    /// each call within `limit`), else a folder (`file:PATH` or a path; made when first written).
    pub fn open(url: &str, limit: Duration) -> Result<EventStore> {
        let place = if let Some(rest) = url.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                bail!("event log {}: expected s3://BUCKET/PREFIX", redact(url));
            }
            let store = S3::from_env(bucket, limit)?;
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("cannot start the event log's client")?;
            Place::S3 { store, prefix: prefix.trim_matches('/').to_string(), limit, runtime }
        } else {
            let path = url.strip_prefix("file:").unwrap_or(url);
            if path.is_empty() {
                bail!("--event-log takes a folder or s3://BUCKET/PREFIX, not an empty string");
            }
            Place::Folder(PathBuf::from(path))
        };
        Ok(EventStore { url: url.to_string(), place })
    }

    /// The name a file of the log goes by in messages: the log's URL (credentials removed) and
    /// the file's key.
    pub fn name(&self, key: &str) -> String {
        format!("{}/{key}", redact(self.url.trim_end_matches('/')))
    }

    /// The log's URL, credentials removed.
    pub fn url(&self) -> String {
        redact(&self.url)
    }

    /// Writes `bytes` as the file `key` (`/`-separated, relative to the log), atomically.
    pub fn put(&self, key: &str, bytes: Vec<u8>) -> Result<()> {
        match &self.place {
            Place::Folder(root) => {
                let path = root.join(key);
                let folder = path.parent().unwrap_or(root);
                std::fs::create_dir_all(folder).with_context(|| format!("cannot make {}", folder.display()))?;
                let file_name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
                // A dot first: listings skip it, so a crash leaves nothing a reader takes.
                let mut temporary = tempfile::Builder::new()
                    .prefix(&format!(".{file_name}."))
                    .suffix(".tmp")
                    .tempfile_in(folder)
                    .with_context(|| format!("cannot write in {}", folder.display()))?;
                temporary.write_all(&bytes).with_context(|| format!("cannot write {}", path.display()))?;
                temporary.as_file().sync_all().with_context(|| format!("cannot write {}", path.display()))?;
                temporary
                    .persist(&path)
                    .map_err(|e| e.error)
                    .with_context(|| format!("cannot write {}", path.display()))?;
                Ok(())
            }
            Place::S3 { store, prefix, limit, runtime } => {
                let at = Key::from(join(prefix, key));
                let what = self.name(key);
                runtime.block_on(async {
                    tokio::time::timeout(*limit, store.put(&at, PutPayload::from(bytes)))
                        .await
                        .map_err(|_| timeout(&what, *limit))?
                        .map_err(|e| anyhow::anyhow!(redact(&e.to_string())))
                        .with_context(|| format!("cannot write {what}"))?;
                    anyhow::Ok(())
                })
            }
        }
    }

    /// The keys of every finished file under `under` (relative to the log, `/`-separated;
    /// empty: all), sorted. A log that does not exist yet holds none.
    pub fn list(&self, under: &str) -> Result<Vec<String>> {
        let mut keys = match &self.place {
            Place::Folder(root) => {
                let mut keys = Vec::new();
                let start = if under.is_empty() { root.clone() } else { root.join(under) };
                if start.is_dir() {
                    walk(root, &start, &mut keys)?;
                } else if !root.exists() && !root.as_os_str().is_empty() {
                    bail!("event log {}: no such folder", root.display());
                }
                keys
            }
            Place::S3 { store, prefix, limit, runtime } => {
                let what = self.url();
                let base = join(prefix, under);
                runtime.block_on(async {
                    let base = (!base.is_empty()).then(|| Key::from(base.as_str()));
                    let mut listing = store.list(base.as_ref());
                    let mut keys = Vec::new();
                    while let Some(item) =
                        tokio::time::timeout(*limit, listing.next()).await.map_err(|_| timeout(&what, *limit))?
                    {
                        let item = item
                            .map_err(|e| anyhow::anyhow!(redact(&e.to_string())))
                            .with_context(|| format!("cannot list {what}"))?;
                        let full = item.location.to_string();
                        let relative = if prefix.is_empty() {
                            full
                        } else {
                            full.strip_prefix(&format!("{prefix}/")).map(str::to_string).unwrap_or(full)
                        };
                        keys.push(relative);
                    }
                    anyhow::Ok(keys)
                })?
            }
        };
        keys.retain(|k| !k.rsplit('/').next().unwrap_or(k).starts_with('.'));
        keys.sort();
        Ok(keys)
    }

    /// The bytes of the file `key`.
    pub fn get(&self, key: &str) -> Result<Vec<u8>> {
        match &self.place {
            Place::Folder(root) => {
                let path = root.join(key);
                std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))
            }
            Place::S3 { store, prefix, limit, runtime } => {
                let at = Key::from(join(prefix, key));
                let what = self.name(key);
                runtime.block_on(async {
                    let got = tokio::time::timeout(*limit, store.get(&at))
                        .await
                        .map_err(|_| timeout(&what, *limit))?
                        .map_err(|e| anyhow::anyhow!(redact(&e.to_string())))
                        .with_context(|| format!("cannot read {what}"))?;
                    let bytes = tokio::time::timeout(*limit, got.bytes())
                        .await
                        .map_err(|_| timeout(&what, *limit))?
                        .map_err(|e| anyhow::anyhow!(redact(&e.to_string())))
                        .with_context(|| format!("cannot read {what}"))?;
                    anyhow::Ok(bytes.to_vec())
                })
            }
        }
    }
}

fn timeout(what: &str, limit: Duration) -> anyhow::Error {
    RemoteError::new(
        Unavailable::Timeout,
        format!(
            "{what}: no answer within {} (MLGATE_REGISTRY_TIMEOUT_SECS); cancelled",
            humantime::format_duration(limit)
        ),
    )
    .into()
}

/// `prefix/key`, or either alone when the other is empty.
fn join(prefix: &str, key: &str) -> String {
    match (prefix.is_empty(), key.is_empty()) {
        (true, _) => key.to_string(),
        (_, true) => prefix.to_string(),
        _ => format!("{prefix}/{key}"),
    }
}

/// Every file under `folder`, as keys relative to `root`.
fn walk(root: &Path, folder: &Path, keys: &mut Vec<String>) -> Result<()> {
    let entries = std::fs::read_dir(folder).with_context(|| format!("cannot list {}", folder.display()))?;
    for entry in entries {
        let entry = entry.with_context(|| format!("cannot list {}", folder.display()))?;
        let path = entry.path();
        let kind = entry.file_type().with_context(|| format!("cannot read {}", path.display()))?;
        if kind.is_dir() {
            walk(root, &path, keys)?;
        } else if kind.is_file() {
            let relative = path.strip_prefix(root).unwrap_or(&path);
            let parts: Vec<String> =
                relative.components().map(|c| c.as_os_str().to_string_lossy().into_owned()).collect();
            keys.push(parts.join("/"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_folder_log_lists_finished_files_and_never_a_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let store = EventStore::open(dir.path().to_str().unwrap(), Duration::from_secs(5)).unwrap();
        assert!(store.list("").unwrap().is_empty());
        store.put("model=m/version=v1/hour=2026-01-01T00/a.parquet", b"abc".to_vec()).unwrap();
        std::fs::write(dir.path().join("model=m/version=v1/hour=2026-01-01T00/.b.parquet.x.tmp"), b"half").unwrap();
        assert_eq!(store.list("").unwrap(), ["model=m/version=v1/hour=2026-01-01T00/a.parquet"]);
        assert_eq!(store.list("model=m").unwrap().len(), 1);
        assert!(store.list("model=other").unwrap().is_empty());
        assert_eq!(store.get("model=m/version=v1/hour=2026-01-01T00/a.parquet").unwrap(), b"abc");
    }
}
