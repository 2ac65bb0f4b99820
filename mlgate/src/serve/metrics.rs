//! The server's Prometheus metrics, named by Prometheus conventions (`mlgate_` prefix, base
//! units, `_total` counters), exposed in the OpenMetrics text format to a scraper that asks for
//! it and in the classic text format (0.0.4) otherwise ([`Format`]). Beside the server's own
//! series: the process's (`process_*`, read from `/proc` at each scrape, as the official
//! clients name them), `mlgate_build_info` and the requests in flight. Every series carries the
//! label `model` (the name the server was given, else the configuration's, else the first
//! artifact's): the registry they are encoded through holds it as a constant label, so that no
//! series can be declared without it. A server told no name exposes its series without it until
//! its first artifact is loaded, so that a replica that cannot reach the registry at start still
//! says so.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;
use std::sync::OnceLock;

use super::rollout::Role;

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

/// The buckets of the joined predictions' probabilities by true label: finer near 0 and 1, where
/// a good classifier puts most of its scores, so that the ROC AUC computed from them (the pairs
/// of a bucket counted as ties) is within 0.005 of the exact one (a unit test checks it on the
/// project's data scored by a trained model and on a skewed synthetic distribution).
pub const FEEDBACK_BUCKETS: [f64; 44] = [
    0.001, 0.002, 0.005, 0.01, 0.02, 0.03, 0.04, 0.05, 0.075, 0.1, 0.125, 0.15, 0.175, 0.2, 0.225, 0.25, 0.275, 0.3,
    0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7, 0.725, 0.75, 0.775, 0.8, 0.825, 0.85, 0.875, 0.9, 0.925, 0.95, 0.96,
    0.97, 0.98, 0.99, 0.995, 0.998, 0.999, 1.0,
];

fn feedback_histogram() -> Histogram {
    Histogram::new(FEEDBACK_BUCKETS)
}

/// A bucket's bound as the exposition writes its `le` label (`0.001`, `0.5`, `1.0`): the `bin`
/// label of `mlgate_feedback_probability_bin_total` is written the same, so that PromQL can
/// match a bin with its cumulative bucket.
pub fn bin_label(bound: f64) -> String {
    format!("{bound:?}")
}

/// The index in [`FEEDBACK_BUCKETS`] of the bucket `probability` falls in (the first bound it
/// does not exceed; the last for anything above).
fn bin_of(probability: f64) -> usize {
    FEEDBACK_BUCKETS.partition_point(|&b| b < probability).min(FEEDBACK_BUCKETS.len() - 1)
}

/// What a joined prediction was, at the decision the server answered: the `outcome` label.
pub fn outcome(decision: bool, label: bool) -> &'static str {
    match (decision, label) {
        (true, true) => "true_positive",
        (true, false) => "false_positive",
        (false, false) => "true_negative",
        (false, true) => "false_negative",
    }
}

/// The labels of a series of `mlgate_shadow_pairs_total`.
fn shadow_pair_labels(baseline: &str, candidate: &str, baseline_correct: bool, candidate_correct: bool) -> Labels {
    vec![
        ("baseline", baseline.to_string()),
        ("candidate", candidate.to_string()),
        ("baseline_correct", baseline_correct.to_string()),
        ("candidate_correct", candidate_correct.to_string()),
    ]
}

/// Every value of the `outcome` label.
pub const OUTCOMES: [&str; 4] = ["true_positive", "false_positive", "true_negative", "false_negative"];

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
    /// Which metrics these are, among those made in this process: a [`Series`] is cached for
    /// one of them ([`super::Loaded`]).
    pub id: u64,
    /// The series, encoded with the `model` label; unset until the model's name is known.
    registry: OnceLock<Registry>,
    /// The series without the `model` label, while its value is not known.
    unnamed: Registry,
    /// The `model` label's value.
    model_name: OnceLock<String>,
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
    /// `mlgate_feedback_outcomes_total{version,outcome}`: joined feedback by [`outcome`].
    pub feedback_outcomes: Family<Labels, Counter>,
    /// `mlgate_feedback_probability{version,label}`: joined predictions' probabilities by label.
    pub feedback_probability: Family<Labels, Histogram, fn() -> Histogram>,
    /// `mlgate_feedback_probability_bin_total{version,label,bin}`: the same, not cumulated.
    pub feedback_bins: Family<Labels, Counter>,
    /// `mlgate_feedback_refused_total{reason}`: receipts refused, by reason.
    pub feedback_refused: Family<Labels, Counter>,
    /// `mlgate_scoring_duration_seconds{version,role}`: time to score a batch of records with a
    /// version.
    pub scoring_duration: Family<Labels, Histogram, fn() -> Histogram>,
    /// `mlgate_scoring_failures_total{version,role}`: records a version failed to score.
    pub scoring_failures: Family<Labels, Counter>,
    /// `mlgate_shadow_pairs_total{baseline,candidate,baseline_correct,candidate_correct}`: joined
    /// predictions that had a shadow, by which of the two was right.
    pub shadow_pairs: Family<Labels, Counter>,
    /// `mlgate_rollout_info{baseline,candidate,mode}`: the rollout followed, its weight as the
    /// value (absent when none is open).
    pub rollout_info: Family<Labels, Gauge>,
    pub log_evicted: Counter,
    pub log_size: Gauge,
    pub log_bytes: Gauge,
    pub connections_refused: Counter,
    pub busy_refusals: Counter,
    pub tls_reload_failures: Counter,
    /// `mlgate_event_log_events_total{kind}`: events written to the event log (kind `prediction`
    /// or `feedback`).
    pub event_log_events: Family<Labels, Counter>,
    /// `mlgate_event_log_dropped_total{kind,reason}`: events the event log lost (`full`: the
    /// buffer had no room; `write_failed`: their file could not be written).
    pub event_log_dropped: Family<Labels, Counter>,
    /// `mlgate_event_log_write_errors_total`: files of the event log that could not be written.
    pub event_log_write_errors: Counter,
    /// `mlgate_live_<metric>{version}`, one per [`LIVE_METRICS`] entry, in its order.
    pub live: Vec<Family<Labels, FloatGauge>>,
    pub live_window: Family<Labels, Gauge>,
    pub drift: Family<Labels, FloatGauge>,
    pub drifted_share: FloatGauge,
    pub drift_rows: Gauge,
    /// `mlgate_http_requests_in_flight`: requests being answered.
    pub in_flight: Gauge,
    /// `mlgate_build_info{version,revision}` 1 (`revision` when the build knew it).
    pub build_info: Family<Labels, Gauge>,
}

