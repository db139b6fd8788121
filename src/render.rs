//! Rendering: values from minijinja templates, then `helm template`, then
//! parsed and labelled objects. No cluster is contacted here.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use minijinja::{Environment, UndefinedBehavior};
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;

use crate::error::{Error, Result};
use crate::plan::{Component, Plan, Stage, Target};
use crate::spec::ClusterSpec;

pub mod charts;
pub mod fetch;

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/templates.rs"));
}

pub const MANAGED_BY: &str = "app.kubernetes.io/managed-by";
pub const MANAGER: &str = "kubectl-nautes";
pub const CLUSTER_LABEL: &str = "nautes.io/cluster";
pub const COMPONENT_LABEL: &str = "nautes.io/component";

/// One rendered object with the component it belongs to.
#[derive(Debug, Clone, PartialEq)]
pub struct Manifest {
    pub component: String,
    /// The component's namespace: the default for namespaced objects that
    /// name none.
    pub namespace: String,
    pub object: Value,
}

impl Manifest {
    pub fn api_version(&self) -> &str {
        self.object["apiVersion"].as_str().unwrap_or_default()
    }
    pub fn kind(&self) -> &str {
        self.object["kind"].as_str().unwrap_or_default()
    }
    pub fn name(&self) -> &str {
        self.object["metadata"]["name"].as_str().unwrap_or_default()
    }
    pub fn object_namespace(&self) -> Option<&str> {
        self.object["metadata"]["namespace"].as_str()
    }
}

/// What `helm template` needs to know about the target cluster.
#[derive(Debug, Clone, Default)]
pub struct KubeInfo {
    /// e.g. "v1.36.3"; None renders with helm's default.
    pub version: Option<String>,
    /// group/version strings the cluster serves (for .Capabilities.APIVersions).
    pub api_versions: Vec<String>,
}

/// Where charts come from.
#[derive(Debug, Clone)]
pub struct RenderOptions {
    pub helm: PathBuf,
    pub charts_dir: Option<PathBuf>,
    /// Repositories given for components instead of the catalog's
    /// (component or chart name -> URL).
    pub repositories: BTreeMap<String, String>,
    /// Where charts fetched from their repositories are kept (without
    /// --charts-dir); None when no cache directory can be found.
    pub cache_dir: Option<PathBuf>,
}

/// The render options of the chart flags: helm found, every
/// --chart-repository naming a component or chart of the catalog.
pub fn options(charts: &crate::cli::ChartArgs) -> Result<RenderOptions> {
    let catalog = crate::plan::Catalog::builtin()?;
    let mut repositories = BTreeMap::new();
    for (name, url) in &charts.chart_repositories {
        if !catalog
            .components
            .iter()
            .any(|c| &c.name == name || &c.chart.name == name)
        {
            let mut valid: Vec<&str> = catalog.components.iter().map(|c| c.name.as_str()).collect();
            valid.dedup();
            return Err(Error::invalid(format!(
                "--chart-repository {name}={}: {name:?} is no component of the catalog; valid: one of {}, or the name of its chart",
                fetch::shown(url),
                valid.join(", ")
            )));
        }
        repositories.insert(name.clone(), url.clone());
    }
    Ok(RenderOptions {
        helm: find_helm(charts.helm.as_deref())?,
        charts_dir: charts.charts_dir.clone(),
        repositories,
        cache_dir: charts.cache_dir.clone().or_else(fetch::default_cache_dir),
    })
}

/// The minijinja environment with every embedded template, built once.
pub fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    for (name, source) in embedded::TEMPLATES {
        // Embedded templates are checked by the tests; a syntax error here is
        // reported when the template is used.
        let _ = env.add_template(name, source);
    }
    env
}

/// The template context for one cluster: what values templates may use.
pub fn context(spec: &ClusterSpec) -> Value {
    let (host, port) = host_port(&spec.api_server);
    json!({
        "name": spec.name,
        "api_server": spec.api_server,
        "api_server_host": host,
        "api_server_port": port,
        "cluster_type": spec.cluster_type,
        "usage": spec.usage,
        "worker_type": spec.worker_type.map(|w| serde_json::to_value(w).unwrap_or(Value::Null)).unwrap_or(json!("none")),
        "primary_domain": spec.primary_domain,
        "argocd_host": spec.argocd_host,
        "traefik": spec.traefik,
        "vcluster": spec.vcluster,
        "host_cluster": spec.host_cluster,
    })
}

