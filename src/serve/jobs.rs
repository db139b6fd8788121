//! Registrations and destroys running (or run) on this server: their state,
//! last error and progress events, which `/events` streams.

use std::sync::{Arc, Mutex};

use serde::Serialize;
use serde_json::{Value, json};
use tokio::sync::{broadcast, oneshot};
use utoipa::ToSchema;

use super::error::ApiError;
use crate::spec::ClusterSpec;

/// Events kept per job (the oldest are dropped beyond this).
const MAX_EVENTS: usize = 5000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Register,
    Destroy,
}

impl Op {
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Register => "register",
            Op::Destroy => "destroy",
        }
    }
}

/// Where a cluster stands, as the API shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
pub enum JobState {
    Registering,
    Registered,
    /// The last register or destroy failed; `last_error` says why.
    Failed,
    Destroying,
    Destroyed,
}

pub struct Job {
    pub op: Op,
    /// The spec a register was given.
    pub spec: Option<ClusterSpec>,
    pub started: String,
    inner: Mutex<Inner>,
    tx: broadcast::Sender<Value>,
}

struct Inner {
    state: JobState,
    error: Option<ApiError>,
    phase: String,
    events: Vec<Value>,
    done: bool,
    /// Whether the run got its Lease (it was answered 200, not an error).
    was_accepted: bool,
    accepted: Option<oneshot::Sender<()>>,
}

/// What GET shows of a job.
pub struct Snapshot {
    pub state: JobState,
    pub error: Option<ApiError>,
    pub phase: String,
    pub done: bool,
    pub accepted: bool,
}

impl Job {
    /// A new job; the receiver fires once its Lease is held (the pipeline's
    /// progress event of step "lock").
    pub fn new(op: Op, mut spec: Option<ClusterSpec>) -> (Arc<Job>, oneshot::Receiver<()>) {
        // kept to show the cluster while it has no record: never its kubeconfig
        if let Some(s) = spec.as_mut() {
            s.kubeconfig = None;
        }
        let (atx, arx) = oneshot::channel();
        let (tx, _) = broadcast::channel(1024);
        let job = Arc::new(Job {
            op,
            spec,
            started: crate::registry::now(),
            inner: Mutex::new(Inner {
                state: match op {
                    Op::Register => JobState::Registering,
                    Op::Destroy => JobState::Destroying,
                },
                error: None,
                phase: "preflight".into(),
                events: Vec::new(),
                done: false,
                was_accepted: false,
                accepted: Some(atx),
            }),
            tx,
        });
        (job, arx)
    }

    fn push(&self, inner: &mut Inner, event: Value) {
        if inner.events.len() >= MAX_EVENTS {
            inner.events.remove(0);
        }
        inner.events.push(event.clone());
        let _ = self.tx.send(event);
    }

    /// Records one progress event (the Progress sink).
    pub fn event(&self, event: Value) {
        let Ok(mut g) = self.inner.lock() else {
            return;
        };
        if let Some(step) = event.get("step").and_then(Value::as_str) {
            // accepted once a run that stops can be found and continued: a
            // register once its record is saved, a destroy once it holds
            // the lock (its record exists)
            let accepting = match self.op {
                Op::Register => "record",
                Op::Destroy => "lock",
            };
            if step == accepting {
                g.was_accepted = true;
                if let Some(a) = g.accepted.take() {
                    let _ = a.send(());
                }
            }
            g.phase = step.to_string();
        }
        self.push(&mut g, event);
    }

    /// Records the end; the last event says how it ended.
    pub fn finish(&self, result: &Result<Value, ApiError>) {
        let Ok(mut g) = self.inner.lock() else {
            return;
        };
        let (state, event) = match result {
            Ok(v) => (
                match self.op {
                    Op::Register => JobState::Registered,
                    Op::Destroy => JobState::Destroyed,
                },
                json!({"time": crate::registry::now(), "level": "done", "step": "result",
                       "message": format!("{} succeeded", self.op.as_str()), "result": v, "final": true}),
            ),
            Err(e) => (
                JobState::Failed,
                json!({"time": crate::registry::now(), "level": "error", "step": "result",
                       "message": e.message, "error": e, "final": true}),
            ),
        };
        g.state = state;
        g.error = result.as_ref().err().cloned();
        g.phase = "done".into();
        g.done = true;
        g.accepted = None;
        self.push(&mut g, event);
    }

    pub fn snapshot(&self) -> Snapshot {
        match self.inner.lock() {
            Ok(g) => Snapshot {
                state: g.state,
                error: g.error.clone(),
                phase: g.phase.clone(),
                done: g.done,
                accepted: g.was_accepted,
            },
            Err(_) => Snapshot {
                state: JobState::Failed,
                error: Some(ApiError::internal("the job's state is poisoned (a bug)")),
                phase: String::new(),
                done: true,
                accepted: false,
            },
        }
    }

    /// The events so far and, while the job runs, a receiver of the next.
    pub fn subscribe(&self) -> (Vec<Value>, Option<broadcast::Receiver<Value>>) {
        match self.inner.lock() {
            Ok(g) => (g.events.clone(), (!g.done).then(|| self.tx.subscribe())),
            Err(_) => (Vec::new(), None),
        }
    }
}
