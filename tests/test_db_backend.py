"""Our PostgreSQL backend's timestamp loading (core/backends/postgresql) and what a server process does
after loading the application (core/startup.py)."""

from __future__ import annotations

import datetime as dt
import gc
import subprocess
import sys
import weakref

import pytest
from django.db import connection, connections
from django.db.backends.postgresql.psycopg_any import BaseTzLoader

from core.backends.postgresql.base import UTCTimestamptzLoader
from core.startup import warm_and_freeze
from leads.models import Lead

UTC = dt.UTC
VALUES = [
    dt.datetime(2026, 11, 26, 23, 59, 59, 999999, tzinfo=UTC),
    dt.datetime(2020, 3, 29, 1, 30, 0, 1, tzinfo=UTC),  # a DST change elsewhere; nothing to UTC
    dt.datetime(1899, 12, 31, 12, 0, tzinfo=UTC),
    dt.datetime(1, 1, 1, tzinfo=UTC),
    dt.datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
]


@pytest.mark.postgres
def test_on_postgresql_timestamps_load_through_psycopg_s_own_loader_as_utc(db):
    connection.ensure_connection()
    loader = connection.connection.adapters.get_loader(1184, 0)  # timestamptz, text
    assert loader is UTCTimestamptzLoader
    with connection.cursor() as cursor:
        cursor.execute("SELECT " + ", ".join(["%s::timestamptz"] * len(VALUES)), VALUES)
        loaded = cursor.fetchone()
    assert list(loaded) == VALUES
    assert all(value.tzinfo is dt.UTC for value in loaded)


@pytest.mark.postgres
def test_on_postgresql_timestamps_equal_what_django_s_own_loader_gives(db):
    connection.ensure_connection()
    with connection.cursor() as cursor:
        cursor.execute("SELECT " + ", ".join(["%s::timestamptz"] * len(VALUES)), VALUES)
        ours = cursor.fetchone()
        django_loader = type("DjangoUTC", (BaseTzLoader,), {"timezone": connection.timezone})
        cursor.cursor.adapters.register_loader("timestamptz", django_loader)
        cursor.execute("SELECT " + ", ".join(["%s::timestamptz"] * len(VALUES)), VALUES)
        djangos = cursor.fetchone()
    assert [(v, v.tzinfo) for v in ours] == [(v, v.tzinfo) for v in djangos]


@pytest.mark.postgres
def test_on_postgresql_an_orm_read_carries_utc_datetimes(account):
    lead = Lead.objects.create(account=account, email="tz@example.com")
    again = Lead.objects.get(pk=lead.pk)
    assert again.created_at == lead.created_at
    assert again.created_at.tzinfo is dt.UTC


@pytest.mark.postgres
def test_on_postgresql_a_connection_in_another_time_zone_keeps_django_s_loader(db):
    wrapper = type(connections["default"])({**connection.settings_dict, "TIME_ZONE": "Europe/Berlin"}, alias="berlin")
    params = wrapper.get_connection_params()
    loader = params["context"].get_loader(1184, 0)
    assert loader is not UTCTimestamptzLoader
    assert str(loader.timezone) == "Europe/Berlin"


def test_start_up_collects_its_garbage_and_freezes_the_rest():
    class Cycle:
        pass

    garbage = Cycle()
    garbage.me = garbage
    collected = []
    weakref.finalize(garbage, collected.append, True)
    del garbage
    try:
        frozen = warm_and_freeze()
        assert frozen > 10_000
        # Frozen objects can still be freed when their last reference goes (here: by the test
        # runner's own threads between the two reads), so the count may only have fallen a little.
        assert frozen - 1_000 < gc.get_freeze_count() <= frozen
        assert collected == [True]  # start-up garbage is freed, not frozen
    finally:
        gc.unfreeze()


@pytest.mark.parametrize("entry_point", ["config.wsgi", "config.asgi"])
def test_the_server_entry_points_load_every_view_and_freeze_before_serving(entry_point):
    script = (
        f"import gc, sys; import {entry_point}; "
        "print(gc.get_freeze_count(), 'leads.api.views' in sys.modules, 'config.urls' in sys.modules)"
    )
    result = subprocess.run(  # noqa: S603  (this interpreter, a fixed script)
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True
    )
    frozen, views, urls = result.stdout.split()
    assert int(frozen) > 10_000 and views == "True" and urls == "True"


def _instances(account):
    from core.db import ModelColumns

    lead = Lead.objects.create(account=account, email="inst@example.com", tags=["a"], custom_fields={"n": 1})
    columns = ModelColumns(Lead, "l")
    values = [getattr(lead, name) for name in columns.attnames]
    return columns, values, Lead.from_db("default", columns.attnames, list(values))


def test_an_instance_built_from_columns_is_the_one_from_db_builds(account):
    columns, values, expected = _instances(account)
    built = columns.instance(values, "default")
    assert type(built) is Lead
    assert {k: v for k, v in built.__dict__.items() if k != "_state"} == {
        k: v for k, v in expected.__dict__.items() if k != "_state"
    }
    assert built._state.adding is False and built._state.db == "default"
    assert built._state.fields_cache == {}
    assert built.account == account  # relations load as usual


def test_with_an_init_signal_receiver_an_instance_is_built_through_from_db(account):
    from django.db.models.signals import post_init

    seen = []

    def receiver(sender, instance, **kwargs):
        seen.append(instance)

    post_init.connect(receiver, sender=Lead)
    try:
        columns, values, _ = _instances(account)
        seen.clear()
        built = columns.instance(values, "default")
    finally:
        post_init.disconnect(receiver, sender=Lead)
    assert seen == [built]


def test_data_response_renders_at_once_with_the_json_renderer_and_otherwise_leaves_it_to_drf():
    from rest_framework.renderers import BaseRenderer
    from rest_framework.response import Response

    from core.api import data_response
    from core.renderers import JSONRenderer

    class Negotiated:
        accepted_renderer = JSONRenderer()
        accepted_media_type = "application/json"

    response = data_response(Negotiated(), {"a": 1}, headers={"ETag": '"x"'})
    assert not isinstance(response, Response)
    assert response.content == b'{"a":1}' and response["Content-Type"] == "application/json"
    assert response["ETag"] == '"x"'

    class Other(BaseRenderer):
        media_type = "text/plain"

    Negotiated.accepted_renderer = Other()
    response = data_response(Negotiated(), {"a": 1}, headers={"ETag": '"x"'})
    assert isinstance(response, Response) and response.data == {"a": 1} and response["ETag"] == '"x"'


def test_the_allow_header_does_not_depend_on_who_asked_first():
    from core.api import _ALLOWED_METHODS
    from leads.api.views import LeadDetailView

    _ALLOWED_METHODS.clear()
    bare = LeadDetailView()  # as the schema generator builds views: no setup(), so no `head` yet
    assert bare.allowed_methods == ["GET", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]
    served = LeadDetailView()
    served.setup(None)
    assert served.allowed_methods == ["GET", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]
