"""core/prepared.py: a read compiled once returns what its queryset returns, for any values."""

from __future__ import annotations

import pytest
from django.db import connection

from core.prepared import PreparedRead, SelectedModel
from core.tokens import hash_token
from integrations.models import ConnectSession, Credential
from integrations.selectors import _session_by_token_hash, connect_session_for_token
from integrations.services.connect_sessions import connect_session_create
from tests import factories

pytestmark = pytest.mark.django_db

FIELDS = ("id", "tenant_id", "end_user_id", "deployment_id", "expires_at", "theme", "locale")


def test_a_prepared_read_returns_what_its_queryset_returns_for_each_value():
    read = PreparedRead(
        _session_by_token_hash, token_hash=ConnectSession._meta.get_field("token_hash")
    )
    tenant = factories.make_tenant(name="Prepared")
    app = factories.make_api_key_app()
    deployment = factories.make_deployment(
        tenant=tenant, flows=[factories.make_flow(tenant=tenant, apps=[app])]
    )
    tokens = [
        connect_session_create(
            tenant=tenant, end_user=factories.make_end_user(tenant=tenant), **options
        ).token
        for options in ({}, {"deployment": deployment, "apps": [app], "locale": "fr"})
    ]
    for token in tokens:
        [prepared] = read.run(token_hash=hash_token(token))
        expected = _session_by_token_hash(hash_token(token)).get()
        assert [getattr(prepared, name) for name in FIELDS] == [
            getattr(expected, name) for name in FIELDS
        ]
        assert prepared.has_app_allowlist == expected.has_app_allowlist
        assert prepared.tenant.catalog_version == expected.tenant.catalog_version
        assert prepared.end_user.external_id == expected.end_user.external_id
        assert prepared.deployment == expected.deployment
        assert prepared._state.db == "default" and not prepared._state.adding
    assert read.run(token_hash=hash_token("no such token")) == []


def test_the_session_lookup_and_the_accounts_read_change_nothing_for_their_callers():
    tenant = factories.make_tenant(name="Prepared")
    user = factories.make_end_user(tenant=tenant)
    app = factories.make_api_key_app()
    credential = factories.make_credential(end_user=user, app=app, identity="a@b.test")
    token = connect_session_create(tenant=tenant, end_user=user, apps=[app]).token
    session = connect_session_for_token(token=token)
    assert session.tenant == tenant and session.end_user == user and session.has_app_allowlist

    from integrations.selectors import credentials_by_app_for_session

    assert credentials_by_app_for_session(session=session) == {app.pk: [credential]}
    [read] = credentials_by_app_for_session(session=session)[app.pk]
    assert (read.identity, read.status) == ("a@b.test", Credential.Status.ACTIVE)


def test_a_selected_model_builds_what_the_orm_loads_and_defers_the_rest(
    django_assert_num_queries,
):
    app = factories.make_api_key_app()
    credential = factories.make_credential(
        end_user=factories.make_end_user(tenant=factories.make_tenant(name="Selected")),
        app=app,
        secret={"api_key": "selected-key-0123456789"},
    )
    selected = SelectedModel(Credential, "c", ["tenant", "app", "status", "scopes", "expires_at"])
    with connection.cursor() as cursor:
        cursor.execute(
            f'SELECT {selected.sql} FROM {Credential._meta.db_table} c WHERE c."id" = %s',
            [Credential._meta.pk.get_db_prep_value(credential.pk, connection)],
        )
        built = selected.build(cursor.fetchone())
    expected = Credential.objects.get(pk=credential.pk)

    for name in ("pk", "tenant_id", "app_id", "status", "scopes", "expires_at"):
        assert getattr(built, name) == getattr(expected, name)
    assert not built._state.adding and built._state.db == "default"
    assert built.get_deferred_fields() >= {"label", "secret_ciphertext", "end_user_id"}
    with django_assert_num_queries(1):  # a deferred field loads when read
        assert built.secret_ciphertext == expected.secret_ciphertext
    assert selected.build([None] * selected.width) is None  # an outer join that matched nothing
