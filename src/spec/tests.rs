//! Unit tests of the cluster spec.

use std::path::{Path, PathBuf};

use base64::Engine as _;

use super::*;

/// A kubeconfig with two clusters; its secrets must never show up in a
/// message.
const KUBECONFIG: &str = "apiVersion: v1
kind: Config
clusters:
  - name: one
    cluster:
      server: https://192.168.1.1:6443
      certificate-authority-data: SECRET-CA-DATA
  - name: two
    cluster:
      server: https://192.168.1.2:6443
users:
  - name: admin
    user:
      token: SECRET-TOKEN
contexts:
  - name: one
    context: {cluster: one, user: admin}
current-context: one
";

fn indent(text: &str, by: usize) -> String {
    let pad = " ".repeat(by);
    text.lines()
        .map(|l| format!("{pad}{l}\n"))
        .collect::<String>()
}

/// A flat physical worker with the given extra lines.
fn physical(extra: &str) -> String {
    format!(
        "name: demo\napi_server: https://10.0.0.5:6443\ncluster_type: physical\nusage: worker\n{extra}kubeconfig: |\n{}",
        indent(KUBECONFIG, 2)
    )
}

/// A flat virtual worker with the given extra lines.
fn virtual_worker(extra: &str) -> String {
    format!(
        "name: demo\napi_server: https://10.0.0.5:31443\ncluster_type: virtual\nusage: worker\nhost_cluster: host\n{extra}"
    )
}

fn ok(text: &str) -> ClusterSpec {
    match parse("t.yaml", text, None) {
        Ok(spec) => spec,
        Err(e) => panic!("unexpected errors:\n{e}\n--- for:\n{text}"),
    }
}

/// The error lines of an invalid spec.
fn errors_of(text: &str, name: Option<&str>) -> Vec<String> {
    match parse("t.yaml", text, name) {
        Ok(spec) => panic!("expected errors, got {spec:?}\n--- for:\n{text}"),
        Err(e) => {
            assert!(!e.errors.is_empty());
            e.to_string().lines().map(str::to_owned).collect()
        }
    }
}

fn errs(text: &str) -> Vec<String> {
    errors_of(text, None)
}

fn assert_one(text: &str, expected: &str) {
    assert_eq!(errs(text), vec![expected.to_owned()], "for:\n{text}");
}

fn kubeconfig_json(spec: &ClusterSpec) -> serde_json::Value {
    let text = spec.kubeconfig.clone().unwrap_or_default();
    serde_json::from_str(&text).unwrap_or(serde_json::Value::Null)
}

// ---------------------------------------------------------------- the tree

#[test]
fn spanned_nodes_from_custom_visitor_carry_positions() {
    let docs = tree::load("a: 1\nb:\n  c: [x, \"30080\"]\n").unwrap_or_default();
    assert_eq!(docs.len(), 1);
    let root = &docs[0];
    let b = root.value.get("b").map(tree::position);
    assert_eq!(b, Some((3, 3)));
    let c = root.value.get("b").and_then(|b| b.value.get("c"));
    let items = c.and_then(|c| c.value.as_seq()).unwrap_or(&[]);
    assert_eq!(items.len(), 2);
    assert_eq!(tree::position(&items[0]), (3, 7));
    assert_eq!(items[0].value, tree::Node::Str("x".into()));
    assert_eq!(tree::position(&items[1]), (3, 10));
    assert_eq!(items[1].value, tree::Node::Str("30080".into()));
    let keys: Vec<(u32, u32)> = root
        .value
        .as_map()
        .unwrap_or(&[])
        .iter()
        .map(|(k, _)| tree::position(k))
        .collect();
    assert_eq!(keys, vec![(1, 1), (2, 1)]);
}

#[test]
fn tree_scalars() {
    let docs =
        tree::load("a: 1\nb: true\nc: no\nd: ~\ne: 1.5\nf: .inf\ng: 0755\n").unwrap_or_default();
    let root = &docs[0].value;
    assert_eq!(root.get("a").map(|n| &n.value), Some(&tree::Node::Int(1)));
    assert_eq!(
        root.get("b").map(|n| &n.value),
        Some(&tree::Node::Bool(true))
    );
    // Only true/false are booleans.
    assert_eq!(
        root.get("c").map(|n| &n.value),
        Some(&tree::Node::Str("no".into()))
    );
    assert_eq!(root.get("d").map(|n| &n.value), Some(&tree::Node::Null));
    assert_eq!(
        root.get("e").map(|n| &n.value),
        Some(&tree::Node::Float(1.5))
    );
    assert!(root.get("f").is_some());
    // Numbers used as text keep how they were written.
    let g = root.get("g");
    assert_eq!(
        g.and_then(|g| tree::scalar_text(
            "a: 1\nb: true\nc: no\nd: ~\ne: 1.5\nf: .inf\ng: 0755\n",
            g
        )),
        Some("0755".into())
    );
}

#[test]
fn multiple_documents_and_empty_ones() {
    assert_eq!(tree::load("").map(|d| d.len()), Ok(0));
    assert_eq!(tree::load("# only a comment\n").map(|d| d.len()), Ok(0));
    assert_eq!(tree::load("---\na: 1\n").map(|d| d.len()), Ok(1));
    assert_eq!(tree::load("a: 1\n---\nb: 2\n").map(|d| d.len()), Ok(2));
}

// ------------------------------------------------------------ valid specs

#[test]
fn physical_worker_defaults() {
    let spec = ok(&physical(""));
    assert_eq!(spec.name, "demo");
    assert_eq!(spec.api_server, "https://10.0.0.5:6443");
    assert_eq!(spec.cluster_kind, "kubernetes");
    assert_eq!(spec.cluster_type, ClusterType::Physical);
    assert_eq!(spec.usage, Usage::Worker);
    assert_eq!(spec.worker_type, Some(WorkerType::Deployment));
    assert_eq!(spec.host_cluster, None);
    assert_eq!(spec.primary_domain, "10.0.0.5.nip.io");
    assert_eq!(
        spec.argocd_host.as_deref(),
        Some("argocd.demo.10.0.0.5.nip.io")
    );
    assert_eq!(
        spec.traefik,
        Some(NodePorts {
            http_node_port: 30080,
            https_node_port: 30443
        })
    );
    assert_eq!(spec.vcluster, None);
    assert!(spec.components.is_empty());
    assert!(spec.kubeconfig.is_some());
}

