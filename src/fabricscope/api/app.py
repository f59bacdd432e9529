"""The REST API and the web page: ``create_app(db, inventory, token=...)`` (docs/api.md).

Routes under ``/api/v1`` return the same JSON as the CLI's ``--json`` (the query layer is
shared); ``/health`` and the page shell are public, everything else needs the token.
Handlers are plain ``def`` functions: FastAPI runs them in its thread pool, and each
request opens the store read-only for itself (one writer, many readers).
"""

from __future__ import annotations

import html
import logging
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from ipaddress import IPv4Address, IPv6Address
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from fabricscope import __version__
from fabricscope.api import accounting, models
from fabricscope.api.context import ApiContext, LiveCollector, health_fn, instant, ip, proto
from fabricscope.api.context import window as parse_window
from fabricscope.api.metrics import ApiMetrics, Snapshot, interface_rows, store_sizes
from fabricscope.api.security import (
    AuthMiddleware,
    RateLimitMiddleware,
    SecurityHeadersMiddleware,
    TokenBucket,
)
from fabricscope.errors import FabricscopeError, NotFound, UsageError

log = logging.getLogger("fabricscope.api")

API = "/api/v1"
MAX_LIMIT = 1000
MAX_OFFSET = 100_000


@dataclass(frozen=True)
class RateLimit:
    """``rate`` requests per second per client address on average, ``burst`` at once."""

    rate: float = 20.0
    burst: int = 100


# --- parameter types (documented once, used by every route) ---------------------------------

Since = Annotated[str | None, Query(
    description="start of the window: RFC 3339, relative (-15m, -2h) or now "
                "(default: until - 1h)", max_length=64)]
Until = Annotated[str | None, Query(
    description="end of the window: RFC 3339, relative or now (default: now)",
    max_length=64)]
At = Annotated[str | None, Query(description="an instant: RFC 3339, relative or now "
                                             "(default: now)", max_length=64)]
IpParam = Annotated[str, Query(description="IP address (v4 or v6)", max_length=64)]
Port = Annotated[int | None, Query(ge=0, le=65535)]
Proto = Annotated[str | None, Query(description="tcp, udp, icmp, icmp6, gre or 0-255",
                                    max_length=16)]
Vni = Annotated[int | None, Query(ge=0, le=0xFFFFFFFF,
                                  description="VXLAN/GENEVE VNI, NVGRE VSID or GRE key")]
Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT)]
Offset = Annotated[int, Query(ge=0, le=MAX_OFFSET)]
Name = Annotated[str, Query(min_length=1, max_length=256)]
OptName = Annotated[str | None, Query(max_length=256)]


def create_app(db: Any, inventory: str | Path | Any | None, *, token: str,
               rate_limit: RateLimit | None = RateLimit(),
               cors_origins: Sequence[str] = (),
               collector: LiveCollector | None = None) -> FastAPI:
    """The API and the page over store ``db`` (a location, ``None`` for the default store,
    or an open store) and ``inventory`` (file, history directory, ``"none"``, an
    ``Inventory``, or ``None`` for the loaded history). ``token`` is required on every
    route but ``/health`` and the page shell; ``rate_limit=None`` turns the limit off;
    ``cors_origins`` (none by default) may call the API from another origin."""
    if not token:
        raise UsageError("create_app: an API token is required")
    ctx = ApiContext(db, inventory, collector=collector)
    metrics = ApiMetrics(lambda: _snapshot(ctx))
    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        _warm_up()
        yield
        ctx.close()

    app = FastAPI(
        lifespan=lifespan,
        title="fabricscope",
        version=__version__,
        description="Trace tenant overlay flows hop by hop across the physical fabric. "
                    "Every route but /health needs `Authorization: Bearer <token>`.",
        docs_url=None, redoc_url=None, openapi_url="/openapi.json",
    )
    app.state.ctx = ctx
    app.state.metrics = metrics
    _errors(app)
    _routes(app, ctx, metrics)
    _page(app)
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]

    # middlewares, innermost first: auth, rate limit, CORS, timing, security headers
    app.add_middleware(AuthMiddleware, token=token)
    if rate_limit is not None:
        app.add_middleware(RateLimitMiddleware,
                           bucket=TokenBucket(rate_limit.rate, rate_limit.burst))
    if cors_origins:
        from starlette.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=list(cors_origins),
                           allow_methods=["GET"], allow_headers=["Authorization"],
                           allow_credentials=False, max_age=600)
    app.add_middleware(TimingMiddleware, metrics=metrics)
    app.add_middleware(SecurityHeadersMiddleware)
    return app


