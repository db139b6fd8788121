//! The floor for `make bench`'s apply throughput: a minimal client that sends
//! one server-side apply request per generated object, `CONCURRENCY` in
//! flight at once (kubectl-nautes' default `--concurrency`), and nothing else
//! (no render, no discovery, no inventory, no waiting, no retries).
//!
//!     raw_apply KUBECONFIG COUNT [cm|mixed] [NAMESPACE]
//!
//! The objects are the same as the ones `scripts/bench.sh` adds to the test
//! chart (same names, data and labels, plus the four labels kubectl-nautes
//! puts on every object), so both sides send the API server the same work:
//! `cm` is COUNT ConfigMaps, `mixed` cycles through ConfigMap, Secret,
//! ServiceAccount, headless Service, Role and RoleBinding. The namespace
//! (default `raw-<set>-<COUNT>`) is created first, outside the timing. The
//! labels have the sizes of the plugin's but other values (cluster
//! `raw-client`, a made-up ApplySet id), so these objects never pass for a
//! registration's when both share a cluster.
//!
//! Prints one line: `raw_apply set=cm count=N seconds=S objects_per_second=X`.
//! Exit 1 when a request failed. Run with other arguments (as `cargo test
//! --all-targets` and `cargo bench` do), it prints its usage and exits 0.

use std::time::Instant;

use futures::StreamExt;
use kube::api::{
    Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams,
};
use kube::config::{KubeConfigOptions, Kubeconfig};
use serde_json::{Value, json};

/// kubectl-nautes' default `--concurrency` (requests in flight per cluster).
const CONCURRENCY: usize = 16;
const FIELD_MANAGER: &str = "raw-apply-bench";
/// The payload of every generated object: the same string as the chart's.
const PAYLOAD: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

fn usage() {
    eprintln!(
        "usage: raw_apply KUBECONFIG COUNT [cm|mixed] [NAMESPACE]\n\
         (a benchmark helper run by scripts/bench.sh; nothing to do without those arguments)"
    );
}

/// The labels kubectl-nautes adds to each object (same keys, same lengths).
fn labels(kind: &str) -> Value {
    json!({
        "app.kubernetes.io/part-of": "nautes-bench",
        "nautes.io/bench-kind": kind,
        "app.kubernetes.io/managed-by": "kubectl-nautes",
        "nautes.io/cluster": "raw-client",
        "nautes.io/component": "traefik",
        "applyset.kubernetes.io/part-of": "applyset-rawrawrawrawrawrawrawrawrawrawrawrawrawrawr-v1",
    })
}

/// Object `i` of a set, as (api resource, object), identical to the chart's.
fn object(set: &str, i: usize, ns: &str) -> (ApiResource, Value) {
    let kind = if set == "cm" { 0 } else { i % 6 };
    let (gvk, plural, obj) = match kind {
        0 => (
            GroupVersionKind::gvk("", "v1", "ConfigMap"),
            "configmaps",
            json!({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": format!("bench-cm-{i}"), "namespace": ns, "labels": labels("cm")},
                "data": {"index": i.to_string(), "payload": PAYLOAD}}),
        ),
        1 => (
            GroupVersionKind::gvk("", "v1", "Secret"),
            "secrets",
            json!({"apiVersion": "v1", "kind": "Secret",
                "metadata": {"name": format!("bench-secret-{i}"), "namespace": ns, "labels": labels("secret")},
                "type": "Opaque",
                "stringData": {"index": i.to_string(), "payload": PAYLOAD}}),
        ),
        2 => (
            GroupVersionKind::gvk("", "v1", "ServiceAccount"),
            "serviceaccounts",
            json!({"apiVersion": "v1", "kind": "ServiceAccount",
                "metadata": {"name": format!("bench-sa-{i}"), "namespace": ns, "labels": labels("sa")}}),
        ),
        3 => (
            GroupVersionKind::gvk("", "v1", "Service"),
            "services",
            json!({"apiVersion": "v1", "kind": "Service",
                "metadata": {"name": format!("bench-svc-{i}"), "namespace": ns, "labels": labels("svc")},
                "spec": {"clusterIP": "None", "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}}),
        ),
        4 => (
            GroupVersionKind::gvk("rbac.authorization.k8s.io", "v1", "Role"),
            "roles",
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
                "metadata": {"name": format!("bench-role-{i}"), "namespace": ns, "labels": labels("role")},
                "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list"]}]}),
        ),
        _ => (
            GroupVersionKind::gvk("rbac.authorization.k8s.io", "v1", "RoleBinding"),
            "rolebindings",
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                "metadata": {"name": format!("bench-rb-{i}"), "namespace": ns, "labels": labels("rb")},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": format!("bench-role-{}", i - 1)},
                "subjects": [{"kind": "ServiceAccount", "name": "default", "namespace": ns}]}),
        ),
    };
    (ApiResource::from_gvk_with_plural(&gvk, plural), obj)
}

