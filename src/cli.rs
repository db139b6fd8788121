//! Command-line arguments (clap derive): one struct per subcommand. Help text
//! is written for `kubectl nautes ...`, as kubectl runs the plugin.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::output::{OutputFormat, ProgressMode};

/// Register and destroy the runtime clusters of the Nautes GitOps platform.
///
/// The management cluster is kubectl's current context (--kubeconfig,
/// --context, KUBECONFIG as kubectl reads them). A runtime cluster is reached
/// with the kubeconfig in its spec.
#[derive(Debug, Parser)]
#[command(
    name = "kubectl-nautes",
    bin_name = "kubectl nautes",
    version,
    disable_version_flag = true,
    propagate_version = false,
    max_term_width = 100
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args, Clone)]
pub struct Global {
    /// Path to the kubeconfig file of the management cluster.
    #[arg(long, global = true, env = "NAUTES_KUBECONFIG", value_name = "PATH")]
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context of the management cluster.
    #[arg(long, global = true, value_name = "NAME")]
    pub context: Option<String>,
    /// Namespace of the registration records in the management cluster.
    #[arg(long, global = true, default_value = crate::registry::DEFAULT_NAMESPACE, value_name = "NAMESPACE")]
    pub registry_namespace: String,
    /// Do not verify the API servers' TLS certificates. Insecure.
    #[arg(long, global = true)]
    pub insecure_skip_tls_verify: bool,
    /// Timeout of one API request (e.g. 30s, 1m).
    #[arg(long, global = true, default_value = "30s", value_parser = parse_duration, value_name = "DURATION")]
    pub request_timeout: Duration,
    /// How progress is shown on stderr.
    #[arg(long, global = true, value_enum, default_value = "auto")]
    pub progress: ProgressMode,
    /// More detail in progress output (repeat for more).
    #[arg(short = 'v', long = "verbose", global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Install the runtime components into a cluster and register it.
    ///
    /// Validates the spec, checks both clusters and the permissions needed,
    /// renders the components, applies them with server-side apply, waits
    /// until they are ready and registers the cluster in the management
    /// cluster with a credential of its own. Safe to run again: it converges
    /// and says what changed.
    ///
    /// Example: kubectl nautes register -f cluster.yaml
    Register(RegisterArgs),
    /// Remove a cluster's components and forget it in the management cluster.
    ///
    /// Example: kubectl nautes destroy cluster-physical-demo
    Destroy(DestroyArgs),
    /// List the registered clusters.
    List(ListArgs),
    /// Show a cluster's registration record.
    Get(GetArgs),
    /// Show whether each component of a cluster is ready, read from it now.
    Status(StatusArgs),
    /// Show what register would change or prune, without changing anything.
    Diff(DiffArgs),
    /// Render a spec's manifests offline (no cluster is contacted).
    Render(RenderArgs),
    /// Validate a spec offline and print it with defaults filled in.
    Validate(ValidateArgs),
    /// Mint a new credential for a cluster, update Argo CD's, revoke the old.
    RotateCredentials(RotateArgs),
    /// Print a shell completion script.
    ///
    /// Example: source <(kubectl nautes completion bash)
    Completion(CompletionArgs),
    /// Print the plugin's version, git commit and Kubernetes API version.
    Version(VersionArgs),
    /// Serve the Nautes cluster API (register and destroy over HTTP).
    ///
    /// Example: kubectl nautes serve --tls-cert-file tls.crt --tls-private-key-file tls.key
    Serve(ServeArgs),
}

