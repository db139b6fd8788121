//! The cluster's DNS names: `primary_domain` and `argocd_host`.

use super::super::Usage;
use super::super::fields::Ctx;
use super::super::net::{ApiServer, is_dns1123_subdomain, is_ip_address};
use super::super::tree::SNode;
use super::place::Place;

const DOMAIN_VALID: &str =
    "a DNS name of lowercase letters, digits, '-' and dots, such as example.com";
const HOST_VALID: &str = "a DNS name such as argocd.demo.example.com (an http:// or https:// prefix and a trailing / are removed)";

/// `primary_domain`: a DNS name, not an IP address (`<ip>.nip.io` is
/// suggested instead), a trailing dot removed. Defaults to the host of
/// `api_server` (`<ip>.nip.io` for an address).
pub(super) fn primary_domain(
    ctx: &mut Ctx<'_>,
    spec: &Place<'_>,
    api: Option<&ApiServer>,
) -> Option<String> {
    let Some((domain, node)) = spec.text(ctx, "primary_domain", DOMAIN_VALID) else {
        if spec.fields.get("primary_domain").is_none() {
            return api.map(|a| a.host.primary_domain());
        }
        return None;
    };
    let trimmed = domain.strip_suffix('.').unwrap_or(&domain);
    let problem = if is_ip_address(trimmed) {
        format!("is an IP address; valid: {DOMAIN_VALID}, or {trimmed}.nip.io for an address")
    } else if !is_dns1123_subdomain(trimmed) {
        format!("is not a valid DNS name; valid: {DOMAIN_VALID}")
    } else {
        return Some(trimmed.to_owned());
    };
    spec.reject(ctx, "primary_domain", node, &problem);
    None
}

/// `argocd_host`: for workers only (a host cluster gets no Argo CD); a DNS
/// name, not an IP address, lowercased, with an `http://` or `https://`
/// prefix and a trailing `/` removed. Defaults to
/// `argocd.<name>.<primary_domain>`, which must then be short enough.
pub(super) fn argocd_host(
    ctx: &mut Ctx<'_>,
    spec: &Place<'_>,
    usage: Option<Usage>,
    name: Option<&str>,
    primary_domain: Option<&str>,
) -> Option<String> {
    if usage == Some(Usage::Host) {
        spec.forbid(
            ctx,
            "argocd_host",
            "is only for workers (a host cluster gets no Argo CD); valid: leave it out for a host cluster",
        );
        return None;
    }
    let host = match spec.text(ctx, "argocd_host", HOST_VALID) {
        Some((given, node)) => given_argocd_host(ctx, spec, &given, node),
        None if spec.fields.get("argocd_host").is_none() && usage == Some(Usage::Worker) => {
            default_argocd_host(ctx, spec, name?, primary_domain?)
        }
        None => None,
    };
    host.filter(|_| usage == Some(Usage::Worker))
}

/// An `argocd_host` given in the spec, bare: lowercased, without scheme
/// and trailing `/`; a DNS name and not an IP address.
fn given_argocd_host(
    ctx: &mut Ctx<'_>,
    spec: &Place<'_>,
    given: &str,
    node: &SNode,
) -> Option<String> {
    let lower = given.trim().to_ascii_lowercase();
    let bare = lower
        .strip_prefix("https://")
        .or_else(|| lower.strip_prefix("http://"))
        .unwrap_or(&lower);
    let bare = bare.strip_suffix('/').unwrap_or(bare);
    if is_dns1123_subdomain(bare) && !is_ip_address(bare) {
        return Some(bare.to_owned());
    }
    let problem = format!("is not a host name; valid: {HOST_VALID}");
    spec.reject(ctx, "argocd_host", node, &problem);
    None
}

/// The default `argocd.<name>.<primary_domain>`, which must be a DNS name
/// (at most 253 characters).
fn default_argocd_host(
    ctx: &mut Ctx<'_>,
    spec: &Place<'_>,
    name: &str,
    primary_domain: &str,
) -> Option<String> {
    let host = format!("argocd.{name}.{primary_domain}");
    if is_dns1123_subdomain(&host) {
        return Some(host);
    }
    ctx.at(
        spec.missing_at,
        &spec.fields.path("argocd_host"),
        format!(
            "the default argocd.<name>.<primary_domain> is {} characters long; valid: at most 253 characters, or give argocd_host",
            host.len()
        ),
    );
    None
}
