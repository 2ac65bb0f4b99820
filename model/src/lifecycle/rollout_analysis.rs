//! The analysis of an open rollout, as Argo Rollouts runs one between the steps of a canary, but
//! against the baseline rather than fixed thresholds: over the window since the current step
//! started, the candidate's failure rate and scoring latency as ratios of the baseline's, and its
//! accuracy on joined feedback compared with the gate's statistics (paired on the same requests
//! in shadow mode, unpaired in canary mode); then the decision — wait, step, promote or abort.
//! This file writes the queries, reads their answers and decides; asking Prometheus and acting on
//! the registry are the caller's.
//!
//! Every figure adds up over every replica (`sum(increase(…))`), never one replica's figure.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::error::{Error, ParamError, Result};
use crate::eval::compare::{paired_from_counts, unpaired_rates, PairCounts, PairedComparison, RateDifference};
use crate::eval::metrics::Metric;
use crate::lifecycle::live::{promql_string, Sample};
use crate::lifecycle::rollout::{Rollout, RolloutMode};
use crate::pipeline::rollout::RolloutConfig;

/// Bootstrap resamples of a quality comparison.
pub const RESAMPLES: usize = 2000;
/// The bootstrap's seed: the same counts always give the same interval.
pub const SEED: u64 = 0x0072_6f6c_6c6f_7574; // "rollout" in ASCII
/// Failure rates below this share of records count as this share, so that no failure on either
/// side (0/0) is a ratio of 1 and a single failure among few records aborts nothing.
pub const FAILURE_RATE_FLOOR: f64 = 0.01;
/// The quantile of `mlgate_scoring_duration_seconds` compared.
pub const LATENCY_QUANTILE: f64 = 0.95;

/// What the analysis judges: the open rollout of a model, at its current step.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Subject {
    /// The model's name (`model` label).
    pub model: String,
    /// The version being rolled out.
    pub candidate: String,
    /// The version it would replace (production).
    pub baseline: String,
    /// Canary (a share of the traffic) or shadow (every request, the baseline answering).
    pub mode: RolloutMode,
    /// Index of the current step.
    pub step: usize,
    /// Steps in all.
    pub steps: usize,
    /// The current canary weight in percent (0 in shadow).
    pub weight: u32,
    /// The current step's pause, in seconds.
    pub pause_seconds: u64,
    /// Seconds since the current step started: the window of every query.
    pub elapsed_seconds: u64,
}

impl Subject {
    /// The open `rollout` of `model`, `elapsed_seconds` after its current step started.
    pub fn of(model: &str, rollout: &Rollout, elapsed_seconds: u64) -> Subject {
        Subject {
            model: model.to_string(),
            candidate: rollout.candidate.clone(),
            baseline: rollout.baseline.clone(),
            mode: rollout.mode,
            step: rollout.step,
            steps: rollout.steps.len(),
            weight: rollout.weight,
            pause_seconds: rollout.current().pause_seconds,
            elapsed_seconds,
        }
    }
}

/// The `[rollout]` settings the analysis applies.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Criteria {
    /// Joined predictions each side needs (and records each side must have scored) before it is
    /// judged.
    pub min_feedback: u64,
    /// Confidence of the interval of candidate − baseline.
    pub confidence: f64,
    /// The candidate's failure rate over the baseline's above this fails the step.
    pub max_error_ratio: f64,
    /// The candidate's p95 scoring latency over the baseline's above this fails the step.
    pub max_latency_ratio: f64,
    /// p95 scoring latencies below this many seconds count as this many, so that two fast
    /// versions compare as equals whatever a loaded host's scheduling adds.
    pub latency_floor_seconds: f64,
}

impl Criteria {
    /// The analysis's settings from the `[rollout]` section. Only accuracy can be compared on
    /// live feedback: the pair counts say which version was right, not by how much.
    pub fn of(config: &RolloutConfig) -> Result<Criteria> {
        if config.metric != Metric::Accuracy {
            return Err(Error::Param(ParamError::invalid(
                "rollout.metric",
                format!(
                    "{}: a rollout compares accuracy, the one metric both the pair counts of a shadow and the outcomes of a canary give",
                    config.metric
                ),
            )));
        }
        let criteria = Criteria {
            min_feedback: config.min_feedback,
            confidence: config.confidence,
            max_error_ratio: config.max_error_ratio,
            max_latency_ratio: config.max_latency_ratio,
            latency_floor_seconds: config.latency_floor_seconds,
        };
        criteria.check()?;
        Ok(criteria)
    }

    /// Checks the settings: a confidence in (0, 1), ratios at least 1.
    pub fn check(&self) -> Result<()> {
        if !(self.confidence > 0.0 && self.confidence < 1.0) {
            return Err(Error::Param(ParamError::out_of_range("rollout.confidence", self.confidence, "in (0, 1)")));
        }
        for (key, v) in
            [("rollout.max_error_ratio", self.max_error_ratio), ("rollout.max_latency_ratio", self.max_latency_ratio)]
        {
            if !(v.is_finite() && v >= 1.0) {
                return Err(Error::Param(ParamError::out_of_range(key, v, "a finite number at least 1")));
            }
        }
        if !(self.latency_floor_seconds > 0.0 && self.latency_floor_seconds <= 60.0) {
            return Err(Error::Param(ParamError::out_of_range(
                "rollout.latency_floor_seconds",
                self.latency_floor_seconds,
                "in (0, 60] seconds",
            )));
        }
        Ok(())
    }
}