/// Host and port of an http(s) URL, with the scheme's default port.
pub fn host_port(url: &str) -> (String, u16) {
    let (scheme, rest) = url.split_once("://").unwrap_or(("https", url));
    let authority = rest.split('/').next().unwrap_or(rest);
    let default = if scheme == "http" { 80 } else { 443 };
    if let Some(stripped) = authority.strip_prefix('[') {
        // [v6]:port
        let (h, p) = stripped.split_once(']').unwrap_or((stripped, ""));
        let port = p
            .strip_prefix(':')
            .and_then(|p| p.parse().ok())
            .unwrap_or(default);
        return (h.to_string(), port);
    }
    match authority.rsplit_once(':') {
        Some((h, p)) => (h.to_string(), p.parse().unwrap_or(default)),
        None => (authority.to_string(), default),
    }
}

/// Renders a template by name with a context, naming the template on error.
pub fn render_template(env: &Environment<'_>, name: &str, ctx: &Value) -> Result<String> {
    let tmpl = env
        .get_template(name)
        .map_err(|e| Error::internal(format!("template {name}: {e:#}")))?;
    tmpl.render(minijinja::value::Serde(ctx))
        .map_err(|e| Error::internal(format!("template {name}: {e:#}")))
}

/// The values YAML for one component.
pub fn component_values(
    env: &Environment<'_>,
    spec: &ClusterSpec,
    c: &Component,
) -> Result<String> {
    let ctx = json!({
        "cluster": context(spec),
        "component": {"name": c.name, "namespace": c.namespace, "release": c.release, "category": c.category},
        "additions": c.additions,
    });
    render_template(env, &format!("values/{}", c.values), &ctx)
}

/// Parses a stream of YAML documents into objects, dropping empty ones and
/// flattening `kind: List`.
pub fn parse_objects(source: &str, text: &str) -> Result<Vec<Value>> {
    // helm's output is the project's own pipeline, not user input: the
    // parser's default caps (1,024 documents, 250,000 nodes) are too small
    // for large plans; the aliases caps stay
    let options = serde_saphyr::options! {
        budget: serde_saphyr::budget! {
            max_documents: 1_000_000,
            max_nodes: 100_000_000,
            max_events: 400_000_000,
            max_total_scalar_bytes: 1 << 30,
        },
    };
    let docs: Vec<Value> = serde_saphyr::from_multiple_with_options(text, options)
        .map_err(|e| Error::internal(format!("{source}: output is not valid YAML: {e}")))?;
    let mut out = Vec::new();
    for mut doc in docs {
        drop_nulls(&mut doc);
        flatten(doc, &mut out);
    }
    for o in &out {
        if o["apiVersion"].as_str().is_none_or(str::is_empty)
            || o["kind"].as_str().is_none_or(str::is_empty)
            || o["metadata"]["name"].as_str().is_none_or(str::is_empty)
        {
            return Err(Error::internal(format!(
                "{source}: an object lacks apiVersion, kind or metadata.name: {}",
                short(o)
            )));
        }
    }
    Ok(out)
}

/// Removes every null value from the mappings of a document, at any depth
/// (mappings inside sequences included), as kubectl does before it sends an
/// object. Charts write `annotations:` with nothing after it; sent as
/// `null`, server-side apply makes the plugin own that field as "absent",
/// which takes away what controllers add there (a Deployment's revision
/// annotation) and shows as a change on every register. A mapping left empty
/// stays (`{}`); sequence items are kept as they are, so no index shifts.
pub fn drop_nulls(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.retain(|_, v| !v.is_null());
            m.values_mut().for_each(drop_nulls);
        }
        Value::Array(a) => a.iter_mut().for_each(drop_nulls),
        _ => {}
    }
}

fn flatten(doc: Value, out: &mut Vec<Value>) {
    match doc {
        Value::Null => {}
        Value::Object(ref m) if m.is_empty() => {}
        Value::Object(ref m)
            if m.get("kind").and_then(Value::as_str) == Some("List") && m.contains_key("items") =>
        {
            if let Some(Value::Array(items)) = m.get("items").cloned() {
                for i in items {
                    flatten(i, out);
                }
            }
        }
        other => out.push(other),
    }
}

fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.len() > 120 {
        format!(
            "{}…",
            &s[..s.char_indices().take(120).last().map_or(0, |(i, _)| i)]
        )
    } else {
        s
    }
}

