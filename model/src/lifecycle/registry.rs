//! The model registry on the filesystem: numbered versions, the aliases `staging` and
//! `production`, and an append-only history — written so that a process killed at any point
//! leaves a registry that reads back whole and consistent.
//!
//! Layout:
//!
//! ```text
//! registry/
//!   state.json          aliases, the stack of earlier productions, the breach counter,
//!                       the versions marked breached, and the last event (replaced
//!                       atomically: the source of truth)
//!   history.jsonl       one JSON event per line, append-only
//!   versions/v1/        model.json, verdict.json, metrics.json, report.md
//!   .lock               held (flock) by every writer
//! ```
//!
//! A change is made in this order: new version folders are written under a temporary name and
//! renamed into place; then `state.json` is replaced; then the event is appended to the
//! history. A writer killed after the state but before the history leaves the event in
//! `state.json`; the next writer appends it (the history may lag by one event, never disagree).

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::pipeline::artifact::Artifact;
use crate::pipeline::rollout::{RolloutMode, RolloutStep};

/// Alias of the last accepted candidate.
pub const STAGING: &str = "staging";
/// Alias of the deployed model.
pub const PRODUCTION: &str = "production";

/// Who acts, when, from which commit: supplied by the caller.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Actor {
    /// A user name (`GITHUB_ACTOR` or the OS user).
    pub who: String,
    /// RFC 3339 time.
    pub when: String,
    /// The git commit, when known.
    pub commit: Option<String>,
}

/// What a monitoring run ([`Registry::record_monitoring`]) concluded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Every check measured and passed.
    Healthy,
    /// A check breached.
    Breached,
    /// Nothing could be judged (no data, or not the version in production): recorded as such,
    /// it leaves the count of consecutive breaches as it was.
    Inconclusive,
}

/// What an event of the history did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// A candidate was registered and staged.
    Register,
    /// `staging` was promoted to production.
    Promote,
    /// Production was put back to an earlier version.
    Rollback,
    /// A monitoring run of production was recorded.
    Monitor,
    /// Old versions no alias or rollback needs were removed.
    Prune,
    /// A rollout of a candidate beside production was opened (`rollout start`).
    RolloutStart,
    /// The open rollout moved to its next step (its next weight).
    RolloutStep,
    /// The open rollout's candidate went to production, closing the rollout.
    RolloutPromote,
    /// The open rollout was closed without moving production (the candidate marked breached
    /// when the abort was on evidence).
    RolloutAbort,
}

impl Action {
    /// The alias the action moves, if any.
    pub fn alias(self) -> Option<&'static str> {
        match self {
            Action::Register => Some(STAGING),
            Action::Promote | Action::Rollback | Action::RolloutPromote => Some(PRODUCTION),
            Action::Monitor | Action::Prune | Action::RolloutStart | Action::RolloutStep | Action::RolloutAbort => None,
        }
    }

    /// The name written in the history.
    pub fn name(self) -> &'static str {
        match self {
            Action::Register => "register",
            Action::Promote => "promote",
            Action::Rollback => "rollback",
            Action::Monitor => "monitor",
            Action::Prune => "prune",
            Action::RolloutStart => "rollout_start",
            Action::RolloutStep => "rollout_step",
            Action::RolloutPromote => "rollout_promote",
            Action::RolloutAbort => "rollout_abort",
        }
    }
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// One line of `history.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Position in the history, from 1.
    pub seq: u64,
    /// What happened.
    pub action: Action,
    /// Version before the change (for promote and rollback: the production replaced).
    pub from: Option<String>,
    /// Version after the change.
    pub to: Option<String>,
    /// Why.
    pub reason: String,
    /// True when a failed verdict was overridden with `--force`.
    #[serde(default)]
    pub forced: bool,
    /// The version registered (for `register`: `to` is the staging alias after the event,
    /// which a failed candidate does not move).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// The version this event marked breached (a rollback on evidence: `from`); `staging`, when
    /// it pointed there, was removed by the same event. Absent from events written before marks
    /// existed: read as none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub breached: Option<String>,
    /// For a rollout's events (`from` the baseline, `to` the candidate): the rollout as the
    /// event left it (start, step) or as it stood when the event closed it (promote, abort).
    /// Absent from other events and from events written before rollouts existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout: Option<Rollout>,
    /// Who, when, which commit.
    #[serde(flatten)]
    pub actor: Actor,
}

/// The mark of a version taken out of production on evidence (an automatic rollback, or
/// `rollback --mark-breached`): `staging` never points at it again, and deploying it or
/// rolling back to it needs a forced reason.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BreachMark {
    /// The version marked.
    pub version: String,
    /// Why it was marked (the rollback's reason).
    pub reason: String,
    /// True when the mark took `staging` off the version (it pointed there).
    #[serde(default)]
    pub unstaged: bool,
    /// Who marked it, when, from which commit.
    #[serde(flatten)]
    pub actor: Actor,
}

