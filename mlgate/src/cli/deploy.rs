//! `mlgate deploy`: promote the staged candidate to production when its verdict passed.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use xshell::Shell;

use crate::cli::context::{actor, registry_failure, RegistryArgs};
use crate::output;
use crate::store::Location;

/// The flags of `mlgate deploy`.
#[derive(clap::Args)]
pub struct Args {
    /// `--config` and `--registry`.
    #[command(flatten)]
    pub pipeline: RegistryArgs,
    /// The version to deploy (default: `staging`, the last candidate that passed; a version
    /// marked breached is refused without --force --reason).
    #[arg(long)]
    pub version: Option<String>,
    /// Deploy even though the verdict failed or the version is marked breached (rolled back on
    /// evidence); needs --reason; recorded in the history as forced.
    #[arg(long, requires = "reason")]
    pub force: bool,
    /// Why (recorded in the history).
    #[arg(long)]
    pub reason: Option<String>,
    /// Deploy only when the GitHub event is a push to the repository's default branch (skip,
    /// with exit 0, otherwise): what the GitHub Action uses.
    #[arg(long)]
    pub on_default_branch_push: bool,
}

/// Why a deploy must not happen for this GitHub event, if it must not.
pub(crate) fn not_a_default_branch_push() -> Result<Option<String>> {
    let event = std::env::var("GITHUB_EVENT_NAME").unwrap_or_default();
    if event != "push" {
        return Ok(Some(format!("the event is {event:?}, not a push")));
    }
    let git_ref = std::env::var("GITHUB_REF").unwrap_or_default();
    let payload = crate::github::event_payload()?.context("GITHUB_EVENT_PATH is not set")?;
    let default =
        payload["repository"]["default_branch"].as_str().context("the push payload names no default branch")?;
    if git_ref != format!("refs/heads/{default}") {
        return Ok(Some(format!("{git_ref} is not the default branch {default}")));
    }
    Ok(None)
}

/// On GitHub Actions, a warning when production goes to a folder inside the job's workspace:
/// the folder goes with the runner, and the next job finds no production to compare with.
fn ephemeral_registry_warning(location: &Location) -> Option<String> {
    let folder = location.folder()?;
    if !output::on_github_actions() {
        return None;
    }
    let workspace = std::env::var_os("GITHUB_WORKSPACE")?;
    let full =
        |p: &Path| std::fs::canonicalize(p).or_else(|_| std::path::absolute(p)).unwrap_or_else(|_| p.to_path_buf());
    if !full(folder).starts_with(full(Path::new(&workspace))) {
        return None;
    }
    Some(format!(
        "the registry {} is a folder in this job's workspace: it is gone when the job ends, and the next job \
         will find no production model to compare with. Use a registry that outlives the job: \
         git+origin#mlgate-registry (with `permissions: contents: write`) or s3://BUCKET/PREFIX",
        folder.display()
    ))
}

/// Runs `mlgate deploy`.
pub fn run(sh: &Shell, args: Args) -> Result<ExitCode> {
    let (_, mut registry) = args.pipeline.open()?;
    if let Some(warning) = ephemeral_registry_warning(registry.location()) {
        eprintln!("warning: {warning}");
        println!("::warning title=mlgate deploy::{}", output::escape_data(&warning));
    }
    if args.force && args.reason.as_deref().is_none_or(|r| r.trim().is_empty()) {
        bail!("--force needs a --reason that says why");
    }
    if args.on_default_branch_push {
        if let Some(why) = not_a_default_branch_push()? {
            println!("deploy skipped: {why}");
            return Ok(ExitCode::SUCCESS);
        }
    }
    let force = if args.force { args.reason.as_deref() } else { None };
    let who = actor(sh);
    let promotion = registry.transact(&who, |registry| {
        registry.promote(args.version.as_deref(), force, &who).map_err(|e| registry_failure(e, "deploy"))
    })?;
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
