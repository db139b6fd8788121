//! Helm hooks: objects a chart annotates `helm.sh/hook`. They are not applied
//! with the release's other objects; they get the meaning Helm gives them:
//!
//! ```text
//! register, a release first installed:  pre-install hooks ─▶ the release ─▶ post-install hooks
//! register, a release that changed:     pre-upgrade hooks ─▶ the release ─▶ post-upgrade hooks
//! register, nothing of the release changed: no hook runs
//! destroy:  pre-delete hooks ─▶ everything but Namespaces ─▶ post-delete hooks ─▶ Namespaces
//! test hooks: never applied
//! ```
//!
//! Within a phase, the hooks of each component (in the stage's component
//! order) run one at a time, by `helm.sh/hook-weight` (an integer, default
//! 0), then by kind (ServiceAccounts and RBAC before the Pods and Jobs that
//! use them), then by name. A Job is waited for until it completes, a Pod
//! until it succeeds; any other object counts once applied. Every wait is
//! bounded by --timeout. `helm.sh/hook-delete-policy`: `before-hook-creation`
//! (the default) deletes the object left by an earlier run before it is
//! created again, `hook-succeeded` deletes it once it succeeded,
//! `hook-failed` once it failed.
//!
//! Which release (component) changed is told by a hash of everything it
//! rendered, hooks included; the hashes, and the pre-delete and post-delete
//! hooks destroy will need (destroy does not render), are kept under
//! `hooks.json` in the ApplySet parent, written by a field manager of their
//! own so the inventory's writes leave them alone.

use std::collections::BTreeMap;
use std::time::Duration;

use kube::api::{DeleteParams, Patch, PatchParams, PropagationPolicy};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{Planned, StageReport};
use crate::error::{Error, Result};
use crate::inventory::{ApplySet, Member, PARENT_NAMESPACE};
use crate::k8s::apply::{self, Applied, ApplyOptions, ObjectKey, Outcome};
use crate::k8s::wait::{self, Readiness};
use crate::k8s::{Cluster, Kind, Kinds, delete, describe, retry};
use crate::kinds::{self, group_kind};
use crate::output::Progress;
use crate::plan::{Component, Stage};
use crate::render::Manifest;

pub const HOOK: &str = "helm.sh/hook";
pub const WEIGHT: &str = "helm.sh/hook-weight";
pub const DELETE_POLICY: &str = "helm.sh/hook-delete-policy";
/// The ApplySet parent's data key holding the [`Record`].
pub const RECORD_KEY: &str = "hooks.json";

/// When a hook runs (the values of `helm.sh/hook`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Event {
    PreInstall,
    PostInstall,
    PreUpgrade,
    PostUpgrade,
    PreDelete,
    PostDelete,
    /// Accepted and never run: the plugin does not roll back.
    PreRollback,
    PostRollback,
    /// Never applied.
    Test,
}

/// The names `helm.sh/hook` may hold; `test-success` is the older name of
/// `test`.
const EVENTS: &[(&str, Event)] = &[
    ("pre-install", Event::PreInstall),
    ("post-install", Event::PostInstall),
    ("pre-upgrade", Event::PreUpgrade),
    ("post-upgrade", Event::PostUpgrade),
    ("pre-delete", Event::PreDelete),
    ("post-delete", Event::PostDelete),
    ("pre-rollback", Event::PreRollback),
    ("post-rollback", Event::PostRollback),
    ("test", Event::Test),
    ("test-success", Event::Test),
];

impl Event {
    pub fn name(self) -> &'static str {
        EVENTS
            .iter()
            .find(|(_, e)| *e == self)
            .map_or("?", |(n, _)| n)
    }
}

/// The values of `helm.sh/hook-delete-policy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Policy {
    BeforeHookCreation,
    HookSucceeded,
    HookFailed,
}

const POLICIES: &[(&str, Policy)] = &[
    ("before-hook-creation", Policy::BeforeHookCreation),
    ("hook-succeeded", Policy::HookSucceeded),
    ("hook-failed", Policy::HookFailed),
];

/// What a hook's annotations say.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HookSpec {
    pub events: Vec<Event>,
    pub weight: i32,
    /// Never empty: without the annotation, `before-hook-creation`.
    pub policies: Vec<Policy>,
}

/// One hook object of a stage, ready to apply.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hook {
    #[serde(flatten)]
    pub spec: HookSpec,
    pub component: String,
    /// The component's namespace.
    pub namespace: String,
    pub object: Value,
}

impl Hook {
    fn manifest(&self) -> Manifest {
        Manifest {
            component: self.component.clone(),
            namespace: self.namespace.clone(),
            object: self.object.clone(),
        }
    }

    fn describe(&self) -> String {
        let m = self.manifest();
        describe(m.kind(), m.object_namespace(), m.name())
    }

    fn has(&self, p: Policy) -> bool {
        self.spec.policies.contains(&p)
    }
}

/// How an object of a chart is named in an error: "chart traefik 41.3.0
/// (component traefik), Job traefik/x".
fn where_(chart: &str, o: &Value, default_ns: &str) -> String {
    let kind = o["kind"].as_str().unwrap_or("?");
    let name = o["metadata"]["name"].as_str().unwrap_or("?");
    let ns = o["metadata"]["namespace"].as_str().unwrap_or(default_ns);
    format!("{chart}, {kind} {ns}/{name}")
}

