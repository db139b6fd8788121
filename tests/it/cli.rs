//! The command line as a user meets it: help, version, completion, errors,
//! exit codes, and the offline commands. Snapshots (insta) pin stdout,
//! stderr and exit codes.

use crate::helpers::{Run, charts_copy, command, edit_chart_yaml, nautes};

fn snapshot(args: &[&str]) -> String {
    // without the NAUTES_* variables the test bed sets, so the text does not
    // depend on the environment
    let out = command(args, None, &[])
        .env_remove("NAUTES_CHARTS_DIR")
        .env_remove("NAUTES_HELM")
        .output()
        .expect("run");
    let run = Run::of(&out);
    let repo = crate::repo().display().to_string();
    format!(
        "$ kubectl nautes {}\nexit: {}\n--- stdout\n{}--- stderr\n{}",
        args.join(" "),
        run.code,
        run.stdout.replace(&repo, "[REPO]"),
        run.stderr.replace(&repo, "[REPO]")
    )
}

#[test]
fn help_reads_as_a_kubectl_plugin() {
    let text = snapshot(&["--help"]);
    assert!(text.contains("Usage: kubectl nautes"), "{text}");
    insta::assert_snapshot!("help", text);
    insta::assert_snapshot!("register_help", snapshot(&["register", "--help"]));
}

#[test]
fn version_prints_version_commit_and_kubernetes_api() {
    let run = nautes(&["version", "-o", "json"], None, None);
    run.ok();
    let v: serde_json::Value = serde_json::from_str(&run.stdout).expect("json");
    assert_eq!(v["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(v["kubernetesApi"], "v1.36");
    assert!(v["gitCommit"].as_str().is_some_and(|c| !c.is_empty()));
    let plain = nautes(&["version"], None, None);
    assert!(
        plain.stdout.starts_with("kubectl-nautes v"),
        "{}",
        plain.stdout
    );
}

#[test]
fn completion_scripts_are_generated_for_every_shell() {
    for shell in ["bash", "zsh", "fish", "powershell"] {
        let run = nautes(&["completion", shell], None, None);
        run.ok();
        assert!(
            run.stdout.contains("register") && run.stdout.contains("destroy"),
            "{shell}"
        );
    }
}

#[test]
fn usage_errors_exit_2_and_say_what_is_valid() {
    insta::assert_snapshot!("missing_filename", snapshot(&["register"]));
    insta::assert_snapshot!("unknown_command", snapshot(&["registr"]));
    insta::assert_snapshot!(
        "bad_timeout",
        snapshot(&["register", "-f", "x.yaml", "--timeout", "5x"])
    );
    let run = nautes(&["destroy", "Not_A_Name"], None, None);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("DNS-1123"), "{}", run.stderr);
}

#[test]
fn a_missing_spec_file_is_an_input_error() {
    let run = nautes(&["validate", "-f", "/nonexistent/cluster.yaml"], None, None);
    assert_eq!(run.code, 2);
    assert!(
        run.stderr
            .contains("/nonexistent/cluster.yaml: cannot read"),
        "{}",
        run.stderr
    );
}

#[test]
fn an_unreachable_management_cluster_is_exit_5_with_one_line() {
    // a port nothing listens on
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = l.local_addr().expect("addr").port();
    drop(l);
    let kc = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: m\n  cluster: {{server: 'https://127.0.0.1:{port}'}}\ncontexts:\n- name: m\n  context: {{cluster: m, user: m}}\ncurrent-context: m\nusers:\n- name: m\n  user: {{token: abc}}\n"
    );
    let (_d, path) = crate::write_temp("kc", &kc);
    let run = nautes(&["list"], Some(&path), None);
    assert_eq!(run.code, 5, "{}", run.stderr);
    assert_eq!(run.stderr.trim().lines().count(), 1, "{}", run.stderr);
    assert!(run.stderr.contains("management cluster"), "{}", run.stderr);
}

