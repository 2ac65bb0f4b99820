//! Any text as an artifact's content, sealed with its own checksum (as someone who edits an
//! artifact by hand and recomputes the sha256 would): refused as unreadable, or loaded and then
//! able to score rows of its own schema, by batch and by stream, without a panic or a loop.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use model::{read_csv, Artifact, LabelPolicy};
use sha2::Digest;

fuzz_target!(|bytes: &[u8]| {
    let Ok(body) = std::str::from_utf8(bytes) else { return };
    let sum = format!("{:x}", sha2::Sha256::digest(body.as_bytes()));
    let file = format!("{{\"format_version\":1,\"sha256\":\"{sum}\",\"artifact\":{body}}}");
    let Ok(artifact) = Artifact::from_bytes(file.as_bytes(), Path::new("fuzz.json")) else { return };
    let csv = mlgate_fuzz::valid_csv(&artifact.schema, 20);
    if let Ok(data) = read_csv(csv.as_bytes(), "fuzz.csv", &artifact.schema, LabelPolicy::Required) {
        let _ = artifact.score(&data);
    }
    let mut out = Vec::new();
    let _ = model::pipeline::scoring::score_csv(&artifact, csv.as_bytes(), "fuzz.csv", &mut out);
});
