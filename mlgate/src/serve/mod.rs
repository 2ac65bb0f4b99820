//! The model server: an HTTP server for the model an alias of the registry points at.
//! Predictions (JSON or CSV), each with a signed receipt ([`receipt`]), feedback joined to them
//! (by receipt on any replica holding the key, by id through this replica's log), the model's
//! identity, health, and Prometheus metrics. The alias is polled (and re-read on SIGHUP): a new artifact is fetched,
//! verified and compiled on the poller's thread, then swapped in; a request keeps the model it
//! started with; an artifact that fails to load never replaces the one being served. A poll that
//! fails is counted by kind ([`Trouble`]) and logged when the trouble starts and when it ends;
//! the rolling drift is measured on a thread of its own, so that a registry that hangs freezes
//! nothing else. SIGTERM (or SIGINT) stops accepting, lets requests in flight finish, and exits
//! 0 — without waiting for a poller stuck in the registry.

mod answer;
mod auth;
mod drift;
pub mod event_file;
pub mod event_log;
mod http;
mod intake;
mod kserve;
mod limits;
mod live;
mod metrics;
mod mlflow;
mod openapi;
mod receipt;
mod records;
mod rollout;
mod score;
mod tls;
mod workers;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use model::eval::drift::DriftThresholds;
use model::lifecycle::gate::AcceptanceRecord;
use model::pipeline::scoring::Compiled;
use model::Metric;

use crate::store::{Location, RemoteError, Store, Timeouts, Unavailable};
pub use auth::{TokenSet, Tokens};
pub use event_log::EventLogOptions;
use metrics::{Labels, Metrics};
pub use receipt::ReceiptKeys;
use rollout::{Candidate, Mode, Role, Serving};
pub use tls::TlsFiles;

/// How the server runs: resolved from the command line by `cli::serve`.
pub struct Options {
    /// Where the registry lives.
    pub location: Location,
    /// The alias whose model is served.
    pub alias: String,
    /// A version served whatever the aliases say (`serve --version`): no alias nor rollout is
    /// followed.
    pub version: Option<String>,
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Between two readings of the alias.
    pub poll: Duration,
    /// Largest request body, in bytes.
    pub max_body_bytes: usize,
    /// Most records in one request.
    pub max_records: usize,
    /// Predictions kept waiting for their feedback.
    pub prediction_log: usize,
    /// Joined predictions in each version's rolling window.
    pub feedback_window: usize,
    /// Recent records the rolling drift is measured on.
    pub drift_window: usize,
    /// The rolling drift's thresholds.
    pub drift: DriftThresholds,
    /// How long a client may take for its headers, and then its body.
    pub read_timeout: Duration,
    /// How long a draining server waits for requests in flight.
    pub drain: Duration,
    /// How long one request to a remote registry may take.
    pub timeouts: Timeouts,
    /// The bearer tokens of each kind of caller.
    pub tokens: Tokens,
    /// Serve predictions without a token beyond loopback.
    pub allow_anonymous_predictions: bool,
    /// Where `/metrics`, `/healthz` and `/readyz` are served instead of `listen`, if anywhere.
    pub admin_listen: Option<SocketAddr>,
    /// The prediction log's bound in bytes (beside `prediction_log`, its bound in entries).
    pub prediction_log_bytes: usize,
    /// Requests being read and scored at once (503 beyond).
    pub max_scoring: usize,
    /// Connections open at once (beyond, a new one is closed at once).
    pub max_connections: usize,
    /// Serve HTTPS with this certificate and key (read again on SIGHUP).
    pub tls: Option<TlsFiles>,
    /// The `model` label of every series and the model receipts are for: `None`, the name of the
    /// first artifact served.
    pub model: Option<String>,
    /// The keys receipts are signed (the first) and verified (all) with.
    pub receipt_keys: ReceiptKeys,
    /// How long a receipt is taken for feedback.
    pub receipt_ttl: Duration,
    /// Receipts remembered as joined (each is counted once), in entries and in bytes.
    pub receipt_seen: usize,
    /// The bound in bytes of the receipts remembered.
    pub receipt_seen_bytes: usize,
    /// Where scored records and joined feedback are written, and how ([`event_log`]), if anywhere.
    pub event_log: Option<EventLogOptions>,
}

/// The model being served, compiled, with what `/v1/model` and the metrics say of it.
pub struct Loaded {
    compiled: Compiled,
    version: String,
    sha256: String,
    accepted: Option<AcceptanceRecord>,
    info: Labels,
    /// For each of the compiled columns, how a JSON value becomes its field.
    kinds: Vec<records::Kind>,
    /// Column → its index in the compiled columns.
    index: std::collections::HashMap<String, usize>,
    /// Columns of the schema a record may carry that are not read (the label, ignored columns).
    unread: Vec<String>,
    /// What its records are in the event log.
    layout: Arc<event_log::Layout>,
    /// Its metrics' series in each role (baseline, canary, shadow), looked up at first use.
    series: [std::sync::OnceLock<(u64, metrics::Series)>; 3],
}

impl Loaded {
    fn new(compiled: Compiled, version: String, accepted: Option<AcceptanceRecord>) -> Loaded {
        let artifact = compiled.artifact();
        let sha256 = artifact.checksum();
        use model::data::schema::ColumnKind;
        let kinds = compiled
            .columns()
            .iter()
            .map(|name| match artifact.schema.column(name).map(|c| &c.kind) {
                Some(ColumnKind::Boolean { .. }) => records::Kind::Boolean,
                Some(ColumnKind::Categorical { levels }) => records::Kind::Categorical(levels.clone()),
                Some(ColumnKind::Numeric { .. } | ColumnKind::Integer { .. }) => records::Kind::Number,
                _ => records::Kind::Other,
            })
            .collect();
        let index = compiled.columns().iter().enumerate().map(|(i, c)| (c.clone(), i)).collect();
        let unread = artifact
            .schema
            .columns
            .iter()
            .filter(|c| !compiled.columns().contains(&c.name))
            .map(|c| c.name.clone())
            .collect();
        let info = vec![("version", version.clone()), ("sha256", sha256.clone())];
        let layout = Arc::new(event_log::Layout::of(&compiled));
        Loaded { compiled, version, sha256, accepted, info, kinds, index, unread, layout, series: Default::default() }
    }

    /// Its series in `role` among `metrics`: cached for the first metrics it is counted in (a
    /// server's, one a process), looked up again for any other (a test's second server).
    fn series(&self, metrics: &Metrics, role: Role) -> std::borrow::Cow<'_, metrics::Series> {
        let at = match role {
            Role::Baseline => 0,
            Role::Canary => 1,
            Role::Shadow => 2,
        };
        match self.series[at].get_or_init(|| (metrics.id, metrics.series(&self.version, role))) {
            (id, series) if *id == metrics.id => std::borrow::Cow::Borrowed(series),
            _ => std::borrow::Cow::Owned(metrics.series(&self.version, role)),
        }
    }
}

/// What every request and the poller share.
pub struct Shared {
    model: RwLock<Option<Arc<Serving>>>,
    live: Mutex<live::Live>,
    metrics: Metrics,
    max_body: usize,
    max_records: usize,
    /// The receipts' keys, their time to live in seconds, and those joined here.
    receipts: ReceiptKeys,
    receipt_ttl: u64,
    seen: Mutex<receipt::Seen>,
    draining: AtomicBool,
    drift: DriftThresholds,
    read_timeout: Duration,
    tokens: Tokens,
    /// A permit for each request being scored (predictions and feedback), taken once its body
    /// is read.
    scoring: Arc<tokio::sync::Semaphore>,
    /// The bytes the bodies in flight may hold, in units of [`intake::BUDGET_UNIT`]:
    /// `--max-scoring` × `--max-body-bytes`.
    body_budget: Arc<tokio::sync::Semaphore>,
    /// A permit for each open connection.
    connections: Arc<tokio::sync::Semaphore>,
    tls: Option<tls::Tls>,
    /// The event log's buffer, when `--event-log` is given.
    events: Option<Arc<event_log::EventLog>>,
}