async fn client(path: &str) -> Result<kube::Client, String> {
    let kc = Kubeconfig::read_from(path).map_err(|e| format!("{path}: {e}"))?;
    let config = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .map_err(|e| format!("{path}: {e}"))?;
    kube::Client::try_from(config).map_err(|e| format!("{path}: {e}"))
}

async fn run(path: &str, count: usize, set: &str, ns: &str) -> Result<f64, String> {
    let client = client(path).await?;
    // the namespace, outside the timing (a user creates it once)
    let nss: Api<DynamicObject> = Api::all_with(
        client.clone(),
        &ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk("", "v1", "Namespace"),
            "namespaces",
        ),
    );
    let ns_obj: DynamicObject = serde_json::from_value(
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
    )
    .map_err(|e| e.to_string())?;
    match nss.create(&PostParams::default(), &ns_obj).await {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 409 => {}
        Err(e) => return Err(format!("create namespace {ns}: {e}")),
    }
    let objects: Vec<(ApiResource, Value)> = (0..count).map(|i| object(set, i, ns)).collect();
    let pp = PatchParams::apply(FIELD_MANAGER);
    let start = Instant::now();
    let errors: Vec<String> = futures::stream::iter(objects.iter().map(|(ar, obj)| {
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, ar);
        let pp = &pp;
        async move {
            let name = obj["metadata"]["name"].as_str().unwrap_or_default();
            api.patch(name, pp, &Patch::Apply(obj))
                .await
                .map(|_| ())
                .map_err(|e| format!("{}/{name}: {e}", ar.kind))
        }
    }))
    .buffer_unordered(CONCURRENCY)
    .filter_map(|r| async move { r.err() })
    .collect()
    .await;
    let secs = start.elapsed().as_secs_f64();
    if let Some(first) = errors.first() {
        return Err(format!(
            "{} request(s) failed, first: {first}",
            errors.len()
        ));
    }
    Ok(secs)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let count = args.get(1).and_then(|c| c.parse::<usize>().ok());
    let (Some(path), Some(count)) = (args.first(), count) else {
        // `cargo test --all-targets` runs this with no or libtest arguments:
        // stay silent then, so the test run's last lines are the test results
        if args.iter().any(|a| a == "-h" || a == "--help") {
            usage();
        }
        return;
    };
    if !std::path::Path::new(path).is_file() {
        usage();
        return;
    }
    let set = args.get(2).map(String::as_str).unwrap_or("cm");
    if set != "cm" && set != "mixed" {
        eprintln!("raw_apply: set {set:?}: valid: cm, mixed");
        std::process::exit(2);
    }
    let ns = args
        .get(3)
        .cloned()
        .unwrap_or_else(|| format!("raw-{set}-{count}"));
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("raw_apply: tokio: {e}");
            std::process::exit(1);
        }
    };
    match rt.block_on(run(path, count, set, &ns)) {
        Ok(secs) => {
            let rate = if secs > 0.0 { count as f64 / secs } else { 0.0 };
            println!(
                "raw_apply set={set} count={count} seconds={secs:.3} objects_per_second={rate:.1}"
            );
        }
        Err(e) => {
            eprintln!("raw_apply: {e}");
            std::process::exit(1);
        }
    }
}
