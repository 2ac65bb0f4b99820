//! The only code that speaks PromQL over HTTP: instant queries against Prometheus's HTTP API,
//! and the measurements of the live analysis's checks, each on its own schedule. A URL's
//! `user:password@` is sent as Basic authentication and never printed.

use std::time::Duration;

use anyhow::{bail, Context, Result};
use model::lifecycle::live::{CheckRun, Measurement, Planned};

use crate::output::redact;

/// Asks Prometheus's HTTP API for an instant query; the first sample's value, `None` when the
/// result is empty.
async fn query(client: &reqwest::Client, base: &str, promql: &str) -> Result<Option<f64>> {
    let url = format!("{}/api/v1/query", base.trim_end_matches('/'));
    let request = client.get(&url).query(&[("query", promql)]);
    let url = redact(&url);
    let response = request.send().await.with_context(|| format!("cannot reach {url}"))?;
    let status = response.status();
    let body = response.text().await.with_context(|| format!("cannot read the answer of {url}"))?;
    let doc: serde_json::Value =
        serde_json::from_str(&body).with_context(|| format!("{url} answered {status} with no JSON"))?;
    if doc["status"] != "success" {
        bail!(
            "Prometheus refused the query ({status}): {} {}",
            doc["errorType"].as_str().unwrap_or(""),
            doc["error"].as_str().unwrap_or(&body)
        );
    }
    let data = &doc["data"];
    let value = match data["resultType"].as_str() {
        Some("vector") => data["result"].get(0).map(|s| &s["value"][1]),
        Some("scalar") => Some(&data["result"][1]),
        other => {
            bail!("the query gives a {} result; a check needs an instant vector or a scalar", other.unwrap_or("?"))
        }
    };
    match value.and_then(|v| v.as_str()) {
        None => Ok(None),
        Some(text) => {
            let v: f64 = text.parse().with_context(|| format!("Prometheus gave the value `{text}`"))?;
            // NaN is what a ratio of empty rates gives: no data, not a measurement.
            Ok(v.is_finite().then_some(v))
        }
    }
}

async fn run_check(client: reqwest::Client, base: String, check: Planned) -> CheckRun {
    let mut measurements = Vec::new();
    for i in 0..check.count {
        if i > 0 {
            tokio::time::sleep(Duration::from_secs_f64(check.interval_seconds)).await;
        }
        let m = match query(&client, &base, &check.query).await {
            Ok(value) => Measurement::of(&check, value),
            Err(e) => Measurement::failed(redact(&format!("{e:#}"))),
        };
        measurements.push(m);
    }
    CheckRun::judge(check, measurements)
}

/// Runs every check at once against Prometheus at `base`, each on its own schedule.
pub fn analyse(base: &str, checks: Vec<Planned>) -> Result<Vec<CheckRun>> {
    let runtime =
        tokio::runtime::Builder::new_current_thread().enable_all().build().context("cannot start a runtime")?;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .user_agent(concat!("mlgate/", env!("CARGO_PKG_VERSION")))
        .build()
        .context("cannot make an HTTP client")?;
    Ok(runtime.block_on(async {
        let tasks: Vec<_> =
            checks.into_iter().map(|c| tokio::spawn(run_check(client.clone(), base.to_string(), c))).collect();
        let mut runs = Vec::new();
        for t in tasks {
            runs.push(t.await.expect("a check's task does not panic"));
        }
        runs
    }))
}
