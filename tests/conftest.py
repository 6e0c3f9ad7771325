"""Shared fixtures: accounts, members, API keys and authenticated API clients."""

from __future__ import annotations

import time
import types
import uuid

import pytest
from django.conf import settings as django_settings
from django.db import connection
from django.test import override_settings
from django_ratelimit import core as login_ratelimit_core
from rest_framework.test import APIClient

from accounts import credentials
from accounts.models import Role
from accounts.scopes import ALL_SCOPES
from accounts.services import api_key_create
from core import ratelimit

from .factories import AccountFactory, MembershipFactory, UserFactory

ALL = sorted(ALL_SCOPES)


@pytest.fixture(scope="session", autouse=True)
def fast_password_hasher():
    """PBKDF2 at Django's default cost takes ~0.2 s per user; tests check behaviour, not hashing cost."""
    with override_settings(PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"]):
        yield


@pytest.fixture
def account(db):
    return AccountFactory(slug="acme")


@pytest.fixture
def other_account(db):
    return AccountFactory(slug="globex")


@pytest.fixture
def owner(account):
    return MembershipFactory(account=account, user=UserFactory(email="owner@acme.test"), role=Role.OWNER).user


@pytest.fixture
def make_key(db):
    """make_key(account, scopes=..., role=...) -> raw key; creates a member with that role."""

    def _make(account, scopes=ALL, role=Role.OWNER, user=None, **kwargs) -> str:
        if user is None:
            user = MembershipFactory(account=account, role=role).user
        _, raw = api_key_create(account=account, created_by=user, name="test key", scopes=list(scopes), **kwargs)
        return raw

    return _make


@pytest.fixture
def make_client(make_key):
    """make_client(account, scopes=..., role=...) -> APIClient sending X-API-Key."""

    def _make(account, scopes=ALL, role=Role.OWNER, **kwargs) -> APIClient:
        client = APIClient()
        client.credentials(HTTP_X_API_KEY=make_key(account, scopes=scopes, role=role, **kwargs))
        return client

    return _make


@pytest.fixture
def api(account, make_client) -> APIClient:
    """An owner's client with every scope, in `account`."""
    return make_client(account)


@pytest.fixture
def other_api(other_account, make_client) -> APIClient:
    return make_client(other_account)


@pytest.fixture
def is_postgres() -> bool:
    return connection.vendor == "postgresql"


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config, items):
    """`postgres`-marked tests need PostgreSQL and `redis`-marked ones a real Redis (REDIS_URL);
    without them those tests must be deselected with -m, never silently skipped. Runs after -m
    has deselected, so only the tests that would actually run are checked."""
    needs = []
    if connection.vendor != "postgresql":
        needs.append(("postgres", "PostgreSQL: set DATABASE_URL or run with -m 'not postgres'"))
    if not django_settings.REDIS_URL:
        needs.append(("redis", "a real Redis: set REDIS_URL or run with -m 'not redis'"))
    for item in items:
        for marker, what in needs:
            if item.get_closest_marker(marker):
                raise pytest.UsageError(f"{item.nodeid} needs {what}")


@pytest.fixture(autouse=True)
def isolated_rate_limits(settings):
    """Each test gets its own rate-limit key space (xdist workers share one Redis, and account ids
    repeat across their databases) and a fresh process-wide limiter."""
    settings.LEADBASE_RATE_LIMIT_PREFIX = f"lb:test:{uuid.uuid4().hex}"
    ratelimit.reset_limiter()
    credentials.reset_cache()
    yield
    ratelimit.reset_limiter()
    credentials.reset_cache()


@pytest.fixture(autouse=True)
def login_ratelimit_clock_stands_still(monkeypatch):
    """django-ratelimit (the login forms) counts in fixed windows whose edges fall at a per-key second
    of the minute; a test whose requests straddled an edge would see its count restart and flake.
    The clock django-ratelimit reads stands still during each test, so a test stays in one window."""
    now = time.time()
    monkeypatch.setattr(login_ratelimit_core, "time", types.SimpleNamespace(time=lambda: now))
