//! The rules of a cluster spec, applied to the located tree.

use std::collections::BTreeMap;

use super::fields::{
    Ctx, Entry, FieldDef, Fields, field, field_list, ignored, join, quote, read_fields,
};
use super::kubeconfig;
use super::net::{
    ApiServer, is_dns1123_label, is_dns1123_subdomain, is_ip_address, parse_api_server,
};
use super::tree::{Node, SNode, position};
use super::{
    ClusterSpec, ClusterType, ComponentOverride, NodePorts, Usage, VclusterSpec, WorkerType,
};

/// The path used for problems with the document as a whole.
pub(crate) const DOCUMENT: &str = "(document)";

pub(crate) const DOCUMENT_VALID: &str = "a mapping of cluster fields such as api_server, cluster_type and usage, or a kind: Cluster resource";
const NAME_VALID: &str = "a DNS-1123 label: 1 to 63 lowercase letters, digits or '-', starting and ending with a letter or digit";
const URL_VALID: &str =
    "an http or https URL with a host and an optional port, such as https://10.0.0.5:6443";
const PORT_VALID: &str = "a whole number from 30000 to 32767";
const DOMAIN_VALID: &str =
    "a DNS name of lowercase letters, digits, '-' and dots, such as example.com";
const HOST_VALID: &str = "a DNS name such as argocd.demo.example.com (an http:// or https:// prefix and a trailing / are removed)";
const API_VERSION: &str = "nautes.resource.nautes.io/v1alpha1";
const KIND: &str = "Cluster";
const NODE_PORTS: std::ops::RangeInclusive<i128> = 30000..=32767;
const DEFAULT_HTTP_NODE_PORT: u16 = 30080;
const DEFAULT_HTTPS_NODE_PORT: u16 = 30443;

static TOP_UPSTREAM: &[FieldDef] = &[
    field("api_version", "apiVersion"),
    field("kind", "kind"),
    field("metadata", "metadata"),
    field("spec", "spec"),
    ignored("status", "status"),
];

/// `metadata`: only the name is used; the rest of a Kubernetes object's
/// metadata is accepted and ignored.
static METADATA: &[FieldDef] = &[
    field("name", "name"),
    ignored("namespace", "namespace"),
    ignored("labels", "labels"),
    ignored("annotations", "annotations"),
    ignored("generate_name", "generateName"),
    ignored("uid", "uid"),
    ignored("resource_version", "resourceVersion"),
    ignored("generation", "generation"),
    ignored("creation_timestamp", "creationTimestamp"),
    ignored("deletion_timestamp", "deletionTimestamp"),
    ignored(
        "deletion_grace_period_seconds",
        "deletionGracePeriodSeconds",
    ),
    ignored("owner_references", "ownerReferences"),
    ignored("finalizers", "finalizers"),
    ignored("managed_fields", "managedFields"),
    ignored("self_link", "selfLink"),
];

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
    ignored("tekton_host", "tektonHost"),
    ignored(
        "reserved_namespaces_allowed_products",
        "reservedNamespacesAllowedProducts",
    ),
    ignored(
        "product_allowed_cluster_resources",
        "productAllowedClusterResources",
    ),
];

static TRAEFIK: &[FieldDef] = &[
    field("http_node_port", "httpNodePort"),
    field("https_node_port", "httpsNodePort"),
];

static VCLUSTER: &[FieldDef] = &[field("https_node_port", "httpsNodePort")];

/// Component categories as upstream Nautes names them. The last two are
/// upstream categories this tool does not install; they are ignored.
static CATEGORIES: &[FieldDef] = &[
    field("multi_tenant", "multiTenant"),
    field("secret_sync", "secretSync"),
    field("gateway", "gateway"),
    field("deployment", "deployment"),
    field("progressive_delivery", "progressiveDelivery"),
    field("secret_management", "secretManagement"),
    field("pipeline", "pipeline"),
    field("event_listener", "eventListener"),
    ignored("cert_management", "certManagement"),
    ignored("oauth_proxy", "oauthProxy"),
];

