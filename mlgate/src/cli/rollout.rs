//! `mlgate rollout`: release a candidate beside production step by step — start a canary or a
//! shadow, promote it, abort it, show where it stands. `serve` follows the rollout the registry
//! records; `monitor --live --rollout` judges and moves it.

use std::process::ExitCode;

use anyhow::{Context, Result};
use xshell::Shell;

use model::lifecycle::registry::PRODUCTION;
use model::lifecycle::rollout::{Rollout, RolloutMode, RolloutStep};
use model::pipeline::rollout::{format_duration, RolloutConfig};

use crate::cli::context::{actor, registry_failure, RegistryArgs};

/// The flags of `mlgate rollout`.
#[derive(clap::Args)]
pub struct Args {
    /// What to do with the rollout.
    #[command(subcommand)]
    pub command: RolloutCommand,
}

/// `mlgate rollout`'s subcommands.
#[derive(clap::Subcommand)]
pub enum RolloutCommand {
    /// Open a rollout of a candidate (default: staging) beside production, at its first step.
    Start(StartArgs),
    /// Put the rollout's candidate in production now, closing the rollout.
    Promote(PromoteArgs),
    /// Close the rollout, production unchanged, the candidate marked breached.
    Abort(AbortArgs),
    /// Show the open rollout: candidate, baseline, mode, weight, step, since when, next step.
    Status(StatusArgs),
}

/// The flags of `mlgate rollout start`.
#[derive(clap::Args)]
pub struct StartArgs {
    /// `--config` and `--registry`.
    #[command(flatten)]
    pub pipeline: RegistryArgs,
    /// A shadow: every record scored by both, always answered by production (the configured
    /// steps' pauses, no weight).
    #[arg(long, conflicts_with = "canary")]
    pub shadow: bool,
    /// A canary whose first step sends PERCENT of the records to the candidate (the configured
    /// steps with a higher weight follow).
    #[arg(long, value_name = "PERCENT", value_parser = clap::value_parser!(u32).range(1..=99))]
    pub canary: Option<u32>,
    /// The candidate (default: `staging`, the last candidate that passed).
    #[arg(long, value_name = "vN")]
    pub version: Option<String>,
    /// Why (recorded in the history).
    #[arg(long)]
    pub reason: Option<String>,
    /// Start only when the GitHub event is a push to the repository's default branch (skip,
    /// with exit 0, otherwise): what the GitHub Action's `mode: rollout` uses.
    #[arg(long)]
    pub on_default_branch_push: bool,
    /// When nothing is in production yet, deploy the candidate instead (a first model has no
    /// baseline to be compared with): what the GitHub Action's `mode: rollout` uses.
    #[arg(long)]
    pub deploy_first: bool,
}

/// The flags of `mlgate rollout promote`.
#[derive(clap::Args)]
pub struct PromoteArgs {
    /// `--config` and `--registry`.
    #[command(flatten)]
    pub pipeline: RegistryArgs,
    /// Why (recorded in the history).
    #[arg(long, default_value = "promoted by hand")]
    pub reason: String,
}

/// The flags of `mlgate rollout abort`.
#[derive(clap::Args)]
pub struct AbortArgs {
    /// `--config` and `--registry`.
    #[command(flatten)]
    pub pipeline: RegistryArgs,
    /// Why (recorded in the history and in the candidate's breach mark).
    #[arg(long)]
    pub reason: String,
}

/// The flags of `mlgate rollout status`.
#[derive(clap::Args)]
pub struct StatusArgs {
    /// `--config` and `--registry`.
    #[command(flatten)]
    pub pipeline: RegistryArgs,
    /// Print the rollout as JSON (`{"rollout": null}` when none is open).
    #[arg(long)]
    pub json: bool,
}

/// Runs `mlgate rollout`.
pub fn run(sh: &Shell, args: Args) -> Result<ExitCode> {
    match args.command {
        RolloutCommand::Start(args) => start(sh, args),
        RolloutCommand::Promote(args) => promote(sh, args),
        RolloutCommand::Abort(args) => abort(sh, args),
        RolloutCommand::Status(args) => status(args),
    }
}

