//! A small stateful stand-in for the GitHub REST API on 127.0.0.1: issue comments and issues,
//! paginated with `Link` headers as the real API does, tokens of several kinds, an optional
//! path prefix (GitHub Enterprise's `/api/v3`), and failures injected on demand.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

use serde_json::{json, Value};

/// What a token may do.
#[derive(Debug, Clone, PartialEq)]
pub enum Token {
    /// A user token: `/user` answers with this login, writes succeed.
    User(String),
    /// An Actions installation token: `/user` is forbidden, writes succeed as the bot.
    Installation,
    /// A read-only token (pull requests from forks): writes are forbidden.
    ReadOnly,
}

/// A failure to serve instead of the normal answer, once.
#[derive(Debug, Clone)]
pub struct Failure {
    /// Method it applies to.
    pub method: &'static str,
    /// Substring of the path it applies to.
    pub path_contains: &'static str,
    /// Status to answer.
    pub status: u16,
    /// Extra headers.
    pub headers: Vec<(String, String)>,
    /// Body to answer.
    pub body: String,
    /// Carry out the request before answering with the failure (an answer lost in transit).
    pub perform: bool,
}

#[derive(Debug, Default)]
pub struct State {
    pub comments: Vec<Value>,
    pub issues: Vec<Value>,
    pub requests: Vec<(String, String)>,
    pub headers: Vec<(String, String)>,
    pub failures: VecDeque<Failure>,
    pub tokens: Vec<(String, Token)>,
    next_id: u64,
}

pub struct FakeGitHub {
    /// The API base a client should use (with the prefix).
    pub url: String,
    pub state: Arc<Mutex<State>>,
}

const REPO: &str = "acme/shop";

impl FakeGitHub {
    /// Starts the server; `prefix` is "" for github.com or "/api/v3" for GitHub Enterprise.
    pub fn start(prefix: &str) -> FakeGitHub {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}{prefix}", listener.local_addr().unwrap());
        let state = Arc::new(Mutex::new(State {
            tokens: vec![
                ("user-token".into(), Token::User("mlgate-bot".into())),
                ("installation-token".into(), Token::Installation),
                // An Actions GITHUB_TOKEN as GitHub shapes it.
                ("ghs_actions0123456789".into(), Token::Installation),
                ("read-only-token".into(), Token::ReadOnly),
            ],
            next_id: 1000,
            ..State::default()
        }));
        let shared = state.clone();
        let prefix = prefix.to_string();
        let base_for_links = base.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let state = shared.clone();
                let prefix = prefix.clone();
                let base = base_for_links.clone();
                std::thread::spawn(move || serve(stream, &state, &prefix, &base));
            }
        });
        FakeGitHub { url: base, state }
    }

    /// Adds `n` comments by other users to pull request `pr`.
    pub fn add_foreign_comments(&self, pr: u64, n: usize) {
        let mut s = self.state.lock().unwrap();
        for i in 0..n {
            let id = s.next_id();
            let c = comment(id, pr, &format!("LGTM #{i}"), &format!("reviewer{}", i % 7), "User");
            s.comments.push(c);
        }
    }

    /// Adds a comment with `body` by `login`.
    pub fn add_comment(&self, pr: u64, body: &str, login: &str, kind: &str) -> u64 {
        let mut s = self.state.lock().unwrap();
        let id = s.next_id();
        let c = comment(id, pr, body, login, kind);
        s.comments.push(c);
        id
    }

    pub fn fail_next(&self, failure: Failure) {
        self.state.lock().unwrap().failures.push_back(failure);
    }

    /// Comments whose body contains `needle`.
    pub fn comments_containing(&self, needle: &str) -> Vec<Value> {
        self.state
            .lock()
            .unwrap()
            .comments
            .iter()
            .filter(|c| c["body"].as_str().unwrap().contains(needle))
            .cloned()
            .collect()
    }

    /// The issues, pull requests left out (the API lists both under /issues).
    pub fn issues(&self) -> Vec<Value> {
        self.state.lock().unwrap().issues.iter().filter(|i| i["pull_request"].is_null()).cloned().collect()
    }

    /// Adds a label to issue `number`, as a person does by hand.
    pub fn add_label(&self, number: u64, label: &str) {
        let mut s = self.state.lock().unwrap();
        let issue = s.issues.iter_mut().find(|i| i["number"] == number).expect("the issue exists");
        issue["labels"].as_array_mut().unwrap().push(json!({ "name": label }));
    }

    /// Adds an open pull request, which `GET /issues` lists among the issues (as GitHub does),
    /// carrying `body` and `label`.
    pub fn add_pull_request(&self, body: &str, label: &str) {
        let mut s = self.state.lock().unwrap();
        let number = s.issues.len() as u64 + 1;
        let mut pr = issue(number, "a pull request", body, vec![json!({ "name": label })]);
        let url = format!("https://api.github.test/repos/{REPO}/pulls/{number}");
        pr["pull_request"] = json!({
            "url": url,
            "html_url": format!("https://github.test/{REPO}/pull/{number}"),
            "diff_url": format!("https://github.test/{REPO}/pull/{number}.diff"),
            "patch_url": format!("https://github.test/{REPO}/pull/{number}.patch"),
        });
        s.issues.push(pr);
    }

    /// Requests received, as "METHOD path".
    /// The `Accept` and `User-Agent` of every request, in order.
    pub fn headers(&self) -> Vec<(String, String)> {
        self.state.lock().unwrap().headers.clone()
    }

    pub fn requests(&self) -> Vec<String> {
        self.state.lock().unwrap().requests.iter().map(|(m, p)| format!("{m} {p}")).collect()
    }
}

