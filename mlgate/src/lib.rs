//! mlgate, the product: the command line, the model server, the registry store and the clients
//! of GitHub and Prometheus, laid out by role. The data, the learners, the evaluation and the
//! life-cycle rules are the `model` library's; this crate talks to the outside world.
//!
//! Layers, each using only those below it (`tests/tidy.rs` checks it):
//! `main.rs` → [`cli`] → [`serve`] → [`store`], [`github`], [`prometheus`] → [`output`],
//! [`clock`], [`exit`] → `model`.

#![warn(missing_docs)]

pub mod cli;
pub mod clock;
pub mod exit;
pub mod github;
pub mod output;
pub mod prometheus;
pub mod serve;
pub mod store;
