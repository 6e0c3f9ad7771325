"""API key authentication, scopes capped by role, usage audit and the problem+json error shape (§3, §4.6)."""

from __future__ import annotations

import hashlib
import re
import secrets
from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.models import ApiKey, AuditLogEntry, Role
from accounts.services import api_key_create, api_key_revoke
from accounts.tasks import flush_api_key_usage
from core.errors import ERROR_CODES, problem_type

from .factories import MembershipFactory

PROBLEM_KEYS = {"type", "title", "status", "detail", "code", "request_id"}


def key_client(raw: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_X_API_KEY=raw)
    return client


def assert_problem(response, status: int, code: str) -> dict:
    """The response is RFC 9457 problem details with this status and a documented code."""
    assert response.status_code == status, response.content
    assert response["Content-Type"].split(";")[0] == "application/problem+json"
    body = response.json()
    assert set(body) >= PROBLEM_KEYS, body
    assert body["code"] == code
    assert body["code"] in ERROR_CODES
    assert body["status"] == status
    assert body["type"] == problem_type(code)
    assert body["title"] == ERROR_CODES[code][1]
    assert isinstance(body["detail"], str) and body["detail"]
    assert body["request_id"] == response["X-Request-ID"]
    return body


# --- Presenting a key ------------------------------------------------------------------------


@pytest.mark.django_db
def test_key_in_x_api_key_header_authenticates(account, make_key):
    client = APIClient()
    client.credentials(HTTP_X_API_KEY=make_key(account))
    response = client.get("/api/v1/leads")
    assert response.status_code == 200
    assert response.json()["results"] == []


@pytest.mark.django_db
def test_key_in_authorization_bearer_header_authenticates(account, make_key):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {make_key(account)}")
    response = client.get("/api/v1/me")
    assert response.status_code == 200
    assert response.json()["account"]["slug"] == "acme"


@pytest.mark.django_db
def test_bearer_scheme_is_case_insensitive(account, make_key):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"bearer {make_key(account)}")
    assert client.get("/api/v1/leads").status_code == 200


@pytest.mark.django_db
def test_me_reports_the_key_that_authenticated(account, make_key):
    raw = make_key(account, scopes=["leads:read"])
    body = key_client(raw).get("/api/v1/me").json()
    assert body["scopes"] == ["leads:read"]
    assert body["credential"]["type"] == "api_key"
    assert body["credential"]["prefix"] == raw[:11]


# --- 401: no credentials ---------------------------------------------------------------------