impl State {
    fn next_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }
}

/// A user as the API describes one (the fields its schema requires).
fn user(login: &str, kind: &str) -> Value {
    let api = format!("https://api.github.test/users/{login}");
    json!({
        "login": login,
        "id": login.len() as u64 * 1000 + 7,
        "node_id": format!("U_{login}"),
        "avatar_url": format!("https://avatars.github.test/{login}"),
        "gravatar_id": "",
        "url": api,
        "html_url": format!("https://github.test/{login}"),
        "followers_url": format!("{api}/followers"),
        "following_url": format!("{api}/following{{/other_user}}"),
        "gists_url": format!("{api}/gists{{/gist_id}}"),
        "starred_url": format!("{api}/starred{{/owner}}{{/repo}}"),
        "subscriptions_url": format!("{api}/subscriptions"),
        "organizations_url": format!("{api}/orgs"),
        "repos_url": format!("{api}/repos"),
        "events_url": format!("{api}/events{{/privacy}}"),
        "received_events_url": format!("{api}/received_events"),
        "type": kind,
        "site_admin": false,
    })
}

/// `GET /user` of a user token: the public user's fields.
fn public_user(login: &str) -> Value {
    let mut u = user(login, "User");
    for (k, v) in [
        ("name", json!(null)),
        ("company", json!(null)),
        ("blog", json!("")),
        ("location", json!(null)),
        ("email", json!(null)),
        ("hireable", json!(null)),
        ("bio", json!(null)),
        ("public_repos", json!(0)),
        ("public_gists", json!(0)),
        ("followers", json!(0)),
        ("following", json!(0)),
        ("created_at", json!("2026-01-01T00:00:00Z")),
        ("updated_at", json!("2026-01-01T00:00:00Z")),
    ] {
        u[k] = v;
    }
    u
}

fn comment(id: u64, pr: u64, body: &str, login: &str, kind: &str) -> Value {
    json!({
        "id": id,
        "node_id": format!("IC_{id}"),
        "issue_number": pr,
        "url": format!("https://api.github.test/repos/{REPO}/issues/comments/{id}"),
        "issue_url": format!("https://api.github.test/repos/{REPO}/issues/{pr}"),
        "body": body,
        "user": user(login, kind),
        "author_association": if kind == "Bot" { "NONE" } else { "CONTRIBUTOR" },
        "created_at": "2026-12-01T00:00:00Z",
        "updated_at": "2026-12-01T00:00:00Z",
        "html_url": format!("https://github.test/{REPO}/pull/{pr}#issuecomment-{id}"),
    })
}

fn issue(number: u64, title: &str, body: &str, labels: Vec<Value>) -> Value {
    let api = format!("https://api.github.test/repos/{REPO}/issues/{number}");
    json!({
        "repository_url": format!("https://api.github.test/repos/{REPO}"),
        "labels_url": format!("{api}/labels{{/name}}"),
        "comments_url": format!("{api}/comments"),
        "events_url": format!("{api}/events"),
        "assignee": null,
        "milestone": null,
        "id": 50_000 + number,
        "node_id": format!("I_{number}"),
        "number": number,
        "title": title,
        "body": body,
        "state": "open",
        "labels": labels,
        "user": user("github-actions[bot]", "Bot"),
        "locked": false,
        "comments": 0,
        "created_at": "2026-12-01T00:00:00Z",
        "updated_at": "2026-12-01T00:00:00Z",
        "closed_at": null,
        "author_association": "NONE",
        "url": format!("https://api.github.test/repos/{REPO}/issues/{number}"),
        "html_url": format!("https://github.test/{REPO}/issues/{number}"),
    })
}