impl BreachMark {
    /// The mark in words, for messages and listings: when, by whom, why (the reason cut at 200
    /// characters, with its length).
    pub fn describe(&self) -> String {
        let reason = if self.reason.chars().count() > 200 {
            let cut: String = self.reason.chars().take(200).collect();
            format!("{cut}… ({} characters)", self.reason.chars().count())
        } else {
            self.reason.clone()
        };
        format!("marked breached {} by {}: {reason}", self.actor.when, self.actor.who)
    }
}

/// `state.json`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct State {
    /// Sequence number of the last event.
    pub seq: u64,
    /// Alias → version.
    pub aliases: BTreeMap<String, String>,
    /// Earlier productions, the most recent last: where a rollback goes.
    pub previous_productions: Vec<String>,
    /// Consecutive monitoring runs that breached, for the current production.
    pub consecutive_breaches: u64,
    /// The last event, kept here until it is surely in the history.
    pub last_event: Option<Event>,
    /// Versions removed by `prune`: the history still names them, their files are gone on
    /// purpose. (Absent from a `state.json` written before pruning existed: read as none.)
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pruned: Vec<String>,
    /// Versions marked breached, oldest first (see [`BreachMark`]). Absent from a `state.json`
    /// written before marks existed: read as none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub breached: Vec<BreachMark>,
    /// The open rollout, if any (see [`Rollout`]). Absent when none is open, and from a
    /// `state.json` written before rollouts existed: read as none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout: Option<Rollout>,
}

impl State {
    /// The mark of `version`, when it is marked breached.
    pub fn breach_mark(&self, version: &str) -> Option<&BreachMark> {
        self.breached.iter().find(|m| m.version == version)
    }
}

/// The open rollout, as `state.json` records it (its changes: `lifecycle::rollout`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rollout {
    /// The version released beside production.
    pub candidate: String,
    /// The version in production when the rollout started (what the candidate is compared with).
    pub baseline: String,
    /// Canary or shadow.
    pub mode: RolloutMode,
    /// Every step, the first at index 0.
    pub steps: Vec<RolloutStep>,
    /// Index of the current step in `steps`.
    pub step: usize,
    /// The current canary weight, in percent of the records (0 in shadow).
    pub weight: u32,
    /// When the current step started (RFC 3339).
    pub step_started: String,
    /// Who started the rollout, when, from which commit.
    pub started: Actor,
    /// The history's sequence number of the `rollout_start` event: which rollout this is.
    pub seq: u64,
}

impl Rollout {
    /// The current step.
    pub fn current(&self) -> RolloutStep {
        self.steps[self.step.min(self.steps.len().saturating_sub(1))]
    }

    /// The step after the current one, if any.
    pub fn next(&self) -> Option<RolloutStep> {
        self.steps.get(self.step + 1).copied()
    }

    /// True when the current step is the last: passing it promotes.
    pub fn is_last_step(&self) -> bool {
        self.step + 1 >= self.steps.len()
    }

    /// The rollout in words: "canary of v3 against v2 at 10 % (step 1 of 3)".
    pub fn describe(&self) -> String {
        let at = match self.mode {
            RolloutMode::Canary => format!(" at {} %", self.weight),
            RolloutMode::Shadow => String::new(),
        };
        format!(
            "{} of {} against {}{at} (step {} of {})",
            self.mode,
            self.candidate,
            self.baseline,
            self.step + 1,
            self.steps.len()
        )
    }

    /// The refusal of a change that an open rollout forbids (another rollout, a deploy).
    pub fn open_error(&self) -> Error {
        Error::RolloutOpen { rollout: self.describe(), since: self.started.when.clone() }
    }
}

/// `verdict.json` of a version: the acceptance decision, bound to the artifact's checksum.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VerdictRecord {
    /// True when every acceptance check passed.
    pub passed: bool,
    /// sha256 of the artifact the verdict is about.
    pub artifact_sha256: String,
    /// The failed checks, in words.
    pub failed: Vec<String>,
    /// When the verdict was given.
    pub decided_at: String,
}

/// What `promote` did.
#[derive(Debug, Clone, PartialEq)]
pub struct Promotion {
    /// The version now in production.
    pub deployed: String,
    /// The version it replaced.
    pub replaced: Option<String>,
    /// False when the version was already in production (nothing changed).
    pub changed: bool,
}

/// What a registry folder that is a partial copy of a remote registry (an S3 prefix) asks of
/// the remote before it reads: the library reads and writes files in its folder; a source brings
/// the files it is about to read, so that a reader fetches only what it uses.
pub trait Source: Send + Sync {
    /// Brings `relative` (a path below the registry's root, `/`-separated) into the folder when
    /// the registry holds it; no error when it does not.
    fn fetch(&self, relative: &str) -> std::io::Result<()>;
    /// Whether the registry holds `relative`, without reading it.
    fn exists(&self, relative: &str) -> std::io::Result<bool>;
    /// Makes every version's folder appear in `versions/` (empty until its files are fetched).
    fn list_versions(&self) -> std::io::Result<()>;
}

/// A [`Source`] shared by the copies of one registry handle.
#[derive(Clone)]
struct Shared(std::sync::Arc<dyn Source>);

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Source")
    }
}

