//! MLflow's scoring protocol, as `mlflow models serve` answers it
//! (`mlflow/pyfunc/scoring_server/__init__.py`), so that a client written for it works
//! unchanged: `POST /invocations` with `application/json` — exactly one of `dataframe_split`,
//! `dataframe_records`, `instances`, `inputs`, and optional `params` — or `text/csv`;
//! `GET /ping` and `/health` (200 once a model is loaded), `GET /version`.
//!
//! `{"predictions": […]}` holds what an MLflow scikit-learn classifier's pyfunc returns: the
//! class, 0 or 1 (the decision at the artifact's threshold). `params.predict_method` asks for
//! more: `"predict_proba"` gives `[1 − p, p]` per record as scikit-learn's `predict_proba`
//! (`p` is `/v1/predict`'s probability, bit for bit), `"mlgate"` the objects `/v1/predict`
//! answers (`id`, `probability`, `prediction`, `receipt`). Beside `predictions`, where MLflow's
//! server puts its metadata, the answer carries `ids` and `receipts`, one per record. Errors are
//! MLflow's `{"error_code", "message"}` (a value that breaks the schema: 400 `BAD_REQUEST`, with
//! the per-value `errors` and `counts` beside); an unsupported content type is 415 in plain text,
//! as MLflow answers it.

// An error here is the answer to give, made once per request and given at once: boxing it
// would buy nothing.
#![allow(clippy::result_large_err)]

use std::sync::Arc;

use hyper::{Request, StatusCode};
use serde::Deserialize;
use serde_json::{Map, Value};

use super::answer::{answer, json, problem, Answer};
use super::intake::{scoring, too_many, RequestBody};
use super::records::{Builder, Entries, Table, TABLE_SHAPES};
use super::rollout::{Role, Serving};
use super::score::{self, Origin, Scored};
use super::Shared;

/// MLflow's own words for a body without exactly one input field.
const REQUIRED_INPUT_FORMAT: &str = "The input must be a JSON dictionary with exactly one of the input fields \
     {'dataframe_split', 'dataframe_records', 'instances', 'inputs'}";

/// The JSON body: the input fields and `params`; other keys are ignored, as MLflow ignores them.
#[derive(Deserialize)]
struct Invocation {
    dataframe_split: Option<Split>,
    dataframe_records: Option<Vec<Entries<Value>>>,
    instances: Option<Table>,
    inputs: Option<Table>,
    params: Option<Map<String, Value>>,
}

/// pandas' `split` orientation: the columns' names and the rows (the index is not read).
#[derive(Deserialize)]
struct Split {
    columns: Option<Vec<String>>,
    data: Vec<Vec<Value>>,
}

/// What `predictions` holds.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Method {
    Predict,
    PredictProba,
    Mlgate,
}

/// `GET /ping`, `GET /health`: 200 (a newline, as MLflow answers) once a model is loaded.
pub(super) fn ping(shared: &Shared) -> Answer {
    match shared.current() {
        Some(_) => answer(StatusCode::OK, "application/json", "\n"),
        None => problem(StatusCode::NOT_FOUND, "no model loaded yet"),
    }
}

/// `GET /version`: the server's version (MLflow answers its own).
pub(super) fn version() -> Answer {
    answer(StatusCode::OK, "text/plain; charset=utf-8", env!("CARGO_PKG_VERSION"))
}

