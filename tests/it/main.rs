//! The one integration test binary: CLI tests, spec fixtures, and end-to-end
//! tests against real control planes from the test bed (see testbed.rs).
//! Nothing here is a mock: kube-apiserver, kube-controller-manager, helm and
//! kubectl are the real programs. kwok stands in for kubelets (Pods become
//! Ready without containers), and where a test plays a component's part
//! (the vcluster writing its kubeconfig Secret) it says so.

mod cli;
mod faults;
mod krew;
mod physical;
mod serve;
mod smoke;
mod specs;
mod testbed;
mod virtual_;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use kube::api::{DynamicObject, ListParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::discovery::{Discovery, verbs};

/// The result of one run of the binary.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    #[track_caller]
    pub fn ok(&self) -> &Self {
        assert_eq!(
            self.code, 0,
            "command failed\nstdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        self
    }
}

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_kubectl-nautes"))
}

/// Runs kubectl-nautes with the management cluster's kubeconfig (if any),
/// the test bed's helm and the project's test charts.
pub fn nautes(args: &[&str], management: Option<&Path>, stdin: Option<&str>) -> Run {
    let mut cmd = Command::new(binary());
    cmd.args(args)
        .env_remove("HTTPS_PROXY")
        .env_remove("HTTP_PROXY")
        .env_remove("https_proxy")
        .env_remove("http_proxy")
        .env_remove("KUBECONFIG")
        .env("NO_COLOR", "1")
        .env("NAUTES_CHARTS_DIR", repo().join("tests/charts"))
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(bin) = std::env::var_os("NAUTES_TESTBED_BIN") {
        cmd.env("NAUTES_HELM", PathBuf::from(bin).join("helm"));
    }
    match management {
        Some(m) => {
            cmd.env("KUBECONFIG", m);
        }
        None => {
            // no management cluster: point at a file that does not exist, so
            // a command that would contact one fails loudly instead of using
            // the developer's own ~/.kube/config
            cmd.env("KUBECONFIG", "/nonexistent/kubeconfig");
        }
    }
    let mut child = cmd.spawn().expect("run kubectl-nautes");
    if let Some(input) = stdin {
        use std::io::Write;
        let mut s = child.stdin.take().expect("stdin");
        s.write_all(input.as_bytes()).expect("write stdin");
    }
    let out = child.wait_with_output().expect("wait for kubectl-nautes");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A kube client from a kubeconfig file.
pub async fn client(kubeconfig: &Path) -> kube::Client {
    let kc = Kubeconfig::read_from(kubeconfig).expect("read kubeconfig");
    let config = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .expect("kube config");
    kube::Client::try_from(config).expect("kube client")
}

/// Every object in a cluster matching a label selector, as "Kind ns/name".
pub async fn labelled(client: &kube::Client, selector: &str) -> Vec<String> {
    let discovery = Discovery::new(client.clone())
        .run_aggregated()
        .await
        .expect("discovery");
    let mut out = Vec::new();
    for group in discovery.groups() {
        for (ar, caps) in group.recommended_resources() {
            if !caps.supports_operation(verbs::LIST) || ar.plural.contains('/') {
                continue;
            }
            let api: kube::Api<DynamicObject> = kube::Api::all_with(client.clone(), &ar);
            if let Ok(list) = api
                .list_metadata(&ListParams::default().labels(selector))
                .await
            {
                for o in list.items {
                    out.push(format!(
                        "{} {}/{}",
                        ar.kind,
                        o.metadata.namespace.unwrap_or_default(),
                        o.metadata.name.unwrap_or_default()
                    ));
                }
            }
        }
    }
    out.sort();
    out
}

/// A physical cluster spec (JSON, which is YAML) for a test cluster.
pub fn physical_spec(
    name: &str,
    usage: &str,
    cluster: &testbed::TestCluster,
    extra: serde_json::Value,
) -> String {
    let kubeconfig = std::fs::read_to_string(&cluster.kubeconfig).expect("read kubeconfig");
    let mut spec = serde_json::json!({
        "name": name,
        "api_server": cluster.server,
        "cluster_kind": "kubernetes",
        "cluster_type": "physical",
        "usage": usage,
        "kubeconfig": kubeconfig,
    });
    if let (Some(s), Some(e)) = (spec.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            s.insert(k.clone(), v.clone());
        }
    }
    serde_json::to_string_pretty(&spec).expect("spec json")
}

/// Writes text to a file in a temp dir and returns both.
pub fn write_temp(name: &str, text: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join(name);
    std::fs::write(&path, text).expect("write");
    (dir, path)
}
