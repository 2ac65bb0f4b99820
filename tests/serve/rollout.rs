//! `serve` following a rollout of the registry (folder) it polls: a canary answers its share of
//! the records, the same ids on every replica; a shadow scores every record beside the baseline,
//! which answers; a promotion and an abort are followed while a client posts, without a failed
//! request. The rollouts are written through the library's registry, as `mlgate rollout` does.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use model::lifecycle::registry::{Actor, Registry};
use model::lifecycle::rollout::{RolloutMode, RolloutStep};
use sha2::{Digest, Sha256};

use super::{metric, ok, records, small_id_release, Load, Server};

fn actor() -> Actor {
    Actor { who: "tester".into(), when: "2026-12-05T00:00:00Z".into(), commit: None }
}

/// v1 in production (the small configuration, keyed by `id`), and v2 accepted beside it.
fn two_versions() -> (tempfile::TempDir, std::path::PathBuf) {
    let (dir, reg) = small_id_release();
    std::fs::write(dir.path().join("small.csv"), crate::support::small_csv(700)).unwrap();
    ok(dir.path(), &["build", "--config", "small.toml"]);
    ok(dir.path(), &["acceptance", "--config", "small.toml", "--registry", reg.to_str().unwrap()]);
    (dir, reg)
}

/// `n` rows of the small schema, their ids `{prefix}0…`.
fn rows(n: usize, prefix: &str) -> String {
    crate::support::small_csv(n)
        .lines()
        .enumerate()
        .map(|(i, line)| match i {
            0 => format!("{line}\n"),
            _ => format!("{prefix}{},{}\n", i - 1, line.split_once(',').unwrap().1),
        })
        .collect()
}

/// [`rows`] as `{"records": […]}` bodies of at most 100 records.
fn bodies(n: usize, prefix: &str) -> Vec<Vec<u8>> {
    let all = records(&rows(n, prefix), false);
    let all = all["records"].as_array().unwrap();
    all.chunks(100).map(|chunk| serde_json::to_vec(&serde_json::json!({ "records": chunk })).unwrap()).collect()
}

/// The predictions `server` answers to `bodies`.
fn predictions(server: &Server, bodies: &[Vec<u8>]) -> Vec<serde_json::Value> {
    let mut all = Vec::new();
    for body in bodies {
        let (status, answer) = server.post("/v1/predict", "application/json", body);
        assert_eq!(status, 200, "{answer}");
        let answer: serde_json::Value = serde_json::from_str(&answer).unwrap();
        all.extend(answer["predictions"].as_array().unwrap().iter().cloned());
    }
    all
}

