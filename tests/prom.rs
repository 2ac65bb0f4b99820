//! A real Prometheus (Debian's `prometheus`) for the tests of the live analysis and the fleet:
//! on a free port of 127.0.0.1, scraping the targets it is given, stopped by its process id.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::stop_server;

/// A running Prometheus.
pub(crate) struct Prometheus {
    child: Child,
    /// Its base URL.
    pub(crate) url: String,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    /// A Prometheus scraping 127.0.0.1:`port` for each of `ports` every second; `None` (said
    /// why) without a `prometheus` binary.
    pub(crate) fn start(ports: &[u16]) -> Option<Prometheus> {
        let targets: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
        Prometheus::scraping(&targets, "1s")
    }

    /// A Prometheus scraping `targets` (host:port) every `interval` (a Prometheus duration).
    pub(crate) fn scraping(targets: &[String], interval: &str) -> Option<Prometheus> {
        let binary = std::env::var_os("MLGATE_PROMETHEUS").map(PathBuf::from).unwrap_or_else(|| "prometheus".into());
        if Command::new(&binary).arg("--version").output().map(|o| !o.status.success()).unwrap_or(true) {
            eprintln!("skipped: no `prometheus` binary (.ci/run installs Debian's prometheus package)");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let targets: Vec<String> = targets.iter().map(|t| format!("\"{t}\"")).collect();
        let config = format!(
            "global:\n  scrape_interval: {interval}\n  scrape_timeout: {interval}\n  evaluation_interval: 1s\n\
             scrape_configs:\n  - job_name: mlgate\n    static_configs:\n      - targets: [{}]\n",
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
            if server.get("/-/ready").is_some_and(|(s, _)| s == 200) {
                return Some(server);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("Prometheus did not become ready on port {port}");
    }

    /// `GET path`: the status and the body.
    pub(crate) fn get(&self, path: &str) -> Option<(u16, String)> {
        let port: u16 = self.url.rsplit(':').next()?.parse().ok()?;
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(30))).ok()?;
        write!(s, "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").ok()?;
        let mut answer = String::new();
        s.read_to_string(&mut answer).ok()?;
        let status = answer.split(' ').nth(1)?.parse().ok()?;
        Some((status, answer.split_once("\r\n\r\n")?.1.to_string()))
    }

    /// The answer of the HTTP API to an instant query (`None`: no JSON answer).
    pub(crate) fn query_json(&self, promql: &str) -> Option<serde_json::Value> {
        let encoded: String = promql
            .bytes()
            .map(|b| if b.is_ascii_alphanumeric() { (b as char).to_string() } else { format!("%{b:02X}") })
            .collect();
        let (_, body) = self.get(&format!("/api/v1/query?query={encoded}"))?;
        // The body may be chunked: the JSON object is between the first `{` and the last `}`.
        let json = &body[body.find('{')?..=body.rfind('}')?];
        serde_json::from_str(json).ok()
    }

    /// The sum of an instant query's samples (`None`: no sample).
    pub(crate) fn query(&self, promql: &str) -> Option<f64> {
        let v = self.query_json(promql)?;
        let result = v["data"]["result"].as_array()?;
        (!result.is_empty()).then(|| result.iter().filter_map(|s| s["value"][1].as_str()?.parse::<f64>().ok()).sum())
    }

    /// Waits (at most a minute) until `promql` answers at least `min`.
    pub(crate) fn wait_for(&self, promql: &str, min: f64) {
        let start = Instant::now();
        while self.query(promql).is_none_or(|v| v < min) {
            assert!(start.elapsed() < Duration::from_secs(60), "Prometheus never answered {promql} >= {min}");
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        stop_server(&mut self.child);
    }
}
