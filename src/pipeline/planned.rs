//! The steps before any write: render the stage for its cluster, then plan
//! it against the inventory (what exists, what our last apply left, what
//! left the plan).

use std::collections::{BTreeMap, BTreeSet};

use crate::credential::CREDENTIAL_COMPONENT;
use crate::error::Result;
use crate::inventory::{self, ApplySet, Member, ParentState};
use crate::k8s::apply::{self, ObjectKey, Previous};
use crate::k8s::{Cluster, Kind, Kinds};
use crate::kinds::{self, group_kind};
use crate::output::Progress;
use crate::plan::Stage;
use crate::render::{self, KubeInfo, Manifest, RenderOptions};
use crate::spec::ClusterSpec;

/// Step 1: the stage's objects, rendered for the cluster's version and API
/// versions, every kind known to the cluster or defined by a CRD of the set.
pub struct Rendered {
    pub kinds: Kinds,
    pub manifests: Vec<Manifest>,
}

/// Step 2: the rendered objects, normalized and marked as members of the
/// set, with the inventory difference.
pub struct Planned {
    pub kinds: Kinds,
    pub manifests: Vec<Manifest>,
    /// What the parent recorded before this run.
    pub old: ParentState,
    /// The group-kinds and namespaces of this plan.
    pub new: ParentState,
    /// Members that exist now, with their resourceVersion.
    pub before: BTreeMap<ObjectKey, String>,
    /// What our last apply left of each member (see `apply::Previous`).
    pub previous: Previous,
    /// Members that left the plan.
    pub to_prune: BTreeMap<ObjectKey, Member>,
}

impl Planned {
    /// The old and new group-kinds and namespaces together: recorded before
    /// the first apply, so a run killed mid-apply still finds everything.
    pub fn union(&self) -> ParentState {
        ParentState {
            group_kinds: self
                .old
                .group_kinds
                .union(&self.new.group_kinds)
                .cloned()
                .collect(),
            namespaces: self
                .old
                .namespaces
                .union(&self.new.namespaces)
                .cloned()
                .collect(),
            applied: self.old.applied.clone(),
        }
    }
}

/// Renders a stage for a cluster and checks its kinds; nothing is written.
pub async fn render(
    cluster: &Cluster,
    spec: &ClusterSpec,
    stage: &Stage,
    opts: &RenderOptions,
    progress: &Progress,
) -> Result<Rendered> {
    let kinds = Kinds::discover(cluster).await?;
    let info = KubeInfo {
        version: Some(cluster.version().await?),
        api_versions: kinds.api_versions(),
    };
    let env = render::environment();
    let manifests = render::render_stage(&env, spec, stage, opts, &info).await?;
    progress.done(
        &format!("render {}", stage.target.as_str()),
        format!(
            "{} objects from {} component(s)",
            manifests.len(),
            stage.components.len()
        ),
    );
    apply::check_kinds(&manifests, &kinds, cluster)?;
    Ok(Rendered { kinds, manifests })
}

/// Plans a rendered stage against the set's inventory; reads only.
pub async fn plan(cluster: &Cluster, set: &ApplySet, rendered: Rendered) -> Result<Planned> {
    let Rendered {
        kinds,
        mut manifests,
    } = rendered;
    let old = set.load(cluster).await?.unwrap_or_default();
    let mut new = ParentState::default();
    let crd_scopes = crd_scopes(&manifests);
    let mut keys: BTreeSet<ObjectKey> = BTreeSet::new();
    for m in &mut manifests {
        new.group_kinds
            .insert(group_kind(m.api_version(), m.kind()));
        let kind = kinds
            .resolve(m.api_version(), m.kind())
            .unwrap_or_else(|| kind_to_be_defined(m, &crd_scopes));
        apply::normalize_namespace(m, &kind);
        set.mark(&mut m.object);
        if let Some(ns) = m.object_namespace()
            && ns != inventory::PARENT_NAMESPACE
        {
            new.namespaces.insert(ns.to_string());
        }
        keys.insert(apply::key_of(m, &kind));
    }
    let all_gks: BTreeSet<String> = old.group_kinds.union(&new.group_kinds).cloned().collect();
    let members = set.members(cluster, &kinds, &all_gks).await?;
    let to_prune = members
        .iter()
        .filter(|(k, _)| !keys.contains(*k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let before = members
        .iter()
        .map(|(k, m)| (k.clone(), m.resource_version.clone()))
        .collect();
    // what our last apply left (the credential's objects are always sent:
    // the bootstrap may just have changed them)
    let previous = members
        .iter()
        .filter(|(_, m)| m.component != CREDENTIAL_COMPONENT)
        .filter_map(|(k, _)| {
            old.applied
                .get(&inventory::applied_key(k))
                .map(|r| (k.clone(), (r.rv.clone(), r.hash.clone())))
        })
        .collect();
    Ok(Planned {
        kinds,
        manifests,
        old,
        new,
        before,
        previous,
        to_prune,
    })
}

/// Whether each kind defined by a CRD of the set is namespaced, by (group,
/// kind).
fn crd_scopes(manifests: &[Manifest]) -> BTreeMap<(String, String), bool> {
    manifests
        .iter()
        .filter(|m| group_kind(m.api_version(), m.kind()) == kinds::CRD)
        .map(|m| {
            let (group, kind, namespaced) = kinds::crd_defines(&m.object);
            ((group, kind), namespaced)
        })
        .collect()
}

/// The kind of an object whose CRD is not applied yet: namespaced unless
/// its CRD says Cluster.
fn kind_to_be_defined(m: &Manifest, crd_scopes: &BTreeMap<(String, String), bool>) -> Kind {
    let (group, _) = kinds::split_api_version(m.api_version());
    let namespaced = crd_scopes
        .get(&(group.to_string(), m.kind().to_string()))
        .copied()
        .unwrap_or(true);
    Kind {
        resource: kube::discovery::ApiResource::from_gvk(&kube::api::GroupVersionKind::gvk(
            "", "v1", "Unknown",
        )),
        namespaced,
    }
}
