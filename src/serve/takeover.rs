//! High availability: a register or destroy left Registering or Destroying
//! by a process that died (its Lease exists but expired; a run that ends,
//! however it ends, deletes its Lease) is taken over by any replica, or by
//! the same server after a restart, and continued from what the management
//! cluster holds: the record's spec, and for a physical cluster the
//! credential minted in it (the spec's kubeconfig is never stored).

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::jiff::Timestamp;
use serde_json::{Value, json};

use super::AppState;
use super::api::start;
use super::jobs::Op;
use crate::cli::{DestroyArgs, DryRun, RegisterArgs, SpecInput};
use crate::registry::State as RecordState;
use crate::spec::ClusterType;

/// How often each replica looks for abandoned runs.
pub const INTERVAL: Duration = Duration::from_secs(5);

fn log(name: &str, op: Op, message: &str) {
    eprintln!(
        "{}",
        json!({"time": crate::registry::now(), "msg": "takeover", "cluster": name,
               "operation": op.as_str(), "message": message})
    );
}

/// Whether the Lease of a cluster exists and has expired.
async fn abandoned(st: &AppState, name: &str) -> bool {
    let api: kube::Api<Lease> = kube::Api::namespaced(st.mgmt.client.clone(), &st.namespace);
    let Ok(Some(lease)) = api.get_opt(&format!("lock-{name}")).await else {
        return false;
    };
    let spec = lease.spec.unwrap_or_default();
    let Some(renewed) = spec.renew_time.or(spec.acquire_time) else {
        return true;
    };
    let duration = i64::from(
        spec.lease_duration_seconds
            .unwrap_or(crate::registry::LEASE_SECONDS),
    );
    Timestamp::now().as_second() - renewed.0.as_second() > duration
}

/// One pass over the records.
pub async fn sweep(st: &Arc<AppState>) {
    let Ok(records) = st.registry().list().await else {
        return;
    };
    for r in records {
        let op = match r.state {
            RecordState::Registering => Op::Register,
            RecordState::Destroying => Op::Destroy,
            RecordState::Registered => continue,
        };
        if st.job(&r.name).is_some_and(|j| !j.snapshot().done) || !abandoned(st, &r.name).await {
            continue;
        }
        let name = r.name.clone();
        let outcome = match op {
            Op::Register => {
                let mut spec = r.spec.clone();
                if spec.cluster_type == ClusterType::Physical {
                    match st.registry().credential(&name).await {
                        Ok(Some((server, cred))) => {
                            spec.kubeconfig = Some(cred.kubeconfig(&name, &server));
                        }
                        _ => {
                            log(
                                &name,
                                op,
                                "abandoned before its credential was minted: cannot continue without the spec's kubeconfig; POST it again",
                            );
                            continue;
                        }
                    }
                }
                let args = RegisterArgs {
                    adopt: false,
                    force: false,
                    input: SpecInput {
                        allow_exec_kubeconfig: false,
                        filename: "takeover".into(),
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
                start(st, &name, op, Some(spec), false, move |ctx| async move {
                    let r = ctx
                        .locks
                        .fenced(crate::commands::register::register_spec(
                            &ctx, &job_spec, &args,
                        ))
                        .await?;
                    Ok(serde_json::to_value(&r).unwrap_or(Value::Null))
                })
                .await
            }
            Op::Destroy => {
                let args = DestroyArgs {
                    allow_exec_kubeconfig: false,
                    name: name.clone(),
                    filename: None,
                    force: false,
                    timeout: st.args.timeout,
                    dry_run: DryRun::None,
                    output: None,
                };
                start(st, &name, op, None, false, move |ctx| async move {
                    ctx.locks
                        .fenced(crate::commands::destroy::destroy_name(
                            &ctx, &args.name, &args,
                        ))
                        .await?;
                    Ok(Value::Null)
                })
                .await
            }
        };
        match outcome {
            Ok(super::api::Outcome::Done(Err(e))) => {
                log(&name, op, &format!("not taken over: {}", e.message))
            }
            Ok(_) => log(&name, op, "taken over: its Lease had expired"),
            Err(e) => log(&name, op, &format!("not taken over: {}", e.message)),
        }
    }
}

/// Sweeps forever.
pub fn spawn(st: Arc<AppState>) {
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(INTERVAL).await;
            sweep(&st).await;
        }
    });
}
