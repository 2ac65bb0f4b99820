//! The OpenAPI 3.1 description of the routes, served at `GET /openapi.json`, generated from the
//! served model's schema: a record has one property per column the model reads, typed as
//! [`super::records`] reads it (a JSON value becomes the text a CSV field would hold, then the
//! column's rules check it), with its levels as `enum`, its range as `minimum`/`maximum` and
//! its missing rule; the label and `ignore` columns are allowed and not read. Each route says
//! which token it takes *on this server* (its configured tokens) and every status it answers.
//!
//! A route is one entry of [`ROUTES`]: its path and the function that builds its path item.

use model::data::schema::{Column, ColumnKind, Missing};
use serde_json::{json, Map, Value};

use super::auth::Access;
use super::http::{access, Surface};
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
                 (`#/components/responses/MethodNotAllowed`); an unknown path 404.",
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
    let unauthorized = ("401", reference("Unauthorized"));
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
                    "schema": {
                        "type": "string",
                        "description": "A CSV file with a header naming the model's columns (the \
                            label and `ignore` columns may be there, and are not read), each value \
                            checked by its column's rules; at most `--max-records` rows.",
                    },
                },
            },
        })),
        vec![
            (
                "200",
                json!({
                    "description": "The predictions, in the records' order. A CSV body is answered \
                        with the CSV `mlgate predict` writes and a last column, `receipt`.",
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
            ),
            ("400", reference("BadRequest")),
            ("408", reference("Timeout")),
            ("413", reference("TooLarge")),
            ("422", reference("Unprocessable")),
            ("503", reference("Unavailable")),
        ],
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
        vec![
            (
                "200",
                json!({
                    "description": "What was joined, unmatched and refused.",
                    "content": { "application/json": { "schema": schema_ref("FeedbackResponse") } },
                }),
            ),
            ("400", reference("BadRequest")),
            ("408", reference("Timeout")),
            ("413", reference("TooLarge")),
            ("422", reference("Unprocessable")),
            ("503", reference("Unavailable")),
        ],
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

/// The schemas, the reusable answers and the bearer scheme.
fn components(context: &Context) -> Value {
    let shared = context.shared;
    let loaded = context.loaded;
    let artifact = loaded.compiled.artifact();
    let (positive, negative) = match &artifact.schema.label().kind {
        ColumnKind::Label { positive, negative } => (positive.clone(), negative.clone()),
        _ => unreachable!("a schema's label column has the label kind"),
    };
    let problem = |description: &str| {
        json!({
            "description": description,
            "content": {
                "application/problem+json": { "schema": schema_ref("Problem") },
                "application/json": { "schema": schema_ref("Problem") },
            },
        })
    };
    let mut unauthorized = problem("No bearer token, or not one this server takes.");
    unauthorized["headers"] = json!({
        "WWW-Authenticate": {
            "required": true,
            "description": "`Bearer realm=\"mlgate\"`.",
            "schema": { "type": "string" },
        },
    });
    let mut unavailable = problem(
        "No model loaded yet, the server draining, or (with `Retry-After`) as many requests being \
         read and scored as `--max-scoring` allows for more than a second.",
    );
    unavailable["headers"] = json!({
        "Retry-After": {
            "description": "Seconds to wait before retrying, when the server was busy.",
            "schema": { "type": "integer", "minimum": 0 },
        },
    });
    let mut not_allowed = problem("The route does not take this method.");
    not_allowed["headers"] = json!({
        "Allow": {
            "required": true,
            "description": "The methods the route takes.",
            "schema": { "type": "string" },
        },
    });
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
    json!({
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
                "required": ["id", "probability", "prediction", "receipt"],
                "properties": {
                    "id": { "type": "string", "description": "The record's id column when the schema has one, else 128 random bits in hexadecimal." },
                    "probability": { "type": "number", "minimum": 0, "maximum": 1 },
                    "prediction": { "enum": [0, 1], "description": format!("1 when the probability is at least the threshold, {}.", artifact.threshold.value) },
                    "receipt": { "type": "string", "description": "A signed receipt, to send back with the true label." },
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
        "responses": {
            "BadRequest": problem("The body is not of the expected shape (or not JSON), or holds no record."),
            "Unauthorized": unauthorized,
            "FeedbackDisabled": problem("Feedback is disabled: the server has no feedback token."),
            "MethodNotAllowed": not_allowed,
            "Timeout": problem("The body did not arrive within `--read-timeout`."),
            "TooLarge": problem("More than `--max-body-bytes` bytes, or more than `--max-records` records or items."),
            "Unprocessable": problem("Values break the model's schema (or feedback items cannot be read); nothing was scored or recorded."),
            "Unavailable": unavailable,
        },
    })
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
                    "A whole number{range}: a JSON integer written without a fraction or an exponent, \
                     or a string holding one (the same range applies)."
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
