"""Activity names, timeouts and retry policies, named once for every workflow that calls them.

Workflows call activities by name so that they never import activity code (and with it ccxt).
"""

from __future__ import annotations

from datetime import timedelta

from temporalio.common import RetryPolicy

# Control activities: the ledger, on the control task queue.
PLAN_INCIDENT = "plan_incident"
LOAD_PAGE = "load_page"
LOAD_STATE_PAGE = "load_state_page"
SUMMARIZE_INCIDENT = "summarize_incident"
RECORD_EVENT = "record_event"
VERIFY_ACTION = "verify_action"  # a control action's signature, against the registered operators
CHECK_CONFIRMATION = "check_confirmation"  # are the keys a confirm lists escalated keys of its venue?
NOTIFY_OWNERS = "notify_owners"  # one notice per owner, through the platform hook and by mail
GIVE_UP_KEYS = "give_up_keys"  # keys whose step failed every attempt, alone too: failed, with the last error

# Batch activities: a bounded set of keys, on the venue's own task queue.
PREPARE_BATCH = "prepare_batch"  # freeze, then the baseline probe
REVOKE_BATCH = "revoke_batch"
VERIFY_BATCH = "verify_batch"
COMPENSATE_BATCH = "compensate_batch"  # unfreeze what was not revoked, after a cancel or a narrowing
WRITE_ESCALATION_PACKET = "write_escalation_packet"  # for the exchange's security team
PROBE_ESCALATED_BATCH = "probe_escalated_batch"  # did the exchange revoke them on its side yet?
ACCEPT_EXCHANGE_CONFIRMATION = "accept_exchange_confirmation"

# Errors that no retry will fix; raised as ApplicationError types by the activities.
NON_RETRYABLE_ERRORS = ["InputError", "ConfigurationError", "SecretStoreError", "UnsupportedVenue", "Misconfigured"]

# A page, an event or a count takes milliseconds; this is also how long a control activity held by a
# worker that died waits before another worker retries it, so it is short.
CONTROL_TIMEOUT = timedelta(seconds=10)
# Planning copies the whole scope into the incident in one transaction: seconds at 100,000 keys.
PLAN_TIMEOUT = timedelta(minutes=5)
# A round of owner notices pages through a venue's keys and calls the hook once per owner: minutes at
# 100,000 keys. It heartbeats, so a dead worker is noticed in a minute.
NOTICE_TIMEOUT = timedelta(hours=2)
NOTICE_HEARTBEAT = timedelta(seconds=60)
CONTROL_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    maximum_interval=timedelta(seconds=30),
    non_retryable_error_types=NON_RETRYABLE_ERRORS,
)

# A batch paces its requests to the venue's rate, so it may take a while; the heartbeat, not the
# start-to-close timeout, is what notices a dead worker.
BATCH_TIMEOUT = timedelta(minutes=10)
BATCH_HEARTBEAT = timedelta(seconds=10)
BATCH_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=60),
    non_retryable_error_types=NON_RETRYABLE_ERRORS,
)
