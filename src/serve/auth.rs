//! Authentication and authorisation against the management cluster: the
//! bearer token goes to a TokenReview, the user it names to a
//! SubjectAccessReview on `clusters.nautes.io` in the registry namespace.

use axum::http::{HeaderMap, StatusCode};
use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use kube::Api;
use kube::api::PostParams;

use super::error::ApiError;
use crate::k8s::Cluster;

pub const GROUP: &str = "nautes.io";
pub const RESOURCE: &str = "clusters";

/// Who a request comes from, as the management cluster knows them.
#[derive(Debug, Clone)]
pub struct User {
    pub name: String,
    pub uid: Option<String>,
    pub groups: Vec<String>,
    pub extra: std::collections::BTreeMap<String, Vec<String>>,
}

/// The token of `Authorization: Bearer <token>` (a bare token too).
pub fn bearer(headers: &HeaderMap) -> Option<String> {
    let v = headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let v = v.trim();
    let token = match v.split_once(' ') {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("bearer") => rest.trim(),
        _ if v.eq_ignore_ascii_case("bearer") => "",
        _ => v,
    };
    (!token.is_empty()).then(|| token.to_string())
}

/// Checks the token with a TokenReview.
pub async fn authenticate(mgmt: &Cluster, headers: &HeaderMap) -> Result<User, ApiError> {
    let Some(token) = bearer(headers) else {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "UNAUTHENTICATED",
            "no token; valid: the header Authorization: Bearer <a token of the management cluster>",
        ));
    };
    let api: Api<TokenReview> = Api::all(mgmt.client.clone());
    let review = TokenReview {
        spec: TokenReviewSpec {
            token,
            audiences: None,
        },
        ..Default::default()
    };
    let r = api
        .create(&PostParams::default(), &review)
        .await
        .map_err(|e| unavailable("TokenReview", mgmt.err(e)))?;
    let status = r.status.unwrap_or_default();
    match (status.authenticated, status.user) {
        (Some(true), Some(u)) => Ok(User {
            name: u.username.unwrap_or_default(),
            uid: u.uid,
            groups: u.groups.unwrap_or_default(),
            extra: u.extra.unwrap_or_default(),
        }),
        _ => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "UNAUTHENTICATED",
            "the token was not accepted by the management cluster",
        )),
    }
}

/// Checks with a SubjectAccessReview that `user` may `verb` the cluster
/// `name` (None: the collection) in `namespace`.
pub async fn authorize(
    mgmt: &Cluster,
    user: &User,
    verb: &str,
    namespace: &str,
    name: Option<&str>,
) -> Result<(), ApiError> {
    let api: Api<SubjectAccessReview> = Api::all(mgmt.client.clone());
    let review = SubjectAccessReview {
        spec: SubjectAccessReviewSpec {
            user: Some(user.name.clone()),
            uid: user.uid.clone(),
            groups: Some(user.groups.clone()),
            extra: Some(user.extra.clone()),
            resource_attributes: Some(ResourceAttributes {
                verb: Some(verb.to_string()),
                group: Some(GROUP.to_string()),
                resource: Some(RESOURCE.to_string()),
                namespace: Some(namespace.to_string()),
                name: name.map(str::to_string),
                ..Default::default()
            }),
            ..Default::default()
        },
        ..Default::default()
    };
    let r = api
        .create(&PostParams::default(), &review)
        .await
        .map_err(|e| unavailable("SubjectAccessReview", mgmt.err(e)))?;
    if r.status.is_some_and(|s| s.allowed) {
        return Ok(());
    }
    let what = match name {
        Some(n) => format!("{RESOURCE}.{GROUP} {n}"),
        None => format!("{RESOURCE}.{GROUP}"),
    };
    Err(ApiError::new(
        StatusCode::FORBIDDEN,
        "NO_AUTHORIZATION",
        format!(
            "user {} may not {verb} {what} in namespace {namespace} (the management cluster's RBAC decides)",
            user.name
        ),
    )
    .with("verb", verb)
    .with("resource", format!("{RESOURCE}.{GROUP}")))
}

fn unavailable(what: &str, e: crate::error::Error) -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "AUTH_UNAVAILABLE",
        format!("the {what} could not be made: {}", e.message),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_and_bare_tokens() {
        let mut h = HeaderMap::new();
        assert_eq!(bearer(&h), None);
        h.insert("authorization", "Bearer abc".parse().expect("header"));
        assert_eq!(bearer(&h).as_deref(), Some("abc"));
        h.insert("authorization", "bearer   abc ".parse().expect("header"));
        assert_eq!(bearer(&h).as_deref(), Some("abc"));
        h.insert("authorization", "abc".parse().expect("header"));
        assert_eq!(bearer(&h).as_deref(), Some("abc"));
        h.insert("authorization", "Bearer ".parse().expect("header"));
        assert_eq!(bearer(&h), None);
    }
}
