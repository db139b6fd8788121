//! The steps before any write: render the stage for its cluster, then plan
//! it against the inventory (what exists, what our last apply left, what
//! left the plan).

use std::collections::{BTreeMap, BTreeSet};

use crate::error::{Error, Result};
use crate::inventory::{self, ApplySet, Member, Owner, ParentState};
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
    /// Whether the parent exists, written by this version of the plugin.
    pub recorded: bool,
    /// The group-kinds and namespaces of this plan.
    pub new: ParentState,
    /// Members that exist now, with their resourceVersion.
    pub before: BTreeMap<ObjectKey, String>,
    /// What our last apply left of each member (see `apply::Previous`).
    pub previous: Previous,
    /// Members that left the plan.
    pub to_prune: BTreeMap<ObjectKey, Member>,
}

/// What a plan may take over or delete, as the user said.
#[derive(Debug, Clone, Copy, Default)]
pub struct Ownership {
    /// --adopt: take over objects of the plan that exist and belong to no
    /// registration.
    pub adopt: bool,
    /// --force: prune CRDs even when custom resources the plugin did not
    /// create would go with them.
    pub force: bool,
}

/// At most this many objects are named in a refusal; the rest are counted.
pub const NAMED: usize = 20;

/// "3 objects:\n  a\n  b\n  c", at most NAMED of them, then how many more.
pub fn listing(items: &[String]) -> String {
    let mut out: Vec<String> = items.iter().take(NAMED).cloned().collect();
    if items.len() > NAMED {
        out.push(format!("... and {} more", items.len() - NAMED));
    }
    format!("{}:\n  {}", items.len(), out.join("\n  "))
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
            // adoptions are recorded before the first write, so a run
            // stopped after taking over a Namespace never lets destroy
            // delete it
            adopted: self.old.adopted.union(&self.new.adopted).cloned().collect(),
        }
    }

    /// Whether a member was adopted (existed before the plugin applied it).
    pub fn was_adopted(&self, key: &ObjectKey) -> bool {
        let k = inventory::applied_key(key);
        self.old.adopted.contains(&k) || self.new.adopted.contains(&k)
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
    for line in render::prepare_stage_charts(spec, stage, opts).await? {
        progress.done("charts", line);
    }
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

/// Plans a rendered stage against the set's inventory, and refuses, before
/// anything is written, what the plugin may not do: take over an object
/// that is not its own (unless adopted), touch another registration's
/// objects, or prune a CRD whose custom resources others made. Reads only.
pub async fn plan(
    cluster: &Cluster,
    set: &ApplySet,
    rendered: Rendered,
    ownership: Ownership,
    progress: &crate::output::Progress,
) -> Result<Planned> {
    let Rendered {
        kinds,
        mut manifests,
    } = rendered;
    let (old, recorded) = set.load_current(cluster).await?;
    let mut new = ParentState::default();
    let crd_scopes = crd_scopes(&manifests);
    let mut keys: BTreeSet<ObjectKey> = BTreeSet::new();
    let mut resolved: Vec<(ObjectKey, Kind)> = Vec::new();
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
        let key = apply::key_of(m, &kind);
        if kinds.resolve(m.api_version(), m.kind()).is_some() {
            resolved.push((key.clone(), kind));
        }
        keys.insert(key);
    }
    let all_gks: BTreeSet<String> = old.group_kinds.union(&new.group_kinds).cloned().collect();
    let mut members = set.members(cluster, &kinds, &all_gks).await?;
    let others: Vec<(ObjectKey, Kind)> = resolved
        .into_iter()
        .filter(|(k, _)| !members.contains_key(k))
        .collect();
    let existing = set.existing(cluster, others.clone()).await?;
    let mut foreign = Vec::new();
    let mut taken = Vec::new();
    for (key, kind) in others {
        let Some(e) = existing.get(&key) else {
            continue;
        };
        let what = crate::k8s::delete::describe_key(&key);
        match &e.owner {
            Owner::Ours => {}
            Owner::Nobody
                if key.0 == kinds::NAMESPACE
                    && key.2 == crate::credential::CREDENTIAL_NAMESPACE =>
            {
                taken.push(format!(
                    "{what}: exists and was not created by kubectl-nautes; it is where the plugin keeps its own credential, so it cannot be adopted"
                ))
            }
            Owner::Nobody => foreign.push(what),
            Owner::Other { cluster: c, set: s } => taken.push(format!(
                "{what}: belongs to the registration of cluster {} (ApplySet {s})",
                if c.is_empty() { "<unknown>" } else { c }
            )),
        }
        // adopted (or ours): applied as an existing object, not created
        members.insert(
            key.clone(),
            Member {
                kind,
                resource_version: e.resource_version.clone(),
                component: String::new(),
            },
        );
        if matches!(e.owner, Owner::Nobody) {
            new.adopted.insert(inventory::applied_key(&key));
        }
    }
    if !taken.is_empty() {
        return Err(Error::refused(format!(
            "{}: {} object(s) of the plan cannot be taken over, not even with --adopt (registrations never share objects); nothing was changed: {}",
            cluster.label,
            taken.len(),
            listing(&taken)
        )));
    }
    if !foreign.is_empty() && !ownership.adopt {
        return Err(Error::refused(format!(
            "{}: {} object(s) of the plan already exist and were not created by kubectl-nautes for this cluster; nothing was changed. Remove them, or pass --adopt to take them over (Namespaces taken over are never deleted: destroy gives them back): {}",
            cluster.label,
            foreign.len(),
            listing(&foreign)
        )));
    }
    // adopted before, still in the plan: still adopted
    for k in &keys {
        let ak = inventory::applied_key(k);
        if old.adopted.contains(&ak) {
            new.adopted.insert(ak);
        }
    }
    let to_prune: BTreeMap<ObjectKey, Member> = members
        .iter()
        .filter(|(k, _)| !keys.contains(*k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let crds: BTreeMap<ObjectKey, Member> = to_prune
        .iter()
        .filter(|(k, _)| k.0 == kinds::CRD)
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    if !crds.is_empty() {
        let theirs = match set.foreign_custom_resources(cluster, &kinds, &crds).await {
            Ok(t) => t,
            // --force prunes without the check (the message says so)
            Err(e) if ownership.force => {
                progress.warn("plan", format!("{e}; --force: pruning without it"));
                Vec::new()
            }
            Err(e) => return Err(e),
        };
        if !theirs.is_empty() && !ownership.force {
            return Err(Error::refused(format!(
                "{}: pruning the CRDs that left the plan would delete {} custom resource(s) not created by kubectl-nautes; nothing was changed. Remove them first, or pass --force: {}",
                cluster.label,
                theirs.len(),
                listing(&theirs)
            )));
        }
    }
    let before = members
        .iter()
        .map(|(k, m)| (k.clone(), m.resource_version.clone()))
        .collect();
    // what our last apply left
    let previous = members
        .keys()
        .filter_map(|k| {
            old.applied
                .get(&inventory::applied_key(k))
                .map(|r| (k.clone(), (r.rv.clone(), r.hash.clone())))
        })
        .collect();
    Ok(Planned {
        kinds,
        manifests,
        old,
        recorded,
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
