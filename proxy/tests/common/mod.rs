//! Test support for planb-proxy's integration tests: an echo upstream (hyper),
//! a tiny DNS server, the proxy binary with a config written for the test, and
//! a raw HTTP/1.1 client (so requests go on the wire exactly as written).

#![allow(dead_code)]

use std::convert::Infallible;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener as StdListener, TcpStream, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use sha2::{Digest, Sha256};
use testkit::{wait_for_listener, KillOnDrop};

pub const BIN: &str = env!("CARGO_BIN_EXE_planb-proxy");

/// A fresh directory for one test's files.
pub fn temp_dir(tag: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "planb-proxy-{tag}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create a temp dir");
    dir
}

pub fn sha256_hex(data: &[u8]) -> String {
    Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

// ---------------------------------------------------------------- upstream

/// An HTTP/1.1 upstream on its own runtime. Every answer is JSON describing
/// the request as received (`id`, method, target, headers in order, body
/// length and SHA-256), except:
/// `/slow?ms=N` answers after N ms; `/big?bytes=N` answers N bytes of `x`;
/// `/ws?ms=N` accepts a WebSocket upgrade after N ms (default 0) and echoes bytes.
pub struct Upstream {
    pub addr: SocketAddr,
    rt: Option<tokio::runtime::Runtime>,
}

impl Drop for Upstream {
    fn drop(&mut self) {
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

fn query_num(req: &Request<Incoming>, key: &str) -> Option<u64> {
    req.uri().query()?.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == key).then(|| v.parse().ok()).flatten()
    })
}

async fn handle(
    req: Request<Incoming>,
    id: &'static str,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = req.uri().path().to_string();
    if path == "/ws" {
        let ms = query_num(&req, "ms").unwrap_or(0);
        tokio::time::sleep(Duration::from_millis(ms)).await;
        let resp = Response::builder()
            .status(101)
            .header("upgrade", "websocket")
            .header("connection", "Upgrade")
            .header("sec-websocket-accept", "test")
            .body(Full::new(Bytes::new()))
            .unwrap();
        tokio::spawn(async move {
            if let Ok(up) = hyper::upgrade::on(req).await {
                let mut io = TokioIo::new(up);
                let mut buf = [0u8; 1024];
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                while let Ok(n) = io.read(&mut buf).await {
                    if n == 0 || io.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            }
        });
        return Ok(resp);
    }
    if path == "/slow" {
        let ms = query_num(&req, "ms").unwrap_or(1000);
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    if path == "/big" {
        let n = query_num(&req, "bytes").unwrap_or(1024) as usize;
        return Ok(Response::new(Full::new(Bytes::from(vec![b'x'; n]))));
    }
    let method = req.method().to_string();
    let target = req.uri().to_string();
    let headers: Vec<(String, String)> = req
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let json = serde_json::json!({
        "id": id,
        "method": method,
        "target": target,
        "headers": headers,
        "body_len": body.len(),
        "body_sha256": sha256_hex(&body),
    });
    Ok(Response::builder()
        .header("content-type", "application/json")
        .header("x-upstream", id)
        .body(Full::new(Bytes::from(json.to_string())))
        .unwrap())
}

impl Upstream {
    /// Serves on `addr` (port 0 picks one).
    pub fn start(addr: SocketAddr, id: &'static str) -> Upstream {
        let listener =
            StdListener::bind(addr).unwrap_or_else(|e| panic!("bind upstream {addr}: {e}"));
        Upstream::serve(listener, id)
    }

    pub fn serve(listener: StdListener, id: &'static str) -> Upstream {
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.spawn(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req| handle(req, id));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .with_upgrades()
                        .await;
                });
            }
        });
        Upstream { addr, rt: Some(rt) }
    }
}

/// Two listeners on the same port, one on 127.0.0.2 and one on 127.0.0.3.
pub fn pair_on_one_port() -> (StdListener, StdListener) {
    for _ in 0..50 {
        let a = StdListener::bind("127.0.0.2:0").expect("bind 127.0.0.2");
        let port = a.local_addr().unwrap().port();
        if let Ok(b) = StdListener::bind(("127.0.0.3", port)) {
            return (a, b);
        }
    }
    panic!("no port free on both 127.0.0.2 and 127.0.0.3");
}

// ---------------------------------------------------------------- DNS

