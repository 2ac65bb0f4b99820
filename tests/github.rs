//! The report and the alert against a local GitHub API (tests/fake_github.rs): one sticky
//! comment found across every page, retries without duplicates, forks, Enterprise, limits.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::fake_github::{Failure, FakeGitHub};
use crate::support::{mlgate, root, text};

/// A folder holding a real acceptance run (target/acceptance/metrics.json, target/model/
/// validation.json) and a breaching monitoring run (target/monitor/), made once.
fn fixture() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap().keep();
        std::fs::create_dir(dir.join("data")).unwrap();
        std::fs::write(dir.join("data/customers.csv"), model::data::generate::customers_csv(2000, 3)).unwrap();
        std::fs::copy(root().join("pipeline.toml"), dir.join("pipeline.toml")).unwrap();
        for args in [&["build"][..], &["acceptance"], &["deploy"]] {
            let out = mlgate(&dir, args, &[]);
            assert!(out.status.success(), "{args:?}: {:?}", text(&out));
        }
        // Labels independent of the features: the monitoring run breaches.
        let scrambled: String = model::data::generate::customers_csv(800, 4)
            .lines()
            .enumerate()
            .map(|(i, l)| match l.rsplit_once(',') {
                Some((head, _)) if i > 0 => format!("{head},{}\n", if i % 3 == 0 { "yes" } else { "no" }),
                _ => format!("{l}\n"),
            })
            .collect();
        std::fs::write(dir.join("scrambled.csv"), scrambled).unwrap();
        let out = mlgate(&dir, &["monitor", "--data", "scrambled.csv"], &[]);
        assert_eq!(out.status.code(), Some(1), "{:?}", text(&out));
        dir
    })
}

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
    summary: String,
    outputs: String,
}

/// Runs xtask as a GitHub Actions step would, against `api`, on pull request 7.
fn run_step(api: &FakeGitHub, token: &str, args: &[&str]) -> Run {
    let step = tempfile::tempdir().unwrap();
    let event = step.path().join("event.json");
    std::fs::write(
        &event,
        r#"{"action":"synchronize","pull_request":{"number":7},"repository":{"default_branch":"main"}}"#,
    )
    .unwrap();
    let summary = step.path().join("summary.md");
    let outputs = step.path().join("outputs");
    let env = [
        ("GITHUB_ACTIONS", "true"),
        ("GITHUB_API_URL", api.url.as_str()),
        ("GITHUB_REPOSITORY", "acme/shop"),
        ("GITHUB_EVENT_NAME", "pull_request"),
        ("GITHUB_EVENT_PATH", event.to_str().unwrap()),
        ("GITHUB_TOKEN", token),
        ("GITHUB_STEP_SUMMARY", summary.to_str().unwrap()),
        ("GITHUB_OUTPUT", outputs.to_str().unwrap()),
        ("MLGATE_RETRY_BASE_MS", "10"),
    ];
    let out = mlgate(fixture(), args, &env);
    let (stdout, stderr) = text(&out);
    Run {
        code: out.status.code(),
        stdout,
        stderr,
        summary: std::fs::read_to_string(&summary).unwrap_or_default(),
        outputs: std::fs::read_to_string(&outputs).unwrap_or_default(),
    }
}

fn report(api: &FakeGitHub, token: &str, config: &str) -> Run {
    let out = format!("target/comment-{}.md", config.replace(['/', '.'], "_"));
    run_step(api, token, &["report", "--config", config, "--out", &out])
}

const MARKER: &str = "<!-- mlgate-report config=pipeline.toml -->";

/// The value of a step output written with a heredoc delimiter.
fn output(outputs: &str, name: &str) -> Option<String> {
    let mut lines = outputs.lines();
    while let Some(line) = lines.next() {
        if let Some(delimiter) = line.strip_prefix(&format!("{name}<<")) {
            let value: Vec<&str> = lines.by_ref().take_while(|l| *l != delimiter).collect();
            return Some(value.join("\n"));
        }
    }
    None
}

