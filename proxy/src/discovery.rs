//! Service discovery for the Pingora `LoadBalancer`: the upstream's name (from
//! SSM or `upstream.address`) resolved to addresses, again on every update
//! (`dns_refresh_secs`). A lookup that fails or comes back empty is an error,
//! so the load balancer keeps the last good set.
//!
//! Resolution is asynchronous (hickory), through `upstream.resolver` when set,
//! else the system's configuration; never the blocking getaddrinfo.

use std::collections::{BTreeSet, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use hickory_resolver::config::{NameServerConfigGroup, ResolverConfig};
use hickory_resolver::name_server::TokioConnectionProvider;
use hickory_resolver::TokioResolver;
use pingora::lb::discovery::ServiceDiscovery;
use pingora::lb::Backend;
use pingora::protocols::l4::socket::SocketAddr as PingoraAddr;
use pingora::{Error, ErrorType, Result};

use crate::metrics::Metrics;
use crate::upstream::{SharedTarget, Target};

/// Resolves the shared target on every `discover()`.
pub struct DnsDiscovery {
    /// The name to resolve (swapped by the SSM refresh).
    pub target: SharedTarget,
    /// `upstream.resolver`; `None` is the system's configuration.
    pub resolver: Option<SocketAddr>,
    /// For the refresh failures.
    pub metrics: Arc<Metrics>,
}

impl DnsDiscovery {
    /// The target's addresses now: one for an IP literal, the A/AAAA answer
    /// for a name. Empty answers are errors.
    pub async fn resolve(&self) -> std::result::Result<BTreeSet<SocketAddr>, String> {
        let target = self.target.load_full();
        resolve(&target, self.resolver).await
    }
}

/// See [`DnsDiscovery::resolve`].
pub async fn resolve(
    target: &Target,
    resolver: Option<SocketAddr>,
) -> std::result::Result<BTreeSet<SocketAddr>, String> {
    if let Ok(ip) = target.host.parse::<IpAddr>() {
        return Ok(BTreeSet::from([SocketAddr::new(ip, target.port)]));
    }
    // A fresh resolver per lookup: no cache between refreshes (each refresh
    // asks again) and the system's resolv.conf is re-read if it changed.
    let mut builder = match resolver {
        Some(ns) => TokioResolver::builder_with_config(
            ResolverConfig::from_parts(
                None,
                vec![],
                NameServerConfigGroup::from_ips_clear(&[ns.ip()], ns.port(), true),
            ),
            TokioConnectionProvider::default(),
        ),
        None => TokioResolver::builder_tokio().map_err(|e| format!("system resolver: {e}"))?,
    };
    let opts = builder.options_mut();
    opts.timeout = Duration::from_secs(2);
    opts.attempts = 2;
    opts.cache_size = 0;
    // An absolute name: no search-domain suffixes for a name like ALB2's.
    let name = if target.host.ends_with('.') {
        target.host.clone()
    } else {
        format!("{}.", target.host)
    };
    let lookup = builder
        .build()
        .lookup_ip(name.as_str())
        .await
        .map_err(|e| format!("resolving {}: {e}", target.host))?;
    let addrs: BTreeSet<SocketAddr> = lookup
        .iter()
        .map(|ip| SocketAddr::new(ip, target.port))
        .collect();
    if addrs.is_empty() {
        return Err(format!("resolving {}: empty answer", target.host));
    }
    Ok(addrs)
}

/// Addresses as load-balancer backends.
pub fn backends(addrs: &BTreeSet<SocketAddr>) -> BTreeSet<Backend> {
    addrs
        .iter()
        .map(|a| Backend {
            addr: PingoraAddr::Inet(*a),
            weight: 1,
            ext: Default::default(),
        })
        .collect()
}

#[async_trait]
impl ServiceDiscovery for DnsDiscovery {
    async fn discover(&self) -> Result<(BTreeSet<Backend>, HashMap<u64, bool>)> {
        match self.resolve().await {
            Ok(addrs) => Ok((backends(&addrs), HashMap::new())),
            Err(e) => {
                self.metrics.dns_refresh_failures.inc();
                tracing::warn!(error = %e, "upstream DNS refresh failed; keeping the last good addresses");
                Error::e_explain(ErrorType::Custom("dns"), e)
            }
        }
    }
}
