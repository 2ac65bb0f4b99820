//! A registry on a branch of a git repository: a shallow clone kept for the life of the
//! process, fetched again only when the branch's commit moved; each change one commit pushed
//! without force. Also the commit of the checkout a command runs in.
//!
//! Credentials reach git through its environment (`GIT_CONFIG_COUNT`, `GIT_CONFIG_KEY_n`,
//! `GIT_CONFIG_VALUE_n`: the checkout's `http.….extraheader`, a URL's `user:token` turned into
//! one), never its command line, which every user of the machine can read in
//! `/proc/PID/cmdline`, and never a message. Every git command is bounded in time: one that
//! overruns is killed with the helpers it started (`git-remote-http`, `index-pack`).

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use model::lifecycle::registry::Actor;
use xshell::Shell;

use super::{pause, redact, Backend, Counters, RemoteError, Timeouts, Unavailable};

/// Configuration every git command of a registry gets through its environment: it may hold
/// credentials, so its values are never printed (not even by `{:?}`).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Settings(Vec<(String, String)>);

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.0.iter().map(|(key, _)| format!("{key}=…"))).finish()
    }
}

impl Settings {
    /// Takes the user information out of an `http(s)://user:token@host/…` URL and gives it to
    /// git as an `Authorization: Basic` header for that URL; the URL without it.
    pub fn take_credentials(&mut self, url: &str) -> String {
        let Some((scheme, rest)) = url.split_once("://") else { return url.to_string() };
        if !scheme.eq_ignore_ascii_case("http") && !scheme.eq_ignore_ascii_case("https") {
            // An ssh URL's user is who to log in as, not a secret.
            return url.to_string();
        }
        let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let Some(at) = rest[..authority_end].rfind('@') else { return url.to_string() };
        let (user, password) = rest[..at].split_once(':').unwrap_or((&rest[..at], ""));
        let bare = format!("{scheme}://{}", &rest[at + 1..]);
        let pair = format!("{}:{}", percent_decode(user), percent_decode(password));
        self.0.push((format!("http.{bare}.extraheader"), format!("Authorization: Basic {}", base64(pair.as_bytes()))));
        bare
    }

