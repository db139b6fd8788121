//! The per-cluster lock: Lease `<registry namespace>/lock-<name>`, held
//! while a command changes a cluster, so a second run fails at once naming
//! the holder. A lock left by a killed run expires after LEASE_SECONDS.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use serde_json::json;

use super::Registry;
use crate::error::{Error, Result};
use crate::k8s::{Cluster, retry};
use crate::render::{MANAGED_BY, MANAGER};

impl Registry {
    /// Takes the lock of a cluster name: a Lease in the registry namespace.
    /// It is recorded in `held`, so an interrupted command can release it.
    pub async fn lock(&self, name: &str, held: &Locks) -> Result<Lock> {
        let lock = Lock::acquire(self.cluster.clone(), &self.namespace, name).await?;
        held.add(&lock);
        Ok(Lock {
            held: Some(held.clone()),
            ..lock
        })
    }
}

/// A held lock; renewed in the background until released. A lock left by a
/// killed run expires after LEASE_SECONDS.
pub struct Lock {
    cluster: Cluster,
    namespace: String,
    name: String,
    renew: tokio::task::JoinHandle<()>,
    held: Option<Locks>,
}

pub const LEASE_SECONDS: i32 = 15;

/// The locks a command holds, so that when it is interrupted (SIGINT,
/// SIGTERM) they are released before it exits instead of left to expire.
/// Owned by the command's context; cloning shares it.
#[derive(Clone, Default)]
pub struct Locks {
    held: Arc<Mutex<Vec<(Cluster, String, String)>>>,
}

impl Locks {
    fn add(&self, lock: &Lock) {
        if let Ok(mut h) = self.held.lock() {
            h.push((
                lock.cluster.clone(),
                lock.namespace.clone(),
                lock.name.clone(),
            ));
        }
    }

    fn remove(&self, namespace: &str, name: &str) {
        if let Ok(mut h) = self.held.lock() {
            h.retain(|(_, ns, n)| !(ns == namespace && n == name));
        }
    }

    /// Releases every lock still held.
    pub async fn release_all(&self) {
        let held: Vec<(Cluster, String, String)> = self
            .held
            .lock()
            .map(|mut h| std::mem::take(&mut *h))
            .unwrap_or_default();
        for (cluster, ns, name) in held {
            let api: Api<Lease> = Api::namespaced(cluster.client.clone(), &ns);
            let _ = api.delete(&name, &DeleteParams::default()).await;
        }
    }
}

fn holder() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|s| s.trim().to_string())
        })
        .unwrap_or_else(|| "unknown-host".into());
    let user = std::env::var("USER").unwrap_or_else(|_| "unknown-user".into());
    format!("{user}@{host} pid {}", std::process::id())
}

impl Lock {
    async fn acquire(cluster: Cluster, namespace: &str, cluster_name: &str) -> Result<Self> {
        let api: Api<Lease> = Api::namespaced(cluster.client.clone(), namespace);
        let name = format!("lock-{cluster_name}");
        let me = holder();
        let now = Timestamp::now();
        let lease = Lease {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                labels: Some(BTreeMap::from([(
                    MANAGED_BY.to_string(),
                    MANAGER.to_string(),
                )])),
                ..Default::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: Some(me.clone()),
                lease_duration_seconds: Some(LEASE_SECONDS),
                acquire_time: Some(MicroTime(now)),
                renew_time: Some(MicroTime(now)),
                ..Default::default()
            }),
        };
        let pp = PostParams::default();
        match retry(|| api.create(&pp, &lease)).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 409 => {
                let existing = retry(|| api.get(&name)).await.map_err(|e| cluster.err(e))?;
                let spec = existing.spec.clone().unwrap_or_default();
                let renewed = spec.renew_time.map(|t| t.0).unwrap_or(now);
                let duration = i64::from(spec.lease_duration_seconds.unwrap_or(LEASE_SECONDS));
                let age = now.as_second() - renewed.as_second();
                if age <= duration {
                    return Err(Error::refused(format!(
                        "cluster {cluster_name} is being changed by {} (Lease {namespace}/{name}; it expires {}s after its holder stops renewing it)",
                        spec.holder_identity.unwrap_or_else(|| "another run".into()),
                        duration - age
                    )));
                }
                // expired: a killed run left it; take it over
                let mut taken = lease.clone();
                taken.metadata.resource_version = existing.metadata.resource_version.clone();
                retry(|| api.replace(&name, &pp, &taken)).await.map_err(|e| match e {
                    kube::Error::Api(s) if s.code == 409 => Error::refused(format!(
                        "cluster {cluster_name} was just locked by another run (Lease {namespace}/{name})"
                    )),
                    e => cluster.err(e),
                })?;
            }
            Err(e) => {
                return Err(cluster
                    .err(e)
                    .context(format!("taking the lock Lease {namespace}/{name}")));
            }
        }
        let renew = {
            let api = api.clone();
            let name = name.clone();
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(Duration::from_secs(5)).await;
                    let patch = json!({"spec": {"renewTime": MicroTime(Timestamp::now())}});
                    let _ = api
                        .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                        .await;
                }
            })
        };
        Ok(Self {
            cluster,
            namespace: namespace.to_string(),
            name,
            renew,
            held: None,
        })
    }

    /// Releases the lock.
    pub async fn release(self) {
        self.renew.abort();
        if let Some(held) = &self.held {
            held.remove(&self.namespace, &self.name);
        }
        let api: Api<Lease> = Api::namespaced(self.cluster.client.clone(), &self.namespace);
        let _ = api.delete(&self.name, &DeleteParams::default()).await;
    }
}
