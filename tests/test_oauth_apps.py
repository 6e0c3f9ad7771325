"""Registering OAuth apps (API for account admins, Django admin for operators) and the apps a user has
authorised: the page where they see and revoke them, and its API twin (§3, §4.11)."""

from __future__ import annotations

import pytest
from oauth2_provider.models import get_access_token_model, get_application_model, get_refresh_token_model
from rest_framework.test import APIClient

from accounts.models import AuditLogEntry, OAuthAppRegistration, Role

from .factories import MembershipFactory, UserFactory
from .oauth_support import REDIRECT_URI, authorize_url, exchange, issue_token, make_app, obtain_code, pkce_pair
from .test_auth import assert_problem


def bearer(token: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


def create_app(api, **overrides):
    body = {"name": "CRM Bridge", "redirect_uris": [REDIRECT_URI], **overrides}
    return api.post("/api/v1/oauth-apps", body, format="json")


# --- /api/v1/oauth-apps ------------------------------------------------------------------------


@pytest.mark.django_db
def test_an_admin_registers_a_confidential_app_and_sees_its_secret_once(api, account):
    response = create_app(api)
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["client_type"] == "confidential"
    assert body["redirect_uris"] == [REDIRECT_URI]
    assert body["client_id"] and len(body["client_secret"]) >= 64
    app = get_application_model().objects.get(pk=body["id"])
    assert app.client_secret != body["client_secret"]  # stored hashed
    assert app.authorization_grant_type == "authorization-code" and not app.skip_authorization
    assert OAuthAppRegistration.objects.get(application=app).account == account
    again = api.get(f"/api/v1/oauth-apps/{app.pk}").json()
    assert "client_secret" not in again and again["client_id"] == body["client_id"]
    assert [a["id"] for a in api.get("/api/v1/oauth-apps").json()["results"]] == [app.pk]
    assert AuditLogEntry.objects.filter(account=account, action="oauth_app.created", object_id=str(app.pk)).exists()


@pytest.mark.django_db
def test_a_registered_confidential_app_completes_the_flow_with_its_secret(api, client, account, owner):
    body = create_app(api).json()
    app = get_application_model().objects.get(pk=body["id"])
    client.force_login(owner)
    code, verifier = obtain_code(client, app, account=account)
    assert exchange(client, app, code, verifier).json()["error"] == "invalid_client"  # no secret, no token
    response = exchange(client, app, code, verifier, secret=body["client_secret"])
    assert response.status_code == 200, response.content


@pytest.mark.django_db
def test_a_public_app_has_no_secret(api):
    body = create_app(api, client_type="public").json()
    assert body["client_type"] == "public" and body["client_secret"] is None


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("redirect_uris", "field"),
    [
        ([], "redirect_uris"),
        (["not a url"], "redirect_uris[0]"),
        (["https://client.example.test/cb#frag"], "redirect_uris[0]"),
        (["https://*.example.test/cb"], "redirect_uris[0]"),
        (["https://user@client.example.test/cb"], "redirect_uris[0]"),
        (["ftp://client.example.test/cb"], "redirect_uris"),
    ],
    ids=["none", "whitespace", "fragment", "wildcard", "credentials", "scheme"],
)
def test_invalid_redirect_uris_are_refused(api, redirect_uris, field):
    response = create_app(api, redirect_uris=redirect_uris)
    body = assert_problem(response, 400, "validation_error")
    assert field in {e["field"] for e in body["errors"]}, body
    assert not get_application_model().objects.exists()


@pytest.mark.django_db
def test_production_accepts_only_https_redirect_uris(api, settings):
    settings.OAUTH2_PROVIDER = {**settings.OAUTH2_PROVIDER, "ALLOWED_REDIRECT_URI_SCHEMES": ["https"]}
    assert_problem(create_app(api, redirect_uris=["http://client.example.test/cb"]), 400, "validation_error")
    assert create_app(api, redirect_uris=["https://client.example.test/cb"]).status_code == 201


@pytest.mark.django_db
def test_the_create_body_is_strict(api):
    assert_problem(create_app(api, skip_authorization=True), 400, "unknown_field")
    assert_problem(create_app(api, client_secret="mine"), 400, "read_only_field")
    assert_problem(create_app(api, client_type="trusted"), 400, "validation_error")


@pytest.mark.django_db
def test_registering_apps_needs_the_admin_scope(account, make_client):
    member = make_client(account, scopes=["leads:read", "leads:write"], role=Role.MEMBER)
    assert_problem(create_app(member), 403, "insufficient_scope")
    assert_problem(member.get("/api/v1/oauth-apps"), 403, "insufficient_scope")


