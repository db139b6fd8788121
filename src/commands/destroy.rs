//! `kubectl nautes destroy NAME`: the reverse of register, from any state a
//! register left. Deletes the inventory in reverse order, waits until it is
//! gone, removes the credential, then the management records.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use kube::api::ListParams;
use serde::Serialize;

use super::Ctx;
use super::register::{host_cluster, virtual_cluster};
use crate::cli::{DestroyArgs, DryRun};
use crate::error::{Error, ExitCode, Result};
use crate::inventory::{ApplySet, Member, PART_OF};
use crate::k8s::apply::ObjectKey;
use crate::k8s::{Cluster, Kinds, delete, retry};
use crate::output::{OutputFormat, print_value};
use crate::registry::{self, Record, Registry, State};
use crate::spec::{ClusterType, Usage};

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DestroyResult {
    pub name: String,
    pub dry_run: bool,
    pub deleted: Vec<String>,
}

/// How the plugin reaches a runtime cluster when destroying it.
enum Access {
    /// The credential the management cluster holds (the nautes-manager token).
    Token(Cluster),
    /// Not reachable: the reason.
    Unreachable(Error),
    /// The user's own kubeconfig (from the spec given with -f).
    User(Cluster),
    /// No credential was minted.
    Unknown,
}

pub async fn run(ctx: &Ctx, args: &DestroyArgs) -> Result<()> {
    if !crate::spec::is_dns1123_label(&args.name) {
        return Err(Error::invalid(format!(
            "NAME: {:?} is not a valid cluster name; valid: a DNS-1123 label (lowercase letters, digits and '-', at most 63)",
            args.name
        )));
    }
    let p = &ctx.progress;
    let registry = ctx.registry().await?;
    registry.cluster.version().await?;
    let Some(mut record) = registry.get(&args.name).await? else {
        return Err(Error::new(
            ExitCode::Refused,
            format!(
                "cluster {} is not registered in the management cluster (namespace {})",
                args.name, registry.namespace
            ),
        ));
    };
    let dry = args.dry_run != DryRun::None;
    let spec = record.spec.clone();

    // order rules, checked before any change
    if spec.usage == Usage::Host {
        let virtuals = registry.virtuals_of(&spec.name).await?;
        if !virtuals.is_empty() {
            return Err(Error::refused(format!(
                "host cluster {} is referenced by virtual cluster(s) {}; destroy them first (--force does not override this)",
                spec.name,
                virtuals.join(", ")
            )));
        }
    }
    let apps = registry
        .applications_targeting(&spec.name, &spec.api_server)
        .await?;
    if !apps.is_empty() {
        if args.force {
            p.warn(
                "preflight",
                format!(
                    "--force: {} Argo CD Application(s) still deploy to it: {}",
                    apps.len(),
                    apps.join(", ")
                ),
            );
        } else {
            return Err(Error::refused(format!(
                "cluster {} still receives deployments from {} Argo CD Application(s) in the management cluster: {}; remove them first, or pass --force",
                spec.name,
                apps.len(),
                apps.join(", ")
            )));
        }
    }
    let lock = registry.lock(&spec.name).await?;
    let result = destroy_locked(ctx, args, &registry, &mut record, dry).await;
    lock.release().await;
    let result = result?;
    match args.output {
        Some(f @ (OutputFormat::Yaml | OutputFormat::Json)) => print_value(&result, f)?,
        _ => {
            if dry {
                for d in &result.deleted {
                    println!("{d} (dry run)");
                }
            }
            println!(
                "cluster/{} {}",
                result.name,
                if dry {
                    "would be destroyed"
                } else {
                    "destroyed"
                }
            );
        }
    }
    Ok(())
}

