//! The protocols platform teams' clients already speak, against the real `serve` over real
//! sockets: MLflow's scoring protocol, KServe V1 and the Open Inference Protocol (V2), each
//! giving the probabilities `/v1/predict` gives for the same rows, bit for bit; 405 with
//! `Allow` on every route; one problem body for every error of mlgate's own routes, and each
//! protocol's own error shape on its routes. Then the real clients from PyPI
//! (`tritonclient[http]`, MLflow's `ScoringServerClient`), from the environment `.ci/run` makes.

use model::data::generate::customers_csv;
use serde_json::{json, Value};

use crate::serve::{exchange_raw, records, served, Server};
use crate::support::root;

/// The model's name: `pipeline.toml`'s.
const NAME: &str = "customer-purchase";

fn send(
    server: &Server,
    method: &str,
    path: &str,
    content_type: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, String, Vec<u8>) {
    exchange_raw(server.addr(), method, path, content_type, headers, body).unwrap()
}

/// POSTs JSON; the status and the answer parsed (`Null` when it is not JSON).
fn post_json(server: &Server, path: &str, body: &Value) -> (u16, Value) {
    let (status, _, answer) = send(server, "POST", path, "application/json", &[], &serde_json::to_vec(body).unwrap());
    (status, serde_json::from_slice(&answer).unwrap_or(Value::Null))
}

/// A header's value in an answer's head.
fn header_of<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|l| l.split_once(':').filter(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.trim()))
}

/// The bits of each probability in a JSON list.
fn bits(values: &Value) -> Vec<u64> {
    values.as_array().unwrap().iter().map(|v| v.as_f64().unwrap().to_bits()).collect()
}

/// `/v1/predict`'s answer for the rows of `csv`: each row's probability bits and decision.
fn reference(server: &Server, csv: &str) -> (Vec<u64>, Vec<u64>) {
    let (status, answer) = post_json(server, "/v1/predict", &records(csv, true));
    assert_eq!(status, 200, "{answer}");
    let predictions = answer["predictions"].as_array().unwrap();
    let p = predictions.iter().map(|p| p["probability"].as_f64().unwrap().to_bits()).collect();
    let d = predictions.iter().map(|p| p["prediction"].as_u64().unwrap()).collect();
    (p, d)
}

/// The rows of `csv` as `(header, rows of JSON values)`: numbers where they parse, `yes`/`no`
/// as booleans, else strings.
fn typed_rows(csv: &str) -> (Vec<String>, Vec<Vec<Value>>) {
    let mut lines = csv.lines();
    let header: Vec<String> = lines.next().unwrap().split(',').map(String::from).collect();
    let rows = lines
        .map(|line| {
            line.split(',')
                .map(|v| match (v.parse::<i64>(), v.parse::<f64>(), v) {
                    (Ok(n), _, _) => json!(n),
                    (_, Ok(x), _) => json!(x),
                    (_, _, "yes") => json!(true),
                    (_, _, "no") => json!(false),
                    _ => json!(v),
                })
                .collect()
        })
        .collect();
    (header, rows)
}

