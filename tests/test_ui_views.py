"""The web UI through Django's test client: login, pages, forms with the API's messages, permissions."""

from __future__ import annotations

import pytest
from django.test import Client

from accounts.models import ApiKey, Role
from accounts.services import api_key_create
from leads.models import Lead

from .factories import AccountFactory, LeadFactory, MembershipFactory, UserFactory

PAGES = ["/leads/", "/leads/new/", "/settings/api-keys/"]


@pytest.fixture
def owner_client(client, owner):
    client.force_login(owner)
    return client


@pytest.fixture
def member_client(client, account):
    client.force_login(MembershipFactory(account=account, role=Role.MEMBER).user)
    return client


@pytest.fixture
def lead(account):
    return LeadFactory(account=account, email="ada@example.org", company="Analytical", tags=["vip"])


@pytest.mark.parametrize("path", ["/", *PAGES, "/leads/00000000-0000-0000-0000-000000000001/"])
def test_every_page_sends_an_anonymous_visitor_to_the_login_page(client, db, path):
    response = client.get(path)
    assert response.status_code == 302
    assert response["Location"].startswith(f"/login/?next={path}")


def test_home_redirects_to_the_lead_list(owner_client):
    assert owner_client.get("/")["Location"] == "/leads/"


@pytest.mark.parametrize("path", PAGES)
def test_each_page_renders_for_an_owner(owner_client, path):
    response = owner_client.get(path)
    assert response.status_code == 200
    assert b"htmx" in response.content  # served from django-htmx's static files


def test_htmx_is_served_from_the_package_not_a_cdn(owner_client):
    html = owner_client.get("/leads/").content.decode()
    assert "/static/django_htmx/" in html and "unpkg" not in html and "cdn" not in html.lower()


def test_lead_list_shows_the_accounts_leads_only(owner_client, lead, other_account):
    LeadFactory(account=other_account, email="secret@globex.test")
    html = owner_client.get("/leads/").content.decode()
    assert "ada@example.org" in html and "Analytical" in html and "vip" in html
    assert "secret@globex.test" not in html


def test_lead_list_filters_with_the_api_parameters(owner_client, account, lead):
    LeadFactory(account=account, email="bob@example.org", company="Other")
    html = owner_client.get("/leads/", {"q": "", "tag": "vip", "status": "", "owner": ""}).content.decode()
    assert "ada@example.org" in html and "bob@example.org" not in html


def test_an_invalid_filter_shows_the_error_message_not_a_500(owner_client, lead):
    response = owner_client.get("/leads/", {"score__gte": "lots", "colour": "red"})
    assert response.status_code == 200
    assert "Unknown filter parameter(s): colour." in response.content.decode()


def test_a_tampered_cursor_shows_the_error_message(owner_client, lead):
    response = owner_client.get("/leads/", {"cursor": "garbage"})
    assert response.status_code == 200
    assert 'role="alert"' in response.content.decode()


def test_the_next_link_pages_forward_with_the_cursor(owner_client, account):
    for n in range(3):
        LeadFactory(account=account, email=f"p{n}@example.org")
    first = owner_client.get("/leads/", {"limit": "2", "sort": "email"})
    assert first.context["next_query"]
    second = owner_client.get(f"/leads/?{first.context['next_query']}").content.decode()
    assert "p2@example.org" in second and "p0@example.org" not in second


def test_an_htmx_request_gets_only_the_results(owner_client, lead):
    html = owner_client.get("/leads/", headers={"HX-Request": "true"}).content.decode()
    assert 'id="lead-results"' in html and "<html" not in html


def test_create_shows_the_api_messages_next_to_the_fields(owner_client):
    response = owner_client.post("/leads/new/", {"email": "not-an-email", "status": "new"})
    assert response.status_code == 200
    form = response.context["form"]
    assert form.errors["email"] == ["Enter a valid email address."]
    assert "Enter a valid email address." in response.content.decode()


def test_create_without_an_identity_shows_the_services_message(owner_client):
    response = owner_client.post("/leads/new/", {"first_name": "Nobody", "status": "new"})
    assert response.status_code == 200
    assert response.context["form"].errors


def test_create_a_lead_and_land_on_its_page(owner_client, account):
    response = owner_client.post(
        "/leads/new/", {"email": "Grace@Example.org", "company": "Navy", "tags": "a, b", "status": "new"}, follow=True
    )
    lead = Lead.objects.get(account=account)
    assert lead.email == "grace@example.org" and lead.tags == ["a", "b"]
    assert response.redirect_chain[-1][0] == f"/leads/{lead.pk}/"
    assert "created" in response.content.decode()


