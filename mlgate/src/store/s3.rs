//! A registry under a prefix of an S3-compatible bucket, through `object_store` (any
//! implementation: Amazon S3 and compatible stores in production, the in-memory store in unit
//! tests). The folder the library works in is a partial copy: `state.json` is read at open and
//! at each refresh (conditionally on its ETag: an unchanged registry costs one request that
//! transfers nothing), the history and the versions' files only when the library reads them, and
//! the names of the objects only when a listing is needed. A change is written back with
//! conditional writes: a new object only where none exists, a changed one only if unchanged since
//! read, `state.json` (the source of truth) after every version file and before the history,
//! then the objects of pruned versions deleted.
//!
//! Each call (its retries included) is cancelled past its limit: a timeout, like a refusal or an
//! unreachable endpoint, is a [`RemoteError`] naming the object.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};
use futures_util::StreamExt;
use object_store::path::Path as Key;
use object_store::{GetOptions, ObjectStore, PutMode, PutOptions, PutPayload, UpdateVersion};

use super::{pause, redact, Backend, Counters, RemoteError, Unavailable};
use model::lifecycle::registry::{Actor, Source};

/// An object's tag: its ETag, else its time of change.
fn tag(meta: &object_store::ObjectMeta) -> String {
    meta.e_tag.clone().unwrap_or_else(|| format!("{:?}", meta.last_modified))
}

/// Files of the folder that are never published: the local lock, half-written temporaries.
fn local_only(relative: &str) -> bool {
    relative == ".lock" || relative.split('/').any(|part| part.starts_with(".tmp-") || part.ends_with(".tmp"))
}

/// What the copy holds of the bucket, as last read.
#[derive(Default)]
struct Seen {
    /// Files read or written: their bytes and ETag.
    read: BTreeMap<String, (Vec<u8>, Option<String>)>,
    /// Files asked for that the bucket does not hold.
    absent: BTreeSet<String>,
    /// Every object under the prefix, once listed: its name and ETag.
    listed: Option<BTreeMap<String, Option<String>>>,
}

/// The bucket side, shared with the library's registry as its [`Source`].
///
/// The copy's `state.json` is read first, the history later: when another writer moved the
/// registry in between, the history read may hold events past that state. The copy keeps the
/// history as of its state (a write on it then fails its condition on `state.json` and runs
/// again on the new state), so that the library sees what a folder registry would hold.
struct Bucket {
    store: Arc<dyn ObjectStore>,
    prefix: String,
    runtime: tokio::runtime::Runtime,
    /// Each call's limit, retries included.
    limit: Duration,
    root: PathBuf,
    seen: Mutex<Seen>,
    counters: Arc<Counters>,
}

impl Bucket {
    fn key(&self, relative: &str) -> Key {
        if self.prefix.is_empty() {
            Key::from(relative)
        } else {
            Key::from(format!("{}/{relative}", self.prefix))
        }
    }

    fn relative(&self, key: &Key) -> String {
        let key = key.to_string();
        match self.prefix.as_str() {
            "" => key,
            p => key.strip_prefix(&format!("{p}/")).unwrap_or(&key).to_string(),
        }
    }

    /// Runs one call to the store within the limit; past it, the call is dropped (its request
    /// cancelled) and `what` is said to have timed out.
    fn call<T>(
        &self,
        what: &str,
        call: impl std::future::Future<Output = std::result::Result<T, object_store::Error>>,
    ) -> Result<std::result::Result<T, object_store::Error>> {
        let limit = self.limit;
        match self.runtime.block_on(async { tokio::time::timeout(limit, call).await }) {
            Ok(done) => Ok(done),
            Err(_) => Err(RemoteError::new(
                Unavailable::Timeout,
                format!(
                    "{what}: no answer within {} (MLGATE_REGISTRY_TIMEOUT_SECS); cancelled",
                    humantime::format_duration(limit)
                ),
            )
            .into()),
        }
    }

