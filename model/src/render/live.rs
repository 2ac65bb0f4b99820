//! The live analysis's report in Markdown.

use crate::lifecycle::live::CheckRun;
use crate::render::table::{code, text};

/// A value as the report shows it: four decimals, or "no data".
pub fn show(v: Option<f64>) -> String {
    v.map_or("no data".into(), |v| format!("{v:.4}"))
}

/// The report of one analysis of `model` `version` against Prometheus at `prometheus`, with
/// what was done about it (`action`) last.
pub fn live_markdown(model: &str, version: &str, prometheus: &str, runs: &[CheckRun], action: Option<&str>) -> String {
    let breach = runs.iter().any(|r| r.breached);
    let mut md = format!(
        "## {} Live analysis of {} {version}\n\n{} checks against Prometheus at {}.\n\n",
        if breach { "🚨" } else { "✅" },
        code(model),
        runs.len(),
        code(prometheus)
    );
    md.push_str("| check | condition | measurements | failed | no data | verdict |\n|---|---|---|---|---|---|\n");
    for r in runs {
        let values: Vec<String> = r.measurements.iter().map(|m| show(m.value)).collect();
        md.push_str(&format!(
            "| {} | {} | {} | {} of {} (limit {}) | {} | {} |\n",
            text(&r.check.name),
            text(&r.check.condition),
            values.join(", "),
            r.failures,
            r.check.count,
            r.check.failure_limit,
            r.inconclusive + r.errors,
            if r.breached {
                "🚨 breach"
            } else if r.failures + r.errors + r.inconclusive == 0 {
                "✅ passed"
            } else if r.inconclusive + r.errors == r.check.count {
                "➖ inconclusive"
            } else {
                "✅ within the limit"
            }
        ));
    }
    let errors: Vec<String> = runs
        .iter()
        .flat_map(|r| r.measurements.iter().filter_map(|m| m.error.as_ref().map(|e| format!("{}: {e}", r.check.name))))
        .collect();
    if let Some(first) = errors.first() {
        md.push_str(&format!("\n{} measurement(s) failed to run; the first: {}\n", errors.len(), text(first)));
    }
    md.push_str("\n<details><summary>Queries</summary>\n\n");
    for r in runs {
        md.push_str(&format!("- {}: {}\n", code(&r.check.name), code(&r.check.query)));
    }
    md.push_str("\n</details>\n");
    if let Some(a) = action {
        md.push_str(&format!("\n{a}\n"));
    }
    md
}
