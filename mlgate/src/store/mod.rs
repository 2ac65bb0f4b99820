//! Where the registry lives: a folder, a branch of a git repository (`git+URL#BRANCH`) or a
//! prefix of an S3-compatible bucket (`s3://BUCKET/PREFIX`), the last two outliving the CI job.
//! Each is a [`Backend`]: the library's folder registry reads and changes files in the backend's
//! folder (the folder itself, a clone of the branch, or a partial copy of the prefix that fetches
//! only the files it is asked for), and the backend makes a change durable — nothing more for a
//! folder, one commit pushed without force, or conditional writes (a new object only if none
//! exists, `state.json` only if unchanged since it was read). When another writer came first,
//! the copy is read again and the operation runs again on the new state, its preconditions
//! checked again. Only this module runs git or talks to S3.
//!
//! Every request to a remote registry is bounded in time ([`Timeouts`]): a git command that
//! overruns is killed with its helpers, an S3 call is cancelled, and either is an error that says
//! what timed out ([`Unavailable`]).

pub mod events;
pub mod fetch;
pub mod folder;
pub mod git;
pub mod s3;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use model::lifecycle::registry::{Actor, Registry};

pub use crate::output::redact;
pub use git::stop_commands;

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
        /// Settings every git command gets through its environment, never its command line:
        /// for `origin`, the checkout's credentials (actions/checkout keeps the job's token in an
        /// `http.….extraheader`); for a URL given with `user:token@`, those, taken out of it.
        config: git::Settings,
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
            let (url, mut config) =
                if url == "origin" { git::origin()? } else { (url.to_string(), git::Settings::default()) };
            let url = config.take_credentials(&url);
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

/// How long one request to a remote registry may take: one git command (a clone, a fetch, a
/// push), one S3 call (retries included). Resolved once, from `MLGATE_REGISTRY_TIMEOUT_SECS`
/// (`cli::context::registry_timeouts`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// One git command.
    pub git: Duration,
    /// One S3 call.
    pub s3: Duration,
}

impl Default for Timeouts {
    fn default() -> Timeouts {
        Timeouts { git: Duration::from_secs(60), s3: Duration::from_secs(30) }
    }
}

impl Timeouts {
    /// The same limit for every kind of request.
    pub fn all(limit: Duration) -> Timeouts {
        Timeouts { git: limit, s3: limit }
    }
}

/// Why a remote registry did not answer, when it is the remote's (or the network's) doing: a
/// closed set, so that a caller can count failures by kind (the server's metrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unavailable {
    /// A git command or an S3 call did not finish within its [`Timeouts`] limit.
    Timeout,
    /// The remote could not be reached, or answered with an error that is not a refusal.
    Unreachable,
    /// The remote refused the credentials (HTTP 401 or 403, git's authentication failures).
    Refused,
}

/// A failed request to a remote registry: its kind and what was asked, credentials removed.
#[derive(Debug)]
pub struct RemoteError {
    /// Why.
    pub kind: Unavailable,
    /// What failed and how, for people.
    pub message: String,
}

impl std::fmt::Display for RemoteError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for RemoteError {}

impl RemoteError {
    fn new(kind: Unavailable, message: impl AsRef<str>) -> RemoteError {
        RemoteError { kind, message: redact(message.as_ref()) }
    }

    /// The remote failure somewhere in `error`'s chain, also through the I/O errors the library
    /// passes on from a partial copy's [`model::lifecycle::registry::Source`].
    pub fn find(error: &anyhow::Error) -> Option<&RemoteError> {
        error.chain().find_map(|cause| {
            cause.downcast_ref::<RemoteError>().or_else(|| {
                cause.downcast_ref::<std::io::Error>().and_then(|io| io.get_ref()?.downcast_ref::<RemoteError>())
            })
        })
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
    /// Each request to a remote registry is bounded by `timeouts`.
    pub fn open(location: Location, notice: fn(&str), lock_timeout: Duration, timeouts: Timeouts) -> Result<Store> {
        let backend: Box<dyn Backend> = match &location {
            Location::Folder(path) => Box::new(folder::Folder::open(path.clone())),
            Location::Git { url, branch, config } => Box::new(git::Git::open(url, branch, config, timeouts.git)?),
            Location::S3 { bucket, prefix } => {
                Box::new(s3::S3::open(s3::S3::from_env(bucket, timeouts.s3)?, prefix, timeouts.s3)?)
            }
        };
        Ok(Store::with_backend(location, backend, notice, lock_timeout))
    }

    /// A store on a given backend (an S3 backend over an in-memory object store, in tests).
    pub fn with_backend(
        location: Location,
        backend: Box<dyn Backend>,
        notice: fn(&str),
        lock_timeout: Duration,
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
                config: git::Settings::default()
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
        // The credentials leave the URL git is given, and no debug print shows them.
        let Location::Git { url, config, .. } = &git else { unreachable!() };
        assert_eq!(url, "https://example.com/acme/shop.git");
        assert!(!format!("{git:?}").contains("s3cret"), "{git:?}");
        assert!(!format!("{config:?}").contains("Basic"), "{config:?}");
    }
}
