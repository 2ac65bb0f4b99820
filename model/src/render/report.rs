//! Markdown reports of acceptance and monitoring: the verdict first, then the evidence.

use std::fmt::Write;

use crate::eval::metrics::{Metric, MetricSet};
use crate::lifecycle::gate::{AcceptanceRecord, Check, GateKind, LabelWords, Measure, StagingSource};
use crate::lifecycle::monitor::{DataQuality, MonitorOutcome};
use crate::render::table;

fn status(checks: &[&Check]) -> &'static str {
    if checks.is_empty() {
        "—"
    } else if checks.iter().all(|c| c.passed) {
        "✅"
    } else {
        "❌"
    }
}

/// A p-value as reports write it: four decimals, or `p < 0.0001`.
fn p_value(p: f64) -> String {
    if p < 0.0001 {
        "p < 0.0001".into()
    } else {
        format!("p = {p:.4}")
    }
}

/// The regression check of `metric` passed, yet its interval lies wholly on the side of a drop:
/// a real drop, within the margin.
fn dropped_within_margin(r: &AcceptanceRecord, metric: Metric) -> bool {
    let Some(d) = r.production.as_ref().and_then(|p| p.differences.iter().find(|d| d.metric == metric)) else {
        return false;
    };
    let real = if metric.lower_is_better() { d.ci_low > 0.0 } else { d.ci_high < 0.0 };
    real && r.checks.iter().any(|c| c.gate == GateKind::Regression && c.metric == Measure::Metric(metric) && c.passed)
}

