//! list, get, status, rotate-credentials, version, completion.

use std::time::Duration;

use serde::Serialize;
use serde_json::json;

use super::Ctx;
use crate::cli::{Cli, CompletionArgs, GetArgs, ListArgs, RotateArgs, StatusArgs, VersionArgs};
use crate::credential;
use crate::error::{Error, ExitCode, Result};
use crate::k8s::wait::{self, Readiness};
use crate::k8s::{Cluster, Kinds};
use crate::output::{OutputFormat, age, print_table, print_value};
use crate::registry::{self, Registry};

/// The Kubernetes API version the plugin is built against (k8s-openapi feature).
pub const KUBERNETES_API: &str = "v1.36";

pub fn version(args: &VersionArgs) -> Result<()> {
    let v = json!({
        "version": env!("CARGO_PKG_VERSION"),
        "gitCommit": env!("NAUTES_GIT_COMMIT"),
        "kubernetesApi": KUBERNETES_API,
        "platform": format!("{}/{}", std::env::consts::OS, arch()),
    });
    match args.output {
        Some(f @ (OutputFormat::Json | OutputFormat::Yaml)) => print_value(&v, f),
        _ => {
            println!(
                "kubectl-nautes v{} (commit {}, Kubernetes API {}, {}/{})",
                env!("CARGO_PKG_VERSION"),
                env!("NAUTES_GIT_COMMIT"),
                KUBERNETES_API,
                std::env::consts::OS,
                arch()
            );
            Ok(())
        }
    }
}

/// The architecture as Go and Kubernetes name it.
fn arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

pub fn completion(args: &CompletionArgs) -> Result<()> {
    use clap::CommandFactory;
    let mut cmd = Cli::command();
    clap_complete::generate(
        args.shell,
        &mut cmd,
        "kubectl-nautes",
        &mut std::io::stdout(),
    );
    Ok(())
}

pub async fn list(ctx: &Ctx, args: &ListArgs) -> Result<()> {
    let registry = ctx.registry().await?;
    let records = registry.list().await?;
    match args.output {
        OutputFormat::Json | OutputFormat::Yaml => {
            print_value(&json!({"items": records}), args.output)
        }
        OutputFormat::Name => {
            for r in &records {
                println!("cluster/{}", r.name);
            }
            Ok(())
        }
        OutputFormat::Table => {
            if records.is_empty() {
                eprintln!(
                    "No clusters are registered (namespace {}).",
                    registry.namespace
                );
                return Ok(());
            }
            let rows: Vec<Vec<String>> = records
                .iter()
                .map(|r| {
                    vec![
                        r.name.clone(),
                        r.kind.clone(),
                        match r.spec.usage {
                            crate::spec::Usage::Host => "host".into(),
                            crate::spec::Usage::Worker => "worker".into(),
                        },
                        r.spec
                            .host_cluster
                            .clone()
                            .unwrap_or_else(|| "<none>".into()),
                        r.spec.api_server.clone(),
                        r.shown_state(),
                        age(&r.registered_at),
                    ]
                })
                .collect();
            print_table(
                &[
                    "NAME",
                    "KIND",
                    "USAGE",
                    "HOST",
                    "API SERVER",
                    "STATE",
                    "AGE",
                ],
                &rows,
            );
            Ok(())
        }
    }
}

async fn record(registry: &Registry, name: &str) -> Result<registry::Record> {
    registry.get(name).await?.ok_or_else(|| {
        Error::new(
            ExitCode::Refused,
            format!(
                "cluster {name} is not registered in the management cluster (namespace {})",
                registry.namespace
            ),
        )
    })
}

pub async fn get(ctx: &Ctx, args: &GetArgs) -> Result<()> {
    let registry = ctx.registry().await?;
    let r = record(&registry, &args.name).await?;
    match args.output {
        OutputFormat::Table => {
            print_table(
                &["NAME", "KIND", "API SERVER", "STATE", "AGE"],
                &[vec![
                    r.name.clone(),
                    r.kind.clone(),
                    r.spec.api_server.clone(),
                    r.shown_state(),
                    age(&r.registered_at),
                ]],
            );
            Ok(())
        }
        OutputFormat::Name => {
            println!("cluster/{}", r.name);
            Ok(())
        }
        f => print_value(&r, f),
    }
}

#[derive(Debug, Serialize)]
struct ComponentStatus {
    component: String,
    target: String,
    ready: bool,
    objects: usize,
    reasons: Vec<String>,
}

