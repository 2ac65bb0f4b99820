//! The OpenAPI 3.1 description of the routes, served at `GET /openapi.json`, generated from the
//! served model's schema: a record has one property per column the model reads, typed as
//! [`super::records`] reads it (a JSON value becomes the text a CSV field would hold, then the
//! column's rules check it), with its levels as `enum`, its range as `minimum`/`maximum` and
//! its missing rule; the label and `ignore` columns are allowed and not read. Each route says
//! which token it takes *on this server* (its configured tokens) and every status it answers.
//!
//! The protocols' routes (MLflow's scoring server, KServe V1, the Open Inference Protocol) are
//! described as their clients send and read them, from the same schema: their request records
//! and rows, their tensors, their answers and the error shape each answers in
//! ([`super::answer::Dialect`]); a model's name (and version) in a path is a parameter whose only
//! value is the served one.
//!
//! A route is one entry of [`ROUTES`]: its path and the function that builds its path item.

use model::data::schema::{Column, ColumnKind, Missing};
use serde_json::{json, Map, Value};

use super::answer::Dialect;
use super::auth::Access;
use super::http::{access, dialect, Surface};
use super::kserve::{metadata_inputs, metadata_outputs, OUTPUTS};
use super::records::{MAX_ID_BYTES, MAX_VALUE_BYTES};
use super::{Loaded, Shared};

/// What a path item is built from.
pub(super) struct Context<'a> {
    shared: &'a Shared,
    loaded: &'a Loaded,
    surface: Surface,
}

/// A path and the function that builds its path item.
type Route = (&'static str, fn(&Context) -> Value);

/// Every route the server answers, in the document's order. A route not served on the
/// listener the document is asked from (the probes and metrics on the API address when an
/// administration address is given) is left out.
const ROUTES: &[Route] = &[
    ("/v1/predict", predict),
    ("/v1/feedback", feedback),
    ("/v1/model", model_info),
    ("/openapi.json", openapi),
    ("/healthz", healthz),
    ("/readyz", readyz),
    ("/metrics", metrics),
    ("/invocations", invocations),
    ("/ping", ping),
    ("/health", health),
    ("/version", version),
    ("/v1/models/{name}", v1_model),
    ("/v1/models/{name}:predict", v1_predict),
    ("/v2", v2_server),
    ("/v2/health/live", v2_live),
    ("/v2/health/ready", v2_ready),
    ("/v2/models/{name}", v2_model),
    ("/v2/models/{name}/ready", v2_model_ready),
    ("/v2/models/{name}/infer", v2_infer),
    ("/v2/models/{name}/versions/{version}", v2_model_versioned),
    ("/v2/models/{name}/versions/{version}/ready", v2_model_ready_versioned),
    ("/v2/models/{name}/versions/{version}/infer", v2_infer_versioned),
];

/// The document for `loaded`, as served on `surface` by `shared`.
pub(super) fn document(shared: &Shared, loaded: &Loaded, surface: Surface) -> Value {
    let context = Context { shared, loaded, surface };
    let artifact = loaded.compiled.artifact();
    let mut paths = Map::new();
    for (path, build) in ROUTES {
        if access(path, surface).is_some() {
            paths.insert((*path).to_string(), build(&context));
        }
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": format!("mlgate serve: {} {}", artifact.name, loaded.version),
            "version": env!("CARGO_PKG_VERSION"),
            "description": format!(
                "The model `{}` version `{}` (sha256 {}), served by mlgate. Generated from the served \
                 model's schema: it changes when the alias moves to a version with another schema. \
                 A route given a method it does not take answers 405 with `Allow` \
                 (`#/components/responses/MethodNotAllowed`, in the route's error shape); an unknown \
                 path 404. mlgate's own routes answer errors as RFC 9457 problems; MLflow's routes \
                 as MLflow's scoring server does (`MlflowError`), KServe's and the Open Inference \
                 Protocol's as `{{\"error\": …}}` (`KserveError`).",
                artifact.name, loaded.version, loaded.sha256
            ),
        },
        "paths": paths,
        "components": components(&context),
    })
}

/// The security requirement and the refusal a route answers when its caller has no token:
/// `(security, refusals)`, refusals being `(status, response reference)`.
fn guard(context: &Context, path: &str) -> (Value, Vec<(&'static str, Value)>) {
    let tokens = &context.shared.tokens;
    let bearer = || json!([{ "bearer": [] }]);
    let unauthorized = ("401", refusal(path, "Unauthorized"));
    match access(path, context.surface) {
        Some(Access::Prediction) if !tokens.prediction.is_empty() => (bearer(), vec![unauthorized]),
        Some(Access::Admin) if !tokens.admin.is_empty() => (bearer(), vec![unauthorized]),
        Some(Access::Feedback) if !tokens.feedback.is_empty() => (bearer(), vec![unauthorized]),
        Some(Access::Feedback) => (json!([]), vec![("403", reference("FeedbackDisabled"))]),
        _ => (json!([]), Vec::new()),
    }
}

fn reference(response: &str) -> Value {
    json!({ "$ref": format!("#/components/responses/{response}") })
}

/// The prefix of the reusable answers in `dialect`'s error shape.
fn prefix(dialect: Dialect) -> &'static str {
    match dialect {
        Dialect::Problem => "",
        Dialect::Mlflow => "Mlflow",
        Dialect::Kserve => "Kserve",
    }
}

/// The reusable answer `response` in the error shape of the route at `path`.
fn refusal(path: &str, response: &str) -> Value {
    reference(&format!("{}{response}", prefix(dialect(path))))
}

/// The answers `statuses` (400, 404, 408, 413, 415, 422, 503) of a route at `path`, each in the
/// error shape of its dialect.
fn refusals_of(path: &str, statuses: &[u16]) -> Vec<(&'static str, Value)> {
    statuses
        .iter()
        .map(|status| {
            let (code, name) = match status {
                400 => ("400", "BadRequest"),
                404 => ("404", "NotFound"),
                408 => ("408", "Timeout"),
                413 => ("413", "TooLarge"),
                415 => ("415", "UnsupportedMediaType"),
                422 => ("422", "Unprocessable"),
                503 => ("503", "Unavailable"),
                other => unreachable!("no refusal {other} is described"),
            };
            (code, refusal(path, name))
        })
        .collect()
}

fn schema_ref(schema: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{schema}") })
}

