//! What the verifier accepts: the user pools and their app clients, the
//! optional ALB data check, and the limits of its caches.
//!
//! Built in code ([`VerifierConfig::builder`]) or read from the environment
//! ([`VerifierConfig::from_env`]) with planb-backend's variable names. Every
//! problem is a [`ConfigError`] naming the variable (or the builder setting
//! it stands for) and what is wrong with it.

use std::fmt;
use std::time::Duration;

use crate::cache::CacheLimits;
use crate::key_fetch::{KEY_FETCH_MAX_BYTES, KEY_MAX_AGE};

/// Verified tokens kept by default (`TOKEN_CACHE_SIZE`).
const DEFAULT_CACHE_ENTRIES: u64 = 100_000;
/// The verified-token cache's default memory budget (`TOKEN_CACHE_BYTES`).
const DEFAULT_CACHE_BYTES: u64 = 32 * 1024 * 1024;
/// The most clock skew the verifier allows on `exp` and `nbf`.
const MAX_LEEWAY: Duration = Duration::from_secs(300);

/// A missing or malformed setting: `Display` is one line naming it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The environment variable at fault, or the one the builder setting stands for.
    pub var: &'static str,
    /// What is wrong with it.
    pub problem: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.var, self.problem)
    }
}

impl std::error::Error for ConfigError {}

impl ConfigError {
    /// `var` is wrong for this reason (for an application's own settings too).
    pub fn new(var: &'static str, problem: impl Into<String>) -> ConfigError {
        ConfigError {
            var,
            problem: problem.into(),
        }
    }
}

fn bad(var: &'static str, problem: impl Into<String>) -> ConfigError {
    ConfigError::new(var, problem)
}

/// One Cognito user pool whose access tokens are accepted, and the app
/// clients they may be issued to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserPool {
    issuer: String,
    client_ids: Vec<String>,
    jwks_url: String,
}

impl UserPool {
    /// The pool `pool_id` (`REGION_xxxx`, its region taken from the id),
    /// accepting tokens issued to any of `client_ids`.
    ///
    /// ```
    /// let pool = cognito_verifier::UserPool::new("eu-west-1_AbC123", ["client1"]).unwrap();
    /// assert_eq!(pool.issuer(), "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbC123");
    /// assert!(cognito_verifier::UserPool::new("AbC123", ["client1"]).is_err());
    /// ```
    pub fn new<I, S>(pool_id: &str, client_ids: I) -> Result<UserPool, ConfigError>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let region = pool_id.split_once('_').map_or("", |(r, _)| r);
        UserPool::in_region(region, pool_id, client_ids)
    }

    /// The pool `pool_id` in `region` (as `COGNITO_REGION` names it).
    pub fn in_region<I, S>(
        region: &str,
        pool_id: &str,
        client_ids: I,
    ) -> Result<UserPool, ConfigError>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        if !valid_region(region) {
            return Err(bad(
                "COGNITO_REGION",
                "must be an AWS region such as eu-west-1",
            ));
        }
        if !valid_pool_id(pool_id) {
            return Err(bad("COGNITO_USER_POOL_ID", "must look like REGION_xxxx"));
        }
        let client_ids: Vec<String> = client_ids.into_iter().map(Into::into).collect();
        let valid = |id: &String| !id.is_empty() && id.chars().all(|c| c.is_ascii_alphanumeric());
        if client_ids.is_empty() || !client_ids.iter().all(valid) {
            return Err(bad(
                "COGNITO_APP_CLIENT_ID",
                "must be one or more app client ids (letters and digits)",
            ));
        }
        let issuer = format!("https://cognito-idp.{region}.amazonaws.com/{pool_id}");
        Ok(UserPool {
            jwks_url: format!("{issuer}/.well-known/jwks.json"),
            issuer,
            client_ids,
        })
    }

    /// Fetches the pool's keys from `url` instead of the issuer's
    /// `/.well-known/jwks.json` (a local stand-in of Cognito, say).
    pub fn with_jwks_url(mut self, url: &str) -> Result<UserPool, ConfigError> {
        self.jwks_url = http_url("COGNITO_JWKS_URL", url)?;
        Ok(self)
    }

    /// The only `iss` accepted from this pool.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The app clients whose tokens are accepted.
    pub fn client_ids(&self) -> &[String] {
        &self.client_ids
    }

    /// Where the pool's keys are fetched from.
    pub fn jwks_url(&self) -> &str {
        &self.jwks_url
    }
}

