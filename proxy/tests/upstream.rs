//! Learning the upstream: SSM through moto's server (real SDK calls), a DNS
//! answer that changes (a resolver served by the test), start-up failures.

mod common;

use std::process::{Command, ExitStatus};
use std::time::{Duration, Instant};

use common::*;

fn metrics(conf: &ProxyConf) -> String {
    String::from_utf8(get(conf.admin, "/metrics", &[]).unwrap().body).unwrap()
}

#[test]
fn a_changing_dns_answer_is_followed_and_a_failed_lookup_keeps_the_last_set() {
    let (a, b) = pair_on_one_port();
    let port = a.local_addr().unwrap().port();
    let _two = Upstream::serve(a, "two");
    let _three = Upstream::serve(b, "three");
    let dns = Dns::start(&["127.0.0.2".parse().unwrap()]);
    let conf = ProxyConf::new(
        "dns",
        &format!(
            "address: \"alb2.planb.test:{port}\"\nresolver: \"{}\"\ndns_refresh_secs: 1",
            dns.addr
        ),
    );
    let _proxy = conf.start(&[]);
    for _ in 0..5 {
        assert_eq!(who(conf.listen), "two");
    }

    dns.set(&["127.0.0.3".parse().unwrap()]);
    assert!(
        eventually(Duration::from_secs(6), || who(conf.listen) == "three"),
        "the new DNS answer was not followed"
    );
    // Once switched, only the new address serves.
    for _ in 0..5 {
        assert_eq!(who(conf.listen), "three");
    }
    assert!(metrics(&conf).contains(&format!(
        "planb_proxy_upstream_address{{address=\"127.0.0.3:{port}\"}} 1"
    )));

    // The resolver fails (SERVFAIL): the last good set stays in use.
    dns.set(&[]);
    let q = dns.queries.load(std::sync::atomic::Ordering::Relaxed);
    assert!(eventually(Duration::from_secs(6), || {
        dns.queries.load(std::sync::atomic::Ordering::Relaxed) > q + 1
    }));
    assert!(eventually(Duration::from_secs(3), || {
        !metrics(&conf).contains("planb_proxy_dns_refresh_failures_total 0")
    }));
    for _ in 0..5 {
        assert_eq!(who(conf.listen), "three");
    }
}

fn aws_env(moto: &testkit::Moto) -> Vec<(&'static str, String)> {
    vec![
        ("AWS_REGION", "ap-northeast-1".into()),
        ("AWS_ENDPOINT_URL_SSM", moto.endpoint.clone()),
        ("AWS_ACCESS_KEY_ID", "test".into()),
        ("AWS_SECRET_ACCESS_KEY", "test".into()),
        ("AWS_EC2_METADATA_DISABLED", "true".into()),
        ("AWS_CONFIG_FILE", "/nonexistent".into()),
        ("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent".into()),
    ]
}

#[test]
fn the_upstream_comes_from_ssm_and_a_new_value_is_followed() {
    let moto = testkit::Moto::start();
    let (a, b) = pair_on_one_port();
    let port = a.local_addr().unwrap().port();
    let _two = Upstream::serve(a, "two");
    let _three = Upstream::serve(b, "three");
    moto.put_parameter("/planb/test/alb2-dns-name", "127.0.0.2");

    let conf = ProxyConf::new(
        "ssm",
        &format!("ssm_parameter: /planb/test/alb2-dns-name\nssm_allowed_hosts: [\"127.0.0.*\"]\nport: {port}\nssm_refresh_secs: 1\ndns_refresh_secs: 1"),
    );
    let env = aws_env(&moto);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let _proxy = conf.start(&env);
    assert_eq!(who(conf.listen), "two");

    // infra replaces ALB2: the parameter changes, the proxy follows.
    moto.put_parameter("/planb/test/alb2-dns-name", "127.0.0.3");
    assert!(
        eventually(Duration::from_secs(10), || who(conf.listen) == "three"),
        "the new SSM value was not followed:\n{}",
        conf.log_text()
    );
    assert!(metrics(&conf).contains(&format!(
        "planb_proxy_upstream_name{{name=\"127.0.0.3:{port}\"}} 1"
    )));
}

