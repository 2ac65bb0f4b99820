//! mlgate's integration tests: one binary, one module per theme.

mod action;
mod arrival;
mod artifact;
mod cli;
mod config;
#[cfg(target_os = "linux")]
mod container;
mod data;
mod event_log;
mod fake_github;
mod fake_openapi;
mod github;
mod import;
mod init;
mod kubernetes;
mod live;
mod parquet;
mod pipeline;
mod prom;
mod protocols;
mod receipts;
mod registry_git;
mod registry_rules;
mod rollout;
mod rollout_live;
mod serve;
mod shared_data;
mod support;
mod tidy;
mod validation;
