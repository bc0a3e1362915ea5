"""Admin change lists that show related names without a query per row.

A column that needs rows of another table (who an audit entry's actor is, which end user an
event names) cannot use ``list_select_related`` when the link is not a foreign key. An admin
with ``ResultsLookupMixin`` gets ``lookup_results(request, results)`` called once per page,
after the page's rows are fetched, to look up what its columns need in a fixed number of
queries and attach it to the rows.
"""

from __future__ import annotations

from django.contrib.admin.views.main import ChangeList
from django.http import HttpRequest

from accounts.admin_scoping import staff_tenant_ids


class ResultsLookupMixin:
    def lookup_results(self, request: HttpRequest, results: list) -> None:
        """Attach to ``results`` (the page's rows) what the columns show."""

    def get_changelist(self, request: HttpRequest, **kwargs):
        model_admin = self

        class LookupChangeList(ChangeList):
            def get_results(self, request):
                super().get_results(request)
                self.result_list = list(self.result_list)
                model_admin.lookup_results(request, self.result_list)

        return LookupChangeList


def list_display_without_tenant(request: HttpRequest, list_display) -> list:
    """A staff member of one tenant needs no tenant column: every row is that tenant's."""
    tenant_ids = staff_tenant_ids(request)
    if tenant_ids is None or len(tenant_ids) > 1:
        return list(list_display)
    return [column for column in list_display if column != "tenant"]