#[derive(Debug, Args, Clone)]
pub struct ServeArgs {
    /// Address and port to listen on.
    #[arg(
        long,
        visible_alias = "address",
        default_value = "0.0.0.0:8443",
        value_name = "ADDR:PORT"
    )]
    pub listen: String,
    /// PEM certificate chain of the server.
    #[arg(long, value_name = "FILE", requires = "tls_private_key_file")]
    pub tls_cert_file: Option<PathBuf>,
    /// PEM private key of the server.
    #[arg(long, value_name = "FILE", requires = "tls_cert_file")]
    pub tls_private_key_file: Option<PathBuf>,
    /// Serve plain HTTP without TLS (tokens cross the network in clear). Insecure.
    #[arg(long, conflicts_with_all = ["tls_cert_file", "tls_private_key_file"])]
    pub insecure_plain_http: bool,
    /// Largest request body accepted, in bytes.
    #[arg(long, default_value_t = 1024 * 1024, value_name = "BYTES")]
    pub max_body_bytes: usize,
    /// Registrations and destroys running at once; more are refused (429).
    #[arg(long, default_value_t = 4, value_name = "N")]
    pub max_concurrent_registrations: usize,
    /// Longest time a request with ?wait=true waits before it answers 202.
    #[arg(long, default_value = "15m", value_parser = parse_duration, value_name = "DURATION")]
    pub max_wait: Duration,
    /// How long a registration waits for readiness (register --timeout).
    #[arg(long, default_value = "10m", value_parser = parse_duration, value_name = "DURATION")]
    pub timeout: Duration,
    #[command(flatten)]
    pub charts: ChartArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DryRun {
    None,
    Client,
    Server,
}

#[derive(Debug, Args, Clone)]
pub struct SpecInput {
    /// The cluster spec: a YAML or JSON file, or - for stdin.
    #[arg(short = 'f', long = "filename", value_name = "FILE")]
    pub filename: PathBuf,
    /// The cluster's name, if the spec does not give it.
    #[arg(value_name = "NAME")]
    pub name: Option<String>,
    /// Accept a spec whose kubeconfig runs a command (users[].user.exec,
    /// auth-provider) or reads local files (tokenFile, client-certificate,
    /// client-key, certificate-authority) when used, as EKS and GKE
    /// kubeconfigs do. Only for specs you trust.
    #[arg(long, display_order = 900)]
    pub allow_exec_kubeconfig: bool,
}

#[derive(Debug, Args, Clone)]
pub struct ChartArgs {
    /// Directory of chart archives (<name>-<version>.tgz) or chart directories
    /// (<name>/Chart.yaml), for air-gapped use; default: the pinned upstream
    /// repositories.
    #[arg(long, value_name = "DIR", env = "NAUTES_CHARTS_DIR")]
    pub charts_dir: Option<PathBuf>,
    /// Path to helm; default: helm on PATH.
    #[arg(long, value_name = "PATH", env = "NAUTES_HELM")]
    pub helm: Option<PathBuf>,
    /// Fetch a component's chart from this Helm repository instead of the
    /// catalog's (a mirror): NAME is a component (argocd) or its chart
    /// (argo-cd); repeatable, or comma-separated in the variable.
    #[arg(
        long = "chart-repository",
        value_name = "NAME=URL",
        env = "NAUTES_CHART_REPOSITORIES",
        // a URL may carry a password: --help never shows the variable's value
        hide_env_values = true,
        value_delimiter = ',',
        value_parser = parse_repository
    )]
    pub chart_repositories: Vec<(String, String)>,
    /// Where charts fetched from their repositories are kept; default:
    /// $XDG_CACHE_HOME/kubectl-nautes, else ~/.cache/kubectl-nautes.
    #[arg(long, value_name = "DIR", env = "NAUTES_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,
}

/// NAME=URL of --chart-repository: URL is http(s):// or oci://.
fn parse_repository(s: &str) -> Result<(String, String), String> {
    let Some((name, url)) = s.split_once('=') else {
        return Err("expected NAME=URL, such as argocd=https://charts.example.com/argo".into());
    };
    let (name, url) = (name.trim(), url.trim());
    if name.is_empty() {
        return Err("NAME is empty; valid: a component of the catalog (such as argocd) or its chart's name (argo-cd)".into());
    }
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err(format!(
            "{url:?} is not a URL; valid: an http://, https:// or oci:// URL of a Helm repository"
        ));
    };
    if !matches!(scheme, "http" | "https" | "oci") || rest.is_empty() {
        return Err(format!(
            "{url:?} is not a repository URL; valid: an http://, https:// or oci:// URL of a Helm repository"
        ));
    }
    Ok((name.to_string(), url.to_string()))
}

