//! The routes, on hyper: one task a connection, HTTP/1.1 with keep-alive, a graceful drain.
//!
//! | route | |
//! |---|---|
//! | `POST /v1/predict` | JSON records or a CSV body → probabilities, decisions and receipts ([`predict`]) |
//! | `POST /v1/feedback` | labels for earlier predictions, joined by receipt or by id ([`feedback`]) |
//! | `GET /v1/model` | the served model's identity, metrics at acceptance, lineage |
//! | `GET /openapi.json` | the OpenAPI 3.1 description of these routes, from the served model's schema ([`super::openapi`]) |
//! | `GET /healthz`, `GET /readyz` | alive; ready with a model loaded and not draining |
//! | `GET /metrics` | the Prometheus metrics, OpenMetrics or classic text as `Accept` asks ([`super::metrics`]) |
//!
//! Predictions, `/v1/model` and `/openapi.json` take a prediction token, feedback a feedback token, `/metrics` an
//! admin token, each when configured ([`super::auth`]); the probes are open. With an admin
//! address the probes and metrics are served there alone ([`Surface`]).
//!
//! [`route`] answers one request and can be called without a socket (any [`RequestBody`]).

use std::convert::Infallible;
use std::sync::atomic::Ordering;
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper::header::{HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::server::graceful::GracefulConnection;
use serde::Serialize;
use serde_json::Value;

use super::auth::{Access, Refusal};
use super::receipt::{self, Claims};
use super::records::{self, Broken, Tally, MAX_ID_BYTES};
use super::{live, metrics, openapi, unix_now, Loaded, Shared};

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

/// The sockets the server listens on.
pub struct Listeners {
    /// The routes of the API, and the probes and metrics unless `admin` is given.
    pub main: std::net::TcpListener,
    /// The probes and metrics alone.
    pub admin: Option<std::net::TcpListener>,
}

/// Which routes a listener serves.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Surface {
    /// Every route (no separate administration address).
    All,
    /// The API (`/v1/…`) alone.
    Api,
    /// The probes and metrics alone.
    Admin,
}

/// Waits for a connection on `listener`; never, when there is none.
async fn accept(
    listener: Option<&tokio::net::TcpListener>,
) -> std::io::Result<(tokio::net::TcpStream, std::net::SocketAddr)> {
    match listener {
        Some(l) => l.accept().await,
        None => std::future::pending().await,
    }
}

/// One HTTP/1.1 connection on `stream` (TCP, or TLS over it), with keep-alive.
fn connection<S>(stream: S, shared: Arc<Shared>, surface: Surface) -> impl GracefulConnection
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let read_timeout = shared.read_timeout;
    let service = hyper::service::service_fn(move |request| {
        let shared = shared.clone();
        async move { Ok::<_, Infallible>(route(&shared, surface, request).await) }
    });
    // A client that never finishes its headers does not hold a connection forever.
    hyper::server::conn::http1::Builder::new()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(read_timeout)
        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
}

