//! The YAML file: Pingora's own server keys at the top level, ours under `proxy:`.
//!
//! Both halves are parsed from the same text once, at start. Every error names
//! the key it is about (`proxy.upstream.port: ...`), so a bad file is one clear
//! line and a non-zero exit, never a panic.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use pingora::server::configuration::ServerConf;
use serde::Deserialize;

/// Where the configuration file lives on the EC2 hosts.
pub const DEFAULT_PATH: &str = "/etc/planb-proxy/proxy.yaml";

/// A configuration problem, already phrased for the operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

fn err<T>(msg: impl Into<String>) -> Result<T, ConfigError> {
    Err(ConfigError(msg.into()))
}

/// The whole file, typed.
#[derive(Debug)]
pub struct Config {
    /// Pingora's keys (threads, pid_file, upgrade_sock, grace periods, ...).
    pub server: ServerConf,
    /// The `proxy:` section.
    pub proxy: ProxyConfig,
}

/// The `proxy:` section, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct ProxyConfig {
    /// Where clients (ALB1) connect.
    pub listen: SocketAddr,
    /// `/healthz` and `/metrics`; `None` when `admin_listen: null`.
    pub admin_listen: Option<SocketAddr>,
    /// One line per request through tracing (target `access`).
    pub access_log: bool,
    /// The upstream (ALB2) and how to find it.
    pub upstream: UpstreamConfig,
}

/// Where the upstream's name comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// An SSM parameter holding ALB2's DNS name (the production path).
    Ssm { parameter: String },
    /// A fixed `host:port` (local stacks, benchmarks): no SSM call.
    Fixed { host: String, port: u16 },
}

/// `proxy.upstream`, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct UpstreamConfig {
    pub source: Source,
    /// Port used with a name read from SSM (the parameter holds a bare host name).
    pub port: u16,
    pub ssm_refresh: Duration,
    /// The whole start-up budget for reading the parameter (retries with backoff inside).
    pub ssm_startup_timeout: Duration,
    /// A DNS server to ask instead of the system's resolver.
    pub resolver: Option<SocketAddr>,
    pub dns_refresh: Duration,
    pub connect_timeout: Duration,
    pub read_timeout: Duration,
    pub idle_timeout: Duration,
    pub health_check: Duration,
}

