"""Inserts and updates whose SQL is built once per model and set of columns, not on every call.

The jobs write the same few rows for every credential, every day: a verification's new state,
its audit entries and its event. Django builds each of these statements anew, which costs more
than the database takes to run them (and a multi-row insert on PostgreSQL binds one array per
column, which psycopg inspects element by element). Here the statement is built once per
process; each value is prepared by its field as ``Model.save`` prepares it (``pre_save``:
defaults and ``auto_now``; then ``get_db_prep_save``), so the row written is the same.

No model signal is sent, as with ``bulk_create`` and ``QuerySet.update``: for a model that has
``pre_save``/``post_save`` receivers these fall back to the ORM, which sends them.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

from django.db import DatabaseError, connections
from django.db.models import Field, Model
from django.db.models.signals import post_save, pre_save


def _has_receivers(model: type[Model]) -> bool:
    return pre_save.has_listeners(model) or post_save.has_listeners(model)


@functools.cache
def _insert(model: type[Model], rows: int, using: str) -> tuple[str, list[Field]]:
    meta = model._meta
    quote = connections[using].ops.quote_name
    fields = [field for field in meta.concrete_fields if field is not meta.auto_field]
    columns = ", ".join(quote(field.column) for field in fields)
    row = "(" + ", ".join(["%s"] * len(fields)) + ")"
    values = ", ".join([row] * rows)
    return f"INSERT INTO {quote(meta.db_table)} ({columns}) VALUES {values}", fields  # noqa: S608


def rows_insert(objs: Sequence[Model], *, using: str = "default") -> None:
    """Insert ``objs`` (of one model) in one statement, as ``bulk_create`` does, except that a
    key the database generates (an auto-increment id) is not read back: it stays None."""
    if not objs:
        return
    model = type(objs[0])
    if _has_receivers(model):
        model._default_manager.using(using).bulk_create(objs)
        return
    sql, fields = _insert(model, len(objs), using)
    connection = connections[using]
    params = [
        field.get_db_prep_save(field.pre_save(obj, True), connection)
        for obj in objs
        for field in fields
    ]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
    for obj in objs:
        obj._state.adding = False
        obj._state.db = using


@functools.cache
def _update(model: type[Model], names: tuple[str, ...], using: str) -> tuple[str, list[Field]]:
    meta = model._meta
    quote = connections[using].ops.quote_name
    fields = [meta.get_field(name) for name in names]
    assignments = ", ".join(f"{quote(field.column)} = %s" for field in fields)
    table, pk = quote(meta.db_table), quote(meta.pk.column)
    return f"UPDATE {table} SET {assignments} WHERE {pk} = %s", fields  # noqa: S608


def row_update(obj: Model, fields: Sequence[str], *, using: str = "default") -> None:
    """``obj.save(update_fields=fields)`` with the statement built once (``auto_now`` fields
    are set only when named, as there). Raises DatabaseError when the row is gone."""
    model = type(obj)
    if _has_receivers(model):
        obj.save(update_fields=fields, using=using)
        return
    sql, prepared = _update(model, tuple(fields), using)
    connection = connections[using]
    params = [field.get_db_prep_save(field.pre_save(obj, False), connection) for field in prepared]
    params.append(model._meta.pk.get_db_prep_value(obj.pk, connection))
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        if cursor.rowcount == 0:
            raise DatabaseError("Save with update_fields did not affect any rows.")
