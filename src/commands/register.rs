//! `kubectl nautes register -f FILE`: validate, preflight, install, wait,
//! register. Also `diff`, which runs the same pipeline up to the point of
//! writing and reports what would change.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

use super::{Ctx, load_spec};
use crate::cli::{DiffArgs, DryRun, RegisterArgs};
use crate::clusters::{self, kubeconfig_ca};
use crate::credential;
use crate::error::{Error, ExitCode, Result};
use crate::k8s::Cluster;
use crate::k8s::apply::ApplyOptions;
use crate::k8s::{permissions, storage};
use crate::output::{OutputFormat, print_objects, print_table, print_value};
use crate::pipeline::{self, Changes, Ownership, StageOptions, StageReport};
use crate::plan::{self, Catalog, Target};
use crate::registry::{self, Record, Registry, State};
use crate::render::{self, RenderOptions};
use crate::spec::{ClusterSpec, ClusterType, Usage};

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RegisterResult {
    pub name: String,
    pub kind: String,
    pub state: String,
    pub dry_run: bool,
    pub changes: Changes,
    pub stages: Vec<StageReport>,
}

/// The clusters a register of this spec talks to, once reached.
pub struct Clusters {
    pub registry: Registry,
    /// Per target, the cluster it is installed into (None when it can only
    /// be reached later: the inside of a vcluster).
    pub targets: BTreeMap<Target, Cluster>,
    /// The runtime kubeconfig's CA, to give Argo CD.
    pub ca_data: Option<String>,
}

/// Reaches the management and runtime clusters and checks everything that
/// can be checked before writing; every problem is reported at once.
pub async fn preflight(ctx: &Ctx, spec: &ClusterSpec) -> Result<Clusters> {
    let p = &ctx.progress;
    let registry = ctx.registry().await?;
    let mut problems: Vec<Error> = Vec::new();

    // management cluster
    match registry.cluster.version().await {
        Ok(v) => p.done(
            "preflight",
            format!(
                "management cluster {} reachable, Kubernetes {v}",
                registry.cluster.server
            ),
        ),
        Err(e) => return Err(e),
    }
    let namespace_missing = match registry.identity().await {
        Ok(id) => id.is_none(),
        Err(e) => return Err(e),
    };
    if let Err(e) = permissions::check_needs(
        &registry.cluster,
        &permissions::management_register(&registry.namespace, namespace_missing),
    )
    .await
    {
        problems.push(e);
    }
    match registry.get(&spec.name).await {
        Ok(Some(r)) => {
            if r.spec.cluster_type != spec.cluster_type || r.spec.usage != spec.usage {
                problems.push(Error::refused(format!(
                    "cluster {} is registered as a {}; destroy it before registering it as a {}",
                    spec.name,
                    r.kind,
                    registry::kind_of(spec)
                )));
            } else {
                p.info(
                    "preflight",
                    format!(
                        "cluster {} is registered ({}): converging",
                        spec.name, r.state
                    ),
                );
            }
        }
        Ok(None) => {}
        Err(e) => problems.push(e),
    }
    if let Err(e) = registry.check_argocd_secret(&spec.name).await {
        problems.push(e);
    }

    let mut targets = BTreeMap::new();
    let mut ca_data = None;
    match spec.cluster_type {
        ClusterType::Physical => {
            let kubeconfig = spec
                .kubeconfig
                .as_deref()
                .ok_or_else(|| Error::invalid("kubeconfig: required for a physical cluster"))?;
            ca_data = kubeconfig_ca(kubeconfig);
            let label = format!("runtime cluster {}", spec.name);
            match Cluster::from_kubeconfig_text(&label, kubeconfig, ctx.connect_options()).await {
                Ok(c) => match c.version().await {
                    Ok(v) => {
                        p.done(
                            "preflight",
                            format!("{label} {} reachable, Kubernetes {v}", c.server),
                        );
                        if spec.usage == Usage::Host {
                            match host_namespace_taken(&registry, spec).await {
                                Ok(taken) => problems.extend(taken),
                                Err(e) => problems.push(e),
                            }
                        }
                        let t = if spec.usage == Usage::Host {
                            Target::Host
                        } else {
                            Target::PhysicalWorker
                        };
                        targets.insert(t, c);
                    }
                    Err(e) => problems.push(e),
                },
                Err(e) => problems.push(e),
            }
        }
        ClusterType::Virtual => {
            let host = spec.host_cluster.clone().unwrap_or_default();
            match registry.get(&host).await {
                Ok(Some(h)) if h.spec.usage == Usage::Host && h.state == State::Registered => {
                    // a virtual worker's name is its namespace in the host
                    let catalog = Catalog::builtin()?;
                    for (ns, component, field) in plan::host_namespaces(&h.spec, &catalog) {
                        if ns == spec.name {
                            problems.push(Error::invalid(format!(
                                "name: {:?} is the namespace of {component} in host cluster {host} ({field} of the host's spec), and a virtual worker's name is its namespace in the host; valid: a name that is not a namespace of the host's components",
                                spec.name
                            )));
                        }
                    }
                    match clusters::host(&registry, &host, ctx.connect_options()).await {
                        Ok(c) => match c.version().await {
                            Ok(v) => {
                                p.done("preflight", format!("host cluster {host} {} reachable, Kubernetes {v}", c.server));
                                targets.insert(Target::VirtualHost, c);
                            }
                            Err(e) => problems.push(e),
                        },
                        Err(e) => problems.push(e),
                    }
                }
                Ok(Some(h)) if h.spec.usage != Usage::Host => problems.push(Error::refused(format!(
                    "host_cluster: cluster {host} is registered as a {}, not a host",
                    h.kind
                ))),
                Ok(Some(h)) => problems.push(Error::refused(format!(
                    "host_cluster: host cluster {host} is {}, not Registered; register it first",
                    h.state
                ))),
                Ok(None) => problems.push(Error::refused(format!(
                    "host_cluster: host cluster {host} is not registered; register it first (kubectl nautes register -f <host spec>)"
                ))),
                Err(e) => problems.push(e),
            }
        }
    }
    if problems.is_empty() {
        return Ok(Clusters {
            registry,
            targets,
            ca_data,
        });
    }
    // the most specific exit code wins: unreachable, forbidden, refused
    let code = [
        ExitCode::Unreachable,
        ExitCode::Forbidden,
        ExitCode::Refused,
        ExitCode::Invalid,
    ]
    .into_iter()
    .find(|c| problems.iter().any(|e| e.code == *c))
    .unwrap_or(problems[0].code);
    let msgs: Vec<String> = problems.iter().map(|e| e.message.clone()).collect();
    Err(Error::new(
        code,
        format!(
            "preflight failed, nothing was changed:\n  {}",
            msgs.join("\n  ").replace('\n', "\n  ")
        ),
    ))
}