    fn seen(&self) -> std::sync::MutexGuard<'_, Seen> {
        self.seen.lock().expect("the copy's bookkeeping lock is never poisoned")
    }

    /// Reads `relative` into the copy; `None` when the bucket does not hold it, or (with
    /// `unless`, an ETag) when it has not changed.
    fn get(&self, relative: &str, unless: Option<String>) -> Result<Option<(Vec<u8>, Option<String>)>> {
        let key = self.key(relative);
        Counters::add(&self.counters.requests);
        let options = GetOptions { if_none_match: unless, ..GetOptions::default() };
        let what = format!("cannot read {key}");
        let got = self.call(&what, async {
            match self.store.get_opts(&key, options).await {
                Ok(got) => {
                    let e_tag = Some(tag(&got.meta));
                    Ok(Some((got.bytes().await?.to_vec(), e_tag)))
                }
                Err(object_store::Error::NotFound { .. } | object_store::Error::NotModified { .. }) => Ok(None),
                Err(e) => Err(e),
            }
        })?;
        got.map_err(|e| failure(&what, e))
    }

    fn write_local(&self, relative: &str, bytes: &[u8]) -> std::io::Result<()> {
        let path = self.root.join(relative);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(path, bytes)
    }

    /// The lines of `history` whose event is not past the copy's state.
    fn history_as_of_state(&self, history: &[u8]) -> Vec<u8> {
        let seq = std::fs::read(self.root.join("state.json"))
            .ok()
            .and_then(|b| serde_json::from_slice::<model::lifecycle::registry::State>(&b).ok())
            .map_or(0, |s| s.seq);
        let mut kept = Vec::with_capacity(history.len());
        for line in history.split_inclusive(|&b| b == b'\n') {
            let event = serde_json::from_slice::<serde_json::Value>(line).ok();
            if event.as_ref().and_then(|e| e["seq"].as_u64()).is_some_and(|s| s > seq) {
                break;
            }
            kept.extend_from_slice(line);
        }
        kept
    }

    /// Lists every object under the prefix (names only), once.
    fn list(&self) -> Result<()> {
        if self.seen().listed.is_some() {
            return Ok(());
        }
        Counters::add(&self.counters.requests);
        let prefix = (!self.prefix.is_empty()).then(|| Key::from(self.prefix.as_str()));
        let what = "cannot list the registry's objects";
        let keys = self.call(what, async {
            let mut keys = Vec::new();
            let mut listed = self.store.list(prefix.as_ref());
            while let Some(meta) = listed.next().await {
                let meta = meta?;
                keys.push((meta.location, meta.e_tag));
            }
            Ok::<_, object_store::Error>(keys)
        })?;
        let keys = keys.map_err(|e| failure(what, e))?;
        let names: BTreeMap<String, Option<String>> =
            keys.into_iter().map(|(k, e_tag)| (self.relative(&k), e_tag)).filter(|(r, _)| !local_only(r)).collect();
        for name in names.keys() {
            if let Some(version) = name.strip_prefix("versions/").and_then(|r| r.split('/').next()) {
                std::fs::create_dir_all(self.root.join("versions").join(version))
                    .with_context(|| format!("cannot make a folder in {}", self.root.display()))?;
            }
        }
        self.seen().listed = Some(names);
        Ok(())
    }
}

/// An error of the store as a [`RemoteError`]: refused (401, 403) or unreachable, credentials
/// removed from any URL it echoes.
fn failure(what: &str, e: object_store::Error) -> anyhow::Error {
    let kind = match e {
        object_store::Error::Unauthenticated { .. } | object_store::Error::PermissionDenied { .. } => {
            Unavailable::Refused
        }
        _ => Unavailable::Unreachable,
    };
    RemoteError::new(kind, format!("{what}: {e}")).into()
}

/// An error for the library's [`Source`], which speaks `std::io`: a remote failure is kept as
/// the I/O error's inner error, so that a caller still tells its kind.
fn io(e: anyhow::Error) -> std::io::Error {
    let message = redact(&format!("{e:#}"));
    match RemoteError::find(&e) {
        Some(remote) => std::io::Error::other(RemoteError { kind: remote.kind, message }),
        None => std::io::Error::other(message),
    }
}

impl Source for Bucket {
    fn fetch(&self, relative: &str) -> std::io::Result<()> {
        {
            let seen = self.seen();
            let known_absent = seen.listed.as_ref().is_some_and(|l| !l.contains_key(relative));
            // A file the copy holds is the bucket's as of the state read, or this change's own.
            let local = self.root.join(relative).is_file();
            if local || seen.read.contains_key(relative) || seen.absent.contains(relative) || known_absent {
                return Ok(());
            }
        }
        match self.get(relative, None).map_err(io)? {
            Some((bytes, e_tag)) => {
                let local = if relative == "history.jsonl" { self.history_as_of_state(&bytes) } else { bytes.clone() };
                self.write_local(relative, &local)?;
                Counters::add(&self.counters.file_reads);
                self.seen().read.insert(relative.to_string(), (bytes, e_tag));
            }
            None => {
                self.seen().absent.insert(relative.to_string());
            }
        }
        Ok(())
    }

