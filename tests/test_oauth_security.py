"""What the OAuth server refuses (§3; issue 7, done-means 2 and 3): PKCE other than S256, malformed
verifiers, redirect URIs that are not exactly registered, grants other than the authorization code,
tokens beyond their scopes, their account or their user's role; and introspection between clients."""

from __future__ import annotations

import base64

import pytest
from django.test import Client
from oauth2_provider.models import get_access_token_model, get_grant_model
from oauthlib.common import Request as OAuthlibRequest
from rest_framework.test import APIClient

from accounts.models import Membership, Role
from accounts.oauth_server import LeadbaseOAuth2Validator
from accounts.services import member_remove, member_update

from .factories import AccountFactory, LeadFactory, MembershipFactory, UserFactory
from .oauth_support import (
    REDIRECT_URI,
    authorize_url,
    consent,
    exchange,
    issue_token,
    make_app,
    obtain_code,
    pkce_pair,
    query,
    refresh,
)
from .test_auth import assert_problem


def bearer(token: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


@pytest.fixture
def app(db):
    return make_app()[0]


@pytest.fixture
def logged_in(client, owner):
    client.force_login(owner)
    return client


def assert_redirected_with_error(response, error: str, state: str | None = None) -> dict:
    """Refused the standard way: back to the registered redirect URI with `error`, and no code."""
    assert response.status_code == 302, response.content
    assert response["Location"].startswith(REDIRECT_URI + "?")
    params = query(response["Location"])
    assert params["error"] == error, params
    assert "code" not in params
    if state is not None:
        assert params["state"] == state
    return params


def assert_token_error(response, error: str) -> dict:
    assert response.status_code in (400, 401), response.content
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert body["error"] == error, body
    assert "access_token" not in body
    return body


# --- Done-means 2: PKCE -------------------------------------------------------------------------


@pytest.mark.django_db
def test_an_authorization_request_without_code_challenge_is_refused(logged_in, app):
    response = logged_in.get(authorize_url(app, state="s1"))
    assert_redirected_with_error(response, "invalid_request", state="s1")
    assert not get_grant_model().objects.exists()


@pytest.mark.django_db
def test_the_plain_code_challenge_method_is_refused(logged_in, app):
    verifier, _ = pkce_pair()
    response = logged_in.get(authorize_url(app, code_challenge=verifier, code_challenge_method="plain", state="s2"))
    params = assert_redirected_with_error(response, "invalid_request", state="s2")
    assert "S256" in params["error_description"]


@pytest.mark.django_db
def test_a_code_challenge_without_method_is_refused_since_it_would_mean_plain(logged_in, app):
    verifier, _ = pkce_pair()
    assert_redirected_with_error(logged_in.get(authorize_url(app, code_challenge=verifier)), "invalid_request")


@pytest.mark.django_db
@pytest.mark.parametrize("challenge", ["short", "A" * 44, "A" * 42 + "+"], ids=["short", "too-long", "not-base64url"])
def test_a_malformed_s256_challenge_is_refused(logged_in, app, challenge):
    response = logged_in.get(authorize_url(app, code_challenge=challenge, code_challenge_method="S256"))
    assert_redirected_with_error(response, "invalid_request")


@pytest.mark.django_db
def test_a_consent_form_tampered_to_plain_is_refused_and_issues_no_code(logged_in, account, app):
    verifier, challenge = pkce_pair()
    response = consent(logged_in, app, account=account, challenge=challenge)
    assert "code" in query(response["Location"])  # the honest form works
    url = authorize_url(app, challenge=challenge)
    fields = {
        "redirect_uri": REDIRECT_URI,
        "scope": "leads:read",
        "client_id": app.client_id,
        "state": "s3",
        "response_type": "code",
        "code_challenge": verifier,
        "code_challenge_method": "plain",
        "account": str(account.pk),
        "allow": "true",
    }
    tampered = logged_in.post(url, fields)
    assert_redirected_with_error(tampered, "invalid_request", state="s3")
    assert get_grant_model().objects.count() == 1


@pytest.mark.django_db
def test_a_wrong_code_verifier_gets_invalid_grant(logged_in, account, app):
    code, _ = obtain_code(logged_in, app, account=account)
    other_verifier, _ = pkce_pair()
    assert_token_error(exchange(logged_in, app, code, other_verifier), "invalid_grant")


@pytest.mark.django_db
def test_a_missing_code_verifier_is_refused(logged_in, account, app):
    code, _ = obtain_code(logged_in, app, account=account)
    assert_token_error(exchange(logged_in, app, code, None), "invalid_request")


@pytest.mark.django_db
@pytest.mark.parametrize("length", [42, 129])
def test_a_code_verifier_outside_43_to_128_characters_is_refused_even_when_it_matches(logged_in, account, app, length):
    # The library would accept it: the challenge is computed from this very verifier.
    verifier, challenge = pkce_pair(length)
    response = consent(logged_in, app, account=account, challenge=challenge)
    code = query(response["Location"])["code"]
    body = assert_token_error(exchange(logged_in, app, code, verifier), "invalid_request")
    assert "43 to 128" in body["error_description"]
    assert not get_access_token_model().objects.exists()


@pytest.mark.django_db
def test_a_code_verifier_with_characters_outside_the_unreserved_set_is_refused(logged_in, account, app):
    code, verifier = obtain_code(logged_in, app, account=account)
    assert_token_error(exchange(logged_in, app, code, verifier[:-1] + "!"), "invalid_request")


@pytest.mark.django_db
def test_the_boundary_lengths_43_and_128_are_accepted(logged_in, account, app):
    for length in (43, 128):
        verifier, challenge = pkce_pair(length)
        code = query(consent(logged_in, app, account=account, challenge=challenge)["Location"])["code"]
        assert exchange(logged_in, app, code, verifier).status_code == 200


@pytest.mark.django_db
def test_a_code_works_once_and_expires_after_its_minute(logged_in, account, app):
    from datetime import timedelta

    from django.utils import timezone

    code, verifier = obtain_code(logged_in, app, account=account)
    assert exchange(logged_in, app, code, verifier).status_code == 200
    assert_token_error(exchange(logged_in, app, code, verifier), "invalid_grant")

    code, verifier = obtain_code(logged_in, app, account=account)
    get_grant_model().objects.update(expires=timezone.now() - timedelta(seconds=1))
    assert_token_error(exchange(logged_in, app, code, verifier), "invalid_grant")


# --- Done-means 2: exact redirect URI -----------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    "redirect_uri",
    [
        "https://client.example.test/callbacK",
        "https://client.example.test/callback/",
        "https://client.example.test/callbac",
        "http://client.example.test/callback",
        "https://client.example.tes/callback",
        "https://client.example.test/callback?x=1",
        "https://client.example.test:444/callback",
        "https://evil@client.example.test/callback",
    ],
)
def test_a_redirect_uri_differing_by_one_character_is_refused_without_redirecting(logged_in, app, redirect_uri):
    _, challenge = pkce_pair()
    response = logged_in.get(authorize_url(app, challenge=challenge, redirect_uri=redirect_uri))
    assert response.status_code == 400
    assert not response.has_header("Location")
    assert b"<strong>invalid_request</strong>" in response.content
    assert b"Mismatching redirect URI" in response.content or b"Invalid redirect URI" in response.content
    assert redirect_uri.encode() not in response.content