#[derive(Debug, Args)]
pub struct RegisterArgs {
    #[command(flatten)]
    pub input: SpecInput,
    #[command(flatten)]
    pub charts: ChartArgs,
    /// client: print the rendered objects (secrets redacted) and stop;
    /// server: send every apply as a server dry run.
    #[arg(long, value_enum, default_value = "none", num_args = 0..=1, default_missing_value = "client")]
    pub dry_run: DryRun,
    /// Wait until the components are ready.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub wait: bool,
    /// How long to wait for readiness (e.g. 5m, 90s).
    #[arg(long, default_value = "10m", value_parser = parse_duration)]
    pub timeout: Duration,
    /// Take over fields owned by another field manager.
    #[arg(long)]
    pub force_conflicts: bool,
    /// Take over objects of the plan that already exist and belong to no
    /// registration (recorded as adopted; Namespaces among them are never
    /// deleted, destroy gives them back).
    #[arg(long)]
    pub adopt: bool,
    /// Prune CRDs that left the plan even when custom resources the plugin
    /// did not create would be deleted with them.
    #[arg(long)]
    pub force: bool,
    /// Output format of the result.
    #[arg(short = 'o', long, value_enum)]
    pub output: Option<OutputFormat>,
    /// Requests in flight at once per cluster.
    #[arg(long, default_value_t = 16, hide = true)]
    pub concurrency: usize,
}

#[derive(Debug, Args)]
pub struct DestroyArgs {
    /// The cluster's name.
    pub name: String,
    /// The cluster's spec, whose kubeconfig is used only when the cluster has
    /// no credential yet (a register stopped before minting one).
    #[arg(short = 'f', long = "filename", value_name = "FILE")]
    pub filename: Option<std::path::PathBuf>,
    /// Accept a spec (-f) whose kubeconfig runs a command or reads local
    /// files when used (see register --help).
    #[arg(long, display_order = 900)]
    pub allow_exec_kubeconfig: bool,
    /// Destroy even if Argo CD Applications still deploy to it or custom
    /// resources not created by the plugin would be deleted with its CRDs.
    #[arg(long)]
    pub force: bool,
    /// How long to wait for objects to be gone.
    #[arg(long, default_value = "10m", value_parser = parse_duration)]
    pub timeout: Duration,
    /// client: list what would be deleted; server: send deletes as dry runs.
    #[arg(long, value_enum, default_value = "none", num_args = 0..=1, default_missing_value = "client")]
    pub dry_run: DryRun,
    #[arg(short = 'o', long, value_enum)]
    pub output: Option<OutputFormat>,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    #[arg(short = 'o', long, value_enum, default_value = "table")]
    pub output: OutputFormat,
}

#[derive(Debug, Args)]
pub struct GetArgs {
    pub name: String,
    #[arg(short = 'o', long, value_enum, default_value = "yaml")]
    pub output: OutputFormat,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    pub name: String,
    #[arg(short = 'o', long, value_enum, default_value = "table")]
    pub output: OutputFormat,
}

#[derive(Debug, Args)]
pub struct DiffArgs {
    #[command(flatten)]
    pub input: SpecInput,
    #[command(flatten)]
    pub charts: ChartArgs,
    /// Show what register --adopt would do with objects that already exist.
    #[arg(long)]
    pub adopt: bool,
    #[arg(short = 'o', long, value_enum, default_value = "table")]
    pub output: OutputFormat,
}

#[derive(Debug, Args)]
pub struct RenderArgs {
    #[command(flatten)]
    pub input: SpecInput,
    #[command(flatten)]
    pub charts: ChartArgs,
    /// Kubernetes version to render for (helm --kube-version).
    #[arg(long, default_value = "v1.36.0")]
    pub kube_version: String,
    /// Print the plan (components, charts, order) instead of the objects.
    #[arg(long)]
    pub plan: bool,
    #[arg(short = 'o', long, value_enum, default_value = "yaml")]
    pub output: OutputFormat,
}

#[derive(Debug, Args)]
pub struct ValidateArgs {
    #[command(flatten)]
    pub input: SpecInput,
    #[arg(short = 'o', long, value_enum)]
    pub output: Option<OutputFormat>,
}

#[derive(Debug, Args)]
pub struct RotateArgs {
    pub name: String,
    #[arg(long, default_value = "2m", value_parser = parse_duration)]
    pub timeout: Duration,
}