    fn exists(&self, relative: &str) -> std::io::Result<bool> {
        if self.seen().read.contains_key(relative) || self.root.join(relative).is_file() {
            return Ok(true);
        }
        self.list().map_err(io)?;
        Ok(self.seen().listed.as_ref().is_some_and(|l| l.contains_key(relative)))
    }

    fn list_versions(&self) -> std::io::Result<()> {
        self.list().map_err(io)
    }
}

/// A registry under an S3 prefix.
pub struct S3 {
    bucket: Arc<Bucket>,
    /// Removed with the store.
    _copy: tempfile::TempDir,
}

impl S3 {
    /// The bucket named `bucket`, with credentials, region and endpoint from the `AWS_*`
    /// environment. The client's retries stop within `limit`, so that an endpoint that refuses
    /// connections is an unreachable one, not a timeout.
    pub fn from_env(bucket: &str, limit: Duration) -> Result<Arc<dyn ObjectStore>> {
        let retry = object_store::RetryConfig { max_retries: 3, retry_timeout: limit, ..Default::default() };
        let store = object_store::aws::AmazonS3Builder::from_env()
            .with_bucket_name(bucket)
            .with_conditional_put(object_store::aws::S3ConditionalPut::ETagMatch)
            .with_retry(retry)
            .build()
            .map_err(|e| anyhow::anyhow!(redact(&e.to_string())))
            .with_context(|| format!("cannot use s3://{bucket}: check the AWS_* environment"))?;
        Ok(Arc::new(store))
    }

    /// The registry under `prefix` of `store`: its `state.json` read, nothing else yet; each
    /// call to the store within `limit`.
    pub fn open(store: Arc<dyn ObjectStore>, prefix: &str, limit: Duration) -> Result<S3> {
        pause();
        let copy = tempfile::Builder::new().prefix("mlgate-registry-").tempdir().context("cannot make a folder")?;
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().context("cannot start")?;
        let bucket = Bucket {
            store,
            prefix: prefix.trim_matches('/').to_string(),
            runtime,
            limit,
            root: copy.path().to_path_buf(),
            seen: Mutex::default(),
            counters: Arc::default(),
        };
        let s3 = S3 { bucket: Arc::new(bucket), _copy: copy };
        s3.read_state(None)?;
        Ok(s3)
    }

    /// Reads `state.json` (unless its ETag is still `unless`) into an emptied copy; false when
    /// it had not changed.
    fn read_state(&self, unless: Option<String>) -> Result<bool> {
        let b = &self.bucket;
        let Some((bytes, e_tag)) = b.get("state.json", unless.clone())? else {
            if unless.is_some() {
                return Ok(false);
            }
            return Ok(true);
        };
        // Everything else the copy held may be older than this state: read again when used.
        for entry in std::fs::read_dir(&b.root).with_context(|| format!("cannot read {}", b.root.display()))? {
            let path = entry?.path();
            if path.is_dir() {
                std::fs::remove_dir_all(&path)?;
            } else if path.file_name().is_some_and(|n| n != ".lock") {
                std::fs::remove_file(&path)?;
            }
        }
        b.write_local("state.json", &bytes)?;
        Counters::add(&b.counters.state_reads);
        let mut seen = b.seen();
        *seen = Seen::default();
        seen.read.insert("state.json".into(), (bytes, e_tag));
        Ok(true)
    }

    fn state_tag(&self) -> Option<String> {
        self.bucket.seen().read.get("state.json").and_then(|(_, t)| t.clone())
    }
}

impl Backend for S3 {
    fn root(&self) -> &Path {
        &self.bucket.root
    }

    fn source(&self) -> Option<Arc<dyn Source>> {
        Some(self.bucket.clone())
    }

    fn refresh(&mut self) -> Result<bool> {
        match self.state_tag() {
            Some(tag) => self.read_state(Some(tag)),
            // No state.json yet: whatever is there now is news.
            None => {
                self.read_state(None)?;
                Ok(self.state_tag().is_some() || self.bucket.seen().read.contains_key("state.json"))
            }
        }
    }

    fn reset(&mut self) -> Result<()> {
        self.read_state(None).map(|_| ())
    }

