//! Physical worker clusters, end to end against the test bed: a management
//! cluster and a worker cluster side by side, real helm with the project's
//! test charts (tests/charts), and the real binary.

use std::time::Duration;

use k8s_openapi::api::core::v1::{Namespace, Secret, ServiceAccount};
use k8s_openapi::api::rbac::v1::ClusterRoleBinding;
use kube::Api;
use serde_json::{Value, json};

use crate::helpers::*;
use crate::testbed::{TestBed, TestCluster};

async fn assert_registered(mgmt: &kube::Client, worker: &TestCluster, name: &str) {
    // the Argo CD cluster Secret, in Argo CD's format
    let secrets: Api<Secret> = Api::namespaced(mgmt.clone(), "argocd");
    let s = secrets
        .get(&format!("cluster-{name}"))
        .await
        .expect("Argo CD cluster Secret");
    let labels = s.metadata.labels.clone().unwrap_or_default();
    assert_eq!(
        labels
            .get("argocd.argoproj.io/secret-type")
            .map(String::as_str),
        Some("cluster")
    );
    assert_eq!(
        labels.get("cluster.nautes.io/usage").map(String::as_str),
        Some("worker")
    );
    let data = s.data.clone().unwrap_or_default();
    let get = |k: &str| {
        String::from_utf8(data.get(k).unwrap_or_else(|| panic!("key {k}")).0.clone()).expect("utf8")
    };
    assert_eq!(get("name"), name);
    assert_eq!(get("server"), worker.server);
    let config: Value = serde_json::from_str(&get("config")).expect("config JSON");
    let token = config["bearerToken"].as_str().expect("bearerToken");
    let ca = config["tlsClientConfig"]["caData"]
        .as_str()
        .expect("caData");
    // a client built from that credential alone can list namespaces there
    let kc = json!({"apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "c", "cluster": {"server": get("server"), "certificate-authority-data": ca}}],
        "users": [{"name": "u", "user": {"token": token}}],
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}], "current-context": "c"});
    let (_d, path) = write_temp("argocd.kubeconfig", &kc.to_string());
    let argocd = client(&path).await;
    let nss = Api::<Namespace>::all(argocd)
        .list(&Default::default())
        .await
        .expect("list namespaces with Argo CD's credential");
    assert!(
        nss.items
            .iter()
            .any(|n| n.metadata.name.as_deref() == Some("argocd"))
    );
    // the registration record
    let cms: Api<k8s_openapi::api::core::v1::ConfigMap> = Api::namespaced(mgmt.clone(), "nautes");
    let rec = cms.get(&format!("cluster-{name}")).await.expect("record");
    let record: Value = serde_json::from_str(
        rec.data
            .as_ref()
            .and_then(|d| d.get("record.json"))
            .expect("record.json"),
    )
    .expect("json");
    assert_eq!(record["state"], "Registered");
    assert_eq!(record["kind"], "physical worker");
    assert!(
        !rec.data
            .as_ref()
            .expect("data")
            .values()
            .any(|v| v.contains("client-key-data") || v.contains(token)),
        "the record holds a secret"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn physical_worker_registers_converges_prunes_and_destroys_without_leftovers() {
    let bed = TestBed::start(&["management", "worker"]);
    let (mgmt_kc, worker) = (
        bed.cluster("management").kubeconfig.clone(),
        bed.cluster("worker").clone(),
    );
    let mgmt = client(&mgmt_kc).await;
    let wc = client(&worker.kubeconfig).await;
    let name = "demo-worker";
    let spec = physical_spec(name, "worker", &worker, json!({}));
    let (_d, spec_path) = write_temp("worker.json", &spec);
    let sp = spec_path.to_str().expect("utf8");

    // register installs every component, waits, registers
    let run = nautes(&["register", "-f", sp, "-o", "json"], Some(&mgmt_kc), None);
    run.ok();
    let out = json_out(&run.stdout);
    assert_eq!(out["state"], "Registered");
    assert!(
        out["changes"]["created"].as_u64().unwrap_or(0) > 20,
        "{out}"
    );
    for component in [
        "hnc",
        "external-secrets",
        "traefik",
        "argocd",
        "argo-rollouts",
        "vault",
        "credential",
        "vault-auth",
    ] {
        let objs = labelled(
            &wc,
            &format!("{SELECTOR}{name},nautes.io/component={component}"),
        )
        .await;
        assert!(
            !objs.is_empty(),
            "component {component} has no objects in the worker"
        );
    }
    assert!(
        labelled(&wc, &format!("{SELECTOR}{name},nautes.io/component=tekton"))
            .await
            .is_empty()
    );
    assert_registered(&mgmt, &worker, name).await;
    // Vault's Kubernetes auth ServiceAccount, bound to system:auth-delegator
    Api::<ServiceAccount>::namespaced(wc.clone(), "vault")
        .get("vault-auth")
        .await
        .expect("vault/vault-auth");
    let crb = Api::<ClusterRoleBinding>::all(wc.clone())
        .get("vault-auth-delegator")
        .await
        .expect("binding");
    assert_eq!(crb.role_ref.name, "system:auth-delegator");

    // status reads every component from the cluster now
    let st = nautes(&["status", name, "-o", "json"], Some(&mgmt_kc), None);
    st.ok();
    assert_eq!(json_out(&st.stdout)["ready"], true, "{}", st.stdout);
    let list = nautes(&["list"], Some(&mgmt_kc), None);
    list.ok();
    assert!(
        list.stdout.contains(name) && list.stdout.contains("Registered"),
        "{}",
        list.stdout
    );

    // again: no change
    let again = nautes(&["register", "-f", sp, "-o", "json"], Some(&mgmt_kc), None);
    again.ok();
    let c = &json_out(&again.stdout)["changes"];
    assert_eq!(
        (
            c["created"].as_u64(),
            c["configured"].as_u64(),
            c["pruned"].as_u64()
        ),
        (Some(0), Some(0), Some(0)),
        "{c}"
    );
    let d = nautes(&["diff", "-f", sp], Some(&mgmt_kc), None);
    d.ok();
    assert_eq!(d.stdout.trim(), "no changes", "{}", d.stdout);

    // drift: someone edits an object by hand; register notices (its
    // resourceVersion moved), refuses to overwrite another field manager's
    // field and names it, and with --force-conflicts puts it back
    let cms: Api<k8s_openapi::api::core::v1::ConfigMap> = Api::namespaced(wc.clone(), "argocd");
    let patch = json!({"data": {"url": "https://drifted.example"}});
    let pp = kube::api::PatchParams {
        field_manager: Some("kubectl-edit".into()),
        ..Default::default()
    };
    cms.patch("argocd-cm", &pp, &kube::api::Patch::Merge(&patch))
        .await
        .expect("edit argocd-cm by hand");
    let refused = nautes(&["register", "-f", sp], Some(&mgmt_kc), None);
    assert_eq!(refused.code, 7, "{}", refused.stderr);
    assert!(
        refused.stderr.contains("kubectl-edit") && refused.stderr.contains("--force-conflicts"),
        "{}",
        refused.stderr
    );
    let fix = nautes(
        &["register", "-f", sp, "-o", "json", "--force-conflicts"],
        Some(&mgmt_kc),
        None,
    );
    fix.ok();
    let c = &json_out(&fix.stdout)["changes"];
    assert_eq!(c["configured"].as_u64(), Some(1), "{c}");
    let cm = cms.get("argocd-cm").await.expect("argocd-cm");
    assert_ne!(
        cm.data.unwrap_or_default().get("url").map(String::as_str),
        Some("https://drifted.example"),
        "the drift was not repaired"
    );

    // a changed spec: traefik's node port moves, and a pipeline worker swaps
    // Argo Rollouts for Tekton and Argo Events
    let changed = physical_spec(
        name,
        "worker",
        &worker,
        json!({"worker_type": "pipeline", "traefik": {"http_node_port": "30081"}}),
    );
    std::fs::write(&spec_path, changed).expect("write");
    let d = nautes(&["diff", "-f", sp, "-o", "json"], Some(&mgmt_kc), None);
    d.ok();
    assert!(
        d.stdout.contains("prune") && d.stdout.contains("argo-rollouts"),
        "{}",
        d.stdout
    );
    let run = nautes(&["register", "-f", sp, "-o", "json"], Some(&mgmt_kc), None);
    run.ok();
    let out = json_out(&run.stdout);
    let changed: Vec<String> = out["stages"][0]["changed"]
        .as_array()
        .expect("changed")
        .iter()
        .map(|c| {
            format!(
                "{} {} {}",
                c["action"].as_str().unwrap_or(""),
                c["component"].as_str().unwrap_or(""),
                c["object"].as_str().unwrap_or("")
            )
        })
        .collect();
    assert!(
        changed
            .iter()
            .any(|c| c.starts_with("configure traefik Service traefik/")),
        "{changed:#?}"
    );
    assert!(
        changed.iter().any(|c| c.starts_with("prune argo-rollouts")),
        "{changed:#?}"
    );
    assert!(
        changed.iter().any(|c| c.starts_with("create tekton")),
        "{changed:#?}"
    );
    assert!(
        !changed.iter().any(|c| c.contains(" argocd ")),
        "argocd did not change: {changed:#?}"
    );
    assert!(
        labelled(
            &wc,
            &format!("{SELECTOR}{name},nautes.io/component=argo-rollouts")
        )
        .await
        .is_empty()
    );

    // rotate-credentials: a new token works, the old one is revoked
    let token_of = |s: &Secret| -> String {
        let config = s
            .data
            .as_ref()
            .and_then(|d| d.get("config"))
            .expect("config")
            .0
            .clone();
        let v: Value = serde_json::from_slice(&config).expect("json");
        v["bearerToken"].as_str().expect("token").to_string()
    };
    let argo: Api<Secret> = Api::namespaced(mgmt.clone(), "argocd");
    let old = token_of(&argo.get(&format!("cluster-{name}")).await.expect("secret"));
    nautes(&["rotate-credentials", name], Some(&mgmt_kc), None).ok();
    let new = token_of(&argo.get(&format!("cluster-{name}")).await.expect("secret"));
    assert_ne!(old, new, "rotate-credentials did not change the token");
    let with_token = |token: String| {
        let worker = worker.clone();
        async move {
            let ca = std::fs::read_to_string(&worker.kubeconfig).expect("kc");
            let kc: Value = serde_saphyr::from_str(&ca).expect("yaml");
            let kc = json!({"apiVersion": "v1", "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": worker.server, "certificate-authority-data": kc["clusters"][0]["cluster"]["certificate-authority-data"]}}],
                "users": [{"name": "u", "user": {"token": token}}],
                "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}], "current-context": "c"});
            let (_d, path) = write_temp("t.kubeconfig", &kc.to_string());
            let c = client(&path).await;
            Api::<Namespace>::all(c)
                .list(&Default::default())
                .await
                .map(|_| ())
        }
    };
    with_token(new).await.expect("the new token works");
    match with_token(old).await {
        Err(kube::Error::Api(s)) => assert_eq!(s.code, 401, "{s:?}"),
        other => panic!("the old token must be revoked (401), got {other:?}"),
    }

    // destroy leaves nothing in either cluster
    let run = nautes(&["destroy", name], Some(&mgmt_kc), None);
    run.ok();
    wait_nothing_left(&wc, name, "the worker").await;
    wait_nothing_left(&mgmt, name, "the management cluster").await;
    for ns in [
        "nautes-system",
        "argocd",
        "hnc-system",
        "traefik",
        "vault",
        "tekton-pipelines",
        "argo-events",
    ] {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while Api::<Namespace>::all(wc.clone())
            .get_opt(ns)
            .await
            .expect("get")
            .is_some()
        {
            assert!(
                std::time::Instant::now() < deadline,
                "namespace {ns} left behind"
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    assert!(
        Api::<ClusterRoleBinding>::all(wc.clone())
            .get_opt("nautes-manager")
            .await
            .expect("get")
            .is_none()
    );
    // and destroying again says it is not registered
    let again = nautes(&["destroy", name], Some(&mgmt_kc), None);
    assert_eq!(again.code, 3, "{}", again.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_namespace_webhook_like_hncs_never_blocks_register_or_destroy() {
    // tests/charts-hnc-webhook/hnc copies HNC's dangerous shape: a
    // failurePolicy=Fail webhook on Namespaces. kwok runs no containers, so
    // it is never served here: any namespace change after it exists fails.
    let bed = TestBed::start(&["management", "worker"]);
    let (mgmt_kc, worker) = (
        bed.cluster("management").kubeconfig.clone(),
        bed.cluster("worker").clone(),
    );
    let wc = client(&worker.kubeconfig).await;
    let charts = charts_with("charts-hnc-webhook", "hnc");
    let name = "hnc-order";
    let (_d, spec_path) = write_temp("w.json", &physical_spec(name, "worker", &worker, json!({})));
    let sp = spec_path.to_str().expect("utf8");
    let cd = charts.path().to_str().expect("utf8");
    let run = nautes(
        &["register", "-f", sp, "--charts-dir", cd],
        Some(&mgmt_kc),
        None,
    );
    run.ok();
    let hooks: Api<k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration> =
        Api::all(wc.clone());
    let has_ns_hook = hooks
        .list(&Default::default())
        .await
        .expect("list")
        .items
        .iter()
        .any(|h| {
            h.webhooks.iter().flatten().any(|w| {
                w.failure_policy.as_deref() == Some("Fail")
                    && w.rules
                        .iter()
                        .flatten()
                        .any(|r| r.resources.iter().flatten().any(|x| x == "namespaces"))
            })
        });
    assert!(
        has_ns_hook,
        "the fixture must install a failing Namespace webhook"
    );
    // a register with nothing to change sends nothing, Namespaces included,
    // so the webhook that cannot answer is never asked
    let run = nautes(
        &["register", "-f", sp, "--charts-dir", cd, "-o", "json"],
        Some(&mgmt_kc),
        None,
    );
    run.ok();
    let changes = &json_out(&run.stdout)["changes"];
    assert_eq!(
        (
            changes["created"].as_u64(),
            changes["configured"].as_u64(),
            changes["pruned"].as_u64()
        ),
        (Some(0), Some(0), Some(0)),
        "{}",
        run.stdout
    );
    // a change the webhook must admit: refused in one line that names the
    // webhook, its Service and the way out, within --timeout
    let (_e, edge_path) = write_temp(
        "edge.json",
        &physical_spec(
            name,
            "worker",
            &worker,
            json!({"componentsList": {"gateway": {"namespace": "edge"}}}),
        ),
    );
    let run = nautes(
        &[
            "register",
            "-f",
            edge_path.to_str().expect("utf8"),
            "--charts-dir",
            cd,
            "--timeout",
            "20s",
        ],
        Some(&mgmt_kc),
        None,
    );
    assert_eq!(run.code, 7, "{}", run.stderr);
    let block = error_block(&run.stderr);
    assert!(
        block.contains("admission webhook \"namespaces.hnc.x-k8s.io\" (Service hnc-system/hnc-webhook-service) could not be called")
            && block.contains("make the Service's Pods ready"),
        "{}",
        run.stderr
    );
    assert_eq!(block.trim().lines().count(), 1, "one line: {block}");
    let run = nautes(&["destroy", name, "--charts-dir", cd], Some(&mgmt_kc), None);
    // destroy takes no --charts-dir: it works from the inventory alone
    assert_eq!(run.code, 2, "{}", run.stderr);
    nautes(&["destroy", name], Some(&mgmt_kc), None).ok();
    wait_nothing_left(&wc, name, "the worker").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preflight_names_missing_permissions_and_nothing_is_written() {
    let bed = TestBed::start(&["management", "worker"]);
    let mgmt_kc = bed.cluster("management").kubeconfig.clone();
    let mut worker = bed.cluster("worker").clone();
    worker.kubeconfig = worker.restricted_kubeconfig.clone();
    let name = "restricted";
    let (_d, spec_path) = write_temp("w.json", &physical_spec(name, "worker", &worker, json!({})));
    let run = nautes(
        &["register", "-f", spec_path.to_str().expect("utf8")],
        Some(&mgmt_kc),
        None,
    );
    assert_eq!(run.code, 4, "{}", run.stderr);
    for needed in [
        "create customresourcedefinitions.apiextensions.k8s.io cluster-wide",
        "create namespaces cluster-wide",
        "bind clusterroles.rbac.authorization.k8s.io",
    ] {
        assert!(
            run.stderr.contains(needed),
            "missing {needed:?} in:\n{}",
            run.stderr
        );
    }
    assert!(run.stderr.contains("nothing was changed"), "{}", run.stderr);
    let mgmt = client(&mgmt_kc).await;
    let wc = client(&bed.cluster("worker").kubeconfig).await;
    assert!(
        labelled(&mgmt, &format!("{SELECTOR}{name}"))
            .await
            .is_empty()
    );
    assert!(
        labelled(&wc, "app.kubernetes.io/managed-by=kubectl-nautes")
            .await
            .is_empty()
    );
    assert!(
        Api::<Namespace>::all(mgmt)
            .get_opt("nautes")
            .await
            .expect("get")
            .is_none(),
        "preflight created the registry namespace"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn destroy_is_refused_while_argo_cd_applications_deploy_to_the_cluster() {
    let bed = TestBed::start(&["management", "worker"]);
    let mgmt_kc = bed.cluster("management").kubeconfig.clone();
    let worker = bed.cluster("worker").clone();
    let mgmt = client(&mgmt_kc).await;
    let name = "busy";
    let (_d, spec_path) = write_temp("w.json", &physical_spec(name, "worker", &worker, json!({})));
    nautes(
        &["register", "-f", spec_path.to_str().expect("utf8")],
        Some(&mgmt_kc),
        None,
    )
    .ok();
    // Argo CD's Application kind in the management cluster (a minimal CRD
    // written here), and one app deploying to the worker, applied with the
    // test bed's real kubectl
    let kubectl = crate::testbed::bin_dir().join("kubectl");
    let crd = "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata: {name: applications.argoproj.io}\nspec:\n  group: argoproj.io\n  scope: Namespaced\n  names: {plural: applications, singular: application, kind: Application}\n  versions:\n  - name: v1alpha1\n    served: true\n    storage: true\n    schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}\n";
    let (_c, crd_path) = write_temp("crd.yaml", crd);
    let st = std::process::Command::new(&kubectl)
        .args([
            "--kubeconfig",
            mgmt_kc.to_str().expect("utf8"),
            "apply",
            "--server-side",
            "-f",
            crd_path.to_str().expect("utf8"),
        ])
        .status()
        .expect("kubectl");
    assert!(st.success());
    let app = format!(
        "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata: {{name: shop, namespace: argocd}}\nspec: {{destination: {{server: '{}', namespace: shop}}, project: default, source: {{repoURL: 'https://example.invalid/r.git', path: '.'}}}}\n",
        worker.server
    );
    let (_a, app_path) = write_temp("app.yaml", &app);
    let mut ok = false;
    for _ in 0..30 {
        let st = std::process::Command::new(&kubectl)
            .args([
                "--kubeconfig",
                mgmt_kc.to_str().expect("utf8"),
                "apply",
                "-f",
                app_path.to_str().expect("utf8"),
            ])
            .status()
            .expect("kubectl");
        if st.success() {
            ok = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    assert!(ok, "could not create the Application");
    let run = nautes(&["destroy", name], Some(&mgmt_kc), None);
    assert_eq!(run.code, 3, "{}", run.stderr);
    assert!(run.stderr.contains("argocd/shop"), "{}", run.stderr);
    assert!(
        !labelled(&mgmt, &format!("{SELECTOR}{name}"))
            .await
            .is_empty(),
        "a refused destroy changed the management cluster"
    );
    let records_before = labelled(&mgmt, &format!("{SELECTOR}{name}")).await;

    // fail closed: a management user who may do everything destroy needs
    // except list Applications cannot have the check made, and is refused
    let rbac = "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata: {name: no-applications}\nrules:\n- {apiGroups: ['', coordination.k8s.io], resources: ['*'], verbs: ['*']}\n---\napiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata: {name: no-applications}\nroleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: no-applications}\nsubjects:\n- {apiGroup: rbac.authorization.k8s.io, kind: User, name: nautes-restricted}\n";
    let (_r, rbac_path) = write_temp("rbac.yaml", rbac);
    let st = std::process::Command::new(&kubectl)
        .args([
            "--kubeconfig",
            mgmt_kc.to_str().expect("utf8"),
            "apply",
            "-f",
            rbac_path.to_str().expect("utf8"),
        ])
        .status()
        .expect("kubectl");
    assert!(st.success());
    let limited = bed.cluster("management").restricted_kubeconfig.clone();
    let run = nautes(&["destroy", name], Some(&limited), None);
    assert_eq!(run.code, 4, "{}", run.stderr);
    assert!(
        run.stderr
            .contains("could not check whether Argo CD Applications deploy to cluster busy")
            && run.stderr.contains("--force skips it"),
        "{}",
        run.stderr
    );
    assert_eq!(
        labelled(&mgmt, &format!("{SELECTOR}{name}")).await,
        records_before,
        "a destroy that could not make its check changed the management cluster"
    );

    nautes(&["destroy", name, "--force"], Some(&mgmt_kc), None).ok();
    wait_nothing_left(&mgmt, name, "the management cluster").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn null_fields_in_a_chart_are_dropped_and_a_second_register_changes_nothing() {
    // tests/charts-null-fields/traefik is tests/charts/traefik with the null
    // fields upstream Traefik emits: `metadata.annotations:` with no value on
    // its Service, and nulls nested in its Deployment (the Pod template's
    // annotations, a container's securityContext, inside a list)
    let bed = TestBed::start(&["management", "worker"]);
    let (mgmt_kc, worker) = (
        bed.cluster("management").kubeconfig.clone(),
        bed.cluster("worker").clone(),
    );
    let wc = client(&worker.kubeconfig).await;
    let charts = charts_with("charts-null-fields", "traefik");
    let name = "null-fields";
    let (_d, spec_path) = write_temp("w.json", &physical_spec(name, "worker", &worker, json!({})));
    let sp = spec_path.to_str().expect("utf8");
    let cd = charts.path().to_str().expect("utf8");

    // the fixture really emits the nulls
    let rendered = nautes(
        &["render", "-f", sp, "--charts-dir", cd, "-o", "json"],
        None,
        None,
    );
    let helm = std::env::var_os("NAUTES_TESTBED_BIN").map_or_else(
        || "helm".into(),
        |b| std::path::PathBuf::from(b).join("helm"),
    );
    let raw = std::process::Command::new(helm)
        .args(["template", "traefik", &format!("{cd}/traefik")])
        .output()
        .expect("helm template");
    let raw = String::from_utf8_lossy(&raw.stdout);
    assert!(
        raw.contains("  annotations:\nspec:") && raw.contains("securityContext:\n"),
        "the fixture emits no null fields:\n{raw}"
    );
    // and render shows none of them
    rendered.ok();
    fn nulls(v: &Value, at: &str, out: &mut Vec<String>) {
        match v {
            Value::Null => out.push(at.to_string()),
            Value::Object(m) => m
                .iter()
                .for_each(|(k, v)| nulls(v, &format!("{at}.{k}"), out)),
            Value::Array(a) => a
                .iter()
                .enumerate()
                .for_each(|(i, v)| nulls(v, &format!("{at}[{i}]"), out)),
            _ => {}
        }
    }
    let list = json_out(&rendered.stdout);
    let items = list["items"].as_array().expect("items");
    assert!(
        items
            .iter()
            .any(|o| o["kind"] == "Service" && o["metadata"]["name"] == "traefik")
    );
    let mut found = Vec::new();
    for o in items {
        let at = format!(
            "{} {}",
            o["kind"].as_str().unwrap_or("?"),
            o["metadata"]["name"].as_str().unwrap_or("?")
        );
        nulls(o, &at, &mut found);
    }
    assert!(found.is_empty(), "render prints null fields: {found:?}");

    let first = nautes(
        &["register", "-f", sp, "--charts-dir", cd, "-o", "json"],
        Some(&mgmt_kc),
        None,
    );
    first.ok();
    let again = nautes(
        &["register", "-f", sp, "--charts-dir", cd, "-o", "json"],
        Some(&mgmt_kc),
        None,
    );
    again.ok();
    let c = &json_out(&again.stdout)["changes"];
    assert_eq!(
        (
            c["created"].as_u64(),
            c["configured"].as_u64(),
            c["pruned"].as_u64()
        ),
        (Some(0), Some(0), Some(0)),
        "{c}"
    );

    // the objects in the cluster carry nothing null-derived: no annotations
    // the plugin did not ask for, and no field of the plugin's manager that
    // came from a null
    let svc = Api::<k8s_openapi::api::core::v1::Service>::namespaced(wc.clone(), "traefik")
        .get("traefik")
        .await
        .expect("Service traefik");
    assert!(
        svc.metadata
            .annotations
            .as_ref()
            .is_none_or(|a| a.is_empty()),
        "{:?}",
        svc.metadata.annotations
    );
    let dep = Api::<k8s_openapi::api::apps::v1::Deployment>::namespaced(wc.clone(), "traefik")
        .get("traefik")
        .await
        .expect("Deployment traefik");
    // the Deployment controller's revision annotation is there and stays:
    // the plugin sent no `annotations: null` that would take it away
    let annotations = dep.metadata.annotations.clone().unwrap_or_default();
    assert!(
        annotations.contains_key("deployment.kubernetes.io/revision")
            && annotations
                .keys()
                .all(|k| k == "deployment.kubernetes.io/revision"),
        "{annotations:?}"
    );
    let pod = dep.spec.as_ref().expect("spec").template.clone();
    assert!(
        pod.metadata
            .as_ref()
            .and_then(|m| m.annotations.as_ref())
            .is_none_or(|a| a.is_empty())
    );
    assert!(
        pod.spec.as_ref().expect("pod spec").containers[0]
            .security_context
            .is_none()
    );
    for (what, fields) in [
        ("Service", &svc.metadata.managed_fields),
        ("Deployment", &dep.metadata.managed_fields),
    ] {
        let ours: Vec<String> = fields
            .iter()
            .flatten()
            .filter(|f| {
                f.manager
                    .as_deref()
                    .is_some_and(|m| m.starts_with("kubectl-nautes"))
            })
            .map(|f| serde_json::to_string(&f.fields_v1).expect("json"))
            .collect();
        assert!(!ours.is_empty(), "{what}: no fields of kubectl-nautes");
        for f in ours {
            assert!(
                !f.contains("f:annotations") && !f.contains("f:securityContext"),
                "{what}: the plugin owns a field it only sent as null: {f}"
            );
        }
    }
    nautes(&["destroy", name], Some(&mgmt_kc), None).ok();
    wait_nothing_left(&wc, name, "the worker").await;
}

/// Issue 11, point 9: the readiness wait and `status` judge a Job deleted
/// by its TTL the same way (complete, so ready). The chart is a copy of
/// tests/charts/traefik with one Job more, not a Helm hook, deleted by the
/// TTL controller as soon as it finishes (`ttlSecondsAfterFinished: 0`), as
/// upstream charts' one-off Jobs are.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_deleted_by_its_ttl_is_ready_for_the_wait_and_for_status() {
    let bed = TestBed::start(&["management", "worker"]);
    let (mgmt_kc, worker) = (
        bed.cluster("management").kubeconfig.clone(),
        bed.cluster("worker").clone(),
    );
    let wc = client(&worker.kubeconfig).await;
    let charts = tempfile::tempdir().expect("dir");
    for e in std::fs::read_dir(repo().join("tests/charts")).expect("charts") {
        let p = e.expect("entry").path();
        if p.is_dir() && p.file_name().is_some_and(|n| n != "traefik") {
            std::os::unix::fs::symlink(&p, charts.path().join(p.file_name().expect("name")))
                .expect("link");
        }
    }
    let chart = charts.path().join("traefik");
    let st = std::process::Command::new("cp")
        .arg("-r")
        .arg(repo().join("tests/charts/traefik"))
        .arg(&chart)
        .status()
        .expect("cp");
    assert!(st.success());
    std::fs::write(
        chart.join("templates/ttl-job.yaml"),
        r#"apiVersion: batch/v1
kind: Job
metadata:
  name: traefik-once
  namespace: {{ .Release.Namespace }}
  labels:
    {{- include "traefik.labels" . | nindent 4 }}
spec:
  ttlSecondsAfterFinished: 0
  backoffLimit: 1
  template:
    metadata:
      labels:
        {{- include "traefik.labelselector" . | nindent 8 }}
    spec:
      restartPolicy: Never
      containers:
        - name: once
          image: "docker.io/traefik:{{ .Chart.AppVersion }}"
          args: ["version"]
"#,
    )
    .expect("write the Job");
    let name = "ttl-job";
    let (_d, spec_path) = write_temp("w.json", &physical_spec(name, "worker", &worker, json!({})));
    let sp = spec_path.to_str().expect("utf8");
    let cd = charts.path().to_str().expect("utf8");
    // the Job is in the plan
    let rendered = nautes(
        &["render", "-f", sp, "--charts-dir", cd, "-o", "json"],
        None,
        None,
    );
    rendered.ok();
    assert!(
        json_out(&rendered.stdout)["items"]
            .as_array()
            .expect("items")
            .iter()
            .any(|o| o["kind"] == "Job" && o["metadata"]["name"] == "traefik-once"),
        "the plan has no Job traefik-once"
    );
    // the register applies it and waits for it (complete, or gone)
    nautes(
        &["register", "-f", sp, "--charts-dir", cd],
        Some(&mgmt_kc),
        None,
    )
    .ok();
    // the Job ran (kwok) and the TTL controller deleted it
    let jobs: Api<k8s_openapi::api::batch::v1::Job> = Api::namespaced(wc.clone(), "traefik");
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while jobs
        .get_opt("traefik-once")
        .await
        .expect("get Job")
        .is_some()
    {
        assert!(
            std::time::Instant::now() < deadline,
            "Job traefik-once was never deleted by its TTL"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // status agrees with the wait: ready, exit 0
    let st = nautes(&["status", name, "-o", "json"], Some(&mgmt_kc), None);
    assert_eq!(st.code, 0, "{}\n{}", st.stdout, st.stderr);
    let v = json_out(&st.stdout);
    assert_eq!(v["ready"], true, "{v}");
    assert!(
        v["components"]
            .as_array()
            .expect("components")
            .iter()
            .any(|c| c["component"] == "traefik" && c["ready"] == true),
        "{v}"
    );
    nautes(&["destroy", name], Some(&mgmt_kc), None).ok();
    wait_nothing_left(&wc, name, "the worker").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chart_of_the_wrong_version_stops_register_before_the_worker_is_touched() {
    let bed = TestBed::start(&["management", "worker"]);
    let (mgmt_kc, worker) = (
        bed.cluster("management").kubeconfig.clone(),
        bed.cluster("worker").clone(),
    );
    let mgmt = client(&mgmt_kc).await;
    let wc = client(&worker.kubeconfig).await;
    let charts = charts_copy();
    edit_chart_yaml(
        charts.path(),
        "traefik",
        "version: 41.3.0",
        "version: 41.2.0",
    );
    std::fs::remove_dir_all(charts.path().join("argo-cd/charts/redis-ha")).expect("rm");
    let name = "wrong-chart";
    let (_d, spec_path) = write_temp("w.json", &physical_spec(name, "worker", &worker, json!({})));
    let run = nautes(
        &[
            "register",
            "-f",
            spec_path.to_str().expect("utf8"),
            "--charts-dir",
            charts.path().to_str().expect("utf8"),
        ],
        Some(&mgmt_kc),
        None,
    );
    assert_eq!(run.code, 8, "{}", run.stderr);
    for needed in [
        "is version 41.2.0, the catalog pins 41.3.0",
        "missing under its charts/ directory: redis-ha",
    ] {
        assert!(
            run.stderr.contains(needed),
            "missing {needed:?} in:\n{}",
            run.stderr
        );
    }
    // nothing of the plan was written: not in the worker, and no
    // registration object in the management cluster
    assert!(
        labelled(&wc, "app.kubernetes.io/managed-by=kubectl-nautes")
            .await
            .is_empty()
    );
    assert!(!namespace_exists(&wc, "traefik").await);
    assert!(
        labelled(&mgmt, &format!("{SELECTOR}{name}"))
            .await
            .is_empty()
    );
    let cms: Api<k8s_openapi::api::core::v1::ConfigMap> = Api::namespaced(mgmt.clone(), "nautes");
    assert!(
        cms.get_opt(&format!("cluster-{name}"))
            .await
            .expect("get")
            .is_none(),
        "a registration record was written"
    );
}
