"""Reading a Content-Security-Policy header in tests."""

from __future__ import annotations


def csp_directives(header: str) -> dict[str, list[str]]:
    """{"frame-ancestors": ["'self'", "https://app.example"], ...} from the header's text."""
    directives: dict[str, list[str]] = {}
    for part in header.split(";"):
        name, *sources = part.split()
        directives[name] = sources
    return directives
