//! Prometheus metrics: requests by route, method and code; registrations
//! and destroys by result, with their durations.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub route: String,
    pub method: String,
    pub code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct JobLabels {
    /// register or destroy
    pub operation: String,
    /// succeeded, or the reason of the failure (CONFLICT, NOT_READY, ...)
    pub result: String,
}

pub struct Metrics {
    registry: Registry,
    pub requests: Family<RequestLabels, Counter>,
    pub request_seconds: Family<RouteLabels, Histogram>,
    pub jobs: Family<JobLabels, Counter>,
    pub job_seconds: Family<JobLabels, Histogram>,
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("nautes");
        let requests = Family::<RequestLabels, Counter>::default();
        let request_seconds = Family::<RouteLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.001, 2.0, 16))
        });
        let jobs = Family::<JobLabels, Counter>::default();
        let job_seconds = Family::<JobLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.5, 2.0, 12))
        });
        registry.register(
            "http_requests",
            "HTTP requests by route, method and status code",
            requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "HTTP request durations by route",
            request_seconds.clone(),
        );
        registry.register(
            "registrations",
            "Registrations and destroys run by this server, by result",
            jobs.clone(),
        );
        registry.register(
            "registration_duration_seconds",
            "Durations of registrations and destroys, by result",
            job_seconds.clone(),
        );
        Self {
            registry,
            requests,
            request_seconds,
            jobs,
            job_seconds,
        }
    }

    /// The text exposition format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