@pytest.mark.django_db
def test_request_without_credentials_answers_401_authentication_required():
    response = APIClient().get("/api/v1/leads")
    assert_problem(response, 401, "authentication_required")
    assert response["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.django_db
def test_non_bearer_authorization_scheme_counts_as_no_credentials(account, make_key):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Basic dXNlcjpwYXNz")
    response = client.get("/api/v1/leads")
    assert_problem(response, 401, "authentication_required")
    assert "WWW-Authenticate" in response


# --- 401: bad credentials --------------------------------------------------------------------


@pytest.mark.django_db
def test_unknown_key_answers_401_invalid_credentials(account, make_key):
    make_key(account)  # a real key exists; the presented one is not it
    response = key_client("lb_" + secrets.token_urlsafe(32)).get("/api/v1/leads")
    assert_problem(response, 401, "invalid_credentials")
    assert response["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.django_db
def test_key_with_valid_prefix_but_wrong_secret_answers_401_invalid_credentials(account, make_key):
    raw = make_key(account)
    forged = raw[:11] + ("A" if raw[11] != "A" else "B") + raw[12:]
    assert forged != raw and forged[:11] == raw[:11]
    response = key_client(forged).get("/api/v1/leads")
    assert_problem(response, 401, "invalid_credentials")
    assert ApiKey.objects.get(prefix=raw[:11]).request_count == 0


@pytest.mark.django_db
def test_malformed_key_answers_401_invalid_credentials():
    assert_problem(key_client("not-a-leadbase-key").get("/api/v1/leads"), 401, "invalid_credentials")
    assert_problem(key_client("lb_short").get("/api/v1/leads"), 401, "invalid_credentials")


@pytest.mark.django_db
def test_revoked_key_answers_401_invalid_credentials(account, owner):
    key, raw = api_key_create(account=account, created_by=owner, name="ci", scopes=["leads:read"])
    client = key_client(raw)
    assert client.get("/api/v1/leads").status_code == 200
    api_key_revoke(account=account, key_id=key.pk, user=owner)
    assert_problem(client.get("/api/v1/leads"), 401, "invalid_credentials")


@pytest.mark.django_db
def test_expired_key_answers_401_invalid_credentials(account, owner):
    key, raw = api_key_create(
        account=account,
        created_by=owner,
        name="ci",
        scopes=["leads:read"],
        expires_at=timezone.now() + timedelta(hours=1),
    )
    client = key_client(raw)
    assert client.get("/api/v1/leads").status_code == 200
    key.expires_at = timezone.now() - timedelta(seconds=1)
    key.save(update_fields=["expires_at"])
    assert_problem(client.get("/api/v1/leads"), 401, "invalid_credentials")


def test_a_key_stops_working_when_its_expiry_passes_with_nothing_saved(account, owner, monkeypatch):
    in_an_hour = timezone.now() + timedelta(hours=1)
    _, raw = api_key_create(account=account, created_by=owner, name="ci", scopes=["leads:read"], expires_at=in_an_hour)
    client = key_client(raw)
    assert client.get("/api/v1/leads").status_code == 200  # looked up (and cached, with Redis)
    later = timezone.now() + timedelta(hours=2)
    monkeypatch.setattr(timezone, "now", lambda: later)
    assert_problem(client.get("/api/v1/leads"), 401, "invalid_credentials")


@pytest.mark.django_db
def test_key_whose_creator_left_the_account_answers_401_invalid_credentials(account, owner, make_key):
    leaver = MembershipFactory(account=account, role=Role.ADMIN)
    raw = make_key(account, user=leaver.user)
    client = key_client(raw)
    assert client.get("/api/v1/leads").status_code == 200
    leaver.delete()
    assert_problem(client.get("/api/v1/leads"), 401, "invalid_credentials")


@pytest.mark.django_db
def test_key_whose_creator_was_deactivated_answers_401_invalid_credentials(account, make_key):
    member = MembershipFactory(account=account, role=Role.ADMIN)
    client = key_client(make_key(account, user=member.user))
    member.user.is_active = False
    member.user.save(update_fields=["is_active"])
    assert_problem(client.get("/api/v1/leads"), 401, "invalid_credentials")


@pytest.mark.django_db
def test_key_of_one_account_sees_only_its_own_account(account, other_account, make_key):
    body = key_client(make_key(other_account)).get("/api/v1/me").json()
    assert body["account"]["slug"] == "globex"


# --- 403: scopes -----------------------------------------------------------------------------


@pytest.mark.django_db
def test_read_only_key_cannot_create_a_lead_403_insufficient_scope(account, make_key):
    client = key_client(make_key(account, scopes=["leads:read"]))
    response = client.post("/api/v1/leads", {"email": "a@example.org"}, format="json")
    body = assert_problem(response, 403, "insufficient_scope")
    assert "leads:write" in body["detail"]
    assert client.get("/api/v1/leads").json()["results"] == []


@pytest.mark.django_db
def test_write_only_key_cannot_list_leads_403_insufficient_scope(account, make_key):
    client = key_client(make_key(account, scopes=["leads:write"]))
    assert_problem(client.get("/api/v1/leads"), 403, "insufficient_scope")


@pytest.mark.django_db
def test_leads_key_without_admin_scope_cannot_list_api_keys(account, make_key):
    client = key_client(make_key(account, scopes=["leads:read", "leads:write"]))
    assert_problem(client.get("/api/v1/api-keys"), 403, "insufficient_scope")


@pytest.mark.django_db
def test_admin_key_of_owner_demoted_to_member_loses_admin_scope(account, make_key):
    membership = MembershipFactory(account=account, role=Role.OWNER)
    client = key_client(make_key(account, user=membership.user, scopes=["admin", "leads:read"]))
    assert client.get("/api/v1/api-keys").status_code == 200

    membership.role = Role.MEMBER
    membership.save(update_fields=["role"])

    assert_problem(client.get("/api/v1/api-keys"), 403, "insufficient_scope")
    me = client.get("/api/v1/me").json()
    assert me["role"] == "member"
    assert me["scopes"] == ["leads:read"]
    # The stored grant is unchanged: promoting the user back restores the key's admin scope.
    membership.role = Role.ADMIN
    membership.save(update_fields=["role"])
    assert client.get("/api/v1/api-keys").status_code == 200


# --- Usage audit and storage -----------------------------------------------------------------


@pytest.mark.django_db
def test_each_authenticated_request_updates_last_used_and_request_count(account, make_key):
    raw = make_key(account)
    key = ApiKey.objects.get(prefix=raw[:11])
    assert (key.request_count, key.last_used_at, key.last_used_ip) == (0, None, None)
    client = key_client(raw)

    before = timezone.now()
    client.get("/api/v1/leads", REMOTE_ADDR="203.0.113.7")
    client.get("/api/v1/me", REMOTE_ADDR="198.51.100.9")
    client.get("/api/v1/leads", REMOTE_ADDR="198.51.100.9")

    # With Redis, uses are written at most once per key and interval; the flush task writes the rest.
    flush_api_key_usage()
    key.refresh_from_db()
    assert key.request_count == 3
    assert key.last_used_ip == "198.51.100.9"
    assert before <= key.last_used_at <= timezone.now()


@pytest.mark.django_db
def test_rejected_requests_do_not_count_as_usage(account, owner):
    key, raw = api_key_create(account=account, created_by=owner, name="ci", scopes=["leads:read"])
    api_key_revoke(account=account, key_id=key.pk, user=owner)
    key_client(raw).get("/api/v1/leads")
    key.refresh_from_db()
    assert key.request_count == 0
    assert key.last_used_at is None


@pytest.mark.django_db
def test_stored_key_row_holds_only_prefix_and_sha256_hash(account, owner):
    key, raw = api_key_create(account=account, created_by=owner, name="ci", scopes=["leads:read"])

    assert re.fullmatch(r"lb_[A-Za-z0-9_\-]{32,}", raw)
    row = ApiKey.objects.filter(pk=key.pk).values().get()
    assert row["prefix"] == raw[:11]
    assert row["key_hash"] == hashlib.sha256(raw.encode()).hexdigest()
    secret_part = raw[11:]
    for column, value in row.items():
        assert secret_part not in str(value), column
    for entry in AuditLogEntry.objects.filter(account=account).values():
        assert secret_part not in str(entry)


@pytest.mark.django_db
def test_two_keys_never_share_a_prefix(account, owner):
    raws = [
        api_key_create(account=account, created_by=owner, name=f"k{i}", scopes=["leads:read"])[1] for i in range(20)
    ]
    assert len(set(raws)) == 20
    assert len({raw[:11] for raw in raws}) == 20


# --- Problem details on every error ----------------------------------------------------------

ERROR_REQUESTS = [
    pytest.param("anonymous", "get", "/api/v1/leads", None, 401, "authentication_required", id="no-credentials"),
    pytest.param("bad_key", "get", "/api/v1/leads", None, 401, "invalid_credentials", id="bad-key"),
    pytest.param(
        "read_only",
        "post",
        "/api/v1/leads",
        {"email": "x@example.org"},
        403,
        "insufficient_scope",
        id="insufficient-scope",
    ),
    pytest.param("full", "get", "/api/v1/no-such-thing", None, 404, "not_found", id="unknown-path"),
    pytest.param("anonymous", "get", "/api/v1/no-such-thing", None, 404, "not_found", id="unknown-path-anon"),
    pytest.param("full", "get", "/api/v1/members/999999", None, 404, "not_found", id="unknown-member"),
    pytest.param("full", "put", "/api/v1/api-keys", {}, 405, "method_not_allowed", id="method-not-allowed"),
    pytest.param("full", "post", "/api/v1/leads", {"nope": 1}, 400, "unknown_field", id="unknown-field"),
    pytest.param(
        "full",
        "post",
        "/api/v1/api-keys",
        {"name": "x", "scopes": []},
        400,
        "validation_error",
        id="validation-error",
    ),
]


@pytest.fixture
def clients(account, make_key):
    return {
        "anonymous": APIClient(),
        "bad_key": key_client("lb_" + secrets.token_urlsafe(32)),
        "read_only": key_client(make_key(account, scopes=["leads:read"])),
        "full": key_client(make_key(account)),
    }


@pytest.mark.django_db
@pytest.mark.parametrize(("who", "method", "path", "data", "status", "code"), ERROR_REQUESTS)
def test_every_error_is_problem_json_with_a_documented_code(clients, who, method, path, data, status, code):
    response = getattr(clients[who], method)(path, data, format="json")
    assert_problem(response, status, code)


@pytest.mark.django_db
def test_malformed_json_body_is_problem_json_malformed_request(api):
    response = api.post("/api/v1/leads", data=b"{not json", content_type="application/json")
    assert_problem(response, 400, "malformed_request")


@pytest.mark.django_db
def test_method_not_allowed_lists_the_allowed_methods(api):
    response = api.put("/api/v1/api-keys", {}, format="json")
    assert_problem(response, 405, "method_not_allowed")
    assert "GET" in response["Allow"] and "POST" in response["Allow"]


# --- Request ids -----------------------------------------------------------------------------


@pytest.mark.django_db
def test_client_request_id_is_echoed_in_header_and_error_body():
    response = APIClient().get("/api/v1/leads", HTTP_X_REQUEST_ID="client-req-42")
    assert response["X-Request-ID"] == "client-req-42"
    assert response.json()["request_id"] == "client-req-42"


@pytest.mark.django_db
def test_request_id_is_echoed_on_success_too(api):
    response = api.get("/api/v1/leads", HTTP_X_REQUEST_ID="abc.123:def-456")
    assert response.status_code == 200
    assert response["X-Request-ID"] == "abc.123:def-456"


@pytest.mark.django_db
def test_request_id_is_generated_when_the_client_sends_none(api):
    first = api.get("/api/v1/leads")
    second = api.get("/api/v1/leads")
    assert re.fullmatch(r"[0-9a-f]{32}", first["X-Request-ID"])
    assert first["X-Request-ID"] != second["X-Request-ID"]


@pytest.mark.django_db
@pytest.mark.parametrize("bad", ["has spaces", "x" * 129, "<script>", "a\tb"])
def test_malformed_client_request_id_is_replaced_by_a_generated_one(bad):
    response = APIClient().get("/api/v1/leads", HTTP_X_REQUEST_ID=bad)
    assert re.fullmatch(r"[0-9a-f]{32}", response["X-Request-ID"])
    assert response.json()["request_id"] == response["X-Request-ID"]


# --- Routing ---------------------------------------------------------------------------------


@pytest.mark.django_db
def test_unknown_api_path_is_problem_json_404(api):
    response = api.get("/api/v1/does/not/exist")
    body = assert_problem(response, 404, "not_found")
    assert "/api/v1/does/not/exist" in body["detail"]


@pytest.mark.django_db
def test_trailing_slash_post_creates_a_lead_without_redirect(api):
    response = api.post("/api/v1/leads/", {"email": "slash@example.org"}, format="json")
    assert response.status_code == 201, response.content
    assert response.json()["email"] == "slash@example.org"
    listed = api.get("/api/v1/leads/")
    assert listed.status_code == 200
    assert [lead["email"] for lead in listed.json()["results"]] == ["slash@example.org"]


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/api/v1/me/", "/api/v1/account/", "/api/v1/members/", "/api/v1/api-keys/"])
def test_trailing_slash_is_served_not_redirected(api, path):
    assert api.get(path).status_code == 200
