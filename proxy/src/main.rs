//! planb-proxy: CLI → config → Pingora server (start-up is its first service).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use pingora::server::configuration::Opt;
use pingora::server::RunArgs;

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

    let opt = Opt {
        upgrade: cli.upgrade,
        daemon: cli.daemon,
        test: false,
        conf: None,
        ..Opt::default()
    };
    // No tokio runtime exists before this point: Pingora forks on -d, and a
    // runtime (its signal pipe included) must not be shared across the fork.
    planb_proxy::build_server(opt, config).run(RunArgs::default());
    // The grace period ended with requests still running (else the drain
    // exited already): what they logged is written before the exit.
    planb_proxy::access_log::flush_all();
    ExitCode::SUCCESS
}
