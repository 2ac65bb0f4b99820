//! Helpers: the workspace root, a small schema, and the real mlgate and xtask binaries.

#[path = "../xtask/src/nested_cargo.rs"]
mod nested_cargo;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use model::{PipelineConfig, Schema};

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ sits in the workspace").to_path_buf()
}

/// The shared Online Shoppers training file, when `../shared` is present.
pub fn shared_train_csv() -> Option<PathBuf> {
    let path = root().join("../shared/data/online-shoppers/train.csv");
    if path.is_file() {
        Some(path)
    } else {
        eprintln!("skipped: {} is absent (the shared data lives beside the repository)", path.display());
        None
    }
}

/// A configuration with one column of each kind, for small hand-written files.
pub const SMALL_CONFIG: &str = include_str!("data/small.toml");

/// The parsed small configuration.
pub fn small_config() -> PipelineConfig {
    PipelineConfig::parse(SMALL_CONFIG, Path::new("small.toml")).expect("the small config is valid")
}

/// The small configuration's schema.
pub fn small_schema() -> Schema {
    small_config().schema
}

/// `rows` valid rows of the small schema (header included), deterministic and learnable.
pub fn small_csv(rows: usize) -> String {
    let mut s = String::from("id,amount,visits,region,member,bought\n");
    for i in 0..rows {
        let amount = (i * 37 % 1000) as f64 / 2.0;
        let visits = i % 7;
        let region = if i % 3 == 0 { "south" } else { "north" };
        let member = if i % 4 == 0 { "TRUE" } else { "FALSE" };
        let bought = if amount + 40.0 * visits as f64 > 330.0 { "yes" } else { "no" };
        s.push_str(&format!("r{i},{amount},{visits},{region},{member},{bought}\n"));
    }
    s
}

/// `csv` with `edit(line_index, fields)` applied to each data row's comma-split fields (the
/// header, index 0, kept as it is).
pub fn edit_rows(csv: &str, edit: impl Fn(usize, &mut Vec<String>)) -> String {
    csv.lines()
        .enumerate()
        .map(|(i, l)| {
            if i == 0 {
                return format!("{l}\n");
            }
            let mut fields: Vec<String> = l.split(',').map(String::from).collect();
            edit(i, &mut fields);
            fields.join(",") + "\n"
        })
        .collect()
}

/// A binary of the workspace, built once per test run from the current sources.
fn binary(package: &str, cell: &'static OnceLock<PathBuf>) -> &'static Path {
    cell.get_or_init(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.args(["build", "--quiet", "--package", package]).current_dir(root());
        strip_cargo_env(&mut cmd);
        let status = cmd.status().expect("cargo runs");
        assert!(status.success(), "cargo build --package {package} failed");
        let target = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| root().join("target"));
        let bin = target.join("debug").join(format!("{package}{}", std::env::consts::EXE_SUFFIX));
        assert!(bin.is_file(), "{} was not built", bin.display());
        bin
    })
}

/// The `mlgate` binary users run, built once per test run.
pub fn mlgate_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    binary("mlgate", &BIN)
}

/// This repository's `xtask` binary (test, bench, gen-data, ci), built once per test run.
pub fn xtask_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    binary("xtask", &BIN)
}

/// Removes what cargo hands a test process and a nested cargo must not see (package
/// variables make build scripts that watch them rerun): xtask's own list.
pub fn strip_cargo_env(cmd: &mut Command) {
    for key in nested_cargo::inherited_cargo_variables() {
        cmd.env_remove(key);
    }
}

/// Runs `mlgate` with `args` in `dir`, GitHub Actions variables removed unless given in `env`.
pub fn mlgate(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    run(mlgate_bin(), dir, args, env)
}

/// Runs this repository's `xtask` with `args` in `dir`, as [`mlgate`] runs mlgate.
pub fn xtask(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    run(xtask_bin(), dir, args, env)
}

fn run(bin: &Path, dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(bin);
    cmd.args(args).current_dir(dir).env_remove("GITHUB_ACTIONS").env_remove("SOURCE_DATE_EPOCH");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("the binary runs")
}

/// stdout and stderr of an output, as text.
pub fn text(output: &Output) -> (String, String) {
    (String::from_utf8_lossy(&output.stdout).into_owned(), String::from_utf8_lossy(&output.stderr).into_owned())
}

/// Stops a server by its process id: SIGTERM, then SIGKILL after three seconds.
pub fn stop_server(child: &mut std::process::Child) {
    if child.try_wait().ok().flatten().is_some() {
        return;
    }
    // SAFETY: kill has no memory-safety preconditions; the pid is our own child's.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    for _ in 0..60 {
        if child.try_wait().ok().flatten().is_some() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// A server on a free port of 127.0.0.1 that accepts connections and never answers: a registry
/// (git over HTTP, S3) that hangs. Stopped when dropped.
pub struct Hung {
    /// Its port.
    pub port: u16,
    accepted: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Hung {
    pub fn start() -> Hung {
        Hung::start_on(0)
    }

    /// [`Hung::start`] on a given port (one a server that answered used to hold).
    pub fn start_on(port: u16) -> Hung {
        use std::sync::atomic::Ordering;
        let listener = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let accepted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (count, stopped) = (accepted.clone(), stop.clone());
        std::thread::spawn(move || {
            // Held open, never read from nor written to.
            let mut held = Vec::new();
            while !stopped.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        held.push(stream);
                        count.fetch_add(1, Ordering::SeqCst);
                    }
                    Err(_) => std::thread::sleep(std::time::Duration::from_millis(10)),
                }
            }
        });
        Hung { port, accepted, stop }
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> usize {
        self.accepted.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl Drop for Hung {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

/// The command lines of every process now, as text (arguments separated by spaces).
pub fn command_lines() -> Vec<(u32, String)> {
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    entries
        .flatten()
        .filter_map(|e| {
            let pid = e.file_name().to_str()?.parse().ok()?;
            let bytes = std::fs::read(e.path().join("cmdline")).ok()?;
            Some((pid, String::from_utf8_lossy(&bytes).replace('\0', " ")))
        })
        .collect()
}
