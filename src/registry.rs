//! The management cluster's side: registration records, Argo CD cluster
//! Secrets, the per-cluster lock, and the credential minted in a runtime
//! cluster for Argo CD.

use std::collections::BTreeMap;
use std::time::Duration;

use base64::Engine as _;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::error::{Error, Result};
use crate::k8s::apply::FIELD_MANAGER;
use crate::k8s::{Cluster, retry};
use crate::render::{CLUSTER_LABEL, MANAGED_BY, MANAGER};
use crate::spec::{ClusterSpec, Usage};

pub const DEFAULT_NAMESPACE: &str = "nautes";
pub const ARGOCD_NAMESPACE: &str = "argocd";
pub const SECRET_TYPE_LABEL: &str = "argocd.argoproj.io/secret-type";
pub const USAGE_LABEL: &str = "cluster.nautes.io/usage";
pub const HOST_LABEL: &str = "cluster.nautes.io/host-cluster";
pub const CREDENTIAL_LABEL: &str = "nautes.io/credential";
pub const CREDENTIAL_NAMESPACE: &str = "nautes-system";
pub const CREDENTIAL_ACCOUNT: &str = "nautes-manager";

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

fn usage_str(u: Usage) -> &'static str {
    match u {
        Usage::Host => "host",
        Usage::Worker => "worker",
    }
}

/// The credential Argo CD uses for a cluster.
#[derive(Clone)]
pub struct Credential {
    pub token: String,
    pub ca_data: Option<String>,
    pub insecure: bool,
    pub secret_name: String,
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Credential(secret {}, token <redacted>)",
            self.secret_name
        )
    }
}

/// The management cluster's registry.
#[derive(Clone)]
pub struct Registry {
    pub cluster: Cluster,
    pub namespace: String,
}

fn record_name(name: &str) -> String {
    format!("cluster-{name}")
}

