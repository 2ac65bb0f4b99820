//! `mlgate init` as a new user runs it: a starting pipeline.toml inferred from a CSV, used
//! without an edit by validate, build, acceptance, deploy and serve.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use model::data::schema::{Column, ColumnKind, Missing, Transform};
use model::rng::Rng;
use model::PipelineConfig;

use crate::support::{mlgate, mlgate_bin, root, shared_train_csv, stop_server, text};

/// Runs mlgate in `dir` and asserts that it exits with 0; its stdout.
fn ok(dir: &Path, args: &[&str]) -> String {
    let out = mlgate(dir, args, &[("USER", "tester")]);
    let (o, e) = text(&out);
    assert_eq!(out.status.code(), Some(0), "mlgate {args:?}\n{o}{e}");
    o
}

fn column<'a>(config: &'a PipelineConfig, name: &str) -> &'a Column {
    config.schema.column(name).unwrap_or_else(|| panic!("no column `{name}`"))
}

#[test]
fn init_on_the_project_data_writes_a_configuration_that_validates_it() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(root().join("data/customers.csv"), dir.path().join("customers.csv")).unwrap();
    let out = ok(dir.path(), &["init", "--data", "customers.csv", "--label", "purchased"]);
    assert!(out.contains("wrote pipeline.toml: 11 columns"), "{out}");
    let config = PipelineConfig::load(&dir.path().join("pipeline.toml")).unwrap();
    assert_eq!(config.name, "customers");
    assert_eq!(config.data.path, Path::new("customers.csv"));
    assert_eq!(column(&config, "customer_id").kind, ColumnKind::Id);
    assert!(matches!(column(&config, "age").kind, ColumnKind::Integer { min: Some(11), max: Some(87), .. }));
    let ColumnKind::Categorical { levels: Some(levels) } = &column(&config, "region").kind else {
        panic!("region is not categorical with levels")
    };
    let mut levels = levels.clone();
    levels.sort();
    assert_eq!(levels, ["central", "east", "north", "south", "west"]);
    assert_eq!(
        column(&config, "newsletter").kind,
        ColumnKind::Boolean { true_values: vec!["yes".into()], false_values: vec!["no".into()] }
    );
    assert_eq!(
        column(&config, "spending").kind,
        ColumnKind::Numeric { min: Some(0.0), max: None, transform: Transform::Log1p }
    );
    assert_eq!(column(&config, "purchased").kind, ColumnKind::Label { positive: "yes".into(), negative: "no".into() });
    let out = ok(dir.path(), &["validate"]);
    assert!(out.contains("customers.csv: valid, 6000 rows"), "{out}");
}

#[test]
fn init_on_the_shared_online_shoppers_data_writes_a_configuration_that_validates_it() {
    let Some(train) = shared_train_csv() else { return };
    let dir = tempfile::tempdir().unwrap();
    // A folder of its own under the temporary one: the data path is then relative to it.
    let out =
        ok(dir.path(), &["init", "--data", train.to_str().unwrap(), "--label", "Revenue", "--out", "shoppers.toml"]);
    assert!(out.contains("from 9,864 rows"), "{out}");
    let config = PipelineConfig::load(&dir.path().join("shoppers.toml")).unwrap();
    let ColumnKind::Categorical { levels: Some(months) } = &column(&config, "Month").kind else {
        panic!("Month is not categorical with levels")
    };
    assert_eq!(months.len(), 10, "no Jan or Apr in the data: {months:?}");
    assert!(months.iter().any(|m| m == "June"), "{months:?}");
    let ColumnKind::Categorical { levels: Some(visitors) } = &column(&config, "VisitorType").kind else {
        panic!("VisitorType is not categorical with levels")
    };
    assert_eq!(visitors.len(), 3);
    assert_eq!(
        column(&config, "Weekend").kind,
        ColumnKind::Boolean { true_values: vec!["TRUE".into()], false_values: vec!["FALSE".into()] }
    );
    for duration in ["Administrative_Duration", "Informational_Duration", "ProductRelated_Duration"] {
        assert_eq!(
            column(&config, duration).kind,
            ColumnKind::Numeric { min: Some(0.0), max: None, transform: Transform::Log1p },
            "{duration}"
        );
    }
    assert_eq!(
        column(&config, "BounceRates").kind,
        ColumnKind::Numeric { min: Some(0.0), max: Some(0.22), transform: Transform::None }
    );
    assert!(matches!(column(&config, "Browser").kind, ColumnKind::Integer { transform: Transform::None, .. }));
    assert_eq!(
        column(&config, "Revenue").kind,
        ColumnKind::Label { positive: "TRUE".into(), negative: "FALSE".into() }
    );
    let out = ok(dir.path(), &["validate", "--config", "shoppers.toml"]);
    assert!(out.contains("valid, 9864 rows"), "{out}");
}

