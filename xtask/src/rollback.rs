//! `cargo xtask rollback`: put the previous production model (or a given version) back.

use std::process::ExitCode;

use anyhow::{Context, Result};
use xshell::Shell;

use crate::context::{actor, RegistryArgs};

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
}

pub fn run(sh: &Shell, args: Args) -> Result<ExitCode> {
    let (_, registry) = args.pipeline.open()?;
    let (from, to) = registry.rollback(args.to.as_deref(), &args.reason, &actor(sh)).context("rollback refused")?;
    println!("rolled back production from {from} to {to}");
    Ok(ExitCode::SUCCESS)
}
