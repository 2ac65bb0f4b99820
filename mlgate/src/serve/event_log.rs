//! The event log (`serve --event-log URL`): every scored record and every joined feedback label
//! written as Parquet files ([`super::event_file`]) in a folder or on S3 ([`EventStore`]), so
//! that `mlgate feedback export` turns them into the next training set.
//!
//! A request only appends its events to a bounded buffer (`--event-log-buffer` events) and never
//! waits: when the buffer is full, the events that do not fit are dropped and counted
//! (`mlgate_event_log_dropped_total{kind,reason="full"}`). A thread of its own writes the buffer
//! out every `--event-log-batch` events or `--event-log-interval` seconds, one file per
//! partition (model, version, hour) and kind, each file whole or not at all; a write that fails
//! is logged, and its events counted as dropped (`reason="write_failed"`) and in
//! `mlgate_event_log_write_errors_total`. SIGTERM writes what is buffered before the process
//! exits.

use std::collections::BTreeMap;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use anyhow::Result;
use model::data::schema::Column;

use super::event_file::{self, Cell, Stored, TableWriter, FEEDBACK_COLUMNS, PREDICTION_COLUMNS, SCHEMA_KEY};
use super::live::Answered;
use super::records::Fields;
use super::{log, Loaded, Shared};
use crate::store::events::EventStore;

/// How the event log runs: resolved from the command line by `cli::serve`.
#[derive(Debug, Clone)]
pub struct EventLogOptions {
    /// Where: a folder or `s3://BUCKET/PREFIX`.
    pub url: String,
    /// Events written in one file at most, and the count that starts a write.
    pub batch: usize,
    /// The longest an event waits in the buffer.
    pub interval: Duration,
    /// Events the buffer holds at most (beyond, dropped and counted).
    pub buffer: usize,
}

/// What the records of an artifact are, for its predictions files: the columns the scorer reads
/// (in its order) and the artifact's schema as JSON.
pub struct Layout {
    columns: Vec<Column>,
    schema: String,
}

impl Layout {
    /// The layout of `compiled`'s records.
    pub fn of(compiled: &model::pipeline::scoring::Compiled) -> Layout {
        let schema = &compiled.artifact().schema;
        let columns = compiled.columns().iter().filter_map(|name| schema.column(name).cloned()).collect();
        Layout { columns, schema: serde_json::to_string(schema).unwrap_or_default() }
    }
}

/// A scored record.
struct Prediction {
    time: i64,
    id: String,
    receipt: String,
    version: String,
    role: &'static str,
    probability: f64,
    decision: bool,
    layout: Arc<Layout>,
    record: csv::ByteRecord,
}

/// A feedback label joined to its prediction.
struct Feedback {
    time: i64,
    version: String,
    role: &'static str,
    id: Option<String>,
    receipt: Option<String>,
    probability: f64,
    decision: bool,
    label: bool,
}

/// How a joined feedback item named its prediction.
pub enum Named {
    /// By the prediction's id.
    Id(String),
    /// By its receipt: the receipt's text.
    Receipt(String),
}

#[derive(Default)]
struct Buffer {
    predictions: Vec<Prediction>,
    feedback: Vec<Feedback>,
    /// When the oldest event buffered came.
    since: Option<Instant>,
    closing: bool,
}

impl Buffer {
    fn len(&self) -> usize {
        self.predictions.len() + self.feedback.len()
    }
}

/// The buffer requests append to and the writer's thread empties.
pub struct EventLog {
    options: EventLogOptions,
    /// Files that failed to be written since the last one that was: a failure is logged when
    /// failures start, and the recovery when they end, not every file.
    failing: Mutex<u64>,
    buffer: Mutex<Buffer>,
    ready: Condvar,
}

/// Milliseconds since the Unix epoch, now.
fn now_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or_default()
}

/// A receipt's tag (its last part): what names the receipt in the log without being one.
fn tag(receipt: &str) -> String {
    receipt.rsplit('.').next().unwrap_or(receipt).to_string()
}

impl EventLog {
    /// An empty log with `options`.
    pub fn new(options: EventLogOptions) -> EventLog {
        EventLog { options, failing: Mutex::new(0), buffer: Mutex::new(Buffer::default()), ready: Condvar::new() }
    }

    /// Room for `n` more events: how many fit.
    fn room(&self, buffer: &Buffer, n: usize) -> usize {
        n.min(self.options.buffer.saturating_sub(buffer.len()))
    }

