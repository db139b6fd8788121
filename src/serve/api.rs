//! The routes of the cluster API, compatible with upstream Nautes v0.4's
//! cluster service, and the OpenAPI document generated from them.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Instant;

use axum::Json;
use axum::body::Body;
use axum::extract::{Extension, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::Value;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};

use super::auth::{self, User};
use super::body::{self, Selector};
use super::error::ApiError;
use super::jobs::{Job, JobState, Op, Snapshot};
use super::metrics::JobLabels;
use super::{AppState, WhoSlot};
use crate::cli::{DestroyArgs, DryRun, RegisterArgs, SpecInput};
use crate::commands::Ctx;
use crate::output::Progress;
use crate::registry::{Record, State as RecordState};
use crate::spec::{ClusterSpec, ClusterType, Usage, WorkerType};

pub const TAG: &str = "api.cluster.v1.Cluster";

/// A POST body, in upstream v0.4's form (the seed's older keys are accepted
/// too: `argocd_host`, `tekton_host`, `traefik`, `hostCluster`,
/// `vcluster.httpsNodePort`; every key may be camelCase). Only for the
/// document: the server reads bodies with the spec parser.
#[allow(dead_code)]
#[derive(ToSchema)]
pub struct ClusterBody {
    /// Optional; must equal cluster_name.
    name: Option<String>,
    /// `https://host:port`, no path.
    #[schema(example = "https://10.0.0.5:6443")]
    api_server: String,
    /// Only `kubernetes`.
    #[schema(example = "kubernetes")]
    cluster_kind: Option<String>,
    /// `physical` or `virtual`.
    #[schema(example = "physical")]
    cluster_type: String,
    /// `worker` or `host`.
    #[schema(example = "worker")]
    usage: String,
    /// `deployment` or `pipeline`; workers only.
    worker_type: Option<String>,
    /// The registered host of a virtual worker.
    host_cluster: Option<String>,
    /// Default: the host of api_server (`<ip>.nip.io` for an address).
    primary_domain: Option<String>,
    /// Argo CD's host (the seed's key; v0.4: components_list.deployment.additions.host).
    argocd_host: Option<String>,
    /// Traefik's node ports, strings or numbers (the seed's key).
    traefik: Option<NodePortsBody>,
    /// A virtual worker's vcluster.
    vcluster: Option<VclusterBody>,
    /// Physical clusters: the kubeconfig, YAML text or its base64. No exec
    /// plugins, auth providers or file references.
    kubeconfig: Option<String>,
    components_list: Option<ComponentsList>,
    reserved_namespaces_allowed_products: Option<BTreeMap<String, Vec<String>>>,
    product_allowed_cluster_resources: Option<BTreeMap<String, Vec<ClusterResource>>>,
}

#[allow(dead_code)]
#[derive(ToSchema)]
pub struct NodePortsBody {
    #[schema(example = "30080")]
    http_node_port: Option<String>,
    #[schema(example = "30443")]
    https_node_port: Option<String>,
}

