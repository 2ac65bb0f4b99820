//! The registry's refusals and what `mlgate registry` shows: the versions with their acceptance
//! figures, the history naming the version each event is about, refusals that say what is true,
//! and output into a pipe closed early.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

use model::lifecycle::acceptance::judge;
use model::lifecycle::registry::{Actor, Outcome, Registry, VerdictRecord};
use model::{Error, LabelPolicy};

use crate::support::{mlgate, mlgate_bin, small_config, small_csv, text};

fn actor() -> Actor {
    Actor { who: "tester".into(), when: "2026-01-01T00:00:00Z".into(), commit: None }
}

/// Registers four small models in `dir` as acceptance would (their metrics.json included): v1 to
/// v3 passed, v4 failed.
pub(crate) fn four_versions(dir: &Path) -> Registry {
    // `mlgate registry` reads a configuration even when --registry names the registry.
    std::fs::write(dir.join("pipeline.toml"), crate::support::SMALL_CONFIG).unwrap();
    let registry = Registry::open(dir.join("registry"));
    let data =
        model::read_csv(small_csv(600).as_bytes(), "small.csv", &small_config().schema, LabelPolicy::Required).unwrap();
    for seed in 1..=4 {
        let mut config = small_config();
        config.split.seed = seed;
        let artifact = model::pipeline::build::build(&config, &data, &Default::default()).unwrap();
        let mut record = judge(&config, &artifact, &data, "small.csv", None).unwrap();
        assert!(record.passed, "{:?}", record.checks);
        let failed: Vec<String> = if seed == 4 { vec!["roc_auc >= 0.999".into()] } else { Vec::new() };
        record.passed = failed.is_empty();
        let verdict = VerdictRecord {
            passed: record.passed,
            artifact_sha256: artifact.checksum(),
            failed,
            decided_at: "2026-01-01T00:00:00Z".into(),
        };
        registry
            .register(
                &artifact.to_bytes(),
                &verdict,
                |v| {
                    record.version = Some(v.into());
                    vec![("metrics.json".into(), serde_json::to_vec(&record).unwrap())]
                },
                &actor(),
            )
            .unwrap();
    }
    registry
}

#[test]
fn rollback_refusals_say_which_versions_were_in_production_and_what_puts_a_failed_one_there() {
    let dir = tempfile::tempdir().unwrap();
    let registry = four_versions(dir.path());
    for v in ["v1", "v2", "v3"] {
        registry.promote(Some(v), None, &actor()).unwrap();
    }
    assert_eq!(registry.rollback(None, "r", None, &actor()).unwrap(), ("v3".into(), "v2".into()));
    assert_eq!(registry.rollback(None, "r", None, &actor()).unwrap(), ("v2".into(), "v1".into()));
    // v2 and v3 were in production: v1 is not "the only version that has been in production".
    let refused = registry.rollback(None, "r", None, &actor()).unwrap_err();
    assert!(matches!(&refused, Error::NoEarlierProduction { others, .. } if others == &["v2", "v3"]), "{refused:?}");
    let message = refused.to_string();
    assert!(!message.contains("only version"), "{message}");
    assert!(message.contains("v2, v3 were in production") && message.contains("rollback --to VERSION"), "{message}");
    // v4 failed and was never in production: deploy, not rollback, is the tool.
    let refused = registry.rollback(Some("v4"), "r", None, &actor()).unwrap_err();
    assert!(matches!(refused, Error::NeverInProduction { .. }), "{refused:?}");
    let message = refused.to_string();
    assert!(message.contains("v4 did not pass acceptance (roc_auc >= 0.999)"), "{message}");
    assert!(message.contains("never been in production"), "{message}");
    assert!(message.contains("deploy --version v4 --force --reason TEXT"), "{message}");
    // v3, rolled back from, may be named.
    assert_eq!(registry.rollback(Some("v3"), "r", None, &actor()).unwrap(), ("v1".into(), "v3".into()));
}

#[test]
fn registry_names_the_version_of_each_event_and_shows_each_versions_acceptance_figures() {
    let dir = tempfile::tempdir().unwrap();
    four_versions(dir.path());
    let out = mlgate(dir.path(), &["registry", "--registry", "registry"], &[]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    // The failed registration of v4 names v4; staging stays at v3.
    let v4 = stdout.lines().find(|l| l.contains(" register ") && l.contains("acceptance failed"));
    assert!(v4.is_some_and(|l| l.contains("v4 (staging v3 → v3)")), "{stdout}");
    assert!(stdout.lines().any(|l| l.contains(" register ") && l.contains("v1 (staging - → v1)")), "{stdout}");
    let version = stdout.lines().find(|l| l.trim_start().starts_with("v4 ")).unwrap();
    assert!(version.contains("FAILED") && version.contains("  roc_auc ") && version.contains("  f1 "), "{version}");
    assert!(version.contains("  average_precision "), "{version}");

    let out = mlgate(dir.path(), &["registry", "--registry", "registry", "--json"], &[]);
    let document: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let versions = document["versions"].as_array().unwrap();
    assert_eq!(versions.len(), 4);
    for v in versions {
        let figures = &v["acceptance"];
        assert!(figures["roc_auc"].as_f64().unwrap() > 0.5, "{v}");
        assert!(figures["average_precision"].is_f64() && figures["f1"].is_f64(), "{v}");
        assert_eq!(figures["passed"], v["passed"], "{v}");
    }
    assert_eq!(versions[3]["acceptance"]["passed"], false);
}

#[test]
fn registry_into_a_pipe_closed_early_exits_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let registry = four_versions(dir.path());
    registry.promote(Some("v1"), None, &actor()).unwrap();
    // A history far longer than a pipe's buffer.
    for _ in 0..2000 {
        registry.record_monitoring("v1", Outcome::Healthy, "healthy on the day's sessions", &actor()).unwrap();
    }
    let mut child = Command::new(mlgate_bin())
        .args(["registry", "--registry", "registry"])
        .current_dir(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut first).unwrap();
    assert!(first.starts_with("registry "), "{first}");
    // The reader is gone: the rest of the output meets a closed pipe.
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_ne!(out.status.code(), Some(101), "{stderr}");
}