/// Accepts connections until SIGTERM or SIGINT, then waits up to `drain` for the requests in
/// flight. SIGHUP wakes the poller and reads the TLS files again.
pub async fn serve(listeners: Listeners, shared: Arc<Shared>, wake: mpsc::Sender<()>, drain: Duration) -> Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let main = tokio::net::TcpListener::from_std(listeners.main).context("cannot serve on the listener")?;
    let admin = match listeners.admin {
        Some(l) => Some(tokio::net::TcpListener::from_std(l).context("cannot serve on the admin listener")?),
        None => None,
    };
    let main_surface = if admin.is_some() { Surface::Api } else { Surface::All };
    let mut terminate = signal(SignalKind::terminate()).context("cannot watch SIGTERM")?;
    let mut interrupt = signal(SignalKind::interrupt()).context("cannot watch SIGINT")?;
    let mut hangup = signal(SignalKind::hangup()).context("cannot watch SIGHUP")?;
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    loop {
        let (accepted, surface) = tokio::select! {
            accepted = main.accept() => (accepted, main_surface),
            accepted = accept(admin.as_ref()) => (accepted, Surface::Admin),
            _ = hangup.recv() => {
                super::log("SIGHUP: reading the registry again");
                let _ = wake.send(());
                if let Some(tls) = &shared.tls {
                    match tls.reload() {
                        Ok(()) => super::log("SIGHUP: TLS certificate and key read again"),
                        Err(e) => {
                            shared.metrics.tls_reload_failures.inc();
                            super::log(&format!("error: {e:#}; still serving the certificate read before"));
                        }
                    }
                }
                continue;
            }
            _ = terminate.recv() => break,
            _ = interrupt.recv() => break,
        };
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
        // Beyond --max-connections a connection is closed as soon as it is taken: the client
        // sees a reset or an end of stream at once, instead of waiting in the backlog.
        let Ok(permit) = shared.connections.clone().try_acquire_owned() else {
            shared.metrics.connections_refused.inc();
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let read_timeout = shared.read_timeout;
        let watcher = graceful.watcher();
        let tls = shared.tls.as_ref().map(|tls| tls.acceptor());
        let shared = shared.clone();
        tokio::spawn(async move {
            match tls {
                None => {
                    let _ = watcher.watch(connection(stream, shared, surface)).await;
                }
                // A handshake that fails, or takes longer than a request's headers may, ends
                // the connection.
                Some(acceptor) => {
                    if let Ok(Ok(stream)) = tokio::time::timeout(read_timeout, acceptor.accept(stream)).await {
                        let _ = watcher.watch(connection(stream, shared, surface)).await;
                    }
                }
            }
            drop(permit);
        });
    }
    shared.draining.store(true, Ordering::SeqCst);
    super::log("draining: no new connections; waiting for the requests in flight");
    drop(main);
    drop(admin);
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
        "/openapi.json" => "/openapi.json",
        "/healthz" => "/healthz",
        "/readyz" => "/readyz",
        "/metrics" => "/metrics",
        _ => "other",
    }
}

/// What a route needs of its caller, and whether `surface` serves it.
pub(super) fn access(route: &str, surface: Surface) -> Option<Access> {
    let admin = matches!(route, "/healthz" | "/readyz" | "/metrics");
    let served = match surface {
        Surface::All => true,
        Surface::Api => !admin,
        Surface::Admin => admin,
    };
    served.then_some(match route {
        "/v1/predict" | "/v1/model" | "/openapi.json" => Access::Prediction,
        "/v1/feedback" => Access::Feedback,
        "/metrics" => Access::Admin,
        _ => Access::Open,
    })
}

/// 401 for a missing or wrong token, 403 for feedback while none may be given.
fn refused(refusal: Refusal) -> Answer {
    match refusal {
        Refusal::Unauthenticated => {
            let mut response =
                problem(StatusCode::UNAUTHORIZED, "a valid bearer token is needed (Authorization: Bearer TOKEN)");
            response.headers_mut().insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"mlgate\""));
            response
        }
        Refusal::FeedbackDisabled => problem(
            StatusCode::FORBIDDEN,
            "feedback is disabled: it moves production through live monitoring, so the server takes it only \
             from holders of a feedback token (--feedback-token-file FILE or MLGATE_FEEDBACK_TOKEN)",
        ),
    }
}

