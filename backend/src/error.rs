//! One error type for everything a request can be refused for.
//!
//! Each variant names the check that failed and maps to an HTTP status and a
//! stable machine-readable code (the `error` field of the JSON body and the
//! `reason` label of the failure metric). Variants carry no data on purpose:
//! nothing from the token ever reaches a response or a log line through them.

use std::fmt;

/// Why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Rejection {
    // --- finding the token -------------------------------------------------
    /// Neither `x-amzn-oidc-accesstoken` nor `Authorization: Bearer` was sent.
    MissingToken,
    /// Both token sources were sent with different values, or one was repeated.
    AmbiguousToken,
    /// `Authorization` was present but not `Bearer <token>`.
    MalformedAuthorization,

    // --- rule 1: shape and claim types, before any key work ------------------
    /// The token is longer than 16 KiB.
    TokenTooLarge,
    /// Not three non-empty base64url parts (or not visible ASCII).
    MalformedToken,
    /// The header is not a JSON object with correctly typed members.
    InvalidHeader,
    /// The payload is not a JSON object, or a claim has the wrong type.
    InvalidClaims,

    // --- rule 2: header ----------------------------------------------------
    /// The header has no `kid`.
    MissingKid,
    /// The header's `alg` is not exactly `RS256`, or it lists `crit` extensions.
    UnsupportedAlg,

    // --- rules 3, 9: the key ---------------------------------------------------
    /// No usable JWK with the token's `kid`, even after a refetch.
    UnknownKid,
    /// The JWKS lists the token's `kid`, but not as a usable RS256 signing key
    /// (`use: enc`, another `kty` or `alg`): refused without a fetch.
    UnusableKey,
    /// The JWKS could not be fetched and the `kid` is not among the known keys.
    JwksUnavailable,

    // --- rule 4: signature -----------------------------------------------------
    /// The RS256 signature does not verify under the JWK.
    InvalidSignature,

    // --- rules 5-7: claims, checked only after the signature -----------------
    /// The token has no `exp`.
    MissingExp,
    /// `exp` (plus leeway) is in the past.
    Expired,
    /// `nbf` (minus leeway) is in the future.
    NotYetValid,
    /// `iss` is not exactly the configured pool's issuer.
    WrongIssuer,
    /// `token_use` is not `access`.
    WrongTokenUse,
    /// `client_id` is missing or not one of the allowed app clients.
    WrongClient,
    /// The token carries `aud` (an ID token's shape).
    AudiencePresent,
    /// The token has no `sub`.
    MissingSub,

    // --- rule 8: the ALB's x-amzn-oidc-data ------------------------------------
    /// `ALB_ARN` is set and `x-amzn-oidc-data` is missing.
    AlbDataMissing,
    /// `x-amzn-oidc-data` is not a well-formed ES256 JWT with the expected members.
    AlbDataMalformed,
    /// Its header `alg` is not `ES256`.
    AlbAlg,
    /// Its header `kid` is not a UUID.
    AlbKid,
    /// Its header `signer` is not the configured `ALB_ARN`.
    AlbSigner,
    /// Its header `client` is not an allowed app client.
    AlbClient,
    /// Its `exp` (header or payload) is missing or past.
    AlbExpired,
    /// Its `iss` (header or payload) is not the pool's issuer.
    AlbIssuer,
    /// The ALB public key for its `kid` could not be fetched.
    AlbKeyUnavailable,
    /// Its ES256 signature does not verify.
    AlbSignature,
    /// Its `sub`, the access token's `sub` and `x-amzn-oidc-identity` differ.
    IdentityMismatch,

    // --- authorisation and routing (not verification failures) ---------------
    /// The token is valid but the caller is not in the route's Cognito group.
    MissingGroup,
    /// The token is valid but lacks the route's OAuth scope.
    MissingScope,
    /// No such route.
    NotFound,
    /// The route exists but not for this method.
    MethodNotAllowed,
}

impl Rejection {
    /// Every variant that counts as a verification failure (a 401), in metric order.
    pub const VERIFICATION: [Rejection; 32] = [
        Rejection::MissingToken,
        Rejection::AmbiguousToken,
        Rejection::MalformedAuthorization,
        Rejection::TokenTooLarge,
        Rejection::MalformedToken,
        Rejection::InvalidHeader,
        Rejection::InvalidClaims,
        Rejection::MissingKid,
        Rejection::UnsupportedAlg,
        Rejection::UnknownKid,
        Rejection::UnusableKey,
        Rejection::JwksUnavailable,
        Rejection::InvalidSignature,
        Rejection::MissingExp,
        Rejection::Expired,
        Rejection::NotYetValid,
        Rejection::WrongIssuer,
        Rejection::WrongTokenUse,
        Rejection::WrongClient,
        Rejection::AudiencePresent,
        Rejection::MissingSub,
        Rejection::AlbDataMissing,
        Rejection::AlbDataMalformed,
        Rejection::AlbAlg,
        Rejection::AlbKid,
        Rejection::AlbSigner,
        Rejection::AlbClient,
        Rejection::AlbExpired,
        Rejection::AlbIssuer,
        Rejection::AlbKeyUnavailable,
        Rejection::AlbSignature,
        Rejection::IdentityMismatch,
    ];