    fn apply(&self, cmd: &mut Command) {
        if self.0.is_empty() {
            return;
        }
        cmd.env("GIT_CONFIG_COUNT", self.0.len().to_string());
        for (i, (key, value)) in self.0.iter().enumerate() {
            cmd.env(format!("GIT_CONFIG_KEY_{i}"), key).env(format!("GIT_CONFIG_VALUE_{i}"), value);
        }
    }
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (bytes[i], bytes.get(i + 1).copied().and_then(hex), bytes.get(i + 2).copied().and_then(hex)) {
            (b'%', Some(high), Some(low)) => {
                out.push((high * 16 + low) as u8);
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Standard base64 with padding (RFC 4648), for a Basic authorization header.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = (u32::from(chunk[0]) << 16)
            | (u32::from(*chunk.get(1).unwrap_or(&0)) << 8)
            | u32::from(*chunk.get(2).unwrap_or(&0));
        for k in 0..4 {
            if k <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * k) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The git commands running now, so that a server that exits while one is stuck can stop it
/// rather than leave it behind.
static RUNNING: Mutex<Vec<u32>> = Mutex::new(Vec::new());

fn running() -> std::sync::MutexGuard<'static, Vec<u32>> {
    RUNNING.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Kills every git command still running, with the helpers each started.
pub fn stop_commands() {
    let pids: Vec<u32> = running().drain(..).collect();
    for pid in pids {
        kill_tree(pid);
    }
}

/// Kills `pid` and its descendants: git runs the transport in a helper (`git-remote-https`) that
/// would otherwise stay blocked on the network after git itself is gone. The tree is frozen
/// first, so that none of it starts another process between the reading and the killing.
fn kill_tree(pid: u32) {
    let signal = |pids: &[u32], sig: i32| {
        for p in pids {
            // SAFETY: kill has no memory-safety preconditions; the pids are this process's git
            // command and its descendants, read from /proc just now.
            unsafe { libc::kill(*p as i32, sig) };
        }
    };
    signal(&descendants(pid), libc::SIGSTOP);
    signal(&descendants(pid), libc::SIGKILL);
}

/// `pid` and every process below it, from `/proc` (on a system without it, `pid` alone).
fn descendants(pid: u32) -> Vec<u32> {
    let parents: Vec<(u32, u32)> = std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let p: u32 = entry.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(entry.path().join("stat")).ok()?;
            // `pid (comm) state ppid …`, where comm may hold spaces and parentheses.
            let ppid = stat.rsplit_once(')')?.1.split_whitespace().nth(1)?.parse().ok()?;
            Some((p, ppid))
        })
        .collect();
    let mut tree = vec![pid];
    let mut i = 0;
    while i < tree.len() {
        let parent = tree[i];
        tree.extend(parents.iter().filter(|(_, pp)| *pp == parent).map(|(p, _)| *p));
        i += 1;
    }
    tree
}

/// Runs `git args…` (in `dir`) within `limit`: its output, or a [`RemoteError`] of kind
/// timeout once it overran and was killed.
fn git_with(settings: &Settings, limit: Duration, dir: Option<&Path>, args: &[&str]) -> Result<Output> {
    // The subcommand, past any `-c key=value`.
    let mut words = args.iter().copied();
    let name = loop {
        match words.next() {
            Some("-c") => {
                words.next();
            }
            Some(word) => break word,
            None => break "",
        }
    };
    let mut cmd = Command::new("git");
    if let Some(dir) = dir {
        cmd.arg("-C").arg(dir);
    }
    // No prompt for credentials in CI: a refusal is an error, not a wait.
    cmd.args(args).env("GIT_TERMINAL_PROMPT", "0").stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    settings.apply(&mut cmd);
    let mut child = cmd.spawn().with_context(|| format!("cannot run git {name}"))?;
    let pid = child.id();
    running().push(pid);
    let deadline = Instant::now() + limit;
    // The pipes are read as the command writes, so that a full pipe never stalls it.
    let (sent, outputs) = mpsc::channel();
    for (index, pipe) in [
        child.stdout.take().map(|p| Box::new(p) as Box<dyn Read + Send>),
        child.stderr.take().map(|p| Box::new(p) as Box<dyn Read + Send>),
    ]
    .into_iter()
    .enumerate()
    {
        let sent = sent.clone();
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_end(&mut bytes);
            }
            let _ = sent.send((index, bytes));
        });
    }
    drop(sent);
    let mut pause = Duration::from_millis(1);
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if Instant::now() < deadline => {
                std::thread::sleep(pause.min(deadline.saturating_duration_since(Instant::now())));
                pause = (pause * 2).min(Duration::from_millis(50));
            }
            Ok(None) => break None,
            Err(e) => {
                kill_tree(pid);
                let _ = child.wait();
                running().retain(|p| *p != pid);
                return Err(e).with_context(|| format!("cannot wait for git {name}"));
            }
        }
    };
    let Some(status) = status else {
        kill_tree(pid);
        let _ = child.wait();
        running().retain(|p| *p != pid);
        return Err(timed_out(name, limit));
    };
    // Reaped: its pid may be another process's from now on.
    running().retain(|p| *p != pid);
    // A process git left behind may still hold the pipes: they too are read by the deadline.
    let mut streams = [Vec::new(), Vec::new()];
    for _ in 0..2 {
        match outputs.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok((index, bytes)) => streams[index] = bytes,
            Err(_) => return Err(timed_out(name, limit)),
        }
    }
    let [stdout, stderr] = streams;
    Ok(Output { status, stdout, stderr })
}

