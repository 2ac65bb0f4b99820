//! The model server: an HTTP server for the model an alias of the registry points at.
//! Predictions (JSON or CSV), feedback joined to them, the model's identity, health, and
//! Prometheus metrics. The alias is polled (and re-read on SIGHUP): a new artifact is fetched,
//! verified and compiled on the poller's thread, then swapped in; a request keeps the model it
//! started with; an artifact that fails to load never replaces the one being served. SIGTERM
//! (or SIGINT) stops accepting, lets requests in flight finish, and exits 0.

mod auth;
mod http;
mod limits;
mod live;
mod metrics;
mod records;
mod tls;

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
pub use auth::{TokenSet, Tokens};
use metrics::{Labels, Metrics};
pub use tls::TlsFiles;

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
    tokens: Tokens,
    /// A permit for each request being read and scored (predictions and feedback).
    scoring: Arc<tokio::sync::Semaphore>,
    /// A permit for each open connection.
    connections: Arc<tokio::sync::Semaphore>,
    tls: Option<tls::Tls>,
}

impl Shared {
    fn new(args: &Options) -> Shared {
        let started = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        Shared {
            model: RwLock::new(None),
            live: Mutex::new(live::Live::new(
                args.prediction_log.max(1),
                args.prediction_log_bytes,
                args.feedback_window.max(1),
                args.drift_window,
            )),
            metrics: Metrics::new(),
            max_body: args.max_body_bytes,
            max_records: args.max_records.max(1),
            id_prefix: format!("{:08x}{:04x}", started.as_nanos() as u32, std::process::id() as u16),
            ids: AtomicU64::new(0),
            draining: AtomicBool::new(false),
            drift: args.drift.clone(),
            read_timeout: args.read_timeout,
            tokens: args.tokens.clone(),
            scoring: Arc::new(tokio::sync::Semaphore::new(args.max_scoring.max(1))),
            connections: Arc::new(tokio::sync::Semaphore::new(args.max_connections.max(1))),
            tls: None,
        }
    }

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

/// The poller's hold on the registry: the store, opened at the first poll that reaches it and
/// kept for the life of the process (one client, one copy, read again only when it moved), and
/// the version that last failed to load.
struct Follower {
    location: Location,
    alias: String,
    store: Option<Store>,
    /// The version that last failed to load, and why: counted and logged once, not at every poll.
    failed: Option<(String, String)>,
    /// The store's counters as last copied into the metrics.
    counted: (u64, u64, u64),
}

impl Follower {
    fn new(location: Location, alias: String) -> Follower {
        Follower { location, alias, store: None, failed: None, counted: (0, 0, 0) }
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

/// Reads the alias (the registry's state again only when it moved) and, when it names another
/// artifact than the one served, loads that version's files alone, verifies and compiles them,
/// then swaps them in. An artifact that failed to load is not tried again until the alias
/// names another version.
fn poll(shared: &Shared, follower: &mut Follower) -> Result<()> {
    let result = follow(shared, follower);
    follower.count(&shared.metrics);
    result
}

fn follow(shared: &Shared, follower: &mut Follower) -> Result<()> {
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
        )?),
    };
    let Some(version) = store.alias(&alias)? else {
        bail!("{}", empty_alias(&alias, &follower.location));
    };
    let current = shared.current();
    if current.as_ref().is_some_and(|c| c.version == version) {
        follower.failed = None;
        return Ok(());
    }
    if follower.failed.as_ref().is_some_and(|(v, _)| *v == version) {
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
            follower.failed = None;
            Ok(())
        }
        Err(e) => {
            shared.metrics.load_failures.inc();
            let kept = match &current {
                Some(c) => format!("; still serving {}", c.version),
                None => "; nothing is served".into(),
            };
            let message = format!("{e:#}{kept}");
            follower.failed = Some((version, message.clone()));
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
    auth::check_exposure(args.listen, &args.tokens, args.allow_anonymous_predictions)?;
    limits::raise_open_files_limit();
    let mut shared = Shared::new(&args);
    shared.tls = args.tls.clone().map(tls::Tls::load).transpose()?;
    let scheme = if shared.tls.is_some() { "https" } else { "http" };
    let shared = Arc::new(shared);
    let bind = |at: SocketAddr| -> Result<(std::net::TcpListener, SocketAddr)> {
        let listener = std::net::TcpListener::bind(at).with_context(|| format!("cannot listen on {at}"))?;
        listener.set_nonblocking(true).context("cannot make the listener non-blocking")?;
        let address = listener.local_addr().context("cannot read the listening address")?;
        Ok((listener, address))
    };
    let (listener, address) = bind(args.listen)?;
    let admin = args.admin_listen.map(bind).transpose()?;

    // The poller: its own thread, since reading a registry is blocking work (git, files, S3).
    let (wake, woken) = mpsc::channel::<()>();
    let poller = {
        let shared = shared.clone();
        let mut follower = Follower::new(location.clone(), args.alias.clone());
        let interval = args.poll;
        std::thread::spawn(move || {
            // Each problem is logged when it starts, not at every poll.
            let (mut last_error, mut last_warning) = (String::new(), String::new());
            loop {
                match poll(&shared, &mut follower) {
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
    println!("serving `{}` of {location} on {scheme}://{address}", args.alias);
    if let Some((_, admin)) = &admin {
        println!("metrics and probes on {scheme}://{admin}");
    }
    let drain = args.drain;
    let listeners = http::Listeners { main: listener, admin: admin.map(|(l, _)| l) };
    let result = runtime.block_on(http::serve(listeners, shared.clone(), wake.clone(), drain));
    shared.draining.store(true, Ordering::SeqCst);
    drop(wake);
    let _ = poller.join();
    result?;
    log("drained; exiting");
    Ok(())
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
    fn artifact_bytes() -> Vec<u8> {
        let text = include_str!("../../../pipeline.toml");
        let config = PipelineConfig::parse(text, Path::new("pipeline.toml")).unwrap();
        let csv = model::data::generate::customers_csv(600, 5);
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
            tokens: Tokens::default(),
            allow_anonymous_predictions: false,
            admin_listen: None,
            prediction_log_bytes: 1 << 20,
            max_scoring: 2,
            max_connections: 16,
            tls: None,
        }
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
        swap(&shared, Loaded::new(Compiled::new(artifact).unwrap(), "v1".into(), None), None);
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
        assert!(metrics.contains(r#"mlgate_http_requests_total{route="/v1/predict",status="200"} 1"#), "{metrics}");
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
        let backend = S3::open(bucket.clone(), "reg").unwrap();
        let store = Store::with_backend(location.clone(), Box::new(backend), |_| {}, Duration::from_secs(1));
        let mut follower = Follower::new(location, "production".into());
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
