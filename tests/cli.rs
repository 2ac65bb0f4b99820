//! The real xtask binary, run as a user runs it, in temporary folders.

use std::path::Path;

use crate::support::{mlgate, root, small_csv, text, xtask, SMALL_CONFIG};

/// A temporary project with the small config and `csv` as its data.
fn project(csv: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("pipeline.toml"), SMALL_CONFIG).unwrap();
    std::fs::write(dir.path().join("small.csv"), csv).unwrap();
    dir
}

#[test]
fn build_then_predict() {
    let dir = project(&small_csv(300));
    let out = mlgate(dir.path(), &["build", "--out", "out"], &[]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("threshold"), "{stdout}");
    let artifact = model::Artifact::load(&dir.path().join("out/model.json")).unwrap();
    let report: model::ValidationReport =
        serde_json::from_slice(&std::fs::read(dir.path().join("out/validation.json")).unwrap()).unwrap();
    assert_eq!(report.rows, 300);
    assert_eq!(artifact.lineage.rows_total, 300);

    // Scoring data without its label column: one row out per row in, in order.
    let unlabelled: String = small_csv(40).lines().map(|l| l.rsplit_once(',').unwrap().0.to_string() + "\n").collect();
    std::fs::write(dir.path().join("new.csv"), &unlabelled).unwrap();
    let out =
        mlgate(dir.path(), &["predict", "--model", "out/model.json", "--data", "new.csv", "--out", "pred/p.csv"], &[]);
    assert!(out.status.success(), "{:?}", text(&out));
    let predictions = std::fs::read_to_string(dir.path().join("pred/p.csv")).unwrap();
    let lines: Vec<&str> = predictions.lines().collect();
    assert_eq!(lines[0], "probability,prediction");
    assert_eq!(lines.len(), 41);
    let data =
        model::read_csv(unlabelled.as_bytes(), "new.csv", &artifact.schema, model::LabelPolicy::Optional).unwrap();
    let expected = artifact.score(&data).unwrap().probabilities;
    for (line, p) in lines[1..].iter().zip(&expected) {
        let (prob, pred) = line.split_once(',').unwrap();
        assert_eq!(prob.parse::<f64>().unwrap(), *p);
        assert_eq!(pred, if *p >= artifact.threshold.value { "1" } else { "0" });
    }
}

#[test]
fn bad_data_fails_with_the_summary_and_a_report() {
    let mut csv = small_csv(30);
    csv.push_str("x,-3,1,north,TRUE,yes\n"); // line 32
    csv.push_str("y,4,1,west,TRUE,yes\n"); // line 33
    let dir = project(&csv);
    let out = mlgate(dir.path(), &["build", "--out", "out"], &[]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stdout}\n{stderr}");
    assert!(stderr.contains("small.csv:32: column `amount`: value \"-3\": below the minimum"), "{stderr}");
    assert!(stderr.contains("small.csv:33: column `region`: value \"west\": undeclared level"), "{stderr}");
    assert!(stderr.contains("errors per column and rule"), "{stderr}");
    assert!(!stdout.contains("::error"), "no annotations outside GitHub Actions: {stdout}");
    let report: model::ValidationReport =
        serde_json::from_slice(&std::fs::read(dir.path().join("out/validation.json")).unwrap()).unwrap();
    assert_eq!(report.error_count, 2);
    assert!(!dir.path().join("out/model.json").exists());
}

#[test]
fn bad_data_on_github_actions_gives_error_annotations() {
    let mut csv = small_csv(10);
    csv.push_str("x,1,1,north,TRUE,maybe\n"); // line 12
    let dir = project(&csv);
    let out = mlgate(dir.path(), &["validate"], &[("GITHUB_ACTIONS", "true")]);
    let (stdout, _) = text(&out);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stdout.contains("::error file=small.csv,line=12,title=data validation::column `bought`: value \"maybe\""),
        "{stdout}"
    );
}

#[test]
fn header_errors_name_the_problem() {
    let dir = project("id;amount;visits;region;member;bought\na;1;2;north;TRUE;yes\n");
    let out = mlgate(dir.path(), &["build"], &[]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr.contains("delimited by ';'"), "{stderr}");
}

#[test]
fn a_missing_config_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let out = mlgate(dir.path(), &["build", "--config", "nope.toml"], &[]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr.contains("nope.toml"), "{stderr}");
}

#[test]
fn a_tampered_model_is_refused_by_predict() {
    let dir = project(&small_csv(200));
    assert!(mlgate(dir.path(), &["build", "--out", "out"], &[]).status.success());
    let path = dir.path().join("out/model.json");
    let text_model = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, text_model.replacen("\"name\":\"small\"", "\"name\":\"smoll\"", 1)).unwrap();
    let out =
        mlgate(dir.path(), &["predict", "--model", "out/model.json", "--data", "small.csv", "--out", "p.csv"], &[]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr.contains("checksum mismatch"), "{stderr}");
    assert!(!dir.path().join("p.csv").exists());
}

