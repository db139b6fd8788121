//! Server-side apply in phases: CRDs (then wait Established and refresh
//! discovery), Namespaces, cluster-scoped objects, namespaced objects; webhook
//! configurations and APIServices come last, once what serves them is ready.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::StreamExt;
use kube::api::{Patch, PatchParams};
use serde::Serialize;
use serde_json::Value;

use super::{Cluster, Kind, Kinds, describe, retry};
use crate::error::{Error, ExitCode, Result};
use crate::kinds::{self, Role, group_kind};
use crate::render::Manifest;

pub const FIELD_MANAGER: &str = "kubectl-nautes";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Created,
    Configured,
    Unchanged,
}

/// The result of applying one object.
#[derive(Debug, Clone, Serialize)]
pub struct Applied {
    pub group_kind: String,
    pub namespace: Option<String>,
    pub name: String,
    pub component: String,
    pub outcome: Outcome,
    /// The object's resourceVersion after this apply.
    pub resource_version: String,
    /// The hash of what was sent.
    pub hash: String,
    /// Whether a request was sent (false: skipped as untouched and unchanged).
    pub sent: bool,
}

/// The hash of an object as it is sent.
pub fn hash_of(object: &Value) -> String {
    use sha2::{Digest, Sha256};
    let bytes = serde_json::to_vec(object).unwrap_or_default();
    let d = Sha256::digest(&bytes);
    d.iter().take(16).map(|b| format!("{b:02x}")).collect()
}

/// What the last apply left, per object: (resourceVersion, hash). With it,
/// an object still at that resourceVersion and rendered to the same hash is
/// not sent again: nobody touched it and nothing about it changed.
pub type Previous = BTreeMap<ObjectKey, (String, String)>;

#[derive(Debug, Clone)]
pub struct ApplyOptions {
    pub force_conflicts: bool,
    pub dry_run_server: bool,
    pub concurrency: usize,
    /// The registration's field manager (`ApplySet::manager`).
    pub field_manager: String,
}

impl Default for ApplyOptions {
    fn default() -> Self {
        Self {
            force_conflicts: false,
            dry_run_server: false,
            concurrency: 16,
            field_manager: FIELD_MANAGER.to_string(),
        }
    }
}

/// The apply phase of an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Phase {
    Crds,
    Namespaces,
    ClusterScoped,
    Namespaced,
    /// Webhook configurations and APIServices: only once the workloads that
    /// serve them are ready.
    Admission,
}

pub fn phase_of(m: &Manifest, kind: Option<&Kind>) -> Phase {
    match kinds::role(&group_kind(m.api_version(), m.kind())) {
        Role::Crd => Phase::Crds,
        Role::Namespace => Phase::Namespaces,
        Role::Admission => Phase::Admission,
        Role::Workload | Role::Passive => match kind {
            Some(k) if !k.namespaced => Phase::ClusterScoped,
            _ => Phase::Namespaced,
        },
    }
}

/// Key of an object in an inventory: (group-kind, namespace, name).
pub type ObjectKey = (String, Option<String>, String);

pub fn key_of(m: &Manifest, kind: &Kind) -> ObjectKey {
    let ns = if kind.namespaced {
        Some(m.object_namespace().unwrap_or(&m.namespace).to_string())
    } else {
        None
    };
    (
        group_kind(m.api_version(), m.kind()),
        ns,
        m.name().to_string(),
    )
}

/// Sets or removes metadata.namespace according to the kind's scope.
pub fn normalize_namespace(m: &mut Manifest, kind: &Kind) {
    if kind.namespaced {
        if m.object_namespace().is_none() {
            m.object["metadata"]["namespace"] = Value::String(m.namespace.clone());
        }
    } else if let Some(meta) = m.object["metadata"].as_object_mut() {
        meta.remove("namespace");
    }
}

