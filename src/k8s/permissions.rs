//! Permission checks before any write: SelfSubjectAccessReviews for what
//! register and destroy need, every missing one named at once.

use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
};
use kube::api::PostParams;

use super::Cluster;
use crate::error::{Error, ExitCode, Result};

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
            let r = super::retry(|| api.create(&pp, &review)).await;
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
pub const RUNTIME: &[Permission<'static>] = &[
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
pub fn management(ns: &str) -> Vec<(&'static str, &'static str, &'static str, String)> {
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
