"""ALB1's HTTPS listener, played on loopback: WAF's body rules, the listener's rules, the login
and the forward.

The rules are infra/alb1.json's, the file the CDK app builds the real listener and web ACL
from (testkit/alb1/spec.py reads it): WAF first (testkit/alb1/waf.py), then the listener's
rules by priority, then the default action. Each behaviour below names the AWS document it
follows; where the documents are silent, the comment says so and what the stand-in does.
"""
import asyncio
import json
import re
import time
import uuid
from urllib.parse import urlencode

import aiohttp
import jwt
from aiohttp import web
from multidict import CIMultiDict
from yarl import URL

from . import spec as alb1_spec
from .session import COOKIE, MAX_SHARDS, Sealer, carried, expired, joined, shards
from .waf import Waf

# Headers aiohttp would add to a forwarded request that the client did not send.
NOT_ADDED = ("User-Agent", "Accept-Encoding", "Accept", "Content-Type")
HOP_BY_HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te",
              "trailer", "transfer-encoding", "upgrade", "proxy-connection"}
CALLBACK = "/oauth2/idpresponse"
# A request body the stand-in holds in memory at most (ALB's own limits are larger; notes are 25 KiB).
MAX_BODY = 1024 * 1024
# ELB user guide, "Application Load Balancers" (load balancer attributes):
# routing.http.drop_invalid_header_fields.enabled removes headers whose names do not conform
# to [-A-Za-z0-9]+. infra sets it on ALB1 (public-alb.ts: dropInvalidHeaderFields).
VALID_HEADER_NAME = re.compile(r"[-A-Za-z0-9]+")
OIDC_PREFIX = "x-amzn-oidc-"


def redirect(location):
    """A 302 to `location`."""
    return web.Response(status=302, headers={"Location": location})


def same_site_path(target):
    """`target` when it is a path on this site, else `/`: the login's saved URL is only ever a
    same-site path, `/` followed by neither `/` nor `\\` (browsers read both as the start of
    another host) and with no control characters or spaces (which browsers strip or refuse)."""
    if not target.startswith("/") or target[1:2] in ("/", "\\"):
        return "/"
    if any(ord(ch) <= 0x20 or ord(ch) == 0x7F for ch in target):
        return "/"
    return target


def valid_headers(request):
    """The request's headers without those ALB1 drops (drop_invalid_header_fields, above)."""
    return CIMultiDict((name, value) for name, value in request.headers.items()
                       if VALID_HEADER_NAME.fullmatch(name))


def bearer(headers):
    """The token of an `Authorization: Bearer` header (ALB matches the header value case-insensitively)."""
    auth = headers.get("Authorization", "")
    return auth[7:].strip() if auth[:7].lower() == "bearer " else None


# Where `forward` leaves the trace header it sent, for `handle`'s log line.
TRACE_KEY = web.RequestKey("alb1.trace_id", str)


def xray_id():
    """A trace id in X-Ray's format, as ALB makes them: `1-{time, 8 hex digits}-{24 hex digits}`."""
    return f"1-{int(time.time()):08x}-{uuid.uuid4().hex[:24]}"


def trace_header(incoming):
    """The `X-Amzn-Trace-Id` ALB forwards (ELB user guide, "Request tracing"): a new `Root` when
    the request has none; a request's own header with a `Root` is kept, and ALB puts its `Self`
    in front; a header without one gets a `Root` added."""
    if not incoming:
        return f"Root={xray_id()}"
    if any(part.strip().startswith("Root=") for part in incoming.split(";")):
        return f"Self={xray_id()};{incoming}"
    return f"Root={xray_id()};{incoming}"


