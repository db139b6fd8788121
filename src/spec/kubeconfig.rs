//! The kubeconfig of a physical cluster: decoding (raw YAML, JSON, base64
//! of either, or an inline mapping), checking, and pointing it at
//! `api_server`.
//!
//! Nothing from inside a kubeconfig is ever put into a message.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};

use super::tree::{LoadError, Node, load, to_json};

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
        }
    }
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

/// Turns the `kubeconfig` value into a checked kubeconfig mapping.
pub(crate) fn decode(value: &Node) -> Result<Node, Problem> {
    let mapping = match value {
        Node::Map(_) => value.clone(),
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
                Some(m) => m,
                None => match decode_base64(text) {
                    Some(decoded) => {
                        parse_mapping(&decoded, true)?.ok_or(Problem::NotKubeconfig)?
                    }
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
