//! Everything that talks to the GitHub REST API, through octocrab: the sticky pull-request
//! comment and the monitoring alert issue, with bounded retries. The API base comes from
//! `GITHUB_API_URL` (so GitHub Enterprise's `…/api/v3` works) and the token is never printed.

use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use octocrab::Octocrab;
use serde_json::{json, Value};

/// Attempts of one request before giving up (5xx, 429, secondary rate limits).
const ATTEMPTS: u32 = 4;
/// Longest wait between attempts, whatever the server asks.
const MAX_WAIT: Duration = Duration::from_secs(60);
/// Comments and issues per page when listing (the API's maximum).
const PER_PAGE: u32 = 100;

/// Total time spent waiting on rate limits in one run before giving up.
const RATE_LIMIT_BUDGET: Duration = Duration::from_secs(300);

/// A response, read whole.
struct Reply {
    status: u16,
    /// The `Link: <…>; rel="next"` URL of a paginated list.
    link_next: Option<String>,
    /// Where a redirect points.
    location: Option<String>,
    retry_after: Option<Duration>,
    /// The primary rate limit is spent (`x-ratelimit-remaining: 0`).
    exhausted: bool,
    body: String,
}

/// Why a reply is a rate limit, if it is one: GitHub answers 403 or 429 with
/// `x-ratelimit-remaining: 0` (the primary limit) or a message about a secondary rate limit.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Limited {
    Primary,
    Secondary,
}

impl Reply {
    fn json(&self) -> Result<Value> {
        serde_json::from_str(&self.body)
            .with_context(|| format!("the API answered {} with a body that is not JSON", self.status))
    }

    fn message(&self) -> String {
        self.json().ok().and_then(|v| v["message"].as_str().map(str::to_string)).unwrap_or_else(|| self.body.clone())
    }

    fn limited(&self) -> Option<Limited> {
        if !(self.status == 403 || self.status == 429) {
            return None;
        }
        if self.exhausted {
            Some(Limited::Primary)
        } else if self.message().to_lowercase().contains("secondary rate limit") || self.status == 429 {
            Some(Limited::Secondary)
        } else {
            None
        }
    }

    /// The message with what a 422 lists in `errors[]` (the field and the code of each).
    fn detail(&self) -> String {
        let mut m = self.message();
        if let Some(errors) = self.json().ok().and_then(|v| v["errors"].as_array().cloned()) {
            let parts: Vec<String> = errors
                .iter()
                .map(|e| match e {
                    Value::String(s) => s.clone(),
                    e => [e["resource"].as_str(), e["field"].as_str(), e["code"].as_str(), e["message"].as_str()]
                        .into_iter()
                        .flatten()
                        .collect::<Vec<_>>()
                        .join(" "),
                })
                .collect();
            if !parts.is_empty() {
                m.push_str(&format!(" ({})", parts.join("; ")));
            }
        }
        m
    }
}

/// The `rel="next"` URL of a `Link` header.
fn next_link(link: &str) -> Option<String> {
    link.split(',').find_map(|part| {
        let (url, params) = part.split_once(';')?;
        params.split(';').any(|p| p.trim() == "rel=\"next\"").then(|| url.trim().trim_matches(['<', '>']).to_string())
    })
}

/// `text` percent-encoded for a query string (RFC 3986 unreserved characters kept).
pub fn encode_query(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            b => format!("%{b:02X}"),
        })
        .collect()
}

/// A failed API call, classified.
#[derive(Debug)]
pub enum ApiError {
    /// The token may not write here (a pull request from a fork: "Resource not accessible by
    /// integration"). A rate limit is never this: it is waited on, then reported as `Other`.
    Forbidden(String),
    /// Anything else.
    Other(anyhow::Error),
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ApiError::Forbidden(m) => write!(f, "the token may not write here: {m}"),
            ApiError::Other(e) => write!(f, "{e:#}"),
        }
    }
}

