//! `action.yml` run as a GitHub runner runs a composite action: each step's `run:` with its
//! shell, the runner's environment and files, inputs and expressions substituted, against the
//! local GitHub API of tests/fake_github.rs.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use yaml_rust2::{Yaml, YamlLoader};

use crate::fake_github::FakeGitHub;
use crate::support::{mlgate_bin, root};

fn action() -> Yaml {
    let text = std::fs::read_to_string(root().join("action.yml")).unwrap();
    YamlLoader::load_from_str(&text).unwrap().remove(0)
}

/// What a run left behind.
struct Job {
    success: bool,
    failed_step: Option<String>,
    outputs: BTreeMap<String, String>,
    summary: String,
    log: String,
}

struct Runner<'a> {
    action_path: PathBuf,
    workspace: PathBuf,
    temp: PathBuf,
    token: String,
    inputs: BTreeMap<String, String>,
    steps: BTreeMap<String, BTreeMap<String, String>>,
    /// Step id → `success`, `failure` or `skipped`.
    outcomes: BTreeMap<String, String>,
    env: Vec<(String, String)>,
    api: &'a FakeGitHub,
    /// `github.action_ref` and `github.action_repository`: empty for `uses: ./`.
    action_ref: String,
    action_repository: String,
    /// `GITHUB_SERVER_URL`.
    server_url: String,
}

/// Parses a GITHUB_OUTPUT / GITHUB_ENV file: `name=value` lines and `name<<DELIM` blocks.
fn parse_file_commands(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        if let Some((name, delimiter)) = line.split_once("<<") {
            let value: Vec<&str> = lines.by_ref().take_while(|l| *l != delimiter).collect();
            out.push((name.to_string(), value.join("\n")));
        } else if let Some((name, value)) = line.split_once('=') {
            out.push((name.to_string(), value.to_string()));
        }
    }
    out
}

impl Runner<'_> {
    fn context(&self, expr: &str) -> String {
        let expr = expr.trim();
        let parts: Vec<&str> = expr.split('.').collect();
        match parts.as_slice() {
            ["inputs", name] => self.inputs.get(*name).cloned().unwrap_or_default(),
            ["github", "token"] => self.token.clone(),
            ["github", "action_path"] => self.action_path.display().to_string(),
            ["github", "workspace"] => self.workspace.display().to_string(),
            ["github", "action_ref"] => self.action_ref.clone(),
            ["github", "action_repository"] => self.action_repository.clone(),
            ["runner", "temp"] => self.temp.display().to_string(),
            ["steps", id, "outputs", name] => {
                self.steps.get(*id).and_then(|o| o.get(*name)).cloned().unwrap_or_default()
            }
            // A skipped step's outcome is `skipped`; a step not reached yet has none (empty).
            ["steps", id, "outcome"] | ["steps", id, "conclusion"] => {
                self.outcomes.get(*id).cloned().unwrap_or_default()
            }
            _ => panic!("the test runner does not know the expression `{expr}`: teach it, or keep action.yml simple"),
        }
    }

    /// Replaces every `${{ … }}`.
    fn substitute(&self, text: &str) -> String {
        let mut out = String::new();
        let mut rest = text;
        while let Some(start) = rest.find("${{") {
            out.push_str(&rest[..start]);
            let end = rest[start..].find("}}").expect("unclosed expression") + start;
            out.push_str(&self.context(&rest[start + 3..end]));
            rest = &rest[end + 2..];
        }
        out.push_str(rest);
        out
    }

    /// `if:` conditions as GitHub evaluates the ones action.yml uses: `always()`, `success()`,
    /// `failure()`, `EXPR == 'literal'` and `EXPR != 'literal'` (compared case-insensitively, as
    /// GitHub compares strings), comparisons joined by `||` (in parentheses beside `&&`), terms
    /// joined by `&&`; without a status function, `success()` is implied.
    fn condition(&self, text: &str, failed: bool) -> bool {
        let terms: Vec<&str> = text.split("&&").map(str::trim).collect();
        let mut status = None;
        let mut all = true;
        for term in terms {
            match term {
                "always()" => status = Some(true),
                "success()" => status = Some(!failed),
                "failure()" => status = Some(failed),
                _ => {
                    let term = term.strip_prefix('(').and_then(|t| t.strip_suffix(')')).unwrap_or(term);
                    all &= term.split("||").any(|c| self.comparison(c, text));
                }
            }
        }
        status.unwrap_or(!failed) && all
    }

    /// `EXPR == 'literal'` or `EXPR != 'literal'`, of the condition `text`.
    fn comparison(&self, term: &str, text: &str) -> bool {
        let (left, right, equal) = match term.split_once("!=") {
            Some((l, r)) => (l, r, false),
            None => {
                let (l, r) = term.split_once("==").unwrap_or_else(|| panic!("unsupported condition `{text}`"));
                (l, r, true)
            }
        };
        let literal = right.trim().trim_matches('\'');
        self.context(left).eq_ignore_ascii_case(literal) == equal
    }

    fn run(mut self, event_name: &str, payload: &str, git_ref: &str) -> Job {
        let action = action();
        for (name, spec) in action["inputs"].as_hash().unwrap() {
            let name = name.as_str().unwrap().to_string();
            if !self.inputs.contains_key(&name) {
                let default = spec["default"].as_str().unwrap_or_default().to_string();
                let value = self.substitute(&default);
                self.inputs.insert(name, value);
            }
        }
        let event = self.temp.join("event.json");
        std::fs::write(&event, payload).unwrap();
        let github_env = self.temp.join("github_env");
        std::fs::write(&github_env, "").unwrap();
        let mut log = String::new();
        let mut summary = String::new();
        let mut failed_step = None;
        for (i, step) in action["runs"]["steps"].as_vec().unwrap().iter().enumerate() {
            let name = step["name"].as_str().unwrap_or("step").to_string();
            let id = step["id"].as_str().map(String::from);
            let run = self.condition(step["if"].as_str().unwrap_or("success()"), failed_step.is_some());
            if !run {
                log.push_str(&format!("== {name}: skipped\n"));
                if let Some(id) = &id {
                    self.outcomes.insert(id.clone(), "skipped".into());
                }
                continue;
            }
            assert_eq!(step["shell"].as_str(), Some("bash"), "step {name} needs `shell: bash`");
            let script = step["run"].as_str().unwrap();
            assert!(!script.contains("${{"), "step {name} splices an expression into its script");
            let script_path = self.temp.join(format!("step{i}.sh"));
            std::fs::write(&script_path, script).unwrap();
            let output_file = self.temp.join(format!("output{i}"));
            let summary_file = self.temp.join(format!("summary{i}"));
            std::fs::write(&output_file, "").unwrap();
            std::fs::write(&summary_file, "").unwrap();
            let dir = match step["working-directory"].as_str() {
                Some(d) => self.workspace.join(self.substitute(d)),
                None => self.workspace.clone(),
            };
            let mut cmd = Command::new("bash");
            cmd.args(["--noprofile", "--norc", "-eo", "pipefail"]).arg(&script_path).current_dir(&dir);
            cmd.env_clear();
            for key in ["PATH", "HOME", "CARGO_HOME", "RUSTUP_HOME"] {
                if let Ok(v) = std::env::var(key) {
                    cmd.env(key, v);
                }
            }
            let runner_env = [
                ("CI", "true".to_string()),
                ("GITHUB_ACTIONS", "true".to_string()),
                ("GITHUB_ACTION_PATH", self.action_path.display().to_string()),
                ("GITHUB_WORKSPACE", self.workspace.display().to_string()),
                ("GITHUB_EVENT_NAME", event_name.to_string()),
                ("GITHUB_EVENT_PATH", event.display().to_string()),
                ("GITHUB_REF", git_ref.to_string()),
                ("GITHUB_REPOSITORY", "acme/shop".to_string()),
                ("GITHUB_SERVER_URL", self.server_url.clone()),
                ("GITHUB_RUN_ID", "42".to_string()),
                ("GITHUB_SHA", "fedcba9876543210fedcba9876543210fedcba98".to_string()),
                ("GITHUB_ACTOR", "octocat".to_string()),
                ("GITHUB_API_URL", self.api.url.clone()),
                ("GITHUB_OUTPUT", output_file.display().to_string()),
                ("GITHUB_ENV", github_env.display().to_string()),
                ("GITHUB_STEP_SUMMARY", summary_file.display().to_string()),
                ("RUNNER_TEMP", self.temp.display().to_string()),
                ("MLGATE_RETRY_BASE_MS", "10".to_string()),
            ];
            for (k, v) in runner_env.iter().cloned().chain(self.env.iter().cloned().map(|(k, v)| (leak(k), v))) {
                cmd.env(k, v);
            }
            for (k, v) in parse_file_commands(&std::fs::read_to_string(&github_env).unwrap()) {
                cmd.env(k, v);
            }
            if let Some(env) = step["env"].as_hash() {
                for (k, v) in env {
                    let v = match v {
                        Yaml::String(s) => s.clone(),
                        other => other.as_i64().map(|i| i.to_string()).unwrap_or_default(),
                    };
                    cmd.env(k.as_str().unwrap(), self.substitute(&v));
                }
            }
            let out = cmd.output().unwrap();
            log.push_str(&format!(
                "== {name} (exit {:?})\n{}{}",
                out.status.code(),
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ));
            summary.push_str(&std::fs::read_to_string(&summary_file).unwrap());
            if let Some(id) = step["id"].as_str() {
                let outputs =
                    parse_file_commands(&std::fs::read_to_string(&output_file).unwrap()).into_iter().collect();
                self.steps.insert(id.to_string(), outputs);
            }
            if let Some(id) = &id {
                self.outcomes.insert(id.clone(), if out.status.success() { "success" } else { "failure" }.into());
            }
            if !out.status.success() && failed_step.is_none() {
                failed_step = Some(name);
            }
        }
        let mut outputs = BTreeMap::new();
        for (name, spec) in action["outputs"].as_hash().unwrap() {
            outputs.insert(name.as_str().unwrap().to_string(), self.substitute(spec["value"].as_str().unwrap()));
        }
        Job { success: failed_step.is_none(), failed_step, outputs, summary, log }
    }
}

