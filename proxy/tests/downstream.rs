//! Client connections through the real binary: an idle keep-alive
//! connection is closed after `downstream_keepalive_secs`, and a request head
//! that does not arrive within `request_header_timeout_secs` is cut — both on
//! the first request of a connection and on later ones — and a connection
//! ends after `downstream_max_requests` requests.

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;

use common::*;

const KEEPALIVE_REQUEST: &[u8] = b"GET /k HTTP/1.1\r\nHost: h\r\n\r\n";

fn proxy_with(tag: &str, proxy_extra: &str) -> (Upstream, ProxyConf, Proxy) {
    let up = Upstream::start("127.0.0.1:0".parse().unwrap(), "one");
    let mut conf = ProxyConf::new(tag, &format!("address: \"{}\"", up.addr));
    conf.proxy_extra = proxy_extra.to_string();
    let proxy = conf.start(&[]);
    (up, conf, proxy)
}

fn request_on(s: &mut TcpStream) {
    s.write_all(KEEPALIVE_REQUEST).unwrap();
    let r = read_response(s).expect("a response on the kept-alive connection");
    assert_eq!(r.status, 200);
}

#[test]
fn an_idle_connection_is_closed_after_the_keepalive_on_every_request() {
    let (_up, conf, _proxy) = proxy_with(
        "keepalive",
        "  downstream_keepalive_secs: 2\n  request_header_timeout_secs: 1\n",
    );
    // A connection that never sends a request: closed after 2 s too.
    let mut silent = TcpStream::connect(conf.listen).unwrap();
    let idle = time_until_closed(&mut silent, Duration::from_secs(10));
    assert!(
        idle >= Duration::from_millis(1800) && idle < Duration::from_secs(4),
        "a silent connection closed after {idle:?}"
    );
    let mut s = TcpStream::connect(conf.listen).unwrap();
    request_on(&mut s);
    // Idle for less than the keep-alive, three times: still open each time.
    for _ in 0..3 {
        std::thread::sleep(Duration::from_millis(1200));
        request_on(&mut s);
    }
    // Then idle: closed after 2 s (Pingora's own default would be 60 s, then none).
    let idle = time_until_closed(&mut s, Duration::from_secs(10));
    assert!(
        idle >= Duration::from_millis(1800) && idle < Duration::from_secs(4),
        "closed after {idle:?}"
    );
}

#[test]
fn a_request_head_that_takes_too_long_is_cut() {
    let (_up, conf, _proxy) = proxy_with(
        "slowhead",
        "  downstream_keepalive_secs: 30\n  request_header_timeout_secs: 1\n",
    );
    // First request of a connection: a byte every 200 ms never completes the head.
    let mut s = TcpStream::connect(conf.listen).unwrap();
    let dribble = std::thread::spawn({
        let mut w = s.try_clone().unwrap();
        move || {
            for b in b"GET /slow-head HTTP/1.1\r\nHost: h\r\nx-a: 1234567890" {
                if w.write_all(&[*b]).is_err() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(200));
            }
        }
    });
    let cut = time_until_closed(&mut s, Duration::from_secs(8));
    assert!(
        cut >= Duration::from_millis(800) && cut < Duration::from_secs(3),
        "cut after {cut:?}"
    );
    dribble.join().unwrap();

    // A later request on a kept-alive connection: same bound (the idle wait
    // before it does not count).
    let mut s = TcpStream::connect(conf.listen).unwrap();
    request_on(&mut s);
    std::thread::sleep(Duration::from_millis(1500));
    s.write_all(b"GET /second HTTP/1.1\r\nHost: h\r\n").unwrap();
    let cut = time_until_closed(&mut s, Duration::from_secs(8));
    assert!(
        cut >= Duration::from_millis(800) && cut < Duration::from_secs(3),
        "cut after {cut:?}"
    );
    assert_eq!(metric(&conf, "planb_proxy_request_head_timeouts_total"), 2);
}

/// A metric's value from the admin listener's `/metrics` (a name with its labels).
fn metric(conf: &ProxyConf, name: &str) -> u64 {
    let text = String::from_utf8(get(conf.admin, "/metrics", &[]).unwrap().body).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} in\n{text}"))
}

#[test]
fn only_the_head_is_timed_not_a_slow_body_or_a_slow_answer() {
    let (_up, conf, _proxy) = proxy_with(
        "slowbody",
        "  downstream_keepalive_secs: 30\n  request_header_timeout_secs: 1\n",
    );
    let mut s = TcpStream::connect(conf.listen).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    // The head at once, then its 6-byte body over ~1.8 s: past the head limit.
    s.write_all(b"POST /echo HTTP/1.1\r\nHost: h\r\nContent-Length: 6\r\n\r\n")
        .unwrap();
    for b in b"abcdef" {
        std::thread::sleep(Duration::from_millis(300));
        s.write_all(&[*b]).unwrap();
    }
    let r = read_response(&mut s).expect("the slow body's answer");
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["body_len"], 6);
    assert_eq!(r.json()["body_sha256"], sha256_hex(b"abcdef"));
    // Same connection: an answer that takes longer than the head limit.
    s.write_all(b"GET /slow?ms=1800 HTTP/1.1\r\nHost: h\r\n\r\n")
        .unwrap();
    let r = read_response(&mut s).expect("the slow upstream's answer");
    assert_eq!(r.status, 200);
    request_on(&mut s);
}

#[test]
fn a_connection_ends_after_downstream_max_requests() {
    let (_up, conf, _proxy) = proxy_with("maxreq", "  downstream_max_requests: 3\n");
    for _ in 0..2 {
        let mut s = TcpStream::connect(conf.listen).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        for n in 1..=3 {
            s.write_all(KEEPALIVE_REQUEST).unwrap();
            let r = read_response(&mut s).expect("a response within the limit");
            assert_eq!(r.status, 200);
            let want = if n < 3 { "keep-alive" } else { "close" };
            assert_eq!(r.header("connection"), Some(want), "request {n}");
        }
        // The third response closed the connection.
        let closed = time_until_closed(&mut s, Duration::from_secs(5));
        assert!(closed < Duration::from_secs(1), "closed after {closed:?}");
    }
    let closes = r#"planb_proxy_keepalive_closes_total{reason="max_requests"}"#;
    assert_eq!(metric(&conf, closes), 2);
    assert_eq!(
        metric(
            &conf,
            r#"planb_proxy_keepalive_closes_total{reason="shutdown"}"#
        ),
        0
    );
    // One request per connection with a limit of 1.
    let (_up, conf, _proxy) = proxy_with("maxreq1", "  downstream_max_requests: 1\n");
    let mut s = TcpStream::connect(conf.listen).unwrap();
    s.write_all(KEEPALIVE_REQUEST).unwrap();
    let r = read_response(&mut s).unwrap();
    assert_eq!(r.header("connection"), Some("close"));
}

#[test]
fn the_default_keeps_a_connection_for_a_thousand_requests() {
    let (_up, conf, _proxy) = proxy_with("maxreq-default", "");
    let mut s = TcpStream::connect(conf.listen).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    for n in 1..=1000 {
        s.write_all(KEEPALIVE_REQUEST).unwrap();
        let r = read_response(&mut s).expect("a response within the limit");
        let want = if n < 1000 { "keep-alive" } else { "close" };
        assert_eq!(r.header("connection"), Some(want), "request {n}");
    }
}
