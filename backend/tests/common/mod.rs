//! Shared by the integration tests: the server in-process on loopback, a
//! loopback JWKS (test keys generated at test time), and an HTTP client.
#![allow(dead_code)] // each test binary uses a different part

use std::collections::HashMap;
use std::time::Duration;

use planb_backend::config::Config;
use serde_json::Value;
pub use testkit::keys::*;

/// A backend running in this process on a free loopback port.
pub struct Backend {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

/// The test pool's environment, pointed at `jwks_url`, with `extra` on top.
pub fn env(jwks_url: &str, extra: &[(&str, &str)]) -> HashMap<String, String> {
    let mut env: HashMap<String, String> = [
        ("COGNITO_USER_POOL_ID", POOL),
        ("COGNITO_REGION", REGION),
        ("COGNITO_APP_CLIENT_ID", CLIENT),
        ("COGNITO_JWKS_URL", jwks_url),
    ]
    .iter()
    .chain(extra)
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    env.retain(|_, v| !v.is_empty());
    env
}

impl Backend {
    /// Starts the server with `env` (see [`env`]); returns once it accepts connections.
    pub async fn start(env: HashMap<String, String>) -> Backend {
        let config = Config::from_lookup(|k| env.get(k).cloned()).expect("test config");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            planb_backend::server::run(&config, listener, async {
                let _ = rx.await;
            })
            .await
            .expect("server runs");
        });
        Backend {
            base,
            stop: Some(tx),
            task,
        }
    }

    /// Starts against `jwks` and waits until `/ready`.
    pub async fn ready(jwks: &KeyServer, extra: &[(&str, &str)]) -> Backend {
        let b = Backend::start(env(&jwks.url(), extra)).await;
        b.wait_ready().await;
        b
    }

    /// Waits until `/ready` answers 200 (at most 10 s).
    pub async fn wait_ready(&self) {
        for _ in 0..200 {
            if get(&self.url("/ready"), &[]).await.0 == 200 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("backend not ready within 10 s");
    }

    /// `base` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// GET `/api/me` with the token in `x-amzn-oidc-accesstoken`.
    pub async fn me(&self, token: &str) -> (u16, Value) {
        let (s, _, body) = get(&self.url("/api/me"), &[("x-amzn-oidc-accesstoken", token)]).await;
        (s, serde_json::from_str(&body).unwrap_or(Value::Null))
    }

    /// Triggers graceful shutdown and waits for the server task.
    pub async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        let task = std::mem::replace(&mut self.task, tokio::spawn(async {}));
        tokio::time::timeout(Duration::from_secs(15), task)
            .await
            .expect("drains in time")
            .unwrap();
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A client with no proxy and no redirects. One per test thread: building
/// one loads the system's CA store, and a client's pool belongs to the test's runtime.
pub fn client() -> reqwest::Client {
    thread_local! {
        static CLIENT: reqwest::Client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap();
    }
    CLIENT.with(|c| c.clone())
}

/// GET `url` with `headers`: (status, headers, body).
pub async fn get(url: &str, headers: &[(&str, &str)]) -> (u16, reqwest::header::HeaderMap, String) {
    let mut req = client().get(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.send().await.expect("request");
    let status = resp.status().as_u16();
    let hdrs = resp.headers().clone();
    (status, hdrs, resp.text().await.unwrap())
}

/// GET `url` with `token` in `x-amzn-oidc-accesstoken`, as ALB1 sends it.
pub async fn get_with_token(url: &str, token: &str) -> (u16, reqwest::header::HeaderMap, String) {
    get(url, &[("x-amzn-oidc-accesstoken", token)]).await
}

/// Asserts a JSON error body with `code`, and the Bearer challenge on 401s.
pub fn assert_error(
    status: u16,
    headers: &reqwest::header::HeaderMap,
    body: &str,
    want_status: u16,
    code: &str,
) {
    assert_eq!(status, want_status, "{body}");
    let v: Value = serde_json::from_str(body).unwrap_or_else(|_| panic!("not JSON: {body}"));
    assert_eq!(v["error"], code, "{body}");
    assert!(
        v["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    assert_eq!(headers["content-type"], "application/json");
    if want_status == 401 {
        assert_eq!(
            headers["www-authenticate"],
            "Bearer error=\"invalid_token\""
        );
    }
}

/// The value of an unlabelled or labelled sample in Prometheus text.
pub fn metric(text: &str, sample: &str) -> u64 {
    text.lines()
        .find_map(|l| {
            l.strip_prefix(sample)
                .and_then(|rest| rest.strip_prefix(' '))
        })
        .unwrap_or_else(|| panic!("no sample {sample} in\n{text}"))
        .parse()
        .unwrap()
}