impl Shared {
    fn new(args: &Options) -> Shared {
        Shared {
            model: RwLock::new(None),
            live: Mutex::new(live::Live::new(
                args.prediction_log.max(1),
                args.prediction_log_bytes,
                args.feedback_window.max(1),
                args.drift_window,
            )),
            metrics: Metrics::new(args.model.as_deref()),
            max_body: args.max_body_bytes,
            max_records: args.max_records.max(1),
            receipts: args.receipt_keys.clone(),
            receipt_ttl: args.receipt_ttl.as_secs().max(1),
            seen: Mutex::new(receipt::Seen::new(args.receipt_seen, args.receipt_seen_bytes)),
            draining: AtomicBool::new(false),
            drift: args.drift.clone(),
            read_timeout: args.read_timeout,
            tokens: args.tokens.clone(),
            scoring: Arc::new(tokio::sync::Semaphore::new(args.max_scoring.max(1))),
            body_budget: Arc::new(tokio::sync::Semaphore::new(
                (args.max_scoring.max(1).saturating_mul(args.max_body_bytes).div_ceil(intake::BUDGET_UNIT))
                    .clamp(1, tokio::sync::Semaphore::MAX_PERMITS),
            )),
            connections: Arc::new(tokio::sync::Semaphore::new(args.max_connections.max(1))),
            tls: None,
            events: args.event_log.clone().map(|o| Arc::new(event_log::EventLog::new(o))),
        }
    }

    fn current(&self) -> Option<Arc<Serving>> {
        self.model.read().expect("the model lock is never poisoned: no code panics holding it").clone()
    }

    /// The model's name: the `model` label and what receipts are for (known once a model is
    /// loaded, at the latest).
    fn model_name(&self) -> &str {
        self.metrics.model().unwrap_or_default()
    }
}

/// Now, in unix seconds.
fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_secs()
}

/// Writes a line of the server's log; any URL's credentials are removed, whatever printed it.
fn log(line: &str) {
    eprintln!("{} {}", crate::clock::now_rfc3339(), crate::store::redact(line));
}

/// Why a poll did not follow the alias: the label of `mlgate_registry_poll_errors_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trouble {
    /// A git command or S3 call to the registry ran past its limit.
    Timeout,
    /// The registry could not be reached (no route, connection refused, a server error).
    Unreachable,
    /// The registry refused the credentials.
    Refused,
    /// The registry answered, but what it holds cannot be read (its state, a version's files).
    Corrupt,
    /// The version the alias names failed to load (checksum, verdict, compilation): the
    /// previous model is still served.
    Load,
}

impl Trouble {
    /// Every kind, in the order of the metric's series.
    pub const ALL: [Trouble; 5] =
        [Trouble::Timeout, Trouble::Unreachable, Trouble::Refused, Trouble::Corrupt, Trouble::Load];

    /// The label value.
    pub fn name(self) -> &'static str {
        match self {
            Trouble::Timeout => "timeout",
            Trouble::Unreachable => "unreachable",
            Trouble::Refused => "refused",
            Trouble::Corrupt => "corrupt",
            Trouble::Load => "load",
        }
    }

    /// The kind of a failed poll: the remote's failure when there is one, else a load that
    /// failed, else what the registry holds.
    fn of(error: &anyhow::Error) -> Trouble {
        match RemoteError::find(error).map(|r| r.kind) {
            Some(Unavailable::Timeout) => Trouble::Timeout,
            Some(Unavailable::Unreachable) => Trouble::Unreachable,
            Some(Unavailable::Refused) => Trouble::Refused,
            None if error.chain().any(|c| c.is::<LoadFailed>()) => Trouble::Load,
            None => Trouble::Corrupt,
        }
    }
}

/// The version the alias names failed to load; the message says why and what is still served.
#[derive(Debug)]
struct LoadFailed(String);

impl std::fmt::Display for LoadFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for LoadFailed {}

/// What the log says while `alias` names no version: what sets it, or, for a name that is no
/// alias mlgate sets (`v1`), which ones are.
fn empty_alias(alias: &str, location: &Location) -> String {
    use model::lifecycle::registry::{PRODUCTION, STAGING};
    let setter = match alias {
        PRODUCTION => "`acceptance` registers candidates and `deploy` puts one in production",
        STAGING => "`acceptance` sets it to a candidate that passes",
        _ if alias.strip_prefix('v').is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())) => {
            return format!(
                "`{alias}` is a version, not an alias: `serve --version {alias}` serves {alias} whatever the \
                 aliases say; --alias takes `{PRODUCTION}` or `{STAGING}`"
            );
        }
        _ => "mlgate sets only the aliases `production` and `staging`",
    };
    format!("no version is `{alias}` in {location} yet: {setter}; the server is ready once it is set")
}

/// The poller's hold on the registry: the store, opened at the first poll that reaches it and
/// kept for the life of the process (one client, one copy, read again only when it moved), and
/// the versions that last failed to load.
struct Follower {
    location: Location,
    alias: String,
    /// The version pinned (`serve --version`), if any: then no alias nor rollout is followed.
    pinned: Option<String>,
    timeouts: Timeouts,
    store: Option<Store>,
    /// The version that last failed to load, and why: counted and logged once, not at every poll.
    failed: Option<(String, String)>,
    /// The rollout's candidate that last failed to load, and why.
    candidate_failed: Option<(String, String)>,
    /// The store's counters as last copied into the metrics.
    counted: (u64, u64, u64),
}

impl Follower {
    fn new(location: Location, alias: String, timeouts: Timeouts) -> Follower {
        Follower {
            location,
            alias,
            pinned: None,
            timeouts,
            store: None,
            failed: None,
            candidate_failed: None,
            counted: (0, 0, 0),
        }
    }

    /// Adds what the store asked of the registry since the last call to the metrics.
    fn count(&mut self, metrics: &Metrics) {
        let Some(store) = &self.store else { return };
        let (requests, states, files) = store.counters().snapshot();
        let (r0, s0, f0) = self.counted;
        metrics.registry_requests.inc_by(requests - r0);
        metrics.registry_reads.inc_by(states - s0);
        metrics.registry_file_reads.inc_by(files - f0);
        self.counted = (requests, states, files);
    }
}

/// What a poll that read the alias found.
#[derive(Debug, PartialEq, Eq)]
enum Followed {
    /// The alias names the version served (now, or from this poll on).
    Serving,
    /// The alias names no version yet: why, for the log.
    Nothing(String),
}

/// Reads the alias (the registry's state again only when it moved) and, when it names another
/// artifact than the one served, loads that version's files alone, verifies and compiles them,
/// then swaps them in. While a rollout is open and the alias followed is `production`, its
/// candidate is loaded the same way and swapped in with the baseline, mode and weight as one;
/// when the rollout closes, the candidate goes (on a promotion it becomes the baseline, already
/// loaded). An artifact that failed to load is not tried again until the alias (or the rollout)
/// names another version; until then each poll fails with [`Trouble::Load`] — a candidate that
/// failed leaves the baseline served alone.
fn poll(shared: &Shared, follower: &mut Follower) -> Result<Followed> {
    let result = follow(shared, follower);
    follower.count(&shared.metrics);
    result
}

/// What the registry asks to be served.
#[derive(Debug, PartialEq)]
struct Wanted {
    /// The version the alias names (or the one pinned).
    version: String,
    /// An open rollout's candidate, its mode and weight, when the alias followed is production.
    candidate: Option<(String, Mode, u32)>,
}