#[test]
fn kubeconfig_servers_are_replaced_and_output_is_json() {
    let spec = ok(&physical(""));
    let json = kubeconfig_json(&spec);
    let clusters = json["clusters"].as_array().cloned().unwrap_or_default();
    assert_eq!(clusters.len(), 2);
    for c in &clusters {
        assert_eq!(c["cluster"]["server"], "https://10.0.0.5:6443");
    }
    assert_eq!(
        clusters[0]["cluster"]["certificate-authority-data"],
        "SECRET-CA-DATA"
    );
    assert_eq!(json["users"][0]["user"]["token"], "SECRET-TOKEN");
    assert_eq!(json["current-context"], "one");
}

#[test]
fn kubeconfig_is_never_serialized() {
    let spec = ok(&physical(""));
    let json = serde_json::to_string(&spec).unwrap_or_default();
    assert!(!json.contains("SECRET"));
    assert!(!json.contains("kubeconfig"));
    let back: Result<ClusterSpec, _> = serde_json::from_str(&json);
    let back = back.ok();
    assert_eq!(back.as_ref().map(|b| &b.name), Some(&"demo".to_owned()));
    assert_eq!(back.and_then(|b| b.kubeconfig), None);
}

#[test]
fn kubeconfig_as_base64_json_and_inline_mapping() {
    let b64 = base64::engine::general_purpose::STANDARD.encode(KUBECONFIG);
    // Wrapped like `base64` prints it.
    let wrapped: String = b64
        .as_bytes()
        .chunks(76)
        .map(|c| format!("  {}\n", String::from_utf8_lossy(c)))
        .collect();
    let text = format!(
        "name: demo\napi_server: https://10.0.0.5:6443\ncluster_type: physical\nusage: worker\nkubeconfig: |\n{wrapped}"
    );
    let spec = ok(&text);
    assert_eq!(
        kubeconfig_json(&spec)["clusters"][1]["cluster"]["server"],
        "https://10.0.0.5:6443"
    );

    let no_pad = base64::engine::general_purpose::STANDARD_NO_PAD.encode(KUBECONFIG);
    let text = format!(
        "name: demo\napi_server: https://10.0.0.5:6443\ncluster_type: physical\nusage: worker\nkubeconfig: {no_pad}\n"
    );
    assert!(ok(&text).kubeconfig.is_some());

    let json = r#"{"apiVersion":"v1","kind":"Config","clusters":[{"name":"a","cluster":{"server":"https://x:1"}}],"users":[{"name":"u","user":{}}]}"#;
    let text = format!(
        "{{\"name\": \"demo\", \"api_server\": \"https://10.0.0.5:6443\", \"cluster_type\": \"physical\", \"usage\": \"worker\", \"kubeconfig\": {}}}",
        serde_json::to_string(json).unwrap_or_default()
    );
    let spec = ok(&text);
    assert_eq!(
        kubeconfig_json(&spec)["clusters"][0]["cluster"]["server"],
        "https://10.0.0.5:6443"
    );

    let text = format!(
        "name: demo\napi_server: https://10.0.0.5:6443\ncluster_type: physical\nusage: worker\nkubeconfig:\n{}",
        indent(KUBECONFIG, 2)
    );
    let spec = ok(&text);
    assert_eq!(kubeconfig_json(&spec)["users"][0]["name"], "admin");
}

#[test]
fn host_defaults() {
    let text = physical("").replace("usage: worker", "usage: host");
    let spec = ok(&text);
    assert_eq!(spec.usage, Usage::Host);
    assert_eq!(spec.worker_type, None);
    assert_eq!(spec.argocd_host, None);
    assert_eq!(spec.host_cluster, None);
    assert!(spec.traefik.is_some());
    assert!(spec.kubeconfig.is_some());
}

#[test]
fn virtual_worker_defaults() {
    let spec = ok(&virtual_worker(""));
    assert_eq!(spec.cluster_type, ClusterType::Virtual);
    assert_eq!(spec.host_cluster.as_deref(), Some("host"));
    assert_eq!(
        spec.vcluster,
        Some(VclusterSpec {
            https_node_port: 31443,
            storage_class: None
        })
    );
    assert_eq!(spec.traefik, None);
    assert_eq!(spec.kubeconfig, None);
    assert_eq!(spec.worker_type, Some(WorkerType::Deployment));
    assert_eq!(
        spec.argocd_host.as_deref(),
        Some("argocd.demo.10.0.0.5.nip.io")
    );
    let spec = ok(&virtual_worker("vcluster: {https_node_port: \"31000\"}\n"));
    assert_eq!(
        spec.vcluster,
        Some(VclusterSpec {
            https_node_port: 31000,
            storage_class: None
        })
    );
}

#[test]
fn camel_case_flat_form() {
    let text = "name: demo\napiServer: https://10.0.0.5:31443\nclusterKind: kubernetes\nclusterType: virtual\nusage: worker\nworkerType: pipeline\nhostCluster: host\nprimaryDomain: example.com\nargocdHost: https://Argo.Example.com/\nvcluster:\n  httpsNodePort: 31443\ncomponentsList:\n  pipeline: {name: tekton}\n";
    let spec = ok(text);
    assert_eq!(spec.worker_type, Some(WorkerType::Pipeline));
    assert_eq!(spec.primary_domain, "example.com");
    assert_eq!(spec.argocd_host.as_deref(), Some("argo.example.com"));
    assert!(spec.components.contains_key("pipeline"));
}

#[test]
fn upstream_form_camel_and_snake() {
    let camel = "apiVersion: nautes.resource.nautes.io/v1alpha1\nkind: Cluster\nmetadata:\n  name: demo\n  namespace: nautes\n  labels: {a: b}\n  annotations: {c: d}\nspec:\n  apiServer: https://10.0.0.5:31443\n  clusterType: virtual\n  usage: worker\n  hostCluster: host\n";
    let spec = ok(camel);
    assert_eq!(spec.name, "demo");
    assert_eq!(spec.host_cluster.as_deref(), Some("host"));
    let snake = camel
        .replace("apiServer", "api_server")
        .replace("clusterType", "cluster_type")
        .replace("hostCluster", "host_cluster");
    assert_eq!(ok(&snake), spec);
    // Upstream's command-line templates put the name and the kubeconfig in
    // spec, and carry fields this tool does not use.
    let cli = format!(
        "apiVersion: nautes.resource.nautes.io/v1alpha1\nkind: Cluster\nspec:\n  name: demo\n  apiServer: https://10.0.0.5:6443\n  clusterType: physical\n  usage: worker\n  tektonHost: tekton.demo.example.com\n  reservedNamespacesAllowedProducts: {{argocd: [p]}}\n  productAllowedClusterResources: {{p: [{{kind: ClusterRole, group: rbac.authorization.k8s.io}}]}}\n  componentsList:\n    certManagement: {{name: cert-manager}}\n    gateway:\n      name: traefik\n      namespace: traefik\n      additions:\n        httpNodePort: \"30081\"\n        httpsNodePort: \"30444\"\n        other: x\n  kubeconfig: |\n{}",
        indent(KUBECONFIG, 4)
    );
    let spec = ok(&cli);
    assert_eq!(spec.name, "demo");
    assert_eq!(
        spec.traefik,
        Some(NodePorts {
            http_node_port: 30081,
            https_node_port: 30444
        })
    );
    let gateway = spec.components.get("gateway");
    assert_eq!(
        gateway.map(|g| g.additions.keys().cloned().collect::<Vec<_>>()),
        Some(vec!["other".to_owned()])
    );
    assert!(!spec.components.contains_key("certManagement"));
}

