//! Acceptance: the candidate's staging rows found again, the candidate and production scored on
//! the same rows, both gates run, and everything measured and decided gathered in the
//! [`AcceptanceRecord`] (`metrics.json`).

use crate::data::dataset::Dataset;
use crate::data::rowhash::KeyScheme;
use crate::error::{Error, Result};
use crate::eval::calibration::{calibration, ScoreDistribution};
use crate::eval::compare::Scored;
use crate::eval::metrics::{precision_recall_curve, roc_curve, thin, MetricSet};
use crate::lifecycle::gate::{
    self, AcceptanceRecord, Curves, GateKind, LabelWords, ProductionComparison, StagingSource, StagingSummary,
};
use crate::pipeline::artifact::Artifact;
use crate::pipeline::config::PipelineConfig;
use crate::pipeline::staging::StagingSpec;

/// The layout version of `metrics.json` this build writes. Version 2 added `baseline` and checks
/// of gate `baseline`; a version 1 file reads with no baseline.
pub const RECORD_SCHEMA_VERSION: u32 = 2;

/// The production model, as acceptance compares against it.
pub struct Production<'a> {
    /// Its registry version.
    pub version: String,
    /// Its artifact.
    pub artifact: &'a Artifact,
    /// The staging file read with production's own schema (it may declare other columns).
    pub data: &'a Dataset,
}

/// The staging rows of `artifact` in `data` (read with the artifact's schema): every row of a
/// separate staging file, or the rows of a training file that the artifact's hold-out rule sets
/// aside. An artifact whose rule keyed rows by another scheme than the data's keys
/// ([`KeyScheme::CURRENT`]) is refused: other keys would pick other rows, some of which the
/// candidate trained on.
pub fn staging_rows(artifact: &Artifact, data: &Dataset) -> Result<Vec<usize>> {
    match &artifact.staging {
        StagingSpec::File { .. } => Ok((0..data.len()).collect()),
        StagingSpec::Holdout { keys, .. } if *keys != KeyScheme::CURRENT => {
            Err(Error::StagingKeysOutdated { model: artifact.name.clone(), scheme: scheme_name(*keys) })
        }
        StagingSpec::Holdout { fraction, salt, .. } => {
            Ok((0..data.len()).filter(|&i| StagingSpec::is_staging(*fraction, salt, data.row_keys[i])).collect())
        }
    }
}

fn scheme_name(scheme: KeyScheme) -> &'static str {
    match scheme {
        KeyScheme::Text => "text",
        KeyScheme::Values => "values",
    }
}

