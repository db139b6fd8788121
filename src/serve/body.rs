//! Request input: the POST body (JSON in the seed's or upstream v0.4's form,
//! read by the spec parser), the rules for a kubeconfig that arrives over
//! HTTP, query parameters and `field_selector`.

use std::collections::HashMap;

use serde_json::Value;

use super::error::ApiError;
use crate::spec::ClusterSpec;

/// The label request bodies are shown under in messages.
pub const BODY_LABEL: &str = "request body";

/// Parses and validates a POST body for cluster `name`.
pub fn parse_body(name: &str, bytes: &[u8]) -> Result<ClusterSpec, ApiError> {
    let text = std::str::from_utf8(bytes)
        .map_err(|_| ApiError::codec("request body: is not UTF-8; valid: a JSON object"))?;
    // JSON first, so a malformed body is a CODEC error (with its position),
    // not a spec error; an empty body is an empty object (as upstream)
    let text = if text.trim().is_empty() { "{}" } else { text };
    let mut normalized = None;
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(mut map)) => {
            // upstream's client always sends `vcluster`, for a physical
            // cluster as an object of empty values: it carries nothing
            if map.get("vcluster").is_some_and(is_empty_object) {
                map.remove("vcluster");
                normalized = Some(Value::Object(map).to_string());
            }
        }
        Ok(other) => {
            return Err(ApiError::codec(format!(
                "request body: is a JSON {}; valid: a JSON object (the cluster spec)",
                json_kind(&other)
            )));
        }
        Err(e) => {
            return Err(ApiError::codec(format!(
                "request body: line {} column {}: not valid JSON: {}",
                e.line(),
                e.column(),
                json_reason(&e)
            ))
            .with("line", e.line().to_string())
            .with("column", e.column().to_string()));
        }
    }
    let text = normalized.as_deref().unwrap_or(text);
    let spec = crate::spec::parse(BODY_LABEL, text, Some(name)).map_err(|errs| {
        let message = errs
            .to_string()
            .lines()
            .map(|l| http_words(l.strip_prefix("error: ").unwrap_or(l)))
            .collect::<Vec<_>>()
            .join("\n");
        let mut e = ApiError::validator(message);
        for se in &errs.errors {
            e.metadata
                .entry(se.path.clone())
                .or_insert_with(|| http_words(&se.message));
        }
        e
    })?;
    if let Some(kc) = &spec.kubeconfig {
        check_kubeconfig(kc)?;
    }
    Ok(spec)
}

/// The spec parser speaks of the command line; here the name is the path's.
fn http_words(message: &str) -> String {
    message
        .replace("given on the command line", "in the path (cluster_name)")
        .replace("no name in the file", "no name in the body")
}

/// `{}`, or an object whose values are all null or "".
fn is_empty_object(v: &Value) -> bool {
    v.as_object().is_some_and(|o| {
        o.values()
            .all(|x| x.is_null() || x.as_str().is_some_and(|s| s.trim().is_empty()))
    })
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// serde_json's message without the value it may quote (a body can hold a
/// kubeconfig; nothing from it goes into a reply).
fn json_reason(e: &serde_json::Error) -> &'static str {
    use serde_json::error::Category;
    match e.classify() {
        Category::Eof => "it ends too early",
        Category::Syntax => "a syntax error",
        Category::Data => "a value of the wrong type",
        Category::Io => "it could not be read",
    }
}

