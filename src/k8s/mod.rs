//! Talking to clusters: clients from kubeconfigs, discovery, retries, and
//! the generic operations: apply, wait, delete, permission checks.

pub mod admission;
pub mod apply;
pub mod delete;
pub mod fence;
pub mod permissions;
pub mod storage;
pub mod wait;

use std::future::Future;
use std::path::Path;
use std::time::Duration;

use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::discovery::{ApiCapabilities, ApiResource, Discovery, Scope};
use kube::{Client, Config};
use serde_json::Value;

use crate::error::{Error, ExitCode, Result, from_kube};

/// A cluster the plugin talks to, with the name it is shown under.
#[derive(Clone)]
pub struct Cluster {
    /// "management cluster", "runtime cluster worker-1", ...
    pub label: String,
    pub client: Client,
    pub server: String,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Cluster({} at {})", self.label, self.server)
    }
}

/// Connection settings shared by every client.
#[derive(Debug, Clone, Copy)]
pub struct ConnectOptions {
    /// Skip TLS verification: only when the user asks for it explicitly.
    pub insecure_skip_tls_verify: bool,
    pub request_timeout: Duration,
    /// The number of the command's locks (`Locks::id`), 0 for none: every
    /// write request of the client is held back at the last moment when
    /// one of them was lost (see `registry::fenced_out`).
    pub fence: u64,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        Self {
            insecure_skip_tls_verify: false,
            request_timeout: Duration::from_secs(30),
            fence: 0,
        }
    }
}

/// A client configuration from a parsed kubeconfig, with a one-line error
/// naming the cluster.
async fn config_of(label: &str, kc: Kubeconfig, options: &KubeConfigOptions) -> Result<Config> {
    Config::from_custom_kubeconfig(kc, options)
        .await
        .map_err(|e| {
            Error::new(
                ExitCode::Unreachable,
                format!(
                    "{label}: the kubeconfig cannot be used: {}",
                    crate::error::root_cause(&e)
                ),
            )
        })
}

fn finish_config(mut config: Config, opts: ConnectOptions) -> Config {
    if opts.insecure_skip_tls_verify {
        config.accept_invalid_certs = true;
    }
    config.connect_timeout = Some(Duration::from_secs(10));
    config.read_timeout = Some(opts.request_timeout);
    config.write_timeout = Some(opts.request_timeout);
    config
}

impl Cluster {
    fn from_config(label: String, config: Config, fence: u64) -> Result<Self> {
        let server = config
            .cluster_url
            .to_string()
            .trim_end_matches('/')
            .to_string();
        let client = kube::client::ClientBuilder::try_from(config)
            .map_err(|e| from_kube(&label, e))?
            .with_layer(&fence::FenceLayer(fence))
            .build();
        Ok(Self {
            label,
            client,
            server,
        })
    }

    /// A client from kubeconfig text (YAML or JSON), using its current
    /// context (or its first one).
    pub async fn from_kubeconfig_text(
        label: &str,
        text: &str,
        opts: ConnectOptions,
    ) -> Result<Self> {
        let kc = Kubeconfig::from_yaml(text).map_err(|e| {
            Error::invalid(format!(
                "{label}: the kubeconfig cannot be read: {}",
                crate::error::root_cause(&e)
            ))
        })?;
        let context = kc
            .current_context
            .clone()
            .or_else(|| kc.contexts.first().map(|c| c.name.clone()));
        Self::from_kubeconfig(label, kc, context, opts).await
    }

    /// A client from a parsed kubeconfig, with `context` (None: its current
    /// context).
    pub async fn from_kubeconfig(
        label: &str,
        kc: Kubeconfig,
        context: Option<String>,
        opts: ConnectOptions,
    ) -> Result<Self> {
        let options = KubeConfigOptions {
            context,
            ..Default::default()
        };
        let config = config_of(label, kc, &options).await?;
        Self::from_config(label.to_string(), finish_config(config, opts), opts.fence)
    }

    /// The management cluster as kubectl would reach it: --kubeconfig, else
    /// KUBECONFIG (several paths merged), else ~/.kube/config; --context.
    pub async fn management(
        kubeconfig: Option<&Path>,
        context: Option<&str>,
        opts: ConnectOptions,
    ) -> Result<Self> {
        let label = "management cluster".to_string();
        let kc = match kubeconfig {
            Some(p) => Kubeconfig::read_from(p).map_err(|e| {
                Error::invalid(format!(
                    "--kubeconfig {}: {}",
                    p.display(),
                    crate::error::root_cause(&e)
                ))
            })?,
            None => Kubeconfig::read().map_err(|e| {
                Error::invalid(format!(
                    "no kubeconfig for the management cluster (set --kubeconfig or KUBECONFIG): {}",
                    crate::error::root_cause(&e)
                ))
            })?,
        };
        if let Some(ctx) = context
            && !kc.contexts.iter().any(|c| c.name == ctx)
        {
            let known: Vec<_> = kc.contexts.iter().map(|c| c.name.as_str()).collect();
            return Err(Error::invalid(format!(
                "--context {ctx}: no such context in the kubeconfig; valid: {}",
                known.join(", ")
            )));
        }
        Self::from_kubeconfig(&label, kc, context.map(str::to_string), opts).await
    }

