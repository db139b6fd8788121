//! The last-moment fence: a layer in every client's HTTP stack that holds
//! back a write request when the command's lock was lost or has gone
//! unconfirmed for a lease duration, right before it is sent. The fence at
//! the top of `retry` covers the time before a request is built; this one
//! covers the time between that check and the socket (a process paused
//! there, by SIGSTOP or a busy machine, would otherwise send a write after
//! another run took its lock). Reads, and the Lease requests that renew and
//! confirm the lock, always go.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use tower::BoxError;

/// Why a request was held back: it was never sent.
#[derive(Debug)]
pub struct FencedOut(pub String);

impl std::fmt::Display for FencedOut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for FencedOut {}

/// The layer, for the locks numbered `.0` (0: none).
#[derive(Clone, Copy)]
pub struct FenceLayer(pub u64);

impl<S> tower::Layer<S> for FenceLayer {
    type Service = Fence<S>;
    fn layer(&self, inner: S) -> Fence<S> {
        Fence {
            inner,
            locks: self.0,
        }
    }
}

#[derive(Clone)]
pub struct Fence<S> {
    inner: S,
    locks: u64,
}

/// Whether a request changes something that the lock protects.
fn fenced(method: &http::Method, path: &str) -> bool {
    !matches!(
        *method,
        http::Method::GET | http::Method::HEAD | http::Method::OPTIONS
    ) && !path.starts_with("/apis/coordination.k8s.io/")
}

impl<S, B> tower::Service<http::Request<B>> for Fence<S>
where
    S: tower::Service<http::Request<B>>,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        if self.locks != 0
            && fenced(req.method(), req.uri().path())
            && let Some(why) = crate::registry::fenced_out(self.locks)
        {
            return Box::pin(async move { Err(Box::new(FencedOut(why)) as BoxError) });
        }
        // checked again when the request's future is first polled, in the
        // caller's task, right before the HTTP client checks out a
        // connection and writes: the future is lazy until then
        let check = self.locks != 0 && fenced(req.method(), req.uri().path());
        let locks = self.locks;
        let f = self.inner.call(req);
        Box::pin(async move {
            if check && let Some(why) = crate::registry::fenced_out(locks) {
                return Err(Box::new(FencedOut(why)) as BoxError);
            }
            f.await.map_err(Into::into)
        })
    }
}

/// The reason a request was held back, if it was.
pub fn fenced_out_of(e: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(f) = err.downcast_ref::<FencedOut>() {
            return Some(f.0.clone());
        }
        cur = err.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::fenced;

    #[test]
    fn writes_are_fenced_reads_and_the_lease_are_not() {
        assert!(fenced(&http::Method::PATCH, "/api/v1/namespaces/x"));
        assert!(fenced(
            &http::Method::POST,
            "/apis/apps/v1/namespaces/a/deployments"
        ));
        assert!(fenced(&http::Method::DELETE, "/api/v1/namespaces/x"));
        assert!(!fenced(&http::Method::GET, "/api/v1/namespaces/x"));
        assert!(!fenced(
            &http::Method::PUT,
            "/apis/coordination.k8s.io/v1/namespaces/nautes/leases/lock-a"
        ));
    }
}
