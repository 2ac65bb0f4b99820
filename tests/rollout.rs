//! Rollouts in the registry: who may be a candidate, one open at a time, each step an event of
//! the history, the compare-and-swap on the step, promote and abort — through the library and
//! through `mlgate rollout` on every kind of registry.

use model::lifecycle::registry::{Action, Actor, Registry};
use model::lifecycle::rollout::{RolloutMode, RolloutStep};
use model::Error;

use crate::registry_git::{bare_repository, candidate, job, registry_json, run_in, Env, SeaweedFs};
use crate::registry_rules::four_versions;

fn actor(when: &str) -> Actor {
    Actor { who: "tester".into(), when: when.into(), commit: None }
}

fn steps(weights: &[u32]) -> Vec<RolloutStep> {
    weights.iter().map(|&weight| RolloutStep { weight, pause_seconds: 60 }).collect()
}

/// Four versions (v1–v3 passed, v4 failed), v1 in production, v3 staged.
fn with_production(dir: &std::path::Path) -> Registry {
    let registry = four_versions(dir);
    registry.promote(Some("v1"), None, &actor("2026-01-01T00:00:00Z")).unwrap();
    registry
}

#[test]
fn a_rollout_is_refused_without_production_for_a_failed_verdict_for_production_and_when_one_is_open() {
    let dir = tempfile::tempdir().unwrap();
    let registry = four_versions(dir.path());
    let a = actor("2026-01-01T00:00:00Z");
    let refused = registry.start_rollout(None, RolloutMode::Canary, steps(&[10, 50]), &a).unwrap_err();
    assert!(matches!(refused, Error::RolloutWithoutProduction), "{refused:?}");
    assert!(refused.to_string().contains("mlgate deploy"), "{refused}");
    registry.promote(Some("v1"), None, &a).unwrap();

    let refused = registry.start_rollout(Some("v4"), RolloutMode::Canary, steps(&[10]), &a).unwrap_err();
    assert!(matches!(&refused, Error::RolloutVerdictFailed { version, .. } if version == "v4"), "{refused:?}");
    assert!(refused.is_refusal());
    assert!(refused.to_string().contains("v4 did not pass acceptance (roc_auc >= 0.999)"), "{refused}");

    let refused = registry.start_rollout(Some("v1"), RolloutMode::Shadow, steps(&[0]), &a).unwrap_err();
    assert!(matches!(&refused, Error::RolloutOfProduction { version } if version == "v1"), "{refused:?}");

    let refused = registry.start_rollout(Some("v9"), RolloutMode::Canary, steps(&[10]), &a).unwrap_err();
    assert!(matches!(refused, Error::UnknownVersion { .. }), "{refused:?}");

    // Steps that do not suit the mode name the key.
    let refused = registry.start_rollout(None, RolloutMode::Canary, steps(&[50, 20]), &a).unwrap_err();
    assert!(matches!(&refused, Error::Param(p) if p.key() == "rollout.steps[1].weight"), "{refused:?}");
    let refused = registry.start_rollout(None, RolloutMode::Shadow, steps(&[10]), &a).unwrap_err();
    assert!(matches!(&refused, Error::Param(p) if p.key() == "rollout.steps[0].weight"), "{refused:?}");

    // Nothing of the refusals reached the state or the history.
    assert!(registry.state().unwrap().rollout.is_none());
    assert!(registry.history().unwrap().iter().all(|e| e.rollout.is_none()));

    let rollout = registry.start_rollout(None, RolloutMode::Canary, steps(&[10, 50]), &a).unwrap();
    assert_eq!((rollout.candidate.as_str(), rollout.baseline.as_str(), rollout.weight), ("v3", "v1", 10));
    for refused in [
        registry.start_rollout(Some("v2"), RolloutMode::Canary, steps(&[10]), &a).unwrap_err(),
        registry.promote(Some("v2"), None, &a).unwrap_err(),
    ] {
        assert!(matches!(refused, Error::RolloutOpen { .. }), "{refused:?}");
        let message = refused.to_string();
        assert!(message.contains("canary of v3 against v1 at 10 % (step 1 of 2)"), "{message}");
        assert!(message.contains("mlgate rollout abort"), "{message}");
    }
    assert!(registry.check().unwrap().is_empty(), "{:?}", registry.check());
}

