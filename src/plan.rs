//! The component catalog and the plan: which components go where, in which
//! order, for one cluster spec. Pure: no I/O, no clusters.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::spec::{ClusterSpec, ClusterType, ComponentOverride, Usage, WorkerType};

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
    /// Parsed once per process: the API's list answers parse it for every
    /// cluster otherwise (1,000 YAML parses for a list of 1,000).
    pub fn builtin() -> Result<Catalog> {
        static PARSED: std::sync::OnceLock<std::result::Result<Catalog, String>> =
            std::sync::OnceLock::new();
        PARSED
            .get_or_init(|| {
                serde_saphyr::from_str(CATALOG_YAML)
                    .map_err(|e| format!("embedded charts/catalog.yaml: {e}"))
            })
            .clone()
            .map_err(Error::internal)
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
    targets_of(spec.cluster_type, spec.usage)
}

/// The targets of a kind of cluster, in order.
pub fn targets_of(cluster_type: ClusterType, usage: Usage) -> Vec<Target> {
    match (cluster_type, usage) {
        (_, Usage::Host) => vec![Target::Host],
        (ClusterType::Physical, Usage::Worker) => vec![Target::PhysicalWorker],
        (ClusterType::Virtual, Usage::Worker) => vec![Target::VirtualHost, Target::VirtualWorker],
    }
}

/// What decides a plan: the cluster's name and kind and its componentsList.
/// Known before the spec is complete, so that validation can plan too.
pub struct PlanInput<'a> {
    pub name: &'a str,
    pub cluster_type: ClusterType,
    pub usage: Usage,
    pub worker_type: Option<WorkerType>,
    pub components: &'a BTreeMap<String, ComponentOverride>,
}

/// Builds the plan of a spec from a catalog. Pure.
pub fn plan(spec: &ClusterSpec, catalog: &Catalog) -> Result<Plan> {
    let stages = stages(
        &PlanInput {
            name: &spec.name,
            cluster_type: spec.cluster_type,
            usage: spec.usage,
            worker_type: spec.worker_type,
            components: &spec.components,
        },
        catalog,
    );
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

/// The stages of a plan: per target, its components in order, each in its
/// namespace (the catalog's, or the componentsList override). Pure.
pub fn stages(input: &PlanInput<'_>, catalog: &Catalog) -> Vec<Stage> {
    let worker_type = input.worker_type.unwrap_or(WorkerType::Deployment);
    let mut stages = Vec::new();
    for target in targets_of(input.cluster_type, input.usage) {
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
            let over = input.components.get(&e.category);
            let namespace = match over.and_then(|o| o.namespace.clone()) {
                Some(ns) => ns,
                None => e.namespace.replace("{{ cluster.name }}", input.name),
            };
            components.push(Component {
                name: e.name.clone(),
                category: e.category.clone(),
                chart: e.chart.clone(),
                release: e.release.replace("{{ cluster.name }}", input.name),
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
    stages
}

/// Namespaces that no component may take, and no virtual worker as its name
/// (a virtual worker's name is its namespace in the host): Kubernetes' own,
/// and the plugin's (the credential lives in nautes-system).
pub const RESERVED_NAMESPACES: &[&str] = &[
    "kube-system",
    "kube-public",
    "kube-node-lease",
    "default",
    "nautes-system",
];

/// Whether a namespace is one of [`RESERVED_NAMESPACES`].
pub fn is_reserved_namespace(name: &str) -> bool {
    RESERVED_NAMESPACES.contains(&name)
}

/// A namespace given in componentsList that another component installed
/// into the same cluster also takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharedNamespace {
    /// The category whose namespace was given (camelCase).
    pub category: String,
    pub namespace: String,
    /// The other component, by name.
    pub other: String,
}

/// The namespaces given in componentsList that another component of the
/// same stage (the same cluster) takes too, one per category. Pure.
pub fn shared_namespaces(
    stages: &[Stage],
    overrides: &BTreeMap<String, ComponentOverride>,
) -> Vec<SharedNamespace> {
    let mut found: BTreeMap<String, SharedNamespace> = BTreeMap::new();
    for stage in stages {
        for c in &stage.components {
            let given = overrides
                .get(&c.category)
                .is_some_and(|o| o.namespace.is_some());
            if !given || found.contains_key(&c.category) {
                continue;
            }
            let other = stage
                .components
                .iter()
                .find(|o| o.category != c.category && o.namespace == c.namespace);
            if let Some(other) = other {
                found.insert(
                    c.category.clone(),
                    SharedNamespace {
                        category: c.category.clone(),
                        namespace: c.namespace.clone(),
                        other: other.name.clone(),
                    },
                );
            }
        }
    }
    found.into_values().collect()
}

/// The namespaces a host's own components take in it, with the component
/// and the field that sets each (`componentsList.<category>.namespace`).
/// A virtual worker on the host must not be named after one of them. Pure.
pub fn host_namespaces(host: &ClusterSpec, catalog: &Catalog) -> Vec<(String, String, String)> {
    let stages = plan(host, catalog).map(|p| p.stages).unwrap_or_default();
    stages
        .iter()
        .filter(|s| s.target == Target::Host)
        .flat_map(|s| &s.components)
        .map(|c| {
            (
                c.namespace.clone(),
                c.name.clone(),
                format!("componentsList.{}.namespace", c.category),
            )
        })
        .collect()
}
