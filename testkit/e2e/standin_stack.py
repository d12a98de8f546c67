"""The local stack with the ALB1 test stand-in in front, for tests: scripts/stack.sh on free ports."""
import contextlib
import json
import os
import socket
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
STACK = os.path.join(ROOT, "scripts", "stack.sh")
sys.path.insert(0, os.path.join(ROOT, "testkit"))

PORTS = ("PROXY_PORT", "PROXY_ADMIN_PORT", "BACKEND_PORT", "MOTO_PORT", "ALB_PORT", "COGNITO_PORT",
         "ALB_KEYS_PORT")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def up(run, **settings):
    """Starts a stack in `run` (state and logs), with `settings` for scripts/stack.sh (such as
    ALB1_SESSION_TIMEOUT); returns stack.json plus `env` and `run`."""
    env = {k: v for k, v in os.environ.items() if k not in ("ALB_ARN", "ALB_PUBLIC_KEY_URL", "ALB1_SESSION_TIMEOUT")}
    env["LOG_FORMAT"] = "text"
    env.update({k: str(v) for k, v in settings.items()})
    env.update({"PLANB_RUN": str(run), "PLANB_PROFILE": os.environ.get("PLANB_PROFILE", "debug"),
                **{p: str(free_port()) for p in PORTS}})
    started = subprocess.run(["bash", STACK, "up"], env=env, capture_output=True, text=True)
    if started.returncode != 0:
        down({"env": env})
        raise AssertionError(f"stack up failed (logs in {run}):\n{started.stdout}\n{started.stderr}")
    with open(os.path.join(run, "stack.json")) as f:
        info = json.load(f)
    info["env"], info["run"] = env, run
    return info


def down(info):
    subprocess.run(["bash", STACK, "down"], env=info["env"], capture_output=True)


@contextlib.contextmanager
def running(run, **settings):
    """`up` for the `with` block, then `down` however it ends."""
    info = up(run, **settings)
    try:
        yield info
    finally:
        down(info)
