//! Reading the fields of a mapping: both spellings of every key, repeated
//! keys, unknown keys with suggestions, and the collection of errors.

use super::SpecError;
use super::tree::{Node, SNode, position, scalar_text, source_text};

/// Collects errors while the tree is validated.
pub(crate) struct Ctx<'t> {
    /// The whole document, to recover how scalars were written.
    pub text: &'t str,
    pub errors: Vec<SpecError>,
    /// The kubeconfig's fields that run a command or read a local file.
    pub kubeconfig_access: Vec<super::KubeconfigAccess>,
}

impl<'t> Ctx<'t> {
    pub(crate) fn new(text: &'t str) -> Self {
        Ctx {
            text,
            errors: Vec::new(),
            kubeconfig_access: Vec::new(),
        }
    }

    /// Records an error at a position.
    pub(crate) fn at(&mut self, pos: (u32, u32), path: &str, message: impl Into<String>) {
        self.errors.push(SpecError {
            path: path.to_owned(),
            line: pos.0,
            column: pos.1,
            message: message.into(),
        });
    }

    /// Records an error at a node.
    pub(crate) fn on(&mut self, node: &SNode, path: &str, message: impl Into<String>) {
        self.at(position(node), path, message);
    }

    /// A scalar as text (see [`scalar_text`]).
    pub(crate) fn text_of(&self, node: &SNode) -> Option<String> {
        scalar_text(self.text, node)
    }

    /// A value as shown in a message: strings quoted (and shortened),
    /// numbers as written, collections by their kind.
    pub(crate) fn show(&self, node: &SNode) -> String {
        match &node.value {
            Node::Str(s) => quote(s),
            Node::Int(_) | Node::Float(_) => match source_text(self.text, node) {
                Some(t) => shorten(t),
                None => self.text_of(node).map(|t| shorten(&t)).unwrap_or_default(),
            },
            Node::Bool(b) => b.to_string(),
            Node::Null => "null".to_owned(),
            Node::Seq(_) => "a list".to_owned(),
            Node::Map(_) => "a mapping".to_owned(),
        }
    }
}

const SHOWN_CHARS: usize = 60;

fn shorten(s: &str) -> String {
    if s.chars().count() > SHOWN_CHARS {
        let mut out: String = s.chars().take(SHOWN_CHARS).collect();
        out.push_str("...");
        out
    } else {
        s.to_owned()
    }
}

/// A string in double quotes, escaped, and shortened when long.
pub(crate) fn quote(s: &str) -> String {
    let mut out = String::from("\"");
    for (i, c) in s.chars().enumerate() {
        if i == SHOWN_CHARS {
            out.push_str("...");
            break;
        }
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.extend(c.escape_default()),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// One accepted field of a mapping, in both spellings.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FieldDef {
    pub snake: &'static str,
    pub camel: &'static str,
    /// Accepted for compatibility with upstream Nautes, and not used.
    pub ignored: bool,
}

/// A field whose two spellings are `snake` and `camel`.
pub(crate) const fn field(snake: &'static str, camel: &'static str) -> FieldDef {
    FieldDef {
        snake,
        camel,
        ignored: false,
    }
}

/// A field accepted and not used.
pub(crate) const fn ignored(snake: &'static str, camel: &'static str) -> FieldDef {
    FieldDef {
        snake,
        camel,
        ignored: true,
    }
}

impl FieldDef {
    /// The name in the given style.
    pub(crate) fn spelling(&self, camel: bool) -> &'static str {
        if camel { self.camel } else { self.snake }
    }
}

/// A field found in a mapping.
#[derive(Debug)]
pub(crate) struct Entry<'a> {
    pub key: &'a SNode,
    pub value: &'a SNode,
    /// The key as written.
    pub written: String,
    /// The full path of the field, with the key as written.
    pub path: String,
}

/// The fields found in one mapping.
pub(crate) struct Fields<'a> {
    defs: &'static [FieldDef],
    found: Vec<Option<Entry<'a>>>,
    /// Whether the mapping is written in camelCase (decides how missing
    /// fields are named in messages).
    pub camel: bool,
    prefix: String,
    /// Fields suggested for unknown keys ("did you mean"): a missing field
    /// that was suggested is not reported again as missing.
    pub suggested: Vec<&'static str>,
}

