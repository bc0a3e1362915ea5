"""Writes for the app catalog, credentials, verification, flows and webhooks, by sub-domain."""