def _warm_up() -> None:
    """Import the query layer before the first request needs it (seconds, once)."""
    import importlib

    for mod in ("fabricscope.query._trace", "fabricscope.query._impact",
                "fabricscope.query._matrix", "fabricscope.query._predict",
                "fabricscope.query._chains", "fabricscope.correlate.health",
                "fabricscope.store.embedded"):
        try:
            importlib.import_module(mod)
        except ImportError:
            log.info("warm-up: %s is not available", mod)


# --- errors -------------------------------------------------------------------------------------


def error_response(status: int, message: str, detail: Any = None,
                   headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message, "detail": _jsonable(detail)}, status_code=status,
                        headers=headers)


class NotFoundWithResult(NotFound):
    """Nothing found, but the (empty) result says what was asked: sent as the detail."""

    def __init__(self, message: str, result: dict[str, Any]) -> None:
        super().__init__(message)
        self.result = result


def _errors(app: FastAPI) -> None:
    from fabricscope.store.errors import StoreError

    @app.exception_handler(FabricscopeError)
    async def _fabricscope_error(request: Request, exc: FabricscopeError) -> JSONResponse:
        if isinstance(exc, NotFound):
            return error_response(404, str(exc), getattr(exc, "result", None))
        if isinstance(exc, StoreError):
            log.warning("store: %s", exc)
            return error_response(503, f"store unavailable: {exc}")
        return error_response(400, str(exc))

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errs = exc.errors()
        first = errs[0] if errs else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p not in ("query", "path"))
        msg = f"{where}: {first.get('msg', 'invalid value')}" if where else "invalid request"
        detail = [{"loc": [str(p) for p in e.get("loc", ())], "msg": str(e.get("msg"))}
                  for e in errs]
        return error_response(400, msg, detail)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        msg = {404: f"not found: {request.url.path}",
               405: f"method {request.method} not allowed on {request.url.path}"}.get(
            exc.status_code, str(exc.detail))
        return error_response(exc.status_code, msg,
                              headers=dict(exc.headers) if exc.headers else None)

    @app.exception_handler(Exception)
    async def _internal(request: Request, exc: Exception) -> JSONResponse:
        log.exception("internal error on %s", request.url.path)
        return error_response(500, "internal error (the server log has the details)")


def _jsonable(v: Any) -> Any:
    """Make a value JSON-ready without losing meaning (bytes: an IP or hex)."""
    if v is None or isinstance(v, (str, int, float, bool)):
        return v
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple, set, frozenset)):
        return [_jsonable(x) for x in v]
    if isinstance(v, datetime):
        from fabricscope.query.common import iso

        return iso(v) if v.tzinfo else v.isoformat()
    if isinstance(v, timedelta):
        return v.total_seconds()
    if isinstance(v, bytes):
        if len(v) == 16:
            from fabricscope.records.present import ip_str

            return ip_str(v)
        return v.hex()
    if isinstance(v, (Path, IPv4Address, IPv6Address)):
        return str(v)
    return str(v)


# --- timing -------------------------------------------------------------------------------------