/// Checks, before any write, that every object's kind is served by the
/// cluster or defined by a CRD in the same set.
pub fn check_kinds(manifests: &[Manifest], kinds: &Kinds, cluster: &Cluster) -> Result<()> {
    let crds: Vec<(String, String)> = manifests
        .iter()
        .filter(|m| m.kind() == "CustomResourceDefinition")
        .map(|m| {
            let (group, kind, _) = kinds::crd_defines(&m.object);
            (group, kind)
        })
        .collect();
    let mut unknown = Vec::new();
    for m in manifests {
        if kinds.resolve(m.api_version(), m.kind()).is_some() {
            continue;
        }
        let (group, _) = kinds::split_api_version(m.api_version());
        if crds.iter().any(|(g, k)| g == group && k == m.kind()) {
            continue;
        }
        unknown.push(format!(
            "{} (component {}): kind {} of {} is not served by the cluster",
            describe(m.kind(), m.object_namespace(), m.name()),
            m.component,
            m.kind(),
            m.api_version()
        ));
    }
    if unknown.is_empty() {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "{}: {} object(s) of unknown kinds, nothing was applied:\n  {}",
            cluster.label,
            unknown.len(),
            unknown.join("\n  ")
        )))
    }
}

/// Applies one object with server-side apply, retrying transient failures.
pub async fn apply_one(
    cluster: &Cluster,
    kind: &Kind,
    m: &Manifest,
    opts: &ApplyOptions,
    before: Option<&str>,
) -> Result<Applied> {
    let ns = if kind.namespaced {
        m.object_namespace()
    } else {
        None
    };
    let api = super::api(&cluster.client, kind, ns);
    let mut pp = PatchParams::apply(&opts.field_manager);
    if opts.force_conflicts {
        pp = pp.force();
    }
    if opts.dry_run_server {
        pp = pp.dry_run();
    }
    let name = m.name().to_string();
    let patch = Patch::Apply(&m.object);
    let result = retry(|| api.patch(&name, &pp, &patch)).await;
    let what = describe(m.kind(), ns, &name);
    let obj = match result {
        Ok(o) => o,
        Err(kube::Error::Api(s)) if s.code == 409 && s.reason != crate::registry::LOCK_LOST => {
            return Err(Error::new(
                ExitCode::ApiFailed,
                format!(
                    "{}: {what}: {}; another field manager owns these fields: rerun with --force-conflicts to take them over",
                    cluster.label, s.message
                ),
            ));
        }
        Err(kube::Error::Api(s)) if s.code == 422 || s.code == 400 => {
            let hint = if s.message.contains("port is already allocated") {
                "; another Service holds that node port, or the API server has not yet released it after an interrupted create (its repair loop frees it within about 10 minutes): choose another port in the spec or wait"
            } else {
                ""
            };
            return Err(Error::api(format!(
                "{}: {what} (component {}) was rejected: {}{hint}",
                cluster.label, m.component, s.message
            )));
        }
        Err(e) => return Err(cluster.err(e).context(&what)),
    };
    let rv = obj.metadata.resource_version.as_deref();
    let outcome = match before {
        None => Outcome::Created,
        // a dry run changes no resourceVersion: compare what the server
        // would store with what it holds
        Some(_) if opts.dry_run_server => {
            let live = retry(|| api.get_opt(&name))
                .await
                .map_err(|e| cluster.err(e).context(&what))?;
            match live {
                Some(live) if same_content(&live, &obj) => Outcome::Unchanged,
                Some(_) => Outcome::Configured,
                None => Outcome::Created,
            }
        }
        Some(b) if Some(b) == rv => Outcome::Unchanged,
        Some(_) => Outcome::Configured,
    };
    Ok(Applied {
        group_kind: group_kind(m.api_version(), m.kind()),
        namespace: ns.map(str::to_string),
        name,
        component: m.component.clone(),
        outcome,
        resource_version: rv.unwrap_or_default().to_string(),
        hash: hash_of(&m.object),
        sent: true,
    })
}

/// Whether two versions of an object hold the same content, apart from
/// what every write changes (resourceVersion, generation, managedFields).
fn same_content(a: &kube::api::DynamicObject, b: &kube::api::DynamicObject) -> bool {
    let strip = |o: &kube::api::DynamicObject| {
        let mut v = serde_json::to_value(o).unwrap_or(Value::Null);
        if let Some(meta) = v["metadata"].as_object_mut() {
            for k in ["resourceVersion", "generation", "managedFields"] {
                meta.remove(k);
            }
        }
        v
    };
    strip(a) == strip(b)
}

/// Whether an object is as this plugin last applied it and nobody changed it
/// since (its resourceVersion now is the one recorded, its content hash
/// the recorded one): then it is not sent again.
fn unchanged_since(m: &Manifest, now: &str, rv: &str, hash: &str, opts: &ApplyOptions) -> bool {
    now == rv && hash == hash_of(&m.object) && !opts.dry_run_server
}