/// A DNS server on 127.0.0.1 (UDP) answering every A query with the current
/// list (TTL 1 s), AAAA with nothing, and SERVFAIL when the list is empty.
pub struct Dns {
    pub addr: SocketAddr,
    pub answer: Arc<Mutex<Vec<Ipv4Addr>>>,
    pub queries: Arc<AtomicUsize>,
}

impl Dns {
    pub fn start(initial: &[Ipv4Addr]) -> Dns {
        use hickory_proto::op::{Message, MessageType, ResponseCode};
        use hickory_proto::rr::{rdata::A, RData, Record, RecordType};
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = sock.local_addr().unwrap();
        let answer = Arc::new(Mutex::new(initial.to_vec()));
        let queries = Arc::new(AtomicUsize::new(0));
        let (ans, q) = (answer.clone(), queries.clone());
        std::thread::spawn(move || {
            let mut buf = [0u8; 1500];
            loop {
                let Ok((n, from)) = sock.recv_from(&mut buf) else {
                    return;
                };
                let Ok(req) = Message::from_vec(&buf[..n]) else {
                    continue;
                };
                q.fetch_add(1, Ordering::Relaxed);
                let mut resp = Message::new();
                resp.set_id(req.id())
                    .set_message_type(MessageType::Response)
                    .set_op_code(req.op_code())
                    .set_recursion_desired(req.recursion_desired())
                    .set_recursion_available(true)
                    .set_authoritative(true);
                let ips = ans.lock().unwrap().clone();
                for query in req.queries() {
                    resp.add_query(query.clone());
                    if ips.is_empty() {
                        resp.set_response_code(ResponseCode::ServFail);
                    } else if query.query_type() == RecordType::A {
                        for ip in &ips {
                            resp.add_answer(Record::from_rdata(
                                query.name().clone(),
                                1,
                                RData::A(A(*ip)),
                            ));
                        }
                    }
                }
                if let Ok(bytes) = resp.to_vec() {
                    let _ = sock.send_to(&bytes, from);
                }
            }
        });
        Dns {
            addr,
            answer,
            queries,
        }
    }

    pub fn set(&self, ips: &[Ipv4Addr]) {
        *self.answer.lock().unwrap() = ips.to_vec();
    }
}

// ---------------------------------------------------------------- proxy

/// A config file for the proxy: Pingora keys, then `proxy:` with `upstream`
/// lines given by the test (indented under `upstream:`).
pub struct ProxyConf {
    pub dir: PathBuf,
    pub listen: SocketAddr,
    pub admin: SocketAddr,
    pub server_extra: String,
    /// Extra lines for the `proxy:` section (indented by the test).
    pub proxy_extra: String,
    pub upstream: String,
    pub grace_period: u64,
}

impl ProxyConf {
    pub fn new(tag: &str, upstream: &str) -> ProxyConf {
        ProxyConf {
            dir: temp_dir(tag),
            listen: ([127, 0, 0, 1], testkit::free_port()).into(),
            admin: ([127, 0, 0, 1], testkit::free_port()).into(),
            server_extra: String::new(),
            proxy_extra: String::new(),
            upstream: upstream.to_string(),
            grace_period: 1,
        }
    }

    pub fn path(&self) -> PathBuf {
        self.dir.join("proxy.yaml")
    }

    pub fn pid_file(&self) -> PathBuf {
        self.dir.join("proxy.pid")
    }

