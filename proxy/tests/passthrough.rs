//! The passthrough itself, through the real binary: header and body fidelity,
//! X-Forwarded-For, hop-by-hop handling, WebSocket, and failures (502, 504,
//! recovery).

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::*;

fn proxy_to(up: &Upstream, tag: &str, extra: &str) -> (ProxyConf, Proxy) {
    let conf = ProxyConf::new(tag, &format!("address: \"{}\"\n{extra}", up.addr));
    let proxy = conf.start(&[]);
    (conf, proxy)
}

#[test]
fn headers_pass_unchanged_with_a_12k_header_and_repeats() {
    let up = Upstream::start("127.0.0.1:0".parse().unwrap(), "one");
    let (conf, _proxy) = proxy_to(&up, "headers", "");

    let oidc_data = "d".repeat(12 * 1024);
    let access_token = format!("eyJ.{}.sig", "a".repeat(2000));
    let big = "v".repeat(16 * 1024);
    let raw = format!(
        "PUT /api/items/42?x=1&y=%2F HTTP/1.1\r\n\
         Host: alb1.example.com\r\n\
         x-amzn-oidc-data: {oidc_data}\r\n\
         x-amzn-oidc-accesstoken: {access_token}\r\n\
         x-amzn-oidc-identity: 1234-abcd\r\n\
         X-Amzn-Trace-Id: Root=1-5759e988-bd862e3fe1be46a994272793\r\n\
         x-multi: first\r\n\
         x-multi: second\r\n\
         Cookie: a=1\r\n\
         Cookie: b=2\r\n\
         x-big: {big}\r\n\
         X-Forwarded-For: 203.0.113.7\r\n\
         X-Forwarded-Proto: https\r\n\
         Content-Length: 5\r\n\
         Connection: close\r\n\r\nhello"
    );
    let r = send_raw(conf.listen, raw.as_bytes()).unwrap();
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let j = r.json();
    assert_eq!(j["method"], "PUT");
    assert_eq!(j["target"], "/api/items/42?x=1&y=%2F");
    assert_eq!(j["body_len"], 5);
    let all = |name: &str| r.upstream_values(name);
    assert_eq!(all("host"), ["alb1.example.com"]);
    assert_eq!(all("x-amzn-oidc-data"), [oidc_data.as_str()]);
    assert_eq!(all("x-amzn-oidc-accesstoken"), [access_token.as_str()]);
    assert_eq!(all("x-amzn-oidc-identity"), ["1234-abcd"]);
    assert_eq!(
        all("x-amzn-trace-id"),
        ["Root=1-5759e988-bd862e3fe1be46a994272793"]
    );
    assert_eq!(all("x-multi"), ["first", "second"]);
    assert_eq!(all("cookie"), ["a=1", "b=2"]);
    assert_eq!(all("x-big"), [big.as_str()]);
    assert_eq!(all("x-forwarded-proto"), ["https"]);
    assert_eq!(all("x-forwarded-for"), ["203.0.113.7, 127.0.0.1"]);
    assert_eq!(all("content-length"), ["5"]);

    // The access log has the request and the trace id, never the token values.
    let found = eventually(Duration::from_secs(3), || {
        conf.log_text().contains("/api/items/42")
    });
    let log = conf.log_text();
    assert!(found, "no access log line:\n{log}");
    assert!(
        log.contains("Root=1-5759e988-bd862e3fe1be46a994272793"),
        "{log}"
    );
    assert!(
        !log.contains(&oidc_data[..64]),
        "oidc data leaked into the log"
    );
    assert!(!log.contains("eyJ."), "access token leaked into the log");
    assert!(
        !log.contains("1234-abcd"),
        "oidc identity leaked into the log"
    );
}

