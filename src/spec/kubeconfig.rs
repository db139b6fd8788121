//! The kubeconfig of a physical cluster: decoding (raw YAML, JSON, base64
//! of either, or an inline mapping), checking, and pointing it at
//! `api_server`.
//!
//! Nothing from inside a kubeconfig is ever put into a message.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};

use super::KubeconfigAccess;
use super::fields::Ctx;
use super::tree::{LoadError, Node, SNode, load, position, to_json};

/// What is valid, for messages.
pub(crate) const VALID: &str = "the content of a kubeconfig file (YAML or JSON), or that content base64-encoded, with at least one entry in clusters (each with cluster.server) and one in users";

/// Largest kubeconfig accepted, in bytes, as text or after base64 decoding.
/// A kubeconfig for one cluster is a few kilobytes.
pub(crate) const MAX_KUBECONFIG_BYTES: usize = 256 * 1024;

/// Why a kubeconfig was rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Problem {
    Empty,
    WrongType(&'static str),
    NotKubeconfig,
    NotConfigKind,
    NoClusters,
    ClusterWithoutServer(usize),
    NoUsers,
    /// Larger than [`MAX_KUBECONFIG_BYTES`]; true when after base64 decoding.
    TooLarge(bool),
    /// A limit of the YAML loader (aliases, nesting), at a line and column
    /// of the kubeconfig text; true when after base64 decoding.
    Limit(LoadError, bool),
    /// Fields that do not match the kubeconfig schema.
    Fields(Vec<FieldError>, Source),
}

/// Where the positions inside a kubeconfig come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Source {
    /// An inline mapping: positions are the spec's.
    Inline,
    /// A string holding the kubeconfig text.
    Text,
    /// A string holding base64 of the kubeconfig text.
    Base64,
}

/// A field of a kubeconfig that does not match its schema. The message
/// never holds the field's value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FieldError {
    /// Inside the kubeconfig, e.g. `users[0].user.exec.args`.
    pub path: String,
    /// Line and column inside the kubeconfig (the spec's for an inline one).
    pub at: (u32, u32),
    pub message: String,
}

impl Problem {
    /// The message, without the value.
    pub(crate) fn message(&self) -> String {
        match self {
            Problem::Empty => format!("is empty; valid: {VALID}"),
            Problem::WrongType(kind) => format!("expected a string, found {kind}; valid: {VALID}"),
            Problem::NotKubeconfig => {
                format!("is neither a kubeconfig YAML document nor base64 of one; valid: {VALID}")
            }
            Problem::NotConfigKind => format!(
                "is a YAML document but not a kubeconfig (its kind is not Config); valid: {VALID}"
            ),
            Problem::NoClusters => format!("has no entry in clusters; valid: {VALID}"),
            Problem::ClusterWithoutServer(n) => {
                format!("entry {n} of clusters has no cluster.server; valid: {VALID}")
            }
            Problem::NoUsers => format!("has no entry in users; valid: {VALID}"),
            Problem::TooLarge(decoded) => format!(
                "is larger than {} KiB{}, the limit; valid: a kubeconfig of at most {} KiB",
                MAX_KUBECONFIG_BYTES / 1024,
                if *decoded {
                    " after base64 decoding"
                } else {
                    ""
                },
                MAX_KUBECONFIG_BYTES / 1024
            ),
            Problem::Limit(e, decoded) => format!(
                "at line {}, column {} of the {}: {}",
                e.line,
                e.column,
                if *decoded {
                    "base64-decoded kubeconfig"
                } else {
                    "kubeconfig text"
                },
                e.message
            ),
            Problem::Fields(errors, _) => errors
                .first()
                .map(|e| format!("{}: {}", e.path, e.message))
                .unwrap_or_default(),
        }
    }

