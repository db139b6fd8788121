//! The writing steps of an install, over one value (`Run`) that collects
//! what each phase applied.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use super::{ChangedObject, Changes, Planned, StageOptions, StageReport};
use crate::credential::CREDENTIAL_COMPONENT;
use crate::error::{Error, Result};
use crate::inventory::{self, AppliedRecord, ApplySet, ParentState};
use crate::k8s::admission::{self, ServiceRef};
use crate::k8s::apply::{self, Applied, Outcome, Phase};
use crate::k8s::wait::{self, Watched};
use crate::k8s::{Cluster, Kinds, delete, describe};
use crate::kinds::{self, group_kind};
use crate::output::Progress;
use crate::plan::Stage;
use crate::render::Manifest;

/// Objects annotated `nautes.io/owner-namespace: NS` get an ownerReference
/// to that Namespace, so they are garbage-collected with it.
pub const OWNER_NAMESPACE: &str = "nautes.io/owner-namespace";

/// An install in progress: the plan, and what has been applied so far.
pub struct Run<'a> {
    cluster: &'a Cluster,
    set: &'a ApplySet,
    target: &'a str,
    opts: &'a StageOptions<'a>,
    progress: &'a Progress,
    planned: Planned,
    /// What the parent records from the first write on.
    union: ParentState,
    applied: Vec<Applied>,
    changes: Changes,
    changed: Vec<ChangedObject>,
    /// Objects applied so far, for the status line.
    count: AtomicUsize,
    /// The apply options with the set's field manager.
    apply: crate::k8s::apply::ApplyOptions,
    /// Whether the credential's objects were applied by the bootstrap.
    bootstrapped: bool,
}

impl<'a> Run<'a> {
    pub fn new(
        cluster: &'a Cluster,
        set: &'a ApplySet,
        stage: &'a Stage,
        opts: &'a StageOptions<'a>,
        progress: &'a Progress,
        planned: Planned,
    ) -> Self {
        Self {
            cluster,
            set,
            target: stage.target.as_str(),
            opts,
            progress,
            union: planned.union(),
            planned,
            applied: Vec::new(),
            changes: Changes::default(),
            changed: Vec::new(),
            count: AtomicUsize::new(0),
            apply: crate::k8s::apply::ApplyOptions {
                field_manager: set.manager.clone(),
                ..opts.apply.clone()
            },
            bootstrapped: false,
        }
    }

    fn phase_of(&self, m: &Manifest) -> Phase {
        let kinds = &self.planned.kinds;
        apply::phase_of(m, kinds.resolve(m.api_version(), m.kind()).as_ref())
    }

    fn in_phase(&self, phase: Phase) -> Vec<&Manifest> {
        self.planned
            .manifests
            .iter()
            .filter(|m| self.phase_of(m) == phase)
            .collect()
    }

    /// Records the union of the old and the new inventory first, so a run
    /// killed mid-apply still finds everything.
    pub async fn record_inventory(&self) -> Result<()> {
        if self.planned.recorded && self.union == self.planned.old {
            // it records all of it already: a register with nothing to
            // change writes nothing
            return Ok(());
        }
        self.set.save(self.cluster, &self.union, false).await
    }

    /// The credential first: its Namespace, its ClusterRoleBinding (owned by
    /// that Namespace) and its ServiceAccount, then the hook that mints and
    /// saves the token.
    pub async fn bootstrap_credential(&mut self) -> Result<()> {
        let Some(hook) = self.opts.on_credential else {
            return Ok(());
        };
        for phase in [Phase::Namespaces, Phase::ClusterScoped, Phase::Namespaced] {
            if phase == Phase::ClusterScoped {
                // the Namespace exists now: its uid is the binding's owner
                set_namespace_owners(self.cluster, &mut self.planned.manifests).await?;
            }
            let objs: Vec<&Manifest> = self
                .in_phase(phase)
                .into_iter()
                .filter(|m| m.component == CREDENTIAL_COMPONENT)
                .collect();
            // sent only when changed, as every other object: a register
            // with nothing to change writes nothing
            let applied = apply::apply_many(
                self.cluster,
                &self.planned.kinds,
                &objs,
                &self.apply,
                &self.planned.before,
                &self.planned.previous,
                &|_| {},
            )
            .await?;
            self.count.fetch_add(applied.len(), Ordering::Relaxed);
            self.applied.extend(applied);
        }
        // applied once: the phases that follow leave them out
        self.bootstrapped = true;
        hook(self.cluster.clone()).await
    }

