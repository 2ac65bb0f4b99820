//! Every bad-input rule, located by exact line and column; header problems; lazy collection.

use model::{read_csv, DataError, Error, HeaderProblem, LabelPolicy, Rule};

use crate::support::small_schema;

const HEADER: &str = "id,amount,visits,region,member,bought\n";

fn load(text: &str) -> model::Result<model::Dataset> {
    read_csv(text.as_bytes(), "in.csv", &small_schema(), LabelPolicy::Required)
}

fn errors(text: &str) -> Vec<DataError> {
    match load(text) {
        Err(Error::Validation(report)) => report.errors.clone(),
        other => panic!("expected a validation error, got {other:?}"),
    }
}

/// One good row, then `bad` on line 3.
fn single(bad: &str) -> DataError {
    let text = format!("{HEADER}a,1.5,2,north,TRUE,yes\n{bad}\n");
    let e = errors(&text);
    assert_eq!(e.len(), 1, "{e:?}");
    e[0].clone()
}

fn check(bad: &str, column: &str, value: &str, rule: Rule) {
    let e = single(bad);
    assert_eq!((e.line, e.column.as_str(), e.value.as_str(), e.rule), (3, column, value, rule), "{e}");
    assert_eq!(e.file, "in.csv");
}

#[test]
fn unparsable_number() {
    check("b,12abc,2,north,TRUE,yes", "amount", "12abc", Rule::NotANumber);
}

#[test]
fn nan_is_refused() {
    check("b,NaN,2,north,TRUE,yes", "amount", "NaN", Rule::NotFinite);
}

#[test]
fn infinity_and_overflow_to_infinity_are_refused() {
    check("b,inf,2,north,TRUE,yes", "amount", "inf", Rule::NotFinite);
    check("b,-inf,2,north,TRUE,yes", "amount", "-inf", Rule::NotFinite);
    check("b,1e400,2,north,TRUE,yes", "amount", "1e400", Rule::NotFinite);
}

#[test]
fn out_of_range_numbers() {
    check("b,-0.5,2,north,TRUE,yes", "amount", "-0.5", Rule::BelowMin);
    check("b,1000.01,2,north,TRUE,yes", "amount", "1000.01", Rule::AboveMax);
    check("b,3,-1,north,TRUE,yes", "visits", "-1", Rule::BelowMin);
}

#[test]
fn non_integer_in_an_integer_column() {
    check("b,3,2.5,north,TRUE,yes", "visits", "2.5", Rule::NotAnInteger);
}

#[test]
fn empty_value_is_missing() {
    check("b,,2,north,TRUE,yes", "amount", "", Rule::Missing);
}

#[test]
fn undeclared_level() {
    check("b,3,2,east,TRUE,yes", "region", "east", Rule::UndeclaredLevel);
}

#[test]
fn boolean_spelling() {
    check("b,3,2,north,maybe,yes", "member", "maybe", Rule::NotABoolean);
}

#[test]
fn empty_label_and_unknown_label() {
    check("b,3,2,north,TRUE,", "bought", "", Rule::Missing);
    check("b,3,2,north,TRUE,perhaps", "bought", "perhaps", Rule::NotALabel);
}

#[test]
fn wrong_field_count() {
    check("b,3,2,north,TRUE", "*", "5 fields", Rule::FieldCount);
    check("b,3,2,north,TRUE,yes,extra", "*", "7 fields", Rule::FieldCount);
}

