//! `monitor --live` on a rollout that a real `serve` follows, scraped by a real Prometheus: the
//! analysis reads the series the server itself exposes (no fake exporter), and its decision is
//! carried out in the registry the server polls. Feedback is written so that the decision is
//! known beforehand whatever the two models: in canary mode every canary answer is contradicted
//! and every baseline answer confirmed (an abort); in shadow mode every record is labelled as the
//! candidate decided (it cannot be worse: a promotion).

use std::path::Path;
use std::time::Duration;

use model::lifecycle::registry::{Actor, Registry};
use model::lifecycle::rollout::{RolloutMode, RolloutStep};

use super::{ok, records, small_id_release, Server};
use crate::prom::Prometheus;
use crate::support::{mlgate, text};

fn now() -> Actor {
    let when = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    Actor { who: "tester".into(), when, commit: None }
}

/// v1 in production and v2 accepted beside it; `[rollout]` in the configuration.
fn two_versions(rollout: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let (dir, reg) = small_id_release();
    std::fs::write(dir.path().join("small.csv"), crate::support::small_csv(700)).unwrap();
    ok(dir.path(), &["build", "--config", "small.toml"]);
    ok(dir.path(), &["acceptance", "--config", "small.toml", "--registry", reg.to_str().unwrap()]);
    let config = std::fs::read_to_string(dir.path().join("small.toml")).unwrap() + "\n[rollout]\n" + rollout;
    std::fs::write(dir.path().join("small.toml"), config).unwrap();
    (dir, reg)
}

/// Posts `rounds` bodies of 100 records, a scrape apart (a counter's first value is not an
/// increase to Prometheus), and returns every prediction.
fn post_in_rounds(server: &Server, rounds: usize) -> Vec<serde_json::Value> {
    let all = records(&crate::support::small_csv(100 * rounds), false);
    let mut answered = Vec::new();
    for chunk in all["records"].as_array().unwrap().chunks(100) {
        let body = serde_json::to_vec(&serde_json::json!({ "records": chunk })).unwrap();
        let (status, answer) = server.post("/v1/predict", "application/json", &body);
        assert_eq!(status, 200, "{answer}");
        let answer: serde_json::Value = serde_json::from_str(&answer).unwrap();
        answered.extend(answer["predictions"].as_array().unwrap().iter().cloned());
        std::thread::sleep(Duration::from_millis(1200));
    }
    answered
}

/// `monitor --live` in `dir`: exit code, stdout and stderr, monitor.json.
fn analyse(dir: &Path, reg: &Path, prometheus: &str) -> (Option<i32>, String, serde_json::Value) {
    let args = ["monitor", "--live", "--prometheus", prometheus, "--config", "small.toml", "--registry"];
    let mut args = args.to_vec();
    args.push(reg.to_str().unwrap());
    let out = mlgate(dir, &args, &[("USER", "tester")]);
    let (o, e) = text(&out);
    let record = std::fs::read(dir.join("target/monitor-live/monitor.json")).unwrap_or_default();
    (out.status.code(), format!("{o}{e}"), serde_json::from_slice(&record).unwrap_or_default())
}

/// A label (`yes`/`no`) for a decision.
fn label(positive: bool) -> &'static str {
    if positive {
        "yes"
    } else {
        "no"
    }
}