/// The check of ALB's signed `x-amzn-oidc-data`: which load balancer must
/// have signed it, and where its public keys are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlbConfig {
    arn: String,
    key_url: String,
    key_max_age: Duration,
}

impl AlbConfig {
    /// The application load balancer `arn`; its keys come from its region's
    /// `https://public-keys.auth.elb.REGION.amazonaws.com`, never from the token.
    pub fn new(arn: &str) -> Result<AlbConfig, ConfigError> {
        let arn = arn.trim();
        let parts: Vec<&str> = arn.splitn(6, ':').collect();
        let ok = parts.len() == 6
            && parts[0] == "arn"
            && parts[2] == "elasticloadbalancing"
            && valid_region(parts[3])
            && parts[4].len() == 12
            && parts[4].chars().all(|c| c.is_ascii_digit())
            && parts[5].starts_with("loadbalancer/app/");
        if !ok {
            return Err(bad(
                "ALB_ARN",
                "must be an application load balancer ARN (arn:aws:elasticloadbalancing:REGION:ACCOUNT:loadbalancer/app/NAME/ID)",
            ));
        }
        // Outside the aws partition the key URL must be given (`with_key_url`).
        let key_url = match parts[1] {
            "aws" => format!("https://public-keys.auth.elb.{}.amazonaws.com", parts[3]),
            _ => String::new(),
        };
        Ok(AlbConfig {
            arn: arn.to_string(),
            key_url,
            key_max_age: KEY_MAX_AGE,
        })
    }

    /// Fetches the key for `kid` from `{url}/{kid}` instead.
    pub fn with_key_url(mut self, url: &str) -> Result<AlbConfig, ConfigError> {
        self.key_url = http_url("ALB_PUBLIC_KEY_URL", url)?;
        Ok(self)
    }

    /// Fetches a kept key again once it is `age` old (an hour by default),
    /// dropping it if its URL then answers 404.
    pub fn with_key_max_age(mut self, age: Duration) -> Result<AlbConfig, ConfigError> {
        self.key_max_age = positive("ALB_KEY_MAX_AGE_SECS", age)?;
        Ok(self)
    }

    /// The load balancer that must have signed the data token.
    pub fn arn(&self) -> &str {
        &self.arn
    }

    /// Base URL of the load balancer's public keys.
    pub fn key_url(&self) -> &str {
        &self.key_url
    }

    /// How old a kept key may get before it is fetched again.
    pub fn key_max_age(&self) -> Duration {
        self.key_max_age
    }
}

/// Everything the verifier accepts and keeps, validated.
#[derive(Debug, Clone)]
pub struct VerifierConfig {
    pub(crate) pools: Vec<UserPool>,
    pub(crate) alb: Option<AlbConfig>,
    pub(crate) token_cache: CacheLimits,
    pub(crate) leeway: Duration,
    pub(crate) jwks_max_age: Duration,
}

impl VerifierConfig {
    /// A configuration built in code; see [`VerifierConfigBuilder`].
    pub fn builder() -> VerifierConfigBuilder {
        VerifierConfigBuilder::default()
    }

    /// Reads the process environment: `COGNITO_USER_POOL_ID`,
    /// `COGNITO_REGION`, `COGNITO_APP_CLIENT_ID` (comma-separated), and
    /// optionally `COGNITO_JWKS_URL`, `JWKS_MAX_AGE_SECS`, `ALB_ARN`,
    /// `ALB_PUBLIC_KEY_URL`, `ALB_KEY_MAX_AGE_SECS`, `TOKEN_CACHE_SIZE`,
    /// `TOKEN_CACHE_BYTES`, `JWT_LEEWAY_SECS`.
    pub fn from_env() -> Result<VerifierConfig, ConfigError> {
        VerifierConfig::from_lookup(|k| {
            std::env::var_os(k).map(|v| v.to_string_lossy().into_owned())
        })
    }

