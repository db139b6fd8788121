//! `componentsList`: per component category, the name (only the
//! category's own component), the namespace and extra settings.

use std::collections::BTreeMap;

use super::super::ComponentOverride;
use super::super::fields::{
    Ctx, Entry, FieldDef, Fields, field, field_list, ignored, join, read_fields,
};
use super::super::net::is_dns1123_label;
use super::super::tree::{Node, SNode, position};
use super::super::{ClusterType, Usage, WorkerType};
use super::place::{Place, no_hint, reject, sub_mapping, wrong_type};
use super::ports::{GatewayPorts, node_port};
use super::{NAME_VALID, NOT_RESERVED};
use crate::plan::{self, Catalog, PlanInput, is_reserved_namespace};

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

/// What `componentsList` gives: the overrides keyed by the category in
/// camelCase, the node ports given in the gateway's additions, and where
/// each category's namespace is given (its value and path).
pub(super) struct Components<'a> {
    pub overrides: BTreeMap<String, ComponentOverride>,
    pub gateway_ports: GatewayPorts<'a>,
    pub namespaces: BTreeMap<String, (&'a SNode, String)>,
}

/// `componentsList`: a mapping from a component category to its
/// overrides.
pub(super) fn components_list<'a>(ctx: &mut Ctx<'_>, spec: &Place<'a>) -> Components<'a> {
    let mut out = Components {
        overrides: BTreeMap::new(),
        gateway_ports: [None, None],
        namespaces: BTreeMap::new(),
    };
    let Some(list) = spec.fields.get("components_list") else {
        return out;
    };
    if list.value.value.as_map().is_none() {
        let valid = format!(
            "a mapping from a component category ({}) to its name, namespace and additions",
            field_list(CATEGORIES, true)
        );
        wrong_type(ctx, list, "a mapping", &valid);
        return out;
    }
    let categories = read_fields(ctx, list.value, CATEGORIES, &list.path, true, &no_hint);
    for def in CATEGORIES.iter().filter(|d| !d.ignored) {
        if categories.get(def.snake).is_none() {
            continue;
        }
        let (over, ports, namespace_at) = component(ctx, &categories, def);
        if def.snake == "gateway" {
            out.gateway_ports = ports;
        }
        if let Some(at) = namespace_at {
            out.namespaces.insert(def.camel.to_owned(), at);
        }
        if let Some(over) = over {
            out.overrides.insert(def.camel.to_owned(), over);
        }
    }
    out
}

/// A namespace given in `componentsList` that another component installed
/// into the same cluster takes too (by default or as given): reported at
/// the namespace given. Needs the kind of cluster, which decides the plan.
pub(super) fn shared_namespaces(
    ctx: &mut Ctx<'_>,
    list: &Components<'_>,
    name: Option<&str>,
    kind: Option<(ClusterType, Usage)>,
    worker_type: Option<WorkerType>,
) {
    let (Some((cluster_type, usage)), Ok(catalog)) = (kind, Catalog::builtin()) else {
        return;
    };
    let input = PlanInput {
        name: name.unwrap_or_default(),
        cluster_type,
        usage,
        worker_type,
        components: &list.overrides,
    };
    let stages = plan::stages(&input, &catalog);
    for shared in plan::shared_namespaces(&stages, &list.overrides) {
        if let Some((node, path)) = list.namespaces.get(&shared.category) {
            let problem = format!(
                "is the namespace of {} in the same cluster; valid: a namespace no other component uses",
                shared.other
            );
            reject(ctx, node, path, &problem);
        }
    }
}

/// Where a namespace is given: its value and path.
type At<'a> = (&'a SNode, String);

/// One component category: a mapping of `name`, `namespace` and
/// `additions`. Returns its override, for the gateway the node ports found
/// in its additions, and where a valid namespace was given.
fn component<'a>(
    ctx: &mut Ctx<'_>,
    categories: &Fields<'a>,
    def: &FieldDef,
) -> (Option<ComponentOverride>, GatewayPorts<'a>, Option<At<'a>>) {
    let Some(place) = sub_mapping(ctx, categories, def.snake, COMPONENT) else {
        return (None, [None, None], None);
    };
    let mut over = ComponentOverride {
        name: component_name(ctx, &place, def),
        namespace: component_namespace(ctx, &place),
        additions: BTreeMap::new(),
    };
    let ports = match place.fields.get("additions") {
        Some(entry) => additions(ctx, entry, def.snake == "gateway", &mut over.additions),
        None => [None, None],
    };
    let namespace_at = over
        .namespace
        .as_ref()
        .and(place.fields.get("namespace"))
        .map(|e| (e.value, e.path.clone()));
    (Some(over), ports, namespace_at)
}