class Listener:
    """The listener: WAF, rules, login, session cookies and the forward to planb-proxy."""

    def __init__(self, cfg, signer, log, description=None):
        self.cfg, self.signer, self.log = cfg, signer, log
        self.spec = description or alb1_spec.load()
        self.waf = Waf(self.spec)
        self.sealer = Sealer()
        self.jwks = jwt.PyJWKClient(cfg.jwks_url, cache_keys=True, timeout=3)
        self.http = None

    def app(self):
        """The aiohttp application answering every path."""
        app = web.Application(client_max_size=MAX_BODY)
        app.router.add_route("*", "/{tail:.*}", self.handle)
        app.on_startup.append(self.open_client)
        app.on_cleanup.append(self.close_client)
        return app

    async def open_client(self, _app):
        """The HTTP client for the target and the Cognito domain, made on the server's loop."""
        # No cookie jar: the stand-in never keeps what a target sets, the browser does.
        self.http = aiohttp.ClientSession(auto_decompress=False, cookie_jar=aiohttp.DummyCookieJar(),
                                          timeout=aiohttp.ClientTimeout(total=65))

    async def close_client(self, _app):
        """Closes the HTTP client with the server."""
        await self.http.close()

    async def handle(self, request):
        """One request through WAF and the rules; one log line with what took it (and, when it was
        forwarded, the trace id it was sent with, as ALB's access log records it)."""
        rule, response = await self.route(request)
        trace = f" trace_id={request[TRACE_KEY]}" if TRACE_KEY in request else ""
        self.log(f"{request.method} {request.path} rule={rule} -> {response.status}{trace}")
        return response

    async def route(self, request):
        """(what took the request, the answer): WAF's body rules, then the listener's rules."""
        headers = valid_headers(request)
        # None: the request has no body (a GET), as opposed to an empty one.
        body = await request.read() if request.can_read_body else None
        # WAF evaluates a request before the load balancer's rules do.
        blocked = self.waf.verdict(request.rel_url.raw_path, headers, body or b"")
        if blocked:
            rule, labels = blocked
            return f"waf:{rule}({','.join(labels) or 'Content-Length'})", \
                web.Response(status=403, text="403 Forbidden\n")
        rule_id, action = alb1_spec.select(self.spec, request.method, request.path, headers)
        detail, response = await self.act(action, request, headers, body)
        return f"{rule_id}:{detail}", response

    async def act(self, action, request, headers, body):
        """(what happened, the answer) for one action of alb1.json."""
        kind = action["type"]
        if kind == "fixed-response":
            return "fixed", web.Response(status=action["statusCode"], text=action["messageBody"],
                                         content_type=action["contentType"])
        if kind == "forward":
            return "forward", await self.forward(request, headers, body, None)
        if kind == "jwt-validation":
            return await self.jwt_validation(action, request, headers, body)
        if kind == "authenticate-cognito":
            return await self.authenticate(action, request, headers, body)
        raise ValueError(f"alb1.json: unknown action type {kind!r}")

    async def jwt_validation(self, action, request, headers, body):
        """ELB user guide, "Verify JWTs using an Application Load Balancer": the token's
        signature, `iss` and `exp` (required), `nbf` and `iat` when present, plus the
        additional claims; a valid token is forwarded "with token as is", otherwise the
        request is rejected (401 here). The guide adds no x-amzn-oidc-* headers on this path and
        says nothing of removing a client's: the stand-in passes them on unchanged."""
        token = bearer(headers)
        why = "no bearer token" if token is None else await self.validate_jwt(token, action["additionalClaims"])
        if why:
            return "invalid", web.Response(
                status=401, text=f"401 Unauthorized: {why}\n",
                headers={"WWW-Authenticate": f'Bearer error="invalid_token", error_description="{why}"'})
        return "valid", await self.forward(request, headers, body, None)

    async def authenticate(self, action, request, headers, body):
        """ELB user guide, "Authenticate users using an Application Load Balancer"."""
        # "Authentication flow": the authenticate action answers the IdP's redirect back.
        if request.path == CALLBACK:
            return "idpresponse", await self.idp_response(request)
        session, refreshed = await self.session_of(request)
        if session is None:
            # "Configure user authentication", OnUnauthenticatedRequest: `authenticate` redirects
            # to the IdP; `allow` forwards without the user claims; `deny` answers 401 — and for
            # single-page applications "after the authentication session cookie expires ... If you
            # use the deny option, the load balancer returns an HTTP 401 Unauthorized error to these
            # AJAX calls". An expired session is no session here, so `deny` answers 401 for it too.
            # (A 2024 AWS security blog post describes a redirect to the login instead; the page,
            # backend/assets/app.js, treats a 401, a redirect and a failed fetch alike.)
            on = action["onUnauthenticatedRequest"]
            if on == "deny":
                return "deny", web.Response(status=401, text="401 Authorization Required\n")
            if on == "allow":
                return "allow", await self.forward(request, headers, body, None)
            return "login", self.to_login(request)
        # "User claims encoding and signature verification": the load balancer adds
        # x-amzn-oidc-accesstoken, -identity and -data. The guide does not say what becomes of a
        # client's own headers of those names; the stand-in replaces them (forward(), below).
        response = await self.forward(request, headers, body, self.signer.headers(
            session["access_token"], session["claims"], self.cfg.issuer, self.cfg.client_id,
            not_after=session["session_exp"]))
        if refreshed:
            self.set_session(response, session, carried(request.cookies))
        return "session", response

    # --- bearer tokens (ALB's JWT validation) ---

    async def validate_jwt(self, token, additional_claims):
        """None for a valid token, else why it is not (signature, iss, exp, nbf, iat, claims)."""
        try:
            key = await asyncio.to_thread(self.jwks.get_signing_key_from_jwt, token)
            claims = jwt.decode(token, key.key, algorithms=["RS256"], issuer=self.cfg.issuer,
                                options={"require": ["exp", "iss"], "verify_aud": False})
        except (jwt.PyJWTError, ValueError) as e:
            return type(e).__name__
        for claim in additional_claims:
            if not alb1_spec.claim_matches(claim, claims.get(claim["name"])):
                return f"claim {claim['name']}"
        return None

    # --- the Cognito login ---

    def callback_url(self, request):
        """The login's redirect_uri, built from the request's Host as ALB builds it."""
        return f"http://{request.host}{CALLBACK}"

    def to_login(self, request):
        """The 302 to the Cognito domain's authorize endpoint, the original URL kept in `state`."""
        state = self.sealer.seal({"url": same_site_path(request.path_qs)}, b"state")
        query = urlencode({"client_id": self.cfg.client_id, "redirect_uri": self.callback_url(request),
                           "response_type": "code", "scope": self.spec["listener"]["scope"], "state": state})
        return redirect(f"{self.cfg.cognito_public_url}/oauth2/authorize?{query}")

    async def idp_response(self, request):
        """The callback: the code swapped for tokens, userInfo read, the session cookie set."""
        state = self.sealer.open(request.query.get("state", ""), b"state")
        code = request.query.get("code")
        if state is None or not code:
            return self.refused("bad state or no code")
        tokens = await self.token_call({"grant_type": "authorization_code", "code": code,
                                        "redirect_uri": self.callback_url(request)})
        if not tokens:
            return self.refused("the token endpoint refused the code")
        claims = await self.user_info(tokens["access_token"])
        if not claims:
            return self.refused("userInfo refused the access token")
        now = time.time()
        session = {"access_token": tokens["access_token"], "id_token": tokens["id_token"],
                   "refresh_token": tokens["refresh_token"], "claims": claims,
                   "access_exp": self.exp_of(tokens["access_token"]), "session_exp": now + self.cfg.session_timeout}
        # Checked again on the way out: a state is only ever sent back to a path of this site.
        response = redirect(same_site_path(state["url"]))
        self.set_session(response, session, carried(request.cookies))
        return response

    def refused(self, why):
        """ALB's answer when the IdP step of a login fails (the reason logged, not sent)."""
        self.log(f"login refused: {why}")
        return web.Response(status=401, text="401 Authorization Required\n")

    @staticmethod
    def exp_of(token):
        """The `exp` of a token from the IdP (read, not verified: ALB holds it, the backend checks it)."""
        return jwt.decode(token, options={"verify_signature": False})["exp"]

    async def token_call(self, form):
        """POST to the Cognito domain's token endpoint as the ALB's app client; the JSON or None."""
        auth = aiohttp.BasicAuth(self.cfg.client_id, self.cfg.client_secret)
        async with self.http.post(f"{self.cfg.cognito_url}/oauth2/token", data=form, auth=auth) as r:
            if r.status != 200:
                self.log(f"token endpoint: {r.status} {await r.text()}")
                return None
            return await r.json()

    async def user_info(self, access_token):
        """The user's claims from the Cognito domain's userInfo, or None."""
        async with self.http.get(f"{self.cfg.cognito_url}/oauth2/userInfo",
                                 headers={"Authorization": f"Bearer {access_token}"}) as r:
            return await r.json() if r.status == 200 else None

    async def session_of(self, request):
        """(session, refreshed) from the cookie shards; an expired access token is refreshed.

        ELB user guide, "Authentication logout and session timeout": a session past its timeout
        is over (the user logs in again); before that, an expired access token is refreshed with
        the refresh token, and a failed refresh ends the session too ("Authentication flow",
        step 6)."""
        value = joined(request.cookies)
        session = value and self.sealer.open(value, b"session")
        if not session or expired(session):
            return None, False
        if session["access_exp"] > time.time():
            return session, False
        tokens = await self.token_call({"grant_type": "refresh_token", "refresh_token": session["refresh_token"]})
        if not tokens:
            return None, False
        session.update(access_token=tokens["access_token"], id_token=tokens["id_token"],
                       access_exp=self.exp_of(tokens["access_token"]))
        return session, True

    def set_session(self, response, session, had):
        """The session as cookie shards -0, -1, ...; shards the request had beyond them expire."""
        parts = shards(self.sealer.seal(session, b"session"))
        if len(parts) > MAX_SHARDS:
            raise web.HTTPInternalServerError(text="session larger than ALB's cookie shards\n")
        max_age = max(0, int(session["session_exp"] - time.time()))
        for i, part in enumerate(parts):
            response.set_cookie(f"{COOKIE}-{i}", part, max_age=max_age, path="/", httponly=True)
        for i in had:
            if i >= len(parts):
                response.del_cookie(f"{COOKIE}-{i}", path="/")

    # --- the forward to the target (planb-proxy) ---

    def upstream_headers(self, request, headers, added):
        """The forwarded request's headers: the client's valid ones (no hop-by-hop), Host kept,
        X-Forwarded-*, a trace id, then `added` (None: nothing added, the client's x-amzn-oidc-*
        pass unchanged; the user's claims: they replace any x-amzn-oidc-* the client sent)."""
        out = CIMultiDict()
        named = {v.strip().lower() for v in headers.get("Connection", "").split(",")}
        for name, value in headers.items():
            low = name.lower()
            if low in HOP_BY_HOP or low in named or low in ("host", "content-length"):
                continue
            if added is not None and low.startswith(OIDC_PREFIX):
                continue
            out.add(name, value)
        out["Host"] = request.host
        forwarded = headers.get("X-Forwarded-For")
        out["X-Forwarded-For"] = f"{forwarded}, {request.remote}" if forwarded else request.remote
        out["X-Forwarded-Proto"] = "http"
        out["X-Forwarded-Port"] = str(self.cfg.listen_port)
        out["X-Amzn-Trace-Id"] = trace_header(headers.get("X-Amzn-Trace-Id"))
        out.update(added or {})
        return out

    async def forward(self, request, headers, body, added):
        """The request to the target, the answer back (every Set-Cookie kept); 502/504 as ALB gives."""
        url = URL(self.cfg.target + request.raw_path, encoded=True)
        upstream = self.upstream_headers(request, headers, added)
        request[TRACE_KEY] = upstream["X-Amzn-Trace-Id"]
        try:
            async with self.http.request(request.method, url, headers=upstream,
                                         data=body,
                                         allow_redirects=False, skip_auto_headers=NOT_ADDED) as r:
                payload = await r.read()
                headers = CIMultiDict((k, v) for k, v in r.headers.items()
                                      if k.lower() not in HOP_BY_HOP and k.lower() != "content-length")
                return web.Response(status=r.status, body=payload, headers=headers)
        except asyncio.TimeoutError:
            return web.Response(status=504, text="504 Gateway Time-out\n")
        except aiohttp.ClientError:
            return web.Response(status=502, text="502 Bad Gateway\n")


def keys_app(kid, pem):
    """ALB's public key endpoint: GET /{kid} is the PEM of the signing key."""
    async def key(request):
        if request.match_info["kid"] != kid:
            return web.Response(status=404, text="no such key\n")
        return web.Response(body=pem, content_type="application/x-pem-file")

    app = web.Application()
    app.router.add_get("/{kid}", key)
    return app


def describe(cfg):
    """One line naming where everything listens, for the log."""
    return json.dumps({"listener": cfg.listen, "target": cfg.target, "cognito": cfg.cognito_public_url,
                       "keys": cfg.keys_listen})
