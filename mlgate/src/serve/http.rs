//! The routes, on hyper: one task a connection, on one of the connection threads
//! ([`super::workers`]), HTTP/1.1 with keep-alive, a graceful drain.
//!
//! | route | |
//! |---|---|
//! | `POST /v1/predict` | JSON records or a CSV body → probabilities, decisions and receipts ([`predict`]) |
//! | `POST /v1/feedback` | labels for earlier predictions, joined by receipt or by id ([`feedback`]) |
//! | `GET /v1/model` | the served model's identity, metrics at acceptance, lineage |
//! | `GET /openapi.json` | the OpenAPI 3.1 description of these routes, from the served model's schema ([`super::openapi`]) |
//! | `GET /healthz`, `GET /readyz` | alive; ready with a model loaded and not draining |
//! | `GET /metrics` | the Prometheus metrics, OpenMetrics or classic text as `Accept` asks ([`super::metrics`]) |
//! | `POST /invocations`, `GET /ping`, `/health`, `/version` | MLflow's scoring protocol ([`super::mlflow`]) |
//! | `POST /v1/models/NAME:predict`, `GET /v1/models/NAME` | KServe V1 ([`super::kserve`]) |
//! | `GET /v2`, `/v2/health/live`, `/v2/health/ready`, `/v2/models/NAME[/ready]`, `POST /v2/models/NAME/infer` | the Open Inference Protocol, REST ([`super::kserve`]) |
//!
//! Every route answers a method it does not take with 405 and `Allow`; every error is one
//! RFC 9457 problem ([`super::answer`]), rewritten to MLflow's or KServe's error shape on their
//! routes, whose clients read those.
//!
//! Predictions (on every protocol), `/v1/model`, `/openapi.json` and `/v2/models/NAME` take a prediction token, feedback a feedback token, `/metrics` an
//! admin token, each when configured ([`super::auth`]); the probes are open. With an admin
//! address the probes and metrics are served there alone ([`Surface`]).
//!
//! [`route`] answers one request and can be called without a socket (any [`RequestBody`]).

use std::convert::Infallible;
use std::fmt::Write as _;
use std::sync::atomic::Ordering;
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use hyper::header::{HeaderValue, ACCEPT, ALLOW, AUTHORIZATION, WWW_AUTHENTICATE};
use hyper::{Method, Request, StatusCode};
use hyper_util::server::graceful::GracefulConnection;
use serde::Serialize;
use serde_json::Value;

use super::answer::{answer, in_dialect, json, problem, problem_of, Answer, Dialect, INVALID_VALUES};
use super::auth::{Access, Refusal};
use super::intake::{busy, media_type, read_json, scoring, scoring_permit, too_many, Job, RequestBody};
use super::receipt::{self, Claims};
use super::records::{self, Broken, MAX_ID_BYTES};
use super::rollout::{Role, Serving};
use super::score::{self, Origin};
use super::workers::Workers;
use super::{event_log, kserve, live, metrics, mlflow, openapi, unix_now, Shared};

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

