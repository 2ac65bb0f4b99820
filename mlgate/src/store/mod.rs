//! Where the registry lives: a folder, a branch of a git repository (`git+URL#BRANCH`) or a
//! prefix of an S3-compatible bucket (`s3://BUCKET/PREFIX`), the last two outliving the CI job.
//! A remote registry is copied into a temporary folder, where the folder registry's own code
//! reads and changes it; a change is then published — one commit pushed without force, or
//! conditional writes (a new object only if none exists, `state.json` only if unchanged since it
//! was read). When another writer came first, the copy is read again and the operation runs again
//! on the new state, its preconditions checked again.

pub mod git;

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use model::lifecycle::registry::{Actor, Registry};

/// How many times a git registry operation is tried against a moving branch.
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
    /// A cheap token that changes whenever the registry may have, so that a reader polling it
    /// copies it only then: the branch's commit (git), `state.json`'s ETag (S3); `None` for a
    /// folder, whose reading costs nothing to begin with. [`Store::fingerprint`] is the same
    /// token for what an opened store read, which may be newer than a token taken before.
    pub fn fingerprint(&self) -> Result<Option<String>> {
        match self {
            Location::Folder(_) => Ok(None),
            Location::Git { url, branch, config } => {
                let heads = checked(
                    git_with(config, None, &["ls-remote", "--heads", url, branch])?,
                    &format!("cannot reach {url}"),
                )?;
                let heads = String::from_utf8_lossy(&heads.stdout);
                Ok(Some(heads.split_whitespace().next().unwrap_or(ABSENT).to_string()))
            }
            Location::S3 { bucket, prefix } => Ok(Some(s3::Remote::open(bucket, prefix)?.state_tag()?)),
        }
    }

    /// Parses a location; a relative folder is taken from `base`. `git+origin#B` is the current
    /// repository's `origin`.
    pub fn parse(text: &str, base: &Path) -> Result<Location> {
        if let Some(rest) = text.strip_prefix("git+") {
            let (url, branch) = rest
                .rsplit_once('#')
                .filter(|(u, b)| !u.is_empty() && !b.is_empty())
                .with_context(|| format!("registry {text:?}: a git registry is git+URL#BRANCH"))?;
            let (url, config) = if url == "origin" { origin()? } else { (url.to_string(), Vec::new()) };
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
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Location::Folder(p) => write!(f, "{}", p.display()),
            Location::Git { url, branch, .. } => write!(f, "git+{url}#{branch}"),
            Location::S3 { bucket, prefix } => write!(f, "s3://{bucket}/{prefix}"),
        }
    }
}

/// The current repository's `origin` and the credentials its checkout holds for it.
fn origin() -> Result<(String, Vec<String>)> {
    let out = Command::new("git").args(["remote", "get-url", "origin"]).output().context("cannot run git")?;
    if !out.status.success() {
        bail!("git+origin: this folder's repository has no remote `origin`");
    }
    let url = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let headers = Command::new("git")
        .args(["config", "--get-regexp", r"^http\..*\.extraheader$"])
        .output()
        .context("cannot run git")?;
    let config = String::from_utf8_lossy(&headers.stdout)
        .lines()
        .filter_map(|l| l.split_once(' ').map(|(k, v)| format!("{k}={v}")))
        .collect();
    Ok((url, config))
}

/// The fingerprint of a registry that holds nothing yet.
const ABSENT: &str = "absent";

/// An opened registry: the folder registry on the location's files, and how changes are made
/// durable.
pub struct Store {
    location: Location,
    registry: Registry,
    /// The copy of a remote registry.
    clone: Option<tempfile::TempDir>,
    /// An S3 registry's bucket, and the objects as they were read.
    s3: Option<s3::Remote>,
}

impl std::ops::Deref for Store {
    type Target = Registry;
    fn deref(&self) -> &Registry {
        &self.registry
    }
}

/// `git -c … -C dir args…`, its output.
fn git_with(config: &[String], dir: Option<&Path>, args: &[&str]) -> Result<std::process::Output> {
    let mut cmd = Command::new("git");
    for c in config {
        cmd.arg("-c").arg(c);
    }
    if let Some(dir) = dir {
        cmd.arg("-C").arg(dir);
    }
    // No prompt for credentials in CI: a refusal is an error, not a wait.
    cmd.args(args).env("GIT_TERMINAL_PROMPT", "0");
    cmd.output().with_context(|| format!("cannot run git {}", args.join(" ")))
}

fn checked(out: std::process::Output, what: &str) -> Result<std::process::Output> {
    if out.status.success() {
        Ok(out)
    } else {
        bail!("{what}: {}", String::from_utf8_lossy(&out.stderr).trim())
    }
}

