//! The service's own settings, from the environment. The verifier's
//! (`COGNITO_*`, `ALB_*`, `TOKEN_CACHE_*`) are `VerifierConfig::from_env`'s.

use std::net::SocketAddr;

use axum::http::Method;
use cognito_verifier::ConfigError;

/// What `--help` prints: the variables and their defaults.
pub const HELP: &str = "\
team-service: a team's own API behind planb (the example to copy)

Usage: team-service [--help]

Environment:
  COGNITO_USER_POOL_ID, COGNITO_REGION, COGNITO_APP_CLIENT_ID   required (the verifier's; see
      cognito-verifier's README for COGNITO_JWKS_URL, ALB_ARN, ALB_PUBLIC_KEY_URL, TOKEN_CACHE_*)
  LISTEN_ADDR            host:port to serve on                         [0.0.0.0:8080]
  ADMIN_GROUP            the Cognito group that may change an order    [admins]
  ORDERS_READ_SCOPE      the scope a machine needs to read orders      [planb/read]
  ORDERS_WRITE_SCOPE     the scope a machine needs to place orders     [planb/write]
  MAX_ORDERS             orders kept in memory; past it, 503           [10000]
  CORS_ALLOWED_ORIGINS   comma-separated origins a browser may call from, e.g.
                         https://app.example.com (unset: same origin only)
  CORS_ALLOWED_METHODS   methods those origins may use                 [GET,POST,PUT,PATCH,DELETE]
  RUST_LOG               log filter (`info,access=off`: no access line) [info]
  LOG_FORMAT             json (one JSON object a line) or text         [json]

Routes: GET /health, GET /ready, POST /api/orders, GET /api/orders/{id},
        PATCH /api/orders/{id} (ADMIN_GROUP)
";

/// The service's settings.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `LISTEN_ADDR`.
    pub listen_addr: SocketAddr,
    /// `ADMIN_GROUP`.
    pub admin_group: String,
    /// `ORDERS_READ_SCOPE`.
    pub read_scope: String,
    /// `ORDERS_WRITE_SCOPE`.
    pub write_scope: String,
    /// `MAX_ORDERS`.
    pub max_orders: usize,
    /// `CORS_ALLOWED_ORIGINS`, each `scheme://host[:port]`.
    pub cors_origins: Vec<String>,
    /// `CORS_ALLOWED_METHODS`.
    pub cors_methods: Vec<Method>,
    /// `LOG_FORMAT`: JSON lines (what CloudWatch Logs Insights reads field by field) or text.
    pub log_json: bool,
}

impl Settings {
    /// From the process environment.
    pub fn from_env() -> Result<Settings, ConfigError> {
        Settings::from_lookup(|k| std::env::var(k).ok())
    }

    /// From `get` (a map in tests); an empty value counts as unset.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Settings, ConfigError> {
        let get = |k: &str| {
            get(k)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let or = |k: &str, default: &str| get(k).unwrap_or_else(|| default.to_string());
        let listen = or("LISTEN_ADDR", "0.0.0.0:8080");
        let max_orders = or("MAX_ORDERS", "10000");
        Ok(Settings {
            listen_addr: listen.parse().map_err(|_| {
                ConfigError::new("LISTEN_ADDR", format!("must be host:port, got {listen:?}"))
            })?,
            admin_group: or("ADMIN_GROUP", "admins"),
            read_scope: or("ORDERS_READ_SCOPE", "planb/read"),
            write_scope: or("ORDERS_WRITE_SCOPE", "planb/write"),
            max_orders: max_orders.parse().ok().filter(|&n| n > 0).ok_or_else(|| {
                ConfigError::new(
                    "MAX_ORDERS",
                    format!("must be a positive number, got {max_orders:?}"),
                )
            })?,
            cors_origins: match get("CORS_ALLOWED_ORIGINS") {
                Some(raw) => raw.split(',').map(origin).collect::<Result<_, _>>()?,
                None => Vec::new(),
            },
            cors_methods: or("CORS_ALLOWED_METHODS", "GET,POST,PUT,PATCH,DELETE")
                .split(',')
                .map(method)
                .collect::<Result<_, _>>()?,
            log_json: match or("LOG_FORMAT", "json").as_str() {
                "json" => true,
                "text" => false,
                other => {
                    return Err(ConfigError::new(
                        "LOG_FORMAT",
                        format!("must be json or text, got {other:?}"),
                    ))
                }
            },
        })
    }
}

/// One allowed origin: `http(s)://host[:port]`, no path and no wildcard
/// (the session cookie goes along, so every origin is named).
fn origin(raw: &str) -> Result<String, ConfigError> {
    let o = raw.trim();
    let host = o
        .strip_prefix("https://")
        .or_else(|| o.strip_prefix("http://"));
    match host {
        Some(h) if !h.is_empty() && !h.contains(['/', '?', '#', ' ', '*']) => Ok(o.to_string()),
        _ => Err(ConfigError::new(
            "CORS_ALLOWED_ORIGINS",
            format!(
                "{o:?} is not an origin such as https://app.example.com (no path, no wildcard)"
            ),
        )),
    }
}

fn method(raw: &str) -> Result<Method, ConfigError> {
    let m = raw.trim().to_ascii_uppercase();
    match m.as_str() {
        "GET" | "HEAD" | "POST" | "PUT" | "PATCH" | "DELETE" => {
            Ok(m.parse().expect("a standard method"))
        }
        _ => Err(ConfigError::new(
            "CORS_ALLOWED_METHODS",
            format!("{m:?} is not one of GET, HEAD, POST, PUT, PATCH, DELETE"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(vars: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        Settings::from_lookup(|k| {
            vars.iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        })
    }

    #[test]
    fn defaults_serve_every_method_to_no_origin() {
        let s = settings(&[]).unwrap();
        assert_eq!(s.listen_addr.to_string(), "0.0.0.0:8080");
        assert!(s.cors_origins.is_empty());
        let methods: Vec<_> = s.cors_methods.iter().map(Method::as_str).collect();
        assert_eq!(methods, ["GET", "POST", "PUT", "PATCH", "DELETE"]);
        assert_eq!(
            (s.read_scope.as_str(), s.write_scope.as_str()),
            ("planb/read", "planb/write")
        );
    }

    #[test]
    fn bad_values_name_their_variable() {
        for (var, value) in [
            ("LISTEN_ADDR", "8080"),
            ("MAX_ORDERS", "0"),
            ("CORS_ALLOWED_ORIGINS", "*"),
            ("CORS_ALLOWED_ORIGINS", "https://a.example/app"),
            ("CORS_ALLOWED_METHODS", "GET,TRACE"),
        ] {
            let e = settings(&[(var, value)]).unwrap_err();
            assert!(e.to_string().contains(var), "{e}");
        }
        let s = settings(&[(
            "CORS_ALLOWED_ORIGINS",
            "https://a.example, http://localhost:3000",
        )]);
        assert_eq!(
            s.unwrap().cors_origins,
            ["https://a.example", "http://localhost:3000"]
        );
    }
}