#[test]
fn validate_prints_the_spec_with_defaults_and_without_the_kubeconfig() {
    let ex = crate::repo().join("examples/cluster-physical-worker.yaml");
    let run = nautes(
        &["validate", "-f", ex.to_str().expect("utf8"), "-o", "json"],
        None,
        None,
    );
    run.ok();
    let v: serde_json::Value = serde_json::from_str(&run.stdout).expect("json");
    assert_eq!(v["traefik"]["http_node_port"], 30080);
    assert!(
        v["argocd_host"]
            .as_str()
            .is_some_and(|h| h.starts_with("argocd.")),
        "{v}"
    );
    assert!(
        v.get("kubeconfig").is_none(),
        "the kubeconfig must not be printed"
    );
}

#[test]
fn rendered_plans_per_kind_of_cluster_are_stable() {
    for (kind, file) in [
        ("physical_worker", "cluster-physical-worker.yaml"),
        ("host", "cluster-host.yaml"),
        ("virtual_worker", "cluster-virtual-worker.yaml"),
    ] {
        let ex = crate::repo().join("examples").join(file);
        let run = nautes(
            &["render", "--plan", "-f", ex.to_str().expect("utf8")],
            None,
            None,
        );
        run.ok();
        insta::assert_snapshot!(format!("plan_{kind}"), run.stdout);
    }
}

#[test]
fn rendered_objects_per_kind_of_cluster_are_labelled_and_stable() {
    if std::env::var_os("NAUTES_TESTBED_BIN").is_none() {
        panic!("this test needs helm from the test bed: run it with `make test`");
    }
    for (kind, file) in [
        ("physical_worker", "cluster-physical-worker.yaml"),
        ("host", "cluster-host.yaml"),
        ("virtual_worker", "cluster-virtual-worker.yaml"),
    ] {
        let ex = crate::repo().join("examples").join(file);
        let run = nautes(
            &["render", "-f", ex.to_str().expect("utf8"), "-o", "json"],
            None,
            None,
        );
        run.ok();
        let list: serde_json::Value = serde_json::from_str(&run.stdout).expect("json");
        let items = list["items"].as_array().expect("items");
        let mut summary = Vec::new();
        for o in items {
            let labels = &o["metadata"]["labels"];
            assert_eq!(
                labels["app.kubernetes.io/managed-by"], "kubectl-nautes",
                "{o}"
            );
            assert!(labels["nautes.io/cluster"].is_string(), "{o}");
            if o["kind"] == "Secret" {
                for v in o["data"].as_object().into_iter().flat_map(|m| m.values()) {
                    assert_eq!(v, "<redacted>");
                }
            }
            summary.push(format!(
                "{} {} {}/{}",
                labels["nautes.io/component"].as_str().unwrap_or(""),
                o["kind"].as_str().unwrap_or(""),
                o["metadata"]["namespace"].as_str().unwrap_or("-"),
                o["metadata"]["name"].as_str().unwrap_or("")
            ));
        }
        summary.sort();
        insta::assert_snapshot!(format!("objects_{kind}"), summary.join("\n"));
    }
}

#[test]
fn register_dry_run_client_prints_redacted_objects_and_contacts_no_cluster() {
    let ex = crate::repo().join("examples/cluster-physical-worker.yaml");
    let run = nautes(
        &[
            "register",
            "-f",
            ex.to_str().expect("utf8"),
            "--dry-run=client",
        ],
        None,
        None,
    );
    run.ok();
    assert!(
        run.stdout.contains("kind: Deployment"),
        "{}",
        &run.stdout[..run.stdout.len().min(500)]
    );
}

#[test]
fn helm_missing_is_exit_8_and_says_how_to_fix_it() {
    let ex = crate::repo().join("examples/cluster-physical-worker.yaml");
    let run = nautes(
        &[
            "render",
            "-f",
            ex.to_str().expect("utf8"),
            "--helm",
            "/nonexistent/helm",
        ],
        None,
        None,
    );
    assert_eq!(run.code, 8, "{}", run.stderr);
    assert!(run.stderr.contains("--helm"), "{}", run.stderr);
}

