"""Signing in to the web pages: a user's name and API token, then a signed session cookie.

- The session cookie holds the user's name, token id, issue time and a random session id, signed
  with HMAC-SHA256 under a server secret kept in ``<outputs>/web-secret.key`` (mode 0600, made on
  first start; every instance sharing the outputs folder shares it). It is ``HttpOnly``,
  ``SameSite=Strict``, ``Secure`` under TLS, and valid for :data:`SESSION_SECONDS`. Revoking the
  user (or giving them a new token) ends their sessions at their next request.
- CSRF: every form carries a token bound to the session (an HMAC of its session id); the sign-in
  form, which has no session yet, a double-submit token (a random cookie repeated in the form).
  A POST without the right token is refused (403) before anything else happens.
- Throttling: failed sign-ins are counted per name and per client address over
  :data:`THROTTLE_WINDOW` seconds; beyond :data:`MAX_FAILURES_PER_NAME` or
  :data:`MAX_FAILURES_PER_CLIENT` a sign-in is refused with 429 and ``Retry-After`` without
  checking the token. The counts are per server process.
"""

from __future__ import annotations

import base64
import collections
import contextlib
import hashlib
import hmac
import json
import os
import secrets
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from wfo_kit.serve.users import TokenVerifier, User

SECRET_FILE = "web-secret.key"
SESSION_COOKIE = "wfo_session"
LOGIN_CSRF_COOKIE = "wfo_login_csrf"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
SESSION_SECONDS = 8 * 3600
THROTTLE_WINDOW = 300.0
MAX_FAILURES_PER_NAME = 5
MAX_FAILURES_PER_CLIENT = 20


def server_secret(output_root: Path) -> bytes:
    """The signing key: read from ``<outputs>/web-secret.key``, created (0600) when missing."""
    path = Path(output_root) / SECRET_FILE
    with contextlib.suppress(FileExistsError):
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="ascii") as handle:
            handle.write(secrets.token_hex(32) + "\n")
    for _ in range(50):  # another instance may have created it a moment ago, not yet written
        text = path.read_text(encoding="ascii").strip()
        if text:
            return bytes.fromhex(text)
        time.sleep(0.02)
    msg = f"{path} is empty"
    raise RuntimeError(msg)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True)
class Session:
    name: str
    token_id: str
    issued: int
    sid: str


def sign_session(secret: bytes, session: Session) -> str:
    payload = _b64(
        json.dumps([session.name, session.token_id, session.issued, session.sid]).encode()
    )
    mac = hmac.new(secret, b"session|" + payload.encode(), hashlib.sha256).digest()
    return f"{payload}.{_b64(mac)}"


def read_session(secret: bytes, cookie: str | None, *, now: float | None = None) -> Session | None:
    """The session a cookie holds, if its signature is right and it has not expired."""
    if not cookie or cookie.count(".") != 1:
        return None
    payload, mac = cookie.split(".")
    expected = hmac.new(secret, b"session|" + payload.encode(), hashlib.sha256).digest()
    try:
        if not hmac.compare_digest(_unb64(mac), expected):
            return None
        name, token_id, issued, sid = json.loads(_unb64(payload))
    except (ValueError, TypeError):
        return None
    if not isinstance(issued, int) or (now or time.time()) - issued > SESSION_SECONDS:
        return None
    return Session(str(name), str(token_id), issued, str(sid))


def new_session(user: User) -> Session:
    return Session(user.name, user.token_id, int(time.time()), secrets.token_urlsafe(16))


def csrf_token(secret: bytes, session: Session) -> str:
    """The CSRF token of a session's forms."""
    return _b64(hmac.new(secret, b"csrf|" + session.sid.encode(), hashlib.sha256).digest())


def same(a: str | None, b: str | None) -> bool:
    return bool(a) and bool(b) and hmac.compare_digest(str(a), str(b))


def session_user(verifier: TokenVerifier, session: Session) -> User | None:
    """The session's user if still active with the same token (a revoked token ends it)."""
    user = verifier.active(session.token_id)
    return user if user is not None and user.name == session.name else None


def sign_in(verifier: TokenVerifier, name: str, token: str) -> User | None:
    """The active user ``name`` if ``token`` is theirs (an Argon2 check)."""
    user = verifier.verify(token.strip())
    return user if user is not None and user.name == name else None


SIGNED_OUT_FILE = "web-signed-out.txt"


class SignedOut:
    """Sessions ended by signing out, in ``<outputs>/web-signed-out.txt`` (one ``<session id>
    <expiry>`` a line; every instance sharing the outputs folder reads it): a copied session
    cookie is no use after its user signed out. Re-read when the file changes."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._stamp: tuple[int, int] | None = None
        self._ended: set[str] = set()

    def end(self, session: Session) -> None:
        line = f"{session.sid} {session.issued + SESSION_SECONDS}\n".encode("ascii")
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, line)  # one write on an appending file: lines never interleave
        finally:
            os.close(fd)

    def ended(self, session: Session) -> bool:
        try:
            stat = self.path.stat()
            stamp = (stat.st_mtime_ns, stat.st_size)
        except FileNotFoundError:
            return False
        with self._lock:
            if stamp != self._stamp:
                now = time.time()
                lines = self.path.read_text(encoding="ascii", errors="replace").splitlines()
                pairs = (line.split(" ", 1) for line in lines if " " in line)
                self._ended = {sid for sid, until in pairs if until.isdigit() and int(until) > now}
                self._stamp = stamp
            return session.sid in self._ended


class Throttle:
    """Failed sign-ins per key (a name, a client address) in a sliding window."""

    def __init__(self, *, window: float = THROTTLE_WINDOW) -> None:
        self.window = window
        self._lock = threading.Lock()
        self._failures: dict[str, collections.deque[float]] = collections.defaultdict(
            collections.deque
        )

    def _recent(self, key: str, now: float) -> collections.deque[float]:
        times = self._failures[key]
        while times and now - times[0] >= self.window:
            times.popleft()
        return times

    def retry_after(self, limits: dict[str, int], *, now: float | None = None) -> int:
        """Seconds until a sign-in may be tried for every key in ``limits`` (0: now)."""
        now = time.monotonic() if now is None else now
        wait = 0.0
        with self._lock:
            for key, limit in limits.items():
                times = self._recent(key, now)
                if len(times) >= limit:
                    wait = max(wait, times[len(times) - limit] + self.window - now)
        return int(wait) + 1 if wait > 0 else 0

    def failed(self, *keys: str, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        with self._lock:
            for key in keys:
                self._recent(key, now).append(now)

    def clear(self, key: str) -> None:
        with self._lock:
            self._failures.pop(key, None)
