//! The invalid spec fixtures under tests/specs/invalid: each one fails with
//! exit code 2 and exactly the errors in its .expect file (field path, file,
//! line, column, and what would be valid), and no request reaches a cluster.

use std::io::ErrorKind;
use std::net::TcpListener;
use std::path::PathBuf;

use crate::helpers::{Run, command};

/// How many fixtures tests/specs/invalid holds: a fixture deleted (or added
/// without updating this number) fails the test.
const FIXTURES: usize = 72;

fn fixtures() -> Vec<PathBuf> {
    let dir = crate::repo().join("tests/specs/invalid");
    let mut out: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            matches!(
                p.extension().and_then(|e| e.to_str()),
                Some("yaml" | "json" | "yml")
            )
        })
        .collect();
    out.sort();
    out
}

fn run_in(dir: &std::path::Path, args: &[&str], kubeconfig: &std::path::Path) -> Run {
    let out = command(args, Some(kubeconfig), &[])
        .current_dir(dir)
        .output()
        .expect("run");
    Run::of(&out)
}

#[test]
fn every_invalid_spec_fails_with_its_expected_errors_and_contacts_no_cluster() {
    // a listener that stands in for every cluster: any connection to it is a
    // request that should not have been made
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.set_nonblocking(true).expect("nonblocking");
    let port = listener.local_addr().expect("addr").port();
    let (_dir, kubeconfig) = crate::write_temp(
        "kubeconfig",
        &format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: m\n  cluster:\n    server: https://127.0.0.1:{port}\ncontexts:\n- name: m\n  context: {{cluster: m, user: m}}\ncurrent-context: m\nusers:\n- name: m\n  user: {{token: not-a-real-token}}\n"
        ),
    );
    let files = fixtures();
    let names: Vec<_> = files
        .iter()
        .filter_map(|f| f.file_name().and_then(|n| n.to_str()))
        .collect();
    assert_eq!(
        files.len(),
        FIXTURES,
        "tests/specs/invalid holds {} fixtures, expected {FIXTURES}: {names:?}",
        files.len()
    );
    // every fixture has its expected errors, and no .expect is left alone
    let expects = std::fs::read_dir(crate::repo().join("tests/specs/invalid"))
        .expect("fixtures dir")
        .filter_map(|e| e.ok())
        .filter(|e| e.path().extension().and_then(|x| x.to_str()) == Some("expect"))
        .count();
    assert_eq!(expects, FIXTURES, "one .expect per fixture");
    let mut failures = Vec::new();
    for f in &files {
        let dir = f.parent().expect("parent");
        let name = f.file_name().and_then(|n| n.to_str()).expect("name");
        let expect_path = f.with_extension("expect");
        let expected = std::fs::read_to_string(&expect_path)
            .unwrap_or_else(|e| panic!("{}: {e}", expect_path.display()));
        for verb in ["validate", "register"] {
            let run = run_in(dir, &[verb, "-f", name], &kubeconfig);
            if run.code != 2 {
                failures.push(format!(
                    "{name} ({verb}): exit {} instead of 2\n{}",
                    run.code, run.stderr
                ));
                continue;
            }
            if run.stderr.trim_end() != expected.trim_end() {
                failures.push(format!(
                    "{name} ({verb}): stderr differs\n--- expected\n{}\n--- got\n{}",
                    expected.trim_end(),
                    run.stderr.trim_end()
                ));
            }
            if !run.stdout.is_empty() {
                failures.push(format!(
                    "{name} ({verb}): printed on stdout: {}",
                    run.stdout
                ));
            }
        }
    }
    match listener.accept() {
        Err(e) if e.kind() == ErrorKind::WouldBlock => {}
        Ok((_, peer)) => failures.push(format!(
            "a request reached the stand-in cluster from {peer}"
        )),
        Err(e) => failures.push(format!("accept: {e}")),
    }
    assert!(
        failures.is_empty(),
        "{} problem(s):\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

#[test]
fn every_example_spec_is_valid() {
    let dir = crate::repo().join("examples");
    let mut n = 0;
    for e in std::fs::read_dir(&dir).expect("examples") {
        let p = e.expect("entry").path();
        if p.extension().and_then(|e| e.to_str()) != Some("yaml") {
            continue;
        }
        n += 1;
        let run = crate::nautes(&["validate", "-f", p.to_str().expect("utf8")], None, None);
        assert_eq!(run.code, 0, "{}: {}", p.display(), run.stderr);
    }
    assert!(n >= 3, "expected an example per kind of cluster, found {n}");
}

#[test]
fn a_spec_on_stdin_is_read_and_named_stdin_in_errors() {
    let run = crate::nautes(
        &["validate", "-f", "-"],
        None,
        Some("api_server: https://10.0.0.5:6443\n"),
    );
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("<stdin>:"), "{}", run.stderr);
}

#[test]
fn secrets_in_a_spec_never_appear_in_validation_output() {
    let token = "s3cr3t-t0ken-value-do-not-print";
    let spec = format!(
        "name: leak-test\napi_server: https://10.0.0.5:6443\ncluster_kind: kubernetes\ncluster_type: physical\nusage: worker\ntraefik: {{http_node_port: 80}}\nkubeconfig: |\n  apiVersion: v1\n  kind: Config\n  clusters: []\n  users:\n  - name: u\n    user: {{token: {token}}}\n"
    );
    let run = crate::nautes(
        &["validate", "-v", "-f", "-", "-o", "json"],
        None,
        Some(&spec),
    );
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        !run.stderr.contains(token) && !run.stdout.contains(token),
        "the token leaked:\n{}",
        run.stderr
    );
}