impl Metrics {
    /// The metrics, their series at their start values; with `model`, exposed from the start,
    /// else once [`Metrics::name_model`] is called.
    pub fn new(model: Option<&str>) -> Metrics {
        static MADE: AtomicU64 = AtomicU64::new(0);
        let m = Metrics {
            id: MADE.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
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
            feedback_outcomes: Family::default(),
            feedback_probability: Family::new_with_constructor(feedback_histogram as fn() -> Histogram),
            feedback_bins: Family::default(),
            feedback_refused: Family::default(),
            scoring_duration: Family::new_with_constructor(duration_histogram as fn() -> Histogram),
            scoring_failures: Family::default(),
            shadow_pairs: Family::default(),
            rollout_info: Family::default(),
            log_evicted: Counter::default(),
            log_size: Gauge::default(),
            log_bytes: Gauge::default(),
            connections_refused: Counter::default(),
            busy_refusals: Counter::default(),
            tls_reload_failures: Counter::default(),
            event_log_events: Family::default(),
            event_log_dropped: Family::default(),
            event_log_write_errors: Counter::default(),
            live: LIVE_METRICS.iter().map(|_| Family::default()).collect(),
            live_window: Family::default(),
            drift: Family::default(),
            drifted_share: FloatGauge::default(),
            drift_rows: Gauge::default(),
            in_flight: Gauge::default(),
            build_info: Family::default(),
            registry: OnceLock::new(),
            unnamed: Registry::default(),
            model_name: OnceLock::new(),
        };
        let mut build = vec![("version", env!("CARGO_PKG_VERSION").to_string())];
        if let Some(revision) = REVISION.filter(|r| !r.is_empty()) {
            build.push(("revision", revision.to_string()));
        }
        m.build_info.get_or_create(&build).set(1);
        let m = Metrics { unnamed: m.registry_named(None), ..m };
        // The series rates are taken of exist from the start, at 0: a rate needs two samples,
        // and a counter that appears at its first request has no first one.
        for route in ["/v1/predict", "/v1/feedback"] {
            let _ = m.requests.get_or_create_owned(&vec![("route", route.to_string()), ("status", "200".to_string())]);
        }
        for trouble in super::Trouble::ALL {
            let _ = m.registry_poll_errors.get_or_create_owned(&vec![("kind", trouble.name().to_string())]);
        }
        for reason in super::receipt::Reason::ALL {
            let _ = m.feedback_refused.get_or_create_owned(&vec![("reason", reason.name().to_string())]);
        }
        if let Some(model) = model {
            m.name_model(model);
        }
        m
    }

    /// The `model` label's value, once known.
    pub fn model(&self) -> Option<&str> {
        self.model_name.get().map(String::as_str)
    }

    /// Sets the `model` label of every series; the first call wins (the name a server exposes
    /// does not change while it runs).
    pub fn name_model(&self, model: &str) {
        let _ = self.model_name.set(model.to_string());
        let named = self.model_name.get().map_or(model, String::as_str);
        self.registry.get_or_init(|| self.registry_named(Some(named)));
    }