    /// Records the problem in `ctx`: at the field inside the kubeconfig when
    /// there is one (its line in the spec when it can be known), else at the
    /// kubeconfig value.
    pub(crate) fn report(&self, ctx: &mut Ctx<'_>, value: &SNode, path: &str) {
        match self {
            Problem::Fields(errors, source) => {
                for e in errors {
                    let (at, suffix) = locate(ctx.text, value, *source, e.at);
                    // the position inside goes before what would be valid
                    let message = match e.message.split_once("; valid: ") {
                        Some((what, valid)) => format!("{what}{suffix}; valid: {valid}"),
                        None => format!("{}{suffix}", e.message),
                    };
                    ctx.at(at, &format!("{path}.{}", e.path), message);
                }
            }
            Problem::Limit(e, decoded) => {
                let source = if *decoded {
                    Source::Base64
                } else {
                    Source::Text
                };
                match locate(ctx.text, value, source, (e.line, e.column)) {
                    (at, suffix) if suffix.is_empty() => ctx.at(at, path, e.message.clone()),
                    _ => ctx.on(value, path, self.message()),
                }
            }
            _ => ctx.on(value, path, self.message()),
        }
    }
}

/// Where a position inside a kubeconfig is in the spec: the same position
/// for an inline mapping; inside a literal block scalar (`kubeconfig: |`),
/// its line and column in the spec; otherwise the kubeconfig value's
/// position, with a suffix naming the line and column inside it.
fn locate(text: &str, value: &SNode, source: Source, inner: (u32, u32)) -> ((u32, u32), String) {
    let (line, column) = position(value);
    match source {
        Source::Inline => (inner, String::new()),
        Source::Text if is_literal_block(text, line) => (
            (
                line.saturating_add(inner.0 - 1),
                column.saturating_add(inner.1 - 1),
            ),
            String::new(),
        ),
        Source::Text => (
            (line, column),
            format!(
                " (at line {}, column {} of the kubeconfig text)",
                inner.0, inner.1
            ),
        ),
        Source::Base64 => (
            (line, column),
            format!(
                " (at line {}, column {} of the base64-decoded kubeconfig)",
                inner.0, inner.1
            ),
        ),
    }
}

/// Whether the string value starting on `line` is a literal block scalar,
/// whose lines are the spec's lines: the line before ends with `|`, `|-` or
/// `|+` (a comment after it allowed).
fn is_literal_block(text: &str, line: u32) -> bool {
    let Some(index) = usize::try_from(line).ok().and_then(|l| l.checked_sub(2)) else {
        return false;
    };
    let Some(before) = text.lines().nth(index) else {
        return false;
    };
    let code = before.split(" #").next().unwrap_or("").trim_end();
    code.ends_with(": |") || code.ends_with(": |-") || code.ends_with(": |+") || code == "|"
}

/// Parses `text` as a single YAML/JSON document that is a mapping: None
/// when it is not one; an error when a limit of the loader is hit.
fn parse_mapping(text: &str, decoded: bool) -> Result<Option<Node>, Problem> {
    if text.len() > MAX_KUBECONFIG_BYTES {
        return Err(Problem::TooLarge(decoded));
    }
    let mut docs = match load(text) {
        Ok(docs) => docs,
        Err(e) if e.limit => return Err(Problem::Limit(e, decoded)),
        Err(_) => return Ok(None),
    };
    if docs.len() != 1 {
        return Ok(None);
    }
    Ok(docs
        .pop()
        .and_then(|doc| matches!(doc.value, Node::Map(_)).then_some(doc.value)))
}

/// Decodes base64 (standard or URL-safe alphabet, padded or not, white
/// space ignored) into text.
fn decode_base64(text: &str) -> Option<String> {
    let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    if compact.is_empty() {
        return None;
    }
    let bytes = [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD]
        .iter()
        .find_map(|engine| engine.decode(compact.as_bytes()).ok())?;
    String::from_utf8(bytes).ok()
}

