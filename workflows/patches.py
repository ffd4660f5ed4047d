"""Patch ids (``workflow.patched``) of every workflow, named once.

The server stores them in plain text, as markers and in the ``TemporalChangeVersion`` search
attribute; they name code paths and carry nothing of a key.
"""

from __future__ import annotations

#: Each venue's first batch is small and runs alone until probed.
SMALL_FIRST_BATCH = "small-first-batch"
#: Every control action (the start too) is verified against the registered operators by an activity.
SIGNED_ACTIONS = "signed-actions"
#: A confirm is checked against the ledger (escalated keys of its venue, venue waiting) before it is relayed.
CHECKED_CONFIRMATIONS = "checked-confirmations"
#: A venue waiting for the exchange takes confirmations for subsets of its keys, one after another.
BATCHED_CONFIRMATIONS = "batched-confirmations"

#: One notice per owner at the end of a venue's work, and again as escalated keys are confirmed.
OWNER_NOTICES = "owner-notices"

#: A batch activity has bounded attempts; then its keys are tried one by one, and one that still fails fails alone.
BOUNDED_BATCHES = "bounded-batches"
#: A stop (cancel, narrow) cancels the batches whose keys are not yet revoked and hands them back at once.
STOP_CANCELS_BATCHES = "stop-cancels-batches"
#: Control given while a venue workflow was being started reaches it once it has started.
CONTROL_DURING_START = "control-during-start"

PATCHES = (
    SMALL_FIRST_BATCH,
    SIGNED_ACTIONS,
    CHECKED_CONFIRMATIONS,
    BATCHED_CONFIRMATIONS,
    OWNER_NOTICES,
    BOUNDED_BATCHES,
    STOP_CANCELS_BATCHES,
    CONTROL_DURING_START,
)
