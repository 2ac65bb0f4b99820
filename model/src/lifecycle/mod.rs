//! A model's life after the build: acceptance on staging rows, the gate, monitoring and the
//! registry of versions and aliases. Knows nothing of Markdown or GitHub.

pub mod acceptance;
pub mod gate;
pub mod live;
pub mod monitor;
pub mod registry;
pub mod rollout;
pub mod rollout_analysis;