/// The chart of a component to give helm: in --charts-dir as `<name>/` or
/// `<name>-<version>.tgz`, else the archive fetched into the cache (see
/// [`prepare_charts`]).
pub fn chart_args(c: &Component, opts: &RenderOptions) -> Result<Vec<String>> {
    let dir = match (&opts.charts_dir, &opts.cache_dir) {
        (Some(dir), _) => dir.clone(),
        (None, Some(cache)) => {
            fetch::repository_dir(cache, fetch::repository_of(c, &opts.repositories))
        }
        (None, None) => return Err(no_cache_dir()),
    };
    Ok(vec![
        charts::locate(c, &dir)?
            .path()
            .to_string_lossy()
            .into_owned(),
    ])
}

fn no_cache_dir() -> Error {
    Error::missing(
        "no directory to keep fetched charts in: neither XDG_CACHE_HOME nor HOME is set; give one with --cache-dir, or give the charts with --charts-dir",
    )
}

/// Makes every chart of a plan ready to render, before anything is
/// rendered: with --charts-dir, checks them there; else fetches into the
/// cache those not there yet and checks them the same way. Every problem
/// is named in one error (exit 8; 5 for a repository that does not answer).
/// Returns one line per chart fetched.
pub async fn prepare_charts(plan: &Plan, opts: &RenderOptions) -> Result<Vec<String>> {
    if let Some(dir) = &opts.charts_dir {
        charts::check(
            plan,
            |_| dir.clone(),
            &format!("--charts-dir {}", dir.display()),
        )?;
        return Ok(Vec::new());
    }
    let cache = opts.cache_dir.as_ref().ok_or_else(no_cache_dir)?;
    let mut seen: Vec<(String, String, String)> = Vec::new();
    let mut jobs = Vec::new();
    for c in plan.stages.iter().flat_map(|s| &s.components) {
        let repository = fetch::repository_of(c, &opts.repositories).to_string();
        let key = (
            repository.clone(),
            c.chart.name.clone(),
            c.chart.version.clone(),
        );
        if seen.contains(&key) {
            continue;
        }
        seen.push(key);
        if fetch::is_git_tree(&repository) {
            jobs.push(futures::future::Either::Left(async move {
                Err::<Option<String>, _>(Error::missing(format!(
                    "chart {} {} of component {} is not published in a Helm repository (only in git at {}): package it with `helm package` and pass its directory with --charts-dir, or give a repository that has it with --chart-repository {}=<url>",
                    c.chart.name, c.chart.version, c.name, c.chart.repository, c.name
                )))
            }));
            continue;
        }
        jobs.push(futures::future::Either::Right(async move {
            let (path, fetched) = fetch::ensure(&opts.helm, c, &repository, cache).await?;
            Ok(fetched.then(|| {
                format!(
                    "chart {} {} fetched from {} into {}",
                    c.chart.name,
                    c.chart.version,
                    fetch::shown(&repository),
                    path.display()
                )
            }))
        }));
    }
    let mut lines = Vec::new();
    let mut problems = Vec::new();
    for r in futures::future::join_all(jobs).await {
        match r {
            Ok(line) => lines.extend(line),
            Err(e) => problems.push(e),
        }
    }
    if !problems.is_empty() {
        let code = problems
            .iter()
            .map(|e| e.code)
            .find(|c| *c == crate::error::ExitCode::Unreachable)
            .unwrap_or(problems[0].code);
        let msgs: Vec<String> = problems.into_iter().map(|e| e.message).collect();
        return Err(Error::new(
            code,
            format!(
                "{} chart(s) of the plan could not be fetched, nothing was rendered:\n  {}",
                msgs.len(),
                msgs.join("\n  ")
            ),
        ));
    }
    charts::check(
        plan,
        |c| fetch::repository_dir(cache, fetch::repository_of(c, &opts.repositories)),
        &format!("the chart cache {}", cache.display()),
    )?;
    Ok(lines)
}

