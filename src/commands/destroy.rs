//! `kubectl nautes destroy NAME`: the reverse of register, from any state a
//! register left. Deletes the inventory in reverse order, waits until it is
//! gone, removes the credential, then the management records.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

use super::Ctx;
use crate::cli::{DestroyArgs, DryRun};
use crate::clusters::{self, Access};
use crate::credential::{self, CREDENTIAL_NAMESPACE};
use crate::error::{Error, ExitCode, Result};
use crate::inventory::{self, ApplySet, Member};
use crate::k8s::apply::ObjectKey;
use crate::k8s::{Cluster, Kinds, delete, permissions};
use crate::kinds;
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

pub async fn run(ctx: &Ctx, args: &DestroyArgs) -> Result<()> {
    let dry = args.dry_run != DryRun::None;
    let result = destroy_name(ctx, &args.name, args).await?;
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
    // an earlier destroy was interrupted (SIGKILL): it may have got as far
    // as removing the inventory, or the credential after it (see remove_set)
    let interrupted = record.state == State::Destroying;
    // a physical cluster is reached with the credential the management
    // cluster holds, or, when there is none (a register stopped before
    // minting one) or the cluster rejects it, with the kubeconfig of the spec
    // given with -f
    let physical_access = if spec.cluster_type == ClusterType::Physical {
        let access = clusters::runtime(
            registry,
            &spec.name,
            &spec.api_server,
            ctx.connect_options(),
        )
        .await;
        let access = match (access, &args.filename) {
            (Access::Unknown, Some(file)) => spec_access(ctx, args, &spec.name, file).await?,
            (Access::Unreachable(e), Some(file)) => {
                p.warn(
                    "destroy",
                    format!("{e}; using the kubeconfig of the spec given with -f instead"),
                );
                spec_access(ctx, args, &spec.name, file).await?
            }
            (Access::Unknown, None) if !args.force => {
                return Err(Error::refused(format!(
                    "cluster {} has no credential in the management cluster: a register stopped before minting one. Pass -f <its spec> so destroy can use the spec's kubeconfig, or --force to only forget the registration",
                    spec.name
                )));
            }
            (access, _) => access,
        };
        Some(access)
    } else {
        None
    };
    // a virtual worker's host must answer before anything changes, unless
    // --force says to forget the registration and leave the host as it is
    let host_access = if spec.cluster_type == ClusterType::Virtual {
        let host = spec.host_cluster.clone().unwrap_or_default();
        let reached = match clusters::host(registry, &host, ctx.connect_options()).await {
            Ok(c) => c.version().await.map(|_| c),
            Err(e) => Err(e),
        };
        match reached {
            Ok(c) => Some(c),
            Err(e) if args.force => {
                p.warn(
                    "destroy",
                    format!(
                        "{e}; --force: forgetting virtual cluster {name} without cleaning up. What may be left on host cluster {host}: namespace {name} (the vcluster release {name}, Service svc-{name}, the vcluster's PersistentVolumeClaims) and everything inside the virtual cluster; delete it there with: kubectl delete namespace {name}",
                        name = spec.name
                    ),
                );
                None
            }
            Err(e) => {
                return Err(Error::new(
                    e.code,
                    format!(
                        "{e}; nothing was changed. Pass --force to only forget the registration (namespace {} on host cluster {host} would be left as it is)",
                        spec.name
                    ),
                ));
            }
        }
    } else {
        None
    };
    let set = registry.applyset(&spec.name).await?;
    // every cluster to clean, reached first: (cluster, acts with the
    // nautes-manager token)
    let mut reached: Vec<(Cluster, bool)> = Vec::new();
    match spec.cluster_type {
        ClusterType::Physical => match physical_access.unwrap_or(Access::Unknown) {
            Access::Token(c) => reached.push((c, true)),
            Access::User(c) => reached.push((c, false)),
            Access::Unreachable(e) if args.force => p.warn(
                "destroy",
                format!("{e}; --force: forgetting the registration without cleaning the cluster"),
            ),
            Access::Unreachable(e) => {
                return Err(Error::new(
                    e.code,
                    format!(
                        "{e}; the cluster was not changed (pass -f <its spec> to use the spec's kubeconfig, or --force to only forget its registration)"
                    ),
                ));
            }
            Access::Unknown => p.warn(
                "destroy",
                "--force: no credential was minted; forgetting the registration without cleaning the cluster",
            ),
        },
        // without the host (--force), only the registration is forgotten
        ClusterType::Virtual => {
            if let Some(host_c) = host_access {
                // components inside the virtual cluster, if it still answers
                let inside = match clusters::runtime(
                    registry,
                    &spec.name,
                    &spec.api_server,
                    ctx.connect_options(),
                )
                .await
                {
                    Access::Token(c) => Ok((c, true)),
                    Access::User(c) => Ok((c, false)),
                    Access::Unreachable(e) => Err(Some(e)),
                    Access::Unknown => Err(None),
                };
                match inside {
                    Ok(x) => reached.push(x),
                    // try the vcluster's own kubeconfig before giving up on the inside
                    Err(why) => match clusters::virtual_cluster(
                        &host_c,
                        &spec,
                        Duration::from_secs(2),
                        ctx.connect_options(),
                        p,
                    )
                    .await
                    {
                        Ok((c, _)) => reached.push((c, false)),
                        Err(_) => match why {
                            Some(e) => p.warn(
                                "destroy",
                                format!("{e}; the virtual cluster's API is unreachable: its components go with the vcluster"),
                            ),
                            None => p.info(
                                "destroy",
                                "the virtual cluster never became reachable: nothing inside it to remove",
                            ),
                        },
                    },
                }
                // the vcluster, its Service, PVCs and namespace in the host
                reached.push((host_c, false));
            }
        }
    }
    // every safety check in every cluster, before the first change
    let mut surveyed = Vec::new();
    for (c, own) in reached {
        let survey = match survey(ctx, &c, &set, args).await {
            // the nautes-manager credential is denied what it was granted:
            // only a destroy takes that away, after the inventory was gone
            // (see remove_set), and the cluster finishes deleting namespace
            // nautes-system by itself
            Err(e) if own && interrupted && e.code == ExitCode::Forbidden => {
                p.info(
                    "destroy",
                    format!(
                        "{}: the nautes-manager credential no longer has its rights: an interrupted destroy removed the inventory and then the credential; nothing left to remove there",
                        c.label
                    ),
                );
                None
            }
            // the stored credential was rejected while surveying (its
            // revocation can take effect between two requests): the same
            // way out as when it is rejected at once
            Err(e) if own && e.code == ExitCode::Unreachable => {
                return Err(Error::new(
                    e.code,
                    format!(
                        "{e}; the cluster was not changed (pass -f <its spec> to use the spec's kubeconfig, or --force to only forget its registration)"
                    ),
                ));
            }
            r => Some(r?),
        };
        surveyed.push((c, own, survey));
    }
    // and every permission the deletions will use
    for (c, _, survey) in &surveyed {
        if let Some(Some(survey)) = survey {
            let mut needs = crate::pipeline::needs::of_deletion(&survey.members);
            needs.add_all(
                &["get", "patch", "delete"],
                "",
                "configmaps",
                inventory::PARENT_NAMESPACE,
            );
            permissions::check_needs(c, &needs).await?;
        }
    }
    if !dry {
        record.state = State::Destroying;
        record.updated_at = registry::now();
        registry.save(record).await?;
    }
    for (c, own, survey) in surveyed {
        match survey {
            Some(Some(survey)) => {
                deleted.extend(remove_set(ctx, &c, &set, survey, args, dry, own).await?)
            }
            // no inventory, but the credential still works: an interrupted
            // destroy removed the inventory and stopped before (or while)
            // removing the credential, which goes now; its namespace only
            // if it still has this cluster's label (adopted namespaces were
            // released before the inventory went)
            Some(None) if own && interrupted && !dry => {
                let ours = credential_namespace_is_ours(&c, &spec.name).await?;
                credential::remove_own(&c, ours, args.timeout).await?;
                p.change(
                    "destroy",
                    format!(
                        "{}: the nautes-manager credential an interrupted destroy left removed",
                        c.label
                    ),
                );
            }
            _ => {}
        }
    }
    if dry {
        return Ok(DestroyResult {
            name: spec.name.clone(),
            dry_run: true,
            deleted,
        });
    }
    forget(registry, &spec.name, p, deleted).await
}

