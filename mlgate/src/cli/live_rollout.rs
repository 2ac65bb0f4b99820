//! `mlgate monitor --live` while a rollout is open (or with `--rollout`): the candidate judged
//! against the baseline over the window since its step started (the queries and the decision
//! are `model::lifecycle::rollout_analysis`'s, asked through [`crate::prometheus`]), then the
//! decision carried out in the registry — the next step (a compare-and-swap on the step
//! analysed), the promotion, or the abort that marks the candidate breached — which the servers
//! follow. Exits 0 (waiting, stepped, promoted), 1 (aborted) or 3 (inconclusive).

use std::collections::BTreeMap;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result};
use model::lifecycle::registry::{Actor, Registry, PRODUCTION};
use model::lifecycle::rollout::Rollout;
use model::lifecycle::rollout_analysis::{analyse, Criteria, Decision, RolloutAnalysis, Subject};
use model::pipeline::rollout::RolloutConfig;
use model::render::live::rollout_markdown;

use crate::exit::Exit;
use crate::output;
use crate::store::Store;

/// What the rollout's analysis needs.
pub struct RolloutArgs<'a> {
    /// The registry, with the rollout open in it.
    pub registry: Store,
    /// The model's name (`model` label).
    pub model: String,
    /// The `[rollout]` section.
    pub config: RolloutConfig,
    /// The rollout as the registry had it.
    pub rollout: Rollout,
    /// Prometheus's base URL (credentials included, never printed).
    pub prometheus: &'a str,
    /// The folder for report.md and monitor.json.
    pub out: &'a Path,
    /// Open or update the alert issue on an abort.
    pub alert: bool,
    /// Who acts, and when: the clock the step's start was written with.
    pub who: Actor,
}

/// Seconds from `since` to `now`, both RFC 3339; none when `now` is earlier.
fn seconds_between(since: &str, now: &str) -> Result<u64> {
    let parse = |t: &str| {
        humantime::parse_rfc3339_weak(t)
            .with_context(|| format!("`{}` is no RFC 3339 time", t.chars().take(40).collect::<String>()))
    };
    let (since, now) = (parse(since)?, parse(now)?);
    Ok(now.duration_since(since).map_or(0, |d| d.as_secs()))
}

/// The reason the history records for a decision carried out.
fn history_reason(a: &RolloutAnalysis) -> String {
    let mut figures = vec![];
    if let Some(r) = a.error_ratio.ratio {
        figures.push(format!("failure ratio {r:.2}"));
    }
    if let Some(r) = a.latency_ratio.ratio {
        figures.push(format!("latency ratio {r:.2}"));
    }
    if let Some(d) = a.quality.difference() {
        figures.push(format!(
            "accuracy {:.4} against {:.4}, {:+.4} ({:.0} % interval {:+.4} … {:+.4})",
            d.candidate,
            d.baseline,
            d.delta,
            100.0 * d.confidence,
            d.ci_low,
            d.ci_high
        ));
    }
    format!("live analysis: {} [{}]", a.reasons.join("; "), figures.join(", "))
}

/// Carries out the decision inside the registry's transaction, on the rollout analysed only: a
/// rollout that moved meanwhile (another step, another rollout, closed) is left as it is.
/// Returns what was done, in a sentence, and whether the rollout had moved.
fn act(registry: &Registry, analysis: &RolloutAnalysis, analysed: &Rollout, who: &Actor) -> Result<(String, bool)> {
    let now = registry.state()?.rollout;
    let same = now.as_ref().is_some_and(|r| r.seq == analysed.seq && r.step == analysed.step);
    if !same {
        let is = now.map_or("closed".to_string(), |r| r.describe());
        return Ok((
            format!("No action: the rollout moved while it was analysed (now {is}); run the analysis again."),
            true,
        ));
    }
    let reason = history_reason(analysis);
    let s = &analysis.subject;
    Ok(match analysis.decision {
        Decision::Wait | Decision::Inconclusive => {
            (format!("No change: the rollout stays at step {} of {}.", s.step + 1, s.steps), false)
        }
        Decision::Step => {
            let next = registry.step_rollout(analysed.step, &reason, who)?;
            (format!("Stepped: {}; the servers follow.", next.describe()), false)
        }
        Decision::Promote => {
            let p = registry.promote_rollout(&reason, who)?;
            (
                format!(
                    "Promoted {} to production (was {}); the rollout is closed and the servers follow.",
                    p.deployed,
                    p.replaced.as_deref().unwrap_or("none")
                ),
                false,
            )
        }
        Decision::Abort => {
            let r = registry.abort_rollout(&reason, true, who)?;
            (
                format!(
                    "Aborted: every record goes back to {}, production unchanged; {} is marked breached.",
                    r.baseline, r.candidate
                ),
                false,
            )
        }
    })
}