    /// CRDs, then wait until they are Established and refresh discovery.
    pub async fn apply_crds(&mut self) -> Result<()> {
        let names: Vec<String> = self
            .in_phase(Phase::Crds)
            .iter()
            .map(|m| m.name().to_string())
            .collect();
        if names.is_empty() {
            return Ok(());
        }
        let step = format!("apply {}", self.target);
        self.progress.debug(
            &step,
            format!("{} CustomResourceDefinitions to apply", names.len()),
        );
        let sent = self
            .apply_phase(Phase::Crds, "CustomResourceDefinitions")
            .await?;
        if sent == 0 {
            // every CRD is untouched since the last apply, which waited for
            // it to be Established, and the discovery this run started with
            // already serves its kinds: nothing to wait for
            self.progress.debug(
                &step,
                format!(
                    "{} CustomResourceDefinitions untouched since the last apply: no wait, discovery kept",
                    names.len()
                ),
            );
            return Ok(());
        }
        let versions = apply::wait_crds(self.cluster, &names, self.opts.timeout).await?;
        for a in self
            .applied
            .iter_mut()
            .filter(|a| a.group_kind == kinds::CRD)
        {
            if let Some(rv) = versions.get(&a.name) {
                a.resource_version = rv.clone();
            }
        }
        self.planned.kinds = Kinds::discover(self.cluster).await?;
        // the end of the CRD phase (make bench measures it with -v)
        self.progress.debug(
            &step,
            format!(
                "{} CustomResourceDefinitions Established, discovery refreshed",
                names.len()
            ),
        );
        Ok(())
    }

    /// Namespaces (the pre-install hooks run in them next).
    pub async fn apply_namespaces(&mut self) -> Result<()> {
        self.apply_phase(Phase::Namespaces, "Namespaces").await?;
        // the Namespaces exist now: owners can be set
        set_namespace_owners(self.cluster, &mut self.planned.manifests).await
    }

    /// What a hook needs to be applied like the other objects: the kinds
    /// (refreshed after the CRDs) and the apply options.
    pub fn for_hooks(&self) -> (&Kinds, &crate::k8s::apply::ApplyOptions) {
        (&self.planned.kinds, &self.apply)
    }

    pub fn cluster(&self) -> &Cluster {
        self.cluster
    }

    /// Cluster-scoped objects, namespaced objects.
    pub async fn apply_objects(&mut self) -> Result<()> {
        self.apply_phase(Phase::ClusterScoped, "cluster-scoped objects")
            .await?;
        self.apply_phase(Phase::Namespaced, "namespaced objects")
            .await?;
        Ok(())
    }

    /// Waits for the workloads, with --wait. Admission objects were applied
    /// before, each once what it calls was ready (see [`Self::apply_admission`]).
    pub async fn wait_workloads(&self) -> Result<()> {
        let workloads = self.watched(|p| p != Phase::Admission);
        if !self.opts.wait || workloads.is_empty() {
            return Ok(());
        }
        let (p, target, n) = (self.progress, self.target, workloads.len());
        p.info(
            &format!("wait {target}"),
            format!("{n} workloads to become ready"),
        );
        let ready = AtomicUsize::new(0);
        p.status(format!("wait {target}: 0/{n} workloads ready"));
        wait::wait_ready(
            self.cluster,
            &self.planned.kinds,
            workloads,
            self.opts.timeout,
            &|w| {
                let r = ready.fetch_add(1, Ordering::Relaxed) + 1;
                p.status(format!(
                    "wait {target}: {r}/{n} workloads ready ({} of {})",
                    w.describe(),
                    w.component
                ));
                p.debug(
                    &format!("wait {target}"),
                    format!("{} ready ({r}/{n})", w.describe()),
                );
            },
        )
        .await?;
        p.done(&format!("wait {target}"), format!("{n} workloads ready"));
        Ok(())
    }

