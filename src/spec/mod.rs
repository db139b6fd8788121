//! The cluster spec: the YAML or JSON document that describes one runtime
//! cluster, its validation, and its defaults.
//!
//! Two forms are accepted: the flat request body of the Nautes API
//! (`api_server: ...` at the top level) and the upstream resource
//! (`apiVersion: nautes.resource.nautes.io/v1alpha1`, `kind: Cluster`,
//! `metadata`, `spec`). Every key may be written in snake_case or camelCase.
//!
//! The document is read into a tree whose nodes carry their line and
//! column (see the `tree` module), so that every problem is reported where it is,
//! and all problems are reported at once.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

mod fields;
mod kubeconfig;
mod net;
mod tree;
mod validate;

#[cfg(test)]
mod tests;

pub use net::is_dns1123_label;

/// Whether the cluster is a real cluster or a vcluster inside a host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClusterType {
    Physical,
    Virtual,
}

/// What the cluster is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Usage {
    /// Receives deployments (or runs pipelines).
    Worker,
    /// Carries virtual clusters.
    Host,
}

/// What a worker runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WorkerType {
    Deployment,
    Pipeline,
}

/// Traefik's node ports in a physical cluster.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodePorts {
    pub http_node_port: u16,
    pub https_node_port: u16,
}

/// The vcluster of a virtual cluster.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VclusterSpec {
    /// The node port on the host that exposes the vcluster's API.
    pub https_node_port: u16,
    /// The StorageClass of the claim for the vcluster's data; None: the
    /// host's default StorageClass.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_class: Option<String>,
}

/// Overrides for one component category.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ComponentOverride {
    /// The component's name; only the category's own component is accepted.
    pub name: Option<String>,
    pub namespace: Option<String>,
    /// Extra settings, every value turned into a string.
    #[serde(default)]
    pub additions: BTreeMap<String, String>,
}

/// A validated cluster spec with every default filled in. Its Debug never
/// shows the kubeconfig (a secret), only whether there is one.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct ClusterSpec {
    pub name: String,
    /// Normalized: `scheme://host[:port]`, no trailing slash, no path.
    pub api_server: String,
    /// Always "kubernetes".
    pub cluster_kind: String,
    pub cluster_type: ClusterType,
    pub usage: Usage,
    /// Some (default Deployment) for workers, None for hosts.
    pub worker_type: Option<WorkerType>,
    /// Some only for virtual clusters.
    pub host_cluster: Option<String>,
    /// Defaults to the host of `api_server` (`<ip>.nip.io` for an address).
    pub primary_domain: String,
    /// Some for workers (default `argocd.<name>.<primary_domain>`), None
    /// for hosts.
    pub argocd_host: Option<String>,
    /// Some for physical clusters (defaults 30080/30443), None for virtual.
    pub traefik: Option<NodePorts>,
    /// Some for virtual clusters (default: the port of `api_server`), None
    /// for physical.
    pub vcluster: Option<VclusterSpec>,
    /// Key: the category, camelCase as upstream (`multiTenant`, `gateway`...).
    #[serde(default)]
    pub components: BTreeMap<String, ComponentOverride>,
    /// Physical clusters only: the kubeconfig as a JSON string, the server
    /// of every cluster replaced by `api_server`. Never serialized.
    #[serde(skip)]
    pub kubeconfig: Option<String>,
    /// Whether Argo CD connects without verifying the cluster's certificate
    /// (`insecure_skip_check`; false unless the spec says so).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub insecure_skip_check: bool,
    /// Upstream Nautes' fields, kept in the record and answered by the HTTP
    /// API; the plugin itself does not use them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tekton_host: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub reserved_namespaces_allowed_products: BTreeMap<String, Vec<String>>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub product_allowed_cluster_resources: BTreeMap<String, Vec<ClusterResource>>,
    /// The fields of the kubeconfig that run a command or read a local file
    /// when it is used; see [`ClusterSpec::refuse_local_access`].
    #[serde(skip)]
    pub kubeconfig_access: Vec<KubeconfigAccess>,
}

/// A cluster-scoped resource a product may use (upstream Nautes).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ClusterResource {
    pub kind: String,
    pub group: String,
}

impl fmt::Debug for ClusterSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClusterSpec")
            .field("name", &self.name)
            .field("api_server", &self.api_server)
            .field("cluster_kind", &self.cluster_kind)
            .field("cluster_type", &self.cluster_type)
            .field("usage", &self.usage)
            .field("worker_type", &self.worker_type)
            .field("host_cluster", &self.host_cluster)
            .field("primary_domain", &self.primary_domain)
            .field("argocd_host", &self.argocd_host)
            .field("traefik", &self.traefik)
            .field("vcluster", &self.vcluster)
            .field("components", &self.components)
            .field("insecure_skip_check", &self.insecure_skip_check)
            .field("tekton_host", &self.tekton_host)
            .field(
                "reserved_namespaces_allowed_products",
                &self.reserved_namespaces_allowed_products,
            )
            .field(
                "product_allowed_cluster_resources",
                &self.product_allowed_cluster_resources,
            )
            .field(
                "kubeconfig",
                &self.kubeconfig.as_ref().map(|_| "<redacted>"),
            )
            .field("kubeconfig_access", &self.kubeconfig_access)
            .finish()
    }
}

