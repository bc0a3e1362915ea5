"""Domain errors that services raise and every surface (API, modal, admin) turns into an answer.

Each has a machine-readable ``code``, a message a person can act on, and the HTTP status the
API answers with; ``fields`` names the inputs at fault where there are any.
"""

from __future__ import annotations


class DomainError(Exception):
    status = 422

    def __init__(self, message: str, *, code: str, fields: dict[str, str] | None = None):
        super().__init__(message)
        self.message = message
        self.code = code
        self.fields = fields or {}


class NotFound(DomainError):
    status = 404


class Conflict(DomainError):
    status = 409


class Invalid(DomainError):
    status = 422


class Unavailable(DomainError):
    """Someone we depend on (a provider) did not answer; the same request may work later."""

    status = 503

    def __init__(self, message: str, *, code: str, retry_after: int = 30):
        super().__init__(message, code=code)
        self.retry_after = retry_after
