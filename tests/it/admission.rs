//! Admission objects and the workloads that wait for them (issue 11, point
//! 2). external-secrets' cert-controller becomes Ready only once its
//! ValidatingWebhookConfiguration exists (it injects the webhook's caBundle
//! and reports ready only after that; upstream external-secrets#2217). A
//! register that waits for every workload before applying webhook
//! configurations never finishes on such a chart; one that applies each
//! configuration once the Service it calls has a ready endpoint does.
//!
//! What is simulated, and why: no container runs on the test bed, so the
//! coupling is played. The test's copy of the external-secrets test chart
//! labels the cert-controller's Pods `nautes.test/ready-after:
//! secretstore-validate`; the test bed's kwok keeps a Pod with that label
//! Running but not Ready (stage nautes-pod-running-unready,
//! testbed/cmd/nautes-testbed/kwok.go), and a task of this test plays the
//! cert-controller's part: once ValidatingWebhookConfiguration
//! secretstore-validate exists, it removes the label, and kwok makes the
//! Pod Ready.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::{ListParams, Patch, PatchParams};
use serde_json::json;

use crate::helpers::*;
use crate::testbed::TestBed;

const GATE: &str = "nautes.test/ready-after";
const WEBHOOK: &str = "secretstore-validate";

/// Plays the cert-controller: un-gates its Pods once the webhook
/// configuration exists. Counts the gated Pods it saw not Ready before
/// that, and the Pods it un-gated.
fn gate_keeper(
    c: kube::Client,
    stop: Arc<AtomicBool>,
    seen_unready: Arc<AtomicUsize>,
    lifted: Arc<AtomicUsize>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let pods: Api<Pod> = Api::all(c.clone());
        let vwcs: Api<ValidatingWebhookConfiguration> = Api::all(c.clone());
        let lp = ListParams::default().labels(&format!("{GATE}={WEBHOOK}"));
        while !stop.load(Ordering::Relaxed) {
            let exists = matches!(vwcs.get_opt(WEBHOOK).await, Ok(Some(_)));
            if let Ok(list) = pods.list(&lp).await {
                for pod in list.items {
                    let ready = pod
                        .status
                        .as_ref()
                        .and_then(|s| s.conditions.as_ref())
                        .and_then(|cs| cs.iter().find(|c| c.type_ == "Ready"))
                        .is_some_and(|c| c.status == "True");
                    let (Some(ns), Some(name)) = (pod.metadata.namespace, pod.metadata.name) else {
                        continue;
                    };
                    if !exists {
                        if !ready && pod.status.and_then(|s| s.phase).as_deref() == Some("Running")
                        {
                            seen_unready.fetch_add(1, Ordering::Relaxed);
                        }
                        continue;
                    }
                    let patch = json!({"metadata": {"labels": {GATE: null}}});
                    let api: Api<Pod> = Api::namespaced(c.clone(), &ns);
                    if api
                        .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                        .await
                        .is_ok()
                    {
                        lifted.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workload_that_waits_for_its_webhook_configuration_does_not_deadlock_the_register() {
    let bed = TestBed::start(&["management", "worker"]);
    let mgmt_kc = bed.cluster("management").kubeconfig.clone();
    let worker = bed.cluster("worker").clone();
    let wc = client(&worker.kubeconfig).await;
    let charts = charts_copy();
    edit_chart_file(
        charts.path(),
        "external-secrets",
        "templates/cert-controller.yaml",
        "    metadata:\n      labels:\n        app.kubernetes.io/name: external-secrets-cert-controller\n",
        &format!(
            "    metadata:\n      labels:\n        {GATE}: {WEBHOOK}\n        app.kubernetes.io/name: external-secrets-cert-controller\n"
        ),
    );
    let stop = Arc::new(AtomicBool::new(false));
    let (seen_unready, lifted) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let keeper = gate_keeper(
        wc.clone(),
        stop.clone(),
        seen_unready.clone(),
        lifted.clone(),
    );

    let (_d, spec) = write_temp(
        "gated.json",
        &physical_spec("gated", "worker", &worker, json!({})),
    );
    let (sp, cd) = (
        spec.to_str().expect("utf8").to_string(),
        charts.path().to_str().expect("utf8").to_string(),
    );
    let mgmt = mgmt_kc.clone();
    let run = tokio::task::spawn_blocking(move || {
        nautes(
            &[
                "register",
                "-f",
                &sp,
                "--charts-dir",
                &cd,
                "--timeout",
                "90s",
            ],
            Some(&mgmt),
            None,
        )
    })
    .await
    .expect("join");
    stop.store(true, Ordering::Relaxed);
    keeper.await.expect("gate keeper");
    run.ok();
    // the coupling was in force: the cert-controller's Pod was seen
    // Running and not Ready while the configuration did not exist, and was
    // let go once it did
    assert!(
        seen_unready.load(Ordering::Relaxed) > 0,
        "the gated Pod was never seen unready before the webhook configuration existed"
    );
    assert!(
        lifted.load(Ordering::Relaxed) > 0,
        "the gate was never lifted"
    );
    // and the order says so: the webhook configurations before the wait
    let applied = run
        .stderr
        .find("webhook configurations and APIServices:")
        .expect("admission objects applied");
    let waited = run
        .stderr
        .find("workloads ready")
        .expect("workloads waited for");
    assert!(applied < waited, "{}", run.stderr);

    // nothing changed: the re-register sends nothing and waits for no
    // endpoint (the webhook configuration is unchanged)
    let again = nautes(
        &[
            "register",
            "-f",
            spec.to_str().expect("utf8"),
            "--charts-dir",
            charts.path().to_str().expect("utf8"),
        ],
        Some(&mgmt_kc),
        None,
    );
    again.ok();
    assert!(
        again.stderr.contains(" 0 created, 0 configured"),
        "{}",
        again.stderr
    );
    assert!(
        !again.stderr.contains("has a ready endpoint after"),
        "{}",
        again.stderr
    );
    nautes(&["destroy", "gated"], Some(&mgmt_kc), None).ok();
    wait_nothing_left(&wc, "gated", "the worker").await;
}

/// A webhook configuration whose Service never gets a ready endpoint is
/// not applied, and the register says which one and which Service, within
/// --timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_whose_service_never_has_a_ready_endpoint_is_named_within_the_timeout() {
    let bed = TestBed::start(&["management", "worker"]);
    let mgmt_kc = bed.cluster("management").kubeconfig.clone();
    let worker = bed.cluster("worker").clone();
    let wc = client(&worker.kubeconfig).await;
    // the webhook's own Pods never become Ready (nothing lifts the gate)
    let charts = charts_copy();
    edit_chart_file(
        charts.path(),
        "external-secrets",
        "templates/webhook.yaml",
        "      labels:\n        app.kubernetes.io/name: external-secrets-webhook\n",
        &format!(
            "      labels:\n        {GATE}: never\n        app.kubernetes.io/name: external-secrets-webhook\n"
        ),
    );
    let (_d, spec) = write_temp(
        "stuck.json",
        &physical_spec("stuck", "worker", &worker, json!({})),
    );
    let began = std::time::Instant::now();
    let run = nautes(
        &[
            "register",
            "-f",
            spec.to_str().expect("utf8"),
            "--charts-dir",
            charts.path().to_str().expect("utf8"),
            "--timeout",
            "20s",
        ],
        Some(&mgmt_kc),
        None,
    );
    assert_eq!(run.code, 6, "exit 6 (timeout):\n{}", run.stderr);
    let err = error_block(&run.stderr);
    for part in [
        "admission object(s) not applied: what they call has no ready endpoint",
        "ValidatingWebhookConfiguration secretstore-validate (component external-secrets) calls Service external-secrets/external-secrets-webhook",
        "kubectl nautes status stuck",
    ] {
        assert!(err.contains(part), "no {part:?} in:\n{err}");
    }
    // the --timeout bounds it (generously: a loaded machine is slow)
    assert!(
        began.elapsed() < Duration::from_secs(180),
        "the register took {:?} with --timeout 20s",
        began.elapsed()
    );
    assert!(
        Api::<ValidatingWebhookConfiguration>::all(wc.clone())
            .get_opt(WEBHOOK)
            .await
            .expect("get")
            .is_none(),
        "the webhook configuration was applied without a backend"
    );
    nautes(&["destroy", "stuck"], Some(&mgmt_kc), None).ok();
    wait_nothing_left(&wc, "stuck", "the worker").await;
}