/// The one supported component of each category.
static COMPONENT_NAMES: &[(&str, &str)] = &[
    ("multi_tenant", "hnc"),
    ("secret_sync", "external-secrets"),
    ("gateway", "traefik"),
    ("deployment", "argocd"),
    ("progressive_delivery", "argo-rollouts"),
    ("secret_management", "vault"),
    ("pipeline", "tekton"),
    ("event_listener", "argo-events"),
];

static COMPONENT: &[FieldDef] = &[
    field("name", "name"),
    field("namespace", "namespace"),
    field("additions", "additions"),
];

const CLUSTER_TYPES: &[(&str, ClusterType)] = &[
    ("physical", ClusterType::Physical),
    ("virtual", ClusterType::Virtual),
];
const USAGES: &[(&str, Usage)] = &[("worker", Usage::Worker), ("host", Usage::Host)];
const WORKER_TYPES: &[(&str, WorkerType)] = &[
    ("deployment", WorkerType::Deployment),
    ("pipeline", WorkerType::Pipeline),
];

fn no_hint(_: &str) -> Option<String> {
    None
}

/// Whether the document is in the upstream resource form.
fn is_upstream(root: &SNode) -> bool {
    root.value.as_map().is_some_and(|entries| {
        entries.iter().any(|(k, _)| {
            matches!(
                k.value.as_str(),
                Some("apiVersion" | "api_version" | "kind" | "metadata" | "spec")
            )
        })
    })
}

/// Reports a value of the wrong type.
fn wrong_type(ctx: &mut Ctx<'_>, entry: &Entry<'_>, expected: &str, valid: &str) {
    ctx.on(
        entry.value,
        &entry.path,
        format!(
            "expected {expected}, found {}; valid: {valid}",
            entry.value.value.kind_name()
        ),
    );
}

/// Where missing fields of a mapping are reported, and the mapping.
struct Place<'a> {
    fields: Fields<'a>,
    missing_at: (u32, u32),
}

impl Place<'_> {
    /// Reports a required field that is absent (at the mapping) or null (at
    /// its key).
    fn missing(&self, ctx: &mut Ctx<'_>, snake: &str, valid: &str) {
        if self.fields.suggested.contains(&snake) {
            return;
        }
        match self.fields.present(snake) {
            Some(e) => ctx.on(e.key, &e.path, format!("is empty; valid: {valid}")),
            None => ctx.at(
                self.missing_at,
                &self.fields.path(snake),
                format!("is missing; valid: {valid}"),
            ),
        }
    }

    /// A scalar field as text; reports lists and mappings.
    fn text(&self, ctx: &mut Ctx<'_>, snake: &str, valid: &str) -> Option<(String, &SNode)> {
        let entry = self.fields.get(snake)?;
        match ctx.text_of(entry.value) {
            Some(t) => Some((t, entry.value)),
            None => {
                wrong_type(ctx, entry, "a string", valid);
                None
            }
        }
    }

    /// One of a fixed set of values.
    fn choice<T: Copy>(
        &self,
        ctx: &mut Ctx<'_>,
        snake: &str,
        options: &[(&str, T)],
        required: bool,
    ) -> Option<T> {
        let valid = options
            .iter()
            .map(|(n, _)| *n)
            .collect::<Vec<_>>()
            .join(", ");
        let Some(entry) = self.fields.get(snake) else {
            if required {
                self.missing(ctx, snake, &valid);
            }
            return None;
        };
        let found = entry
            .value
            .value
            .as_str()
            .and_then(|s| options.iter().find(|(n, _)| *n == s))
            .map(|(_, v)| *v);
        if found.is_none() {
            let shown = ctx.show(entry.value);
            ctx.on(
                entry.value,
                &entry.path,
                format!("{shown} is not valid; valid: {valid}"),
            );
        }
        found
    }

    /// Reports a field that must not be given here.
    fn forbid(&self, ctx: &mut Ctx<'_>, snake: &str, why: &str) {
        if let Some(e) = self.fields.get(snake) {
            ctx.on(e.key, &e.path, why.to_owned());
        }
    }
}

