"""Opening the ledger the way the settings say."""

from __future__ import annotations

from keyrevoke.crypto import SecretBox, load_kek
from keyrevoke.ledger.store import Ledger, open_ledger
from keyrevoke.settings import Settings


def ledger_from_settings(settings: Settings) -> Ledger:
    """The ledger at ``settings``' URL, with the KEK from the environment or the KEK file.

    Only the embedded default (no KEK given anywhere) creates a KEK file, under the state directory.
    """
    env_kek = settings.ledger_kek.get_secret_value() if settings.ledger_kek else None
    create = env_kek is None and settings.ledger_kek_file is None
    kek = load_kek(env_kek, settings.resolved_kek_file(), create=create)
    return open_ledger(settings.resolved_ledger_url(), SecretBox(kek))
