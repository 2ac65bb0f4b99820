//! `cargo xtask acceptance`: evaluate a candidate on staging data, gate it on thresholds and
//! against production, write metrics.json and report.md, and register it as `staging`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use model::compare::Scored;
use model::gate::{self, AcceptanceRecord, Curves, ProductionComparison, StagingSummary};
use model::metrics::{precision_recall_curve, roc_curve, thin, MetricSet};
use model::registry::{VerdictRecord, PRODUCTION};
use model::staging::StagingSpec;
use model::{Artifact, Dataset, LabelPolicy, PipelineConfig};
use xshell::Shell;

use crate::context::{actor, data_path, load_config, load_data, now_rfc3339, registry, relative_to_config};
use crate::output;

#[derive(clap::Args)]
pub struct Args {
    /// Pipeline configuration (TOML): its `[acceptance]` section is the gate.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// The candidate artifact.
    #[arg(long, default_value = "target/model/model.json")]
    pub model: PathBuf,
    /// The file staging rows come from (default: the artifact's staging source).
    #[arg(long, value_parser = crate::context::path_or_empty)]
    pub data: Option<PathBuf>,
    /// Registry folder (default: the configuration's `[registry] path`).
    #[arg(long)]
    pub registry: Option<PathBuf>,
    /// Folder for metrics.json and report.md.
    #[arg(long, default_value = "target/acceptance")]
    pub out: PathBuf,
    /// Exit 0 when a gate fails (the verdict is still in metrics.json and the registry): for a
    /// workflow that reports before it fails.
    #[arg(long)]
    pub allow_failure: bool,
}

/// The exit code of a failed gate.
pub const EXIT_GATE_FAILED: u8 = 1;

/// The staging rows of `artifact`, read with `schema` from `file`: every row of a separate
/// staging file, or the rows of a training file that the artifact's hold-out rule sets aside.
pub fn staging_rows(artifact: &Artifact, data: &Dataset) -> Vec<usize> {
    match &artifact.staging {
        StagingSpec::File { .. } => (0..data.len()).collect(),
        StagingSpec::Holdout { fraction, salt, .. } => {
            (0..data.len()).filter(|&i| StagingSpec::is_staging(*fraction, salt, data.row_keys[i])).collect()
        }
    }
}

fn staging_file(
    args_data: Option<PathBuf>,
    artifact: &Artifact,
    config: &PipelineConfig,
    config_path: &Path,
) -> PathBuf {
    if let Some(d) = args_data.filter(|d| !d.as_os_str().is_empty()) {
        return d;
    }
    match &artifact.staging {
        StagingSpec::File { path } => relative_to_config(Path::new(path), config_path),
        StagingSpec::Holdout { .. } => data_path(None, config, config_path),
    }
}

