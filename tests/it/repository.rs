//! The path of a user with internet access (issue 11, point 7): no
//! --charts-dir, each chart fetched from a Helm chart repository into the
//! user's cache, and fetched only once.
//!
//! The repository is real in what helm sees of it: the project's test charts
//! packaged with `helm package`, `index.yaml` written by `helm repo index`,
//! served over HTTP on 127.0.0.1 by a small file server in this test
//! process (so that the test can count what was downloaded and can break
//! the repository on purpose). What is simulated: the repositories' hosts
//! (charts.external-secrets.io, argoproj.github.io, ...), replaced with
//! --chart-repository, since nothing else on the network is reachable here.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde_json::json;

use crate::helpers::*;
use crate::testbed::{self, TestBed};

/// The catalog's components of a physical worker and a host (their charts
/// are the ones a physical register fetches).
const COMPONENTS: [&str; 6] = [
    "hnc",
    "external-secrets",
    "vault",
    "traefik",
    "argocd",
    "argo-rollouts",
];

/// How the file server answers.
#[derive(Clone, Copy)]
enum Mode {
    /// The files of its directory.
    Files,
    /// 404 Not Found for everything.
    NotFound,
    /// An index.yaml that is not a repository index; files otherwise.
    BadIndex,
}

/// A file server on 127.0.0.1 and the paths it was asked for.
struct Server {
    addr: SocketAddr,
    hits: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Server {
    async fn start(dir: PathBuf, mode: Mode) -> Server {
        let hits = Arc::new(Mutex::new(Vec::new()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let seen = hits.clone();
        let app = axum::Router::new().fallback(move |uri: axum::http::Uri| {
            let (dir, seen) = (dir.clone(), seen.clone());
            async move {
                let path = uri.path().trim_start_matches('/').to_string();
                seen.lock().expect("hits").push(path.clone());
                let not_found = (axum::http::StatusCode::NOT_FOUND, Vec::new());
                match mode {
                    Mode::NotFound => not_found,
                    Mode::BadIndex if path == "index.yaml" => (
                        axum::http::StatusCode::OK,
                        b"this is: [not a: repository index\n".to_vec(),
                    ),
                    _ if path.contains("..") || path.is_empty() => not_found,
                    _ => match std::fs::read(dir.join(&path)) {
                        Ok(bytes) => (axum::http::StatusCode::OK, bytes),
                        Err(_) => not_found,
                    },
                }
            }
        });
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.expect("serve");
        });
        Server { addr, hits, task }
    }

    fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    fn hits(&self) -> Vec<String> {
        self.hits.lock().expect("hits").clone()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A Helm repository of the project's test charts: `helm package` of each,
/// then `helm repo index` (relative URLs, as most repositories have).
fn repository_dir(charts: &[&str]) -> tempfile::TempDir {
    let helm = testbed::bin_dir().join("helm");
    let dir = tempfile::tempdir().expect("dir");
    for chart in charts {
        let out = std::process::Command::new(&helm)
            .args(["package", "--destination"])
            .arg(dir.path())
            .arg(crate::repo().join("tests/charts").join(chart))
            .output()
            .expect("helm package");
        assert!(
            out.status.success(),
            "helm package {chart}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let out = std::process::Command::new(&helm)
        .args(["repo", "index"])
        .arg(dir.path())
        .output()
        .expect("helm repo index");
    assert!(
        out.status.success(),
        "helm repo index: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    dir
}

/// A user's environment: no --charts-dir, a cache and helm's own homes of
/// its own.
struct User {
    home: tempfile::TempDir,
}

impl User {
    fn new() -> User {
        User {
            home: tempfile::tempdir().expect("home"),
        }
    }

    fn cache(&self) -> PathBuf {
        self.home.path().join("cache")
    }

    fn env(&self) -> Vec<(&'static str, OsString)> {
        let h = self.home.path();
        vec![
            ("NAUTES_CACHE_DIR", self.cache().into_os_string()),
            ("HELM_CACHE_HOME", h.join("helm-cache").into_os_string()),
            ("HELM_CONFIG_HOME", h.join("helm-config").into_os_string()),
            ("HELM_DATA_HOME", h.join("helm-data").into_os_string()),
        ]
    }

    /// Runs the binary as this user (off the runtime's threads, so the file
    /// server keeps answering).
    async fn run(&self, args: Vec<String>, mgmt: Option<PathBuf>) -> Run {
        let env = self.env();
        tokio::task::spawn_blocking(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let out = command(&args, mgmt.as_deref(), &env)
                .env_remove("NAUTES_CHARTS_DIR")
                .output()
                .expect("run kubectl-nautes");
            Run::of(&out)
        })
        .await
        .expect("join")
    }

    /// The chart archives in the cache, by file name.
    fn cached(&self) -> BTreeMap<String, u64> {
        let mut out = BTreeMap::new();
        let Ok(repos) = std::fs::read_dir(self.cache().join("charts")) else {
            return out;
        };
        for r in repos.flatten() {
            for f in std::fs::read_dir(r.path()).into_iter().flatten().flatten() {
                let name = f.file_name().to_string_lossy().into_owned();
                if name.ends_with(".tgz") {
                    out.insert(name, f.metadata().map(|m| m.len()).unwrap_or(0));
                }
            }
        }
        out
    }
}

/// --chart-repository for every component, to `url`; `but` replaces one.
fn repository_args(url: &str, but: Option<(&str, &str)>) -> Vec<String> {
    COMPONENTS
        .iter()
        .flat_map(|c| {
            let u = match but {
                Some((name, other)) if name == *c => other.to_string(),
                _ => url.to_string(),
            };
            ["--chart-repository".to_string(), format!("{c}={u}")]
        })
        .collect()
}

fn render_args(extra: Vec<String>) -> Vec<String> {
    let spec = crate::repo().join("examples/cluster-physical-worker.yaml");
    let mut args = vec![
        "render".to_string(),
        "-f".to_string(),
        spec.display().to_string(),
    ];
    args.extend(extra);
    args
}

/// Offline `render`: the charts come from the repository into the cache on
/// the first run, from the cache on the second (nothing requested), and
/// the output is the same as from --charts-dir.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn charts_are_fetched_from_their_repository_once_and_rendered_from_the_cache() {
    let repo = repository_dir(&COMPONENTS.map(|c| if c == "argocd" { "argo-cd" } else { c }));
    let server = Server::start(repo.path().to_path_buf(), Mode::Files).await;
    let user = User::new();

    let first = user
        .run(render_args(repository_args(&server.url(), None)), None)
        .await;
    first.ok();
    let hits = server.hits();
    assert!(
        hits.iter().filter(|h| *h == "index.yaml").count() >= COMPONENTS.len(),
        "the index was not fetched for each chart: {hits:?}"
    );
    for chart in [
        "hnc-0.1.0.tgz",
        "external-secrets-2.9.0.tgz",
        "argo-cd-10.1.1.tgz",
    ] {
        assert!(
            hits.iter().any(|h| h == chart),
            "{chart} not fetched: {hits:?}"
        );
    }
    let cached = user.cached();
    assert_eq!(
        cached.keys().cloned().collect::<Vec<_>>(),
        vec![
            "argo-cd-10.1.1.tgz",
            "argo-rollouts-2.41.0.tgz",
            "external-secrets-2.9.0.tgz",
            "hnc-0.1.0.tgz",
            "traefik-41.3.0.tgz",
            "vault-0.34.1.tgz",
        ],
        "the cache holds {cached:?}"
    );

    // from the cache: no request at all, the same objects
    let second = user
        .run(render_args(repository_args(&server.url(), None)), None)
        .await;
    second.ok();
    assert_eq!(
        server.hits().len(),
        hits.len(),
        "a second render downloaded: {:?}",
        &server.hits()[hits.len()..]
    );
    assert_eq!(first.stdout, second.stdout);
    // the same as from the charts directory
    let from_dir = nautes(
        &render_args(Vec::new())
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
        None,
        None,
    );
    from_dir.ok();
    assert_eq!(first.stdout, from_dir.stdout);
}

/// The failures of a repository, each named with the component, the
/// repository (never its password) and the way out, and nothing cached.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repository_that_is_unreachable_missing_or_broken_is_named() {
    let repo = repository_dir(&[
        "hnc",
        "external-secrets",
        "vault",
        "traefik",
        "argo-rollouts",
    ]);
    let good = Server::start(repo.path().to_path_buf(), Mode::Files).await;
    let missing = Server::start(repo.path().to_path_buf(), Mode::NotFound).await;
    let broken = Server::start(repo.path().to_path_buf(), Mode::BadIndex).await;
    // a port nothing listens on
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr")
    };
    let user = User::new();
    let missing_shown = format!("from repository http://{}/", missing.addr);
    let cases: Vec<(String, i32, Vec<&str>)> = vec![
        (
            format!("http://{closed}/"),
            5,
            vec!["the repository could not be reached"],
        ),
        (
            format!("http://nautes:s3cret-password@{}/", missing.addr),
            8,
            vec!["404", &missing_shown],
        ),
        (
            broken.url(),
            8,
            vec!["the repository's index.yaml is not a Helm repository index"],
        ),
        // a repository without the chart (argo-cd is not in it)
        (
            good.url(),
            8,
            vec!["the repository's index has no such chart or version"],
        ),
    ];
    for (url, code, parts) in cases {
        let run = user
            .run(
                render_args(repository_args(&good.url(), Some(("argocd", &url)))),
                None,
            )
            .await;
        assert_eq!(
            run.code, code,
            "{url}: exit {code} expected:\n{}",
            run.stderr
        );
        let err = error_block(&run.stderr);
        for part in parts
            .iter()
            .copied()
            .chain(["chart argo-cd 10.1.1 of component argocd", "--charts-dir"])
        {
            assert!(err.contains(part), "{url}: no {part:?} in:\n{err}");
        }
        assert!(
            !run.stderr.contains("s3cret-password") && !run.stdout.contains("s3cret-password"),
            "the repository's password was shown:\n{}",
            run.stderr
        );
        assert!(
            !user.cached().contains_key("argo-cd-10.1.1.tgz"),
            "a failed fetch left a chart in the cache"
        );
    }
    // --help shows no value of the variable (clap would, by default)
    let help = run(
        &["register", "--help"],
        None,
        &[(
            "NAUTES_CHART_REPOSITORIES",
            OsString::from(format!(
                "argocd=http://nautes:s3cret-password@{}/",
                missing.addr
            )),
        )],
    );
    help.ok();
    assert!(
        help.stdout.contains("[env: NAUTES_CHART_REPOSITORIES]")
            && !help.stdout.contains("s3cret-password"),
        "{}",
        help.stdout
    );
    // the chart cache has no half-pulled leftovers
    for r in std::fs::read_dir(user.cache().join("charts"))
        .expect("cache")
        .flatten()
    {
        for f in std::fs::read_dir(r.path()).expect("dir").flatten() {
            let name = f.file_name().to_string_lossy().into_owned();
            assert!(!name.starts_with(".pull-"), "left in the cache: {name}");
        }
    }
    // a name that is no component
    let run = user
        .run(
            render_args(vec![
                "--chart-repository".into(),
                format!("argo={}", good.url()),
            ]),
            None,
        )
        .await;
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        error_block(&run.stderr).contains(
            "\"argo\" is no component of the catalog; valid: one of hnc, external-secrets"
        ),
        "{}",
        run.stderr
    );
}

/// A register and a re-register of a physical worker without --charts-dir:
/// the first fetches, the second downloads nothing and changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_register_without_charts_dir_fetches_once_and_a_re_register_downloads_nothing() {
    let bed = TestBed::start(&["management", "worker"]);
    let mgmt_kc = bed.cluster("management").kubeconfig.clone();
    let repo = repository_dir(&COMPONENTS.map(|c| if c == "argocd" { "argo-cd" } else { c }));
    let server = Server::start(repo.path().to_path_buf(), Mode::Files).await;
    let user = User::new();
    let (_d, spec) = write_temp(
        "fetched.json",
        &physical_spec("fetched", "worker", bed.cluster("worker"), json!({})),
    );
    let register = |p: &Path| {
        let mut args = vec![
            "register".to_string(),
            "-f".to_string(),
            p.display().to_string(),
        ];
        args.extend(repository_args(&server.url(), None));
        args
    };
    let first = user.run(register(&spec), Some(mgmt_kc.clone())).await;
    first.ok();
    assert_eq!(
        first.stderr.matches("fetched from").count(),
        COMPONENTS.len(),
        "{}",
        first.stderr
    );
    let hits = server.hits().len();
    let second = user.run(register(&spec), Some(mgmt_kc.clone())).await;
    second.ok();
    assert_eq!(server.hits().len(), hits, "the re-register downloaded");
    assert!(!second.stderr.contains("fetched from"), "{}", second.stderr);
    assert!(second.stderr.contains(" 0 created"), "{}", second.stderr);
    user.run(
        vec!["destroy".into(), "fetched".into()],
        Some(mgmt_kc.clone()),
    )
    .await
    .ok();
    let wc = client(&bed.cluster("worker").kubeconfig).await;
    wait_nothing_left(&wc, "fetched", "the worker").await;
}