pub(super) async fn route<B: RequestBody>(shared: &Arc<Shared>, surface: Surface, request: Request<B>) -> Answer {
    let started = Instant::now();
    let _in_flight = InFlight::new(&shared.metrics.in_flight);
    let mut route = route_name(request.uri().path());
    let method = request.method().clone();
    let check = match access(route, surface) {
        Some(access) => shared.tokens.check(access, request.headers().get(AUTHORIZATION).map(|v| v.as_bytes())),
        None => {
            route = "other";
            Ok(())
        }
    };
    let response = match check {
        Err(refusal) => refused(refusal),
        Ok(()) => match (route, &method) {
            ("/v1/predict", &Method::POST) => predict(shared, request).await,
            ("/v1/feedback", &Method::POST) => feedback(shared, request).await,
            ("/v1/model", &Method::GET) => model_info(shared),
            ("/healthz", &Method::GET) => answer(StatusCode::OK, "text/plain; charset=utf-8", "ok\n"),
            ("/readyz", &Method::GET) => ready(shared),
            ("/openapi.json", &Method::GET) => openapi_document(shared, surface),
            ("/metrics", &Method::GET) => {
                let accept = request.headers().get(ACCEPT).and_then(|v| v.to_str().ok());
                let format = metrics::Format::negotiate(accept);
                answer(StatusCode::OK, format.content_type(), shared.metrics.render_as(format))
            }
            ("other", _) => problem(StatusCode::NOT_FOUND, format!("no route {}", echo(request.uri().path()))),
            _ => problem(StatusCode::METHOD_NOT_ALLOWED, format!("{route} does not take {method}")),
        },
    };
    let m = &shared.metrics;
    m.requests
        .get_or_create(&vec![("route", route.to_string()), ("status", response.status().as_u16().to_string())])
        .inc();
    m.duration.get_or_create(&vec![("route", route.to_string())]).observe(started.elapsed().as_secs_f64());
    response
}

/// A request counted in `mlgate_http_requests_in_flight` while it lives.
struct InFlight<'a>(&'a prometheus_client::metrics::gauge::Gauge);

impl<'a> InFlight<'a> {
    fn new(gauge: &'a prometheus_client::metrics::gauge::Gauge) -> Self {
        gauge.inc();
        InFlight(gauge)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.dec();
    }
}

fn openapi_document(shared: &Shared, surface: Surface) -> Answer {
    let Some(loaded) = shared.current() else {
        return problem(StatusCode::SERVICE_UNAVAILABLE, "no model loaded yet");
    };
    json(StatusCode::OK, &openapi::document(shared, &loaded, surface))
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

/// A request's body, read whole, and its share of the bodies' byte budget (given back when
/// the request is done with it).
pub(crate) struct Body {
    pub(crate) bytes: Bytes,
    _budget: Option<tokio::sync::OwnedSemaphorePermit>,
}

/// The budget's unit: a body holds one permit for each KiB (begun) it has sent.
pub(crate) const BUDGET_UNIT: usize = 1024;

/// Units of the budget `bytes` bytes take.
fn units(bytes: usize) -> usize {
    bytes.div_ceil(BUDGET_UNIT)
}

/// Reads a body of at most `--max-body-bytes` within the read timeout; `Err` is the answer to
/// give instead. The body takes its bytes from the budget of all bodies in flight
/// (`--max-scoring` × `--max-body-bytes`) as they arrive, not as announced: a client that sends
/// slowly holds what it has sent and nothing more; when the budget is spent, a body waits for
/// it at most [`SCORING_WAIT`], then gets 503.
async fn body<B: RequestBody>(shared: &Shared, request: Request<B>) -> std::result::Result<Body, Answer> {
    let limit = shared.read_timeout;
    let deadline = tokio::time::Instant::now() + limit;
    let stream = Limited::new(request.into_body(), shared.max_body);
    let mut stream = std::pin::pin!(stream);
    let mut bytes: Vec<u8> = Vec::new();
    let mut budget: Option<tokio::sync::OwnedSemaphorePermit> = None;
    loop {
        let frame = match tokio::time::timeout_at(deadline, stream.frame()).await {
            Err(_) => {
                return Err(problem(StatusCode::REQUEST_TIMEOUT, format!("the body did not arrive within {limit:?}")))
            }
            Ok(None) => break,
            Ok(Some(Err(e))) if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() => {
                return Err(problem(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!("the body is larger than {} bytes (--max-body-bytes)", shared.max_body),
                ))
            }
            Ok(Some(Err(e))) => return Err(problem(StatusCode::BAD_REQUEST, format!("cannot read the body: {e}"))),
            Ok(Some(Ok(frame))) => frame,
        };
        let Ok(data) = frame.into_data() else { continue };
        let more = units(bytes.len() + data.len()) - units(bytes.len());
        if more > 0 {
            let wanted = u32::try_from(more).unwrap_or(u32::MAX);
            let taken = tokio::time::timeout(SCORING_WAIT, shared.body_budget.clone().acquire_many_owned(wanted)).await;
            let Ok(Ok(taken)) = taken else {
                return Err(busy(shared));
            };
            match &mut budget {
                Some(held) => held.merge(taken),
                None => budget = Some(taken),
            }
        }
        bytes.extend_from_slice(&data);
    }
    Ok(Body { bytes: Bytes::from(bytes), _budget: budget })
}

/// Reads a body within the limits and parses it as `T`; `shape` says in the 400 what was
/// expected.
async fn read_json<T: serde::de::DeserializeOwned, B: RequestBody>(
    shared: &Shared,
    request: Request<B>,
    shape: &str,
) -> std::result::Result<T, Answer> {
    let body = body(shared, request).await?;
    serde_json::from_slice(&body.bytes)
        .map_err(|e| problem(StatusCode::BAD_REQUEST, format!("the body is not {shape}: {e}")))
}

fn unprocessable(shared: &Shared, tally: Tally, records: u64) -> Answer {
    shared.metrics.invalid_records.inc_by(records);
    let first = tally.listed.first().map(|b| format!(": record {} column `{}`: {}", b.record, b.column, b.rule));
    let counts: Vec<Value> = tally
        .counts
        .iter()
        .map(|((column, rule), count)| serde_json::json!({"column": column, "rule": rule, "count": count}))
        .collect();
    json(
        StatusCode::UNPROCESSABLE_ENTITY,
        &serde_json::json!({
            "error": format!("{} value(s) in {records} record(s) break the model's schema{}; nothing was scored", tally.total, first.unwrap_or_default()),
            "error_count": tally.total,
            "errors": tally.listed,
            "counts": counts,
        }),
    )
}

#[derive(Serialize)]
struct Prediction<'a> {
    id: &'a str,
    probability: f64,
    prediction: u8,
    receipt: String,
}

