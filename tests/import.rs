//! Models trained elsewhere: LightGBM and XGBoost from PyPI (the environment `.ci/run` makes,
//! `.ci/learners`) train small binary models on generated data and on the shared Online Shoppers
//! data, with categorical columns and blanks, and save them in their own formats
//! (`tests/clients/learners.py`); `mlgate import` converts them, and `mlgate predict` must give the
//! libraries' own `predict_proba` within 1e-6 and the same decision at the artifact's threshold on
//! rows neither saw in training. Then everything downstream of an artifact: acceptance of an
//! imported candidate against a native production and the other way round, deploy, `serve` with
//! receipts and hot swaps between the two origins, batch monitoring; the refusals of objectives
//! mlgate cannot score exactly; and the Dask example, XGBoost trained on a local cluster of two
//! worker processes, imported, gated and deployed.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::serve::{without_receipts, Server};
use crate::support::{mlgate, root, shared_train_csv, text};

/// The Python of `.ci/learners`; `None` (a printed skip) when absent outside CI.
fn learners_python() -> Option<PathBuf> {
    let python = root().join(".ci/learners/bin/python");
    if python.is_file() {
        return Some(python);
    }
    let reason = "no .ci/learners (`.ci/run` makes it: lightgbm, xgboost, dask and distributed from PyPI)";
    assert!(std::env::var_os("CI").is_none(), "{reason}, and CI must run this test");
    eprintln!("skipped: {reason}");
    None
}

/// Runs `tests/clients/learners.py ARGS…` in `dir`; its standard output.
fn learners(python: &Path, dir: &Path, args: &[&str]) -> String {
    let out = Command::new(python)
        .arg(root().join("tests/clients/learners.py"))
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "learners.py {args:?}\n{stdout}\n{stderr}");
    stdout
}

/// `mlgate ARGS…` in `dir`, which must exit 0; its standard output.
fn ok(dir: &Path, args: &[&str]) -> String {
    let out = mlgate(dir, args, &[("USER", "tester")]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "mlgate {args:?}\n{stdout}\n{stderr}");
    stdout
}

/// The two libraries, each with the flag of `import` and the file name its format takes.
const LIBRARIES: [(&str, &str, &str); 2] =
    [("lightgbm", "--lightgbm", "model.txt"), ("xgboost", "--xgboost", "model.json")];

/// The configuration of the generated data (`learners.py generate`): numbers and a category with
/// blanks, a category without, a boolean.
const GENERATED: &str = r#"name = "generated"

[data]
path = "train.csv"

[schema]
delimiter = ","

[[schema.columns]]
name = "amount"
kind = "numeric"
min = 0
missing = "allow"

[[schema.columns]]
name = "visits"
kind = "integer"
min = 0
missing = "allow"

[[schema.columns]]
name = "score"
kind = "numeric"
missing = "allow"

[[schema.columns]]
name = "colour"
kind = "categorical"
levels = ["red", "green", "blue", "amber", "violet"]
missing = "allow"

[[schema.columns]]
name = "channel"
kind = "categorical"
levels = ["web", "store", "phone"]

[[schema.columns]]
name = "member"
kind = "boolean"
true = ["yes"]
false = ["no"]

[[schema.columns]]
name = "bought"
kind = "label"
positive = "yes"
negative = "no"

[model]
family = "gradient_boosting"

[model.gradient_boosting]
max_iter = 60

[split]
seed = 3
validation_fraction = 0.2

[threshold]
optimise = "f1"

[staging]
fraction = 0.2

[acceptance]
min = { roc_auc = 0.6 }
compare = ["roc_auc"]
margin = 0.05
resamples = 1000

[registry]
path = "registry"

[monitor]
min = { roc_auc = 0.6 }
max_drop = { roc_auc = 0.1 }
"#;

/// A folder with the generated data's configuration and files: train.csv (4,000 rows),
/// validation.csv (2,000, the rows `import` chooses the threshold on), test.csv (10,000) and
/// staging.csv (5,000), each drawn with its own seed.
fn generated(python: &Path) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("pipeline.toml"), GENERATED).unwrap();
    for (seed, rows, file) in [
        ("1", "4000", "train.csv"),
        ("2", "2000", "validation.csv"),
        ("3", "10000", "test.csv"),
        ("4", "5000", "staging.csv"),
    ] {
        learners(python, dir.path(), &["generate", seed, rows, file]);
    }
    dir
}

/// `mlgate predict`'s probabilities and decisions of `data` with `model`.
fn predicted(dir: &Path, model: &str, data: &str) -> Vec<(f64, u8)> {
    ok(dir, &["predict", "--model", model, "--data", data, "--out", "scored.csv"]);
    parse_scored(&std::fs::read_to_string(dir.join("scored.csv")).unwrap())
}

