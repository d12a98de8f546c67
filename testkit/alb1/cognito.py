"""A test stand-in for the user pool's Cognito domain (hosted UI and OAuth 2.0 endpoints).

moto serves Cognito's APIs but not the domain's pages, so this plays them on
a port of its own, backed by moto's pool through boto3: `/oauth2/authorize`
and `/login` (a form checked with AdminInitiateAuth, the way the hosted UI
signs a user in), `/oauth2/token` (authorization code, refresh token and
client credentials), `/oauth2/userInfo` (GetUser) and `/logout`.

Client-credentials tokens: Cognito mints them at `/oauth2/token`, which moto
lacks, and no moto API returns one. moto signs every pool's tokens with one
RSA key shipped in its package (the key its JWKS endpoint publishes), so
this endpoint signs them with that key: the token is the test double, and
every check on it (the stand-in's bearer rule, the backend) runs against
moto's real JWKS.
"""
import asyncio
import base64
import html
import secrets
import time
import uuid
from urllib.parse import urlencode

import boto3
import jwt
from aiohttp import web
from moto.utilities.utils import load_resource

# Cognito's authorization codes are single use and short-lived.
CODE_TTL_SECS = 300
ACCESS_TTL_SECS = 3600
SESSION_COOKIE = "cognito"

FORM = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Sign in</title></head>
<body>
<h1>Sign in</h1>
<p>Cognito hosted UI (local test stand-in)</p>
{error}
<form method="post" action="/login?{query}">
<label>Username <input id="username" name="username" autocomplete="username" required></label>
<label>Password <input id="password" name="password" type="password" autocomplete="current-password" required></label>
<button id="signin" type="submit">Sign in</button>
</form>
</body></html>
"""


def moto_pool_key():
    """The RSA key moto signs its tokens with (its JWKS publishes the public half)."""
    return jwt.PyJWK(load_resource("cognitoidp/resources/jwks-private.json"))


def client_auth(request, form):
    """(client_id, secret) from HTTP Basic or the form (client_secret_basic or _post)."""
    auth = request.headers.get("Authorization", "")
    if auth.lower().startswith("basic "):
        try:
            cid, _, secret = base64.b64decode(auth[6:]).decode().partition(":")
            return cid, secret
        except ValueError:
            return None, None
    return form.get("client_id"), form.get("client_secret")


def redirect(location):
    """A 302 to `location`."""
    return web.Response(status=302, headers={"Location": location})


def oauth_error(status, code, description):
    """An OAuth 2.0 error answer, as Cognito's token endpoint gives it."""
    return web.json_response({"error": code, "error_description": description}, status=status)


