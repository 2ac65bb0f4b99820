//! `mlgate feedback export`: the predictions `serve --event-log` wrote, joined with the feedback
//! labels that came back for them, as training data — the schema's columns, the label in the
//! schema's own words — for `mlgate build --data` and `mlgate monitor --data`.
//!
//! A feedback label given by receipt joins the prediction that receipt was given with (on any
//! replica writing to the same log); one given by id joins the last prediction of that id (same
//! model and version) made before it. When a prediction got several labels, the last one counts.
//! Predictions without a label are left out, and counted.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use xshell::Shell;

use model::data::schema::{Column, ColumnKind, Schema};

use crate::serve::event_file::{self, Cell, EventFile, Stored, TableWriter, SCHEMA_KEY};
use crate::store::events::EventStore;

/// The flags of `mlgate feedback`.
#[derive(clap::Args)]
pub struct Args {
    /// What to do with the feedback.
    #[command(subcommand)]
    pub command: FeedbackCommand,
}

/// `mlgate feedback`'s subcommands.
#[derive(clap::Subcommand)]
pub enum FeedbackCommand {
    /// Write the labelled predictions of an event log (`serve --event-log`) as training data:
    /// the schema's columns and the label, as CSV or Parquet.
    Export(ExportArgs),
}

/// The flags of `mlgate feedback export`.
#[derive(clap::Args)]
pub struct ExportArgs {
    /// The event log `serve --event-log` writes: a folder or s3://BUCKET/PREFIX (the registry's
    /// AWS_* environment).
    #[arg(long, value_name = "URL")]
    pub event_log: String,
    /// Predictions made at or after this time: RFC 3339 (2026-12-01T00:00:00Z, or a date) or a
    /// duration before now (24h, 7days).
    #[arg(long, value_name = "TIME")]
    pub since: String,
    /// Predictions made before this time (same forms; default: now).
    #[arg(long, value_name = "TIME")]
    pub until: Option<String>,
    /// Only this model's predictions (default: every model in the log; their schemas must agree).
    #[arg(long, value_name = "NAME")]
    pub model: Option<String>,
    /// Only this version's predictions (vN).
    #[arg(long, value_name = "vN")]
    pub version: Option<String>,
    /// The training data written: a .parquet file, else CSV (.csv); written whole or not at all.
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
}

/// Runs `mlgate feedback`.
pub fn run(_sh: &Shell, args: Args) -> Result<ExitCode> {
    match args.command {
        FeedbackCommand::Export(args) => export(args),
    }
}

/// Milliseconds since the Unix epoch of `text`: RFC 3339 (a date alone is its midnight, UTC), or
/// a duration before `now`.
fn time_of(text: &str, flag: &str, now: SystemTime) -> Result<i64> {
    let text = text.trim();
    let at = if text.len() == 10 && text.as_bytes()[4] == b'-' {
        humantime::parse_rfc3339_weak(&format!("{text}T00:00:00Z")).ok()
    } else {
        humantime::parse_rfc3339_weak(text).ok()
    };
    let at = match at {
        Some(at) => at,
        None => match humantime::parse_duration(text) {
            Ok(ago) => now.checked_sub(ago).unwrap_or(UNIX_EPOCH),
            Err(_) => bail!(
                "{flag} {text:?}: expected a time in RFC 3339 (2026-12-01T00:00:00Z, or 2026-12-01) or a duration \
                 before now (24h, 7days)"
            ),
        },
    };
    let millis = at.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO).as_millis();
    Ok(i64::try_from(millis).unwrap_or(i64::MAX))
}

/// A label given for a prediction: when, and which (true: positive).
#[derive(Clone, Copy)]
struct Label {
    time: i64,
    positive: bool,
}

impl Label {
    /// The later of two labels.
    fn latest(a: Option<Label>, b: Label) -> Label {
        match a {
            Some(a) if a.time > b.time => a,
            _ => b,
        }
    }
}

/// A prediction named by id: its model, version and id.
type IdKey = (String, String, String);

