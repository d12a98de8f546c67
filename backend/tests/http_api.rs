//! The HTTP surface on loopback: routes, guards, bad input, the ALB data check.

mod common;

use common::*;
use serde_json::{json, Value};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

#[tokio::test]
async fn health_ready_me_and_metrics() {
    let jwks = KeyServer::jwks(&[test_key(0)]).await;
    let backend = Backend::ready(&jwks, &[]).await;
    let (s, h, b) = get(&backend.url("/health"), &[]).await;
    assert_eq!((s, b.as_str()), (200, "{\"status\":\"ok\"}"));
    assert_eq!(h["content-type"], "application/json");
    assert_eq!(get(&backend.url("/ready"), &[]).await.0, 200);

    let claims = good_claims();
    let token = test_key(0).sign(&claims);
    for headers in [
        vec![("x-amzn-oidc-accesstoken", token.clone())],
        vec![("authorization", bearer(&token))],
    ] {
        let hdrs: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let (s, _, b) = get(&backend.url("/api/me"), &hdrs).await;
        assert_eq!(s, 200, "{b}");
        let me: Value = serde_json::from_str(&b).unwrap();
        assert_eq!(
            me,
            json!({
                "sub": SUB, "username": "alice", "client_id": CLIENT, "kind": "user",
                "scope": ["aws.cognito.signin.user.admin", "planb/read"],
                "groups": ["admins"], "exp": claims["exp"].as_f64().unwrap() as i64,
            })
        );
    }

    let (s, h, text) = get(&backend.url("/metrics"), &[]).await;
    assert_eq!(s, 200);
    assert!(h["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    assert_eq!(
        metric(
            &text,
            "planb_requests_total{route=\"/api/me\",status=\"200\"}"
        ),
        2
    );
    assert_eq!(metric(&text, "planb_token_cache_hits_total"), 1);
    assert_eq!(metric(&text, "planb_jwks_fetches_total{result=\"ok\"}"), 1);
    backend.stop().await;
}

#[tokio::test]
async fn ready_is_503_until_the_jwks_is_loaded() {
    let jwks = KeyServer::start(Answer::Slow(
        Duration::from_millis(800),
        common::jwks(&[test_key(0)]).to_string(),
    ))
    .await;
    let backend = Backend::start(env(&jwks.url(), &[])).await;
    // The server listens at once, while the JWKS is still on its way.
    assert_eq!(get(&backend.url("/health"), &[]).await.0, 200);
    assert_eq!(get(&backend.url("/ready"), &[]).await.0, 503);
    backend.wait_ready().await;
    backend.stop().await;
}

#[tokio::test]
async fn group_guarded_route() {
    let jwks = KeyServer::jwks(&[test_key(0)]).await;
    let backend = Backend::ready(&jwks, &[]).await;
    let admin = test_key(0).sign(&good_claims());
    let (s, _, b) = get_with_token(&backend.url("/api/admin"), &admin).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(
        serde_json::from_str::<Value>(&b).unwrap(),
        json!({"sub": SUB, "admin": true})
    );

    for groups in [json!(["users"]), json!([]), json!(["admins2"])] {
        let mut c = good_claims();
        c["cognito:groups"] = groups;
        let tok = test_key(0).sign(&c);
        let (s, h, b) = get_with_token(&backend.url("/api/admin"), &tok).await;
        assert_error(s, &h, &b, 403, "missing_group");
    }
    let mut c = good_claims();
    c.as_object_mut().unwrap().remove("cognito:groups");
    let tok = test_key(0).sign(&c);
    let (s, h, b) = get_with_token(&backend.url("/api/admin"), &tok).await;
    assert_error(s, &h, &b, 403, "missing_group");
    // An invalid token is a 401, not a 403.
    let (s, h, b) = get_with_token(&backend.url("/api/admin"), "a.b.c").await;
    assert_error(s, &h, &b, 401, "malformed_token");
    backend.stop().await;
}

#[tokio::test]
async fn group_and_scope_are_configurable() {
    let jwks = KeyServer::jwks(&[test_key(0)]).await;
    let backend = Backend::ready(
        &jwks,
        &[("ADMIN_GROUP", "ops"), ("PROFILE_SCOPE", "planb/read")],
    )
    .await;
    let mut c = good_claims();
    c["cognito:groups"] = json!(["ops"]);
    c["scope"] = json!("planb/read");
    let tok = test_key(0).sign(&c);
    assert_eq!(
        get_with_token(&backend.url("/api/admin"), &tok).await.0,
        200
    );
    assert_eq!(
        get_with_token(&backend.url("/api/profile"), &tok).await.0,
        200
    );
    let plain = test_key(0).sign(&good_claims()); // group admins, not ops
    assert_eq!(
        get_with_token(&backend.url("/api/admin"), &plain).await.0,
        403
    );
    backend.stop().await;
}

#[tokio::test]
async fn scope_guarded_route() {
    let jwks = KeyServer::jwks(&[test_key(0)]).await;
    let backend = Backend::ready(&jwks, &[]).await;
    let tok = test_key(0).sign(&good_claims());
    let (s, _, b) = get_with_token(&backend.url("/api/profile"), &tok).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(serde_json::from_str::<Value>(&b).unwrap()["sub"], SUB);
    for scope in [
        json!("openid planb/read"),
        json!("aws.cognito.signin.user"),
        json!(""),
    ] {
        let mut c = good_claims();
        c["scope"] = scope;
        let tok = test_key(0).sign(&c);
        let (s, h, b) = get_with_token(&backend.url("/api/profile"), &tok).await;
        assert_error(s, &h, &b, 403, "missing_scope");
    }
    backend.stop().await;
}

#[tokio::test]
async fn unknown_paths_and_methods_are_json_404_and_405() {
    let jwks = KeyServer::jwks(&[test_key(0)]).await;
    let backend = Backend::ready(&jwks, &[]).await;
    for path in [
        "/index.html",
        "/api",
        "/api/me/",
        "/nope",
        "/health/x",
        "/API/ME",
    ] {
        let (s, h, b) = get(&backend.url(path), &[]).await;
        assert_error(s, &h, &b, 404, "not_found");
    }
    for method in [
        reqwest::Method::POST,
        reqwest::Method::DELETE,
        reqwest::Method::PUT,
    ] {
        let resp = client()
            .request(method.clone(), backend.url("/api/me"))
            .body("{}")
            .send()
            .await
            .unwrap();
        let (s, h) = (resp.status().as_u16(), resp.headers().clone());
        assert_eq!(h["allow"], "GET,HEAD");
        assert_error(
            s,
            &h,
            &resp.text().await.unwrap(),
            405,
            "method_not_allowed",
        );
    }
    backend.stop().await;
}

#[tokio::test]
async fn rejections_are_401_json_with_the_reason() {
    let jwks = KeyServer::jwks(&[test_key(0)]).await;
    let backend = Backend::ready(&jwks, &[]).await;
    let good = test_key(0).sign(&good_claims());
    let mut expired = good_claims();
    expired["exp"] = json!(now() - 5.0);
    let mut id_token = good_claims();
    id_token["token_use"] = json!("id");
    let mut string_exp = good_claims();
    string_exp["exp"] = json!("9999999999");
    let mut no_exp = good_claims();
    no_exp.as_object_mut().unwrap().remove("exp");
    let mut with_aud = good_claims();
    with_aud["aud"] = json!(CLIENT);
    let mut foreign = good_claims();
    foreign["client_id"] = json!("someoneelse");
    let cases: Vec<(Vec<(&str, String)>, &str)> = vec![
        (vec![], "missing_token"),
        (
            vec![
                ("x-amzn-oidc-accesstoken", good.clone()),
                ("authorization", bearer(&test_key(0).sign(&expired))),
            ],
            "ambiguous_token",
        ),
        (
            vec![("authorization", "Basic dXNlcjpwYXNz".into())],
            "malformed_authorization",
        ),
        (
            vec![("x-amzn-oidc-accesstoken", "x".repeat(20 * 1024))],
            "token_too_large",
        ),
        (
            vec![("x-amzn-oidc-accesstoken", "not-a-jwt".into())],
            "malformed_token",
        ),
        (
            vec![("x-amzn-oidc-accesstoken", test_key(0).sign(&expired))],
            "token_expired",
        ),
        (
            vec![("x-amzn-oidc-accesstoken", test_key(0).sign(&id_token))],
            "wrong_token_use",
        ),
        (
            vec![("x-amzn-oidc-accesstoken", test_key(0).sign(&string_exp))],
            "invalid_claims",
        ),
        (
            vec![("x-amzn-oidc-accesstoken", test_key(0).sign(&no_exp))],
            "missing_exp",
        ),
        (
            vec![("x-amzn-oidc-accesstoken", test_key(0).sign(&with_aud))],
            "audience_present",
        ),
        (
            vec![("x-amzn-oidc-accesstoken", test_key(0).sign(&foreign))],
            "wrong_client",
        ),
        (
            vec![(
                "x-amzn-oidc-accesstoken",
                raw_token(
                    &json!({"alg": "none", "kid": "kid-0"}),
                    &good_claims(),
                    b"x",
                ),
            )],
            "unsupported_alg",
        ),
        (
            vec![(
                "x-amzn-oidc-accesstoken",
                test_key(0)
                    .sign_with_header(&json!({"alg": "HS256", "kid": "kid-0"}), &good_claims()),
            )],
            "unsupported_alg",
        ),
        (
            vec![(
                "x-amzn-oidc-accesstoken",
                format!("{}A", &good[..good.len() - 1]).replace(".", ".x"),
            )],
            "malformed_token",
        ),
    ];
    for (headers, code) in cases {
        let hdrs: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let (s, h, b) = get(&backend.url("/api/me"), &hdrs).await;
        assert_error(s, &h, &b, 401, code);
        assert!(!b.contains(&good[..40]), "a response never echoes a token");
    }
    backend.stop().await;
}

/// Sends raw bytes and returns the status line and body.
async fn raw_request(base: &str, request: &[u8]) -> (String, String) {
    let addr = base.trim_start_matches("http://");
    let mut sock = tokio::net::TcpStream::connect(addr).await.unwrap();
    sock.write_all(request).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), sock.read_to_end(&mut out))
        .await
        .expect("the server answers and closes, it does not hang")
        .ok();
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text.lines().next().unwrap_or("").to_string();
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

