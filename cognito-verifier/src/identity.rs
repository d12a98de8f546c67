//! The verified caller, as the cache keeps it and the handlers receive it.

use bytes::Bytes;

use crate::cache::CacheEntry;
use crate::jwt::Claims;

/// Who holds a verified token: a person signed in through an app client, or a
/// machine using the client-credentials grant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallerKind {
    /// A user's access token (it carries `username`).
    User,
    /// A client-credentials access token: no `username`, `sub` is the client id.
    Machine,
}

impl CallerKind {
    /// `"user"` or `"machine"`, as `/api/me` reports it.
    pub fn as_str(self) -> &'static str {
        match self {
            CallerKind::User => "user",
            CallerKind::Machine => "machine",
        }
    }
}

/// A verified caller, as cached (one per cached token). The `/api/me` body is
/// serialised once, so a cache hit does no JSON work.
#[derive(Debug)]
pub struct Identity {
    /// The token's `sub`: the user's id, or the client id for a machine.
    pub sub: Box<str>,
    /// The user pool that issued the token (its `iss`).
    pub issuer: Box<str>,
    /// The user's name; `None` for a machine.
    pub username: Option<Box<str>>,
    /// The app client the token was issued to (always one of the allowed ones).
    pub client_id: Box<str>,
    /// The caller's Cognito groups (`cognito:groups`; none for a machine).
    pub groups: Box<[Box<str>]>,
    /// The token's OAuth scopes.
    pub scopes: Box<[Box<str>]>,
    /// User or machine.
    pub kind: CallerKind,
    /// The token's `exp`, seconds since the epoch.
    pub exp: f64,
    /// The caller as JSON, serialised once when the token verified:
    /// `{"sub","username","client_id","kind","scope":[...],"groups":[...],"exp"}`.
    pub json: Bytes,
}

impl CacheEntry for Identity {
    fn expires_at(&self) -> f64 {
        self.exp
    }

    fn heap_bytes(&self) -> usize {
        let list =
            |l: &[Box<str>]| l.iter().map(|s| s.len()).sum::<usize>() + std::mem::size_of_val(l);
        self.sub.len()
            + self.issuer.len()
            + self.username.as_ref().map_or(0, |u| u.len())
            + self.client_id.len()
            + list(&self.groups)
            + list(&self.scopes)
            + self.json.len()
    }
}

impl Identity {
    /// Whether the caller is in Cognito group `group` (exact, case-sensitive).
    pub fn in_group(&self, group: &str) -> bool {
        self.groups.iter().any(|g| &**g == group)
    }

    /// Whether the token carries OAuth scope `scope` (exact, case-sensitive).
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| &**s == scope)
    }

    /// Builds the identity from claims that passed every rule.
    pub(crate) fn from_claims(claims: &Claims<'_>) -> Identity {
        let scopes: Box<[Box<str>]> = claims.scopes().map(Into::into).collect();
        let groups: Box<[Box<str>]> = claims
            .groups
            .iter()
            .flatten()
            .map(|g| (**g).into())
            .collect();
        let exp = claims.exp.unwrap_or(0.0);
        let sub = claims.sub.as_deref().unwrap_or_default();
        let client_id = claims.client_id.as_deref().unwrap_or_default();
        let username = claims.username.as_deref();
        let kind = if username.is_none() && sub == client_id {
            CallerKind::Machine
        } else {
            CallerKind::User
        };
        let body = CallerJson {
            sub,
            username,
            client_id,
            kind: kind.as_str(),
            scope: &scopes,
            groups: &groups,
            exp: exp_number(exp),
        };
        // A borrowed struct straight to bytes (no JSON tree), shrunk to fit: it is kept per entry.
        let json = serde_json::to_vec(&body)
            .map(|v| Bytes::from(v.into_boxed_slice()))
            .unwrap_or_default();
        Identity {
            sub: sub.into(),
            issuer: claims.iss.as_deref().unwrap_or_default().into(),
            username: username.map(Into::into),
            client_id: client_id.into(),
            groups,
            scopes,
            kind,
            exp,
            json,
        }
    }
}

/// [`Identity::json`]'s shape.
#[derive(serde::Serialize)]
struct CallerJson<'a> {
    sub: &'a str,
    username: Option<&'a str>,
    client_id: &'a str,
    kind: &'a str,
    scope: &'a [Box<str>],
    groups: &'a [Box<str>],
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
    use crate::jwt;
    use serde_json::json;
    use testkit::keys::*;

    fn identity(claims: &serde_json::Value) -> Identity {
        let tok = raw_token(&json!({"kid": "k", "alg": "RS256"}), claims, b"s");
        Identity::from_claims(&jwt::parse(&tok, &mut Vec::new()).unwrap().claims)
    }

    #[test]
    fn the_json_is_serialised_once_from_the_claims() {
        let mut claims = good_claims();
        claims["exp"] = json!(1_800_000_000);
        let v = identity(&claims);
        let body: serde_json::Value = serde_json::from_slice(&v.json).unwrap();
        assert_eq!(
            body,
            json!({
                "sub": SUB, "username": "alice", "client_id": CLIENT, "kind": "user",
                "scope": ["aws.cognito.signin.user.admin", "planb/read"],
                "groups": ["admins"], "exp": 1_800_000_000,
            })
        );
        assert_eq!(v.kind, CallerKind::User);
        assert!(v.in_group("admins") && v.has_scope("planb/read"));
        assert!(!v.in_group("Admins") && !v.in_group("admin") && !v.has_scope("planb"));
    }

    #[test]
    fn a_client_credentials_token_is_a_machine() {
        let mut claims = good_claims();
        let obj = claims.as_object_mut().unwrap();
        obj.remove("username");
        obj.remove("cognito:groups");
        obj.insert("sub".into(), json!(CLIENT));
        obj.insert("scope".into(), json!("planb/read planb/write"));
        let v = identity(&claims);
        assert_eq!(v.kind, CallerKind::Machine);
        assert!(v.has_scope("planb/write") && v.groups.is_empty());
        let body: serde_json::Value = serde_json::from_slice(&v.json).unwrap();
        assert_eq!(body["kind"], "machine");
        assert_eq!(body["username"], serde_json::Value::Null);
        // No username but a sub that is not the client id: a user token missing a claim, not a machine.
        claims["sub"] = json!(SUB);
        assert_eq!(identity(&claims).kind, CallerKind::User);
    }
}
