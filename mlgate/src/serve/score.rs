//! Scoring a request's records, whatever route and protocol brought them: the compiled plan
//! ([`model::pipeline::scoring::Compiled`]), the same checks, the same metrics, the ids, the
//! receipts, the prediction log and the rolling drift's window. Each route only reads its
//! protocol's shape into [`Records`] and writes its answer from [`Scored`].

// An error here is the answer to give, made once per request and given at once: boxing it
// would buy nothing.
#![allow(clippy::result_large_err)]

use hyper::StatusCode;
use serde::Serialize;
use serde_json::Value;

use super::answer::{problem, problem_of, Answer, INVALID_VALUES};
use super::receipt::{self, Claims};
use super::records::{Broken, Records, Tally, MAX_ID_BYTES, MAX_VALUE_BYTES};
use super::{unix_now, Loaded, Shared};

/// The scores of a request's records, in order.
pub struct Scored {
    /// Each prediction's id: the record's id column, else 128 random bits in hexadecimal.
    pub ids: Vec<String>,
    /// The probability of the positive class.
    pub probabilities: Vec<f64>,
    /// Whether the probability is at or above the artifact's threshold.
    pub decisions: Vec<bool>,
    /// Each prediction's receipt ([`super::receipt`]).
    pub receipts: Vec<String>,
}

/// A prediction as `/v1/predict` (and KServe V1, and MLflow when asked) answers it.
#[derive(Serialize)]
pub struct Prediction<'a> {
    /// Its id.
    pub id: &'a str,
    /// The probability of the positive class.
    pub probability: f64,
    /// 1 at or above the threshold, else 0.
    pub prediction: u8,
    /// Its receipt.
    pub receipt: &'a str,
}

impl Scored {
    /// The predictions as objects.
    pub fn predictions(&self) -> Vec<Prediction<'_>> {
        (0..self.ids.len())
            .map(|i| Prediction {
                id: &self.ids[i],
                probability: self.probabilities[i],
                prediction: u8::from(self.decisions[i]),
                receipt: &self.receipts[i],
            })
            .collect()
    }
}

/// Where a request's records came from, for its errors.
pub enum Origin<'a> {
    /// Records numbered by their index in the request.
    Records,
    /// A CSV body's rows: record `i` starts on line `lines[i]`.
    Csv(&'a [u64]),
}

/// Scores `records` with `loaded`. A record with a broken value (found while reading, or by
/// the columns' rules) is a 422 problem listing them, and nothing is scored. The predictions
/// are logged for feedback by id when `log` (a caller that shows no id logs none).
pub fn score(
    shared: &Shared,
    loaded: &Loaded,
    records: Records,
    origin: Origin,
    log: bool,
) -> std::result::Result<Scored, Answer> {
    let Records { rows, bad_records, mut tally, .. } = records;
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
            line: None,
            column: e.column,
            value: e.value,
            rule: e.rule.name().to_string(),
            detail: e.detail,
        }));
        tally.listed.sort_by_key(|b| b.record);
        tally.listed.truncate(model::data::report::MAX_KEPT_ERRORS);
        if let Origin::Csv(lines) = origin {
            for b in &mut tally.listed {
                b.line = lines.get(b.record as usize).copied();
            }
        }
        // The listed errors are capped; the tally counts every record with a broken value.
        let records = bad_records.max(scored.errors.rows_with_errors);
        return Err(unprocessable(shared, tally, records, matches!(origin, Origin::Csv(_))));
    }
    let artifact = loaded.compiled.artifact();
    let threshold = artifact.threshold.value;
    let id_column = artifact.schema.id().and_then(|c| loaded.index.get(&c.name).copied());
    // Ids the server makes are random: nothing in one says which replica made it or how many
    // came before.
    let ids: Vec<String> = match id_column {
        Some(at) => rows.iter().map(|(_, r)| String::from_utf8_lossy(&r[at]).into_owned()).collect(),
        None => receipt::random_ids(rows.len())
            .map_err(|e| problem(StatusCode::INTERNAL_SERVER_ERROR, format!("cannot draw ids: {e}")))?,
    };
    let probabilities = scored.probabilities;
    let decisions: Vec<bool> = probabilities.iter().map(|&p| p >= threshold).collect();
    let receipts = receipts(shared, loaded, probabilities.iter().copied().zip(decisions.iter().copied()))
        .map_err(|e| problem(StatusCode::INTERNAL_SERVER_ERROR, format!("cannot sign receipts: {e}")))?;
    let version = &loaded.version;
    let positives = decisions.iter().filter(|&&d| d).count() as u64;
    m.scored(version, &probabilities, positives, &scored.unseen_levels);
    let mut evicted = 0;
    {
        let mut live = shared.live.lock().expect("the live lock is never poisoned");
        for (i, (_, record)) in rows.iter().enumerate() {
            if log {
                evicted += live.log(&ids[i], version, probabilities[i], decisions[i]);
            }
            live.remember(loaded, record);
        }
        m.log_size.set(live.waiting() as i64);
        m.log_bytes.set(live.bytes() as i64);
    }
    m.log_evicted.inc_by(evicted);
    Ok(Scored { ids, probabilities, decisions, receipts })
}

