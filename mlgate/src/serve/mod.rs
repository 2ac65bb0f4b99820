//! The model server: an HTTP server for the model an alias of the registry points at.
//! Predictions (JSON or CSV), feedback joined to them, the model's identity, health, and
//! Prometheus metrics. The alias is polled (and re-read on SIGHUP): a new artifact is fetched,
//! verified and compiled on the poller's thread, then swapped in; a request keeps the model it
//! started with; an artifact that fails to load never replaces the one being served. SIGTERM
//! (or SIGINT) stops accepting, lets requests in flight finish, and exits 0.

mod http;
mod live;
mod metrics;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex, RwLock};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use model::eval::drift::DriftThresholds;
use model::lifecycle::gate::AcceptanceRecord;
use model::pipeline::scoring::{csv_field, Compiled};
use model::Metric;

use crate::store::{Location, Store};
use metrics::{Labels, Metrics};

/// How the server runs: resolved from the command line by `cli::serve`.
pub struct Options {
    /// Where the registry lives.
    pub location: Location,
    /// The alias whose model is served.
    pub alias: String,
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
}

/// The model being served, compiled, with what `/v1/model` and the metrics say of it.
pub struct Loaded {
    compiled: Compiled,
    version: String,
    sha256: String,
    accepted: Option<AcceptanceRecord>,
    info: Labels,
    /// For each of the compiled columns, the spellings a JSON boolean becomes (boolean columns).
    booleans: Vec<Option<(String, String)>>,
    /// Column → its index in the compiled columns.
    index: std::collections::HashMap<String, usize>,
    /// Columns of the schema a record may carry that are not read (the label, ignored columns).
    unread: Vec<String>,
}

impl Loaded {
    fn new(compiled: Compiled, version: String, accepted: Option<AcceptanceRecord>) -> Loaded {
        let artifact = compiled.artifact();
        let sha256 = artifact.checksum();
        let booleans = compiled
            .columns()
            .iter()
            .map(|name| match artifact.schema.column(name).map(|c| &c.kind) {
                Some(model::data::schema::ColumnKind::Boolean { true_values, false_values }) => {
                    Some((true_values.first()?.clone(), false_values.first()?.clone()))
                }
                _ => None,
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
        let info = vec![("model", artifact.name.clone()), ("version", version.clone()), ("sha256", sha256.clone())];
        Loaded { compiled, version, sha256, accepted, info, booleans, index, unread }
    }
}

/// What every request and the poller share.
pub struct Shared {
    model: RwLock<Option<Arc<Loaded>>>,
    live: Mutex<live::Live>,
    metrics: Metrics,
    max_body: usize,
    max_records: usize,
    /// Prefix of the ids the server makes (a schema without an id column): unique per process.
    id_prefix: String,
    ids: AtomicU64,
    draining: AtomicBool,
    drift: DriftThresholds,
    read_timeout: Duration,
}

impl Shared {
    fn current(&self) -> Option<Arc<Loaded>> {
        self.model.read().expect("the model lock is never poisoned: no code panics holding it").clone()
    }
}

fn log(line: &str) {
    eprintln!("{} {line}", crate::clock::now_rfc3339());
}

/// What the log says while `alias` names no version: what sets it, or, for a name that is no
/// alias mlgate sets (`v1`), which ones are.
fn empty_alias(alias: &str, location: &Location) -> String {
    use model::lifecycle::registry::{PRODUCTION, STAGING};
    let setter = match alias {
        PRODUCTION => "`acceptance` registers candidates and `deploy` puts one in production",
        STAGING => "`acceptance` sets it to a candidate that passes",
        _ if alias.strip_prefix('v').is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())) => {
            return format!(
                "`{alias}` is a version, not an alias: --alias takes `{PRODUCTION}` or `{STAGING}` \
                 (`deploy --version {alias}` puts {alias} in production)"
            );
        }
        _ => "mlgate sets only the aliases `production` and `staging`",
    };
    format!("no version is `{alias}` in {location} yet: {setter}; the server is ready once it is set")
}

