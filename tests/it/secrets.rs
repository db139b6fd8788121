//! No secret in any output: every command, run against the real test bed,
//! with canaries where secrets live (a token in the spec's kubeconfig, the
//! spec's client key, a token in the management kubeconfig, the stderr of
//! an exec credential plugin), in plain mode and on a terminal (a pty).
//! And what Argo CD is told about TLS comes from the spec, never from the
//! user's own --insecure-skip-tls-verify.

use std::path::Path;

use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use serde_json::{Value, json};

use crate::helpers::*;
use crate::testbed::TestBed;

const SPEC_CANARY: &str = "CANARY-spec-4b1d93e0";
const MGMT_CANARY: &str = "CANARY-mgmt-a8c27f51";
const EXEC_CANARY: &str = "CANARY-exec-0e6d3b72";

/// A kubeconfig with one more (unused) user holding `token`.
fn with_canary_user(kubeconfig: &str, token: &str) -> String {
    assert!(kubeconfig.contains("\nusers:\n"), "{kubeconfig}");
    kubeconfig.replacen(
        "\nusers:\n",
        &format!("\nusers:\n- name: canary\n  user:\n    token: {token}\n"),
        1,
    )
}

/// The client key of a test-bed kubeconfig: a secret the spec carries.
fn client_key(kubeconfig: &str) -> String {
    kubeconfig
        .lines()
        .find_map(|l| l.trim().strip_prefix("client-key-data: "))
        .expect("client-key-data")
        .to_string()
}

fn assert_clean(what: &str, stdout: &str, stderr: &str, secrets: &[&str]) {
    for s in secrets {
        assert!(
            !stdout.contains(s) && !stderr.contains(s),
            "{what}: a secret ({}...) was printed:\nstdout:\n{stdout}\nstderr:\n{stderr}",
            &s[..s.len().min(12)]
        );
    }
}

/// The Argo CD cluster Secret's tlsClientConfig.insecure.
async fn argocd_insecure(mgmt: &kube::Client, name: &str) -> bool {
    let s = Api::<Secret>::namespaced(mgmt.clone(), "argocd")
        .get(&format!("cluster-{name}"))
        .await
        .expect("Argo CD cluster Secret");
    let config = s
        .data
        .expect("data")
        .get("config")
        .expect("config")
        .0
        .clone();
    let config: Value = serde_json::from_slice(&config).expect("config JSON");
    config["tlsClientConfig"]["insecure"]
        .as_bool()
        .expect("tlsClientConfig.insecure")
}

