//! `cargo xtask`: this repository's own tooling — the tests, the benchmarks, the project's data,
//! the local CI flow, the Kubernetes alerting rules — and mlgate's own commands through the
//! `mlgate` library, so that `cargo xtask build | acceptance | deploy | …` work in this
//! repository as `mlgate …` does.

mod bench;
mod bench_import;
mod bench_serve;
mod bench_static;
mod bench_train;
mod ci;
mod gen_data;
mod k8s_rules;
mod nested_cargo;
mod test;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// This repository's tooling, and mlgate's commands run from its sources.
#[derive(Parser)]
#[command(name = "cargo xtask", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Write the project's default data, data/customers.csv, from its seeded generator.
    GenData(gen_data::Args),
    /// Formatting, lints and the whole test suite; stops at the first failing step.
    Test(test::Args),
    /// The local CI flow: test, build, acceptance, deploy when asked.
    Ci(ci::Args),
    /// Measure the gate, scale, serving and build cost; write BENCHMARKS.md.
    Bench(bench::Args),
    /// Write the Kubernetes PrometheusRule from deploy/prometheus/alerts.yml (or check it).
    K8sRules(k8s_rules::Args),
    /// mlgate's own commands (boxed: `serve`'s flags make them far larger than the others).
    #[command(flatten)]
    Mlgate(Box<mlgate::cli::Command>),
}

fn main() -> ExitCode {
    mlgate::cli::exit_quietly_on_closed_pipe();
    let cli = Cli::parse();
    mlgate::cli::execute(|sh| match cli.command {
        Command::GenData(args) => gen_data::run(sh, args),
        Command::Test(args) => test::run(sh, args),
        Command::Ci(args) => ci::run(sh, args),
        Command::Bench(args) => bench::run(sh, args),
        Command::K8sRules(args) => k8s_rules::run(sh, args),
        Command::Mlgate(command) => command.run(sh),
    })
}