/// Reads the alias and, when it names another artifact than the one served, loads, verifies
/// and compiles it, then swaps it in. `failed` remembers the version that last failed, so that
/// a broken artifact is counted and logged once, not at every poll. A remote registry is
/// copied only when its fingerprint differs from `seen`, which becomes the fingerprint of the
/// copy once it is read, whatever the outcome (served, or a load failure counted): not one
/// taken before the copy, which may be older. A copy that could not be made is tried again at
/// the next poll.
fn poll(
    shared: &Shared,
    location: &Location,
    alias: &str,
    failed: &mut Option<(String, String)>,
    seen: &mut Option<String>,
) -> Result<()> {
    let fingerprint = location.fingerprint()?;
    if fingerprint.is_some() && fingerprint == *seen {
        return Ok(());
    }
    shared.metrics.registry_reads.inc();
    let store = Store::open(location.clone(), |notice| log(&format!("note: {notice}")), Duration::from_secs(30))?;
    let named = store.alias(alias)?;
    *seen = store.fingerprint()?;
    let Some(version) = named else {
        bail!("{}", empty_alias(alias, location));
    };
    let current = shared.current();
    if current.as_ref().is_some_and(|c| c.version == version) {
        *failed = None;
        return Ok(());
    }
    if failed.as_ref().is_some_and(|(v, _)| *v == version) {
        return Ok(());
    }
    let load = || -> Result<Loaded> {
        let artifact = store.artifact(&version).with_context(|| format!("cannot load {version}"))?;
        let verdict = store.verdict(&version).with_context(|| format!("cannot read {version}'s verdict"))?;
        if verdict.artifact_sha256 != artifact.checksum() {
            bail!(
                "{version}'s artifact has sha256 {} but its verdict is about {}",
                artifact.checksum(),
                verdict.artifact_sha256
            );
        }
        let accepted = store
            .read_file(&version, "metrics.json")
            .ok()
            .and_then(|bytes| serde_json::from_slice::<AcceptanceRecord>(&bytes).ok());
        let compiled = Compiled::new(artifact).with_context(|| format!("cannot compile {version}"))?;
        Ok(Loaded::new(compiled, version.clone(), accepted))
    };
    match load() {
        Ok(loaded) => {
            swap(shared, loaded, current.as_deref());
            *failed = None;
            Ok(())
        }
        Err(e) => {
            shared.metrics.load_failures.inc();
            let kept = match &current {
                Some(c) => format!("; still serving {}", c.version),
                None => "; nothing is served".into(),
            };
            let message = format!("{e:#}{kept}");
            *failed = Some((version, message.clone()));
            bail!(message)
        }
    }
}

fn swap(shared: &Shared, loaded: Loaded, old: Option<&Loaded>) {
    let m = &shared.metrics;
    if let Some(old) = old {
        m.model_info.remove(&old.info);
    }
    m.model_info.get_or_create(&loaded.info).set(1);
    m.acceptance.clear();
    if let Some(accepted) = &loaded.accepted {
        for metric in [Metric::Accuracy, Metric::Precision, Metric::Recall, Metric::F1, Metric::RocAuc] {
            let labels = vec![("version", loaded.version.clone()), ("metric", metric.name().to_string())];
            m.acceptance.get_or_create(&labels).set(accepted.candidate.get(metric));
        }
    }
    let line = match old {
        Some(old) => format!("swapped {} for {} (sha256 {})", old.version, loaded.version, &loaded.sha256[..12]),
        None => format!("serving {} (sha256 {})", loaded.version, &loaded.sha256[..12]),
    };
    *shared.model.write().expect("the model lock is never poisoned") = Some(Arc::new(loaded));
    m.swaps.inc();
    log(&line);
}

