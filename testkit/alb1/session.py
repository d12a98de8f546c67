"""ALB's session cookie: the sign-in's tokens, encrypted, split into 4 KB shards.

ALB keeps the session in `AWSELBAuthSessionCookie-0`, `-1`, ... (a cookie
over 4 KB is split), opaque to the browser. Here the value is the session's
JSON sealed with AES-GCM under a key that lives as long as the process.
"""
import base64
import json
import os
import time

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

COOKIE = "AWSELBAuthSessionCookie"
# A browser keeps at most 4096 bytes per cookie, name and attributes included.
SHARD_CHARS = 4000
MAX_SHARDS = 4


class Sealer:
    """Encrypts and decrypts session and `state` values (AES-GCM, random nonce)."""

    def __init__(self):
        self.aead = AESGCM(AESGCM.generate_key(bit_length=256))

    def seal(self, obj: dict, purpose: bytes) -> str:
        """`obj` sealed for `purpose` (a session is not a state and vice versa)."""
        nonce = os.urandom(12)
        raw = nonce + self.aead.encrypt(nonce, json.dumps(obj).encode(), purpose)
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    def open(self, text: str, purpose: bytes) -> dict | None:
        """What `seal` sealed, or None for anything else."""
        try:
            raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
            return json.loads(self.aead.decrypt(raw[:12], raw[12:], purpose))
        except (ValueError, InvalidTag):
            return None


def shards(value: str) -> list[str]:
    """`value` cut into cookie-sized pieces, in order."""
    return [value[i:i + SHARD_CHARS] for i in range(0, len(value), SHARD_CHARS)] or [""]


def joined(cookies) -> str | None:
    """The session value from a request's cookies: shards -0, -1, ... up to the first gap."""
    parts = []
    for i in range(MAX_SHARDS):
        part = cookies.get(f"{COOKIE}-{i}")
        if part is None:
            break
        parts.append(part)
    return "".join(parts) or None


def carried(cookies) -> list[int]:
    """The shard numbers a request carries."""
    prefix = f"{COOKIE}-"
    return sorted(int(n[len(prefix):]) for n in cookies if n.startswith(prefix) and n[len(prefix):].isdigit())


def expired(session: dict, now: float | None = None) -> bool:
    """True once the session's timeout has passed."""
    return (now or time.time()) >= session["session_exp"]
