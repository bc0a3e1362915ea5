"""The demo's landing page at / shows where everything is and opens a fresh session."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import pytest

from integrations.models import ConnectSession
from integrations.selectors import connect_session_for_token
from sandbox.demo import demo_seed

pytestmark = pytest.mark.django_db


def test_the_landing_page_links_the_admin_a_session_the_host_example_the_docs_and_the_sandbox(
    client, tmp_path
):
    demo_seed(base_url="http://127.0.0.1:8000", var_dir=tmp_path)

    response = client.get("/")

    assert response.status_code == 200
    body = response.content.decode()
    for href in (
        'href="/admin/"',
        'action="/demo/session/"',
        "/sandbox/host-example/",
        'href="/api/v1/docs"',
        'href="/sandbox/"',
    ):
        assert href in body, href


def test_the_fresh_session_button_opens_a_new_session_for_the_demo_user(client, tmp_path):
    seed = demo_seed(base_url="http://127.0.0.1:8000", var_dir=tmp_path)
    before = ConnectSession.objects.count()

    response = client.post("/demo/session/")

    assert response.status_code == 302
    assert ConnectSession.objects.count() == before + 1
    path = response["Location"].split("127.0.0.1:8000", 1)[-1]
    opened = client.get(path)
    assert opened.status_code == 200
    token = path.split("/connect/", 1)[1].split("/", 1)[0]
    assert token in opened.content.decode()
    assert connect_session_for_token(token=token).end_user == seed.session.session.end_user


def test_before_the_demo_is_seeded_the_landing_page_says_how_to_seed_it(client):
    response = client.get("/")

    assert response.status_code == 200
    assert "run <code>make demo</code> first" in response.content.decode()
    assert client.post("/demo/session/").status_code == 404


def test_the_landing_page_makes_a_single_use_handoff_link_that_opens_the_modal(client, tmp_path):
    demo_seed(base_url="http://127.0.0.1:8000", var_dir=tmp_path)

    response = client.post("/demo/handoff/")

    assert response.status_code == 200
    link = re.search(r'href="([^"]+)" data-handoff-link', response.content.decode()).group(1)
    session = ConnectSession.objects.filter(source=ConnectSession.Source.HANDOFF).latest(
        "created_at"
    )
    assert session.single_use
    opened = client.get(urlsplit(link).path)
    assert opened.status_code == 200
    assert "You are connecting accounts for Ada Lovelace at Acme Demo." in opened.content.decode()