/// A node port: a whole number (or a string of one) in 30000-32767.
fn node_port(ctx: &mut Ctx<'_>, node: &SNode, path: &str) -> Option<u16> {
    let shown = ctx.show(node);
    let number = match &node.value {
        Node::Int(i) => *i,
        Node::Str(s) => match s.trim().parse::<i128>() {
            Ok(i) => i,
            Err(_) => {
                let what = if s.trim().parse::<f64>().is_ok() {
                    "is not a whole number"
                } else {
                    "is not a number"
                };
                ctx.on(node, path, format!("{shown} {what}; valid: {PORT_VALID}"));
                return None;
            }
        },
        Node::Float(_) => {
            ctx.on(
                node,
                path,
                format!("{shown} is not a whole number; valid: {PORT_VALID}"),
            );
            return None;
        }
        other => {
            ctx.on(
                node,
                path,
                format!(
                    "expected a number, found {}; valid: {PORT_VALID}",
                    other.kind_name()
                ),
            );
            return None;
        }
    };
    if NODE_PORTS.contains(&number) {
        u16::try_from(number).ok()
    } else {
        ctx.on(
            node,
            path,
            format!("{shown} is out of range; valid: {PORT_VALID}"),
        );
        None
    }
}

/// Reads a nested mapping field; reports other types.
fn sub_mapping<'a>(
    ctx: &mut Ctx<'_>,
    parent: &Fields<'a>,
    snake: &str,
    defs: &'static [FieldDef],
) -> Option<Place<'a>> {
    let entry = parent.get(snake)?;
    if entry.value.value.as_map().is_none() {
        let valid = format!("a mapping with {}", field_list(defs, parent.camel));
        wrong_type(ctx, entry, "a mapping", &valid);
        return None;
    }
    let fields = read_fields(ctx, entry.value, defs, &entry.path, parent.camel, &no_hint);
    Some(Place {
        fields,
        missing_at: position(entry.value),
    })
}

/// The name given by the document, and whether any was given.
struct DocName<'a> {
    value: Option<(String, &'a SNode, String)>,
    seen: bool,
}

