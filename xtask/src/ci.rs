//! `cargo xtask ci`: the whole local flow in order — test, build, acceptance, and deploy when
//! asked — exactly what the GitHub Action runs, so that CI can be reproduced on a laptop.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use xshell::Shell;

use mlgate::cli::context::{DataArgs, RegistryArgs};
use mlgate::cli::{acceptance, build, deploy};

use crate::test;

#[derive(clap::Args)]
pub struct Args {
    /// `--config`, and `--data`: the training CSV (staging rows are drawn from it too).
    #[command(flatten)]
    input: DataArgs,
    /// Registry: a folder, or git+URL#BRANCH (default: the configuration's `[registry] path`).
    #[arg(long)]
    registry: Option<String>,
    /// Folder for the model (OUT/model) and the acceptance report (OUT/acceptance).
    #[arg(long, default_value = "target/ci")]
    out: PathBuf,
    /// Promote the candidate to production when it passes.
    #[arg(long)]
    deploy: bool,
    /// Skip `cargo xtask test` (for a repository that only brings data and a configuration).
    #[arg(long)]
    skip_tests: bool,
}

pub fn run(sh: &Shell, args: Args) -> Result<ExitCode> {
    let start = sh.current_dir();
    if !args.skip_tests {
        eprintln!("==> ci: test");
        test::run(sh, test::Args {})?;
        sh.change_dir(&start);
    }
    eprintln!("==> ci: build");
    let model_dir = args.out.join("model");
    let code = build::run(sh, build::Args { input: args.input.clone(), out: model_dir.clone() })?;
    if code != ExitCode::SUCCESS {
        return Ok(code);
    }
    eprintln!("==> ci: acceptance");
    let code = acceptance::run(
        sh,
        acceptance::Args {
            config: args.input.config.clone(),
            model: model_dir.join("model.json"),
            // The same file as build: a hold-out staging rule finds its rows there.
            data: args.input.data.clone(),
            registry: args.registry.clone(),
            out: args.out.join("acceptance"),
            allow_failure: false,
            require_production: false,
            register: acceptance::Register::Always,
        },
    )?;
    if code != ExitCode::SUCCESS || !args.deploy {
        return Ok(code);
    }
    eprintln!("==> ci: deploy");
    deploy::run(
        sh,
        deploy::Args {
            pipeline: RegistryArgs { config: args.input.config, registry: args.registry },
            version: None,
            force: false,
            reason: None,
            on_default_branch_push: false,
        },
    )
}
