//! The answers the routes give, and the one error body: `application/problem+json` (RFC 9457:
//! `type`, `title`, `status`, `detail`, and extension members such as the per-value `errors`
//! and `counts` of a 422). A protocol whose clients expect their own error shape gets the same
//! problem rewritten once, on the way out ([`Dialect`]): MLflow's `{"error_code", "message"}`,
//! the KServe protocols' `{"error"}`.

use hyper::body::Bytes;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Response, StatusCode};
use serde::Serialize;
use serde_json::{Map, Value};

use http_body_util::Full;

/// An answer to a request.
pub type Answer = Response<Full<Bytes>>;

/// The problem type of values that break the model's schema (422 with `errors` and `counts`).
pub const INVALID_VALUES: &str = "urn:mlgate:problem:invalid-values";

/// The media type of the one error body.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// An answer of `status` with a body of `content_type`.
pub fn answer(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> Answer {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

/// A JSON answer.
pub fn json(status: StatusCode, value: &impl Serialize) -> Answer {
    typed_json(status, "application/json", value)
}

fn typed_json(status: StatusCode, content_type: &'static str, value: &impl Serialize) -> Answer {
    let mut body = serde_json::to_vec(value).expect("the server's answers serialise");
    body.push(b'\n');
    answer(status, content_type, body)
}

/// A problem with no more to say than its status and `detail` (`type` is `about:blank`).
pub fn problem(status: StatusCode, detail: impl Into<String>) -> Answer {
    problem_of("about:blank", status, detail, Map::new())
}

/// A problem of the type `kind` with extension members.
pub fn problem_of(kind: &str, status: StatusCode, detail: impl Into<String>, extensions: Map<String, Value>) -> Answer {
    let mut body = Map::new();
    body.insert("type".into(), kind.into());
    body.insert("title".into(), status.canonical_reason().unwrap_or("Error").into());
    body.insert("status".into(), status.as_u16().into());
    body.insert("detail".into(), detail.into().into());
    body.extend(extensions);
    typed_json(status, PROBLEM_JSON, &body)
}

/// The error shape a family of routes answers in.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Dialect {
    /// RFC 9457 problems, as made.
    Problem,
    /// MLflow's scoring server: `{"error_code": "BAD_REQUEST", "message": …}`, a value that
    /// breaks the schema 400 (MLflow's status for a schema it cannot enforce), the extension
    /// members kept beside.
    Mlflow,
    /// KServe's V1 and the Open Inference Protocol: `{"error": …}`, the extension members kept
    /// beside.
    Kserve,
}

/// MLflow's error code for a status (its `databricks_pb2` codes, as its server maps them).
fn mlflow_code(status: StatusCode) -> &'static str {
    match status.as_u16() {
        401 => "UNAUTHENTICATED",
        403 => "PERMISSION_DENIED",
        404 | 405 => "ENDPOINT_NOT_FOUND",
        429 => "REQUEST_LIMIT_EXCEEDED",
        503 => "TEMPORARILY_UNAVAILABLE",
        500..=599 => "INTERNAL_ERROR",
        _ => "BAD_REQUEST",
    }
}

/// `response` in `dialect`: a problem body rewritten (its headers kept), anything else as is.
pub fn in_dialect(dialect: Dialect, response: Answer) -> Answer {
    let is_problem = response.headers().get(CONTENT_TYPE).is_some_and(|v| v.as_bytes() == PROBLEM_JSON.as_bytes());
    if dialect == Dialect::Problem || !is_problem {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    // A Full body is one chunk, already in memory.
    let bytes = full_bytes(body);
    let Ok(Value::Object(mut problem)) = serde_json::from_slice::<Value>(&bytes) else {
        return Response::from_parts(parts, Full::new(bytes));
    };
    let detail = problem.remove("detail").unwrap_or_default();
    for member in ["type", "title", "status"] {
        problem.remove(member);
    }
    let mut body = Map::new();
    match dialect {
        Dialect::Mlflow => {
            if parts.status == StatusCode::UNPROCESSABLE_ENTITY {
                parts.status = StatusCode::BAD_REQUEST;
            }
            body.insert("error_code".into(), mlflow_code(parts.status).into());
            body.insert("message".into(), detail);
        }
        Dialect::Kserve => {
            body.insert("error".into(), detail);
        }
        Dialect::Problem => unreachable!("a problem is answered as made"),
    }
    body.extend(problem);
    let mut text = serde_json::to_vec(&body).expect("the server's answers serialise");
    text.push(b'\n');
    parts.headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    parts.headers.remove(hyper::header::CONTENT_LENGTH);
    Response::from_parts(parts, Full::new(Bytes::from(text)))
}

/// The bytes of a [`Full`] body.
fn full_bytes(body: Full<Bytes>) -> Bytes {
    use hyper::body::Body as _;
    let mut body = std::pin::pin!(body);
    let waker = std::task::Waker::noop();
    let mut cx = std::task::Context::from_waker(waker);
    match body.as_mut().poll_frame(&mut cx) {
        std::task::Poll::Ready(Some(Ok(frame))) => frame.into_data().unwrap_or_default(),
        _ => Bytes::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(response: Answer) -> Value {
        serde_json::from_slice(&full_bytes(response.into_body())).unwrap()
    }

    #[test]
    fn a_problem_has_the_members_of_rfc_9457_and_is_rewritten_per_dialect() {
        let mut ext = Map::new();
        ext.insert("errors".into(), serde_json::json!([{"record": 0}]));
        let made = || problem_of(INVALID_VALUES, StatusCode::UNPROCESSABLE_ENTITY, "bad", ext.clone());
        let p = made();
        assert_eq!(p.headers()[CONTENT_TYPE], PROBLEM_JSON);
        assert_eq!(
            body(p),
            serde_json::json!({"type": INVALID_VALUES, "title": "Unprocessable Entity", "status": 422, "detail": "bad", "errors": [{"record": 0}]})
        );
        let m = in_dialect(Dialect::Mlflow, made());
        assert_eq!(m.status(), 400);
        assert_eq!(m.headers()[CONTENT_TYPE], "application/json");
        assert_eq!(
            body(m),
            serde_json::json!({"error_code": "BAD_REQUEST", "message": "bad", "errors": [{"record": 0}]})
        );
        let k = in_dialect(Dialect::Kserve, problem(StatusCode::NOT_FOUND, "no model x"));
        assert_eq!(k.status(), 404);
        assert_eq!(body(k), serde_json::json!({"error": "no model x"}));
        // A successful answer is left alone.
        let ok = in_dialect(Dialect::Kserve, json(StatusCode::OK, &serde_json::json!({"a": 1})));
        assert_eq!(body(ok), serde_json::json!({"a": 1}));
    }
}