fn leak(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}

/// A caller's repository: its own configuration and data in `ml/`, nothing of mlgate's.
fn caller_repository(strict: bool) -> tempfile::TempDir {
    let ws = tempfile::tempdir().unwrap();
    let ml = ws.path().join("ml");
    std::fs::create_dir_all(ml.join("data")).unwrap();
    std::fs::write(ml.join("data/customers.csv"), model::data::generate::customers_csv(3000, 21)).unwrap();
    let mut config = std::fs::read_to_string(root().join("pipeline.toml")).unwrap();
    if strict {
        config = config.replace("min = { roc_auc = 0.72, f1 = 0.45 }", "min = { roc_auc = 0.99 }");
    }
    std::fs::write(ml.join("pipeline.toml"), config).unwrap();
    ws
}

fn runner<'a>(ws: &Path, api: &'a FakeGitHub, token: &str, inputs: &[(&str, &str)]) -> Runner<'a> {
    let temp = ws.join("_runner_temp");
    std::fs::create_dir_all(&temp).unwrap();
    let mut all: BTreeMap<String, String> = inputs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    all.entry("working-directory".into()).or_insert_with(|| "ml".into());
    Runner {
        action_path: root(),
        workspace: ws.to_path_buf(),
        temp,
        token: token.into(),
        inputs: all,
        steps: BTreeMap::new(),
        outcomes: BTreeMap::new(),
        // The build step honours a prebuilt binary; building the release binary here would
        // take minutes of the suite.
        env: vec![("MLGATE_PREBUILT".into(), mlgate_bin().display().to_string())],
        api,
        action_ref: String::new(),
        action_repository: String::new(),
        server_url: "https://github.test".into(),
    }
}

const PR_EVENT: &str = r#"{"action":"synchronize","number":7,"pull_request":{"number":7,"head":{"ref":"feature","sha":"0123456789abcdef0123456789abcdef01234567"}},"repository":{"default_branch":"main"}}"#;
const PUSH_EVENT: &str = r#"{"ref":"refs/heads/main","repository":{"default_branch":"main"}}"#;
const MARKER: &str = "<!-- mlgate-report config=ml/pipeline.toml -->";

