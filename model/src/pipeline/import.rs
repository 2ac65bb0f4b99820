//! The import: a model another library trained (LightGBM's text model, XGBoost's JSON model)
//! as a sealed artifact, its threshold, validation metrics and drift reference taken on data.
//!
//! The model's features are mapped to the configuration's schema by name: a feature the
//! schema lacks, or a feature column of the schema the model does not read, is refused by
//! name. A number reaches the trees as it is (`Standardise` with mean 0 and scale 1 writes `x`
//! exactly; a column's `transform` is for this crate's own fits and is not applied: the
//! library was given the raw value), NaN when missing; a boolean as 0 or 1; a category as its
//! code in the model's numbering (`Encoder::Code`), NaN when missing or a level the model
//! never saw, which each split sends its default way for missing values. LightGBM does the
//! same (its Python package makes an unseen category missing); XGBoost 3.2 either refuses a
//! data frame with a category it was not trained on or, for some, reads it as another
//! category (its lookup of the category lands on a neighbour in sorted order): there is no
//! behaviour of the library to follow, and missing is the one that does not pretend to know
//! the level.
//!
//! The model's category levels are those the file recorded (LightGBM's
//! `pandas_categorical`; XGBoost 3.1 and later record them too); for an XGBoost model that
//! does not record them, the order of the levels the configuration's schema declares for the
//! column (so the codes the model was given must be that order's).
//!
//! The data plays the part of a build's validation rows: staging rows are set aside as a build
//! sets them aside (`[staging]`), the threshold is chosen on the others as `[threshold]` says,
//! and the validation metrics and the drift reference are measured on them. Nothing is fitted
//! here, so the lineage records no fit rows (`rows_fit` and `rows_final_fit` are 0,
//! `rows_validation` the rows measured), and the [`Origin`] records the file, its sha256, the
//! library and the version the file states.

use sha2::{Digest, Sha256};

use crate::data::dataset::{Dataset, Rows};
use crate::data::rowhash::KeyScheme;
use crate::data::schema::{Column, ColumnKind, Missing, Schema, Transform};
use crate::error::{Error, Result};
use crate::eval::drift::Reference;
use crate::eval::metrics::MetricSet;
use crate::eval::threshold;
use crate::learn::features::{Encoder, MissingRule, Preprocessor};
pub use crate::learn::foreign::Library;
use crate::learn::foreign::{FeatureKind, ForeignModel, ReadError};
use crate::learn::model::FittedModel;
pub use crate::pipeline::artifact::Origin;
use crate::pipeline::artifact::{Artifact, Lineage};
use crate::pipeline::build::{check_labels, BuildContext, Fitted};
use crate::pipeline::config::PipelineConfig;
use crate::pipeline::staging::StagingSpec;

/// A model file of another library, as the caller read it.
#[derive(Debug, Clone, Copy)]
pub struct Source<'a> {
    /// The library that saved it.
    pub library: Library,
    /// The file as the user named it (recorded in the origin and named in errors).
    pub path: &'a str,
    /// The file's bytes.
    pub bytes: &'a [u8],
}