#[test]
fn invalid_utf8() {
    let mut bytes = format!("{HEADER}a,1.5,2,north,TRUE,yes\nb,3,2,").into_bytes();
    bytes.extend_from_slice(b"nor\xffth,TRUE,yes\n");
    match read_csv(&bytes[..], "in.csv", &small_schema(), LabelPolicy::Required) {
        Err(Error::Validation(r)) => {
            assert_eq!((r.errors[0].line, r.errors[0].column.as_str(), r.errors[0].rule), (3, "region", Rule::Utf8));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn quoted_newlines_keep_line_numbers_exact() {
    // Row 1 spans lines 2–3 (a quoted newline in the id); the bad row starts on line 4.
    let text = format!("{HEADER}\"a\nb\",1.5,2,north,TRUE,yes\nc,x,2,north,TRUE,yes\n");
    let e = errors(&text);
    assert_eq!((e[0].line, e[0].column.as_str()), (4, "amount"));
}

#[test]
fn validation_is_lazy_counts_are_exact_and_the_list_is_capped() {
    let mut text = String::from(HEADER);
    for i in 0..250 {
        text.push_str(&format!("r{i},-1,x,north,TRUE,yes\n"));
    }
    match load(&text) {
        Err(Error::Validation(r)) => {
            assert_eq!(r.rows, 250);
            assert_eq!(r.error_count, 500);
            assert_eq!(r.rows_with_errors, 250);
            assert_eq!(r.errors.len(), model::data::report::MAX_KEPT_ERRORS);
            let count =
                |col: &str, rule: Rule| r.counts.iter().find(|c| c.column == col && c.rule == rule).map(|c| c.count);
            assert_eq!(count("amount", Rule::BelowMin), Some(250));
            assert_eq!(count("visits", Rule::NotAnInteger), Some(250));
            // The errors are in file order: line 2 first, both columns.
            assert_eq!((r.errors[0].line, r.errors[1].line, r.errors[2].line), (2, 2, 3));
            let summary = r.summary();
            assert!(summary.contains("500 invalid values in 250 of 250 rows"), "{summary}");
            assert!(summary.contains("... and 480 more"), "{summary}");
            assert!(summary.contains("250  amount: below the minimum"), "{summary}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn header_missing_column() {
    let r = load("id,amount,visits,region,bought\n1,2,3,north,yes\n");
    assert!(matches!(r, Err(Error::Header { problem: HeaderProblem::MissingColumn(c), .. }) if c == "member"));
}

#[test]
fn header_duplicate_column() {
    let r = load("id,amount,visits,region,member,bought,amount\n");
    assert!(matches!(r, Err(Error::Header { problem: HeaderProblem::DuplicateColumn(c), .. }) if c == "amount"));
}

#[test]
fn header_written_with_semicolons() {
    let r = load("id;amount;visits;region;member;bought\na;1;2;north;TRUE;yes\n");
    match r {
        Err(e @ Error::Header { problem: HeaderProblem::WrongDelimiter { expected: ',', found: ';' }, .. }) => {
            assert!(e.to_string().contains("line 1"), "{e}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn empty_file_and_header_only() {
    assert!(matches!(load(""), Err(Error::Header { problem: HeaderProblem::Empty, .. })));
    assert!(matches!(load(HEADER), Err(Error::Unusable { .. })));
}

#[test]
fn bom_and_crlf_are_accepted_and_lines_still_count() {
    let text = "\u{feff}id,amount,visits,region,member,bought\r\na,1.5,2,north,TRUE,yes\r\nb,3,2,north,TRUE,yes\r\n";
    let data = load(text).expect("BOM and CRLF are fine");
    assert_eq!(data.len(), 2);
    assert_eq!(data.lines.iter().collect::<Vec<_>>(), vec![2, 3]);
    let bad = "\u{feff}id,amount,visits,region,member,bought\r\na,1.5,2,north,TRUE,yes\r\nb,zz,2,north,TRUE,yes\r\n";
    assert_eq!(errors(bad)[0].line, 3);
}

#[test]
fn label_may_be_absent_only_when_allowed() {
    let text = "id,amount,visits,region,member\na,1,2,north,TRUE\n";
    let data = read_csv(text.as_bytes(), "in.csv", &small_schema(), LabelPolicy::Optional).unwrap();
    assert!(data.labels.is_none());
    let r = read_csv(text.as_bytes(), "in.csv", &small_schema(), LabelPolicy::Required);
    assert!(matches!(r, Err(Error::Header { problem: HeaderProblem::MissingColumn(c), .. }) if c == "bought"));
}

#[test]
fn report_describes_the_data() {
    let text = format!("{HEADER}a,1,2,north,TRUE,yes\nb,3,4,south,FALSE,no\nb,3,4,south,FALSE,no\n");
    let data = load(&text).unwrap();
    let r = &data.report;
    assert_eq!((r.rows, r.duplicate_rows), (3, 1));
    let b = r.class_balance.as_ref().unwrap();
    assert_eq!((b.positive, b.negative), (1, 2));
    let amount = r.columns.iter().find(|c| c.name == "amount").unwrap();
    assert_eq!((amount.min, amount.max), (Some(1.0), Some(3.0)));
    assert!((amount.mean.unwrap() - 7.0 / 3.0).abs() < 1e-12);
    let region = r.columns.iter().find(|c| c.name == "region").unwrap();
    assert_eq!(region.distinct, Some(2));
    assert_eq!(region.levels.get("south"), Some(&2));
    // sha256 of the exact bytes.
    assert_eq!(r.bytes, text.len() as u64);
    assert_eq!(r.sha256.len(), 64);
    assert!(model::render::validation::validation_markdown(r)
        .contains("| `amount` | numeric | 3 | 0 | 1.0000 | 3.0000 | 2.3333 |"));
}

#[test]
fn a_single_class_cannot_train() {
    let text = format!("{HEADER}a,1,2,north,TRUE,no\nb,3,4,south,FALSE,no\n");
    let data = load(&text).unwrap();
    let r = model::pipeline::build::build(&crate::support::small_config(), &data, &Default::default());
    assert!(matches!(&r, Err(Error::Unusable { problem, .. }) if problem.contains("negative")), "{r:?}");
}

#[test]
fn blank_lines_are_skipped_and_counted() {
    let text = format!("{HEADER}a,1.5,2,north,TRUE,yes\n\n\nb,x,2,north,TRUE,yes\n");
    assert_eq!(errors(&text)[0].line, 5);
    let crlf = text.replace('\n', "\r\n");
    assert_eq!(errors(&crlf)[0].line, 5);
}

#[test]
fn last_row_without_a_newline_and_quoted_newlines_under_crlf() {
    let text = format!("{HEADER}a,1.5,2,north,TRUE,yes\nb,x,2,north,TRUE,yes");
    assert_eq!(errors(&text)[0].line, 3);
    let text = "id,amount,visits,region,member,bought\r\n\"a\r\nb\",1.5,2,north,TRUE,yes\r\nc,x,2,north,TRUE,yes\r\n";
    assert_eq!(errors(text)[0].line, 4);
}

#[test]
fn lines_are_exact_under_lone_carriage_returns() {
    // A file written with old Mac line endings: every break a lone CR.
    let rows = ["a,1.5,2,north,TRUE,yes", "b,x,2,north,TRUE,yes", "c,1.0,2,atlantis,TRUE,yes", "d,-1,2,north,TRUE,yes"];
    let cr = format!("{}{}\r", HEADER.replace('\n', "\r"), rows.join("\r"));
    let lines: Vec<u64> = errors(&cr).iter().map(|e| e.line).collect();
    assert_eq!(lines, [3, 4, 5]);
    // Mixed endings, a blank line of each kind, and a quoted CR inside a field.
    let mixed = format!("{HEADER}a,1.5,2,north,TRUE,yes\r\r\n\"q\rq\",x,2,north,TRUE,yes\rc,x,2,north,TRUE,yes\n");
    let lines: Vec<u64> = errors(&mixed).iter().map(|e| e.line).collect();
    assert_eq!(lines, [4, 6]);
}

#[test]
fn an_unterminated_quote_is_reported_on_the_line_it_opens() {
    // The quote swallows the final newline: the row still starts on line 3.
    let text = format!("{HEADER}a,1.5,2,north,TRUE,yes\nb,x,2,north,TRUE,\"yes\n");
    let e = errors(&text);
    assert!(e.iter().all(|e| e.line == 3), "{e:?}");
}

#[test]
fn errors_within_a_row_come_in_the_file_order_of_their_columns() {
    // The file puts `region` before `amount`, the schema declares `amount` first.
    let text = "id,region,amount,visits,member,bought\na,atlantis,x,2,TRUE,yes\n";
    let columns: Vec<String> = errors(text).into_iter().map(|e| e.column).collect();
    assert_eq!(columns, ["region", "amount"]);
}

#[test]
fn a_huge_value_is_echoed_cut_with_its_length() {
    let huge = "9".repeat(1_000_000) + "x";
    let e = single(&format!("b,{huge},2,north,TRUE,yes"));
    assert_eq!((e.line, e.column.as_str(), e.rule), (3, "amount", Rule::NotANumber));
    assert!(e.value.len() < 300, "{} bytes echoed", e.value.len());
    assert!(e.value.starts_with("999") && e.value.ends_with("(1000001 bytes in all)"), "{}", &e.value[190..]);
    // The summary printed on failure stays small too.
    let report = match load(&format!("{HEADER}b,{huge},2,north,TRUE,yes\n")) {
        Err(Error::Validation(r)) => r,
        other => panic!("{other:?}"),
    };
    assert!(report.summary().len() < 1000);
}
