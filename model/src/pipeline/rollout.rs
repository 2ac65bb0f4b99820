//! The `[rollout]` section: how a candidate is released beside production — canary weights or a
//! shadow, the steps and their pauses, and what the live analysis compares at each step.
//!
//! ```toml
//! [rollout]
//! mode = "canary"                 # or "shadow"
//! steps = [{ weight = 10, pause = "5m" }, { weight = 25, pause = "10m" }, { weight = 50, pause = "10m" }]
//! min_feedback = 200
//! metric = "accuracy"
//! confidence = 0.95
//! max_error_ratio = 2.0
//! max_latency_ratio = 1.5
//! latency_floor_seconds = 0.005
//! ```
//!
//! The types a rollout is made of ([`RolloutMode`], [`RolloutStep`]) live here, below the
//! registry that records them, so that the configuration can produce them.

use serde::{Deserialize, Serialize};

use crate::error::ParamError;
use crate::eval::metrics::Metric;

/// Steps a rollout may have at most.
pub const MAX_STEPS: usize = 100;
/// The longest pause of a step: thirty days.
pub const MAX_PAUSE_SECONDS: u64 = 30 * 86_400;

/// How the candidate meets live traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RolloutMode {
    /// A share of the records (the step's weight, sticky by the record's id) is answered by the
    /// candidate, the rest by the baseline.
    #[default]
    Canary,
    /// Every record is scored by both; the answer is always the baseline's, the candidate's
    /// prediction is kept for the paired comparison.
    Shadow,
}

impl RolloutMode {
    /// The name written in configurations, the registry and reports.
    pub fn name(self) -> &'static str {
        match self {
            RolloutMode::Canary => "canary",
            RolloutMode::Shadow => "shadow",
        }
    }
}

impl std::fmt::Display for RolloutMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// One step of a rollout, as the registry records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RolloutStep {
    /// Percent of the records answered by the candidate (canary, 1..=99); 0 in shadow.
    pub weight: u32,
    /// How long the step lasts at least before the analysis may pass it, in seconds.
    pub pause_seconds: u64,
}

/// Checks a rollout's steps for `mode`: at least one and at most [`MAX_STEPS`]; canary weights
/// in 1..=99 and strictly increasing; shadow weights 0; pauses at most [`MAX_PAUSE_SECONDS`].
/// The error names `key` (`rollout.steps`).
pub fn check_steps(mode: RolloutMode, steps: &[RolloutStep], key: &str) -> Result<(), ParamError> {
    if steps.is_empty() {
        return Err(ParamError::invalid(key, "a rollout needs at least one step"));
    }
    if steps.len() > MAX_STEPS {
        return Err(ParamError::out_of_range(key, format!("{} steps", steps.len()), format!("at most {MAX_STEPS}")));
    }
    for (i, s) in steps.iter().enumerate() {
        let at = format!("{key}[{i}]");
        if s.pause_seconds > MAX_PAUSE_SECONDS {
            return Err(ParamError::out_of_range(
                format!("{at}.pause"),
                format!("{} s", s.pause_seconds),
                format!("at most {MAX_PAUSE_SECONDS} s (30 days)"),
            ));
        }
        match mode {
            RolloutMode::Canary if !(1..=99).contains(&s.weight) => {
                return Err(ParamError::out_of_range(
                    format!("{at}.weight"),
                    s.weight,
                    "a percentage in 1..=99 (the promotion after the last step sends every record to the candidate; \
                     at 100 the baseline would answer none to compare with)",
                ));
            }
            RolloutMode::Canary if i > 0 && s.weight <= steps[i - 1].weight => {
                return Err(ParamError::invalid(
                    format!("{at}.weight"),
                    format!(
                        "{} after {}: a canary's weights must increase from step to step",
                        s.weight,
                        steps[i - 1].weight
                    ),
                ));
            }
            RolloutMode::Shadow if s.weight != 0 => {
                return Err(ParamError::invalid(
                    format!("{at}.weight"),
                    format!(
                        "{}: a shadow answers no request, its steps carry no weight (omit it or write 0)",
                        s.weight
                    ),
                ));
            }
            _ => {}
        }
    }
    Ok(())
}

/// One step as written in the configuration: `{ weight = 10, pause = "5m" }`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepConfig {
    /// Percent of the records answered by the candidate; omitted (0) in shadow mode.
    #[serde(default)]
    pub weight: u32,
    /// How long the step lasts at least: a duration such as `30s`, `10m`, `1h`, `1h30m`, `0s`.
    pub pause: String,
}

