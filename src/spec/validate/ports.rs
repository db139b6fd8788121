//! Node ports: `traefik` of a physical cluster (or its gateway's
//! additions), `vcluster` of a virtual one.

use super::super::fields::{Ctx, FieldDef, field, join};
use super::super::net::{ApiServer, is_dns1123_subdomain};
use super::super::tree::{Node, SNode, position};
use super::super::{ClusterType, NodePorts, VclusterSpec};
use super::place::{Place, reject, sub_mapping};
use super::{is_physical, is_virtual};

const PORT_VALID: &str = "a whole number from 30000 to 32767";
const NODE_PORTS: std::ops::RangeInclusive<i128> = 30000..=32767;
const DEFAULT_HTTP_NODE_PORT: u16 = 30080;
const DEFAULT_HTTPS_NODE_PORT: u16 = 30443;

const HTTPS_NODE_PORT: FieldDef = field("https_node_port", "httpsNodePort");
static TRAEFIK: [FieldDef; 2] = [field("http_node_port", "httpNodePort"), HTTPS_NODE_PORT];
const STORAGE_CLASS: FieldDef = field("storage_class", "storageClass");
static VCLUSTER: &[FieldDef] = &[HTTPS_NODE_PORT, STORAGE_CLASS];
const STORAGE_CLASS_VALID: &str = "the name of a StorageClass of the host (a DNS-1123 subdomain: lowercase letters, digits, '-' and '.'), or leave it out for the host's default StorageClass";

/// A node port as given: its value, its node and its path.
pub(super) type PortAt<'a> = (u16, &'a SNode, String);

/// The http and https node ports given in the gateway's additions.
pub(super) type GatewayPorts<'a> = [Option<PortAt<'a>>; 2];

/// One of Traefik's node ports: as given, and the path it has (or would
/// have) in `traefik`.
pub(super) struct TraefikPort<'a> {
    port: Option<PortAt<'a>>,
    path: String,
}

/// `traefik`: refused for a virtual cluster (it uses the Traefik of its
/// host); a mapping of `http_node_port` and `https_node_port`, each a node
/// port. Returns both ports, http first.
pub(super) fn traefik<'a>(
    ctx: &mut Ctx<'_>,
    spec: &Place<'a>,
    cluster_type: Option<ClusterType>,
) -> [TraefikPort<'a>; 2] {
    let place = if is_virtual(cluster_type) {
        spec.forbid(
            ctx,
            "traefik",
            "is not used by a virtual cluster (it uses the Traefik of its host); valid: leave it out for a virtual cluster",
        );
        None
    } else {
        sub_mapping(ctx, &spec.fields, "traefik", &TRAEFIK)
    };
    TRAEFIK.each_ref().map(|def| {
        let Some(t) = &place else {
            let path = join(
                &spec.fields.path("traefik"),
                def.spelling(spec.fields.camel),
            );
            return TraefikPort { port: None, path };
        };
        let port = t
            .fields
            .get(def.snake)
            .and_then(|e| node_port(ctx, e.value, &e.path).map(|p| (p, e.value, e.path.clone())));
        TraefikPort {
            port,
            path: t.fields.path(def.snake),
        }
    })
}

/// `vcluster`: refused for a physical cluster (its node ports are set in
/// traefik); its `https_node_port` is a node port, by default the port of
/// `api_server`.
pub(super) fn vcluster(
    ctx: &mut Ctx<'_>,
    spec: &Place<'_>,
    cluster_type: Option<ClusterType>,
    api: Option<&ApiServer>,
) -> Option<VclusterSpec> {
    if is_physical(cluster_type) {
        spec.forbid(
            ctx,
            "vcluster",
            "is only for virtual clusters; valid: leave it out for a physical cluster (its node ports are set in traefik)",
        );
        return None;
    }
    let place = sub_mapping(ctx, &spec.fields, "vcluster", VCLUSTER);
    let wrong_type_reported = spec.fields.get("vcluster").is_some() && place.is_none();
    let port = match place.as_ref().and_then(|v| v.fields.get("https_node_port")) {
        Some(e) => node_port(ctx, e.value, &e.path),
        None if is_virtual(cluster_type) && !wrong_type_reported => {
            default_vcluster_port(ctx, spec, place.as_ref(), api?)
        }
        None => None,
    };
    let storage_class = place.as_ref().and_then(|v| storage_class(ctx, v));
    port.filter(|_| is_virtual(cluster_type))
        .map(|https_node_port| VclusterSpec {
            https_node_port,
            storage_class,
        })
}