/// Runs `helm template` for one component with its values on stdin.
pub async fn helm_template(
    opts: &RenderOptions,
    c: &Component,
    values: &str,
    kube: &KubeInfo,
) -> Result<String> {
    let mut args: Vec<String> = vec!["template".into(), c.release.clone()];
    args.extend(chart_args(c, opts)?);
    args.extend([
        "--namespace".into(),
        c.namespace.clone(),
        "--include-crds".into(),
        "--skip-tests".into(),
        "--values".into(),
        "-".into(),
    ]);
    if let Some(v) = &kube.version {
        args.extend(["--kube-version".into(), v.clone()]);
    }
    for gv in &kube.api_versions {
        args.extend(["--api-versions".into(), gv.clone()]);
    }
    for (k, v) in &c.additions {
        args.extend(["--set-string".into(), format!("{k}={v}")]);
    }
    let mut child = tokio::process::Command::new(&opts.helm)
        .args(&args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| Error::missing(format!("cannot run helm at {}: {e}", opts.helm.display())))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(values.as_bytes()).await?;
        drop(stdin);
    }
    let out = child.wait_with_output().await?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let err = err.trim();
        let code = if err.contains("dependencies") || err.contains("not found") {
            crate::error::ExitCode::Missing
        } else {
            crate::error::ExitCode::Internal
        };
        return Err(Error::new(
            code,
            format!(
                "helm template of component {} (chart {} {}) failed: {err}",
                c.name, c.chart.name, c.chart.version
            ),
        ));
    }
    // helm leaves out, with only a log line, an object naming an unknown hook
    crate::pipeline::hooks::unknown_hooks_in_helm_log(c, &String::from_utf8_lossy(&out.stderr))?;
    String::from_utf8(out.stdout)
        .map_err(|_| Error::internal(format!("helm template of {} printed invalid UTF-8", c.name)))
}

/// Locates helm: the --helm flag, else `helm` on PATH.
pub fn find_helm(flag: Option<&Path>) -> Result<PathBuf> {
    match flag {
        Some(p) => {
            if p.is_file() {
                Ok(p.to_path_buf())
            } else {
                Err(Error::missing(format!(
                    "--helm {}: no such file",
                    p.display()
                )))
            }
        }
        None => which::which("helm").map_err(|_| {
            Error::missing(
                "helm was not found on PATH; install helm v3.8+ or v4, or pass --helm PATH",
            )
        }),
    }
}

/// Labels every object with the plugin's ownership labels.
pub fn label(object: &mut Value, cluster: &str, component: &str) {
    if !object["metadata"].is_object() {
        object["metadata"] = json!({});
    }
    let meta = &mut object["metadata"];
    if !meta["labels"].is_object() {
        meta["labels"] = json!({});
    }
    let labels = &mut meta["labels"];
    labels[MANAGED_BY] = json!(MANAGER);
    labels[CLUSTER_LABEL] = json!(cluster);
    labels[COMPONENT_LABEL] = json!(component);
}

/// Renders every component of a stage (concurrently) and the stage's own
/// manifests, returning labelled objects in component order. The charts of
/// every stage of the spec's plan are checked first (see [`charts::check`]),
/// so a bad chart of a later stage stops the first one before its writes.
pub async fn render_stage(
    env: &Environment<'_>,
    spec: &ClusterSpec,
    stage: &Stage,
    opts: &RenderOptions,
    kube: &KubeInfo,
) -> Result<Vec<Manifest>> {
    prepare_stage_charts(spec, stage, opts).await?;
    render_checked_stage(env, spec, stage, opts, kube).await
}

/// [`prepare_charts`] for the whole plan of a spec and one stage of it.
pub async fn prepare_stage_charts(
    spec: &ClusterSpec,
    stage: &Stage,
    opts: &RenderOptions,
) -> Result<Vec<String>> {
    let mut whole = crate::plan::Catalog::builtin()
        .and_then(|catalog| crate::plan::plan(spec, &catalog))
        .unwrap_or_else(|_| Plan {
            cluster: spec.name.clone(),
            stages: Vec::new(),
        });
    whole.stages.push(stage.clone());
    prepare_charts(&whole, opts).await
}

