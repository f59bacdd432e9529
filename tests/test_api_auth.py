"""Who may ask: every route of the app, enumerated from the app itself (docs, OpenAPI and
metrics included), answers 401 without the token and with a wrong one, and succeeds with
it; only /health and the page shell (with its static assets) are public. Also: the token
file, constant-time comparison, CORS closed by default, security headers, the listen
address."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from starlette.routing import Mount, Route

from fabricscope.api import RateLimit, create_app
from fabricscope.api import security as sec
from fabricscope.errors import UsageError
from test_api_support import EXAMPLE, SINCE, TOKEN, UNTIL, auth, build_store

WINDOW = {"since": SINCE, "until": UNTIL}
PARAMS: dict[str, dict[str, Any]] = {
    "/health": {},
    "/metrics": {},
    "/docs": {},
    "/openapi.json": {},
    "/": {},
    "/api/v1/inventory": {"at": "2026-11-25T10:01:00Z"},
    "/api/v1/inventory/diff": {"t1": "2026-11-25T10:00:00Z", "t2": "2026-11-25T11:00:00Z"},
    "/api/v1/topology": {"at": UNTIL, "window": 600},
    "/api/v1/trace": {"src": "10.1.0.1", "dst": "10.1.0.5", "dport": 443, **WINDOW},
    "/api/v1/impact": {"device": "leaf-2", **WINDOW},
    "/api/v1/matrix": WINDOW,
    "/api/v1/predict": {"src": "10.1.0.1", "dst": "10.1.0.5", "vni": 5001, "dport": 443,
                        "proto": "tcp", "at": "2026-11-25T10:02:00Z"},
    "/api/v1/check/chains": WINDOW,
    "/api/v1/records": {**WINDOW, "limit": 3},
    "/api/v1/collector/status": {},
    "/api/v1/store/info": {},
}
PUBLIC = {"/health", "/"}
WRONG = ["Bearer wrong-token-0123456789abcdef", f"Bearer {TOKEN}x", f"Bearer {TOKEN[:-1]}",
         f"Basic {TOKEN}", TOKEN, "Bearer", "Bearer ", f"Token {TOKEN}"]


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Any:
    db = build_store(tmp_path_factory.mktemp("auth") / "store")
    return create_app(db, str(EXAMPLE), token=TOKEN, rate_limit=None)


@pytest.fixture(scope="module")
def client(app: Any) -> TestClient:
    return TestClient(app, raise_server_exceptions=False)


def routes(app: Any) -> list[tuple[str, str]]:
    """(method, path) of every route the app has, and every static file it serves."""
    out: list[tuple[str, str]] = []
    for r in app.routes:
        if isinstance(r, Mount):
            root = Path(r.app.directory)  # StaticFiles
            out += [("GET", f"{r.path}/{p.relative_to(root).as_posix()}")
                    for p in sorted(root.rglob("*")) if p.is_file()]
        elif isinstance(r, (APIRoute, Route)):
            for m in sorted(r.methods or ()):
                if m != "HEAD":
                    out.append((m, r.path))
    return out


def test_every_route_is_known_to_this_test(app: Any) -> None:
    found = {p for _, p in routes(app) if not p.startswith("/static/")}
    assert found == set(PARAMS), "a route was added or removed: update PARAMS"
    assert {"/docs", "/openapi.json", "/metrics"} <= found


def test_every_route_needs_the_token(app: Any, client: TestClient) -> None:
    checked = 0
    for method, path in routes(app):
        if path in PUBLIC or path.startswith("/static/"):
            continue
        params = PARAMS.get(path, {})
        r = client.request(method, path, params=params)
        assert r.status_code == 401, (path, r.status_code)
        assert r.headers["content-type"] == "application/json"
        assert r.json()["error"].startswith("missing API token")
        assert r.headers["www-authenticate"].startswith("Bearer")
        for bad in WRONG:
            r = client.request(method, path, params=params, headers={"Authorization": bad})
            assert r.status_code == 401, (path, bad, r.status_code)
            assert "error" in r.json()
        checked += 1
    assert checked >= 14


def test_every_route_answers_with_the_token(app: Any, client: TestClient) -> None:
    for method, path in routes(app):
        params = PARAMS.get(path, {})
        r = client.request(method, path, params=params, headers=auth())
        assert r.status_code == 200, (path, r.status_code, r.text[:300])


def test_lowercase_scheme_is_accepted(client: TestClient) -> None:
    r = client.get("/api/v1/store/info", headers={"Authorization": f"bearer {TOKEN}"})
    assert r.status_code == 200


def test_public_routes_need_no_token(app: Any, client: TestClient) -> None:
    assert client.get("/health").json()["status"] == "ok"
    page = client.get("/")
    assert page.status_code == 200
    assert "text/html" in page.headers["content-type"]
    statics = [p for _, p in routes(app) if p.startswith("/static/")]
    assert "/static/vendor/cytoscape.min.js" in statics
    assert "/static/vendor/cytoscape.LICENSE" in statics
    for p in statics:
        assert client.get(p).status_code == 200, p


def test_the_page_shell_holds_no_data(client: TestClient) -> None:
    """The shell is the packaged file, the same bytes for everyone: no fabric data."""
    from fabricscope.web import INDEX

    text = client.get("/").text
    assert text == INDEX.read_text(encoding="utf-8")
    for secret in ("acme", "leaf-", TOKEN):
        assert secret not in text


def test_the_token_is_not_accepted_elsewhere(app: Any, client: TestClient) -> None:
    assert client.get("/api/v1/store/info", params={"token": TOKEN}).status_code == 401
    with_cookie = TestClient(app, cookies={"token": TOKEN})
    assert with_cookie.get("/api/v1/store/info").status_code == 401


def test_unknown_paths_and_methods(client: TestClient) -> None:
    # without a token nothing is revealed, not even whether a route exists
    assert client.get("/api/v1/nope").status_code == 401
    assert client.post("/api/v1/trace").status_code == 401
    r = client.get("/api/v1/nope", headers=auth())
    assert r.status_code == 404
    assert r.json() == {"error": "not found: /api/v1/nope", "detail": None}
    r = client.post("/api/v1/trace", headers=auth())
    assert r.status_code == 405
    assert r.json()["error"].startswith("method POST not allowed")
    # writing is not a thing this API does, public paths included
    assert client.post("/health").status_code == 401


@pytest.mark.parametrize("path", ["/static/../api/v1/store/info", "/static//etc/passwd",
                                  "/static/..", "/static/vendor/../../docs"])
def test_static_paths_do_not_bypass_the_token(path: str) -> None:
    assert not sec.is_public("GET", path)
    assert sec.is_public("GET", "/static/vendor/cytoscape.min.js")
    assert not sec.is_public("POST", "/static/app.js")


def test_compare_digest_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[bytes, bytes]] = []
    real = sec.hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(sec.hmac, "compare_digest", spy)
    assert sec.token_matches(f"Bearer {TOKEN}", TOKEN)
    assert not sec.token_matches("Bearer nope", TOKEN)
    assert len(calls) == 2
    assert not sec.token_matches(None, TOKEN)
    assert not sec.token_matches("Bearer \udcff", TOKEN)  # undecodable: no exception


def test_security_headers(client: TestClient) -> None:
    for path, headers in (("/", {}), ("/api/v1/store/info", auth()),
                          ("/static/app.js", {}), ("/api/v1/store/info", {})):
        r = client.get(path, headers=headers)
        csp = r.headers["content-security-policy"]
        assert "default-src 'self'" in csp
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp
        assert r.headers["x-content-type-options"] == "nosniff"
        assert r.headers["x-frame-options"] == "DENY"
    assert client.get("/api/v1/store/info", headers=auth()).headers["cache-control"] == \
        "no-store"


def test_cors_is_closed_by_default(client: TestClient) -> None:
    r = client.get("/api/v1/store/info",
                   headers={**auth(), "Origin": "https://evil.example"})
    assert r.status_code == 200
    assert "access-control-allow-origin" not in r.headers
    pre = client.options("/api/v1/store/info", headers={
        "Origin": "https://evil.example", "Access-Control-Request-Method": "GET",
        "Access-Control-Request-Headers": "authorization"})
    assert "access-control-allow-origin" not in pre.headers
    assert pre.status_code == 401


def test_cors_when_an_origin_is_given(tmp_path: Path) -> None:
    app = create_app(build_store(tmp_path / "s"), str(EXAMPLE), token=TOKEN, rate_limit=None,
                     cors_origins=["https://dash.example"])
    c = TestClient(app)
    pre = c.options("/api/v1/store/info", headers={
        "Origin": "https://dash.example", "Access-Control-Request-Method": "GET",
        "Access-Control-Request-Headers": "authorization"})
    assert pre.status_code == 200
    assert pre.headers["access-control-allow-origin"] == "https://dash.example"
    r = c.get("/api/v1/store/info", headers={**auth(), "Origin": "https://dash.example"})
    assert r.headers["access-control-allow-origin"] == "https://dash.example"
    r = c.get("/api/v1/store/info", headers={**auth(), "Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in r.headers
    # CORS does not replace the token
    assert c.get("/api/v1/store/info",
                 headers={"Origin": "https://dash.example"}).status_code == 401


def test_docs_are_self_contained(client: TestClient) -> None:
    text = client.get("/docs", headers=auth()).text
    assert "/api/v1/trace" in text
    assert "<script" not in text and "cdn" not in text.lower() and "http" not in text


def test_create_app_needs_a_token() -> None:
    with pytest.raises(UsageError):
        create_app(None, "none", token="")


# --- the token file ------------------------------------------------------------------------------


def test_token_file_is_created_once_with_mode_0600(tmp_path: Path) -> None:
    f = tmp_path / "conf" / "token"
    first = sec.load_token(f, env={})
    assert first.created and first.origin == str(f)
    assert len(first.token) >= 32
    assert stat.S_IMODE(os.stat(f).st_mode) == 0o600
    again = sec.load_token(f, env={})
    assert not again.created and again.token == first.token


def test_environment_wins_over_the_file(tmp_path: Path) -> None:
    f = tmp_path / "token"
    got = sec.load_token(f, env={"FABRICSCOPE_TOKEN": TOKEN})
    assert got.token == TOKEN and got.origin == "environment"
    assert not f.exists()


def test_bad_tokens_are_refused(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="at least 16"):
        sec.load_token(tmp_path / "t", env={"FABRICSCOPE_TOKEN": "short"})
    f = tmp_path / "open"
    f.write_text(TOKEN + "\n")
    f.chmod(0o644)
    with pytest.raises(UsageError, match="readable by others"):
        sec.load_token(f, env={})
    f.chmod(0o600)
    assert sec.load_token(f, env={}).token == TOKEN


def test_default_token_file_is_in_the_user_config_dir() -> None:
    import platformdirs

    assert sec.default_token_file() == Path(platformdirs.user_config_dir("fabricscope")) / "token"


# --- serve ---------------------------------------------------------------------------------------


def test_serve_binds_localhost_and_prints_a_new_token(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    import uvicorn
    from typer.testing import CliRunner

    from fabricscope.cli.app import app as cli
    from fabricscope.cli.app import build_app

    seen: dict[str, Any] = {}

    def fake_run(app: Any, **kw: Any) -> None:
        seen.update(kw, app=app)

    monkeypatch.setattr(uvicorn, "run", fake_run)
    monkeypatch.delenv("FABRICSCOPE_TOKEN", raising=False)
    build_app()
    tok = tmp_path / "token"
    res = CliRunner().invoke(cli, ["serve", "--db", str(tmp_path / "db"), "--inventory",
                                   "none", "--token-file", str(tok)])
    assert res.exit_code == 0, res.output
    assert seen["host"] == "127.0.0.1" and seen["port"] == 8626
    assert tok.read_text().strip() in res.output
    res = CliRunner().invoke(cli, ["serve", "--db", str(tmp_path / "db"), "--inventory",
                                   "none", "--token-file", str(tok), "--listen", "[::1]:9000"])
    assert res.exit_code == 0, res.output
    assert (seen["host"], seen["port"]) == ("::1", 9000)
    assert tok.read_text().strip() not in res.output  # printed only when created


@pytest.mark.parametrize(("text", "want"), [
    ("127.0.0.1:8626", ("127.0.0.1", 8626)), (":9", ("127.0.0.1", 9)),
    ("0.0.0.0:80", ("0.0.0.0", 80)), ("[::]:8626", ("::", 8626))])
def test_parse_listen(text: str, want: tuple[str, int]) -> None:
    from fabricscope.cli.commands.serve import parse_listen

    assert parse_listen(text) == want


@pytest.mark.parametrize("text", ["8626", "host:", "host:0", "host:70000", "[::1]8626"])
def test_parse_listen_rejects(text: str) -> None:
    from fabricscope.cli.commands.serve import parse_listen

    with pytest.raises(UsageError):
        parse_listen(text)


def test_rate_limit_is_on_by_default() -> None:
    assert RateLimit().rate > 0
    import inspect

    default = inspect.signature(create_app).parameters["rate_limit"].default
    assert isinstance(default, RateLimit)