/// Turns the `kubeconfig` value into a checked kubeconfig mapping. The
/// fields that run a command or read a local file when the kubeconfig is
/// used are recorded in `ctx.kubeconfig_access`, at their place in the spec.
pub(crate) fn decode(ctx: &mut Ctx<'_>, value: &SNode, path: &str) -> Result<Node, Problem> {
    let (mapping, source) = match &value.value {
        Node::Map(_) => (value.value.clone(), Source::Inline),
        Node::Str(text) => {
            if text.trim().is_empty() {
                return Err(Problem::Empty);
            }
            // the text itself when it is a kubeconfig, else base64 of one;
            // a text larger than the limit can only be base64 of one
            let as_text = if text.len() > MAX_KUBECONFIG_BYTES {
                None
            } else {
                parse_mapping(text, false)?
            };
            match as_text {
                Some(m) => (m, Source::Text),
                None => match decode_base64(text) {
                    Some(decoded) => (
                        parse_mapping(&decoded, true)?.ok_or(Problem::NotKubeconfig)?,
                        Source::Base64,
                    ),
                    None if text.len() > MAX_KUBECONFIG_BYTES => {
                        return Err(Problem::TooLarge(false));
                    }
                    None => return Err(Problem::NotKubeconfig),
                },
            }
        }
        Node::Null => return Err(Problem::Empty),
        other => return Err(Problem::WrongType(other.kind_name())),
    };
    check(&mapping)?;
    let mut schema = Schema::default();
    schema.config(&mapping);
    if !schema.errors.is_empty() {
        return Err(Problem::Fields(schema.errors, source));
    }
    for (field, at, key) in schema.access {
        let (at, suffix) = locate(ctx.text, value, source, at);
        let (does, valid) = access_message(key);
        ctx.kubeconfig_access.push(KubeconfigAccess {
            path: format!("{path}.{field}"),
            line: at.0,
            column: at.1,
            message: format!("{does}{suffix}; valid: {valid}"),
        });
    }
    Ok(mapping)
}

fn check(config: &Node) -> Result<(), Problem> {
    // A mapping with none of a kubeconfig's keys is some other document.
    let looks_like_kubeconfig = ["clusters", "users", "contexts", "current-context", "kind"]
        .iter()
        .any(|k| config.get(k).is_some());
    if !looks_like_kubeconfig {
        return Err(Problem::NotKubeconfig);
    }
    if let Some(kind) = config.get("kind")
        && kind.value.as_str() != Some("Config")
    {
        return Err(Problem::NotConfigKind);
    }
    let clusters = config
        .get("clusters")
        .and_then(|c| c.value.as_seq())
        .unwrap_or(&[]);
    if clusters.is_empty() {
        return Err(Problem::NoClusters);
    }
    for (i, entry) in clusters.iter().enumerate() {
        let has_server = entry
            .value
            .get("cluster")
            .and_then(|c| c.value.get("server"))
            .and_then(|s| s.value.as_str())
            .is_some_and(|s| !s.trim().is_empty());
        if !has_server {
            return Err(Problem::ClusterWithoutServer(i + 1));
        }
    }
    let users = config
        .get("users")
        .and_then(|u| u.value.as_seq())
        .unwrap_or(&[]);
    if users.is_empty() {
        return Err(Problem::NoUsers);
    }
    Ok(())
}

/// The type a kubeconfig field must have.
#[derive(Clone, Copy)]
enum Kind {
    Str,
    Bool,
    /// A list of strings.
    Strings,
    /// A mapping of strings to strings.
    StringMap,
    /// A mapping of strings to lists of strings.
    StringsMap,
    /// A list of mappings of strings to strings (exec.env).
    StringMaps,
    /// A list of {name, extension}.
    Extensions,
    /// Anything.
    Any,
    /// One of these strings.
    OneOf(&'static [&'static str]),
}

impl Kind {
    fn valid(self) -> String {
        match self {
            Kind::Str => "a string".to_owned(),
            Kind::Bool => "true or false".to_owned(),
            Kind::Strings => "a list of strings".to_owned(),
            Kind::StringMap => "a mapping of names to strings".to_owned(),
            Kind::StringsMap => "a mapping of names to lists of strings".to_owned(),
            Kind::StringMaps => {
                "a list of mappings of strings, e.g. [{name: AWS_PROFILE, value: dev}]".to_owned()
            }
            Kind::Extensions => "a list of {name, extension}".to_owned(),
            Kind::Any => "any value".to_owned(),
            Kind::OneOf(values) => format!("one of {}", values.join(", ")),
        }
    }
}