#[test]
fn a_pull_request_gets_one_comment_among_130_and_a_second_run_updates_it() {
    let api = FakeGitHub::start("");
    api.add_foreign_comments(7, 130);
    let ws = caller_repository(false);
    let job = runner(ws.path(), &api, "installation-token", &[]).run("pull_request", PR_EVENT, "refs/pull/7/merge");
    assert!(job.success, "failed at {:?}\n{}", job.failed_step, job.log);
    let comments = api.comments_containing(MARKER);
    assert_eq!(comments.len(), 1);
    let body = comments[0]["body"].as_str().unwrap();
    // A pull request only reads the registry: the candidate is judged, not registered.
    assert!(body.contains("## ✅ Accepted: `customer-purchase`\n"), "{body}");
    assert!(job.log.contains("judged, not registered"), "{}", job.log);
    // The pull request's head commit (not the merge commit), the run, and when.
    assert!(
        body.contains("commit `0123456789ab`")
            && body.contains("[workflow run](https://github.test/acme/shop/actions/runs/42)"),
        "{body}"
    );
    assert!(body.contains(" · updated 20"), "{body}");
    // Every request as GitHub documents them.
    let headers = api.headers();
    assert!(!headers.is_empty());
    for (accept, agent) in &headers {
        assert_eq!(accept, "application/vnd.github+json");
        assert!(agent.starts_with("mlgate/"), "{agent}");
    }
    assert!(body.contains("| metric | candidate | production | Δ (95 % CI) | threshold | |"), "{body}");
    assert!(body.contains("```mermaid\n---\nconfig:") && body.contains("\nxychart-beta\n"), "{body}");
    assert_eq!(job.outputs["passed"], "true");
    assert_eq!(job.outputs["verdict"], "passed");
    assert_eq!(job.outputs["model-version"], "");
    assert_eq!(job.outputs["comment-url"], comments[0]["html_url"].as_str().unwrap());
    assert!(Path::new(&job.outputs["report-path"]).is_file());
    let metrics: serde_json::Value = serde_json::from_str(&job.outputs["metrics-json"]).unwrap();
    assert!(metrics["candidate"]["roc_auc"].as_f64().unwrap() > 0.7);
    assert!(job.summary.contains("## ✅ Accepted"), "{}", job.summary);
    assert!(job.log.contains("== Deploy: skipped"), "{}", job.log);

    let again = runner(ws.path(), &api, "installation-token", &[]).run("pull_request", PR_EVENT, "refs/pull/7/merge");
    assert!(again.success, "{}", again.log);
    assert_eq!(api.comments_containing(MARKER).len(), 1, "the second run must update, not add");
    assert!(again.log.contains("comment    updated"), "{}", again.log);
    assert!(api.requests().iter().any(|r| r.starts_with("PATCH /repos/acme/shop/issues/comments/")));
}

#[test]
fn a_data_error_after_an_accepted_run_replaces_the_accepted_comment() {
    let api = FakeGitHub::start("");
    let ws = caller_repository(false);
    let job = runner(ws.path(), &api, "installation-token", &[]).run("pull_request", PR_EVENT, "refs/pull/7/merge");
    assert!(job.success, "{}", job.log);
    assert!(api.comments_containing(MARKER)[0]["body"].as_str().unwrap().contains("## ✅ Accepted"));
    // The next push breaks the data: two ages out of range, a region nobody declared.
    let data = ws.path().join("ml/data/customers.csv");
    let broken = crate::support::edit_rows(&std::fs::read_to_string(&data).unwrap(), |i, f| match i {
        3 | 9 => f[1] = "7".into(),
        5 => f[2] = "atlantis".into(),
        _ => {}
    });
    std::fs::write(&data, broken).unwrap();
    let job = runner(ws.path(), &api, "installation-token", &[]).run("pull_request", PR_EVENT, "refs/pull/7/merge");
    assert!(!job.success);
    assert_eq!(job.failed_step.as_deref(), Some("Validate the data"), "{}", job.log);
    // Annotations name the file from the repository root, so that they land on it.
    assert!(job.log.contains("::error file=ml/data/customers.csv,line=4,"), "{}", job.log);
    assert!(
        job.log.contains("== Build the model: skipped") && job.log.contains("== Acceptance: skipped"),
        "{}",
        job.log
    );
    let comments = api.comments_containing(MARKER);
    assert_eq!(comments.len(), 1, "the same comment, updated");
    let body = comments[0]["body"].as_str().unwrap();
    assert!(!body.contains("Accepted"), "{body}");
    assert!(body.contains("## ❌ Not evaluated: data validation failed"), "{body}");
    assert!(body.contains("3 broken value(s) in 3 of 3000 rows"), "{body}");
    assert!(body.contains("| 4 | `age` | `7` |") && body.contains("`atlantis`"), "{body}");
    assert!(body.contains("| `age` | ") && body.contains("| 2 |"), "the count per column and rule: {body}");
    assert!(job.summary.contains("## ❌ Not evaluated"), "{}", job.summary);
    assert_eq!(job.outputs["verdict"], "error");
    assert_eq!(job.outputs["failed-step"], "validate");
    assert_eq!(job.outputs["passed"], "false");

    // A configuration that cannot be read fails the build's first step too; the comment quotes
    // the error instead of a stale verdict.
    std::fs::write(ws.path().join("ml/pipeline.toml"), "name = \"x\"\n[model]\nfamily = \"forest\"\n").unwrap();
    let job = runner(ws.path(), &api, "installation-token", &[]).run("pull_request", PR_EVENT, "refs/pull/7/merge");
    assert!(!job.success);
    let body = api.comments_containing(MARKER)[0]["body"].as_str().unwrap().to_string();
    assert!(body.contains("## ❌ Not evaluated: data validation failed"), "{body}");
    assert!(body.contains("```text\n") && body.contains("forest"), "{body}");
}

