//! The JSON error of the API, `{code, reason, message, metadata}`, as
//! upstream Nautes answers it, and how the plugin's errors map to it.

use std::collections::BTreeMap;

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::{Error, ExitCode};

/// An error reply. `code` is the HTTP status.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ApiError {
    /// The HTTP status.
    #[schema(example = 400)]
    pub code: u16,
    /// UPPER_SNAKE: CODEC, VALIDATOR, UNAUTHENTICATED, NO_AUTHORIZATION,
    /// CLUSTER_NOT_FOUND, CONFLICT, ...
    #[schema(example = "VALIDATOR")]
    pub reason: String,
    /// What is wrong and what would be valid.
    pub message: String,
    /// Details; for VALIDATOR, one key per field path with its problem.
    pub metadata: BTreeMap<String, String>,
}

impl ApiError {
    pub fn new(status: StatusCode, reason: &str, message: impl Into<String>) -> Self {
        Self {
            code: status.as_u16(),
            reason: reason.to_string(),
            message: message.into(),
            metadata: BTreeMap::new(),
        }
    }

    pub fn with(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.metadata.insert(key.into(), value.into());
        self
    }

    pub fn codec(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "CODEC", message)
    }

    pub fn validator(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "VALIDATOR", message)
    }

    pub fn not_found(name: &str, namespace: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "CLUSTER_NOT_FOUND",
            format!("cluster {name} is not registered (namespace {namespace})"),
        )
        .with("cluster_name", name)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL", message)
    }

    pub fn status(&self) -> StatusCode {
        StatusCode::from_u16(self.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }
}

/// The HTTP status and reason of each exit code (the README's table).
pub fn status_of(code: ExitCode) -> (StatusCode, &'static str) {
    match code {
        ExitCode::Ok => (StatusCode::OK, ""),
        ExitCode::Internal => (StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL"),
        ExitCode::Invalid => (StatusCode::BAD_REQUEST, "VALIDATOR"),
        ExitCode::Refused => (StatusCode::CONFLICT, "CONFLICT"),
        ExitCode::Forbidden => (StatusCode::FORBIDDEN, "PERMISSION_MISSING"),
        ExitCode::Unreachable => (StatusCode::BAD_GATEWAY, "UNREACHABLE"),
        ExitCode::Timeout => (StatusCode::GATEWAY_TIMEOUT, "NOT_READY"),
        ExitCode::ApiFailed => (StatusCode::UNPROCESSABLE_ENTITY, "API_REJECTED"),
        ExitCode::Missing => (StatusCode::SERVICE_UNAVAILABLE, "TOOL_MISSING"),
        ExitCode::Interrupted => (StatusCode::SERVICE_UNAVAILABLE, "INTERRUPTED"),
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        let (status, reason) = status_of(e.code);
        ApiError::new(status, reason, e.message).with("exit_code", (e.code as u8).to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status(), Json(self)).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_exit_code_but_internal_maps_to_a_status_other_than_500() {
        for code in [
            ExitCode::Invalid,
            ExitCode::Refused,
            ExitCode::Forbidden,
            ExitCode::Unreachable,
            ExitCode::Timeout,
            ExitCode::ApiFailed,
            ExitCode::Missing,
            ExitCode::Interrupted,
        ] {
            let (s, reason) = status_of(code);
            assert_ne!(s, StatusCode::INTERNAL_SERVER_ERROR, "{code:?}");
            assert!(!reason.is_empty());
        }
        assert_eq!(status_of(ExitCode::Refused).0, StatusCode::CONFLICT);
        assert_eq!(status_of(ExitCode::Invalid).0, StatusCode::BAD_REQUEST);
    }
}