    /// Appends the predictions of a request: record `i` of `rows` (in `baseline`'s columns), its
    /// id, receipt and what answered it. Never waits for a write.
    #[allow(clippy::too_many_arguments)]
    pub fn predictions(
        &self,
        shared: &Shared,
        baseline: &Loaded,
        rows: &[(u64, Fields)],
        ids: &[String],
        answered: &[Answered],
        receipts: &[String],
    ) {
        let n = rows.len();
        let fits = {
            let buffer = self.buffer.lock().expect("the event log's lock is never poisoned");
            self.room(&buffer, n)
        };
        let time = now_millis();
        let events: Vec<Prediction> = (0..fits)
            .map(|i| Prediction {
                time,
                id: ids[i].clone(),
                receipt: tag(&receipts[i]),
                version: answered[i].version.to_string(),
                role: answered[i].role.name(),
                probability: answered[i].probability,
                decision: answered[i].decision,
                layout: baseline.layout.clone(),
                record: match &rows[i].1 {
                    Fields::Csv(record) => record.clone(),
                    Fields::Json(values) => (0..values.len()).map(|at| rows[i].1.text(at).into_owned()).collect(),
                },
            })
            .collect();
        self.append(shared, "prediction", n, |buffer, room| {
            let kept = events.into_iter().take(room);
            let before = buffer.predictions.len();
            buffer.predictions.extend(kept);
            buffer.predictions.len() - before
        });
    }

    /// Appends the feedback joined by a request: each label with what it joined and how the item
    /// named its prediction.
    pub fn feedback(&self, shared: &Shared, joined: &[(Answered, bool)], named: &[Named]) {
        let time = now_millis();
        let events: Vec<Feedback> = joined
            .iter()
            .zip(named)
            .map(|((a, label), named)| Feedback {
                time,
                version: a.version.to_string(),
                role: a.role.name(),
                id: match named {
                    Named::Id(id) => Some(id.clone()),
                    Named::Receipt(_) => None,
                },
                receipt: match named {
                    Named::Receipt(r) => Some(tag(r)),
                    Named::Id(_) => None,
                },
                probability: a.probability,
                decision: a.decision,
                label: *label,
            })
            .collect();
        let n = events.len();
        self.append(shared, "feedback", n, |buffer, room| {
            let before = buffer.feedback.len();
            buffer.feedback.extend(events.into_iter().take(room));
            buffer.feedback.len() - before
        });
    }

    /// Appends what `add` adds of `n` events of `kind` (at most the room left), counts the rest
    /// as dropped, and wakes the writer when a batch is full.
    fn append(&self, shared: &Shared, kind: &str, n: usize, add: impl FnOnce(&mut Buffer, usize) -> usize) {
        if n == 0 {
            return;
        }
        let (added, full) = {
            let mut buffer = self.buffer.lock().expect("the event log's lock is never poisoned");
            if buffer.closing {
                (0, false)
            } else {
                let room = self.room(&buffer, n);
                let added = add(&mut buffer, room);
                if added > 0 && buffer.since.is_none() {
                    buffer.since = Some(Instant::now());
                }
                (added, buffer.len() >= self.options.batch)
            }
        };
        if added < n {
            shared.metrics.event_log_dropped(kind, "full", (n - added) as u64);
        }
        if full {
            self.ready.notify_one();
        }
    }

    /// Starts the writer's thread on `store`; it ends once [`EventLog::close`] was called and
    /// the buffer is written, and says so on the returned channel.
    pub fn start(self: &Arc<Self>, shared: Arc<Shared>, store: EventStore) -> std::sync::mpsc::Receiver<()> {
        let (done, finished) = std::sync::mpsc::channel();
        let log = self.clone();
        for kind in ["prediction", "feedback"] {
            shared.metrics.event_log_written(kind, 0);
            for reason in ["full", "write_failed"] {
                shared.metrics.event_log_dropped(kind, reason, 0);
            }
        }
        std::thread::spawn(move || {
            loop {
                let (predictions, feedback, closing) = log.next_batch();
                log.write(&shared, &store, predictions, feedback);
                if closing {
                    let buffer = log.buffer.lock().expect("the event log's lock is never poisoned");
                    if buffer.len() == 0 {
                        break;
                    }
                }
            }
            let _ = done.send(());
        });
        finished
    }

    /// Waits until a batch is full, the oldest event has waited `interval`, or the log closes;
    /// takes the buffer (a batch's worth).
    fn next_batch(&self) -> (Vec<Prediction>, Vec<Feedback>, bool) {
        let mut buffer = self.buffer.lock().expect("the event log's lock is never poisoned");
        loop {
            let due = buffer.since.is_some_and(|s| s.elapsed() >= self.options.interval);
            if buffer.closing || buffer.len() >= self.options.batch || due {
                break;
            }
            let wait =
                buffer.since.map_or(self.options.interval, |s| self.options.interval.saturating_sub(s.elapsed()));
            buffer = self.ready.wait_timeout(buffer, wait.max(Duration::from_millis(1))).expect("never poisoned").0;
        }
        let take_p = buffer.predictions.len().min(self.options.batch);
        let take_f = buffer.feedback.len().min(self.options.batch);
        let predictions: Vec<Prediction> = buffer.predictions.drain(..take_p).collect();
        let feedback: Vec<Feedback> = buffer.feedback.drain(..take_f).collect();
        buffer.since = (buffer.len() > 0).then(Instant::now);
        (predictions, feedback, buffer.closing)
    }