#[test]
fn init_refuses_to_overwrite_and_to_take_an_unusable_label() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("x.csv"), "a,b,y\n1,u,p\n2,v,q\n3,w,r\n4,u,p\n").unwrap();
    std::fs::write(dir.path().join("pipeline.toml"), "keep me\n").unwrap();
    let out = mlgate(dir.path(), &["init", "--data", "x.csv", "--label", "y"], &[]);
    let (_, err) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("pipeline.toml exists: refusing to overwrite it"), "{err}");
    assert_eq!(std::fs::read_to_string(dir.path().join("pipeline.toml")).unwrap(), "keep me\n");

    let out = mlgate(dir.path(), &["init", "--data", "x.csv", "--label", "y", "--out", "new.toml"], &[]);
    let (_, err) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("label column `y` must hold exactly two distinct values; it has 3"), "{err}");
    assert!(err.contains("\"r\" (1)"), "the values are named: {err}");
    assert!(!dir.path().join("new.toml").exists(), "nothing is written on a refusal");

    let out = mlgate(dir.path(), &["init", "--data", "absent.csv", "--out", "new.toml"], &[]);
    let (_, err) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("cannot read absent.csv"), "{err}");
}

#[test]
fn init_without_a_label_writes_what_to_fix_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("x.csv"), "a,flag,bought\n1,TRUE,yes\n2,FALSE,no\n3,TRUE,no\n").unwrap();
    let out = mlgate(dir.path(), &["init", "--data", "x.csv"], &[]);
    let (_, err) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(err.contains("no label: pass --label COL") && err.contains("flag, bought"), "{err}");
    let written = std::fs::read_to_string(dir.path().join("pipeline.toml")).unwrap();
    assert!(written.contains("# FIXME: choose the label."), "{written}");
    let out = mlgate(dir.path(), &["validate"], &[]);
    let (_, err) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("no column has kind = \"label\""), "{err}");
}

/// A data set the project has never seen, drawn from a seeded formula: an id, numbers of three
/// shapes, an integer, a category, a boolean with blanks, and a yes/no label that depends on
/// them.
fn new_users_csv(rows: usize, seed: u64) -> String {
    let mut rng = Rng::new(seed);
    let mut s = String::from("visitor_id,age,income,minutes,score,visits,plan,member,bought\n");
    for i in 0..rows {
        let age = 18 + rng.below(60);
        let income = (10.0 + 0.8 * rng.normal()).exp();
        let minutes = (rng.uniform() * 90.0 * 100.0).round() / 100.0;
        let score = (rng.normal() * 1000.0).round() / 1000.0;
        let visits = rng.below(12);
        let plan = ["basic", "plus", "pro"][rng.below(3)];
        let member = if rng.chance(0.1) {
            ""
        } else if rng.chance(0.4) {
            "true"
        } else {
            "false"
        };
        let z = -2.0 + 1.5 * score + 0.08 * visits as f64 + 0.02 * minutes - 0.01 * (age as f64 - 40.0)
            + if plan == "pro" { 1.0 } else { 0.0 }
            + if member == "true" { 0.8 } else { 0.0 };
        let bought = if rng.uniform() < 1.0 / (1.0 + (-z).exp()) { "yes" } else { "no" };
        s.push_str(&format!("u{i:05x},{age},{income:.2},{minutes},{score},{visits},{plan},{member},{bought}\n"));
    }
    s
}