/// The receipts of predictions `(probability, decision)` answered by `loaded` now; `Err` when the
/// system gives no random bytes for their nonces.
fn receipts(
    shared: &Shared,
    loaded: &Loaded,
    scores: impl ExactSizeIterator<Item = (f64, bool)>,
) -> std::io::Result<Vec<String>> {
    let nonces = receipt::random_nonces(scores.len())?;
    let (model, time) = (shared.model_name(), unix_now());
    Ok(scores
        .zip(nonces)
        .map(|((probability, decision), nonce)| {
            let claims = Claims {
                model: model.to_string(),
                version: loaded.version.clone(),
                probability,
                decision,
                time,
                nonce,
            };
            shared.receipts.sign(&claims)
        })
        .collect())
}

/// How long a request waits, in line, for one of the --max-scoring permits before it is refused:
/// a burst of a few more clients than permits is served in turn (a balancer's retry would cost
/// more); a server kept busy past this says so.
const SCORING_WAIT: Duration = Duration::from_secs(1);

/// A scoring permit, waited for in line at most [`SCORING_WAIT`]; `None`: refuse with [`busy`].
async fn scoring_permit(shared: &Shared) -> Option<tokio::sync::OwnedSemaphorePermit> {
    let permit = tokio::time::timeout(SCORING_WAIT, shared.scoring.clone().acquire_owned()).await;
    permit.ok().and_then(Result::ok)
}

/// 503 with `Retry-After` when --max-scoring requests have been scored, or the bodies in flight
/// have held their whole budget, for longer than [`SCORING_WAIT`].
fn busy(shared: &Shared) -> Answer {
    shared.metrics.busy_refusals.inc();
    let mut response =
        problem(StatusCode::SERVICE_UNAVAILABLE, "the server is scoring as many requests as it may; retry shortly");
    response.headers_mut().insert(RETRY_AFTER, HeaderValue::from_static("1"));
    response
}

