//! Feedback that joins wherever it lands: `serve` replicas on 127.0.0.1 sharing a receipt key
//! file, predictions from one and feedback by receipt to another, and every refusal with its
//! reason — over real sockets, with the real binary.

use std::collections::HashMap;
use std::time::Duration;

use model::data::generate::customers_csv;

use crate::serve::{metric, records, release, without_receipts, Server};

/// The truth of generated customers (`purchased`, the last column), as booleans.
fn truth(csv: &str) -> Vec<bool> {
    csv.lines().skip(1).map(|l| l.rsplit(',').next().unwrap() == "yes").collect()
}

/// Posts `csv`'s rows as JSON records; the predictions answered.
fn predict(server: &Server, csv: &str) -> Vec<serde_json::Value> {
    let body = serde_json::to_vec(&records(csv, true)).unwrap();
    let (status, answer) = server.post("/v1/predict", "application/json", &body);
    assert_eq!(status, 200, "{answer}");
    let answer: serde_json::Value = serde_json::from_str(&answer).unwrap();
    answer["predictions"].as_array().unwrap().clone()
}

/// Posts feedback items; the answer, which must be 200.
fn feedback(server: &Server, items: &[serde_json::Value]) -> serde_json::Value {
    let (status, answer) = server.feedback(items);
    assert_eq!(status, 200, "{answer}");
    serde_json::from_str(&answer).unwrap()
}

/// The reasons of the refusals in a feedback answer, by item.
fn refusals(answer: &serde_json::Value) -> Vec<(u64, String)> {
    answer["refusals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["item"].as_u64().unwrap(), r["reason"].as_str().unwrap().to_string()))
        .collect()
}

/// The series of a scrape, each as its name and labels.
fn series(exposition: &str) -> Vec<(String, HashMap<String, String>)> {
    exposition
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|line| {
            let head = line.rsplit_once(' ').unwrap().0;
            let (name, labels) = head.split_once('{').unwrap_or((head, "}"));
            let labels = labels.strip_suffix('}').unwrap();
            let labels = labels
                .split("\",")
                .filter(|p| !p.is_empty())
                .map(|p| {
                    let (k, v) = p.split_once("=\"").unwrap();
                    (k.to_string(), v.trim_end_matches('"').to_string())
                })
                .collect();
            (name.to_string(), labels)
        })
        .collect()
}

