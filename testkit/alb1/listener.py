"""ALB1's HTTPS listener, played on loopback: its rules, the login and the forward.

The rules, first match wins, as infra writes them on the real listener:
  1. `/metrics`, `/ready` (and below): a fixed 404, never forwarded;
  2. `OPTIONS /api/*`: forwarded without authentication (CORS preflights carry no cookie);
  3. `/logout`: forwarded without authentication (the backend clears the session);
  4. `Authorization: Bearer …`: JWT validation against the pool's JWKS (signature,
     `iss`, `exp`; `nbf`, `iat` when present; the configured extra claims), then
     forwarded with the header untouched and no `x-amzn-oidc-*` headers; 401 if invalid;
  5. `/api/*`: authenticate-cognito with `onUnauthenticatedRequest: deny` (401 without a session);
  6. default: authenticate-cognito, a request without a session is sent to the login.
An authenticated request is forwarded with `x-amzn-oidc-accesstoken`,
`-identity` and `-data`; whatever `x-amzn-oidc-*` the client sent is dropped.
"""
import asyncio
import json
import time
import uuid
from urllib.parse import urlencode

import aiohttp
import jwt
from aiohttp import web
from multidict import CIMultiDict
from yarl import URL

from .session import COOKIE, MAX_SHARDS, Sealer, carried, expired, joined, shards

# Headers aiohttp would add to a forwarded request that the client did not send.
NOT_ADDED = ("User-Agent", "Accept-Encoding", "Accept", "Content-Type")
HOP_BY_HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te",
              "trailer", "transfer-encoding", "upgrade", "proxy-connection"}
INTERNAL_PREFIXES = ("/metrics", "/ready")
NOT_FOUND = '{"error":"not_found","message":"no such resource"}'
CALLBACK = "/oauth2/idpresponse"
# A request body the stand-in holds in memory at most (ALB's own limits are larger; notes are 25 KiB).
MAX_BODY = 1024 * 1024


def redirect(location):
    """A 302 to `location`."""
    return web.Response(status=302, headers={"Location": location})


def is_internal(path):
    """Paths ALB1 answers itself with a 404 (the backend's internal endpoints)."""
    return any(path == p or path.startswith(p + "/") for p in INTERNAL_PREFIXES)


def bearer(request):
    """The token of an `Authorization: Bearer` header (ALB matches the header value case-insensitively)."""
    auth = request.headers.get("Authorization", "")
    return auth[7:].strip() if auth[:7].lower() == "bearer " else None


def claim_matches(value, wanted):
    """ALB's extra-claim formats: a single string, space-separated values, a string array."""
    if isinstance(value, list):
        return wanted in value
    return isinstance(value, str) and (value == wanted or wanted in value.split())


def trace_id():
    """An `X-Amzn-Trace-Id` root as ALB writes it."""
    return f"Root=1-{int(time.time()):08x}-{uuid.uuid4().hex[:24]}"


class Listener:
    """The listener: rules, login, session cookies and the forward to planb-proxy."""

    def __init__(self, cfg, signer, log):
        self.cfg, self.signer, self.log = cfg, signer, log
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
        """One request through the rules; one log line with the rule that took it."""
        rule, response = await self.route(request)
        self.log(f"{request.method} {request.path} rule={rule} -> {response.status}")
        return response

    async def route(self, request):
        """(the rule's name, the answer) for a request, the rules in the module doc's order."""
        path, api = request.path, request.path.startswith("/api/")
        if is_internal(path):
            return "internal-404", web.Response(status=404, text=NOT_FOUND, content_type="application/json")
        if path == CALLBACK:
            return "idpresponse", await self.idp_response(request)
        if request.method == "OPTIONS" and api:
            return "preflight", await self.forward(request, {})
        if path == "/logout":
            return "logout", await self.forward(request, {})
        token = bearer(request)
        if token is not None:
            why = await self.validate_jwt(token)
            if why:
                return "jwt-401", web.Response(
                    status=401, text=f"401 Unauthorized: {why}\n",
                    headers={"WWW-Authenticate": f'Bearer error="invalid_token", error_description="{why}"'})
            return "jwt", await self.forward(request, {})
        session, refreshed = await self.session_of(request)
        if session is None:
            if api:
                return "api-deny", web.Response(status=401, text="401 Authorization Required\n")
            return "login", self.to_login(request)
        response = await self.forward(request, self.signer.headers(
            session["access_token"], session["claims"], self.cfg.issuer, self.cfg.client_id,
            not_after=session["session_exp"]))
        if refreshed:
            self.set_session(response, session, carried(request.cookies))
        return "api-session" if api else "session", response

    # --- bearer tokens (ALB's JWT validation) ---

    async def validate_jwt(self, token):
        """None for a valid token, else why it is not (signature, iss, exp, nbf, iat, claims)."""
        try:
            key = await asyncio.to_thread(self.jwks.get_signing_key_from_jwt, token)
            claims = jwt.decode(token, key.key, algorithms=["RS256"], issuer=self.cfg.issuer,
                                options={"require": ["exp", "iss"], "verify_aud": False})
        except (jwt.PyJWTError, ValueError) as e:
            return type(e).__name__
        for name, wanted in self.cfg.jwt_claims:
            if not claim_matches(claims.get(name), wanted):
                return f"claim {name}"
        return None

    # --- the Cognito login ---

    def callback_url(self, request):
        """The login's redirect_uri, built from the request's Host as ALB builds it."""
        return f"http://{request.host}{CALLBACK}"

    def to_login(self, request):
        """The 302 to the Cognito domain's authorize endpoint, the original URL kept in `state`."""
        state = self.sealer.seal({"url": request.path_qs}, b"state")
        query = urlencode({"client_id": self.cfg.client_id, "redirect_uri": self.callback_url(request),
                           "response_type": "code", "scope": self.cfg.scope, "state": state})
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
        response = redirect(state["url"])
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
        """(session, refreshed) from the cookie shards; an expired access token is refreshed."""
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

    def upstream_headers(self, request, added):
        """The forwarded request's headers: the client's (no hop-by-hop, no x-amzn-oidc-*),
        Host kept, X-Forwarded-*, a trace id, then `added`."""
        headers = CIMultiDict()
        named = {v.strip().lower() for v in request.headers.get("Connection", "").split(",")}
        for name, value in request.headers.items():
            low = name.lower()
            if low in HOP_BY_HOP or low in named or low in ("host", "content-length") \
                    or low.startswith("x-amzn-oidc-"):
                continue
            headers.add(name, value)
        headers["Host"] = request.host
        forwarded = request.headers.get("X-Forwarded-For")
        headers["X-Forwarded-For"] = f"{forwarded}, {request.remote}" if forwarded else request.remote
        headers["X-Forwarded-Proto"] = "http"
        headers["X-Forwarded-Port"] = str(self.cfg.listen_port)
        headers.setdefault("X-Amzn-Trace-Id", trace_id())
        headers.update(added)
        return headers

    async def forward(self, request, added):
        """The request to the target, the answer back (every Set-Cookie kept); 502/504 as ALB gives."""
        body = await request.read() if request.can_read_body else None
        url = URL(self.cfg.target + request.raw_path, encoded=True)
        try:
            async with self.http.request(request.method, url, headers=self.upstream_headers(request, added),
                                         data=body, allow_redirects=False, skip_auto_headers=NOT_ADDED) as r:
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
