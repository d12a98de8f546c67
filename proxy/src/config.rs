//! The YAML file: Pingora's own server keys at the top level, ours under `proxy:`.
//!
//! Both halves are parsed from the same text once, at start. Every error names
//! the key it is about (`proxy.upstream.port: ...`), so a bad file is one clear
//! line and a non-zero exit, never a panic.

use std::fmt;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use pingora::listeners::L4BufferSettings;
use pingora::server::configuration::ServerConf;
use serde::Deserialize;

use crate::upstream::{split_host_port, valid_host, HostPatterns};

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
    /// One line per request (see `access_log`).
    pub access_log: bool,
    /// How long client (ALB1) connections may idle and take to send a head.
    pub downstream: DownstreamConfig,
    /// The upstream (ALB2) and how to find it.
    pub upstream: UpstreamConfig,
    /// The user-space buffers of each client connection on `listen`.
    pub listen_buffers: L4BufferSettings,
}

/// Limits on client (ALB1) connections, applied to every request on a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DownstreamConfig {
    /// How long an idle connection is kept open waiting for its next request.
    /// Must exceed ALB1's idle timeout, so ALB1 is always the side that closes.
    pub keepalive: Duration,
    /// How long a request head may take from its first byte to its last.
    pub request_header_timeout: Duration,
    /// Requests served on one connection; the last one's response carries
    /// `Connection: close`. ALB1 keeps its connections for hours: closing
    /// each after this many requests (as Nginx's `keepalive_requests`) makes
    /// ALB1 open new ones, which spread over the proxies a scale-out added.
    pub max_requests: u32,
}

/// Where the upstream's name comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// An SSM parameter holding ALB2's DNS name (the production path).
    Ssm {
        /// The parameter's name (`proxy.upstream.ssm_parameter`).
        parameter: String,
        /// The hosts its value may name (`proxy.upstream.ssm_allowed_hosts`).
        allowed_hosts: HostPatterns,
    },
    /// A fixed `host:port` (local stacks, benchmarks): no SSM call.
    Fixed {
        /// A DNS name or an IP literal.
        host: String,
        /// The TCP port.
        port: u16,
    },
}

/// `proxy.upstream`, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct UpstreamConfig {
    /// SSM parameter or fixed address.
    pub source: Source,
    /// Port used with a name read from SSM (the parameter holds a bare host name).
    pub port: u16,
    /// How often the SSM parameter is re-read.
    pub ssm_refresh: Duration,
    /// The whole start-up budget for reading the parameter and resolving
    /// the name (retries with backoff inside).
    pub startup_timeout: Duration,
    /// A DNS server to ask instead of the system's resolver.
    pub resolver: Option<SocketAddr>,
    /// How often the name is resolved again.
    pub dns_refresh: Duration,
    /// Bound on one TCP connect to an upstream address.
    pub connect_timeout: Duration,
    /// Bound on each upstream read and write (a longer wait is a 504).
    pub read_timeout: Duration,
    /// How long an idle pooled upstream connection is kept.
    pub idle_timeout: Duration,
    /// How often each address gets a TCP health check.
    pub health_check: Duration,
}

#[derive(Deserialize)]
struct RawFile {
    proxy: Option<RawProxy>,
}

/// The `proxy:` section as written; every key may be left out for its default.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawProxy {
    /// `proxy.listen`: required.
    listen: Option<String>,
    /// `proxy.admin_listen`: default `"127.0.0.1:9100"`; `null` turns it off.
    admin_listen: Option<String>,
    /// `proxy.access_log`: default `true`.
    access_log: bool,
    /// `proxy.downstream_keepalive_secs`: default 75.
    downstream_keepalive_secs: u64,
    /// `proxy.request_header_timeout_secs`: default 10.
    request_header_timeout_secs: u64,
    /// `proxy.downstream_max_requests`: default 1000.
    downstream_max_requests: u32,
    /// `proxy.listen_read_buffer_bytes`: default `null` (Pingora's, 64 KiB); 0 reads unbuffered.
    listen_read_buffer_bytes: Option<usize>,
    /// `proxy.listen_write_buffer_bytes`: default `null` (Pingora's, 1460); 0 writes unbuffered.
    listen_write_buffer_bytes: Option<usize>,
    /// `proxy.upstream`: required.
    upstream: Option<RawUpstream>,
}

impl Default for RawProxy {
    fn default() -> Self {
        RawProxy {
            listen: None,
            admin_listen: Some("127.0.0.1:9100".into()),
            access_log: true,
            downstream_keepalive_secs: 75,
            request_header_timeout_secs: 10,
            downstream_max_requests: 1000,
            listen_read_buffer_bytes: None,
            listen_write_buffer_bytes: None,
            upstream: None,
        }
    }
}