    /// A registry of every series, with `model` as a constant label when given.
    fn registry_named(&self, model: Option<&str>) -> Registry {
        let m = self;
        let label =
            model.map(|model| (std::borrow::Cow::Borrowed("model"), std::borrow::Cow::Owned(model.to_string())));
        let mut registry = Registry::with_labels(label.into_iter());
        let r = &mut registry;
        r.register("mlgate_http_requests", "HTTP requests by route and status code", m.requests.clone());
        r.register("mlgate_http_request_duration_seconds", "Time to answer a request, by route", m.duration.clone());
        r.register(
            "mlgate_records_scored",
            "Records scored, by model version and role (baseline, canary, shadow)",
            m.records_scored.clone(),
        );
        r.register(
            "mlgate_predictions",
            "Predictions by model version, role and class (0 or 1)",
            m.predictions.clone(),
        );
        r.register(
            "mlgate_prediction_probability",
            "Predicted probabilities, by model version and role",
            m.probability.clone(),
        );
        r.register(
            "mlgate_scoring_duration_seconds",
            "Time to score a batch of records with a version, by version and role",
            m.scoring_duration.clone(),
        );
        r.register(
            "mlgate_scoring_failures",
            "Records a version failed to score (a broken value only it refused, a probability not finite), by version and role; a canary's are answered by the baseline",
            m.scoring_failures.clone(),
        );
        r.register(
            "mlgate_shadow_pairs",
            "Joined predictions that had a shadow, by baseline and candidate version and whether each was right (true, false)",
            m.shadow_pairs.clone(),
        );
        r.register(
            "mlgate_rollout_info",
            "The rollout followed, by baseline, candidate and mode (canary, shadow); the value is the canary's weight in percent (0 in shadow)",
            m.rollout_info.clone(),
        );
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
            "mlgate_event_log_events",
            "Events written to the event log (--event-log), by kind (prediction, feedback)",
            m.event_log_events.clone(),
        );
        r.register(
            "mlgate_event_log_dropped",
            "Events the event log lost, by kind and reason (full: no room in the buffer; write_failed: their file could not be written)",
            m.event_log_dropped.clone(),
        );
        r.register(
            "mlgate_event_log_write_errors",
            "Files of the event log that could not be written (each logged)",
            m.event_log_write_errors.clone(),
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
        r.register(
            "mlgate_feedback_outcomes",
            "Joined feedback by version, role and outcome at the decision the version gave (true_positive, false_positive, true_negative, false_negative)",
            m.feedback_outcomes.clone(),
        );
        r.register(
            "mlgate_feedback_probability",
            "Probabilities of the predictions joined with feedback, by version, role and true label (0 or 1)",
            m.feedback_probability.clone(),
        );
        r.register(
            "mlgate_feedback_probability_bin",
            "Joined predictions by version, role, true label and probability bin (each bucket of mlgate_feedback_probability alone, `bin` written as its `le`)",
            m.feedback_bins.clone(),
        );
        r.register(
            "mlgate_feedback_refused",
            "Feedback receipts refused, by reason (malformed, altered, foreign, expired, duplicate)",
            m.feedback_refused.clone(),
        );
        r.register("mlgate_http_requests_in_flight", "Requests being answered", m.in_flight.clone());
        r.register(
            "mlgate_build_info",
            "The mlgate build serving (1), with its version and, when the build knew it, its git revision",
            m.build_info.clone(),
        );
        r.register_collector(Box::new(ProcessCollector));
        registry
    }

    /// Makes the series of `version` in `role` exist at 0 (the four outcomes, both labels'
    /// histograms and bins, its records scored, scoring time and failures): sums and rates over
    /// replicas need every series from the start — a counter first exposed after its first
    /// increase has no earlier sample, and Prometheus's `increase` misses that first jump (a
    /// shadow's records, scored in a burst after it was loaded, were counted as none).
    pub fn feedback_series(&self, version: &str, role: Role) {
        let vr = || vec![("version", version.to_string()), ("role", role.name().to_string())];
        let _ = self.scoring_failures.get_or_create(&vr());
        let _ = self.records_scored.get_or_create(&vr());
        let _ = self.scoring_duration.get_or_create(&vr());
        for outcome in OUTCOMES {
            let mut labels = vr();
            labels.push(("outcome", outcome.into()));
            let _ = self.feedback_outcomes.get_or_create(&labels);
        }
        for label in ["0", "1"] {
            let mut labels = vr();
            labels.push(("label", label.to_string()));
            let _ = self.feedback_probability.get_or_create(&labels);
            for bound in FEEDBACK_BUCKETS {
                let mut labels = labels.clone();
                labels.push(("bin", bin_label(bound)));
                let _ = self.feedback_bins.get_or_create(&labels);
            }
        }
    }

    /// Counts one prediction of `version` in `role` joined with its true `label`: its outcome at
    /// the `decision` it gave, its probability in the label's histogram and bin.
    pub fn joined(&self, version: &str, role: Role, probability: f64, decision: bool, label: bool) {
        let vr = |more: (&'static str, String)| {
            vec![("version", version.to_string()), ("role", role.name().to_string()), more]
        };
        self.feedback_outcomes.get_or_create(&vr(("outcome", outcome(decision, label).into()))).inc();
        let class = if label { "1" } else { "0" };
        self.feedback_probability.get_or_create(&vr(("label", class.into()))).observe(probability);
        let bin = bin_label(FEEDBACK_BUCKETS[bin_of(probability)]);
        let mut labels = vr(("label", class.into()));
        labels.push(("bin", bin));
        self.feedback_bins.get_or_create(&labels).inc();
    }

    /// Counts a joined prediction that had a shadow: which of the baseline and the candidate
    /// decided right.
    pub fn shadow_pair(&self, baseline: &str, candidate: &str, baseline_correct: bool, candidate_correct: bool) {
        self.shadow_pairs
            .get_or_create(&shadow_pair_labels(baseline, candidate, baseline_correct, candidate_correct))
            .inc();
    }

    /// Makes the four series of the pairs of `baseline` and `candidate` exist at 0.
    pub fn shadow_pair_series(&self, baseline: &str, candidate: &str) {
        for (b, c) in [(true, true), (true, false), (false, true), (false, false)] {
            let _ = self.shadow_pairs.get_or_create(&shadow_pair_labels(baseline, candidate, b, c));
        }
    }

    /// Says which rollout is followed (`None`: none), replacing what was said before.
    pub fn rollout(&self, rollout: Option<(&str, &str, &str, u32)>) {
        self.rollout_info.clear();
        if let Some((baseline, candidate, mode, weight)) = rollout {
            let labels = vec![
                ("baseline", baseline.to_string()),
                ("candidate", candidate.to_string()),
                ("mode", mode.to_string()),
            ];
            self.rollout_info.get_or_create(&labels).set(i64::from(weight));
        }
    }

