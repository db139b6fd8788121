//! Host clusters and virtual (vcluster) workers, end to end: the management
//! cluster and a host from the test bed, and real vclusters in the host.
//!
//! Nothing is simulated here: the plugin installs the vcluster chart (the
//! project's test chart, tests/charts/vcluster) into the host, and the test
//! bed's launcher runs, for that release, a virtual control plane and the
//! unmodified vcluster syncer as processes (testbed/README.md, "vclusters").
//! The syncer writes Secret vc-<name>, the plugin installs the components
//! through the vcluster's API at https://127.0.0.1:<https_node_port> (where
//! the host's NodePort would expose it), and the syncer copies their Pods and
//! Services into the host namespace, where the host's kwok runs them.
//! Not real even so: the virtual control plane and its certificates come
//! from the test bed, not from vcluster, and no container runs.

use std::path::Path;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Pod, Secret, Service};
use kube::Api;
use serde_json::json;

use crate::helpers::*;
use crate::testbed::TestBed;

/// The spec of virtual worker `name` on host `host`, its API at
/// https://127.0.0.1:<port> (the port is given once, as the port of
/// api_server: it defaults vcluster.https_node_port).
fn virtual_spec(name: &str, host: &str, port: u16) -> serde_json::Value {
    json!({
        "name": name, "api_server": format!("https://127.0.0.1:{port}"),
        "cluster_kind": "kubernetes", "cluster_type": "virtual", "usage": "worker",
        "host_cluster": host, "vcluster": {"https_node_port": port},
    })
}

/// Registers host `host` (test cluster "host") with Traefik only.
fn register_host(bed: &TestBed, mgmt_kc: &Path, host: &str) {
    let (_h, hpath) = write_temp(
        "host.json",
        &physical_spec(host, "host", bed.cluster("host"), json!({})),
    );
    nautes(
        &["register", "-f", hpath.to_str().expect("utf8")],
        Some(mgmt_kc),
        None,
    )
    .ok();
}

/// Registers virtual worker `name` on `host`, and returns the time it took.
fn register_virtual(mgmt_kc: &Path, name: &str, host: &str, port: u16) -> Duration {
    let (_v, vpath) = write_temp("virtual.json", &virtual_spec(name, host, port).to_string());
    let began = Instant::now();
    nautes(
        &[
            "register",
            "-f",
            vpath.to_str().expect("utf8"),
            "--timeout",
            "4m",
        ],
        Some(mgmt_kc),
        None,
    )
    .ok();
    began.elapsed()
}

/// The kubeconfig the vcluster wrote into Secret vc-<name> of the host, and
/// a client from it.
async fn virtual_client(hc: &kube::Client, name: &str) -> (String, kube::Client) {
    let s = Api::<Secret>::namespaced(hc.clone(), name)
        .get(&format!("vc-{name}"))
        .await
        .expect("Secret vc-<name> (written by the vcluster)");
    let text = String::from_utf8(
        s.data
            .expect("data")
            .get("config")
            .expect("key config")
            .0
            .clone(),
    )
    .expect("utf8");
    let (_d, path) = write_temp("vc.kubeconfig", &text);
    (text.clone(), client(&path).await)
}

/// Waits until Deployment `ns/name` inside a virtual cluster is available:
/// its Pod ran in the host (kwok) and its status came back through the syncer.
async fn available(vc: &kube::Client, ns: &str, name: &str) {
    let api: Api<Deployment> = Api::namespaced(vc.clone(), ns);
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let d = api.get(name).await.expect("virtual Deployment");
        let n = d.status.and_then(|s| s.available_replicas).unwrap_or(0);
        if n >= 1 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "virtual Deployment {ns}/{name} never became available"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Whether a process id is alive (not reaped).
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            !s.rsplit(')')
                .next()
                .unwrap_or("")
                .trim_start()
                .starts_with('Z')
        })
        .unwrap_or(false)
}

