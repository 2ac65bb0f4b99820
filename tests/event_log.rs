//! Feedback back into training: a real `serve --event-log` (on a folder, and on SeaweedFS's S3)
//! takes predictions and feedback over HTTP and writes them as Parquet files; after SIGTERM,
//! `mlgate feedback export` joins them into training data (CSV and Parquet) that `build` and
//! `monitor --data` read. pyarrow (`.ci/pyarrow`) reads the files with the columns they should
//! have. A tiny buffer under load drops events, counted, without failing a request; a log that
//! cannot be written fails no request either; a server killed with SIGKILL while it writes leaves
//! only whole files (and temporaries that export skips).

use std::path::Path;
use std::time::Duration;

use model::data::generate::customers_csv;
use serde_json::Value;

use crate::parquet::{pyarrow, pyarrow_python};
use crate::registry_git::SeaweedFs;
use crate::serve::{metric, records, release, Server};
use crate::support::{mlgate, text};

/// Every file under `dir`, as paths relative to it.
fn files(dir: &Path) -> Vec<String> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        let Ok(entries) = std::fs::read_dir(dir) else { return };
        for entry in entries {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(root, &path, out);
            } else {
                out.push(path.strip_prefix(root).unwrap().display().to_string());
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// What the tests send: `n` sessions as JSON records, scored in requests of 250; then feedback
/// for the first `by_receipt` predictions by receipt and the next `by_id` by id, the labels the
/// data's own (half as the schema's words, half as booleans). The sessions' rows (without the
/// ignored `customer_id`) of the predictions that got feedback, and of all.
fn predict_and_give_feedback(server: &Server, n: usize, by_receipt: usize, by_id: usize) -> Vec<Vec<String>> {
    let sessions = customers_csv(n, 17);
    let lines: Vec<&str> = sessions.lines().collect();
    let header = lines[0];
    let mut predictions: Vec<Value> = Vec::new();
    for chunk in lines[1..].chunks(250) {
        let csv = format!("{header}\n{}\n", chunk.join("\n"));
        let body = serde_json::to_vec(&records(&csv, true)).unwrap();
        let (status, answer) = server.post("/v1/predict", "application/json", &body);
        assert_eq!(status, 200, "{answer}");
        let answer: Value = serde_json::from_str(&answer).unwrap();
        predictions.extend(answer["predictions"].as_array().unwrap().iter().cloned());
    }
    assert_eq!(predictions.len(), n);
    let truth: Vec<&str> = lines[1..].iter().map(|l| l.rsplit(',').next().unwrap()).collect();
    let mut items = Vec::new();
    for (i, (p, y)) in predictions.iter().zip(&truth).enumerate().take(by_receipt + by_id) {
        let label = if i % 2 == 0 { serde_json::json!(y) } else { serde_json::json!(*y == "yes") };
        if i < by_receipt {
            items.push(serde_json::json!({"receipt": p["receipt"], "label": label}));
        } else {
            items.push(serde_json::json!({"id": p["id"], "label": label}));
        }
    }
    for batch in items.chunks(500) {
        let (status, answer) = server.feedback(batch);
        assert_eq!(status, 200, "{answer}");
        let answer: Value = serde_json::from_str(&answer).unwrap();
        assert_eq!(answer["joined"], batch.len(), "{answer}");
    }
    lines[1..].iter().take(by_receipt + by_id).map(|l| normalised(l.split(',').skip(1))).collect()
}

/// A row's fields with numbers written one way (`3.50` and `3.5` alike), for comparison.
fn normalised<'a>(fields: impl Iterator<Item = &'a str>) -> Vec<String> {
    fields.map(|f| f.parse::<f64>().map_or_else(|_| f.to_string(), |x| format!("{x}"))).collect()
}

/// The rows of an exported CSV without the first column (`customer_id`, ignored and so empty),
/// sorted.
fn exported_rows(csv: &str) -> Vec<Vec<String>> {
    let mut lines = csv.lines();
    let header = lines.next().unwrap();
    assert!(header.starts_with("customer_id,age,region,"), "{header}");
    assert!(header.ends_with(",purchased"), "{header}");
    let mut rows: Vec<Vec<String>> = lines
        .map(|l| {
            let (id, rest) = l.split_once(',').unwrap();
            assert_eq!(id, "", "the ignored column is not logged: {l}");
            normalised(rest.split(','))
        })
        .collect();
    rows.sort();
    rows
}