#[test]
fn creates_one_comment_then_updates_it_among_130_from_others() {
    let api = FakeGitHub::start("");
    api.add_foreign_comments(7, 130);
    let first = report(&api, "installation-token", "pipeline.toml");
    assert_eq!(first.code, Some(0), "{}{}", first.stdout, first.stderr);
    assert!(first.stdout.contains("comment    created"), "{}", first.stdout);
    let second = report(&api, "installation-token", "pipeline.toml");
    assert!(second.stdout.contains("comment    updated"), "{}", second.stdout);
    let ours = api.comments_containing(MARKER);
    assert_eq!(ours.len(), 1);
    let body = ours[0]["body"].as_str().unwrap();
    assert!(body.contains("## ✅ Accepted"), "{body}");
    assert!(body.contains("| roc_auc |"), "{body}");
    assert!(body.contains("```mermaid\n---\nconfig:") && body.contains("\nxychart-beta\n"), "{body}");
    assert!(body.len() <= model::render::report::COMMENT_LIMIT);
    // Every page was read: 131 comments at 100 a page is two pages.
    assert!(api.requests().iter().any(|r| r.starts_with("GET /repos/acme/shop/issues/7/comments")));
    assert_eq!(output(&second.outputs, "passed").as_deref(), Some("true"));
    assert_eq!(output(&second.outputs, "verdict").as_deref(), Some("passed"));
    assert_eq!(output(&second.outputs, "model-version").as_deref(), Some("v1"));
    assert_eq!(output(&second.outputs, "comment-url").unwrap(), ours[0]["html_url"].as_str().unwrap());
    let metrics: serde_json::Value = serde_json::from_str(&output(&second.outputs, "metrics-json").unwrap()).unwrap();
    assert_eq!(metrics["passed"], true);
    assert!(second.summary.contains("## ✅ Accepted"));
}

#[test]
fn updates_the_comment_when_its_marker_sits_on_page_two_of_three() {
    let api = FakeGitHub::start("");
    api.add_foreign_comments(7, 150);
    let ours = api.add_comment(7, &format!("{MARKER}\nold report"), "github-actions[bot]", "Bot");
    api.add_foreign_comments(7, 100);
    let run = report(&api, "installation-token", "pipeline.toml");
    assert_eq!(run.code, Some(0), "{}{}", run.stdout, run.stderr);
    let marked = api.comments_containing(MARKER);
    assert_eq!(marked.len(), 1, "a duplicate was posted");
    assert_eq!(marked[0]["id"], ours);
    assert!(!marked[0]["body"].as_str().unwrap().contains("old report"));
    let requests = api.requests();
    assert!(!requests.iter().any(|r| r.starts_with("POST")), "{requests:?}");
    assert!(
        requests.iter().any(|r| r.starts_with(&format!("PATCH /repos/acme/shop/issues/comments/{ours}"))),
        "{requests:?}"
    );
}

#[test]
fn prefers_the_comment_of_the_tokens_own_user() {
    let api = FakeGitHub::start("");
    let someone = api.add_comment(7, &format!("quoting: {MARKER}"), "reviewer", "User");
    let own = api.add_comment(7, &format!("{MARKER}\nold"), "mlgate-bot", "User");
    let run = report(&api, "user-token", "pipeline.toml");
    assert_eq!(run.code, Some(0), "{}{}", run.stdout, run.stderr);
    let requests = api.requests();
    assert!(
        requests.iter().any(|r| r.starts_with(&format!("PATCH /repos/acme/shop/issues/comments/{own}"))),
        "{requests:?}"
    );
    assert!(!requests.iter().any(|r| r.contains(&format!("comments/{someone}"))), "{requests:?}");
}

#[test]
fn two_configurations_get_two_comments() {
    let api = FakeGitHub::start("");
    for _ in 0..2 {
        assert_eq!(report(&api, "installation-token", "pipeline.toml").code, Some(0));
        assert_eq!(report(&api, "installation-token", "configs/other.toml").code, Some(0));
    }
    assert_eq!(api.comments_containing("<!-- mlgate-report config=").len(), 2);
    assert_eq!(api.comments_containing("config=configs/other.toml").len(), 1);
}

