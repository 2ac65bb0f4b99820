//! What mlgate prints: error reports, GitHub workflow annotations, atomic output files.

use std::path::Path;

use anyhow::{Context, Result};
use model::Error;

use crate::exit::Exit;

/// True when running as a GitHub Actions step.
pub fn on_github_actions() -> bool {
    std::env::var("GITHUB_ACTIONS").is_ok_and(|v| v == "true")
}

/// `path` from the repository's root (`GITHUB_WORKSPACE`), `/`-separated, as annotations and
/// markers name files: a path taken from a `working-directory` would miss the file otherwise.
/// Outside the workspace (or outside GitHub Actions) the path is kept as given.
pub fn workspace_path(path: &str) -> String {
    let Ok(workspace) = std::env::var("GITHUB_WORKSPACE") else { return path.to_string() };
    let full =
        |p: &Path| std::fs::canonicalize(p).or_else(|_| std::path::absolute(p)).unwrap_or_else(|_| p.to_path_buf());
    let (file, root) = (full(Path::new(path)), full(Path::new(&workspace)));
    match file.strip_prefix(&root) {
        Ok(relative) => relative.to_string_lossy().replace('\\', "/"),
        Err(_) => path.to_string(),
    }
}

/// `text` with the user information of every URL in it removed (`https://user:TOKEN@host/p` →
/// `https://host/p`), so that a location, or an error that echoes one, can be printed.
pub fn redact(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(scheme) = rest.find("://") {
        let start = scheme + 3;
        out.push_str(&rest[..start]);
        let after = &rest[start..];
        // The authority ends where the path, query or fragment starts, or where the URL does in
        // running text (a space, a quote, a bracket).
        let end = after
            .find(|c: char| {
                matches!(c, '/' | '?' | '#' | '\'' | '"' | '<' | '>' | '(' | ')' | '`') || c.is_whitespace()
            })
            .unwrap_or(after.len());
        let authority = &after[..end];
        out.push_str(authority.rfind('@').map_or(authority, |at| &authority[at + 1..]));
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

/// Prints an error with its causes (any URL's credentials removed); a data validation failure
/// prints its summary (first errors, then counts per rule) and, on GitHub Actions, one `::error`
/// annotation per error.
pub fn report_error(e: &anyhow::Error) {
    eprintln!("error: {}", redact(&format!("{e:#}")));
    if !on_github_actions() {
        return;
    }
    let model_error = e.chain().find_map(|c| c.downcast_ref::<Error>());
    match model_error {
        Some(Error::Validation(report)) => {
            for d in report.errors.iter().take(model::data::report::SUMMARY_ERRORS) {
                println!(
                    "::error file={},line={},title=data validation::{}",
                    escape_property(&workspace_path(&d.file)),
                    d.line,
                    escape_data(&format!(
                        "column `{}`: value {:?}: {} ({})",
                        d.column,
                        d.value,
                        d.rule.describe(),
                        d.detail
                    ))
                );
            }
        }
        Some(Error::Header { path, problem }) => {
            println!(
                "::error file={},line=1,title=data validation::{}",
                escape_property(&workspace_path(&path.display().to_string())),
                escape_data(&problem.to_string())
            );
        }
        _ => println!("::error::{}", escape_data(&format!("{e:#}"))),
    }
}

/// Prints the last lines of a monitoring run (batch or live) that judged something and gives
/// its exit code: [`Exit::Refused`] on a breach, [`Exit::Success`] when healthy.
pub fn monitoring_status(breach: bool, detail: &str, failed: &[String]) -> std::process::ExitCode {
    if breach {
        println!("status     BREACH{detail}");
        for f in failed {
            println!("  failed: {f}");
        }
        Exit::Refused.into()
    } else {
        println!("status     healthy");
        Exit::Success.into()
    }
}

/// Prints the last lines of a monitoring run that could judge nothing, with why, and gives
/// [`Exit::Inconclusive`].
pub fn inconclusive_status(why: &[String]) -> std::process::ExitCode {
    println!("status     INCONCLUSIVE");
    for w in why {
        println!("  why: {w}");
    }
    Exit::Inconclusive.into()
}

/// Escapes a workflow command's message.
pub fn escape_data(s: &str) -> String {
    s.replace('%', "%25").replace('\r', "%0D").replace('\n', "%0A")
}

/// Escapes a workflow command's property value.
pub fn escape_property(s: &str) -> String {
    escape_data(s).replace(':', "%3A").replace(',', "%2C")
}

/// Writes a file atomically, creating its folder.
pub fn write(path: &Path, bytes: &[u8]) -> Result<()> {
    model::atomic::write(path, bytes).with_context(|| format!("cannot write {}", path.display()))
}

/// Writes pretty JSON atomically.
pub fn write_json<T: serde::Serialize>(path: &Path, value: &T) -> Result<()> {
    let mut bytes = serde_json::to_vec_pretty(value).context("cannot serialise json")?;
    bytes.push(b'\n');
    write(path, &bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn annotation_escapes_follow_the_workflow_command_rules() {
        assert_eq!(escape_data("50% a\nb\r"), "50%25 a%0Ab%0D");
        assert_eq!(escape_property("C:/a,b"), "C%3A/a%2Cb");
    }

    #[test]
    fn every_url_of_a_text_loses_its_credentials() {
        assert_eq!(redact("https://tok@h/p@q"), "https://h/p@q");
        assert_eq!(redact("/srv/a@b"), "/srv/a@b");
        assert_eq!(
            redact("cannot reach 'http://u:p@a:9090/x' via https://t@b, mail x@y"),
            "cannot reach 'http://a:9090/x' via https://b, mail x@y"
        );
        assert_eq!(redact("s3 http://key:secret@127.0.0.1:8333"), "s3 http://127.0.0.1:8333");
    }
}
