//! Against moto's server: a real pool, client and users, real RS256 access
//! tokens from AdminInitiateAuth, the real binary fetching moto's JWKS.
//! Needs the venv (`make venv`); it fails, never skips, without it.

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use testkit::{free_port, wait_for_listener, KillOnDrop, Moto};

fn get(url: &str, token: Option<&str>) -> (u16, Value) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut req = reqwest::Client::new().get(url);
        if let Some(t) = token {
            req = req.header("x-amzn-oidc-accesstoken", t);
        }
        let resp = req.send().await.expect("request");
        let status = resp.status().as_u16();
        (
            status,
            serde_json::from_str(&resp.text().await.unwrap()).unwrap_or(Value::Null),
        )
    })
}

#[test]
fn api_me_returns_the_moto_user() {
    let moto = Moto::start();
    let alice = moto.cognito_user("alice", &["admins"]);
    let bob = moto.another_user(&alice, "bob", &[]);
    let port = free_port();
    let child = Command::new(env!("CARGO_BIN_EXE_planb-backend"))
        .env("COGNITO_USER_POOL_ID", &alice.pool_id)
        .env("COGNITO_REGION", &alice.region)
        .env("COGNITO_APP_CLIENT_ID", &alice.client_id)
        .env("COGNITO_JWKS_URL", &alice.jwks_url)
        .env("LISTEN_ADDR", format!("127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let _child = KillOnDrop(child);
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    assert!(wait_for_listener(addr, Duration::from_secs(10)));
    let base = format!("http://{addr}");
    let mut ready = 0;
    for _ in 0..100 {
        ready = get(&format!("{base}/ready"), None).0;
        if ready == 200 {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(ready, 200, "the backend loaded moto's JWKS");

    let (status, me) = get(&format!("{base}/api/me"), Some(&alice.access_token));
    assert_eq!(status, 200, "{me}");
    assert_eq!(me["sub"], alice.sub.as_str());
    assert_eq!(me["username"], "alice");
    assert_eq!(me["client_id"], alice.client_id.as_str());
    assert_eq!(me["groups"], serde_json::json!(["admins"]));
    assert!(me["exp"].as_i64().unwrap() > 0);

    // Group guard: alice is in admins, bob is not.
    assert_eq!(
        get(&format!("{base}/api/admin"), Some(&alice.access_token)).0,
        200
    );
    let (status, body) = get(&format!("{base}/api/admin"), Some(&bob.access_token));
    assert_eq!(
        (status, body["error"].as_str()),
        (403, Some("missing_group"))
    );
    // Scope guard: moto's access tokens carry aws.cognito.signin.user.admin.
    assert_eq!(
        get(&format!("{base}/api/profile"), Some(&bob.access_token)).0,
        200
    );

    // The ID token is not an access token; a tampered token fails its signature.
    let (status, body) = get(&format!("{base}/api/me"), Some(&alice.id_token));
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("wrong_token_use"))
    );
    let t = &alice.access_token;
    let i = t.len() - 10;
    let tampered = format!(
        "{}{}{}",
        &t[..i],
        if &t[i..=i] == "A" { "B" } else { "A" },
        &t[i + 1..]
    );
    let (status, body) = get(&format!("{base}/api/me"), Some(&tampered));
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_signature"))
    );
}