#[test]
fn access_log_lines_are_flushed_within_a_second_as_json_without_tokens() {
    let up = Upstream::start("127.0.0.1:0".parse().unwrap(), "one");
    let (conf, _proxy) = proxy_to(&up, "accesslog", "");
    for i in 0..3 {
        let r = get(
            conf.listen,
            &format!("/logged/{i}?token=secret-query"),
            &[
                ("x-amzn-trace-id", "Root=1-trace"),
                ("x-amzn-oidc-accesstoken", "eyJ.secret-token.sig"),
                ("authorization", "Bearer secret-bearer"),
            ],
        )
        .unwrap();
        assert_eq!(r.status, 200);
    }
    // Buffered, written within about a second while the proxy keeps running.
    let lines = |text: &str| -> Vec<serde_json::Value> {
        text.lines()
            .filter(|l| l.contains("\"target\":\"access\""))
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect()
    };
    assert!(
        eventually(Duration::from_secs(3), || lines(&conf.log_text()).len()
            == 3),
        "{}",
        conf.log_text()
    );
    let text = conf.log_text();
    let first = &lines(&text)[0];
    assert_eq!(first["method"], "GET");
    assert_eq!(first["path"], "/logged/0");
    assert_eq!(first["status"], 200);
    assert_eq!(first["upstream"], up.addr.to_string());
    assert_eq!(first["trace_id"], "Root=1-trace");
    assert!(first["duration_ms"].as_f64().unwrap() > 0.0, "{first}");
    for secret in ["secret-query", "secret-token", "secret-bearer"] {
        assert!(
            !text.contains(secret),
            "{secret} leaked into the log:\n{text}"
        );
    }
}

#[test]
fn x_forwarded_for_is_added_when_absent() {
    let up = Upstream::start("127.0.0.1:0".parse().unwrap(), "one");
    let (conf, _proxy) = proxy_to(&up, "xff", "");
    let r = get(conf.listen, "/", &[]).unwrap();
    let xff: Vec<_> = r
        .upstream_headers()
        .into_iter()
        .filter(|(k, _)| k == "x-forwarded-for")
        .collect();
    assert_eq!(
        xff,
        [("x-forwarded-for".to_string(), "127.0.0.1".to_string())]
    );
}

#[test]
fn bodies_stream_both_ways_8mib_and_chunked() {
    let up = Upstream::start("127.0.0.1:0".parse().unwrap(), "one");
    let (conf, _proxy) = proxy_to(&up, "bodies", "");

    // 8 MiB upload with Content-Length.
    let body: Vec<u8> = (0..8 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
    let mut raw = format!(
        "POST /upload HTTP/1.1\r\nHost: h\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    raw.extend_from_slice(&body);
    let r = send_raw(conf.listen, &raw).unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["body_len"], body.len());
    assert_eq!(r.json()["body_sha256"], sha256_hex(&body));

    // Chunked upload, chunks of odd sizes.
    let mut raw = b"POST /chunked HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n".to_vec();
    let mut sent = Vec::new();
    for (i, size) in [1usize, 100, 4096, 65537, 3].iter().enumerate() {
        let chunk = vec![b'a' + i as u8; *size];
        raw.extend_from_slice(format!("{size:x}\r\n").as_bytes());
        raw.extend_from_slice(&chunk);
        raw.extend_from_slice(b"\r\n");
        sent.extend_from_slice(&chunk);
    }
    raw.extend_from_slice(b"0\r\n\r\n");
    let r = send_raw(conf.listen, &raw).unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["body_len"], sent.len());
    assert_eq!(r.json()["body_sha256"], sha256_hex(&sent));
    let te: Vec<_> = r
        .upstream_headers()
        .into_iter()
        .filter(|(k, _)| k == "transfer-encoding" || k == "content-length")
        .collect();
    assert_eq!(te, [("transfer-encoding".into(), "chunked".into())]);

    // 8 MiB download.
    let n = 8 * 1024 * 1024;
    let r = get(conf.listen, &format!("/big?bytes={n}"), &[]).unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.body.len(), n);
    assert!(r.body.iter().all(|b| *b == b'x'));
}

