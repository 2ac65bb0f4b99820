//! Markdown for people: the validation, acceptance, monitoring and pull-request reports, and the
//! one helper that writes table cells. Nothing in the library imports this layer.

pub mod live;
pub mod report;
pub mod table;
pub mod validation;
