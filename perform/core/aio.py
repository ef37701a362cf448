"""Small asyncio helpers the show's parts share: threads that may never return, cancelling."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import threading
from collections.abc import Callable
from typing import Any, TypeVar

log = logging.getLogger("perform")
T = TypeVar("T")


def in_daemon_thread(function: Callable[..., T], *args: Any) -> asyncio.Future[T]:
    """Like `asyncio.to_thread`, but a call that never returns cannot hold up the exit."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def settle(outcome: Callable[[], None]) -> None:
        if not future.done():
            outcome()

    def work() -> None:
        try:
            result = function(*args)
        except BaseException as exc:
            outcome = functools.partial(future.set_exception, exc)
        else:
            outcome = functools.partial(future.set_result, result)
        with contextlib.suppress(RuntimeError):  # the loop is gone: nobody is waiting
            loop.call_soon_threadsafe(settle, outcome)

    threading.Thread(target=work, name="perform-load", daemon=True).start()
    return future


async def join_thread(thread: threading.Thread, timeout: float = 2.0) -> None:
    await asyncio.to_thread(thread.join, timeout)
    if thread.is_alive():
        log.warning("%s is stuck (a patch that never returns?); leaving it behind", thread.name)


async def cancel(task: asyncio.Task[Any]) -> None:
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
