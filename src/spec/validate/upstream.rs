//! Upstream Nautes fields that the plugin keeps in the registration record
//! and answers with (`GET /api/v1/clusters/{name}`), without using them
//! itself: `tekton_host`, `reserved_namespaces_allowed_products` and
//! `product_allowed_cluster_resources`.

use std::collections::BTreeMap;

use super::super::fields::{Ctx, join};
use super::super::tree::SNode;
use super::place::{Place, wrong_type};
use crate::spec::ClusterResource;

/// `tekton_host`: a string.
pub(super) fn tekton_host(ctx: &mut Ctx<'_>, spec: &Place<'_>) -> Option<String> {
    spec.text(ctx, "tekton_host", "a host name such as tekton.example.com")
        .map(|(t, _)| t)
}

/// A string item of a list, or an error at it.
fn text_item(ctx: &mut Ctx<'_>, node: &SNode, path: &str, valid: &str) -> Option<String> {
    match &node.value {
        super::super::tree::Node::Str(s) if !s.is_empty() => Some(s.clone()),
        other => {
            ctx.on(
                node,
                path,
                format!(
                    "expected a string, found {}; valid: {valid}",
                    other.kind_name()
                ),
            );
            None
        }
    }
}

/// `reserved_namespaces_allowed_products`: namespace -> product names.
pub(super) fn reserved_namespaces(
    ctx: &mut Ctx<'_>,
    spec: &Place<'_>,
) -> BTreeMap<String, Vec<String>> {
    let mut out = BTreeMap::new();
    let Some(entry) = spec.fields.get("reserved_namespaces_allowed_products") else {
        return out;
    };
    let valid = "a mapping from namespace names to lists of product names";
    let Some(pairs) = entry.value.value.as_map() else {
        wrong_type(ctx, entry, "a mapping", valid);
        return out;
    };
    for (k, v) in pairs {
        let Some(ns) = text_item(ctx, k, &entry.path, valid) else {
            continue;
        };
        let path = join(&entry.path, &ns);
        let Some(items) = v.value.as_seq() else {
            ctx.on(
                v,
                &path,
                format!(
                    "expected a list, found {}; valid: a list of product names",
                    v.value.kind_name()
                ),
            );
            continue;
        };
        let products = items
            .iter()
            .enumerate()
            .filter_map(|(i, item)| text_item(ctx, item, &format!("{path}[{i}]"), "a product name"))
            .collect();
        out.insert(ns, products);
    }
    out
}

/// `product_allowed_cluster_resources`: product -> [{kind, group}].
pub(super) fn product_resources(
    ctx: &mut Ctx<'_>,
    spec: &Place<'_>,
) -> BTreeMap<String, Vec<ClusterResource>> {
    let mut out = BTreeMap::new();
    let Some(entry) = spec.fields.get("product_allowed_cluster_resources") else {
        return out;
    };
    let valid = "a mapping from product names to lists of {kind, group}";
    let Some(pairs) = entry.value.value.as_map() else {
        wrong_type(ctx, entry, "a mapping", valid);
        return out;
    };
    let item_valid = "a mapping with kind and group, such as {kind: ClusterRole, group: rbac.authorization.k8s.io}";
    for (k, v) in pairs {
        let Some(product) = text_item(ctx, k, &entry.path, valid) else {
            continue;
        };
        let path = join(&entry.path, &product);
        let Some(items) = v.value.as_seq() else {
            ctx.on(
                v,
                &path,
                format!(
                    "expected a list, found {}; valid: a list of {item_valid}",
                    v.value.kind_name()
                ),
            );
            continue;
        };
        let mut resources = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let at = format!("{path}[{i}]");
            let Some(fields) = item.value.as_map() else {
                ctx.on(
                    item,
                    &at,
                    format!(
                        "expected a mapping, found {}; valid: {item_valid}",
                        item.value.kind_name()
                    ),
                );
                continue;
            };
            let mut kind = None;
            let mut group = None;
            for (fk, fv) in fields {
                match fk.value.as_str() {
                    Some("kind") => {
                        kind = text_item(ctx, fv, &join(&at, "kind"), "a kind such as ClusterRole")
                    }
                    // the core group is the empty string
                    Some("group") => {
                        group = match &fv.value {
                            super::super::tree::Node::Str(s) => Some(s.clone()),
                            super::super::tree::Node::Null => Some(String::new()),
                            other => {
                                ctx.on(
                                    fv,
                                    &join(&at, "group"),
                                    format!("expected a string, found {}; valid: an API group (\"\" for the core group)", other.kind_name()),
                                );
                                None
                            }
                        }
                    }
                    _ => ctx.on(
                        fk,
                        &at,
                        format!("{} is not a field here; valid: {item_valid}", ctx.show(fk)),
                    ),
                }
            }
            match (kind, group) {
                (Some(kind), Some(group)) => resources.push(ClusterResource { kind, group }),
                (None, _) if !fields.iter().any(|(k, _)| k.value.as_str() == Some("kind")) => ctx
                    .on(
                        item,
                        &join(&at, "kind"),
                        format!("is missing; valid: {item_valid}"),
                    ),
                (_, None)
                    if !fields
                        .iter()
                        .any(|(k, _)| k.value.as_str() == Some("group")) =>
                {
                    ctx.on(
                        item,
                        &join(&at, "group"),
                        format!("is missing; valid: {item_valid}"),
                    )
                }
                _ => {}
            }
        }
        out.insert(product, resources);
    }
    out
}
