//! Signals: SIGTERM lets in-flight requests finish; the binary upgrade
//! (the systemd ExecReload sequence: new process with `-u -d`, then SIGQUIT to
//! the old one) loses no request under load.

mod common;

use std::io::Write;
use std::time::{Duration, Instant};

use common::*;

#[test]
fn sigterm_lets_the_request_in_flight_finish_then_exits() {
    let up = Upstream::start("127.0.0.1:0".parse().unwrap(), "one");
    let mut conf = ProxyConf::new("sigterm", &format!("address: \"{}\"", up.addr));
    // Pingora drains for up to grace_period_seconds; we exit once idle.
    conf.grace_period = 10;
    let mut proxy = conf.start(&[]);
    let listen = conf.listen;
    let in_flight = std::thread::spawn(move || get(listen, "/slow?ms=1500", &[]));
    assert!(
        eventually(Duration::from_secs(5), || metric(
            &conf,
            "planb_proxy_requests_in_flight"
        ) == 1),
        "the slow request never arrived:\n{}",
        conf.log_text()
    );
    signal(proxy.pid(), libc::SIGTERM);

    let r = in_flight
        .join()
        .unwrap()
        .expect("the in-flight request failed");
    let done = Instant::now();
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["id"], "one");
    let status = wait_exit(&mut proxy.child.0, Duration::from_secs(15))
        .unwrap_or_else(|| panic!("did not exit after SIGTERM:\n{}", conf.log_text()));
    assert!(
        done.elapsed() < Duration::from_secs(2),
        "exited {:?} after the last request, not when idle",
        done.elapsed()
    );
    assert!(
        status.success(),
        "exit status {status}:\n{}",
        conf.log_text()
    );
    assert!(
        conf.log_text().contains("SIGTERM received"),
        "{}",
        conf.log_text()
    );
}

#[test]
fn sigterm_with_nothing_in_flight_exits_within_a_second() {
    let up = Upstream::start("127.0.0.1:0".parse().unwrap(), "one");
    let mut conf = ProxyConf::new("sigterm-idle", &format!("address: \"{}\"", up.addr));
    conf.grace_period = 10;
    let mut proxy = conf.start(&[]);
    // An idle kept-alive client connection does not hold the exit up.
    let mut idle = std::net::TcpStream::connect(conf.listen).unwrap();
    idle.write_all(b"GET /x HTTP/1.1\r\nHost: h\r\n\r\n")
        .unwrap();
    assert_eq!(read_response(&mut idle).unwrap().status, 200);

    let t = Instant::now();
    signal(proxy.pid(), libc::SIGTERM);
    let status = wait_exit(&mut proxy.child.0, Duration::from_secs(15))
        .unwrap_or_else(|| panic!("did not exit after SIGTERM:\n{}", conf.log_text()));
    assert!(
        t.elapsed() < Duration::from_secs(1),
        "took {:?}:\n{}",
        t.elapsed(),
        conf.log_text()
    );
    assert!(status.success(), "exit status {status}");
    // The access log line of the request was flushed before the exit.
    assert!(
        conf.log_text().contains("\"path\":\"/x\""),
        "{}",
        conf.log_text()
    );
}

/// A metric's value from the admin listener (0 when absent).
fn metric(conf: &ProxyConf, name: &str) -> i64 {
    let Ok(r) = get(conf.admin, "/metrics", &[]) else {
        return 0;
    };
    String::from_utf8_lossy(&r.body)
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
        .unwrap_or(0)
}

#[test]
fn a_binary_upgrade_under_load_fails_no_request() {
    let up = Upstream::start("127.0.0.1:0".parse().unwrap(), "one");
    let mut conf = ProxyConf::new("upgrade", &format!("address: \"{}\"", up.addr));
    conf.server_extra = "daemon_wait_for_ready: true\ndaemon_ready_timeout_seconds: 30\n".into();
    let mut old = conf.start(&[]);
    let old_pid = old.pid();

    // Load: 4 clients, each a new connection per request, until told to stop.
    let load = Load::start(conf.listen, 4, "/slow?ms=20");
    std::thread::sleep(Duration::from_millis(500));
    let before = load.answered();
    assert!(before > 0, "no load before the upgrade");

    let new_pid = conf.start_upgrade(old_pid);
    // Whatever happens below, the daemon does not outlive the test.
    struct KillPid(i32);
    impl Drop for KillPid {
        fn drop(&mut self) {
            if alive(self.0) {
                unsafe { libc::kill(self.0, libc::SIGKILL) };
            }
        }
    }
    let _guard = KillPid(new_pid);

    // ExecReload, line 2: SIGQUIT to the old process.
    signal(old_pid, libc::SIGQUIT);
    let exited = wait_exit(&mut old.child.0, Duration::from_secs(30));
    assert!(
        exited.is_some(),
        "old process did not exit:\n{}",
        conf.log_text()
    );
    let at_old_exit = load.answered();
    std::thread::sleep(Duration::from_millis(1000));
    let (total, failures) = load.finish();
    assert!(
        failures.is_empty(),
        "{} failed requests: {:?}\n{}",
        failures.len(),
        &failures[..failures.len().min(5)],
        conf.log_text()
    );
    assert!(
        at_old_exit > before,
        "no requests served during the upgrade"
    );
    assert!(
        total > at_old_exit,
        "no requests served after the old process exited"
    );
    assert!(
        alive(new_pid),
        "the new process is gone:\n{}",
        conf.log_text()
    );
    assert_eq!(who(conf.listen), "one");

    signal(new_pid, libc::SIGTERM);
    assert!(
        eventually(Duration::from_secs(15), || !alive(new_pid)),
        "the new process did not stop on SIGTERM"
    );
}

#[test]
fn a_reload_whose_new_process_cannot_start_leaves_the_old_one_serving() {
    let up = Upstream::start("127.0.0.1:0".parse().unwrap(), "one");
    let mut conf = ProxyConf::new("badreload", &format!("address: \"{}\"", up.addr));
    conf.server_extra = "daemon_wait_for_ready: true\ndaemon_ready_timeout_seconds: 30\n".into();
    let old = conf.start(&[]);

    // The file now names an SSM parameter that cannot be read (nothing
    // listens at the endpoint): the new process must fail before systemd
    // would send SIGQUIT to the old one.
    let dead_endpoint = format!("http://127.0.0.1:{}", testkit::free_port());
    conf.upstream = "ssm_parameter: /planb/test/unreadable\nstartup_timeout_secs: 1".into();
    conf.write();
    let status = conf
        .command(
            &["-u", "-d"],
            &[
                ("AWS_REGION", "ap-northeast-1"),
                ("AWS_ENDPOINT_URL_SSM", &dead_endpoint),
                ("AWS_ACCESS_KEY_ID", "test"),
                ("AWS_SECRET_ACCESS_KEY", "test"),
                ("AWS_EC2_METADATA_DISABLED", "true"),
            ],
        )
        .status()
        .unwrap();
    assert!(
        !status.success(),
        "the reload should fail:\n{}",
        conf.log_text()
    );
    assert!(conf
        .log_text()
        .contains("cannot read SSM parameter /planb/test/unreadable"));
    assert!(alive(old.pid()));
    for _ in 0..5 {
        assert_eq!(who(conf.listen), "one");
    }
}
