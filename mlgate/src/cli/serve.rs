//! `mlgate serve`: resolves the flags and the configuration into the server's options and runs
//! the server ([`crate::serve`]).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use xshell::Shell;

use crate::cli::context::load_config;
use crate::store::Location;

/// The flags of `mlgate serve`.
#[derive(clap::Args)]
pub struct Args {
    /// Pipeline configuration: its `[registry] path` when --registry is not given, its
    /// `[monitor.drift]` thresholds for the rolling drift.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Registry: a folder, git+URL#BRANCH or s3://BUCKET/PREFIX.
    #[arg(long)]
    pub registry: Option<String>,
    /// The alias whose model is served (and, for `production`, the rollout open beside it).
    #[arg(long, default_value = "production")]
    pub alias: String,
    /// Serve this version (vN) whatever the aliases say, and follow no rollout: for platforms
    /// that roll pods themselves.
    #[arg(long, value_name = "vN", conflicts_with = "alias", value_parser = version_name)]
    pub version: Option<String>,
    /// Address to listen on (port 0: any free port; the address is printed). The container
    /// image sets MLGATE_LISTEN=0.0.0.0:8080.
    #[arg(long, env = "MLGATE_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Seconds between two readings of the alias.
    #[arg(long, default_value_t = 10.0, value_parser = seconds)]
    pub poll: f64,
    /// Largest request body, in bytes (413 beyond).
    #[arg(long, default_value_t = 8 * 1024 * 1024)]
    pub max_body_bytes: usize,
    /// Most records in one request (413 beyond).
    #[arg(long, default_value_t = 10_000)]
    pub max_records: usize,
    /// Predictions kept waiting for their feedback; the oldest are dropped first (counted).
    #[arg(long, default_value_t = 100_000)]
    pub prediction_log: usize,
    /// Joined predictions in each version's rolling window of live metrics.
    #[arg(long, default_value_t = 1_000)]
    pub feedback_window: usize,
    /// Recent records the rolling drift is measured on.
    #[arg(long, default_value_t = 1_000)]
    pub drift_window: usize,
    /// Seconds a client may take to send a request's headers, and then its body (408 beyond).
    #[arg(long, default_value_t = 30.0, value_parser = seconds)]
    pub read_timeout: f64,
    /// Seconds a draining server waits for requests in flight before it exits.
    #[arg(long, default_value_t = 30.0, value_parser = seconds)]
    pub drain: f64,
    /// File of the bearer tokens for predictions and /v1/model, one a line (several: rotation);
    /// MLGATE_PREDICTION_TOKEN adds one. None: predictions are anonymous.
    #[arg(long, value_name = "FILE")]
    pub prediction_token_file: Option<PathBuf>,
    /// File of the bearer tokens for feedback, one a line; MLGATE_FEEDBACK_TOKEN adds one.
    /// None: feedback is refused (403).
    #[arg(long, value_name = "FILE")]
    pub feedback_token_file: Option<PathBuf>,
    /// File of the bearer tokens for /metrics, one a line; MLGATE_ADMIN_TOKEN adds one. None:
    /// /metrics is open (the probes always are).
    #[arg(long, value_name = "FILE")]
    pub admin_token_file: Option<PathBuf>,
    /// Serve predictions without a token on an address beyond loopback.
    #[arg(long)]
    pub allow_anonymous_predictions: bool,
    /// Address for /metrics, /healthz and /readyz alone (then not served on --listen).
    #[arg(long, value_name = "ADDR")]
    pub admin_listen: Option<SocketAddr>,
    /// The prediction log's bound in bytes, beside --prediction-log's in entries.
    #[arg(long, default_value_t = 64 * 1024 * 1024)]
    pub prediction_log_bytes: usize,
    /// Requests read and scored at once (beyond, a request waits in line at most a second, then
    /// gets 503 with Retry-After).
    #[arg(long, default_value_t = default_max_scoring())]
    pub max_scoring: usize,
    /// Connections open at once (beyond, a new one is closed at once).
    #[arg(long, default_value_t = 4096)]
    pub max_connections: usize,
    /// Serve HTTPS: the certificate chain, PEM (read again on SIGHUP).
    #[arg(long, value_name = "PATH", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The certificate's private key, PEM.
    #[arg(long, value_name = "PATH", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// The model's name: the `model` label of every metric and what receipts are for. Default:
    /// the configuration's `name`, else the name of the first artifact served (until it is
    /// loaded, the metrics carry no `model` label).
    #[arg(long, value_name = "NAME")]
    pub model: Option<String>,
    /// File of the keys receipts are signed with, one a line (at least 16 bytes each): the first
    /// signs, every one verifies (rotation); MLGATE_RECEIPT_KEY adds one. Replicas that share a
    /// key join each other's receipts. None: a key drawn for this process (receipts then join
    /// only on this replica, until it restarts).
    #[arg(long, value_name = "FILE")]
    pub receipt_key_file: Option<PathBuf>,
    /// Seconds a receipt is taken for feedback after its prediction.
    #[arg(long, value_name = "SECONDS", default_value_t = 7 * 86_400, value_parser = clap::value_parser!(u64).range(1..=366 * 86_400))]
    pub receipt_ttl: u64,
    /// Receipts remembered as joined, so that each is counted once (beyond, the oldest are
    /// forgotten and receipts as old refused as expired).
    #[arg(long, default_value_t = 1_000_000)]
    pub receipt_seen: usize,
    /// The bound in bytes of the receipts remembered, beside --receipt-seen's in entries.
    #[arg(long, default_value_t = 64 * 1024 * 1024)]
    pub receipt_seen_bytes: usize,
    /// Write every scored record and every joined feedback label to this event log, a folder or
    /// s3://BUCKET/PREFIX (the registry's AWS_* environment): Parquet files partitioned
    /// model=NAME/version=vN/hour=YYYY-MM-DDTHH, each written whole; `mlgate feedback export`
    /// turns them into training data. A request never waits for it.
    #[arg(long, value_name = "URL")]
    pub event_log: Option<String>,
    /// Events in one file of the event log at most; a full batch is written at once.
    #[arg(long, value_name = "EVENTS", default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub event_log_batch: u64,
    /// Seconds an event waits in the buffer at most before it is written.
    #[arg(long, value_name = "SECONDS", default_value_t = 60.0, value_parser = seconds)]
    pub event_log_interval: f64,
    /// Events the event log's buffer holds; beyond, new events are dropped and counted
    /// (mlgate_event_log_dropped_total).
    #[arg(long, value_name = "EVENTS", default_value_t = 100_000, value_parser = clap::value_parser!(u64).range(1..=100_000_000))]
    pub event_log_buffer: u64,
}