/// A registry folder.
#[derive(Debug, Clone)]
pub struct Registry {
    root: PathBuf,
    /// Where files not yet in the folder come from (a partial copy of a remote registry).
    source: Option<Shared>,
    /// How long a writer waits for another writer's lock.
    lock_timeout: std::time::Duration,
    /// Where the registry says what a caller should know but that is no error (the library
    /// prints nothing itself): a wait for the lock, a history line left for the next writer.
    notice: fn(&str),
}

/// How long a writer waits for the lock by default.
pub const LOCK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(120);

/// The exclusive lock of a registry, released when dropped (or when the process dies).
pub struct Lock {
    _file: File,
}

fn corrupt(path: &Path, message: impl std::fmt::Display) -> Error {
    Error::RegistryCorrupt { path: path.to_path_buf(), message: message.to_string() }
}

impl Registry {
    /// A registry at `root` (created on first write).
    pub fn open(root: impl Into<PathBuf>) -> Registry {
        Registry { root: root.into(), source: None, lock_timeout: LOCK_TIMEOUT, notice: |_| {} }
    }

    /// The same registry, its folder a partial copy whose missing files `source` brings.
    pub fn with_source(self, source: std::sync::Arc<dyn Source>) -> Registry {
        Registry { source: Some(Shared(source)), ..self }
    }

    /// `relative`'s path in the folder, fetched first when the folder is a partial copy.
    fn local(&self, relative: &str) -> Result<PathBuf> {
        let path = self.root.join(relative);
        if let Some(source) = &self.source {
            source.0.fetch(relative).map_err(|e| Error::io(&path, e))?;
        }
        Ok(path)
    }

    /// Whether the registry holds `relative` (a partial copy asks its source, without reading).
    fn holds(&self, relative: &str) -> Result<bool> {
        match &self.source {
            Some(source) => source.0.exists(relative).map_err(|e| Error::io(self.root.join(relative), e)),
            None => Ok(self.root.join(relative).is_file()),
        }
    }

    /// Lists the versions' folders into a partial copy.
    fn list(&self) -> Result<()> {
        match &self.source {
            Some(source) => source.0.list_versions().map_err(|e| Error::io(self.root.join("versions"), e)),
            None => Ok(()),
        }
    }

    /// A version's file, relative to the root.
    fn version_file(version: &str, name: &str) -> String {
        format!("versions/{version}/{name}")
    }

    /// The same registry, telling `notice` what a caller should know (see [`Registry`]).
    pub fn with_notices(self, notice: fn(&str)) -> Registry {
        Registry { notice, ..self }
    }

    /// Where this registry tells what a caller should know (see [`Registry::with_notices`]).
    pub fn notice(&self) -> fn(&str) {
        self.notice
    }

    /// The same registry, waiting at most `timeout` for another writer's lock.
    pub fn with_lock_timeout(self, timeout: std::time::Duration) -> Registry {
        Registry { lock_timeout: timeout, ..self }
    }

    /// The registry folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The folder of a version.
    pub fn version_dir(&self, version: &str) -> PathBuf {
        self.root.join("versions").join(version)
    }

    fn state_path(&self) -> PathBuf {
        self.root.join("state.json")
    }

