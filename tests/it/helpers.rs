//! What the integration tests share: running the binary (in the foreground
//! or the background) with one environment, reading clusters, waiting, and
//! writing specs. Every test file uses these; none defines its own.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Namespace;
use kube::Api;
use kube::api::{DynamicObject, ListParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::discovery::{Discovery, verbs};
use serde_json::Value;

use crate::testbed;

/// Objects of a cluster carry `nautes.io/cluster=<name>`.
pub const SELECTOR: &str = "nautes.io/cluster=";

/// The result of one run of the binary.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn of(out: &std::process::Output) -> Run {
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

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
/// the test bed's helm and the project's test charts, feeding `stdin`.
pub fn nautes(args: &[&str], management: Option<&Path>, stdin: Option<&str>) -> Run {
    let mut cmd = command(args, management, &[]);
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("run kubectl-nautes");
    if let Some(input) = stdin {
        use std::io::Write;
        let mut s = child.stdin.take().expect("stdin");
        s.write_all(input.as_bytes()).expect("write stdin");
    }
    let out = child.wait_with_output().expect("wait for kubectl-nautes");
    Run::of(&out)
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

/// The binary as every test runs it: the management cluster's kubeconfig
/// (or, with none, a path that does not exist, so a command that would
/// contact one fails loudly instead of using the developer's own
/// ~/.kube/config), the project's test charts, the test bed's helm when the
/// test bed is there, no proxy, no colour; plus extra environment.
pub fn command(args: &[&str], mgmt: Option<&Path>, env: &[(&str, OsString)]) -> Command {
    let mut cmd = Command::new(crate::binary());
    cmd.args(args)
        .env_remove("HTTPS_PROXY")
        .env_remove("HTTP_PROXY")
        .env_remove("https_proxy")
        .env_remove("http_proxy")
        .env_remove("KUBECONFIG")
        .env_remove("NAUTES_KUBECONFIG")
        .env("NO_COLOR", "1")
        .env("NAUTES_CHARTS_DIR", crate::repo().join("tests/charts"))
        .env(
            "KUBECONFIG",
            mgmt.map_or_else(
                || PathBuf::from("/nonexistent/kubeconfig"),
                Path::to_path_buf,
            ),
        )
        .stdin(Stdio::null());
    if let Some(bin) = std::env::var_os("NAUTES_TESTBED_BIN") {
        cmd.env("NAUTES_HELM", PathBuf::from(bin).join("helm"));
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

/// Runs the binary to completion.
pub fn run(args: &[&str], mgmt: Option<&Path>, env: &[(&str, OsString)]) -> Run {
    let out = command(args, mgmt, env)
        .output()
        .expect("run kubectl-nautes");
    Run::of(&out)
}

/// A run of the binary in the background; its output goes to files so a
/// chatty run never blocks on a full pipe.
pub struct Bg {
    pub child: Child,
    pub dir: tempfile::TempDir,
    pub args: String,
}

impl Bg {
    pub fn spawn(args: &[&str], mgmt: &Path, env: &[(&str, OsString)]) -> Bg {
        let dir = tempfile::tempdir().expect("tempdir");
        let out = std::fs::File::create(dir.path().join("stdout")).expect("stdout file");
        let err = std::fs::File::create(dir.path().join("stderr")).expect("stderr file");
        let child = command(args, Some(mgmt), env)
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("spawn kubectl-nautes");
        Bg {
            child,
            dir,
            args: args.join(" "),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// SIGKILL; true when the run was still going (the kill interrupted it).
    pub fn kill(self) -> bool {
        self.kill_or_output().is_none()
    }

    /// SIGKILL; None when the kill interrupted the run, else how it ended
    /// by itself.
    pub fn kill_or_output(mut self) -> Option<Run> {
        if self.kill_running() {
            return None;
        }
        Some(self.finish(Duration::from_secs(1)))
    }

    /// SIGKILL, keeping the run's output readable; true only when the run
    /// died of the signal (it was still running when the signal arrived),
    /// false when it had ended by itself, even a moment before the signal.
    pub fn kill_running(&mut self) -> bool {
        use std::os::unix::process::ExitStatusExt;
        if !self.running() {
            return false;
        }
        let _ = self.child.kill();
        matches!(self.child.wait(), Ok(s) if s.signal() == Some(9))
    }

    /// Sends a signal by name with kill(1) (the crate forbids unsafe code).
    pub fn signal(&self, sig: &str) {
        let st = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.pid().to_string())
            .status()
            .expect("kill(1)");
        assert!(st.success(), "kill -{sig} {} failed", self.pid());
    }

    pub fn output(&self) -> (String, String) {
        let read = |f: &str| {
            String::from_utf8_lossy(&std::fs::read(self.dir.path().join(f)).unwrap_or_default())
                .into_owned()
        };
        (read("stdout"), read("stderr"))
    }

    /// Waits for the run to end (at most `timeout`) and returns its output.
    pub fn finish(mut self, timeout: Duration) -> Run {
        let deadline = Instant::now() + timeout;
        let status = loop {
            if let Some(s) = self.child.try_wait().expect("try_wait") {
                break s;
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                let (o, e) = self.output();
                panic!(
                    "`{}` did not end within {timeout:?}\nstdout:\n{o}\nstderr:\n{e}",
                    self.args
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let (stdout, stderr) = self.output();
        Run {
            code: status.code().unwrap_or(-1),
            stdout,
            stderr,
        }
    }
}

/// Runs, retrying while a lock left by an earlier (killed) run has not
/// expired yet.
pub fn until_unlocked(args: &[&str], mgmt: &Path, env: &[(&str, OsString)]) -> Run {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let r = run(args, Some(mgmt), env);
        if r.code == 3 && r.stderr.contains("is being changed by") && Instant::now() < deadline {
            std::thread::sleep(Duration::from_secs(1));
            continue;
        }
        return r;
    }
}

/// The objects labelled with the cluster's name, as "Kind ns/name", with
/// what legitimately differs between two equal runs normalized:
/// - the token Secret's random suffix (nautes-manager-token-xxxxx);
/// - Endpoints and EndpointSlices, which the endpoint controllers make (and
///   name at random) by copying a Service's labels: not the plugin's objects.
///
/// Duplicates are kept: two token Secrets are not one.
pub async fn objects(c: &kube::Client, name: &str) -> Vec<String> {
    let mut out: Vec<String> = labelled(c, &format!("{SELECTOR}{name}"))
        .await
        .into_iter()
        .filter(|o| !o.starts_with("Endpoints ") && !o.starts_with("EndpointSlice "))
        .map(|o| match o.split_once("/nautes-manager-token-") {
            Some((head, _)) if o.starts_with("Secret ") => {
                format!("{head}/nautes-manager-token-*")
            }
            _ => o,
        })
        .collect();
    out.sort();
    out
}

/// Waits until nothing labelled with the cluster's name is left.
pub async fn wait_nothing_left(c: &kube::Client, name: &str, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let left = objects(c, name).await;
        if left.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what} still holds objects of {name}: {left:#?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// What two object lists differ in, for a readable assertion message.
pub fn difference(a: &[String], b: &[String]) -> String {
    let mut only_a = a.to_vec();
    let mut only_b = b.to_vec();
    for x in b {
        if let Some(i) = only_a.iter().position(|y| y == x) {
            only_a.remove(i);
        }
    }
    for x in a {
        if let Some(i) = only_b.iter().position(|y| y == x) {
            only_b.remove(i);
        }
    }
    format!("only in the first: {only_a:#?}\nonly in the second: {only_b:#?}")
}

pub async fn namespace_exists(c: &kube::Client, ns: &str) -> bool {
    matches!(
        Api::<Namespace>::all(c.clone()).get_opt(ns).await,
        Ok(Some(_))
    )
}

/// The JSON a command printed on stdout.
pub fn json_out(stdout: &str) -> Value {
    serde_json::from_str(stdout).unwrap_or_else(|e| panic!("not JSON ({e}):\n{stdout}"))
}

/// The error a run printed: from its `error: ` line to the end of stderr.
pub fn error_block(stderr: &str) -> &str {
    let i = stderr
        .find("error: ")
        .unwrap_or_else(|| panic!("no `error: ` in stderr:\n{stderr}"));
    assert!(
        i == 0 || stderr[..i].ends_with('\n'),
        "`error: ` is not at the start of a line:\n{stderr}"
    );
    &stderr[i..]
}

/// A copy of tests/charts in a temporary directory, to be broken by a test.
pub fn charts_copy() -> tempfile::TempDir {
    fn copy(from: &std::path::Path, to: &std::path::Path) {
        std::fs::create_dir_all(to).expect("mkdir");
        for e in std::fs::read_dir(from).expect("read dir") {
            let p = e.expect("entry").path();
            let dest = to.join(p.file_name().expect("name"));
            if p.is_dir() {
                copy(&p, &dest);
            } else {
                std::fs::copy(&p, &dest).expect("copy");
            }
        }
    }
    let dir = tempfile::tempdir().expect("dir");
    copy(&crate::repo().join("tests/charts"), dir.path());
    dir
}

/// Replaces one line of a chart's Chart.yaml.
pub fn edit_chart_yaml(dir: &std::path::Path, chart: &str, from: &str, to: &str) {
    edit_chart_file(dir, chart, "Chart.yaml", from, to);
}

/// Replaces the first `from` in a file of a chart (that must hold it).
pub fn edit_chart_file(dir: &std::path::Path, chart: &str, file: &str, from: &str, to: &str) {
    let p = dir.join(chart).join(file);
    let text = std::fs::read_to_string(&p).expect("read");
    assert!(text.contains(from), "{}: no {from:?}", p.display());
    std::fs::write(&p, text.replacen(from, to, 1)).expect("write");
}

/// The content of each object labelled with the cluster's name: the key is
/// "Kind ns/name" (the token Secret's random suffix normalized, as in
/// `objects`), the value the canonical JSON of what the object says, and
/// `content_hash` a sha256 of it. What legitimately differs between two
/// equal registers is left out:
/// - metadata other than labels and owner references (uids, timestamps,
///   resourceVersions, managedFields, annotations the plugin records its
///   hashes in), the owner references' uids, and status;
/// - Endpoints and EndpointSlices (made by controllers, see `objects`);
/// - a Service's allocated clusterIP(s);
/// - in the ApplySet parent's `applied.json`, all but the member keys (the
///   members' content is compared itself);
/// - the values of a service-account token Secret (the token controller
///   writes a new token each time; its keys are kept).
pub async fn content(c: &kube::Client, name: &str) -> std::collections::BTreeMap<String, String> {
    let discovery = Discovery::new(c.clone())
        .run_aggregated()
        .await
        .expect("discovery");
    let lp = ListParams::default().labels(&format!("{SELECTOR}{name}"));
    let mut out = std::collections::BTreeMap::new();
    for group in discovery.groups() {
        for (ar, caps) in group.recommended_resources() {
            if !caps.supports_operation(verbs::LIST)
                || ar.plural.contains('/')
                || ar.kind == "Endpoints"
                || ar.kind == "EndpointSlice"
            {
                continue;
            }
            let api: kube::Api<DynamicObject> = kube::Api::all_with(c.clone(), &ar);
            let list = api
                .list(&lp)
                .await
                .unwrap_or_else(|e| panic!("listing {}: {e}", ar.plural));
            for o in list.items {
                let ns = o.metadata.namespace.clone().unwrap_or_default();
                let mut oname = o.metadata.name.clone().unwrap_or_default();
                let mut v = serde_json::to_value(&o).expect("object json");
                let token = v["type"] == "kubernetes.io/service-account-token";
                if ar.kind == "Secret" && oname.starts_with("nautes-manager-token-") {
                    oname = "nautes-manager-token-*".into();
                }
                let key = format!("{} {ns}/{oname}", ar.kind);
                let owners: Vec<Value> = v["metadata"]["ownerReferences"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
                    .into_iter()
                    .map(|mut r| {
                        if let Some(r) = r.as_object_mut() {
                            r.remove("uid");
                        }
                        r
                    })
                    .collect();
                let labels = v["metadata"]["labels"].clone();
                let Some(obj) = v.as_object_mut() else {
                    continue;
                };
                obj.remove("status");
                obj.insert(
                    "metadata".into(),
                    serde_json::json!({"labels": labels, "ownerReferences": owners}),
                );
                if ar.kind == "Service"
                    && let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut)
                {
                    spec.remove("clusterIP");
                    spec.remove("clusterIPs");
                }
                // the ApplySet parent's record of the last apply: which members
                // it holds; their resourceVersions and the hashes of what was
                // sent (an owner reference's uid is in it) differ by nature
                if ar.kind == "ConfigMap"
                    && let Some(applied) =
                        obj.get_mut("data").and_then(|d| d.get_mut("applied.json"))
                {
                    let members: Vec<String> = applied
                        .as_str()
                        .and_then(|t| {
                            serde_json::from_str::<serde_json::Map<String, Value>>(t).ok()
                        })
                        .map(|m| m.keys().cloned().collect())
                        .unwrap_or_else(|| vec![format!("not a JSON object: {applied}")]);
                    *applied = serde_json::json!(members);
                }
                if token && let Some(data) = obj.get_mut("data").and_then(Value::as_object_mut) {
                    for val in data.values_mut() {
                        *val = Value::String("<written by the token controller>".into());
                    }
                }
                // serde_json's maps are sorted: this text is canonical
                let text = serde_json::to_string(&v).expect("json");
                // two token Secrets are not one: a second gets a key of its own
                let mut key = key;
                while out.contains_key(&key) {
                    key.push_str(" (again)");
                }
                out.insert(key, text);
            }
        }
    }
    out
}

/// A short sha256 of an object's content (see `content`).
pub fn content_hash(text: &str) -> String {
    use sha2::Digest;
    let d = sha2::Sha256::digest(text.as_bytes());
    d.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

/// What two `content` maps differ in: missing, extra and changed objects,
/// with both contents of a changed one.
pub fn content_difference(
    a: &std::collections::BTreeMap<String, String>,
    b: &std::collections::BTreeMap<String, String>,
) -> String {
    let mut out = String::new();
    for (k, va) in a {
        match b.get(k) {
            None => out.push_str(&format!("only in the first: {k}\n")),
            Some(vb) if vb != va => out.push_str(&format!(
                "{k} differs ({} vs {}):\n  first:  {va}\n  second: {vb}\n",
                content_hash(va),
                content_hash(vb)
            )),
            Some(_) => {}
        }
    }
    for k in b.keys().filter(|k| !a.contains_key(*k)) {
        out.push_str(&format!("only in the second: {k}\n"));
    }
    out
}

/// The project's test charts with one chart replaced by a variant
/// (`tests/<variant_dir>/<chart>`), as symlinks in a temporary directory
/// to give with --charts-dir.
pub fn charts_with(variant_dir: &str, chart: &str) -> tempfile::TempDir {
    let charts = tempfile::tempdir().expect("dir");
    for e in std::fs::read_dir(crate::repo().join("tests/charts")).expect("charts") {
        let p = e.expect("entry").path();
        if p.is_dir() && p.file_name().is_some_and(|n| n != chart) {
            std::os::unix::fs::symlink(&p, charts.path().join(p.file_name().expect("name")))
                .expect("link");
        }
    }
    std::os::unix::fs::symlink(
        crate::repo().join("tests").join(variant_dir).join(chart),
        charts.path().join(chart),
    )
    .expect("link");
    charts
}

/// kubectl of the test bed against a kubeconfig, stdin from `input`; it
/// must succeed.
pub fn kubectl(kubeconfig: &Path, args: &[&str], input: Option<&str>) {
    use std::io::Write;
    let mut child = Command::new(crate::testbed::bin_dir().join("kubectl"))
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kubectl");
    if let Some(text) = input {
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(text.as_bytes())
            .expect("write");
    }
    let out = child.wait_with_output().expect("kubectl");
    assert!(
        out.status.success(),
        "kubectl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// SIMULATED (the fallback a test asks for by name, with
/// `TestBed::start_simulating_vcluster`): plays the vcluster writing its
/// kubeconfig Secret vc-<name> (key `config`) in the host, once its namespace
/// exists. With a real vcluster (the default), the vcluster writes it. No
/// test uses it today.
#[allow(dead_code)]
pub async fn simulate_vcluster_secret(host: &kube::Client, name: &str, kubeconfig: &str) {
    use k8s_openapi::api::core::v1::Secret;
    let secrets: Api<Secret> = Api::namespaced(host.clone(), name);
    let secret: Secret = serde_json::from_value(serde_json::json!({
        "metadata": {"name": format!("vc-{name}"), "namespace": name},
        "stringData": {"config": kubeconfig},
    }))
    .expect("secret");
    let deadline = Instant::now() + Duration::from_secs(120);
    while secrets
        .create(&kube::api::PostParams::default(), &secret)
        .await
        .is_err()
    {
        assert!(
            Instant::now() < deadline,
            "namespace {name} never appeared in the host"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// Waits until the host namespace `name` holds a Pod synced from virtual
/// namespace `vns` whose virtual name starts with `prefix`: the syncer names
/// it `<virtual name>-x-<virtual namespace>-x-<vcluster name>`. Returns the
/// host-side names found.
pub async fn synced_pods(hc: &kube::Client, name: &str, vns: &str, prefix: &str) -> Vec<String> {
    let suffix = format!("-x-{vns}-x-{name}");
    let pods: Api<k8s_openapi::api::core::v1::Pod> = Api::namespaced(hc.clone(), name);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    loop {
        let names: Vec<String> = pods
            .list(&Default::default())
            .await
            .expect("list host pods")
            .items
            .into_iter()
            .filter_map(|p| p.metadata.name)
            .collect();
        let found: Vec<String> = names
            .iter()
            .filter(|n| n.starts_with(prefix) && n.ends_with(&suffix))
            .cloned()
            .collect();
        if !found.is_empty() {
            return found;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no Pod {prefix}*{suffix} in host namespace {name}; there: {names:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
}

/// Every object of every listable kind, as "group/kind ns/name", except
/// what the control plane itself keeps changing (Events, Leases of
/// kube-system and kube-node-lease, Endpoints, EndpointSlices).
pub async fn everything(c: &kube::Client) -> std::collections::BTreeSet<String> {
    let discovery = Discovery::new(c.clone()).run().await.expect("discovery");
    let mut out = std::collections::BTreeSet::new();
    for g in discovery.groups() {
        for (ar, caps) in g.recommended_resources() {
            if !caps.supports_operation(kube::discovery::verbs::LIST)
                || matches!(
                    ar.kind.as_str(),
                    "Event" | "Endpoints" | "EndpointSlice" | "ComponentStatus"
                )
            {
                continue;
            }
            let api: kube::Api<kube::api::DynamicObject> = kube::Api::all_with(c.clone(), &ar);
            let Ok(list) = api.list_metadata(&Default::default()).await else {
                continue;
            };
            for o in list.items {
                let ns = o.metadata.namespace.unwrap_or_default();
                let name = o.metadata.name.unwrap_or_default();
                if ar.kind == "Lease" && (ns == "kube-system" || ns == "kube-node-lease") {
                    continue;
                }
                out.insert(format!("{}/{} {ns}/{name}", ar.group, ar.kind));
            }
        }
    }
    out
}

/// Asserts that a cluster holds the same objects (`everything`) as before,
/// naming what appeared or went.
#[track_caller]
pub fn assert_unchanged(
    before: &std::collections::BTreeSet<String>,
    after: &std::collections::BTreeSet<String>,
    what: &str,
) {
    assert_eq!(
        before,
        after,
        "{what} changed: {}",
        difference(
            &before.iter().cloned().collect::<Vec<_>>(),
            &after.iter().cloned().collect::<Vec<_>>()
        )
    );
}
