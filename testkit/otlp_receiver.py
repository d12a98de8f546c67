"""A test double of the OpenTelemetry collector's OTLP/HTTP receiver: it records the spans it is sent.

In AWS the backend sends its spans to the ADOT collector beside it (infra/lib/constructs/
trace-collector.ts), which sends them on to X-Ray. No collector binary can be installed here,
so this plays the receiving half only: `POST /v1/traces` with an `ExportTraceServiceRequest`
(protobuf, as the backend's exporter sends it; OTLP JSON is taken too), decoded with the
`opentelemetry-proto` package, each span kept as a plain dict (ids in hex). Nothing is sent on.

In a test: `with OtlpReceiver() as receiver:` then `OTEL_EXPORTER_OTLP_ENDPOINT=receiver.url` for
the backend, and `receiver.wait_for(...)`. From the shell (`make up TRACES=1` runs it):
`python testkit/otlp_receiver.py --listen 127.0.0.1:4318 --out spans.jsonl` writes one JSON
line per span.
"""
import argparse
import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest, ExportTraceServiceResponse)

TRACES_PATH = "/v1/traces"
KINDS = {0: "unspecified", 1: "internal", 2: "server", 3: "client", 4: "producer", 5: "consumer"}
STATUS = {0: "unset", 1: "ok", 2: "error"}


def xray_trace_id(hex_id):
    """An OpenTelemetry trace id (32 hex digits) as X-Ray writes it: `1-{8 hex}-{24 hex}`."""
    return f"1-{hex_id[:8]}-{hex_id[8:]}"


def value_of(any_value):
    """The Python value of an OTLP `AnyValue` (strings, numbers, booleans; lists of them)."""
    kind = any_value.WhichOneof("value")
    if kind == "array_value":
        return [value_of(v) for v in any_value.array_value.values]
    return getattr(any_value, kind) if kind else None


def attributes(kvs):
    """An OTLP attribute list as a dict."""
    return {kv.key: value_of(kv.value) for kv in kvs}


def spans_of(request):
    """The spans of an `ExportTraceServiceRequest`, each a dict with its service's name."""
    out = []
    for resource_spans in request.resource_spans:
        service = attributes(resource_spans.resource.attributes).get("service.name")
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                out.append({
                    "service": service,
                    "name": span.name,
                    "kind": KINDS.get(span.kind, str(span.kind)),
                    "trace_id": span.trace_id.hex(),
                    "span_id": span.span_id.hex(),
                    "parent_span_id": span.parent_span_id.hex() or None,
                    "start_ns": span.start_time_unix_nano,
                    "end_ns": span.end_time_unix_nano,
                    "status": STATUS.get(span.status.code, str(span.status.code)),
                    "attributes": attributes(span.attributes),
                })
    return out


class OtlpReceiver:
    """The receiver on a loopback port (0: any free one), in a thread; `spans` is what came."""

    def __init__(self, host="127.0.0.1", port=0, on_span=None):
        self.spans, self.requests = [], 0
        self._changed = threading.Condition()
        self._on_span = on_span
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                # A readiness check, and a count for whoever looks.
                body = json.dumps({"spans": len(receiver.spans), "exports": receiver.requests}).encode()
                self.answer(200, body, "application/json")

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if self.path != TRACES_PATH:
                    return self.answer(404, b"only POST /v1/traces\n", "text/plain")
                json_body = self.headers.get("Content-Type", "").startswith("application/json")
                try:
                    request = ExportTraceServiceRequest()
                    if json_body:
                        json_format.Parse(body, request)
                    else:
                        request.ParseFromString(body)
                except Exception as e:  # noqa: BLE001 - any decode failure is the sender's 400
                    return self.answer(400, f"not an ExportTraceServiceRequest: {e}\n".encode(), "text/plain")
                receiver.add(spans_of(request))
                if json_body:
                    return self.answer(200, b"{}", "application/json")
                self.answer(200, ExportTraceServiceResponse().SerializeToString(), "application/x-protobuf")

            def answer(self, status, body, content_type):
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer((host, port), Handler)
        self.url = f"http://{host}:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def add(self, spans):
        """Keeps `spans` (one export) and wakes the waiters."""
        with self._changed:
            self.spans.extend(spans)
            self.requests += 1
            self._changed.notify_all()
        for span in spans:
            if self._on_span:
                self._on_span(span)

    def wait_for(self, found, timeout=15):
        """Waits until `found(spans)` returns something true and returns it; AssertionError after
        `timeout` seconds (with what did come)."""
        with self._changed:
            result = self._changed.wait_for(lambda: found(list(self.spans)), timeout)
            if not result:
                names = [(s["name"], s["trace_id"]) for s in self.spans]
                raise AssertionError(f"the spans waited for did not come in {timeout} s; came: {names}")
            return result

    def start(self):
        self._thread.start()
        return self

    def stop(self):
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def main():
    p = argparse.ArgumentParser(description="A test double of an OTLP/HTTP trace receiver: "
                                "prints (or appends to --out) one JSON line per span received.")
    p.add_argument("--listen", default="127.0.0.1:4318", help="host:port on loopback (default %(default)s)")
    p.add_argument("--out", help="a file to append the spans to (default: stdout)")
    args = p.parse_args()
    host, _, port = args.listen.rpartition(":")
    out = open(args.out, "a", buffering=1) if args.out else sys.stdout
    lock = threading.Lock()

    def write(span):
        with lock:
            out.write(json.dumps({**span, "xray_trace_id": xray_trace_id(span["trace_id"])}) + "\n")
            out.flush()

    receiver = OtlpReceiver(host, int(port), on_span=write)
    print(f"otlp_receiver: listening on {receiver.url}{TRACES_PATH}", file=sys.stderr, flush=True)
    try:
        receiver.server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