def test_a_duplicate_email_is_shown_with_a_link_to_the_existing_lead(owner_client, lead):
    response = owner_client.post("/leads/new/", {"email": "ada@example.org", "status": "new"})
    assert response.status_code == 200
    assert f"/leads/{lead.pk}/" in response.content.decode()


def test_detail_shows_fields_and_score_breakdown(owner_client, account, lead):
    lead.score, lead.score_breakdown = 15, [{"rule_id": 1, "name": "Has company", "points": 15}]
    lead.possible_duplicate_of = LeadFactory(account=account, email="ada2@example.org")
    lead.save()
    html = owner_client.get(f"/leads/{lead.pk}/").content.decode()
    assert "Analytical" in html and "Has company" in html and f"/leads/{lead.possible_duplicate_of_id}/" in html


def test_edit_changes_only_the_changed_fields(owner_client, lead):
    page = owner_client.get(f"/leads/{lead.pk}/edit/")
    data = {k: v for k, v in page.context["form"].initial.items()}
    data.update(company="Difference Engine", etag=lead.etag)
    response = owner_client.post(f"/leads/{lead.pk}/edit/", data)
    assert response.status_code == 302
    lead.refresh_from_db()
    assert lead.company == "Difference Engine" and lead.email == "ada@example.org"


def test_edit_with_a_stale_etag_says_the_lead_changed(owner_client, lead):
    data = {"email": "ada@example.org", "company": "New", "status": lead.status, "etag": '"stale"'}
    response = owner_client.post(f"/leads/{lead.pk}/edit/", data)
    assert response.status_code == 200
    assert "changed since you read it" in response.content.decode()


def test_delete_asks_for_confirmation_then_deletes_on_post(owner_client, lead):
    assert b"cannot be undone" in owner_client.get(f"/leads/{lead.pk}/delete/").content
    assert owner_client.post(f"/leads/{lead.pk}/delete/")["Location"] == "/leads/"
    assert not Lead.objects.filter(pk=lead.pk).exists()


def test_bulk_tag_and_status_go_through_the_batch_service(owner_client, account, lead):
    other = LeadFactory(account=account, email="b@example.org")
    ids = [str(lead.pk), str(other.pk)]
    response = owner_client.post("/leads/bulk/", {"action": "tag", "tag": "Hot", "ids": ids}, follow=True)
    assert "Tagged “Hot”: 2 leads." in response.content.decode()
    owner_client.post("/leads/bulk/", {"action": "status", "status": "qualified", "ids": ids})
    assert sorted(Lead.objects.filter(account=account).values_list("status", flat=True)) == ["qualified"] * 2
    assert "hot" in Lead.objects.get(pk=other.pk).tags


def test_bulk_delete_asks_for_confirmation_first(owner_client, account, lead):
    response = owner_client.post("/leads/bulk/", {"action": "delete", "ids": [str(lead.pk)]})
    assert response.status_code == 200 and b"cannot be undone" in response.content
    assert Lead.objects.filter(pk=lead.pk).exists()
    owner_client.post("/leads/bulk/", {"action": "delete", "confirm": "on", "ids": [str(lead.pk)]})
    assert not Lead.objects.filter(pk=lead.pk).exists()


def test_bulk_actions_cannot_touch_another_accounts_leads(owner_client, other_account):
    foreign = LeadFactory(account=other_account, status="new")
    response = owner_client.post(
        "/leads/bulk/", {"action": "status", "status": "lost", "ids": [str(foreign.pk)]}, follow=True
    )
    assert "No such lead." in response.content.decode()
    foreign.refresh_from_db()
    assert foreign.status == "new"


@pytest.mark.parametrize("suffix", ["", "edit/", "delete/"])
def test_another_accounts_lead_is_404(owner_client, other_account, suffix):
    foreign = LeadFactory(account=other_account)
    assert owner_client.get(f"/leads/{foreign.pk}/{suffix}").status_code == 404


def test_deleting_another_accounts_lead_is_404_and_deletes_nothing(owner_client, other_account):
    foreign = LeadFactory(account=other_account)
    assert owner_client.post(f"/leads/{foreign.pk}/delete/").status_code == 404
    assert Lead.objects.filter(pk=foreign.pk).exists()