/// `vcluster.storage_class`: the name of a StorageClass of the host, for
/// the claim of the vcluster's data.
fn storage_class(ctx: &mut Ctx<'_>, vcluster: &Place<'_>) -> Option<String> {
    let (name, node) = vcluster.text(ctx, "storage_class", STORAGE_CLASS_VALID)?;
    if is_dns1123_subdomain(&name) {
        return Some(name);
    }
    let problem = if name.is_empty() {
        format!("is empty; valid: {STORAGE_CLASS_VALID}")
    } else {
        format!("is not a valid StorageClass name; valid: {STORAGE_CLASS_VALID}")
    };
    vcluster.reject(ctx, "storage_class", node, &problem);
    None
}

/// The default `vcluster.https_node_port`: the port of `api_server`, which
/// must then be a node port.
fn default_vcluster_port(
    ctx: &mut Ctx<'_>,
    spec: &Place<'_>,
    vcluster: Option<&Place<'_>>,
    api: &ApiServer,
) -> Option<u16> {
    let port = api.effective_port();
    if NODE_PORTS.contains(&i128::from(port)) {
        return Some(port);
    }
    let f = &spec.fields;
    let (at, path) = match vcluster {
        Some(v) => (v.missing_at, v.fields.path("https_node_port")),
        None => (
            f.get("api_server")
                .map_or(spec.missing_at, |e| position(e.value)),
            join(&f.path("vcluster"), HTTPS_NODE_PORT.spelling(f.camel)),
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
    None
}

/// The node ports of a physical cluster: traefik's, else the gateway's
/// additions (upstream's way; they must agree when both are given), else
/// 30080 and 30443. The two must differ.
pub(super) fn physical_node_ports<'a>(
    ctx: &mut Ctx<'_>,
    spec: &Place<'_>,
    cluster_type: Option<ClusterType>,
    traefik: [TraefikPort<'a>; 2],
    gateway: GatewayPorts<'a>,
) -> Option<NodePorts> {
    if !is_physical(cluster_type) {
        return None;
    }
    let [http, https] = traefik;
    let [g_http, g_https] = gateway;
    let http = TraefikPort {
        port: merge_port(ctx, http.port, g_http, &http.path),
        path: http.path,
    };
    let https = TraefikPort {
        port: merge_port(ctx, https.port, g_https, &https.path),
        path: https.path,
    };
    let http_port = http.port.as_ref().map_or(DEFAULT_HTTP_NODE_PORT, |p| p.0);
    let https_port = https.port.as_ref().map_or(DEFAULT_HTTPS_NODE_PORT, |p| p.0);
    if http_port == https_port {
        same_ports(ctx, spec, https_port, &http, &https);
        return None;
    }
    Some(NodePorts {
        http_node_port: http_port,
        https_node_port: https_port,
    })
}

/// Reports two node ports that are the same: at the https port when it
/// was given, else at the http port.
fn same_ports(
    ctx: &mut Ctx<'_>,
    spec: &Place<'_>,
    port: u16,
    http: &TraefikPort<'_>,
    https: &TraefikPort<'_>,
) {
    let (blamed, other_path, other_given) = match &https.port {
        Some(b) => (Some(b), &http.path, http.port.is_some()),
        None => (http.port.as_ref(), &https.path, false),
    };
    let other = if other_given {
        other_path.clone()
    } else {
        format!("{other_path} (by default)")
    };
    let message = format!(
        "{port} is also the port of {other}; valid: two different node ports, each {PORT_VALID}"
    );
    match blamed {
        Some((_, node, path)) => ctx.on(node, path, message),
        None => ctx.at(spec.missing_at, &https.path, message),
    }
}

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

/// A node port: a whole number (or a string of one) in 30000-32767.
pub(super) fn node_port(ctx: &mut Ctx<'_>, node: &SNode, path: &str) -> Option<u16> {
    let number = whole_number(ctx, node, path)?;
    if NODE_PORTS.contains(&number) {
        return u16::try_from(number).ok();
    }
    reject(
        ctx,
        node,
        path,
        &format!("is out of range; valid: {PORT_VALID}"),
    );
    None
}

/// A node port's value as a whole number: an integer, or a string of one.
fn whole_number(ctx: &mut Ctx<'_>, node: &SNode, path: &str) -> Option<i128> {
    let problem = match &node.value {
        Node::Int(i) => return Some(*i),
        Node::Str(s) => match s.trim().parse::<i128>() {
            Ok(i) => return Some(i),
            Err(_) if s.trim().parse::<f64>().is_ok() => "is not a whole number",
            Err(_) => "is not a number",
        },
        Node::Float(_) => "is not a whole number",
        other => {
            let message = format!(
                "expected a number, found {}; valid: {PORT_VALID}",
                other.kind_name()
            );
            ctx.on(node, path, message);
            return None;
        }
    };
    reject(ctx, node, path, &format!("{problem}; valid: {PORT_VALID}"));
    None
}