async fn destroy_locked(
    ctx: &Ctx,
    args: &DestroyArgs,
    registry: &Registry,
    record: &mut Record,
    dry: bool,
) -> Result<DestroyResult> {
    let p = &ctx.progress;
    let spec = record.spec.clone();
    let mut deleted = Vec::new();
    // a physical cluster is reached with the credential the management
    // cluster holds, or, when a register stopped before minting one, with the
    // kubeconfig of the spec given with -f
    let physical_access = if spec.cluster_type == ClusterType::Physical {
        let mut access = runtime_access(registry, &spec.name, &spec.api_server, ctx).await;
        if matches!(access, Access::Unknown) {
            if let Some(file) = &args.filename {
                let given = super::load_spec(&crate::cli::SpecInput {
                    filename: file.clone(),
                    name: Some(spec.name.clone()),
                })?;
                let kubeconfig = given.kubeconfig.unwrap_or_default();
                access = match Cluster::from_kubeconfig_text(
                    &format!("runtime cluster {}", spec.name),
                    &kubeconfig,
                    ctx.connect_options(),
                )
                .await
                {
                    Ok(c) => match c.version().await {
                        Ok(_) => Access::User(c),
                        Err(e) => Access::Unreachable(e),
                    },
                    Err(e) => Access::Unreachable(e),
                };
            } else if !args.force {
                return Err(Error::refused(format!(
                    "cluster {} has no credential in the management cluster: a register stopped before minting one. Pass -f <its spec> so destroy can use the spec's kubeconfig, or --force to only forget the registration",
                    spec.name
                )));
            }
        }
        Some(access)
    } else {
        None
    };
    if !dry {
        record.state = State::Destroying;
        record.updated_at = registry::now();
        registry.save(record).await?;
    }
    let set = ApplySet::new(&spec.name);
    match spec.cluster_type {
        ClusterType::Physical => {
            match physical_access.unwrap_or(Access::Unknown) {
                Access::Token(c) => {
                    deleted.extend(remove_set(ctx, &c, &set, args, dry, true).await?);
                }
                Access::User(c) => {
                    deleted.extend(remove_set(ctx, &c, &set, args, dry, false).await?);
                }
                Access::Unreachable(e) if args.force => {
                    p.warn(
                        "destroy",
                        format!(
                            "{e}; --force: forgetting the registration without cleaning the cluster"
                        ),
                    );
                }
                Access::Unreachable(e) => {
                    return Err(Error::new(
                        e.code,
                        format!(
                            "{e}; the cluster was not changed (pass --force to only forget its registration)"
                        ),
                    ));
                }
                Access::Unknown => p.warn(
                    "destroy",
                    "--force: no credential was minted; forgetting the registration without cleaning the cluster",
                ),
            }
        }
        ClusterType::Virtual => {
            let host = spec.host_cluster.clone().unwrap_or_default();
            let host_c = host_cluster(registry, &host, ctx).await?;
            // components inside the virtual cluster, if it still answers
            match runtime_access(registry, &spec.name, &spec.api_server, ctx).await {
                Access::Token(c) => {
                    deleted.extend(remove_set(ctx, &c, &set, args, dry, true).await?)
                }
                Access::User(c) => {
                    deleted.extend(remove_set(ctx, &c, &set, args, dry, false).await?)
                }
                Access::Unreachable(e) => {
                    // try the vcluster's own kubeconfig before giving up on the inside
                    match virtual_cluster(&host_c, &spec, Duration::from_secs(2), ctx).await {
                        Ok((c, _)) => deleted.extend(remove_set(ctx, &c, &set, args, dry, false).await?),
                        Err(_) => p.warn(
                            "destroy",
                            format!("{e}; the virtual cluster's API is unreachable: its components go with the vcluster"),
                        ),
                    }
                }
                Access::Unknown => match virtual_cluster(
                    &host_c,
                    &spec,
                    Duration::from_secs(2),
                    ctx,
                )
                .await
                {
                    Ok((c, _)) => {
                        deleted.extend(remove_set(ctx, &c, &set, args, dry, false).await?)
                    }
                    Err(_) => p.info(
                        "destroy",
                        "the virtual cluster never became reachable: nothing inside it to remove",
                    ),
                },
            }
            // the vcluster, its Service, PVCs and namespace in the host
            deleted.extend(remove_set(ctx, &host_c, &set, args, dry, false).await?);
        }
    }
    if dry {
        return Ok(DestroyResult {
            name: spec.name.clone(),
            dry_run: true,
            deleted,
        });
    }
    registry.delete_argocd_secret(&spec.name).await?;
    registry.delete_credential(&spec.name).await?;
    registry.delete(&spec.name).await?;
    p.done(
        "destroy",
        format!(
            "Argo CD cluster Secret and registration record of {} removed",
            spec.name
        ),
    );
    Ok(DestroyResult {
        name: spec.name.clone(),
        dry_run: false,
        deleted,
    })
}