#[derive(Deserialize)]
struct RawFile {
    proxy: Option<RawProxy>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProxy {
    listen: Option<String>,
    #[serde(default = "default_admin")]
    admin_listen: Option<String>,
    #[serde(default = "yes")]
    access_log: bool,
    upstream: Option<RawUpstream>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUpstream {
    #[serde(default)]
    ssm_parameter: Option<String>,
    #[serde(default = "d300")]
    ssm_refresh_secs: u64,
    #[serde(default = "d30")]
    ssm_startup_timeout_secs: u64,
    #[serde(default)]
    address: Option<String>,
    #[serde(default = "d80")]
    port: u16,
    #[serde(default)]
    resolver: Option<String>,
    #[serde(default = "d15")]
    dns_refresh_secs: u64,
    #[serde(default = "d2000")]
    connect_timeout_ms: u64,
    #[serde(default = "d60")]
    read_timeout_secs: u64,
    #[serde(default = "d50")]
    idle_timeout_secs: u64,
    #[serde(default = "d5")]
    health_check_secs: u64,
}

fn default_admin() -> Option<String> {
    Some("127.0.0.1:9100".into())
}
fn yes() -> bool {
    true
}
fn d300() -> u64 {
    300
}
fn d30() -> u64 {
    30
}
fn d80() -> u16 {
    80
}
fn d15() -> u64 {
    15
}
fn d2000() -> u64 {
    2000
}
fn d60() -> u64 {
    60
}
fn d50() -> u64 {
    50
}
fn d5() -> u64 {
    5
}

impl Config {
    /// Reads and validates the file at `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError(format!("cannot read {}: {e}", path.display())))?;
        Config::parse(&text).map_err(|e| ConfigError(format!("{}: {e}", path.display())))
    }

    /// Parses and validates the YAML text.
    pub fn parse(text: &str) -> Result<Config, ConfigError> {
        // Pingora's half: the same struct and parser Pingora uses, but our own
        // call so the error names the key instead of echoing the whole file.
        let server: ServerConf =
            serde_yaml::from_str(text).map_err(|e| ConfigError(e.to_string()))?;
        let server = server.validate().map_err(|e| ConfigError(e.to_string()))?;
        if server.threads == 0 {
            return err("threads: must be at least 1");
        }
        let raw: RawFile = serde_yaml::from_str(text).map_err(|e| ConfigError(e.to_string()))?;
        let Some(raw) = raw.proxy else {
            return err("proxy: the section is missing");
        };
        Ok(Config {
            server,
            proxy: ProxyConfig::from_raw(raw)?,
        })
    }
}

fn socket_addr(key: &str, value: &str) -> Result<SocketAddr, ConfigError> {
    value.parse().map_err(|_| {
        ConfigError(format!(
            "{key}: expected \"ip:port\" (e.g. \"0.0.0.0:8080\"), got {value:?}"
        ))
    })
}

fn secs(key: &str, v: u64) -> Result<Duration, ConfigError> {
    if v == 0 {
        return err(format!("{key}: must be greater than 0"));
    }
    Ok(Duration::from_secs(v))
}

/// Splits `host:port` (`[v6]:port` too); the host is a DNS name or an IP literal.
pub fn split_host_port(value: &str) -> Option<(String, u16)> {
    if let Ok(sa) = value.parse::<SocketAddr>() {
        return Some((sa.ip().to_string(), sa.port()));
    }
    let (host, port) = value.rsplit_once(':')?;
    let port: u16 = port.parse().ok()?;
    if host.is_empty() || host.contains(':') || port == 0 {
        return None;
    }
    Some((host.to_string(), port))
}

/// Whether `host` looks like a DNS name or an IP literal we can resolve.
fn valid_host(host: &str) -> bool {
    if host.parse::<IpAddr>().is_ok() {
        return true;
    }
    !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

impl ProxyConfig {
    fn from_raw(raw: RawProxy) -> Result<ProxyConfig, ConfigError> {
        let Some(listen) = raw.listen else {
            return err("proxy.listen: required (e.g. \"0.0.0.0:8080\")");
        };
        let listen = socket_addr("proxy.listen", &listen)?;
        let admin_listen = match raw.admin_listen {
            Some(a) => Some(socket_addr("proxy.admin_listen", &a)?),
            None => None,
        };
        if admin_listen == Some(listen) {
            return err("proxy.admin_listen: must differ from proxy.listen");
        }
        let Some(u) = raw.upstream else {
            return err("proxy.upstream: the section is missing");
        };
        let source = match (u.ssm_parameter, u.address) {
            (Some(_), Some(_)) => {
                return err("proxy.upstream.address: set either address or ssm_parameter, not both")
            }
            (None, None) => {
                return err(
                    "proxy.upstream.ssm_parameter: required unless proxy.upstream.address is set",
                )
            }
            (Some(p), None) => {
                let p = p.trim().to_string();
                if p.is_empty() || p.chars().any(char::is_whitespace) {
                    return err(format!(
                        "proxy.upstream.ssm_parameter: not a parameter name: {p:?}"
                    ));
                }
                Source::Ssm { parameter: p }
            }
            (None, Some(a)) => match split_host_port(a.trim()) {
                Some((host, port)) if valid_host(&host) => Source::Fixed { host, port },
                _ => {
                    return err(format!(
                        "proxy.upstream.address: expected \"host:port\", got {a:?}"
                    ))
                }
            },
        };
        if u.port == 0 {
            return err("proxy.upstream.port: must be 1-65535");
        }
        let resolver = match u.resolver {
            Some(r) => Some(socket_addr("proxy.upstream.resolver", &r)?),
            None => None,
        };
        if u.connect_timeout_ms == 0 {
            return err("proxy.upstream.connect_timeout_ms: must be greater than 0");
        }
        Ok(ProxyConfig {
            listen,
            admin_listen,
            access_log: raw.access_log,
            upstream: UpstreamConfig {
                source,
                port: u.port,
                ssm_refresh: secs("proxy.upstream.ssm_refresh_secs", u.ssm_refresh_secs)?,
                ssm_startup_timeout: secs(
                    "proxy.upstream.ssm_startup_timeout_secs",
                    u.ssm_startup_timeout_secs,
                )?,
                resolver,
                dns_refresh: secs("proxy.upstream.dns_refresh_secs", u.dns_refresh_secs)?,
                connect_timeout: Duration::from_millis(u.connect_timeout_ms),
                read_timeout: secs("proxy.upstream.read_timeout_secs", u.read_timeout_secs)?,
                idle_timeout: secs("proxy.upstream.idle_timeout_secs", u.idle_timeout_secs)?,
                health_check: secs("proxy.upstream.health_check_secs", u.health_check_secs)?,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DESIGN: &str = r#"
version: 1
threads: 2
pid_file: /run/planb-proxy/proxy.pid
upgrade_sock: /run/planb-proxy/upgrade.sock
grace_period_seconds: 10
graceful_shutdown_timeout_seconds: 10
proxy:
  listen: "0.0.0.0:8080"
  admin_listen: "127.0.0.1:9100"
  upstream:
    ssm_parameter: /planb/alb2/dns-name
    ssm_refresh_secs: 300
    address: null
    port: 80
    resolver: null
    dns_refresh_secs: 15
    connect_timeout_ms: 2000
    read_timeout_secs: 60
    idle_timeout_secs: 50
"#;

    fn parse_err(text: &str) -> String {
        Config::parse(text).expect_err("should be rejected").0
    }

    #[test]
    fn the_design_example_parses_with_every_key() {
        let c = Config::parse(DESIGN).unwrap();
        assert_eq!(c.server.threads, 2);
        assert_eq!(c.server.pid_file, "/run/planb-proxy/proxy.pid");
        assert_eq!(c.server.upgrade_sock, "/run/planb-proxy/upgrade.sock");
        assert_eq!(c.server.grace_period_seconds, Some(10));
        assert_eq!(c.proxy.listen, "0.0.0.0:8080".parse().unwrap());
        assert_eq!(
            c.proxy.admin_listen,
            Some("127.0.0.1:9100".parse().unwrap())
        );
        let u = &c.proxy.upstream;
        assert_eq!(
            u.source,
            Source::Ssm {
                parameter: "/planb/alb2/dns-name".into()
            }
        );
        assert_eq!(u.port, 80);
        assert_eq!(u.resolver, None);
        assert_eq!(u.ssm_refresh, Duration::from_secs(300));
        assert_eq!(u.dns_refresh, Duration::from_secs(15));
        assert_eq!(u.connect_timeout, Duration::from_millis(2000));
        assert_eq!(u.read_timeout, Duration::from_secs(60));
        assert_eq!(u.idle_timeout, Duration::from_secs(50));
    }

    #[test]
    fn the_shipped_systemd_config_parses() {
        let text = include_str!("../../systemd/proxy.yaml");
        let c = Config::parse(text).unwrap();
        assert!(matches!(c.proxy.upstream.source, Source::Ssm { .. }));
        assert!(c.server.daemon_wait_for_ready);
    }

    #[test]
    fn address_skips_ssm_and_resolver_is_typed() {
        let text = DESIGN
            .replace("ssm_parameter: /planb/alb2/dns-name", "ssm_parameter: null")
            .replace("address: null", "address: \"alb2.internal:8081\"")
            .replace("resolver: null", "resolver: \"127.0.0.53:53\"");
        let c = Config::parse(&text).unwrap();
        assert_eq!(
            c.proxy.upstream.source,
            Source::Fixed {
                host: "alb2.internal".into(),
                port: 8081
            }
        );
        assert_eq!(
            c.proxy.upstream.resolver,
            Some("127.0.0.53:53".parse().unwrap())
        );
    }

    #[test]
    fn errors_name_the_key() {
        let e = parse_err(&DESIGN.replace("port: 80", "port: eighty"));
        assert!(e.contains("proxy.upstream.port"), "{e}");
        let e = parse_err(&DESIGN.replace("resolver: null", "resolver: \"dns.example\""));
        assert!(e.starts_with("proxy.upstream.resolver:"), "{e}");
        let e = parse_err(&DESIGN.replace("listen: \"0.0.0.0:8080\"", "listen: \"8080\""));
        assert!(e.starts_with("proxy.listen:"), "{e}");
        let e = parse_err(&DESIGN.replace("address: null", "address: \"x:1\""));
        assert!(e.starts_with("proxy.upstream.address:"), "{e}");
        let e = parse_err(
            &DESIGN.replace("ssm_parameter: /planb/alb2/dns-name", "ssm_parameter: null"),
        );
        assert!(e.starts_with("proxy.upstream.ssm_parameter:"), "{e}");
        let e = parse_err(&DESIGN.replace("dns_refresh_secs: 15", "dns_refresh_secs: 0"));
        assert!(e.starts_with("proxy.upstream.dns_refresh_secs:"), "{e}");
        let e = parse_err(&DESIGN.replace("    port: 80\n", "    port: 80\n    prot: 81\n"));
        assert!(e.contains("prot"), "{e}");
        let e = parse_err(&DESIGN.replace("threads: 2", "threads: many"));
        assert!(e.contains("threads"), "{e}");
        let e = parse_err("version: 1\n");
        assert!(e.starts_with("proxy:"), "{e}");
        let e = parse_err("proxy: [1, 2\n");
        assert!(!e.is_empty());
    }

    #[test]
    fn host_port_splitting() {
        assert_eq!(split_host_port("a.b:80"), Some(("a.b".into(), 80)));
        assert_eq!(
            split_host_port("127.0.0.1:81"),
            Some(("127.0.0.1".into(), 81))
        );
        assert_eq!(split_host_port("[::1]:82"), Some(("::1".into(), 82)));
        assert_eq!(split_host_port("a.b"), None);
        assert_eq!(split_host_port("a.b:0"), None);
        assert_eq!(split_host_port(":80"), None);
    }
}
