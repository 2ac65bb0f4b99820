//! The `mlgate` binary: parses the command line and runs it.

use std::process::ExitCode;

use clap::Parser;

// musl's malloc serialises threads on one lock; the scoring workers and the server allocate
// from several threads at once (BENCHMARKS.md, "Static binary").
#[cfg(target_env = "musl")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    mlgate::cli::exit_quietly_on_closed_pipe();
    let cli = mlgate::cli::Cli::parse();
    mlgate::cli::execute(|sh| cli.command.run(sh))
}