    /// The server's version, e.g. "v1.36.3". Also the reachability check.
    pub async fn version(&self) -> Result<String> {
        let info = self
            .client
            .apiserver_version()
            .await
            .map_err(|e| from_kube(&self.label, e))?;
        Ok(info.git_version)
    }

    pub fn err(&self, e: kube::Error) -> Error {
        from_kube(&self.label, e)
    }
}

/// Resolves the kinds of a cluster: the resource, its scope and verbs.
#[derive(Clone)]
pub struct Kinds {
    discovery: std::sync::Arc<Discovery>,
    /// Every served (group, version, kind), resolved once: `resolve` is
    /// called several times per object, and the discovery's own lookup
    /// copies a whole group version's resource list on every call (a
    /// profile of a 2,000-object register spent a third of its CPU there).
    index: std::sync::Arc<std::collections::HashMap<(String, String, String), Kind>>,
}

/// A resolved kind.
#[derive(Debug, Clone)]
pub struct Kind {
    pub resource: ApiResource,
    pub namespaced: bool,
}

impl Kinds {
    pub async fn discover(cluster: &Cluster) -> Result<Self> {
        let discovery = Discovery::new(cluster.client.clone())
            .run_aggregated()
            .await
            .map_err(|e| cluster.err(e))?;
        let mut index = std::collections::HashMap::new();
        for g in discovery.groups() {
            for v in g.versions() {
                for (resource, caps) in g.versioned_resources(v) {
                    let key = (g.name().to_string(), v.to_string(), resource.kind.clone());
                    // the first of a kind wins, as in the discovery's lookup
                    index.entry(key).or_insert_with(|| Kind {
                        resource,
                        namespaced: caps.scope == Scope::Namespaced,
                    });
                }
            }
        }
        Ok(Self {
            discovery: std::sync::Arc::new(discovery),
            index: std::sync::Arc::new(index),
        })
    }

    /// The group/version strings the cluster serves, for helm's
    /// --api-versions.
    pub fn api_versions(&self) -> Vec<String> {
        let mut out = Vec::new();
        for g in self.discovery.groups() {
            for v in g.versions() {
                if g.name().is_empty() {
                    out.push(v.to_string());
                } else {
                    out.push(format!("{}/{}", g.name(), v));
                }
            }
        }
        out.sort();
        out
    }

    /// The kind of an object by apiVersion and kind.
    pub fn resolve(&self, api_version: &str, kind: &str) -> Option<Kind> {
        let (group, version) = crate::kinds::split_api_version(api_version);
        self.index
            .get(&(group.to_string(), version.to_string(), kind.to_string()))
            .cloned()
    }

    /// The preferred version of a group-kind ("Deployment.apps"), for
    /// listing inventory members whose version is not known.
    pub fn resolve_group_kind(&self, group: &str, kind: &str) -> Option<Kind> {
        let g = self.discovery.get(group)?;
        let (resource, caps) = g.recommended_kind(kind)?;
        Some(Kind {
            resource,
            namespaced: caps.scope == Scope::Namespaced,
        })
    }
}

/// A short name for an object in messages: "Deployment argocd/argocd-server".
pub fn describe(kind: &str, namespace: Option<&str>, name: &str) -> String {
    match namespace {
        Some(ns) if !ns.is_empty() => format!("{kind} {ns}/{name}"),
        _ => format!("{kind} {name}"),
    }
}

/// Reads `metadata.<field>` of a JSON object as a string.
pub fn meta_str<'a>(o: &'a Value, field: &str) -> Option<&'a str> {
    o["metadata"][field].as_str()
}

/// Whether an error is worth retrying: the API server is restarting, busy,
/// or the connection dropped.
pub fn transient(e: &kube::Error) -> bool {
    if crate::error::is_tls_failure(e) || crate::error::auth_message(e).is_some() {
        return false;
    }
    match e {
        kube::Error::Api(s) => s.code == 429 || s.code >= 500,
        kube::Error::HyperError(_) | kube::Error::Service(_) => true,
        _ => false,
    }
}

tokio::task_local! {
    /// The deadline of the running command: its --timeout from when it
    /// started (set by the command line's front end and by the HTTP API for
    /// each job, see `within`).
    static DEADLINE: tokio::time::Instant;
}

/// How long transient failures are retried by commands without --timeout
/// (list, get, status, diff).
pub const RETRY_WITHOUT_TIMEOUT: Duration = Duration::from_secs(60);

/// Runs a command's work with `deadline` as the deadline of its retries
/// (see `retry` and the lock's fence).
pub async fn within<T>(deadline: tokio::time::Instant, work: impl Future<Output = T>) -> T {
    DEADLINE.scope(deadline, work).await
}

/// The deadline of the running command, if one is running in this task.
pub fn command_deadline() -> Option<tokio::time::Instant> {
    DEADLINE.try_with(|d| *d).ok()
}