impl Store {
    /// Opens the registry at `location`: a folder as it is; a git branch cloned (or, when the
    /// branch does not exist yet, started empty).
    pub fn open(location: Location, notice: fn(&str), lock_timeout: std::time::Duration) -> Result<Store> {
        let mut remote = None;
        let (root, clone) = match &location {
            Location::Folder(path) => (path.clone(), None),
            Location::S3 { bucket, prefix } => {
                pause();
                let dir =
                    tempfile::Builder::new().prefix("mlgate-registry-").tempdir().context("cannot make a folder")?;
                let mut r = s3::Remote::open(bucket, prefix)?;
                r.download(dir.path())?;
                remote = Some(r);
                (dir.path().to_path_buf(), Some(dir))
            }
            Location::Git { url, branch, config } => {
                let git = |dir: Option<&Path>, args: &[&str]| git_with(config, dir, args);
                pause();
                let dir =
                    tempfile::Builder::new().prefix("mlgate-registry-").tempdir().context("cannot make a folder")?;
                let path = dir.path().to_path_buf();
                let heads =
                    checked(git(None, &["ls-remote", "--heads", url, branch])?, &format!("cannot reach {url}"))?;
                let path_str = path.to_string_lossy().into_owned();
                if heads.stdout.is_empty() {
                    checked(git(None, &["init", "-q", &path_str])?, "git init")?;
                    checked(git(Some(&path), &["remote", "add", "origin", url])?, "git remote add")?;
                    checked(git(Some(&path), &["checkout", "-q", "--orphan", branch])?, "git checkout")?;
                } else {
                    let what = format!("cannot clone {url} branch {branch}");
                    checked(
                        git(
                            None,
                            &["clone", "-q", "--depth", "1", "--single-branch", "--branch", branch, url, &path_str],
                        )?,
                        &what,
                    )?;
                }
                (path, Some(dir))
            }
        };
        let registry = Registry::open(root).with_notices(notice).with_lock_timeout(lock_timeout);
        Ok(Store { location, registry, clone, s3: remote })
    }

    /// The location, for messages.
    pub fn location(&self) -> &Location {
        &self.location
    }

    /// [`Location::fingerprint`] of the state this store read (and, after a change, wrote).
    pub fn fingerprint(&self) -> Result<Option<String>> {
        match (&self.location, &self.s3) {
            (Location::Folder(_), _) => Ok(None),
            (Location::S3 { .. }, Some(remote)) => Ok(Some(remote.read_tag())),
            (Location::S3 { .. }, None) => unreachable!("an S3 registry has its bucket"),
            (Location::Git { .. }, _) => {
                let dir = self.clone.as_ref().expect("a git registry has a clone").path();
                let head = self.git(Some(dir), &["rev-parse", "--verify", "-q", "HEAD"])?;
                let commit = String::from_utf8_lossy(&head.stdout).trim().to_string();
                Ok(Some(if head.status.success() && !commit.is_empty() { commit } else { ABSENT.to_string() }))
            }
        }
    }

    /// Runs `op` on the registry and makes its change durable: nothing more for a folder; for a
    /// git branch, one commit by `actor` pushed without force, and on a rejected push the
    /// branch's new state fetched and `op` run again (preconditions and all), a bounded number
    /// of times.
    pub fn transact<T>(&mut self, actor: &Actor, mut op: impl FnMut(&Registry) -> Result<T>) -> Result<T> {
        if let Location::Folder(_) = self.location {
            return op(&self.registry);
        }
        for attempt in 1..=ATTEMPTS {
            let value = op(&self.registry)?;
            let published = match (&self.location, &mut self.s3) {
                (Location::S3 { .. }, Some(remote)) => {
                    let dir = self.clone.as_ref().expect("a remote registry has a copy").path();
                    remote.publish(dir, self.registry.notice())?
                }
                (Location::Git { branch, .. }, _) => self.publish(actor, &branch.clone())?,
                _ => unreachable!("a folder registry returned above"),
            };
            if published {
                return Ok(value);
            }
            eprintln!("note: {} moved while this job wrote to it (attempt {attempt}); reading it again", self.location);
            match (&self.location, &mut self.s3) {
                (Location::S3 { .. }, Some(remote)) => {
                    let dir = self.clone.as_ref().expect("a remote registry has a copy").path();
                    remote.download(dir)?;
                }
                (Location::Git { branch, .. }, _) => self.refresh(&branch.clone())?,
                _ => unreachable!("a folder registry returned above"),
            }
        }
        bail!("{}: gave up after {ATTEMPTS} writers in a row came first", self.location)
    }

