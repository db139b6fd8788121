//! The plugin on clusters that already hold things: what it did not create
//! it never adopts, prunes or deletes unless told to, and two registrations
//! never share an object. Real control planes, real helm, the real binary.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Service};
use kube::Api;
use kube::api::{DynamicObject, ListParams};
use serde_json::json;

use crate::helpers::*;
use crate::testbed::TestBed;

/// Every namespace of a cluster.
async fn namespaces(c: &kube::Client) -> Vec<String> {
    let mut out: Vec<String> = Api::<Namespace>::all(c.clone())
        .list_metadata(&ListParams::default())
        .await
        .expect("namespaces")
        .items
        .into_iter()
        .filter_map(|n| n.metadata.name)
        .collect();
    out.sort();
    out
}

/// The labels and the field managers of a namespace.
async fn namespace_marks(c: &kube::Client, ns: &str) -> (Vec<String>, Vec<String>) {
    let n = Api::<Namespace>::all(c.clone())
        .get(ns)
        .await
        .unwrap_or_else(|e| panic!("namespace {ns}: {e}"));
    let labels = n.metadata.labels.unwrap_or_default().into_keys().collect();
    let managers = n
        .metadata
        .managed_fields
        .unwrap_or_default()
        .into_iter()
        .filter_map(|m| m.manager)
        .collect();
    (labels, managers)
}

/// Nothing of registration `name` in either cluster: no labelled object, no
/// record, no lock.
async fn nothing_of(mgmt: &kube::Client, worker: &kube::Client, name: &str) {
    assert_eq!(objects(worker, name).await, Vec::<String>::new(), "worker");
    assert_eq!(
        objects(mgmt, name).await,
        Vec::<String>::new(),
        "management"
    );
    let cms: Api<k8s_openapi::api::core::v1::ConfigMap> = Api::namespaced(mgmt.clone(), "nautes");
    assert!(
        cms.get_opt(&format!("cluster-{name}"))
            .await
            .ok()
            .flatten()
            .is_none(),
        "a record of {name} was written"
    );
}