/// Runs the binary on a pseudo-terminal (util-linux `script`), so the live
/// terminal mode of progress is what is printed.
fn on_pty(args: &[&str], mgmt: &Path) -> (i32, String) {
    let mut line = crate::binary().display().to_string();
    for a in args {
        line.push(' ');
        line.push_str(&format!("'{a}'"));
    }
    let cmd = command(&[], Some(mgmt), &[]);
    let mut script = std::process::Command::new("script");
    script.args(["-qefc", &line, "/dev/null"]);
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => script.env(k, v),
            None => script.env_remove(k),
        };
    }
    script.env_remove("NO_COLOR").env("TERM", "xterm-256color");
    let out = script.output().expect("script");
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code().unwrap_or(-1), text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_command_prints_a_secret_and_argo_cd_tls_comes_from_the_spec() {
    let bed = TestBed::start(&["management", "worker"]);
    let worker = bed.cluster("worker").clone();
    let mgmt = client(&bed.cluster("management").kubeconfig).await;
    let name = "canary";

    // the management kubeconfig with a canary token beside the real user
    let mgmt_text =
        std::fs::read_to_string(&bed.cluster("management").kubeconfig).expect("kubeconfig");
    let (_m, mgmt_kc) = write_temp(
        "mgmt.kubeconfig",
        &with_canary_user(&mgmt_text, MGMT_CANARY),
    );
    // the spec: the worker's kubeconfig with a canary token beside it
    let worker_text = std::fs::read_to_string(&worker.kubeconfig).expect("kubeconfig");
    let key = client_key(&worker_text);
    let mut canaried = worker.clone();
    let (_w, wk) = write_temp(
        "worker.kubeconfig",
        &with_canary_user(&worker_text, SPEC_CANARY),
    );
    canaried.kubeconfig = wk;
    let (_d, spec_path) = write_temp(
        "spec.json",
        &physical_spec(name, "worker", &canaried, json!({})),
    );
    let sp = spec_path.to_str().expect("utf8");
    let secrets = [SPEC_CANARY, MGMT_CANARY, EXEC_CANARY, key.as_str()];

    // every command, in plain and in JSON progress, most verbose
    let commands: Vec<Vec<&str>> = vec![
        vec!["version"],
        vec!["validate", "-f", sp],
        vec!["validate", "-f", sp, "-o", "json"],
        vec!["render", "-f", sp],
        vec!["register", "-f", sp, "--dry-run=client", "-o", "yaml"],
        vec!["diff", "-f", sp],
        vec!["register", "-f", sp, "--insecure-skip-tls-verify"],
        vec!["register", "-f", sp, "-o", "json"],
        vec!["get", name, "-o", "yaml"],
        vec!["list", "-o", "json"],
        vec!["status", name, "-o", "json"],
        vec!["rotate-credentials", name],
    ];
    for args in &commands {
        for progress in ["plain", "json"] {
            let mut full = args.clone();
            full.extend(["-vv", "--progress", progress]);
            let run = nautes(&full, Some(&mgmt_kc), None);
            assert_eq!(run.code, 0, "{full:?}: {}", run.stderr);
            assert_clean(&format!("{full:?}"), &run.stdout, &run.stderr, &secrets);
        }
    }
    // the user's --insecure-skip-tls-verify above was for their own
    // connections: Argo CD still verifies, before and after a rotation
    assert!(!argocd_insecure(&mgmt, name).await);

    // the live terminal mode
    let (code, text) = on_pty(&["register", "-f", sp, "-vv"], &mgmt_kc);
    assert_eq!(code, 0, "{text}");
    assert!(
        text.contains("\x1b["),
        "no terminal colour: the run did not see a terminal:\n{text}"
    );
    assert_clean("register on a pty", &text, "", &secrets);

    // an exec credential plugin that fails with a secret on its stderr
    let plugin = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: m\n  cluster: {{server: '{}', insecure-skip-tls-verify: true}}\nusers:\n- name: e\n  user:\n    exec:\n      apiVersion: client.authentication.k8s.io/v1\n      command: sh\n      args: ['-c', 'echo token {EXEC_CANARY} expired >&2; exit 1']\n      interactiveMode: Never\ncontexts:\n- name: e\n  context: {{cluster: m, user: e}}\ncurrent-context: e\n",
        bed.cluster("management").server
    );
    let (_e, exec_kc) = write_temp("exec.kubeconfig", &plugin);
    for args in [vec!["list"], vec!["get", name], vec!["destroy", name]] {
        let run = nautes(&args, Some(&exec_kc), None);
        assert_eq!(run.code, 5, "{args:?}: {}", run.stderr);
        assert!(
            run.stderr.contains("exec credential plugin"),
            "{args:?}: {}",
            run.stderr
        );
        assert_clean(
            &format!("{args:?} (exec)"),
            &run.stdout,
            &run.stderr,
            &secrets,
        );
    }

    // what Argo CD gets comes from the spec: insecure_skip_check, kept by
    // a rotation
    let (_i, insecure_path) = write_temp(
        "insecure.json",
        &physical_spec(
            name,
            "worker",
            &canaried,
            json!({"insecure_skip_check": true}),
        ),
    );
    let ip = insecure_path.to_str().expect("utf8");
    nautes(&["register", "-f", ip], Some(&mgmt_kc), None).ok();
    assert!(argocd_insecure(&mgmt, name).await);
    nautes(&["rotate-credentials", name], Some(&mgmt_kc), None).ok();
    assert!(
        argocd_insecure(&mgmt, name).await,
        "rotate kept the spec's choice"
    );
    nautes(&["register", "-f", sp], Some(&mgmt_kc), None).ok();
    assert!(!argocd_insecure(&mgmt, name).await);

    let run = nautes(&["destroy", name, "-vv"], Some(&mgmt_kc), None);
    run.ok();
    assert_clean("destroy", &run.stdout, &run.stderr, &secrets);
}
