//! Any bytes as an artifact file: loaded, or refused as unreadable, altered or of another
//! version; never a panic.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use model::Artifact;

fuzz_target!(|bytes: &[u8]| {
    let _ = Artifact::from_bytes(bytes, Path::new("fuzz.json"));
});
