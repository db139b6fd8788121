//! `kubectl nautes serve`: the Nautes cluster API over HTTP(S), running the
//! same register and destroy pipelines as the command line, compatible
//! with upstream Nautes v0.4's cluster service (see API.md of the design).
//!
//! Every API route authenticates the bearer token with a TokenReview and
//! authorises with a SubjectAccessReview before anything else happens.
//! Registrations run in the background under the cluster's Lease (the same
//! one the command line takes), so the two exclude each other.

pub mod api;
pub mod auth;
pub mod body;
pub mod error;
pub mod jobs;
pub mod metrics;
pub mod takeover;
pub mod tls;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;
use tokio::sync::Semaphore;
use utoipa::OpenApi;
use utoipa_swagger_ui::{SwaggerUi, Url};

use crate::cli::{Global, ServeArgs};
use crate::error::{Error, Result};
use crate::k8s::Cluster;
use crate::registry::Registry;
use error::ApiError;
use jobs::Job;
use metrics::{Metrics, RequestLabels, RouteLabels};

/// What every request shares.
pub struct AppState {
    pub global: Global,
    pub args: ServeArgs,
    /// The management cluster, with the server's own credential.
    pub mgmt: Cluster,
    pub namespace: String,
    pub jobs: Mutex<HashMap<String, Arc<Job>>>,
    pub slots: Arc<Semaphore>,
    pub metrics: Metrics,
    pub ready: AtomicBool,
}

impl AppState {
    pub fn registry(&self) -> Registry {
        Registry::new(self.mgmt.clone(), &self.namespace)
    }

    pub fn job(&self, name: &str) -> Option<Arc<Job>> {
        self.jobs.lock().ok().and_then(|j| j.get(name).cloned())
    }
}

/// Who a request came from, filled in by the route once the token is
/// reviewed; read by the access log.
#[derive(Clone, Default)]
pub struct WhoSlot(pub Arc<Mutex<Option<String>>>);

/// The router with every route, for a state.
pub fn router(state: Arc<AppState>) -> Router {
    let swagger = SwaggerUi::new("/q/swagger-ui").url(
        Url::new(api::TAG, "/q/openapi.json"),
        api::ApiDoc::openapi(),
    );
    Router::new()
        .route(
            "/api/v1/clusters/{cluster_name}",
            get(api::get_cluster)
                .post(api::save_cluster)
                .delete(api::delete_cluster),
        )
        .route("/api/v1/clusters", get(api::list_clusters))
        .route("/api/v1/clusters/", get(api::list_clusters))
        .route(
            "/api/v1/clusters/{cluster_name}/events",
            get(api::cluster_events),
        )
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .merge(swagger)
        .fallback(|| async {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "NOT_FOUND",
                "no such route; the API is under /api/v1/clusters, its document at /q/openapi.json",
            )
        })
        .layer(axum::middleware::from_fn_with_state(state.clone(), access))
        .with_state(state)
}

async fn readyz(State(st): State<Arc<AppState>>) -> Response {
    if st.ready.load(Ordering::Relaxed) {
        "ok\n".into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "the management cluster is not reachable\n",
        )
            .into_response()
    }
}

async fn metrics_text(State(st): State<Arc<AppState>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        st.metrics.encode(),
    )
        .into_response()
}

/// The route label of a path (bounded: never the cluster's name).
fn route_of(path: &str) -> (&'static str, Option<String>) {
    if let Some(rest) = path.strip_prefix("/api/v1/clusters/") {
        if rest.is_empty() {
            return ("/api/v1/clusters/", None);
        }
        return match rest.split_once('/') {
            Some((name, "events")) => (
                "/api/v1/clusters/{cluster_name}/events",
                Some(name.to_string()),
            ),
            None => ("/api/v1/clusters/{cluster_name}", Some(rest.to_string())),
            Some(_) => ("other", None),
        };
    }
    let route = match path {
        "/api/v1/clusters" => "/api/v1/clusters",
        "/healthz" => "/healthz",
        "/readyz" => "/readyz",
        "/metrics" => "/metrics",
        "/q/openapi.json" => "/q/openapi.json",
        p if p.starts_with("/q/swagger-ui") => "/q/swagger-ui",
        _ => "other",
    };
    (route, None)
}

