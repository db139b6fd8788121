//! What an admission object calls: the Services of a webhook configuration
//! (`webhooks[].clientConfig.service`) and of an APIService
//! (`spec.service`), and whether such a Service has a ready endpoint.
//!
//! A webhook configuration applied before its backend answers makes every
//! write it covers fail (with failurePolicy Fail); one applied only after
//! every workload is ready can deadlock, when a workload becomes ready only
//! once the configuration exists (external-secrets' cert-controller injects
//! the webhook's caBundle and reports ready only then). So each admission
//! object is applied as soon as the Services it calls have a ready
//! endpoint, and the other workloads are waited for afterwards.

use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::Api;
use kube::api::ListParams;
use serde_json::Value;

use super::Cluster;
use crate::error::Result;
use crate::render::Manifest;

/// A Service an admission object calls: (namespace, name).
pub type ServiceRef = (String, String);

/// The Services an admission object calls, without repeats; none for a
/// webhook given by URL or a local APIService.
pub fn services_called(m: &Manifest) -> Vec<ServiceRef> {
    let refs: Vec<&Value> = match m.kind() {
        "ValidatingWebhookConfiguration" | "MutatingWebhookConfiguration" => m.object["webhooks"]
            .as_array()
            .map(|ws| ws.iter().map(|w| &w["clientConfig"]["service"]).collect())
            .unwrap_or_default(),
        "APIService" => vec![&m.object["spec"]["service"]],
        _ => Vec::new(),
    };
    let mut out: Vec<ServiceRef> = Vec::new();
    for s in refs {
        let (Some(ns), Some(name)) = (s["namespace"].as_str(), s["name"].as_str()) else {
            continue;
        };
        let r = (ns.to_string(), name.to_string());
        if !out.contains(&r) {
            out.push(r);
        }
    }
    out
}

/// Whether a Service has at least one ready endpoint address (the
/// EndpointSlices labelled with its name; an endpoint whose `ready` is
/// unset counts as ready, as kube-proxy counts it).
pub async fn has_ready_endpoint(cluster: &Cluster, (ns, name): &ServiceRef) -> Result<bool> {
    let api: Api<EndpointSlice> = Api::namespaced(cluster.client.clone(), ns);
    let lp = ListParams::default().labels(&format!("kubernetes.io/service-name={name}"));
    let slices = super::retry(|| api.list(&lp))
        .await
        .map_err(|e| cluster.err(e))?;
    Ok(slices.items.iter().any(|s| {
        s.endpoints.iter().flatten().any(|e| {
            !e.addresses.is_empty() && e.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true)
        })
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn manifest(object: Value) -> Manifest {
        Manifest {
            component: "c".into(),
            namespace: "ns".into(),
            object,
        }
    }

    #[test]
    fn the_services_a_webhook_configuration_or_an_api_service_calls() {
        let vwc = manifest(json!({
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingWebhookConfiguration",
            "metadata": {"name": "v"},
            "webhooks": [
                {"name": "a", "clientConfig": {"service": {"namespace": "es", "name": "webhook"}}},
                {"name": "b", "clientConfig": {"service": {"namespace": "es", "name": "webhook"}}},
                {"name": "c", "clientConfig": {"url": "https://example.com/validate"}},
                {"name": "d", "clientConfig": {"service": {"namespace": "other", "name": "hook"}}},
            ],
        }));
        assert_eq!(
            services_called(&vwc),
            vec![
                ("es".to_string(), "webhook".to_string()),
                ("other".to_string(), "hook".to_string())
            ]
        );
        let api = manifest(json!({
            "apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService",
            "metadata": {"name": "v1beta1.metrics.k8s.io"},
            "spec": {"service": {"namespace": "kube-system", "name": "metrics-server"}},
        }));
        assert_eq!(
            services_called(&api),
            vec![("kube-system".to_string(), "metrics-server".to_string())]
        );
        let local = manifest(json!({
            "apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService",
            "metadata": {"name": "v1.apps"}, "spec": {},
        }));
        assert!(services_called(&local).is_empty());
    }
}
