//! A generic YAML tree in which every node carries its source location.
//!
//! The document is deserialized with serde-saphyr into [`SNode`]s through a
//! custom visitor (`deserialize_any`), so that validation can walk the tree and
//! report the line and column of every problem. JSON is a subset of YAML, so
//! the same loader serves both.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::budget::BudgetBreach;
use serde_saphyr::{DuplicateKeyPolicy, NonFiniteFloatPolicy, Spanned};

/// Largest text loaded, in bytes: the limit of a spec (see
/// `spec::MAX_SPEC_BYTES`, checked before with its own message); a
/// kubeconfig inside a spec is smaller still.
pub(crate) const MAX_INPUT_BYTES: usize = super::MAX_SPEC_BYTES;

/// Most values (scalars, mappings, lists) in one text.
pub(crate) const MAX_NODES: usize = 100_000;

/// Most bytes in all the scalars of one text, aliases counted at each use.
pub(crate) const MAX_SCALAR_BYTES: usize = 2 * MAX_INPUT_BYTES;

/// Most YAML aliases (`*name`) accepted in one text. A cluster spec needs
/// none; a handful of anchors for repeated settings stays far below.
pub(crate) const MAX_ALIASES: usize = 100;

/// Most nodes that the expansion of aliases may add in one text: this bounds
/// the work of an alias bomb ("billion laughs") by construction.
pub(crate) const MAX_ALIAS_NODES: usize = 10_000;

/// Deepest nesting of aliases inside anchored values that are themselves
/// expanded through aliases.
pub(crate) const MAX_ALIAS_NESTING: usize = 16;

/// Deepest nesting of mappings and sequences accepted. The deepest legitimate
/// structure (an inline kubeconfig with exec environment entries inside the
/// upstream form) needs about ten levels.
pub(crate) const MAX_DEPTH: usize = 20;

/// A node of the generic tree.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Node {
    Null,
    Bool(bool),
    Int(i128),
    Float(f64),
    Str(String),
    Seq(Vec<SNode>),
    Map(Vec<(SNode, SNode)>),
}

/// A node together with where it was written.
pub(crate) type SNode = Spanned<Node>;

impl Node {
    /// How the node's type is named in messages ("found a list").
    pub(crate) fn kind_name(&self) -> &'static str {
        match self {
            Node::Null => "nothing (null)",
            Node::Bool(_) => "true/false",
            Node::Int(_) | Node::Float(_) => "a number",
            Node::Str(_) => "a string",
            Node::Seq(_) => "a list",
            Node::Map(_) => "a mapping",
        }
    }

    pub(crate) fn as_map(&self) -> Option<&[(SNode, SNode)]> {
        match self {
            Node::Map(entries) => Some(entries),
            _ => None,
        }
    }

    pub(crate) fn as_seq(&self) -> Option<&[SNode]> {
        match self {
            Node::Seq(items) => Some(items),
            _ => None,
        }
    }

    pub(crate) fn as_str(&self) -> Option<&str> {
        match self {
            Node::Str(s) => Some(s),
            _ => None,
        }
    }

    pub(crate) fn is_null(&self) -> bool {
        matches!(self, Node::Null)
    }

    /// The value of a key in a mapping whose keys are compared as strings.
    pub(crate) fn get(&self, key: &str) -> Option<&SNode> {
        self.as_map()?
            .iter()
            .rev()
            .find(|(k, _)| k.value.as_str() == Some(key))
            .map(|(_, v)| v)
    }
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(NodeVisitor)
    }
}