/// Namespace nautes-system carries cluster `name`'s label (the plugin made
/// it for this cluster).
async fn credential_namespace_is_ours(c: &Cluster, name: &str) -> Result<bool> {
    let api: kube::Api<k8s_openapi::api::core::v1::Namespace> = kube::Api::all(c.client.clone());
    let ns = crate::k8s::retry(|| api.get_metadata_opt(CREDENTIAL_NAMESPACE))
        .await
        .map_err(|e| c.err(e))?;
    Ok(ns
        .and_then(|n| n.metadata.labels)
        .and_then(|l| l.get(crate::render::CLUSTER_LABEL).cloned())
        .is_some_and(|v| v == name))
}

/// Removes the management side of a registration: the Argo CD cluster
/// Secret, the plugin's copy of the credential, the record.
async fn forget(
    registry: &Registry,
    name: &str,
    p: &crate::output::Progress,
    deleted: Vec<String>,
) -> Result<DestroyResult> {
    registry.delete_argocd_secret(name).await?;
    registry.delete_credential(name).await?;
    registry.delete(name).await?;
    p.done(
        "destroy",
        format!("Argo CD cluster Secret and registration record of {name} removed"),
    );
    Ok(DestroyResult {
        name: name.to_string(),
        dry_run: false,
        deleted,
    })
}

