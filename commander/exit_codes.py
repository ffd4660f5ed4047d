"""The exit codes of every ``keyrevoke`` command, so that scripts and people can act on them.

| code | meaning |
| ---- | ------- |
| 0    | done: the incident ended and every key is confirmed dead or closed by a person |
| 2    | refused: bad input, a failed preflight, or an action the incident refuses |
| 3    | the incident ended, but keys may still work: act on them (the summary says how) |
| 4    | still running, or the request waits for something (a worker) that is not there |
| 5    | Temporal or the ledger cannot be reached |
| 130  | interrupted (Ctrl-C) |
"""

from __future__ import annotations

from keyrevoke.states import Measures

OK = 0
REFUSED = 2
KEYS_MAY_STILL_WORK = 3
NOT_FINISHED = 4
UNREACHABLE = 5
INTERRUPTED = 130

#: Workflow statuses after which the incident does nothing more on its own.
ENDED_STATUSES = frozenset({"completed", "failed", "canceled", "terminated", "timed_out"})


def incident_exit_code(workflow_status: str, measures: Measures) -> int:
    """The exit code of a view of one incident: 0 only when it has ended and no key may still work."""
    if workflow_status not in ENDED_STATUSES:
        return NOT_FINISHED
    return OK if measures.safe and measures.total > 0 else KEYS_MAY_STILL_WORK