    /// The HTTP status: 401 for verification failures, 403/404/405 otherwise.
    pub fn status(self) -> u16 {
        match self {
            Rejection::MissingGroup | Rejection::MissingScope => 403,
            Rejection::NotFound => 404,
            Rejection::MethodNotAllowed => 405,
            Rejection::MissingToken
            | Rejection::AmbiguousToken
            | Rejection::MalformedAuthorization
            | Rejection::TokenTooLarge
            | Rejection::MalformedToken
            | Rejection::InvalidHeader
            | Rejection::InvalidClaims
            | Rejection::MissingKid
            | Rejection::UnsupportedAlg
            | Rejection::UnknownKid
            | Rejection::UnusableKey
            | Rejection::JwksUnavailable
            | Rejection::InvalidSignature
            | Rejection::MissingExp
            | Rejection::Expired
            | Rejection::NotYetValid
            | Rejection::WrongIssuer
            | Rejection::WrongTokenUse
            | Rejection::WrongClient
            | Rejection::AudiencePresent
            | Rejection::MissingSub
            | Rejection::AlbDataMissing
            | Rejection::AlbDataMalformed
            | Rejection::AlbAlg
            | Rejection::AlbKid
            | Rejection::AlbSigner
            | Rejection::AlbClient
            | Rejection::AlbExpired
            | Rejection::AlbIssuer
            | Rejection::AlbKeyUnavailable
            | Rejection::AlbSignature
            | Rejection::IdentityMismatch => 401,
        }
    }

