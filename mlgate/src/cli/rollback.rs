//! `mlgate rollback`: put the previous production model (or a given version) back.

use std::process::ExitCode;

use anyhow::Result;
use xshell::Shell;

use crate::cli::context::{actor, registry_failure, RegistryArgs};

/// The flags of `mlgate rollback`.
#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    pipeline: RegistryArgs,
    /// The version to put in production (default: the previous production).
    #[arg(long)]
    to: Option<String>,
    /// Why (recorded in the history).
    #[arg(long, default_value = "manual rollback")]
    reason: String,
    /// Roll back to a `--to` version whose verdict failed and that was never in production
    /// (the --reason is recorded, as forced).
    #[arg(long, requires = "to")]
    force: bool,
}

/// Runs `mlgate rollback`.
pub fn run(sh: &Shell, args: Args) -> Result<ExitCode> {
    let (_, mut registry) = args.pipeline.open()?;
    let who = actor(sh);
    let force = args.force.then_some(args.reason.as_str());
    let (from, to) = registry.transact(&who, |registry| {
        registry.rollback(args.to.as_deref(), &args.reason, force, &who).map_err(|e| registry_failure(e, "rollback"))
    })?;
    println!("rolled back production from {from} to {to}");
    Ok(ExitCode::SUCCESS)
}
