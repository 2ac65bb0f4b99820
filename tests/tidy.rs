//! Docs kept in step with the code: every subcommand is documented.

use crate::support::root;

#[test]
fn every_subcommand_is_in_readme_and_architecture() {
    let commands = crate::cli::subcommands();
    assert!(commands.len() >= 5, "{commands:?}");
    for doc in ["README.md", "ARCHITECTURE.md"] {
        let text = std::fs::read_to_string(root().join(doc)).unwrap();
        for c in &commands {
            assert!(text.contains(&format!("cargo xtask {c}")), "{doc} does not mention `cargo xtask {c}`");
        }
    }
}

#[test]
fn readme_starts_with_the_two_commands() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let blocks: Vec<&str> = readme.split("```").collect();
    assert!(blocks.len() > 2, "README has no code block");
    let first: Vec<&str> = blocks[1].lines().filter(|l| !l.trim().is_empty() && !l.starts_with("sh")).collect();
    assert_eq!(first, ["cargo xtask build", "cargo test --workspace"]);
    let ci = std::fs::read_to_string(root().join(".ci/run")).unwrap();
    assert!(ci.contains("cargo test --workspace"), ".ci/run must run README's test command");
}
