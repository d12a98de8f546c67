//! Configuration from the environment (12-factor, as ECS passes it).
//!
//! The seed's variable names stay. Every problem is reported as one line that
//! names the variable, and `main` exits non-zero with it.

use std::net::SocketAddr;

use crate::cors::CorsSettings;
use crate::notes::config::NotesConfig;
use crate::traces::config::TraceConfig;
use cognito_verifier::VerifierConfig;

/// The README whose configuration table `--help` prints: one source for the variables.
const README: &str = include_str!("../README.md");

/// The usage text `--help` prints: the routes, and every variable with its
/// meaning and default, taken from the configuration table of `backend/README.md`.
pub fn usage() -> String {
    let mut out = String::from(
        "planb-backend: verifies Cognito access tokens and serves the Plan B API.\n\n\
         Usage: planb-backend            (configured by environment variables)\n       \
         planb-backend --help\n\nEnvironment (variable: meaning [default]):\n",
    );
    for (name, meaning, default) in env_table() {
        out.push_str(&format!("  {name}: {meaning} [{default}]\n"));
    }
    out.push_str("\nRoutes and metrics: see backend/README.md.\n");
    out
}

/// The rows of the README's configuration table, markdown backticks removed.
pub fn env_table() -> Vec<(String, String, String)> {
    let section = README
        .split("\n## ")
        .find(|s| s.starts_with("Configuration"))
        .unwrap_or_default();
    section
        .lines()
        .filter(|l| l.starts_with("| `"))
        .filter_map(|l| {
            let cells: Vec<String> = l
                .trim_matches('|')
                .split(" | ")
                .map(|c| c.trim().replace('`', ""))
                .collect();
            match <[String; 3]>::try_from(cells) {
                Ok([n, m, d]) => Some((n, m, d)),
                Err(_) => None,
            }
        })
        .collect()
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// One JSON object per line (the default: CloudWatch parses it).
    Json,
    /// Human-readable lines.
    Text,
}

/// The whole configuration, validated.
#[derive(Debug, Clone)]
pub struct Config {
    /// The verifier's settings: the user pool and its clients, the ALB
    /// check, the token cache, the leeway (`COGNITO_*`, `ALB_*`, `TOKEN_CACHE_*`, ...).
    pub verifier: VerifierConfig,
    /// `COGNITO_REGION`.
    pub region: String,
    /// `LISTEN_ADDR`.
    pub listen_addr: SocketAddr,
    /// `MAX_CONNECTIONS`: connections served at once; past it, accepting waits.
    pub max_connections: usize,
    /// `ADMIN_GROUP`: the group `/api/admin` requires.
    pub admin_group: String,
    /// `PROFILE_SCOPE`: the scope `/api/profile` requires.
    pub profile_scope: String,
    /// `RUST_LOG`.
    pub log_filter: String,
    /// `LOG_FORMAT`.
    pub log_format: LogFormat,
    /// `NOTES_TABLE` and friends; `None` turns the notes API off.
    pub notes: Option<NotesConfig>,
    /// `COGNITO_DOMAIN` and `LOGOUT_REDIRECT_URL`; `None` unless both are set.
    pub logout: Option<LogoutConfig>,
    /// `CORS_ALLOWED_ORIGINS`, read by the CORS concern itself.
    pub cors: CorsSettings,
    /// `OTEL_EXPORTER_OTLP_ENDPOINT` and the sampler; `None` turns traces off.
    pub traces: Option<TraceConfig>,
}

/// Where `GET /logout` sends the browser once the ALB session cookies are expired.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogoutConfig {
    /// `COGNITO_DOMAIN`: the hosted UI's base URL, e.g. `https://planb.auth.eu-west-1.amazoncognito.com`.
    pub cognito_domain: String,
    /// `LOGOUT_REDIRECT_URL`: where Cognito sends the browser after signing out
    /// (one of the app client's sign-out URLs).
    pub redirect_url: String,
}

/// A missing or malformed variable, named: the verifier's error type, for
/// the backend's own variables too (`main` prints it as one line).
pub use cognito_verifier::ConfigError;