/// Reads the hook annotations of one object. None: not a hook. An unknown
/// hook or delete policy, a weight that is not an integer, or an annotation
/// that is not a string is an error naming the chart, the object and the
/// annotation.
pub fn parse(
    o: &Value,
    chart: &str,
    default_ns: &str,
) -> std::result::Result<Option<HookSpec>, String> {
    let ann = &o["metadata"]["annotations"];
    let Some(raw) = ann.get(HOOK) else {
        return Ok(None);
    };
    let at = |a: &str| format!("{}: annotation {a}", where_(chart, o, default_ns));
    let text = |a: &str, v: &Value| -> std::result::Result<String, String> {
        v.as_str()
            .map(str::to_string)
            .ok_or_else(|| format!("{}: {v} is not a string", at(a)))
    };
    let words = |s: &str| -> Vec<String> {
        s.split(',')
            .map(|w| w.trim().to_ascii_lowercase())
            .filter(|w| !w.is_empty())
            .collect()
    };
    let raw = text(HOOK, raw)?;
    let mut events = Vec::new();
    for w in words(&raw) {
        match EVENTS.iter().find(|(n, _)| *n == w) {
            Some((_, e)) if !events.contains(e) => events.push(*e),
            Some(_) => {}
            None => {
                return Err(format!(
                    "{}: unknown hook {w:?} (known: {})",
                    at(HOOK),
                    EVENTS
                        .iter()
                        .map(|(n, _)| *n)
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
        }
    }
    if events.is_empty() {
        return Err(format!("{}: {raw:?} names no hook", at(HOOK)));
    }
    let weight = match ann.get(WEIGHT) {
        None => 0,
        Some(v) => {
            let s = text(WEIGHT, v)?;
            s.trim()
                .parse::<i32>()
                .map_err(|_| format!("{}: {s:?} is not an integer", at(WEIGHT)))?
        }
    };
    let mut policies = Vec::new();
    if let Some(v) = ann.get(DELETE_POLICY) {
        let s = text(DELETE_POLICY, v)?;
        for w in words(&s) {
            match POLICIES.iter().find(|(n, _)| *n == w) {
                Some((_, p)) if !policies.contains(p) => policies.push(*p),
                Some(_) => {}
                None => {
                    return Err(format!(
                        "{}: unknown delete policy {w:?} (known: {})",
                        at(DELETE_POLICY),
                        POLICIES
                            .iter()
                            .map(|(n, _)| *n)
                            .collect::<Vec<_>>()
                            .join(", ")
                    ));
                }
            }
        }
    }
    if policies.is_empty() {
        policies.push(Policy::BeforeHookCreation);
    }
    Ok(Some(HookSpec {
        events,
        weight,
        policies,
    }))
}

/// "chart traefik 41.3.0 (component traefik)".
pub fn chart_of(c: &Component) -> String {
    format!(
        "chart {} {} (component {})",
        c.chart.name, c.chart.version, c.name
    )
}

/// Checks the hook annotations of a component's rendered objects and drops
/// its test hooks (a hook that is also a test hook is a test hook, as with
/// `helm template --skip-tests`). Every bad annotation is named in one error.
pub fn without_tests(c: &Component, objects: Vec<Value>) -> Result<Vec<Value>> {
    let chart = chart_of(c);
    let mut problems = Vec::new();
    let mut out = Vec::with_capacity(objects.len());
    for o in objects {
        match parse(&o, &chart, &c.namespace) {
            Ok(Some(h)) if h.events.contains(&Event::Test) => {}
            Ok(_) => out.push(o),
            Err(e) => problems.push(e),
        }
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(Error::invalid(format!(
            "{} bad Helm hook annotation(s), nothing was applied:\n  {}",
            problems.len(),
            problems.join("\n  ")
        )))
    }
}

/// `helm template` itself leaves out an object whose `helm.sh/hook` names a
/// hook it does not know, saying so only in a log line on stderr
/// ("skipping unknown hook(s)") that does not name the object. That line
/// becomes an error naming the chart, the annotation and its value.
pub fn unknown_hooks_in_helm_log(c: &Component, stderr: &str) -> Result<()> {
    let lines: Vec<&str> = stderr
        .lines()
        .map(str::trim)
        .filter(|l| l.to_ascii_lowercase().contains("skipping unknown hook"))
        .collect();
    if lines.is_empty() {
        return Ok(());
    }
    Err(Error::invalid(format!(
        "{}: annotation {HOOK} of an object names a hook that is not one of {}; helm template leaves such an object out and names only the annotation's value (look for it in the chart's templates), nothing was applied:\n  {}",
        chart_of(c),
        EVENTS
            .iter()
            .map(|(n, _)| *n)
            .collect::<Vec<_>>()
            .join(", "),
        lines.join("\n  ")
    )))
}

/// The order of kinds among hooks of equal weight: what others use first.
fn kind_rank(kind: &str) -> u8 {
    match kind {
        "Namespace" => 0,
        "ServiceAccount" => 1,
        "Secret" => 2,
        "ConfigMap" => 3,
        "PersistentVolumeClaim" => 4,
        "ClusterRole" => 5,
        "ClusterRoleBinding" => 6,
        "Role" => 7,
        "RoleBinding" => 8,
        "Service" => 9,
        "Pod" => 11,
        "Job" => 12,
        _ => 10,
    }
}

/// Sorts hooks as they run: component (stage order), weight, kind, name.
fn sort(hooks: &mut [Hook], components: &[String]) {
    let pos = |c: &str| components.iter().position(|x| x == c).unwrap_or(usize::MAX);
    hooks.sort_by(|a, b| {
        let (ma, mb) = (a.manifest(), b.manifest());
        (
            pos(&a.component),
            a.spec.weight,
            kind_rank(ma.kind()),
            ma.name(),
        )
            .cmp(&(
                pos(&b.component),
                b.spec.weight,
                kind_rank(mb.kind()),
                mb.name(),
            ))
    });
}

/// What the parent keeps for the hooks (data key [`RECORD_KEY`]).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// Per component: the hash of everything its release rendered.
    #[serde(default)]
    pub releases: BTreeMap<String, String>,
    /// The pre-delete and post-delete hooks, for destroy.
    #[serde(default)]
    pub delete: Vec<Hook>,
}

fn parent_api(cluster: &Cluster) -> kube::Api<k8s_openapi::api::core::v1::ConfigMap> {
    kube::Api::namespaced(cluster.client.clone(), PARENT_NAMESPACE)
}

impl Record {
    /// Reads the record from the set's parent; empty when there is none.
    pub async fn load(cluster: &Cluster, set: &ApplySet, progress: &Progress) -> Result<Record> {
        let api = parent_api(cluster);
        let cm = retry(|| api.get_opt(&set.parent))
            .await
            .map_err(|e| cluster.err(e))?;
        let Some(text) = cm
            .and_then(|c| c.data)
            .and_then(|mut d| d.remove(RECORD_KEY))
        else {
            return Ok(Record::default());
        };
        match serde_json::from_str(&text) {
            Ok(r) => Ok(r),
            Err(e) => {
                progress.warn(
                    "hooks",
                    format!(
                        "{}: {RECORD_KEY} of ApplySet parent {PARENT_NAMESPACE}/{} cannot be read ({e}): every release counts as changed, and destroy runs no delete hook",
                        cluster.label, set.parent
                    ),
                );
                Ok(Record::default())
            }
        }
    }

    /// Writes the record into the set's parent, which exists (the inventory
    /// is recorded before the first write).
    async fn save(&self, cluster: &Cluster, set: &ApplySet) -> Result<()> {
        let text = serde_json::to_string(self)
            .map_err(|e| Error::internal(format!("hooks record: {e}")))?;
        let obj = json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": set.parent, "namespace": PARENT_NAMESPACE},
            "data": {RECORD_KEY: text},
        });
        let api = parent_api(cluster);
        let pp = PatchParams::apply(&format!("{}-hooks", set.manager)).force();
        let patch = Patch::Apply(&obj);
        retry(|| api.patch(&set.parent, &pp, &patch))
            .await
            .map_err(|e| {
                cluster.err(e).context(format!(
                    "ApplySet parent ConfigMap {PARENT_NAMESPACE}/{}",
                    set.parent
                ))
            })?;
        Ok(())
    }
}

