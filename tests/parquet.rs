//! Parquet data as teams keep it: files written by pyarrow (the venv `.ci/run` makes in
//! `.ci/pyarrow`), read by every command that reads data, the same model as from the CSV of
//! the same rows, and data read from S3-compatible storage (SeaweedFS). Skips with a printed
//! reason when the venv, the shared data or SeaweedFS is absent outside CI.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::registry_git::SeaweedFs;
use crate::support::{edit_rows, mlgate, root, shared_train_csv, text};

/// The Python of `.ci/pyarrow`; in CI its absence fails the test.
pub(crate) fn pyarrow_python() -> Option<PathBuf> {
    let python = root().join(".ci/pyarrow/bin/python");
    if python.exists() {
        return Some(python);
    }
    assert!(std::env::var_os("CI").is_none(), "no .ci/pyarrow in CI: `.ci/run` makes it");
    eprintln!("skipped: no .ci/pyarrow (`.ci/run` makes it: pyarrow from PyPI)");
    None
}

/// Runs `script` in pyarrow's Python with `args`, failing the test on an error; its standard
/// output.
pub(crate) fn pyarrow(python: &Path, script: &str, args: &[&str]) -> String {
    let out = Command::new(python).arg("-c").arg(script).args(args).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A CSV converted to Parquet by pyarrow: its own type inference (integers, doubles, booleans,
/// strings), Snappy, row groups of `rows` rows.
const CONVERT: &str = "import sys, pyarrow.csv as c, pyarrow.parquet as p\n\
t = c.read_csv(sys.argv[1])\n\
p.write_table(t, sys.argv[2], row_group_size=int(sys.argv[3]))\n\
print(t.schema)";

/// What makes a model: everything of the artifact but its lineage (where the data came from:
/// the file's name and the sha256 of its bytes, which differ by nature between formats).
fn model_part(dir: &Path) -> Value {
    let text = std::fs::read_to_string(dir.join("model.json")).unwrap();
    let mut artifact: Value = serde_json::from_str(&text).unwrap();
    let content = artifact.get_mut("artifact").unwrap_or_else(|| panic!("{text:.300}"));
    let object = content.as_object_mut().unwrap();
    object.remove("lineage");
    content.clone()
}

fn build(dir: &Path, config: &Path, data: &str, out: &str, env: &[(&str, &str)]) -> Value {
    let args = ["build", "--config", config.to_str().unwrap(), "--data", data, "--out", out];
    let output = mlgate(dir, &args, env);
    let (o, e) = text(&output);
    assert!(output.status.success(), "{o}{e}");
    model_part(&dir.join(out))
}

/// The lineage's data file and hash of a build.
fn lineage(dir: &Path) -> (String, String) {
    let artifact: Value = serde_json::from_str(&std::fs::read_to_string(dir.join("model.json")).unwrap()).unwrap();
    let lineage = &artifact["artifact"]["lineage"];
    (lineage["data_file"].as_str().unwrap().into(), lineage["data_sha256"].as_str().unwrap().into())
}

#[test]
fn online_shoppers_as_parquet_by_pyarrow_builds_the_model_its_csv_builds() {
    let Some(csv) = shared_train_csv() else { return };
    let Some(python) = pyarrow_python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let parquet = dir.path().join("train.parquet");
    let _ = pyarrow(&python, CONVERT, &[csv.to_str().unwrap(), parquet.to_str().unwrap(), "3000"]);
    let config = root().join("configs/online-shoppers.toml");
    let from_csv = build(dir.path(), &config, csv.to_str().unwrap(), "csv", &[]);
    let from_parquet = build(dir.path(), &config, parquet.to_str().unwrap(), "parquet", &[]);
    assert!(from_csv == from_parquet, "the Parquet copy built another model");
    // Lineage names the Parquet file and the sha256 of its bytes.
    let (file, sha256) = lineage(&dir.path().join("parquet"));
    assert_eq!(file, parquet.display().to_string());
    let bytes = std::fs::read(&parquet).unwrap();
    assert_eq!(sha256, format!("{:x}", <sha2::Sha256 as sha2::Digest>::digest(&bytes)));
    // The same Parquet copy kept on S3-compatible storage builds the same model again.
    let Some(server) = SeaweedFs::start("data") else { return };
    let owned = server.env();
    let env: Vec<(&str, &str)> = owned.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let port: u16 = owned[0].1.rsplit(':').next().unwrap().parse().unwrap();
    put(port, "data/shoppers/train.parquet", &bytes);
    let from_s3 = build(dir.path(), &config, "s3://data/shoppers/train.parquet", "s3", &env);
    assert!(from_csv == from_s3, "the Parquet copy on S3 built another model");
    assert_eq!(lineage(&dir.path().join("s3")), ("s3://data/shoppers/train.parquet".to_string(), sha256));
}

/// Generated customers written as a CSV whose text is not the values' canonical text (amounts
/// with two decimals, `12.30`; ages zero-padded, `038`; booleans `TRUE`/`FALSE` that pyarrow reads
/// as booleans; blank cells that it reads as nulls) build, from pyarrow's Parquet copy, the model
/// the CSV builds: the rows' keys, hence the staging and validation splits, follow the values.
#[test]
fn generated_data_written_otherwise_as_parquet_by_pyarrow_builds_the_model_its_csv_builds() {
    let Some(python) = pyarrow_python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let csv = edit_rows(&model::data::generate::customers_csv(3000, 7), |i, f| {
        f[1] = format!("{:03}", f[1].parse::<u32>().unwrap());
        f[9] = if f[9] == "yes" { "TRUE" } else { "FALSE" }.into();
        if i % 13 == 0 {
            f[8] = String::new();
        }
    });
    // The case of the issue is there: decimals whose text is not the double's shortest.
    assert!(csv.lines().skip(1).any(|l| l.split(',').nth(6).unwrap().ends_with('0')));
    std::fs::write(d.join("train.csv"), &csv).unwrap();
    let base = std::fs::read_to_string(root().join("pipeline.toml")).unwrap();
    let spending = "name = \"spending\"\nkind = \"numeric\"\n";
    let newsletter = "true = [\"yes\"]\nfalse = [\"no\"]";
    assert!(base.contains(spending) && base.contains(newsletter));
    let base = base.replacen(spending, &format!("{spending}missing = \"allow\"\n"), 1).replacen(
        newsletter,
        "true = [\"yes\", \"TRUE\"]\nfalse = [\"no\", \"FALSE\"]",
        1,
    );
    let boosting = base.replacen("family = \"logistic_regression\"", "family = \"gradient_boosting\"", 1).replacen(
        "max_iter = 300",
        "max_iter = 40",
        1,
    );
    std::fs::write(d.join("linear.toml"), &base).unwrap();
    std::fs::write(d.join("boosting.toml"), &boosting).unwrap();
    let convert = format!("{CONVERT}\nassert str(t.schema.field('newsletter').type) == 'bool', t.schema");
    let _ = pyarrow(
        &python,
        &convert,
        &[d.join("train.csv").to_str().unwrap(), d.join("train.parquet").to_str().unwrap(), "700"],
    );
    for config in ["linear.toml", "boosting.toml"] {
        let config = d.join(config);
        let from_csv = build(d, &config, "train.csv", "csv", &[]);
        let from_parquet = build(d, &config, "train.parquet", "parquet", &[]);
        assert_eq!(from_csv["staging"], from_parquet["staging"]);
        assert_eq!(from_csv["staging"]["keys"], "values");
        assert!(from_csv == from_parquet, "the Parquet copy built another model ({})", config.display());
    }
}

/// Columns of every type pyarrow writes for tabular data, nulls, dictionary-encoded strings and
/// several row groups: `validate` names the row group and row of a broken value, `predict`
/// scores the file as it scores the CSV, and a type that cannot hold a kind is refused naming
/// both.
#[test]
fn pyarrow_types_nulls_and_errors() {
    let Some(python) = pyarrow_python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // The small schema's data (tests/data/small.toml), as CSV and as pyarrow writes it.
    let csv = crate::support::small_csv(60);
    std::fs::write(d.join("small.csv"), &csv).unwrap();
    std::fs::copy(root().join("tests/data/small.toml"), d.join("pipeline.toml")).unwrap();
    let write = "import sys, pyarrow as pa, pyarrow.csv as c, pyarrow.parquet as p\n\
t = c.read_csv(sys.argv[1])\n\
t = t.set_column(t.schema.get_field_index('region'), 'region', t.column('region').dictionary_encode())\n\
p.write_table(t, sys.argv[2], row_group_size=25)\n\
print(t.schema)";
    let _ =
        pyarrow(&python, write, &[d.join("small.csv").to_str().unwrap(), d.join("small.parquet").to_str().unwrap()]);
    let out = mlgate(d, &["validate", "--data", "small.parquet", "--out", "v"], &[]);
    let (o, e) = text(&out);
    assert!(out.status.success(), "{o}{e}");
    // Scored as the CSV is.
    for (data, out) in [("small.csv", "csv.out"), ("small.parquet", "parquet.out")] {
        let model = ["build", "--out", "m"];
        if !d.join("m/model.json").exists() {
            let built = mlgate(d, &model, &[]);
            assert!(built.status.success(), "{:?}", text(&built));
        }
        let scored = mlgate(d, &["predict", "--model", "m/model.json", "--data", data, "--out", out], &[]);
        assert!(scored.status.success(), "{:?}", text(&scored));
    }
    assert_eq!(
        std::fs::read_to_string(d.join("csv.out")).unwrap(),
        std::fs::read_to_string(d.join("parquet.out")).unwrap()
    );

    // A null where a value is required, in the second row group, and a date for a number.
    let broken = "import sys, datetime, pyarrow as pa, pyarrow.csv as c, pyarrow.parquet as p\n\
t = c.read_csv(sys.argv[1])\n\
visits = t.column('visits').to_pylist()\n\
visits[30] = None\n\
t = t.set_column(t.schema.get_field_index('visits'), 'visits', pa.array(visits, pa.int32()))\n\
p.write_table(t, sys.argv[2], row_group_size=25)\n\
d = t.set_column(t.schema.get_field_index('visits'), 'visits', pa.array([datetime.date(2020, 1, 1)] * t.num_rows))\n\
p.write_table(d, sys.argv[3])\n\
p.write_table(t, sys.argv[4], compression='zstd')";
    let _ = pyarrow(
        &python,
        broken,
        &[
            d.join("small.csv").to_str().unwrap(),
            d.join("null.parquet").to_str().unwrap(),
            d.join("date.parquet").to_str().unwrap(),
            d.join("zstd.parquet").to_str().unwrap(),
        ],
    );
    let out = mlgate(d, &["validate", "--data", "null.parquet", "--out", "v"], &[]);
    let (o, e) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{o}{e}");
    assert!(e.contains("null.parquet: row group 1, row 31: column `visits`: value \"\": missing value"), "{e}");
    let report: Value = serde_json::from_str(&std::fs::read_to_string(d.join("v/validation.json")).unwrap()).unwrap();
    assert_eq!(report["errors"][0]["row_group"], 1);
    assert_eq!(report["errors"][0]["line"], 31);
    let out = mlgate(d, &["validate", "--data", "date.parquet", "--out", "v"], &[]);
    let (o, e) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{o}{e}");
    assert!(e.contains("column `visits` is Date32 in the file, which cannot hold kind = \"integer\""), "{e}");
    // A codec this build does not read is named.
    let out = mlgate(d, &["validate", "--data", "zstd.parquet", "--out", "v"], &[]);
    let (o, e) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{o}{e}");
    assert!(e.contains("zstd.parquet: row group 0: compressed with zstd"), "{e}");
}

/// Reads every byte of a PUT to SeaweedFS's S3 gateway (anonymous, as the test server allows).
fn put(port: u16, key: &str, body: &[u8]) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    let head = format!(
        "PUT /{key} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(body).unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer:.300}");
}

#[test]
fn data_on_s3_compatible_storage_builds_as_the_local_file_does() {
    let Some(python) = pyarrow_python() else { return };
    let Some(server) = SeaweedFs::start("data") else { return };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // The objects' temporary copies go here, to be seen removed.
    let copies = d.join("tmp");
    std::fs::create_dir(&copies).unwrap();
    let mut owned = server.env();
    owned.push(("TMPDIR", copies.display().to_string()));
    let env: Vec<(&str, &str)> = owned.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let port: u16 = owned[0].1.rsplit(':').next().unwrap().parse().unwrap();
    let csv = crate::support::small_csv(400);
    std::fs::write(d.join("train.csv"), &csv).unwrap();
    std::fs::copy(root().join("tests/data/small.toml"), d.join("pipeline.toml")).unwrap();
    let _ = pyarrow(
        &python,
        CONVERT,
        &[d.join("train.csv").to_str().unwrap(), d.join("train.parquet").to_str().unwrap(), "100"],
    );
    put(port, "data/team/train.parquet", &std::fs::read(d.join("train.parquet")).unwrap());
    put(port, "data/team/train.csv", csv.as_bytes());

    let config = d.join("pipeline.toml");
    let local = build(d, &config, "train.parquet", "local", &[]);
    let remote = build(d, &config, "s3://data/team/train.parquet", "remote", &env);
    assert!(local == remote, "the object built another model than the file");
    let (file, sha256) = lineage(&d.join("remote"));
    assert_eq!(file, "s3://data/team/train.parquet");
    assert_eq!(sha256, lineage(&d.join("local")).1);
    let from_csv = build(d, &config, "s3://data/team/train.csv", "remote-csv", &env);
    assert!(from_csv == local, "the CSV object built another model than the Parquet file");

    // `[staging] path` as an object: acceptance reads its rows from there.
    let staged = d.join("staged.toml");
    let toml = std::fs::read_to_string(&config).unwrap() + "\n[staging]\npath = \"s3://data/team/train.parquet\"\n";
    std::fs::write(&staged, toml).unwrap();
    build(d, &staged, "s3://data/team/train.csv", "staged", &env);
    let args =
        ["acceptance", "--config", "staged.toml", "--model", "staged/model.json", "--registry", "reg", "--out", "acc"];
    let out = mlgate(d, &args, &env);
    let (o, e) = text(&out);
    assert!(matches!(out.status.code(), Some(0 | 1)), "{o}{e}");
    assert!(o.contains("staging    400 rows from s3://data/team/train.parquet"), "{o}{e}");

    // An absent object is an error naming it; no temporary copy is left behind.
    let out = mlgate(d, &["validate", "--data", "s3://data/team/absent.parquet", "--out", "v"], &env);
    let (o, e) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{o}{e}");
    assert!(e.contains("s3://data/team/absent.parquet"), "{e}");
    let left: Vec<_> = std::fs::read_dir(&copies).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert!(left.is_empty(), "temporary copies left: {left:?}");
}
