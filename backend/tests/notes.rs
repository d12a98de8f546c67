//! The notes API against moto's real DynamoDB server on loopback: real SDK
//! calls from the real binary, real Cognito access tokens from moto's
//! AdminInitiateAuth. Each test runs its own moto and backend processes (the
//! AWS settings are per process). Needs the venv (`make venv`); it fails,
//! never skips, without it.

use std::net::{SocketAddr, TcpListener};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use testkit::{free_port, wait_for_listener, CognitoUser, KillOnDrop, Moto};

const TABLE: &str = "planb-notes";
const CURSOR_KEY: &str = "a-test-cursor-key-of-32-or-more-chars";

/// moto with a pool, alice and bob, and (optionally) the notes table.
struct World {
    moto: Moto,
    alice: CognitoUser,
    bob: CognitoUser,
}

impl World {
    fn new(with_table: bool) -> World {
        let moto = Moto::start();
        let alice = moto.cognito_user("alice", &[]);
        let bob = moto.another_user(&alice, "bob", &[]);
        if with_table {
            moto.notes_table(TABLE);
        }
        World { moto, alice, bob }
    }

    /// The backend with the notes table on moto, plus `extra` settings.
    fn backend(&self, extra: &[(&str, &str)]) -> Backend {
        let mut env = vec![
            ("NOTES_TABLE", TABLE),
            ("NOTES_CURSOR_KEY", CURSOR_KEY),
            ("AWS_ENDPOINT_URL_DYNAMODB", self.moto.endpoint.as_str()),
        ];
        env.extend_from_slice(extra);
        Backend::start(&self.alice, &env)
    }
}

/// The planb-backend binary on a free port, killed when dropped.
struct Backend {
    base: String,
    client: reqwest::Client,
    _child: KillOnDrop,
}

impl Backend {
    /// Starts the binary for `user`'s pool with `env` (later entries win; an
    /// empty value removes the variable) and waits until `/ready`.
    fn start(user: &CognitoUser, env: &[(&str, &str)]) -> Backend {
        let port = free_port();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_planb-backend"));
        cmd.env("COGNITO_USER_POOL_ID", &user.pool_id)
            .env("COGNITO_REGION", &user.region)
            .env("COGNITO_APP_CLIENT_ID", &user.client_id)
            .env("COGNITO_JWKS_URL", &user.jwks_url)
            .env("LISTEN_ADDR", format!("127.0.0.1:{port}"))
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("AWS_REGION", &user.region)
            .env_remove("AWS_PROFILE")
            .env_remove("NOTES_TABLE")
            .env_remove("NOTES_CURSOR_KEY")
            .env_remove("AWS_ENDPOINT_URL")
            .env_remove("AWS_ENDPOINT_URL_DYNAMODB")
            .stdout(Stdio::null());
        for (k, v) in env {
            if v.is_empty() {
                cmd.env_remove(k);
            } else {
                cmd.env(k, v);
            }
        }
        let child = KillOnDrop(cmd.spawn().expect("spawn planb-backend"));
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        assert!(wait_for_listener(addr, Duration::from_secs(10)));
        let backend = Backend {
            base: format!("http://{addr}"),
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap(),
            _child: child,
        };
        backend.wait_ready();
        backend
    }