/// A host's component namespaces that a virtual worker registered on it
/// already takes as its namespace in the host: one problem each, naming the
/// field.
async fn host_namespace_taken(registry: &Registry, spec: &ClusterSpec) -> Result<Vec<Error>> {
    let virtuals = registry.virtuals_of(&spec.name).await?;
    let catalog = Catalog::builtin()?;
    Ok(plan::host_namespaces(spec, &catalog)
        .into_iter()
        .filter(|(ns, _, _)| virtuals.contains(ns))
        .map(|(ns, component, field)| {
            Error::invalid(format!(
                "{field}: {ns:?} (the namespace of {component}) is the namespace of virtual worker {ns} in this host; valid: a namespace that no virtual worker on this host is named"
            ))
        })
        .collect())
}

fn render_options(charts: &crate::cli::ChartArgs) -> Result<RenderOptions> {
    render::options(charts)
}

pub async fn run(ctx: &Ctx, args: &RegisterArgs) -> Result<()> {
    let spec = load_spec(&args.input)?;
    if args.dry_run == DryRun::Client {
        // stops after render: no cluster is contacted
        let catalog = Catalog::builtin()?;
        let plan = plan::plan(&spec, &catalog)?;
        let render_opts = render_options(&args.charts)?;
        ctx.progress.info("validate", valid_line(&spec));
        let rendered = render::render_plan(&spec, &plan, &render_opts, &BTreeMap::new()).await?;
        let objects: Vec<serde_json::Value> = rendered
            .iter()
            .flat_map(|(_, ms)| ms.iter().map(|m| render::redacted(&m.object)))
            .collect();
        return print_objects(&objects, args.output.unwrap_or(OutputFormat::Yaml));
    }
    let result = register_spec(ctx, &spec, args).await?;
    match args.output {
        Some(f @ (OutputFormat::Yaml | OutputFormat::Json)) => print_value(&result, f)?,
        Some(OutputFormat::Name) => println!("cluster/{}", result.name),
        _ => {
            let verb = if result.dry_run {
                "would be"
            } else if result.changes.changed() {
                "registered"
            } else {
                "unchanged"
            };
            println!("cluster/{} {verb} ({})", result.name, result.changes);
        }
    }
    Ok(())
}

