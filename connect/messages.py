"""Every sentence the modal's flows say to an end user, by code, ready for translation.

A message says what happened and what to do next. ``say(code, **values)`` formats one in the
active language; the placeholders are the values each code documents by its use.
"""

from __future__ import annotations

from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _

from integrations.services.verification import Connection, ConnectKind

MESSAGES: dict[str, Promise] = {
    # Why the modal does not open (the session error page's title).
    "session_missing": _("This page needs a connect session, and none was given."),
    "session_unknown": _("This link is not a valid connect session. It may have been altered."),
    "session_expired": _("This connect session has expired."),
    "session_revoked": _("This connect session has been closed."),
    "session_not_from_window": _("This action must come from the connect window itself."),
    # A single-use hand-off link, once an account has been connected through it.
    "session_spent": _("This link has already been used."),
    "session_spent_detail": _(
        "It could be used once, and an account has been connected through it. If you did "
        "that, there is nothing more to do. To connect another account, ask for a new link."
    ),
    "handoff_spent": _(
        "This link has already been used to connect an account. To connect another one, ask "
        "for a new link."
    ),
    # What the sign-in window says while the provider's page loads (modal.js).
    "popup_title": _("Connecting {app}…"),
    "popup_opening": _("Opening {app}…"),
    # Starting a connection.
    "already_connected": _(
        "Your {app} account {account} is already connected. Reconnect it, or disconnect it "
        "first to connect another one."
    ),
    "not_oauth2": _("{app} connects with a form, not a sign-in."),
    "oauth2_app": _("{app} connects through its sign-in window."),
    "not_found": _("No such account."),
    "attempt_not_found": _("No such sign-in."),
    "installation_not_found": _("No such installation."),
    # The sign-in window's answer.
    "state_unknown": _(
        "This sign-in did not start from your connect window (its state is unknown), so it "
        "was ignored and nothing was connected. Close this window and start again from the "
        "product you were using."
    ),
    "state_cancelled": _(
        "This {app} sign-in was cancelled in the connect window, so nothing was connected. "
        "Start again there if you want to connect the account."
    ),
    "state_used": _(
        "This {app} sign-in answer was already used, so it was ignored and nothing was "
        "changed. You can close this window."
    ),
    "state_expired": _(
        "The {app} sign-in took longer than 10 minutes, so it was not accepted and nothing "
        "was connected. Start again from the connect window."
    ),
    "session_closed": _(
        "Your connect session ended before the sign-in finished, so nothing was connected. "
        "Reopen the connection page from the product you were using."
    ),
    "issuer_mismatch": _(
        "The sign-in answer did not come from {app}, so it was refused and nothing was connected."
    ),
    "access_denied": _(
        "You did not allow access to your {app} account, so nothing was connected. You can "
        "try again whenever you like."
    ),
    "provider_error": _(
        "{app} could not complete the sign-in ({error}). Nothing was connected; try again."
    ),
    "invalid_response": _(
        "{app} answered without an authorization code. Nothing was connected; try again."
    ),
    "token_unavailable": _(
        "{app} is not answering right now ({reason}). Nothing was connected; try again in a "
        "few minutes."
    ),
    "token_refused": _(
        "{app} refused to complete the sign-in: {reason} Nothing was connected; start again."
    ),
    "credential_gone": _(
        "The {app} account was disconnected in the meantime, so nothing was changed; connect "
        "it again."
    ),
    "cancelled": _("You cancelled the {app} sign-in, so nothing was connected."),
    "closed": _("You closed the {app} sign-in window before finishing, so nothing was connected."),
    "attempt_expired": _(
        "The {app} sign-in was not finished within 10 minutes, so nothing was connected. Start "
        "again when you are ready."
    ),
    # What the provider said about the new secret.
    "connected": _("Connected your {app} account {account}."),
    "already_connected_updated": _(
        "Your {app} account {account} was already connected; it is now up to date."
    ),
    "reconnected": _("Reconnected your {app} account {account}."),
    "rejected": _("{reason} Nothing was connected; check what you entered and try again."),
    "rejected_reconnect": _("{reason} Your account was not changed."),
    "unavailable": _("{reason}, so nothing was connected; try again in a minute or two."),
    "unavailable_reconnect": _(
        "{reason}, so your account was not changed; try again in a minute or two."
    ),
    "identity_mismatch": _(
        "You signed in to {app} as {identity}, but this account is {account}. Sign in as "
        "{account} to reconnect it, or add {identity} as another account. Nothing was changed."
    ),
    # Managing an account.
    "reconnect_needed": _("Reconnect this {app} account to use it again."),
    "checked_ok": _("{app} accepted {account} again."),
    "check_unavailable": _(
        "{reason}, so the account was not changed; check again in a minute or two."
    ),
    # The modal's pages.
    "outcome_already": _("{account} was already connected to {app}; it is now up to date."),
    "outcome_connected": _("Connected {account} to {app}."),
    "outcome_refused": _("{app} did not accept the account."),
    "account_gone": _("That account is no longer connected."),
    "account_gone_connect_again": _("That account is no longer connected; connect it again."),
    "rename_failed": _("The name could not be saved."),
    "renamed": _("Renamed to {account}."),
    "reconnect_by_sign_in": _("Reconnect through the {app} sign-in."),
    "check_fields": _("Check the highlighted fields and try again."),
    "disconnected": _("Disconnected {account} from {app}."),
    "disconnected_flows_off": _(
        "Disconnected {account} from {app}. These flows used it and are now off: {flows}."
    ),
    "flow_unavailable": _("That flow or account is not available here."),
    "settings_saved": _("Settings saved."),
    "settings_invalid": _("Check the highlighted settings."),
    "workflows_saved": _("Workflows saved."),
    "workflows_invalid": _("Those workflows could not be set."),
    "switch_on_first": _("Switch “{flow}” on first."),
    "app_not_offered": _("“{slug}” is not one of the apps you can connect here."),
    "attempt_gone": _("That sign-in is no longer in progress."),
    "needs_attention_apps": _(
        "Needs your attention: a new version of “{flow}” uses {apps}. Connect an account for "
        "it to move to the new version; until then the current one keeps running."
    ),
    "needs_attention_settings": _(
        "Needs your attention: a new version of “{flow}” needs {settings}. Fill it in under "
        "Settings to move to the new version; until then the current one keeps running."
    ),
    "needs_attention_both": _(
        "Needs your attention: a new version of “{flow}” uses {apps} and needs {settings}. "
        "Connect an account for it and fill in the settings to move to the new version; until "
        "then the current one keeps running."
    ),
    "flow_off": _("“{flow}” is off."),
    "flow_on": _("“{flow}” is on."),
    "flow_uses": _("“{flow}” now uses {account}."),
}


def say(code: str, **values: object) -> str:
    """The sentence for ``code`` in the active language, with its placeholders filled in."""
    return str(MESSAGES[code]).format(**values)


def connection_sentence(connection: Connection, *, app: str, reconnecting: bool) -> str:
    """What the person reads about how a connection attempt ended."""
    credential = connection.credential
    account = credential.identity or credential.display_name if credential is not None else ""
    match connection.kind:
        case ConnectKind.CONNECTED:
            return say("connected", app=app, account=account)
        case ConnectKind.ALREADY_CONNECTED:
            return say("already_connected_updated", app=app, account=account)
        case ConnectKind.RECONNECTED:
            return say("reconnected", app=app, account=account)
        case ConnectKind.IDENTITY_MISMATCH:
            held = credential.identity if credential is not None else ""
            return say("identity_mismatch", app=app, identity=connection.identity, account=held)
        case ConnectKind.UNAVAILABLE:
            code = "unavailable_reconnect" if reconnecting else "unavailable"
            return say(code, app=app, reason=connection.reason)
        case _:
            code = "rejected_reconnect" if reconnecting else "rejected"
            return say(code, reason=connection.reason)
