//! The command line as a user meets it: help, version, completion, errors,
//! exit codes, and the offline commands. Snapshots (insta) pin stdout,
//! stderr and exit codes.

use crate::helpers::{Run, command, nautes};

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
