//! `mlgate registry`: show the registry — aliases, versions with their verdicts and breach
//! marks, history — and check its consistency.

use std::process::ExitCode;

use anyhow::Result;
use xshell::Shell;

use model::lifecycle::gate::AcceptanceRecord;
use model::lifecycle::registry::{Action, Registry};

use crate::cli::context::{actor, registry_failure, RegistryArgs};
use crate::exit::Exit;

/// The flags of `mlgate registry`.
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
    /// Remove old versions: all but the `--keep` newest, never production, staging or an
    /// earlier production (where a rollback goes).
    #[arg(long, requires = "keep", conflicts_with_all = ["check", "json"])]
    prune: bool,
    /// With --prune: how many of the newest versions to keep.
    #[arg(long, value_name = "N", requires = "prune", value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    keep: Option<u64>,
}

/// Runs `mlgate registry`.
pub fn run(sh: &Shell, args: Args) -> Result<ExitCode> {
    let (_, mut registry) = args.pipeline.open()?;
    if let Some(keep) = args.keep.filter(|_| args.prune) {
        let who = actor(sh);
        let keep = usize::try_from(keep).unwrap_or(usize::MAX);
        let removed = registry.transact(&who, |r| r.prune(keep, &who).map_err(|e| registry_failure(e, "prune")))?;
        if removed.is_empty() {
            println!(
                "nothing to prune in {}: every version is among the {keep} newest or still needed",
                registry.location()
            );
        } else {
            println!("pruned {} from {}", removed.join(", "), registry.location());
        }
        return Ok(ExitCode::SUCCESS);
    }
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
                    "decided_at": r.decided_at, "failed": r.failed, "acceptance": figures(&registry, &v),
                    "breached": state.breach_mark(&v),
                }),
                Err(e) => serde_json::json!({"version": v, "error": e.to_string()}),
            })
            .collect();
        let document = serde_json::json!({
            "registry": location,
            "aliases": state.aliases,
            "rollout": state.rollout,
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
    if let Some(r) = &state.rollout {
        println!("rollout: {}, step since {}, started by {}", r.describe(), r.step_started, r.started.who);
    }
    println!("versions:");
    for v in registry.versions()? {
        match registry.verdict(&v) {
            Ok(r) => println!(
                "  {v:<5} {}  sha256 {}  {}{}{}",
                if r.passed { "passed" } else { "FAILED" },
                &r.artifact_sha256[..12],
                r.decided_at,
                figures(&registry, &v)
                    .map(|f| format!(
                        "  roc_auc {:.4}  average_precision {:.4}  f1 {:.4}",
                        f.roc_auc, f.average_precision, f.f1
                    ))
                    .unwrap_or_default(),
                state.breach_mark(&v).map(|m| format!("  BREACHED ({})", m.describe())).unwrap_or_default()
            ),
            Err(e) => println!("  {v:<5} unreadable verdict: {e}"),
        }
    }
    println!("history:");
    for e in registry.history()? {
        // A registration is about the version registered; `from` and `to` are the staging
        // alias around it, which a failed candidate leaves where it was.
        let about = match (e.action, &e.version) {
            (Action::Register, Some(v)) => format!("{v} (staging {} → {})", or_dash(&e.from), or_dash(&e.to)),
            (Action::Monitor, _) => or_dash(&e.to).to_string(),
            (action, _) if e.rollout.is_some() && action != Action::RolloutPromote => {
                format!("{} beside {}", or_dash(&e.to), or_dash(&e.from))
            }
            _ => format!("{} → {}", or_dash(&e.from), or_dash(&e.to)),
        };
        let about = match &e.breached {
            Some(v) => format!("{about} ({v} marked breached)"),
            None => about,
        };
        println!(
            "  {:>3} {} {:<9} {about}  by {}{}{}: {}",
            e.seq,
            e.actor.when,
            e.action,
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

fn or_dash(version: &Option<String>) -> &str {
    version.as_deref().unwrap_or("-")
}

/// A version's acceptance figures on its staging rows, from its `metrics.json` (none when the
/// file is absent or unreadable: the verdict still says passed or failed).
#[derive(serde::Serialize)]
struct Figures {
    roc_auc: f64,
    average_precision: f64,
    f1: f64,
    passed: bool,
}

fn figures(registry: &Registry, version: &str) -> Option<Figures> {
    let bytes = registry.read_file(version, "metrics.json").ok()?;
    let record: AcceptanceRecord = serde_json::from_slice(&bytes).ok()?;
    let m = &record.candidate;
    Some(Figures { roc_auc: m.roc_auc, average_precision: m.average_precision, f1: m.f1, passed: record.passed })
}
