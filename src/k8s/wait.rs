//! Waiting for readiness: Deployments, StatefulSets, DaemonSets, Jobs, CRDs
//! and APIServices. On timeout, each object still not ready is named with the
//! reason read from the cluster (for a workload, its Pods' state).

use std::time::Duration;

use kube::api::ListParams;
use serde_json::Value;

use super::{Cluster, Kind, Kinds, describe, retry};
use crate::error::{Error, Result};
use crate::kinds::{self, Judge};

/// An object whose readiness is judged.
#[derive(Debug, Clone)]
pub struct Watched {
    pub group_kind: String,
    pub kind: Kind,
    pub namespace: Option<String>,
    pub name: String,
    pub component: String,
}

impl Watched {
    pub fn describe(&self) -> String {
        describe(
            kinds::kind_of(&self.group_kind),
            self.namespace.as_deref(),
            &self.name,
        )
    }
}

/// Whether readiness is judged for a group-kind (the table in `kinds`).
pub fn judged(group_kind: &str) -> bool {
    kinds::judge(group_kind).is_some()
}

/// The readiness of one object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Readiness {
    Ready,
    NotReady(String),
    /// Will never become ready (a failed Job).
    Failed(String),
}

fn int(v: &Value) -> i64 {
    v.as_i64().unwrap_or(0)
}

fn condition<'a>(o: &'a Value, t: &str) -> Option<&'a Value> {
    o["status"]["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == t))
}

/// Judges an object as read from the cluster, None when it is gone: the
/// one rule the readiness wait and `status` share (pure; unit-tested).
pub fn readiness_of(group_kind: &str, o: Option<&Value>) -> Readiness {
    match (kinds::judge(group_kind), o) {
        (None, _) => Readiness::Ready,
        // a finished Job with ttlSecondsAfterFinished (Argo CD's
        // redis-secret-init) is deleted by the TTL controller
        (Some(Judge::Job), None) => Readiness::Ready,
        (Some(_), None) => Readiness::NotReady("not found".into()),
        (Some(judge), Some(o)) => readiness(judge, o),
    }
}

/// The readiness of one object, read from the cluster now.
pub async fn readiness_now(
    cluster: &Cluster,
    group_kind: &str,
    kind: &Kind,
    namespace: Option<&str>,
    name: &str,
) -> Result<Readiness> {
    let api = super::api(&cluster.client, kind, namespace);
    let got = retry(|| api.get_opt(name))
        .await
        .map_err(|e| cluster.err(e))?;
    let value = got.map(|o| serde_json::to_value(o).unwrap_or(Value::Null));
    Ok(readiness_of(group_kind, value.as_ref()))
}