/// An operation: its summary, description, request body (if any) and answers, with the guard of
/// `path` (its security and its 401 or 403).
fn operation(
    context: &Context,
    path: &str,
    id: &str,
    summary: &str,
    description: &str,
    body: Option<Value>,
    answers: Vec<(&'static str, Value)>,
) -> Value {
    let (security, refusals) = guard(context, path);
    let mut responses = Map::new();
    for (status, answer) in answers.into_iter().chain(refusals) {
        responses.insert(status.to_string(), answer);
    }
    let mut op = json!({
        "operationId": id,
        "summary": summary,
        "description": description,
        "security": security,
        "responses": responses,
    });
    if let Some(body) = body {
        op["requestBody"] = body;
    }
    op
}

fn predict(context: &Context) -> Value {
    let post = operation(
        context,
        "/v1/predict",
        "predict",
        "Score records",
        "JSON records (`application/json`, the default for any other content type) or a CSV file \
         (`text/csv`, scored exactly as `mlgate predict` scores a file). Every record is checked \
         by the model's column rules before any is scored: one broken value and nothing is scored (422).",
        Some(json!({
            "required": true,
            "content": {
                "application/json": { "schema": schema_ref("PredictRequest") },
                "text/csv": {
                    "schema": csv_body(
                        context,
                        "A CSV file with a header naming every column of the schema, the `ignore` ones \
                         included (not read); the label may be there too (not read). Each value is \
                         checked by its column's rules, as `mlgate predict` checks a file; at most \
                         `--max-records` rows.",
                    ),
                },
            },
        })),
        vec![(
            "200",
            json!({
                "description": "The predictions, in the records' order. A CSV body is answered \
                    with the CSV `mlgate predict` writes and a last column, `receipt`; while a \
                    rollout is open, then `version` and `role` (the version that answered the row), \
                    and in shadow mode `shadow_version` and `shadow_probability` (empty where the \
                    shadow failed to score the row).",
                "headers": {
                    "x-model-version": {
                        "description": "The version that scored a CSV body.",
                        "schema": { "type": "string" },
                    },
                },
                "content": {
                    "application/json": { "schema": schema_ref("PredictResponse") },
                    "text/csv": { "schema": { "type": "string" } },
                },
            }),
        )]
        .into_iter()
        .chain(refusals_of("/v1/predict", &[400, 408, 413, 422, 503]))
        .collect(),
    );
    json!({ "post": post })
}

fn feedback(context: &Context) -> Value {
    let post = operation(
        context,
        "/v1/feedback",
        "feedback",
        "Give the true labels of earlier predictions",
        "Each item names its prediction by its `receipt` (joined on any replica holding the key) or \
         by its `id` (joined to this replica's log of predictions). An item that cannot be read (a \
         label that is no spelling of the model's label, both an id and a receipt, neither) is \
         422 and nothing of the request is recorded; a receipt refused (malformed, altered, \
         foreign, expired, duplicate) is listed in the answer with its reason.",
        Some(json!({
            "required": true,
            "content": { "application/json": { "schema": schema_ref("FeedbackRequest") } },
        })),
        vec![(
            "200",
            json!({
                "description": "What was joined, unmatched and refused.",
                "content": { "application/json": { "schema": schema_ref("FeedbackResponse") } },
            }),
        )]
        .into_iter()
        .chain(refusals_of("/v1/feedback", &[400, 408, 413, 422, 503]))
        .collect(),
    );
    json!({ "post": post })
}

fn model_info(context: &Context) -> Value {
    let get = operation(
        context,
        "/v1/model",
        "model",
        "The served model",
        "Its name, version, sha256, family, threshold, columns, label, metrics at acceptance and lineage.",
        None,
        vec![
            (
                "200",
                json!({
                    "description": "The served model.",
                    "content": { "application/json": { "schema": schema_ref("ModelInfo") } },
                }),
            ),
            ("503", reference("Unavailable")),
        ],
    );
    json!({ "get": get })
}

fn openapi(context: &Context) -> Value {
    let get = operation(
        context,
        "/openapi.json",
        "openapi",
        "This description",
        "The OpenAPI 3.1 description of the routes, generated from the served model's schema.",
        None,
        vec![
            (
                "200",
                json!({
                    "description": "The description.",
                    "content": { "application/json": { "schema": { "type": "object" } } },
                }),
            ),
            ("503", reference("Unavailable")),
        ],
    );
    json!({ "get": get })
}

/// A plain-text 200 and, for readiness, a 503.
fn probe(context: &Context, path: &str, id: &str, summary: &str, ready: bool) -> Value {
    let mut answers = vec![(
        "200",
        json!({
            "description": summary,
            "content": { "text/plain": { "schema": { "type": "string" } } },
        }),
    )];
    if ready {
        answers.push(("503", reference("Unavailable")));
    }
    let get = operation(context, path, id, summary, "Open to every caller (an orchestrator probes it).", None, answers);
    json!({ "get": get })
}

fn healthz(context: &Context) -> Value {
    probe(context, "/healthz", "healthz", "Alive", false)
}

fn readyz(context: &Context) -> Value {
    probe(context, "/readyz", "readyz", "Ready: a model is loaded and the server is not draining", true)
}

fn metrics(context: &Context) -> Value {
    let get = operation(
        context,
        "/metrics",
        "metrics",
        "Prometheus metrics",
        "OpenMetrics text when `Accept` asks for `application/openmetrics-text`, the classic text \
         format 0.0.4 otherwise.",
        None,
        vec![(
            "200",
            json!({
                "description": "The exposition.",
                "content": {
                    "text/plain": { "schema": { "type": "string" } },
                    "application/openmetrics-text": { "schema": { "type": "string" } },
                },
            }),
        )],
    );
    json!({ "get": get })
}

/// A JSON answer of `schema`.
fn json_answer(description: &str, schema: Value) -> Value {
    json!({ "description": description, "content": { "application/json": { "schema": schema } } })
}

/// The path parameters `{name}` (and `{version}`): the served model's name (and version) the
/// only values; any other is 404.
fn model_parameters(context: &Context, versioned: bool) -> Value {
    let mut parameters = vec![json!({
        "name": "name",
        "in": "path",
        "required": true,
        "description": "The served model's name (`--model`, else the artifact's): any other is 404.",
        "schema": { "type": "string", "enum": [context.shared.model_name()] },
    })];
    if versioned {
        parameters.push(json!({
            "name": "version",
            "in": "path",
            "required": true,
            "description": "The served version: any other is 404.",
            "schema": { "type": "string", "enum": [context.loaded.version] },
        }));
    }
    json!(parameters)
}

fn invocations(context: &Context) -> Value {
    let path = "/invocations";
    let post = operation(
        context,
        path,
        "mlflow_invocations",
        "Score records as MLflow's scoring server does",
        "MLflow's scoring protocol (`mlflow models serve`): `application/json` with exactly one of \
         `dataframe_split`, `dataframe_records`, `instances`, `inputs` (and optional `params`; other \
         keys are ignored, as MLflow ignores them), or `text/csv` (a CSV file with a header, as on \
         `/v1/predict`). `instances` and `inputs` may also be an object of columns \
         (`{column: [value, …], …}`, all of one length), which a schema cannot say. Values are \
         checked by the model's column rules as on `/v1/predict`; one broken value and nothing is \
         scored (400, as MLflow answers it, with the per-value `errors` and `counts`).",
        Some(json!({
            "required": true,
            "content": {
                "application/json": { "schema": schema_ref("MlflowRequest") },
                "text/csv": {
                    "schema": csv_body(
                        context,
                        "A CSV file with a header naming every column of the schema, the `ignore` ones \
                         included (not read); the label may be there too (not read). Each value is \
                         checked by its column's rules; at most `--max-records` rows. Answered with \
                         the classes, as `params` cannot be given.",
                    ),
                },
            },
        })),
        vec![(
            "200",
            json_answer(
                "The predictions, in the records' order, as `params.predict_method` asks, with each \
                     record's id and receipt beside.",
                schema_ref("MlflowResponse"),
            ),
        )]
        .into_iter()
        .chain(refusals_of(path, &[400, 408, 413, 415, 503]))
        .collect(),
    );
    json!({ "post": post })
}

/// MLflow's health check: a newline in `application/json`, as MLflow answers it.
fn mlflow_health(context: &Context, path: &str, id: &str) -> Value {
    let get = operation(
        context,
        path,
        id,
        "MLflow's health check",
        "200 once a model is loaded, 404 before, as MLflow's scoring server answers. Open to every \
         caller (an orchestrator probes it).",
        None,
        vec![
            (
                "200",
                json!({
                    "description": "A model is loaded. The body is a newline (not a JSON document), \
                        in `application/json`, as MLflow answers it.",
                    "content": { "application/json": {} },
                }),
            ),
            ("404", refusal(path, "NotFound")),
        ],
    );
    json!({ "get": get })
}

fn ping(context: &Context) -> Value {
    mlflow_health(context, "/ping", "mlflow_ping")
}

fn health(context: &Context) -> Value {
    mlflow_health(context, "/health", "mlflow_health")
}

fn version(context: &Context) -> Value {
    let get = operation(
        context,
        "/version",
        "mlflow_version",
        "The server's version",
        "mlgate's version, where MLflow's scoring server answers MLflow's.",
        None,
        vec![(
            "200",
            json!({
                "description": "The version.",
                "content": { "text/plain": { "schema": { "type": "string", "const": env!("CARGO_PKG_VERSION") } } },
            }),
        )],
    );
    json!({ "get": get })
}

/// A model's readiness, `{name, ready}` (KServe V1's model route and the V2 `ready`).
fn model_ready(context: &Context, path: &str, id: &str, summary: &str, versioned: bool) -> Value {
    let get = operation(
        context,
        path,
        id,
        summary,
        "200 while the served model is loaded and the server is not draining.",
        None,
        vec![("200", json_answer("The model is ready.", schema_ref("ModelReady")))]
            .into_iter()
            .chain(refusals_of(path, &[404, 503]))
            .collect(),
    );
    json!({ "parameters": model_parameters(context, versioned), "get": get })
}

fn v1_model(context: &Context) -> Value {
    model_ready(context, "/v1/models/{name}", "kserve_v1_model", "KServe V1: the model's readiness", false)
}

fn v1_predict(context: &Context) -> Value {
    let path = "/v1/models/{name}:predict";
    let post = operation(
        context,
        path,
        "kserve_v1_predict",
        "KServe V1: score instances",
        "`instances`: records (objects of column: value, as on `/v1/predict`) or rows of values in \
         the model's column order (`/v1/model`'s `columns`); an object of columns \
         (`{column: [value, …], …}`, all of one length) is taken too, which a schema cannot say. \
         One broken value and nothing is scored (422, with the per-value `errors` and `counts`).",
        Some(json!({
            "required": true,
            "content": { "application/json": { "schema": schema_ref("KserveV1Request") } },
        })),
        vec![("200", json_answer("The predictions, in the instances' order.", schema_ref("KserveV1Response")))]
            .into_iter()
            .chain(refusals_of(path, &[400, 404, 408, 413, 422, 503]))
            .collect(),
    );
    json!({ "parameters": model_parameters(context, false), "post": post })
}

fn v2_server(context: &Context) -> Value {
    let get = operation(
        context,
        "/v2",
        "v2_server_metadata",
        "Open Inference Protocol: the server's metadata",
        "Its name, version and extensions.",
        None,
        vec![("200", json_answer("The server's metadata.", schema_ref("V2ServerMetadata")))],
    );
    json!({ "get": get })
}

fn v2_live(context: &Context) -> Value {
    let get = operation(
        context,
        "/v2/health/live",
        "v2_live",
        "Open Inference Protocol: the server is live",
        "Open to every caller (an orchestrator probes it).",
        None,
        vec![(
            "200",
            json_answer(
                "Live.",
                json!({ "type": "object", "required": ["live"], "properties": { "live": { "const": true } } }),
            ),
        )],
    );
    json!({ "get": get })
}

fn v2_ready(context: &Context) -> Value {
    let path = "/v2/health/ready";
    let get = operation(
        context,
        path,
        "v2_ready",
        "Open Inference Protocol: the server is ready",
        "200 with a model loaded and the server not draining. Open to every caller.",
        None,
        vec![
            (
                "200",
                json_answer(
                    "Ready.",
                    json!({ "type": "object", "required": ["ready"], "properties": { "ready": { "const": true } } }),
                ),
            ),
            ("503", refusal(path, "Unavailable")),
        ],
    );
    json!({ "get": get })
}

/// `/v2/models/{name}[/versions/{version}]`.
fn v2_model_at(context: &Context, path: &str, id: &str, versioned: bool) -> Value {
    let get = operation(
        context,
        path,
        id,
        "Open Inference Protocol: the model's metadata",
        "One input per column the model reads, named by it, typed by its kind (FP64 numbers, INT64 \
         integers, BOOL booleans, BYTES levels and ids), of shape [-1]; outputs `probability` and \
         `prediction`.",
        None,
        vec![("200", json_answer("The model's metadata.", schema_ref("V2ModelMetadata")))]
            .into_iter()
            .chain(refusals_of(path, &[404, 503]))
            .collect(),
    );
    json!({ "parameters": model_parameters(context, versioned), "get": get })
}

fn v2_model(context: &Context) -> Value {
    v2_model_at(context, "/v2/models/{name}", "v2_model_metadata", false)
}

fn v2_model_versioned(context: &Context) -> Value {
    v2_model_at(context, "/v2/models/{name}/versions/{version}", "v2_model_version_metadata", true)
}

fn v2_model_ready(context: &Context) -> Value {
    model_ready(
        context,
        "/v2/models/{name}/ready",
        "v2_model_ready",
        "Open Inference Protocol: the model is ready",
        false,
    )
}

fn v2_model_ready_versioned(context: &Context) -> Value {
    model_ready(
        context,
        "/v2/models/{name}/versions/{version}/ready",
        "v2_model_version_ready",
        "Open Inference Protocol: the model's version is ready",
        true,
    )
}

/// `/v2/models/{name}[/versions/{version}]/infer`.
fn v2_infer_at(context: &Context, path: &str, id: &str, versioned: bool) -> Value {
    let post = operation(
        context,
        path,
        id,
        "Open Inference Protocol: infer",
        "An inference request: one input tensor per column the model reads, named by it (in any \
         order; a column that may be missing may be left out), or one row-major tensor of shape \
         [n, k] over the k columns in the model's order, named by none of them. The schema spells \
         out one row; n rows are n elements in every tensor (shape [n] or [n, 1], all the same n; \
         [n, k] row-major). `data` is flat in row-major order, or nested exactly as the shape. \
         A tensor's datatype says how its elements are read (FP64/FP32/FP16/BF16 numbers, \
         INT8…INT64 and UINT8…UINT64 integers, BOOL booleans, BYTES strings), and each is then \
         checked by its column's rules as a record's value is: one broken value and nothing is \
         scored (422, with the per-value `errors` and `counts`).\n\n\
         The binary tensor data extension is taken too (as `tritonclient` sends by default): the \
         body is this JSON followed by the tensors' bytes (little-endian; a BYTES element is a \
         4-byte length and its bytes; NaN in FP64/FP32 is a missing value), the header \
         `Inference-Header-Content-Length` giving the JSON's length, each such input with \
         `parameters.binary_data_size` instead of `data`. An output asked for with \
         `parameters.binary_data: true` (or every output, with the request's \
         `parameters.binary_data_output: true`) is answered so: `application/octet-stream`, with \
         the same header.",
        Some(json!({
            "required": true,
            "content": { "application/json": { "schema": schema_ref("InferRequest") } },
        })),
        vec![(
            "200",
            json!({
                "description": "The outputs, with the request's `id`: in JSON, or, when binary \
                    data is asked for, the JSON (of `Inference-Header-Content-Length` bytes) \
                    followed by the binary outputs.",
                "headers": {
                    "Inference-Header-Content-Length": {
                        "description": "With binary outputs: the length of the JSON part.",
                        "schema": { "type": "integer", "minimum": 0 },
                    },
                },
                "content": {
                    "application/json": { "schema": schema_ref("InferResponse") },
                    "application/octet-stream": {},
                },
            }),
        )]
        .into_iter()
        .chain(refusals_of(path, &[400, 404, 408, 413, 422, 503]))
        .collect(),
    );
    json!({ "parameters": model_parameters(context, versioned), "post": post })
}

fn v2_infer(context: &Context) -> Value {
    v2_infer_at(context, "/v2/models/{name}/infer", "v2_infer", false)
}

fn v2_infer_versioned(context: &Context) -> Value {
    v2_infer_at(context, "/v2/models/{name}/versions/{version}/infer", "v2_version_infer", true)
}

/// The schemas, the reusable answers and the bearer scheme.
fn components(context: &Context) -> Value {
    let shared = context.shared;
    let loaded = context.loaded;
    let artifact = loaded.compiled.artifact();
    let (positive, negative) = match &artifact.schema.label().kind {
        ColumnKind::Label { positive, negative } => (positive.clone(), negative.clone()),
        _ => unreachable!("a schema's label column has the label kind"),
    };
    let mut responses = Map::new();
    for dialect in [Dialect::Problem, Dialect::Mlflow, Dialect::Kserve] {
        for (name, answer) in refusals(dialect) {
            responses.insert(format!("{}{name}", prefix(dialect)), answer);
        }
    }
    let mut schemas = protocol_schemas(context);
    let label = json!({
        "description": format!("The true label: \"{positive}\" or true (positive), \"{negative}\" or false."),
        "enum": [positive, negative, true, false],
    });
    let id = json!({
        "description": format!(
            "The prediction's id, as the prediction gave it: a string of at most {MAX_ID_BYTES} bytes, or a number."
        ),
        "anyOf": [{ "type": "string", "maxLength": MAX_ID_BYTES }, { "type": "number" }],
    });
    let mut components = json!({
        "securitySchemes": {
            "bearer": {
                "type": "http",
                "scheme": "bearer",
                "description": "A token of the caller's kind: prediction (predictions, the model, \
                    this description), feedback, or administration (metrics), each given to the \
                    server in a file or its environment.",
            },
        },
        "schemas": {
            "Record": record(loaded),
            "PredictRequest": {
                "type": "object",
                "required": ["records"],
                "additionalProperties": false,
                "properties": {
                    "records": {
                        "type": "array",
                        "minItems": 1,
                        "maxItems": shared.max_records,
                        "items": schema_ref("Record"),
                    },
                },
            },
            "Prediction": {
                "type": "object",
                "required": ["id", "probability", "prediction", "receipt", "version", "role"],
                "properties": {
                    "id": { "type": "string", "description": "The record's id column when the schema has one, else 128 random bits in hexadecimal." },
                    "probability": { "type": "number", "minimum": 0, "maximum": 1 },
                    "prediction": { "enum": [0, 1], "description": format!("1 when the probability is at least the answering version's threshold ({} for the version served).", artifact.threshold.value) },
                    "receipt": { "type": "string", "description": "A signed receipt, to send back with the true label." },
                    "version": { "type": "string", "description": "The version that answered: the one served, or during a canary rollout the candidate for the records whose id falls in its share (the same id, the same version, on every replica)." },
                    "role": { "enum": ["baseline", "canary"], "description": "What the answering version is: `baseline` (production), or `canary` (a rollout's candidate)." },
                    "shadow_version": { "type": "string", "description": "In a shadow rollout, the candidate that scored the record beside the baseline (absent otherwise, or where it failed to score it)." },
                    "shadow_probability": { "type": "number", "minimum": 0, "maximum": 1, "description": "In a shadow rollout, the candidate's probability: kept for comparison, never the answer." },
                },
            },
            "PredictResponse": {
                "type": "object",
                "required": ["model", "version", "predictions"],
                "properties": {
                    "model": { "type": "string" },
                    "version": { "type": "string" },
                    "predictions": { "type": "array", "items": schema_ref("Prediction") },
                },
            },
            "FeedbackRequest": {
                "type": "object",
                "required": ["feedback"],
                "additionalProperties": false,
                "properties": {
                    "feedback": {
                        "type": "array",
                        "maxItems": shared.max_records,
                        "items": {
                            "oneOf": [
                                {
                                    "description": "Names its prediction by receipt (a string; any other value is refused as malformed, in the answer).",
                                    "type": "object",
                                    "required": ["receipt", "label"],
                                    "additionalProperties": false,
                                    "properties": {
                                        "receipt": { "not": { "type": "null" } },
                                        "label": label,
                                        "id": { "type": "null" },
                                    },
                                },
                                {
                                    "description": "Names its prediction by id (joined to this replica's log).",
                                    "type": "object",
                                    "required": ["id", "label"],
                                    "additionalProperties": false,
                                    "properties": {
                                        "id": id,
                                        "label": label,
                                        "receipt": { "type": "null" },
                                    },
                                },
                            ],
                        },
                    },
                },
            },
            "FeedbackResponse": {
                "type": "object",
                "required": ["received", "joined", "unmatched", "refused", "refusals"],
                "properties": {
                    "received": { "type": "integer", "minimum": 0 },
                    "joined": { "type": "integer", "minimum": 0 },
                    "unmatched": { "type": "integer", "minimum": 0, "description": "Ids not in this replica's log." },
                    "refused": { "type": "integer", "minimum": 0 },
                    "refusals": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "required": ["item", "reason", "detail"],
                            "properties": {
                                "item": { "type": "integer", "minimum": 0 },
                                "reason": { "enum": ["malformed", "altered", "foreign", "expired", "duplicate"] },
                                "detail": { "type": "string" },
                            },
                        },
                    },
                },
            },
            "ModelInfo": {
                "type": "object",
                "required": ["model", "version", "sha256", "family", "threshold", "columns", "label"],
                "properties": {
                    "model": { "type": "string" },
                    "version": { "type": "string" },
                    "sha256": { "type": "string" },
                    "family": { "type": "string" },
                    "threshold": { "type": "number" },
                    "columns": { "type": "array", "items": { "type": "string" } },
                    "label": { "type": "string" },
                    "metrics_at_acceptance": { "type": ["object", "null"] },
                    "lineage": { "type": "object" },
                },
            },
            "Problem": {
                "type": "object",
                "description": "What is wrong. The broken values of a request are listed in \
                    `errors` (the first 100), all of them counted in `error_count` and `counts`.",
                "properties": {
                    "type": { "type": "string" },
                    "title": { "type": "string" },
                    "status": { "type": "integer" },
                    "detail": { "type": "string" },
                    "error": { "type": "string" },
                    "error_count": { "type": "integer", "minimum": 0 },
                    "errors": { "type": "array", "items": { "type": "object" } },
                    "counts": { "type": "array", "items": { "type": "object" } },
                },
            },
        },
        "responses": responses,
    });
    if let Some(all) = components["schemas"].as_object_mut() {
        all.append(&mut schemas);
    }
    components
}

