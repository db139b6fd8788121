//! The test bed from Rust: starts real control planes (etcd, kube-apiserver,
//! kube-controller-manager, kube-scheduler, kwok) through the project's Go
//! launcher, and stops them when dropped. The launcher also cleans up when
//! this process dies (its stdin closes), so nothing survives a killed test.

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

pub struct TestBed {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
    _dir: tempfile::TempDir,
    pub clusters: BTreeMap<String, TestCluster>,
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

impl TestBed {
    /// Starts one cluster per name; returns when all are ready.
    // If this panics before returning, the launcher's stdin pipe closes with
    // the panic and the launcher stops and cleans up on its own.
    #[allow(clippy::zombie_processes)]
    pub fn start(names: &[&str]) -> TestBed {
        let bin = bin_dir();
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
                };
            }
        }
    }

    pub fn cluster(&self, name: &str) -> &TestCluster {
        self.clusters
            .get(name)
            .unwrap_or_else(|| panic!("no test cluster {name}"))
    }

    /// Sends a command to the launcher (stop-apiserver NAME, start-apiserver NAME).
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