/// [`render_stage`] without the check of the charts.
async fn render_checked_stage(
    env: &Environment<'_>,
    spec: &ClusterSpec,
    stage: &Stage,
    opts: &RenderOptions,
    kube: &KubeInfo,
) -> Result<Vec<Manifest>> {
    let mut jobs = Vec::new();
    for c in &stage.components {
        let values = component_values(env, spec, c)?;
        jobs.push(async move {
            let text = helm_template(opts, c, &values, kube).await?;
            let objects = parse_objects(&format!("helm template of {}", c.name), &text)?;
            Ok::<_, Error>((c, objects))
        });
    }
    let rendered = futures::future::join_all(jobs).await;
    let mut out = Vec::new();
    // the namespaces of the stage's components, created by the plugin
    let mut namespaces: Vec<(String, String)> = Vec::new();
    for c in &stage.components {
        if !namespaces.iter().any(|(n, _)| n == &c.namespace) {
            namespaces.push((c.namespace.clone(), c.name.clone()));
        }
    }
    for r in rendered {
        let (c, objects) = r?;
        // test hooks are never applied; bad hook annotations stop here
        let objects = crate::pipeline::hooks::without_tests(c, objects)?;
        for mut o in objects {
            if o["kind"] == "Namespace" {
                // charts should not create namespaces; the plugin does
                if namespaces
                    .iter()
                    .any(|(n, _)| o["metadata"]["name"] == n.as_str())
                {
                    continue;
                }
            }
            label(&mut o, &spec.name, &c.name);
            out.push(Manifest {
                component: c.name.clone(),
                namespace: c.namespace.clone(),
                object: o,
            });
        }
    }
    // the project's own manifests
    let ctx = json!({"cluster": context(spec)});
    for m in &stage.manifests {
        let text = render_template(env, &format!("manifests/{m}"), &ctx)?;
        let component = m.trim_end_matches(".yaml.j2").to_string();
        for mut o in parse_objects(&format!("template manifests/{m}"), &text)? {
            let ns = o["metadata"]["namespace"]
                .as_str()
                .unwrap_or("default")
                .to_string();
            if o["kind"] == "Namespace" {
                let n = o["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                if !namespaces.iter().any(|(x, _)| *x == n) {
                    namespaces.push((n, component.clone()));
                }
                continue;
            }
            label(&mut o, &spec.name, &component);
            out.push(Manifest {
                component: component.clone(),
                namespace: ns,
                object: o,
            });
        }
    }
    let mut ns_objects: Vec<Manifest> = namespaces
        .into_iter()
        .map(|(n, comp)| {
            let mut o = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": n}});
            label(&mut o, &spec.name, &comp);
            Manifest {
                component: comp,
                namespace: n,
                object: o,
            }
        })
        .collect();
    ns_objects.extend(out);
    Ok(ns_objects)
}

/// Renders a whole plan: one list of objects per stage.
pub async fn render_plan(
    spec: &ClusterSpec,
    plan: &Plan,
    opts: &RenderOptions,
    kube: &BTreeMap<Target, KubeInfo>,
) -> Result<Vec<(Target, Vec<Manifest>)>> {
    prepare_charts(plan, opts).await?;
    let env = environment();
    let mut out = Vec::new();
    let default = KubeInfo::default();
    for stage in &plan.stages {
        let info = kube.get(&stage.target).unwrap_or(&default);
        out.push((
            stage.target,
            render_checked_stage(&env, spec, stage, opts, info).await?,
        ));
    }
    Ok(out)
}

