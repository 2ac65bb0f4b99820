//! The live analysis's report in Markdown: production's checks, and a rollout's comparison of
//! its candidate with the baseline and its decision.

use crate::lifecycle::live::{Analysis, CheckRun, CheckStatus, Status};
use crate::lifecycle::rollout::RolloutMode;
use crate::lifecycle::rollout_analysis::{Decision, RatioCheck, RolloutAnalysis, SideFigures, Verdict};
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

fn verdict_cell(v: Verdict) -> &'static str {
    match v {
        Verdict::Passed => "✅ passed",
        Verdict::Failed => "🚨 failed",
        Verdict::NotJudged => "➖ not judged",
    }
}

fn ratio_row(md: &mut String, label: &str, r: &RatioCheck, unit: &str) {
    let figure = |v: Option<f64>| v.map_or("no data".to_string(), |v| format!("{v:.4}{unit}"));
    md.push_str(&format!(
        "| {label} | {} | {} | {} | ≤ {} (each at least {}{unit}) | {} |\n",
        figure(r.candidate),
        figure(r.baseline),
        r.ratio.map_or("–".to_string(), |x| format!("ratio {x:.2}")),
        r.max,
        r.floor,
        verdict_cell(r.verdict)
    ));
}

fn side_column(f: &SideFigures) -> [String; 6] {
    let rate = f.failure_rate.map_or(String::new(), |r| format!(" ({:.2} %)", 100.0 * r));
    [
        f.records.to_string(),
        format!("{}{rate}", f.failures),
        f.latency_p95_seconds.map_or("no data".into(), |v| format!("{v:.4} s")),
        f.joined.to_string(),
        f.right.to_string(),
        show(f.accuracy),
    ]
}