    /// [`Self::from_env`] through `get` (a map in tests, or an application's
    /// own lookup). An empty value counts as unset, as ECS task definitions
    /// often leave them.
    pub fn from_lookup(
        get: impl Fn(&str) -> Option<String>,
    ) -> Result<VerifierConfig, ConfigError> {
        let get = |k: &str| {
            get(k)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let required = |var: &'static str| get(var).ok_or_else(|| bad(var, "required, not set"));
        let pool_id = required("COGNITO_USER_POOL_ID")?;
        let region = required("COGNITO_REGION")?;
        let clients = required("COGNITO_APP_CLIENT_ID")?;
        let mut pool = UserPool::in_region(&region, &pool_id, clients.split(',').map(str::trim))?;
        if let Some(url) = get("COGNITO_JWKS_URL") {
            pool = pool.with_jwks_url(&url)?;
        }
        let number = |var: &'static str, default: u64| match get(var) {
            None => Ok(default),
            Some(raw) => raw
                .parse::<u64>()
                .map_err(|_| bad(var, format!("must be a whole number, got {raw:?}"))),
        };
        let secs = |var, default: Duration| number(var, default.as_secs()).map(Duration::from_secs);
        let mut builder = VerifierConfig::builder()
            .user_pool(pool)
            .jwks_max_age(secs("JWKS_MAX_AGE_SECS", KEY_MAX_AGE)?)
            .token_cache(
                number("TOKEN_CACHE_SIZE", DEFAULT_CACHE_ENTRIES)?,
                number("TOKEN_CACHE_BYTES", DEFAULT_CACHE_BYTES)?,
            )
            .leeway(secs("JWT_LEEWAY_SECS", Duration::ZERO)?);
        if let Some(arn) = get("ALB_ARN") {
            let mut alb = AlbConfig::new(&arn)?;
            if let Some(url) = get("ALB_PUBLIC_KEY_URL") {
                alb = alb.with_key_url(&url)?;
            }
            let age = secs("ALB_KEY_MAX_AGE_SECS", KEY_MAX_AGE)?;
            builder = builder.alb(alb.with_key_max_age(age)?);
        }
        builder.build()
    }

    /// The accepted user pools.
    pub fn user_pools(&self) -> &[UserPool] {
        &self.pools
    }

    /// The ALB data check, when configured.
    pub fn alb(&self) -> Option<&AlbConfig> {
        self.alb.as_ref()
    }

    /// The verified-token cache's bounds: (entries, bytes); either 0 turns it off.
    pub fn token_cache(&self) -> (u64, u64) {
        (self.token_cache.entries, self.token_cache.bytes)
    }

    /// The most memory the verifier's caches and queues take, in bytes: the
    /// verified-token caches (access tokens, and ALB data when checked), and
    /// each key source's penalised `kid`s, fetch queue and kept keys.
    pub fn max_cache_bytes(&self) -> u64 {
        let sources = self.pools.len() as u64 + u64::from(self.alb.is_some());
        let token_caches = 1 + u64::from(self.alb.is_some());
        token_caches * self.token_cache.bytes + sources * KEY_FETCH_MAX_BYTES
    }
}

/// Builds a [`VerifierConfig`]: at least one user pool; everything else has
/// a default (no ALB check, 100,000 cached tokens in at most 32 MiB, no
/// leeway, key sets fetched again hourly).
///
/// ```
/// use std::time::Duration;
/// use cognito_verifier::{AlbConfig, UserPool, VerifierConfig};
///
/// let config = VerifierConfig::builder()
///     .user_pool(UserPool::new("eu-west-1_AbC123", ["webclient", "batchclient"])?)
///     .user_pool(UserPool::new("us-east-1_XyZ789", ["partnerclient"])?)
///     .alb(AlbConfig::new("arn:aws:elasticloadbalancing:eu-west-1:123456789012:loadbalancer/app/web/50dc6c495c0c9188")?)
///     .leeway(Duration::from_secs(5))
///     .build()?;
/// assert_eq!(config.user_pools().len(), 2);
/// assert!(VerifierConfig::builder().build().is_err(), "no pool");
/// # Ok::<(), cognito_verifier::ConfigError>(())
/// ```
#[derive(Debug, Clone)]
pub struct VerifierConfigBuilder {
    pools: Vec<UserPool>,
    alb: Option<AlbConfig>,
    token_cache: CacheLimits,
    leeway: Duration,
    jwks_max_age: Duration,
}

impl Default for VerifierConfigBuilder {
    fn default() -> Self {
        VerifierConfigBuilder {
            pools: Vec::new(),
            alb: None,
            token_cache: CacheLimits {
                entries: DEFAULT_CACHE_ENTRIES,
                bytes: DEFAULT_CACHE_BYTES,
            },
            leeway: Duration::ZERO,
            jwks_max_age: KEY_MAX_AGE,
        }
    }
}

impl VerifierConfigBuilder {
    /// Also accepts access tokens of `pool`.
    pub fn user_pool(mut self, pool: UserPool) -> Self {
        self.pools.push(pool);
        self
    }

    /// Requires ALB's signed data with every token that came through ALB's
    /// sign-in, and refuses a user's token sent as a bearer token.
    pub fn alb(mut self, alb: AlbConfig) -> Self {
        self.alb = Some(alb);
        self
    }