#[test]
fn the_default_job_runs_on_the_shipped_data() {
    // What README's first command does, in a copy of the repository's config and data.
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("data")).unwrap();
    std::fs::copy(root().join("pipeline.toml"), dir.path().join("pipeline.toml")).unwrap();
    std::fs::copy(root().join("data/customers.csv"), dir.path().join("data/customers.csv")).unwrap();
    let out = mlgate(dir.path(), &["build"], &[("SOURCE_DATE_EPOCH", "1767225600")]);
    assert!(out.status.success(), "{:?}", text(&out));
    let artifact = model::Artifact::load(&dir.path().join("target/model/model.json")).unwrap();
    assert_eq!(artifact.lineage.created_at, "2026-01-01T00:00:00Z");
    assert_eq!(artifact.lineage.rows_total, 6000);
}

#[test]
fn gen_data_check_passes_on_the_committed_file() {
    let out = xtask(&root(), &["gen-data", "--check"], &[]);
    assert!(out.status.success(), "{:?}", text(&out));
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("c.csv"), "not the data\n").unwrap();
    let out = xtask(dir.path(), &["gen-data", "--check", "--out", "c.csv"], &[]);
    assert_eq!(out.status.code(), Some(2));
}

/// The subcommands `mlgate --help` lists.
pub fn subcommands() -> Vec<String> {
    let out = mlgate(Path::new("."), &["--help"], &[]);
    let (stdout, _) = text(&out);
    stdout
        .lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|c| *c != "help")
        .map(str::to_string)
        .collect()
}

#[test]
fn predict_streams_many_blocks_in_order_and_refuses_a_bad_row_without_output() {
    let dir = project(&small_csv(300));
    assert!(mlgate(dir.path(), &["build", "--out", "out"], &[]).status.success());
    let artifact = model::Artifact::load(&dir.path().join("out/model.json")).unwrap();
    // 20,000 rows: several blocks, scored on several threads, must come back in order.
    let big = small_csv(20_000);
    std::fs::write(dir.path().join("big.csv"), &big).unwrap();
    let out = mlgate(dir.path(), &["predict", "--model", "out/model.json", "--data", "big.csv", "--out", "p.csv"], &[]);
    assert!(out.status.success(), "{:?}", text(&out));
    let data = model::read_csv(big.as_bytes(), "big.csv", &artifact.schema, model::LabelPolicy::Optional).unwrap();
    let expected = artifact.score(&data).unwrap().probabilities;
    let got: Vec<f64> = std::fs::read_to_string(dir.path().join("p.csv"))
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| l.split_once(',').unwrap().0.parse().unwrap())
        .collect();
    assert_eq!(got, expected);

    // One bad value deep in the file: exit 2, the line named, nothing written.
    let mut lines: Vec<String> = big.lines().map(str::to_string).collect();
    lines[15_000] = lines[15_000].replacen(",north,", ",atlantis,", 1).replacen(",south,", ",atlantis,", 1);
    std::fs::write(dir.path().join("bad.csv"), lines.join("\n") + "\n").unwrap();
    let out = mlgate(dir.path(), &["predict", "--model", "out/model.json", "--data", "bad.csv", "--out", "q.csv"], &[]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("bad.csv:15001: column `region`: value \"atlantis\": undeclared level"), "{stderr}");
    assert!(!dir.path().join("q.csv").exists());
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[cfg(unix)]
#[test]
fn predict_writes_through_a_symlink_and_refuses_what_is_not_a_file() {
    let dir = project(&small_csv(200));
    assert!(mlgate(dir.path(), &["build", "--out", "out"], &[]).status.success());
    let predict = |out: &str| {
        mlgate(dir.path(), &["predict", "--model", "out/model.json", "--data", "small.csv", "--out", out], &[])
    };
    std::fs::create_dir(dir.path().join("results")).unwrap();
    std::fs::write(dir.path().join("results/p.csv"), "old\n").unwrap();
    std::os::unix::fs::symlink("results/p.csv", dir.path().join("latest.csv")).unwrap();
    // A run killed earlier left its temporary file: the next run removes it.
    std::fs::write(dir.path().join("results/.p.csv.999999.tmp"), "half").unwrap();
    let out = predict("latest.csv");
    assert!(out.status.success(), "{:?}", text(&out));
    assert!(std::fs::symlink_metadata(dir.path().join("latest.csv")).unwrap().file_type().is_symlink());
    assert!(std::fs::read_to_string(dir.path().join("results/p.csv")).unwrap().starts_with("probability,prediction\n"));
    assert_eq!(std::fs::read_dir(dir.path().join("results")).unwrap().count(), 1, "no temporary is left");

    let fifo = dir.path().join("fifo");
    assert!(std::process::Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    for (target, kind) in [("results", "directory"), ("fifo", "FIFO")] {
        let out = predict(target);
        let (_, stderr) = text(&out);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains(target) && stderr.contains(kind), "{stderr}");
    }
    use std::os::unix::fs::FileTypeExt;
    assert!(std::fs::symlink_metadata(&fifo).unwrap().file_type().is_fifo(), "the FIFO is still a FIFO");
}

