//! The committed default data is exactly what the seeded generator writes, and it is learnable.

use model::data::generate::{customers_csv, DEFAULT_ROWS, DEFAULT_SEED};

use crate::support::root;

#[test]
fn committed_customers_csv_matches_the_generator() {
    let committed =
        std::fs::read_to_string(root().join("data/customers.csv")).expect("data/customers.csv is committed");
    assert!(
        committed == customers_csv(DEFAULT_ROWS, DEFAULT_SEED),
        "data/customers.csv differs from the generator: run `cargo xtask gen-data` and commit"
    );
}

#[test]
fn the_model_beats_the_spending_rule_on_fresh_customers() {
    // Train on the committed data; judge on customers drawn with another seed.
    let root = root();
    let config = model::PipelineConfig::load(&root.join("pipeline.toml")).unwrap();
    let train =
        model::load_csv(&root.join("data/customers.csv"), &config.schema, model::LabelPolicy::Required).unwrap();
    let artifact = model::pipeline::build::build(&config, &train, &Default::default()).unwrap();
    let fresh = customers_csv(4000, 7);
    let test = model::read_csv(fresh.as_bytes(), "fresh.csv", &config.schema, model::LabelPolicy::Required).unwrap();
    let labels = test.require_labels().unwrap();
    let scores = artifact.score(&test).unwrap();
    let ours = model::MetricSet::compute(labels, &scores.probabilities, artifact.threshold.value).unwrap();
    let spending = match &test.features.iter().find(|(n, _)| n == "spending").unwrap().1 {
        model::data::dataset::ColumnValues::Number(v) => v.iter().collect::<Vec<f64>>(),
        other => panic!("{other:?}"),
    };
    let rule: Vec<f64> = spending.iter().map(|&s| f64::from(u8::from(s > 100.0))).collect();
    let rule = model::eval::metrics::Confusion::at(labels, &rule, 0.5);
    assert!(ours.f1 > rule.f1() + 0.2, "model F1 {} vs rule F1 {}", ours.f1, rule.f1());
    assert!(ours.roc_auc > 0.75, "model AUC {}", ours.roc_auc);
}
