//! The lock as a fence: a run that lost its Lease while it was paused stops
//! before its next request, and leaves the Lease of the run that took it
//! alone. Real processes, real signals (SIGSTOP/SIGCONT), real clocks: the
//! Lease expires on its own, nothing patches its renewTime.

use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Namespace;
use kube::Api;
use serde_json::json;

use crate::helpers::*;
use crate::testbed::TestBed;

/// The holder of the cluster's Lease and the Lease's acquireTime.
async fn holder(mgmt: &kube::Client, name: &str) -> Option<(String, String)> {
    let l: Lease = Api::<Lease>::namespaced(mgmt.clone(), "nautes")
        .get_opt(&format!("lock-{name}"))
        .await
        .ok()
        .flatten()?;
    let spec = l.spec.unwrap_or_default();
    Some((
        spec.holder_identity.unwrap_or_default(),
        spec.acquire_time
            .map(|t| t.0.to_string())
            .unwrap_or_default(),
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_paused_until_its_lock_is_taken_stops_without_writing() {
    let bed = TestBed::start(&["management", "worker"]);
    let mgmt_kc = bed.cluster("management").kubeconfig.clone();
    let worker = bed.cluster("worker");
    let (mgmt, wc) = (client(&mgmt_kc).await, client(&worker.kubeconfig).await);
    let name = "fenced";
    let (_d, sp) = write_temp(
        "spec.json",
        &physical_spec(name, "worker", worker, json!({})),
    );
    let sp = sp.to_str().expect("utf8");

    // A: a register, paused in the middle of its apply phase
    let a = Bg::spawn(&["register", "-f", sp, "--progress", "json"], &mgmt_kc, &[]);
    let deadline = Instant::now() + Duration::from_secs(120);
    while Api::<Namespace>::all(wc.clone())
        .get_opt("argocd")
        .await
        .ok()
        .flatten()
        .is_none()
    {
        assert!(
            Instant::now() < deadline,
            "register never reached its apply phase"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    a.signal("STOP");
    let a_holds = format!(" pid {}", a.pid());
    let (h, _) = holder(&mgmt, name).await.expect("A's Lease");
    assert!(
        h.ends_with(&a_holds),
        "A had already finished: the Lease is {h}"
    );

    // B: a destroy, retried until it takes the lock: the Lease must first
    // look expired, then stay unchanged for its whole duration while B
    // watches it
    let started = Instant::now();
    let mut b = loop {
        let mut b = Bg::spawn(&["destroy", name], &mgmt_kc, &[]);
        let b_holds = format!(" pid {}", b.pid());
        let until = Instant::now() + Duration::from_secs(40);
        let mut took = false;
        while b.running() && Instant::now() < until {
            if holder(&mgmt, name)
                .await
                .is_some_and(|(h, _)| h.ends_with(&b_holds))
            {
                took = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        if took {
            break b;
        }
        let r = b.finish(Duration::from_secs(60));
        assert!(
            r.code == 3 && r.stderr.contains("is being changed by"),
            "destroy did not wait for the lock: {}",
            r.stderr
        );
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "B never took the lock"
        );
        std::thread::sleep(Duration::from_secs(1));
    };
    let b_lease = holder(&mgmt, name).await.expect("B's Lease");
    eprintln!(
        "B took the lock after {:?} (A paused all along)",
        started.elapsed()
    );

    // A resumes: it stops at once, with exit 3 and "lock lost"
    a.signal("CONT");
    let ra = a.finish(Duration::from_secs(60));
    assert_eq!(ra.code, 3, "A after resuming:\n{}", ra.stderr);
    assert!(ra.stderr.contains("lock lost"), "{}", ra.stderr);
    // B's Lease is untouched by A (same holder, same acquireTime), and
    // B's destroy completes and leaves nothing: A wrote nothing after it
    // resumed (an object A created then would be left behind)
    if b.running() {
        assert_eq!(
            holder(&mgmt, name).await,
            Some(b_lease.clone()),
            "A touched B's Lease"
        );
    }
    let rb = b.finish(Duration::from_secs(240));
    assert_eq!(rb.code, 0, "{}", rb.stderr);
    wait_nothing_left(&wc, name, "the worker").await;
    wait_nothing_left(&mgmt, name, "the management cluster").await;
}
