"""examples/team-service end to end, in place of planb-backend (BACKEND=team-service):
browser-shaped requests to the ALB1 stand-in, through planb-proxy, to the team's
service running with ALB_ARN set, with real tokens from moto's Cognito.

What a team's first service needs from the stack: a signed-in user's POST and
GET, bad bodies answered as JSON errors naming the problem, a machine client
with and without the route's scope, the admin group's route, and cross-origin
calls with their preflights from an allowed origin and from another one. And the
service's OpenAPI document checked against the service by schemathesis.
"""
import json
import os
import subprocess

import pytest
import requests

import standin_stack
from alb1.client import machine_token, sign_in

VENV = os.path.join(os.path.dirname(__file__), "..", "..", ".venv")
ALLOWED = "http://localhost:3000"
OTHER = "http://evil.example"


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    info = standin_stack.up(tmp_path_factory.mktemp("team"), BACKEND="team-service",
                            CORS_ALLOWED_ORIGINS=ALLOWED, LOG_FORMAT="json")
    try:
        yield info
    finally:
        standin_stack.down(info)


@pytest.fixture(scope="module")
def alice(stack):
    return sign_in(stack["alb"], "alice", stack["alice"]["password"])


@pytest.fixture(scope="module")
def bob(stack):
    return sign_in(stack["alb"], "bob", stack["bob"]["password"])


def orders(stack, suffix=""):
    return f"{stack['alb']}/api/orders{suffix}"


def assert_error(r, status, code):
    """`r` is the service's JSON error `code` with `status`."""
    assert r.status_code == status, (r.status_code, r.text)
    assert r.headers["content-type"] == "application/json", r.headers
    body = r.json()
    assert body["error"] == code and body["message"], body
    return body["message"]


def place(session, stack, **headers):
    r = session.post(orders(stack), json={"item": "tea", "quantity": 2}, headers=headers, timeout=10)
    assert r.status_code == 201, r.text
    return r


def test_alice_places_an_order_and_reads_it_bob_cannot(stack, alice, bob):
    r = place(alice, stack)
    order = r.json()
    assert (order["owner"], order["item"], order["quantity"], order["status"]) == \
        (stack["alice"]["sub"], "tea", 2, "placed")
    assert r.headers["Location"] == f"/api/orders/{order['id']}"
    got = alice.get(f"{stack['alb']}{r.headers['Location']}", timeout=10)
    assert got.status_code == 200 and got.json() == order, got.text
    # Not bob's: the same 404 as an order that does not exist.
    assert_error(bob.get(orders(stack, f"/{order['id']}"), timeout=10), 404, "not_found")
    assert_error(alice.get(orders(stack, "/999999"), timeout=10), 404, "not_found")
    assert_error(alice.get(orders(stack, "/not-a-number"), timeout=10), 404, "not_found")


def access_lines(stack):
    """The service's access lines so far, as the JSON objects it wrote."""
    with open(os.path.join(stack["run"], "backend.log")) as f:
        lines = [json.loads(line) for line in f if line.startswith("{")]
    return [line for line in lines if line.get("target") == "access"]


def test_the_access_line_says_who_placed_an_order_and_who_was_refused(stack, alice):
    placed, refused = "1-67891233-0123456789abcdef01234567", "1-67891233-76543210fedcba9876543210"
    place(alice, stack, **{"X-Amzn-Trace-Id": f"Root={placed}"})
    m = stack["machine"]
    token = machine_token(stack["cognito"], m["client_id"], m["client_secret"], "planb/read")
    r = requests.post(orders(stack), json={"item": "tea", "quantity": 1}, timeout=10,
                      headers={"Authorization": f"Bearer {token}", "X-Amzn-Trace-Id": f"Root={refused}"})
    assert_error(r, 403, "missing_scope")
    by_trace = {line.get("trace_id"): line for line in access_lines(stack)}
    line = by_trace[placed]
    assert (line["method"], line["route"], line["status"], line["sub"], line["kind"]) == \
        ("POST", "/api/orders", 201, stack["alice"]["sub"], "user"), line
    assert line["username"] == "alice" and line["client_id"] and "refusal" not in line, line
    line = by_trace[refused]
    assert (line["route"], line["status"], line["refusal"]) == ("/api/orders", 403, "missing_scope"), line
    # Only what the verifier established: no token, cookie or body.
    logged = json.dumps(access_lines(stack))
    assert not any(secret in logged for secret in (token[:40], "Bearer", "AWSELB", "tea")), logged


def test_the_admin_group_changes_an_order_others_get_403(stack, alice, bob):
    order = place(bob, stack).json()
    url = orders(stack, f"/{order['id']}")
    assert_error(bob.patch(url, json={"status": "cancelled"}, timeout=10), 403, "missing_group")
    r = alice.patch(url, json={"status": "shipped"}, timeout=10)
    assert r.status_code == 200 and r.json()["status"] == "shipped", r.text
    assert bob.get(url, timeout=10).json()["status"] == "shipped"
    message = assert_error(alice.patch(url, json={"status": "lost"}, timeout=10), 422, "invalid_field")
    assert "`status`" in message and "lost" not in message


