//! `mlgate acceptance`: evaluate a candidate on staging data, gate it on thresholds and
//! against production, write metrics.json and report.md, and register it as `staging`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use model::lifecycle::acceptance::{self, Production};
use model::lifecycle::registry::{VerdictRecord, PRODUCTION};
use model::pipeline::staging::StagingSpec;
use model::{Artifact, LabelPolicy, PipelineConfig};
use xshell::Shell;

use crate::cli::context::{actor, data_path, load_config, load_data, registry, relative_to_config};
use crate::clock::now_rfc3339;
use crate::exit::Exit;
use crate::output;

/// The flags of `mlgate acceptance`.
#[derive(clap::Args)]
pub struct Args {
    /// Pipeline configuration (TOML): its `[acceptance]` section is the gate.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// The candidate artifact.
    #[arg(long, default_value = "target/model/model.json")]
    pub model: PathBuf,
    /// The file staging rows come from (default: the artifact's staging source).
    #[arg(long, value_parser = crate::cli::context::path_or_empty)]
    pub data: Option<PathBuf>,
    /// Registry: a folder, or git+URL#BRANCH (default: the configuration's `[registry] path`).
    #[arg(long)]
    pub registry: Option<String>,
    /// Folder for metrics.json and report.md.
    #[arg(long, default_value = "target/acceptance")]
    pub out: PathBuf,
    /// Register the candidate: always; never (only judge and report); or auto, which is never
    /// on a pull request (`GITHUB_EVENT_NAME`) — a pull request only reads the registry — and
    /// always otherwise.
    #[arg(long, value_enum, default_value_t = Register::Always)]
    pub register: Register,
    /// Fail (exit 2) when no production model can be read, instead of judging on thresholds
    /// alone: a mistyped registry then stops the pipeline.
    #[arg(long, num_args = 0..=1, default_value_t = false, default_missing_value = "true", action = clap::ArgAction::Set)]
    pub require_production: bool,
    /// Exit 0 when a gate fails (the verdict is still in metrics.json and the registry): for a
    /// workflow that reports before it fails.
    #[arg(long)]
    pub allow_failure: bool,
}

/// When acceptance registers the candidate.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Register {
    /// Every run.
    Always,
    /// No run: judge and report only.
    Never,
    /// Not on a pull request, every other run.
    Auto,
}

impl Register {
    fn now(self) -> bool {
        match self {
            Register::Always => true,
            Register::Never => false,
            Register::Auto => {
                !matches!(std::env::var("GITHUB_EVENT_NAME").as_deref(), Ok("pull_request" | "pull_request_target"))
            }
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
        // The file the model was built from, as its build named it; the configuration's data
        // when that is gone (a build in another folder).
        StagingSpec::Holdout { .. } => Some(PathBuf::from(&artifact.lineage.data_file))
            .filter(|p| p.is_file() || crate::store::fetch::is_object(&p.to_string_lossy()))
            .unwrap_or_else(|| data_path(None, config, config_path)),
    }
}

/// Runs `mlgate acceptance`.
pub fn run(sh: &Shell, args: Args) -> Result<ExitCode> {
    let config_path = crate::cli::config_path(args.config);
    let config = load_config(&config_path)?;
    let model_bytes = std::fs::read(&args.model).with_context(|| format!("cannot read {}", args.model.display()))?;
    let candidate = Artifact::from_bytes(&model_bytes, &args.model).context("cannot load the candidate")?;
    let mut registry = registry(args.registry, &config, &config_path)?;
    let location = registry.location().to_string();

    let file = staging_file(args.data, &candidate, &config, &config_path);
    let data = load_data(&file, config.data.format, &candidate.schema, LabelPolicy::Required, Some(&args.out))?;
    let file_name = file.display().to_string();
    let who = actor(sh);
    let register = args.register.now();
    // Production is read, the candidate judged against it and registered in one transaction:
    // when another job changed the registry first, all of it is done again on the new state.
    let (mut record, version) = registry.transact(&who, |registry| {
        let production = match registry.alias(PRODUCTION)? {
            None if args.require_production => {
                bail!("--require-production: no model is in production in {location} (is the registry right?)")
            }
            None => None,
            Some(version) => {
                let prod = registry.artifact(&version).with_context(|| format!("cannot load production {version}"))?;
                // Production may declare other columns: read the same file with its schema.
                let prod_data = load_data(&file, config.data.format, &prod.schema, LabelPolicy::Required, None)
                    .with_context(|| format!("production {version} cannot read the staging data"))?;
                Some((version, prod, prod_data))
            }
        };
        let production = production.as_ref().map(|(version, artifact, data)| Production {
            version: version.clone(),
            artifact,
            data,
        });
        let mut record = acceptance::judge(&config, &candidate, &data, &file_name, production)
            .context("cannot judge the candidate on its staging rows")?;
        if !register {
            return Ok((record, None));
        }
        let verdict = VerdictRecord {
            passed: record.passed,
            artifact_sha256: record.artifact_sha256.clone(),
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
                        ("report.md".into(), model::render::report::acceptance_markdown(&record).into_bytes()),
                    ]
                },
                &who,
            )
            .with_context(|| format!("cannot register the candidate in {location}"))?;
        Ok((record, Some(version)))
    })?;
    let passed = record.passed;
    record.version = version.clone();
    let report = model::render::report::acceptance_markdown(&record);
    let written = output::write(&args.out.join("metrics.json"), &json_bytes(&record))
        .and_then(|()| output::write(&args.out.join("report.md"), report.as_bytes()));
    match &version {
        Some(version) => written.with_context(|| {
            format!(
                "the candidate IS registered as {version} (verdict {}) in {}, with its metrics.json and \
                 report.md in the registry; only the copies in {} are missing",
                if passed { "passed" } else { "failed" },
                location,
                args.out.display()
            )
        })?,
        None => written?,
    }

    let m = &record.candidate;
    match &version {
        Some(version) => {
            let alias = if passed { " (staging)" } else { " (failed: staging unchanged)" };
            println!("candidate {} registered as {version}{alias} in {location}", record.model);
        }
        None => println!("candidate {} judged, not registered: {location} was only read", record.model),
    }
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
        Ok(if args.allow_failure { Exit::Success } else { Exit::Refused }.into())
    }
}

fn json_bytes<T: serde::Serialize>(value: &T) -> Vec<u8> {
    let mut v = serde_json::to_vec_pretty(value).expect("reports serialise");
    v.push(b'\n');
    v
}