    fn wait_ready(&self) {
        for _ in 0..200 {
            if self.call(Method::GET, "/ready", None, &[], None).0 == StatusCode::OK {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("backend not ready within 10 s");
    }

    /// One request: (status, headers, JSON body or Null).
    fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        headers: &[(&str, &str)],
        body: Option<Vec<u8>>,
    ) -> (StatusCode, reqwest::header::HeaderMap, Value) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let mut req = self.client.request(method, format!("{}{path}", self.base));
            if let Some(t) = token {
                req = req.header("x-amzn-oidc-accesstoken", t);
            }
            for (k, v) in headers {
                req = req.header(*k, *v);
            }
            if let Some(b) = body {
                if !headers
                    .iter()
                    .any(|(k, _)| k.eq_ignore_ascii_case("content-type"))
                {
                    req = req.header("content-type", "application/json");
                }
                req = req.body(b);
            }
            let resp = req.send().await.expect("request");
            let (status, headers) = (resp.status(), resp.headers().clone());
            let text = resp.text().await.unwrap();
            (
                status,
                headers,
                serde_json::from_str(&text).unwrap_or(Value::Null),
            )
        })
    }

    fn get(&self, path: &str, user: &CognitoUser) -> (StatusCode, Value) {
        let (s, _, v) = self.call(Method::GET, path, Some(&user.access_token), &[], None);
        (s, v)
    }

    fn put(
        &self,
        id: &str,
        user: &CognitoUser,
        text: &str,
        if_match: Option<&str>,
    ) -> (StatusCode, Value) {
        let headers: Vec<(&str, &str)> = if_match.map(|v| ("if-match", v)).into_iter().collect();
        let body = serde_json::to_vec(&json!({ "text": text })).unwrap();
        let (s, _, v) = self.call(
            Method::PUT,
            &format!("/api/notes/{id}"),
            Some(&user.access_token),
            &headers,
            Some(body),
        );
        (s, v)
    }

    fn delete(&self, id: &str, user: &CognitoUser, if_match: Option<&str>) -> (StatusCode, Value) {
        let headers: Vec<(&str, &str)> = if_match.map(|v| ("if-match", v)).into_iter().collect();
        let (s, _, v) = self.call(
            Method::DELETE,
            &format!("/api/notes/{id}"),
            Some(&user.access_token),
            &headers,
            None,
        );
        (s, v)
    }

    fn metrics(&self) -> String {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let resp = self
                .client
                .get(format!("{}/metrics", self.base))
                .send()
                .await
                .unwrap();
            resp.text().await.unwrap()
        })
    }

    /// The sum of every `planb_dynamodb_calls_total` sample.
    fn dynamodb_calls(&self) -> u64 {
        self.metrics()
            .lines()
            .filter(|l| l.starts_with("planb_dynamodb_calls_total{"))
            .map(|l| l.rsplit(' ').next().unwrap().parse::<u64>().unwrap())
            .sum()
    }
}

/// Asserts `{"error": code, "message": ...}` with `status`.
fn assert_error((status, body): (StatusCode, Value), want: u16, code: &str) {
    assert_eq!(status.as_u16(), want, "{body}");
    assert_eq!(body["error"], code, "{body}");
    assert!(
        body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
}

#[test]
fn create_replace_conditional_get_delete() {
    let w = World::new(true);
    let b = w.backend(&[]);
    let alice = &w.alice;

    let (s, v) = b.put("groceries", alice, "milk", None);
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(
        (v["id"].as_str(), v["text"].as_str(), v["version"].as_u64()),
        (Some("groceries"), Some("milk"), Some(1))
    );
    assert!(
        v["updated_at"].as_str().is_some_and(|t| t.ends_with('Z')),
        "{v}"
    );

    let (s, v) = b.put("groceries", alice, "milk, eggs", None);
    assert_eq!((s, v["version"].as_u64()), (StatusCode::OK, Some(2)), "{v}");

    // If-Match: a stale version is refused and changes nothing; the current one wins.
    assert_error(
        b.put("groceries", alice, "stale", Some("1")),
        412,
        "precondition_failed",
    );
    let (s, v) = b.put("groceries", alice, "milk, eggs, tea", Some("\"2\""));
    assert_eq!((s, v["version"].as_u64()), (StatusCode::OK, Some(3)), "{v}");
    let (s, v) = b.put("groceries", alice, "bread", Some("*"));
    assert_eq!((s, v["version"].as_u64()), (StatusCode::OK, Some(4)), "{v}");
    // On a note that does not exist, any If-Match fails.
    assert_error(
        b.put("nothing-here", alice, "x", Some("*")),
        412,
        "precondition_failed",
    );
    assert_error(
        b.put("nothing-here", alice, "x", Some("1")),
        412,
        "precondition_failed",
    );
    assert_error(b.get("/api/notes/nothing-here", alice), 404, "not_found");

    let (s, h, v) = b.call(
        Method::GET,
        "/api/notes/groceries",
        Some(&alice.access_token),
        &[],
        None,
    );
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        (v["text"].as_str(), v["version"].as_u64()),
        (Some("bread"), Some(4))
    );
    assert_eq!(h["etag"], "\"4\"");
    assert_eq!(h["cache-control"], "no-store");

    assert_error(
        b.delete("groceries", alice, Some("3")),
        412,
        "precondition_failed",
    );
    let (s, _) = b.delete("groceries", alice, Some("4"));
    assert_eq!(s, StatusCode::NO_CONTENT);
    assert_error(b.get("/api/notes/groceries", alice), 404, "not_found");
    assert_error(b.delete("groceries", alice, None), 404, "not_found");

    // A deleted id starts again at version 1.
    let (s, v) = b.put("groceries", alice, "again", None);
    assert_eq!(
        (s, v["version"].as_u64()),
        (StatusCode::CREATED, Some(1)),
        "{v}"
    );
    let (s, _) = b.delete("groceries", alice, None);
    assert_eq!(s, StatusCode::NO_CONTENT);

    let text = b.metrics();
    assert!(
        // Three PUTs and one DELETE whose If-Match did not hold.
        text.contains("planb_requests_total{route=\"/api/notes/{id}\",status=\"412\"} 4\n"),
        "{text}"
    );
    assert!(
        text.contains("planb_dynamodb_calls_total{op=\"PutItem\",result=\"condition_failed\"} 2\n"),
        "{text}"
    );
}

