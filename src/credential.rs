//! The credential Argo CD (and the plugin) use for a runtime cluster: the
//! token of ServiceAccount nautes-system/nautes-manager, minted in the
//! runtime cluster by a legacy token Secret, and revoked there by deleting
//! it. This module talks to the runtime cluster; where the management
//! cluster keeps its copies is `registry`'s business.

use std::collections::BTreeMap;
use std::time::Duration;

use base64::Engine as _;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use k8s_openapi::api::rbac::v1::ClusterRoleBinding;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Api;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::config::{AuthInfo, Context, Kubeconfig, NamedAuthInfo, NamedCluster, NamedContext};

use crate::cli::deadline;
use crate::error::{Error, Result};
use crate::k8s::{Cluster, ConnectOptions, retry};
use crate::render::{CLUSTER_LABEL, MANAGED_BY, MANAGER};

pub const CREDENTIAL_LABEL: &str = "nautes.io/credential";
pub const CREDENTIAL_NAMESPACE: &str = "nautes-system";
pub const CREDENTIAL_ACCOUNT: &str = "nautes-manager";
/// The component name of the project's credential manifests (the
/// Namespace, ServiceAccount and ClusterRoleBinding of nautes-manager).
pub const CREDENTIAL_COMPONENT: &str = "credential";