/// Scores the candidate (and production, when there is one) on the candidate's staging rows of
/// `data` and runs the gate of `config`. `file` names the staging file in the record. The
/// record's `version` is left empty: the registry gives it.
pub fn judge(
    config: &PipelineConfig,
    candidate: &Artifact,
    data: &Dataset,
    file: &str,
    production: Option<Production<'_>>,
) -> Result<AcceptanceRecord> {
    let rows = staging_rows(candidate, data)?;
    let staging = data.select(&rows);
    let labels = staging.require_labels()?.to_vec();
    let positives = labels.iter().filter(|&&y| y).count();
    if positives == 0 || positives == labels.len() {
        return Err(Error::StagingSingleClass { file: file.into(), rows: labels.len() as u64 });
    }
    let scores = candidate.score(&staging)?;
    let metrics = MetricSet::compute(&labels, &scores.probabilities, candidate.threshold.value)?;
    let acceptance = &config.acceptance;
    let mut checks = gate::threshold_checks(GateKind::Threshold, &acceptance.min, &acceptance.max, &metrics);
    let candidate_scored = Scored { probabilities: &scores.probabilities, threshold: candidate.threshold.value };
    let baseline = if acceptance.baseline {
        let (baseline, baseline_checks) = gate::compare_with_constant(acceptance, &labels, candidate_scored)?;
        checks.extend(baseline_checks);
        Some(baseline)
    } else {
        None
    };

    let production = match production {
        None => None,
        Some(Production { version, artifact: prod, data: prod_data }) => {
            if prod_data.len() != data.len() {
                return Err(Error::ProductionRowsDiffer {
                    version,
                    file: file.into(),
                    production: prod_data.len() as u64,
                    candidate: data.len() as u64,
                });
            }
            let prod_staging = prod_data.select(&rows);
            let prod_scores = prod.score(&prod_staging)?.probabilities;
            let prod_metrics = MetricSet::compute(&labels, &prod_scores, prod.threshold.value)?;
            let (differences, mcnemar, regression) = gate::compare_with_production(
                acceptance,
                &labels,
                candidate_scored,
                Scored { probabilities: &prod_scores, threshold: prod.threshold.value },
            )?;
            checks.extend(regression);
            Some(ProductionComparison {
                version,
                metrics: prod_metrics,
                differences,
                mcnemar,
                // Production's membership is judged on its own row keys: its schema (another set
                // of columns, or an id) decides which rows it held out.
                overlap_warning: overlap(prod, &prod_staging),
                curves: Some(Curves {
                    roc: thin(&roc_curve(&labels, &prod_scores)?, 101),
                    precision_recall: thin(&precision_recall_curve(&labels, &prod_scores)?, 101),
                }),
                origin: prod.origin.clone(),
            })
        }
    };
    Ok(AcceptanceRecord {
        schema_version: RECORD_SCHEMA_VERSION,
        model: candidate.name.clone(),
        artifact_sha256: candidate.checksum(),
        version: None,
        passed: checks.iter().all(|c| c.passed),
        checks,
        rule: acceptance.rule(),
        staging: StagingSummary {
            source: match candidate.staging {
                StagingSpec::File { .. } => StagingSource::File,
                StagingSpec::Holdout { .. } => StagingSource::Holdout,
            },
            file: file.to_string(),
            data_sha256: data.report.sha256.clone(),
            rows: labels.len() as u64,
            positives: positives as u64,
        },
        candidate: metrics,
        production,
        baseline,
        curves: Curves {
            roc: thin(&roc_curve(&labels, &scores.probabilities)?, 101),
            precision_recall: thin(&precision_recall_curve(&labels, &scores.probabilities)?, 101),
        },
        unseen_levels: scores.unseen_levels,
        drift: candidate.reference.compare(&staging, &config.monitor.drift),
        lineage: candidate.lineage.clone(),
        origin: candidate.origin.clone(),
        calibration: calibration(&labels, &scores.probabilities)?,
        scores: Some(ScoreDistribution::of(&scores.probabilities, candidate.threshold.value)),
        label: Some(LabelWords::of(&candidate.schema)),
    })
}

/// Staging rows that production's own split may have trained on (when it was built with
/// another staging rule, or with a separate staging file).
fn overlap(production: &Artifact, staging: &Dataset) -> Option<String> {
    let (fraction, salt) = match &production.staging {
        StagingSpec::Holdout { keys, .. } if *keys != KeyScheme::CURRENT => {
            return Some(format!(
                "production chose its staging rows by the {} row keys of an earlier mlgate, which this version no \
                 longer computes: whether it trained on these staging rows cannot be told (rebuild it with this \
                 version to know)",
                scheme_name(*keys)
            ))
        }
        StagingSpec::Holdout { fraction, salt, .. } => (*fraction, salt.as_str()),
        StagingSpec::File { path } => {
            return Some(format!(
                "production was validated on a separate file ({path}); it may have trained on these staging rows"
            ))
        }
    };
    let exposed = staging.row_keys.iter().filter(|&&k| !StagingSpec::is_staging(fraction, salt, k)).count();
    (exposed > 0).then(|| {
        format!(
            "{exposed} of the {} staging rows fall outside production's own staging rule: production may have \
             trained on them, which flatters it in this comparison",
            staging.len()
        )
    })
}