    /// Writes a batch: one file per partition and kind.
    fn write(&self, shared: &Shared, store: &EventStore, predictions: Vec<Prediction>, feedback: Vec<Feedback>) {
        let model = shared.model_name().to_string();
        let mut by_partition: BTreeMap<(String, String, usize), Vec<Prediction>> = BTreeMap::new();
        for p in predictions {
            let key = (p.version.clone(), event_file::hour_of(p.time), Arc::as_ptr(&p.layout) as usize);
            by_partition.entry(key).or_default().push(p);
        }
        for ((version, hour, _), events) in by_partition {
            let n = events.len() as u64;
            let outcome = predictions_file(&model, &events).and_then(|bytes| {
                let key = file_key(&model, &version, &hour, "predictions")?;
                store.put(&key, bytes)
            });
            self.count(shared, "prediction", n, outcome);
        }
        let mut by_partition: BTreeMap<(String, String), Vec<Feedback>> = BTreeMap::new();
        for f in feedback {
            by_partition.entry((f.version.clone(), event_file::hour_of(f.time))).or_default().push(f);
        }
        for ((version, hour), events) in by_partition {
            let n = events.len() as u64;
            let outcome = feedback_file(&model, &events).and_then(|bytes| {
                let key = file_key(&model, &version, &hour, "feedback")?;
                store.put(&key, bytes)
            });
            self.count(shared, "feedback", n, outcome);
        }
    }

    fn count(&self, shared: &Shared, kind: &str, n: u64, outcome: Result<()>) {
        let mut failing = self.failing.lock().expect("the event log's lock is never poisoned");
        match outcome {
            Ok(()) => {
                shared.metrics.event_log_written(kind, n);
                if *failing > 0 {
                    log(&format!("the event log is written again, after {} file(s) that could not be", *failing));
                }
                *failing = 0;
            }
            Err(e) => {
                shared.metrics.event_log_write_errors.inc();
                shared.metrics.event_log_dropped(kind, "write_failed", n);
                if *failing == 0 {
                    log(&format!(
                        "warning: the event log lost {n} {kind} event(s) (and loses those of every file that fails \
                         until one is written; mlgate_event_log_dropped_total counts them): {e:#}"
                    ));
                }
                *failing += 1;
            }
        }
    }

    /// Writes what is buffered and stops the writer; waits for it at most `limit` (on `finished`,
    /// what [`EventLog::start`] returned).
    pub fn close(&self, finished: &std::sync::mpsc::Receiver<()>, limit: Duration) {
        self.buffer.lock().expect("the event log's lock is never poisoned").closing = true;
        self.ready.notify_all();
        if finished.recv_timeout(limit).is_err() {
            log(&format!(
                "warning: the event log was not written out within {}; events still buffered are lost",
                humantime::format_duration(limit)
            ));
        }
    }
}

/// A new file's key: `model=M/version=V/hour=H/KIND-MILLIS-RANDOM.parquet`.
fn file_key(model: &str, version: &str, hour: &str, kind: &str) -> Result<String> {
    let random = super::receipt::random::<6>()?;
    let random: String = random.iter().map(|b| format!("{b:02x}")).collect();
    Ok(format!(
        "model={}/version={}/hour={hour}/{kind}-{}-{random}.parquet",
        event_file::escape(model),
        event_file::escape(version),
        now_millis()
    ))
}

fn text(s: &str) -> Cell {
    Cell::Text(s.to_string())
}

/// A predictions file of `events` (all of one layout).
fn predictions_file(model: &str, events: &[Prediction]) -> Result<Vec<u8>> {
    let layout = &events[0].layout;
    let mut columns: Vec<(String, Stored)> = PREDICTION_COLUMNS.iter().map(|(n, s)| (n.to_string(), *s)).collect();
    columns.extend(layout.columns.iter().map(|c| (c.name.clone(), Stored::of(&c.kind))));
    let metadata = vec![(SCHEMA_KEY.to_string(), layout.schema.clone())];
    let mut writer = TableWriter::new(Vec::new(), &columns, metadata)?;
    for p in events {
        let head = [
            Cell::Timestamp(p.time),
            text(&p.id),
            text(&p.receipt),
            text(model),
            text(&p.version),
            text(p.role),
            Cell::Double(p.probability),
            Cell::Boolean(p.decision),
        ];
        let fields = layout.columns.iter().zip(p.record.iter()).map(|(c, raw)| Cell::of(c, raw));
        writer.push(head.into_iter().chain(fields))?;
    }
    writer.finish()
}

/// A feedback file of `events`.
fn feedback_file(model: &str, events: &[Feedback]) -> Result<Vec<u8>> {
    let columns: Vec<(String, Stored)> = FEEDBACK_COLUMNS.iter().map(|(n, s)| (n.to_string(), *s)).collect();
    let mut writer = TableWriter::new(Vec::new(), &columns, Vec::new())?;
    for f in events {
        writer.push([
            Cell::Timestamp(f.time),
            text(model),
            text(&f.version),
            text(f.role),
            f.id.as_deref().map_or(Cell::Null, text),
            f.receipt.as_deref().map_or(Cell::Null, text),
            Cell::Double(f.probability),
            Cell::Boolean(f.decision),
            Cell::Boolean(f.label),
        ])?;
    }
    writer.finish()
}