async fn predict<B: RequestBody>(shared: &Arc<Shared>, request: Request<B>) -> Answer {
    let csv = request
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().to_ascii_lowercase().starts_with("text/csv"));
    // The model a request starts with is the one it finishes with, whatever swaps meanwhile.
    let Some(loaded) = shared.current() else {
        return problem(StatusCode::SERVICE_UNAVAILABLE, "no model loaded yet");
    };
    // The body first (its bytes bounded by the bodies' budget), then a scoring permit: a client
    // slow to send holds no permit, and the permits bound the scoring in flight.
    let body = match body(shared, request).await {
        Ok(body) => body,
        Err(answer) => return answer,
    };
    let Some(permit) = scoring_permit(shared).await else {
        return busy(shared);
    };
    // Parsing and scoring are CPU work: on the blocking pool, so that the I/O threads stay free
    // for other connections (and the probes).
    let shared = shared.clone();
    let scored = tokio::task::spawn_blocking(move || {
        let _permit = permit;
        if csv {
            predict_csv(&shared, &loaded, &body.bytes)
        } else {
            predict_json(&shared, &loaded, &body.bytes)
        }
    })
    .await;
    scored.unwrap_or_else(|_| problem(StatusCode::INTERNAL_SERVER_ERROR, "scoring stopped unexpectedly"))
}

fn predict_json(shared: &Shared, loaded: &Loaded, bytes: &[u8]) -> Answer {
    let shape = "{\"records\": [{column: value, …}, …]}";
    let parsed = match records::read(bytes, loaded, shared.max_records) {
        Ok(parsed) => parsed,
        Err(e) => return problem(StatusCode::BAD_REQUEST, format!("the body is not {shape}: {e}")),
    };
    if let Some(answer) = too_many(shared, parsed.count, "records") {
        return answer;
    }
    if parsed.count == 0 {
        return problem(StatusCode::BAD_REQUEST, "no records to score");
    }
    score_json(shared, loaded, parsed)
}

fn score_json(shared: &Shared, loaded: &Loaded, parsed: records::Records) -> Answer {
    let records::Records { rows, bad_records, mut tally, .. } = parsed;
    let scored = loaded.compiled.score("request", &rows);
    let m = &shared.metrics;
    for ((column, rule), count) in &scored.errors.counts {
        m.invalid(column, rule.name(), *count);
    }
    for ((column, rule), count) in &tally.counts {
        m.invalid(column, rule, *count);
    }
    if tally.total > 0 || scored.errors.error_count > 0 {
        tally.total += scored.errors.error_count;
        for ((column, rule), count) in scored.errors.counts {
            *tally.counts.entry((column, rule.name().to_string())).or_default() += count;
        }
        tally.listed.extend(scored.errors.errors.into_iter().map(|e| Broken {
            record: e.line,
            column: e.column,
            value: e.value,
            rule: e.rule.name().to_string(),
            detail: e.detail,
        }));
        tally.listed.sort_by_key(|b| b.record);
        tally.listed.truncate(model::data::report::MAX_KEPT_ERRORS);
        // The listed errors are capped; the tally counts every record with a broken value.
        let records = bad_records.max(scored.errors.rows_with_errors);
        return unprocessable(shared, tally, records);
    }
    let artifact = loaded.compiled.artifact();
    let threshold = artifact.threshold.value;
    let id_column = artifact.schema.id().and_then(|c| loaded.index.get(&c.name).copied());
    // Ids the server makes are random: nothing in one says which replica made it or how many
    // came before.
    let ids: Vec<String> = match id_column {
        Some(at) => rows.iter().map(|(_, r)| String::from_utf8_lossy(&r[at]).into_owned()).collect(),
        None => match receipt::random_ids(rows.len()) {
            Ok(ids) => ids,
            Err(e) => return problem(StatusCode::INTERNAL_SERVER_ERROR, format!("cannot draw ids: {e}")),
        },
    };
    let decisions: Vec<bool> = scored.probabilities.iter().map(|&p| p >= threshold).collect();
    let receipts = match receipts(shared, loaded, scored.probabilities.iter().copied().zip(decisions.iter().copied())) {
        Ok(r) => r,
        Err(e) => return problem(StatusCode::INTERNAL_SERVER_ERROR, format!("cannot sign receipts: {e}")),
    };
    let version = &loaded.version;
    let positives = decisions.iter().filter(|&&d| d).count() as u64;
    let predictions: Vec<Prediction> = ids
        .iter()
        .zip(&scored.probabilities)
        .zip(decisions.iter().zip(receipts))
        .map(|((id, &probability), (&decision, receipt))| Prediction {
            id,
            probability,
            prediction: u8::from(decision),
            receipt,
        })
        .collect();
    m.scored(version, &scored.probabilities, positives, &scored.unseen_levels);
    let mut evicted = 0;
    {
        let mut live = shared.live.lock().expect("the live lock is never poisoned");
        for (p, (_, record)) in predictions.iter().zip(&rows) {
            evicted += live.log(p.id, version, p.probability, p.prediction == 1);
            live.remember(loaded, record);
        }
        m.log_size.set(live.waiting() as i64);
        m.log_bytes.set(live.bytes() as i64);
    }
    m.log_evicted.inc_by(evicted);
    json(StatusCode::OK, &serde_json::json!({ "model": artifact.name, "version": version, "predictions": predictions }))
}