#[allow(dead_code)]
#[derive(ToSchema)]
pub struct VclusterBody {
    #[schema(example = "31443")]
    https_node_port: Option<String>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ClusterResource {
    kind: String,
    group: String,
}

#[derive(Debug, Clone, Default, Serialize, ToSchema)]
pub struct ComponentsList {
    multi_tenant: Option<Component>,
    secret_sync: Option<Component>,
    gateway: Option<Component>,
    deployment: Option<Component>,
    progressive_delivery: Option<Component>,
    pipeline: Option<Component>,
    event_listener: Option<Component>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Component {
    name: String,
    namespace: String,
    additions: BTreeMap<String, String>,
}

/// One cluster: every key upstream answers, plus state, phase and last error.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ClusterReply {
    name: String,
    cluster_kind: String,
    cluster_type: String,
    usage: String,
    host_cluster: String,
    primary_domain: String,
    worker_type: String,
    api_server: String,
    components_list: ComponentsList,
    reserved_namespaces_allowed_products: BTreeMap<String, Vec<String>>,
    product_allowed_cluster_resources: BTreeMap<String, Vec<ClusterResource>>,
    state: JobState,
    /// The step a running register or destroy is at.
    phase: String,
    last_error: Option<ApiError>,
    registered_at: String,
    updated_at: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ClusterList {
    items: Vec<ClusterReply>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Links {
    #[serde(rename = "self")]
    this: String,
    events: String,
}

/// The answer to POST and DELETE.
#[derive(Debug, Serialize, ToSchema)]
pub struct Accepted {
    #[schema(example = "Successfully saved cluster-physical-demo cluster")]
    message: String,
    state: JobState,
    links: Links,
    /// With ?wait=true: what the register changed.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    result: Option<Value>,
}

struct Bearer;

impl Modify for Bearer {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let c = openapi.components.get_or_insert_with(Default::default);
        c.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "api.cluster.v1.Cluster", description = "Register and destroy the runtime clusters of Nautes (kubectl nautes serve). Every route needs a bearer token of the management cluster; its RBAC on clusters.nautes.io in the registry namespace decides."),
    paths(save_cluster, delete_cluster, get_cluster, list_clusters, cluster_events),
    components(schemas(ApiError, ClusterBody, ClusterReply, ClusterList, Accepted)),
    modifiers(&Bearer),
    security(("bearer" = [])),
    tags((name = "api.cluster.v1.Cluster", description = "The cluster service"))
)]
pub struct ApiDoc;

fn check_name(name: &str) -> Result<(), ApiError> {
    if crate::spec::is_dns1123_label(name) {
        return Ok(());
    }
    Err(ApiError::validator(format!(
        "cluster_name: {name:?} is not a valid cluster name; valid: a DNS-1123 label (lowercase letters, digits and '-', at most 63)"
    ))
    .with("cluster_name", "not a DNS-1123 label"))
}

async fn who(
    st: &AppState,
    slot: &WhoSlot,
    headers: &HeaderMap,
    verb: &str,
    name: Option<&str>,
) -> Result<User, ApiError> {
    let user = auth::authenticate(&st.mgmt, headers).await?;
    if let Ok(mut w) = slot.0.lock() {
        *w = Some(user.name.clone());
    }
    auth::authorize(&st.mgmt, &user, verb, &st.namespace, name).await?;
    Ok(user)
}

fn links(name: &str) -> Links {
    Links {
        this: format!("/api/v1/clusters/{name}"),
        events: format!("/api/v1/clusters/{name}/events"),
    }
}

/// Create or update (register) a cluster.
#[utoipa::path(
    post,
    path = "/api/v1/clusters/{cluster_name}",
    tag = "api.cluster.v1.Cluster",
    operation_id = "Cluster_SaveCluster",
    params(
        ("cluster_name" = String, Path, description = "The cluster's name (a DNS-1123 label)"),
        ("insecure_skip_check" = Option<bool>, Query, description = "Accepted for compatibility; register checks nothing it could skip"),
        ("wait" = Option<bool>, Query, description = "Answer when the registration is done (up to the server's --max-wait)"),
    ),
    request_body(content = ClusterBody, content_type = "application/json"),
    responses(
        (status = 200, description = "Accepted (state Registering), or with wait=true done (Registered)", body = Accepted),
        (status = 202, description = "wait=true: still running when the server's limit passed", body = Accepted),
        (status = 400, description = "CODEC: the body is not JSON; VALIDATOR: a spec rule, fields in metadata", body = ApiError),
        (status = 401, description = "No token, or the management cluster did not accept it", body = ApiError),
        (status = 403, description = "The token's user may not create/update clusters.nautes.io", body = ApiError),
        (status = 409, description = "A rule refuses, or the cluster's lock is held", body = ApiError),
        (status = 413, description = "The body is larger than the server's limit", body = ApiError),
        (status = 429, description = "Too many registrations run at once", body = ApiError),
    )
)]
pub async fn save_cluster(
    State(st): State<Arc<AppState>>,
    Extension(slot): Extension<WhoSlot>,
    Path(name): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
    payload: Body,
) -> Result<Response, ApiError> {
    body::known_query(&q, &["insecure_skip_check", "wait"])?;
    let wait = body::query_bool(&q, "wait")?;
    body::query_bool(&q, "insecure_skip_check")?;
    check_name(&name)?;
    let registry = st.registry();
    let user = auth::authenticate(&st.mgmt, &headers).await?;
    if let Ok(mut w) = slot.0.lock() {
        *w = Some(user.name.clone());
    }
    let exists = registry.get(&name).await.map_err(ApiError::from)?.is_some();
    let verb = if exists { "update" } else { "create" };
    auth::authorize(&st.mgmt, &user, verb, &st.namespace, Some(&name)).await?;
    let bytes = axum::body::to_bytes(payload, st.args.max_body_bytes)
        .await
        .map_err(|_| {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "BODY_TOO_LARGE",
                format!(
                    "request body: larger than {} bytes (the server's --max-body-bytes), or it could not be read",
                    st.args.max_body_bytes
                ),
            )
        })?;
    let spec = body::parse_body(&name, &bytes)?;
    let args = RegisterArgs {
        adopt: false,
        force: false,
        input: SpecInput {
            allow_exec_kubeconfig: false,
            filename: body::BODY_LABEL.into(),
            name: Some(name.clone()),
        },
        charts: st.args.charts.clone(),
        dry_run: DryRun::None,
        wait: true,
        timeout: st.args.timeout,
        force_conflicts: false,
        output: None,
        concurrency: 16,
    };
    let job_spec = spec.clone();
    let outcome = start(
        &st,
        &name,
        Op::Register,
        Some(spec),
        wait,
        move |ctx| async move {
            let r = ctx
                .locks
                .fenced(crate::commands::register::register_spec(
                    &ctx, &job_spec, &args,
                ))
                .await?;
            Ok(serde_json::to_value(&r).unwrap_or(Value::Null))
        },
    )
    .await?;
    Ok(answer(&name, Op::Register, outcome))
}