/// Judges an object from its JSON.
fn readiness(judge: Judge, o: &Value) -> Readiness {
    let s = &o["status"];
    let generation = int(&o["metadata"]["generation"]);
    let observed = int(&s["observedGeneration"]);
    if matches!(
        judge,
        Judge::Deployment | Judge::StatefulSet | Judge::DaemonSet
    ) && observed < generation
    {
        return Readiness::NotReady("the controller has not observed the latest spec yet".into());
    }
    match judge {
        Judge::Deployment => {
            let want = o["spec"]["replicas"].as_i64().unwrap_or(1);
            let updated = int(&s["updatedReplicas"]);
            let available = int(&s["availableReplicas"]);
            let total = int(&s["replicas"]);
            if let Some(c) = condition(o, "Progressing")
                && c["reason"] == "ProgressDeadlineExceeded"
            {
                return Readiness::NotReady(format!(
                    "rollout stuck: {}",
                    c["message"]
                        .as_str()
                        .unwrap_or("progress deadline exceeded")
                ));
            }
            if updated >= want && available >= want && total <= updated {
                Readiness::Ready
            } else {
                Readiness::NotReady(format!(
                    "{available}/{want} replicas available, {updated} updated"
                ))
            }
        }
        Judge::StatefulSet => {
            let want = o["spec"]["replicas"].as_i64().unwrap_or(1);
            let ready = int(&s["readyReplicas"]);
            let updated = int(&s["updatedReplicas"]);
            if ready >= want && (updated >= want || s["updateRevision"] == s["currentRevision"]) {
                Readiness::Ready
            } else {
                Readiness::NotReady(format!("{ready}/{want} replicas ready"))
            }
        }
        Judge::DaemonSet => {
            let want = int(&s["desiredNumberScheduled"]);
            let ready = int(&s["numberReady"]);
            let updated = int(&s["updatedNumberScheduled"]);
            if ready >= want && updated >= want {
                Readiness::Ready
            } else {
                Readiness::NotReady(format!("{ready}/{want} pods ready"))
            }
        }
        Judge::Job => {
            if condition(o, "Complete").is_some_and(|c| c["status"] == "True") {
                Readiness::Ready
            } else if let Some(c) = condition(o, "Failed").filter(|c| c["status"] == "True") {
                Readiness::Failed(format!(
                    "job failed: {}",
                    c["message"]
                        .as_str()
                        .or(c["reason"].as_str())
                        .unwrap_or("unknown reason")
                ))
            } else {
                Readiness::NotReady(format!(
                    "{} succeeded, {} active, {} failed",
                    int(&s["succeeded"]),
                    int(&s["active"]),
                    int(&s["failed"])
                ))
            }
        }
        Judge::Crd => {
            if condition(o, "Established").is_some_and(|c| c["status"] == "True") {
                Readiness::Ready
            } else {
                Readiness::NotReady("not Established".into())
            }
        }
        Judge::ApiService => match condition(o, "Available") {
            Some(c) if c["status"] == "True" => Readiness::Ready,
            Some(c) => Readiness::NotReady(format!(
                "not Available: {}",
                c["message"].as_str().or(c["reason"].as_str()).unwrap_or("")
            )),
            None => Readiness::NotReady("not Available".into()),
        },
    }
}

/// Why the Pods of a workload are not ready: the first waiting reason found.
async fn pod_reason(
    cluster: &Cluster,
    kinds: &Kinds,
    namespace: &str,
    o: &Value,
) -> Option<String> {
    let labels = o["spec"]["selector"]["matchLabels"].as_object()?;
    let selector: Vec<String> = labels
        .iter()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
        .collect();
    let pods = kinds.resolve("v1", "Pod")?;
    let api = super::api(&cluster.client, &pods, Some(namespace));
    let list = api
        .list(&ListParams::default().labels(&selector.join(",")))
        .await
        .ok()?;
    if list.items.is_empty() {
        return Some("no Pods were created (check the ReplicaSet or quota)".into());
    }
    for p in &list.items {
        let name = p.metadata.name.clone().unwrap_or_default();
        let status = &p.data["status"];
        if let Some(cs) = status["containerStatuses"].as_array() {
            for c in cs {
                if let Some(w) = c["state"]["waiting"].as_object() {
                    let reason = w.get("reason").and_then(Value::as_str).unwrap_or("Waiting");
                    let msg = w.get("message").and_then(Value::as_str).unwrap_or("");
                    return Some(
                        format!(
                            "Pod {name}: container {} {reason} {msg}",
                            c["name"].as_str().unwrap_or("?")
                        )
                        .trim()
                        .to_string(),
                    );
                }
            }
        }
        if let Some(c) = status["conditions"].as_array().and_then(|cs| {
            cs.iter()
                .find(|c| c["type"] == "PodScheduled" && c["status"] == "False")
        }) {
            return Some(format!(
                "Pod {name}: not scheduled: {}",
                c["message"].as_str().unwrap_or("")
            ));
        }
        if status["phase"] != "Running" && status["phase"] != "Succeeded" {
            return Some(format!(
                "Pod {name}: {}",
                status["phase"].as_str().unwrap_or("Pending")
            ));
        }
    }
    None
}

