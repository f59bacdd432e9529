"""``Background``: a writer's calls run on a thread of their own, one batch in flight.

The file sinks (``records/ipc.py``, ``records/parquet.py``) hand their encoding and
writing to it while the caller decodes the next batch: pyarrow releases the GIL while it
compresses and writes, so on two cores the two overlap. At most ``depth`` items wait
(one decoder batch is about 4 MB of columns). An exception on the thread is kept and
raised (once) by the caller's next ``put`` or by ``close``; after one, items are taken
and dropped (the file is broken: nothing more is written), so the caller never blocks.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from typing import Any


class Background:
    """Run ``fn(item)`` for every ``put(item)``, in order, on one thread."""

    def __init__(self, fn: Callable[[Any], None], *, name: str, depth: int = 1) -> None:
        self._fn = fn
        self._error: BaseException | None = None
        self._failed = False  # stays set: after a failed write nothing more is written
        self._queue: queue.Queue[tuple[Any] | None] = queue.Queue(maxsize=depth)
        self._thread = threading.Thread(target=self._drain, name=name, daemon=True)
        self._thread.start()
        self._closed = False

    def _drain(self) -> None:
        while (item := self._queue.get()) is not None:
            if not self._failed:
                try:
                    self._fn(item[0])
                except BaseException as exc:  # handed to the caller's thread
                    self._failed = True
                    self._error = exc

    def raise_error(self) -> None:
        """Raise (once) what the thread failed with, if anything."""
        if self._error is not None:
            exc, self._error = self._error, None
            raise exc

    def put(self, item: Any) -> None:
        self.raise_error()
        self._queue.put((item,))

    def close(self) -> None:
        """Wait for every item to be done; raise the thread's error, if any."""
        if not self._closed:
            self._closed = True
            self._queue.put(None)
            self._thread.join()
        self.raise_error()