/// Destroy a cluster.
#[utoipa::path(
    delete,
    path = "/api/v1/clusters/{cluster_name}",
    tag = "api.cluster.v1.Cluster",
    operation_id = "Cluster_DeleteCluster",
    params(
        ("cluster_name" = String, Path, description = "The cluster's name"),
        ("insecure_skip_check" = Option<bool>, Query, description = "Destroy even if Argo CD Applications still deploy to it (destroy --force; never overrides the host rule)"),
        ("wait" = Option<bool>, Query, description = "Answer when the destroy is done (up to the server's --max-wait)"),
    ),
    responses(
        (status = 200, description = "Accepted (state Destroying), or with wait=true done (Destroyed)", body = Accepted),
        (status = 401, description = "No or bad token", body = ApiError),
        (status = 403, description = "Not allowed to delete clusters.nautes.io", body = ApiError),
        (status = 404, description = "No such cluster", body = ApiError),
        (status = 409, description = "A rule refuses (a host still in use, Applications) or the lock is held", body = ApiError),
    )
)]
pub async fn delete_cluster(
    State(st): State<Arc<AppState>>,
    Extension(slot): Extension<WhoSlot>,
    Path(name): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    body::known_query(&q, &["insecure_skip_check", "wait"])?;
    let wait = body::query_bool(&q, "wait")?;
    let force = body::query_bool(&q, "insecure_skip_check")?;
    check_name(&name)?;
    who(&st, &slot, &headers, "delete", Some(&name)).await?;
    if st
        .registry()
        .get(&name)
        .await
        .map_err(ApiError::from)?
        .is_none()
    {
        return Err(ApiError::not_found(&name, &st.namespace));
    }
    let args = DestroyArgs {
        allow_exec_kubeconfig: false,
        name: name.clone(),
        filename: None,
        force,
        timeout: st.args.timeout,
        dry_run: DryRun::None,
        output: None,
    };
    let outcome = start(&st, &name, Op::Destroy, None, wait, move |ctx| async move {
        ctx.locks
            .fenced(crate::commands::destroy::destroy_name(
                &ctx, &args.name, &args,
            ))
            .await?;
        Ok(Value::Null)
    })
    .await?;
    Ok(answer(&name, Op::Destroy, outcome))
}

