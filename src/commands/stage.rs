//! Installing one stage of a plan into one cluster: render, check kinds,
//! record the inventory, apply in phases, wait, prune. Used by register for
//! every kind of cluster, and by diff (which stops before writing).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde::Serialize;

use crate::error::Result;
use crate::inventory::{ApplySet, Member, ParentState};
use crate::k8s::apply::{self, Applied, ApplyOptions, ObjectKey, Outcome, Phase};
use crate::k8s::wait::{self, Watched};
use crate::k8s::{Cluster, Kinds, delete, group_kind};
use crate::output::Progress;
use crate::plan::Stage;
use crate::render::{self, KubeInfo, Manifest, RenderOptions};
use crate::spec::ClusterSpec;

/// Counts of what a stage changed.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Changes {
    pub created: usize,
    pub configured: usize,
    pub unchanged: usize,
    pub pruned: usize,
}

impl Changes {
    pub fn add(&mut self, o: &Changes) {
        self.created += o.created;
        self.configured += o.configured;
        self.unchanged += o.unchanged;
        self.pruned += o.pruned;
    }
    pub fn changed(&self) -> bool {
        self.created + self.configured + self.pruned > 0
    }
}

impl std::fmt::Display for Changes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} created, {} configured, {} unchanged, {} pruned",
            self.created, self.configured, self.unchanged, self.pruned
        )
    }
}

/// One object that changed, for the result.
#[derive(Debug, Clone, Serialize)]
pub struct ChangedObject {
    pub action: String,
    pub object: String,
    pub component: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct StageReport {
    pub target: String,
    pub cluster: String,
    pub changes: Changes,
    pub changed: Vec<ChangedObject>,
}

pub struct StageOptions<'a> {
    pub render: &'a RenderOptions,
    pub apply: ApplyOptions,
    pub wait: bool,
    pub timeout: Duration,
    /// Compute what would change and stop (diff).
    pub plan_only: bool,
    /// Called once the credential's objects (component `credential`) are
    /// applied, before anything else: register mints and saves the token
    /// there, so a run stopped at any later point can still be destroyed.
    pub on_credential: Option<&'a CredentialHook>,
}

/// See [`StageOptions::on_credential`].
pub type CredentialHook = dyn Fn(Cluster) -> futures::future::BoxFuture<'static, Result<()>> + Sync;

/// The component name of the project's credential manifests.
pub const CREDENTIAL_COMPONENT: &str = "credential";

/// Renders a stage for a cluster and checks its kinds; nothing is written.
pub async fn prepare(
    cluster: &Cluster,
    spec: &ClusterSpec,
    stage: &Stage,
    opts: &StageOptions<'_>,
    progress: &Progress,
) -> Result<(Kinds, Vec<Manifest>)> {
    let step = format!("render {}", stage.target.as_str());
    let kinds = Kinds::discover(cluster).await?;
    let version = cluster.version().await?;
    let info = KubeInfo {
        version: Some(version),
        api_versions: kinds.api_versions(),
    };
    let env = render::environment();
    let manifests = render::render_stage(&env, spec, stage, opts.render, &info).await?;
    progress.done(
        &step,
        format!(
            "{} objects from {} component(s)",
            manifests.len(),
            stage.components.len()
        ),
    );
    apply::check_kinds(&manifests, &kinds, cluster)?;
    Ok((kinds, manifests))
}