/// Whether a component's release is installed for the first time, changed,
/// or the same as last time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Release {
    Install,
    Upgrade,
    Unchanged,
}

/// The hooks of one stage, taken out of its plan, and what they did.
pub struct StageHooks {
    hooks: Vec<Hook>,
    components: Vec<String>,
    releases: BTreeMap<String, String>,
    old: Record,
    target: String,
    applied: Vec<Applied>,
    ran: usize,
}

/// Takes the hooks out of a planned stage (they are applied only by
/// [`StageHooks::run_pre`] and [`StageHooks::run_post`]) and hashes each
/// component's release. Reads the record of the last run; writes nothing.
pub async fn take(
    cluster: &Cluster,
    set: &ApplySet,
    stage: &Stage,
    planned: &mut Planned,
    progress: &Progress,
) -> Result<StageHooks> {
    use sha2::{Digest, Sha256};
    let mut components: Vec<String> = stage.components.iter().map(|c| c.name.clone()).collect();
    let mut hashers: BTreeMap<String, Sha256> = BTreeMap::new();
    let mut hooks = Vec::new();
    let mut problems = Vec::new();
    let manifests = std::mem::take(&mut planned.manifests);
    for m in manifests {
        let h = hashers.entry(m.component.clone()).or_default();
        h.update(serde_json::to_vec(&m.object).unwrap_or_default());
        h.update(b"\n");
        if !components.contains(&m.component) {
            components.push(m.component.clone());
        }
        let chart = stage
            .components
            .iter()
            .find(|c| c.name == m.component)
            .map_or_else(|| format!("manifests of {}", m.component), chart_of);
        match parse(&m.object, &chart, &m.namespace) {
            Ok(None) => planned.manifests.push(m),
            Ok(Some(spec)) => {
                let deleting = spec
                    .events
                    .iter()
                    .any(|e| matches!(e, Event::PreDelete | Event::PostDelete));
                if deleting && m.kind() == "Secret" {
                    problems.push(format!(
                        "{}: a pre-delete or post-delete hook of kind Secret is not supported (destroy would have to keep its data in the inventory ConfigMap)",
                        where_(&chart, &m.object, &m.namespace)
                    ));
                }
                hooks.push(Hook {
                    spec,
                    component: m.component,
                    namespace: m.namespace,
                    object: m.object,
                });
            }
            Err(e) => problems.push(e),
        }
    }
    if !problems.is_empty() {
        return Err(Error::invalid(format!(
            "{}: {} problem(s) with Helm hooks, nothing was applied:\n  {}",
            cluster.label,
            problems.len(),
            problems.join("\n  ")
        )));
    }
    sort(&mut hooks, &components);
    let releases = hashers
        .into_iter()
        .map(|(c, h)| {
            let d = h.finalize();
            (c, d.iter().take(16).map(|b| format!("{b:02x}")).collect())
        })
        .collect();
    let old = if hooks.is_empty() && planned.old == Default::default() {
        // a first register with no hook: nothing to read
        Record::default()
    } else {
        Record::load(cluster, set, progress).await?
    };
    Ok(StageHooks {
        hooks,
        components,
        releases,
        old,
        target: stage.target.as_str().to_string(),
        applied: Vec::new(),
        ran: 0,
    })
}