#[tokio::test]
async fn bad_bytes_and_huge_headers_are_4xx_never_5xx_or_a_hang() {
    let jwks = KeyServer::jwks(&[test_key(0)]).await;
    let backend = Backend::ready(&jwks, &[]).await;
    let (status, body) = raw_request(
        &backend.base,
        b"GET /api/me HTTP/1.1\r\nhost: x\r\nx-amzn-oidc-accesstoken: \xff\xfe\x80.a.b\r\nconnection: close\r\n\r\n",
    )
    .await;
    assert!(status.starts_with("HTTP/1.1 401"), "{status}");
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["error"],
        "malformed_token"
    );

    let (status, body) = raw_request(
        &backend.base,
        b"GET /api/me HTTP/1.1\r\nhost: x\r\nauthorization: Bearer \xc3\x28\r\nconnection: close\r\n\r\n",
    )
    .await;
    assert!(status.starts_with("HTTP/1.1 401"), "{status}");
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["error"],
        "malformed_authorization"
    );

    // A 20 KiB token fits the read buffer: refused as too large, JSON.
    let big = format!(
        "GET /api/me HTTP/1.1\r\nhost: x\r\nx-amzn-oidc-accesstoken: {}\r\nconnection: close\r\n\r\n",
        "a".repeat(20 * 1024)
    );
    let (status, body) = raw_request(&backend.base, big.as_bytes()).await;
    assert!(status.starts_with("HTTP/1.1 401"), "{status}");
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["error"],
        "token_too_large"
    );

    // A head larger than the read buffer (READ_BUFFER_MAX) is refused by hyper itself: 431.
    for size in [64 * 1024, 600 * 1024] {
        let huge = format!(
            "GET /api/me HTTP/1.1\r\nhost: x\r\nx-pad: {}\r\nconnection: close\r\n\r\n",
            "a".repeat(size)
        );
        let (status, _) = raw_request(&backend.base, huge.as_bytes()).await;
        assert!(status.starts_with("HTTP/1.1 431"), "{status}");
    }

    // Garbage request lines get hyper's 400, and the server keeps serving.
    let (status, _) = raw_request(&backend.base, b"\x00\x01\x02 garbage\r\n\r\n").await;
    assert!(
        status.is_empty() || status.starts_with("HTTP/1.1 4"),
        "{status}"
    );
    assert_eq!(get(&backend.url("/health"), &[]).await.0, 200);
    backend.stop().await;
}