/// What `state` asks a server following `alias` to serve (`None`: the alias names nothing).
fn wanted(state: &model::lifecycle::registry::State, alias: &str) -> Option<Wanted> {
    let version = state.aliases.get(alias)?.clone();
    let candidate = if alias == model::lifecycle::registry::PRODUCTION {
        rollout_of(state).filter(|(candidate, _, _)| *candidate != version)
    } else {
        None
    };
    Some(Wanted { version, candidate })
}

/// The open rollout's candidate, mode and weight.
fn rollout_of(state: &model::lifecycle::registry::State) -> Option<(String, Mode, u32)> {
    use model::lifecycle::rollout::RolloutMode;
    let rollout = state.rollout.as_ref()?;
    let mode = match rollout.mode {
        RolloutMode::Canary => Mode::Canary,
        RolloutMode::Shadow => Mode::Shadow,
    };
    Some((rollout.candidate.clone(), mode, rollout.weight))
}

fn follow(shared: &Shared, follower: &mut Follower) -> Result<Followed> {
    let alias = follower.alias.clone();
    let store = match &mut follower.store {
        Some(store) => {
            store.refresh()?;
            store
        }
        None => follower.store.insert(Store::open(
            follower.location.clone(),
            |notice| log(&format!("note: {notice}")),
            Duration::from_secs(30),
            follower.timeouts,
        )?),
    };
    let wanted = match &follower.pinned {
        // A pinned version is looked for only until it is served.
        Some(pin) if shared.current().is_none_or(|c| c.version != *pin) && !store.versions()?.contains(pin) => {
            return Ok(Followed::Nothing(format!(
                "{pin} is not a version of {} (yet); the server is ready once it is registered",
                follower.location
            )));
        }
        Some(version) => Wanted { version: version.clone(), candidate: None },
        None => match wanted(&store.state()?, &alias) {
            Some(wanted) => wanted,
            None => return Ok(Followed::Nothing(empty_alias(&alias, &follower.location))),
        },
    };
    let current = shared.current();
    // A version already loaded (the baseline, or the candidate a promotion makes the baseline)
    // is taken as it is.
    let loaded = |version: &str| -> Option<Arc<Loaded>> {
        let current = current.as_ref()?;
        let candidate = current.candidate.as_ref().map(|c| &c.loaded);
        [Some(&current.baseline), candidate].into_iter().flatten().find(|l| l.version == version).cloned()
    };
    let baseline = match loaded(&wanted.version) {
        Some(baseline) => {
            follower.failed = None;
            baseline
        }
        None => {
            if let Some((_, message)) = follower.failed.as_ref().filter(|(v, _)| *v == wanted.version) {
                return Err(LoadFailed(message.clone()).into());
            }
            match load(store, &wanted.version) {
                Ok(baseline) => {
                    follower.failed = None;
                    Arc::new(baseline)
                }
                Err(e) => {
                    return Err(load_failed(shared, &mut follower.failed, &wanted.version, e, current.as_deref()))
                }
            }
        }
    };
    let mut trouble = None;
    let candidate = match &wanted.candidate {
        None => {
            follower.candidate_failed = None;
            None
        }
        Some((version, mode, weight)) => {
            let got = match loaded(version) {
                Some(candidate) => Ok(candidate),
                None => match follower.candidate_failed.as_ref().filter(|(v, _)| v == version) {
                    Some((_, message)) => Err(LoadFailed(message.clone()).into()),
                    None => load(store, version).map(Arc::new).map_err(|e| {
                        load_failed(
                            shared,
                            &mut follower.candidate_failed,
                            version,
                            e,
                            Some(&Serving { baseline: baseline.clone(), candidate: None }),
                        )
                    }),
                },
            };
            match got {
                Ok(loaded) => Some(Candidate::new(loaded, &baseline, *mode, *weight)),
                Err(e) => {
                    trouble = Some(e);
                    None
                }
            }
        }
    };
    let unchanged = current.as_ref().is_some_and(|c| {
        c.baseline.version == baseline.version
            && match (&c.candidate, &candidate) {
                (None, None) => true,
                (Some(a), Some(b)) => a.loaded.version == b.loaded.version && a.mode == b.mode && a.weight == b.weight,
                _ => false,
            }
    });
    if !unchanged {
        swap(shared, Serving { baseline, candidate }, current.as_deref());
    }
    match trouble {
        Some(e) => Err(e),
        None => Ok(Followed::Serving),
    }
}

/// Loads `version`'s artifact, checks it against its verdict's checksum, and compiles it.
fn load(store: &Store, version: &str) -> Result<Loaded> {
    let artifact = store.artifact(version).with_context(|| format!("cannot load {version}"))?;
    let verdict = store.verdict(version).with_context(|| format!("cannot read {version}'s verdict"))?;
    if verdict.artifact_sha256 != artifact.checksum() {
        bail!(
            "{version}'s artifact has sha256 {} but its verdict is about {}",
            artifact.checksum(),
            verdict.artifact_sha256
        );
    }
    let accepted = store
        .read_file(version, "metrics.json")
        .ok()
        .and_then(|bytes| serde_json::from_slice::<AcceptanceRecord>(&bytes).ok());
    let compiled = Compiled::new(artifact).with_context(|| format!("cannot compile {version}"))?;
    Ok(Loaded::new(compiled, version.to_string(), accepted))
}

/// The error of a poll whose `version` failed to load: a registry that did not answer is tried
/// again at the next poll; anything else is counted, remembered in `failed` (not tried again until
/// another version is named) and says what is still served.
fn load_failed(
    shared: &Shared,
    failed: &mut Option<(String, String)>,
    version: &str,
    e: anyhow::Error,
    served: Option<&Serving>,
) -> anyhow::Error {
    if RemoteError::find(&e).is_some() {
        return e;
    }
    shared.metrics.load_failures.inc();
    let kept = match served {
        Some(c) => format!("; still serving {}", c.baseline.version),
        None => "; nothing is served".into(),
    };
    let message = format!("{e:#}{kept}");
    *failed = Some((version.to_string(), message.clone()));
    LoadFailed(message).into()
}

/// The poller's log of its troubles: a line when one starts (or changes kind) and when it ends,
/// however many polls it lasts — compared by kind, since a message may hold a changing detail.
#[derive(Default)]
struct Troubles {
    /// The trouble of the last poll and when it started.
    current: Option<(Trouble, Instant)>,
    /// Why the alias names nothing, as last logged.
    nothing: Option<String>,
}

impl Troubles {
    /// Counts the outcome of one poll; the line to log, when there is news.
    fn record(&mut self, metrics: &metrics::Metrics, outcome: Result<Followed>) -> Option<String> {
        match outcome {
            Ok(followed) => {
                let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
                metrics.registry_last_success.set(now.as_secs_f64());
                let ended = self.current.take().map(|(trouble, since)| {
                    let lasted = humantime::format_duration(Duration::from_secs(since.elapsed().as_secs()));
                    format!("the registry is followed again (after {lasted} of {} errors)", trouble.name())
                });
                let nothing = match followed {
                    Followed::Serving => {
                        self.nothing = None;
                        None
                    }
                    Followed::Nothing(why) if self.nothing.as_ref() != Some(&why) => {
                        self.nothing = Some(why.clone());
                        Some(format!("error: {why}"))
                    }
                    Followed::Nothing(_) => None,
                };
                match (ended, nothing) {
                    (Some(a), Some(b)) => Some(format!("{a}; {b}")),
                    (a, b) => a.or(b),
                }
            }
            Err(e) => {
                let trouble = Trouble::of(&e);
                metrics.registry_poll_errors.get_or_create(&vec![("kind", trouble.name().to_string())]).inc();
                if self.current.is_some_and(|(t, _)| t == trouble) {
                    return None;
                }
                self.current = Some((trouble, Instant::now()));
                Some(format!("error: {e:#} [{}]", trouble.name()))
            }
        }
    }
}

