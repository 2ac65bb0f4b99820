//! KServe's V1 protocol and the Open Inference Protocol (V2, REST), for the model served under
//! its name (`--model`, else the artifact's): any other name is 404 `{"error": …}`, the error
//! shape of both protocols.
//!
//! - V1: `GET /v1/models/NAME` (`{"name", "ready"}`), `POST /v1/models/NAME:predict` with
//!   `{"instances": [...]}` — records, or rows in the model's column order (`/v1/model`'s
//!   `columns`) — answering `{"predictions": [{id, probability, prediction, receipt}, …]}`.
//! - V2: `GET /v2/health/live`, `/v2/health/ready`, `/v2` (server metadata),
//!   `/v2/models/NAME[/versions/VERSION]` (model metadata: an input per column, named by it,
//!   FP64 for numbers, INT64 for integers, BOOL for booleans, BYTES for levels and ids, shape
//!   `[-1]`; outputs `probability` FP64 and `prediction` INT64), `…/ready`, and `POST …/infer`.
//!
//! An infer request gives one tensor per column (shape `[n]` or `[n, 1]`, all the same `n`), or
//! a single row-major tensor of shape `[n, k]` over the `k` columns in the model's order, named
//! by none of them. Its JSON `data` is flat in row-major order, or nested exactly as its shape.
//! A tensor's datatype says how its elements are read: FP64/FP32 numbers (NaN, in binary data,
//! is a missing value), INT8…INT64 and UINT8…UINT64 whole numbers (`7.0` too), BOOL booleans,
//! BYTES strings — each then checked by its column's rules exactly as a JSON record's value (a
//! BYTES tensor of numbers in text is fine; `12.5` in an INT64 tensor is not an integer). The
//! binary tensor data extension is understood both ways (`Inference-Header-Content-Length`,
//! `binary_data_size`, `binary_data_output`), as `tritonclient` uses it by default. The answer
//! carries the request's `id`, and outputs `probability` (FP64) and `prediction` (INT64); asked
//! for by name in `outputs`, also `id` and `receipt` (BYTES), the predictions' ids and receipts.

// An error here is the answer to give, made once per request and given at once: boxing it
// would buy nothing.
#![allow(clippy::result_large_err)]

use std::sync::atomic::Ordering;
use std::sync::Arc;

use hyper::body::Bytes;
use hyper::header::HeaderValue;
use hyper::{Request, StatusCode};
use serde::Deserialize;
use serde_json::{Map, Value};

use super::answer::{answer, json, problem, Answer};
use super::intake::{scoring, too_many, RequestBody, BINARY_HEADER_LENGTH};
use super::records::{Builder, Table, TABLE_SHAPES};
use super::rollout::Serving;
use super::score::{self, Origin, Scored};
use super::{Loaded, Shared};

/// The served model when `name` (and `version`, when given) is it; else the 404 (or 503 while
/// none is loaded).
fn model_named(shared: &Shared, name: &str, version: Option<&str>) -> Result<Arc<Serving>, Answer> {
    let Some(loaded) = shared.current() else {
        return Err(problem(StatusCode::SERVICE_UNAVAILABLE, "no model loaded yet"));
    };
    let served = shared.model_name();
    if name != served {
        return Err(problem(
            StatusCode::NOT_FOUND,
            format!("no model {} here: this server serves {served}", model::data::report::echo(name)),
        ));
    }
    if let Some(v) = version.filter(|v| *v != loaded.version) {
        return Err(problem(
            StatusCode::NOT_FOUND,
            format!(
                "no version {} of {served} here: this server serves {}",
                model::data::report::echo(v),
                loaded.version
            ),
        ));
    }
    Ok(loaded)
}

fn ready(shared: &Shared) -> bool {
    !shared.draining.load(Ordering::SeqCst) && shared.current().is_some()
}

