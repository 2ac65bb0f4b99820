//! Markdown reports of acceptance and monitoring: the verdict first, then the evidence.

use std::fmt::Write;

use crate::gate::{AcceptanceRecord, Check};
use crate::metrics::MetricSet;
use crate::monitor::MonitorOutcome;

/// Metrics shown in report tables, in order.
pub const REPORTED: [&str; 8] =
    ["roc_auc", "average_precision", "f1", "accuracy", "precision", "recall", "log_loss", "brier"];

fn status(checks: &[&Check]) -> &'static str {
    if checks.is_empty() {
        "—"
    } else if checks.iter().all(|c| c.passed) {
        "✅"
    } else {
        "❌"
    }
}

fn confusion(out: &mut String, m: &MetricSet) {
    let c = &m.confusion;
    let _ = writeln!(out, "| threshold {:.4} | predicted purchase | predicted no purchase |", m.threshold);
    let _ = writeln!(out, "|---|---:|---:|");
    let _ = writeln!(out, "| **purchased** | {} (TP) | {} (FN) |", c.tp, c.r#fn);
    let _ = writeln!(out, "| **did not purchase** | {} (FP) | {} (TN) |", c.fp, c.tn);
}

/// The acceptance report (`report.md`).
pub fn acceptance_markdown(r: &AcceptanceRecord) -> String {
    let mut s = String::new();
    let version = r.version.as_deref().map(|v| format!(" {v}")).unwrap_or_default();
    if r.passed {
        let _ = writeln!(s, "## ✅ Accepted: `{}`{version}", r.model);
    } else {
        let _ = writeln!(s, "## ❌ Rejected: `{}`{version}", r.model);
    }
    let _ = writeln!(s);
    let failed: Vec<&Check> = r.checks.iter().filter(|c| !c.passed).collect();
    if failed.is_empty() {
        let _ = writeln!(s, "All {} checks passed.", r.checks.len());
    } else {
        let _ = writeln!(s, "{} of {} checks failed:", failed.len(), r.checks.len());
        for c in &failed {
            let _ = writeln!(s, "- ❌ {} (measured {:.4})", c.description, c.value);
        }
    }
    let _ = writeln!(s);
    let prod = r.production.as_ref();
    match prod {
        Some(p) => {
            let _ =
                writeln!(s, "Compared with production **{}** on the same {} staging rows.", p.version, r.staging.rows);
        }
        None => {
            let _ = writeln!(s, "No model is in production: only the thresholds apply.");
        }
    }
    let _ = writeln!(s);
    let _ = writeln!(s, "| metric | candidate | production | Δ (95 % CI) | threshold | |");
    let _ = writeln!(s, "|---|---:|---:|---|---|:-:|");
    for metric in REPORTED {
        let cand = r.candidate.get(metric).unwrap_or(f64::NAN);
        let prod_value =
            prod.and_then(|p| p.metrics.get(metric)).map(|v| format!("{v:.4}")).unwrap_or_else(|| "—".into());
        let delta = prod
            .and_then(|p| p.differences.iter().find(|d| d.metric == metric))
            .map(|d| format!("{:+.4} ({:+.4} … {:+.4})", d.delta, d.ci_low, d.ci_high))
            .unwrap_or_else(|| "—".into());
        let checks: Vec<&Check> = r.checks.iter().filter(|c| c.metric == metric).collect();
        let bounds: Vec<String> = checks
            .iter()
            .filter(|c| c.gate == "threshold")
            .map(|c| c.description.trim_start_matches(metric).trim().to_string())
            .collect();
        let _ = writeln!(
            s,
            "| {metric} | {cand:.4} | {prod_value} | {delta} | {} | {} |",
            if bounds.is_empty() { "—".to_string() } else { bounds.join(", ") },
            status(&checks)
        );
    }
    let _ = writeln!(s);
    let _ = writeln!(s, "{}", r.rule);
    if let Some(p) = prod {
        let m = &p.mcnemar;
        let _ = writeln!(
            s,
            "\nMcNemar's exact test on the {} rows where the decisions differ: candidate right alone on {}, \
             production right alone on {}, p = {:.4}{}.",
            m.candidate_only + m.production_only,
            m.candidate_only,
            m.production_only,
            m.p_value,
            if m.p_value < 0.05 { " (the decisions differ significantly)" } else { " (no significant difference)" }
        );
        if let Some(w) = &p.overlap_warning {
            let _ = writeln!(s, "\n⚠️ {w}");
        }
    }
    let _ = writeln!(s, "\n### Confusion matrix on staging\n");
    confusion(&mut s, &r.candidate);
    let _ = writeln!(s, "\n### Staging data\n");
    let _ = writeln!(
        s,
        "{} rows ({} purchases) from `{}` ({}), sha256 `{}`.",
        r.staging.rows,
        r.staging.positives,
        r.staging.file,
        r.staging.source,
        &r.staging.data_sha256[..12.min(r.staging.data_sha256.len())]
    );
    for (column, n) in &r.unseen_levels {
        let _ = writeln!(s, "\n⚠️ `{column}`: {n} rows have a level not seen in training.");
    }
    let l = &r.lineage;
    let _ = writeln!(s, "\n### Lineage\n");
    let _ = writeln!(s, "| | |\n|---|---|");
    let _ = writeln!(s, "| artifact sha256 | `{}` |", r.artifact_sha256);
    let _ =
        writeln!(s, "| commit | {} |", l.git_commit.as_deref().map(|c| format!("`{c}`")).unwrap_or_else(|| "—".into()));
    let _ = writeln!(
        s,
        "| training data | `{}`, sha256 `{}` |",
        l.data_file,
        &l.data_sha256[..12.min(l.data_sha256.len())]
    );
    let _ = writeln!(
        s,
        "| rows | {} in the file: {} staging, {} fit + {} validation, final fit on {} |",
        l.rows_total, l.rows_staging, l.rows_fit, l.rows_validation, l.rows_final_fit
    );
    let _ = writeln!(
        s,
        "| configuration | `{}`, sha256 `{}` |",
        l.config_file,
        &l.config_sha256[..12.min(l.config_sha256.len())]
    );
    let _ = writeln!(s, "| built | {} by mlgate {} |", l.created_at, l.crate_version);
    s
}

/// The monitoring report (`report.md`).
pub fn monitor_markdown(
    model: &str,
    version: &str,
    data_file: &str,
    o: &MonitorOutcome,
    action: Option<&str>,
) -> String {
    let mut s = String::new();
    if o.breach {
        let _ = writeln!(s, "## ❌ Breach: production `{model}` {version} on `{data_file}`");
    } else {
        let _ = writeln!(s, "## ✅ Healthy: production `{model}` {version} on `{data_file}`");
    }
    let _ = writeln!(s);
    for c in o.checks.iter().filter(|c| !c.passed) {
        let _ = writeln!(s, "- ❌ {} (measured {:.4})", c.description, c.value);
    }
    if let Some(a) = action {
        let _ = writeln!(s, "\n**{a}**");
    }
    let _ = writeln!(s, "\n| metric | now | at acceptance | |\n|---|---:|---:|:-:|");
    for metric in REPORTED {
        let checks: Vec<&Check> = o.checks.iter().filter(|c| c.metric == metric).collect();
        let then =
            o.accepted.as_ref().and_then(|a| a.get(metric)).map(|v| format!("{v:.4}")).unwrap_or_else(|| "—".into());
        let _ = writeln!(
            s,
            "| {metric} | {:.4} | {then} | {} |",
            o.metrics.get(metric).unwrap_or(f64::NAN),
            status(&checks)
        );
    }
    let _ = writeln!(s, "\n{} rows, {} purchases.\n", o.metrics.rows, o.metrics.positives);
    confusion(&mut s, &o.metrics);
    let moved: Vec<_> = o.drift.iter().filter(|d| d.level != crate::drift::DriftLevel::None).collect();
    let _ = writeln!(
        s,
        "\n### Drift\n\n{} of {} features moved ({:.0} % majorly).",
        moved.len(),
        o.drift.len(),
        100.0 * o.drifted_share
    );
    if !moved.is_empty() {
        let _ = writeln!(
            s,
            "\n| feature | statistic | value | level | largest moves (training → now) |\n|---|---|---:|---|---|"
        );
        let mut sorted = moved.clone();
        sorted.sort_by(|a, b| b.level.cmp(&a.level).then(b.value.total_cmp(&a.value)));
        for d in sorted {
            let moves: Vec<String> = d
                .largest_moves
                .iter()
                .map(|(n, e, a)| format!("{n}: {:.1} % → {:.1} %", 100.0 * e, 100.0 * a))
                .collect();
            let _ = writeln!(
                s,
                "| `{}` | {} | {:.4} | {:?} | {} |",
                d.column,
                d.statistic,
                d.value,
                d.level,
                moves.join("; ")
            );
        }
    }
    for (column, n) in &o.unseen_levels {
        let _ = writeln!(s, "\n⚠️ `{column}`: {n} rows have a level not seen in training.");
    }
    s
}
