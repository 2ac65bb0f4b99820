//! The fake GitHub API (tests/fake_github.rs) checked against GitHub's own OpenAPI description
//! (the npm package `@octokit/openapi`, which `.ci/run` installs): every answer the project's
//! code reads must have what the official schema of that operation and status requires, so
//! that the fake cannot drift from the real API.

use std::io::{Read, Write};
use std::path::PathBuf;

use serde_json::Value;

use crate::fake_github::FakeGitHub;
use crate::support::root;

/// The OpenAPI description, when installed.
fn description() -> Option<Value> {
    let path = std::env::var_os("MLGATE_GITHUB_OPENAPI")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join(".ci/openapi/node_modules/@octokit/openapi/generated/api.github.com.json"));
    let Ok(bytes) = std::fs::read(&path) else {
        eprintln!("skipped: no {} (.ci/run installs npm's @octokit/openapi)", path.display());
        return None;
    };
    Some(serde_json::from_slice(&bytes).expect("the OpenAPI description is JSON"))
}

/// Checks `value` against an OpenAPI 3 schema: `$ref`, `type` (with `nullable`), `required`,
/// `properties`, `items`, `enum`, `allOf`, `oneOf` / `anyOf`. Formats and
/// `additionalProperties` are not checked. Problems are pushed with their JSON path.
fn check(doc: &Value, schema: &Value, value: &Value, at: &str, problems: &mut Vec<String>) {
    if let Some(reference) = schema["$ref"].as_str() {
        let target = reference
            .trim_start_matches("#/")
            .split('/')
            .fold(doc, |node, part| &node[part.replace("~1", "/").replace("~0", "~")]);
        return check(doc, target, value, at, problems);
    }
    if value.is_null() && schema["nullable"] == true {
        return;
    }
    if let Some(all) = schema["allOf"].as_array() {
        for s in all {
            check(doc, s, value, at, problems);
        }
    }
    for key in ["oneOf", "anyOf"] {
        if let Some(alternatives) = schema[key].as_array() {
            let fits = alternatives.iter().any(|s| {
                let mut p = Vec::new();
                check(doc, s, value, at, &mut p);
                p.is_empty()
            });
            if !fits {
                problems.push(format!("{at}: fits none of the {key} alternatives: {value}"));
            }
        }
    }
    if let Some(kind) = schema["type"].as_str() {
        let fits = match kind {
            "object" => value.is_object(),
            "array" => value.is_array(),
            "string" => value.is_string(),
            "integer" => value.is_i64() || value.is_u64(),
            "number" => value.is_number(),
            "boolean" => value.is_boolean(),
            "null" => value.is_null(),
            _ => true,
        };
        if !fits {
            problems.push(format!("{at}: expected {kind}, found {value}"));
            return;
        }
    }
    if let Some(allowed) = schema["enum"].as_array() {
        if !allowed.contains(value) {
            problems.push(format!("{at}: {value} is not one of {allowed:?}"));
        }
    }
    if let Some(object) = value.as_object() {
        for name in schema["required"].as_array().into_iter().flatten().filter_map(Value::as_str) {
            if !object.contains_key(name) {
                problems.push(format!("{at}: missing required `{name}`"));
            }
        }
        if let Some(properties) = schema["properties"].as_object() {
            for (name, property) in properties {
                if let Some(v) = object.get(name) {
                    check(doc, property, v, &format!("{at}.{name}"), problems);
                }
            }
        }
    }
    if let (Some(items), Some(array)) = (schema.get("items"), value.as_array()) {
        for (i, v) in array.iter().enumerate() {
            check(doc, items, v, &format!("{at}[{i}]"), problems);
        }
    }
}

/// One request to the fake: status and JSON body.
fn call(api: &FakeGitHub, token: &str, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let url = api.url.trim_start_matches("http://");
    let (host, prefix) = url.split_once('/').map_or((url, String::new()), |(h, p)| (h, format!("/{p}")));
    let mut stream = std::net::TcpStream::connect(host).unwrap();
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    write!(
        stream,
        "{method} {prefix}{path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\nAccept: application/vnd.github+json\r\nUser-Agent: mlgate-test\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap();
    let status = head[9..12].parse().unwrap();
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

/// The schema of an operation's answer with `status`.
fn response_schema<'a>(doc: &'a Value, path: &str, method: &str, status: u16) -> &'a Value {
    let response = &doc["paths"][path][method]["responses"][status.to_string()];
    assert!(!response.is_null(), "{method} {path} documents no {status} answer");
    let response = match response["$ref"].as_str() {
        Some(r) => r.trim_start_matches("#/").split('/').fold(doc, |node, part| &node[part]),
        None => response,
    };
    &response["content"]["application/json"]["schema"]
}

