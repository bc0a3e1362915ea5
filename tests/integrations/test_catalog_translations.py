"""The catalog's app descriptions in the modal's seven other languages: every catalog and
sandbox app's description has a translation (``integrations/locale``), the committed .mo says
the same, and only catalog apps are translated (a tenant's own app keeps its words)."""

from __future__ import annotations

import gettext
import tomllib
from pathlib import Path

import pytest
from django.utils import translation

from integrations.services.catalog import CATALOG_PATH
from sandbox.catalog import _definitions
from tests import factories
from tests.connect.test_translations import LANGUAGES, parse_po

LOCALE = Path(__file__).resolve().parents[2] / "integrations" / "locale"


def _descriptions() -> list[str]:
    catalog = tomllib.loads(CATALOG_PATH.read_text(encoding="utf-8"))["apps"]
    sandbox = _definitions("http://testserver").values()
    found = [app["description"] for app in catalog] + [app["description"] for app in sandbox]
    assert len(found) >= 19 and all(found)
    return found


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_catalog_description_is_translated_and_compiled(language):
    folder = LOCALE / language / "LC_MESSAGES"
    po = {entry["msgid"]: entry["msgstr"]["0"] for entry in parse_po(folder / "django.po")}
    with open(folder / "django.mo", "rb") as handle:
        compiled = gettext.GNUTranslations(handle)

    for description in _descriptions():
        assert po.get(description, "").strip(), f"{language}: no translation of {description!r}"
        assert po[description] != description, f"{language}: {description!r} left in English"
        assert compiled.gettext(description) == po[description], "run msgfmt (compilemessages)"


@pytest.mark.django_db
def test_catalog_apps_show_their_description_in_the_active_language(tenant):
    stripe = factories.make_api_key_app(
        slug="stripe-like", description="Payments, customers and subscriptions."
    )
    own = factories.make_api_key_app(
        slug="own-app", tenant=tenant, description="Payments, customers and subscriptions."
    )

    with translation.override("fr"):
        assert stripe.shown_description == "Paiements, clients et abonnements."
        assert own.shown_description == "Payments, customers and subscriptions."
    with translation.override("ja"):
        assert stripe.shown_description == "決済、顧客、サブスクリプション。"
    assert stripe.shown_description == "Payments, customers and subscriptions."
