//! The live analysis's report in Markdown.

use crate::lifecycle::live::{Analysis, CheckRun, CheckStatus, Status};
use crate::render::table::{code, text};

/// A value as the report shows it: four decimals, or "no data".
pub fn show(v: Option<f64>) -> String {
    v.map_or("no data".into(), |v| format!("{v:.4}"))
}

fn verdict(r: &CheckRun) -> &'static str {
    match r.status {
        CheckStatus::Breached => "🚨 breach",
        CheckStatus::Passed => "✅ passed",
        CheckStatus::WithinLimit => "✅ within the limit",
        CheckStatus::NoData => "➖ no data",
        CheckStatus::Unmeasurable => "⚠️ unmeasurable",
    }
}

fn checks_table(md: &mut String, runs: &[CheckRun]) {
    md.push_str(
        "| check | condition | on breach | measurements | failed | no data | unmeasurable | verdict |\n\
         |---|---|---|---|---|---|---|---|\n",
    );
    for r in runs {
        let values: Vec<String> = r.measurements.iter().map(|m| m.shown()).collect();
        let condition = match r.check.acceptance {
            Some(a) => format!("{} (acceptance {:.4} − {})", r.check.condition, a.value, a.max_drop),
            None => r.check.condition.clone(),
        };
        md.push_str(&format!(
            "| {} | {} | {} | {} | {} of {} (limit {}) | {} | {} | {} |\n",
            text(&r.check.name),
            text(&condition),
            r.check.on_breach.name(),
            text(&values.join(", ")),
            r.failures,
            r.check.count,
            r.check.failure_limit,
            r.no_data,
            r.errors,
            verdict(r)
        ));
    }
}

/// The report of one analysis, with what was done about it last.
pub fn live_markdown(a: &Analysis) -> String {
    let (icon, title) = match a.conclusion.status {
        Status::Healthy => ("✅", "healthy"),
        Status::Breached => ("🚨", "breached"),
        Status::Inconclusive => ("➖", "inconclusive"),
    };
    let mut md = format!(
        "## {icon} Live analysis of {} {}: {title}\n\n{} checks against Prometheus at {}.",
        code(&a.model),
        a.version,
        a.checks.len(),
        code(&a.prometheus)
    );
    let served: Vec<String> = a.served.iter().map(|s| format!("{} on {} replica(s)", s.version, s.replicas)).collect();
    md.push_str(&format!(
        " Served, as Prometheus sees it: {}.\n\n",
        if served.is_empty() { "nothing".to_string() } else { served.join(", ") }
    ));
    if !a.conclusion.reasons.is_empty() {
        for r in &a.conclusion.reasons {
            md.push_str(&format!("- {}\n", text(r)));
        }
        md.push('\n');
    }
    if !a.checks.is_empty() {
        checks_table(&mut md, &a.checks);
    }
    // Every series of an answer that held several, and every measurement that went wrong, named.
    let mut details = Vec::new();
    for r in &a.checks {
        for (i, m) in r.measurements.iter().enumerate() {
            if let Some(e) = &m.error {
                details.push(format!("{} #{}: unmeasurable: {}", r.check.name, i + 1, e));
            }
            if m.error.is_none() && m.value.is_none() && m.passed == Some(false) {
                details.push(format!(
                    "{} #{}: failed: {}{}",
                    r.check.name,
                    i + 1,
                    m.reason.as_deref().unwrap_or("no number"),
                    m.worst.as_deref().map(|w| format!(" at {w}")).unwrap_or_default()
                ));
            }
            if m.series.len() > 1 {
                let each: Vec<String> = m
                    .series
                    .iter()
                    .map(|s| {
                        format!(
                            "{} {}{}",
                            s.labels,
                            s.value.map_or_else(|| s.reason.clone().unwrap_or_default(), |v| format!("{v:.4}")),
                            if s.passed { "" } else { " (fails)" }
                        )
                    })
                    .collect();
                details.push(format!("{} #{}: {} series: {}", r.check.name, i + 1, m.series.len(), each.join("; ")));
            }
        }
    }
    if !details.is_empty() {
        md.push_str("\nMeasurements in detail:\n\n");
        for d in &details {
            md.push_str(&format!("- {}\n", text(d)));
        }
    }
    if let Some(t) = &a.target {
        md.push_str(&format!(
            "\n### Rollback target {}: {}\n\n",
            t.target,
            if t.allowed { "no worse, rollback allowed" } else { "refused" }
        ));
        for f in &t.findings {
            md.push_str(&format!("- {}\n", text(f)));
        }
        if !a.target_checks.is_empty() {
            md.push('\n');
            checks_table(&mut md, &a.target_checks);
        }
    }
    md.push_str("\n<details><summary>Queries</summary>\n\n");
    for r in &a.checks {
        md.push_str(&format!("- {}: {}\n", code(&r.check.name), code(&r.check.query)));
    }
    md.push_str("\n</details>\n");
    if let Some(action) = &a.action {
        md.push_str(&format!("\n{action}\n"));
    }
    md
}