/// One cluster.
#[utoipa::path(
    get,
    path = "/api/v1/clusters/{cluster_name}",
    tag = "api.cluster.v1.Cluster",
    operation_id = "Cluster_GetCluster",
    params(("cluster_name" = String, Path, description = "The cluster's name")),
    responses(
        (status = 200, description = "The cluster, never its kubeconfig", body = ClusterReply),
        (status = 401, description = "No or bad token", body = ApiError),
        (status = 403, description = "Not allowed to get clusters.nautes.io", body = ApiError),
        (status = 404, description = "No such cluster", body = ApiError),
    )
)]
pub async fn get_cluster(
    State(st): State<Arc<AppState>>,
    Extension(slot): Extension<WhoSlot>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Result<Json<ClusterReply>, ApiError> {
    check_name(&name)?;
    who(&st, &slot, &headers, "get", Some(&name)).await?;
    let record = st.registry().get(&name).await.map_err(ApiError::from)?;
    let job = st.job(&name);
    let snap = job.as_ref().map(|j| j.snapshot());
    match (&record, &job) {
        (Some(r), _) => Ok(Json(reply(&r.spec, Some(r), snap.as_ref(), job.as_deref()))),
        // a run the client was told about (200) that has no record yet, or
        // failed; a run refused at once answered its error instead
        (None, Some(j))
            if snap
                .as_ref()
                .is_some_and(|s| s.state != JobState::Destroyed && (s.accepted || !s.done)) =>
        {
            match &j.spec {
                Some(spec) => Ok(Json(reply(spec, None, snap.as_ref(), Some(j)))),
                None => Err(ApiError::not_found(&name, &st.namespace)),
            }
        }
        _ => Err(ApiError::not_found(&name, &st.namespace)),
    }
}

/// The registered clusters.
#[utoipa::path(
    get,
    path = "/api/v1/clusters",
    tag = "api.cluster.v1.Cluster",
    operation_id = "Cluster_ListClusters",
    params(("field_selector" = Option<String>, Query, description = "Comma-separated key=value: cluster_type, usage, worker_type (exact), cluster_name (a substring)", example = "cluster_type=physical,usage=worker")),
    responses(
        (status = 200, description = "The clusters (`/api/v1/clusters/` answers too)", body = ClusterList),
        (status = 400, description = "A bad field_selector", body = ApiError),
        (status = 401, description = "No or bad token", body = ApiError),
        (status = 403, description = "Not allowed to list clusters.nautes.io", body = ApiError),
    )
)]
pub async fn list_clusters(
    State(st): State<Arc<AppState>>,
    Extension(slot): Extension<WhoSlot>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<Json<ClusterList>, ApiError> {
    body::known_query(&q, &["field_selector"])?;
    let selector = body::field_selector(q.get("field_selector").map(String::as_str).unwrap_or(""))?;
    who(&st, &slot, &headers, "list", None).await?;
    let records = st.registry().list().await.map_err(ApiError::from)?;
    let mut items = Vec::new();
    for r in &records {
        let job = st.job(&r.name);
        let snap = job.as_ref().map(|j| j.snapshot());
        let item = reply(&r.spec, Some(r), snap.as_ref(), job.as_deref());
        if selector.iter().all(|s| matches(&item, s)) {
            items.push(item);
        }
    }
    items.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(Json(ClusterList { items }))
}

/// Progress events of the cluster's last register or destroy on this server.
#[utoipa::path(
    get,
    path = "/api/v1/clusters/{cluster_name}/events",
    tag = "api.cluster.v1.Cluster",
    operation_id = "Cluster_Events",
    params(("cluster_name" = String, Path, description = "The cluster's name")),
    responses(
        (status = 200, description = "NDJSON: one event per line as --progress=json prints them, until the run ends (the last has step result)", content_type = "application/x-ndjson", body = String),
        (status = 404, description = "No register or destroy of this cluster ran on this server", body = ApiError),
    )
)]
pub async fn cluster_events(
    State(st): State<Arc<AppState>>,
    Extension(slot): Extension<WhoSlot>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    check_name(&name)?;
    who(&st, &slot, &headers, "get", Some(&name)).await?;
    let Some(job) = st.job(&name) else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "NO_EVENTS",
            format!("no register or destroy of cluster {name} ran on this server"),
        ));
    };
    let (past, rx) = job.subscribe();
    let past = futures::stream::iter(past.into_iter().map(line));
    let next = futures::stream::unfold(rx, |rx| async move {
        let mut rx = rx?;
        loop {
            match rx.recv().await {
                Ok(ev) => {
                    let last = ev.get("final").is_some();
                    let l = line(ev);
                    return Some((l, if last { None } else { Some(rx) }));
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                Err(_) => return None,
            }
        }
    });
    use futures::StreamExt as _;
    let stream = past.chain(next);
    Ok((
        [(header::CONTENT_TYPE, "application/x-ndjson")],
        Body::from_stream(stream),
    )
        .into_response())
}