fn collect_name<'a>(ctx: &mut Ctx<'_>, doc: &mut DocName<'a>, entry: Option<&Entry<'a>>) {
    let Some(entry) = entry else {
        return;
    };
    doc.seen = true;
    let Some(text) = ctx.text_of(entry.value) else {
        wrong_type(ctx, entry, "a string", NAME_VALID);
        return;
    };
    if !is_dns1123_label(&text) {
        let shown = ctx.show(entry.value);
        ctx.on(
            entry.value,
            &entry.path,
            format!("{shown} is not a valid name; valid: {NAME_VALID}"),
        );
        return;
    }
    match &doc.value {
        Some((first, _, first_path)) if *first != text => {
            let message = format!(
                "{} does not match {first_path} {}; valid: the same name in both places, or only one of them",
                quote(&text),
                quote(first)
            );
            ctx.on(entry.value, &entry.path, message);
        }
        Some(_) => {}
        None => doc.value = Some((text, entry.value, entry.path.clone())),
    }
}

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
    let mut doc_name = DocName {
        value: None,
        seen: false,
    };
    let mut name_missing_at = (1, 1);
    let mut name_path = "name".to_owned();

    let spec_place = if is_upstream(root) {
        let belongs_under_spec = |key: &str| {
            SPEC.iter()
                .any(|d| d.snake == key || d.camel == key)
                .then(|| "it belongs under spec".to_owned())
        };
        let top = Place {
            fields: read_fields(ctx, root, TOP_UPSTREAM, "", true, &belongs_under_spec),
            missing_at: (1, 1),
        };
        for (snake, expected) in [("api_version", API_VERSION), ("kind", KIND)] {
            match top.text(ctx, snake, expected) {
                Some((value, node)) if value != expected => {
                    let shown = ctx.show(node);
                    let path = top.fields.path(snake);
                    ctx.on(
                        node,
                        &path,
                        format!("{shown} is not valid; valid: {expected}"),
                    );
                }
                Some(_) => {}
                None => {
                    if top.fields.get(snake).is_none() {
                        top.missing(ctx, snake, expected);
                    }
                }
            }
        }
        name_path = "metadata.name".to_owned();
        match sub_mapping(ctx, &top.fields, "metadata", METADATA) {
            Some(meta) => {
                name_missing_at = meta.missing_at;
                name_path = meta.fields.path("name");
                // A misspelt name was reported already.
                doc_name.seen |= meta.fields.suggested.contains(&"name");
                collect_name(ctx, &mut doc_name, meta.fields.get("name"));
            }
            // Metadata of the wrong type was reported already.
            None => doc_name.seen |= top.fields.get("metadata").is_some(),
        }
        match top.fields.get("spec") {
            None => {
                top.missing(
                    ctx,
                    "spec",
                    "a mapping with the cluster's fields (apiServer, clusterType, usage, ...)",
                );
                None
            }
            Some(_) => sub_mapping(ctx, &top.fields, "spec", SPEC),
        }
    } else {
        Some(Place {
            fields: read_fields(ctx, root, SPEC, "", false, &no_hint),
            missing_at: (1, 1),
        })
    };

    let spec = match spec_place {
        Some(spec) => {
            doc_name.seen |= spec.fields.suggested.contains(&"name");
            collect_name(ctx, &mut doc_name, spec.fields.get("name"));
            Some(spec)
        }
        None => None,
    };

    // The name.
    let name = match name_arg {
        Some(arg) => {
            if !is_dns1123_label(arg) {
                ctx.at(
                    (1, 1),
                    "name",
                    format!(
                        "{} (given on the command line) is not a valid name; valid: {NAME_VALID}",
                        quote(arg)
                    ),
                );
                None
            } else {
                if let Some((doc, node, path)) = &doc_name.value
                    && doc != arg
                {
                    ctx.on(
                        node,
                        path,
                        format!(
                            "{} does not match the name {} given on the command line; valid: the same name, or no name in the file",
                            quote(doc),
                            quote(arg)
                        ),
                    );
                }
                Some(arg.to_owned())
            }
        }
        None => match doc_name.value {
            Some((n, _, _)) => Some(n),
            None => {
                if !doc_name.seen {
                    ctx.at(
                        name_missing_at,
                        &name_path,
                        format!(
                            "is missing; valid: {NAME_VALID}, given in the file or on the command line"
                        ),
                    );
                }
                None
            }
        },
    };

    let spec = spec?;
    check_spec(ctx, &spec, name)
}

