"""/api/v1/me, /account, /members and /api-keys: roles, last-owner rules, key lifecycle, tenancy (§2, §3)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.models import ApiKey, AuditLogEntry, Membership, Role, User
from accounts.services import api_key_create
from accounts.tasks import flush_api_key_usage
from core.errors import PermissionDenied

from .factories import AccountFactory, LeadFactory, MembershipFactory, UserFactory

LEADS = ["leads:read", "leads:write"]


def key_client(raw: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_X_API_KEY=raw)
    return client


def code_of(response) -> str:
    return response.json()["code"]


@pytest.fixture
def sole_owner(account, make_key):
    """The only owner of `account`, with an all-scopes key; returns (membership, client)."""
    membership = MembershipFactory(account=account, role=Role.OWNER, user=UserFactory(email="boss@acme.test"))
    return membership, key_client(make_key(account, user=membership.user))


@pytest.fixture
def admin_client(account, make_client):
    return make_client(account, role=Role.ADMIN)


@pytest.fixture
def member_client(account, make_client):
    return make_client(account, scopes=LEADS, role=Role.MEMBER)


# --- /me -------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_me_returns_user_account_role_and_scopes(account, make_key):
    membership = MembershipFactory(account=account, role=Role.ADMIN, user=UserFactory(email="me@acme.test"))
    raw = make_key(account, user=membership.user, scopes=["leads:read", "admin"])
    body = key_client(raw).get("/api/v1/me").json()
    assert body["user"]["email"] == "me@acme.test"
    assert body["account"] == {"id": account.pk, "slug": "acme", "name": account.name, "plan": "pro"}
    assert body["role"] == "admin"
    assert body["scopes"] == ["admin", "leads:read"]
    assert body["credential"]["prefix"] == raw[:11]


# --- /account --------------------------------------------------------------------------------


@pytest.mark.django_db
def test_account_shows_plan_budget_limit_and_lead_count(account, other_account, api):
    LeadFactory.create_batch(3, account=account)
    LeadFactory.create_batch(2, account=other_account)
    body = api.get("/api/v1/account").json()
    assert body["slug"] == "acme"
    assert body["plan"] == "pro"
    assert body["request_budget"] == 1000
    assert body["rate_limit_window_seconds"] == 600
    assert body["lead_limit"] is None
    assert body["lead_count"] == 3


@pytest.mark.django_db
def test_free_account_shows_free_limits_and_overrides(make_client):
    free = AccountFactory(slug="tiny", plan="free")
    client = make_client(free, scopes=["leads:read"])
    body = client.get("/api/v1/account").json()
    assert (body["plan"], body["request_budget"], body["lead_limit"], body["lead_count"]) == (
        "free",
        100,
        100,
        0,
    )

    free.rate_limit_override, free.lead_limit_override = 250, 5000
    free.save()
    body = client.get("/api/v1/account").json()
    assert (body["request_budget"], body["lead_limit"]) == (250, 5000)


@pytest.mark.django_db
def test_patch_account_name_with_admin_scope_renames_and_audits(account, api):
    response = api.patch("/api/v1/account", {"name": "Acme Ltd"}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["name"] == "Acme Ltd"
    account.refresh_from_db()
    assert account.name == "Acme Ltd"
    assert AuditLogEntry.objects.filter(account=account, action="account.updated").count() == 1


@pytest.mark.django_db
def test_patch_account_without_admin_scope_answers_403(account, make_client):
    client = make_client(account, scopes=LEADS, role=Role.OWNER)
    response = client.patch("/api/v1/account", {"name": "Hijacked"}, format="json")
    assert response.status_code == 403
    assert code_of(response) == "insufficient_scope"
    account.refresh_from_db()
    assert account.name != "Hijacked"


@pytest.mark.django_db
def test_patch_account_with_unknown_field_answers_400_unknown_field(account, api):
    response = api.patch("/api/v1/account", {"name": "X", "colour": "red"}, format="json")
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "unknown_field"
    assert body["errors"][0]["field"] == "colour"
    account.refresh_from_db()
    assert account.name != "X"


@pytest.mark.django_db
def test_patch_account_plan_answers_400_read_only_field(account, api):
    response = api.patch("/api/v1/account", {"plan": "free"}, format="json")
    assert response.status_code == 400
    assert code_of(response) == "read_only_field"
    account.refresh_from_db()
    assert account.plan == "pro"


# --- /members --------------------------------------------------------------------------------


@pytest.mark.django_db
def test_members_list_shows_the_accounts_members_only(account, other_account, owner, api):
    MembershipFactory(account=other_account, user=UserFactory(email="spy@globex.test"))
    response = api.get("/api/v1/members")
    assert response.status_code == 200
    body = response.json()
    assert body["has_more"] is False and body["next_cursor"] is None
    emails = {m["user"]["email"] for m in body["results"]}
    assert "owner@acme.test" in emails
    assert "spy@globex.test" not in emails
    assert len(body["results"]) == Membership.objects.filter(account=account).count()


@pytest.mark.django_db
def test_member_role_may_list_members(account, owner, member_client):
    assert member_client.get("/api/v1/members").status_code == 200


@pytest.mark.django_db
def test_add_member_by_email_creates_user_and_membership(account, api):
    response = api.post("/api/v1/members", {"email": "New.Rep@Example.COM", "role": "member"}, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["user"]["email"] == "new.rep@example.com"
    assert body["role"] == "member"
    membership = Membership.objects.get(pk=body["id"])
    assert membership.account == account
    assert not membership.user.has_usable_password()
    assert AuditLogEntry.objects.filter(account=account, action="member.added", object_id=str(body["id"])).exists()


@pytest.mark.django_db
def test_add_existing_user_from_another_account_reuses_the_user(account, other_account, api):
    user = MembershipFactory(account=other_account, user=UserFactory(email="both@example.com")).user
    response = api.post("/api/v1/members", {"email": "both@example.com"}, format="json")
    assert response.status_code == 201
    assert response.json()["role"] == "member"
    assert User.objects.filter(email="both@example.com").count() == 1
    assert set(user.accounts.values_list("slug", flat=True)) == {"acme", "globex"}


@pytest.mark.django_db
def test_adding_an_existing_member_again_answers_409_conflict(account, owner, api):
    response = api.post("/api/v1/members", {"email": "owner@acme.test"}, format="json")
    assert response.status_code == 409
    assert code_of(response) == "conflict"


@pytest.mark.django_db
def test_add_member_with_unknown_role_answers_400(api):
    response = api.post("/api/v1/members", {"email": "x@example.com", "role": "god"}, format="json")
    assert response.status_code == 400
    assert code_of(response) == "validation_error"
    assert not User.objects.filter(email="x@example.com").exists()


@pytest.mark.django_db
def test_member_role_cannot_add_members(member_client):
    response = member_client.post("/api/v1/members", {"email": "friend@example.com"}, format="json")
    assert response.status_code == 403
    assert code_of(response) == "insufficient_scope"
    assert not User.objects.filter(email="friend@example.com").exists()


@pytest.mark.django_db
def test_admin_cannot_add_an_owner(admin_client):
    response = admin_client.post("/api/v1/members", {"email": "o2@example.com", "role": "owner"}, format="json")
    assert response.status_code == 403
    assert code_of(response) == "permission_denied"
    assert not Membership.objects.filter(user__email="o2@example.com").exists()


@pytest.mark.django_db
def test_admin_cannot_promote_a_member_to_owner(account, admin_client):
    member = MembershipFactory(account=account, role=Role.MEMBER)
    response = admin_client.patch(f"/api/v1/members/{member.pk}", {"role": "owner"}, format="json")
    assert response.status_code == 403
    assert code_of(response) == "permission_denied"
    member.refresh_from_db()
    assert member.role == Role.MEMBER


@pytest.mark.django_db
def test_admin_cannot_demote_or_remove_an_owner(account, owner, admin_client):
    owner_membership = Membership.objects.get(account=account, user=owner)
    response = admin_client.patch(f"/api/v1/members/{owner_membership.pk}", {"role": "member"}, format="json")
    assert (response.status_code, code_of(response)) == (403, "permission_denied")
    response = admin_client.delete(f"/api/v1/members/{owner_membership.pk}")
    assert (response.status_code, code_of(response)) == (403, "permission_denied")
    owner_membership.refresh_from_db()
    assert owner_membership.role == Role.OWNER


@pytest.mark.django_db
def test_owner_can_add_another_owner(sole_owner):
    _, client = sole_owner
    response = client.post("/api/v1/members", {"email": "co@example.com", "role": "owner"}, format="json")
    assert response.status_code == 201
    assert response.json()["role"] == "owner"


@pytest.mark.django_db
def test_admin_can_change_a_members_role(account, admin_client):
    member = MembershipFactory(account=account, role=Role.MEMBER)
    response = admin_client.patch(f"/api/v1/members/{member.pk}", {"role": "admin"}, format="json")
    assert response.status_code == 200
    assert response.json()["role"] == "admin"
    member.refresh_from_db()
    assert member.role == Role.ADMIN
    entry = AuditLogEntry.objects.get(account=account, action="member.role_changed")
    assert entry.data["from"] == "member" and entry.data["to"] == "admin"


@pytest.mark.django_db
def test_admin_can_remove_a_member(account, admin_client):
    member = MembershipFactory(account=account, role=Role.MEMBER)
    response = admin_client.delete(f"/api/v1/members/{member.pk}")
    assert response.status_code == 204
    assert not Membership.objects.filter(pk=member.pk).exists()
    assert User.objects.filter(pk=member.user_id).exists()
    assert AuditLogEntry.objects.filter(account=account, action="member.removed").exists()


@pytest.mark.django_db
def test_last_owner_cannot_be_demoted(sole_owner):
    membership, client = sole_owner
    response = client.patch(f"/api/v1/members/{membership.pk}", {"role": "admin"}, format="json")
    assert response.status_code == 409
    assert code_of(response) == "conflict"
    membership.refresh_from_db()
    assert membership.role == Role.OWNER


@pytest.mark.django_db
def test_last_owner_cannot_be_removed(sole_owner):
    membership, client = sole_owner
    response = client.delete(f"/api/v1/members/{membership.pk}")
    assert response.status_code == 409
    assert code_of(response) == "conflict"
    assert Membership.objects.filter(pk=membership.pk).exists()


@pytest.mark.django_db
def test_one_of_two_owners_can_be_demoted(account, sole_owner):
    membership, client = sole_owner
    MembershipFactory(account=account, role=Role.OWNER)
    response = client.patch(f"/api/v1/members/{membership.pk}", {"role": "admin"}, format="json")
    assert response.status_code == 200
    assert response.json()["role"] == "admin"


@pytest.mark.django_db
def test_owner_can_keep_an_owner_an_owner(sole_owner):
    membership, client = sole_owner
    response = client.patch(f"/api/v1/members/{membership.pk}", {"role": "owner"}, format="json")
    assert response.status_code == 200


@pytest.mark.django_db
def test_another_accounts_membership_answers_404(other_account, api):
    foreign = MembershipFactory(account=other_account, role=Role.MEMBER)
    url = f"/api/v1/members/{foreign.pk}"
    for response in (
        api.get(url),
        api.patch(url, {"role": "admin"}, format="json"),
        api.delete(url),
    ):
        assert response.status_code == 404
        assert code_of(response) == "not_found"
    foreign.refresh_from_db()
    assert foreign.role == Role.MEMBER


@pytest.mark.django_db
def test_member_patch_with_unknown_field_answers_400_unknown_field(account, api):
    member = MembershipFactory(account=account, role=Role.MEMBER)
    response = api.patch(f"/api/v1/members/{member.pk}", {"role": "admin", "boss": True}, format="json")
    assert response.status_code == 400
    assert code_of(response) == "unknown_field"


# --- /api-keys -------------------------------------------------------------------------------


@pytest.mark.django_db
def test_created_key_is_shown_once_and_works_immediately(account, api):
    response = api.post("/api/v1/api-keys", {"name": "zapier", "scopes": ["leads:write", "leads:read"]}, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    raw = body["key"]
    assert raw.startswith("lb_") and len(raw) >= 3 + 32
    assert body["prefix"] == raw[:11]
    assert body["scopes"] == ["leads:read", "leads:write"]
    assert body["is_active"] is True
    assert "key_hash" not in body

    new_client = key_client(raw)
    assert new_client.get("/api/v1/leads").status_code == 200
    assert new_client.post("/api/v1/leads", {"email": "via-new-key@example.org"}, format="json").status_code == 201

    flush_api_key_usage()  # with Redis, a key's uses reach its row at most once per interval
    detail = api.get(f"/api/v1/api-keys/{body['id']}")
    assert detail.status_code == 200
    assert "key" not in detail.json()
    assert raw not in detail.content.decode()
    assert detail.json()["request_count"] == 2


@pytest.mark.django_db
def test_key_list_never_includes_the_key_or_its_hash(account, other_account, owner, api):
    _, raw = api_key_create(account=account, created_by=owner, name="listed", scopes=["leads:read"])
    other_owner = MembershipFactory(account=other_account).user
    api_key_create(account=other_account, created_by=other_owner, name="foreign", scopes=["leads:read"])

    response = api.get("/api/v1/api-keys")
    assert response.status_code == 200
    body = response.json()
    assert body["has_more"] is False
    names = [item["name"] for item in body["results"]]
    assert "listed" in names and "foreign" not in names
    for item in body["results"]:
        assert "key" not in item and "key_hash" not in item
    content = response.content.decode()
    assert raw[11:] not in content
    for key_hash in ApiKey.objects.values_list("key_hash", flat=True):
        assert key_hash not in content


@pytest.mark.django_db
def test_revoking_a_key_answers_204_and_the_key_stops_working(account, owner, api):
    key, raw = api_key_create(account=account, created_by=owner, name="doomed", scopes=["leads:read"])
    victim = key_client(raw)
    assert victim.get("/api/v1/leads").status_code == 200

    response = api.delete(f"/api/v1/api-keys/{key.pk}")
    assert response.status_code == 204
    assert response.content == b""

    rejected = victim.get("/api/v1/leads")
    assert rejected.status_code == 401
    assert code_of(rejected) == "invalid_credentials"
    detail = api.get(f"/api/v1/api-keys/{key.pk}").json()
    assert detail["revoked_at"] is not None and detail["is_active"] is False


@pytest.mark.django_db
def test_revoking_twice_is_idempotent_and_audited_once(account, owner, api):
    key, _ = api_key_create(account=account, created_by=owner, name="twice", scopes=["leads:read"])
    assert api.delete(f"/api/v1/api-keys/{key.pk}").status_code == 204
    first = ApiKey.objects.get(pk=key.pk).revoked_at
    assert api.delete(f"/api/v1/api-keys/{key.pk}").status_code == 204
    assert ApiKey.objects.get(pk=key.pk).revoked_at == first
    assert AuditLogEntry.objects.filter(action="api_key.revoked", object_id=str(key.pk)).count() == 1


@pytest.mark.django_db
def test_a_key_can_revoke_itself(account, api):
    me = api.get("/api/v1/me").json()
    assert api.delete(f"/api/v1/api-keys/{me['credential']['id']}").status_code == 204
    assert api.get("/api/v1/me").status_code == 401


@pytest.mark.django_db
def test_member_role_cannot_manage_api_keys(member_client):
    response = member_client.post("/api/v1/api-keys", {"name": "x", "scopes": ["admin"]}, format="json")
    assert response.status_code == 403
    assert code_of(response) == "insufficient_scope"
    assert member_client.get("/api/v1/api-keys").status_code == 403


@pytest.mark.django_db
def test_member_role_cannot_be_granted_an_admin_scoped_key(account):
    member = MembershipFactory(account=account, role=Role.MEMBER)
    with pytest.raises(PermissionDenied):
        api_key_create(account=account, created_by=member.user, name="x", scopes=["leads:read", "admin"])
    assert not ApiKey.objects.filter(created_by=member.user).exists()


@pytest.mark.django_db
def test_create_key_with_unknown_scope_answers_400(api):
    response = api.post("/api/v1/api-keys", {"name": "x", "scopes": ["leads:read", "leads:delete"]}, format="json")
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "validation_error"
    assert any(e["field"].startswith("scopes") for e in body["errors"])
    assert not ApiKey.objects.filter(name="x").exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    "payload",
    [
        {"name": "x"},
        {"name": "x", "scopes": []},
        {"scopes": ["leads:read"]},
        {"name": "x", "scopes": "admin"},
    ],
    ids=["no-scopes", "empty-scopes", "no-name", "scopes-not-a-list"],
)
def test_create_key_with_invalid_body_answers_400_validation_error(api, payload):
    response = api.post("/api/v1/api-keys", payload, format="json")
    assert response.status_code == 400
    assert code_of(response) == "validation_error"


@pytest.mark.django_db
def test_create_key_with_unknown_field_answers_400_unknown_field(api):
    response = api.post("/api/v1/api-keys", {"name": "x", "scopes": ["leads:read"], "owner": 1}, format="json")
    assert response.status_code == 400
    assert code_of(response) == "unknown_field"


@pytest.mark.django_db
def test_create_key_with_expiry_in_the_past_answers_400(api):
    past = (timezone.now() - timedelta(days=1)).isoformat()
    response = api.post("/api/v1/api-keys", {"name": "x", "scopes": ["leads:read"], "expires_at": past}, format="json")
    assert response.status_code == 400
    assert code_of(response) == "validation_error"


@pytest.mark.django_db
def test_create_key_with_future_expiry_stores_it(api):
    future = timezone.now() + timedelta(days=30)
    response = api.post(
        "/api/v1/api-keys",
        {"name": "x", "scopes": ["leads:read"], "expires_at": future.isoformat()},
        format="json",
    )
    assert response.status_code == 201
    stored = ApiKey.objects.get(pk=response.json()["id"]).expires_at
    assert abs((stored - future).total_seconds()) < 1


@pytest.mark.django_db
def test_another_accounts_key_answers_404_on_get_and_delete(other_account, api):
    other_owner = MembershipFactory(account=other_account).user
    foreign, raw = api_key_create(account=other_account, created_by=other_owner, name="theirs", scopes=["leads:read"])
    for response in (api.get(f"/api/v1/api-keys/{foreign.pk}"), api.delete(f"/api/v1/api-keys/{foreign.pk}")):
        assert response.status_code == 404
        assert code_of(response) == "not_found"
    foreign.refresh_from_db()
    assert foreign.revoked_at is None
    assert key_client(raw).get("/api/v1/leads").status_code == 200


@pytest.mark.django_db
def test_key_creation_and_revocation_are_in_the_audit_log(account, api):
    me = api.get("/api/v1/me").json()
    created = api.post(
        "/api/v1/api-keys",
        {"name": "audited", "scopes": ["leads:read"]},
        format="json",
        REMOTE_ADDR="203.0.113.5",
    ).json()
    assert api.delete(f"/api/v1/api-keys/{created['id']}", REMOTE_ADDR="203.0.113.6").status_code == 204

    entries = {
        e.action: e
        for e in AuditLogEntry.objects.filter(account=account, object_type="api_key", object_id=str(created["id"]))
    }
    assert set(entries) == {"api_key.created", "api_key.revoked"}
    created_entry, revoked_entry = entries["api_key.created"], entries["api_key.revoked"]
    assert created_entry.actor_user.email == me["user"]["email"]
    assert created_entry.actor_api_key_id == me["credential"]["id"]
    assert created_entry.data == {"name": "audited", "scopes": ["leads:read"], "prefix": created["prefix"]}
    assert created_entry.ip == "203.0.113.5"
    assert revoked_entry.actor_api_key_id == me["credential"]["id"]
    assert revoked_entry.ip == "203.0.113.6"
    assert created["key"][11:] not in str(created_entry.data)


# --- Concurrency -----------------------------------------------------------------------------


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("operation", ["demote", "remove"])
def test_two_owners_changing_each_other_at_once_leave_one_owner(monkeypatch, operation):
    """Both requests count two owners before either commits; one of them must still see a conflict."""
    import contextlib
    import threading

    from django.db import connection

    from accounts import services
    from accounts.actor import Actor
    from core.errors import Conflict

    account = AccountFactory(slug="race")
    first = MembershipFactory(account=account, role=Role.OWNER)
    second = MembershipFactory(account=account, role=Role.OWNER)
    barrier = threading.Barrier(2, timeout=0.75)
    original = services._ensure_not_last_owner

    def counted_then_wait(acct, membership):
        original(acct, membership)
        # With correct locking the other request is blocked and never arrives here.
        with contextlib.suppress(threading.BrokenBarrierError):
            barrier.wait()

    monkeypatch.setattr(services, "_ensure_not_last_owner", counted_then_wait)
    outcomes: list[str] = []

    def act(actor_membership, target):
        actor = Actor(user=actor_membership.user, account=account, role=Role.OWNER, scopes=frozenset(), via="test")
        try:
            if operation == "demote":
                services.member_update(account=account, membership_id=target.pk, role=Role.ADMIN, actor=actor)
            else:
                services.member_remove(account=account, membership_id=target.pk, actor=actor)
            outcomes.append("ok")
        except Conflict:
            outcomes.append("conflict")
        finally:
            connection.close()

    threads = [
        threading.Thread(target=act, args=(first, first)),
        threading.Thread(target=act, args=(second, second)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)

    assert sorted(outcomes) == ["conflict", "ok"]
    assert Membership.objects.filter(account=account, role=Role.OWNER).count() == 1
