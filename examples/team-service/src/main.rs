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
    init_logging(&settings)?;
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

/// Log lines to stdout, filtered by `RUST_LOG`, as JSON or text.
fn init_logging(settings: &Settings) -> Result<(), Box<dyn std::error::Error>> {
    let filter = match std::env::var("RUST_LOG") {
        Ok(f) => EnvFilter::try_new(&f).map_err(|e| format!("RUST_LOG: invalid filter: {e}"))?,
        Err(_) => EnvFilter::new("info"),
    };
    let logs = tracing_subscriber::fmt().with_env_filter(filter);
    if settings.log_json {
        logs.json().flatten_event(true).try_init()
    } else {
        logs.try_init()
    }
    .map_err(|e| format!("logging: {e}").into())
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