    /// The series `version` in `role` counts each request's records in, looked up once: a
    /// request then counts without making labels (what [`Metrics::scored`] and
    /// [`Metrics::scoring_took`] write, the unseen levels aside).
    pub fn series(&self, version: &str, role: Role) -> Series {
        let v = || ("version", version.to_string());
        let r = || ("role", role.name().to_string());
        // One statement each: a family's guard lives to the end of its statement, and a second
        // lookup in the same family while it is held would wait for it forever.
        let records = self.records_scored.get_or_create(&vec![v(), r()]).clone();
        let positive = self.predictions.get_or_create(&vec![v(), r(), ("class", "1".into())]).clone();
        let negative = self.predictions.get_or_create(&vec![v(), r(), ("class", "0".into())]).clone();
        let probability = self.probability.get_or_create(&vec![v(), r()]).clone();
        let took = self.scoring_duration.get_or_create(&vec![v(), r()]).clone();
        Series { records, positive, negative, probability, took }
    }

    /// Counts `n` events of `kind` written to the event log.
    pub fn event_log_written(&self, kind: &str, n: u64) {
        self.event_log_events.get_or_create(&vec![("kind", kind.to_string())]).inc_by(n);
    }

    /// Counts `n` events of `kind` the event log lost, and why.
    pub fn event_log_dropped(&self, kind: &str, reason: &str, n: u64) {
        let labels = vec![("kind", kind.to_string()), ("reason", reason.to_string())];
        self.event_log_dropped.get_or_create(&labels).inc_by(n);
    }

    /// Counts `n` records `version` in `role` failed to score.
    pub fn scoring_failed(&self, version: &str, role: Role, n: u64) {
        let labels = vec![("version", version.to_string()), ("role", role.name().to_string())];
        self.scoring_failures.get_or_create(&labels).inc_by(n);
    }

    /// Counts `n` values of `column` that broke `rule`.
    pub fn invalid(&self, column: &str, rule: &str, n: u64) {
        self.invalid_values.get_or_create(&vec![("column", column.to_string()), ("rule", rule.to_string())]).inc_by(n);
    }

    /// Counts the levels unseen in training in a request's records, per column.
    pub fn unseen(&self, unseen: &std::collections::BTreeMap<String, u64>) {
        for (column, k) in unseen {
            self.unseen_levels.get_or_create(&vec![("column", column.clone())]).inc_by(*k);
        }
    }

    /// The exposition, in the OpenMetrics text format; without the `model` label while its value
    /// is not known (a server given neither `--model` nor a configuration, before its first load).
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(16 * 1024);
        let registry = self.registry.get().unwrap_or(&self.unnamed);
        encode(&mut out, registry).expect("writing to a String cannot fail");
        out
    }

    /// The exposition in `format`.
    pub fn render_as(&self, format: Format) -> String {
        match format {
            Format::OpenMetrics => self.render(),
            Format::Classic => classic(&self.render()),
        }
    }
}

/// The series of one version in one role ([`Metrics::series`]): the same counters and
/// histograms as the families hold (series are never removed from them).
#[derive(Clone)]
pub struct Series {
    records: Counter,
    positive: Counter,
    negative: Counter,
    probability: Histogram,
    took: Histogram,
}

impl Series {
    /// Counts records scored: their probabilities, and how many were predicted positive.
    pub fn scored(&self, probabilities: &[f64], positives: u64) {
        let n = probabilities.len() as u64;
        self.records.inc_by(n);
        self.positive.inc_by(positives);
        self.negative.inc_by(n - positives);
        for p in probabilities {
            self.probability.observe(*p);
        }
    }

    /// Times a batch of records scored.
    pub fn took(&self, seconds: f64) {
        self.took.observe(seconds);
    }
}

/// The git revision the binary was built from, when the build said it: `MLGATE_REVISION`, else
/// `GITHUB_SHA` (set in every GitHub Actions job, the release's included), at compile time.
const REVISION: Option<&str> = match option_env!("MLGATE_REVISION") {
    Some(r) => Some(r),
    None => option_env!("GITHUB_SHA"),
};

/// The exposition formats a scrape may get.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Format {
    /// OpenMetrics 1.0.0 text, for a scraper whose `Accept` asks for it.
    OpenMetrics,
    /// The classic Prometheus text format 0.0.4 (`text/plain`), for every other client.
    Classic,
}

impl Format {
    /// The format an `Accept` header asks for: OpenMetrics when it lists
    /// `application/openmetrics-text` with a weight above 0 and at least that of any other
    /// acceptable type (Prometheus sends `application/openmetrics-text;version=1.0.0,…,
    /// text/plain;version=0.0.4;q=0.5,*/*;q=0.1`); the classic format otherwise, or without one.
    pub fn negotiate(accept: Option<&str>) -> Format {
        let (mut openmetrics, mut other) = (0.0f64, 0.0f64);
        for range in accept.unwrap_or_default().split(',') {
            let mut parts = range.split(';');
            let media = parts.next().unwrap_or_default().trim().to_ascii_lowercase();
            let q = parts
                .filter_map(|p| p.split_once('='))
                .find(|(k, _)| k.trim().eq_ignore_ascii_case("q"))
                .and_then(|(_, v)| v.trim().parse::<f64>().ok())
                .filter(|q| (0.0..=1.0).contains(q))
                .unwrap_or(1.0);
            if media == "application/openmetrics-text" {
                openmetrics = openmetrics.max(q);
            } else if !media.is_empty() {
                other = other.max(q);
            }
        }
        if openmetrics > 0.0 && openmetrics >= other {
            Format::OpenMetrics
        } else {
            Format::Classic
        }
    }

