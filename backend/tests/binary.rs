//! The real binary: usage, start-up errors, JSON logs without tokens, SIGTERM.

mod common;

use common::*;
use std::io::Read;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use testkit::{free_port, wait_for_listener, KillOnDrop};

const BIN: &str = env!("CARGO_BIN_EXE_planb-backend");

fn base_env<'c>(cmd: &'c mut Command, jwks_url: &str) -> &'c mut Command {
    cmd.env_clear()
        .env("COGNITO_USER_POOL_ID", POOL)
        .env("COGNITO_REGION", REGION)
        .env("COGNITO_APP_CLIENT_ID", CLIENT)
        .env("COGNITO_JWKS_URL", jwks_url)
}

#[test]
fn help_prints_the_environment_variables() {
    let out = Command::new(BIN).arg("--help").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    for var in [
        "COGNITO_USER_POOL_ID",
        "COGNITO_REGION",
        "COGNITO_APP_CLIENT_ID",
        "COGNITO_JWKS_URL",
        "LISTEN_ADDR",
        "ALB_ARN",
        "ALB_PUBLIC_KEY_URL",
        "TOKEN_CACHE_SIZE",
        "TOKEN_CACHE_BYTES",
        "MAX_CONNECTIONS",
        "RUST_LOG",
        "LOG_FORMAT",
        "ADMIN_GROUP",
        "PROFILE_SCOPE",
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_TRACES_SAMPLER_ARG",
    ] {
        assert!(text.contains(var), "--help does not mention {var}");
    }
    let out = Command::new(BIN).arg("--bogus").output().unwrap();
    assert!(!out.status.success());
}

#[test]
fn a_missing_or_malformed_variable_exits_non_zero_with_one_line_naming_it() {
    let cases: [(&str, Option<&str>); 7] = [
        ("COGNITO_USER_POOL_ID", None),
        ("COGNITO_APP_CLIENT_ID", None),
        ("LISTEN_ADDR", Some("not-an-address")),
        ("TOKEN_CACHE_SIZE", Some("many")),
        ("RUST_LOG", Some("=[")),
        ("OTEL_TRACES_SAMPLER_ARG", Some("1.5")),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", Some("collector:4318")),
    ];
    for (var, value) in cases {
        let mut cmd = Command::new(BIN);
        base_env(&mut cmd, "http://127.0.0.1:9/jwks.json");
        match value {
            Some(v) => cmd.env(var, v),
            None => cmd.env_remove(var),
        };
        let out = cmd.output().unwrap();
        assert!(!out.status.success(), "{var}");
        let err = String::from_utf8(out.stderr).unwrap();
        assert_eq!(err.lines().count(), 1, "{var}: {err}");
        assert!(err.contains(var), "{var}: {err}");
    }
}

