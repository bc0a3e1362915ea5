"""Writes for tenants, end users, connect sessions and credentials, split by sub-domain."""