/// What a hook run needs of the cluster.
pub struct HookRun<'a> {
    pub cluster: &'a Cluster,
    pub kinds: &'a Kinds,
    pub apply: &'a ApplyOptions,
    pub timeout: Duration,
    pub progress: &'a Progress,
}

impl StageHooks {
    fn release(&self, component: &str) -> Release {
        match (
            self.old.releases.get(component),
            self.releases.get(component),
        ) {
            (Some(a), Some(b)) if a == b => Release::Unchanged,
            (Some(_), _) => Release::Upgrade,
            (None, _) => Release::Install,
        }
    }

    /// pre-install or pre-upgrade hooks, before the release's other objects.
    pub async fn run_pre(&mut self, ctx: &HookRun<'_>) -> Result<()> {
        self.run_phase(ctx, Event::PreInstall, Event::PreUpgrade)
            .await
    }

    /// post-install or post-upgrade hooks, after the release's other objects.
    pub async fn run_post(&mut self, ctx: &HookRun<'_>) -> Result<()> {
        self.run_phase(ctx, Event::PostInstall, Event::PostUpgrade)
            .await
    }

    async fn run_phase(&mut self, ctx: &HookRun<'_>, install: Event, upgrade: Event) -> Result<()> {
        let step = format!("hooks {}", self.target);
        for component in self.components.clone() {
            let event = match self.release(&component) {
                Release::Install => install,
                Release::Upgrade => upgrade,
                Release::Unchanged => {
                    let n = self
                        .hooks
                        .iter()
                        .filter(|h| h.component == component)
                        .filter(|h| {
                            h.spec.events.contains(&install) || h.spec.events.contains(&upgrade)
                        })
                        .count();
                    if n > 0 {
                        ctx.progress.info(
                            &step,
                            format!(
                                "{n} {}/{} hook(s) of component {component} not run: nothing of its release changed",
                                install.name(),
                                upgrade.name()
                            ),
                        );
                    }
                    continue;
                }
            };
            let hooks: Vec<Hook> = self
                .hooks
                .iter()
                .filter(|h| h.component == component && h.spec.events.contains(&event))
                .cloned()
                .collect();
            for h in hooks {
                let applied = run_one(ctx, &step, &h, event, false).await?;
                self.ran += 1;
                self.applied.push(applied);
            }
        }
        Ok(())
    }

    /// Records the releases' hashes and the delete hooks in the parent,
    /// when they differ from what it holds.
    pub async fn save(&self, cluster: &Cluster, set: &ApplySet, progress: &Progress) -> Result<()> {
        let now = Record {
            releases: self.releases.clone(),
            delete: self
                .hooks
                .iter()
                .filter(|h| {
                    h.spec
                        .events
                        .iter()
                        .any(|e| matches!(e, Event::PreDelete | Event::PostDelete))
                })
                .cloned()
                .collect(),
        };
        if now == self.old {
            return Ok(());
        }
        let changed: Vec<&str> = now
            .releases
            .iter()
            .filter(|(c, h)| self.old.releases.get(*c) != Some(*h))
            .map(|(c, _)| c.as_str())
            .collect();
        progress.debug(
            &format!("hooks {}", self.target),
            format!(
                "record of the releases written (changed: {}; delete hooks: {})",
                if changed.is_empty() {
                    "none".to_string()
                } else {
                    changed.join(", ")
                },
                now.delete.len()
            ),
        );
        now.save(cluster, set).await
    }

    /// Adds what the hooks applied to a stage's report.
    pub fn report(&self, report: &mut StageReport, progress: &Progress) {
        super::run::tally(&self.applied, &mut report.changes, &mut report.changed);
        if self.ran > 0 {
            progress.done(
                &format!("hooks {}", self.target),
                format!("{} hook object(s) run", self.ran),
            );
        }
    }

