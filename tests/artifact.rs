//! Artifacts: sealed, refused when altered, reproducible; predictions on records and batches.

use std::path::Path;

use model::pipeline::build::{build, BuildContext};
use model::{read_csv, Artifact, Error, LabelPolicy};
use sha2::Digest;

use crate::support::{small_config, small_csv};

fn trained(csv: &str) -> Artifact {
    let config = small_config();
    let data = read_csv(csv.as_bytes(), "small.csv", &config.schema, LabelPolicy::Required).unwrap();
    let context =
        BuildContext { config_file: "small.toml".into(), git_commit: None, created_at: "2026-01-01T00:00:00Z".into() };
    build(&config, &data, &context).unwrap()
}

#[test]
fn save_and_load_round_trip_exactly() {
    let artifact = trained(&small_csv(200));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.json");
    artifact.save(&path).unwrap();
    let loaded = Artifact::load(&path).unwrap();
    assert_eq!(loaded, artifact);
    assert_eq!(loaded.checksum(), artifact.checksum());
    // Nothing but the artifact is left in the folder (the temporary file was renamed).
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}

#[test]
fn a_tampered_artifact_is_refused() {
    let artifact = trained(&small_csv(200));
    let text = String::from_utf8(artifact.to_bytes()).unwrap();
    let threshold = format!("\"value\":{}", artifact.threshold.value);
    assert!(text.contains(&threshold));
    let tampered = text.replacen(&threshold, "\"value\":0.01", 1);
    let r = Artifact::from_bytes(tampered.as_bytes(), Path::new("m.json"));
    assert!(matches!(r, Err(Error::ArtifactChecksum { .. })), "{r:?}");
}

#[test]
fn a_truncated_artifact_is_refused() {
    let bytes = trained(&small_csv(200)).to_bytes();
    for cut in [0, 10, bytes.len() / 2, bytes.len() - 3] {
        let r = Artifact::from_bytes(&bytes[..cut], Path::new("m.json"));
        assert!(matches!(r, Err(Error::ArtifactCorrupt { .. })), "cut at {cut}: {r:?}");
    }
}

#[test]
fn another_format_version_is_refused() {
    let text = String::from_utf8(trained(&small_csv(200)).to_bytes()).unwrap();
    let other = text.replacen("\"format_version\":1,", "\"format_version\":99,", 1);
    let r = Artifact::from_bytes(other.as_bytes(), Path::new("m.json"));
    assert!(matches!(r, Err(Error::ArtifactVersion { found: 99, expected: 1, .. })), "{r:?}");
}

#[test]
fn same_data_config_and_seed_give_the_same_model_byte_for_byte() {
    for family in ["logistic_regression", "gradient_boosting"] {
        let text =
            crate::support::SMALL_CONFIG.replace("family = \"logistic_regression\"", &format!("family = \"{family}\""));
        let config = model::PipelineConfig::parse(&text, Path::new("small.toml")).unwrap();
        let csv = small_csv(300);
        let data = read_csv(csv.as_bytes(), "small.csv", &config.schema, LabelPolicy::Required).unwrap();
        let a = build(&config, &data, &BuildContext { created_at: "t1".into(), ..Default::default() }).unwrap();
        let b = build(&config, &data, &BuildContext { created_at: "t2".into(), ..Default::default() }).unwrap();
        let json = |v: &dyn erased::Json| v.json();
        assert_eq!(json(&a.model), json(&b.model), "{family}");
        assert_eq!(json(&a.preprocessing), json(&b.preprocessing));
        assert_eq!(json(&a.threshold), json(&b.threshold));
        assert_eq!(json(&a.validation), json(&b.validation));
        assert_ne!(a.lineage.created_at, b.lineage.created_at);
    }
}

mod erased {
    pub trait Json {
        fn json(&self) -> String;
    }
    impl<T: serde::Serialize> Json for T {
        fn json(&self) -> String {
            serde_json::to_string(self).unwrap()
        }
    }
}

#[test]
fn records_predict_zero_or_one_at_the_artifact_threshold() {
    let artifact = trained(&small_csv(300));
    let high = artifact.record([("amount", "490"), ("visits", "6"), ("region", "north"), ("member", "TRUE")]).unwrap();
    let low = artifact.record([("amount", "1"), ("visits", "0"), ("region", "north"), ("member", "TRUE")]).unwrap();
    assert_eq!(artifact.predict_customer_behavior(&high), 1);
    assert_eq!(artifact.predict_customer_behavior(&low), 0);
    assert!(artifact.probability(&high) > artifact.probability(&low));
}

#[test]
fn record_errors_are_typed() {
    let artifact = trained(&small_csv(200));
    let r = artifact.record([("amount", "1e400"), ("visits", "1"), ("region", "north"), ("member", "TRUE")]);
    assert!(
        matches!(r, Err(Error::Record(ref e)) if e.column == "amount" && e.rule == model::Rule::NotFinite),
        "{r:?}"
    );
    let r = artifact.record([("amount", "1"), ("region", "north"), ("member", "TRUE")]);
    assert!(matches!(r, Err(Error::Record(ref e)) if e.column == "visits" && e.rule == model::Rule::Missing), "{r:?}");
}