/// A copy of an object safe to print: Secret data replaced.
pub fn redacted(object: &Value) -> Value {
    let mut o = object.clone();
    if o["kind"] == "Secret" {
        for key in ["data", "stringData"] {
            if let Some(m) = o.get_mut(key).and_then(Value::as_object_mut) {
                for v in m.values_mut() {
                    *v = json!("<redacted>");
                }
            }
        }
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_port_handles_ipv4_ipv6_and_default_ports() {
        assert_eq!(
            host_port("https://10.0.0.5:6443"),
            ("10.0.0.5".into(), 6443)
        );
        assert_eq!(host_port("https://[::1]:31443"), ("::1".into(), 31443));
        assert_eq!(
            host_port("https://example.com"),
            ("example.com".into(), 443)
        );
        assert_eq!(host_port("http://example.com"), ("example.com".into(), 80));
    }

    #[test]
    fn parse_objects_drops_empty_documents_and_flattens_lists() {
        let text = "---\n# only a comment\n---\napiVersion: v1\nkind: List\nitems:\n- {apiVersion: v1, kind: ConfigMap, metadata: {name: a}}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: b}\n";
        let objs = parse_objects("t", text).expect("parses");
        let names: Vec<_> = objs
            .iter()
            .map(|o| o["metadata"]["name"].as_str().unwrap_or(""))
            .collect();
        assert_eq!(names, ["a", "b"]);
    }

    #[test]
    fn parse_objects_takes_more_documents_than_the_parsers_default_cap() {
        let text: String = (0..3000)
            .map(|i| format!("---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: c{i}}}\n"))
            .collect();
        assert_eq!(parse_objects("t", &text).expect("parses").len(), 3000);
    }

    #[test]
    fn drop_nulls_removes_nulls_from_mappings_at_every_depth_only() {
        let mut v = json!({
            "metadata": {"name": "a", "annotations": null, "labels": {"x": "1", "y": null}},
            "spec": {
                "template": {"metadata": {"annotations": null}},
                "containers": [{"name": "c", "securityContext": null, "env": [{"name": "E", "value": null}]}],
                "args": ["a", null, "b"],
                "empty": {"only": null},
                "zero": 0, "no": false, "blank": ""
            }
        });
        drop_nulls(&mut v);
        assert_eq!(
            v,
            json!({
                "metadata": {"name": "a", "labels": {"x": "1"}},
                "spec": {
                    "template": {"metadata": {}},
                    "containers": [{"name": "c", "env": [{"name": "E"}]}],
                    "args": ["a", null, "b"],
                    "empty": {},
                    "zero": 0, "no": false, "blank": ""
                }
            })
        );
    }

    #[test]
    fn parse_objects_drops_null_fields_and_documents_left_empty() {
        let text = "apiVersion: v1\nkind: Service\nmetadata:\n  name: s\n  annotations:\n  labels:\n    a: ~\nspec:\n  ports:\n  - port: 80\n    nodePort: null\n---\nkey:\n";
        let objs = parse_objects("t", text).expect("parses");
        assert_eq!(objs.len(), 1);
        assert_eq!(
            objs[0],
            json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s", "labels": {}}, "spec": {"ports": [{"port": 80}]}})
        );
    }

    #[test]
    fn parse_objects_rejects_an_object_without_a_name() {
        let err = parse_objects("t", "apiVersion: v1\nkind: ConfigMap\n").expect_err("must fail");
        assert!(err.message.contains("metadata.name"), "{}", err.message);
    }

    #[tokio::test]
    async fn rendering_a_stage_checks_the_charts_of_every_stage_of_the_plan_first() {
        // a virtual worker: its first stage (the vcluster, in the host) is
        // written before its second is rendered, so rendering the first
        // must already refuse a bad chart of the second
        let spec = crate::spec::parse(
            "v.yaml",
            include_str!("../examples/cluster-virtual-worker.yaml"),
            None,
        )
        .expect("spec");
        let plan = crate::plan::plan(&spec, &crate::plan::Catalog::builtin().expect("catalog"))
            .expect("plan");
        assert_eq!(plan.stages[0].target, Target::VirtualHost);
        let dir = tempfile::tempdir().expect("dir");
        for c in plan.stages.iter().flat_map(|s| &s.components) {
            let d = dir.path().join(&c.chart.name);
            std::fs::create_dir_all(&d).expect("mkdir");
            let version = if c.name == "argocd" {
                "9.9.9"
            } else {
                &c.chart.version
            };
            std::fs::write(
                d.join("Chart.yaml"),
                format!("name: {}\nversion: {version}\n", c.chart.name),
            )
            .expect("write");
        }
        let opts = RenderOptions {
            // never run: the check comes before helm
            helm: PathBuf::from("/nonexistent/helm"),
            charts_dir: Some(dir.path().to_path_buf()),
            repositories: BTreeMap::new(),
            cache_dir: None,
        };
        let err = render_stage(
            &environment(),
            &spec,
            &plan.stages[0],
            &opts,
            &KubeInfo::default(),
        )
        .await
        .expect_err("argo-cd 9.9.9 must be refused");
        assert_eq!(err.code, crate::error::ExitCode::Missing);
        assert!(
            err.message.contains("chart argo-cd of component argocd")
                && err
                    .message
                    .contains("is version 9.9.9, the catalog pins 10.1.1"),
            "{}",
            err.message
        );
    }

    #[test]
    fn redacted_hides_secret_values_only() {
        let s = json!({"kind": "Secret", "data": {"token": "c2VjcmV0"}, "stringData": {"a": "b"}});
        let r = redacted(&s);
        assert_eq!(r["data"]["token"], "<redacted>");
        assert_eq!(r["stringData"]["a"], "<redacted>");
        let cm = json!({"kind": "ConfigMap", "data": {"k": "v"}});
        assert_eq!(redacted(&cm), cm);
    }

    #[test]
    fn every_embedded_template_parses() {
        let mut env = Environment::new();
        for (name, source) in embedded::TEMPLATES {
            env.add_template(name, source)
                .unwrap_or_else(|e| panic!("template {name}: {e}"));
        }
        assert!(!embedded::TEMPLATES.is_empty());
    }
}
