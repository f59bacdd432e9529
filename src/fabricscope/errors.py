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


class UsageError(FabricscopeError):
    """A bad option value or combination."""


class NotFound(FabricscopeError):
    """The query found nothing (exit code 1)."""

    exit_code = 1