/// Waits until every object is ready, polling; `on_ready` is called as each
/// one becomes ready. On timeout, the error names each object still not
/// ready and why.
pub async fn wait_ready(
    cluster: &Cluster,
    kinds: &Kinds,
    objects: Vec<Watched>,
    timeout: Duration,
    on_ready: &(dyn Fn(&Watched) + Sync),
) -> Result<()> {
    let deadline = crate::cli::deadline(timeout);
    let mut pending = objects;
    let mut delay = Duration::from_millis(100);
    loop {
        let checks = futures::future::join_all(pending.iter().map(|w| async move {
            let api = super::api(&cluster.client, &w.kind, w.namespace.as_deref());
            let got = retry(|| api.get_opt(&w.name))
                .await
                .map_err(|e| cluster.err(e))?;
            let value = got
                .as_ref()
                .map(|o| serde_json::to_value(o).unwrap_or(Value::Null));
            let state = readiness_of(&w.group_kind, value.as_ref());
            Ok::<_, Error>((state, got))
        }))
        .await;
        let mut still = Vec::new();
        let mut reasons = Vec::new();
        for (w, r) in pending.into_iter().zip(checks) {
            let (state, got) = r?;
            match state {
                Readiness::Ready => on_ready(&w),
                Readiness::Failed(why) => {
                    return Err(Error::timeout(format!(
                        "{}: {} (component {}) failed: {why}",
                        cluster.label,
                        w.describe(),
                        w.component
                    )));
                }
                Readiness::NotReady(why) => {
                    reasons.push((w.clone(), why, got));
                    still.push(w);
                }
            }
        }
        if still.is_empty() {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            let mut lines = Vec::new();
            for (w, why, got) in reasons {
                let mut line = format!("{} (component {}): {why}", w.describe(), w.component);
                if let (Some(ns), Some(o)) = (&w.namespace, got)
                    && let Ok(v) = serde_json::to_value(&o)
                    && let Some(p) = pod_reason(cluster, kinds, ns, &v).await
                {
                    line.push_str(&format!("; {p}"));
                }
                lines.push(line);
            }
            return Err(Error::timeout(format!(
                "{}: {} object(s) not ready after {}s:\n  {}",
                cluster.label,
                lines.len(),
                timeout.as_secs(),
                lines.join("\n  ")
            )));
        }
        pending = still;
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(2));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn deployment_is_ready_only_when_all_replicas_are_updated_and_available() {
        let mut d = json!({"metadata": {"generation": 2}, "spec": {"replicas": 2},
            "status": {"observedGeneration": 2, "replicas": 2, "updatedReplicas": 2, "availableReplicas": 2}});
        assert_eq!(readiness_of("Deployment.apps", Some(&d)), Readiness::Ready);
        d["status"]["availableReplicas"] = json!(1);
        assert!(matches!(
            readiness_of("Deployment.apps", Some(&d)),
            Readiness::NotReady(_)
        ));
        d["status"]["availableReplicas"] = json!(2);
        d["status"]["observedGeneration"] = json!(1);
        assert!(matches!(
            readiness_of("Deployment.apps", Some(&d)),
            Readiness::NotReady(_)
        ));
    }

    #[test]
    fn failed_job_is_failed_and_complete_job_is_ready() {
        let done = json!({"status": {"conditions": [{"type": "Complete", "status": "True"}]}});
        assert_eq!(readiness_of("Job.batch", Some(&done)), Readiness::Ready);
        let failed = json!({"status": {"conditions": [{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded"}]}});
        assert!(matches!(
            readiness_of("Job.batch", Some(&failed)),
            Readiness::Failed(_)
        ));
    }

    #[test]
    fn crd_needs_established() {
        let crd = json!({"status": {"conditions": [{"type": "NamesAccepted", "status": "True"}]}});
        assert!(matches!(
            readiness_of("CustomResourceDefinition.apiextensions.k8s.io", Some(&crd)),
            Readiness::NotReady(_)
        ));
    }
}
