"""End-to-end tests of the notes API through the local stack (scripts/stack.sh).

The path is the production one: the proxy passes the request and its body to
the backend, which verifies the caller's Cognito access token and ALB data
(alb_headers, as in test_stack.py) and keeps the note in DynamoDB, here moto's.
Each rule of the API is checked once more from outside, through the proxy.
"""
import json
import urllib.error
import urllib.request
import uuid

from test_stack import alb_headers, stack  # noqa: F401  (stack is the module's fixture)


def call(method, url, headers=None, body=None):
    """(status, headers, parsed JSON or None) of one request; HTTP errors are answers."""
    data = json.dumps(body).encode() if isinstance(body, dict) else body
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    if data is not None:
        req.add_header("content-type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            status, hdrs, raw = r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        status, hdrs, raw = e.code, e.headers, e.read()
    return status, hdrs, json.loads(raw) if raw else None


def notes_url(stack, suffix=""):
    return f"{stack['proxy']}/api/notes{suffix}"


def fresh_id():
    return "e2e-" + uuid.uuid4().hex[:12]


def as_user(stack, name):
    return alb_headers(stack, stack[name])


def assert_error(answer, status, code):
    got_status, _, body = answer
    assert got_status == status, body
    assert body["error"] == code, body
    assert body["message"], body


def test_alice_writes_replaces_and_deletes_her_note(stack):
    alice, nid = as_user(stack, "alice"), fresh_id()
    status, hdrs, note = call("PUT", notes_url(stack, f"/{nid}"), alice, {"text": "milk"})
    assert status == 201, note
    assert (note["id"], note["text"], note["version"]) == (nid, "milk", 1)
    assert hdrs["ETag"] == '"1"' and hdrs["Cache-Control"] == "no-store"
    status, _, note = call("PUT", notes_url(stack, f"/{nid}"), alice, {"text": "milk, eggs"})
    assert (status, note["version"]) == (200, 2), note

    assert_error(call("PUT", notes_url(stack, f"/{nid}"), {**alice, "If-Match": '"1"'}, {"text": "x"}),
                 412, "precondition_failed")
    status, _, note = call("PUT", notes_url(stack, f"/{nid}"), {**alice, "If-Match": '"2"'}, {"text": "tea"})
    assert (status, note["version"]) == (200, 3), note

    status, _, note = call("GET", notes_url(stack, f"/{nid}"), alice)
    assert (status, note["text"], note["version"]) == (200, "tea", 3), note
    assert call("DELETE", notes_url(stack, f"/{nid}"), alice)[0] == 204
    assert_error(call("GET", notes_url(stack, f"/{nid}"), alice), 404, "not_found")
    assert_error(call("DELETE", notes_url(stack, f"/{nid}"), alice), 404, "not_found")


def test_bob_gets_404_for_alices_note(stack):
    alice, bob, nid = as_user(stack, "alice"), as_user(stack, "bob"), fresh_id()
    assert call("PUT", notes_url(stack, f"/{nid}"), alice, {"text": "alice only"})[0] == 201
    assert_error(call("GET", notes_url(stack, f"/{nid}"), bob), 404, "not_found")
    assert_error(call("DELETE", notes_url(stack, f"/{nid}"), bob), 404, "not_found")
    assert_error(call("PUT", notes_url(stack, f"/{nid}"), {**bob, "If-Match": "*"}, {"text": "mine?"}),
                 412, "precondition_failed")
    _, _, listing = call("GET", notes_url(stack, "?limit=100"), bob)
    assert nid not in [n["id"] for n in listing["notes"]]
    status, _, note = call("GET", notes_url(stack, f"/{nid}"), alice)
    assert (status, note["text"]) == (200, "alice only")


def test_listing_pages_with_cursors_bound_to_their_owner(stack):
    alice, bob = as_user(stack, "alice"), as_user(stack, "bob")
    prefix = "list-" + uuid.uuid4().hex[:6]
    ids = sorted(f"{prefix}-{i:02d}" for i in range(7))
    for nid in reversed(ids):
        assert call("PUT", notes_url(stack, f"/{nid}"), alice, {"text": nid})[0] == 201
    # Other tests write to alice's notes too: walk the whole listing in pages of 3
    # and check it is in id order, each id once, ours all there.
    seen, cursors = [], []
    while True:
        suffix = f"?limit=3&cursor={cursors[-1]}" if cursors else "?limit=3"
        status, _, page = call("GET", notes_url(stack, suffix), alice)
        assert status == 200, page
        assert 1 <= len(page["notes"]) <= 3
        seen += [n["id"] for n in page["notes"]]
        if page["next"] is None:
            break
        cursors.append(page["next"])
    assert seen == sorted(seen) and len(seen) == len(set(seen))
    assert [i for i in seen if i.startswith(prefix)] == ids

    cursor = cursors[0]
    assert_error(call("GET", notes_url(stack, f"?cursor={cursor}"), bob), 400, "invalid_cursor")
    forged = cursor[:5] + ("A" if cursor[5] != "A" else "B") + cursor[6:]
    assert_error(call("GET", notes_url(stack, f"?cursor={forged}"), alice), 400, "invalid_cursor")
    for bad in ("0", "101", "ten"):
        assert_error(call("GET", notes_url(stack, f"?limit={bad}"), alice), 400, "invalid_limit")


def test_bad_requests_are_refused_with_json_errors(stack):
    alice = as_user(stack, "alice")
    status, hdrs, body = call("GET", notes_url(stack, "/x"))
    assert (status, body["error"]) == (401, "missing_token")
    assert hdrs["WWW-Authenticate"].startswith('Bearer error="invalid_token"')
    assert_error(call("PUT", notes_url(stack, "/x"), None, {"text": "x"}), 401, "missing_token")
    for bad in ("a.b", "x" * 65, "a%2Fb"):
        assert_error(call("GET", notes_url(stack, f"/{bad}"), alice), 400, "invalid_id")
    assert_error(call("PUT", notes_url(stack, "/big"), alice, {"text": "x" * 4097}), 413, "too_large")
    assert_error(call("PUT", notes_url(stack, "/big"), alice, b" " * (64 * 1024)), 413, "body_too_large")
    for bad, status, code in ((b"not json", 400, "invalid_json"), (b"{}", 422, "missing_field"),
                              (b'{"text": 1}', 422, "invalid_field"),
                              (b'{"text": "x", "extra": true}', 422, "invalid_field")):
        assert_error(call("PUT", notes_url(stack, "/x"), alice, bad), status, code)
    status, _, note = call("PUT", notes_url(stack, f"/{fresh_id()}"), alice, {"text": "é" * 2048})
    assert (status, len(note["text"].encode())) == (201, 4096)