impl From<anyhow::Error> for ApiError {
    fn from(e: anyhow::Error) -> Self {
        ApiError::Other(e)
    }
}

/// A client for one repository.
pub struct GitHub {
    crab: Octocrab,
    runtime: tokio::runtime::Runtime,
    repository: String,
    token: String,
    base_backoff: Duration,
}

/// What `upsert` did.
#[derive(Debug, Clone)]
pub struct Upserted {
    /// Browser URL of the comment or issue.
    pub url: String,
    /// True when it was created, false when updated.
    pub created: bool,
}

impl GitHub {
    /// A client from the runner's environment: `GITHUB_API_URL` (default api.github.com) and
    /// `GITHUB_REPOSITORY` (`owner/name`).
    pub fn from_env(token: &str) -> Result<GitHub> {
        let api = std::env::var("GITHUB_API_URL").unwrap_or_else(|_| "https://api.github.com".into());
        let repository = std::env::var("GITHUB_REPOSITORY").context("GITHUB_REPOSITORY is not set (owner/name)")?;
        if repository.split('/').count() != 2 {
            bail!("GITHUB_REPOSITORY is {repository:?}, not owner/name");
        }
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("cannot start the async runtime")?;
        let crab = {
            let _guard = runtime.enter();
            Octocrab::builder()
                .base_uri(api.trim_end_matches('/'))
                .with_context(|| format!("GITHUB_API_URL {api:?} is not a URL"))?
                .personal_token(token.to_string())
                // As GitHub documents its REST API: this media type, and a User-Agent naming us.
                .add_header(http::header::ACCEPT, "application/vnd.github+json".to_string())
                .add_header(http::header::USER_AGENT, format!("mlgate/{}", env!("CARGO_PKG_VERSION")))
                .set_connect_timeout(Some(Duration::from_secs(10)))
                .set_read_timeout(Some(Duration::from_secs(30)))
                .build()
                .context("cannot build the GitHub client")?
        };
        // Tests shorten the backoff; a real run waits seconds.
        let base_backoff = std::env::var("MLGATE_RETRY_BASE_MS")
            .ok()
            .and_then(|v| v.parse().ok())
            .map_or(Duration::from_secs(1), Duration::from_millis);
        Ok(GitHub { crab, runtime, repository, token: token.to_string(), base_backoff })
    }

    /// Removes the token from any text that may be shown: error messages, and every value of an
    /// API answer that reaches stdout or a step output (an answer may echo the token).
    pub fn scrub(&self, text: &str) -> String {
        if self.token.is_empty() {
            text.to_string()
        } else {
            text.replace(&self.token, "***")
        }
    }

