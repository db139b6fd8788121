//! The inventory of what was applied to a cluster, as an ApplySet
//! (KEP-3659): a parent ConfigMap in kube-system labelled with the set's id,
//! annotated with the group-kinds and namespaces of its members; every member
//! labelled `applyset.kubernetes.io/part-of: <id>`. Re-register prunes with
//! it; destroy finds everything with it, without re-rendering.

use std::collections::{BTreeMap, BTreeSet};

use base64::Engine as _;
use kube::api::{ListParams, Patch, PatchParams};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::k8s::apply::{FIELD_MANAGER, ObjectKey};
use crate::k8s::{Cluster, Kind, Kinds, retry};
use crate::kinds::split_group_kind;
use crate::render::{CLUSTER_LABEL, MANAGED_BY, MANAGER};

pub const PARENT_NAMESPACE: &str = "kube-system";
pub const ID_LABEL: &str = "applyset.kubernetes.io/id";
pub const PART_OF: &str = "applyset.kubernetes.io/part-of";
pub const TOOLING: &str = "applyset.kubernetes.io/tooling";
pub const GROUP_KINDS: &str = "applyset.kubernetes.io/contains-group-kinds";
pub const NAMESPACES: &str = "applyset.kubernetes.io/additional-namespaces";
/// The parent's data key holding `ParentState::applied`.
pub const APPLIED_KEY: &str = "applied.json";
/// The parent's data key holding `ParentState::adopted`.
pub const ADOPTED_KEY: &str = "adopted.json";

/// An ApplySet: its parent's name and id, and the field manager its
/// members are applied with.
#[derive(Debug, Clone)]
pub struct ApplySet {
    pub cluster_name: String,
    pub parent: String,
    pub id: String,
    /// One per registration, so server-side apply reports a conflict
    /// between two registrations instead of moving fields between them.
    pub manager: String,
}

/// The parent's tooling annotation as this version writes it.
fn tooling_value() -> String {
    format!("kubectl-nautes/v{}", env!("CARGO_PKG_VERSION"))
}

/// What the parent records.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ParentState {
    pub group_kinds: BTreeSet<String>,
    pub namespaces: BTreeSet<String>,
    /// Per member ("GroupKind/namespace/name"): the resourceVersion our last
    /// apply left and the hash of what we sent. A member still at that
    /// resourceVersion, rendered to the same hash, needs no request.
    pub applied: BTreeMap<String, AppliedRecord>,
    /// Members that existed before the plugin applied them and were taken
    /// over with --adopt ("GroupKind/namespace/name"). Namespaces among them
    /// are never deleted: destroy and prune release them.
    pub adopted: BTreeSet<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AppliedRecord {
    pub rv: String,
    pub hash: String,
}

/// The key of a member in `ParentState::applied`.
pub fn applied_key(key: &ObjectKey) -> String {
    format!("{}/{}/{}", key.0, key.1.as_deref().unwrap_or(""), key.2)
}

/// A member found in the cluster.
#[derive(Debug, Clone)]
pub struct Member {
    pub kind: Kind,
    pub resource_version: String,
    pub component: String,
}