#[test]
fn a_version_rolled_back_on_evidence_is_marked_and_kept_out_of_staging_and_production() {
    let dir = tempfile::tempdir().unwrap();
    let registry = four_versions(dir.path());
    registry.promote(Some("v1"), None, &actor()).unwrap();
    assert_eq!(registry.promote(None, None, &actor()).unwrap().deployed, "v3", "staging is v3");
    // A person's rollback marks nothing.
    assert_eq!(registry.rollback(None, "customer complaints", None, &actor()).unwrap(), ("v3".into(), "v1".into()));
    assert!(registry.state().unwrap().breached.is_empty());
    registry.promote(None, None, &actor()).unwrap();

    // An automatic rollback marks v3 and takes staging off it, in one event.
    let done = registry.rollback_breached(None, "automatic rollback: roc_auc >= 0.7", None, &actor()).unwrap();
    assert_eq!(done, ("v3".into(), "v1".into()));
    let state = registry.state().unwrap();
    assert_eq!(state.aliases.get("staging"), None);
    let mark = state.breach_mark("v3").unwrap();
    assert!(mark.unstaged && mark.reason == "automatic rollback: roc_auc >= 0.7", "{mark:?}");
    let last = registry.history().unwrap().pop().unwrap();
    assert_eq!(last.breached.as_deref(), Some("v3"));
    assert!(registry.check().unwrap().is_empty(), "{:?}", registry.check());

    // A plain deploy has nothing to promote, and says why.
    let refused = registry.promote(None, None, &actor()).unwrap_err();
    assert!(matches!(&refused, Error::StagingBreached { version, .. } if version == "v3"), "{refused:?}");
    assert!(refused.is_refusal());
    let message = refused.to_string();
    assert!(message.contains("no version is staged since v3 was marked breached 2026-01-01T00:00:00Z by tester"));
    // By name, or as a rollback target, it needs a forced reason.
    for refused in [
        registry.promote(Some("v3"), None, &actor()).unwrap_err(),
        registry.rollback(Some("v3"), "r", None, &actor()).unwrap_err(),
    ] {
        assert!(matches!(&refused, Error::MarkedBreached { version, .. } if version == "v3"), "{refused:?}");
    }
    // The same artifact accepted again does not stage it.
    let artifact = registry.artifact("v3").unwrap();
    let verdict = registry.verdict("v3").unwrap();
    assert_eq!(registry.register(&artifact.to_bytes(), &verdict, |_| Vec::new(), &actor()).unwrap(), "v3");
    assert_eq!(registry.alias("staging").unwrap(), None);
    assert!(registry.history().unwrap().pop().unwrap().reason.contains("v3 is marked breached"));

    // A forced deploy puts it back, recorded as forced with the mark and the reason; the mark stays.
    let promotion = registry.promote(Some("v3"), Some("the labels were wrong"), &actor()).unwrap();
    assert_eq!(promotion.deployed, "v3");
    let last = registry.history().unwrap().pop().unwrap();
    assert!(last.forced && last.reason.starts_with("forced over the breach mark (marked breached"), "{last:?}");
    assert!(last.reason.ends_with(": the labels were wrong"), "{last:?}");
    assert!(registry.state().unwrap().breach_mark("v3").is_some());
    assert!(registry.check().unwrap().is_empty(), "{:?}", registry.check());

    // `rollback --mark-breached` is the person's way to the same mark.
    let out =
        mlgate(dir.path(), &["rollback", "--registry", "registry", "--mark-breached", "--reason", "fraud spike"], &[]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(stdout.contains("v3 is marked breached"), "{stdout}");
    assert_eq!(registry.state().unwrap().breach_mark("v3").unwrap().reason, "fraud spike");
}

#[test]
fn a_state_written_before_marks_existed_reads_as_none_marked() {
    let dir = tempfile::tempdir().unwrap();
    let registry = four_versions(dir.path());
    registry.promote(Some("v1"), None, &actor()).unwrap();
    let path = dir.path().join("registry/state.json");
    let state: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    assert!(state.get("breached").is_none(), "an empty list is not written: {state}");
    let old = std::fs::read_to_string(&path).unwrap();
    assert!(!old.contains("breached"));
    assert!(registry.state().unwrap().breached.is_empty());
    assert_eq!(registry.promote(None, None, &actor()).unwrap().deployed, "v3");
}
