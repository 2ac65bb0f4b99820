//! The `mlgate` binary: parses the command line and runs it.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    mlgate::cli::exit_quietly_on_closed_pipe();
    let cli = mlgate::cli::Cli::parse();
    mlgate::cli::execute(|sh| cli.command.run(sh))
}