#[test]
fn a_502_on_create_is_retried_without_a_duplicate() {
    let api = FakeGitHub::start("");
    api.add_foreign_comments(7, 3);
    // The comment is created, but the answer is lost: a naive retry would post it twice.
    api.fail_next(Failure {
        method: "POST",
        path_contains: "/comments",
        status: 502,
        headers: vec![],
        body: r#"{"message":"Bad Gateway"}"#.into(),
        perform: true,
    });
    let run = report(&api, "installation-token", "pipeline.toml");
    assert_eq!(run.code, Some(0), "{}{}", run.stdout, run.stderr);
    assert_eq!(api.comments_containing(MARKER).len(), 1);
}

#[test]
fn rate_limits_and_server_errors_are_retried_honouring_retry_after() {
    let api = FakeGitHub::start("");
    api.fail_next(Failure {
        method: "GET",
        path_contains: "/comments",
        status: 429,
        headers: vec![("Retry-After".into(), "1".into())],
        body: r#"{"message":"too many requests"}"#.into(),
        perform: false,
    });
    api.fail_next(Failure {
        method: "GET",
        path_contains: "/comments",
        status: 403,
        headers: vec![("Retry-After".into(), "0".into())],
        body: r#"{"message":"You have exceeded a secondary rate limit"}"#.into(),
        perform: false,
    });
    api.fail_next(Failure {
        method: "GET",
        path_contains: "/comments",
        status: 503,
        headers: vec![],
        body: "{}".into(),
        perform: false,
    });
    let started = std::time::Instant::now();
    let run = report(&api, "installation-token", "pipeline.toml");
    assert_eq!(run.code, Some(0), "{}{}", run.stdout, run.stderr);
    assert!(started.elapsed() >= std::time::Duration::from_secs(1), "Retry-After was not honoured");
    assert!(run.stderr.contains("a secondary rate limit; retrying in 1.0 s"), "{}", run.stderr);
    assert_eq!(api.comments_containing(MARKER).len(), 1);
}

