//! A registry on a branch of a git repository: a shallow clone kept for the life of the
//! process, fetched again only when the branch's commit moved; each change one commit pushed
//! without force. Also the commit of the checkout a command runs in. Credentials reach git
//! through its configuration (`-c http.….extraheader`, from the checkout), never in a message.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use model::lifecycle::registry::Actor;
use xshell::{cmd, Shell};

use super::{pause, redact, Backend, Counters};

/// The commit of the checkout, with `-dirty` when the tree has uncommitted changes.
pub fn head_commit(sh: &Shell) -> Option<String> {
    let head = cmd!(sh, "git rev-parse HEAD").quiet().ignore_stderr().read().ok()?;
    let dirty = cmd!(sh, "git status --porcelain --untracked-files=no")
        .quiet()
        .ignore_stderr()
        .read()
        .map(|s| !s.trim().is_empty())
        .unwrap_or(false);
    Some(if dirty { format!("{head}-dirty") } else { head })
}

/// The current repository's `origin` and the credentials its checkout holds for it.
pub fn origin() -> Result<(String, Vec<String>)> {
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
    cmd.output().with_context(|| format!("cannot run git {}", args.first().copied().unwrap_or_default()))
}

fn checked(out: std::process::Output, what: &str) -> Result<std::process::Output> {
    if out.status.success() {
        Ok(out)
    } else {
        bail!("{what}: {}", redact(String::from_utf8_lossy(&out.stderr).trim()))
    }
}

/// The commit of a branch that does not exist yet.
const ABSENT: &str = "absent";

/// A registry on a git branch.
pub struct Git {
    url: String,
    branch: String,
    config: Vec<String>,
    /// Removed with the store.
    _clone: tempfile::TempDir,
    root: PathBuf,
    /// The branch's commit the clone holds (`absent` before the branch exists).
    head: String,
    counters: Arc<Counters>,
}

impl Git {
    /// Clones the branch (shallow), or starts it empty when it does not exist yet.
    pub fn open(url: &str, branch: &str, config: &[String]) -> Result<Git> {
        let clone = tempfile::Builder::new().prefix("mlgate-registry-").tempdir().context("cannot make a folder")?;
        let root = clone.path().to_path_buf();
        let mut git = Git {
            url: url.to_string(),
            branch: branch.to_string(),
            config: config.to_vec(),
            _clone: clone,
            root,
            head: ABSENT.into(),
            counters: Arc::default(),
        };
        pause();
        let remote = git.remote_head()?;
        let path = git.root.to_string_lossy().into_owned();
        Counters::add(&git.counters.requests);
        if remote == ABSENT {
            checked(git.run(None, &["init", "-q", &path])?, "git init")?;
            checked(git.run(Some(&git.root), &["remote", "add", "origin", url])?, "git remote add")?;
            checked(git.run(Some(&git.root), &["checkout", "-q", "--orphan", branch])?, "git checkout")?;
        } else {
            let what = format!("cannot clone {} branch {branch}", redact(url));
            checked(
                git.run(None, &["clone", "-q", "--depth", "1", "--single-branch", "--branch", branch, url, &path])?,
                &what,
            )?;
            git.head = git.local_head()?;
        }
        Counters::add(&git.counters.state_reads);
        Ok(git)
    }

    fn run(&self, dir: Option<&Path>, args: &[&str]) -> Result<std::process::Output> {
        git_with(&self.config, dir, args)
    }

    /// The branch's commit on the remote (`absent` when the branch does not exist).
    fn remote_head(&self) -> Result<String> {
        Counters::add(&self.counters.requests);
        let heads = checked(
            self.run(None, &["ls-remote", "--heads", &self.url, &self.branch])?,
            &format!("cannot reach {}", redact(&self.url)),
        )?;
        Ok(String::from_utf8_lossy(&heads.stdout).split_whitespace().next().unwrap_or(ABSENT).to_string())
    }

    /// The clone's commit.
    fn local_head(&self) -> Result<String> {
        let head = self.run(Some(&self.root), &["rev-parse", "--verify", "-q", "HEAD"])?;
        let commit = String::from_utf8_lossy(&head.stdout).trim().to_string();
        Ok(if head.status.success() && !commit.is_empty() { commit } else { ABSENT.to_string() })
    }

    /// Resets the clone to the branch as it is now.
    fn fetch(&mut self) -> Result<()> {
        pause();
        Counters::add(&self.counters.requests);
        let dir = self.root.clone();
        checked(self.run(Some(&dir), &["fetch", "-q", "--depth", "1", "origin", &self.branch])?, "git fetch")?;
        checked(self.run(Some(&dir), &["reset", "-q", "--hard", "FETCH_HEAD"])?, "git reset")?;
        checked(self.run(Some(&dir), &["clean", "-q", "-f", "-d", "-e", ".lock"])?, "git clean")?;
        self.head = self.local_head()?;
        Counters::add(&self.counters.state_reads);
        Ok(())
    }
}

impl Backend for Git {
    fn root(&self) -> &Path {
        &self.root
    }

    fn refresh(&mut self) -> Result<bool> {
        let remote = self.remote_head()?;
        if remote == self.head || remote == ABSENT {
            return Ok(false);
        }
        self.fetch()?;
        Ok(true)
    }

    fn reset(&mut self) -> Result<()> {
        self.fetch()
    }

    fn publish(&mut self, actor: &Actor, message: &str, _notice: fn(&str)) -> Result<bool> {
        let dir = self.root.clone();
        checked(self.run(Some(&dir), &["add", "-A", "--", ".", ":(exclude).lock"])?, "git add")?;
        if self.run(Some(&dir), &["diff", "--cached", "--quiet"])?.status.success() {
            return Ok(true);
        }
        let who = if actor.who.trim().is_empty() { "mlgate".to_string() } else { actor.who.clone() };
        let name = format!("user.name={who}");
        let email = format!("user.email={}@users.noreply.mlgate", who.replace(char::is_whitespace, "-"));
        checked(self.run(Some(&dir), &["-c", &name, "-c", &email, "commit", "-q", "-m", message])?, "git commit")?;
        pause();
        Counters::add(&self.counters.requests);
        let push = self.run(Some(&dir), &["push", "-q", "origin", &format!("HEAD:refs/heads/{}", self.branch)])?;
        if push.status.success() {
            self.head = self.local_head()?;
            return Ok(true);
        }
        let stderr = String::from_utf8_lossy(&push.stderr);
        if ["rejected", "fetch first", "non-fast-forward", "stale info", "cannot lock ref"]
            .iter()
            .any(|s| stderr.contains(s))
        {
            return Ok(false);
        }
        bail!("cannot push to git+{}#{}: {}", redact(&self.url), self.branch, redact(stderr.trim()))
    }

    fn counters(&self) -> Arc<Counters> {
        self.counters.clone()
    }
}