/// Rule 1 and 2: an object of the plan that exists and is not the plugin's
/// is refused (exit 3, every one named, nothing written in either cluster);
/// with --adopt it is taken over, reported as configured, never created;
/// a Namespace that existed before is never deleted: destroy removes the
/// plugin's objects in it and gives it back without the plugin's labels
/// and field ownership, and what the user had in it stays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn existing_objects_are_refused_or_adopted_and_existing_namespaces_survive_destroy() {
    let bed = TestBed::start(&["management", "worker"]);
    let mgmt_kc = bed.cluster("management").kubeconfig.clone();
    let worker = bed.cluster("worker");
    let (mgmt, wc) = (client(&mgmt_kc).await, client(&worker.kubeconfig).await);
    let name = "owned";
    let (_d, spec_path) = write_temp(
        "spec.json",
        &physical_spec(name, "worker", worker, json!({})),
    );
    let sp = spec_path.to_str().expect("utf8");

    // the user's own things, where the plugin will want to be
    kubectl(&worker.kubeconfig, &["create", "namespace", "vault"], None);
    kubectl(
        &worker.kubeconfig,
        &[
            "-n",
            "vault",
            "create",
            "deployment",
            "mine",
            "--image=nginx",
        ],
        None,
    );
    kubectl(&worker.kubeconfig, &["create", "namespace", "argocd"], None);
    // a cluster-scoped one of a kind the plan has many of (its ClusterRoles
    // are looked up with one LIST, not one GET each)
    kubectl(
        &worker.kubeconfig,
        &["create", "-f", "-"],
        Some(
            r#"{"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "argo-rollouts"}}"#,
        ),
    );
    let before = namespaces(&wc).await;
    let marks_before = namespace_marks(&wc, "vault").await;

    // 1. refused, every foreign object named, nothing written anywhere
    let run = nautes(&["register", "-f", sp], Some(&mgmt_kc), None);
    assert_eq!(run.code, 3, "{}", run.stderr);
    for what in [
        "Namespace vault",
        "Namespace argocd",
        "ClusterRole argo-rollouts",
        "--adopt",
    ] {
        assert!(
            run.stderr.contains(what),
            "{what} not named:\n{}",
            run.stderr
        );
    }
    nothing_of(&mgmt, &wc, name).await;
    assert_eq!(namespaces(&wc).await, before, "a namespace was created");
    assert_eq!(namespace_marks(&wc, "vault").await, marks_before);
    // diff and a server dry run tell the same, and write nothing
    let d = nautes(&["diff", "-f", sp], Some(&mgmt_kc), None);
    assert_eq!(d.code, 3, "{}", d.stderr);
    let dry = nautes(
        &["register", "-f", sp, "--dry-run=server"],
        Some(&mgmt_kc),
        None,
    );
    assert_eq!(dry.code, 3, "{}", dry.stderr);
    nothing_of(&mgmt, &wc, name).await;

    // 2. --adopt takes them over: configured, never "created"
    let run = nautes(
        &["register", "-f", sp, "--adopt", "-o", "json"],
        Some(&mgmt_kc),
        None,
    );
    run.ok();
    let out = json_out(&run.stdout);
    let changed: Vec<String> = out["stages"]
        .as_array()
        .expect("stages")
        .iter()
        .flat_map(|s| s["changed"].as_array().cloned().unwrap_or_default())
        .map(|c| {
            format!(
                "{} {}",
                c["action"].as_str().unwrap_or(""),
                c["object"].as_str().unwrap_or("")
            )
        })
        .collect();
    for ns in ["vault", "argocd"] {
        assert!(
            !changed.contains(&format!("create Namespace {ns}")),
            "{ns} reported as created: {changed:#?}"
        );
        assert!(
            changed.contains(&format!("configure Namespace {ns}")),
            "{ns} not reported as taken over: {changed:#?}"
        );
    }
    assert!(
        changed.contains(&"create Namespace traefik".to_string()),
        "{changed:#?}"
    );
    assert!(
        changed.contains(&"configure ClusterRole argo-rollouts".to_string()),
        "the user's ClusterRole was not reported as taken over: {changed:#?}"
    );
    // a second register converges and still knows they were adopted
    let again = nautes(&["register", "-f", sp, "-o", "json"], Some(&mgmt_kc), None);
    again.ok();
    assert_eq!(
        json_out(&again.stdout)["changes"]["created"],
        0,
        "{}",
        again.stdout
    );

    // destroy: the plugin's objects go, the namespaces that existed stay,
    // given back, and the user's Deployment is untouched
    nautes(&["destroy", name], Some(&mgmt_kc), None).ok();
    wait_nothing_left(&wc, name, "the worker").await;
    wait_nothing_left(&mgmt, name, "the management cluster").await;
    let now = namespaces(&wc).await;
    for ns in ["vault", "argocd"] {
        assert!(now.contains(&ns.to_string()), "namespace {ns} was deleted");
        let (labels, managers) = namespace_marks(&wc, ns).await;
        assert!(
            labels
                .iter()
                .all(|l| !l.starts_with("applyset.kubernetes.io")
                    && l != "app.kubernetes.io/managed-by"
                    && !l.starts_with("nautes.io/")),
            "{ns} keeps the plugin's labels: {labels:?}"
        );
        assert!(
            managers.iter().all(|m| !m.starts_with("kubectl-nautes")),
            "{ns} keeps the plugin's field ownership: {managers:?}"
        );
    }
    assert!(
        !now.contains(&"traefik".to_string()),
        "the plugin's own namespace stayed"
    );
    Api::<Deployment>::namespaced(wc.clone(), "vault")
        .get("mine")
        .await
        .expect("the user's Deployment vault/mine is gone");
}