#[test]
fn a_read_only_token_warns_and_the_summary_still_holds_the_report() {
    let api = FakeGitHub::start("");
    let run = report(&api, "read-only-token", "pipeline.toml");
    assert_eq!(run.code, Some(0), "{}{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("::warning title=mlgate report not posted::"), "{}", run.stdout);
    assert!(run.stdout.contains("Resource not accessible by integration"), "{}", run.stdout);
    assert!(run.summary.contains("## ✅ Accepted"), "{}", run.summary);
    assert!(api.comments_containing(MARKER).is_empty());
    // --comment always makes it an error.
    let run = run_step(&api, "read-only-token", &["report", "--comment", "always"]);
    assert_eq!(run.code, Some(2), "{}{}", run.stdout, run.stderr);
}

#[test]
fn github_enterprise_api_prefix_works() {
    let api = FakeGitHub::start("/api/v3");
    assert!(api.url.ends_with("/api/v3"));
    let run = report(&api, "installation-token", "pipeline.toml");
    assert_eq!(run.code, Some(0), "{}{}", run.stdout, run.stderr);
    assert_eq!(api.comments_containing(MARKER).len(), 1);
}

#[test]
fn the_token_never_appears_in_any_output() {
    let api = FakeGitHub::start("");
    // A server that echoes the credentials in an error.
    for _ in 0..8 {
        api.fail_next(Failure {
            method: "GET",
            path_contains: "/comments",
            status: 422,
            headers: vec![],
            body: r#"{"message":"token installation-token is not valid here"}"#.into(),
            perform: false,
        });
    }
    let run = report(&api, "installation-token", "pipeline.toml");
    assert_eq!(run.code, Some(2));
    for text in [&run.stdout, &run.stderr, &run.summary, &run.outputs] {
        assert!(!text.contains("installation-token"), "the token leaked: {text}");
    }
    assert!(run.stderr.contains("***"), "{}", run.stderr);
}

#[test]
fn a_body_over_the_limit_is_cut_with_a_note() {
    let record: model::lifecycle::gate::AcceptanceRecord =
        serde_json::from_slice(&std::fs::read(fixture().join("target/acceptance/metrics.json")).unwrap()).unwrap();
    let validation: model::ValidationReport =
        serde_json::from_slice(&std::fs::read(fixture().join("target/model/validation.json")).unwrap()).unwrap();
    let render = |limit: usize| {
        model::render::report::pull_request_markdown(&record, Some(&validation), MARKER, limit, "`metrics.json`", "")
    };
    let full = render(1 << 20);
    assert!(full.contains("<summary>Data validation</summary>"));
    // Limits are GitHub's: bytes (the report's ✅, Δ and … are several bytes each).
    let limit = 3500;
    let cut = render(limit);
    assert!(cut.len() <= limit, "{} bytes", cut.len());
    assert!(cut.contains("Cut to stay within GitHub's 3500-byte limit") && cut.contains("in `metrics.json`"), "{cut}");
    assert!(cut.starts_with(MARKER) && cut.contains("## ✅ Accepted"), "the verdict must survive: {cut}");
    let tiny = render(1200);
    assert!(tiny.len() <= 1200 && tiny.contains(MARKER));
}

#[test]
fn the_alert_issue_is_opened_once_then_updated() {
    let api = FakeGitHub::start("");
    let first = run_step(&api, "installation-token", &["alert"]);
    assert_eq!(first.code, Some(0), "{}{}", first.stdout, first.stderr);
    assert!(first.stdout.contains("alert      opened"), "{}", first.stdout);
    let second = run_step(&api, "installation-token", &["alert"]);
    assert!(second.stdout.contains("alert      updated"), "{}", second.stdout);
    let issues = api.issues();
    assert_eq!(issues.len(), 1);
    assert!(issues[0]["body"].as_str().unwrap().contains("## ❌ Breach"));
    assert_eq!(issues[0]["labels"][0]["name"], "mlgate-alert");
}

#[test]
fn a_token_echoed_in_an_answer_reaches_neither_stdout_nor_the_step_outputs() {
    let api = FakeGitHub::start("");
    // The comment is created, and the answer's html_url echoes the token.
    api.fail_next(Failure {
        method: "POST",
        path_contains: "/comments",
        status: 201,
        headers: vec![],
        body: r#"{"id":1,"html_url":"https://github.test/o/r/pull/7#issuecomment-1?access_token=installation-token"}"#
            .into(),
        perform: true,
    });
    let run = report(&api, "installation-token", "pipeline.toml");
    assert_eq!(run.code, Some(0), "{}\n{}", run.stdout, run.stderr);
    for text in [&run.stdout, &run.stderr, &run.summary, &run.outputs] {
        assert!(!text.contains("installation-token"), "the token leaked: {text}");
    }
    assert!(run.outputs.contains("access_token=***"), "{}", run.outputs);
}

#[test]
fn a_persons_comment_quoting_the_marker_is_never_edited() {
    let api = FakeGitHub::start("");
    let quoted = format!("Why does {MARKER} show up in the source?");
    let person = api.add_comment(7, &quoted, "reviewer", "User");
    let run = report(&api, "installation-token", "pipeline.toml");
    assert_eq!(run.code, Some(0), "{}{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("comment    created"), "{}", run.stdout);
    let requests = api.requests();
    assert!(!requests.iter().any(|r| r.contains(&format!("comments/{person}"))), "{requests:?}");
    let marked = api.comments_containing(MARKER);
    assert_eq!(marked.len(), 2);
    assert_eq!(marked.iter().find(|c| c["id"] == person).unwrap()["body"], quoted.as_str());
    // The bot's comment is the one updated next time; the person's still untouched.
    let run = report(&api, "installation-token", "pipeline.toml");
    assert!(run.stdout.contains("comment    updated"), "{}", run.stdout);
    assert_eq!(api.comments_containing(MARKER).len(), 2);
}

#[test]
fn an_actions_token_never_asks_who_it_is() {
    let api = FakeGitHub::start("");
    let run = report(&api, "ghs_actions0123456789", "pipeline.toml");
    assert_eq!(run.code, Some(0), "{}{}", run.stdout, run.stderr);
    assert!(!api.requests().iter().any(|r| r.starts_with("GET /user")), "{:?}", api.requests());
    // Another kind of token does ask (a user token's comments are its user's).
    report(&api, "user-token", "pipeline.toml");
    assert!(api.requests().iter().any(|r| r.starts_with("GET /user")));
}

#[test]
fn a_label_with_a_space_gets_one_issue_across_two_breaches_and_keeps_labels_added_by_hand() {
    let api = FakeGitHub::start("");
    // A pull request carrying the same label and marker text: GET /issues lists it, it is no
    // alert issue.
    api.add_pull_request("<!-- mlgate-alert model=customer-purchase -->", "model alert & drift");
    let label = ["alert", "--label", "model alert & drift"];
    let first = run_step(&api, "installation-token", &label);
    assert_eq!(first.code, Some(0), "{}{}", first.stdout, first.stderr);
    assert!(first.stdout.contains("alert      opened"), "{}", first.stdout);
    let number = api.issues()[0]["number"].as_u64().unwrap();
    api.add_label(number, "triage");
    let second = run_step(&api, "installation-token", &label);
    assert_eq!(second.code, Some(0), "{}{}", second.stdout, second.stderr);
    assert!(second.stdout.contains("alert      updated"), "{}", second.stdout);
    let issues = api.issues();
    assert_eq!(issues.len(), 1, "{issues:?}");
    let labels: Vec<&str> =
        issues[0]["labels"].as_array().unwrap().iter().map(|l| l["name"].as_str().unwrap()).collect();
    assert_eq!(labels, ["model alert & drift", "triage"]);
    // The label travelled encoded: the fake decoded it back to the whole label.
    assert!(api.requests().iter().any(|r| r.starts_with("GET /repos/acme/shop/issues?")));
}

#[test]
fn pagination_follows_the_next_links_and_a_moved_resource_is_followed() {
    let api = FakeGitHub::start("");
    api.add_foreign_comments(7, 250);
    let ours = api.add_comment(7, &format!("{MARKER}\nold"), "github-actions[bot]", "Bot");
    api.fail_next(Failure {
        method: "GET",
        path_contains: "/issues/7/comments",
        status: 301,
        headers: vec![("Location".into(), format!("{}/repos/acme/shop/issues/7/comments?per_page=100", api.url))],
        body: r#"{"message":"Moved Permanently"}"#.into(),
        perform: false,
    });
    let run = report(&api, "installation-token", "pipeline.toml");
    assert_eq!(run.code, Some(0), "{}{}", run.stdout, run.stderr);
    assert!(run.stderr.contains("moved (301)"), "{}", run.stderr);
    let requests = api.requests();
    // Three pages of 100, each asked by the URL the previous page's Link gave.
    let pages = requests.iter().filter(|r| r.starts_with("GET /repos/acme/shop/issues/7/comments")).count();
    assert_eq!(pages, 4, "the redirect, then three pages: {requests:?}");
    assert!(requests.iter().any(|r| r.starts_with(&format!("PATCH /repos/acme/shop/issues/comments/{ours}"))));
}

#[test]
fn a_secondary_rate_limit_is_waited_on_and_a_real_refusal_takes_the_fork_path() {
    let api = FakeGitHub::start("");
    // A secondary limit with no Retry-After: at least a minute (60 × the shortened base here).
    api.fail_next(Failure {
        method: "POST",
        path_contains: "/comments",
        status: 403,
        headers: vec![],
        body:
            r#"{"message":"You have exceeded a secondary rate limit. Please wait a few minutes before you try again."}"#
                .into(),
        perform: false,
    });
    let started = std::time::Instant::now();
    let run = report(&api, "installation-token", "pipeline.toml");
    assert_eq!(run.code, Some(0), "{}{}", run.stdout, run.stderr);
    assert!(started.elapsed() >= std::time::Duration::from_millis(600));
    assert!(run.stderr.contains("a secondary rate limit; retrying in 0.6 s"), "{}", run.stderr);
    assert!(!run.stdout.contains("::warning"), "a rate limit is no permission refusal: {}", run.stdout);
    assert_eq!(api.comments_containing(MARKER).len(), 1);
    // The primary limit spent on every attempt: reported as a rate limit, not as a fork.
    for _ in 0..20 {
        api.fail_next(Failure {
            method: "GET",
            path_contains: "/comments",
            status: 403,
            headers: vec![("x-ratelimit-remaining".into(), "0".into()), ("retry-after".into(), "400".into())],
            body: r#"{"message":"API rate limit exceeded"}"#.into(),
            perform: false,
        });
    }
    let run = report(&api, "installation-token", "pipeline.toml");
    assert_eq!(run.code, Some(2), "{}{}", run.stdout, run.stderr);
    assert!(run.stderr.contains("primary rate limit"), "{}", run.stderr);
    assert!(!run.stdout.contains("fork"), "{}", run.stdout);
}

#[test]
fn a_422_shows_what_the_api_found_wrong() {
    let api = FakeGitHub::start("");
    api.fail_next(Failure {
        method: "POST",
        path_contains: "/issues",
        status: 422,
        headers: vec![],
        body: r#"{"message":"Validation Failed","errors":[{"resource":"Label","field":"name","code":"invalid"}]}"#
            .into(),
        perform: false,
    });
    let run = run_step(&api, "installation-token", &["alert"]);
    assert_eq!(run.code, Some(2), "{}{}", run.stdout, run.stderr);
    assert!(run.stderr.contains("Validation Failed (Label name invalid)"), "{}", run.stderr);
}

/// The points of the SVG path drawn in `colour` (`M x,y L x,y …`).
fn svg_line(svg: &str, colour: &str) -> Option<Vec<(f64, f64)>> {
    let at = svg.find(&format!("stroke=\"{colour}\""))?;
    let start = svg[..at].rfind("<path d=\"")? + "<path d=\"".len();
    let d = &svg[start..start + svg[start..].find('"')?];
    d.split(['M', 'L'])
        .filter(|p| !p.trim().is_empty())
        .map(|p| {
            let (x, y) = p.trim().split_once(',')?;
            Some((x.trim().parse().ok()?, y.trim().parse().ok()?))
        })
        .collect()
}

#[test]
fn the_rendered_roc_chart_shows_the_candidate_curve_ending_at_one_one() {
    let mmdc = std::env::var_os("MLGATE_MMDC")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join(".ci/mermaid/node_modules/.bin/mmdc"));
    let chromium = std::env::var("MLGATE_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    if !mmdc.exists() || !Path::new(&chromium).exists() {
        eprintln!(
            "skipped: no mermaid-cli and Chromium (.ci/run installs @mermaid-js/mermaid-cli and Debian's chromium)"
        );
        return;
    }
    let api = FakeGitHub::start("");
    let run = report(&api, "installation-token", "pipeline.toml");
    assert_eq!(run.code, Some(0), "{}{}", run.stdout, run.stderr);
    let body = api.comments_containing(MARKER)[0]["body"].as_str().unwrap().to_string();
    let chart = body.split("```mermaid\n").nth(1).unwrap().split("```").next().unwrap();
    assert!(chart.contains("ROC curve"), "{chart}");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("roc.mmd"), chart).unwrap();
    let browser = serde_json::json!({
        "executablePath": chromium,
        "args": ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"],
    });
    std::fs::write(dir.path().join("puppeteer.json"), browser.to_string()).unwrap();
    let out = std::process::Command::new(&mmdc)
        .current_dir(dir.path())
        .args(["-p", "puppeteer.json", "-i", "roc.mmd", "-o", "roc.svg", "-b", "white"])
        .output()
        .unwrap();
    assert!(out.status.success(), "mmdc: {}", String::from_utf8_lossy(&out.stderr));
    let svg = std::fs::read_to_string(dir.path().join("roc.svg")).unwrap();
    let (blue, grey) = (model::render::report::CHART_PALETTE[0].0, model::render::report::CHART_PALETTE[2].0);
    let candidate = svg_line(&svg, blue).unwrap_or_else(|| panic!("no candidate line drawn in {blue}: {svg}"));
    let chance = svg_line(&svg, grey).unwrap_or_else(|| panic!("no chance line drawn in {grey}"));
    // Every point drawn, the last one included, and the candidate ends where the diagonal does:
    // at (1, 1), the plot's top-right corner.
    assert_eq!(candidate.len(), 21, "{candidate:?}");
    assert_eq!(chance.len(), 21);
    assert_eq!(candidate.last(), chance.last(), "{candidate:?}");
    assert_eq!(candidate.first(), chance.first());
    let (x0, y0) = chance[0];
    let (x1, y1) = *chance.last().unwrap();
    assert!(x1 > x0 && y1 < y0, "the diagonal goes up and right: {chance:?}");
    // The candidate lies above the diagonal somewhere (a model better than chance).
    assert!(candidate.iter().zip(&chance).any(|(c, d)| c.1 < d.1 - 1.0));
}