impl<'a> Fields<'a> {
    fn index(&self, snake: &str) -> Option<usize> {
        self.defs.iter().position(|d| d.snake == snake)
    }

    /// The field when it is present, even with a null value.
    pub(crate) fn present(&self, snake: &str) -> Option<&Entry<'a>> {
        self.index(snake)
            .and_then(|i| self.found.get(i))
            .and_then(Option::as_ref)
    }

    /// The field when it is present with a value other than null.
    pub(crate) fn get(&self, snake: &str) -> Option<&Entry<'a>> {
        self.present(snake).filter(|e| !e.value.value.is_null())
    }

    /// The path of a field: as written when present, otherwise spelled in
    /// the mapping's style.
    pub(crate) fn path(&self, snake: &str) -> String {
        if let Some(e) = self.present(snake) {
            return e.path.clone();
        }
        let name = self
            .index(snake)
            .and_then(|i| self.defs.get(i))
            .map_or(snake, |d| d.spelling(self.camel));
        join(&self.prefix, name)
    }

    /// A field's name as written, or in the mapping's style.
    pub(crate) fn name(&self, snake: &str) -> String {
        if let Some(e) = self.present(snake) {
            return e.written.clone();
        }
        self.index(snake)
            .and_then(|i| self.defs.get(i))
            .map_or(snake, |d| d.spelling(self.camel))
            .to_owned()
    }
}

/// `prefix.name`, or `name` at the top level.
pub(crate) fn join(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_owned()
    } else {
        format!("{prefix}.{name}")
    }
}

/// The valid field names of a mapping, for messages.
pub(crate) fn field_list(defs: &[FieldDef], camel: bool) -> String {
    defs.iter()
        .filter(|d| !d.ignored)
        .map(|d| d.spelling(camel))
        .collect::<Vec<_>>()
        .join(", ")
}

fn normalize(s: &str) -> String {
    s.chars()
        .filter(|c| *c != '_' && *c != '-')
        .flat_map(char::to_lowercase)
        .collect()
}

/// Levenshtein distance between two short strings.
fn distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.iter().enumerate() {
        if let Some(first) = cur.first_mut() {
            *first = i + 1;
        }
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != cb);
            let del = prev
                .get(j + 1)
                .copied()
                .unwrap_or(usize::MAX)
                .saturating_add(1);
            let ins = cur.get(j).copied().unwrap_or(usize::MAX).saturating_add(1);
            let sub = prev
                .get(j)
                .copied()
                .unwrap_or(usize::MAX)
                .saturating_add(cost);
            if let Some(slot) = cur.get_mut(j + 1) {
                *slot = del.min(ins).min(sub);
            }
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev.last().copied().unwrap_or(usize::MAX)
}

/// The closest accepted name to an unknown key, spelled in the key's style.
pub(crate) fn suggest(key: &str, defs: &[FieldDef]) -> Option<&'static str> {
    if key.chars().count() > 64 {
        return None;
    }
    let wanted = normalize(key);
    let camel_style =
        key.chars().any(|c| c.is_ascii_uppercase()) && key.chars().any(|c| c.is_ascii_lowercase());
    // Accepted-but-ignored fields are suggested too: a misspelt "lables"
    // in metadata means "labels".
    defs.iter()
        .filter_map(|d| {
            let target = normalize(d.snake);
            let limit = (target.chars().count() / 3).max(1);
            let dist = distance(&wanted, &target);
            (dist <= limit).then_some((dist, d))
        })
        .min_by_key(|(dist, _)| *dist)
        .map(|(_, d)| d.spelling(camel_style))
}

