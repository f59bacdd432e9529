"""Where a store lives: ``--db LOCATION``, ``$FABRICSCOPE_DB``, or the default directory.

* a path (or ``file://PATH``): the embedded store, a directory;
* ``clickhouse://[USER[:PASSWORD]@]HOST[:PORT]/DATABASE`` (``clickhouses://`` for TLS):
  a ClickHouse server through clickhouse-connect (HTTP port, default 8123 / 8443);
* ``chdb://PATH``: the ClickHouse engine in-process (chDB) with its data in PATH, which is
  how the ClickHouse store is tested.

Nothing given: ``$FABRICSCOPE_DB`` if set, else ``<user data dir>/fabricscope/store``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import parse_qs, unquote, urlsplit

from fabricscope.errors import UsageError

ENV_VAR = "FABRICSCOPE_DB"

Kind = Literal["embedded", "clickhouse", "chdb"]


@dataclass(frozen=True)
class Location:
    kind: Kind
    path: Path | None = None  # embedded root, chDB data directory
    host: str = "localhost"
    port: int = 8123
    database: str = "fabricscope"
    user: str | None = None
    password: str | None = None
    secure: bool = False

    def __str__(self) -> str:
        if self.kind == "embedded":
            return str(self.path)
        if self.kind == "chdb":
            return f"chdb://{self.path}/{self.database}"
        scheme = "clickhouses" if self.secure else "clickhouse"
        who = f"{self.user}@" if self.user else ""
        return f"{scheme}://{who}{self.host}:{self.port}/{self.database}"


def default_root() -> Path:
    import platformdirs

    return Path(platformdirs.user_data_dir("fabricscope")) / "store"


def parse_location(location: str | os.PathLike[str] | None) -> Location:
    """``--db`` text -> :class:`Location` (``None``: environment, then the default)."""
    text = os.fspath(location) if location is not None else os.environ.get(ENV_VAR) or None
    if text is None or text == "":
        return Location("embedded", default_root())
    low = text.lower()
    if low.startswith(("clickhouse://", "clickhouses://")):
        return _clickhouse(text)
    if low.startswith("chdb://"):
        rest = text[len("chdb://"):]
        if not rest:
            raise UsageError("--db chdb://PATH needs a directory")
        return Location("chdb", Path(rest).expanduser())
    if low.startswith("file://"):
        text = text[len("file://"):]
    if "://" in text:
        raise UsageError(f"--db {text!r}: unknown scheme; use a directory, "
                         "clickhouse://HOST:PORT/DB or chdb://PATH")
    return Location("embedded", Path(text).expanduser())


def _clickhouse(text: str) -> Location:
    u = urlsplit(text)
    secure = u.scheme.lower() == "clickhouses"
    try:
        port = u.port or (8443 if secure else 8123)
    except ValueError:
        raise UsageError(f"--db {text!r}: bad port") from None
    db = u.path.strip("/") or "fabricscope"
    if "/" in db or not db.replace("_", "").isalnum():
        raise UsageError(f"--db {text!r}: database name must be letters, digits and _")
    q = parse_qs(u.query)
    if "secure" in q:
        secure = q["secure"][0].lower() in ("1", "true", "yes")
    return Location("clickhouse", None, host=u.hostname or "localhost", port=port,
                    database=db, user=unquote(u.username) if u.username else None,
                    password=unquote(u.password) if u.password else None, secure=secure)
