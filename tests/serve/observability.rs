//! `/metrics` as Prometheus and its tools read it: the classic text format passes `promtool
//! check metrics`, OpenMetrics is served to a scraper that asks for it, and every query of the
//! Grafana dashboard (`deploy/grafana/mlgate.json`) runs on a real Prometheus scraping `serve`.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use model::data::generate::customers_csv;

use super::{exchange_to, records, served, Prometheus, Server, FEEDBACK_TOKEN};
use crate::support::text;

/// A scrape with `accept` (none: no header): its head and body.
fn scrape(server: &Server, accept: Option<&str>) -> (String, String) {
    let headers: Vec<(&str, &str)> = accept.map(|a| ("Accept", a)).into_iter().collect();
    let (status, head, body) =
        exchange_to((server.host, server.port).into(), "GET", "/metrics", "", &headers, b"").unwrap();
    assert_eq!(status, 200, "{body}");
    (head.to_ascii_lowercase(), body)
}

/// Predictions and feedback, so that the series of both exist with values.
fn traffic(server: &Server) {
    let body = serde_json::to_vec(&records(&customers_csv(20, 5), true)).unwrap();
    let (status, answer) = server.post("/v1/predict", "application/json", &body);
    assert_eq!(status, 200, "{answer}");
    let answer: serde_json::Value = serde_json::from_str(&answer).unwrap();
    let items: Vec<serde_json::Value> = answer["predictions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| serde_json::json!({"receipt": p["receipt"], "label": p["prediction"] == 1}))
        .collect();
    let (status, answer) = server.feedback(&items);
    assert_eq!(status, 200, "{answer}");
    let _ = FEEDBACK_TOKEN;
}

/// `promtool check metrics` (Debian's prometheus package) on a scrape in the classic format:
/// no error and no lint problem. The same scrape asked as OpenMetrics is OpenMetrics.
#[test]
fn a_scrape_passes_promtool_check_metrics() {
    let promtool = std::env::var_os("MLGATE_PROMTOOL").map(PathBuf::from).unwrap_or_else(|| "promtool".into());
    if Command::new(&promtool).arg("--version").output().map(|o| !o.status.success()).unwrap_or(true) {
        eprintln!("skipped: no `promtool` binary (.ci/run installs Debian's prometheus package)");
        return;
    }
    let (_released, server) = served(&[]);
    traffic(&server);
    let (head, classic) = scrape(&server, None);
    assert!(head.contains("content-type: text/plain; version=0.0.4; charset=utf-8"), "{head}");
    assert!(!classic.contains("# EOF"), "{classic}");
    for series in [
        "process_cpu_seconds_total{model=\"customer-purchase\"}",
        "process_resident_memory_bytes{model=\"customer-purchase\"}",
        "process_open_fds{model=\"customer-purchase\"}",
        "process_max_fds{model=\"customer-purchase\"}",
        "process_start_time_seconds{model=\"customer-purchase\"}",
        "process_virtual_memory_bytes{model=\"customer-purchase\"}",
        "mlgate_http_requests_in_flight{model=\"customer-purchase\"} 1",
        "mlgate_build_info{model=\"customer-purchase\",version=\"",
    ] {
        assert!(classic.contains(&format!("\n{series}")), "no {series} in\n{classic}");
    }
    let mut child = Command::new(&promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(classic.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let (o, e) = text(&out);
    assert!(
        out.status.success() && o.trim().is_empty() && e.trim().is_empty(),
        "promtool check metrics:\n{o}{e}\n{classic}"
    );

    let prometheus_accept = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
    let (head, openmetrics) = scrape(&server, Some(prometheus_accept));
    assert!(head.contains("content-type: application/openmetrics-text; version=1.0.0; charset=utf-8"), "{head}");
    assert!(openmetrics.ends_with("# EOF\n"), "{openmetrics}");
    assert!(openmetrics.contains("# TYPE mlgate_http_requests counter\n"), "{openmetrics}");
}