/// The `[rollout]` section (every key optional; the defaults are those of [`Default`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RolloutConfig {
    /// `canary` (default) or `shadow`.
    pub mode: RolloutMode,
    /// The steps; when absent, `[{10, 5m}, {25, 10m}, {50, 10m}]` for a canary and one step of
    /// 30 minutes for a shadow.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub steps: Option<Vec<StepConfig>>,
    /// Joined predictions (feedback) each side needs before quality is judged (default 200).
    pub min_feedback: u64,
    /// The quality compared on joined feedback (default `accuracy`).
    pub metric: Metric,
    /// Confidence of the bootstrap interval and of McNemar's test (default 0.95).
    pub confidence: f64,
    /// The candidate's failure rate over the baseline's (with a floor) above this fails the step
    /// (default 2.0).
    pub max_error_ratio: f64,
    /// The candidate's p95 scoring latency over the baseline's above this fails the step
    /// (default 1.5).
    pub max_latency_ratio: f64,
    /// p95 scoring latencies below this many seconds count as this many before their ratio is
    /// taken (default 0.005), so that versions that both score faster compare as equals: on a
    /// busy host, a thread preempted mid-scoring waits a scheduler slice (milliseconds), and a
    /// model's sub-millisecond p95 moves by several times with the load, not with the model.
    /// Left out of the configuration's hash at its default.
    #[serde(skip_serializing_if = "is_default_latency_floor")]
    pub latency_floor_seconds: f64,
}

/// The default of [`RolloutConfig::latency_floor_seconds`].
pub const LATENCY_FLOOR_SECONDS: f64 = 0.005;

fn is_default_latency_floor(seconds: &f64) -> bool {
    *seconds == LATENCY_FLOOR_SECONDS
}

impl Default for RolloutConfig {
    fn default() -> Self {
        RolloutConfig {
            mode: RolloutMode::Canary,
            steps: None,
            min_feedback: 200,
            metric: Metric::Accuracy,
            confidence: 0.95,
            max_error_ratio: 2.0,
            max_latency_ratio: 1.5,
            latency_floor_seconds: LATENCY_FLOOR_SECONDS,
        }
    }
}

impl RolloutConfig {
    /// True when the section is absent or says only the defaults (it then leaves the
    /// configuration's hash as it was before the section existed).
    pub fn is_default(&self) -> bool {
        *self == RolloutConfig::default()
    }

    /// The steps of a rollout in `mode` (the configured ones, else the mode's defaults).
    pub fn steps(&self) -> Result<Vec<RolloutStep>, ParamError> {
        let Some(steps) = &self.steps else {
            return Ok(match self.mode {
                RolloutMode::Canary => vec![
                    RolloutStep { weight: 10, pause_seconds: 300 },
                    RolloutStep { weight: 25, pause_seconds: 600 },
                    RolloutStep { weight: 50, pause_seconds: 600 },
                ],
                RolloutMode::Shadow => vec![RolloutStep { weight: 0, pause_seconds: 1800 }],
            });
        };
        steps
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let pause_seconds = parse_duration(&s.pause)
                    .map_err(|why| ParamError::invalid(format!("rollout.steps[{i}].pause"), why))?;
                Ok(RolloutStep { weight: s.weight, pause_seconds })
            })
            .collect()
    }

    /// Checks the section; the message names the key.
    pub fn check(&self) -> Result<(), ParamError> {
        check_steps(self.mode, &self.steps()?, "rollout.steps")?;
        if self.metric != Metric::Accuracy {
            return Err(ParamError::invalid(
                "rollout.metric",
                format!(
                    "{}: a rollout compares accuracy, the one metric both the pair counts of a shadow and the outcomes of a canary give",
                    self.metric
                ),
            ));
        }
        if !(1..=10_000_000).contains(&self.min_feedback) {
            return Err(ParamError::out_of_range("rollout.min_feedback", self.min_feedback, "in 1..=10000000"));
        }
        if !(self.confidence > 0.5 && self.confidence < 1.0) {
            return Err(ParamError::out_of_range("rollout.confidence", self.confidence, "in (0.5, 1)"));
        }
        for (key, ratio) in [("max_error_ratio", self.max_error_ratio), ("max_latency_ratio", self.max_latency_ratio)] {
            if !(ratio >= 1.0 && ratio.is_finite()) {
                return Err(ParamError::out_of_range(format!("rollout.{key}"), ratio, ">= 1 and finite"));
            }
        }
        if !(self.latency_floor_seconds > 0.0 && self.latency_floor_seconds <= 60.0) {
            return Err(ParamError::out_of_range(
                "rollout.latency_floor_seconds",
                self.latency_floor_seconds,
                "in (0, 60] seconds",
            ));
        }
        Ok(())
    }
}

/// Seconds in a duration written as one or more number–unit pairs (`30s`, `10m`, `1h`, `2d`,
/// `1h30m`; `0` alone is zero). The error says what is wrong, without the key.
pub fn parse_duration(text: &str) -> Result<u64, String> {
    let shown = || {
        if text.chars().count() > 40 {
            format!("{:?}… ({} characters)", text.chars().take(40).collect::<String>(), text.chars().count())
        } else {
            format!("{text:?}")
        }
    };
    let bad = || format!("{} is not a duration such as \"30s\", \"10m\", \"1h\" or \"1h30m\"", shown());
    if text == "0" {
        return Ok(0);
    }
    let mut total: u64 = 0;
    let mut digits = String::new();
    let mut parts = 0;
    for c in text.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            _ => return Err(bad()),
        };
        let n: u64 = digits.parse().map_err(|_| bad())?;
        total =
            n.checked_mul(unit).and_then(|s| total.checked_add(s)).ok_or_else(|| format!("{} is too long", shown()))?;
        digits.clear();
        parts += 1;
    }
    if parts == 0 || !digits.is_empty() {
        return Err(bad());
    }
    Ok(total)
}