class TimingMiddleware:
    """Counts requests and their latency by route template (never the raw URL)."""

    def __init__(self, app: Any, metrics: ApiMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        t0 = time.perf_counter()
        status = [500]

        async def wrapped(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status[0] = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, wrapped)
        finally:
            route = scope.get("route")
            path = getattr(route, "path", None) if route is not None else None
            label = str(path) if path else "(unrouted)"
            self.metrics.observe_request(label, scope.get("method", "?"), status[0],
                                         time.perf_counter() - t0)


# --- routes -------------------------------------------------------------------------------------


def _routes(app: FastAPI, ctx: ApiContext, metrics: ApiMetrics) -> None:
    q_time = metrics.query_latency

    @app.get("/health", response_model=models.Health, tags=["meta"],
             summary="Liveness probe (no token needed)")
    def health() -> dict[str, Any]:
        return {"status": "ok", "version": __version__}

    @app.get("/metrics", tags=["meta"], summary="Prometheus metrics",
             response_class=Response,
             responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}},
                              "description": "Prometheus text exposition format"}})
    def prometheus() -> Response:
        from prometheus_client import CONTENT_TYPE_LATEST

        return Response(metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

    @app.get(f"{API}/inventory", response_model_exclude_unset=True,
             response_model=models.InventoryDocument,
             tags=["inventory"], summary="The inventory valid at an instant "
                                         "(as `inventory show --json`)")
    def inventory(at: At = None,
                  kind: Annotated[str | None, Query(
                      description="only these kinds, comma separated", max_length=128)
                  ] = None) -> dict[str, Any]:
        from fabricscope.inventory.addr import format_time
        from fabricscope.inventory.fileformat import document_from_facts

        t = instant(at, "at")
        inv = _need_inventory(ctx)
        kinds = _kinds(kind)
        facts = [f for k in kinds for f in inv.facts(k, t)]
        return document_from_facts(facts, metadata={
            "generated_by": "fabricscope serve", "at": format_time(t) or ""})

    @app.get(f"{API}/inventory/diff", response_model_exclude_unset=True,
             response_model=models.InventoryDiff,
             response_model_by_alias=True, tags=["inventory"],
             summary="What changed in the inventory between two times")
    def inventory_diff(t1: Annotated[str, Query(max_length=64, description="from")],
                       t2: Annotated[str, Query(max_length=64, description="to")],
                       kind: Annotated[str | None, Query(max_length=128)] = None
                       ) -> dict[str, Any]:
        from fabricscope.inventory.addr import format_time
        from fabricscope.inventory.changes import diff_times

        a, b = instant(t1, "t1"), instant(t2, "t2")
        inv = _need_inventory(ctx)
        kinds = set(_kinds(kind))
        changes = [c.to_dict() for c in diff_times(inv, a, b) if c.kind in kinds]
        return {"from": format_time(a), "to": format_time(b), "changes": changes}

    @app.get(f"{API}/topology", response_model_exclude_unset=True,
             response_model=models.Topology, tags=["page"],
             summary="Nodes and edges for the page: underlay with link utilisation and "
                     "errors, hosts, endpoints, VNFs and tunnels in a window")
    def topology(at: At = None,
                 window: Annotated[int, Query(ge=10, le=7 * 86400,
                                              description="window length, seconds")] = 300,
                 since: Since = None, until: Until = None) -> dict[str, Any]:
        from fabricscope.api.topology import build_topology

        if since is None and until is None:
            from fabricscope.query.common import Window

            end = instant(at, "at")
            w = Window(end - timedelta(seconds=window), end)
        else:
            w = parse_window(since, until, default=timedelta(seconds=window))
        inv = ctx.inventory()
        with q_time.labels("topology").time(), ctx.store() as store:
            return build_topology(store, inv, w)

    @app.get(f"{API}/trace", response_model_exclude_unset=True,
             response_model=models.TraceResult, tags=["queries"],
             summary="The path of an overlay flow (as `trace --json`)",
             responses={404: {"model": models.ErrorBody,
                              "description": "no record of the flow in the window; "
                                             "detail holds the (empty) result"}})
    def trace(src: IpParam, dst: IpParam, sport: Port = None, dport: Port = None,
              proto_: Annotated[str | None, Query(alias="proto", max_length=16,
                                description="tcp, udp, icmp, icmp6, gre or 0-255")] = None,
              vni: Vni = None, both: bool = False, since: Since = None,
              until: Until = None) -> dict[str, Any]:
        from fabricscope.query._trace import TraceQuery
        from fabricscope.query._trace import trace as run

        q = TraceQuery(src=ip(src, "src"), dst=ip(dst, "dst"),
                       window=parse_window(since, until), sport=sport, dport=dport,
                       proto=proto(proto_), vni=vni, both=both)
        inv = ctx.inventory()
        with q_time.labels("trace").time(), ctx.store() as store:
            result = run(store, inv, q, health=health_fn(store))
        if not result["paths"]:
            raise NotFoundWithResult(
                f"no record of {q.src} -> {q.dst} between {result['query']['since']} and "
                f"{result['query']['until']}", result)
        return result

    @app.get(f"{API}/impact", response_model_exclude_unset=True,
             response_model=models.ImpactResult, tags=["queries"],
             summary="Tenants, endpoints, VNIs and flows that crossed a device, interface "
                     "or link (as `impact --json`)",
             responses={404: {"model": models.ErrorBody,
                              "description": "nothing crossed it in the window"}})
    def impact(device: Name, interface: OptName = None,
               limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 50,
               since: Since = None, until: Until = None) -> dict[str, Any]:
        from fabricscope.api.context import interface_health
        from fabricscope.query._impact import ImpactQuery
        from fabricscope.query._impact import impact as run

        q = ImpactQuery(device=device, interface=interface, limit=limit,
                        window=parse_window(since, until))
        inv = ctx.inventory()
        with q_time.labels("impact").time(), ctx.store() as store:
            result = run(store, inv, q)
            if result.get("ifindex") is not None:
                h = interface_health(store, result["agent"], result["ifindex"], q.window)
                if h is not None:
                    result["health"] = h
        if result["samples"] == 0:
            raise NotFoundWithResult(
                f"no traffic sampled at {device}" + (f" {interface}" if interface else "")
                + " in the window", result)
        return result

    @app.get(f"{API}/matrix", response_model_exclude_unset=True,
             response_model=models.MatrixResult, tags=["queries"],
             summary="Traffic between tenants, endpoints or hosts (as `matrix --json`), "
                     "largest first, paginated",
             responses={404: {"model": models.ErrorBody,
                              "description": "no traffic in the window"}})
    def matrix(by: Literal["tenant", "endpoint", "host"] = "tenant", limit: Limit = 50,
               offset: Offset = 0, since: Since = None, until: Until = None
               ) -> dict[str, Any]:
        from fabricscope.query._matrix import MatrixQuery
        from fabricscope.query._matrix import matrix as run

        q = MatrixQuery(window=parse_window(since, until), by=by, limit=offset + limit)
        inv = ctx.inventory()
        with q_time.labels("matrix").time(), ctx.store() as store:
            result = run(store, inv, q)
        cells = int(result.get("cells", len(result["rows"])))
        result["rows"] = result["rows"][offset:offset + limit]
        result["query"] = {**result["query"], "limit": limit, "offset": offset}
        result.update(offset=offset, limit=limit,
                      next_offset=offset + limit if offset + limit < cells else None)
        if cells == 0:
            raise NotFoundWithResult("no traffic in the window", result)
        return result

    @app.get(f"{API}/predict", response_model_exclude_unset=True,
             response_model=models.PredictResult, tags=["queries"],
             summary="The paths a flow would take from the topology and the chain rules; "
                     "with observed, compared with what was seen (as `predict --json`)",
             responses={404: {"model": models.ErrorBody,
                              "description": "an endpoint is not in the inventory"}})
    def predict(src: IpParam, dst: IpParam, dport: Port = None, sport: Port = None,
                proto_: Annotated[str | None, Query(alias="proto", max_length=16,
                                  description="tcp, udp, icmp, icmp6, gre or 0-255")] = None,
                vni: Vni = None, at: At = None, observed: bool = False,
                since: Since = None, until: Until = None) -> dict[str, Any]:
        from fabricscope.query._predict import PredictQuery, compare
        from fabricscope.query._predict import predict as run

        w = parse_window(since, until)
        when = instant(at, "at") if at else w.until
        q = PredictQuery(src=ip(src, "src"), dst=ip(dst, "dst"), at=when, dport=dport,
                         sport=sport, proto=proto(proto_), vni=vni)
        inv = ctx.inventory()
        with q_time.labels("predict").time():
            result = run(inv, q)
            if observed:
                from fabricscope.query._trace import TraceQuery
                from fabricscope.query._trace import trace as run_trace

                tq = TraceQuery(src=q.src, dst=q.dst, window=w, sport=sport, dport=dport,
                                proto=q.proto, vni=vni)
                with ctx.store() as store:
                    tr = run_trace(store, inv, tq, health=health_fn(store))
                result["observed"] = compare(result, tr) | {"paths": len(tr["paths"])}
        return result

    @app.get(f"{API}/check/chains", response_model_exclude_unset=True,
             response_model=models.ChainCheckResult,
             tags=["queries"],
             summary="Traffic that bypassed a VNF its chain requires, asymmetric paths "
                     "through stateful VNFs (as `check chains --json`; ok=false on a "
                     "violation)")
    def check_chains(chain: OptName = None, since: Since = None, until: Until = None
                     ) -> dict[str, Any]:
        from fabricscope.query._chains import ChainCheckQuery
        from fabricscope.query._chains import check_chains as run

        q = ChainCheckQuery(window=parse_window(since, until), chain=chain)
        inv = ctx.inventory()
        with q_time.labels("check_chains").time(), ctx.store() as store:
            return run(store, inv, q)

    @app.get(f"{API}/records", response_model_exclude_unset=True,
             response_model=models.RecordsPage, tags=["records"],
             summary="Stored records matching a filter, in time order, paginated "
                     "(the fields of `decode --format ndjson`)",
             responses={200: {"content": {"application/x-ndjson": {
                 "schema": {"type": "string"}}},
                 "description": "with format=ndjson: one record per line"}})
    def records(since: Since = None, until: Until = None,
                src: Annotated[str | None, Query(max_length=64,
                               description="wire (outer) source IP")] = None,
                dst: Annotated[str | None, Query(max_length=64)] = None,
                inner_src: Annotated[str | None, Query(max_length=64)] = None,
                inner_dst: Annotated[str | None, Query(max_length=64)] = None,
                inner_sport: Port = None, inner_dport: Port = None,
                inner_proto: Proto = None, vni: Vni = None,
                encap: Annotated[str | None, Query(max_length=32)] = None,
                agent: Annotated[str | None, Query(max_length=64)] = None,
                in_if: Annotated[int | None, Query(ge=0, le=0xFFFFFFFF)] = None,
                out_if: Annotated[int | None, Query(ge=0, le=0xFFFFFFFF)] = None,
                interface: Annotated[int | None, Query(
                    ge=0, le=0xFFFFFFFF, description="in_if or out_if")] = None,
                kind: Literal["packet", "flow", "discard"] | None = None,
                both: Annotated[bool, Query(description="also the reverse direction")
                                ] = False,
                limit: Limit = 100, offset: Offset = 0,
                format_: Annotated[Literal["json", "ndjson"], Query(alias="format")
                                   ] = "json") -> Any:
        from fabricscope.records.present import record_dicts
        from fabricscope.store.filters import RecordFilter

        w = parse_window(since, until)
        ips = {k: (ip(v, k) if v is not None else None) for k, v in (
            ("src", src), ("dst", dst), ("inner_src", inner_src), ("inner_dst", inner_dst),
            ("agent", agent))}
        flt = RecordFilter(since=w.since, until=w.until, inner_sport=inner_sport,
                           inner_dport=inner_dport, inner_proto=proto(inner_proto),
                           vni=vni, encap=encap, in_if=in_if, out_if=out_if,
                           interface=interface, kind=kind, either_direction=both, **ips)
        with q_time.labels("records").time(), ctx.store() as store:
            t = store.select(flt, limit=offset + limit + 1)
        more = t.num_rows > offset + limit
        page = t.slice(offset, limit)
        rows = [_record(r) for r in record_dicts(page)]
        if format_ == "ndjson":
            import json

            body = "".join(json.dumps(r, separators=(",", ":")) + "\n" for r in rows)
            return Response(body, media_type="application/x-ndjson")
        return {"query": {**flt.to_dict(), **w.to_dict()}, "records": rows,
                "offset": offset, "limit": limit,
                "next_offset": offset + limit if more else None}

    @app.get(f"{API}/collector/status", response_model_exclude_unset=True,
             response_model=models.CollectorStatus,
             tags=["collector"],
             summary="Collector accounting: datagrams, samples, sequence gaps and drops "
                     "per agent, decode events (live, or as written with the data)")
    def collector_status() -> dict[str, Any]:
        acc = _accounting(ctx)
        return {"source": acc["source"], "live": ctx.collector is not None,
                "accounting": {k: acc[k] for k in ("totals", "agents", "events")},
                "raw": _jsonable(acc.get("raw"))}

    @app.get(f"{API}/store/info", response_model_exclude_unset=True,
             response_model=models.StoreInfo, tags=["store"],
             summary="Where the store is, what it holds, the time span of its records")
    def store_info() -> dict[str, Any]:
        from fabricscope.api.topology import span

        with ctx.store() as store:
            info = store.info()
            sp = span(store)
            if isinstance(info, dict) and info.get("first_ns") is not None:
                from fabricscope.timeutil import format_ns

                info = {**info, "first": format_ns(int(info["first_ns"])),
                        "last": format_ns(int(info["last_ns"]))}
        return {"location": getattr(store, "location", ctx.store_location()),
                "backend": getattr(store, "backend", None), "span": sp,
                "info": _jsonable(info)}

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        return HTMLResponse(_docs_html(app.openapi()))


def _record(r: dict[str, Any]) -> dict[str, Any]:
    from fabricscope.records.schema import PACKET_BY_NAME

    for k, v in r.items():
        if isinstance(v, bytes):
            col = PACKET_BY_NAME.get(k)
            r[k] = _jsonable(v) if col is not None and col.type == "ip" else v.hex()
    return r


def _need_inventory(ctx: ApiContext) -> Any:
    inv = ctx.inventory()
    if inv is None:
        raise NotFound("no inventory loaded (fabricscope inventory load FILE, or serve "
                       "--inventory FILE)")
    return inv


def _kinds(kind: str | None) -> list[str]:
    from fabricscope.inventory.model import KINDS, SINGULAR

    if kind is None or not kind.strip():
        return list(KINDS)
    out = []
    for k in kind.split(","):
        k = k.strip().lower()
        match = next((p for p in KINDS if k in (p, SINGULAR[p])), None)
        if match is None:
            raise UsageError(f"kind: unknown kind {k!r}; one of {', '.join(KINDS)}")
        out.append(match)
    return out


def _accounting(ctx: ApiContext) -> dict[str, Any]:
    if ctx.collector is not None:
        return accounting.normalize(accounting.live(ctx.collector), "live")
    with ctx.store() as store:
        found = accounting.stored(store)
    return accounting.normalize(found, "store" if found is not None else "none")


def _snapshot(ctx: ApiContext) -> Snapshot:
    snap = Snapshot()
    if ctx.collector is not None:
        snap.accounting = accounting.normalize(accounting.live(ctx.collector), "live")
    with ctx.store() as store:
        info = store.info()
        if isinstance(info, dict):
            snap.store = store_sizes(info)
        if ctx.collector is None:
            found = accounting.stored(store)
            if found is not None:
                snap.accounting = accounting.normalize(found, "store")
        snap.interfaces = interface_rows(store, ctx.inventory())
    return snap


# --- the page -----------------------------------------------------------------------------------


def _page(app: FastAPI) -> None:
    from fabricscope.web import INDEX, STATIC_DIR

    @app.api_route("/", methods=["GET", "HEAD"], include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(INDEX, media_type="text/html")

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")


# --- OpenAPI ------------------------------------------------------------------------------------

_ERR_REF = {"$ref": "#/components/schemas/ErrorBody"}


def _openapi(app: FastAPI) -> dict[str, Any]:
    if app.openapi_schema:
        return app.openapi_schema
    spec = get_openapi(title=app.title, version=app.version, description=app.description,
                       routes=app.routes)
    comps = spec.setdefault("components", {})
    schemas = comps.setdefault("schemas", {})
    schemas["ErrorBody"] = models.ErrorBody.model_json_schema(
        ref_template="#/components/schemas/{model}")
    schemas.pop("HTTPValidationError", None)
    schemas.pop("ValidationError", None)
    comps["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer",
                                           "description": "the API token (docs/api.md)"}}
    err = {"content": {"application/json": {"schema": _ERR_REF}}}
    for path, ops in spec.get("paths", {}).items():
        for op in ops.values():
            resp = op.setdefault("responses", {})
            resp.pop("422", None)
            resp.setdefault("400", {"description": "bad parameter", **err})
            resp.setdefault("429", {"description": "too many requests", **err})
            if path != "/health":
                op["security"] = [{"bearer": []}]
                resp.setdefault("401", {"description": "missing or wrong token", **err})
            if path.startswith(API):
                resp.setdefault("503", {"description": "the store cannot be read", **err})
    app.openapi_schema = spec
    return spec


def _docs_html(spec: dict[str, Any]) -> str:
    """A self-contained page listing the routes (no script, no CDN)."""
    e = html.escape
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>fabricscope API"
             f"</title><link rel='stylesheet' href='/static/app.css'></head>"
             f"<body class='docs'><h1>fabricscope API {e(str(spec['info']['version']))}"
             f"</h1><p>{e(str(spec['info'].get('description', '')))}</p>"
             "<p>Machine-readable: <code>GET /openapi.json</code> (with the token).</p>"]
    for path, ops in sorted(spec.get("paths", {}).items()):
        for method, op in ops.items():
            parts.append(f"<h2><code>{e(method.upper())} {e(path)}</code></h2>"
                         f"<p>{e(str(op.get('summary', '')))}</p>")
            params = op.get("parameters") or []
            if params:
                parts.append("<table><tr><th>parameter</th><th>required</th>"
                             "<th>description</th></tr>")
                for p in params:
                    parts.append(f"<tr><td><code>{e(str(p.get('name')))}</code></td>"
                                 f"<td>{'yes' if p.get('required') else ''}</td>"
                                 f"<td>{e(str(p.get('description') or ''))}</td></tr>")
                parts.append("</table>")
    parts.append("</body></html>")
    return "".join(parts)
