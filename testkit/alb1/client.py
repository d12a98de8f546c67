"""Clients of the stand-in, for scripts and tests: a browser-like sign-in and a machine token."""
import requests

from .session import COOKIE


class SignInError(Exception):
    """The sign-in did not end with a session (the message says where it stopped)."""


def sign_in(alb_url, username, password, session=None):
    """Signs in through ALB1's login as a browser does: `/` → the Cognito form → back with a session.

    Returns the requests session holding the `AWSELBAuthSessionCookie-N` shards."""
    s = session or requests.Session()
    form = s.get(f"{alb_url}/", timeout=10)
    if 'id="username"' not in form.text:
        raise SignInError(f"GET {alb_url}/ ended at {form.url} ({form.status_code}), not the login form")
    done = s.post(form.url, data={"username": username, "password": password}, timeout=10)
    if not any(c.startswith(COOKIE) for c in s.cookies.keys()):
        raise SignInError(f"signing in as {username} ended at {done.url} ({done.status_code}) without a session")
    return s


def session_cookie(s):
    """The `Cookie` header value of the session shards a requests session holds."""
    return "; ".join(f"{c.name}={c.value}" for c in s.cookies if c.name.startswith(COOKIE))


def machine_token(cognito_url, client_id, client_secret, scope=None):
    """A client-credentials access token from the Cognito domain's token endpoint."""
    form = {"grant_type": "client_credentials", **({"scope": scope} if scope else {})}
    r = requests.post(f"{cognito_url}/oauth2/token", data=form, auth=(client_id, client_secret), timeout=10)
    r.raise_for_status()
    return r.json()["access_token"]