/// Converts the foreign model (schema mapped by feature name, categories as the model
/// recorded, missing values by each split's default direction), chooses the threshold on
/// `data` as `config.threshold` says, computes the validation metrics and the drift reference
/// on `data`, and seals an artifact whose origin records the source file's sha256, library and
/// version; see the module's documentation.
pub fn import(
    config: &PipelineConfig,
    source: &Source<'_>,
    data: &Dataset,
    context: &BuildContext,
) -> Result<Artifact> {
    let library = source.library.name();
    let foreign = source.library.read(source.bytes).map_err(|e| match e {
        ReadError::Malformed(problem) => Error::ForeignModel { file: source.path.to_string(), library, problem },
        ReadError::Unsupported(reason) => Error::ImportRefused { file: source.path.to_string(), library, reason },
    })?;
    let refused = |reason: String| Error::ImportRefused { file: source.path.to_string(), library, reason };
    let preprocessing = encoders(&foreign, &data.schema).map_err(refused)?;
    let trees = foreign.booster.trees.len();
    let fitted = Fitted { preprocessing, model: FittedModel::GradientBoosting(foreign.booster) };

    let all_labels = data.require_labels()?;
    let (pool_rows, staging_rows) = config.staging.split(&data.row_keys);
    // The pool as a view of the data set's rows, not a copy.
    let pool = Rows::Listed(&pool_rows);
    let labels: Vec<bool> = pool.iter().map(|i| all_labels[i]).collect();
    check_labels(&labels, &data.report.file)?;
    let probabilities = fitted.probabilities_of(data, pool)?;
    let threshold = threshold::choose(&config.threshold, &labels, &probabilities)?;
    let validation = MetricSet::compute(&labels, &probabilities, threshold.value)?;
    let staging = match &config.staging.path {
        Some(path) => StagingSpec::File { path: path.display().to_string() },
        None => {
            let all_labels = data.require_labels()?;
            StagingSpec::Holdout {
                fraction: config.staging.fraction,
                salt: config.staging.salt.clone(),
                rows: staging_rows.len() as u64,
                positives: staging_rows.iter().filter(|&&i| all_labels[i]).count() as u64,
                keys: KeyScheme::CURRENT,
            }
        }
    };
    let artifact = Artifact {
        name: config.name.clone(),
        schema: data.schema.clone(),
        preprocessing: fitted.preprocessing,
        model: fitted.model,
        threshold,
        validation,
        staging,
        reference: Reference::fit_rows(data, pool),
        config: config.clone(),
        lineage: Lineage {
            data_file: data.report.file.clone(),
            data_sha256: data.report.sha256.clone(),
            rows_total: data.len() as u64,
            rows_staging: staging_rows.len() as u64,
            rows_fit: 0,
            rows_validation: pool_rows.len() as u64,
            rows_final_fit: 0,
            config_file: context.config_file.clone(),
            config_sha256: config.hash(),
            git_commit: context.git_commit.clone(),
            crate_version: env!("CARGO_PKG_VERSION").to_string(),
            created_at: context.created_at.clone(),
        },
        origin: Some(Origin {
            library: library.to_string(),
            library_version: foreign.library_version,
            file: source.path.to_string(),
            sha256: format!("{:x}", Sha256::digest(source.bytes)),
            objective: foreign.objective,
            trees,
        }),
    };
    // What `Artifact::load` will check: a failure is a model this crate cannot run.
    artifact.check().map_err(|m| Error::ForeignModel { file: source.path.to_string(), library, problem: m })?;
    Ok(artifact)
}

/// One encoder per model feature, in the model's input order, reading the schema's column of
/// the same name; the reason names the feature or column that does not match.
fn encoders(foreign: &ForeignModel, schema: &Schema) -> std::result::Result<Preprocessor, String> {
    let columns: Vec<&Column> = schema.feature_columns().collect();
    for column in &columns {
        if !foreign.features.iter().any(|f| f.name == column.name) {
            return Err(format!(
                "the schema's feature column `{}` is not a feature of the model (the model has {} features: {}; \
                 the schema {} feature columns); mark it `kind = \"ignore\"` if the model does not read it",
                column.name,
                foreign.features.len(),
                names(foreign.features.iter().map(|f| f.name.as_str())),
                columns.len()
            ));
        }
    }
    let mut encoders = Vec::with_capacity(foreign.features.len());
    for feature in &foreign.features {
        let name = &feature.name;
        let column = columns.iter().find(|c| c.name == *name).ok_or_else(|| {
            format!(
                "the model's feature `{name}` is not a feature column of the schema (the model has {} features, \
                 the schema {} feature columns: {})",
                foreign.features.len(),
                columns.len(),
                names(columns.iter().map(|c| c.name.as_str()))
            )
        })?;
        let allows = column.missing == Missing::Allow;
        let encoder = match (&feature.kind, &column.kind) {
            (FeatureKind::Number, ColumnKind::Numeric { .. } | ColumnKind::Integer { .. }) => Encoder::Standardise {
                column: name.clone(),
                transform: Transform::None,
                mean: 0.0,
                scale: 1.0,
                missing: allows.then_some(MissingRule::Nan),
            },
            (FeatureKind::Number, ColumnKind::Boolean { .. }) => {
                Encoder::Boolean { column: name.clone(), missing: allows.then_some(MissingRule::Nan) }
            }
            (FeatureKind::Category { levels }, ColumnKind::Categorical { levels: declared }) => {
                let levels = levels.clone().or_else(|| declared.clone()).ok_or_else(|| {
                    format!(
                        "the model's categorical feature `{name}` does not record its categories, and the schema \
                         declares no `levels` for it: declare them in the order of the codes the model was trained on"
                    )
                })?;
                Encoder::Code { column: name.clone(), levels, missing: allows.then_some(MissingRule::Nan) }
            }
            (FeatureKind::Number, ColumnKind::Categorical { .. }) => {
                return Err(format!(
                    "the model reads `{name}` as a number, the schema declares it categorical: declare it `integer` \
                     or `numeric`"
                ))
            }
            (FeatureKind::Category { .. }, _) => {
                return Err(format!(
                    "the model reads `{name}` as a category, the schema does not declare it `categorical`"
                ))
            }
            (FeatureKind::Number, _) => {
                return Err(format!("the model reads `{name}` as a number, the schema's column is not a number"))
            }
        };
        encoders.push(encoder);
    }
    Ok(Preprocessor { encoders })
}