/// Serves `serving` from now on (a request keeps what it started with), and says so in the
/// metrics and the log.
fn swap(shared: &Shared, serving: Serving, old: Option<&Serving>) {
    let m = &shared.metrics;
    let loaded = &serving.baseline;
    // Without --model nor a configuration, the first artifact names the series.
    m.name_model(&loaded.compiled.artifact().name);
    let moved = old.is_none_or(|o| o.baseline.version != loaded.version);
    if let Some(old) = old.filter(|_| moved) {
        m.model_info.remove(&old.baseline.info);
    }
    m.model_info.get_or_create(&loaded.info).set(1);
    m.feedback_series(&loaded.version, Role::Baseline);
    m.acceptance.clear();
    if let Some(accepted) = &loaded.accepted {
        for metric in [Metric::Accuracy, Metric::Precision, Metric::Recall, Metric::F1, Metric::RocAuc] {
            let labels = vec![("version", loaded.version.clone()), ("metric", metric.name().to_string())];
            m.acceptance.get_or_create(&labels).set(accepted.candidate.get(metric));
        }
    }
    let mut lines = Vec::new();
    if moved {
        lines.push(match old {
            Some(old) => {
                format!("swapped {} for {} (sha256 {})", old.baseline.version, loaded.version, &loaded.sha256[..12])
            }
            None => format!("serving {} (sha256 {})", loaded.version, &loaded.sha256[..12]),
        });
    }
    match &serving.candidate {
        Some(c) => {
            let role = if c.mode == Mode::Shadow { Role::Shadow } else { Role::Canary };
            m.feedback_series(&c.loaded.version, role);
            if c.mode == Mode::Shadow {
                m.shadow_pair_series(&loaded.version, &c.loaded.version);
            }
            m.rollout(Some((&loaded.version, &c.loaded.version, c.mode.name(), c.weight)));
            let share = match c.mode {
                Mode::Canary => format!(" answering {} % of the records", c.weight),
                Mode::Shadow => String::new(),
            };
            lines.push(format!(
                "rollout: {} {} (sha256 {}) beside {}{share}",
                c.mode.name(),
                c.loaded.version,
                &c.loaded.sha256[..12],
                loaded.version
            ));
        }
        None => {
            m.rollout(None);
            if let Some(c) = old.and_then(|o| o.candidate.as_ref()) {
                lines.push(format!("rollout of {} closed: {} alone answers", c.loaded.version, loaded.version));
            }
        }
    }
    *shared.model.write().expect("the model lock is never poisoned") = Some(Arc::new(serving));
    if moved {
        m.swaps.inc();
    }
    for line in lines {
        log(&line);
    }
}

/// Measures the rolling drift of the recent records against the served model's reference.
fn measure_drift(shared: &Shared) -> std::result::Result<(), String> {
    let Some(loaded) = shared.current() else { return Ok(()) };
    let data = shared.live.lock().expect("the live lock is never poisoned").recent(&loaded);
    shared.metrics.drift_rows.set(data.as_ref().map_or(0, |d| d.len() as i64));
    let Some(data) = data else { return Ok(()) };
    let artifact = loaded.compiled.artifact();
    let drift = artifact.reference.compare(&data, &shared.drift);
    shared.metrics.drift.clear();
    let mut major = 0;
    for d in &drift {
        let labels = vec![("feature", d.column.clone()), ("statistic", d.statistic.to_string())];
        shared.metrics.drift.get_or_create(&labels).set(d.value);
        major += usize::from(d.level == model::eval::drift::DriftLevel::Major);
    }
    shared.metrics.drifted_share.set(major as f64 / drift.len().max(1) as f64);
    Ok(())
}

/// How long an exiting server waits for its poller and drift threads once the requests in flight
/// are done: a poll that is about to finish may; one stuck in the registry is left behind.
const THREADS_GRACE: Duration = Duration::from_millis(500);

/// Says on the channel that a thread ended, even by a panic.
struct Ended(mpsc::Sender<&'static str>, &'static str);

impl Drop for Ended {
    fn drop(&mut self) {
        let _ = self.0.send(self.1);
    }
}

/// Serves until SIGTERM or SIGINT, then drains and returns.
pub fn run(args: Options) -> Result<()> {
    let location = args.location.clone();
    auth::check_exposure(args.listen, &args.tokens, args.allow_anonymous_predictions)?;
    limits::raise_open_files_limit();
    if args.receipt_keys.is_drawn() {
        log("warning: no receipt key (--receipt-key-file FILE or MLGATE_RECEIPT_KEY): receipts are signed with a key \
             drawn for this process, so their feedback joins only on this replica, and only until it restarts");
    }
    let mut shared = Shared::new(&args);
    shared.tls = args.tls.clone().map(tls::Tls::load).transpose()?;
    let scheme = if shared.tls.is_some() { "https" } else { "http" };
    let event_store = match &args.event_log {
        Some(options) => Some(crate::store::events::EventStore::open(&options.url, args.timeouts.s3)?),
        None => None,
    };
    let shared = Arc::new(shared);
    let events_written = match (&shared.events, event_store) {
        (Some(events), Some(store)) => Some((events.clone(), events.start(shared.clone(), store))),
        _ => None,
    };
    let bind = |at: SocketAddr| -> Result<(std::net::TcpListener, SocketAddr)> {
        let listener = std::net::TcpListener::bind(at).with_context(|| format!("cannot listen on {at}"))?;
        listener.set_nonblocking(true).context("cannot make the listener non-blocking")?;
        let address = listener.local_addr().context("cannot read the listening address")?;
        Ok((listener, address))
    };
    let (listener, address) = bind(args.listen)?;
    let admin = args.admin_listen.map(bind).transpose()?;
    let interval = args.poll;
    let (ended, threads) = mpsc::channel::<&'static str>();

    // The poller: its own thread, since reading a registry is blocking work (git, files, S3).
    let (wake, woken) = mpsc::channel::<()>();
    {
        let shared = shared.clone();
        let mut follower = Follower::new(location.clone(), args.alias.clone(), args.timeouts);
        follower.pinned = args.version.clone();
        let ended = Ended(ended.clone(), "poller");
        std::thread::spawn(move || {
            let _ended = ended;
            let mut troubles = Troubles::default();
            loop {
                let outcome = poll(&shared, &mut follower);
                if shared.draining.load(Ordering::SeqCst) {
                    // A command cut short by the signal that stops the server is no news.
                    break;
                }
                if let Some(line) = troubles.record(&shared.metrics, outcome) {
                    log(&line);
                }
                match woken.recv_timeout(interval) {
                    Ok(()) | Err(mpsc::RecvTimeoutError::Timeout) => {}
                    Err(mpsc::RecvTimeoutError::Disconnected) => break,
                }
                if shared.draining.load(Ordering::SeqCst) {
                    break;
                }
            }
        });
    }
    // The rolling drift: its own thread, so that a poll stuck in the registry does not freeze it.
    let (stop_drift, drift_stopped) = mpsc::channel::<()>();
    {
        let shared = shared.clone();
        let ended = Ended(ended, "drift");
        std::thread::spawn(move || {
            let _ended = ended;
            // Each problem is logged when it starts, not at every measurement.
            let mut last_warning = String::new();
            loop {
                match measure_drift(&shared) {
                    Ok(()) => last_warning.clear(),
                    Err(w) if w != last_warning => {
                        log(&format!("warning: {w}"));
                        last_warning = w;
                    }
                    Err(_) => {}
                }
                match drift_stopped.recv_timeout(interval) {
                    Err(mpsc::RecvTimeoutError::Timeout) => {}
                    Ok(()) | Err(mpsc::RecvTimeoutError::Disconnected) => break,
                }
            }
        });
    }

    // The connections' threads, one a core ([`workers`]); this one accepts, and watches the
    // signals.
    let threads_count = std::thread::available_parallelism().map_or(2, |t| t.get());
    let workers = workers::Workers::start(threads_count)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the server's runtime")?;
    match &args.version {
        Some(version) => println!("serving {version} (pinned) of {location} on {scheme}://{address}"),
        None => println!("serving `{}` of {location} on {scheme}://{address}", args.alias),
    }
    if let Some((_, admin)) = &admin {
        println!("metrics and probes on {scheme}://{admin}");
    }
    let drain = args.drain;
    let listeners = http::Listeners { main: listener, admin: admin.map(|(l, _)| l) };
    let result = runtime.block_on(http::serve(listeners, shared.clone(), wake.clone(), drain, &workers));
    let stuck = workers.stop();
    if stuck > 0 {
        log(&format!("warning: {stuck} connection thread(s) still busy; exiting all the same"));
    }
    shared.draining.store(true, Ordering::SeqCst);
    // Every request has been answered: what they logged is written before the process exits
    // (within a drain and a write to the store).
    if let Some((events, finished)) = &events_written {
        events.close(finished, drain + args.timeouts.s3);
    }
    drop(wake);
    drop(stop_drift);
    // The process does not wait for a poller stuck in the registry: past a short grace, its git
    // command is killed and the process exits all the same (an S3 call dies with the process).
    let deadline = Instant::now() + THREADS_GRACE;
    let mut running = vec!["poller", "drift"];
    while !running.is_empty() {
        match threads.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(name) => running.retain(|r| *r != name),
            Err(_) => {
                log(&format!("warning: not waiting for the {} (the registry has not answered)", running.join(" and ")));
                crate::store::stop_commands();
                break;
            }
        }
    }
    runtime.shutdown_timeout(Duration::from_millis(100));
    result?;
    log("drained; exiting");
    Ok(())
}