    fn publish(&mut self, _actor: &Actor, _message: &str, notice: fn(&str)) -> Result<bool> {
        let b = self.bucket.clone();
        let mut files = Vec::new();
        collect(&b.root, &b.root, &mut files)?;
        let mut changed: Vec<(String, Vec<u8>)> = Vec::new();
        {
            let seen = b.seen();
            for relative in files.into_iter().filter(|r| !local_only(r)) {
                let bytes = std::fs::read(b.root.join(&relative))?;
                if seen.read.get(&relative).is_none_or(|(old, _)| *old != bytes) {
                    changed.push((relative, bytes));
                }
            }
        }
        let rank = |r: &str| match r {
            "state.json" => 1,
            "history.jsonl" => 2,
            _ => 0,
        };
        changed.sort_by_key(|(r, _)| rank(r));
        for (relative, bytes) in changed {
            // A file read is replaced only if unchanged since; so is a version's file only listed (a
            // version registered again gets a new verdict and report). Any other is created only
            // where none exists: `state.json` and the history are always read before they are
            // written, and one absent when read must still be absent.
            let mode = {
                let seen = b.seen();
                let listed = || {
                    let listed = seen.listed.as_ref().and_then(|l| l.get(&relative)).cloned();
                    listed.filter(|e_tag| e_tag.is_some() && relative.starts_with("versions/"))
                };
                let known = seen.read.get(&relative).map(|(_, e_tag)| e_tag.clone()).or_else(listed);
                match known {
                    None => PutMode::Create,
                    Some(e_tag) => PutMode::Update(UpdateVersion { e_tag, version: None }),
                }
            };
            let key = b.key(&relative);
            pause();
            Counters::add(&b.counters.requests);
            let put = b.call(
                &format!("cannot write {key}"),
                b.store.put_opts(&key, PutPayload::from(bytes.clone()), PutOptions { mode, ..PutOptions::default() }),
            )?;
            match put {
                Ok(result) => {
                    let mut seen = b.seen();
                    seen.absent.remove(&relative);
                    if let Some(listed) = seen.listed.as_mut() {
                        listed.insert(relative.clone(), result.e_tag.clone());
                    }
                    seen.read.insert(relative.clone(), (bytes, result.e_tag));
                }
                Err(object_store::Error::AlreadyExists { .. } | object_store::Error::Precondition { .. })
                    if relative == "history.jsonl" =>
                {
                    // The state is written and is the truth; the next writer appends the event.
                    notice("the history line could not be appended (another writer's came first); the next change appends it");
                }
                Err(object_store::Error::AlreadyExists { .. } | object_store::Error::Precondition { .. }) => {
                    return Ok(false);
                }
                Err(e) => return Err(failure(&format!("cannot write {key}"), e)),
            }
        }
        // Versions the change removed (a prune): their objects go once the state no longer
        // names them.
        let gone: Vec<String> = {
            let seen = b.seen();
            seen.listed
                .iter()
                .flat_map(|l| l.keys())
                .filter(|r| {
                    r.strip_prefix("versions/")
                        .and_then(|v| v.split('/').next())
                        .is_some_and(|v| !b.root.join("versions").join(v).is_dir())
                })
                .cloned()
                .collect()
        };
        for relative in gone {
            let key = b.key(&relative);
            Counters::add(&b.counters.requests);
            let what = format!("cannot delete {key}");
            match b.call(&what, b.store.delete(&key))? {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(failure(&what, e)),
            }
            let mut seen = b.seen();
            seen.read.remove(&relative);
            if let Some(listed) = seen.listed.as_mut() {
                listed.remove(&relative);
            }
        }
        Ok(true)
    }

    fn counters(&self) -> Arc<Counters> {
        self.bucket.counters.clone()
    }
}

