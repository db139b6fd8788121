//! Permission checks before any write: SelfSubjectAccessReviews for what
//! register and destroy will use (derived from the plan, see
//! `pipeline::needs`), every missing one named at once.

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

/// One permission an operation will use: a verb on a group's resource, in
/// a namespace ("" for cluster-wide).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Need {
    pub verb: &'static str,
    pub group: String,
    pub resource: String,
    pub namespace: String,
}

/// The permissions a run will use in one cluster, derived from what it
/// will do (see `pipeline::needs`), each once.
#[derive(Debug, Clone, Default)]
pub struct Needs(std::collections::BTreeSet<Need>);

impl Needs {
    pub fn add(&mut self, verb: &'static str, group: &str, resource: &str, namespace: &str) {
        self.0.insert(Need {
            verb,
            group: group.to_string(),
            resource: resource.to_string(),
            namespace: namespace.to_string(),
        });
    }
    /// Every verb of `verbs` on one resource.
    pub fn add_all(
        &mut self,
        verbs: &[&'static str],
        group: &str,
        resource: &str,
        namespace: &str,
    ) {
        for v in verbs {
            self.add(v, group, resource, namespace);
        }
    }
    pub fn extend(&mut self, other: Needs) {
        self.0.extend(other.0);
    }
    pub fn len(&self) -> usize {
        self.0.len()
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    pub fn iter(&self) -> impl Iterator<Item = &Need> {
        self.0.iter()
    }
}

/// Checks every permission of `needs` at once; the error names every
/// missing one.
pub async fn check_needs(cluster: &Cluster, needs: &Needs) -> Result<()> {
    let wanted: Vec<Permission<'_>> = needs
        .0
        .iter()
        .map(|n| {
            (
                n.verb,
                n.group.as_str(),
                n.resource.as_str(),
                n.namespace.as_str(),
            )
        })
        .collect();
    check_permissions(cluster, &wanted).await
}

/// What register uses in the management cluster: the record (ConfigMap),
/// the plugin's copy of the credential (Secret) and the lock (Lease) in
/// the registry namespace, the Argo CD cluster Secret; creating the
/// registry namespace when it is missing. A virtual worker also reads its
/// host's credential and locks it (the same resources).
pub fn management_register(ns: &str, namespace_missing: bool) -> Needs {
    let mut n = Needs::default();
    n.add_all(&["get", "list", "create", "patch"], "", "configmaps", ns);
    n.add_all(&["get", "create", "patch"], "", "secrets", ns);
    n.add_all(
        &["get", "create", "patch"],
        "",
        "secrets",
        crate::registry::ARGOCD_NAMESPACE,
    );
    n.add_all(
        &["get", "create", "update", "delete"],
        "coordination.k8s.io",
        "leases",
        ns,
    );
    n.add("get", "", "namespaces", "");
    if namespace_missing {
        n.add("create", "", "namespaces", "");
    }
    n
}

/// What destroy uses in the management cluster: reading and removing the
/// record, the copy of the credential and the Argo CD cluster Secret, and
/// the lock.
pub fn management_destroy(ns: &str) -> Needs {
    let mut n = Needs::default();
    n.add_all(&["get", "list", "patch", "delete"], "", "configmaps", ns);
    n.add_all(&["get", "delete"], "", "secrets", ns);
    n.add_all(
        &["get", "delete"],
        "",
        "secrets",
        crate::registry::ARGOCD_NAMESPACE,
    );
    n.add_all(
        &["get", "create", "update", "delete"],
        "coordination.k8s.io",
        "leases",
        ns,
    );
    n
}
