"""The ledger: inventory, each key's state and evidence, and the per-incident event log."""

from keyrevoke.ledger.store import ImportResult, IncidentRecord, KeyStatus, Ledger, SealedKey, open_ledger

__all__ = ["ImportResult", "IncidentRecord", "KeyStatus", "Ledger", "SealedKey", "open_ledger"]
