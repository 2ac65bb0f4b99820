//! Any bytes as a CSV file: validation and streaming scoring end in a result or a typed error,
//! never a panic, and agree on whether the file is valid.
#![no_main]

use libfuzzer_sys::fuzz_target;
use model::{read_csv, Error, LabelPolicy};

fuzz_target!(|bytes: &[u8]| {
    let config = mlgate_fuzz::small_config();
    let validated = read_csv(bytes, "fuzz.csv", &config.schema, LabelPolicy::Optional);
    if let Err(Error::Validation(report)) = &validated {
        assert!(report.error_count > 0);
        assert!(report.errors.windows(2).all(|w| w[0].line <= w[1].line), "errors out of file order");
        assert!(report.errors.iter().all(|e| e.value.chars().count() <= 400), "a long value echoed whole");
    }
});