#[test]
fn hop_by_hop_fields_are_not_forwarded_and_cl_with_te_is_reframed() {
    let up = Upstream::start("127.0.0.1:0".parse().unwrap(), "one");
    let (conf, _proxy) = proxy_to(&up, "hop", "");

    let raw = "GET /hop HTTP/1.1\r\nHost: h\r\n\
               Connection: close, x-hop\r\nx-hop: secret\r\nKeep-Alive: timeout=5\r\n\
               TE: trailers\r\nProxy-Connection: keep-alive\r\nx-end-to-end: kept\r\n\r\n";
    let r = send_raw(conf.listen, raw.as_bytes()).unwrap();
    assert_eq!(r.status, 200);
    let names: Vec<String> = r.upstream_headers().into_iter().map(|(k, _)| k).collect();
    for gone in ["x-hop", "keep-alive", "te", "proxy-connection"] {
        assert!(
            !names.iter().any(|n| n == gone),
            "{gone} was forwarded: {names:?}"
        );
    }
    assert!(names.iter().any(|n| n == "x-end-to-end"), "{names:?}");

    // Content-Length and Transfer-Encoding together (RFC 9112 6.1): the chunked
    // framing wins, Content-Length is not forwarded.
    let raw = "POST /clte HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\
               Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n0\r\n\r\n";
    let r = send_raw(conf.listen, raw.as_bytes()).unwrap();
    if r.status == 200 {
        assert_eq!(r.json()["body_len"], 5);
        let cl = r
            .upstream_headers()
            .into_iter()
            .any(|(k, _)| k == "content-length");
        assert!(!cl, "Content-Length forwarded next to Transfer-Encoding");
    } else {
        assert_eq!(r.status, 400, "CL+TE must be rejected or re-framed");
    }
}