/// Percent-decoding of a query string's key or value (`+` is a space).
fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                match std::str::from_utf8(&bytes[i + 1..i + 3]).ok().and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

struct Request {
    method: String,
    path: String,
    query: Vec<(String, String)>,
    token: Option<String>,
    body: Value,
    /// The `Accept` and `User-Agent` headers, as sent.
    accept: String,
    user_agent: String,
}

fn read_request(stream: &TcpStream) -> Option<Request> {
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_string();
    let target = parts.next()?.to_string();
    let mut length = 0usize;
    let mut token = None;
    let (mut accept, mut user_agent) = (String::new(), String::new());
    loop {
        let mut h = String::new();
        reader.read_line(&mut h).ok()?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        let (name, value) = h.split_once(':')?;
        match name.trim().to_ascii_lowercase().as_str() {
            "content-length" => length = value.trim().parse().ok()?,
            "accept" => accept = value.trim().to_string(),
            "user-agent" => user_agent = value.trim().to_string(),
            "authorization" => {
                let v = value.trim();
                token = v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("token ")).map(str::to_string);
            }
            _ => {}
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (
            p.to_string(),
            q.split('&').filter_map(|kv| kv.split_once('=')).map(|(k, v)| (decode(k), decode(v))).collect(),
        ),
        None => (target.clone(), Vec::new()),
    };
    let body = if body.is_empty() { Value::Null } else { serde_json::from_slice(&body).unwrap_or(Value::Null) };
    Some(Request { method, path, query, token, body, accept, user_agent })
}

