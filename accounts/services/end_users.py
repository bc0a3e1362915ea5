"""End users, known by the tenant's own id for them."""

from __future__ import annotations

from django.db import IntegrityError, transaction

from accounts.models import EndUser, Tenant

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