#[test]
fn a_missing_parameter_is_one_clear_line_and_a_non_zero_exit() {
    let moto = testkit::Moto::start();
    // moto loads its SSM backend on the first SSM call (seconds on a loaded
    // machine): another parameter is written first, so the proxy's read of the
    // missing one is answered at once and the budget measures the proxy.
    moto.put_parameter("/planb/test/warm-up", "x");
    let conf = ProxyConf::new(
        "nossm",
        "ssm_parameter: /planb/test/does-not-exist\nssm_startup_timeout_secs: 4",
    );
    conf.write();
    let env = aws_env(&moto);
    let t = Instant::now();
    let mut cmd = Command::new(BIN);
    cmd.arg("-c").arg(conf.path());
    for (k, v) in &env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "exited 0:\n{stderr}");
    assert!(
        t.elapsed() < Duration::from_secs(15),
        "took {:?}",
        t.elapsed()
    );
    let last = stderr.lines().last().unwrap_or("");
    assert!(last.starts_with("planb-proxy: "), "{stderr}");
    assert!(last.contains("/planb/test/does-not-exist"), "{stderr}");
    assert!(last.contains("ParameterNotFound"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    // It retried with backoff before giving up.
    assert!(stderr.contains("retrying"), "{stderr}");
}

/// The proxy run once on `conf`, to its exit: (status, stderr).
fn run_to_exit(conf: &ProxyConf, env: &[(&'static str, String)]) -> (ExitStatus, String) {
    let mut cmd = Command::new(BIN);
    cmd.arg("-c").arg(conf.path());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    (
        out.status,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn an_ssm_value_that_is_no_host_is_one_clear_line_at_start() {
    let moto = testkit::Moto::start();
    moto.put_parameter("/planb/test/alb2-bad", "http://alb2.example.com/");
    let conf = ProxyConf::new(
        "ssmbad",
        "ssm_parameter: /planb/test/alb2-bad\nstartup_timeout_secs: 10",
    );
    conf.write();
    let (status, stderr) = run_to_exit(&conf, &aws_env(&moto));
    assert!(!status.success(), "exited 0:\n{stderr}");
    let last = stderr.lines().last().unwrap_or("");
    assert!(
        last.starts_with("planb-proxy: SSM parameter /planb/test/alb2-bad: "),
        "{stderr}"
    );
    assert!(last.contains("\"http://alb2.example.com/\""), "{stderr}");
    assert!(last.contains("not a host name"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn an_ssm_value_that_is_no_host_at_a_refresh_is_refused_and_the_name_kept() {
    let moto = testkit::Moto::start();
    let (a, b) = pair_on_one_port();
    let port = a.local_addr().unwrap().port();
    let _two = Upstream::serve(a, "two");
    let _three = Upstream::serve(b, "three");
    let name = "/planb/test/alb2-refresh";
    moto.put_parameter(name, "127.0.0.2");
    let conf = ProxyConf::new(
        "ssmrefresh",
        &format!("ssm_parameter: {name}\nssm_allowed_hosts: [\"127.0.0.2\", \"127.0.0.3\"]\nport: {port}\nssm_refresh_secs: 1\ndns_refresh_secs: 1"),
    );
    let env = aws_env(&moto);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let _proxy = conf.start(&env);
    assert_eq!(who(conf.listen), "two");

    moto.put_parameter(name, "alb2 example com");
    assert!(
        eventually(Duration::from_secs(10), || conf
            .log_text()
            .contains("SSM value refused; keeping the current upstream name")),
        "the bad value was not refused:\n{}",
        conf.log_text()
    );
    assert!(conf.log_text().contains("alb2 example com"));
    for _ in 0..3 {
        assert_eq!(who(conf.listen), "two");
    }
    let m = metrics(&conf);
    assert!(
        m.contains(&format!(
            "planb_proxy_upstream_name{{name=\"127.0.0.2:{port}\"}} 1"
        )),
        "{m}"
    );
    assert!(
        !m.contains("planb_proxy_ssm_refresh_failures_total 0"),
        "{m}"
    );

    // A host off the allow list is refused the same way, even one that serves.
    let _four = Upstream::start(format!("127.0.0.4:{port}").parse().unwrap(), "four");
    moto.put_parameter(name, "127.0.0.4");
    assert!(
        eventually(Duration::from_secs(10), || conf.log_text().lines().any(
            |l| l.contains("127.0.0.4") && l.contains("is not an allowed upstream")
        )),
        "the host off the allow list was not refused:\n{}",
        conf.log_text()
    );
    for _ in 0..3 {
        assert_eq!(who(conf.listen), "two");
    }

    // A good value after the bad one is followed as usual.
    moto.put_parameter(name, "127.0.0.3");
    assert!(
        eventually(Duration::from_secs(10), || who(conf.listen) == "three"),
        "the good value after a bad one was not followed:\n{}",
        conf.log_text()
    );
}

#[test]
fn an_ssm_value_off_the_allow_list_is_one_clear_line_at_start() {
    let moto = testkit::Moto::start();
    // A live upstream: what refuses it is the default allow list (ALB2's form of name).
    let up = std::net::TcpListener::bind("127.0.0.2:0").unwrap();
    let port = up.local_addr().unwrap().port();
    let _two = Upstream::serve(up, "two");
    moto.put_parameter("/planb/test/alb2-elsewhere", "127.0.0.2");
    let conf = ProxyConf::new(
        "ssmoff",
        &format!(
            "ssm_parameter: /planb/test/alb2-elsewhere\nport: {port}\nstartup_timeout_secs: 10"
        ),
    );
    conf.write();
    let (status, stderr) = run_to_exit(&conf, &aws_env(&moto));
    assert!(!status.success(), "exited 0:\n{stderr}");
    let last = stderr.lines().last().unwrap_or("");
    assert!(
        last.starts_with("planb-proxy: SSM parameter /planb/test/alb2-elsewhere: \"127.0.0.2\" is not an allowed upstream"),
        "{stderr}"
    );
    assert!(last.contains("internal-*.elb.amazonaws.com"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn a_bad_config_names_the_key_and_t_checks_a_good_one() {
    let conf = ProxyConf::new("badconf", "address: \"127.0.0.1:1\"\nport: 99999");
    conf.write();
    let out = Command::new(BIN)
        .arg("-c")
        .arg(conf.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("proxy.upstream.port"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");

    let conf = ProxyConf::new(
        "badconf2",
        "address: \"127.0.0.1:1\"\nresolver: \"localhost\"",
    );
    conf.write();
    let out = Command::new(BIN)
        .args(["-t", "-c"])
        .arg(conf.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("proxy.upstream.resolver"), "{stderr}");

    let out = Command::new(BIN)
        .args(["-c", "/nonexistent/proxy.yaml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/proxy.yaml"));

    let conf = ProxyConf::new("goodconf", "address: \"127.0.0.1:1\"");
    conf.write();
    let out = Command::new(BIN)
        .arg("-t")
        .arg("-c")
        .arg(conf.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let out = Command::new(BIN).arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    for flag in [
        "--conf",
        "--daemon",
        "--upgrade",
        "--test",
        "-c",
        "-d",
        "-u",
        "-t",
    ] {
        assert!(help.contains(flag), "{flag} missing from --help:\n{help}");
    }
}