/// Accepts connections until SIGTERM or SIGINT, each run on one of `workers`' threads, then
/// waits up to `drain` for the requests in flight. SIGHUP wakes the poller and reads the TLS
/// files again.
pub async fn serve(
    listeners: Listeners,
    shared: Arc<Shared>,
    wake: mpsc::Sender<()>,
    drain: Duration,
    workers: &Workers,
) -> Result<()> {
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
        // Taken off this thread's poller, to be watched by the worker's.
        let stream = match stream.into_std() {
            Ok(s) => s,
            Err(e) => {
                super::log(&format!("warning: cannot hand a connection over: {e}"));
                continue;
            }
        };
        let read_timeout = shared.read_timeout;
        let watcher = graceful.watcher();
        let tls = shared.tls.as_ref().map(|tls| tls.acceptor());
        let shared = shared.clone();
        workers.run(async move {
            let Ok(stream) = tokio::net::TcpStream::from_std(stream) else {
                drop(permit);
                return;
            };
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

/// The routes, each with its label in the metrics, its methods, the caller it needs, the
/// surface it is served on and the error shape its clients expect.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Route {
    Predict,
    Feedback,
    Model,
    OpenApi,
    Healthz,
    Readyz,
    Metrics,
    /// MLflow's scoring server ([`super::mlflow`]).
    Invocations,
    Ping,
    Health,
    Version,
    /// KServe V1 ([`super::kserve`]).
    V1Model,
    V1Predict,
    /// The Open Inference Protocol (V2).
    V2Live,
    V2Ready,
    V2Server,
    V2Model,
    V2ModelReady,
    V2Infer,
}

/// A request's route, with the model (and version) its path names.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Target<'a> {
    route: Route,
    model: &'a str,
    version: Option<&'a str>,
}

impl Route {
    fn label(self) -> &'static str {
        match self {
            Route::Predict => "/v1/predict",
            Route::Feedback => "/v1/feedback",
            Route::Model => "/v1/model",
            Route::OpenApi => "/openapi.json",
            Route::Healthz => "/healthz",
            Route::Readyz => "/readyz",
            Route::Metrics => "/metrics",
            Route::Invocations => "/invocations",
            Route::Ping => "/ping",
            Route::Health => "/health",
            Route::Version => "/version",
            Route::V1Model => "/v1/models/{name}",
            Route::V1Predict => "/v1/models/{name}:predict",
            Route::V2Live => "/v2/health/live",
            Route::V2Ready => "/v2/health/ready",
            Route::V2Server => "/v2",
            Route::V2Model => "/v2/models/{name}",
            Route::V2ModelReady => "/v2/models/{name}/ready",
            Route::V2Infer => "/v2/models/{name}/infer",
        }
    }

    /// Whether the route takes a body (`POST`), else it is read (`GET`, and `HEAD`).
    fn posted(self) -> bool {
        matches!(self, Route::Predict | Route::Feedback | Route::Invocations | Route::V1Predict | Route::V2Infer)
    }

    /// The `Allow` header of the route.
    fn allow(self) -> &'static str {
        if self.posted() {
            "POST"
        } else {
            "GET, HEAD"
        }
    }

    fn allows(self, method: &Method) -> bool {
        if self.posted() {
            method == Method::POST
        } else {
            method == Method::GET || method == Method::HEAD
        }
    }

    fn access(self) -> Access {
        match self {
            Route::Predict
            | Route::Model
            | Route::OpenApi
            | Route::Invocations
            | Route::V1Predict
            | Route::V2Model
            | Route::V2Infer => Access::Prediction,
            Route::Feedback => Access::Feedback,
            Route::Metrics => Access::Admin,
            _ => Access::Open,
        }
    }

    /// Whether `surface` serves the route: the probes and metrics on the admin address when
    /// there is one, the API (the protocols' own health routes included) on the main one.
    fn served_on(self, surface: Surface) -> bool {
        let admin = matches!(self, Route::Healthz | Route::Readyz | Route::Metrics);
        match surface {
            Surface::All => true,
            Surface::Api => !admin,
            Surface::Admin => admin,
        }
    }

    fn dialect(self) -> Dialect {
        match self {
            Route::Invocations | Route::Ping | Route::Health | Route::Version => Dialect::Mlflow,
            Route::V1Model
            | Route::V1Predict
            | Route::V2Live
            | Route::V2Ready
            | Route::V2Server
            | Route::V2Model
            | Route::V2ModelReady
            | Route::V2Infer => Dialect::Kserve,
            _ => Dialect::Problem,
        }
    }
}

/// The route a path names, if any.
fn resolve(path: &str) -> Option<Target<'_>> {
    let fixed = |route| Some(Target { route, model: "", version: None });
    match path {
        "/v1/predict" => return fixed(Route::Predict),
        "/v1/feedback" => return fixed(Route::Feedback),
        "/v1/model" => return fixed(Route::Model),
        "/openapi.json" => return fixed(Route::OpenApi),
        "/healthz" => return fixed(Route::Healthz),
        "/readyz" => return fixed(Route::Readyz),
        "/metrics" => return fixed(Route::Metrics),
        "/invocations" => return fixed(Route::Invocations),
        "/ping" => return fixed(Route::Ping),
        "/health" => return fixed(Route::Health),
        "/version" => return fixed(Route::Version),
        "/v2/health/live" => return fixed(Route::V2Live),
        "/v2/health/ready" => return fixed(Route::V2Ready),
        "/v2" => return fixed(Route::V2Server),
        _ => {}
    }
    if let Some(rest) = path.strip_prefix("/v1/models/") {
        let (model, route) = match rest.strip_suffix(":predict") {
            Some(model) => (model, Route::V1Predict),
            None => (rest, Route::V1Model),
        };
        return (!model.is_empty() && !model.contains(['/', ':'])).then_some(Target { route, model, version: None });
    }
    let rest = path.strip_prefix("/v2/models/")?;
    let mut parts = rest.split('/');
    let model = parts.next().filter(|m| !m.is_empty())?;
    let mut next = parts.next();
    let mut version = None;
    if next == Some("versions") {
        version = Some(parts.next().filter(|v| !v.is_empty())?);
        next = parts.next();
    }
    let route = match next {
        None => Route::V2Model,
        Some("ready") => Route::V2ModelReady,
        Some("infer") => Route::V2Infer,
        Some(_) => return None,
    };
    parts.next().is_none().then_some(Target { route, model, version })
}

/// What the route at `path` needs of its caller, when `surface` serves it.
pub(super) fn access(path: &str, surface: Surface) -> Option<Access> {
    resolve(path).filter(|t| t.route.served_on(surface)).map(|t| t.route.access())
}