@pytest.mark.django_db
def test_an_unknown_client_is_refused_without_redirecting(logged_in, app):
    _, challenge = pkce_pair()
    response = logged_in.get(authorize_url(app, challenge=challenge, client_id="nope"))
    assert response.status_code in (400, 401) and not response.has_header("Location")


@pytest.mark.django_db
def test_the_token_request_must_repeat_the_exact_redirect_uri(logged_in, account, app):
    code, verifier = obtain_code(logged_in, app, account=account)
    response = exchange(logged_in, app, code, verifier, redirect_uri=REDIRECT_URI + "x")
    assert response.status_code == 400 and "access_token" not in response.json()


# --- No other grants ----------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_implicit_grant_is_refused(logged_in, app):
    _, challenge = pkce_pair()
    response = logged_in.get(authorize_url(app, challenge=challenge, response_type="token"))
    assert_redirected_with_error(response, "unsupported_response_type")
    assert "access_token" not in response["Location"]


@pytest.mark.django_db
@pytest.mark.parametrize(
    "grant",
    [
        {"grant_type": "password", "username": "owner@acme.test", "password": "pw-for-tests-123"},
        {"grant_type": "client_credentials"},
        {"grant_type": "urn:ietf:params:oauth:grant-type:device_code", "device_code": "x"},
    ],
    ids=["password", "client_credentials", "device_code"],
)
def test_grants_other_than_authorization_code_are_refused(client, owner, grant):
    from oauth2_provider.models import get_application_model

    Application = get_application_model()
    # Even an app an operator registered for that grant gets nothing.
    kind = {
        "password": Application.GRANT_PASSWORD,
        "client_credentials": Application.GRANT_CLIENT_CREDENTIALS,
    }.get(grant["grant_type"], Application.GRANT_DEVICE_CODE)
    app = Application.objects.create(
        name="legacy", client_type="confidential", authorization_grant_type=kind, client_secret="s3cret-s3cret"
    )
    basic = base64.b64encode(f"{app.client_id}:s3cret-s3cret".encode()).decode()
    response = client.post("/oauth/token/", grant, HTTP_AUTHORIZATION=f"Basic {basic}")
    assert_token_error(response, "unsupported_grant_type")


