"""Venue timing hints (Retry-After and reset timestamps) are read once, at the edge, into sane waits."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest

from activities.batches import batch_failure
from activities.venues.answers import LONGEST_HINT_SECONDS, seconds, until
from keyrevoke.errors import RateLimited


@pytest.mark.parametrize(
    ("header", "wait"),
    [("3", 3.0), ("0.5", 0.5), ("-4", 0.0), ("soon", None), (None, None), ("nan", None)],
)
def test_a_retry_after_header_reads_as_seconds(header: str | None, wait: float | None) -> None:
    assert seconds(header) == wait


@pytest.mark.parametrize("header", ["inf", "1e300", str(10 * LONGEST_HINT_SECONDS)])
def test_an_absurd_retry_after_is_capped_and_still_makes_a_retry_delay(header: str) -> None:
    wait = seconds(header)
    assert wait == LONGEST_HINT_SECONDS
    failure = batch_failure(RateLimited("binance", "429", wait))
    assert failure.next_retry_delay == timedelta(seconds=LONGEST_HINT_SECONDS)


def test_a_reset_timestamp_reads_in_seconds_or_milliseconds() -> None:
    in_ten = time.time() + 10
    assert 5 < (until(str(in_ten)) or 0) <= 10
    assert 5 < (until(str(int(in_ten * 1000))) or 0) <= 10
    assert until(str(time.time() - 60)) == 0.0
    assert until("inf") == LONGEST_HINT_SECONDS
    assert until("nan") is None
