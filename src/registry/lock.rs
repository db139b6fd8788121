//! The per-cluster lock: Lease `<registry namespace>/lock-<name>`, held
//! while a command changes a cluster, so a second run fails at once naming
//! the holder. It follows Kubernetes leader election:
//!
//! - a Lease that looks expired by the clocks is taken over only after this
//!   process has watched it stay unchanged for its whole duration (clocks of
//!   two machines are never compared to decide);
//! - renewals and the release carry the resourceVersion this process last
//!   wrote, so they never touch a Lease another run has taken;
//! - every request of a command holding locks first checks them (the fence):
//!   a lock whose renewal is overdue is renewed on the spot, and a run that
//!   lost its lock stops before its next request ("lock lost", exit 3).
//!
//! A renewal that fails because the management cluster does not answer
//! (connection refused, a timeout, 5xx, 429) is retried; the lock is lost
//! only when the Lease is seen taken (another holder's write, or deleted).
//! While the last successful renewal is less than the lease duration old,
//! requests go on. Once it is older, another run could have taken the
//! Lease meanwhile, so every request waits in the fence, renewing, until a
//! renewal succeeds (its resourceVersion precondition proves nobody wrote
//! the Lease since: the run goes on), the Lease is seen taken ("lock lost",
//! exit 3), or the command's --timeout passes ("lock not confirmed", exit
//! 5). A management API server down for longer than the lease duration thus
//! pauses a run instead of failing it; no request is made without the lock
//! being confirmed.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::{DeleteParams, PostParams, Preconditions};

use super::Registry;
use crate::error::{Error, Result};
use crate::k8s::{Cluster, retry};
use crate::render::{MANAGED_BY, MANAGER};

impl Registry {
    /// Takes the lock of a cluster name: a Lease in the registry namespace.
    /// It is recorded in `held`, so an interrupted command can release it.
    pub async fn lock(&self, name: &str, held: &Locks) -> Result<Lock> {
        let hold = Hold::acquire(self.cluster.clone(), &self.namespace, name).await?;
        held.add(hold.clone());
        let renew = tokio::spawn({
            let hold = hold.clone();
            async move {
                loop {
                    tokio::time::sleep(RENEW_EVERY).await;
                    if hold.renew().await == Renewal::Lost {
                        return;
                    }
                }
            }
        });
        Ok(Lock {
            hold,
            renew,
            held: held.clone(),
        })
    }
}

/// A held lock; renewed in the background until released.
pub struct Lock {
    hold: Arc<Hold>,
    renew: tokio::task::JoinHandle<()>,
    held: Locks,
}

pub const LEASE_SECONDS: i32 = 15;
const LEASE: Duration = Duration::from_secs(LEASE_SECONDS as u64);
const RENEW_EVERY: Duration = Duration::from_secs(5);
/// A renewal older than this is redone before the next request.
const RENEW_BEFORE: Duration = Duration::from_secs(10);
/// The longest pause between two renewals while the fence waits for one.
const CONFIRM_EVERY: Duration = Duration::from_secs(1);

/// What one renewal found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Renewal {
    /// Written: the Lease is this run's for another lease duration.
    Renewed,
    /// The management cluster did not answer (or failed): try again.
    Failed,
    /// Taken by another run, or deleted: this run must stop.
    Lost,
}

/// What a holder knows of its Lease.
struct Hold {
    cluster: Cluster,
    namespace: String,
    name: String,
    /// This run's holder identity.
    me: String,
    /// The resourceVersion of this run's last write of the Lease.
    rv: Mutex<String>,
    /// When that write succeeded, by this process's clock.
    renewed: Mutex<Instant>,
    lost: AtomicBool,
    /// Serializes renewals (background and fence).
    renewing: tokio::sync::Mutex<()>,
}

/// The locks a command holds: released when it is interrupted (SIGINT,
/// SIGTERM) instead of left to expire, and checked before every request it
/// makes (see `fence`). Owned by the command's context; cloning shares it.
#[derive(Clone)]
pub struct Locks {
    held: Arc<Mutex<Vec<Arc<Hold>>>>,
    /// This value's number in [`LOCKS`], which the clients of its command
    /// carry (see `ConnectOptions::fence`).
    id: u64,
}

impl Default for Locks {
    fn default() -> Self {
        let held = Arc::new(Mutex::new(Vec::new()));
        let id = NEXT_LOCKS.fetch_add(1, Ordering::SeqCst);
        if let Ok(mut all) = LOCKS.lock() {
            all.retain(|_, w| w.strong_count() > 0);
            all.insert(id, Arc::downgrade(&held));
        }
        Self { held, id }
    }
}

