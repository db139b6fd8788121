//! The test bed from Rust: starts real control planes (etcd, kube-apiserver,
//! kube-controller-manager, kube-scheduler, kwok) through the project's Go
//! launcher, and stops them when dropped. The launcher also cleans up when
//! this process dies (its stdin closes), so nothing survives a killed test.
//!
//! A vcluster release that appears in a test cluster runs for real (the
//! launcher's --vcluster, from NAUTES_TESTBED_VCLUSTER): its virtual control
//! plane and the vcluster syncer as processes, its API at
//! https://127.0.0.1:<node port of its NodePort Service>. A test that plays
//! the vcluster itself must ask for it: `TestBed::start_simulating_vcluster`.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
pub struct TestCluster {
    pub kubeconfig: PathBuf,
    pub restricted_kubeconfig: PathBuf,
    pub server: String,
}

#[derive(Debug, Deserialize)]
struct State {
    clusters: BTreeMap<String, TestCluster>,
}

/// What testbed.json says of a vcluster the launcher runs.
#[derive(Debug, Clone, Deserialize)]
pub struct Vcluster {
    pub state: String,
    #[serde(default)]
    pub proxy: String,
    pub node_ports: Vec<u16>,
    pub syncer_restarts: u32,
    #[serde(default)]
    pub secret_seconds: f64,
    pub pids: BTreeMap<String, u32>,
}

#[derive(Debug, Deserialize)]
struct VclusterState {
    clusters: BTreeMap<String, VclusterCluster>,
}

#[derive(Debug, Deserialize)]
struct VclusterCluster {
    #[serde(default)]
    vclusters: BTreeMap<String, Vcluster>,
}

/// How the test bed treats vcluster releases.
#[derive(Clone, Copy, PartialEq)]
enum Vclusters {
    /// Run them if NAUTES_TESTBED_VCLUSTER is set.
    IfBuilt,
    /// Run them; NAUTES_TESTBED_VCLUSTER must be set.
    Required,
    /// Never: the test writes Secret vc-<name> itself.
    Simulated,
}

pub struct TestBed {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
    _dir: tempfile::TempDir,
    pub clusters: BTreeMap<String, TestCluster>,
    json: PathBuf,
}

/// The directory of the test bed's binaries (kubectl, helm, ...).
pub fn bin_dir() -> PathBuf {
    let Some(bin) = std::env::var_os("NAUTES_TESTBED_BIN") else {
        panic!(
            "NAUTES_TESTBED_BIN is not set: the integration tests need the test bed. \
             Run them with `make test` (it builds the test bed first), or `make testbed` and \
             export NAUTES_TESTBED_BIN=$(cat target/testbed/bin-dir) NAUTES_TESTBED_LAUNCHER=$PWD/target/testbed/nautes-testbed"
        )
    };
    let bin = PathBuf::from(bin);
    assert!(
        bin.join("kube-apiserver").is_file(),
        "NAUTES_TESTBED_BIN={} holds no kube-apiserver: run `make testbed`",
        bin.display()
    );
    bin
}

fn launcher() -> PathBuf {
    let Some(l) = std::env::var_os("NAUTES_TESTBED_LAUNCHER") else {
        panic!("NAUTES_TESTBED_LAUNCHER is not set: run the tests with `make test` (see README)")
    };
    let l = PathBuf::from(l);
    assert!(
        l.is_file(),
        "NAUTES_TESTBED_LAUNCHER={} does not exist: run `make testbed`",
        l.display()
    );
    l
}

/// The vcluster binary (NAUTES_TESTBED_VCLUSTER), if set.
fn vcluster_binary(required: bool) -> Option<PathBuf> {
    let Some(v) = std::env::var_os("NAUTES_TESTBED_VCLUSTER") else {
        assert!(
            !required,
            "NAUTES_TESTBED_VCLUSTER is not set: this test runs a real vcluster. Run it with \
             `make test`, or `make testbed` and export NAUTES_TESTBED_VCLUSTER=$(cat target/testbed/vcluster-path)"
        );
        return None;
    };
    let v = PathBuf::from(v);
    assert!(
        v.is_file(),
        "NAUTES_TESTBED_VCLUSTER={} does not exist: run `make testbed`",
        v.display()
    );
    Some(v)
}

