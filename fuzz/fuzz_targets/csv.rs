//! Any bytes as a CSV file: validation and streaming scoring end in a result or a typed error,
//! never a panic, and agree on whether the file is valid; and the same bytes read as a request's
//! body (`CsvSource::open_body`, csv_core's parser run directly) give the same header, rows,
//! lines, errors and hash as read as a stream through the csv crate.
#![no_main]

use libfuzzer_sys::fuzz_target;
use model::data::reader::CsvSource;
use model::{read_csv, Error, LabelPolicy, Schema};

/// Everything a source gives: its header (or its error), each row with its line, the error that
/// stopped it, and the hash and size of the bytes.
fn everything<R: std::io::Read>(source: model::Result<CsvSource<R>>) -> String {
    let mut source = match source {
        Ok(s) => s,
        Err(e) => return format!("open: {e}"),
    };
    let mut out = format!("header {:?}\n", source.header());
    let driven = source.drive(&mut |line: u64, record: &mut csv::ByteRecord| -> model::Result<()> {
        out.push_str(&format!("{line}: {:?}\n", record.iter().collect::<Vec<_>>()));
        Ok(())
    });
    if let Err(e) = driven {
        out.push_str(&format!("error: {e}\n"));
    }
    out.push_str(&format!("{:?}", source.finish().map_err(|e| e.to_string())));
    out
}

fn same_either_way(bytes: &[u8], schema: &Schema) {
    let streamed = everything(CsvSource::open(bytes, "fuzz.csv", schema, LabelPolicy::Optional));
    let in_memory = everything(CsvSource::open_body(bytes, "fuzz.csv", schema, LabelPolicy::Optional));
    assert_eq!(in_memory, streamed, "a body read in memory differs from the same bytes streamed");
}

fuzz_target!(|bytes: &[u8]| {
    let config = mlgate_fuzz::small_config();
    let validated = read_csv(bytes, "fuzz.csv", &config.schema, LabelPolicy::Optional);
    if let Err(Error::Validation(report)) = &validated {
        assert!(report.error_count > 0);
        assert!(report.errors.windows(2).all(|w| w[0].line <= w[1].line), "errors out of file order");
        assert!(report.errors.iter().all(|e| e.value.chars().count() <= 400), "a long value echoed whole");
    }
    same_either_way(bytes, &config.schema);
    let mut semicolons = config.schema.clone();
    semicolons.delimiter = ';';
    same_either_way(bytes, &semicolons);
});
