//! `/metrics` as Prometheus and its tools read it: the classic text format passes `promtool
//! check metrics`, OpenMetrics is served to a scraper that asks for it, and every query of the
//! Grafana dashboard (`deploy/grafana/mlgate.json`) runs on a real Prometheus scraping `serve`.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use model::data::generate::customers_csv;

use super::{exchange_to, records, served, Server};
use crate::prom::Prometheus;
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

/// Every query of a dashboard panel (rows' panels included) and of its variables.
fn dashboard_queries(dashboard: &serde_json::Value) -> Vec<(String, String)> {
    fn panels(list: &serde_json::Value, out: &mut Vec<(String, String)>) {
        for panel in list.as_array().into_iter().flatten() {
            let title = panel["title"].as_str().unwrap_or_default();
            for target in panel["targets"].as_array().into_iter().flatten() {
                out.push((title.to_string(), target["expr"].as_str().unwrap().to_string()));
            }
            panels(&panel["panels"], out);
        }
    }
    let mut out = Vec::new();
    panels(&dashboard["panels"], &mut out);
    // A variable's `label_values(SELECTOR, LABEL)`: the selector is the query.
    for variable in dashboard["templating"]["list"].as_array().unwrap() {
        if let Some(query) = variable["query"]["query"].as_str() {
            let selector = query.strip_prefix("label_values(").and_then(|q| q.rsplit_once(',')).unwrap().0;
            out.push((format!("variable {}", variable["name"]), selector.to_string()));
        }
    }
    out
}

/// `promql` run by Prometheus (its JSON answer).
fn run_query(prometheus: &Prometheus, promql: &str) -> serde_json::Value {
    prometheus.query_json(promql).unwrap_or_else(|| panic!("no JSON answer from Prometheus to {promql}"))
}

/// Every query of `deploy/grafana/mlgate.json`, its variables substituted as Grafana does, runs
/// on a real Prometheus scraping `serve` (which negotiates OpenMetrics): no query is refused,
/// and the panels of traffic, quality inputs and the process show data.
#[test]
fn every_dashboard_query_runs_on_a_real_prometheus_scraping_serve() {
    let (_released, server) = served(&[]);
    let Some(prometheus) = Prometheus::start(&[server.port]) else { return };
    traffic(&server);
    let text = std::fs::read_to_string(crate::support::root().join("deploy/grafana/mlgate.json")).unwrap();
    let dashboard: serde_json::Value = serde_json::from_str(&text).unwrap();
    let names: Vec<&str> =
        dashboard["templating"]["list"].as_array().unwrap().iter().map(|v| v["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["datasource", "model", "version"]);
    let substituted = |expr: &str| {
        expr.replace("$model", "customer-purchase")
            .replace("$version", "v1")
            .replace("$__rate_interval", "1m")
            .replace("$__interval", "15s")
    };
    // Two scrapes after the traffic: rates have their two samples.
    let start = Instant::now();
    let predictions = "sum(mlgate_records_scored_total{model=\"customer-purchase\"})";
    while prometheus.query(predictions).unwrap_or(0.0) < 20.0 {
        assert!(start.elapsed() < Duration::from_secs(60), "Prometheus never scraped the predictions");
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(Duration::from_secs(3));
    let queries = dashboard_queries(&dashboard);
    assert!(queries.len() >= 20, "{queries:?}");
    let mut with_data = Vec::new();
    for (title, expr) in &queries {
        let promql = substituted(expr);
        assert!(!promql.contains('$') || promql.contains("\"$1\""), "{title}: a variable is left in {promql}");
        let answer = run_query(&prometheus, &promql);
        assert_eq!(answer["status"], "success", "{title}: {promql}\n{answer}");
        if answer["data"]["result"].as_array().is_some_and(|r| !r.is_empty()) {
            with_data.push(title.as_str());
        }
    }
    for title in [
        "Requests by route and status",
        "Latency quantiles of /v1/predict",
        "Live accuracy",
        "Feedback joined, unmatched and refused",
        "Versions served per replica",
        "Records by version and role",
        "Scoring latency p95 and failures by version and role",
        "Registry staleness",
        "Resident memory",
        "CPU",
        "Build and uptime",
        "variable \"model\"",
    ] {
        assert!(with_data.contains(&title), "{title} shows no data: {with_data:?}");
    }
}