/// One structured access log line per request on stderr (who, route,
/// cluster, status, duration; never a header or body), the request
/// metrics, and the per-request timeout of routes that do not wait.
async fn access(State(st): State<Arc<AppState>>, mut req: Request, next: Next) -> Response {
    let t0 = Instant::now();
    let method = req.method().clone();
    let (route, cluster) = route_of(req.uri().path());
    let waits = req.uri().query().is_some_and(|q| {
        q.split('&')
            .any(|kv| kv == "wait=true" || kv == "wait=1" || kv == "wait")
    });
    let slot = WhoSlot::default();
    req.extensions_mut().insert(slot.clone());
    let long = route.ends_with("/events")
        || (waits && (method == Method::POST || method == Method::DELETE))
        || route == "/q/swagger-ui";
    let resp = if long {
        next.run(req).await
    } else {
        // POST and DELETE answer 202 on their own when acceptance takes
        // longer than this; the margin lets them
        let limit = st.global.request_timeout + Duration::from_secs(5);
        match tokio::time::timeout(limit, next.run(req)).await {
            Ok(r) => r,
            Err(_) => ApiError::new(
                StatusCode::GATEWAY_TIMEOUT,
                "TIMEOUT",
                format!(
                    "the request took longer than {}s (--request-timeout)",
                    limit.as_secs()
                ),
            )
            .into_response(),
        }
    };
    let status = resp.status().as_u16();
    let elapsed = t0.elapsed();
    st.metrics
        .requests
        .get_or_create(&RequestLabels {
            route: route.into(),
            method: method.to_string(),
            code: status.to_string(),
        })
        .inc();
    st.metrics
        .request_seconds
        .get_or_create(&RouteLabels {
            route: route.into(),
        })
        .observe(elapsed.as_secs_f64());
    if route != "/healthz" && route != "/readyz" && route != "/metrics" {
        let who = slot.0.lock().ok().and_then(|w| w.clone());
        eprintln!(
            "{}",
            json!({
                "time": crate::registry::now(),
                "msg": "access",
                "who": who,
                "method": method.as_str(),
                "route": route,
                "cluster": cluster,
                "status": status,
                "duration_ms": (elapsed.as_secs_f64() * 1000.0 * 10.0).round() / 10.0,
            })
        );
    }
    resp
}

/// Runs the server until the process is stopped.
pub async fn run(global: &Global, args: &ServeArgs) -> Result<()> {
    let tls = match (&args.tls_cert_file, &args.tls_private_key_file) {
        (Some(c), Some(k)) => Some(tls::config(c, k)?),
        _ if args.insecure_plain_http => None,
        _ => {
            return Err(Error::invalid(
                "serve needs --tls-cert-file and --tls-private-key-file, or --insecure-plain-http to serve plain HTTP (tokens would cross the network in clear)",
            ));
        }
    };
    if args.max_concurrent_registrations == 0 {
        return Err(Error::invalid(
            "--max-concurrent-registrations: 0; valid: at least 1",
        ));
    }
    // helm is needed by every register: fail at start, not at the first POST
    crate::render::find_helm(args.charts.helm.as_deref())?;
    let connect = crate::k8s::ConnectOptions {
        insecure_skip_tls_verify: global.insecure_skip_tls_verify,
        request_timeout: global.request_timeout,
        // the server's own reads; each job's clients carry its locks
        fence: 0,
    };
    let mgmt = Cluster::management(
        global.kubeconfig.as_deref(),
        global.context.as_deref(),
        connect,
    )
    .await?;
    let version = mgmt.version().await?;
    let state = Arc::new(AppState {
        global: global.clone(),
        args: args.clone(),
        mgmt: mgmt.clone(),
        namespace: global.registry_namespace.clone(),
        jobs: Mutex::new(HashMap::new()),
        slots: Arc::new(Semaphore::new(args.max_concurrent_registrations)),
        metrics: Metrics::new(),
        ready: AtomicBool::new(true),
    });
    // readiness follows the management cluster
    {
        let st = state.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(10)).await;
                let ok = tokio::time::timeout(Duration::from_secs(5), st.mgmt.version())
                    .await
                    .is_ok_and(|r| r.is_ok());
                st.ready.store(ok, Ordering::Relaxed);
            }
        });
    }
    takeover::spawn(state.clone());
    let app = router(state);
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .map_err(|e| Error::invalid(format!("--listen {}: cannot listen: {e}", args.listen)))?;
    let local = listener.local_addr()?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    eprintln!(
        "{}",
        json!({
            "time": crate::registry::now(),
            "msg": "serving",
            "url": format!("{scheme}://{local}"),
            "management": mgmt.server,
            "kubernetes": version,
            "registry_namespace": global.registry_namespace,
            "tls": tls.is_some(),
        })
    );
    match tls {
        Some(config) => {
            let l = tls::TlsListener::new(listener, config)?;
            axum::serve(l, app).await?;
        }
        None => axum::serve(listener, app).await?,
    }
    Ok(())
}
