//! The rules of a cluster spec, applied to the located tree.
//!
//! [`validate`] reads the document's form and the cluster's name, then
//! [`check_spec`] applies the rules of the cluster's fields, one group at a
//! time, each in the module named for it:
//!
//! - `document`: the two forms of the document and the cluster's name;
//! - `access`: `api_server` and `kubeconfig`, how the cluster is reached;
//! - `kind`: `cluster_kind`, `cluster_type`, `usage`, `worker_type` and
//!   `host_cluster`, what kind of cluster it is;
//! - `domains`: `primary_domain` and `argocd_host`;
//! - `ports`: `traefik`, `vcluster` and the node ports of a physical cluster;
//! - `components`: `componentsList`, and namespaces that two components
//!   of the plan would share.
//!
//! Shared readers (a required field, a string, one of a set of values, a
//! nested mapping) are in `place`. Every problem is reported, in the order
//! the groups run; the spec is built only when there is none.

use super::fields::{Ctx, FieldDef, field};
use super::net::ApiServer;
use super::tree::SNode;
use super::{ClusterSpec, ClusterType};

mod access;
mod components;
mod document;
mod domains;
mod kind;
mod place;
mod ports;
mod upstream;

use place::Place;

/// The path used for problems with the document as a whole.
pub(crate) const DOCUMENT: &str = "(document)";

pub(crate) const DOCUMENT_VALID: &str = "a mapping of cluster fields such as api_server, cluster_type and usage, or a kind: Cluster resource";
const NAME_VALID: &str = "a DNS-1123 label: 1 to 63 lowercase letters, digits or '-', starting and ending with a letter or digit";
/// What a cluster name or component namespace must not be (see
/// `plan::RESERVED_NAMESPACES`).
const NOT_RESERVED: &str =
    "other than kube-system, kube-public, kube-node-lease, default and nautes-system";

/// The cluster's fields (the flat document, or `spec` of the upstream
/// form). The last three are upstream Nautes fields this tool does not use.
static SPEC: &[FieldDef] = &[
    field("name", "name"),
    field("api_server", "apiServer"),
    field("cluster_kind", "clusterKind"),
    field("cluster_type", "clusterType"),
    field("usage", "usage"),
    field("worker_type", "workerType"),
    field("host_cluster", "hostCluster"),
    field("primary_domain", "primaryDomain"),
    field("argocd_host", "argocdHost"),
    field("traefik", "traefik"),
    field("vcluster", "vcluster"),
    field("kubeconfig", "kubeconfig"),
    field("components_list", "componentsList"),
    field("insecure_skip_check", "insecureSkipCheck"),
    field("tekton_host", "tektonHost"),
    field(
        "reserved_namespaces_allowed_products",
        "reservedNamespacesAllowedProducts",
    ),
    field(
        "product_allowed_cluster_resources",
        "productAllowedClusterResources",
    ),
];

/// Validates a document (a single YAML/JSON document) and builds the spec.
pub(crate) fn validate(
    ctx: &mut Ctx<'_>,
    root: &SNode,
    name_arg: Option<&str>,
) -> Option<ClusterSpec> {
    if root.value.as_map().is_none() {
        ctx.on(
            root,
            DOCUMENT,
            format!("is {}; valid: {DOCUMENT_VALID}", root.value.kind_name()),
        );
        return None;
    }
    let (spec, doc_name) = document::read(ctx, root);
    let name = document::name(ctx, name_arg, doc_name);
    check_spec(ctx, &spec?, name)
}

/// The rules of the cluster's own fields, group by group; the spec with
/// every default filled in when no rule was broken.
fn check_spec(ctx: &mut Ctx<'_>, spec: &Place<'_>, name: Option<String>) -> Option<ClusterSpec> {
    let api = access::api_server(ctx, spec);
    let api_text = api.as_ref().map(ApiServer::normalized);
    kind::cluster_kind(ctx, spec);
    let (cluster_type, usage) = kind::type_and_usage(ctx, spec);
    let worker_type = kind::worker_type(ctx, spec, usage);
    let host_cluster = kind::host_cluster(ctx, spec, cluster_type, name.as_deref());
    let primary_domain = domains::primary_domain(ctx, spec, api.as_ref());
    let argocd_host =
        domains::argocd_host(ctx, spec, usage, name.as_deref(), primary_domain.as_deref());
    let traefik_given = ports::traefik(ctx, spec, cluster_type);
    let vcluster = ports::vcluster(ctx, spec, cluster_type, api.as_ref());
    let kubeconfig = access::kubeconfig(ctx, spec, cluster_type, api_text.as_deref());
    let insecure_skip_check = access::insecure_skip_check(ctx, spec);
    let tekton_host = upstream::tekton_host(ctx, spec);
    let reserved_namespaces_allowed_products = upstream::reserved_namespaces(ctx, spec);
    let product_allowed_cluster_resources = upstream::product_resources(ctx, spec);
    let list = components::components_list(ctx, spec);
    let kind = cluster_type.zip(usage);
    components::shared_namespaces(ctx, &list, name.as_deref(), kind, worker_type);
    let traefik =
        ports::physical_node_ports(ctx, spec, cluster_type, traefik_given, list.gateway_ports);

    if !ctx.errors.is_empty() {
        return None;
    }
    Some(ClusterSpec {
        name: name?,
        api_server: api_text?,
        cluster_kind: "kubernetes".to_owned(),
        cluster_type: cluster_type?,
        usage: usage?,
        worker_type,
        host_cluster,
        primary_domain: primary_domain?,
        argocd_host,
        traefik,
        vcluster,
        components: list.overrides,
        kubeconfig,
        insecure_skip_check,
        tekton_host,
        reserved_namespaces_allowed_products,
        product_allowed_cluster_resources,
        kubeconfig_access: std::mem::take(&mut ctx.kubeconfig_access),
    })
}

/// Whether a cluster is physical (false when its type is not known).
fn is_physical(cluster_type: Option<ClusterType>) -> bool {
    cluster_type == Some(ClusterType::Physical)
}

/// Whether a cluster is virtual (false when its type is not known).
fn is_virtual(cluster_type: Option<ClusterType>) -> bool {
    cluster_type == Some(ClusterType::Virtual)
}