    fn send_once(&self, method: &str, path: &str, body: Option<&Value>) -> Result<Reply> {
        self.runtime.block_on(async {
            let response = match method {
                "GET" => self.crab._get(path).await,
                "POST" => self.crab._post(path, body).await,
                // octocrab 0.54's update_comment sends POST; the API wants PATCH.
                "PATCH" => self.crab._patch(path, body).await,
                other => return Err(anyhow!("unsupported method {other}")),
            }
            .map_err(|e| anyhow!("{method} {path}: {}", self.scrub(&e.to_string())))?;
            let status = response.status().as_u16();
            let headers = response.headers().clone();
            let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
            let link_next = header("link").and_then(|l| next_link(&l));
            let location = header("location");
            let exhausted = header("x-ratelimit-remaining").is_some_and(|r| r.trim() == "0");
            let retry_after = header("retry-after")
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_secs)
                .or_else(|| {
                    // A primary rate limit says when it resets, in epoch seconds.
                    let remaining = header("x-ratelimit-remaining")?;
                    let reset: u64 = header("x-ratelimit-reset")?.parse().ok()?;
                    if remaining.trim() != "0" {
                        return None;
                    }
                    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).ok()?.as_secs();
                    Some(Duration::from_secs(reset.saturating_sub(now)))
                });
            let body = self
                .crab
                .body_to_string(response)
                .await
                .map_err(|e| anyhow!("{method} {path}: {}", self.scrub(&e.to_string())))?;
            Ok(Reply { status, link_next, location, retry_after, exhausted, body })
        })
    }

    /// One request, retried on rate limits (403 or 429 with `x-ratelimit-remaining: 0` or a
    /// secondary-limit message: the request was not carried out) and, for GET and PATCH, on 5xx
    /// and transport errors; a redirect (301, 302, 307, 308) is followed. The waits follow
    /// GitHub's guidance: `retry-after` when given, else until `x-ratelimit-reset` for the
    /// primary limit, at least a minute for a secondary one, exponential backoff otherwise —
    /// all within [`RATE_LIMIT_BUDGET`]. A POST that met a 5xx may have been carried out: it
    /// comes back to the caller, who looks before creating again.
    fn send(&self, method: &str, path: &str, body: Option<&Value>) -> Result<Reply> {
        let idempotent = method != "POST";
        let mut attempt = 0;
        let mut waited = Duration::ZERO;
        let mut target = path.to_string();
        let mut redirects = 0;
        loop {
            attempt += 1;
            let reply = self.send_once(method, &target, body);
            if let Ok(r) = &reply {
                if matches!(r.status, 301 | 302 | 307 | 308) && redirects < 3 {
                    if let Some(location) = &r.location {
                        eprintln!("github: {method} {target}: moved ({}) to {location}", r.status);
                        target = location.clone();
                        redirects += 1;
                        attempt -= 1;
                        continue;
                    }
                }
            }
            let limited = reply.as_ref().ok().and_then(Reply::limited);
            let retryable = match &reply {
                Err(_) => idempotent,
                Ok(r) => (r.status >= 500 && idempotent) || limited.is_some(),
            };
            let backoff = self.base_backoff * 2u32.pow(attempt.min(16) - 1);
            let wait = match (&reply, limited) {
                (Ok(Reply { retry_after: Some(d), .. }), _) => *d,
                // GitHub: wait at least a minute before retrying after a secondary limit
                // (tests shorten the base, and with it the minute).
                (_, Some(Limited::Secondary)) => (self.base_backoff * 60).max(backoff),
                _ => backoff,
            };
            let over_budget = limited.is_some() && waited + wait > RATE_LIMIT_BUDGET;
            if !retryable || (limited.is_none() && attempt >= ATTEMPTS) || over_budget || attempt >= 16 {
                if let (Some(kind), Ok(r)) = (limited, &reply) {
                    bail!(
                        "{method} {path}: GitHub's {} rate limit ({}): gave up after waiting {:.0} s",
                        if kind == Limited::Primary { "primary" } else { "secondary" },
                        self.scrub(&r.message()),
                        waited.as_secs_f64()
                    );
                }
                return reply;
            }
            let wait = if limited.is_some() { wait } else { wait.min(MAX_WAIT) };
            let why = match (&reply, limited) {
                (_, Some(Limited::Primary)) => "the primary rate limit is spent".to_string(),
                (_, Some(Limited::Secondary)) => "a secondary rate limit".to_string(),
                (Ok(r), None) => format!("status {}", r.status),
                (Err(e), None) => format!("{e:#}"),
            };
            eprintln!("github: {method} {path}: {why}; retrying in {:.1} s ({attempt})", wait.as_secs_f64());
            std::thread::sleep(wait);
            waited += wait;
        }
    }

    fn expect(&self, reply: Reply, what: &str) -> Result<Value, ApiError> {
        match reply.status {
            200..=299 => Ok(reply.json()?),
            403 | 404 if reply.message().contains("Resource not accessible by integration") => {
                Err(ApiError::Forbidden(reply.message()))
            }
            403 => Err(ApiError::Forbidden(reply.message())),
            s => Err(ApiError::Other(anyhow!("{what}: the API answered {s}: {}", self.scrub(&reply.detail())))),
        }
    }

    /// The login of the token's own user, when the API says (installation tokens may not ask).
    fn own_login(&self) -> Option<String> {
        let reply = self.send("GET", "/user", None).ok()?;
        if reply.status != 200 {
            return None;
        }
        reply.json().ok()?["login"].as_str().map(str::to_string)
    }

    /// Every item of a paginated list, following the `Link: rel="next"` URLs the API gives.
    fn list_all(&self, path: &str, what: &str) -> Result<Vec<Value>, ApiError> {
        let mut items = Vec::new();
        let separator = if path.contains('?') { '&' } else { '?' };
        let mut next = Some(format!("{path}{separator}per_page={PER_PAGE}"));
        let mut pages = 0;
        while let Some(url) = next.take() {
            let reply = self.send("GET", &url, None)?;
            next = reply.link_next.clone();
            match self.expect(reply, what)? {
                Value::Array(a) => items.extend(a),
                other => return Err(ApiError::Other(anyhow!("{what}: expected a list, got {other}"))),
            }
            pages += 1;
            if pages >= 1000 {
                break;
            }
        }
        Ok(items)
    }

    /// The comment carrying `marker` that this tool may edit: the token's own user's first,
    /// else a bot's. A person's comment that quotes the marker is never one of them.
    fn find_comment(&self, pr: u64, marker: &str, own: Option<&str>) -> Result<Option<Value>, ApiError> {
        let comments =
            self.list_all(&format!("/repos/{}/issues/{pr}/comments", self.repository), "listing comments")?;
        let marked: Vec<Value> =
            comments.into_iter().filter(|c| c["body"].as_str().is_some_and(|b| b.contains(marker))).collect();
        let by_own = marked.iter().find(|c| own.is_some_and(|o| c["user"]["login"].as_str() == Some(o)));
        let by_bot = marked.iter().find(|c| c["user"]["type"].as_str() == Some("Bot"));
        Ok(by_own.or(by_bot).cloned())
    }

    /// Creates the pull request's comment that carries `marker`, or updates it in place.
    pub fn upsert_comment(&self, pr: u64, marker: &str, body: &str) -> Result<Upserted, ApiError> {
        // An Actions token (`ghs_…`) is an installation's: `GET /user` cannot answer for it, and
        // its comments are the bot's.
        let own = if self.token.starts_with("ghs_") { None } else { self.own_login() };
        let existing = || -> Result<Option<String>, ApiError> {
            let Some(comment) = self.find_comment(pr, marker, own.as_deref())? else { return Ok(None) };
            let id = comment["id"].as_u64().ok_or_else(|| anyhow!("a comment without an id"))?;
            Ok(Some(format!("/repos/{}/issues/comments/{id}", self.repository)))
        };
        let create = format!("/repos/{}/issues/{pr}/comments", self.repository);
        let payload = json!({ "body": body });
        self.upsert(existing, &create, (&payload, &payload), ("updating the comment", "creating the comment"))
    }

    /// Opens the alert issue carrying `marker`, or updates the open one (never a second one).
    pub fn upsert_issue(&self, marker: &str, title: &str, body: &str, label: &str) -> Result<Upserted, ApiError> {
        let existing = || -> Result<Option<String>, ApiError> {
            let open = self.list_all(
                &format!("/repos/{}/issues?state=open&labels={}", self.repository, encode_query(label)),
                "listing issues",
            )?;
            let Some(issue) = open
                .iter()
                .find(|i| i["body"].as_str().is_some_and(|b| b.contains(marker)) && i["pull_request"].is_null())
            else {
                return Ok(None);
            };
            let number = issue["number"].as_u64().ok_or_else(|| anyhow!("an issue without a number"))?;
            Ok(Some(format!("/repos/{}/issues/{number}", self.repository)))
        };
        let create = format!("/repos/{}/issues", self.repository);
        // An update leaves the labels alone (a PATCH with labels would replace those added by
        // hand); the issue was found by its label anyway.
        let update = json!({ "title": title, "body": body });
        let payload = json!({ "title": title, "body": body, "labels": [label] });
        self.upsert(existing, &create, (&update, &payload), ("updating the alert issue", "opening the alert issue"))
    }

    /// Updates what `existing` finds (the address to PATCH, with `update`) or POSTs `payload`
    /// to `create`. A
    /// create that fails or answers 5xx may have landed even though the answer did not: the
    /// next attempt looks again before creating again, so that a retry never makes two.
    fn upsert(
        &self,
        existing: impl Fn() -> Result<Option<String>, ApiError>,
        create: &str,
        (update, payload): (&Value, &Value),
        (updating, creating): (&str, &str),
    ) -> Result<Upserted, ApiError> {
        for _ in 0..ATTEMPTS {
            if let Some(path) = existing()? {
                let updated = self.expect(self.send("PATCH", &path, Some(update))?, updating)?;
                return Ok(Upserted {
                    url: self.scrub(updated["html_url"].as_str().unwrap_or_default()),
                    created: false,
                });
            }
            let reply = match self.send("POST", create, Some(payload)) {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("github: {creating} failed ({e:#}); checking whether it landed");
                    std::thread::sleep(self.base_backoff);
                    continue;
                }
            };
            if reply.status >= 500 {
                eprintln!("github: {creating} answered {}; checking whether it landed", reply.status);
                std::thread::sleep(self.base_backoff);
                continue;
            }
            let created = self.expect(reply, creating)?;
            return Ok(Upserted { url: self.scrub(created["html_url"].as_str().unwrap_or_default()), created: true });
        }
        Err(ApiError::Other(anyhow!("{creating} failed {ATTEMPTS} times")))
    }
}

