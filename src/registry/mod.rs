//! The management cluster's side of a registration, one module per
//! concern: `records` (the registration record), `argocd` (Argo CD's
//! cluster Secret and the Applications that deploy to a cluster), `copies`
//! (the plugin's own copy of a cluster's credential) and `lock` (the Lease
//! that keeps two runs off one cluster). Minting and revoking the
//! credential happens in the runtime cluster: see `crate::credential`.

mod argocd;
mod copies;
mod lock;
mod records;

pub use lock::{LEASE_SECONDS, LOCK_LOST, LOCK_UNCONFIRMED, Lock, Locks, fence, fenced_out};
pub use records::{Failure, Record, State, kind_of, now};

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Api;
use kube::api::PostParams;

use crate::error::Result;
use crate::k8s::{Cluster, retry};
use crate::render::{MANAGED_BY, MANAGER};

pub const DEFAULT_NAMESPACE: &str = "nautes";
pub const ARGOCD_NAMESPACE: &str = "argocd";
pub const SECRET_TYPE_LABEL: &str = "argocd.argoproj.io/secret-type";
pub const USAGE_LABEL: &str = "cluster.nautes.io/usage";
pub const HOST_LABEL: &str = "cluster.nautes.io/host-cluster";

/// The management cluster's registry.
#[derive(Clone)]
pub struct Registry {
    pub cluster: Cluster,
    pub namespace: String,
}

/// The name of a cluster's record and of its Argo CD cluster Secret.
fn record_name(name: &str) -> String {
    format!("cluster-{name}")
}

fn is_ours(meta: &ObjectMeta) -> bool {
    meta.labels
        .as_ref()
        .and_then(|l| l.get(MANAGED_BY))
        .is_some_and(|v| v == MANAGER)
}

impl Registry {
    pub fn new(cluster: Cluster, namespace: &str) -> Self {
        Self {
            cluster,
            namespace: namespace.to_string(),
        }
    }

    /// Creates a namespace if it is missing (never deleted by the plugin:
    /// others may share it).
    pub async fn ensure_namespace(&self, name: &str) -> Result<()> {
        let api: Api<Namespace> = Api::all(self.cluster.client.clone());
        if retry(|| api.get_opt(name))
            .await
            .map_err(|e| self.cluster.err(e))?
            .is_some()
        {
            return Ok(());
        }
        let ns = Namespace {
            metadata: ObjectMeta {
                name: Some(name.to_string()),
                ..Default::default()
            },
            ..Default::default()
        };
        let pp = PostParams::default();
        match retry(|| api.create(&pp, &ns)).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
            Err(e) => Err(self
                .cluster
                .err(e)
                .context(format!("creating namespace {name}"))),
        }
    }

    /// The identity of this management side, which every ApplySet of its
    /// registrations carries: the UID of the registry namespace. None when
    /// the namespace does not exist yet (nothing is registered from here).
    pub async fn identity(&self) -> Result<Option<String>> {
        let api: Api<Namespace> = Api::all(self.cluster.client.clone());
        Ok(retry(|| api.get_opt(&self.namespace))
            .await
            .map_err(|e| self.cluster.err(e))?
            .and_then(|n| n.metadata.uid))
    }

    /// The ApplySet of a cluster registered from here. Before anything is
    /// registered from here, no set of ours can exist: the placeholder
    /// owner matches none.
    pub async fn applyset(&self, name: &str) -> Result<crate::inventory::ApplySet> {
        let owner = self
            .identity()
            .await?
            .unwrap_or_else(|| "no-registry-namespace".into());
        Ok(crate::inventory::ApplySet::new(name, &owner))
    }
}
