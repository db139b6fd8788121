//! `kubectl nautes register -f FILE`: validate, preflight, install, wait,
//! register. Also `diff`, which runs the same pipeline up to the point of
//! writing and reports what would change.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;
use serde_json::json;

use super::stage::{self, Changes, StageOptions, StageReport};
use super::{
    Ctx, RUNTIME_PERMISSIONS, check_permissions, check_permissions_owned, load_spec,
    management_permissions,
};
use crate::cli::{DiffArgs, DryRun, RegisterArgs};
use crate::error::{Error, ExitCode, Result};
use crate::inventory::ApplySet;
use crate::k8s::apply::ApplyOptions;
use crate::k8s::{Cluster, retry};
use crate::output::{OutputFormat, print_table, print_value};
use crate::plan::{self, Catalog, Target};
use crate::registry::{self, Credential, Record, Registry, State};
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
    if let Err(e) = check_permissions_owned(
        &registry.cluster,
        &management_permissions(&registry.namespace),
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
                        if let Err(e) = check_permissions(&c, RUNTIME_PERMISSIONS).await {
                            problems.push(e);
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
                    match host_cluster(&registry, &host, ctx).await {
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

/// The host cluster, reached with the credential Argo CD holds for it.
pub async fn host_cluster(registry: &Registry, host: &str, ctx: &Ctx) -> Result<Cluster> {
    let (server, cred) = registry.credential(host).await?.ok_or_else(|| {
        Error::refused(format!("host cluster {host} has no Argo CD cluster Secret in the management cluster; register it again"))
    })?;
    let kc = registry::token_kubeconfig(host, &server, &cred);
    Cluster::from_kubeconfig_text(&format!("host cluster {host}"), &kc, ctx.connect_options()).await
}

/// The certificate-authority-data of a kubeconfig's current (or first) cluster.
pub fn kubeconfig_ca(kubeconfig: &str) -> Option<String> {
    let kc = kube::config::Kubeconfig::from_yaml(kubeconfig).ok()?;
    let ctx_name = kc.current_context.clone();
    let cluster_name = ctx_name.and_then(|c| {
        kc.contexts
            .iter()
            .find(|x| x.name == c)
            .and_then(|x| x.context.as_ref().map(|c| c.cluster.clone()))
    });
    let cluster = match cluster_name {
        Some(n) => kc.clusters.iter().find(|c| c.name == n),
        None => kc.clusters.first(),
    }?;
    cluster.cluster.as_ref()?.certificate_authority_data.clone()
}

fn render_options(charts: &crate::cli::ChartArgs) -> Result<RenderOptions> {
    Ok(RenderOptions {
        helm: render::find_helm(charts.helm.as_deref())?,
        charts_dir: charts.charts_dir.clone(),
    })
}

pub async fn run(ctx: &Ctx, args: &RegisterArgs) -> Result<()> {
    let spec = load_spec(&args.input)?;
    let catalog = Catalog::builtin()?;
    let plan = plan::plan(&spec, &catalog)?;
    let render_opts = render_options(&args.charts)?;
    let p = &ctx.progress;
    p.info(
        "validate",
        format!("{} {} is valid", registry::kind_of(&spec), spec.name),
    );

    if args.dry_run == DryRun::Client {
        // stops after render: no cluster is contacted
        let rendered = render::render_plan(&spec, &plan, &render_opts, &BTreeMap::new()).await?;
        let objects: Vec<serde_json::Value> = rendered
            .iter()
            .flat_map(|(_, ms)| ms.iter().map(|m| render::redacted(&m.object)))
            .collect();
        return print_rendered(&objects, args.output.unwrap_or(OutputFormat::Yaml));
    }
    let dry = args.dry_run == DryRun::Server;

    let clusters = preflight(ctx, &spec).await?;
    let registry = &clusters.registry;
    if !dry {
        registry.ensure_namespace(&registry.namespace).await?;
    }
    // a server dry run writes nothing, so it takes no lock
    let lock = if dry {
        None
    } else {
        Some(registry.lock(&spec.name).await?)
    };
    let result = register_locked(ctx, args, &spec, &plan, &render_opts, &clusters, dry).await;
    if let Some(lock) = lock {
        lock.release().await;
    }
    let result = result?;
    match args.output {
        Some(f @ (OutputFormat::Yaml | OutputFormat::Json)) => print_value(&result, f)?,
        Some(OutputFormat::Name) => println!("cluster/{}", result.name),
        _ => {
            let verb = if dry {
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

async fn register_locked(
    ctx: &Ctx,
    args: &RegisterArgs,
    spec: &ClusterSpec,
    plan: &plan::Plan,
    render_opts: &RenderOptions,
    clusters: &Clusters,
    dry: bool,
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
    };
    // the record exists before anything is written to the runtime cluster,
    // so destroy can always find what a killed register left
    if !dry
        && existing
            .as_ref()
            .is_none_or(|r| r.state != State::Registered)
    {
        registry.save(&record).await?;
    }
    // mint the credential as soon as its objects exist and keep a copy in the
    // management cluster, so destroy can reach this cluster even if this run
    // stops before the end
    let hook_ca: std::sync::Arc<std::sync::Mutex<Option<String>>> =
        std::sync::Arc::new(std::sync::Mutex::new(clusters.ca_data.clone()));
    let hook = {
        let (registry, spec, ca) = (registry.clone(), spec.clone(), hook_ca.clone());
        let (insecure, timeout) = (ctx.global.insecure_skip_tls_verify, args.timeout);
        move |c: Cluster| -> futures::future::BoxFuture<'static, Result<()>> {
            let (registry, spec) = (registry.clone(), spec.clone());
            let ca = ca.lock().ok().and_then(|g| g.clone());
            Box::pin(async move {
                let mut cred = registry::ensure_credential(&c, &spec.name, false, timeout).await?;
                if let Some(ca) = ca {
                    cred.ca_data = Some(ca);
                }
                cred.insecure = insecure;
                registry.save_credential(&spec, &cred).await
            })
        }
    };
    let mut opts = StageOptions {
        render: render_opts,
        apply: ApplyOptions {
            force_conflicts: args.force_conflicts,
            dry_run_server: dry,
            concurrency: args.concurrency,
        },
        wait: args.wait,
        timeout: args.timeout,
        plan_only: false,
        on_credential: None,
    };
    let set = ApplySet::new(&spec.name);
    let mut reports = Vec::new();
    let mut runtime: Option<Cluster> = None;
    let mut ca_data = clusters.ca_data.clone();
    for st in &plan.stages {
        let cluster = match st.target {
            Target::VirtualWorker => {
                let host = clusters.targets.get(&Target::VirtualHost).ok_or_else(|| {
                    Error::internal("the host cluster of a virtual worker was not reached")
                })?;
                if dry {
                    p.warn("vcluster", "dry run: the virtual cluster does not exist yet, its components are not checked");
                    continue;
                }
                let (c, ca) = virtual_cluster(host, spec, args.timeout, ctx).await?;
                if let Ok(mut g) = hook_ca.lock() {
                    g.clone_from(&ca);
                }
                ca_data = ca;
                c
            }
            t => clusters.targets.get(&t).cloned().ok_or_else(|| {
                Error::internal(format!("no cluster was reached for {}", t.as_str()))
            })?,
        };
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
        opts.on_credential = if st.target == Target::VirtualHost {
            None
        } else {
            Some(&hook)
        };
        reports.push(stage::install(&cluster, spec, &set, st, &opts, p).await?);
        opts.on_credential = None;
        if st.target != Target::VirtualHost {
            runtime = Some(cluster);
        }
    }
    let mut changes = Changes::default();
    for r in &reports {
        changes.add(&r.changes);
    }
    if dry {
        return Ok(RegisterResult {
            name: spec.name.clone(),
            kind: record.kind,
            state: "DryRun".into(),
            dry_run: true,
            changes,
            stages: reports,
        });
    }
    let runtime = runtime.ok_or_else(|| Error::internal("no runtime cluster was installed"))?;
    // the credential of the management cluster in the runtime cluster
    let mut cred = registry::ensure_credential(&runtime, &spec.name, false, args.timeout).await?;
    if let Some(ca) = ca_data {
        cred.ca_data = Some(ca);
    }
    cred.insecure = ctx.global.insecure_skip_tls_verify;
    verify_credential(spec, &cred, ctx).await?;
    p.done(
        "credential",
        format!(
            "ServiceAccount {}/{} token (Secret {}) works against {}",
            registry::CREDENTIAL_NAMESPACE,
            registry::CREDENTIAL_ACCOUNT,
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
    registry.save(&record).await?;
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

/// Checks that a minted credential really reaches the cluster at api_server.
async fn verify_credential(spec: &ClusterSpec, cred: &Credential, ctx: &Ctx) -> Result<()> {
    let kc = registry::token_kubeconfig(&spec.name, &spec.api_server, cred);
    let c = Cluster::from_kubeconfig_text(
        &format!("runtime cluster {} (with the new credential)", spec.name),
        &kc,
        ctx.connect_options(),
    )
    .await?;
    let api: kube::Api<k8s_openapi::api::core::v1::Namespace> = kube::Api::all(c.client.clone());
    let lp = kube::api::ListParams::default().limit(1);
    retry(|| api.list(&lp)).await.map_err(|e| c.err(e))?;
    Ok(())
}

/// Waits for the vcluster's kubeconfig Secret vc-<name> in the host, and
/// returns a client for the virtual cluster at api_server, with its CA.
pub async fn virtual_cluster(
    host: &Cluster,
    spec: &ClusterSpec,
    timeout: Duration,
    ctx: &Ctx,
) -> Result<(Cluster, Option<String>)> {
    let p = &ctx.progress;
    let api: kube::Api<k8s_openapi::api::core::v1::Secret> =
        kube::Api::namespaced(host.client.clone(), &spec.name);
    let name = format!("vc-{}", spec.name);
    p.info(
        "vcluster",
        format!(
            "waiting for the vcluster's kubeconfig Secret {}/{name} in the host",
            spec.name
        ),
    );
    let deadline = tokio::time::Instant::now() + timeout;
    let text = loop {
        let s = retry(|| api.get_opt(&name))
            .await
            .map_err(|e| host.err(e))?;
        if let Some(b) = s
            .and_then(|s| s.data)
            .and_then(|d| d.get("config").cloned())
        {
            break String::from_utf8(b.0).map_err(|_| {
                Error::internal(format!("Secret {}/{name}: config is not UTF-8", spec.name))
            })?;
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(Error::timeout(format!(
                "{}: the vcluster did not write Secret {}/{name} (key config) within {}s; is its StatefulSet running?",
                host.label,
                spec.name,
                timeout.as_secs()
            )));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let mut kc: serde_json::Value = serde_saphyr::from_str(&text).map_err(|_| {
        Error::internal(format!(
            "Secret {}/{name}: config is not a kubeconfig",
            spec.name
        ))
    })?;
    if let Some(clusters) = kc["clusters"].as_array_mut() {
        for c in clusters {
            c["cluster"]["server"] = json!(spec.api_server);
        }
    }
    let kc = kc.to_string();
    let ca = kubeconfig_ca(&kc);
    let c = Cluster::from_kubeconfig_text(
        &format!("virtual cluster {}", spec.name),
        &kc,
        ctx.connect_options(),
    )
    .await?;
    let v = c.version().await?;
    p.done(
        "vcluster",
        format!(
            "virtual cluster {} reachable at {}, Kubernetes {v}",
            spec.name, spec.api_server
        ),
    );
    Ok((c, ca))
}

pub fn print_rendered(objects: &[serde_json::Value], format: OutputFormat) -> Result<()> {
    match format {
        OutputFormat::Json => print_value(
            &json!({"apiVersion": "v1", "kind": "List", "items": objects}),
            OutputFormat::Json,
        ),
        _ => {
            let mut out = String::new();
            for o in objects {
                out.push_str("---\n");
                out.push_str(
                    &serde_saphyr::to_string(o).map_err(|e| Error::internal(e.to_string()))?,
                );
            }
            print!("{out}");
            Ok(())
        }
    }
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
        apply: ApplyOptions::default(),
        wait: false,
        timeout: Duration::from_secs(60),
        plan_only: true,
        on_credential: None,
    };
    let set = ApplySet::new(&spec.name);
    let mut reports = Vec::new();
    for st in &plan.stages {
        let cluster = match st.target {
            Target::VirtualWorker => {
                let host = clusters
                    .targets
                    .get(&Target::VirtualHost)
                    .ok_or_else(|| Error::internal("host not reached"))?;
                match virtual_cluster(host, &spec, Duration::from_secs(1), ctx).await {
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
        reports.push(stage::install(&cluster, &spec, &set, st, &opts, &ctx.progress).await?);
    }
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

/// What `run` does after loading the spec (preflight, namespace, lock,
/// register, release), for a spec value and without printing; used by
/// `serve`. Emits a progress event of step "lock" once the Lease is held.
pub async fn register_spec(
    ctx: &Ctx,
    spec: &ClusterSpec,
    args: &RegisterArgs,
) -> Result<RegisterResult> {
    let catalog = Catalog::builtin()?;
    let plan = plan::plan(spec, &catalog)?;
    let render_opts = render_options(&args.charts)?;
    let clusters = preflight(ctx, spec).await?;
    let registry = &clusters.registry;
    registry.ensure_namespace(&registry.namespace).await?;
    let lock = registry.lock(&spec.name).await?;
    ctx.progress.info(
        "lock",
        format!("Lease {}/lock-{} held", registry.namespace, spec.name),
    );
    let result = register_locked(ctx, args, spec, &plan, &render_opts, &clusters, false).await;
    lock.release().await;
    result
}