/// Installs a stage: the whole register pipeline for one cluster.
pub async fn install(
    cluster: &Cluster,
    spec: &ClusterSpec,
    set: &ApplySet,
    stage: &Stage,
    opts: &StageOptions<'_>,
    progress: &Progress,
) -> Result<StageReport> {
    let target = stage.target.as_str();
    let (mut kinds, mut manifests) = prepare(cluster, spec, stage, opts, progress).await?;

    // inventory before: what the set holds now
    let old = set.load(cluster).await?.unwrap_or_default();
    let mut new_state = ParentState::default();
    for m in &manifests {
        new_state
            .group_kinds
            .insert(group_kind(m.api_version(), m.kind()));
    }
    // normalize namespaces (CRD kinds are not known yet: namespaced unless the CRD says Cluster)
    let crd_scopes: BTreeMap<(String, String), bool> = manifests
        .iter()
        .filter(|m| m.kind() == "CustomResourceDefinition")
        .map(|m| {
            (
                (
                    m.object["spec"]["group"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string(),
                    m.object["spec"]["names"]["kind"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string(),
                ),
                m.object["spec"]["scope"] != "Cluster",
            )
        })
        .collect();
    let mut keys: BTreeSet<ObjectKey> = BTreeSet::new();
    for m in &mut manifests {
        let kind = match kinds.resolve(m.api_version(), m.kind()) {
            Some(k) => k,
            None => {
                let group = m
                    .api_version()
                    .split_once('/')
                    .map(|(g, _)| g)
                    .unwrap_or("")
                    .to_string();
                let namespaced = crd_scopes
                    .get(&(group, m.kind().to_string()))
                    .copied()
                    .unwrap_or(true);
                crate::k8s::Kind {
                    resource: kube::discovery::ApiResource::from_gvk(
                        &kube::api::GroupVersionKind::gvk("", "v1", "Unknown"),
                    ),
                    namespaced,
                }
            }
        };
        apply::normalize_namespace(m, &kind);
        set.mark(&mut m.object);
        if let Some(ns) = m.object_namespace()
            && ns != crate::inventory::PARENT_NAMESPACE
        {
            new_state.namespaces.insert(ns.to_string());
        }
        keys.insert(apply::key_of(m, &kind));
    }
    let all_gks: BTreeSet<String> = old
        .group_kinds
        .union(&new_state.group_kinds)
        .cloned()
        .collect();
    let before: BTreeMap<ObjectKey, Member> = set.members(cluster, &kinds, &all_gks).await?;
    let to_prune: BTreeMap<ObjectKey, Member> = before
        .iter()
        .filter(|(k, _)| !keys.contains(*k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let before_rv: BTreeMap<ObjectKey, String> = before
        .iter()
        .map(|(k, m)| (k.clone(), m.resource_version.clone()))
        .collect();
    // what our last apply left (the credential's objects are always sent:
    // the bootstrap below may just have changed them)
    let previous: apply::Previous = before
        .iter()
        .filter(|(_, m)| m.component != CREDENTIAL_COMPONENT)
        .filter_map(|(k, _)| {
            old.applied
                .get(&crate::inventory::applied_key(k))
                .map(|r| (k.clone(), (r.rv.clone(), r.hash.clone())))
        })
        .collect();

    let mut changes = Changes::default();
    let mut changed = Vec::new();

    if opts.plan_only {
        // server dry run of every apply tells what would change
        let mut dry = opts.apply.clone();
        dry.dry_run_server = true;
        // objects of kinds or in namespaces that do not exist yet cannot be
        // dry-run: they would be created
        let ns_api: kube::Api<k8s_openapi::api::core::v1::Namespace> =
            kube::Api::all(cluster.client.clone());
        let lp = kube::api::ListParams::default();
        let existing: BTreeSet<String> = crate::k8s::retry(|| ns_api.list_metadata(&lp))
            .await
            .map_err(|e| cluster.err(e))?
            .items
            .into_iter()
            .filter_map(|n| n.metadata.name)
            .collect();
        let can_dry_run = |m: &Manifest| {
            kinds.resolve(m.api_version(), m.kind()).is_some()
                && m.object_namespace().is_none_or(|ns| existing.contains(ns))
        };
        let refs: Vec<&Manifest> = manifests.iter().filter(|m| can_dry_run(m)).collect();
        let applied = apply::apply_many(
            cluster,
            &kinds,
            &refs,
            &dry,
            &before_rv,
            &Default::default(),
            &|_| {},
        )
        .await?;
        for m in manifests.iter().filter(|m| !can_dry_run(m)) {
            changes.created += 1;
            changed.push(ChangedObject {
                action: "create".into(),
                object: crate::k8s::describe(m.kind(), m.object_namespace(), m.name()),
                component: m.component.clone(),
            });
        }
        tally(&applied, &mut changes, &mut changed);
        for (k, m) in &to_prune {
            changes.pruned += 1;
            changed.push(ChangedObject {
                action: "prune".into(),
                object: delete::describe_key(k),
                component: m.component.clone(),
            });
        }
        return Ok(StageReport {
            target: target.into(),
            cluster: cluster.label.clone(),
            changes,
            changed,
        });
    }

    // record the union first, so a run killed mid-apply still finds everything
    let union = ParentState {
        group_kinds: all_gks.clone(),
        namespaces: old
            .namespaces
            .union(&new_state.namespaces)
            .cloned()
            .collect(),
        applied: old.applied.clone(),
    };
    let dry = opts.apply.dry_run_server;
    set.save(cluster, &union, dry).await?;

    // the credential first: its Namespace, its ClusterRoleBinding (owned by
    // that Namespace) and its ServiceAccount, then the hook
    if let Some(hook) = opts.on_credential
        && !dry
    {
        for phase in [Phase::Namespaces, Phase::ClusterScoped, Phase::Namespaced] {
            if phase == Phase::ClusterScoped {
                // the Namespace exists now: its uid is the binding's owner
                set_namespace_owners(cluster, &mut manifests).await?;
            }
            let objs: Vec<&Manifest> = manifests
                .iter()
                .filter(|m| {
                    m.component == CREDENTIAL_COMPONENT
                        && apply::phase_of(m, kinds.resolve(m.api_version(), m.kind()).as_ref())
                            == phase
                })
                .collect();
            apply::apply_many(
                cluster,
                &kinds,
                &objs,
                &opts.apply,
                &before_rv,
                &Default::default(),
                &|_| {},
            )
            .await?;
        }
        hook(cluster.clone()).await?;
    }

    let count = AtomicUsize::new(0);
    let total = manifests.len();
    let on_done = |a: &Applied| {
        let n = count.fetch_add(1, Ordering::Relaxed) + 1;
        progress.status(format!(
            "apply {target}: {n}/{total} objects applied ({})",
            a.component
        ));
        // one line per object only with -v; the default shows summaries
        progress.debug(
            &format!("apply {target}"),
            format!(
                "{} {} ({n}/{total})",
                crate::k8s::describe(
                    a.group_kind.split('.').next().unwrap_or(""),
                    a.namespace.as_deref(),
                    &a.name
                ),
                match a.outcome {
                    Outcome::Created => "created",
                    Outcome::Configured => "configured",
                    Outcome::Unchanged => "unchanged",
                }
            ),
        );
    };

    let phase_of = |m: &Manifest, kinds: &Kinds| {
        apply::phase_of(m, kinds.resolve(m.api_version(), m.kind()).as_ref())
    };
    let mut all_applied = Vec::new();
    let phase_ctx = PhaseCtx {
        cluster,
        opts: &opts.apply,
        before: &before_rv,
        previous: &previous,
        on_done: &on_done,
        progress,
        target,
    };
    // 1. CRDs, then wait Established and refresh discovery
    let crds: Vec<&Manifest> = manifests
        .iter()
        .filter(|m| phase_of(m, &kinds) == Phase::Crds)
        .collect();
    if !crds.is_empty() {
        let applied = apply_phase(&phase_ctx, &kinds, &crds, "CustomResourceDefinitions").await?;
        all_applied.extend(applied);
        if !dry {
            let names: Vec<String> = crds.iter().map(|m| m.name().to_string()).collect();
            apply::wait_crds(cluster, &names, opts.timeout).await?;
            kinds = Kinds::discover(cluster).await?;
        }
    }
    // 2..4. Namespaces, cluster-scoped, namespaced
    for (phase, what) in [
        (Phase::Namespaces, "Namespaces"),
        (Phase::ClusterScoped, "cluster-scoped objects"),
        (Phase::Namespaced, "namespaced objects"),
    ] {
        if phase == Phase::ClusterScoped && !dry {
            // the Namespaces exist now: owners can be set
            set_namespace_owners(cluster, &mut manifests).await?;
        }
        let objs: Vec<&Manifest> = manifests
            .iter()
            .filter(|m| phase_of(m, &kinds) == phase)
            .filter(|m| !dry || kinds.resolve(m.api_version(), m.kind()).is_some())
            .collect();
        if objs.is_empty() {
            continue;
        }
        let applied = apply_phase(&phase_ctx, &kinds, &objs, what).await?;
        all_applied.extend(applied);
    }
    // 5. wait for the workloads, then admission objects, then wait for those
    let watched = |phase_filter: &dyn Fn(Phase) -> bool| -> Vec<Watched> {
        manifests
            .iter()
            .filter(|m| phase_filter(phase_of(m, &kinds)))
            .filter_map(|m| {
                let gk = group_kind(m.api_version(), m.kind());
                if !wait::judged(&gk) || gk == "CustomResourceDefinition.apiextensions.k8s.io" {
                    return None;
                }
                let kind = kinds.resolve(m.api_version(), m.kind())?;
                Some(Watched {
                    group_kind: gk,
                    namespace: if kind.namespaced {
                        m.object_namespace().map(str::to_string)
                    } else {
                        None
                    },
                    kind,
                    name: m.name().to_string(),
                    component: m.component.clone(),
                })
            })
            .collect()
    };
    let admission: Vec<&Manifest> = manifests
        .iter()
        .filter(|m| phase_of(m, &kinds) == Phase::Admission)
        .collect();
    if !dry {
        let workloads = watched(&|p| p != Phase::Admission);
        if (opts.wait || !admission.is_empty()) && !workloads.is_empty() {
            progress.info(
                &format!("wait {target}"),
                format!("{} workloads to become ready", workloads.len()),
            );
            let ready = AtomicUsize::new(0);
            let n = workloads.len();
            progress.status(format!("wait {target}: 0/{n} workloads ready"));
            wait::wait_ready(cluster, &kinds, workloads, opts.timeout, &|w| {
                let r = ready.fetch_add(1, Ordering::Relaxed) + 1;
                progress.status(format!(
                    "wait {target}: {r}/{n} workloads ready ({} of {})",
                    w.describe(),
                    w.component
                ));
                progress.debug(
                    &format!("wait {target}"),
                    format!("{} ready ({r}/{n})", w.describe()),
                );
            })
            .await?;
            progress.done(&format!("wait {target}"), format!("{n} workloads ready"));
        }
    }
    if !admission.is_empty() {
        let applied = apply_phase(
            &phase_ctx,
            &kinds,
            &admission,
            "webhook configurations and APIServices",
        )
        .await?;
        all_applied.extend(applied);
        if opts.wait && !dry {
            let services = watched(&|p| p == Phase::Admission);
            if !services.is_empty() {
                wait::wait_ready(cluster, &kinds, services, opts.timeout, &|_| {}).await?;
            }
        }
    }
    if !dry {
        let mut per: BTreeMap<&str, Vec<&Applied>> = BTreeMap::new();
        for a in &all_applied {
            per.entry(a.component.as_str()).or_default().push(a);
        }
        for (component, applied) in per {
            let owned: Vec<Applied> = applied.into_iter().cloned().collect();
            progress.done(
                &format!("component {component}"),
                format!("{} objects ({})", owned.len(), summary(&owned)),
            );
        }
    }
    let all_applied_records: BTreeMap<String, crate::inventory::AppliedRecord> = all_applied
        .iter()
        .map(|a| {
            (
                crate::inventory::applied_key(&(
                    a.group_kind.clone(),
                    a.namespace.clone(),
                    a.name.clone(),
                )),
                crate::inventory::AppliedRecord {
                    rv: a.resource_version.clone(),
                    hash: a.hash.clone(),
                },
            )
        })
        .collect();
    tally(&all_applied, &mut changes, &mut changed);

    // 6. prune what left the plan
    if !to_prune.is_empty() {
        progress.info(
            &format!("prune {target}"),
            format!("{} object(s) no longer in the plan", to_prune.len()),
        );
        delete::delete_members(cluster, &to_prune, opts.timeout, dry, &|k| {
            progress.change(
                &format!("prune {target}"),
                format!("{} deleted", delete::describe_key(k)),
            );
        })
        .await?;
        for (k, m) in &to_prune {
            changes.pruned += 1;
            changed.push(ChangedObject {
                action: "prune".into(),
                object: delete::describe_key(k),
                component: m.component.clone(),
            });
        }
    }
    // 7. the parent now records exactly this plan
    if !dry {
        new_state.applied = all_applied_records;
    }
    if union != new_state {
        set.save(cluster, &new_state, dry).await?;
    }
    progress.status(String::new());
    progress.done(&format!("apply {target}"), changes.to_string());
    Ok(StageReport {
        target: target.into(),
        cluster: cluster.label.clone(),
        changes,
        changed,
    })
}

/// Objects annotated `nautes.io/owner-namespace: NS` get an ownerReference
/// to that Namespace, so they are garbage-collected with it.
async fn set_namespace_owners(cluster: &Cluster, manifests: &mut [Manifest]) -> Result<()> {
    let api: kube::Api<k8s_openapi::api::core::v1::Namespace> =
        kube::Api::all(cluster.client.clone());
    for m in manifests.iter_mut() {
        let Some(ns) = m.object["metadata"]["annotations"][OWNER_NAMESPACE]
            .as_str()
            .map(str::to_string)
        else {
            continue;
        };
        let got = crate::k8s::retry(|| api.get_opt(&ns))
            .await
            .map_err(|e| cluster.err(e))?;
        if let Some(uid) = got.and_then(|n| n.metadata.uid) {
            m.object["metadata"]["ownerReferences"] = serde_json::json!([{
                "apiVersion": "v1", "kind": "Namespace", "name": ns, "uid": uid,
            }]);
        }
    }
    Ok(())
}

pub const OWNER_NAMESPACE: &str = "nautes.io/owner-namespace";

/// What every apply phase of a stage shares.
struct PhaseCtx<'a> {
    cluster: &'a Cluster,
    opts: &'a ApplyOptions,
    before: &'a BTreeMap<ObjectKey, String>,
    previous: &'a apply::Previous,
    on_done: &'a (dyn Fn(&Applied) + Sync),
    progress: &'a Progress,
    target: &'a str,
}

/// Applies one phase's objects and reports a one-line summary.
async fn apply_phase(
    pc: &PhaseCtx<'_>,
    kinds: &Kinds,
    objs: &[&Manifest],
    what: &str,
) -> Result<Vec<Applied>> {
    let applied = apply::apply_many(
        pc.cluster,
        kinds,
        objs,
        pc.opts,
        pc.before,
        pc.previous,
        pc.on_done,
    )
    .await?;
    pc.progress.change(
        &format!("apply {}", pc.target),
        format!("{what}: {}", summary(&applied)),
    );
    Ok(applied)
}

/// "3 created, 1 configured, 40 unchanged".
fn summary(applied: &[Applied]) -> String {
    let count = |o: Outcome| applied.iter().filter(|a| a.outcome == o).count();
    let mut parts = Vec::new();
    for (o, word) in [
        (Outcome::Created, "created"),
        (Outcome::Configured, "configured"),
        (Outcome::Unchanged, "unchanged"),
    ] {
        let n = count(o);
        if n > 0 {
            parts.push(format!("{n} {word}"));
        }
    }
    let skipped = applied.iter().filter(|a| !a.sent).count();
    if skipped > 0 {
        parts.push(format!(
            "{skipped} of them untouched since the last apply, not sent"
        ));
    }
    if parts.is_empty() {
        "nothing to apply".into()
    } else {
        parts.join(", ")
    }
}

fn tally(applied: &[Applied], changes: &mut Changes, changed: &mut Vec<ChangedObject>) {
    for a in applied {
        let kind = a.group_kind.split('.').next().unwrap_or("");
        let action = match a.outcome {
            Outcome::Created => {
                changes.created += 1;
                "create"
            }
            Outcome::Configured => {
                changes.configured += 1;
                "configure"
            }
            Outcome::Unchanged => {
                changes.unchanged += 1;
                continue;
            }
        };
        changed.push(ChangedObject {
            action: action.into(),
            object: crate::k8s::describe(kind, a.namespace.as_deref(), &a.name),
            component: a.component.clone(),
        });
    }
}
