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

use std::collections::BTreeMap;

use model::pipeline::scoring::RecordScores;

use super::answer::{problem, problem_of, Answer, INVALID_VALUES};
use super::live;
use super::receipt::{self, ClaimsOf, Shadow};
use super::records::{Broken, Fields, Records, Tally, MAX_ID_BYTES, MAX_VALUE_BYTES};
use super::rollout::{to_candidate, Candidate, Mode, Role, Serving};
use super::{unix_now, Loaded, Shared};

/// The scores of a request's records, in order.
pub struct Scored {
    /// Each prediction's id: the record's id column, else 128 random bits in hexadecimal.
    pub ids: Vec<String>,
    /// The probability of the positive class.
    pub probabilities: Vec<f64>,
    /// Whether the probability is at or above the answering version's threshold.
    pub decisions: Vec<bool>,
    /// Each prediction's receipt ([`super::receipt`]).
    pub receipts: Vec<String>,
    /// The versions that answered, and the role of each: the baseline's first, then a canary's.
    pub versions: Vec<(String, Role)>,
    /// For each prediction, the index in `versions` of the version that answered it.
    pub answered_by: Vec<u8>,
    /// In shadow mode, the shadow's version and, for each prediction, its probability and
    /// decision (`None` where it failed to score the record).
    pub shadow: Option<(String, ShadowScores)>,
}

/// A shadow's probability and decision of each record (`None` where it failed to score it).
pub type ShadowScores = Vec<Option<(f64, bool)>>;

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
    /// The version that answered.
    pub version: &'a str,
    /// Its role: `baseline`, or `canary` during a canary rollout.
    pub role: &'static str,
    /// In shadow mode, the shadow's version.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shadow_version: Option<&'a str>,
    /// In shadow mode, the shadow's probability of the positive class.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shadow_probability: Option<f64>,
}

impl Scored {
    /// The version that answered prediction `i`, and its role.
    pub fn version(&self, i: usize) -> (&str, Role) {
        let (version, role) = &self.versions[usize::from(self.answered_by[i])];
        (version, *role)
    }

    /// The shadow's version and probability of prediction `i`, in shadow mode.
    pub fn shadow_of(&self, i: usize) -> Option<(&str, f64)> {
        let (version, scores) = self.shadow.as_ref()?;
        scores[i].map(|(p, _)| (version.as_str(), p))
    }

    /// The predictions as objects.
    pub fn predictions(&self) -> Vec<Prediction<'_>> {
        (0..self.ids.len())
            .map(|i| {
                let (version, role) = self.version(i);
                let shadow = self.shadow_of(i);
                Prediction {
                    id: &self.ids[i],
                    probability: self.probabilities[i],
                    prediction: u8::from(self.decisions[i]),
                    receipt: &self.receipts[i],
                    version,
                    role: role.name(),
                    shadow_version: shadow.map(|(v, _)| v),
                    shadow_probability: shadow.map(|(_, p)| p),
                }
            })
            .collect()
    }

    /// True when the answer names more than its top-level version could say: a rollout is
    /// followed (a canary answered some, or a shadow scored them).
    pub fn in_rollout(&self) -> bool {
        self.versions.len() > 1 || self.shadow.is_some()
    }
}

/// Where a request's records came from, for its errors.
pub enum Origin<'a> {
    /// Records numbered by their index in the request.
    Records,
    /// A CSV body's rows: record `i` starts on line `lines[i]`.
    Csv(&'a [u64]),
}

/// Scores `rows` with `loaded` in `role`, timed.
fn timed(shared: &Shared, loaded: &Loaded, role: Role, rows: &[(u64, Fields)]) -> RecordScores {
    let start = std::time::Instant::now();
    let scores = loaded.compiled.score("request", rows);
    loaded.series(&shared.metrics, role).took(start.elapsed().as_secs_f64());
    scores
}

/// Records a candidate could not score: those with a broken value only it refused, or a
/// probability that is not finite.
fn failures(scores: &RecordScores) -> u64 {
    if scores.errors.error_count > 0 {
        scores.errors.rows_with_errors.max(1)
    } else {
        scores.probabilities.iter().filter(|p| !p.is_finite()).count() as u64
    }
}