# --- Done-means 2: scopes and tenancy -----------------------------------------------------------


@pytest.mark.django_db
def test_a_token_with_leads_read_cannot_write(client, account, owner, app):
    api = bearer(issue_token(client, app, owner, account, scope="leads:read")["access_token"])
    assert api.get("/api/v1/leads").status_code == 200
    response = api.post("/api/v1/leads", {"email": "new@example.org"}, format="json")
    body = assert_problem(response, 403, "insufficient_scope")
    assert "leads:write" in body["detail"]
    assert_problem(api.get("/api/v1/api-keys"), 403, "insufficient_scope")


@pytest.mark.django_db
def test_a_token_with_leads_write_can_write(client, account, owner, app):
    api = bearer(issue_token(client, app, owner, account, scope="leads:read leads:write")["access_token"])
    assert api.post("/api/v1/leads", {"email": "new@example.org"}, format="json").status_code == 201


@pytest.mark.django_db
def test_a_token_for_account_a_cannot_see_account_b_leads(client, account, other_account, owner, app):
    MembershipFactory(account=other_account, user=owner, role=Role.OWNER)  # the user is in both
    a_lead, b_lead = LeadFactory(account=account), LeadFactory(account=other_account)
    api = bearer(issue_token(client, app, owner, account, scope="leads:read leads:write")["access_token"])
    assert [lead["id"] for lead in api.get("/api/v1/leads").json()["results"]] == [str(a_lead.pk)]
    assert_problem(api.get(f"/api/v1/leads/{b_lead.pk}"), 404, "not_found")
    assert_problem(api.patch(f"/api/v1/leads/{b_lead.pk}", {"city": "X"}, format="json"), 404, "not_found")
    assert_problem(api.delete(f"/api/v1/leads/{b_lead.pk}"), 404, "not_found")


@pytest.mark.django_db
def test_a_client_cannot_name_the_account_in_its_request(logged_in, account, app):
    _, challenge = pkce_pair()
    response = logged_in.get(authorize_url(app, challenge=challenge, scope=f"leads:read account:{account.pk}"))
    assert_redirected_with_error(response, "invalid_scope")


@pytest.mark.django_db
def test_an_unknown_scope_is_refused(logged_in, app):
    _, challenge = pkce_pair()
    assert_redirected_with_error(
        logged_in.get(authorize_url(app, challenge=challenge, scope="leads:read everything")), "invalid_scope"
    )


@pytest.mark.django_db
def test_the_consent_cannot_be_pointed_at_an_account_the_user_is_not_in(logged_in, account, other_account, app):
    _, challenge = pkce_pair()
    response = consent(logged_in, app, account=other_account, challenge=challenge)
    assert response.status_code == 200
    assert b"Choose the account" in response.content
    assert not get_grant_model().objects.exists()


# --- Done-means 3: a member cannot grant admin --------------------------------------------------


@pytest.mark.django_db
def test_a_member_cannot_grant_admin(client, account, app):
    member = MembershipFactory(account=account, role=Role.MEMBER).user
    client.force_login(member)
    _, challenge = pkce_pair()
    response = consent(client, app, account=account, scope="leads:read admin", challenge=challenge)
    # Refused on the form, with the reason; nothing is issued and the client is not told anything yet.
    assert response.status_code == 200
    assert b"cannot grant admin" in response.content
    assert not response.has_header("Location")
    assert not get_grant_model().objects.exists()
    # Deny still works from there.
    denied = consent(client, app, account=account, scope="leads:read admin", challenge=challenge, allow=False)
    assert_redirected_with_error(denied, "access_denied")