/// The runtime cluster reached with the kubeconfig of the spec given with -f.
/// A spec that does not load is an error of its own (exit 2), never a reason
/// to forget the registration.
async fn spec_access(
    ctx: &Ctx,
    args: &DestroyArgs,
    name: &str,
    file: &std::path::Path,
) -> Result<Access> {
    let given = super::load_spec(&crate::cli::SpecInput {
        filename: file.to_path_buf(),
        name: Some(name.to_string()),
        allow_exec_kubeconfig: args.allow_exec_kubeconfig,
    })?;
    let kubeconfig = given.kubeconfig.unwrap_or_default();
    Ok(
        match Cluster::from_kubeconfig_text(
            &format!("runtime cluster {name}"),
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
        },
    )
}

/// What destroy found of a set in one cluster, read only: its kinds, its
/// parent's state and its members, after the custom-resource check.
struct Survey {
    state: inventory::ParentState,
    members: BTreeMap<ObjectKey, Member>,
}

/// Reads the set in a cluster and makes the safety checks that need it;
/// changes nothing. None: no inventory there.
async fn survey(
    ctx: &Ctx,
    cluster: &Cluster,
    set: &ApplySet,
    args: &DestroyArgs,
) -> Result<Option<Survey>> {
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
        return Ok(None);
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
    let foreign = match set
        .foreign_custom_resources(cluster, &kinds, &members)
        .await
    {
        Ok(f) => f,
        Err(e) if args.force => {
            p.warn(
                "destroy",
                format!("{e}; --force: deleting the CRDs without it"),
            );
            Vec::new()
        }
        Err(e) => return Err(e),
    };
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
                "{}: deleting the CRDs would delete custom resource(s) not created by kubectl-nautes; nothing was changed. Remove them first, or pass --force: {}",
                cluster.label,
                crate::pipeline::listing(&foreign)
            )));
        }
    }
    Ok(Some(Survey { state, members }))
}

/// Deletes every member of a surveyed set in a cluster, then the parent.
/// With `own_credential`, the client acts with the nautes-manager token,
/// whose namespace goes last.
async fn remove_set(
    ctx: &Ctx,
    cluster: &Cluster,
    set: &ApplySet,
    survey: Survey,
    args: &DestroyArgs,
    dry: bool,
    own_credential: bool,
) -> Result<Vec<String>> {
    let p = &ctx.progress;
    let Survey { state, members } = survey;
    // Namespaces that existed before the plugin adopted them are given
    // back, never deleted: what the plugin put in them goes one by one
    let (released, members): (BTreeMap<ObjectKey, Member>, BTreeMap<ObjectKey, Member>) =
        members.into_iter().partition(|(k, _)| {
            k.0 == kinds::NAMESPACE && state.adopted.contains(&inventory::applied_key(k))
        });
    let is_credential =
        |k: &ObjectKey| credential::is_credential_object(&k.0, k.1.as_deref(), &k.2);
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
    let force = args.force;
    crate::pipeline::hooks::delete_with_hooks(
        cluster,
        set,
        &rest,
        args.timeout,
        dry,
        force,
        p,
        &|k| {
            let n = gone.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
            p.status(format!("destroy: {n}/{total} objects gone"));
            if !dry {
                p.debug(
                    "destroy",
                    format!("{label}: {} deleted", delete::describe_key(k)),
                );
            }
        },
    )
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
    for (k, m) in &released {
        deleted.push(format!(
            "{}: {} released (it existed before; kept without the plugin's labels)",
            cluster.label,
            delete::describe_key(k)
        ));
        if !dry {
            set.release(cluster, k, &m.kind).await?;
            p.change(
                "destroy",
                format!(
                    "{label}: {} kept (it existed before the plugin adopted it): the plugin's labels and field ownership removed",
                    delete::describe_key(k)
                ),
            );
        }
    }
    if !dry {
        set.delete_parent(cluster).await?;
    }
    if !last.is_empty() {
        deleted.extend(
            last.keys()
                .map(|k| format!("{}: {}", cluster.label, delete::describe_key(k))),
        );
        if !dry {
            let namespace_is_member = last.keys().any(|k| k.0 == kinds::NAMESPACE);
            credential::remove_own(cluster, namespace_is_member, args.timeout).await?;
            p.change(
                "destroy",
                format!(
                    "{}: namespace {} and the nautes-manager credential removed",
                    cluster.label, CREDENTIAL_NAMESPACE
                ),
            );
        }
    }
    Ok(deleted)
}

