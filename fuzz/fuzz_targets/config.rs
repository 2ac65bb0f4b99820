//! Any text as a configuration: parsed and checked, or refused with a typed error naming the
//! key; a configuration that passes builds a model on a few valid rows without panicking.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use model::pipeline::build::{build, BuildContext};
use model::{read_csv, LabelPolicy, PipelineConfig};

fuzz_target!(|bytes: &[u8]| {
    let Ok(text) = std::str::from_utf8(bytes) else { return };
    let Ok(config) = PipelineConfig::parse(text, Path::new("fuzz.toml")) else { return };
    let csv = mlgate_fuzz::valid_csv(&config.schema, 60);
    if let Ok(data) = read_csv(csv.as_bytes(), "fuzz.csv", &config.schema, LabelPolicy::Required) {
        // Bounded: the checked ranges keep a fit on sixty rows short.
        let _ = build(&config, &data, &BuildContext::default());
    }
});