/// `probability,prediction` lines after a header.
fn parse_scored(csv: &str) -> Vec<(f64, u8)> {
    csv.lines()
        .skip(1)
        .map(|l| {
            let mut fields = l.split(',');
            (fields.next().unwrap().parse().unwrap(), fields.next().unwrap().parse().unwrap())
        })
        .collect()
}

/// The library's own probabilities of `data` (`learners.py predict`).
fn library_probabilities(python: &Path, dir: &Path, library: &str, config: &str, model: &str, data: &str) -> Vec<f64> {
    let out = format!("{library}-probabilities.txt");
    learners(python, dir, &["predict", library, config, model, data, &out]);
    std::fs::read_to_string(dir.join(&out)).unwrap().lines().map(|l| l.parse().unwrap()).collect()
}

/// Trains `library`'s model on `train`, imports it with `config` choosing the threshold on
/// `validation`, and checks that mlgate scores `test` as the library does: every probability
/// within 1e-6, every decision at the artifact's threshold the same. The artifact's path.
fn import_and_compare(
    python: &Path,
    dir: &Path,
    (library, flag, file): (&str, &str, &str),
    config: &str,
    (train, validation, test): (&str, &str, &str),
) -> String {
    let model = format!("{library}-{file}");
    learners(python, dir, &["train", library, config, train, &model]);
    let out = format!("imported-{library}");
    let summary = ok(dir, &["import", flag, &model, "--config", config, "--data", validation, "--out", &out]);
    assert!(summary.contains(&format!("trained by {library}")), "{summary}");
    let artifact_path = format!("{out}/model.json");
    let artifact = model::Artifact::load(&dir.join(&artifact_path)).unwrap();
    let origin = artifact.origin.as_ref().expect("an imported artifact names its origin");
    assert_eq!(origin.library, library);
    assert_eq!(origin.sha256, sha256_hex(&std::fs::read(dir.join(&model)).unwrap()));
    assert!(dir.join(&out).join("validation.json").is_file());

    let expected = library_probabilities(python, dir, library, config, &model, test);
    let got = predicted(dir, &artifact_path, test);
    assert_eq!(got.len(), expected.len());
    assert!(got.len() >= 3000, "{} rows compared", got.len());
    let threshold = artifact.threshold.value;
    let mut worst = 0.0f64;
    for (row, ((p, decision), e)) in got.iter().zip(&expected).enumerate() {
        worst = worst.max((p - e).abs());
        assert!((p - e).abs() <= 1e-6, "{library}, row {}: mlgate {p}, {library} {e}", row + 1);
        assert_eq!(*decision, u8::from(*e >= threshold), "{library}, row {}: {p} vs {e} at {threshold}", row + 1);
    }
    let positives = got.iter().filter(|(_, d)| *d == 1).count();
    assert!(positives > 0 && positives < got.len(), "{library}: {positives} of {} positive", got.len());
    println!("{library}: {} rows, largest difference {worst:e}, threshold {threshold}", got.len());
    artifact_path
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn lightgbm_and_xgboost_models_of_generated_data_score_as_the_libraries_do() {
    let Some(python) = learners_python() else { return };
    let dir = generated(&python);
    for library in LIBRARIES {
        import_and_compare(&python, dir.path(), library, "pipeline.toml", ("train.csv", "validation.csv", "test.csv"));
    }
}

/// `text` with each cell of `columns` blanked with probability `share` (seeded).
fn blank(text: &str, columns: &[&str], share: f64, seed: u64) -> String {
    let header: Vec<&str> = text.lines().next().unwrap().split(',').collect();
    let at: Vec<usize> = columns.iter().map(|c| header.iter().position(|h| h == c).unwrap()).collect();
    let mut rng = model::rng::Rng::new(seed);
    let mut out = String::with_capacity(text.len());
    for (i, line) in text.lines().enumerate() {
        let mut fields: Vec<&str> = line.split(',').collect();
        if i > 0 {
            for &f in &at {
                if rng.uniform() < share {
                    fields[f] = "";
                }
            }
        }
        out.push_str(&fields.join(","));
        out.push('\n');
    }
    out
}

/// The shared data, its categorical columns as pandas categories, 5 % of three numeric columns
/// blanked: trained on half the sessions, the threshold chosen on a sixth, compared on the other
/// third (3,288 sessions neither library nor mlgate saw in training).
#[test]
fn models_trained_on_the_shared_online_shoppers_data_score_as_the_libraries_do() {
    let Some(csv) = shared_train_csv() else { return };
    let Some(python) = learners_python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let blanked_columns = ["Administrative_Duration", "ExitRates", "ProductRelated"];
    let text = blank(&std::fs::read_to_string(&csv).unwrap(), &blanked_columns, 0.05, 2026);
    let mut lines = text.lines();
    let header = lines.next().unwrap();
    let mut files = [String::new(), String::new(), String::new()];
    for file in &mut files {
        file.push_str(header);
        file.push('\n');
    }
    for (i, line) in lines.enumerate() {
        let file = &mut files[[0, 0, 0, 1, 2, 2][i % 6]];
        file.push_str(line);
        file.push('\n');
    }
    for (name, content) in ["train.csv", "validation.csv", "test.csv"].iter().zip(&files) {
        std::fs::write(dir.path().join(name), content).unwrap();
    }
    let mut config = std::fs::read_to_string(root().join("configs/online-shoppers.toml")).unwrap();
    for column in blanked_columns {
        let declared = format!("name = \"{column}\"\n");
        config = config.replacen(&declared, &format!("{declared}missing = \"allow\"\n"), 1);
    }
    let config = config.replace("../../shared/data/online-shoppers/train.csv", "train.csv");
    std::fs::write(dir.path().join("online-shoppers.toml"), config).unwrap();
    for library in LIBRARIES {
        import_and_compare(
            &python,
            dir.path(),
            library,
            "online-shoppers.toml",
            ("train.csv", "validation.csv", "test.csv"),
        );
    }
}

#[test]
fn models_of_other_objectives_are_refused_naming_the_objective() {
    let Some(python) = learners_python() else { return };
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("pipeline.toml"), GENERATED).unwrap();
    learners(&python, dir.path(), &["generate", "5", "600", "train.csv"]);
    for (library, flag, objective, named) in [
        ("lightgbm", "--lightgbm", "regression", "regression"),
        ("lightgbm", "--lightgbm", "multiclass", "multiclass"),
        ("xgboost", "--xgboost", "reg:squarederror", "reg:squarederror"),
        ("xgboost", "--xgboost", "multi:softprob", "multi:softprob"),
    ] {
        // XGBoost writes JSON for a `.json` name (UBJSON otherwise).
        let extension = if library == "xgboost" { "json" } else { "txt" };
        let model = format!("{library}-{}.{extension}", objective.replace(':', "-"));
        learners(&python, dir.path(), &["refused", library, objective, "pipeline.toml", "train.csv", &model]);
        let out_dir = format!("out-{model}");
        let out = mlgate(
            dir.path(),
            &["import", flag, &model, "--config", "pipeline.toml", "--data", "train.csv", "--out", &out_dir],
            &[],
        );
        let (stdout, stderr) = text(&out);
        assert_eq!(out.status.code(), Some(1), "{library} {objective}\n{stdout}\n{stderr}");
        assert!(stderr.contains(named), "{library} {objective}: {stderr}");
        assert!(!dir.path().join(&out_dir).join("model.json").exists(), "{library} {objective}");
    }
}