/// One side of the comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    /// The version rolled out.
    Candidate,
    /// Production.
    Baseline,
}

impl Side {
    /// Its name in reports.
    pub fn name(self) -> &'static str {
        match self {
            Side::Candidate => "candidate",
            Side::Baseline => "baseline",
        }
    }
}

/// A figure measured per side.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Figure {
    /// Records scored (`mlgate_records_scored_total`).
    Records,
    /// Records the version failed to score (`mlgate_scoring_failures_total`).
    Failures,
    /// The p95 of the time to score a batch (`mlgate_scoring_duration_seconds`).
    LatencyP95,
    /// Joined feedback by outcome (`mlgate_feedback_outcomes_total`; canary mode).
    Outcomes,
}

/// A query of the analysis.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Query {
    /// A figure of one side.
    Of(Side, Figure),
    /// The pair counts of shadow mode (`mlgate_shadow_pairs_total`).
    Pairs,
    /// The replicas following the rollout (`mlgate_rollout_info`), by weight.
    Replicas,
}

impl Query {
    /// Its name in reports: `candidate records`, `pairs`.
    pub fn name(self) -> String {
        match self {
            Query::Of(side, figure) => {
                let f = match figure {
                    Figure::Records => "records",
                    Figure::Failures => "failures",
                    Figure::LatencyP95 => "latency p95",
                    Figure::Outcomes => "outcomes",
                };
                format!("{} {f}", side.name())
            }
            Query::Pairs => "pairs".into(),
            Query::Replicas => "replicas".into(),
        }
    }
}

/// A query as the report lists it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NamedQuery {
    /// What it measures.
    pub name: String,
    /// The PromQL.
    pub promql: String,
}

impl Subject {
    /// The version of a side.
    pub fn version(&self, side: Side) -> &str {
        match side {
            Side::Candidate => &self.candidate,
            Side::Baseline => &self.baseline,
        }
    }

    /// The `role` label of a side's series: the baseline's `baseline`, the candidate's `canary`
    /// or `shadow` by the mode.
    pub fn role(&self, side: Side) -> &'static str {
        match (side, self.mode) {
            (Side::Baseline, _) => "baseline",
            (Side::Candidate, RolloutMode::Canary) => "canary",
            (Side::Candidate, RolloutMode::Shadow) => "shadow",
        }
    }

    /// The range of every query: the seconds since the step started (at least one).
    pub fn window(&self) -> String {
        format!("{}s", self.elapsed_seconds.max(1))
    }

    /// The queries to ask, each an instant query whose every answer is a sum over replicas.
    pub fn queries(&self) -> Vec<(Query, String)> {
        let model = promql_string(&self.model);
        let window = self.window();
        let mut asked = Vec::new();
        for side in [Side::Candidate, Side::Baseline] {
            let sel = format!(
                r#"model="{model}",version="{}",role="{}""#,
                promql_string(self.version(side)),
                self.role(side)
            );
            let increase = |name: &str| format!("increase({name}{{{sel}}}[{window}])");
            asked.push((Query::Of(side, Figure::Records), format!("sum({})", increase("mlgate_records_scored_total"))));
            asked.push((
                Query::Of(side, Figure::Failures),
                format!("sum({})", increase("mlgate_scoring_failures_total")),
            ));
            asked.push((
                Query::Of(side, Figure::LatencyP95),
                format!(
                    "histogram_quantile({LATENCY_QUANTILE}, sum by (le) ({}))",
                    increase("mlgate_scoring_duration_seconds_bucket")
                ),
            ));
            if self.mode == RolloutMode::Canary {
                asked.push((
                    Query::Of(side, Figure::Outcomes),
                    format!("sum by (outcome) ({})", increase("mlgate_feedback_outcomes_total")),
                ));
            }
        }
        let (baseline, candidate) = (promql_string(&self.baseline), promql_string(&self.candidate));
        if self.mode == RolloutMode::Shadow {
            asked.push((
                Query::Pairs,
                format!(
                    r#"sum by (baseline_correct, candidate_correct) (increase(mlgate_shadow_pairs_total{{model="{model}",baseline="{baseline}",candidate="{candidate}"}}[{window}]))"#
                ),
            ));
        }
        let mode = self.mode.name();
        asked.push((
            Query::Replicas,
            format!(
                r#"mlgate_rollout_info{{model="{model}",baseline="{baseline}",candidate="{candidate}",mode="{mode}"}}"#
            ),
        ));
        asked
    }
}

/// One side's figures over the window, added up over every replica.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SideFigures {
    /// The version.
    pub version: String,
    /// Its `role` label.
    pub role: String,
    /// Records scored.
    pub records: u64,
    /// Records it failed to score.
    pub failures: u64,
    /// failures / (records + failures), when it was asked to score any.
    pub failure_rate: Option<f64>,
    /// The p95 of the time to score a batch, in seconds, when it scored any.
    pub latency_p95_seconds: Option<f64>,
    /// Predictions joined with feedback.
    pub joined: u64,
    /// Of which right.
    pub right: u64,
    /// right / joined, when any joined.
    pub accuracy: Option<f64>,
}

/// How a check ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Judged and passed.
    Passed,
    /// Judged and failed: the rollout is aborted.
    Failed,
    /// Not judged yet (too few records or joined predictions, or no figure).
    NotJudged,
}