#[test]
fn configurations_of_the_same_name_in_two_folders_and_matrix_legs_get_their_own_comments() {
    let api = FakeGitHub::start("");
    let ws = caller_repository(false);
    let (ml, ml2) = (ws.path().join("ml"), ws.path().join("ml2"));
    std::fs::create_dir_all(ml2.join("data")).unwrap();
    std::fs::copy(ml.join("pipeline.toml"), ml2.join("pipeline.toml")).unwrap();
    std::fs::copy(ml.join("data/customers.csv"), ml2.join("data/customers.csv")).unwrap();
    for _ in 0..2 {
        for inputs in [&[][..], &[("working-directory", "ml2")], &[("comment-key", "linux")]] {
            let job = runner(ws.path(), &api, "installation-token", inputs).run(
                "pull_request",
                PR_EVENT,
                "refs/pull/7/merge",
            );
            assert!(job.success, "{inputs:?}: {}", job.log);
        }
    }
    assert_eq!(api.comments_containing("<!-- mlgate-report config=").len(), 3);
    assert_eq!(api.comments_containing("<!-- mlgate-report config=ml/pipeline.toml -->").len(), 1);
    assert_eq!(api.comments_containing("<!-- mlgate-report config=ml2/pipeline.toml -->").len(), 1);
    assert_eq!(api.comments_containing("<!-- mlgate-report config=ml/pipeline.toml key=linux -->").len(), 1);
}

#[test]
fn a_read_only_token_still_succeeds_and_the_summary_holds_the_report() {
    let api = FakeGitHub::start("");
    let ws = caller_repository(false);
    let job = runner(ws.path(), &api, "read-only-token", &[]).run("pull_request", PR_EVENT, "refs/pull/7/merge");
    assert!(job.success, "failed at {:?}\n{}", job.failed_step, job.log);
    assert!(api.comments_containing(MARKER).is_empty());
    assert!(job.log.contains("::warning title=mlgate report not posted::"), "{}", job.log);
    assert!(job.summary.contains("## ✅ Accepted"), "{}", job.summary);
    assert_eq!(job.outputs["comment-url"], "");
}

#[test]
fn a_rejected_model_fails_the_job_after_reporting() {
    let api = FakeGitHub::start("");
    let ws = caller_repository(true);
    let job = runner(ws.path(), &api, "installation-token", &[("deploy", "true")]).run(
        "pull_request",
        PR_EVENT,
        "refs/pull/7/merge",
    );
    assert!(!job.success);
    assert_eq!(job.failed_step.as_deref(), Some("Report"), "{}", job.log);
    assert_eq!(job.outputs["passed"], "false");
    let comments = api.comments_containing(MARKER);
    assert!(comments[0]["body"].as_str().unwrap().contains("## ❌ Rejected"));
    assert!(job.log.contains("::error title=acceptance failed::roc_auc >= 0.99"), "{}", job.log);
}

/// `model-file`: a LightGBM model trained elsewhere (tests/data/customers-lightgbm.txt: LightGBM
/// 4.7.0, 20 trees of 7 leaves, trained on data/customers.csv as tests/clients/learners.py reads
/// it) is imported instead of built, gated and reported; the comment names its origin.
#[test]
fn a_model_trained_elsewhere_is_imported_gated_and_reported() {
    let api = FakeGitHub::start("");
    let ws = caller_repository(false);
    std::fs::copy(root().join("tests/data/customers-lightgbm.txt"), ws.path().join("ml/model.txt")).unwrap();
    let inputs = [("model-file", "model.txt"), ("model-library", "lightgbm")];
    let job = runner(ws.path(), &api, "installation-token", &inputs).run("pull_request", PR_EVENT, "refs/pull/7/merge");
    assert!(job.success, "failed at {:?}\n{}", job.failed_step, job.log);
    assert!(job.log.contains("trained by lightgbm"), "{}", job.log);
    assert_eq!(job.outputs["verdict"], "passed");
    let comments = api.comments_containing(MARKER);
    assert_eq!(comments.len(), 1);
    let body = comments[0]["body"].as_str().unwrap();
    assert!(body.contains("LightGBM") && body.contains("model.txt"), "{body}");

    // A library the action does not know stops the build step, and the report says so.
    let inputs = [("model-file", "model.txt"), ("model-library", "catboost")];
    let job = runner(ws.path(), &api, "installation-token", &inputs).run("pull_request", PR_EVENT, "refs/pull/7/merge");
    assert!(!job.success);
    assert_eq!(job.outputs["verdict"], "error", "{}", job.log);
    assert_eq!(job.outputs["failed-step"], "build", "{}", job.log);
    assert!(job.log.contains("model-library must be lightgbm or xgboost"), "{}", job.log);
}

#[test]
fn deploy_happens_on_a_push_to_the_default_branch_only() {
    let api = FakeGitHub::start("");
    let ws = caller_repository(false);
    let registry = model::lifecycle::registry::Registry::open(ws.path().join("ml/registry"));
    let job = runner(ws.path(), &api, "installation-token", &[("deploy", "true")]).run(
        "pull_request",
        PR_EVENT,
        "refs/pull/7/merge",
    );
    assert!(job.success, "{}", job.log);
    assert!(job.log.contains("deploy skipped: the event is \"pull_request\", not a push"), "{}", job.log);
    assert_eq!(registry.alias("production").unwrap(), None);
    let job = runner(ws.path(), &api, "installation-token", &[("deploy", "true"), ("comment", "never")]).run(
        "push",
        PUSH_EVENT,
        "refs/heads/main",
    );
    assert!(job.success, "{}", job.log);
    // The push job's own build is what goes to production: v1 again when both builds fell in
    // the same second (the artifact records its creation time, to the second), else v2.
    let registered = job.log.split("registered as ").nth(1).and_then(|rest| rest.split_whitespace().next());
    assert!(matches!(registered, Some("v1" | "v2")), "{}", job.log);
    assert_eq!(registry.alias("production").unwrap().as_deref(), registered, "{}", job.log);
    let last = registry.history().unwrap().pop().unwrap();
    assert_eq!((last.action.name(), last.actor.who.as_str()), ("promote", "octocat"));
}