/// The mode and steps of a rollout: the configuration's, changed by `--shadow` or `--canary`.
pub fn plan(config: &RolloutConfig, shadow: bool, canary: Option<u32>) -> Result<(RolloutMode, Vec<RolloutStep>)> {
    let steps = config.steps().context("[rollout] steps")?;
    Ok(match (shadow, canary) {
        (true, _) => (RolloutMode::Shadow, steps.iter().map(|s| RolloutStep { weight: 0, ..*s }).collect()),
        (false, Some(percent)) => {
            let first = RolloutStep { weight: percent, pause_seconds: steps[0].pause_seconds };
            let later = steps.iter().filter(|s| config.mode == RolloutMode::Canary && s.weight > percent);
            (RolloutMode::Canary, std::iter::once(first).chain(later.copied()).collect())
        }
        (false, None) => (config.mode, steps),
    })
}

fn start(sh: &Shell, args: StartArgs) -> Result<ExitCode> {
    let (config, mut registry) = args.pipeline.open()?;
    if args.on_default_branch_push {
        if let Some(why) = crate::cli::deploy::not_a_default_branch_push()? {
            println!("rollout skipped: {why}");
            return Ok(ExitCode::SUCCESS);
        }
    }
    let (mode, steps) = plan(&config.rollout, args.shadow, args.canary)?;
    let who = actor(sh);
    let started = registry.transact(&who, |registry| {
        if args.deploy_first && registry.alias(PRODUCTION)?.is_none() {
            let promotion = registry.promote(args.version.as_deref(), None, &who);
            return promotion.map(Err).map_err(|e| registry_failure(e, "deploy"));
        }
        registry
            .start_rollout_because(args.version.as_deref(), mode, steps.clone(), args.reason.as_deref(), &who)
            .map(Ok)
            .map_err(|e| registry_failure(e, "rollout start"))
    })?;
    let rollout = match started {
        Ok(rollout) => rollout,
        Err(promotion) => {
            println!(
                "deployed {} to production (first production model: a rollout needs one to compare with)",
                promotion.deployed
            );
            return Ok(ExitCode::SUCCESS);
        }
    };
    println!("started a {}", rollout.describe());
    println!("steps: {}", steps_in_words(&rollout));
    Ok(ExitCode::SUCCESS)
}

fn promote(sh: &Shell, args: PromoteArgs) -> Result<ExitCode> {
    let (_, mut registry) = args.pipeline.open()?;
    let who = actor(sh);
    let promotion = registry.transact(&who, |registry| {
        registry.promote_rollout(&args.reason, &who).map_err(|e| registry_failure(e, "rollout promote"))
    })?;
    println!(
        "promoted {} to production (replaced {}); the rollout is closed",
        promotion.deployed,
        promotion.replaced.as_deref().unwrap_or("nothing")
    );
    Ok(ExitCode::SUCCESS)
}

fn abort(sh: &Shell, args: AbortArgs) -> Result<ExitCode> {
    if args.reason.trim().is_empty() {
        anyhow::bail!("--reason must say why the rollout is aborted");
    }
    let (_, mut registry) = args.pipeline.open()?;
    let who = actor(sh);
    let closed = registry.transact(&who, |registry| {
        registry.abort_rollout(&args.reason, true, &who).map_err(|e| registry_failure(e, "rollout abort"))
    })?;
    println!("aborted the {}; production stays {}", closed.describe(), closed.baseline);
    println!(
        "{} is marked breached: it is not rolled out again, and deploying it needs --force --reason",
        closed.candidate
    );
    Ok(ExitCode::SUCCESS)
}

