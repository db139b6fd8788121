//! Deleting inventory members in the reverse of the apply order: webhook
//! configurations and APIServices first (so nothing they guard is blocked),
//! then namespaced objects, custom resources' CRDs, other cluster-scoped
//! objects, and Namespaces last; each group is waited for until gone.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::StreamExt;
use kube::api::{DeleteParams, PropagationPolicy};

use super::apply::ObjectKey;
use super::{Cluster, describe, retry};
use crate::error::{Error, Result};
use crate::inventory::Member;
use crate::kinds::{self, Role, split_group_kind};

/// The order group of a member when deleting (lower first).
pub fn delete_group(gk: &str, namespaced: bool) -> u8 {
    match kinds::role(gk) {
        Role::Admission => 0,
        Role::Workload | Role::Passive if namespaced => 1,
        Role::Crd => 2,
        Role::Workload | Role::Passive => 3,
        Role::Namespace => 4,
    }
}

pub fn describe_key(key: &ObjectKey) -> String {
    let (_, kind) = split_group_kind(&key.0);
    describe(&kind, key.1.as_deref(), &key.2)
}

/// Deletes members group by group and waits until each group is gone.
/// `on_deleted` is called per object once it is gone.
pub async fn delete_members(
    cluster: &Cluster,
    members: &BTreeMap<ObjectKey, Member>,
    timeout: Duration,
    dry_run: bool,
    on_deleted: &(dyn Fn(&ObjectKey) + Sync),
) -> Result<()> {
    // passive namespaced objects (ConfigMaps, Secrets, RBAC, ...) in
    // namespaces that are deleted too go with their namespace: the namespace
    // controller removes them, so no request each
    let doomed: std::collections::BTreeSet<&str> = members
        .keys()
        .filter(|k| k.0 == kinds::NAMESPACE)
        .map(|k| k.2.as_str())
        .collect();
    let mut with_namespace: Vec<&ObjectKey> = Vec::new();
    let mut groups: BTreeMap<u8, Vec<(&ObjectKey, &Member)>> = BTreeMap::new();
    for (k, m) in members {
        let group = delete_group(&k.0, m.kind.namespaced);
        let has_pods = kinds::role(&k.0) == Role::Workload;
        // workloads are still deleted first: their Pods go in parallel with
        // the rest, which is faster than leaving them to the namespace
        if group == 1 && !has_pods && k.1.as_deref().is_some_and(|ns| doomed.contains(ns)) {
            with_namespace.push(k);
            continue;
        }
        groups
            .entry(delete_group(&k.0, m.kind.namespaced))
            .or_default()
            .push((k, m));
    }
    let deadline = crate::cli::deadline(timeout);
    for (_, group) in groups {
        let mut dp = DeleteParams {
            propagation_policy: Some(PropagationPolicy::Background),
            ..Default::default()
        };
        if dry_run {
            dp = dp.dry_run();
        }
        let results: Vec<Result<()>> = futures::stream::iter(group.iter().map(|(k, m)| {
            let dp = dp.clone();
            async move {
                let api = super::api(&cluster.client, &m.kind, k.1.as_deref());
                match retry(|| api.delete(&k.2, &dp)).await {
                    Ok(_) => Ok(()),
                    Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
                    Err(e) => Err(cluster.err(e).context(describe_key(k))),
                }
            }
        }))
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
        for r in results {
            r?;
        }
        if dry_run {
            for (k, _) in &group {
                on_deleted(k);
            }
            continue;
        }
        // wait until gone
        let mut pending: Vec<(&ObjectKey, &Member)> = group;
        let mut delay = Duration::from_millis(100);
        loop {
            let checks: Vec<std::result::Result<bool, kube::Error>> =
                futures::stream::iter(pending.iter().map(|(k, m)| async move {
                    let api = super::api(&cluster.client, &m.kind, k.1.as_deref());
                    retry(|| api.get_metadata_opt(&k.2))
                        .await
                        .map(|o| o.is_none())
                }))
                .buffered(CONCURRENCY)
                .collect()
                .await;
            let mut still = Vec::new();
            for ((k, m), gone) in pending.into_iter().zip(checks) {
                match gone {
                    Ok(true) => on_deleted(k),
                    Err(kube::Error::Api(s)) if s.code == 404 => on_deleted(k),
                    Ok(false) => still.push((k, m)),
                    Err(e) => return Err(cluster.err(e)),
                }
            }
            if still.is_empty() {
                break;
            }
            if tokio::time::Instant::now() >= deadline {
                let names: Vec<String> = still.iter().map(|(k, _)| describe_key(k)).collect();
                return Err(Error::timeout(format!(
                    "{}: {} object(s) still not gone after {}s (finalizers pending?):\n  {}",
                    cluster.label,
                    names.len(),
                    timeout.as_secs(),
                    names.join("\n  ")
                )));
            }
            pending = still;
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(2));
        }
    }
    // their namespaces are gone, and they with them
    for k in with_namespace {
        on_deleted(k);
    }
    Ok(())
}

/// Requests in flight at once while deleting.
const CONCURRENCY: usize = 16;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn webhooks_go_first_and_namespaces_last() {
        let w = delete_group(
            "ValidatingWebhookConfiguration.admissionregistration.k8s.io",
            false,
        );
        let d = delete_group("Deployment.apps", true);
        let crd = delete_group("CustomResourceDefinition.apiextensions.k8s.io", false);
        let cr = delete_group("ClusterRole.rbac.authorization.k8s.io", false);
        let ns = delete_group("Namespace", false);
        assert!(w < d && d < crd && crd < cr && cr < ns);
    }
}
