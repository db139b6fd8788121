//! How the plugin reaches the cluster: `api_server` and `kubeconfig`.

use super::super::ClusterType;
use super::super::fields::{Ctx, quote};
use super::super::kubeconfig;
use super::super::net::{ApiServer, parse_api_server};
use super::place::Place;
use super::{is_physical, is_virtual};

const URL_VALID: &str =
    "an http or https URL with a host and an optional port, such as https://10.0.0.5:6443";

/// `api_server`: required; an http or https URL with a host, an optional
/// port and no path. The value is not repeated in the message when it may
/// carry a secret (see `parse_api_server`).
pub(super) fn api_server(ctx: &mut Ctx<'_>, spec: &Place<'_>) -> Option<ApiServer> {
    let f = &spec.fields;
    let Some((text, node)) = spec.text(ctx, "api_server", URL_VALID) else {
        if f.get("api_server").is_none() {
            spec.missing(ctx, "api_server", URL_VALID);
        }
        return None;
    };
    match parse_api_server(&text) {
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
    }
}

/// `kubeconfig`: required for a physical cluster, refused for a virtual
/// one (its kubeconfig comes from its vcluster); checked when the type is
/// not known. Kept with the server of every cluster in it replaced by
/// `api_server`.
pub(super) fn kubeconfig(
    ctx: &mut Ctx<'_>,
    spec: &Place<'_>,
    cluster_type: Option<ClusterType>,
    api_server: Option<&str>,
) -> Option<String> {
    if is_virtual(cluster_type) {
        spec.forbid(
            ctx,
            "kubeconfig",
            "is not accepted for a virtual cluster: its kubeconfig comes from its vcluster; valid: leave it out",
        );
        return None;
    }
    let Some(e) = spec.fields.get("kubeconfig") else {
        if is_physical(cluster_type) {
            spec.missing(
                ctx,
                "kubeconfig",
                &format!("{}, required for a physical cluster", kubeconfig::VALID),
            );
        }
        return None;
    };
    let path = spec.fields.path("kubeconfig");
    match kubeconfig::decode(ctx, e.value, &path) {
        Ok(config) => api_server
            .filter(|_| is_physical(cluster_type))
            .map(|server| kubeconfig::rewrite(&config, server)),
        Err(problem) => {
            problem.report(ctx, e.value, &path);
            None
        }
    }
}

/// `insecure_skip_check` (upstream's name): whether Argo CD may connect to
/// the cluster without verifying its certificate. A boolean, false when
/// absent; the user's own `--insecure-skip-tls-verify` never sets it.
pub(super) fn insecure_skip_check(ctx: &mut Ctx<'_>, spec: &Place<'_>) -> bool {
    let Some(entry) = spec.fields.get("insecure_skip_check") else {
        return false;
    };
    match entry.value.value {
        super::super::tree::Node::Bool(b) => b,
        _ => {
            super::place::wrong_type(ctx, entry, "true or false", "true or false");
            false
        }
    }
}