class CognitoDomain:
    """The hosted UI and OAuth endpoints of one user pool in moto."""

    def __init__(self, moto_url, region, pool_id):
        self.idp = boto3.client("cognito-idp", endpoint_url=moto_url, region_name=region,
                                aws_access_key_id="test", aws_secret_access_key="test")
        self.pool_id = pool_id
        self.issuer = f"https://cognito-idp.{region}.amazonaws.com/{pool_id}"
        self.key = moto_pool_key()
        self.codes = {}  # code -> (tokens, client_id, redirect_uri, expires)
        self.sessions = {}  # hosted UI cookie -> (client_id, refresh_token)

    def app(self):
        """The aiohttp application serving the domain."""
        app = web.Application()
        app.router.add_get("/oauth2/authorize", self.authorize)
        app.router.add_get("/login", self.login_form)
        app.router.add_post("/login", self.login)
        app.router.add_post("/oauth2/token", self.token)
        app.router.add_get("/oauth2/userInfo", self.user_info)
        app.router.add_get("/logout", self.logout)
        return app

    async def app_client(self, client_id):
        """The app client's description, or None when the pool has no such client."""
        if not client_id:
            return None
        try:
            return (await asyncio.to_thread(self.idp.describe_user_pool_client,
                                            UserPoolId=self.pool_id, ClientId=client_id))["UserPoolClient"]
        except self.idp.exceptions.ResourceNotFoundException:
            return None

    async def check_authorize(self, query):
        """The app client of an authorize request, or an error answer naming what is wrong."""
        client = await self.app_client(query.get("client_id"))
        if client is None:
            return None, web.Response(status=400, text="invalid_request: unknown client_id\n")
        if query.get("response_type") != "code" or "code" not in client.get("AllowedOAuthFlows", []):
            return None, web.Response(status=400, text="unauthorized_client: response_type must be code\n")
        if query.get("redirect_uri") not in client.get("CallbackURLs", []):
            return None, web.Response(status=400, text="redirect_mismatch: redirect_uri is not a callback URL\n")
        return client, None

    async def authorize(self, request):
        """GET /oauth2/authorize: to the login form, or straight back with a code when signed in here."""
        client, error = await self.check_authorize(request.query)
        if error:
            return error
        held = self.sessions.get(request.cookies.get(SESSION_COOKIE, ""))
        if held and held[0] == client["ClientId"]:
            tokens = await self.refresh(client["ClientId"], held[1])
            if tokens:
                return self.code_redirect(request.query, tokens)
        return redirect(f"/login?{request.query_string}")

    async def login_form(self, request, error=""):
        """GET /login: the form (username, password)."""
        _, bad = await self.check_authorize(request.query)
        if bad:
            return bad
        body = FORM.format(query=html.escape(request.query_string), error=error)
        return web.Response(text=body, content_type="text/html", status=401 if error else 200)

    async def login(self, request):
        """POST /login: the password checked by moto (AdminInitiateAuth), then a code to the callback."""
        client, bad = await self.check_authorize(request.query)
        if bad:
            return bad
        form = await request.post()
        try:
            auth = await asyncio.to_thread(
                self.idp.admin_initiate_auth, UserPoolId=self.pool_id, ClientId=client["ClientId"],
                AuthFlow="ADMIN_USER_PASSWORD_AUTH",
                AuthParameters={"USERNAME": form.get("username", ""), "PASSWORD": form.get("password", "")})
        except (self.idp.exceptions.NotAuthorizedException, self.idp.exceptions.UserNotFoundException):
            return await self.login_form(request, '<p id="error">Incorrect username or password.</p>')
        tokens = auth.get("AuthenticationResult")
        if not tokens:
            return await self.login_form(request, f'<p id="error">{html.escape(auth.get("ChallengeName", "?"))} '
                                                  'is not supported by this stand-in.</p>')
        response = self.code_redirect(request.query, tokens)
        held = secrets.token_urlsafe(24)
        self.sessions[held] = (client["ClientId"], tokens["RefreshToken"])
        response.set_cookie(SESSION_COOKIE, held, httponly=True, path="/")
        return response

    def code_redirect(self, query, tokens):
        """A 302 to the callback with a fresh single-use code for `tokens`."""
        code = str(uuid.uuid4())
        self.codes[code] = (tokens, query["client_id"], query["redirect_uri"], time.time() + CODE_TTL_SECS)
        params = {"code": code, **({"state": query["state"]} if "state" in query else {})}
        return redirect(f"{query['redirect_uri']}?{urlencode(params)}")

    async def refresh(self, client_id, refresh_token):
        """New access and ID tokens for a refresh token (moto), or None."""
        try:
            auth = await asyncio.to_thread(
                self.idp.admin_initiate_auth, UserPoolId=self.pool_id, ClientId=client_id,
                AuthFlow="REFRESH_TOKEN_AUTH", AuthParameters={"REFRESH_TOKEN": refresh_token})
        except self.idp.exceptions.ClientError:
            return None
        return {**auth["AuthenticationResult"], "RefreshToken": refresh_token}

    async def token(self, request):
        """POST /oauth2/token: authorization_code, refresh_token or client_credentials."""
        form = await request.post()
        cid, secret = client_auth(request, form)
        client = await self.app_client(cid)
        expected = client.get("ClientSecret") if client else None
        if client is None or (expected and not secrets.compare_digest(expected, secret or "")):
            return oauth_error(400, "invalid_client", "client authentication failed")
        grant = form.get("grant_type")
        if grant == "authorization_code":
            return self.redeem(form, cid)
        if grant == "refresh_token":
            tokens = await self.refresh(cid, form.get("refresh_token", ""))
            if not tokens:
                return oauth_error(400, "invalid_grant", "refresh token is not valid")
            return web.json_response({"access_token": tokens["AccessToken"], "id_token": tokens["IdToken"],
                                      "token_type": "Bearer", "expires_in": tokens["ExpiresIn"]})
        if grant == "client_credentials":
            return self.client_credentials(client, form.get("scope"))
        return oauth_error(400, "unsupported_grant_type", "grant_type is not supported")

    def redeem(self, form, client_id):
        """An authorization code swapped, once, for the sign-in's tokens."""
        held = self.codes.pop(form.get("code", ""), None)
        if held is None or held[1] != client_id or held[2] != form.get("redirect_uri") or held[3] < time.time():
            return oauth_error(400, "invalid_grant", "code is not valid for this client and redirect_uri")
        tokens = held[0]
        return web.json_response({"access_token": tokens["AccessToken"], "id_token": tokens["IdToken"],
                                  "refresh_token": tokens["RefreshToken"], "token_type": "Bearer",
                                  "expires_in": tokens["ExpiresIn"]})

    def client_credentials(self, client, scope):
        """A machine client's access token, shaped as Cognito's (sub = client id, no username)."""
        if "client_credentials" not in client.get("AllowedOAuthFlows", []) or not client.get("ClientSecret"):
            return oauth_error(400, "unauthorized_client", "client is not allowed client_credentials")
        allowed = client.get("AllowedOAuthScopes", [])
        scopes = scope.split() if scope else allowed
        if not scopes or any(s not in allowed for s in scopes):
            return oauth_error(400, "invalid_scope", "scope is not allowed for this client")
        now = int(time.time())
        claims = {"sub": client["ClientId"], "token_use": "access", "scope": " ".join(scopes),
                  "auth_time": now, "iss": self.issuer, "exp": now + ACCESS_TTL_SECS, "iat": now,
                  "version": 2, "jti": str(uuid.uuid4()), "client_id": client["ClientId"]}
        token = jwt.encode(claims, self.key.key, algorithm="RS256", headers={"kid": self.key.key_id})
        return web.json_response({"access_token": token, "expires_in": ACCESS_TTL_SECS, "token_type": "Bearer"})

    async def user_info(self, request):
        """GET /oauth2/userInfo: the signed-in user's attributes (GetUser with the access token)."""
        auth = request.headers.get("Authorization", "")
        if not auth.lower().startswith("bearer "):
            return oauth_error(401, "invalid_token", "no access token")
        try:
            user = await asyncio.to_thread(self.idp.get_user, AccessToken=auth[7:])
        except self.idp.exceptions.ClientError:
            return oauth_error(401, "invalid_token", "access token is not valid")
        claims = {a["Name"]: a["Value"] for a in user["UserAttributes"]}
        return web.json_response({**claims, "username": user["Username"]})

    async def logout(self, request):
        """GET /logout?client_id&logout_uri: ends the hosted UI's session, back to a sign-out URL."""
        client = await self.app_client(request.query.get("client_id"))
        if client is None:
            return web.Response(status=400, text="invalid_request: unknown client_id\n")
        target = request.query.get("logout_uri")
        if target not in client.get("LogoutURLs", []):
            return web.Response(status=400, text="invalid_request: logout_uri is not a sign-out URL\n")
        self.sessions.pop(request.cookies.get(SESSION_COOKIE, ""), None)
        response = redirect(target)
        response.del_cookie(SESSION_COOKIE, path="/")
        return response