#[test]
fn a_level_unseen_in_training_is_scored_and_counted() {
    // Train on rows from the north only; "south" is declared but never seen.
    let csv: String = small_csv(300).lines().filter(|l| !l.contains("south")).map(|l| format!("{l}\n")).collect();
    let artifact = trained(&csv);
    let record =
        artifact.record([("amount", "100"), ("visits", "2"), ("region", "south"), ("member", "FALSE")]).unwrap();
    let p = artifact.probability(&record);
    assert!((0.0..=1.0).contains(&p));
    let batch = "id,amount,visits,region,member\na,100,2,south,FALSE\nb,100,2,north,FALSE\nc,5,1,south,TRUE\n";
    let data = read_csv(batch.as_bytes(), "new.csv", &artifact.schema, LabelPolicy::Optional).unwrap();
    let scores = artifact.score(&data).unwrap();
    assert_eq!(scores.probabilities.len(), 3);
    assert_eq!(scores.unseen_levels.get("region"), Some(&2));
    assert_eq!(scores.probabilities[0], p);
}

#[test]
fn batch_and_single_record_agree() {
    let artifact = trained(&small_csv(300));
    let batch = "id,amount,visits,region,member\na,12.5,3,south,FALSE\nb,400,1,north,TRUE\n";
    let data = read_csv(batch.as_bytes(), "new.csv", &artifact.schema, LabelPolicy::Optional).unwrap();
    let scores = artifact.score(&data).unwrap();
    let a = artifact.record([("amount", "12.5"), ("visits", "3"), ("region", "south"), ("member", "FALSE")]).unwrap();
    let b = artifact.record([("amount", "400"), ("visits", "1"), ("region", "north"), ("member", "TRUE")]).unwrap();
    assert_eq!(scores.probabilities, vec![artifact.probability(&a), artifact.probability(&b)]);
}