fn line(ev: Value) -> Result<String, std::convert::Infallible> {
    Ok(format!("{ev}\n"))
}

/// How a start ended for the request.
pub enum Outcome {
    /// The Lease is held and the work runs.
    Accepted,
    /// Finished (before acceptance, or within the wait).
    Done(Result<Value, ApiError>),
    /// Still running when the wait (or the acceptance deadline) passed.
    Running,
}

/// Starts a register or destroy in the background; answers once its lease
/// is held (or it ended), or with `wait` once it is done.
pub(crate) async fn start<F, Fut>(
    st: &Arc<AppState>,
    name: &str,
    op: Op,
    spec: Option<ClusterSpec>,
    wait: bool,
    work: F,
) -> Result<Outcome, ApiError>
where
    F: FnOnce(Ctx) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = crate::error::Result<Value>> + 'static,
{
    let (job, accepted) = Job::new(op, spec);
    let permit = {
        let mut jobs = st
            .jobs
            .lock()
            .map_err(|_| ApiError::internal("the job table is poisoned (a bug)"))?;
        if let Some(j) = jobs.get(name)
            && !j.snapshot().done
        {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "CONFLICT",
                format!(
                    "cluster {name}: a {} started at {} is still running on this server",
                    j.op.as_str(),
                    j.started
                ),
            ));
        }
        let permit = st.slots.clone().try_acquire_owned().map_err(|_| {
            ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "TOO_MANY_REGISTRATIONS",
                format!(
                    "{} registrations or destroys are running (the server's --max-concurrent-registrations); try again later",
                    st.args.max_concurrent_registrations
                ),
            )
        })?;
        jobs.insert(name.to_string(), job.clone());
        permit
    };
    let sink = job.clone();
    let ctx = Ctx {
        locks: Default::default(),
        global: st.global.clone(),
        progress: Progress::to_sink(0, move |ev| sink.event(ev)),
    };
    let (ftx, mut frx) = tokio::sync::oneshot::channel();
    let st2 = st.clone();
    let job2 = job.clone();
    // the pipelines' futures are not Send (they were written for the
    // command line's block_on), so each job runs on a thread of its own
    // with a single-threaded runtime; --max-concurrent-registrations
    // bounds the threads
    let spawned = std::thread::Builder::new()
        .name(format!("{}-{name}", op.as_str()))
        .spawn(move || {
            let t0 = Instant::now();
            let r = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                // the server's --timeout bounds each job's retries, as
                // register --timeout does on the command line
                Ok(rt) => rt
                    .block_on(crate::k8s::within(
                        crate::cli::deadline(st2.args.timeout),
                        work(ctx),
                    ))
                    .map_err(ApiError::from),
                Err(e) => Err(ApiError::internal(format!("cannot start a runtime: {e}"))),
            };
            job2.finish(&r);
            let labels = JobLabels {
                operation: op.as_str().into(),
                result: match &r {
                    Ok(_) => "succeeded".into(),
                    Err(e) => e.reason.clone(),
                },
            };
            st2.metrics.jobs.get_or_create(&labels).inc();
            st2.metrics
                .job_seconds
                .get_or_create(&labels)
                .observe(t0.elapsed().as_secs_f64());
            drop(permit);
            let _ = ftx.send(r);
        });
    if let Err(e) = spawned {
        let e = ApiError::internal(format!("cannot start a thread: {e}"));
        job.finish(&Err(e.clone()));
        return Err(e);
    }
    let gone = || {
        Err(ApiError::internal(
            "the background task ended without a result (a bug)",
        ))
    };
    tokio::select! {
        biased;
        r = &mut frx => return Ok(Outcome::Done(r.unwrap_or_else(|_| gone()))),
        a = accepted => {
            if a.is_err() {
                // the job ended before its lease: its result follows
                return Ok(Outcome::Done(frx.await.unwrap_or_else(|_| gone())));
            }
        }
        _ = tokio::time::sleep(st.global.request_timeout) => {
            if !wait {
                return Ok(Outcome::Running);
            }
        }
    }
    if !wait {
        return Ok(Outcome::Accepted);
    }
    match tokio::time::timeout(st.args.max_wait, frx).await {
        Ok(r) => Ok(Outcome::Done(r.unwrap_or_else(|_| gone()))),
        Err(_) => Ok(Outcome::Running),
    }
}

