//! The two forms of the document, and the cluster's name.
//!
//! The flat form holds the cluster's fields at the top level. The upstream
//! form is a Kubernetes resource: `apiVersion` and `kind` must be Nautes'
//! `Cluster`, the name may be in `metadata`, and the cluster's fields are
//! under `spec`. The name may also be given among the cluster's fields and
//! on the command line; wherever it is given it must be the same.

use super::super::fields::{Ctx, Entry, FieldDef, field, ignored, quote, read_fields};
use super::super::net::is_dns1123_label;
use super::super::tree::SNode;
use super::place::{Place, no_hint, reject, sub_mapping, wrong_type};
use super::{NAME_VALID, NOT_RESERVED, SPEC};
use crate::plan::is_reserved_namespace;

const API_VERSION: &str = "nautes.resource.nautes.io/v1alpha1";
const KIND: &str = "Cluster";

/// What is wrong with a cluster name that is a namespace of Kubernetes or
/// of the plugin (a virtual worker's name is its namespace in the host).
fn reserved_name() -> String {
    format!(
        "is reserved (a virtual worker's name is its namespace in the host); valid: a DNS-1123 label {NOT_RESERVED}"
    )
}

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

/// The name given by the document, whether any was given, and where a
/// missing name is reported.
pub(super) struct DocName<'a> {
    value: Option<(String, &'a SNode, String)>,
    seen: bool,
    missing_at: (u32, u32),
    path: String,
}

impl<'a> DocName<'a> {
    /// A name given in the document: a DNS-1123 label, the same as a name
    /// given before in the document.
    fn collect(&mut self, ctx: &mut Ctx<'_>, entry: Option<&Entry<'a>>) {
        let Some(entry) = entry else {
            return;
        };
        self.seen = true;
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
        if is_reserved_namespace(&text) {
            reject(ctx, entry.value, &entry.path, &reserved_name());
            return;
        }
        match &self.value {
            Some((first, _, first_path)) if *first != text => {
                let message = format!(
                    "{} does not match {first_path} {}; valid: the same name in both places, or only one of them",
                    quote(&text),
                    quote(first)
                );
                ctx.on(entry.value, &entry.path, message);
            }
            Some(_) => {}
            None => self.value = Some((text, entry.value, entry.path.clone())),
        }
    }
}

/// Reads the document in its form: the mapping of the cluster's fields
/// (none when the upstream form has no usable `spec`), and the name the
/// document gives.
pub(super) fn read<'a>(ctx: &mut Ctx<'_>, root: &'a SNode) -> (Option<Place<'a>>, DocName<'a>) {
    let mut doc_name = DocName {
        value: None,
        seen: false,
        missing_at: (1, 1),
        path: "name".to_owned(),
    };
    let spec = if is_upstream(root) {
        upstream(ctx, root, &mut doc_name)
    } else {
        Some(Place {
            fields: read_fields(ctx, root, SPEC, "", false, &no_hint),
            missing_at: (1, 1),
        })
    };
    if let Some(spec) = &spec {
        doc_name.seen |= spec.fields.suggested.contains(&"name");
        doc_name.collect(ctx, spec.fields.get("name"));
    }
    (spec, doc_name)
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

/// An unknown top-level key of the upstream form that is a cluster field.
fn belongs_under_spec(key: &str) -> Option<String> {
    SPEC.iter()
        .any(|d| d.snake == key || d.camel == key)
        .then(|| "it belongs under spec".to_owned())
}

/// The upstream form: `apiVersion` and `kind` are required and fixed, the
/// name may be in `metadata`, and `spec` (required) holds the cluster's
/// fields.
fn upstream<'a>(
    ctx: &mut Ctx<'_>,
    root: &'a SNode,
    doc_name: &mut DocName<'a>,
) -> Option<Place<'a>> {
    let top = Place {
        fields: read_fields(ctx, root, TOP_UPSTREAM, "", true, &belongs_under_spec),
        missing_at: (1, 1),
    };
    for (snake, expected) in [("api_version", API_VERSION), ("kind", KIND)] {
        fixed_value(ctx, &top, snake, expected);
    }
    metadata_name(ctx, &top, doc_name);
    if top.fields.get("spec").is_none() {
        top.missing(
            ctx,
            "spec",
            "a mapping with the cluster's fields (apiServer, clusterType, usage, ...)",
        );
        return None;
    }
    sub_mapping(ctx, &top.fields, "spec", SPEC)
}

/// A required field whose only valid value is `expected`.
fn fixed_value(ctx: &mut Ctx<'_>, top: &Place<'_>, snake: &str, expected: &str) {
    match top.text(ctx, snake, expected) {
        Some((value, node)) if value != expected => {
            top.reject(
                ctx,
                snake,
                node,
                &format!("is not valid; valid: {expected}"),
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

/// `metadata`: a mapping; its `name`, when given, names the cluster.
fn metadata_name<'a>(ctx: &mut Ctx<'_>, top: &Place<'a>, doc_name: &mut DocName<'a>) {
    doc_name.path = "metadata.name".to_owned();
    match sub_mapping(ctx, &top.fields, "metadata", METADATA) {
        Some(meta) => {
            doc_name.missing_at = meta.missing_at;
            doc_name.path = meta.fields.path("name");
            // A misspelt name was reported already.
            doc_name.seen |= meta.fields.suggested.contains(&"name");
            doc_name.collect(ctx, meta.fields.get("name"));
        }
        // Metadata of the wrong type was reported already.
        None => doc_name.seen |= top.fields.get("metadata").is_some(),
    }
}

/// The cluster's name: the one given on the command line (a DNS-1123
/// label, which a name in the file must match), else the file's; required
/// in one of the two places.
pub(super) fn name(ctx: &mut Ctx<'_>, arg: Option<&str>, doc: DocName<'_>) -> Option<String> {
    if let Some(arg) = arg {
        return name_from_arg(ctx, arg, &doc);
    }
    if doc.value.is_none() && !doc.seen {
        ctx.at(
            doc.missing_at,
            &doc.path,
            format!("is missing; valid: {NAME_VALID}, given in the file or on the command line"),
        );
    }
    doc.value.map(|(name, _, _)| name)
}

/// The name given on the command line: a DNS-1123 label, the same as the
/// file's name when the file gives one.
fn name_from_arg(ctx: &mut Ctx<'_>, arg: &str, doc: &DocName<'_>) -> Option<String> {
    if !is_dns1123_label(arg) {
        ctx.at(
            (1, 1),
            "name",
            format!(
                "{} (given on the command line) is not a valid name; valid: {NAME_VALID}",
                quote(arg)
            ),
        );
        return None;
    }
    if is_reserved_namespace(arg) {
        let message = format!(
            "{} (given on the command line) {}",
            quote(arg),
            reserved_name()
        );
        ctx.at((1, 1), "name", message);
        return None;
    }
    if let Some((in_file, node, path)) = &doc.value
        && in_file != arg
    {
        ctx.on(
            node,
            path,
            format!(
                "{} does not match the name {} given on the command line; valid: the same name, or no name in the file",
                quote(in_file),
                quote(arg)
            ),
        );
    }
    Some(arg.to_owned())
}
