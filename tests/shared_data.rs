//! The real Online Shoppers data from ../shared: it validates, and a build on it is accurate.
//! Skips with a printed reason when ../shared is absent.

use std::path::Path;

use model::{LabelPolicy, PipelineConfig};

use crate::support::{root, shared_train_csv};

#[test]
fn online_shoppers_validates_and_builds_an_accurate_model() {
    let Some(csv) = shared_train_csv() else { return };
    let config = PipelineConfig::load(&root().join("configs/online-shoppers.toml")).unwrap();
    let data = model::load_csv(&csv, &config.schema, LabelPolicy::Required).unwrap();
    // Figures from ../shared/data/online-shoppers/README.md.
    assert_eq!(data.len(), 9864);
    assert_eq!(data.report.duplicate_rows, 83);
    assert_eq!(data.report.sha256, "d5940f5bffb63d3f89e6d79590c095855056056f264aba1263f74bc211bc7b75");
    let rate = data.report.class_balance.as_ref().unwrap().positive_rate;
    assert!((rate - 0.1547).abs() < 0.0005, "{rate}");
    let artifact = model::pipeline::build::build(&config, &data, &Default::default()).unwrap();
    // scikit-learn's HistGradientBoosting reaches about 0.93 on data of this kind; a model well
    // below that on its own validation rows has regressed.
    assert!(artifact.validation.roc_auc > 0.92, "{:?}", artifact.validation);
    assert!(artifact.validation.f1 > 0.6, "{:?}", artifact.validation);
}

/// `text` (the shared train.csv) with each cell of `columns` blanked with probability 5 %
/// (seeded), and the number of cells blanked.
fn blank(text: &str, columns: &[&str], seed: u64) -> (String, usize) {
    let header: Vec<&str> = text.lines().next().unwrap().split(',').collect();
    let at: Vec<usize> = columns.iter().map(|c| header.iter().position(|h| h == c).unwrap()).collect();
    let mut rng = model::rng::Rng::new(seed);
    let mut blanked = String::with_capacity(text.len());
    let mut blanks = 0usize;
    for (i, line) in text.lines().enumerate() {
        let mut fields: Vec<&str> = line.split(',').collect();
        if i > 0 {
            for &f in &at {
                if rng.uniform() < 0.05 {
                    fields[f] = "";
                    blanks += 1;
                }
            }
        }
        blanked.push_str(&fields.join(","));
        blanked.push('\n');
    }
    (blanked, blanks)
}

/// Cross-validated ROC AUC of gradient boosting on the shared data, complete and with 5 % of the
/// cells of three columns blanked at random (seeded), those columns declared `missing = "allow"`.
/// README "Missing values" quotes the figures this prints.
#[test]
fn blanking_five_percent_of_three_columns_costs_little_roc_auc() {
    let Some(csv) = shared_train_csv() else { return };
    let text = std::fs::read_to_string(&csv).unwrap();
    let config_text = std::fs::read_to_string(root().join("configs/online-shoppers.toml")).unwrap();
    let complete = PipelineConfig::parse(&config_text, Path::new("online-shoppers.toml")).unwrap();
    let auc = |config: &PipelineConfig, text: &str| {
        let data = model::read_csv(text.as_bytes(), "train.csv", &config.schema, LabelPolicy::Required).unwrap();
        let cv = model::pipeline::crossval::cross_validate(config, &data, 5, 0).unwrap();
        let aucs: Vec<f64> = cv.results.iter().map(|r| r.at_threshold.roc_auc).collect();
        model::pipeline::crossval::mean_std(&aucs).0
    };
    let full = auc(&complete, &text);
    // Three columns of middling weight, then three with PageValues, the one feature that carries
    // most of the signal: a session whose page value is unknown has lost most of what predicts
    // it, whatever the model (scikit-learn's HistGradientBoosting, which handles missing values
    // natively, loses 0.0080 on the same kind of data: README).
    for (columns, bound) in [
        (["ProductRelated_Duration", "ExitRates", "BounceRates"], 0.005),
        (["ProductRelated_Duration", "ExitRates", "PageValues"], 0.008),
    ] {
        let (blanked, blanks) = blank(&text, &columns, 2026);
        let mut with_missing = complete.clone();
        for c in with_missing.schema.columns.iter_mut().filter(|c| columns.contains(&c.name.as_str())) {
            c.missing = model::data::schema::Missing::Allow;
            c.missing_values = vec![String::new()];
        }
        let holed = auc(&with_missing, &blanked);
        println!(
            "ROC AUC, 5-fold CV, fold seed 0: complete {full:.4}; {blanks} cells of {columns:?} blanked {holed:.4}, drop {:.4}",
            full - holed
        );
        assert!(full - holed <= bound, "{columns:?}: complete {full:.4}, blanked {holed:.4}");
    }
}
