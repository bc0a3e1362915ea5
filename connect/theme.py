"""The modal's theme: the session's own over the tenant's default over ours.

Colours and URLs were validated when the session or tenant was saved; here the theme only gains
the text colour that stays readable on the primary colour.
"""

from integrations.models import ConnectSession

DEFAULT_THEME = {
    "primary_color": "#2563eb",
    "sidepanel_background_color": "#0f172a",
    "sidepanel_text_color": "#f8fafc",
    "vault_name": "",
    "logo_url": "",
    "favicon_url": "",
    "privacy_url": "",
    "terms_url": "",
}


def _relative_luminance(colour: str) -> float:
    value = colour.lstrip("#")
    if len(value) == 3:
        value = "".join(part * 2 for part in value)
    channels = []
    for index in (0, 2, 4):
        c = int(value[index : index + 2], 16) / 255
        channels.append(c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4)
    red, green, blue = channels
    return 0.2126 * red + 0.7152 * green + 0.0722 * blue


def readable_text_colour(background: str) -> str:
    """White or near-black, whichever contrasts more with ``background`` (WCAG formula)."""
    try:
        luminance = _relative_luminance(background)
    except ValueError:
        return "#ffffff"
    contrast_white = 1.05 / (luminance + 0.05)
    contrast_black = (luminance + 0.05) / 0.05
    return "#ffffff" if contrast_white >= contrast_black else "#0f172a"


def session_theme(session: ConnectSession) -> dict[str, str]:
    theme = {**DEFAULT_THEME, **session.tenant.default_theme, **session.theme}
    theme["vault_name"] = theme["vault_name"] or session.tenant.name
    theme["primary_text_color"] = readable_text_colour(theme["primary_color"])
    return theme
