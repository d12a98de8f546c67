//! planb-backend: configuration from the environment, then the server until SIGTERM.

use std::process::ExitCode;

use mimalloc::MiMalloc;
use planb_backend::config::{usage, Config};
use planb_backend::{logging, server};

#[global_allocator]
static ALLOC: MiMalloc = MiMalloc;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        None => {}
        Some("-h" | "--help") => {
            print!("{}", usage());
            return ExitCode::SUCCESS;
        }
        Some(other) => {
            eprintln!("planb-backend: unexpected argument {other:?}: it takes none (see --help)");
            return ExitCode::from(2);
        }
    }
    match start() {
        Ok(()) => ExitCode::SUCCESS,
        Err(line) => {
            eprintln!("{line}");
            ExitCode::FAILURE
        }
    }
}

/// Everything that can fail at start-up returns one line that names its cause.
fn start() -> Result<(), String> {
    let config = Config::from_env().map_err(|e| format!("planb-backend: {e}"))?;
    // On an error below, dropping it still writes the last lines.
    let logging = logging::init(&config)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("planb-backend: tokio runtime: {e}"))?;
    runtime.block_on(async {
        let shutdown = server::shutdown_signal()
            .map_err(|e| format!("planb-backend: signal handlers: {e}"))?;
        let listener = tokio::net::TcpListener::bind(config.listen_addr)
            .await
            .map_err(|e| {
                format!(
                    "planb-backend: LISTEN_ADDR: cannot listen on {}: {e}",
                    config.listen_addr
                )
            })?;
        let pool = &config.verifier.user_pools()[0];
        tracing::info!(
            addr = %config.listen_addr,
            issuer = %pool.issuer(),
            jwks_url = %pool.jwks_url(),
            alb_check = config.verifier.alb().is_some(),
            token_cache = ?config.verifier.token_cache(),
            max_connections = config.max_connections,
            notes_table = config.notes.as_ref().map(|n| n.table.as_str()),
            "planb-backend listening"
        );
        server::run(&config, listener, shutdown).await
    })?;
    // Do not wait for stray blocking tasks (DNS lookups) past the drain.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    // The spans of the last requests, sent from outside the runtime (it blocks), then the last lines.
    logging.finish();
    Ok(())
}
