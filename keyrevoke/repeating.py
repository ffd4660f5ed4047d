"""An action repeated in the background while a block of code runs."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable


@contextlib.asynccontextmanager
async def repeating(action: Callable[[], object], every_seconds: float) -> AsyncIterator[None]:
    """Call ``action`` at once and then every ``every_seconds`` until the block ends.

    ``action`` runs on the event loop, so it must not block; the block's end cancels the loop and
    waits for it, so no call runs after this context is left.
    """

    async def loop() -> None:
        while True:
            action()
            await asyncio.sleep(every_seconds)

    task = asyncio.create_task(loop())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
