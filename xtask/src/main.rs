//! `cargo xtask`: mlgate's command line. Parses flags, dispatches to one module per subcommand,
//! and turns errors into messages, annotations and exit codes.

mod acceptance;
mod alert;
mod bench;
mod bench_serve;
mod build;
mod ci;
mod context;
mod cv;
mod deploy;
mod gen_data;
mod github;
mod monitor;
mod monitor_live;
mod nested_cargo;
mod output;
mod predict;
mod registry;
mod report;
mod rollback;
mod serve;
mod store;
mod test;
mod validate;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// CI/CD for a purchase-prediction model: validate data, build, evaluate, predict.
#[derive(Parser)]
#[command(name = "cargo xtask", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Validate the data, train, and write DIR/model.json and DIR/validation.json.
    Build(build::Args),
    /// Score a CSV with a model artifact: one output row per input row.
    Predict(predict::Args),
    /// Validate a CSV against the configured schema without training.
    Validate(validate::Args),
    /// Stratified k-fold cross-validation of the whole build.
    Cv(cv::Args),
    /// Write the project's default data, data/customers.csv, from its seeded generator.
    GenData(gen_data::Args),
    /// Formatting, lints and the whole test suite; stops at the first failing step.
    Test(test::Args),
    /// Evaluate a candidate on staging data, gate it, register it as `staging`.
    Acceptance(acceptance::Args),
    /// Promote the staged candidate to production (when its verdict passed).
    Deploy(deploy::Args),
    /// Put the previous production model (or --to vN) back in production.
    Rollback(rollback::Args),
    /// Score production on new labelled data: metrics, drift, breaches, automatic rollback.
    Monitor(monitor::Args),
    /// Show the registry (aliases, versions, history) or check its consistency.
    Registry(registry::Args),
    /// The local CI flow: test, build, acceptance, deploy when asked.
    Ci(ci::Args),
    /// Post the acceptance report: sticky pull-request comment, job summary, step outputs.
    Report(report::Args),
    /// Open or update the GitHub issue that alerts on a monitoring breach.
    Alert(alert::Args),
    /// Measure the gate, scale and build cost; write BENCHMARKS.md.
    Bench(bench::Args),
    /// Serve the production model over HTTP: predictions, feedback, Prometheus metrics, hot swap.
    Serve(serve::Args),
}

/// The exit code of a failure that is the user's to fix: bad flags, bad config, bad data.
pub const EXIT_USAGE_OR_DATA: u8 = 2;
/// The exit code of a refused registry operation (deploy without a passing verdict, ...).
pub const EXIT_REFUSED: u8 = 1;

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Paths on the command line are taken from the directory xtask was started in (as any
    // command-line tool does), not from this workspace: the GitHub Action builds xtask from its
    // own folder and runs it in the caller's repository.
    let sh = match xshell::Shell::new() {
        Ok(sh) => sh,
        Err(e) => {
            eprintln!("error: cannot start a shell: {e}");
            return ExitCode::from(EXIT_USAGE_OR_DATA);
        }
    };
    let result = match cli.command {
        Command::Build(args) => build::run(&sh, args),
        Command::Predict(args) => predict::run(&sh, args),
        Command::Validate(args) => validate::run(&sh, args),
        Command::Cv(args) => cv::run(&sh, args),
        Command::GenData(args) => gen_data::run(&sh, args),
        Command::Test(args) => test::run(&sh, args),
        Command::Acceptance(args) => acceptance::run(&sh, args),
        Command::Deploy(args) => deploy::run(&sh, args),
        Command::Rollback(args) => rollback::run(&sh, args),
        Command::Monitor(args) => monitor::run(&sh, args),
        Command::Registry(args) => registry::run(&sh, args),
        Command::Ci(args) => ci::run(&sh, args),
        Command::Report(args) => report::run(&sh, args),
        Command::Alert(args) => alert::run(&sh, args),
        Command::Bench(args) => bench::run(&sh, args),
        Command::Serve(args) => serve::run(&sh, args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            output::report_error(&e);
            // A refusal (a failed verdict, nothing to roll back to) is a decision, like a failed
            // gate; anything else is the user's to fix.
            let refused = e.chain().any(|c| c.downcast_ref::<model::Error>().is_some_and(model::Error::is_refusal));
            ExitCode::from(if refused { EXIT_REFUSED } else { EXIT_USAGE_OR_DATA })
        }
    }
}

/// The configuration path: the flag, else `pipeline.toml` in the current directory.
pub fn config_path(flag: Option<PathBuf>) -> PathBuf {
    flag.unwrap_or_else(|| PathBuf::from("pipeline.toml"))
}
