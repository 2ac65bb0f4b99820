//! The routes, on hyper: one task a connection, HTTP/1.1 with keep-alive, a graceful drain.
//!
//! | route | |
//! |---|---|
//! | `POST /v1/predict` | JSON records or a CSV body → probabilities and decisions ([`predict`]) |
//! | `POST /v1/feedback` | labels for earlier predictions, joined by id ([`feedback`]) |
//! | `GET /v1/model` | the served model's identity, metrics at acceptance, lineage |
//! | `GET /healthz`, `GET /readyz` | alive; ready with a model loaded and not draining |
//! | `GET /metrics` | the Prometheus metrics ([`super::metrics`]) |
//!
//! [`route`] answers one request and can be called without a socket (any [`RequestBody`]).

use std::convert::Infallible;
use std::sync::atomic::Ordering;
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use serde::Serialize;
use serde_json::Value;

use model::data::schema::ColumnKind;
use model::pipeline::scoring::csv_field;

use super::{live, metrics, Loaded, Shared};

type Answer = Response<Full<Bytes>>;

/// A request's body: a socket's ([`hyper::body::Incoming`]), or any other (a test's
/// [`Full`]), so that a route can be called without a socket.
pub trait RequestBody: hyper::body::Body<Data = Bytes, Error: Into<Box<dyn std::error::Error + Send + Sync>>> {}

impl<B: hyper::body::Body<Data = Bytes, Error: Into<Box<dyn std::error::Error + Send + Sync>>>> RequestBody for B {}

fn answer(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> Answer {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

fn json(status: StatusCode, value: &impl Serialize) -> Answer {
    let mut body = serde_json::to_vec(value).expect("the server's answers serialise");
    body.push(b'\n');
    answer(status, "application/json", body)
}

fn problem(status: StatusCode, message: impl Into<String>) -> Answer {
    json(status, &serde_json::json!({ "error": message.into() }))
}

/// Accepts connections until SIGTERM or SIGINT, then waits up to `drain` for the requests in
/// flight. SIGHUP wakes the poller.
pub async fn serve(
    listener: std::net::TcpListener,
    shared: Arc<Shared>,
    wake: mpsc::Sender<()>,
    drain: Duration,
) -> Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let listener = tokio::net::TcpListener::from_std(listener).context("cannot serve on the listener")?;
    let mut terminate = signal(SignalKind::terminate()).context("cannot watch SIGTERM")?;
    let mut interrupt = signal(SignalKind::interrupt()).context("cannot watch SIGINT")?;
    let mut hangup = signal(SignalKind::hangup()).context("cannot watch SIGHUP")?;
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, _) = match accepted {
                    Ok(c) => c,
                    Err(e) => {
                        // Out of file descriptors, a connection reset before it was taken: the
                        // server goes on.
                        super::log(&format!("warning: cannot accept a connection: {e}"));
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let read_timeout = shared.read_timeout;
                let shared = shared.clone();
                let service = hyper::service::service_fn(move |request| {
                    let shared = shared.clone();
                    async move { Ok::<_, Infallible>(route(&shared, request).await) }
                });
                // A client that never finishes its headers does not hold a connection forever.
                let connection = hyper::server::conn::http1::Builder::new()
                    .timer(hyper_util::rt::TokioTimer::new())
                    .header_read_timeout(read_timeout)
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
                let connection = graceful.watch(connection);
                tokio::spawn(async move {
                    let _ = connection.await;
                });
            }
            _ = hangup.recv() => {
                super::log("SIGHUP: reading the registry again");
                let _ = wake.send(());
            }
            _ = terminate.recv() => break,
            _ = interrupt.recv() => break,
        }
    }
    shared.draining.store(true, Ordering::SeqCst);
    super::log("draining: no new connections; waiting for the requests in flight");
    drop(listener);
    if tokio::time::timeout(drain, graceful.shutdown()).await.is_err() {
        super::log(&format!("warning: requests still in flight after {drain:?}; exiting all the same"));
    }
    Ok(())
}