fn collect(base: &Path, dir: &Path, out: &mut Vec<String>) -> Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            collect(base, &path, out)?;
        } else {
            out.push(path.strip_prefix(base)?.to_string_lossy().replace('\\', "/"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use model::lifecycle::registry::{Action, Outcome, State};
    use object_store::memory::InMemory;

    use super::*;
    use crate::store::{Location, Store};

    fn put(store: &InMemory, key: &str, bytes: &[u8]) {
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        runtime.block_on(store.put(&Key::from(key), PutPayload::from(bytes.to_vec()))).unwrap();
    }

    fn keys(store: &InMemory) -> Vec<String> {
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        runtime.block_on(async {
            let mut out = Vec::new();
            let mut listed = store.list(None);
            while let Some(meta) = listed.next().await {
                out.push(meta.unwrap().location.to_string());
            }
            out.sort();
            out
        })
    }

    fn open(bucket: &Arc<InMemory>) -> Store {
        let location = Location::S3 { bucket: "memory".into(), prefix: "reg".into() };
        let backend = S3::open(bucket.clone(), "reg", Duration::from_secs(5)).unwrap();
        Store::with_backend(location, Box::new(backend), |_| {}, std::time::Duration::from_secs(1))
    }

    fn actor() -> Actor {
        Actor { who: "tester".into(), when: "t".into(), commit: None }
    }

    /// Two writers that read the same state: the second one's conditional write of state.json
    /// fails, it reads the registry again and its operation runs on the new state.
    #[test]
    fn a_writer_that_came_second_reads_again_and_lands_after_the_first() {
        let bucket = Arc::new(InMemory::new());
        put(&bucket, "reg/versions/v1/model.json", b"{}");
        let mut a = open(&bucket);
        let mut b = open(&bucket);
        a.transact(&actor(), |r| Ok(r.record_monitoring("v1", Outcome::Breached, "first", &actor())?)).unwrap();
        let count =
            b.transact(&actor(), |r| Ok(r.record_monitoring("v1", Outcome::Breached, "second", &actor())?)).unwrap();
        assert_eq!(count, 2, "the second breach counts on top of the first");
        let reader = open(&bucket);
        let history = reader.history().unwrap();
        assert_eq!(
            history.iter().map(|e| (e.seq, e.reason.as_str())).collect::<Vec<_>>(),
            [(1, "first"), (2, "second")]
        );
        assert_eq!((reader.state().unwrap().seq, reader.state().unwrap().consecutive_breaches), (2, 2));
    }

    /// A writer killed after a version's files but before the state leaves them unnamed; the next
    /// registration of the same artifact takes that version again and replaces its files (each
    /// only if unchanged since listed), instead of failing to create them forever.
    #[test]
    fn a_version_left_by_a_killed_writer_is_registered_again() {
        use model::lifecycle::registry::VerdictRecord;
        let bucket = Arc::new(InMemory::new());
        let verdict =
            VerdictRecord { passed: true, artifact_sha256: "abc".into(), failed: vec![], decided_at: "t".into() };
        put(&bucket, "reg/versions/v1/model.json", b"{}");
        put(&bucket, "reg/versions/v1/verdict.json", &serde_json::to_vec(&verdict).unwrap());
        put(&bucket, "reg/versions/v1/metrics.json", b"old");
        let mut store = open(&bucket);
        let files = |_: &str| vec![("metrics.json".to_string(), b"new".to_vec())];
        let version = store.transact(&actor(), |r| Ok(r.register(b"{}", &verdict, files, &actor())?)).unwrap();
        assert_eq!(version, "v1");
        let reader = open(&bucket);
        assert_eq!(reader.read_file("v1", "metrics.json").unwrap(), b"new");
        assert_eq!(reader.alias("staging").unwrap().as_deref(), Some("v1"));
    }

    /// Pruning keeps the newest versions, the aliases' and the earlier productions', deletes the
    /// other versions' objects, and leaves a registry that checks clean.
    #[test]
    fn prune_removes_only_what_no_alias_or_rollback_needs() {
        let bucket = Arc::new(InMemory::new());
        for v in 1..=10 {
            put(&bucket, &format!("reg/versions/v{v}/model.json"), b"{}");
            put(&bucket, &format!("reg/versions/v{v}/verdict.json"), b"{}");
        }
        let mut state = State { previous_productions: vec!["v2".into(), "v5".into()], ..State::default() };
        state.aliases.insert("production".into(), "v9".into());
        state.aliases.insert("staging".into(), "v3".into());
        put(&bucket, "reg/state.json", &serde_json::to_vec(&state).unwrap());
        let mut store = open(&bucket);
        let removed = store.transact(&actor(), |r| Ok(r.prune(3, &actor())?)).unwrap();
        assert_eq!(removed, ["v1", "v4", "v6", "v7"]);
        let left: Vec<String> = keys(&bucket).into_iter().filter(|k| k.ends_with("model.json")).collect();
        let versions: Vec<&str> = left.iter().map(|k| k.split('/').nth(2).unwrap()).collect();
        assert_eq!(versions, ["v10", "v2", "v3", "v5", "v8", "v9"]);
        let reader = open(&bucket);
        assert_eq!(reader.history().unwrap().last().unwrap().action, Action::Prune);
        assert_eq!(reader.state().unwrap().pruned, ["v1", "v4", "v6", "v7"]);
    }
}