#[test]
fn a_chart_missing_from_charts_dir_is_exit_8_and_names_it() {
    let dir = tempfile::tempdir().expect("dir");
    let ex = crate::repo().join("examples/cluster-host.yaml");
    let run = nautes(
        &[
            "render",
            "-f",
            ex.to_str().expect("utf8"),
            "--charts-dir",
            dir.path().to_str().expect("utf8"),
        ],
        None,
        None,
    );
    assert_eq!(run.code, 8, "{}", run.stderr);
    assert!(
        run.stderr.contains("traefik") && run.stderr.contains("helm pull"),
        "{}",
        run.stderr
    );
}

fn render_with(example: &str, charts: &std::path::Path) -> Run {
    let ex = crate::repo().join("examples").join(example);
    // no management cluster: KUBECONFIG points nowhere, so render would fail
    // if it tried to contact one
    nautes(
        &[
            "render",
            "-f",
            ex.to_str().expect("utf8"),
            "--charts-dir",
            charts.to_str().expect("utf8"),
        ],
        None,
        None,
    )
}

#[test]
fn charts_whose_version_or_name_differ_from_the_catalog_are_exit_8_named_together() {
    let charts = charts_copy();
    // a chart of the first stage (the vcluster in the host) and one of the
    // second (inside the vcluster): both named in the one error
    edit_chart_yaml(
        charts.path(),
        "vcluster",
        "version: 0.36.1",
        "version: 0.0.1",
    );
    edit_chart_yaml(
        charts.path(),
        "argo-cd",
        "name: argo-cd",
        "name: argo-cd-fork",
    );
    let run = render_with("cluster-virtual-worker.yaml", charts.path());
    assert_eq!(run.code, 8, "{}", run.stderr);
    assert!(run.stdout.is_empty(), "rendered anyway:\n{}", run.stdout);
    for needed in [
        "chart vcluster of component vcluster",
        "is version 0.0.1, the catalog pins 0.36.1",
        "names chart \"argo-cd-fork\"",
        "pins chart argo-cd 10.1.1",
        "2 problem(s)",
        "nothing was rendered",
    ] {
        assert!(
            run.stderr.contains(needed),
            "missing {needed:?} in:\n{}",
            run.stderr
        );
    }
    // the unbroken copy renders: the check refuses only what differs
    let good = charts_copy();
    render_with("cluster-virtual-worker.yaml", good.path()).ok();
}

#[test]
fn every_missing_dependency_of_every_chart_is_named_in_one_error() {
    let charts = charts_copy();
    // Argo CD's vendored redis-ha removed, and two dependencies declared by
    // Traefik's chart that it does not carry
    std::fs::remove_dir_all(charts.path().join("argo-cd/charts/redis-ha")).expect("rm");
    let p = charts.path().join("traefik/Chart.yaml");
    let mut text = std::fs::read_to_string(&p).expect("read");
    text.push_str("dependencies:\n  - name: traefik-crds\n    version: 1.2.0\n    repository: https://traefik.github.io/charts\n  - name: traefik-hub\n    version: 0.1.0\n    condition: hub.enabled\n");
    std::fs::write(&p, text).expect("write");
    let run = render_with("cluster-physical-worker.yaml", charts.path());
    assert_eq!(run.code, 8, "{}", run.stderr);
    assert!(run.stdout.is_empty(), "rendered anyway:\n{}", run.stdout);
    for needed in [
        "chart argo-cd of component argocd",
        "missing under its charts/ directory: redis-ha 4.38.0",
        "chart traefik of component traefik",
        "missing under its charts/ directory: traefik-crds 1.2.0, traefik-hub 0.1.0",
        "2 problem(s)",
    ] {
        assert!(
            run.stderr.contains(needed),
            "missing {needed:?} in:\n{}",
            run.stderr
        );
    }
}