/// A component's `name`: only the one supported component of its category.
fn component_name(ctx: &mut Ctx<'_>, place: &Place<'_>, def: &FieldDef) -> Option<String> {
    let expected = COMPONENT_NAMES
        .iter()
        .find(|(c, _)| *c == def.snake)
        .map_or("", |(_, n)| *n);
    let valid = format!("{expected} (the only supported {} component)", def.camel);
    let (name, node) = place.text(ctx, "name", &valid)?;
    if name == expected {
        return Some(name);
    }
    place.reject(
        ctx,
        "name",
        node,
        &format!("is not supported; valid: {valid}"),
    );
    None
}

/// A component's `namespace`: a DNS-1123 label, not a reserved namespace.
fn component_namespace(ctx: &mut Ctx<'_>, place: &Place<'_>) -> Option<String> {
    let (ns, node) = place.text(ctx, "namespace", NAME_VALID)?;
    let problem = if !is_dns1123_label(&ns) {
        format!("is not a valid namespace; valid: {NAME_VALID}")
    } else if is_reserved_namespace(&ns) {
        format!("is reserved; valid: a DNS-1123 label {NOT_RESERVED}")
    } else {
        return Some(ns);
    };
    place.reject(ctx, "namespace", node, &problem);
    None
}

/// A component's `additions`: a mapping from setting names, each given
/// once, to single values (null is the empty string). In the gateway's,
/// `httpNodePort` and `httpsNodePort` are node ports, returned apart.
fn additions<'a>(
    ctx: &mut Ctx<'_>,
    entry: &Entry<'a>,
    gateway: bool,
    settings: &mut BTreeMap<String, String>,
) -> GatewayPorts<'a> {
    let mut ports = [None, None];
    let Some(pairs) = entry.value.value.as_map() else {
        let valid = "a mapping from setting names to single values";
        wrong_type(ctx, entry, "a mapping", valid);
        return ports;
    };
    let mut first_line: BTreeMap<String, u32> = BTreeMap::new();
    for (k, v) in pairs {
        let Some(key) = setting_name(ctx, k, &entry.path) else {
            continue;
        };
        let path = join(&entry.path, &key);
        if let Some(line) = first_line.get(&key) {
            ctx.on(
                k,
                &path,
                format!("is given twice (first on line {line}); valid: give each setting once"),
            );
            continue;
        }
        first_line.insert(key.clone(), position(k).0);
        if gateway && let Some(i) = gateway_port_index(&key) {
            if !v.value.is_null()
                && let Some(p) = node_port(ctx, v, &path)
                && let Some(s) = ports.get_mut(i)
            {
                *s = Some((p, v, path));
            }
            continue;
        }
        if let Some(value) = setting_value(ctx, v, &path) {
            settings.insert(key, value);
        }
    }
    ports
}

/// The key of a setting: a string (or a number or boolean as written),
/// not empty.
fn setting_name(ctx: &mut Ctx<'_>, key: &SNode, additions_path: &str) -> Option<String> {
    if !key.value.is_null()
        && let Some(name) = ctx.text_of(key)
    {
        return Some(name);
    }
    let shown = match &key.value {
        Node::Null => "an empty key",
        other => other.kind_name(),
    };
    ctx.on(
        key,
        additions_path,
        format!("{shown} is not a setting name; valid: a string key"),
    );
    None
}

/// Where a gateway setting is one of Traefik's node ports: 0 for http,
/// 1 for https.
fn gateway_port_index(key: &str) -> Option<usize> {
    match key {
        "httpNodePort" | "http_node_port" => Some(0),
        "httpsNodePort" | "https_node_port" => Some(1),
        _ => None,
    }
}

/// The value of a setting: a single value as text, null as the empty
/// string; lists and mappings are reported.
fn setting_value(ctx: &mut Ctx<'_>, value: &SNode, path: &str) -> Option<String> {
    let text = match &value.value {
        Node::Null => Some(String::new()),
        Node::Seq(_) | Node::Map(_) => None,
        _ => ctx.text_of(value),
    };
    if text.is_none() {
        ctx.on(
            value,
            path,
            format!(
                "expected a single value, found {}; valid: a string, number or true/false",
                value.value.kind_name()
            ),
        );
    }
    text
}