#[test]
fn node_ports_as_numbers_or_strings() {
    let spec = ok(&physical(
        "traefik:\n  http_node_port: \"30001\"\n  httpsNodePort: 32767\n",
    ));
    assert_eq!(
        spec.traefik,
        Some(NodePorts {
            http_node_port: 30001,
            https_node_port: 32767
        })
    );
}

#[test]
fn api_server_is_normalized() {
    let spec = ok(&physical("").replace("https://10.0.0.5:6443", "HTTPS://K8S.Example.COM:6443/"));
    assert_eq!(spec.api_server, "https://k8s.example.com:6443");
    assert_eq!(spec.primary_domain, "k8s.example.com");
    assert_eq!(
        kubeconfig_json(&spec)["clusters"][0]["cluster"]["server"],
        "https://k8s.example.com:6443"
    );
    let spec = ok(&physical("").replace("https://10.0.0.5:6443", "https://[2001:db8::1]:6443"));
    assert_eq!(spec.api_server, "https://[2001:db8::1]:6443");
    assert_eq!(spec.primary_domain, "2001-db8-0-0-0-0-0-1.nip.io");
}

#[test]
fn components_and_additions() {
    let text = virtual_worker(
        "components_list:\n  multi_tenant: {name: hnc, namespace: hnc-system}\n  secretSync: {name: external-secrets}\n  deployment: {name: argocd}\n  progressiveDelivery: {name: argo-rollouts}\n  secretManagement:\n    name: vault\n    additions:\n      externalVaultAddr: https://vault:8200\n      replicas: 2\n      enabled: true\n      empty:\n      0755: octal\n  event_listener: {namespace: events}\n",
    );
    let spec = ok(&text);
    let keys: Vec<&str> = spec.components.keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        vec![
            "deployment",
            "eventListener",
            "multiTenant",
            "progressiveDelivery",
            "secretManagement",
            "secretSync"
        ]
    );
    let vault = spec.components.get("secretManagement");
    let additions = vault.map(|v| v.additions.clone()).unwrap_or_default();
    assert_eq!(
        additions.get("externalVaultAddr").map(String::as_str),
        Some("https://vault:8200")
    );
    assert_eq!(additions.get("replicas").map(String::as_str), Some("2"));
    assert_eq!(additions.get("enabled").map(String::as_str), Some("true"));
    assert_eq!(additions.get("empty").map(String::as_str), Some(""));
    assert_eq!(additions.get("0755").map(String::as_str), Some("octal"));
    let events = spec.components.get("eventListener");
    assert_eq!(events.and_then(|e| e.name.clone()), None);
    assert_eq!(
        events.and_then(|e| e.namespace.clone()).as_deref(),
        Some("events")
    );
}

#[test]
fn primary_domain_and_argocd_host() {
    let spec = ok(&physical("primary_domain: apps.example.com.\n"));
    assert_eq!(spec.primary_domain, "apps.example.com");
    assert_eq!(
        spec.argocd_host.as_deref(),
        Some("argocd.demo.apps.example.com")
    );
    let spec = ok(&physical("argocd_host: http://argocd.example.com/\n"));
    assert_eq!(spec.argocd_host.as_deref(), Some("argocd.example.com"));
}

#[test]
fn null_optional_fields_are_absent() {
    let spec = ok(&physical(
        "worker_type:\nprimary_domain: ~\nargocd_host: null\ntraefik:\ncomponents_list:\nhost_cluster:\nvcluster:\n",
    ));
    assert_eq!(spec.worker_type, Some(WorkerType::Deployment));
    assert_eq!(spec.primary_domain, "10.0.0.5.nip.io");
}

#[test]
fn numeric_names_keep_their_spelling() {
    let text = physical("").replace("name: demo", "name: 0123");
    assert_eq!(ok(&text).name, "0123");
}

// ------------------------------------------------------------- the name

#[test]
fn name_from_the_command_line() {
    let text = physical("").replace("name: demo\n", "");
    let spec = parse("t.yaml", &text, Some("from-arg"));
    assert_eq!(spec.map(|s| s.name).ok().as_deref(), Some("from-arg"));
    // The same name in both places is fine.
    assert!(parse("t.yaml", &physical(""), Some("demo")).is_ok());
    assert_eq!(
        errors_of(&physical(""), Some("other")),
        vec![
            "error: t.yaml:1:7: name: \"demo\" does not match the name \"other\" given on the command line; valid: the same name, or no name in the file"
        ]
    );
    assert_eq!(
        errors_of(&text, Some("Bad_Name")),
        vec![
            "error: t.yaml:1:1: name: \"Bad_Name\" (given on the command line) is not a valid name; valid: a DNS-1123 label: 1 to 63 lowercase letters, digits or '-', starting and ending with a letter or digit"
        ]
    );
}

#[test]
fn name_in_upstream_metadata_is_required() {
    let text = "apiVersion: nautes.resource.nautes.io/v1alpha1\nkind: Cluster\nmetadata:\n  labels: {a: b}\nspec:\n  apiServer: https://10.0.0.5:31443\n  clusterType: virtual\n  usage: worker\n  hostCluster: host\n";
    assert_eq!(
        errs(text),
        vec![
            "error: t.yaml:4:3: metadata.name: is missing; valid: a DNS-1123 label: 1 to 63 lowercase letters, digits or '-', starting and ending with a letter or digit, given in the file or on the command line"
        ]
    );
    assert!(parse("t.yaml", text, Some("demo")).is_ok());
}

#[test]
fn names_must_be_labels() {
    for bad in ["Demo", "-demo", "demo-", "de_mo", "de.mo", "\"\"", "[a]"] {
        let text = physical("").replace("name: demo", &format!("name: {bad}"));
        let e = errs(&text);
        assert_eq!(e.len(), 1, "{bad}: {e:?}");
        assert!(e[0].contains("t.yaml:1:7: name: "), "{e:?}");
    }
    let long = "a".repeat(64);
    let text = physical("").replace("name: demo", &format!("name: {long}"));
    assert_eq!(errs(&text).len(), 1);
    assert!(is_dns1123_label(&"a".repeat(63)));
}

// ------------------------------------------------------------ the rules

