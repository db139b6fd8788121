//! Smoke tests of the test bed itself through kube-rs: the things every later
//! test stands on.

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use serde_json::json;

use crate::testbed::TestBed;

async fn eventually<F, Fut>(what: &str, timeout: Duration, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = std::time::Instant::now() + timeout;
    while !f().await {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn testbed_serves_crds_deployments_namespaces_rbac_and_isolated_clusters() {
    let bed = TestBed::start(&["one", "two"]);
    let one = crate::helpers::client(&bed.cluster("one").kubeconfig).await;
    let two = crate::helpers::client(&bed.cluster("two").kubeconfig).await;

    // /version reports the real Kubernetes version, not v0.0.0
    let v = one.apiserver_version().await.expect("version");
    assert_eq!(v.major, "1");
    assert!(v.git_version.starts_with("v1.36."), "{}", v.git_version);

    // server-side apply of a CRD, wait Established, then a custom resource
    let crd = json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.smoke.nautes.io"},
        "spec": {"group": "smoke.nautes.io", "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
            "versions": [{"name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]}
    });
    let crds: Api<DynamicObject> = Api::all_with(
        one.clone(),
        &kube::discovery::ApiResource::erase::<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition>(&()),
    );
    crds.patch(
        "widgets.smoke.nautes.io",
        &PatchParams::apply("smoke").force(),
        &Patch::Apply(&crd),
    )
    .await
    .expect("apply CRD");
    eventually("CRD Established", Duration::from_secs(30), || async {
        crds.get("widgets.smoke.nautes.io")
            .await
            .ok()
            .is_some_and(|c| {
                c.data["status"]["conditions"].as_array().is_some_and(|cs| {
                    cs.iter()
                        .any(|c| c["type"] == "Established" && c["status"] == "True")
                })
            })
    })
    .await;
    let gvk = kube::api::GroupVersionKind::gvk("smoke.nautes.io", "v1", "Widget");
    let (ar, _) = kube::discovery::pinned_kind(&one, &gvk)
        .await
        .expect("discover Widget");
    let widgets: Api<DynamicObject> = Api::namespaced_with(one.clone(), "default", &ar);
    let w = json!({"apiVersion": "smoke.nautes.io/v1", "kind": "Widget", "metadata": {"name": "w1"}, "spec": {"size": 3}});
    widgets
        .patch("w1", &PatchParams::apply("smoke"), &Patch::Apply(&w))
        .await
        .expect("apply Widget");
    assert_eq!(
        widgets.get("w1").await.expect("get Widget").data["spec"]["size"],
        3
    );

    // a Deployment becomes Available: scheduler + kwok make its Pod Ready
    let deployments: Api<Deployment> = Api::namespaced(one.clone(), "default");
    let d: Deployment = serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": "nginx"}]}}}
    }))
    .expect("deployment");
    deployments
        .create(&PostParams::default(), &d)
        .await
        .expect("create Deployment");
    eventually("Deployment available", Duration::from_secs(60), || async {
        deployments
            .get("web")
            .await
            .ok()
            .and_then(|d| d.status)
            .and_then(|s| s.available_replicas)
            == Some(2)
    })
    .await;

    // a deleted namespace is really gone (the namespace controller runs)
    let namespaces: Api<Namespace> = Api::all(one.clone());
    let ns: Namespace =
        serde_json::from_value(json!({"metadata": {"name": "doomed"}})).expect("ns");
    namespaces
        .create(&PostParams::default(), &ns)
        .await
        .expect("create namespace");
    namespaces
        .delete("doomed", &Default::default())
        .await
        .expect("delete namespace");
    eventually("namespace gone", Duration::from_secs(60), || async {
        matches!(namespaces.get_opt("doomed").await, Ok(None))
    })
    .await;

    // a restricted user gets 403 where RBAC says so
    let restricted = crate::helpers::client(&bed.cluster("one").restricted_kubeconfig).await;
    let err = Api::<Namespace>::all(restricted)
        .list(&Default::default())
        .await
        .expect_err("a user without RBAC must not list namespaces");
    match err {
        kube::Error::Api(s) => assert_eq!(s.code, 403, "{s:?}"),
        other => panic!("expected 403, got {other:?}"),
    }

    // the second cluster is independent of the first
    assert!(
        kube::discovery::pinned_kind(&two, &gvk).await.is_err(),
        "the CRD applied to cluster one must not exist in cluster two"
    );
    assert!(
        Api::<Deployment>::namespaced(two.clone(), "default")
            .get_opt("web")
            .await
            .expect("get")
            .is_none()
    );
    assert_ne!(bed.cluster("one").server, bed.cluster("two").server);
}