pub async fn status(ctx: &Ctx, args: &StatusArgs) -> Result<()> {
    let registry = ctx.registry().await?;
    let r = record(&registry, &args.name).await?;
    let set = registry.applyset(&r.name).await?;
    let mut targets: Vec<(String, Cluster)> = Vec::new();
    if let Some(h) = &r.spec.host_cluster {
        targets.push((
            "virtual-host".into(),
            crate::clusters::host(&registry, h, ctx.connect_options()).await?,
        ));
    }
    match registry.credential(&r.name).await? {
        Some((_, cred)) => {
            let c = cred
                .connect(
                    &format!("runtime cluster {}", r.name),
                    &r.spec.api_server,
                    ctx.connect_options(),
                )
                .await?;
            targets.push(("runtime".into(), c));
        }
        None => {
            return Err(Error::refused(format!(
                "cluster {} has no credential yet (state {}): its register stopped early; run register again",
                r.name, r.state
            )));
        }
    }
    let mut rows = Vec::new();
    for (target, c) in &targets {
        let kinds = Kinds::discover(c).await?;
        let Some(state) = set.load(c).await? else {
            continue;
        };
        let members = set.members(c, &kinds, &state.group_kinds).await?;
        let mut by_component: std::collections::BTreeMap<String, ComponentStatus> =
            Default::default();
        for (k, m) in &members {
            let entry =
                by_component
                    .entry(m.component.clone())
                    .or_insert_with(|| ComponentStatus {
                        component: m.component.clone(),
                        target: target.clone(),
                        ready: true,
                        objects: 0,
                        reasons: Vec::new(),
                    });
            entry.objects += 1;
            if !wait::judged(&k.0) {
                continue;
            }
            match wait::readiness_now(c, &k.0, &m.kind, k.1.as_deref(), &k.2).await? {
                Readiness::Ready => {}
                Readiness::NotReady(why) | Readiness::Failed(why) => {
                    entry.ready = false;
                    entry
                        .reasons
                        .push(format!("{}: {why}", crate::k8s::delete::describe_key(k)));
                }
            }
        }
        rows.extend(by_component.into_values());
    }
    let all_ready = rows.iter().all(|c| c.ready);
    match args.output {
        OutputFormat::Json | OutputFormat::Yaml => print_value(
            &json!({"name": r.name, "state": r.state, "ready": all_ready, "components": rows, "lastFailure": r.last_failure}),
            args.output,
        )?,
        _ => {
            let table: Vec<Vec<String>> = rows
                .iter()
                .map(|c| {
                    vec![
                        c.component.clone(),
                        c.target.clone(),
                        if c.ready {
                            "True".into()
                        } else {
                            "False".into()
                        },
                        c.objects.to_string(),
                        c.reasons.join("; "),
                    ]
                })
                .collect();
            print_table(
                &["COMPONENT", "TARGET", "READY", "OBJECTS", "REASON"],
                &table,
            );
        }
    }
    if let Some(f) = &r.last_failure {
        ctx.progress.warn(
            "status",
            format!(
                "the last {} of cluster {} failed at {} (exit {}): {}",
                f.operation, r.name, f.at, f.exit_code, f.message
            ),
        );
    }
    if all_ready {
        Ok(())
    } else {
        Err(Error::new(
            ExitCode::Timeout,
            format!("cluster {}: not every component is ready", r.name),
        ))
    }
}

pub async fn rotate(ctx: &Ctx, args: &RotateArgs) -> Result<()> {
    let registry = ctx.registry().await?;
    let r = record(&registry, &args.name).await?;
    let lock = registry.lock(&r.name, &ctx.locks).await?;
    let result = async {
        let (_, old) = registry.credential(&r.name).await?.ok_or_else(|| {
            Error::refused(format!(
                "cluster {} has no credential to rotate (state {})",
                r.name, r.state
            ))
        })?;
        let c = old
            .connect(
                &format!("runtime cluster {}", r.name),
                &r.spec.api_server,
                ctx.connect_options(),
            )
            .await?;
        let mut fresh =
            credential::ensure(&c, &r.name, true, args.timeout.max(Duration::from_secs(5))).await?;
        fresh.ca_data = old.ca_data.clone();
        // as the spec says, not as the last register's flags said
        fresh.insecure = r.spec.insecure_skip_check;
        registry.save_credential(&r.spec, &fresh).await?;
        registry.save_argocd_secret(&r.spec, &fresh).await?;
        let revoked = credential::revoke(&c, Some(&fresh.secret_name)).await?;
        credential::wait_rejected(&c, &r.name, args.timeout).await?;
        ctx.progress.done(
            "rotate",
            format!(
                "new token Secret {}/{}; revoked {}",
                credential::CREDENTIAL_NAMESPACE,
                fresh.secret_name,
                if revoked.is_empty() {
                    "none".to_string()
                } else {
                    revoked.join(", ")
                }
            ),
        );
        Ok::<_, Error>(())
    }
    .await;
    lock.release().await;
    result?;
    println!("cluster/{} credentials rotated", r.name);
    Ok(())
}