/// What a kubeconfig sent over HTTP may not hold: anything that runs a
/// command or reads a file on the server. `kubeconfig` is the spec's JSON.
pub fn check_kubeconfig(kubeconfig: &str) -> Result<(), ApiError> {
    let Ok(kc) = serde_json::from_str::<Value>(kubeconfig) else {
        return Err(ApiError::internal(
            "the validated kubeconfig is not JSON (a bug)",
        ));
    };
    let mut bad: Vec<(String, &str)> = Vec::new();
    let list = |key: &str| {
        kc.get(key)
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    for (i, u) in list("users").iter().enumerate() {
        let Some(user) = u.get("user").and_then(Value::as_object) else {
            continue;
        };
        for (key, why) in [
            (
                "exec",
                "an exec credential plugin would run a command on the server",
            ),
            (
                "auth-provider",
                "an auth provider plugin would run on the server",
            ),
            (
                "tokenFile",
                "a token file would be read from the server's disk",
            ),
            (
                "client-certificate",
                "a certificate file would be read from the server's disk",
            ),
            (
                "client-key",
                "a key file would be read from the server's disk",
            ),
        ] {
            if user.get(key).is_some_and(|v| !v.is_null()) {
                bad.push((format!("kubeconfig.users[{i}].user.{key}"), why));
            }
        }
    }
    for (i, c) in list("clusters").iter().enumerate() {
        if c.get("cluster")
            .and_then(|c| c.get("certificate-authority"))
            .is_some_and(|v| !v.is_null())
        {
            bad.push((
                format!("kubeconfig.clusters[{i}].cluster.certificate-authority"),
                "a CA file would be read from the server's disk",
            ));
        }
    }
    if bad.is_empty() {
        return Ok(());
    }
    let lines: Vec<String> = bad
        .iter()
        .map(|(path, why)| {
            format!("{BODY_LABEL}: {path}: is not allowed over HTTP: {why}; valid: inline data (token, client-certificate-data, client-key-data, certificate-authority-data)")
        })
        .collect();
    let mut e = ApiError::validator(lines.join("\n"));
    for (path, why) in bad {
        e = e.with(path, format!("not allowed over HTTP: {why}"));
    }
    Err(e)
}

/// A boolean query parameter: true/false/1/0 (absent: false).
pub fn query_bool(q: &HashMap<String, String>, key: &str) -> Result<bool, ApiError> {
    match q.get(key).map(|s| s.trim().to_ascii_lowercase()) {
        None => Ok(false),
        Some(v) => match v.as_str() {
            "" | "true" | "1" => Ok(true),
            "false" | "0" => Ok(false),
            _ => Err(ApiError::validator(format!(
                "query {key}: {v:?} is not a boolean; valid: true or false"
            ))
            .with(key, "not a boolean")),
        },
    }
}

/// Refuses query parameters the route does not know.
pub fn known_query(q: &HashMap<String, String>, known: &[&str]) -> Result<(), ApiError> {
    let mut unknown: Vec<&str> = q
        .keys()
        .map(String::as_str)
        .filter(|k| !known.contains(k))
        .collect();
    if unknown.is_empty() {
        return Ok(());
    }
    unknown.sort();
    let mut e = ApiError::validator(format!(
        "unknown query parameter(s) {}; valid: {}",
        unknown.join(", "),
        if known.is_empty() {
            "none".to_string()
        } else {
            known.join(", ")
        }
    ));
    for k in unknown {
        e = e.with(k, "unknown query parameter");
    }
    Err(e)
}

/// One term of a field selector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selector {
    pub key: String,
    pub value: String,
}

const SELECTOR_KEYS: &[&str] = &["cluster_type", "usage", "worker_type", "cluster_name"];