    /// Webhook configurations and APIServices, each as soon as every
    /// Service it calls has a ready endpoint (before the other workloads are
    /// waited for: some of them become ready only once it exists); one that
    /// is unchanged, or calls no Service, at once. Waits no longer than
    /// --timeout, then names what is still waited for. With --wait, then
    /// until the APIServices are Available.
    pub async fn apply_admission(&mut self) -> Result<()> {
        let mut pending: Vec<(usize, Vec<ServiceRef>)> = self
            .planned
            .manifests
            .iter()
            .enumerate()
            .filter(|(_, m)| self.phase_of(m) == Phase::Admission)
            .filter(|(_, m)| !(self.bootstrapped && m.component == CREDENTIAL_COMPONENT))
            .map(|(i, m)| {
                let unchanged = apply::would_skip(
                    m,
                    &self.planned.kinds,
                    &self.apply,
                    &self.planned.before,
                    &self.planned.previous,
                );
                let calls = if unchanged {
                    Vec::new()
                } else {
                    admission::services_called(m)
                };
                (i, calls)
            })
            .collect();
        if pending.is_empty() {
            return Ok(());
        }
        let (p, target) = (self.progress, self.target);
        let deadline = crate::cli::deadline(self.opts.timeout);
        let began = std::time::Instant::now();
        let mut delay = Duration::from_millis(200);
        let mut ready: BTreeSet<ServiceRef> = BTreeSet::new();
        loop {
            // the Services not known ready yet, asked once each
            let asked: BTreeSet<ServiceRef> = pending
                .iter()
                .flat_map(|(_, calls)| calls.iter().cloned())
                .filter(|s| !ready.contains(s))
                .collect();
            for s in asked {
                if admission::has_ready_endpoint(self.cluster, &s).await? {
                    if began.elapsed() > Duration::from_secs(1) {
                        p.info(
                            &format!("apply {target}"),
                            format!(
                                "Service {}/{} has a ready endpoint after {:.1}s",
                                s.0,
                                s.1,
                                began.elapsed().as_secs_f64()
                            ),
                        );
                    }
                    ready.insert(s);
                }
            }
            let (now, later): (Vec<_>, Vec<_>) = pending
                .into_iter()
                .partition(|(_, calls)| calls.iter().all(|s| ready.contains(s)));
            pending = later;
            if !now.is_empty() {
                let indices: BTreeSet<usize> = now.into_iter().map(|(i, _)| i).collect();
                self.apply_selected(
                    |i, _| indices.contains(&i),
                    "webhook configurations and APIServices",
                )
                .await?;
            }
            if pending.is_empty() {
                break;
            }
            let waiting: Vec<String> = pending
                .iter()
                .map(|(i, calls)| {
                    let m = &self.planned.manifests[*i];
                    let services: Vec<String> = calls
                        .iter()
                        .filter(|s| !ready.contains(*s))
                        .map(|(ns, n)| format!("Service {ns}/{n}"))
                        .collect();
                    format!(
                        "{} {} (component {}) calls {}",
                        m.kind(),
                        m.name(),
                        m.component,
                        services.join(", ")
                    )
                })
                .collect();
            if tokio::time::Instant::now() >= deadline {
                return Err(Error::timeout(format!(
                    "{}: {} admission object(s) not applied: what they call has no ready endpoint after {}s:\n  {}\nthe workloads behind those Services never became ready; `kubectl nautes status {}` shows why, and a longer --timeout waits longer",
                    self.cluster.label,
                    waiting.len(),
                    began.elapsed().as_secs(),
                    waiting.join("\n  "),
                    self.set.cluster_name
                )));
            }
            p.status(format!(
                "apply {target}: waiting for a ready endpoint: {}",
                waiting.join("; ")
            ));
            tokio::time::sleep_until(deadline.min(tokio::time::Instant::now() + delay)).await;
            delay = (delay * 2).min(Duration::from_secs(2));
        }
        let services = self.watched(|p| p == Phase::Admission);
        if self.opts.wait && !services.is_empty() {
            wait::wait_ready(
                self.cluster,
                &self.planned.kinds,
                services,
                self.opts.timeout,
                &|_| {},
            )
            .await?;
        }
        Ok(())
    }

