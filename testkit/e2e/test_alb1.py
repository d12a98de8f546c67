"""The ALB1 test stand-in's rules, end to end: browser-shaped requests to its
listener, through planb-proxy to planb-backend running with ALB_ARN set
(so every x-amzn-oidc-data the stand-in signs is verified by the backend).

These hold the stand-in to what ALB1 does in AWS: the login through the Cognito
domain, the session cookie and its shards, 401 for the API without a session,
preflights and /logout let through, bearer tokens checked against the pool's
JWKS, the client's own x-amzn-oidc-* headers replaced on a signed-in request,
and the login's return only ever to a path of the site. test_alb1_spec.py holds
the stand-in to infra/alb1.json rule by rule.
"""
import http.client
import base64
import json
import time
from urllib.parse import parse_qs, urlparse

import boto3
import pytest
import requests
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

import standin_stack
from alb1.client import machine_token, sign_in
from alb1.oidc_data import DataSigner, load_or_create_key
from alb1.session import COOKIE


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    info = standin_stack.up(tmp_path_factory.mktemp("alb1"))
    try:
        yield info
    finally:
        standin_stack.down(info)


def anon(stack, path, **kw):
    return requests.get(f"{stack['alb']}{path}", allow_redirects=False, timeout=10, **kw)


def signed_in(stack, user):
    return sign_in(stack["alb"], user, stack[user]["password"])


def shard_names(s):
    return sorted(c.name for c in s.cookies if c.name.startswith(COOKIE))


def metric(stack, name):
    text = requests.get(f"{stack['backend']}/metrics", timeout=10).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name))


def test_a_browser_without_a_session_is_sent_to_the_cognito_login(stack):
    r = anon(stack, "/notes?x=1")
    assert r.status_code == 302, r.text
    where = urlparse(r.headers["Location"])
    assert f"{where.scheme}://{where.netloc}" == stack["cognito"] and where.path == "/oauth2/authorize"
    q = parse_qs(where.query)
    assert q["client_id"] == [stack["alice"]["client_id"]] and q["response_type"] == ["code"]
    assert q["redirect_uri"] == [f"{stack['alb']}/oauth2/idpresponse"] and q["state"][0]
    form = requests.get(r.headers["Location"], timeout=10)
    assert form.status_code == 200 and 'id="username"' in form.text and 'type="password"' in form.text


def test_the_api_without_a_session_is_401_from_alb1_not_a_redirect(stack):
    for method in ("GET", "PUT", "DELETE"):
        r = requests.request(method, f"{stack['alb']}/api/notes/x", allow_redirects=False, timeout=10)
        assert r.status_code == 401, (method, r.status_code, r.text)
        assert "Location" not in r.headers and not r.headers.get("content-type", "").startswith("application/json")


def test_internal_paths_are_a_fixed_404_at_alb1(stack):
    for path in ("/metrics", "/ready", "/metrics/x"):
        r = anon(stack, path)
        assert r.status_code == 404 and r.json()["error"] == "not_found", (path, r.text)


def test_signed_in_alice_reaches_the_api_with_alb_signed_headers_the_backend_verifies(stack):
    before = metric(stack, 'planb_alb_key_fetches_total{result="ok"}')
    s = signed_in(stack, "alice")
    assert shard_names(s) == [f"{COOKIE}-0"]
    r = s.get(f"{stack['alb']}/api/me", timeout=10)
    assert r.status_code == 200, r.text
    me = r.json()
    assert (me["username"], me["sub"]) == ("alice", stack["alice"]["sub"])
    # The backend runs with ALB_ARN: it fetched the stand-in's key to verify x-amzn-oidc-data.
    assert metric(stack, 'planb_alb_key_fetches_total{result="ok"}') >= max(before, 1)


def test_a_signed_in_requests_oidc_headers_are_alb1s_not_the_clients(stack):
    alice, bob = signed_in(stack, "alice"), stack["bob"]
    forged = {"x-amzn-oidc-accesstoken": bob["access_token"], "x-amzn-oidc-identity": bob["sub"],
              "x-amzn-oidc-data": "forged.forged.forged"}
    r = alice.get(f"{stack['alb']}/api/me", headers=forged, timeout=10)
    assert r.status_code == 200 and r.json()["username"] == "alice", r.text