/// The report of one analysis of a rollout: the decision and why, both sides' figures, each
/// check, the paired table in shadow mode, the queries, and what was done.
pub fn rollout_markdown(a: &RolloutAnalysis, prometheus: &str) -> String {
    let s = &a.subject;
    let (icon, title) = match a.decision {
        Decision::Wait => ("⏸️", "waiting for the step's pause to end".to_string()),
        Decision::Inconclusive => ("➖", "inconclusive, waiting for more evidence".to_string()),
        Decision::Step => ("⏩", "the step passed".to_string()),
        Decision::Promote => ("✅", format!("the last step passed, {} to production", s.candidate)),
        Decision::Abort => ("🚨", "aborted".to_string()),
    };
    let at = match s.mode {
        RolloutMode::Canary => format!("canary at {} % of the records", s.weight),
        RolloutMode::Shadow => "shadow (every record scored by both, the baseline answering)".to_string(),
    };
    let mut md = format!(
        "## {icon} Rollout of {} {} against {}: {title}\n\n\
         Decision: **{}**. The {at}, step {} of {}, started {} s ago (pause {} s); every figure is the \
         sum over every replica of its increase in the last {} (Prometheus at {}). Replicas following \
         the rollout{}: {}{}.\n\n",
        code(&s.model),
        s.candidate,
        s.baseline,
        a.decision.name(),
        s.step + 1,
        s.steps,
        s.elapsed_seconds,
        s.pause_seconds,
        a.window,
        code(prometheus),
        match s.mode {
            RolloutMode::Canary => format!(" at {} %", s.weight),
            RolloutMode::Shadow => String::new(),
        },
        a.replicas.at_weight,
        if a.replicas.elsewhere.is_empty() {
            String::new()
        } else {
            format!(" (elsewhere: {})", a.replicas.elsewhere.join(", "))
        }
    );
    for r in &a.reasons {
        md.push_str(&format!("- {}\n", text(r)));
    }
    let (c, b) = (&a.candidate_figures, &a.baseline_figures);
    md.push_str(&format!(
        "\n| | candidate {} ({}) | baseline {} ({}) |\n|---|---|---|\n",
        text(&c.version),
        c.role,
        text(&b.version),
        b.role
    ));
    let (cc, bc) = (side_column(c), side_column(b));
    for (i, label) in
        ["records scored", "scoring failures", "p95 scoring latency", "joined predictions", "right", "accuracy"]
            .iter()
            .enumerate()
    {
        md.push_str(&format!("| {label} | {} | {} |\n", cc[i], bc[i]));
    }
    md.push_str("\n| check | candidate | baseline | compared | passes when | verdict |\n|---|---|---|---|---|---|\n");
    ratio_row(&mut md, "failure rate", &a.error_ratio, "");
    ratio_row(&mut md, "p95 scoring latency", &a.latency_ratio, " s");
    let q = &a.quality;
    let how = if q.paired.is_some() { "paired" } else { "unpaired" };
    let compared = q.difference().map_or("–".to_string(), |d| {
        format!("{:+.4} ({:.0} % interval {:+.4} … {:+.4}, {how})", d.delta, 100.0 * d.confidence, d.ci_low, d.ci_high)
    });
    md.push_str(&format!(
        "| {} | {} | {} | {compared} | the interval not entirely below 0; {} joined on each side | {} |\n",
        q.metric,
        show(c.accuracy),
        show(b.accuracy),
        q.min_feedback,
        verdict_cell(q.verdict)
    ));
    for (name, note) in [
        ("failure rate", &a.error_ratio.note),
        ("p95 scoring latency", &a.latency_ratio.note),
        (q.metric.as_str(), &q.note),
    ] {
        md.push_str(&format!("\n- {name}: {}", text(note)));
    }
    md.push('\n');
    if let Some(p) = &q.paired {
        let n = &p.counts;
        md.push_str(&format!(
            "\nThe same requests, scored by both (joined with their feedback):\n\n\
             | | candidate right | candidate wrong |\n|---|---|---|\n\
             | baseline right | {} | {} |\n| baseline wrong | {} | {} |\n\n\
             McNemar's exact test on the {} requests where they differ: p = {:.4}.\n",
            n.both_right,
            n.baseline_only,
            n.candidate_only,
            n.both_wrong,
            n.baseline_only + n.candidate_only,
            p.mcnemar.p_value
        ));
    }
    md.push_str("\n<details><summary>Queries</summary>\n\n");
    for q in &a.queries {
        md.push_str(&format!("- {}: {}\n", text(&q.name), code(&q.promql)));
    }
    md.push_str("\n</details>\n");
    if let Some(action) = &a.action {
        md.push_str(&format!("\n{action}\n"));
    }
    md
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::lifecycle::live::Sample;
    use crate::lifecycle::rollout_analysis::{analyse, Criteria, Query, Subject};

    fn sample(labels: &[(&str, &str)], value: f64) -> Sample {
        Sample { labels: labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(), value }
    }

    #[test]
    fn a_rollout_report_shows_both_sides_every_check_and_in_shadow_the_pairs() {
        let subject = Subject {
            model: "shop|`x`".into(),
            candidate: "v3".into(),
            baseline: "v2".into(),
            mode: RolloutMode::Shadow,
            step: 0,
            steps: 1,
            weight: 0,
            pause_seconds: 0,
            elapsed_seconds: 90,
        };
        let criteria = Criteria {
            min_feedback: 50,
            confidence: 0.9,
            max_error_ratio: 2.0,
            max_latency_ratio: 1.5,
            latency_floor_seconds: crate::pipeline::rollout::LATENCY_FLOOR_SECONDS,
        };
        let (b, c) = ("baseline_correct", "candidate_correct");
        let mut answers = BTreeMap::new();
        answers.insert(
            Query::Pairs,
            vec![
                sample(&[(b, "true"), (c, "true")], 70.0),
                sample(&[(b, "true"), (c, "false")], 5.0),
                sample(&[(b, "false"), (c, "true")], 9.0),
                sample(&[(b, "false"), (c, "false")], 16.0),
            ],
        );
        answers.insert(Query::Replicas, vec![sample(&[], 0.0)]);
        let mut analysis = analyse(&subject, &criteria, &answers).unwrap();
        analysis.action = Some("No change.".into());
        let md = rollout_markdown(&analysis, "http://prom:9090");
        assert!(md.starts_with("## ➖ Rollout of `shop\\|'x'` v3 against v2: inconclusive"), "{md}");
        assert!(
            md.contains("| joined predictions | 100 | 100 |") && md.contains("| accuracy | 0.7900 | 0.7500 |"),
            "{md}"
        );
        assert!(md.contains("+0.0400 (90 % interval"), "{md}");
        assert!(md.contains("| baseline right | 70 | 5 |\n| baseline wrong | 9 | 16 |"), "{md}");
        assert!(md.contains("McNemar's exact test on the 14 requests where they differ"), "{md}");
        assert!(md.contains("| failure rate | no data | no data | – |") && md.contains("➖ not judged"), "{md}");
        assert!(md.contains("mlgate_shadow_pairs_total") && md.trim_end().ends_with("No change."), "{md}");
    }
}