#[test]
fn each_step_of_a_rollout_is_an_event_and_a_stale_step_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let registry = with_production(dir.path());
    for refused in [
        registry.step_rollout(0, "r", &actor("t")).unwrap_err(),
        registry.promote_rollout("r", &actor("t")).map(|_| ()).unwrap_err(),
        registry.abort_rollout("r", true, &actor("t")).map(|_| ()).unwrap_err(),
    ] {
        assert!(matches!(refused, Error::NoRollout), "{refused:?}");
    }
    let started = registry
        .start_rollout(None, RolloutMode::Canary, steps(&[10, 25, 50]), &actor("2026-01-02T00:00:00Z"))
        .unwrap();
    let seq = registry.state().unwrap().seq;
    assert_eq!(started.seq, seq, "the rollout names its start event");

    let stepped = registry.step_rollout(0, "step 1 healthy", &actor("2026-01-02T00:05:00Z")).unwrap();
    assert_eq!((stepped.step, stepped.weight), (1, 25));
    assert_eq!(stepped.step_started, "2026-01-02T00:05:00Z");
    assert_eq!(stepped.started, started.started, "who started it stays");
    assert_eq!(stepped.seq, started.seq);

    // A second analysis that read step 0 is too late: nothing changes.
    let refused = registry.step_rollout(0, "step 1 healthy", &actor("2026-01-02T00:05:01Z")).unwrap_err();
    assert!(matches!(refused, Error::RolloutStepMoved { expected: 1, actual: 2, .. }), "{refused:?}");
    assert_eq!(registry.state().unwrap().rollout.unwrap(), stepped);

    registry.step_rollout(1, "step 2 healthy", &actor("2026-01-02T00:15:00Z")).unwrap();
    let refused = registry.step_rollout(2, "r", &actor("t")).unwrap_err();
    assert!(matches!(refused, Error::RolloutLastStep { .. }), "{refused:?}");
    assert!(refused.to_string().contains("rollout promote"), "{refused}");

    let events: Vec<_> = registry.history().unwrap().into_iter().filter(|e| e.rollout.is_some()).collect();
    let actions: Vec<Action> = events.iter().map(|e| e.action).collect();
    assert_eq!(actions, [Action::RolloutStart, Action::RolloutStep, Action::RolloutStep]);
    let weights: Vec<u32> = events.iter().map(|e| e.rollout.as_ref().unwrap().weight).collect();
    assert_eq!(weights, [10, 25, 50]);
    for e in &events {
        assert_eq!((e.from.as_deref(), e.to.as_deref()), (Some("v1"), Some("v3")), "{e:?}");
    }
    assert!(events[1].reason.ends_with(": step 1 healthy"), "{}", events[1].reason);
    // The history file holds them under their names.
    let history = std::fs::read_to_string(dir.path().join("registry/history.jsonl")).unwrap();
    assert!(history.contains("\"action\":\"rollout_start\"") && history.contains("\"action\":\"rollout_step\""));
    assert!(registry.check().unwrap().is_empty(), "{:?}", registry.check());
}

#[test]
fn a_promote_moves_production_and_closes_the_rollout() {
    let dir = tempfile::tempdir().unwrap();
    let registry = with_production(dir.path());
    registry.start_rollout(Some("v2"), RolloutMode::Shadow, steps(&[0, 0]), &actor("t1")).unwrap();
    let promotion = registry.promote_rollout("every step passed", &actor("t2")).unwrap();
    assert_eq!((promotion.deployed.as_str(), promotion.replaced.as_deref()), ("v2", Some("v1")));
    let state = registry.state().unwrap();
    assert_eq!(state.aliases.get("production").map(String::as_str), Some("v2"));
    assert_eq!(state.previous_productions, ["v1"]);
    assert!(state.rollout.is_none());
    let last = registry.history().unwrap().pop().unwrap();
    assert_eq!(last.action, Action::RolloutPromote);
    assert_eq!((last.from.as_deref(), last.to.as_deref()), (Some("v1"), Some("v2")));
    assert!(last.reason.contains("promoted: every step passed"), "{}", last.reason);
    assert!(registry.check().unwrap().is_empty(), "{:?}", registry.check());
    // A rollback goes back to the baseline, as after a deploy.
    assert_eq!(registry.rollback(None, "r", None, &actor("t3")).unwrap(), ("v2".into(), "v1".into()));
}