#[test]
fn required_fields() {
    let text = "name: demo\n";
    assert_eq!(
        errs(text),
        vec![
            "error: t.yaml:1:1: api_server: is missing; valid: an http or https URL with a host and an optional port, such as https://10.0.0.5:6443",
            "error: t.yaml:1:1: cluster_type: is missing; valid: physical, virtual",
            "error: t.yaml:1:1: usage: is missing; valid: worker, host",
        ]
    );
    // In a nested mapping, a missing field points at the mapping.
    let text = "apiVersion: nautes.resource.nautes.io/v1alpha1\nkind: Cluster\nmetadata: {name: demo}\nspec:\n  usage: worker\n  clusterType: virtual\n  hostCluster: host\n";
    assert_eq!(
        errs(text),
        vec![
            "error: t.yaml:5:3: spec.apiServer: is missing; valid: an http or https URL with a host and an optional port, such as https://10.0.0.5:6443"
        ]
    );
}

#[test]
fn enums_say_what_is_valid() {
    assert_one(
        &virtual_worker("").replace("usage: worker", "usage: [worker]"),
        "error: t.yaml:4:8: usage: a list is not valid; valid: worker, host",
    );
    assert_one(
        &virtual_worker("").replace("cluster_type: virtual", "cluster_type: Virtual"),
        "error: t.yaml:3:15: cluster_type: \"Virtual\" is not valid; valid: physical, virtual",
    );
    assert_one(
        &virtual_worker("worker_type: 3\n"),
        "error: t.yaml:6:14: worker_type: 3 is not valid; valid: deployment, pipeline",
    );
}

#[test]
fn api_server_problems() {
    let cases = [
        ("http://", "has no host"),
        ("https://exa_mple.com", "has an invalid host"),
        ("https://10.0.0.5:0", "has a port out of range"),
        ("https://10.0.0.5:port", "has a port that is not a number"),
        (
            "https://10.0.0.5:6443?x=1",
            "has a query or fragment (not shown)",
        ),
        ("tcp://10.0.0.5:6443", "uses the scheme \\\"tcp\\\""),
    ];
    for (url, what) in cases {
        let text = physical("").replace("https://10.0.0.5:6443", url);
        let e = errs(&text);
        assert_eq!(e.len(), 1, "{url}: {e:?}");
        assert!(
            e[0].starts_with("error: t.yaml:2:13: api_server: "),
            "{e:?}"
        );
        assert!(
            e[0].contains(what.replace("\\\"", "\"").as_str()),
            "{url}: {e:?}"
        );
    }
    let text = physical("").replace(
        "https://10.0.0.5:6443",
        "https://10.0.0.5:6443?token=SECRET-Q",
    );
    assert!(!errs(&text).concat().contains("SECRET"));
}

#[test]
fn host_rules() {
    let host = physical("").replace("usage: worker", "usage: host");
    assert_one(
        &host.replace(
            "cluster_type: physical\n",
            "cluster_type: physical\nworkerType: pipeline\n",
        ),
        "error: t.yaml:4:1: workerType: is only for workers; valid: leave it out for a host cluster",
    );
    assert_one(
        &host.replace(
            "cluster_type: physical\n",
            "cluster_type: physical\nhost_cluster: other\n",
        ),
        "error: t.yaml:4:1: host_cluster: is only for virtual clusters; valid: leave it out for a physical cluster",
    );
    let virtual_host = virtual_worker("").replace("usage: worker", "usage: host");
    let e = errs(&virtual_host);
    assert_eq!(
        e,
        vec![
            "error: t.yaml:3:15: cluster_type: \"virtual\" is not valid for a host cluster; valid: physical (a host cluster is always physical)"
        ]
    );
}

#[test]
fn physical_and_virtual_rules() {
    assert_one(
        &physical("vcluster: {httpsNodePort: 31443}\n"),
        "error: t.yaml:5:1: vcluster: is only for virtual clusters; valid: leave it out for a physical cluster (its node ports are set in traefik)",
    );
    assert_one(
        &virtual_worker("traefik: {http_node_port: 30080}\n"),
        "error: t.yaml:6:1: traefik: is not used by a virtual cluster (it uses the Traefik of its host); valid: leave it out for a virtual cluster",
    );
    assert_one(
        &virtual_worker("kubeconfig: abc\n"),
        "error: t.yaml:6:1: kubeconfig: is not accepted for a virtual cluster: its kubeconfig comes from its vcluster; valid: leave it out",
    );
    assert_one(
        &virtual_worker("").replace("host_cluster: host\n", "host_cluster: Host\n"),
        "error: t.yaml:5:15: host_cluster: \"Host\" is not a valid cluster name; valid: the name of the host cluster the virtual cluster runs in (a DNS-1123 label)",
    );
    // An api_server port outside the node port range needs vcluster's port.
    let text = virtual_worker("vcluster: {}\n").replace(":31443", ":443");
    assert_one(
        &text,
        "error: t.yaml:6:11: vcluster.https_node_port: is missing, and the port of api_server (443) is not a node port; valid: a whole number from 30000 to 32767, given here or as the port of api_server",
    );
    let text = virtual_worker("vcluster: {https_node_port: 31000}\n").replace(":31443", "");
    assert_eq!(
        ok(&text).vcluster,
        Some(VclusterSpec {
            https_node_port: 31000,
            storage_class: None
        })
    );
}

#[test]
fn port_rules() {
    let e = errs(&physical(
        "traefik:\n  http_node_port: 29999\n  https_node_port: 32768\n",
    ));
    assert_eq!(
        e,
        vec![
            "error: t.yaml:6:19: traefik.http_node_port: 29999 is out of range; valid: a whole number from 30000 to 32767",
            "error: t.yaml:7:20: traefik.https_node_port: 32768 is out of range; valid: a whole number from 30000 to 32767",
        ]
    );
    // Equal to the other port's default.
    assert_one(
        &physical("traefik: {https_node_port: 30080}\n"),
        "error: t.yaml:5:28: traefik.https_node_port: 30080 is also the port of traefik.http_node_port (by default); valid: two different node ports, each a whole number from 30000 to 32767",
    );
    assert_one(
        &physical("traefik: {http_node_port: 30443}\n"),
        "error: t.yaml:5:27: traefik.http_node_port: 30443 is also the port of traefik.https_node_port (by default); valid: two different node ports, each a whole number from 30000 to 32767",
    );
    assert_one(
        &physical("traefik: {http_node_port: [1]}\n"),
        "error: t.yaml:5:27: traefik.http_node_port: expected a number, found a list; valid: a whole number from 30000 to 32767",
    );
    assert_one(
        &physical("traefik: 30080\n"),
        "error: t.yaml:5:10: traefik: expected a mapping, found a number; valid: a mapping with http_node_port, https_node_port",
    );
}