    /// How many hooks the stage has in all.
    pub fn len(&self) -> usize {
        self.hooks.len()
    }

    pub fn is_empty(&self) -> bool {
        self.hooks.is_empty()
    }
}

/// Runs one hook: deletes what an earlier run left (before-hook-creation),
/// applies it, waits for a Job or a Pod to finish, and deletes it as its
/// policy says. `always_delete`: delete it once finished whatever its
/// policy (destroy leaves nothing behind).
async fn run_one(
    ctx: &HookRun<'_>,
    step: &str,
    h: &Hook,
    event: Event,
    always_delete: bool,
) -> Result<Applied> {
    let m = h.manifest();
    let what = format!(
        "{} {} (weight {}, component {})",
        event.name(),
        h.describe(),
        h.spec.weight,
        h.component
    );
    let kind = ctx
        .kinds
        .resolve(m.api_version(), m.kind())
        .ok_or_else(|| {
            Error::invalid(format!(
                "{}: hook {what}: kind {} of {} is not served by the cluster",
                ctx.cluster.label,
                m.kind(),
                m.api_version()
            ))
        })?;
    let ns = if kind.namespaced {
        m.object_namespace().map(str::to_string)
    } else {
        None
    };
    let api = crate::k8s::api(&ctx.cluster.client, &kind, ns.as_deref());
    let existing = retry(|| api.get_metadata_opt(m.name()))
        .await
        .map_err(|e| ctx.cluster.err(e).context(h.describe()))?;
    let mut before = existing.and_then(|o| o.metadata.resource_version);
    if before.is_some() {
        if h.has(Policy::BeforeHookCreation) {
            remove(ctx, &kind, ns.as_deref(), m.name()).await?;
            before = None;
        } else if matches!(m.kind(), "Job" | "Pod") {
            return Err(Error::refused(format!(
                "{}: hook {what} exists from an earlier run and its delete policy does not include before-hook-creation, so it cannot run again; delete it (kubectl delete {} {}{}) and rerun",
                ctx.cluster.label,
                m.kind().to_ascii_lowercase(),
                m.name(),
                ns.as_deref()
                    .map(|n| format!(" -n {n}"))
                    .unwrap_or_default()
            )));
        }
    }
    let applied = apply::apply_one(ctx.cluster, &kind, &m, ctx.apply, before.as_deref()).await?;
    ctx.progress
        .change(step, format!("{what} {}", outcome_word(applied.outcome)));
    let outcome = finish(ctx, &kind, ns.as_deref(), &m, &what).await;
    let delete = always_delete
        || match &outcome {
            Ok(()) => h.has(Policy::HookSucceeded),
            Err(_) => h.has(Policy::HookFailed),
        };
    if delete {
        remove(ctx, &kind, ns.as_deref(), m.name()).await?;
        ctx.progress
            .debug(step, format!("{what} deleted (delete policy)"));
    }
    outcome?;
    if matches!(m.kind(), "Job" | "Pod") {
        ctx.progress.change(step, format!("{what} succeeded"));
    }
    Ok(applied)
}

fn outcome_word(o: Outcome) -> &'static str {
    match o {
        Outcome::Created => "created",
        Outcome::Configured => "configured",
        Outcome::Unchanged => "unchanged",
    }
}

/// Waits until a Job completes or a Pod succeeds (any other kind is done
/// once applied). A failed Job or Pod is an error.
async fn finish(
    ctx: &HookRun<'_>,
    kind: &Kind,
    ns: Option<&str>,
    m: &Manifest,
    what: &str,
) -> Result<()> {
    if !matches!(m.kind(), "Job" | "Pod") {
        return Ok(());
    }
    let api = crate::k8s::api(&ctx.cluster.client, kind, ns);
    let deadline = crate::cli::deadline(ctx.timeout);
    let gk = group_kind(m.api_version(), m.kind());
    let mut delay = Duration::from_millis(100);
    loop {
        let got = retry(|| api.get_opt(m.name()))
            .await
            .map_err(|e| ctx.cluster.err(e))?;
        let value = got.map(|o| serde_json::to_value(o).unwrap_or(Value::Null));
        let state = if m.kind() == "Pod" {
            pod_state(value.as_ref())
        } else {
            wait::readiness_of(&gk, value.as_ref())
        };
        match state {
            Readiness::Ready => return Ok(()),
            Readiness::Failed(why) => {
                return Err(Error::timeout(format!(
                    "{}: hook {what} failed: {why}",
                    ctx.cluster.label
                )));
            }
            Readiness::NotReady(why) => {
                if tokio::time::Instant::now() >= deadline {
                    let said = last_event(ctx, ns, m.kind(), m.name())
                        .await
                        .map(|e| format!("; its last event: {e}"))
                        .unwrap_or_default();
                    return Err(Error::timeout(format!(
                        "{}: hook {what} did not finish within {}s: {why}{said}",
                        ctx.cluster.label,
                        ctx.timeout.as_secs()
                    )));
                }
            }
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(1));
    }
}