/// Two replicas sharing a key file (two keys: the first signs, both verify) join each other's
/// receipts, all of them, JSON and CSV predictions alike, and count them in their outcome
/// counters at the decision answered; a replica with another key refuses them as foreign, and
/// so does one serving under another model's name; a batch may mix receipts and ids.
#[test]
fn feedback_by_receipt_joins_on_any_replica_holding_the_key() {
    let registry = tempfile::tempdir().unwrap();
    let reg = registry.path().join("registry");
    let _job = release(&reg, 42);
    let keys = registry.path().join("receipt-keys");
    std::fs::write(
        &keys,
        "# rotated on 2026-12-01\nthe-new-receipt-key-of-the-fleet\nthe-old-receipt-key-of-the-fleet\n",
    )
    .unwrap();
    let k = keys.to_str().unwrap();
    let a = Server::start(&reg, &["--poll", "5", "--receipt-key-file", k]);
    // B holds only the old key and the new one from the environment: it verifies both.
    let old_only = registry.path().join("old-key");
    std::fs::write(&old_only, "the-old-receipt-key-of-the-fleet\n").unwrap();
    let b = Server::start_at(
        reg.to_str().unwrap(),
        &["--poll", "5", "--receipt-key-file", old_only.to_str().unwrap()],
        &[("MLGATE_RECEIPT_KEY", "the-new-receipt-key-of-the-fleet")],
    );
    let other_key = Server::start_at(
        reg.to_str().unwrap(),
        &["--poll", "5"],
        &[("MLGATE_RECEIPT_KEY", "another-fleet-s-receipt-key")],
    );
    let other_model = Server::start(&reg, &["--poll", "5", "--receipt-key-file", k, "--model", "churn-b"]);
    for server in [&a, &b, &other_key, &other_model] {
        assert!(!server.log().contains("receipt-key-of-the-fleet"), "a key in the log: {}", server.log());
        assert!(!server.log().contains("no receipt key"), "{}", server.log());
    }

    // 120 predictions from A: 100 as JSON records, 20 as CSV rows.
    let sessions = customers_csv(100, 8);
    let mut answered = predict(&a, &sessions);
    let mut labels = truth(&sessions);
    let rows = customers_csv(20, 9);
    let (status, csv) = a.post("/v1/predict", "text/csv", rows.as_bytes());
    assert_eq!(status, 200, "{csv}");
    without_receipts(&csv);
    for line in csv.lines().skip(1) {
        let fields: Vec<&str> = line.split(',').collect();
        answered.push(serde_json::json!({
            "probability": fields[0].parse::<f64>().unwrap(),
            "prediction": fields[1].parse::<u8>().unwrap(),
            "receipt": fields[2],
        }));
    }
    labels.extend(truth(&rows));
    assert_eq!(answered.len(), 120);
    let items: Vec<serde_json::Value> =
        answered.iter().zip(&labels).map(|(p, y)| serde_json::json!({"receipt": p["receipt"], "label": y})).collect();

    // All of them join on B, which made none of them.
    let answer = feedback(&b, &items);
    assert_eq!((answer["received"].as_u64(), answer["joined"].as_u64()), (Some(120), Some(120)), "{answer}");
    assert_eq!(answer["refused"], 0);
    let metrics = b.get("/metrics").1;
    let mut expected: HashMap<&str, f64> = HashMap::new();
    for (p, &y) in answered.iter().zip(&labels) {
        let outcome = match (p["prediction"] == 1, y) {
            (true, true) => "true_positive",
            (true, false) => "false_positive",
            (false, false) => "true_negative",
            (false, true) => "false_negative",
        };
        *expected.entry(outcome).or_default() += 1.0;
    }
    for outcome in ["true_positive", "false_positive", "true_negative", "false_negative"] {
        let series = format!(
            "mlgate_feedback_outcomes_total{{model=\"customer-purchase\",version=\"v1\",role=\"baseline\",outcome=\"{outcome}\"}}"
        );
        assert_eq!(metric(&metrics, &series), Some(expected.get(outcome).copied().unwrap_or(0.0)), "{metrics}");
    }
    let positives = labels.iter().filter(|&&y| y).count() as f64;
    let count = |label: &str| {
        metric(
            &metrics,
            &format!(
                "mlgate_feedback_probability_count{{model=\"customer-purchase\",version=\"v1\",role=\"baseline\",label=\"{label}\"}}"
            ),
        )
    };
    assert_eq!((count("1"), count("0")), (Some(positives), Some(120.0 - positives)));
    assert_eq!(metric(&metrics, "mlgate_feedback_joined_total{model=\"customer-purchase\"}"), Some(120.0));

    // Counted once per replica: again on B, duplicates; on A, joined once there.
    let answer = feedback(&b, &items[..5]);
    assert_eq!(answer["joined"], 0);
    assert!(refusals(&answer).iter().all(|(_, r)| r == "duplicate"), "{answer}");
    assert_eq!(feedback(&a, &items[..5])["joined"], 5);
    assert_eq!(
        metric(&b.get("/metrics").1, "mlgate_feedback_refused_total{model=\"customer-purchase\",reason=\"duplicate\"}"),
        Some(5.0)
    );

    // Another key: foreign. Another model's server: foreign.
    for server in [&other_key, &other_model] {
        let answer = feedback(server, &items[10..13]);
        assert_eq!(answer["joined"], 0, "{answer}");
        assert_eq!(refusals(&answer), vec![(0, "foreign".into()), (1, "foreign".into()), (2, "foreign".into())]);
    }
    let answer = feedback(&other_model, &items[10..11]);
    assert!(answer["refusals"][0]["detail"].as_str().unwrap().contains("`customer-purchase`"), "{answer}");
    assert!(
        other_model.get("/metrics").1.contains("mlgate_feedback_refused_total{model=\"churn-b\",reason=\"foreign\"} 4"),
        "{}",
        other_model.get("/metrics").1
    );

    // A batch mixing receipts and ids: the ids join through the log of the replica that made
    // them, receipts anywhere.
    let fresh = predict(&a, &customers_csv(4, 10));
    let mixed = vec![
        serde_json::json!({"id": fresh[0]["id"], "label": true}),
        serde_json::json!({"receipt": fresh[1]["receipt"], "label": false}),
        serde_json::json!({"id": fresh[2]["id"], "label": "yes"}),
        serde_json::json!({"receipt": fresh[3]["receipt"], "label": "no"}),
    ];
    let answer = feedback(&a, &mixed);
    assert_eq!((answer["joined"].as_u64(), answer["unmatched"].as_u64()), (Some(4), Some(0)), "{answer}");
    let answer = feedback(&b, &mixed);
    assert_eq!((answer["joined"].as_u64(), answer["unmatched"].as_u64()), (Some(2), Some(2)), "{answer}");
    // Both names at once, or none, cannot be read: nothing is recorded.
    let both = serde_json::json!({"id": fresh[0]["id"], "receipt": fresh[0]["receipt"], "label": true});
    let (status, answer) = b.feedback(&[both]);
    assert_eq!(status, 422, "{answer}");
    assert!(answer.contains("id_and_receipt"), "{answer}");
}

