//! Installing one stage of a plan into one cluster, as named steps over one
//! value that grows as it goes:
//!
//! ```text
//! render ─▶ Rendered ─plan─▶ Planned (the inventory difference)
//!   install: ─▶ take the Helm hooks out (hooks.rs) ─▶ Run: record the
//!            inventory ─▶ bootstrap the credential ─▶ apply CRDs ─▶ apply
//!            Namespaces ─▶ pre-install/pre-upgrade hooks ─▶ cluster-scoped,
//!            namespaced ─▶ wait for the workloads ─▶ apply admission
//!            objects ─▶ post-install/post-upgrade hooks ─▶ prune ─▶ save the
//!            inventory and the hooks' record ─▶ StageReport
//!   preview: ─▶ server dry run of the same objects ─▶ StageReport
//! ```
//!
//! `register` installs; `diff` and `register --dry-run=server` preview: they
//! run the same steps up to the first write and stop there.

pub mod hooks;
pub mod needs;
mod planned;
mod preview;
mod run;

use std::time::Duration;

use serde::Serialize;

pub use planned::{NAMED, Ownership, Planned, Rendered, listing, plan, render};

use crate::error::Result;
use crate::inventory::ApplySet;
use crate::k8s::Cluster;
use crate::k8s::apply::ApplyOptions;
use crate::output::Progress;
use crate::plan::Stage;
use crate::render::RenderOptions;
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

/// One object that changed (or would), for the result.
#[derive(Debug, Clone, Serialize)]
pub struct ChangedObject {
    pub action: String,
    pub object: String,
    pub component: String,
}

/// What a stage changed (or would change) in its cluster.
#[derive(Debug, Clone, Serialize)]
pub struct StageReport {
    pub target: String,
    pub cluster: String,
    pub changes: Changes,
    pub changed: Vec<ChangedObject>,
}

/// How a stage is installed.
pub struct StageOptions<'a> {
    pub render: &'a RenderOptions,
    pub apply: ApplyOptions,
    pub wait: bool,
    pub timeout: Duration,
    /// Called once the credential's objects (component `credential`) are
    /// applied, before anything else: register mints and saves the token
    /// there, so a run stopped at any later point can still be destroyed.
    pub on_credential: Option<&'a CredentialHook>,
    /// What the plan may take over or delete.
    pub ownership: Ownership,
}

/// See [`StageOptions::on_credential`].
pub type CredentialHook = dyn Fn(Cluster) -> futures::future::BoxFuture<'static, Result<()>> + Sync;

/// Renders and plans a stage: every step before the first write.
pub async fn prepare(
    cluster: &Cluster,
    spec: &ClusterSpec,
    set: &ApplySet,
    stage: &Stage,
    opts: &StageOptions<'_>,
    progress: &Progress,
) -> Result<Planned> {
    let rendered = render(cluster, spec, stage, opts.render, progress).await?;
    plan(cluster, set, rendered, opts.ownership, progress).await
}

/// Installs a prepared stage: every writing step.
pub async fn install(
    cluster: &Cluster,
    set: &ApplySet,
    stage: &Stage,
    opts: &StageOptions<'_>,
    progress: &Progress,
    planned: Planned,
) -> Result<StageReport> {
    let mut planned = planned;
    let mut hooks = hooks::take(cluster, set, stage, &mut planned, progress).await?;
    let mut run = run::Run::new(cluster, set, stage, opts, progress, planned);
    run.record_inventory().await?;
    run.bootstrap_credential().await?;
    run.apply_crds().await?;
    run.apply_namespaces().await?;
    hooks.run_pre(&hook_run(&run, opts, progress)).await?;
    run.apply_objects().await?;
    run.apply_admission().await?;
    run.wait_workloads().await?;
    hooks.run_post(&hook_run(&run, opts, progress)).await?;
    run.report_components();
    run.prune().await?;
    run.save_inventory().await?;
    hooks.save(cluster, set, progress).await?;
    let mut report = run.report();
    hooks.report(&mut report, progress);
    Ok(report)
}

fn hook_run<'a>(
    run: &'a run::Run<'_>,
    opts: &StageOptions<'_>,
    progress: &'a Progress,
) -> hooks::HookRun<'a> {
    let (kinds, apply) = run.for_hooks();
    hooks::HookRun {
        cluster: run.cluster(),
        kinds,
        apply,
        timeout: opts.timeout,
        progress,
    }
}

/// What installing a stage would change: the same steps up to the first
/// write, then a server dry run of every object that can be dry-run.
pub async fn preview(
    cluster: &Cluster,
    spec: &ClusterSpec,
    set: &ApplySet,
    stage: &Stage,
    opts: &StageOptions<'_>,
    progress: &Progress,
) -> Result<StageReport> {
    let mut planned = prepare(cluster, spec, set, stage, opts, progress).await?;
    // hooks are run, never dry-run
    let hooks = hooks::take(cluster, set, stage, &mut planned, progress).await?;
    if !hooks.is_empty() {
        progress.info(
            &format!("hooks {}", stage.target.as_str()),
            format!(
                "{} Helm hook object(s) left out of the preview: hooks run only when a release is installed, changed or destroyed",
                hooks.len()
            ),
        );
    }
    preview::dry_run(cluster, set, stage, opts, planned).await
}