/// Answers of `/v1/predict` to a CSV body: each row's probability and decision (the receipts
/// checked present and removed).
fn served_csv(server: &Server, csv: &str) -> Vec<(f64, u8)> {
    let (status, answer) = server.post("/v1/predict", "text/csv", csv.as_bytes());
    assert_eq!(status, 200, "{answer}");
    parse_scored(&without_receipts(&answer))
}

#[test]
fn an_imported_model_is_gated_deployed_served_swapped_and_monitored() {
    let Some(python) = learners_python() else { return };
    let dir = generated(&python);
    let dir = dir.path();
    let registry = dir.join("registry");
    let reg = registry.to_str().unwrap();

    // A native model in production.
    ok(dir, &["build", "--out", "native"]);
    ok(dir, &["acceptance", "--model", "native/model.json", "--data", "staging.csv", "--out", "acc-native"]);
    ok(dir, &["deploy"]);

    // An imported LightGBM candidate, gated against it: the report names where it came from.
    let lightgbm =
        import_and_compare(&python, dir, LIBRARIES[0], "pipeline.toml", ("train.csv", "validation.csv", "test.csv"));
    ok(dir, &["acceptance", "--model", &lightgbm, "--data", "staging.csv", "--out", "acc-lightgbm"]);
    let record: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("acc-lightgbm/metrics.json")).unwrap()).unwrap();
    assert_eq!(record["passed"], true, "{record}");
    assert_eq!(record["production"]["version"], "v1", "{record}");
    let report = std::fs::read_to_string(dir.join("acc-lightgbm/report.md")).unwrap();
    assert!(report.contains("LightGBM") && report.contains("lightgbm-model.txt"), "{report}");
    ok(dir, &["deploy"]);

    // Served: the library's probabilities, each with a receipt.
    let server = Server::start(&registry, &["--poll", "0.2"]);
    assert_eq!(server.version(), "v2");
    let rows: String =
        std::fs::read_to_string(dir.join("test.csv")).unwrap().lines().take(501).map(|l| format!("{l}\n")).collect();
    std::fs::write(dir.join("rows.csv"), &rows).unwrap();
    let library = library_probabilities(&python, dir, "lightgbm", "pipeline.toml", "lightgbm-model.txt", "rows.csv");
    let served = served_csv(&server, &rows);
    assert_eq!(served.len(), 500);
    for (s, l) in served.iter().zip(&library) {
        assert!((s.0 - l).abs() <= 1e-6, "served {} vs lightgbm {l}", s.0);
    }

    // A native candidate against the imported production, deployed: the server swaps to it.
    ok(dir, &["build", "--out", "native2"]);
    ok(dir, &["acceptance", "--model", "native2/model.json", "--data", "staging.csv", "--out", "acc-native2"]);
    let record: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("acc-native2/metrics.json")).unwrap()).unwrap();
    assert_eq!(record["production"]["version"], "v2", "{record}");
    ok(dir, &["deploy"]);
    server.wait_for_version("v3", Duration::from_secs(30));
    let native = predicted(dir, &format!("{reg}/versions/v3/model.json"), "rows.csv");
    let served = served_csv(&server, &rows);
    for (s, n) in served.iter().zip(&native) {
        assert_eq!(s.0.to_bits(), n.0.to_bits());
        assert_eq!(s.1, n.1);
    }

    // And back to the imported version: the server swaps again and answers as LightGBM does.
    ok(dir, &["rollback", "--to", "v2", "--reason", "back to the imported model"]);
    server.wait_for_version("v2", Duration::from_secs(30));
    for (s, l) in served_csv(&server, &rows).iter().zip(&library) {
        assert!((s.0 - l).abs() <= 1e-6, "served {} vs lightgbm {l}", s.0);
    }

    // An imported XGBoost candidate against the imported LightGBM production, deployed: served
    // as XGBoost computes it, in single precision.
    let xgboost =
        import_and_compare(&python, dir, LIBRARIES[1], "pipeline.toml", ("train.csv", "validation.csv", "test.csv"));
    ok(dir, &["acceptance", "--model", &xgboost, "--data", "staging.csv", "--out", "acc-xgboost"]);
    let report = std::fs::read_to_string(dir.join("acc-xgboost/report.md")).unwrap();
    assert!(
        report.contains("trained by XGBoost") && report.contains("production v2 was trained by LightGBM"),
        "{report}"
    );
    ok(dir, &["deploy"]);
    server.wait_for_version("v4", Duration::from_secs(30));
    let library = library_probabilities(&python, dir, "xgboost", "pipeline.toml", "xgboost-model.json", "rows.csv");
    for (s, l) in served_csv(&server, &rows).iter().zip(&library) {
        assert!((s.0 - l).abs() <= 1e-6, "served {} vs xgboost {l}", s.0);
    }
    drop(server);

    // Batch monitoring of the imported production on new labelled rows.
    let out = mlgate(dir, &["monitor", "--data", "test.csv", "--out", "mon"], &[("USER", "tester")]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    let monitor: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("mon/monitor.json")).unwrap()).unwrap();
    assert_eq!(monitor["version"], "v4", "{monitor}");
}

