"""The operator check on the control queue: does a control action carry a registered operator's signature?"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from temporalio import activity
from temporalio.exceptions import ApplicationError

from keyrevoke.errors import ConfigurationError
from keyrevoke.models import Operator, VerifyActionRequest
from keyrevoke.operators import ActionRefused, operators_for, verify_action
from keyrevoke.settings import Settings
from workflows import options


class OperatorActivities:
    """Verifies signed actions against the registry the worker's settings name (read on every action,
    so that registering or removing an operator needs no restart)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @activity.defn(name=options.VERIFY_ACTION)
    async def verify_action(self, request: VerifyActionRequest) -> Operator:
        """The registered operator who signed the request; a refusal is non-retryable, with its reason."""
        try:
            operators = await asyncio.to_thread(operators_for, self.settings)
            # Fresh when Temporal took it, even if no worker could check it then; a server clock ahead
            # of this one (a time-skipping test server) does not age it either.
            now = datetime.now(UTC)
            if request.received_at:
                now = min(now, datetime.fromisoformat(request.received_at))
            return verify_action(
                operators, request, timedelta(seconds=self.settings.operator_signature_max_age_seconds), now
            )
        except ActionRefused as refused:
            raise ApplicationError(str(refused), type="ActionRefused", non_retryable=True) from None
        except ConfigurationError as error:
            # The worker's own registry is broken: say so to the commander rather than retry forever.
            reason = f"the operators file: {error}"
            raise ApplicationError(reason, type="ConfigurationError", non_retryable=True) from None
