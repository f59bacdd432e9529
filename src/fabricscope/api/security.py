"""Who may ask: the API token, the per-client request-rate limit, and response headers.

* **Token.** ``$FABRICSCOPE_TOKEN`` if set, else the token file (default
  ``platformdirs.user_config_dir("fabricscope")/token``), created on first use with
  ``secrets.token_urlsafe(32)`` and mode 0600. Every request but ``GET /health`` and the
  static page shell must carry ``Authorization: Bearer <token>``; the comparison is
  constant-time (``hmac.compare_digest``).
* **Rate limit.** A token bucket per client address (``rate`` requests per second on
  average, ``burst`` at once); over it, 429 with ``Retry-After``. The table of clients is
  bounded (least recently seen are forgotten first).
* **Headers.** A strict Content-Security-Policy (``default-src 'self'``), no sniffing,
  no framing, no referrer, and ``Cache-Control: no-store`` on everything but the static
  assets.

The middlewares are plain ASGI, so they see every request, including ``/docs``,
``/openapi.json`` and paths no route matches.
"""

from __future__ import annotations

import hmac
import json
import math
import os
import secrets
import stat
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fabricscope.errors import UsageError

TOKEN_ENV = "FABRICSCOPE_TOKEN"
MIN_TOKEN_LENGTH = 16

PUBLIC_PATHS = frozenset({"/health", "/"})
"""Paths anyone may GET: the health probe and the page shell (which shows nothing until a
token is entered)."""
STATIC_PREFIX = "/static/"
"""The page's own assets (HTML, JS, CSS, the vendored graph library): code, no data."""

CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
       "form-action 'self'; frame-ancestors 'none'")

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Any
Send = Any
ASGIApp = Any


def default_token_file() -> Path:
    import platformdirs

    return Path(platformdirs.user_config_dir("fabricscope")) / "token"


@dataclass(frozen=True)
class TokenSource:
    token: str
    origin: str  # "environment" or the file's path
    created: bool  # generated just now (serve prints it once)


def load_token(token_file: str | Path | None = None, *, env: dict[str, str] | None = None
               ) -> TokenSource:
    """The API token: ``$FABRICSCOPE_TOKEN``, else the file (created with a new random
    token, mode 0600, when it does not exist)."""
    environ = os.environ if env is None else env
    from_env = environ.get(TOKEN_ENV)
    if from_env is not None and from_env.strip():
        tok = from_env.strip()
        _check_token(tok, f"${TOKEN_ENV}")
        return TokenSource(tok, "environment", False)
    path = Path(token_file) if token_file is not None else default_token_file()
    try:
        text = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return TokenSource(_create_token_file(path), str(path), True)
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"{path}: cannot read the API token: {exc}") from None
    _check_token(text, str(path))
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise UsageError(f"{path}: the token file is readable by others "
                         f"(mode {stat.S_IMODE(mode):04o}); chmod 600 it")
    return TokenSource(text, str(path), False)


def _check_token(tok: str, where: str) -> None:
    if len(tok) < MIN_TOKEN_LENGTH or any(c.isspace() for c in tok):
        raise UsageError(f"{where}: the API token must be at least {MIN_TOKEN_LENGTH} "
                         "characters without spaces")


def _create_token_file(path: Path) -> str:
    tok = secrets.token_urlsafe(32)
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process won the race: use its token
        return load_token(path, env={}).token
    except OSError as exc:
        raise UsageError(f"{path}: cannot create the API token file: {exc}") from None
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(tok + "\n")
    return tok


def is_public(method: str, path: str) -> bool:
    """Requests that need no token: GET/HEAD of /health, the page shell and its assets."""
    if method not in ("GET", "HEAD"):
        return False
    if path in PUBLIC_PATHS:
        return True
    # a static asset, by a plain path: no '..', '//' or '\\' tricks reach past the token
    return (path.startswith(STATIC_PREFIX) and "//" not in path and "\\" not in path
            and ".." not in path.split("/"))


