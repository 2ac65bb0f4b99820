//! The git side of the registry store, and the commit of the checkout a command runs in.

use xshell::{cmd, Shell};

/// The commit of the checkout, with `-dirty` when the tree has uncommitted changes.
pub fn head_commit(sh: &Shell) -> Option<String> {
    let head = cmd!(sh, "git rev-parse HEAD").quiet().ignore_stderr().read().ok()?;
    let dirty = cmd!(sh, "git status --porcelain --untracked-files=no")
        .quiet()
        .ignore_stderr()
        .read()
        .map(|s| !s.trim().is_empty())
        .unwrap_or(false);
    Some(if dirty { format!("{head}-dirty") } else { head })
}