impl TestBed {
    /// Starts one cluster per name; returns when all are ready. vcluster
    /// releases run for real when NAUTES_TESTBED_VCLUSTER is set.
    pub fn start(names: &[&str]) -> TestBed {
        Self::launch(names, Vclusters::IfBuilt)
    }

    /// As `start`, for a test about vclusters: fails at once without the
    /// vcluster binary.
    pub fn start_with_vcluster(names: &[&str]) -> TestBed {
        Self::launch(names, Vclusters::Required)
    }

    /// As `start`, but no vcluster ever runs: the test plays the vcluster
    /// (SIMULATED: it writes Secret vc-<name> with `simulate_vcluster_secret`).
    /// A fallback a test must ask for by name (say, to study the plugin
    /// where the vcluster cannot be built); no test uses it today.
    #[allow(dead_code)]
    pub fn start_simulating_vcluster(names: &[&str]) -> TestBed {
        Self::launch(names, Vclusters::Simulated)
    }

    // If this panics before returning, the launcher's stdin pipe closes with
    // the panic and the launcher stops and cleans up on its own.
    #[allow(clippy::zombie_processes)]
    fn launch(names: &[&str], vclusters: Vclusters) -> TestBed {
        let bin = bin_dir();
        let vcluster = match vclusters {
            Vclusters::Simulated => None,
            v => vcluster_binary(v == Vclusters::Required),
        };
        let dir = tempfile::Builder::new()
            .prefix("nautes-it-")
            .tempdir()
            .expect("temp dir");
        let mut child = Command::new(launcher())
            .arg("up")
            .arg("--bin")
            .arg(&bin)
            .arg("--dir")
            .arg(dir.path())
            .arg("--vcluster")
            .arg(vcluster.map_or_else(|| "off".into(), PathBuf::into_os_string))
            .args(names)
            .env_remove("HTTPS_PROXY")
            .env_remove("HTTP_PROXY")
            .env_remove("https_proxy")
            .env_remove("http_proxy")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the test bed launcher");
        let stdin = child.stdin.take();
        let mut stdout = BufReader::new(child.stdout.take().expect("launcher stdout"));
        let mut line = String::new();
        loop {
            line.clear();
            let n = stdout.read_line(&mut line).expect("read launcher output");
            if n == 0 {
                let status = child.wait();
                panic!(
                    "the test bed launcher exited before it was ready ({status:?}); its stderr is above"
                );
            }
            if let Some(path) = line.trim().strip_prefix("READY ") {
                let text = std::fs::read_to_string(path).expect("read testbed.json");
                let state: State = serde_json::from_str(&text).expect("parse testbed.json");
                return TestBed {
                    child,
                    stdin,
                    stdout,
                    _dir: dir,
                    clusters: state.clusters,
                    json: PathBuf::from(path),
                };
            }
        }
    }

    pub fn cluster(&self, name: &str) -> &TestCluster {
        self.clusters
            .get(name)
            .unwrap_or_else(|| panic!("no test cluster {name}"))
    }

    /// The vclusters the launcher runs in a cluster now, by "namespace/name".
    pub fn vclusters(&self, cluster: &str) -> BTreeMap<String, Vcluster> {
        let text = std::fs::read_to_string(&self.json).expect("read testbed.json");
        let mut state: VclusterState = serde_json::from_str(&text).expect("parse testbed.json");
        state
            .clusters
            .remove(cluster)
            .unwrap_or_else(|| panic!("no test cluster {cluster}"))
            .vclusters
    }

    /// Sends a command to the launcher (stop-apiserver NAME, start-apiserver
    /// NAME, stop-vcluster NAME NAMESPACE/RELEASE).
    pub fn command(&mut self, cmd: &str) {
        let stdin = self.stdin.as_mut().expect("launcher stdin");
        writeln!(stdin, "{cmd}").expect("write to launcher");
        stdin.flush().expect("flush");
        let mut line = String::new();
        self.stdout.read_line(&mut line).expect("launcher reply");
        assert_eq!(line.trim(), "OK", "launcher refused {cmd:?}: {line}");
    }
}

impl Drop for TestBed {
    fn drop(&mut self) {
        // closing stdin tells the launcher to stop everything and clean up
        drop(self.stdin.take());
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            match self.child.try_wait() {
                Ok(Some(_)) => return,
                Ok(None) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(100))
                }
                _ => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    return;
                }
            }
        }
    }
}