/// What a field that runs a command or reads a local file does, and what
/// would be valid instead.
fn access_message(key: &str) -> (&'static str, String) {
    const TRUST: &str =
        "or pass --allow-exec-kubeconfig if you trust this spec (EKS and GKE kubeconfigs need it)";
    let (does, instead) = match key {
        "exec" => (
            "runs a command on this machine when the kubeconfig is used",
            "token, or client-certificate-data and client-key-data",
        ),
        "auth-provider" => (
            "runs an authentication provider on this machine when the kubeconfig is used",
            "token, or client-certificate-data and client-key-data",
        ),
        "tokenFile" => (
            "reads a file of this machine when the kubeconfig is used",
            "token with the token itself",
        ),
        "client-certificate" => (
            "reads a file of this machine when the kubeconfig is used",
            "client-certificate-data with the certificate itself",
        ),
        "client-key" => (
            "reads a file of this machine when the kubeconfig is used",
            "client-key-data with the key itself",
        ),
        _ => (
            "reads a file of this machine when the kubeconfig is used",
            "certificate-authority-data with the certificate itself",
        ),
    };
    (does, format!("{instead} instead, {TRUST}"))
}

/// Checks a kubeconfig's fields against the schema kube reads (unknown
/// fields are ignored, as kube does), and collects the fields that run a
/// command or read a local file.
#[derive(Default)]
struct Schema {
    errors: Vec<FieldError>,
    /// (path inside the kubeconfig, position, key)
    access: Vec<(String, (u32, u32), &'static str)>,
}

impl Schema {
    fn error(&mut self, path: &str, node: &SNode, message: String) {
        self.errors.push(FieldError {
            path: path.to_owned(),
            at: position(node),
            message,
        });
    }

    fn wrong(&mut self, path: &str, node: &SNode, valid: &str) {
        self.error(
            path,
            node,
            format!(
                "expected {valid}, found {}; valid: {valid}",
                node.value.kind_name()
            ),
        );
    }

    /// Checks a value against a kind; null is accepted (an unset field).
    fn value(&mut self, path: &str, node: &SNode, kind: Kind) {
        let ok = match (&node.value, kind) {
            (Node::Null, _) | (_, Kind::Any) => true,
            (Node::Str(_), Kind::Str) | (Node::Bool(_), Kind::Bool) => true,
            (Node::Str(s), Kind::OneOf(values)) => {
                if !values.contains(&s.as_str()) {
                    self.error(
                        path,
                        node,
                        format!("is not one of the accepted values; valid: {}", kind.valid()),
                    );
                }
                true
            }
            (Node::Seq(items), Kind::Strings) => {
                for (i, item) in items.iter().enumerate() {
                    self.value(&format!("{path}[{i}]"), item, Kind::Str);
                }
                true
            }
            (Node::Seq(items), Kind::StringMaps) => {
                for (i, item) in items.iter().enumerate() {
                    self.entries(&format!("{path}[{i}]"), item, Kind::Str, Kind::StringMap);
                }
                true
            }
            (Node::Map(_), Kind::StringMap) => {
                self.entries(path, node, Kind::Str, kind);
                true
            }
            (Node::Map(_), Kind::StringsMap) => {
                self.entries(path, node, Kind::Strings, kind);
                true
            }
            (Node::Seq(items), Kind::Extensions) => {
                for (i, item) in items.iter().enumerate() {
                    let p = format!("{path}[{i}]");
                    if let Some(fields) = self.mapping(&p, item, false) {
                        self.fields(&p, fields, &[("name", Kind::Str), ("extension", Kind::Any)]);
                        self.required(&p, item, &["name", "extension"]);
                    }
                }
                true
            }
            _ => false,
        };
        if !ok {
            self.wrong(path, node, &kind.valid());
        }
    }

