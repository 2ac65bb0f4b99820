//! A fleet as production runs one: SeaweedFS as the registry, three `serve` replicas of one model
//! on their own addresses (127.0.0.2–4) behind haproxy, a second model's replica beside them,
//! and one Prometheus scraping every replica. Feedback goes through the balancer with the
//! receipts the predictions carried; the live analysis judges the pooled figures.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use model::data::generate::customers_csv;

use super::{exchange_to, job, ok_with, records, release_to, Server, FEEDBACK_TOKEN};
use crate::prom::Prometheus;
use crate::support::{mlgate, stop_server, text};

/// haproxy (Debian's package) balancing round-robin over `backends`, as README "Several
/// replicas" configures it: health checks on `/readyz`, redispatch and layer-7 retries, and the
/// name of the replica that answered in `X-Mlgate-Replica`.
pub(super) struct Haproxy {
    child: Child,
    pub(super) port: u16,
    _dir: tempfile::TempDir,
}

impl Haproxy {
    pub(super) fn start(backends: &[(String, std::net::SocketAddr)]) -> Option<Haproxy> {
        let binary = std::env::var_os("MLGATE_HAPROXY").map(PathBuf::from).unwrap_or_else(|| "haproxy".into());
        if Command::new(&binary).arg("-v").output().map(|o| !o.status.success()).unwrap_or(true) {
            eprintln!("skipped: no `haproxy` binary (.ci/run installs Debian's haproxy package)");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let config = haproxy_config(port, backends);
        let path = dir.path().join("haproxy.cfg");
        std::fs::write(&path, config).unwrap();
        let check = Command::new(&binary).arg("-c").arg("-f").arg(&path).output().unwrap();
        assert!(check.status.success(), "haproxy -c: {}", String::from_utf8_lossy(&check.stderr));
        let child = Command::new(&binary)
            .arg("-db")
            .arg("-f")
            .arg(&path)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("log")).unwrap())
            .spawn()
            .unwrap();
        let balancer = Haproxy { child, port, _dir: dir };
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(30) {
            if balancer.call("GET", "/readyz", "", &[], b"").is_ok_and(|(s, _, _)| s == 200) {
                return Some(balancer);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("haproxy did not pass a request on port {port}");
    }

    pub(super) fn call(
        &self,
        method: &str,
        path: &str,
        content_type: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> std::io::Result<(u16, String, String)> {
        exchange_to(([127, 0, 0, 1], self.port).into(), method, path, content_type, headers, body)
    }
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        stop_server(&mut self.child);
    }
}

/// `deploy/haproxy/haproxy.cfg` (README "Several replicas") listening on 127.0.0.1:`port`, its
/// example servers replaced by `backends`.
fn haproxy_config(port: u16, backends: &[(String, std::net::SocketAddr)]) -> String {
    let shipped = std::fs::read_to_string(crate::support::root().join("deploy/haproxy/haproxy.cfg")).unwrap();
    assert!(shipped.contains("    bind *:8080\n"), "the shipped configuration binds *:8080");
    let mut config: String = shipped
        .lines()
        .filter(|l| !l.trim_start().starts_with("server "))
        .map(|l| if l.trim() == "bind *:8080" { format!("    bind 127.0.0.1:{port}\n") } else { format!("{l}\n") })
        .collect();
    for (name, addr) in backends {
        config.push_str(&format!("    server {name} {addr}\n"));
    }
    config
}

/// A job folder like [`job`] for another model: the same schema, named `name`.
fn job_named(name: &str, seed: u64) -> tempfile::TempDir {
    let dir = job(seed, "");
    let path = dir.path().join("pipeline.toml");
    let config = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, config.replacen("name = \"customer-purchase\"", &format!("name = \"{name}\""), 1)).unwrap();
    dir
}

