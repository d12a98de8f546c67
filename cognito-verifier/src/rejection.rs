//! One error type for everything verification and a route's guard can refuse.
//!
//! Each variant names the check that failed and maps to an HTTP status and a
//! stable machine-readable code (the `error` field of the JSON body and the
//! `reason` label of the failure metric). Variants carry no data on purpose:
//! nothing from the token ever reaches a response or a log line through them.
//! [`json_error`] is the one JSON error response every error type becomes.
//! One table below declares each variant with its status, code and message,
//! so the lists cannot drift apart.

use axum::http::header::{HeaderValue, CONTENT_TYPE, WWW_AUTHENTICATE};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use std::fmt;

macro_rules! rejections {
    ($( $(#[$doc:meta])* $variant:ident = ($status:ident, $code:literal, $message:literal), )*) => {
        /// Why a request was refused.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Rejection {
            $( $(#[$doc])* $variant, )*
        }

        impl Rejection {
            /// Every variant, in declaration order.
            pub const ALL: &'static [Rejection] = &[$(Rejection::$variant,)*];

            /// The HTTP status: 401 for verification failures, 403 for a guard's refusal.
            pub fn status(self) -> StatusCode {
                match self { $(Rejection::$variant => StatusCode::$status,)* }
            }

            /// The stable code sent as `error` and used as the metric's `reason`.
            pub fn code(self) -> &'static str {
                match self { $(Rejection::$variant => $code,)* }
            }

            /// A human-readable sentence; never contains anything the client sent.
            pub fn message(self) -> &'static str {
                match self { $(Rejection::$variant => $message,)* }
            }
        }
    };
}

rejections! {
    // --- finding the token -------------------------------------------------
    /// Neither `x-amzn-oidc-accesstoken` nor `Authorization: Bearer` was sent.
    MissingToken = (UNAUTHORIZED, "missing_token", "no access token: send x-amzn-oidc-accesstoken or Authorization: Bearer"),
    /// Both token sources were sent, or one was repeated.
    AmbiguousToken = (UNAUTHORIZED, "ambiguous_token", "both x-amzn-oidc-accesstoken and Authorization were sent, or a token header is repeated"),
    /// `Authorization` was present but not `Bearer <token>`.
    MalformedAuthorization = (UNAUTHORIZED, "malformed_authorization", "Authorization must be `Bearer <token>`"),
    /// `ALB_ARN` is set and a user's token came as `Authorization: Bearer`:
    /// only a machine's token may come without ALB's signed data.
    UserBearerToken = (UNAUTHORIZED, "user_bearer_token", "a user's access token must come through the load balancer's sign-in, not as a bearer token"),

    // --- rule 1: shape and claim types, before any key work ------------------
    /// The token is longer than 16 KiB.
    TokenTooLarge = (UNAUTHORIZED, "token_too_large", "the token is larger than 16 KiB"),
    /// Not three non-empty base64url parts (or not visible ASCII).
    MalformedToken = (UNAUTHORIZED, "malformed_token", "the token is not three base64url parts"),
    /// The header is not a JSON object with correctly typed members.
    InvalidHeader = (UNAUTHORIZED, "invalid_header", "the token header is not a JSON object with string members"),
    /// The payload is not a JSON object, or a claim has the wrong type.
    InvalidClaims = (UNAUTHORIZED, "invalid_claims", "the token payload is not a JSON object or a claim has the wrong type"),

    // --- rule 2: header ----------------------------------------------------
    /// The header has no `kid`.
    MissingKid = (UNAUTHORIZED, "missing_kid", "the token header has no kid"),
    /// The header's `kid` is longer than 128 bytes.
    KidTooLong = (UNAUTHORIZED, "kid_too_long", "the token kid is longer than 128 bytes"),
    /// The header's `alg` is not exactly `RS256`, or it lists `crit` extensions.
    UnsupportedAlg = (UNAUTHORIZED, "unsupported_alg", "the token alg must be RS256"),

    // --- rules 3, 9: the key ---------------------------------------------------
    /// No usable JWK with the token's `kid`, even after a refetch.
    UnknownKid = (UNAUTHORIZED, "unknown_kid", "no signing key with the token's kid"),
    /// The JWKS lists the token's `kid`, but not as a usable RS256 signing key
    /// (`use: enc`, another `kty` or `alg`): refused without a fetch.
    UnusableKey = (UNAUTHORIZED, "unusable_key", "the signing key listed for the token's kid is not a usable RS256 signature key"),
    /// The JWKS could not be fetched and the `kid` is not among the known keys.
    /// A 503: the fault is the key endpoint's (or a busy fetch queue's), not the token's.
    JwksUnavailable = (SERVICE_UNAVAILABLE, "jwks_unavailable", "the signing keys could not be fetched and the token's kid is not known"),

    // --- rule 4: signature -----------------------------------------------------
    /// The RS256 signature does not verify under the JWK.
    InvalidSignature = (UNAUTHORIZED, "invalid_signature", "the token signature is invalid"),

    // --- rules 5-7: claims, checked only after the signature -----------------
    /// The token has no `exp`.
    MissingExp = (UNAUTHORIZED, "missing_exp", "the token has no exp"),
    /// `exp` (plus leeway) is in the past.
    Expired = (UNAUTHORIZED, "token_expired", "the token has expired"),
    /// `nbf` (minus leeway) is in the future.
    NotYetValid = (UNAUTHORIZED, "token_not_yet_valid", "the token is not valid yet (nbf)"),
    /// `iss` is not exactly the configured pool's issuer.
    WrongIssuer = (UNAUTHORIZED, "wrong_issuer", "the token was not issued by the configured user pool"),
    /// `token_use` is not `access`.
    WrongTokenUse = (UNAUTHORIZED, "wrong_token_use", "the token is not an access token"),
    /// `client_id` is missing or not one of the allowed app clients.
    WrongClient = (UNAUTHORIZED, "wrong_client", "the token was issued to an app client that is not allowed"),
    /// The token carries `aud` (an ID token's shape).
    AudiencePresent = (UNAUTHORIZED, "audience_present", "the token carries aud: an ID token is not accepted"),
    /// The token has no `sub`.
    MissingSub = (UNAUTHORIZED, "missing_sub", "the token has no sub"),

    // --- rule 8: the ALB's x-amzn-oidc-data ------------------------------------
    /// `ALB_ARN` is set and `x-amzn-oidc-data` is missing.
    AlbDataMissing = (UNAUTHORIZED, "alb_data_missing", "x-amzn-oidc-data is required"),
    /// `x-amzn-oidc-data` is not a well-formed ES256 JWT with the expected members.
    AlbDataMalformed = (UNAUTHORIZED, "alb_data_malformed", "x-amzn-oidc-data is not a well-formed ALB token"),
    /// Its header `alg` is not `ES256`.
    AlbAlg = (UNAUTHORIZED, "alb_unsupported_alg", "x-amzn-oidc-data alg must be ES256"),
    /// Its header `kid` is not a UUID.
    AlbKid = (UNAUTHORIZED, "alb_invalid_kid", "x-amzn-oidc-data kid must be a UUID"),
    /// Its header `signer` is not the configured `ALB_ARN`.
    AlbSigner = (UNAUTHORIZED, "alb_wrong_signer", "x-amzn-oidc-data was not signed by the configured load balancer"),
    /// Its header `client` is not an allowed app client.
    AlbClient = (UNAUTHORIZED, "alb_wrong_client", "x-amzn-oidc-data names an app client that is not allowed"),
    /// Its `exp` (header or payload) is missing or past.
    AlbExpired = (UNAUTHORIZED, "alb_expired", "x-amzn-oidc-data has no exp or has expired"),
    /// Its `iss` (header or payload) is not the pool's issuer.
    AlbIssuer = (UNAUTHORIZED, "alb_wrong_issuer", "x-amzn-oidc-data was not issued for the configured user pool"),
    /// The ALB public key for its `kid` could not be fetched for now (the
    /// endpoint failed, timed out or was unreachable, or no fetch slot came
    /// in time): a 503, retried at the normal rate, no penalty.
    AlbKeyUnavailable = (SERVICE_UNAVAILABLE, "alb_key_unavailable", "the load balancer's public key could not be fetched for now"),
    /// The key URL for its `kid` answered 404 (or not a P-256 key): the `kid`
    /// is not fetched again for the penalty length.
    AlbUnknownKid = (UNAUTHORIZED, "alb_unknown_kid", "the load balancer has no public key with x-amzn-oidc-data's kid"),
    /// Its ES256 signature does not verify.
    AlbSignature = (UNAUTHORIZED, "alb_invalid_signature", "x-amzn-oidc-data signature is invalid"),
    /// Its `sub`, the access token's `sub` and `x-amzn-oidc-identity` differ.
    IdentityMismatch = (UNAUTHORIZED, "identity_mismatch", "x-amzn-oidc-data, x-amzn-oidc-identity and the access token name different users"),

    // --- authorisation (403s, not verification failures) --------------------
    /// The token is valid but the caller is not in the route's Cognito group.
    MissingGroup = (FORBIDDEN, "missing_group", "the caller is not in the group this route requires"),
    /// The token is valid but lacks the route's OAuth scope.
    MissingScope = (FORBIDDEN, "missing_scope", "the token lacks the scope this route requires"),
}

impl Rejection {
    /// Whether this is a verification failure (a 401, or a 503 when keys
    /// could not be had; counted by reason) rather than a guard's 403.
    pub fn is_verification(self) -> bool {
        self.status() != StatusCode::FORBIDDEN
    }

    /// Every verification failure, in declaration order (the failure counter's label values).
    pub fn verification() -> impl Iterator<Item = Rejection> {
        Rejection::ALL
            .iter()
            .copied()
            .filter(|r| r.is_verification())
    }
}

/// The one JSON error response every refusal becomes:
/// `{"error": code, "message": message}` with `status`; a 401 carries the
/// Bearer challenge. The code also rides along as an [`ErrorCode`] extension,
/// so a middleware logs and counts refusals without parsing bodies.
pub fn json_error(status: StatusCode, code: &'static str, message: &str) -> Response {
    let body = serde_json::json!({"error": code, "message": message}).to_string();
    let mut r = (status, [(CONTENT_TYPE, "application/json")], body).into_response();
    if status == StatusCode::UNAUTHORIZED {
        r.headers_mut().insert(
            WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer error=\"invalid_token\""),
        );
    }
    r.extensions_mut().insert(ErrorCode(code));
    r
}