fn timed_out(name: &str, limit: Duration) -> anyhow::Error {
    let limit = humantime::format_duration(limit);
    RemoteError::new(
        Unavailable::Timeout,
        format!("git {name} did not finish within {limit} (MLGATE_REGISTRY_TIMEOUT_SECS); stopped it"),
    )
    .into()
}

/// A local git command (in the checkout or the clone): bounded as every command is.
fn local_git(dir: Option<&Path>, args: &[&str]) -> Result<Output> {
    git_with(&Settings::default(), Timeouts::default().git, dir, args)
}

/// The commit of the checkout, with `-dirty` when the tree has uncommitted changes.
pub fn head_commit(sh: &Shell) -> Option<String> {
    let here = sh.current_dir();
    let head = local_git(Some(&here), &["rev-parse", "HEAD"]).ok().filter(|o| o.status.success())?;
    let head = String::from_utf8_lossy(&head.stdout).trim().to_string();
    let dirty = local_git(Some(&here), &["status", "--porcelain", "--untracked-files=no"])
        .ok()
        .filter(|o| o.status.success())
        .is_some_and(|o| !String::from_utf8_lossy(&o.stdout).trim().is_empty());
    Some(if dirty { format!("{head}-dirty") } else { head })
}

/// The current repository's `origin` and the credentials its checkout holds for it.
pub fn origin() -> Result<(String, Settings)> {
    let out = local_git(None, &["remote", "get-url", "origin"])?;
    if !out.status.success() {
        bail!("git+origin: this folder's repository has no remote `origin`");
    }
    let url = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let headers = local_git(None, &["config", "--get-regexp", r"^http\..*\.extraheader$"])?;
    let config = String::from_utf8_lossy(&headers.stdout)
        .lines()
        .filter_map(|l| l.split_once(' ').map(|(k, v)| (k.to_string(), v.to_string())))
        .collect();
    Ok((url, Settings(config)))
}

/// A local command's output, or an error with its message.
fn checked(out: Output, what: &str) -> Result<Output> {
    if out.status.success() {
        Ok(out)
    } else {
        bail!("{what}: {}", redact(String::from_utf8_lossy(&out.stderr).trim()))
    }
}

