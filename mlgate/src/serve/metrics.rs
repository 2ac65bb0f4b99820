//! The server's Prometheus metrics, named by Prometheus conventions (`mlgate_` prefix, base
//! units, `_total` counters), exposed in the OpenMetrics text format.

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;

/// A metric's labels, as (name, value) pairs.
pub type Labels = Vec<(&'static str, String)>;

/// A floating-point gauge.
pub type FloatGauge = Gauge<f64, AtomicU64>;

/// Request durations: explicit buckets from 100 µs to 2.5 s.
pub const DURATION_BUCKETS: [f64; 14] =
    [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5];

fn duration_histogram() -> Histogram {
    Histogram::new(DURATION_BUCKETS)
}

fn probability_histogram() -> Histogram {
    Histogram::new((1..=10).map(|i| f64::from(i) / 10.0))
}

/// The rolling live metrics over the window of predictions joined with feedback: name, help.
pub const LIVE_METRICS: [(&str, &str); 6] = [
    ("accuracy", "Rolling accuracy over the feedback window, by version"),
    ("precision", "Rolling precision over the feedback window, by version"),
    ("recall", "Rolling recall over the feedback window, by version"),
    ("f1", "Rolling F1 over the feedback window, by version"),
    ("roc_auc", "Rolling ROC AUC over the feedback window, by version (absent while one class is missing)"),
    ("positive_rate", "Share of positive labels in the feedback window, by version"),
];

/// Every metric the server exposes.
pub struct Metrics {
    registry: Registry,
    pub requests: Family<Labels, Counter>,
    pub duration: Family<Labels, Histogram, fn() -> Histogram>,
    pub records_scored: Family<Labels, Counter>,
    pub predictions: Family<Labels, Counter>,
    pub probability: Family<Labels, Histogram, fn() -> Histogram>,
    pub invalid_values: Family<Labels, Counter>,
    pub invalid_records: Counter,
    pub unseen_levels: Family<Labels, Counter>,
    pub model_info: Family<Labels, Gauge>,
    pub acceptance: Family<Labels, FloatGauge>,
    pub swaps: Counter,
    pub load_failures: Counter,
    pub registry_reads: Counter,
    pub registry_file_reads: Counter,
    pub registry_requests: Counter,
    /// `mlgate_registry_poll_errors_total{kind}`, kind one of [`super::Trouble`]'s names.
    pub registry_poll_errors: Family<Labels, Counter>,
    /// Unix time of the last poll that followed the alias (0: none yet).
    pub registry_last_success: FloatGauge,
    pub feedback_received: Counter,
    pub feedback_joined: Counter,
    pub feedback_unmatched: Counter,
    pub log_evicted: Counter,
    pub log_size: Gauge,
    pub log_bytes: Gauge,
    pub connections_refused: Counter,
    pub busy_refusals: Counter,
    pub tls_reload_failures: Counter,
    /// `mlgate_live_<metric>{version}`, one per [`LIVE_METRICS`] entry, in its order.
    pub live: Vec<Family<Labels, FloatGauge>>,
    pub live_window: Family<Labels, Gauge>,
    pub drift: Family<Labels, FloatGauge>,
    pub drifted_share: FloatGauge,
    pub drift_rows: Gauge,
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::default();
        let m = Metrics {
            requests: Family::default(),
            duration: Family::new_with_constructor(duration_histogram as fn() -> Histogram),
            records_scored: Family::default(),
            predictions: Family::default(),
            probability: Family::new_with_constructor(probability_histogram as fn() -> Histogram),
            invalid_values: Family::default(),
            invalid_records: Counter::default(),
            unseen_levels: Family::default(),
            model_info: Family::default(),
            acceptance: Family::default(),
            swaps: Counter::default(),
            load_failures: Counter::default(),
            registry_reads: Counter::default(),
            registry_file_reads: Counter::default(),
            registry_requests: Counter::default(),
            registry_poll_errors: Family::default(),
            registry_last_success: FloatGauge::default(),
            feedback_received: Counter::default(),
            feedback_joined: Counter::default(),
            feedback_unmatched: Counter::default(),
            log_evicted: Counter::default(),
            log_size: Gauge::default(),
            log_bytes: Gauge::default(),
            connections_refused: Counter::default(),
            busy_refusals: Counter::default(),
            tls_reload_failures: Counter::default(),
            live: LIVE_METRICS.iter().map(|_| Family::default()).collect(),
            live_window: Family::default(),
            drift: Family::default(),
            drifted_share: FloatGauge::default(),
            drift_rows: Gauge::default(),
            registry: Registry::default(),
        };
        let r = &mut registry;
        r.register("mlgate_http_requests", "HTTP requests by route and status code", m.requests.clone());
        r.register("mlgate_http_request_duration_seconds", "Time to answer a request, by route", m.duration.clone());
        r.register("mlgate_records_scored", "Records scored, by model version", m.records_scored.clone());
        r.register("mlgate_predictions", "Predictions by model version and class (0 or 1)", m.predictions.clone());
        r.register("mlgate_prediction_probability", "Predicted probabilities, by model version", m.probability.clone());
        r.register(
            "mlgate_invalid_values",
            "Values that broke a schema rule, by column and rule",
            m.invalid_values.clone(),
        );
        r.register("mlgate_invalid_records", "Records refused because a value broke a rule", m.invalid_records.clone());
        r.register(
            "mlgate_unseen_levels",
            "Records with a level not seen in training, by column",
            m.unseen_levels.clone(),
        );
        r.register(
            "mlgate_model_info",
            "The model being served (1), with its version and sha256",
            m.model_info.clone(),
        );
        r.register(
            "mlgate_model_acceptance",
            "The served version's metrics on its staging rows at acceptance, by metric",
            m.acceptance.clone(),
        );
        r.register("mlgate_model_swaps", "Models swapped in (the first load included)", m.swaps.clone());
        r.register(
            "mlgate_model_load_failures",
            "Artifacts that failed to load and were not served",
            m.load_failures.clone(),
        );
        r.register(
            "mlgate_registry_reads",
            "Readings of the registry's state.json that found it changed (the first reading included)",
            m.registry_reads.clone(),
        );
        r.register(
            "mlgate_registry_file_reads",
            "Files of versions read from a remote registry (only those of the version being loaded)",
            m.registry_file_reads.clone(),
        );
        r.register(
            "mlgate_registry_requests",
            "Requests sent to a remote registry (git commands that reach it, S3 calls)",
            m.registry_requests.clone(),
        );
        r.register(
            "mlgate_registry_poll_errors",
            "Polls of the registry that did not follow the alias, by kind (timeout, unreachable, refused, corrupt, load)",
            m.registry_poll_errors.clone(),
        );
        r.register(
            "mlgate_registry_last_success_timestamp_seconds",
            "Unix time of the last poll that read the registry and served what the alias names (0: none yet)",
            m.registry_last_success.clone(),
        );
        r.register("mlgate_feedback_received", "Feedback items received", m.feedback_received.clone());
        r.register("mlgate_feedback_joined", "Feedback items joined to a logged prediction", m.feedback_joined.clone());
        r.register(
            "mlgate_feedback_unmatched",
            "Feedback items whose id matched no logged prediction (unknown, already joined, or dropped)",
            m.feedback_unmatched.clone(),
        );
        r.register(
            "mlgate_prediction_log_evicted",
            "Logged predictions dropped (oldest first) before any feedback joined them",
            m.log_evicted.clone(),
        );
        r.register("mlgate_prediction_log_size", "Predictions waiting for feedback", m.log_size.clone());
        r.register(
            "mlgate_prediction_log_bytes",
            "Bytes the prediction log holds (bounded by --prediction-log-bytes)",
            m.log_bytes.clone(),
        );
        r.register(
            "mlgate_connections_refused",
            "Connections closed at once because --max-connections were open",
            m.connections_refused.clone(),
        );
        r.register(
            "mlgate_tls_reload_failures",
            "Readings of the TLS certificate and key (on SIGHUP) that failed; the previous ones are kept",
            m.tls_reload_failures.clone(),
        );
        r.register(
            "mlgate_busy_refusals",
            "Requests answered 503 because --max-scoring requests were being read and scored",
            m.busy_refusals.clone(),
        );
        for ((name, help), family) in LIVE_METRICS.iter().zip(&m.live) {
            r.register(format!("mlgate_live_{name}"), *help, family.clone());
        }
        r.register(
            "mlgate_live_feedback_window",
            "Joined predictions in the rolling window, by version",
            m.live_window.clone(),
        );
        r.register(
            "mlgate_feature_drift",
            "Rolling drift of each feature against the served model's training reference",
            m.drift.clone(),
        );
        r.register(
            "mlgate_drifted_features_share",
            "Share of features whose rolling drift is major",
            m.drifted_share.clone(),
        );
        r.register("mlgate_drift_window_rows", "Recent records the rolling drift is measured on", m.drift_rows.clone());
        // The series rates are taken of exist from the start, at 0: a rate needs two samples,
        // and a counter that appears at its first request has no first one.
        for route in ["/v1/predict", "/v1/feedback"] {
            let _ = m.requests.get_or_create_owned(&vec![("route", route.to_string()), ("status", "200".to_string())]);
        }
        for trouble in super::Trouble::ALL {
            let _ = m.registry_poll_errors.get_or_create_owned(&vec![("kind", trouble.name().to_string())]);
        }
        Metrics { registry, ..m }
    }

    /// Counts `n` values of `column` that broke `rule`.
    pub fn invalid(&self, column: &str, rule: &str, n: u64) {
        self.invalid_values.get_or_create(&vec![("column", column.to_string()), ("rule", rule.to_string())]).inc_by(n);
    }

    /// Counts records scored by `version`: their probabilities, how many were predicted
    /// positive, and the levels unseen in training per column.
    pub fn scored(
        &self,
        version: &str,
        probabilities: &[f64],
        positives: u64,
        unseen: &std::collections::BTreeMap<String, u64>,
    ) {
        let n = probabilities.len() as u64;
        let v = || ("version", version.to_string());
        self.records_scored.get_or_create(&vec![v()]).inc_by(n);
        self.predictions.get_or_create(&vec![v(), ("class", "1".into())]).inc_by(positives);
        self.predictions.get_or_create(&vec![v(), ("class", "0".into())]).inc_by(n - positives);
        let histogram = self.probability.get_or_create(&vec![v()]);
        for p in probabilities {
            histogram.observe(*p);
        }
        for (column, k) in unseen {
            self.unseen_levels.get_or_create(&vec![("column", column.clone())]).inc_by(*k);
        }
    }

    /// The exposition, in the OpenMetrics text format.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(16 * 1024);
        encode(&mut out, &self.registry).expect("writing to a String cannot fail");
        out
    }
}

/// The content type of [`Metrics::render`]'s text.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
