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
    /// Roll back to a `--to` version whose verdict failed and that was never in production, or
    /// that is marked breached (the --reason is recorded, as forced).
    #[arg(long, requires = "to")]
    force: bool,
    /// Mark the version rolled back from as breached, as an automatic rollback does: `staging`
    /// leaves it, and deploying it again needs --force --reason. Off by default: a person's
    /// rollback is not evidence against the model.
    #[arg(long)]
    mark_breached: bool,
}

/// Runs `mlgate rollback`.
pub fn run(sh: &Shell, args: Args) -> Result<ExitCode> {
    let (_, mut registry) = args.pipeline.open()?;
    let who = actor(sh);
    let force = args.force.then_some(args.reason.as_str());
    let (from, to) = registry.transact(&who, |registry| {
        let to = args.to.as_deref();
        let done = if args.mark_breached {
            registry.rollback_breached(to, &args.reason, force, &who)
        } else {
            registry.rollback(to, &args.reason, force, &who)
        };
        done.map_err(|e| registry_failure(e, "rollback"))
    })?;
    println!("rolled back production from {from} to {to}");
    if args.mark_breached {
        println!("{from} is marked breached: staging no longer points at it, and deploying it needs --force --reason");
    }
    Ok(ExitCode::SUCCESS)
}
