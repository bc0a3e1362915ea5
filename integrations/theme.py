"""The modal's theme: the session's own over the tenant's default over ours."""

from accounts.models import ConnectSession

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


def session_theme(session: ConnectSession) -> dict[str, str]:
    theme = {**DEFAULT_THEME, **session.tenant.default_theme, **session.theme}
    theme["vault_name"] = theme["vault_name"] or session.tenant.name
    return theme
