//! The preview step: a server dry run of every apply tells what would
//! change; nothing is written.

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::Namespace;

use super::run::tally;
use super::{ChangedObject, Changes, Planned, StageOptions, StageReport};
use crate::error::Result;
use crate::inventory::ApplySet;
use crate::k8s::{Cluster, apply, delete, describe, retry};
use crate::plan::Stage;
use crate::render::Manifest;

/// Dry-runs a planned stage. Objects of kinds or in namespaces that do not
/// exist yet cannot be dry-run: they would be created.
pub async fn dry_run(
    cluster: &Cluster,
    set: &ApplySet,
    stage: &Stage,
    opts: &StageOptions<'_>,
    mut planned: Planned,
) -> Result<StageReport> {
    // as the install would send them: owned by their Namespace
    super::run::set_namespace_owners(cluster, &mut planned.manifests).await?;
    let existing = namespaces(cluster).await?;
    let kinds = &planned.kinds;
    let can_dry_run = |m: &Manifest| {
        kinds.resolve(m.api_version(), m.kind()).is_some()
            && m.object_namespace().is_none_or(|ns| existing.contains(ns))
    };
    let (now, later): (Vec<&Manifest>, Vec<&Manifest>) =
        planned.manifests.iter().partition(|m| can_dry_run(m));
    let mut dry = opts.apply.clone();
    dry.dry_run_server = true;
    dry.field_manager = set.manager.clone();
    let applied = apply::apply_many(
        cluster,
        kinds,
        &now,
        &dry,
        &planned.before,
        &Default::default(),
        &|_| {},
    )
    .await?;
    let mut changes = Changes::default();
    let mut changed = Vec::new();
    for m in later {
        changes.created += 1;
        changed.push(ChangedObject {
            action: "create".into(),
            object: describe(m.kind(), m.object_namespace(), m.name()),
            component: m.component.clone(),
        });
    }
    tally(&applied, &mut changes, &mut changed);
    for (k, m) in &planned.to_prune {
        changes.pruned += 1;
        changed.push(ChangedObject {
            action: if planned.was_adopted(k) && k.0 == crate::kinds::NAMESPACE {
                "release".into()
            } else {
                "prune".into()
            },
            object: delete::describe_key(k),
            component: m.component.clone(),
        });
    }
    Ok(StageReport {
        target: stage.target.as_str().into(),
        cluster: cluster.label.clone(),
        changes,
        changed,
    })
}

async fn namespaces(cluster: &Cluster) -> Result<BTreeSet<String>> {
    let api: kube::Api<Namespace> = kube::Api::all(cluster.client.clone());
    let lp = kube::api::ListParams::default();
    Ok(retry(|| api.list_metadata(&lp))
        .await
        .map_err(|e| cluster.err(e))?
        .items
        .into_iter()
        .filter_map(|n| n.metadata.name)
        .collect())
}
