//! `/openapi.json` against the server it describes: schemathesis (PyPI, installed by `.ci/run`
//! into `.ci/schemathesis`) generates requests from the description of a live `serve`, with
//! the prediction, feedback and administration tokens configured, and checks every answer
//! against it: no 5xx, statuses, content types, headers and bodies as described, data the
//! description refuses refused and data it allows accepted.

use std::process::Command;

use super::{exchange_to, metric, served_with, Server};
use crate::support::{root, text};

/// The one token the test server takes from every kind of caller.
const TOKEN: &str = "schemathesis-token-for-tests";

fn token_env() -> Vec<(&'static str, &'static str)> {
    vec![("MLGATE_PREDICTION_TOKEN", TOKEN), ("MLGATE_FEEDBACK_TOKEN", TOKEN), ("MLGATE_ADMIN_TOKEN", TOKEN)]
}

/// The description a server gives, read with the token.
fn description(server: &Server) -> serde_json::Value {
    let auth = format!("Bearer {TOKEN}");
    let (status, _, body) =
        exchange_to((server.host, server.port).into(), "GET", "/openapi.json", "", &[("Authorization", &auth)], b"")
            .unwrap();
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

/// The description is the served model's: a property per column with its type, levels, range
/// and missing rule; the ignored column allowed; every route with the token it takes here.
#[test]
fn the_openapi_description_is_generated_from_the_served_schema() {
    let (_released, server) = served_with(&[], &token_env());
    let (status, _) = server.get("/openapi.json");
    assert_eq!(status, 401, "the description is the model's: it takes a prediction token");
    let doc = description(&server);
    assert_eq!(doc["openapi"], "3.1.0");
    let record = &doc["components"]["schemas"]["Record"];
    let age = &record["properties"]["age"];
    assert_eq!(age["anyOf"][0], serde_json::json!({"type": "integer", "minimum": 18, "maximum": 110}), "{age}");
    assert_eq!(age["anyOf"][1]["type"], "string", "{age}");
    let region = &record["properties"]["region"]["anyOf"][0]["enum"];
    assert_eq!(region, &serde_json::json!(["north", "south", "east", "west", "central"]));
    assert_eq!(record["properties"]["spending"]["anyOf"][0], serde_json::json!({"type": "number", "minimum": 0.0}));
    assert!(record["properties"]["customer_id"]["description"].as_str().unwrap().contains("not read"), "{record}");
    assert!(record["properties"]["purchased"]["description"].as_str().unwrap().contains("not read"), "{record}");
    assert_eq!(record["additionalProperties"], false);
    let required: Vec<&str> = record["required"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    assert!(required.contains(&"age") && !required.contains(&"customer_id"), "{required:?}");
    let paths = doc["paths"].as_object().unwrap();
    for path in ["/v1/predict", "/v1/feedback", "/v1/model", "/openapi.json", "/healthz", "/readyz", "/metrics"] {
        assert!(paths.contains_key(path), "{path} is not described");
    }
    assert_eq!(doc["paths"]["/v1/predict"]["post"]["security"], serde_json::json!([{"bearer": []}]));
    assert_eq!(doc["paths"]["/healthz"]["get"]["security"], serde_json::json!([]));
    let unauthorized = &doc["components"]["responses"]["Unauthorized"];
    assert_eq!(unauthorized["headers"]["WWW-Authenticate"]["required"], true);
    assert!(doc["paths"]["/v1/feedback"]["post"]["responses"]["401"].is_object());

    // The protocols' routes, each with its security, its error shape and the served name (and
    // version) as the only value of its path parameters.
    for path in [
        "/invocations",
        "/ping",
        "/health",
        "/version",
        "/v1/models/{name}",
        "/v1/models/{name}:predict",
        "/v2",
        "/v2/health/live",
        "/v2/health/ready",
        "/v2/models/{name}",
        "/v2/models/{name}/ready",
        "/v2/models/{name}/infer",
        "/v2/models/{name}/versions/{version}",
        "/v2/models/{name}/versions/{version}/ready",
        "/v2/models/{name}/versions/{version}/infer",
    ] {
        assert!(paths.contains_key(path), "{path} is not described");
    }
    let bearer = serde_json::json!([{"bearer": []}]);
    assert_eq!(doc["paths"]["/invocations"]["post"]["security"], bearer);
    assert_eq!(doc["paths"]["/v2/models/{name}/infer"]["post"]["security"], bearer);
    assert_eq!(doc["paths"]["/v2/models/{name}"]["get"]["security"], bearer);
    assert_eq!(doc["paths"]["/ping"]["get"]["security"], serde_json::json!([]));
    assert_eq!(doc["paths"]["/v2/health/ready"]["get"]["security"], serde_json::json!([]));
    let responses = &doc["paths"]["/invocations"]["post"]["responses"];
    assert_eq!(responses["400"]["$ref"], "#/components/responses/MlflowBadRequest");
    assert_eq!(responses["401"]["$ref"], "#/components/responses/MlflowUnauthorized");
    assert!(responses["422"].is_null(), "MLflow answers a broken value 400: {responses}");
    let responses = &doc["paths"]["/v2/models/{name}/infer"]["post"]["responses"];
    assert_eq!(responses["422"]["$ref"], "#/components/responses/KserveUnprocessable");
    let schemas = &doc["components"]["schemas"];
    assert_eq!(schemas["MlflowError"]["required"], serde_json::json!(["error_code", "message"]));
    assert_eq!(schemas["KserveError"]["required"], serde_json::json!(["error"]));
    let parameters = &doc["paths"]["/v2/models/{name}/versions/{version}/infer"]["parameters"];
    assert_eq!(parameters[0]["schema"]["enum"], serde_json::json!(["customer-purchase"]), "{parameters}");
    assert_eq!(parameters[1]["schema"]["enum"], serde_json::json!(["v1"]), "{parameters}");
    // A row is the model's columns in order, each value as a record's; the MLflow request takes
    // exactly one input field.
    let columns = doc["components"]["schemas"]["V2ModelMetadata"]["properties"]["inputs"]["const"].clone();
    let row = &schemas["Row"]["prefixItems"];
    assert_eq!(row.as_array().unwrap().len(), columns.as_array().unwrap().len(), "{row}");
    assert_eq!(row[0], record["properties"]["age"], "{row}");
    assert_eq!(schemas["MlflowRequest"]["oneOf"].as_array().unwrap().len(), 4);
    // An infer request: a tensor per column, typed by the JSON values it takes, its datatypes
    // those that read them; the age as an integer tensor within its range.
    let tensors = &schemas["InferRequest"]["properties"]["inputs"]["anyOf"][0]["prefixItems"];
    let age = tensors[0]["anyOf"].as_array().unwrap();
    let integer = age.iter().find(|t| t["properties"]["datatype"]["enum"][0] == "INT64").unwrap();
    assert_eq!(integer["properties"]["name"]["const"], "age");
    assert_eq!(
        integer["properties"]["data"]["prefixItems"][0],
        serde_json::json!({"type": "integer", "minimum": 18, "maximum": 110}),
        "{integer}"
    );
    let region = tensors[1]["anyOf"].as_array().unwrap();
    assert!(region.iter().all(|t| t["properties"]["datatype"]["enum"] == serde_json::json!(["BYTES"])), "{region:?}");
    // A CSV body's pattern names the schema's columns, the ignored one included.
    let csv = &doc["paths"]["/invocations"]["post"]["requestBody"]["content"]["text/csv"]["schema"]["pattern"];
    assert!(csv.as_str().unwrap().starts_with("^customer_id,age,region,"), "{csv}");
}

/// schemathesis finds no 5xx and no answer that the description does not describe.
#[test]
fn schemathesis_finds_the_server_as_its_openapi_description_says() {
    let schemathesis = root().join(".ci/schemathesis/bin/schemathesis");
    if !schemathesis.is_file() {
        eprintln!("skipped: no {} (.ci/run installs PyPI's schemathesis there)", schemathesis.display());
        return;
    }
    let (_released, server) = served_with(&[], &token_env());
    let _ = description(&server);
    let url = format!("http://{}:{}", server.host, server.port);
    let dir = tempfile::tempdir().unwrap();
    // Every check. A request refused for its size (413: more records than --max-records) is
    // refused too.
    let config = dir.path().join("schemathesis.toml");
    std::fs::write(
        &config,
        "[checks]\n\
         enabled = true\n\
         negative_data_rejection.expected-statuses = [400, 401, 403, 404, 405, 406, 409, 413, 415, 422, 428, 429]\n",
    )
    .unwrap();
    let out = Command::new(&schemathesis)
        .arg("--config-file")
        .arg(&config)
        .args(["run", &format!("{url}/openapi.json"), "--url", &url])
        .args(["--header", &format!("Authorization: Bearer {TOKEN}")])
        .args(["--max-examples", "40", "--seed", "20250101"])
        .args(["--generation-deterministic", "--no-color", "--output-truncate", "true"])
        .current_dir(dir.path())
        .env("SCHEMATHESIS_HOOKS", "")
        .output()
        .unwrap();
    let (o, e) = text(&out);
    assert!(out.status.success(), "schemathesis:\n{o}{e}\nserver log:\n{}", server.log());
    // The records it generated as the description allows them were scored, and their answers
    // checked against it: not all refused.
    let auth = format!("Bearer {TOKEN}");
    let (_, _, metrics) =
        exchange_to((server.host, server.port).into(), "GET", "/metrics", "", &[("Authorization", &auth)], b"")
            .unwrap();
    for (route, least) in [
        ("/v1/predict", 20.0),
        ("/v1/feedback", 10.0),
        ("/invocations", 20.0),
        ("/v1/models/{name}:predict", 20.0),
        ("/v2/models/{name}/infer", 50.0),
        ("/v2/models/{name}", 10.0),
    ] {
        let series =
            format!("mlgate_http_requests_total{{model=\"customer-purchase\",route=\"{route}\",status=\"200\"}}");
        let answered = metric(&metrics, &series).unwrap_or(0.0);
        assert!(answered >= least, "{route}: {answered} answers 200 to schemathesis\n{o}");
    }
}