/// Whether [`apply_many`] would leave this object alone (see
/// [`unchanged_since`]).
pub fn would_skip(
    m: &Manifest,
    kinds: &Kinds,
    opts: &ApplyOptions,
    before: &BTreeMap<ObjectKey, String>,
    previous: &Previous,
) -> bool {
    let Some(kind) = kinds.resolve(m.api_version(), m.kind()) else {
        return false;
    };
    let key = key_of(m, &kind);
    match (before.get(&key), previous.get(&key)) {
        (Some(now), Some((rv, hash))) => unchanged_since(m, now, rv, hash, opts),
        _ => false,
    }
}

/// Applies a set of objects concurrently (bounded). Fails with every error
/// found, after all in-flight requests finish.
pub async fn apply_many(
    cluster: &Cluster,
    kinds: &Kinds,
    manifests: &[&Manifest],
    opts: &ApplyOptions,
    before: &BTreeMap<ObjectKey, String>,
    previous: &Previous,
    on_done: &(dyn Fn(&Applied) + Sync),
) -> Result<Vec<Applied>> {
    let results: Vec<Result<Applied>> =
        futures::stream::iter(manifests.iter().map(|m| async move {
            let kind = kinds.resolve(m.api_version(), m.kind()).ok_or_else(|| {
                Error::invalid(format!(
                    "{}: kind {} of {} is not served by the cluster",
                    cluster.label,
                    m.kind(),
                    m.api_version()
                ))
            })?;
            let key = key_of(m, &kind);
            let now = before.get(&key).map(String::as_str);
            if let (Some(now), Some((rv, hash))) = (now, previous.get(&key))
                && unchanged_since(m, now, rv, hash, opts)
            {
                let skipped = Applied {
                    group_kind: key.0.clone(),
                    namespace: key.1.clone(),
                    name: key.2.clone(),
                    component: m.component.clone(),
                    outcome: Outcome::Unchanged,
                    resource_version: rv.clone(),
                    hash: hash.clone(),
                    sent: false,
                };
                on_done(&skipped);
                return Ok(skipped);
            }
            let applied = apply_one(cluster, &kind, m, opts, now).await?;
            on_done(&applied);
            Ok(applied)
        }))
        .buffer_unordered(opts.concurrency.max(1))
        .collect()
        .await;
    let mut ok = Vec::new();
    let mut errors = Vec::new();
    for r in results {
        match r {
            Ok(a) => ok.push(a),
            Err(e) => errors.push(e),
        }
    }
    if let Some(first) = errors.first() {
        let code = first.code;
        let mut msg: Vec<String> = errors.iter().map(|e| e.message.clone()).collect();
        msg.sort();
        msg.dedup();
        return Err(Error::new(code, msg.join("\n")));
    }
    Ok(ok)
}

/// Waits until every CRD in the set is Established. Returns each one's
/// resourceVersion once Established: the API server's own status update
/// changes it after the apply, and recording the later one lets the next
/// run see that nobody touched the CRD since.
pub async fn wait_crds(
    cluster: &Cluster,
    names: &[String],
    timeout: Duration,
) -> Result<BTreeMap<String, String>> {
    let mut versions = BTreeMap::new();
    let kind = Kind {
        resource: kube::discovery::ApiResource::erase::<
            k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
        >(&()),
        namespaced: false,
    };
    let api = super::api(&cluster.client, &kind, None);
    let deadline = crate::cli::deadline(timeout);
    for name in names {
        loop {
            let crd = retry(|| api.get_opt(name))
                .await
                .map_err(|e| cluster.err(e))?;
            let established = crd.as_ref().is_some_and(|c| {
                c.data["status"]["conditions"].as_array().is_some_and(|cs| {
                    cs.iter()
                        .any(|c| c["type"] == "Established" && c["status"] == "True")
                })
            });
            if established {
                if let Some(rv) = crd.and_then(|c| c.metadata.resource_version) {
                    versions.insert(name.clone(), rv);
                }
                break;
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(Error::timeout(format!(
                    "{}: CustomResourceDefinition {name} is not Established after {}s",
                    cluster.label,
                    timeout.as_secs()
                )));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    Ok(versions)
}