/// `mlgate feedback export` in `dir` with `args`: its standard output, asserted to succeed.
fn export(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> String {
    let mut all = vec!["feedback", "export"];
    all.extend_from_slice(args);
    let out = mlgate(dir, &all, env);
    let (o, e) = text(&out);
    assert_eq!(out.status.code(), Some(0), "feedback export {args:?}\n{o}{e}");
    o
}

/// The model part of an artifact (everything but where its data came from).
fn model_part(dir: &Path) -> Value {
    let text = std::fs::read_to_string(dir.join("model.json")).unwrap();
    let mut artifact: Value = serde_json::from_str(&text).unwrap();
    artifact["artifact"].as_object_mut().unwrap().remove("lineage");
    artifact["artifact"].clone()
}

fn ok(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> String {
    let out = mlgate(dir, args, env);
    let (o, e) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{args:?}\n{o}{e}");
    o
}

const READ_SCHEMA: &str = "import sys, pyarrow.parquet as p\n\
for t in [p.read_table(f) for f in sys.argv[1:]]: print(t.num_rows, ';'.join(f'{x.name}:{x.type}' for x in t.schema))";

#[test]
fn feedback_sent_to_serve_comes_back_out_of_export_as_rows_build_accepts() {
    let registry = tempfile::tempdir().unwrap();
    let reg = registry.path().join("registry");
    let job = release(&reg, 42);
    let log = registry.path().join("events");
    // Batches of 300: the requests of 250 fill some; SIGTERM writes the rest.
    let args = ["--event-log", log.to_str().unwrap(), "--event-log-batch", "300", "--event-log-interval", "3600"];
    let server = Server::start(&reg, &args);
    let expected = predict_and_give_feedback(&server, 1500, 900, 300);
    let metrics = server.get("/metrics").1;
    assert_eq!(
        metric(
            &metrics,
            "mlgate_event_log_dropped_total{model=\"customer-purchase\",kind=\"prediction\",reason=\"full\"}"
        ),
        Some(0.0),
        "{metrics}"
    );
    assert_eq!(server.terminate_timed().0, Some(0));

    let written = files(&log);
    assert!(!written.is_empty());
    for f in &written {
        assert!(f.starts_with("model=customer-purchase/version=v1/hour="), "{f}");
        let name = f.rsplit('/').next().unwrap();
        assert!(name.ends_with(".parquet") && !name.starts_with('.'), "a temporary left: {f}");
    }
    assert!(written.iter().any(|f| f.contains("/predictions-")) && written.iter().any(|f| f.contains("/feedback-")));

    // Export to CSV: the labelled predictions, each the row that was sent, labelled as the data.
    let d = job.path();
    let since = "1h";
    let o = export(d, &["--event-log", log.to_str().unwrap(), "--since", since, "--out", "train.csv"], &[]);
    assert!(
        o.contains("wrote 1200 labelled row(s) to train.csv (900 by receipt, 300 by id) from 1500 prediction(s)"),
        "{o}"
    );
    assert!(o.contains("300 unlabelled prediction(s) left out"), "{o}");
    let mut expected = expected;
    expected.sort();
    assert_eq!(exported_rows(&std::fs::read_to_string(d.join("train.csv")).unwrap()), expected);
    // And to Parquet; filtered by model and version, the same rows.
    let o = export(
        d,
        &[
            "--event-log",
            log.to_str().unwrap(),
            "--since",
            since,
            "--model",
            "customer-purchase",
            "--version",
            "v1",
            "--out",
            "train.parquet",
        ],
        &[],
    );
    assert!(o.contains("wrote 1200 labelled row(s) to train.parquet"), "{o}");
    // Another version's filter finds nothing, and says so.
    let out = mlgate(
        d,
        &[
            "feedback",
            "export",
            "--event-log",
            log.to_str().unwrap(),
            "--since",
            since,
            "--version",
            "v9",
            "--out",
            "none.csv",
        ],
        &[],
    );
    let (o, e) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{o}{e}");
    assert!(e.contains("holds no predictions") && e.contains("version v9"), "{e}");
    assert!(!d.join("none.csv").exists());

    // `build` takes either export, and both give the same model; `monitor --data` reads them.
    ok(d, &["build", "--data", "train.csv", "--out", "from-csv"], &[]);
    ok(d, &["build", "--data", "train.parquet", "--out", "from-parquet"], &[]);
    assert!(
        model_part(&d.join("from-csv")) == model_part(&d.join("from-parquet")),
        "the Parquet export built another model"
    );
    for data in ["train.csv", "train.parquet"] {
        let out =
            mlgate(d, &["monitor", "--data", data, "--registry", reg.to_str().unwrap(), "--out", "monitored"], &[]);
        let (o, e) = text(&out);
        assert!(matches!(out.status.code(), Some(0 | 1)), "monitor --data {data}\n{o}{e}");
        assert!(d.join("monitored/monitor.json").is_file(), "{o}{e}");
    }

    // pyarrow reads the log's files and the export with their columns and types.
    let Some(python) = pyarrow_python() else { return };
    let predictions: Vec<String> =
        written.iter().filter(|f| f.contains("/predictions-")).map(|f| log.join(f).display().to_string()).collect();
    let feedback: Vec<String> =
        written.iter().filter(|f| f.contains("/feedback-")).map(|f| log.join(f).display().to_string()).collect();
    let mut args: Vec<&str> = predictions.iter().map(String::as_str).collect();
    let read = pyarrow(&python, READ_SCHEMA, &args);
    let rows: usize = read.lines().map(|l| l.split(' ').next().unwrap().parse::<usize>().unwrap()).sum();
    assert_eq!(rows, 1500, "{read}");
    let first = read.lines().next().unwrap();
    for column in [
        "mlgate_time:timestamp[ms, tz=UTC]",
        "mlgate_id:string",
        "mlgate_receipt:string",
        "mlgate_model:string",
        "mlgate_version:string",
        "mlgate_role:string",
        "mlgate_probability:double",
        "mlgate_decision:bool",
        "age:int64",
        "region:string",
        "time_on_site_min:double",
    ] {
        assert!(first.contains(column), "{column} not in {first}");
    }
    assert!(!first.contains("purchased") && !first.contains("customer_id"), "{first}");
    args = feedback.iter().map(String::as_str).collect();
    let read = pyarrow(&python, READ_SCHEMA, &args);
    let rows: usize = read.lines().map(|l| l.split(' ').next().unwrap().parse::<usize>().unwrap()).sum();
    assert_eq!(rows, 1200, "{read}");
    assert!(read.contains("mlgate_label:bool") && read.contains("mlgate_id:string"), "{read}");
    let out = d.join("train.parquet").display().to_string();
    let read = pyarrow(&python, READ_SCHEMA, &[&out]);
    assert!(read.starts_with("1200 customer_id:string;age:int64;region:string;"), "{read}");
    assert!(read.trim_end().ends_with("purchased:string"), "{read}");
}

#[test]
fn an_event_log_on_s3_compatible_storage() {
    let Some(seaweed) = SeaweedFs::start("events") else { return };
    let owned = seaweed.env();
    let env: Vec<(&str, &str)> = owned.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let registry = tempfile::tempdir().unwrap();
    let reg = registry.path().join("registry");
    let job = release(&reg, 42);
    let url = "s3://events/team/purchase";
    let args = ["--event-log", url, "--event-log-batch", "200", "--event-log-interval", "3600"];
    let server = Server::start_at(reg.to_str().unwrap(), &args, &env);
    let mut expected = predict_and_give_feedback(&server, 1000, 600, 200);
    assert_eq!(server.terminate_timed().0, Some(0));
    let d = job.path();
    let o = export(d, &["--event-log", url, "--since", "1h", "--out", "train.csv"], &env);
    assert!(
        o.contains("wrote 800 labelled row(s) to train.csv (600 by receipt, 200 by id) from 1000 prediction(s)"),
        "{o}"
    );
    expected.sort();
    assert_eq!(exported_rows(&std::fs::read_to_string(d.join("train.csv")).unwrap()), expected);
    export(d, &["--event-log", url, "--since", "1h", "--out", "train.parquet"], &env);
    ok(d, &["build", "--data", "train.parquet", "--out", "from-s3"], &[]);
    // Another prefix holds nothing.
    let out =
        mlgate(d, &["feedback", "export", "--event-log", "s3://events/other", "--since", "1h", "--out", "x.csv"], &env);
    let (o, e) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{o}{e}");
    assert!(e.contains("s3://events/other holds no predictions"), "{e}");
}

#[test]
fn a_full_buffer_or_a_failing_log_drops_events_counted_and_fails_no_request() {
    let registry = tempfile::tempdir().unwrap();
    let reg = registry.path().join("registry");
    let _job = release(&reg, 42);
    // A buffer of 5 events that is never written while serving (batches of 1000, an hour).
    let log = registry.path().join("events");
    let args = [
        "--event-log",
        log.to_str().unwrap(),
        "--event-log-buffer",
        "5",
        "--event-log-batch",
        "1000",
        "--event-log-interval",
        "3600",
    ];
    let server = Server::start(&reg, &args);
    let sessions = customers_csv(400, 3);
    let body = serde_json::to_vec(&records(&sessions, true)).unwrap();
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let addr = server.addr();
            let body = body.clone();
            std::thread::spawn(move || {
                (0..5)
                    .map(|_| {
                        crate::serve::exchange_raw(addr, "POST", "/v1/predict", "application/json", &[], &body)
                            .unwrap()
                            .0
                    })
                    .collect::<Vec<u16>>()
            })
        })
        .collect();
    for t in threads {
        assert!(t.join().unwrap().iter().all(|&s| s == 200));
    }
    let metrics = server.get("/metrics").1;
    let dropped = "mlgate_event_log_dropped_total{model=\"customer-purchase\",kind=\"prediction\",reason=\"full\"}";
    assert_eq!(metric(&metrics, dropped), Some(20.0 * 400.0 - 5.0), "{metrics}");
    assert_eq!(server.terminate_timed().0, Some(0));
    // The five kept were written at SIGTERM.
    let written = files(&log);
    assert_eq!(written.len(), 1, "{written:?}");
    if let Some(python) = pyarrow_python() {
        let read = pyarrow(&python, READ_SCHEMA, &[log.join(&written[0]).to_str().unwrap()]);
        assert!(read.starts_with("5 "), "{read}");
    }

    // A log that cannot be written (its folder is a file): every request answered, every lost
    // event counted, the failure logged.
    let blocked = registry.path().join("a-file");
    std::fs::write(&blocked, "not a folder").unwrap();
    let args = ["--event-log", blocked.to_str().unwrap(), "--event-log-batch", "10", "--event-log-interval", "0.1"];
    let server = Server::start(&reg, &args);
    for _ in 0..3 {
        let (status, answer) = server.post("/v1/predict", "application/json", &body);
        assert_eq!(status, 200, "{answer}");
    }
    let start = std::time::Instant::now();
    let failed =
        "mlgate_event_log_dropped_total{model=\"customer-purchase\",kind=\"prediction\",reason=\"write_failed\"}";
    loop {
        let metrics = server.get("/metrics").1;
        if metric(&metrics, failed) == Some(1200.0) {
            assert!(
                metric(&metrics, "mlgate_event_log_write_errors_total{model=\"customer-purchase\"}")
                    .is_some_and(|n| n >= 1.0),
                "{metrics}"
            );
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(60), "{metrics}\n{}", server.log());
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(server.log().contains("the event log lost"), "{}", server.log());
    assert_eq!(server.terminate_timed().0, Some(0));
}

#[test]
fn a_server_killed_while_it_writes_leaves_only_whole_files() {
    let registry = tempfile::tempdir().unwrap();
    let reg = registry.path().join("registry");
    let job = release(&reg, 42);
    let log = registry.path().join("events");
    let sessions = customers_csv(50, 9);
    let body = serde_json::to_vec(&records(&sessions, true)).unwrap();
    // A file for every ten events: the writer is writing whenever the kill comes.
    let args = ["--event-log", log.to_str().unwrap(), "--event-log-batch", "10", "--event-log-interval", "0.05"];
    for round in 0..4u64 {
        let mut server = Server::start(&reg, &args);
        for _ in 0..(2 + 3 * round) {
            let (status, answer) = server.post("/v1/predict", "application/json", &body);
            assert_eq!(status, 200, "{answer}");
        }
        server.child.kill().unwrap();
        server.child.wait().unwrap();
    }
    // Every finished file is a whole Parquet file: export reads each (an unreadable one would
    // be an error naming it) and skips the temporaries.
    let written = files(&log);
    let finished: Vec<&String> = written.iter().filter(|f| !f.rsplit('/').next().unwrap().starts_with('.')).collect();
    assert!(!finished.is_empty());
    let out = mlgate(
        job.path(),
        &["feedback", "export", "--event-log", log.to_str().unwrap(), "--since", "1h", "--out", "t.csv"],
        &[],
    );
    let (o, e) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{o}{e}");
    assert!(e.contains("has a feedback label (0 label(s) read): nothing written"), "{e}");
    assert!(!e.contains("not a readable Parquet file"), "{e}");
    if let Some(python) = pyarrow_python() {
        let paths: Vec<String> = finished.iter().map(|f| log.join(f).display().to_string()).collect();
        let args: Vec<&str> = paths.iter().map(String::as_str).collect();
        let read = pyarrow(&python, READ_SCHEMA, &args);
        assert_eq!(read.lines().count(), finished.len(), "{read}");
    }
}
