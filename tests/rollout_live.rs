//! `monitor --live` while a rollout is open, on a real Prometheus (Debian's `prometheus`) scraping
//! fake replicas: each a small exporter answering `/metrics` with the series `serve` exposes
//! during a rollout — `mlgate_rollout_info`, and by version and `role` the records scored, the
//! scoring failures, the scoring-time histogram, the joined feedback's outcomes, and in shadow
//! mode the pairs — their names and labels as `serve/metrics.rs` declares them, counters growing
//! at rates the test sets. One model per decision on the same Prometheus, each with its own real
//! registry (v1 in production, v2 the candidate): every decision is taken by the real binary and
//! carried out in the registry.

use std::path::{Path, PathBuf};
use std::time::Duration;

use model::lifecycle::registry::{Actor, Registry};
use model::lifecycle::rollout::{RolloutMode, RolloutStep};

use crate::live::{Line, Replica};
use crate::prom::Prometheus;
use crate::support::{mlgate, text};

/// `serve`'s buckets of `mlgate_scoring_duration_seconds`.
const DURATION_BUCKETS: [&str; 15] = [
    "0.0001", "0.00025", "0.0005", "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1.0",
    "2.5", "+Inf",
];

/// What one replica's version does, per second: records scored and failed, the time each batch
/// of one record takes, and joined feedback right and wrong.
#[derive(Clone, Copy)]
struct Side {
    records: f64,
    failures: f64,
    batch_seconds: f64,
    right: f64,
    wrong: f64,
}

const FAST: f64 = 0.0008;

fn side(records: f64, right: f64, wrong: f64) -> Side {
    Side { records, failures: 0.0, batch_seconds: FAST, right, wrong }
}