#[test]
fn another_users_note_is_not_there() {
    let w = World::new(true);
    let b = w.backend(&[]);
    let (alice, bob) = (&w.alice, &w.bob);
    assert_eq!(
        b.put("diary", alice, "alice's secret", None).0,
        StatusCode::CREATED
    );

    assert_error(b.get("/api/notes/diary", bob), 404, "not_found");
    assert_error(b.delete("diary", bob, None), 404, "not_found");
    assert_error(
        b.put("diary", bob, "overwrite?", Some("1")),
        412,
        "precondition_failed",
    );
    // bob's "diary" is his own note: alice's is untouched.
    let (s, v) = b.put("diary", bob, "bob's", None);
    assert_eq!(
        (s, v["version"].as_u64()),
        (StatusCode::CREATED, Some(1)),
        "{v}"
    );
    let (_, v) = b.get("/api/notes/diary", alice);
    assert_eq!(
        (v["text"].as_str(), v["version"].as_u64()),
        (Some("alice's secret"), Some(1))
    );
    let (_, v) = b.get("/api/notes", bob);
    assert_eq!(v["notes"].as_array().unwrap().len(), 1, "{v}");
    assert_eq!(v["notes"][0]["text"], "bob's");
}

#[test]
fn listing_pages_in_id_order_with_signed_cursors() {
    let w = World::new(true);
    let b = w.backend(&[]);
    let (alice, bob) = (&w.alice, &w.bob);
    let mut ids: Vec<String> = (0..25).map(|i| format!("n{:02}", (i * 7) % 25)).collect();
    for id in &ids {
        assert_eq!(b.put(id, alice, id, None).0, StatusCode::CREATED);
    }
    b.put("bobs-only", bob, "x", None);
    ids.sort();

    let (s, first) = b.get("/api/notes", alice);
    assert_eq!(s, StatusCode::OK, "{first}");
    let got: Vec<&str> = first["notes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["id"].as_str().unwrap())
        .collect();
    assert_eq!(got, ids[..20], "default limit 20, id order");
    assert_eq!(first["notes"][0]["text"], ids[0].as_str());
    let cursor = first["next"].as_str().expect("a next cursor").to_string();
    let (_, rest) = b.get(&format!("/api/notes?cursor={cursor}"), alice);
    let got: Vec<&str> = rest["notes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["id"].as_str().unwrap())
        .collect();
    assert_eq!(got, ids[20..]);
    assert_eq!(rest["next"], Value::Null, "the last page says so");

    // Paging by 5 (25 is a multiple: no empty trailing page) and by 7.
    for limit in [5, 7, 100] {
        let (mut seen, mut next, mut pages) = (Vec::new(), None::<String>, 0);
        loop {
            let path = match &next {
                Some(c) => format!("/api/notes?limit={limit}&cursor={c}"),
                None => format!("/api/notes?limit={limit}"),
            };
            let (s, v) = b.get(&path, alice);
            assert_eq!(s, StatusCode::OK, "{v}");
            let page = v["notes"].as_array().unwrap();
            assert!(!page.is_empty() && page.len() <= limit);
            seen.extend(page.iter().map(|n| n["id"].as_str().unwrap().to_string()));
            pages += 1;
            match v["next"].as_str() {
                Some(c) => next = Some(c.to_string()),
                None => break,
            }
        }
        assert_eq!(seen, ids, "limit {limit}");
        assert_eq!(pages, ids.len().div_ceil(limit), "limit {limit}");
    }

    for bad in ["0", "101", "abc", "", "-1", "1.5"] {
        assert_error(
            b.get(&format!("/api/notes?limit={bad}"), alice),
            400,
            "invalid_limit",
        );
    }
    // A changed cursor, junk, and alice's cursor in bob's hands: 400, nothing read.
    let mut forged = cursor.clone().into_bytes();
    let mid = forged.len() / 2;
    forged[mid] = if forged[mid] == b'A' { b'B' } else { b'A' };
    let forged = String::from_utf8(forged).unwrap();
    for bad in [forged.as_str(), "bm90LWEtY3Vyc29y", "", "%%%"] {
        assert_error(
            b.get(&format!("/api/notes?cursor={bad}"), alice),
            400,
            "invalid_cursor",
        );
    }
    assert_error(
        b.get(&format!("/api/notes?cursor={cursor}"), bob),
        400,
        "invalid_cursor",
    );
    // A cursor is only valid under the key that signed it.
    let other = w.backend(&[("NOTES_CURSOR_KEY", "another-key-another-deployment-0123")]);
    assert_error(
        other.get(&format!("/api/notes?cursor={cursor}"), alice),
        400,
        "invalid_cursor",
    );
}

#[test]
fn bad_requests_are_refused_before_any_dynamodb_call() {
    let w = World::new(true);
    let b = w.backend(&[]);
    let alice = &w.alice;
    let t = Some(alice.access_token.as_str());
    let put = |path: &str, body: &[u8]| b.call(Method::PUT, path, t, &[], Some(body.to_vec()));
    let error = |r: (StatusCode, reqwest::header::HeaderMap, Value)| (r.0, r.2);

    // No token, a bad token: 401 with the challenge.
    let (s, h, v) = b.call(Method::GET, "/api/notes/x", None, &[], None);
    assert_error((s, v), 401, "missing_token");
    assert_eq!(h["www-authenticate"], "Bearer error=\"invalid_token\"");
    assert_error(
        error(b.call(
            Method::PUT,
            "/api/notes/x",
            Some("a.b.c"),
            &[],
            Some(b"{\"text\":\"x\"}".to_vec()),
        )),
        401,
        "malformed_token",
    );
    assert_error(
        error(b.call(Method::GET, "/api/notes", None, &[], None)),
        401,
        "missing_token",
    );
    assert_error(
        error(b.call(Method::DELETE, "/api/notes/x", None, &[], None)),
        401,
        "missing_token",
    );

    let long = "x".repeat(65);
    // An empty or multi-segment id matches no route: 404 before the token is looked at.
    for bad in ["", "a/b"] {
        assert_error(b.get(&format!("/api/notes/{bad}"), alice), 404, "not_found");
    }
    for bad in ["a.b", "a%2Fb", "caf%C3%A9", long.as_str()] {
        assert_error(
            b.get(&format!("/api/notes/{bad}"), alice),
            400,
            "invalid_id",
        );
        assert_error(
            error(put(&format!("/api/notes/{bad}"), b"{\"text\":\"x\"}")),
            400,
            "invalid_id",
        );
    }
    let over = serde_json::to_vec(&json!({"text": "é".repeat(2048) + "x"})).unwrap();
    assert_error(error(put("/api/notes/big", &over)), 413, "too_large");
    assert_error(
        error(put("/api/notes/huge", &vec![b' '; 64 * 1024])),
        413,
        "body_too_large",
    );
    for (bad, status, code) in [
        (&b""[..], 400, "invalid_json"),
        (b"not json", 400, "invalid_json"),
        (b"{}", 422, "missing_field"),
        (b"{\"text\":1}", 422, "invalid_field"),
        (b"[\"x\"]", 422, "invalid_field"),
        (b"{\"text\":\"x\",\"more\":1}", 422, "invalid_field"),
    ] {
        assert_error(error(put("/api/notes/x", bad)), status, code);
    }
    let plain = b.call(
        Method::PUT,
        "/api/notes/x",
        t,
        &[("content-type", "text/plain")],
        Some(b"{\"text\":\"x\"}".to_vec()),
    );
    assert_error(error(plain), 415, "unsupported_media_type");
    let r = b.call(
        Method::PUT,
        "/api/notes/x",
        t,
        &[("if-match", "W/\"1\"")],
        Some(b"{\"text\":\"x\"}".to_vec()),
    );
    assert_error(error(r), 400, "invalid_if_match");
    let (s, h, v) = b.call(Method::POST, "/api/notes/x", t, &[], None);
    assert_error((s, v), 405, "method_not_allowed");
    assert_eq!(h["allow"], "GET,HEAD,PUT,DELETE");
    let (s, h, _) = b.call(Method::DELETE, "/api/notes", t, &[], None);
    assert_eq!(
        (s.as_u16(), h["allow"].to_str().unwrap()),
        (405, "GET,HEAD")
    );
    assert_eq!(b.dynamodb_calls(), 0, "{}", b.metrics());

    // Exactly 4096 bytes is fine.
    let max = serde_json::to_vec(&json!({"text": "é".repeat(2048)})).unwrap();
    assert_eq!(put("/api/notes/max", &max).0, StatusCode::CREATED);
    assert!(b.dynamodb_calls() > 0);
}

/// A listener that accepts connections and never answers.
fn silent_server() -> (TcpListener, u16) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    (l, port)
}

#[test]
fn unavailable_dynamodb_is_a_503_within_3_s_and_auth_still_comes_first() {
    let w = World::new(false);
    let closed = format!("http://127.0.0.1:{}", free_port());
    let (_held, silent_port) = silent_server();
    let silent = format!("http://127.0.0.1:{silent_port}");
    for (endpoint, table) in [
        (closed.as_str(), TABLE),
        (silent.as_str(), TABLE),
        (w.moto.endpoint.as_str(), "no-such-table"),
    ] {
        let b = w.backend(&[
            ("AWS_ENDPOINT_URL_DYNAMODB", endpoint),
            ("NOTES_TABLE", table),
        ]);
        let alice = &w.alice;
        assert_error(
            error_of(b.call(Method::GET, "/api/notes/x", None, &[], None)),
            401,
            "missing_token",
        );
        let started = Instant::now();
        let (s, h, v) = b.call(
            Method::GET,
            "/api/notes/x",
            Some(&alice.access_token),
            &[],
            None,
        );
        let took = started.elapsed();
        assert_error((s, v), 503, "notes_unavailable");
        assert_eq!(h["content-type"], "application/json");
        assert!(took < Duration::from_secs(3), "{endpoint}: {took:?}");
        for r in [
            b.put("x", alice, "t", None),
            b.get("/api/notes?limit=3", alice),
            b.delete("x", alice, None),
        ] {
            assert_error(r, 503, "notes_unavailable");
        }
        let text = b.metrics();
        let outcome = if endpoint == closed {
            "unreachable"
        } else if endpoint == silent {
            "timeout"
        } else {
            "error"
        };
        // The first GET's GetItem at least (a PUT's may be cut by the request deadline
        // before the SDK gives up on a loaded machine); none succeeded.
        let calls = |outcome: &str| {
            sample(
                &text,
                &format!("planb_dynamodb_calls_total{{op=\"GetItem\",result=\"{outcome}\"}}"),
            )
        };
        assert!(calls(outcome) >= 1, "{endpoint}: {text}");
        assert_eq!(calls("ok"), 0, "{endpoint}: {text}");
        // GET, PUT and DELETE of the item, and the list.
        assert_eq!(
            sample(
                &text,
                "planb_requests_total{route=\"/api/notes/{id}\",status=\"503\"}"
            ),
            3
        );
        assert_eq!(
            sample(
                &text,
                "planb_requests_total{route=\"/api/notes\",status=\"503\"}"
            ),
            1
        );
    }
}

/// The value of one Prometheus sample.
fn sample(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no sample {name} in\n{text}"))
}

fn error_of(r: (StatusCode, reqwest::header::HeaderMap, Value)) -> (StatusCode, Value) {
    (r.0, r.2)
}

#[test]
fn without_notes_table_the_routes_are_not_configured() {
    let w = World::new(false);
    let b = Backend::start(&w.alice, &[]);
    let t = Some(w.alice.access_token.as_str());
    for (method, path) in [
        (Method::GET, "/api/notes"),
        (Method::GET, "/api/notes/x"),
        (Method::PUT, "/api/notes/x"),
        (Method::DELETE, "/api/notes/x"),
    ] {
        for token in [t, None] {
            let (s, _, v) = b.call(method.clone(), path, token, &[], None);
            assert_error((s, v), 404, "not_configured");
        }
    }
    // The other routes are as before.
    assert_eq!(b.get("/api/me", &w.alice).0, StatusCode::OK);
    assert_error(b.get("/api/notesx", &w.alice), 404, "not_found");
}

#[test]
fn machine_callers_need_the_read_scope_to_read_and_the_write_scope_to_write() {
    use testkit::keys::{good_claims, machine_claims, test_key, KeyServer, CLIENT, POOL, REGION};
    let w = World::new(true);
    // The test pool's keys, so the test can sign client-credentials tokens:
    // the key server runs on its own runtime for the whole test.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let jwks = rt.block_on(KeyServer::jwks(&[test_key(0)]));
    let jwks_url = jwks.url();
    let b = w.backend(&[
        ("COGNITO_USER_POOL_ID", POOL),
        ("COGNITO_REGION", REGION),
        ("COGNITO_APP_CLIENT_ID", CLIENT),
        ("COGNITO_JWKS_URL", &jwks_url),
    ]);
    let call = |method: Method, path: &str, scope: Option<&str>| {
        let token = match scope {
            Some(scope) => test_key(0).sign(&machine_claims(scope)),
            None => test_key(0).sign(&good_claims()),
        };
        let auth = format!("Bearer {token}");
        let body = (method == Method::PUT).then(|| br#"{"text":"hi"}"#.to_vec());
        let (s, _, v) = b.call(method, path, None, &[("authorization", &auth)], body);
        (s, v)
    };
    let note = "/api/notes/machine-note";
    assert_error(
        call(Method::PUT, note, Some("planb-api/read")),
        403,
        "missing_scope",
    );
    let (s, v) = call(Method::PUT, note, Some("planb-api/write"));
    assert_eq!(s, StatusCode::CREATED, "{v}");
    for path in ["/api/notes", note] {
        assert_error(
            call(Method::GET, path, Some("planb-api/write")),
            403,
            "missing_scope",
        );
        let (s, v) = call(Method::GET, path, Some("planb-api/read"));
        assert_eq!(s, StatusCode::OK, "{path}: {v}");
    }
    assert_error(
        call(Method::DELETE, note, Some("planb-api/read")),
        403,
        "missing_scope",
    );
    assert_error(call(Method::GET, note, Some("")), 403, "missing_scope");
    let (s, v) = call(Method::DELETE, note, Some("planb-api/read planb-api/write"));
    assert_eq!(s, StatusCode::NO_CONTENT, "{v}");
    // A user's token carries no resource-server scope and needs none.
    let (s, v) = call(Method::PUT, note, None);
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let (s, v) = call(Method::GET, note, None);
    assert_eq!(s, StatusCode::OK, "{v}");
}