/// Rule 3: registrations never share objects. The same runtime cluster
/// registered under another name, or from another registry namespace (another
/// management side), finds every object of the first registration and is
/// refused naming it, even with --adopt; nothing is written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_registrations_never_share_objects() {
    let bed = TestBed::start(&["management", "worker"]);
    let mgmt_kc = bed.cluster("management").kubeconfig.clone();
    let worker = bed.cluster("worker");
    let (mgmt, wc) = (client(&mgmt_kc).await, client(&worker.kubeconfig).await);
    let (_a, a_path) = write_temp("a.json", &physical_spec("first", "host", worker, json!({})));
    let (_b, b_path) = write_temp(
        "b.json",
        &physical_spec("second", "host", worker, json!({})),
    );
    let (a, b) = (
        a_path.to_str().expect("utf8"),
        b_path.to_str().expect("utf8"),
    );
    nautes(&["register", "-f", a], Some(&mgmt_kc), None).ok();
    let first = objects(&wc, "first").await;
    assert!(!first.is_empty());

    for args in [
        vec!["register", "-f", b],
        vec!["register", "-f", b, "--adopt"],
        vec![
            "register",
            "-f",
            a,
            "--registry-namespace",
            "elsewhere",
            "--adopt",
        ],
    ] {
        let run = nautes(&args, Some(&mgmt_kc), None);
        assert_eq!(run.code, 3, "{args:?}: {}", run.stderr);
        assert!(
            run.stderr
                .contains("belongs to the registration of cluster first")
                && run.stderr.contains("Namespace traefik"),
            "{args:?}: {}",
            run.stderr
        );
    }
    nothing_of(&mgmt, &wc, "second").await;
    assert_eq!(
        objects(&wc, "first").await,
        first,
        "the first registration was changed"
    );
    // each registration applies as a field manager of its own
    let svc = Api::<Service>::namespaced(wc.clone(), "traefik")
        .get("traefik")
        .await
        .expect("traefik Service");
    let managers: Vec<String> = svc
        .metadata
        .managed_fields
        .unwrap_or_default()
        .into_iter()
        .filter_map(|m| m.manager)
        .filter(|m| m.starts_with("kubectl-nautes"))
        .collect();
    assert_eq!(managers.len(), 1, "{managers:?}");
    assert!(managers[0].ends_with("-first"), "{managers:?}");
    nautes(&["destroy", "first"], Some(&mgmt_kc), None).ok();
    wait_nothing_left(&wc, "first", "the worker").await;
}