/// The feedback of the log: by receipt tag, and by (model, version, id).
#[derive(Default)]
struct Labels {
    by_receipt: HashMap<String, Label>,
    by_id: HashMap<IdKey, Label>,
    given: u64,
}

/// The export being written: CSV or Parquet.
enum Out {
    Csv(Box<csv::Writer<std::io::BufWriter<std::fs::File>>>),
    Parquet(Box<TableWriter<std::io::BufWriter<std::fs::File>>>),
}

/// What the export counted.
#[derive(Default)]
struct Tally {
    predictions: u64,
    by_receipt: u64,
    by_id: u64,
    files: u64,
}

fn export(args: ExportArgs) -> Result<ExitCode> {
    let now = SystemTime::now();
    let since = time_of(&args.since, "--since", now)?;
    let until = match &args.until {
        Some(text) => time_of(text, "--until", now)?,
        None => time_of("0s", "--until", now)?.saturating_add(1),
    };
    if until <= since {
        bail!("--until must come after --since");
    }
    let parquet = model::Format::of(&args.out.to_string_lossy(), None) == model::Format::Parquet;
    let timeouts = crate::cli::context::registry_timeouts()?;
    let store = EventStore::open(&args.event_log, timeouts.s3)?;
    let mut under = String::new();
    if let Some(model) = &args.model {
        under = format!("model={}", event_file::escape(model));
        if let Some(version) = &args.version {
            under.push_str(&format!("/version={}", event_file::escape(version)));
        }
    }
    let keys = store.list(&under).with_context(|| format!("cannot list the event log {}", store.url()))?;
    let (first_hour, last_hour) = (event_file::hour_of(since), event_file::hour_of(until - 1));
    let mut prediction_files = Vec::new();
    let mut feedback_files = Vec::new();
    for key in &keys {
        let Some((model, version, hour, kind)) = event_file::place(key) else { continue };
        if args.model.as_ref().is_some_and(|m| *m != model) || args.version.as_ref().is_some_and(|v| *v != version) {
            continue;
        }
        // Feedback comes after its prediction: any hour from the first one on may hold it.
        match kind {
            "predictions" if hour >= first_hour && hour <= last_hour => prediction_files.push(key.clone()),
            "feedback" if hour >= first_hour => feedback_files.push(key.clone()),
            _ => {}
        }
    }
    if prediction_files.is_empty() {
        bail!(
            "the event log {} holds no predictions between {} and {}{}",
            store.url(),
            rfc3339(since),
            rfc3339(until),
            filters(&args)
        );
    }
    let labels = read_labels(&store, &feedback_files)?;
    let mut tally = Tally::default();
    let mut schema: Option<(Schema, String)> = None;
    let mut out: Option<(Out, tempfile::NamedTempFile)> = None;
    // Predictions labelled by id wait until every file is read: a later one of the same id wins.
    // Each kept with its time and its place in the log, the order they are written in.
    let mut by_id: HashMap<IdKey, (i64, u64, Vec<Cell>)> = HashMap::new();
    for key in &prediction_files {
        let name = store.name(key);
        let file = EventFile::read(store.get(key)?, &name)?;
        tally.files += 1;
        let Some(text) = file.metadata.get(SCHEMA_KEY) else {
            bail!("{name}: no `{SCHEMA_KEY}` in its metadata: not a predictions file of mlgate's event log");
        };
        let file_schema: Schema =
            serde_json::from_str(text).with_context(|| format!("{name}: its `{SCHEMA_KEY}` is not a schema"))?;
        match &schema {
            None => schema = Some((file_schema, name.clone())),
            Some((first, first_name)) if first.columns != file_schema.columns => bail!(
                "{name}: its schema's columns differ from those of {first_name}: export one model's versions of the \
                 same schema at a time (--model, --version)"
            ),
            Some(_) => {}
        }
        let (schema, _) = schema.as_ref().expect("set above");
        if out.is_none() {
            out = Some(open_out(&args.out, schema, parquet)?);
        }
        let (writer, _) = out.as_mut().expect("opened above");
        let at = |column: &str| file.column(column).with_context(|| format!("{name}: no column `{column}`"));
        let [time, id, receipt, model, version] =
            [at("mlgate_time")?, at("mlgate_id")?, at("mlgate_receipt")?, at("mlgate_model")?, at("mlgate_version")?];
        let columns: Vec<Option<usize>> = schema.columns.iter().map(|c| file.column(&c.name)).collect();
        for row in &file.rows {
            let Cell::Timestamp(t) = row[time] else { bail!("{name}: a row without its time") };
            if t < since || t >= until {
                continue;
            }
            tally.predictions += 1;
            let text = |i: usize| match &row[i] {
                Cell::Text(s) => s.clone(),
                _ => String::new(),
            };
            let values = |label: bool| -> Vec<Cell> {
                schema
                    .columns
                    .iter()
                    .zip(&columns)
                    .map(|(c, at)| match &c.kind {
                        ColumnKind::Label { positive, negative } => {
                            Cell::Text(if label { positive.clone() } else { negative.clone() })
                        }
                        _ => at.map_or(Cell::Null, |i| row[i].clone()),
                    })
                    .collect()
            };
            if let Some(label) = labels.by_receipt.get(&text(receipt)) {
                tally.by_receipt += 1;
                write_row(writer, schema, values(label.positive))
                    .with_context(|| format!("cannot write {}", args.out.display()))?;
                continue;
            }
            let key = (text(model), text(version), text(id));
            if let Some(label) = labels.by_id.get(&key).filter(|l| l.time >= t) {
                let later = by_id.get(&key).is_none_or(|(kept, _, _)| *kept <= t);
                if later {
                    by_id.insert(key, (t, tally.predictions, values(label.positive)));
                }
            }
        }
    }
    let (schema, _) = schema.expect("a predictions file was read");
    let (mut writer, temporary) = out.expect("opened with the first file");
    let mut waiting: Vec<(i64, u64, Vec<Cell>)> = by_id.into_values().collect();
    waiting.sort_by_key(|(t, place, _)| (*t, *place));
    tally.by_id = waiting.len() as u64;
    for (_, _, row) in waiting {
        write_row(&mut writer, &schema, row).with_context(|| format!("cannot write {}", args.out.display()))?;
    }
    let labelled = tally.by_receipt + tally.by_id;
    let unlabelled = tally.predictions - labelled;
    if labelled == 0 {
        bail!(
            "none of the {} prediction(s) between {} and {} in {}{} has a feedback label ({} label(s) read): nothing \
             written",
            tally.predictions,
            rfc3339(since),
            rfc3339(until),
            store.url(),
            filters(&args),
            labels.given
        );
    }
    finish(writer, temporary, &args.out)?;
    println!(
        "wrote {labelled} labelled row(s) to {} ({} by receipt, {} by id) from {} prediction(s) between {} and {} in {} \
         file(s) of {}; {unlabelled} unlabelled prediction(s) left out",
        args.out.display(),
        tally.by_receipt,
        tally.by_id,
        tally.predictions,
        rfc3339(since),
        rfc3339(until),
        tally.files,
        store.url()
    );
    Ok(ExitCode::SUCCESS)
}

