"""End-to-end tests through the local Plan B stack (scripts/stack.sh).

The path is the production one with AWS swapped for moto's server: the proxy
learns its upstream from an SSM parameter, the backend fetches the pool's JWKS
and verifies real Cognito access tokens from AdminInitiateAuth. ALB1's part,
adding the x-amzn-oidc-* headers, is played by the test. ALB1's own signing key
cannot exist here, so `x-amzn-oidc-data` is signed by a stand-in ES256 key that
the test serves the way ALB's public-key endpoint does (ALB_PUBLIC_KEY_URL).
"""
import base64
import json
import os
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
STACK = os.path.join(ROOT, "scripts", "stack.sh")
ALB_ARN = "arn:aws:elasticloadbalancing:ap-northeast-1:123456789012:loadbalancer/app/planb-alb1/50dc6c495c0c9188"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url, headers=None):
    """(status, headers, body) of a GET; HTTP errors are answers, not exceptions."""
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


class AlbKeyStandIn:
    """ALB's public-key endpoint, played by the test: GET /{kid} → the PEM of a test ES256 key."""

    def __init__(self):
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.kid = str(uuid.uuid4())
        pem = self.key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        kid = self.kid

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                ok = self.path.rstrip("/") == f"/{kid}"
                self.send_response(200 if ok else 404)
                self.end_headers()
                self.wfile.write(pem if ok else b"no such key")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def sign(self, header, payload):
        def enc(obj):  # padded like ALB's: a trailing space (still JSON) until the length needs '='
            text = json.dumps(obj)
            while len(text) % 3 == 0:
                text += " "
            return base64.urlsafe_b64encode(text.encode()).decode()

        """An ALB-style `x-amzn-oidc-data`: padded base64url parts, ES256 over the raw padded text."""
        signing_input = f"{enc(header)}.{enc(payload)}"
        r, s = decode_dss_signature(self.key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256())))
        sig = base64.urlsafe_b64encode(r.to_bytes(32, "big") + s.to_bytes(32, "big")).decode()
        return f"{signing_input}.{sig}"


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    run = tmp_path_factory.mktemp("stack")
    alb = AlbKeyStandIn()
    env = {**os.environ, "PLANB_RUN": str(run), "PLANB_PROFILE": os.environ.get("PLANB_PROFILE", "debug"),
           "PROXY_PORT": str(free_port()), "PROXY_ADMIN_PORT": str(free_port()),
           "BACKEND_PORT": str(free_port()), "MOTO_PORT": str(free_port()),
           "ALB_PORT": str(free_port()), "COGNITO_PORT": str(free_port()), "ALB_KEYS_PORT": str(free_port()),
           "ALB_ARN": ALB_ARN, "ALB_PUBLIC_KEY_URL": alb.url, "LOG_FORMAT": "text"}
    up = subprocess.run(["bash", STACK, "up"], env=env, capture_output=True, text=True)
    try:
        assert up.returncode == 0, f"stack up failed:\n{up.stdout}\n{up.stderr}"
        info = json.load(open(run / "stack.json"))
        info["env"], info["alb"], info["run"] = env, alb, run
        yield info
    finally:
        subprocess.run(["bash", STACK, "down"], env=env, capture_output=True)
        alb.server.shutdown()


def alb_headers(stack, user, token=None):
    """The three headers ALB1 adds after a Cognito login, for `user`."""
    alb, now = stack["alb"], int(time.time())
    issuer = user["issuer"]
    data = alb.sign(
        {"alg": "ES256", "kid": alb.kid, "signer": ALB_ARN, "iss": issuer,
         "client": user["client_id"], "exp": now + 120, "typ": "JWT"},
        {"sub": user["sub"], "username": user["username"], "exp": now + 120, "iss": issuer})
    return {"x-amzn-oidc-accesstoken": token or user["access_token"],
            "x-amzn-oidc-identity": user["sub"], "x-amzn-oidc-data": data,
            "x-amzn-trace-id": "Root=1-67891233-abcdef012345678912345678"}


def test_valid_token_through_the_proxy_returns_that_users_identity(stack):
    alice = stack["alice"]
    status, _, body = get(f"{stack['proxy']}/api/me", alb_headers(stack, alice))
    assert status == 200, body
    me = json.loads(body)
    assert me["sub"] == alice["sub"]
    assert me["username"] == "alice"
    assert me["client_id"] == alice["client_id"]


def test_every_oidc_header_reaches_the_backend_unchanged(stack):
    # The backend verifies all three together: the ALB signature over the raw,
    # padded x-amzn-oidc-data text, its sub against x-amzn-oidc-identity and the
    # access token's sub. One byte changed on the way fails that.
    alice = stack["alice"]
    headers = alb_headers(stack, alice)
    assert all(part.endswith("=") for part in headers["x-amzn-oidc-data"].split(".")[:2])
    assert get(f"{stack['proxy']}/api/me", headers)[0] == 200
    # The same headers, changed the way a careless hop would: each is refused.
    for name, value in (("x-amzn-oidc-data", headers["x-amzn-oidc-data"].replace("=", "")),
                        ("x-amzn-oidc-identity", alice["sub"].upper())):
        status, _, body = get(f"{stack['proxy']}/api/me", {**headers, name: value})
        assert status == 401, (name, body)


def tampered(token):
    return token[:-1] + ("B" if token.endswith("A") else "A")


def expired_shape(token):
    header, payload, sig = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["exp"] = int(time.time()) - 3600
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"{header}.{forged}.{sig}"


@pytest.mark.parametrize("make_token", [tampered, expired_shape, lambda t: None], ids=["tampered", "expired", "missing"])
def test_bad_tokens_are_401_with_a_json_reason(stack, make_token):
    token = make_token(stack["alice"]["access_token"])
    headers = {"x-amzn-oidc-accesstoken": token} if token else {}
    status, hdrs, body = get(f"{stack['proxy']}/api/me", headers)
    assert status == 401, body
    assert hdrs["WWW-Authenticate"].startswith('Bearer error="invalid_token"')
    assert json.loads(body)["error"]


def test_an_id_token_is_not_an_access_token(stack):
    status, _, body = get(f"{stack['proxy']}/api/me", {"x-amzn-oidc-accesstoken": stack["alice"]["id_token"]})
    assert status == 401, body


def test_group_guarded_route_needs_the_group(stack):
    alice, bob = stack["alice"], stack["bob"]
    assert "admins" in alice["groups"] and not bob["groups"]
    status, _, body = get(f"{stack['proxy']}/api/admin", alb_headers(stack, alice))
    assert status == 200, body
    status, _, body = get(f"{stack['proxy']}/api/admin", alb_headers(stack, bob))
    assert status == 403, body
    assert json.loads(body)["error"]


def test_backend_down_is_502_and_traffic_resumes_when_it_is_back(stack):
    url, headers, env = f"{stack['proxy']}/api/me", alb_headers(stack, stack["alice"]), stack["env"]
    proxy_pid = open(stack["run"] / "proxy.pid").read()
    subprocess.run(["bash", STACK, "stop-backend"], env=env, check=True, capture_output=True)
    started = time.monotonic()
    status, _, body = get(url, headers)
    assert status == 502, body
    assert time.monotonic() - started < 5, "a dead upstream must fail fast"
    subprocess.run(["bash", STACK, "start-backend"], env=env, check=True, capture_output=True)
    deadline = time.monotonic() + 30
    while (status := get(url, headers)[0]) != 200 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert status == 200, "traffic did not resume after the backend came back"
    assert open(stack["run"] / "proxy.pid").read() == proxy_pid, "the proxy was not to be touched"
