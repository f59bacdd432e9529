"""A small HTTP server on 127.0.0.1 that answers with recorded API JSON, for the importers'
tests (Keystone + Neutron + Nova, the Kubernetes API). Used by test_import_openstack.py and
test_import_kubernetes.py; the one test here checks the server itself."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

DATA = Path(__file__).resolve().parent / "data" / "import"

Answer = tuple[int, dict[str, str], Any]


class RecordedApi:
    """Serve ``routes``: ``(METHOD, path)`` -> a JSON file (str, relative to ``root``), a
    Python object, or a callable ``(query, body) -> (status, headers, object)``. The text
    ``{base}`` in answers becomes the server's own base URL, so recorded catalogs and links
    point back here. Query strings are ignored for routing but kept in ``requests``."""

    def __init__(self, routes: dict[tuple[str, str], Any], root: Path | None = None) -> None:
        self.routes = dict(routes)
        self.root = root
        self.requests: list[tuple[str, str]] = []
        self.fail = False  # answer everything with 503 (a flaky API)
        api = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, fmt: str, *args: Any) -> None:
                pass

            def _answer(self, method: str) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                parts = urlsplit(self.path)
                api.requests.append((method, self.path))
                status, headers, obj = api.answer(method, parts.path, parts.query, body)
                text = json.dumps(obj).replace("{base}", api.base).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(text)))
                for k, v in headers.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(text)

            def do_GET(self) -> None:
                self._answer("GET")

            def do_POST(self) -> None:
                self._answer("POST")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def answer(self, method: str, path: str, query: str, body: bytes) -> Answer:
        if self.fail:
            return 503, {}, {"error": {"code": 503, "message": "Service Unavailable"}}
        target = self.routes.get((method, path)) or self.routes.get((method, path.rstrip("/")))
        if target is None:
            return 404, {}, {"NeutronError": {"type": "HTTPNotFound", "message":
                                              f"no route {method} {path}", "detail": ""}}
        if callable(target):
            fn: Callable[[str, bytes], Answer] = target
            return fn(query, body)
        if isinstance(target, str):
            assert self.root is not None
            return 200, {}, json.loads((self.root / target).read_text())
        return 200, {}, target

    def __enter__(self) -> RecordedApi:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


def test_recorded_api_serves_files_and_base() -> None:
    with RecordedApi({("GET", "/x"): {"self": "{base}/x"}}) as api:
        with urllib.request.urlopen(f"{api.base}/x", timeout=5) as r:
            assert json.load(r) == {"self": f"{api.base}/x"}
        try:
            urllib.request.urlopen(f"{api.base}/nope", timeout=5)
        except urllib.error.HTTPError as exc:
            assert exc.code == 404
        else:  # pragma: no cover
            raise AssertionError("expected 404")