/// Twice the cores: enough to keep every core scoring while the next bodies arrive.
fn default_max_scoring() -> usize {
    2 * std::thread::available_parallelism().map_or(2, |n| n.get())
}

/// The tokens of one kind: those of `file` (one a line) and the one in the environment
/// variable `var` (read here and nowhere else).
fn tokens(file: Option<&Path>, var: &str) -> Result<crate::serve::TokenSet> {
    let mut set = crate::serve::TokenSet::default();
    if let Some(file) = file {
        let text = std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
        let read = crate::serve::TokenSet::parse(&text);
        if read.is_empty() {
            bail!("{} holds no token (one a line)", file.display());
        }
        set.extend(read);
    }
    if let Some(value) = std::env::var_os(var) {
        let value = value.to_str().with_context(|| format!("{var} is not UTF-8"))?.to_owned();
        set.extend(crate::serve::TokenSet::parse(&value));
    }
    Ok(set)
}
/// The receipts' keys: those of `file` (one a line; blank lines and `#` comments skipped) and
/// the one in `MLGATE_RECEIPT_KEY` (read here and nowhere else); none configured: a key drawn
/// for this process. No message holds a key.
fn receipt_keys(file: Option<&Path>) -> Result<crate::serve::ReceiptKeys> {
    let mut secrets: Vec<Vec<u8>> = Vec::new();
    if let Some(file) = file {
        let text = std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
        let before = secrets.len();
        secrets.extend(
            text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).map(|l| l.as_bytes().to_vec()),
        );
        if secrets.len() == before {
            bail!("{} holds no receipt key (one a line)", file.display());
        }
    }
    if let Some(value) = std::env::var_os("MLGATE_RECEIPT_KEY") {
        let value = value.to_str().context("MLGATE_RECEIPT_KEY is not UTF-8")?.trim().to_owned();
        if !value.is_empty() {
            secrets.push(value.into_bytes());
        }
    }
    if secrets.is_empty() {
        return crate::serve::ReceiptKeys::drawn().context("cannot draw a receipt key");
    }
    crate::serve::ReceiptKeys::new(secrets).map_err(|e| anyhow::anyhow!("{e} (--receipt-key-file, MLGATE_RECEIPT_KEY)"))
}

