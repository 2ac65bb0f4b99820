//! What every route that takes a body does before its own work: the body read within its
//! limits (size, time, the bodies' shared byte budget), a scoring permit waited for in line,
//! and the refusals of each (413, 408, 503 with `Retry-After`).

use std::time::Duration;

use http_body_util::{BodyExt, Limited};
use hyper::body::Bytes;
use hyper::header::{HeaderValue, RETRY_AFTER};
use hyper::{Request, StatusCode};

use std::sync::Arc;

use super::answer::{problem, Answer};
use super::rollout::Serving;
use super::Shared;

/// A request's body: a socket's ([`hyper::body::Incoming`]), or any other (a test's
/// [`http_body_util::Full`]), so that a route can be called without a socket.
pub trait RequestBody: hyper::body::Body<Data = Bytes, Error: Into<Box<dyn std::error::Error + Send + Sync>>> {}

impl<B: hyper::body::Body<Data = Bytes, Error: Into<Box<dyn std::error::Error + Send + Sync>>>> RequestBody for B {}

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
pub(super) async fn body<B: RequestBody>(shared: &Shared, request: Request<B>) -> std::result::Result<Body, Answer> {
    let limit = shared.read_timeout;
    let deadline = tokio::time::Instant::now() + limit;
    let stream = Limited::new(request.into_body(), shared.max_body);
    let mut stream = std::pin::pin!(stream);
    // The frames as they came (a body often comes in one: it is kept as it is, without a copy),
    // joined once at the end, into a buffer of the exact size.
    let mut frames: Vec<Bytes> = Vec::new();
    let mut length = 0;
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
        let more = units(length + data.len()) - units(length);
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
        length += data.len();
        frames.push(data);
    }
    let bytes = match frames.len() {
        0 => Bytes::new(),
        1 => frames.pop().unwrap_or_default(),
        _ => {
            let mut joined = Vec::with_capacity(length);
            for frame in &frames {
                joined.extend_from_slice(frame);
            }
            Bytes::from(joined)
        }
    };
    Ok(Body { bytes, _budget: budget })
}

/// Reads a body within the limits and parses it as `T`; `shape` says in the 400 what was
/// expected.
pub(super) async fn read_json<T: serde::de::DeserializeOwned, B: RequestBody>(
    shared: &Shared,
    request: Request<B>,
    shape: &str,
) -> std::result::Result<T, Answer> {
    let body = body(shared, request).await?;
    serde_json::from_slice(&body.bytes)
        .map_err(|e| problem(StatusCode::BAD_REQUEST, format!("the body is not {shape}: {e}")))
}

/// The largest body scored on the I/O thread that read it. The trip through the blocking pool
/// (a thread woken, the work at a lowered priority beside the client, the answer handed back)
/// cost more than the work of a hundred records: 3,156–3,200 requests/s of 100 records with a
/// limit of 4 KiB, 4,144–4,181 with this one (p99 5.4 → 2.9 ms; 8 connections, A/B on the same
/// machine). What else bounds a body scored inline: [`inline`].
pub(super) const INLINE_BYTES: usize = 65536;

/// The most values a body scored inline may hold, as its commas and openers count them (a
/// hundred records of the Online Shoppers data's 17 columns hold about 1,800).
pub(super) const INLINE_VALUES: usize = 2048;

/// The most records a body scored inline may hold, as its openers count them.
pub(super) const INLINE_RECORDS: usize = 256;

/// The header of a body with binary tensor data (the Open Inference Protocol's extension,
/// read in [`super::kserve`]): the length of its JSON part.
pub(super) const BINARY_HEADER_LENGTH: &str = "inference-header-content-length";

/// The largest body with binary tensor data (the Open Inference Protocol's extension) scored
/// inline: its values are bytes that no separator counts.
pub(super) const INLINE_BINARY_BYTES: usize = 4096;