static NEXT_LOCKS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// Every command's locks by number, for the fence in the HTTP stack of its
/// clients, which runs in kube's own task (no task-local reaches it).
static LOCKS: std::sync::LazyLock<Mutex<BTreeMap<u64, std::sync::Weak<Held>>>> =
    std::sync::LazyLock::new(|| Mutex::new(BTreeMap::new()));

/// The locks one command holds.
type Held = Mutex<Vec<Arc<Hold>>>;

/// The last-moment fence, checked synchronously by every client of a
/// command right before a write request is sent (see `k8s::fence`): why
/// the request must not go, if a lock of command `id` was lost or has not
/// been confirmed for a whole lease duration (the process was paused).
pub fn fenced_out(id: u64) -> Option<String> {
    let held = LOCKS.lock().ok()?.get(&id)?.upgrade()?;
    let holds = held.lock().map(|h| h.clone()).unwrap_or_default();
    for hold in holds {
        if hold.lost.load(Ordering::SeqCst) {
            return Some(format!(
                "lock lost: Lease {}/{} was taken over by another run while this one was not renewing it; this run stopped before its next write, run it again",
                hold.namespace, hold.name
            ));
        }
        if hold.since_renewed() >= LEASE {
            return Some(format!(
                "lock not confirmed: Lease {}/{} was not renewed for {}s; the write was held back until it is",
                hold.namespace, hold.name, LEASE_SECONDS
            ));
        }
    }
    None
}

impl Locks {
    fn add(&self, hold: Arc<Hold>) {
        if let Ok(mut h) = self.held.lock() {
            h.push(hold);
        }
    }

    fn remove(&self, hold: &Arc<Hold>) {
        if let Ok(mut h) = self.held.lock() {
            h.retain(|x| !Arc::ptr_eq(x, hold));
        }
    }

    /// The number the clients of this command carry (see [`fenced_out`]).
    pub fn id(&self) -> u64 {
        self.id
    }

    fn all(&self) -> Vec<Arc<Hold>> {
        self.held.lock().map(|h| h.clone()).unwrap_or_default()
    }

    /// Releases every lock still held.
    pub async fn release_all(&self) {
        let held: Vec<Arc<Hold>> = self
            .held
            .lock()
            .map(|mut h| std::mem::take(&mut *h))
            .unwrap_or_default();
        for hold in held {
            hold.release().await;
        }
    }

    /// Runs a command's work with these locks as its fence.
    pub async fn fenced<T>(&self, work: impl std::future::Future<Output = T>) -> T {
        FENCE.scope(self.clone(), work).await
    }
}

tokio::task_local! {
    /// The locks of the command running in this task (set by `Locks::fenced`).
    static FENCE: Locks;
}

/// The fence, called before every request (`k8s::retry`): fails when a lock
/// of the running command was lost, renewing first a lock whose renewal is
/// overdue (after the process was paused, the machine was busy, or the
/// management cluster did not answer). A lock not renewed for a whole lease
/// duration is renewed before the request is let through, retrying until
/// the command's deadline.
pub async fn fence() -> std::result::Result<(), kube::Error> {
    let Ok(holds) = FENCE.try_with(Locks::all) else {
        return Ok(());
    };
    for hold in holds {
        if !hold.lost.load(Ordering::SeqCst) && hold.since_renewed() > RENEW_BEFORE {
            hold.renew().await;
        }
        if !hold.lost.load(Ordering::SeqCst) && hold.since_renewed() >= LEASE {
            hold.confirm().await?;
        }
        if hold.lost.load(Ordering::SeqCst) {
            return Err(kube::Error::Api(Box::new(kube::core::Status {
                code: 409,
                reason: LOCK_LOST.into(),
                message: format!(
                    "lock lost: Lease {}/{} was taken over by another run while this one was not renewing it; this run stopped before its next request, run it again",
                    hold.namespace, hold.name
                ),
                ..Default::default()
            })));
        }
    }
    Ok(())
}

/// The reason of the error `fence` returns when the lock was lost.
pub const LOCK_LOST: &str = "NautesLockLost";
/// The reason of the error `fence` returns when the lock could not be
/// renewed before the command's deadline.
pub const LOCK_UNCONFIRMED: &str = "NautesLockUnconfirmed";

fn holder() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|s| s.trim().to_string())
        })
        .unwrap_or_else(|| "unknown-host".into());
    let user = std::env::var("USER").unwrap_or_else(|_| "unknown-user".into());
    format!("{user}@{host} pid {}", std::process::id())
}

impl Hold {
    fn since_renewed(&self) -> Duration {
        self.renewed.lock().map(|t| t.elapsed()).unwrap_or(LEASE)
    }