fn valid_line(spec: &ClusterSpec) -> String {
    format!("{} {} is valid", registry::kind_of(spec), spec.name)
}

/// Registers a validated spec (a server dry run with `--dry-run=server`):
/// preflight, the lock, every stage of the plan, the credential and the
/// records. The front ends (command line, HTTP API) call this.
pub async fn register_spec(
    ctx: &Ctx,
    spec: &ClusterSpec,
    args: &RegisterArgs,
) -> Result<RegisterResult> {
    let catalog = Catalog::builtin()?;
    let plan = plan::plan(spec, &catalog)?;
    let render_opts = render_options(&args.charts)?;
    ctx.progress.info("validate", valid_line(spec));
    let clusters = preflight(ctx, spec).await?;
    if args.dry_run == DryRun::Server {
        // a server dry run writes nothing, so it takes no lock
        return preview(ctx, spec, &plan, &render_opts, &clusters, args).await;
    }
    // every stage that can be reached now is rendered before anything is
    // written anywhere, and the permissions the run will use in each of its
    // clusters are checked then
    let rendered = render_reachable(ctx, spec, &plan, &render_opts, &clusters).await?;
    let registry = &clusters.registry;
    registry.ensure_namespace(&registry.namespace).await?;
    let lock = registry.lock(&spec.name, &ctx.locks).await?;
    ctx.progress.info(
        "lock",
        format!("Lease {}/lock-{} held", registry.namespace, spec.name),
    );
    // a virtual worker holds its host too, so the host cannot be destroyed
    // between the checks below and the virtual worker's record
    let host_lock = match &spec.host_cluster {
        Some(host) => match hold_host(ctx, registry, host).await {
            Ok(l) => Some(l),
            Err(e) => {
                lock.release().await;
                return Err(e);
            }
        },
        None => None,
    };
    let result = register_locked(ctx, args, spec, &plan, &render_opts, &clusters, rendered).await;
    if let Err(e) = &result
        && e.code != ExitCode::Interrupted
        && registry.record_failure(&spec.name, "register", e).await
    {
        ctx.progress.info(
            "record",
            format!(
                "the failure is kept in record {}/cluster-{} until a run succeeds",
                registry.namespace, spec.name
            ),
        );
    }
    if let Some(l) = host_lock {
        l.release().await;
    }
    lock.release().await;
    result
}

/// Takes the lock of a virtual worker's host and checks, under it, that the
/// host is still registered.
async fn hold_host(ctx: &Ctx, registry: &Registry, host: &str) -> Result<registry::Lock> {
    let lock = registry.lock(host, &ctx.locks).await?;
    match registry.get(host).await {
        Ok(Some(h)) if h.usage_is_host() && h.state == State::Registered => Ok(lock),
        other => {
            lock.release().await;
            other?;
            Err(Error::refused(format!(
                "host_cluster: host cluster {host} is no longer registered (it was destroyed meanwhile); register it first"
            )))
        }
    }
}

/// `register --dry-run=server`: what register would change, as diff finds it.
async fn preview(
    ctx: &Ctx,
    spec: &ClusterSpec,
    plan: &plan::Plan,
    render_opts: &RenderOptions,
    clusters: &Clusters,
    args: &RegisterArgs,
) -> Result<RegisterResult> {
    let opts = StageOptions {
        render: render_opts,
        apply: ApplyOptions {
            force_conflicts: args.force_conflicts,
            dry_run_server: true,
            concurrency: args.concurrency,
            ..Default::default()
        },
        wait: false,
        timeout: args.timeout,
        on_credential: None,
        ownership: Ownership {
            adopt: args.adopt,
            force: args.force,
        },
    };
    let stages = preview_stages(ctx, spec, plan, clusters, &opts).await?;
    let mut changes = Changes::default();
    for r in &stages {
        changes.add(&r.changes);
    }
    Ok(RegisterResult {
        name: spec.name.clone(),
        kind: registry::kind_of(spec),
        state: "DryRun".into(),
        dry_run: true,
        changes,
        stages,
    })
}