    /// The stable code sent as `error` and used as the metric's `reason`.
    pub fn code(self) -> &'static str {
        match self {
            Rejection::MissingToken => "missing_token",
            Rejection::AmbiguousToken => "ambiguous_token",
            Rejection::MalformedAuthorization => "malformed_authorization",
            Rejection::TokenTooLarge => "token_too_large",
            Rejection::MalformedToken => "malformed_token",
            Rejection::InvalidHeader => "invalid_header",
            Rejection::InvalidClaims => "invalid_claims",
            Rejection::MissingKid => "missing_kid",
            Rejection::UnsupportedAlg => "unsupported_alg",
            Rejection::UnknownKid => "unknown_kid",
            Rejection::UnusableKey => "unusable_key",
            Rejection::JwksUnavailable => "jwks_unavailable",
            Rejection::InvalidSignature => "invalid_signature",
            Rejection::MissingExp => "missing_exp",
            Rejection::Expired => "token_expired",
            Rejection::NotYetValid => "token_not_yet_valid",
            Rejection::WrongIssuer => "wrong_issuer",
            Rejection::WrongTokenUse => "wrong_token_use",
            Rejection::WrongClient => "wrong_client",
            Rejection::AudiencePresent => "audience_present",
            Rejection::MissingSub => "missing_sub",
            Rejection::AlbDataMissing => "alb_data_missing",
            Rejection::AlbDataMalformed => "alb_data_malformed",
            Rejection::AlbAlg => "alb_unsupported_alg",
            Rejection::AlbKid => "alb_invalid_kid",
            Rejection::AlbSigner => "alb_wrong_signer",
            Rejection::AlbClient => "alb_wrong_client",
            Rejection::AlbExpired => "alb_expired",
            Rejection::AlbIssuer => "alb_wrong_issuer",
            Rejection::AlbKeyUnavailable => "alb_key_unavailable",
            Rejection::AlbSignature => "alb_invalid_signature",
            Rejection::IdentityMismatch => "identity_mismatch",
            Rejection::MissingGroup => "missing_group",
            Rejection::MissingScope => "missing_scope",
            Rejection::NotFound => "not_found",
            Rejection::MethodNotAllowed => "method_not_allowed",
        }
    }

    /// A human-readable sentence; never contains anything the client sent.
    pub fn message(self) -> &'static str {
        match self {
            Rejection::MissingToken => "no access token: send x-amzn-oidc-accesstoken or Authorization: Bearer",
            Rejection::AmbiguousToken => "x-amzn-oidc-accesstoken and Authorization carry different tokens, or a token header is repeated",
            Rejection::MalformedAuthorization => "Authorization must be `Bearer <token>`",
            Rejection::TokenTooLarge => "the token is larger than 16 KiB",
            Rejection::MalformedToken => "the token is not three base64url parts",
            Rejection::InvalidHeader => "the token header is not a JSON object with string members",
            Rejection::InvalidClaims => "the token payload is not a JSON object or a claim has the wrong type",
            Rejection::MissingKid => "the token header has no kid",
            Rejection::UnsupportedAlg => "the token alg must be RS256",
            Rejection::UnknownKid => "no signing key with the token's kid",
            Rejection::UnusableKey => "the signing key listed for the token's kid is not a usable RS256 signature key",
            Rejection::JwksUnavailable => "the signing keys could not be fetched and the token's kid is not known",
            Rejection::InvalidSignature => "the token signature is invalid",
            Rejection::MissingExp => "the token has no exp",
            Rejection::Expired => "the token has expired",
            Rejection::NotYetValid => "the token is not valid yet (nbf)",
            Rejection::WrongIssuer => "the token was not issued by the configured user pool",
            Rejection::WrongTokenUse => "the token is not an access token",
            Rejection::WrongClient => "the token was issued to an app client that is not allowed",
            Rejection::AudiencePresent => "the token carries aud: an ID token is not accepted",
            Rejection::MissingSub => "the token has no sub",
            Rejection::AlbDataMissing => "x-amzn-oidc-data is required",
            Rejection::AlbDataMalformed => "x-amzn-oidc-data is not a well-formed ALB token",
            Rejection::AlbAlg => "x-amzn-oidc-data alg must be ES256",
            Rejection::AlbKid => "x-amzn-oidc-data kid must be a UUID",
            Rejection::AlbSigner => "x-amzn-oidc-data was not signed by the configured load balancer",
            Rejection::AlbClient => "x-amzn-oidc-data names an app client that is not allowed",
            Rejection::AlbExpired => "x-amzn-oidc-data has no exp or has expired",
            Rejection::AlbIssuer => "x-amzn-oidc-data was not issued for the configured user pool",
            Rejection::AlbKeyUnavailable => "the load balancer's public key could not be fetched",
            Rejection::AlbSignature => "x-amzn-oidc-data signature is invalid",
            Rejection::IdentityMismatch => "x-amzn-oidc-data, x-amzn-oidc-identity and the access token name different users",
            Rejection::MissingGroup => "the caller is not in the group this route requires",
            Rejection::MissingScope => "the token lacks the scope this route requires",
            Rejection::NotFound => "no such route",
            Rejection::MethodNotAllowed => "method not allowed on this route",
        }
    }

    /// Index in [`Rejection::VERIFICATION`], for the failure counters; `None`
    /// for the authorisation and routing variants. Exhaustive on purpose: a
    /// new variant does not compile until it is classified here.
    pub fn verification_index(self) -> Option<usize> {
        let i = match self {
            Rejection::MissingToken => 0,
            Rejection::AmbiguousToken => 1,
            Rejection::MalformedAuthorization => 2,
            Rejection::TokenTooLarge => 3,
            Rejection::MalformedToken => 4,
            Rejection::InvalidHeader => 5,
            Rejection::InvalidClaims => 6,
            Rejection::MissingKid => 7,
            Rejection::UnsupportedAlg => 8,
            Rejection::UnknownKid => 9,
            Rejection::UnusableKey => 10,
            Rejection::JwksUnavailable => 11,
            Rejection::InvalidSignature => 12,
            Rejection::MissingExp => 13,
            Rejection::Expired => 14,
            Rejection::NotYetValid => 15,
            Rejection::WrongIssuer => 16,
            Rejection::WrongTokenUse => 17,
            Rejection::WrongClient => 18,
            Rejection::AudiencePresent => 19,
            Rejection::MissingSub => 20,
            Rejection::AlbDataMissing => 21,
            Rejection::AlbDataMalformed => 22,
            Rejection::AlbAlg => 23,
            Rejection::AlbKid => 24,
            Rejection::AlbSigner => 25,
            Rejection::AlbClient => 26,
            Rejection::AlbExpired => 27,
            Rejection::AlbIssuer => 28,
            Rejection::AlbKeyUnavailable => 29,
            Rejection::AlbSignature => 30,
            Rejection::IdentityMismatch => 31,
            Rejection::MissingGroup
            | Rejection::MissingScope
            | Rejection::NotFound
            | Rejection::MethodNotAllowed => return None,
        };
        Some(i)
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
    fn verification_failures_are_401_with_distinct_codes() {
        let mut codes = std::collections::HashSet::new();
        for r in Rejection::VERIFICATION {
            assert_eq!(r.status(), 401, "{r}");
            assert!(codes.insert(r.code()), "duplicate code {r}");
            assert_eq!(Rejection::VERIFICATION[r.verification_index().unwrap()], r);
        }
    }

    #[test]
    fn authorisation_and_routing_are_4xx_but_not_verification() {
        for (r, s) in [
            (Rejection::MissingGroup, 403),
            (Rejection::MissingScope, 403),
            (Rejection::NotFound, 404),
            (Rejection::MethodNotAllowed, 405),
        ] {
            assert_eq!(r.status(), s);
            assert_eq!(r.verification_index(), None);
        }
    }
}
