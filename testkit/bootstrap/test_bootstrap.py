"""The proxy fleet's user data, synthesized now, run for real at boot in a Debian systemd container
(README.md says what is real and what stands in). Each test is one instance launch."""

from __future__ import annotations

import http.client
import threading

from conftest import ALB2_NAME, sha256

# How long a launch may take here before the test gives up (user data's own waits are longer).
BOOT_DEADLINE_S = 180

OIDC_HEADERS = {
    "x-amzn-oidc-accesstoken": "eyJraWQiOiJrMSIsImFsZyI6IlJTMjU2In0.eyJzdWIiOiJ1c2VyLTEifQ.c2lnbmF0dXJl",
    "x-amzn-oidc-identity": "user-1",
    "x-amzn-oidc-data": "eyJ0eXAiOiJKV1QiLCJraWQiOiJrMiIsImFsZyI6IkVTMjU2In0=.eyJzdWIiOiJ1c2VyLTEifQ==.c2ln",
    "x-amzn-trace-id": "Root=1-67891233-abcdef012345678912345678;Self=1-67891233-12456789abcdef012345678",
}
HOST = "planb.example.com"


def get(path: str, headers: dict[str, str] | None = None, port: int = 8080) -> tuple[int, bytes]:
    """One request on a fresh connection to the proxy (in the shared namespace)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path, headers={"Host": HOST, "Connection": "close", **(headers or {})})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def answers(path: str) -> bool:
    try:
        return get(path)[0] == 200
    except OSError:
        return False


def test_launch_installs_the_checked_binary_and_serves(boot, world, binary):
    world.put_asset(binary.read_bytes())
    world.put_parameter(ALB2_NAME)
    c = boot()

    signal = c.wait_until("user data's cfn-signal", c.signal, BOOT_DEADLINE_S)
    assert signal == f"exit=0 stack={world.stack.name} resource={world.stack.asg} region=eu-west-1", signal

    # The binary the checksum let through is the one synthesized.
    installed = c.run("sha256sum", "/usr/local/bin/planb-proxy", check=True).stdout.split()[0]
    assert installed == sha256(binary.read_bytes())
    assert c.unit("planb-proxy.service", "ActiveState") == "active"
    assert c.unit("planb-proxy.service", "NRestarts") == "0"
    assert c.unit("planb-proxy-log-export.service", "ActiveState") == "active"

    # SSM read by the proxy, with the instance role's credentials from IMDSv2.
    log = c.journal("-u", "planb-proxy.service", "-o", "cat")
    assert "upstream name read from SSM" in log and world.stack.parameter in log and ALB2_NAME in log, log
    # Both the proxy's SDK and the AWS CLI got the role's credentials through IMDSv2 tokens.
    for agent in ("aws-sdk-rust", "aws-cli"):
        assert world.imds.credential_reads(agent) >= 1, f"no credentials read by {agent}: {world.imds.agents()}"

    # A request passes with every header unchanged.
    status, _ = get("/api/me?boot=headers", OIDC_HEADERS)
    assert status == 200
    head = world.alb2.find("boot=headers")
    assert head is not None, "the request never reached the ALB2 stand-in"
    got = {}
    for k, v in head["headers"]:
        got.setdefault(k.lower(), []).append(v)
    for name, value in {**OIDC_HEADERS, "host": HOST}.items():
        assert got.get(name) == [value], f"{name}: sent {value!r}, ALB2 got {got.get(name)}"
    assert got.get("x-forwarded-for") == ["127.0.0.1"], got.get("x-forwarded-for")

    # A reload (Pingora's upgrade) keeps answering: requests on fresh connections all through it.
    old_pid = c.unit("planb-proxy.service", "MainPID")
    results: list[int] = []
    stop = threading.Event()

    def hammer():
        while not stop.is_set():
            try:
                results.append(get("/api/me?boot=reload")[0])
            except OSError as e:
                results.append(repr(e))

    t = threading.Thread(target=hammer)
    t.start()
    try:
        c.wait_until("requests before the reload", lambda: len(results) >= 5, 30, interval=0.05)
        reload = c.run("systemctl", "reload", "planb-proxy.service", timeout=120)
        assert reload.returncode == 0, reload.stderr
        before = len(results)
        c.wait_until("requests after the reload", lambda: len(results) >= before + 5, 30, interval=0.05)
    finally:
        stop.set()
        t.join()
    assert results and all(r == 200 for r in results), [r for r in results if r != 200][:5]
    c.wait_until(
        "the new process as the unit's main PID",
        lambda: c.unit("planb-proxy.service", "MainPID") not in ("0", old_pid),
        60,
    )
    assert c.unit("planb-proxy.service", "ActiveState") == "active"
    assert get("/api/me?boot=after-reload")[0] == 200


def test_tampered_asset_stops_the_boot_and_signals_failure(boot, world, binary):
    data = bytearray(binary.read_bytes())
    data[len(data) // 2] ^= 0xFF
    world.put_asset(bytes(data))
    world.put_parameter(ALB2_NAME)
    c = boot()

    signal = c.wait_until("user data's cfn-signal", c.signal, BOOT_DEADLINE_S)
    assert signal.startswith("exit=1 "), signal
    log = c.journal("-u", "planb-user-data.service", "-o", "cat")
    want = f"planb-proxy: SHA-256 mismatch: /tmp/planb-proxy is not the binary synthesized into this stack (want {sha256(binary.read_bytes())}, got {sha256(bytes(data))}); not installing it"
    assert want in log.splitlines(), log
    assert c.run("test", "-e", "/usr/local/bin/planb-proxy").returncode != 0, "the tampered binary was installed"
    assert c.unit("planb-proxy.service", "LoadState") == "not-found"


def test_wrong_parameter_value_fails_the_start_with_one_line(boot, world, binary):
    world.put_asset(binary.read_bytes())
    wrong = f"http://{ALB2_NAME}"
    world.put_parameter(wrong)
    c = boot()
    prefix = f"planb-proxy: SSM parameter {world.stack.parameter}: "

    def error_line():
        lines = c.journal("-u", "planb-proxy.service", "-o", "cat").splitlines()
        return next((line for line in lines if line.startswith(prefix)), None)

    line = c.wait_until("the proxy's start-up error in the journal", error_line, BOOT_DEADLINE_S)
    assert line == prefix + f'"{wrong}" is not a host name or an IP address (optionally with ":port")', line
    c.wait_until("systemd restarting the failed proxy", lambda: int(c.unit("planb-proxy.service", "NRestarts") or 0) >= 1, 30)
    assert c.unit("planb-proxy.service", "ActiveState") != "active"
    assert not answers("/healthz")
    assert c.signal() is None, "user data signalled while the proxy was still failing"
    # Shut down while user data still waits for /healthz, as the group does to an instance whose
    # grace ran out: the exit trap must signal failure, not the 0 of the last finished command.
    c.stop()
    signal = c.signal()
    assert signal is not None and signal.startswith("exit=143 "), signal
