//! The permissions a run will use in a cluster, derived from what it will
//! do there, so that preflight checks exactly those before the first write:
//! every kind of the rendered plan (listed cluster-wide to find the set's
//! members, read, created and patched by server-side apply where it
//! lives), the ApplySet parent, the credential's token Secret, and the
//! deletions of a prune or a destroy.

use std::collections::BTreeMap;

use super::{Planned, Rendered};
use crate::credential::CREDENTIAL_NAMESPACE;
use crate::inventory::{Member, PARENT_NAMESPACE};
use crate::k8s::apply::ObjectKey;
use crate::k8s::permissions::Needs;
use crate::kinds::{self, group_kind};

/// What applying and waiting for a rendered stage uses; with `credential`,
/// the minting of the nautes-manager token too.
pub fn of_rendered(rendered: &Rendered, credential: bool) -> Needs {
    let mut n = Needs::default();
    // kinds a CRD of the set defines: (group, kind) -> (plural, namespaced)
    let defined: BTreeMap<(String, String), (String, bool)> = rendered
        .manifests
        .iter()
        .filter(|m| group_kind(m.api_version(), m.kind()) == kinds::CRD)
        .filter_map(|m| {
            let spec = &m.object["spec"];
            Some((
                (
                    spec["group"].as_str()?.to_string(),
                    spec["names"]["kind"].as_str()?.to_string(),
                ),
                (
                    spec["names"]["plural"].as_str()?.to_string(),
                    spec["scope"].as_str() != Some("Cluster"),
                ),
            ))
        })
        .collect();
    for m in &rendered.manifests {
        let (group, _) = kinds::split_api_version(m.api_version());
        let (resource, namespaced) = match rendered.kinds.resolve(m.api_version(), m.kind()) {
            Some(k) => (k.resource.plural.clone(), k.namespaced),
            None => match defined.get(&(group.to_string(), m.kind().to_string())) {
                Some((plural, namespaced)) => (plural.clone(), *namespaced),
                // check_kinds refused unknown kinds already
                None => continue,
            },
        };
        let ns = if namespaced {
            m.object["metadata"]["namespace"]
                .as_str()
                .unwrap_or(&m.namespace)
                .to_string()
        } else {
            String::new()
        };
        // the set's members are listed cluster-wide, kind by kind
        n.add("list", group, &resource, "");
        n.add_all(&["get", "create", "patch"], group, &resource, &ns);
        // a binding to a role needs bind on it (unless the user holds every
        // permission of the role, which a review cannot ask)
        if m.kind() == "ClusterRoleBinding" || m.kind() == "RoleBinding" {
            let role = &m.object["roleRef"];
            match role["kind"].as_str() {
                Some("ClusterRole") => {
                    n.add("bind", "rbac.authorization.k8s.io", "clusterroles", "")
                }
                Some("Role") => n.add("bind", "rbac.authorization.k8s.io", "roles", &ns),
                _ => {}
            }
        }
    }
    // the endpoints of the Services admission objects call, waited for
    for m in &rendered.manifests {
        for (ns, _) in crate::k8s::admission::services_called(m) {
            n.add("list", "discovery.k8s.io", "endpointslices", &ns);
        }
    }
    // the StorageClasses of the plan's volume claims, checked in preflight
    for (verb, group, resource, ns) in
        crate::k8s::storage::needs(&crate::k8s::storage::claims(&rendered.manifests))
    {
        n.add(verb, group, resource, &ns);
    }
    // the ApplySet parent
    n.add_all(
        &["get", "create", "patch"],
        "",
        "configmaps",
        PARENT_NAMESPACE,
    );
    // Namespaces get the parent as owner
    n.add_all(&["get", "patch"], "", "namespaces", "");
    if credential {
        n.add_all(
            &["list", "get", "create"],
            "",
            "secrets",
            CREDENTIAL_NAMESPACE,
        );
    }
    n
}

/// What deleting these members uses.
pub fn of_deletion(members: &BTreeMap<ObjectKey, Member>) -> Needs {
    let mut n = Needs::default();
    for (key, m) in members {
        let ns = if m.kind.namespaced {
            key.1.clone().unwrap_or_default()
        } else {
            String::new()
        };
        n.add_all(
            &["get", "delete"],
            &m.kind.resource.group,
            &m.kind.resource.plural,
            &ns,
        );
    }
    n
}

/// What a plan's prune uses: deleting the members that left the plan.
pub fn of_prune(planned: &Planned) -> Needs {
    of_deletion(&planned.to_prune)
}