def token_matches(header: str | None, token: str) -> bool:
    """Constant-time check of an ``Authorization`` header value against the token."""
    if not header:
        return False
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() != "bearer":
        return False
    # compare bytes of equal type; compare_digest takes time independent of the content
    return hmac.compare_digest(value.strip().encode("utf-8", "replace"),
                               token.encode("utf-8"))


async def send_json(send: Send, status: int, body: dict[str, Any],
                    headers: list[tuple[bytes, bytes]] | None = None) -> None:
    data = json.dumps(body).encode()
    hdrs = [(b"content-type", b"application/json"),
            (b"content-length", str(len(data)).encode())]
    hdrs += headers or []
    await send({"type": "http.response.start", "status": status, "headers": hdrs})
    await send({"type": "http.response.body", "body": data})


class AuthMiddleware:
    """401 (JSON, ``WWW-Authenticate: Bearer``) for any request without the right token,
    except the public ones (:func:`is_public`)."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self.token = token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or is_public(scope["method"], scope["path"]):
            await self.app(scope, receive, send)
            return
        header = None
        for k, v in scope.get("headers", ()):
            if k == b"authorization":
                header = v.decode("latin-1")
                break
        if not token_matches(header, self.token):
            msg = ("missing API token: send 'Authorization: Bearer <token>'" if header is None
                   else "wrong API token")
            await send_json(send, 401, {"error": msg, "detail": None},
                            [(b"www-authenticate", b'Bearer realm="fabricscope"')])
            return
        await self.app(scope, receive, send)


class TokenBucket:
    """Per-key token buckets: ``rate`` tokens per second, at most ``burst``; bounded."""

    def __init__(self, rate: float, burst: int, *, max_keys: int = 10_000,
                 clock: Any = time.monotonic) -> None:
        if rate <= 0 or burst < 1:
            raise UsageError("rate limit: rate must be > 0 and burst >= 1")
        self.rate = float(rate)
        self.burst = float(burst)
        self.max_keys = max_keys
        self.clock = clock
        self._b: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self._lock = threading.Lock()

    def take(self, key: str) -> float:
        """0.0 if a request may go now (and count it), else seconds until one may."""
        now = self.clock()
        with self._lock:
            tokens, last = self._b.pop(key, (self.burst, now))
            tokens = min(self.burst, tokens + (now - last) * self.rate)
            wait = 0.0
            if tokens >= 1.0:
                tokens -= 1.0
            else:
                wait = (1.0 - tokens) / self.rate
            self._b[key] = (tokens, now)
            while len(self._b) > self.max_keys:
                self._b.popitem(last=False)
            return wait


class RateLimitMiddleware:
    """429 (JSON, ``Retry-After``) when a client address exceeds its bucket."""

    def __init__(self, app: ASGIApp, bucket: TokenBucket) -> None:
        self.app = app
        self.bucket = bucket

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        key = str(client[0]) if client else "?"
        wait = self.bucket.take(key)
        if wait > 0:
            retry = max(1, math.ceil(wait))
            await send_json(send, 429, {"error": "too many requests: slow down",
                                        "detail": {"retry_after": retry}},
                            [(b"retry-after", str(retry).encode())])
            return
        await self.app(scope, receive, send)


class SecurityHeadersMiddleware:
    """CSP and friends on every response; ``no-store`` except for the static assets."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        static = scope["path"].startswith(STATIC_PREFIX)

        async def wrapped(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", ())
                           if k.lower() not in _OWN_HEADERS]
                headers += [
                    (b"content-security-policy", CSP.encode()),
                    (b"x-content-type-options", b"nosniff"),
                    (b"x-frame-options", b"DENY"),
                    (b"referrer-policy", b"no-referrer"),
                    (b"cross-origin-opener-policy", b"same-origin"),
                    (b"cross-origin-resource-policy", b"same-origin"),
                    (b"cache-control", b"no-cache" if static else b"no-store"),
                ]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, wrapped)


_OWN_HEADERS = {b"content-security-policy", b"x-content-type-options", b"x-frame-options",
                b"referrer-policy", b"cache-control", b"cross-origin-opener-policy",
                b"cross-origin-resource-policy"}
