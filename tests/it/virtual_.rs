//! Host clusters and virtual (vcluster) workers, end to end: management,
//! host and a third test cluster that serves as the virtual cluster's API.
//!
//! SIMULATED: a real vcluster runs its control plane inside a Pod, which kwok
//! does not execute. So this test plays the vcluster's one visible act: once
//! the vcluster StatefulSet exists in the host, it writes Secret vc-<name>
//! (key `config`) with a kubeconfig for the "virtual" test cluster. Every
//! other step is the real plugin against real API servers.

use std::time::Duration;

use k8s_openapi::api::core::v1::{Namespace, Secret, Service};
use kube::Api;
use kube::api::PostParams;
use serde_json::json;

use crate::helpers::*;
use crate::testbed::TestBed;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_then_virtual_worker_then_destroy_in_order_leaves_nothing() {
    let bed = TestBed::start(&["management", "host", "virtual"]);
    let mgmt_kc = bed.cluster("management").kubeconfig.clone();
    let host = bed.cluster("host").clone();
    let virt = bed.cluster("virtual").clone();
    let (mgmt, hc, vc) = (
        client(&mgmt_kc).await,
        client(&host.kubeconfig).await,
        client(&virt.kubeconfig).await,
    );
    let vspec = json!({
        "name": "vdemo", "api_server": virt.server, "cluster_kind": "kubernetes",
        "cluster_type": "virtual", "usage": "worker", "hostCluster": "hdemo",
        "vcluster": {"httpsNodePort": "31443"},
    });
    let (_v, vpath) = write_temp("virtual.json", &vspec.to_string());
    let vp = vpath.to_str().expect("utf8");

    // a virtual worker whose host is not registered fails before any write
    let run = nautes(&["register", "-f", vp], Some(&mgmt_kc), None);
    assert_eq!(run.code, 3, "{}", run.stderr);
    assert!(
        run.stderr.contains("host cluster hdemo is not registered"),
        "{}",
        run.stderr
    );
    assert!(labelled(&mgmt, "nautes.io/cluster=vdemo").await.is_empty());
    assert!(
        Api::<Namespace>::all(mgmt.clone())
            .get_opt("nautes")
            .await
            .expect("get")
            .is_none()
    );

    // the host: Traefik only, registered with usage host
    let (_h, hpath) = write_temp(
        "host.json",
        &physical_spec("hdemo", "host", &host, json!({})),
    );
    nautes(
        &["register", "-f", hpath.to_str().expect("utf8")],
        Some(&mgmt_kc),
        None,
    )
    .ok();
    let traefik = Api::<Service>::namespaced(hc.clone(), "traefik")
        .get("traefik")
        .await
        .expect("traefik Service");
    let spec = traefik.spec.expect("spec");
    assert_eq!(spec.type_.as_deref(), Some("NodePort"));
    let ports: Vec<i32> = spec
        .ports
        .unwrap_or_default()
        .iter()
        .filter_map(|p| p.node_port)
        .collect();
    assert!(
        ports.contains(&30080) && ports.contains(&30443),
        "{ports:?}"
    );
    assert!(
        labelled(&hc, "nautes.io/cluster=hdemo,nautes.io/component=argocd")
            .await
            .is_empty(),
        "a host gets no Argo CD"
    );
    let s = Api::<Secret>::namespaced(mgmt.clone(), "argocd")
        .get("cluster-hdemo")
        .await
        .expect("host secret");
    assert_eq!(
        s.metadata
            .labels
            .unwrap_or_default()
            .get("cluster.nautes.io/usage")
            .map(String::as_str),
        Some("host")
    );

    // the virtual worker: register runs while this test plays the vcluster
    let child = command(
        &["register", "-f", vp, "-o", "json", "--timeout", "3m"],
        Some(&mgmt_kc),
        &[],
    )
    .stdout(std::process::Stdio::piped())
    .stderr(std::process::Stdio::piped())
    .spawn()
    .expect("spawn register");
    let sts: Api<k8s_openapi::api::apps::v1::StatefulSet> = Api::namespaced(hc.clone(), "vdemo");
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    loop {
        if sts
            .list(&Default::default())
            .await
            .map(|l| !l.items.is_empty())
            .unwrap_or(false)
        {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the vcluster StatefulSet never appeared in the host"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let kubeconfig = std::fs::read_to_string(&virt.kubeconfig).expect("kubeconfig");
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": "vc-vdemo", "namespace": "vdemo"},
        "stringData": {"config": kubeconfig},
    }))
    .expect("secret");
    Api::<Secret>::namespaced(hc.clone(), "vdemo")
        .create(&PostParams::default(), &secret)
        .await
        .expect("write vc-vdemo");
    let out = child.wait_with_output().expect("register");
    assert!(
        out.status.success(),
        "register of the virtual worker failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // inside the virtual cluster: the worker components, no gateway
    for component in [
        "hnc",
        "external-secrets",
        "argocd",
        "argo-rollouts",
        "vault",
    ] {
        assert!(
            !labelled(
                &vc,
                &format!("nautes.io/cluster=vdemo,nautes.io/component={component}")
            )
            .await
            .is_empty(),
            "{component}"
        );
    }
    assert!(
        labelled(&vc, "nautes.io/component=traefik")
            .await
            .is_empty(),
        "a virtual worker gets no Traefik"
    );
    // in the host: the vcluster and its NodePort Service
    let svc = Api::<Service>::namespaced(hc.clone(), "vdemo")
        .get("svc-vdemo")
        .await
        .expect("svc-vdemo");
    let port = svc
        .spec
        .and_then(|s| s.ports)
        .and_then(|p| p.first().cloned())
        .expect("port");
    assert_eq!((port.port, port.node_port), (443, Some(31443)));
    // the credential Argo CD got was minted inside the virtual cluster
    let s = Api::<Secret>::namespaced(mgmt.clone(), "argocd")
        .get("cluster-vdemo")
        .await
        .expect("secret");
    let server = String::from_utf8(
        s.data
            .expect("data")
            .get("server")
            .expect("server")
            .0
            .clone(),
    )
    .expect("utf8");
    assert_eq!(server, virt.server);
    let tokens = Api::<Secret>::namespaced(vc.clone(), "nautes-system")
        .list(&Default::default())
        .await
        .expect("list");
    assert!(
        tokens
            .items
            .iter()
            .any(|t| t.type_.as_deref() == Some("kubernetes.io/service-account-token"))
    );

    // the host cannot go while it carries the virtual cluster; --force does not override
    let before = labelled(&hc, "nautes.io/cluster=hdemo").await;
    for args in [
        vec!["destroy", "hdemo"],
        vec!["destroy", "hdemo", "--force"],
    ] {
        let run = nautes(&args, Some(&mgmt_kc), None);
        assert_eq!(run.code, 3, "{}", run.stderr);
        assert!(run.stderr.contains("vdemo"), "{}", run.stderr);
    }
    assert_eq!(
        labelled(&hc, "nautes.io/cluster=hdemo").await,
        before,
        "a refused destroy deleted something"
    );

    // destroy in order: the virtual worker, then the host
    nautes(&["destroy", "vdemo"], Some(&mgmt_kc), None).ok();
    nautes(&["destroy", "hdemo"], Some(&mgmt_kc), None).ok();
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    loop {
        let mut left = Vec::new();
        for (what, c) in [("management", &mgmt), ("host", &hc), ("virtual", &vc)] {
            for l in labelled(c, "app.kubernetes.io/managed-by=kubectl-nautes").await {
                left.push(format!("{what}: {l}"));
            }
        }
        let vns = Api::<Namespace>::all(hc.clone())
            .get_opt("vdemo")
            .await
            .expect("get");
        if left.is_empty() && vns.is_none() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "left behind: {left:#?} (host namespace vdemo: {})",
            vns.is_some()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Registers host "hdemo" and virtual worker "vdemo" (playing the vcluster's
/// part as described at the top of this file).
async fn register_host_and_virtual(bed: &TestBed, mgmt_kc: &std::path::Path) {
    let host = bed.cluster("host").clone();
    let virt = bed.cluster("virtual").clone();
    let hc = client(&host.kubeconfig).await;
    let (_h, hpath) = write_temp(
        "host.json",
        &physical_spec("hdemo", "host", &host, json!({})),
    );
    nautes(
        &["register", "-f", hpath.to_str().expect("utf8")],
        Some(mgmt_kc),
        None,
    )
    .ok();
    let vspec = json!({
        "name": "vdemo", "api_server": virt.server, "cluster_type": "virtual", "usage": "worker",
        "host_cluster": "hdemo", "vcluster": {"https_node_port": 31444},
    });
    let (_v, vpath) = write_temp("virtual.json", &vspec.to_string());
    let child = command(
        &[
            "register",
            "-f",
            vpath.to_str().expect("utf8"),
            "--timeout",
            "3m",
        ],
        Some(mgmt_kc),
        &[],
    )
    .stdout(std::process::Stdio::piped())
    .stderr(std::process::Stdio::piped())
    .spawn()
    .expect("spawn register");
    // SIMULATED: the vcluster writing its kubeconfig Secret
    let secrets: Api<Secret> = Api::namespaced(hc.clone(), "vdemo");
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": "vc-vdemo", "namespace": "vdemo"},
        "stringData": {"config": std::fs::read_to_string(&virt.kubeconfig).expect("kubeconfig")},
    }))
    .expect("secret");
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while secrets
        .create(&PostParams::default(), &secret)
        .await
        .is_err()
    {
        assert!(
            std::time::Instant::now() < deadline,
            "namespace vdemo never appeared in the host"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let out = child.wait_with_output().expect("register");
    assert!(
        out.status.success(),
        "register of the virtual worker failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn destroying_a_virtual_worker_whose_api_is_gone_cleans_the_host_and_forgets_it() {
    let mut bed = TestBed::start(&["management", "host", "virtual"]);
    let mgmt_kc = bed.cluster("management").kubeconfig.clone();
    let (mgmt, hc) = (
        client(&mgmt_kc).await,
        client(&bed.cluster("host").kubeconfig).await,
    );
    register_host_and_virtual(&bed, &mgmt_kc).await;
    // the virtual cluster's API goes away
    bed.command("stop-apiserver virtual");
    let run = nautes(
        &["destroy", "vdemo", "--timeout", "2m"],
        Some(&mgmt_kc),
        None,
    );
    run.ok();
    assert!(
        run.stderr.contains("unreachable"),
        "destroy should say the virtual cluster is unreachable:\n{}",
        run.stderr
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    loop {
        let left = labelled(&hc, "nautes.io/cluster=vdemo").await;
        let ns = Api::<Namespace>::all(hc.clone())
            .get_opt("vdemo")
            .await
            .expect("get");
        if left.is_empty() && ns.is_none() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "host side left behind: {left:#?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(
        labelled(&mgmt, "nautes.io/cluster=vdemo").await.is_empty(),
        "the management cluster still knows vdemo"
    );
    // with its virtual cluster gone, the host can go too
    nautes(&["destroy", "hdemo"], Some(&mgmt_kc), None).ok();
    assert!(
        labelled(&mgmt, "app.kubernetes.io/managed-by=kubectl-nautes")
            .await
            .is_empty()
    );
}

/// Rules 4 and 7 of ownership, virtual side: a virtual worker may not be
/// named after a namespace of its host's components, nor may a host's
/// component move into the namespace of a virtual worker on it (exit 2,
/// naming the field); and a virtual worker whose host does not answer is
/// refused without --force (nothing changed) and forgotten with it, the
/// warning naming what may be left on the host.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reserved_host_namespaces_and_a_virtual_worker_whose_host_is_gone() {
    let mut bed = TestBed::start(&["management", "host", "virtual"]);
    let mgmt_kc = bed.cluster("management").kubeconfig.clone();
    let host = bed.cluster("host").clone();
    let virt = bed.cluster("virtual").clone();
    let (mgmt, hc) = (client(&mgmt_kc).await, client(&host.kubeconfig).await);
    register_host_and_virtual(&bed, &mgmt_kc).await;

    // a virtual worker named after the host's Traefik namespace
    let vspec = json!({
        "name": "traefik", "api_server": virt.server, "cluster_type": "virtual", "usage": "worker",
        "host_cluster": "hdemo", "vcluster": {"https_node_port": 31445},
    });
    let (_t, tpath) = write_temp("traefik.json", &vspec.to_string());
    let run = nautes(
        &["register", "-f", tpath.to_str().expect("utf8")],
        Some(&mgmt_kc),
        None,
    );
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr.contains("name: \"traefik\"")
            && run.stderr.contains("componentsList.gateway.namespace"),
        "{}",
        run.stderr
    );
    assert!(
        labelled(&mgmt, "nautes.io/cluster=traefik")
            .await
            .is_empty()
    );
    // the host moving Traefik into the virtual worker's namespace
    let (_h, hpath) = write_temp(
        "host.json",
        &physical_spec(
            "hdemo",
            "host",
            &host,
            json!({"componentsList": {"gateway": {"namespace": "vdemo"}}}),
        ),
    );
    let host_before = objects(&hc, "hdemo").await;
    let run = nautes(
        &["register", "-f", hpath.to_str().expect("utf8")],
        Some(&mgmt_kc),
        None,
    );
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr
            .contains("componentsList.gateway.namespace: \"vdemo\""),
        "{}",
        run.stderr
    );
    assert_eq!(objects(&hc, "hdemo").await, host_before);

    // the host goes away
    let mgmt_before = objects(&mgmt, "vdemo").await;
    bed.command("stop-apiserver host");
    let run = nautes(
        &["destroy", "vdemo", "--timeout", "1m"],
        Some(&mgmt_kc),
        None,
    );
    assert_eq!(run.code, 5, "{}", run.stderr);
    assert!(
        run.stderr.contains("nothing was changed") && run.stderr.contains("--force"),
        "{}",
        run.stderr
    );
    assert_eq!(objects(&mgmt, "vdemo").await, mgmt_before);
    let run = nautes(
        &["destroy", "vdemo", "--force", "--timeout", "1m"],
        Some(&mgmt_kc),
        None,
    );
    run.ok();
    assert!(
        run.stderr.contains("namespace vdemo") && run.stderr.contains("host cluster hdemo"),
        "the warning should name what may be left on the host:\n{}",
        run.stderr
    );
    assert!(
        objects(&mgmt, "vdemo").await.is_empty(),
        "the management cluster still knows vdemo"
    );
    // the host is back: what was said may be left is there, and the host
    // can now be destroyed
    bed.command("start-apiserver host");
    let hc = client(&host.kubeconfig).await;
    assert!(namespace_exists(&hc, "vdemo").await);
    // fail closed: a management user who may read a record but not list
    // them cannot have the host's virtual workers checked, and is refused
    let rbac = "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata: {name: no-list}\nrules:\n- {apiGroups: [''], resources: [secrets, namespaces], verbs: ['*']}\n- {apiGroups: [''], resources: [configmaps], verbs: [get]}\n- {apiGroups: [coordination.k8s.io], resources: ['*'], verbs: ['*']}\n---\napiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata: {name: no-list}\nroleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: no-list}\nsubjects:\n- {apiGroup: rbac.authorization.k8s.io, kind: User, name: nautes-restricted}\n";
    let (_r, rbac_path) = write_temp("rbac.yaml", rbac);
    let st = std::process::Command::new(crate::testbed::bin_dir().join("kubectl"))
        .arg("--kubeconfig")
        .arg(&mgmt_kc)
        .args(["apply", "-f", rbac_path.to_str().expect("utf8")])
        .status()
        .expect("kubectl");
    assert!(st.success());
    let limited = bed.cluster("management").restricted_kubeconfig.clone();
    let hdemo_before = objects(&mgmt, "hdemo").await;
    let run = nautes(&["destroy", "hdemo", "--force"], Some(&limited), None);
    assert_eq!(run.code, 4, "{}", run.stderr);
    assert!(
        run.stderr.contains(
            "could not check whether virtual clusters are registered on host cluster hdemo"
        ),
        "{}",
        run.stderr
    );
    assert_eq!(objects(&mgmt, "hdemo").await, hdemo_before);
    nautes(&["destroy", "hdemo"], Some(&mgmt_kc), None).ok();
    assert!(objects(&mgmt, "hdemo").await.is_empty());
}