def test_bad_bodies_are_json_errors_naming_the_problem(stack, alice):
    def post(body, content_type="application/json"):
        headers = {"Content-Type": content_type} if content_type else {}
        return alice.post(orders(stack), data=body, headers=headers, timeout=10)

    assert "line 1" in assert_error(post(b'{"item": tea'), 400, "invalid_json")
    assert "`quantity`" in assert_error(post(b'{"item": "tea"}'), 422, "missing_field")
    message = assert_error(post(b'{"item": "tea", "quantity": "SECRET"}'), 422, "invalid_field")
    assert "`quantity`" in message and "SECRET" not in message
    assert "`quantity`" in assert_error(post(b'{"item": "tea", "quantity": 0}'), 422, "invalid_field")
    assert_error(post(b'{"item": "tea", "quantity": 1}', content_type=None), 415, "unsupported_media_type")
    assert_error(post(b'{"item": "tea", "quantity": 1}', "text/plain"), 415, "unsupported_media_type")
    # Over the route's 4 KiB, under WAF's 8 KB body inspection: the service's own 413.
    big = b'{"item": "' + b"x" * 5000 + b'", "quantity": 1}'
    assert_error(post(big), 413, "body_too_large")
    # Over 8 KB on a route that is not one of infra/alb1.json's body routes: WAF blocks it
    # at ALB1 (403), as on AWS, before the service sees it.
    r = post(b'{"item": "' + b"x" * 9000 + b'", "quantity": 1}')
    assert r.status_code == 403, r.text


def test_a_machine_needs_the_routes_scope(stack):
    m = stack["machine"]
    assert sorted(m["scopes"]) == ["planb/read", "planb/write"]

    def as_machine(scope=None):
        token = machine_token(stack["cognito"], m["client_id"], m["client_secret"], scope)
        s = requests.Session()
        s.headers["Authorization"] = f"Bearer {token}"
        return s

    both, read_only, write_only = as_machine(), as_machine("planb/read"), as_machine("planb/write")
    order = place(both, stack).json()
    assert order["owner"] == m["client_id"]
    url = orders(stack, f"/{order['id']}")
    assert both.get(url, timeout=10).status_code == 200
    assert read_only.get(url, timeout=10).json()["id"] == order["id"]
    assert_error(read_only.post(orders(stack), json={"item": "tea", "quantity": 1}, timeout=10),
                 403, "missing_scope")
    assert_error(write_only.get(url, timeout=10), 403, "missing_scope")


def preflight(stack, origin, method="POST"):
    return requests.options(orders(stack), timeout=10, headers={
        "Origin": origin, "Access-Control-Request-Method": method,
        "Access-Control-Request-Headers": "content-type"})


def test_a_cross_origin_post_from_the_allowed_origin(stack, alice):
    # ALB1 forwards the preflight without a session; the service answers it.
    r = preflight(stack, ALLOWED)
    assert r.status_code == 200, r.text
    assert r.headers["Access-Control-Allow-Origin"] == ALLOWED
    assert r.headers["Access-Control-Allow-Credentials"] == "true"
    methods = {m.strip() for m in r.headers["Access-Control-Allow-Methods"].split(",")}
    assert methods == {"GET", "POST", "PUT", "PATCH", "DELETE"}
    assert "content-type" in r.headers["Access-Control-Allow-Headers"].lower()
    r = place(alice, stack, Origin=ALLOWED)
    assert r.headers["Access-Control-Allow-Origin"] == ALLOWED
    assert r.headers["Access-Control-Allow-Credentials"] == "true"


def test_a_cross_origin_post_from_another_origin_is_not_allowed(stack, alice):
    r = preflight(stack, OTHER)
    # No allow-origin: the browser does not send the POST.
    assert "Access-Control-Allow-Origin" not in r.headers, r.headers
    # What a page may send without a preflight (a form's text/plain) never reaches the handler,
    # and its answer is not readable by that origin either.
    r = alice.post(orders(stack), data=b'{"item": "tea", "quantity": 1}', timeout=10,
                   headers={"Origin": OTHER, "Content-Type": "text/plain"})
    assert_error(r, 415, "unsupported_media_type")
    assert "Access-Control-Allow-Origin" not in r.headers


def test_the_api_without_a_session_is_alb1s_401(stack):
    r = requests.post(orders(stack), json={"item": "tea", "quantity": 1}, allow_redirects=False, timeout=10)
    assert r.status_code == 401 and "Location" not in r.headers, r.text


def test_every_answer_matches_the_openapi_document_and_none_is_a_5xx(stack, tmp_path):
    # Straight to the service with what ALB1 adds for alice (scripts/stack.sh writes it, valid an
    # hour); schemathesis generates valid, edge and invalid requests for every documented operation.
    with open(os.path.join(stack["run"], "alice.headers")) as f:
        headers = [arg for line in f if line.strip() for arg in ("-H", line.strip())]
    checks = ",".join(["not_a_server_error", "status_code_conformance", "content_type_conformance",
                       "response_headers_conformance", "response_schema_conformance"])
    run = subprocess.run(
        [os.path.join(VENV, "bin", "schemathesis"), "run", f"{stack['backend']}/openapi.json",
         "--checks", checks, "--max-examples", "10", "--phases", "examples,coverage,fuzzing",
         "--generation-with-security-parameters", "false", "--generation-deterministic",
         "--request-timeout", "10", *headers],
        capture_output=True, text=True, timeout=110, cwd=tmp_path)
    assert run.returncode == 0, f"schemathesis found problems:\n{run.stdout[-6000:]}\n{run.stderr[-2000:]}"