fn answer(name: &str, op: Op, outcome: Outcome) -> Response {
    let verb = match op {
        Op::Register => "saved",
        Op::Destroy => "deleted",
    };
    let (running, done) = match op {
        Op::Register => (JobState::Registering, JobState::Registered),
        Op::Destroy => (JobState::Destroying, JobState::Destroyed),
    };
    let (status, state, result) = match outcome {
        Outcome::Accepted => (StatusCode::OK, running, None),
        Outcome::Running => (StatusCode::ACCEPTED, running, None),
        Outcome::Done(Ok(v)) => (StatusCode::OK, done, (!v.is_null()).then_some(v)),
        Outcome::Done(Err(e)) => return e.into_response(),
    };
    let message = if status == StatusCode::ACCEPTED {
        format!(
            "{name}: still running; follow {} or GET the cluster",
            links(name).events
        )
    } else {
        format!("Successfully {verb} {name} cluster")
    };
    (
        status,
        Json(Accepted {
            message,
            state,
            links: links(name),
            result,
        }),
    )
        .into_response()
}

/// Where a cluster stands: a job of this server that is running or failed
/// after the record was last written wins over the record's state.
fn state_of(record: Option<&Record>, snap: Option<&Snapshot>, job: Option<&Job>) -> JobState {
    let from_record = |r: &Record| match r.state {
        RecordState::Registered => JobState::Registered,
        // left so by a failure, which any replica reads from the record
        _ if r.last_failure.is_some() => JobState::Failed,
        RecordState::Registering => JobState::Registering,
        RecordState::Destroying => JobState::Destroying,
    };
    match (record, snap, job) {
        (_, Some(s), _) if !s.done => s.state,
        (Some(r), Some(s), Some(j)) if s.state == JobState::Failed => {
            if newer(&r.updated_at, &j.started) {
                from_record(r)
            } else {
                JobState::Failed
            }
        }
        (Some(r), _, _) => from_record(r),
        (None, Some(s), _) => s.state,
        (None, None, _) => JobState::Failed,
    }
}

/// A failure kept in a record, as the API's error body.
fn failure_error(f: &crate::registry::Failure) -> ApiError {
    let code =
        crate::error::ExitCode::from_code(f.exit_code).unwrap_or(crate::error::ExitCode::Internal);
    let (status, reason) = super::error::status_of(code);
    ApiError::new(status, reason, f.message.clone())
        .with("exit_code", f.exit_code.to_string())
        .with("operation", f.operation.clone())
        .with("at", f.at.clone())
}

fn newer(a: &str, b: &str) -> bool {
    use k8s_openapi::jiff::Timestamp;
    match (a.parse::<Timestamp>(), b.parse::<Timestamp>()) {
        (Ok(a), Ok(b)) => a > b,
        _ => false,
    }
}

fn category_key(camel: &str) -> Option<&'static str> {
    Some(match camel {
        "multiTenant" => "multi_tenant",
        "secretSync" => "secret_sync",
        "gateway" => "gateway",
        "deployment" => "deployment",
        "progressiveDelivery" => "progressive_delivery",
        "pipeline" => "pipeline",
        "eventListener" => "event_listener",
        _ => return None,
    })
}