/// A bearer token for a cluster, with the CA that verifies it.
#[derive(Clone)]
pub struct Credential {
    pub token: String,
    pub ca_data: Option<String>,
    pub insecure: bool,
    /// The token Secret in the runtime cluster ("" when read from a copy).
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

impl Credential {
    /// The one way a credential becomes a client: a kubeconfig built in
    /// memory for `server` with this token and CA.
    pub async fn connect(
        &self,
        label: &str,
        server: &str,
        opts: ConnectOptions,
    ) -> Result<Cluster> {
        let cluster = kube::config::Cluster {
            server: Some(server.to_string()),
            certificate_authority_data: self.ca_data.clone(),
            insecure_skip_tls_verify: self.insecure.then_some(true),
            ..Default::default()
        };
        let name = "nautes".to_string();
        let kc = Kubeconfig {
            clusters: vec![NamedCluster {
                name: name.clone(),
                cluster: Some(cluster),
                ..Default::default()
            }],
            auth_infos: vec![NamedAuthInfo {
                name: name.clone(),
                auth_info: Some(AuthInfo {
                    token: Some(self.token.clone().into()),
                    ..Default::default()
                }),
                other: Default::default(),
            }],
            contexts: vec![NamedContext {
                name: name.clone(),
                context: Some(Context {
                    cluster: name.clone(),
                    user: Some(name.clone()),
                    ..Default::default()
                }),
                other: Default::default(),
            }],
            current_context: Some(name),
            ..Default::default()
        };
        Cluster::from_kubeconfig(label, kc, None, opts).await
    }
}

impl Credential {
    /// A kubeconfig (JSON) for `server` with this token and CA: for a
    /// spec that must carry one (the HTTP API's takeover of a registration
    /// continues from the minted credential).
    pub fn kubeconfig(&self, name: &str, server: &str) -> String {
        let mut cluster = serde_json::json!({"server": server});
        if let Some(ca) = &self.ca_data {
            cluster["certificate-authority-data"] = serde_json::json!(ca);
        }
        if self.insecure {
            cluster["insecure-skip-tls-verify"] = serde_json::json!(true);
        }
        serde_json::json!({
            "apiVersion": "v1", "kind": "Config",
            "clusters": [{"name": name, "cluster": cluster}],
            "users": [{"name": name, "user": {"token": self.token}}],
            "contexts": [{"name": name, "context": {"cluster": name, "user": name}}],
            "current-context": name,
        })
        .to_string()
    }
}

fn token_secrets() -> ListParams {
    ListParams::default().labels(&format!("{CREDENTIAL_LABEL}={CREDENTIAL_ACCOUNT}"))
}

/// Finds or mints the ServiceAccount token of nautes-manager in a runtime
/// cluster (a `kubernetes.io/service-account-token` Secret, filled by the
/// cluster's token controller), and returns it with the cluster's CA.
/// `fresh`: always mint a new one (rotation).
pub async fn ensure(
    runtime: &Cluster,
    cluster_name: &str,
    fresh: bool,
    timeout: Duration,
) -> Result<Credential> {
    let api: Api<Secret> = Api::namespaced(runtime.client.clone(), CREDENTIAL_NAMESPACE);
    let lp = token_secrets();
    let existing = retry(|| api.list(&lp)).await.map_err(|e| runtime.err(e))?;
    if !fresh && let Some(c) = existing.items.iter().find_map(credential_of) {
        return Ok(c);
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
    let until = deadline(timeout);
    loop {
        let s = retry(|| api.get(&name)).await.map_err(|e| runtime.err(e))?;
        if let Some(c) = credential_of(&s) {
            return Ok(c);
        }
        if tokio::time::Instant::now() >= until {
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
pub async fn revoke(runtime: &Cluster, keep: Option<&str>) -> Result<Vec<String>> {
    let api: Api<Secret> = Api::namespaced(runtime.client.clone(), CREDENTIAL_NAMESPACE);
    let lp = token_secrets();
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

/// Checks that a credential reaches the cluster at `server`: one list.
pub async fn verify(
    cred: &Credential,
    label: &str,
    server: &str,
    opts: ConnectOptions,
) -> Result<()> {
    let c = cred.connect(label, server, opts).await?;
    let api: Api<Namespace> = Api::all(c.client.clone());
    let lp = ListParams::default().limit(1);
    retry(|| api.list(&lp)).await.map_err(|e| c.err(e))?;
    Ok(())
}

/// Waits until a revoked token is rejected (the API server caches
/// successful token reviews for a few seconds).
pub async fn wait_rejected(old: &Cluster, name: &str, timeout: Duration) -> Result<()> {
    let api: Api<Namespace> = Api::all(old.client.clone());
    let lp = ListParams::default().limit(1);
    let until = deadline(timeout);
    loop {
        match api.list(&lp).await {
            Err(kube::Error::Api(s)) if s.code == 401 => return Ok(()),
            _ if tokio::time::Instant::now() >= until => {
                return Err(Error::timeout(format!(
                    "runtime cluster {name}: the old token was deleted but still authenticates after {}s",
                    timeout.as_secs()
                )));
            }
            _ => tokio::time::sleep(Duration::from_millis(500)).await,
        }
    }
}

/// Removes the credential a client itself acts with. Its ClusterRoleBinding
/// is owned by the nautes-system Namespace (garbage-collected with it), so
/// deleting the namespace is the last request; once its ServiceAccount is
/// gone the token stops authenticating, which is how the end is observed.
/// `namespace_is_member`: the namespace is in the inventory (the plugin
/// created it); otherwise it is left alone.
pub async fn remove_own(
    cluster: &Cluster,
    namespace_is_member: bool,
    timeout: Duration,
) -> Result<()> {
    // the binding must be owned by the namespace (a register stopped between
    // the two may have left it without): add the owner, or, with no
    // namespace to own it, delete it as the very last request
    let namespaces: Api<Namespace> = Api::all(cluster.client.clone());
    let uid = retry(|| namespaces.get_opt(CREDENTIAL_NAMESPACE))
        .await
        .map_err(|e| cluster.err(e))?
        .and_then(|n| n.metadata.uid);
    let crbs: Api<ClusterRoleBinding> = Api::all(cluster.client.clone());
    if let Some(crb) = retry(|| crbs.get_opt(CREDENTIAL_ACCOUNT))
        .await
        .map_err(|e| cluster.err(e))?
        && crb
            .metadata
            .owner_references
            .as_ref()
            .is_none_or(|o| o.is_empty())
    {
        match &uid {
            Some(uid) => {
                let patch = serde_json::json!({"metadata": {"ownerReferences": [
                    {"apiVersion": "v1", "kind": "Namespace", "name": CREDENTIAL_NAMESPACE, "uid": uid}
                ]}});
                let (pp, mp) = (PatchParams::default(), Patch::Merge(&patch));
                retry(|| crbs.patch(CREDENTIAL_ACCOUNT, &pp, &mp))
                    .await
                    .map_err(|e| cluster.err(e))?;
            }
            None => {
                let dp = DeleteParams::default();
                retry(|| crbs.delete(CREDENTIAL_ACCOUNT, &dp))
                    .await
                    .map_err(|e| cluster.err(e))?;
                return Ok(());
            }
        }
    }
    if uid.is_none() || !namespace_is_member {
        return Ok(());
    }
    let dp = DeleteParams::default();
    match retry(|| namespaces.delete(CREDENTIAL_NAMESPACE, &dp)).await {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 404 => return Ok(()),
        Err(e) => return Err(cluster.err(e)),
    }
    let until = deadline(timeout);
    loop {
        match namespaces.get_metadata_opt(CREDENTIAL_NAMESPACE).await {
            Ok(None) => return Ok(()),
            Err(kube::Error::Api(s)) if s.code == 401 || s.code == 403 => return Ok(()),
            _ => {}
        }
        if tokio::time::Instant::now() >= until {
            return Err(Error::timeout(format!(
                "{}: namespace {CREDENTIAL_NAMESPACE} is still not gone after {}s",
                cluster.label,
                timeout.as_secs()
            )));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Whether an inventory member is part of the credential (removed last by
/// a client acting with it).
pub fn is_credential_object(group_kind: &str, namespace: Option<&str>, name: &str) -> bool {
    (group_kind == crate::kinds::NAMESPACE && name == CREDENTIAL_NAMESPACE)
        || namespace == Some(CREDENTIAL_NAMESPACE)
        || (group_kind == "ClusterRoleBinding.rbac.authorization.k8s.io"
            && name == CREDENTIAL_ACCOUNT)
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

/// Five characters as Kubernetes' generateName uses.
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