    /// One summary line per component.
    pub fn report_components(&self) {
        let mut per: BTreeMap<&str, Vec<Applied>> = BTreeMap::new();
        for a in &self.applied {
            per.entry(a.component.as_str()).or_default().push(a.clone());
        }
        for (component, applied) in per {
            self.progress.done(
                &format!("component {component}"),
                format!("{} objects ({})", applied.len(), summary(&applied)),
            );
        }
    }

    /// Deletes the members that left the plan; a Namespace that existed
    /// before the plugin adopted it is released instead (it stays, without
    /// the plugin's labels and field ownership).
    pub async fn prune(&mut self) -> Result<()> {
        tally(&self.applied, &mut self.changes, &mut self.changed);
        if self.planned.to_prune.is_empty() {
            return Ok(());
        }
        let (release, delete): (BTreeMap<_, _>, BTreeMap<_, _>) = self
            .planned
            .to_prune
            .clone()
            .into_iter()
            .partition(|(k, _)| k.0 == kinds::NAMESPACE && self.planned.was_adopted(k));
        let (p, target) = (self.progress, self.target);
        p.info(
            &format!("prune {target}"),
            format!(
                "{} object(s) no longer in the plan",
                self.planned.to_prune.len()
            ),
        );
        delete::delete_members(self.cluster, &delete, self.opts.timeout, false, &|k| {
            p.change(
                &format!("prune {target}"),
                format!("{} deleted", delete::describe_key(k)),
            );
        })
        .await?;
        for (k, m) in &release {
            self.set.release(self.cluster, k, &m.kind).await?;
            p.change(
                &format!("prune {target}"),
                format!(
                    "{} released (it existed before the plugin adopted it)",
                    delete::describe_key(k)
                ),
            );
        }
        for (k, m) in &self.planned.to_prune {
            self.changes.pruned += 1;
            self.changed.push(ChangedObject {
                action: if release.contains_key(k) {
                    "release".into()
                } else {
                    "prune".into()
                },
                object: delete::describe_key(k),
                component: m.component.clone(),
            });
        }
        Ok(())
    }

    /// The parent now records exactly this plan, and what each member was
    /// left at.
    pub async fn save_inventory(&mut self) -> Result<()> {
        let mut now = self.planned.new.clone();
        now.applied = self
            .applied
            .iter()
            .map(|a| {
                let key = (a.group_kind.clone(), a.namespace.clone(), a.name.clone());
                let record = AppliedRecord {
                    rv: a.resource_version.clone(),
                    hash: a.hash.clone(),
                };
                (inventory::applied_key(&key), record)
            })
            .collect();
        if now != self.union {
            self.set.save(self.cluster, &now, false).await?;
        }
        Ok(())
    }

    pub fn report(self) -> StageReport {
        self.progress.status(String::new());
        self.progress
            .done(&format!("apply {}", self.target), self.changes.to_string());
        StageReport {
            target: self.target.into(),
            cluster: self.cluster.label.clone(),
            changes: self.changes,
            changed: self.changed,
        }
    }