/// The message of the latest Event about an object (why a Job makes no
/// Pod: "Error creating: ... serviceaccount ... not found"), if any can be
/// read.
async fn last_event(ctx: &HookRun<'_>, ns: Option<&str>, kind: &str, name: &str) -> Option<String> {
    let ns = ns?;
    let api: kube::Api<k8s_openapi::api::core::v1::Event> =
        kube::Api::namespaced(ctx.cluster.client.clone(), ns);
    let lp = kube::api::ListParams::default().fields(&format!(
        "involvedObject.name={name},involvedObject.kind={kind}"
    ));
    let list = api.list(&lp).await.ok()?;
    list.items
        .into_iter()
        .max_by_key(|e| {
            e.last_timestamp
                .as_ref()
                .map(|t| t.0)
                .or(e.event_time.as_ref().map(|t| t.0))
        })
        .and_then(|e| e.message)
}

/// A hook Pod: done once Succeeded.
fn pod_state(o: Option<&Value>) -> Readiness {
    let Some(o) = o else {
        return Readiness::Failed("the Pod was deleted before it finished".into());
    };
    match o["status"]["phase"].as_str() {
        Some("Succeeded") => Readiness::Ready,
        Some("Failed") => Readiness::Failed(format!(
            "Pod failed: {}",
            o["status"]["message"]
                .as_str()
                .or(o["status"]["reason"].as_str())
                .unwrap_or("unknown reason")
        )),
        p => Readiness::NotReady(format!("Pod is {}", p.unwrap_or("Pending"))),
    }
}

/// Deletes an object and waits until it is gone (bounded by --timeout).
async fn remove(ctx: &HookRun<'_>, kind: &Kind, ns: Option<&str>, name: &str) -> Result<()> {
    let api = crate::k8s::api(&ctx.cluster.client, kind, ns);
    let dp = DeleteParams {
        propagation_policy: Some(PropagationPolicy::Background),
        ..Default::default()
    };
    let what = describe(&kind.resource.kind, ns, name);
    match retry(|| api.delete(name, &dp)).await {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 404 => return Ok(()),
        Err(e) => return Err(ctx.cluster.err(e).context(&what)),
    }
    let deadline = crate::cli::deadline(ctx.timeout);
    let mut delay = Duration::from_millis(100);
    loop {
        let got = retry(|| api.get_metadata_opt(name))
            .await
            .map_err(|e| ctx.cluster.err(e).context(&what))?;
        if got.is_none() {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(Error::timeout(format!(
                "{}: hook {what} still not gone after {}s (finalizers pending?)",
                ctx.cluster.label,
                ctx.timeout.as_secs()
            )));
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(1));
    }
}

/// Destroy's part: deletes `members` (see [`delete::delete_members`]) between
/// the pre-delete and the post-delete hooks the last register recorded.
/// With post-delete hooks, Namespaces go only after them (the hooks run in
/// them). Every hook object destroy creates is deleted once it finished,
/// whatever its policy. With `force`, a failing hook is a warning.
#[allow(clippy::too_many_arguments)]
pub async fn delete_with_hooks(
    cluster: &Cluster,
    set: &ApplySet,
    members: &BTreeMap<ObjectKey, Member>,
    timeout: Duration,
    dry_run: bool,
    force: bool,
    progress: &Progress,
    on_deleted: &(dyn Fn(&ObjectKey) + Sync),
) -> Result<()> {
    let record = Record::load(cluster, set, progress).await?;
    let of = |e: Event| -> Vec<Hook> {
        record
            .delete
            .iter()
            .filter(|h| h.spec.events.contains(&e))
            .cloned()
            .collect()
    };
    let (pre, post) = (of(Event::PreDelete), of(Event::PostDelete));
    if dry_run {
        for (e, hooks) in [(Event::PreDelete, &pre), (Event::PostDelete, &post)] {
            if !hooks.is_empty() {
                let names: Vec<String> = hooks.iter().map(Hook::describe).collect();
                progress.info(
                    &format!("destroy {}", cluster.label),
                    format!(
                        "dry run: would run {} hook(s): {}",
                        e.name(),
                        names.join(", ")
                    ),
                );
            }
        }
        return delete::delete_members(cluster, members, timeout, dry_run, on_deleted).await;
    }
    if pre.is_empty() && post.is_empty() {
        return delete::delete_members(cluster, members, timeout, dry_run, on_deleted).await;
    }
    let kinds = Kinds::discover(cluster).await?;
    let apply = ApplyOptions {
        field_manager: set.manager.clone(),
        ..ApplyOptions::default()
    };
    let ctx = HookRun {
        cluster,
        kinds: &kinds,
        apply: &apply,
        timeout,
        progress,
    };
    let step = format!("destroy {}", cluster.label);
    run_delete_hooks(&ctx, &step, &pre, Event::PreDelete, force).await?;
    if post.is_empty() {
        return delete::delete_members(cluster, members, timeout, dry_run, on_deleted).await;
    }
    let (namespaces, rest): (BTreeMap<_, _>, BTreeMap<_, _>) = members
        .clone()
        .into_iter()
        .partition(|(k, _)| k.0 == kinds::NAMESPACE);
    delete::delete_members(cluster, &rest, timeout, dry_run, on_deleted).await?;
    run_delete_hooks(&ctx, &step, &post, Event::PostDelete, force).await?;
    delete::delete_members(cluster, &namespaces, timeout, dry_run, on_deleted).await
}