#[test]
fn an_abort_leaves_production_and_marks_the_candidate() {
    let dir = tempfile::tempdir().unwrap();
    let registry = with_production(dir.path());
    registry.start_rollout(None, RolloutMode::Canary, steps(&[20]), &actor("t1")).unwrap();
    let closed = registry.abort_rollout("accuracy dropped by 0.12", true, &actor("t2")).unwrap();
    assert_eq!(closed.candidate, "v3");
    let state = registry.state().unwrap();
    assert_eq!(state.aliases.get("production").map(String::as_str), Some("v1"));
    assert_eq!(state.aliases.get("staging"), None, "staging leaves the candidate marked breached");
    assert!(state.rollout.is_none());
    let mark = state.breach_mark("v3").unwrap();
    assert!(mark.unstaged && mark.reason.contains("accuracy dropped by 0.12"), "{mark:?}");
    let last = registry.history().unwrap().pop().unwrap();
    assert_eq!((last.action, last.breached.as_deref()), (Action::RolloutAbort, Some("v3")));
    assert!(registry.check().unwrap().is_empty(), "{:?}", registry.check());
    // Marked, it is not rolled out again; a deploy of it needs a forced reason.
    let refused = registry.start_rollout(Some("v3"), RolloutMode::Canary, steps(&[20]), &actor("t3")).unwrap_err();
    assert!(matches!(&refused, Error::RolloutCandidateBreached { version, .. } if version == "v3"), "{refused:?}");
    assert!(matches!(registry.promote(Some("v3"), None, &actor("t3")), Err(Error::MarkedBreached { .. })));

    // An abort without evidence marks nothing.
    registry.start_rollout(Some("v2"), RolloutMode::Canary, steps(&[20]), &actor("t4")).unwrap();
    registry.abort_rollout("not today", false, &actor("t5")).unwrap();
    let state = registry.state().unwrap();
    assert!(state.breach_mark("v2").is_none() && state.rollout.is_none());
}

#[test]
fn a_rollback_closes_an_open_rollout_and_prune_keeps_its_candidate() {
    let dir = tempfile::tempdir().unwrap();
    let registry = four_versions(dir.path());
    registry.promote(Some("v1"), None, &actor("t")).unwrap();
    registry.promote(Some("v2"), None, &actor("t")).unwrap();
    registry.start_rollout(Some("v3"), RolloutMode::Canary, steps(&[20]), &actor("t")).unwrap();
    // v4 (failed) is registered last: a prune keeping one version must keep v3 for the rollout.
    assert_eq!(registry.prune(1, &actor("t")).unwrap(), Vec::<String>::new());
    assert_eq!(registry.rollback(None, "incident", None, &actor("t")).unwrap(), ("v2".into(), "v1".into()));
    assert!(registry.state().unwrap().rollout.is_none());
    let last = registry.history().unwrap().pop().unwrap();
    assert!(last.reason.contains("closes the canary rollout of v3 against v2"), "{}", last.reason);
    assert!(registry.check().unwrap().is_empty(), "{:?}", registry.check());
}

#[test]
fn a_state_and_history_written_before_rollouts_read_as_none_open() {
    let dir = tempfile::tempdir().unwrap();
    let registry = with_production(dir.path());
    let state = std::fs::read_to_string(dir.path().join("registry/state.json")).unwrap();
    let history = std::fs::read_to_string(dir.path().join("registry/history.jsonl")).unwrap();
    assert!(!state.contains("rollout") && !history.contains("rollout"), "nothing is written when none is open");
    assert!(registry.state().unwrap().rollout.is_none());
    assert!(registry.start_rollout(None, RolloutMode::Canary, steps(&[5]), &actor("t")).is_ok());
}

/// A job whose configuration has a `[rollout]` section of two canary steps.
fn rollout_job(seed: u64) -> tempfile::TempDir {
    let dir = job(seed);
    let path = dir.path().join("pipeline.toml");
    let mut config = std::fs::read_to_string(&path).unwrap();
    config.push_str("\n[rollout]\nsteps = [{ weight = 20, pause = \"1m\" }, { weight = 60, pause = \"1h30m\" }]\n");
    std::fs::write(&path, config).unwrap();
    dir
}