impl ApplySet {
    /// The set of cluster `name` registered from the management side
    /// `owner` (the UID of the registry namespace): the same cluster name
    /// registered from another management cluster or registry namespace is
    /// another set. A virtual worker's host-side set carries the virtual
    /// cluster's name.
    pub fn new(name: &str, owner: &str) -> Self {
        let tag: String = Sha256::digest(owner.as_bytes())
            .iter()
            .take(4)
            .map(|b| format!("{b:02x}"))
            .collect();
        let parent = format!("nautes-applyset-{name}-{tag}");
        // KEP-3659: base64url(sha256("<name>.<namespace>.<kind>.<group>")), no padding
        let digest = Sha256::digest(format!("{parent}.{PARENT_NAMESPACE}.ConfigMap.").as_bytes());
        let id = format!(
            "applyset-{}-v1",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest)
        );
        Self {
            cluster_name: name.to_string(),
            parent,
            id,
            manager: format!("{FIELD_MANAGER}-{tag}-{name}"),
        }
    }

    fn parent_api(&self, cluster: &Cluster) -> kube::Api<k8s_openapi::api::core::v1::ConfigMap> {
        kube::Api::namespaced(cluster.client.clone(), PARENT_NAMESPACE)
    }

    /// Reads the parent; None when the set does not exist.
    pub async fn load(&self, cluster: &Cluster) -> Result<Option<ParentState>> {
        Ok(self.read(cluster).await?.map(|(state, _)| state))
    }

    /// Reads the parent, and whether this version of the plugin wrote it
    /// (its tooling annotation): then writing the same state again changes
    /// nothing and can be left out.
    pub async fn load_current(&self, cluster: &Cluster) -> Result<(ParentState, bool)> {
        Ok(match self.read(cluster).await? {
            Some((state, tooling)) => (state, tooling.as_deref() == Some(tooling_value().as_str())),
            None => (ParentState::default(), false),
        })
    }

    async fn read(&self, cluster: &Cluster) -> Result<Option<(ParentState, Option<String>)>> {
        let api = self.parent_api(cluster);
        let Some(cm) = retry(|| api.get_opt(&self.parent))
            .await
            .map_err(|e| cluster.err(e))?
        else {
            return Ok(None);
        };
        let ann = cm.metadata.annotations.unwrap_or_default();
        let split = |k: &str| -> BTreeSet<String> {
            ann.get(k)
                .map(|s| {
                    s.split(',')
                        .filter(|x| !x.is_empty())
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default()
        };
        let data = |k: &str| cm.data.as_ref().and_then(|d| d.get(k));
        let applied = data(APPLIED_KEY)
            .and_then(|t| serde_json::from_str(t).ok())
            .unwrap_or_default();
        let adopted = data(ADOPTED_KEY)
            .and_then(|t| serde_json::from_str(t).ok())
            .unwrap_or_default();
        Ok(Some((
            ParentState {
                group_kinds: split(GROUP_KINDS),
                namespaces: split(NAMESPACES),
                applied,
                adopted,
            },
            ann.get(TOOLING).cloned(),
        )))
    }

    /// Writes the parent (server-side apply).
    pub async fn save(&self, cluster: &Cluster, state: &ParentState, dry_run: bool) -> Result<()> {
        let api = self.parent_api(cluster);
        let join = |s: &BTreeSet<String>| s.iter().cloned().collect::<Vec<_>>().join(",");
        let obj = json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": self.parent,
                "namespace": PARENT_NAMESPACE,
                "labels": {ID_LABEL: self.id, MANAGED_BY: MANAGER, CLUSTER_LABEL: self.cluster_name},
                "annotations": {
                    TOOLING: tooling_value(),
                    GROUP_KINDS: join(&state.group_kinds),
                    NAMESPACES: join(&state.namespaces),
                }
            },
            "data": {
                APPLIED_KEY: serde_json::to_string(&state.applied).unwrap_or_else(|_| "{}".into()),
                ADOPTED_KEY: serde_json::to_string(&state.adopted).unwrap_or_else(|_| "[]".into()),
            },
        });
        let mut pp = PatchParams::apply(&self.manager).force();
        if dry_run {
            pp = pp.dry_run();
        }
        let patch = Patch::Apply(&obj);
        retry(|| api.patch(&self.parent, &pp, &patch))
            .await
            .map_err(|e| {
                cluster.err(e).context(format!(
                    "ApplySet parent ConfigMap {PARENT_NAMESPACE}/{}",
                    self.parent
                ))
            })?;
        Ok(())
    }

    pub async fn delete_parent(&self, cluster: &Cluster) -> Result<()> {
        let api = self.parent_api(cluster);
        let dp = kube::api::DeleteParams::default();
        match retry(|| api.delete(&self.parent, &dp)).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
            Err(e) => Err(cluster.err(e)),
        }
    }

    /// Lists every member of the set among the given group-kinds.
    pub async fn members(
        &self,
        cluster: &Cluster,
        kinds: &Kinds,
        group_kinds: &BTreeSet<String>,
    ) -> Result<BTreeMap<ObjectKey, Member>> {
        let selector = format!("{PART_OF}={}", self.id);
        let lists = futures::future::join_all(group_kinds.iter().map(|gk| {
            let selector = selector.clone();
            async move {
                let (group, kind) = split_group_kind(gk);
                let Some(k) = kinds.resolve_group_kind(&group, &kind) else {
                    // the kind is gone (its CRD was deleted): no members left
                    return Ok(Vec::new());
                };
                let api: kube::Api<kube::api::DynamicObject> =
                    kube::Api::all_with(cluster.client.clone(), &k.resource);
                let lp = ListParams::default().labels(&selector);
                let list = retry(|| api.list_metadata(&lp))
                    .await
                    .map_err(|e| cluster.err(e))?;
                Ok::<_, crate::error::Error>(
                    list.items
                        .into_iter()
                        .map(|o| {
                            let labels = o.metadata.labels.clone().unwrap_or_default();
                            (
                                (
                                    gk.clone(),
                                    o.metadata.namespace.clone(),
                                    o.metadata.name.clone().unwrap_or_default(),
                                ),
                                Member {
                                    kind: k.clone(),
                                    resource_version: o
                                        .metadata
                                        .resource_version
                                        .clone()
                                        .unwrap_or_default(),
                                    component: labels
                                        .get(crate::render::COMPONENT_LABEL)
                                        .cloned()
                                        .unwrap_or_default(),
                                },
                            )
                        })
                        .collect::<Vec<_>>(),
                )
            }
        }))
        .await;
        let mut out = BTreeMap::new();
        for l in lists {
            out.extend(l?);
        }
        Ok(out)
    }

    /// Adds the membership label to an object.
    pub fn mark(&self, object: &mut Value) {
        object["metadata"]["labels"][PART_OF] = Value::String(self.id.clone());
    }
}