/// `schema`, or `null` (which a protocol's server reads as the member left out).
fn nullable(schema: Value) -> Value {
    json!({ "anyOf": [schema, { "type": "null" }] })
}

/// An array of exactly `items`, in order.
fn tuple(items: Vec<Value>) -> Value {
    let n = items.len();
    json!({ "type": "array", "prefixItems": items, "minItems": n, "maxItems": n })
}

/// The schemas of the protocols' requests and answers.
fn protocol_schemas(context: &Context) -> Map<String, Value> {
    let shared = context.shared;
    let loaded = context.loaded;
    let schema = &loaded.compiled.artifact().schema;
    let columns: Vec<(&String, &Column)> =
        loaded.compiled.columns().iter().filter_map(|name| Some((name, schema.column(name)?))).collect();
    let names: Vec<&String> = columns.iter().map(|(name, _)| *name).collect();
    let values: Vec<Value> = columns.iter().map(|(_, column)| column_schema(column)).collect();
    let records = |description: &str| {
        json!({
            "description": description,
            "type": "array",
            "minItems": 1,
            "maxItems": shared.max_records,
            "items": schema_ref("Record"),
        })
    };
    let mut row = tuple(values.clone());
    row["description"] = json!(format!(
        "A record as a row: one value for each column the model reads, in its order ({}), each as a \
         record's value.",
        names.iter().map(|n| n.as_str()).collect::<Vec<_>>().join(", ")
    ));
    let mut table = records("Records, or rows in the model's column order; at most `--max-records`.");
    table["items"] = json!({ "anyOf": [schema_ref("Record"), schema_ref("Row")] });
    let codes = [
        "BAD_REQUEST",
        "UNAUTHENTICATED",
        "PERMISSION_DENIED",
        "ENDPOINT_NOT_FOUND",
        "REQUEST_LIMIT_EXCEEDED",
        "TEMPORARILY_UNAVAILABLE",
        "INTERNAL_ERROR",
    ];
    let extensions = json!({
        "error_count": { "type": "integer", "minimum": 0 },
        "errors": { "type": "array", "items": { "type": "object" } },
        "counts": { "type": "array", "items": { "type": "object" } },
    });
    let mut mlflow_error = json!({
        "type": "object",
        "description": "MLflow's error: its code and message; the broken values of a request listed in \
            `errors` (the first 100), all of them counted in `error_count` and `counts`.",
        "required": ["error_code", "message"],
        "properties": { "error_code": { "enum": codes }, "message": { "type": "string" } },
    });
    let mut kserve_error = json!({
        "type": "object",
        "description": "The KServe protocols' error; the broken values of a request listed in \
            `errors` (the first 100), all of them counted in `error_count` and `counts`.",
        "required": ["error"],
        "properties": { "error": { "type": "string" } },
    });
    for error in [&mut mlflow_error, &mut kserve_error] {
        if let (Some(properties), Some(more)) = (error["properties"].as_object_mut(), extensions.as_object()) {
            properties.extend(more.clone());
        }
    }
    let fields = ["dataframe_split", "dataframe_records", "instances", "inputs"];
    let exactly_one: Vec<Value> = fields
        .iter()
        .map(|f| json!({ "required": [f], "properties": { *f: { "not": { "type": "null" } } } }))
        .collect();
    let split_columns = json!({
        "description": "The columns of `data`: the model's, in its order (other orders are taken \
            too, each row then in that order, which a schema cannot say); left out, the same.",
        "const": names,
    });
    let class =
        json!({ "enum": [0, 1], "description": "The class: 1 when the probability is at least the threshold." });
    let proba = json!({
        "type": "array",
        "description": "[1 − p, p], p the probability of the positive class.",
        "items": { "type": "number", "minimum": 0, "maximum": 1 },
        "minItems": 2,
        "maxItems": 2,
    });
    let version = loaded.version.clone();
    let model_name = shared.model_name().to_string();
    let mut all = json!({
        "Row": row,
        "Table": table,
        "MlflowRequest": {
            "type": "object",
            "description": "Exactly one of `dataframe_split`, `dataframe_records`, `instances`, `inputs` \
                (a member given `null` is one left out), and optional `params`. Other members are \
                ignored, as MLflow ignores them.",
            "properties": {
                "dataframe_split": nullable(json!({
                    "type": "object",
                    "description": "pandas' `split` orientation (its `index` is not read).",
                    "required": ["data"],
                    "properties": {
                        "columns": nullable(split_columns),
                        "data": {
                            "type": "array",
                            "minItems": 1,
                            "maxItems": shared.max_records,
                            "items": schema_ref("Row"),
                        },
                    },
                })),
                "dataframe_records": nullable(records("pandas' `records` orientation: records, as on `/v1/predict`.")),
                "instances": nullable(schema_ref("Table")),
                "inputs": nullable(schema_ref("Table")),
                "params": nullable(json!({
                    "type": "object",
                    "description": "Other parameters are ignored.",
                    "properties": {
                        "predict_method": {
                            "description": "What `predictions` holds: the class (`predict`, the default), \
                                `[1 − p, p]` as scikit-learn's `predict_proba` (`predict_proba`), or the \
                                objects `/v1/predict` answers (`mlgate`).",
                            "enum": ["predict", "predict_proba", "mlgate"],
                        },
                    },
                })),
            },
            "oneOf": exactly_one,
        },
        "MlflowResponse": {
            "type": "object",
            "required": ["predictions", "ids", "receipts"],
            "properties": {
                "predictions": {
                    "type": "array",
                    "items": { "anyOf": [class, proba, schema_ref("Prediction")] },
                },
                "ids": { "type": "array", "items": { "type": "string" }, "description": "Each prediction's id." },
                "receipts": { "type": "array", "items": { "type": "string" }, "description": "Each prediction's receipt." },
                "versions": { "type": "array", "items": { "type": "string" }, "description": "The version that answered each prediction." },
                "roles": { "type": "array", "items": { "enum": ["baseline", "canary"] }, "description": "Each answering version's role: `baseline`, or a rollout's `canary`." },
                "shadow_version": { "type": "string", "description": "In a shadow rollout, the candidate scoring beside the baseline." },
                "shadow_probabilities": { "type": "array", "items": { "type": ["number", "null"] }, "description": "In a shadow rollout, the candidate's probability of each record (null where it failed to score it)." },
            },
        },
        "MlflowError": mlflow_error,
        "KserveError": kserve_error,
        "KserveV1Request": {
            "type": "object",
            "required": ["instances"],
            "additionalProperties": false,
            "properties": { "instances": schema_ref("Table") },
        },
        "KserveV1Response": {
            "type": "object",
            "required": ["predictions"],
            "properties": { "predictions": { "type": "array", "items": schema_ref("Prediction") } },
        },
        "ModelReady": {
            "type": "object",
            "required": ["name", "ready"],
            "properties": { "name": { "const": model_name }, "ready": { "const": true } },
        },
        "V2ServerMetadata": {
            "type": "object",
            "required": ["name", "version", "extensions"],
            "properties": {
                "name": { "const": "mlgate" },
                "version": { "const": env!("CARGO_PKG_VERSION") },
                "extensions": { "type": "array", "items": { "type": "string" } },
            },
        },
        "V2ModelMetadata": {
            "type": "object",
            "required": ["name", "versions", "platform", "inputs", "outputs"],
            "properties": {
                "name": { "const": model_name },
                "versions": { "const": [version] },
                "platform": { "const": "mlgate" },
                "inputs": { "const": metadata_inputs(loaded) },
                "outputs": { "const": metadata_outputs() },
            },
        },
        "InferRequest": infer_request(&columns, &values),
        "InferResponse": {
            "type": "object",
            "required": ["model_name", "model_version", "outputs"],
            "properties": {
                "model_name": { "const": model_name },
                "model_version": { "const": version },
                "id": { "type": "string", "description": "The request's `id`, when it gave one." },
                "outputs": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["name", "datatype", "shape"],
                        "description": "`probability` and `shadow_probability` FP64, `prediction` INT64, `id`, \
                            `receipt`, `version`, `role` and `shadow_version` BYTES; `data` in JSON, or \
                            `parameters.binary_data_size` bytes after the JSON. `version` and `role` name the \
                            version that answered each record (`baseline`, or a rollout's `canary`); in a shadow \
                            rollout `shadow_version` and `shadow_probability` say what the candidate scored beside \
                            (empty and null — NaN in binary — outside one).",
                        "properties": {
                            "name": { "enum": OUTPUTS },
                            "datatype": { "enum": ["FP64", "INT64", "BYTES"] },
                            "shape": {
                                "type": "array",
                                "items": { "type": "integer", "minimum": 1 },
                                "minItems": 1,
                                "maxItems": 1,
                            },
                            "data": { "type": "array", "minItems": 1 },
                            "parameters": {
                                "type": "object",
                                "properties": { "binary_data_size": { "type": "integer", "minimum": 0 } },
                            },
                        },
                    },
                },
            },
        },
    });
    std::mem::take(all.as_object_mut().expect("an object"))
}

