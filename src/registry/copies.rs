//! The plugin's own copy of a cluster's credential, Secret
//! `<registry namespace>/credential-<name>`: saved as soon as the token is
//! minted (before the components are installed), so destroy and status can
//! reach a cluster whose register did not finish. Argo CD does not see it
//! (no secret-type label).

use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use kube::api::DeleteParams;
use serde_json::json;

use super::{ARGOCD_NAMESPACE, Registry, record_name};
use crate::credential::Credential;
use crate::error::Result;
use crate::k8s::retry;
use crate::render::{CLUSTER_LABEL, MANAGED_BY, MANAGER};
use crate::spec::ClusterSpec;

fn credential_name(name: &str) -> String {
    format!("credential-{name}")
}

impl Registry {
    /// Writes the plugin's own copy of a cluster's credential, saved as soon
    /// as it is minted (before the components are installed), so destroy and
    /// status can reach a cluster whose register did not finish. Argo CD
    /// does not see it (no secret-type label).
    pub async fn save_credential(&self, spec: &ClusterSpec, cred: &Credential) -> Result<()> {
        let labels = json!({MANAGED_BY: MANAGER, CLUSTER_LABEL: spec.name});
        self.write_cluster_secret(
            &self.namespace,
            &credential_name(&spec.name),
            labels,
            spec,
            cred,
        )
        .await
    }

    /// The credential the plugin holds for a cluster: its own copy, else the
    /// one in the Argo CD cluster Secret. (server, credential).
    pub async fn credential(&self, name: &str) -> Result<Option<(String, Credential)>> {
        if let Some(c) = self
            .read_cluster_secret(&self.namespace, &credential_name(name))
            .await?
        {
            return Ok(Some(c));
        }
        self.read_cluster_secret(ARGOCD_NAMESPACE, &record_name(name))
            .await
    }

    pub async fn delete_credential(&self, name: &str) -> Result<()> {
        let api: Api<Secret> = Api::namespaced(self.cluster.client.clone(), &self.namespace);
        let (n, dp) = (credential_name(name), DeleteParams::default());
        match retry(|| api.delete(&n, &dp)).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
            Err(e) => Err(self.cluster.err(e)),
        }
    }
}