/// Rule 5: a CRD that leaves the plan is pruned only when no custom
/// resource of it exists that the plugin did not create: otherwise register
/// refuses (exit 3) naming them, and changes nothing; --force overrides.
/// Rule 9: diff says "configure" for an object whose desired fields differ,
/// by content (a dry run moves no resourceVersion).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crds_with_custom_resources_of_others_are_not_pruned_and_diff_sees_changes() {
    let bed = TestBed::start(&["management", "worker"]);
    let mgmt_kc = bed.cluster("management").kubeconfig.clone();
    let worker = bed.cluster("worker");
    let wc = client(&worker.kubeconfig).await;
    let name = "crs";
    let (_d, dep) = write_temp(
        "dep.json",
        &physical_spec(name, "worker", worker, json!({})),
    );
    let dep = dep.to_str().expect("utf8");

    // a first server dry run on an empty cluster: exit 0, nothing written
    let before = namespaces(&wc).await;
    let dry = nautes(
        &["register", "-f", dep, "--dry-run=server", "-o", "json"],
        Some(&mgmt_kc),
        None,
    );
    dry.ok();
    assert!(
        json_out(&dry.stdout)["changes"]["created"]
            .as_u64()
            .unwrap_or(0)
            > 20,
        "{}",
        dry.stdout
    );
    assert_eq!(
        namespaces(&wc).await,
        before,
        "a dry run created a namespace"
    );
    assert!(
        objects(&wc, name).await.is_empty(),
        "a dry run wrote objects"
    );

    nautes(&["register", "-f", dep], Some(&mgmt_kc), None).ok();

    // diff by content: a changed node port is "configure Service traefik/traefik"
    let (_p, port) = write_temp(
        "port.json",
        &physical_spec(
            name,
            "worker",
            worker,
            json!({"traefik": {"http_node_port": 30085}}),
        ),
    );
    let d = nautes(
        &["diff", "-f", port.to_str().expect("utf8")],
        Some(&mgmt_kc),
        None,
    );
    d.ok();
    assert!(
        d.stdout
            .lines()
            .any(|l| l.contains("configure") && l.contains("Service traefik/traefik")),
        "{}",
        d.stdout
    );
    assert!(
        !d.stdout.contains("Deployment"),
        "unchanged objects listed:\n{}",
        d.stdout
    );

    // a Rollout of the user's own
    kubectl(
        &worker.kubeconfig,
        &["apply", "-f", "-"],
        Some(
            &json!({
                "apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout",
                "metadata": {"name": "users-own", "namespace": "default"},
                "spec": {"replicas": 1}
            })
            .to_string(),
        ),
    );
    let (_q, pipe) = write_temp(
        "pipe.json",
        &physical_spec(name, "worker", worker, json!({"worker_type": "pipeline"})),
    );
    let pipe = pipe.to_str().expect("utf8");
    let objects_before = objects(&wc, name).await;
    let run = nautes(&["register", "-f", pipe], Some(&mgmt_kc), None);
    assert_eq!(run.code, 3, "{}", run.stderr);
    assert!(
        run.stderr.contains("Rollout default/users-own"),
        "{}",
        run.stderr
    );
    assert_eq!(
        objects(&wc, name).await,
        objects_before,
        "a refused register changed the worker"
    );
    let rollouts = rollouts(&wc).await;
    assert_eq!(rollouts, vec!["default/users-own".to_string()]);

    // --force: pruned, and the user's Rollout goes with its CRD, as asked
    nautes(&["register", "-f", pipe, "--force"], Some(&mgmt_kc), None).ok();
    nautes(&["destroy", name], Some(&mgmt_kc), None).ok();
    wait_nothing_left(&wc, name, "the worker").await;
}