/// Whether a body is parsed and scored on the I/O thread that read it; else on the blocking
/// pool. Bytes alone do not bound the work (a row of bare numbers, or an empty one, is a few
/// bytes); its text does, in any shape a protocol gives records in: a record opens with a `{`,
/// a `[` or a line (CSV), and values are separated by commas ([`INLINE_RECORDS`],
/// [`INLINE_VALUES`]; commas and openers inside strings count too, which can only send a body
/// to the pool). Counted in one pass the compiler vectorises: following the JSON's strings and
/// arrays byte by byte cost a seventh of a 100-record request's time, counting each byte into a
/// `usize` a tenth. The costliest body within the bounds — one column of 2,000 values, each
/// record missing the other columns — takes about as long as 4 KiB of it did when bytes alone
/// decided (the BENCHMARKS' serving narrative); each scoring holds the other connections of its
/// thread, the probes' too, for at most that long.
pub(super) fn inline(bytes: &[u8], binary: bool) -> bool {
    if binary {
        return bytes.len() <= INLINE_BINARY_BYTES;
    }
    if bytes.len() > INLINE_BYTES {
        return false;
    }
    let (mut openers, mut lines, mut commas) = (0usize, 0usize, 0usize);
    // Counted in bytes, 255 at a time, so that each comparison adds to one of 16 or 32 lanes.
    for chunk in bytes.chunks(255) {
        let (mut o, mut l, mut c) = (0u8, 0u8, 0u8);
        for &b in chunk {
            o += u8::from(b == b'{') + u8::from(b == b'[');
            l += u8::from(b == b'\n');
            c += u8::from(b == b',');
        }
        openers += usize::from(o);
        lines += usize::from(l);
        commas += usize::from(c);
    }
    openers + lines <= INLINE_RECORDS && openers + commas <= INLINE_VALUES
}

/// How long a request waits, in line, for one of the --max-scoring permits before it is refused:
/// a burst of a few more clients than permits is served in turn (a balancer's retry would cost
/// more); a server kept busy past this says so.
const SCORING_WAIT: Duration = Duration::from_secs(1);

/// A scoring permit, waited for in line at most [`SCORING_WAIT`]; `None`: refuse with [`busy`].
pub(super) async fn scoring_permit(shared: &Shared) -> Option<tokio::sync::OwnedSemaphorePermit> {
    let permit = tokio::time::timeout(SCORING_WAIT, shared.scoring.clone().acquire_owned()).await;
    permit.ok().and_then(Result::ok)
}

/// 503 with `Retry-After` when --max-scoring requests have been scored, or the bodies in flight
/// have held their whole budget, for longer than [`SCORING_WAIT`].
pub(super) fn busy(shared: &Shared) -> Answer {
    shared.metrics.busy_refusals.inc();
    let mut response =
        problem(StatusCode::SERVICE_UNAVAILABLE, "the server is scoring as many requests as it may; retry shortly");
    response.headers_mut().insert(RETRY_AFTER, HeaderValue::from_static("1"));
    response
}

/// 413 for a request of more than `--max-records` records (or feedback items).
pub(super) fn too_many(shared: &Shared, count: usize, what: &str) -> Option<Answer> {
    (count > shared.max_records).then(|| {
        problem(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("{count} {what}; at most {} a request (--max-records)", shared.max_records),
        )
    })
}

/// The work of a scoring route, on the blocking pool: the model the request started with and
/// its body.
pub(super) type Job = Box<dyn FnOnce(&Shared, &Serving, &[u8]) -> Answer + Send>;

