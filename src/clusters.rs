//! How the plugin reaches the clusters of a registration once it exists: a
//! host with the credential registered for it, a runtime cluster with the
//! plugin's copy of its credential, and a virtual cluster through the
//! kubeconfig its vcluster wrote in the host. Used by register, destroy,
//! status and rotate-credentials.

use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use serde_json::json;

use crate::cli::deadline;
use crate::error::{Error, Result};
use crate::k8s::{Cluster, ConnectOptions, retry};
use crate::output::Progress;
use crate::registry::Registry;
use crate::spec::ClusterSpec;

/// The host cluster of a virtual worker, reached with the credential the
/// management cluster holds for it.
pub async fn host(registry: &Registry, host: &str, opts: ConnectOptions) -> Result<Cluster> {
    let (server, cred) = registry.credential(host).await?.ok_or_else(|| {
        Error::refused(format!("host cluster {host} has no Argo CD cluster Secret in the management cluster; register it again"))
    })?;
    cred.connect(&format!("host cluster {host}"), &server, opts)
        .await
}

/// How a registered runtime cluster is reached with the credential the
/// management cluster holds.
pub enum Access {
    /// Reached with the nautes-manager token.
    Token(Cluster),
    /// A credential exists but the cluster does not answer to it: why.
    Unreachable(Error),
    /// The user's own kubeconfig (from the spec given to destroy with -f).
    User(Cluster),
    /// No credential was minted (a register stopped early).
    Unknown,
}

/// The runtime cluster `name` at `api_server`, reached with the plugin's
/// copy of its credential; one version request tells whether it answers.
pub async fn runtime(
    registry: &Registry,
    name: &str,
    api_server: &str,
    opts: ConnectOptions,
) -> Access {
    let cred = match registry.credential(name).await {
        Ok(Some((_, c))) => c,
        Ok(None) => return Access::Unknown,
        Err(e) => return Access::Unreachable(e),
    };
    let c = match cred
        .connect(&format!("runtime cluster {name}"), api_server, opts)
        .await
    {
        Ok(c) => c,
        Err(e) => return Access::Unreachable(e),
    };
    match c.version().await {
        Ok(_) => Access::Token(c),
        Err(e) => Access::Unreachable(e),
    }
}

/// Waits for the vcluster's kubeconfig Secret vc-<name> in the host, and
/// returns a client for the virtual cluster at api_server, with its CA.
pub async fn virtual_cluster(
    host: &Cluster,
    spec: &ClusterSpec,
    timeout: Duration,
    opts: ConnectOptions,
    p: &Progress,
) -> Result<(Cluster, Option<String>)> {
    let api: kube::Api<Secret> = kube::Api::namespaced(host.client.clone(), &spec.name);
    let name = format!("vc-{}", spec.name);
    p.info(
        "vcluster",
        format!(
            "waiting for the vcluster's kubeconfig Secret {}/{name} in the host",
            spec.name
        ),
    );
    let until = deadline(timeout);
    let text = loop {
        let s = retry(|| api.get_opt(&name))
            .await
            .map_err(|e| host.err(e))?;
        if let Some(b) = s
            .and_then(|s| s.data)
            .and_then(|d| d.get("config").cloned())
        {
            break String::from_utf8(b.0).map_err(|_| {
                Error::internal(format!("Secret {}/{name}: config is not UTF-8", spec.name))
            })?;
        }
        if tokio::time::Instant::now() >= until {
            return Err(Error::timeout(format!(
                "{}: the vcluster did not write Secret {}/{name} (key config) within {}s; is its StatefulSet running?",
                host.label,
                spec.name,
                timeout.as_secs()
            )));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let mut kc: serde_json::Value = serde_saphyr::from_str(&text).map_err(|_| {
        Error::internal(format!(
            "Secret {}/{name}: config is not a kubeconfig",
            spec.name
        ))
    })?;
    if let Some(clusters) = kc["clusters"].as_array_mut() {
        for c in clusters {
            c["cluster"]["server"] = json!(spec.api_server);
        }
    }
    let kc = kc.to_string();
    let ca = kubeconfig_ca(&kc);
    let c =
        Cluster::from_kubeconfig_text(&format!("virtual cluster {}", spec.name), &kc, opts).await?;
    let v = c.version().await?;
    p.done(
        "vcluster",
        format!(
            "virtual cluster {} reachable at {}, Kubernetes {v}",
            spec.name, spec.api_server
        ),
    );
    Ok((c, ca))
}

/// The certificate-authority-data of a kubeconfig's current (or first) cluster.
pub fn kubeconfig_ca(kubeconfig: &str) -> Option<String> {
    let kc = kube::config::Kubeconfig::from_yaml(kubeconfig).ok()?;
    let ctx_name = kc.current_context.clone();
    let cluster_name = ctx_name.and_then(|c| {
        kc.contexts
            .iter()
            .find(|x| x.name == c)
            .and_then(|x| x.context.as_ref().map(|c| c.cluster.clone()))
    });
    let cluster = match cluster_name {
        Some(n) => kc.clusters.iter().find(|c| c.name == n),
        None => kc.clusters.first(),
    }?;
    cluster.cluster.as_ref()?.certificate_authority_data.clone()
}