fn respond(mut stream: TcpStream, status: u16, headers: &[(String, String)], body: &str) {
    let mut head = format!(
        "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    let _ = stream.write_all(head.as_bytes());
    let _ = stream.write_all(body.as_bytes());
    let _ = stream.flush();
}

fn serve(stream: TcpStream, state: &Mutex<State>, prefix: &str, base: &str) {
    let Some(req) = read_request(&stream) else { return };
    let mut s = state.lock().unwrap();
    s.requests.push((req.method.clone(), format!("{}{}", req.path, if req.query.is_empty() { "" } else { "?" })));
    s.headers.push((req.accept.clone(), req.user_agent.clone()));
    let token = req.token.as_ref().and_then(|t| s.tokens.iter().find(|(k, _)| k == t).map(|(_, v)| v.clone()));
    let Some(token) = token else {
        drop(s);
        return respond(stream, 401, &[], r#"{"message":"Bad credentials"}"#);
    };
    let Some(path) = req.path.strip_prefix(prefix) else {
        drop(s);
        return respond(stream, 404, &[], r#"{"message":"Not Found"}"#);
    };
    let failure = s
        .failures
        .iter()
        .position(|f| f.method == req.method && path.contains(f.path_contains))
        .and_then(|i| s.failures.remove(i));
    if let Some(f) = &failure {
        if !f.perform {
            drop(s);
            return respond(stream, f.status, &f.headers, &f.body);
        }
    }
    let (status, headers, body) = route(&mut s, &req, path, &token, base);
    drop(s);
    match failure {
        Some(f) => respond(stream, f.status, &f.headers, &f.body),
        None => respond(stream, status, &headers, &body),
    }
}

fn page(items: Vec<Value>, req: &Request, base: &str, path: &str) -> (u16, Vec<(String, String)>, String) {
    let q = |k: &str| req.query.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let per_page: usize = q("per_page").and_then(|v| v.parse().ok()).unwrap_or(30).min(100);
    let page: usize = q("page").and_then(|v| v.parse().ok()).unwrap_or(1).max(1);
    let pages = items.len().div_ceil(per_page).max(1);
    let slice: Vec<Value> = items.into_iter().skip((page - 1) * per_page).take(per_page).collect();
    let mut headers = Vec::new();
    let rest: String = req
        .query
        .iter()
        .filter(|(k, _)| k != "page" && k != "per_page")
        .map(|(k, v)| format!("&{k}={}", encode(v)))
        .collect();
    if page < pages {
        headers.push((
            "Link".to_string(),
            format!(
                "<{base}{path}?per_page={per_page}&page={}{rest}>; rel=\"next\", <{base}{path}?per_page={per_page}&page={pages}{rest}>; rel=\"last\"",
                page + 1
            ),
        ));
    }
    (200, headers, Value::Array(slice).to_string())
}

fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn author(token: &Token) -> (&str, &str) {
    match token {
        Token::User(login) => (login.as_str(), "User"),
        _ => ("github-actions[bot]", "Bot"),
    }
}

fn forbidden() -> (u16, Vec<(String, String)>, String) {
    (403, Vec::new(), r#"{"message":"Resource not accessible by integration","documentation_url":"https://docs.github.com/rest","status":"403"}"#.to_string())
}

fn route(s: &mut State, req: &Request, path: &str, token: &Token, base: &str) -> (u16, Vec<(String, String)>, String) {
    let repo = format!("/repos/{REPO}");
    let segments: Vec<&str> = path.strip_prefix(&repo).unwrap_or("").split('/').filter(|p| !p.is_empty()).collect();
    let writes = req.method != "GET";
    if writes && *token == Token::ReadOnly {
        return forbidden();
    }
    // GitHub refuses a comment or issue body over 65,536 bytes.
    if req.body["body"].as_str().is_some_and(|b| b.len() > 65_536) {
        let error = json!({
            "message": "Validation Failed",
            "errors": [{"resource": "IssueComment", "field": "body", "code": "custom", "message": "body is too long (maximum is 65536 characters)"}],
            "documentation_url": "https://docs.github.com/rest",
        });
        return (422, Vec::new(), error.to_string());
    }
    match (req.method.as_str(), path, segments.as_slice()) {
        ("GET", "/user", _) => match token {
            Token::User(login) => (200, Vec::new(), public_user(login).to_string()),
            _ => forbidden(),
        },
        ("GET", _, ["issues", n, "comments"]) => {
            let n: u64 = n.parse().unwrap_or(0);
            let items = s.comments.iter().filter(|c| c["issue_number"] == n).cloned().collect();
            page(items, req, base, path)
        }
        ("POST", _, ["issues", n, "comments"]) => {
            let n: u64 = n.parse().unwrap_or(0);
            let id = s.next_id();
            let (login, kind) = author(token);
            let c = comment(id, n, req.body["body"].as_str().unwrap_or(""), login, kind);
            s.comments.push(c.clone());
            (201, Vec::new(), c.to_string())
        }
        ("PATCH", _, ["issues", "comments", id]) => {
            let id: u64 = id.parse().unwrap_or(0);
            match s.comments.iter_mut().find(|c| c["id"] == id) {
                Some(c) => {
                    c["body"] = req.body["body"].clone();
                    (200, Vec::new(), c.to_string())
                }
                None => (404, Vec::new(), r#"{"message":"Not Found"}"#.into()),
            }
        }
        ("GET", _, ["issues"]) => {
            let state = req.query.iter().find(|(k, _)| k == "state").map_or("open", |(_, v)| v.as_str()).to_string();
            let label = req.query.iter().find(|(k, _)| k == "labels").map(|(_, v)| v.clone());
            let items = s
                .issues
                .iter()
                .filter(|i| i["state"] == state.as_str())
                .filter(|i| {
                    label
                        .as_ref()
                        .is_none_or(|l| i["labels"].as_array().unwrap().iter().any(|x| x["name"] == l.as_str()))
                })
                .cloned()
                .collect();
            page(items, req, base, path)
        }
        ("POST", _, ["issues"]) => {
            let number = s.issues.len() as u64 + 1;
            let labels: Vec<Value> = req.body["labels"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .map(|l| json!({ "name": l }))
                .collect();
            let Some(title) = req.body["title"].as_str() else {
                return (
                    422,
                    Vec::new(),
                    json!({
                        "message": "Validation Failed",
                        "errors": [{"resource": "Issue", "field": "title", "code": "missing_field"}],
                        "documentation_url": "https://docs.github.com/rest/issues/issues#create-an-issue",
                    })
                    .to_string(),
                );
            };
            let issue = issue(number, title, req.body["body"].as_str().unwrap_or(""), labels);
            s.issues.push(issue.clone());
            (201, Vec::new(), issue.to_string())
        }
        ("PATCH", _, ["issues", n]) => {
            let n: u64 = n.parse().unwrap_or(0);
            match s.issues.iter_mut().find(|i| i["number"] == n) {
                Some(i) => {
                    for key in ["title", "body"] {
                        if !req.body[key].is_null() {
                            i[key] = req.body[key].clone();
                        }
                    }
                    // Labels given replace the issue's labels, as the API does.
                    if let Some(labels) = req.body["labels"].as_array() {
                        i["labels"] = Value::Array(labels.iter().map(|l| json!({ "name": l })).collect());
                    }
                    (200, Vec::new(), i.to_string())
                }
                None => (404, Vec::new(), r#"{"message":"Not Found"}"#.into()),
            }
        }
        _ => (404, Vec::new(), r#"{"message":"Not Found"}"#.into()),
    }
}