@pytest.mark.django_db
def test_another_accounts_app_is_404(api, other_api):
    app_id = create_app(other_api).json()["id"]
    assert api.get("/api/v1/oauth-apps").json()["results"] == []
    assert_problem(api.get(f"/api/v1/oauth-apps/{app_id}"), 404, "not_found")
    assert_problem(api.delete(f"/api/v1/oauth-apps/{app_id}"), 404, "not_found")
    assert get_application_model().objects.filter(pk=app_id).exists()


@pytest.mark.django_db
def test_deleting_an_app_kills_its_tokens(api, client, account, owner):
    body = create_app(api, client_type="public").json()
    app = get_application_model().objects.get(pk=body["id"])
    token = issue_token(client, app, owner, account)
    assert bearer(token["access_token"]).get("/api/v1/leads").status_code == 200
    assert api.delete(f"/api/v1/oauth-apps/{app.pk}").status_code == 204
    assert_problem(bearer(token["access_token"]).get("/api/v1/leads"), 401, "invalid_credentials")
    assert not get_access_token_model().objects.exists() and not get_refresh_token_model().objects.exists()
    assert AuditLogEntry.objects.filter(account=account, action="oauth_app.deleted").exists()


@pytest.mark.django_db
def test_the_consent_screen_names_the_account_that_registered_the_app(api, client, owner):
    app = get_application_model().objects.get(pk=create_app(api, client_type="public").json()["id"])
    client.force_login(owner)
    html = client.get(authorize_url(app, challenge=pkce_pair()[1])).content.decode()
    assert "Registered by the Leadbase account “Acme”" in html


# --- Django admin --------------------------------------------------------------------------------


@pytest.mark.django_db
def test_operators_manage_oauth_apps_in_django_admin(client):
    staff = UserFactory(email="ops@leadbase.test", is_staff=True, is_superuser=True)
    client.force_login(staff)
    app, _ = make_app(name="Operator App")
    changelist = client.get("/admin/oauth2_provider/application/")
    assert changelist.status_code == 200 and b"Operator App" in changelist.content
    add = client.get("/admin/oauth2_provider/application/add/")
    assert add.status_code == 200
    assert b'name="redirect_uris"' in add.content
    assert b'name="skip_authorization"' not in add.content  # consent is never skipped
    assert client.get(f"/admin/oauth2_provider/application/{app.pk}/change/").status_code == 200
    assert client.get("/admin/oauth2_provider/accesstoken/").status_code == 200
    assert client.get("/admin/accounts/oauthappregistration/").status_code == 200


# --- /oauth/authorized-apps/ (the page) ---------------------------------------------------------


@pytest.mark.django_db
def test_the_authorized_apps_page_needs_a_login(client):
    response = client.get("/oauth/authorized-apps/")
    assert response.status_code == 302 and response["Location"].startswith("/login/")


@pytest.mark.django_db
def test_the_page_lists_authorised_apps_by_app_with_scopes_and_account(client, account, other_account, owner):
    MembershipFactory(account=other_account, user=owner, role=Role.MEMBER)
    app, _ = make_app(name="Syncer")
    issue_token(client, app, owner, account, scope="leads:read leads:write")
    issue_token(client, app, owner, other_account, scope="leads:read")
    make_app(name="Never Used")
    client.force_login(owner)
    html = client.get("/oauth/authorized-apps/").content.decode()
    assert html.count("<h2>Syncer</h2>") == 1
    assert "Acme" in html and "Globex" in html
    assert "<code>leads:write</code>" in html
    assert "Never Used" not in html
    assert "account:" not in html


@pytest.mark.django_db
def test_revoking_on_the_page_ends_the_apps_access_in_that_account(client, account, other_account, owner):
    MembershipFactory(account=other_account, user=owner, role=Role.OWNER)
    app, _ = make_app(name="Syncer")
    here = issue_token(client, app, owner, account)
    there = issue_token(client, app, owner, other_account)
    client.force_login(owner)
    response = client.post("/oauth/authorized-apps/", {"app_id": app.pk, "account_id": account.pk}, follow=True)
    assert response.status_code == 200 and b"Access revoked in Acme" in response.content
    assert_problem(bearer(here["access_token"]).get("/api/v1/leads"), 401, "invalid_credentials")
    refused = client.post(
        "/oauth/token/",
        {"grant_type": "refresh_token", "refresh_token": here["refresh_token"], "client_id": app.client_id},
    )
    assert refused.json()["error"] == "invalid_grant"
    assert bearer(there["access_token"]).get("/api/v1/leads").status_code == 200  # the other account keeps it
    assert AuditLogEntry.objects.filter(account=account, action="oauth.authorization_revoked").exists()