/// The error shape the route at `path` answers in (mlgate's problem where `path` names no route).
pub(super) fn dialect(path: &str) -> Dialect {
    resolve(path).map_or(Dialect::Problem, |t| t.route.dialect())
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
    let path = request.uri().path().to_string();
    let target = resolve(&path).filter(|t| t.route.served_on(surface));
    let label = target.map_or("other", |t| t.route.label());
    let method = request.method().clone();
    let response = match target {
        None => problem(StatusCode::NOT_FOUND, format!("no route {}", echo(&path))),
        Some(t) => {
            let token = request.headers().get(AUTHORIZATION).map(|v| v.as_bytes());
            // The method first: a route's methods are no secret, and 405 says them to anyone.
            let response = if !t.route.allows(&method) {
                let mut response = problem(
                    StatusCode::METHOD_NOT_ALLOWED,
                    format!("{} takes {}, not {}", t.route.label(), t.route.allow(), echo(method.as_str())),
                );
                response.headers_mut().insert(ALLOW, HeaderValue::from_static(t.route.allow()));
                response
            } else {
                match shared.tokens.check(t.route.access(), token) {
                    Err(refusal) => refused(refusal),
                    Ok(()) => dispatch(shared, t, surface, request).await,
                }
            };
            in_dialect(t.route.dialect(), response)
        }
    };
    let m = &shared.metrics;
    m.requests
        .get_or_create(&vec![("route", label.to_string()), ("status", response.status().as_u16().to_string())])
        .inc();
    m.duration.get_or_create(&vec![("route", label.to_string())]).observe(started.elapsed().as_secs_f64());
    response
}

/// Answers a request whose route, method and caller are settled.
async fn dispatch<B: RequestBody>(
    shared: &Arc<Shared>,
    t: Target<'_>,
    surface: Surface,
    request: Request<B>,
) -> Answer {
    match t.route {
        Route::Predict => predict(shared, request).await,
        Route::Feedback => feedback(shared, request).await,
        Route::Model => model_info(shared),
        Route::Healthz => answer(StatusCode::OK, "text/plain; charset=utf-8", "ok\n"),
        Route::Readyz => ready(shared),
        Route::OpenApi => openapi_document(shared, surface),
        Route::Metrics => {
            let accept = request.headers().get(ACCEPT).and_then(|v| v.to_str().ok());
            let format = metrics::Format::negotiate(accept);
            answer(StatusCode::OK, format.content_type(), shared.metrics.render_as(format))
        }
        Route::Invocations => mlflow::invocations(shared, request).await,
        Route::Ping | Route::Health => mlflow::ping(shared),
        Route::Version => mlflow::version(),
        Route::V1Model => kserve::v1_model(shared, t.model),
        Route::V1Predict => kserve::v1_predict(shared, t.model, request).await,
        Route::V2Live => kserve::v2_live(shared),
        Route::V2Ready => kserve::v2_ready(shared),
        Route::V2Server => kserve::v2_server(),
        Route::V2Model => kserve::v2_model(shared, t.model, t.version),
        Route::V2ModelReady => kserve::v2_model_ready(shared, t.model, t.version),
        Route::V2Infer => kserve::v2_infer(shared, t.model, t.version, request).await,
    }
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

async fn predict<B: RequestBody>(shared: &Arc<Shared>, request: Request<B>) -> Answer {
    let csv = media_type(&request) == "text/csv";
    let job: Job = if csv { Box::new(predict_csv) } else { Box::new(predict_json) };
    scoring(shared, request, job).await
}

fn predict_json(shared: &Shared, loaded: &Serving, bytes: &[u8]) -> Answer {
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
    // Written straight from the predictions, not through a JSON tree.
    #[derive(serde::Serialize)]
    struct Predicted<'a> {
        model: &'a str,
        version: &'a str,
        predictions: Vec<score::Prediction<'a>>,
    }
    match score::score(shared, loaded, parsed, Origin::Records, true) {
        Ok(scored) => json(
            StatusCode::OK,
            &Predicted {
                model: &loaded.compiled.artifact().name,
                version: &loaded.version,
                predictions: scored.predictions(),
            },
        ),
        Err(answer) => answer,
    }
}