impl Verdict {
    /// Its name in reports.
    pub fn name(self) -> &'static str {
        match self {
            Verdict::Passed => "passed",
            Verdict::Failed => "failed",
            Verdict::NotJudged => "not judged",
        }
    }
}

/// A ratio check: the candidate's figure over the baseline's, each floored.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RatioCheck {
    /// `error_ratio` or `latency_ratio`.
    pub name: String,
    /// The candidate's figure.
    pub candidate: Option<f64>,
    /// The baseline's figure.
    pub baseline: Option<f64>,
    /// Figures below it count as it.
    pub floor: f64,
    /// max(candidate, floor) / max(baseline, floor), when judged.
    pub ratio: Option<f64>,
    /// The largest ratio that passes.
    pub max: f64,
    /// How it ended.
    pub verdict: Verdict,
    /// The sentence the report shows.
    pub note: String,
}

/// The quality comparison on joined feedback.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QualityCheck {
    /// The metric compared.
    pub metric: String,
    /// Joined predictions each side needs.
    pub min_feedback: u64,
    /// Shadow mode: the paired comparison on the same requests.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub paired: Option<PairedComparison>,
    /// Canary mode: the unpaired comparison of the two samples.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unpaired: Option<RateDifference>,
    /// How it ended: failed on a significant drop (the interval of candidate − baseline entirely
    /// below zero).
    pub verdict: Verdict,
    /// The sentence the report shows.
    pub note: String,
}

impl QualityCheck {
    /// The difference compared, whichever the mode.
    pub fn difference(&self) -> Option<&RateDifference> {
        self.paired.as_ref().map(|p| &p.accuracy).or(self.unpaired.as_ref())
    }
}

/// What the analysis decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    /// The step's pause is not over; nothing failed.
    Wait,
    /// The pause is over, nothing failed, but something could not be judged yet (too little
    /// feedback, no figure, no replica following the rollout): wait for more.
    Inconclusive,
    /// The step passed: on to the next weight.
    Step,
    /// The last step passed: the candidate becomes production.
    Promote,
    /// A check failed: traffic back to the baseline, the candidate marked.
    Abort,
}

impl Decision {
    /// Its name in reports and `monitor.json`.
    pub fn name(self) -> &'static str {
        match self {
            Decision::Wait => "wait",
            Decision::Inconclusive => "inconclusive",
            Decision::Step => "step",
            Decision::Promote => "promote",
            Decision::Abort => "abort",
        }
    }
}

/// The replicas Prometheus sees following the rollout.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Replicas {
    /// Reporting the rollout at its current weight.
    pub at_weight: u64,
    /// Reporting it at another weight (not caught up yet), as `weight × replicas`.
    pub elsewhere: Vec<String>,
}

/// One analysis of a rollout, whole: what `monitor.json` records and the report shows.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RolloutAnalysis {
    /// What was judged.
    #[serde(flatten)]
    pub subject: Subject,
    /// The range of every query (`Ns`).
    pub window: String,
    /// The settings applied.
    pub criteria: Criteria,
    /// The replicas following the rollout.
    pub replicas: Replicas,
    /// The candidate's figures.
    pub candidate_figures: SideFigures,
    /// The baseline's figures.
    pub baseline_figures: SideFigures,
    /// Failures per record, candidate over baseline.
    pub error_ratio: RatioCheck,
    /// The p95 of the scoring latency, candidate over baseline.
    pub latency_ratio: RatioCheck,
    /// Accuracy on joined feedback.
    pub quality: QualityCheck,
    /// What it decides.
    pub decision: Decision,
    /// Why, in sentences.
    pub reasons: Vec<String>,
    /// The queries asked.
    pub queries: Vec<NamedQuery>,
    /// What was done about it, set by the caller.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
}

/// The single value of an answer: the sum of its series' finite values, `None` without any.
fn value(samples: &[Sample]) -> Option<f64> {
    let finite: Vec<f64> = samples.iter().map(|s| s.value).filter(|v| v.is_finite()).collect();
    (!finite.is_empty()).then(|| finite.iter().sum())
}

/// A count from an answer: `increase` extrapolates, so its sums are rounded to whole records.
fn count(samples: &[Sample]) -> u64 {
    value(samples).map_or(0, |v| v.max(0.0).round() as u64)
}

/// The sum of the series whose `label` is one of `values`.
fn count_where(samples: &[Sample], label: &str, values: &[&str]) -> u64 {
    let kept: Vec<Sample> =
        samples.iter().filter(|s| s.labels.get(label).is_some_and(|v| values.contains(&v.as_str()))).cloned().collect();
    count(&kept)
}

fn ratio_check(
    name: &str,
    what: &str,
    (candidate, baseline): (Option<f64>, Option<f64>),
    floor: f64,
    max: f64,
    enough: Option<String>,
) -> RatioCheck {
    let mut check = RatioCheck {
        name: name.into(),
        candidate,
        baseline,
        floor,
        ratio: None,
        max,
        verdict: Verdict::NotJudged,
        note: String::new(),
    };
    match (candidate, baseline, enough) {
        (_, _, Some(why)) => check.note = why,
        (Some(c), Some(b), None) => {
            let ratio = c.max(floor) / b.max(floor);
            check.ratio = Some(ratio);
            check.verdict = if ratio > max { Verdict::Failed } else { Verdict::Passed };
            check.note = format!(
                "{what} {c:.4} against the baseline's {b:.4} (each at least {floor}): ratio {ratio:.2}, {} {max}",
                if ratio > max { "above" } else { "within" }
            );
        }
        _ => {
            check.note =
                format!("no {what} of {} yet", if candidate.is_none() { "the candidate" } else { "the baseline" })
        }
    }
    check
}