/// `proxy.upstream` as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawUpstream {
    /// `proxy.upstream.ssm_parameter`: no default (this or `address`).
    ssm_parameter: Option<String>,
    /// `proxy.upstream.ssm_allowed_hosts`: default ALB2's form of name only.
    ssm_allowed_hosts: Option<Vec<String>>,
    /// `proxy.upstream.ssm_refresh_secs`: default 300.
    ssm_refresh_secs: u64,
    /// `proxy.upstream.startup_timeout_secs` (alias `ssm_startup_timeout_secs`): default 30.
    #[serde(alias = "ssm_startup_timeout_secs")]
    startup_timeout_secs: u64,
    /// `proxy.upstream.address`: no default (this or `ssm_parameter`).
    address: Option<String>,
    /// `proxy.upstream.port`: default 80.
    port: u16,
    /// `proxy.upstream.resolver`: default `null` (the system's resolver).
    resolver: Option<String>,
    /// `proxy.upstream.dns_refresh_secs`: default 15.
    dns_refresh_secs: u64,
    /// `proxy.upstream.connect_timeout_ms`: default 2000.
    connect_timeout_ms: u64,
    /// `proxy.upstream.read_timeout_secs`: default 60.
    read_timeout_secs: u64,
    /// `proxy.upstream.idle_timeout_secs`: default 50 (below ALB2's 60 s idle timeout).
    idle_timeout_secs: u64,
    /// `proxy.upstream.health_check_secs`: default 5.
    health_check_secs: u64,
}

