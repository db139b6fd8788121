//! The StorageClasses a plan's volume claims need, checked before any
//! write: a claim that names a StorageClass needs that class in the
//! cluster, a claim that names none needs a default StorageClass. Without
//! them the claim stays Pending and its Pod is never scheduled ("pod has
//! unbound immediate PersistentVolumeClaims"), which a register would only
//! find out at the end of its readiness wait.

use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use k8s_openapi::api::storage::v1::StorageClass;
use kube::Api;
use kube::api::ListParams;

use super::Cluster;
use crate::error::{Error, Result};
use crate::render::Manifest;

/// The annotations that mark a StorageClass as the cluster's default
/// (the beta one is still honoured by Kubernetes).
const DEFAULT_CLASS_ANNOTATIONS: [&str; 2] = [
    "storageclass.kubernetes.io/is-default-class",
    "storageclass.beta.kubernetes.io/is-default-class",
];

/// A volume claim the plan will make: a PersistentVolumeClaim of the plan,
/// or the first claim of a StatefulSet's volumeClaimTemplates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    /// What makes the claim, for messages: "StatefulSet ns/name (claim
    /// template data)".
    pub by: String,
    pub namespace: String,
    /// The claim's name (for a template, the claim of the first replica).
    pub name: String,
    /// The StorageClass named, None for the default.
    pub class: Option<String>,
}

/// The volume claims of a rendered plan that need a StorageClass: claims
/// with `storageClassName: ""` (no class) or a `volumeName` (bound to a
/// given volume) need none.
pub fn claims(manifests: &[Manifest]) -> Vec<Claim> {
    let mut out = Vec::new();
    for m in manifests {
        let meta = &m.object["metadata"];
        let name = meta["name"].as_str().unwrap_or_default();
        let namespace = meta["namespace"]
            .as_str()
            .unwrap_or(&m.namespace)
            .to_string();
        let group_kind = (m.api_version(), m.kind());
        let specs: Vec<(String, String, &serde_json::Value)> = match group_kind {
            ("v1", "PersistentVolumeClaim") => vec![(
                format!("PersistentVolumeClaim {namespace}/{name}"),
                name.to_string(),
                &m.object["spec"],
            )],
            ("apps/v1", "StatefulSet") => m.object["spec"]["volumeClaimTemplates"]
                .as_array()
                .map(|templates| {
                    templates
                        .iter()
                        .filter_map(|t| {
                            let template = t["metadata"]["name"].as_str()?;
                            Some((
                                format!(
                                    "StatefulSet {namespace}/{name} (claim template {template})"
                                ),
                                format!("{template}-{name}-0"),
                                &t["spec"],
                            ))
                        })
                        .collect()
                })
                .unwrap_or_default(),
            _ => continue,
        };
        for (by, claim, spec) in specs {
            if spec["volumeName"].as_str().is_some_and(|v| !v.is_empty()) {
                continue;
            }
            let class = match spec["storageClassName"].as_str() {
                Some("") => continue,
                Some(c) => Some(c.to_string()),
                None => None,
            };
            out.push(Claim {
                by,
                namespace: namespace.clone(),
                name: claim,
                class,
            });
        }
    }
    out
}

/// The permissions [`check`] uses for these claims: (verb, group,
/// resource, namespace).
pub fn needs(claims: &[Claim]) -> Vec<(&'static str, &'static str, &'static str, String)> {
    if claims.is_empty() {
        return Vec::new();
    }
    let mut n = vec![("list", "storage.k8s.io", "storageclasses", String::new())];
    for c in claims {
        n.push(("get", "", "persistentvolumeclaims", c.namespace.clone()));
    }
    n
}

