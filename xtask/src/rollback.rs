//! `cargo xtask rollback`: put the previous production model (or a given version) back.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use xshell::Shell;

use crate::context::{actor, load_config, registry};

#[derive(clap::Args)]
pub struct Args {
    /// Pipeline configuration (TOML).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Registry folder (default: the configuration's `[registry] path`).
    #[arg(long)]
    registry: Option<PathBuf>,
    /// The version to put in production (default: the previous production).
    #[arg(long)]
    to: Option<String>,
    /// Why (recorded in the history).
    #[arg(long, default_value = "manual rollback")]
    reason: String,
}

pub fn run(sh: &Shell, args: Args) -> Result<ExitCode> {
    let config_path = crate::config_path(args.config);
    let config = load_config(&config_path)?;
    let registry = registry(args.registry, &config, &config_path);
    let (from, to) = registry.rollback(args.to.as_deref(), &args.reason, &actor(sh)).context("rollback refused")?;
    println!("rolled back production from {from} to {to}");
    Ok(ExitCode::SUCCESS)
}