#[test]
fn a_push_in_rollout_mode_starts_a_rollout_instead_of_a_deploy() {
    let api = FakeGitHub::start("");
    let ws = caller_repository(false);
    let registry = model::lifecycle::registry::Registry::open(ws.path().join("ml/registry"));
    let rollout = [("mode", "rollout"), ("comment", "never")];
    // The first model has no production to be compared with: it is deployed.
    let job = runner(ws.path(), &api, "installation-token", &rollout).run("push", PUSH_EVENT, "refs/heads/main");
    assert!(job.success, "{}", job.log);
    assert!(job.log.contains("deployed v1 to production (first production model"), "{}", job.log);
    // Another candidate: a pull request judges it and starts nothing.
    let config = ws.path().join("ml/pipeline.toml");
    std::fs::write(&config, std::fs::read_to_string(&config).unwrap().replace("seed = 42", "seed = 43")).unwrap();
    let job =
        runner(ws.path(), &api, "installation-token", &rollout).run("pull_request", PR_EVENT, "refs/pull/7/merge");
    assert!(job.success, "{}", job.log);
    assert!(job.log.contains("rollout skipped: the event is \"pull_request\", not a push"), "{}", job.log);
    assert!(registry.state().unwrap().rollout.is_none());
    // A push registers it and opens a canary beside production, which stays.
    let job = runner(ws.path(), &api, "installation-token", &rollout).run("push", PUSH_EVENT, "refs/heads/main");
    assert!(job.success, "{}", job.log);
    assert!(job.log.contains("started a canary of v2 against v1 at 10 % (step 1 of 3)"), "{}", job.log);
    assert!(job.log.contains("== Deploy: skipped"), "{}", job.log);
    let state = registry.state().unwrap();
    assert_eq!(state.aliases.get("production").map(String::as_str), Some("v1"));
    let open = state.rollout.unwrap();
    assert_eq!((open.candidate.as_str(), open.started.who.as_str()), ("v2", "octocat"));
}

#[test]
fn inputs_have_descriptions_and_reach_scripts_through_env_only() {
    let action = action();
    for (name, spec) in action["inputs"].as_hash().unwrap() {
        assert!(spec["description"].as_str().is_some(), "input {name:?} has no description");
        assert!(!spec["default"].is_badvalue(), "input {name:?} has no default");
    }
    for step in action["runs"]["steps"].as_vec().unwrap() {
        let run = step["run"].as_str().unwrap();
        assert!(!run.contains("${{"), "a run script splices an expression: {run}");
    }
}

#[test]
fn jobs_in_separate_workspaces_share_only_the_remote_registry() {
    // Push job → production v1 (and a second push → v2); a pull request job compares with
    // production; a scheduled monitoring job on scrambled data breaches and opens the alert, and
    // does not roll back to a target no better beyond the noise; the next job sees production.
    let api = FakeGitHub::start("");
    let remote = tempfile::tempdir().unwrap();
    let repo = remote.path().join("models.git");
    assert!(Command::new("git").args(["init", "-q", "--bare"]).arg(&repo).status().unwrap().success());
    let registry = format!("git+file://{}#mlgate-registry", repo.display());
    let inputs = |extra: &[(&'static str, String)]| -> Vec<(&'static str, String)> {
        let mut all = vec![("registry", registry.clone()), ("comment", "auto".to_string())];
        all.extend_from_slice(extra);
        all
    };
    // A job whose configuration splits with `seed`: another seed, another artifact (the same
    // one built twice within a second would be registered once).
    let run_with_seed = |inputs: &[(&'static str, String)], event: &str, payload: &str, git_ref: &str, seed: u64| {
        let ws = caller_repository(false);
        let config = ws.path().join("ml/pipeline.toml");
        let text = std::fs::read_to_string(&config).unwrap();
        std::fs::write(&config, text.replace("seed = 42", &format!("seed = {seed}"))).unwrap();
        let pairs: Vec<(&str, &str)> = inputs.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let job = runner(ws.path(), &api, "installation-token", &pairs).run(event, payload, git_ref);
        (ws, job)
    };
    let run = |inputs: &[(&'static str, String)], event: &str, payload: &str, git_ref: &str| {
        run_with_seed(inputs, event, payload, git_ref, 42)
    };
    for push in 1..=2 {
        let (_ws, job) =
            run_with_seed(&inputs(&[("deploy", "true".into())]), "push", PUSH_EVENT, "refs/heads/main", 41 + push);
        assert!(job.success, "push {push}: {}", job.log);
        assert!(job.log.contains(&format!("deployed v{push} to production")), "{}", job.log);
    }
    let (_ws, job) = run(&inputs(&[]), "pull_request", PR_EVENT, "refs/pull/7/merge");
    assert!(job.success, "{}", job.log);
    let comment = api.comments_containing(MARKER).pop().unwrap();
    assert!(comment["body"].as_str().unwrap().contains("Compared with production **v2**"), "{comment}");

    let scrambled: String = model::data::generate::customers_csv(3000, 5)
        .lines()
        .enumerate()
        .map(|(i, l)| match (i, l.rsplit_once(',')) {
            (0, _) | (_, None) => format!("{l}\n"),
            (_, Some((head, _))) => format!("{head},{}\n", if i % 4 == 0 { "yes" } else { "no" }),
        })
        .collect();
    let ws = caller_repository(false);
    std::fs::write(ws.path().join("ml/new.csv"), scrambled).unwrap();
    let monitor =
        inputs(&[("mode", "monitor".into()), ("data", "new.csv".into()), ("rollback-on-breach", "true".into())]);
    let pairs: Vec<(&str, &str)> = monitor.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let job = runner(ws.path(), &api, "installation-token", &pairs).run("schedule", "{}", "refs/heads/main");
    assert!(!job.success && job.failed_step.as_deref() == Some("Fail on a breach"), "{}", job.log);
    assert_eq!(job.outputs["monitor-exit-code"], "1");
    // v1 and v2 differ by their split's seed only: on this data v1 is no better beyond the noise,
    // so the breach is recorded in the remote registry and nothing is rolled back.
    assert!(job.log.contains("No automatic rollback: v1 scores roc_auc"), "{}", job.log);
    assert!(job.log.contains("not significant (95 % CI"), "{}", job.log);
    assert!(job.log.contains("alert      opened"), "{}", job.log);

    let (_ws, job) = run(&inputs(&[]), "pull_request", PR_EVENT, "refs/pull/7/merge");
    assert!(job.success, "{}", job.log);
    let comment = api.comments_containing(MARKER).pop().unwrap();
    assert!(comment["body"].as_str().unwrap().contains("Compared with production **v2**"), "{comment}");
}

/// A static file server on 127.0.0.1 (a release's download URLs): GET of a path under `root`.
struct FileServer {
    url: String,
}

impl FileServer {
    fn start(root: PathBuf) -> FileServer {
        use std::io::{BufRead, BufReader, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let mut line = String::new();
                let mut reader = BufReader::new(&stream);
                if reader.read_line(&mut line).is_err() {
                    continue;
                }
                loop {
                    let mut h = String::new();
                    if reader.read_line(&mut h).map_or(true, |n| n == 0) || h.trim().is_empty() {
                        break;
                    }
                }
                let path = line.split_whitespace().nth(1).unwrap_or("/").trim_start_matches('/').to_string();
                let file = (!path.contains("..")).then(|| root.join(&path)).filter(|p| p.is_file());
                let mut stream = &stream;
                match file.and_then(|f| std::fs::read(f).ok()) {
                    Some(bytes) => {
                        let _ = write!(
                            stream,
                            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                            bytes.len()
                        );
                        let _ = stream.write_all(&bytes);
                    }
                    None => {
                        let _ = write!(
                            stream,
                            "HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\nConnection: close\r\n\r\nNot Found"
                        );
                    }
                }
            }
        });
        FileServer { url }
    }
}

/// The release target of this machine, as action/setup.sh names it.
fn release_target() -> Option<&'static str> {
    match (std::env::consts::OS, std::env::consts::ARCH) {
        ("linux", "x86_64") => Some("x86_64-unknown-linux-musl"),
        ("linux", "aarch64") => Some("aarch64-unknown-linux-musl"),
        ("macos", "aarch64") => Some("aarch64-apple-darwin"),
        _ => None,
    }
}