@pytest.mark.django_db
def test_a_user_cannot_revoke_someone_elses_authorisation(client, account, owner):
    app, _ = make_app()
    token = issue_token(client, app, owner, account)
    intruder = MembershipFactory(account=account, role=Role.MEMBER).user
    client.force_login(intruder)
    response = client.post("/oauth/authorized-apps/", {"app_id": app.pk, "account_id": account.pk}, follow=True)
    assert b"Nothing to revoke" in response.content
    assert bearer(token["access_token"]).get("/api/v1/leads").status_code == 200


@pytest.mark.django_db
def test_the_revoke_button_needs_the_csrf_token(account, owner):
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    app, _ = make_app()
    client.force_login(owner)
    assert client.post("/oauth/authorized-apps/", {"app_id": app.pk, "account_id": account.pk}).status_code == 403


# --- /api/v1/me/authorized-apps (the API twin) ---------------------------------------------------


@pytest.mark.django_db
def test_the_api_lists_the_users_authorised_apps_in_this_account_only(client, account, other_account, owner, make_key):
    MembershipFactory(account=other_account, user=owner, role=Role.OWNER)
    app, _ = make_app(name="Syncer")
    other_app, _ = make_app(name="Elsewhere")
    issue_token(client, app, owner, account, scope="leads:read leads:write")
    issue_token(client, other_app, owner, other_account)
    someone = MembershipFactory(account=account, role=Role.OWNER).user
    issue_token(client, make_app(name="Theirs")[0], someone, account)
    api = APIClient()
    api.credentials(HTTP_X_API_KEY=make_key(account, user=owner))
    body = api.get("/api/v1/me/authorized-apps").json()
    assert [(a["application"]["name"], a["scopes"]) for a in body["results"]] == [
        ("Syncer", ["leads:read", "leads:write"])
    ]
    detail = api.get(f"/api/v1/me/authorized-apps/{app.pk}")
    assert detail.status_code == 200 and detail.json()["application"]["client_id"] == app.client_id
    assert_problem(api.get(f"/api/v1/me/authorized-apps/{other_app.pk}"), 404, "not_found")


@pytest.mark.django_db
def test_the_api_revokes_an_authorised_app(client, account, owner, make_key):
    app, _ = make_app()
    token = issue_token(client, app, owner, account)
    api = APIClient()
    api.credentials(HTTP_X_API_KEY=make_key(account, user=owner))
    assert api.delete(f"/api/v1/me/authorized-apps/{app.pk}").status_code == 204
    assert_problem(bearer(token["access_token"]).get("/api/v1/leads"), 401, "invalid_credentials")
    assert api.get("/api/v1/me/authorized-apps").json()["results"] == []
    assert_problem(api.delete(f"/api/v1/me/authorized-apps/{app.pk}"), 404, "not_found")


@pytest.mark.django_db
def test_an_oauth_token_sees_its_own_authorisation_and_can_end_it(client, account, owner):
    app, _ = make_app()
    token = issue_token(client, app, owner, account, scope="leads:read leads:write")
    api = bearer(token["access_token"])
    assert [a["application"]["id"] for a in api.get("/api/v1/me/authorized-apps").json()["results"]] == [app.pk]
    assert api.delete(f"/api/v1/me/authorized-apps/{app.pk}").status_code == 204
    assert_problem(api.get("/api/v1/me/authorized-apps"), 401, "invalid_credentials")


@pytest.mark.django_db
def test_revoking_also_drops_unused_codes(client, account, owner, make_key):
    app, _ = make_app()
    issue_token(client, app, owner, account)
    client.force_login(owner)
    code, verifier = obtain_code(client, app, account=account)
    api = APIClient()
    api.credentials(HTTP_X_API_KEY=make_key(account, user=owner))
    assert api.delete(f"/api/v1/me/authorized-apps/{app.pk}").status_code == 204
    assert exchange(client, app, code, verifier).json()["error"] == "invalid_grant"


@pytest.mark.django_db
def test_the_page_and_the_api_call_the_same_service(monkeypatch, client, account, owner, make_key):
    from accounts import services

    calls = []
    real = services.oauth_authorization_revoke
    monkeypatch.setattr(services, "oauth_authorization_revoke", lambda **kw: calls.append(kw) or real(**kw))
    app, _ = make_app()
    issue_token(client, app, owner, account)
    client.force_login(owner)
    client.post("/oauth/authorized-apps/", {"app_id": app.pk, "account_id": account.pk})
    issue_token(client, app, owner, account)
    api = APIClient()
    api.credentials(HTTP_X_API_KEY=make_key(account, user=owner))
    api.delete(f"/api/v1/me/authorized-apps/{app.pk}")
    assert [(c["app_id"], c["account"]) for c in calls] == [(app.pk, account), (app.pk, account)]