#[tokio::test]
async fn garbage_tokens_never_produce_a_5xx() {
    let jwks = KeyServer::jwks(&[test_key(0)]).await;
    let backend = Backend::ready(&jwks, &[]).await;
    let h = |v: &str| b64(v.as_bytes());
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let tokens = vec![
        ".".into(),
        "..".into(),
        "...".into(),
        format!("{}.{}.{}", h("{}"), h("{}"), h("")),
        format!(
            "{}.{}.{}",
            h("{\"alg\":\"RS256\",\"kid\":\"kid-0\"}"),
            h("{\"exp\":1e400}"),
            h("s")
        ),
        format!(
            "{}.{}.{}",
            h("{\"alg\":\"RS256\",\"kid\":\"kid-0\"}"),
            h(&deep),
            h("s")
        ),
        format!(
            "{}.{}.{}",
            h("{\"alg\":\"RS256\",\"kid\":\"kid-0\"}"),
            h(&format!("{{\"a\":{deep}}}")),
            h("s")
        ),
        format!(
            "{}.{}.{}",
            h("{\"alg\":\"RS256\",\"kid\":\"\"}"),
            h("{}"),
            h("s")
        ),
        format!(
            "{}.{}.{}",
            h("{\"alg\":\"RS256\",\"kid\":\"kid-0\"}"),
            h("{\"exp\":-1}"),
            h("s")
        ),
        format!(
            "{}.{}.{}",
            h("{\"alg\":\"RS256\",\"kid\":\"kid-0\"}"),
            h("{}"),
            b64(&[0u8; 4096])
        ),
        format!(
            "{}.{}.{}",
            h("{\"alg\":\"RS256\",\"kid\":\"kid-0\",\"alg\":\"none\"}"),
            h("{}"),
            h("s")
        ),
        format!(
            "{}.{}.{}",
            h("\u{feff}{\"alg\":\"RS256\",\"kid\":\"kid-0\"}"),
            h("{}"),
            h("s")
        ),
        "e30.e30.e30".into(),
    ];
    for tok in tokens {
        let (s, hd, b) = get_with_token(&backend.url("/api/me"), &tok).await;
        assert_eq!(s, 401, "{tok}: {b}");
        assert_eq!(hd["www-authenticate"], "Bearer error=\"invalid_token\"");
        assert!(serde_json::from_str::<Value>(&b).unwrap()["error"].is_string());
    }
    assert_eq!(get(&backend.url("/health"), &[]).await.0, 200);
    backend.stop().await;
}

