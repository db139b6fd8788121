//! Helm hooks end to end, against the test bed: a host cluster gets only
//! Traefik, and `tests/charts-hooks/traefik` is the test Traefik chart with
//! hook objects of every kind (see tests/charts/README.md). Simulated: kwok
//! plays the kubelet, so a hook Job's Pod "succeeds" without running a
//! container; the Job controller (the real kube-controller-manager) then
//! marks the Job Complete. The order is read from the plugin's progress
//! (`--progress json -v`, one line per event, in the order it happened) and
//! from a watch on the cluster's Jobs (the API server's own order of their
//! creations and deletions).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::Api;
use kube::api::{ListParams, WatchEvent, WatchParams};
use serde_json::{Value, json};

use crate::helpers::*;
use crate::testbed::TestBed;

/// Every Job event labelled for the cluster, as "added NAME" / "deleted
/// NAME", in the order the API server sends them.
async fn watch_jobs(c: kube::Client, cluster: &str) -> Arc<Mutex<Vec<String>>> {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let out = seen.clone();
    let selector = format!("nautes.io/cluster={cluster}");
    let api: Api<Job> = Api::all(c);
    // nothing of the cluster exists yet: the watch starts from now, before
    // the caller goes on
    let mut rv = api
        .list(&ListParams::default().labels(&selector))
        .await
        .expect("list Jobs")
        .metadata
        .resource_version
        .unwrap_or_default();
    tokio::spawn(async move {
        loop {
            let wp = WatchParams::default().labels(&selector).timeout(50);
            let Ok(stream) = api.watch(&wp, &rv).await else {
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            };
            let mut stream = stream.boxed();
            while let Some(ev) = stream.next().await {
                let push = |what: &str, j: &Job| {
                    if let Ok(mut s) = out.lock() {
                        s.push(format!(
                            "{what} {}",
                            j.metadata.name.clone().unwrap_or_default()
                        ));
                    }
                };
                match ev {
                    Ok(WatchEvent::Added(j)) => {
                        push("added", &j);
                        rv = j.metadata.resource_version.clone().unwrap_or(rv);
                    }
                    Ok(WatchEvent::Deleted(j)) => {
                        push("deleted", &j);
                        rv = j.metadata.resource_version.clone().unwrap_or(rv);
                    }
                    Ok(WatchEvent::Modified(j)) => {
                        rv = j.metadata.resource_version.clone().unwrap_or(rv);
                    }
                    Ok(WatchEvent::Bookmark(b)) => rv = b.metadata.resource_version,
                    Ok(WatchEvent::Error(e)) => {
                        if let Ok(mut s) = out.lock() {
                            s.push(format!("watch error {}", e.code));
                        }
                        return;
                    }
                    Err(_) => break,
                }
            }
        }
    });
    seen
}

fn events(seen: &Arc<Mutex<Vec<String>>>) -> Vec<String> {
    seen.lock().map(|s| s.clone()).unwrap_or_default()
}