/// The route's name in the metrics: the known paths, else `other`.
fn route_name(path: &str) -> &'static str {
    match path {
        "/v1/predict" => "/v1/predict",
        "/v1/feedback" => "/v1/feedback",
        "/v1/model" => "/v1/model",
        "/healthz" => "/healthz",
        "/readyz" => "/readyz",
        "/metrics" => "/metrics",
        _ => "other",
    }
}

pub(super) async fn route<B: RequestBody>(shared: &Shared, request: Request<B>) -> Answer {
    let started = Instant::now();
    let route = route_name(request.uri().path());
    let method = request.method().clone();
    let response = match (route, &method) {
        ("/v1/predict", &Method::POST) => predict(shared, request).await,
        ("/v1/feedback", &Method::POST) => feedback(shared, request).await,
        ("/v1/model", &Method::GET) => model_info(shared),
        ("/healthz", &Method::GET) => answer(StatusCode::OK, "text/plain; charset=utf-8", "ok\n"),
        ("/readyz", &Method::GET) => ready(shared),
        ("/metrics", &Method::GET) => answer(StatusCode::OK, metrics::CONTENT_TYPE, shared.metrics.render()),
        ("other", _) => problem(StatusCode::NOT_FOUND, format!("no route {}", echo(request.uri().path()))),
        _ => problem(StatusCode::METHOD_NOT_ALLOWED, format!("{route} does not take {method}")),
    };
    let m = &shared.metrics;
    m.requests
        .get_or_create(&vec![("route", route.to_string()), ("status", response.status().as_u16().to_string())])
        .inc();
    m.duration.get_or_create(&vec![("route", route.to_string())]).observe(started.elapsed().as_secs_f64());
    response
}

fn echo(text: &str) -> String {
    model::data::report::echo(text)
}

fn ready(shared: &Shared) -> Answer {
    if shared.draining.load(Ordering::SeqCst) {
        return problem(StatusCode::SERVICE_UNAVAILABLE, "draining");
    }
    match shared.current() {
        Some(loaded) => answer(StatusCode::OK, "text/plain; charset=utf-8", format!("ready: {}\n", loaded.version)),
        None => problem(StatusCode::SERVICE_UNAVAILABLE, "no model loaded yet"),
    }
}

fn model_info(shared: &Shared) -> Answer {
    let Some(loaded) = shared.current() else {
        return problem(StatusCode::SERVICE_UNAVAILABLE, "no model loaded yet");
    };
    let artifact = loaded.compiled.artifact();
    json(
        StatusCode::OK,
        &serde_json::json!({
            "model": artifact.name,
            "version": loaded.version,
            "sha256": loaded.sha256,
            "family": artifact.model.family().name(),
            "threshold": artifact.threshold.value,
            "columns": loaded.compiled.columns(),
            "label": artifact.schema.label().name,
            "metrics_at_acceptance": loaded.accepted.as_ref().map(|a| &a.candidate),
            "lineage": artifact.lineage,
        }),
    )
}

/// Reads a body of at most `max` bytes within the read timeout; `Err` is the answer to give
/// instead.
async fn body<B: RequestBody>(shared: &Shared, request: Request<B>) -> std::result::Result<Bytes, Answer> {
    let limit = shared.read_timeout;
    let read = tokio::time::timeout(limit, Limited::new(request.into_body(), shared.max_body).collect());
    let Ok(read) = read.await else {
        return Err(problem(StatusCode::REQUEST_TIMEOUT, format!("the body did not arrive within {limit:?}")));
    };
    match read {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() => Err(problem(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the body is larger than {} bytes (--max-body-bytes)", shared.max_body),
        )),
        Err(e) => Err(problem(StatusCode::BAD_REQUEST, format!("cannot read the body: {e}"))),
    }
}