/// A model of `pipeline_toml` (the repository's `pipeline.toml` as a test rewrote it), built on
/// 600 generated customers and loaded as `v1`.
#[cfg(test)]
pub(crate) fn test_model(pipeline_toml: &str) -> Loaded {
    use model::pipeline::build::{build, BuildContext};
    use model::pipeline::scoring::Compiled;
    let config = model::PipelineConfig::parse(pipeline_toml, std::path::Path::new("pipeline.toml")).unwrap();
    let csv = model::data::generate::customers_csv(600, 5);
    let data = model::read_csv(csv.as_bytes(), "c.csv", &config.schema, model::LabelPolicy::Required).unwrap();
    let context = BuildContext { config_file: "pipeline.toml".into(), git_commit: None, created_at: "t".into() };
    let artifact = build(&config, &data, &context).unwrap();
    Loaded::new(Compiled::new(artifact).unwrap(), "v1".into(), None)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use model::lifecycle::registry::{State, VerdictRecord};
    use model::pipeline::build::{build, BuildContext};
    use model::PipelineConfig;
    use object_store::memory::InMemory;
    use object_store::path::Path as Key;
    use object_store::{ObjectStore, PutPayload};

    use super::*;
    use crate::store::s3::S3;

    /// An artifact of the repository's configuration, trained on a little generated data.
    pub(super) fn artifact_bytes() -> Vec<u8> {
        artifact_bytes_of(5)
    }

    /// The same, trained on the data of another seed: another model.
    fn artifact_bytes_of(seed: u64) -> Vec<u8> {
        let text = include_str!("../../../pipeline.toml");
        let config = PipelineConfig::parse(text, Path::new("pipeline.toml")).unwrap();
        let csv = model::data::generate::customers_csv(600, seed);
        let data = model::read_csv(csv.as_bytes(), "c.csv", &config.schema, model::LabelPolicy::Required).unwrap();
        let context = BuildContext { config_file: "pipeline.toml".into(), git_commit: None, created_at: "t".into() };
        build(&config, &data, &context).unwrap().to_bytes()
    }

    fn put(store: &InMemory, key: &str, bytes: Vec<u8>) {
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        runtime.block_on(store.put(&Key::from(key), PutPayload::from(bytes))).unwrap();
    }

    fn state(seq: u64, production: &str) -> Vec<u8> {
        let mut state = State { seq, ..State::default() };
        state.aliases.insert("production".into(), production.into());
        serde_json::to_vec(&state).unwrap()
    }

    fn options(location: Location) -> Options {
        Options {
            location,
            alias: "production".into(),
            version: None,
            listen: "127.0.0.1:0".parse().unwrap(),
            poll: Duration::from_secs(1),
            max_body_bytes: 1 << 20,
            max_records: 100,
            prediction_log: 100,
            feedback_window: 100,
            drift_window: 100,
            drift: DriftThresholds::default(),
            read_timeout: Duration::from_secs(1),
            drain: Duration::from_secs(1),
            timeouts: Timeouts::default(),
            tokens: Tokens::default(),
            allow_anonymous_predictions: false,
            admin_listen: None,
            prediction_log_bytes: 1 << 20,
            max_scoring: 2,
            max_connections: 16,
            tls: None,
            model: None,
            receipt_keys: ReceiptKeys::drawn().unwrap(),
            receipt_ttl: Duration::from_secs(60),
            receipt_seen: 100,
            receipt_seen_bytes: 1 << 20,
            event_log: None,
        }
    }

    /// `loaded` served alone.
    fn serving(loaded: Loaded) -> Serving {
        Serving { baseline: Arc::new(loaded), candidate: None }
    }

    /// Version `version` of the artifact trained on `seed`'s data, compiled.
    fn loaded(seed: u64, version: &str) -> Arc<Loaded> {
        let artifact = model::Artifact::from_bytes(&artifact_bytes_of(seed), Path::new("m")).unwrap();
        Arc::new(Loaded::new(Compiled::new(artifact).unwrap(), version.into(), None))
    }

    /// `n` records of generated customers, as `{"records": […]}` of strings.
    fn records(n: usize) -> serde_json::Value {
        let csv = model::data::generate::customers_csv(n, 11);
        let mut lines = csv.lines();
        let header: Vec<&str> = lines.next().unwrap().split(',').collect();
        let records: Vec<serde_json::Value> = lines
            .map(|row| {
                let record: serde_json::Map<String, serde_json::Value> =
                    header.iter().zip(row.split(',')).map(|(k, v)| (k.to_string(), v.into())).collect();
                serde_json::Value::Object(record)
            })
            .collect();
        serde_json::json!({ "records": records })
    }

    /// The status and body of a request to `shared`'s routes, without a socket.
    fn call(
        shared: &Arc<Shared>,
        path: &str,
        body: &serde_json::Value,
        token: Option<&str>,
    ) -> (u16, serde_json::Value) {
        use http_body_util::{BodyExt, Full};
        use hyper::body::Bytes;
        let mut request = hyper::Request::builder().method("POST").uri(path).header("content-type", "application/json");
        if let Some(token) = token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        let request = request.body(Full::new(Bytes::from(serde_json::to_vec(body).unwrap()))).unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async {
            let answer = http::route(shared, http::Surface::All, request).await;
            let status = answer.status().as_u16();
            let body = answer.into_body().collect().await.unwrap().to_bytes();
            (status, serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null))
        })
    }

    /// A server of `serving`, taking feedback with the token `feedback`.
    fn server_of(serving: Serving) -> Arc<Shared> {
        let mut options = options(Location::Folder("unused".into()));
        options.tokens.feedback = TokenSet::parse("feedback");
        let shared = Arc::new(Shared::new(&options));
        swap(&shared, serving, None);
        shared
    }

    /// In shadow mode every answer is the baseline's, bit for bit, and each prediction carries the
    /// shadow's version and probability — the candidate's own, bit for bit. Feedback by receipt
    /// counts the baseline's outcome (role baseline), the shadow's (role shadow) and the pair,
    /// once: the same receipt again is a duplicate and counts nothing more.
    #[test]
    fn a_shadow_answers_nothing_and_its_pairs_are_counted_once_per_receipt() {
        let (v1, v2) = (loaded(5, "v1"), loaded(6, "v2"));
        let alone = |l: &Arc<Loaded>| server_of(Serving { baseline: l.clone(), candidate: None });
        let body = records(40);
        let (_, by_v1) = call(&alone(&v1), "/v1/predict", &body, None);
        let (_, by_v2) = call(&alone(&v2), "/v1/predict", &body, None);
        let shadowed = server_of(Serving {
            baseline: v1.clone(),
            candidate: Some(Candidate::new(v2.clone(), &v1, Mode::Shadow, 0)),
        });
        let (status, answer) = call(&shadowed, "/v1/predict", &body, None);
        assert_eq!(status, 200, "{answer}");
        assert_eq!(answer["version"], "v1");
        let predictions = answer["predictions"].as_array().unwrap();
        let mut differ = 0;
        for (i, p) in predictions.iter().enumerate() {
            let bits = |v: &serde_json::Value| v.as_f64().unwrap().to_bits();
            assert_eq!(bits(&p["probability"]), bits(&by_v1["predictions"][i]["probability"]), "{p}");
            assert_eq!(p["prediction"], by_v1["predictions"][i]["prediction"]);
            assert_eq!((&p["version"], &p["role"]), (&"v1".into(), &"baseline".into()));
            assert_eq!(p["shadow_version"], "v2");
            assert_eq!(bits(&p["shadow_probability"]), bits(&by_v2["predictions"][i]["probability"]), "{p}");
            differ += usize::from(p["probability"] != p["shadow_probability"]);
        }
        assert!(differ > 0, "the two models are the same: the test proves nothing");
        let m = &shadowed.metrics;
        let text = m.render();
        let scored = |role: &str, version: &str| {
            format!(
                "mlgate_records_scored_total{{model=\"customer-purchase\",version=\"{version}\",role=\"{role}\"}} 40\n"
            )
        };
        assert!(text.contains(&scored("baseline", "v1")) && text.contains(&scored("shadow", "v2")), "{text}");
        assert!(
            text.contains(
                "mlgate_rollout_info{model=\"customer-purchase\",baseline=\"v1\",candidate=\"v2\",mode=\"shadow\"} 0\n"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "mlgate_scoring_duration_seconds_count{model=\"customer-purchase\",version=\"v2\",role=\"shadow\"} 1\n"
            ),
            "{text}"
        );

        // The first prediction's feedback, by receipt, twice.
        let first = &predictions[0];
        let label = "yes";
        let item = serde_json::json!({"feedback": [{"receipt": first["receipt"], "label": label}]});
        let (status, joined) = call(&shadowed, "/v1/feedback", &item, Some("feedback"));
        assert_eq!((status, &joined["joined"]), (200, &1.into()), "{joined}");
        let (_, again) = call(&shadowed, "/v1/feedback", &item, Some("feedback"));
        assert_eq!(again["refusals"][0]["reason"], "duplicate", "{again}");
        let text = m.render();
        let right = |p: &serde_json::Value| (p.as_u64().unwrap() == 1).to_string();
        let shadow_right =
            (first["shadow_probability"].as_f64().unwrap() >= v2.compiled.artifact().threshold.value).to_string();
        let pairs = format!(
            "mlgate_shadow_pairs_total{{model=\"customer-purchase\",baseline=\"v1\",candidate=\"v2\",baseline_correct=\"{}\",candidate_correct=\"{shadow_right}\"}} 1\n",
            right(&first["prediction"])
        );
        assert!(text.contains(&pairs), "{pairs}{text}");
        let total: f64 = text
            .lines()
            .filter(|l| l.starts_with("mlgate_shadow_pairs_total{"))
            .map(|l| l.rsplit_once(' ').unwrap().1.parse::<f64>().unwrap())
            .sum();
        assert_eq!(total, 1.0, "{text}");
        let outcomes = |version: &str, role: &str| -> f64 {
            let head = format!(
                "mlgate_feedback_outcomes_total{{model=\"customer-purchase\",version=\"{version}\",role=\"{role}\","
            );
            text.lines()
                .filter(|l| l.starts_with(&head))
                .map(|l| l.rsplit_once(' ').unwrap().1.parse::<f64>().unwrap())
                .sum()
        };
        assert_eq!((outcomes("v1", "baseline"), outcomes("v2", "shadow")), (1.0, 1.0), "{text}");
    }

    /// A canary answers the records whose id falls in its share, each with its own version's
    /// probability and threshold, and names itself; the rest are the baseline's.
    #[test]
    fn a_canary_answers_its_share_of_the_records_and_names_itself() {
        let (v1, v2) = (loaded(5, "v1"), loaded(6, "v2"));
        let body = records(100);
        let alone = |l: &Arc<Loaded>| server_of(Serving { baseline: l.clone(), candidate: None });
        let (_, by_v1) = call(&alone(&v1), "/v1/predict", &body, None);
        let (_, by_v2) = call(&alone(&v2), "/v1/predict", &body, None);
        let canary = server_of(Serving {
            baseline: v1.clone(),
            candidate: Some(Candidate::new(v2.clone(), &v1, Mode::Canary, 30)),
        });
        let (status, answer) = call(&canary, "/v1/predict", &body, None);
        assert_eq!(status, 200, "{answer}");
        let mut by_candidate = 0;
        for (i, p) in answer["predictions"].as_array().unwrap().iter().enumerate() {
            let id = p["id"].as_str().unwrap();
            let (expected, alone) = if rollout::to_candidate("v2", 30, id) {
                (("v2", "canary"), &by_v2)
            } else {
                (("v1", "baseline"), &by_v1)
            };
            assert_eq!((p["version"].as_str().unwrap(), p["role"].as_str().unwrap()), expected, "{p}");
            assert_eq!(
                p["probability"].as_f64().unwrap().to_bits(),
                alone["predictions"][i]["probability"].as_f64().unwrap().to_bits()
            );
            assert_eq!(p["prediction"], alone["predictions"][i]["prediction"]);
            assert!(p.get("shadow_probability").is_none());
            by_candidate += usize::from(expected.0 == "v2");
        }
        assert!((15..=45).contains(&by_candidate), "{by_candidate} of 100");
        let text = canary.metrics.render();
        let scored = format!("mlgate_records_scored_total{{model=\"customer-purchase\",version=\"v2\",role=\"canary\"}} {by_candidate}\n");
        assert!(text.contains(&scored), "{scored}{text}");
        assert!(
            text.contains(
                "mlgate_scoring_failures_total{model=\"customer-purchase\",version=\"v2\",role=\"canary\"} 0\n"
            ),
            "{text}"
        );
    }

    /// One record of generated customers, as a JSON object of strings.
    fn record() -> serde_json::Value {
        let csv = model::data::generate::customers_csv(1, 3);
        let mut lines = csv.lines();
        let (header, row) = (lines.next().unwrap(), lines.next().unwrap());
        let record: serde_json::Map<String, serde_json::Value> =
            header.split(',').zip(row.split(',')).map(|(k, v)| (k.to_string(), v.into())).collect();
        serde_json::json!({ "records": [record] })
    }

    #[test]
    fn the_routes_answer_without_a_socket() {
        use http_body_util::{BodyExt, Full};
        use hyper::body::Bytes;
        let shared = Arc::new(Shared::new(&options(Location::Folder("unused".into()))));
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let call = |method: &str, path: &str, body: Vec<u8>| {
            let request = hyper::Request::builder()
                .method(method)
                .uri(path)
                .header("content-type", "application/json")
                .body(Full::new(Bytes::from(body)))
                .unwrap();
            runtime.block_on(async {
                let answer = http::route(&shared, http::Surface::All, request).await;
                let status = answer.status().as_u16();
                let body = answer.into_body().collect().await.unwrap().to_bytes();
                (status, String::from_utf8_lossy(&body).into_owned())
            })
        };
        assert_eq!(call("GET", "/healthz", vec![]).0, 200);
        assert_eq!(call("GET", "/readyz", vec![]).0, 503);
        let artifact = model::Artifact::from_bytes(&artifact_bytes(), Path::new("m")).unwrap();
        swap(&shared, serving(Loaded::new(Compiled::new(artifact).unwrap(), "v1".into(), None)), None);
        assert_eq!(call("GET", "/readyz", vec![]), (200, "ready: v1\n".into()));
        let (status, answer) = call("POST", "/v1/predict", serde_json::to_vec(&record()).unwrap());
        assert_eq!(status, 200, "{answer}");
        let answer: serde_json::Value = serde_json::from_str(&answer).unwrap();
        assert_eq!(answer["version"], "v1");
        let p = answer["predictions"][0]["probability"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&p), "{answer}");
        assert_eq!(call("GET", "/v1/predict", vec![]).0, 405);
        assert_eq!(call("GET", "/nowhere", vec![]).0, 404);
        assert_eq!(call("POST", "/v1/predict", b"{".to_vec()).0, 400);
        // A key given twice is named, not resolved by keeping the last.
        let mut twice = serde_json::to_string(&record()).unwrap();
        twice.insert_str("{\"records\":[{".len(), "\"region\": \"north\", ");
        let (status, answer) = call("POST", "/v1/predict", twice.into_bytes());
        assert_eq!(status, 422, "{answer}");
        assert!(answer.contains("duplicate_key") && answer.contains("\"column\":\"region\""), "{answer}");
        // No feedback token configured: feedback is refused.
        let (status, answer) = call("POST", "/v1/feedback", br#"{"feedback": []}"#.to_vec());
        assert_eq!(status, 403, "{answer}");
        let (_, metrics) = call("GET", "/metrics", vec![]);
        assert!(
            metrics.contains(
                r#"mlgate_http_requests_total{model="customer-purchase",route="/v1/predict",status="200"} 1"#
            ),
            "{metrics}"
        );
    }

    /// A receipt of a version this replica does not serve (the one before a rollback, or one
    /// another replica served) joins all the same, counted under its own version: what makes
    /// the evidence about a rolled-back version right.
    #[test]
    fn a_receipt_of_a_version_not_served_is_counted_under_its_version() {
        use http_body_util::{BodyExt, Full};
        use hyper::body::Bytes;
        let mut options = options(Location::Folder("unused".into()));
        options.tokens.feedback = TokenSet::parse("feedback-token");
        let shared = Arc::new(Shared::new(&options));
        let artifact = model::Artifact::from_bytes(&artifact_bytes(), Path::new("m")).unwrap();
        swap(&shared, serving(Loaded::new(Compiled::new(artifact).unwrap(), "v2".into(), None)), None);
        let claims = receipt::Claims {
            model: "customer-purchase".into(),
            version: "v1".into(),
            probability: 0.8,
            decision: true,
            time: unix_now(),
            nonce: receipt::random().unwrap(),
            role: Role::Baseline,
            shadow: None,
        };
        let body = serde_json::json!({"feedback": [{"receipt": shared.receipts.sign(&claims), "label": "no"}]});
        let request = hyper::Request::builder()
            .method("POST")
            .uri("/v1/feedback")
            .header("authorization", "Bearer feedback-token")
            .body(Full::new(Bytes::from(serde_json::to_vec(&body).unwrap())))
            .unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let answer = runtime.block_on(async {
            let answer = http::route(&shared, http::Surface::All, request).await;
            String::from_utf8_lossy(&answer.into_body().collect().await.unwrap().to_bytes()).into_owned()
        });
        assert!(answer.contains("\"joined\":1"), "{answer}");
        let metrics = shared.metrics.render();
        let outcome = |version: &str| {
            format!("mlgate_feedback_outcomes_total{{model=\"customer-purchase\",version=\"{version}\",role=\"baseline\",outcome=\"false_positive\"}}")
        };
        assert!(metrics.contains(&format!("{} 1\n", outcome("v1"))), "{metrics}");
        assert!(metrics.contains(&format!("{} 0\n", outcome("v2"))), "{metrics}");
        assert!(metrics.contains("mlgate_live_accuracy{model=\"customer-purchase\",version=\"v1\"} 0"), "{metrics}");
    }

    /// A trouble is told when it starts and when it ends, compared by kind (the message of a
    /// refused connection changes from poll to poll); every failed poll is counted by kind,
    /// a remote failure found also behind the I/O error the library passes on.
    #[test]
    fn poll_errors_are_counted_by_kind_and_told_when_they_start_and_end() {
        let metrics = Metrics::new(Some("churn"));
        let mut troubles = Troubles::default();
        let refused = |ms: u32| -> Result<Followed> {
            let remote = RemoteError { kind: Unavailable::Unreachable, message: format!("refused after {ms} ms") };
            Err(anyhow::Error::new(std::io::Error::other(remote)).context("cannot read state.json"))
        };
        let line = troubles.record(&metrics, refused(3)).unwrap();
        assert!(line.starts_with("error: cannot read state.json: refused after 3 ms [unreachable]"), "{line}");
        assert_eq!(troubles.record(&metrics, refused(5)), None);
        let timeout: Result<Followed> =
            Err(RemoteError { kind: Unavailable::Timeout, message: "git ls-remote did not finish".into() }.into());
        assert!(troubles.record(&metrics, timeout).unwrap().ends_with("[timeout]"));
        let load: Result<Followed> = Err(LoadFailed("cannot load v2; still serving v1".into()).into());
        assert!(troubles.record(&metrics, load).unwrap().ends_with("[load]"));
        let corrupt: Result<Followed> = Err(anyhow::anyhow!("state.json is not JSON"));
        assert!(troubles.record(&metrics, corrupt).unwrap().ends_with("[corrupt]"));
        assert_eq!(metrics.registry_last_success.get(), 0.0);
        let line = troubles.record(&metrics, Ok(Followed::Serving)).unwrap();
        assert!(line.starts_with("the registry is followed again (after 0s of corrupt errors)"), "{line}");
        assert_eq!(troubles.record(&metrics, Ok(Followed::Serving)), None);
        assert!(metrics.registry_last_success.get() > 1.7e9);
        let rendered = metrics.render();
        for (kind, count) in [("timeout", 1), ("unreachable", 2), ("refused", 0), ("corrupt", 1), ("load", 1)] {
            let series = format!("mlgate_registry_poll_errors_total{{model=\"churn\",kind=\"{kind}\"}} {count}\n");
            assert!(rendered.contains(&series), "{series}{rendered}");
        }
    }

    /// `state.json` with `production` and, when given, a rollout of `candidate` in `mode` at
    /// `weight`.
    fn state_with(
        seq: u64,
        production: &str,
        rollout: Option<(&str, model::lifecycle::rollout::RolloutMode, u32)>,
    ) -> Vec<u8> {
        use model::lifecycle::registry::Actor;
        use model::lifecycle::rollout::{Rollout, RolloutStep};
        let mut state = State { seq, ..State::default() };
        state.aliases.insert("production".into(), production.into());
        state.rollout = rollout.map(|(candidate, mode, weight)| Rollout {
            candidate: candidate.into(),
            baseline: production.into(),
            mode,
            steps: vec![RolloutStep { weight, pause_seconds: 60 }],
            step: 0,
            weight,
            step_started: "t".into(),
            started: Actor { who: "t".into(), when: "t".into(), commit: None },
            seq,
        });
        serde_json::to_vec(&state).unwrap()
    }

    /// The poller follows a rollout: its start loads the candidate's files once (beside the
    /// baseline, swapped as one); a new weight reads `state.json` alone; a promotion makes the
    /// candidate already loaded the baseline (nothing read but the state); an abort drops it; a
    /// pinned server never follows one.
    #[test]
    fn the_poller_follows_a_rollout_reading_a_candidate_once() {
        use model::lifecycle::rollout::RolloutMode;
        let bucket = Arc::new(InMemory::new());
        for (v, seed) in [("v1", 5), ("v2", 6)] {
            let bytes = artifact_bytes_of(seed);
            let sha = model::Artifact::from_bytes(&bytes, Path::new("m")).unwrap().checksum();
            let verdict = VerdictRecord { passed: true, artifact_sha256: sha, failed: vec![], decided_at: "t".into() };
            put(&bucket, &format!("reg/versions/{v}/model.json"), bytes);
            put(&bucket, &format!("reg/versions/{v}/verdict.json"), serde_json::to_vec(&verdict).unwrap());
            put(&bucket, &format!("reg/versions/{v}/metrics.json"), b"{}".to_vec());
        }
        put(&bucket, "reg/state.json", state_with(1, "v1", None));
        let location = Location::S3 { bucket: "memory".into(), prefix: "reg".into() };
        let follower_of = |pinned: Option<&str>| {
            let backend = S3::open(bucket.clone(), "reg", Duration::from_secs(5)).unwrap();
            let store = Store::with_backend(location.clone(), Box::new(backend), |_| {}, Duration::from_secs(1));
            let mut follower = Follower::new(location.clone(), "production".into(), Timeouts::default());
            follower.store = Some(store);
            follower.pinned = pinned.map(str::to_string);
            follower
        };
        let shared = Shared::new(&options(location.clone()));
        let mut follower = follower_of(None);
        let file_reads = |shared: &Shared| shared.metrics.registry_file_reads.get();
        let now = |shared: &Shared| {
            let s = shared.current().unwrap();
            let c = s.candidate.as_ref().map(|c| (c.loaded.version.clone(), c.mode, c.weight));
            (s.baseline.version.clone(), c)
        };
        poll(&shared, &mut follower).unwrap();
        assert_eq!(now(&shared), ("v1".into(), None));
        assert_eq!(file_reads(&shared), 3);

        put(&bucket, "reg/state.json", state_with(2, "v1", Some(("v2", RolloutMode::Canary, 10))));
        poll(&shared, &mut follower).unwrap();
        assert_eq!(now(&shared), ("v1".into(), Some(("v2".into(), Mode::Canary, 10))));
        assert_eq!(file_reads(&shared), 6, "the candidate's three files");
        let info =
            "mlgate_rollout_info{model=\"customer-purchase\",baseline=\"v1\",candidate=\"v2\",mode=\"canary\"} 10\n";
        assert!(shared.metrics.render().contains(info));
        let swaps = shared.metrics.swaps.get();

        put(&bucket, "reg/state.json", state_with(3, "v1", Some(("v2", RolloutMode::Canary, 50))));
        poll(&shared, &mut follower).unwrap();
        assert_eq!(now(&shared), ("v1".into(), Some(("v2".into(), Mode::Canary, 50))));
        assert_eq!(file_reads(&shared), 6, "a new weight reads no version's files");

        // Promoted: production is v2, the rollout closed; v2 was loaded already.
        let candidate = Arc::as_ptr(&shared.current().unwrap().candidate.as_ref().unwrap().loaded);
        put(&bucket, "reg/state.json", state_with(4, "v2", None));
        poll(&shared, &mut follower).unwrap();
        assert_eq!(now(&shared), ("v2".into(), None));
        assert_eq!(Arc::as_ptr(&shared.current().unwrap().baseline), candidate);
        assert_eq!(file_reads(&shared), 6);
        assert_eq!(shared.metrics.swaps.get(), swaps + 1);
        assert!(!shared.metrics.render().contains("mlgate_rollout_info{"));

        // Another rollout, of v1 as a shadow of v2, then aborted.
        put(&bucket, "reg/state.json", state_with(5, "v2", Some(("v1", RolloutMode::Shadow, 0))));
        poll(&shared, &mut follower).unwrap();
        assert_eq!(now(&shared), ("v2".into(), Some(("v1".into(), Mode::Shadow, 0))));
        put(&bucket, "reg/state.json", state_with(6, "v2", None));
        poll(&shared, &mut follower).unwrap();
        assert_eq!(now(&shared), ("v2".into(), None));

        // A pinned server follows neither the alias nor a rollout.
        put(&bucket, "reg/state.json", state_with(7, "v2", Some(("v1", RolloutMode::Canary, 50))));
        let pinned = Shared::new(&options(location.clone()));
        let mut follower = follower_of(Some("v1"));
        poll(&pinned, &mut follower).unwrap();
        assert_eq!(now(&pinned), ("v1".into(), None));
    }

    /// A registry of 30 versions on an (in-memory) object store: the first poll reads the state
    /// and the served version's files; a poll after a change that leaves the alias where it was
    /// reads `state.json` alone; a poll of an unchanged registry transfers nothing.
    #[test]
    fn a_poll_reads_only_what_the_served_alias_needs() {
        let bucket = Arc::new(InMemory::new());
        let bytes = artifact_bytes();
        let sha = model::Artifact::from_bytes(&bytes, Path::new("m")).unwrap().checksum();
        let verdict = VerdictRecord { passed: true, artifact_sha256: sha, failed: vec![], decided_at: "t".into() };
        for v in 1..=30 {
            put(&bucket, &format!("reg/versions/v{v}/model.json"), bytes.clone());
            put(&bucket, &format!("reg/versions/v{v}/verdict.json"), serde_json::to_vec(&verdict).unwrap());
            put(&bucket, &format!("reg/versions/v{v}/metrics.json"), b"{}".to_vec());
        }
        put(&bucket, "reg/state.json", state(30, "v30"));
        let location = Location::S3 { bucket: "memory".into(), prefix: "reg".into() };
        let shared = Shared::new(&options(location.clone()));
        let backend = S3::open(bucket.clone(), "reg", Duration::from_secs(5)).unwrap();
        let store = Store::with_backend(location.clone(), Box::new(backend), |_| {}, Duration::from_secs(1));
        let mut follower = Follower::new(location, "production".into(), Timeouts::default());
        follower.store = Some(store);
        let counted = |shared: &Shared| {
            let m = &shared.metrics;
            (m.registry_requests.get(), m.registry_reads.get(), m.registry_file_reads.get())
        };

        poll(&shared, &mut follower).unwrap();
        assert_eq!(shared.current().unwrap().version, "v30");
        // Open: state.json; refresh: state.json again (unchanged: nothing transferred); then
        // v30's artifact, verdict and acceptance metrics — nothing of the 29 other versions.
        assert_eq!(counted(&shared), (5, 1, 3));

        // A change that does not move the alias (another event): state.json alone.
        put(&bucket, "reg/state.json", state(31, "v30"));
        poll(&shared, &mut follower).unwrap();
        assert_eq!(counted(&shared), (6, 2, 3));

        // Nothing changed: one conditional request, nothing read.
        poll(&shared, &mut follower).unwrap();
        assert_eq!(counted(&shared), (7, 2, 3));

        // The alias moves: the new version's three files.
        put(&bucket, "reg/state.json", state(32, "v7"));
        poll(&shared, &mut follower).unwrap();
        assert_eq!(shared.current().unwrap().version, "v7");
        assert_eq!(counted(&shared), (11, 3, 6));
    }
}