    fn lease(&self, acquired: MicroTime, rv: Option<String>) -> Lease {
        Lease {
            metadata: ObjectMeta {
                name: Some(self.name.clone()),
                resource_version: rv,
                labels: Some(BTreeMap::from([(
                    MANAGED_BY.to_string(),
                    MANAGER.to_string(),
                )])),
                ..Default::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: Some(self.me.clone()),
                lease_duration_seconds: Some(LEASE_SECONDS),
                acquire_time: Some(acquired),
                renew_time: Some(MicroTime(Timestamp::now())),
                ..Default::default()
            }),
        }
    }

    fn api(&self) -> Api<Lease> {
        Api::namespaced(self.cluster.client.clone(), &self.namespace)
    }

    fn wrote(&self, lease: &Lease, at: Instant) {
        if let Ok(mut rv) = self.rv.lock() {
            *rv = lease.metadata.resource_version.clone().unwrap_or_default();
        }
        if let Ok(mut t) = self.renewed.lock() {
            *t = at;
        }
    }

    async fn acquire(cluster: Cluster, namespace: &str, cluster_name: &str) -> Result<Arc<Self>> {
        let hold = Arc::new(Hold {
            cluster,
            namespace: namespace.to_string(),
            name: format!("lock-{cluster_name}"),
            me: holder(),
            rv: Mutex::new(String::new()),
            renewed: Mutex::new(Instant::now()),
            lost: AtomicBool::new(false),
            renewing: tokio::sync::Mutex::new(()),
        });
        let (api, name) = (hold.api(), hold.name.clone());
        let pp = PostParams::default();
        let start = Instant::now();
        let fresh = hold.lease(MicroTime(Timestamp::now()), None);
        match retry(|| api.create(&pp, &fresh)).await {
            Ok(l) => {
                hold.wrote(&l, start);
                return Ok(hold);
            }
            Err(kube::Error::Api(s)) if s.code == 409 => {}
            Err(e) => {
                return Err(hold
                    .cluster
                    .err(e)
                    .context(format!("taking the lock Lease {namespace}/{name}")));
            }
        }
        let held_by = |l: &Lease| {
            l.spec
                .as_ref()
                .and_then(|s| s.holder_identity.clone())
                .unwrap_or_else(|| "another run".into())
        };
        let existing = retry(|| api.get(&name))
            .await
            .map_err(|e| hold.cluster.err(e))?;
        let spec = existing.spec.clone().unwrap_or_default();
        let duration = i64::from(spec.lease_duration_seconds.unwrap_or(LEASE_SECONDS));
        let renewed = spec.renew_time.map(|t| t.0.as_second()).unwrap_or(0);
        let age = Timestamp::now().as_second() - renewed;
        if (-duration..=duration).contains(&age) {
            // renewed recently by the clocks: held; refuse at once
            return Err(Error::refused(format!(
                "cluster {cluster_name} is being changed by {} (Lease {namespace}/{name}; it expires {duration}s after its holder stops renewing it)",
                held_by(&existing),
            )));
        }
        // it looks abandoned: take it over only once this process has seen
        // it unchanged for its whole duration
        let seen = existing.metadata.resource_version.clone();
        let watch_from = Instant::now();
        let wait = Duration::from_secs(duration.max(1) as u64);
        while watch_from.elapsed() < wait {
            tokio::time::sleep(Duration::from_millis(500)).await;
            let now = retry(|| api.get_opt(&name))
                .await
                .map_err(|e| hold.cluster.err(e))?;
            match now {
                None => break,
                Some(l) if l.metadata.resource_version != seen => {
                    return Err(Error::refused(format!(
                        "cluster {cluster_name} is being changed by {} (Lease {namespace}/{name} was renewed while this run waited for it to expire)",
                        held_by(&l)
                    )));
                }
                Some(_) => {}
            }
        }
        let start = Instant::now();
        let taken = hold.lease(MicroTime(Timestamp::now()), seen);
        let result = retry(|| api.replace(&name, &pp, &taken)).await;
        let result = match result {
            Err(kube::Error::Api(s)) if s.code == 404 => {
                let fresh = hold.lease(MicroTime(Timestamp::now()), None);
                retry(|| api.create(&pp, &fresh)).await
            }
            other => other,
        };
        match result {
            Ok(l) => {
                hold.wrote(&l, start);
                Ok(hold)
            }
            Err(kube::Error::Api(s)) if s.code == 409 => Err(Error::refused(format!(
                "cluster {cluster_name} was just locked by another run (Lease {namespace}/{name})"
            ))),
            Err(e) => Err(hold.cluster.err(e)),
        }
    }

    /// Renews the Lease if this run still holds it: a write carrying the
    /// resourceVersion of its last one. Lost once the Lease is seen taken by
    /// another run or deleted; a failure to reach the management cluster is
    /// only a failed attempt (see `confirm` for what it means later).
    async fn renew(&self) -> Renewal {
        let _one = self.renewing.lock().await;
        if self.lost.load(Ordering::SeqCst) {
            return Renewal::Lost;
        }
        let api = self.api();
        let rv = self.rv.lock().map(|r| r.clone()).unwrap_or_default();
        let start = Instant::now();
        let current = match api.get_opt(&self.name).await {
            Ok(c) => c,
            Err(_) => return Renewal::Failed,
        };
        let Some(current) = current else {
            self.lost.store(true, Ordering::SeqCst);
            return Renewal::Lost;
        };
        if current.metadata.resource_version.as_deref() != Some(rv.as_str()) {
            // written by someone else since this run last wrote it
            self.lost.store(true, Ordering::SeqCst);
            return Renewal::Lost;
        }
        let acquired = current
            .spec
            .as_ref()
            .and_then(|s| s.acquire_time.clone())
            .unwrap_or(MicroTime(Timestamp::now()));
        let next = self.lease(acquired, Some(rv));
        match api.replace(&self.name, &PostParams::default(), &next).await {
            Ok(l) => {
                self.wrote(&l, start);
                Renewal::Renewed
            }
            Err(kube::Error::Api(s)) if s.code == 409 || s.code == 404 => {
                self.lost.store(true, Ordering::SeqCst);
                Renewal::Lost
            }
            Err(_) => Renewal::Failed,
        }
    }

    /// The last renewal is a whole lease duration old (the management
    /// cluster did not answer): another run may have taken the Lease since,
    /// so nothing may be written before a renewal succeeds. Renews until one
    /// does (Ok), the Lease is seen taken (Ok, with `lost` set), or the
    /// command's deadline passes (an error: the lock is not confirmed).
    async fn confirm(&self) -> std::result::Result<(), kube::Error> {
        let deadline = crate::k8s::deadline();
        let mut delay = Duration::from_millis(200);
        loop {
            if self.lost.load(Ordering::SeqCst) || self.since_renewed() < LEASE {
                // decided meanwhile (the background renewal, another request)
                return Ok(());
            }
            match self.renew().await {
                Renewal::Renewed | Renewal::Lost => return Ok(()),
                Renewal::Failed => {}
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return Err(kube::Error::Api(Box::new(kube::core::Status {
                    code: 503,
                    reason: LOCK_UNCONFIRMED.into(),
                    message: format!(
                        "lock not confirmed: Lease {}/{} could not be renewed for {}s (the management cluster did not answer) and the command's --timeout passed; this run stopped before its next request, run it again",
                        self.namespace,
                        self.name,
                        self.since_renewed().as_secs()
                    ),
                    ..Default::default()
                })));
            }
            tokio::time::sleep(delay.min(deadline - now)).await;
            delay = (delay * 2).min(CONFIRM_EVERY);
        }
    }

    /// Deletes the Lease if it is still this run's (resourceVersion
    /// precondition): a Lease another run took is left alone. It waits for a
    /// renewal in flight first (`renewing`), so that the precondition carries
    /// the resourceVersion of this run's last write, not of the one before
    /// it; a delete the management cluster did not answer is tried again, a
    /// few times, so that a run that ends well does not leave its Lease to
    /// expire.
    async fn release(&self) {
        let _one = self.renewing.lock().await;
        if self.lost.load(Ordering::SeqCst) {
            return;
        }
        let rv = self.rv.lock().map(|r| r.clone()).unwrap_or_default();
        let dp = DeleteParams {
            preconditions: Some(Preconditions {
                resource_version: Some(rv),
                uid: None,
            }),
            ..Default::default()
        };
        let mut delay = Duration::from_millis(200);
        for attempt in 0..4 {
            match self.api().delete(&self.name, &dp).await {
                // deleted; or gone, or written by another run: not ours
                Ok(_) => break,
                Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => break,
                Err(_) if attempt < 3 => {
                    tokio::time::sleep(delay).await;
                    delay *= 2;
                }
                Err(_) => {}
            }
        }
        // whatever came of it, this run writes the Lease no more
        self.lost.store(true, Ordering::SeqCst);
    }
}

impl Lock {
    /// Releases the lock.
    pub async fn release(self) {
        // the Lease first, then the renewal task: aborting a renewal in the
        // middle of its write could leave a resourceVersion this run never
        // saw, and the Lease behind
        self.held.remove(&self.hold);
        self.hold.release().await;
        self.renew.abort();
    }
}