fn status(args: StatusArgs) -> Result<ExitCode> {
    let (_, registry) = args.pipeline.open()?;
    let rollout = registry.state()?.rollout;
    if args.json {
        let document = match &rollout {
            Some(r) => serde_json::json!({
                "rollout": r,
                "step_of": r.steps.len(),
                "next_step_at": next_step_at(r),
                "next_weight": r.next().map(|s| s.weight),
            }),
            None => serde_json::json!({ "rollout": null }),
        };
        println!("{}", serde_json::to_string_pretty(&document)?);
        return Ok(ExitCode::SUCCESS);
    }
    let Some(r) = rollout else {
        println!("no rollout is open in {}", registry.location());
        return Ok(ExitCode::SUCCESS);
    };
    println!("rollout in {}", registry.location());
    println!("  candidate  {}", r.candidate);
    println!("  baseline   {} (production)", r.baseline);
    println!("  mode       {}", r.mode);
    if r.mode == RolloutMode::Canary {
        println!("  weight     {} % of the records to the candidate", r.weight);
    }
    println!("  step       {} of {}, since {}", r.step + 1, r.steps.len(), r.step_started);
    println!("  started    {} by {}", r.started.when, r.started.who);
    let at = next_step_at(&r)
        .unwrap_or_else(|| format!("{} after {}", format_duration(r.current().pause_seconds), r.step_started));
    match r.next() {
        Some(next) if r.mode == RolloutMode::Canary => {
            println!("  next       {} % once the analysis passes this step, not before {at}", next.weight)
        }
        Some(_) => println!("  next       step {} once the analysis passes this step, not before {at}", r.step + 2),
        None => println!("  next       promotion once the analysis passes this last step, not before {at}"),
    }
    println!("  steps      {}", steps_in_words(&r));
    Ok(ExitCode::SUCCESS)
}

/// When the current step's pause ends (RFC 3339), when its start reads as a time.
fn next_step_at(rollout: &Rollout) -> Option<String> {
    let started = humantime::parse_rfc3339_weak(&rollout.step_started).ok()?;
    let at = started + std::time::Duration::from_secs(rollout.current().pause_seconds);
    Some(humantime::format_rfc3339_seconds(at).to_string())
}

/// The steps in words, the current one marked: `[10 % for 5m] → 25 % for 10m → 50 % for 10m`.
fn steps_in_words(rollout: &Rollout) -> String {
    rollout
        .steps
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let step = match rollout.mode {
                RolloutMode::Canary => format!("{} % for {}", s.weight, format_duration(s.pause_seconds)),
                RolloutMode::Shadow => format!("shadow for {}", format_duration(s.pause_seconds)),
            };
            if i == rollout.step {
                format!("[{step}]")
            } else {
                step
            }
        })
        .collect::<Vec<_>>()
        .join(" → ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(mode: RolloutMode) -> RolloutConfig {
        RolloutConfig { mode, ..RolloutConfig::default() }
    }

    #[test]
    fn flags_change_the_configured_plan_as_documented() {
        let canary = config(RolloutMode::Canary);
        let (mode, steps) = plan(&canary, false, None).unwrap();
        assert_eq!((mode, steps.iter().map(|s| s.weight).collect::<Vec<_>>()), (RolloutMode::Canary, vec![10, 25, 50]));
        // --canary 30: the first step at 30 %, with the first pause; the higher steps follow.
        let (_, steps) = plan(&canary, false, Some(30)).unwrap();
        assert_eq!(
            steps,
            [RolloutStep { weight: 30, pause_seconds: 300 }, RolloutStep { weight: 50, pause_seconds: 600 }]
        );
        // --shadow: the pauses, no weight.
        let (mode, steps) = plan(&canary, true, None).unwrap();
        assert_eq!(mode, RolloutMode::Shadow);
        assert_eq!(
            steps.iter().map(|s| (s.weight, s.pause_seconds)).collect::<Vec<_>>(),
            [(0, 300), (0, 600), (0, 600)]
        );
        // A shadow configuration and --canary: one step.
        let (mode, steps) = plan(&config(RolloutMode::Shadow), false, Some(20)).unwrap();
        assert_eq!((mode, steps), (RolloutMode::Canary, vec![RolloutStep { weight: 20, pause_seconds: 1800 }]));
    }
}