/// `GET /v1/models/NAME`.
pub(super) fn v1_model(shared: &Shared, name: &str) -> Answer {
    match model_named(shared, name, None) {
        Ok(_) if !ready(shared) => problem(StatusCode::SERVICE_UNAVAILABLE, "draining"),
        Ok(_) => json(StatusCode::OK, &serde_json::json!({ "name": name, "ready": true })),
        Err(answer) => answer,
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct V1Request {
    instances: Table,
}

/// `POST /v1/models/NAME:predict`.
pub(super) async fn v1_predict<B: RequestBody>(shared: &Arc<Shared>, name: &str, request: Request<B>) -> Answer {
    if let Err(answer) = model_named(shared, name, None) {
        return answer;
    }
    scoring(
        shared,
        request,
        Box::new(|shared, loaded, bytes| {
            let parsed: V1Request = match serde_json::from_slice(bytes) {
                Ok(p) => p,
                Err(e) => {
                    return problem(
                        StatusCode::BAD_REQUEST,
                        format!("the body is not {{\"instances\": …}} with {TABLE_SHAPES}: {e}"),
                    )
                }
            };
            let mut builder = Builder::new(loaded, shared.max_records);
            if let Err(why) = builder.table(&parsed.instances) {
                return problem(StatusCode::BAD_REQUEST, why);
            }
            let records = builder.into_records();
            if let Some(answer) = too_many(shared, records.count, "instances") {
                return answer;
            }
            if records.count == 0 {
                return problem(StatusCode::BAD_REQUEST, "no instances to score");
            }
            match score::score(shared, loaded, records, Origin::Records, true) {
                Ok(scored) => json(StatusCode::OK, &serde_json::json!({ "predictions": scored.predictions() })),
                Err(answer) => answer,
            }
        }),
    )
    .await
}

/// `GET /v2/health/live`.
pub(super) fn v2_live(_shared: &Shared) -> Answer {
    json(StatusCode::OK, &serde_json::json!({ "live": true }))
}

/// `GET /v2/health/ready`: 200 with a model loaded and not draining.
pub(super) fn v2_ready(shared: &Shared) -> Answer {
    if ready(shared) {
        json(StatusCode::OK, &serde_json::json!({ "ready": true }))
    } else {
        problem(StatusCode::SERVICE_UNAVAILABLE, "not ready: no model loaded yet, or draining")
    }
}

/// `GET /v2`: the server's metadata.
pub(super) fn v2_server() -> Answer {
    json(
        StatusCode::OK,
        &serde_json::json!({ "name": "mlgate", "version": env!("CARGO_PKG_VERSION"), "extensions": ["binary_tensor_data"] }),
    )
}

/// The V2 datatype of a column's tensor.
fn datatype(kind: &model::data::schema::ColumnKind) -> &'static str {
    use model::data::schema::ColumnKind;
    match kind {
        ColumnKind::Numeric { .. } => "FP64",
        ColumnKind::Integer { .. } => "INT64",
        ColumnKind::Boolean { .. } => "BOOL",
        _ => "BYTES",
    }
}

/// The inputs of the model's metadata: one per compiled column, named by it, typed by its kind,
/// of shape `[-1]`.
pub(super) fn metadata_inputs(loaded: &Loaded) -> Vec<Value> {
    let schema = &loaded.compiled.artifact().schema;
    loaded
        .compiled
        .columns()
        .iter()
        .map(|c| {
            let kind = schema.column(c).map_or("BYTES", |c| datatype(&c.kind));
            serde_json::json!({ "name": c, "datatype": kind, "shape": [-1] })
        })
        .collect()
}

/// The outputs of the model's metadata: `probability` (FP64) and `prediction` (INT64).
pub(super) fn metadata_outputs() -> Value {
    serde_json::json!([
        { "name": "probability", "datatype": "FP64", "shape": [-1] },
        { "name": "prediction", "datatype": "INT64", "shape": [-1] },
    ])
}

/// `GET /v2/models/NAME[/versions/VERSION]`.
pub(super) fn v2_model(shared: &Shared, name: &str, version: Option<&str>) -> Answer {
    let loaded = match model_named(shared, name, version) {
        Ok(l) => l,
        Err(answer) => return answer,
    };
    let inputs = metadata_inputs(&loaded);
    json(
        StatusCode::OK,
        &serde_json::json!({
            "name": name,
            "versions": [loaded.version],
            "platform": "mlgate",
            "inputs": inputs,
            "outputs": metadata_outputs(),
        }),
    )
}

/// `GET /v2/models/NAME[/versions/VERSION]/ready`.
pub(super) fn v2_model_ready(shared: &Shared, name: &str, version: Option<&str>) -> Answer {
    match model_named(shared, name, version) {
        Ok(_) if !ready(shared) => problem(StatusCode::SERVICE_UNAVAILABLE, "draining"),
        Ok(_) => json(StatusCode::OK, &serde_json::json!({ "name": name, "ready": true })),
        Err(answer) => answer,
    }
}

#[derive(Deserialize)]
struct InferRequest {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    parameters: Option<Map<String, Value>>,
    inputs: Vec<Tensor>,
    #[serde(default)]
    outputs: Option<Vec<RequestedOutput>>,
}

#[derive(Deserialize)]
struct Tensor {
    name: String,
    shape: Vec<i64>,
    datatype: String,
    #[serde(default)]
    parameters: Option<Map<String, Value>>,
    #[serde(default)]
    data: Option<Value>,
}

#[derive(Deserialize)]
struct RequestedOutput {
    name: String,
    #[serde(default)]
    parameters: Option<Map<String, Value>>,
}

/// The outputs an answer may hold: beside the predictions, their ids and receipts, the version
/// that answered each and its role (`baseline`, or a rollout's `canary`), and in a shadow rollout
/// the shadow's version and probability (empty and NaN — `null` in JSON — where there is none).
pub(super) const OUTPUTS: [&str; 8] =
    ["probability", "prediction", "id", "receipt", "version", "role", "shadow_version", "shadow_probability"];

/// `POST /v2/models/NAME[/versions/VERSION]/infer`.
pub(super) async fn v2_infer<B: RequestBody>(
    shared: &Arc<Shared>,
    name: &str,
    version: Option<&str>,
    request: Request<B>,
) -> Answer {
    if let Err(answer) = model_named(shared, name, version) {
        return answer;
    }
    let header_length =
        request.headers().get(BINARY_HEADER_LENGTH).map(|v| v.to_str().ok().and_then(|s| s.parse().ok()));
    let header_length: Option<usize> = match header_length {
        None => None,
        Some(Some(n)) => Some(n),
        Some(None) => {
            return problem(StatusCode::BAD_REQUEST, "Inference-Header-Content-Length is not a number of bytes")
        }
    };
    let name = name.to_string();
    scoring(shared, request, Box::new(move |shared, loaded, bytes| infer(shared, loaded, &name, bytes, header_length)))
        .await
}

fn bad(detail: impl Into<String>) -> Answer {
    problem(StatusCode::BAD_REQUEST, detail)
}

fn infer(shared: &Shared, loaded: &Serving, name: &str, bytes: &[u8], header_length: Option<usize>) -> Answer {
    let (head, mut binary) = match header_length {
        Some(n) if n <= bytes.len() => bytes.split_at(n),
        Some(n) => return bad(format!("Inference-Header-Content-Length is {n}; the body has {} bytes", bytes.len())),
        None => (bytes, &[][..]),
    };
    let request: InferRequest = match serde_json::from_slice(head) {
        Ok(r) => r,
        Err(e) => {
            return bad(format!(
                "the body is not an inference request ({{\"id\", \"inputs\": [{{\"name\", \"shape\", \"datatype\", \"data\"}}, …], \"outputs\"}}): {e}"
            ))
        }
    };
    // Each tensor's elements as JSON values, in row-major order.
    let mut tensors: Vec<(&Tensor, Vec<Value>)> = Vec::with_capacity(request.inputs.len());
    for tensor in &request.inputs {
        let elements = match tensor
            .shape
            .iter()
            .try_fold(1usize, |n, &d| usize::try_from(d).ok().and_then(|d| n.checked_mul(d)))
        {
            Some(n) => n,
            None => return bad(format!("input `{}`: shape {:?} is not a tensor's", echo(&tensor.name), tensor.shape)),
        };
        let values = match elements_of(tensor, elements, &mut binary) {
            Ok(v) => v,
            Err(why) => return bad(format!("input `{}`: {why}", echo(&tensor.name))),
        };
        tensors.push((tensor, values));
    }
    if !binary.is_empty() {
        return bad(format!("{} bytes of binary data are left over after the inputs", binary.len()));
    }
    let mut builder = Builder::new(loaded, shared.max_records);
    let columns = builder.columns();
    let row_major = matches!(&tensors[..], [(t, _)] if !columns.contains(&t.name) && t.shape.len() == 2);
    if row_major {
        let (tensor, values) = &tensors[0];
        let k = tensor.shape[1] as usize;
        if k != columns.len() {
            return bad(format!(
                "input `{}`: a row-major tensor has one column for each of the model's {} columns ({}), not {k}",
                echo(&tensor.name),
                columns.len(),
                columns.join(", ")
            ));
        }
        let names: Vec<&str> = columns.iter().map(String::as_str).collect();
        for row in values.chunks(k) {
            builder.row(&names, row.iter());
        }
    } else {
        let Some(n) = tensors.first().map(|(_, v)| v.len()) else {
            return bad("no inputs");
        };
        for (tensor, values) in &tensors {
            let column = matches!(tensor.shape[..], [_] | [_, 1]);
            if !column || values.len() != n {
                return bad(format!(
                    "input `{}` has shape {:?}: a column's tensor has shape [{n}] or [{n}, 1], as the first input's",
                    echo(&tensor.name),
                    tensor.shape
                ));
            }
        }
        for i in 0..n {
            builder.record(tensors.iter().map(|(t, values)| (t.name.as_str(), &values[i])));
        }
    }
    let records = builder.into_records();
    if let Some(answer) = too_many(shared, records.count, "rows") {
        return answer;
    }
    if records.count == 0 {
        return bad("no rows to score");
    }
    // The outputs asked for, each in binary or JSON.
    let binary_all = match flag(request.parameters.as_ref(), "binary_data_output") {
        Ok(b) => b,
        Err(why) => return bad(why),
    };
    let wanted: Vec<(&str, bool)> = match &request.outputs {
        None => vec![("probability", binary_all.unwrap_or(false)), ("prediction", binary_all.unwrap_or(false))],
        Some(outputs) => {
            let mut wanted = Vec::new();
            for o in outputs {
                let Some(known) = OUTPUTS.iter().find(|k| **k == o.name) else {
                    return bad(format!("no output `{}`: the outputs are {}", echo(&o.name), OUTPUTS.join(", ")));
                };
                let binary = match flag(o.parameters.as_ref(), "binary_data") {
                    Ok(b) => b,
                    Err(why) => return bad(format!("output `{}`: {why}", echo(&o.name))),
                };
                wanted.push((*known, binary.or(binary_all).unwrap_or(false)));
            }
            wanted
        }
    };
    let scored = match score::score(shared, loaded, records, Origin::Records, true) {
        Ok(scored) => scored,
        Err(answer) => return answer,
    };
    respond(name, loaded, request.id.as_deref(), &wanted, &scored)
}

fn echo(text: &str) -> String {
    model::data::report::echo(text)
}

/// A boolean parameter (`binary_data_output`, `binary_data`), when given: anything but `true`
/// or `false` is refused rather than read as either.
fn flag(parameters: Option<&Map<String, Value>>, key: &str) -> Result<Option<bool>, String> {
    match parameters.and_then(|p| p.get(key)) {
        None => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(other) => Err(format!("parameters.{key} is true or false, not {}", echo(&other.to_string()))),
    }
}

/// The elements of `tensor` as JSON values (`count` of them), from its `data` or from the next
/// `binary_data_size` bytes of `binary`.
fn elements_of(tensor: &Tensor, count: usize, binary: &mut &[u8]) -> Result<Vec<Value>, String> {
    let size = tensor.parameters.as_ref().and_then(|p| p.get("binary_data_size"));
    let values = match (size, &tensor.data) {
        (Some(_), Some(_)) => return Err("both `data` and binary data".into()),
        (None, None) => return Err("no `data`".into()),
        (None, Some(data)) => elements(data, &tensor.shape)?
            .into_iter()
            .map(|v| json_element(&tensor.datatype, v))
            .collect::<Result<Vec<_>, _>>()?,
        (Some(size), None) => {
            let size = size.as_u64().and_then(|s| usize::try_from(s).ok()).ok_or("binary_data_size is not a size")?;
            if size > binary.len() {
                return Err(format!("binary_data_size is {size}; {} bytes are left in the body", binary.len()));
            }
            let (mine, rest) = binary.split_at(size);
            *binary = rest;
            binary_elements(&tensor.datatype, mine)?
        }
    };
    if values.len() != count {
        return Err(format!("{} elements for shape {:?} ({count})", values.len(), tensor.shape));
    }
    Ok(values)
}

/// A tensor's `data` in row-major order: an array, flat (the protocol's form) or nested exactly
/// as `shape` (as Triton also takes it); any other nesting is refused, not guessed at.
fn elements<'v>(data: &'v Value, shape: &[i64]) -> Result<Vec<&'v Value>, String> {
    let Value::Array(items) = data else {
        return Err(format!("`data` is {}, not an array", echo(&data.to_string())));
    };
    if !items.iter().any(Value::is_array) {
        return Ok(items.iter().collect());
    }
    let mut out = Vec::new();
    if nested(data, shape, &mut out) {
        Ok(out)
    } else {
        Err(format!(
            "`data` is nested, but not as shape {shape:?}: give it flat, in row-major order, or nested as the shape"
        ))
    }
}

