"""Activities: every side effect of a mass revoke (ledger, venues, platform hook) lives here."""