/// Previews every stage of a plan (diff and `register --dry-run=server`).
/// A virtual cluster that does not exist yet is skipped with a warning: all
/// its components would be created.
async fn preview_stages(
    ctx: &Ctx,
    spec: &ClusterSpec,
    plan: &plan::Plan,
    clusters: &Clusters,
    opts: &StageOptions<'_>,
) -> Result<Vec<StageReport>> {
    let set = clusters.registry.applyset(&spec.name).await?;
    let mut reports = Vec::new();
    for st in &plan.stages {
        let cluster = match st.target {
            Target::VirtualWorker => {
                let host = clusters
                    .targets
                    .get(&Target::VirtualHost)
                    .ok_or_else(|| Error::internal("host not reached"))?;
                let found = clusters::virtual_cluster(
                    host,
                    spec,
                    Duration::from_secs(1),
                    ctx.connect_options(),
                    &ctx.progress,
                )
                .await;
                match found {
                    Ok((c, _)) => c,
                    Err(_) => {
                        ctx.progress.warn("diff", "the virtual cluster does not exist yet: all its components would be created");
                        continue;
                    }
                }
            }
            t => clusters
                .targets
                .get(&t)
                .cloned()
                .ok_or_else(|| Error::internal("cluster not reached"))?,
        };
        reports.push(pipeline::preview(&cluster, spec, &set, st, opts, &ctx.progress).await?);
    }
    Ok(reports)
}

/// Renders every stage whose cluster is reached (not the inside of a
/// vcluster, which exists only later) and checks, in each cluster, every
/// permission applying, waiting and minting the credential will use there;
/// reads only. One per stage of the plan, None for the vcluster's inside.
async fn render_reachable(
    ctx: &Ctx,
    spec: &ClusterSpec,
    plan: &plan::Plan,
    render_opts: &RenderOptions,
    clusters: &Clusters,
) -> Result<Vec<Option<pipeline::Rendered>>> {
    let p = &ctx.progress;
    let mut out = Vec::new();
    let mut problems = Vec::new();
    for st in &plan.stages {
        if st.target == Target::VirtualWorker {
            out.push(None);
            continue;
        }
        let cluster = target_cluster(clusters, st.target)?;
        let rendered = pipeline::render(&cluster, spec, st, render_opts, p).await?;
        let needs = pipeline::needs::of_rendered(&rendered, st.target != Target::VirtualHost);
        match permissions::check_needs(&cluster, &needs).await {
            Ok(()) => {
                p.done(
                    "preflight",
                    format!(
                        "{}: the {} permission(s) the plan uses are granted",
                        cluster.label,
                        needs.len()
                    ),
                );
                let claims = storage::claims(&rendered.manifests);
                match storage::check(&cluster, &claims).await {
                    Ok(()) if claims.is_empty() => {}
                    Ok(()) => p.done(
                        "preflight",
                        format!(
                            "{}: the StorageClasses of the plan's {} volume claim(s) are there",
                            cluster.label,
                            claims.len()
                        ),
                    ),
                    Err(e) => problems.push(e),
                }
            }
            Err(e) => problems.push(e),
        }
        out.push(Some(rendered));
    }
    match problems.len() {
        0 => Ok(out),
        _ => {
            let code = problems[0].code;
            let msgs: Vec<String> = problems.into_iter().map(|e| e.message).collect();
            Err(Error::new(code, msgs.join("\n")))
        }
    }
}