/// The components of a spec, as upstream lists them (defaults filled in).
fn components_of(spec: &ClusterSpec) -> ComponentsList {
    let mut list = ComponentsList::default();
    let Ok(catalog) = crate::plan::Catalog::builtin() else {
        return list;
    };
    let Ok(plan) = crate::plan::plan(spec, &catalog) else {
        return list;
    };
    for stage in &plan.stages {
        if stage.target == crate::plan::Target::VirtualHost {
            continue;
        }
        for c in &stage.components {
            let Some(key) = category_key(&c.category) else {
                continue;
            };
            let mut additions = c.additions.clone();
            match key {
                "gateway" => {
                    if let Some(t) = &spec.traefik {
                        additions
                            .entry("httpNodePort".into())
                            .or_insert_with(|| t.http_node_port.to_string());
                        additions
                            .entry("httpsNodePort".into())
                            .or_insert_with(|| t.https_node_port.to_string());
                    }
                }
                "deployment" => {
                    if let Some(h) = &spec.argocd_host {
                        additions.entry("host".into()).or_insert_with(|| h.clone());
                    }
                }
                _ => {}
            }
            let comp = Some(Component {
                name: c.name.clone(),
                namespace: c.namespace.clone(),
                additions,
            });
            match key {
                "multi_tenant" => list.multi_tenant = comp,
                "secret_sync" => list.secret_sync = comp,
                "gateway" => list.gateway = comp,
                "deployment" => list.deployment = comp,
                "progressive_delivery" => list.progressive_delivery = comp,
                "pipeline" => list.pipeline = comp,
                _ => list.event_listener = comp,
            }
        }
    }
    list
}

fn reply(
    spec: &ClusterSpec,
    record: Option<&Record>,
    snap: Option<&Snapshot>,
    job: Option<&Job>,
) -> ClusterReply {
    let state = state_of(record, snap, job);
    ClusterReply {
        name: spec.name.clone(),
        cluster_kind: spec.cluster_kind.clone(),
        cluster_type: match spec.cluster_type {
            ClusterType::Physical => "physical",
            ClusterType::Virtual => "virtual",
        }
        .into(),
        usage: match spec.usage {
            Usage::Worker => "worker",
            Usage::Host => "host",
        }
        .into(),
        host_cluster: spec.host_cluster.clone().unwrap_or_default(),
        primary_domain: spec.primary_domain.clone(),
        worker_type: match spec.worker_type {
            Some(WorkerType::Deployment) => "deployment",
            Some(WorkerType::Pipeline) => "pipeline",
            None => "",
        }
        .into(),
        api_server: spec.api_server.clone(),
        components_list: components_of(spec),
        reserved_namespaces_allowed_products: spec.reserved_namespaces_allowed_products.clone(),
        product_allowed_cluster_resources: spec
            .product_allowed_cluster_resources
            .iter()
            .map(|(product, rs)| {
                (
                    product.clone(),
                    rs.iter()
                        .map(|r| ClusterResource {
                            kind: r.kind.clone(),
                            group: r.group.clone(),
                        })
                        .collect(),
                )
            })
            .collect(),
        state,
        phase: match snap {
            Some(s) if !s.done => s.phase.clone(),
            _ => String::new(),
        },
        last_error: match snap {
            // this replica ran it and it failed after the record was written
            Some(s) if state == JobState::Failed && s.error.is_some() => s.error.clone(),
            // a running job has no last error yet
            Some(s) if !s.done => None,
            _ => record
                .and_then(|r| r.last_failure.as_ref())
                .map(failure_error),
        },
        registered_at: record.map(|r| r.registered_at.clone()).unwrap_or_default(),
        updated_at: record.map(|r| r.updated_at.clone()).unwrap_or_default(),
    }
}