    /// Keeps at most `entries` verified tokens in at most `bytes`; 0 turns the cache off.
    pub fn token_cache(mut self, entries: u64, bytes: u64) -> Self {
        self.token_cache = CacheLimits { entries, bytes };
        self
    }

    /// Allows this much clock skew on `exp` and `nbf` (at most 5 minutes).
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self
    }

    /// Fetches each pool's key set again once it is this old.
    pub fn jwks_max_age(mut self, age: Duration) -> Self {
        self.jwks_max_age = age;
        self
    }

    /// The configuration, or the first setting that cannot work.
    pub fn build(self) -> Result<VerifierConfig, ConfigError> {
        if self.pools.is_empty() {
            return Err(bad(
                "COGNITO_USER_POOL_ID",
                "at least one user pool is required",
            ));
        }
        for (i, pool) in self.pools.iter().enumerate() {
            if self.pools[..i].iter().any(|p| p.issuer == pool.issuer) {
                return Err(bad(
                    "COGNITO_USER_POOL_ID",
                    format!("{} is given twice", pool.issuer),
                ));
            }
        }
        if self.leeway > MAX_LEEWAY {
            return Err(bad("JWT_LEEWAY_SECS", "must be at most 300"));
        }
        if self.alb.as_ref().is_some_and(|a| a.key_url.is_empty()) {
            return Err(bad(
                "ALB_PUBLIC_KEY_URL",
                "required when ALB_ARN is outside the aws partition",
            ));
        }
        Ok(VerifierConfig {
            pools: self.pools,
            alb: self.alb,
            token_cache: self.token_cache,
            leeway: self.leeway,
            jwks_max_age: positive("JWKS_MAX_AGE_SECS", self.jwks_max_age)?,
        })
    }
}

/// At least a second.
fn positive(var: &'static str, age: Duration) -> Result<Duration, ConfigError> {
    if age < Duration::from_secs(1) {
        return Err(bad(var, "must be at least 1 second"));
    }
    Ok(age)
}

/// `region_xxxx`: the region part and an id of letters and digits.
fn valid_pool_id(pool: &str) -> bool {
    match pool.split_once('_') {
        Some((region, id)) => {
            valid_region(region) && !id.is_empty() && id.chars().all(|c| c.is_ascii_alphanumeric())
        }
        None => false,
    }
}