/// Waits until `server`'s metrics hold `series` (or, with `absent`, no longer hold it).
fn wait_for_metric(server: &Server, series: &str, absent: bool) {
    let start = Instant::now();
    loop {
        let metrics = server.get("/metrics").1;
        if metrics.contains(series) != absent {
            return;
        }
        assert!(start.elapsed() < Duration::from_secs(20), "{series} (absent: {absent}): {metrics}\n{}", server.log());
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The contract's bucket, computed here independently of the server.
fn to_candidate(candidate: &str, weight: u64, id: &str) -> bool {
    let hash = Sha256::digest(format!("{candidate}\0{id}").as_bytes());
    u64::from_be_bytes(hash[..8].try_into().unwrap()) % 10_000 < weight * 100
}

/// What `mlgate predict` writes for the records of `bodies` with `version`'s artifact: id →
/// probability.
fn batch_probabilities(dir: &Path, reg: &Path, version: &str, n: usize, prefix: &str) -> BTreeMap<String, f64> {
    let renamed = rows(n, prefix);
    std::fs::write(dir.join("rows.csv"), renamed).unwrap();
    let model = reg.join(format!("versions/{version}/model.json"));
    ok(dir, &["predict", "--model", model.to_str().unwrap(), "--data", "rows.csv", "--out", "scored.csv"]);
    let scored = std::fs::read_to_string(dir.join("scored.csv")).unwrap();
    scored
        .lines()
        .skip(1)
        .map(|line| {
            let fields: Vec<&str> = line.split(',').collect();
            (fields[0].to_string(), fields[1].parse().unwrap())
        })
        .collect()
}

#[test]
fn a_canary_answers_its_share_by_id_on_every_replica_and_its_promotion_fails_no_request() {
    let (dir, reg) = two_versions();
    let a = Server::start(&reg, &["--poll", "0.2"]);
    let b = Server::start(&reg, &["--poll", "0.2"]);
    let registry = Registry::open(&reg);
    let steps = vec![RolloutStep { weight: 20, pause_seconds: 60 }, RolloutStep { weight: 50, pause_seconds: 60 }];
    registry.start_rollout(Some("v2"), RolloutMode::Canary, steps, &actor()).unwrap();
    let info = "mlgate_rollout_info{model=\"small\",baseline=\"v1\",candidate=\"v2\",mode=\"canary\"} 20";
    for server in [&a, &b] {
        wait_for_metric(server, info, false);
    }
    let bodies = bodies(1000, "c");
    let (from_a, from_b) = (predictions(&a, &bodies), predictions(&b, &bodies));
    let v1 = batch_probabilities(dir.path(), &reg, "v1", 1000, "c");
    let v2 = batch_probabilities(dir.path(), &reg, "v2", 1000, "c");
    let mut canary = 0;
    for (p, q) in from_a.iter().zip(&from_b) {
        let id = p["id"].as_str().unwrap();
        assert_eq!(q["id"], id);
        // The same id, the same version, on both replicas: the one the contract's hash says.
        let (version, role, expected) =
            if to_candidate("v2", 20, id) { ("v2", "canary", &v2) } else { ("v1", "baseline", &v1) };
        for answer in [p, q] {
            assert_eq!((answer["version"].as_str(), answer["role"].as_str()), (Some(version), Some(role)), "{answer}");
            assert_eq!(answer["probability"].as_f64().unwrap().to_bits(), expected[id].to_bits(), "{answer}");
        }
        canary += usize::from(version == "v2");
    }
    let share = canary as f64 / from_a.len() as f64;
    assert!((share - 0.2).abs() < 0.04, "{canary} of {} by the canary", from_a.len());
    let metrics = a.get("/metrics").1;
    let scored = metric(&metrics, "mlgate_records_scored_total{model=\"small\",version=\"v2\",role=\"canary\"}");
    assert_eq!(scored, Some(canary as f64), "{metrics}");

    // The next step, then the promotion, while a client posts to both.
    let one = bodies[0].clone();
    let (load_a, load_b) = (Load::start(a.port, 2, one.clone()), Load::start(b.port, 2, one));
    registry.step_rollout(0, "the first step passed", &actor()).unwrap();
    for server in [&a, &b] {
        wait_for_metric(server, &info.replace("} 20", "} 50"), false);
    }
    registry.promote_rollout("the last step passed", &actor()).unwrap();
    for server in [&a, &b] {
        server.wait_for_version("v2", Duration::from_secs(20));
        wait_for_metric(server, "mlgate_rollout_info{", true);
    }
    std::thread::sleep(Duration::from_millis(300));
    for (server, load) in [(&a, load_a), (&b, load_b)] {
        let seen = load.finish();
        let failed: Vec<&(u16, String)> = seen.iter().filter(|(s, _)| *s != 200).collect();
        assert!(failed.is_empty(), "{} of {} failed: {:?}", failed.len(), seen.len(), &failed[..failed.len().min(5)]);
        assert!(server.log().contains("rollout of v2 closed"), "{}", server.log());
    }
    // Every answer now comes from v2, as the baseline.
    let after = predictions(&a, &bodies[..1]);
    assert!(after.iter().all(|p| p["version"] == "v2" && p["role"] == "baseline"), "{after:?}");
}

#[test]
fn a_shadow_is_scored_beside_the_baseline_its_pairs_counted_and_its_abort_fails_no_request() {
    let (dir, reg) = two_versions();
    let server = Server::start(&reg, &["--poll", "0.2"]);
    let registry = Registry::open(&reg);
    let steps = vec![RolloutStep { weight: 0, pause_seconds: 60 }];
    registry.start_rollout(Some("v2"), RolloutMode::Shadow, steps, &actor()).unwrap();
    wait_for_metric(
        &server,
        "mlgate_rollout_info{model=\"small\",baseline=\"v1\",candidate=\"v2\",mode=\"shadow\"} 0",
        false,
    );
    let bodies = bodies(300, "s");
    let answered = predictions(&server, &bodies);
    let v1 = batch_probabilities(dir.path(), &reg, "v1", 300, "s");
    let v2 = batch_probabilities(dir.path(), &reg, "v2", 300, "s");
    let mut differ = 0;
    for p in &answered {
        let id = p["id"].as_str().unwrap();
        assert_eq!((p["version"].as_str(), p["role"].as_str()), (Some("v1"), Some("baseline")), "{p}");
        assert_eq!(p["probability"].as_f64().unwrap().to_bits(), v1[id].to_bits(), "{p}");
        assert_eq!(p["shadow_version"], "v2", "{p}");
        assert_eq!(p["shadow_probability"].as_f64().unwrap().to_bits(), v2[id].to_bits(), "{p}");
        differ += usize::from(v1[id] != v2[id]);
    }
    assert!(differ > 0, "v1 and v2 give the same probabilities: the test proves nothing");
    // A CSV answer says the same in its last columns.
    let csv = crate::support::small_csv(3);
    let (status, answer) = server.post("/v1/predict", "text/csv", csv.as_bytes());
    assert_eq!(status, 200, "{answer}");
    assert!(
        answer.starts_with("id,probability,prediction,receipt,version,role,shadow_version,shadow_probability\n"),
        "{answer}"
    );

    // The other protocols say the same: MLflow's arrays beside the predictions, the Open
    // Inference Protocol's outputs asked for by name.
    let few = records(&rows(3, "s"), false);
    let mlflow = serde_json::json!({ "dataframe_records": few["records"] });
    let (status, answer) = server.post("/invocations", "application/json", &serde_json::to_vec(&mlflow).unwrap());
    assert_eq!(status, 200, "{answer}");
    let answer: serde_json::Value = serde_json::from_str(&answer).unwrap();
    assert_eq!(answer["versions"], serde_json::json!(["v1", "v1", "v1"]), "{answer}");
    assert_eq!(answer["roles"], serde_json::json!(["baseline", "baseline", "baseline"]));
    assert_eq!(answer["shadow_version"], "v2");
    for (i, p) in answer["shadow_probabilities"].as_array().unwrap().iter().enumerate() {
        assert_eq!(p.as_f64().unwrap().to_bits(), v2[&format!("s{i}")].to_bits(), "{answer}");
    }
    let flat: Vec<String> = rows(3, "s")
        .lines()
        .skip(1)
        .flat_map(|line| line.split(',').take(5).map(String::from).collect::<Vec<_>>())
        .collect();
    let v2_body = serde_json::json!({
        "inputs": [{"name": "rows", "datatype": "BYTES", "shape": [3, 5], "data": flat}],
        "outputs": [{"name": "id"}, {"name": "version"}, {"name": "role"}, {"name": "shadow_version"}, {"name": "shadow_probability"}],
    });
    let (status, answer) =
        server.post("/v2/models/small/infer", "application/json", &serde_json::to_vec(&v2_body).unwrap());
    assert_eq!(status, 200, "{answer}");
    let answer: serde_json::Value = serde_json::from_str(&answer).unwrap();
    let output =
        |name: &str| answer["outputs"].as_array().unwrap().iter().find(|o| o["name"] == name).unwrap()["data"].clone();
    assert_eq!(output("version"), serde_json::json!(["v1", "v1", "v1"]), "{answer}");
    assert_eq!(output("role"), serde_json::json!(["baseline", "baseline", "baseline"]));
    assert_eq!(output("shadow_version"), serde_json::json!(["v2", "v2", "v2"]));
    for (id, p) in output("id").as_array().unwrap().iter().zip(output("shadow_probability").as_array().unwrap()) {
        assert_eq!(p.as_f64().unwrap().to_bits(), v2[id.as_str().unwrap()].to_bits(), "{answer}");
    }

    // Feedback: half by receipt, half by id; each joins the baseline's outcome and the shadow's,
    // and one pair; a receipt sent twice counts once.
    let items: Vec<serde_json::Value> = answered
        .iter()
        .take(100)
        .enumerate()
        .map(|(i, p)| {
            let label = if i % 3 == 0 { "yes" } else { "no" };
            if i % 2 == 0 {
                serde_json::json!({"receipt": p["receipt"], "label": label})
            } else {
                serde_json::json!({"id": p["id"], "label": label})
            }
        })
        .collect();
    let (status, answer) = server.feedback(&items);
    assert_eq!(status, 200, "{answer}");
    assert!(answer.contains("\"joined\":100"), "{answer}");
    let (_, again) = server.feedback(&items[..2]);
    assert!(again.contains("\"joined\":0"), "{again}");
    let metrics = server.get("/metrics").1;
    let sum = |prefix: &str| -> f64 {
        metrics
            .lines()
            .filter(|l| l.starts_with(prefix))
            .map(|l| l.rsplit_once(' ').unwrap().1.parse::<f64>().unwrap())
            .sum()
    };
    assert_eq!(sum("mlgate_shadow_pairs_total{model=\"small\",baseline=\"v1\",candidate=\"v2\","), 100.0, "{metrics}");
    assert_eq!(sum("mlgate_feedback_outcomes_total{model=\"small\",version=\"v1\",role=\"baseline\","), 100.0);
    assert_eq!(sum("mlgate_feedback_outcomes_total{model=\"small\",version=\"v2\",role=\"shadow\","), 100.0);

    // Aborted while a client posts: the baseline alone answers, production unchanged.
    let load = Load::start(server.port, 3, bodies[0].clone());
    registry.abort_rollout("the candidate is worse", true, &actor()).unwrap();
    wait_for_metric(&server, "mlgate_rollout_info{", true);
    std::thread::sleep(Duration::from_millis(300));
    let seen = load.finish();
    let failed: Vec<&(u16, String)> = seen.iter().filter(|(s, _)| *s != 200).collect();
    assert!(failed.is_empty(), "{} of {} failed: {:?}", failed.len(), seen.len(), &failed[..failed.len().min(5)]);
    assert!(seen.iter().all(|(_, v)| v == "v1"));
    let after = predictions(&server, &bodies[..1]);
    assert!(after.iter().all(|p| p.get("shadow_probability").is_none() && p["version"] == "v1"), "{after:?}");
}