/// The ALB data check end to end: the ALB stand-in key (the real ALB key cannot
/// exist here) served by a loopback stand-in of ALB's public key endpoint.
#[tokio::test]
async fn alb_data_is_required_and_verified_when_alb_arn_is_set() {
    let jwks = KeyServer::jwks(&[test_key(0)]).await;
    let alb_key = AlbStandInKey::generate();
    let key_endpoint = KeyServer::start(Answer::Body(alb_key.pem())).await;
    let backend = Backend::ready(
        &jwks,
        &[
            ("ALB_ARN", ALB_ARN),
            ("ALB_PUBLIC_KEY_URL", &key_endpoint.base),
        ],
    )
    .await;
    let token = test_key(0).sign(&good_claims());
    let exp = now() + 60.0;
    let data = alb_key.sign(&alb_header(exp), &alb_payload(exp), true);
    let url = backend.url("/api/me");
    let with = |data: &str, identity: &str| {
        vec![
            ("x-amzn-oidc-accesstoken", token.clone()),
            ("x-amzn-oidc-data", data.to_string()),
            ("x-amzn-oidc-identity", identity.to_string()),
        ]
    };
    let send = |headers: Vec<(&'static str, String)>| {
        let url = url.clone();
        async move {
            let hdrs: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
            get(&url, &hdrs).await
        }
    };
    let (s, _, b) = send(with(&data, SUB)).await;
    assert_eq!(s, 200, "{b}");
    let (s, h, b) = send(vec![("x-amzn-oidc-accesstoken", token.clone())]).await;
    assert_error(s, &h, &b, 401, "alb_data_missing");
    // A browser's own non-Bearer Authorization is not a second token beside ALB's headers.
    for other in ["Basic dXNlcjpwYXNz", "Negotiate abc", "Digest x=1"] {
        let mut headers = with(&data, SUB);
        headers.push(("authorization", other.to_string()));
        let (s, _, b) = send(headers).await;
        assert_eq!(s, 200, "{other}: {b}");
    }
    let mut headers = with(&data, SUB);
    headers.push(("authorization", format!("Bearer {token}")));
    let (s, h, b) = send(headers).await;
    assert_error(s, &h, &b, 401, "ambiguous_token");
    let (s, h, b) = send(with(&data.replace('=', ""), SUB)).await;
    assert_error(s, &h, &b, 401, "alb_invalid_signature");
    let (s, h, b) = send(with(&data, &SUB.to_uppercase())).await;
    assert_error(s, &h, &b, 401, "identity_mismatch");
    let mut foreign = alb_header(exp);
    foreign["signer"] =
        json!("arn:aws:elasticloadbalancing:eu-west-1:123456789012:loadbalancer/app/other/1");
    let (s, h, b) = send(with(&alb_key.sign(&foreign, &alb_payload(exp), true), SUB)).await;
    assert_error(s, &h, &b, 401, "alb_wrong_signer");
    assert_eq!(key_endpoint.hits(), 1, "the ALB key is fetched once");
    backend.stop().await;
}