    /// The `Content-Type` of an exposition in this format.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
            Format::Classic => "text/plain; version=0.0.4; charset=utf-8",
        }
    }
}

/// An OpenMetrics exposition rewritten in the classic text format 0.0.4: a counter's `# HELP`
/// and `# TYPE` name its samples (`…_total`), as an info metric's do (`…_info`, a gauge);
/// `unknown` is `untyped`; no `# UNIT`, no `_created` samples, no exemplars, no `# EOF`.
fn classic(openmetrics: &str) -> String {
    use std::collections::HashMap;
    let mut types: HashMap<&str, &str> = HashMap::new();
    for line in openmetrics.lines() {
        if let Some((name, kind)) = line.strip_prefix("# TYPE ").and_then(|rest| rest.split_once(' ')) {
            types.insert(name, kind);
        }
    }
    let renamed = |name: &str| -> String {
        match types.get(name) {
            Some(&"counter") => format!("{name}_total"),
            Some(&"info") => format!("{name}_info"),
            _ => name.to_string(),
        }
    };
    let mut out = String::with_capacity(openmetrics.len());
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        if let Some((name, help)) = line.strip_prefix("# HELP ").and_then(|rest| rest.split_once(' ')) {
            // 0.0.4 reads `\\` and `\n` in a help text, nothing else escaped.
            let help = help.replace('\\', "\\\\").replace('\n', "\\n");
            out.push_str(&format!("# HELP {} {help}\n", renamed(name)));
            continue;
        }
        if let Some((name, kind)) = line.strip_prefix("# TYPE ").and_then(|rest| rest.split_once(' ')) {
            let kind = match kind {
                "info" | "stateset" => "gauge",
                "unknown" => "untyped",
                "gaugehistogram" => "histogram",
                other => other,
            };
            out.push_str(&format!("# TYPE {} {kind}\n", renamed(name)));
            continue;
        }
        if line.starts_with('#') {
            continue;
        }
        let name = line.split(['{', ' ']).next().unwrap_or_default();
        if name.strip_suffix("_created").is_some_and(|base| types.contains_key(base)) {
            continue;
        }
        // An exemplar follows ` # ` after the value; a label value may hold ` # ` too, so the
        // search starts after the labels.
        let labels_end = if line[name.len()..].starts_with('{') { closing_brace(line) } else { name.len() };
        let sample = match line[labels_end..].find(" # ") {
            Some(at) => &line[..labels_end + at],
            None => line,
        };
        out.push_str(sample);
        out.push('\n');
    }
    out
}

/// The index just past the `}` that closes a sample's labels (quoted values skipped, escapes
/// honoured); the line's length when there is none.
fn closing_brace(line: &str) -> usize {
    let (mut quoted, mut escaped) = (false, false);
    for (i, c) in line.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            '}' if !quoted => return i + 1,
            _ => {}
        }
    }
    line.len()
}

/// The process's own series, read from `/proc/self` at each scrape under the names the official
/// Prometheus clients give them: CPU time, resident and virtual memory, open and allowed file
/// descriptors, start time. Where there is no `/proc` (macOS), none is written.
#[derive(Debug)]
struct ProcessCollector;

/// What `/proc/self` says of the process.
#[derive(Debug, PartialEq)]
struct ProcessFigures {
    cpu_seconds: f64,
    resident_bytes: f64,
    virtual_bytes: f64,
    start_time_seconds: f64,
    open_fds: Option<f64>,
    max_fds: Option<f64>,
}

impl ProcessFigures {
    /// The figures of this process; `None` without `/proc`.
    fn read() -> Option<ProcessFigures> {
        let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        let boot = std::fs::read_to_string("/proc/stat").ok()?;
        // SAFETY: sysconf reads a configuration value; it has no memory-safety preconditions.
        let (ticks, page) = unsafe { (libc::sysconf(libc::_SC_CLK_TCK), libc::sysconf(libc::_SC_PAGESIZE)) };
        let limits = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
        let open_fds = std::fs::read_dir("/proc/self/fd").ok().map(|d| d.count() as f64);
        ProcessFigures::parse(&stat, &boot, &limits, open_fds, ticks as f64, page as f64)
    }