/// Jobs in separate folders that share only the registry: a canary started, refused twice
/// (another rollout, a deploy), aborted (the candidate marked), a shadow started and promoted,
/// a failed candidate refused; every change an event, the registry consistent.
fn rollouts_through_the_cli(registry: &str, env: Env) {
    let (_first, _) = candidate(registry, 42, true, env);
    let (_second, _) = candidate(registry, 43, false, env);
    let ops = rollout_job(44);
    let run = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend(["--registry", registry]);
        run_in(ops.path(), &all, env)
    };
    let (code, out, err) = run(&["rollout", "status"]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("no rollout is open"), "{out}");

    let (code, out, err) = run(&["rollout", "start", "--reason", "first canary"]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("started a canary of v2 against v1 at 20 % (step 1 of 2)"), "{out}");
    assert!(out.contains("[20 % for 1m] → 60 % for 1h30m"), "{out}");
    let (code, out, err) = run(&["rollout", "status", "--json"]);
    assert_eq!(code, Some(0), "{out}{err}");
    let status: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(status["rollout"]["candidate"], "v2", "{status}");
    assert_eq!(status["rollout"]["baseline"], "v1", "{status}");
    assert_eq!(status["rollout"]["weight"], 20, "{status}");
    assert_eq!(status["rollout"]["mode"], "canary", "{status}");
    assert_eq!(status["next_weight"], 60, "{status}");
    let (code, out, _) = run(&["rollout", "status"]);
    assert_eq!(code, Some(0));
    assert!(out.contains("step       1 of 2") && out.contains("next       60 %"), "{out}");

    for args in [&["rollout", "start", "--shadow"][..], &["deploy"][..]] {
        let (code, out, err) = run(args);
        assert_eq!(code, Some(1), "{args:?}: {out}{err}");
        assert!(err.contains("a rollout is open: canary of v2 against v1"), "{err}");
    }
    let (code, out, err) = run(&["rollout", "abort"]);
    assert_eq!(code, Some(2), "--reason is required: {out}{err}");
    let (code, out, err) = run(&["rollout", "abort", "--reason", "complaints from the shop floor"]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("production stays v1") && out.contains("v2 is marked breached"), "{out}");
    let (code, out, err) = run(&["rollout", "start"]);
    assert_eq!(code, Some(1), "{out}{err}");
    assert!(err.contains("nothing to roll out: no version is staged"), "{err}");

    // A failed candidate is registered, and refused as a rollout's candidate.
    let strict = job(45);
    let path = strict.path().join("pipeline.toml");
    let config = std::fs::read_to_string(&path).unwrap().replace("roc_auc = 0.72", "roc_auc = 0.9999");
    std::fs::write(&path, config).unwrap();
    let (code, o, e) = run_in(strict.path(), &["build"], env);
    assert_eq!(code, Some(0), "{o}{e}");
    let (code, o, e) = run_in(strict.path(), &["acceptance", "--registry", registry], env);
    assert_eq!(code, Some(1), "{o}{e}");
    let (code, out, err) = run(&["rollout", "start", "--version", "v3"]);
    assert_eq!(code, Some(1), "{out}{err}");
    assert!(err.contains("v3 did not pass acceptance") && err.contains("only a version whose verdict passed"), "{err}");

    let (_third, _) = candidate(registry, 46, false, env);
    let (code, out, err) = run(&["rollout", "start", "--shadow"]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("started a shadow of v4 against v1 (step 1 of 2)"), "{out}");
    let doc = registry_json(registry, env);
    assert_eq!(doc["rollout"]["candidate"], "v4", "{doc}");
    let (code, out, err) = run(&["rollout", "promote", "--reason", "the shadow agreed"]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("promoted v4 to production (replaced v1)"), "{out}");

    let doc = registry_json(registry, env);
    assert_eq!(doc["aliases"]["production"], "v4", "{doc}");
    assert!(doc["rollout"].is_null(), "{doc}");
    let v2 = doc["versions"].as_array().unwrap().iter().find(|v| v["version"] == "v2").unwrap();
    assert!(v2["breached"]["reason"].as_str().unwrap().contains("complaints from the shop floor"), "{v2}");
    let actions: Vec<&str> = doc["history"].as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert_eq!(
        actions,
        [
            "register",
            "promote",
            "register",
            "rollout_start",
            "rollout_abort",
            "register",
            "register",
            "rollout_start",
            "rollout_promote"
        ],
        "{doc}"
    );
    let (code, out, err) = run(&["registry"]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("rollout_promote v1 → v4"), "{out}");
    assert!(out.contains("rollout_abort v2 beside v1 (v2 marked breached)"), "{out}");
}

#[test]
fn rollouts_through_the_cli_on_a_folder_registry() {
    let dir = tempfile::tempdir().unwrap();
    let registry = dir.path().join("registry");
    rollouts_through_the_cli(registry.to_str().unwrap(), &[]);
}

#[test]
fn rollouts_through_the_cli_on_a_git_registry() {
    let (_dir, repo) = bare_repository();
    rollouts_through_the_cli(&format!("git+file://{}#mlgate-registry", repo.display()), &[]);
    let log = std::process::Command::new("git")
        .arg("-C")
        .arg(&repo)
        .args(["log", "--format=%s", "mlgate-registry"])
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&log.stdout);
    assert!(log.lines().next().unwrap().starts_with("rollout_promote v4: shadow of v4 against v1"), "{log}");
}

#[test]
fn rollouts_through_the_cli_on_s3_compatible_storage() {
    let Some(server) = SeaweedFs::start("models") else { return };
    let owned = server.env();
    let env: Vec<(&str, &str)> = owned.iter().map(|(k, v)| (*k, v.as_str())).collect();
    rollouts_through_the_cli("s3://models/team/rollout", &env);
}
