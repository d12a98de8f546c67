//! What the upstream is: a name and port ([`Target`]) shared between the SSM
//! refresh and discovery, and the load balancer over its addresses
//! ([`Upstreams`]).

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use arc_swap::ArcSwap;
use pingora::lb::{selection::RoundRobin, LoadBalancer};

/// The upstream load balancer: the addresses discovery found, round robin,
/// with health from the TCP check.
pub type Upstreams = LoadBalancer<RoundRobin>;

/// The upstream as a name and port (the name may be an IP literal).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// A DNS name or an IP literal (IPv6 without brackets).
    pub host: String,
    /// The TCP port.
    pub port: u16,
}

impl Target {
    /// `value` as `host:port`, or as a bare `host` with `default_port`
    /// (an SSM parameter usually holds ALB2's bare DNS name). The host is
    /// checked as `upstream.address`'s is: a DNS name or an IP literal.
    pub fn from_value(value: &str, default_port: u16) -> Result<Target, String> {
        let (host, port) = match split_host_port(value) {
            Some((host, port)) => (host, port),
            None => (value.to_string(), default_port),
        };
        if !valid_host(&host) {
            return Err(format!(
                "{value:?} is not a host name or an IP address (optionally with \":port\")"
            ));
        }
        Ok(Target { host, port })
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// The current target, swapped by the SSM refresh and read by discovery.
pub type SharedTarget = Arc<ArcSwap<Target>>;

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
pub fn valid_host(host: &str) -> bool {
    if host.parse::<IpAddr>().is_ok() {
        return true;
    }
    !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn parameter_values_become_targets() {
        assert_eq!(
            Target::from_value("internal-alb2-1.ap-northeast-1.elb.amazonaws.com", 80),
            Ok(Target {
                host: "internal-alb2-1.ap-northeast-1.elb.amazonaws.com".into(),
                port: 80
            })
        );
        assert_eq!(
            Target::from_value("127.0.0.2:8080", 80),
            Ok(Target {
                host: "127.0.0.2".into(),
                port: 8080
            })
        );
        assert_eq!(
            Target::from_value("[::1]:81", 80).unwrap().to_string(),
            "[::1]:81"
        );
        assert_eq!(
            Target::from_value("::1", 80).unwrap().to_string(),
            "[::1]:80"
        );
    }

    #[test]
    fn parameter_values_that_are_no_host_are_refused() {
        for bad in [
            "not a host",
            "http://alb2.example.com",
            "alb2.example.com/path",
            "alb2..example.com",
            "alb2.example.com:0",
            "alb2.example.com:http",
            "-",
            "a.b:80:80",
        ] {
            let e = Target::from_value(bad, 80).expect_err(bad);
            assert!(e.contains("not a host name"), "{bad}: {e}");
        }
    }
}