fn side_figures(subject: &Subject, side: Side, answers: &BTreeMap<Query, Vec<Sample>>) -> SideFigures {
    let get = |q: Query| answers.get(&q).map(Vec::as_slice).unwrap_or_default();
    let records = count(get(Query::Of(side, Figure::Records)));
    let failures = count(get(Query::Of(side, Figure::Failures)));
    let (joined, right) = match subject.mode {
        RolloutMode::Canary => {
            let outcomes = get(Query::Of(side, Figure::Outcomes));
            (
                count_where(
                    outcomes,
                    "outcome",
                    &["true_positive", "true_negative", "false_positive", "false_negative"],
                ),
                count_where(outcomes, "outcome", &["true_positive", "true_negative"]),
            )
        }
        RolloutMode::Shadow => {
            let pairs = get(Query::Pairs);
            let correct = match side {
                Side::Candidate => "candidate_correct",
                Side::Baseline => "baseline_correct",
            };
            (count(pairs), count_where(pairs, correct, &["true"]))
        }
    };
    let attempted = records + failures;
    SideFigures {
        version: subject.version(side).to_string(),
        role: subject.role(side).to_string(),
        records,
        failures,
        failure_rate: (attempted > 0).then(|| failures as f64 / attempted as f64),
        latency_p95_seconds: value(get(Query::Of(side, Figure::LatencyP95))).filter(|v| *v >= 0.0),
        joined,
        right: right.min(joined),
        accuracy: (joined > 0).then(|| right.min(joined) as f64 / joined as f64),
    }
}

/// The pair counts of shadow mode, from `mlgate_shadow_pairs_total` summed by its two labels.
fn pair_counts(samples: &[Sample]) -> PairCounts {
    let cell = |b: &str, c: &str| {
        let kept: Vec<Sample> = samples
            .iter()
            .filter(|s| {
                s.labels.get("baseline_correct").map(String::as_str) == Some(b)
                    && s.labels.get("candidate_correct").map(String::as_str) == Some(c)
            })
            .cloned()
            .collect();
        count(&kept)
    };
    PairCounts {
        both_right: cell("true", "true"),
        baseline_only: cell("true", "false"),
        candidate_only: cell("false", "true"),
        both_wrong: cell("false", "false"),
    }
}

fn quality_check(
    subject: &Subject,
    criteria: &Criteria,
    candidate: &SideFigures,
    baseline: &SideFigures,
    pairs: PairCounts,
) -> Result<QualityCheck> {
    let min = criteria.min_feedback.max(1);
    let mut check = QualityCheck {
        metric: "accuracy".into(),
        min_feedback: criteria.min_feedback,
        paired: None,
        unpaired: None,
        verdict: Verdict::NotJudged,
        note: String::new(),
    };
    if candidate.joined < min || baseline.joined < min {
        check.note = match subject.mode {
            RolloutMode::Shadow => format!("{} joined pairs of {min} needed", candidate.joined),
            RolloutMode::Canary => format!(
                "joined predictions: the candidate {}, the baseline {}, of {min} needed on each side",
                candidate.joined, baseline.joined
            ),
        };
        return Ok(check);
    }
    let difference = match subject.mode {
        RolloutMode::Shadow => {
            let paired = paired_from_counts(pairs, RESAMPLES, criteria.confidence, SEED)?;
            let d = paired.accuracy;
            check.paired = Some(paired);
            d
        }
        RolloutMode::Canary => {
            let d = unpaired_rates(
                (candidate.right, candidate.joined),
                (baseline.right, baseline.joined),
                RESAMPLES,
                criteria.confidence,
                SEED,
            )?;
            check.unpaired = Some(d);
            d
        }
    };
    let drop = difference.significant_drop();
    check.verdict = if drop { Verdict::Failed } else { Verdict::Passed };
    check.note = format!(
        "accuracy {:.4} ({} joined) against the baseline's {:.4} ({} joined): {:+.4}, {:.0} % interval {:+.4} … {:+.4}{}",
        difference.candidate,
        candidate.joined,
        difference.baseline,
        baseline.joined,
        difference.delta,
        100.0 * difference.confidence,
        difference.ci_low,
        difference.ci_high,
        if drop { ", a significant drop" } else { ", no significant drop" }
    );
    if let Some(p) = &check.paired {
        check.note.push_str(&format!(
            "; McNemar p = {:.4} ({} right only by the candidate, {} only by the baseline)",
            p.mcnemar.p_value, p.mcnemar.candidate_only, p.mcnemar.production_only
        ));
    }
    Ok(check)
}

fn replicas(subject: &Subject, samples: &[Sample]) -> Replicas {
    let mut by_weight: BTreeMap<String, u64> = BTreeMap::new();
    let mut at_weight = 0;
    for s in samples {
        if s.value == f64::from(subject.weight) {
            at_weight += 1;
        } else {
            *by_weight.entry(format!("{}", s.value)).or_default() += 1;
        }
    }
    Replicas { at_weight, elsewhere: by_weight.into_iter().map(|(w, n)| format!("{w} % × {n}")).collect() }
}