async fn runtime_access(registry: &Registry, name: &str, api_server: &str, ctx: &Ctx) -> Access {
    let cred = match registry.credential(name).await {
        Ok(Some((_, c))) => c,
        Ok(None) => return Access::Unknown,
        Err(e) => return Access::Unreachable(e),
    };
    let kc = registry::token_kubeconfig(name, api_server, &cred);
    let c = match Cluster::from_kubeconfig_text(
        &format!("runtime cluster {name}"),
        &kc,
        ctx.connect_options(),
    )
    .await
    {
        Ok(c) => c,
        Err(e) => return Access::Unreachable(e),
    };
    match c.version().await {
        Ok(_) => Access::Token(c),
        Err(e) => Access::Unreachable(e),
    }
}

/// Deletes every member of the set in a cluster, then the parent. With
/// `own_credential`, the client acts with the nautes-manager token, whose
/// namespace goes last.
async fn remove_set(
    ctx: &Ctx,
    cluster: &Cluster,
    set: &ApplySet,
    args: &DestroyArgs,
    dry: bool,
    own_credential: bool,
) -> Result<Vec<String>> {
    let p = &ctx.progress;
    let kinds = Kinds::discover(cluster).await?;
    let Some(state) = set.load(cluster).await? else {
        p.info(
            "destroy",
            format!(
                "{}: no inventory (ApplySet parent {}) found: nothing to remove",
                cluster.label, set.parent
            ),
        );
        return Ok(Vec::new());
    };
    let members = set.members(cluster, &kinds, &state.group_kinds).await?;
    p.info(
        "destroy",
        format!(
            "{}: {} object(s) in the inventory",
            cluster.label,
            members.len()
        ),
    );

    // custom resources that others created would go with our CRDs
    let foreign = foreign_custom_resources(cluster, &kinds, set, &members).await?;
    p.debug(
        "destroy",
        format!(
            "{}: custom resources of the set's CRDs checked",
            cluster.label
        ),
    );
    if !foreign.is_empty() {
        if args.force {
            p.warn("destroy", format!("--force: deleting {} custom resource(s) not created by kubectl-nautes with their CRDs", foreign.len()));
        } else {
            return Err(Error::refused(format!(
                "{}: deleting the CRDs would delete {} custom resource(s) not created by kubectl-nautes:\n  {}\nremove them first, or pass --force",
                cluster.label,
                foreign.len(),
                foreign.join("\n  ")
            )));
        }
    }
    let is_credential = |k: &ObjectKey| {
        (k.0 == "Namespace" && k.2 == registry::CREDENTIAL_NAMESPACE)
            || (k.1.as_deref() == Some(registry::CREDENTIAL_NAMESPACE))
            || (k.0 == "ClusterRoleBinding.rbac.authorization.k8s.io"
                && k.2 == registry::CREDENTIAL_ACCOUNT)
    };
    let (last, rest): (BTreeMap<ObjectKey, Member>, BTreeMap<ObjectKey, Member>) = if own_credential
    {
        members
            .clone()
            .into_iter()
            .partition(|(k, _)| is_credential(k))
    } else {
        (BTreeMap::new(), members.clone())
    };
    let mut deleted = Vec::new();
    let label = cluster.label.clone();
    let gone = std::sync::atomic::AtomicUsize::new(0);
    let total = rest.len();
    delete::delete_members(cluster, &rest, args.timeout, dry, &|k| {
        let n = gone.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        p.status(format!("destroy: {n}/{total} objects gone"));
        if !dry {
            p.debug(
                "destroy",
                format!("{label}: {} deleted", delete::describe_key(k)),
            );
        }
    })
    .await?;
    p.status(String::new());
    if !dry {
        p.change(
            "destroy",
            format!("{label}: {total} objects deleted (webhooks, workloads, CRDs, cluster-scoped objects, then namespaces) and gone"),
        );
    }
    deleted.extend(
        rest.keys()
            .map(|k| format!("{}: {}", cluster.label, delete::describe_key(k))),
    );
    if !dry {
        set.delete_parent(cluster).await?;
    }
    if !last.is_empty() {
        deleted.extend(
            last.keys()
                .map(|k| format!("{}: {}", cluster.label, delete::describe_key(k))),
        );
        if !dry {
            remove_credential(cluster, &last, args.timeout).await?;
            p.change(
                "destroy",
                format!(
                    "{}: namespace {} and the nautes-manager credential removed",
                    cluster.label,
                    registry::CREDENTIAL_NAMESPACE
                ),
            );
        }
    }
    Ok(deleted)
}