    /// Every value of a mapping is of `kind` (and its keys strings).
    fn entries(&mut self, path: &str, node: &SNode, kind: Kind, whole: Kind) {
        match &node.value {
            Node::Map(entries) => {
                for (k, v) in entries {
                    match k.value.as_str() {
                        Some(key) => {
                            // a value of null is not a string here
                            if v.value.is_null() {
                                self.wrong(&format!("{path}.{key}"), v, &kind.valid());
                            } else {
                                self.value(&format!("{path}.{key}"), v, kind);
                            }
                        }
                        None => self.wrong(path, k, &whole.valid()),
                    }
                }
            }
            _ => self.wrong(path, node, &whole.valid()),
        }
    }

    /// The entries of a mapping; None (and an error unless null is allowed
    /// and found) when it is not one.
    fn mapping<'n>(
        &mut self,
        path: &str,
        node: &'n SNode,
        null_ok: bool,
    ) -> Option<&'n [(SNode, SNode)]> {
        match &node.value {
            Node::Map(entries) => Some(entries),
            Node::Null if null_ok => None,
            _ => {
                self.wrong(path, node, "a mapping");
                None
            }
        }
    }

    /// Checks the known fields of a mapping; unknown ones are ignored.
    fn fields(&mut self, path: &str, entries: &[(SNode, SNode)], known: &[(&str, Kind)]) {
        for (k, v) in entries {
            let Some(key) = k.value.as_str() else {
                continue;
            };
            if let Some((_, kind)) = known.iter().find(|(name, _)| *name == key) {
                let p = if path.is_empty() {
                    key.to_owned()
                } else {
                    format!("{path}.{key}")
                };
                self.value(&p, v, *kind);
            }
        }
    }

    /// Fields that must be present and not null.
    fn required(&mut self, path: &str, node: &SNode, names: &[&str]) {
        for name in names {
            match node.value.get(name) {
                Some(v) if !v.value.is_null() => {}
                Some(v) => self.wrong(&format!("{path}.{name}"), v, "a value"),
                None => self.error(
                    path,
                    node,
                    format!("has no {name}; valid: an entry with {name}"),
                ),
            }
        }
    }

    /// A field that runs a command or reads a file, when it is set.
    fn access(&mut self, path: &str, node: &SNode, key: &'static str) {
        if let Some(v) = node.value.get(key)
            && !v.value.is_null()
        {
            self.access
                .push((format!("{path}.{key}"), position(v), key));
        }
    }

    /// A list of named entries (`clusters`, `users`, `contexts`), each
    /// checked by `entry` with its path and the value under `inner`.
    fn named_list(
        &mut self,
        config: &Node,
        list: &str,
        inner: &str,
        entry: fn(&mut Self, &str, &SNode),
    ) {
        let Some(node) = config.get(list) else {
            return;
        };
        match &node.value {
            Node::Null => {}
            Node::Seq(items) => {
                for (i, item) in items.iter().enumerate() {
                    let p = format!("{list}[{i}]");
                    if self.mapping(&p, item, false).is_none() {
                        continue;
                    }
                    self.required(&p, item, &["name"]);
                    if let Some(name) = item.value.get("name") {
                        self.value(&format!("{p}.name"), name, Kind::Str);
                    }
                    if let Some(v) = item.value.get(inner)
                        && self.mapping(&format!("{p}.{inner}"), v, true).is_some()
                    {
                        entry(self, &format!("{p}.{inner}"), v);
                    }
                }
            }
            _ => self.wrong(list, node, "a list"),
        }
    }

    fn config(&mut self, config: &Node) {
        if let Node::Map(entries) = config {
            self.fields(
                "",
                entries,
                &[
                    ("current-context", Kind::Str),
                    ("kind", Kind::Str),
                    ("apiVersion", Kind::Str),
                    ("extensions", Kind::Extensions),
                ],
            );
        }
        if let Some(prefs) = config.get("preferences")
            && let Some(fields) = self.mapping("preferences", prefs, true)
        {
            self.fields(
                "preferences",
                fields,
                &[("colors", Kind::Bool), ("extensions", Kind::Extensions)],
            );
        }
        self.named_list(config, "clusters", "cluster", Self::cluster);
        self.named_list(config, "users", "user", Self::user);
        self.named_list(config, "contexts", "context", Self::context);
    }

    fn cluster(&mut self, path: &str, node: &SNode) {
        let Node::Map(entries) = &node.value else {
            return;
        };
        self.fields(
            path,
            entries,
            &[
                ("server", Kind::Str),
                ("insecure-skip-tls-verify", Kind::Bool),
                ("certificate-authority", Kind::Str),
                ("certificate-authority-data", Kind::Str),
                ("proxy-url", Kind::Str),
                ("disable-compression", Kind::Bool),
                ("tls-server-name", Kind::Str),
                ("extensions", Kind::Extensions),
            ],
        );
        self.access(path, node, "certificate-authority");
    }

    fn user(&mut self, path: &str, node: &SNode) {
        let Node::Map(entries) = &node.value else {
            return;
        };
        self.fields(
            path,
            entries,
            &[
                ("username", Kind::Str),
                ("password", Kind::Str),
                ("token", Kind::Str),
                ("tokenFile", Kind::Str),
                ("client-certificate", Kind::Str),
                ("client-certificate-data", Kind::Str),
                ("client-key", Kind::Str),
                ("client-key-data", Kind::Str),
                ("as", Kind::Str),
                ("as-uid", Kind::Str),
                ("as-groups", Kind::Strings),
                ("as-user-extra", Kind::StringsMap),
                ("extensions", Kind::Extensions),
            ],
        );
        for key in ["tokenFile", "client-certificate", "client-key"] {
            self.access(path, node, key);
        }
        if let Some(provider) = node.value.get("auth-provider") {
            let p = format!("{path}.auth-provider");
            if let Some(fields) = self.mapping(&p, provider, true) {
                self.fields(
                    &p,
                    fields,
                    &[("name", Kind::Str), ("config", Kind::StringMap)],
                );
                self.required(&p, provider, &["name"]);
            }
            self.access(path, node, "auth-provider");
        }
        if let Some(exec) = node.value.get("exec") {
            let p = format!("{path}.exec");
            if let Some(fields) = self.mapping(&p, exec, true) {
                self.fields(
                    &p,
                    fields,
                    &[
                        ("apiVersion", Kind::Str),
                        ("command", Kind::Str),
                        ("args", Kind::Strings),
                        ("env", Kind::StringMaps),
                        ("installHint", Kind::Str),
                        (
                            "interactiveMode",
                            Kind::OneOf(&["Never", "IfAvailable", "Always"]),
                        ),
                        ("provideClusterInfo", Kind::Bool),
                    ],
                );
            }
            self.access(path, node, "exec");
        }
    }

    fn context(&mut self, path: &str, node: &SNode) {
        let Node::Map(entries) = &node.value else {
            return;
        };
        self.fields(
            path,
            entries,
            &[
                ("cluster", Kind::Str),
                ("user", Kind::Str),
                ("namespace", Kind::Str),
                ("extensions", Kind::Extensions),
            ],
        );
        self.required(path, node, &["cluster"]);
    }
}

/// The kubeconfig as JSON, with the server of every cluster replaced by
/// `api_server`.
pub(crate) fn rewrite(config: &Node, api_server: &str) -> String {
    let mut json = to_json(config);
    if let Some(clusters) = json.get_mut("clusters").and_then(|c| c.as_array_mut()) {
        for entry in clusters {
            if let Some(cluster) = entry.get_mut("cluster").and_then(|c| c.as_object_mut()) {
                cluster.insert(
                    "server".to_owned(),
                    serde_json::Value::String(api_server.to_owned()),
                );
            }
        }
    }
    json.to_string()
}
