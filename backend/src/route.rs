//! The routes the API knows, as a leaf module: the metrics and the handlers
//! both name them, and neither depends on the other through it.

/// The routes, also the `route` label of the request counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// `GET /health`: liveness, no auth, no network.
    Health,
    /// `GET /ready`: 200 once the JWKS is loaded.
    Ready,
    /// `GET /api/me`: the caller's identity.
    Me,
    /// `GET /api/admin`: callers in the admin group only.
    Admin,
    /// `GET /api/profile`: tokens with the profile scope only.
    Profile,
    /// `GET /metrics`: Prometheus text.
    Metrics,
    /// Anything else: 404.
    Other,
}

impl Route {
    /// Every route, in counter order.
    pub const ALL: [Route; 7] = [
        Route::Health,
        Route::Ready,
        Route::Me,
        Route::Admin,
        Route::Profile,
        Route::Metrics,
        Route::Other,
    ];

    /// The route for a request path (exact match: no trailing-slash aliases).
    pub fn of(path: &str) -> Route {
        match path {
            "/health" => Route::Health,
            "/ready" => Route::Ready,
            "/api/me" => Route::Me,
            "/api/admin" => Route::Admin,
            "/api/profile" => Route::Profile,
            "/metrics" => Route::Metrics,
            _ => Route::Other,
        }
    }

    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            Route::Health => "/health",
            Route::Ready => "/ready",
            Route::Me => "/api/me",
            Route::Admin => "/api/admin",
            Route::Profile => "/api/profile",
            Route::Metrics => "/metrics",
            Route::Other => "other",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_map_exactly() {
        for r in Route::ALL {
            if r != Route::Other {
                assert_eq!(Route::of(r.label()), r);
            }
        }
        for p in ["/api/me/", "/API/ME", "/api/me?x", "/", "/health/x", ""] {
            assert_eq!(Route::of(p), Route::Other, "{p}");
        }
    }
}