async fn run_delete_hooks(
    ctx: &HookRun<'_>,
    step: &str,
    hooks: &[Hook],
    event: Event,
    force: bool,
) -> Result<()> {
    for h in hooks {
        match run_one(ctx, step, h, event, true).await {
            Ok(_) => {}
            Err(e) if force => ctx.progress.warn(step, format!("{e}; --force: going on")),
            Err(e) => {
                return Err(Error::new(
                    e.code,
                    format!(
                        "{e}; nothing more was deleted (rerun destroy once the hook can succeed, or pass --force to go on without it)"
                    ),
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(kind: &str, name: &str, ann: Value) -> Value {
        json!({"apiVersion": "v1", "kind": kind, "metadata": {"name": name, "annotations": ann}})
    }

    #[test]
    fn annotations_are_read_as_helm_reads_them() {
        let o = obj(
            "Job",
            "j",
            json!({HOOK: "pre-install, Pre-Upgrade", WEIGHT: " -5 ", DELETE_POLICY: "hook-succeeded,before-hook-creation"}),
        );
        let h = parse(&o, "chart c 1.0.0 (component c)", "ns")
            .expect("valid")
            .expect("a hook");
        assert_eq!(h.events, [Event::PreInstall, Event::PreUpgrade]);
        assert_eq!(h.weight, -5);
        assert_eq!(
            h.policies,
            [Policy::HookSucceeded, Policy::BeforeHookCreation]
        );
        // defaults: weight 0, before-hook-creation
        let h = parse(&obj("Job", "j", json!({HOOK: "post-delete"})), "c", "ns")
            .expect("valid")
            .expect("a hook");
        assert_eq!(
            (h.weight, h.policies),
            (0, vec![Policy::BeforeHookCreation])
        );
        assert_eq!(
            parse(&obj("Job", "j", json!({"a": "b"})), "c", "ns").expect("valid"),
            None
        );
        assert_eq!(
            parse(
                &json!({"kind": "Job", "metadata": {"name": "j"}}),
                "c",
                "ns"
            )
            .expect("valid"),
            None
        );
    }

    #[test]
    fn bad_annotations_name_the_chart_the_object_and_the_annotation() {
        let chart = "chart traefik 41.3.0 (component traefik)";
        let e = parse(
            &obj("Job", "j", json!({HOOK: "pre-instal"})),
            chart,
            "traefik",
        )
        .expect_err("unknown hook");
        assert!(
            e.starts_with(
                "chart traefik 41.3.0 (component traefik), Job traefik/j: annotation helm.sh/hook: unknown hook \"pre-instal\""
            ),
            "{e}"
        );
        let e = parse(
            &obj("Job", "j", json!({HOOK: "pre-install", WEIGHT: "five"})),
            chart,
            "traefik",
        )
        .expect_err("bad weight");
        assert!(
            e.contains("Job traefik/j: annotation helm.sh/hook-weight: \"five\" is not an integer"),
            "{e}"
        );
        let e = parse(
            &obj("Job", "j", json!({HOOK: "pre-install", WEIGHT: "1.5"})),
            chart,
            "traefik",
        )
        .expect_err("not an integer");
        assert!(e.contains("not an integer"), "{e}");
        let e = parse(
            &obj(
                "Job",
                "j",
                json!({HOOK: "pre-install", DELETE_POLICY: "hook-succeded"}),
            ),
            chart,
            "traefik",
        )
        .expect_err("bad policy");
        assert!(
            e.contains(
                "annotation helm.sh/hook-delete-policy: unknown delete policy \"hook-succeded\""
            ),
            "{e}"
        );
        let e =
            parse(&obj("Job", "j", json!({HOOK: 5})), chart, "traefik").expect_err("not a string");
        assert!(
            e.contains("annotation helm.sh/hook: 5 is not a string"),
            "{e}"
        );
        let e = parse(&obj("Job", "j", json!({HOOK: " , "})), chart, "traefik").expect_err("empty");
        assert!(e.contains("names no hook"), "{e}");
    }

    fn component() -> Component {
        Component {
            name: "traefik".into(),
            category: "gateway".into(),
            chart: crate::plan::ChartRef {
                repository: "https://example.invalid".into(),
                name: "traefik".into(),
                version: "41.3.0".into(),
            },
            release: "traefik".into(),
            namespace: "traefik".into(),
            values: "traefik.yaml.j2".into(),
            additions: BTreeMap::new(),
        }
    }

    #[test]
    fn test_hooks_are_dropped_and_every_bad_annotation_is_named_at_once() {
        let c = component();
        let objects = vec![
            obj("ConfigMap", "plain", json!({})),
            obj("Pod", "t", json!({HOOK: "test"})),
            obj("Pod", "t-old", json!({HOOK: "test-success"})),
            obj("Pod", "t-both", json!({HOOK: "post-install,test"})),
            obj("Job", "pre", json!({HOOK: "pre-install"})),
        ];
        let kept = without_tests(&c, objects).expect("valid");
        let names: Vec<&str> = kept
            .iter()
            .map(|o| o["metadata"]["name"].as_str().unwrap_or(""))
            .collect();
        assert_eq!(names, ["plain", "pre"]);
        let bad = vec![
            obj("Job", "a", json!({HOOK: "sometime"})),
            obj("Job", "b", json!({HOOK: "pre-install", WEIGHT: "x"})),
        ];
        let e = without_tests(&c, bad).expect_err("bad");
        assert!(
            e.message.contains("2 bad Helm hook annotation(s)")
                && e.message.contains("Job traefik/a")
                && e.message.contains("Job traefik/b"),
            "{}",
            e.message
        );
        assert_eq!(e.code, crate::error::ExitCode::Invalid);
    }

    #[test]
    fn an_object_helm_left_out_for_an_unknown_hook_is_an_error() {
        let c = component();
        assert!(unknown_hooks_in_helm_log(&c, "").is_ok());
        assert!(unknown_hooks_in_helm_log(&c, "walk.go:75: found symbolic link\n").is_ok());
        let e = unknown_hooks_in_helm_log(
            &c,
            "level=INFO msg=\"skipping unknown hooks\" hookTypes=post-install,post-instal\n",
        )
        .expect_err("an error");
        assert_eq!(e.code, crate::error::ExitCode::Invalid);
        assert!(
            e.message.starts_with(
                "chart traefik 41.3.0 (component traefik): annotation helm.sh/hook of an object names a hook that is not one of pre-install,"
            ) && e.message.contains("hookTypes=post-install,post-instal"),
            "{}",
            e.message
        );
    }

    #[test]
    fn hooks_run_by_component_weight_kind_and_name() {
        let hook = |comp: &str, kind: &str, name: &str, weight: i32| Hook {
            spec: HookSpec {
                events: vec![Event::PreInstall],
                weight,
                policies: vec![Policy::BeforeHookCreation],
            },
            component: comp.into(),
            namespace: "ns".into(),
            object: json!({"apiVersion": "v1", "kind": kind, "metadata": {"name": name}}),
        };
        let mut hooks = vec![
            hook("b", "Job", "first-of-b", -100),
            hook("a", "Job", "z", 5),
            hook("a", "Job", "a", 5),
            hook("a", "ServiceAccount", "sa", 5),
            hook("a", "Job", "early", -1),
        ];
        sort(&mut hooks, &["a".to_string(), "b".to_string()]);
        let order: Vec<String> = hooks.iter().map(Hook::describe).collect();
        assert_eq!(
            order,
            [
                "Job early",
                "ServiceAccount sa",
                "Job a",
                "Job z",
                "Job first-of-b"
            ]
        );
    }

    #[test]
    fn a_release_is_installed_upgraded_or_left_alone_by_its_hash() {
        let hooks = StageHooks {
            hooks: Vec::new(),
            components: vec!["a".into(), "b".into(), "c".into()],
            releases: BTreeMap::from([
                ("a".to_string(), "h1".to_string()),
                ("b".to_string(), "h2".to_string()),
                ("c".to_string(), "h3".to_string()),
            ]),
            old: Record {
                releases: BTreeMap::from([
                    ("a".to_string(), "h1".to_string()),
                    ("b".to_string(), "old".to_string()),
                ]),
                delete: Vec::new(),
            },
            target: "host".into(),
            applied: Vec::new(),
            ran: 0,
        };
        assert_eq!(hooks.release("a"), Release::Unchanged);
        assert_eq!(hooks.release("b"), Release::Upgrade);
        assert_eq!(hooks.release("c"), Release::Install);
    }

    #[test]
    fn a_hook_pod_is_done_when_it_succeeded() {
        assert_eq!(
            pod_state(Some(&json!({"status": {"phase": "Succeeded"}}))),
            Readiness::Ready
        );
        assert!(matches!(
            pod_state(Some(&json!({"status": {"phase": "Running"}}))),
            Readiness::NotReady(_)
        ));
        assert!(matches!(
            pod_state(Some(&json!({"status": {"phase": "Failed"}}))),
            Readiness::Failed(_)
        ));
        assert!(matches!(pod_state(None), Readiness::Failed(_)));
    }

    #[test]
    fn the_record_reads_back_what_it_wrote() {
        let r = Record {
            releases: BTreeMap::from([("traefik".to_string(), "abc".to_string())]),
            delete: vec![Hook {
                spec: HookSpec {
                    events: vec![Event::PreDelete],
                    weight: 3,
                    policies: vec![Policy::HookSucceeded],
                },
                component: "traefik".into(),
                namespace: "traefik".into(),
                object: json!({"kind": "Job"}),
            }],
        };
        let text = serde_json::to_string(&r).expect("json");
        assert!(text.contains("\"pre-delete\"") && text.contains("\"hook-succeeded\""));
        let back: Record = serde_json::from_str(&text).expect("parses");
        assert_eq!(back, r);
        let empty: Record = serde_json::from_str("{}").expect("parses");
        assert_eq!(empty, Record::default());
    }
}