fn credential_name(name: &str) -> String {
    format!("credential-{name}")
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

    fn records(&self) -> Api<ConfigMap> {
        Api::namespaced(self.cluster.client.clone(), &self.namespace)
    }

    fn argocd(&self) -> Api<Secret> {
        Api::namespaced(self.cluster.client.clone(), ARGOCD_NAMESPACE)
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

    async fn write_cluster_secret(
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

    async fn read_cluster_secret(
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
        let gvk = kube::api::GroupVersionKind::gvk("argoproj.io", "v1alpha1", "Application");
        let (ar, _) = match kube::discovery::pinned_kind(&self.cluster.client, &gvk).await {
            Ok(x) => x,
            Err(_) => return Ok(Vec::new()),
        };
        let api: Api<kube::api::DynamicObject> = Api::all_with(self.cluster.client.clone(), &ar);
        let lp = ListParams::default();
        let list = retry(|| api.list(&lp))
            .await
            .map_err(|e| self.cluster.err(e))?;
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

    /// Takes the lock of a cluster name: a Lease in the registry namespace.
    pub async fn lock(&self, name: &str) -> Result<Lock> {
        Lock::acquire(self.cluster.clone(), &self.namespace, name).await
    }
}

/// A held lock; renewed in the background until released. A lock left by a
/// killed run expires after LEASE_SECONDS.
pub struct Lock {
    cluster: Cluster,
    namespace: String,
    name: String,
    renew: tokio::task::JoinHandle<()>,
}

pub const LEASE_SECONDS: i32 = 15;

/// Locks held by this process, so an interrupted run can release them
/// before it exits instead of leaving them to expire.
static HELD: std::sync::Mutex<Vec<(Cluster, String, String)>> = std::sync::Mutex::new(Vec::new());

/// Releases every lock this process holds (on SIGINT).
pub async fn release_held_locks() {
    let held: Vec<(Cluster, String, String)> = HELD
        .lock()
        .map(|mut h| std::mem::take(&mut *h))
        .unwrap_or_default();
    for (cluster, ns, name) in held {
        let api: Api<Lease> = Api::namespaced(cluster.client.clone(), &ns);
        let _ = api.delete(&name, &DeleteParams::default()).await;
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
        if let Ok(mut h) = HELD.lock() {
            h.push((cluster.clone(), namespace.to_string(), name.clone()));
        }
        Ok(Self {
            cluster,
            namespace: namespace.to_string(),
            name,
            renew,
        })
    }

    /// Releases the lock.
    pub async fn release(self) {
        self.renew.abort();
        if let Ok(mut h) = HELD.lock() {
            h.retain(|(_, ns, n)| !(ns == &self.namespace && n == &self.name));
        }
        let api: Api<Lease> = Api::namespaced(self.cluster.client.clone(), &self.namespace);
        let _ = api.delete(&self.name, &DeleteParams::default()).await;
    }
}

/// Finds or mints the ServiceAccount token for nautes-manager in a runtime
/// cluster (a `kubernetes.io/service-account-token` Secret, filled by the
/// cluster's token controller), and returns it with the cluster's CA.
pub async fn ensure_credential(
    runtime: &Cluster,
    cluster_name: &str,
    fresh: bool,
    timeout: Duration,
) -> Result<Credential> {
    let api: Api<Secret> = Api::namespaced(runtime.client.clone(), CREDENTIAL_NAMESPACE);
    let lp = ListParams::default().labels(&format!("{CREDENTIAL_LABEL}={CREDENTIAL_ACCOUNT}"));
    let existing = retry(|| api.list(&lp)).await.map_err(|e| runtime.err(e))?;
    if !fresh {
        for s in &existing.items {
            if let Some(c) = credential_of(s) {
                return Ok(c);
            }
        }
    }
    let name = format!("{CREDENTIAL_ACCOUNT}-token-{}", suffix());
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            namespace: Some(CREDENTIAL_NAMESPACE.to_string()),
            labels: Some(BTreeMap::from([
                (MANAGED_BY.to_string(), MANAGER.to_string()),
                (CLUSTER_LABEL.to_string(), cluster_name.to_string()),
                (CREDENTIAL_LABEL.to_string(), CREDENTIAL_ACCOUNT.to_string()),
            ])),
            annotations: Some(BTreeMap::from([(
                "kubernetes.io/service-account.name".to_string(),
                CREDENTIAL_ACCOUNT.to_string(),
            )])),
            ..Default::default()
        },
        type_: Some("kubernetes.io/service-account-token".into()),
        ..Default::default()
    };
    let pp = PostParams::default();
    retry(|| api.create(&pp, &secret)).await.map_err(|e| {
        runtime.err(e).context(format!(
            "creating the token Secret {CREDENTIAL_NAMESPACE}/{name}"
        ))
    })?;
    let deadline = crate::cli::deadline(timeout);
    loop {
        let s = retry(|| api.get(&name)).await.map_err(|e| runtime.err(e))?;
        if let Some(c) = credential_of(&s) {
            return Ok(c);
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(Error::timeout(format!(
                "{}: the token of Secret {CREDENTIAL_NAMESPACE}/{name} was not filled in within {}s (is kube-controller-manager running?)",
                runtime.label,
                timeout.as_secs()
            )));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Deletes the token Secrets of a runtime cluster except `keep`; deleting a
/// legacy token Secret revokes its token.
pub async fn revoke_credentials(runtime: &Cluster, keep: Option<&str>) -> Result<Vec<String>> {
    let api: Api<Secret> = Api::namespaced(runtime.client.clone(), CREDENTIAL_NAMESPACE);
    let lp = ListParams::default().labels(&format!("{CREDENTIAL_LABEL}={CREDENTIAL_ACCOUNT}"));
    let existing = match retry(|| api.list(&lp)).await {
        Ok(l) => l,
        Err(kube::Error::Api(s)) if s.code == 404 => return Ok(Vec::new()),
        Err(e) => return Err(runtime.err(e)),
    };
    let mut revoked = Vec::new();
    for s in existing.items {
        let n = s.metadata.name.unwrap_or_default();
        if Some(n.as_str()) == keep {
            continue;
        }
        let dp = DeleteParams::default();
        match retry(|| api.delete(&n, &dp)).await {
            Ok(_) => revoked.push(n),
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => return Err(runtime.err(e)),
        }
    }
    Ok(revoked)
}

fn credential_of(s: &Secret) -> Option<Credential> {
    let data = s.data.as_ref()?;
    let token = String::from_utf8(data.get("token")?.0.clone()).ok()?;
    if token.is_empty() {
        return None;
    }
    let ca = data
        .get("ca.crt")
        .map(|b| base64::engine::general_purpose::STANDARD.encode(&b.0));
    Some(Credential {
        token,
        ca_data: ca,
        insecure: false,
        secret_name: s.metadata.name.clone().unwrap_or_default(),
    })
}

fn suffix() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.write_u32(std::process::id());
    let mut n = h.finish();
    let alphabet = b"bcdfghjklmnpqrstvwxz2456789";
    let mut out = String::new();
    for _ in 0..5 {
        out.push(alphabet[(n % alphabet.len() as u64) as usize] as char);
        n /= alphabet.len() as u64;
    }
    out
}

/// Builds a kubeconfig (JSON) for a server and a bearer token, used to reach
/// a cluster through the credential the management cluster holds.
pub fn token_kubeconfig(name: &str, server: &str, cred: &Credential) -> String {
    let mut cluster = json!({"server": server});
    if let Some(ca) = &cred.ca_data {
        cluster["certificate-authority-data"] = json!(ca);
    }
    if cred.insecure {
        cluster["insecure-skip-tls-verify"] = json!(true);
    }
    json!({
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": name, "cluster": cluster}],
        "users": [{"name": name, "user": {"token": cred.token}}],
        "contexts": [{"name": name, "context": {"cluster": name, "user": name}}],
        "current-context": name,
    })
    .to_string()
}