/// Sends `GET path` on a kept-alive raw connection and reads one whole answer.
async fn raw_get(conn: &mut tokio::net::TcpStream, path: &str) -> String {
    let req = format!("GET {path} HTTP/1.1\r\nhost: planb\r\n\r\n");
    conn.write_all(req.as_bytes()).await.unwrap();
    let mut got = Vec::new();
    loop {
        let text = String::from_utf8_lossy(&got).to_string();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length: "))
                .and_then(|n| n.trim().parse().ok())
                .unwrap_or(0);
            if body.len() >= len {
                return text;
            }
        }
        let mut buf = [0u8; 4096];
        let n = conn.read(&mut buf).await.unwrap();
        assert!(n > 0, "connection closed mid-answer: {text}");
        got.extend_from_slice(&buf[..n]);
    }
}

#[tokio::test]
async fn past_max_connections_new_connections_wait_and_are_then_served() {
    let jwks = KeyServer::jwks(&[test_key(0)]).await;
    let backend = Backend::start(env(&jwks.url(), &[("MAX_CONNECTIONS", "2")])).await;
    let addr = backend.base.trim_start_matches("http://").to_string();
    let connect = || tokio::net::TcpStream::connect(addr.clone());
    let mut a = connect().await.unwrap();
    let mut b = connect().await.unwrap();
    assert!(raw_get(&mut a, "/health").await.starts_with("HTTP/1.1 200"));
    assert!(raw_get(&mut b, "/health").await.starts_with("HTTP/1.1 200"));
    // Two connections are open: a third connects (the kernel's backlog) but is not served yet.
    let mut c = connect().await.unwrap();
    let waiting = tokio::time::timeout(Duration::from_millis(300), raw_get(&mut c, "/health"));
    assert!(waiting.await.is_err(), "served past MAX_CONNECTIONS");
    // One closes: the waiting connection is served, its request intact.
    drop(a);
    let answer = tokio::time::timeout(Duration::from_secs(5), async {
        let mut rest = Vec::new();
        while !String::from_utf8_lossy(&rest).contains("{\"status\":\"ok\"}") {
            let mut buf = [0u8; 4096];
            let n = c.read(&mut buf).await.unwrap();
            assert!(n > 0, "closed instead of served");
            rest.extend_from_slice(&buf[..n]);
        }
        String::from_utf8_lossy(&rest).to_string()
    })
    .await
    .expect("served once a connection closed");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    drop(b);
    let mut d = connect().await.unwrap();
    let metrics = raw_get(&mut d, "/metrics").await;
    assert!(
        metric(&metrics, "planb_connection_waits_total") >= 1,
        "{metrics}"
    );
    assert_eq!(metric(&metrics, "planb_connections_open"), 2, "{metrics}");
    backend.stop().await;
}