    /// The figures from the texts of `/proc/self/stat`, `/proc/stat` and `/proc/self/limits`,
    /// with the clock ticks per second and the page size.
    fn parse(stat: &str, boot: &str, limits: &str, open_fds: Option<f64>, ticks: f64, page: f64) -> Option<Self> {
        // The command's name, in parentheses, may hold spaces: the fields are counted after it.
        let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
        // Fields 14, 15, 22, 23 and 24 of proc(5): utime, stime, starttime, vsize, rss; the
        // first after the name is field 3.
        let field = |n: usize| fields.get(n - 3).and_then(|f| f.parse::<f64>().ok());
        let btime = boot.lines().find_map(|l| l.strip_prefix("btime "))?.trim().parse::<f64>().ok()?;
        let max_fds = limits
            .lines()
            .find_map(|l| l.strip_prefix("Max open files"))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|soft| soft.parse::<f64>().ok());
        if ticks <= 0.0 || page <= 0.0 {
            return None;
        }
        Some(ProcessFigures {
            cpu_seconds: (field(14)? + field(15)?) / ticks,
            resident_bytes: field(24)? * page,
            virtual_bytes: field(23)?,
            start_time_seconds: btime + field(22)? / ticks,
            open_fds,
            max_fds,
        })
    }
}

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Some(p) = ProcessFigures::read() else { return Ok(()) };
        let cpu = ConstCounter::new(p.cpu_seconds);
        cpu.encode(encoder.encode_descriptor(
            "process_cpu_seconds",
            "Total user and system CPU time spent in seconds.",
            None,
            cpu.metric_type(),
        )?)?;
        let gauges = [
            ("process_resident_memory_bytes", "Resident memory size in bytes.", Some(p.resident_bytes)),
            ("process_virtual_memory_bytes", "Virtual memory size in bytes.", Some(p.virtual_bytes)),
            (
                "process_start_time_seconds",
                "Start time of the process since unix epoch in seconds.",
                Some(p.start_time_seconds),
            ),
            ("process_open_fds", "Number of open file descriptors.", p.open_fds),
            ("process_max_fds", "Maximum number of open file descriptors.", p.max_fds),
        ];
        for (name, help, value) in gauges {
            let Some(value) = value else { continue };
            let gauge = ConstGauge::new(value);
            gauge.encode(encoder.encode_descriptor(name, help, None, gauge.metric_type())?)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::path::Path;

    use super::*;

    /// The series of a scrape: (name, labels, value).
    fn series(text: &str) -> Vec<(String, HashMap<String, String>, f64)> {
        text.lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
            .map(|line| {
                let (head, value) = line.rsplit_once(' ').unwrap();
                let (name, labels) = match head.split_once('{') {
                    Some((name, rest)) => (name, rest.strip_suffix('}').unwrap()),
                    None => (head, ""),
                };
                let labels = labels
                    .split("\",")
                    .filter(|p| !p.is_empty())
                    .map(|p| {
                        let (k, v) = p.split_once("=\"").unwrap();
                        (k.to_string(), v.trim_end_matches('"').to_string())
                    })
                    .collect();
                (name.to_string(), labels, value.parse().unwrap())
            })
            .collect()
    }

    /// The ROC AUC by the contract's formula, from a scrape as Prometheus holds it:
    /// Σ_bin n0(bin)·(N1 − C1(le=bin) + ½·n1(bin)) / (N0·N1).
    fn binned_auc(text: &str) -> f64 {
        let all = series(text);
        let get = |name: &str, label: &str, key: &str, value: &str| -> f64 {
            all.iter()
                .filter(|(n, l, _)| n == name && l["label"] == label && l.get(key).is_some_and(|v| v == value))
                .map(|(_, _, x)| *x)
                .sum()
        };
        let count = |label: &str| {
            all.iter().find(|(n, l, _)| n == "mlgate_feedback_probability_count" && l["label"] == label).unwrap().2
        };
        let (n0, n1) = (count("0"), count("1"));
        let mut pairs = 0.0;
        for bound in FEEDBACK_BUCKETS {
            let bin = bin_label(bound);
            let zero = get("mlgate_feedback_probability_bin_total", "0", "bin", &bin);
            let one = get("mlgate_feedback_probability_bin_total", "1", "bin", &bin);
            let below_or_in = get("mlgate_feedback_probability_bucket", "1", "le", &bin);
            pairs += zero * (n1 - below_or_in + 0.5 * one);
        }
        pairs / (n0 * n1)
    }

    /// Counts the scores as joined feedback and compares the AUC Prometheus would compute with
    /// the exact one.
    fn check_auc(labels: &[bool], scores: &[f64], what: &str) -> f64 {
        let metrics = Metrics::new(Some("churn"));
        metrics.feedback_series("v1", Role::Baseline);
        for (&y, &p) in labels.iter().zip(scores) {
            metrics.joined("v1", Role::Baseline, p, p >= 0.5, y);
        }
        let exact = model::eval::metrics::roc_auc(labels, scores).unwrap();
        let binned = binned_auc(&metrics.render());
        assert!((binned - exact).abs() < 0.005, "{what}: binned {binned} vs exact {exact}");
        exact
    }

    /// The buckets are fine enough for ROC AUC: on the project's generated customers scored by a
    /// model trained on them, and on the scores of a sharp classifier (most negatives under
    /// 0.01, most positives over 0.99), the AUC from the bins is within 0.005 of the exact one.
    #[test]
    fn the_auc_from_the_bins_is_within_0_005_of_the_exact_one() {
        let artifact = model::Artifact::from_bytes(&super::super::tests::artifact_bytes(), Path::new("m")).unwrap();
        let csv = model::data::generate::customers_csv(20_000, 77);
        let data = model::read_csv(csv.as_bytes(), "c.csv", &artifact.schema, model::LabelPolicy::Required).unwrap();
        let scores = artifact.score(&data).unwrap().probabilities;
        let exact = check_auc(data.labels.as_ref().unwrap(), &scores, "generated customers");
        assert!(exact > 0.6, "{exact}");

        let mut rng = model::rng::Rng::new(7);
        let sigmoid = |x: f64| 1.0 / (1.0 + (-x).exp());
        let (mut labels, mut scores) = (Vec::new(), Vec::new());
        for _ in 0..20_000 {
            let positive = rng.chance(0.2);
            let logit = if positive { 4.0 + 2.5 * rng.normal() } else { -5.5 + 2.5 * rng.normal() };
            labels.push(positive);
            scores.push(sigmoid(logit));
        }
        let exact = check_auc(&labels, &scores, "a sharp classifier");
        assert!(exact > 0.97, "{exact}");
        // A weak one, its scores bunched in the middle.
        let (mut labels, mut scores) = (Vec::new(), Vec::new());
        for _ in 0..20_000 {
            let positive = rng.chance(0.5);
            let logit = if positive { 0.3 + 0.6 * rng.normal() } else { -0.3 + 0.6 * rng.normal() };
            labels.push(positive);
            scores.push(sigmoid(logit));
        }
        check_auc(&labels, &scores, "a weak classifier");
    }

    /// The classic format names a counter's family by its samples (`…_total`), keeps every
    /// sample of the OpenMetrics text but the `_created` ones and exemplars, and has no `# EOF`.
    #[test]
    fn the_classic_format_is_the_openmetrics_one_in_0_0_4_terms() {
        let metrics = Metrics::new(Some("churn"));
        metrics.feedback_series("v1", Role::Baseline);
        metrics.joined("v1", Role::Baseline, 0.7, true, true);
        let openmetrics = metrics.render_as(Format::OpenMetrics);
        let classic = metrics.render_as(Format::Classic);
        assert!(openmetrics.ends_with("# EOF\n"), "{openmetrics}");
        assert!(!classic.contains("# EOF") && !classic.contains("# UNIT"), "{classic}");
        assert!(
            classic.contains("# HELP mlgate_http_requests_total HTTP requests by route and status code.\n"),
            "{classic}"
        );
        assert!(classic.contains("# TYPE mlgate_http_requests_total counter\n"), "{classic}");
        assert!(classic.contains("# TYPE mlgate_feedback_probability histogram\n"), "{classic}");
        assert!(classic.contains("# TYPE process_cpu_seconds_total counter\n"), "{classic}");
        assert!(!classic.contains("# TYPE mlgate_http_requests counter"), "{classic}");
        let samples = |text: &str| -> Vec<String> {
            text.lines().filter(|l| !l.starts_with('#')).map(|l| l.rsplit_once(' ').unwrap().0.to_string()).collect()
        };
        assert_eq!(samples(&classic), samples(&openmetrics));
        // Every sample follows the # TYPE line of its family.
        let mut family = String::new();
        for line in classic.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                family = rest.split(' ').next().unwrap().to_string();
            } else if !line.starts_with('#') {
                let name = line.split(['{', ' ']).next().unwrap();
                let suffixes = ["", "_bucket", "_sum", "_count"];
                assert!(suffixes.iter().any(|s| name == format!("{family}{s}")), "{name} under {family}");
            }
        }
        // What the conversion drops, on a text prometheus_client does not write here.
        let text = "# HELP a_seconds Time.\n# TYPE a_seconds counter\n# UNIT a_seconds seconds\n\
                    a_seconds_total{l=\"x # {y}\"} 1 # {trace=\"1\"} 1.0\na_seconds_created 17\n# EOF\n";
        assert_eq!(
            classic_of(text),
            "# HELP a_seconds_total Time.\n# TYPE a_seconds_total counter\na_seconds_total{l=\"x # {y}\"} 1\n"
        );
    }

    fn classic_of(text: &str) -> String {
        classic(text)
    }

    /// A version's series, looked up once, count in the families' series that `/metrics` shows.
    #[test]
    fn a_versions_series_count_in_the_families_series() {
        let metrics = std::sync::Arc::new(Metrics::new(Some("churn")));
        // New series in every family at once: a family looked up twice in one statement would
        // wait on itself, and this thread would not answer.
        let (tx, rx) = std::sync::mpsc::channel();
        let m = metrics.clone();
        std::thread::spawn(move || tx.send(m.series("v7", Role::Canary)));
        let series = rx.recv_timeout(std::time::Duration::from_secs(10)).expect("the series within 10 s");
        series.scored(&[0.2, 0.9, 0.95], 2);
        series.took(0.25);
        // Looked up again, the same series.
        metrics.series("v7", Role::Canary).scored(&[0.1], 0);
        let text = metrics.render();
        for line in [
            "mlgate_records_scored_total{model=\"churn\",version=\"v7\",role=\"canary\"} 4",
            "mlgate_predictions_total{model=\"churn\",version=\"v7\",role=\"canary\",class=\"1\"} 2",
            "mlgate_predictions_total{model=\"churn\",version=\"v7\",role=\"canary\",class=\"0\"} 2",
            "mlgate_prediction_probability_count{model=\"churn\",version=\"v7\",role=\"canary\"} 4",
            "mlgate_scoring_duration_seconds_count{model=\"churn\",version=\"v7\",role=\"canary\"} 1",
        ] {
            assert!(text.contains(line), "no `{line}` in\n{text}");
        }
    }

    /// OpenMetrics for a scraper that asks for it first (Prometheus's own `Accept`), the classic
    /// format for every other client.
    #[test]
    fn the_format_is_negotiated_from_accept() {
        let prometheus = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        assert_eq!(Format::negotiate(Some(prometheus)), Format::OpenMetrics);
        assert_eq!(Format::negotiate(Some("application/openmetrics-text")), Format::OpenMetrics);
        assert_eq!(Format::negotiate(None), Format::Classic);
        assert_eq!(Format::negotiate(Some("*/*")), Format::Classic);
        assert_eq!(Format::negotiate(Some("text/plain;version=0.0.4")), Format::Classic);
        assert_eq!(Format::negotiate(Some("text/plain,application/openmetrics-text;q=0.5")), Format::Classic);
        assert_eq!(Format::negotiate(Some("application/openmetrics-text;q=0")), Format::Classic);
        assert_eq!(
            Format::negotiate(Some("text/plain;q=0.2, Application/OpenMetrics-Text; q=0.9")),
            Format::OpenMetrics
        );
    }

    /// The process's figures from proc(5)'s texts (a command name with spaces and parentheses),
    /// and from this process's own `/proc`.
    #[test]
    fn process_figures_are_read_from_proc() {
        let stat = "4242 (my (odd) name) S 1 4242 4242 0 -1 4194560 1500 0 0 0 250 50 0 0 20 0 9 0 12345 104857600 2560 18446744073709551615 1 1 0 0 0 0 0 4096 0 0 0 0 17 1 0 0 0 0 0";
        let boot = "cpu  1 2 3\nbtime 1700000000\nprocesses 9\n";
        let limits = "Limit                     Soft Limit           Hard Limit           Units\nMax open files            4096                 524288               files\n";
        let p = ProcessFigures::parse(stat, boot, limits, Some(12.0), 100.0, 4096.0).unwrap();
        assert_eq!(
            p,
            ProcessFigures {
                cpu_seconds: 3.0,
                resident_bytes: 2560.0 * 4096.0,
                virtual_bytes: 104857600.0,
                start_time_seconds: 1700000000.0 + 123.45,
                open_fds: Some(12.0),
                max_fds: Some(4096.0),
            }
        );
        assert_eq!(ProcessFigures::parse("garbage", boot, limits, None, 100.0, 4096.0), None);
        let unlimited = "Max open files            unlimited            unlimited            files\n";
        assert_eq!(ProcessFigures::parse(stat, boot, unlimited, None, 100.0, 4096.0).unwrap().max_fds, None);

        if std::path::Path::new("/proc/self/stat").exists() {
            let own = ProcessFigures::read().unwrap();
            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64();
            assert!(own.resident_bytes > 1e6 && own.virtual_bytes >= own.resident_bytes, "{own:?}");
            assert!(own.start_time_seconds <= now + 1.0 && own.start_time_seconds > now - 86400.0 * 365.0, "{own:?}");
            assert!(own.open_fds.unwrap() >= 3.0 && own.max_fds.unwrap() >= own.open_fds.unwrap(), "{own:?}");
            let text = Metrics::new(Some("churn")).render_as(Format::Classic);
            for name in [
                "process_cpu_seconds_total",
                "process_resident_memory_bytes",
                "process_virtual_memory_bytes",
                "process_start_time_seconds",
                "process_open_fds",
                "process_max_fds",
            ] {
                assert!(text.contains(&format!("\n{name}{{model=\"churn\"}} ")), "{name}: {text}");
            }
        }
    }

    /// Each `bin` is written as its bucket's `le`, every series carries `model`, and the outcomes
    /// follow the decision answered, not the probability.
    #[test]
    fn bins_match_buckets_and_every_series_names_its_model() {
        let metrics = Metrics::new(None);
        let unnamed = metrics.render();
        assert!(unnamed.contains("\nmlgate_registry_poll_errors_total{kind=\"timeout\"} 0\n"), "{unnamed}");
        assert!(!unnamed.contains("model="), "{unnamed}");
        metrics.name_model("churn");
        metrics.name_model("another");
        metrics.feedback_series("v2", Role::Baseline);
        metrics.joined("v2", Role::Baseline, 0.7, false, true);
        metrics.joined("v2", Role::Baseline, 0.0004, false, false);
        metrics.joined("v2", Role::Baseline, 1.0, true, false);
        let text = metrics.render();
        let all = series(&text);
        assert!(all.iter().all(|(_, l, _)| l.get("model").is_some_and(|m| m == "churn")), "{text}");
        let les: Vec<&String> = all
            .iter()
            .filter(|(n, l, _)| n == "mlgate_feedback_probability_bucket" && l["label"] == "0")
            .map(|(_, l, _)| &l["le"])
            .collect();
        let bins: Vec<String> = FEEDBACK_BUCKETS.iter().map(|&b| bin_label(b)).collect();
        assert_eq!(les.len(), bins.len() + 1);
        assert!(les.iter().zip(&bins).all(|(le, bin)| *le == bin), "{les:?} vs {bins:?}");
        let value = |name: &str, pairs: &[(&str, &str)]| {
            all.iter()
                .find(|(n, l, _)| n == name && pairs.iter().all(|(k, v)| l.get(*k).is_some_and(|x| x == v)))
                .map(|(_, _, x)| *x)
        };
        let outcome = |o: &str| value("mlgate_feedback_outcomes_total", &[("version", "v2"), ("outcome", o)]);
        assert_eq!(outcome("false_negative"), Some(1.0));
        assert_eq!(outcome("true_negative"), Some(1.0));
        assert_eq!(outcome("false_positive"), Some(1.0));
        assert_eq!(outcome("true_positive"), Some(0.0));
        let bin = |label: &str, bin: &str| {
            value("mlgate_feedback_probability_bin_total", &[("version", "v2"), ("label", label), ("bin", bin)])
        };
        assert_eq!(bin("1", "0.7"), Some(1.0));
        assert_eq!(bin("0", "0.001"), Some(1.0));
        assert_eq!(bin("0", "1.0"), Some(1.0));
        assert_eq!(bin("0", "0.5"), Some(0.0));
        for reason in ["malformed", "altered", "foreign", "expired", "duplicate"] {
            assert_eq!(value("mlgate_feedback_refused_total", &[("reason", reason)]), Some(0.0));
        }
        let version = env!("CARGO_PKG_VERSION");
        assert!(all.iter().any(|(n, l, x)| n == "mlgate_build_info" && l["version"] == version && *x == 1.0), "{text}");
        assert_eq!(value("mlgate_http_requests_in_flight", &[]), Some(0.0));
    }
}
