"""The theme's colours: WCAG contrast computed in Python, and a tenant's brand colour adapted so
text stays at AA (4.5:1) in light and in dark."""

import pytest

from connect.theme import (
    DARK_BACKGROUNDS,
    LIGHT_BACKGROUNDS,
    accent_for,
    contrast_ratio,
    readable_text_colour,
    session_theme,
    text_on,
)
from integrations.services.connect_sessions import connect_session_create


def test_contrast_ratio_matches_wcag_reference_values():
    assert contrast_ratio("#000000", "#ffffff") == pytest.approx(21.0)
    assert contrast_ratio("#ffffff", "#ffffff") == pytest.approx(1.0)
    assert contrast_ratio("#777777", "#ffffff") == pytest.approx(4.48, abs=0.01)
    assert contrast_ratio("#2563eb", "#ffffff") == pytest.approx(5.17, abs=0.01)
    assert contrast_ratio("#fff", "#000") == contrast_ratio("#000", "#fff")


@pytest.mark.parametrize(
    "brand", ["#facc15", "#2563eb", "#000000", "#ffffff", "#ff0000", "#0f766e", "#777", "#ec4899"]
)
def test_the_accent_reads_at_aa_on_both_schemes_backgrounds_and_its_text_on_it(brand):
    for backgrounds in (LIGHT_BACKGROUNDS, DARK_BACKGROUNDS):
        accent = accent_for(brand, backgrounds)
        assert all(contrast_ratio(accent, bg) >= 4.5 for bg in backgrounds), (brand, accent)
        assert contrast_ratio(accent, readable_text_colour(accent)) >= 4.5


def test_a_brand_colour_that_already_passes_is_kept():
    assert accent_for("#1d4ed8", LIGHT_BACKGROUNDS) == "#1d4ed8"
    assert accent_for("#facc15", DARK_BACKGROUNDS) == "#facc15"
    assert accent_for("#facc15", LIGHT_BACKGROUNDS) != "#facc15"


def test_side_panel_text_is_replaced_only_when_it_would_not_read():
    assert text_on("#0f172a", "#f8fafc") == "#f8fafc"
    assert text_on("#ffffff", "#eeeeee") == "#0f172a"


def test_the_session_theme_carries_the_scheme_and_css_from_validated_colours(tenant, end_user):
    session = connect_session_create(
        tenant=tenant,
        end_user=end_user,
        theme={"primary_color": "#facc15", "color_scheme": "dark"},
    ).session
    theme = session_theme(session)
    assert theme["color_scheme"] == "dark"
    assert theme["css"].startswith(":root{--primary:light-dark(#")
    assert "<" not in theme["css"] and "'" not in theme["css"]


def test_an_unknown_colour_scheme_is_refused_when_the_session_is_made(tenant, end_user):
    from core.errors import Invalid

    with pytest.raises(Invalid, match="color_scheme"):
        connect_session_create(tenant=tenant, end_user=end_user, theme={"color_scheme": "sepia"})