/// Writes an executable script.
fn write_script(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// A stand-in `gh` that keeps releases as GitHub does for a repository with immutable releases:
/// a draft takes uploads, a published release refuses them; assets are downloadable (under
/// `served`) only once published. Every call that changes something is logged to `calls`.
const STAND_IN_GH: &str = r#"#!/usr/bin/env bash
set -euo pipefail
state="$RELEASES/state"; drafts="$RELEASES/drafts"; served="$RELEASES/acme/mlgate/releases/download"
mkdir -p "$state" "$drafts" "$served"
action="$1 $2"; tag="$3"; shift 3
case "$action" in
  "release view")
    [ -f "$state/$tag" ] || { echo "release not found" >&2; exit 1; }
    cat "$state/$tag" ;;
  "release create")
    [ ! -f "$state/$tag" ] || { echo "a release $tag exists" >&2; exit 1; }
    draft=false
    for a in "$@"; do [ "$a" != --draft ] || draft=true; done
    echo "$draft" > "$state/$tag"; mkdir -p "$drafts/$tag"
    if [ "$draft" = true ]; then echo "create-draft $tag" >> "$RELEASES/calls"; else echo "create $tag" >> "$RELEASES/calls"; fi ;;
  "release upload")
    [ -f "$state/$tag" ] || { echo "release not found" >&2; exit 1; }
    if [ "$(cat "$state/$tag")" != true ]; then
      echo "HTTP 422: Cannot upload assets to an immutable release" >&2; exit 1
    fi
    for f in "$@"; do case "$f" in --*) ;; *) cp "$f" "$drafts/$tag/"; echo "upload $tag $(basename "$f")" >> "$RELEASES/calls" ;; esac; done ;;
  "release edit")
    [ -f "$state/$tag" ] || { echo "release not found" >&2; exit 1; }
    for a in "$@"; do
      if [ "$a" = --draft=false ]; then
        echo false > "$state/$tag"; mkdir -p "$served/$tag"; cp -R "$drafts/$tag/." "$served/$tag/"
        echo "publish $tag" >> "$RELEASES/calls"
      fi
    done ;;
  *) echo "the stand-in gh does not know $action" >&2; exit 2 ;;
esac
"#;

/// release.yml's steps run in order, as its jobs' `needs` order them, with the stand-in `gh`:
/// release v9.9.9 of acme/mlgate, published, with this machine's archive served under
/// `releases/acme/mlgate/releases/download/v9.9.9/`.
fn release_v9_9_9(releases: &Path, target: &str) {
    let workflow =
        YamlLoader::load_from_str(&std::fs::read_to_string(root().join(".github/workflows/release.yml")).unwrap())
            .unwrap()
            .remove(0);
    let step = |job: &str, name: &str| -> String {
        let steps = workflow["jobs"][job]["steps"].as_vec().unwrap();
        let step = steps
            .iter()
            .find(|s| s["name"].as_str() == Some(name))
            .unwrap_or_else(|| panic!("release.yml has no step {name:?} in {job}"));
        step["run"].as_str().unwrap().to_string()
    };
    let bin = releases.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    write_script(&bin.join("gh"), STAND_IN_GH);
    // The checkout of the tag: the workspace version, and the binary the Build step made.
    let checkout = releases.join("checkout");
    std::fs::create_dir_all(checkout.join(format!("target/{target}/release"))).unwrap();
    std::fs::write(
        checkout.join("Cargo.toml"),
        "[workspace]\nmembers = []\n\n[workspace.package]\nversion = \"9.9.9\"\n",
    )
    .unwrap();
    // The static binary itself when .ci/run built it (MLGATE_STATIC_BIN), else the test build.
    let shipped = std::env::var_os("MLGATE_STATIC_BIN").map_or_else(|| mlgate_bin().to_path_buf(), PathBuf::from);
    std::fs::copy(shipped, checkout.join(format!("target/{target}/release/mlgate"))).unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
    let run_step = |script: &str, env: &[(&str, &str)]| {
        let out = Command::new("bash")
            .args(["--noprofile", "--norc", "-eo", "pipefail", "-c", script])
            .current_dir(&checkout)
            .env("PATH", &path)
            .env("RELEASES", releases)
            .env("GITHUB_OUTPUT", releases.join("outputs"))
            .env("GITHUB_STEP_SUMMARY", releases.join("summary"))
            .env("GITHUB_REPOSITORY", "acme/mlgate")
            .env("GH_TOKEN", "x")
            .env("GH_REPO", "acme/mlgate")
            .envs(env.iter().copied())
            .output()
            .unwrap();
        (
            out.status.success(),
            format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)),
        )
    };
    // A tag that is not the workspace's version is refused before any release exists.
    let (ok, log) = run_step(&step("draft", "Create the draft release"), &[("TAG", "v9.9.8")]);
    assert!(!ok && log.contains("is not the workspace version v9.9.9"), "{log}");
    assert!(!releases.join("calls").exists());

    // What the binaries job packages is what the publish job downloads: both run in the same
    // checkout here, so dist/ is handed over as it is.
    let steps = [
        ("draft", "Create the draft release"),
        ("binaries", "Package"),
        ("publish", "Upload the binaries"),
        ("publish", "Publish the release"),
    ];
    for (job, name) in steps {
        let (ok, log) = run_step(&step(job, name), &[("TAG", "v9.9.9"), ("TARGET", target)]);
        assert!(ok, "{job}: {name}\n{log}");
    }
    let archive = format!("mlgate-{target}.tar.gz");
    let calls = std::fs::read_to_string(releases.join("calls")).unwrap();
    assert_eq!(
        calls,
        format!("create-draft v9.9.9\nupload v9.9.9 {archive}\nupload v9.9.9 {archive}.sha256\npublish v9.9.9\n"),
        "create the draft, upload, then publish"
    );
    let summary = std::fs::read_to_string(releases.join("summary")).unwrap();
    assert!(summary.contains("git tag -f v9 v9.9.9^{commit}"), "{summary}");
    // The release is immutable now: a re-run of the upload is refused, as GitHub refuses it,
    // and so is a re-run of the draft step.
    let (ok, log) = run_step(&step("publish", "Upload the binaries"), &[("TAG", "v9.9.9")]);
    assert!(!ok && log.contains("immutable release"), "{log}");
    let (ok, log) = run_step(&step("draft", "Create the draft release"), &[("TAG", "v9.9.9")]);
    assert!(!ok && log.contains("already published"), "{log}");
}