/// Runs the rollout's analysis and carries out its decision.
pub fn run(args: RolloutArgs) -> Result<ExitCode> {
    let RolloutArgs { mut registry, model, config, rollout, prometheus: url, out, alert, who } = args;
    let prometheus = output::redact(url);
    let location = registry.location().to_string();
    let criteria = Criteria::of(&config)?;
    let elapsed = seconds_between(&rollout.step_started, &who.when)
        .with_context(|| format!("the rollout's step started at an unreadable time in {location}"))?;
    let subject = Subject::of(&model, &rollout, elapsed);
    let queries = subject.queries();
    eprintln!("analysing the {} of {model} with {} queries against {prometheus}", rollout.describe(), queries.len());
    let promql: Vec<String> = queries.iter().map(|(_, q)| q.clone()).collect();
    // Prometheus that cannot be reached, or refuses, stops here: nothing is changed.
    let answers = crate::prometheus::ask_all(url, &promql)
        .with_context(|| format!("cannot ask Prometheus at {prometheus} about the rollout of `{model}`"))?;
    let answers: BTreeMap<_, _> = queries.into_iter().map(|(q, _)| q).zip(answers).collect();
    let mut analysis = analyse(&subject, &criteria, &answers)?;
    let changes = !matches!(analysis.decision, Decision::Wait | Decision::Inconclusive);
    let (action, moved) = if changes {
        registry.transact(&who, |registry| act(registry, &analysis, &rollout, &who))?
    } else {
        act(&registry, &analysis, &rollout, &who)?
    };
    analysis.action = Some(action);
    let state = registry.state()?;
    let decision = analysis.decision;
    let record = serde_json::json!({
        "schema_version": 2,
        "mode": "rollout",
        "model": model,
        "version": rollout.baseline,
        "candidate": rollout.candidate,
        "prometheus": prometheus,
        "status": decision.name(),
        "decision": decision.name(),
        "outcome": {
            "breach": decision == Decision::Abort && !moved,
            "status": decision.name(),
            "reasons": analysis.reasons,
        },
        "rollout": analysis,
        "action": analysis.action,
        "registry": {
            "production": state.aliases.get(PRODUCTION),
            "rollout": state.rollout,
        },
    });
    let report_md = out.join("report.md");
    let monitor_json = out.join("monitor.json");
    output::write(&report_md, rollout_markdown(&analysis, &prometheus).as_bytes())
        .and_then(|()| output::write_json(&monitor_json, &record))
        .with_context(|| {
            format!(
                "the decision ({}) IS carried out in {location}; only its report in {} is missing",
                decision.name(),
                out.display()
            )
        })?;
    let show = |v: Option<f64>| v.map_or("no data".to_string(), |v| format!("{v:.4}"));
    for f in [&analysis.candidate_figures, &analysis.baseline_figures] {
        println!(
            "{:<10} {} ({}): {} records, {} failures, p95 {} s, accuracy {} on {} joined",
            if f.role == "baseline" { "baseline" } else { "candidate" },
            f.version,
            f.role,
            f.records,
            f.failures,
            show(f.latency_p95_seconds),
            show(f.accuracy),
            f.joined
        );
    }
    for note in [&analysis.error_ratio.note, &analysis.latency_ratio.note, &analysis.quality.note] {
        println!("check      {note}");
    }
    println!("report     {}", report_md.display());
    if let Some(a) = &analysis.action {
        println!("{a}");
    }
    if moved {
        return Ok(output::inconclusive_status(&["the rollout moved while it was analysed".to_string()]));
    }
    println!("decision   {}", decision.name());
    Ok(match decision {
        Decision::Wait | Decision::Step | Decision::Promote => {
            println!("status     rollout {}", if decision == Decision::Wait { "waiting" } else { "advanced" });
            Exit::Success.into()
        }
        Decision::Inconclusive => output::inconclusive_status(&analysis.reasons),
        Decision::Abort => {
            if alert {
                crate::cli::alert::raise(&monitor_json, &report_md, "mlgate-alert")?;
            }
            output::monitoring_status(true, " (rollout aborted)", &analysis.reasons)
        }
    })
}