/// Lowercase letters, digits and dashes, e.g. `ap-northeast-1`; it ends up in URLs.
fn valid_region(region: &str) -> bool {
    region.len() <= 32
        && region.contains('-')
        && region
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

/// An `http://` or `https://` URL, without its trailing slashes.
fn http_url(var: &'static str, url: &str) -> Result<String, ConfigError> {
    let url = url.trim().trim_end_matches('/');
    if url.starts_with("https://") || url.starts_with("http://") {
        Ok(url.to_string())
    } else {
        Err(bad(var, "must be an http:// or https:// URL"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    const BASE: [(&str, &str); 3] = [
        ("COGNITO_USER_POOL_ID", "eu-west-1_AbC123"),
        ("COGNITO_REGION", "eu-west-1"),
        ("COGNITO_APP_CLIENT_ID", "client1, client2"),
    ];

    fn lookup(pairs: &[(&str, &str)]) -> Result<VerifierConfig, ConfigError> {
        let map: HashMap<&str, &str> = pairs.iter().copied().collect();
        VerifierConfig::from_lookup(|k| map.get(k).map(|v| v.to_string()))
    }

    fn with(extra: &[(&'static str, &'static str)]) -> Result<VerifierConfig, ConfigError> {
        let mut all = BASE.to_vec();
        all.extend_from_slice(extra);
        lookup(&all)
    }

    #[test]
    fn defaults() {
        let c = with(&[]).unwrap();
        let pool = &c.user_pools()[0];
        assert_eq!(
            pool.issuer(),
            "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbC123"
        );
        assert_eq!(
            pool.jwks_url(),
            format!("{}/.well-known/jwks.json", pool.issuer())
        );
        assert_eq!(pool.client_ids(), ["client1", "client2"]);
        assert_eq!(c.token_cache(), (100_000, 32 * 1024 * 1024));
        assert_eq!(c.leeway, Duration::ZERO);
        assert_eq!(c.jwks_max_age, Duration::from_secs(3600));
        assert!(c.alb().is_none());
    }

    #[test]
    fn each_missing_required_variable_is_named() {
        for (var, _) in BASE {
            let pairs: Vec<_> = BASE.iter().filter(|(k, _)| *k != var).copied().collect();
            let err = lookup(&pairs).unwrap_err();
            assert_eq!(err.var, var);
            assert!(err.to_string().starts_with(var));
            assert!(!err.to_string().contains('\n'));
        }
    }

    #[test]
    fn malformed_values_are_named() {
        for (var, val) in [
            ("TOKEN_CACHE_SIZE", "-1"),
            ("TOKEN_CACHE_SIZE", "lots"),
            ("TOKEN_CACHE_BYTES", "32MiB"),
            ("JWT_LEEWAY_SECS", "1h"),
            ("JWT_LEEWAY_SECS", "301"),
            ("JWKS_MAX_AGE_SECS", "0"),
            ("COGNITO_JWKS_URL", "file:///etc/passwd"),
            ("ALB_ARN", "arn:aws:s3:::bucket"),
            ("COGNITO_REGION", "EU WEST"),
            ("COGNITO_USER_POOL_ID", "nounderscore"),
            ("COGNITO_APP_CLIENT_ID", "a,,b"),
        ] {
            let mut pairs: Vec<_> = BASE.iter().filter(|(k, _)| *k != var).copied().collect();
            pairs.push((var, val));
            assert_eq!(lookup(&pairs).unwrap_err().var, var, "{var}={val}");
        }
    }

    #[test]
    fn alb_key_url_comes_from_the_arn_region() {
        let arn = "arn:aws:elasticloadbalancing:us-east-2:123456789012:loadbalancer/app/planb/50dc6c495c0c9188";
        let c = with(&[("ALB_ARN", arn)]).unwrap();
        let alb = c.alb().unwrap();
        assert_eq!(alb.arn(), arn);
        assert_eq!(
            alb.key_url(),
            "https://public-keys.auth.elb.us-east-2.amazonaws.com"
        );
        assert_eq!(alb.key_max_age(), Duration::from_secs(3600));
        let c = with(&[
            ("ALB_ARN", arn),
            ("ALB_PUBLIC_KEY_URL", "http://127.0.0.1:9/keys/"),
        ])
        .unwrap();
        assert_eq!(c.alb().unwrap().key_url(), "http://127.0.0.1:9/keys");
        let c = with(&[("ALB_ARN", arn), ("ALB_KEY_MAX_AGE_SECS", "60")]).unwrap();
        assert_eq!(c.alb().unwrap().key_max_age(), Duration::from_secs(60));
        for bad in ["0", "-1", "1h"] {
            let e = with(&[("ALB_ARN", arn), ("ALB_KEY_MAX_AGE_SECS", bad)]).unwrap_err();
            assert_eq!(e.var, "ALB_KEY_MAX_AGE_SECS", "{bad}");
        }
        let china = "arn:aws-cn:elasticloadbalancing:cn-north-1:123456789012:loadbalancer/app/p/1";
        assert_eq!(
            with(&[("ALB_ARN", china)]).unwrap_err().var,
            "ALB_PUBLIC_KEY_URL"
        );
    }

    #[test]
    fn the_builder_takes_several_pools_once_each() {
        let a = UserPool::new("eu-west-1_AbC123", ["web"]).unwrap();
        let b = UserPool::new("us-east-1_XyZ789", ["partner"]).unwrap();
        let c = VerifierConfig::builder()
            .user_pool(a.clone())
            .user_pool(b)
            .build()
            .unwrap();
        assert_eq!(c.user_pools().len(), 2);
        let twice = VerifierConfig::builder()
            .user_pool(a.clone())
            .user_pool(a)
            .build();
        assert_eq!(twice.unwrap_err().var, "COGNITO_USER_POOL_ID");
        assert_eq!(
            UserPool::new("eu-west-1_AbC123", Vec::<String>::new())
                .unwrap_err()
                .var,
            "COGNITO_APP_CLIENT_ID"
        );
    }

    #[test]
    fn the_memory_bound_counts_every_cache() {
        let arn = "arn:aws:elasticloadbalancing:us-east-2:123456789012:loadbalancer/app/planb/1";
        let plain = with(&[]).unwrap().max_cache_bytes();
        assert_eq!(plain, 32 * 1024 * 1024 + KEY_FETCH_MAX_BYTES);
        let alb = with(&[("ALB_ARN", arn)]).unwrap().max_cache_bytes();
        assert_eq!(alb, 2 * 32 * 1024 * 1024 + 2 * KEY_FETCH_MAX_BYTES);
    }
}