#[test]
fn content_length_lists_are_collapsed_or_refused() {
    let up = Upstream::start("127.0.0.1:0".parse().unwrap(), "one");
    let (conf, _proxy) = proxy_to(&up, "cl-list", "");

    // One value as a list, or the same value repeated: forwarded as one field
    // with that value, the body framed by it. The next request on the same
    // connection is read where that body ends, so nothing desyncs.
    for fields in [
        "Content-Length: 5, 5\r\n",
        "Content-Length: 5,5\r\n",
        "Content-Length: 5\r\nContent-Length: 5\r\n",
        "Content-Length: 5\r\nContent-Length: 5, 5\r\n",
    ] {
        let mut s = TcpStream::connect(conf.listen).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let raw = format!("POST /cl HTTP/1.1\r\nHost: h\r\n{fields}\r\nhello");
        s.write_all(raw.as_bytes()).unwrap();
        let r = read_response(&mut s).unwrap();
        assert_eq!(
            r.status,
            200,
            "{fields:?}: {}",
            String::from_utf8_lossy(&r.body)
        );
        assert_eq!(r.upstream_values("content-length"), ["5"], "{fields:?}");
        assert_eq!(r.json()["body_len"], 5, "{fields:?}");
        s.write_all(b"GET /next HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
            .unwrap();
        let next = read_response(&mut s).unwrap();
        assert_eq!(next.status, 200, "{fields:?}");
        assert_eq!(next.json()["target"], "/next", "{fields:?}");
    }

    // Differing values: 400 from the proxy, nothing sent upstream.
    for fields in [
        "Content-Length: 5, 6\r\n",
        "Content-Length: 5\r\nContent-Length: 6\r\n",
        "Content-Length: 5\r\nContent-Length: 5, 6\r\n",
    ] {
        let raw = format!("POST /cl HTTP/1.1\r\nHost: h\r\n{fields}\r\nhello+");
        let r = send_raw(conf.listen, raw.as_bytes()).unwrap();
        assert_eq!(r.status, 400, "{fields:?}");
        assert_eq!(
            r.header("x-upstream"),
            None,
            "{fields:?} reached the upstream"
        );
    }
}

#[test]
fn identity_headers_named_by_connection_are_still_forwarded() {
    let up = Upstream::start("127.0.0.1:0".parse().unwrap(), "one");
    let (conf, _proxy) = proxy_to(&up, "nominated", "");
    let raw = "GET /who-am-i HTTP/1.1\r\nHost: h\r\n\
               Connection: close, x-amzn-oidc-data, X-Amzn-Oidc-Accesstoken, authorization, x-amzn-oidc-identity, x-hop\r\n\
               x-amzn-oidc-data: data.part.sig\r\nx-amzn-oidc-accesstoken: eyJ.token.sig\r\n\
               x-amzn-oidc-identity: sub-1\r\nAuthorization: Bearer abc\r\nAuthorization: Bearer second\r\n\
               x-hop: dropped\r\n\r\n";
    let r = send_raw(conf.listen, raw.as_bytes()).unwrap();
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let all = |name: &str| r.upstream_values(name);
    assert_eq!(all("x-amzn-oidc-data"), ["data.part.sig"]);
    assert_eq!(all("x-amzn-oidc-accesstoken"), ["eyJ.token.sig"]);
    assert_eq!(all("x-amzn-oidc-identity"), ["sub-1"]);
    assert_eq!(all("authorization"), ["Bearer abc", "Bearer second"]);
    assert!(all("x-hop").is_empty(), "{:?}", r.upstream_headers());
    assert!(
        all("connection").iter().all(|v| !v.contains("oidc")),
        "{:?}",
        r.upstream_headers()
    );
}

#[test]
fn forwarded_for_named_by_connection_is_refused() {
    let up = Upstream::start("127.0.0.1:0".parse().unwrap(), "one");
    let (conf, _proxy) = proxy_to(&up, "nominated-xff", "");
    // Pingora's policy, relied on: the client address chain cannot be dropped.
    let raw = "GET / HTTP/1.1\r\nHost: h\r\nConnection: close, x-forwarded-for\r\n\
               X-Forwarded-For: 198.51.100.9\r\n\r\n";
    let r = send_raw(conf.listen, raw.as_bytes()).unwrap();
    assert_eq!(r.status, 400, "{}", String::from_utf8_lossy(&r.body));
}

/// Sends a WebSocket upgrade for `target` through the proxy and returns the
/// connection and the response head.
fn websocket_handshake(conf: &ProxyConf, target: &str) -> (TcpStream, String) {
    let mut s = TcpStream::connect(conf.listen).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let req = format!(
        "GET {target} HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    s.write_all(req.as_bytes()).unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        s.read_exact(&mut byte).unwrap();
        head.push(byte[0]);
    }
    (s, String::from_utf8(head).unwrap().to_ascii_lowercase())
}

#[test]
fn websocket_handshake_passes_from_an_instant_upstream() {
    let up = Upstream::start("127.0.0.1:0".parse().unwrap(), "one");
    let (conf, _proxy) = proxy_to(&up, "ws-instant", "");
    let (_s, head) = websocket_handshake(&conf, "/ws");
    assert!(head.starts_with("http/1.1 101"), "{head}");
    assert!(head.contains("upgrade: websocket"), "{head}");
    assert!(head.contains("sec-websocket-accept: test"), "{head}");
}

/// The upstream answers the upgrade 100 ms after the request, as a backend
/// behind ALB2 (a network hop away) does. Not 0 ms: Pingora 0.9.1 tears a
/// tunnel down when the 101 is read before the upgrade request's own empty
/// body has gone through its pipe (cloudflare/pingora#946, unreleased fix in
/// #947); an in-process upstream answering at once met that race in about 2
/// runs in 20. The handshake alone is checked against an instant upstream above.
#[test]
fn websocket_upgrade_passes() {
    let up = Upstream::start("127.0.0.1:0".parse().unwrap(), "one");
    let (conf, _proxy) = proxy_to(&up, "ws", "");
    let (mut s, head) = websocket_handshake(&conf, "/ws?ms=100");
    assert!(head.starts_with("http/1.1 101"), "{head}");
    for msg in [&b"ping-1"[..], b"second message"] {
        s.write_all(msg).unwrap();
        let mut back = vec![0u8; msg.len()];
        s.read_exact(&mut back).unwrap();
        assert_eq!(back, msg);
    }
}

#[test]
fn upstream_down_is_a_fast_502_and_traffic_resumes_by_itself() {
    let port = testkit::free_port();
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let conf = ProxyConf::new(
        "down",
        &format!("address: \"{addr}\"\nhealth_check_secs: 1"),
    );
    let _proxy = conf.start(&[]);

    let t = Instant::now();
    let r = get(conf.listen, "/", &[]).unwrap();
    assert_eq!(r.status, 502);
    assert!(
        t.elapsed() < Duration::from_secs(1),
        "502 took {:?}",
        t.elapsed()
    );
    assert!(!r.body.is_empty() && r.body.len() < 200, "{:?}", r.body);

    let _up = Upstream::start(addr, "back");
    assert!(
        eventually(Duration::from_secs(5), || who(conf.listen) == "back"),
        "traffic did not resume: {}",
        who(conf.listen)
    );
    let metrics = get(conf.admin, "/metrics", &[]).unwrap();
    let text = String::from_utf8(metrics.body).unwrap();
    assert!(
        text.contains("planb_proxy_requests_total{status=\"502\"} 1"),
        "{text}"
    );
    assert!(text.contains("planb_proxy_upstream_errors_total"), "{text}");
}

#[test]
fn a_connect_failure_is_retried_on_the_other_address() {
    // Two addresses; one stops after the health check saw it up: every
    // request still gets a 200, through a retry on the other address.
    let (a, b) = pair_on_one_port();
    let port = a.local_addr().unwrap().port();
    let _two = Upstream::serve(a, "two");
    let three = Upstream::serve(b, "three");
    let dns = Dns::start(&["127.0.0.2".parse().unwrap(), "127.0.0.3".parse().unwrap()]);
    // A long health-check period so the check does not hide the dead address.
    let conf = ProxyConf::new(
        "retry",
        &format!(
            "address: \"upstream.test:{port}\"\nresolver: \"{}\"\nhealth_check_secs: 3600",
            dns.addr
        ),
    );
    let _proxy = conf.start(&[]);
    let seen: std::collections::BTreeSet<String> = (0..6).map(|_| who(conf.listen)).collect();
    assert_eq!(seen, ["three".to_string(), "two".to_string()].into());
    drop(three);
    for _ in 0..10 {
        assert_eq!(who(conf.listen), "two");
    }
    let text = String::from_utf8(get(conf.admin, "/metrics", &[]).unwrap().body).unwrap();
    let failures: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("planb_proxy_upstream_connect_failures_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no connect failure counter in\n{text}"));
    assert!(failures >= 1, "no connect failure was retried:\n{text}");
}