async fn register_locked(
    ctx: &Ctx,
    args: &RegisterArgs,
    spec: &ClusterSpec,
    plan: &plan::Plan,
    render_opts: &RenderOptions,
    clusters: &Clusters,
    rendered: Vec<Option<pipeline::Rendered>>,
) -> Result<RegisterResult> {
    let p = &ctx.progress;
    let registry = &clusters.registry;
    let existing = registry.get(&spec.name).await?;
    let now = registry::now();
    let mut record = Record {
        name: spec.name.clone(),
        kind: registry::kind_of(spec),
        state: State::Registering,
        spec: spec.clone(),
        registered_at: existing
            .as_ref()
            .map(|r| r.registered_at.clone())
            .unwrap_or_else(|| now.clone()),
        updated_at: now,
        plugin_version: env!("CARGO_PKG_VERSION").to_string(),
        components: plan
            .stages
            .iter()
            .flat_map(|s| {
                s.components
                    .iter()
                    .map(|c| format!("{} {}@{}", c.name, c.chart.name, c.chart.version))
            })
            .collect(),
        // cleared by this run's success; kept while it runs
        last_failure: existing.as_ref().and_then(|r| r.last_failure.clone()),
    };
    let mut opts = StageOptions {
        render: render_opts,
        apply: ApplyOptions {
            force_conflicts: args.force_conflicts,
            dry_run_server: false,
            concurrency: args.concurrency,
            ..Default::default()
        },
        wait: args.wait,
        timeout: args.timeout,
        on_credential: None,
        ownership: Ownership {
            adopt: args.adopt,
            force: args.force,
        },
    };
    let set = registry.applyset(&spec.name).await?;
    // every stage that can be reached now is rendered and planned before
    // anything is written: what the plugin may not touch is refused with
    // both clusters unchanged (the inside of a vcluster exists only later)
    let mut planned = Vec::new();
    for (st, r) in plan.stages.iter().zip(rendered) {
        let Some(r) = r else {
            planned.push(None);
            continue;
        };
        let cluster = target_cluster(clusters, st.target)?;
        announce(p, st, &cluster);
        let pl = pipeline::plan(&cluster, &set, r, opts.ownership, p).await?;
        // a prune deletes what left the plan: those permissions too
        let prune = pipeline::needs::of_prune(&pl);
        if !prune.is_empty() {
            permissions::check_needs(&cluster, &prune).await?;
        }
        planned.push(Some(pl));
    }
    // the record exists before anything is written to the runtime cluster,
    // so destroy can always find what a killed register left
    if existing
        .as_ref()
        .is_none_or(|r| r.state != State::Registered)
    {
        registry.save(&record).await?;
    }
    p.info(
        "record",
        format!(
            "registration record {}/cluster-{} in place ({}): a run that stops from here on is found by destroy and by the HTTP API's takeover",
            registry.namespace,
            spec.name,
            existing
                .as_ref()
                .filter(|r| r.state == State::Registered)
                .map_or(State::Registering, |r| r.state)
        ),
    );
    // mint the credential as soon as its objects exist and keep a copy in the
    // management cluster, so destroy can reach this cluster even if this run
    // stops before the end
    let hook_ca: std::sync::Arc<std::sync::Mutex<Option<String>>> =
        std::sync::Arc::new(std::sync::Mutex::new(clusters.ca_data.clone()));
    let hook = {
        let (registry, spec, ca) = (registry.clone(), spec.clone(), hook_ca.clone());
        // what Argo CD gets comes from the spec, never from the user's own
        // --insecure-skip-tls-verify
        let (insecure, timeout) = (spec.insecure_skip_check, args.timeout);
        move |c: Cluster| -> futures::future::BoxFuture<'static, Result<()>> {
            let (registry, spec) = (registry.clone(), spec.clone());
            let ca = ca.lock().ok().and_then(|g| g.clone());
            Box::pin(async move {
                let mut cred = credential::ensure(&c, &spec.name, false, timeout).await?;
                if let Some(ca) = ca {
                    cred.ca_data = Some(ca);
                }
                cred.insecure = insecure;
                registry.save_credential(&spec, &cred).await
            })
        }
    };
    let mut reports = Vec::new();
    let mut runtime: Option<Cluster> = None;
    let mut ca_data = clusters.ca_data.clone();
    for (st, planned) in plan.stages.iter().zip(planned) {
        let (cluster, planned) = match planned {
            Some(pl) => (target_cluster(clusters, st.target)?, pl),
            None => {
                let host = target_cluster(clusters, Target::VirtualHost)?;
                let (c, ca) =
                    clusters::virtual_cluster(&host, spec, args.timeout, ctx.connect_options(), p)
                        .await?;
                if let Ok(mut g) = hook_ca.lock() {
                    g.clone_from(&ca);
                }
                ca_data = ca;
                announce(p, st, &c);
                let pl = pipeline::prepare(&c, spec, &set, st, &opts, p).await?;
                (c, pl)
            }
        };
        opts.on_credential = if st.target == Target::VirtualHost {
            None
        } else {
            Some(&hook)
        };
        reports.push(pipeline::install(&cluster, &set, st, &opts, p, planned).await?);
        opts.on_credential = None;
        if st.target != Target::VirtualHost {
            runtime = Some(cluster);
        }
    }
    let mut changes = Changes::default();
    for r in &reports {
        changes.add(&r.changes);
    }
    let runtime = runtime.ok_or_else(|| Error::internal("no runtime cluster was installed"))?;
    // the credential of the management cluster in the runtime cluster
    let mut cred = credential::ensure(&runtime, &spec.name, false, args.timeout).await?;
    if let Some(ca) = ca_data {
        cred.ca_data = Some(ca);
    }
    cred.insecure = spec.insecure_skip_check;
    credential::verify(
        &cred,
        &format!("runtime cluster {} (with the new credential)", spec.name),
        &spec.api_server,
        ctx.connect_options(),
    )
    .await?;
    p.done(
        "credential",
        format!(
            "ServiceAccount {}/{} token (Secret {}) works against {}",
            credential::CREDENTIAL_NAMESPACE,
            credential::CREDENTIAL_ACCOUNT,
            cred.secret_name,
            spec.api_server
        ),
    );
    registry
        .ensure_namespace(registry::ARGOCD_NAMESPACE)
        .await?;
    registry.save_credential(spec, &cred).await?;
    registry.save_argocd_secret(spec, &cred).await?;
    record.state = State::Registered;
    record.last_failure = None;
    // a register with nothing to change writes nothing: the record keeps
    // its time of the last change
    let same = |r: &Record| {
        r.state == State::Registered
            && r.last_failure.is_none()
            && r.components == record.components
            && r.plugin_version == record.plugin_version
            && serde_json::to_value(&r.spec).ok() == serde_json::to_value(&record.spec).ok()
    };
    let nothing_changed = changes.created + changes.configured + changes.pruned == 0
        && existing.as_ref().is_some_and(same);
    if !nothing_changed {
        registry.save(&record).await?;
    }
    p.done(
        "register",
        format!(
            "Argo CD cluster Secret {}/cluster-{} and record {}/cluster-{} saved",
            registry::ARGOCD_NAMESPACE,
            spec.name,
            registry.namespace,
            spec.name
        ),
    );
    Ok(RegisterResult {
        name: spec.name.clone(),
        kind: record.kind,
        state: record.state.to_string(),
        dry_run: false,
        changes,
        stages: reports,
    })
}