impl ClusterSpec {
    /// Refuses a spec whose kubeconfig would run a command or read a file of
    /// this machine, unless the user allows it (`--allow-exec-kubeconfig`):
    /// a spec is input from someone else. Every such field is named, with
    /// its line.
    pub fn refuse_local_access(&self, file_label: &str, allowed: bool) -> Result<(), SpecErrors> {
        if allowed || self.kubeconfig_access.is_empty() {
            return Ok(());
        }
        let mut errors: Vec<SpecError> = self
            .kubeconfig_access
            .iter()
            .map(|a| SpecError {
                path: a.path.clone(),
                line: a.line,
                column: a.column,
                message: a.message.clone(),
            })
            .collect();
        errors.sort_by_key(|e| (e.line, e.column));
        Err(SpecErrors {
            file: shown_file(file_label).to_owned(),
            errors,
        })
    }
}

/// A field of a spec's kubeconfig that runs a command (`exec`,
/// `auth-provider`) or reads a file of this machine (`tokenFile`,
/// `client-certificate`, `client-key`, `certificate-authority`) when the
/// kubeconfig is used. Accepted only with `--allow-exec-kubeconfig`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KubeconfigAccess {
    /// Dotted path of the field in the spec, e.g.
    /// `kubeconfig.users[0].user.exec`.
    pub path: String,
    /// 1-based, in the spec.
    pub line: u32,
    pub column: u32,
    /// What it does and what would be valid instead.
    pub message: String,
}

/// One problem in a spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecError {
    /// Dotted path of the field, or "(document)".
    pub path: String,
    /// 1-based.
    pub line: u32,
    /// 1-based, in characters.
    pub column: u32,
    /// What is wrong and what would be valid.
    pub message: String,
}

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}: {}: {}",
            self.line, self.column, self.path, self.message
        )
    }
}

/// Every problem found in one spec file, sorted by position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecErrors {
    /// The file name shown in messages.
    pub file: String,
    pub errors: Vec<SpecError>,
}

/// At most this many errors are printed; the rest are counted.
pub const MAX_SHOWN_ERRORS: usize = 100;

impl fmt::Display for SpecErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.errors.iter().take(MAX_SHOWN_ERRORS).enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(
                f,
                "error: {}:{}:{}: {}: {}",
                self.file, e.line, e.column, e.path, e.message
            )?;
        }
        if self.errors.len() > MAX_SHOWN_ERRORS {
            write!(
                f,
                "\nerror: {}: and {} more error(s) not shown",
                self.file,
                self.errors.len() - MAX_SHOWN_ERRORS
            )?;
        }
        Ok(())
    }
}

impl std::error::Error for SpecErrors {}

/// Largest spec accepted, in bytes. A cluster spec with an embedded
/// kubeconfig is a few kilobytes; anything near this size is a mistake.
/// This bounds the work of parsing by construction.
pub const MAX_SPEC_BYTES: usize = 1024 * 1024;

/// The message of a spec larger than [`MAX_SPEC_BYTES`].
pub(crate) fn too_large_message() -> String {
    format!(
        "is larger than {} MiB ({MAX_SPEC_BYTES} bytes), the limit; valid: a cluster spec of at most {} MiB",
        MAX_SPEC_BYTES / (1024 * 1024),
        MAX_SPEC_BYTES / (1024 * 1024)
    )
}

/// The file name shown in messages for a `-f` argument.
fn shown_file(file_label: &str) -> &str {
    if file_label == "-" {
        "<stdin>"
    } else {
        file_label
    }
}

/// The error of a spec larger than [`MAX_SPEC_BYTES`], for readers that
/// stop reading at the limit (see [`parse`]).
pub fn too_large(file_label: &str) -> SpecErrors {
    SpecErrors {
        file: shown_file(file_label).to_owned(),
        errors: vec![SpecError {
            path: validate::DOCUMENT.to_owned(),
            line: 1,
            column: 1,
            message: too_large_message(),
        }],
    }
}

/// Parses and validates a cluster spec.
///
/// `file_label` is the file name shown in messages ("-" input is shown as
/// `<stdin>`). `name_arg` is an optional name given on the command line.
/// A text larger than [`MAX_SPEC_BYTES`] is refused before it is parsed.
pub fn parse(
    file_label: &str,
    text: &str,
    name_arg: Option<&str>,
) -> Result<ClusterSpec, SpecErrors> {
    let file = shown_file(file_label);
    if text.len() > MAX_SPEC_BYTES {
        return Err(too_large(file_label));
    }
    let mut ctx = fields::Ctx::new(text);
    let spec = match tree::load(text) {
        Err(e) => {
            ctx.at((e.line, e.column), validate::DOCUMENT, e.message);
            None
        }
        Ok(docs) => match docs.as_slice() {
            [] => {
                ctx.at(
                    (1, 1),
                    validate::DOCUMENT,
                    format!("is empty; valid: {}", validate::DOCUMENT_VALID),
                );
                None
            }
            [doc] => validate::validate(&mut ctx, doc, name_arg),
            [_, second, ..] => {
                ctx.on(
                    second,
                    validate::DOCUMENT,
                    format!(
                        "holds {} YAML documents; valid: exactly one cluster spec per file",
                        docs.len()
                    ),
                );
                None
            }
        },
    };
    let mut errors = ctx.errors;
    match spec {
        Some(spec) if errors.is_empty() => Ok(spec),
        _ => {
            if errors.is_empty() {
                // Not expected: every path that gives no spec reports why.
                errors.push(SpecError {
                    path: validate::DOCUMENT.to_owned(),
                    line: 1,
                    column: 1,
                    message: format!(
                        "is not a valid cluster spec; valid: {}",
                        validate::DOCUMENT_VALID
                    ),
                });
            }
            errors.sort_by_key(|e| (e.line, e.column));
            errors.dedup();
            Err(SpecErrors {
                file: file.to_owned(),
                errors,
            })
        }
    }
}