fn bad(var: &'static str, problem: impl Into<String>) -> ConfigError {
    ConfigError::new(var, problem)
}

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Config, ConfigError> {
        Config::from_lookup(|k| std::env::var_os(k).map(|v| v.to_string_lossy().into_owned()))
    }

    /// Reads variables through `get` (the environment, or a map in tests).
    /// An empty value counts as unset, as ECS task definitions often leave them.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let get = |k: &str| get(k).filter(|v| !v.trim().is_empty());
        let verifier = VerifierConfig::from_lookup(get)?;
        let region = required(&get, "COGNITO_REGION")?;
        let listen_addr = parse_var(&get, "LISTEN_ADDR", "0.0.0.0:8080", "must be host:port")?;
        let max_connections: usize =
            parse_var(&get, "MAX_CONNECTIONS", "4096", "must be a whole number")?;
        if max_connections == 0 {
            return Err(bad("MAX_CONNECTIONS", "must be at least 1"));
        }
        let log_format = match get("LOG_FORMAT").as_deref().unwrap_or("json") {
            "json" => LogFormat::Json,
            "text" => LogFormat::Text,
            _ => return Err(bad("LOG_FORMAT", "must be json or text")),
        };
        let notes = NotesConfig::from_lookup(&get, &region)?;
        let logout = match (get("COGNITO_DOMAIN"), get("LOGOUT_REDIRECT_URL")) {
            (Some(domain), Some(redirect)) => Some(LogoutConfig {
                cognito_domain: http_url("COGNITO_DOMAIN", domain)?,
                // Kept exactly as given: Cognito compares it with the client's sign-out URLs.
                redirect_url: exact_http_url("LOGOUT_REDIRECT_URL", redirect)?,
            }),
            (Some(_), None) => {
                return Err(bad("LOGOUT_REDIRECT_URL", "required with COGNITO_DOMAIN"))
            }
            (None, Some(_)) => {
                return Err(bad("COGNITO_DOMAIN", "required with LOGOUT_REDIRECT_URL"))
            }
            (None, None) => None,
        };
        let cors = CorsSettings::from_lookup(&get)?;
        let traces = TraceConfig::from_lookup(&get)?;
        Ok(Config {
            verifier,
            region,
            listen_addr,
            max_connections,
            admin_group: get("ADMIN_GROUP").unwrap_or_else(|| "admins".into()),
            profile_scope: get("PROFILE_SCOPE")
                .unwrap_or_else(|| "aws.cognito.signin.user.admin".into()),
            log_filter: get("RUST_LOG").unwrap_or_else(|| "info".into()),
            log_format,
            notes,
            logout,
            cors,
            traces,
        })
    }
}

fn required(
    get: &impl Fn(&str) -> Option<String>,
    var: &'static str,
) -> Result<String, ConfigError> {
    get(var)
        .map(|v| v.trim().to_string())
        .ok_or_else(|| bad(var, "required, not set"))
}

fn parse_var<T: std::str::FromStr>(
    get: &impl Fn(&str) -> Option<String>,
    var: &'static str,
    default: &str,
    problem: &str,
) -> Result<T, ConfigError> {
    let raw = get(var).unwrap_or_else(|| default.to_string());
    raw.trim()
        .parse()
        .map_err(|_| bad(var, format!("{problem}, got {raw:?}")))
}

fn exact_http_url(var: &'static str, url: String) -> Result<String, ConfigError> {
    let url = url.trim().to_string();
    http_url(var, url.clone()).map(|_| url)
}