/// A CSV body: `description`, and where every column's texts can be written as a regular
/// expression, a pattern of the plainest such file: the schema's columns but the label, in its
/// order, then 1 to 100 rows of unquoted values, `\n` between lines. Other files are taken too
/// (any order of the columns, the label, quoting, up to `--max-records` rows), which the
/// pattern does not say.
fn csv_body(context: &Context, description: &str) -> Value {
    let mut body = json!({ "type": "string", "description": description });
    let schema = &context.loaded.compiled.artifact().schema;
    let mut header = Vec::new();
    let mut row = Vec::new();
    for column in &schema.columns {
        let field = match column.kind {
            ColumnKind::Label { .. } => continue,
            // Not read: any text.
            ColumnKind::Ignore => Some(format!("(?:{FREE_TEXT})")),
            _ => of_type(&column_schema(column), "string").and_then(|v| csv_field(&v)),
        };
        let name = &column.name;
        let (Some(field), false) = (field, name.contains([',', '"', '\r', '\n'])) else {
            return body;
        };
        header.push(escape(name));
        row.push(field);
    }
    body["pattern"] = json!(format!("^{}(\\n{}){{1,100}}$", header.join(","), row.join(",")));
    body
}

/// A regular expression of the texts `values` (a column's string alternatives) takes, unquoted in
/// a CSV field; `None` when one cannot be written so.
fn csv_field(values: &Value) -> Option<String> {
    let alternatives = match values["anyOf"].as_array() {
        Some(all) => all.clone(),
        None => vec![values.clone()],
    };
    let mut parts = Vec::new();
    for alternative in &alternatives {
        if let Some(listed) = alternative["enum"].as_array() {
            for text in listed.iter().filter_map(Value::as_str) {
                if text.contains([',', '"', '\r', '\n']) {
                    return None;
                }
                parts.push(escape(text));
            }
        } else if let Some(pattern) = alternative["pattern"].as_str() {
            parts.push(pattern.strip_prefix('^')?.strip_suffix('$')?.to_string());
        } else {
            // Any text (an id, a level of an open column): the plainest ones.
            parts.push(FREE_TEXT.to_string());
        }
    }
    Some(format!("(?:{})", parts.join("|")))
}

