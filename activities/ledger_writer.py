"""Group commit of key transitions: many keys' steps in one ledger transaction.

A batch activity works several keys at once and a worker runs several batches, so many one-key
transitions wait to be written at the same moment. Written one by one, each costs a thread hand-off
and a write transaction that reads and rewrites the incident's hash-chain head (SQLite serializes
them all anyway). Here they queue per incident, and one flusher writes whatever has queued in a
single ``Ledger.apply`` call: what arrives while a write runs goes into the next one (classic group
commit, no added delay).
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass

from keyrevoke.ledger import Ledger
from keyrevoke.ledger.store import Transition

#: Transitions in one transaction at most: bounds the time the write lock is held.
MAX_GROUP = 64


@dataclass(frozen=True)
class _Waiting:
    transition: Transition
    moved: asyncio.Future[bool]


class GroupCommitWriter:
    """Writes key transitions to the ledger in groups; each caller waits for its own commit.

    - ``apply`` returns only once the transaction holding its transition has committed: a key counts
      as done (and is heartbeated as done) only after its evidence is in the ledger.
    - If a group's write raises, every caller of that group gets the exception and nothing of the
      group is written (it is one transaction); the batch fails and its retry skips what is done.
    - A group never holds two transitions of the same key: a second one waits for the next group, so
      the key ids ``Ledger.apply`` returns map to one caller each, and a key's steps stay in order.
    - A caller that is cancelled stops waiting, but its transition is still written once queued
      (as it was when each write ran in its own thread): the venue step it records did happen. The
      other callers' writes are untouched.
    - A transition ``Ledger.apply`` refuses (an unknown field, no from-state) fails its whole group:
      the activities build none.

    Groups are per incident (each incident has its own hash chain); different incidents flush
    independently. Use from one event loop.
    """

    def __init__(self, ledger: Ledger, max_group: int = MAX_GROUP, actor: str = "keyrevoke") -> None:
        if max_group < 1:
            raise ValueError("max_group must be at least 1")
        self.ledger = ledger
        self.max_group = max_group
        self.actor = actor
        self._queues: dict[str, deque[_Waiting]] = {}
        self._flushers: dict[str, asyncio.Task[None]] = {}

    async def apply(self, incident_id: str, transition: Transition) -> bool:
        """Record ``transition`` with the others queued; True if the key moved (False: it was done)."""
        loop = asyncio.get_running_loop()
        waiting = _Waiting(transition, loop.create_future())
        self._queues.setdefault(incident_id, deque()).append(waiting)
        if incident_id not in self._flushers:
            self._flushers[incident_id] = loop.create_task(
                self._flush(incident_id), name=f"ledger group commit {incident_id}"
            )
        return await waiting.moved

    async def close(self) -> None:
        """Wait for the writes already queued (callers that went away included)."""
        flushers = list(self._flushers.values())
        if flushers:
            await asyncio.gather(*flushers, return_exceptions=True)

    def _take(self, queue: deque[_Waiting]) -> list[_Waiting]:
        """The next group: queue order, up to ``max_group``, and each key at most once."""
        group: list[_Waiting] = []
        keys: set[str] = set()
        while queue and len(group) < self.max_group:
            key_id = queue[0].transition.key_id
            if key_id in keys:
                break  # the key's next step goes first in the next group, after this one commits
            keys.add(key_id)
            group.append(queue.popleft())
        return group

    async def _flush(self, incident_id: str) -> None:
        queue = self._queues[incident_id]
        group: list[_Waiting] = []
        try:
            while queue:
                group = self._take(queue)
                transitions = [waiting.transition for waiting in group]
                try:
                    moved = set(await asyncio.to_thread(self.ledger.apply, incident_id, transitions, self.actor))
                except Exception as error:
                    for waiting in group:
                        if not waiting.moved.done():
                            waiting.moved.set_exception(error)
                else:
                    for waiting in group:
                        if not waiting.moved.done():
                            waiting.moved.set_result(waiting.transition.key_id in moved)
                group = []
        except BaseException:
            # The flusher itself was cancelled (the loop is closing): nobody may wait forever. The
            # group in flight may still commit in its thread; its callers cannot know, so they fail.
            for waiting in (*group, *queue):
                if not waiting.moved.done():
                    waiting.moved.set_exception(RuntimeError("the ledger writer stopped before the write ended"))
            queue.clear()
            raise
        finally:
            # No await between the queue running empty and here: a new transition starts a new flusher.
            del self._flushers[incident_id]
            if not queue:
                self._queues.pop(incident_id, None)