#[tokio::test]
async fn logs_are_json_and_never_contain_a_token_and_sigterm_drains_in_flight_requests() {
    let jwks = KeyServer::jwks(&[test_key(0)]).await;
    let port = free_port();
    let mut cmd = Command::new(BIN);
    base_env(&mut cmd, &jwks.url())
        .env("LISTEN_ADDR", format!("127.0.0.1:{port}"))
        .env("RUST_LOG", "debug")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = KillOnDrop(cmd.spawn().unwrap());
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    assert!(wait_for_listener(addr, Duration::from_secs(10)));
    let base = format!("http://{addr}");
    for _ in 0..100 {
        if get(&format!("{base}/ready"), &[]).await.0 == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let good = test_key(0).sign(&good_claims());
    let mut bad_claims = good_claims();
    bad_claims["exp"] = serde_json::json!(now() - 1.0);
    let bad = test_key(0).sign(&bad_claims);
    let trace = "Self=1-67891234-12456789abcdef012345678;Root=1-67891233-abcdef012345678912345678;Sampled=1";
    assert_eq!(
        get(
            &format!("{base}/api/me"),
            &[
                ("x-amzn-oidc-accesstoken", &good),
                ("x-amzn-trace-id", trace)
            ]
        )
        .await
        .0,
        200
    );
    assert_eq!(
        get(
            &format!("{base}/api/me"),
            &[("authorization", &format!("Bearer {bad}"))]
        )
        .await
        .0,
        401
    );

    // An in-flight request: a new kid whose JWKS fetch takes a second.
    jwks.set(Answer::Slow(
        Duration::from_secs(1),
        common::jwks(&[test_key(0), test_key(1)]).to_string(),
    ));
    let slow_token = test_key(1).sign(&good_claims());
    let url = format!("{base}/api/me");
    let in_flight = tokio::spawn(async move {
        get(&url, &[("x-amzn-oidc-accesstoken", &slow_token)])
            .await
            .0
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let sent = Instant::now();
    let pid = child.0.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    assert_eq!(
        in_flight.await.unwrap(),
        200,
        "the in-flight request finishes"
    );
    let status = loop {
        if let Some(s) = child.0.try_wait().unwrap() {
            break s;
        }
        assert!(
            sent.elapsed() < Duration::from_secs(15),
            "no exit within 15 s of SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status:?}");
    assert!(
        !wait_for_listener(addr, Duration::from_millis(200)),
        "the listener is closed"
    );

    let mut stdout = String::new();
    child
        .0
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    let mut stderr = String::new();
    child
        .0
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    let logs = format!("{stdout}{stderr}");
    assert!(stdout.lines().count() >= 3, "{logs}");
    for line in stdout.lines() {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|_| panic!("not JSON: {line}"));
        assert!(
            v["level"].is_string() && v["timestamp"].is_string(),
            "{line}"
        );
    }
    // One access line per request: who called what, with what result.
    let access: Vec<serde_json::Value> = stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["message"] == "access" && v["route"] == "/api/me")
        .collect();
    let served = access.iter().find(|v| v["status"] == 200).expect(&logs);
    assert_eq!(served["method"], "GET", "{served}");
    assert_eq!(served["sub"], SUB, "{served}");
    assert_eq!(served["kind"], "user", "{served}");
    assert_eq!(served["client_id"], CLIENT, "{served}");
    assert_eq!(served["username"], "alice", "{served}");
    assert_eq!(
        served["trace_id"], "1-67891233-abcdef012345678912345678",
        "{served}"
    );
    assert!(
        served["duration_ms"].as_f64().is_some_and(|d| d >= 0.0),
        "{served}"
    );
    assert!(served.get("refusal").is_none(), "{served}");
    let refused = access.iter().find(|v| v["status"] == 401).expect(&logs);
    assert_eq!(refused["refusal"], "token_expired", "{refused}");
    assert!(refused.get("sub").is_none(), "{refused}");
    assert!(logs.contains("SIGTERM"), "{logs}");
    for (i, token) in [&good, &bad].iter().enumerate() {
        for part in token.split('.') {
            assert!(!logs.contains(part), "token {i} part leaked into the logs");
        }
    }
}

#[tokio::test]
async fn text_logs_with_log_format_text() {
    let jwks = KeyServer::jwks(&[test_key(0)]).await;
    let port = free_port();
    let mut cmd = Command::new(BIN);
    base_env(&mut cmd, &jwks.url())
        .env("LISTEN_ADDR", format!("127.0.0.1:{port}"))
        .env("LOG_FORMAT", "text")
        .stdout(Stdio::piped());
    let mut child = KillOnDrop(cmd.spawn().unwrap());
    assert!(wait_for_listener(
        ([127, 0, 0, 1], port).into(),
        Duration::from_secs(10)
    ));
    let pid = child.0.id().to_string();
    Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(child.0.wait().unwrap().success());
    let mut stdout = String::new();
    child
        .0
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    let first = stdout.lines().next().unwrap_or_default();
    assert!(
        first.contains("planb-backend listening") && !first.starts_with('{'),
        "{stdout}"
    );
}
