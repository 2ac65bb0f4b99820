//! `monitor --live` on a real Prometheus (Debian's `prometheus`) that scrapes replicas of two
//! models: each replica a small exporter on 127.0.0.1 answering `/metrics` with the series `serve`
//! exposes (every one with its `model`; feedback outcomes and probability bins as counters that
//! grow at rates the test sets), so that the figures Prometheus adds up are known beforehand.
//! The registries are real, built by the real binary.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::prom::Prometheus;
use crate::support::{mlgate, small_csv, text, SMALL_CONFIG};

/// A Prometheus scraping the fake replicas on `ports` every 250 ms.
fn start_prometheus(ports: &[u16]) -> Option<Prometheus> {
    let targets: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
    Prometheus::scraping(&targets, "250ms")
}

/// A line of an exposition: a gauge at its value, or a counter growing by `per_second`.
#[derive(Clone)]
pub(crate) enum Line {
    Gauge(String, f64),
    Counter(String, f64),
}

/// A fake replica: `/metrics` answers its lines, counters at `per_second × seconds since start`.
pub(crate) struct Replica {
    pub(crate) port: u16,
    stop: Arc<AtomicBool>,
}

impl Replica {
    pub(crate) fn start(lines: Vec<Line>) -> Replica {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        listener.set_nonblocking(true).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let start = Instant::now();
        std::thread::spawn(move || {
            while !stopped.load(Ordering::Relaxed) {
                let Ok((mut stream, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                };
                stream.set_nonblocking(false).unwrap();
                stream.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
                let mut request = Vec::new();
                let mut buf = [0u8; 1024];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                let t = start.elapsed().as_secs_f64();
                let body: String = lines
                    .iter()
                    .map(|l| match l {
                        Line::Gauge(s, v) => format!("{s} {v}\n"),
                        Line::Counter(s, rate) => format!("{s} {}\n", rate * t),
                    })
                    .collect();
                let _ = write!(
                    stream,
                    "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        Replica { port, stop }
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// What one replica of `model` serving `version` exposes.
#[derive(Clone, Default)]
struct Exposed {
    /// Joined feedback per second: true positives, true negatives, false positives, false negatives.
    outcomes: Option<[f64; 4]>,
    /// Prediction requests per second answered fast (under 0.1 s) and slowly (0.5 to 1 s).
    requests: Option<(f64, f64)>,
    /// The drifted share and the rows it was measured on.
    drift: Option<(f64, f64)>,
    /// Feedback counters of another version still in the window (not served any more).
    also: Option<(&'static str, [f64; 4])>,
}

/// The series of feedback joined for `model` `version` at `rates` (tp, tn, fp, fn per second):
/// the outcomes, and the probability bins (positives at 0.9 when predicted so, else 0.1).
fn feedback(model: &str, version: &str, [tp, tn, fp, fn_]: [f64; 4]) -> Vec<Line> {
    let base = format!("model=\"{model}\",version=\"{version}\"");
    let mut lines = Vec::new();
    for (outcome, rate) in
        [("true_positive", tp), ("true_negative", tn), ("false_positive", fp), ("false_negative", fn_)]
    {
        lines.push(Line::Counter(format!("mlgate_feedback_outcomes_total{{{base},outcome=\"{outcome}\"}}"), rate));
    }
    // Label 1: predicted positive (0.9) when a true positive, else missed (0.1); label 0 at 0.9
    // when a false positive, else 0.1.
    for (label, high, low) in [("1", tp, fn_), ("0", fp, tn)] {
        let mut cumulative = 0.0;
        for (le, n) in [("0.1", low), ("0.9", high), ("1", 0.0), ("+Inf", 0.0)] {
            cumulative += n;
            lines.push(Line::Counter(
                format!("mlgate_feedback_probability_bucket{{{base},label=\"{label}\",le=\"{le}\"}}"),
                cumulative,
            ));
            if le != "+Inf" {
                lines.push(Line::Counter(
                    format!("mlgate_feedback_probability_bin_total{{{base},label=\"{label}\",bin=\"{le}\"}}"),
                    n,
                ));
            }
        }
        lines.push(Line::Counter(format!("mlgate_feedback_probability_count{{{base},label=\"{label}\"}}"), cumulative));
    }
    lines
}

fn exposition(model: &str, version: &str, e: &Exposed) -> Vec<Line> {
    let mut lines =
        vec![Line::Gauge(format!("mlgate_model_info{{model=\"{model}\",version=\"{version}\",sha256=\"x\"}}"), 1.0)];
    if let Some(rates) = e.outcomes {
        lines.extend(feedback(model, version, rates));
    }
    if let Some((other, rates)) = e.also {
        lines.extend(feedback(model, other, rates));
    }
    if let Some((fast, slow)) = e.requests {
        let route = format!("model=\"{model}\",route=\"/v1/predict\"");
        lines.push(Line::Counter(format!("mlgate_http_requests_total{{{route},status=\"200\"}}"), fast + slow));
        for (le, n) in [("0.1", fast), ("0.25", fast), ("1", fast + slow), ("+Inf", fast + slow)] {
            lines.push(Line::Counter(format!("mlgate_http_request_duration_seconds_bucket{{{route},le=\"{le}\"}}"), n));
        }
    }
    if let Some((share, rows)) = e.drift {
        lines.push(Line::Gauge(format!("mlgate_drifted_features_share{{model=\"{model}\"}}"), share));
        lines.push(Line::Gauge(format!("mlgate_drift_window_rows{{model=\"{model}\"}}"), rows));
    }
    lines
}

/// A job folder with a registry where `name`'s v2 is in production and v1 before it.
struct Job {
    dir: tempfile::TempDir,
    name: String,
}

const LIVE: &str = "\n[monitor.live]\ninterval_seconds = 0.5\ncount = 2\nfailure_limit = 0\nwindow = \"20s\"\n";

impl Job {
    fn two_versions(name: &str, extra: &str) -> Job {
        let dir = tempfile::tempdir().unwrap();
        let config = SMALL_CONFIG.replacen("name = \"small\"", &format!("name = \"{name}\""), 1) + LIVE + extra;
        std::fs::write(dir.path().join("small.toml"), config).unwrap();
        let job = Job { dir, name: name.to_string() };
        for rows in [400, 500] {
            std::fs::write(job.dir.path().join("small.csv"), small_csv(rows)).unwrap();
            for step in ["build", "acceptance", "deploy"] {
                let mut args = vec![step, "--config", "small.toml"];
                if step != "build" {
                    args.extend(["--registry", "registry"]);
                }
                let out = mlgate(job.dir.path(), &args, &[("USER", "tester")]);
                let (o, e) = text(&out);
                assert_eq!(out.status.code(), Some(0), "{args:?}\n{o}{e}");
            }
        }
        job
    }

    fn registry(&self) -> PathBuf {
        self.dir.path().join("registry")
    }

    /// `monitor --live` against `prometheus`, with `flags`: its exit code, stdout and stderr.
    fn analyse(&self, prometheus: &str, flags: &[&str], env: &[(&str, &str)]) -> (Option<i32>, String, String) {
        let mut args = vec!["monitor", "--live", "--prometheus", prometheus, "--config", "small.toml"];
        args.extend(["--registry", "registry"]);
        args.extend_from_slice(flags);
        let mut all = vec![("USER", "tester")];
        all.extend_from_slice(env);
        let out = mlgate(self.dir.path(), &args, &all);
        let (o, e) = text(&out);
        (out.status.code(), o, e)
    }

    fn record(&self) -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(self.dir.path().join("target/monitor-live/monitor.json")).unwrap())
            .unwrap()
    }

    fn report(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("target/monitor-live/report.md")).unwrap()
    }

    fn state(&self) -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(self.registry().join("state.json")).unwrap()).unwrap()
    }

    fn production(&self) -> String {
        self.state()["aliases"]["production"].as_str().unwrap().to_string()
    }

    /// A figure of production at acceptance.
    fn accepted(&self, version: &str, metric: &str) -> f64 {
        let path = self.registry().join(format!("versions/{version}/metrics.json"));
        let record: serde_json::Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
        record["candidate"][metric].as_f64().unwrap()
    }

    /// Replicas of this model serving `version`, one per exposition.
    fn replicas(&self, version: &str, each: &[Exposed]) -> Vec<Replica> {
        each.iter().map(|e| Replica::start(exposition(&self.name, version, e))).collect()
    }
}

fn ports(groups: &[&[Replica]]) -> Vec<u16> {
    groups.iter().flat_map(|g| g.iter().map(|r| r.port)).collect()
}

/// A check's measured values in monitor.json.
fn values(record: &serde_json::Value, check: &str) -> Vec<f64> {
    let checks = record["outcome"]["checks"].as_array().unwrap();
    let c = checks.iter().find(|c| c["name"] == check).unwrap_or_else(|| panic!("no check {check} in {record}"));
    c["measurements"].as_array().unwrap().iter().filter_map(|m| m["value"].as_f64()).collect()
}

fn joined(model: &str, version: &str) -> String {
    format!(r#"sum(increase(mlgate_feedback_outcomes_total{{model="{model}",version="{version}"}}[20s]))"#)
}

const GOOD: [f64; 4] = [4.0, 5.0, 0.5, 0.5];
const CONTRADICTED: [f64; 4] = [0.0, 0.0, 5.0, 5.0];
const PERFECT: [f64; 4] = [5.0, 5.0, 0.0, 0.0];

#[test]
fn pooled_quality_of_three_replicas_breaches_and_rolls_back_and_another_model_is_untouched() {
    let fraud = Job::two_versions("fraud", "");
    let churn = Job::two_versions("churn", "");
    let feed = |rates| Exposed { outcomes: Some(rates), requests: Some((20.0, 0.0)), ..Exposed::default() };
    // fraud: one replica of three contradicted; churn, on the same Prometheus, healthy.
    let fraud_replicas = fraud.replicas("v2", &[feed(CONTRADICTED), feed(GOOD), feed(GOOD)]);
    let churn_replicas = churn.replicas("v2", &[feed(PERFECT), feed(PERFECT), feed(PERFECT)]);
    let Some(prometheus) = start_prometheus(&ports(&[&fraud_replicas, &churn_replicas])) else { return };
    // Enough joined feedback, and the window filled well past the scrape interval.
    prometheus.wait_for(&joined("fraud", "v2"), 400.0);
    prometheus.wait_for(&joined("churn", "v2"), 400.0);
    std::thread::sleep(Duration::from_secs(8));
    // All the feedback sent: per second, 0 + 9 + 9 right of 30; true positives 0 + 4 + 4,
    // false positives and negatives 5 + 0.5 + 0.5 each.
    let accuracy = 18.0 / 30.0;
    let f1 = 2.0 * 8.0 / (2.0 * 8.0 + 12.0);
    // ROC AUC from the bins: negatives at 0.1 (5 + 5 per second) below every positive at 0.9
    // (4 + 4), ties count half; negatives at 0.9 (5 + 0.5 + 0.5) tie with positives at 0.9.
    let (n1_low, n1_high, n0_low, n0_high) = (5.0 + 0.5 + 0.5, 8.0, 10.0, 6.0);
    let (n0, n1) = (n0_low + n0_high, n1_low + n1_high);
    let auc = (n0_low * (n1_high + 0.5 * n1_low) + n0_high * (0.5 * n1_high)) / (n0 * n1);
    assert!(fraud.accepted("v2", "accuracy") - 0.05 > accuracy, "the small model accepts above the live figure");

    let github = crate::fake_github::FakeGitHub::start("");
    let env = [
        ("GITHUB_API_URL", github.url.as_str()),
        ("GITHUB_REPOSITORY", "acme/shop"),
        ("GITHUB_TOKEN", "installation-token"),
    ];
    let (code, o, e) = fraud.analyse(&prometheus.url, &["--rollback-on-breach", "--alert"], &env);
    assert_eq!(code, Some(1), "{o}{e}");
    assert!(o.contains("status     BREACH"), "{o}");
    let record = fraud.record();
    for (check, expected) in [("accuracy", accuracy), ("f1", f1), ("roc_auc", auc)] {
        let got = values(&record, check);
        assert_eq!(got.len(), 2, "{check}: {record}");
        for v in got {
            assert!((v - expected).abs() < 0.01, "{check}: pooled {v}, all feedback {expected}");
        }
    }
    assert_eq!(record["status"], "breached");
    assert_eq!(record["outcome"]["breach"], true);
    // The target was judged before the rollback: accepted above v2's live figures, no live
    // figures of its own in the window.
    assert_eq!(record["rollback_target"]["target"], "v1");
    assert_eq!(record["rollback_target"]["allowed"], true, "{record}");
    assert_eq!(record["rolled_back_to"], "v1");
    assert!(o.contains("Rolled back production from v2 to v1"), "{o}");
    assert_eq!(fraud.production(), "v1");
    let report = fraud.report();
    assert!(
        report.contains("Live analysis of `fraud` v2: breached") && report.contains("Rollback target v1"),
        "{report}"
    );
    assert_eq!(github.issues().len(), 1);

    // churn, v2 on the same Prometheus, is healthy: fraud's breach does not reach it.
    let (code, o, e) = churn.analyse(&prometheus.url, &["--rollback-on-breach"], &[]);
    assert_eq!(code, Some(0), "{o}{e}");
    assert!(o.contains("status     healthy"), "{o}");
    for v in values(&churn.record(), "accuracy") {
        assert!((v - 1.0).abs() < 1e-9, "churn's pooled accuracy {v}");
    }
    assert_eq!(churn.production(), "v2");
}

#[test]
fn drift_alone_and_latency_alone_breach_and_alert_but_never_roll_back() {
    let job = Job::two_versions("small", "");
    let github = crate::fake_github::FakeGitHub::start("");
    let env = [
        ("GITHUB_API_URL", github.url.as_str()),
        ("GITHUB_REPOSITORY", "acme/shop"),
        ("GITHUB_TOKEN", "installation-token"),
    ];
    // Drift: 80 % of the features moved, measured on 500 rows by each replica; fast answers.
    let drifted = Exposed { drift: Some((0.8, 500.0)), requests: Some((20.0, 0.0)), ..Exposed::default() };
    // Latency: a third of the answers take 0.5 to 1 s; no drift.
    let slow = Exposed { drift: Some((0.0, 500.0)), requests: Some((20.0, 10.0)), ..Exposed::default() };
    for (what, exposed, check) in [("drift", drifted, "drifted_share"), ("latency", slow, "p99_latency_seconds")] {
        let replicas = job.replicas("v2", &[exposed.clone(), exposed.clone(), exposed]);
        let Some(prometheus) = start_prometheus(&ports(&[&replicas])) else { return };
        prometheus.wait_for(r#"sum(rate(mlgate_http_requests_total{model="small"}[20s]))"#, 1.0);
        std::thread::sleep(Duration::from_secs(3));
        let (code, o, e) = job.analyse(&prometheus.url, &["--rollback-on-breach", "--alert"], &env);
        assert_eq!(code, Some(1), "{what}: {o}{e}");
        assert!(o.contains(check) && o.contains("BREACH (alert)"), "{what}: {o}");
        assert!(o.contains("No rollback: only checks that alert breached"), "{what}: {o}");
        assert!(o.contains("alert      "), "{what}: the alert is raised: {o}");
        let record = job.record();
        assert_eq!(record["outcome"]["breach"], true);
        assert_eq!(record["rolled_back_to"], serde_json::Value::Null);
        let failed = record["outcome"]["failed"].as_array().unwrap();
        assert_eq!(failed.len(), 1, "{what}: only {check} breached: {failed:?}");
        assert!(job.report().contains("No rollback: only checks that alert breached"), "{what}");
        assert_eq!(job.production(), "v2", "{what} never rolls back");
    }
    assert!(!github.issues().is_empty());
}

#[test]
fn a_blind_or_foreign_prometheus_is_inconclusive_and_keeps_the_breach_count() {
    // A check of one's own whose answer is NaN: a failed measurement, named as such.
    let nan = "\n[[monitor.live.checks]]\nname = \"nan\"\nquery = 'vector(0) / vector(0)'\ncondition = \"< 1\"\n";
    let job = Job::two_versions("small", "");
    let Some(empty) = start_prometheus(&[]) else { return };
    // A breach first (drift, alert only): one breach counted.
    let drifted = Exposed { drift: Some((0.8, 500.0)), ..Exposed::default() };
    let replicas = job.replicas("v2", &[drifted.clone(), drifted.clone(), drifted]);
    let prometheus = start_prometheus(&ports(&[&replicas])).unwrap();
    prometheus.wait_for(r#"count(mlgate_drift_window_rows{model="small"})"#, 3.0);
    let (code, o, e) = job.analyse(&prometheus.url, &[], &[]);
    assert_eq!(code, Some(1), "{o}{e}");
    assert_eq!(job.state()["consecutive_breaches"], 1);

    // Nothing scraped at all: exit 3, recorded as inconclusive, the count kept.
    let (code, o, e) = job.analyse(&empty.url, &["--rollback-on-breach"], &[]);
    assert_eq!(code, Some(3), "{o}{e}");
    assert!(o.contains("status     INCONCLUSIVE") && o.contains("no replica serving `small`"), "{o}");
    assert_eq!(job.record()["status"], "inconclusive");
    assert_eq!(job.state()["consecutive_breaches"], 1);
    assert_eq!(job.production(), "v2");
    // The last event: in state.json until it is surely in the history.
    let history = std::fs::read_to_string(job.registry().join("history.jsonl")).unwrap_or_default();
    let last = match &job.state()["last_event"] {
        serde_json::Value::Null => history.lines().last().unwrap_or_default().to_string(),
        event => event.to_string(),
    };
    assert!(last.contains("live analysis inconclusive"), "{last}");

    // Replicas serving v1 (production is v2), however bad their figures: inconclusive.
    let foreign = job.replicas("v1", &[Exposed { outcomes: Some(CONTRADICTED), ..Exposed::default() }]);
    let prometheus = start_prometheus(&ports(&[&foreign])).unwrap();
    prometheus.wait_for(&joined("small", "v1"), 100.0);
    let (code, o, e) = job.analyse(&prometheus.url, &["--rollback-on-breach"], &[]);
    assert_eq!(code, Some(3), "{o}{e}");
    assert!(o.contains("served as v1 on 1 replica(s) but production is v2"), "{o}");
    assert_eq!(job.state()["consecutive_breaches"], 1);
    assert_eq!(job.production(), "v2");

    // v2 served, but no figure of any check: inconclusive too.
    let quiet = job.replicas("v2", &[Exposed::default(), Exposed::default()]);
    let prometheus = start_prometheus(&ports(&[&quiet])).unwrap();
    prometheus.wait_for(r#"count(mlgate_model_info{model="small",version="v2"})"#, 2.0);
    let (code, o, e) = job.analyse(&prometheus.url, &[], &[]);
    assert_eq!(code, Some(3), "{o}{e}");
    assert!(o.contains("no check could be measured"), "{o}");
    assert!(job.report().contains("➖ no data"), "{}", job.report());
    assert_eq!(job.state()["consecutive_breaches"], 1);

    // A NaN answer is a failed measurement with its reason, in the report and monitor.json.
    std::fs::write(
        job.dir.path().join("small.toml"),
        std::fs::read_to_string(job.dir.path().join("small.toml")).unwrap() + nan,
    )
    .unwrap();
    let (code, o, e) = job.analyse(&prometheus.url, &[], &[]);
    assert_eq!(code, Some(1), "{o}{e}");
    assert!(o.contains("NaN") && o.contains("BREACH (alert)"), "{o}");
    assert!(job.report().contains("failed: Prometheus answered NaN"), "{}", job.report());
    let record = job.record();
    let m = &record["outcome"]["checks"].as_array().unwrap().iter().find(|c| c["name"] == "nan").unwrap()
        ["measurements"][0];
    assert_eq!(m["passed"], false);
    assert_eq!(m["reason"], "Prometheus answered NaN");
    assert_eq!(job.state()["consecutive_breaches"], 2);
}

#[test]
fn a_rollback_target_no_better_in_the_window_is_refused_and_the_alert_says_why() {
    let job = Job::two_versions("small", "");
    // v2 collapsed on its three replicas; a fourth replica, still on v1, shows v1 as bad.
    let collapsed = Exposed { outcomes: Some(CONTRADICTED), ..Exposed::default() };
    let v2 = job.replicas("v2", &[collapsed.clone(), collapsed.clone(), collapsed]);
    // v1's one replica gets as much feedback as v2's three: well above min_feedback in the window.
    let v1 = job.replicas("v1", &[Exposed { outcomes: Some([0.0, 0.0, 15.0, 15.0]), ..Exposed::default() }]);
    let Some(prometheus) = start_prometheus(&ports(&[&v2, &v1])) else { return };
    prometheus.wait_for(&joined("small", "v2"), 400.0);
    prometheus.wait_for(&joined("small", "v1"), 400.0);
    let github = crate::fake_github::FakeGitHub::start("");
    let env = [
        ("GITHUB_API_URL", github.url.as_str()),
        ("GITHUB_REPOSITORY", "acme/shop"),
        ("GITHUB_TOKEN", "installation-token"),
    ];
    let (code, o, e) = job.analyse(&prometheus.url, &["--rollback-on-breach", "--alert"], &env);
    assert_eq!(code, Some(1), "{o}{e}");
    assert!(o.contains("No rollback to v1") && o.contains("v1's live accuracy in the window"), "{o}");
    let record = job.record();
    assert_eq!(record["rollback_target"]["allowed"], false, "{record}");
    assert_eq!(record["rolled_back_to"], serde_json::Value::Null);
    assert_eq!(job.production(), "v2");
    let issues = github.issues();
    assert_eq!(issues.len(), 1);
    let body = issues[0]["body"].as_str().unwrap();
    assert!(body.contains("Rollback target v1: refused") && body.contains("No rollback to v1"), "{body}");
    // Served: v2 on three replicas and v1 on one, named.
    assert!(job.report().contains("v1 on 1 replica(s), v2 on 3 replica(s)"), "{}", job.report());
}

#[test]
fn the_alert_rules_pass_promtool_and_their_unit_tests() {
    let promtool = std::env::var_os("MLGATE_PROMTOOL").map(PathBuf::from).unwrap_or_else(|| "promtool".into());
    if Command::new(&promtool).arg("--version").output().map(|o| !o.status.success()).unwrap_or(true) {
        eprintln!("skipped: no `promtool` binary (.ci/run installs Debian's prometheus package)");
        return;
    }
    let folder = crate::support::root().join("deploy/prometheus");
    for args in
        [["check", "rules", "alerts.yml"], ["check", "config", "prometheus.yml"], ["test", "rules", "alerts_test.yml"]]
    {
        let out = Command::new(&promtool).args(args).current_dir(&folder).output().unwrap();
        let (o, e) = text(&out);
        assert!(out.status.success(), "promtool {args:?}\n{o}{e}");
    }
}

/// The anchors GitHub gives README.md's headings: lower case, spaces as `-`, punctuation but `-`
/// and `_` dropped.
fn readme_anchors() -> std::collections::BTreeSet<String> {
    let readme = std::fs::read_to_string(crate::support::root().join("README.md")).unwrap();
    readme
        .lines()
        .filter_map(|l| l.strip_prefix('#').map(|h| h.trim_start_matches('#').trim()))
        .map(|heading| {
            heading
                .to_lowercase()
                .chars()
                .filter_map(|c| match c {
                    ' ' => Some('-'),
                    c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
                    _ => None,
                })
                .collect()
        })
        .collect()
}

/// Every alert has a `severity` of critical or warning and a `runbook_url` to a section of
/// README.md that exists: the alert's own name.
#[test]
fn every_alert_has_a_severity_and_a_runbook_section_in_the_readme() {
    let anchors = readme_anchors();
    let path = crate::support::root().join("deploy/prometheus/alerts.yml");
    let docs = yaml_rust2::YamlLoader::load_from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut alerts = 0;
    for group in docs[0]["groups"].as_vec().unwrap() {
        for rule in group["rules"].as_vec().unwrap() {
            let Some(name) = rule["alert"].as_str() else { continue };
            alerts += 1;
            let severity = rule["labels"]["severity"].as_str().unwrap_or_default();
            assert!(["critical", "warning"].contains(&severity), "{name}: severity {severity:?}");
            let url = rule["annotations"]["runbook_url"].as_str().unwrap_or_else(|| panic!("{name}: no runbook_url"));
            let (page, anchor) = url.split_once('#').unwrap_or_else(|| panic!("{name}: {url} has no anchor"));
            assert!(page.ends_with("/README.md"), "{name}: {url}");
            assert_eq!(anchor, name.to_lowercase(), "{name}: {url}");
            assert!(anchors.contains(anchor), "{name}: README.md has no heading for #{anchor}");
        }
    }
    assert_eq!(alerts, 10);
}