def test_a_wrong_password_shows_the_form_again_without_a_session(stack):
    s = requests.Session()
    form = s.get(f"{stack['alb']}/", timeout=10)
    r = s.post(form.url, data={"username": "alice", "password": "wrong"}, timeout=10)
    assert r.status_code == 401 and "Incorrect username or password" in r.text
    assert not shard_names(s)


def test_authorize_refuses_an_unknown_client_or_a_foreign_redirect(stack):
    ok = parse_qs(urlparse(anon(stack, "/").headers["Location"]).query)
    for change in ({"client_id": "nope"}, {"redirect_uri": "http://evil.example/cb"}):
        q = {k: v[0] for k, v in ok.items()} | change
        r = requests.get(f"{stack['cognito']}/oauth2/authorize", params=q, allow_redirects=False, timeout=10)
        assert r.status_code == 400, (change, r.text)


def test_a_large_session_is_sharded_past_4k_as_alb_does(stack):
    idp = boto3.client("cognito-idp", endpoint_url=stack["moto"], region_name=stack["alice"]["region"],
                       aws_access_key_id="test", aws_secret_access_key="test")
    pool = stack["alice"]["pool_id"]
    idp.admin_create_user(UserPoolId=pool, Username="carol", MessageAction="SUPPRESS")
    idp.admin_set_user_password(UserPoolId=pool, Username="carol", Password=stack["alice"]["password"],
                                Permanent=True)
    groups = [f"carol-team-with-a-long-group-name-{i:02d}" for i in range(25)]
    for g in groups:
        idp.create_group(UserPoolId=pool, GroupName=g)
        idp.admin_add_user_to_group(UserPoolId=pool, Username="carol", GroupName=g)
    s = sign_in(stack["alb"], "carol", stack["alice"]["password"])
    names = shard_names(s)
    assert len(names) >= 2 and names == [f"{COOKIE}-{i}" for i in range(len(names))], names
    assert all(len(c.value) <= 4000 for c in s.cookies if c.name.startswith(COOKIE))
    r = s.get(f"{stack['alb']}/api/me", timeout=10)
    assert r.status_code == 200 and sorted(r.json()["groups"]) == sorted(groups), r.text
    # One shard missing is no session.
    s.cookies.set(f"{COOKIE}-1", None)
    assert s.get(f"{stack['alb']}/api/me", allow_redirects=False, timeout=10).status_code == 401


def test_a_preflight_reaches_the_backend_without_a_session(stack):
    r = requests.options(f"{stack['alb']}/api/me", allow_redirects=False, timeout=10,
                         headers={"Origin": "http://other.example", "Access-Control-Request-Method": "GET"})
    # Not ALB1's 401 or its login: the backend's own answer (other.example is not an allowed origin).
    assert r.status_code not in (302, 401), r.text
    assert r.headers.get("content-type", "").startswith("application/json") or r.status_code == 204, r.text


def bearer(token):
    return {"Authorization": f"Bearer {token}"}


def test_a_bearer_token_is_checked_at_alb1_and_passed_on_untouched(stack):
    alice = stack["alice"]
    # Valid at ALB1, passed on, and refused by the backend (ALB_ARN set): a user's token comes
    # with ALB's signed data, only a machine's as a bearer token.
    r = anon(stack, "/api/me", headers=bearer(alice["access_token"]))
    assert r.status_code == 401 and r.json()["error"] == "user_bearer_token", r.text
    # ALB's JWT validation adds no x-amzn-oidc-* and is not documented to remove a client's:
    # both reach the backend, which refuses a second token source rather than pick one.
    r = anon(stack, "/api/me", headers={**bearer(alice["access_token"]),
                                        "x-amzn-oidc-accesstoken": stack["bob"]["access_token"]})
    assert r.status_code == 401 and r.json()["error"] == "ambiguous_token", r.text