/// The action's checkout at a release: action.yml, its setup script and the workspace manifest
/// that holds the version.
fn action_checkout(version: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("action")).unwrap();
    std::fs::copy(root().join("action.yml"), dir.path().join("action.yml")).unwrap();
    std::fs::copy(root().join("action/setup.sh"), dir.path().join("action/setup.sh")).unwrap();
    std::fs::write(
        dir.path().join("Cargo.toml"),
        format!(
            "[workspace]\nmembers = [\"mlgate\"]\n\n[workspace.package]\nversion = \"{version}\"\nedition = \"2021\"\n"
        ),
    )
    .unwrap();
    dir
}

fn sha256_hex(path: &Path) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(std::fs::read(path).unwrap()).iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn the_release_is_drafted_uploaded_then_published_and_every_ref_downloads_its_binary() {
    let Some(target) = release_target() else {
        eprintln!("skipped: no release is built for this platform");
        return;
    };
    let releases = tempfile::tempdir().unwrap();
    release_v9_9_9(releases.path(), target);
    let archive = format!("mlgate-{target}.tar.gz");
    let assets = releases.path().join("acme/mlgate/releases/download/v9.9.9");
    let hex = sha256_hex(&assets.join(&archive));
    assert!(std::fs::read_to_string(assets.join(format!("{archive}.sha256"))).unwrap().starts_with(&hex));
    let server = FileServer::start(releases.path().to_path_buf());
    let url = format!("{}/acme/mlgate/releases/download/v9.9.9/{archive}", server.url);

    let api = FakeGitHub::start("");
    let ws = caller_repository(false);
    let checkout = action_checkout("9.9.9");
    // The major tag, the release's tag and a commit: each is the checkout of version 9.9.9.
    for (i, reference) in ["v9", "v9.9.9", "0123456789abcdef0123456789abcdef01234567"].into_iter().enumerate() {
        if i == 2 {
            // Another tool's checksum file: upper-case hex, no file name.
            std::fs::write(assets.join(format!("{archive}.sha256")), format!("{}\n", hex.to_uppercase())).unwrap();
        }
        // The whole gate once; then the setup step alone (a mode that runs no other step).
        let mode = if i == 0 { "gate" } else { "setup-only" };
        let mut r = runner(ws.path(), &api, "installation-token", &[("mode", mode)]);
        r.action_path = checkout.path().to_path_buf();
        r.env = vec![];
        r.action_ref = reference.into();
        r.action_repository = "acme/mlgate".into();
        r.server_url = server.url.clone();
        let job = r.run("pull_request", PR_EVENT, "refs/pull/7/merge");
        assert!(job.success, "@{reference}: failed at {:?}\n{}", job.failed_step, job.log);
        assert!(job.log.contains(&format!("mlgate: downloaded {url} (sha256 {hex})")), "@{reference}: {}", job.log);
        assert!(!job.log.contains("building from source"), "{}", job.log);
        assert_eq!(job.log.matches(": skipped").count(), if i == 0 { 6 } else { 10 }, "{}", job.log);
    }
    assert_eq!(api.comments_containing(MARKER).len(), 1);
}

/// The job failed at `Set up mlgate` with `message` in its log, and nothing was built instead.
fn assert_setup_refuses(job: &Job, message: &str) {
    assert!(!job.success);
    assert_eq!(job.failed_step.as_deref(), Some("Set up mlgate"), "{}", job.log);
    assert!(job.log.contains(message), "wanted {message:?} in:\n{}", job.log);
    assert!(!job.log.contains("building from source"), "{}", job.log);
    assert!(job.log.contains("== Validate the data: skipped"), "{}", job.log);
}

