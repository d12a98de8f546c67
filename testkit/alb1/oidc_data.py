"""`x-amzn-oidc-data` as ALB signs it, and the key it is signed with.

ALB signs the user claims with ES256 and encodes each part as base64url
*with* `=` padding; the signature covers the raw padded `header.payload`
text. The public key is published as a PEM at `{public key base}/{kid}`.
"""
import base64
import json
import os
import time

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

# How long one signed data token is valid: ALB signs it per request, short-lived.
DATA_TTL_SECS = 120


def b64_padded(raw: bytes) -> str:
    """base64url with `=` padding, the way ALB encodes each part."""
    return base64.urlsafe_b64encode(raw).decode()


def load_or_create_key(path):
    """The stand-in's P-256 signing key from `path`, made (mode 0600) when absent."""
    if path and os.path.exists(path):
        with open(path, "rb") as f:
            return serialization.load_pem_private_key(f.read(), password=None)
    key = ec.generate_private_key(ec.SECP256R1())
    if path:
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(pem)
    return key


def public_pem(key) -> bytes:
    """The public half as the PEM ALB's key endpoint serves."""
    return key.public_key().public_bytes(serialization.Encoding.PEM,
                                         serialization.PublicFormat.SubjectPublicKeyInfo)


class DataSigner:
    """Signs `x-amzn-oidc-data` for one load balancer (its ARN, key id and key)."""

    def __init__(self, key, kid: str, arn: str):
        self.key, self.kid, self.arn = key, kid, arn

    def sign(self, claims: dict, issuer: str, client_id: str, not_after: float | None = None,
             ttl: int = DATA_TTL_SECS) -> str:
        """The data token for a user's `claims` (from Cognito's userInfo).

        Its expiry is `ttl` seconds from now, never past `not_after` (the session's end)."""
        exp = int(time.time()) + ttl
        if not_after is not None:
            exp = min(exp, int(not_after))
        header = {"typ": "JWT", "kid": self.kid, "alg": "ES256", "iss": issuer,
                  "client": client_id, "signer": self.arn, "exp": exp}
        payload = {**claims, "exp": exp, "iss": issuer}
        signing_input = (f"{b64_padded(json.dumps(header, separators=(',', ':')).encode())}."
                         f"{b64_padded(json.dumps(payload, separators=(',', ':')).encode())}")
        der = self.key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256()))
        r, s = decode_dss_signature(der)
        return f"{signing_input}.{b64_padded(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"

    def headers(self, access_token: str, claims: dict, issuer: str, client_id: str,
                not_after: float | None = None, ttl: int = DATA_TTL_SECS) -> dict:
        """The three headers ALB adds to a request of a signed-in user."""
        return {"x-amzn-oidc-accesstoken": access_token,
                "x-amzn-oidc-identity": claims["sub"],
                "x-amzn-oidc-data": self.sign(claims, issuer, client_id, not_after, ttl)}