/// Runs the binary with stdin from a file, killing it after 60 s (a hang
/// detector: reading an endless input to its end never finishes).
fn run_with_stdin_file(args: &[&str], stdin: &std::path::Path) -> crate::Run {
    use std::io::Read;
    let mut child = std::process::Command::new(crate::binary())
        .args(args)
        .env("NO_COLOR", "1")
        .env("KUBECONFIG", "/nonexistent/kubeconfig")
        .stdin(std::fs::File::open(stdin).expect("open stdin"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run");
    let began = std::time::Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if began.elapsed() > std::time::Duration::from_secs(60) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{args:?} still running after 60 s: it reads its input without a limit");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let (mut stdout, mut stderr) = (String::new(), String::new());
    if let Some(mut s) = child.stdout.take() {
        let _ = s.read_to_string(&mut stdout);
    }
    if let Some(mut s) = child.stderr.take() {
        let _ = s.read_to_string(&mut stderr);
    }
    crate::Run {
        code: status.code().unwrap_or(-1),
        stdout,
        stderr,
    }
}

#[test]
fn a_spec_larger_than_one_mebibyte_is_exit_2_and_not_read_to_its_end() {
    // /dev/zero never ends: the spec reader stops one byte past the limit
    let limit = "(document): is larger than 1 MiB (1048576 bytes), the limit; valid: a cluster spec of at most 1 MiB";
    let zero = std::path::Path::new("/dev/zero");
    for (args, file) in [
        (["validate", "-f", "-"], "<stdin>"),
        (["render", "-f", "-"], "<stdin>"),
        (["validate", "-f", "/dev/zero"], "/dev/zero"),
        (["register", "-f", "/dev/zero"], "/dev/zero"),
    ] {
        let run = run_with_stdin_file(&args, zero);
        assert_eq!(run.code, 2, "{args:?}: {}", run.stderr);
        assert_eq!(
            run.stderr.trim_end(),
            format!("error: {file}:1:1: {limit}"),
            "{args:?}"
        );
        assert!(run.stdout.is_empty(), "{args:?}: {}", run.stdout);
    }
    // a regular file one byte over the limit, and one at the limit
    let example =
        std::fs::read_to_string(crate::repo().join("examples/cluster-host.yaml")).expect("example");
    let pad = |n: usize| format!("{example}\n#{}\n", "x".repeat(n - example.len() - 3));
    let (_dir, over) = crate::write_temp("over.yaml", &pad(1024 * 1024 + 1));
    let run = crate::nautes(
        &["validate", "-f", over.to_str().expect("utf8")],
        None,
        None,
    );
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert_eq!(
        run.stderr.trim_end(),
        format!("error: {}:1:1: {limit}", over.display())
    );
    let (_dir, at) = crate::write_temp("at.yaml", &pad(1024 * 1024));
    assert_eq!(std::fs::metadata(&at).expect("size").len(), 1024 * 1024);
    let run = crate::nautes(&["validate", "-f", at.to_str().expect("utf8")], None, None);
    assert_eq!(run.code, 0, "{}", run.stderr);
}

#[test]
fn a_duration_too_long_for_the_clock_is_a_usage_error_not_a_panic() {
    let ex = crate::repo().join("examples/cluster-physical-worker.yaml");
    let ex = ex.to_str().expect("utf8");
    let huge = "18446744073709551615";
    let expected_reason = format!(
        "\"{huge}\" is longer than the maximum, 8760h (365 days); valid: a duration of at most 8760h, e.g. 90s, 5m, 1h"
    );
    for (args, flag) in [
        (
            vec!["register", "-f", ex, "--timeout", huge],
            "--timeout <TIMEOUT>",
        ),
        (
            vec!["destroy", "cluster-x", "--timeout", huge],
            "--timeout <TIMEOUT>",
        ),
        (
            vec!["rotate-credentials", "cluster-x", "--timeout", huge],
            "--timeout <TIMEOUT>",
        ),
        (
            vec!["--request-timeout", huge, "list"],
            "--request-timeout <DURATION>",
        ),
        (
            vec!["validate", "-f", ex, "--request-timeout", huge],
            "--request-timeout <DURATION>",
        ),
    ] {
        let run = nautes(&args, None, None);
        assert_eq!(run.code, 2, "{args:?}: {}", run.stderr);
        assert!(
            run.stderr.contains(&format!(
                "invalid value '{huge}' for '{flag}': {expected_reason}"
            )),
            "{args:?}: {}",
            run.stderr
        );
        assert!(!run.stderr.contains("panicked"), "{args:?}: {}", run.stderr);
    }
    // the maximum itself is accepted (validate is offline and ignores it)
    let run = nautes(
        &["validate", "-f", ex, "--request-timeout", "8760h"],
        None,
        None,
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
}

#[test]
fn a_spec_kubeconfig_that_runs_commands_or_reads_files_needs_allow_exec_kubeconfig() {
    let dir = crate::repo().join("tests/specs/invalid");
    for (fixture, field) in [
        ("66-kubeconfig-exec.yaml", "kubeconfig.users[0].user.exec:"),
        (
            "67-kubeconfig-auth-provider.yaml",
            "kubeconfig.users[0].user.auth-provider:",
        ),
        (
            "68-kubeconfig-token-file.yaml",
            "kubeconfig.users[0].user.tokenFile:",
        ),
        (
            "69-kubeconfig-client-key-path.yaml",
            "kubeconfig.users[0].user.client-key:",
        ),
    ] {
        let path = dir.join(fixture);
        let path = path.to_str().expect("utf8");
        // without the flag: exit 2 naming the field, for every command that
        // takes a spec (nothing is contacted: the management kubeconfig
        // does not exist)
        for verb in ["validate", "render", "diff", "register"] {
            let run = nautes(&[verb, "-f", path], None, None);
            assert_eq!(run.code, 2, "{fixture} ({verb}): {}", run.stderr);
            assert!(
                run.stderr.contains(field) && run.stderr.contains("--allow-exec-kubeconfig"),
                "{fixture} ({verb}): {}",
                run.stderr
            );
            assert!(run.stdout.is_empty(), "{fixture} ({verb}): {}", run.stdout);
        }
        // with it: the spec is valid
        let run = nautes(
            &["validate", "--allow-exec-kubeconfig", "-f", path],
            None,
            None,
        );
        assert_eq!(run.code, 0, "{fixture}: {}", run.stderr);
        assert!(
            run.stdout.contains("valid physical worker"),
            "{}",
            run.stdout
        );
    }
}

#[test]
fn a_kubeconfig_that_breaks_its_schema_is_named_without_the_secret_beside_it() {
    let canary = "CANARY-7f3a9c2e-TOKEN";
    let spec = format!(
        "name: cluster-demo\napi_server: https://10.0.0.5:6443\ncluster_type: physical\nusage: worker\nkubeconfig: |\n  apiVersion: v1\n  kind: Config\n  clusters:\n  - name: c\n    cluster: {{server: \"https://10.0.0.5:6443\"}}\n  users:\n  - name: u\n    user:\n      token: {canary}\n      exec: {{command: aws, args: \"--oops\"}}\n"
    );
    let (_dir, path) = crate::write_temp("spec.yaml", &spec);
    let path = path.to_str().expect("utf8");
    for args in [
        vec!["validate", "-f", path],
        vec!["register", "-f", path],
        vec!["register", "--allow-exec-kubeconfig", "-f", path],
        vec!["diff", "-f", path],
        vec!["render", "-f", path],
        vec!["validate", "-v", "-o", "json", "-f", "-"],
    ] {
        let stdin = (args.last() == Some(&"-")).then_some(spec.as_str());
        let run = nautes(&args, None, stdin);
        assert_eq!(run.code, 2, "{args:?}: {}", run.stderr);
        assert!(
            run.stderr
                .contains(":15:34: kubeconfig.users[0].user.exec.args: expected a list of strings, found a string; valid: a list of strings"),
            "{args:?}: {}",
            run.stderr
        );
        assert!(
            !run.stderr.contains(canary) && !run.stdout.contains(canary),
            "{args:?}: the token leaked:\n{}{}",
            run.stdout,
            run.stderr
        );
        assert!(!run.stderr.contains("oops"), "{args:?}: {}", run.stderr);
    }
}