impl Default for RawUpstream {
    fn default() -> Self {
        RawUpstream {
            ssm_parameter: None,
            ssm_allowed_hosts: None,
            ssm_refresh_secs: 300,
            startup_timeout_secs: 30,
            address: None,
            port: 80,
            resolver: None,
            dns_refresh_secs: 15,
            connect_timeout_ms: 2000,
            read_timeout_secs: 60,
            idle_timeout_secs: 50,
            health_check_secs: 5,
        }
    }
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
                let allowed_hosts = match u.ssm_allowed_hosts {
                    Some(list) => HostPatterns::new(&list).map_err(|e| {
                        ConfigError(format!("proxy.upstream.ssm_allowed_hosts: {e}"))
                    })?,
                    None => HostPatterns::default(),
                };
                Source::Ssm {
                    parameter: p,
                    allowed_hosts,
                }
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
        if raw.downstream_max_requests == 0 {
            return err("proxy.downstream_max_requests: must be at least 1");
        }
        if u.connect_timeout_ms == 0 {
            return err("proxy.upstream.connect_timeout_ms: must be greater than 0");
        }
        Ok(ProxyConfig {
            listen,
            admin_listen,
            access_log: raw.access_log,
            downstream: DownstreamConfig {
                keepalive: secs(
                    "proxy.downstream_keepalive_secs",
                    raw.downstream_keepalive_secs,
                )?,
                request_header_timeout: secs(
                    "proxy.request_header_timeout_secs",
                    raw.request_header_timeout_secs,
                )?,
                max_requests: raw.downstream_max_requests,
            },
            listen_buffers: L4BufferSettings {
                read: raw.listen_read_buffer_bytes,
                write: raw.listen_write_buffer_bytes,
            },
            upstream: UpstreamConfig {
                source,
                port: u.port,
                ssm_refresh: secs("proxy.upstream.ssm_refresh_secs", u.ssm_refresh_secs)?,
                startup_timeout: secs(
                    "proxy.upstream.startup_timeout_secs",
                    u.startup_timeout_secs,
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
                parameter: "/planb/alb2/dns-name".into(),
                allowed_hosts: HostPatterns::default(),
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
    fn downstream_limits_default_and_are_read() {
        let c = Config::parse(DESIGN).unwrap();
        assert_eq!(c.proxy.downstream.keepalive, Duration::from_secs(75));
        assert_eq!(
            c.proxy.downstream.request_header_timeout,
            Duration::from_secs(10)
        );
        assert_eq!(c.proxy.upstream.startup_timeout, Duration::from_secs(30));
        let text = DESIGN.replace(
            "  upstream:\n",
            "  downstream_keepalive_secs: 90\n  request_header_timeout_secs: 5\n  upstream:\n",
        );
        let c = Config::parse(&text).unwrap();
        assert_eq!(c.proxy.downstream.keepalive, Duration::from_secs(90));
        assert_eq!(
            c.proxy.downstream.request_header_timeout,
            Duration::from_secs(5)
        );
        let e = parse_err(&DESIGN.replace(
            "  upstream:\n",
            "  downstream_keepalive_secs: 0\n  upstream:\n",
        ));
        assert!(e.starts_with("proxy.downstream_keepalive_secs:"), "{e}");
    }

    #[test]
    fn downstream_max_requests_defaults_to_nginx_and_is_checked() {
        assert_eq!(
            Config::parse(DESIGN).unwrap().proxy.downstream.max_requests,
            1000
        );
        let with = |v: &str| {
            DESIGN.replace(
                "  upstream:\n",
                &format!("  downstream_max_requests: {v}\n  upstream:\n"),
            )
        };
        let c = Config::parse(&with("5")).unwrap();
        assert_eq!(c.proxy.downstream.max_requests, 5);
        let e = parse_err(&with("0"));
        assert!(e.starts_with("proxy.downstream_max_requests:"), "{e}");
        let e = parse_err(&with("-1"));
        assert!(e.contains("downstream_max_requests"), "{e}");
        let e = parse_err(&with("many"));
        assert!(e.contains("downstream_max_requests"), "{e}");
    }

    #[test]
    fn listen_buffers_default_to_pingoras_and_are_read() {
        let c = Config::parse(DESIGN).unwrap();
        assert_eq!(c.proxy.listen_buffers, L4BufferSettings::default());
        let text = DESIGN.replace(
            "  upstream:\n",
            "  listen_read_buffer_bytes: 0\n  listen_write_buffer_bytes: 4096\n  upstream:\n",
        );
        let c = Config::parse(&text).unwrap();
        assert_eq!(c.proxy.listen_buffers, L4BufferSettings::new(0, 4096));
        let e = parse_err(&DESIGN.replace(
            "  upstream:\n",
            "  listen_read_buffer_bytes: -1\n  upstream:\n",
        ));
        assert!(e.contains("listen_read_buffer_bytes"), "{e}");
    }

    #[test]
    fn startup_timeout_has_the_old_name_as_an_alias() {
        let with =
            |line: &str| DESIGN.replace("    port: 80\n", &format!("    port: 80\n{line}\n"));
        let c = Config::parse(&with("    startup_timeout_secs: 7")).unwrap();
        assert_eq!(c.proxy.upstream.startup_timeout, Duration::from_secs(7));
        let c = Config::parse(&with("    ssm_startup_timeout_secs: 8")).unwrap();
        assert_eq!(c.proxy.upstream.startup_timeout, Duration::from_secs(8));
        let e = parse_err(&with(
            "    startup_timeout_secs: 7\n    ssm_startup_timeout_secs: 8",
        ));
        assert!(e.contains("startup_timeout_secs"), "{e}");
    }

    #[test]
    fn the_shipped_systemd_config_parses() {
        let text = include_str!("../../systemd/proxy.yaml");
        let c = Config::parse(text).unwrap();
        // Production keeps the strict allow list: ALB2's form of name only.
        assert_eq!(
            c.proxy.upstream.source,
            Source::Ssm {
                parameter: "/planb/alb2/dns-name".into(),
                allowed_hosts: HostPatterns::default(),
            }
        );
        assert!(c.server.daemon_wait_for_ready);
        // The upstream timeouts on tokio's per-runtime timer.
        assert_eq!(c.server.fast_timeout_to_tokio_threshold_seconds, Some(0));
        // infra reads this key from the file and sets ALB1's idle timeout below it.
        assert_eq!(c.proxy.downstream.keepalive, Duration::from_secs(75));
        assert!(text.contains("\n  downstream_keepalive_secs: 75\n"));
        assert_eq!(c.proxy.downstream.max_requests, 1000);
        // Client connections read without Pingora's 64 KiB buffer and write
        // through a 16 KiB one, so a response of up to ~16 KiB is one send.
        assert_eq!(c.proxy.listen_buffers, L4BufferSettings::new(0, 16384));
        // A reload's old process waits for ALB1's kept connections (ALB1's idle
        // timeout is 60 s, ours 75 s): the grace period outlasts both, and the
        // unit's stop timeout outlasts the grace period and the runtimes' stop.
        let grace = c.server.grace_period_seconds.unwrap();
        assert!(grace > c.proxy.downstream.keepalive.as_secs(), "{grace}");
        let unit = include_str!("../../systemd/planb-proxy.service");
        let stop: u64 = unit
            .lines()
            .find_map(|l| l.strip_prefix("TimeoutStopSec="))
            .and_then(|v| v.trim().parse().ok())
            .expect("TimeoutStopSec= in seconds");
        let runtimes = c.server.graceful_shutdown_timeout_seconds.unwrap();
        assert!(stop > grace + runtimes, "TimeoutStopSec={stop}");
    }

    #[test]
    fn ssm_allowed_hosts_widens_the_default_and_is_checked() {
        let with = |line: &str| {
            DESIGN.replace(
                "    ssm_refresh_secs: 300\n",
                &format!("    ssm_refresh_secs: 300\n{line}\n"),
            )
        };
        let c = Config::parse(&with("    ssm_allowed_hosts: [\"127.0.0.1\"]")).unwrap();
        let Source::Ssm { allowed_hosts, .. } = c.proxy.upstream.source else {
            panic!("not SSM")
        };
        assert!(allowed_hosts.admits("127.0.0.1"));
        assert!(!allowed_hosts.admits("internal-x-1.us-east-1.elb.amazonaws.com"));
        for bad in ["[]", "[\"a*b*\"]", "[\"http://x\"]"] {
            let e = parse_err(&with(&format!("    ssm_allowed_hosts: {bad}")));
            assert!(e.starts_with("proxy.upstream.ssm_allowed_hosts:"), "{e}");
        }
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
}