/// Removes the credential the client itself acts with: the ClusterRoleBinding
/// is owned by the namespace (garbage-collected with it), so deleting the
/// namespace is the last request; once its ServiceAccount is gone the token
/// stops authenticating, which is how the end is observed.
async fn remove_credential(
    cluster: &Cluster,
    last: &BTreeMap<ObjectKey, Member>,
    timeout: Duration,
) -> Result<()> {
    // the binding must be owned by the namespace (a register stopped between
    // the two may have left it without): add the owner, or, with no
    // namespace to own it, delete it as the very last request
    let ns_name = registry::CREDENTIAL_NAMESPACE;
    let namespaces: kube::Api<k8s_openapi::api::core::v1::Namespace> =
        kube::Api::all(cluster.client.clone());
    let uid = retry(|| namespaces.get_opt(ns_name))
        .await
        .map_err(|e| cluster.err(e))?
        .and_then(|n| n.metadata.uid);
    let crbs: kube::Api<k8s_openapi::api::rbac::v1::ClusterRoleBinding> =
        kube::Api::all(cluster.client.clone());
    if let Some(crb) = retry(|| crbs.get_opt(registry::CREDENTIAL_ACCOUNT))
        .await
        .map_err(|e| cluster.err(e))?
        && crb
            .metadata
            .owner_references
            .as_ref()
            .is_none_or(|o| o.is_empty())
    {
        match &uid {
            Some(uid) => {
                let patch = serde_json::json!({"metadata": {"ownerReferences": [
                    {"apiVersion": "v1", "kind": "Namespace", "name": ns_name, "uid": uid}
                ]}});
                let pp = kube::api::PatchParams::default();
                let mp = kube::api::Patch::Merge(&patch);
                retry(|| crbs.patch(registry::CREDENTIAL_ACCOUNT, &pp, &mp))
                    .await
                    .map_err(|e| cluster.err(e))?;
            }
            None => {
                let dp = kube::api::DeleteParams::default();
                retry(|| crbs.delete(registry::CREDENTIAL_ACCOUNT, &dp))
                    .await
                    .map_err(|e| cluster.err(e))?;
                return Ok(());
            }
        }
    }
    let ns_key = last.keys().find(|k| k.0 == "Namespace").cloned();
    let Some(ns_key) = ns_key else {
        return Ok(());
    };
    let Some(member) = last.get(&ns_key) else {
        return Ok(());
    };
    let api = crate::k8s::api(&cluster.client, &member.kind, None);
    let dp = kube::api::DeleteParams::default();
    match retry(|| api.delete(&ns_key.2, &dp)).await {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 404 => return Ok(()),
        Err(e) => return Err(cluster.err(e)),
    }
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        match api.get_metadata_opt(&ns_key.2).await {
            Ok(None) => return Ok(()),
            Err(kube::Error::Api(s)) if s.code == 401 || s.code == 403 => return Ok(()),
            _ => {}
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(Error::timeout(format!(
                "{}: namespace {} is still not gone after {}s",
                cluster.label,
                ns_key.2,
                timeout.as_secs()
            )));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Custom resources of the set's CRDs that are not members of the set.
async fn foreign_custom_resources(
    cluster: &Cluster,
    kinds: &Kinds,
    set: &ApplySet,
    members: &BTreeMap<ObjectKey, Member>,
) -> Result<Vec<String>> {
    let crd_gk = "CustomResourceDefinition.apiextensions.k8s.io";
    let crds: BTreeSet<&str> = members
        .keys()
        .filter(|k| k.0 == crd_gk)
        .map(|k| k.2.as_str())
        .collect();
    // one list per CRD, all at once (a LIST of a new CRD can wait for its
    // watch cache, so one after the other adds up)
    let lists = futures::future::join_all(crds.into_iter().filter_map(|crd| {
        // plural.group
        let (plural, group) = crd.split_once('.')?;
        let g = kinds_group(kinds, group)?;
        let (ar, _) = g.into_iter().find(|(ar, _)| ar.plural == plural)?;
        Some(async move {
            let api: kube::Api<kube::api::DynamicObject> =
                kube::Api::all_with(cluster.client.clone(), &ar);
            let lp = ListParams::default();
            let list = retry(|| api.list_metadata(&lp))
                .await
                .map_err(|e| cluster.err(e))?;
            Ok::<_, Error>((ar, list.items))
        })
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
                .is_some_and(|v| *v == set.id);
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

fn kinds_group(
    kinds: &Kinds,
    group: &str,
) -> Option<
    Vec<(
        kube::discovery::ApiResource,
        kube::discovery::ApiCapabilities,
    )>,
> {
    kinds.group_resources(group)
}

/// What `run` does, for a name and without printing; used by `serve`.
/// Emits a progress event of step "lock" once the Lease is held.
pub async fn destroy_name(ctx: &Ctx, name: &str, args: &DestroyArgs) -> Result<()> {
    if !crate::spec::is_dns1123_label(name) {
        return Err(Error::invalid(format!(
            "NAME: {name:?} is not a valid cluster name; valid: a DNS-1123 label (lowercase letters, digits and '-', at most 63)"
        )));
    }
    let p = &ctx.progress;
    let registry = ctx.registry().await?;
    let Some(mut record) = registry.get(name).await? else {
        return Err(Error::refused(format!(
            "cluster {name} is not registered in the management cluster (namespace {})",
            registry.namespace
        )));
    };
    let spec = record.spec.clone();
    if spec.usage == Usage::Host {
        let virtuals = registry.virtuals_of(&spec.name).await?;
        if !virtuals.is_empty() {
            return Err(Error::refused(format!(
                "host cluster {} is referenced by virtual cluster(s) {}; destroy them first (--force does not override this)",
                spec.name,
                virtuals.join(", ")
            )));
        }
    }
    let apps = registry
        .applications_targeting(&spec.name, &spec.api_server)
        .await?;
    if !apps.is_empty() {
        if args.force {
            p.warn(
                "preflight",
                format!(
                    "--force: {} Argo CD Application(s) still deploy to it: {}",
                    apps.len(),
                    apps.join(", ")
                ),
            );
        } else {
            return Err(Error::refused(format!(
                "cluster {} still receives deployments from {} Argo CD Application(s) in the management cluster: {}; remove them first, or pass --force",
                spec.name,
                apps.len(),
                apps.join(", ")
            )));
        }
    }
    let lock = registry.lock(&spec.name).await?;
    p.info(
        "lock",
        format!("Lease {}/lock-{} held", registry.namespace, spec.name),
    );
    let result = destroy_locked(ctx, args, &registry, &mut record, false).await;
    lock.release().await;
    result.map(|_| ())
}