/// Scores `records` with what is served: the baseline, and a rollout's candidate (canary: the
/// records whose id falls in its share, [`super::rollout::to_candidate`]; shadow: every record,
/// beside the baseline, whose answer is given). A record with a broken value (found while
/// reading, or by the baseline's rules) is a 422 problem listing them, and nothing is scored; a
/// record the candidate fails to score is counted as its failure and answered by the baseline.
/// The predictions are logged for feedback by id when `log` (a caller that shows no id logs none).
pub fn score(
    shared: &Shared,
    serving: &Serving,
    records: Records,
    origin: Origin,
    log: bool,
) -> std::result::Result<Scored, Answer> {
    let Records { rows, bad_records, tally, .. } = records;
    let baseline = &serving.baseline;
    if tally.total > 0 {
        let scored = timed(shared, baseline, Role::Baseline, &rows);
        return Err(invalid(shared, scored, tally, bad_records, origin));
    }
    let artifact = baseline.compiled.artifact();
    let id_column = artifact.schema.id().and_then(|c| baseline.index.get(&c.name).copied());
    // Ids the server makes are random: nothing in one says which replica made it or how many
    // came before. They are drawn before scoring: a canary routes by them.
    let ids: Vec<String> = match id_column {
        Some(at) => rows.iter().map(|(_, r)| r.text(at).into_owned()).collect(),
        None => receipt::random_ids(rows.len())
            .map_err(|e| problem(StatusCode::INTERNAL_SERVER_ERROR, format!("cannot draw ids: {e}")))?,
    };
    let canary = serving.candidate.as_ref().filter(|c| c.mode == Mode::Canary && c.weight > 0);
    let mut routed: Vec<bool> = match canary {
        Some(c) => ids.iter().map(|id| to_candidate(&c.loaded.version, c.weight, id)).collect(),
        None => vec![false; rows.len()],
    };
    let m = &shared.metrics;
    let (answers, canary_failed) = match canary.filter(|_| routed.iter().any(|&r| r)) {
        Some(c) => split(shared, baseline, c, &rows, &routed),
        None => (None, None),
    };
    let (probabilities, unseen) = match answers {
        Some(answers) => answers,
        // No canary, or one that failed (its records go to the baseline), or a broken value:
        // the baseline scores every record, and finds every broken value.
        None => {
            routed.iter_mut().for_each(|r| *r = false);
            let scored = timed(shared, baseline, Role::Baseline, &rows);
            if scored.errors.error_count > 0 {
                return Err(invalid(shared, scored, tally, bad_records, origin));
            }
            if let Some((version, failed)) = canary_failed {
                m.scoring_failed(version, Role::Canary, failed);
            }
            (scored.probabilities, scored.unseen_levels)
        }
    };
    let shadow = serving.candidate.as_ref().filter(|c| c.mode == Mode::Shadow).map(|c| (c, shadow(shared, c, &rows)));
    // The versions that answered, the baseline's first; each name once a request, shared by
    // its predictions.
    let mut answering: Vec<(&Loaded, Role)> = vec![(baseline, Role::Baseline)];
    let threshold = artifact.threshold.value;
    let mut candidate_threshold = threshold;
    if let Some(c) = canary.filter(|_| routed.iter().any(|&r| r)) {
        answering.push((&c.loaded, Role::Canary));
        candidate_threshold = c.loaded.compiled.artifact().threshold.value;
    }
    let versions: Vec<(String, Role)> = answering.iter().map(|(l, role)| (l.version.clone(), *role)).collect();
    let names: Vec<std::sync::Arc<str>> =
        answering.iter().map(|(l, _)| std::sync::Arc::from(l.version.as_str())).collect();
    let answered_by: Vec<u8> = routed.iter().map(|&r| u8::from(r)).collect();
    let decisions: Vec<bool> = probabilities
        .iter()
        .zip(&routed)
        .map(|(&p, &r)| p >= if r { candidate_threshold } else { threshold })
        .collect();
    let answered: Vec<live::Answered> = (0..probabilities.len())
        .map(|i| {
            let at = usize::from(answered_by[i]);
            live::Answered {
                version: names[at].clone(),
                role: answering[at].1,
                probability: probabilities[i],
                decision: decisions[i],
                shadow: shadow.as_ref().and_then(|(c, scores)| {
                    scores[i].map(|(probability, decision)| Shadow {
                        version: c.loaded.version.clone(),
                        probability,
                        decision,
                    })
                }),
            }
        })
        .collect();
    let receipts = receipts(shared, &answered)
        .map_err(|e| problem(StatusCode::INTERNAL_SERVER_ERROR, format!("cannot sign receipts: {e}")))?;
    m.unseen(&unseen);
    for (at, &(loaded, role)) in answering.iter().enumerate() {
        let mine: Vec<f64> =
            (0..probabilities.len()).filter(|&i| usize::from(answered_by[i]) == at).map(|i| probabilities[i]).collect();
        let positives =
            (0..probabilities.len()).filter(|&i| usize::from(answered_by[i]) == at && decisions[i]).count() as u64;
        loaded.series(m, role).scored(&mine, positives);
    }
    if let Some((c, scores)) = &shadow {
        let given: Vec<f64> = scores.iter().flatten().map(|(p, _)| *p).collect();
        let positives = scores.iter().flatten().filter(|(_, d)| *d).count() as u64;
        c.loaded.series(m, Role::Shadow).scored(&given, positives);
    }
    let mut evicted = 0;
    {
        let mut live = shared.live.lock().expect("the live lock is never poisoned");
        for (i, ((_, record), answered)) in rows.iter().zip(&answered).enumerate() {
            if log {
                evicted += live.log(&ids[i], answered.clone());
            }
            live.remember(baseline, record);
        }
        m.log_size.set(live.waiting() as i64);
        m.log_bytes.set(live.bytes() as i64);
    }
    m.log_evicted.inc_by(evicted);
    if let Some(events) = &shared.events {
        events.predictions(shared, baseline, &rows, &ids, &answered, &receipts);
    }
    let shadow = shadow.map(|(c, scores)| (c.loaded.version.clone(), scores));
    Ok(Scored { ids, probabilities, decisions, receipts, versions, answered_by, shadow })
}