/// Names in backquotes, the first ten, with how many more.
fn names<'a>(names: impl Iterator<Item = &'a str>) -> String {
    let all: Vec<&str> = names.collect();
    let shown: Vec<String> = all.iter().take(10).map(|n| format!("`{}`", crate::learn::foreign::bounded(n))).collect();
    if all.len() > 10 {
        format!("{} and {} more", shown.join(", "), all.len() - 10)
    } else {
        shown.join(", ")
    }
}

#[cfg(test)]
mod tests {
    //! Against models the libraries saved (`model/tests/data/foreign/`, written by its `make.py`
    //! with the versions it names) and the probabilities the libraries computed for
    //! `test.csv`'s rows (`expected.csv`).

    use std::path::Path;

    use super::*;
    use crate::data::reader::LabelPolicy;
    use crate::data::validation::read_csv;

    const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/foreign");

    /// The fixtures' schema: `score` allows missing values though training had none (LightGBM's
    /// missing type `None` reads them as 0), `color` has blanks and a level never trained on.
    const CONFIG: &str = r#"
name = "imported"
[data]
path = "test.csv"
[[schema.columns]]
name = "amount"
kind = "numeric"
missing = "allow"
[[schema.columns]]
name = "score"
kind = "numeric"
missing = "allow"
[[schema.columns]]
name = "visits"
kind = "integer"
[[schema.columns]]
name = "color"
kind = "categorical"
missing = "allow"
[[schema.columns]]
name = "weekend"
kind = "boolean"
true = ["yes"]
false = ["no"]
[[schema.columns]]
name = "bought"
kind = "label"
positive = "1"
negative = "0"
[staging]
fraction = 0.1
"#;