/// A number of seconds written as [`parse_duration`] reads it, largest units first (`1h30m`,
/// `45s`, `0s`).
pub fn format_duration(seconds: u64) -> String {
    if seconds == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    let mut left = seconds;
    for (unit, size) in [("d", 86_400), ("h", 3600), ("m", 60), ("s", 1)] {
        if left >= size {
            out.push_str(&format!("{}{unit}", left / size));
            left %= size;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_their_units() {
        assert_eq!(parse_duration("30s"), Ok(30));
        assert_eq!(parse_duration("10m"), Ok(600));
        assert_eq!(parse_duration("1h"), Ok(3600));
        assert_eq!(parse_duration("1h30m"), Ok(5400));
        assert_eq!(parse_duration("0s"), Ok(0));
        assert_eq!(parse_duration("0"), Ok(0));
        for bad in ["", "10", "m", "5 m", "-1s", "1.5h", "10x", "1h30"] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
        assert!(parse_duration("99999999999999999999d").is_err());
        for seconds in [0, 1, 59, 60, 61, 3600, 5400, 86_400 + 61] {
            assert_eq!(parse_duration(&format_duration(seconds)), Ok(seconds), "{}", format_duration(seconds));
        }
        assert_eq!(format_duration(5400), "1h30m");
    }

    #[test]
    fn defaults_are_as_documented() {
        let c = RolloutConfig::default();
        assert!(c.check().is_ok());
        assert_eq!(c.steps().unwrap().iter().map(|s| s.weight).collect::<Vec<_>>(), [10, 25, 50]);
        let shadow = RolloutConfig { mode: RolloutMode::Shadow, ..c };
        assert_eq!(shadow.steps().unwrap(), [RolloutStep { weight: 0, pause_seconds: 1800 }]);
    }

    #[test]
    fn the_latency_floor_is_checked_and_hashed_only_when_set() {
        // At its default it is not serialized: a section that existed before the key keeps its hash.
        let shadow = RolloutConfig { mode: RolloutMode::Shadow, ..RolloutConfig::default() };
        assert!(!serde_json::to_string(&shadow).unwrap().contains("latency_floor"));
        let set = RolloutConfig { latency_floor_seconds: 0.001, ..shadow.clone() };
        assert!(serde_json::to_string(&set).unwrap().contains("\"latency_floor_seconds\":0.001"));
        assert!(set.check().is_ok());
        for bad in [0.0, -0.001, 61.0, f64::NAN, f64::INFINITY] {
            let c = RolloutConfig { latency_floor_seconds: bad, ..shadow.clone() };
            assert_eq!(c.check().unwrap_err().key(), "rollout.latency_floor_seconds", "{bad}");
        }
    }

    #[test]
    fn steps_are_checked_by_mode_naming_the_key() {
        let step = |weight, pause_seconds| RolloutStep { weight, pause_seconds };
        let canary = RolloutMode::Canary;
        assert!(check_steps(canary, &[step(10, 0), step(50, 60), step(99, 60)], "k").is_ok());
        // At 100 the baseline would answer nothing to compare with: the promotion sends all.
        let err = check_steps(canary, &[step(10, 0), step(100, 60)], "k").unwrap_err();
        assert_eq!(err.key(), "k[1].weight");
        assert!(err.to_string().contains("1..=99"), "{err}");
        let err = check_steps(canary, &[step(10, 0), step(10, 60)], "rollout.steps").unwrap_err();
        assert_eq!(err.key(), "rollout.steps[1].weight");
        assert_eq!(check_steps(canary, &[step(0, 0)], "k").unwrap_err().key(), "k[0].weight");
        assert_eq!(check_steps(canary, &[step(101, 0)], "k").unwrap_err().key(), "k[0].weight");
        // A metric the rollout cannot compare is refused when the section is read.
        let other = RolloutConfig { metric: Metric::RocAuc, ..RolloutConfig::default() };
        assert_eq!(other.check().unwrap_err().key(), "rollout.metric");
        assert_eq!(check_steps(canary, &[], "k").unwrap_err().key(), "k");
        assert_eq!(check_steps(RolloutMode::Shadow, &[step(5, 0)], "k").unwrap_err().key(), "k[0].weight");
        assert!(check_steps(RolloutMode::Shadow, &[step(0, 60), step(0, 60)], "k").is_ok());
        let long = step(10, MAX_PAUSE_SECONDS + 1);
        assert_eq!(check_steps(canary, &[long], "k").unwrap_err().key(), "k[0].pause");
    }
}
