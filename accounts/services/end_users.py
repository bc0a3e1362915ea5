"""End users, known by the tenant's own id for them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from accounts.models import EndUser, Tenant
from core.errors import Invalid

PROFILE_FIELDS = ("email", "name", "account_name", "image_url")


def end_user_upsert(*, tenant: Tenant, external_id: str, **profile: str | None) -> EndUser:
    """Create the end user, or update the profile fields given (None leaves a field as it is)."""
    changes = {key: value for key, value in profile.items() if value is not None}
    unknown = set(changes) - set(PROFILE_FIELDS)
    if unknown:
        raise TypeError(f"Unknown end user fields: {', '.join(sorted(unknown))}")
    candidate = EndUser(tenant=tenant, external_id=external_id, **changes)
    candidate.full_clean(exclude=["tenant"], validate_unique=False, validate_constraints=False)
    try:
        with transaction.atomic():
            end_user, created = EndUser.objects.select_for_update().get_or_create(
                tenant=tenant, external_id=external_id, defaults=changes
            )
    except IntegrityError:
        # Another request created the same end user between our read and our insert.
        end_user, created = EndUser.objects.get(tenant=tenant, external_id=external_id), False
    if not created:
        changed = [key for key, value in changes.items() if getattr(end_user, key) != value]
        if changed:
            for key in changed:
                setattr(end_user, key, changes[key])
            end_user.full_clean(exclude=["tenant"], validate_unique=False)
            end_user.save(update_fields=[*changed, "updated_at"])
    return end_user


# The API's names for the profile fields (the model's ``image_url`` is ``image``).
API_FIELD_NAMES = {"external_id": "id", "image_url": "image"}


@dataclass(frozen=True)
class UpsertedEndUser:
    end_user: EndUser
    created: bool


def end_user_upsert_checked(
    *,
    tenant: Tenant,
    external_id: Any,
    profile: dict[str, Any],
    field_prefix: str = "",
    code: str = "invalid_user",
) -> UpsertedEndUser:
    """``end_user_upsert`` for API input: problems become a domain error naming the API's
    fields (``field_prefix`` places them, e.g. ``end_user.`` inside a session request)."""
    external_id = str(external_id or "").strip()
    if not external_id:
        raise Invalid(
            f"{field_prefix}id is required and must not be blank.",
            code=code,
            fields={f"{field_prefix}id": "Required."},
        )
    existed = EndUser.objects.filter(tenant=tenant, external_id=external_id).exists()
    try:
        end_user = end_user_upsert(
            tenant=tenant,
            external_id=external_id,
            email=profile.get("email"),
            name=profile.get("name"),
            account_name=profile.get("account_name"),
            image_url=profile.get("image"),
        )
    except ValidationError as exc:
        fields = {
            f"{field_prefix}{API_FIELD_NAMES.get(key, key)}": " ".join(messages)
            for key, messages in exc.message_dict.items()
        }
        raise Invalid(
            "The user is not valid: " + "; ".join(f"{k}: {v}" for k, v in fields.items()),
            code=code,
            fields=fields,
        ) from exc
    return UpsertedEndUser(end_user=end_user, created=not existed)
