"""Ending an event loop that runs on a thread of its own (the call's, telemetry's)."""

from __future__ import annotations

import asyncio
import contextlib


def finish_tasks(loop: asyncio.AbstractEventLoop) -> None:
    """Cancel what is still running on the stopped `loop`, let it unwind, close its async
    generators: after this the loop can be closed without 'Task was destroyed' warnings."""
    pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
    for task in pending:
        task.cancel()
    if pending:
        loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
    loop.run_until_complete(loop.shutdown_asyncgens())


async def cancel_and_wait(task: asyncio.Task | None) -> None:
    """Cancel a background task and wait until it has unwound (None: nothing to do)."""
    if task is None:
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
