"""Which account field each venue's revoke call names a key's owner by.

Venues identify the account that holds a key in one of two ways: a numeric user id (Binance's broker
``subAccountId``, Bybit's ``subMemberId``, Gate's ``user_id``) or a sub-account name (OKX's
``subAcct``, KuCoin's ``subName``, MEXC's ``subAccount``). The inventory carries both as
``account_id`` and ``account_name``; this table says which one a venue and method need, and which one
an old inventory's (or ledger's) single ``account`` column meant.
"""

from __future__ import annotations

from typing import Final, Literal

AccountField = Literal["account_id", "account_name"]

ACCOUNT_ID: Final = "account_id"
ACCOUNT_NAME: Final = "account_name"

#: What the old single ``account`` value was at each venue: the field it fills in a migration.
LEGACY_ACCOUNT_FIELD: Final[dict[str, AccountField]] = {
    "binance": "account_id",  # broker subAccountId
    "bybit": "account_id",  # subMemberId, the sub-account's uid
    "gate": "account_id",  # sub_accounts/{user_id}
    "okx": "account_name",  # subAcct
    "kucoin": "account_name",  # subName
    "mexc": "account_name",  # subAccount
    "kraken": "account_name",  # no revoke call: a label for the exchange's security team
    "coinbase": "account_name",  # no revoke call: the portfolio's name
}

#: The field a revoke call sends, per (venue, method); a method absent here sends neither. Bybit's
#: master delete (``POST /v5/user/delete-sub-api``) names the key alone: the sub-account's uid
#: (``subMemberId`` in Bybit's listing calls) is kept as ``account_id`` but not needed.
_NEEDED: Final[dict[tuple[str, str], tuple[AccountField, str]]] = {
    ("binance", "broker"): ("account_id", "subAccountId"),
    ("gate", "sub"): ("account_id", "user_id"),
    ("okx", "sub"): ("account_name", "subAcct"),
    ("kucoin", "sub"): ("account_name", "subName"),
    ("mexc", "sub"): ("account_name", "subAccount"),
}


def needed_field(venue: str, method: str) -> AccountField | None:
    """The account field revoking a key of ``venue`` by ``method`` needs; None when it needs neither."""
    entry = _NEEDED.get((venue, method))
    return entry[0] if entry else None


def venue_parameter(venue: str, method: str) -> str:
    """The venue's own name for the parameter that carries the needed field (for messages)."""
    entry = _NEEDED.get((venue, method))
    return entry[1] if entry else ""


def legacy_field(venue: str) -> AccountField:
    """The field an old single ``account`` value fills at ``venue`` (a name where the venue is unknown)."""
    return LEGACY_ACCOUNT_FIELD.get(venue, "account_name")


def account_of(venue: str, method: str, account_id: str, account_name: str) -> str:
    """The one account value to show for a key: the field its venue uses, else whichever is set."""
    field = needed_field(venue, method) or legacy_field(venue)
    primary = account_id if field == "account_id" else account_name
    return primary or account_name or account_id