@pytest.mark.django_db
def test_a_user_who_is_member_here_and_admin_there_can_grant_admin_only_there(client, account, other_account, app):
    user = UserFactory()
    MembershipFactory(account=account, user=user, role=Role.MEMBER)
    MembershipFactory(account=other_account, user=user, role=Role.ADMIN)
    client.force_login(user)
    _, challenge = pkce_pair()
    refused = consent(client, app, account=account, scope="admin", challenge=challenge)
    assert refused.status_code == 200 and b"cannot grant admin" in refused.content
    token = issue_token(client, app, user, other_account, scope="admin leads:read")
    assert bearer(token["access_token"]).get("/api/v1/api-keys").status_code == 200


@pytest.mark.django_db
def test_the_validator_refuses_admin_for_a_member_even_if_the_form_is_bypassed(account, app):
    member = MembershipFactory(account=account, role=Role.MEMBER).user
    validator = LeadbaseOAuth2Validator()
    request = OAuthlibRequest("https://testserver/oauth/authorize/")
    request.user = member
    scopes = ["leads:read", "admin", f"account:{account.pk}"]
    assert not validator.validate_scopes(app.client_id, scopes, app, request)
    assert validator.validate_scopes(app.client_id, ["leads:read", f"account:{account.pk}"], app, request)
    # Two accounts, or none, is never a valid consent.
    assert not validator.validate_scopes(app.client_id, ["leads:read"], app, request)
    other = AccountFactory()
    MembershipFactory(account=other, user=member)
    two = ["leads:read", f"account:{account.pk}", f"account:{other.pk}"]
    assert not validator.validate_scopes(app.client_id, two, app, request)


@pytest.mark.django_db
def test_demoting_the_user_after_consent_shrinks_the_tokens_effective_scopes(client, account, owner, app):
    admin_user = MembershipFactory(account=account, role=Role.ADMIN).user
    api = bearer(issue_token(client, app, admin_user, account, scope="leads:read admin")["access_token"])
    assert api.get("/api/v1/api-keys").status_code == 200
    membership = Membership.objects.get(account=account, user=admin_user)
    owner_actor = _owner_actor(account, owner)
    member_update(account=account, membership_id=membership.pk, role=Role.MEMBER, actor=owner_actor)
    assert_problem(api.get("/api/v1/api-keys"), 403, "insufficient_scope")
    assert api.get("/api/v1/me").json()["scopes"] == ["leads:read"]
    # Promoted back, the stored grant applies again (like API keys).
    member_update(account=account, membership_id=membership.pk, role=Role.ADMIN, actor=owner_actor)
    assert api.get("/api/v1/api-keys").status_code == 200


@pytest.mark.django_db
def test_removing_the_membership_makes_the_token_401_and_its_refresh_fail(client, account, owner, app):
    member = MembershipFactory(account=account, role=Role.MEMBER).user
    token = issue_token(client, app, member, account)
    api = bearer(token["access_token"])
    assert api.get("/api/v1/leads").status_code == 200
    membership = Membership.objects.get(account=account, user=member)
    member_remove(account=account, membership_id=membership.pk, actor=_owner_actor(account, owner))
    assert_problem(api.get("/api/v1/leads"), 401, "invalid_credentials")
    assert_token_error(refresh(client, app, token["refresh_token"]), "invalid_grant")


@pytest.mark.django_db
def test_a_code_is_refused_when_the_user_left_the_account_before_the_exchange(client, account, owner, app):
    member = MembershipFactory(account=account, role=Role.MEMBER).user
    client.force_login(member)
    code, verifier = obtain_code(client, app, account=account)
    Membership.objects.filter(user=member).delete()
    assert_token_error(exchange(client, app, code, verifier), "invalid_grant")


@pytest.mark.django_db
def test_a_deactivated_users_token_answers_401(client, account, owner, app):
    api = bearer(issue_token(client, app, owner, account)["access_token"])
    owner.is_active = False
    owner.save()
    assert_problem(api.get("/api/v1/leads"), 401, "invalid_credentials")


def _owner_actor(account, owner):
    from accounts.actor import Actor
    from accounts.scopes import ROLE_SCOPES

    return Actor(user=owner, account=account, role=Role.OWNER, scopes=ROLE_SCOPES[Role.OWNER])


