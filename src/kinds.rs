//! The one table of kinds the plugin treats specially, and the names it
//! uses for them. Apply (phases), wait (readiness), delete (order, what goes
//! with its namespace) and status all read it; nothing else lists kinds.
//!
//! Kinds are named as ApplySets name them: "Deployment.apps", or
//! "Namespace" for the core group.

use serde_json::Value;

/// How the plugin treats a kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// CustomResourceDefinitions: applied first, waited for until
    /// Established, deleted after the custom resources' workloads.
    Crd,
    /// Namespaces: applied before what lives in them, deleted last.
    Namespace,
    /// Webhook configurations, admission policies and APIServices: applied
    /// once what serves them is ready, deleted first, so nothing they guard
    /// is blocked.
    Admission,
    /// Objects that run Pods: their readiness is judged, and they are deleted
    /// one by one (their Pods go in parallel with the rest).
    Workload,
    /// Everything else (ConfigMaps, Secrets, RBAC, Services, ...): passive; in
    /// a namespace that is deleted too, it goes with its namespace.
    Passive,
}

/// How readiness is judged for a kind (see `k8s::wait::readiness`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Judge {
    Deployment,
    StatefulSet,
    DaemonSet,
    /// Complete; a Job that is gone counts as complete (a finished Job with
    /// ttlSecondsAfterFinished is deleted by the TTL controller).
    Job,
    /// Established.
    Crd,
    /// Available.
    ApiService,
}

/// One row of the table.
#[derive(Debug, Clone, Copy)]
pub struct Rule {
    pub group_kind: &'static str,
    pub role: Role,
    /// Whether and how readiness is judged; None: ready once applied.
    pub judge: Option<Judge>,
}

const fn rule(group_kind: &'static str, role: Role, judge: Option<Judge>) -> Rule {
    Rule {
        group_kind,
        role,
        judge,
    }
}

pub const CRD: &str = "CustomResourceDefinition.apiextensions.k8s.io";
pub const NAMESPACE: &str = "Namespace";

/// The table. A kind not in it is passive and ready once applied.
pub const TABLE: &[Rule] = &[
    rule(CRD, Role::Crd, Some(Judge::Crd)),
    rule(NAMESPACE, Role::Namespace, None),
    rule(
        "ValidatingWebhookConfiguration.admissionregistration.k8s.io",
        Role::Admission,
        None,
    ),
    rule(
        "MutatingWebhookConfiguration.admissionregistration.k8s.io",
        Role::Admission,
        None,
    ),
    rule(
        "ValidatingAdmissionPolicy.admissionregistration.k8s.io",
        Role::Admission,
        None,
    ),
    rule(
        "ValidatingAdmissionPolicyBinding.admissionregistration.k8s.io",
        Role::Admission,
        None,
    ),
    rule(
        "APIService.apiregistration.k8s.io",
        Role::Admission,
        Some(Judge::ApiService),
    ),
    rule("Deployment.apps", Role::Workload, Some(Judge::Deployment)),
    rule("StatefulSet.apps", Role::Workload, Some(Judge::StatefulSet)),
    rule("DaemonSet.apps", Role::Workload, Some(Judge::DaemonSet)),
    rule("ReplicaSet.apps", Role::Workload, None),
    rule("Job.batch", Role::Workload, Some(Judge::Job)),
    rule("CronJob.batch", Role::Workload, None),
    rule("Pod", Role::Workload, None),
];

/// The rule of a group-kind.
pub fn of(group_kind: &str) -> Rule {
    TABLE
        .iter()
        .find(|r| r.group_kind == group_kind)
        .copied()
        .unwrap_or(Rule {
            group_kind: "",
            role: Role::Passive,
            judge: None,
        })
}

/// The role of a group-kind.
pub fn role(group_kind: &str) -> Role {
    of(group_kind).role
}

/// How readiness of a group-kind is judged, if it is.
pub fn judge(group_kind: &str) -> Option<Judge> {
    of(group_kind).judge
}

/// ("apps", "v1") from "apps/v1"; ("", "v1") from "v1".
pub fn split_api_version(api_version: &str) -> (&str, &str) {
    api_version.split_once('/').unwrap_or(("", api_version))
}

/// "Deployment.apps", or "Namespace" for the core group.
pub fn group_kind(api_version: &str, kind: &str) -> String {
    match split_api_version(api_version) {
        ("", _) => kind.to_string(),
        (g, _) => format!("{kind}.{g}"),
    }
}

/// Splits "Deployment.apps" into ("apps", "Deployment").
pub fn split_group_kind(gk: &str) -> (String, String) {
    match gk.split_once('.') {
        Some((k, g)) => (g.to_string(), k.to_string()),
        None => (String::new(), gk.to_string()),
    }
}

/// The kind of "Deployment.apps": "Deployment".
pub fn kind_of(gk: &str) -> &str {
    gk.split('.').next().unwrap_or(gk)
}

/// What a CustomResourceDefinition object defines: (group, kind, namespaced).
pub fn crd_defines(crd: &Value) -> (String, String, bool) {
    let spec = &crd["spec"];
    (
        spec["group"].as_str().unwrap_or_default().to_string(),
        spec["names"]["kind"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        spec["scope"] != "Cluster",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_kinds_are_named_as_applysets_name_them() {
        assert_eq!(group_kind("apps/v1", "Deployment"), "Deployment.apps");
        assert_eq!(group_kind("v1", "Namespace"), "Namespace");
        assert_eq!(
            split_group_kind("Deployment.apps"),
            ("apps".into(), "Deployment".into())
        );
        assert_eq!(split_group_kind("Pod"), (String::new(), "Pod".into()));
        assert_eq!(split_api_version("v1"), ("", "v1"));
        assert_eq!(kind_of(CRD), "CustomResourceDefinition");
    }

    #[test]
    fn the_table_is_read_for_roles_and_judges() {
        assert_eq!(role(CRD), Role::Crd);
        assert_eq!(role("APIService.apiregistration.k8s.io"), Role::Admission);
        assert_eq!(role("ConfigMap"), Role::Passive);
        assert_eq!(role("Job.batch"), Role::Workload);
        assert_eq!(judge("Job.batch"), Some(Judge::Job));
        assert_eq!(judge("ReplicaSet.apps"), None);
        assert_eq!(judge("Service"), None);
        // every row is unique
        for (i, r) in TABLE.iter().enumerate() {
            assert!(TABLE[i + 1..].iter().all(|o| o.group_kind != r.group_kind));
        }
    }

    #[test]
    fn crds_say_what_they_define() {
        let crd = serde_json::json!({"spec": {"group": "argoproj.io", "scope": "Namespaced",
            "names": {"kind": "Rollout"}}});
        assert_eq!(
            crd_defines(&crd),
            ("argoproj.io".into(), "Rollout".into(), true)
        );
    }
}