#[test]
fn the_fake_answers_carry_what_githubs_openapi_description_requires() {
    let Some(doc) = description() else { return };
    let api = FakeGitHub::start("");
    api.add_foreign_comments(7, 3);
    api.add_pull_request("a pull request", "mlgate-alert");
    let token = "installation-token";
    let comment = "/repos/{owner}/{repo}/issues/{issue_number}/comments";
    let issues = "/repos/{owner}/{repo}/issues";
    let mut checked = Vec::new();
    let mut problems = Vec::new();
    let mut expect = |template: &str, method: &str, status: u16, (got, body): (u16, Value)| {
        assert_eq!(got, status, "{method} {template}: {body}");
        let schema = response_schema(&doc, template, method, status);
        check(&doc, schema, &body, &format!("{method} {template} {status}"), &mut problems);
        checked.push(format!("{method} {template}"));
        body
    };
    let created = expect(
        comment,
        "post",
        201,
        call(&api, token, "POST", "/repos/acme/shop/issues/7/comments", Some(serde_json::json!({"body": "hi"}))),
    );
    let id = created["id"].as_u64().unwrap();
    expect(comment, "get", 200, call(&api, token, "GET", "/repos/acme/shop/issues/7/comments?per_page=100", None));
    expect(
        "/repos/{owner}/{repo}/issues/comments/{comment_id}",
        "patch",
        200,
        call(
            &api,
            token,
            "PATCH",
            &format!("/repos/acme/shop/issues/comments/{id}"),
            Some(serde_json::json!({"body": "x"})),
        ),
    );
    let issue = expect(
        issues,
        "post",
        201,
        call(
            &api,
            token,
            "POST",
            "/repos/acme/shop/issues",
            Some(serde_json::json!({"title": "t", "body": "b", "labels": ["mlgate-alert"]})),
        ),
    );
    let listed = expect(
        issues,
        "get",
        200,
        call(&api, token, "GET", "/repos/acme/shop/issues?state=open&labels=mlgate-alert&per_page=100", None),
    );
    assert_eq!(listed.as_array().unwrap().len(), 2, "the pull request is listed too: {listed}");
    expect(
        "/repos/{owner}/{repo}/issues/{issue_number}",
        "patch",
        200,
        call(
            &api,
            token,
            "PATCH",
            &format!("/repos/acme/shop/issues/{}", issue["number"]),
            Some(serde_json::json!({"body": "b2"})),
        ),
    );
    expect("/user", "get", 200, call(&api, "user-token", "GET", "/user", None));
    // A refused write and a validation failure have their documented shapes too.
    expect(
        issues,
        "post",
        422,
        call(&api, token, "POST", "/repos/acme/shop/issues", Some(serde_json::json!({"body": "no title"}))),
    );
    expect(
        comment,
        "post",
        403,
        call(
            &api,
            "read-only-token",
            "POST",
            "/repos/acme/shop/issues/7/comments",
            Some(serde_json::json!({"body": "x"})),
        ),
    );
    assert!(problems.is_empty(), "the fake drifted from GitHub's API:\n{}", problems.join("\n"));
    assert_eq!(checked.len(), 9);
}

#[test]
fn the_checker_finds_a_missing_field_and_a_wrong_type() {
    let Some(doc) = description() else { return };
    let schema = serde_json::json!({"$ref": "#/components/schemas/issue-comment"});
    let mut problems = Vec::new();
    check(&doc, &schema, &serde_json::json!({"id": "seven", "body": "b"}), "comment", &mut problems);
    assert!(problems.iter().any(|p| p.contains("missing required `node_id`")), "{problems:?}");
    assert!(problems.iter().any(|p| p.contains("comment.id: expected integer")), "{problems:?}");
}
