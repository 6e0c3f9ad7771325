"""Management commands (§4.14): create_account, create_api_key, seed_demo."""

from __future__ import annotations

import re
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from rest_framework.test import APIClient

from accounts.models import Account, ApiKey, Membership, Role, User
from leads.models import Lead

from .factories import AccountFactory, MembershipFactory, UserFactory

KEY_PATTERN = re.compile(r"lb_[A-Za-z0-9_\-]{32,}")


def run(*args, **options) -> str:
    out = StringIO()
    call_command(*args, stdout=out, stderr=StringIO(), **options)
    return out.getvalue()


def key_client(raw: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_X_API_KEY=raw)
    return client


# --- create_account --------------------------------------------------------------------------


@pytest.mark.django_db
def test_create_account_creates_the_account_and_its_owner():
    output = run("create_account", "newco", "--plan", "pro", "--owner", "Boss@NewCo.example")
    account = Account.objects.get(slug="newco")
    assert account.plan == "pro"
    membership = Membership.objects.get(account=account)
    assert membership.role == Role.OWNER
    assert membership.user.email == "boss@newco.example"
    assert not membership.user.has_usable_password()
    assert "newco" in output


@pytest.mark.django_db
def test_create_account_defaults_to_free_and_reuses_an_existing_user():
    user = UserFactory(email="known@example.com")
    run("create_account", "second", "--owner", "known@example.com", "--name", "Second Ltd")
    account = Account.objects.get(slug="second")
    assert (account.plan, account.name) == ("free", "Second Ltd")
    assert Membership.objects.get(account=account).user == user
    assert User.objects.filter(email="known@example.com").count() == 1


@pytest.mark.django_db
def test_create_account_with_a_taken_slug_raises_command_error_and_changes_nothing():
    run("create_account", "taken", "--owner", "first@example.com")
    with pytest.raises(CommandError, match="taken"):
        run("create_account", "taken", "--owner", "second@example.com")
    assert Account.objects.filter(slug="taken").count() == 1
    assert list(Membership.objects.filter(account__slug="taken").values_list("user__email", flat=True)) == [
        "first@example.com"
    ]
    assert not User.objects.filter(email="second@example.com").exists()


@pytest.mark.django_db
def test_create_account_with_an_unknown_plan_raises_command_error():
    with pytest.raises(CommandError):
        run("create_account", "planless", "--plan", "gold", "--owner", "x@example.com")
    assert not Account.objects.filter(slug="planless").exists()


# --- create_api_key --------------------------------------------------------------------------


@pytest.mark.django_db
def test_create_api_key_prints_only_the_key_and_it_authenticates(account, owner):
    output = run("create_api_key", "--account", "acme", "--name", "ci", "--scopes", "leads:read,leads:write,admin")
    lines = output.splitlines()
    assert len(lines) == 1
    raw = lines[0]
    assert output == raw + "\n"
    assert KEY_PATTERN.fullmatch(raw)

    key = ApiKey.objects.get(prefix=raw[:11])
    assert (key.account, key.name, key.created_by) == (account, "ci", owner)
    assert key.scopes == ["admin", "leads:read", "leads:write"]

    client = key_client(raw)
    assert client.get("/api/v1/leads").status_code == 200
    assert client.get("/api/v1/api-keys").status_code == 200


@pytest.mark.django_db
def test_create_api_key_defaults_to_lead_scopes(account, owner):
    raw = run("create_api_key", "--account", "acme", "--name", "default").strip()
    assert ApiKey.objects.get(prefix=raw[:11]).scopes == ["leads:read", "leads:write"]
    assert key_client(raw).get("/api/v1/api-keys").status_code == 403


@pytest.mark.django_db
def test_create_api_key_for_a_named_member(account, owner):
    member = MembershipFactory(account=account, role=Role.MEMBER, user=UserFactory(email="rep@acme.test"))
    raw = run(
        "create_api_key",
        "--account",
        "acme",
        "--name",
        "rep",
        "--scopes",
        "leads:read",
        "--user",
        "REP@acme.test",
    ).strip()
    assert ApiKey.objects.get(prefix=raw[:11]).created_by == member.user


@pytest.mark.django_db
def test_create_api_key_refuses_admin_scope_for_a_member(account, owner):
    MembershipFactory(account=account, role=Role.MEMBER, user=UserFactory(email="rep@acme.test"))
    with pytest.raises(CommandError):
        run(
            "create_api_key",
            "--account",
            "acme",
            "--name",
            "x",
            "--scopes",
            "admin",
            "--user",
            "rep@acme.test",
        )
    assert not ApiKey.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    "args",
    [
        ["--account", "nope", "--name", "x"],
        ["--account", "acme", "--name", "x", "--scopes", "leads:read,leads:delete"],
        ["--account", "acme", "--name", "x", "--user", "stranger@example.com"],
    ],
    ids=["unknown-account", "unknown-scope", "not-a-member"],
)
def test_create_api_key_with_bad_arguments_raises_command_error(account, owner, args):
    UserFactory(email="stranger@example.com")
    with pytest.raises(CommandError):
        run("create_api_key", *args)
    assert not ApiKey.objects.exists()


@pytest.mark.django_db
def test_create_api_key_for_an_account_without_owner_raises_command_error():
    AccountFactory(slug="orphan")
    with pytest.raises(CommandError):
        run("create_api_key", "--account", "orphan", "--name", "x")


# --- seed_demo -------------------------------------------------------------------------------


@pytest.mark.django_db
def test_seed_demo_creates_owner_account_leads_and_a_working_key():
    output = run("seed_demo")

    user = User.objects.get(email="demo@example.com")
    assert user.check_password("demo")
    account = Account.objects.get(slug="demo")
    assert Membership.objects.get(account=account, user=user).role == Role.OWNER
    assert 180 <= Lead.objects.filter(account=account).count() <= 220

    assert re.search(r"https?://\S+/admin/", output), output
    assert "demo@example.com" in output
    keys = KEY_PATTERN.findall(output)
    assert keys, output
    response = key_client(keys[0]).get("/api/v1/leads?limit=5")
    assert response.status_code == 200
    assert len(response.json()["results"]) == 5


@pytest.mark.django_db
def test_seed_demo_twice_does_not_fail_or_duplicate_leads():
    run("seed_demo")
    leads_after_first = Lead.objects.filter(account__slug="demo").count()
    output = run("seed_demo")

    assert Lead.objects.filter(account__slug="demo").count() == leads_after_first
    assert Account.objects.filter(slug="demo").count() == 1
    assert User.objects.filter(email="demo@example.com").count() == 1
    assert Membership.objects.filter(account__slug="demo", role=Role.OWNER).count() == 1
    raw = KEY_PATTERN.search(output).group(0)
    assert key_client(raw).get("/api/v1/me").json()["account"]["slug"] == "demo"


@pytest.mark.django_db
def test_seed_demo_prints_links_to_where_the_server_will_listen():
    output = run("seed_demo", "--leads", "3", "--base-url", "http://0.0.0.0:8765/")
    assert "http://0.0.0.0:8765/login/" in output and "http://0.0.0.0:8765/admin/" in output
    assert "http://0.0.0.0:8765/api/v1/leads?limit=5" in output
    assert ":8000" not in output
    assert "http://127.0.0.1:8000/login/" in run("seed_demo", "--leads", "3")  # the default


@pytest.mark.django_db
def test_seed_demo_quiet_key_prints_only_the_key():
    output = run("seed_demo", "--leads", "3", "--quiet-key")
    assert KEY_PATTERN.fullmatch(output.strip())
    assert len(output.splitlines()) == 1