/// The probabilities of a request's records, in order, and the levels unseen in training by column.
type Answers = (Vec<f64>, BTreeMap<String, u64>);

/// The probabilities (and unseen levels) of a canary's request: the records `routed` to `canary`
/// scored by it, the others by `baseline`; `None` when either refused a record or the canary gave
/// a probability that is not finite — then the baseline scores them all — with the canary's
/// failures, counted by the caller once the baseline has scored every record (a broken value both
/// refuse is the request's, not the canary's).
fn split<'a>(
    shared: &Shared,
    baseline: &Loaded,
    canary: &'a Candidate,
    rows: &[(u64, Fields)],
    routed: &[bool],
) -> (Option<Answers>, Option<(&'a str, u64)>) {
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    for (row, &to_candidate) in rows.iter().zip(routed) {
        if to_candidate {
            theirs.push((row.0, canary.record(&row.1)));
        } else {
            ours.push(row.clone());
        }
    }
    let b = timed(shared, baseline, Role::Baseline, &ours);
    let t = timed(shared, &canary.loaded, Role::Canary, &theirs);
    let failed = failures(&t);
    let failures = (failed > 0).then_some((canary.loaded.version.as_str(), failed));
    if b.errors.error_count > 0 || failed > 0 {
        return (None, failures);
    }
    let (mut from_b, mut from_t) = (b.probabilities.into_iter(), t.probabilities.into_iter());
    let probabilities =
        routed.iter().map(|&r| if r { from_t.next() } else { from_b.next() }.unwrap_or(f64::NAN)).collect();
    let mut unseen = b.unseen_levels;
    for (column, n) in t.unseen_levels {
        *unseen.entry(column).or_default() += n;
    }
    (Some((probabilities, unseen)), None)
}

/// The shadow's probability and decision of each record (`None` where it failed to score it,
/// counted as its failure).
fn shadow(shared: &Shared, candidate: &Candidate, rows: &[(u64, Fields)]) -> ShadowScores {
    let theirs: Vec<(u64, Fields)> = rows.iter().map(|(n, r)| (*n, candidate.record(r))).collect();
    let scores = timed(shared, &candidate.loaded, Role::Shadow, &theirs);
    let failed = failures(&scores);
    if failed > 0 {
        shared.metrics.scoring_failed(&candidate.loaded.version, Role::Shadow, failed);
    }
    if scores.errors.error_count > 0 {
        return vec![None; rows.len()];
    }
    let threshold = candidate.loaded.compiled.artifact().threshold.value;
    scores.probabilities.iter().map(|&p| p.is_finite().then_some((p, p >= threshold))).collect()
}

/// The 422 problem of a request whose records hold broken values: those found while reading
/// (`tally`) and those the baseline's rules found (`scored`).
fn invalid(shared: &Shared, scored: RecordScores, mut tally: Tally, bad_records: u64, origin: Origin) -> Answer {
    let m = &shared.metrics;
    for ((column, rule), count) in &scored.errors.counts {
        m.invalid(column, rule.name(), *count);
    }
    for ((column, rule), count) in &tally.counts {
        m.invalid(column, rule, *count);
    }
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
    unprocessable(shared, tally, records, matches!(origin, Origin::Csv(_)))
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

/// The receipts of the predictions `answered` now; `Err` when the system gives no random bytes
/// for their nonces.
pub fn receipts(shared: &Shared, answered: &[live::Answered]) -> std::io::Result<Vec<String>> {
    let nonces = receipt::random_nonces(answered.len())?;
    let (model, time) = (shared.model_name(), unix_now());
    let mut payload = Vec::with_capacity(128);
    Ok(answered
        .iter()
        .zip(nonces)
        .map(|(a, nonce)| {
            shared.receipts.sign_with(
                ClaimsOf {
                    model,
                    version: &a.version,
                    probability: a.probability,
                    decision: a.decision,
                    time,
                    nonce,
                    role: a.role,
                    shadow: a.shadow.as_ref(),
                },
                &mut payload,
            )
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
        numbered.push((index, Fields::Csv(record)));
    }
    let bad_records = (bad.len() as u64).max(errors.rows_with_errors);
    (Records { rows: numbered, count, bad_records, tally }, lines)
}