/// The rules of the cluster's own fields.
fn check_spec(ctx: &mut Ctx<'_>, spec: &Place<'_>, name: Option<String>) -> Option<ClusterSpec> {
    let f = &spec.fields;

    // api_server
    let api: Option<ApiServer> = match spec.text(ctx, "api_server", URL_VALID) {
        Some((text, node)) => match parse_api_server(&text) {
            Ok(api) => Some(api),
            Err(problem) => {
                let message = if problem.echo {
                    format!("{} {}; valid: {URL_VALID}", quote(&text), problem.what)
                } else {
                    format!("{}; valid: {URL_VALID}", problem.what)
                };
                ctx.on(node, &f.path("api_server"), message);
                None
            }
        },
        None => {
            if f.get("api_server").is_none() {
                spec.missing(ctx, "api_server", URL_VALID);
            }
            None
        }
    };
    let api_text = api.as_ref().map(ApiServer::normalized);

    // cluster_kind
    if let Some((kind, node)) = spec.text(ctx, "cluster_kind", "kubernetes")
        && kind != "kubernetes"
    {
        let shown = ctx.show(node);
        ctx.on(
            node,
            &f.path("cluster_kind"),
            format!("{shown} is not valid; valid: kubernetes"),
        );
    }

    // cluster_type, usage, worker_type
    let mut cluster_type = spec.choice(ctx, "cluster_type", CLUSTER_TYPES, true);
    let usage = spec.choice(ctx, "usage", USAGES, true);
    if usage == Some(Usage::Host)
        && cluster_type == Some(ClusterType::Virtual)
        && let Some(e) = f.get("cluster_type")
    {
        ctx.on(
            e.value,
            &e.path,
            "\"virtual\" is not valid for a host cluster; valid: physical (a host cluster is always physical)",
        );
        cluster_type = None;
    }
    // A field that must not be given is reported once, not also for its
    // value.
    let worker_type = if usage == Some(Usage::Host) {
        None
    } else {
        spec.choice(ctx, "worker_type", WORKER_TYPES, false)
    };
    if usage == Some(Usage::Host) {
        spec.forbid(
            ctx,
            "worker_type",
            "is only for workers; valid: leave it out for a host cluster",
        );
        spec.forbid(
            ctx,
            "argocd_host",
            "is only for workers (a host cluster gets no Argo CD); valid: leave it out for a host cluster",
        );
    }
    let worker_type = match usage {
        Some(Usage::Worker) => Some(worker_type.unwrap_or(WorkerType::Deployment)),
        _ => None,
    };

    // host_cluster
    let host_cluster_valid =
        "the name of the host cluster the virtual cluster runs in (a DNS-1123 label)";
    let mut host_cluster = None;
    let host_cluster_given = if cluster_type == Some(ClusterType::Physical) {
        None
    } else {
        spec.text(ctx, "host_cluster", host_cluster_valid)
    };
    if let Some((host, node)) = host_cluster_given {
        let shown = ctx.show(node);
        let path = f.path("host_cluster");
        if !is_dns1123_label(&host) {
            ctx.on(
                node,
                &path,
                format!("{shown} is not a valid cluster name; valid: {host_cluster_valid}"),
            );
        } else if name.as_deref() == Some(host.as_str()) {
            ctx.on(
                node,
                &path,
                format!("{shown} is this cluster's own name; valid: {host_cluster_valid}, not this cluster"),
            );
        } else {
            host_cluster = Some(host);
        }
    }
    match cluster_type {
        Some(ClusterType::Physical) => spec.forbid(
            ctx,
            "host_cluster",
            "is only for virtual clusters; valid: leave it out for a physical cluster",
        ),
        Some(ClusterType::Virtual) if f.get("host_cluster").is_none() => {
            spec.missing(
                ctx,
                "host_cluster",
                &format!("{host_cluster_valid}, required for a virtual cluster"),
            );
        }
        _ => {}
    }

    // primary_domain
    let mut primary_domain = None;
    if let Some((domain, node)) = spec.text(ctx, "primary_domain", DOMAIN_VALID) {
        let shown = ctx.show(node);
        let path = f.path("primary_domain");
        let trimmed = domain.strip_suffix('.').unwrap_or(&domain);
        if is_ip_address(trimmed) {
            ctx.on(
                node,
                &path,
                format!("{shown} is an IP address; valid: {DOMAIN_VALID}, or {trimmed}.nip.io for an address"),
            );
        } else if !is_dns1123_subdomain(trimmed) {
            ctx.on(
                node,
                &path,
                format!("{shown} is not a valid DNS name; valid: {DOMAIN_VALID}"),
            );
        } else {
            primary_domain = Some(trimmed.to_owned());
        }
    } else if f.get("primary_domain").is_none() {
        primary_domain = api.as_ref().map(|a| a.host.primary_domain());
    }

    // argocd_host
    let mut argocd_host = None;
    let argocd_host_given = if usage == Some(Usage::Host) {
        None
    } else {
        spec.text(ctx, "argocd_host", HOST_VALID)
    };
    if let Some((host, node)) = argocd_host_given {
        let lower = host.trim().to_ascii_lowercase();
        let bare = lower
            .strip_prefix("https://")
            .or_else(|| lower.strip_prefix("http://"))
            .unwrap_or(&lower);
        let bare = bare.strip_suffix('/').unwrap_or(bare);
        if is_dns1123_subdomain(bare) && !is_ip_address(bare) {
            argocd_host = Some(bare.to_owned());
        } else {
            let shown = ctx.show(node);
            ctx.on(
                node,
                &f.path("argocd_host"),
                format!("{shown} is not a host name; valid: {HOST_VALID}"),
            );
        }
    } else if f.get("argocd_host").is_none()
        && usage == Some(Usage::Worker)
        && let (Some(n), Some(d)) = (&name, &primary_domain)
    {
        let host = format!("argocd.{n}.{d}");
        if is_dns1123_subdomain(&host) {
            argocd_host = Some(host);
        } else {
            ctx.at(
                spec.missing_at,
                &f.path("argocd_host"),
                format!(
                    "the default argocd.<name>.<primary_domain> is {} characters long; valid: at most 253 characters, or give argocd_host",
                    host.len()
                ),
            );
        }
    }
    if usage != Some(Usage::Worker) {
        argocd_host = None;
    }

    // traefik
    let mut traefik_place = None;
    if cluster_type == Some(ClusterType::Virtual) {
        spec.forbid(
            ctx,
            "traefik",
            "is not used by a virtual cluster (it uses the Traefik of its host); valid: leave it out for a virtual cluster",
        );
    } else {
        traefik_place = sub_mapping(ctx, f, "traefik", TRAEFIK);
    }
    let mut traefik_ports: [Option<PortAt<'_>>; 2] = [None, None];
    let mut traefik_paths = [String::new(), String::new()];
    for (i, def) in TRAEFIK.iter().enumerate() {
        let path = match &traefik_place {
            Some(t) => t.fields.path(def.snake),
            None => join(&f.path("traefik"), def.spelling(f.camel)),
        };
        if let Some(e) = traefik_place.as_ref().and_then(|t| t.fields.get(def.snake))
            && let Some(p) = node_port(ctx, e.value, &e.path)
            && let Some(slot) = traefik_ports.get_mut(i)
        {
            *slot = Some((p, e.value, e.path.clone()));
        }
        if let Some(slot) = traefik_paths.get_mut(i) {
            *slot = path;
        }
    }

    // vcluster
    let mut vcluster = None;
    if cluster_type == Some(ClusterType::Physical) {
        spec.forbid(
            ctx,
            "vcluster",
            "is only for virtual clusters; valid: leave it out for a physical cluster (its node ports are set in traefik)",
        );
    } else {
        let place = sub_mapping(ctx, f, "vcluster", VCLUSTER);
        let wrong_type_reported = f.get("vcluster").is_some() && place.is_none();
        let given = place.as_ref().and_then(|v| v.fields.get("https_node_port"));
        match given {
            Some(e) => {
                if let Some(port) = node_port(ctx, e.value, &e.path) {
                    vcluster = Some(VclusterSpec {
                        https_node_port: port,
                    });
                }
            }
            None => {
                if cluster_type == Some(ClusterType::Virtual)
                    && !wrong_type_reported
                    && let Some(a) = &api
                {
                    let port = a.effective_port();
                    if NODE_PORTS.contains(&i128::from(port)) {
                        vcluster = Some(VclusterSpec {
                            https_node_port: port,
                        });
                    } else {
                        let (at, path) = match &place {
                            Some(v) => (v.missing_at, v.fields.path("https_node_port")),
                            None => (
                                f.get("api_server")
                                    .map_or(spec.missing_at, |e| position(e.value)),
                                join(
                                    &f.path("vcluster"),
                                    VCLUSTER
                                        .first()
                                        .map_or("https_node_port", |d| d.spelling(f.camel)),
                                ),
                            ),
                        };
                        let api_name = f.name("api_server");
                        ctx.at(
                            at,
                            &path,
                            format!(
                                "is missing, and the port of {api_name} ({port}) is not a node port; valid: {PORT_VALID}, given here or as the port of {api_name}"
                            ),
                        );
                    }
                }
            }
        }
    }
    if cluster_type != Some(ClusterType::Virtual) {
        vcluster = None;
    }

    // kubeconfig
    let mut kubeconfig = None;
    let kubeconfig_path = f.path("kubeconfig");
    match cluster_type {
        Some(ClusterType::Virtual) => spec.forbid(
            ctx,
            "kubeconfig",
            "is not accepted for a virtual cluster: its kubeconfig comes from its vcluster; valid: leave it out",
        ),
        _ => match f.get("kubeconfig") {
            Some(e) => match kubeconfig::decode(ctx, e.value, &kubeconfig_path) {
                Ok(config) => {
                    if let Some(server) = &api_text {
                        kubeconfig = Some(kubeconfig::rewrite(&config, server));
                    }
                }
                Err(problem) => problem.report(ctx, e.value, &kubeconfig_path),
            },
            None => {
                if cluster_type == Some(ClusterType::Physical) {
                    spec.missing(
                        ctx,
                        "kubeconfig",
                        &format!("{}, required for a physical cluster", kubeconfig::VALID),
                    );
                }
            }
        },
    }

    // componentsList
    let mut components = BTreeMap::new();
    let mut gateway_ports: [Option<(u16, &SNode, String)>; 2] = [None, None];
    if let Some(list) = f.get("components_list") {
        if list.value.value.as_map().is_none() {
            wrong_type(
                ctx,
                list,
                "a mapping",
                &format!(
                    "a mapping from a component category ({}) to its name, namespace and additions",
                    field_list(CATEGORIES, true)
                ),
            );
        } else {
            let categories = read_fields(ctx, list.value, CATEGORIES, &list.path, true, &no_hint);
            for def in CATEGORIES.iter().filter(|d| !d.ignored) {
                if categories.get(def.snake).is_none() {
                    continue;
                }
                let (over, ports) = component(ctx, &categories, def);
                if def.snake == "gateway" {
                    gateway_ports = ports;
                }
                if let Some(over) = over {
                    components.insert(def.camel.to_owned(), over);
                }
            }
        }
    }

    // Node ports of a physical cluster: traefik, else the gateway's
    // additions (upstream's way), else the defaults.
    let mut traefik = None;
    if cluster_type == Some(ClusterType::Physical) {
        let [t_http, t_https] = traefik_ports;
        let [g_http, g_https] = gateway_ports;
        let [p_http, p_https] = &traefik_paths;
        let http = merge_port(ctx, t_http, g_http, p_http);
        let https = merge_port(ctx, t_https, g_https, p_https);
        let http_port = http.as_ref().map_or(DEFAULT_HTTP_NODE_PORT, |p| p.0);
        let https_port = https.as_ref().map_or(DEFAULT_HTTPS_NODE_PORT, |p| p.0);
        if http_port == https_port {
            // Blame the https port when it was given, else the http port.
            let (blamed, other_path, other_given) = match (&https, &http) {
                (Some(b), _) => (Some(b), p_http, http.is_some()),
                (None, b) => (b.as_ref(), p_https, false),
            };
            let other = if other_given {
                other_path.clone()
            } else {
                format!("{other_path} (by default)")
            };
            let message = format!(
                "{https_port} is also the port of {other}; valid: two different node ports, each {PORT_VALID}"
            );
            match blamed {
                Some((_, node, path)) => ctx.on(node, path, message),
                None => ctx.at(spec.missing_at, p_https, message),
            }
        } else {
            traefik = Some(NodePorts {
                http_node_port: http_port,
                https_node_port: https_port,
            });
        }
    }

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
        host_cluster: if cluster_type == Some(ClusterType::Virtual) {
            host_cluster
        } else {
            None
        },
        primary_domain: primary_domain?,
        argocd_host,
        traefik,
        vcluster,
        components,
        kubeconfig: if cluster_type == Some(ClusterType::Physical) {
            kubeconfig
        } else {
            None
        },
        kubeconfig_access: std::mem::take(&mut ctx.kubeconfig_access),
    })
}

