//! kubectl-nautes: registers and destroys the runtime clusters of the Nautes
//! GitOps platform. The binary is a thin front end over this library.

pub mod cli;
pub mod clusters;
pub mod commands;
pub mod credential;
pub mod error;
pub mod inventory;
pub mod k8s;
pub mod kinds;
pub mod output;
pub mod pipeline;
pub mod plan;
pub mod registry;
pub mod render;
pub mod serve;
pub mod spec;

use cli::{Cli, Command};
use commands::Ctx;
use error::Result;
use output::Progress;

/// Runs a parsed command line until it ends or `interrupted` completes
/// (SIGINT, SIGTERM); then the locks the command holds are released and the
/// result is exit code 130.
pub async fn run(cli: Cli, interrupted: impl std::future::Future<Output = ()>) -> Result<()> {
    let ctx = Ctx {
        progress: Progress::new(cli.global.progress, cli.global.verbose),
        global: cli.global,
        locks: registry::Locks::default(),
    };
    tokio::select! {
        r = ctx.locks.fenced(within_timeout(&cli.command, dispatch(&ctx, &cli.command))) => r,
        _ = interrupted => {
            ctx.locks.release_all().await;
            Err(error::Error::new(
                error::ExitCode::Interrupted,
                "interrupted; run the same command again to converge",
            ))
        }
    }
}

/// Runs a command with its --timeout, counted from now, as the deadline of
/// every retry and of the lock's fence (`k8s::within`); commands without
/// --timeout retry for `k8s::RETRY_WITHOUT_TIMEOUT`.
async fn within_timeout<T>(command: &Command, work: impl std::future::Future<Output = T>) -> T {
    let timeout = match command {
        Command::Register(a) => a.timeout,
        Command::Destroy(a) => a.timeout,
        Command::RotateCredentials(a) => a.timeout,
        _ => return work.await,
    };
    k8s::within(cli::deadline(timeout), work).await
}

async fn dispatch(ctx: &Ctx, command: &Command) -> Result<()> {
    match command {
        Command::Register(a) => commands::register::run(ctx, a).await,
        Command::Destroy(a) => commands::destroy::run(ctx, a).await,
        Command::List(a) => commands::info::list(ctx, a).await,
        Command::Get(a) => commands::info::get(ctx, a).await,
        Command::Status(a) => commands::info::status(ctx, a).await,
        Command::Diff(a) => commands::register::diff(ctx, a).await,
        Command::Render(a) => commands::offline::render(a).await,
        Command::Validate(a) => commands::offline::validate(a),
        Command::RotateCredentials(a) => commands::info::rotate(ctx, a).await,
        Command::Completion(a) => commands::info::completion(a),
        Command::Version(a) => commands::info::version(a),
        Command::Serve(a) => serve::run(&ctx.global, a).await,
    }
}