    pub fn write(&self) -> PathBuf {
        let upstream: String = self
            .upstream
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| format!("    {}\n", l.trim()))
            .collect();
        let text = format!(
            "version: 1\nthreads: 2\npid_file: {pid}\nupgrade_sock: {sock}\n\
             grace_period_seconds: {grace}\ngraceful_shutdown_timeout_seconds: 2\n{extra}\
             proxy:\n  listen: \"{listen}\"\n  admin_listen: \"{admin}\"\n{proxy_extra}  upstream:\n{upstream}",
            pid = self.pid_file().display(),
            sock = self.dir.join("upgrade.sock").display(),
            extra = self.server_extra,
            proxy_extra = self.proxy_extra,
            grace = self.grace_period,
            listen = self.listen,
            admin = self.admin,
        );
        std::fs::write(self.path(), text).unwrap();
        self.path()
    }

    pub fn log(&self) -> PathBuf {
        self.dir.join("proxy.log")
    }

    /// The unit's `ExecReload`, first line: a new process with `-u -d`, whose
    /// parent returns once the daemon is ready for the sockets. The new
    /// daemon's pid, checked to differ from `old`'s; the caller sends the SIGQUIT.
    pub fn start_upgrade(&self, old: i32) -> i32 {
        let status = self
            .command(&["-u", "-d"], &[])
            .status()
            .expect("run the new process");
        assert!(
            status.success(),
            "new process failed: {status}\n{}",
            self.log_text()
        );
        let new: i32 = std::fs::read_to_string(self.pid_file())
            .expect("the daemon wrote its pid file")
            .trim()
            .parse()
            .unwrap();
        assert_ne!(new, old);
        new
    }

    /// The proxy's log so far (stderr and stdout of every process started here).
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(self.log()).unwrap_or_default()
    }

    pub fn command(&self, args: &[&str], env: &[(&str, &str)]) -> Command {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log())
            .unwrap();
        let mut cmd = Command::new(BIN);
        cmd.arg("-c")
            .arg(self.path())
            .args(args)
            .env("RUST_LOG", "info")
            .env("LOG_FORMAT", "text")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd
    }

    /// Writes the file, starts the proxy, waits until it listens.
    pub fn start(&self, env: &[(&str, &str)]) -> Proxy {
        self.write();
        let child = self.command(&[], env).spawn().expect("spawn planb-proxy");
        let mut child = KillOnDrop(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = child.0.try_wait() {
                panic!("planb-proxy exited early ({status}):\n{}", self.log_text());
            }
            if wait_for_listener(self.listen, Duration::from_millis(100)) {
                return Proxy { child };
            }
        }
        panic!(
            "planb-proxy did not listen on {}:\n{}",
            self.listen,
            self.log_text()
        );
    }
}

impl Drop for ProxyConf {
    fn drop(&mut self) {
        // Keep the files (the proxy's log) of a failed test for inspection.
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

pub struct Proxy {
    pub child: KillOnDrop,
}

impl Proxy {
    pub fn pid(&self) -> i32 {
        self.child.0.id() as i32
    }
}

pub fn signal(pid: i32, sig: i32) {
    assert_eq!(unsafe { libc::kill(pid, sig) }, 0, "kill({pid}, {sig})");
}

pub fn alive(pid: i32) -> bool {
    unsafe { libc::kill(pid, 0) == 0 }
}

/// Waits for a child to exit; its status, or None after `timeout`.
pub fn wait_exit(child: &mut Child, timeout: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if let Ok(Some(s)) = child.try_wait() {
            return Some(s);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

// ---------------------------------------------------------------- client

#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    /// Every value of one header the upstream received, in order.
    pub fn upstream_values(&self, name: &str) -> Vec<String> {
        self.upstream_headers()
            .into_iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v)
            .collect()
    }

    /// The headers the upstream received, in order, from its JSON echo.
    pub fn upstream_headers(&self) -> Vec<(String, String)> {
        self.json()["headers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                (
                    p[0].as_str().unwrap().to_string(),
                    p[1].as_str().unwrap().to_string(),
                )
            })
            .collect()
    }
}

fn decode_chunked(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let line_end = data
            .windows(2)
            .position(|w| w == b"\r\n")
            .expect("chunk size line");
        let size_str = std::str::from_utf8(&data[..line_end]).unwrap();
        let size = usize::from_str_radix(size_str.split(';').next().unwrap().trim(), 16).unwrap();
        data = &data[line_end + 2..];
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&data[..size]);
        data = &data[size + 2..];
    }
}

/// Parses one complete response (read until the server closed).
pub fn parse_response(buf: &[u8]) -> Resp {
    let mut headers = [httparse::EMPTY_HEADER; 128];
    let mut r = httparse::Response::new(&mut headers);
    let httparse::Status::Complete(n) = r.parse(buf).expect("valid response head") else {
        panic!(
            "incomplete response head: {:?}",
            String::from_utf8_lossy(buf)
        );
    };
    let headers: Vec<(String, String)> = r
        .headers
        .iter()
        .map(|h| {
            (
                h.name.to_string(),
                String::from_utf8_lossy(h.value).into_owned(),
            )
        })
        .collect();
    let status = r.code.unwrap();
    let rest = &buf[n..];
    let chunked = headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    let body = if chunked {
        decode_chunked(rest)
    } else {
        rest.to_vec()
    };
    Resp {
        status,
        headers,
        body,
    }
}

