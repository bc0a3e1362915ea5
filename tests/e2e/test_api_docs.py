"""The API docs render offline: every request that would leave the machine is refused."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from tests.e2e.browser import expect

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

LOCAL_HOSTS = {"127.0.0.1", "localhost"}


def test_the_api_docs_render_with_no_request_leaving_the_machine(page, live_server):
    refused: list[str] = []

    def only_local(route):
        url = route.request.url
        if urlsplit(url).hostname in LOCAL_HOSTS or url.startswith(("data:", "blob:")):
            route.continue_()
        else:
            refused.append(url)
            route.abort()

    page.route("**/*", only_local)
    page.goto(f"{live_server.url}/api/v1/docs")

    # The first paint parses a 1.4 MB bundle: give a loaded machine time.
    expect(page.locator(".swagger-ui .info .title")).to_contain_text(
        "Connect portal API", timeout=60_000
    )
    expect(page.locator(".opblock-summary-path", has_text="/api/v1/sessions").first).to_be_visible()
    assert refused == []