impl ApplySet {
    /// Custom resources of the set's CRDs that are not members of the set:
    /// they would go with the CRDs.
    pub async fn foreign_custom_resources(
        &self,
        cluster: &Cluster,
        kinds: &Kinds,
        members: &BTreeMap<ObjectKey, Member>,
    ) -> Result<Vec<String>> {
        let crds: BTreeSet<&str> = members
            .keys()
            .filter(|k| k.0 == crate::kinds::CRD)
            .map(|k| k.2.as_str())
            .collect();
        // one list per CRD, all at once (a LIST of a new CRD can wait for its
        // watch cache, so one after the other adds up). Fail closed: a CRD
        // whose resource discovery does not show, or whose list fails, is
        // named as not checked, never taken as empty.
        let mut resolved = Vec::new();
        for crd in crds {
            let found = crd.split_once('.').and_then(|(plural, group)| {
                kinds
                    .group_resources(group)?
                    .into_iter()
                    .find(|(ar, _)| ar.plural == plural)
            });
            match found {
                Some((ar, _)) => resolved.push((crd, ar)),
                None => {
                    return Err(Error::new(
                        crate::error::ExitCode::Unreachable,
                        format!(
                            "{}: could not check the custom resources of CRD {crd} (a safety check before deleting it; --force skips it): the API server's discovery does not list its resource (is the CRD Established?)",
                            cluster.label
                        ),
                    ));
                }
            }
        }
        let lists = futures::future::join_all(resolved.into_iter().map(|(crd, ar)| async move {
            let api: kube::Api<kube::api::DynamicObject> =
                kube::Api::all_with(cluster.client.clone(), &ar);
            let lp = ListParams::default();
            let list = retry(|| api.list_metadata(&lp)).await.map_err(|e| {
                let e = cluster.err(e);
                Error::new(
                    e.code,
                    format!(
                        "{}: could not check the custom resources of CRD {crd} (a safety check before deleting it; --force skips it): {}",
                        cluster.label, e.message
                    ),
                )
            })?;
            Ok::<_, Error>((ar, list.items))
        }))
        .await;
        let mut out = Vec::new();
        for l in lists {
            let (ar, items) = l?;
            for o in items {
                let ours = o
                    .metadata
                    .labels
                    .as_ref()
                    .and_then(|l| l.get(PART_OF))
                    .is_some_and(|v| *v == self.id);
                if !ours {
                    out.push(crate::k8s::describe(
                        &ar.kind,
                        o.metadata.namespace.as_deref(),
                        o.metadata.name.as_deref().unwrap_or(""),
                    ));
                }
            }
        }
        out.sort();
        Ok(out)
    }
}

