//! Test support shared by the planb crates.
//!
//! The tests run real components on loopback: moto's server stands in for AWS's
//! SSM Parameter Store and Cognito APIs, seeded with real boto3 calls by
//! `testkit/moto_seed.py`. Nothing here skips: a missing venv is a test failure
//! that says to run `make venv`.

pub mod keys;

use std::collections::BTreeSet;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Deserialize;

/// The workspace's root directory (the parent of this crate).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("testkit lives one level below the workspace root")
        .to_path_buf()
}

/// A program from the project's Python venv (`.venv/bin/NAME`, or `$PLANB_VENV/bin/NAME`).
///
/// Panics with the command that makes the venv when it is missing: a test that
/// needs moto fails loudly rather than skipping.
pub fn venv_bin(name: &str) -> PathBuf {
    let venv = std::env::var_os("PLANB_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join(".venv"));
    let path = venv.join("bin").join(name);
    assert!(
        path.exists(),
        "{} is missing: run `make venv` at the workspace root",
        path.display()
    );
    path
}

/// A TCP port on 127.0.0.1 that was free a moment ago, and never handed out
/// before in this process: the kernel may give the same ephemeral port to two
/// binds in a row once the first is closed, and two such ports in one config
/// (a listener and its admin listener, seen once) make the proxy refuse it.
pub fn free_port() -> u16 {
    static GIVEN: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("bind an ephemeral port on 127.0.0.1");
        if GIVEN.lock().unwrap().insert(port) {
            return port;
        }
    }
}

/// Waits until something accepts TCP connections on `addr`; false after `timeout`.
pub fn wait_for_listener(addr: SocketAddr, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    false
}

/// A child process that is killed (and reaped) when dropped, so a failing test
/// leaves nothing running.
pub struct KillOnDrop(pub Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// moto's server on a free loopback port, stopped when dropped.
pub struct Moto {
    /// `http://127.0.0.1:PORT`, the endpoint URL for SDK clients.
    pub endpoint: String,
    /// The port it listens on.
    pub port: u16,
    _child: KillOnDrop,
}

/// What `moto_seed.py cognito` created: a pool, an app client and a signed-in user.
#[derive(Debug, Clone, Deserialize)]
pub struct CognitoUser {
    /// The user pool id, `region_xxxx`.
    pub pool_id: String,
    /// The app client id the token was issued to.
    pub client_id: String,
    /// The pool's region.
    pub region: String,
    /// The user's name.
    pub username: String,
    /// The user's permanent password.
    pub password: String,
    /// The user's `sub`.
    pub sub: String,
    /// The groups the user was put in.
    pub groups: Vec<String>,
    /// A real RS256 access token from `AdminInitiateAuth`.
    pub access_token: String,
    /// The matching ID token (carries `aud`: must be rejected as an access token).
    pub id_token: String,
    /// `https://cognito-idp.{region}.amazonaws.com/{pool}`.
    pub issuer: String,
    /// moto's JWKS URL for the pool.
    pub jwks_url: String,
}

impl Moto {
    /// Starts moto's server from the venv and waits until it answers.
    pub fn start() -> Moto {
        let port = free_port();
        let child = Command::new(venv_bin("moto_server"))
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn moto_server");
        let child = KillOnDrop(child);
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        assert!(
            wait_for_listener(addr, Duration::from_secs(30)),
            "moto_server did not listen on {addr} within 30 s"
        );
        Moto {
            endpoint: format!("http://127.0.0.1:{port}"),
            port,
            _child: child,
        }
    }

    /// Creates a pool, a client and `username` in `groups`, and signs the user in.
    pub fn cognito_user(&self, username: &str, groups: &[&str]) -> CognitoUser {
        let mut args = vec!["cognito", "--user", username];
        for g in groups {
            args.extend(["--group", g]);
        }
        serde_json::from_str(&self.seed(&args)).expect("moto_seed.py cognito prints JSON")
    }

    /// Adds `username` to an existing pool and client (see [`Moto::cognito_user`]).
    pub fn another_user(&self, of: &CognitoUser, username: &str, groups: &[&str]) -> CognitoUser {
        let mut args = vec![
            "cognito",
            "--user",
            username,
            "--pool-id",
            &of.pool_id,
            "--client-id",
            &of.client_id,
        ];
        for g in groups {
            args.extend(["--group", g]);
        }
        serde_json::from_str(&self.seed(&args)).expect("moto_seed.py cognito prints JSON")
    }

    /// Puts (overwrites) the String parameter `name` in moto's SSM.
    pub fn put_parameter(&self, name: &str, value: &str) {
        self.seed(&["ssm-put", "--name", name, "--value", value]);
    }

    /// Creates the notes table `name` (key `owner` S, `note_id` S) in moto's DynamoDB.
    pub fn notes_table(&self, name: &str) {
        self.seed(&["notes-table", "--name", name]);
    }

    fn seed(&self, args: &[&str]) -> String {
        let script = workspace_root().join("testkit").join("moto_seed.py");
        let out = Command::new(venv_bin("python"))
            .arg(script)
            .args(args)
            .args(["--endpoint", &self.endpoint])
            .output()
            .expect("run moto_seed.py");
        assert!(
            out.status.success(),
            "moto_seed.py {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("moto_seed.py prints UTF-8")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moto_mints_a_user_and_stores_a_parameter() {
        let moto = Moto::start();
        let user = moto.cognito_user("alice", &["admins"]);
        assert_eq!(user.access_token.split('.').count(), 3);
        assert!(user.jwks_url.ends_with("/.well-known/jwks.json"));
        let bob = moto.another_user(&user, "bob", &[]);
        assert_eq!(bob.pool_id, user.pool_id);
        assert_ne!(bob.sub, user.sub);
        moto.put_parameter("/planb/test", "127.0.0.1");
    }
}