/// The texts of a CSV field that takes any: the plainest ones, which need no quoting.
const FREE_TEXT: &str = "[0-9A-Za-z_]{1,64}";

/// `text` as a regular expression matching itself.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if "\\.+*?()|[]{}^$".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The datatypes of the Open Inference Protocol by the JSON type of their elements in `data`.
const FAMILIES: [(&str, &[&str]); 4] = [
    ("number", &["FP64", "FP32", "FP16", "BF16"]),
    ("integer", &["INT64", "INT32", "INT16", "INT8", "UINT64", "UINT32", "UINT16", "UINT8"]),
    ("boolean", &["BOOL"]),
    ("string", &["BYTES"]),
];

/// Whether `value` is of the JSON type `json_type`, as a tensor's datatype checks it.
fn is_of(value: &Value, json_type: &str) -> bool {
    match json_type {
        "number" => value.is_number(),
        "integer" => value.is_i64() || value.is_u64(),
        "boolean" => value.is_boolean(),
        _ => value.is_string(),
    }
}

/// The values of `json_type` a column takes (`values`, its [`column_schema`]); `None` when it
/// takes none of that type.
fn of_type(values: &Value, json_type: &str) -> Option<Value> {
    let mut kept = Vec::new();
    for alternative in values["anyOf"].as_array().into_iter().flatten() {
        if let Some(listed) = alternative["enum"].as_array() {
            let listed: Vec<&Value> = listed.iter().filter(|v| is_of(v, json_type)).collect();
            if !listed.is_empty() {
                kept.push(json!({ "enum": listed }));
            }
            continue;
        }
        let types: Vec<&str> = match &alternative["type"] {
            Value::String(t) => vec![t.as_str()],
            Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
            _ => continue,
        };
        let numeric = |t: &str| t == "number" || t == "integer";
        // An alternative of the type alone, or of integers where numbers are asked for.
        if types == [json_type] || (json_type == "number" && types == ["integer"]) {
            kept.push(alternative.clone());
        } else if json_type == "integer" && types == ["number"] {
            // The whole numbers of a decimal column's range, when there are any.
            let (lo, hi) = (alternative["minimum"].as_f64(), alternative["maximum"].as_f64());
            if lo.zip(hi).is_none_or(|(lo, hi)| lo.ceil() <= hi.floor()) {
                let mut whole = alternative.clone();
                whole["type"] = json!("integer");
                kept.push(whole);
            }
        } else if types.iter().any(|t| *t == json_type || (json_type == "integer" && numeric(t))) {
            kept.push(json!({ "type": json_type }));
        }
    }
    match kept.len() {
        0 => None,
        1 => kept.pop(),
        _ => Some(json!({ "anyOf": kept })),
    }
}

