//! Where the registry lives: a folder, or a branch of a git repository (`git+URL#BRANCH`) that
//! outlives the CI job. A git registry is a clone of its branch in a temporary folder: the folder
//! registry's own code reads and changes it there, and every change is one commit pushed without
//! force; a rejected push means another writer came first, so the clone is reset to theirs and
//! the operation runs again on the new state, its preconditions checked again.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use model::lifecycle::registry::{Actor, Registry};

/// How many times a git registry operation is tried against a moving branch.
const ATTEMPTS: usize = 8;

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
}

impl Location {
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
        if text.starts_with("s3://") {
            bail!("registry {text:?}: S3-compatible storage is not supported by this build; use a folder or git+URL#BRANCH");
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

/// An opened registry: the folder registry on the location's files, and how changes are made
/// durable.
pub struct Store {
    location: Location,
    registry: Registry,
    /// The clone of a git registry's branch.
    clone: Option<tempfile::TempDir>,
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
        let (root, clone) = match &location {
            Location::Folder(path) => (path.clone(), None),
            Location::Git { url, branch, config } => {
                let git = |dir: Option<&Path>, args: &[&str]| git_with(config, dir, args);
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
        Ok(Store { location, registry, clone })
    }

    /// The location, for messages.
    pub fn location(&self) -> &Location {
        &self.location
    }

    /// Runs `op` on the registry and makes its change durable: nothing more for a folder; for a
    /// git branch, one commit by `actor` pushed without force, and on a rejected push the
    /// branch's new state fetched and `op` run again (preconditions and all), a bounded number
    /// of times.
    pub fn transact<T>(&mut self, actor: &Actor, mut op: impl FnMut(&Registry) -> Result<T>) -> Result<T> {
        let Location::Git { branch, .. } = self.location.clone() else { return op(&self.registry) };
        for attempt in 1..=ATTEMPTS {
            let value = op(&self.registry)?;
            if self.publish(actor, &branch)? {
                return Ok(value);
            }
            eprintln!("note: {} moved while this job wrote to it (attempt {attempt}); reading it again", self.location);
            self.refresh(&branch)?;
        }
        bail!("{}: gave up after {ATTEMPTS} writers in a row came first", self.location)
    }

    /// Commits and pushes the working copy; false when the push was rejected because the branch
    /// moved.
    fn git(&self, dir: Option<&Path>, args: &[&str]) -> Result<std::process::Output> {
        let config = match &self.location {
            Location::Git { config, .. } => config.as_slice(),
            Location::Folder(_) => &[],
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
        assert!(Location::parse("s3://bucket/prefix", base).unwrap_err().to_string().contains("not supported"));
    }
}