/// examples/dask-xgboost: XGBoost trained on a `dask.distributed.LocalCluster` of two worker
/// processes, then imported, gated against a native production and deployed, as its README says.
#[test]
fn the_dask_example_trains_on_a_local_cluster_and_is_gated_and_deployed() {
    let Some(python) = learners_python() else { return };
    let dir = generated(&python);
    let dir = dir.path();
    ok(dir, &["build", "--out", "native"]);
    ok(dir, &["acceptance", "--model", "native/model.json", "--data", "staging.csv", "--out", "acc-native"]);
    ok(dir, &["deploy"]);

    let example = root().join("examples/dask-xgboost");
    let out = Command::new(&python)
        .arg(example.join("train.py"))
        .args(["--config", "pipeline.toml", "--data", "train.csv", "--out", "dask-model.json"])
        .current_dir(dir)
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("2 workers"), "{stdout}\n{stderr}");
    assert!(stdout.contains("cluster closed"), "{stdout}\n{stderr}");

    let summary =
        ok(dir, &["import", "--xgboost", "dask-model.json", "--data", "validation.csv", "--out", "imported-dask"]);
    assert!(summary.contains("trained by xgboost"), "{summary}");
    ok(dir, &["acceptance", "--model", "imported-dask/model.json", "--data", "staging.csv", "--out", "acc-dask"]);
    ok(dir, &["deploy"]);
    let (registry, _) = text(&mlgate(dir, &["registry"], &[]));
    assert!(registry.contains("v2"), "{registry}");
    let artifact = model::Artifact::load(&dir.join("registry/versions/v2/model.json")).unwrap();
    assert_eq!(artifact.origin.as_ref().map(|o| o.library.as_str()), Some("xgboost"));
}