/// `POST /invocations`.
pub(super) async fn invocations<B: RequestBody>(shared: &Arc<Shared>, request: Request<B>) -> Answer {
    let raw = request.headers().get(hyper::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let mut parts = raw.split(';').map(str::trim);
    let media = parts.next().unwrap_or("").to_ascii_lowercase();
    for parameter in parts.filter(|p| !p.is_empty()) {
        let (key, value) = parameter.split_once('=').unwrap_or((parameter, ""));
        let unsupported = if key.trim().eq_ignore_ascii_case("charset") {
            (!value.trim().trim_matches('"').eq_ignore_ascii_case("utf-8"))
                .then(|| "The scoring server only supports UTF-8".to_string())
        } else {
            Some(format!("Unrecognized content type parameters: {}", model::data::report::echo(key.trim())))
        };
        if let Some(text) = unsupported {
            return answer(StatusCode::UNSUPPORTED_MEDIA_TYPE, "text/plain; charset=utf-8", text);
        }
    }
    match media.as_str() {
        "application/json" => scoring(shared, request, Box::new(json_invocation)).await,
        "text/csv" => scoring(shared, request, Box::new(csv_invocation)).await,
        _ => answer(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "text/plain; charset=utf-8",
            format!(
                "This predictor only supports the following content types: Types: ['text/csv', 'application/json']. Got '{}'.",
                model::data::report::echo(raw)
            ),
        ),
    }
}

fn json_invocation(shared: &Shared, loaded: &Serving, bytes: &[u8]) -> Answer {
    let invocation: Invocation = match serde_json::from_slice(bytes) {
        Ok(i) => i,
        Err(e) => {
            return problem(
                StatusCode::BAD_REQUEST,
                format!(
                    "{REQUIRED_INPUT_FORMAT}. The body is not such a dictionary: {e}; each field holds {TABLE_SHAPES}; \
                     dataframe_split holds {{\"columns\": [...], \"data\": [[...], ...]}}"
                ),
            )
        }
    };
    let given: Vec<&str> = [
        ("dataframe_split", invocation.dataframe_split.is_some()),
        ("dataframe_records", invocation.dataframe_records.is_some()),
        ("instances", invocation.instances.is_some()),
        ("inputs", invocation.inputs.is_some()),
    ]
    .into_iter()
    .filter_map(|(name, present)| present.then_some(name))
    .collect();
    if given.len() != 1 {
        return problem(
            StatusCode::BAD_REQUEST,
            format!("{REQUIRED_INPUT_FORMAT}. Received dictionary with input fields: {given:?}"),
        );
    }
    let method = match method(invocation.params.as_ref()) {
        Ok(m) => m,
        Err(answer) => return answer,
    };
    let mut builder = Builder::new(loaded, shared.max_records);
    if let Some(split) = &invocation.dataframe_split {
        let names: Vec<&str> = match &split.columns {
            Some(columns) => columns.iter().map(String::as_str).collect(),
            None => builder.columns().iter().map(String::as_str).collect(),
        };
        for row in &split.data {
            builder.row(&names, row.iter());
        }
    } else if let Some(records) = &invocation.dataframe_records {
        for record in records {
            builder.record(record.0.iter().map(|(k, v)| (k.as_str(), v)));
        }
    } else if let Some(table) = invocation.instances.as_ref().or(invocation.inputs.as_ref()) {
        if let Err(why) = builder.table(table) {
            return problem(StatusCode::BAD_REQUEST, why);
        }
    }
    let records = builder.into_records();
    if let Some(answer) = too_many(shared, records.count, "records") {
        return answer;
    }
    if records.count == 0 {
        return problem(StatusCode::BAD_REQUEST, "no records to score");
    }
    match score::score(shared, loaded, records, Origin::Records, true) {
        Ok(scored) => predictions(&scored, method),
        Err(answer) => answer,
    }
}

fn csv_invocation(shared: &Shared, loaded: &Serving, bytes: &[u8]) -> Answer {
    let read = match loaded.compiled.read_csv(bytes, "request", shared.max_records) {
        Ok(read) => read,
        Err(e) => {
            return problem(
                StatusCode::BAD_REQUEST,
                format!("Failed to parse input as a Pandas DataFrame: cannot score the CSV: {e}"),
            )
        }
    };
    if let Some(answer) = too_many(shared, read.count, "rows") {
        return answer;
    }
    let (records, lines) = score::csv_records(loaded, read);
    match score::score(shared, loaded, records, Origin::Csv(&lines), true) {
        Ok(scored) => predictions(&scored, Method::Predict),
        Err(answer) => answer,
    }
}

/// `params.predict_method`, when given.
fn method(params: Option<&Map<String, Value>>) -> Result<Method, Answer> {
    match params.and_then(|p| p.get("predict_method")) {
        None => Ok(Method::Predict),
        Some(Value::String(s)) if s == "predict" => Ok(Method::Predict),
        Some(Value::String(s)) if s == "predict_proba" => Ok(Method::PredictProba),
        Some(Value::String(s)) if s == "mlgate" => Ok(Method::Mlgate),
        Some(other) => Err(problem(
            StatusCode::BAD_REQUEST,
            format!(
                "params.predict_method is \"predict\" (the class), \"predict_proba\" ([1 - p, p]) or \"mlgate\" \
                 ({{id, probability, prediction, receipt}}), not {}",
                model::data::report::echo(&other.to_string())
            ),
        )),
    }
}

fn predictions(scored: &Scored, method: Method) -> Answer {
    let predictions: Value = match method {
        Method::Predict => scored.decisions.iter().map(|&d| Value::from(u8::from(d))).collect(),
        Method::PredictProba => scored.probabilities.iter().map(|&p| serde_json::json!([1.0 - p, p])).collect(),
        Method::Mlgate => serde_json::to_value(scored.predictions()).expect("predictions serialise"),
    };
    let mut body = serde_json::json!({ "predictions": predictions, "ids": scored.ids, "receipts": scored.receipts });
    // Beside the predictions, as the ids and receipts are: which version answered each, and in
    // shadow mode what the shadow said.
    let answered: Vec<(&str, Role)> = (0..scored.ids.len()).map(|i| scored.version(i)).collect();
    body["versions"] = answered.iter().map(|(v, _)| Value::from(*v)).collect();
    body["roles"] = answered.iter().map(|(_, r)| Value::from(r.name())).collect();
    if let Some((version, _)) = &scored.shadow {
        body["shadow_version"] = Value::from(version.as_str());
        body["shadow_probabilities"] =
            (0..scored.ids.len()).map(|i| scored.shadow_of(i).map_or(Value::Null, |(_, p)| Value::from(p))).collect();
    }
    json(StatusCode::OK, &body)
}