fn http_url(var: &'static str, url: String) -> Result<String, ConfigError> {
    let url = url.trim().trim_end_matches('/').to_string();
    if url.starts_with("https://") || url.starts_with("http://") {
        Ok(url)
    } else {
        Err(bad(var, "must be an http:// or https:// URL"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn lookup(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|k| map.get(k).cloned())
    }

    const BASE: [(&str, &str); 3] = [
        ("COGNITO_USER_POOL_ID", "eu-west-1_AbC123"),
        ("COGNITO_REGION", "eu-west-1"),
        ("COGNITO_APP_CLIENT_ID", "client1, client2"),
    ];

    fn with(extra: &[(&'static str, &'static str)]) -> Result<Config, ConfigError> {
        let mut all = BASE.to_vec();
        all.extend_from_slice(extra);
        lookup(&all)
    }

    #[test]
    fn defaults() {
        let c = with(&[]).unwrap();
        assert_eq!(
            c.verifier.user_pools()[0].issuer(),
            "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbC123"
        );
        assert_eq!(
            c.verifier.user_pools()[0].client_ids(),
            ["client1", "client2"]
        );
        assert_eq!(c.listen_addr, "0.0.0.0:8080".parse().unwrap());
        assert_eq!(c.verifier.token_cache(), (100_000, 32 * 1024 * 1024));
        assert_eq!(c.max_connections, 4096);
        assert_eq!(c.log_format, LogFormat::Json);
        assert_eq!(c.admin_group, "admins");
        assert_eq!(c.profile_scope, "aws.cognito.signin.user.admin");
        assert!(c.verifier.alb().is_none());
    }

    #[test]
    fn the_backends_own_and_the_verifiers_variables_are_named() {
        // The verifier's own checks are its crate's tests; here, that they reach `main` named.
        for (var, val) in [
            ("LISTEN_ADDR", "nope"),
            ("MAX_CONNECTIONS", "0"),
            ("MAX_CONNECTIONS", "many"),
            ("LOG_FORMAT", "xml"),
            ("TOKEN_CACHE_SIZE", "lots"),
            ("COGNITO_USER_POOL_ID", ""),
        ] {
            let mut pairs: Vec<_> = BASE.iter().filter(|(k, _)| *k != var).copied().collect();
            pairs.push((var, val));
            let err = lookup(&pairs).unwrap_err();
            assert_eq!(err.var, var, "{var}={val}");
            assert!(err.to_string().starts_with(&format!("{var}: ")));
            assert!(!err.to_string().contains('\n'));
        }
    }

    #[test]
    fn logout_needs_both_variables_and_cors_is_read() {
        assert_eq!(with(&[]).unwrap().logout, None);
        let c = with(&[
            (
                "COGNITO_DOMAIN",
                "https://planb.auth.eu-west-1.amazoncognito.com/",
            ),
            ("LOGOUT_REDIRECT_URL", "https://app.example.com/"),
            (
                "CORS_ALLOWED_ORIGINS",
                "https://a.example.com, http://127.0.0.1:3000",
            ),
        ])
        .unwrap();
        let logout = c.logout.unwrap();
        assert_eq!(
            logout.cognito_domain,
            "https://planb.auth.eu-west-1.amazoncognito.com"
        );
        assert_eq!(logout.redirect_url, "https://app.example.com/");
        assert_eq!(
            c.cors.origins().collect::<Vec<_>>(),
            ["https://a.example.com", "http://127.0.0.1:3000"]
        );
        for (pairs, var) in [
            (
                vec![("COGNITO_DOMAIN", "https://x.example")],
                "LOGOUT_REDIRECT_URL",
            ),
            (
                vec![("LOGOUT_REDIRECT_URL", "https://x.example")],
                "COGNITO_DOMAIN",
            ),
            (
                vec![
                    ("COGNITO_DOMAIN", "x.example"),
                    ("LOGOUT_REDIRECT_URL", "https://y"),
                ],
                "COGNITO_DOMAIN",
            ),
            (vec![("CORS_ALLOWED_ORIGINS", "*")], "CORS_ALLOWED_ORIGINS"),
            (
                vec![("CORS_ALLOWED_ORIGINS", "https://a.example/path")],
                "CORS_ALLOWED_ORIGINS",
            ),
        ] {
            assert_eq!(with(&pairs).unwrap_err().var, var);
        }
    }

    #[test]
    fn the_readme_table_lists_exactly_the_variables_read() {
        let read = std::cell::RefCell::new(std::collections::BTreeSet::new());
        let arn = "arn:aws:elasticloadbalancing:us-east-2:123456789012:loadbalancer/app/p/1";
        let set: HashMap<&str, &str> = BASE
            .iter()
            .copied()
            .chain([
                ("ALB_ARN", arn),
                ("NOTES_TABLE", "notes"),
                ("COGNITO_DOMAIN", "https://d.example"),
                ("LOGOUT_REDIRECT_URL", "https://r.example"),
            ])
            .collect();
        Config::from_lookup(|k| {
            read.borrow_mut().insert(k.to_string());
            set.get(k).map(|v| v.to_string())
        })
        .unwrap();
        let mut table = std::collections::BTreeSet::new();
        for (names, meaning, default) in env_table() {
            assert!(!meaning.is_empty() && !default.is_empty(), "{names}");
            table.extend(
                names
                    .split(", ")
                    .filter(|n| !n.contains(' '))
                    .map(String::from),
            );
        }
        // AWS_DEFAULT_REGION is the SDK chain's fallback, documented with AWS_REGION's row.
        table.insert("AWS_DEFAULT_REGION".into());
        let read = read.into_inner();
        let missing: Vec<_> = read.difference(&table).collect();
        let extra: Vec<_> = table
            .difference(&read)
            .filter(|n| !n.starts_with("AWS_") && n.as_str() != "credentials")
            .collect();
        assert!(
            missing.is_empty(),
            "read but not in backend/README.md: {missing:?}"
        );
        assert!(
            extra.is_empty(),
            "in backend/README.md but never read: {extra:?}"
        );
        let help = usage();
        for (name, _, default) in env_table() {
            assert!(
                help.contains(&format!("  {name}: ")) && help.contains(&default),
                "{name}"
            );
        }
    }

    #[test]
    fn jwks_override_and_text_logs() {
        let c = with(&[
            (
                "COGNITO_JWKS_URL",
                "http://127.0.0.1:5000/pool/.well-known/jwks.json",
            ),
            ("LOG_FORMAT", "text"),
            ("TOKEN_CACHE_SIZE", "0"),
        ])
        .unwrap();
        assert_eq!(
            c.verifier.user_pools()[0].jwks_url(),
            "http://127.0.0.1:5000/pool/.well-known/jwks.json"
        );
        assert_eq!(c.log_format, LogFormat::Text);
        assert_eq!(c.verifier.token_cache().0, 0);
    }
}