/// The payload of the triggering event, at `GITHUB_EVENT_PATH`; none outside GitHub Actions.
pub fn event_payload() -> Result<Option<Value>> {
    let Ok(path) = std::env::var("GITHUB_EVENT_PATH") else { return Ok(None) };
    let text = std::fs::read_to_string(&path).with_context(|| format!("cannot read the event payload {path}"))?;
    let event = serde_json::from_str(&text).with_context(|| format!("{path} is not JSON"))?;
    Ok(Some(event))
}

/// The line that says what a report is about: the pull request's head commit (from the event
/// payload, not the merge commit the job checked out), a link to the workflow run, and when it
/// was written. A payload that cannot be read leaves out only what it would have given.
pub fn provenance(now: &str) -> String {
    let event = event_payload().ok().flatten().unwrap_or(Value::Null);
    let sha = event["pull_request"]["head"]["sha"]
        .as_str()
        .map(String::from)
        .or_else(|| std::env::var("GITHUB_SHA").ok())
        .filter(|s| !s.is_empty() && s.chars().all(|c| c.is_ascii_hexdigit()));
    let mut parts = Vec::new();
    if let Some(sha) = sha {
        parts.push(format!("commit `{}`", &sha[..sha.len().min(12)]));
    }
    if let (Ok(server), Ok(repo), Ok(run)) =
        (std::env::var("GITHUB_SERVER_URL"), std::env::var("GITHUB_REPOSITORY"), std::env::var("GITHUB_RUN_ID"))
    {
        parts.push(format!("[workflow run]({}/{repo}/actions/runs/{run})", server.trim_end_matches('/')));
    }
    parts.push(format!("updated {now}"));
    parts.join(" · ")
}

/// The pull-request number of the triggering event: `pull_request.number` in the payload at
/// `GITHUB_EVENT_PATH` (right under `pull_request_target` too, where `GITHUB_REF` is the base).
pub fn pull_request_number() -> Result<Option<u64>> {
    Ok(event_payload()?.and_then(|event| event["pull_request"]["number"].as_u64()))
}
