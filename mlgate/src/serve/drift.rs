//! The rolling drift's window: the last records scored, kept as parsed values — numbers as
//! `f64`, levels as indices into the training reference's levels (one index for every level the
//! reference does not know: Jensen–Shannon divergence is the same whether such levels are told
//! apart or not, their reference share being 0), booleans as one byte — so that a record costs
//! the same whatever the text it came as. A window belongs to one artifact; the records of the
//! one served before a swap are not measured against the next one's reference.

use std::collections::VecDeque;

use model::data::dataset::{ColumnValues, Dataset, MISSING_CODE};
use model::data::report::ValidationReport;
use model::data::schema::{Column, Parsed};
use model::eval::drift::FeatureReference;

use model::pipeline::scoring::Record;

use super::records::Fields;
use super::Loaded;

/// The one level name standing for every level the training reference does not have (no level
/// can be spelt with a NUL).
const UNSEEN: &str = "\u{0}unseen";

/// One feature column of the window.
struct Slot {
    /// The schema's column (its rules parse the text).
    column: Column,
    /// Its index among the compiled columns (a record's fields).
    at: usize,
    values: Values,
}

enum Values {
    /// NaN: missing.
    Number(VecDeque<f64>),
    /// The reference's levels and [`UNSEEN`] last; [`MISSING_CODE`]: missing.
    Level {
        levels: Vec<String>,
        /// The levels' codes in the order of their names: a level is found by a binary search
        /// of a few short comparisons (a hash of the text cost more).
        index: Vec<u32>,
        codes: VecDeque<u32>,
    },
    Bool(VecDeque<Option<bool>>),
}

/// The last `capacity` records scored by one artifact, parsed.
pub struct DriftWindow {
    sha256: String,
    slots: Vec<Slot>,
    rows: usize,
    capacity: usize,
    /// The record being kept, parsed, before it is: one buffer for every record.
    cells: Vec<Cell>,
}

impl DriftWindow {
    /// An empty window for `loaded`'s artifact: a slot for each feature of its drift reference.
    pub fn new(loaded: &Loaded, capacity: usize) -> DriftWindow {
        let artifact = loaded.compiled.artifact();
        let slots = artifact
            .reference
            .features
            .iter()
            .filter_map(|reference| {
                let (FeatureReference::Numeric { column, .. } | FeatureReference::Levels { column, .. }) = reference;
                let at = *loaded.index.get(column)?;
                let column = artifact.schema.column(column)?.clone();
                let values = match (reference, &column.kind) {
                    (FeatureReference::Numeric { .. }, _) => Values::Number(VecDeque::new()),
                    (FeatureReference::Levels { .. }, model::data::schema::ColumnKind::Boolean { .. }) => {
                        Values::Bool(VecDeque::new())
                    }
                    (FeatureReference::Levels { shares, .. }, _) => {
                        let levels: Vec<String> = shares.keys().cloned().chain([UNSEEN.to_string()]).collect();
                        let mut index: Vec<u32> = (0..levels.len() as u32).collect();
                        index.sort_unstable_by(|&a, &b| levels[a as usize].cmp(&levels[b as usize]));
                        Values::Level { levels, index, codes: VecDeque::new() }
                    }
                };
                Some(Slot { column, at, values })
            })
            .collect();
        DriftWindow { sha256: loaded.sha256.clone(), slots, rows: 0, capacity, cells: Vec::new() }
    }

    /// True when the window belongs to the artifact of checksum `sha256`.
    pub fn is_for(&self, sha256: &str) -> bool {
        self.sha256 == sha256
    }