/// Reads a body within the limits and parses it as `T`; `shape` says in the 400 what was
/// expected.
async fn read_json<T: serde::de::DeserializeOwned, B: RequestBody>(
    shared: &Shared,
    request: Request<B>,
    shape: &str,
) -> std::result::Result<T, Answer> {
    let bytes = body(shared, request).await?;
    serde_json::from_slice(&bytes)
        .map_err(|e| problem(StatusCode::BAD_REQUEST, format!("the body is not {shape}: {e}")))
}

/// A value broken in a request: which record, which column, the value, the rule.
#[derive(Serialize)]
struct Broken {
    record: u64,
    column: String,
    value: String,
    rule: String,
    detail: String,
}

fn unprocessable(shared: &Shared, errors: Vec<Broken>, total: u64, records: u64) -> Answer {
    shared.metrics.invalid_records.inc_by(records);
    let first = errors.first().map(|b| format!(": record {} column `{}`: {}", b.record, b.column, b.rule));
    json(
        StatusCode::UNPROCESSABLE_ENTITY,
        &serde_json::json!({
            "error": format!("{total} value(s) in {records} record(s) break the model's schema{}; nothing was scored", first.unwrap_or_default()),
            "error_count": total,
            "errors": errors,
        }),
    )
}

/// How a JSON value becomes a column's text, beyond a string's own.
enum Kind<'a> {
    /// A boolean column: the spellings a JSON `true` and `false` become.
    Boolean(&'a (String, String)),
    /// A categorical column, with its declared levels when it has them.
    Categorical(Option<&'a [String]>),
    /// Any other column: a value's JSON text.
    Other,
}

/// A JSON value as the text a CSV field would hold; `None` for an array or an object.
fn field_text(value: &Value, kind: &Kind) -> Option<String> {
    match value {
        Value::Null => Some(String::new()),
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(match (kind, n.as_f64()) {
            // A level coded as an integer (a browser id, `83`) sent as the number `83.0`: JSON
            // does not tell 83 from 83.0, so the number is the level `83`, as the CSV text `83`
            // would be — unless `83.0` itself is a declared level.
            (Kind::Categorical(levels), Some(x))
                if n.is_f64()
                    && x.fract() == 0.0
                    && x.abs() < 9.0e15
                    && !levels.is_some_and(|l| l.contains(&n.to_string())) =>
            {
                format!("{}", x as i64)
            }
            _ => n.to_string(),
        }),
        Value::Bool(b) => Some(match kind {
            Kind::Boolean((t, f)) => {
                if *b {
                    t.clone()
                } else {
                    f.clone()
                }
            }
            _ => b.to_string(),
        }),
        Value::Array(_) | Value::Object(_) => None,
    }
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct PredictRequest {
    records: Vec<serde_json::Map<String, Value>>,
}

#[derive(Serialize)]
struct Prediction<'a> {
    id: &'a str,
    probability: f64,
    prediction: u8,
}

async fn predict<B: RequestBody>(shared: &Shared, request: Request<B>) -> Answer {
    let csv = request
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().to_ascii_lowercase().starts_with("text/csv"));
    // The model a request starts with is the one it finishes with, whatever swaps meanwhile.
    let Some(loaded) = shared.current() else {
        return problem(StatusCode::SERVICE_UNAVAILABLE, "no model loaded yet");
    };
    if csv {
        return match body(shared, request).await {
            Ok(bytes) => predict_csv(shared, loaded, bytes).await,
            Err(answer) => answer,
        };
    }
    let parsed: PredictRequest = match read_json(shared, request, "{\"records\": [{column: value, …}, …]}").await {
        Ok(p) => p,
        Err(answer) => return answer,
    };
    if let Some(answer) = too_many(shared, parsed.records.len(), "records") {
        return answer;
    }
    if parsed.records.is_empty() {
        return problem(StatusCode::BAD_REQUEST, "no records to score");
    }
    score_json(shared, &loaded, parsed.records)
}