/// The 422 problem of a request whose `records` records hold the broken values of `tally`.
pub fn unprocessable(shared: &Shared, tally: Tally, records: u64, csv: bool) -> Answer {
    shared.metrics.invalid_records.inc_by(records);
    let first = tally.listed.first().map(|b| match (csv, b.line) {
        (true, Some(line)) => format!(": line {line} column `{}`: {}", b.column, b.rule),
        _ => format!(": record {} column `{}`: {}", b.record, b.column, b.rule),
    });
    let counts: Vec<Value> = tally
        .counts
        .iter()
        .map(|((column, rule), count)| serde_json::json!({"column": column, "rule": rule, "count": count}))
        .collect();
    let mut extensions = serde_json::Map::new();
    extensions.insert("error_count".into(), tally.total.into());
    extensions.insert("errors".into(), serde_json::to_value(&tally.listed).expect("errors serialise"));
    extensions.insert("counts".into(), counts.into());
    problem_of(
        INVALID_VALUES,
        StatusCode::UNPROCESSABLE_ENTITY,
        format!(
            "{} value(s) in {records} record(s) break the model's schema{}; nothing was scored",
            tally.total,
            first.unwrap_or_default()
        ),
        extensions,
    )
}

/// The receipts of predictions `(probability, decision)` answered by `loaded` now; `Err` when the
/// system gives no random bytes for their nonces.
pub fn receipts(
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

/// A CSV body read into the compiled plan's rows ([`model::pipeline::scoring::Compiled::read_csv`])
/// as records numbered from 0, with the lines they start on; the same length limits as a JSON
/// record's values (an id at most [`MAX_ID_BYTES`], any other value [`MAX_VALUE_BYTES`]).
pub fn csv_records(loaded: &Loaded, rows: model::pipeline::scoring::CsvRows) -> (Records, Vec<u64>) {
    let model::pipeline::scoring::CsvRows { rows, count, errors } = rows;
    // Rows the reader refused whole (a wrong number of fields) are not among `rows`: every data
    // row's line is needed to number the records, so those lines are put back in order.
    let mut lines: Vec<u64> = rows.iter().map(|(line, _)| *line).collect();
    let mut refused: Vec<u64> =
        errors.errors.iter().filter(|e| e.rule == model::data::report::Rule::FieldCount).map(|e| e.line).collect();
    if !refused.is_empty() {
        lines.append(&mut refused);
        lines.sort_unstable();
        lines.dedup();
    }
    let index_of = |line: u64| lines.binary_search(&line).unwrap_or_else(|i| i) as u64;
    let mut tally = Tally { total: errors.error_count, ..Tally::default() };
    for ((column, rule), n) in &errors.counts {
        tally.counts.insert((column.clone(), rule.name().into()), *n);
    }
    let mut bad = std::collections::BTreeSet::new();
    for e in errors.errors {
        let record = index_of(e.line);
        bad.insert(record);
        tally.listed.push(Broken {
            record,
            line: Some(e.line),
            column: e.column,
            value: e.value,
            rule: e.rule.name().into(),
            detail: e.detail,
        });
    }
    let columns = loaded.compiled.columns();
    let id = loaded.compiled.artifact().schema.id().and_then(|c| loaded.index.get(&c.name).copied());
    let mut numbered = Vec::with_capacity(rows.len());
    for (line, record) in rows {
        let index = index_of(line);
        for (at, field) in record.iter().enumerate() {
            let limit = if id == Some(at) { MAX_ID_BYTES } else { MAX_VALUE_BYTES };
            if field.len() > limit {
                bad.insert(index);
                let column = &columns[at];
                tally.push(
                    column,
                    Broken {
                        record: index,
                        line: Some(line),
                        column: column.clone(),
                        value: model::data::report::echo(&String::from_utf8_lossy(field)),
                        rule: "too_long".into(),
                        detail: format!("{} bytes; a value of `{column}` has at most {limit}", field.len()),
                    },
                );
            }
        }
        numbered.push((index, record));
    }
    let bad_records = (bad.len() as u64).max(errors.rows_with_errors);
    (Records { rows: numbered, count, bad_records, tally }, lines)
}
