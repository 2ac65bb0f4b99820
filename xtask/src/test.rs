//! `cargo xtask test`: formatting, lints, then the whole test suite, stopping at the first
//! failing step and naming it.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use xshell::{cmd, Cmd, Shell};

#[derive(clap::Args)]
pub struct Args {}

/// `cmd` without the variables a nested cargo must not inherit (see [`crate::nested_cargo`]).
pub fn clean_env(mut cmd: Cmd<'_>) -> Cmd<'_> {
    for key in crate::nested_cargo::inherited_cargo_variables() {
        cmd = cmd.env_remove(key);
    }
    cmd
}

/// The root of the cargo workspace that contains the current directory.
pub fn workspace_root(sh: &Shell) -> Result<PathBuf> {
    let manifest = clean_env(cmd!(sh, "cargo locate-project --workspace --message-format plain"))
        .quiet()
        .read()
        .context("not inside a cargo workspace")?;
    Ok(PathBuf::from(manifest.trim()).parent().context("a manifest has a folder")?.to_path_buf())
}

pub fn run(sh: &Shell, _args: Args) -> Result<ExitCode> {
    let root = workspace_root(sh)?;
    sh.change_dir(&root);
    let nextest = clean_env(cmd!(sh, "cargo nextest --version")).quiet().ignore_stdout().ignore_stderr().run().is_ok();
    let steps = [
        ("format", cmd!(sh, "cargo fmt --all -- --check")),
        ("lints", cmd!(sh, "cargo clippy --workspace --all-targets -- -D warnings")),
        (
            "tests",
            if nextest {
                cmd!(sh, "cargo nextest run --workspace --no-fail-fast")
            } else {
                cmd!(sh, "cargo test --workspace --no-fail-fast")
            },
        ),
    ];
    for (name, command) in steps {
        eprintln!("==> {name}: {command}");
        if let Err(e) = clean_env(command).run() {
            bail!("step `{name}` failed ({e}); later steps were not run");
        }
    }
    eprintln!("==> all steps passed");
    Ok(ExitCode::SUCCESS)
}
