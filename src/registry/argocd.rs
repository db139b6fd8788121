//! Argo CD's side of a registration in the management cluster: the cluster
//! Secret `argocd/cluster-<name>` (`argocd.argoproj.io/secret-type: cluster`,
//! keys name, server, config), the format shared with the plugin's own copy,
//! and the Applications that deploy to a cluster.

use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams};
use serde_json::json;

use super::records::usage_str;
use super::{ARGOCD_NAMESPACE, Registry, SECRET_TYPE_LABEL, USAGE_LABEL, is_ours, record_name};
use crate::credential::Credential;
use crate::error::{Error, Result};
use crate::k8s::apply::FIELD_MANAGER;
use crate::k8s::retry;
use crate::render::{CLUSTER_LABEL, MANAGED_BY, MANAGER};
use crate::spec::ClusterSpec;

impl Registry {
    fn argocd(&self) -> Api<Secret> {
        Api::namespaced(self.cluster.client.clone(), ARGOCD_NAMESPACE)
    }

    /// Refuses when an Argo CD cluster Secret of that name exists and is not
    /// ours.
    pub async fn check_argocd_secret(&self, name: &str) -> Result<()> {
        let api = self.argocd();
        let sn = record_name(name);
        match retry(|| api.get_metadata_opt(&sn)).await {
            Ok(Some(s)) if !is_ours(&s.metadata) => Err(Error::refused(format!(
                "Secret {ARGOCD_NAMESPACE}/{sn} exists in the management cluster but was not created by kubectl-nautes; refusing to overwrite it"
            ))),
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
            Err(e) => Err(self.cluster.err(e)),
        }
    }

    /// Writes the Argo CD cluster Secret of a cluster.
    pub async fn save_argocd_secret(&self, spec: &ClusterSpec, cred: &Credential) -> Result<()> {
        let labels = json!({
            SECRET_TYPE_LABEL: "cluster",
            USAGE_LABEL: usage_str(spec.usage),
            MANAGED_BY: MANAGER,
            CLUSTER_LABEL: spec.name,
        });
        self.write_cluster_secret(
            ARGOCD_NAMESPACE,
            &record_name(&spec.name),
            labels,
            spec,
            cred,
        )
        .await
    }

    pub async fn delete_argocd_secret(&self, name: &str) -> Result<()> {
        let api = self.argocd();
        let (rn, dp) = (record_name(name), DeleteParams::default());
        match retry(|| api.delete(&rn, &dp)).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
            Err(e) => Err(self.cluster.err(e)),
        }
    }

    /// Argo CD Applications in the management cluster whose destination is
    /// this cluster (by server URL or name). None when Argo CD's CRD is not
    /// installed there.
    pub async fn applications_targeting(&self, name: &str, server: &str) -> Result<Vec<String>> {
        // fail closed: only a management cluster that does not serve
        // argoproj.io at all has no Applications; a discovery or list that
        // fails (403, timeout) means the check could not be made
        let cannot = |e: Error| {
            e.context(format!(
                "could not check whether Argo CD Applications deploy to cluster {name} (a safety check of destroy; --force skips it)"
            ))
        };
        let discovery = kube::Discovery::new(self.cluster.client.clone())
            .filter(&["argoproj.io"])
            .run()
            .await
            .map_err(|e| cannot(self.cluster.err(e)))?;
        let gvk = kube::api::GroupVersionKind::gvk("argoproj.io", "v1alpha1", "Application");
        let Some((ar, _)) = discovery.resolve_gvk(&gvk) else {
            return Ok(Vec::new());
        };
        let api: Api<kube::api::DynamicObject> = Api::all_with(self.cluster.client.clone(), &ar);
        let lp = ListParams::default();
        let list = retry(|| api.list(&lp))
            .await
            .map_err(|e| cannot(self.cluster.err(e)))?;
        let mut out = Vec::new();
        for a in list.items {
            let d = &a.data["spec"]["destination"];
            let hit = d["server"]
                .as_str()
                .is_some_and(|s| s.trim_end_matches('/') == server)
                || d["name"].as_str() == Some(name);
            if hit {
                out.push(format!(
                    "{}/{}",
                    a.metadata.namespace.unwrap_or_default(),
                    a.metadata.name.unwrap_or_default()
                ));
            }
        }
        out.sort();
        Ok(out)
    }

    pub(super) async fn write_cluster_secret(
        &self,
        namespace: &str,
        name: &str,
        labels: serde_json::Value,
        spec: &ClusterSpec,
        cred: &Credential,
    ) -> Result<()> {
        let api: Api<Secret> = Api::namespaced(self.cluster.client.clone(), namespace);
        let mut tls = json!({"insecure": cred.insecure});
        if let Some(ca) = &cred.ca_data {
            tls["caData"] = json!(ca);
        }
        let config = json!({"bearerToken": cred.token, "tlsClientConfig": tls}).to_string();
        let obj = json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": name, "namespace": namespace, "labels": labels},
            "type": "Opaque",
            "stringData": {"name": spec.name, "server": spec.api_server, "config": config},
        });
        let (pp, patch) = (
            PatchParams::apply(FIELD_MANAGER).force(),
            Patch::Apply(&obj),
        );
        retry(|| api.patch(name, &pp, &patch)).await.map_err(|e| {
            self.cluster
                .err(e)
                .context(format!("saving Secret {namespace}/{name}"))
        })?;
        Ok(())
    }

    pub(super) async fn read_cluster_secret(
        &self,
        namespace: &str,
        sn: &str,
    ) -> Result<Option<(String, Credential)>> {
        let api: Api<Secret> = Api::namespaced(self.cluster.client.clone(), namespace);
        let Some(s) = retry(|| api.get_opt(sn))
            .await
            .map_err(|e| self.cluster.err(e))?
        else {
            return Ok(None);
        };
        let data = s.data.unwrap_or_default();
        let get = |k: &str| {
            data.get(k)
                .map(|b| String::from_utf8_lossy(&b.0).into_owned())
        };
        let (Some(server), Some(config)) = (get("server"), get("config")) else {
            return Ok(None);
        };
        let v: serde_json::Value = serde_json::from_str(&config)
            .map_err(|_| Error::internal(format!("Secret {namespace}/{sn}: config is not JSON")))?;
        let token = v["bearerToken"].as_str().unwrap_or_default().to_string();
        Ok(Some((
            server,
            Credential {
                token,
                ca_data: v["tlsClientConfig"]["caData"].as_str().map(str::to_string),
                insecure: v["tlsClientConfig"]["insecure"].as_bool().unwrap_or(false),
                secret_name: String::new(),
            },
        )))
    }
}