/// Sums of `metric`'s samples in an exposition whose labels include every one of `labels`.
fn sum_of(exposition: &str, metric: &str, labels: &[(&str, &str)]) -> f64 {
    exposition
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            let (name, rest) = series.split_once('{').unwrap_or((series, ""));
            (name == metric && labels.iter().all(|(k, v)| rest.contains(&format!("{k}=\"{v}\""))))
                .then(|| value.parse::<f64>().ok())
                .flatten()
        })
        .sum()
}

/// One prediction made through the balancer.
struct Made {
    replica: String,
    prediction: u64,
    receipt: String,
}

#[test]
fn three_replicas_behind_haproxy_pool_their_feedback_and_roll_back_on_the_pooled_drop() {
    let Some(storage) = crate::registry_git::SeaweedFs::start("models") else { return };
    let env = storage.env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let shop = "s3://models/shop";
    let other = "s3://models/baskets";
    let _v1 = release_to(shop, 42, &env);
    let v2 = release_to(shop, 7, &env);
    let baskets = job_named("basket-abandon", 11);
    for step in ["acceptance", "deploy"] {
        if step == "acceptance" {
            ok_with(baskets.path(), &["build"], &env);
        }
        ok_with(baskets.path(), &[step, "--registry", other], &env);
    }

    // The replicas share a receipt key (through a file); each has its own address.
    let keys = tempfile::tempdir().unwrap();
    let key_file = keys.path().join("receipt.keys");
    std::fs::write(&key_file, "fleet-receipt-key-0123456789abcdef\n").unwrap();
    let key_arg = key_file.to_str().unwrap();
    let mut replicas: Vec<Server> = ["127.0.0.2", "127.0.0.3", "127.0.0.4"]
        .iter()
        .map(|host| {
            let listen = format!("{host}:0");
            Server::start_at(shop, &["--listen", &listen, "--poll", "0.5", "--receipt-key-file", key_arg], &env)
        })
        .collect();
    let other_listen = "127.0.0.5:0";
    let basket =
        Server::start_at(other, &["--listen", other_listen, "--poll", "0.5", "--receipt-key-file", key_arg], &env);
    for r in &replicas {
        assert_eq!(r.version(), "v2");
    }
    let backends: Vec<(String, std::net::SocketAddr)> =
        replicas.iter().enumerate().map(|(i, r)| (format!("r{}", i + 1), (r.host, r.port).into())).collect();
    let Some(balancer) = Haproxy::start(&backends) else { return };
    let mut targets: Vec<String> = replicas.iter().map(|r| format!("{}:{}", r.host, r.port)).collect();
    targets.push(format!("{}:{}", basket.host, basket.port));
    let Some(prometheus) = Prometheus::scraping(&targets, "1s") else { return };
    // Prometheus scrapes every replica before any traffic, as in production: the counters'
    // increases over the window start from its first samples.
    let start = Instant::now();
    while prometheus.query(r#"count(up{job="mlgate"} == 1)"#) != Some(targets.len() as f64) {
        assert!(start.elapsed() < Duration::from_secs(30), "Prometheus never scraped every replica");
        std::thread::sleep(Duration::from_millis(200));
    }

    // 600 predictions through the balancer, 10 records a request: each replica makes 200.
    let mut made: Vec<Made> = Vec::new();
    for i in 0..60 {
        let body = serde_json::to_vec(&records(&customers_csv(10, 1000 + i), false)).unwrap();
        let (status, head, answer) = balancer.call("POST", "/v1/predict", "application/json", &[], &body).unwrap();
        assert_eq!(status, 200, "{answer}");
        let replica = head
            .lines()
            .find_map(|l| l.strip_prefix("X-Mlgate-Replica: ").or_else(|| l.strip_prefix("x-mlgate-replica: ")))
            .unwrap_or_else(|| panic!("no replica named in {head}"))
            .trim()
            .to_string();
        let answer: serde_json::Value = serde_json::from_str(&answer).unwrap();
        for p in answer["predictions"].as_array().unwrap() {
            made.push(Made {
                replica: replica.clone(),
                prediction: p["prediction"].as_u64().unwrap(),
                receipt: p["receipt"].as_str().expect("every prediction carries a receipt").to_string(),
            });
        }
    }
    let per_replica = made.iter().fold(BTreeMap::<&str, usize>::new(), |mut m, p| {
        *m.entry(p.replica.as_str()).or_default() += 1;
        m
    });
    assert_eq!(per_replica.len(), 3, "{per_replica:?}");

    // Model B: 300 predictions, its feedback confirming each.
    let body = serde_json::to_vec(&records(&customers_csv(300, 77), false)).unwrap();
    let (status, answer) = basket.post("/v1/predict", "application/json", &body);
    assert_eq!(status, 200, "{answer}");
    let answer: serde_json::Value = serde_json::from_str(&answer).unwrap();
    let confirmed: Vec<serde_json::Value> = answer["predictions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| serde_json::json!({"receipt": p["receipt"], "label": p["prediction"] == 1}))
        .collect();
    let (status, answer) = basket.feedback(&confirmed);
    assert_eq!(status, 200, "{answer}");

    // Model A's feedback, through the balancer in batches of 50 that mix every replica's
    // receipts: r1's predictions contradicted, the others' confirmed.
    let first_contradiction = Instant::now();
    let mut joined = 0u64;
    let mut right = 0usize;
    for batch in made.chunks(50) {
        let items: Vec<serde_json::Value> = batch
            .iter()
            .map(|p| {
                let truth = if p.replica == "r1" { p.prediction == 0 } else { p.prediction == 1 };
                serde_json::json!({"receipt": p.receipt, "label": truth})
            })
            .collect();
        right += batch.iter().filter(|p| p.replica != "r1").count();
        let body = serde_json::to_vec(&serde_json::json!({ "feedback": items })).unwrap();
        let auth = format!("Bearer {FEEDBACK_TOKEN}");
        let (status, _, answer) =
            balancer.call("POST", "/v1/feedback", "application/json", &[("Authorization", &auth)], &body).unwrap();
        assert_eq!(status, 200, "{answer}");
        let answer: serde_json::Value = serde_json::from_str(&answer).unwrap();
        joined += answer["joined"].as_u64().unwrap();
    }
    let sent = made.len() as u64;
    assert!(joined * 100 >= sent * 99, "feedback through the balancer joined {joined} of {sent}");
    let truth_accuracy = right as f64 / made.len() as f64;
    // Every replica counted what it joined, under v2, whatever replica made the prediction.
    let pooled: f64 = replicas
        .iter()
        .map(|r| sum_of(&r.get("/metrics").1, "mlgate_feedback_outcomes_total", &[("version", "v2")]))
        .sum();
    assert_eq!(pooled as u64, joined);

    // Prometheus has scraped every replica's counters: sum of outcomes over the fleet.
    let start = Instant::now();
    let fleet = r#"sum(mlgate_feedback_outcomes_total{model="customer-purchase",version="v2"})"#;
    while prometheus.query(fleet) != Some(joined as f64) {
        assert!(start.elapsed() < Duration::from_secs(30), "Prometheus never saw the feedback");
        std::thread::sleep(Duration::from_millis(200));
    }
    let live =
        "\n[monitor.live]\ninterval_seconds = 0.5\ncount = 3\nfailure_limit = 1\nwindow = \"2m\"\nmin_feedback = 100\n";
    let analyse = |dir: &Path, registry: &str| {
        let mut all = vec![("USER", "tester")];
        all.extend_from_slice(&env);
        let out = mlgate(
            dir,
            &["monitor", "--live", "--prometheus", &prometheus.url, "--registry", registry, "--rollback-on-breach"],
            &all,
        );
        let (o, e) = text(&out);
        let record: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.join("target/monitor-live/monitor.json")).unwrap_or_default())
                .unwrap_or_default();
        (out.status.code(), format!("{o}{e}"), record)
    };
    // Model B is healthy, whatever A shows.
    let analyst_b = job_named("basket-abandon", 11);
    std::fs::write(
        analyst_b.path().join("pipeline.toml"),
        std::fs::read_to_string(analyst_b.path().join("pipeline.toml")).unwrap() + live,
    )
    .unwrap();
    let (code, out, _) = analyse(analyst_b.path(), other);
    assert_eq!(code, Some(0), "model B: {out}");
    // Model A breaches on its pooled accuracy, which is the accuracy of all feedback sent.
    let analyst_a = job(7, live);
    let (code, out, record) = analyse(analyst_a.path(), shop);
    assert_eq!(code, Some(1), "model A: {out}");
    let reported = pooled_accuracy(&record).unwrap_or_else(|| panic!("no pooled accuracy in {record:#}"));
    assert!((reported - truth_accuracy).abs() <= 0.01, "monitor --live says {reported}, the feedback {truth_accuracy}");
    assert_eq!(record["rolled_back_to"], "v1", "{out}");
    for r in &replicas {
        r.wait_for_version("v1", Duration::from_secs(30));
    }
    let took = first_contradiction.elapsed();
    eprintln!("from the first contradicting feedback to the last replica serving v1: {:.1} s", took.as_secs_f64());
    assert_eq!(basket.version(), "v1", "model B is untouched");

    // The breached version stays out: a plain deploy does not bring it back.
    let mut all = vec![("USER", "tester")];
    all.extend_from_slice(&env);
    let out = mlgate(v2.path(), &["deploy", "--registry", shop], &all);
    let (o, e) = text(&out);
    assert_ne!(out.status.code(), Some(0), "{o}{e}");
    let state = ok_with(v2.path(), &["registry", "--registry", shop, "--json"], &env);
    let state: serde_json::Value = serde_json::from_str(&state).unwrap();
    assert_eq!(state["aliases"]["production"], "v1");

    // A replica dies (SIGKILL) under load: the balancer's retries and health checks lose no
    // request.
    let failures = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let port = balancer.port;
    let clients: Vec<_> = (0..4)
        .map(|c| {
            let (failures, done) = (failures.clone(), done.clone());
            std::thread::spawn(move || {
                let body = serde_json::to_vec(&records(&customers_csv(5, 500 + c), false)).unwrap();
                let mut sent = 0u64;
                while !done.load(Ordering::Relaxed) {
                    match exchange_to(
                        ([127, 0, 0, 1], port).into(),
                        "POST",
                        "/v1/predict",
                        "application/json",
                        &[],
                        &body,
                    ) {
                        Ok((200, _, _)) => {}
                        _ => {
                            failures.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    sent += 1;
                }
                sent
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(1500));
    let mut dead = replicas.remove(1);
    // SAFETY: kill has no memory-safety preconditions; the pid is our own child's.
    unsafe { libc::kill(dead.child.id() as i32, libc::SIGKILL) };
    let _ = dead.child.wait();
    std::thread::sleep(Duration::from_secs(3));
    done.store(true, Ordering::Relaxed);
    let requests: u64 = clients.into_iter().map(|c| c.join().unwrap()).sum();
    assert!(requests > 100, "{requests}");
    let failed = failures.load(Ordering::Relaxed);
    let log = std::fs::read_to_string(balancer._dir.path().join("log")).unwrap_or_default();
    let errors: Vec<&str> = log.lines().filter(|l| l.contains(" 502 ") || l.contains(" 503 ")).collect();
    assert_eq!(failed, 0, "requests failed of {requests} while a replica died; haproxy:\n{}", errors.join("\n"));
    drop(dead);
}

/// The pooled live accuracy `monitor --live` reports in monitor.json: the last value its
/// `accuracy` check measured.
fn pooled_accuracy(record: &serde_json::Value) -> Option<f64> {
    let checks = record["outcome"]["checks"].as_array()?;
    let accuracy = checks.iter().find(|c| c["name"] == "accuracy")?;
    accuracy["measurements"].as_array()?.iter().rev().find_map(|m| m["value"].as_f64())
}
