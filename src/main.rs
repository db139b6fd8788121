//! The `kubectl-nautes` binary: parse arguments, run, map errors to exit codes.

use clap::Parser;
use kubectl_nautes::cli::{Cli, Command};
use kubectl_nautes::error::ExitCode;

fn main() -> std::process::ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return match e.kind() {
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => {
                    std::process::ExitCode::SUCCESS
                }
                _ => std::process::ExitCode::from(ExitCode::Invalid as u8),
            };
        }
    };
    // `version` and `completion` need no runtime
    if let Command::Version(_) | Command::Completion(_) = cli.command {
        return finish(futures::executor::block_on(kubectl_nautes::run(
            cli,
            std::future::pending(),
        )));
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::from(ExitCode::Internal as u8);
        }
    };
    let result = runtime.block_on(kubectl_nautes::run(cli, interrupted()));
    // temporary files are removed as their guards drop with the runtime
    drop(runtime);
    finish(result)
}

/// SIGINT (Ctrl-C) or SIGTERM.
async fn interrupted() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

fn finish(result: kubectl_nautes::error::Result<()>) -> std::process::ExitCode {
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", e.message);
            std::process::ExitCode::from(e.code as u8)
        }
    }
}