def test_a_member_gets_a_403_page_on_api_keys(member_client):
    response = member_client.get("/settings/api-keys/")
    assert response.status_code == 403
    assert b"does not allow" in response.content
    assert member_client.post("/settings/api-keys/", {"name": "x", "scopes": ["leads:read"]}).status_code == 403


def test_the_api_keys_link_is_shown_to_admins_only(member_client, owner):
    assert b"/settings/api-keys/" not in member_client.get("/leads/").content
    member_client.force_login(owner)
    assert b"/settings/api-keys/" in member_client.get("/leads/").content


def test_create_an_api_key_shows_the_full_key_once(owner_client, account):
    response = owner_client.post("/settings/api-keys/", {"name": "CI", "scopes": ["leads:read", "leads:write"]})
    assert response.status_code == 200 and response["Cache-Control"] == "no-store"
    key = ApiKey.objects.get(account=account, name="CI")
    raw = response.context["raw_key"]
    assert raw.startswith(key.prefix) and raw in response.content.decode()
    assert raw not in owner_client.get("/settings/api-keys/").content.decode()


def test_api_key_form_errors_are_the_apis(owner_client):
    response = owner_client.post("/settings/api-keys/", {"name": ""})
    assert response.status_code == 200
    errors = response.context["form"].errors
    assert errors["name"] == ["This field may not be blank."] and errors["scopes"]


def test_revoke_an_api_key(owner_client, account, owner):
    key, _ = api_key_create(account=account, created_by=owner, name="old", scopes=["leads:read"])
    response = owner_client.post(f"/settings/api-keys/{key.pk}/revoke/", follow=True)
    assert "revoked" in response.content.decode()
    key.refresh_from_db()
    assert key.revoked_at is not None


def test_revoking_another_accounts_key_is_404(owner_client, other_account):
    user = MembershipFactory(account=other_account).user
    key, _ = api_key_create(account=other_account, created_by=user, name="theirs", scopes=["leads:read"])
    assert owner_client.post(f"/settings/api-keys/{key.pk}/revoke/").status_code == 404
    key.refresh_from_db()
    assert key.revoked_at is None


def test_posts_without_a_csrf_token_are_refused(owner, lead):
    client = Client(enforce_csrf_checks=True)
    client.force_login(owner)
    for path, data in [
        ("/leads/new/", {"email": "x@example.org"}),
        (f"/leads/{lead.pk}/delete/", {}),
        ("/leads/bulk/", {"action": "delete", "confirm": "on", "ids": [str(lead.pk)]}),
        ("/settings/api-keys/", {"name": "x", "scopes": ["leads:read"]}),
        ("/account/switch/", {"account": "1"}),
    ]:
        assert client.post(path, data).status_code == 403, path
    assert Lead.objects.filter(pk=lead.pk).exists()


def test_the_account_switcher_changes_account_and_refuses_foreign_ones(client, db):
    user = UserFactory(email="two@example.org")
    first, second, foreign = AccountFactory(name="First"), AccountFactory(name="Second"), AccountFactory()
    MembershipFactory(account=first, user=user, role=Role.OWNER)
    MembershipFactory(account=second, user=user, role=Role.MEMBER)
    LeadFactory(account=second, email="in-second@example.org")
    client.force_login(user)
    html = client.get("/leads/").content.decode()
    assert 'id="account-switch"' in html and "in-second@example.org" not in html
    client.post("/account/switch/", {"account": str(second.pk)})
    assert "in-second@example.org" in client.get("/leads/").content.decode()
    assert client.get("/settings/api-keys/").status_code == 403  # a member in the second account
    response = client.post("/account/switch/", {"account": str(foreign.pk)}, follow=True)
    assert "not a member of that account" in response.content.decode()


def test_a_removed_membership_is_dropped_on_the_next_request(client, db):
    user = UserFactory(email="leaver@example.org")
    first, second = AccountFactory(), AccountFactory()
    MembershipFactory(account=first, user=user)
    gone = MembershipFactory(account=second, user=user)
    LeadFactory(account=second, email="in-second@example.org")
    client.force_login(user)
    client.post("/account/switch/", {"account": str(second.pk)})
    gone.delete()
    assert "in-second@example.org" not in client.get("/leads/").content.decode()


def test_a_user_without_an_account_gets_a_403_page(client, db):
    client.force_login(UserFactory(email="lonely@example.org"))
    assert client.get("/leads/").status_code == 403
