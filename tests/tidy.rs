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

#[test]
fn readme_tables_list_every_input_and_output_of_the_action() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let action = std::fs::read_to_string(root().join("action.yml")).unwrap();
    let doc = yaml_rust2::YamlLoader::load_from_str(&action).unwrap().remove(0);
    for section in ["inputs", "outputs"] {
        let names: Vec<String> =
            doc[section].as_hash().unwrap().keys().map(|k| k.as_str().unwrap().to_string()).collect();
        assert!(!names.is_empty());
        for name in names {
            assert!(readme.contains(&format!("| `{name}` |")), "README's {section} table lacks `{name}`");
        }
    }
}
