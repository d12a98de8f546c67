//! Reloads as systemd's ExecReload does them (new process with `-u -d`, then
//! SIGQUIT to the old one), under the two loads that could lose a request:
//! connections opened as fast as the clients can (every listening socket must
//! be handed over, none refused), and ALB1's pattern — many kept connections
//! reused after random idle gaps — where closing a kept connection the client
//! is about to send on loses that request.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;

/// Whether the process is gone (exited, or a zombie nobody reaped yet).
fn gone(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        // "pid (comm) S ...": the state follows the last ')'.
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
    }
}

/// Kills the daemons a test started, whatever happens in it.
struct Daemons(Vec<i32>);

impl Drop for Daemons {
    fn drop(&mut self) {
        for &pid in &self.0 {
            if alive(pid) {
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
    }
}

fn upgrade_conf(tag: &str, up: &Upstream, grace: u64) -> ProxyConf {
    let mut conf = ProxyConf::new(tag, &format!("address: \"{}\"", up.addr));
    conf.server_extra = "daemon_wait_for_ready: true\ndaemon_ready_timeout_seconds: 30\n".into();
    conf.grace_period = grace;
    conf
}

/// One reload: the new process with `-u -d` (its parent returns once it is
/// ready for the sockets), then SIGQUIT to `old`. The new daemon's pid.
fn reload(conf: &ProxyConf, old: i32) -> i32 {
    let new = conf.start_upgrade(old);
    signal(old, libc::SIGQUIT);
    new
}

/// Waits for `pid` to be gone; how long that took.
fn wait_gone(conf: &ProxyConf, pid: i32, limit: Duration) -> Duration {
    let t = Instant::now();
    while !gone(pid) {
        assert!(
            t.elapsed() < limit,
            "process {pid} still running after {limit:?}:\n{}",
            conf.log_text()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    t.elapsed()
}

#[test]
fn connections_opened_at_a_high_rate_through_two_handovers_are_all_served() {
    let up = Upstream::start("127.0.0.1:0".parse().unwrap(), "one");
    let conf = upgrade_conf("connrate", &up, 5);
    let mut first = conf.start(&[]);
    let mut daemons = Daemons(Vec::new());

    let load = Load::start(conf.listen, 8, "/rate");
    std::thread::sleep(Duration::from_millis(500));
    assert!(load.answered() > 0, "no load before the first handover");

    let mut old = first.pid();
    let mut served_during = Vec::new();
    for round in 0..2 {
        let at_start = load.answered();
        let new = reload(&conf, old);
        daemons.0.push(new);
        if round == 0 {
            assert!(
                wait_exit(&mut first.child.0, Duration::from_secs(30)).is_some(),
                "the first process did not exit:\n{}",
                conf.log_text()
            );
        } else {
            wait_gone(&conf, old, Duration::from_secs(30));
        }
        served_during.push(load.answered() - at_start);
        old = new;
    }
    std::thread::sleep(Duration::from_millis(500));
    let (answered, failures) = load.finish();
    eprintln!(
        "connections served: {answered} in all, {served_during:?} during the two handovers; failed: {}",
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "{} connections failed: {:?}\n{}",
        failures.len(),
        &failures[..failures.len().min(5)],
        conf.log_text()
    );
    assert!(
        served_during.iter().all(|&n| n > 100),
        "too few connections during the handovers to show anything: {served_during:?}"
    );
    assert!(alive(old), "the last process is gone:\n{}", conf.log_text());
    assert_eq!(who(conf.listen), "one");
}

/// What ALB1's side of the pattern saw.
#[derive(Default)]
struct Seen {
    /// Requests answered.
    answered: AtomicUsize,
    /// Responses that said `Connection: close` (the client then reconnected).
    closes: AtomicUsize,
    /// Kept connections the client found closed (FIN) before reusing them.
    fins: AtomicUsize,
    /// Requests sent that got no (whole) response: what ALB1 turns into a 502.
    lost: Mutex<Vec<String>>,
}

/// A small deterministic generator for the idle gaps (xorshift).
struct Gaps(u64);

impl Gaps {
    fn next_ms(&mut self, max: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % max
    }
}

/// Whether the server closed a kept connection (a FIN, or a reset, waiting).
fn closed_by_server(s: &TcpStream) -> bool {
    s.set_nonblocking(true).unwrap();
    let mut buf = [0u8; 1];
    let closed = match (&*s).read(&mut buf) {
        Ok(0) => true,
        Ok(_) => panic!("unsolicited bytes on an idle connection"),
        Err(e) if e.kind() == ErrorKind::WouldBlock => false,
        Err(_) => true,
    };
    s.set_nonblocking(false).unwrap();
    closed
}

/// One of ALB1's kept connections, reused after random idle gaps until `stop`.
fn alb1_client(listen: SocketAddr, seed: u64, stop: &AtomicBool, seen: &Seen) {
    let mut gaps = Gaps(seed);
    let mut conn: Option<TcpStream> = None;
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(gaps.next_ms(1500)));
        if conn.as_ref().is_some_and(closed_by_server) {
            seen.fins.fetch_add(1, Ordering::Relaxed);
            conn = None;
        }
        let s = match conn.as_mut() {
            Some(s) => s,
            None => {
                let s = match TcpStream::connect(listen) {
                    Ok(s) => s,
                    Err(e) => {
                        seen.lost.lock().unwrap().push(format!("connect: {e}"));
                        continue;
                    }
                };
                s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                conn.insert(s)
            }
        };
        let sent = s.write_all(b"GET /alb1 HTTP/1.1\r\nHost: alb1.example.com\r\n\r\n");
        match sent.and_then(|()| read_response(s)) {
            Ok(r) if r.status == 200 => {
                seen.answered.fetch_add(1, Ordering::Relaxed);
                if r.header("connection") == Some("close") {
                    seen.closes.fetch_add(1, Ordering::Relaxed);
                    conn = None;
                }
            }
            Ok(r) => {
                seen.lost
                    .lock()
                    .unwrap()
                    .push(format!("status {}", r.status));
                conn = None;
            }
            Err(e) => {
                seen.lost.lock().unwrap().push(e.to_string());
                conn = None;
            }
        }
    }
}

#[test]
fn reloads_behind_alb1_lose_no_request_on_kept_connections() {
    const CLIENTS: u64 = 32;
    const RELOADS: usize = 4;
    let up = Upstream::start("127.0.0.1:0".parse().unwrap(), "one");
    // A grace period longer than the test's waits: an old process must end
    // by its connections closing, not by the grace period running out.
    let conf = upgrade_conf("alb1", &up, 60);
    let mut first = conf.start(&[]);
    let mut daemons = Daemons(Vec::new());

    let stop = Arc::new(AtomicBool::new(false));
    let seen = Arc::new(Seen::default());
    let listen = conf.listen;
    let clients: Vec<_> = (0..CLIENTS)
        .map(|n| {
            let (stop, seen) = (stop.clone(), seen.clone());
            std::thread::spawn(move || alb1_client(listen, 0x9e37_79b9 + n * 7919, &stop, &seen))
        })
        .collect();
    std::thread::sleep(Duration::from_secs(2));

    let mut old = first.pid();
    let mut drains = Vec::new();
    for round in 0..RELOADS {
        let new = reload(&conf, old);
        daemons.0.push(new);
        // Pingora keeps accepting for 5 s after the hand-over, then the old
        // process drains: each kept connection is answered once more with
        // `Connection: close` at the client's next request (within 1.5 s).
        let limit = Duration::from_secs(20);
        let took = if round == 0 {
            let t = Instant::now();
            assert!(
                wait_exit(&mut first.child.0, limit).is_some(),
                "the first process did not exit:\n{}",
                conf.log_text()
            );
            t.elapsed()
        } else {
            wait_gone(&conf, old, limit)
        };
        drains.push(took);
        old = new;
        std::thread::sleep(Duration::from_secs(1));
    }
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.join().unwrap();
    }
    let lost = seen.lost.lock().unwrap();
    let (answered, closes, fins) = (
        seen.answered.load(Ordering::Relaxed),
        seen.closes.load(Ordering::Relaxed),
        seen.fins.load(Ordering::Relaxed),
    );
    eprintln!(
        "ALB1 pattern, {CLIENTS} kept connections, {RELOADS} reloads: {answered} answered, \
         {closes} Connection: close, {fins} FIN before reuse, {} lost; old processes exited after {drains:?}",
        lost.len()
    );
    assert!(
        lost.is_empty(),
        "{} requests sent got no response: {:?}\n{}",
        lost.len(),
        &lost[..lost.len().min(5)],
        conf.log_text()
    );
    // Every old process told (nearly) every kept connection to close.
    assert!(
        closes >= RELOADS * CLIENTS as usize / 2,
        "only {closes} Connection: close over {RELOADS} reloads"
    );
    assert!(alive(old), "the last process is gone:\n{}", conf.log_text());
}
