"""The browser tests' shared fixtures: one chromium per module, a fresh page per test, and the
sandbox world under live_server. A module that needs another setup defines its own."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from http.server import ThreadingHTTPServer

import pytest

from tests.connect.helpers import World, build_world
from tests.e2e.browser import ARGS, CHROMIUM, TIMEOUT_MS, HostPage

# Playwright's sync API runs an event loop in this thread; the test's own database work is
# synchronous and safe.
os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"


@pytest.fixture(scope="module")
def playwright() -> Iterator:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as instance:
        yield instance


@pytest.fixture(scope="module")
def browser(playwright):
    browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
    yield browser
    browser.close()


@pytest.fixture
def world(live_server, settings, transactional_db) -> World:
    settings.PORTAL_BASE_URL = live_server.url
    return build_world(live_server.url)


@pytest.fixture
def page(browser, transactional_db):
    # After the database fixture, so torn down before it: a page still polling (an open sign-in
    # attempt) would otherwise race the flush that empties the tables after the test.
    context = browser.new_context(viewport={"width": 1000, "height": 820})
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    yield page
    context.close()


@pytest.fixture
def host_server():
    """A local site for the embedding product's page (``HostPage.body``)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), HostPage)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
