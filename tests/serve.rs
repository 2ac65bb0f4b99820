//! `cargo xtask serve` as production runs it: the real binary on 127.0.0.1, a registry written by
//! separate jobs (each in its own folder), requests over real sockets, and a real Prometheus
//! (Debian's `prometheus`) scraping it for `monitor --live`.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use model::data::generate::customers_csv;

use crate::support::{mlgate, mlgate_bin, root, stop_server, text};

/// A job folder: the repository's pipeline.toml (split seed `seed`, `extra` appended) and
/// generated customers.
fn job(seed: u64, extra: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("data")).unwrap();
    std::fs::write(dir.path().join("data/customers.csv"), customers_csv(3000, 11)).unwrap();
    let config = std::fs::read_to_string(root().join("pipeline.toml")).unwrap();
    let config = config.replace("seed = 42", &format!("seed = {seed}")) + extra;
    std::fs::write(dir.path().join("pipeline.toml"), config).unwrap();
    dir
}

fn ok(dir: &Path, args: &[&str]) -> String {
    ok_with(dir, args, &[])
}

/// [`ok`] with more environment (a remote registry's credentials).
fn ok_with(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> String {
    let mut all = vec![("USER", "tester")];
    all.extend_from_slice(env);
    let out = mlgate(dir, args, &all);
    let (o, e) = text(&out);
    assert_eq!(out.status.code(), Some(0), "xtask {args:?}\n{o}{e}");
    o
}

/// Build, accept and deploy in a fresh job folder: the next version of `registry` in production.
fn release(registry: &Path, seed: u64) -> tempfile::TempDir {
    release_to(registry.to_str().unwrap(), seed, &[])
}

/// [`release`] to a registry location of any kind, with the environment it needs.
fn release_to(registry: &str, seed: u64, env: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = job(seed, "");
    ok(dir.path(), &["build"]);
    ok_with(dir.path(), &["acceptance", "--registry", registry], env);
    ok_with(dir.path(), &["deploy", "--registry", registry], env);
    dir
}

/// A running `serve`, stopped by its process id when dropped.
struct Server {
    child: Child,
    port: u16,
    stderr: PathBuf,
    /// The line serve printed first (what it serves, where).
    started: String,
    _dir: tempfile::TempDir,
}

impl Server {
    fn start(registry: &Path, extra: &[&str]) -> Server {
        Server::start_at(registry.to_str().unwrap(), extra, &[])
    }

    fn start_at(registry: &str, extra: &[&str], env: &[(&str, &str)]) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let mut args = vec!["--registry", registry];
        args.extend_from_slice(extra);
        let cwd = dir.path().to_path_buf();
        Server::start_in(&cwd, &args, env, dir)
    }

    /// `serve --listen 127.0.0.1:0 ARGS…` run in `cwd`, ready; `dir` is kept for the server's log.
    fn start_in(cwd: &Path, args: &[&str], env: &[(&str, &str)], dir: tempfile::TempDir) -> Server {
        let server = Server::spawn_in(cwd, args, env, dir);
        server.wait_for("/readyz", 200, Duration::from_secs(60));
        server
    }

    /// [`Server::start_in`], answering but not necessarily ready (its registry may not answer).
    fn spawn_in(cwd: &Path, args: &[&str], env: &[(&str, &str)], dir: tempfile::TempDir) -> Server {
        let stderr = dir.path().join("stderr");
        let mut child = Command::new(mlgate_bin())
            .args(["serve", "--listen", "127.0.0.1:0"])
            .args(args)
            .current_dir(cwd)
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx.recv_timeout(Duration::from_secs(60)).expect("serve prints its address");
        let port: u16 =
            line.trim().rsplit(':').next().and_then(|p| p.parse().ok()).unwrap_or_else(|| {
                panic!("no port in {line:?}: {}", std::fs::read_to_string(&stderr).unwrap_or_default())
            });
        let server = Server { child, port, stderr, started: line, _dir: dir };
        server.wait_for("/healthz", 200, Duration::from_secs(60));
        server
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    fn wait_for(&self, path: &str, status: u16, limit: Duration) {
        let start = Instant::now();
        while start.elapsed() < limit {
            if request(self.port, "GET", path, "", b"").is_ok_and(|(s, _)| s == status) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("{path} did not answer {status} within {limit:?}: {}", self.log());
    }

    fn get(&self, path: &str) -> (u16, String) {
        request(self.port, "GET", path, "", b"").unwrap()
    }

    fn post(&self, path: &str, content_type: &str, body: &[u8]) -> (u16, String) {
        request(self.port, "POST", path, content_type, body).unwrap()
    }

    /// Posts `{"feedback": items}`.
    fn feedback(&self, items: &[serde_json::Value]) -> (u16, String) {
        self.post(
            "/v1/feedback",
            "application/json",
            &serde_json::to_vec(&serde_json::json!({ "feedback": items })).unwrap(),
        )
    }

    fn version(&self) -> String {
        let (status, body) = self.get("/v1/model");
        assert_eq!(status, 200, "{body}");
        serde_json::from_str::<serde_json::Value>(&body).unwrap()["version"].as_str().unwrap().to_string()
    }

    /// Waits until `/v1/model` names `version`; the time it took.
    fn wait_for_version(&self, version: &str, limit: Duration) -> Duration {
        let start = Instant::now();
        while start.elapsed() < limit {
            if self.version() == version {
                return start.elapsed();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("the server did not serve {version} within {limit:?}: {}", self.log());
    }

    /// Waits until the log holds `text`.
    fn wait_for_log(&self, text: &str, limit: Duration) {
        let start = Instant::now();
        while !self.log().contains(text) {
            assert!(start.elapsed() < limit, "no {text:?} in the log within {limit:?}: {}", self.log());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Sends SIGTERM and waits for the exit: its code and how long it took.
    fn terminate_timed(mut self) -> (Option<i32>, Duration) {
        let start = Instant::now();
        // SAFETY: kill has no memory-safety preconditions; the pid is our own child's.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let limit = Duration::from_secs(30);
        while start.elapsed() < limit {
            if let Some(status) = self.child.try_wait().unwrap() {
                return (status.code(), start.elapsed());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("serve did not exit within {limit:?} of SIGTERM: {}", self.log());
    }

    /// Stops it with SIGTERM; its exit code.
    fn terminate(mut self) -> Option<i32> {
        stop_server(&mut self.child);
        self.child.wait().ok().and_then(|s| s.code())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        stop_server(&mut self.child);
    }
}

/// One HTTP/1.1 request on its own connection: the status and the body.
fn request(port: u16, method: &str, path: &str, content_type: &str, body: &[u8]) -> std::io::Result<(u16, String)> {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n");
    if !content_type.is_empty() {
        head.push_str(&format!("Content-Type: {content_type}\r\n"));
    }
    head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    stream.write_all(head.as_bytes())?;
    stream.write_all(body)?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer)?;
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let (head, body) = answer.split_once("\r\n\r\n").ok_or_else(|| std::io::Error::other("no header end"))?;
    let status = head.get(9..12).and_then(|s| s.parse().ok()).ok_or_else(|| std::io::Error::other("no status"))?;
    Ok((status, body.to_string()))
}

/// The rows of a CSV as JSON records: numbers as JSON numbers where they parse, else strings.
fn records(csv: &str, numbers: bool) -> serde_json::Value {
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let rows: Vec<serde_json::Value> = lines
        .map(|line| {
            let mut record = serde_json::Map::new();
            for (name, value) in header.iter().zip(line.split(',')) {
                let v = match (value.parse::<i64>(), value.parse::<f64>()) {
                    (Ok(n), _) if numbers => serde_json::json!(n),
                    (_, Ok(x)) if numbers => serde_json::json!(x),
                    _ => serde_json::json!(value),
                };
                record.insert(name.to_string(), v);
            }
            serde_json::Value::Object(record)
        })
        .collect();
    serde_json::json!({ "records": rows })
}

/// [`records`] with numbers as JSON numbers and the `TRUE`/`FALSE` column `boolean` as JSON
/// booleans, as a client's JSON carries them.
fn typed_records(csv: &str, boolean: &str) -> serde_json::Value {
    let mut body = records(csv, true);
    for record in body["records"].as_array_mut().unwrap() {
        let value = record[boolean] == "TRUE";
        record[boolean] = serde_json::json!(value);
    }
    body
}

fn metric(metrics: &str, series: &str) -> Option<f64> {
    metrics.lines().find(|l| l.starts_with(series)).and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

#[test]
fn predictions_over_http_are_the_ones_predict_writes() {
    let registry = tempfile::tempdir().unwrap();
    let reg = registry.path().join("registry");
    let job = release(&reg, 42);
    let server = Server::start(&reg, &["--poll", "0.5"]);
    assert_eq!(server.version(), "v1");

    // 60 held-back-like rows (another generator seed), scored by `predict` and over HTTP.
    let sessions = customers_csv(60, 99);
    std::fs::write(job.path().join("new.csv"), &sessions).unwrap();
    let artifact = reg.join("versions/v1/model.json");
    ok(job.path(), &["predict", "--model", artifact.to_str().unwrap(), "--data", "new.csv", "--out", "scored.csv"]);
    let batch = std::fs::read_to_string(job.path().join("scored.csv")).unwrap();
    let expected: Vec<(f64, u8)> = batch
        .lines()
        .skip(1)
        .map(|l| {
            let (p, c) = l.split_once(',').unwrap();
            (p.parse().unwrap(), c.parse().unwrap())
        })
        .collect();
    for numbers in [false, true] {
        let body = serde_json::to_vec(&records(&sessions, numbers)).unwrap();
        let (status, answer) = server.post("/v1/predict", "application/json", &body);
        assert_eq!(status, 200, "{answer}");
        let answer: serde_json::Value = serde_json::from_str(&answer).unwrap();
        assert_eq!(answer["version"], "v1");
        assert_eq!(answer["model"], "customer-purchase");
        let got: Vec<(f64, u8)> = answer["predictions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| (p["probability"].as_f64().unwrap(), p["prediction"].as_u64().unwrap() as u8))
            .collect();
        assert_eq!(got.len(), expected.len());
        for (g, e) in got.iter().zip(&expected) {
            assert_eq!(g.0.to_bits(), e.0.to_bits(), "numbers as JSON numbers: {numbers}");
            assert_eq!(g.1, e.1);
        }
        // The schema has no id column: the server makes one per prediction, all distinct.
        let mut ids: Vec<&str> =
            answer["predictions"].as_array().unwrap().iter().map(|p| p["id"].as_str().unwrap()).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), expected.len());
    }
    // A CSV body answers what `predict` writes, byte for byte.
    let (status, csv) = server.post("/v1/predict", "text/csv", sessions.as_bytes());
    assert_eq!(status, 200, "{csv}");
    assert_eq!(csv, batch);

    // A record that breaks a rule: 422 naming the record, the column, the value and the rule;
    // nothing is scored.
    let mut bad = records(&sessions, false);
    bad["records"][3]["region"] = serde_json::json!("atlantis");
    bad["records"][5]["bogus"] = serde_json::json!(1);
    let scored_before = metric(&server.get("/metrics").1, "mlgate_records_scored_total{version=\"v1\"}").unwrap();
    let (status, answer) = server.post("/v1/predict", "application/json", &serde_json::to_vec(&bad).unwrap());
    assert_eq!(status, 422, "{answer}");
    let answer: serde_json::Value = serde_json::from_str(&answer).unwrap();
    let errors = answer["errors"].as_array().unwrap();
    assert_eq!(errors[0]["record"], 3);
    assert_eq!(errors[0]["column"], "region");
    assert_eq!(errors[0]["value"], "atlantis");
    assert_eq!(errors[0]["rule"], "undeclared_level");
    assert_eq!(errors[1]["record"], 5);
    assert_eq!(errors[1]["rule"], "unknown_column");
    assert!(answer["predictions"].is_null());
    let metrics = server.get("/metrics").1;
    assert_eq!(metric(&metrics, "mlgate_records_scored_total{version=\"v1\"}"), Some(scored_before));
    assert_eq!(metric(&metrics, "mlgate_invalid_values_total{column=\"region\",rule=\"undeclared_level\"}"), Some(1.0));
    assert_eq!(
        metric(&metrics, "mlgate_invalid_values_total{column=\"(unknown)\",rule=\"unknown_column\"}"),
        Some(1.0)
    );
    assert!(!metrics.contains("column=\"bogus\""), "a client's key is no series name");
    // Malformed bodies and limits.
    assert_eq!(server.post("/v1/predict", "application/json", b"{\"records\": 3}").0, 400);
    assert_eq!(server.post("/v1/predict", "application/json", b"{\"records\": []}").0, 400);
    assert_eq!(server.post("/v1/predict", "application/json", &vec![b' '; 9 * 1024 * 1024]).0, 413);
    assert_eq!(server.get("/v1/predict").0, 405);
    assert_eq!(server.get("/nowhere").0, 404);

    // The model's identity and the metrics that name it.
    let (_, model) = server.get("/v1/model");
    let model: serde_json::Value = serde_json::from_str(&model).unwrap();
    let sha = model["sha256"].as_str().unwrap().to_string();
    assert_eq!(sha.len(), 64);
    assert!(model["metrics_at_acceptance"]["roc_auc"].as_f64().unwrap() > 0.5);
    let metrics = server.get("/metrics").1;
    assert!(
        metrics
            .contains(&format!("mlgate_model_info{{model=\"customer-purchase\",version=\"v1\",sha256=\"{sha}\"}} 1")),
        "{metrics}"
    );
    assert_eq!(metric(&metrics, "mlgate_records_scored_total{version=\"v1\"}"), Some(180.0));
    // The CSV body's scores are in the probability histogram too.
    assert_eq!(metric(&metrics, "mlgate_prediction_probability_count{version=\"v1\"}"), Some(180.0));
    assert!(metrics.contains("mlgate_http_request_duration_seconds_bucket{le=\"0.0001\",route=\"/v1/predict\"}"));
    assert!(metrics.contains("mlgate_http_requests_total{route=\"/v1/predict\",status=\"422\"} 1"));
    assert_eq!(server.get("/healthz").0, 200);

    // SIGTERM: drained, exit 0.
    assert_eq!(server.terminate(), Some(0));
}

#[test]
fn feedback_joins_predictions_and_feeds_the_live_metrics() {
    let registry = tempfile::tempdir().unwrap();
    let reg = registry.path().join("registry");
    let _job = release(&reg, 42);
    let server = Server::start(&reg, &["--poll", "0.2", "--prediction-log", "50", "--drift-window", "100"]);
    let sessions = customers_csv(80, 5);
    let body = serde_json::to_vec(&records(&sessions, false)).unwrap();
    let (status, answer) = server.post("/v1/predict", "application/json", &body);
    assert_eq!(status, 200, "{answer}");
    let answer: serde_json::Value = serde_json::from_str(&answer).unwrap();
    let predictions = answer["predictions"].as_array().unwrap();
    // Feedback for every prediction, the truth from the data; the log kept only the last 50.
    let truth: Vec<&str> = sessions.lines().skip(1).map(|l| l.rsplit(',').next().unwrap()).collect();
    let feedback: Vec<serde_json::Value> = predictions
        .iter()
        .zip(&truth)
        .enumerate()
        .map(|(i, (p, y))| {
            // Labels as the schema spells them, and as booleans.
            let label = if i % 2 == 0 { serde_json::json!(y) } else { serde_json::json!(*y == "yes") };
            serde_json::json!({"id": p["id"], "label": label})
        })
        .collect();
    let (status, answer) = server.feedback(&feedback);
    assert_eq!(status, 200, "{answer}");
    let answer: serde_json::Value = serde_json::from_str(&answer).unwrap();
    assert_eq!(answer["received"], 80);
    assert_eq!(answer["joined"], 50);
    assert_eq!(answer["unmatched"], 30);
    // The same feedback again: every id was joined already.
    let (_, again) = server.feedback(&feedback);
    assert!(again.contains("\"joined\":0"), "{again}");
    // A label that is no spelling of the label: 422, nothing recorded.
    let (status, answer) =
        server.post("/v1/feedback", "application/json", br#"{"feedback": [{"id": "x", "label": "maybe"}]}"#);
    assert_eq!(status, 422, "{answer}");
    assert!(answer.contains("not_a_label") && answer.contains("purchased"), "{answer}");

    // The live accuracy is the accuracy of the last 50 predictions against their truth.
    let expected_accuracy =
        predictions.iter().zip(&truth).skip(30).filter(|(p, y)| (p["prediction"] == 1) == (**y == "yes")).count()
            as f64
            / 50.0;
    let metrics = server.get("/metrics").1;
    assert_eq!(metric(&metrics, "mlgate_live_feedback_window{version=\"v1\"}"), Some(50.0));
    let live = metric(&metrics, "mlgate_live_accuracy{version=\"v1\"}").unwrap();
    assert!((live - expected_accuracy).abs() < 1e-12, "{live} vs {expected_accuracy}");
    assert_eq!(metric(&metrics, "mlgate_feedback_received_total"), Some(160.0));
    assert_eq!(metric(&metrics, "mlgate_feedback_joined_total"), Some(50.0));
    assert_eq!(metric(&metrics, "mlgate_prediction_log_evicted_total"), Some(30.0));
    assert!(metric(&metrics, "mlgate_live_roc_auc{version=\"v1\"}").is_some());
    // The rolling drift is measured by the poller on the recent records.
    let start = Instant::now();
    loop {
        let metrics = server.get("/metrics").1;
        if metric(&metrics, "mlgate_drift_window_rows") == Some(80.0)
            && metrics.contains("mlgate_feature_drift{feature=\"age\",statistic=\"psi\"}")
        {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(20), "no rolling drift: {metrics}\n{}", server.log());
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A bounded loopback load: `threads` clients posting one record at a time until stopped; each
/// answer's status and version.
struct Load {
    stop: Arc<AtomicBool>,
    seen: Arc<Mutex<Vec<(u16, String)>>>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Load {
    fn start(port: u16, threads: usize, body: Vec<u8>) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let body = Arc::new(body);
        let threads = (0..threads)
            .map(|_| {
                let (stop, seen, body) = (stop.clone(), seen.clone(), body.clone());
                std::thread::spawn(move || {
                    while !stop.load(Ordering::SeqCst) {
                        let answer = match request(port, "POST", "/v1/predict", "application/json", &body) {
                            Ok((status, answer)) => {
                                let v: serde_json::Value = serde_json::from_str(&answer).unwrap_or_default();
                                (status, v["version"].as_str().unwrap_or("").to_string())
                            }
                            Err(e) => (0, e.to_string()),
                        };
                        seen.lock().unwrap().push(answer);
                        std::thread::sleep(Duration::from_millis(2));
                    }
                })
            })
            .collect();
        Load { stop, seen, threads }
    }

    fn finish(self) -> Vec<(u16, String)> {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.threads {
            t.join().unwrap();
        }
        Arc::try_unwrap(self.seen).unwrap().into_inner().unwrap()
    }
}

#[test]
fn deploys_and_rollbacks_are_followed_under_load_without_a_failed_request() {
    let registry = tempfile::tempdir().unwrap();
    let reg = registry.path().join("registry");
    let _first = release(&reg, 42);
    let poll = 0.3;
    let server = Server::start(&reg, &["--poll", &poll.to_string()]);
    let one = serde_json::to_vec(&records(&customers_csv(1, 3), false)).unwrap();
    let load = Load::start(server.port, 4, one);
    // Another job deploys v2: served within two poll intervals (and the time to read it).
    let second = release(&reg, 7);
    let took = server.wait_for_version("v2", Duration::from_secs(20));
    eprintln!("v2 served {took:?} after its deploy returned (poll {poll} s)");
    let metrics = server.get("/metrics").1;
    assert!(metrics.contains("mlgate_model_info{model=\"customer-purchase\",version=\"v2\""), "{metrics}");
    assert!(!metrics.contains("version=\"v1\",sha256"), "the old version's info series is gone: {metrics}");
    std::thread::sleep(Duration::from_millis(500));
    ok(second.path(), &["rollback", "--registry", reg.to_str().unwrap()]);
    server.wait_for_version("v1", Duration::from_secs(20));
    std::thread::sleep(Duration::from_millis(500));
    let seen = load.finish();
    let failed: Vec<&(u16, String)> = seen.iter().filter(|(s, _)| *s != 200).collect();
    assert!(
        failed.is_empty(),
        "{} of {} requests failed: {:?}",
        failed.len(),
        seen.len(),
        &failed[..failed.len().min(5)]
    );
    let versions: std::collections::BTreeSet<&str> = seen.iter().map(|(_, v)| v.as_str()).collect();
    assert_eq!(versions.into_iter().collect::<Vec<_>>(), ["v1", "v2"], "{} requests", seen.len());
    assert_eq!(metric(&server.get("/metrics").1, "mlgate_model_swaps_total"), Some(3.0));
}

#[test]
fn an_artifact_that_fails_to_load_never_replaces_the_served_one() {
    let registry = tempfile::tempdir().unwrap();
    let reg = registry.path().join("registry");
    let _first = release(&reg, 42);
    let server = Server::start(&reg, &["--poll", "0.2"]);
    // v2 is registered, then its artifact is damaged in storage and the alias moved to it by
    // hand (what a bad sync or a hand edit of the bucket does).
    let second = job(7, "");
    ok(second.path(), &["build"]);
    ok(second.path(), &["acceptance", "--registry", reg.to_str().unwrap()]);
    let model = reg.join("versions/v2/model.json");
    let damaged = std::fs::read_to_string(&model).unwrap().replacen("\"threshold\"", "\"threshold_\"", 1);
    std::fs::write(&model, damaged).unwrap();
    let state_path = reg.join("state.json");
    let mut state: serde_json::Value = serde_json::from_slice(&std::fs::read(&state_path).unwrap()).unwrap();
    state["aliases"]["production"] = serde_json::json!("v2");
    std::fs::write(&state_path, serde_json::to_vec(&state).unwrap()).unwrap();
    let start = Instant::now();
    loop {
        let metrics = server.get("/metrics").1;
        if metric(&metrics, "mlgate_model_load_failures_total") == Some(1.0) {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(20), "no load failure counted: {}", server.log());
        std::thread::sleep(Duration::from_millis(50));
    }
    // Counted once, logged, and v1 keeps serving.
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(metric(&server.get("/metrics").1, "mlgate_model_load_failures_total"), Some(1.0));
    assert_eq!(server.version(), "v1");
    let one = serde_json::to_vec(&records(&customers_csv(1, 3), false)).unwrap();
    let (status, answer) = server.post("/v1/predict", "application/json", &one);
    assert_eq!(status, 200, "{answer}");
    assert!(answer.contains("\"version\":\"v1\""), "{answer}");
    let log = server.log();
    assert!(log.contains("cannot load v2") && log.contains("still serving v1"), "{log}");
    assert_eq!(server.get("/readyz").0, 200);
}

#[test]
fn a_server_without_a_production_model_is_alive_but_not_ready() {
    let registry = tempfile::tempdir().unwrap();
    let reg = registry.path().join("registry");
    std::fs::create_dir_all(&reg).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(mlgate_bin())
        .args(["serve", "--registry", reg.to_str().unwrap(), "--listen", "127.0.0.1:0", "--poll", "0.2"])
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(dir.path().join("stderr")).unwrap())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let port: u16 = line.trim().rsplit(':').next().unwrap().parse().unwrap();
    let start = Instant::now();
    while request(port, "GET", "/healthz", "", b"").is_err() {
        assert!(start.elapsed() < Duration::from_secs(20));
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(request(port, "GET", "/healthz", "", b"").unwrap().0, 200);
    assert_eq!(request(port, "GET", "/readyz", "", b"").unwrap().0, 503);
    assert_eq!(request(port, "POST", "/v1/predict", "application/json", b"{\"records\":[{}]}").unwrap().0, 503);
    // The first deploy is picked up.
    let _job = release(&reg, 42);
    let start = Instant::now();
    while request(port, "GET", "/readyz", "", b"").unwrap().0 != 200 {
        assert!(start.elapsed() < Duration::from_secs(20));
        std::thread::sleep(Duration::from_millis(20));
    }
    stop_server(&mut child);
    assert_eq!(child.wait().unwrap().code(), Some(0));
}

/// A real Prometheus on a free port of 127.0.0.1, scraping `targets` every second.
struct Prometheus {
    child: Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    fn start(targets: &[u16]) -> Option<Prometheus> {
        let binary = std::env::var_os("MLGATE_PROMETHEUS").map(PathBuf::from).unwrap_or_else(|| "prometheus".into());
        if Command::new(&binary).arg("--version").output().map(|o| !o.status.success()).unwrap_or(true) {
            eprintln!("skipped: no `prometheus` binary (.ci/run installs Debian's prometheus package)");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let targets: Vec<String> = targets.iter().map(|p| format!("\"127.0.0.1:{p}\"")).collect();
        let config = format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: mlgate\n    static_configs:\n      - targets: [{}]\n",
            targets.join(", ")
        );
        std::fs::write(dir.path().join("prometheus.yml"), config).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = Command::new(&binary)
            .arg(format!("--config.file={}", dir.path().join("prometheus.yml").display()))
            .arg(format!("--storage.tsdb.path={}", dir.path().join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("log")).unwrap())
            .spawn()
            .unwrap();
        let server = Prometheus { child, url: format!("http://127.0.0.1:{port}"), _dir: dir };
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(60) {
            if request(port, "GET", "/-/ready", "", b"").is_ok_and(|(s, _)| s == 200) {
                return Some(server);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("Prometheus did not become ready on port {port}");
    }

    /// The first sample of an instant query.
    fn query(&self, promql: &str) -> Option<f64> {
        let port: u16 = self.url.rsplit(':').next().unwrap().parse().unwrap();
        let encoded: String = promql
            .bytes()
            .map(|b| if b.is_ascii_alphanumeric() { (b as char).to_string() } else { format!("%{b:02X}") })
            .collect();
        let (_, body) = request(port, "GET", &format!("/api/v1/query?query={encoded}"), "", b"").ok()?;
        let v: serde_json::Value = serde_json::from_str(&body).ok()?;
        v["data"]["result"][0]["value"][1].as_str()?.parse().ok()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        stop_server(&mut self.child);
    }
}

#[test]
fn live_analysis_on_a_real_prometheus_rolls_back_when_live_accuracy_collapses() {
    let registry = tempfile::tempdir().unwrap();
    let reg = registry.path().join("registry");
    let _first = release(&reg, 42);
    let second = release(&reg, 7);
    let server = Server::start(&reg, &["--poll", "0.3"]);
    assert_eq!(server.version(), "v2");
    let Some(prometheus) = Prometheus::start(&[server.port]) else { return };
    let live = "\n[monitor.live]\ninterval_seconds = 0.5\ncount = 3\nfailure_limit = 1\nwindow = \"30s\"\n";
    let analyst = job(7, live);
    let reg_arg = reg.to_str().unwrap();
    // The alert issue goes to a local GitHub API.
    let github = crate::fake_github::FakeGitHub::start("");
    // Credentials in the URL (sent as Basic authentication, which this Prometheus ignores) are
    // never printed nor recorded.
    let token = "pr0m-t0ken-never-shown";
    let with_credentials = prometheus.url.replacen("http://", &format!("http://watcher:{token}@"), 1);
    let analyse = || {
        let out = mlgate(
            analyst.path(),
            &[
                "monitor",
                "--live",
                "--prometheus",
                &with_credentials,
                "--registry",
                reg_arg,
                "--rollback-on-breach",
                "--alert",
            ],
            &[
                ("USER", "tester"),
                ("GITHUB_API_URL", &github.url),
                ("GITHUB_REPOSITORY", "acme/shop"),
                ("GITHUB_TOKEN", "installation-token"),
            ],
        );
        let (o, e) = text(&out);
        assert!(!o.contains(token) && !e.contains(token), "{o}{e}");
        (out.status.code(), o, e)
    };

    // 300 predictions, then a trickle of single ones while Prometheus scrapes.
    let sessions = customers_csv(300, 21);
    let (status, answer) =
        server.post("/v1/predict", "application/json", &serde_json::to_vec(&records(&sessions, false)).unwrap());
    assert_eq!(status, 200, "{answer}");
    let answer: serde_json::Value = serde_json::from_str(&answer).unwrap();
    let one = serde_json::to_vec(&records(&customers_csv(1, 3), false)).unwrap();
    let start = Instant::now();
    while prometheus.query("sum(rate(mlgate_http_requests_total{route=\"/v1/predict\"}[30s]))").unwrap_or(0.0) <= 0.0 {
        assert!(start.elapsed() < Duration::from_secs(30), "Prometheus never scraped the server");
        assert_eq!(server.post("/v1/predict", "application/json", &one).0, 200);
        std::thread::sleep(Duration::from_millis(200));
    }
    // Healthy so far: no errors, fast answers, not enough feedback to judge accuracy.
    let (code, o, e) = analyse();
    assert_eq!(code, Some(0), "{o}{e}");
    assert!(o.contains("status     healthy"), "{o}");
    assert!(o.contains("accuracy_drop") && o.contains("no data"), "{o}");
    assert!(github.issues().is_empty(), "no alert while healthy");

    // Feedback that contradicts every prediction: live accuracy 0 over 300 joined.
    let feedback: Vec<serde_json::Value> = answer["predictions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| serde_json::json!({"id": p["id"], "label": p["prediction"] == 0}))
        .collect();
    let (status, answer) = server.feedback(&feedback);
    assert_eq!(status, 200, "{answer}");
    let start = Instant::now();
    while prometheus.query("mlgate_live_feedback_window{version=\"v2\"}") != Some(300.0) {
        assert!(start.elapsed() < Duration::from_secs(30), "Prometheus never saw the feedback");
        std::thread::sleep(Duration::from_millis(200));
    }
    let (code, o, e) = analyse();
    assert_eq!(code, Some(1), "{o}{e}");
    assert!(o.contains("status     BREACH"), "{o}");
    assert!(o.contains("Rolled back production from v2 to v1"), "{o}");
    // The alert issue is opened, with the analysis as its body.
    assert!(o.contains("alert      opened"), "{o}");
    let issues = github.issues();
    assert_eq!(issues.len(), 1);
    let body = issues[0]["body"].as_str().unwrap();
    assert!(body.contains("Live analysis of `customer-purchase` v2") && body.contains("accuracy_drop"), "{body}");
    let record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(analyst.path().join("target/monitor-live/monitor.json")).unwrap())
            .unwrap();
    assert_eq!(record["outcome"]["breach"], true);
    assert_eq!(record["rolled_back_to"], "v1");
    assert_eq!(record["prometheus"], prometheus.url);
    let report = std::fs::read_to_string(analyst.path().join("target/monitor-live/report.md")).unwrap();
    assert!(!report.contains(token) && !body.contains(token), "{report}");
    let failed = record["outcome"]["failed"].as_array().unwrap();
    assert!(failed.iter().any(|f| f.as_str().unwrap().starts_with("accuracy_drop")), "{failed:?}");
    // The registry is rolled back, with the reason in its history; the server follows.
    let registry = ok(second.path(), &["registry", "--registry", reg_arg, "--json"]);
    let registry: serde_json::Value = serde_json::from_str(&registry).unwrap();
    assert_eq!(registry["aliases"]["production"], "v1");
    let last = registry["history"].as_array().unwrap().last().unwrap().clone();
    assert!(last["reason"].as_str().unwrap().contains("live analysis breach"), "{last}");
    server.wait_for_version("v1", Duration::from_secs(10));
}

#[test]
fn an_id_column_names_the_predictions_and_sighup_reads_the_registry_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let config =
        crate::support::SMALL_CONFIG.replacen("name = \"id\"\nkind = \"ignore\"", "name = \"id\"\nkind = \"id\"", 1);
    assert!(config.contains("kind = \"id\""));
    std::fs::write(dir.path().join("small.toml"), &config).unwrap();
    std::fs::write(dir.path().join("small.csv"), crate::support::small_csv(400)).unwrap();
    let reg = dir.path().join("registry");
    let r = reg.to_str().unwrap();
    ok(dir.path(), &["build", "--config", "small.toml"]);
    ok(dir.path(), &["acceptance", "--config", "small.toml", "--registry", r]);
    ok(dir.path(), &["deploy", "--config", "small.toml", "--registry", r]);
    // Polling once an hour: only SIGHUP makes it read the registry again.
    let server = Server::start(&reg, &["--poll", "3600"]);
    let rows = crate::support::small_csv(30);
    std::fs::write(dir.path().join("new.csv"), &rows).unwrap();
    ok(
        dir.path(),
        &["predict", "--model", &format!("{r}/versions/v1/model.json"), "--data", "new.csv", "--out", "scored.csv"],
    );
    let batch = std::fs::read_to_string(dir.path().join("scored.csv")).unwrap();
    // Booleans as JSON booleans, numbers as numbers.
    let body = typed_records(&rows, "member");
    let (status, answer) = server.post("/v1/predict", "application/json", &serde_json::to_vec(&body).unwrap());
    assert_eq!(status, 200, "{answer}");
    let answer: serde_json::Value = serde_json::from_str(&answer).unwrap();
    for (p, line) in answer["predictions"].as_array().unwrap().iter().zip(batch.lines().skip(1)) {
        let fields: Vec<&str> = line.split(',').collect();
        assert_eq!(p["id"], fields[0]);
        assert_eq!(p["probability"].as_f64().unwrap().to_bits(), fields[1].parse::<f64>().unwrap().to_bits());
    }
    // A record without its id: 422 on the id column.
    let mut missing = records(&rows, false);
    missing["records"][2].as_object_mut().unwrap().remove("id");
    let (status, answer) = server.post("/v1/predict", "application/json", &serde_json::to_vec(&missing).unwrap());
    assert_eq!(status, 422, "{answer}");
    assert!(answer.contains("\"column\":\"id\"") && answer.contains("\"record\":2"), "{answer}");
    // A CSV body: the same output as predict, and its rows wait for feedback under their ids.
    let (status, csv) = server.post("/v1/predict", "text/csv", rows.as_bytes());
    assert_eq!(status, 200);
    assert_eq!(csv, batch);
    let feedback: Vec<serde_json::Value> = (0..30)
        .map(|i| serde_json::json!({"id": format!("r{i}"), "label": if i % 2 == 0 { "yes" } else { "no" }}))
        .collect();
    let (_, answer) = server.feedback(&feedback);
    assert!(answer.contains("\"joined\":30"), "{answer}");

    // v2 deployed; SIGHUP; served at once.
    std::fs::write(dir.path().join("small.csv"), crate::support::small_csv(500)).unwrap();
    ok(dir.path(), &["build", "--config", "small.toml"]);
    ok(dir.path(), &["acceptance", "--config", "small.toml", "--registry", r]);
    ok(dir.path(), &["deploy", "--config", "small.toml", "--registry", r]);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(server.version(), "v1");
    // SAFETY: kill has no memory-safety preconditions; the pid is our own child's.
    unsafe { libc::kill(server.child.id() as i32, libc::SIGHUP) };
    server.wait_for_version("v2", Duration::from_secs(10));
    assert!(server.log().contains("SIGHUP"), "{}", server.log());
}

#[test]
fn sessions_of_the_shared_data_served_get_the_probabilities_predict_writes() {
    let Some(train) = crate::support::shared_train_csv() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (config, reg) = (root().join("configs/online-shoppers.toml"), dir.path().join("registry"));
    let (c, t, r) = (config.to_str().unwrap(), train.to_str().unwrap(), reg.to_str().unwrap());
    ok(dir.path(), &["build", "--config", c, "--data", t, "--out", "model"]);
    ok(dir.path(), &["acceptance", "--config", c, "--model", "model/model.json", "--data", t, "--registry", r]);
    ok(dir.path(), &["deploy", "--config", c, "--registry", r]);
    let server = Server::start(&reg, &["--poll", "1"]);
    // The last 300 sessions, sent as a client's JSON would carry them: numbers as numbers, the
    // weekend flag as a boolean, the label left in (not read).
    let text = std::fs::read_to_string(&train).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let sessions = format!("{}\n{}\n", lines[0], lines[lines.len() - 300..].join("\n"));
    std::fs::write(dir.path().join("sessions.csv"), &sessions).unwrap();
    ok(dir.path(), &["predict", "--model", "model/model.json", "--data", "sessions.csv", "--out", "scored.csv"]);
    let batch = std::fs::read_to_string(dir.path().join("scored.csv")).unwrap();
    let body = typed_records(&sessions, "Weekend");
    let (status, answer) = server.post("/v1/predict", "application/json", &serde_json::to_vec(&body).unwrap());
    assert_eq!(status, 200, "{answer}");
    let answer: serde_json::Value = serde_json::from_str(&answer).unwrap();
    let got = answer["predictions"].as_array().unwrap();
    assert_eq!(got.len(), 300);
    for (p, line) in got.iter().zip(batch.lines().skip(1)) {
        let (probability, class) = line.split_once(',').unwrap();
        assert_eq!(
            p["probability"].as_f64().unwrap().to_bits(),
            probability.parse::<f64>().unwrap().to_bits(),
            "{line}"
        );
        assert_eq!(p["prediction"].to_string(), class);
    }
}

#[test]
fn live_analysis_needs_no_configuration_file_and_says_when_nothing_is_in_production() {
    let dir = tempfile::tempdir().unwrap();
    let reg = dir.path().join("registry");
    std::fs::create_dir_all(&reg).unwrap();
    let out = mlgate(
        dir.path(),
        &["monitor", "--live", "--prometheus", "http://127.0.0.1:9", "--registry", reg.to_str().unwrap()],
        &[],
    );
    let (o, e) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{o}{e}");
    assert!(o.contains("nothing to analyse yet: no model is in production"), "{o}");
    let record = std::fs::read_to_string(dir.path().join("target/monitor-live/monitor.json")).unwrap();
    assert!(record.contains("\"no_production\""), "{record}");
    // --live without --prometheus is a usage error.
    let out = mlgate(dir.path(), &["monitor", "--live", "--registry", reg.to_str().unwrap()], &[]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn a_client_that_stalls_is_cut_off_and_others_are_served() {
    let registry = tempfile::tempdir().unwrap();
    let reg = registry.path().join("registry");
    let _job = release(&reg, 42);
    let server = Server::start(&reg, &["--poll", "5", "--read-timeout", "0.5"]);
    // Headers begun, never finished.
    let mut stalled = std::net::TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    stalled.write_all(b"POST /v1/predict HTTP/1.1\r\nHost: x\r\n").unwrap();
    // A body announced, a tenth of it sent.
    let mut slow = std::net::TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    slow.write_all(b"POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"records\"").unwrap();
    // Meanwhile the server answers others.
    assert_eq!(server.get("/readyz").0, 200);
    std::thread::sleep(Duration::from_millis(1500));
    slow.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut answer = String::new();
    let _ = slow.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    stalled.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut rest = Vec::new();
    // The server closed it (end of stream, not our 5 s read timeout).
    let read = stalled.read_to_end(&mut rest);
    assert!(read.is_ok(), "the stalled connection is still open: {read:?}");
    assert!(!String::from_utf8_lossy(&rest).contains("200 OK"), "{}", String::from_utf8_lossy(&rest));
    assert_eq!(server.get("/healthz").0, 200);
}

#[test]
fn a_server_follows_a_registry_on_a_git_branch() {
    let remote = tempfile::tempdir().unwrap();
    let repo = remote.path().join("models.git");
    assert!(Command::new("git").args(["init", "-q", "--bare"]).arg(&repo).status().unwrap().success());
    let registry = format!("git+file://{}#mlgate-registry", repo.display());
    let _first = release_to(&registry, 42, &[]);
    // Each clone waits 1 s after the branch's commit was compared, so that the jobs below
    // mostly push within that wait.
    let server = Server::start_at(&registry, &["--poll", "0.3"], &[("MLGATE_REGISTRY_PAUSE_MS", "1000")]);
    assert_eq!(server.version(), "v1");
    // Polled several times, the unchanged branch is cloned once (its commit is compared).
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(metric(&server.get("/metrics").1, "mlgate_registry_reads_total"), Some(1.0));
    // Another job, another folder, the same remote branch.
    let _second = release_to(&registry, 7, &[]);
    server.wait_for_version("v2", Duration::from_secs(20));
    // What was cloned is what is compared next: a clone newer than the commit compared before
    // it is not cloned again.
    let reads = metric(&server.get("/metrics").1, "mlgate_registry_reads_total").unwrap();
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(metric(&server.get("/metrics").1, "mlgate_registry_reads_total"), Some(reads));
    let one = serde_json::to_vec(&records(&customers_csv(1, 3), false)).unwrap();
    let (status, answer) = server.post("/v1/predict", "application/json", &one);
    assert_eq!(status, 200, "{answer}");
    assert!(answer.contains("\"version\":\"v2\""), "{answer}");
}

#[test]
fn a_server_follows_a_registry_on_s3_compatible_storage() {
    let Some(storage) = crate::registry_git::SeaweedFs::start("models") else { return };
    let env = storage.env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let registry = "s3://models/serving";
    let _first = release_to(registry, 42, &env);
    // Each copy waits 1 s after state.json's ETag was compared, so that the jobs below mostly
    // write within that wait.
    let mut paused = env.clone();
    paused.push(("MLGATE_REGISTRY_PAUSE_MS", "1000"));
    let server = Server::start_at(registry, &["--poll", "0.3"], &paused);
    assert_eq!(server.version(), "v1");
    let second = release_to(registry, 7, &env);
    server.wait_for_version("v2", Duration::from_secs(30));
    // Unchanged objects are not copied again: the ETag of the state.json copied is compared,
    // not the one compared before the copy, which may be older.
    let reads = metric(&server.get("/metrics").1, "mlgate_registry_reads_total").unwrap();
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(metric(&server.get("/metrics").1, "mlgate_registry_reads_total"), Some(reads));
    // A candidate registered, production unchanged: the server reads the new state.json and no
    // file of any version.
    let files = metric(&server.get("/metrics").1, "mlgate_registry_file_reads_total").unwrap();
    let candidate = job(9, "");
    ok(candidate.path(), &["build"]);
    ok_with(candidate.path(), &["acceptance", "--registry", registry], &env);
    let start = Instant::now();
    while metric(&server.get("/metrics").1, "mlgate_registry_reads_total") == Some(reads) {
        assert!(start.elapsed() < Duration::from_secs(30), "the new state was never read: {}", server.log());
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(metric(&server.get("/metrics").1, "mlgate_registry_file_reads_total"), Some(files));
    assert_eq!(server.version(), "v2");
    ok_with(second.path(), &["rollback", "--registry", registry], &env);
    server.wait_for_version("v1", Duration::from_secs(30));
}

#[test]
fn a_batch_longer_than_max_records_is_refused_whole() {
    let registry = tempfile::tempdir().unwrap();
    let reg = registry.path().join("registry");
    let _job = release(&reg, 42);
    let server = Server::start(&reg, &["--poll", "5", "--max-records", "2"]);
    let three = serde_json::to_vec(&records(&customers_csv(3, 3), false)).unwrap();
    let (status, answer) = server.post("/v1/predict", "application/json", &three);
    assert_eq!(status, 413, "{answer}");
    assert!(answer.contains("3 records; at most 2 a request (--max-records)"), "{answer}");
    let two = serde_json::to_vec(&records(&customers_csv(2, 3), false)).unwrap();
    assert_eq!(server.post("/v1/predict", "application/json", &two).0, 200);
    let items: Vec<serde_json::Value> =
        (0..3).map(|i| serde_json::json!({"id": format!("x-{i}"), "label": true})).collect();
    let (status, answer) = server.feedback(&items);
    assert_eq!(status, 413, "{answer}");
    assert!(answer.contains("3 items; at most 2 a request"), "{answer}");
    assert_eq!(metric(&server.get("/metrics").1, "mlgate_feedback_received_total"), Some(0.0));
}

/// A registry whose production model reads an integer-coded categorical, `browser`, with
/// levels 1, 2 and 83 (83 buys), registered and deployed through the library.
fn browsers_registry(dir: &Path) -> PathBuf {
    let config = "name = \"browsers\"\n[data]\npath = \"b.csv\"\n[schema]\n\
        [[schema.columns]]\nname = \"amount\"\nkind = \"numeric\"\n\
        [[schema.columns]]\nname = \"browser\"\nkind = \"categorical\"\nlevels = [\"1\", \"2\", \"83\"]\n\
        [[schema.columns]]\nname = \"bought\"\nkind = \"label\"\npositive = \"yes\"\nnegative = \"no\"\n\
        [model]\nfamily = \"logistic_regression\"\n";
    let config = model::PipelineConfig::parse(config, Path::new("b.toml")).unwrap();
    let mut csv = String::from("amount,browser,bought\n");
    for i in 0..600 {
        let browser = ["1", "2", "83"][i % 3];
        let bought = if (browser == "83") != (i % 17 == 0) { "yes" } else { "no" };
        csv.push_str(&format!("{},{browser},{bought}\n", i % 50));
    }
    let data = model::read_csv(csv.as_bytes(), "b.csv", &config.schema, model::LabelPolicy::Required).unwrap();
    let artifact = model::pipeline::build::build(&config, &data, &Default::default()).unwrap();
    let registry = model::lifecycle::registry::Registry::open(dir.join("registry"));
    let actor =
        model::lifecycle::registry::Actor { who: "tester".into(), when: "2026-01-01T00:00:00Z".into(), commit: None };
    let verdict = model::lifecycle::registry::VerdictRecord {
        passed: true,
        artifact_sha256: artifact.checksum(),
        failed: Vec::new(),
        decided_at: "2026-01-01T00:00:00Z".into(),
    };
    registry.register(&artifact.to_bytes(), &verdict, |_| Vec::new(), &actor).unwrap();
    registry.promote(None, None, &actor).unwrap();
    dir.join("registry")
}

#[test]
fn a_categorical_level_sent_as_a_json_number_is_that_level() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&browsers_registry(dir.path()), &[]);
    let probability = |browser: serde_json::Value| {
        let body = serde_json::json!({ "records": [{ "amount": 7, "browser": browser }] });
        let (status, answer) = server.post("/v1/predict", "application/json", body.to_string().as_bytes());
        assert_eq!(status, 200, "{browser}: {answer}");
        let answer: serde_json::Value = serde_json::from_str(&answer).unwrap();
        answer["predictions"][0]["probability"].as_f64().unwrap()
    };
    let text = probability(serde_json::json!("83"));
    assert!(text > 0.5, "{text}");
    // 83 and 83.0 are the same JSON number: both are the level "83", as the CSV text 83 is.
    assert_eq!(probability(serde_json::json!(83)), text);
    assert_eq!(probability(serde_json::json!(83.0)), text);
    assert_eq!(probability(serde_json::json!(2.0)), probability(serde_json::json!("2")));
    // A number that is no level is refused as the CSV text would be.
    let body = br#"{"records": [{"amount": 7, "browser": 83.5}]}"#;
    let (status, answer) = server.post("/v1/predict", "application/json", body);
    assert_eq!(status, 422, "{answer}");
    assert!(answer.contains("83.5"), "{answer}");
}

/// Serves `alias` of an empty registry until its log says why nothing is served; the log.
fn log_of_an_empty_alias(alias: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let registry = dir.path().join("registry");
    std::fs::create_dir_all(&registry).unwrap();
    let stderr = dir.path().join("stderr");
    let mut child = Command::new(mlgate_bin())
        .args(["serve", "--registry", registry.to_str().unwrap(), "--alias", alias, "--listen", "127.0.0.1:0"])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&stderr).unwrap())
        .spawn()
        .unwrap();
    let start = Instant::now();
    let mut log = String::new();
    while !log.contains("error:") && start.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(50));
        log = std::fs::read_to_string(&stderr).unwrap_or_default();
    }
    stop_server(&mut child);
    log
}

#[test]
fn a_server_whose_alias_is_empty_says_what_sets_it() {
    let log = log_of_an_empty_alias("production");
    assert!(log.contains("no version is `production`"), "{log}");
    assert!(log.contains("`acceptance` registers candidates and `deploy` puts one in production"), "{log}");
    let log = log_of_an_empty_alias("v1");
    assert!(log.contains("`v1` is a version, not an alias: --alias takes `production` or `staging`"), "{log}");
    assert!(log.contains("deploy --version v1"), "{log}");
}

#[test]
fn serve_reads_the_pipeline_toml_here_as_every_command_does() {
    let job = job(42, "");
    ok(job.path(), &["build"]);
    ok(job.path(), &["acceptance"]);
    ok(job.path(), &["deploy"]);
    // No --registry, no --config: the configuration's [registry] path, taken from its folder.
    let server = Server::start_in(job.path(), &["--poll", "5"], &[], tempfile::tempdir().unwrap());
    assert_eq!(server.version(), "v1");
    let log = server.log();
    assert!(!log.contains("error"), "{log}");
}

/// Serves from a registry that accepts connections and never answers (`registry`, reached with
/// `env`): with a one-second limit each poll times out, which is logged once and counted, and
/// the server stays alive; with a limit far longer than the test, a poll is stuck when SIGTERM
/// comes, and the server still exits within `--drain` (2 s) plus a second, leaving no git
/// command behind. Returns the two exit times.
fn a_hung_registry(registry: &str, hung: &crate::support::Hung, env: &[(&str, &str)]) -> [Duration; 2] {
    let args = ["--registry", registry, "--poll", "0.2", "--drain", "2"];
    let mut quick = env.to_vec();
    quick.push(("MLGATE_REGISTRY_TIMEOUT_SECS", "1"));
    let server = Server::spawn_in(Path::new("."), &args, &quick, tempfile::tempdir().unwrap());
    server.wait_for_log("[timeout]", Duration::from_secs(30));
    // More polls, all timing out: one line in the log, every one counted.
    std::thread::sleep(Duration::from_secs(3));
    let log = server.log();
    assert_eq!(log.matches("error:").count(), 1, "{log}");
    assert!(log.contains("did not finish within 1s") || log.contains("no answer within 1s"), "{log}");
    let metrics = server.get("/metrics").1;
    let timeouts = metric(&metrics, "mlgate_registry_poll_errors_total{kind=\"timeout\"}").unwrap();
    assert!(timeouts >= 2.0, "{metrics}");
    assert_eq!(metric(&metrics, "mlgate_registry_poll_errors_total{kind=\"unreachable\"}"), Some(0.0));
    assert_eq!(metric(&metrics, "mlgate_registry_last_success_timestamp_seconds"), Some(0.0));
    assert_eq!(server.get("/healthz").0, 200);
    assert_eq!(server.get("/readyz").0, 503);
    let (code, quick_exit) = server.terminate_timed();
    assert_eq!(code, Some(0));
    assert!(quick_exit < Duration::from_secs(6), "{quick_exit:?}");

    let mut slow = env.to_vec();
    slow.push(("MLGATE_REGISTRY_TIMEOUT_SECS", "600"));
    let before = hung.accepted();
    let server = Server::spawn_in(Path::new("."), &args, &slow, tempfile::tempdir().unwrap());
    let start = Instant::now();
    while hung.accepted() == before {
        assert!(start.elapsed() < Duration::from_secs(30), "the poller never reached the registry: {}", server.log());
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(300));
    let log = server.log();
    let (code, stuck_exit) = server.terminate_timed();
    assert_eq!(code, Some(0), "{log}");
    assert!(stuck_exit < Duration::from_secs(6), "{stuck_exit:?}: {log}");
    let address = format!("127.0.0.1:{}", hung.port);
    let start = Instant::now();
    loop {
        let left: Vec<_> = crate::support::command_lines().into_iter().filter(|(_, c)| c.contains(&address)).collect();
        if left.is_empty() {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(5), "left behind: {left:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
    eprintln!("SIGTERM to exit: {quick_exit:?} (polls timing out after 1 s), {stuck_exit:?} (a poll stuck)");
    [quick_exit, stuck_exit]
}

#[test]
fn a_git_registry_that_hangs_times_out_and_never_holds_the_server() {
    let hung = crate::support::Hung::start();
    let registry = format!("git+http://127.0.0.1:{}/x.git#b", hung.port);
    a_hung_registry(&registry, &hung, &[]);
}

#[test]
fn an_s3_registry_that_hangs_times_out_and_never_holds_the_server() {
    let hung = crate::support::Hung::start();
    let endpoint = format!("http://127.0.0.1:{}", hung.port);
    let env = [
        ("AWS_ENDPOINT_URL", endpoint.as_str()),
        ("AWS_ALLOW_HTTP", "true"),
        ("AWS_ACCESS_KEY_ID", "mlgate"),
        ("AWS_SECRET_ACCESS_KEY", "mlgate-secret"),
        ("AWS_REGION", "us-east-1"),
    ];
    a_hung_registry("s3://models/hung", &hung, &env);
}

/// A git registry over smart HTTP that lets in only the user `ci`, its URL carrying `ci`'s
/// token: jobs write to it and `serve` follows it, while every process's command line is read
/// again and again — the token reaches git (the registry answers), but never a git command
/// line, and never the server's output, metrics or model route, nor the jobs' output or the
/// history.
#[test]
fn a_token_in_a_git_registry_url_is_never_on_a_command_line_nor_printed() {
    let remote = tempfile::tempdir().unwrap();
    let repo = remote.path().join("models.git");
    assert!(Command::new("git").args(["init", "-q", "--bare"]).arg(&repo).status().unwrap().success());
    let config = Command::new("git").arg("-C").arg(&repo).args(["config", "http.receivepack", "true"]).status();
    assert!(config.unwrap().success());
    let Some(git) = crate::registry_git::HttpGit::start_for(remote.path(), Some("ci")) else { return };
    let token = "tok3n-5ecret-f0r-ci";
    let bare = format!("127.0.0.1:{}/cgi-bin/git/models.git#mlgate-registry", git.port);
    let registry = format!("git+http://ci:{token}@{bare}");

    // Without the credentials, the registry is out of reach: what lets the jobs in is the token.
    let stranger = job(42, "");
    let out = mlgate(stranger.path(), &["registry", "--registry", &format!("git+http://{bare}")], &[]);
    assert_eq!(out.status.code(), Some(2), "{:?}", text(&out));

    // Every process's command line, read until told to stop: those that name the registry's
    // address (to know the reading saw git at work), and any that holds the token.
    let stop = Arc::new(AtomicBool::new(false));
    let seen = Arc::new(Mutex::new((0usize, Vec::<String>::new())));
    let watcher = {
        let (stop, seen, address) = (stop.clone(), seen.clone(), format!("127.0.0.1:{}", git.port));
        std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                for (_, line) in crate::support::command_lines() {
                    // git and its helpers (`git-remote-http`); mlgate's own command line holds
                    // what the caller gave it.
                    let program = line.split(' ').next().unwrap_or("");
                    if !program.rsplit('/').next().unwrap_or("").starts_with("git") {
                        continue;
                    }
                    let mut seen = seen.lock().unwrap();
                    if line.contains(token) {
                        if !seen.1.contains(&line) {
                            seen.1.push(line);
                        }
                    } else if line.contains(&address) {
                        seen.0 += 1;
                    }
                }
                std::thread::sleep(Duration::from_millis(2));
            }
        })
    };
    let first = job(42, "");
    let mut outputs = Vec::new();
    for args in [&["build"][..], &["acceptance", "--registry", &registry], &["deploy", "--registry", &registry]] {
        let out = mlgate(first.path(), args, &[("USER", "tester")]);
        let (o, e) = text(&out);
        assert_eq!(out.status.code(), Some(0), "{args:?}\n{o}{e}");
        outputs.push(o + &e);
    }
    let server = Server::start_at(&registry, &["--poll", "0.2"], &[]);
    assert_eq!(server.version(), "v1");
    std::thread::sleep(Duration::from_secs(2));
    let history = ok(first.path(), &["registry", "--registry", &registry, "--json"]);
    outputs.extend([
        server.started.clone(),
        server.log(),
        server.get("/metrics").1,
        server.get("/v1/model").1,
        history,
    ]);
    stop.store(true, Ordering::SeqCst);
    watcher.join().unwrap();
    let (git_lines, leaks) = seen.lock().unwrap().clone();
    assert!(leaks.is_empty(), "the token is on a command line: {leaks:?}");
    assert!(git_lines > 0, "no git command was seen at work: the check saw nothing");
    for output in &outputs {
        assert!(!output.contains(token), "the token is printed: {output}");
    }
    assert!(server.started.contains(&format!("git+http://{bare}")), "{}", server.started);
}

/// A registry that stops answering while a model is served: the poller is stuck in it, and the
/// server goes on predicting and measuring the rolling drift of what it is sent.
#[test]
fn a_registry_that_hangs_freezes_neither_predictions_nor_the_rolling_drift() {
    let remote = tempfile::tempdir().unwrap();
    let repo = remote.path().join("models.git");
    assert!(Command::new("git").args(["init", "-q", "--bare"]).arg(&repo).status().unwrap().success());
    let config = Command::new("git").arg("-C").arg(&repo).args(["config", "http.receivepack", "true"]).status();
    assert!(config.unwrap().success());
    let Some(git) = crate::registry_git::HttpGit::start_for(remote.path(), None) else { return };
    let port = git.port;
    let registry = format!("git+http://127.0.0.1:{port}/cgi-bin/git/models.git#mlgate-registry");
    let _job = release_to(&registry, 42, &[]);
    let server = Server::start_at(&registry, &["--poll", "0.2"], &[("MLGATE_REGISTRY_TIMEOUT_SECS", "600")]);
    assert_eq!(server.version(), "v1");
    drop(git);
    let hung = crate::support::Hung::start_on(port);
    let start = Instant::now();
    while hung.accepted() == 0 {
        assert!(start.elapsed() < Duration::from_secs(30), "the poller never reached the registry: {}", server.log());
        std::thread::sleep(Duration::from_millis(20));
    }
    let body = serde_json::to_vec(&records(&customers_csv(50, 5), false)).unwrap();
    let (status, answer) = server.post("/v1/predict", "application/json", &body);
    assert_eq!(status, 200, "{answer}");
    let start = Instant::now();
    while metric(&server.get("/metrics").1, "mlgate_drift_window_rows") != Some(50.0) {
        assert!(start.elapsed() < Duration::from_secs(10), "the drift was not measured: {}", server.get("/metrics").1);
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(metric(&server.get("/metrics").1, "mlgate_feature_drift{").is_some());
    assert_eq!(server.version(), "v1");
}