/// The elements of `value` nested as `shape`, appended to `out`; false when it is not so nested.
fn nested<'v>(value: &'v Value, shape: &[i64], out: &mut Vec<&'v Value>) -> bool {
    match (shape.split_first(), value) {
        (None, Value::Array(_)) => false,
        (None, scalar) => {
            out.push(scalar);
            true
        }
        (Some((&d, rest)), Value::Array(items)) => {
            usize::try_from(d).is_ok_and(|d| d == items.len()) && items.iter().all(|i| nested(i, rest, out))
        }
        (Some(_), _) => false,
    }
}

/// One element of `data`, checked against its tensor's datatype.
fn json_element(datatype: &str, value: &Value) -> Result<Value, String> {
    let fits = match datatype {
        "FP64" | "FP32" | "FP16" | "BF16" => value.is_number(),
        // A whole number written `7.0` is the number 7, as JSON (and JSON Schema) reads it.
        "INT8" | "INT16" | "INT32" | "INT64" | "UINT8" | "UINT16" | "UINT32" | "UINT64" => {
            value.is_i64() || value.is_u64() || value.as_f64().is_some_and(|x| x.fract() == 0.0)
        }
        "BOOL" => value.is_boolean(),
        "BYTES" => value.is_string(),
        other => {
            return Err(format!(
                "datatype {} is not one of FP64, FP32, INT8…INT64, UINT8…UINT64, BOOL, BYTES",
                echo(other)
            ))
        }
    };
    if fits {
        Ok(value.clone())
    } else {
        Err(format!("{} in a {datatype} tensor", echo(&value.to_string())))
    }
}