@pytest.mark.parametrize("which", ["tampered", "id_token", "garbage", "foreign_key"])
def test_a_bad_bearer_token_is_401_at_alb1(stack, which):
    token = stack["alice"]["access_token"]
    if which == "tampered":
        token = token[:-1] + ("B" if token.endswith("A") else "A")
    elif which == "id_token":
        token = stack["alice"]["id_token"]
    elif which == "garbage":
        token = "not-a-jwt"
    else:
        header, payload, _ = token.split(".")
        key = ec.generate_private_key(ec.SECP256R1())
        token = f"{header}.{payload}.{base64.urlsafe_b64encode(key.sign(b'x', ec.ECDSA(hashes.SHA256()))).decode()}"
    r = anon(stack, "/api/me", headers=bearer(token))
    assert r.status_code == 401 and r.headers["WWW-Authenticate"].startswith("Bearer"), r.text
    # Refused at ALB1: not the backend's JSON error.
    assert not r.headers.get("content-type", "").startswith("application/json")


def test_a_machine_client_gets_a_token_and_reaches_the_api_as_a_machine(stack):
    m = stack["machine"]
    token = machine_token(stack["cognito"], m["client_id"], m["client_secret"])
    claims = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))
    assert claims["sub"] == m["client_id"] and "username" not in claims and claims["scope"] == "planb/read"
    r = anon(stack, "/api/me", headers=bearer(token))
    assert r.status_code == 200, r.text
    me = r.json()
    assert me["sub"] == m["client_id"] and me["client_id"] == m["client_id"] and not me.get("username")
    assert me["kind"] == "machine"


def test_the_token_endpoint_refuses_a_wrong_secret_a_foreign_scope_or_a_user_client(stack):
    m, alice = stack["machine"], stack["alice"]
    url = f"{stack['cognito']}/oauth2/token"
    cc = {"grant_type": "client_credentials"}
    assert requests.post(url, data=cc, auth=(m["client_id"], "wrong"), timeout=10).json()["error"] == "invalid_client"
    r = requests.post(url, data={**cc, "scope": "planb/admin"}, auth=(m["client_id"], m["client_secret"]), timeout=10)
    assert r.json()["error"] == "invalid_scope"
    r = requests.post(url, data=cc, auth=(alice["client_id"], alice["client_secret"]), timeout=10)
    assert r.json()["error"] == "unauthorized_client"


def test_sign_out_clears_the_session_and_the_hosted_ui_session(stack):
    s = signed_in(stack, "alice")
    r = s.get(f"{stack['alb']}/logout", allow_redirects=False, timeout=10)
    assert r.status_code == 302, r.text
    expiring = r.raw.headers.getlist("Set-Cookie")
    assert any(h.startswith(f"{COOKIE}-0=") and ("Max-Age=0" in h or "1970" in h) for h in expiring), expiring
    to = urlparse(r.headers["Location"])
    assert f"{to.scheme}://{to.netloc}" == stack["cognito"] and to.path == "/logout"
    assert parse_qs(to.query)["logout_uri"] == [f"{stack['alb']}/"]
    end = s.get(r.headers["Location"], timeout=10)
    assert 'id="username"' in end.text, "after sign-out, / asks for the login again"
    assert not shard_names(s)
    assert s.get(f"{stack['alb']}/api/me", allow_redirects=False, timeout=10).status_code == 401


def test_the_hosted_ui_remembers_its_user_until_its_own_logout(stack):
    s = signed_in(stack, "bob")
    for c in [c for c in s.cookies if c.name.startswith(COOKIE)]:
        s.cookies.clear(c.domain, c.path, c.name)
    r = s.get(f"{stack['alb']}/api/me", timeout=10)
    assert r.status_code == 401
    page = s.get(f"{stack['alb']}/", timeout=10)
    assert 'id="username"' not in page.text and shard_names(s), "the Cognito session signs bob straight in"
    assert s.get(f"{stack['alb']}/api/me", timeout=10).json()["username"] == "bob"