# --- Presenting tokens --------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("value", ["not-a-token", "x" * 600, "lb_but-not-a-key"])
def test_an_unknown_bearer_value_answers_401_invalid_credentials(value):
    assert_problem(bearer(value).get("/api/v1/leads"), 401, "invalid_credentials")


@pytest.mark.django_db
def test_an_access_token_in_the_query_string_is_not_accepted(client, account, owner, app):
    token = issue_token(client, app, owner, account)["access_token"]
    assert_problem(APIClient().get(f"/api/v1/leads?access_token={token}"), 401, "authentication_required")


@pytest.mark.django_db
def test_an_api_key_in_authorization_bearer_still_works_beside_oauth(account, make_key):
    assert bearer(make_key(account)).get("/api/v1/leads").status_code == 200


@pytest.mark.django_db
def test_me_tells_the_credential_is_an_oauth_token(client, account, owner, app):
    body = bearer(issue_token(client, app, owner, account)["access_token"]).get("/api/v1/me").json()
    assert body["credential"]["type"] == "oauth"
    assert body["account"]["slug"] == account.slug


# --- Introspection ------------------------------------------------------------------------------


def _basic(app, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{app.client_id}:{secret}".encode()).decode()


@pytest.mark.django_db
def test_introspection_tells_a_confidential_client_about_its_own_token(client, account, owner):
    app, secret = make_app(client_type="confidential")
    token = issue_token(client, app, owner, account, scope="leads:read", secret=secret)
    response = Client().post(
        "/oauth/introspect/", {"token": token["access_token"]}, HTTP_AUTHORIZATION=_basic(app, secret)
    )
    body = response.json()
    assert response.status_code == 200 and body["active"] is True
    assert body["client_id"] == app.client_id and body["username"] == owner.email
    assert set(body["scope"].split()) == {"leads:read", f"account:{account.pk}"}
    assert "no-store" in response["Cache-Control"]


@pytest.mark.django_db
def test_introspection_says_inactive_for_another_clients_token_or_a_dead_one(client, account, owner):
    mine, secret = make_app(client_type="confidential")
    theirs, _ = make_app(name="Other")
    their_token = issue_token(client, theirs, owner, account)["access_token"]
    for token in (their_token, "unknown-token"):
        response = Client().post("/oauth/introspect/", {"token": token}, HTTP_AUTHORIZATION=_basic(mine, secret))
        assert response.json() == {"active": False}


@pytest.mark.django_db
def test_introspection_needs_an_authenticated_confidential_client(client, account, owner, app):
    token = issue_token(client, app, owner, account)["access_token"]
    public = Client().post("/oauth/introspect/", {"token": token, "client_id": app.client_id})
    assert public.status_code == 401 and public.json()["error"] == "invalid_client"
    confidential, _ = make_app(client_type="confidential")
    wrong = Client().post("/oauth/introspect/", {"token": token}, HTTP_AUTHORIZATION=_basic(confidential, "wrong"))
    assert wrong.status_code == 401
    assert Client().get("/oauth/introspect/", {"token": token}).status_code == 405


@pytest.mark.django_db
def test_token_authentication_costs_two_queries_no_more_than_an_api_key(
    client, account, owner, app, make_key, settings
):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    # Against a key whose usage is written per request (with Redis it is batched and the key is cheaper)
    # and that is looked up on every request (with Redis a process caches it and sends no query).
    settings.LEADBASE_API_KEY_USAGE_FLUSH_SECONDS = 0
    settings.LEADBASE_CREDENTIAL_CACHE_SECONDS = 0

    oauth_api = bearer(issue_token(client, app, owner, account)["access_token"])
    key_api = bearer(make_key(account, user=owner))
    oauth_api.get("/api/v1/leads")  # warm caches (content types, sessions) alike
    key_api.get("/api/v1/leads")
    with CaptureQueriesContext(connection) as oauth_queries:
        assert oauth_api.get("/api/v1/leads").status_code == 200
    with CaptureQueriesContext(connection) as key_queries:
        assert key_api.get("/api/v1/leads").status_code == 200
    assert len(oauth_queries) <= len(key_queries)
    token_lookups = [q for q in oauth_queries.captured_queries if "oauth2_provider_accesstoken" in q["sql"]]
    assert len(token_lookups) == 1