    fn fixture(name: &str) -> Vec<u8> {
        std::fs::read(Path::new(FIXTURES).join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
    }

    fn config(text: &str) -> PipelineConfig {
        PipelineConfig::parse(text, Path::new("pipeline.toml")).unwrap()
    }

    fn data(config: &PipelineConfig) -> Dataset {
        read_csv(&fixture("test.csv")[..], "test.csv", &config.schema, LabelPolicy::Required).unwrap()
    }

    fn import_file(library: Library, file: &str, config: &PipelineConfig) -> Result<Artifact> {
        let bytes = fixture(file);
        let source = Source { library, path: file, bytes: &bytes };
        let context = BuildContext { config_file: "pipeline.toml".into(), git_commit: None, created_at: "now".into() };
        import(config, &source, &data(config), &context)
    }

    /// The library's probabilities of test.csv's rows (`column` of expected.csv).
    fn expected(column: &str) -> Vec<f64> {
        let text = String::from_utf8(fixture("expected.csv")).unwrap();
        let mut lines = text.lines();
        let at = lines.next().unwrap().split(',').position(|c| c == column).unwrap();
        lines.map(|l| l.split(',').nth(at).unwrap().parse().unwrap()).collect()
    }

    /// Imports `file`, then scores every row of test.csv through the batch path and the
    /// record path: within 1e-6 of the library, the same decision at the chosen threshold, and
    /// the artifact read back scores the same.
    fn matches_the_library(library: Library, file: &str, column: &str) -> Artifact {
        let config = config(CONFIG);
        let artifact = import_file(library, file, &config).unwrap();
        let reloaded = Artifact::from_bytes(&artifact.to_bytes(), Path::new("model.json")).unwrap();
        assert_eq!(reloaded, artifact);
        // Batch scoring takes the compiled forest, whose bits the record path's tree walk checks.
        let FittedModel::GradientBoosting(booster) = &artifact.model else { panic!("trees") };
        assert!(crate::learn::gbdt::scorer::Forest::new(booster).is_some());
        let data = data(&config);
        let scores = reloaded.score(&data).unwrap();
        let expected = expected(column);
        assert_eq!(scores.probabilities.len(), expected.len());
        let text = String::from_utf8(fixture("test.csv")).unwrap();
        let header: Vec<&str> = text.lines().next().unwrap().split(',').collect();
        let t = artifact.threshold.value;
        let mut worst = 0.0f64;
        for (i, (line, (&ours, &theirs))) in
            text.lines().skip(1).zip(scores.probabilities.iter().zip(&expected)).enumerate()
        {
            worst = worst.max((ours - theirs).abs());
            assert!((ours - theirs).abs() <= 1e-6, "row {i}: {ours} against the library's {theirs}");
            assert_eq!(ours >= t, theirs >= t, "row {i}: {ours} and the library's {theirs} at {t}");
            let record = artifact.record(header.iter().copied().zip(line.split(','))).unwrap();
            assert_eq!(artifact.probability(&record).to_bits(), ours.to_bits(), "row {i}, one record");
        }
        assert_eq!(scores.unseen_levels.get("color").copied().unwrap_or(0), text.matches(",black,").count() as u64);
        eprintln!("{file}: largest difference {worst:e}");
        artifact
    }

    #[test]
    fn a_lightgbm_model_scores_as_lightgbm_does() {
        let artifact = matches_the_library(Library::LightGbm, "lightgbm.txt", "lightgbm");
        let origin = artifact.origin.clone().unwrap();
        assert_eq!(origin.library, "lightgbm");
        assert_eq!(origin.library_version.as_deref(), Some("v4"));
        assert_eq!(origin.objective, "binary");
        assert_eq!(origin.sha256, format!("{:x}", Sha256::digest(fixture("lightgbm.txt"))));
        assert_eq!(origin.trees, 25);
        assert_eq!(artifact.lineage.rows_fit, 0);
        assert_eq!(artifact.lineage.rows_validation + artifact.lineage.rows_staging, 300);
        // The categories are pandas's, in the order of their codes.
        let Encoder::Code { levels, .. } = &artifact.preprocessing.encoders[3] else { panic!("color is coded") };
        assert_eq!(levels[..3], ["red", "green", "blue"]);
    }

    #[test]
    fn an_xgboost_model_scores_as_xgboost_does() {
        let artifact = matches_the_library(Library::XgBoost, "xgboost.json", "xgboost");
        let origin = artifact.origin.clone().unwrap();
        assert_eq!(origin.library, "xgboost");
        assert_eq!(origin.library_version.as_deref(), Some("3.2.0"));
        assert_eq!(origin.objective, "binary:logistic");
        assert_eq!(origin.trees, 25);
        // The categories are those the model recorded, in the order of their codes.
        let Encoder::Code { levels, .. } = &artifact.preprocessing.encoders[3] else { panic!("color is coded") };
        assert_eq!(levels[..3], ["red", "green", "blue"]);
        let FittedModel::GradientBoosting(booster) = &artifact.model else { panic!("trees") };
        assert!(booster.trees.iter().any(|t| t.categories.iter().any(Option::is_some)));
    }

    #[test]
    fn without_recorded_categories_an_xgboost_model_takes_the_schemas_levels() {
        // The model without its category dictionary (as XGBoost before 3.1 saves it): the
        // codes are the schema's declared order, here the order the model was trained with.
        let mut json: serde_json::Value = serde_json::from_slice(&fixture("xgboost.json")).unwrap();
        json["learner"]["gradient_booster"]["model"].as_object_mut().unwrap().remove("cats");
        let bytes = serde_json::to_vec(&json).unwrap();
        let source = Source { library: Library::XgBoost, path: "old.json", bytes: &bytes };
        let undeclared = config(CONFIG);
        let reason = refusal(import(&undeclared, &source, &data(&undeclared), &BuildContext::default()));
        assert!(reason.contains("`color` does not record its categories"), "{reason}");
        let declared = config(&CONFIG.replace(
            "name = \"color\"\nkind = \"categorical\"",
            "name = \"color\"\nkind = \"categorical\"\nlevels = [\"red\", \"green\", \"blue\", \"violet\", \"amber\", \"teal\", \"plum\", \"sand\", \"black\"]",
        ));
        let artifact = import(&declared, &source, &data(&declared), &BuildContext::default()).unwrap();
        let recorded = import_file(Library::XgBoost, "xgboost.json", &declared).unwrap();
        let data = data(&declared);
        // `black` has a code of its own here (8), which no split lists: it goes left at every
        // categorical split, where the recorded dictionary makes it missing (the default way).
        let ours = artifact.score(&data).unwrap().probabilities;
        let theirs = recorded.score(&data).unwrap().probabilities;
        let text = String::from_utf8(fixture("test.csv")).unwrap();
        for ((line, a), b) in text.lines().skip(1).zip(&ours).zip(&theirs) {
            if !line.contains(",black,") {
                assert_eq!(a.to_bits(), b.to_bits(), "{line}");
            }
        }
    }

    #[test]
    fn xgboost_models_other_than_binary_boosted_trees_are_refused_by_what_they_are() {
        let config = config(CONFIG);
        let multiclass = refusal(import_file(Library::XgBoost, "refused-multiclass.json", &config));
        assert!(multiclass.contains("`multi:softprob`") && multiclass.contains("num_class 3"), "{multiclass}");
        let regression = refusal(import_file(Library::XgBoost, "refused-regression.json", &config));
        assert!(regression.contains("`reg:squarederror`"), "{regression}");
        let dart = refusal(import_file(Library::XgBoost, "refused-dart.json", &config));
        assert!(dart.contains("`dart`"), "{dart}");
        let garbage = import_file(Library::XgBoost, "lightgbm.txt", &config);
        assert!(matches!(garbage, Err(Error::ForeignModel { ref problem, .. }) if problem.contains("not an XGBoost")));
    }

    /// The reason of an `ImportRefused` error.
    fn refusal(result: Result<Artifact>) -> String {
        match result {
            Err(Error::ImportRefused { reason, .. }) => reason,
            other => panic!("not refused: {other:?}"),
        }
    }

    #[test]
    fn lightgbm_models_other_than_binary_boosted_trees_are_refused_by_what_they_are() {
        let config = config(CONFIG);
        let multiclass = refusal(import_file(Library::LightGbm, "refused-multiclass.txt", &config));
        assert!(multiclass.contains("`multiclass`") && multiclass.contains("num_class 3"), "{multiclass}");
        let regression = refusal(import_file(Library::LightGbm, "refused-regression.txt", &config));
        assert!(regression.contains("`regression`"), "{regression}");
        let linear = refusal(import_file(Library::LightGbm, "refused-linear.txt", &config));
        assert!(linear.contains("linear trees"), "{linear}");
        let garbage = import_file(Library::LightGbm, "expected.csv", &config);
        assert!(matches!(garbage, Err(Error::ForeignModel { ref problem, .. }) if problem.contains("not a LightGBM")));
    }

    #[test]
    fn features_are_matched_to_the_schema_by_name() {
        // A feature column the model does not read.
        let config_extra = config(&format!("{CONFIG}\n[[schema.columns]]\nname = \"extra\"\nkind = \"numeric\"\n"));
        let bytes = fixture("lightgbm.txt");
        let source = Source { library: Library::LightGbm, path: "lightgbm.txt", bytes: &bytes };
        let csv = String::from_utf8(fixture("test.csv")).unwrap();
        let csv: String =
            csv.lines().enumerate().map(|(i, l)| format!("{l},{}\n", if i == 0 { "extra" } else { "1.5" })).collect();
        let data = read_csv(csv.as_bytes(), "test.csv", &config_extra.schema, LabelPolicy::Required).unwrap();
        let reason = refusal(import(&config_extra, &source, &data, &BuildContext::default()));
        assert!(reason.contains("`extra` is not a feature of the model") && reason.contains("5 features"), "{reason}");

        // A feature of the model the schema does not have (`weekend` ignored).
        let missing = CONFIG.replace(
            "name = \"weekend\"\nkind = \"boolean\"\ntrue = [\"yes\"]\nfalse = [\"no\"]",
            "name = \"weekend\"\nkind = \"ignore\"",
        );
        let reason = refusal(import_file(Library::LightGbm, "lightgbm.txt", &config(&missing)));
        assert!(reason.contains("the model's feature `weekend` is not a feature column"), "{reason}");

        // A category declared as a number.
        let numeric =
            CONFIG.replace("name = \"color\"\nkind = \"categorical\"", "name = \"color\"\nkind = \"numeric\"");
        let config_numeric = config(&numeric);
        let csv = String::from_utf8(fixture("test.csv")).unwrap();
        let csv: String = csv
            .lines()
            .enumerate()
            .map(|(i, l)| {
                let mut fields: Vec<String> = l.split(',').map(str::to_string).collect();
                if i > 0 && !fields[3].is_empty() {
                    fields[3] = "1".into();
                }
                fields.join(",") + "\n"
            })
            .collect();
        let data = read_csv(csv.as_bytes(), "test.csv", &config_numeric.schema, LabelPolicy::Required).unwrap();
        let reason = refusal(import(&config_numeric, &source, &data, &BuildContext::default()));
        assert!(reason.contains("reads `color` as a category"), "{reason}");
    }
}
