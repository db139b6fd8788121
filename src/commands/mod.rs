//! One module per subcommand, plus what they share: loading a spec, reaching
//! clusters, preflight checks and installing one stage of a plan.

pub mod destroy;
pub mod info;
pub mod offline;
pub mod register;
pub mod stage;

use std::io::Read;
use std::path::Path;

use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
};
use kube::api::PostParams;

use crate::cli::{Global, SpecInput};
use crate::error::{Error, ExitCode, Result};
use crate::k8s::{Cluster, ConnectOptions};
use crate::output::Progress;
use crate::registry::Registry;
use crate::spec::ClusterSpec;

/// What every command gets.
pub struct Ctx {
    pub global: Global,
    pub progress: Progress,
}

impl Ctx {
    pub fn connect_options(&self) -> ConnectOptions {
        ConnectOptions {
            insecure_skip_tls_verify: self.global.insecure_skip_tls_verify,
            request_timeout: self.global.request_timeout,
        }
    }

    pub async fn management(&self) -> Result<Cluster> {
        Cluster::management(
            self.global.kubeconfig.as_deref(),
            self.global.context.as_deref(),
            self.connect_options(),
        )
        .await
    }

    pub async fn registry(&self) -> Result<Registry> {
        let m = self.management().await?;
        // one request without retries: an unreachable management cluster
        // fails at once
        m.version().await?;
        Ok(Registry::new(m, &self.global.registry_namespace))
    }
}

/// Reads a spec from a file or stdin ("-") and validates it; a kubeconfig
/// that runs commands or reads local files is refused unless allowed.
pub fn load_spec(input: &SpecInput) -> Result<ClusterSpec> {
    let (label, text) = read_input(&input.filename)?;
    let spec = crate::spec::parse(&label, &text, input.name.as_deref())?;
    spec.refuse_local_access(&label, input.allow_exec_kubeconfig)?;
    Ok(spec)
}

fn read_input(path: &Path) -> Result<(String, String)> {
    // at most one byte more than a spec may have: a larger input is refused
    // without being read to its end
    let limit = crate::spec::MAX_SPEC_BYTES as u64 + 1;
    let (label, shown) = if path.as_os_str() == "-" {
        ("-".to_owned(), "<stdin>".to_owned())
    } else {
        (path.display().to_string(), path.display().to_string())
    };
    let mut bytes = Vec::new();
    let read = if path.as_os_str() == "-" {
        std::io::stdin().take(limit).read_to_end(&mut bytes)
    } else {
        std::fs::File::open(path).and_then(|f| f.take(limit).read_to_end(&mut bytes))
    };
    read.map_err(|e| Error::invalid(format!("{shown}: cannot read: {e}")))?;
    if bytes.len() > crate::spec::MAX_SPEC_BYTES {
        return Err(crate::spec::too_large(&label).into());
    }
    let text = String::from_utf8(bytes).map_err(|_| {
        Error::invalid(format!(
            "{shown}: is not UTF-8 text; valid: a YAML or JSON document"
        ))
    })?;
    Ok((label, text))
}

/// One permission to check: (verb, group, resource, namespace).
pub type Permission<'a> = (&'a str, &'a str, &'a str, &'a str);

/// Checks permissions with SelfSubjectAccessReviews, all at once; the error
/// names every missing one.
pub async fn check_permissions(cluster: &Cluster, wanted: &[Permission<'_>]) -> Result<()> {
    let api: kube::Api<SelfSubjectAccessReview> = kube::Api::all(cluster.client.clone());
    let results = futures::future::join_all(wanted.iter().map(|(verb, group, resource, ns)| {
        let api = api.clone();
        async move {
            let review = SelfSubjectAccessReview {
                spec: SelfSubjectAccessReviewSpec {
                    resource_attributes: Some(ResourceAttributes {
                        verb: Some(verb.to_string()),
                        group: Some(group.to_string()),
                        resource: Some(resource.to_string()),
                        namespace: (!ns.is_empty()).then(|| ns.to_string()),
                        ..Default::default()
                    }),
                    ..Default::default()
                },
                ..Default::default()
            };
            let pp = PostParams::default();
            let r = crate::k8s::retry(|| api.create(&pp, &review)).await;
            (verb, group, resource, ns, r)
        }
    }))
    .await;
    let mut missing = Vec::new();
    for (verb, group, resource, ns, r) in results {
        let allowed = r
            .map_err(|e| cluster.err(e))?
            .status
            .is_some_and(|s| s.allowed);
        if !allowed {
            let res = if group.is_empty() {
                resource.to_string()
            } else {
                format!("{resource}.{group}")
            };
            let scope = if ns.is_empty() {
                "cluster-wide".to_string()
            } else {
                format!("in namespace {ns}")
            };
            missing.push(format!("{verb} {res} {scope}"));
        }
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(Error::new(
            ExitCode::Forbidden,
            format!(
                "{}: the credential lacks {} permission(s) needed; nothing was changed:\n  {}",
                cluster.label,
                missing.len(),
                missing.join("\n  ")
            ),
        ))
    }
}

/// What register needs in a runtime cluster.
pub const RUNTIME_PERMISSIONS: &[Permission<'static>] = &[
    (
        "create",
        "apiextensions.k8s.io",
        "customresourcedefinitions",
        "",
    ),
    (
        "patch",
        "apiextensions.k8s.io",
        "customresourcedefinitions",
        "",
    ),
    ("create", "", "namespaces", ""),
    ("patch", "", "namespaces", ""),
    ("create", "rbac.authorization.k8s.io", "clusterroles", ""),
    (
        "create",
        "rbac.authorization.k8s.io",
        "clusterrolebindings",
        "",
    ),
    ("bind", "rbac.authorization.k8s.io", "clusterroles", ""),
    (
        "create",
        "admissionregistration.k8s.io",
        "validatingwebhookconfigurations",
        "",
    ),
    (
        "create",
        "admissionregistration.k8s.io",
        "mutatingwebhookconfigurations",
        "",
    ),
    ("create", "apps", "deployments", ""),
    ("patch", "apps", "deployments", ""),
    ("create", "", "configmaps", "kube-system"),
    ("patch", "", "configmaps", "kube-system"),
    ("create", "", "secrets", "nautes-system"),
    ("delete", "", "namespaces", ""),
];

/// What register and destroy need in the management cluster.
pub fn management_permissions(ns: &str) -> Vec<(&'static str, &'static str, &'static str, String)> {
    let mut out = Vec::new();
    for verb in ["get", "create", "patch", "delete"] {
        out.push((
            verb,
            "",
            "secrets",
            crate::registry::ARGOCD_NAMESPACE.to_string(),
        ));
        out.push((verb, "", "configmaps", ns.to_string()));
        out.push((verb, "coordination.k8s.io", "leases", ns.to_string()));
    }
    out
}

/// check_permissions for permissions whose namespace is only known at run time.
pub async fn check_permissions_owned(
    cluster: &Cluster,
    wanted: &[(&'static str, &'static str, &'static str, String)],
) -> Result<()> {
    let refs: Vec<Permission<'_>> = wanted
        .iter()
        .map(|(v, g, r, n)| (*v, *g, *r, n.as_str()))
        .collect();
    check_permissions(cluster, &refs).await
}
