//! Wrong configurations are refused with the key and the file named.

use std::path::Path;

use model::error::{ConfigProblem, ParamError};
use model::{Error, PipelineConfig};

use crate::support::SMALL_CONFIG;

fn refused(text: &str) -> String {
    match PipelineConfig::parse(text, Path::new("conf/pipeline.toml")) {
        Err(e @ Error::Config { .. }) => {
            let message = e.to_string();
            assert!(message.starts_with("conf/pipeline.toml"), "{message}");
            message
        }
        other => panic!("expected a config error, got {other:?}"),
    }
}

#[test]
fn unknown_top_level_key() {
    let m = refused(&format!("colour = \"red\"\n{SMALL_CONFIG}"));
    assert!(m.contains("colour"), "{m}");
}

#[test]
fn unknown_key_in_a_section() {
    let m = refused(&SMALL_CONFIG.replace("seed = 1", "seed = 1\nsead = 2"));
    assert!(m.contains("sead"), "{m}");
}

#[test]
fn unknown_key_in_a_column() {
    let m = refused(&SMALL_CONFIG.replace("max = 1000", "max = 1000\nmaximum = 3"));
    assert!(m.contains("maximum"), "{m}");
}

#[test]
fn key_that_does_not_fit_the_kind() {
    let m =
        refused(&SMALL_CONFIG.replace("levels = [\"north\", \"south\"]", "levels = [\"north\", \"south\"]\nmin = 0"));
    assert!(m.contains("`min`") && m.contains("region"), "{m}");
}

#[test]
fn unknown_column_kind() {
    let m = refused(&SMALL_CONFIG.replace("kind = \"numeric\"", "kind = \"float\""));
    assert!(m.contains("float") && m.contains("amount"), "{m}");
}

#[test]
fn no_label() {
    let m =
        refused(&SMALL_CONFIG.replace("kind = \"label\"\npositive = \"yes\"\nnegative = \"no\"", "kind = \"ignore\""));
    assert!(m.contains("label"), "{m}");
}

#[test]
fn two_labels() {
    let m = refused(
        &SMALL_CONFIG.replace("kind = \"boolean\"", "kind = \"label\"\npositive = \"TRUE\"\nnegative = \"FALSE\""),
    );
    assert!(m.contains("2 columns have kind = \"label\""), "{m}");
}

#[test]
fn out_of_range_parameters() {
    let m = refused(&SMALL_CONFIG.replace("validation_fraction = 0.25", "validation_fraction = 1.5"));
    assert!(m.contains("split.validation_fraction"), "{m}");
    let m = refused(&format!("{SMALL_CONFIG}\n[model.gradient_boosting]\nlearning_rate = 0\n"));
    assert!(m.contains("model.gradient_boosting.learning_rate"), "{m}");
    let m = refused(&SMALL_CONFIG.replace("min = 0\nmax = 1000", "min = 5\nmax = 1"));
    assert!(m.contains("amount"), "{m}");
}

#[test]
fn log1p_needs_a_non_negative_minimum() {
    let m = refused(&SMALL_CONFIG.replace("kind = \"integer\"\nmin = 0", "kind = \"integer\"\ntransform = \"log1p\""));
    assert!(m.contains("log1p"), "{m}");
}

#[test]
fn the_shipped_configurations_parse() {
    for file in ["pipeline.toml", "configs/online-shoppers.toml", "configs/online-shoppers-missing.toml"] {
        PipelineConfig::load(&crate::support::root().join(file)).unwrap_or_else(|e| panic!("{e}"));
    }
}

#[test]
fn config_hash_ignores_formatting() {
    let a = PipelineConfig::parse(SMALL_CONFIG, Path::new("a")).unwrap();
    let b = PipelineConfig::parse(&format!("# a comment\n{SMALL_CONFIG}\n\n"), Path::new("b")).unwrap();
    assert_eq!(a.hash(), b.hash());
    let c = PipelineConfig::parse(&SMALL_CONFIG.replace("seed = 1", "seed = 2"), Path::new("c")).unwrap();
    assert_ne!(a.hash(), c.hash());
}

#[test]
fn a_parameter_out_of_its_range_is_named_with_its_bound() {
    // Nine quintillion trees would allocate without end: refused at validation, naming the key.
    let text = format!("{SMALL_CONFIG}\n[model.gradient_boosting]\nmax_iter = 9223372036854775807\n");
    match PipelineConfig::parse(&text, Path::new("p.toml")) {
        Err(Error::Config { problem: ConfigProblem::Param(ParamError::OutOfRange { key, bound, .. }), .. }) => {
            assert_eq!(key, "model.gradient_boosting.max_iter");
            assert!(bound.contains("10000"), "{bound}");
        }
        other => panic!("expected an out-of-range parameter, got {other:?}"),
    }
    let text = SMALL_CONFIG.replace("[split]", "[acceptance]\nresamples = 1000000000000000\n\n[split]");
    let m = refused(&text);
    assert!(m.contains("acceptance.resamples") && m.contains("in 1000..=100000"), "{m}");
}

#[test]
fn huge_counts_are_refused_before_any_arithmetic_on_them() {
    for (key, value) in [("min_samples_leaf", "18446744073709551615"), ("max_leaf_nodes", "100000"), ("bags", "65")] {
        let m = refused(&format!("{SMALL_CONFIG}\n[model.gradient_boosting]\n{key} = {value}\n"));
        assert!(m.contains(&format!("model.gradient_boosting.{key}: {value} is not in")), "{m}");
    }
}