/// A tensor's `parameters` in JSON: anything but `binary_data_size` (binary data, which the JSON
/// schema does not describe).
fn json_tensor_parameters() -> Value {
    nullable(json!({ "type": "object", "properties": { "binary_data_size": { "not": {} } } }))
}

/// The tensors of a column: one row of a value of each JSON type it takes, under the datatypes
/// that read that type, of shape [1] (`data` flat) or [1, 1] (flat or nested).
fn column_tensor(name: &str, values: &Value) -> Value {
    let mut alternatives = Vec::new();
    for (json_type, datatypes) in FAMILIES {
        let Some(element) = of_type(values, json_type) else { continue };
        for (shape, data) in [
            (json!([1]), tuple(vec![element.clone()])),
            (
                json!([1, 1]),
                json!({ "anyOf": [tuple(vec![element.clone()]), tuple(vec![tuple(vec![element.clone()])])] }),
            ),
        ] {
            alternatives.push(json!({
                "type": "object",
                "required": ["name", "datatype", "shape", "data"],
                "properties": {
                    "name": { "const": name },
                    "datatype": { "enum": datatypes },
                    "shape": { "const": shape },
                    "data": data,
                    "parameters": json_tensor_parameters(),
                },
            }));
        }
    }
    json!({ "description": format!("The tensor of `{name}`."), "anyOf": alternatives })
}

/// The inference request: a tensor per column (in the model's order, those up to the last
/// required one at least), or one row-major tensor of a datatype every column takes.
fn infer_request(columns: &[(&String, &Column)], values: &[Value]) -> Value {
    let tensors: Vec<Value> = columns.iter().zip(values).map(|((name, _), v)| column_tensor(name, v)).collect();
    let required = columns.iter().rposition(|(_, c)| !missing_spellings(c).iter().any(String::is_empty));
    let least = required.map_or(1, |i| i + 1);
    let mut forms = vec![json!({
        "description": "One tensor per column.",
        "type": "array",
        "prefixItems": tensors,
        "minItems": least,
        "maxItems": columns.len(),
    })];
    let names: Vec<&String> = columns.iter().map(|(name, _)| *name).collect();
    let k = columns.len();
    for (json_type, datatypes) in FAMILIES {
        let Some(elements) = values.iter().map(|v| of_type(v, json_type)).collect::<Option<Vec<Value>>>() else {
            continue;
        };
        let row = tuple(elements);
        forms.push(json!({
            "description": "One row-major tensor over the columns, in the model's order.",
            "type": "array",
            "minItems": 1,
            "maxItems": 1,
            "prefixItems": [{
                "type": "object",
                "required": ["name", "datatype", "shape", "data"],
                "properties": {
                    "name": { "type": "string", "not": { "enum": names } },
                    "datatype": { "enum": datatypes },
                    "shape": { "const": [1, k] },
                    "data": { "anyOf": [row.clone(), tuple(vec![row])] },
                    "parameters": json_tensor_parameters(),
                },
            }],
        }));
    }
    let binary = |key: &str, what: &str| {
        nullable(json!({
            "type": "object",
            "description": "Other parameters are ignored.",
            "properties": { key: { "type": "boolean", "description": what } },
        }))
    };
    json!({
        "type": "object",
        "required": ["inputs"],
        "description": "Other members are ignored.",
        "properties": {
            "id": { "type": ["string", "null"], "description": "Given back in the answer." },
            "parameters": binary("binary_data_output", "Every output in binary (the binary tensor data extension)."),
            "inputs": { "anyOf": forms },
            "outputs": nullable(json!({
                "type": "array",
                "description": "The outputs wanted (by default `probability` and `prediction`): \
                    also `id` and `receipt`, the predictions' ids and receipts, `version` and `role`, the \
                    version that answered each, and in a shadow rollout `shadow_version` and \
                    `shadow_probability`.",
                "items": {
                    "type": "object",
                    "required": ["name"],
                    "properties": {
                        "name": { "enum": OUTPUTS },
                        "parameters": binary("binary_data", "This output in binary."),
                    },
                },
            })),
        },
    })
}

