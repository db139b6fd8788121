//! Permissions from the plan: a user who has every permission but one that
//! register will use is refused before the first write (exit 4, the missing
//! one named), and neither cluster changes. Real RBAC on real API servers:
//! the test bed's restricted user gets a ClusterRole of everything the
//! cluster serves except one verb on one resource.

use std::collections::BTreeSet;

use kube::Discovery;
use serde_json::{Value, json};

use crate::helpers::*;
use crate::testbed::TestBed;

const VERBS: &[&str] = &[
    "get",
    "list",
    "watch",
    "create",
    "update",
    "patch",
    "delete",
    "deletecollection",
    "bind",
    "escalate",
    "impersonate",
];

/// A ClusterRole (and its binding to the test bed's restricted user) of
/// everything `c` serves except `verb` on `group`/`resource`.
async fn all_but(c: &kube::Client, verb: &str, group: &str, resource: &str) -> String {
    let discovery = Discovery::new(c.clone()).run().await.expect("discovery");
    let mut rules: Vec<Value> = vec![json!({"nonResourceURLs": ["*"], "verbs": ["*"]})];
    let mut found = false;
    for g in discovery.groups() {
        if g.name() != group {
            rules.push(json!({"apiGroups": [g.name()], "resources": ["*"], "verbs": ["*"]}));
            continue;
        }
        let resources: BTreeSet<String> = g
            .recommended_resources()
            .into_iter()
            .map(|(ar, _)| ar.plural)
            .collect();
        for r in resources {
            if r == resource {
                found = true;
                let verbs: Vec<&str> = VERBS.iter().copied().filter(|v| *v != verb).collect();
                rules.push(json!({"apiGroups": [group], "resources": [r], "verbs": verbs}));
            } else {
                rules.push(json!({"apiGroups": [group], "resources": [r], "verbs": ["*"]}));
            }
        }
    }
    assert!(found, "{group}/{resource} is not served");
    let role = json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
        "metadata": {"name": "all-but-one"}, "rules": rules,
    });
    let binding = json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
        "metadata": {"name": "all-but-one"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "all-but-one"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "nautes-restricted"}],
    });
    format!("{role}\n---\n{binding}\n")
}

/// Every object of both clusters (helpers::everything) but this test's own
/// RBAC.
async fn everything(c: &kube::Client) -> BTreeSet<String> {
    crate::helpers::everything(c)
        .await
        .into_iter()
        .filter(|o| !o.ends_with("/all-but-one"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_missing_one_permission_the_plan_uses_is_refused_before_any_write() {
    let bed = TestBed::start(&["management", "worker"]);
    let mgmt_tc = bed.cluster("management").clone();
    let worker = bed.cluster("worker").clone();
    let (mgmt, wc) = (
        client(&mgmt_tc.kubeconfig).await,
        client(&worker.kubeconfig).await,
    );
    let name = "perms";
    let (_a, admin_spec) = write_temp(
        "admin.json",
        &physical_spec(name, "worker", &worker, json!({})),
    );
    let mut limited = worker.clone();
    limited.kubeconfig = worker.restricted_kubeconfig.clone();
    let (_l, limited_spec) = write_temp(
        "limited.json",
        &physical_spec(name, "worker", &limited, json!({})),
    );

    // (cluster, verb, group, resource, what the error must name)
    let cases: &[(&str, &str, &str, &str, &str)] = &[
        (
            "worker",
            "create",
            "apiextensions.k8s.io",
            "customresourcedefinitions",
            "create customresourcedefinitions.apiextensions.k8s.io cluster-wide",
        ),
        (
            "worker",
            "patch",
            "apps",
            "deployments",
            "patch deployments.apps in namespace argocd",
        ),
        (
            "worker",
            "create",
            "",
            "secrets",
            "create secrets in namespace nautes-system",
        ),
        (
            "worker",
            "create",
            "",
            "configmaps",
            "create configmaps in namespace kube-system",
        ),
        (
            "worker",
            "bind",
            "rbac.authorization.k8s.io",
            "clusterroles",
            "bind clusterroles.rbac.authorization.k8s.io cluster-wide",
        ),
        (
            "worker",
            "list",
            "admissionregistration.k8s.io",
            "validatingwebhookconfigurations",
            "list validatingwebhookconfigurations.admissionregistration.k8s.io cluster-wide",
        ),
        (
            "management",
            "create",
            "",
            "secrets",
            "create secrets in namespace nautes",
        ),
        (
            "management",
            "patch",
            "",
            "configmaps",
            "patch configmaps in namespace nautes",
        ),
        (
            "management",
            "create",
            "coordination.k8s.io",
            "leases",
            "create leases.coordination.k8s.io in namespace nautes",
        ),
        (
            "management",
            "patch",
            "",
            "secrets",
            "patch secrets in namespace argocd",
        ),
        (
            "management",
            "create",
            "",
            "namespaces",
            "create namespaces cluster-wide",
        ),
        (
            "management",
            "delete",
            "coordination.k8s.io",
            "leases",
            "delete leases.coordination.k8s.io in namespace nautes",
        ),
    ];
    for (cluster, verb, group, resource, named) in cases {
        let (admin, kc) = if *cluster == "worker" {
            (&wc, &worker.kubeconfig)
        } else {
            (&mgmt, &mgmt_tc.kubeconfig)
        };
        kubectl(
            kc,
            &["apply", "-f", "-"],
            Some(&all_but(admin, verb, group, resource).await),
        );
        let before = (everything(&mgmt).await, everything(&wc).await);
        let (mgmt_kc, spec) = if *cluster == "worker" {
            (&mgmt_tc.kubeconfig, &limited_spec)
        } else {
            (&mgmt_tc.restricted_kubeconfig, &admin_spec)
        };
        let run = nautes(
            &["register", "-f", spec.to_str().expect("utf8")],
            Some(mgmt_kc),
            None,
        );
        let case = format!("{cluster} without {verb} {group}/{resource}");
        assert_eq!(run.code, 4, "{case}: {}", run.stderr);
        assert!(
            run.stderr.contains(named),
            "{case}: {named:?} not named:\n{}",
            run.stderr
        );
        assert!(
            run.stderr.contains("nothing was changed"),
            "{case}: {}",
            run.stderr
        );
        let after = (everything(&mgmt).await, everything(&wc).await);
        assert_unchanged(
            &before.0,
            &after.0,
            &format!("{case}: the management cluster"),
        );
        assert_unchanged(&before.1, &after.1, &format!("{case}: the worker"));
    }
    // with every permission, the same user registers and destroys
    kubectl(
        &worker.kubeconfig,
        &["apply", "-f", "-"],
        Some(&all_but(&wc, "impersonate", "", "serviceaccounts").await),
    );
    nautes(
        &["register", "-f", limited_spec.to_str().expect("utf8")],
        Some(&mgmt_tc.kubeconfig),
        None,
    )
    .ok();
    nautes(&["destroy", name], Some(&mgmt_tc.kubeconfig), None).ok();
    wait_nothing_left(&wc, name, "the worker").await;
}