/// The upstream read timeout on the timer production runs it on (tokio's, by
/// `fast_timeout_to_tokio_threshold_seconds: 0`) and on Pingora's default.
#[test]
fn an_upstream_timeout_is_a_504() {
    upstream_timeout_is_a_504("fast_timeout_to_tokio_threshold_seconds: 0\n");
    upstream_timeout_is_a_504("");
}

fn upstream_timeout_is_a_504(server_extra: &str) {
    let up = Upstream::start("127.0.0.1:0".parse().unwrap(), "one");
    let mut conf = ProxyConf::new(
        "timeout",
        &format!("address: \"{}\"\nread_timeout_secs: 1", up.addr),
    );
    conf.server_extra = server_extra.into();
    let _proxy = conf.start(&[]);
    let t = Instant::now();
    let r = get(conf.listen, "/slow?ms=4000", &[]).unwrap();
    assert_eq!(r.status, 504, "{}", String::from_utf8_lossy(&r.body));
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    assert_eq!(get(conf.listen, "/slow?ms=10", &[]).unwrap().status, 200);
}

/// An upstream that accepts a request and never reads its body: the write
/// that waits past `read_timeout_secs` ends the request with a 504.
#[test]
fn an_upstream_that_stops_reading_the_body_is_a_504() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    // Holds every connection open, reading nothing.
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in listener.incoming() {
            held.push(s);
        }
    });
    let conf = ProxyConf::new(
        "stuck-body",
        &format!("address: \"{addr}\"\nread_timeout_secs: 1"),
    );
    let _proxy = conf.start(&[]);
    let mut s = TcpStream::connect(conf.listen).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let body_len = 256 << 20;
    let mut writer = s.try_clone().unwrap();
    let t = Instant::now();
    // Writes until the proxy stops taking the body (its answer closes it).
    std::thread::spawn(move || {
        let head = format!("PUT /up HTTP/1.1\r\nHost: h\r\nContent-Length: {body_len}\r\n\r\n");
        writer.write_all(head.as_bytes())?;
        let chunk = vec![b'b'; 1 << 16];
        for _ in 0..body_len / chunk.len() {
            writer.write_all(&chunk)?;
        }
        std::io::Result::Ok(())
    });
    let r = read_response(&mut s).unwrap();
    assert_eq!(r.status, 504, "{}", String::from_utf8_lossy(&r.body));
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
}