#[test]
fn both_spellings_of_one_key_are_an_error() {
    assert_one(
        &physical("traefik:\n  http_node_port: 30081\n  httpNodePort: 30082\n"),
        "error: t.yaml:7:3: traefik.httpNodePort: \"httpNodePort\" and \"http_node_port\" (line 6) are the same field; valid: give only one of them",
    );
    assert_one(
        &virtual_worker(
            "componentsList:\n  multiTenant: {name: hnc}\n  multi_tenant: {name: hnc}\n",
        ),
        "error: t.yaml:8:3: componentsList.multi_tenant: \"multi_tenant\" and \"multiTenant\" (line 7) are the same field; valid: give only one of them",
    );
    assert_one(
        "apiVersion: nautes.resource.nautes.io/v1alpha1\napi_version: nautes.resource.nautes.io/v1alpha1\nkind: Cluster\nmetadata: {name: demo}\nspec: {apiServer: \"https://10.0.0.5:31443\", clusterType: virtual, usage: worker, hostCluster: host}\n",
        "error: t.yaml:2:1: api_version: \"api_version\" and \"apiVersion\" (line 1) are the same field; valid: give only one of them",
    );
}

#[test]
fn unknown_fields_get_suggestions() {
    assert_one(
        &physical("argocdHots: argocd.example.com\n"),
        "error: t.yaml:5:1: argocdHots: unknown field \"argocdHots\"; did you mean \"argocdHost\"?",
    );
    assert_one(
        &physical("").replace("usage: worker", "usage: worker\nKubeConfig: x"),
        "error: t.yaml:5:1: KubeConfig: unknown field \"KubeConfig\"; did you mean \"kubeconfig\"?",
    );
    assert_one(
        &virtual_worker("vcluster: {https_port: 31443}\n"),
        "error: t.yaml:6:12: vcluster.https_port: unknown field \"https_port\"; did you mean \"https_node_port\"?",
    );
    assert_one(
        "apiVersion: nautes.resource.nautes.io/v1alpha1\nkind: Cluster\nmetadata: {name: demo, lables: {}}\nspec: {apiServer: \"https://10.0.0.5:31443\", clusterType: virtual, usage: worker, hostCluster: host}\n",
        "error: t.yaml:3:24: metadata.lables: unknown field \"lables\"; did you mean \"labels\"?",
    );
    assert_one(
        &virtual_worker("components_list:\n  deployment: {name: argocd, namspace: argocd}\n"),
        "error: t.yaml:7:30: components_list.deployment.namspace: unknown field \"namspace\"; did you mean \"namespace\"?",
    );
    assert_one(
        &virtual_worker("7: seven\n"),
        "error: t.yaml:6:1: 7: unknown field \"7\"; valid: name, api_server, cluster_kind, cluster_type, usage, worker_type, host_cluster, primary_domain, argocd_host, traefik, vcluster, kubeconfig, components_list, insecure_skip_check, tekton_host, reserved_namespaces_allowed_products, product_allowed_cluster_resources",
    );
    assert_one(
        &virtual_worker("[a]: seven\n"),
        "error: t.yaml:6:1: (document): a list is not a field name; valid: name, api_server, cluster_kind, cluster_type, usage, worker_type, host_cluster, primary_domain, argocd_host, traefik, vcluster, kubeconfig, components_list, insecure_skip_check, tekton_host, reserved_namespaces_allowed_products, product_allowed_cluster_resources",
    );
}

#[test]
fn kubeconfig_problems_never_show_its_content() {
    let bad = [
        "kubeconfig: \"\"\n".to_owned(),
        "kubeconfig:\n".to_owned(),
        "kubeconfig: 12345\n".to_owned(),
        "kubeconfig: {token: SECRET-X}\n".to_owned(),
        "kubeconfig: \"SECRET-X: [\"\n".to_owned(),
        "kubeconfig: |\n  kind: Secret\n  data: {token: SECRET-X}\n".to_owned(),
        "kubeconfig: |\n  clusters: [{name: a, cluster: {certificate-authority-data: SECRET-X}}]\n  users: [{name: u}]\n".to_owned(),
        "kubeconfig: |\n  clusters: [{name: a, cluster: {server: https://x}}]\n  users: SECRET-X\n".to_owned(),
        "kubeconfig: |\n  clusters: [{name: a, cluster: {server: https://x}}]\n  users: [{name: u}]\n  ---\n  token: SECRET-X\n".to_owned(),
        format!(
            "kubeconfig: {}\n",
            base64::engine::general_purpose::STANDARD.encode("users: [SECRET-X]\nclusters: [{cluster: {}}]\n")
        ),
        format!(
            "kubeconfig: {}\n",
            base64::engine::general_purpose::STANDARD.encode([0xff_u8, 0xfe, 0x00, 0x53])
        ),
    ];
    let base =
        "name: demo\napi_server: https://10.0.0.5:6443\ncluster_type: physical\nusage: worker\n";
    for extra in &bad {
        let text = format!("{base}{extra}");
        let e = errs(&text);
        assert_eq!(e.len(), 1, "{extra}: {e:?}");
        assert!(e[0].contains(": kubeconfig: "), "{e:?}");
        assert!(!e[0].contains("SECRET"), "{e:?}");
    }
}

#[test]
fn virtual_kubeconfig_error_names_no_secret() {
    let text = virtual_worker(&format!("kubeconfig: |\n{}", indent(KUBECONFIG, 2)));
    let e = errs(&text).concat();
    assert!(!e.contains("SECRET"));
}

#[test]
fn document_problems() {
    assert_one(
        "",
        "error: t.yaml:1:1: (document): is empty; valid: a mapping of cluster fields such as api_server, cluster_type and usage, or a kind: Cluster resource",
    );
    assert_one(
        "# nothing\n---\n",
        "error: t.yaml:1:1: (document): is empty; valid: a mapping of cluster fields such as api_server, cluster_type and usage, or a kind: Cluster resource",
    );
    assert_one(
        "a: 1\n---\nb: 2\n---\nc: 3\n",
        "error: t.yaml:3:1: (document): holds 3 YAML documents; valid: exactly one cluster spec per file",
    );
    assert_one(
        "42\n",
        "error: t.yaml:1:1: (document): is a number; valid: a mapping of cluster fields such as api_server, cluster_type and usage, or a kind: Cluster resource",
    );
    let e = errs("name: demo\n\tapi_server: x\n");
    assert_eq!(e.len(), 1);
    assert!(e[0].starts_with("error: t.yaml:1:7: "), "{e:?}");
    assert!(e[0].contains("(document): is not valid YAML or JSON: "));
}