/// Reads the fields of the mapping `map` (whose path is `prefix`) against
/// `defs`. Reports keys that are not names, keys given twice (in the same
/// or the other spelling) and unknown keys; `hint` may explain an unknown
/// key instead of the usual suggestion.
pub(crate) fn read_fields<'a>(
    ctx: &mut Ctx<'_>,
    map: &'a SNode,
    defs: &'static [FieldDef],
    prefix: &str,
    default_camel: bool,
    hint: &dyn Fn(&str) -> Option<String>,
) -> Fields<'a> {
    let entries: &[(SNode, SNode)] = map.value.as_map().unwrap_or(&[]);
    let mut camel_votes = 0usize;
    let mut snake_votes = 0usize;
    for (k, _) in entries {
        if let Some(name) = k.value.as_str() {
            for d in defs.iter().filter(|d| d.snake != d.camel) {
                if name == d.camel {
                    camel_votes += 1;
                } else if name == d.snake {
                    snake_votes += 1;
                }
            }
        }
    }
    let camel = match camel_votes.cmp(&snake_votes) {
        std::cmp::Ordering::Greater => true,
        std::cmp::Ordering::Less => false,
        std::cmp::Ordering::Equal => default_camel,
    };
    let mut fields = Fields {
        defs,
        found: defs.iter().map(|_| None).collect(),
        camel,
        prefix: prefix.to_owned(),
        suggested: Vec::new(),
    };
    for (key, value) in entries {
        let Some(written) = (match &key.value {
            Node::Null => None,
            _ => ctx.text_of(key),
        }) else {
            let shown = match &key.value {
                Node::Null => "an empty key".to_owned(),
                other => other.kind_name().to_owned(),
            };
            let where_ = if prefix.is_empty() {
                "(document)"
            } else {
                prefix
            };
            ctx.on(
                key,
                where_,
                format!(
                    "{shown} is not a field name; valid: {}",
                    field_list(defs, camel)
                ),
            );
            continue;
        };
        let path = join(prefix, &written);
        let Some(index) = defs
            .iter()
            .position(|d| d.snake == written || d.camel == written)
        else {
            let message = if let Some(h) = hint(&written) {
                format!("unknown field {}; {h}", quote(&written))
            } else if let Some(s) = suggest(&written, defs) {
                if let Some(d) = defs.iter().find(|d| d.snake == s || d.camel == s) {
                    fields.suggested.push(d.snake);
                }
                format!("unknown field {}; did you mean \"{s}\"?", quote(&written))
            } else {
                format!(
                    "unknown field {}; valid: {}",
                    quote(&written),
                    field_list(defs, camel)
                )
            };
            ctx.on(key, &path, message);
            continue;
        };
        match fields.found.get(index).and_then(Option::as_ref) {
            Some(first) => {
                let line = position(first.key).0;
                let message = if first.written == written {
                    format!("is given twice (first on line {line}); valid: give each field once")
                } else {
                    format!(
                        "{} and {} (line {line}) are the same field; valid: give only one of them",
                        quote(&written),
                        quote(&first.written)
                    )
                };
                ctx.on(key, &path, message);
            }
            None => {
                if let Some(slot) = fields.found.get_mut(index) {
                    *slot = Some(Entry {
                        key,
                        value,
                        written,
                        path,
                    });
                }
            }
        }
    }
    fields
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEFS: &[FieldDef] = &[
        field("api_server", "apiServer"),
        field("host_cluster", "hostCluster"),
        field("usage", "usage"),
    ];

    #[test]
    fn suggestions() {
        assert_eq!(suggest("api_sever", DEFS), Some("api_server"));
        assert_eq!(suggest("apiSever", DEFS), Some("apiServer"));
        assert_eq!(suggest("API_SERVER", DEFS), Some("api_server"));
        assert_eq!(suggest("api-server", DEFS), Some("api_server"));
        assert_eq!(suggest("hostclustr", DEFS), Some("host_cluster"));
        assert_eq!(suggest("usages", DEFS), Some("usage"));
        assert_eq!(suggest("color", DEFS), None);
        assert_eq!(suggest(&"x".repeat(100), DEFS), None);
    }

    #[test]
    fn distances() {
        assert_eq!(distance("", ""), 0);
        assert_eq!(distance("abc", ""), 3);
        assert_eq!(distance("kitten", "sitting"), 3);
    }

    #[test]
    fn quoting() {
        assert_eq!(quote("a\"b\n"), "\"a\\\"b\\n\"");
        assert_eq!(quote(&"y".repeat(100)).chars().count(), 60 + 5);
    }
}
