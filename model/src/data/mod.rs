//! What enters: the schema, the one CSV reader, validation and its report, the validated data
//! set, single records, row hashes and the seeded generator. Knows nothing of models.

pub mod dataset;
pub mod generate;
pub mod reader;
pub mod record;
pub mod report;
pub mod rowhash;
pub mod schema;
pub mod validation;