#[derive(Debug, Args)]
pub struct CompletionArgs {
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

#[derive(Debug, Args)]
pub struct VersionArgs {
    #[arg(short = 'o', long, value_enum)]
    pub output: Option<OutputFormat>,
}

/// The longest duration accepted by a flag: 365 days. Longer is a mistake,
/// and a deadline far beyond it could overflow the clock.
pub const MAX_DURATION: Duration = Duration::from_secs(365 * 24 * 3600);

/// Parses "90s", "5m", "1h", "1m30s", or a plain number of seconds, with
/// overflow checks: at most [`MAX_DURATION`].
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let not_a_duration = || format!("{s:?} is not a duration; valid: e.g. 90s, 5m, 1h");
    let too_long = || {
        format!(
            "{s:?} is longer than the maximum, {}h (365 days); valid: a duration of at most {}h, e.g. 90s, 5m, 1h",
            MAX_DURATION.as_secs() / 3600,
            MAX_DURATION.as_secs() / 3600
        )
    };
    let mut total = 0u64;
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        total = s.parse::<u64>().map_err(|_| too_long())?;
    } else {
        let mut num = String::new();
        let mut seen = false;
        for ch in s.chars() {
            if ch.is_ascii_digit() {
                num.push(ch);
                continue;
            }
            if num.is_empty() {
                return Err(not_a_duration());
            }
            // all digits: a parse error is an overflow
            let n: u64 = num.parse().map_err(|_| too_long())?;
            num.clear();
            let unit: u64 = match ch {
                's' => 1,
                'm' => 60,
                'h' => 3600,
                _ => return Err(not_a_duration()),
            };
            total = n
                .checked_mul(unit)
                .and_then(|secs| total.checked_add(secs))
                .ok_or_else(too_long)?;
            seen = true;
        }
        if !num.is_empty() || !seen {
            return Err(not_a_duration());
        }
    }
    let d = Duration::from_secs(total);
    if d > MAX_DURATION {
        return Err(too_long());
    }
    Ok(d)
}

/// The instant `timeout` from now, but never after the running command's
/// deadline (its --timeout: every wait of a command fits in it). Never
/// overflows: a timeout beyond what the clock can hold gives a deadline
/// decades away.
pub fn deadline(timeout: Duration) -> tokio::time::Instant {
    let now = tokio::time::Instant::now();
    let own = now
        .checked_add(timeout)
        .or_else(|| now.checked_add(Duration::from_secs(30 * 365 * 24 * 3600)))
        .unwrap_or(now);
    // inside a command, no wait outlasts the command's own --timeout
    match crate::k8s::command_deadline() {
        Some(d) if d < own => d,
        _ => own,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn durations_parse_like_kubectl() {
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse_duration("15"), Ok(Duration::from_secs(15)));
        assert!(parse_duration("5x").is_err());
        assert!(parse_duration("m").is_err());
        assert!(parse_duration("").is_err());
        assert!(parse_duration("1m30").is_err());
    }

    #[test]
    fn durations_too_long_or_overflowing_are_refused_with_the_maximum() {
        let too_long = |s: &str| {
            format!(
                "{s:?} is longer than the maximum, 8760h (365 days); valid: a duration of at most 8760h, e.g. 90s, 5m, 1h"
            )
        };
        for s in [
            "18446744073709551615",
            "18446744073709551616",
            "99999999999999999999999999",
            "18446744073709551615s",
            "5124095576030432h",
            "307445734561825861m",
            "18446744073709551615h",
            "1h18446744073709551615s",
            "31536001",
            "8761h",
            "525601m",
        ] {
            assert_eq!(parse_duration(s), Err(too_long(s)), "{s}");
        }
        assert_eq!(parse_duration("8760h"), Ok(MAX_DURATION));
        assert_eq!(parse_duration("31536000"), Ok(MAX_DURATION));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
    }

    #[test]
    fn deadlines_saturate_instead_of_overflowing() {
        // pure arithmetic on instants: nothing here depends on how fast the
        // machine is
        let now = tokio::time::Instant::now();
        let ten_years = Duration::from_secs(10 * 365 * 24 * 3600);
        let ninety = Duration::from_secs(90);
        let far = deadline(Duration::MAX);
        let soon = deadline(ninety);
        let far_ahead = far.checked_duration_since(now).unwrap_or_default();
        let soon_ahead = soon.checked_duration_since(now).unwrap_or_default();
        assert!(far_ahead > ten_years, "{far_ahead:?}");
        assert!(soon_ahead >= ninety, "{soon_ahead:?}");
        assert!(soon < far);
    }
}