/// " (model M, version V)" for the filters given.
fn filters(args: &ExportArgs) -> String {
    match (&args.model, &args.version) {
        (Some(m), Some(v)) => format!(" (model {m}, version {v})"),
        (Some(m), None) => format!(" (model {m})"),
        (None, Some(v)) => format!(" (version {v})"),
        (None, None) => String::new(),
    }
}

fn rfc3339(millis: i64) -> String {
    let at = UNIX_EPOCH + Duration::from_millis(u64::try_from(millis).unwrap_or(0));
    humantime::format_rfc3339_seconds(at).to_string()
}

/// Every feedback label of `files`, the last one of each prediction kept.
fn read_labels(store: &EventStore, files: &[String]) -> Result<Labels> {
    let mut labels = Labels::default();
    for key in files {
        let name = store.name(key);
        let file = EventFile::read(store.get(key)?, &name)?;
        let at = |column: &str| file.column(column).with_context(|| format!("{name}: no column `{column}`"));
        let [time, model, version, id, receipt, label] = [
            at("mlgate_time")?,
            at("mlgate_model")?,
            at("mlgate_version")?,
            at("mlgate_id")?,
            at("mlgate_receipt")?,
            at("mlgate_label")?,
        ];
        for row in &file.rows {
            let (Cell::Timestamp(t), Cell::Boolean(positive)) = (&row[time], &row[label]) else {
                bail!("{name}: a row without its time or label");
            };
            let given = Label { time: *t, positive: *positive };
            labels.given += 1;
            let text = |i: usize| match &row[i] {
                Cell::Text(s) => Some(s.clone()),
                _ => None,
            };
            if let Some(tag) = text(receipt) {
                let kept = labels.by_receipt.get(&tag).copied();
                labels.by_receipt.insert(tag, Label::latest(kept, given));
            } else if let Some(id) = text(id) {
                let key = (text(model).unwrap_or_default(), text(version).unwrap_or_default(), id);
                let kept = labels.by_id.get(&key).copied();
                labels.by_id.insert(key, Label::latest(kept, given));
            }
        }
    }
    Ok(labels)
}