#[test]
fn lineage_records_data_and_config() {
    let csv = small_csv(200);
    let artifact = trained(&csv);
    let l = &artifact.lineage;
    assert_eq!(l.rows_total, 200);
    // The default staging rule holds out about a fifth of the rows; the rest is split and refit.
    assert!((20..=60).contains(&l.rows_staging), "{}", l.rows_staging);
    assert_eq!(l.rows_staging + l.rows_fit + l.rows_validation, 200);
    assert_eq!(l.rows_final_fit, 200 - l.rows_staging);
    match &artifact.staging {
        model::pipeline::staging::StagingSpec::Holdout { rows, fraction, .. } => {
            assert_eq!((*rows, *fraction), (l.rows_staging, 0.2))
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(l.config_sha256, small_config().hash());
    let digest = sha2::Sha256::digest(csv.as_bytes());
    let expected: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(l.data_sha256, expected);
}

#[test]
fn streamed_scores_are_those_of_the_batch_for_both_families() {
    for family in ["logistic_regression", "gradient_boosting"] {
        let text = crate::support::SMALL_CONFIG.replace(
            "family = \"logistic_regression\"",
            &format!("family = \"{family}\"\n[model.gradient_boosting]\nmax_iter = 30\nmin_samples_leaf = 5"),
        );
        let config = model::PipelineConfig::parse(&text, Path::new("small.toml")).unwrap();
        let data = read_csv(small_csv(400).as_bytes(), "small.csv", &config.schema, LabelPolicy::Required).unwrap();
        let context = BuildContext {
            config_file: "small.toml".into(),
            git_commit: None,
            created_at: "2026-01-01T00:00:00Z".into(),
        };
        let artifact = build(&config, &data, &context).unwrap();
        assert_eq!(artifact.model.family().name(), family);
        // Integers inside and beyond the table of looked-up encodings, several blocks.
        let mut csv = String::from("id,amount,visits,region,member\n");
        for i in 0..20_000 {
            let visits = [0, 3, 6, 1023, 1024, 5000][i % 6];
            let region = if i % 5 == 0 { "south" } else { "north" };
            csv.push_str(&format!("r{i},{},{visits},{region},{}\n", (i * 13 % 1000) as f64 / 2.0, i % 2 == 0));
        }
        let csv = csv.replace(",true\n", ",TRUE\n").replace(",false\n", ",FALSE\n");
        let mut out = Vec::new();
        let summary = model::pipeline::scoring::score_csv(&artifact, csv.as_bytes(), "new.csv", &mut out).unwrap();
        assert_eq!(summary.rows, 20_000);
        let batch = read_csv(csv.as_bytes(), "new.csv", &artifact.schema, LabelPolicy::Optional).unwrap();
        let expected = artifact.score(&batch).unwrap().probabilities;
        let got: Vec<f64> = String::from_utf8(out)
            .unwrap()
            .lines()
            .skip(1)
            .map(|l| l.split_once(',').unwrap().0.parse().unwrap())
            .collect();
        assert_eq!(got, expected, "{family}");
    }
}

#[test]
fn a_character_cut_between_two_fields_is_refused_when_streaming() {
    let artifact = trained(&small_csv(200));
    // "é" is C3 A9: its first byte ends `region`, its second starts `member`. The record's
    // bytes are valid UTF-8 together, not field by field.
    let mut bytes = b"id,amount,visits,region,member\nr1,2.5,3,north,TRUE\nr2,2.5,3,north".to_vec();
    bytes.extend_from_slice(b"\xc3,\xa9TRUE\n");
    let mut out = Vec::new();
    match model::pipeline::scoring::score_csv(&artifact, &bytes[..], "cut.csv", &mut out) {
        Err(Error::Validation(report)) => {
            let e = &report.errors[0];
            assert_eq!((e.line, e.column.as_str(), e.rule), (3, "region", model::Rule::Utf8), "{e:?}");
        }
        other => panic!("{other:?}"),
    }
}

/// The artifact file around `body`, sealed with the body's own checksum: what someone who edits
/// an artifact by hand and recomputes its sha256 would write.
fn resealed(body: &serde_json::Value) -> Vec<u8> {
    let body = serde_json::to_string(body).unwrap();
    let sum = format!("{:x}", sha2::Sha256::digest(body.as_bytes()));
    format!("{{\"format_version\":1,\"sha256\":\"{sum}\",\"artifact\":{body}}}\n").into_bytes()
}

fn body_of(artifact: &Artifact) -> serde_json::Value {
    serde_json::from_slice::<serde_json::Value>(&artifact.to_bytes()).unwrap()["artifact"].clone()
}

fn boosted() -> Artifact {
    let mut config = small_config();
    config.model.family = model::Family::GradientBoosting;
    let data = read_csv(small_csv(300).as_bytes(), "small.csv", &config.schema, LabelPolicy::Required).unwrap();
    build(&config, &data, &BuildContext::default()).unwrap()
}

#[test]
fn a_resealed_artifact_with_an_impossible_model_is_refused() {
    let refused = |body: &serde_json::Value, what: &str| {
        let r = Artifact::from_bytes(&resealed(body), Path::new("m.json"));
        match r {
            Err(e @ Error::ArtifactCorrupt { .. }) => {
                let m = e.to_string();
                assert!(m.contains("not a readable model artifact"), "{what}: {m}");
            }
            other => panic!("{what}: expected a corrupt artifact, got {other:?}"),
        }
    };
    let trees = boosted();
    let good = body_of(&trees);
    // The unchanged body, resealed, loads: the check refuses only what is wrong.
    assert_eq!(Artifact::from_bytes(&resealed(&good), Path::new("m.json")).unwrap(), trees);
    let tree = |b: &mut serde_json::Value| b["model"]["trees"][0].clone();
    let split = tree(&mut good.clone())["feature"].as_array().unwrap().iter().position(|f| f.as_i64() != Some(-1));
    let split = split.expect("the first tree splits");

    let mut b = good.clone();
    b["model"]["trees"][0]["left"][split] = serde_json::json!(split);
    refused(&b, "a node that is its own child");
    let mut b = good.clone();
    b["model"]["trees"][0]["right"][split] = serde_json::json!(1_000_000);
    refused(&b, "a child out of range");
    let mut b = good.clone();
    b["model"]["trees"][0]["feature"][split] = serde_json::json!(9_999);
    refused(&b, "an input out of range");
    let mut b = good.clone();
    b["model"]["n_inputs"] = serde_json::json!(3);
    refused(&b, "trees reading another number of inputs");
    let mut b = good.clone();
    b["model"]["trees"][0]["value"].as_array_mut().unwrap().pop();
    refused(&b, "arrays of different lengths");
    let mut b = good.clone();
    let columns = b["schema"]["columns"].as_array_mut().unwrap();
    let label = columns.iter().position(|c| c["kind"] == "label").unwrap();
    columns[label] = serde_json::json!({"name": columns[label]["name"], "kind": "ignore"});
    refused(&b, "a schema without a label");
    let mut b = good.clone();
    let shares =
        b["reference"]["features"].as_array_mut().unwrap().iter_mut().find(|f| f["type"] == "numeric").unwrap()
            ["shares"]
            .as_array_mut()
            .unwrap();
    shares.push(serde_json::json!(0.5));
    refused(&b, "a drift reference with more shares than bins");

    let linear = body_of(&trained(&small_csv(200)));
    let mut b = linear.clone();
    b["model"]["weights"].as_array_mut().unwrap().pop();
    refused(&b, "weights of the wrong length");
    let mut b = linear;
    b["threshold"]["value"] = serde_json::json!(1.5);
    refused(&b, "a threshold that is not a probability");
}