/// Checks a CSV body before it is scored: at most `--max-records` rows (the header apart), and
/// ids (the column named `id_column`) of at most [`MAX_ID_BYTES`], as a JSON record's.
/// `Some` is the answer to give instead of scoring.
fn csv_precheck(shared: &Shared, bytes: &[u8], id_column: Option<&str>) -> Option<Answer> {
    let mut reader = csv::ReaderBuilder::new().flexible(true).from_reader(bytes);
    let at = match (id_column, reader.byte_headers()) {
        (Some(name), Ok(header)) => {
            header.iter().position(|h| h.strip_prefix(b"\xef\xbb\xbf").unwrap_or(h) == name.as_bytes())
        }
        _ => None,
    };
    let mut record = csv::ByteRecord::new();
    let mut rows = 0;
    // A body the csv crate cannot read is left to the scorer, which says where and why.
    while reader.read_byte_record(&mut record).unwrap_or(false) {
        rows += 1;
        if rows > shared.max_records {
            return Some(problem(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("more than {0} rows; at most {0} a request (--max-records)", shared.max_records),
            ));
        }
        if let Some(id) = at.and_then(|at| record.get(at)).filter(|id| id.len() > MAX_ID_BYTES) {
            let line = record.position().map_or(0, |p| p.line());
            let column = id_column.unwrap_or_default();
            return Some(problem(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("line {line} column `{column}`: an id of {} bytes; at most {MAX_ID_BYTES} (too_long); nothing was scored", id.len()),
            ));
        }
    }
    None
}

/// A row of the scored CSV: where its line is in the output, its id (first field) and scores.
struct ScoredRow {
    span: (usize, usize),
    id: String,
    probability: f64,
    decision: bool,
}

/// The rows of `predict`'s output, read back; `None` if a row's scores do not parse.
fn scored_rows(out: &[u8]) -> Option<Vec<ScoredRow>> {
    let mut reader = csv::Reader::from_reader(out);
    let mut rows: Vec<ScoredRow> = Vec::new();
    for record in reader.records() {
        let record = record.ok()?;
        let start = record.position()?.byte() as usize;
        if let Some(last) = rows.last_mut() {
            last.span.1 = start;
        }
        let n = record.len();
        rows.push(ScoredRow {
            span: (start, out.len()),
            id: record.get(0)?.to_string(),
            probability: record.get(n.checked_sub(2)?)?.parse().ok()?,
            decision: record.get(n - 1)? == "1",
        });
    }
    Some(rows)
}

