"""Opening the ledger the way the settings say."""

from __future__ import annotations

from keyrevoke.crypto import SecretBox, load_kek
from keyrevoke.errors import ConfigurationError
from keyrevoke.ledger.store import Ledger, open_ledger
from keyrevoke.settings import Settings


def ledger_from_settings(settings: Settings) -> Ledger:
    """The ledger at ``settings``' URL, with the KEK from the environment or the KEK file.

    Only the embedded default (no KEK given anywhere, ``KEYREVOKE_EMBEDDED`` true) creates a KEK file,
    under the state directory; outside the embedded set-up the ledger URL must be given too.
    """
    if not settings.embedded and not settings.ledger_url:
        raise ConfigurationError(
            "no ledger: set KEYREVOKE_LEDGER_URL (KEYREVOKE_EMBEDDED=false never falls back to a local SQLite file)"
        )
    env_kek = settings.ledger_kek.get_secret_value() if settings.ledger_kek else None
    create = settings.embedded and env_kek is None and settings.ledger_kek_file is None
    kek = load_kek(env_kek, settings.resolved_kek_file(), create=create)
    return open_ledger(settings.resolved_ledger_url(), SecretBox(kek))
