"""The sandbox provider's pages (home, sign-in, consent, API keys) and its small protected API."""

from __future__ import annotations

import json
from typing import Any

from django.contrib.auth.mixins import LoginRequiredMixin
from django.contrib.auth.models import AnonymousUser
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse_lazy
from django.utils.decorators import method_decorator
from django.views import View
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.debug import sensitive_post_parameters
from django.views.generic import FormView, TemplateView
from oauth2_provider.views import AuthorizationView

from sandbox import selectors
from sandbox.forms import SandboxApiKeyForm, SandboxLoginForm
from sandbox.models import SandboxAccount, SandboxApiKey, SandboxItem
from sandbox.services import (
    SANDBOX_PASSWORD,
    SandboxAuthenticationError,
    sandbox_api_key_revoke,
    sandbox_api_request_authenticate,
    sandbox_item_create,
)
from sandbox.signin import safe_next_url, sign_in, sign_out, signed_in_account


class SandboxSignInMixin:
    """Sandbox views see the signed-in sandbox account's user as ``request.user``.

    Whoever is signed into the portal's own session is hidden here, so a staff member can never
    appear as a sandbox account.
    """

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        account = signed_in_account(request)
        request.sandbox_account = account
        request.user = account.user if account is not None else AnonymousUser()
        return super().dispatch(request, *args, **kwargs)


class SandboxLoginRequiredMixin(SandboxSignInMixin, LoginRequiredMixin):
    login_url = reverse_lazy("sandbox:login")


class SandboxHomeView(SandboxSignInMixin, TemplateView):
    template_name = "sandbox/home.html"

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        return super().get_context_data(
            accounts=selectors.sandbox_account_list(),
            password_hint=SANDBOX_PASSWORD,
            account=self.request.sandbox_account,
            **kwargs,
        )


@method_decorator([sensitive_post_parameters("password"), never_cache], name="dispatch")
class SandboxLoginView(SandboxSignInMixin, FormView):
    template_name = "sandbox/login.html"
    form_class = SandboxLoginForm

    def get_next_url(self) -> str:
        return safe_next_url(self.request.POST.get("next") or self.request.GET.get("next"))

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        return super().get_context_data(
            next_url=self.get_next_url(), password_hint=SANDBOX_PASSWORD, **kwargs
        )

    def form_valid(self, form: SandboxLoginForm) -> HttpResponse:
        response = HttpResponseRedirect(self.get_next_url())
        sign_in(response, request=self.request, account=form.account)
        return response


class SandboxLogoutView(View):
    http_method_names = ["post"]

    def post(self, request: HttpRequest) -> HttpResponse:
        # Back where the person signed out (an authorization asks them to sign in again).
        response = HttpResponseRedirect(safe_next_url(request.POST.get("next")))
        sign_out(response)
        return response


class SandboxAuthorizationView(SandboxSignInMixin, AuthorizationView):
    """DOT's authorization endpoint, signed in through the sandbox and with its own consent page."""

    template_name = "sandbox/authorize.html"
    login_url = reverse_lazy("sandbox:login")


@method_decorator(never_cache, name="dispatch")
class SandboxApiKeysView(SandboxLoginRequiredMixin, View):
    template_name = "sandbox/keys.html"

    def render_page(
        self, form: SandboxApiKeyForm, *, status: int = 200, **context: Any
    ) -> HttpResponse:
        keys = selectors.sandbox_api_key_list_for_account(account=self.request.sandbox_account)
        return render(
            self.request,
            self.template_name,
            {"form": form, "keys": keys, **context},
            status=status,
        )

    def get(self, request: HttpRequest) -> HttpResponse:
        return self.render_page(SandboxApiKeyForm())

    def post(self, request: HttpRequest) -> HttpResponse:
        form = SandboxApiKeyForm(request.POST)
        if not form.is_valid():
            return self.render_page(form, status=400)
        api_key, plaintext = form.save(account=request.sandbox_account)
        # Rendered, not redirected: the plaintext must not travel in a URL or be stored.
        return self.render_page(SandboxApiKeyForm(), new_key=api_key, plaintext=plaintext)


class SandboxApiKeyRevokeView(SandboxLoginRequiredMixin, View):
    http_method_names = ["post"]

    def post(self, request: HttpRequest, pk: int) -> HttpResponse:
        api_key = get_object_or_404(SandboxApiKey, pk=pk, account=request.sandbox_account)
        sandbox_api_key_revoke(api_key=api_key)
        return redirect("sandbox:keys")


def _api_error(status: int, error: str, description: str) -> JsonResponse:
    response = JsonResponse({"error": error, "error_description": description}, status=status)
    if status == 401:
        quoted = description.replace("\\", "\\\\").replace('"', '\\"')
        response["WWW-Authenticate"] = (
            f'Bearer realm="sandbox", error="{error}", error_description="{quoted}"'
        )
    return response


@method_decorator(csrf_exempt, name="dispatch")
class SandboxApiView(View):
    """A resource of the sandbox API: token-authenticated, so CSRF-exempt, and never a cookie."""

    account: SandboxAccount

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        try:
            self.account = sandbox_api_request_authenticate(
                authorization=request.headers.get("Authorization", ""),
                api_key=request.headers.get("X-API-Key", ""),
            )
        except SandboxAuthenticationError as error:
            response = _api_error(401, "invalid_token", str(error))
        else:
            response = super().dispatch(request, *args, **kwargs)
        response["Cache-Control"] = "no-store"
        return response


def _account_json(account: SandboxAccount) -> dict[str, str]:
    return {
        "id": str(account.pk),
        "email": account.email,
        "name": account.display_name,
        "login": account.login,
    }


def _item_json(item: SandboxItem) -> dict[str, str]:
    return {"id": str(item.pk), "title": item.title, "created_at": item.created_at.isoformat()}


class SandboxMeView(SandboxApiView):
    http_method_names = ["get"]

    def get(self, request: HttpRequest) -> JsonResponse:
        return JsonResponse(_account_json(self.account))


class SandboxItemsView(SandboxApiView):
    http_method_names = ["get", "post"]

    def get(self, request: HttpRequest) -> JsonResponse:
        items = selectors.sandbox_item_list_for_account(account=self.account)
        return JsonResponse([_item_json(item) for item in items], safe=False)

    def post(self, request: HttpRequest) -> JsonResponse:
        if request.content_type == "application/json":
            try:
                body = json.loads(request.body or b"{}")
            except ValueError:
                return _api_error(400, "invalid_request", "The body is not valid JSON.")
            title = body.get("title") if isinstance(body, dict) else None
        else:
            title = request.POST.get("title")
        if not isinstance(title, str):
            return _api_error(400, "invalid_request", 'Send a title, e.g. {"title": "..."}.')
        try:
            item = sandbox_item_create(account=self.account, title=title)
        except ValidationError as error:
            problems = "; ".join(
                f"{field}: {' '.join(messages)}" for field, messages in error.message_dict.items()
            )
            return _api_error(400, "invalid_request", f"The item is not valid. {problems}")
        return JsonResponse(_item_json(item), status=201)