/// The reusable error answers of `dialect`, by name (prefixed with the dialect's name in the
/// document, but for mlgate's problems).
fn refusals(dialect: Dialect) -> Vec<(&'static str, Value)> {
    let (schema, media) = match dialect {
        Dialect::Problem => ("Problem", "application/problem+json"),
        Dialect::Mlflow => ("MlflowError", "application/json"),
        Dialect::Kserve => ("KserveError", "application/json"),
    };
    let error = |description: &str| {
        let mut content = Map::new();
        content.insert(media.to_string(), json!({ "schema": schema_ref(schema) }));
        if dialect == Dialect::Problem {
            content.insert("application/json".to_string(), json!({ "schema": schema_ref(schema) }));
        }
        json!({ "description": description, "content": content })
    };
    let mut unauthorized = error("No bearer token, or not one this server takes.");
    unauthorized["headers"] = json!({
        "WWW-Authenticate": {
            "required": true,
            "description": "`Bearer realm=\"mlgate\"`.",
            "schema": { "type": "string" },
        },
    });
    let mut unavailable = error(
        "No model loaded yet, the server draining, or (with `Retry-After`) as many requests being \
         read and scored as `--max-scoring` allows for more than a second.",
    );
    unavailable["headers"] = json!({
        "Retry-After": {
            "description": "Seconds to wait before retrying, when the server was busy.",
            "schema": { "type": "integer", "minimum": 0 },
        },
    });
    let mut not_allowed = error("The route does not take this method.");
    not_allowed["headers"] = json!({
        "Allow": {
            "required": true,
            "description": "The methods the route takes.",
            "schema": { "type": "string" },
        },
    });
    let bad_request = match dialect {
        Dialect::Mlflow => error(
            "The body is not of the expected shape (or not JSON), or holds no record; or values break \
             the model's schema (listed in `errors`, counted in `counts`): MLflow answers both 400, \
             and nothing was scored.",
        ),
        _ => error("The body is not of the expected shape (or not JSON), or holds no record."),
    };
    let mut answers = vec![
        ("BadRequest", bad_request),
        ("Unauthorized", unauthorized),
        ("MethodNotAllowed", not_allowed),
        ("Timeout", error("The body did not arrive within `--read-timeout`.")),
        ("TooLarge", error("More than `--max-body-bytes` bytes, or more than `--max-records` records or items.")),
        ("Unavailable", unavailable),
    ];
    match dialect {
        Dialect::Problem => {
            answers.push(("FeedbackDisabled", error("Feedback is disabled: the server has no feedback token.")));
            answers.push((
                "Unprocessable",
                error("Values break the model's schema (or feedback items cannot be read); nothing was scored or recorded."),
            ));
        }
        Dialect::Mlflow => {
            answers.push(("NotFound", error("No model loaded yet (MLflow answers a failed health check 404).")));
            answers.push((
                "UnsupportedMediaType",
                json!({
                    "description": "A content type other than `application/json` and `text/csv`, or a \
                        parameter of it other than `charset=utf-8`: plain text, as MLflow answers it.",
                    "content": { "text/plain": { "schema": { "type": "string" } } },
                }),
            ));
        }
        Dialect::Kserve => {
            answers.push(("Unprocessable", error("Values break the model's schema; nothing was scored.")));
            let mut not_found = error(
                "No model (or version) of that name here. A path that names no route at all (a name \
                 with `/` or `:`) is mlgate's problem.",
            );
            not_found["content"]["application/problem+json"] = json!({ "schema": schema_ref("Problem") });
            answers.push(("NotFound", not_found));
        }
    }
    answers
}

/// A record of `/v1/predict`: a property per column the model reads (the id, the features),
/// each required unless an absent value is a missing one; the label and ignored columns allowed
/// (any value, not read); no other key.
fn record(loaded: &Loaded) -> Value {
    let schema = &loaded.compiled.artifact().schema;
    let mut properties = Map::new();
    let mut required = Vec::new();
    for name in loaded.compiled.columns() {
        let Some(column) = schema.column(name) else { continue };
        if !missing_spellings(column).iter().any(String::is_empty) {
            required.push(name.clone());
        }
        properties.insert(name.clone(), column_schema(column));
    }
    for name in &loaded.unread {
        let role = match schema.column(name).map(|c| &c.kind) {
            Some(ColumnKind::Label { .. }) => "the label",
            _ => "an ignored column",
        };
        properties.insert(name.clone(), json!({ "description": format!("{role}: allowed, not read") }));
    }
    json!({
        "type": "object",
        "description": format!(
            "A record: a value for each column the model reads, as JSON or as the text a CSV field \
             would hold. A key the schema does not have, or a key given twice, is refused (422). A \
             text is at most {MAX_VALUE_BYTES} bytes of UTF-8 (an id's {MAX_ID_BYTES}). An absent \
             key, `null` and \"\" are an empty value."
        ),
        "required": required,
        "additionalProperties": false,
        "properties": properties,
    })
}

/// The spellings of a missing value in `column` (none when it refuses them).
fn missing_spellings(column: &Column) -> &[String] {
    match column.missing {
        Missing::Allow => &column.missing_values,
        Missing::Refuse => &[],
    }
}

/// A decimal number as Rust's `f64` parser reads it, without infinities and NaN: what a string
/// of a numeric column whose range no pattern below states may hold.
const DECIMAL: &str = r"^[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?$";
/// A fraction, after the whole part of a decimal of a pattern.
const FRACTION: &str = r"(\.[0-9]{0,15})?";

/// The pattern of the strings a numeric column takes, bounds included where a pattern can say
/// them (none, or whole bounds of at least 0); else [`DECIMAL`], the range then checked by the
/// server alone.
fn decimal_pattern(min: Option<f64>, max: Option<f64>) -> String {
    let whole = |x: f64| x.fract() == 0.0 && (0.0..1e15).contains(&x);
    match (min, max) {
        (None, None) => format!(r"^[+-]?([0-9]{{1,15}}{FRACTION}|\.[0-9]{{1,15}})$"),
        (Some(lo), None) if whole(lo) => {
            format!(r"^\+?(({}){FRACTION})$", whole_range(lo as i128, 999_999_999_999_999))
        }
        (Some(lo), Some(hi)) if whole(lo) && whole(hi) && lo < hi => {
            format!(r"^\+?(({}){FRACTION}|{}(\.0{{0,15}})?)$", whole_range(lo as i128, hi as i128 - 1), hi as i128)
        }
        _ => DECIMAL.to_string(),
    }
}

/// The pattern of the strings an integer column takes: its range (the bounds of `i64` where it
/// has none), an optional `+` before a number of at least 0.
fn integer_pattern(min: Option<i64>, max: Option<i64>) -> String {
    let (lo, hi) = (i128::from(min.unwrap_or(i64::MIN)), i128::from(max.unwrap_or(i64::MAX)));
    let mut parts = Vec::new();
    if lo < 0 {
        parts.push(format!("-({})", whole_range((-hi).max(1), -lo)));
    }
    if hi >= 0 {
        parts.push(format!(r"\+?({})", whole_range(lo.max(0), hi)));
    }
    format!("^({})$", parts.join("|"))
}

/// A regular expression of the whole numbers from `lo` to `hi` (0 ≤ lo ≤ hi), written without
/// leading zeros.
fn whole_range(lo: i128, hi: i128) -> String {
    let mut parts = Vec::new();
    let mut start = lo;
    while start <= hi {
        // The numbers of as many digits as `start`, up to `hi`.
        let digits = start.to_string().len() as u32;
        let end = hi.min(10i128.pow(digits) - 1);
        parts.extend(same_length(&start.to_string(), &end.to_string()));
        start = end + 1;
    }
    parts.join("|")
}

/// The alternatives of the numbers from `lo` to `hi`, both of the same number of digits.
fn same_length(lo: &str, hi: &str) -> Vec<String> {
    let (Some(a), Some(b)) = (lo.chars().next(), hi.chars().next()) else { return vec![String::new()] };
    let (lo_rest, hi_rest) = (&lo[1..], &hi[1..]);
    if a == b {
        return same_length(lo_rest, hi_rest).into_iter().map(|r| format!("{a}{r}")).collect();
    }
    let any = |n: usize| if n == 0 { String::new() } else { format!("[0-9]{{{n}}}") };
    let mut out = Vec::new();
    let mut first = a;
    if lo_rest.chars().any(|c| c != '0') {
        let nines = "9".repeat(lo_rest.len());
        out.extend(same_length(lo_rest, &nines).into_iter().map(|r| format!("{a}{r}")));
        first = char::from(a as u8 + 1);
    }
    let mut last = b;
    let mut tail = Vec::new();
    if hi_rest.chars().any(|c| c != '9') {
        let zeros = "0".repeat(hi_rest.len());
        tail.extend(same_length(&zeros, hi_rest).into_iter().map(|r| format!("{b}{r}")));
        last = char::from(b as u8 - 1);
    }
    if first <= last {
        out.push(format!("[{first}-{last}]{}", any(lo_rest.len())));
    }
    out.extend(tail);
    out
}

