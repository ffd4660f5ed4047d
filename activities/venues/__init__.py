"""Venue adapters, one file per venue, each mapping keyrevoke's probe and revoke onto a venue's API."""
