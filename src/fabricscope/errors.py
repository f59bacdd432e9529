"""Errors that reach the user as a one-line message and exit code 2 (usage/input)."""

from __future__ import annotations


class FabricscopeError(Exception):
    """Base class: an error with a one-line, user-facing message."""

    exit_code = 2


class InputError(FabricscopeError):
    """Bad input data: names the file and, where known, the byte offset or field."""

    def __init__(self, message: str, *, path: str | None = None, offset: int | None = None,
                 field: str | None = None) -> None:
        self.path = path
        self.offset = offset
        self.field = field
        where = []
        if path is not None:
            where.append(path)
        if offset is not None:
            where.append(f"offset {offset}")
        if field is not None:
            where.append(f"field {field}")
        prefix = ": ".join([", ".join(where)]) + ": " if where else ""
        super().__init__(prefix + message)


class OutputError(FabricscopeError):
    """The output cannot be written (a missing directory, no permission, a full disk):
    names the file."""

    def __init__(self, path: str, exc: BaseException) -> None:
        import os

        errno = getattr(exc, "errno", None)
        why = os.strerror(errno) if errno else (str(exc).strip().splitlines() or [""])[0]
        super().__init__(f"cannot write {path}: {why or type(exc).__name__}")


class UsageError(FabricscopeError):
    """A bad option value or combination."""


class NotFound(FabricscopeError):
    """The query found nothing (exit code 1)."""

    exit_code = 1
