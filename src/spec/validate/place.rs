//! Readers shared by the rules: a mapping's fields with where its missing
//! fields are reported, a required field, a string, one of a fixed set of
//! values, a field that must not be given, and a nested mapping.

use super::super::fields::{Ctx, Entry, FieldDef, Fields, field_list, read_fields};
use super::super::tree::{SNode, position};

/// No explanation for unknown keys beyond the usual suggestion.
pub(super) fn no_hint(_: &str) -> Option<String> {
    None
}

/// Reports a value of the wrong type.
pub(super) fn wrong_type(ctx: &mut Ctx<'_>, entry: &Entry<'_>, expected: &str, valid: &str) {
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
pub(super) struct Place<'a> {
    pub fields: Fields<'a>,
    pub missing_at: (u32, u32),
}

impl Place<'_> {
    /// Reports a required field that is absent (at the mapping) or null (at
    /// its key).
    pub(super) fn missing(&self, ctx: &mut Ctx<'_>, snake: &str, valid: &str) {
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
    pub(super) fn text(
        &self,
        ctx: &mut Ctx<'_>,
        snake: &str,
        valid: &str,
    ) -> Option<(String, &SNode)> {
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
    pub(super) fn choice<T: Copy>(
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

    /// Reports the value of a field (see [`reject`]).
    pub(super) fn reject(&self, ctx: &mut Ctx<'_>, snake: &str, node: &SNode, problem: &str) {
        reject(ctx, node, &self.fields.path(snake), problem);
    }

    /// Reports a field that must not be given here.
    pub(super) fn forbid(&self, ctx: &mut Ctx<'_>, snake: &str, why: &str) {
        if let Some(e) = self.fields.get(snake) {
            ctx.on(e.key, &e.path, why.to_owned());
        }
    }
}

/// Reports a value, as shown in messages, and what is wrong with it
/// (`problem` ends with what would be valid).
pub(super) fn reject(ctx: &mut Ctx<'_>, node: &SNode, path: &str, problem: &str) {
    let shown = ctx.show(node);
    ctx.on(node, path, format!("{shown} {problem}"));
}

/// Reads a nested mapping field; reports other types.
pub(super) fn sub_mapping<'a>(
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