def test_the_data_token_is_signed_as_alb_signs_it(stack, tmp_path):
    signer = DataSigner(load_or_create_key(str(tmp_path / "k.pem")), stack["alb_kid"], stack["alb_arn"])
    claims = {"sub": "abc", "username": "alice"}
    token = signer.sign(claims, "https://issuer", "client-1")
    header_b64, payload_b64, sig_b64 = token.split(".")
    for part in (header_b64, payload_b64, sig_b64):
        assert len(part) % 4 == 0, "ALB pads every base64url part"
    header = json.loads(base64.urlsafe_b64decode(header_b64))
    payload = json.loads(base64.urlsafe_b64decode(payload_b64))
    assert header["alg"] == "ES256" and header["kid"] == stack["alb_kid"] and header["signer"] == stack["alb_arn"]
    assert header["iss"] == payload["iss"] == "https://issuer" and header["client"] == "client-1"
    assert header["exp"] == payload["exp"] and 0 < header["exp"] - time.time() <= 120
    raw = base64.urlsafe_b64decode(sig_b64)
    der = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
    signer.key.public_key().verify(der, f"{header_b64}.{payload_b64}".encode(), ec.ECDSA(hashes.SHA256()))
    # The served key is the stand-in's: the one the backend fetches.
    pem = requests.get(f"{stack['alb_keys']}/{stack['alb_kid']}", timeout=10).content
    served = serialization.load_pem_public_key(pem)
    assert isinstance(served, ec.EllipticCurvePublicKey) and served.curve.name == "secp256r1"
    assert requests.get(f"{stack['alb_keys']}/00000000-0000-0000-0000-000000000000", timeout=10).status_code == 404


def test_logout_reaches_the_backend_without_a_session_whatever_the_authorization(stack):
    for headers in ({}, bearer("not-a-jwt")):
        r = anon(stack, "/logout", headers=headers)
        assert r.status_code == 302, (headers, r.text)
        to = urlparse(r.headers["Location"])
        assert f"{to.scheme}://{to.netloc}" == stack["cognito"] and to.path == "/logout", r.headers["Location"]


def raw_get(stack, target):
    """GET with `target` as the request line's path, exactly as given (no client normalising it)."""
    where = urlparse(stack["alb"])
    conn = http.client.HTTPConnection(where.hostname, where.port, timeout=10)
    try:
        conn.putrequest("GET", target, skip_accept_encoding=True)
        conn.endheaders()
        r = conn.getresponse()
        return r.status, r.getheader("Location")
    finally:
        conn.close()


@pytest.mark.parametrize("target", ["//evil.example/x", "/\\evil.example", "/%2F/evil.example"])
def test_after_the_login_the_browser_returns_only_to_a_path_of_the_site(stack, target):
    status, location = raw_get(stack, target)
    assert status == 302 and urlparse(location).path == "/oauth2/authorize", (status, location)
    s = requests.Session()
    form = s.get(location, timeout=10)
    assert 'id="username"' in form.text
    back = s.post(form.url, data={"username": "alice", "password": stack["alice"]["password"]},
                  allow_redirects=False, timeout=10)
    assert back.status_code == 302 and urlparse(back.headers["Location"]).path == "/oauth2/idpresponse"
    done = s.get(back.headers["Location"], allow_redirects=False, timeout=10)
    assert done.status_code == 302 and shard_names(s), done.text
    home = done.headers["Location"]
    assert home.startswith("/") and home[1:2] not in ("/", "\\"), home
    assert urlparse(requests.compat.urljoin(stack["alb"] + "/", home)).netloc == urlparse(stack["alb"]).netloc


def test_a_same_site_path_survives_the_login(stack):
    status, location = raw_get(stack, "/notes/a?x=1")
    assert status == 302
    s = requests.Session()
    form = s.get(location, timeout=10)
    back = s.post(form.url, data={"username": "bob", "password": stack["bob"]["password"]},
                  allow_redirects=False, timeout=10)
    done = s.get(back.headers["Location"], allow_redirects=False, timeout=10)
    assert done.headers["Location"] == "/notes/a?x=1"