#[test]
fn the_setup_step_refuses_a_bad_checksum_a_missing_checksum_a_symlink_and_an_unsupported_runner() {
    let Some(target) = release_target() else {
        eprintln!("skipped: no release is built for this platform");
        return;
    };
    let releases = tempfile::tempdir().unwrap();
    let archive = format!("mlgate-{target}.tar.gz");
    let assets = releases.path().join("acme/mlgate/releases/download/v9.9.9");
    std::fs::create_dir_all(&assets).unwrap();
    let stage = releases.path().join("stage");
    std::fs::create_dir_all(&stage).unwrap();
    std::fs::copy(mlgate_bin(), stage.join("mlgate")).unwrap();
    let tar = |stage: &Path| {
        let ok = Command::new("tar").arg("-C").arg(stage).arg("-czf").arg(assets.join(&archive)).arg("mlgate").status();
        assert!(ok.unwrap().success());
    };
    tar(&stage);
    let server = FileServer::start(releases.path().to_path_buf());
    let api = FakeGitHub::start("");
    let ws = caller_repository(false);
    let checkout = action_checkout("9.9.9");
    let run = |env: Vec<(String, String)>| {
        let mut r = runner(ws.path(), &api, "installation-token", &[]);
        r.action_path = checkout.path().to_path_buf();
        r.env = env;
        r.action_ref = "v9".into();
        r.action_repository = "acme/mlgate".into();
        r.server_url = server.url.clone();
        r.run("pull_request", PR_EVENT, "refs/pull/7/merge")
    };

    // No .sha256 beside the archive: refused, not built.
    let job = run(vec![]);
    assert_setup_refuses(&job, &format!("has {archive} but no {archive}.sha256"));

    // A checksum that does not match: the binary is not used.
    std::fs::write(assets.join(format!("{archive}.sha256")), format!("{}  {archive}\n", "0".repeat(64))).unwrap();
    assert_setup_refuses(&run(vec![]), "refusing the binary");

    // An archive whose mlgate is a symbolic link, with a checksum that matches.
    let link = releases.path().join("link");
    std::fs::create_dir_all(&link).unwrap();
    std::os::unix::fs::symlink("/bin/sh", link.join("mlgate")).unwrap();
    tar(&link);
    let hex = sha256_hex(&assets.join(&archive));
    std::fs::write(assets.join(format!("{archive}.sha256")), format!("{hex}  {archive}\n")).unwrap();
    assert_setup_refuses(&run(vec![]), "is not a regular file: refusing the binary");

    // The checkout says 9.9.8, which has no release: the version is read, not the ref.
    let old = action_checkout("9.9.8");
    let mut r = runner(ws.path(), &api, "installation-token", &[]);
    r.action_path = old.path().to_path_buf();
    r.env = vec![];
    r.action_ref = "v9".into();
    r.action_repository = "acme/mlgate".into();
    r.server_url = server.url.clone();
    let job = r.run("pull_request", PR_EVENT, "refs/pull/7/merge");
    assert_setup_refuses(&job, "release v9.9.8 of acme/mlgate has no");

    // From a path (uses: ./) it is built, and a runner without cargo is told what to add.
    if ["/usr/bin/cargo", "/bin/cargo"].iter().any(|c| Path::new(c).exists()) {
        eprintln!("skipped the runner without cargo: this machine has one in /usr/bin");
    } else {
        let mut r = runner(ws.path(), &api, "installation-token", &[]);
        r.action_path = checkout.path().to_path_buf();
        r.env = vec![("PATH".into(), "/usr/bin:/bin".into())];
        let job = r.run("pull_request", PR_EVENT, "refs/pull/7/merge");
        assert_eq!(job.failed_step.as_deref(), Some("Set up mlgate"), "{}", job.log);
        assert!(job.log.contains("building from source: the action runs from a path (uses: ./)"), "{}", job.log);
        assert!(job.log.contains("there is no cargo to build mlgate with"), "{}", job.log);
    }

    // Windows, then a platform nobody builds for: one error naming what is supported.
    let fake = releases.path().join("fake-uname");
    std::fs::create_dir_all(&fake).unwrap();
    let path = format!("{}:{}", fake.display(), std::env::var("PATH").unwrap_or_default());
    for (system, machine) in [("MINGW64_NT-10.0-20348", "x86_64"), ("Windows_NT", "x86_64"), ("Linux", "riscv64")] {
        write_script(
            &fake.join("uname"),
            &format!("#!/bin/sh\ncase \"$1\" in -m) echo {machine} ;; *) echo {system} ;; esac\n"),
        );
        let job = run(vec![("PATH".into(), path.clone())]);
        assert_setup_refuses(
            &job,
            "Linux x86_64 (ubuntu-latest), Linux arm64 (ubuntu-24.04-arm) and macOS arm64 (macos-latest)",
        );
        let setup = job.log.split("== Validate the data").next().unwrap();
        assert_eq!(setup.matches("::error").count(), 1, "{}", job.log);
        assert!(job.log.contains(&format!("{system} {machine}")), "{}", job.log);
    }
}

#[test]
fn the_setup_step_builds_from_source_when_asked() {
    // The release binary, built by cargo in the target folder the bench shares (a cold one
    // takes a few minutes once). Where the static binary was built just before the tests
    // (`.ci/run`), for that target in that folder: a runner that sets CARGO_BUILD_TARGET, and
    // cargo finds the build fresh.
    let api = FakeGitHub::start("");
    let ws = caller_repository(false);
    let mut r = runner(ws.path(), &api, "installation-token", &[("build-from-source", "true")]);
    let static_build = std::env::var_os("MLGATE_STATIC_BIN").map(PathBuf::from).and_then(|bin| {
        let release = bin.parent().filter(|r| r.ends_with("release"))?;
        let triple = release.parent()?;
        Some((triple.parent()?.to_path_buf(), triple.file_name()?.to_str()?.to_string()))
    });
    r.env = vec![];
    let (target, built) = match static_build {
        Some((target, triple)) => {
            r.env.push(("CARGO_BUILD_TARGET".into(), triple.clone()));
            (target.clone(), target.join(triple).join("release/mlgate"))
        }
        None => {
            let target =
                std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| root().join("target"));
            (target.clone(), target.join("release/mlgate"))
        }
    };
    r.env.push(("MLGATE_TARGET_DIR".into(), target.display().to_string()));
    r.action_ref = "v9.9.9".into();
    r.action_repository = "acme/mlgate".into();
    let job = r.run("pull_request", PR_EVENT, "refs/pull/7/merge");
    assert!(job.success, "failed at {:?}\n{}", job.failed_step, job.log);
    assert!(job.log.contains("mlgate: building from source: build-from-source is true"), "{}", job.log);
    assert!(job.log.contains(&format!("mlgate: {}", built.display())), "{}", job.log);
    // The caller's commit (GITHUB_SHA) is not mlgate's revision: the binary does not carry it.
    let binary = std::fs::read(&built).unwrap();
    let caller_sha = b"fedcba9876543210fedcba9876543210fedcba98";
    assert!(
        !binary.windows(caller_sha.len()).any(|w| w == caller_sha),
        "{} carries the caller's commit",
        built.display()
    );
    assert_eq!(api.comments_containing(MARKER).len(), 1);
}
