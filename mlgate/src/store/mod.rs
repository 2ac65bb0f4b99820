//! Where the registry lives: a folder, a branch of a git repository (`git+URL#BRANCH`) or a
//! prefix of an S3-compatible bucket (`s3://BUCKET/PREFIX`), the last two outliving the CI job.
//! Each is a [`Backend`]: the library's folder registry reads and changes files in the backend's
//! folder (the folder itself, a clone of the branch, or a partial copy of the prefix that fetches
//! only the files it is asked for), and the backend makes a change durable — nothing more for a
//! folder, one commit pushed without force, or conditional writes (a new object only if none
//! exists, `state.json` only if unchanged since it was read). When another writer came first,
//! the copy is read again and the operation runs again on the new state, its preconditions
//! checked again. Only this module runs git or talks to S3.

pub mod folder;
pub mod git;
pub mod s3;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use model::lifecycle::registry::{Actor, Registry};

/// How many times a registry operation is tried against a registry other writers move.
const ATTEMPTS: usize = 8;

/// Crash-test hook, as the folder registry's: `MLGATE_REGISTRY_PAUSE_MS` makes each remote write
/// wait, so that a test can kill a writer between any two of them, and each copy of a remote
/// registry wait before it is read, so that a test can change the registry meanwhile.
fn pause() {
    if let Some(ms) = std::env::var("MLGATE_REGISTRY_PAUSE_MS").ok().and_then(|v| v.parse::<u64>().ok()) {
        std::thread::sleep(std::time::Duration::from_millis(ms));
    }
}

/// A registry location, as given by `--registry` or `[registry] path`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A folder (a path, or `file:PATH`).
    Folder(PathBuf),
    /// A branch of a git repository.
    Git {
        /// The repository, as git takes it (`file:///srv/models.git`, `https://…`).
        url: String,
        /// The branch that holds the registry's files.
        branch: String,
        /// `-c` settings every git command gets: for `origin`, the checkout's credentials
        /// (actions/checkout keeps the job's token in an `http.….extraheader`).
        config: Vec<String>,
    },
    /// A prefix of an S3-compatible bucket; credentials, region and endpoint from the `AWS_*`
    /// environment (`AWS_ENDPOINT_URL`, `AWS_ALLOW_HTTP=true` for a plain-HTTP endpoint).
    S3 {
        /// The bucket.
        bucket: String,
        /// The prefix of the registry's objects (no slash at either end; may be empty).
        prefix: String,
    },
}

impl Location {
    /// Parses a location; a relative folder is taken from `base`. `git+origin#B` is the current
    /// repository's `origin`.
    pub fn parse(text: &str, base: &Path) -> Result<Location> {
        if let Some(rest) = text.strip_prefix("git+") {
            let (url, branch) = rest
                .rsplit_once('#')
                .filter(|(u, b)| !u.is_empty() && !b.is_empty())
                .with_context(|| format!("registry {:?}: a git registry is git+URL#BRANCH", redact(text)))?;
            let (url, config) = if url == "origin" { git::origin()? } else { (url.to_string(), Vec::new()) };
            return Ok(Location::Git { url, branch: branch.to_string(), config });
        }
        if let Some(rest) = text.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                bail!("registry {text:?}: an S3 registry is s3://BUCKET/PREFIX");
            }
            return Ok(Location::S3 { bucket: bucket.to_string(), prefix: prefix.trim_matches('/').to_string() });
        }
        let path = Path::new(text.strip_prefix("file:").unwrap_or(text));
        Ok(Location::Folder(if path.is_relative() { base.join(path) } else { path.to_path_buf() }))
    }

    /// The folder, for a folder registry.
    pub fn folder(&self) -> Option<&Path> {
        match self {
            Location::Folder(path) => Some(path),
            _ => None,
        }
    }
}

/// `text` with the user information of any URL in it removed (`https://user:TOKEN@host` →
/// `https://host`), so that a location can be printed.
pub fn redact(text: &str) -> String {
    let Some(scheme) = text.find("://") else { return text.to_string() };
    let start = scheme + 3;
    let authority_end = text[start..].find(['/', '?', '#']).map_or(text.len(), |i| start + i);
    match text[start..authority_end].rfind('@') {
        Some(at) => format!("{}{}", &text[..start], &text[start + at + 1..]),
        None => text.to_string(),
    }
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Location::Folder(p) => write!(f, "{}", p.display()),
            Location::Git { url, branch, .. } => write!(f, "git+{}#{branch}", redact(url)),
            Location::S3 { bucket, prefix } => write!(f, "s3://{bucket}/{prefix}"),
        }
    }
}

/// What a store has asked of where the registry lives, counted as it goes.
#[derive(Debug, Default)]
pub struct Counters {
    /// Requests sent to a remote registry (git commands that reach the remote, S3 calls).
    pub requests: AtomicU64,
    /// Readings of a changed `state.json` (a new commit fetched, a new ETag downloaded, a folder's
    /// changed file): every time the registry is read again because it moved.
    pub state_reads: AtomicU64,
    /// Files of versions read from a remote registry (an artifact, a verdict, a report).
    pub file_reads: AtomicU64,
}