/// `cluster_type=physical,usage=worker,worker_type=deployment`: exact
/// matches, and `cluster_name=` a substring of the name.
pub fn field_selector(text: &str) -> Result<Vec<Selector>, ApiError> {
    let mut out = Vec::new();
    for term in text.split(',').map(str::trim).filter(|t| !t.is_empty()) {
        let bad = |why: &str| {
            ApiError::validator(format!(
                "query field_selector: {term:?} {why}; valid: comma-separated key=value with keys {}",
                SELECTOR_KEYS.join(", ")
            ))
            .with("field_selector", why.to_string())
        };
        if term.contains("!=") || term.contains("==") {
            return Err(bad("uses an operator other than ="));
        }
        let Some((k, v)) = term.split_once('=') else {
            return Err(bad("is not key=value"));
        };
        let k = k.trim();
        if !SELECTOR_KEYS.contains(&k) {
            return Err(bad("has an unknown key"));
        }
        out.push(Selector {
            key: k.to_string(),
            value: v.trim().to_string(),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kubeconfig(user: Value) -> String {
        serde_json::json!({
            "apiVersion": "v1", "kind": "Config",
            "clusters": [{"name": "c", "cluster": {"server": "https://10.0.0.5:6443"}}],
            "users": [{"name": "u", "user": user}],
            "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
            "current-context": "c",
        })
        .to_string()
    }

    fn body(kc: &str) -> String {
        serde_json::json!({
            "api_server": "https://10.0.0.5:6443", "cluster_kind": "kubernetes",
            "cluster_type": "physical", "usage": "worker", "kubeconfig": kc,
        })
        .to_string()
    }

    #[test]
    fn a_token_kubeconfig_is_accepted() {
        let spec = parse_body(
            "w1",
            body(&kubeconfig(serde_json::json!({"token": "abc"}))).as_bytes(),
        )
        .expect("valid");
        assert_eq!(spec.name, "w1");
    }

    #[test]
    fn exec_and_file_references_are_refused_naming_the_field() {
        for (user, field) in [
            (
                serde_json::json!({"exec": {"command": "sh", "apiVersion": "client.authentication.k8s.io/v1"}}),
                "users[0].user.exec",
            ),
            (
                serde_json::json!({"tokenFile": "/etc/passwd"}),
                "users[0].user.tokenFile",
            ),
            (
                serde_json::json!({"client-certificate": "/a", "client-key": "/b"}),
                "users[0].user.client-key",
            ),
            (
                serde_json::json!({"auth-provider": {"name": "gcp"}}),
                "users[0].user.auth-provider",
            ),
        ] {
            let e = parse_body("w1", body(&kubeconfig(user)).as_bytes()).expect_err("refused");
            assert_eq!((e.code, e.reason.as_str()), (400, "VALIDATOR"));
            assert!(e.message.contains(field), "{}", e.message);
            assert!(
                e.metadata.contains_key(&format!("kubeconfig.{field}")),
                "{:?}",
                e.metadata
            );
        }
    }

    #[test]
    fn malformed_json_is_a_codec_error_without_the_body() {
        let e = parse_body("w1", br#"{"api_server": "secret-value" "#).expect_err("codec");
        assert_eq!(e.reason, "CODEC");
        assert!(!e.message.contains("secret-value"));
        let e = parse_body("w1", b"[1]").expect_err("codec");
        assert!(e.message.contains("array"), "{}", e.message);
    }

    #[test]
    fn an_unknown_key_is_a_validator_error_naming_it() {
        let text = serde_json::json!({
            "api_server": "https://10.0.0.5:6443", "cluster_type": "physical", "usage": "host",
            "kubeconfig": kubeconfig(serde_json::json!({"token": "t"})), "bogus_key": 1,
        })
        .to_string();
        let e = parse_body("h1", text.as_bytes()).expect_err("unknown key");
        assert_eq!(e.reason, "VALIDATOR");
        assert!(e.message.contains("bogus_key"), "{}", e.message);
        assert!(
            e.metadata.keys().any(|k| k.contains("bogus_key")),
            "{:?}",
            e.metadata
        );
    }

    #[test]
    fn upstream_clients_empty_vcluster_of_a_physical_cluster_is_accepted() {
        let mut b: Value =
            serde_json::from_str(&body(&kubeconfig(serde_json::json!({"token": "t"}))))
                .expect("json");
        b["vcluster"] = serde_json::json!({"https_node_port": ""});
        b["primary_domain"] = Value::Null;
        b["components_list"] = serde_json::json!({"multi_tenant": null, "pipeline": null});
        parse_body("w1", b.to_string().as_bytes()).expect("valid");
        b["vcluster"] = serde_json::json!({"https_node_port": "31443"});
        let e = parse_body("w1", b.to_string().as_bytes()).expect_err("vcluster with a value");
        assert!(e.metadata.contains_key("vcluster"), "{:?}", e.metadata);
    }

    #[test]
    fn field_selectors() {
        let s = field_selector("cluster_type=physical,usage=worker").expect("ok");
        assert_eq!(s.len(), 2);
        assert!(field_selector("usage!=worker").is_err());
        assert!(field_selector("colour=blue").is_err());
        assert!(field_selector("usage").is_err());
        assert!(field_selector("").expect("empty").is_empty());
    }
}