    /// Commits and pushes the working copy; false when the push was rejected because the branch
    /// moved.
    fn git(&self, dir: Option<&Path>, args: &[&str]) -> Result<std::process::Output> {
        let config = match &self.location {
            Location::Git { config, .. } => config.as_slice(),
            Location::Folder(_) | Location::S3 { .. } => &[],
        };
        git_with(config, dir, args)
    }

    fn publish(&self, actor: &Actor, branch: &str) -> Result<bool> {
        let dir = self.clone.as_ref().expect("a git registry has a clone").path();
        checked(self.git(Some(dir), &["add", "-A", "--", ".", ":(exclude).lock"])?, "git add")?;
        if self.git(Some(dir), &["diff", "--cached", "--quiet"])?.status.success() {
            return Ok(true);
        }
        let message = self
            .registry
            .history()?
            .pop()
            .map(|e| format!("{} {}: {}", e.action, e.to.as_deref().or(e.version.as_deref()).unwrap_or("-"), e.reason))
            .unwrap_or_else(|| "registry change".into());
        let who = if actor.who.trim().is_empty() { "mlgate".to_string() } else { actor.who.clone() };
        let name = format!("user.name={who}");
        let email = format!("user.email={}@users.noreply.mlgate", who.replace(char::is_whitespace, "-"));
        checked(self.git(Some(dir), &["-c", &name, "-c", &email, "commit", "-q", "-m", &message])?, "git commit")?;
        pause();
        let push = self.git(Some(dir), &["push", "-q", "origin", &format!("HEAD:refs/heads/{branch}")])?;
        if push.status.success() {
            return Ok(true);
        }
        let stderr = String::from_utf8_lossy(&push.stderr);
        if ["rejected", "fetch first", "non-fast-forward", "stale info", "cannot lock ref"]
            .iter()
            .any(|s| stderr.contains(s))
        {
            return Ok(false);
        }
        bail!("cannot push to {}: {}", self.location, stderr.trim())
    }

    /// Resets the clone to the branch as it is now.
    fn refresh(&self, branch: &str) -> Result<()> {
        let dir = self.clone.as_ref().expect("a git registry has a clone").path();
        checked(self.git(Some(dir), &["fetch", "-q", "--depth", "1", "origin", branch])?, "git fetch")?;
        checked(self.git(Some(dir), &["reset", "-q", "--hard", "FETCH_HEAD"])?, "git reset")?;
        checked(self.git(Some(dir), &["clean", "-q", "-f", "-d", "-e", ".lock"])?, "git clean")?;
        Ok(())
    }
}

/// The S3 side: objects read into a folder, and the folder's changes written back with
/// conditional writes.
mod s3 {
    use std::collections::BTreeMap;
    use std::path::Path;

    use anyhow::{Context, Result};
    use futures_util::StreamExt;
    use object_store::aws::{AmazonS3, AmazonS3Builder, S3ConditionalPut};
    use object_store::path::Path as Key;
    use object_store::{ObjectStore, PutMode, PutOptions, PutPayload, UpdateVersion};

    /// A bucket's registry objects, and each one's bytes and ETag as last read.
    pub struct Remote {
        store: AmazonS3,
        prefix: String,
        runtime: tokio::runtime::Runtime,
        read: BTreeMap<String, (Vec<u8>, Option<String>)>,
        /// [`Remote::state_tag`] of the `state.json` in `read`.
        state_tag: String,
    }

    /// An object's tag: its ETag, else its time of change.
    fn tag(meta: &object_store::ObjectMeta) -> String {
        meta.e_tag.clone().unwrap_or_else(|| format!("{:?}", meta.last_modified))
    }

    /// Files of the folder that are never published: the local lock, half-written temporaries.
    fn local_only(relative: &str) -> bool {
        relative == ".lock" || relative.split('/').any(|part| part.starts_with(".tmp-") || part.ends_with(".tmp"))
    }

    impl Remote {
        pub fn open(bucket: &str, prefix: &str) -> Result<Remote> {
            let store = AmazonS3Builder::from_env()
                .with_bucket_name(bucket)
                .with_conditional_put(S3ConditionalPut::ETagMatch)
                .build()
                .with_context(|| format!("cannot use s3://{bucket}: check the AWS_* environment"))?;
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().context("cannot start")?;
            Ok(Remote {
                store,
                prefix: prefix.to_string(),
                runtime,
                read: BTreeMap::new(),
                state_tag: super::ABSENT.to_string(),
            })
        }

        fn key(&self, relative: &str) -> Key {
            if self.prefix.is_empty() {
                Key::from(relative)
            } else {
                Key::from(format!("{}/{relative}", self.prefix))
            }
        }

