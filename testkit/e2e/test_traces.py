"""One trace from ALB1's stand-in through planb-proxy into planb-backend's spans.

The backend runs with `OTEL_EXPORTER_OTLP_ENDPOINT` pointed at the testkit's OTLP receiver (a test
double of the ADOT collector infra runs beside it). A signed-in request goes through the stand-in,
which sets `X-Amzn-Trace-Id` as ALB does and logs it as ALB's access log does; the proxy passes it
on unchanged (its access log shows the same value); the backend's spans carry the stand-in's trace
id: the request span, the handler under it, and on the first request after the backend started
(the ALB key is not yet kept: a cold key) the key fetch under the handler.
"""
import json
import os
import re
import time

import pytest

import standin_stack
from alb1.client import sign_in
from otlp_receiver import OtlpReceiver

PARENT = "53995c3f42cd8ad8"


@pytest.fixture(scope="module")
def receiver():
    with OtlpReceiver() as r:
        yield r


@pytest.fixture(scope="module")
def stack(tmp_path_factory, receiver):
    # A short batch delay: the spans of a request are sent within 0.1 s of its end.
    with standin_stack.running(tmp_path_factory.mktemp("traces"), OTEL_EXPORTER_OTLP_ENDPOINT=receiver.url,
                               OTEL_BSP_SCHEDULE_DELAY=100) as info:
        yield info


@pytest.fixture(scope="module")
def alice(stack):
    """alice's session at the stand-in (its sign-in's own requests come before the tests')."""
    return sign_in(stack["alb"], "alice", stack["alice"]["password"])


def log_lines(stack, name):
    with open(os.path.join(stack["run"], f"{name}.log")) as f:
        return f.read().splitlines()


def forwarded_trace_header(stack, method, path):
    """The `X-Amzn-Trace-Id` the stand-in sent with its last forward of `method path` (its log line
    ends with it, as ALB's access log records the trace id)."""
    prefix = f"alb1: {method} {path} rule="
    sent = [line.rsplit(" trace_id=", 1)[1] for line in log_lines(stack, "alb1")
            if line.startswith(prefix) and " trace_id=" in line]
    assert sent, f"the stand-in forwarded no {method} {path}"
    return sent[-1]


def wait_for_proxy_line(stack, header, timeout=5.0):
    deadline = time.monotonic() + timeout
    while True:
        for line in log_lines(stack, "proxy"):
            if line.startswith("{") and json.loads(line).get("trace_id") == header:
                return json.loads(line)
        assert time.monotonic() < deadline, f"no proxy access line with trace_id {header!r} in {timeout} s"
        time.sleep(0.05)


def root_of(header):
    """The OpenTelemetry trace id (32 hex digits) of an X-Ray header's `Root`."""
    root = re.search(r"(?:^|;)\s*Root=1-([0-9a-f]{8})-([0-9a-f]{24})(?:;|$)", header)
    assert root, header
    return root.group(1) + root.group(2)


def trace(receiver, trace_id, names):
    """The spans of `trace_id` by name, once every name in `names` has come."""
    def complete(spans):
        mine = [s for s in spans if s["trace_id"] == trace_id]
        return mine if names <= {s["name"] for s in mine} else None
    spans = receiver.wait_for(complete)
    by_name = {}
    for s in spans:
        by_name.setdefault(s["name"], []).append(s)
    return by_name


def test_the_first_request_is_one_trace_from_the_standin_with_the_cold_key_fetch_under_it(stack, receiver, alice):
    r = alice.get(f"{stack['alb']}/api/me", timeout=10)
    assert r.status_code == 200, r.text
    header = forwarded_trace_header(stack, "GET", "/api/me")
    # The stand-in began this trace, as ALB does for a request without one: a Root alone.
    assert re.fullmatch(r"Root=1-[0-9a-f]{8}-[0-9a-f]{24}", header), header
    # The proxy passed it on unchanged.
    assert wait_for_proxy_line(stack, header)["path"] == "/api/me"

    spans = trace(receiver, root_of(header), {"GET /api/me", "handler", "key fetch"})
    assert sorted(spans) == ["GET /api/me", "handler", "key fetch"], spans
    assert all(len(v) == 1 for v in spans.values()), spans
    request, handler, fetch = spans["GET /api/me"][0], spans["handler"][0], spans["key fetch"][0]
    # The stand-in's Root has no segment of its own (ALB sends none): the request span is the trace's first.
    assert request["parent_span_id"] is None and request["kind"] == "server", request
    assert request["service"] == "planb-backend"
    assert request["attributes"]["http.route"] == "/api/me"
    assert request["attributes"]["http.response.status_code"] == 200
    assert handler["parent_span_id"] == request["span_id"], handler
    # The ALB key of the stand-in's signature, fetched for this request: it was not kept yet.
    assert fetch["parent_span_id"] == handler["span_id"] and fetch["kind"] == "client", fetch
    assert fetch["attributes"]["url.full"] == f"{stack['alb_keys']}/{stack['alb_kid']}"
    assert fetch["attributes"]["http.response.status_code"] == 200 and fetch["status"] != "error"
    for inner in (handler, fetch):
        assert request["start_ns"] <= inner["start_ns"] <= inner["end_ns"] <= request["end_ns"], inner

    # The next request's key is kept: its trace, from a new root, has no fetch.
    r = alice.get(f"{stack['alb']}/api/me", timeout=10)
    assert r.status_code == 200, r.text
    again = forwarded_trace_header(stack, "GET", "/api/me")
    assert again != header
    spans = trace(receiver, root_of(again), {"GET /api/me", "handler"})
    assert sorted(spans) == ["GET /api/me", "handler"], spans


def test_a_callers_segment_is_the_parent_and_its_decision_is_followed(stack, receiver, alice):
    unsampled_root = f"1-{int(time.time()):08x}-{os.urandom(12).hex()}"
    r = alice.get(f"{stack['alb']}/api/me", timeout=10,
                  headers={"X-Amzn-Trace-Id": f"Root={unsampled_root};Parent={PARENT};Sampled=0"})
    assert r.status_code == 200, r.text

    root = f"1-{int(time.time()):08x}-{os.urandom(12).hex()}"
    sent = f"Root={root};Parent={PARENT};Sampled=1"
    r = alice.get(f"{stack['alb']}/api/me", timeout=10, headers={"X-Amzn-Trace-Id": sent})
    assert r.status_code == 200, r.text
    header = forwarded_trace_header(stack, "GET", "/api/me")
    # ALB keeps a caller's header with a Root and puts its own Self in front.
    assert re.fullmatch(rf"Self=1-[0-9a-f]{{8}}-[0-9a-f]{{24}};{re.escape(sent)}", header), header
    assert wait_for_proxy_line(stack, header)["path"] == "/api/me"

    spans = trace(receiver, root_of(header), {"GET /api/me", "handler"})
    request, handler = spans["GET /api/me"][0], spans["handler"][0]
    assert request["parent_span_id"] == PARENT, request
    assert handler["parent_span_id"] == request["span_id"], handler
    # Sent in order: had the Sampled=0 request been recorded, its spans would have come first.
    assert not [s for s in receiver.spans if s["trace_id"] == root_of(f"Root={unsampled_root}")]
