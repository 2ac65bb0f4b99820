//! The command line: one file per subcommand, each with its `Args` and a `run` that parses,
//! resolves, calls the libraries and prints. [`run`] turns errors into messages, annotations
//! and [`Exit`] codes.

pub mod acceptance;
pub mod alert;
pub mod build;
pub mod context;
pub mod cv;
pub mod deploy;
pub mod feedback;
pub mod import;
pub mod init;
pub mod live;
pub mod live_rollout;
pub mod monitor;
pub mod predict;
pub mod registry;
pub mod report;
pub mod rollback;
pub mod rollout;
pub mod serve;
pub mod validate;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::exit::Exit;
use crate::output;

/// mlgate: CI/CD for tabular binary classifiers — validate data against a schema, build a
/// checksummed model, gate it against production, deploy it to a registry that outlives the CI
/// job, serve it, monitor it and roll it back.
#[derive(Parser)]
#[command(name = "mlgate", version, about, long_about = None)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// mlgate's subcommands.
#[derive(Subcommand)]
pub enum Command {
    /// Write a starting pipeline.toml from a CSV: each column's kind, range and levels inferred.
    Init(init::Args),
    /// Validate the data, train, and write DIR/model.json and DIR/validation.json.
    Build(build::Args),
    /// Convert a model LightGBM or XGBoost saved (--lightgbm MODEL.txt | --xgboost MODEL.json)
    /// into DIR/model.json, its threshold chosen on --data.
    Import(import::Args),
    /// Score a CSV with a model artifact: one output row per input row.
    Predict(predict::Args),
    /// Validate a CSV against the configured schema without training.
    Validate(validate::Args),
    /// Stratified k-fold cross-validation of the whole build.
    Cv(cv::Args),
    /// Evaluate a candidate on staging data, gate it, register it as `staging`.
    Acceptance(acceptance::Args),
    /// Promote the staged candidate to production (when its verdict passed).
    Deploy(deploy::Args),
    /// Put the previous production model (or --to vN) back in production.
    Rollback(rollback::Args),
    /// Release a candidate beside production step by step: start (canary or shadow), promote,
    /// abort, status.
    Rollout(rollout::Args),
    /// Score production on new labelled data: metrics, drift, breaches, automatic rollback.
    Monitor(monitor::Args),
    /// Show the registry (aliases, versions, history) or check its consistency.
    Registry(registry::Args),
    /// Post the acceptance report: sticky pull-request comment, job summary, step outputs.
    Report(report::Args),
    /// Open or update the GitHub issue that alerts on a monitoring breach.
    Alert(alert::Args),
    /// Serve the production model over HTTP: predictions, feedback, Prometheus metrics, hot swap.
    Serve(Box<serve::Args>),
    /// Turn the feedback `serve --event-log` recorded into training data: `feedback export`.
    Feedback(feedback::Args),
}

impl Command {
    /// Runs the subcommand.
    pub fn run(self, sh: &xshell::Shell) -> anyhow::Result<ExitCode> {
        match self {
            Command::Init(args) => init::run(sh, args),
            Command::Build(args) => build::run(sh, args),
            Command::Import(args) => import::run(sh, args),
            Command::Predict(args) => predict::run(sh, args),
            Command::Validate(args) => validate::run(sh, args),
            Command::Cv(args) => cv::run(sh, args),
            Command::Acceptance(args) => acceptance::run(sh, args),
            Command::Deploy(args) => deploy::run(sh, args),
            Command::Rollback(args) => rollback::run(sh, args),
            Command::Rollout(args) => rollout::run(sh, args),
            Command::Monitor(args) => monitor::run(sh, args),
            Command::Registry(args) => registry::run(sh, args),
            Command::Report(args) => report::run(sh, args),
            Command::Alert(args) => alert::run(sh, args),
            Command::Serve(args) => serve::run(sh, *args),
            Command::Feedback(args) => feedback::run(sh, args),
        }
    }
}

/// Lets a closed standard output end the process quietly, as it ends `cat` or `grep`
/// (`mlgate registry | head`). Rust ignores SIGPIPE, so a write to a closed pipe fails and
/// `println!` panics on it; this hook turns that one panic into exit code 141 (128 + SIGPIPE, what
/// a shell reports for a process the signal ended), with nothing printed. SIGPIPE itself stays
/// ignored: restoring it would also let a peer that hangs up on a socket written with `writev`
/// (hyper's vectored writes: the server, S3, GitHub) kill the process.
pub fn exit_quietly_on_closed_pipe() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let payload = info.payload();
        let message = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or("");
        // std's message: "failed printing to stdout: Broken pipe (os error 32)".
        if message.starts_with("failed printing to stdout") && message.ends_with(&format!("(os error {})", libc::EPIPE))
        {
            std::process::exit(141);
        }
        default(info);
    }));
}

/// Runs `command` from the current directory and turns its outcome into an exit code: a
/// refusal of the registry is [`Exit::Refused`], any other error [`Exit::Usage`].
pub fn execute(command: impl FnOnce(&xshell::Shell) -> anyhow::Result<ExitCode>) -> ExitCode {
    // Paths on the command line are taken from the directory mlgate was started in (as any
    // command-line tool does): the GitHub Action runs it in the caller's repository.
    let sh = match xshell::Shell::new() {
        Ok(sh) => sh,
        Err(e) => {
            eprintln!("error: cannot start a shell: {e}");
            return Exit::Usage.into();
        }
    };
    match command(&sh) {
        Ok(code) => code,
        Err(e) => {
            output::report_error(&e);
            // A refusal (a failed verdict, nothing to roll back to) is a decision, like a failed
            // gate; anything else is the user's to fix.
            let refused = e.chain().any(|c| c.downcast_ref::<model::Error>().is_some_and(model::Error::is_refusal));
            if refused { Exit::Refused } else { Exit::Usage }.into()
        }
    }
}

/// The configuration path: the flag, else `pipeline.toml` in the current directory.
pub fn config_path(flag: Option<PathBuf>) -> PathBuf {
    flag.unwrap_or_else(|| PathBuf::from("pipeline.toml"))
}
