//! `mlgate registry`: show the registry — aliases, versions with their verdicts, history —
//! and check its consistency.

use std::process::ExitCode;

use anyhow::Result;
use xshell::Shell;

use crate::cli::context::RegistryArgs;
use crate::exit::Exit;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    pipeline: RegistryArgs,
    /// Only check consistency; exit 1 when a problem is found.
    #[arg(long)]
    check: bool,
    /// Print aliases, versions and history as one JSON document.
    #[arg(long, conflicts_with = "check")]
    json: bool,
}

pub fn run(_sh: &Shell, args: Args) -> Result<ExitCode> {
    let (_, registry) = args.pipeline.open()?;
    let location = registry.location().to_string();
    let problems = registry.check()?;
    if args.check {
        if problems.is_empty() {
            println!("{location}: consistent");
            return Ok(ExitCode::SUCCESS);
        }
        for p in &problems {
            println!("problem: {p}");
        }
        eprintln!("{location}: {} problem(s)", problems.len());
        return Ok(Exit::Refused.into());
    }
    let state = registry.state()?;
    if args.json {
        let versions: Vec<serde_json::Value> = registry
            .versions()?
            .into_iter()
            .map(|v| match registry.verdict(&v) {
                Ok(r) => serde_json::json!({
                    "version": v, "passed": r.passed, "artifact_sha256": r.artifact_sha256,
                    "decided_at": r.decided_at, "failed": r.failed,
                }),
                Err(e) => serde_json::json!({"version": v, "error": e.to_string()}),
            })
            .collect();
        let document = serde_json::json!({
            "registry": location,
            "aliases": state.aliases,
            "versions": versions,
            "history": registry.history()?,
            "problems": problems,
        });
        println!("{}", serde_json::to_string_pretty(&document)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!("registry {location}");
    for (alias, v) in &state.aliases {
        println!("  {alias:<10} → {v}");
    }
    println!("versions:");
    for v in registry.versions()? {
        match registry.verdict(&v) {
            Ok(r) => println!(
                "  {v:<5} {}  sha256 {}  {}",
                if r.passed { "passed" } else { "FAILED" },
                &r.artifact_sha256[..12],
                r.decided_at
            ),
            Err(e) => println!("  {v:<5} unreadable verdict: {e}"),
        }
    }
    println!("history:");
    for e in registry.history()? {
        println!(
            "  {:>3} {} {:<9} {} → {}  by {}{}{}: {}",
            e.seq,
            e.actor.when,
            e.action,
            e.from.as_deref().unwrap_or("-"),
            e.to.as_deref().unwrap_or("-"),
            e.actor.who,
            e.actor.commit.as_deref().map(|c| format!(" at {}", &c[..c.len().min(12)])).unwrap_or_default(),
            if e.forced { " (forced)" } else { "" },
            e.reason
        );
    }
    for p in &problems {
        println!("problem: {p}");
    }
    Ok(ExitCode::SUCCESS)
}