/// A CSV body, read straight into the compiled plan's rows and scored as a JSON request is:
/// `predict`'s output for the same file (`[id,]probability,prediction`) with a last column,
/// `receipt`; its errors located by record and by line.
fn predict_csv(shared: &Shared, loaded: &Serving, bytes: &[u8]) -> Answer {
    let read = match loaded.compiled.read_csv(bytes, "request", shared.max_records) {
        Ok(read) => read,
        Err(e) => return problem(StatusCode::UNPROCESSABLE_ENTITY, format!("cannot score the CSV: {e}")),
    };
    if let Some(answer) = too_many(shared, read.count, "rows") {
        return answer;
    }
    let (records, lines) = score::csv_records(loaded, read);
    let id_column = loaded.compiled.artifact().schema.id().map(|c| c.name.clone());
    // Without an id column the answer shows no id: nothing could be joined to one by id.
    let scored = match score::score(shared, loaded, records, Origin::Csv(&lines), id_column.is_some()) {
        Ok(scored) => scored,
        Err(answer) => return answer,
    };
    let mut body = String::with_capacity(64 + scored.ids.len() * 200);
    if let Some(id) = &id_column {
        model::pipeline::scoring::csv_field(&mut body, id);
        body.push(',');
    }
    body.push_str("probability,prediction,receipt");
    // While a rollout is open, each row says which version answered it and, in shadow mode,
    // what the shadow said (outside a rollout the `x-model-version` header says it of them all).
    let rollout = scored.in_rollout();
    if rollout {
        body.push_str(",version,role");
    }
    if scored.shadow.is_some() {
        body.push_str(",shadow_version,shadow_probability");
    }
    body.push('\n');
    for i in 0..scored.ids.len() {
        if id_column.is_some() {
            model::pipeline::scoring::csv_field(&mut body, &scored.ids[i]);
            body.push(',');
        }
        let _ = write!(body, "{},{},{}", scored.probabilities[i], u8::from(scored.decisions[i]), scored.receipts[i]);
        if rollout {
            let (version, role) = scored.version(i);
            body.push(',');
            model::pipeline::scoring::csv_field(&mut body, version);
            let _ = write!(body, ",{}", role.name());
        }
        if let Some((version, _)) = &scored.shadow {
            body.push(',');
            match scored.shadow_of(i) {
                Some((_, p)) => {
                    model::pipeline::scoring::csv_field(&mut body, version);
                    let _ = write!(body, ",{p}");
                }
                None => body.push(','),
            }
        }
        body.push('\n');
    }
    answer(StatusCode::OK, "text/csv; charset=utf-8", body)
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

/// How an item names its prediction, or what is wrong with it.
fn names(item: &FeedbackItem, i: usize) -> std::result::Result<Names<'_>, Broken> {
    let broken = |column: &str, value: &Value, rule: &str, detail: String| Broken {
        record: i as u64,
        line: None,
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
                line: None,
                column: label.name.clone(),
                value: echo(&item.label.to_string()),
                rule: "not_a_label".into(),
                detail: format!("a label is \"{positive}\", \"{negative}\", true or false"),
            }),
        }
    }
    if !broken.is_empty() {
        let records = broken.len() as u64;
        let mut extensions = serde_json::Map::new();
        extensions.insert("error_count".into(), records.into());
        extensions.insert("errors".into(), serde_json::to_value(&broken).expect("errors serialise"));
        return problem_of(
            INVALID_VALUES,
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("{records} feedback item(s) cannot be read; none was recorded"),
            extensions,
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
    // How each joined item named its prediction, for the event log.
    let mut named: Vec<event_log::Named> = Vec::new();
    let figures: Vec<live::LiveFigures> = {
        let mut live = shared.live.lock().expect("the live lock is never poisoned");
        for (i, ((names, value), check)) in items.iter().zip(checked).enumerate() {
            let answered = match (names, check) {
                (Names::Id(id), _) => live.join(id, *value),
                (Names::Receipt(_), Some(Ok(c))) => {
                    let answered = live::Answered {
                        version: c.version.into(),
                        role: c.role,
                        probability: c.probability,
                        decision: c.decision,
                        shadow: c.shadow,
                    };
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
                Some(a) => {
                    joined.push((a, *value));
                    if shared.events.is_some() {
                        named.push(match names {
                            Names::Id(id) => event_log::Named::Id(id.clone()),
                            Names::Receipt(r) => event_log::Named::Receipt(r.as_str().unwrap_or_default().to_string()),
                        });
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
        let mut touched: Vec<&str> = joined.iter().map(|(a, _)| &*a.version).collect();
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
        m.joined(&a.version, a.role, a.probability, a.decision, *label);
        // A shadow's outcome is its own; the pair says which of the two was right on the same
        // record. A receipt is joined once per replica, a logged prediction once: so is its pair.
        if let Some(shadow) = &a.shadow {
            m.joined(&shadow.version, Role::Shadow, shadow.probability, shadow.decision, *label);
            m.shadow_pair(&a.version, &shadow.version, a.decision == *label, shadow.decision == *label);
        }
    }
    for r in &refusals {
        m.feedback_refused.get_or_create(&vec![("reason", r.reason.to_string())]).inc();
    }
    if let Some(events) = &shared.events {
        events.feedback(shared, &joined, &named);
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
