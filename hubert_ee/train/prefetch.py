"""Read the next batches on a thread while the current one trains.

The pretraining loop reads its audio in the main process; on a GPU a step is shorter than the
read, so the device waited for the disk. One background thread (soundfile and numpy release
the GIL while they work) keeps `depth` items ready; the order and the bytes are unchanged.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")

_DONE = object()


def prefetch(items: Iterator[T], load: Callable[[T], R], depth: int = 2) -> Iterator[tuple[T, R]]:
    """(item, load(item)) in the order of `items`, `load` running up to `depth` items ahead.

    An exception in `load` is raised by the consumer at that item. The thread is a daemon and
    stops at the next item once the consumer has dropped the iterator."""
    q: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def work() -> None:
        try:
            for item in items:
                if stop.is_set():
                    return
                q.put((item, load(item)))
        except BaseException as err:  # handed to the consumer
            q.put(err)
            return
        q.put(_DONE)

    threading.Thread(target=work, daemon=True, name="prefetch").start()
    try:
        while True:
            got = q.get()
            if got is _DONE:
                return
            if isinstance(got, BaseException):
                raise got
            yield got
    finally:
        stop.set()
        while not q.empty():  # unblock a worker waiting to put, so it sees `stop`
            q.get_nowait()