/// A version's name as the registry writes it: `v` and a number.
fn version_name(value: &str) -> std::result::Result<String, String> {
    match value.strip_prefix('v').and_then(|n| n.parse::<u64>().ok()) {
        Some(n) if format!("v{n}") == value => Ok(value.to_string()),
        _ => Err(format!("{value:?} is not a version's name such as v3")),
    }
}

fn seconds(value: &str) -> std::result::Result<f64, String> {
    let s: f64 = value.parse().map_err(|e| format!("{e}"))?;
    if s.is_finite() && s > 0.0 && s <= 86_400.0 {
        Ok(s)
    } else {
        Err(format!("{value} is not a number of seconds in (0, 86400]"))
    }
}

/// Resolves the flags (the configuration: `--config`, else `pipeline.toml` here when there is
/// one, as every other command reads it) and serves until SIGTERM.
pub fn run(_sh: &Shell, args: Args) -> Result<ExitCode> {
    let config_path = args.config.clone().or_else(|| {
        let here = PathBuf::from("pipeline.toml");
        here.is_file().then_some(here)
    });
    let config = match &config_path {
        Some(path) => Some((load_config(path)?, path.clone())),
        None => None,
    };
    if version_name(&args.alias).is_ok() {
        bail!(
            "`{alias}` is a version, not an alias: `mlgate serve --version {alias}` serves {alias} whatever the \
             aliases say; --alias takes `production` or `staging`",
            alias = args.alias
        );
    }
    if args.model.as_deref().is_some_and(str::is_empty) {
        bail!("--model takes a name, not an empty string");
    }
    let location = match (&args.registry, &config) {
        (Some(flag), _) => Location::parse(flag, Path::new(""))?,
        (None, Some((config, path))) => {
            Location::parse(&config.registry.path.to_string_lossy(), path.parent().unwrap_or(Path::new("")))?
        }
        (None, None) => {
            bail!("say which registry to serve from: --registry URL, or a pipeline.toml here (or --config) with a [registry] path")
        }
    };
    let tokens = crate::serve::Tokens {
        prediction: tokens(args.prediction_token_file.as_deref(), "MLGATE_PREDICTION_TOKEN")?,
        feedback: tokens(args.feedback_token_file.as_deref(), "MLGATE_FEEDBACK_TOKEN")?,
        admin: tokens(args.admin_token_file.as_deref(), "MLGATE_ADMIN_TOKEN")?,
    };
    crate::serve::run(crate::serve::Options {
        location,
        alias: args.alias,
        version: args.version,
        listen: args.listen,
        poll: Duration::from_secs_f64(args.poll),
        max_body_bytes: args.max_body_bytes,
        max_records: args.max_records,
        prediction_log: args.prediction_log,
        feedback_window: args.feedback_window,
        drift_window: args.drift_window,
        drift: config.as_ref().map(|(c, _)| c.monitor.drift.clone()).unwrap_or_default(),
        read_timeout: Duration::from_secs_f64(args.read_timeout),
        drain: Duration::from_secs_f64(args.drain),
        timeouts: crate::cli::context::registry_timeouts()?,
        tokens,
        allow_anonymous_predictions: args.allow_anonymous_predictions,
        admin_listen: args.admin_listen,
        prediction_log_bytes: args.prediction_log_bytes,
        max_scoring: args.max_scoring,
        max_connections: args.max_connections,
        tls: args.tls_cert.zip(args.tls_key).map(|(cert, key)| crate::serve::TlsFiles { cert, key }),
        model: args.model.or_else(|| config.as_ref().map(|(c, _)| c.name.clone())),
        receipt_keys: receipt_keys(args.receipt_key_file.as_deref())?,
        receipt_ttl: Duration::from_secs(args.receipt_ttl),
        receipt_seen: args.receipt_seen,
        receipt_seen_bytes: args.receipt_seen_bytes,
        event_log: args.event_log.map(|url| crate::serve::EventLogOptions {
            url,
            batch: args.event_log_batch as usize,
            interval: Duration::from_secs_f64(args.event_log_interval),
            buffer: args.event_log_buffer as usize,
        }),
    })?;
    Ok(ExitCode::SUCCESS)
}