/// The Job events once there are at least `n` (a watch delivers them a
/// little after the command that caused them has exited). The limit only
/// keeps a broken run from hanging; nothing is asserted about the time.
async fn events_at_least(seen: &Arc<Mutex<Vec<String>>>, n: usize) -> Vec<String> {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let ev = events(seen);
        if ev.len() >= n || std::time::Instant::now() >= deadline {
            return ev;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The progress lines of a run (`--progress json`): "step: message".
fn progress(stderr: &str) -> Vec<String> {
    stderr
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .map(|v| {
            format!(
                "{}: {}",
                v["step"].as_str().unwrap_or(""),
                v["message"].as_str().unwrap_or("")
            )
        })
        .collect()
}

/// The index of the first line that starts with `prefix` and contains
/// `part`.
fn at(lines: &[String], prefix: &str, part: &str) -> usize {
    lines
        .iter()
        .position(|l| l.starts_with(prefix) && l.contains(part))
        .unwrap_or_else(|| panic!("no progress line {prefix:?} … {part:?} in:\n{lines:#?}"))
}

fn ordered(lines: &[String], marks: &[(&str, &str)]) {
    let idx: Vec<usize> = marks.iter().map(|(p, s)| at(lines, p, s)).collect();
    assert!(
        idx.windows(2).all(|w| w[0] < w[1]),
        "not in this order: {marks:#?} (found at {idx:?}) in:\n{lines:#?}"
    );
}

async fn job(c: &kube::Client, name: &str) -> Option<Job> {
    Api::<Job>::namespaced(c.clone(), "traefik")
        .get_opt(name)
        .await
        .expect("get Job")
}

fn uid(j: &Option<Job>) -> String {
    j.as_ref()
        .and_then(|j| j.metadata.uid.clone())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn helm_hooks_run_in_order_honour_delete_policies_and_run_again_only_when_the_release_changed()
 {
    let bed = TestBed::start(&["management", "host"]);
    let (mgmt_kc, host) = (
        bed.cluster("management").kubeconfig.clone(),
        bed.cluster("host").clone(),
    );
    let hc = client(&host.kubeconfig).await;
    let mgmt = client(&mgmt_kc).await;
    let charts = charts_with("charts-hooks", "traefik");
    let cd = charts.path().to_str().expect("utf8");
    let name = "hooks";
    let (_d, spec_path) = write_temp("h.json", &physical_spec(name, "host", &host, json!({})));
    let sp = spec_path.to_str().expect("utf8");
    let seen = watch_jobs(hc.clone(), name).await;
    let register = |spec: &str| {
        nautes(
            &[
                "register",
                "-f",
                spec,
                "--charts-dir",
                cd,
                "-o",
                "json",
                "--progress",
                "json",
                "-v",
            ],
            Some(&mgmt_kc),
            None,
        )
    };

    // 1. the first register: pre-install hooks before the release's other
    // objects, by weight (the ServiceAccount at -10, traefik-pre-b at -5,
    // traefik-pre-a at 5: their names sort the other way), each Job waited
    // for until it succeeded; post-install after the release is ready
    let first = register(sp);
    first.ok();
    let lines = progress(&first.stderr);
    ordered(
        &lines,
        &[
            ("apply host: ", "Namespaces:"),
            (
                "hooks host: ",
                "pre-install ServiceAccount traefik/traefik-hooks (weight -10",
            ),
            (
                "hooks host: ",
                "pre-install Job traefik/traefik-pre-b (weight -5",
            ),
            (
                "hooks host: ",
                "pre-install Job traefik/traefik-pre-b (weight -5, component traefik) succeeded",
            ),
            (
                "hooks host: ",
                "pre-install Job traefik/traefik-pre-a (weight 5",
            ),
            (
                "hooks host: ",
                "pre-install Job traefik/traefik-pre-a (weight 5, component traefik) succeeded",
            ),
            ("apply host: ", "namespaced objects:"),
            ("wait host: ", "workloads ready"),
            (
                "hooks host: ",
                "post-install Job traefik/traefik-post (weight 0, component traefik) created",
            ),
            (
                "hooks host: ",
                "post-install Job traefik/traefik-post (weight 0, component traefik) succeeded",
            ),
        ],
    );
    // neither the test hook nor the delete hooks ran
    for l in &lines {
        assert!(
            !l.contains("traefik-test") && !l.contains("-delete "),
            "a hook that must not run at register did: {l}"
        );
    }
    // the API server saw the Jobs created in that order, and the
    // hook-succeeded Job deleted
    let ev = events_at_least(&seen, 4).await;
    assert_eq!(
        ev,
        [
            "added traefik-pre-b",
            "added traefik-pre-a",
            "added traefik-post",
            "deleted traefik-post"
        ],
        "Job events"
    );
    // what is left: the pre-install Jobs (default policy before-hook-creation),
    // complete, members of the ApplySet; the Deployment created after they
    // completed (timestamps have one-second resolution, so "not before")
    let pre_a = job(&hc, "traefik-pre-a").await.expect("Job traefik-pre-a");
    let pre_b = job(&hc, "traefik-pre-b").await.expect("Job traefik-pre-b");
    for j in [&pre_a, &pre_b] {
        let labels = j.metadata.labels.clone().unwrap_or_default();
        assert!(
            labels.contains_key("applyset.kubernetes.io/part-of"),
            "{:?}",
            j.metadata
        );
        assert!(
            j.status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|cs| cs
                    .iter()
                    .any(|c| c.type_ == "Complete" && c.status == "True")),
            "{:?}",
            j.status
        );
    }
    let deploy = Api::<Deployment>::namespaced(hc.clone(), "traefik")
        .get("traefik")
        .await
        .expect("Deployment traefik");
    let created = deploy
        .metadata
        .creation_timestamp
        .clone()
        .expect("created")
        .0;
    let completed = pre_a
        .status
        .as_ref()
        .and_then(|s| s.completion_time.clone())
        .expect("completionTime")
        .0;
    assert!(
        completed <= created,
        "Deployment created at {created:?}, before traefik-pre-a completed at {completed:?}"
    );
    assert!(job(&hc, "traefik-post").await.is_none(), "hook-succeeded");
    for n in ["traefik-pre-delete", "traefik-post-delete"] {
        assert!(job(&hc, n).await.is_none(), "{n} ran at register");
    }
    assert!(
        Api::<Pod>::namespaced(hc.clone(), "traefik")
            .get_opt("traefik-test")
            .await
            .expect("get Pod")
            .is_none(),
        "the test hook was applied"
    );
    let c = &json_out(&first.stdout)["changes"];
    assert!(c["created"].as_u64().unwrap_or(0) > 0, "{c}");

    // 2. nothing changed: no hook runs, everything is unchanged, nothing
    // is written (the Jobs are the same objects)
    // the hooks' record in the ApplySet parent: its text, and when its
    // field manager last wrote it (a server-side apply that changes nothing
    // leaves that time alone). The inventory's own record (applied.json)
    // is not looked at: it follows resourceVersions that controllers bump.
    let record = |cms: Vec<ConfigMap>| -> Vec<(String, String)> {
        cms.into_iter()
            .filter(|c| {
                c.metadata
                    .name
                    .as_deref()
                    .is_some_and(|n| n.starts_with(&format!("nautes-applyset-{name}-")))
            })
            .map(|c| {
                let written = c
                    .metadata
                    .managed_fields
                    .clone()
                    .unwrap_or_default()
                    .into_iter()
                    .filter(|m| {
                        m.manager
                            .as_deref()
                            .is_some_and(|m| m.ends_with("-hooks-hooks"))
                    })
                    .map(|m| format!("{:?}", m.time))
                    .collect::<Vec<_>>()
                    .join(",");
                let text = c
                    .data
                    .unwrap_or_default()
                    .get("hooks.json")
                    .cloned()
                    .unwrap_or_default();
                (written, text)
            })
            .collect()
    };
    let cms = Api::<ConfigMap>::namespaced(hc.clone(), "kube-system");
    let before = record(cms.list(&ListParams::default()).await.expect("list").items);
    assert_eq!(before.len(), 1, "one ApplySet parent");
    assert!(
        !before[0].0.is_empty() && before[0].1.contains("traefik-pre-delete"),
        "the hooks' record: {before:?}"
    );
    let again = register(sp);
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
    let lines = progress(&again.stderr);
    at(
        &lines,
        "hooks host: ",
        "not run: nothing of its release changed",
    );
    assert!(
        !lines.iter().any(|l| l.starts_with("hooks host: ")
            && (l.ends_with(" created") || l.ends_with(" succeeded"))),
        "a hook ran again: {lines:#?}"
    );
    // (a Job the second register made would show here within this
    // grace; the progress and the uid below say the same without one)
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(events(&seen).len(), 4, "Job events: {:?}", events(&seen));
    assert_eq!(
        uid(&job(&hc, "traefik-pre-a").await),
        uid(&Some(pre_a.clone()))
    );
    let after = record(cms.list(&ListParams::default()).await.expect("list").items);
    assert_eq!(before, after, "the hooks' record was written again");
    // a preview leaves the hooks out, says so, and runs none
    let d = nautes(
        &["diff", "-f", sp, "--charts-dir", cd, "--progress", "json"],
        Some(&mgmt_kc),
        None,
    );
    assert_eq!(d.code, 0, "{}", d.stderr);
    at(
        &progress(&d.stderr),
        "hooks host: ",
        "6 Helm hook object(s) left out of the preview",
    );
    assert_eq!(events(&seen).len(), 4, "Job events: {:?}", events(&seen));

    // 3. the release changed (a value of the chart): the upgrade hooks run,
    // the Jobs left by the last run are replaced (before-hook-creation)
    let (_d2, changed_path) = write_temp(
        "h2.json",
        &physical_spec(
            name,
            "host",
            &host,
            json!({"components_list": {"gateway": {"additions": {"hooks.revision": "2"}}}}),
        ),
    );
    let upgrade = register(changed_path.to_str().expect("utf8"));
    upgrade.ok();
    let lines = progress(&upgrade.stderr);
    ordered(
        &lines,
        &[
            (
                "hooks host: ",
                "pre-upgrade Job traefik/traefik-pre-b (weight -5",
            ),
            (
                "hooks host: ",
                "pre-upgrade Job traefik/traefik-pre-a (weight 5",
            ),
            ("apply host: ", "namespaced objects:"),
            ("hooks host: ", "post-upgrade Job traefik/traefik-post"),
        ],
    );
    assert_eq!(
        events_at_least(&seen, 10).await[4..],
        [
            "deleted traefik-pre-b",
            "added traefik-pre-b",
            "deleted traefik-pre-a",
            "added traefik-pre-a",
            "added traefik-post",
            "deleted traefik-post"
        ],
        "Job events"
    );
    let new_a = job(&hc, "traefik-pre-a").await;
    assert!(
        !uid(&new_a).is_empty() && uid(&new_a) != uid(&Some(pre_a)),
        "traefik-pre-a was not run again"
    );

    // 4. a dry run of destroy names the delete hooks and runs none
    let n = events(&seen).len();
    let dry = nautes(
        &["destroy", name, "--dry-run=server", "--progress", "json"],
        Some(&mgmt_kc),
        None,
    );
    dry.ok();
    let lines = progress(&dry.stderr);
    at(
        &lines,
        "destroy ",
        "dry run: would run pre-delete hook(s): Job traefik/traefik-pre-delete",
    );
    at(
        &lines,
        "destroy ",
        "dry run: would run post-delete hook(s): Job traefik/traefik-post-delete",
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(events(&seen).len(), n, "Job events: {:?}", events(&seen));

    // 5. destroy: pre-delete before anything is deleted, post-delete after
    // everything but the namespace, then the namespace; nothing left
    let destroy = nautes(
        &["destroy", name, "--progress", "json", "-v"],
        Some(&mgmt_kc),
        None,
    );
    destroy.ok();
    let lines = progress(&destroy.stderr);
    ordered(
        &lines,
        &[
            (
                "destroy ",
                "pre-delete Job traefik/traefik-pre-delete (weight 0, component traefik) succeeded",
            ),
            ("destroy: ", "Deployment traefik/traefik deleted"),
            (
                "destroy ",
                "post-delete Job traefik/traefik-post-delete (weight 0, component traefik) created",
            ),
            (
                "destroy ",
                "post-delete Job traefik/traefik-post-delete (weight 0, component traefik) succeeded",
            ),
            ("destroy: ", "Namespace traefik deleted"),
        ],
    );
    // pre-delete added and deleted, pre-a and pre-b deleted, post-delete
    // added and deleted
    let ev = events_at_least(&seen, n + 6).await[n..].to_vec();
    let pos = |e: &str| {
        ev.iter()
            .position(|x| x == e)
            .unwrap_or_else(|| panic!("no Job event {e:?} in {ev:?}"))
    };
    assert!(pos("added traefik-pre-delete") < pos("deleted traefik-pre-delete"));
    assert!(pos("deleted traefik-pre-delete") < pos("deleted traefik-pre-a"));
    assert!(pos("deleted traefik-pre-a") < pos("added traefik-post-delete"));
    assert!(pos("added traefik-post-delete") < pos("deleted traefik-post-delete"));
    wait_nothing_left(&hc, name, "the host").await;
    wait_nothing_left(&mgmt, name, "the management cluster").await;
    assert!(!namespace_exists(&hc, "traefik").await);
}

/// A copy of tests/charts-hooks/traefik with one line of its hooks
/// replaced, and `render` of a host with it.
fn render_with(from: &str, to: &str) -> Run {
    let dir = tempfile::tempdir().expect("dir");
    let chart = dir.path().join("traefik");
    let status = std::process::Command::new("cp")
        .arg("-r")
        .arg(repo().join("tests/charts-hooks/traefik"))
        .arg(&chart)
        .status()
        .expect("cp");
    assert!(status.success());
    let hooks = chart.join("templates/hooks.yaml");
    let text = std::fs::read_to_string(&hooks).expect("read");
    assert!(text.contains(from), "no {from:?} in {}", hooks.display());
    std::fs::write(&hooks, text.replacen(from, to, 1)).expect("write");
    let spec = repo().join("examples/cluster-host.yaml");
    nautes(
        &[
            "render",
            "-f",
            spec.to_str().expect("utf8"),
            "--charts-dir",
            dir.path().to_str().expect("utf8"),
        ],
        None,
        None,
    )
}

/// Bad hook annotations stop render (and register, which renders the same
/// way) before anything, naming the chart, the object (where helm lets the
/// plugin see it) and the annotation. No cluster is needed.
#[test]
fn bad_hook_annotations_are_named_with_their_chart_object_and_annotation() {
    let r = render_with(
        "helm.sh/hook-weight: \"-10\"",
        "helm.sh/hook-weight: \"ten\"",
    );
    assert_eq!(r.code, 2, "{}", r.stderr);
    let e = error_block(&r.stderr);
    assert!(
        e.contains(
            "chart traefik 41.3.0 (component traefik), ServiceAccount traefik/traefik-hooks: annotation helm.sh/hook-weight: \"ten\" is not an integer"
        ),
        "{e}"
    );
    assert!(r.stdout.is_empty(), "{}", r.stdout);

    let r = render_with(
        "helm.sh/hook-delete-policy: {{ . | quote }}",
        "helm.sh/hook-delete-policy: {{ printf \"%s,on-tuesdays\" . | quote }}",
    );
    assert_eq!(r.code, 2, "{}", r.stderr);
    let e = error_block(&r.stderr);
    assert!(
        e.contains(
            "chart traefik 41.3.0 (component traefik), Job traefik/traefik-post: annotation helm.sh/hook-delete-policy: unknown delete policy \"on-tuesdays\""
        ),
        "{e}"
    );

    // helm template itself leaves out an object naming an unknown hook,
    // with a log line that names only the value: that is an error too
    let r = render_with(
        "helm.sh/hook: test\n",
        "helm.sh/hook: post-install,post-instal\n",
    );
    assert_eq!(r.code, 2, "{}", r.stderr);
    let e = error_block(&r.stderr);
    assert!(
        e.contains("chart traefik 41.3.0 (component traefik): annotation helm.sh/hook of an object names a hook that is not one of")
            && e.contains("post-instal"),
        "{e}"
    );
}

/// A pre-install hook that really fails (its ServiceAccount does not exist,
/// so the Job controller marks it Failed once its activeDeadlineSeconds
/// passed; no kwok involved): register stops naming it (exit 6), the
/// release's other objects are never applied, the hook-failed policy
/// deletes it, and destroy still leaves nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_pre_install_hook_stops_register_before_the_release_and_is_deleted_by_hook_failed()
 {
    let bed = TestBed::start(&["management", "host"]);
    let (mgmt_kc, host) = (
        bed.cluster("management").kubeconfig.clone(),
        bed.cluster("host").clone(),
    );
    let hc = client(&host.kubeconfig).await;
    let mgmt = client(&mgmt_kc).await;
    let charts = charts_with("charts-hooks", "traefik");
    let cd = charts.path().to_str().expect("utf8");
    let name = "hooks-fail";
    let (_d, spec_path) = write_temp(
        "f.json",
        &physical_spec(
            name,
            "host",
            &host,
            json!({"components_list": {"gateway": {"additions": {"hooks.fail": "true"}}}}),
        ),
    );
    let sp = spec_path.to_str().expect("utf8");
    let seen = watch_jobs(hc.clone(), name).await;
    let r = nautes(
        &[
            "register",
            "-f",
            sp,
            "--charts-dir",
            cd,
            "--progress",
            "json",
        ],
        Some(&mgmt_kc),
        None,
    );
    assert_eq!(r.code, 6, "{}", r.stderr);
    let e = error_block(&r.stderr);
    assert!(
        e.contains(
            "hook pre-install Job traefik/traefik-pre-fails (weight 10, component traefik) failed: job failed:"
        ),
        "{e}"
    );
    // the hooks before it ran, it was deleted (hook-failed), and nothing of
    // the release after the hooks was applied
    let ev = events_at_least(&seen, 4).await;
    assert_eq!(
        ev,
        [
            "added traefik-pre-b",
            "added traefik-pre-a",
            "added traefik-pre-fails",
            "deleted traefik-pre-fails"
        ],
        "Job events"
    );
    assert!(
        Api::<Deployment>::namespaced(hc.clone(), "traefik")
            .get_opt("traefik")
            .await
            .expect("get")
            .is_none(),
        "the release's Deployment was applied after a failed pre-install hook"
    );
    let lines = progress(&r.stderr);
    assert!(
        !lines.iter().any(|l| l.contains("namespaced objects:")),
        "{lines:#?}"
    );

    nautes(&["destroy", name], Some(&mgmt_kc), None).ok();
    wait_nothing_left(&hc, name, "the host").await;
    wait_nothing_left(&mgmt, name, "the management cluster").await;
}

/// A hook that never finishes (its ServiceAccount does not exist, so its
/// Job never gets a Pod) stops register at --timeout, naming the hook and
/// the Job's last Event; destroy removes it with the rest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hook_that_never_finishes_stops_register_at_timeout_naming_why() {
    let bed = TestBed::start(&["management", "host"]);
    let (mgmt_kc, host) = (
        bed.cluster("management").kubeconfig.clone(),
        bed.cluster("host").clone(),
    );
    let hc = client(&host.kubeconfig).await;
    let mgmt = client(&mgmt_kc).await;
    let charts = charts_with("charts-hooks", "traefik");
    let cd = charts.path().to_str().expect("utf8");
    let name = "hooks-hang";
    let (_d, spec_path) = write_temp(
        "g.json",
        &physical_spec(
            name,
            "host",
            &host,
            json!({"components_list": {"gateway": {"additions": {"hooks.hang": "true"}}}}),
        ),
    );
    let sp = spec_path.to_str().expect("utf8");
    let r = nautes(
        &["register", "-f", sp, "--charts-dir", cd, "--timeout", "45s"],
        Some(&mgmt_kc),
        None,
    );
    assert_eq!(r.code, 6, "{}", r.stderr);
    let e = error_block(&r.stderr);
    assert!(
        e.contains(
            "hook pre-install Job traefik/traefik-pre-hangs (weight 10, component traefik) did not finish within 45s"
        ) && e.contains("its last event:")
            && e.contains("traefik-no-such-account"),
        "{e}"
    );
    assert!(
        Api::<Deployment>::namespaced(hc.clone(), "traefik")
            .get_opt("traefik")
            .await
            .expect("get")
            .is_none(),
        "the release's Deployment was applied before its pre-install hooks finished"
    );
    nautes(&["destroy", name], Some(&mgmt_kc), None).ok();
    wait_nothing_left(&hc, name, "the host").await;
    wait_nothing_left(&mgmt, name, "the management cluster").await;
}