/// Refuses to destroy a host that virtual clusters are registered on.
async fn host_in_use(registry: &Registry, name: &str, usage: Usage) -> Result<()> {
    if usage != Usage::Host {
        return Ok(());
    }
    // fail closed: a list that fails refuses, naming the check
    let virtuals = registry.virtuals_of(name).await.map_err(|e| {
        let code = e.code;
        Error::new(
            code,
            format!(
                "could not check whether virtual clusters are registered on host cluster {name} (a safety check of destroy; --force does not skip it): {e}"
            ),
        )
    })?;
    if virtuals.is_empty() {
        return Ok(());
    }
    Err(Error::refused(format!(
        "host cluster {name} is referenced by virtual cluster(s) {}; destroy them first (--force does not override this)",
        virtuals.join(", ")
    )))
}

/// Destroys registered cluster `name` as `args` say, without printing: the
/// order rules, the lock (a progress event of step "lock" once it is held),
/// the removal. The front ends (command line, HTTP API) call this.
pub async fn destroy_name(ctx: &Ctx, name: &str, args: &DestroyArgs) -> Result<DestroyResult> {
    if !crate::spec::is_dns1123_label(name) {
        return Err(Error::invalid(format!(
            "NAME: {name:?} is not a valid cluster name; valid: a DNS-1123 label (lowercase letters, digits and '-', at most 63)"
        )));
    }
    let p = &ctx.progress;
    let registry = ctx.registry().await?;
    registry.cluster.version().await?;
    let Some(mut record) = registry.get(name).await? else {
        return Err(Error::new(
            ExitCode::Refused,
            format!(
                "cluster {} is not registered in the management cluster (namespace {})",
                name, registry.namespace
            ),
        ));
    };
    let dry = args.dry_run != DryRun::None;
    let spec = record.spec.clone();

    // order rules, checked before any change
    host_in_use(&registry, &spec.name, spec.usage).await?;
    let apps = match registry
        .applications_targeting(&spec.name, &spec.api_server)
        .await
    {
        Ok(apps) => apps,
        Err(e) if args.force => {
            p.warn("preflight", format!("{e}; --force: going on without it"));
            Vec::new()
        }
        Err(e) => return Err(e),
    };
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
    permissions::check_needs(
        &registry.cluster,
        &permissions::management_destroy(&registry.namespace),
    )
    .await?;
    let lock = registry.lock(&spec.name, &ctx.locks).await?;
    p.info(
        "lock",
        format!("Lease {}/lock-{} held", registry.namespace, spec.name),
    );
    // again under the lock: a virtual worker registering holds its host's
    // lock until its record is saved
    let result = match host_in_use(&registry, &spec.name, spec.usage).await {
        Ok(()) => destroy_locked(ctx, args, &registry, &mut record, dry).await,
        Err(e) => Err(e),
    };
    if let Err(e) = &result
        && !dry
        && e.code != ExitCode::Interrupted
        && registry.record_failure(&spec.name, "destroy", e).await
    {
        p.info(
            "record",
            format!(
                "the failure is kept in record {}/cluster-{} until a run succeeds",
                registry.namespace, spec.name
            ),
        );
    }
    lock.release().await;
    result
}