    /// Applies one phase's objects and reports a one-line summary. Returns
    /// how many requests were sent (untouched, unchanged objects are not).
    async fn apply_phase(&mut self, phase: Phase, what: &str) -> Result<usize> {
        let chosen: BTreeSet<usize> = self
            .planned
            .manifests
            .iter()
            .enumerate()
            .filter(|(_, m)| self.phase_of(m) == phase)
            .map(|(i, _)| i)
            .collect();
        self.apply_selected(|i, _| chosen.contains(&i), what).await
    }

    /// Applies the objects of the plan `select` picks (by index and object)
    /// and reports a one-line summary, as [`Self::apply_phase`].
    async fn apply_selected(
        &mut self,
        select: impl Fn(usize, &Manifest) -> bool,
        what: &str,
    ) -> Result<usize> {
        let bootstrapped = self.bootstrapped;
        let objs: Vec<&Manifest> = self
            .planned
            .manifests
            .iter()
            .enumerate()
            .filter(|(i, m)| select(*i, m))
            .map(|(_, m)| m)
            .filter(|m| !(bootstrapped && m.component == CREDENTIAL_COMPONENT))
            .collect();
        if objs.is_empty() {
            return Ok(0);
        }
        let (p, target, total) = (self.progress, self.target, self.planned.manifests.len());
        let count = &self.count;
        let on_done = |a: &Applied| {
            let n = count.fetch_add(1, Ordering::Relaxed) + 1;
            p.status(format!(
                "apply {target}: {n}/{total} objects applied ({})",
                a.component
            ));
            // one line per object only with -v; the default shows summaries
            p.debug(
                &format!("apply {target}"),
                format!(
                    "{} {} ({n}/{total})",
                    describe(
                        kinds::kind_of(&a.group_kind),
                        a.namespace.as_deref(),
                        &a.name
                    ),
                    outcome_word(a.outcome)
                ),
            );
        };
        let applied = apply::apply_many(
            self.cluster,
            &self.planned.kinds,
            &objs,
            &self.apply,
            &self.planned.before,
            &self.planned.previous,
            &on_done,
        )
        .await?;
        p.change(
            &format!("apply {target}"),
            format!("{what}: {}", summary(&applied)),
        );
        let sent = applied.iter().filter(|a| a.sent).count();
        self.applied.extend(applied);
        Ok(sent)
    }

    /// The objects of some phases whose readiness is judged (CRDs are
    /// waited for on their own).
    fn watched(&self, phases: impl Fn(Phase) -> bool) -> Vec<Watched> {
        let kinds = &self.planned.kinds;
        self.planned
            .manifests
            .iter()
            .filter(|m| phases(self.phase_of(m)))
            .filter_map(|m| {
                let gk = group_kind(m.api_version(), m.kind());
                if !wait::judged(&gk) || gk == kinds::CRD {
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
    }
}

fn outcome_word(o: Outcome) -> &'static str {
    match o {
        Outcome::Created => "created",
        Outcome::Configured => "configured",
        Outcome::Unchanged => "unchanged",
    }
}

/// "3 created, 1 configured, 40 unchanged".
fn summary(applied: &[Applied]) -> String {
    let mut parts = Vec::new();
    for o in [Outcome::Created, Outcome::Configured, Outcome::Unchanged] {
        let n = applied.iter().filter(|a| a.outcome == o).count();
        if n > 0 {
            parts.push(format!("{n} {}", outcome_word(o)));
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

/// Counts what was applied into the changes and the list of changed objects.
pub fn tally(applied: &[Applied], changes: &mut Changes, changed: &mut Vec<ChangedObject>) {
    for a in applied {
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
            object: describe(
                kinds::kind_of(&a.group_kind),
                a.namespace.as_deref(),
                &a.name,
            ),
            component: a.component.clone(),
        });
    }
}

/// Sets the ownerReference of objects annotated OWNER_NAMESPACE to their
/// Namespace, where it exists (reads only).
pub async fn set_namespace_owners(cluster: &Cluster, manifests: &mut [Manifest]) -> Result<()> {
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