#[test]
fn admin_and_listener_healthz_and_metrics() {
    let up = Upstream::start("127.0.0.1:0".parse().unwrap(), "one");
    let (conf, _proxy) = proxy_to(&up, "admin", "");
    assert_eq!(get(conf.listen, "/x", &[]).unwrap().status, 200);
    let h = get(conf.admin, "/healthz", &[]).unwrap();
    assert_eq!((h.status, h.body.as_slice()), (200, &b"ok\n"[..]));
    let h = get(conf.listen, "/healthz", &[]).unwrap();
    assert_eq!((h.status, h.body.as_slice()), (200, &b"ok\n"[..]));
    assert_eq!(get(conf.admin, "/nope", &[]).unwrap().status, 404);
    let m = get(conf.admin, "/metrics", &[]).unwrap();
    assert_eq!(m.status, 200);
    let text = String::from_utf8(m.body).unwrap();
    for needle in [
        "planb_proxy_requests_total{status=\"200\"}".to_string(),
        "planb_proxy_upstream_latency_seconds_count 1".to_string(),
        format!("planb_proxy_upstream_address{{address=\"{}\"}} 1", up.addr),
        "planb_proxy_upstream_errors_total".to_string(),
    ] {
        assert!(text.contains(&needle), "missing {needle} in\n{text}");
    }
}

#[test]
fn upstream_connections_opened_and_reused_are_counted() {
    let up = Upstream::start("127.0.0.1:0".parse().unwrap(), "one");
    let (conf, _proxy) = proxy_to(&up, "upconns", "");
    // Requests one after another on one client connection: one thread, one
    // pool, so the first opens the upstream connection and the rest reuse it.
    let mut s = TcpStream::connect(conf.listen).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    for _ in 0..5 {
        s.write_all(b"GET /r HTTP/1.1\r\nHost: h\r\n\r\n").unwrap();
        assert_eq!(read_response(&mut s).unwrap().status, 200);
    }
    let text = String::from_utf8(get(conf.admin, "/metrics", &[]).unwrap().body).unwrap();
    let value = |reused: &str| -> u64 {
        let key = format!("planb_proxy_upstream_connections_total{{reused=\"{reused}\"}} ");
        text.lines()
            .find_map(|l| l.strip_prefix(&key)?.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {key} in\n{text}"))
    };
    assert_eq!(value("false"), 1, "{text}");
    assert_eq!(value("true"), 4, "{text}");
}