/// A command that reached the remote: its output, or a [`RemoteError`] saying whether the
/// remote refused the credentials or could not be reached.
fn reached(out: Output, what: &str) -> Result<Output> {
    if out.status.success() {
        return Ok(out);
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stderr = if stderr.trim().is_empty() { format!("git {}", out.status).into() } else { stderr };
    let refused = ["Authentication failed", "could not read Username", "could not read Password", "401", "403"];
    let kind = if refused.iter().any(|s| stderr.contains(s)) { Unavailable::Refused } else { Unavailable::Unreachable };
    Err(RemoteError::new(kind, format!("{what}: {}", stderr.trim())).into())
}

/// The commit of a branch that does not exist yet.
const ABSENT: &str = "absent";

/// A registry on a git branch.
pub struct Git {
    url: String,
    branch: String,
    config: Settings,
    /// Each git command's limit.
    limit: Duration,
    /// Removed with the store.
    _clone: tempfile::TempDir,
    root: PathBuf,
    /// The branch's commit the clone holds (`absent` before the branch exists).
    head: String,
    counters: Arc<Counters>,
}

impl Git {
    /// Clones the branch (shallow), or starts it empty when it does not exist yet; each git
    /// command within `limit`.
    pub fn open(url: &str, branch: &str, config: &Settings, limit: Duration) -> Result<Git> {
        let clone = tempfile::Builder::new().prefix("mlgate-registry-").tempdir().context("cannot make a folder")?;
        let root = clone.path().to_path_buf();
        let mut git = Git {
            url: url.to_string(),
            branch: branch.to_string(),
            config: config.clone(),
            limit,
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
            let args = ["clone", "-q", "--depth", "1", "--single-branch", "--branch", branch, url, &path];
            reached(git.run(None, &args).with_context(|| what.clone())?, &what)?;
            git.head = git.local_head()?;
        }
        Counters::add(&git.counters.state_reads);
        Ok(git)
    }

    fn run(&self, dir: Option<&Path>, args: &[&str]) -> Result<Output> {
        git_with(&self.config, self.limit, dir, args)
    }

    /// The branch's commit on the remote (`absent` when the branch does not exist).
    fn remote_head(&self) -> Result<String> {
        Counters::add(&self.counters.requests);
        let what = format!("cannot reach {}", redact(&self.url));
        let heads =
            reached(self.run(None, &["ls-remote", "--heads", &self.url, &self.branch]).context(what.clone())?, &what)?;
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
        let what = format!("cannot fetch {} branch {}", redact(&self.url), self.branch);
        let fetch = self.run(Some(&dir), &["fetch", "-q", "--depth", "1", "origin", &self.branch]);
        reached(fetch.context(what.clone())?, &what)?;
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
        let what = format!("cannot push to git+{}#{}", redact(&self.url), self.branch);
        let push = self.run(Some(&dir), &["push", "-q", "origin", &format!("HEAD:refs/heads/{}", self.branch)]);
        let push = push.context(what.clone())?;
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
        reached(push, &what).map(|_| true)
    }

    fn counters(&self) -> Arc<Counters> {
        self.counters.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_leave_the_url_for_an_authorization_header() {
        let mut settings = Settings::default();
        let url = settings.take_credentials("https://ci:p%40ss@example.com:8443/acme/shop.git");
        assert_eq!(url, "https://example.com:8443/acme/shop.git");
        // base64("ci:p@ss"), as `printf ci:p@ss | base64` gives it.
        assert_eq!(
            settings.0,
            [(
                "http.https://example.com:8443/acme/shop.git.extraheader".to_string(),
                "Authorization: Basic Y2k6cEBzcw==".to_string()
            )]
        );
        assert_eq!(format!("{settings:?}"), r#"["http.https://example.com:8443/acme/shop.git.extraheader=…"]"#);
        let mut untouched = Settings::default();
        assert_eq!(untouched.take_credentials("ssh://git@example.com/a.git"), "ssh://git@example.com/a.git");
        assert_eq!(untouched.take_credentials("file:///srv/a.git"), "file:///srv/a.git");
        assert!(untouched.0.is_empty());
        assert_eq!(base64(b"ab"), "YWI=");
        assert_eq!(base64(b"abc"), "YWJj");
        assert_eq!(base64(b"a"), "YQ==");
    }

    /// A command that outlives its limit is killed, its helper too, and the error says so.
    #[test]
    fn a_command_past_its_limit_is_killed_with_what_it_started() {
        let dir = tempfile::tempdir().unwrap();
        // An alias runs through the shell: git, then sh, then sleep — a tree like a transport's.
        let marker = dir.path().join("helper-pid");
        let alias = format!("alias.hang=!echo $$ > {} && exec sleep 30", marker.display());
        let start = Instant::now();
        let error = git_with(&Settings::default(), Duration::from_millis(500), None, &["-c", &alias, "hang"])
            .expect_err("the command hangs");
        assert!(start.elapsed() < Duration::from_secs(5), "{:?}", start.elapsed());
        let remote = RemoteError::find(&error).expect("a remote error");
        assert_eq!(remote.kind, Unavailable::Timeout);
        assert!(error.to_string().contains("git hang did not finish within 500ms"), "{error}");
        let helper: i32 = std::fs::read_to_string(&marker).unwrap().trim().parse().unwrap();
        let gone = (0..100).any(|_| {
            std::thread::sleep(Duration::from_millis(20));
            // SAFETY: signal 0 only asks whether the process exists.
            let alive = unsafe { libc::kill(helper, 0) } == 0;
            !alive || std::fs::read_to_string(format!("/proc/{helper}/stat")).is_ok_and(|s| s.contains(") Z "))
        });
        assert!(gone, "the helper {helper} outlived the killed command");
        assert!(running().is_empty());
    }
}