/// The Rollouts in a cluster ("namespace/name"), empty when the kind is gone.
async fn rollouts(c: &kube::Client) -> Vec<String> {
    let gvk = kube::api::GroupVersionKind::gvk("argoproj.io", "v1alpha1", "Rollout");
    let Ok((ar, _)) = kube::discovery::pinned_kind(c, &gvk).await else {
        return Vec::new();
    };
    let api: Api<DynamicObject> = Api::all_with(c.clone(), &ar);
    api.list(&ListParams::default())
        .await
        .map(|l| {
            l.items
                .into_iter()
                .map(|o| {
                    format!(
                        "{}/{}",
                        o.metadata.namespace.unwrap_or_default(),
                        o.metadata.name.unwrap_or_default()
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The state of a registration in the management cluster: None when there
/// is no record.
async fn state_of(mgmt: &kube::Client, name: &str) -> Option<String> {
    let cms: Api<k8s_openapi::api::core::v1::ConfigMap> = Api::namespaced(mgmt.clone(), "nautes");
    cms.get_opt(&format!("cluster-{name}"))
        .await
        .expect("read record")
        .and_then(|cm| cm.data.and_then(|d| d.get("state").cloned()))
}

/// Rule 8: a host and its virtual workers exclude each other. A virtual
/// worker's register and the host's destroy are started at once, many times,
/// at varying offsets: whichever wins, a virtual worker is never left
/// registered on a host that is gone.
///
/// The vcluster is real: each round the register installs it into the host
/// (or the destroy wins first), the test bed runs it, and the destroys stop
/// it again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_is_never_destroyed_under_a_virtual_worker_registering_on_it() {
    let bed = TestBed::start_with_vcluster(&["management", "host"]);
    let mgmt_kc = bed.cluster("management").kubeconfig.clone();
    let host = bed.cluster("host").clone();
    let (mgmt, hc) = (client(&mgmt_kc).await, client(&host.kubeconfig).await);
    let (_h, hpath) = write_temp(
        "host.json",
        &physical_spec("hrace", "host", &host, json!({})),
    );
    let vspec = json!({
        "name": "vrace", "api_server": "https://127.0.0.1:31446", "cluster_type": "virtual",
        "usage": "worker", "host_cluster": "hrace", "vcluster": {"https_node_port": 31446},
    });
    let (_v, vpath) = write_temp("virtual.json", &vspec.to_string());
    let (hp, vp) = (hpath.to_str().expect("utf8"), vpath.to_str().expect("utf8"));
    let mut outcomes = Vec::new();
    for round in 0..5u64 {
        until_unlocked(&["register", "-f", hp], &mgmt_kc, &[]).ok();
        let register = Bg::spawn(&["register", "-f", vp, "--timeout", "2m"], &mgmt_kc, &[]);
        // offsets from 0 to 1.2 s: the destroy starts before, during and
        // after the register's checks
        std::thread::sleep(std::time::Duration::from_millis(round * 300));
        let destroy = Bg::spawn(&["destroy", "hrace"], &mgmt_kc, &[]);
        let (r, d) = (
            register.finish(std::time::Duration::from_secs(240)),
            destroy.finish(std::time::Duration::from_secs(240)),
        );
        let (host_state, virt_state) = (
            state_of(&mgmt, "hrace").await,
            state_of(&mgmt, "vrace").await,
        );
        assert!(
            !(host_state.is_none() && virt_state.as_deref() == Some("Registered")),
            "round {round}: virtual worker registered on a destroyed host\nregister ({}):\n{}\ndestroy ({}):\n{}",
            r.code,
            r.stderr,
            d.code,
            d.stderr
        );
        // exactly one of them may have won; the other was refused (exit 3)
        assert!(
            (r.code == 0 && d.code == 3)
                || (r.code == 3 && d.code == 0)
                || (r.code == 3 && d.code == 3),
            "round {round}: register exit {}, destroy exit {}\n{}\n{}",
            r.code,
            d.code,
            r.stderr,
            d.stderr
        );
        outcomes.push((r.code, d.code));
        // clean up for the next round
        if virt_state.is_some() {
            until_unlocked(&["destroy", "vrace"], &mgmt_kc, &[]).ok();
        }
        if state_of(&mgmt, "hrace").await.is_some() {
            until_unlocked(&["destroy", "hrace"], &mgmt_kc, &[]).ok();
        }
    }
    eprintln!("outcomes (register exit, destroy exit): {outcomes:?}");
    wait_nothing_left(&hc, "hrace", "the host").await;
    wait_nothing_left(&hc, "vrace", "the host").await;
}

/// The API groups a cluster serves.
async fn api_groups(c: &kube::Client) -> Vec<String> {
    let mut groups: Vec<String> = c
        .list_api_groups()
        .await
        .expect("api groups")
        .groups
        .into_iter()
        .map(|g| g.name)
        .collect();
    groups.push(String::new());
    groups.sort();
    groups
}

/// Rules 6 and 7, physical side: a cluster whose stored credential is
/// rejected (401) is destroyed with the kubeconfig of the spec given with
/// -f; and a safety check that cannot be made (here: the custom resources of
/// a CRD the user may not list) refuses, naming what could not be checked,
/// and changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_credential_is_no_dead_end_and_an_unmade_check_refuses() {
    let bed = TestBed::start(&["management", "worker"]);
    let mgmt_kc = bed.cluster("management").kubeconfig.clone();
    let worker = bed.cluster("worker").clone();
    let (mgmt, wc) = (client(&mgmt_kc).await, client(&worker.kubeconfig).await);
    let name = "revoked";
    let (_d, spec_path) = write_temp(
        "spec.json",
        &physical_spec(name, "worker", &worker, json!({})),
    );
    let sp = spec_path.to_str().expect("utf8");
    nautes(&["register", "-f", sp], Some(&mgmt_kc), None).ok();

    // the token is revoked in the runtime cluster behind the plugin's back
    let secrets: Api<k8s_openapi::api::core::v1::Secret> =
        Api::namespaced(wc.clone(), "nautes-system");
    let mut revoked = 0;
    for s in secrets
        .list(&ListParams::default())
        .await
        .expect("list")
        .items
    {
        if s.type_.as_deref() == Some("kubernetes.io/service-account-token") {
            let n = s.metadata.name.expect("name");
            secrets
                .delete(&n, &Default::default())
                .await
                .expect("delete token");
            revoked += 1;
        }
    }
    assert_eq!(revoked, 1, "the credential's token Secret");
    // the API server rejects the token once its token cache has seen the
    // Secret go, which under load can take seconds: wait for that, so the
    // destroy below meets a rejected credential from its first request
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    loop {
        let st = nautes(&["status", name], Some(&mgmt_kc), None);
        if st.stderr.contains("401") || st.stdout.contains("401") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the revoked token is still accepted:\n{}{}",
            st.stdout,
            st.stderr
        );
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    let worker_before = objects(&wc, name).await;
    let mgmt_before = objects(&mgmt, name).await;
    assert!(!mgmt_before.is_empty());

    // without -f: refused, the way out named, nothing changed
    let run = nautes(&["destroy", name, "--timeout", "1m"], Some(&mgmt_kc), None);
    assert_eq!(run.code, 5, "{}", run.stderr);
    assert!(run.stderr.contains("-f <its spec>"), "{}", run.stderr);
    assert_eq!(objects(&wc, name).await, worker_before);
    assert_eq!(objects(&mgmt, name).await, mgmt_before);

    // with -f and a kubeconfig that may do everything except the
    // argoproj.io resources: the custom-resource check cannot be made, so
    // destroy refuses before deleting anything
    let rules: Vec<serde_json::Value> = api_groups(&wc)
        .await
        .into_iter()
        .filter(|g| g != "argoproj.io")
        .map(|g| json!({"apiGroups": [g], "resources": ["*"], "verbs": ["*"]}))
        .collect();
    let role = json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
        "metadata": {"name": "all-but-argo"}, "rules": rules,
    });
    let binding = json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
        "metadata": {"name": "all-but-argo"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "all-but-argo"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "nautes-restricted"}],
    });
    kubectl(
        &worker.kubeconfig,
        &["apply", "-f", "-"],
        Some(&format!("{role}\n---\n{binding}\n")),
    );
    let mut limited = worker.clone();
    limited.kubeconfig = worker.restricted_kubeconfig.clone();
    let (_l, limited_path) = write_temp(
        "limited.json",
        &physical_spec(name, "worker", &limited, json!({})),
    );
    let run = nautes(
        &[
            "destroy",
            name,
            "-f",
            limited_path.to_str().expect("utf8"),
            "--timeout",
            "1m",
        ],
        Some(&mgmt_kc),
        None,
    );
    assert_eq!(run.code, 4, "{}", run.stderr);
    assert!(
        run.stderr
            .contains("could not check the custom resources of CRD")
            && run.stderr.contains("argoproj.io"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("--force skips it"), "{}", run.stderr);
    assert_eq!(objects(&wc, name).await, worker_before);

    // with the spec's own kubeconfig: destroyed, nothing left anywhere
    let run = nautes(&["destroy", name, "-f", sp], Some(&mgmt_kc), None);
    run.ok();
    assert!(
        run.stderr.contains("using the kubeconfig of the spec"),
        "{}",
        run.stderr
    );
    wait_nothing_left(&wc, name, "the worker").await;
    nothing_of(&mgmt, &wc, name).await;
}