/// A line without its terminator (`\n` or `\r\n`).
fn trim_line_end(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// A CSV body, scored as `predict` scores a file: the same output, the same errors, and a
/// `receipt` column.
fn predict_csv(shared: &Shared, loaded: &Loaded, bytes: &[u8]) -> Answer {
    let id_column = loaded.compiled.artifact().schema.id().map(|c| c.name.as_str());
    if let Some(answer) = csv_precheck(shared, bytes, id_column) {
        return answer;
    }
    let mut out = Vec::new();
    let result = model::pipeline::scoring::score_csv(loaded.compiled.artifact(), bytes, "request", &mut out);
    let m = &shared.metrics;
    match result {
        Ok(summary) => {
            let version = &loaded.version;
            // The output read back: its last two columns are the scores, its first the id when
            // the schema has one (those rows' predictions then wait for their feedback).
            let Some(rows) = scored_rows(&out) else {
                return problem(StatusCode::INTERNAL_SERVER_ERROR, "cannot read the scores back");
            };
            let probabilities: Vec<f64> = rows.iter().map(|r| r.probability).collect();
            m.scored(version, &probabilities, summary.positives, &summary.unseen_levels);
            let receipts = match receipts(shared, loaded, rows.iter().map(|r| (r.probability, r.decision))) {
                Ok(r) => r,
                Err(e) => return problem(StatusCode::INTERNAL_SERVER_ERROR, format!("cannot sign receipts: {e}")),
            };
            if loaded.compiled.artifact().schema.id().is_some() {
                let mut evicted = 0;
                let mut live = shared.live.lock().expect("the live lock is never poisoned");
                for row in &rows {
                    evicted += live.log(&row.id, version, row.probability, row.decision);
                }
                m.log_size.set(live.waiting() as i64);
                m.log_bytes.set(live.bytes() as i64);
                m.log_evicted.inc_by(evicted);
            }
            // `predict`'s output, each line with its receipt as a last column.
            let mut body = Vec::with_capacity(out.len() + rows.len() * 200);
            let header_end = rows.first().map_or(out.len(), |r| r.span.0);
            body.extend_from_slice(trim_line_end(&out[..header_end]));
            body.extend_from_slice(b",receipt\n");
            for (row, receipt) in rows.iter().zip(&receipts) {
                body.extend_from_slice(trim_line_end(&out[row.span.0..row.span.1]));
                body.push(b',');
                body.extend_from_slice(receipt.as_bytes());
                body.push(b'\n');
            }
            let mut response = answer(StatusCode::OK, "text/csv; charset=utf-8", body);
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

/// `{id, label}` or `{receipt, label}`.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct FeedbackItem {
    #[serde(default)]
    id: Option<Value>,
    #[serde(default)]
    receipt: Option<Value>,
    label: Value,
}

/// How a feedback item names its prediction.
enum Names<'a> {
    /// An id of this replica's log.
    Id(String),
    /// A receipt, checked later (a bad one is refused alone, with its reason).
    Receipt(&'a Value),
}

/// A receipt refused, in the answer.
#[derive(Serialize)]
struct RefusedItem {
    item: usize,
    reason: &'static str,
    detail: String,
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

/// How an item names its prediction, or what is wrong with it.
fn names(item: &FeedbackItem, i: usize) -> std::result::Result<Names<'_>, Broken> {
    let broken = |column: &str, value: &Value, rule: &str, detail: String| Broken {
        record: i as u64,
        column: column.into(),
        value: echo(&value.to_string()),
        rule: rule.into(),
        detail,
    };
    match (&item.id, &item.receipt) {
        (Some(_), Some(receipt)) => Err(broken(
            "receipt",
            receipt,
            "id_and_receipt",
            "an item names its prediction by `receipt` or by `id`, not both".into(),
        )),
        (None, Some(receipt)) => Ok(Names::Receipt(receipt)),
        (Some(Value::String(s)), None) if s.len() <= MAX_ID_BYTES => Ok(Names::Id(s.clone())),
        (Some(Value::Number(n)), None) => Ok(Names::Id(n.to_string())),
        (id, None) => Err(broken(
            "id",
            id.as_ref().unwrap_or(&Value::Null),
            "not_an_id",
            format!(
                "an item names its prediction by its `receipt`, or by its `id`: a string (of at most {MAX_ID_BYTES} bytes) or a number, as the prediction gave it"
            ),
        )),
    }
}

async fn feedback<B: RequestBody>(shared: &Shared, request: Request<B>) -> Answer {
    let Some(loaded) = shared.current() else {
        return problem(StatusCode::SERVICE_UNAVAILABLE, "no model loaded yet");
    };
    let shape = "{\"feedback\": [{\"receipt\": …, \"label\": …} or {\"id\": …, \"label\": …}, …]}";
    let parsed: FeedbackRequest = match read_json(shared, request, shape).await {
        Ok(p) => p,
        Err(answer) => return answer,
    };
    let Some(_permit) = scoring_permit(shared).await else {
        return busy(shared);
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
    // Every item is read before any is joined: a request that cannot be read changes nothing.
    let mut items = Vec::with_capacity(parsed.feedback.len());
    let mut broken = Vec::new();
    for (i, item) in parsed.feedback.iter().enumerate() {
        let value = match &item.label {
            Value::Bool(b) => Some(*b),
            Value::String(s) if s == positive => Some(true),
            Value::String(s) if s == negative => Some(false),
            _ => None,
        };
        match (names(item, i), value) {
            (Ok(names), Some(value)) => items.push((names, value)),
            (Err(b), _) => broken.push(b),
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
    // Receipts are verified first (their tags, outside any lock), then each is joined at most
    // once on this replica.
    let now = unix_now();
    let model = shared.model_name();
    let mut checked: Vec<Option<std::result::Result<Claims, receipt::Refused>>> = items
        .iter()
        .map(|(names, _)| match names {
            Names::Id(_) => None,
            Names::Receipt(Value::String(r)) => Some(shared.receipts.verify(r, model, now, shared.receipt_ttl)),
            Names::Receipt(other) => Some(Err(receipt::Refused {
                reason: receipt::Reason::Malformed,
                detail: format!("a receipt is a string, as the prediction gave it, not {}", echo(&other.to_string())),
            })),
        })
        .collect();
    {
        let mut seen = shared.seen.lock().expect("the receipts lock is never poisoned");
        for claims in checked.iter_mut().flatten() {
            if let Ok(c) = claims {
                if let Err(refused) = seen.join(c, c.time.saturating_add(shared.receipt_ttl), now) {
                    *claims = Err(refused);
                }
            }
        }
    }
    let (mut unmatched, mut refusals) = (0u64, Vec::new());
    let mut joined: Vec<(live::Answered, bool)> = Vec::new();
    let figures: Vec<live::LiveFigures> = {
        let mut live = shared.live.lock().expect("the live lock is never poisoned");
        for (i, ((names, value), check)) in items.iter().zip(checked).enumerate() {
            let answered = match (names, check) {
                (Names::Id(id), _) => live.join(id, *value),
                (Names::Receipt(_), Some(Ok(c))) => {
                    let answered =
                        live::Answered { version: c.version, probability: c.probability, decision: c.decision };
                    live.record(&answered, *value);
                    Some(answered)
                }
                (Names::Receipt(_), Some(Err(refused))) => {
                    refusals.push(RefusedItem { item: i, reason: refused.reason.name(), detail: refused.detail });
                    continue;
                }
                (Names::Receipt(_), None) => unreachable!("every receipt is checked"),
            };
            match answered {
                Some(a) => joined.push((a, *value)),
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
        let mut touched: Vec<&str> = joined.iter().map(|(a, _)| a.version.as_str()).collect();
        touched.sort_unstable();
        touched.dedup();
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
    for (a, label) in &joined {
        m.joined(&a.version, a.probability, a.decision, *label);
    }
    for r in &refusals {
        m.feedback_refused.get_or_create(&vec![("reason", r.reason.to_string())]).inc();
    }
    m.feedback_joined.inc_by(joined.len() as u64);
    m.feedback_unmatched.inc_by(unmatched);
    json(
        StatusCode::OK,
        &serde_json::json!({
            "received": items.len(),
            "joined": joined.len(),
            "unmatched": unmatched,
            "refused": refusals.len(),
            "refusals": refusals,
        }),
    )
}
