"""The innermost retry layer: one venue request, retried by tenacity inside a batch activity.

Only errors the classification marks retryable are retried here, and a ban never is: a ban fails
the batch so that Temporal's retry policy waits it out (``next_retry_delay``) without holding a slot.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt
from tenacity.wait import wait_exponential_jitter

from activities.pacing import VenuePacer
from keyrevoke.errors import RateLimited, VenueBanned, VenueError

T = TypeVar("T")

_backoff = wait_exponential_jitter(multiplier=0.2, max=5.0, jitter=0.2)
MAX_IN_ACTIVITY_WAIT = 10.0


def _retryable(error: BaseException) -> bool:
    return isinstance(error, VenueError) and error.retryable and not isinstance(error, VenueBanned)


def _wait(state: RetryCallState) -> float:
    error = state.outcome.exception() if state.outcome else None
    if isinstance(error, RateLimited) and error.retry_after is not None:
        return min(error.retry_after, MAX_IN_ACTIVITY_WAIT)
    return float(_backoff(state))


async def call_venue(
    call: Callable[[], Awaitable[T]],
    limiter: VenuePacer,
    attempts: int,
    on_error: Callable[[VenueError], None] | None = None,
    urgent: bool = False,
    priority: int = 0,
) -> T:
    """Run ``call`` (one request) paced by ``limiter``, retrying retryable venue errors.

    ``on_error`` sees every venue error, retried or not (for metrics); ``urgent`` requests (revokes)
    take the venue's next slot ahead of the others waiting, and among equals the higher ``priority``.
    """
    async for attempt in AsyncRetrying(
        stop=stop_after_attempt(attempts), retry=retry_if_exception(_retryable), wait=_wait, reraise=True
    ):
        with attempt:
            try:
                async with limiter.request(urgent, priority):
                    return await call()
            except VenueError as error:
                if on_error is not None:
                    on_error(error)
                raise
    raise AssertionError("unreachable: tenacity either returns or re-raises")