/// Reads one response whose body has a Content-Length (or none) from a
/// connection that stays open.
pub fn read_response(s: &mut TcpStream) -> std::io::Result<Resp> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_len = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = s.read(&mut chunk)?;
        if n == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                format!("closed after {} bytes", buf.len()),
            ));
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = parse_response(&buf[..head_len]);
    let len: usize = head
        .header("content-length")
        .map(|v| v.trim().parse().expect("numeric content-length"))
        .unwrap_or(0);
    while buf.len() < head_len + len {
        let n = s.read(&mut chunk)?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    Ok(Resp {
        body: buf[head_len..head_len + len].to_vec(),
        ..head
    })
}

/// Blocks until the peer closes `s` (reading and discarding); how long that took.
pub fn time_until_closed(s: &mut TcpStream, limit: Duration) -> Duration {
    let start = Instant::now();
    s.set_read_timeout(Some(limit)).unwrap();
    let mut buf = [0u8; 1024];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return start.elapsed(),
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return start.elapsed(),
            Err(e) => panic!("connection still open after {:?}: {e}", start.elapsed()),
        }
    }
}

/// Sends `raw` on a new connection and reads the whole answer (the request
/// must carry `Connection: close`).
pub fn send_raw(addr: SocketAddr, raw: &[u8]) -> std::io::Result<Resp> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    s.write_all(raw)?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf)?;
    if buf.is_empty() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "empty answer",
        ));
    }
    Ok(parse_response(&buf))
}

/// `GET path` with extra header lines, `Connection: close`.
pub fn get(addr: SocketAddr, path: &str, extra: &[(&str, &str)]) -> std::io::Result<Resp> {
    let mut raw = format!("GET {path} HTTP/1.1\r\nHost: alb1.example.com\r\n");
    for (k, v) in extra {
        raw.push_str(&format!("{k}: {v}\r\n"));
    }
    raw.push_str("Connection: close\r\n\r\n");
    send_raw(addr, raw.as_bytes())
}

/// Retries `f` until it returns true or `timeout` passes.
pub fn eventually(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

/// Which upstream answered (`x-upstream`), or the status when none did.
pub fn who(addr: SocketAddr) -> String {
    match get(addr, "/who", &[]) {
        Ok(r) if r.status == 200 => r.header("x-upstream").unwrap_or("?").to_string(),
        Ok(r) => format!("status {}", r.status),
        Err(e) => format!("error {e}"),
    }
}

/// Clients that each send `GET path` on a new connection per request, as fast
/// as answers come, until [`Load::finish`].
pub struct Load {
    stop: Arc<std::sync::atomic::AtomicBool>,
    /// Requests answered 200.
    pub ok: Arc<AtomicUsize>,
    failures: Arc<Mutex<Vec<String>>>,
    clients: Vec<std::thread::JoinHandle<()>>,
}

impl Load {
    pub fn start(addr: SocketAddr, clients: usize, path: &'static str) -> Load {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let ok = Arc::new(AtomicUsize::new(0));
        let failures = Arc::new(Mutex::new(Vec::new()));
        let clients = (0..clients)
            .map(|_| {
                let (stop, ok, failures) = (stop.clone(), ok.clone(), failures.clone());
                std::thread::spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        match get(addr, path, &[]) {
                            Ok(r) if r.status == 200 => {
                                ok.fetch_add(1, Ordering::Relaxed);
                            }
                            Ok(r) => failures
                                .lock()
                                .unwrap()
                                .push(format!("status {}", r.status)),
                            Err(e) => failures.lock().unwrap().push(e.to_string()),
                        }
                    }
                })
            })
            .collect();
        Load {
            stop,
            ok,
            failures,
            clients,
        }
    }

    /// Requests answered 200 so far.
    pub fn answered(&self) -> usize {
        self.ok.load(Ordering::Relaxed)
    }

    /// Stops the clients: what was answered, and every failure.
    pub fn finish(self) -> (usize, Vec<String>) {
        self.stop.store(true, Ordering::Relaxed);
        for c in self.clients {
            c.join().unwrap();
        }
        let failures = std::mem::take(&mut *self.failures.lock().unwrap());
        (self.ok.load(Ordering::Relaxed), failures)
    }
}