fn score_json(shared: &Shared, loaded: &Loaded, records: Vec<serde_json::Map<String, Value>>) -> Answer {
    let columns = loaded.compiled.columns();
    let schema = &loaded.compiled.artifact().schema;
    let kinds: Vec<Kind> = columns
        .iter()
        .zip(&loaded.booleans)
        .map(|(name, boolean)| match (boolean, schema.column(name).map(|c| &c.kind)) {
            (Some(spellings), _) => Kind::Boolean(spellings),
            (None, Some(ColumnKind::Categorical { levels })) => Kind::Categorical(levels.as_deref()),
            _ => Kind::Other,
        })
        .collect();
    let mut broken = Vec::new();
    let mut rows: Vec<(u64, csv::ByteRecord)> = Vec::with_capacity(records.len());
    let mut fields: Vec<String> = vec![String::new(); columns.len()];
    for (i, record) in records.iter().enumerate() {
        fields.iter_mut().for_each(String::clear);
        for (key, value) in record {
            let Some(&at) = loaded.index.get(key) else {
                if !loaded.unread.contains(key) {
                    broken.push(Broken {
                        record: i as u64,
                        column: echo(key),
                        value: echo(&value.to_string()),
                        rule: "unknown_column".into(),
                        detail: format!("the model's columns are {}", columns.join(", ")),
                    });
                }
                continue;
            };
            match field_text(value, &kinds[at]) {
                Some(text) => fields[at] = text,
                None => broken.push(Broken {
                    record: i as u64,
                    column: key.clone(),
                    value: echo(&value.to_string()),
                    rule: "not_a_scalar".into(),
                    detail: "a value is a string, a number, a boolean or null".into(),
                }),
            }
        }
        rows.push((i as u64, fields.iter().collect()));
    }
    let scored = loaded.compiled.score("request", &rows);
    let m = &shared.metrics;
    for ((column, rule), count) in &scored.errors.counts {
        m.invalid(column, rule.name(), *count);
    }
    for b in &broken {
        // A key the schema does not have is the client's text: one series for them all, so
        // that clients cannot make the metrics grow without bound.
        let column = if b.rule == "unknown_column" { "(unknown)" } else { b.column.as_str() };
        m.invalid(column, &b.rule, 1);
    }
    if !broken.is_empty() || scored.errors.error_count > 0 {
        let total = broken.len() as u64 + scored.errors.error_count;
        broken.extend(scored.errors.errors.into_iter().map(|e| Broken {
            record: e.line,
            column: e.column,
            value: e.value,
            rule: e.rule.name().to_string(),
            detail: e.detail,
        }));
        broken.sort_by_key(|b| b.record);
        let mut bad: Vec<u64> = broken.iter().map(|b| b.record).collect();
        bad.dedup();
        // The listed errors are capped; the tally counts every record with a broken value.
        let records = (bad.len() as u64).max(scored.errors.rows_with_errors);
        return unprocessable(shared, broken, total, records);
    }
    let artifact = loaded.compiled.artifact();
    let threshold = artifact.threshold.value;
    let id_column = artifact.schema.id().and_then(|c| loaded.index.get(&c.name).copied());
    let ids: Vec<String> = match id_column {
        Some(at) => rows.iter().map(|(_, r)| String::from_utf8_lossy(&r[at]).into_owned()).collect(),
        None => {
            let first = shared.ids.fetch_add(rows.len() as u64, Ordering::Relaxed);
            (0..rows.len() as u64).map(|k| format!("{}-{}", shared.id_prefix, first + k)).collect()
        }
    };
    let version = &loaded.version;
    let mut positives = 0;
    let predictions: Vec<Prediction> = ids
        .iter()
        .zip(&scored.probabilities)
        .map(|(id, &probability)| {
            let prediction = u8::from(probability >= threshold);
            positives += u64::from(prediction);
            Prediction { id, probability, prediction }
        })
        .collect();
    m.scored(version, &scored.probabilities, positives, &scored.unseen_levels);
    let mut evicted = 0;
    {
        let mut live = shared.live.lock().expect("the live lock is never poisoned");
        for (p, (_, record)) in predictions.iter().zip(&rows) {
            evicted += live.log(p.id, version, p.probability, threshold);
            let mut line = String::new();
            for (k, field) in record.iter().enumerate() {
                if k > 0 {
                    line.push(',');
                }
                csv_field(&mut line, &String::from_utf8_lossy(field));
            }
            live.remember(line);
        }
        m.log_size.set(live.waiting() as i64);
    }
    m.log_evicted.inc_by(evicted);
    json(StatusCode::OK, &serde_json::json!({ "model": artifact.name, "version": version, "predictions": predictions }))
}

