//! The only code that speaks PromQL over HTTP: instant queries against Prometheus's HTTP API
//! (every series of an answer, NaN and ±Inf as they come; a malformed answer an error), the
//! versions a model is served as, the measurements of the live analysis's checks, each on its
//! own schedule, and the rollout analysis's queries, asked at once. A URL's
//! `user:password@` is sent as Basic authentication and never printed.

use std::time::Duration;

use anyhow::{bail, Context, Result};
use model::lifecycle::live::{CheckRun, Measurement, Planned, Sample, Served};

use crate::output::redact;

/// Asks Prometheus's HTTP API for an instant query: every series of the answer (a scalar is one
/// series without labels; an empty vector, none). An answer that is not the API's JSON, another
/// result type, or a value that is not a number is refused with what was wrong (malformed).
async fn query(client: &reqwest::Client, base: &str, promql: &str) -> Result<Vec<Sample>> {
    let url = format!("{}/api/v1/query", base.trim_end_matches('/'));
    let request = client.get(&url).query(&[("query", promql)]);
    let url = redact(&url);
    let response = request.send().await.with_context(|| format!("cannot reach {url}"))?;
    let status = response.status();
    let body = response.text().await.with_context(|| format!("cannot read the answer of {url}"))?;
    let doc: serde_json::Value = serde_json::from_str(&body)
        .with_context(|| format!("malformed answer: {url} answered {status} with no JSON"))?;
    if doc["status"] != "success" {
        bail!(
            "Prometheus refused the query ({status}): {} {}",
            doc["errorType"].as_str().unwrap_or(""),
            doc["error"].as_str().unwrap_or(&bounded(&body))
        );
    }
    samples(&doc["data"])
}

/// At most 200 characters of `text`, with its length when cut.
fn bounded(text: &str) -> String {
    match text.char_indices().nth(200) {
        Some((end, _)) => format!("{}… ({} bytes)", &text[..end], text.len()),
        None => text.to_string(),
    }
}

/// The series of a query's `data`.
fn samples(data: &serde_json::Value) -> Result<Vec<Sample>> {
    let value = |pair: &serde_json::Value| -> Result<f64> {
        let text = pair.get(1).and_then(|v| v.as_str()).with_context(|| {
            format!("malformed answer: a sample is not [time, \"value\"]: {}", bounded(&pair.to_string()))
        })?;
        // Prometheus writes NaN, +Inf and -Inf so; Rust's parser reads them, and nothing else
        // that is not a number.
        text.parse::<f64>().with_context(|| format!("malformed answer: the value `{}` is not a number", bounded(text)))
    };
    match data["resultType"].as_str() {
        Some("vector") => {
            let result = data["result"].as_array().context("malformed answer: a vector without its result list")?;
            result
                .iter()
                .map(|s| {
                    let labels = match &s["metric"] {
                        serde_json::Value::Object(m) => {
                            m.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string())).collect()
                        }
                        serde_json::Value::Null => Default::default(),
                        other => {
                            bail!("malformed answer: labels that are not an object: {}", bounded(&other.to_string()))
                        }
                    };
                    Ok(Sample { labels, value: value(&s["value"])? })
                })
                .collect()
        }
        Some("scalar") => Ok(vec![Sample { labels: Default::default(), value: value(&data["result"])? }]),
        Some(other) => {
            bail!("the query gives a {other} result; a check needs an instant vector or a scalar")
        }
        None => bail!("malformed answer: no resultType"),
    }
}

/// The versions of `model` Prometheus sees served now (`mlgate_model_info{model}`), with how
/// many replicas report each. An error when Prometheus cannot be reached or refuses.
pub fn served(base: &str, model: &str) -> Result<Vec<Served>> {
    let promql = format!(
        r#"count by (version) (mlgate_model_info{{model="{}"}} == 1)"#,
        model::lifecycle::live::promql_string(model)
    );
    let (runtime, client) = runtime()?;
    let samples = runtime.block_on(query(&client, base, &promql))?;
    let mut served: Vec<Served> = samples
        .into_iter()
        .map(|s| Served {
            version: s.labels.get("version").cloned().unwrap_or_default(),
            replicas: if s.value.is_finite() && s.value >= 0.0 { s.value as u64 } else { 0 },
        })
        .collect();
    served.sort_by(|a, b| a.version.cmp(&b.version));
    Ok(served)
}