struct NodeVisitor;

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = Node;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any YAML value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Node, E> {
        Ok(Node::Bool(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Node, E> {
        Ok(Node::Int(i128::from(v)))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Node, E> {
        Ok(Node::Int(i128::from(v)))
    }

    fn visit_i128<E: de::Error>(self, v: i128) -> Result<Node, E> {
        Ok(Node::Int(v))
    }

    fn visit_u128<E: de::Error>(self, v: u128) -> Result<Node, E> {
        Ok(match i128::try_from(v) {
            Ok(i) => Node::Int(i),
            Err(_) => Node::Str(v.to_string()),
        })
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Node, E> {
        Ok(Node::Float(v))
    }

    fn visit_char<E: de::Error>(self, v: char) -> Result<Node, E> {
        Ok(Node::Str(v.to_string()))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Node, E> {
        Ok(Node::Str(v.to_owned()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Node, E> {
        Ok(Node::Str(v))
    }

    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Node, E> {
        Ok(Node::Str(String::from_utf8_lossy(v).into_owned()))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Node, E> {
        Ok(Node::Null)
    }

    fn visit_none<E: de::Error>(self) -> Result<Node, E> {
        Ok(Node::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Node, D::Error> {
        Node::deserialize(deserializer)
    }

    fn visit_newtype_struct<D: Deserializer<'de>>(self, deserializer: D) -> Result<Node, D::Error> {
        Node::deserialize(deserializer)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<SNode>()? {
            items.push(item);
        }
        Ok(Node::Seq(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
        let mut entries = Vec::new();
        while let Some(key) = map.next_key::<SNode>()? {
            let value = map.next_value::<SNode>()?;
            entries.push((key, value));
        }
        Ok(Node::Map(entries))
    }
}

/// Why a text could not be loaded as YAML.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LoadError {
    pub line: u32,
    pub column: u32,
    pub message: String,
    /// A limit was hit (size, nesting, aliases), not a syntax error.
    pub limit: bool,
}

fn parser_options() -> serde_saphyr::Options {
    serde_saphyr::options! {
        budget: serde_saphyr::budget! {
            max_depth: MAX_DEPTH,
            max_events: 2 * MAX_NODES,
            max_nodes: MAX_NODES,
            max_aliases: MAX_ALIASES,
            max_anchors: MAX_ALIASES,
            max_documents: 64,
            max_total_scalar_bytes: MAX_SCALAR_BYTES,
            max_merge_keys: 1_000,
        },
        alias_limits: serde_saphyr::alias_limits! {
            max_total_replayed_events: MAX_ALIAS_NODES,
            max_replay_stack_depth: MAX_ALIAS_NESTING,
        },
        // Only true/false are booleans, so that a name such as "no" or "on"
        // stays a string.
        strict_booleans: true,
        // Repeated keys reach the visitor; validation reports them with its
        // own message.
        duplicate_keys: DuplicateKeyPolicy::PassThrough,
        non_finite_float_policy: NonFiniteFloatPolicy::AsString,
        with_snippet: false,
    }
}

fn describe_breach(breach: &BudgetBreach) -> String {
    match breach {
        BudgetBreach::Depth { .. } => format!(
            "is nested deeper than {MAX_DEPTH} levels, the limit; valid: at most {MAX_DEPTH} levels of nested mappings and lists"
        ),
        BudgetBreach::Documents { .. } => {
            "holds too many YAML documents; valid: exactly one cluster spec per file".to_owned()
        }
        BudgetBreach::Aliases { .. } => format!(
            "uses more than {MAX_ALIASES} YAML aliases (*name), the limit; valid: at most {MAX_ALIASES}"
        ),
        BudgetBreach::Anchors { .. } => format!(
            "defines more than {MAX_ALIASES} YAML anchors (&name), the limit; valid: at most {MAX_ALIASES}"
        ),
        BudgetBreach::ScalarBytes { .. } => format!(
            "holds more than {} MiB of text in its values (a value repeated through aliases counts at each use), the limit; valid: at most {} MiB",
            MAX_SCALAR_BYTES / (1024 * 1024),
            MAX_SCALAR_BYTES / (1024 * 1024)
        ),
        BudgetBreach::Nodes { .. } | BudgetBreach::Events { .. } => format!(
            "has more than {MAX_NODES} values, the limit; valid: a cluster spec of at most {MAX_NODES} values"
        ),
        _ => "is too large, a limit of the YAML parser; valid: a cluster spec of ordinary size and nesting".to_owned(),
    }
}

/// The message when the expansion of aliases hits a limit.
fn alias_expansion_message() -> String {
    format!(
        "expands YAML aliases to more than {MAX_ALIAS_NODES} nodes (or nests them deeper than {MAX_ALIAS_NESTING}), the limit; valid: aliases that expand to at most {MAX_ALIAS_NODES} nodes in all"
    )
}

/// The error inside serde-saphyr's wrappers (snippet, alias locations).
fn original_error(mut err: &serde_saphyr::Error) -> &serde_saphyr::Error {
    while let serde_saphyr::Error::AliasError { error, .. }
    | serde_saphyr::Error::WithSnippet { error, .. } = err
    {
        err = error;
    }
    err
}

/// Strips serde-saphyr's " at line L, column C" suffix: the location is
/// reported separately.
fn bare_message(err: &serde_saphyr::Error, line: u64, column: u64) -> String {
    let text = err.without_snippet().to_string();
    let suffix = format!(" at line {line}, column {column}");
    let text = match text.find(&suffix) {
        Some(at) => text[..at].to_owned(),
        None => text,
    };
    let text = text.trim();
    // Hints addressed to programmers using the library are not for users.
    let text = match text.find(", set DuplicateKeyPolicy") {
        Some(at) => &text[..at],
        None => text,
    };
    let first_line = text.lines().next().unwrap_or("").trim();
    if first_line.is_empty() {
        "the text cannot be parsed".to_owned()
    } else {
        first_line.to_owned()
    }
}

/// Loads every YAML document of `text`. Null documents are skipped, so an
/// empty or comment-only text gives no document.
pub(crate) fn load(text: &str) -> Result<Vec<SNode>, LoadError> {
    if text.len() > MAX_INPUT_BYTES {
        return Err(LoadError {
            line: 1,
            column: 1,
            message: super::too_large_message(),
            limit: true,
        });
    }
    match serde_saphyr::from_multiple_with_options::<SNode>(text, parser_options()) {
        Ok(docs) => Ok(docs),
        Err(err) => {
            let (line, column) = err
                .location()
                .map(|l| (l.line(), l.column()))
                .unwrap_or((0, 0));
            let (message, limit) = match original_error(&err) {
                serde_saphyr::Error::Budget { breach, .. } => (describe_breach(breach), true),
                serde_saphyr::Error::AliasReplayLimitExceeded { .. }
                | serde_saphyr::Error::AliasExpansionLimitExceeded { .. }
                | serde_saphyr::Error::AliasReplayStackDepthExceeded { .. }
                | serde_saphyr::Error::AliasReplayCounterOverflow { .. } => {
                    (alias_expansion_message(), true)
                }
                _ => (
                    format!(
                        "is not valid YAML or JSON: {}; valid: well-formed YAML or JSON",
                        bare_message(&err, line, column)
                    ),
                    false,
                ),
            };
            Err(LoadError {
                line: clamp_position(line),
                column: clamp_position(column),
                message,
                limit,
            })
        }
    }
}

fn clamp_position(n: u64) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX).max(1)
}

/// Line and column of a node (1-based; 1:1 when unknown).
pub(crate) fn position(node: &SNode) -> (u32, u32) {
    (
        clamp_position(node.referenced.line()),
        clamp_position(node.referenced.column()),
    )
}

/// The text a scalar node was written as, when it is available (plain
/// scalars read from a string, not through an alias).
pub(crate) fn source_text<'t>(text: &'t str, node: &SNode) -> Option<&'t str> {
    if node.referenced != node.defined {
        return None;
    }
    let span = node.referenced.span();
    let start = usize::try_from(span.byte_offset()?).ok()?;
    let len = usize::try_from(span.byte_len()?).ok()?;
    let slice = text.get(start..start.checked_add(len)?)?;
    // Only plain scalars are taken verbatim: a quoted or block scalar would
    // be a string node anyway.
    if slice.is_empty() || slice.contains(['"', '\'', '\n', '|', '>', '#']) {
        return None;
    }
    Some(slice)
}

/// A scalar turned into text: strings as they are, numbers and booleans as
/// written in the source when known. `None` for null, lists and mappings.
pub(crate) fn scalar_text(text: &str, node: &SNode) -> Option<String> {
    match &node.value {
        Node::Str(s) => Some(s.clone()),
        Node::Int(i) => Some(source_text(text, node).map_or_else(|| i.to_string(), str::to_owned)),
        Node::Float(f) => {
            Some(source_text(text, node).map_or_else(|| f.to_string(), str::to_owned))
        }
        Node::Bool(b) => Some(b.to_string()),
        Node::Null | Node::Seq(_) | Node::Map(_) => None,
    }
}

/// Converts a tree to JSON. Mapping keys become strings; numbers that JSON
/// cannot hold become strings.
pub(crate) fn to_json(node: &Node) -> serde_json::Value {
    use serde_json::Value;
    match node {
        Node::Null => Value::Null,
        Node::Bool(b) => Value::Bool(*b),
        Node::Int(i) => {
            if let Ok(v) = i64::try_from(*i) {
                Value::from(v)
            } else if let Ok(v) = u64::try_from(*i) {
                Value::from(v)
            } else {
                Value::String(i.to_string())
            }
        }
        Node::Float(f) => serde_json::Number::from_f64(*f).map_or(Value::Null, Value::Number),
        Node::Str(s) => Value::String(s.clone()),
        Node::Seq(items) => Value::Array(items.iter().map(|i| to_json(&i.value)).collect()),
        Node::Map(entries) => {
            let mut map = serde_json::Map::new();
            for (k, v) in entries {
                let key = match &k.value {
                    Node::Str(s) => s.clone(),
                    Node::Null => "null".to_owned(),
                    Node::Bool(b) => b.to_string(),
                    Node::Int(i) => i.to_string(),
                    Node::Float(f) => f.to_string(),
                    other => to_json(other).to_string(),
                };
                map.insert(key, to_json(&v.value));
            }
            Value::Object(map)
        }
    }
}
