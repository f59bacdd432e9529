"""The REST API (FastAPI) and the web page server: ``create_app`` (docs/api.md)."""

from __future__ import annotations

from fabricscope.api.app import RateLimit, create_app

__all__ = ["RateLimit", "create_app"]