/// Reads the body, waits for a scoring permit and runs `job`: where the body was read when it is
/// small ([`inline`]), else on the blocking pool. The model a
/// request starts with is the one it finishes with, whatever swaps meanwhile.
pub(super) async fn scoring<B: RequestBody>(shared: &Arc<Shared>, request: Request<B>, job: Job) -> Answer {
    let Some(loaded) = shared.current() else {
        return problem(StatusCode::SERVICE_UNAVAILABLE, "no model loaded yet");
    };
    let binary = request.headers().contains_key(BINARY_HEADER_LENGTH);
    // The body first (its bytes bounded by the bodies' budget), then a scoring permit: a client
    // slow to send holds no permit, and the permits bound the scoring in flight.
    let body = match body(shared, request).await {
        Ok(body) => body,
        Err(answer) => return answer,
    };
    let Some(permit) = scoring_permit(shared).await else {
        return busy(shared);
    };
    // A small body ([`inline`]) is parsed and scored where it was read: a few milliseconds of
    // work at most, and for most such bodies less than handing it to the blocking pool costs.
    if inline(&body.bytes, binary) {
        let _permit = permit;
        let job = std::panic::AssertUnwindSafe(|| job(shared, &loaded, &body.bytes));
        let Ok(mut answer) = std::panic::catch_unwind(job) else {
            return problem(StatusCode::INTERNAL_SERVER_ERROR, "scoring stopped unexpectedly");
        };
        if let Ok(v) = HeaderValue::from_str(&loaded.version) {
            answer.headers_mut().insert("x-model-version", v);
        }
        return answer;
    }
    // Parsing and scoring more is CPU work: on the blocking pool, at a lower priority, so that
    // the I/O threads stay free for other connections (and the probes).
    let shared = shared.clone();
    let scored = tokio::task::spawn_blocking(move || {
        super::limits::lower_scoring_priority();
        let _permit = permit;
        let mut answer = job(&shared, &loaded, &body.bytes);
        if let Ok(v) = HeaderValue::from_str(&loaded.version) {
            answer.headers_mut().insert("x-model-version", v);
        }
        answer
    })
    .await;
    scored.unwrap_or_else(|_| problem(StatusCode::INTERNAL_SERVER_ERROR, "scoring stopped unexpectedly"))
}

/// The media type of a request, lowercased, without its parameters (`""` when none is given).
pub(super) fn media_type<B>(request: &Request<B>) -> String {
    let value = request.headers().get(hyper::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    value.split(';').next().unwrap_or("").trim().to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A JSON body of `n` records of `width` numbered columns, as `/v1/predict` takes it.
    fn records(n: usize, width: usize) -> Vec<u8> {
        let record: Vec<String> = (0..width).map(|c| format!("\"column_{c}\":{c}")).collect();
        let record = format!("{{{}}}", record.join(","));
        format!("{{\"records\":[{}]}}", vec![record; n].join(",")).into_bytes()
    }

    #[test]
    fn a_hundred_records_are_scored_inline_and_many_tiny_ones_are_not() {
        // The benchmark's body: a hundred records of the Online Shoppers data's 17 columns.
        assert!(inline(&records(100, 17), false));
        assert!(inline(&records(1, 17), false));
        assert!(!inline(&records(300, 17), false), "more records than INLINE_RECORDS");
        assert!(!inline(&records(120, 20), false), "more values than INLINE_VALUES");
        // A few bytes a record: rows of one value, empty rows (each refused), a column's values
        // (the model's other columns missing).
        let rows = format!("{{\"inputs\":[{}]}}", vec!["[1]"; 1000].join(","));
        assert!(rows.len() < INLINE_BYTES);
        assert!(!inline(rows.as_bytes(), false));
        let empty = format!("[{}]", vec!["[]"; 10_000].join(","));
        assert!(empty.len() < INLINE_BYTES);
        assert!(!inline(empty.as_bytes(), false));
        let column = |n: usize| format!("{{\"column_0\":[{}]}}", vec!["1"; n].join(","));
        assert!(inline(column(2000).as_bytes(), false), "2,000 values");
        assert!(!inline(column(3000).as_bytes(), false), "3,000 values");
        // CSV: a line a record.
        let csv = format!("a,b\n{}", "1,2\n".repeat(1000));
        assert!(!inline(csv.as_bytes(), false));
        assert!(inline(b"a,b\n1,2\n", false));
        // Bytes beyond the bound, whatever they hold; binary tensor data by its bytes alone.
        assert!(!inline(&vec![b' '; INLINE_BYTES + 1], false));
        assert!(inline(&[0u8; INLINE_BINARY_BYTES], true));
        assert!(!inline(&[0u8; INLINE_BINARY_BYTES + 1], true));
    }
}