/// Measures the rolling drift of the recent records against the served model's reference.
fn measure_drift(shared: &Shared) -> std::result::Result<(), String> {
    let Some(loaded) = shared.current() else { return Ok(()) };
    let lines = shared.live.lock().expect("the live lock is never poisoned").recent();
    shared.metrics.drift_rows.set(lines.len() as i64);
    if lines.is_empty() {
        return Ok(());
    }
    let artifact = loaded.compiled.artifact();
    // The columns a record does not carry but a file must (ignored ones) are left empty.
    let label = &artifact.schema.label().name;
    let blank: Vec<&String> = loaded.unread.iter().filter(|c| *c != label).collect();
    let mut text = String::new();
    for (k, column) in loaded.compiled.columns().iter().chain(blank.iter().copied()).enumerate() {
        if k > 0 {
            text.push(',');
        }
        csv_field(&mut text, column);
    }
    let padding = ",".repeat(blank.len());
    text.push('\n');
    for line in &lines {
        text.push_str(line);
        text.push_str(&padding);
        text.push('\n');
    }
    let data = match model::read_csv(text.as_bytes(), "recent records", &artifact.schema, model::LabelPolicy::Optional)
    {
        Ok(data) => data,
        Err(e) => return Err(format!("cannot measure the rolling drift: {e}")),
    };
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

/// Serves until SIGTERM or SIGINT, then drains and returns.
pub fn run(args: Options) -> Result<()> {
    let location = args.location.clone();
    let started = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let shared = Arc::new(Shared {
        model: RwLock::new(None),
        live: Mutex::new(live::Live::new(args.prediction_log.max(1), args.feedback_window.max(1), args.drift_window)),
        metrics: Metrics::new(),
        max_body: args.max_body_bytes,
        max_records: args.max_records.max(1),
        id_prefix: format!("{:08x}{:04x}", started.as_nanos() as u32, std::process::id() as u16),
        ids: AtomicU64::new(0),
        draining: AtomicBool::new(false),
        drift: args.drift.clone(),
        read_timeout: args.read_timeout,
    });
    let listener =
        std::net::TcpListener::bind(args.listen).with_context(|| format!("cannot listen on {}", args.listen))?;
    listener.set_nonblocking(true).context("cannot make the listener non-blocking")?;
    let address = listener.local_addr().context("cannot read the listening address")?;

    // The poller: its own thread, since reading a registry is blocking work (git, files, S3).
    let (wake, woken) = mpsc::channel::<()>();
    let poller = {
        let (shared, location, alias) = (shared.clone(), location.clone(), args.alias.clone());
        let interval = args.poll;
        std::thread::spawn(move || {
            let (mut failed, mut seen) = (None, None);
            // Each problem is logged when it starts, not at every poll.
            let (mut last_error, mut last_warning) = (String::new(), String::new());
            loop {
                match poll(&shared, &location, &alias, &mut failed, &mut seen) {
                    Ok(()) => last_error.clear(),
                    Err(e) => {
                        let e = format!("{e:#}");
                        if e != last_error {
                            log(&format!("error: {e}"));
                            last_error = e;
                        }
                    }
                }
                match measure_drift(&shared) {
                    Ok(()) => last_warning.clear(),
                    Err(w) if w != last_warning => {
                        log(&format!("warning: {w}"));
                        last_warning = w;
                    }
                    Err(_) => {}
                }
                match woken.recv_timeout(interval) {
                    Ok(()) | Err(mpsc::RecvTimeoutError::Timeout) => {}
                    Err(mpsc::RecvTimeoutError::Disconnected) => break,
                }
                if shared.draining.load(Ordering::SeqCst) {
                    break;
                }
            }
        })
    };

    let threads = std::thread::available_parallelism().map_or(2, |t| t.get());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
        .context("cannot start the server's runtime")?;
    println!("serving `{}` of {location} on http://{address}", args.alias);
    let drain = args.drain;
    let result = runtime.block_on(http::serve(listener, shared.clone(), wake.clone(), drain));
    shared.draining.store(true, Ordering::SeqCst);
    drop(wake);
    let _ = poller.join();
    result?;
    log("drained; exiting");
    Ok(())
}