impl Counters {
    fn add(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// `(requests, state reads, file reads)` so far.
    pub fn snapshot(&self) -> (u64, u64, u64) {
        (
            self.requests.load(Ordering::Relaxed),
            self.state_reads.load(Ordering::Relaxed),
            self.file_reads.load(Ordering::Relaxed),
        )
    }
}

/// Where a registry's files live, seen from the folder the library's registry works in.
pub trait Backend: Send {
    /// The folder the registry's files are read and changed in.
    fn root(&self) -> &Path;
    /// What brings files into a partial copy (see [`model::lifecycle::registry::Source`]);
    /// `None` when the folder holds every file.
    fn source(&self) -> Option<Arc<dyn model::lifecycle::registry::Source>> {
        None
    }
    /// Reads the registry's state again when it moved; false when it has not since the last
    /// reading (a cheap comparison: the branch's commit, `state.json`'s ETag, the file's bytes).
    fn refresh(&mut self) -> Result<bool>;
    /// Reads the registry again from scratch, after another writer came first.
    fn reset(&mut self) -> Result<()>;
    /// Makes the folder's change durable (`message` says what changed, `actor` did it); false
    /// when another writer came first and nothing was published.
    fn publish(&mut self, actor: &Actor, message: &str, notice: fn(&str)) -> Result<bool>;
    /// What the backend has asked of the remote so far.
    fn counters(&self) -> Arc<Counters>;
}

/// An opened registry: the folder registry on the backend's folder, and how changes are made
/// durable.
pub struct Store {
    location: Location,
    backend: Box<dyn Backend>,
    registry: Registry,
}

impl std::ops::Deref for Store {
    type Target = Registry;
    fn deref(&self) -> &Registry {
        &self.registry
    }
}

impl Store {
    /// Opens the registry at `location`: a folder as it is; a git branch cloned (or, when the
    /// branch does not exist yet, started empty); an S3 prefix by its `state.json` alone, other
    /// files fetched when they are read.
    pub fn open(location: Location, notice: fn(&str), lock_timeout: std::time::Duration) -> Result<Store> {
        let backend: Box<dyn Backend> = match &location {
            Location::Folder(path) => Box::new(folder::Folder::open(path.clone())),
            Location::Git { url, branch, config } => Box::new(git::Git::open(url, branch, config)?),
            Location::S3 { bucket, prefix } => Box::new(s3::S3::open(s3::S3::from_env(bucket)?, prefix)?),
        };
        Ok(Store::with_backend(location, backend, notice, lock_timeout))
    }

    /// A store on a given backend (an S3 backend over an in-memory object store, in tests).
    pub fn with_backend(
        location: Location,
        backend: Box<dyn Backend>,
        notice: fn(&str),
        lock_timeout: std::time::Duration,
    ) -> Store {
        let mut registry = Registry::open(backend.root()).with_notices(notice).with_lock_timeout(lock_timeout);
        if let Some(source) = backend.source() {
            registry = registry.with_source(source);
        }
        Store { location, backend, registry }
    }

    /// The location, for messages.
    pub fn location(&self) -> &Location {
        &self.location
    }

    /// Reads the registry's state again when it moved; false when it has not.
    pub fn refresh(&mut self) -> Result<bool> {
        self.backend.refresh()
    }

    /// What this store has asked of the registry so far.
    pub fn counters(&self) -> Arc<Counters> {
        self.backend.counters()
    }

    /// Runs `op` on the registry and makes its change durable: nothing more for a folder; for a
    /// remote registry, published (a commit pushed, conditional writes), and when another writer
    /// came first, the registry read again and `op` run again (preconditions and all), a bounded
    /// number of times.
    pub fn transact<T>(&mut self, actor: &Actor, mut op: impl FnMut(&Registry) -> Result<T>) -> Result<T> {
        for attempt in 1..=ATTEMPTS {
            let value = op(&self.registry)?;
            let message = self
                .registry
                .history()?
                .pop()
                .map(|e| {
                    format!("{} {}: {}", e.action, e.to.as_deref().or(e.version.as_deref()).unwrap_or("-"), e.reason)
                })
                .unwrap_or_else(|| "registry change".into());
            if self.backend.publish(actor, &message, self.registry.notice())? {
                return Ok(value);
            }
            eprintln!("note: {} moved while this job wrote to it (attempt {attempt}); reading it again", self.location);
            self.backend.reset()?;
        }
        bail!("{}: gave up after {ATTEMPTS} writers in a row came first", self.location)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_parse_as_documented() {
        let base = Path::new("/repo/configs");
        assert_eq!(Location::parse("registry", base).unwrap(), Location::Folder("/repo/configs/registry".into()));
        assert_eq!(Location::parse("file:/srv/reg", base).unwrap(), Location::Folder("/srv/reg".into()));
        assert_eq!(
            Location::parse("git+file:///srv/models.git#mlgate-registry", base).unwrap(),
            Location::Git {
                url: "file:///srv/models.git".into(),
                branch: "mlgate-registry".into(),
                config: Vec::new()
            }
        );
        assert!(Location::parse("git+file:///srv/models.git", base).is_err());
        assert_eq!(
            Location::parse("s3://bucket/team/models/", base).unwrap(),
            Location::S3 { bucket: "bucket".into(), prefix: "team/models".into() }
        );
        assert!(Location::parse("s3:///prefix", base).is_err());
    }

    #[test]
    fn a_location_prints_without_credentials() {
        let git = Location::parse("git+https://user:s3cret@example.com/acme/shop.git#reg", Path::new("")).unwrap();
        assert_eq!(git.to_string(), "git+https://example.com/acme/shop.git#reg");
        assert_eq!(redact("https://tok@h/p@q"), "https://h/p@q");
        assert_eq!(redact("/srv/a@b"), "/srv/a@b");
    }
}
