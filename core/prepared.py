"""Reads compiled once per process and thread, then run with new values: for the few hot reads
whose SQL costs Django more to build than the database takes to answer.

The modal's session lookup (a join of four tables) and its accounts read were compiled anew on
every request; compiling was about three quarters of their cost. ``PreparedRead`` builds the
queryset once with stand-in values, keeps the compiled SQL, and on each call puts the real
values where the stand-ins were and builds the rows as Django's own model iterator does (with
``select_related`` objects, annotations and the backend's converters). What it returns is what
the queryset would have returned; ``tests/core/test_prepared.py`` holds it to that.

``SelectedModel`` is for a read the ORM cannot say in one query (the proxy's API key with the
credential it names, ``integrations.services.proxy``): it lists a model's columns for a
hand-written query and builds the object from its slice of a row the same way.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.db import connections
from django.db.models import Field, Model, QuerySet
from django.db.models.base import ModelState
from django.db.models.query import get_related_populators
from django.db.models.signals import post_init, pre_init
from django.db.models.sql.compiler import SQLCompiler


def _stand_in(field: Field) -> Any:
    """A value of the field's type that no real argument equals."""
    if field.is_relation:
        field = field.target_field
    if field.get_internal_type() == "UUIDField":
        return uuid.uuid4()
    return f"prepared-{uuid.uuid4().hex}"


@dataclass(frozen=True)
class _Compiled:
    compiler: SQLCompiler
    sql: str
    params: list[Any]
    positions: dict[str, int]
    converters: list[tuple[int, tuple[list[Callable], Any]]]
    model: type[Model]
    names: list[str]
    start: int
    end: int
    populators: list[Any]
    annotations: list[tuple[str, int]]


class PreparedRead:
    """``build(**values)`` → a model queryset; ``run(**values)`` → its list of objects."""

    def __init__(self, build: Callable[..., QuerySet], **fields: Field) -> None:
        self._build = build
        self._fields = fields
        self._compiled = threading.local()

    def _compile(self, using: str) -> _Compiled:
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
        # What ModelIterable works out on every run, worked out once: the columns' converters
        # (JSON, dates), the model's field names and the select_related populators.
        select, klass_info = compiler.select, compiler.klass_info
        expressions = [column[0] for column in select[0 : compiler.col_count]]
        if compiler.has_composite_fields(expressions):
            raise ValueError("PreparedRead does not read composite fields.")
        fields = klass_info["select_fields"]
        start, end = fields[0], fields[-1] + 1
        compiled = _Compiled(
            compiler=compiler,
            sql=sql,
            params=list(params),
            positions=positions,
            converters=list(compiler.get_converters(expressions).items()),
            model=klass_info["model"],
            names=[column[0].target.attname for column in select[start:end]],
            start=start,
            end=end,
            populators=get_related_populators(klass_info, select, using),
            annotations=list(compiler.annotation_col_map.items()),
        )
        setattr(self._compiled, using, compiled)
        return compiled

    def run(self, *, using: str = "default", **values: Any) -> list[Model]:
        compiled = getattr(self._compiled, using, None) or self._compile(using)
        connection = connections[using]
        params = list(compiled.params)
        for name, position in compiled.positions.items():
            params[position] = self._fields[name].get_db_prep_value(values[name], connection)
        with connection.cursor() as cursor:
            cursor.execute(compiled.sql, params)
            rows = cursor.fetchall()
        if not rows:
            return []
        # As django.db.models.query.ModelIterable builds objects from a compiled query.
        model, names, start, end = compiled.model, compiled.names, compiled.start, compiled.end
        objects = []
        for fetched in rows:
            row = list(fetched)
            for position, (converters, expression) in compiled.converters:
                value = row[position]
                for converter in converters:
                    value = converter(value, expression, connection)
                row[position] = value
            obj = model.from_db(using, names, row[start:end])
            for populator in compiled.populators:
                populator.populate(row, obj)
            for attribute, column in compiled.annotations:
                setattr(obj, attribute, row[column])
            objects.append(obj)
        return objects


class SelectedModel:
    """One model's columns in a hand-written query, and its object built from them.

    For a hot read whose shape the ORM cannot say in one query (the proxy's key and credential,
    ``integrations.services.proxy``): ``sql`` lists the columns under a table alias, ``build``
    makes the object from that slice of a row as Django's own iterator would (``Model.from_db``,
    each field's converters). Fields left out are deferred: reading one later loads it.
    """

    def __init__(self, model: type[Model], alias: str, fields: list[str] | None = None) -> None:
        opts = model._meta
        wanted = set(fields) if fields is not None else None
        self.model = model
        self.fields = [
            field
            for field in opts.concrete_fields
            if wanted is None or field.primary_key or {field.name, field.attname} & wanted
        ]
        self.names = [field.attname for field in self.fields]
        self.sql = ", ".join(f'{alias}."{field.column}"' for field in self.fields)
        self.width = len(self.fields)
        self._pk_position = self.names.index(opts.pk.attname)
        self._converters = threading.local()

    def _converters_for(self, connection) -> list[tuple[int, list[Callable], Any]]:
        found = getattr(self._converters, connection.alias, None)
        if found is None:
            found = []
            for position, field in enumerate(self.fields):
                # As the compiler converts a selected column (a foreign key's with its target's
                # type: get_col, not cached_col).
                column = field.get_col(self.model._meta.db_table)
                converters = connection.ops.get_db_converters(column) + column.get_db_converters(
                    connection
                )
                if converters:
                    found.append((position, converters, column))
            setattr(self._converters, connection.alias, found)
        return found

    def build(self, values: list[Any] | tuple[Any, ...], *, using: str = "default") -> Model | None:
        """The object from its columns' values, or None when its key is NULL (an outer join
        that matched nothing)."""
        if values[self._pk_position] is None:
            return None
        row = list(values)
        connection = connections[using]
        for position, converters, column in self._converters_for(connection):
            value = row[position]
            for converter in converters:
                value = converter(value, column, connection)
            row[position] = value
        if pre_init.has_listeners(self.model) or post_init.has_listeners(self.model):
            return self.model.from_db(using, self.names, row)
        # What from_db leaves behind, without the constructor's walk over every field: the
        # loaded values in the instance's __dict__ (a field missing there is deferred, as
        # Django tells them apart) and a state saying "from this database, not new".
        obj = self.model.__new__(self.model)
        obj.__dict__.update(zip(self.names, row, strict=True))
        state = obj._state = ModelState()
        state.adding, state.db = False, using
        return obj