/// `text` cut to at most `bytes` bytes, at a character boundary.
fn cut_to(text: &str, bytes: usize) -> &str {
    let mut end = bytes.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// The words of a label, or the project's own default's when a record predates them.
fn words(label: Option<&LabelWords>) -> LabelWords {
    label.cloned().unwrap_or_else(|| LabelWords {
        name: "purchased".into(),
        positive: "yes".into(),
        negative: "no".into(),
    })
}

fn confusion(out: &mut String, m: &MetricSet, label: &LabelWords) {
    let c = &m.confusion;
    let (name, pos, neg) = (table::code(&label.name), table::code(&label.positive), table::code(&label.negative));
    let _ = writeln!(out, "| threshold {:.4} | predicted {name} = {pos} | predicted {neg} |", m.threshold);
    let _ = writeln!(out, "|---|---:|---:|");
    let _ = writeln!(out, "| **{name} = {pos}** | {} (TP) | {} (FN) |", c.tp, c.r#fn);
    let _ = writeln!(out, "| **{name} = {neg}** | {} (FP) | {} (TN) |", c.fp, c.tn);
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
        None if r.baseline.is_some() => {
            let _ = writeln!(s, "No model is in production: the thresholds and the baseline apply.");
        }
        None => {
            let _ = writeln!(s, "No model is in production: only the thresholds apply.");
        }
    }
    let _ = writeln!(s);
    let _ = writeln!(s, "| metric | candidate | production | Δ (95 % CI) | threshold | |");
    let _ = writeln!(s, "|---|---:|---:|---|---|:-:|");
    for metric in Metric::REPORTED {
        let cand = r.candidate.get(metric);
        let prod_value = prod.map(|p| format!("{:.4}", p.metrics.get(metric))).unwrap_or_else(|| "—".into());
        let delta = prod
            .and_then(|p| p.differences.iter().find(|d| d.metric == metric))
            .map(|d| format!("{:+.4} ({:+.4} … {:+.4})", d.delta, d.ci_low, d.ci_high))
            .unwrap_or_else(|| "—".into());
        let checks: Vec<&Check> = r.checks.iter().filter(|c| c.metric == Measure::Metric(metric)).collect();
        let bounds: Vec<String> = checks
            .iter()
            .filter(|c| c.gate == GateKind::Threshold)
            .map(|c| c.description.trim_start_matches(metric.name()).trim().to_string())
            .collect();
        let mark = if dropped_within_margin(r, metric) { "⚠" } else { status(&checks) };
        let _ = writeln!(
            s,
            "| {metric} | {cand:.4} | {prod_value} | {delta} | {} | {mark} |",
            if bounds.is_empty() { "—".to_string() } else { bounds.join(", ") },
        );
    }
    if Metric::REPORTED.iter().any(|&m| dropped_within_margin(r, m)) {
        let _ = writeln!(s, "\n⚠ a significant drop, within the margin: it does not fail the gate.");
    }
    if let Some(b) = &r.baseline {
        let _ = writeln!(
            s,
            "\n**Baseline**: a constant score (ROC AUC 0.5, average precision the positive rate {:.4}) on the \
             same rows; the candidate must beat it with the whole interval above zero.\n",
            b.positive_rate
        );
        let _ = writeln!(s, "| metric | candidate | constant | Δ (CI) | |\n|---|---:|---:|---|:-:|");
        for d in &b.differences {
            let checks: Vec<&Check> = r
                .checks
                .iter()
                .filter(|c| c.gate == GateKind::Baseline && c.metric == Measure::Metric(d.metric))
                .collect();
            let _ = writeln!(
                s,
                "| {} | {:.4} | {:.4} | {:+.4} ({:+.4} … {:+.4}) | {} |",
                d.metric,
                d.candidate,
                d.production,
                d.delta,
                d.ci_low,
                d.ci_high,
                status(&checks)
            );
        }
    }
    let _ = writeln!(s);
    let _ = writeln!(s, "{}", r.rule);
    if let Some(p) = prod {
        let m = &p.mcnemar;
        let _ = writeln!(
            s,
            "\nMcNemar's exact test on the {} rows where the decisions differ: candidate right alone on {}, \
             production right alone on {}, {}{}.",
            m.candidate_only + m.production_only,
            m.candidate_only,
            m.production_only,
            p_value(m.p_value),
            if m.p_value < 0.05 { " (the decisions differ significantly)" } else { " (no significant difference)" }
        );
        if let Some(w) = &p.overlap_warning {
            let _ = writeln!(s, "\n⚠️ {w}");
        }
    }
    let _ = writeln!(s, "\n### Confusion matrix on staging\n");
    let label = words(r.label.as_ref());
    confusion(&mut s, &r.candidate, &label);
    if !r.calibration.is_empty() {
        let _ = writeln!(
            s,
            "\n### Calibration on staging\n\nExpected calibration error {:.4}: how far the probabilities are from the observed rates (monitoring without labels relies on them).\n\n| probability | rows | mean probability | positive rate |\n|---|---:|---:|---:|",
            crate::eval::calibration::expected_calibration_error(&r.calibration)
        );
        for b in r.calibration.iter().filter(|b| b.rows > 0) {
            let _ = writeln!(
                s,
                "| {:.1}–{:.1} | {} | {:.4} | {:.4} |",
                b.low, b.high, b.rows, b.mean_probability, b.positive_rate
            );
        }
    }
    let _ = writeln!(s, "\n### Staging data\n");
    let _ = writeln!(
        s,
        "{} rows ({} with {} = {}) from `{}` ({}), sha256 `{}`.",
        r.staging.rows,
        r.staging.positives,
        label.name,
        label.positive,
        r.staging.file,
        match r.staging.source {
            StagingSource::Holdout => "holdout",
            StagingSource::File => "file",
        },
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
    match &r.origin {
        Some(o) => {
            let _ = writeln!(
                s,
                "| trained by | {}{}: `{}`, sha256 `{}`, objective `{}`, {} trees |",
                o.library,
                o.library_version.as_deref().map(|v| format!(" {v}")).unwrap_or_default(),
                o.file,
                &o.sha256[..12.min(o.sha256.len())],
                o.objective,
                o.trees
            );
            let _ = writeln!(
                s,
                "| rows | {} in the file: {} staging, {} to choose the threshold and measure (imported: none fit) |",
                l.rows_total, l.rows_staging, l.rows_validation
            );
        }
        None => {
            let _ = writeln!(
                s,
                "| rows | {} in the file: {} staging, {} fit + {} validation, final fit on {} |",
                l.rows_total, l.rows_staging, l.rows_fit, l.rows_validation, l.rows_final_fit
            );
        }
    }
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
    label: &LabelWords,
    quality: Option<&DataQuality>,
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
    let e = &o.estimated;
    let estimated = |metric: Metric| match metric {
        Metric::Accuracy => format!("{:.4}", e.accuracy),
        Metric::Precision => format!("{:.4}", e.precision),
        Metric::Recall => format!("{:.4}", e.recall),
        Metric::F1 => format!("{:.4}", e.f1),
        _ => "—".into(),
    };
    let _ = writeln!(s, "\n| metric | now | estimated without labels | at acceptance | |\n|---|---:|---:|---:|:-:|");
    for metric in Metric::REPORTED {
        let checks: Vec<&Check> = o.checks.iter().filter(|c| c.metric == Measure::Metric(metric)).collect();
        let then = o.accepted.as_ref().map(|a| format!("{:.4}", a.get(metric))).unwrap_or_else(|| "—".into());
        let now = o.metrics.as_ref().map(|m| format!("{:.4}", m.get(metric))).unwrap_or_else(|| "—".into());
        let _ = writeln!(s, "| {metric} | {now} | {} | {then} | {} |", estimated(metric), status(&checks));
    }
    let rate = |r: Option<f64>| r.map(|r| format!("{:.2} %", 100.0 * r)).unwrap_or_else(|| "—".into());
    let _ = writeln!(
        s,
        "\nPositive rate: labels {} (at acceptance {}); predicted {} (at acceptance {}); PSI of the scores against acceptance {}.",
        rate(o.positive_rate),
        rate(o.accepted_positive_rate),
        rate(Some(o.predicted_positive_rate)),
        rate(o.accepted_predicted_positive_rate),
        o.score_psi.map(|p| format!("{p:.4}")).unwrap_or_else(|| "—".into())
    );
    let _ = writeln!(
        s,
        "\nThe estimate assumes calibrated probabilities (a row scored p is positive with probability p); {}.",
        match o.accepted_calibration_error {
            Some(ece) => format!("on the staging rows at acceptance the expected calibration error was {ece:.4}"),
            None => "the acceptance record holds no calibration to check it against".into(),
        }
    );
    match &o.metrics {
        Some(m) => {
            let _ = writeln!(s, "\n{} rows, {} with {} = {}.\n", m.rows, m.positives, label.name, label.positive);
            confusion(&mut s, m, label);
        }
        None => {
            let _ = writeln!(s, "\nThe data has no labels: metrics are estimated, not measured.");
        }
    }
    let moved: Vec<_> = o.drift.iter().filter(|d| d.level != crate::eval::drift::DriftLevel::None).collect();
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
    if let Some(q) = quality {
        data_quality(&mut s, q);
    }
    s
}

/// The rows a monitoring run refused, per column and rule.
fn data_quality(s: &mut String, q: &DataQuality) {
    let _ = writeln!(
        s,
        "\n### Data quality\n\n{} of {} rows refused ({:.2} %, at most {:.2} % allowed): every figure above is on the \
         other {}; each broken value is listed in {}.",
        q.refused,
        q.rows,
        100.0 * q.refused_share,
        100.0 * q.max_share,
        q.rows - q.refused,
        table::code(&q.rejects_file)
    );
    if !q.counts.is_empty() {
        let _ = writeln!(s, "\n| column | rule | values refused |\n|---|---|---:|");
        for c in &q.counts {
            let _ =
                writeln!(s, "| {} | {} ({}) | {} |", table::code(&c.column), c.rule.name(), c.rule.describe(), c.count);
        }
    }
}

/// GitHub refuses comments longer than this many bytes.
pub const COMMENT_LIMIT: usize = 65_536;

/// Points of the charts, evenly spaced on the x axis (Mermaid's `xychart-beta` spaces a line's
/// values evenly).
const CHART_POINTS: usize = 21;

/// The curve's best y at or before each evenly spaced x in [0, 1] (a step function: ROC's TPR at
/// a false-positive rate, PR's precision at a recall).
fn resample(points: &[crate::eval::metrics::CurvePoint], increasing_y: bool) -> Vec<f64> {
    (0..CHART_POINTS)
        .map(|k| {
            let x = k as f64 / (CHART_POINTS - 1) as f64;
            let eligible = points.iter().filter(|p| if increasing_y { p.x <= x + 1e-12 } else { p.x >= x - 1e-12 });
            let best = eligible.map(|p| p.y).fold(f64::NAN, f64::max);
            if best.is_nan() {
                0.0
            } else {
                best
            }
        })
        .collect()
}

/// The colours of the charts' lines, in order: candidate, production, chance. Mid-tone
/// colours that read on both GitHub themes (Mermaid's default palette starts with a pale lilac,
/// invisible on white).
pub const CHART_PALETTE: [(&str, &str); 3] = [("#1f77b4", "blue"), ("#ff7f0e", "orange"), ("#7f7f7f", "grey")];

/// A Mermaid line chart of curves sampled on [`CHART_POINTS`] points from 0 to 1, drawn on
/// axes in percent: categories 0, 5, …, 100 on x (a numeric x axis of Mermaid drops the last
/// point), 0 to 100 on y. `lines` are (name, values, colour: an index of [`CHART_PALETTE`]);
/// the legend is the line under the chart.
fn chart(title: &str, x_label: &str, y_label: &str, lines: &[(&str, &[f64], usize)]) -> String {
    let palette: Vec<&str> = lines.iter().map(|l| CHART_PALETTE[l.2].0).collect();
    let mut s = format!(
        "```mermaid\n---\nconfig:\n  themeVariables:\n    xyChart:\n      plotColorPalette: \"{}\"\n---\nxychart-beta\n",
        palette.join(", ")
    );
    let _ = writeln!(s, "    title \"{title}\"");
    let ticks: Vec<String> =
        (0..CHART_POINTS).map(|k| format!("{}", (100.0 * k as f64 / (CHART_POINTS - 1) as f64).round())).collect();
    let _ = writeln!(s, "    x-axis \"{x_label} (%)\" [{}]", ticks.join(", "));
    let _ = writeln!(s, "    y-axis \"{y_label} (%)\" 0 --> 100");
    for (_, l, _) in lines {
        let percent: Vec<f64> = l.iter().map(|v| 100.0 * v).collect();
        let _ = writeln!(s, "    line [{}]", percent.iter().map(|x| format!("{x:.1}")).collect::<Vec<_>>().join(", "));
    }
    s.push_str("```\n");
    let legend: Vec<String> = lines.iter().map(|(name, _, c)| format!("{}: {name}", CHART_PALETTE[*c].1)).collect();
    let _ = writeln!(s, "\n<sub>{}</sub>\n", legend.join(" · "));
    s
}

/// The pull-request comment (and job summary): verdict first, metrics table, confusion matrix,
/// ROC and precision–recall charts in Mermaid with tables beside them, data validation, drift,
/// lineage; long parts folded. `marker` (an HTML comment) lets the comment be found again. The
/// result never exceeds `limit` bytes (GitHub counts a comment's and a summary's bytes): details
/// are cut first, with a line saying so and naming `full_report`, where the rest is.
pub fn pull_request_markdown(
    record: &AcceptanceRecord,
    validation: Option<&crate::data::report::ValidationReport>,
    marker: &str,
    limit: usize,
    full_report: &str,
    provenance: &str,
) -> String {
    let core = acceptance_core(record);
    let mut details: Vec<(String, String)> = Vec::new();

    let roc = resample(&record.curves.roc, true);
    let pr = resample(&record.curves.precision_recall, false);
    let grid: Vec<f64> = (0..CHART_POINTS).map(|k| k as f64 / (CHART_POINTS - 1) as f64).collect();
    let candidate_name = format!("candidate{}", record.version.as_deref().map(|v| format!(" {v}")).unwrap_or_default());
    let production = record.production.as_ref().and_then(|p| {
        let c = p.curves.as_ref()?;
        Some((
            format!("production {}", p.version),
            resample(&c.roc, true),
            resample(&c.precision_recall, false),
            &p.metrics,
        ))
    });
    let mut roc_lines: Vec<(&str, &[f64], usize)> = vec![(candidate_name.as_str(), &roc, 0)];
    let mut pr_lines: Vec<(&str, &[f64], usize)> = vec![(candidate_name.as_str(), &pr, 0)];
    if let Some((name, proc, ppr, _)) = &production {
        roc_lines.push((name.as_str(), proc, 1));
        pr_lines.push((name.as_str(), ppr, 1));
    }
    roc_lines.push(("chance", &grid, 2));
    let versus = |metric: fn(&crate::eval::metrics::MetricSet) -> f64| {
        production.as_ref().map(|(_, _, _, m)| format!(" (production {:.3})", metric(m))).unwrap_or_default()
    };
    let mut curves = chart(
        &format!("ROC curve, AUC {:.3}{}", record.candidate.roc_auc, versus(|m| m.roc_auc)),
        "false-positive rate",
        "true-positive rate",
        &roc_lines,
    );
    curves.push_str(&chart(
        &format!(
            "Precision-recall curve, AP {:.3}{}",
            record.candidate.average_precision,
            versus(|m| m.average_precision)
        ),
        "recall",
        "precision",
        &pr_lines,
    ));
    curves
        .push_str("\n| false-positive rate | true-positive rate | | recall | precision |\n|---:|---:|---|---:|---:|\n");
    for k in (0..CHART_POINTS).step_by(2) {
        let _ = writeln!(curves, "| {:.2} | {:.3} | | {:.2} | {:.3} |", grid[k], roc[k], grid[k], pr[k]);
    }
    details.push(("ROC and precision–recall curves".into(), curves));

    if let Some(v) = validation {
        details.push(("Data validation".into(), crate::render::validation::validation_markdown(v)));
    }
    let moved: Vec<&crate::eval::drift::FeatureDrift> =
        record.drift.iter().filter(|d| d.level != crate::eval::drift::DriftLevel::None).collect();
    if !record.drift.is_empty() {
        let mut d = format!(
            "{} of {} features of the staging rows moved against the training data.\n",
            moved.len(),
            record.drift.len()
        );
        if !moved.is_empty() {
            d.push_str("\n| feature | statistic | value | level |\n|---|---|---:|---|\n");
            for f in &moved {
                let _ = writeln!(d, "| `{}` | {} | {:.4} | {:?} |", f.column, f.statistic, f.value, f.level);
            }
        }
        details.push((format!("Drift ({} of {} features moved)", moved.len(), record.drift.len()), d));
    }
    let checks: String = record
        .checks
        .iter()
        .map(|c| {
            let mark = match (c.passed, c.metric) {
                (true, Measure::Metric(m)) if c.gate == GateKind::Regression && dropped_within_margin(record, m) => "⚠",
                (true, _) => "✅",
                (false, _) => "❌",
            };
            format!("- {mark} {} (measured {:.4})\n", c.description, c.value)
        })
        .collect();
    details.push((format!("All {} checks", record.checks.len()), checks));

    let fold = |title: &str, body: &str| format!("\n<details><summary>{title}</summary>\n\n{body}\n</details>\n");
    let footer = format!(
        "\n<sub>mlgate · artifact `{}`{}{}</sub>\n",
        &record.artifact_sha256[..12],
        if provenance.is_empty() { "" } else { " · " },
        provenance
    );
    let mut out = format!("{marker}\n{core}");
    let mut cut: Vec<&str> = Vec::new();
    for (title, body) in &details {
        let block = fold(title, body);
        // Keep room for the footer and the note on what was cut.
        if out.len() + block.len() + footer.len() + 300 <= limit {
            out.push_str(&block);
        } else {
            cut.push(title);
        }
    }
    if !cut.is_empty() {
        let _ = writeln!(
            out,
            "\n_Cut to stay within GitHub's {limit}-byte limit: {}. The full report is in {full_report}._",
            cut.join(", ")
        );
    }
    if out.len() + footer.len() > limit {
        // Even the core is too long (a pathological number of checks or columns): truncate it.
        let keep = limit.saturating_sub(footer.len() + 160);
        out = cut_to(&out, keep).to_string();
        out.push_str("\n\n_… the report was truncated to stay within GitHub's limit._\n");
    }
    out.push_str(&footer);
    out
}

/// The comment (and job summary) of a run that stopped before its acceptance report: what
/// failed, with the data's broken values and counts per column and rule when validation is
/// what failed, else the end of the failing step's output. It replaces the comment a previous
/// push left (same `marker`), so that an "Accepted" of old never stands over a failed run.
pub fn failure_markdown(
    marker: &str,
    step: &str,
    validation: Option<&crate::data::report::ValidationReport>,
    log: &str,
    limit: usize,
    provenance: &str,
) -> String {
    let mut out = format!("{marker}\n## ❌ Not evaluated: {step} failed\n\n");
    match validation.filter(|v| !v.passed()) {
        Some(v) => {
            let _ = writeln!(
                out,
                "The data does not follow the schema: {} broken value(s) in {} of {} rows of {}. Nothing was built or judged; fix the data (or the schema) and push again.\n",
                v.error_count,
                v.rows_with_errors,
                v.rows,
                table::code(&v.file)
            );
            out.push_str(&crate::render::validation::validation_markdown(v));
        }
        None => {
            let _ = writeln!(out, "No model was judged: the step stopped with this output (its end):\n");
            let lines: Vec<&str> = log.lines().collect();
            let tail = &lines[lines.len().saturating_sub(40)..];
            let fence = if tail.iter().any(|l| l.contains("```")) { "~~~~" } else { "```" };
            let _ = writeln!(out, "{fence}text\n{}\n{fence}", tail.join("\n"));
        }
    }
    let footer = format!("\n<sub>mlgate{}{provenance}</sub>\n", if provenance.is_empty() { "" } else { " · " });
    if out.len() + footer.len() > limit {
        let keep = limit.saturating_sub(footer.len() + 160);
        out = cut_to(&out, keep).to_string();
        out.push_str("\n\n_… cut to stay within GitHub's limit; the whole output is in the job's log._\n");
    }
    out.push_str(&footer);
    out
}

/// The acceptance report without its lineage tail: verdict, table, rule, confusion matrix.
fn acceptance_core(r: &AcceptanceRecord) -> String {
    let full = acceptance_markdown(r);
    match full.find("\n### Staging data") {
        Some(i) => {
            let mut s = full[..i].to_string();
            let l = &r.lineage;
            let _ = writeln!(
                s,
                "\n**Lineage** — commit {}, data `{}` sha256 `{}`, config `{}` sha256 `{}`, staging {} rows ({} with {} = {}).",
                l.git_commit.as_deref().map(|c| format!("`{}`", &c[..c.len().min(12)])).unwrap_or_else(|| "—".into()),
                l.data_file,
                &l.data_sha256[..12.min(l.data_sha256.len())],
                l.config_file,
                &l.config_sha256[..12.min(l.config_sha256.len())],
                r.staging.rows,
                r.staging.positives,
                words(r.label.as_ref()).name,
                words(r.label.as_ref()).positive
            );
            if let Some(o) = &r.origin {
                let _ = writeln!(
                    s,
                    "\n**Trained by** {}{} (`{}`, sha256 `{}`), imported by mlgate.",
                    o.library,
                    o.library_version.as_deref().map(|v| format!(" {v}")).unwrap_or_default(),
                    o.file,
                    &o.sha256[..12.min(o.sha256.len())]
                );
            }
            s
        }
        None => full,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::compare::{Difference, McNemar};
    use crate::lifecycle::gate::{Curves, ProductionComparison, StagingSummary};
    use crate::pipeline::artifact::Lineage;

    fn record(delta: f64, ci: (f64, f64), passed: bool) -> AcceptanceRecord {
        let metrics = MetricSet::compute(&[true, false, true, false], &[0.9, 0.2, 0.7, 0.4], 0.5).unwrap();
        let difference = Difference {
            metric: Metric::RocAuc,
            candidate: 0.9,
            production: 0.9 - delta,
            delta,
            ci_low: ci.0,
            ci_high: ci.1,
        };
        AcceptanceRecord {
            schema_version: 1,
            model: "m".into(),
            artifact_sha256: "0".repeat(64),
            version: Some("v2".into()),
            passed,
            checks: vec![Check {
                gate: GateKind::Regression,
                metric: Measure::Metric(Metric::RocAuc),
                description: "roc_auc vs production".into(),
                value: delta,
                passed,
            }],
            rule: String::new(),
            staging: StagingSummary {
                source: StagingSource::Holdout,
                file: "f.csv".into(),
                data_sha256: "0".repeat(64),
                rows: 4,
                positives: 2,
            },
            candidate: metrics.clone(),
            baseline: None,
            production: Some(ProductionComparison {
                version: "v1".into(),
                metrics,
                differences: vec![difference],
                mcnemar: McNemar { candidate_only: 0, production_only: 30, p_value: 1.9e-9 },
                overlap_warning: None,
                curves: None,
            }),
            curves: Curves { roc: Vec::new(), precision_recall: Vec::new() },
            unseen_levels: Default::default(),
            drift: Vec::new(),
            lineage: Lineage {
                data_file: "f.csv".into(),
                data_sha256: "0".repeat(64),
                rows_total: 4,
                rows_staging: 4,
                rows_fit: 0,
                rows_validation: 0,
                rows_final_fit: 0,
                config_file: "p.toml".into(),
                config_sha256: "0".repeat(64),
                git_commit: None,
                crate_version: "0".into(),
                created_at: String::new(),
            },
            origin: None,
            calibration: Vec::new(),
            scores: None,
            label: None,
        }
    }

    fn points(xy: &[(f64, f64)]) -> Vec<crate::eval::metrics::CurvePoint> {
        xy.iter().map(|&(x, y)| crate::eval::metrics::CurvePoint { x, y, threshold: 0.5 }).collect()
    }

    /// The `line [...]` values of the first chart in `md`, and its x-axis ticks.
    fn first_chart(md: &str) -> (Vec<Vec<f64>>, Vec<String>, String) {
        let block = md.split("```mermaid\n").nth(1).unwrap().split("```").next().unwrap();
        let lines = block
            .lines()
            .filter_map(|l| l.trim().strip_prefix("line ["))
            .map(|l| l.trim_end_matches(']').split(", ").map(|v| v.parse().unwrap()).collect())
            .collect();
        let axis = block.lines().find(|l| l.trim().starts_with("x-axis")).unwrap();
        let ticks = axis.split('[').nth(1).unwrap().trim_end_matches(']').split(", ").map(String::from).collect();
        (lines, ticks, block.to_string())
    }

    #[test]
    fn charts_show_both_models_in_visible_colours_up_to_the_last_point() {
        let mut r = record(0.01, (0.0, 0.02), true);
        r.curves.roc = points(&[(0.0, 0.0), (0.1, 0.6), (0.5, 0.9), (1.0, 1.0)]);
        r.curves.precision_recall = points(&[(0.0, 1.0), (0.5, 0.8), (1.0, 0.5)]);
        r.production.as_mut().unwrap().curves = Some(Curves {
            roc: points(&[(0.0, 0.0), (0.2, 0.5), (1.0, 1.0)]),
            precision_recall: points(&[(0.0, 1.0), (1.0, 0.5)]),
        });
        let md = pull_request_markdown(&r, None, "<!-- m -->", COMMENT_LIMIT, "x", "");
        let (lines, ticks, block) = first_chart(&md);
        // Candidate, production, chance; every one reaching (100 %, 100 %): the x axis is a
        // category axis whose last tick is 100.
        assert_eq!(lines.len(), 3, "{block}");
        assert_eq!(ticks.len(), CHART_POINTS);
        assert_eq!(ticks.last().map(String::as_str), Some("100"));
        for line in &lines {
            assert_eq!(line.len(), CHART_POINTS);
            assert_eq!(*line.last().unwrap(), 100.0, "{block}");
        }
        assert_eq!(lines[0][2], 60.0, "the candidate's TPR at 10 % FPR");
        assert!(block.contains("plotColorPalette: \"#1f77b4, #ff7f0e, #7f7f7f\""), "{block}");
        assert!(!block.to_ascii_uppercase().contains("#ECECFF"));
        assert!(md.contains("blue: candidate v2 · orange: production v1 · grey: chance"), "{md}");
        assert!(md.contains("ROC curve, AUC ") && md.contains("(production "), "{md}");
        // Without production's curves (an older record), the candidate and chance only.
        r.production.as_mut().unwrap().curves = None;
        let md = pull_request_markdown(&r, None, "<!-- m -->", COMMENT_LIMIT, "x", "");
        assert_eq!(first_chart(&md).0.len(), 2);
        assert!(md.contains("blue: candidate v2 · grey: chance"), "{md}");
    }

    #[test]
    fn a_significant_drop_within_the_margin_is_no_plain_pass() {
        // Δ −0.008 with its interval wholly below zero, margin 0.01: passes, but not as ✅.
        let md = acceptance_markdown(&record(-0.008, (-0.012, -0.004), true));
        assert!(md.contains("| ⚠ |") && md.contains("⚠ a significant drop, within the margin"), "{md}");
        assert!(md.contains("p < 0.0001"), "{md}");
        // Noise (an interval across zero) stays a plain pass.
        let md = acceptance_markdown(&record(-0.008, (-0.02, 0.004), true));
        assert!(!md.contains('⚠'), "{md}");
    }

    #[test]
    fn an_imported_candidate_is_named_with_its_library() {
        let mut r = record(0.01, (0.0, 0.02), true);
        assert!(!acceptance_markdown(&r).contains("trained by"));
        r.origin = Some(crate::pipeline::artifact::Origin {
            library: "lightgbm".into(),
            library_version: Some("v4".into()),
            file: "model.txt".into(),
            sha256: "ab".repeat(32),
            objective: "binary".into(),
            trees: 300,
        });
        let md = acceptance_markdown(&r);
        assert!(
            md.contains(
                "| trained by | lightgbm v4: `model.txt`, sha256 `abababababab`, objective `binary`, 300 trees |"
            ),
            "{md}"
        );
        let comment = pull_request_markdown(&r, None, "<!-- m -->", COMMENT_LIMIT, "x", "");
        assert!(comment.contains("**Trained by** lightgbm v4 (`model.txt`, sha256 `abababababab`)"), "{comment}");
    }

    #[test]
    fn p_values_and_cuts() {
        assert_eq!(p_value(0.5), "p = 0.5000");
        assert_eq!(p_value(0.00005), "p < 0.0001");
        assert_eq!(cut_to("a✅b", 2), "a");
        assert_eq!(cut_to("a✅b", 4), "a✅");
    }
}
