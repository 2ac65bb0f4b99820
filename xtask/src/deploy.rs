//! `cargo xtask deploy`: promote the staged candidate to production when its verdict passed.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use xshell::Shell;

use crate::context::{actor, load_config, registry};

#[derive(clap::Args)]
pub struct Args {
    /// Pipeline configuration (TOML).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Registry folder (default: the configuration's `[registry] path`).
    #[arg(long)]
    pub registry: Option<PathBuf>,
    /// Deploy even though the verdict failed (needs --reason; recorded in the history).
    #[arg(long, requires = "reason")]
    pub force: bool,
    /// Why (recorded in the history).
    #[arg(long)]
    pub reason: Option<String>,
}

pub fn run(sh: &Shell, args: Args) -> Result<ExitCode> {
    let config_path = crate::config_path(args.config);
    let config = load_config(&config_path)?;
    let registry = registry(args.registry, &config, &config_path);
    if args.force && args.reason.as_deref().is_none_or(|r| r.trim().is_empty()) {
        bail!("--force needs a --reason that says why");
    }
    let force = if args.force { args.reason.as_deref() } else { None };
    let promotion = registry.promote(force, &actor(sh)).context("deploy refused")?;
    if !promotion.changed {
        println!("{} is already in production; nothing to deploy", promotion.deployed);
    } else {
        match &promotion.replaced {
            Some(old) => println!("deployed {} to production (replaced {old})", promotion.deployed),
            None => println!("deployed {} to production (first production model)", promotion.deployed),
        }
    }
    Ok(ExitCode::SUCCESS)
}