    /// Keeps a scored record (its fields in the compiled columns' order), dropping the oldest
    /// beyond the capacity. A record with a value its column refuses is not kept (it was not
    /// scored either).
    pub fn push(&mut self, record: &Fields) {
        if self.capacity == 0 {
            return;
        }
        self.cells.clear();
        let whole = record.whole();
        for slot in &self.slots {
            if slot.at >= record.width() {
                return;
            }
            let Ok(value) = record.check_field(slot.at, &slot.column, whole) else { return };
            self.cells.push(match (value, &slot.values) {
                (Parsed::Number(x), _) => Cell::Number(x),
                (Parsed::Level(l), Values::Level { index, levels, .. }) => Cell::Code(
                    index
                        .binary_search_by(|&code| levels[code as usize].as_str().cmp(l))
                        .map_or(levels.len() as u32 - 1, |k| index[k]),
                ),
                (Parsed::Bool(b), _) => Cell::Bool(Some(b)),
                (Parsed::Missing, Values::Number(_)) => Cell::Number(f64::NAN),
                (Parsed::Missing, Values::Level { .. }) => Cell::Code(MISSING_CODE),
                (Parsed::Missing, Values::Bool(_)) => Cell::Bool(None),
                _ => return,
            });
        }
        let full = self.rows == self.capacity;
        for (slot, cell) in self.slots.iter_mut().zip(self.cells.drain(..)) {
            match (&mut slot.values, cell) {
                (Values::Number(v), Cell::Number(x)) => ring(v, x, full),
                (Values::Level { codes, .. }, Cell::Code(c)) => ring(codes, c, full),
                (Values::Bool(v), Cell::Bool(b)) => ring(v, b, full),
                _ => unreachable!("a cell is parsed for its slot's kind"),
            }
        }
        self.rows = (self.rows + 1).min(self.capacity);
    }

    /// Records in the window.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// The bytes the window's values take (their buffers as allocated, the level tables): the
    /// same for the same records, however long the texts they came as.
    #[cfg(test)]
    pub fn bytes(&self) -> usize {
        self.slots
            .iter()
            .map(|slot| match &slot.values {
                Values::Number(v) => v.capacity() * std::mem::size_of::<f64>(),
                Values::Level { levels, index, codes } => {
                    codes.capacity() * std::mem::size_of::<u32>()
                        + index.capacity() * std::mem::size_of::<u32>()
                        + levels.iter().map(|l| l.len() + std::mem::size_of::<String>()).sum::<usize>()
                }
                Values::Bool(v) => v.capacity() * std::mem::size_of::<Option<bool>>(),
            })
            .sum()
    }

    /// The window as a data set of the artifact's schema, for the drift reference to compare.
    pub fn dataset(&self, loaded: &Loaded) -> Dataset {
        let schema = loaded.compiled.artifact().schema.clone();
        let features = self
            .slots
            .iter()
            .map(|slot| {
                let values = match &slot.values {
                    Values::Number(v) => ColumnValues::Number(v.iter().copied().collect()),
                    Values::Level { levels, codes, .. } => {
                        ColumnValues::Level { levels: levels.clone(), codes: codes.iter().copied().collect() }
                    }
                    Values::Bool(v) => ColumnValues::Bool(v.iter().copied().collect()),
                };
                (slot.column.name.clone(), values)
            })
            .collect();
        let n = self.rows;
        Dataset {
            schema,
            features,
            labels: None,
            lines: (1..=n as u64).collect(),
            row_keys: vec![0; n],
            report: ValidationReport {
                file: "recent records".into(),
                sha256: String::new(),
                bytes: 0,
                rows: n as u64,
                error_count: 0,
                rows_with_errors: 0,
                errors: Vec::new(),
                counts: Vec::new(),
                columns: Vec::new(),
                unused_columns: Vec::new(),
                duplicate_rows: 0,
                class_balance: None,
            },
        }
    }
}

/// One parsed value, before it is kept.
enum Cell {
    Number(f64),
    Code(u32),
    Bool(Option<bool>),
}

/// Appends `value`, dropping the oldest when the window is `full`.
fn ring<T>(values: &mut VecDeque<T>, value: T, full: bool) {
    if full {
        values.pop_front();
    }
    values.push_back(value);
}

#[cfg(test)]
mod tests {

    use super::*;

    /// A model of the repository's configuration with `device` a categorical of undeclared
    /// levels (so that a level unseen in training is a valid value).
    fn loaded() -> Loaded {
        let text =
            include_str!("../../../pipeline.toml").replace("levels = [\"desktop\", \"mobile\", \"tablet\"]\n", "");
        super::super::test_model(&text)
    }

