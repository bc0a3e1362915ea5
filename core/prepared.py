"""Reads compiled once per process and thread, then run with new values: for the few hot reads
whose SQL costs Django more to build than the database takes to answer.

The modal's session lookup (a join of four tables) and its accounts read were compiled anew on
every request; compiling was about three quarters of their cost. ``PreparedRead`` builds the
queryset once with stand-in values, keeps the compiled SQL, and on each call puts the real
values where the stand-ins were and builds the rows as Django's own model iterator does (with
``select_related`` objects, annotations and the backend's converters). What it returns is what
the queryset would have returned; ``tests/core/test_prepared.py`` holds it to that.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from typing import Any

from django.db import connections
from django.db.models import Field, Model, QuerySet
from django.db.models.query import get_related_populators


def _stand_in(field: Field) -> Any:
    """A value of the field's type that no real argument equals."""
    if field.is_relation:
        field = field.target_field
    if field.get_internal_type() == "UUIDField":
        return uuid.uuid4()
    return f"prepared-{uuid.uuid4().hex}"


class PreparedRead:
    """``build(**values)`` → a model queryset; ``run(**values)`` → its list of objects."""

    def __init__(self, build: Callable[..., QuerySet], **fields: Field) -> None:
        self._build = build
        self._fields = fields
        self._compiled = threading.local()

    def _compile(self, using: str):
        stand_ins = {name: _stand_in(field) for name, field in self._fields.items()}
        queryset = self._build(**stand_ins)
        compiler = queryset.query.get_compiler(using)
        sql, params = compiler.as_sql()
        connection = connections[using]
        positions = {}
        for name, field in self._fields.items():
            prepared = field.get_db_prep_value(stand_ins[name], connection)
            found = [i for i, param in enumerate(params) if param == prepared]
            if len(found) != 1:
                raise ValueError(f"{name} must appear once in the query's parameters.")
            positions[name] = found[0]
        compiled = (compiler, sql, list(params), positions)
        setattr(self._compiled, using, compiled)
        return compiled

    def run(self, *, using: str = "default", **values: Any) -> list[Model]:
        compiled = getattr(self._compiled, using, None) or self._compile(using)
        compiler, sql, params, positions = compiled
        connection = connections[using]
        params = list(params)
        for name, position in positions.items():
            params[position] = self._fields[name].get_db_prep_value(values[name], connection)
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            rows = cursor.fetchall()
        if not rows:
            return []
        # As django.db.models.query.ModelIterable builds objects from a compiled query.
        select, klass_info = compiler.select, compiler.klass_info
        model = klass_info["model"]
        fields = klass_info["select_fields"]
        start, end = fields[0], fields[-1] + 1
        names = [column[0].target.attname for column in select[start:end]]
        populators = get_related_populators(klass_info, select, using)
        objects = []
        for row in compiler.results_iter([rows]):
            obj = model.from_db(using, names, row[start:end])
            for populator in populators:
                populator.populate(row, obj)
            for attribute, column in compiler.annotation_col_map.items():
                setattr(obj, attribute, row[column])
            objects.append(obj)
        return objects