#[test]
fn stdin_label_and_display() {
    let e = parse("-", "", None).err();
    assert_eq!(e.as_ref().map(|e| e.file.as_str()), Some("<stdin>"));
    assert!(
        e.map(|e| e.to_string())
            .unwrap_or_default()
            .starts_with("error: <stdin>:1:1: (document): is empty;")
    );
    let errors = SpecErrors {
        file: "f.yaml".into(),
        errors: vec![
            SpecError {
                path: "a".into(),
                line: 1,
                column: 2,
                message: "m1".into(),
            },
            SpecError {
                path: "b.c".into(),
                line: 3,
                column: 4,
                message: "m2".into(),
            },
        ],
    };
    assert_eq!(
        errors.to_string(),
        "error: f.yaml:1:2: a: m1\nerror: f.yaml:3:4: b.c: m2"
    );
    assert_eq!(errors.errors[1].to_string(), "3:4: b.c: m2");
    let as_error: &dyn std::error::Error = &errors;
    assert!(as_error.source().is_none());
}

#[test]
fn errors_are_sorted_by_line() {
    let text = "usage: workr\nname: Bad\ncluster_type: virtuall\napi_server: x\n";
    let e = parse("t.yaml", text, None)
        .err()
        .map(|e| e.errors)
        .unwrap_or_default();
    let lines: Vec<u32> = e.iter().map(|e| e.line).collect();
    let mut sorted = lines.clone();
    sorted.sort_unstable();
    assert_eq!(lines, sorted);
    assert_eq!(lines, vec![1, 2, 3, 4]);
}

// ------------------------------------------------------ hostile input

/// A small deterministic generator, so that the test needs no dependency.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % (n.max(1) as u64)).unwrap_or(0)
    }
}

#[test]
fn never_panics_on_random_text() {
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    let alphabet: Vec<char> = "ab: -[]{}\"',\n\t#&*!|>%@`?~01.éλ\u{0}\u{7f}\u{feff}\\/="
        .chars()
        .collect();
    for _ in 0..1500 {
        let len = rng.below(200);
        let text: String = (0..len)
            .map(|_| alphabet[rng.below(alphabet.len())])
            .collect();
        if let Err(e) = parse("r.yaml", &text, None) {
            assert!(!e.errors.is_empty());
        }
    }
    // Random bytes, read the way a caller reads a file.
    for _ in 0..500 {
        let len = rng.below(300);
        let bytes: Vec<u8> = (0..len).map(|_| (rng.next() & 0xff) as u8).collect();
        let text = String::from_utf8_lossy(&bytes);
        let _ = parse("r.yaml", &text, Some("x"));
    }
}

#[test]
fn never_panics_on_mutated_specs() {
    let mut rng = XorShift(42);
    let bases = [
        physical("traefik: {http_node_port: 30080}\ncomponents_list: {gateway: {name: traefik, additions: {httpNodePort: 30080}}}\n"),
        virtual_worker("vcluster: {httpsNodePort: \"31443\"}\n"),
        "apiVersion: nautes.resource.nautes.io/v1alpha1\nkind: Cluster\nmetadata: {name: demo}\nspec: {apiServer: \"https://10.0.0.5:31443\", clusterType: virtual, usage: worker, hostCluster: host}\n".to_owned(),
    ];
    let pieces = [
        "",
        ":",
        " ",
        "\n",
        "-",
        "[",
        "]",
        "{",
        "}",
        "\"",
        "'",
        "null",
        "~",
        "0",
        "99999999999999999999999999",
        "&a",
        "*a",
        "<<: *a",
        "!!str",
        "\t",
        "---\n",
        "\u{feff}",
    ];
    for base in &bases {
        for _ in 0..700 {
            let chars: Vec<char> = base.chars().collect();
            let mut text = String::new();
            let cut = rng.below(chars.len());
            let skip = rng.below(8);
            text.extend(chars.iter().take(cut));
            text.push_str(pieces[rng.below(pieces.len())]);
            text.extend(chars.iter().skip(cut + skip));
            let _ = parse("m.yaml", &text, None);
        }
    }
}

#[test]
fn deep_nesting_is_refused() {
    for text in [
        "[".repeat(100_000),
        format!("{}{}", "[".repeat(5_000), "]".repeat(5_000)),
        "{a: ".repeat(10_000),
        (0..500)
            .map(|i| format!("{}a:\n", " ".repeat(i)))
            .collect::<String>(),
        (0..500)
            .map(|i| format!("{}- \n", " ".repeat(i * 2)))
            .collect::<String>(),
        format!("name: demo\nkubeconfig: {}\n", "[".repeat(1_000)),
    ] {
        let e = errs(&text);
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(e[0].contains("(document): "), "{e:?}");
    }
}

#[test]
fn deep_nesting_inside_a_kubeconfig_string_is_refused() {
    let inner: String = (0..200).map(|i| format!("{}a:\n", " ".repeat(i))).collect();
    let b64 = base64::engine::general_purpose::STANDARD.encode(inner);
    let text = format!(
        "name: demo\napi_server: https://10.0.0.5:6443\ncluster_type: physical\nusage: worker\nkubeconfig: {b64}\n"
    );
    assert_one(
        &text,
        "error: t.yaml:5:13: kubeconfig: at line 21, column 21 of the base64-decoded kubeconfig: is nested deeper than 20 levels, the limit; valid: at most 20 levels of nested mappings and lists",
    );
}

#[test]
fn alias_bombs_are_refused() {
    let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 1..12 {
        let prev = format!("*a{}", i - 1);
        let items = [prev.as_str(); 10].join(", ");
        text.push_str(&format!("a{i}: &a{i} [{items}]\n"));
    }
    let e = errs(&text);
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(
        e[0].contains("(document): expands YAML aliases to more than 10000 nodes"),
        "{e:?}"
    );
    // An alias chain deeper than the nesting limit.
    let mut chain = String::from("l0: &l0 [x]\n");
    for i in 1..60 {
        chain.push_str(&format!("l{i}: &l{i} [*l{}]\n", i - 1));
    }
    assert_eq!(errs(&chain).len(), 1);
}

#[test]
fn huge_input_is_refused() {
    let text = format!("name: demo\nx: \"{}\"\n", "a".repeat(super::MAX_SPEC_BYTES));
    assert_one(
        &text,
        "error: t.yaml:1:1: (document): is larger than 1 MiB (1048576 bytes), the limit; valid: a cluster spec of at most 1 MiB",
    );
}

// ------------------------------------------------ fixtures and examples

fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &Path) -> String {
    String::from_utf8_lossy(&std::fs::read(path).unwrap_or_default()).into_owned()
}

