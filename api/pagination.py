"""Cursor pagination: a stable order (creation time, then id) and an opaque, signed cursor.

The cursor names the last row of a page; the next page starts after it, so rows created or
deleted meanwhile neither repeat nor shift a page. It is signed so that a mangled cursor is a
clear 422, not a wrong page.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Generic, TypeVar

from django.core import signing
from django.db.models import Model, Q, QuerySet
from ninja import Field, Schema

from api.schemas import Text
from core.errors import Invalid

CURSOR_SALT = "api.v1.cursor"
DEFAULT_LIMIT = 50
MAX_LIMIT = 100

T = TypeVar("T", bound=Model)


class PageParams(Schema):
    cursor: Text | None = Field(
        None, max_length=500, description="`next_cursor` of the previous page; omit for the first."
    )
    limit: int = Field(DEFAULT_LIMIT, ge=1, le=MAX_LIMIT, description="Items per page.")


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    next_cursor: str | None


def _encode(row: Model) -> str:
    return signing.dumps([row.created_at.isoformat(), str(row.pk)], salt=CURSOR_SALT)


def _decode(cursor: str) -> tuple[datetime, str]:
    try:
        created_at, pk = signing.loads(cursor, salt=CURSOR_SALT)
        return datetime.fromisoformat(created_at), pk
    except (signing.BadSignature, ValueError, TypeError) as exc:
        raise Invalid(
            "The cursor is not one this API gave out. Pass `next_cursor` from the previous page "
            "unchanged, or omit it for the first page.",
            code="invalid_cursor",
            fields={"cursor": "Not a valid cursor."},
        ) from exc


def paginate(queryset: QuerySet[T], *, cursor: str | None, limit: int) -> Page[T]:
    """One page of ``queryset`` in (created_at, pk) order, after ``cursor``."""
    rows = queryset.order_by("created_at", "pk")
    if cursor:
        created_at, pk = _decode(cursor)
        rows = rows.filter(Q(created_at__gt=created_at) | Q(created_at=created_at, pk__gt=pk))
    items = list(rows[: limit + 1])
    if len(items) > limit:
        return Page(items=items[:limit], next_cursor=_encode(items[limit - 1]))
    return Page(items=items, next_cursor=None)
