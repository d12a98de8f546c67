//! `team-service`: settings from the environment, the verifier's keys loaded
//! in the background, serve until SIGTERM or Ctrl-C.

use std::process::ExitCode;
use std::sync::Arc;

use cognito_verifier::{Verifier, VerifierConfig};
use team_service::config::{Settings, HELP};
use team_service::orders::Orders;
use team_service::{app, AppState};
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> ExitCode {
    match std::env::args().nth(1).as_deref() {
        None => {}
        Some("-h" | "--help") => {
            print!("{HELP}");
            return ExitCode::SUCCESS;
        }
        Some(other) => {
            eprintln!("team-service: unknown argument {other:?} (see --help)");
            return ExitCode::from(2);
        }
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();
    match serve().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("team-service: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn serve() -> Result<(), Box<dyn std::error::Error>> {
    let settings = Settings::from_env()?;
    let verifier = Arc::new(Verifier::new(VerifierConfig::from_env()?)?);
    tokio::spawn({
        let verifier = verifier.clone();
        async move { verifier.load_keys().await }
    });
    let listener = tokio::net::TcpListener::bind(settings.listen_addr)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", settings.listen_addr))?;
    tracing::info!(addr = %settings.listen_addr, origins = ?settings.cors_origins, "team-service serving");
    let state = Arc::new(AppState {
        orders: Orders::new(settings.max_orders),
        settings,
        verifier,
    });
    axum::serve(listener, app(state))
        .with_graceful_shutdown(shutdown())
        .await?;
    Ok(())
}

/// SIGTERM (ECS stopping the task) or Ctrl-C.
async fn shutdown() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("a SIGTERM handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
