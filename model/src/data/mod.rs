//! What enters: the schema, the one reader (CSV and Parquet), validation and its report, the validated data
//! set, single records, row hashes, the seeded generator and the inference of a schema from a
//! file. Knows nothing of models.

pub mod dataset;
pub mod generate;
pub mod infer;
pub mod parquet;
pub mod reader;
pub mod record;
pub mod report;
pub mod rowhash;
pub mod schema;
pub mod validation;