pub fn run(sh: &Shell, args: Args) -> Result<ExitCode> {
    let config_path = crate::config_path(args.config);
    let config = load_config(&config_path)?;
    let model_bytes = std::fs::read(&args.model).with_context(|| format!("cannot read {}", args.model.display()))?;
    let candidate = Artifact::from_bytes(&model_bytes, &args.model).context("cannot load the candidate")?;
    let registry = registry(args.registry, &config, &config_path);

    let file = staging_file(args.data, &candidate, &config, &config_path);
    let data = load_data(&file, &candidate.schema, LabelPolicy::Required, Some(&args.out))?;
    let rows = staging_rows(&candidate, &data);
    let staging = data.select(&rows);
    let labels = staging.require_labels()?.to_vec();
    let positives = labels.iter().filter(|&&y| y).count();
    if positives == 0 || positives == labels.len() {
        bail!(
            "{}: the {} staging rows hold a single class; acceptance needs both (is this the right file?)",
            file.display(),
            labels.len()
        );
    }
    let scores = candidate.score(&staging).context("cannot score the staging rows")?;
    let metrics = MetricSet::compute(&labels, &scores.probabilities, candidate.threshold.value)?;
    let mut checks = gate::threshold_checks("threshold", &config.acceptance.min, &config.acceptance.max, &metrics);

    let production = match registry.alias(PRODUCTION)? {
        None => None,
        Some(version) => {
            let prod = registry.artifact(&version).with_context(|| format!("cannot load production {version}"))?;
            // Production may declare other columns: read the same file with its schema and take
            // the same rows.
            let prod_data = load_data(&file, &prod.schema, LabelPolicy::Required, None)
                .with_context(|| format!("production {version} cannot read the staging data"))?;
            if prod_data.len() != data.len() {
                bail!(
                    "production {version} reads {} rows of {}, the candidate {}",
                    prod_data.len(),
                    file.display(),
                    data.len()
                );
            }
            let prod_scores = prod.score(&prod_data.select(&rows))?.probabilities;
            let prod_metrics = MetricSet::compute(&labels, &prod_scores, prod.threshold.value)?;
            let (differences, mcnemar, regression) = gate::compare_with_production(
                &config.acceptance,
                &labels,
                Scored { probabilities: &scores.probabilities, threshold: candidate.threshold.value },
                Scored { probabilities: &prod_scores, threshold: prod.threshold.value },
            )?;
            checks.extend(regression);
            Some(ProductionComparison {
                version,
                metrics: prod_metrics,
                differences,
                mcnemar,
                overlap_warning: overlap(&prod, &staging),
            })
        }
    };
    let passed = checks.iter().all(|c| c.passed);
    let artifact_sha256 = candidate.checksum();
    let mut record = AcceptanceRecord {
        schema_version: 1,
        model: candidate.name.clone(),
        artifact_sha256: artifact_sha256.clone(),
        version: None,
        passed,
        checks,
        rule: config.acceptance.rule(),
        staging: StagingSummary {
            source: match candidate.staging {
                StagingSpec::File { .. } => "file".into(),
                StagingSpec::Holdout { .. } => "holdout".into(),
            },
            file: file.display().to_string(),
            data_sha256: data.report.sha256.clone(),
            rows: labels.len() as u64,
            positives: positives as u64,
        },
        candidate: metrics,
        production,
        curves: Curves {
            roc: thin(&roc_curve(&labels, &scores.probabilities)?, 101),
            precision_recall: thin(&precision_recall_curve(&labels, &scores.probabilities)?, 101),
        },
        unseen_levels: scores.unseen_levels,
        drift: candidate.reference.compare(&staging, &config.monitor.drift),
        lineage: candidate.lineage.clone(),
    };
    let verdict = VerdictRecord {
        passed,
        artifact_sha256,
        failed: record.checks.iter().filter(|c| !c.passed).map(|c| c.description.clone()).collect(),
        decided_at: now_rfc3339(),
    };
    let version = registry
        .register(
            &model_bytes,
            &verdict,
            |version| {
                record.version = Some(version.to_string());
                vec![
                    ("metrics.json".into(), json_bytes(&record)),
                    ("report.md".into(), model::report::acceptance_markdown(&record).into_bytes()),
                ]
            },
            &actor(sh),
        )
        .with_context(|| format!("cannot register the candidate in {}", registry.root().display()))?;
    record.version = Some(version.clone());
    output::write(&args.out.join("metrics.json"), &json_bytes(&record))?;
    let report = model::report::acceptance_markdown(&record);
    output::write(&args.out.join("report.md"), report.as_bytes())?;

    let m = &record.candidate;
    println!("candidate {} registered as {version} (staging) in {}", record.model, registry.root().display());
    println!(
        "staging    {} rows from {}: roc_auc {:.4}  f1 {:.4}  accuracy {:.4}  precision {:.4}  recall {:.4}",
        record.staging.rows, record.staging.file, m.roc_auc, m.f1, m.accuracy, m.precision, m.recall
    );
    if let Some(p) = &record.production {
        println!("production {} on the same rows: roc_auc {:.4}  f1 {:.4}", p.version, p.metrics.roc_auc, p.metrics.f1);
    }
    println!("report     {}", args.out.join("report.md").display());
    if passed {
        println!("verdict    passed ({} checks)", record.checks.len());
        Ok(ExitCode::SUCCESS)
    } else {
        println!("verdict    FAILED");
        for c in record.checks.iter().filter(|c| !c.passed) {
            println!("  failed: {} (measured {:.4})", c.description, c.value);
        }
        Ok(ExitCode::from(if args.allow_failure { 0 } else { EXIT_GATE_FAILED }))
    }
}

fn json_bytes<T: serde::Serialize>(value: &T) -> Vec<u8> {
    let mut v = serde_json::to_vec_pretty(value).expect("reports serialise");
    v.push(b'\n');
    v
}

/// Staging rows that production's own split may have trained on (when it was built with
/// another staging rule, or with a separate staging file).
fn overlap(production: &Artifact, staging: &Dataset) -> Option<String> {
    let (fraction, salt) = match &production.staging {
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
