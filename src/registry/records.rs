//! Registration records: ConfigMap `<registry namespace>/cluster-<name>`
//! holding the spec without secrets, the kind, the state and timestamps.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{HOST_LABEL, Registry, USAGE_LABEL, is_ours, record_name};
use crate::error::{Error, Result};
use crate::k8s::apply::FIELD_MANAGER;
use crate::k8s::retry;
use crate::render::{CLUSTER_LABEL, MANAGED_BY, MANAGER};
use crate::spec::{ClusterSpec, Usage};

/// Where a registration stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum State {
    Registering,
    Registered,
    Destroying,
}

impl std::fmt::Display for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            State::Registering => "Registering",
            State::Registered => "Registered",
            State::Destroying => "Destroying",
        })
    }
}

/// A registration record: the spec without secrets, kind, state, times.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Record {
    pub name: String,
    pub kind: String,
    pub state: State,
    pub spec: ClusterSpec,
    pub registered_at: String,
    pub updated_at: String,
    pub plugin_version: String,
    /// Components installed, "name chart@version".
    #[serde(default)]
    pub components: Vec<String>,
    /// The last register or destroy of this cluster that failed, kept until
    /// one succeeds: every replica of the HTTP API, and `status`, read it
    /// from here (not only the process that ran it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_failure: Option<Failure>,
}

/// A failed run, as the record keeps it. The message is the one the command
/// printed: it never holds a secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Failure {
    /// "register" or "destroy".
    pub operation: String,
    pub at: String,
    /// The exit code the command line gave.
    pub exit_code: u8,
    pub message: String,
}

impl Record {
    /// The state shown to users: a run left Registering or Destroying by a
    /// failure (not a run still going, or one killed) is "Failed".
    pub fn shown_state(&self) -> String {
        match (&self.state, &self.last_failure) {
            (State::Registering | State::Destroying, Some(_)) => "Failed".into(),
            (s, _) => s.to_string(),
        }
    }

    /// Whether the registered cluster is a host.
    pub fn usage_is_host(&self) -> bool {
        self.spec.usage == Usage::Host
    }
}

/// "physical worker", "host", "virtual worker".
pub fn kind_of(spec: &ClusterSpec) -> String {
    match (spec.cluster_type, spec.usage) {
        (_, Usage::Host) => "host".into(),
        (crate::spec::ClusterType::Physical, Usage::Worker) => "physical worker".into(),
        (crate::spec::ClusterType::Virtual, Usage::Worker) => "virtual worker".into(),
    }
}

pub fn now() -> String {
    Timestamp::now().to_string()
}

pub(super) fn usage_str(u: Usage) -> &'static str {
    match u {
        Usage::Host => "host",
        Usage::Worker => "worker",
    }
}

impl Registry {
    /// Keeps a failed run in the cluster's record, if the record exists:
    /// best effort (the failure may be that the management cluster cannot
    /// be reached), under the run's lock. Returns whether it was saved.
    pub async fn record_failure(&self, name: &str, operation: &str, e: &Error) -> bool {
        let Ok(Some(mut record)) = self.get(name).await else {
            return false;
        };
        record.last_failure = Some(Failure {
            operation: operation.to_string(),
            at: now(),
            exit_code: e.code as u8,
            message: e.message.clone(),
        });
        self.save(&record).await.is_ok()
    }

    fn records(&self) -> Api<ConfigMap> {
        Api::namespaced(self.cluster.client.clone(), &self.namespace)
    }

    /// Reads a record. Err(Refused) when an object of that name exists but
    /// was not made by the plugin.
    pub async fn get(&self, name: &str) -> Result<Option<Record>> {
        let api = self.records();
        let rn = record_name(name);
        let Some(cm) = retry(|| api.get_opt(&rn))
            .await
            .map_err(|e| self.cluster.err(e))?
        else {
            return Ok(None);
        };
        if !is_ours(&cm.metadata) {
            return Err(Error::refused(format!(
                "ConfigMap {}/{rn} exists in the management cluster but was not created by kubectl-nautes; refusing to take it over",
                self.namespace
            )));
        }
        let data = cm.data.unwrap_or_default();
        let text = data.get("record.json").ok_or_else(|| {
            Error::refused(format!(
                "registration record {}/{rn} has no record.json",
                self.namespace
            ))
        })?;
        serde_json::from_str(text).map(Some).map_err(|e| {
            Error::internal(format!(
                "registration record {}/{rn} cannot be read: {e}",
                self.namespace
            ))
        })
    }

    pub async fn list(&self) -> Result<Vec<Record>> {
        let api = self.records();
        let lp = ListParams::default().labels(&format!("{MANAGED_BY}={MANAGER}"));
        let list = match retry(|| api.list(&lp)).await {
            Ok(l) => l,
            Err(kube::Error::Api(s)) if s.code == 404 => return Ok(Vec::new()),
            Err(e) => return Err(self.cluster.err(e)),
        };
        let mut out = Vec::new();
        for cm in list.items {
            if let Some(text) = cm.data.as_ref().and_then(|d| d.get("record.json"))
                && let Ok(r) = serde_json::from_str::<Record>(text)
            {
                out.push(r);
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Writes a record (server-side apply).
    pub async fn save(&self, record: &Record) -> Result<()> {
        let api = self.records();
        let rn = record_name(&record.name);
        let mut labels = BTreeMap::from([
            (MANAGED_BY.to_string(), MANAGER.to_string()),
            (CLUSTER_LABEL.to_string(), record.name.clone()),
            (
                USAGE_LABEL.to_string(),
                usage_str(record.spec.usage).to_string(),
            ),
        ]);
        if let Some(h) = &record.spec.host_cluster {
            labels.insert(HOST_LABEL.to_string(), h.clone());
        }
        let text =
            serde_json::to_string_pretty(record).map_err(|e| Error::internal(e.to_string()))?;
        let obj = json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": rn, "namespace": self.namespace, "labels": labels},
            "data": {"record.json": text, "state": record.state.to_string()},
        });
        let (pp, patch) = (
            PatchParams::apply(FIELD_MANAGER).force(),
            Patch::Apply(&obj),
        );
        retry(|| api.patch(&rn, &pp, &patch)).await.map_err(|e| {
            self.cluster
                .err(e)
                .context(format!("saving record {}/{rn}", self.namespace))
        })?;
        Ok(())
    }

    pub async fn delete(&self, name: &str) -> Result<()> {
        let api = self.records();
        let (rn, dp) = (record_name(name), DeleteParams::default());
        match retry(|| api.delete(&rn, &dp)).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
            Err(e) => Err(self.cluster.err(e)),
        }
    }

    /// The virtual clusters registered on a host.
    pub async fn virtuals_of(&self, host: &str) -> Result<Vec<String>> {
        Ok(self
            .list()
            .await?
            .into_iter()
            .filter(|r| r.spec.host_cluster.as_deref() == Some(host))
            .map(|r| r.name)
            .collect())
    }
}
