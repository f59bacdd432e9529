"""The web page: static assets shipped in the package (``static/``), served by ``api/``.

``static/vendor/`` holds the graph library, built from npm by ``web-src/build.sh`` and
committed with its licence; nothing is loaded from the network at run time (docs/web.md).
"""

from __future__ import annotations

from pathlib import Path

STATIC_DIR = Path(__file__).resolve().parent / "static"
INDEX = STATIC_DIR / "index.html"