/// Analyses the rollout from the answers to [`Subject::queries`] (a query left out answered
/// nothing) and decides:
/// - **abort** as soon as a check fails: the candidate's failure rate or p95 scoring latency
///   over the baseline's above its maximum, or its accuracy significantly below the baseline's
///   (the whole interval of candidate − baseline below zero);
/// - else **wait** while the step's pause is not over;
/// - else **inconclusive** while a check is not judged (each side needs `min_feedback` joined
///   predictions and scored records) or no replica follows the rollout at its weight;
/// - else **step** to the next weight, or **promote** after the last step.
pub fn analyse(
    subject: &Subject,
    criteria: &Criteria,
    answers: &BTreeMap<Query, Vec<Sample>>,
) -> Result<RolloutAnalysis> {
    criteria.check()?;
    let get = |q: Query| answers.get(&q).map(Vec::as_slice).unwrap_or_default();
    let candidate = side_figures(subject, Side::Candidate, answers);
    let baseline = side_figures(subject, Side::Baseline, answers);
    let min = criteria.min_feedback.max(1);
    let scored_enough = || {
        let few: Vec<String> = [&candidate, &baseline]
            .iter()
            .filter(|f| f.records + f.failures < min)
            .map(|f| format!("{} ({}) scored {} records", f.version, f.role, f.records + f.failures))
            .collect();
        (!few.is_empty()).then(|| format!("{}, of {min} needed", few.join(" and ")))
    };
    let error_ratio = ratio_check(
        "error_ratio",
        "failure rate",
        (candidate.failure_rate, baseline.failure_rate),
        FAILURE_RATE_FLOOR,
        criteria.max_error_ratio,
        scored_enough(),
    );
    let latency_ratio = ratio_check(
        "latency_ratio",
        "p95 scoring latency (s)",
        (candidate.latency_p95_seconds, baseline.latency_p95_seconds),
        criteria.latency_floor_seconds,
        criteria.max_latency_ratio,
        scored_enough(),
    );
    let quality = quality_check(subject, criteria, &candidate, &baseline, pair_counts(get(Query::Pairs)))?;
    let replicas = replicas(subject, get(Query::Replicas));
    let checks = [
        ("error ratio", error_ratio.verdict, &error_ratio.note),
        ("latency ratio", latency_ratio.verdict, &latency_ratio.note),
        ("quality", quality.verdict, &quality.note),
    ];
    let failed: Vec<String> = checks
        .iter()
        .filter(|c| c.1 == Verdict::Failed)
        .map(|(name, _, note)| format!("{name} failed: {note}"))
        .collect();
    let mut unjudged: Vec<String> = checks
        .iter()
        .filter(|c| c.1 == Verdict::NotJudged)
        .map(|(name, _, note)| format!("{name} not judged yet: {note}"))
        .collect();
    if subject.mode == RolloutMode::Canary && subject.weight >= 100 {
        unjudged.push(
            "at 100 % the baseline answers nothing in the window: the candidate has nothing to be compared with \
             (end the steps below 100 %: the promotion moves the rest)"
                .to_string(),
        );
    }
    if replicas.at_weight == 0 {
        unjudged.push(format!(
            "no replica reports the rollout at weight {} % yet{}",
            subject.weight,
            if replicas.elsewhere.is_empty() {
                String::new()
            } else {
                format!(" (at {})", replicas.elsewhere.join(", "))
            }
        ));
    }
    let step = format!("step {} of {}", subject.step + 1, subject.steps);
    let (decision, reasons) = if !failed.is_empty() {
        (Decision::Abort, failed)
    } else if subject.elapsed_seconds < subject.pause_seconds {
        let mut reasons = vec![format!(
            "the pause of {step} is not over: {} s of {} s, {} s left",
            subject.elapsed_seconds,
            subject.pause_seconds,
            subject.pause_seconds - subject.elapsed_seconds
        )];
        reasons.extend(unjudged);
        (Decision::Wait, reasons)
    } else if !unjudged.is_empty() {
        (Decision::Inconclusive, unjudged)
    } else if subject.step + 1 < subject.steps {
        (Decision::Step, vec![format!("{step} passed: every check judged and none failed")])
    } else {
        (Decision::Promote, vec![format!("the last step ({step}) passed: every check judged and none failed")])
    };
    Ok(RolloutAnalysis {
        subject: subject.clone(),
        window: subject.window(),
        criteria: *criteria,
        replicas,
        candidate_figures: candidate,
        baseline_figures: baseline,
        error_ratio,
        latency_ratio,
        quality,
        decision,
        reasons,
        queries: subject.queries().into_iter().map(|(q, promql)| NamedQuery { name: q.name(), promql }).collect(),
        action: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subject(mode: RolloutMode, step: usize, elapsed: u64) -> Subject {
        Subject {
            model: "shop".into(),
            candidate: "v3".into(),
            baseline: "v2".into(),
            mode,
            step,
            steps: 3,
            weight: if mode == RolloutMode::Canary { 25 } else { 0 },
            pause_seconds: 600,
            elapsed_seconds: elapsed,
        }
    }

    const CRITERIA: Criteria = Criteria {
        min_feedback: 200,
        confidence: 0.95,
        max_error_ratio: 2.0,
        max_latency_ratio: 1.5,
        latency_floor_seconds: crate::pipeline::rollout::LATENCY_FLOOR_SECONDS,
    };

    fn one(value: f64) -> Vec<Sample> {
        vec![Sample { labels: BTreeMap::new(), value }]
    }

    fn labelled(pairs: &[(&[(&str, &str)], f64)]) -> Vec<Sample> {
        pairs
            .iter()
            .map(|(labels, value)| Sample {
                labels: labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
                value: *value,
            })
            .collect()
    }

    /// Answers where each side scored `records` with `failures` at a p95 of `p95` seconds and,
    /// in canary mode, joined `right` of `joined`; two replicas at the rollout's weight.
    #[derive(Clone, Copy)]
    struct Traffic {
        records: f64,
        failures: f64,
        p95: f64,
        right: f64,
        joined: f64,
    }

    const FINE: Traffic = Traffic { records: 5000.0, failures: 0.0, p95: 0.002, right: 850.0, joined: 1000.0 };

    fn answers(s: &Subject, candidate: Traffic, baseline: Traffic) -> BTreeMap<Query, Vec<Sample>> {
        let mut a = BTreeMap::new();
        for (side, f) in [(Side::Candidate, candidate), (Side::Baseline, baseline)] {
            a.insert(Query::Of(side, Figure::Records), one(f.records));
            a.insert(Query::Of(side, Figure::Failures), one(f.failures));
            a.insert(Query::Of(side, Figure::LatencyP95), one(f.p95));
            // Increase extrapolates: counts come back with fractions.
            let wrong = f.joined - f.right;
            a.insert(
                Query::Of(side, Figure::Outcomes),
                labelled(&[
                    (&[("outcome", "true_positive")], f.right * 0.3 + 0.2),
                    (&[("outcome", "true_negative")], f.right * 0.7 - 0.2),
                    (&[("outcome", "false_positive")], wrong / 2.0),
                    (&[("outcome", "false_negative")], wrong / 2.0),
                ]),
            );
        }
        a.insert(Query::Replicas, vec![one(f64::from(s.weight))[0].clone(), one(f64::from(s.weight))[0].clone()]);
        a
    }

    fn shadow_pairs(a: &mut BTreeMap<Query, Vec<Sample>>, [both, base, cand, none]: [f64; 4]) {
        let b = "baseline_correct";
        let c = "candidate_correct";
        a.insert(
            Query::Pairs,
            labelled(&[
                (&[(b, "true"), (c, "true")], both),
                (&[(b, "true"), (c, "false")], base),
                (&[(b, "false"), (c, "true")], cand),
                (&[(b, "false"), (c, "false")], none),
            ]),
        );
    }

    #[test]
    fn queries_sum_over_replicas_in_the_window_by_version_and_role() {
        let mut s = subject(RolloutMode::Canary, 0, 754);
        s.model = "shop \"x\"".into();
        let asked = s.queries();
        for (q, promql) in &asked {
            assert!(promql.contains(r#"model="shop \"x\"""#), "{promql}");
            assert!(!promql.contains("max(") && !promql.contains("min("), "{promql}");
            if *q != Query::Replicas {
                assert!(promql.contains("[754s]") && promql.contains("sum"), "{promql}");
            }
        }
        let q = |q: Query| asked.iter().find(|(k, _)| *k == q).unwrap().1.clone();
        assert_eq!(
            q(Query::Of(Side::Candidate, Figure::Records)),
            r#"sum(increase(mlgate_records_scored_total{model="shop \"x\"",version="v3",role="canary"}[754s]))"#
        );
        assert_eq!(
            q(Query::Of(Side::Baseline, Figure::LatencyP95)),
            r#"histogram_quantile(0.95, sum by (le) (increase(mlgate_scoring_duration_seconds_bucket{model="shop \"x\"",version="v2",role="baseline"}[754s])))"#
        );
        assert_eq!(
            q(Query::Of(Side::Candidate, Figure::Outcomes)),
            r#"sum by (outcome) (increase(mlgate_feedback_outcomes_total{model="shop \"x\"",version="v3",role="canary"}[754s]))"#
        );
        assert!(!asked.iter().any(|(k, _)| *k == Query::Pairs));
        let shadow = subject(RolloutMode::Shadow, 0, 0).queries();
        let pairs = &shadow.iter().find(|(k, _)| *k == Query::Pairs).unwrap().1;
        assert_eq!(
            pairs,
            r#"sum by (baseline_correct, candidate_correct) (increase(mlgate_shadow_pairs_total{model="shop",baseline="v2",candidate="v3"}[1s]))"#
        );
        assert!(shadow.iter().any(|(_, p)| p.contains(r#"role="shadow""#)));
        assert!(!shadow.iter().any(|(k, _)| matches!(k, Query::Of(_, Figure::Outcomes))));
    }

    #[test]
    fn a_step_passes_after_its_pause_and_the_last_promotes() {
        let s = subject(RolloutMode::Canary, 0, 700);
        let a = analyse(&s, &CRITERIA, &answers(&s, FINE, FINE)).unwrap();
        assert_eq!(a.decision, Decision::Step, "{:?}", a.reasons);
        assert_eq!(a.error_ratio.ratio, Some(1.0), "0/0 failures is a ratio of one");
        assert_eq!(a.latency_ratio.ratio, Some(1.0));
        assert_eq!((a.candidate_figures.joined, a.candidate_figures.right), (1000, 850));
        assert_eq!(a.candidate_figures.role, "canary");
        assert_eq!(a.replicas.at_weight, 2);
        let q = a.quality.unpaired.unwrap();
        assert!(q.delta.abs() < 1e-12 && q.ci_low < 0.0 && q.ci_high > 0.0);
        let last = subject(RolloutMode::Canary, 2, 700);
        let a = analyse(&last, &CRITERIA, &answers(&last, FINE, FINE)).unwrap();
        assert_eq!(a.decision, Decision::Promote, "{:?}", a.reasons);
        assert!(a.reasons[0].contains("the last step (step 3 of 3) passed"), "{:?}", a.reasons);
    }

    #[test]
    fn the_pause_waits_and_too_little_feedback_is_inconclusive() {
        let s = subject(RolloutMode::Canary, 1, 120);
        let a = analyse(&s, &CRITERIA, &answers(&s, FINE, FINE)).unwrap();
        assert_eq!(a.decision, Decision::Wait);
        assert!(a.reasons[0].contains("step 2 of 3 is not over: 120 s of 600 s, 480 s left"), "{:?}", a.reasons);
        let s = subject(RolloutMode::Canary, 1, 900);
        let few = Traffic { right: 170.0, joined: 199.0, ..FINE };
        let a = analyse(&s, &CRITERIA, &answers(&s, few, FINE)).unwrap();
        assert_eq!(a.decision, Decision::Inconclusive);
        assert_eq!(a.quality.verdict, Verdict::NotJudged);
        assert!(a.reasons[0].contains("the candidate 199, the baseline 1000, of 200 needed"), "{:?}", a.reasons);
        // A contradicted candidate below min_feedback is not judged either.
        let bad = Traffic { right: 10.0, joined: 150.0, ..FINE };
        assert_eq!(analyse(&s, &CRITERIA, &answers(&s, bad, FINE)).unwrap().decision, Decision::Inconclusive);
        // No replica at the rollout's weight: nothing is known of this step's traffic.
        let mut a = answers(&s, FINE, FINE);
        a.insert(Query::Replicas, one(10.0));
        let a = analyse(&s, &CRITERIA, &a).unwrap();
        assert_eq!(a.decision, Decision::Inconclusive);
        assert!(
            a.reasons[0].contains("no replica reports the rollout at weight 25 % yet (at 10 % × 1)"),
            "{:?}",
            a.reasons
        );
        // At 100 %, the baseline has no traffic to be compared with.
        let mut all = Subject { weight: 100, ..s.clone() };
        all.step = 2;
        let mut a = answers(&all, FINE, Traffic { records: 0.0, right: 0.0, joined: 0.0, ..FINE });
        a.insert(Query::Replicas, one(100.0));
        let a = analyse(&all, &CRITERIA, &a).unwrap();
        assert_eq!(a.decision, Decision::Inconclusive);
        assert!(a.reasons.iter().any(|r| r.contains("at 100 % the baseline answers nothing")), "{:?}", a.reasons);
        // Nothing at all: every check not judged.
        let a = analyse(&s, &CRITERIA, &BTreeMap::new()).unwrap();
        assert_eq!(a.decision, Decision::Inconclusive);
        assert_eq!(a.reasons.len(), 4, "{:?}", a.reasons);
    }

    #[test]
    fn a_significant_drop_aborts_even_during_the_pause_and_noise_does_not() {
        let s = subject(RolloutMode::Canary, 0, 60);
        let worse = Traffic { right: 300.0, joined: 400.0, ..FINE };
        let a = analyse(&s, &CRITERIA, &answers(&s, worse, FINE)).unwrap();
        assert_eq!(a.decision, Decision::Abort);
        assert_eq!(a.quality.verdict, Verdict::Failed);
        assert!(
            a.reasons[0].starts_with(
                "quality failed: accuracy 0.7500 (400 joined) against the baseline's 0.8500 (1000 joined): -0.1000"
            ),
            "{:?}",
            a.reasons
        );
        // A little worse, on few joined predictions: noise.
        let s = subject(RolloutMode::Canary, 0, 700);
        let noise = Traffic { right: 205.0, joined: 250.0, ..FINE };
        let a = analyse(&s, &CRITERIA, &answers(&s, noise, FINE)).unwrap();
        assert_eq!(a.decision, Decision::Step, "{:?}", a.reasons);
        assert!(a.quality.unpaired.unwrap().delta < 0.0);
    }

    #[test]
    fn shadow_is_judged_paired_on_the_same_requests() {
        let s = subject(RolloutMode::Shadow, 0, 700);
        let mut a = answers(&s, FINE, FINE);
        a.remove(&Query::Of(Side::Candidate, Figure::Outcomes));
        // The candidate right on 40 requests the baseline got wrong, wrong on 90 it got right.
        shadow_pairs(&mut a, [700.0, 90.0, 40.0, 170.0]);
        let r = analyse(&s, &CRITERIA, &a).unwrap();
        assert_eq!(r.decision, Decision::Abort, "{:?}", r.reasons);
        let p = r.quality.paired.as_ref().unwrap();
        assert_eq!(p.counts, PairCounts { both_right: 700, baseline_only: 90, candidate_only: 40, both_wrong: 170 });
        assert!(p.mcnemar.p_value < 0.001 && p.accuracy.significant_drop());
        assert_eq!((r.candidate_figures.joined, r.candidate_figures.right), (1000, 740));
        assert_eq!((r.baseline_figures.joined, r.baseline_figures.right), (1000, 790));
        assert!(
            r.reasons[0].contains("McNemar p = 0.0000 (40 right only by the candidate, 90 only by the baseline)"),
            "{:?}",
            r.reasons
        );
        // The same accuracies with discordance both ways: no drop.
        shadow_pairs(&mut a, [700.0, 65.0, 65.0, 170.0]);
        let r = analyse(&s, &CRITERIA, &a).unwrap();
        assert_eq!(r.decision, Decision::Step, "{:?}", r.reasons);
        // Too few pairs.
        shadow_pairs(&mut a, [100.0, 10.0, 5.0, 20.0]);
        let r = analyse(&s, &CRITERIA, &a).unwrap();
        assert_eq!(r.decision, Decision::Inconclusive);
        assert!(r.reasons.iter().any(|x| x.contains("135 joined pairs of 200 needed")), "{:?}", r.reasons);
    }

    #[test]
    fn failures_and_latency_are_judged_as_ratios_with_a_floor() {
        let s = subject(RolloutMode::Canary, 0, 700);
        // 5 % of the candidate's records fail, 1 % of the baseline's: ratio 5.
        let failing = Traffic { records: 950.0, failures: 50.0, ..FINE };
        let some = Traffic { records: 4950.0, failures: 50.0, ..FINE };
        let a = analyse(&s, &CRITERIA, &answers(&s, failing, some)).unwrap();
        assert_eq!(a.decision, Decision::Abort);
        assert_eq!(a.error_ratio.verdict, Verdict::Failed);
        assert!((a.error_ratio.ratio.unwrap() - 5.0).abs() < 1e-9);
        // One failure of a thousand against none: under the floor, a ratio of one.
        let one_failure = Traffic { records: 999.0, failures: 1.0, ..FINE };
        let a = analyse(&s, &CRITERIA, &answers(&s, one_failure, FINE)).unwrap();
        assert_eq!(a.error_ratio.ratio, Some(1.0));
        assert_eq!(a.decision, Decision::Step);
        // A candidate that fails everything it is asked.
        let broken = Traffic { records: 0.0, failures: 800.0, ..FINE };
        let a = analyse(&s, &CRITERIA, &answers(&s, broken, FINE)).unwrap();
        assert_eq!((a.decision, a.candidate_figures.failure_rate), (Decision::Abort, Some(1.0)));
        // Latency: 12 ms against 2 ms, counted as the floor's 5 ms, is a ratio of 2.4, above 1.5.
        let slow = Traffic { p95: 0.012, ..FINE };
        let a = analyse(&s, &CRITERIA, &answers(&s, slow, FINE)).unwrap();
        assert_eq!((a.decision, a.latency_ratio.verdict), (Decision::Abort, Verdict::Failed));
        assert!((a.latency_ratio.ratio.unwrap() - 2.4).abs() < 1e-9);
        assert!(a.reasons[0].starts_with("latency ratio failed"), "{:?}", a.reasons);
        // Both under the floor: equals, whatever their own ratio (4 ms against 1 ms here)...
        let fast = Traffic { p95: 0.004, ..FINE };
        let faster = Traffic { p95: 0.001, ..FINE };
        let a = analyse(&s, &CRITERIA, &answers(&s, fast, faster)).unwrap();
        assert_eq!((a.latency_ratio.ratio, a.decision), (Some(1.0), Decision::Step));
        // ... unless the configured floor is lower: then 4 ms against 1 ms is 4.
        let strict = Criteria { latency_floor_seconds: 0.001, ..CRITERIA };
        let a = analyse(&s, &strict, &answers(&s, fast, faster)).unwrap();
        assert_eq!((a.latency_ratio.ratio, a.decision), (Some(4.0), Decision::Abort));
        assert!(a.latency_ratio.note.contains("each at least 0.001"), "{}", a.latency_ratio.note);
        // Too few records scored: not judged, whatever the figures.
        let few = Traffic { records: 100.0, failures: 50.0, ..FINE };
        let a = analyse(&s, &CRITERIA, &answers(&s, few, FINE)).unwrap();
        assert_eq!((a.error_ratio.verdict, a.decision), (Verdict::NotJudged, Decision::Inconclusive));
    }

    #[test]
    fn criteria_out_of_range_are_refused_by_key() {
        let s = subject(RolloutMode::Canary, 0, 700);
        for (criteria, key) in [
            (Criteria { confidence: 1.0, ..CRITERIA }, "rollout.confidence"),
            (Criteria { max_error_ratio: 0.5, ..CRITERIA }, "rollout.max_error_ratio"),
            (Criteria { max_latency_ratio: f64::NAN, ..CRITERIA }, "rollout.max_latency_ratio"),
            (Criteria { latency_floor_seconds: 0.0, ..CRITERIA }, "rollout.latency_floor_seconds"),
            (Criteria { latency_floor_seconds: f64::INFINITY, ..CRITERIA }, "rollout.latency_floor_seconds"),
        ] {
            let e = analyse(&s, &criteria, &BTreeMap::new()).unwrap_err();
            assert!(matches!(&e, Error::Param(p) if p.key() == key), "{e}");
        }
        let config = RolloutConfig::default();
        assert_eq!(Criteria::of(&config).unwrap(), CRITERIA);
        let e = Criteria::of(&RolloutConfig { metric: Metric::RocAuc, ..config }).unwrap_err();
        assert!(matches!(&e, Error::Param(p) if p.key() == "rollout.metric"), "{e}");
    }
}