/// Who an existing object belongs to, as far as a set is concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Owner {
    /// Labelled as a member of this set (a run stopped before the parent
    /// recorded its kind).
    Ours,
    /// Not labelled as a member of any set: the user's, or another tool's.
    Nobody,
    /// A member of another set: another registration (the cluster name it
    /// carries, and the set id).
    Other { cluster: String, set: String },
}

/// An object of the plan that exists but is not a member of the set.
#[derive(Debug, Clone)]
pub struct Existing {
    pub owner: Owner,
    pub resource_version: String,
}

/// From this many objects of one kind in one namespace on, `existing` lists
/// them instead of reading each.
const LIST_FROM: usize = 8;

/// Objects asked for, with their kinds.
type Wanted = Vec<(ObjectKey, Kind)>;

impl ApplySet {
    /// Reads the objects of a plan that are not members of the set: the
    /// ones that exist are returned with their owner. `wanted` are the keys
    /// with their kind; objects of kinds the cluster does not serve yet
    /// cannot exist and are not asked for.
    pub async fn existing(
        &self,
        cluster: &Cluster,
        wanted: Vec<(ObjectKey, Kind)>,
    ) -> Result<BTreeMap<ObjectKey, Existing>> {
        use futures::StreamExt;
        // many objects of one kind in one namespace (or cluster-scoped) are
        // read with one paged LIST of their metadata, the others one by one
        let mut groups: BTreeMap<(String, Option<String>), Wanted> = BTreeMap::new();
        for (key, kind) in wanted {
            groups
                .entry((key.0.clone(), key.1.clone()))
                .or_default()
                .push((key, kind));
        }
        let (listed, single): (Vec<_>, Vec<_>) = groups
            .into_values()
            .partition(|objs| objs.len() >= LIST_FROM);
        let single = single.into_iter().flatten();
        let found: Vec<Result<Vec<(ObjectKey, Existing)>>> =
            futures::stream::iter(
                single
                    .map(|(key, kind)| {
                        futures::future::Either::Left(async move {
                            let api = crate::k8s::api(&cluster.client, &kind, key.1.as_deref());
                            let got = retry(|| api.get_metadata_opt(&key.2))
                                .await
                                .map_err(|e| cluster.err(e))?;
                            Ok(got
                                .map(|o| vec![(key, self.existing_of(&o.metadata))])
                                .unwrap_or_default())
                        })
                    })
                    .chain(listed.into_iter().map(|objs| {
                        futures::future::Either::Right(self.list_existing(cluster, objs))
                    })),
            )
            .buffer_unordered(16)
            .collect()
            .await;
        let mut out = BTreeMap::new();
        for f in found {
            out.extend(f?);
        }
        Ok(out)
    }

    fn existing_of(&self, meta: &kube::api::ObjectMeta) -> Existing {
        let labels = meta.labels.clone().unwrap_or_default();
        let owner = match labels.get(PART_OF) {
            Some(set) if *set == self.id => Owner::Ours,
            Some(set) => Owner::Other {
                cluster: labels.get(CLUSTER_LABEL).cloned().unwrap_or_default(),
                set: set.clone(),
            },
            None => Owner::Nobody,
        };
        Existing {
            owner,
            resource_version: meta.resource_version.clone().unwrap_or_default(),
        }
    }