    /// Takes the registry's exclusive lock, waiting for another writer to finish.
    pub fn lock(&self) -> Result<Lock> {
        std::fs::create_dir_all(&self.root).map_err(|e| Error::io(&self.root, e))?;
        let path = self.root.join(".lock");
        let file =
            OpenOptions::new().create(true).truncate(false).write(true).open(&path).map_err(|e| Error::io(&path, e))?;
        let started = std::time::Instant::now();
        let mut told = false;
        loop {
            match file.try_lock() {
                Ok(()) => return Ok(Lock { _file: file }),
                Err(std::fs::TryLockError::Error(e)) => return Err(Error::io(&path, e)),
                Err(std::fs::TryLockError::WouldBlock) => {}
            }
            if started.elapsed() >= self.lock_timeout {
                return Err(Error::LockTimeout { path, seconds: self.lock_timeout.as_secs_f64() });
            }
            if !told {
                (self.notice)(&format!(
                    "waiting for the registry lock {}: another writer holds it (at most {} s)",
                    path.display(),
                    self.lock_timeout.as_secs_f64()
                ));
                told = true;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }

    /// The current state (empty for a new registry).
    pub fn state(&self) -> Result<State> {
        let path = self.state_path();
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| corrupt(&path, e)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(State::default()),
            Err(e) => Err(Error::io(&path, e)),
        }
    }

    /// Every event, oldest first, including one a killed writer left only in the state.
    pub fn history(&self) -> Result<Vec<Event>> {
        let mut events = self.written_history()?;
        if let Some(last) = self.state()?.last_event {
            if events.last().is_none_or(|e| e.seq < last.seq) {
                events.push(last);
            }
        }
        Ok(events)
    }

    /// The history's complete lines. A last line without its newline is a torn append (a crash
    /// or a full disk mid-write): left out here, cut off by the next writer.
    pub(super) fn written_history(&self) -> Result<Vec<Event>> {
        let path = self.local("history.jsonl")?;
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::io(&path, e)),
        };
        let whole = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        let text = std::str::from_utf8(&bytes[..whole]).map_err(|e| corrupt(&path, e))?;
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .enumerate()
            .map(|(i, l)| serde_json::from_str(l).map_err(|e| corrupt(&path, format!("line {}: {e}", i + 1))))
            .collect()
    }

    /// Cuts a torn last line off the history (see [`Registry::written_history`]).
    fn heal_history(&self) -> Result<()> {
        let path = self.local("history.jsonl")?;
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(Error::io(&path, e)),
        };
        let whole = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        if whole < bytes.len() {
            let file = OpenOptions::new().write(true).open(&path).map_err(|e| Error::io(&path, e))?;
            file.set_len(whole as u64).and_then(|()| file.sync_all()).map_err(|e| Error::io(&path, e))?;
        }
        Ok(())
    }

    /// What a hand has broken that no writer could have: a missing `state.json` beside a
    /// history, a version the history names that is gone, a folder in `versions/` that is not
    /// a version's name. Each says how to repair it; writers refuse to work on such a registry.
    pub fn damage(&self) -> Result<Vec<String>> {
        let mut found = Vec::new();
        let history = self.written_history()?;
        if !self.state_path().exists() && !history.is_empty() {
            found.push(format!(
                "{} is missing but history.jsonl holds {} events: restore state.json from a copy of the \
                 registry (a folder registry is plain files), or move the registry aside and start anew",
                self.state_path().display(),
                history.len()
            ));
        }
        self.list()?;
        let dir = self.root.join("versions");
        if let Ok(entries) = std::fs::read_dir(&dir) {
            for entry in entries.filter_map(|e| e.ok()) {
                let name = entry.file_name().to_string_lossy().into_owned();
                if name.starts_with(".tmp-") {
                    continue;
                }
                let canonical = name.strip_prefix('v').and_then(|n| n.parse::<u64>().ok()).map(|n| format!("v{n}"));
                if canonical.as_deref() != Some(name.as_str()) {
                    found.push(format!(
                        "{}: not a version folder this registry writes (v1, v2, …): move it out of versions/",
                        dir.join(&name).display()
                    ));
                }
            }
        }
        let pruned = self.state()?.pruned;
        let mut named: Vec<&str> = history
            .iter()
            .flat_map(|e| [e.from.as_deref(), e.to.as_deref(), e.version.as_deref()])
            .flatten()
            .filter(|v| !pruned.iter().any(|p| p == v))
            .collect();
        named.sort_unstable();
        named.dedup();
        for v in named {
            if !self.holds(&Self::version_file(v, "model.json"))? {
                found.push(format!(
                    "{} is named by the history but missing: restore the folder from a copy of the registry \
                     (its number is never given to another version)",
                    self.version_dir(v).display()
                ));
            }
        }
        Ok(found)
    }

    /// The version an alias points to.
    pub fn alias(&self, alias: &str) -> Result<Option<String>> {
        Ok(self.state()?.aliases.get(alias).cloned())
    }

    /// Loads a version's artifact (checksum verified).
    pub fn artifact(&self, version: &str) -> Result<Artifact> {
        Artifact::load(&self.local(&Self::version_file(version, "model.json"))?)
    }

    /// Loads a version's verdict.
    pub fn verdict(&self, version: &str) -> Result<VerdictRecord> {
        let path = self.local(&Self::version_file(version, "verdict.json"))?;
        let bytes = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
        serde_json::from_slice(&bytes).map_err(|e| corrupt(&path, e))
    }

    /// Reads a file of a version (for example `metrics.json`).
    pub fn read_file(&self, version: &str, name: &str) -> Result<Vec<u8>> {
        let path = self.local(&Self::version_file(version, name))?;
        std::fs::read(&path).map_err(|e| Error::io(&path, e))
    }

    /// Versions present, in order.
    pub fn versions(&self) -> Result<Vec<String>> {
        self.list()?;
        let dir = self.root.join("versions");
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::io(&dir, e)),
        };
        let mut numbers: Vec<u64> = entries
            .filter_map(|e| e.ok())
            .filter_map(|e| e.file_name().to_str().and_then(|n| n.strip_prefix('v')).and_then(|n| n.parse().ok()))
            .collect();
        numbers.sort_unstable();
        Ok(numbers.into_iter().map(|n| format!("v{n}")).collect())
    }

    /// Finishes what a killed writer left: appends an event that reached the state but not the
    /// history, removes half-written version folders. Call with the lock held.
    pub(super) fn recover(&self, _lock: &Lock) -> Result<State> {
        if let Some(problem) = self.damage()?.into_iter().next() {
            return Err(Error::RegistryDamaged { root: self.root.clone(), problem });
        }
        self.heal_history()?;
        let state = self.state()?;
        if let Some(last) = &state.last_event {
            let written = self.written_history()?;
            if written.last().is_none_or(|e| e.seq < last.seq) {
                self.append(last)?;
            }
        }
        let tmp_root = self.root.join("versions");
        if let Ok(entries) = std::fs::read_dir(&tmp_root) {
            for entry in entries.filter_map(|e| e.ok()) {
                if entry.file_name().to_string_lossy().starts_with(".tmp-") {
                    let _ = std::fs::remove_dir_all(entry.path());
                }
            }
        }
        Ok(state)
    }

    fn append(&self, event: &Event) -> Result<()> {
        let path = self.local("history.jsonl")?;
        let mut line = serde_json::to_vec(event).expect("events serialise");
        line.push(b'\n');
        let mut file = OpenOptions::new().create(true).append(true).open(&path).map_err(|e| Error::io(&path, e))?;
        // One write of the whole line: a kill cannot split it.
        file.write_all(&line).and_then(|_| file.sync_all()).map_err(|e| Error::io(&path, e))
    }

    /// Replaces the state with `state`, recording `event` (its seq is set here), then appends
    /// the event to the history.
    pub(super) fn commit(&self, mut state: State, mut event: Event) -> Result<Event> {
        event.seq = state.seq + 1;
        state.seq = event.seq;
        state.last_event = Some(event.clone());
        let mut bytes = serde_json::to_vec_pretty(&state).expect("state serialises");
        bytes.push(b'\n');
        pause("state");
        crate::atomic::write(&self.state_path(), &bytes)?;
        pause("history");
        // The state is the source of truth and already holds the event: the change is made.
        // A history line that cannot be appended (a full disk) is appended by the next writer.
        if let Err(e) = self.append(&event) {
            (self.notice)(&format!(
                "{} {} is committed in state.json, but its history line could not be appended ({e}); the next change appends it",
                event.action,
                event.to.as_deref().unwrap_or("")
            ));
        }
        Ok(event)
    }

    /// Registers an accepted (or rejected) candidate and points `staging` at it. A candidate
    /// whose artifact is already registered reuses its version, with the new verdict. `files`
    /// makes the version's other files (metrics, report) once its version is known.
    pub fn register(
        &self,
        artifact_bytes: &[u8],
        verdict: &VerdictRecord,
        files: impl FnOnce(&str) -> Vec<(String, Vec<u8>)>,
        actor: &Actor,
    ) -> Result<String> {
        let artifact_sha256 = verdict.artifact_sha256.as_str();
        let lock = self.lock()?;
        let state = self.recover(&lock)?;
        let mut existing = None;
        for v in self.versions()? {
            if self.verdict(&v).map(|r| r.artifact_sha256 == artifact_sha256).unwrap_or(false) {
                existing = Some(v);
            }
        }
        let verdict_bytes = serde_json::to_vec_pretty(verdict).expect("verdicts serialise");
        let version = match existing {
            Some(v) => {
                let dir = self.version_dir(&v);
                let mut all = files(&v);
                all.push(("verdict.json".into(), verdict_bytes));
                for (name, bytes) in &all {
                    crate::atomic::write(&dir.join(name), bytes)?;
                }
                v
            }
            None => {
                // Past every number a folder or the history holds: a number is never given twice.
                let named = self.written_history()?.into_iter().flat_map(|e| [e.from, e.to, e.version]).flatten();
                let next = self
                    .versions()?
                    .into_iter()
                    .chain(named)
                    .filter_map(|v| v.strip_prefix('v').and_then(|n| n.parse::<u64>().ok()))
                    .max()
                    .unwrap_or(0)
                    + 1;
                let version = format!("v{next}");
                let mut all = files(&version);
                all.push(("model.json".into(), artifact_bytes.to_vec()));
                all.push(("verdict.json".into(), verdict_bytes));
                crate::atomic::write_dir(&self.version_dir(&version), &all, || pause("version file"))?;
                version
            }
        };
        let mut next = state.clone();
        // `staging` is the last candidate that passed: a failed one is registered (its verdict
        // and report kept) but moves no alias.
        let from = next.aliases.get(STAGING).cloned();
        let (to, reason) = if let Some(mark) = state.breach_mark(&version).filter(|_| verdict.passed) {
            // The same artifact again: a version rolled back on evidence does not come back
            // through `staging` (deploy --version V --force --reason TEXT can still put it back).
            (from.clone(), format!("acceptance passed, but {version} is {}; staging unchanged", mark.describe()))
        } else if verdict.passed {
            next.aliases.insert(STAGING.into(), version.clone());
            (Some(version.clone()), "acceptance passed".to_string())
        } else {
            (from.clone(), format!("acceptance failed: {}; staging unchanged", verdict.failed.join("; ")))
        };
        self.commit(
            next,
            Event {
                seq: 0,
                action: Action::Register,
                from,
                to,
                reason,
                forced: false,
                version: Some(version.clone()),
                breached: None,
                rollout: None,
                actor: actor.clone(),
            },
        )?;
        Ok(version)
    }

    /// Promotes `staging` to `production` when its verdict passed (or `force` gives a reason)
    /// and its artifact still matches the checksum the verdict is bound to.
    pub fn promote(&self, version: Option<&str>, force: Option<&str>, actor: &Actor) -> Result<Promotion> {
        let lock = self.lock()?;
        let state = self.recover(&lock)?;
        // Production moves through the open rollout, which compares against it, or not at all.
        if let Some(rollout) = &state.rollout {
            return Err(rollout.open_error());
        }
        // A named version; else `staging`, the last candidate that passed; else the last one
        // registered (whose failed verdict then needs --force).
        let candidate = match version {
            Some(v) => self.known_version(v)?,
            None => match state.aliases.get(STAGING) {
                Some(s) => s.clone(),
                None => self.versions()?.pop().ok_or(Error::NothingStaged)?,
            },
        };
        let current = state.aliases.get(PRODUCTION).cloned();
        if current.as_deref() == Some(candidate.as_str()) {
            return Ok(Promotion { deployed: candidate, replaced: None, changed: false });
        }
        // Nothing staged because a mark took `staging` off a version: nothing to promote.
        let unstaged = state.breached.iter().rev().find(|m| m.unstaged);
        if let (None, None, false, Some(m)) = (version, force, state.aliases.contains_key(STAGING), unstaged) {
            return Err(Error::StagingBreached { version: m.version.clone(), mark: m.describe() });
        }
        let mark = state.breach_mark(&candidate);
        if let (Some(mark), None) = (mark, force) {
            return Err(Error::MarkedBreached {
                version: candidate.clone(),
                mark: mark.describe(),
                command: format!("deploy --version {candidate}"),
            });
        }
        let verdict = self.verdict(&candidate)?;
        // The artifact must be the very one the verdict judged; no flag overrides this.
        let artifact = self.artifact(&candidate)?;
        let actual = artifact.checksum();
        if actual != verdict.artifact_sha256 {
            return Err(Error::NotTheJudgedArtifact { version: candidate, actual, judged: verdict.artifact_sha256 });
        }
        if !verdict.passed && force.is_none() {
            return Err(Error::VerdictFailed { version: candidate, failed: verdict.failed });
        }
        let mut next = state.clone();
        next.aliases.insert(PRODUCTION.into(), candidate.clone());
        if let Some(c) = &current {
            next.previous_productions.push(c.clone());
        }
        next.consecutive_breaches = 0;
        let overridden: Vec<String> = [
            (!verdict.passed).then(|| "a failed verdict".to_string()),
            mark.map(|m| format!("the breach mark ({})", m.describe())),
        ]
        .into_iter()
        .flatten()
        .collect();
        let reason = match force {
            Some(r) if !overridden.is_empty() => format!("forced over {}: {r}", overridden.join(" and ")),
            Some(r) => r.to_string(),
            None => "acceptance passed".into(),
        };
        self.commit(
            next,
            Event {
                seq: 0,
                action: Action::Promote,
                from: current.clone(),
                to: Some(candidate.clone()),
                reason,
                forced: force.is_some() && !overridden.is_empty(),
                version: None,
                breached: None,
                rollout: None,
                actor: actor.clone(),
            },
        )?;
        Ok(Promotion { deployed: candidate, replaced: current, changed: true })
    }

    /// Where `rollback` without `--to` would go: the previous production, if any.
    pub fn rollback_target(&self) -> Result<Option<String>> {
        Ok(self.state()?.previous_productions.last().cloned())
    }

    /// `version` when it is one of this registry's versions (`v` and a number, as written).
    pub(super) fn known_version(&self, version: &str) -> Result<String> {
        let canonical = version.strip_prefix('v').and_then(|n| n.parse::<u64>().ok()).map(|n| format!("v{n}"));
        if canonical.as_deref() != Some(version) || !self.holds(&Self::version_file(version, "model.json"))? {
            return Err(Error::UnknownVersion { version: version.to_string(), known: self.versions()? });
        }
        Ok(version.to_string())
    }

    /// Puts the previous production (or `to`) back in production.
    /// A version named by `--to` must be one of this registry's and have passed acceptance or
    /// been in production before; `force` (a reason) overrides the verdict, recorded as forced.
    /// A target marked breached needs `force` too. Returns (from, to).
    pub fn rollback(
        &self,
        to: Option<&str>,
        reason: &str,
        force: Option<&str>,
        actor: &Actor,
    ) -> Result<(String, String)> {
        self.roll_back(to, reason, force, false, actor)
    }

    /// [`Registry::rollback`] on evidence against production (an automatic rollback, or
    /// `rollback --mark-breached`): the version rolled back from is marked breached in the same
    /// event, and `staging`, when it points there, is removed — a plain deploy cannot bring
    /// it back. Returns (from, to).
    pub fn rollback_breached(
        &self,
        to: Option<&str>,
        reason: &str,
        force: Option<&str>,
        actor: &Actor,
    ) -> Result<(String, String)> {
        self.roll_back(to, reason, force, true, actor)
    }

    fn roll_back(
        &self,
        to: Option<&str>,
        reason: &str,
        force: Option<&str>,
        mark: bool,
        actor: &Actor,
    ) -> Result<(String, String)> {
        let lock = self.lock()?;
        let state = self.recover(&lock)?;
        let current = state.aliases.get(PRODUCTION).cloned().ok_or(Error::NothingInProduction)?;
        let mut next = state.clone();
        let mut forced = false;
        let target = match to {
            Some(v) => {
                let v = self.known_version(v)?;
                let v = v.as_str();
                if v == current {
                    return Err(Error::AlreadyInProduction { version: v.to_string() });
                }
                self.artifact(v).map_err(|e| Error::RollbackTarget { version: v.to_string(), source: Box::new(e) })?;
                let was_production = self
                    .written_history()?
                    .iter()
                    .any(|e| e.action.alias() == Some(PRODUCTION) && e.to.as_deref() == Some(v));
                let verdict = self.verdict(v)?;
                if !verdict.passed && !was_production {
                    if force.is_none() {
                        return Err(Error::NeverInProduction { version: v.to_string(), failed: verdict.failed });
                    }
                    forced = true;
                }
                if let Some(pos) = next.previous_productions.iter().rposition(|p| p == v) {
                    next.previous_productions.truncate(pos);
                }
                v.to_string()
            }
            None => match next.previous_productions.pop() {
                Some(previous) => previous,
                None => {
                    let mut others: Vec<String> = Vec::new();
                    for e in self.written_history()? {
                        let to = e.to.filter(|v| *v != current && !others.contains(v));
                        if let (Some(PRODUCTION), Some(v)) = (e.action.alias(), to) {
                            others.push(v);
                        }
                    }
                    return Err(Error::NoEarlierProduction { version: current, others });
                }
            },
        };
        self.artifact(&target).map_err(|e| Error::RollbackTarget { version: target.clone(), source: Box::new(e) })?;
        let mut overridden = Vec::new();
        if forced {
            overridden.push("a failed verdict".to_string());
        }
        if let Some(m) = state.breach_mark(&target) {
            if force.is_none() {
                return Err(Error::MarkedBreached {
                    version: target.clone(),
                    mark: m.describe(),
                    command: format!("rollback --to {target}"),
                });
            }
            overridden.push(format!("the breach mark ({})", m.describe()));
            forced = true;
        }
        next.aliases.insert(PRODUCTION.into(), target.clone());
        next.consecutive_breaches = 0;
        let reason = match force {
            Some(why) if forced => format!("{reason}; forced over {}: {why}", overridden.join(" and ")),
            _ => reason.to_string(),
        };
        // A rollback is the way out of an emergency: it is never refused for an open rollout,
        // whose baseline it takes away; it closes it, and says so.
        let reason = match next.rollout.take() {
            Some(r) => format!("{reason} (closes the {} rollout of {} against {})", r.mode, r.candidate, r.baseline),
            None => reason,
        };
        let breached = mark.then(|| current.clone());
        if mark {
            // `staging` moves off it: a plain deploy must not bring it back.
            let unstaged = next.aliases.get(STAGING) == Some(&current);
            if unstaged {
                next.aliases.remove(STAGING);
            }
            next.breached.retain(|m| m.version != current);
            let mark = BreachMark { version: current.clone(), reason: reason.clone(), unstaged, actor: actor.clone() };
            next.breached.push(mark);
        }
        self.commit(
            next,
            Event {
                seq: 0,
                action: Action::Rollback,
                from: Some(current.clone()),
                to: Some(target.clone()),
                reason,
                forced,
                version: None,
                breached,
                rollout: None,
                actor: actor.clone(),
            },
        )?;
        Ok((current, target))
    }

    /// Records a monitoring run of `version` and returns the consecutive breaches so far.
    pub fn record_monitoring(&self, version: &str, outcome: Outcome, reason: &str, actor: &Actor) -> Result<u64> {
        let lock = self.lock()?;
        let state = self.recover(&lock)?;
        let mut next = state.clone();
        // An inconclusive run saw nothing about the model: it neither counts as a breach nor
        // clears the breaches counted before it.
        next.consecutive_breaches = match outcome {
            Outcome::Breached => state.consecutive_breaches + 1,
            Outcome::Healthy => 0,
            Outcome::Inconclusive => state.consecutive_breaches,
        };
        let count = next.consecutive_breaches;
        self.commit(
            next,
            Event {
                seq: 0,
                action: Action::Monitor,
                from: None,
                to: Some(version.to_string()),
                reason: reason.to_string(),
                forced: false,
                version: None,
                breached: None,
                rollout: None,
                actor: actor.clone(),
            },
        )?;
        Ok(count)
    }

    /// Removes the versions older than the `keep` newest that no alias points at and no
    /// rollback may go to (production, staging and every earlier production stay), and records
    /// them as pruned. Returns the versions removed, oldest first.
    pub fn prune(&self, keep: usize, actor: &Actor) -> Result<Vec<String>> {
        let lock = self.lock()?;
        let state = self.recover(&lock)?;
        let versions = self.versions()?;
        let newest = versions.len().saturating_sub(keep);
        let needed = |v: &String| {
            state.aliases.values().any(|a| a == v)
                || state.previous_productions.contains(v)
                || state.rollout.as_ref().is_some_and(|r| r.candidate == *v || r.baseline == *v)
        };
        let removed: Vec<String> = versions[..newest].iter().filter(|v| !needed(v)).cloned().collect();
        if removed.is_empty() {
            return Ok(removed);
        }
        let mut next = state.clone();
        next.pruned.extend(removed.iter().cloned());
        // The state names them pruned before their files go: a writer killed in between leaves
        // files no one needs, never a history naming a version that is missing unannounced.
        let event = Event {
            seq: 0,
            action: Action::Prune,
            from: None,
            to: None,
            reason: format!(
                "pruned {} (keeping the {keep} newest, the aliases and the earlier productions)",
                removed.join(", ")
            ),
            forced: false,
            version: None,
            breached: None,
            rollout: None,
            actor: actor.clone(),
        };
        self.commit(next, event)?;
        for v in &removed {
            let dir = self.version_dir(v);
            std::fs::remove_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        }
        Ok(removed)
    }

    /// Lists what is inconsistent (empty when all is well): aliases pointing at missing or
    /// unreadable versions, a history out of sequence or disagreeing with the state.
    pub fn check(&self) -> Result<Vec<String>> {
        let mut problems = self.damage()?;
        let state = self.state()?;
        for (alias, v) in &state.aliases {
            if let Err(e) = self.artifact(v) {
                problems.push(format!("alias {alias} → {v}: {e}"));
            }
            if let Err(e) = self.verdict(v) {
                problems.push(format!("alias {alias} → {v}: {e}"));
            }
        }
        if let Some(r) = &state.rollout {
            if let Err(e) = self.artifact(&r.candidate) {
                problems.push(format!("the open rollout's candidate {}: {e}", r.candidate));
            }
            if state.aliases.get(PRODUCTION) != Some(&r.baseline) {
                problems.push(format!(
                    "the open rollout's baseline {} is not production ({})",
                    r.baseline,
                    state.aliases.get(PRODUCTION).map_or("none", String::as_str)
                ));
            }
        }
        for v in &state.previous_productions {
            if !self.holds(&Self::version_file(v, "model.json"))? {
                problems.push(format!("previous production {v} is missing"));
            }
        }
        // Every version: its artifact reads (checksum and structure) and is the one its
        // verdict judged. A version no alias or event names and whose files are not all there
        // is what a writer killed on a store without rename (S3) leaves: never referenced, its
        // number never reused, not a problem.
        let history = self.written_history()?;
        let referenced = |v: &str| {
            state.aliases.values().any(|a| a == v)
                || state.previous_productions.iter().any(|p| p == v)
                || history.iter().any(|e| [&e.from, &e.to, &e.version].iter().any(|n| n.as_deref() == Some(v)))
        };
        for v in self.versions()? {
            let complete = self.holds(&Self::version_file(&v, "model.json"))?
                && self.holds(&Self::version_file(&v, "verdict.json"))?;
            if !complete && !referenced(&v) {
                continue;
            }
            match (self.artifact(&v), self.verdict(&v)) {
                (Ok(a), Ok(verdict)) if a.checksum() != verdict.artifact_sha256 => problems.push(format!(
                    "{v}: its artifact (sha256 {}) is not the one its verdict judged ({})",
                    a.checksum(),
                    verdict.artifact_sha256
                )),
                (Err(e), _) | (_, Err(e)) if !state.aliases.values().any(|a| *a == v) => {
                    problems.push(format!("{v}: {e}"))
                }
                _ => {}
            }
        }
        let history = self.history()?;
        for (i, e) in history.iter().enumerate() {
            if e.seq != i as u64 + 1 {
                problems.push(format!("history event {} has seq {}", i + 1, e.seq));
            }
        }
        if history.last().map_or(0, |e| e.seq) != state.seq {
            problems.push(format!(
                "history ends at {}, state is at {}",
                history.last().map_or(0, |e| e.seq),
                state.seq
            ));
        }
        // Replaying the alias changes of the history must give the state's aliases.
        let mut replay: BTreeMap<String, String> = BTreeMap::new();
        for e in &history {
            if let (Some(alias), Some(to)) = (e.action.alias(), &e.to) {
                replay.insert(alias.into(), to.clone());
            }
            // A mark takes `staging` off the version it marks, in the same event.
            if e.breached.is_some() && replay.get(STAGING) == e.breached.as_ref() {
                replay.remove(STAGING);
            }
        }
        if replay != state.aliases {
            problems.push(format!("history replays to {replay:?}, state has {:?}", state.aliases));
        }
        Ok(problems)
    }
}

/// Crash-test hook: `MLGATE_REGISTRY_PAUSE_MS` makes each durable step wait, so that a test can
/// kill a writer between any two of them. Unset, it costs one environment lookup.
fn pause(_step: &str) {
    if let Some(ms) = std::env::var("MLGATE_REGISTRY_PAUSE_MS").ok().and_then(|v| v.parse::<u64>().ok()) {
        std::thread::sleep(std::time::Duration::from_millis(ms));
    }
}
