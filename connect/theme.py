"""The modal's theme: the session's own over the tenant's default over ours, in light, dark or
the browser's choice (``color_scheme``), with the tenant's colours adapted so that text stays at
WCAG AA (4.5:1) on the backgrounds it sits on, in both schemes.

Colours were validated (``#rgb`` or ``#rrggbb``) when the session or tenant was saved; the CSS
this module writes is built from them alone.
"""

from __future__ import annotations

import functools

from integrations.models import ConnectSession

AA = 4.5
COLOR_SCHEMES = ("light", "dark", "auto")

DEFAULT_THEME = {
    "primary_color": "#2563eb",
    "sidepanel_background_color": "#0f172a",
    "sidepanel_text_color": "#f8fafc",
    "vault_name": "",
    "logo_url": "",
    "favicon_url": "",
    "privacy_url": "",
    "terms_url": "",
    "color_scheme": "auto",
}

# The backgrounds the accent colour is read on in each scheme (modal.css: --bg and --surface).
LIGHT_BACKGROUNDS = ("#ffffff", "#f8fafc")
DARK_BACKGROUNDS = ("#0f172a", "#1e293b")
DARK_TEXT = "#0f172a"
LIGHT_TEXT = "#ffffff"


def _rgb(colour: str) -> tuple[int, int, int]:
    value = colour.lstrip("#")
    if len(value) == 3:
        value = "".join(part * 2 for part in value)
    if len(value) != 6:
        raise ValueError(f"Not a colour: {colour!r}")
    return int(value[0:2], 16), int(value[2:4], 16), int(value[4:6], 16)


def _hex(rgb: tuple[float, float, float]) -> str:
    return "#" + "".join(f"{max(0, min(255, round(c))):02x}" for c in rgb)


def relative_luminance(colour: str) -> float:
    """WCAG 2's relative luminance of an sRGB colour."""
    channels = []
    for channel in _rgb(colour):
        c = channel / 255
        channels.append(c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4)
    red, green, blue = channels
    return 0.2126 * red + 0.7152 * green + 0.0722 * blue


def contrast_ratio(first: str, second: str) -> float:
    """WCAG 2's contrast ratio, from 1 (the same) to 21 (black on white)."""
    lighter, darker = sorted((relative_luminance(first), relative_luminance(second)), reverse=True)
    return (lighter + 0.05) / (darker + 0.05)


def readable_text_colour(background: str) -> str:
    """White or near-black, whichever contrasts more with ``background``."""
    try:
        white, dark = contrast_ratio(background, LIGHT_TEXT), contrast_ratio(background, DARK_TEXT)
    except ValueError:
        return LIGHT_TEXT
    return LIGHT_TEXT if white >= dark else DARK_TEXT


def _mix(colour: str, towards: str, amount: float) -> str:
    a, b = _rgb(colour), _rgb(towards)
    return _hex(tuple(x + (y - x) * amount for x, y in zip(a, b, strict=True)))


@functools.lru_cache(maxsize=256)  # every modal render asks; the answer depends on these alone
def accent_for(colour: str, backgrounds: tuple[str, ...], minimum: float = AA) -> str:
    """``colour`` as it is when it reads at ``minimum`` on every background, else the nearest
    shade (mixed towards black on light backgrounds, towards white on dark ones) that does."""
    dark_backgrounds = relative_luminance(backgrounds[0]) < 0.18
    target = "#ffffff" if dark_backgrounds else "#000000"
    for step in range(21):
        candidate = _mix(colour, target, step / 20)
        if all(contrast_ratio(candidate, bg) >= minimum for bg in backgrounds):
            return candidate
    return target


def text_on(background: str, preferred: str) -> str:
    """``preferred`` when it reads at AA on ``background``, else white or near-black."""
    if contrast_ratio(background, preferred) >= AA:
        return preferred
    return readable_text_colour(background)


def session_theme(session: ConnectSession) -> dict[str, str]:
    """The theme the session's pages are drawn with (a new dict, the caller's to change)."""
    tenant = session.tenant
    try:
        key = (
            tuple(sorted(tenant.default_theme.items())),
            tuple(sorted(session.theme.items())),
            tenant.name,
        )
        return dict(_theme_from(*key))
    except TypeError:  # a value that cannot be a key (never one a validated theme holds)
        return _theme({**tenant.default_theme, **session.theme}, tenant.name)


@functools.lru_cache(maxsize=256)  # every modal page asks; the answer depends on these alone
def _theme_from(defaults: tuple, own: tuple, tenant_name: str) -> dict[str, str]:
    return _theme({**dict(defaults), **dict(own)}, tenant_name)


def _theme(given: dict, tenant_name: str) -> dict[str, str]:
    theme = {**DEFAULT_THEME, **given}
    theme["vault_name"] = theme["vault_name"] or tenant_name
    if theme["color_scheme"] not in COLOR_SCHEMES:
        theme["color_scheme"] = "auto"
    light = accent_for(theme["primary_color"], LIGHT_BACKGROUNDS)
    dark = accent_for(theme["primary_color"], DARK_BACKGROUNDS)
    side_bg = theme["sidepanel_background_color"]
    theme["primary_text_color"] = readable_text_colour(light)
    theme["sidepanel_text_color"] = text_on(side_bg, theme["sidepanel_text_color"])
    # light-dark() picks the value of the scheme in force (modal.css sets color-scheme).
    theme["css"] = (
        ":root{"
        f"--primary:light-dark({light},{dark});"
        f"--on-primary:light-dark({readable_text_colour(light)},{readable_text_colour(dark)});"
        f"--side-bg:{side_bg};--side-fg:{theme['sidepanel_text_color']};"
        "}"
    )
    return theme