/// One replica of `model` following a rollout of v2 against v1: its exposition.
fn replica(model: &str, mode: RolloutMode, weight: u32, candidate: Side, baseline: Side, pairs: [f64; 4]) -> Replica {
    let mut lines = vec![Line::Gauge(
        format!(r#"mlgate_rollout_info{{model="{model}",baseline="v1",candidate="v2",mode="{mode}"}}"#),
        f64::from(weight),
    )];
    let role = match mode {
        RolloutMode::Canary => "canary",
        RolloutMode::Shadow => "shadow",
    };
    for (version, role, s) in [("v2", role, candidate), ("v1", "baseline", baseline)] {
        let l = format!(r#"model="{model}",version="{version}",role="{role}""#);
        lines.push(Line::Counter(format!("mlgate_records_scored_total{{{l}}}"), s.records));
        lines.push(Line::Counter(format!("mlgate_scoring_failures_total{{{l}}}"), s.failures));
        let batches = s.records + s.failures;
        for le in DURATION_BUCKETS {
            let within = le == "+Inf" || le.parse::<f64>().unwrap() >= s.batch_seconds;
            let n = if within { batches } else { 0.0 };
            lines.push(Line::Counter(format!(r#"mlgate_scoring_duration_seconds_bucket{{{l},le="{le}"}}"#), n));
        }
        lines.push(Line::Counter(format!("mlgate_scoring_duration_seconds_count{{{l}}}"), batches));
        lines.push(Line::Counter(format!("mlgate_scoring_duration_seconds_sum{{{l}}}"), batches * s.batch_seconds));
        for (outcome, n) in [
            ("true_positive", s.right * 0.4),
            ("true_negative", s.right * 0.6),
            ("false_positive", s.wrong * 0.5),
            ("false_negative", s.wrong * 0.5),
        ] {
            lines.push(Line::Counter(format!(r#"mlgate_feedback_outcomes_total{{{l},outcome="{outcome}"}}"#), n));
        }
    }
    if mode == RolloutMode::Shadow {
        for ((b, c), n) in
            [("true", "true"), ("true", "false"), ("false", "true"), ("false", "false")].into_iter().zip(pairs)
        {
            lines.push(Line::Counter(
                format!(
                    r#"mlgate_shadow_pairs_total{{model="{model}",baseline="v1",candidate="v2",baseline_correct="{b}",candidate_correct="{c}"}}"#
                ),
                n,
            ));
        }
    }
    Replica::start(lines)
}

/// A job: a registry with v1 in production and a rollout of v2, a configuration naming `model`
/// with its `[rollout]` section, and the three replicas of the model.
struct Job {
    dir: tempfile::TempDir,
    model: &'static str,
    replicas: Vec<Replica>,
}

fn actor() -> Actor {
    Actor {
        who: "tester".into(),
        when: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
        commit: None,
    }
}

/// `replicas`: each replica's candidate, baseline and pairs per second.
fn job(model: &'static str, rollout: &str, mode: RolloutMode, weight: u32, replicas: &[(Side, Side, [f64; 4])]) -> Job {
    let dir = tempfile::tempdir().unwrap();
    let registry = crate::registry_rules::four_versions(dir.path());
    registry.promote(Some("v1"), None, &actor()).unwrap();
    let config = crate::support::SMALL_CONFIG.replacen("name = \"small\"", &format!("name = \"{model}\""), 1)
        + "\n[rollout]\n"
        + rollout;
    std::fs::write(dir.path().join("job.toml"), config).unwrap();
    let replicas = replicas.iter().map(|&(c, b, p)| replica(model, mode, weight, c, b, p)).collect();
    Job { dir, model, replicas }
}

impl Job {
    fn registry(&self) -> Registry {
        Registry::open(self.dir.path().join("registry"))
    }

    /// Opens the rollout of v2 now, and moves it `steps_done` steps on.
    fn start(&self, mode: RolloutMode, steps: &[(u32, u64)], steps_done: usize) {
        let steps = steps.iter().map(|&(weight, pause_seconds)| RolloutStep { weight, pause_seconds }).collect();
        let registry = self.registry();
        registry.start_rollout(Some("v2"), mode, steps, &actor()).unwrap();
        for step in 0..steps_done {
            registry.step_rollout(step, "moved on by the test", &actor()).unwrap();
        }
    }

    /// `monitor --live` (the rollout analysed by default), with `flags`: exit code, stdout, stderr.
    fn analyse(&self, prometheus: &str, flags: &[&str], env: &[(&str, &str)]) -> (Option<i32>, String, String) {
        let mut args = vec!["monitor", "--live", "--prometheus", prometheus, "--config", "job.toml"];
        args.extend(["--registry", "registry"]);
        args.extend_from_slice(flags);
        let mut all = vec![("USER", "tester")];
        all.extend_from_slice(env);
        let out = mlgate(self.dir.path(), &args, &all);
        let (o, e) = text(&out);
        (out.status.code(), o, e)
    }

    fn out(&self) -> PathBuf {
        self.dir.path().join("target/monitor-live")
    }

    fn record(&self) -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(self.out().join("monitor.json")).unwrap()).unwrap()
    }

    fn report(&self) -> String {
        std::fs::read_to_string(self.out().join("report.md")).unwrap()
    }

    fn state(&self) -> model::lifecycle::registry::State {
        self.registry().state().unwrap()
    }

    /// The last event of the history: its action and reason.
    fn last_event(&self) -> (String, String) {
        let e = self.registry().history().unwrap().pop().unwrap();
        (e.action.to_string(), e.reason)
    }
}

fn check(path: &Path) -> Vec<String> {
    Registry::open(path.join("registry")).check().unwrap()
}

/// Every decision of the analysis, each on its own model, against the same Prometheus.
#[test]
fn each_decision_of_a_rollouts_analysis_is_taken_on_the_sums_of_every_replica_and_carried_out() {
    // Per second, per replica. Joined feedback of the canary spread unevenly over its replicas
    // (12, 4, 4): one replica alone never has what the three have together.
    let good = |records, right: f64| side(records, right, right * 0.15 / 0.85);
    let uneven = |weights: [f64; 3], candidate: &dyn Fn(f64) -> Side, baseline: Side| {
        weights.map(|w| (candidate(w), baseline, [0.0; 4])).to_vec()
    };
    let base = good(60.0, 20.0);
    let even = |w| good(3.0 * w, w); // the baseline's accuracy, 85 %
    let worse = |w| side(3.0 * w, w * 0.5, w * 0.5); // 50 %
    let failing = |w| Side { failures: 0.25 * 3.0 * w, ..good(3.0 * w, w) }; // 20 % of its records
    let slow = |w| Side { batch_seconds: 0.02, ..good(3.0 * w, w) };
    let w = [12.0, 4.0, 4.0];
    let canary = RolloutMode::Canary;
    let shadow = RolloutMode::Shadow;
    let pause = |p: &str| {
        format!(
            "min_feedback = 100\nsteps = [{{ weight = 10, pause = \"{p}\" }}, {{ weight = 50, pause = \"{p}\" }}]\n"
        )
    };
    let shadow_config = "mode = \"shadow\"\nmin_feedback = 100\nsteps = [{ pause = \"0s\" }]\n";
    let shadow_side = |pairs: [f64; 4]| {
        let n = pairs.iter().sum::<f64>();
        let s = side(n, 0.0, 0.0);
        (s, s, pairs)
    };
    let jobs = [
        job("waiting", &pause("1h"), canary, 10, &uneven(w, &even, base)),
        job(
            "thin",
            &pause("0s").replace("min_feedback = 100", "min_feedback = 100000"),
            canary,
            10,
            &uneven(w, &even, base),
        ),
        job("steady", &pause("0s"), canary, 10, &uneven(w, &even, base)),
        job("last", &pause("0s"), canary, 50, &uneven(w, &even, base)),
        job("worse", &pause("1h"), canary, 10, &uneven(w, &worse, base)),
        job("failing", &pause("0s"), canary, 10, &uneven(w, &failing, base)),
        job("slow", &pause("0s"), canary, 10, &uneven(w, &slow, base)),
        // Shadow: the pairs per second of each replica, both right, only the baseline, only the
        // candidate, neither.
        job("contradicted", shadow_config, shadow, 0, &[shadow_side([4.0, 2.0, 0.3, 0.7]); 3]),
        job("twin", shadow_config, shadow, 0, &[shadow_side([4.0, 1.0, 1.0, 1.0]); 3]),
    ];
    let ports: Vec<u16> = jobs.iter().flat_map(|j| j.replicas.iter().map(|r| r.port)).collect();
    let targets: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
    let Some(prometheus) = Prometheus::scraping(&targets, "250ms") else { return };
    prometheus.wait_for("count(mlgate_rollout_info)", ports.len() as f64);
    for j in &jobs {
        let (mode, steps, done) = match j.model {
            "contradicted" | "twin" => (shadow, vec![(0, 0)], 0),
            "waiting" | "worse" => (canary, vec![(10, 3600), (50, 3600)], 0),
            "last" => (canary, vec![(10, 0), (50, 0)], 1),
            _ => (canary, vec![(10, 0), (50, 0)], 0),
        };
        j.start(mode, &steps, done);
    }
    // Twelve seconds of the step: the canaries' 20 joined predictions a second make 240 in all,
    // and no replica alone reaches min_feedback = 100 on its 48 to 144.
    std::thread::sleep(Duration::from_secs(12));
    let by = |name: &str| jobs.iter().find(|j| j.model == name).unwrap();
    let github = crate::fake_github::FakeGitHub::start("");
    let env = [
        ("GITHUB_API_URL", github.url.as_str()),
        ("GITHUB_REPOSITORY", "acme/shop"),
        ("GITHUB_TOKEN", "installation-token"),
    ];

    // Waiting: nothing wrong, the pause of an hour not over. Exit 0, nothing changed.
    let j = by("waiting");
    let (code, o, e) = j.analyse(&prometheus.url, &[], &[]);
    assert_eq!(code, Some(0), "{o}{e}");
    assert!(o.contains("decision   wait") && o.contains("status     rollout waiting"), "{o}");
    let r = j.record();
    assert_eq!(r["decision"], "wait");
    assert!(r["outcome"]["reasons"][0].as_str().unwrap().contains("the pause of step 1 of 2 is not over"), "{r}");
    // The sums over the three replicas, in the window since the step started.
    let elapsed = r["rollout"]["elapsed_seconds"].as_f64().unwrap();
    assert!(elapsed >= 12.0, "{r}");
    for (side, rate) in [("candidate_figures", 20.0), ("baseline_figures", 60.0)] {
        let joined = r["rollout"][side]["joined"].as_f64().unwrap();
        assert!((joined / (rate * elapsed) - 1.0).abs() < 0.3, "{side}: {joined} joined in {elapsed} s at {rate}/s");
    }
    assert_eq!(r["rollout"]["replicas"]["at_weight"], 3);
    assert_eq!(j.state().rollout.unwrap().step, 0);
    assert_eq!(j.last_event().0, "rollout_start");

    // Too little feedback for min_feedback once the pause is over: inconclusive, exit 3.
    let j = by("thin");
    let (code, o, e) = j.analyse(&prometheus.url, &["--rollout"], &[]);
    assert_eq!(code, Some(3), "{o}{e}");
    assert!(o.contains("status     INCONCLUSIVE") && o.contains("of 100000 needed on each side"), "{o}");
    assert_eq!(j.record()["decision"], "inconclusive");
    assert!(j.report().contains("➖ not judged"), "{}", j.report());
    assert_eq!(j.state().rollout.unwrap().step, 0);

    // Equal accuracies (noise), no failure, the pause over: the next step, by compare-and-swap.
    let j = by("steady");
    let (code, o, e) = j.analyse(&prometheus.url, &[], &[]);
    assert_eq!(code, Some(0), "{o}{e}");
    assert!(
        o.contains("decision   step") && o.contains("Stepped: canary of v2 against v1 at 50 % (step 2 of 2)"),
        "{o}"
    );
    let r = j.record();
    let q = &r["rollout"]["quality"]["unpaired"];
    assert!(q["ci_low"].as_f64().unwrap() < 0.0 && q["ci_high"].as_f64().unwrap() > 0.0, "{r}");
    let rollout = j.state().rollout.unwrap();
    assert_eq!((rollout.step, rollout.weight), (1, 50));
    assert_eq!(r["registry"]["rollout"]["weight"], 50);
    let (action, reason) = j.last_event();
    assert_eq!(action, "rollout_step");
    assert!(reason.contains("live analysis: step 1 of 2 passed") && reason.contains("accuracy"), "{reason}");
    assert!(j.report().contains("⏩") && j.report().contains("| accuracy |"), "{}", j.report());

    // The last step passed: promoted, production moved, the history says why.
    let j = by("last");
    let (code, o, e) = j.analyse(&prometheus.url, &[], &[]);
    assert_eq!(code, Some(0), "{o}{e}");
    assert!(o.contains("decision   promote") && o.contains("Promoted v2 to production (was v1)"), "{o}");
    let state = j.state();
    assert_eq!(state.aliases["production"], "v2");
    assert!(state.rollout.is_none());
    let (action, reason) = j.last_event();
    assert_eq!(action, "rollout_promote");
    assert!(reason.contains("the last step (step 2 of 2) passed"), "{reason}");
    assert!(check(j.dir.path()).is_empty());

    // A significant drop of accuracy, during the pause: aborted at once, the candidate marked,
    // the alert issue opened.
    let j = by("worse");
    let (code, o, e) = j.analyse(&prometheus.url, &["--alert"], &env);
    assert_eq!(code, Some(1), "{o}{e}");
    assert!(o.contains("decision   abort") && o.contains("status     BREACH (rollout aborted)"), "{o}");
    assert!(o.contains("Aborted: every record goes back to v1, production unchanged; v2 is marked breached"), "{o}");
    let r = j.record();
    let q = &r["rollout"]["quality"]["unpaired"];
    assert!(q["ci_high"].as_f64().unwrap() < 0.0, "{r}");
    assert!(
        (q["candidate"].as_f64().unwrap() - 0.5).abs() < 0.01 && (q["baseline"].as_f64().unwrap() - 0.85).abs() < 0.01
    );
    let state = j.state();
    assert_eq!(state.aliases["production"], "v1");
    assert!(state.rollout.is_none() && state.breach_mark("v2").is_some());
    let (action, reason) = j.last_event();
    assert_eq!(action, "rollout_abort");
    assert!(reason.contains("quality failed") && reason.contains("a significant drop"), "{reason}");
    let issues = github.issues();
    assert_eq!(issues.len(), 1);
    assert!(
        issues[0]["title"].as_str().unwrap().contains("the rollout of worse v2 against v1 was aborted"),
        "{}",
        issues[0]
    );
    assert!(issues[0]["body"].as_str().unwrap().contains("Rollout of `worse` v2 against v1: aborted"));

    // A fifth of the candidate's records fail, none of the baseline's: the failure ratio aborts.
    let j = by("failing");
    let (code, o, e) = j.analyse(&prometheus.url, &[], &[]);
    assert_eq!(code, Some(1), "{o}{e}");
    let r = j.record();
    assert_eq!(r["rollout"]["error_ratio"]["verdict"], "failed", "{r}");
    assert!((r["rollout"]["candidate_figures"]["failure_rate"].as_f64().unwrap() - 0.2).abs() < 0.02, "{r}");
    assert!(j.last_event().1.contains("error ratio failed"), "{:?}", j.last_event());
    assert!(j.state().breach_mark("v2").is_some());

    // Each of the candidate's batches takes 20 ms, the baseline's under one: the latency aborts.
    let j = by("slow");
    let (code, o, e) = j.analyse(&prometheus.url, &[], &[]);
    assert_eq!(code, Some(1), "{o}{e}");
    assert_eq!(j.record()["rollout"]["latency_ratio"]["verdict"], "failed");
    assert_eq!(j.state().aliases["production"], "v1");

    // Shadow: paired on the same requests, the candidate wrong where the baseline is right far
    // more often than the reverse.
    let j = by("contradicted");
    let (code, o, e) = j.analyse(&prometheus.url, &[], &[]);
    assert_eq!(code, Some(1), "{o}{e}");
    let r = j.record();
    let paired = &r["rollout"]["quality"]["paired"];
    assert!(paired["accuracy"]["ci_high"].as_f64().unwrap() < 0.0, "{r}");
    assert!(paired["mcnemar"]["p_value"].as_f64().unwrap() < 1e-6, "{r}");
    let counts = &paired["counts"];
    let (only_b, only_c) = (counts["baseline_only"].as_f64().unwrap(), counts["candidate_only"].as_f64().unwrap());
    assert!((only_b / only_c - 2.0 / 0.3).abs() < 1.0, "{counts}");
    let report = j.report();
    assert!(report.contains("| baseline right |") && report.contains("McNemar's exact test"), "{report}");
    assert!(j.state().rollout.is_none() && j.state().breach_mark("v2").is_some());

    // Shadow, equal on the pairs (as often right alone each): its one step passes, promoted.
    let j = by("twin");
    let (code, o, e) = j.analyse(&prometheus.url, &[], &[]);
    assert_eq!(code, Some(0), "{o}{e}");
    assert_eq!(j.record()["decision"], "promote");
    assert_eq!(j.state().aliases["production"], "v2");

    // With the rollout closed, --rollout says there is none and exits 0; without it, the
    // production analysis runs as before.
    let (code, o, e) = by("twin").analyse(&prometheus.url, &["--rollout"], &[]);
    assert_eq!(code, Some(0), "{o}{e}");
    assert!(o.contains("no rollout is open"), "{o}");
    assert_eq!(by("twin").record()["status"], "no_rollout");
}