#[test]
fn predict_refuses_a_resealed_artifact_with_a_looping_tree() {
    let dir = project(&small_csv(200));
    let config = SMALL_CONFIG.replace("family = \"logistic_regression\"", "family = \"gradient_boosting\"");
    std::fs::write(dir.path().join("pipeline.toml"), config).unwrap();
    assert!(mlgate(dir.path(), &["build", "--out", "out"], &[]).status.success());
    let path = dir.path().join("out/model.json");
    let mut file: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let tree = &mut file["artifact"]["model"]["trees"][0];
    assert!(tree["feature"][0].as_i64().unwrap() >= 0, "the first tree splits at its root");
    tree["left"][0] = serde_json::json!(0);
    let body = serde_json::to_string(&file["artifact"]).unwrap();
    use sha2::Digest;
    let sum = format!("{:x}", sha2::Sha256::digest(body.as_bytes()));
    std::fs::write(&path, format!("{{\"format_version\":1,\"sha256\":\"{sum}\",\"artifact\":{body}}}\n")).unwrap();
    let out =
        mlgate(dir.path(), &["predict", "--model", "out/model.json", "--data", "small.csv", "--out", "p.csv"], &[]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("not a readable model artifact") && stderr.contains("node 0"), "{stderr}");
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert!(!left.iter().any(|n| n.to_string_lossy().contains("p.csv")), "{left:?}");
}

#[test]
fn predict_with_a_registry_scores_with_its_alias_or_a_named_version() {
    let dir = project(&small_csv(300));
    let run = |args: &[&str]| {
        let out = mlgate(dir.path(), args, &[]);
        let (o, e) = text(&out);
        (out.status.code(), format!("{o}{e}"))
    };
    let (code, out) = run(&["build", "--out", "out"]);
    assert_eq!(code, Some(0), "{out}");
    let (code, out) = run(&["acceptance", "--model", "out/model.json", "--out", "acc"]);
    assert_eq!(code, Some(0), "{out}");
    let unlabelled: String = small_csv(40).lines().map(|l| l.rsplit_once(',').unwrap().0.to_string() + "\n").collect();
    std::fs::write(dir.path().join("new.csv"), &unlabelled).unwrap();
    let (code, out) = run(&["predict", "--model", "out/model.json", "--data", "new.csv", "--out", "file.csv"]);
    assert_eq!(code, Some(0), "{out}");
    let expected = std::fs::read_to_string(dir.path().join("file.csv")).unwrap();
    let scored = |name: &str| std::fs::read_to_string(dir.path().join(name)).unwrap();

    // Nothing in production yet: the error says so, and what sets it.
    let (code, out) = run(&["predict", "--registry", "registry", "--data", "new.csv", "--out", "p.csv"]);
    assert_eq!(code, Some(2), "{out}");
    assert!(out.contains("no version is `production` in registry"), "{out}");
    let (code, out) =
        run(&["predict", "--registry", "registry", "--alias", "staging", "--data", "new.csv", "--out", "s.csv"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("with v1 of registry"), "{out}");
    assert_eq!(scored("s.csv"), expected);

    let (code, out) = run(&["deploy"]);
    assert_eq!(code, Some(0), "{out}");
    let (code, out) = run(&["predict", "--registry", "registry", "--data", "new.csv", "--out", "p.csv"]);
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(scored("p.csv"), expected);
    let (code, out) =
        run(&["predict", "--registry", "registry", "--version", "v1", "--data", "new.csv", "--out", "v.csv"]);
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(scored("v.csv"), expected);

    // One source, exactly.
    let (code, out) =
        run(&["predict", "--model", "out/model.json", "--registry", "registry", "--data", "new.csv", "--out", "x.csv"]);
    assert_eq!(code, Some(2), "{out}");
    assert!(out.contains("cannot be used with"), "{out}");
    let (code, out) = run(&["predict", "--data", "new.csv", "--out", "x.csv"]);
    assert_eq!(code, Some(2), "{out}");
    let (code, out) =
        run(&["predict", "--model", "out/model.json", "--version", "v1", "--data", "new.csv", "--out", "x.csv"]);
    assert_eq!(code, Some(2), "{out}");
}