/// The deadline of the running command, or [`RETRY_WITHOUT_TIMEOUT`] from
/// now outside one.
pub fn deadline() -> tokio::time::Instant {
    DEADLINE
        .try_with(|d| *d)
        .unwrap_or_else(|_| crate::cli::deadline(RETRY_WITHOUT_TIMEOUT))
}

/// Runs a request, retrying transient failures (the API server restarting
/// or unreachable, 5xx, 429) with exponential backoff until the command's
/// deadline (its --timeout), so a command survives an API server outage.
pub async fn retry<T, F, Fut>(mut f: F) -> std::result::Result<T, kube::Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = std::result::Result<T, kube::Error>>,
{
    let mut delay = Duration::from_millis(200);
    let deadline = deadline();
    loop {
        // a command that lost its lock stops before its next request
        crate::registry::fence().await?;
        match f().await {
            Err(e) if transient(&e) && tokio::time::Instant::now() < deadline => {
                // the last attempt is made at the deadline
                let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                tokio::time::sleep(delay.min(left)).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
            other => return other,
        }
    }
}

/// The dynamic API of a kind, in a namespace when it is namespaced.
pub fn api(
    client: &Client,
    kind: &Kind,
    namespace: Option<&str>,
) -> kube::Api<kube::api::DynamicObject> {
    match (kind.namespaced, namespace) {
        (true, Some(ns)) => kube::Api::namespaced_with(client.clone(), ns, &kind.resource),
        _ => kube::Api::all_with(client.clone(), &kind.resource),
    }
}

impl Kinds {
    /// Every resource of a group at its preferred version.
    pub fn group_resources(&self, group: &str) -> Option<Vec<(ApiResource, ApiCapabilities)>> {
        let g = self.discovery.get(group)?;
        Some(g.recommended_resources())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn unavailable() -> kube::Error {
        kube::Error::Api(Box::new(kube::core::Status {
            code: 503,
            message: "the server is restarting".into(),
            ..Default::default()
        }))
    }

    // a paused clock: the sleeps of the backoff advance it, nothing else
    #[tokio::test(start_paused = true)]
    async fn retries_last_until_the_commands_deadline_not_a_fixed_minute() {
        let tries = AtomicU32::new(0);
        let began = tokio::time::Instant::now();
        let r: std::result::Result<(), _> = within(
            crate::cli::deadline(Duration::from_millis(1500)),
            retry(|| {
                tries.fetch_add(1, Ordering::SeqCst);
                async { Err(unavailable()) }
            }),
        )
        .await;
        let took = began.elapsed();
        assert!(matches!(r, Err(kube::Error::Api(s)) if s.code == 503));
        // 200 + 400 + 800 ms of backoff, then the rest up to the deadline
        assert!(
            took >= Duration::from_millis(1500) && took < Duration::from_secs(60),
            "gave up after {took:?} (the old fixed retry took a minute)"
        );
        assert!(tries.load(Ordering::SeqCst) >= 4, "{tries:?}");
    }

    #[tokio::test]
    async fn a_transient_failure_is_retried_until_it_passes() {
        let tries = AtomicU32::new(0);
        let r = within(
            crate::cli::deadline(Duration::from_secs(30)),
            retry(|| {
                let n = tries.fetch_add(1, Ordering::SeqCst);
                async move { if n < 3 { Err(unavailable()) } else { Ok(n) } }
            }),
        )
        .await;
        assert_eq!(r.ok(), Some(3));
    }

    #[tokio::test]
    async fn a_deadline_already_passed_means_one_attempt() {
        let tries = AtomicU32::new(0);
        let r: std::result::Result<(), _> = within(
            crate::cli::deadline(Duration::ZERO),
            retry(|| {
                tries.fetch_add(1, Ordering::SeqCst);
                async { Err(unavailable()) }
            }),
        )
        .await;
        assert!(r.is_err());
        assert_eq!(tries.load(Ordering::SeqCst), 1);
    }

    // the clock is paused in these tests: it moves only when told, so the
    // deadlines compare exactly, whatever the machine's load
    #[tokio::test(start_paused = true)]
    async fn outside_a_command_the_deadline_is_the_default() {
        let now = tokio::time::Instant::now();
        assert_eq!(deadline(), now + RETRY_WITHOUT_TIMEOUT);
        let outer = crate::cli::deadline(Duration::from_secs(7));
        assert_eq!(within(outer, async { deadline() }).await, outer);
    }

    #[tokio::test(start_paused = true)]
    async fn a_wait_inside_a_command_never_outlasts_the_commands_deadline() {
        let start = tokio::time::Instant::now();
        let outer = crate::cli::deadline(Duration::from_secs(5));
        assert_eq!(outer, start + Duration::from_secs(5));
        let inner = within(outer, async {
            crate::cli::deadline(Duration::from_secs(600))
        })
        .await;
        assert_eq!(inner, outer);
        let short = within(outer, async {
            crate::cli::deadline(Duration::from_secs(1))
        })
        .await;
        assert_eq!(short, start + Duration::from_secs(1));
        // outside a command, a wait gets its own timeout
        assert_eq!(
            crate::cli::deadline(Duration::from_secs(600)),
            start + Duration::from_secs(600)
        );
    }
}