/// `kubectl nautes diff -f FILE`
pub async fn diff(ctx: &Ctx, args: &DiffArgs) -> Result<()> {
    let spec = load_spec(&args.input)?;
    let catalog = Catalog::builtin()?;
    let plan = plan::plan(&spec, &catalog)?;
    let render_opts = render_options(&args.charts)?;
    let clusters = preflight(ctx, &spec).await?;
    let opts = StageOptions {
        render: &render_opts,
        apply: ApplyOptions {
            dry_run_server: true,
            ..Default::default()
        },
        wait: false,
        timeout: Duration::from_secs(60),
        on_credential: None,
        ownership: Ownership {
            adopt: args.adopt,
            force: false,
        },
    };
    let reports = preview_stages(ctx, &spec, &plan, &clusters, &opts).await?;
    match args.output {
        OutputFormat::Json | OutputFormat::Yaml => print_value(&reports, args.output)?,
        _ => {
            let rows: Vec<Vec<String>> = reports
                .iter()
                .flat_map(|r| {
                    r.changed.iter().map(|c| {
                        vec![
                            r.target.clone(),
                            c.action.clone(),
                            c.object.clone(),
                            c.component.clone(),
                        ]
                    })
                })
                .collect();
            if rows.is_empty() {
                println!("no changes");
            } else {
                print_table(&["TARGET", "ACTION", "OBJECT", "COMPONENT"], &rows);
            }
        }
    }
    Ok(())
}

/// The cluster a stage of a physical cluster or a virtual worker's host
/// side goes to, reached in preflight.
fn target_cluster(clusters: &Clusters, target: Target) -> Result<Cluster> {
    clusters
        .targets
        .get(&target)
        .cloned()
        .ok_or_else(|| Error::internal(format!("no cluster was reached for {}", target.as_str())))
}

/// "install physical-worker: 6 component(s) into runtime cluster x: a, b".
fn announce(p: &crate::output::Progress, st: &plan::Stage, cluster: &Cluster) {
    p.info(
        &format!("install {}", st.target.as_str()),
        format!(
            "{} component(s) into {}: {}",
            st.components.len(),
            cluster.label,
            st.components
                .iter()
                .map(|c| c.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    );
}
