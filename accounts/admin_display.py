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
