//! What kind of cluster it is: `cluster_kind`, `cluster_type`, `usage`,
//! `worker_type` and `host_cluster`.

use super::super::fields::Ctx;
use super::super::net::is_dns1123_label;
use super::super::tree::SNode;
use super::super::{ClusterType, Usage, WorkerType};
use super::place::Place;
use super::{is_physical, is_virtual};

const CLUSTER_TYPES: &[(&str, ClusterType)] = &[
    ("physical", ClusterType::Physical),
    ("virtual", ClusterType::Virtual),
];
const USAGES: &[(&str, Usage)] = &[("worker", Usage::Worker), ("host", Usage::Host)];
const WORKER_TYPES: &[(&str, WorkerType)] = &[
    ("deployment", WorkerType::Deployment),
    ("pipeline", WorkerType::Pipeline),
];
const HOST_CLUSTER_VALID: &str =
    "the name of the host cluster the virtual cluster runs in (a DNS-1123 label)";

/// `cluster_kind`: optional; only `kubernetes`.
pub(super) fn cluster_kind(ctx: &mut Ctx<'_>, spec: &Place<'_>) {
    if let Some((kind, node)) = spec.text(ctx, "cluster_kind", "kubernetes")
        && kind != "kubernetes"
    {
        spec.reject(ctx, "cluster_kind", node, "is not valid; valid: kubernetes");
    }
}

/// `cluster_type` (physical or virtual) and `usage` (worker or host): both
/// required. A host cluster is always physical: a virtual one is refused,
/// and its type is then not known.
pub(super) fn type_and_usage(
    ctx: &mut Ctx<'_>,
    spec: &Place<'_>,
) -> (Option<ClusterType>, Option<Usage>) {
    let cluster_type = spec.choice(ctx, "cluster_type", CLUSTER_TYPES, true);
    let usage = spec.choice(ctx, "usage", USAGES, true);
    if usage == Some(Usage::Host)
        && is_virtual(cluster_type)
        && let Some(e) = spec.fields.get("cluster_type")
    {
        ctx.on(
            e.value,
            &e.path,
            "\"virtual\" is not valid for a host cluster; valid: physical (a host cluster is always physical)",
        );
        return (None, usage);
    }
    (cluster_type, usage)
}

/// `worker_type`: for a worker, deployment (the default) or pipeline;
/// refused for a host cluster (reported once, not also for its value);
/// none when the usage is not known.
pub(super) fn worker_type(
    ctx: &mut Ctx<'_>,
    spec: &Place<'_>,
    usage: Option<Usage>,
) -> Option<WorkerType> {
    if usage == Some(Usage::Host) {
        spec.forbid(
            ctx,
            "worker_type",
            "is only for workers; valid: leave it out for a host cluster",
        );
        return None;
    }
    let given = spec.choice(ctx, "worker_type", WORKER_TYPES, false);
    match usage {
        Some(Usage::Worker) => Some(given.unwrap_or(WorkerType::Deployment)),
        _ => None,
    }
}

/// `host_cluster`: required for a virtual cluster, refused for a physical
/// one; the name (a DNS-1123 label) of another cluster, not this one.
pub(super) fn host_cluster(
    ctx: &mut Ctx<'_>,
    spec: &Place<'_>,
    cluster_type: Option<ClusterType>,
    name: Option<&str>,
) -> Option<String> {
    if is_physical(cluster_type) {
        spec.forbid(
            ctx,
            "host_cluster",
            "is only for virtual clusters; valid: leave it out for a physical cluster",
        );
        return None;
    }
    let Some((host, node)) = spec.text(ctx, "host_cluster", HOST_CLUSTER_VALID) else {
        if is_virtual(cluster_type) && spec.fields.get("host_cluster").is_none() {
            spec.missing(
                ctx,
                "host_cluster",
                &format!("{HOST_CLUSTER_VALID}, required for a virtual cluster"),
            );
        }
        return None;
    };
    given_host_cluster(ctx, spec, host, node, name).filter(|_| is_virtual(cluster_type))
}

/// A `host_cluster` given in the spec: a DNS-1123 label, not this
/// cluster's own name.
fn given_host_cluster(
    ctx: &mut Ctx<'_>,
    spec: &Place<'_>,
    host: String,
    node: &SNode,
    name: Option<&str>,
) -> Option<String> {
    let problem = if !is_dns1123_label(&host) {
        format!("is not a valid cluster name; valid: {HOST_CLUSTER_VALID}")
    } else if name == Some(host.as_str()) {
        format!("is this cluster's own name; valid: {HOST_CLUSTER_VALID}, not this cluster")
    } else {
        return Some(host);
    };
    spec.reject(ctx, "host_cluster", node, &problem);
    None
}
