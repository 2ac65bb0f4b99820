//! The reported line of every broken row against a count kept while the file is written: rows
//! of quoted and plain fields, ended by LF, CRLF or a lone CR, with blank lines between, line
//! breaks inside quoted fields, and maybe no final break or an unterminated last quote.
#![no_main]

use libfuzzer_sys::fuzz_target;
use model::{read_csv, Error, LabelPolicy};

const BREAKS: [&str; 3] = ["\n", "\r\n", "\r"];

/// Line breaks in `text`: CRLF, LF and a lone CR each count one.
fn breaks(text: &str) -> u64 {
    let b = text.as_bytes();
    (0..b.len()).filter(|&i| b[i] == b'\r' || (b[i] == b'\n' && (i == 0 || b[i - 1] != b'\r'))).count() as u64
}

fuzz_target!(|choices: &[u8]| {
    let config = mlgate_fuzz::small_config();
    let mut file = String::from("id,amount,visits,region,member,bought\n");
    let mut expected = Vec::new();
    let mut ends_unterminated = false;
    for (i, chunk) in choices.chunks(3).enumerate().take(150) {
        let c = |k: usize| chunk.get(k).copied().unwrap_or(0);
        // Blank lines before the row.
        for _ in 0..(c(0) % 3) {
            file.push_str(BREAKS[(c(1) % 3) as usize]);
        }
        expected.push(1 + breaks(&file));
        // The id: plain, or quoted with a line break inside.
        let id = if c(2) % 4 == 0 {
            let inside = BREAKS[(c(0) as usize / 3) % 3];
            format!("\"r{i}{inside}x\"")
        } else {
            format!("r{i}")
        };
        // `amount` is never a number: every row is broken and reported.
        file.push_str(&format!("{id},x{i},2,north,TRUE,yes"));
        let last = i + 1 == choices.chunks(3).len().min(150);
        if last && c(1) % 5 == 0 {
            // An unterminated quote swallows the final line break.
            file.push_str(",\"open\n");
            ends_unterminated = true;
        } else if !(last && c(2) % 3 == 0) {
            file.push_str(BREAKS[(c(2) % 3) as usize]);
        }
    }
    let reported: Vec<u64> = match read_csv(file.as_bytes(), "lines.csv", &config.schema, LabelPolicy::Required) {
        Err(Error::Validation(report)) => {
            let mut lines: Vec<u64> = report.errors.iter().filter(|e| e.column == "amount").map(|e| e.line).collect();
            if ends_unterminated {
                // The last row has a field too many: its error is on the same line, not `amount`'s.
                lines.extend(report.errors.iter().filter(|e| e.column == "*").map(|e| e.line));
                lines.sort_unstable();
            }
            lines
        }
        _ if expected.is_empty() => return,
        other => panic!("{} rows, all broken, gave {other:?}", expected.len()),
    };
    let kept = reported.len().min(expected.len());
    assert_eq!(&reported[..kept], &expected[..kept], "{file:?}");
});
