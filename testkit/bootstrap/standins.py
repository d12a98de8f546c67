"""The two stand-ins the bootstrap test serves next to moto, in the test's network namespace:

- `Imds`: EC2's instance metadata service with IMDSv2 required (the launch template's
  `requireImdsv2`): a session token from `PUT /latest/api/token` with a TTL header between 1 and
  21600 s, the TTL returned in the same header, a `PUT` carrying `X-Forwarded-For` refused, every
  `GET` without a live token answered 401; it serves the instance id, region and the role's
  temporary credentials, which is all the AWS CLI and the proxy's SDK ask of it.
- `Alb2`: ALB2 on port 80, answering 200 and recording each request's head as it arrived, so
  the test can compare what the proxy forwarded with what was sent.
"""

from __future__ import annotations

import datetime as dt
import json
import secrets
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

TTL_HEADER = "X-aws-ec2-metadata-token-ttl-seconds"
TOKEN_HEADER = "X-aws-ec2-metadata-token"
MAX_TTL = 21600


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def _serve(server: ThreadingHTTPServer) -> None:
    threading.Thread(target=server.serve_forever, name=type(server).__name__, daemon=True).start()


class Imds:
    """IMDSv2 on `address` (169.254.169.254:80 in the namespace), for one instance and role."""

    def __init__(self, address: tuple[str, int], instance_id: str, region: str, role: str):
        self.instance_id = instance_id
        self.region = region
        self.role = role
        self.tokens: dict[str, float] = {}
        self.requests: list[tuple[str, str, bool, str]] = []
        self.lock = threading.Lock()
        imds = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *_args):  # the test reads `requests` instead
                pass

            def reply(self, status: int, body: str, headers: dict[str, str] | None = None):
                data = body.encode()
                self.send_response(status)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(data)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            def do_PUT(self):  # noqa: N802 (http.server's naming)
                imds.record("PUT", self.path, False, self.headers.get("User-Agent", ""))
                if self.path != "/latest/api/token":
                    return self.reply(404, "Not Found")
                if self.headers.get("X-Forwarded-For"):
                    return self.reply(403, "Forbidden")
                ttl = self.headers.get(TTL_HEADER, "")
                if not ttl.isdigit() or not 1 <= int(ttl) <= MAX_TTL:
                    return self.reply(400, "Bad Request")
                token = secrets.token_urlsafe(40)
                with imds.lock:
                    imds.tokens[token] = time.monotonic() + int(ttl)
                self.reply(200, token, {TTL_HEADER: ttl})

            def do_GET(self):  # noqa: N802
                token = self.headers.get(TOKEN_HEADER, "")
                valid = imds.token_valid(token)
                imds.record("GET", self.path, valid, self.headers.get("User-Agent", ""))
                if not valid:
                    return self.reply(401, "Unauthorized")
                body = imds.metadata(self.path)
                if body is None:
                    return self.reply(404, "Not Found")
                self.reply(200, body)

        self.server = _Server(address, Handler)
        _serve(self.server)

    def record(self, method: str, path: str, with_token: bool, agent: str) -> None:
        with self.lock:
            self.requests.append((method, path, with_token, agent))

    def token_valid(self, token: str) -> bool:
        with self.lock:
            deadline = self.tokens.get(token)
        return deadline is not None and time.monotonic() < deadline

    def metadata(self, path: str) -> str | None:
        creds = "/latest/meta-data/iam/security-credentials/"
        now = dt.datetime.now(dt.timezone.utc)
        paths = {
            "/latest/meta-data/instance-id": self.instance_id,
            "/latest/meta-data/placement/region": self.region,
            "/latest/meta-data/placement/availability-zone": f"{self.region}a",
            creds: self.role,
            creds + self.role: json.dumps(
                {
                    "Code": "Success",
                    "LastUpdated": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
                    "Type": "AWS-HMAC",
                    "AccessKeyId": "ASIAPLANBBOOTSTRAP01",
                    "SecretAccessKey": secrets.token_urlsafe(30),
                    "Token": secrets.token_urlsafe(60),
                    "Expiration": (now + dt.timedelta(hours=6)).strftime("%Y-%m-%dT%H:%M:%SZ"),
                }
            ),
        }
        return paths.get(path)

    def credential_reads(self, agent: str) -> int:
        """GETs of the role's credentials made with a live token by a client whose User-Agent
        starts with `agent`."""
        want = f"/latest/meta-data/iam/security-credentials/{self.role}"
        with self.lock:
            return sum(1 for m, p, ok, a in self.requests if m == "GET" and p == want and ok and a.startswith(agent))

    def agents(self) -> list[str]:
        """The User-Agents seen, for a failure message."""
        with self.lock:
            return sorted({a for *_, a in self.requests})

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Alb2:
    """ALB2 on `address`: 200 for every request, each request head recorded."""

    def __init__(self, address: tuple[str, int]):
        self.heads: list[dict] = []
        self.lock = threading.Lock()
        alb2 = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *_args):
                pass

            def handle_any(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                with alb2.lock:
                    alb2.heads.append(
                        {
                            "method": self.command,
                            "path": self.path,
                            "headers": list(self.headers.items()),
                            "body": body.decode(errors="replace"),
                        }
                    )
                data = b'{"from":"alb2-stand-in"}'
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_DELETE = handle_any  # noqa: N815

        self.server = _Server(address, Handler)
        _serve(self.server)

    def find(self, marker: str) -> dict | None:
        """The recorded request whose path carries `marker`."""
        with self.lock:
            return next((h for h in self.heads if marker in h["path"]), None)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