#[test]
fn every_protocol_gets_the_probabilities_v1_predict_gives_bit_for_bit() {
    let (_released, server) = served(&["--poll", "5"]);
    let csv = customers_csv(40, 99);
    let (probabilities, decisions) = reference(&server, &csv);
    let (header, rows) = typed_rows(&csv);
    let record_list: Vec<Value> =
        rows.iter().map(|r| Value::Object(header.iter().cloned().zip(r.iter().cloned()).collect())).collect();

    // The CSV route, read straight into the compiled plan: the same bits.
    let (status, _, answer) = send(&server, "POST", "/v1/predict", "text/csv", &[], csv.as_bytes());
    assert_eq!(status, 200);
    let csv_bits: Vec<u64> = String::from_utf8(answer)
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| l.split(',').next().unwrap().parse::<f64>().unwrap().to_bits())
        .collect();
    assert_eq!(csv_bits, probabilities);

    // MLflow: every input field and CSV; the class by default, [1 - p, p] when asked.
    let split =
        json!({"dataframe_split": {"index": (0..rows.len()).collect::<Vec<_>>(), "columns": header, "data": rows}});
    let (status, answer) = post_json(&server, "/invocations", &split);
    assert_eq!(status, 200, "{answer}");
    let classes: Vec<u64> = answer["predictions"].as_array().unwrap().iter().map(|c| c.as_u64().unwrap()).collect();
    assert_eq!(classes, decisions);
    assert_eq!(answer["receipts"].as_array().unwrap().len(), rows.len());
    let mut proba = split.clone();
    proba["params"] = json!({"predict_method": "predict_proba"});
    let (_, answer) = post_json(&server, "/invocations", &proba);
    let pairs = answer["predictions"].as_array().unwrap();
    assert_eq!(pairs.iter().map(|p| p[1].as_f64().unwrap().to_bits()).collect::<Vec<_>>(), probabilities);
    assert!(pairs.iter().all(|p| p[0].as_f64().unwrap() == 1.0 - p[1].as_f64().unwrap()));
    // A frame whose integer columns are floats (as pandas holds them beside a NaN) sends 48.0
    // for 48: the same number, the same probabilities.
    let floats: Vec<Vec<Value>> = rows
        .iter()
        .map(|r| r.iter().map(|v| if v.is_i64() { json!(v.as_f64().unwrap()) } else { v.clone() }).collect())
        .collect();
    assert!(serde_json::to_string(&floats).unwrap().contains(".0,"), "{floats:?}");
    let mut float_frame = proba.clone();
    float_frame["dataframe_split"]["data"] = json!(floats);
    let (status, answer) = post_json(&server, "/invocations", &float_frame);
    assert_eq!(status, 200, "{answer}");
    let pairs = answer["predictions"].as_array().unwrap();
    assert_eq!(pairs.iter().map(|p| p[1].as_f64().unwrap().to_bits()).collect::<Vec<_>>(), probabilities);
    let columns: Value = header
        .iter()
        .enumerate()
        .map(|(i, h)| (h.clone(), rows.iter().map(|r| r[i].clone()).collect::<Value>()))
        .collect::<serde_json::Map<_, _>>()
        .into();
    let model_columns: Vec<String> = {
        let (_, _, info) = send(&server, "GET", "/v1/model", "", &[], b"");
        serde_json::from_slice::<Value>(&info).unwrap()["columns"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_str().unwrap().to_string())
            .collect()
    };
    let ordered_rows: Vec<Value> = rows
        .iter()
        .map(|r| model_columns.iter().map(|c| r[header.iter().position(|h| h == c).unwrap()].clone()).collect())
        .collect();
    let mlgate = json!({"predict_method": "mlgate"});
    for body in [
        json!({"dataframe_records": record_list, "params": mlgate}),
        json!({"instances": record_list, "params": mlgate}),
        json!({"instances": ordered_rows, "params": mlgate}),
        json!({"inputs": columns, "params": mlgate}),
        json!({"inputs": record_list, "params": mlgate}),
    ] {
        let (status, answer) = post_json(&server, "/invocations", &body);
        assert_eq!(status, 200, "{answer}");
        let got: Vec<u64> = answer["predictions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["probability"].as_f64().unwrap().to_bits())
            .collect();
        assert_eq!(got, probabilities, "{}", &body.to_string()[..80]);
    }
    let (status, _, answer) = send(&server, "POST", "/invocations", "text/csv; charset=utf-8", &[], csv.as_bytes());
    assert_eq!(status, 200);
    let answer: Value = serde_json::from_slice(&answer).unwrap();
    let classes: Vec<u64> = answer["predictions"].as_array().unwrap().iter().map(|c| c.as_u64().unwrap()).collect();
    assert_eq!(classes, decisions);

    // KServe V1: records and rows in the model's column order.
    for instances in [json!(record_list), json!(ordered_rows)] {
        let (status, answer) =
            post_json(&server, &format!("/v1/models/{NAME}:predict"), &json!({ "instances": instances }));
        assert_eq!(status, 200, "{answer}");
        let predictions = answer["predictions"].as_array().unwrap();
        assert_eq!(
            predictions.iter().map(|p| p["probability"].as_f64().unwrap().to_bits()).collect::<Vec<_>>(),
            probabilities
        );
        assert!(predictions.iter().all(|p| p["receipt"].as_str().unwrap().split('.').count() == 3));
    }
    let (status, _, ready) = send(&server, "GET", &format!("/v1/models/{NAME}"), "", &[], b"");
    assert_eq!((status, serde_json::from_slice::<Value>(&ready).unwrap()), (200, json!({"name": NAME, "ready": true})));

    // V2: the metadata names each column with its datatype; one tensor per column, typed as it
    // says, and a single row-major BYTES tensor, answer with the request's id.
    let (status, _, metadata) = send(&server, "GET", &format!("/v2/models/{NAME}"), "", &[], b"");
    assert_eq!(status, 200);
    let metadata: Value = serde_json::from_slice(&metadata).unwrap();
    let inputs = metadata["inputs"].as_array().unwrap();
    let names: Vec<&str> = inputs.iter().map(|i| i["name"].as_str().unwrap()).collect();
    assert_eq!(names, model_columns);
    let kind =
        |name: &str| inputs.iter().find(|i| i["name"] == name).unwrap()["datatype"].as_str().unwrap().to_string();
    assert_eq!(
        (kind("age"), kind("spending"), kind("newsletter"), kind("region")),
        ("INT64".into(), "FP64".into(), "BOOL".into(), "BYTES".into())
    );
    assert_eq!(
        metadata["outputs"],
        json!([{"name": "probability", "datatype": "FP64", "shape": [-1]}, {"name": "prediction", "datatype": "INT64", "shape": [-1]}])
    );
    let tensors: Vec<Value> = model_columns
        .iter()
        .map(|c| {
            let at = header.iter().position(|h| h == c).unwrap();
            let data: Vec<Value> = rows.iter().map(|r| r[at].clone()).collect();
            json!({"name": c, "datatype": kind(c), "shape": [rows.len(), 1], "data": data})
        })
        .collect();
    let infer = format!("/v2/models/{NAME}/infer");
    let (status, answer) = post_json(&server, &infer, &json!({"id": "request-7", "inputs": tensors}));
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["id"], "request-7");
    assert_eq!(answer["model_name"], NAME);
    assert_eq!(answer["outputs"][0]["name"], "probability");
    assert_eq!(answer["outputs"][0]["datatype"], "FP64");
    assert_eq!(bits(&answer["outputs"][0]["data"]), probabilities);
    assert_eq!(
        answer["outputs"][1]["data"].as_array().unwrap().iter().map(|d| d.as_u64().unwrap()).collect::<Vec<_>>(),
        decisions
    );
    let flat: Vec<Value> = ordered_rows
        .iter()
        .flat_map(|r| {
            r.as_array()
                .unwrap()
                .iter()
                .map(|v| {
                    json!(v.as_str().map(String::from).unwrap_or_else(|| match v {
                        Value::Bool(true) => "yes".into(),
                        Value::Bool(false) => "no".into(),
                        other => other.to_string(),
                    }))
                })
                .collect::<Vec<_>>()
        })
        .collect();
    let row_major = json!({
        "inputs": [{"name": "rows", "datatype": "BYTES", "shape": [rows.len(), model_columns.len()], "data": flat}],
        "outputs": [{"name": "probability"}, {"name": "receipt"}, {"name": "id"}],
    });
    let (status, answer) = post_json(&server, &infer, &row_major);
    assert_eq!(status, 200, "{answer}");
    assert!(answer.get("id").is_none());
    assert_eq!(bits(&answer["outputs"][0]["data"]), probabilities);
    assert_eq!(answer["outputs"][1]["name"], "receipt");
    assert_eq!(answer["outputs"][2]["data"].as_array().unwrap().len(), rows.len());

    // The binary tensor data extension, both ways: the row-major tensor as BYTES elements (a
    // 4-byte length, then the text), the probabilities back as little-endian FP64.
    let mut data = Vec::new();
    for v in &flat {
        let text = v.as_str().unwrap();
        data.extend_from_slice(&(text.len() as u32).to_le_bytes());
        data.extend_from_slice(text.as_bytes());
    }
    let head = serde_json::to_vec(&json!({
        "id": "binary",
        "inputs": [{"name": "rows", "datatype": "BYTES", "shape": [rows.len(), model_columns.len()], "parameters": {"binary_data_size": data.len()}}],
        "parameters": {"binary_data_output": true},
    }))
    .unwrap();
    let length = head.len().to_string();
    let body = [head, data].concat();
    let (status, answer_head, answer) = send(
        &server,
        "POST",
        &infer,
        "application/octet-stream",
        &[("Inference-Header-Content-Length", &length)],
        &body,
    );
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&answer));
    let json_length: usize = header_of(&answer_head, "inference-header-content-length").unwrap().parse().unwrap();
    let description: Value = serde_json::from_slice(&answer[..json_length]).unwrap();
    assert_eq!(description["id"], "binary");
    assert_eq!(description["outputs"][0]["parameters"]["binary_data_size"], rows.len() * 8);
    let got: Vec<u64> = answer[json_length..json_length + rows.len() * 8]
        .chunks(8)
        .map(|c| f64::from_le_bytes(c.try_into().unwrap()).to_bits())
        .collect();
    assert_eq!(got, probabilities);

    // Every route is counted under its own label.
    let (_, _, metrics) = send(&server, "GET", "/metrics", "", &[], b"");
    let metrics = String::from_utf8(metrics).unwrap();
    for label in ["/invocations", "/v1/models/{name}:predict", "/v2/models/{name}/infer", "/v2/models/{name}"] {
        assert!(metrics.contains(&format!("route=\"{label}\",status=\"200\"")), "{label}: {metrics}");
    }
}

