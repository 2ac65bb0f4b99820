//! The validation report in Markdown: the verdict line, the first errors and the counts per
//! column and rule, then every column's statistics.

use crate::data::report::{ValidationReport, SUMMARY_ERRORS};
use crate::render::table;

/// The validation report as Markdown, for reports and job summaries.
pub fn validation_markdown(report: &ValidationReport) -> String {
    let mut s = String::new();
    let status = if report.passed() { "✅ passed" } else { "❌ failed" };
    s.push_str(&format!(
        "**Data validation {status}** — {}: {} rows, sha256 `{}`, {} exact duplicate rows",
        table::code(&report.file),
        report.rows,
        &report.sha256[..12.min(report.sha256.len())],
        report.duplicate_rows
    ));
    if let Some(b) = &report.class_balance {
        s.push_str(&format!(
            ", {} positive / {} negative ({:.2} % positive)",
            b.positive,
            b.negative,
            100.0 * b.positive_rate
        ));
    }
    s.push_str("\n\n");
    if !report.passed() {
        s.push_str("| line | column | value | rule |\n|---:|---|---|---|\n");
        for e in report.errors.iter().take(SUMMARY_ERRORS) {
            s.push_str(&format!(
                "| {} | {} | {} | {} ({}) |\n",
                e.line,
                table::code(&e.column),
                table::code(&e.value),
                e.rule.describe(),
                table::text(&e.detail)
            ));
        }
        s.push_str("\n| column | rule | count |\n|---|---|---:|\n");
        for c in &report.counts {
            s.push_str(&format!("| {} | {} | {} |\n", table::code(&c.column), c.rule.describe(), c.count));
        }
        s.push('\n');
    }
    s.push_str(
        "| column | kind | count | missing | min | max | mean | distinct |\n|---|---|---:|---:|---:|---:|---:|---:|\n",
    );
    let num = |x: Option<f64>| x.map(|v| format!("{v:.4}")).unwrap_or_default();
    for c in &report.columns {
        s.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} |\n",
            table::code(&c.name),
            c.kind,
            c.count,
            c.missing,
            num(c.min),
            num(c.max),
            num(c.mean),
            c.distinct.map(|d| d.to_string()).unwrap_or_default()
        ));
    }
    let near: Vec<String> = report
        .columns
        .iter()
        .flat_map(|c| {
            c.near_duplicates.iter().map(move |d| {
                format!(
                    "| {} | {} | {} | {} |\n",
                    table::code(&c.name),
                    table::code(&d.level),
                    d.count,
                    table::code(&d.like)
                )
            })
        })
        .collect();
    if !near.is_empty() {
        s.push_str("\n⚠️ Levels written like another but for case or surrounding spaces:\n\n| column | level | rows | like |\n|---|---|---:|---|\n");
        near.iter().for_each(|line| s.push_str(line));
    }
    for c in report.columns.iter().filter(|c| !c.top_levels.is_empty()) {
        let listed: Vec<String> = c.top_levels.iter().map(|(l, n)| format!("{} ({n})", table::code(l))).collect();
        s.push_str(&format!(
            "\nMost common of the {} levels of {}: {}\n",
            c.distinct.unwrap_or(0),
            table::code(&c.name),
            listed.join(", ")
        ));
    }
    s
}