/// The elements of binary tensor data (little-endian; BYTES each a 4-byte length then bytes).
fn binary_elements(datatype: &str, bytes: &[u8]) -> Result<Vec<Value>, String> {
    fn fixed<const N: usize>(bytes: &[u8], datatype: &str, f: impl Fn([u8; N]) -> Value) -> Result<Vec<Value>, String> {
        if !bytes.len().is_multiple_of(N) {
            return Err(format!("{} bytes of {datatype} data: not a whole number of {N}-byte elements", bytes.len()));
        }
        Ok(bytes.chunks_exact(N).map(|c| f(c.try_into().expect("chunks of N bytes"))).collect())
    }
    let float = |x: f64| {
        if x.is_nan() {
            // A missing value, as NaN stands for one in the frames these tensors come from.
            Value::Null
        } else {
            serde_json::Number::from_f64(x).map_or_else(|| Value::String(x.to_string()), Value::Number)
        }
    };
    match datatype {
        "FP64" => fixed::<8>(bytes, datatype, |b| float(f64::from_le_bytes(b))),
        "FP32" => fixed::<4>(bytes, datatype, |b| float(f64::from(f32::from_le_bytes(b)))),
        "INT64" => fixed::<8>(bytes, datatype, |b| Value::from(i64::from_le_bytes(b))),
        "INT32" => fixed::<4>(bytes, datatype, |b| Value::from(i32::from_le_bytes(b))),
        "INT16" => fixed::<2>(bytes, datatype, |b| Value::from(i16::from_le_bytes(b))),
        "INT8" => fixed::<1>(bytes, datatype, |b| Value::from(i8::from_le_bytes(b))),
        "UINT64" => fixed::<8>(bytes, datatype, |b| Value::from(u64::from_le_bytes(b))),
        "UINT32" => fixed::<4>(bytes, datatype, |b| Value::from(u32::from_le_bytes(b))),
        "UINT16" => fixed::<2>(bytes, datatype, |b| Value::from(u16::from_le_bytes(b))),
        "UINT8" => fixed::<1>(bytes, datatype, |b| Value::from(b[0])),
        "BOOL" => fixed::<1>(bytes, datatype, |b| Value::Bool(b[0] != 0)),
        "BYTES" => {
            let mut out = Vec::new();
            let mut rest = bytes;
            while !rest.is_empty() {
                let Some((len, tail)) = rest.split_first_chunk::<4>() else {
                    return Err("BYTES data cut inside an element's length".into());
                };
                let len = u32::from_le_bytes(*len) as usize;
                if len > tail.len() {
                    return Err(format!("a BYTES element of {len} bytes; {} are left", tail.len()));
                }
                let (element, tail) = tail.split_at(len);
                let text = std::str::from_utf8(element).map_err(|_| "a BYTES element is not UTF-8 text".to_string())?;
                out.push(Value::String(text.to_string()));
                rest = tail;
            }
            Ok(out)
        }
        other => {
            Err(format!("datatype {} is not one of FP64, FP32, INT8…INT64, UINT8…UINT64, BOOL, BYTES", echo(other)))
        }
    }
}