#[test]
fn errors_are_problems_405_has_allow_and_protocols_keep_their_own_shapes() {
    let token = "prediction-token-for-tests";
    let registry = tempfile::tempdir().unwrap();
    let reg = registry.path().join("registry");
    let _job = crate::serve::release(&reg, 42);
    let server = Server::start_at(reg.to_str().unwrap(), &["--poll", "5"], &[("MLGATE_PREDICTION_TOKEN", token)]);
    let auth = format!("Bearer {token}");
    let with = [("Authorization", auth.as_str())];

    // 405 names the methods a route takes, on every route.
    for (method, path, allow) in [
        ("GET", "/v1/predict".to_string(), "POST"),
        ("PUT", "/v1/feedback".to_string(), "POST"),
        ("POST", "/v1/model".to_string(), "GET, HEAD"),
        ("POST", "/healthz".to_string(), "GET, HEAD"),
        ("DELETE", "/readyz".to_string(), "GET, HEAD"),
        ("POST", "/metrics".to_string(), "GET, HEAD"),
        ("GET", "/invocations".to_string(), "POST"),
        ("POST", "/ping".to_string(), "GET, HEAD"),
        ("POST", "/health".to_string(), "GET, HEAD"),
        ("POST", "/version".to_string(), "GET, HEAD"),
        ("GET", format!("/v1/models/{NAME}:predict"), "POST"),
        ("POST", format!("/v1/models/{NAME}"), "GET, HEAD"),
        ("POST", "/v2".to_string(), "GET, HEAD"),
        ("POST", "/v2/health/live".to_string(), "GET, HEAD"),
        ("POST", "/v2/health/ready".to_string(), "GET, HEAD"),
        ("POST", format!("/v2/models/{NAME}"), "GET, HEAD"),
        ("POST", format!("/v2/models/{NAME}/ready"), "GET, HEAD"),
        ("GET", format!("/v2/models/{NAME}/infer"), "POST"),
    ] {
        let (status, head, _) = send(&server, method, &path, "", &with, b"");
        assert_eq!(status, 405, "{method} {path}");
        assert_eq!(header_of(&head, "allow"), Some(allow), "{method} {path}: {head}");
    }

    // mlgate's own routes: RFC 9457 problems, the 422 of JSON and of CSV in one shape.
    let (status, head, body) = send(&server, "GET", "/nowhere", "", &[], b"");
    assert_eq!((status, header_of(&head, "content-type")), (404, Some("application/problem+json")));
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        (body["type"].as_str(), body["title"].as_str(), body["status"].as_u64()),
        (Some("about:blank"), Some("Not Found"), Some(404))
    );
    assert!(body["detail"].as_str().unwrap().contains("/nowhere"));
    let (status, head, _) = send(&server, "POST", "/v1/predict", "application/json", &[], b"{}");
    assert_eq!((status, header_of(&head, "content-type")), (401, Some("application/problem+json")));
    let csv = customers_csv(6, 5);
    // The third data row's region is no declared level: line 4, record 2.
    let broken_csv: String = csv
        .lines()
        .enumerate()
        .map(|(i, line)| {
            let mut fields: Vec<&str> = line.split(',').collect();
            if i == 3 {
                fields[2] = "atlantis";
            }
            fields.join(",") + "\n"
        })
        .collect();
    assert!(csv.lines().next().unwrap().split(',').nth(2) == Some("region"));
    let broken_line = 4;
    let (status, head, csv_answer) = send(&server, "POST", "/v1/predict", "text/csv", &with, broken_csv.as_bytes());
    assert_eq!((status, header_of(&head, "content-type")), (422, Some("application/problem+json")));
    let csv_answer: Value = serde_json::from_slice(&csv_answer).unwrap();
    let json_body = serde_json::to_vec(&records(&broken_csv, false)).unwrap();
    let (status, _, json_answer) = send(&server, "POST", "/v1/predict", "application/json", &with, &json_body);
    assert_eq!(status, 422);
    let json_answer: Value = serde_json::from_slice(&json_answer).unwrap();
    for answer in [&csv_answer, &json_answer] {
        assert_eq!(answer["type"], "urn:mlgate:problem:invalid-values");
        assert_eq!(answer["status"], 422);
        assert_eq!(answer["errors"][0]["record"], broken_line - 2);
        assert_eq!(answer["errors"][0]["column"], "region");
        assert_eq!(answer["errors"][0]["rule"], "undeclared_level");
        assert_eq!(answer["counts"], json!([{"column": "region", "rule": "undeclared_level", "count": 1}]));
    }
    assert_eq!(csv_answer["errors"][0]["line"], broken_line, "a CSV's error keeps its line");
    assert!(json_answer["errors"][0].get("line").is_none());

    // MLflow's routes: its error shape; 415 in plain text, as MLflow answers it.
    let (status, _, body) = send(&server, "POST", "/invocations", "application/json", &[], b"{}");
    assert_eq!(status, 401);
    assert_eq!(serde_json::from_slice::<Value>(&body).unwrap()["error_code"], "UNAUTHENTICATED");
    let (status, _, body) = send(&server, "POST", "/invocations", "application/json", &with, br#"{"records": []}"#);
    assert_eq!(status, 400);
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["error_code"], "BAD_REQUEST");
    assert!(body["message"].as_str().unwrap().contains("exactly one of the input fields"), "{body}");
    let (status, _, body) = send(
        &server,
        "POST",
        "/invocations",
        "application/json",
        &with,
        &serde_json::to_vec(&json!({"dataframe_records": records(&broken_csv, false)["records"]})).unwrap(),
    );
    assert_eq!(status, 400);
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        (body["error_code"].as_str(), body["errors"][0]["rule"].as_str()),
        (Some("BAD_REQUEST"), Some("undeclared_level"))
    );
    let (status, head, _) = send(&server, "POST", "/invocations", "text/plain", &with, b"x");
    assert_eq!((status, header_of(&head, "content-type")), (415, Some("text/plain; charset=utf-8")));
    let (status, _, body) = send(&server, "GET", "/ping", "", &[], b"");
    assert_eq!((status, body), (200, b"\n".to_vec()), "the probes of MLflow are open, as its own");

    // KServe's routes: `{"error"}`; a model of another name is not found.
    let (status, _, body) = send(&server, "GET", "/v2/models/other/ready", "", &[], b"");
    assert_eq!(status, 404);
    assert!(serde_json::from_slice::<Value>(&body).unwrap()["error"]
        .as_str()
        .unwrap()
        .contains("serves customer-purchase"));
    let (status, _, _) =
        send(&server, "POST", "/v1/models/other:predict", "application/json", &with, br#"{"instances": []}"#);
    assert_eq!(status, 404);
    let (status, _, body) = send(&server, "POST", &format!("/v2/models/{NAME}/infer"), "application/json", &[], b"{}");
    assert_eq!(status, 401);
    assert!(serde_json::from_slice::<Value>(&body).unwrap()["error"].is_string());
    let (status, _, body) = send(
        &server,
        "POST",
        &format!("/v2/models/{NAME}/infer"),
        "application/json",
        &with,
        br#"{"inputs": [{"name": "age", "datatype": "FP64", "shape": [1], "data": ["old"]}]}"#,
    );
    assert_eq!(status, 400);
    assert!(serde_json::from_slice::<Value>(&body).unwrap()["error"].as_str().unwrap().contains("FP64"));
    for path in ["/v2/health/live", "/v2/health/ready", "/v2"] {
        assert_eq!(send(&server, "GET", path, "", &[], b"").0, 200, "{path}");
    }
    assert_eq!(send(&server, "GET", &format!("/v2/models/{NAME}/versions/v9/ready"), "", &[], b"").0, 404);
    assert_eq!(send(&server, "GET", &format!("/v2/models/{NAME}/versions/v1/ready"), "", &[], b"").0, 200);
    assert_eq!(send(&server, "GET", &format!("/v2/models/{NAME}"), "", &[], b"").0, 401);
}