    /// Generated customers (some on a device training never saw) as records in the compiled
    /// columns' order, each number's text given by `number`.
    fn records(loaded: &Loaded, rows: usize, number: impl Fn(&str) -> String) -> (String, Vec<Fields>) {
        let csv = model::data::generate::customers_csv(rows, 21);
        let mut lines = csv.lines();
        let header: Vec<&str> = lines.next().unwrap().split(',').collect();
        let schema = &loaded.compiled.artifact().schema;
        let mut text = header.join(",");
        text.push('\n');
        let mut out = Vec::new();
        for (i, line) in lines.enumerate() {
            let mut values: Vec<String> = line.split(',').map(str::to_string).collect();
            let device = header.iter().position(|h| *h == "device").unwrap();
            if i % 7 == 0 {
                values[device] = "smartwatch".into();
            }
            text.push_str(&values.join(","));
            text.push('\n');
            let fields: Vec<String> = loaded
                .compiled
                .columns()
                .iter()
                .map(|c| {
                    let v = &values[header.iter().position(|h| h == c).unwrap()];
                    match schema.column(c).map(|c| &c.kind) {
                        Some(
                            model::data::schema::ColumnKind::Numeric { .. }
                            | model::data::schema::ColumnKind::Integer { .. },
                        ) => number(v),
                        _ => v.clone(),
                    }
                })
                .collect();
            out.push(Fields::Csv(fields.iter().collect()));
        }
        (text, out)
    }

    /// The window measures what reading the records' text as a file measured: the same drift,
    /// a level unseen in training included.
    #[test]
    fn the_window_measures_the_drift_a_file_of_the_same_records_has() {
        let loaded = loaded();
        let (text, records) = records(&loaded, 300, str::to_string);
        let mut window = DriftWindow::new(&loaded, 1000);
        for r in &records {
            window.push(r);
        }
        assert_eq!(window.rows(), 300);
        let artifact = loaded.compiled.artifact();
        let file = model::read_csv(text.as_bytes(), "r.csv", &artifact.schema, model::LabelPolicy::Optional).unwrap();
        let thresholds = model::eval::drift::DriftThresholds::default();
        let expected = artifact.reference.compare(&file, &thresholds);
        let got = artifact.reference.compare(&window.dataset(&loaded), &thresholds);
        assert_eq!(got.len(), expected.len());
        assert!(expected.iter().any(|d| d.column == "device" && d.value > 0.01), "{expected:?}");
        for (g, e) in got.iter().zip(&expected) {
            assert_eq!((&g.column, g.statistic, g.level), (&e.column, e.statistic, e.level));
            assert!((g.value - e.value).abs() < 1e-12, "{}: {} vs {}", g.column, g.value, e.value);
        }
        // Bounded in records: the oldest go first.
        let mut small = DriftWindow::new(&loaded, 50);
        for r in &records {
            small.push(r);
        }
        assert_eq!(small.rows(), 50);
        assert_eq!(small.dataset(&loaded).features[0].1, {
            let all = window.dataset(&loaded);
            let rows: Vec<usize> = (250..300).collect();
            all.select(&rows).features[0].1.clone()
        });
    }

    /// Numbers padded with a megabyte of zeros take the window no more memory than the same
    /// numbers written short.
    #[test]
    fn megabyte_padded_numbers_do_not_grow_the_window() {
        let loaded = loaded();
        let pad = "0".repeat(1 << 20);
        let (_, short) = records(&loaded, 60, str::to_string);
        let (_, padded) = records(&loaded, 60, |v| format!("{pad}{v}"));
        assert!(matches!(&padded[0], Fields::Csv(r) if r.as_slice().len() > 1 << 20));
        let (mut a, mut b) = (DriftWindow::new(&loaded, 40), DriftWindow::new(&loaded, 40));
        for (s, p) in short.iter().zip(&padded) {
            a.push(s);
            b.push(p);
            assert_eq!(a.bytes(), b.bytes());
        }
        assert_eq!(b.rows(), 40);
        // Forty records of eight numbers, two levels and a boolean, and the level tables.
        assert!(b.bytes() < 8 * 1024, "{} bytes for 40 records", b.bytes());
        assert_eq!(a.dataset(&loaded).features, b.dataset(&loaded).features);
    }
}