/// The `error` code of a refusal, attached to its response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ErrorCode(pub &'static str);

impl IntoResponse for Rejection {
    fn into_response(self) -> Response {
        json_error(self.status(), self.code(), self.message())
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl std::error::Error for Rejection {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_distinct_and_statuses_401_or_403() {
        let mut codes = std::collections::HashSet::new();
        for &r in Rejection::ALL {
            assert!(codes.insert(r.code()), "duplicate code {r}");
            assert!(matches!(r.status().as_u16(), 401 | 403 | 503), "{r}");
            assert_eq!(r.status() == 503, r.code().ends_with("_unavailable"), "{r}");
            assert!(!r.message().is_empty());
        }
        assert_eq!(Rejection::verification().count(), Rejection::ALL.len() - 2);
    }

    #[test]
    fn guard_refusals_are_403_and_not_verification() {
        for r in [Rejection::MissingGroup, Rejection::MissingScope] {
            assert_eq!(r.status(), StatusCode::FORBIDDEN);
            assert!(!r.is_verification());
        }
        assert!(Rejection::Expired.is_verification());
    }

    #[test]
    fn rejections_are_json_and_401s_say_invalid_token() {
        let r = Rejection::Expired.into_response();
        assert_eq!(r.status(), 401);
        assert_eq!(
            r.headers()[WWW_AUTHENTICATE],
            "Bearer error=\"invalid_token\""
        );
        assert_eq!(r.headers()[CONTENT_TYPE], "application/json");
        assert_eq!(r.extensions().get(), Some(&ErrorCode("token_expired")));
        let r = Rejection::MissingGroup.into_response();
        assert_eq!(r.status(), 403);
        assert!(r.headers().get(WWW_AUTHENTICATE).is_none());
    }
}