/// Waits until the launcher runs no vcluster in the host any more and every
/// process it ran for one is gone.
async fn vclusters_gone(bed: &TestBed, pids: &[u32]) {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let left = bed.vclusters("host");
        let running: Vec<u32> = pids.iter().copied().filter(|p| alive(*p)).collect();
        if left.is_empty() && running.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "vcluster processes left: {left:#?}, pids alive: {running:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The pids of the vcluster processes of release `ns/name` in the host.
fn vcluster_pids(bed: &TestBed, key: &str) -> Vec<u32> {
    let vcs = bed.vclusters("host");
    let v = vcs
        .get(key)
        .unwrap_or_else(|| panic!("the launcher runs no vcluster {key}: {vcs:#?}"));
    assert_eq!(v.state, "running", "{v:#?}");
    // figures for the record (docs: time to the kubeconfig Secret)
    eprintln!(
        "vcluster {key}: Secret vc-<name> {:.1}s after the chart's config Secret; syncer restarts: {}",
        v.secret_seconds, v.syncer_restarts
    );
    for p in [
        "etcd",
        "kube-apiserver",
        "kube-controller-manager",
        "vcluster",
    ] {
        assert!(
            v.pids.get(p).copied().unwrap_or(0) > 0,
            "{p} not running: {v:#?}"
        );
    }
    v.pids.values().copied().filter(|p| *p > 0).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_then_virtual_worker_then_destroy_in_order_leaves_nothing() {
    let bed = TestBed::start_with_vcluster(&["management", "host"]);
    let mgmt_kc = bed.cluster("management").kubeconfig.clone();
    let host = bed.cluster("host").clone();
    let (mgmt, hc) = (client(&mgmt_kc).await, client(&host.kubeconfig).await);
    let (_v, vpath) = write_temp(
        "virtual.json",
        &virtual_spec("vdemo", "hdemo", 31443).to_string(),
    );
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
    register_host(&bed, &mgmt_kc, "hdemo");
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

    // the virtual worker: the plugin installs the vcluster in the host, the
    // vcluster writes Secret vc-vdemo, the plugin goes on through its API
    let run = nautes(
        &["register", "-f", vp, "-o", "json", "--timeout", "4m"],
        Some(&mgmt_kc),
        None,
    );
    run.ok();
    let pids = vcluster_pids(&bed, "vdemo/vdemo");
    let (kubeconfig, vc) = virtual_client(&hc, "vdemo").await;
    assert!(
        kubeconfig.contains("server: https://127.0.0.1:31443"),
        "the vcluster's kubeconfig should point at exportKubeConfig.server (api_server)"
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
    // a virtual worker gets no Traefik: what of Traefik it sees is the
    // host's IngressClass, which the plugin's values have the vcluster sync
    // from the host (sync.fromHost.ingressClasses)
    let traefik = labelled(&vc, "nautes.io/component=traefik").await;
    assert_eq!(
        traefik,
        vec!["IngressClass /traefik".to_string()],
        "a virtual worker gets no Traefik, only the host's IngressClass"
    );
    assert!(
        labelled(&vc, "nautes.io/cluster=vdemo,nautes.io/component=traefik")
            .await
            .is_empty()
    );
    // ... whose workloads run in the host namespace, under their synced names
    available(&vc, "argocd", "argocd-server").await;
    let pods = synced_pods(&hc, "vdemo", "argocd", "argocd-server-").await;
    assert!(!pods.is_empty());
    Api::<Service>::namespaced(hc.clone(), "vdemo")
        .get("argocd-server-x-argocd-x-vdemo")
        .await
        .expect("the virtual Service argocd/argocd-server synced to the host");
    // the virtual cluster has no Traefik of its own; nothing of it is
    // synced to the host's traefik namespace either
    assert!(
        Api::<Pod>::namespaced(hc.clone(), "traefik")
            .list(&Default::default())
            .await
            .expect("list")
            .items
            .iter()
            .all(|p| !p.metadata.name.as_deref().unwrap_or("").contains("-x-")),
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
    assert_eq!(server, "https://127.0.0.1:31443");
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

    // destroy in order: the virtual worker (inside, then its vcluster in the
    // host), then the host
    let run = nautes(&["destroy", "vdemo", "-v"], Some(&mgmt_kc), None);
    run.ok();
    assert!(
        !run.stderr.contains("unreachable"),
        "the virtual side should have been cleaned through its API:\n{}",
        run.stderr
    );
    vclusters_gone(&bed, &pids).await;
    nautes(&["destroy", "hdemo"], Some(&mgmt_kc), None).ok();
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let mut left = Vec::new();
        for (what, c) in [("management", &mgmt), ("host", &hc)] {
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
            Instant::now() < deadline,
            "left behind: {left:#?} (host namespace vdemo: {})",
            vns.is_some()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Two virtual workers on one host at once: each gets a vcluster of its own (its own processes, address and node
/// port), each one's workloads are synced into its own host namespace only,
/// and destroying one leaves the other working.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_virtual_workers_on_one_host_at_once() {
    let bed = TestBed::start_with_vcluster(&["management", "host"]);
    let mgmt_kc = bed.cluster("management").kubeconfig.clone();
    let hc = client(&bed.cluster("host").kubeconfig).await;
    register_host(&bed, &mgmt_kc, "htwo");
    // one after the other: a register holds its host's lock (Lease
    // lock-<host>), so a second one on the same host is refused meanwhile
    let ta = register_virtual(&mgmt_kc, "vone", "htwo", 31450);
    let tb = register_virtual(&mgmt_kc, "vtwo", "htwo", 31451);
    eprintln!(
        "registered vone in {:.1}s, vtwo in {:.1}s",
        ta.as_secs_f64(),
        tb.as_secs_f64()
    );
    let vcs = bed.vclusters("host");
    let (one, two) = (&vcs["vone/vone"], &vcs["vtwo/vtwo"]);
    assert_ne!(one.proxy, two.proxy, "two syncers on one address");
    assert_eq!(
        (one.node_ports.as_slice(), two.node_ports.as_slice()),
        (&[31450][..], &[31451][..])
    );
    let pids_one = vcluster_pids(&bed, "vone/vone");
    let pids_two = vcluster_pids(&bed, "vtwo/vtwo");

    let (kc_one, vc_one) = virtual_client(&hc, "vone").await;
    let (kc_two, vc_two) = virtual_client(&hc, "vtwo").await;
    assert!(kc_one.contains("https://127.0.0.1:31450"));
    assert!(kc_two.contains("https://127.0.0.1:31451"));
    // two clusters, not one seen twice: a namespace made in one is not in the other
    let ns: Namespace =
        serde_json::from_value(json!({"metadata": {"name": "only-in-one"}})).expect("ns");
    Api::<Namespace>::all(vc_one.clone())
        .create(&Default::default(), &ns)
        .await
        .expect("create namespace in vone");
    assert!(
        Api::<Namespace>::all(vc_two.clone())
            .get_opt("only-in-one")
            .await
            .expect("get")
            .is_none()
    );
    for (name, vc) in [("vone", &vc_one), ("vtwo", &vc_two)] {
        available(vc, "argocd", "argocd-server").await;
        synced_pods(&hc, name, "argocd", "argocd-server-").await;
    }
    // each host namespace holds only its own vcluster's workloads
    for (name, other) in [("vone", "vtwo"), ("vtwo", "vone")] {
        let pods = Api::<Pod>::namespaced(hc.clone(), name)
            .list(&Default::default())
            .await
            .expect("list");
        assert!(
            pods.items
                .iter()
                .filter_map(|p| p.metadata.name.as_deref())
                .all(|n| !n.ends_with(&format!("-x-{other}"))),
            "host namespace {name} holds Pods of {other}"
        );
    }

    // one goes; the other still answers and keeps its processes
    nautes(&["destroy", "vone"], Some(&mgmt_kc), None).ok();
    vclusters_gone_one(&bed, "vone/vone", &pids_one).await;
    assert!(pids_two.iter().all(|p| alive(*p)), "vtwo lost a process");
    Api::<Deployment>::namespaced(vc_two.clone(), "argocd")
        .get("argocd-server")
        .await
        .expect("vtwo still answers");
    nautes(&["destroy", "vtwo"], Some(&mgmt_kc), None).ok();
    let all: Vec<u32> = pids_one.iter().chain(&pids_two).copied().collect();
    vclusters_gone(&bed, &all).await;
    nautes(&["destroy", "htwo"], Some(&mgmt_kc), None).ok();
}

/// Waits until the launcher no longer runs vcluster `key` and its processes
/// are gone.
async fn vclusters_gone_one(bed: &TestBed, key: &str, pids: &[u32]) {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let left = bed.vclusters("host");
        let running: Vec<u32> = pids.iter().copied().filter(|p| alive(*p)).collect();
        if !left.contains_key(key) && running.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "vcluster {key} left: {:#?}, pids alive: {running:?}",
            left.get(key)
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn destroying_a_virtual_worker_whose_api_is_gone_cleans_the_host_and_forgets_it() {
    let mut bed = TestBed::start_with_vcluster(&["management", "host"]);
    let mgmt_kc = bed.cluster("management").kubeconfig.clone();
    let (mgmt, hc) = (
        client(&mgmt_kc).await,
        client(&bed.cluster("host").kubeconfig).await,
    );
    register_host(&bed, &mgmt_kc, "hdemo");
    register_virtual(&mgmt_kc, "vdemo", "hdemo", 31444);
    let pids = vcluster_pids(&bed, "vdemo/vdemo");
    // the virtual cluster's API goes away: the launcher stops the vcluster's
    // processes (and does not restart them) while its release stays
    bed.command("stop-vcluster host vdemo/vdemo");
    assert!(pids.iter().all(|p| !alive(*p)));
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
    let deadline = Instant::now() + Duration::from_secs(90);
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
            Instant::now() < deadline,
            "host side left behind: {left:#?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(
        labelled(&mgmt, "nautes.io/cluster=vdemo").await.is_empty(),
        "the management cluster still knows vdemo"
    );
    // the release went with the host namespace: the launcher forgot it
    vclusters_gone(&bed, &pids).await;
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
    let mut bed = TestBed::start_with_vcluster(&["management", "host"]);
    let mgmt_kc = bed.cluster("management").kubeconfig.clone();
    let host = bed.cluster("host").clone();
    let (mgmt, hc) = (client(&mgmt_kc).await, client(&host.kubeconfig).await);
    register_host(&bed, &mgmt_kc, "hdemo");
    register_virtual(&mgmt_kc, "vdemo", "hdemo", 31447);

    // a virtual worker named after the host's Traefik namespace
    let vspec = virtual_spec("traefik", "hdemo", 31445);
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

/// Issue 11, point 8: the vcluster's data claim needs a StorageClass of the
/// host. A host without a default StorageClass is named in preflight (exit
/// 8, both clusters unchanged) instead of a 180 s wait for a Pod that is
/// never scheduled; so is a `vcluster.storage_class` the host does not
/// have; with one it has, the claim is made of that class and is bound.
/// The test chart's claim is off by default (the test bed provisions no
/// volumes); this test turns it on as upstream has it (enabled: auto), and
/// gives the host a StorageClass without a provisioner and a volume made
/// by hand, which the host's controller manager binds the claim to.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_without_the_storage_class_of_the_vcluster_is_named_before_any_write() {
    use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
    const PORT: u16 = 31454;
    let bed = TestBed::start_with_vcluster(&["management", "host"]);
    let mgmt_kc = bed.cluster("management").kubeconfig.clone();
    let host_kc = bed.cluster("host").kubeconfig.clone();
    let (mgmt, hc) = (client(&mgmt_kc).await, client(&host_kc).await);
    register_host(&bed, &mgmt_kc, "hsc");
    let charts = charts_copy();
    edit_chart_file(
        charts.path(),
        "vcluster",
        "values.yaml",
        "enabled: false\n        size: 5Gi",
        "enabled: auto\n        size: 5Gi",
    );
    let cd = charts.path().to_str().expect("utf8");
    let register = |spec: &serde_json::Value| {
        let (_d, path) = write_temp("vsc.json", &spec.to_string());
        nautes(
            &[
                "register",
                "-f",
                path.to_str().expect("utf8"),
                "--charts-dir",
                cd,
                "--timeout",
                "4m",
            ],
            Some(&mgmt_kc),
            None,
        )
    };
    let mut spec = virtual_spec("vsc", "hsc", PORT);

    // no StorageClass at all on the host, none named in the spec
    let before = (everything(&mgmt).await, everything(&hc).await);
    let run = register(&spec);
    assert_eq!(run.code, 8, "exit 8 (missing):\n{}", run.stderr);
    let err = error_block(&run.stderr);
    for part in [
        "host cluster hsc: 1 volume claim(s) of the plan would never be bound; nothing was changed",
        "StatefulSet vsc/vsc (claim template data) claims a volume of the default StorageClass, and host cluster hsc has no default StorageClass (it has no StorageClass)",
        "vcluster.storage_class",
    ] {
        assert!(err.contains(part), "no {part:?} in:\n{err}");
    }
    let after = (everything(&mgmt).await, everything(&hc).await);
    assert_unchanged(&before.0, &after.0, "the management cluster");
    assert_unchanged(&before.1, &after.1, "the host");

    // a class the host does not have
    kubectl(
        &host_kc,
        &["apply", "-f", "-"],
        Some(
            "apiVersion: storage.k8s.io/v1\nkind: StorageClass\nmetadata:\n  name: slow\nprovisioner: kubernetes.io/no-provisioner\n",
        ),
    );
    spec["vcluster"]["storage_class"] = json!("fast");
    let before = (everything(&mgmt).await, everything(&hc).await);
    let run = register(&spec);
    assert_eq!(run.code, 8, "exit 8 (missing):\n{}", run.stderr);
    let err = error_block(&run.stderr);
    let part = "StatefulSet vsc/vsc (claim template data) claims a volume of StorageClass fast, which host cluster hsc does not have (it has: slow)";
    assert!(err.contains(part), "no {part:?} in:\n{err}");
    assert_eq!(
        before,
        (everything(&mgmt).await, everything(&hc).await),
        "a refused register changed a cluster"
    );

    // the class, and a volume of it made by hand
    kubectl(
        &host_kc,
        &["apply", "-f", "-"],
        Some(concat!(
            "apiVersion: storage.k8s.io/v1\nkind: StorageClass\nmetadata:\n  name: fast\n",
            "provisioner: kubernetes.io/no-provisioner\nvolumeBindingMode: Immediate\n---\n",
            "apiVersion: v1\nkind: PersistentVolume\nmetadata:\n  name: pv-fast\nspec:\n",
            "  storageClassName: fast\n  capacity: {storage: 5Gi}\n  accessModes: [ReadWriteOnce]\n",
            "  persistentVolumeReclaimPolicy: Retain\n  hostPath: {path: /tmp/nautes-test-pv-fast}\n",
        )),
    );
    let run = register(&spec);
    run.ok();
    assert!(
        run.stderr
            .contains("the StorageClasses of the plan's 1 volume claim(s) are there"),
        "{}",
        run.stderr
    );
    let pvc = Api::<PersistentVolumeClaim>::namespaced(hc.clone(), "vsc")
        .get("data-vsc-0")
        .await
        .expect("the vcluster's claim");
    let pvc_spec = pvc.spec.expect("spec");
    assert_eq!(pvc_spec.storage_class_name.as_deref(), Some("fast"));
    assert_eq!(pvc_spec.volume_name.as_deref(), Some("pv-fast"));
    assert_eq!(pvc.status.and_then(|s| s.phase).as_deref(), Some("Bound"));
    let pids = vcluster_pids(&bed, "vsc/vsc");

    // the claim exists: a re-register does not need its class any more
    kubectl(&host_kc, &["delete", "storageclass", "fast"], None);
    let again = register(&spec);
    again.ok();
    assert!(
        !again.stderr.contains("would never be bound"),
        "{}",
        again.stderr
    );

    // destroy takes the claim with the vcluster's namespace; the volume,
    // made by hand, stays
    nautes(&["destroy", "vsc"], Some(&mgmt_kc), None).ok();
    vclusters_gone(&bed, &pids).await;
    let deadline = Instant::now() + Duration::from_secs(90);
    while namespace_exists(&hc, "vsc").await {
        assert!(Instant::now() < deadline, "host namespace vsc left behind");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(
        Api::<PersistentVolume>::all(hc.clone())
            .get_opt("pv-fast")
            .await
            .expect("get")
            .is_some(),
        "destroy deleted a volume it did not create"
    );
    nautes(&["destroy", "hsc"], Some(&mgmt_kc), None).ok();
    wait_nothing_left(&hc, "hsc", "the host").await;
}