#[test]
fn invalid_fixtures_match_their_expected_errors() {
    let dir = crate_dir().join("tests/specs/invalid");
    let mut entries: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map(|rd| rd.filter_map(Result::ok).map(|e| e.path()).collect())
        .unwrap_or_default();
    entries.sort();
    let mut checked = 0;
    let mut failures = Vec::new();
    for path in entries {
        let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
        if ext != "yaml" && ext != "json" {
            continue;
        }
        let file = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_owned();
        let expect = read(&path.with_extension("expect"));
        assert!(!expect.is_empty(), "{file} has no .expect file");
        // as the commands load a spec: a kubeconfig that runs commands or
        // reads local files is refused (no --allow-exec-kubeconfig)
        let got = match parse(&file, &read(&path), None)
            .and_then(|spec| spec.refuse_local_access(&file, false))
        {
            Ok(()) => "(parsed without errors)\n".to_owned(),
            Err(e) => format!("{e}\n"),
        };
        if got != expect {
            failures.push(format!("{file}:\n--- expected\n{expect}--- got\n{got}"));
        }
        assert!(
            !got.contains("SECRET") && !got.contains("DO-NOT-SHOW"),
            "{file} shows a secret: {got}"
        );
        checked += 1;
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // the exact number, so that a deleted fixture fails (as tests/it/specs.rs)
    assert_eq!(checked, 72, "tests/specs/invalid: {checked} fixtures");
}

#[test]
fn examples_parse() {
    let dir = crate_dir().join("examples");
    let cases = [
        (
            "cluster-physical-worker.yaml",
            "cluster-physical-demo",
            ClusterType::Physical,
            Usage::Worker,
        ),
        (
            "cluster-host.yaml",
            "cluster-host-demo",
            ClusterType::Physical,
            Usage::Host,
        ),
        (
            "cluster-virtual-worker.yaml",
            "cluster-virtual-demo",
            ClusterType::Virtual,
            Usage::Worker,
        ),
        (
            "cluster-upstream-form.yaml",
            "cluster-upstream-demo",
            ClusterType::Virtual,
            Usage::Worker,
        ),
    ];
    for (file, name, cluster_type, usage) in cases {
        let text = read(&dir.join(file));
        let spec = match parse(file, &text, None) {
            Ok(spec) => spec,
            Err(e) => panic!("{e}"),
        };
        assert_eq!(spec.name, name);
        assert_eq!(spec.cluster_type, cluster_type);
        assert_eq!(spec.usage, usage);
    }
    let virtual_spec = parse(
        "v.yaml",
        &read(&dir.join("cluster-virtual-worker.yaml")),
        None,
    )
    .ok();
    assert_eq!(
        virtual_spec
            .as_ref()
            .and_then(|s| s.host_cluster.as_deref()),
        Some("cluster-host-demo")
    );
    assert_eq!(
        virtual_spec.map(|s| s.api_server),
        Some("https://127.0.0.1:31443".to_owned())
    );
}

#[test]
fn at_most_a_hundred_errors_are_printed_and_the_rest_counted() {
    let mut text = String::from(
        "name: many\napi_server: https://10.0.0.5:6443\ncluster_type: physical\nusage: worker\n",
    );
    for i in 0..150 {
        text.push_str(&format!("unknown_key_{i}: 1\n"));
    }
    let err = parse("many.yaml", &text, None).expect_err("unknown keys");
    assert!(err.errors.len() >= 150, "{}", err.errors.len());
    let shown = err.to_string();
    assert_eq!(shown.lines().count(), MAX_SHOWN_ERRORS + 1, "{shown}");
    assert!(shown.ends_with("more error(s) not shown"), "{shown}");
}

// ------------------------------------------------ kubeconfig schema and local access

/// A physical worker whose kubeconfig (a literal block) has this user.
fn with_user(user: &str) -> String {
    let kubeconfig = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: {{server: \"https://10.0.0.5:6443\"}}\nusers:\n- name: u\n  user:\n    token: CANARY-TOKEN-0123456789abcdef\n{}contexts:\n- name: x\n  context: {{cluster: c, user: u}}\n",
        indent(user, 4)
    );
    format!(
        "name: demo\napi_server: https://10.0.0.5:6443\ncluster_type: physical\nusage: worker\nkubeconfig: |\n{}",
        indent(&kubeconfig, 2)
    )
}

#[test]
fn kubeconfig_fields_are_checked_against_the_schema_without_their_values() {
    let text = with_user(
        "exec:\n  command: aws\n  args: \"--oops\"\n  env: [{name: A, value: 1}]\n  interactiveMode: Sometimes\n",
    );
    let e = errs(&text);
    assert_eq!(
        e,
        vec![
            "error: t.yaml:17:15: kubeconfig.users[0].user.exec.args: expected a list of strings, found a string; valid: a list of strings",
            "error: t.yaml:18:32: kubeconfig.users[0].user.exec.env[0].value: expected a string, found a number; valid: a string",
            "error: t.yaml:19:26: kubeconfig.users[0].user.exec.interactiveMode: is not one of the accepted values; valid: one of Never, IfAvailable, Always",
        ]
    );
    assert!(!e.join("\n").contains("CANARY") && !e.join("\n").contains("oops"));
    // the line and column are the spec's: line 17, column 15 is the args value
    assert_eq!(text.lines().nth(16), Some("        args: \"--oops\""));
    // inline and base64 forms: the spec's position, or the position inside
    let inline = "name: demo\napi_server: https://10.0.0.5:6443\ncluster_type: physical\nusage: worker\nkubeconfig:\n  clusters: [{name: c, cluster: {server: https://x, insecure-skip-tls-verify: \"yes\"}}]\n  users: [{name: u, user: {token: CANARY}}]\n";
    assert_one(
        inline,
        "error: t.yaml:6:79: kubeconfig.clusters[0].cluster.insecure-skip-tls-verify: expected true or false, found a string; valid: true or false",
    );
    let b64 = base64::engine::general_purpose::STANDARD
        .encode("clusters: [{name: c, cluster: {server: https://x}}]\nusers:\n- name: u\n  user: {token: CANARY, as-groups: admins}\n");
    assert_one(
        &format!(
            "name: demo\napi_server: https://10.0.0.5:6443\ncluster_type: physical\nusage: worker\nkubeconfig: {b64}\n"
        ),
        "error: t.yaml:5:13: kubeconfig.users[0].user.as-groups: expected a list of strings, found a string (at line 4, column 36 of the base64-decoded kubeconfig); valid: a list of strings",
    );
    // required names, contexts without a cluster
    let text = "name: demo\napi_server: https://10.0.0.5:6443\ncluster_type: physical\nusage: worker\nkubeconfig:\n  clusters: [{cluster: {server: https://x}}]\n  users: [{name: u, user: {token: CANARY}}]\n  contexts: [{name: x, context: {user: u}}]\n";
    assert_eq!(
        errs(text),
        vec![
            "error: t.yaml:6:14: kubeconfig.clusters[0]: has no name; valid: an entry with name",
            "error: t.yaml:8:33: kubeconfig.contexts[0].context: has no cluster; valid: an entry with cluster",
        ]
    );
}

#[test]
fn kubeconfig_fields_that_run_commands_or_read_files_are_recorded_with_their_lines() {
    let spec = ok(&with_user(
        "exec: {command: aws, args: [eks, get-token]}\ntokenFile: /var/run/token\nclient-key: /k.pem\nclient-certificate: /c.pem\nauth-provider: {name: gcp, config: {cmd-path: gcloud}}\n",
    ));
    let got: Vec<(String, u32)> = spec
        .kubeconfig_access
        .iter()
        .map(|a| (a.path.clone(), a.line))
        .collect();
    assert_eq!(
        got,
        vec![
            ("kubeconfig.users[0].user.tokenFile".to_owned(), 16),
            ("kubeconfig.users[0].user.client-certificate".to_owned(), 18),
            ("kubeconfig.users[0].user.client-key".to_owned(), 17),
            ("kubeconfig.users[0].user.auth-provider".to_owned(), 19),
            ("kubeconfig.users[0].user.exec".to_owned(), 15),
        ]
    );
    let refused = spec
        .refuse_local_access("t.yaml", false)
        .map_err(|e| e.to_string());
    let text = refused.expect_err("refused without the flag");
    assert_eq!(text.lines().count(), 5, "{text}");
    assert!(
        text.starts_with("error: t.yaml:15:13: kubeconfig.users[0].user.exec: runs a command on this machine when the kubeconfig is used; valid: token, or client-certificate-data and client-key-data instead, or pass --allow-exec-kubeconfig"),
        "{text}"
    );
    assert!(
        !text.contains("CANARY") && !text.contains("/k.pem"),
        "{text}"
    );
    assert_eq!(spec.refuse_local_access("t.yaml", true), Ok(()));
    // the CA path of a cluster too; a kubeconfig with data only has none
    let text = physical("").replace(
        "certificate-authority-data: SECRET-CA-DATA",
        "certificate-authority: /etc/ca.pem",
    );
    let spec = ok(&text);
    assert_eq!(spec.kubeconfig_access.len(), 1);
    assert_eq!(
        spec.kubeconfig_access[0].path,
        "kubeconfig.clusters[0].cluster.certificate-authority"
    );
    assert!(ok(&physical("")).kubeconfig_access.is_empty());
}

#[test]
fn a_spec_debug_never_shows_its_kubeconfig() {
    let spec = ok(&physical(""));
    assert!(
        spec.kubeconfig
            .as_deref()
            .unwrap_or("")
            .contains("SECRET-TOKEN")
    );
    let shown = format!("{spec:?} {spec:#?}");
    assert!(!shown.contains("SECRET"), "{shown}");
    assert!(
        shown.contains("<redacted>") && shown.contains("demo"),
        "{shown}"
    );
}

#[test]
fn insecure_skip_check_is_a_boolean_false_unless_given() {
    assert!(!ok(&virtual_worker("")).insecure_skip_check);
    assert!(ok(&virtual_worker("insecure_skip_check: true\n")).insecure_skip_check);
    assert!(ok(&virtual_worker("insecureSkipCheck: true\n")).insecure_skip_check);
    assert!(!ok(&virtual_worker("insecure_skip_check: false\n")).insecure_skip_check);
    assert_one(
        &virtual_worker("insecure_skip_check: \"yes\"\n"),
        "error: t.yaml:6:22: insecure_skip_check: expected true or false, found a string; valid: true or false",
    );
}

#[test]
fn upstream_fields_are_kept_and_checked() {
    let spec = ok(&virtual_worker(
        "tekton_host: tekton.demo.example.com\nreserved_namespaces_allowed_products: {argocd: [shop, pay]}\nproduct_allowed_cluster_resources: {shop: [{kind: ClusterRole, group: rbac.authorization.k8s.io}, {kind: Namespace, group: ''}]}\n",
    ));
    assert_eq!(spec.tekton_host.as_deref(), Some("tekton.demo.example.com"));
    assert_eq!(
        spec.reserved_namespaces_allowed_products.get("argocd"),
        Some(&vec!["shop".to_string(), "pay".to_string()])
    );
    let shop = &spec.product_allowed_cluster_resources["shop"];
    assert_eq!(
        (shop[1].kind.as_str(), shop[1].group.as_str()),
        ("Namespace", "")
    );
    assert_one(
        &virtual_worker("reserved_namespaces_allowed_products: {argocd: shop}\n"),
        "error: t.yaml:6:48: reserved_namespaces_allowed_products.argocd: expected a list, found a string; valid: a list of product names",
    );
    assert_one(
        &virtual_worker("product_allowed_cluster_resources: {shop: [{kind: ClusterRole}]}\n"),
        "error: t.yaml:6:44: product_allowed_cluster_resources.shop[0].group: is missing; valid: a mapping with kind and group, such as {kind: ClusterRole, group: rbac.authorization.k8s.io}",
    );
}

#[test]
fn vcluster_storage_class_names_a_storage_class() {
    let spec = ok(&virtual_worker("vcluster:\n  storage_class: fast-ssd\n"));
    assert_eq!(
        spec.vcluster,
        Some(VclusterSpec {
            https_node_port: 31443,
            storage_class: Some("fast-ssd".to_owned())
        })
    );
    let spec = ok(&virtual_worker("vcluster: {storageClass: gp3.csi}\n"));
    assert_eq!(
        spec.vcluster.and_then(|v| v.storage_class).as_deref(),
        Some("gp3.csi")
    );
    assert_one(
        &virtual_worker("vcluster:\n  storage_class: Fast_SSD\n"),
        "error: t.yaml:7:18: vcluster.storage_class: \"Fast_SSD\" is not a valid StorageClass name; valid: the name of a StorageClass of the host (a DNS-1123 subdomain: lowercase letters, digits, '-' and '.'), or leave it out for the host's default StorageClass",
    );
    assert_one(
        &virtual_worker("vcluster:\n  storage_class: \"\"\n"),
        "error: t.yaml:7:18: vcluster.storage_class: \"\" is empty; valid: the name of a StorageClass of the host (a DNS-1123 subdomain: lowercase letters, digits, '-' and '.'), or leave it out for the host's default StorageClass",
    );
    assert_one(
        &virtual_worker("vcluster:\n  storage_class: [a]\n"),
        "error: t.yaml:7:18: vcluster.storage_class: expected a string, found a list; valid: the name of a StorageClass of the host (a DNS-1123 subdomain: lowercase letters, digits, '-' and '.'), or leave it out for the host's default StorageClass",
    );
}
