"""Launching Debian's chromium for the browser tests, with or without third-party cookies."""

from __future__ import annotations

import contextlib
import json
import tempfile
import time
from http.server import BaseHTTPRequestHandler
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
TIMEOUT_MS = 15_000
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
# Sets a cookie that a third-party context may only set when third-party cookies are allowed.
COOKIE_PROBE = "document.cookie = 'probe=1; SameSite=None; Secure; path=/'; document.cookie"


def cookie_blocking_context(playwright, *, block: bool, viewport=None):
    """A browser profile whose cookie setting blocks third-party cookies (or allows them)."""
    profile = Path(tempfile.mkdtemp(prefix="portal-chromium-"))
    (profile / "Default").mkdir()
    # Chromium's "Block third-party cookies" setting (Settings > Privacy > Third-party cookies).
    preferences = {
        "profile": {"cookie_controls_mode": 1 if block else 0, "block_third_party_cookies": block}
    }
    (profile / "Default" / "Preferences").write_text(json.dumps(preferences))
    context = playwright.chromium.launch_persistent_context(
        str(profile),
        executable_path=CHROMIUM,
        args=ARGS,
        headless=True,
        viewport=viewport or {"width": 1000, "height": 860},
    )
    context.set_default_timeout(TIMEOUT_MS)
    return context


def expect(locator):
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect(locator)


@contextlib.contextmanager
def key_pressed_on(locator, key: str = "Escape"):
    """Presses ``key`` on a control of the modal whose action takes the modal away (Escape, or
    Enter on its close button), and releases it when the block has seen the modal go.

    Chromium answers a key event only once the frame that had the focus has handled it. When the
    modal closes on the key's press and its frame (or popup) is gone before the release arrives,
    that answer never comes: ``Locator.press``/``click`` then wait forever or fail with
    ``TargetClosedError``, although the modal closed as it should. So the press goes to the
    control; the release goes, after the block, to wherever the focus is then, as a real
    keyboard's would. Enter activates a button on its press, as a click would. A popup closes
    itself, so the release has nowhere to go."""
    page = locator.page
    opener = page.opener()
    locator.focus()
    page.keyboard.down(key)
    yield
    if opener is None:
        page.keyboard.up(key)
        return
    deadline = time.monotonic() + TIMEOUT_MS / 1000
    while not page.is_closed():  # the opener's event loop carries the news
        assert time.monotonic() < deadline, "the modal's window did not close"
        opener.wait_for_timeout(50)


class HostPage(BaseHTTPRequestHandler):
    """The embedding product, on another site (127.0.0.1 while the modal is on localhost): it
    serves ``HostPage.body``, which a test sets (the ``host_server`` fixture runs it)."""

    body = b""

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args) -> None:
        pass