/// A CSV body, scored as `predict` scores a file: the same output, the same errors.
async fn predict_csv(shared: &Shared, loaded: Arc<Loaded>, bytes: Bytes) -> Answer {
    let scored = tokio::task::spawn_blocking(move || {
        let mut out = Vec::new();
        let result = model::pipeline::scoring::score_csv(loaded.compiled.artifact(), &bytes[..], "request", &mut out);
        (loaded, result, out)
    })
    .await;
    let Ok((loaded, result, out)) = scored else {
        return problem(StatusCode::INTERNAL_SERVER_ERROR, "scoring stopped unexpectedly");
    };
    let m = &shared.metrics;
    match result {
        Ok(summary) => {
            let version = &loaded.version;
            // The output read back: its last two columns are the scores, its first the id when
            // the schema has one (those rows' predictions then wait for their feedback).
            let rows: Vec<csv::StringRecord> = csv::Reader::from_reader(&out[..]).records().flatten().collect();
            let probabilities: Vec<f64> =
                rows.iter().filter_map(|r| r.get(r.len().saturating_sub(2))?.parse().ok()).collect();
            m.scored(version, &probabilities, summary.positives, &summary.unseen_levels);
            let threshold = loaded.compiled.artifact().threshold.value;
            if loaded.compiled.artifact().schema.id().is_some() {
                let mut evicted = 0;
                let mut live = shared.live.lock().expect("the live lock is never poisoned");
                for (row, probability) in rows.iter().zip(&probabilities) {
                    if let Some(id) = row.get(0) {
                        evicted += live.log(id, version, *probability, threshold);
                    }
                }
                m.log_size.set(live.waiting() as i64);
                m.log_evicted.inc_by(evicted);
            }
            let mut response = answer(StatusCode::OK, "text/csv; charset=utf-8", out);
            if let Ok(v) = HeaderValue::from_str(version) {
                response.headers_mut().insert("x-model-version", v);
            }
            response
        }
        Err(model::Error::Validation(report)) => {
            for c in &report.counts {
                m.invalid(&c.column, c.rule.name(), c.count);
            }
            // A CSV's errors are located by line, as `predict` locates them.
            let errors: Vec<serde_json::Value> = report
                .errors
                .iter()
                .map(|e| {
                    serde_json::json!({"line": e.line, "column": e.column, "value": e.value, "rule": e.rule.name(), "detail": e.detail})
                })
                .collect();
            m.invalid_records.inc_by(report.rows_with_errors);
            json(
                StatusCode::UNPROCESSABLE_ENTITY,
                &serde_json::json!({
                    "error": format!("{} value(s) in {} row(s) break the model's schema; nothing was scored", report.error_count, report.rows_with_errors),
                    "error_count": report.error_count,
                    "errors": errors,
                }),
            )
        }
        Err(e) => problem(StatusCode::UNPROCESSABLE_ENTITY, format!("cannot score the CSV: {e}")),
    }
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct FeedbackRequest {
    feedback: Vec<FeedbackItem>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct FeedbackItem {
    id: Value,
    label: Value,
}

/// 413 for a request of more than `--max-records` records (or feedback items).
fn too_many(shared: &Shared, count: usize, what: &str) -> Option<Answer> {
    (count > shared.max_records).then(|| {
        problem(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("{count} {what}; at most {} a request (--max-records)", shared.max_records),
        )
    })
}

async fn feedback<B: RequestBody>(shared: &Shared, request: Request<B>) -> Answer {
    let Some(loaded) = shared.current() else {
        return problem(StatusCode::SERVICE_UNAVAILABLE, "no model loaded yet");
    };
    let parsed: FeedbackRequest =
        match read_json(shared, request, "{\"feedback\": [{\"id\": …, \"label\": …}, …]}").await {
            Ok(p) => p,
            Err(answer) => return answer,
        };
    if let Some(answer) = too_many(shared, parsed.feedback.len(), "items") {
        return answer;
    }
    let schema = &loaded.compiled.artifact().schema;
    let label = schema.label();
    let (positive, negative) = match &label.kind {
        model::data::schema::ColumnKind::Label { positive, negative } => (positive.as_str(), negative.as_str()),
        _ => unreachable!("a schema's label column has the label kind"),
    };
    // Every item is checked before any is joined: a bad request changes nothing.
    let mut items = Vec::with_capacity(parsed.feedback.len());
    let mut broken = Vec::new();
    for (i, item) in parsed.feedback.iter().enumerate() {
        let id = match &item.id {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        };
        let value = match &item.label {
            Value::Bool(b) => Some(*b),
            Value::String(s) if s == positive => Some(true),
            Value::String(s) if s == negative => Some(false),
            _ => None,
        };
        match (id, value) {
            (Some(id), Some(value)) => items.push((id, value)),
            (None, _) => broken.push(Broken {
                record: i as u64,
                column: "id".into(),
                value: echo(&item.id.to_string()),
                rule: "not_an_id".into(),
                detail: "an id is a string or a number, as the prediction gave it".into(),
            }),
            (_, None) => broken.push(Broken {
                record: i as u64,
                column: label.name.clone(),
                value: echo(&item.label.to_string()),
                rule: "not_a_label".into(),
                detail: format!("a label is \"{positive}\", \"{negative}\", true or false"),
            }),
        }
    }
    if !broken.is_empty() {
        let records = broken.len() as u64;
        return json(
            StatusCode::UNPROCESSABLE_ENTITY,
            &serde_json::json!({
                "error": format!("{records} feedback item(s) cannot be read; none was recorded"),
                "error_count": records,
                "errors": broken,
            }),
        );
    }
    let m = &shared.metrics;
    m.feedback_received.inc_by(items.len() as u64);
    let (mut joined, mut unmatched) = (0u64, 0u64);
    let figures: Vec<live::LiveFigures> = {
        let mut live = shared.live.lock().expect("the live lock is never poisoned");
        let mut touched: Vec<String> = Vec::new();
        for (id, value) in &items {
            match live.join(id, *value) {
                Some(version) => {
                    joined += 1;
                    if !touched.contains(&version) {
                        touched.push(version);
                    }
                }
                None => unmatched += 1,
            }
        }
        m.log_size.set(live.waiting() as i64);
        // The series of a version whose window was dropped go with it.
        for version in live.take_dropped() {
            let labels = vec![("version", version)];
            for family in &m.live {
                family.remove(&labels);
            }
            m.live_window.remove(&labels);
        }
        touched.iter().filter_map(|v| live.figures(v)).collect()
    };
    for f in &figures {
        let labels = vec![("version", f.version.clone())];
        for (family, value) in m.live.iter().zip(f.values) {
            if let Some(value) = value {
                family.get_or_create(&labels).set(value);
            }
        }
        m.live_window.get_or_create(&labels).set(f.joined as i64);
    }
    m.feedback_joined.inc_by(joined);
    m.feedback_unmatched.inc_by(unmatched);
    json(StatusCode::OK, &serde_json::json!({ "received": items.len(), "joined": joined, "unmatched": unmatched }))
}