#[test]
fn a_canary_whose_answers_are_contradicted_is_aborted_from_the_servers_own_series() {
    let (dir, reg) = two_versions("min_feedback = 100\nsteps = [{ weight = 50, pause = \"0s\" }]\n");
    let server = Server::start(&reg, &["--poll", "0.2"]);
    let Some(prometheus) = Prometheus::start(&[server.port]) else { return };
    let registry = Registry::open(&reg);
    let steps = vec![RolloutStep { weight: 50, pause_seconds: 0 }];
    registry.start_rollout(Some("v2"), RolloutMode::Canary, steps, &now()).unwrap();
    prometheus.wait_for(r#"mlgate_rollout_info{model="small",candidate="v2",mode="canary"}"#, 50.0);
    let answered = post_in_rounds(&server, 6);
    let thresholds = |v: &str| registry.artifact(v).unwrap().threshold.value;
    let (t1, t2) = (thresholds("v1"), thresholds("v2"));
    let items: Vec<serde_json::Value> = answered
        .iter()
        .map(|p| {
            let canary = p["role"] == "canary";
            let decided = p["probability"].as_f64().unwrap() >= if canary { t2 } else { t1 };
            serde_json::json!({"receipt": p["receipt"], "label": label(decided != canary)})
        })
        .collect();
    let canaries = answered.iter().filter(|p| p["role"] == "canary").count() as f64;
    assert!(canaries > 150.0 && canaries < 450.0, "{canaries} of 600 to the canary at 50 %");
    for chunk in items.chunks(200) {
        let (status, answer) = server.feedback(chunk);
        assert_eq!(status, 200, "{answer}");
        std::thread::sleep(Duration::from_millis(1200));
    }
    let joined = r#"sum(mlgate_feedback_outcomes_total{model="small",version="v2",role="canary"})"#;
    prometheus.wait_for(joined, canaries);
    std::thread::sleep(Duration::from_secs(2));
    let (code, out, record) = analyse(dir.path(), &reg, &prometheus.url);
    assert_eq!(code, Some(1), "{out}");
    let r = &record["rollout"];
    assert_eq!(r["decision"], "abort", "{record}");
    // The canary's figures come from its own series: every joined prediction wrong.
    assert!(r["candidate_figures"]["joined"].as_f64().unwrap() >= 100.0, "{record}");
    assert_eq!(r["candidate_figures"]["right"], 0, "{record}");
    assert_eq!(r["baseline_figures"]["accuracy"], 1.0, "{record}");
    assert!(r["candidate_figures"]["records"].as_f64().unwrap() >= 100.0, "{record}");
    assert!(r["latency_ratio"]["ratio"].is_number(), "{record}");
    assert_eq!(r["replicas"]["at_weight"], 1, "{record}");
    let state = registry.state().unwrap();
    assert!(state.rollout.is_none() && state.breach_mark("v2").is_some());
    assert_eq!(state.aliases["production"], "v1");
    // The server follows: the rollout gone from its series, the baseline answers alone.
    prometheus.wait_for(r#"absent(mlgate_rollout_info{model="small"})"#, 1.0);
}

#[test]
fn a_shadow_never_worse_than_the_baseline_is_promoted_from_the_servers_own_pairs() {
    let (dir, reg) = two_versions("mode = \"shadow\"\nmin_feedback = 100\nsteps = [{ pause = \"0s\" }]\n");
    let server = Server::start(&reg, &["--poll", "0.2"]);
    let Some(prometheus) = Prometheus::start(&[server.port]) else { return };
    let registry = Registry::open(&reg);
    let steps = vec![RolloutStep { weight: 0, pause_seconds: 0 }];
    registry.start_rollout(Some("v2"), RolloutMode::Shadow, steps, &now()).unwrap();
    prometheus.wait_for(r#"count(mlgate_rollout_info{model="small",candidate="v2",mode="shadow"})"#, 1.0);
    let answered = post_in_rounds(&server, 4);
    let t2 = registry.artifact("v2").unwrap().threshold.value;
    let items: Vec<serde_json::Value> = answered
        .iter()
        .map(|p| {
            let decided = p["shadow_probability"].as_f64().unwrap() >= t2;
            serde_json::json!({"receipt": p["receipt"], "label": label(decided)})
        })
        .collect();
    for chunk in items.chunks(200) {
        let (status, answer) = server.feedback(chunk);
        assert_eq!(status, 200, "{answer}");
        std::thread::sleep(Duration::from_millis(1200));
    }
    prometheus.wait_for(r#"sum(mlgate_shadow_pairs_total{model="small",candidate="v2"})"#, 400.0);
    std::thread::sleep(Duration::from_secs(2));
    let (code, out, record) = analyse(dir.path(), &reg, &prometheus.url);
    assert_eq!(code, Some(0), "{out}");
    let r = &record["rollout"];
    assert_eq!(r["decision"], "promote", "{record}");
    let counts = &r["quality"]["paired"]["counts"];
    assert_eq!(counts["baseline_only"], 0, "{record}");
    assert_eq!(counts["both_wrong"], 0, "{record}");
    assert_eq!(r["candidate_figures"]["accuracy"], 1.0, "{record}");
    let pairs = r["candidate_figures"]["joined"].as_f64().unwrap();
    assert!(pairs >= 300.0, "{record}");
    assert_eq!(registry.state().unwrap().aliases["production"], "v2");
    assert!(registry.state().unwrap().rollout.is_none());
}
