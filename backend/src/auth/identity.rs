//! The verified caller, as the cache keeps it and the routes answer from it.

use bytes::Bytes;

use super::cache::CacheEntry;
use super::jwt::Claims;

/// A verified caller, as cached. Kept small on purpose (one per cached
/// token): the `/api/me` body serialised once, so a cache hit does no JSON
/// work, and the route guards decided once, instead of the group and scope lists.
#[derive(Debug)]
pub struct Verified {
    /// The user's `sub`.
    pub sub: Box<str>,
    /// The token's `exp`, seconds since the epoch.
    pub exp: f64,
    /// Whether the caller is in the group `/api/admin` requires.
    pub admin: bool,
    /// Whether the token carries the scope `/api/profile` requires.
    pub profile: bool,
    /// `{"sub","username","client_id","scope":[...],"groups":[...],"exp"}`.
    pub me_body: Bytes,
}

/// What the guarded routes require (`ADMIN_GROUP`, `PROFILE_SCOPE`).
#[derive(Debug, Clone)]
pub struct Guards {
    /// The Cognito group `/api/admin` requires.
    pub admin_group: String,
    /// The OAuth scope `/api/profile` requires.
    pub profile_scope: String,
}

impl CacheEntry for Verified {
    fn expires_at(&self) -> f64 {
        self.exp
    }

    fn heap_bytes(&self) -> usize {
        self.sub.len() + self.me_body.len()
    }
}

impl Verified {
    /// Builds the identity from claims that passed every rule.
    pub(crate) fn from_claims(claims: Claims, guards: &Guards) -> Verified {
        let scopes: Vec<&str> = claims.scopes().collect();
        let groups: &[String] = claims.groups.as_deref().unwrap_or_default();
        let exp = claims.exp.unwrap_or(0.0);
        let body = MeBody {
            sub: claims.sub.as_deref(),
            username: claims.username.as_deref(),
            client_id: claims.client_id.as_deref(),
            scope: &scopes,
            groups,
            exp: exp_number(exp),
        };
        // A borrowed struct straight to bytes (no JSON tree), shrunk to fit: it is kept per entry.
        let me_body = serde_json::to_vec(&body)
            .map(|v| Bytes::from(v.into_boxed_slice()))
            .unwrap_or_default();
        Verified {
            admin: groups.contains(&guards.admin_group),
            profile: scopes.contains(&guards.profile_scope.as_str()),
            sub: claims.sub.unwrap_or_default().into_boxed_str(),
            exp,
            me_body,
        }
    }
}

/// The `/api/me` body.
#[derive(serde::Serialize)]
struct MeBody<'a> {
    sub: Option<&'a str>,
    username: Option<&'a str>,
    client_id: Option<&'a str>,
    scope: &'a [&'a str],
    groups: &'a [String],
    exp: serde_json::Number,
}

/// A whole-second `exp` (always, from Cognito) as an integer, anything else as a float.
fn exp_number(exp: f64) -> serde_json::Number {
    if exp.fract() == 0.0 && exp.abs() < 9.0e15 {
        serde_json::Number::from(exp as i64)
    } else {
        serde_json::Number::from_f64(exp).unwrap_or_else(|| serde_json::Number::from(0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::jwt;
    use serde_json::json;
    use testkit::keys::*;

    #[test]
    fn the_me_body_is_serialised_once_from_the_claims() {
        let mut claims = good_claims();
        claims["exp"] = json!(1_800_000_000);
        let tok = raw_token(&json!({"kid": "k", "alg": "RS256"}), &claims, b"s");
        let guards = |g: &str, s: &str| Guards {
            admin_group: g.into(),
            profile_scope: s.into(),
        };
        let v = Verified::from_claims(
            jwt::parse(&tok).unwrap().claims,
            &guards("admins", "planb/read"),
        );
        let body: serde_json::Value = serde_json::from_slice(&v.me_body).unwrap();
        assert_eq!(
            body,
            json!({
                "sub": SUB, "username": "alice", "client_id": CLIENT,
                "scope": ["aws.cognito.signin.user.admin", "planb/read"],
                "groups": ["admins"], "exp": 1_800_000_000,
            })
        );
        assert!(v.admin && v.profile);
        for (g, s) in [
            ("admin", "planb/read"),
            ("admins", "planb"),
            ("Admins", "planb/READ"),
        ] {
            let v = Verified::from_claims(jwt::parse(&tok).unwrap().claims, &guards(g, s));
            assert!(!(v.admin && v.profile), "{g} {s}");
        }
    }
}
