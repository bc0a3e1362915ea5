"""A response's Content-Security-Policy when part of it is known only as the view runs.

The policy is ``CONTENT_SECURITY_POLICY`` in the settings, sent by django-csp's middleware.
django-csp changes it per view with decorators fixed at import time; these apply the same
decorators to one response, for sources that depend on the request (a tenant's origins).
"""

from __future__ import annotations

from csp.decorators import csp_replace, csp_update
from django.http import HttpResponseBase


def csp_response_update(response: HttpResponseBase, directives: dict[str, list[str]]):
    """Add sources to some directives of this response's policy."""
    return csp_update(directives)(lambda: response)()


def csp_response_replace(response: HttpResponseBase, directives: dict[str, list[str]]):
    """Replace some directives of this response's policy."""
    return csp_replace(directives)(lambda: response)()
