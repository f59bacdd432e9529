"""Schemathesis against the app's own OpenAPI spec (fetched with the token): generated
requests for every operation, on a real store, valid ones and invalid ones, must never get
a 5xx, and every response must match the spec (status code, content type, schema).

Bounded: a fixed number of examples per operation and mode, no deadline, derandomised so
a run is repeatable. (Schemathesis' own pytest fixture loader does not work with the pytest
in use, so the operations are driven through Hypothesis directly.)"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

schemathesis = pytest.importorskip("schemathesis")

from hypothesis import HealthCheck, given, settings  # noqa: E402
from schemathesis import GenerationMode  # noqa: E402
from schemathesis.checks import (  # noqa: E402
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from fabricscope.api import create_app  # noqa: E402
from test_api_support import EXAMPLE, TOKEN, auth, build_store  # noqa: E402

EXAMPLES = 25


def _spec() -> dict[str, Any]:
    spec: dict[str, Any] = create_app(None, "none", token=TOKEN, rate_limit=None).openapi()
    return spec


def _paths() -> list[str]:
    return sorted(_spec()["paths"])


def _cases() -> list[Any]:
    """(path, mode) for every operation; invalid requests only where there are
    parameters to get wrong."""
    spec = _spec()
    out = []
    for p in _paths():
        out.append(pytest.param(p, GenerationMode.POSITIVE, id=f"{p}-valid"))
        if spec["paths"][p]["get"].get("parameters"):
            out.append(pytest.param(p, GenerationMode.NEGATIVE, id=f"{p}-invalid"))
    return out


@pytest.fixture(scope="module")
def api_schema(tmp_path_factory: pytest.TempPathFactory) -> Any:
    db = build_store(Path(tmp_path_factory.mktemp("st")) / "store")
    app = create_app(db, str(EXAMPLE), token=TOKEN, rate_limit=None)
    return schemathesis.openapi.from_asgi("/openapi.json", app, headers=auth())


def test_every_operation_is_fuzzed(api_schema: Any) -> None:
    labels = {r.ok().label for r in api_schema.get_all_operations()}
    assert labels == {f"GET {p}" for p in _paths()}
    assert len(labels) >= 13


@pytest.mark.parametrize(("path", "mode"), _cases())
def test_no_server_errors(api_schema: Any, path: str, mode: GenerationMode) -> None:
    op = api_schema[path]["GET"]
    seen: list[int] = []

    @given(case=op.as_strategy(mode))
    @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    def run(case: Any) -> None:
        resp = case.call_and_validate(headers=auth(), checks=[
            not_a_server_error, status_code_conformance, content_type_conformance,
            response_schema_conformance])
        seen.append(resp.status_code)

    run()
    assert seen and max(seen) < 500
