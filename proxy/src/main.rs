//! planb-proxy: CLI → config → start-up (SSM, DNS) → Pingora server.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use pingora::server::configuration::Opt;

use planb_proxy::config::{self, Config};

#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The Plan B passthrough proxy (Pingora): forwards every request unchanged to
/// ALB2, whose DNS name it reads from SSM Parameter Store and keeps resolving.
///
/// Signals: SIGTERM stops gracefully (in-flight requests finish); SIGQUIT
/// hands the listening sockets to a new process started with -u.
/// Logs: RUST_LOG (default info), LOG_FORMAT json (default) or text.
#[derive(Parser, Debug)]
#[command(name = "planb-proxy", version)]
struct Cli {
    /// The configuration file (Pingora's server keys plus a `proxy:` section).
    #[arg(short, long, value_name = "FILE", default_value = config::DEFAULT_PATH)]
    conf: PathBuf,
    /// Run in the background (writes pid_file).
    #[arg(short, long)]
    daemon: bool,
    /// Take the listening sockets over from a running old process (via upgrade_sock).
    #[arg(short, long)]
    upgrade: bool,
    /// Check the configuration file and exit.
    #[arg(short, long)]
    test: bool,
}

fn init_logging() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // Synchronous writes: Pingora forks on -d, and a writer thread would not survive it.
    if std::env::var("LOG_FORMAT").is_ok_and(|f| f == "text") {
        builder.with_ansi(false).init();
    } else {
        builder.json().flatten_event(true).init();
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();

    let config = match Config::load(&cli.conf) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("planb-proxy: configuration error: {e}");
            return ExitCode::from(2);
        }
    };
    if cli.test {
        println!("planb-proxy: configuration {} is valid", cli.conf.display());
        return ExitCode::SUCCESS;
    }

    // Start-up work on a short-lived runtime, dropped before Pingora forks.
    let prepared = {
        let rt = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(rt) => rt,
            Err(e) => {
                eprintln!("planb-proxy: cannot start a runtime: {e}");
                return ExitCode::FAILURE;
            }
        };
        rt.block_on(planb_proxy::prepare(&config.proxy))
    };
    let prepared = match prepared {
        Ok(p) => p,
        Err(e) => {
            eprintln!("planb-proxy: {e}");
            return ExitCode::FAILURE;
        }
    };

    let opt = Opt {
        upgrade: cli.upgrade,
        daemon: cli.daemon,
        test: false,
        conf: None,
        ..Opt::default()
    };
    planb_proxy::build_server(opt, config, prepared).run_forever()
}