    /// The objects of one kind in one namespace (all of `objs` share both)
    /// that exist, from a paged LIST of metadata.
    async fn list_existing(
        &self,
        cluster: &Cluster,
        objs: Vec<(ObjectKey, Kind)>,
    ) -> Result<Vec<(ObjectKey, Existing)>> {
        let Some((first, kind)) = objs.first() else {
            return Ok(Vec::new());
        };
        let api = crate::k8s::api(&cluster.client, kind, first.1.as_deref());
        let mut wanted: BTreeMap<&str, &ObjectKey> =
            objs.iter().map(|(k, _)| (k.2.as_str(), k)).collect();
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut lp = ListParams::default().limit(500);
            if let Some(t) = &token {
                lp = lp.continue_token(t);
            }
            let page = retry(|| api.list_metadata(&lp))
                .await
                .map_err(|e| cluster.err(e))?;
            for o in &page.items {
                let name = o.metadata.name.as_deref().unwrap_or_default();
                if let Some(key) = wanted.remove(name) {
                    out.push((key.clone(), self.existing_of(&o.metadata)));
                }
            }
            token = page.metadata.continue_.filter(|t| !t.is_empty());
            if token.is_none() || wanted.is_empty() {
                return Ok(out);
            }
        }
    }

    /// Gives an adopted object back: the set's labels and the set's field
    /// ownership are removed from it, the object stays. Used for Namespaces
    /// that existed before the plugin applied them.
    pub async fn release(&self, cluster: &Cluster, key: &ObjectKey, kind: &Kind) -> Result<()> {
        let api = crate::k8s::api(&cluster.client, kind, key.1.as_deref());
        let (group, k) = split_group_kind(&key.0);
        let api_version = match kind.resource.group.as_str() {
            "" => kind.resource.version.clone(),
            _ => format!("{group}/{}", kind.resource.version),
        };
        // applying only the name drops every field this manager set (the
        // labels, annotations) that nobody else owns
        let mut bare = json!({"apiVersion": api_version, "kind": k, "metadata": {"name": key.2}});
        if let Some(ns) = &key.1 {
            bare["metadata"]["namespace"] = json!(ns);
        }
        let pp = PatchParams::apply(&self.manager).force();
        let patch = Patch::Apply(&bare);
        let what = crate::k8s::describe(&k, key.1.as_deref(), &key.2);
        let obj = match retry(|| api.patch(&key.2, &pp, &patch)).await {
            Ok(o) => o,
            Err(kube::Error::Api(s)) if s.code == 404 => return Ok(()),
            Err(e) => return Err(cluster.err(e).context(format!("releasing {what}"))),
        };
        // then the manager's entry goes from managedFields
        let kept: Vec<Value> = obj
            .metadata
            .managed_fields
            .unwrap_or_default()
            .into_iter()
            .filter(|m| m.manager.as_deref() != Some(self.manager.as_str()))
            .filter_map(|m| serde_json::to_value(m).ok())
            .collect();
        let kept = if kept.is_empty() {
            vec![json!({})]
        } else {
            kept
        };
        let strip = json!({"metadata": {"managedFields": kept}});
        let (pp, mp) = (PatchParams::default(), Patch::Merge(&strip));
        retry(|| api.patch(&key.2, &pp, &mp))
            .await
            .map_err(|e| cluster.err(e).context(format!("releasing {what}")))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_follows_kep_3659() {
        let set = ApplySet::new("demo", "uid-1");
        assert!(
            set.id.starts_with("applyset-") && set.id.ends_with("-v1"),
            "{}",
            set.id
        );
        // 32 bytes of sha256 in unpadded base64url are 43 characters
        assert_eq!(set.id.len(), "applyset-".len() + 43 + "-v1".len());
        assert!(!set.id.contains('=') && !set.id.contains('+') && !set.id.contains('/'));
        assert_ne!(ApplySet::new("other", "uid-1").id, set.id);
        // the same name from another management side is another set
        let elsewhere = ApplySet::new("demo", "uid-2");
        assert_ne!(elsewhere.id, set.id);
        assert_ne!(elsewhere.parent, set.parent);
        assert_ne!(elsewhere.manager, set.manager);
    }
}