        /// The ETag of `state.json` (every change of the registry rewrites it), or `absent`.
        pub fn state_tag(&self) -> Result<String> {
            let key = self.key("state.json");
            match self.runtime.block_on(self.store.head(&key)) {
                Ok(meta) => Ok(tag(&meta)),
                Err(object_store::Error::NotFound { .. }) => Ok(super::ABSENT.into()),
                Err(e) => Err(e).with_context(|| format!("cannot read {key}")),
            }
        }

        /// [`Remote::state_tag`] of the `state.json` last downloaded or written.
        pub fn read_tag(&self) -> String {
            self.state_tag.clone()
        }

        /// Replaces the folder's content with the bucket's registry objects.
        pub fn download(&mut self, dir: &Path) -> Result<()> {
            for entry in std::fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))? {
                let path = entry?.path();
                if path.is_dir() {
                    std::fs::remove_dir_all(&path)?;
                } else if path.file_name().is_some_and(|n| n != ".lock") {
                    std::fs::remove_file(&path)?;
                }
            }
            let prefix = (!self.prefix.is_empty()).then(|| Key::from(self.prefix.as_str()));
            let state_key = self.key("state.json");
            let (store, runtime) = (&self.store, &self.runtime);
            // `state.json` first: every object it names was written before it, so the listing
            // that follows holds them all, and its tag is that of the state the copy holds.
            let objects = runtime.block_on(async {
                let mut out = Vec::new();
                let mut state_tag = super::ABSENT.to_string();
                match store.get(&state_key).await {
                    Ok(got) => {
                        state_tag = tag(&got.meta);
                        let e_tag = got.meta.e_tag.clone();
                        out.push((state_key.to_string(), got.bytes().await?.to_vec(), e_tag));
                    }
                    Err(object_store::Error::NotFound { .. }) => {}
                    Err(e) => return Err(e),
                }
                let mut listed = store.list(prefix.as_ref());
                while let Some(meta) = listed.next().await {
                    let meta = meta?;
                    if meta.location == state_key {
                        continue;
                    }
                    let got = store.get(&meta.location).await?;
                    let e_tag = got.meta.e_tag.clone();
                    out.push((meta.location.to_string(), got.bytes().await?.to_vec(), e_tag));
                }
                Ok::<_, object_store::Error>((out, state_tag))
            });
            let (objects, state_tag) = objects.context("cannot read the registry's objects")?;
            self.state_tag = state_tag;
            self.read.clear();
            for (key, bytes, e_tag) in objects {
                let relative = match self.prefix.as_str() {
                    "" => key.clone(),
                    p => key.strip_prefix(&format!("{p}/")).unwrap_or(&key).to_string(),
                };
                if local_only(&relative) {
                    continue;
                }
                let path = dir.join(&relative);
                if let Some(parent) = path.parent() {
                    std::fs::create_dir_all(parent)?;
                }
                std::fs::write(&path, &bytes).with_context(|| format!("cannot write {}", path.display()))?;
                self.read.insert(relative, (bytes, e_tag));
            }
            Ok(())
        }

        /// Writes back what the folder changed: new objects only where none exists, changed ones
        /// only if unchanged since read, `state.json` (the source of truth) after every version
        /// file and before the history. False when another writer came first.
        pub fn publish(&mut self, dir: &Path, notice: fn(&str)) -> Result<bool> {
            let mut files = Vec::new();
            collect(dir, dir, &mut files)?;
            let mut changed: Vec<(String, Vec<u8>)> = Vec::new();
            for relative in files.into_iter().filter(|r| !local_only(r)) {
                let bytes = std::fs::read(dir.join(&relative))?;
                if self.read.get(&relative).is_none_or(|(old, _)| *old != bytes) {
                    changed.push((relative, bytes));
                }
            }
            let rank = |r: &str| match r {
                "state.json" => 1,
                "history.jsonl" => 2,
                _ => 0,
            };
            changed.sort_by_key(|(r, _)| rank(r));
            for (relative, bytes) in changed {
                let mode = match self.read.get(&relative) {
                    None => PutMode::Create,
                    Some((_, e_tag)) => PutMode::Update(UpdateVersion { e_tag: e_tag.clone(), version: None }),
                };
                let key = self.key(&relative);
                super::pause();
                let (store, runtime) = (&self.store, &self.runtime);
                let put = runtime.block_on(store.put_opts(
                    &key,
                    PutPayload::from(bytes.clone()),
                    PutOptions { mode, ..PutOptions::default() },
                ));
                match put {
                    Ok(result) => {
                        if relative == "state.json" {
                            // Unknown without an ETag: a reader comparing it reads again.
                            self.state_tag = result.e_tag.clone().unwrap_or_default();
                        }
                        self.read.insert(relative, (bytes, result.e_tag));
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
                    Err(e) => return Err(e).with_context(|| format!("cannot write {key}")),
                }
            }
            Ok(true)
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
}