fn runtime() -> Result<(tokio::runtime::Runtime, reqwest::Client)> {
    let runtime =
        tokio::runtime::Builder::new_current_thread().enable_all().build().context("cannot start a runtime")?;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .user_agent(concat!("mlgate/", env!("CARGO_PKG_VERSION")))
        .build()
        .context("cannot make an HTTP client")?;
    Ok((runtime, client))
}

async fn run_check(client: reqwest::Client, base: String, check: Planned) -> CheckRun {
    let mut measurements = Vec::new();
    for i in 0..check.count {
        if i > 0 {
            tokio::time::sleep(Duration::from_secs_f64(check.interval_seconds)).await;
        }
        let m = match query(&client, &base, &check.query).await {
            Ok(samples) => Measurement::of(&check, samples),
            Err(e) => Measurement::failed(redact(&format!("{e:#}"))),
        };
        measurements.push(m);
    }
    CheckRun::judge(check, measurements)
}

/// Asks every one of `queries` at once (instant queries): each one's series, in the order asked.
/// The first that cannot be reached, is refused or answers malformed is the error, naming it.
pub fn ask_all(base: &str, queries: &[String]) -> Result<Vec<Vec<Sample>>> {
    let (runtime, client) = runtime()?;
    runtime.block_on(async {
        let tasks: Vec<_> = queries
            .iter()
            .map(|q| {
                let (client, base, q) = (client.clone(), base.to_string(), q.clone());
                tokio::spawn(async move { query(&client, &base, &q).await })
            })
            .collect();
        let mut answers = Vec::new();
        for (task, promql) in tasks.into_iter().zip(queries) {
            let answer = task.await.expect("a query's task does not panic");
            answers.push(
                answer
                    .map_err(|e| anyhow::anyhow!("{}", redact(&format!("{e:#}"))))
                    .with_context(|| format!("the query {}", bounded(promql)))?,
            );
        }
        Ok(answers)
    })
}

/// Runs every check at once against Prometheus at `base`, each on its own schedule.
pub fn analyse(base: &str, checks: Vec<Planned>) -> Result<Vec<CheckRun>> {
    let (runtime, client) = runtime()?;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn data(text: &str) -> Result<Vec<Sample>> {
        samples(&serde_json::from_str(text).unwrap())
    }

    #[test]
    fn every_series_comes_back_with_its_labels_and_malformed_answers_are_named() {
        let got = data(
            r#"{"resultType":"vector","result":[{"metric":{"instance":"a"},"value":[1,"0.5"]},{"metric":{},"value":[1,"+Inf"]},{"metric":{"instance":"c"},"value":[1,"NaN"]}]}"#,
        )
        .unwrap();
        assert_eq!(got.len(), 3);
        assert_eq!(got[0].labels["instance"], "a");
        assert_eq!(got[0].value, 0.5);
        assert_eq!(got[1].value, f64::INFINITY);
        assert!(got[2].value.is_nan());
        assert_eq!(data(r#"{"resultType":"scalar","result":[1,"-Inf"]}"#).unwrap()[0].value, f64::NEG_INFINITY);
        assert!(data(r#"{"resultType":"vector","result":[]}"#).unwrap().is_empty());
        for (bad, why) in [
            (
                r#"{"resultType":"vector","result":[{"metric":{},"value":[1,"zero"]}]}"#,
                "the value `zero` is not a number",
            ),
            (
                r#"{"resultType":"vector","result":[{"metric":{},"value":[1,0.5]}]}"#,
                "a sample is not [time, \"value\"]",
            ),
            (r#"{"resultType":"vector","result":{}}"#, "a vector without its result list"),
            (r#"{"result":[]}"#, "no resultType"),
        ] {
            let e = format!("{:#}", data(bad).unwrap_err());
            assert!(e.contains("malformed answer") && e.contains(why), "{e}");
        }
        let e = format!("{:#}", data(r#"{"resultType":"matrix","result":[]}"#).unwrap_err());
        assert!(e.contains("matrix result"), "{e}");
    }
}