/// The output, written to a temporary file beside `path` (renamed into place at the end).
fn open_out(path: &Path, schema: &Schema, parquet: bool) -> Result<(Out, tempfile::NamedTempFile)> {
    let folder = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let temporary = tempfile::Builder::new()
        .prefix(".mlgate-export-")
        .tempfile_in(&folder)
        .with_context(|| format!("cannot write in {}", folder.display()))?;
    let file = std::io::BufWriter::new(temporary.reopen().with_context(|| format!("cannot write {}", path.display()))?);
    let out = if parquet {
        let columns: Vec<(String, Stored)> =
            schema.columns.iter().map(|c| (c.name.clone(), Stored::of(&c.kind))).collect();
        Out::Parquet(Box::new(TableWriter::new(file, &columns, Vec::new())?))
    } else {
        let mut writer = csv::WriterBuilder::new().delimiter(schema.delimiter as u8).from_writer(file);
        writer.write_record(schema.columns.iter().map(|c| c.name.as_str()))?;
        Out::Csv(Box::new(writer))
    };
    Ok((out, temporary))
}

fn write_row(out: &mut Out, schema: &Schema, row: Vec<Cell>) -> Result<()> {
    match out {
        Out::Csv(writer) => {
            let fields: Vec<String> =
                schema.columns.iter().zip(&row).map(|(c, cell): (&Column, _)| cell.text(c)).collect();
            writer.write_record(&fields)?;
        }
        Out::Parquet(writer) => writer.push(row)?,
    }
    Ok(())
}

/// Finishes the output and renames it into place.
fn finish(out: Out, temporary: tempfile::NamedTempFile, path: &Path) -> Result<()> {
    let what = || format!("cannot write {}", path.display());
    let mut file = match out {
        Out::Csv(writer) => writer.into_inner().map_err(|e| anyhow::anyhow!("{}", e.error())).with_context(what)?,
        Out::Parquet(writer) => writer.finish().with_context(what)?,
    };
    file.flush().with_context(what)?;
    file.get_ref().sync_all().with_context(what)?;
    temporary.persist(path).map_err(|e| e.error).with_context(what)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_rfc3339_dates_or_durations_before_now() {
        let now = UNIX_EPOCH + Duration::from_secs(1_000_000);
        assert_eq!(time_of("1970-01-01T00:00:10Z", "--since", now).unwrap(), 10_000);
        assert_eq!(time_of("1970-01-02", "--since", now).unwrap(), 86_400_000);
        assert_eq!(time_of("1h", "--since", now).unwrap(), (1_000_000 - 3600) * 1000);
        let e = time_of("yesterday", "--since", now).unwrap_err().to_string();
        assert!(e.contains("--since \"yesterday\""), "{e}");
    }
}
