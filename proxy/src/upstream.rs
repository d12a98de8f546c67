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

    /// A value read from SSM: a host as [`Target::from_value`] takes it, that
    /// `allowed` lets in, on `port` (a `:port` in the value must be that port).
    /// Whoever can write the parameter must not be able to send the traffic,
    /// tokens included, anywhere else.
    pub fn from_ssm_value(
        value: &str,
        port: u16,
        allowed: &HostPatterns,
    ) -> Result<Target, String> {
        let target = Target::from_value(value, port)?;
        if target.port != port {
            return Err(format!(
                "{value:?} names port {}, not proxy.upstream.port ({port})",
                target.port
            ));
        }
        if !allowed.admits(&target.host) {
            return Err(format!(
                "{value:?} is not an allowed upstream: the host matches none of proxy.upstream.ssm_allowed_hosts ({allowed})"
            ));
        }
        Ok(target)
    }
}

/// Host names (or IP literals) an SSM value may name, each exact or with one
/// `*` standing for one or more characters; compared without regard to case,
/// as DNS does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPatterns(Vec<String>);

impl HostPatterns {
    /// ALB2's form of name: an internal ALB's DNS name in any region
    /// (`internal-<name>-<id>.<region>.elb.amazonaws.com`), which is what
    /// infra writes into the parameter.
    pub const ALB2: &'static str = "internal-*.elb.amazonaws.com";

    /// Checks each pattern: a host name or IP literal, with at most one `*`.
    pub fn new(patterns: &[String]) -> Result<HostPatterns, String> {
        if patterns.is_empty() {
            return Err("must list at least one host".into());
        }
        let mut out = Vec::with_capacity(patterns.len());
        for p in patterns {
            let p = p.trim().to_ascii_lowercase();
            let concrete = p.replacen('*', "x", 1);
            if p.matches('*').count() > 1 || !valid_host(&concrete) {
                return Err(format!(
                    "{p:?} is not a host name or IP address with at most one '*'"
                ));
            }
            out.push(p);
        }
        Ok(HostPatterns(out))
    }

    /// Whether `host` matches one of the patterns.
    pub fn admits(&self, host: &str) -> bool {
        let host = host.to_ascii_lowercase();
        self.0.iter().any(|p| match p.split_once('*') {
            Some((head, tail)) => {
                host.len() > head.len() + tail.len()
                    && host.starts_with(head)
                    && host.ends_with(tail)
            }
            None => host == *p,
        })
    }
}

impl Default for HostPatterns {
    fn default() -> Self {
        HostPatterns(vec![HostPatterns::ALB2.to_string()])
    }
}

impl fmt::Display for HostPatterns {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.join(", "))
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
    fn by_default_an_ssm_value_must_be_an_internal_alb_on_the_port() {
        let alb2 = HostPatterns::default();
        for good in [
            "internal-planb-alb2-1234567890.ap-northeast-1.elb.amazonaws.com",
            "INTERNAL-x-1.us-east-1.ELB.amazonaws.com",
            "internal-x-1.eu-west-3.elb.amazonaws.com:80",
        ] {
            let t = Target::from_ssm_value(good, 80, &alb2).expect(good);
            assert_eq!(t.port, 80);
        }
        for bad in [
            "planb-alb2-1.ap-northeast-1.elb.amazonaws.com",
            "internal-x.elb.amazonaws.com.evil.example",
            "evil.example",
            "127.0.0.1",
            "10.0.0.5",
        ] {
            let e = Target::from_ssm_value(bad, 80, &alb2).expect_err(bad);
            assert!(e.contains("proxy.upstream.ssm_allowed_hosts"), "{bad}: {e}");
        }
        let e = Target::from_ssm_value("internal-x-1.us-east-1.elb.amazonaws.com:443", 80, &alb2)
            .expect_err("another port");
        assert!(e.contains("proxy.upstream.port (80)"), "{e}");
    }

    #[test]
    fn host_patterns_widen_the_allow_list_and_are_checked() {
        let local = HostPatterns::new(&["127.0.0.*".into(), "alb2.planb.test".into()]).unwrap();
        assert!(local.admits("127.0.0.2"));
        assert!(local.admits("ALB2.planb.test"));
        assert!(!local.admits("127.0.0."));
        assert!(!local.admits("127.0.1.2"));
        assert!(!local.admits("x.alb2.planb.test"));
        assert_eq!(
            Target::from_ssm_value("127.0.0.3", 8080, &local),
            Ok(Target {
                host: "127.0.0.3".into(),
                port: 8080
            })
        );
        for bad in [&[][..], &["a*b*c".to_string()], &["http://x".to_string()]] {
            assert!(HostPatterns::new(bad).is_err(), "{bad:?}");
        }
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
