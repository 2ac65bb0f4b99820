//! A whole rollout as production runs one, checked from outside: SeaweedFS as the registry,
//! three `serve` replicas (127.0.0.2–4) behind haproxy running `deploy/haproxy/haproxy.cfg`, a
//! real Prometheus scraping them, the Online Shoppers sessions (`../shared`; generated customers
//! when absent), `mlgate rollout` to start and `mlgate monitor --live` to judge and move it.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use super::fleet::Haproxy;
use super::{ok_with, records, Load, Server, FEEDBACK_TOKEN};
use crate::prom::Prometheus;
use crate::support::{mlgate, root, text};

/// The model's job folder: a configuration whose schema has an `id` column (`session`, the key
/// a canary's routing hashes) and its data with one, a short `[rollout]`.
struct Data {
    dir: tempfile::TempDir,
    /// The data rows (header first), `session` first, the label last.
    csv: Vec<String>,
    /// The label's positive spelling.
    positive: String,
}

const ROLLOUT: &str = "\n[rollout]\nmode = \"canary\"\n\
    steps = [{ weight = 20, pause = \"1s\" }, { weight = 50, pause = \"1s\" }]\nmin_feedback = 150\n";

fn data() -> Data {
    let dir = tempfile::tempdir().unwrap();
    let shared = root().join("../shared/data/online-shoppers/train.csv");
    let (config, csv, positive) = if shared.is_file() {
        let config = std::fs::read_to_string(root().join("configs/online-shoppers.toml")).unwrap();
        // Fewer trees than the shipped configuration: four builds in a test.
        let config = config.replace("max_iter = 300", "max_iter = 80");
        (config, std::fs::read_to_string(&shared).unwrap(), "TRUE".to_string())
    } else {
        eprintln!("note: no ../shared/data/online-shoppers: generated customers instead");
        let config = std::fs::read_to_string(root().join("pipeline.toml")).unwrap();
        (config, model::data::generate::customers_csv(10_000, 11), "yes".to_string())
    };
    // The session id: a column of kind `id` before the others.
    let first = config.find("[[schema.columns]]").unwrap();
    let mut config =
        format!("{}[[schema.columns]]\nname = \"session\"\nkind = \"id\"\n\n{}", &config[..first], &config[first..]);
    config = config
        .lines()
        .map(|l| {
            if l.starts_with("path = ") && l.contains(".csv") {
                "path = \"data.csv\"".to_string()
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    config.push_str(ROLLOUT);
    let csv: Vec<String> = csv
        .lines()
        .enumerate()
        .map(|(i, l)| if i == 0 { format!("session,{l}") } else { format!("s{i},{l}") })
        .collect();
    std::fs::write(dir.path().join("pipeline.toml"), &config).unwrap();
    std::fs::write(dir.path().join("data.csv"), csv.join("\n") + "\n").unwrap();
    Data { dir, csv, positive }
}

impl Data {
    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Build with split seed `seed` (and `gate` replacing the acceptance minimums, when given),
    /// then acceptance: the exit code of acceptance.
    fn candidate(&self, seed: u64, gate: Option<&str>, registry: &str, env: &[(&str, &str)]) -> Option<i32> {
        let path = self.path().join("pipeline.toml");
        let original = std::fs::read_to_string(&path).unwrap();
        let mut config = original.replace("seed = 42\n", &format!("seed = {seed}\n"));
        if let Some(gate) = gate {
            let section = config.find("[acceptance]").unwrap();
            let at = section + config[section..].find("\nmin = ").unwrap() + 1;
            let end = at + config[at..].find('\n').unwrap();
            config.replace_range(at..end, gate);
        }
        std::fs::write(&path, config).unwrap();
        ok_with(self.path(), &["build"], env);
        let out = mlgate(self.path(), &["acceptance", "--registry", registry], &with_user(env));
        std::fs::write(&path, original).unwrap();
        out.status.code()
    }

    /// `n` records from row `from` on (starting again at the first row past the last), as
    /// request bodies of 100 records.
    fn bodies(&self, from: usize, n: usize) -> Vec<Vec<u8>> {
        let count = self.csv.len() - 1;
        let rows: Vec<&str> = (from..from + n).map(|i| self.csv[1 + i % count].as_str()).collect();
        rows.chunks(100)
            .map(|chunk| {
                let csv = format!("{}\n{}\n", self.csv[0], chunk.join("\n"));
                serde_json::to_vec(&records(&csv, false)).unwrap()
            })
            .collect()
    }

    /// The label of session `id`.
    fn label(&self, id: &str) -> bool {
        let row: usize = id.strip_prefix('s').unwrap().parse().unwrap();
        self.csv[row].rsplit(',').next().unwrap() == self.positive
    }
}

fn with_user<'a>(env: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut all = vec![("USER", "tester")];
    all.extend_from_slice(env);
    all
}

/// `mlgate ARGS` in `dir`: exit code, stdout, stderr.
fn run(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, String, String) {
    let out = mlgate(dir, args, &with_user(env));
    let (o, e) = text(&out);
    (out.status.code(), o, e)
}

/// The contract's bucket, computed here independently of the servers.
fn to_candidate(candidate: &str, weight: u64, id: &str) -> bool {
    let hash = Sha256::digest(format!("{candidate}\0{id}").as_bytes());
    u64::from_be_bytes(hash[..8].try_into().unwrap()) % 10_000 < weight * 100
}

/// Posts `bodies` through `post`; every prediction.
fn predict(post: impl Fn(&[u8]) -> (u16, String), bodies: &[Vec<u8>]) -> Vec<serde_json::Value> {
    let mut all = Vec::new();
    for body in bodies {
        let (status, answer) = post(body);
        assert_eq!(status, 200, "{answer}");
        let answer: serde_json::Value = serde_json::from_str(&answer).unwrap();
        all.extend(answer["predictions"].as_array().unwrap().iter().cloned());
    }
    all
}

/// Waits until every replica exposes `series` (or, with `absent`, none does).
fn wait_for_metric(replicas: &[Server], series: &str, absent: bool) {
    let start = Instant::now();
    for r in replicas {
        while r.get("/metrics").1.contains(series) == absent {
            assert!(start.elapsed() < Duration::from_secs(30), "{series} (absent: {absent}): {}", r.log());
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Sends `items` as feedback through the balancer, 100 at a time; how many joined.
fn feedback(balancer: &Haproxy, items: &[serde_json::Value]) -> u64 {
    let auth = format!("Bearer {FEEDBACK_TOKEN}");
    let mut joined = 0;
    for chunk in items.chunks(100) {
        let body = serde_json::to_vec(&serde_json::json!({ "feedback": chunk })).unwrap();
        let (status, _, answer) =
            balancer.call("POST", "/v1/feedback", "application/json", &[("Authorization", &auth)], &body).unwrap();
        assert_eq!(status, 200, "{answer}");
        joined += serde_json::from_str::<serde_json::Value>(&answer).unwrap()["joined"].as_u64().unwrap();
    }
    joined
}

/// Waits until Prometheus's sum of the joined outcomes of `version` reaches `at_least`.
fn wait_for_scrape(prometheus: &Prometheus, model: &str, version: &str, at_least: f64) {
    let query = format!(r#"sum(mlgate_feedback_outcomes_total{{model="{model}",version="{version}"}})"#);
    let start = Instant::now();
    while prometheus.query(&query).unwrap_or(0.0) < at_least {
        assert!(start.elapsed() < Duration::from_secs(30), "Prometheus never saw {at_least} outcomes of {version}");
        std::thread::sleep(Duration::from_millis(200));
    }
    // One more scrape, so that every replica's last counts are in.
    std::thread::sleep(Duration::from_millis(1500));
}

#[test]
fn a_rollout_across_three_replicas_behind_haproxy_is_refused_routed_aborted_and_promoted() {
    let Some(storage) = crate::registry_git::SeaweedFs::start("models") else { return };
    let env = storage.env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let registry = "s3://models/rollout";
    let data = data();
    let dir = data.path();
    assert_eq!(data.candidate(42, None, registry, &env), Some(0));
    ok_with(dir, &["deploy", "--registry", registry], &env);
    assert_eq!(data.candidate(7, None, registry, &env), Some(0), "v2 passes");
    assert_eq!(data.candidate(9, Some("min = { roc_auc = 0.9999 }"), registry, &env), Some(1), "v3 fails");
    let model_name = std::fs::read_to_string(dir.join("pipeline.toml"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("name = \"").map(|n| n.trim_end_matches('"').to_string()))
        .unwrap();

    // A rollout of the failed version is refused, and nothing changes.
    let (code, o, e) = run(dir, &["rollout", "start", "--version", "v3", "--registry", registry], &env);
    assert_eq!(code, Some(1), "{o}{e}");
    assert!(e.contains("v3 did not pass acceptance") && e.contains("only a version whose verdict passed"), "{e}");

    let keys = tempfile::tempdir().unwrap();
    let key_file = keys.path().join("receipt.keys");
    std::fs::write(&key_file, "rollout-fleet-receipt-key-0123456789\n").unwrap();
    let key_arg = key_file.to_str().unwrap();
    let replicas: Vec<Server> = ["127.0.0.2", "127.0.0.3", "127.0.0.4"]
        .iter()
        .map(|host| {
            let listen = format!("{host}:0");
            let args = ["--listen", &listen, "--poll", "0.3", "--receipt-key-file", key_arg, "--model", &model_name];
            Server::start_at(registry, &args, &env)
        })
        .collect();
    let backends: Vec<(String, std::net::SocketAddr)> =
        replicas.iter().enumerate().map(|(i, r)| (format!("r{}", i + 1), (r.host, r.port).into())).collect();
    let Some(balancer) = Haproxy::start(&backends) else { return };
    let targets: Vec<String> = replicas.iter().map(|r| format!("{}:{}", r.host, r.port)).collect();
    let Some(prometheus) = Prometheus::scraping(&targets, "1s") else { return };
    let start = Instant::now();
    while prometheus.query(r#"count(up{job="mlgate"} == 1)"#) != Some(3.0) {
        assert!(start.elapsed() < Duration::from_secs(30), "Prometheus never scraped every replica");
        std::thread::sleep(Duration::from_millis(200));
    }
    let through = |body: &[u8]| {
        let (status, _, answer) = balancer.call("POST", "/v1/predict", "application/json", &[], body).unwrap();
        (status, answer)
    };
    let monitor = |flags: &[&str]| {
        let mut args = vec!["monitor", "--live", "--prometheus", &prometheus.url, "--registry", registry];
        args.extend_from_slice(flags);
        run(dir, &args, &env)
    };

    // Canary at 20 %: 5,000 records through the balancer.
    let (code, o, e) =
        run(dir, &["rollout", "start", "--canary", "20", "--version", "v2", "--registry", registry], &env);
    assert_eq!(code, Some(0), "{o}{e}");
    let info = format!(r#"mlgate_rollout_info{{model="{model_name}",baseline="v1",candidate="v2",mode="canary"}} 20"#);
    wait_for_metric(&replicas, &info, false);
    let bodies = data.bodies(0, 5000);
    let answered = predict(through, &bodies);
    assert_eq!(answered.len(), 5000);
    let by_candidate = answered.iter().filter(|p| p["version"] == "v2").count();
    let share = by_candidate as f64 / 5000.0;
    eprintln!("canary at 20 %: {by_candidate} of 5000 records answered by the candidate ({:.2} %)", 100.0 * share);
    assert!((share - 0.20).abs() <= 0.03, "{by_candidate} of 5000 by the candidate");
    // Each id gets the same version on every replica (asked directly), the one the hash says.
    let mut version_of: BTreeMap<String, String> = BTreeMap::new();
    for p in &answered {
        let id = p["id"].as_str().unwrap();
        let expected = if to_candidate("v2", 20, id) { "v2" } else { "v1" };
        assert_eq!(p["version"], expected, "{p}");
        version_of.insert(id.to_string(), expected.to_string());
    }
    for r in &replicas {
        for p in predict(|b| r.post("/v1/predict", "application/json", b), &bodies[..10]) {
            assert_eq!(p["version"].as_str(), version_of.get(p["id"].as_str().unwrap()).map(String::as_str), "{p}");
        }
    }

    // The candidate's answers contradicted by their feedback, the baseline's confirmed: aborted,
    // while clients post through the balancer.
    let items: Vec<serde_json::Value> = answered
        .iter()
        .map(|p| {
            let said = p["prediction"].as_u64().unwrap() == 1;
            let label = if p["version"] == "v2" { !said } else { said };
            serde_json::json!({ "receipt": p["receipt"], "label": label })
        })
        .collect();
    let joined = feedback(&balancer, &items);
    assert!(joined >= 4950, "{joined} of 5000 joined");
    wait_for_scrape(&prometheus, &model_name, "v2", by_candidate as f64 * 0.99);
    let load = Load::start(balancer.port, 3, bodies[0].clone());
    let (code, o, e) = monitor(&[]);
    assert_eq!(code, Some(1), "{o}{e}");
    assert!(o.contains("decision   abort"), "{o}");
    let state = |key: &str| {
        let (code, o, e) = run(dir, &["registry", "--json", "--registry", registry], &env);
        assert_eq!(code, Some(0), "{o}{e}");
        serde_json::from_str::<serde_json::Value>(&o).unwrap()[key].clone()
    };
    assert_eq!(state("aliases")["production"], "v1", "production unchanged");
    assert!(state("rollout").is_null());
    let versions = state("versions");
    let v2 = versions.as_array().unwrap().iter().find(|v| v["version"] == "v2").unwrap();
    assert!(v2["breached"].is_object(), "the candidate is marked: {v2}");
    wait_for_metric(&replicas, "mlgate_rollout_info{", true);
    std::thread::sleep(Duration::from_millis(500));
    let seen = load.finish();
    let failed: Vec<&(u16, String)> = seen.iter().filter(|(s, _)| *s != 200).collect();
    assert!(failed.is_empty(), "{} of {} failed: {:?}", failed.len(), seen.len(), &failed[..failed.len().min(5)]);
    let after = predict(through, &bodies[..3]);
    assert!(after.iter().all(|p| p["version"] == "v1"), "all traffic back to the baseline");

    // A good candidate, in shadow: every answer the baseline's, the report paired; then its
    // steps pass and it is promoted, every replica serving it.
    // v1's configuration built again (its artifact another, by its time of build): a candidate
    // as good as production. (Another seed's model was 0.02 less accurate on these sessions, and
    // the paired analysis rightly aborted it.)
    assert_eq!(data.candidate(42, None, registry, &env), Some(0), "v4 passes");
    let (code, o, e) = run(dir, &["rollout", "start", "--shadow", "--registry", registry], &env);
    assert_eq!(code, Some(0), "{o}{e}");
    assert!(o.contains("started a shadow of v4 against v1 (step 1 of 2)"), "{o}");
    let shadow = format!(r#"mlgate_rollout_info{{model="{model_name}",baseline="v1",candidate="v4",mode="shadow"}} 0"#);
    wait_for_metric(&replicas, &shadow, false);
    let mut report = String::new();
    for (round, decision) in ["step", "promote"].into_iter().enumerate() {
        // Prometheus samples the counters as the step found them before its traffic comes: a
        // step's figures are increases since it started.
        std::thread::sleep(Duration::from_millis(2500));
        let answered = predict(through, &data.bodies(5000 + 1000 * round, 1000));
        for p in &answered {
            assert_eq!((p["version"].as_str(), p["shadow_version"].as_str()), (Some("v1"), Some("v4")), "{p}");
        }
        let items: Vec<serde_json::Value> = answered
            .iter()
            .map(|p| serde_json::json!({ "receipt": p["receipt"], "label": data.label(p["id"].as_str().unwrap()) }))
            .collect();
        assert!(feedback(&balancer, &items) >= 990);
        wait_for_scrape(&prometheus, &model_name, "v4", 990.0 * (round + 1) as f64);
        let (code, o, e) = monitor(&["--rollout"]);
        report = std::fs::read_to_string(dir.join("target/monitor-live/report.md")).unwrap_or_default();
        eprintln!("shadow, step {}:\n{o}{e}\n{report}", round + 1);
        assert_eq!(code, Some(0), "{o}{e}");
        assert!(o.contains(&format!("decision   {decision}")), "{o}");
    }
    assert!(report.contains("McNemar"), "the report shows the paired comparison: {report}");
    assert_eq!(state("aliases")["production"], "v4");
    for r in &replicas {
        r.wait_for_version("v4", Duration::from_secs(20));
    }
    let after = predict(through, &bodies[..3]);
    assert!(after.iter().all(|p| p["version"] == "v4" && p.get("shadow_version").is_none()), "{after:?}");
}
