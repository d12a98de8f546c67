//! The JWKS scenarios (rotation, floods of unknown kids, an unreachable endpoint) against the server on loopback and a
//! JWKS the test serves on loopback with keys it generates.

mod common;

use common::*;
use serde_json::json;
use std::time::Duration;

#[tokio::test]
async fn key_rotation_is_picked_up_with_one_fetch() {
    let jwks = KeyServer::jwks(&[test_key(0)]).await;
    let backend = Backend::ready(&jwks, &[]).await;
    assert_eq!(backend.me(&test_key(0).sign(&good_claims())).await.0, 200);
    assert_eq!(jwks.hits(), 1);

    // The pool rotates: kid-1 is published and tokens signed with it arrive.
    jwks.set(Answer::Body(
        common::jwks(&[test_key(0), test_key(1)]).to_string(),
    ));
    let new_token = test_key(1).sign(&good_claims());
    let (status, body) = backend.me(&new_token).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["sub"], SUB);
    assert_eq!(jwks.hits(), 2, "exactly one refetch for the new kid");

    // Later requests with either key need no fetch.
    for _ in 0..5 {
        assert_eq!(backend.me(&new_token).await.0, 200);
        assert_eq!(backend.me(&test_key(0).sign(&good_claims())).await.0, 200);
    }
    assert_eq!(jwks.hits(), 2);
    backend.stop().await;
}

/// A token for `kid`, signed with key 0 (whatever the JWKS says about `kid`).
fn token_under(kid: &str) -> String {
    test_key(0).sign_with_header(&json!({"kid": kid, "alg": "RS256"}), &good_claims())
}

/// Sends one `/api/me` (at `url`) per token at once and checks each gets 401 `code`.
async fn burst(url: String, tokens: Vec<String>, code: &'static str) {
    let requests: Vec<_> = tokens
        .into_iter()
        .map(|tok| {
            let url = url.clone();
            tokio::spawn(async move {
                let (s, h, b) = get_with_token(&url, &tok).await;
                assert_error(s, &h, &b, 401, code);
            })
        })
        .collect();
    for r in requests {
        r.await.unwrap();
    }
}

#[tokio::test]
async fn an_unknown_kid_flood_is_bounded_by_the_penalty_box() {
    let jwks = KeyServer::jwks(&[test_key(0)]).await;
    let backend = Backend::ready(&jwks, &[("TOKEN_CACHE_SIZE", "0")]).await;
    let good = test_key(0).sign(&good_claims());
    let flood: Vec<String> = (0..60)
        .map(|i| token_under(&format!("flood-{i}")))
        .collect();
    let sent = tokio::spawn(burst(backend.url("/api/me"), flood.clone(), "unknown_kid"));
    // Known keys keep verifying during the flood.
    for _ in 0..20 {
        assert_eq!(backend.me(&good).await.0, 200);
    }
    sent.await.unwrap();
    assert!(
        jwks.hits() <= 3,
        "initial load + at most one fetch per second for 60 kids sent at once, got {}",
        jwks.hits()
    );
    // Each flood kid is now penalised on its own: sending them all again fetches nothing.
    let after = jwks.hits();
    burst(backend.url("/api/me"), flood, "unknown_kid").await;
    assert_eq!(jwks.hits(), after);
    let (_, _, metrics) = get(&backend.url("/metrics"), &[]).await;
    assert!(
        metric(&metrics, "planb_jwks_penalty_box_total") > 0,
        "{metrics}"
    );
    assert_eq!(
        metric(
            &metrics,
            "planb_verification_failures_total{reason=\"unknown_kid\"}"
        ),
        120
    );
    backend.stop().await;
}

#[tokio::test]
async fn a_junk_kid_does_not_hold_back_a_rotation() {
    let jwks = KeyServer::jwks(&[test_key(0)]).await;
    let backend = Backend::ready(&jwks, &[]).await;
    burst(
        backend.url("/api/me"),
        vec![token_under("junk")],
        "unknown_kid",
    )
    .await;
    assert_eq!(jwks.hits(), 2);
    jwks.set(Answer::Body(
        common::jwks(&[test_key(0), test_key(1)]).to_string(),
    ));
    let started = std::time::Instant::now();
    let (status, body) = backend.me(&test_key(1).sign(&good_claims())).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "a new kid waits for the next fetch slot only: {:?}",
        started.elapsed()
    );
    assert_eq!(jwks.hits(), 3);
    burst(
        backend.url("/api/me"),
        vec![token_under("junk")],
        "unknown_kid",
    )
    .await;
    assert_eq!(jwks.hits(), 3, "the junk kid stays penalised");
    backend.stop().await;
}

