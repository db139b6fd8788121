//! The component catalog and the plan: which components go where, in which
//! order, for one cluster spec. Pure: no I/O, no clusters.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::spec::{ClusterSpec, ClusterType, Usage, WorkerType};

/// The catalog shipped with the plugin (charts/catalog.yaml).
pub const CATALOG_YAML: &str = include_str!("../charts/catalog.yaml");

/// Where a set of components is installed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Target {
    /// A host cluster (gateway).
    Host,
    /// A physical worker cluster.
    PhysicalWorker,
    /// Inside a virtual worker (the vcluster's API).
    VirtualWorker,
    /// In the host cluster, on behalf of a virtual worker (the vcluster itself).
    VirtualHost,
}

impl Target {
    pub fn as_str(self) -> &'static str {
        match self {
            Target::Host => "host",
            Target::PhysicalWorker => "physical-worker",
            Target::VirtualWorker => "virtual-worker",
            Target::VirtualHost => "virtual-host",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChartRef {
    pub repository: String,
    pub name: String,
    pub version: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CatalogEntry {
    pub name: String,
    pub category: String,
    pub chart: ChartRef,
    pub release: String,
    pub namespace: String,
    pub targets: Vec<Target>,
    #[serde(default)]
    pub worker_types: Option<Vec<WorkerType>>,
    pub order: u32,
    pub values: String,
    #[serde(default)]
    pub description: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Catalog {
    pub components: Vec<CatalogEntry>,
}

impl Catalog {
    /// The embedded catalog. It is part of the binary and covered by tests,
    /// so a parse failure is a bug, reported as an internal error.
    pub fn builtin() -> Result<Catalog> {
        serde_saphyr::from_str(CATALOG_YAML)
            .map_err(|e| Error::internal(format!("embedded charts/catalog.yaml: {e}")))
    }
}

/// One component of a plan, with everything resolved for this cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Component {
    pub name: String,
    pub category: String,
    pub chart: ChartRef,
    pub release: String,
    pub namespace: String,
    pub values: String,
    /// Extra helm values (`--set key=value`) from the spec's componentsList.
    pub additions: BTreeMap<String, String>,
}

/// What to install into one cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Stage {
    pub target: Target,
    pub components: Vec<Component>,
    /// The project's own manifests (templates/manifests/*.yaml.j2) for this stage.
    pub manifests: Vec<String>,
}

/// Everything a register does, in order. A virtual worker has two stages: the
/// vcluster in its host, then the components inside it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Plan {
    pub cluster: String,
    pub stages: Vec<Stage>,
}

/// The targets a spec is installed into, in order.
pub fn targets_for(spec: &ClusterSpec) -> Vec<Target> {
    match (spec.cluster_type, spec.usage) {
        (_, Usage::Host) => vec![Target::Host],
        (ClusterType::Physical, Usage::Worker) => vec![Target::PhysicalWorker],
        (ClusterType::Virtual, Usage::Worker) => vec![Target::VirtualHost, Target::VirtualWorker],
    }
}

/// Builds the plan of a spec from a catalog. Pure.
pub fn plan(spec: &ClusterSpec, catalog: &Catalog) -> Result<Plan> {
    let worker_type = spec.worker_type.unwrap_or(WorkerType::Deployment);
    let mut stages = Vec::new();
    for target in targets_for(spec) {
        let mut entries: Vec<&CatalogEntry> = catalog
            .components
            .iter()
            .filter(|c| c.targets.contains(&target))
            .filter(|c| {
                target == Target::Host
                    || target == Target::VirtualHost
                    || c.worker_types
                        .as_ref()
                        .is_none_or(|w| w.contains(&worker_type))
            })
            .collect();
        entries.sort_by(|a, b| a.order.cmp(&b.order).then(a.name.cmp(&b.name)));
        let mut components = Vec::new();
        for e in entries {
            let over = spec.components.get(&e.category);
            let namespace = match over.and_then(|o| o.namespace.clone()) {
                Some(ns) => ns,
                None => e.namespace.replace("{{ cluster.name }}", &spec.name),
            };
            components.push(Component {
                name: e.name.clone(),
                category: e.category.clone(),
                chart: e.chart.clone(),
                release: e.release.replace("{{ cluster.name }}", &spec.name),
                namespace,
                values: e.values.clone(),
                additions: over.map(|o| o.additions.clone()).unwrap_or_default(),
            });
        }
        let manifests = match target {
            Target::Host => vec!["credential.yaml.j2".to_string()],
            Target::PhysicalWorker | Target::VirtualWorker => vec![
                "credential.yaml.j2".to_string(),
                "vault-auth.yaml.j2".to_string(),
            ],
            Target::VirtualHost => vec!["vcluster-service.yaml.j2".to_string()],
        };
        stages.push(Stage {
            target,
            components,
            manifests,
        });
    }
    if stages.iter().all(|s| s.components.is_empty()) {
        return Err(Error::internal(format!(
            "the catalog has no component for cluster {}",
            spec.name
        )));
    }
    Ok(Plan {
        cluster: spec.name.clone(),
        stages,
    })
}