fn matches(item: &ClusterReply, s: &Selector) -> bool {
    match s.key.as_str() {
        "cluster_type" => item.cluster_type == s.value,
        "usage" => item.usage == s.value,
        "worker_type" => item.worker_type == s.value,
        "cluster_name" => item.name.contains(&s.value),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_openapi_document_has_every_route_and_the_bearer_scheme() {
        let doc = serde_json::to_value(ApiDoc::openapi()).expect("json");
        let paths = doc["paths"].as_object().expect("paths");
        for p in [
            "/api/v1/clusters/{cluster_name}",
            "/api/v1/clusters",
            "/api/v1/clusters/{cluster_name}/events",
        ] {
            assert!(paths.contains_key(p), "{p} missing: {:?}", paths.keys());
        }
        let one = &doc["paths"]["/api/v1/clusters/{cluster_name}"];
        for m in ["post", "delete", "get"] {
            assert!(one.get(m).is_some(), "{m} missing");
        }
        assert_eq!(
            doc["components"]["securitySchemes"]["bearer"]["scheme"],
            "bearer"
        );
        assert_eq!(doc["info"]["title"], TAG);
    }

    #[test]
    fn upstream_reply_keys_are_all_present() {
        let spec = crate::spec::parse(
            "t",
            r#"{"name": "w", "api_server": "https://10.0.0.5:6443", "cluster_type": "physical", "usage": "worker",
                "kubeconfig": "{\"apiVersion\":\"v1\",\"kind\":\"Config\",\"clusters\":[{\"name\":\"c\",\"cluster\":{\"server\":\"https://x:1\"}}],\"users\":[{\"name\":\"u\",\"user\":{\"token\":\"t\"}}]}"}"#,
            None,
        )
        .expect("spec");
        let v = serde_json::to_value(reply(&spec, None, None, None)).expect("json");
        for k in [
            "name",
            "cluster_kind",
            "cluster_type",
            "usage",
            "host_cluster",
            "primary_domain",
            "worker_type",
            "api_server",
            "components_list",
            "reserved_namespaces_allowed_products",
            "product_allowed_cluster_resources",
            "state",
            "phase",
            "last_error",
        ] {
            assert!(v.get(k).is_some(), "{k} missing in {v}");
        }
        assert_eq!(
            v["components_list"]["gateway"]["additions"]["httpNodePort"],
            "30080"
        );
        assert_eq!(v["components_list"]["multi_tenant"]["name"], "hnc");
        assert!(v["components_list"]["pipeline"].is_null());
        assert!(!v.to_string().contains("kubeconfig"));
    }

    #[test]
    fn a_failure_kept_in_the_record_is_failed_with_its_error_on_any_replica() {
        let spec = crate::spec::parse(
            "t",
            r#"{"name": "w", "api_server": "https://10.0.0.5:31443", "cluster_type": "virtual", "usage": "worker", "host_cluster": "h"}"#,
            None,
        )
        .expect("spec");
        let mut record = Record {
            name: "w".into(),
            kind: "virtual worker".into(),
            state: RecordState::Registering,
            spec: spec.clone(),
            registered_at: "2026-12-03T10:00:00Z".into(),
            updated_at: "2026-12-03T10:00:00Z".into(),
            plugin_version: "0".into(),
            components: Vec::new(),
            last_failure: None,
        };
        // still running somewhere (or killed): Registering, no error
        let v = serde_json::to_value(reply(&spec, Some(&record), None, None)).expect("json");
        assert_eq!(v["state"], "Registering");
        assert!(v["last_error"].is_null());
        record.last_failure = Some(crate::registry::Failure {
            operation: "register".into(),
            at: "2026-12-03T10:01:00Z".into(),
            exit_code: 6,
            message: "not ready".into(),
        });
        let v = serde_json::to_value(reply(&spec, Some(&record), None, None)).expect("json");
        assert_eq!(v["state"], "Failed", "{v}");
        assert_eq!(v["last_error"]["code"], 504, "{v}");
        assert_eq!(v["last_error"]["reason"], "NOT_READY", "{v}");
        assert_eq!(v["last_error"]["message"], "not ready", "{v}");
        // a registered cluster whose re-register failed stays Registered and
        // says what failed
        record.state = RecordState::Registered;
        let v = serde_json::to_value(reply(&spec, Some(&record), None, None)).expect("json");
        assert_eq!(v["state"], "Registered", "{v}");
        assert_eq!(v["last_error"]["metadata"]["operation"], "register", "{v}");
        assert_eq!(record.shown_state(), "Registered");
        record.state = RecordState::Destroying;
        assert_eq!(record.shown_state(), "Failed");
    }
}