#[tokio::test]
async fn a_listed_but_unusable_kid_is_refused_without_a_fetch() {
    let mut enc = test_key(1).jwk();
    enc["use"] = json!("enc");
    let jwks = KeyServer::start(Answer::Body(
        json!({"keys": [test_key(0).jwk(), enc]}).to_string(),
    ))
    .await;
    let backend = Backend::ready(&jwks, &[("TOKEN_CACHE_SIZE", "0")]).await;
    let unusable = test_key(1).sign(&good_claims());
    burst(
        backend.url("/api/me"),
        vec![unusable.clone(); 5],
        "unusable_key",
    )
    .await;
    assert_eq!(jwks.hits(), 1, "no fetch for a kid the JWKS lists");
    // The URL is not penalised: a real new kid right after is fetched at once.
    jwks.set(Answer::Body(
        common::jwks(&[test_key(0), test_key(2)]).to_string(),
    ));
    let (status, body) = backend.me(&test_key(2).sign(&good_claims())).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(jwks.hits(), 2);
    backend.stop().await;
}

#[tokio::test]
async fn known_keys_keep_verifying_when_the_jwks_endpoint_goes_down() {
    let jwks = KeyServer::jwks(&[test_key(0)]).await;
    let backend = Backend::ready(&jwks, &[("TOKEN_CACHE_SIZE", "0")]).await;
    jwks.stop();
    for _ in 0..5 {
        let (status, body) = backend.me(&test_key(0).sign(&good_claims())).await;
        assert_eq!(status, 200, "{body}");
    }
    let (s, h, b) = get(
        &backend.url("/api/me"),
        &[("x-amzn-oidc-accesstoken", &test_key(1).sign(&good_claims()))],
    )
    .await;
    assert_error(s, &h, &b, 503, "jwks_unavailable");
    assert_eq!(
        get(&backend.url("/ready"), &[]).await.0,
        200,
        "keys once loaded stay loaded"
    );
    backend.stop().await;
}

#[tokio::test]
async fn a_bad_jwks_is_a_clear_error_and_no_crash() {
    let oversized = format!("{{\"keys\":[],\"pad\":\"{}\"}}", "x".repeat(70 * 1024));
    let target = KeyServer::jwks(&[test_key(0)]).await;
    for answer in [
        Answer::Body("{\"keys\": [".into()),
        Answer::Body("<html>not json</html>".into()),
        Answer::Body(oversized),
        Answer::Status(302, target.url()),
        Answer::Status(404, String::new()),
    ] {
        let jwks = KeyServer::start(answer.clone()).await;
        let backend = Backend::start(env(&jwks.url(), &[])).await;
        assert_eq!(get(&backend.url("/health"), &[]).await.0, 200, "{answer:?}");
        let (s, _, body) = get(&backend.url("/ready"), &[]).await;
        assert_eq!(s, 503, "{answer:?}: {body}");
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&body).unwrap()["error"],
            "not_ready"
        );
        let (s, h, b) = get(
            &backend.url("/api/me"),
            &[("x-amzn-oidc-accesstoken", &test_key(0).sign(&good_claims()))],
        )
        .await;
        assert_error(s, &h, &b, 503, "jwks_unavailable");
        backend.stop().await;
    }
    assert_eq!(target.hits(), 0, "the redirect was not followed");
}

#[tokio::test]
async fn a_hundred_concurrent_first_requests_share_one_fetch() {
    let jwks = KeyServer::start(Answer::Slow(
        Duration::from_millis(500),
        common::jwks(&[test_key(0)]).to_string(),
    ))
    .await;
    let backend = Backend::start(env(&jwks.url(), &[("TOKEN_CACHE_SIZE", "0")])).await;
    let token = test_key(0).sign(&good_claims());
    let requests: Vec<_> = (0..100)
        .map(|_| {
            let (url, token) = (backend.url("/api/me"), token.clone());
            tokio::spawn(async move { get(&url, &[("x-amzn-oidc-accesstoken", &token)]).await.0 })
        })
        .collect();
    for r in requests {
        assert_eq!(r.await.unwrap(), 200);
    }
    assert_eq!(jwks.hits(), 1, "one JWKS fetch for all of them");
    backend.stop().await;
}