/// The JSON number a text is when a JSON number written so becomes that text (`83` for "83",
/// `0.5` for "0.5"; none for "083" or "1e3", which no JSON number becomes).
fn as_number(text: &str) -> Option<Value> {
    if let Ok(i) = text.parse::<i64>() {
        return (i.to_string() == text).then(|| json!(i));
    }
    let x: f64 = text.parse().ok()?;
    let n = serde_json::Number::from_f64(x)?;
    (x.fract() != 0.0 && n.to_string() == text).then_some(Value::Number(n))
}

/// The JSON values whose text is one of `texts`: each text, the number written so, and `true`
/// or `false` for "true" and "false".
fn values_of(texts: &[String], numbers: bool) -> Vec<Value> {
    let mut values: Vec<Value> = Vec::new();
    for text in texts {
        values.push(json!(text));
        if numbers {
            values.extend(as_number(text));
        }
        match text.as_str() {
            "true" => values.push(json!(true)),
            "false" => values.push(json!(false)),
            _ => {}
        }
    }
    values
}

/// What a column takes: its kind's values, and a missing value where it allows them (`null` and
/// an absent key when the empty text is one of its spellings).
fn column_schema(column: &Column) -> Value {
    let long = json!({ "type": "string", "minLength": 1, "maxLength": MAX_VALUE_BYTES });
    let (mut alternatives, description) = match &column.kind {
        ColumnKind::Numeric { min, max, .. } => {
            let mut number = json!({ "type": "number" });
            if let Some(m) = min {
                number["minimum"] = json!(m);
            }
            if let Some(m) = max {
                number["maximum"] = json!(m);
            }
            let range = range_words(min.map(|m| m.to_string()), max.map(|m| m.to_string()));
            (
                vec![
                    number,
                    json!({ "type": "string", "pattern": decimal_pattern(*min, *max), "maxLength": MAX_VALUE_BYTES }),
                ],
                format!("A decimal number{range}: a JSON number, or a string holding one (the same range applies)."),
            )
        }
        ColumnKind::Integer { min, max, .. } => {
            let number = json!({
                "type": "integer",
                "minimum": min.unwrap_or(i64::MIN),
                "maximum": max.unwrap_or(i64::MAX),
            });
            let range = range_words(min.map(|m| m.to_string()), max.map(|m| m.to_string()));
            (
                vec![number, json!({ "type": "string", "pattern": integer_pattern(*min, *max) })],
                format!(
                    "A whole number{range}: a JSON number with no fractional part (`48`, or `48.0` as \
                     a frame of floats sends it), or a string holding one written without a fraction \
                     or an exponent (the same range applies)."
                ),
            )
        }
        ColumnKind::Categorical { levels: Some(levels) } => (
            vec![json!({ "enum": values_of(levels, true) })],
            format!(
                "One of the levels {}: as a string, or as the JSON number or boolean written so.",
                levels.join(", ")
            ),
        ),
        ColumnKind::Categorical { levels: None } => (
            vec![long, json!({ "type": ["number", "boolean"] })],
            "Any level: a string, or a number or boolean (read as its JSON text).".to_string(),
        ),
        ColumnKind::Boolean { true_values, false_values } => {
            let spellings: Vec<String> = true_values.iter().chain(false_values).cloned().collect();
            let mut values = values_of(&spellings, false);
            // A JSON number becomes its text, as is (no integer coding as for levels).
            values.extend(spellings.iter().filter_map(|s| {
                s.parse::<serde_json::Number>().ok().filter(|n| n.to_string() == *s).map(Value::Number)
            }));
            (
                vec![json!({ "type": "boolean" }), json!({ "enum": values })],
                format!(
                    "A boolean: JSON true or false, or a spelling: true is {}, false is {}.",
                    true_values.join("/"),
                    false_values.join("/")
                ),
            )
        }
        ColumnKind::Id => (
            vec![
                json!({ "type": "string", "minLength": 1, "maxLength": MAX_ID_BYTES }),
                json!({ "type": ["number", "boolean"] }),
            ],
            format!(
                "The record's id (carried to its prediction): a string of at most {MAX_ID_BYTES} bytes, \
                 or a number or boolean (read as its JSON text)."
            ),
        ),
        // Neither is among the columns a record is read into.
        ColumnKind::Label { .. } | ColumnKind::Ignore => (Vec::new(), String::new()),
    };
    let missing = missing_spellings(column);
    let description = if missing.is_empty() {
        format!("{description} Required: a missing value is refused.")
    } else {
        let mut values = values_of(missing, true);
        if missing.iter().any(String::is_empty) {
            values.push(Value::Null);
        }
        alternatives.push(json!({ "enum": values }));
        let spellings: Vec<String> = missing.iter().map(|m| format!("{m:?}")).collect();
        format!("{description} May be missing: {} (and null for \"\").", spellings.join(", "))
    };
    json!({ "description": description, "anyOf": alternatives })
}

/// " from MIN to MAX", " of at least MIN", " of at most MAX", or nothing.
fn range_words(min: Option<String>, max: Option<String>) -> String {
    match (min, max) {
        (Some(lo), Some(hi)) => format!(" from {lo} to {hi}"),
        (Some(lo), None) => format!(" of at least {lo}"),
        (None, Some(hi)) => format!(" of at most {hi}"),
        (None, None) => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A pattern and the texts it takes and refuses.
    fn check(pattern: &str, taken: &[&str], refused: &[&str]) {
        let re = regex_lite::Regex::new(pattern).unwrap();
        for t in taken {
            assert!(re.is_match(t), "{pattern} refuses {t}");
        }
        for r in refused {
            assert!(!re.is_match(r), "{pattern} takes {r}");
        }
    }

    /// The patterns of numbers in strings hold the column's range, as the server reads it.
    #[test]
    fn number_patterns_hold_the_range() {
        check(
            &integer_pattern(Some(18), Some(110)),
            &["18", "19", "99", "100", "110", "+42"],
            &["17", "111", "0", "-18", "1a", "", "180"],
        );
        check(&integer_pattern(Some(0), None), &["0", "7", "9223372036854775807"], &["-1", "9223372036854775808"]);
        check(
            &integer_pattern(None, None),
            &["-9223372036854775808", "0", "-5", "+5"],
            &["-9223372036854775809", "1.0"],
        );
        check(&integer_pattern(Some(-15), Some(-3)), &["-15", "-10", "-3"], &["-16", "-2", "3", "0"]);
        for lo in [0, 1, 7, 18, 99, 100, 123] {
            for hi in [lo, lo + 1, 109, 200, 1000] {
                if hi < lo {
                    continue;
                }
                let re = regex_lite::Regex::new(&format!("^({})$", whole_range(lo, hi))).unwrap();
                for n in 0..1200 {
                    assert_eq!(re.is_match(&n.to_string()), (lo..=hi).contains(&n), "{lo}..={hi}: {n}");
                }
            }
        }
        check(&decimal_pattern(Some(0.0), None), &["0", "12.5", "3.", "+1"], &["-1", "1e3", "inf", "NaN", ""]);
        check(&decimal_pattern(Some(0.0), Some(1.0)), &["0", "0.25", "1", "1.000"], &["1.5", "2", "-0.5"]);
        check(&decimal_pattern(None, None), &["-2.5", "7", ".5"], &["1e999", "inf"]);
        assert_eq!(decimal_pattern(Some(-0.5), None), DECIMAL);
        for (value, text) in [(json!(83), "83"), (json!(0.5), "0.5")] {
            assert_eq!(as_number(text), Some(value));
        }
        assert_eq!(as_number("083"), None);
        assert_eq!(as_number("1e3"), None);
    }
}