/// A receipt changed by one character is refused as altered, one sent again as a duplicate, one
/// older than --receipt-ttl as expired, a number where a receipt should be as malformed — each
/// counted by reason; the ids the server makes are random 128-bit hex; every series of the
/// scrape names the model.
#[test]
fn altered_replayed_and_expired_receipts_are_refused_and_ids_are_random() {
    let registry = tempfile::tempdir().unwrap();
    let reg = registry.path().join("registry");
    let _job = release(&reg, 42);
    let server = Server::start(&reg, &["--poll", "5"]);
    let short = Server::start(&reg, &["--poll", "5", "--receipt-ttl", "1"]);
    let log = server.log();
    assert!(log.contains("warning: no receipt key") && log.contains("only on this replica"), "{log}");
    let sessions = customers_csv(30, 12);
    let first = predict(&server, &sessions);
    let second = predict(&server, &sessions);
    let labels = truth(&sessions);

    // Ids: 32 hexadecimal digits, no two alike, consecutive ones sharing no prefix.
    let ids: Vec<&str> = first.iter().chain(&second).map(|p| p["id"].as_str().unwrap()).collect();
    for id in &ids {
        assert!(id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()), "{id}");
    }
    for pair in ids.windows(2) {
        let common = pair[0].bytes().zip(pair[1].bytes()).take_while(|(x, y)| x == y).count();
        assert!(common < 8, "{pair:?}");
    }
    let mut unique = ids.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), ids.len());

    let item = |p: &serde_json::Value, y: bool| serde_json::json!({"receipt": p["receipt"], "label": y});
    // One character changed, in the middle of the claims: altered.
    let receipt = first[0]["receipt"].as_str().unwrap().to_string();
    let at = receipt.len() / 2;
    let swapped = if receipt.as_bytes()[at] == b'x' { "y" } else { "x" };
    let altered = format!("{}{swapped}{}", &receipt[..at], &receipt[at + 1..]);
    let answer = feedback(
        &server,
        &[
            serde_json::json!({"receipt": altered, "label": true}),
            item(&first[1], labels[1]),
            item(&first[1], labels[1]),
            serde_json::json!({"receipt": 42, "label": true}),
        ],
    );
    assert_eq!(answer["joined"], 1, "{answer}");
    assert_eq!(
        refusals(&answer),
        vec![(0, "altered".into()), (2, "duplicate".into()), (3, "malformed".into())],
        "{answer}"
    );
    // Past the time to live (a second; receipts carry whole seconds): expired.
    let made = predict(&short, &sessions);
    std::thread::sleep(Duration::from_millis(2100));
    let answer = feedback(&short, &[item(&made[0], labels[0])]);
    assert_eq!(refusals(&answer), vec![(0, "expired".into())], "{answer}");
    assert!(answer["refusals"][0]["detail"].as_str().unwrap().contains("--receipt-ttl"), "{answer}");

    let metrics = server.get("/metrics").1;
    assert_eq!(
        metric(
            &short.get("/metrics").1,
            "mlgate_feedback_refused_total{model=\"customer-purchase\",reason=\"expired\"}"
        ),
        Some(1.0)
    );
    for (reason, count) in
        [("altered", 1.0), ("duplicate", 1.0), ("malformed", 1.0), ("expired", 0.0), ("foreign", 0.0)]
    {
        let series = format!("mlgate_feedback_refused_total{{model=\"customer-purchase\",reason=\"{reason}\"}}");
        assert_eq!(metric(&metrics, &series), Some(count), "{metrics}");
    }
    // Every series names the model: parsed from the exposition, not searched for.
    let all = series(&metrics);
    assert!(all.len() > 100, "{metrics}");
    for (name, labels) in &all {
        // The process's own series keep the names every Prometheus client gives them.
        assert!(name.starts_with("mlgate_") || name.starts_with("process_"), "{name}");
        assert_eq!(labels.get("model").map(String::as_str), Some("customer-purchase"), "{name} {labels:?}");
    }
}