#[test]
fn a_new_user_goes_from_a_csv_to_a_served_model_without_editing_the_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let csv = new_users_csv(2000, 20261204);
    std::fs::write(dir.path().join("x.csv"), &csv).unwrap();
    ok(dir.path(), &["init", "--data", "x.csv", "--label", "bought"]);
    let config = PipelineConfig::load(&dir.path().join("pipeline.toml")).unwrap();
    assert_eq!(column(&config, "visitor_id").kind, ColumnKind::Id);
    assert!(matches!(column(&config, "age").kind, ColumnKind::Integer { .. }));
    assert!(matches!(column(&config, "income").kind, ColumnKind::Numeric { transform: Transform::Log1p, .. }));
    assert!(matches!(column(&config, "score").kind, ColumnKind::Numeric { min: Some(lo), .. } if lo < 0.0));
    assert!(matches!(column(&config, "plan").kind, ColumnKind::Categorical { levels: Some(_) }));
    let member = column(&config, "member");
    assert_eq!(
        member.kind,
        ColumnKind::Boolean { true_values: vec!["true".into()], false_values: vec!["false".into()] }
    );
    assert_eq!(member.missing, Missing::Allow);

    ok(dir.path(), &["validate"]);
    ok(dir.path(), &["build"]);
    // Exit 0: the gate passed (a failed gate exits 1, and deploy would refuse the version).
    ok(dir.path(), &["acceptance", "--registry", "reg"]);
    ok(dir.path(), &["deploy", "--registry", "reg"]);

    let log = dir.path().join("serve.log");
    let mut server = Serving(
        Command::new(mlgate_bin())
            .args(["serve", "--registry", "reg", "--listen", "127.0.0.1:0"])
            .current_dir(dir.path())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    );
    let log = || std::fs::read_to_string(&log).unwrap_or_default();
    let mut line = String::new();
    BufReader::new(server.0.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let port: u16 = line
        .trim()
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no port in {line:?}: {}", log()));
    let start = Instant::now();
    while !crate::serve::request(port, "GET", "/readyz", "", b"").is_ok_and(|(status, _)| status == 200) {
        assert!(start.elapsed() < Duration::from_secs(60), "/readyz never answered 200: {}", log());
        std::thread::sleep(Duration::from_millis(50));
    }
    let records = serde_json::json!({ "records": [{
        "visitor_id": "new-1", "age": 35, "income": 24000.5, "minutes": 42.5, "score": 1.2,
        "visits": 7, "plan": "pro", "member": "true"
    }, {
        "visitor_id": "new-2", "age": 61, "income": 8000, "minutes": 1.5, "score": -1.9,
        "visits": 0, "plan": "basic", "member": null
    }]});
    let (status, body) =
        crate::serve::request(port, "POST", "/v1/predict", "application/json", &serde_json::to_vec(&records).unwrap())
            .unwrap();
    assert_eq!(status, 200, "{body}\n{}", log());
    let answer: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(answer["model"], "x");
    assert_eq!(answer["version"], "v1");
    let predictions = answer["predictions"].as_array().unwrap();
    assert_eq!(predictions.len(), 2, "{body}");
    assert_eq!(predictions[0]["id"], "new-1", "the id column is carried to the prediction");
    let p: Vec<f64> = predictions.iter().map(|p| p["probability"].as_f64().unwrap()).collect();
    // The first visitor has every feature the formula rewards, the second none.
    assert!(p[0] > p[1], "{p:?}");
}

/// A running `serve`, stopped by its process id when dropped (also when an assertion fails).
struct Serving(std::process::Child);

impl Drop for Serving {
    fn drop(&mut self) {
        stop_server(&mut self.0);
    }
}