/// Checks that every claim that does not exist yet has its StorageClass:
/// one problem per claim, naming it, the class and what would be valid.
pub async fn check(cluster: &Cluster, claims: &[Claim]) -> Result<()> {
    if claims.is_empty() {
        return Ok(());
    }
    let mut pending = Vec::new();
    for c in claims {
        let api: Api<PersistentVolumeClaim> = Api::namespaced(cluster.client.clone(), &c.namespace);
        let existing = super::retry(|| api.get_opt(&c.name))
            .await
            .map_err(|e| cluster.err(e))?;
        // a claim made before (a re-register) was given its class then
        if existing.is_none() {
            pending.push(c);
        }
    }
    if pending.is_empty() {
        return Ok(());
    }
    let api: Api<StorageClass> = Api::all(cluster.client.clone());
    let lp = ListParams::default();
    let classes = super::retry(|| api.list(&lp))
        .await
        .map_err(|e| cluster.err(e))?;
    let names: Vec<String> = classes
        .items
        .iter()
        .filter_map(|s| s.metadata.name.clone())
        .collect();
    let defaults: Vec<&String> = classes
        .items
        .iter()
        .filter(|s| {
            let annotations = s.metadata.annotations.as_ref();
            DEFAULT_CLASS_ANNOTATIONS.iter().any(|a| {
                annotations
                    .and_then(|m| m.get(*a))
                    .is_some_and(|v| v == "true")
            })
        })
        .filter_map(|s| s.metadata.name.as_ref())
        .collect();
    let has = if names.is_empty() {
        "it has no StorageClass".to_string()
    } else {
        format!("it has: {}", names.join(", "))
    };
    let mut problems = Vec::new();
    for c in pending {
        match &c.class {
            Some(class) if !names.contains(class) => problems.push(format!(
                "{} claims a volume of StorageClass {class}, which {} does not have ({has}); valid: create StorageClass {class}, or name one the cluster has",
                c.by, cluster.label
            )),
            Some(_) => {}
            None if defaults.is_empty() => problems.push(format!(
                "{} claims a volume of the default StorageClass, and {} has no default StorageClass ({has}); valid: mark one as the default (annotation storageclass.kubernetes.io/is-default-class: \"true\"), or, for a virtual worker, name one in vcluster.storage_class of its spec",
                c.by, cluster.label
            )),
            None => {}
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(Error::missing(format!(
            "{}: {} volume claim(s) of the plan would never be bound; nothing was changed:\n  {}",
            cluster.label,
            problems.len(),
            problems.join("\n  ")
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn manifest(object: serde_json::Value) -> Manifest {
        Manifest {
            component: "vcluster".into(),
            namespace: "demo".into(),
            object,
        }
    }

    #[test]
    fn claims_of_claims_and_claim_templates() {
        let manifests = vec![
            manifest(json!({"apiVersion": "apps/v1", "kind": "StatefulSet",
            "metadata": {"name": "demo"},
            "spec": {"volumeClaimTemplates": [
                {"metadata": {"name": "data"}, "spec": {}},
                {"metadata": {"name": "logs"}, "spec": {"storageClassName": "fast"}},
                {"metadata": {"name": "none"}, "spec": {"storageClassName": ""}},
            ]}})),
            manifest(json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                "metadata": {"name": "cache", "namespace": "other"}, "spec": {}})),
            manifest(json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                "metadata": {"name": "bound"}, "spec": {"volumeName": "pv-1"}})),
            manifest(json!({"apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": "web"}, "spec": {}})),
        ];
        let got = claims(&manifests);
        assert_eq!(
            got,
            vec![
                Claim {
                    by: "StatefulSet demo/demo (claim template data)".into(),
                    namespace: "demo".into(),
                    name: "data-demo-0".into(),
                    class: None,
                },
                Claim {
                    by: "StatefulSet demo/demo (claim template logs)".into(),
                    namespace: "demo".into(),
                    name: "logs-demo-0".into(),
                    class: Some("fast".into()),
                },
                Claim {
                    by: "PersistentVolumeClaim other/cache".into(),
                    namespace: "other".into(),
                    name: "cache".into(),
                    class: None,
                },
            ]
        );
        assert_eq!(needs(&got).len(), 4);
        assert!(needs(&[]).is_empty());
    }
}