type PortAt<'a> = (u16, &'a SNode, String);

/// Combines a port given in traefik with the same port given in the
/// gateway's additions; they must agree.
fn merge_port<'a>(
    ctx: &mut Ctx<'_>,
    traefik: Option<PortAt<'a>>,
    gateway: Option<PortAt<'a>>,
    traefik_path: &str,
) -> Option<PortAt<'a>> {
    match (traefik, gateway) {
        (Some(t), Some(g)) => {
            if t.0 != g.0 {
                ctx.on(
                    g.1,
                    &g.2,
                    format!(
                        "{} does not match {traefik_path} ({}); valid: give the port in one place only",
                        g.0, t.0
                    ),
                );
            }
            Some(t)
        }
        (t, g) => t.or(g),
    }
}

/// Validates one component category. Returns its override and, for the
/// gateway, the node ports found in its additions.
fn component<'a>(
    ctx: &mut Ctx<'_>,
    categories: &Fields<'a>,
    def: &FieldDef,
) -> (Option<ComponentOverride>, [Option<PortAt<'a>>; 2]) {
    let mut ports = [None, None];
    let expected = COMPONENT_NAMES
        .iter()
        .find(|(c, _)| *c == def.snake)
        .map_or("", |(_, n)| *n);
    let Some(place) = sub_mapping(ctx, categories, def.snake, COMPONENT) else {
        return (None, ports);
    };
    let f = &place.fields;
    let mut over = ComponentOverride {
        name: None,
        namespace: None,
        additions: BTreeMap::new(),
    };
    let valid_name = format!("{expected} (the only supported {} component)", def.camel);
    if let Some((name, node)) = place.text(ctx, "name", &valid_name) {
        if name == expected {
            over.name = Some(name);
        } else {
            let shown = ctx.show(node);
            ctx.on(
                node,
                &f.path("name"),
                format!("{shown} is not supported; valid: {valid_name}"),
            );
        }
    }
    if let Some((ns, node)) = place.text(ctx, "namespace", NAME_VALID) {
        if is_dns1123_label(&ns) {
            over.namespace = Some(ns);
        } else {
            let shown = ctx.show(node);
            ctx.on(
                node,
                &f.path("namespace"),
                format!("{shown} is not a valid namespace; valid: {NAME_VALID}"),
            );
        }
    }
    if let Some(additions) = f.get("additions") {
        match additions.value.value.as_map() {
            None => wrong_type(
                ctx,
                additions,
                "a mapping",
                "a mapping from setting names to single values",
            ),
            Some(pairs) => {
                let mut first_line: BTreeMap<String, u32> = BTreeMap::new();
                for (k, v) in pairs {
                    let Some(key) = (if k.value.is_null() {
                        None
                    } else {
                        ctx.text_of(k)
                    }) else {
                        ctx.on(
                            k,
                            &additions.path,
                            format!(
                                "{} is not a setting name; valid: a string key",
                                match &k.value {
                                    Node::Null => "an empty key",
                                    other => other.kind_name(),
                                }
                            ),
                        );
                        continue;
                    };
                    let path = join(&additions.path, &key);
                    if let Some(line) = first_line.get(&key) {
                        ctx.on(
                            k,
                            &path,
                            format!("is given twice (first on line {line}); valid: give each setting once"),
                        );
                        continue;
                    }
                    first_line.insert(key.clone(), position(k).0);
                    if def.snake == "gateway" {
                        let slot = match key.as_str() {
                            "httpNodePort" | "http_node_port" => Some(0),
                            "httpsNodePort" | "https_node_port" => Some(1),
                            _ => None,
                        };
                        if let Some(i) = slot {
                            if !v.value.is_null()
                                && let Some(p) = node_port(ctx, v, &path)
                                && let Some(s) = ports.get_mut(i)
                            {
                                *s = Some((p, v, path));
                            }
                            continue;
                        }
                    }
                    let value = match &v.value {
                        Node::Null => Some(String::new()),
                        Node::Seq(_) | Node::Map(_) => None,
                        _ => ctx.text_of(v),
                    };
                    match value {
                        Some(value) => {
                            over.additions.insert(key, value);
                        }
                        None => ctx.on(
                            v,
                            &path,
                            format!(
                                "expected a single value, found {}; valid: a string, number or true/false",
                                v.value.kind_name()
                            ),
                        ),
                    }
                }
            }
        }
    }
    (Some(over), ports)
}