/// The answer: the request's `id`, and the outputs wanted, in JSON or after the JSON in binary.
fn respond(name: &str, loaded: &Loaded, id: Option<&str>, wanted: &[(&str, bool)], scored: &Scored) -> Answer {
    let n = scored.probabilities.len();
    let mut tail: Vec<u8> = Vec::new();
    let mut outputs = Vec::with_capacity(wanted.len());
    for &(output, binary) in wanted {
        let datatype = match output {
            "probability" | "shadow_probability" => "FP64",
            "prediction" => "INT64",
            _ => "BYTES",
        };
        let shadow: Vec<f64> = (0..n).map(|i| scored.shadow_of(i).map_or(f64::NAN, |(_, p)| p)).collect();
        let texts = |output: &str| -> Vec<&str> {
            match output {
                "id" => scored.ids.iter().map(String::as_str).collect(),
                "receipt" => scored.receipts.iter().map(String::as_str).collect(),
                "version" => (0..n).map(|i| scored.version(i).0).collect(),
                "role" => (0..n).map(|i| scored.version(i).1.name()).collect(),
                _ => (0..n).map(|i| scored.shadow_of(i).map_or("", |(v, _)| v)).collect(),
            }
        };
        let mut tensor = serde_json::json!({ "name": output, "datatype": datatype, "shape": [n] });
        if binary {
            let start = tail.len();
            match output {
                "probability" => scored.probabilities.iter().for_each(|p| tail.extend_from_slice(&p.to_le_bytes())),
                "shadow_probability" => shadow.iter().for_each(|p| tail.extend_from_slice(&p.to_le_bytes())),
                "prediction" => {
                    scored.decisions.iter().for_each(|&d| tail.extend_from_slice(&i64::from(d).to_le_bytes()))
                }
                _ => {
                    for t in texts(output) {
                        tail.extend_from_slice(&(t.len() as u32).to_le_bytes());
                        tail.extend_from_slice(t.as_bytes());
                    }
                }
            }
            tensor["parameters"] = serde_json::json!({ "binary_data_size": tail.len() - start });
        } else {
            tensor["data"] = match output {
                "probability" => serde_json::json!(scored.probabilities),
                "prediction" => scored.decisions.iter().map(|&d| Value::from(i64::from(d))).collect(),
                // serde_json writes a NaN as null.
                "shadow_probability" => serde_json::json!(shadow),
                _ => serde_json::json!(texts(output)),
            };
        }
        outputs.push(tensor);
    }
    let mut body = serde_json::json!({ "model_name": name, "model_version": loaded.version, "outputs": outputs });
    if let Some(id) = id {
        body["id"] = Value::from(id);
    }
    if tail.is_empty() {
        return json(StatusCode::OK, &body);
    }
    let mut bytes = serde_json::to_vec(&body).expect("the server's answers serialise");
    let head = bytes.len();
    bytes.extend_from_slice(&tail);
    let mut response = answer(StatusCode::OK, "application/octet-stream", Bytes::from(bytes));
    response.headers_mut().insert(BINARY_HEADER_LENGTH, HeaderValue::from(head));
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// `data` is flat, or nested exactly as the shape; a scalar, or another nesting, is refused.
    #[test]
    fn tensor_data_is_flat_or_nested_as_its_shape() {
        let flat = json!([1, 2, 3, 4]);
        assert_eq!(elements(&flat, &[2, 2]).unwrap().len(), 4);
        let nested = json!([[1, 2], [3, 4]]);
        assert_eq!(elements(&nested, &[2, 2]).unwrap(), vec![&json!(1), &json!(2), &json!(3), &json!(4)]);
        for (data, shape) in [
            (json!([[1, 2], [3, 4]]), vec![4]),
            (json!([[1, 2, 3, 4]]), vec![2, 2]),
            (json!([[1], 2]), vec![2, 1]),
            (json!([[[1]]]), vec![1, 1]),
            (json!(7), vec![1]),
        ] {
            assert!(elements(&data, &shape).is_err(), "{data} as {shape:?}");
        }
    }

    /// An integer tensor takes whole numbers, however written; the binary flags are booleans.
    #[test]
    fn integer_elements_and_flags() {
        assert!(json_element("INT64", &json!(7)).is_ok());
        assert!(json_element("INT32", &json!(7.0)).is_ok());
        assert!(json_element("INT64", &json!(7.5)).is_err());
        assert!(json_element("BYTES", &json!(7)).is_err());
        let parameters = |v: Value| v.as_object().cloned();
        assert_eq!(flag(parameters(json!({"binary_data": true})).as_ref(), "binary_data"), Ok(Some(true)));
        assert_eq!(flag(parameters(json!({})).as_ref(), "binary_data"), Ok(None));
        assert!(flag(parameters(json!({"binary_data": "yes"})).as_ref(), "binary_data").is_err());
        assert!(flag(parameters(json!({"binary_data": null})).as_ref(), "binary_data").is_err());
    }
}