/// The Python of the environment `.ci/run` makes for the protocols' clients.
fn clients_python() -> Option<std::path::PathBuf> {
    let python = root().join(".ci/clients/bin/python");
    python.exists().then_some(python)
}

#[test]
fn the_real_clients_of_mlflow_and_triton_get_the_same_probabilities() {
    let Some(python) = clients_python() else {
        eprintln!("skipped: no .ci/clients (`.ci/run` makes it: tritonclient[http] and mlflow-skinny from PyPI)");
        return;
    };
    let (_released, server) = served(&["--poll", "5"]);
    let csv = customers_csv(25, 17);
    let (probabilities, decisions) = reference(&server, &csv);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("rows.csv"), &csv).unwrap();
    let expected: Vec<String> = probabilities.iter().map(|b| format!("{:016x}", b)).collect();
    std::fs::write(
        dir.path().join("expected.json"),
        json!({"probability_bits": expected, "decisions": decisions}).to_string(),
    )
    .unwrap();
    let out = std::process::Command::new(python)
        .arg(root().join("tests/clients/protocols.py"))
        .arg(format!("127.0.0.1:{}", server.addr().port()))
        .arg(NAME)
        .arg(dir.path().join("rows.csv"))
        .arg(dir.path().join("expected.json"))
        .output()
        .unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{stdout}\n{stderr}");
    for check in [
        "mlflow ScoringServerClient: 25 classes",
        "mlflow dataframe_split predict_proba: 25 bit for bit",
        "tritonclient binary: 25 bit for bit",
        "tritonclient json: 25 bit for bit",
    ] {
        assert!(stdout.contains(check), "{check}: {stdout}\n{stderr}");
    }
}
